//! The in-process baseline: crossbeam `ArrayQueue`s between threads, with
//! the same payload sizes and counts as the shmbus scenarios.
//!
//! Differences that matter when reading the ratios: the queues apply
//! back-pressure (a full queue makes the producer spin), so nothing is ever
//! lost; fan-out uses one queue per consumer (the producer pushes a copy into
//! each); the group scenario is two consumers popping one queue. Waiting
//! consumers spin, or for the park variants spin then `std::thread::park`,
//! with the producer calling `unpark` after every push.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Barrier, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use shmbus::WaitStrategy;

use super::util::{
    fill_pattern, group_idle, mono_ns, payload_intact, pin_current_thread, read_stamp, stamp, thread_cpu_ns, RttLog,
};
use super::{Flow, FlowOutcome, LatencyOutcome};

/// Run `$body` with `N` bound to the payload size (one of the supported sizes).
macro_rules! with_size {
    ($size:expr, $f:ident ( $($arg:expr),* )) => {
        match $size {
            8 => $f::<8>($($arg),*),
            64 => $f::<64>($($arg),*),
            1024 => $f::<1024>($($arg),*),
            16384 => $f::<16384>($($arg),*),
            s => Err(format!("crossbeam baseline: unsupported payload size {s}")),
        }
    };
}

/// Ping-pong latency between two threads.
pub(crate) fn latency(
    size: usize,
    n: u64,
    warmup: u64,
    wait: WaitStrategy,
    cpus: Option<(usize, usize)>,
    timeout: Duration,
) -> Result<LatencyOutcome, String> {
    with_size!(size, latency_n(n, warmup, wait, cpus, timeout))
}

/// Throughput-family scenarios.
/// `cpus`: (producer CPU, consumer CPU) to pin the threads to, or `None`.
pub(crate) fn flow(
    size: usize,
    flow: Flow,
    cpus: Option<(usize, usize)>,
    frames: u64,
    timeout: Duration,
) -> Result<FlowOutcome, String> {
    with_size!(size, flow_n(flow, cpus, frames, timeout))
}

fn capacity(size: usize) -> usize {
    ((16usize << 20) / size).clamp(1024, 65536)
}

