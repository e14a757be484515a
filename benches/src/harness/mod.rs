//! Cross-process benchmark harness.
//!
//! Every shmbus scenario runs in real, separate processes: the harness
//! re-executes [`std::env::current_exe`] with an environment variable naming
//! the role (ping, pong, producer, subscriber), so any binary that calls
//! [`maybe_run_child`] first thing in `main` can host it (the `harness`
//! binary of this crate, `shmbus bench`). The in-process crossbeam
//! `ArrayQueue` baseline (and iceoryx2, with the `iceoryx2` feature) is
//! measured in the same run, interleaved with shmbus (A B A B ...), over
//! many short runs; the table reports medians, min..max spreads and the
//! ratio of shmbus to crossbeam per scenario. Busy-polling latency results
//! also give, in their notes and JSON, the share of round trips spent in
//! *slow episodes* (stretches where the host placed the two vCPUs far
//! apart; see `util::RttLog`) and the percentiles outside them.
//!
//! ```no_run
//! use shmbus_benches::harness::{self, Options};
//! harness::maybe_run_child();
//! let opts = Options { scenarios: vec!["latency".into()], quick: true, ..Options::default() };
//! let results = harness::run(&opts, &mut |line| eprintln!("{line}"))?;
//! println!("{}", harness::render_table(&results));
//! # Ok::<(), String>(())
//! ```

mod baseline;
mod child;
#[cfg(feature = "iceoryx2")]
mod iceoryx;
mod util;

pub use util::pin_current_thread;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shmbus::{Config, Overflow, WaitStrategy};

use child::{start_all_exe, wait_name};
use util::{allowed_cpus, hist_merge_encoded, leftover_buses, new_hist, temp_bus, Kv, RttLog, GROUP_YIELD_EVERY};

/// Scenario names accepted in [`Options::scenarios`], in the order they run.
///
/// * `latency`: ping-pong over two buses, busy-polling, processes left to the
///   scheduler; one-way latency = round trip / 2.
/// * `latency-pinned`: the same with the two processes (threads, for the
///   baseline) pinned to two different CPUs.
/// * `latency-park`: the same with `SpinThenPark` (default budget) and with
///   `Park`, reported as `latency-park/spin-then-park` and `latency-park/park`.
/// * `throughput`: one producer process, one subscriber process.
/// * `throughput-pinned`: the same with the producer (thread, for the
///   baseline) pinned to one CPU and the subscriber to another.
/// * `mpsc`: two producers, one subscriber.
/// * `fanout`: one producer, four subscribers.
/// * `group`: one producer, a consumer group of two workers.
pub const SCENARIOS: &[&str] = &[
    "latency",
    "latency-pinned",
    "latency-park",
    "throughput",
    "throughput-pinned",
    "mpsc",
    "fanout",
    "group",
];

/// Payload sizes the harness supports (the baseline uses fixed-size arrays).
pub const PAYLOAD_SIZES: &[usize] = &[8, 64, 1024, 16384];

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Scenarios from [`SCENARIOS`]; empty means all.
    pub scenarios: Vec<String>,
    /// Payload sizes in bytes, each from [`PAYLOAD_SIZES`] (default: 64).
    pub payload_sizes: Vec<usize>,
    /// Runs per peer and scenario, interleaved A B A B (default 5).
    pub runs: usize,
    /// Measured round trips per run of the spinning latency scenarios
    /// (default 200,000; the park variants do a tenth). A warm-up of a tenth
    /// (at most 20,000) comes first and is not recorded.
    pub round_trips: u64,
    /// Frames published per run of the throughput-family scenarios
    /// (default 1,000,000; split evenly between producers for `mpsc`).
    pub frames: u64,
    /// Smoke-test sizes: one run, at most 2,000 round trips and 5,000 frames.
    pub quick: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scenarios: Vec::new(),
            payload_sizes: vec![64],
            runs: 5,
            round_trips: 200_000,
            frames: 1_000_000,
            quick: false,
        }
    }
}

/// The outcome of one scenario for one peer and payload size, over all runs.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioResult {
    /// Scenario name (from [`SCENARIOS`], park variants suffixed).
    pub scenario: String,
    /// `"shmbus"`, `"shmbus-spsc"`, `"shmbus-block"` (throughput family,
    /// `Overflow::Block`), `"shmbus-c"` (the C path, see [`C_PEER_ENV`]),
    /// `"shmbus-py"` (the Python path, see [`PY_PEER_ENV`]), their lossless
    /// twins `"shmbus-c-block"` and `"shmbus-py-block"`, `"crossbeam"`,
    /// `"iceoryx2"` or `"iceoryx2-blocking"`.
    pub peer: String,
    /// Payload size in bytes.
    pub payload: usize,
    /// Number of runs.
    pub runs: usize,
    /// Median over runs of the rate: frames delivered per second (per
    /// subscriber for `fanout`), or round trips per second for latency.
    pub median_mps: f64,
    /// Minimum and maximum of that rate over the runs.
    pub spread_mps: (f64, f64),
    /// One-way latency percentiles in ns (latency scenarios only), over the
    /// merged histogram of all runs.
    pub p50_ns: Option<f64>,
    /// 99th percentile, ns.
    pub p99_ns: Option<f64>,
    /// 99.9th percentile, ns.
    pub p999_ns: Option<f64>,
    /// Largest sample, ns.
    pub max_ns: Option<f64>,
    /// Latency only: the share of round trips in slow episodes, stretches
    /// where the host placed the two vCPUs far apart (see `util::RttLog`).
    pub slow_episode_share: Option<f64>,
    /// Latency only: the 99th percentile outside slow episodes, ns.
    pub steady_p99_ns: Option<f64>,
    /// Frames delivered over all runs (summed over subscribers), or measured
    /// round trips for latency.
    pub delivered: u64,
    /// Frames lost to eviction over all runs (summed over subscribers).
    pub missed: u64,
    /// Throughput family: the producers' own time per frame, ns (from each
    /// producer's first publish to its last, summed over producers, over
    /// the frames published; median over runs). Near `1e9 / median_mps`
    /// the producer is the limit; well below it, the readers are (or, for
    /// a peer with back-pressure, the producer waited for them and this
    /// includes the waits).
    pub producer_ns_per_frame: Option<f64>,
    /// Throughput family: the CPU time of the producers' publishing threads
    /// per frame, ns (median over runs): `producer_ns_per_frame` without the
    /// time they waited for a CPU. What a frame costs the producer even
    /// when more processes spin than there are CPUs (fanout, group, mpsc
    /// on two vCPUs). `None` for a peer that does not report it.
    pub producer_cpu_ns_per_frame: Option<f64>,
    /// Setup details: CPU placement, wait strategy, counts, bus size.
    pub note: String,
}

