//! Generation of include/shmbus.h, shared by `examples/gen_header.rs` (which
//! writes it) and `tests/header.rs` (which checks the checked-in copy).

use std::path::PathBuf;

/// The ffi crate's directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of the checked-in header.
pub fn header_path() -> PathBuf {
    crate_dir()
        .parent()
        .expect("ffi/ is inside the workspace")
        .join("include")
        .join("shmbus.h")
}

/// Generate the header text from `src/lib.rs` with `cbindgen.toml`.
pub fn generate() -> String {
    let dir = crate_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("read ffi/cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src").join("lib.rs"))
        .generate()
        .expect("cbindgen failed to generate include/shmbus.h");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("cbindgen wrote UTF-8")
}
