//! The reader alone, against the memory floor: how long a subscriber takes
//! per frame to drain a backlog that another core has just written, next
//! to a plain sequential read of the same number of bytes written the same
//! way (what moving those bytes between the cores costs by itself).
//!
//! ```text
//! drain [PAYLOAD_BYTES] [--same-cpu] [--rounds N] [--mib M] [--ids] [--recv-many]
//! ./target/release/drain 64             # 64 B payloads, 40 MiB per round, 7 rounds
//! ```
//!
//! Each round: a thread pinned to CPU 0 publishes `M` MiB worth of frames
//! (topic `bench.data`) into a bus that holds them all, then a thread pinned
//! to CPU 1 (CPU 0 with `--same-cpu`) receives every one with `try_recv`
//! and sums its payload; then CPU 0 writes as many bytes into a private
//! buffer and CPU 1 sums them with 8-byte loads (the floor). A round that
//! loses a frame fails. `--ids` publishes with a root id, so frames store
//! their correlation ids (48 more bytes each). `--recv-many` receives with
//! `Subscriber::recv_many` (up to 4096 frames per call) instead. The first round is a
//! warm-up; the medians of the others are printed last.

use std::time::{Duration, Instant};

use shmbus::frame::frame_len;
use shmbus::{Config, Meta};
use shmbus_benches::harness::{median, pin_current_thread};
use shmbus_benches::TempBus;

const TOPIC: &str = "bench.data";

struct Args {
    size: usize,
    reader_cpu: usize,
    rounds: usize,
    mib: usize,
    ids: bool,
    recv_many: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        size: 64,
        reader_cpu: 1,
        rounds: 7,
        mib: 40,
        ids: false,
        recv_many: false,
    };
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>, what: &str| -> Result<usize, String> {
        v.and_then(|v| v.parse().ok()).ok_or(format!("{what} needs a number"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--same-cpu" => a.reader_cpu = 0,
            "--ids" => a.ids = true,
            "--recv-many" => a.recv_many = true,
            "--rounds" => a.rounds = num(it.next(), "--rounds")?.max(2),
            "--mib" => a.mib = num(it.next(), "--mib")?.max(1),
            _ => a.size = arg.parse().map_err(|_| format!("unknown argument {arg:?}"))?,
        }
    }
    Ok(a)
}

/// ns per frame to publish and to drain `frames` frames (one round).
fn bus_round(tb: &TempBus, a: &Args, frames: usize) -> Result<(f64, f64), String> {
    let bus = tb.bus();
    let mut sub = tb.spin_subscriber().map_err(|e| e.to_string())?;
    let payload: Vec<u8> = (0..a.size).map(|i| i as u8).collect();
    let meta = Meta::default().root_id(u128::from(a.ids));
    let (reader_cpu, many) = (a.reader_cpu, a.recv_many);
    std::thread::scope(|s| {
        let publish = s.spawn(|| -> Result<f64, String> {
            pin_current_thread(0)?;
            let t = Instant::now();
            for _ in 0..frames {
                bus.publish_with(&meta, TOPIC, &payload).map_err(|e| e.to_string())?;
            }
            Ok(t.elapsed().as_nanos() as f64 / frames as f64)
        });
        let publish = publish.join().expect("publisher thread")?;
        let drain = s.spawn(move || -> Result<(f64, u64), String> {
            pin_current_thread(reader_cpu)?;
            let t = Instant::now();
            let (mut n, mut sum) = (0, 0u64);
            let add = |sum: u64, f: &shmbus::Frame| f.payload().iter().fold(sum, |s, &b| s.wrapping_add(u64::from(b)));
            while n < frames {
                let got = if many {
                    sub.recv_many(4096, Duration::ZERO, |f| sum = add(sum, &f))
                        .map_err(|e| e.to_string())?
                } else if let Some(f) = sub.try_recv().map_err(|e| e.to_string())? {
                    sum = add(sum, &f);
                    1
                } else {
                    0
                };
                n += got;
                if got == 0 && (sub.missed() > 0 || sub.lag() == 0) {
                    return Err(format!(
                        "lost frames: {n} of {frames} received, {} missed",
                        sub.missed()
                    ));
                }
            }
            Ok((t.elapsed().as_nanos() as f64 / frames as f64, sum))
        });
        let (drain, sum) = drain.join().expect("drain thread")?;
        let expect = frames as u64 * payload.iter().map(|&b| u64::from(b)).sum::<u64>();
        if sum != expect {
            return Err(format!("payload sum {sum}, expected {expect}"));
        }
        Ok((publish, drain))
    })
}

/// ns per `frame` bytes to read `frames * frame` bytes CPU 0 has just written.
fn floor_round(a: &Args, frames: usize, frame: usize) -> Result<f64, String> {
    let mut buf = vec![0u64; frames * frame / 8];
    std::thread::scope(|s| {
        s.spawn(|| -> Result<(), String> {
            pin_current_thread(0)?;
            for (i, w) in buf.iter_mut().enumerate() {
                *w = i as u64;
            }
            Ok(())
        })
        .join()
        .expect("writer thread")
    })?;
    let reader_cpu = a.reader_cpu;
    std::thread::scope(|s| {
        s.spawn(|| -> Result<f64, String> {
            pin_current_thread(reader_cpu)?;
            let t = Instant::now();
            let sum = buf.iter().fold(0u64, |s, &w| s.wrapping_add(w));
            let dt = t.elapsed().as_nanos() as f64 / frames as f64;
            std::hint::black_box(sum);
            Ok(dt)
        })
        .join()
        .expect("reader thread")
    })
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("drain: {e}");
            std::process::exit(2);
        }
    };
    let frame = frame_len(TOPIC.len(), a.size, a.ids);
    let frames = (a.mib << 20) / frame;
    let name = format!("bench-{}-drain", std::process::id());
    // Twice the data: the ring keeps (P-1)/P of it, more than one round.
    let cfg = Config::default().memory_limit(((2 * a.mib + 4) as u64) << 20);
    let tb = match TempBus::create(&name, &cfg) {
        Ok(tb) => tb,
        Err(e) => {
            eprintln!("drain: create bus: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "{} B payload, {frame} B frames{}, {frames} frames ({} MiB) per round, reader on CPU {}",
        a.size,
        if a.ids { " (with ids)" } else { "" },
        a.mib,
        a.reader_cpu
    );
    let (mut pubs, mut drains, mut floors) = (vec![], vec![], vec![]);
    for round in 0..a.rounds {
        let r = bus_round(&tb, &a, frames).and_then(|(p, d)| Ok((p, d, floor_round(&a, frames, frame)?)));
        let (p, d, f) = match r {
            Ok(r) => r,
            Err(e) => {
                eprintln!("drain: round {round}: {e}");
                std::process::exit(1);
            }
        };
        println!("round {round}: publish {p:.1} ns/frame, drain {d:.1} ns/frame, floor {f:.1} ns/frame");
        if round > 0 {
            pubs.push(p);
            drains.push(d);
            floors.push(f);
        }
    }
    let (d, f) = (median(&mut drains), median(&mut floors));
    println!(
        "median: publish {:.1} ns, drain {d:.1} ns, floor {f:.1} ns per frame (drain / floor x{:.2})",
        median(&mut pubs),
        d / f
    );
}