/// If this process was spawned as a harness child, play that role and exit;
/// otherwise return at once. Call it first thing in `main`.
pub fn maybe_run_child() {
    if let Ok(spec) = std::env::var(child::ENV) {
        std::process::exit(child::main(&spec));
    }
}

/// Shape of a throughput-family scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Throughput,
    Mpsc,
    Fanout,
    Group,
}

impl Flow {
    fn name(self) -> &'static str {
        match self {
            Flow::Throughput => "throughput",
            Flow::Mpsc => "mpsc",
            Flow::Fanout => "fanout",
            Flow::Group => "group",
        }
    }
    /// (producers, subscribers, subscribers form a group)
    fn shape(self) -> (u64, u64, bool) {
        match self {
            Flow::Throughput => (1, 1, false),
            Flow::Mpsc => (2, 1, false),
            Flow::Fanout => (1, 4, false),
            Flow::Group => (1, 2, true),
        }
    }
    /// Subscribers that each receive every frame.
    fn receivers(self) -> u64 {
        match self {
            Flow::Fanout => 4,
            _ => 1,
        }
    }
}

/// One run of a latency scenario.
pub(crate) struct LatencyOutcome {
    pub(crate) hist: Histogram<u64>,
    /// The samples outside slow episodes (see `util::RttLog`).
    pub(crate) steady: Histogram<u64>,
    /// The run's fast level, ns (see `util::RttLog::histograms`).
    pub(crate) fast_ns: u64,
    pub(crate) elapsed_ns: u64,
    pub(crate) round_trips: u64,
}

/// One run of a throughput-family scenario.
pub(crate) struct FlowOutcome {
    pub(crate) published: u64,
    pub(crate) delivered: u64,
    /// Lost frames, including `abandoned`.
    pub(crate) missed: u64,
    /// Claims skipped as abandoned (the producer stayed descheduled past the
    /// bus's claim timeout): lost for that subscriber, counted in `missed`.
    pub(crate) abandoned: u64,
    pub(crate) elapsed_ns: u64,
    /// Each producer's time from its first publish to its last, summed.
    pub(crate) producer_ns: u64,
    /// The CPU time of the producers' publishing threads over that span,
    /// summed (`None` if a peer does not report it).
    pub(crate) producer_cpu_ns: Option<u64>,
}

/// Effective sizes after `quick`.
struct Plan {
    runs: usize,
    rt: u64,
    rt_park: u64,
    frames: u64,
    timeout: Duration,
}

impl Plan {
    fn new(o: &Options) -> Plan {
        let (runs, rt, frames) = if o.quick {
            (1, o.round_trips.min(2_000), o.frames.min(5_000))
        } else {
            (o.runs.max(1), o.round_trips.max(1), o.frames.max(2))
        };
        Plan {
            runs,
            rt,
            rt_park: (rt / 10).max(100),
            frames,
            timeout: if o.quick {
                Duration::from_secs(30)
            } else {
                Duration::from_secs(300)
            },
        }
    }
}

fn warmup_for(n: u64) -> u64 {
    (n / 10).clamp(50, 20_000)
}

struct LatencyVariant {
    scenario: &'static str,
    wait: WaitStrategy,
    pinned: bool,
    park: bool,
}

fn latency_variants(name: &str) -> Vec<LatencyVariant> {
    let v = |scenario, wait, pinned, park| LatencyVariant {
        scenario,
        wait,
        pinned,
        park,
    };
    match name {
        "latency" => vec![v("latency", WaitStrategy::Spin, false, false)],
        "latency-pinned" => vec![v("latency-pinned", WaitStrategy::Spin, true, false)],
        "latency-park" => vec![
            v("latency-park/spin-then-park", WaitStrategy::default(), false, true),
            v("latency-park/park", WaitStrategy::Park, false, true),
        ],
        _ => Vec::new(),
    }
}

/// A throughput-family scenario as run: its shape, and where its roles run.
#[derive(Clone, Copy, Debug)]
struct FlowVariant {
    scenario: &'static str,
    flow: Flow,
    /// (producer CPU, subscriber CPU), or `None` to leave placement to the
    /// scheduler.
    cpus: Option<(usize, usize)>,
}

impl FlowVariant {
    fn placement(&self) -> String {
        match self.cpus {
            Some((p, s)) => format!("producer pinned to CPU {p}, subscriber to CPU {s}"),
            None => "unpinned".to_string(),
        }
    }
}

/// The flow variant called `name`, or `None` if `name` is not one;
/// `Some(Err)` for a pinned variant on a machine with fewer than 2 CPUs.
fn flow_variant(name: &'static str, pin_pair: Option<(usize, usize)>) -> Option<Result<FlowVariant, String>> {
    if name == "throughput-pinned" {
        return Some(
            pin_pair
                .map(|cpus| FlowVariant {
                    scenario: name,
                    flow: Flow::Throughput,
                    cpus: Some(cpus),
                })
                .ok_or_else(|| format!("{name}: skipped, fewer than 2 CPUs allowed")),
        );
    }
    [Flow::Throughput, Flow::Mpsc, Flow::Fanout, Flow::Group]
        .into_iter()
        .find(|f| f.name() == name)
        .map(|flow| {
            Ok(FlowVariant {
                scenario: name,
                flow,
                cpus: None,
            })
        })
}

/// Put `label` into the names of the temporary buses this process creates
/// (`bench-PID-N-LABEL-...`), so an operator can tell them apart in
/// `shmbus ls`. It must be a valid bus name of at most 64 bytes. Call it
/// before [`run`]; only the first call counts.
pub fn set_bus_label(label: &str) -> Result<(), String> {
    shmbus::validate_name(label).map_err(|e| e.to_string())?;
    if label.len() > 64 {
        return Err(format!("bus label {label:?} is longer than 64 bytes"));
    }
    util::set_label(label);
    Ok(())
}

