//! `shmbus demo`: a self-contained cross-process demonstration.
//!
//! Creates a uniquely named temporary bus, starts two subscriber processes
//! (one with a wildcard topic pattern, one with a regex) and one producer
//! process by re-executing this binary with hidden subcommands, prints live
//! rates and publish-to-receive latency (p50/p99) every second, then stops
//! the children and removes the bus, also on Ctrl-C and on error.
//!
//! Children report to the parent with one JSON line per second on their
//! standard output. They exit on SIGTERM, when the parent dies and when the
//! report pipe closes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use serde::{Deserialize, Serialize};
use shmbus::{Bus, Config, EventType, Filter, Meta};

use crate::args::{format_duration, parse_name};
use crate::error::{CliError, CliResult};
use crate::signal;

/// Arguments of `shmbus demo`.
#[derive(Args, Debug)]
#[command(after_help = "\
Works without a terminal (CI): output is plain lines, one per second.

Examples:
  shmbus demo
  shmbus demo --seconds 10 --rate 100000")]
pub struct DemoArgs {
    /// How long to run.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub seconds: u64,
    /// Frames per second the producer publishes.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub rate: u64,
}

/// Arguments of the hidden producer child.
#[derive(Args, Debug)]
pub struct ProducerArgs {
    /// Bus to publish on.
    #[arg(long, value_parser = parse_name)]
    pub bus: String,
    /// Frames per second.
    #[arg(long)]
    pub rate: u64,
}

/// Arguments of the hidden subscriber child.
#[derive(Args, Debug)]
pub struct SubscriberArgs {
    /// Bus to subscribe to.
    #[arg(long, value_parser = parse_name)]
    pub bus: String,
    /// Topic pattern.
    #[arg(long, conflicts_with = "regex")]
    pub pattern: Option<String>,
    /// Topic regex.
    #[arg(long)]
    pub regex: Option<String>,
}

/// Topics the producer cycles through, with their share of the traffic.
const TOPICS: [(&str, &str); 4] = [
    ("demo.sensors.temperature", "event"),
    ("demo.sensors.load", "event"),
    ("demo.alerts.disk", "alert"),
    ("demo.logs.app", "log"),
];
/// Pattern of the first subscriber.
const SENSORS: &str = "demo.sensors.#";
/// Regex of the second subscriber.
const ALERTS_LOGS: &str = r"demo\.(alerts|logs)\.";

/// One line a child reports each second.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Seconds since the child started.
    pub tick: u64,
    /// Frames in the last interval.
    pub frames: u64,
    /// Frames since start.
    pub total: u64,
    /// Length of the interval in seconds.
    pub secs: f64,
    /// Median latency in the interval (subscribers).
    pub p50_ns: Option<u64>,
    /// 99th percentile latency in the interval (subscribers).
    pub p99_ns: Option<u64>,
    /// Frames lost to eviction since start (subscribers).
    pub missed: u64,
}

/// The `p`-quantile (0..=1) of sorted values, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(rank.min(sorted.len() - 1)).copied()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn parent_pid() -> libc::pid_t {
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() }
}

/// Whether a child should stop: signal, or its parent went away.
fn child_should_stop(parent: libc::pid_t) -> bool {
    signal::stop_requested() || parent_pid() != parent
}

fn report(out: &mut dyn Write, r: &Report) -> CliResult {
    writeln!(out, "{}", serde_json::to_string(r).expect("report serialises"))?;
    out.flush()?;
    Ok(())
}

