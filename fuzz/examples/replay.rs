//! Run one input through one target, in the foreground, for debugging:
//! `cargo run --manifest-path fuzz/Cargo.toml --example replay -- TARGET FILE...`
//! (attach a debugger to see where a hang spins).

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("usage: replay TARGET FILE...");
    let run: fn(&[u8]) = match target.as_str() {
        "segment_open" => shmbus_fuzz::segment_open::run,
        "frame_decode" => shmbus_fuzz::frame_decode::run,
        "filters" => shmbus_fuzz::filters::run,
        "ops" => shmbus_fuzz::ops::run,
        other => panic!("unknown target {other:?}"),
    };
    for file in args {
        let data = std::fs::read(&file).expect("read input");
        eprintln!("{target}: {file} ({} bytes)", data.len());
        run(&data);
        eprintln!("{target}: {file}: ok");
    }
}