/// Run the selected scenarios; `progress` gets one line per run.
///
/// Fails on a setup error, a timeout, or counts that do not reconcile
/// (delivered + missed != published): loss is never counted as speed.
pub fn run(opts: &Options, progress: &mut dyn FnMut(&str)) -> Result<Vec<ScenarioResult>, String> {
    for s in &opts.scenarios {
        if !SCENARIOS.contains(&s.as_str()) {
            return Err(format!("unknown scenario {s:?}; known: {}", SCENARIOS.join(", ")));
        }
    }
    if opts.payload_sizes.is_empty() {
        return Err("no payload sizes".into());
    }
    for p in &opts.payload_sizes {
        if !PAYLOAD_SIZES.contains(p) {
            return Err(format!("unsupported payload size {p}; supported: {PAYLOAD_SIZES:?}"));
        }
    }
    let plan = Plan::new(opts);
    for name in util::remove_stale_buses() {
        progress(&format!("removed bus {name} left by a harness that is gone"));
    }
    let selected: Vec<&str> = SCENARIOS
        .iter()
        .copied()
        .filter(|s| opts.scenarios.is_empty() || opts.scenarios.iter().any(|x| x == s))
        .collect();
    let cpus = allowed_cpus();
    let pin_pair = (cpus.len() >= 2).then(|| (cpus[0], cpus[1]));
    let mut results = Vec::new();
    for name in selected {
        for &size in &opts.payload_sizes {
            match flow_variant(name, pin_pair) {
                Some(Ok(v)) => results.extend(run_flow(&v, size, &plan, progress)?),
                Some(Err(skipped)) => progress(&skipped),
                None => {}
            }
            for v in latency_variants(name) {
                let cpus = if v.pinned {
                    match pin_pair {
                        Some(p) => Some(p),
                        None => {
                            progress(&format!("{}: skipped, fewer than 2 CPUs allowed", v.scenario));
                            continue;
                        }
                    }
                } else {
                    None
                };
                results.extend(run_latency(&v, cpus, size, &plan, progress)?);
            }
        }
    }
    let left = leftover_buses();
    if !left.is_empty() {
        return Err(format!("buses left behind: {left:?}"));
    }
    Ok(results)
}