/// The hidden producer: publish at `rate` frames/s until stopped.
pub fn run_producer(args: &ProducerArgs, out: &mut dyn Write) -> CliResult {
    signal::install();
    let parent = parent_pid();
    let bus = Bus::open(&args.bus)?;
    let start = Instant::now();
    let mut tick_start = start;
    let mut tick = 0;
    let (mut total, mut frames) = (0u64, 0u64);
    let mut payload = String::new();
    while !child_should_stop(parent) {
        let due = (start.elapsed().as_secs_f64() * args.rate as f64) as u64;
        // Publish what is due, in bursts of at most 1000 frames.
        for _ in 0..due.saturating_sub(total).min(1000) {
            let (topic, kind) = TOPICS[(total % TOPICS.len() as u64) as usize];
            let meta = match kind {
                "alert" => Meta::alert(),
                "log" => Meta::log(),
                _ => Meta::event(EventType::Update),
            };
            payload.clear();
            payload.push_str(&format!("{{\"n\":{total},\"value\":{}}}", total % 97));
            bus.publish_with(&meta, topic, payload.as_bytes())?;
            total += 1;
            frames += 1;
        }
        if tick_start.elapsed() >= Duration::from_secs(1) {
            tick += 1;
            let secs = tick_start.elapsed().as_secs_f64();
            report(
                out,
                &Report {
                    tick,
                    frames,
                    total,
                    secs,
                    ..Report::default()
                },
            )?;
            frames = 0;
            tick_start = Instant::now();
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    Ok(())
}

/// The hidden subscriber: receive, measure latency, report each second.
pub fn run_subscriber(args: &SubscriberArgs, out: &mut dyn Write) -> CliResult {
    signal::install();
    let parent = parent_pid();
    let filter = match (&args.pattern, &args.regex) {
        (Some(p), _) => Filter::try_topic(p)?,
        (None, Some(r)) => Filter::try_regex(r)?,
        (None, None) => Filter::all(),
    };
    let bus = Bus::open(&args.bus)?;
    let mut sub = bus.subscribe(filter)?;
    writeln!(out, "ready")?;
    out.flush()?;
    let mut latencies: Vec<u64> = Vec::with_capacity(1 << 16);
    let mut tick_start = Instant::now();
    let (mut tick, mut total) = (0u64, 0u64);
    while !child_should_stop(parent) {
        if let Some(frame) = sub.recv_timeout(Duration::from_millis(50))? {
            latencies.push(now_ns().saturating_sub(frame.timestamp()));
            total += 1;
        }
        if tick_start.elapsed() >= Duration::from_secs(1) {
            tick += 1;
            latencies.sort_unstable();
            let r = Report {
                tick,
                frames: latencies.len() as u64,
                total,
                secs: tick_start.elapsed().as_secs_f64(),
                p50_ns: percentile(&latencies, 0.50),
                p99_ns: percentile(&latencies, 0.99),
                missed: sub.missed(),
            };
            report(out, &r)?;
            latencies.clear();
            tick_start = Instant::now();
        }
    }
    Ok(())
}

/// Child processes and the bus, cleaned up on drop (success, error, Ctrl-C).
struct Cleanup {
    name: String,
    children: Vec<Child>,
}

impl Cleanup {
    /// SIGTERM the children whose index is in `which`, wait up to 3 s, then
    /// SIGKILL what is left; stopped children are forgotten.
    fn stop(&mut self, which: impl Fn(usize) -> bool) {
        for (i, c) in self.children.iter().enumerate() {
            if let (true, Ok(pid)) = (which(i), libc::pid_t::try_from(c.id())) {
                // SAFETY: signalling our own child.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for (i, c) in self.children.iter_mut().enumerate() {
            if !which(i) {
                continue;
            }
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                    Ok(None) => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
    }

    fn stop_children(&mut self) {
        self.stop(|_| true);
        self.children.clear();
    }

    /// Pid of child `i`.
    fn pid(&self, i: usize) -> Option<u32> {
        self.children.get(i).map(Child::id)
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.stop_children();
        let _ = Bus::remove(&self.name);
    }
}

/// Labels of the children, in spawn order.
const LABELS: [&str; 3] = ["sensors", "alerts+logs", "producer"];

fn spawn(
    cleanup: &mut Cleanup,
    args: &[String],
    index: usize,
    tx: &mpsc::Sender<(usize, Option<String>)>,
) -> CliResult {
    let exe = std::env::current_exe().map_err(|e| CliError::runtime(format!("cannot find own executable: {e}")))?;
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CliError::runtime(format!("cannot start demo {}: {e}", LABELS[index])))?;
    let stdout = child.stdout.take().expect("piped stdout");
    cleanup.children.push(child);
    let tx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    if tx.send((index, Some(l))).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send((index, None));
    });
    Ok(())
}

fn fmt_latency(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".to_string(), |n| format_duration(Duration::from_nanos(n)))
}

/// Run `shmbus demo`.
pub fn run(args: &DemoArgs, out: &mut dyn Write) -> CliResult {
    signal::install();
    let nonce = now_ns() % 1_000_000_000;
    let name = format!("demo-{}-{nonce}", std::process::id());
    let bus = Bus::create(&name, &Config::default().memory_limit(16 << 20).max_frame_size(4096))?;
    let mut cleanup = Cleanup {
        name: name.clone(),
        children: Vec::new(),
    };
    writeln!(
        out,
        "shmbus demo: bus {name:?} (16 MiB), 1 producer at {} frames/s, 2 subscriber processes, {} s",
        args.rate, args.seconds
    )?;
    writeln!(out, "  subscriber 1 (sensors):     topic pattern {SENSORS}")?;
    writeln!(out, "  subscriber 2 (alerts+logs): regex {ALERTS_LOGS}")?;
    out.flush()?;

    let (tx, rx) = mpsc::channel();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    spawn(
        &mut cleanup,
        &s(&["__demo-subscriber", "--bus", &name, "--pattern", SENSORS]),
        0,
        &tx,
    )?;
    spawn(
        &mut cleanup,
        &s(&["__demo-subscriber", "--bus", &name, "--regex", ALERTS_LOGS]),
        1,
        &tx,
    )?;
    let mut ready = [false; 2];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready.iter().all(|r| *r) {
        if signal::stop_requested() {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_millis(100))) {
            Ok((i, Some(line))) if line == "ready" => ready[i] = true,
            Ok((_, None)) if signal::stop_requested() => return Ok(()),
            Ok((i, _)) => return Err(CliError::runtime(format!("demo {} failed to start", LABELS[i]))),
            Err(_) if Instant::now() >= deadline => {
                return Err(CliError::runtime("demo subscribers did not start within 10 s"))
            }
            Err(_) => {}
        }
    }
    let rate = args.rate.to_string();
    spawn(
        &mut cleanup,
        &s(&["__demo-producer", "--bus", &name, "--rate", &rate]),
        2,
        &tx,
    )?;
    drop(tx);

    writeln!(
        out,
        "\n{:>5}  {:>12}  {:>12}  {:>9}  {:>9}  {:>13}  {:>9}  {:>9}",
        "time", "published/s", "sensors/s", "p50", "p99", "alerts+logs/s", "p50", "p99"
    )?;
    let start = Instant::now();
    let mut latest: [Option<Report>; 3] = [None, None, None];
    let mut interrupted = false;
    'ticks: for t in 1..=args.seconds {
        let deadline = start + Duration::from_secs(t) + Duration::from_millis(500);
        loop {
            if signal::stop_requested() {
                interrupted = true;
                break 'ticks;
            }
            let have_all = latest.iter().all(|r| r.as_ref().is_some_and(|r| r.tick >= t));
            let now = Instant::now();
            if have_all || now >= deadline {
                break;
            }
            match rx.recv_timeout((deadline - now).min(Duration::from_millis(100))) {
                Ok((i, Some(line))) => {
                    if let Ok(r) = serde_json::from_str::<Report>(&line) {
                        latest[i] = Some(r);
                    }
                }
                Ok((_, None)) | Err(mpsc::RecvTimeoutError::Disconnected) if signal::stop_requested() => {
                    // Ctrl-C in a terminal reaches the children too.
                    interrupted = true;
                    break 'ticks;
                }
                Ok((i, None)) => return Err(CliError::runtime(format!("demo {} exited unexpectedly", LABELS[i]))),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(CliError::runtime("demo children exited unexpectedly"))
                }
            }
        }
        let per_sec = |r: &Option<Report>| {
            r.as_ref().map_or_else(
                || "-".to_string(),
                |r| format!("{:.0}", r.frames as f64 / r.secs.max(1e-9)),
            )
        };
        let lat = |r: &Option<Report>, f: fn(&Report) -> Option<u64>| fmt_latency(r.as_ref().and_then(f));
        writeln!(
            out,
            "{:>5}  {:>12}  {:>12}  {:>9}  {:>9}  {:>13}  {:>9}  {:>9}",
            format!("{t}s"),
            per_sec(&latest[2]),
            per_sec(&latest[0]),
            lat(&latest[0], |r| r.p50_ns),
            lat(&latest[0], |r| r.p99_ns),
            per_sec(&latest[1]),
            lat(&latest[1], |r| r.p50_ns),
            lat(&latest[1], |r| r.p99_ns),
        )?;
        out.flush()?;
    }
    // Stop the producer, let the subscribers drain, then read their final
    // counters from the bus before stopping them (their entries go with them).
    cleanup.stop(|i| i == 2);
    let drained = Instant::now() + Duration::from_secs(1);
    while bus.stats().subscribers.iter().any(|s| s.alive && s.lag_frames > 0) && Instant::now() < drained {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = bus.stats();
    let received = |i: usize| {
        let pid = cleanup.pid(i);
        let row = stats.subscribers.iter().find(|s| Some(s.pid) == pid);
        // A subscriber already stopped by a terminal's Ctrl-C has no entry
        // any more: fall back to its last report.
        let reported = latest[i].as_ref().map_or((0, 0), |r| (r.total, r.missed));
        row.map_or(reported, |s| (s.delivered, s.missed))
    };
    let ((sensors, missed0), (alerts, missed1)) = (received(0), received(1));
    cleanup.stop_children();
    writeln!(
        out,
        "\n{}published {} frames; sensors received {sensors}, alerts+logs received {alerts}; {} missed, {} evicted",
        if interrupted { "interrupted: " } else { "" },
        stats.published,
        missed0 + missed1,
        stats.evicted
    )?;
    drop(bus);
    drop(cleanup);
    writeln!(out, "removed bus {name:?}")?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(51));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7], 0.99), Some(7));
    }

    #[test]
    fn subscriber_filters_split_the_demo_topics() {
        let mut sensors = Filter::topic(SENSORS).compile().unwrap();
        let mut alerts = Filter::regex(ALERTS_LOGS).compile().unwrap();
        let hits: Vec<(bool, bool)> = TOPICS
            .iter()
            .map(|(t, _)| (sensors.matches(t.as_bytes(), 0), alerts.matches(t.as_bytes(), 0)))
            .collect();
        assert_eq!(hits, vec![(true, false), (true, false), (false, true), (false, true)]);
    }

    #[test]
    fn reports_round_trip_through_json() {
        let r = Report {
            tick: 2,
            frames: 10,
            total: 30,
            secs: 1.0,
            p50_ns: Some(1500),
            p99_ns: None,
            missed: 0,
        };
        let back: Report = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
