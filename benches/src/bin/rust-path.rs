//! The Rust twin of `benches/c/bench_c.c` (issue #3: the C path must cost no
//! more than 10 ns per frame over the Rust path), and the driver that runs
//! both, interleaved.
//!
//! ```text
//! rust-path --inproc FRAMES ROUNDS
//!     one run in this process, printed as `publish_ns=X round_ns=Y`:
//!     FRAMES x `Bus::publish` of 64 bytes on a 16 MiB bus without subscriber,
//!     ROUNDS x (`Bus::publish` + `Subscriber::try_recv`) with one spinning
//!     subscriber; each after a warm-up of a twentieth. The same loops as
//!     `bench_c inproc FRAMES ROUNDS`.
//! rust-path --c-bin build/bench/bench_c [--runs 7] [--frames 2000000] [--rounds 1000000]
//!     runs `bench_c inproc` and `rust-path --inproc` as fresh processes,
//!     alternating C, Rust, C, Rust, ..., and prints every run, the medians
//!     and the C - Rust difference per frame.
//! ```

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use shmbus::{Config, Filter, Start, SubscribeOptions, WaitStrategy};
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
    let mut sub = bus
        .subscribe_with(
            Filter::all(),
            SubscribeOptions {
                start: Start::Newest,
                wait: WaitStrategy::Spin,
            },
        )
        .expect("subscribe");
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

/// Parse `publish_ns=X round_ns=Y`.
fn parse_line(out: &str) -> Result<(f64, f64), String> {
    let mut p = None;
    let mut r = None;
    for tok in out.split_whitespace() {
        if let Some(v) = tok.strip_prefix("publish_ns=") {
            p = v.parse().ok();
        } else if let Some(v) = tok.strip_prefix("round_ns=") {
            r = v.parse().ok();
        }
    }
    p.zip(r).ok_or_else(|| format!("unexpected output {out:?}"))
}

fn run_child(exe: &str, args: &[String]) -> Result<(f64, f64), String> {
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
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn compare(c_bin: &str, runs: usize, frames: u64, rounds: u64) -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let me = me.to_string_lossy().into_owned();
    let args_c = vec!["inproc".to_string(), frames.to_string(), rounds.to_string()];
    let args_r = vec!["--inproc".to_string(), frames.to_string(), rounds.to_string()];
    let (mut cp, mut cr, mut rp, mut rr) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    println!("C path vs Rust path, 64 B frames, {frames} publishes and {rounds} publish+recv rounds per run, {runs} runs, interleaved C, Rust, C, Rust, ...");
    for i in 1..=runs {
        let (p, r) = run_child(c_bin, &args_c)?;
        println!("run {i}/{runs}  C     publish {p:7.1} ns  publish+recv {r:7.1} ns");
        cp.push(p);
        cr.push(r);
        let (p, r) = run_child(&me, &args_r)?;
        println!("run {i}/{runs}  Rust  publish {p:7.1} ns  publish+recv {r:7.1} ns");
        rp.push(p);
        rr.push(r);
    }
    let diffs = |c: &[f64], r: &[f64]| -> Vec<f64> { c.iter().zip(r).map(|(a, b)| a - b).collect() };
    let (dp, dr) = (diffs(&cp, &rp), diffs(&cr, &rr));
    println!();
    println!("| op (ns/frame) | Rust median | C median | C - Rust (medians) | C - Rust per run: median (min..max) | Rust min | C min |");
    println!("|---|---|---|---|---|---|---|");
    for (op, r, c, d) in [("publish 64 B", &rp, &cp, &dp), ("publish+recv 64 B", &rr, &cr, &dr)] {
        let max = d.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "| {op} | {:.1} | {:.1} | {:+.1} | {:+.1} ({:+.1}..{:+.1}) | {:.1} | {:.1} |",
            median(r),
            median(c),
            median(c) - median(r),
            median(d),
            min(d),
            max,
            min(r),
            min(c)
        );
    }
    let worst = (median(&cp) - median(&rp)).max(median(&cr) - median(&rr));
    println!();
    println!(
        "issue #3 target (C path <= Rust path + 10 ns/frame): {} (largest median difference {worst:+.1} ns)",
        if worst <= 10.0 { "met" } else { "MISSED" }
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
        println!("publish_ns={p:.2} round_ns={r:.2}");
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