fn run_latency(
    v: &LatencyVariant,
    cpus: Option<(usize, usize)>,
    size: usize,
    plan: &Plan,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<ScenarioResult>, String> {
    let n = if v.park { plan.rt_park } else { plan.rt };
    let warmup = warmup_for(n);
    let mut shm = Vec::new();
    let mut spsc = Vec::new();
    let mut cb = Vec::new();
    let mut ext: Vec<(ExternalPeer, Vec<LatencyOutcome>)> =
        external_peers(None).into_iter().map(|p| (p, Vec::new())).collect();
    #[cfg(feature = "iceoryx2")]
    let mut ice = Vec::new();
    for r in 1..=plan.runs {
        for single in [false, true] {
            let o = shm_latency(None, size, n, warmup, v.wait, cpus, plan.timeout, single)?;
            progress(&format!(
                "{} {size} B run {r}/{}: {} p50 {}",
                v.scenario,
                plan.runs,
                if single { "shmbus-spsc" } else { "shmbus" },
                fmt_ns(Some(o.hist.value_at_quantile(0.5) as f64))
            ));
            if single { &mut spsc } else { &mut shm }.push(o);
        }
        for (peer, outcomes) in &mut ext {
            let o = shm_latency(Some(&peer.exe), size, n, warmup, v.wait, cpus, plan.timeout, false)
                .map_err(|e| format!("{} ({}): {e}", peer.name, peer.exe.display()))?;
            progress(&format!(
                "{} {size} B run {r}/{}: {} p50 {}",
                v.scenario,
                plan.runs,
                peer.name,
                fmt_ns(Some(o.hist.value_at_quantile(0.5) as f64))
            ));
            outcomes.push(o);
        }
        let o = baseline::latency(size, n, warmup, v.wait, cpus, plan.timeout)?;
        progress(&format!(
            "{} {size} B run {r}/{}: crossbeam p50 {}",
            v.scenario,
            plan.runs,
            fmt_ns(Some(o.hist.value_at_quantile(0.5) as f64))
        ));
        cb.push(o);
        #[cfg(feature = "iceoryx2")]
        if !v.park {
            let o = iceoryx::latency(size, n, warmup, cpus, plan.timeout)?;
            progress(&format!(
                "{} {size} B run {r}/{}: iceoryx2 p50 {}",
                v.scenario,
                plan.runs,
                fmt_ns(Some(o.hist.value_at_quantile(0.5) as f64))
            ));
            ice.push(o);
        }
    }
    let placement = match cpus {
        Some((a, b)) => format!("pinned to CPUs {a},{b}"),
        None => "unpinned (scheduler)".to_string(),
    };
    let note = |extra: &str| {
        format!(
            "{placement}; wait={}; {n} rt/run + {warmup} warm-up{extra}",
            wait_name(v.wait)
        )
    };
    let spin = v.wait == WaitStrategy::Spin;
    let mut out = vec![
        summarize_latency(v.scenario, "shmbus", size, &shm, note("; 2 MiB buses"), spin),
        summarize_latency(
            v.scenario,
            "shmbus-spsc",
            size,
            &spsc,
            note("; 2 MiB buses, single_producer"),
            spin,
        ),
        summarize_latency(
            v.scenario,
            "crossbeam",
            size,
            &cb,
            note("; threads; park = std::thread::park"),
            spin,
        ),
    ];
    // After the Rust rows, before crossbeam's.
    for (peer, outcomes) in &ext {
        out.insert(
            out.len() - 1,
            summarize_latency(
                v.scenario,
                peer.name,
                size,
                outcomes,
                note(&format!("; 2 MiB buses; {}", peer.note)),
                spin,
            ),
        );
    }
    #[cfg(feature = "iceoryx2")]
    if !ice.is_empty() {
        out.push(summarize_latency(
            v.scenario,
            "iceoryx2",
            size,
            &ice,
            note("; busy-poll receive()"),
            spin,
        ));
    }
    Ok(out)
}

fn run_flow(
    v: &FlowVariant,
    size: usize,
    plan: &Plan,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<ScenarioResult>, String> {
    let flow = v.flow;
    // Single-producer mode applies where one process publishes.
    let modes: &[ShmMode] = if flow.shape().0 == 1 {
        &[ShmMode::Evict, ShmMode::Spsc, ShmMode::Block, ShmMode::Many]
    } else {
        &[ShmMode::Evict, ShmMode::Block, ShmMode::Many]
    };
    let mut shm: Vec<(ShmMode, Vec<FlowOutcome>)> = modes.iter().map(|&m| (m, Vec::new())).collect();
    let mut cb = Vec::new();
    // The C and Python paths, if their programs are named: each on the
    // lossy default bus and on a lossless one, like the Rust peer.
    let mut ext: Vec<(ExternalPeer, ShmMode, Vec<FlowOutcome>)> = external_peers(Some(flow))
        .into_iter()
        .flat_map(|p| [(p.clone(), ShmMode::Evict, Vec::new()), (p, ShmMode::Block, Vec::new())])
        .collect();
    #[cfg(feature = "iceoryx2")]
    let (mut ice, mut ice_block) = (Vec::new(), Vec::new());
    let rate = |o: &FlowOutcome| o.delivered as f64 / flow.receivers() as f64 / (o.elapsed_ns as f64 / 1e9);
    for r in 1..=plan.runs {
        let mut report = |peer: &str, o: &FlowOutcome| {
            progress(&format!(
                "{} {size} B run {r}/{}: {peer} {} (missed {})",
                v.scenario,
                plan.runs,
                fmt_rate(rate(o)),
                o.missed
            ))
        };
        for (mode, outcomes) in &mut shm {
            let o = shm_flow_exe(None, v, size, plan.frames, plan.timeout, *mode)?;
            report(mode.peer(), &o);
            outcomes.push(o);
        }
        for (peer, mode, outcomes) in &mut ext {
            let o = shm_flow_exe(Some(&peer.exe), v, size, plan.frames, plan.timeout, *mode)
                .map_err(|e| format!("{} ({}): {e}", peer.name_for(*mode), peer.exe.display()))?;
            report(peer.name_for(*mode), &o);
            outcomes.push(o);
        }
        let o = baseline::flow(size, flow, v.cpus, plan.frames, plan.timeout)?;
        report("crossbeam", &o);
        cb.push(o);
        #[cfg(feature = "iceoryx2")]
        if flow == Flow::Throughput {
            let o = iceoryx::throughput(size, v.cpus, plan.frames, plan.timeout, false)?;
            report("iceoryx2", &o);
            ice.push(o);
            let o = iceoryx::throughput(size, v.cpus, plan.frames, plan.timeout, true)?;
            report("iceoryx2-blocking", &o);
            ice_block.push(o);
        }
    }
    let (p, s, g) = flow.shape();
    let shape = format!(
        "{p} producer(s) -> {s} {}; {} frames/run; {}",
        if g {
            format!("group workers (idle workers yield every {GROUP_YIELD_EVERY} empty polls)")
        } else {
            "subscriber(s)".to_string()
        },
        plan.frames / p * p,
        v.placement()
    );
    let mut out: Vec<ScenarioResult> = shm
        .iter()
        .map(|(mode, outcomes)| {
            summarize_flow(
                v,
                mode.peer(),
                size,
                outcomes,
                format!("{shape}; processes; 16 MiB bus, {}; spin", mode.note()),
            )
        })
        .collect();
    out.push(summarize_flow(
        v,
        "crossbeam",
        size,
        &cb,
        format!("{shape}; threads; back-pressure, no loss"),
    ));
    // After the Rust rows, before crossbeam's.
    for (peer, mode, outcomes) in &ext {
        out.insert(
            out.len() - 1,
            summarize_flow(
                v,
                peer.name_for(*mode),
                size,
                outcomes,
                format!("{shape}; {}; 16 MiB bus, {}; spin", peer.note, mode.note()),
            ),
        );
    }
    #[cfg(feature = "iceoryx2")]
    if !ice.is_empty() {
        out.push(summarize_flow(
            v,
            "iceoryx2",
            size,
            &ice,
            format!("{shape}; processes; safe overflow, buffer 4096"),
        ));
        out.push(summarize_flow(
            v,
            "iceoryx2-blocking",
            size,
            &ice_block,
            format!("{shape}; processes; no overflow, RetryUntilDelivered, buffer 4096"),
        ));
    }
    Ok(out)
}

pub(crate) fn base_spec(role: &str, size: usize, timeout: Duration) -> Kv {
    Kv::new()
        .set("role", role)
        .set("payload", size)
        .set("deadline_ms", timeout.as_millis())
}

#[allow(clippy::too_many_arguments)]
fn shm_latency(
    exe: Option<&std::path::Path>,
    size: usize,
    n: u64,
    warmup: u64,
    wait: WaitStrategy,
    cpus: Option<(usize, usize)>,
    timeout: Duration,
    single: bool,
) -> Result<LatencyOutcome, String> {
    let cfg = Config::default()
        .memory_limit(2 << 20)
        .max_frame_size(size.max(1024) as u32)
        .single_producer(single);
    let a = temp_bus("ping", &cfg)?;
    let b = temp_bus("pong", &cfg)?;
    let base = base_spec("", size, timeout)
        .set("n", n)
        .set("warmup", warmup)
        .set("wait", wait_name(wait));
    ping_pong(exe, ["pong", "ping"], (a.name(), b.name()), base, cpus, timeout)
}

/// Run one ping-pong pair of child processes and collect the pinger's
/// histogram. `roles` are the pong and ping roles; the pinger publishes on
/// `channels.0` and reads `channels.1`, the ponger the reverse (buses or
/// iceoryx2 services); `base` (from [`base_spec`]) holds the scenario's
/// other keys for both, its role is replaced. The children are `exe` (an
/// external peer) or this executable.
///
/// The pinger reports its histograms (`hist`, `steady`, `fast_ns`, see
/// [`RttLog::add_to`]) or, from a peer without an HDR histogram at hand
/// (Python), every sample in order (`samples`), summarized here by the
/// same [`RttLog`].
pub(crate) fn ping_pong(
    exe: Option<&std::path::Path>,
    roles: [&str; 2],
    channels: (&str, &str),
    base: Kv,
    cpus: Option<(usize, usize)>,
    timeout: Duration,
) -> Result<LatencyOutcome, String> {
    let (a, b) = channels;
    let spec = |role: &str, input: &str, output: &str, cpu: Option<usize>| {
        base.clone()
            .set("role", role)
            .set("in", input)
            .set("out", output)
            .pin(cpu)
    };
    let specs = [
        spec(roles[0], a, b, cpus.map(|c| c.1)),
        spec(roles[1], b, a, cpus.map(|c| c.0)),
    ];
    let deadline = Instant::now() + timeout + Duration::from_secs(10);
    let mut kids = start_all_exe(exe, &specs, deadline)?;
    let mut ping = kids[1].result(deadline)?;
    kids[0].result(deadline)?;
    if let Some(samples) = ping.opt("samples") {
        let log = RttLog::decode(samples)?;
        if log.len() as u64 != ping.num("round_trips")? {
            return Err(format!(
                "pinger reported {} samples for {} round trips",
                log.len(),
                ping.num("round_trips")?
            ));
        }
        ping = log.add_to(ping);
    }
    let (mut hist, mut steady) = (new_hist(), new_hist());
    hist_merge_encoded(&mut hist, ping.str("hist")?)?;
    hist_merge_encoded(&mut steady, ping.str("steady")?)?;
    Ok(LatencyOutcome {
        hist,
        steady,
        fast_ns: ping.num("fast_ns")?,
        elapsed_ns: ping.num("elapsed_ns")?,
        round_trips: ping.num("round_trips")?,
    })
}

/// Environment variable naming the C benchmark program (`benches/c/bench_c.c`,
/// built by `make bench-c`). When it is set, the `throughput`,
/// `throughput-pinned`, `mpsc` and `fanout` scenarios also run a `shmbus-c`
/// peer: the same producer and subscriber roles, played by C processes
/// through libshmbus.
pub const C_PEER_ENV: &str = "SHMBUS_BENCH_C";

/// Environment variable naming a program that starts the Python peer
/// (`python/bench/peer.py` under the venv's interpreter; `make
/// bench-harness-python` writes one). When it is set, the `throughput`,
/// `throughput-pinned`, `mpsc` and `fanout` scenarios and the latency
/// scenarios also run a `shmbus-py` peer: the same roles played by Python
/// processes through the `shmbus` package (`publish` in a loop,
/// `recv_many`, `recv`).
pub const PY_PEER_ENV: &str = "SHMBUS_BENCH_PY";

/// A peer whose child processes are another program speaking the child
/// protocol (READY / GO / RESULT, see `child.rs`).
#[derive(Clone)]
struct ExternalPeer {
    /// Peer name in the table.
    name: &'static str,
    /// Its name on an `Overflow::Block` bus (throughput family).
    block_name: &'static str,
    exe: std::path::PathBuf,
    /// What plays the roles, for the notes.
    note: &'static str,
}

/// The external peers named by the environment for `flow` (`None`: the
/// latency ping-pong). Neither plays group workers; only the Python peer
/// plays ping and pong.
fn external_peers(flow: Option<Flow>) -> Vec<ExternalPeer> {
    let named = |env: &str| std::env::var_os(env).map(std::path::PathBuf::from);
    let mut v = Vec::new();
    if flow.is_some_and(|f| f != Flow::Group) {
        if let Some(exe) = named(C_PEER_ENV) {
            v.push(ExternalPeer {
                name: "shmbus-c",
                block_name: "shmbus-c-block",
                exe,
                note: "C processes (bench_c, libshmbus)",
            });
        }
    }
    if flow != Some(Flow::Group) {
        if let Some(exe) = named(PY_PEER_ENV) {
            v.push(ExternalPeer {
                name: "shmbus-py",
                block_name: "shmbus-py-block",
                exe,
                note: "Python processes (python/bench/peer.py: publish in a loop; recv_many, or recv for latency)",
            });
        }
    }
    v
}

impl ExternalPeer {
    /// The table name of this peer on a bus configured per `mode` (the
    /// external programs are multi-producer, so never `Spsc`).
    fn name_for(&self, mode: ShmMode) -> &'static str {
        match mode {
            ShmMode::Block => self.block_name,
            ShmMode::Evict | ShmMode::Spsc | ShmMode::Many => self.name,
        }
    }
}

/// How a throughput-family shmbus peer configures its bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ShmMode {
    /// The defaults: `Overflow::Evict`, any number of producers.
    Evict,
    /// `single_producer(true)` (one producer process only).
    Spsc,
    /// `Overflow::Block`: the producer waits for the slowest subscriber, so
    /// nothing is lost, like crossbeam and `iceoryx2-blocking`.
    Block,
    /// `Overflow::Block` (no loss, so comparable with crossbeam), the
    /// producers publishing with `Bus::publish_many`, [`MANY_BATCH`] frames
    /// per call, the subscribers receiving with `Subscriber::recv_many`.
    Many,
}

