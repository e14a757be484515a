//! Small helpers of the harness: clock, CPU affinity, unique bus names with
//! removal guards, the child spec encoding and latency histograms.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use shmbus::{Bus, Config};

use crate::TempBus;

/// Topic every harness frame is published on.
pub(crate) const TOPIC: &str = "bench.data";

/// How often an idle group worker gives its CPU away: every this many
/// empty polls (see [`group_idle`]).
pub(crate) const GROUP_YIELD_EVERY: u32 = 64;

/// One empty poll of a group worker, the same for every peer: spin, and
/// every [`GROUP_YIELD_EVERY`]th time yield the CPU. The group scenario runs
/// three busy processes (or threads) on two vCPUs; workers that only spin
/// take a third of the CPU from the producer, which then bounds the whole
/// group (BENCHMARKS.md, "Third session").
pub(crate) fn group_idle(empty_polls: u32) {
    if empty_polls.is_multiple_of(GROUP_YIELD_EVERY) {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// Nanoseconds of `CLOCK_MONOTONIC`: one clock for all processes of the
/// machine, so a producer's start and a subscriber's end can be subtracted.
pub(crate) fn mono_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// CPU time of the calling thread, ns (`CLOCK_THREAD_CPUTIME_ID`: a system
/// call, read only around a measured loop). Unlike a span of
/// [`mono_ns`] it leaves out the time the thread waited for a CPU, which
/// on two vCPUs shared by five busy processes (fanout) is most of it.
pub(crate) fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// A producer's publish loop, measured: started right before the first
/// publish, finished right after the last, reported as `t0` and `t1`
/// (`CLOCK_MONOTONIC`), `cpu_ns` (the thread's CPU time in between) and
/// `published`, the fields the parent reads from every producer peer.
pub(crate) struct PublishSpan {
    t0: u64,
    cpu0: u64,
}

impl PublishSpan {
    pub(crate) fn start() -> PublishSpan {
        PublishSpan {
            t0: mono_ns(),
            cpu0: thread_cpu_ns(),
        }
    }

    pub(crate) fn finish(self, published: u64) -> Kv {
        let (t1, cpu1) = (mono_ns(), thread_cpu_ns());
        Kv::new()
            .set("t0", self.t0)
            .set("t1", t1)
            .set("cpu_ns", cpu1.saturating_sub(self.cpu0))
            .set("published", published)
    }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call,
    // and both clocks used here exist on every Linux.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    debug_assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPUs this process may run on.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero `cpu_set_t` is a valid (empty) set; the kernel writes
    // at most `size_of::<cpu_set_t>()` bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is valid and writable, and the size passed is its size.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `i < CPU_SETSIZE`, the bound `CPU_ISSET` requires.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// Pin the calling thread (on Linux, `sched_setaffinity(0)` is per thread).
pub fn pin_current_thread(cpu: usize) -> Result<(), String> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(format!("cpu {cpu} out of range"));
    }
    // SAFETY: an all-zero `cpu_set_t` is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu < CPU_SETSIZE` was checked above; `set` is valid.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid set of the size passed; pid 0 is this thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(format!(
            "sched_setaffinity(cpu {cpu}): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

static NEXT_NAME: AtomicU64 = AtomicU64::new(0);
static LABEL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Label every bus this process's harness creates (`shmbus bench NAME`).
/// Set once, before the first bus; later calls are ignored.
pub(crate) fn set_label(label: &str) {
    let _ = LABEL.set(label.to_string());
}

/// Prefix of every bus name this process's harness creates.
pub(crate) fn name_prefix() -> String {
    format!("bench-{}-", std::process::id())
}

/// A unique name (bus or iceoryx2 service) for this harness process.
pub(crate) fn unique_name(tag: &str) -> String {
    let n = NEXT_NAME.fetch_add(1, Ordering::Relaxed);
    match LABEL.get() {
        Some(label) => format!("{}{n}-{label}-{tag}", name_prefix()),
        None => format!("{}{n}-{tag}", name_prefix()),
    }
}

/// Create a bus with a fresh unique name for this harness process.
pub(crate) fn temp_bus(tag: &str, cfg: &Config) -> Result<TempBus, String> {
    let name = unique_name(tag);
    TempBus::create(&name, cfg).map_err(|e| format!("create bus {name}: {e}"))
}

/// Buses of this harness process still present (should be none at the end).
pub(crate) fn leftover_buses() -> Vec<String> {
    let prefix = name_prefix();
    Bus::list()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// `key=value` pairs separated by spaces: the child spec (in an environment
/// variable) and the child's `RESULT` line. Values contain no spaces.
#[derive(Clone, Debug, Default)]
pub(crate) struct Kv(pub(crate) BTreeMap<String, String>);

impl Kv {
    pub(crate) fn new() -> Kv {
        Kv::default()
    }
    pub(crate) fn set(mut self, k: &str, v: impl ToString) -> Kv {
        self.0.insert(k.to_string(), v.to_string());
        self
    }
    /// Pin the child to `cpu` (the `cpu` key every child honours), if any.
    pub(crate) fn pin(self, cpu: Option<usize>) -> Kv {
        match cpu {
            Some(c) => self.set("cpu", c),
            None => self,
        }
    }
    pub(crate) fn encode(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
    pub(crate) fn decode(s: &str) -> Result<Kv, String> {
        let mut m = BTreeMap::new();
        for tok in s.split_whitespace() {
            let (k, v) = tok.split_once('=').ok_or_else(|| format!("bad token {tok:?}"))?;
            m.insert(k.to_string(), v.to_string());
        }
        Ok(Kv(m))
    }
    pub(crate) fn str(&self, k: &str) -> Result<&str, String> {
        self.0.get(k).map(String::as_str).ok_or_else(|| format!("missing {k}"))
    }
    pub(crate) fn num(&self, k: &str) -> Result<u64, String> {
        self.str(k)?.parse().map_err(|e| format!("{k}: {e}"))
    }
    pub(crate) fn opt(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    /// `k` as a number if present (an error only if present and not one).
    pub(crate) fn opt_num(&self, k: &str) -> Result<Option<u64>, String> {
        self.opt(k).map(|_| self.num(k)).transpose()
    }
}

/// A latency histogram in nanoseconds (1 ns .. 100 s, 3 significant digits).
pub(crate) fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// Round trips per window when [`RttLog`] looks for slow episodes.
pub(crate) const EPISODE_WINDOW: usize = 100;

/// The one-way latencies of one ping-pong run, in order.
///
/// Besides the histogram of every sample, it separates *slow episodes*. On
/// a shared VM the host sometimes places the two vCPUs where a cache-line
/// transfer costs 2-3x more, for stretches of hundreds to thousands of round
/// trips. Those stretches, not isolated slow round trips, make the p99 of a
/// run (BENCHMARKS.md, fourth session: 92-99 % of the round trips over
/// 400 ns had another one within 3 round trips). A window of
/// [`EPISODE_WINDOW`] round trips belongs to a slow episode when its median
/// is more than twice the 10th percentile of all window medians (the run's
/// fast level); the *steady* histogram holds the samples of the other windows.
/// A run can also sit in the slow placement from start to end: the summary
/// compares the runs' fast levels and counts such a run as one episode.
pub(crate) struct RttLog(Vec<u64>);

impl RttLog {
    pub(crate) fn with_capacity(n: u64) -> RttLog {
        RttLog(Vec::with_capacity(usize::try_from(n).unwrap_or(0)))
    }

    /// Record one round trip's one-way latency (half the round trip).
    pub(crate) fn record(&mut self, one_way_ns: u64) {
        self.0.push(one_way_ns.max(1));
    }

    /// The samples a pinger of another language reported in order, as
    /// `v1,v2,...` (`-` for none).
    pub(crate) fn decode(s: &str) -> Result<RttLog, String> {
        let mut log = RttLog(Vec::new());
        if s != "-" {
            for v in s.split(',') {
                log.record(v.parse().map_err(|e| format!("samples: {v:?}: {e}"))?);
            }
        }
        Ok(log)
    }

    /// Number of samples.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The histogram of every sample, the steady one (outside slow
    /// episodes), and the run's fast level in ns (the 10th percentile of the
    /// window medians).
    pub(crate) fn histograms(&self) -> (Histogram<u64>, Histogram<u64>, u64) {
        let (mut all, mut steady) = (new_hist(), new_hist());
        let median = |w: &[u64]| {
            let mut v = w.to_vec();
            v.sort_unstable();
            v[v.len() / 2]
        };
        let medians: Vec<u64> = self.0.chunks(EPISODE_WINDOW).map(median).collect();
        let mut sorted = medians.clone();
        sorted.sort_unstable();
        let fast = sorted.get(sorted.len() / 10).copied().unwrap_or(0);
        for (w, &m) in self.0.chunks(EPISODE_WINDOW).zip(&medians) {
            let slow = m > fast.saturating_mul(2);
            for &x in w {
                all.saturating_record(x);
                if !slow {
                    steady.saturating_record(x);
                }
            }
        }
        (all, steady, fast)
    }

    /// `kv` with this run's histograms and fast level added, for a pinger
    /// child's `RESULT` line (read back by `harness::ping_pong`).
    pub(crate) fn add_to(&self, kv: Kv) -> Kv {
        let (all, steady, fast) = self.histograms();
        kv.set("hist", hist_encode(&all))
            .set("steady", hist_encode(&steady))
            .set("fast_ns", fast)
    }
}

/// Histogram as `value:count,...` (for the child's `RESULT` line).
pub(crate) fn hist_encode(h: &Histogram<u64>) -> String {
    let parts: Vec<String> = h
        .iter_recorded()
        .map(|v| format!("{}:{}", v.value_iterated_to(), v.count_at_value()))
        .collect();
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(",")
    }
}

/// Add the encoded histogram `s` into `h`.
pub(crate) fn hist_merge_encoded(h: &mut Histogram<u64>, s: &str) -> Result<(), String> {
    if s == "-" {
        return Ok(());
    }
    for pair in s.split(',') {
        let (v, c) = pair.split_once(':').ok_or("bad histogram")?;
        let v: u64 = v.parse().map_err(|e| format!("histogram: {e}"))?;
        let c: u64 = c.parse().map_err(|e| format!("histogram: {e}"))?;
        h.saturating_record_n(v.max(1), c);
    }
    Ok(())
}

/// Write `i` into the first (up to) 8 bytes of `payload`.
#[inline]
pub(crate) fn stamp(payload: &mut [u8], i: u64) {
    let n = payload.len().min(8);
    payload[..n].copy_from_slice(&i.to_le_bytes()[..n]);
}

/// Fill `payload` with the harness pattern: byte `j` is
/// `(j * 31 + 7) ^ (j >> 8)`, truncated to 8 bits (bench_c.c and
/// python/bench/peer.py use the same). Producers fill their payload once,
/// then [`stamp`] its first 8 bytes per frame; every throughput subscriber
/// checks the rest with [`payload_intact`].
pub(crate) fn fill_pattern(payload: &mut [u8]) {
    for (j, b) in payload.iter_mut().enumerate() {
        *b = (j.wrapping_mul(31).wrapping_add(7) ^ (j >> 8)) as u8;
    }
}

/// Whether a received payload has the length of `pattern` and carries it
/// after the stamp. This reads every byte, as a consumer that uses its
/// data does: a peer that hands out a reference into shared memory
/// (iceoryx2) would otherwise be timed moving one cache line per frame
/// while a peer that copies (shmbus, crossbeam) moves them all.
#[inline]
pub(crate) fn payload_intact(payload: &[u8], pattern: &[u8]) -> bool {
    payload.len() == pattern.len() && payload.get(8..) == pattern.get(8..)
}

/// Read the stamp written by [`stamp`] (truncated to the payload length).
#[inline]
pub(crate) fn read_stamp(payload: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = payload.len().min(8);
    b[..n].copy_from_slice(&payload[..n]);
    u64::from_le_bytes(b)
}

/// Remove buses left by harness processes that are gone (killed by a signal,
/// when no guard could run). Returns the names removed.
pub(crate) fn remove_stale_buses() -> Vec<String> {
    let mut removed = Vec::new();
    for name in Bus::list().unwrap_or_default() {
        let Some(pid) = name
            .strip_prefix("bench-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 sends nothing; it only asks whether `pid` exists.
        let alive =
            unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive && Bus::remove(&name).is_ok() {
            removed.push(name);
        }
    }
    removed
}
