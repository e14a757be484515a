//! Replays every file of `corpus/<target>/` and `regressions/<target>/`
//! through the plain target functions (stable toolchain, no libFuzzer), plus
//! a few hundred pseudo-random inputs per target. Each input runs on its own
//! thread under a watchdog, so an endless loop fails the test naming the
//! input instead of hanging it.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::Duration;

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("segment_open", shmbus_fuzz::segment_open::run),
    ("frame_decode", shmbus_fuzz::frame_decode::run),
    ("filters", shmbus_fuzz::filters::run),
    ("ops", shmbus_fuzz::ops::run),
];

/// How long one input may take before it counts as an endless loop
/// (`FUZZ_WATCHDOG_SECS`, default 30).
fn watchdog() -> Duration {
    let secs = std::env::var("FUZZ_WATCHDOG_SECS").ok().and_then(|v| v.parse().ok());
    Duration::from_secs(secs.unwrap_or(30))
}

enum Outcome {
    Ok,
    Panicked(String),
    Hung,
}

fn run_one(target: Target, data: Vec<u8>) -> Outcome {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| target(&data));
        let _ = tx.send(r.map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        }));
    });
    match rx.recv_timeout(watchdog()) {
        Ok(Ok(())) => Outcome::Ok,
        Ok(Err(msg)) => Outcome::Panicked(msg),
        Err(_) => Outcome::Hung,
    }
}

/// Serialises the tests of this file; on drop (also on failure) removes the
/// segments of inputs that hung and so never ran their own cleanup.
struct Exclusive(#[allow(dead_code)] MutexGuard<'static, ()>);

fn exclusive() -> Exclusive {
    static LOCK: Mutex<()> = Mutex::new(());
    Exclusive(LOCK.lock().unwrap_or_else(|e| e.into_inner()))
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        let mine = format!("-{}-", std::process::id());
        for entry in std::fs::read_dir("/dev/shm").into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("shmbus.fuzz-") && name.contains(&mine) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Reproducers of open core bugs (`regressions/KNOWN_OPEN`), as paths.
fn known_open(root: &Path) -> Vec<PathBuf> {
    let list = std::fs::read_to_string(root.join("regressions/KNOWN_OPEN")).unwrap_or_default();
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| root.join("regressions").join(l))
        .collect()
}

/// Replays `kind/<target>/*`; `known` selects the known-open reproducers
/// (only those, or all but those).
fn replay(kind: &str, known: bool) {
    let _x = exclusive();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let open = known_open(root);
    let mut failures = Vec::new();
    let mut total = 0;
    for (name, target) in TARGETS {
        for path in files(&root.join(kind).join(name)) {
            if open.contains(&path) != known {
                continue;
            }
            total += 1;
            let data = std::fs::read(&path).expect("read input");
            match run_one(*target, data) {
                Outcome::Ok => {}
                Outcome::Panicked(msg) => failures.push(format!("{}: panicked: {msg}", path.display())),
                Outcome::Hung => failures.push(format!("{}: no answer within {:?}", path.display(), watchdog())),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{kind}: {total} inputs passed");
}

#[test]
fn corpus_replays_cleanly() {
    replay("corpus", false);
}

#[test]
fn regressions_replay_cleanly() {
    replay("regressions", false);
}

/// The reproducers of `regressions/KNOWN_OPEN`: fails while any of those core
/// bugs is still open (run with `-- --ignored known_open`).
#[test]
#[ignore = "core bugs still open: see regressions/KNOWN_OPEN"]
fn known_open_bugs_are_fixed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for path in known_open(root) {
        assert!(path.is_file(), "KNOWN_OPEN lists a missing file: {}", path.display());
    }
    replay("regressions", true);
}

/// xorshift64*: deterministic inputs without extra dependencies.
fn random_bytes(state: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *state ^= *state >> 12;
            *state ^= *state << 25;
            *state ^= *state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

#[test]
fn random_inputs_run_cleanly() {
    let n: usize = std::env::var("FUZZ_RANDOM_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let _x = exclusive();
    let mut state = 0x5eed_u64;
    let mut failures = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let only = std::env::var("FUZZ_ONLY").unwrap_or_default();
    // Inputs identical to a known-open reproducer are left to that test.
    let open: Vec<Vec<u8>> = known_open(root).iter().filter_map(|p| std::fs::read(p).ok()).collect();
    for (name, target) in TARGETS {
        if !only.is_empty() && only != *name {
            continue;
        }
        for i in 0..n {
            let len = 1 + (i * 7) % 600;
            let data = random_bytes(&mut state, len);
            if open.contains(&data) {
                continue;
            }
            let saved = root.join("target/random-failures").join(name).join(format!("{i:04}"));
            let _ = std::fs::create_dir_all(saved.parent().expect("a parent"));
            let _ = std::fs::write(&saved, &data);
            let what = match run_one(*target, data) {
                Outcome::Ok => {
                    let _ = std::fs::remove_file(&saved);
                    continue;
                }
                Outcome::Panicked(msg) => format!("panicked: {msg}"),
                Outcome::Hung => format!("no answer within {:?}", watchdog()),
            };
            failures.push(format!("{name} input {}: {what}", saved.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} random inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
