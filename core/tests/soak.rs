//! Bounded soak (issue #5): 2 producer processes and 3 subscriber processes
//! (one slow) at full speed on a 1 MiB bus with continual eviction, for
//! `SOAK_SECONDS` (default 180). Every second the segment size and each
//! process's RSS are sampled. At the end:
//!
//! * the segment size never changed,
//! * no process's RSS grew by more than 2 MiB after the warm-up,
//! * for each subscriber, delivered + missed + abandoned == published.
//!
//! Not part of `make test` (the test is `#[ignore]`); run it with
//! `make soak SOAK_SECONDS=60` (release build). It prints a summary table.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{check_payload, make_payload, TempName};
use shmbus::{Bus, Config, Filter};

const ROLE: &str = "SHMBUS_SOAK_ROLE";
const RSS_BOUND_KIB: u64 = 2048;

fn arg(k: &str) -> String {
    std::env::var(format!("SHMBUS_ARG_{k}")).unwrap_or_else(|_| panic!("missing arg {k}"))
}

fn result(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "RESULT {line}");
    let _ = out.flush();
}

fn kv(line: &str) -> BTreeMap<String, u64> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
        .collect()
}

/// A child process, killed on drop; `RESULT` lines collected by a thread.
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    rss: Vec<u64>,
}

impl Proc {
    fn spawn(name: &str, role: &str, args: &[(&str, String)]) -> Proc {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "child_entry_point", "--nocapture", "--test-threads=1", "-q"])
            .env(ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in args {
            cmd.env(format!("SHMBUS_ARG_{k}"), v);
        }
        let mut child = cmd.spawn().expect("spawn child");
        let out = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(r) = l.strip_prefix("RESULT ") {
                    sink.lock().unwrap().push(r.to_string());
                }
            }
        });
        Proc {
            name: name.to_string(),
            child,
            stdin,
            lines,
            reader: Some(reader),
            rss: vec![],
        }
    }
    fn sample_rss(&mut self) {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        if let Some(kib) = s
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        {
            self.rss.push(kib);
        }
    }
    /// Wait for a clean exit (at most `limit`) and return the result line.
    fn finish(&mut self, limit: Duration) -> BTreeMap<String, u64> {
        let t0 = Instant::now();
        let st = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(t0.elapsed() < limit, "{} did not exit in time", self.name);
            std::thread::sleep(Duration::from_millis(10));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        assert!(st.success(), "{} failed: {st}", self.name);
        let lines = self.lines.lock().unwrap().clone();
        lines.last().map(|l| kv(l)).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn child_entry_point() {
    let Ok(role) = std::env::var(ROLE) else { return };
    match role.as_str() {
        "producer" => role_producer(),
        "subscriber" => role_subscriber(),
        other => panic!("unknown role {other}"),
    }
}

/// Publish at full speed until stdin closes.
fn role_producer() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let id: u32 = arg("ID").parse().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        s.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let topic = format!("data.p{id}");
    let mut i = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let len = 24 + (i as usize * 7 + id as usize * 13) % 400;
        bus.publish(&topic, &make_payload(id, i, len)).unwrap();
        i += 1;
    }
    result(format!("published={i}"));
}

