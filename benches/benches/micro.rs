//! Criterion micro-benchmarks of the in-process shmbus API, with a crossbeam
//! `ArrayQueue` baseline where the comparison means something.
//!
//! ```text
//! cargo bench -p shmbus-benches --bench micro -- --save-baseline main   # record
//! cargo bench -p shmbus-benches --bench micro -- --baseline main        # compare
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use shmbus::{Bus, Config, Filter, Start, SubscribeOptions, Subscriber, WaitStrategy};
use shmbus_benches::TempBus;

const TOPIC: &str = "events.process.start";
const OTHER: &str = "events.file.write";

/// A bus named for this process and `tag`, removed on drop.
fn bus_with(tag: &str, cfg: &Config) -> TempBus {
    TempBus::create(&format!("bench-micro-{}-{tag}", std::process::id()), cfg).expect("create bus")
}

fn new_bus(tag: &str, memory: u64) -> TempBus {
    bus_with(tag, &Config::default().memory_limit(memory))
}

fn spin_sub(bus: &Bus, filter: Filter) -> shmbus::Subscriber {
    bus.subscribe_with(
        filter,
        SubscribeOptions {
            start: Start::Newest,
            wait: WaitStrategy::Spin,
        },
    )
    .expect("subscribe")
}

fn publish(c: &mut Criterion) {
    let payload = [7u8; 64];
    let mut g = c.benchmark_group("publish_64B");
    g.throughput(Throughput::Elements(1));
    let tb = new_bus("publish", 16 << 20);
    g.bench_function("shmbus/publish", |b| {
        b.iter(|| tb.bus().publish(TOPIC, black_box(&payload)).expect("publish"))
    });
    // Issue #5: the same publish on a bus with `Config::checksum(true)`
    // (CRC32C of header, topic and payload, computed by the producer).
    let tb_crc = bus_with("publish-crc", &Config::default().memory_limit(16 << 20).checksum(true));
    g.bench_function("shmbus/publish_checksum", |b| {
        b.iter(|| tb_crc.bus().publish(TOPIC, black_box(&payload)).expect("publish"))
    });
    g.bench_function("shmbus/claim_commit", |b| {
        b.iter(|| {
            let mut claim = tb.bus().claim(TOPIC, 64).expect("claim");
            claim.payload_mut().copy_from_slice(black_box(&payload));
            claim.commit()
        })
    });
    let q: ArrayQueue<[u8; 64]> = ArrayQueue::new(1024);
    g.bench_function("crossbeam/push", |b| {
        // Push into an emptied queue; draining happens outside the timing.
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(q.capacity() as u64);
                while q.pop().is_some() {}
                let t = Instant::now();
                for _ in 0..n {
                    q.push(black_box(payload)).expect("room");
                }
                total += t.elapsed();
                left -= n;
            }
            total
        })
    });
    g.finish();
}

/// Issue #5: publish of a 1 KiB payload, without and with checksums.
fn publish_1k(c: &mut Criterion) {
    let payload = [7u8; 1024];
    let mut g = c.benchmark_group("publish_1KiB");
    g.throughput(Throughput::Elements(1));
    let tb = new_bus("publish-1k", 16 << 20);
    g.bench_function("shmbus/publish", |b| {
        b.iter(|| tb.bus().publish(TOPIC, black_box(&payload)).expect("publish"))
    });
    let tb_crc = bus_with(
        "publish-1k-crc",
        &Config::default().memory_limit(16 << 20).checksum(true),
    );
    g.bench_function("shmbus/publish_checksum", |b| {
        b.iter(|| tb_crc.bus().publish(TOPIC, black_box(&payload)).expect("publish"))
    });
    g.finish();
}

/// A bus and a subscriber at its tail that live for a whole benchmark, so
/// every sample reads a bus in its steady state, as a long-lived consumer
/// does. (Until the tenth session each sample created a fresh 64 MiB bus:
/// since buses are allocated and mapped whole at create, the receives timed
/// right after that ran 25-40 % slower than on a bus in use, which no
/// consumer sees for long.)
struct Reader {
    tb: TempBus,
    sub: Subscriber,
}

impl Reader {
    fn new(tag: &str, cfg: &Config, filter: Filter) -> Reader {
        let tb = bus_with(tag, cfg);
        let sub = spin_sub(tb.bus(), filter);
        Reader { tb, sub }
    }
}