/// Frames per `publish_many` call of the `shmbus-many` peer.
const MANY_BATCH: u64 = 64;

impl ShmMode {
    fn peer(self) -> &'static str {
        match self {
            ShmMode::Evict => "shmbus",
            ShmMode::Spsc => "shmbus-spsc",
            ShmMode::Block => "shmbus-block",
            ShmMode::Many => "shmbus-many",
        }
    }
    fn note(self) -> &'static str {
        match self {
            ShmMode::Evict => "evict",
            ShmMode::Spsc => "evict, single_producer",
            ShmMode::Block => "Overflow::Block (no loss)",
            ShmMode::Many => "Overflow::Block (no loss); publish_many (64 frames per call) and recv_many",
        }
    }
    fn config(self, cfg: Config, timeout: Duration) -> Config {
        match self {
            ShmMode::Evict => cfg,
            ShmMode::Spsc => cfg.single_producer(true),
            ShmMode::Block | ShmMode::Many => cfg.overflow(Overflow::Block(timeout)),
        }
    }
}

/// One run of a throughput-family scenario on a fresh bus configured per
/// `mode`, its producer and subscriber processes run by `exe` (an external
/// peer) or by this executable (`None`).
fn shm_flow_exe(
    exe: Option<&std::path::Path>,
    v: &FlowVariant,
    size: usize,
    frames: u64,
    timeout: Duration,
    mode: ShmMode,
) -> Result<FlowOutcome, String> {
    let cfg = mode.config(
        Config::default()
            .memory_limit(16 << 20)
            .max_frame_size(size.max(1024) as u32),
        timeout,
    );
    let flow = v.flow;
    let bus = temp_bus(flow.name(), &cfg)?;
    let (producers, subs, group) = flow.shape();
    let per = frames / producers;
    let total = per * producers;
    let mut specs = Vec::new();
    for _ in 0..subs {
        let mut s = base_spec("subscriber", size, timeout)
            .set("bus", bus.name())
            .set("expected", total)
            .pin(v.cpus.map(|c| c.1));
        if group {
            s = s.set("group", "workers");
        }
        if mode == ShmMode::Many {
            s = s.set("many", 1);
        }
        specs.push(s);
    }
    for _ in 0..producers {
        let mut p = base_spec("producer", size, timeout)
            .set("bus", bus.name())
            .set("n", per)
            .pin(v.cpus.map(|c| c.0));
        if mode == ShmMode::Many {
            p = p.set("batch", MANY_BATCH);
        }
        specs.push(p);
    }
    let deadline = Instant::now() + timeout + Duration::from_secs(10);
    let mut kids = start_all_exe(exe, &specs, deadline)?;
    let (mut start, mut end, mut producer_ns) = (u64::MAX, 0u64, 0u64);
    let mut producer_cpu_ns = Some(0u64);
    let (mut delivered, mut missed, mut published, mut abandoned) = (0u64, 0u64, 0u64, 0u64);
    for (i, k) in kids.iter_mut().enumerate() {
        let r = k.result(deadline)?;
        if i < subs as usize {
            let (d, m) = (r.num("delivered")?, r.num("missed")?);
            let a = r.num("abandoned")?;
            if !group && d + m + a != total {
                return Err(format!(
                    "{}: subscriber {i}: delivered {d} + missed {m} + abandoned {a} != published {total}",
                    flow.name()
                ));
            }
            delivered += d;
            missed += m;
            abandoned += a;
            end = end.max(r.num("t_end")?);
        } else {
            published += r.num("published")?;
            let t0 = r.num("t0")?;
            start = start.min(t0);
            producer_ns += r.num("t1")?.saturating_sub(t0);
            let cpu = r.opt_num("cpu_ns")?;
            producer_cpu_ns = producer_cpu_ns.zip(cpu).map(|(a, b)| a + b);
        }
    }
    if group && delivered + missed + abandoned != total {
        return Err(format!(
            "group: delivered {delivered} + missed {missed} + abandoned {abandoned} != published {total}"
        ));
    }
    let stats = shmbus::Bus::open(bus.name()).map_err(|e| e.to_string())?.stats();
    if published != total || stats.published != total {
        return Err(format!(
            "{}: producers report {published}, bus stats {} published, expected {total}",
            flow.name(),
            stats.published
        ));
    }
    Ok(FlowOutcome {
        published: total,
        delivered,
        missed: missed + abandoned,
        abandoned,
        elapsed_ns: end.saturating_sub(start).max(1),
        producer_ns,
        producer_cpu_ns,
    })
}

