//! CI check: the checked-in include/shmbus.h is exactly what cbindgen
//! generates from the current sources. Fix a failure with `make header`.

#[path = "../tools/header.rs"]
mod header;

#[test]
fn checked_in_header_matches_a_fresh_generation() {
    let fresh = header::generate();
    let path = header::header_path();
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != fresh {
        let first_diff = checked_in
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| checked_in.lines().count().min(fresh.lines().count()));
        panic!(
            "{} is stale (first difference at line {}); run `make header` and commit the result",
            path.display(),
            first_diff + 1
        );
    }
}

#[test]
fn header_documents_every_function_and_states_the_conventions() {
    let text = header::generate();
    for needle in [
        "CONVENTIONS",
        "valid until the next call on that subscriber or its",
        "shmbus_status_t shmbus_publish(",
        "shmbus_status_t shmbus_recv(",
        "const char *shmbus_last_error(void)",
        "SHMBUS_TIMEOUT = 1",
    ] {
        assert!(text.contains(needle), "header lacks {needle:?}");
    }
    // Every prototype is preceded by a doc comment.
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.contains(" shmbus_") && line.contains('(') && !line.trim_start().starts_with('*') {
            let before = lines[..i].iter().rev().find(|l| !l.trim().is_empty()).unwrap();
            assert!(before.trim_end().ends_with("*/"), "undocumented prototype: {line}");
        }
    }
}