/// Time `iters` receives of ready `size`-byte frames from a bus with or
/// without checksums (verified by the subscriber when on). Publishing
/// happens outside the timed section, in chunks that fit the ring.
fn recv_ready(r: &mut Reader, size: usize, iters: u64) -> Duration {
    let payload = vec![1u8; size];
    let bus = r.tb.bus();
    let total = timed_recvs(&mut r.sub, iters, || {
        bus.publish(TOPIC, &payload).expect("publish");
    });
    assert_eq!(r.sub.corrupt(), 0, "checksum mismatch");
    total
}

/// Time `iters` receives on `sub`; before each chunk of receives, `fill` is
/// called once per receive to publish what it consumes. Publishing happens
/// outside the timed section, in chunks that fit the ring.
fn timed_recvs(sub: &mut Subscriber, iters: u64, mut fill: impl FnMut()) -> Duration {
    let chunk = 2_000u64;
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(chunk);
        for _ in 0..n {
            fill();
        }
        let t = Instant::now();
        for _ in 0..n {
            let f = sub.try_recv().expect("recv").expect("a frame");
            black_box(f.payload()[0]);
        }
        total += t.elapsed();
        left -= n;
    }
    assert_eq!(sub.missed(), 0, "ring too small for a chunk");
    total
}

/// Issue #5: receive cost without and with checksum verification.
fn recv_checksum(c: &mut Criterion) {
    for (group, size) in [("recv_64B", 64usize), ("recv_1KiB", 1024)] {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(1));
        for checksum in [false, true] {
            let name = if checksum {
                "shmbus/try_recv_checksum"
            } else {
                "shmbus/try_recv"
            };
            let tag = format!("recv-{size}-{}", if checksum { "crc" } else { "plain" });
            let cfg = Config::default().memory_limit(64 << 20).checksum(checksum);
            let mut r = Reader::new(&tag, &cfg, Filter::all());
            g.bench_function(name, |b| b.iter_custom(|iters| recv_ready(&mut r, size, iters)));
        }
        g.finish();
    }
}

fn round(c: &mut Criterion) {
    let payload = [7u8; 64];
    let mut g = c.benchmark_group("round_64B");
    g.throughput(Throughput::Elements(1));
    let tb = new_bus("round", 16 << 20);
    let mut sub = spin_sub(tb.bus(), Filter::all());
    g.bench_function("shmbus/publish+try_recv", |b| {
        b.iter(|| {
            tb.bus().publish(TOPIC, black_box(&payload)).expect("publish");
            let f = sub.try_recv().expect("recv").expect("a frame");
            black_box(f.payload()[0])
        })
    });
    let q: ArrayQueue<[u8; 64]> = ArrayQueue::new(1024);
    g.bench_function("crossbeam/push+pop", |b| {
        b.iter(|| {
            q.push(black_box(payload)).expect("room");
            black_box(q.pop().expect("an item")[0])
        })
    });
    g.finish();
}

/// Time `iters` receives of matching frames, each preceded by `skip`
/// non-matching frames the subscriber must step over. Publishing happens
/// outside the timed section, in chunks that fit the ring.
fn recv_filtered(r: &mut Reader, skip: usize, iters: u64) -> Duration {
    let payload = [1u8; 64];
    let bus = r.tb.bus();
    timed_recvs(&mut r.sub, iters, || {
        for _ in 0..skip {
            bus.publish(OTHER, &payload).expect("publish");
        }
        bus.publish(TOPIC, &payload).expect("publish");
    })
}

fn filtered(c: &mut Criterion) {
    let mut g = c.benchmark_group("recv_filtered_64B");
    g.throughput(Throughput::Elements(1));
    let cases = [
        ("all/no_skip", Filter::all(), 0, "f-all"),
        ("wildcard/skip9", Filter::topic("events.+.start"), 9, "f-wild"),
        ("regex/skip9", Filter::regex("^events\\.[a-z]+\\.start$"), 9, "f-re"),
    ];
    for (name, filter, skip, tag) in cases {
        let mut r = Reader::new(tag, &Config::default().memory_limit(64 << 20), filter);
        g.bench_function(name, |b| b.iter_custom(|iters| recv_filtered(&mut r, skip, iters)));
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = micro;
    config = config();
    targets = publish, publish_1k, round, filtered, recv_checksum
}
criterion_main!(micro);
