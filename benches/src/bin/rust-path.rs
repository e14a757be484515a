//! The Rust twin of `benches/c/bench_c.c` (issue #3: the C path must cost no
//! more than 10 ns per frame over the Rust path), and the driver that runs
//! both, interleaved.
//!
//! ```text
//! rust-path --inproc FRAMES ROUNDS
//!     one run in this process, printed as `publish_ns=X round_ns=Y recv_ns=Z`:
//!     publish: FRAMES x `Bus::publish` of 64 bytes on a 16 MiB bus without
//!              subscriber;
//!     round:   ROUNDS x (`Bus::publish` + `Subscriber::try_recv`) with one
//!              spinning subscriber;
//!     recv:    ROUNDS x `Subscriber::try_recv` alone: frames are published
//!              in batches of 256 (not timed) and each batch is received
//!              (timed), so the frames are in cache as in a round;
//!     each after a warm-up of a twentieth. The same loops as
//!     `bench_c inproc FRAMES ROUNDS`.
//! rust-path --c-bin build/bench/bench_c [--runs 7] [--frames 2000000] [--rounds 1000000]
//!     runs `bench_c inproc` and `rust-path --inproc` as fresh processes,
//!     alternating C, Rust, C, Rust, ..., and prints every run, the medians
//!     and the C - Rust difference per frame.
//! ```

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use shmbus::Config;
use shmbus_benches::TempBus;

const TOPIC: &str = "bench.data";
const PAYLOAD: usize = 64;

/// A 16 MiB bus named for this process and `tag`, removed on drop.
fn temp_bus(tag: &str) -> TempBus {
    let name = format!("bench-{}-rust-{tag}", std::process::id());
    TempBus::create(&name, &Config::default().memory_limit(16 << 20)).expect("create bus")
}

fn publish_ns(frames: u64) -> f64 {
    let tb = temp_bus("pub");
    let bus = tb.bus();
    let payload = [7u8; PAYLOAD];
    for _ in 0..frames / 20 {
        bus.publish(black_box(TOPIC), black_box(&payload))
            .expect("publish (warm-up)");
    }
    let t0 = Instant::now();
    for _ in 0..frames {
        bus.publish(black_box(TOPIC), black_box(&payload)).expect("publish");
    }
    t0.elapsed().as_nanos() as f64 / frames as f64
}

fn round_ns(rounds: u64) -> f64 {
    let tb = temp_bus("round");
    let bus = tb.bus();
    let mut sub = tb.spin_subscriber().expect("subscribe");
    let payload = [7u8; PAYLOAD];
    let warm = rounds / 20;
    let mut t0 = Instant::now();
    let mut sum = 0u64;
    for i in 0..warm + rounds {
        if i == warm {
            t0 = Instant::now();
        }
        bus.publish(black_box(TOPIC), black_box(&payload)).expect("publish");
        let f = sub.try_recv().expect("recv").expect("the frame just published");
        // Materialise the whole frame (topic, metadata), as the C API must
        // for every frame: otherwise LLVM drops work a real consumer does.
        let f = black_box(f);
        assert_eq!(f.payload().len(), PAYLOAD, "round {i}: payload length");
        sum += u64::from(f.payload()[0]);
    }
    let dt = t0.elapsed();
    assert!(
        sub.missed() == 0 && sum == 7 * (warm + rounds),
        "round: missed or bad payloads"
    );
    dt.as_nanos() as f64 / rounds as f64
}

/// Frames per published-then-received batch of [`recv_ns`]: 45 KB of
/// frames, well inside L2.
const RECV_BATCH: u64 = 256;

/// The receive path alone: `frames` x `Subscriber::try_recv`, timed per
/// batch of [`RECV_BATCH`] frames published just before (not timed).
fn recv_ns(frames: u64) -> f64 {
    let tb = temp_bus("recv");
    let bus = tb.bus();
    let mut sub = tb.spin_subscriber().expect("subscribe");
    let payload = [7u8; PAYLOAD];
    let batches = frames.div_ceil(RECV_BATCH);
    let warm = batches / 20;
    let mut timed = std::time::Duration::ZERO;
    let mut sum = 0u64;
    for b in 0..warm + batches {
        for _ in 0..RECV_BATCH {
            bus.publish(black_box(TOPIC), black_box(&payload)).expect("publish");
        }
        let t0 = Instant::now();
        for _ in 0..RECV_BATCH {
            let f = sub.try_recv().expect("recv").expect("a frame of the batch");
            let f = black_box(f); // as in `round_ns`
            assert_eq!(f.payload().len(), PAYLOAD, "batch {b}: payload length");
            sum += u64::from(f.payload()[0]);
        }
        if b >= warm {
            timed += t0.elapsed();
        }
    }
    assert!(
        sub.missed() == 0 && sum == 7 * (warm + batches) * RECV_BATCH,
        "recv: missed or bad payloads"
    );
    timed.as_nanos() as f64 / (batches * RECV_BATCH) as f64
}

