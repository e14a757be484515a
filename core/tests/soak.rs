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

use std::collections::HashMap;
use std::process::ChildStdin;
use std::time::{Duration, Instant};

use common::child::{self, arg, result, spawn, spawn_with_stdin, wait_for_subscribers, Proc};
use common::{make_payload, shm_path, StreamCheck, TempName};
use shmbus::{Bus, Config, Filter};

const RSS_BOUND_KIB: u64 = 2048;

/// A soak process (killed on drop) and its RSS samples.
struct Member {
    proc: Proc,
    /// Producers stop when their stdin is closed.
    stdin: Option<ChildStdin>,
    rss: Vec<u64>,
}

impl Member {
    fn name(&self) -> &str {
        self.proc.name()
    }
    fn sample_rss(&mut self) {
        if let Some(kib) = child::status_kib(self.proc.pid(), "VmRSS") {
            self.rss.push(kib);
        }
    }
    /// Close stdin, wait for a clean exit (at most `limit`) and return the
    /// result line with `key=`.
    fn finish(&mut self, key: &str, limit: Duration) -> HashMap<String, u64> {
        drop(self.stdin.take());
        self.proc.finish_clean(limit).kv(key)
    }
}

#[test]
fn child_entry_point() {
    let Some(role) = child::role() else { return };
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
    let stop = child::stop_on_stdin_eof();
    let topic = format!("data.p{id}");
    let mut i = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let len = 24 + (i as usize * 7 + id as usize * 13) % 400;
        bus.publish(&topic, &make_payload(id, i, len)).unwrap();
        i += 1;
    }
    result(format!("published={i}"));
}

/// Receive and check every frame (see `StreamCheck`) until `ctl.done`.
fn role_subscriber() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let slow = arg("SLOW") == "1";
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    result("ready");
    let mut check = StreamCheck::default();
    loop {
        let f = sub
            .recv_timeout(Duration::from_secs(30))
            .unwrap()
            .expect("frames stopped coming");
        if !check.frame(&f) {
            break;
        }
        if slow && check.delivered % 256 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    result(format!(
        "delivered={} missed={} abandoned={} corrupt={}",
        check.delivered,
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
    let path = shm_path(&name);
    let seg_len = std::fs::metadata(&path).unwrap().len();
    let mut subs: Vec<Member> = (0..3)
        .map(|k| {
            let slow = k == 2;
            let proc = spawn(
                "subscriber",
                &[("BUS", name.to_string()), ("SLOW", if slow { "1" } else { "0" }.into())],
            );
            Member {
                proc: proc.named(if slow { "sub-slow" } else { "sub" }),
                stdin: None,
                rss: vec![],
            }
        })
        .collect();
    wait_for_subscribers(&bus, 3);
    let mut producers: Vec<Member> = (0..2)
        .map(|id| {
            let (proc, stdin) = spawn_with_stdin("producer", &[("BUS", name.to_string()), ("ID", id.to_string())]);
            Member {
                proc: proc.named(&format!("producer{id}")),
                stdin: Some(stdin),
                rss: vec![],
            }
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
                    .map(|p| format!("{}:{}", p.name(), mib(*p.rss.last().unwrap_or(&0))))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            last_published = st.published;
        }
    }
    let elapsed = start.elapsed();
    let mut published = 0;
    for p in producers.iter_mut() {
        published += p.finish("published", Duration::from_secs(30))["published"];
    }
    let st = bus.stats();
    bus.publish("ctl.done", b"").unwrap();
    let mut sub_results = vec![];
    for s in subs.iter_mut() {
        sub_results.push(s.finish("delivered", Duration::from_secs(60)));
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
        growths.push((p.name().to_string(), growth));
        eprintln!(
            "{:<10} {:>12} {:>12} {:>12} {:>12}",
            p.name(),
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
            s.name(),
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
            s.name()
        );
        assert_eq!(r["abandoned"], 0, "{}: nobody died, nothing is abandoned", s.name());
    }
    assert!(
        sub_results[2]["missed"] > 0,
        "the slow subscriber should have been lapped"
    );
    assert!(st.evicted > 0, "continual eviction");
}
