//! Publish COUNT JSON events to a bus (used by cross-language tests).
//!
//! ```text
//! cargo run -p shmbus --example publish -- NAME TOPIC COUNT
//! ```
//! Opens (or creates with defaults) bus NAME and publishes COUNT frames on
//! TOPIC with payload `{"i": I, "producer": "rust", "pid": PID}`.

use shmbus::{Bus, Config};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: publish NAME TOPIC COUNT");
        std::process::exit(2);
    }
    let count: u64 = match args[3].parse() {
        Ok(n) => n,
        Err(_) => {
            eprintln!("publish: COUNT must be a number");
            std::process::exit(2);
        }
    };
    let bus = match Bus::open_or_create(&args[1], &Config::default()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("publish: {e}");
            std::process::exit(1);
        }
    };
    let pid = std::process::id();
    for i in 0..count {
        let payload = format!(r#"{{"i": {i}, "producer": "rust", "pid": {pid}}}"#);
        if let Err(e) = bus.publish(&args[2], payload.as_bytes()) {
            eprintln!("publish: {e}");
            std::process::exit(1);
        }
    }
}