/// Parse `publish_ns=X round_ns=Y recv_ns=Z`.
fn parse_line(out: &str) -> Result<[f64; 3], String> {
    let mut v = [None; 3];
    for tok in out.split_whitespace() {
        for (i, key) in ["publish_ns=", "round_ns=", "recv_ns="].iter().enumerate() {
            if let Some(x) = tok.strip_prefix(key) {
                v[i] = x.parse().ok();
            }
        }
    }
    match v {
        [Some(p), Some(r), Some(c)] => Ok([p, r, c]),
        _ => Err(format!("unexpected output {out:?}")),
    }
}

fn run_child(exe: &str, args: &[String]) -> Result<[f64; 3], String> {
    let out = Command::new(exe)
        .args(args)
        .output()
        .map_err(|e| format!("{exe}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{exe} {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_line(&String::from_utf8_lossy(&out.stdout))
}

fn median(v: &[f64]) -> f64 {
    shmbus_benches::harness::median(&mut v.to_vec())
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn compare(c_bin: &str, runs: usize, frames: u64, rounds: u64) -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let me = me.to_string_lossy().into_owned();
    let args_c = vec!["inproc".to_string(), frames.to_string(), rounds.to_string()];
    let args_r = vec!["--inproc".to_string(), frames.to_string(), rounds.to_string()];
    // [publish, round, recv] per run, for C and for Rust.
    let (mut c, mut r): (Vec<[f64; 3]>, Vec<[f64; 3]>) = (Vec::new(), Vec::new());
    println!("C path vs Rust path, 64 B frames, {frames} publishes, {rounds} publish+recv rounds and {rounds} receives per run, {runs} runs, interleaved C, Rust, C, Rust, ...");
    for i in 1..=runs {
        for (lang, exe, args, out) in [("C   ", c_bin, &args_c, &mut c), ("Rust", me.as_str(), &args_r, &mut r)] {
            let v = run_child(exe, args)?;
            println!(
                "run {i}/{runs}  {lang}  publish {:7.1} ns  recv {:7.1} ns  publish+recv {:7.1} ns",
                v[0], v[2], v[1]
            );
            out.push(v);
        }
    }
    let col = |v: &[[f64; 3]], k: usize| -> Vec<f64> { v.iter().map(|x| x[k]).collect() };
    println!();
    println!("| op (ns/frame) | Rust median | C median | C - Rust (medians) | C - Rust per run: median (min..max) | Rust min | C min |");
    println!("|---|---|---|---|---|---|---|");
    let mut gaps = [0.0; 3];
    for (k, op) in [(0, "publish 64 B"), (2, "recv 64 B"), (1, "publish+recv 64 B")] {
        let (rv, cv) = (col(&r, k), col(&c, k));
        let d: Vec<f64> = cv.iter().zip(&rv).map(|(a, b)| a - b).collect();
        let max = d.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        gaps[k] = median(&cv) - median(&rv);
        println!(
            "| {op} | {:.1} | {:.1} | {:+.1} | {:+.1} ({:+.1}..{:+.1}) | {:.1} | {:.1} |",
            median(&rv),
            median(&cv),
            gaps[k],
            median(&d),
            min(&d),
            max,
            min(&rv),
            min(&cv)
        );
    }
    let worst = gaps[0].max(gaps[2]);
    println!();
    println!(
        "issue #3 target (each C path <= its Rust path + 10 ns/frame): {} (publish {:+.1}, recv {:+.1} ns; both paths in one thread {:+.1} ns)",
        if worst <= 10.0 { "met" } else { "MISSED" },
        gaps[0],
        gaps[2],
        gaps[1]
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--inproc") {
        let n = |i: usize| args.get(i).and_then(|s| s.parse::<u64>().ok()).filter(|&n| n > 0);
        let (Some(frames), Some(rounds)) = (n(1), n(2)) else {
            eprintln!("usage: rust-path --inproc FRAMES ROUNDS");
            std::process::exit(2);
        };
        let p = publish_ns(frames);
        let r = round_ns(rounds);
        let c = recv_ns(rounds);
        println!("publish_ns={p:.2} round_ns={r:.2} recv_ns={c:.2}");
        return;
    }
    let (mut c_bin, mut runs, mut frames, mut rounds) = (None, 7usize, 2_000_000u64, 1_000_000u64);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next();
        let num = |v: Option<&String>| v.and_then(|s| s.parse::<u64>().ok()).filter(|&n| n > 0);
        match (a.as_str(), v) {
            ("--c-bin", Some(v)) => c_bin = Some(v.clone()),
            ("--runs", v) if num(v).is_some() => runs = num(v).unwrap_or(7) as usize,
            ("--frames", v) if num(v).is_some() => frames = num(v).unwrap_or(frames),
            ("--rounds", v) if num(v).is_some() => rounds = num(v).unwrap_or(rounds),
            _ => {
                eprintln!(
                    "usage: rust-path --c-bin PATH [--runs N] [--frames N] [--rounds N] | rust-path --inproc FRAMES ROUNDS"
                );
                std::process::exit(2);
            }
        }
    }
    let Some(c_bin) = c_bin else {
        eprintln!("rust-path: --c-bin PATH is required (the bench_c program built by `make bench-c`)");
        std::process::exit(2);
    };
    if let Err(e) = compare(&c_bin, runs, frames, rounds) {
        eprintln!("rust-path: {e}");
        std::process::exit(1);
    }
}