/// Median of `v` (sorted in place; the mean of the middle two for an even
/// count, 0 for none).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `spin`: both sides busy-polled, so a slow episode means the placement
/// changed (see `util::RttLog`); parked waits are multimodal by nature and
/// get no episode figures.
fn summarize_latency(
    scenario: &str,
    peer: &str,
    payload: usize,
    runs: &[LatencyOutcome],
    note: String,
    spin: bool,
) -> ScenarioResult {
    let mut rates: Vec<f64> = runs
        .iter()
        .map(|o| o.round_trips as f64 / (o.elapsed_ns.max(1) as f64 / 1e9))
        .collect();
    // A run whose fast level is over twice the best run's sat in the slow
    // placement throughout: all of it is one slow episode.
    let best_fast = runs.iter().map(|o| o.fast_ns).min().unwrap_or(0);
    let (mut hist, mut steady) = (new_hist(), new_hist());
    for o in runs {
        let _ = hist.add(&o.hist);
        if o.fast_ns <= best_fast.saturating_mul(2) {
            let _ = steady.add(&o.steady);
        }
    }
    let q = |x: f64| (!hist.is_empty()).then(|| hist.value_at_quantile(x) as f64);
    let slow_share = (spin && !hist.is_empty()).then(|| 1.0 - steady.len() as f64 / hist.len() as f64);
    let steady_q = |x: f64| (spin && !steady.is_empty()).then(|| steady.value_at_quantile(x) as f64);
    let episodes = if !spin {
        String::new()
    } else {
        format!(
        "; slow episodes {} of round trips (windows of {} rt, or whole runs, with a median over 2x the fastest tenth), \
         outside them p50 {} p99 {} p99.9 {}",
        slow_share.map_or_else(|| "-".to_string(), |f| format!("{:.1}%", f * 100.0)),
        util::EPISODE_WINDOW,
        fmt_ns(steady_q(0.5)),
        fmt_ns(steady_q(0.99)),
        fmt_ns(steady_q(0.999)),
        )
    };
    let spread = (
        rates.iter().copied().fold(f64::INFINITY, f64::min),
        rates.iter().copied().fold(0.0, f64::max),
    );
    ScenarioResult {
        scenario: scenario.to_string(),
        peer: peer.to_string(),
        payload,
        runs: runs.len(),
        median_mps: median(&mut rates),
        spread_mps: spread,
        p50_ns: q(0.5),
        p99_ns: q(0.99),
        p999_ns: q(0.999),
        max_ns: (!hist.is_empty()).then(|| hist.max() as f64),
        slow_episode_share: slow_share,
        steady_p99_ns: steady_q(0.99),
        delivered: runs.iter().map(|o| o.round_trips).sum(),
        missed: 0,
        producer_ns_per_frame: None,
        producer_cpu_ns_per_frame: None,
        note: format!("{note}; rate = round trips/s{episodes}"),
    }
}

