//! Publisher-only loop for `strace -c` and `perf stat`/`perf record`: creates
//! a temporary bus, optionally adds a busy-polling (never parked) subscriber
//! in a thread, publishes N frames, prints the rate and removes the bus.
//!
//! ```text
//! publish-loop [FRAMES] [PAYLOAD_BYTES] [--with-spinning-subscriber [--recv-many]] [--checksum] [--block] [--many N]
//! strace -c -f ./target/release/publish-loop 1000000 64
//! ```
//!
//! `--block` creates the bus with `Overflow::Block` (10 s) instead of the
//! default `Evict`. `--many N` publishes with `Bus::publish_many`, N frames
//! per call. `--recv-many` makes the subscriber take frames with
//! `Subscriber::recv_many` (up to 4096 per call) instead of one `recv` each,
//! and print how many frames a call took on average.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shmbus::{Config, Overflow};
use shmbus_benches::TempBus;

fn main() {
    let (mut spin_sub, mut recv_many, mut checksum, mut block, mut many) = (false, false, false, false, None);
    let mut nums: Vec<u64> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--with-spinning-subscriber" => spin_sub = true,
            "--recv-many" => recv_many = true,
            "--checksum" => checksum = true,
            "--block" => block = true,
            "--many" => {
                many = Some(
                    args.next()
                        .and_then(|n| n.parse::<usize>().ok())
                        .expect("--many N")
                        .max(1),
                )
            }
            _ => nums.extend(a.parse::<u64>().ok()),
        }
    }
    let frames = nums.first().copied().unwrap_or(1_000_000);
    let size = nums.get(1).copied().unwrap_or(64) as usize;
    let name = format!("bench-{}-publish-loop", std::process::id());
    let mut cfg = Config::default().memory_limit(16 << 20).checksum(checksum);
    if block {
        cfg = cfg.overflow(Overflow::Block(Duration::from_secs(10)));
    }
    let tb = TempBus::create(&name, &cfg).expect("create bus");
    let bus = tb.bus();
    let stop = AtomicBool::new(false);
    let payload = vec![7u8; size];
    std::thread::scope(|s| {
        let reader = spin_sub.then(|| {
            let mut sub = tb.spin_subscriber().expect("subscribe");
            let stop = &stop;
            s.spawn(move || {
                let (mut n, mut calls) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    calls += 1;
                    if recv_many {
                        n += sub.recv_many(4096, Duration::from_millis(10), |_| ()).expect("recv") as u64;
                    } else if sub.recv_timeout(Duration::from_millis(10)).expect("recv").is_some() {
                        n += 1;
                    }
                }
                if recv_many {
                    println!(
                        "recv_many: {calls} calls, {:.1} frames per call",
                        n as f64 / calls as f64
                    );
                }
                (n, sub.missed())
            })
        });
        let batch: Vec<&[u8]> = vec![&payload; many.unwrap_or(1)];
        let t = Instant::now();
        match many {
            None => {
                for _ in 0..frames {
                    bus.publish("bench.data", &payload).expect("publish");
                }
            }
            Some(n) => {
                let mut left = frames as usize;
                while left > 0 {
                    let k = left.min(n);
                    bus.publish_many("bench.data", &batch[..k]).expect("publish_many");
                    left -= k;
                }
            }
        }
        let dt = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        println!(
            "{frames} publishes of {size} B in {dt:?}: {:.2} M/s, {:.1} ns each",
            frames as f64 / dt.as_secs_f64() / 1e6,
            dt.as_nanos() as f64 / frames as f64
        );
        if let Some(r) = reader {
            let (n, missed) = r.join().expect("reader");
            println!("spinning subscriber: delivered {n}, missed {missed}");
        }
    });
}