/// Pop, waiting per `wait`; `None` at the deadline.
fn pop_wait<T>(q: &ArrayQueue<T>, wait: WaitStrategy, deadline: Instant) -> Option<T> {
    if let Some(x) = q.pop() {
        return Some(x);
    }
    let start = Instant::now();
    let budget = match wait {
        WaitStrategy::Spin => None,
        WaitStrategy::SpinThenPark(b) => Some(b),
        WaitStrategy::Park => Some(Duration::ZERO),
    };
    let mut i = 0u32;
    loop {
        if let Some(x) = q.pop() {
            return Some(x);
        }
        i = i.wrapping_add(1);
        if i & 63 == 0 {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            if budget.is_some_and(|b| now - start >= b) {
                break;
            }
        }
        std::hint::spin_loop();
    }
    loop {
        if let Some(x) = q.pop() {
            return Some(x);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

fn push_spin<T>(q: &ArrayQueue<T>, mut x: T, deadline: Instant) -> Result<(), String> {
    let mut i = 0u32;
    loop {
        match q.push(x) {
            Ok(()) => return Ok(()),
            Err(back) => x = back,
        }
        i = i.wrapping_add(1);
        if i & 1023 == 0 && Instant::now() >= deadline {
            return Err("crossbeam: queue stayed full until the deadline".into());
        }
        std::hint::spin_loop();
    }
}

fn latency_n<const N: usize>(
    n: u64,
    warmup: u64,
    wait: WaitStrategy,
    cpus: Option<(usize, usize)>,
    timeout: Duration,
) -> Result<LatencyOutcome, String> {
    let to_pong: ArrayQueue<[u8; N]> = ArrayQueue::new(16);
    let to_ping: ArrayQueue<[u8; N]> = ArrayQueue::new(16);
    let ping_thread: OnceLock<Thread> = OnceLock::new();
    let pong_thread: OnceLock<Thread> = OnceLock::new();
    let barrier = Barrier::new(2);
    let parks = wait != WaitStrategy::Spin;
    let deadline = Instant::now() + timeout;
    std::thread::scope(|s| {
        let pong = s.spawn(|| -> Result<(), String> {
            let pinned = cpus.map(|(_, c)| pin_current_thread(c)).transpose();
            pong_thread.set(std::thread::current()).expect("set once");
            barrier.wait();
            pinned?;
            let ping = ping_thread.get().expect("set before the barrier");
            for i in 0..warmup + n {
                let x = pop_wait(&to_pong, wait, deadline).ok_or_else(|| format!("pong: timeout at {i}"))?;
                push_spin(&to_ping, x, deadline)?;
                if parks {
                    ping.unpark();
                }
            }
            Ok(())
        });
        let ping = s.spawn(|| -> Result<(RttLog, u64), String> {
            let pinned = cpus.map(|(c, _)| pin_current_thread(c)).transpose();
            ping_thread.set(std::thread::current()).expect("set once");
            barrier.wait();
            pinned?;
            let pong = pong_thread.get().expect("set before the barrier");
            let mut log = RttLog::with_capacity(n);
            let mut from = mono_ns();
            let mut buf = [0u8; N];
            for i in 0..warmup + n {
                if i == warmup {
                    from = mono_ns();
                }
                stamp(&mut buf, i);
                let t0 = Instant::now();
                push_spin(&to_pong, buf, deadline)?;
                if parks {
                    pong.unpark();
                }
                let x = pop_wait(&to_ping, wait, deadline).ok_or_else(|| format!("ping: timeout at {i}"))?;
                let dt = t0.elapsed();
                if read_stamp(&x) != i {
                    return Err(format!("crossbeam round trip {i}: wrong echo"));
                }
                if i >= warmup {
                    log.record(dt.as_nanos() as u64 / 2);
                }
            }
            Ok((log, mono_ns() - from))
        });
        let (log, elapsed_ns) = ping.join().map_err(|_| "ping thread panicked".to_string())??;
        pong.join().map_err(|_| "pong thread panicked".to_string())??;
        let (hist, steady, fast_ns) = log.histograms();
        Ok(LatencyOutcome {
            hist,
            steady,
            fast_ns,
            elapsed_ns,
            round_trips: n,
        })
    })
}

fn flow_n<const N: usize>(
    flow: Flow,
    cpus: Option<(usize, usize)>,
    frames: u64,
    timeout: Duration,
) -> Result<FlowOutcome, String> {
    let (producers, queues, consumers) = match flow {
        Flow::Throughput => (1usize, 1usize, 1usize),
        Flow::Mpsc => (2, 1, 1),
        Flow::Fanout => (1, 4, 4),
        Flow::Group => (1, 1, 2),
    };
    let per_producer = frames / producers as u64;
    let total = per_producer * producers as u64;
    let qs: Vec<ArrayQueue<[u8; N]>> = (0..queues).map(|_| ArrayQueue::new(capacity(N))).collect();
    let barrier = Barrier::new(producers + consumers);
    let taken = AtomicU64::new(0);
    let deadline = Instant::now() + timeout;
    let mut pattern = [0u8; N];
    fill_pattern(&mut pattern);
    let pattern = &pattern;
    std::thread::scope(|s| {
        let mut prod = Vec::new();
        for _ in 0..producers {
            prod.push(s.spawn(|| -> Result<(u64, u64, u64), String> {
                let pinned = cpus.map(|(c, _)| pin_current_thread(c)).transpose();
                barrier.wait();
                pinned?;
                let (t0, cpu0) = (mono_ns(), thread_cpu_ns());
                let mut buf = *pattern;
                for i in 0..per_producer {
                    stamp(&mut buf, i);
                    for q in &qs {
                        push_spin(q, buf, deadline)?;
                    }
                }
                Ok((t0, mono_ns(), thread_cpu_ns() - cpu0))
            }));
        }
        let mut cons = Vec::new();
        for c in 0..consumers {
            let q = &qs[c % queues];
            let shared = queues == 1 && consumers > 1;
            let (barrier, taken) = (&barrier, &taken);
            cons.push(s.spawn(move || -> Result<(u64, u64), String> {
                let pinned = cpus.map(|(_, c)| pin_current_thread(c)).transpose();
                barrier.wait();
                pinned?;
                let mut got = 0u64;
                let mut spins = 0u32;
                loop {
                    if shared && taken.load(Relaxed) >= total {
                        break;
                    }
                    if !shared && got >= total {
                        break;
                    }
                    match q.pop() {
                        Some(x) => {
                            if !payload_intact(&x, pattern) {
                                return Err(format!("crossbeam consumer: frame {got} had a wrong payload"));
                            }
                            got += 1;
                            if shared {
                                taken.fetch_add(1, Relaxed);
                            }
                        }
                        None => {
                            spins = spins.wrapping_add(1);
                            if spins & 1023 == 0 && Instant::now() >= deadline {
                                return Err(format!("crossbeam consumer: {got} of {total} at the deadline"));
                            }
                            if shared {
                                group_idle(spins); // the group scenario, as for shmbus
                            } else {
                                std::hint::spin_loop();
                            }
                        }
                    }
                }
                Ok((mono_ns(), got))
            }));
        }
        let (mut start, mut producer_ns, mut producer_cpu_ns) = (u64::MAX, 0u64, 0u64);
        for p in prod {
            let (t0, t1, cpu) = p.join().map_err(|_| "producer thread panicked".to_string())??;
            start = start.min(t0);
            producer_ns += t1.saturating_sub(t0);
            producer_cpu_ns += cpu;
        }
        let mut end = 0u64;
        let mut delivered = 0u64;
        for c in cons {
            let (t, got) = c.join().map_err(|_| "consumer thread panicked".to_string())??;
            end = end.max(t);
            delivered += got;
        }
        Ok(FlowOutcome {
            published: total,
            delivered,
            missed: 0,
            abandoned: 0,
            elapsed_ns: end.saturating_sub(start).max(1),
            producer_ns,
            producer_cpu_ns: Some(producer_cpu_ns),
        })
    })
}