fn summarize_flow(v: &FlowVariant, peer: &str, payload: usize, runs: &[FlowOutcome], note: String) -> ScenarioResult {
    let flow = v.flow;
    let mut rates: Vec<f64> = runs
        .iter()
        .map(|o| o.delivered as f64 / flow.receivers() as f64 / (o.elapsed_ns as f64 / 1e9))
        .collect();
    let spread = (
        rates.iter().copied().fold(f64::INFINITY, f64::min),
        rates.iter().copied().fold(0.0, f64::max),
    );
    let published: u64 = runs.iter().map(|o| o.published).sum();
    let abandoned: u64 = runs.iter().map(|o| o.abandoned).sum();
    let mut producer: Vec<f64> = runs
        .iter()
        .map(|o| o.producer_ns as f64 / o.published.max(1) as f64)
        .collect();
    let producer = median(&mut producer);
    let cpu: Option<Vec<f64>> = runs
        .iter()
        .map(|o| o.producer_cpu_ns.map(|c| c as f64 / o.published.max(1) as f64))
        .collect();
    let producer_cpu = cpu.map(|mut v| median(&mut v));
    ScenarioResult {
        scenario: v.scenario.to_string(),
        peer: peer.to_string(),
        payload,
        runs: runs.len(),
        median_mps: median(&mut rates),
        spread_mps: spread,
        p50_ns: None,
        p99_ns: None,
        p999_ns: None,
        slow_episode_share: None,
        steady_p99_ns: None,
        max_ns: None,
        delivered: runs.iter().map(|o| o.delivered).sum(),
        missed: runs.iter().map(|o| o.missed).sum(),
        producer_ns_per_frame: Some(producer),
        producer_cpu_ns_per_frame: producer_cpu,
        note: format!(
            "{note}; {published} published in all; rate = delivered frames/s{}; producer {producer:.1} ns per frame{}{}",
            if flow == Flow::Fanout { " per subscriber" } else { "" },
            producer_cpu.map_or_else(String::new, |c| format!(" ({c:.1} ns of CPU)")),
            if abandoned > 0 {
                format!("; missed includes {abandoned} claims skipped as abandoned (producer descheduled)")
            } else {
                String::new()
            }
        ),
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k/s", r / 1e3)
    } else {
        format!("{r:.0} /s")
    }
}

fn fmt_ns(ns: Option<f64>) -> String {
    match ns {
        None => "-".to_string(),
        Some(v) if v < 1e3 => format!("{v:.0} ns"),
        Some(v) if v < 1e6 => format!("{:.2} us", v / 1e3),
        Some(v) => format!("{:.2} ms", v / 1e6),
    }
}

/// The crossbeam row matching `r` (same scenario and payload).
fn baseline_of<'a>(results: &'a [ScenarioResult], r: &ScenarioResult) -> Option<&'a ScenarioResult> {
    results
        .iter()
        .find(|b| b.peer == "crossbeam" && b.scenario == r.scenario && b.payload == r.payload)
}

/// Ratio of `r` to the crossbeam baseline: p50 latency ratio for latency
/// scenarios (above 1 = slower than crossbeam), rate ratio otherwise (below
/// 1 = slower than crossbeam).
pub fn ratio_vs_crossbeam(results: &[ScenarioResult], r: &ScenarioResult) -> Option<(String, f64)> {
    let b = baseline_of(results, r)?;
    match (r.p50_ns, b.p50_ns) {
        (Some(x), Some(y)) if y > 0.0 => Some(("p50".to_string(), x / y)),
        _ if b.median_mps > 0.0 => Some(("rate".to_string(), r.median_mps / b.median_mps)),
        _ => None,
    }
}

/// A plain-text table of `results`, notes below it.
pub fn render_table(results: &[ScenarioResult]) -> String {
    let header = [
        "scenario",
        "payload",
        "peer",
        "runs",
        "median rate",
        "spread (min..max)",
        "p50",
        "p99",
        "p99.9",
        "max",
        "delivered",
        "missed",
        "vs crossbeam",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in results {
        let ratio = if r.peer == "crossbeam" {
            "1 (baseline)".to_string()
        } else {
            match ratio_vs_crossbeam(results, r) {
                Some((what, x)) => format!("{what} x{x:.2}"),
                None => "-".to_string(),
            }
        };
        rows.push(vec![
            r.scenario.clone(),
            format!("{} B", r.payload),
            r.peer.clone(),
            r.runs.to_string(),
            fmt_rate(r.median_mps),
            format!("{}..{}", fmt_rate(r.spread_mps.0), fmt_rate(r.spread_mps.1)),
            fmt_ns(r.p50_ns),
            fmt_ns(r.p99_ns),
            fmt_ns(r.p999_ns),
            fmt_ns(r.max_ns),
            r.delivered.to_string(),
            r.missed.to_string(),
            ratio,
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}", w = *w))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        if i == 0 {
            let _ = writeln!(
                out,
                "{}",
                widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  ")
            );
        }
    }
    out.push_str("\nnotes:\n");
    for r in results {
        let _ = writeln!(out, "  {} {} B {}: {}", r.scenario, r.payload, r.peer, r.note);
    }
    out
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".to_string()
    }
}

fn json_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "null".to_string(), json_num)
}