/// Receive and check every frame until `ctl.done`.
fn role_subscriber() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let slow = arg("SLOW") == "1";
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    result("ready");
    let mut next: BTreeMap<u32, u64> = BTreeMap::new();
    let mut delivered = 0u64;
    loop {
        let f = sub
            .recv_timeout(Duration::from_secs(30))
            .unwrap()
            .expect("frames stopped coming");
        if f.topic() == "ctl.done" {
            break;
        }
        let (p, i) = check_payload(f.payload());
        let e = next.entry(p).or_insert(0);
        assert!(i >= *e, "producer {p} order violated: {i} after {e}");
        *e = i + 1;
        delivered += 1;
        if slow && delivered % 256 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    result(format!(
        "delivered={delivered} missed={} abandoned={} corrupt={}",
        sub.missed(),
        sub.abandoned(),
        sub.corrupt()
    ));
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

#[test]
#[ignore = "soak: minutes long; run with `make soak`"]
fn soak_full_speed_with_eviction_keeps_size_and_rss_flat_and_counts_reconcile() {
    let secs: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    let warmup = 10.min(secs / 3).max(1);
    let name = TempName::new("soak");
    let cfg = Config::default().memory_limit(1 << 20).max_frame_size(1024);
    let bus = Bus::create(&name, &cfg).unwrap();
    let path = format!("/dev/shm/shmbus.{}", name.as_str());
    let seg_len = std::fs::metadata(&path).unwrap().len();
    let mut subs: Vec<Proc> = (0..3)
        .map(|k| {
            let slow = k == 2;
            Proc::spawn(
                if slow { "sub-slow" } else { "sub" },
                "subscriber",
                &[("BUS", name.to_string()), ("SLOW", if slow { "1" } else { "0" }.into())],
            )
        })
        .collect();
    let t0 = Instant::now();
    while bus.stats().subscribers.iter().filter(|s| s.alive).count() < 3 {
        assert!(t0.elapsed() < Duration::from_secs(20), "subscribers never came up");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut producers: Vec<Proc> = (0..2)
        .map(|id| {
            Proc::spawn(
                &format!("producer{id}"),
                "producer",
                &[("BUS", name.to_string()), ("ID", id.to_string())],
            )
        })
        .collect();
    eprintln!("soak: {secs} s, 2 producers, 3 subscribers (one slow), bus {seg_len} bytes, warm-up {warmup} s");
    let start = Instant::now();
    let mut sizes = vec![];
    let mut last_published = 0;
    for s in 1..=secs {
        let next = start + Duration::from_secs(s);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        sizes.push(std::fs::metadata(&path).unwrap().len());
        for p in producers.iter_mut().chain(subs.iter_mut()) {
            p.sample_rss();
        }
        if s % 10 == 0 || s == secs {
            let st = bus.stats();
            eprintln!(
                "soak: t={s:>4}s published={} (+{}/s) evicted={} rss(MiB)={}",
                st.published,
                (st.published - last_published) / 10.min(s),
                st.evicted,
                producers
                    .iter()
                    .chain(subs.iter())
                    .map(|p| format!("{}:{}", p.name, mib(*p.rss.last().unwrap_or(&0))))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            last_published = st.published;
        }
    }
    let elapsed = start.elapsed();
    let mut published = 0;
    for p in producers.iter_mut() {
        drop(p.stdin.take());
        published += p.finish(Duration::from_secs(30))["published"];
    }
    let st = bus.stats();
    bus.publish("ctl.done", b"").unwrap();
    let mut sub_results = vec![];
    for s in subs.iter_mut() {
        sub_results.push(s.finish(Duration::from_secs(60)));
    }

    // Summary.
    eprintln!();
    eprintln!(
        "soak summary: {:.0} s, published {published} ({:.0} frames/s), evicted {}, segment {} bytes (samples: {} distinct size(s))",
        elapsed.as_secs_f64(),
        published as f64 / elapsed.as_secs_f64(),
        st.evicted,
        seg_len,
        {
            let mut d = sizes.clone();
            d.sort_unstable();
            d.dedup();
            d.len()
        }
    );
    eprintln!(
        "{:<10} {:>12} {:>12} {:>12} {:>12}",
        "process", "RSS@warm MiB", "RSS max MiB", "RSS end MiB", "growth KiB"
    );
    let mut growths = vec![];
    for p in producers.iter().chain(subs.iter()) {
        let w = p.rss[warmup as usize - 1];
        let after = &p.rss[warmup as usize - 1..];
        let max = *after.iter().max().unwrap();
        let growth = max.saturating_sub(w);
        growths.push((p.name.clone(), growth));
        eprintln!(
            "{:<10} {:>12} {:>12} {:>12} {:>12}",
            p.name,
            mib(w),
            mib(max),
            mib(*p.rss.last().unwrap()),
            growth
        );
    }
    eprintln!(
        "{:<10} {:>12} {:>12} {:>12} {:>12} {:>8}",
        "subscriber", "delivered", "missed", "abandoned", "sum", "corrupt"
    );
    for (s, r) in subs.iter().zip(&sub_results) {
        eprintln!(
            "{:<10} {:>12} {:>12} {:>12} {:>12} {:>8}",
            s.name,
            r["delivered"],
            r["missed"],
            r["abandoned"],
            r["delivered"] + r["missed"] + r["abandoned"],
            r["corrupt"]
        );
    }
    eprintln!("published  {published:>12}");

    assert!(sizes.iter().all(|&s| s == seg_len), "segment size changed: {sizes:?}");
    for (name, g) in &growths {
        assert!(
            *g < RSS_BOUND_KIB,
            "{name}: RSS grew by {g} KiB after warm-up (bound {RSS_BOUND_KIB})"
        );
    }
    for (s, r) in subs.iter().zip(&sub_results) {
        assert_eq!(
            r["delivered"] + r["missed"] + r["abandoned"],
            published,
            "{}: delivered + missed + abandoned != published: {r:?}",
            s.name
        );
        assert_eq!(r["abandoned"], 0, "{}: nobody died, nothing is abandoned", s.name);
    }
    assert!(
        sub_results[2]["missed"] > 0,
        "the slow subscriber should have been lapped"
    );
    assert!(st.evicted > 0, "continual eviction");
}
