//! Regenerate include/shmbus.h from the ffi crate's sources.
//!
//! ```text
//! cargo run -p shmbus-ffi --example gen_header    # or: make header
//! ```

#[path = "../tools/header.rs"]
mod header;

fn main() {
    let text = header::generate();
    let path = header::header_path();
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        println!("{} is up to date", path.display());
        return;
    }
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("gen_header: cannot write {}: {e}", path.display());
        std::process::exit(1);
    }
    println!("wrote {}", path.display());
}