/// `results` as a JSON array of objects (field names as in [`ScenarioResult`],
/// `spread_mps` as `[min, max]`, plus `ratio_vs_crossbeam`).
pub fn to_json(results: &[ScenarioResult]) -> String {
    let items: Vec<String> = results
        .iter()
        .map(|r| {
            let ratio = ratio_vs_crossbeam(results, r)
                .map(|(what, x)| format!("{{\"metric\":{},\"value\":{}}}", json_str(&what), json_num(x)))
                .unwrap_or_else(|| "null".to_string());
            format!(
                "{{\"scenario\":{},\"peer\":{},\"payload\":{},\"runs\":{},\"median_mps\":{},\"spread_mps\":[{},{}],\
                 \"p50_ns\":{},\"p99_ns\":{},\"p999_ns\":{},\"max_ns\":{},\"slow_episode_share\":{},\"steady_p99_ns\":{},\
                 \"delivered\":{},\"missed\":{},\"producer_ns_per_frame\":{},\"producer_cpu_ns_per_frame\":{},\
                 \"note\":{},\"ratio_vs_crossbeam\":{}}}",
                json_str(&r.scenario),
                json_str(&r.peer),
                r.payload,
                r.runs,
                json_num(r.median_mps),
                json_num(r.spread_mps.0),
                json_num(r.spread_mps.1),
                json_opt(r.p50_ns),
                json_opt(r.p99_ns),
                json_opt(r.p999_ns),
                json_opt(r.max_ns),
                json_opt(r.slow_episode_share),
                json_opt(r.steady_p99_ns),
                r.delivered,
                r.missed,
                json_opt(r.producer_ns_per_frame),
                json_opt(r.producer_cpu_ns_per_frame),
                json_str(&r.note),
                ratio
            )
        })
        .collect();
    format!("[\n  {}\n]\n", items.join(",\n  "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_round_trips() {
        let kv = Kv::new().set("a", 1).set("b", "x");
        let back = Kv::decode(&kv.encode()).unwrap();
        assert_eq!(back.num("a").unwrap(), 1);
        assert_eq!(back.str("b").unwrap(), "x");
    }

    #[test]
    fn histogram_survives_encoding() {
        let mut h = new_hist();
        for v in [100u64, 200, 200, 5_000, 1_000_000] {
            h.record(v).unwrap();
        }
        let mut back = new_hist();
        hist_merge_encoded(&mut back, &util::hist_encode(&h)).unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
        assert_eq!(back.max(), h.max());
    }

    #[test]
    fn unknown_scenario_and_size_are_refused() {
        let o = Options {
            scenarios: vec!["nope".into()],
            ..Options::default()
        };
        assert!(run(&o, &mut |_| {}).unwrap_err().contains("unknown scenario"));
        let o = Options {
            payload_sizes: vec![3],
            ..Options::default()
        };
        assert!(run(&o, &mut |_| {}).unwrap_err().contains("unsupported payload"));
    }

    #[test]
    fn slow_episodes_are_windows_not_single_round_trips() {
        // 1,000 fast round trips, a 300-round-trip stretch at 5x, 1,000 fast
        // again with isolated slow ones: only the stretch is an episode.
        let mut log = util::RttLog::with_capacity(2300);
        for i in 0..2300u64 {
            let episode = (1000..1300).contains(&i);
            let isolated = !episode && i % 50 == 7;
            log.record(if episode {
                500
            } else if isolated {
                900
            } else {
                100
            });
        }
        let (all, steady, fast) = log.histograms();
        assert_eq!(fast, 100);
        assert_eq!(all.len(), 2300);
        assert_eq!(all.len() - steady.len(), 300, "the three windows of the stretch");
        assert_eq!(steady.value_at_quantile(0.5), 100);
        assert!(
            steady.max() >= 900,
            "isolated slow round trips stay in the steady histogram"
        );
        assert!(all.value_at_quantile(0.99) >= 500);
    }

    #[test]
    fn samples_of_another_language_decode_in_order() {
        let log = util::RttLog::decode("120,0,7").unwrap();
        assert_eq!(log.len(), 3);
        let (all, _, _) = log.histograms();
        assert_eq!(
            (all.min(), all.max()),
            (1, 120),
            "a 0 ns sample counts as 1 ns, as in record"
        );
        assert_eq!(util::RttLog::decode("-").unwrap().len(), 0);
        assert!(util::RttLog::decode("5,x")
            .err()
            .expect("x is no number")
            .contains("\"x\""));
        assert!(util::RttLog::decode("").is_err());
    }

    #[test]
    fn payload_check_reads_every_byte_after_the_stamp() {
        let mut pattern = vec![0u8; 1024];
        util::fill_pattern(&mut pattern);
        // The formula bench_c.c and peer.py implement too.
        assert_eq!(&pattern[..4], &[7, 38, 69, 100]);
        assert_eq!(pattern[256], ((256 * 31 + 7) ^ 1) as u8);
        let mut frame = pattern.clone();
        util::stamp(&mut frame, 12345);
        assert!(util::payload_intact(&frame, &pattern), "the stamp is not checked");
        frame[1023] ^= 1;
        assert!(!util::payload_intact(&frame, &pattern), "last byte");
        frame[1023] ^= 1;
        frame.copy_within(8..520, 9);
        assert!(!util::payload_intact(&frame, &pattern), "shifted bytes");
        assert!(!util::payload_intact(&pattern[..1000], &pattern), "short frame");
        let mut eight = [0u8; 8];
        util::fill_pattern(&mut eight);
        util::stamp(&mut eight, 3);
        assert!(
            util::payload_intact(&eight, &[0u8; 8]),
            "an 8-byte payload is all stamp"
        );
    }

    #[test]
    fn median_and_table() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        let r = ScenarioResult {
            scenario: "throughput".into(),
            peer: "crossbeam".into(),
            payload: 64,
            runs: 1,
            median_mps: 2e6,
            spread_mps: (1e6, 3e6),
            p50_ns: None,
            p99_ns: None,
            p999_ns: None,
            slow_episode_share: None,
            steady_p99_ns: None,
            max_ns: None,
            delivered: 10,
            missed: 0,
            producer_ns_per_frame: Some(12.5),
            producer_cpu_ns_per_frame: None,
            note: "n".into(),
        };
        let s = ScenarioResult {
            peer: "shmbus".into(),
            median_mps: 1e6,
            ..r.clone()
        };
        let all = [s.clone(), r];
        assert_eq!(ratio_vs_crossbeam(&all, &s), Some(("rate".to_string(), 0.5)));
        let t = render_table(&all);
        assert!(t.contains("rate x0.50"), "{t}");
        assert!(to_json(&all).contains("\"median_mps\":1000000"));
        assert!(to_json(&all).contains("\"producer_ns_per_frame\":12.5"));
    }
}
