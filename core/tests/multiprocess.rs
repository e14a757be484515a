//! Real processes: producers and subscribers in separate processes, with
//! checksummed payloads, lapping, groups and kill -9.
//!
//! Children are this test binary re-executed with `SHMBUS_TEST_ROLE` set; the
//! `child_entry_point` test then plays that role and prints `RESULT ...` lines.

mod common;

use std::time::{Duration, Instant};

use common::child::{self, arg, kv, result, spawn, wait_for_subscribers, Proc};
use common::{block_config, check_payload, make_payload, Rng, StreamCheck, TempName};
use shmbus::{Bus, Config, Filter, Start, SubscribeOptions};

/// `count` producer children with ids `0..count`, each publishing `n` frames.
fn spawn_producers(name: &TempName, count: u32, n: u64) -> Vec<Proc> {
    (0..count)
        .map(|id| {
            spawn(
                "producer",
                &[("BUS", name.to_string()), ("ID", id.to_string()), ("N", n.to_string())],
            )
        })
        .collect()
}

/// Wait for each producer to publish all of its `n` frames.
fn finish_producers(producers: Vec<Proc>, n: u64, limit: Duration) {
    for mut p in producers {
        assert_eq!(p.finish_clean(limit).kv("published")["published"], n);
    }
}

// ---------------------------------------------------------------------------
// child roles
// ---------------------------------------------------------------------------

#[test]
fn child_entry_point() {
    let Some(role) = child::role() else { return };
    match role.as_str() {
        "producer" => role_producer(),
        "subscriber" => role_subscriber(),
        "member" => role_member(),
        "spin-producer" => role_spin_producer(),
        "spin-many-producer" => role_spin_many_producer(),
        "claim-and-hang" => role_claim_and_hang(),
        "idle-subscriber" => role_idle_subscriber(),
        other => panic!("unknown role {other}"),
    }
}

fn role_producer() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let id: u32 = arg("ID").parse().unwrap();
    let n: u64 = arg("N").parse().unwrap();
    for i in 0..n {
        let len = 24 + (i as usize * 7 + id as usize * 13) % 200;
        bus.publish(&format!("data.p{id}"), &make_payload(id, i, len)).unwrap();
    }
    result(format!("published={n}"));
}

fn role_subscriber() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let slow: bool = arg("SLOW") == "1";
    let mut sub = bus
        .subscribe(Filter::topic("data.#").or(Filter::topic("ctl.done")))
        .unwrap();
    let mut check = StreamCheck::default();
    loop {
        let f = sub
            .recv_timeout(Duration::from_secs(20))
            .unwrap()
            .expect("frames stopped coming");
        if !check.frame(&f) {
            break;
        }
        if slow && check.delivered % 64 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    result(format!(
        "delivered={} missed={} abandoned={}",
        check.delivered,
        sub.missed(),
        sub.abandoned()
    ));
}

fn role_member() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let mut sub = bus.join_group("workers", Filter::topic("data.#")).unwrap();
    result("ready=1");
    let mut got = vec![];
    let mut started = false;
    while let Some(f) = sub
        .recv_timeout(Duration::from_millis(if started { 1500 } else { 20_000 }))
        .unwrap()
    {
        started = true;
        got.push(check_payload(f.payload()));
    }
    for (p, i) in got {
        result(format!("p={p} i={i}"));
    }
    result(format!("missed={}", sub.missed()));
}

fn role_spin_producer() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let id: u32 = arg("ID").parse().unwrap();
    let mut i = 0u64;
    loop {
        bus.publish("data.spin", &make_payload(id, i, 64 + (i as usize % 300)))
            .unwrap();
        i += 1;
    }
}

/// Like `spin-producer`, in `publish_many` calls of 1 to 100 frames (so a
/// kill often lands inside a claim of several frames, some committed).
fn role_spin_many_producer() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let id: u32 = arg("ID").parse().unwrap();
    let mut rng = Rng::new(u64::from(id));
    let mut i = 0u64;
    loop {
        let batch: Vec<Vec<u8>> = (0..1 + rng.below(100))
            .map(|j| make_payload(id, i + j, 64 + ((i + j) as usize % 300)))
            .collect();
        bus.publish_many("data.spin", &batch).unwrap();
        i += batch.len() as u64;
    }
}

fn role_claim_and_hang() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let mut claim = bus.claim("data.hang", 100).unwrap();
    claim.payload_mut()[0] = 1;
    result(format!("claimed={}", claim.seq()));
    std::thread::sleep(Duration::from_secs(60));
    claim.commit();
}

fn role_idle_subscriber() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let _sub = bus.subscribe(Filter::all()).unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

// ---------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------

#[test]
fn four_producer_processes_three_subscribers_reconcile_with_one_lapped() {
    let name = TempName::new("mp-reconcile");
    let cfg = Config::default().memory_limit(512 << 10).max_frame_size(1024);
    let bus = Bus::create(&name, &cfg).unwrap();
    let subs: Vec<Proc> = (0..3)
        .map(|k| {
            spawn(
                "subscriber",
                &[
                    ("BUS", name.to_string()),
                    ("SLOW", if k == 2 { "1".into() } else { "0".into() }),
                ],
            )
        })
        .collect();
    wait_for_subscribers(&bus, 3);
    let n = 20_000u64;
    finish_producers(spawn_producers(&name, 4, n), n, Duration::from_secs(120));
    bus.publish("ctl.done", b"").unwrap();
    let mut lapped = 0;
    for mut s in subs {
        let m = s.finish_clean(Duration::from_secs(120)).kv("delivered");
        assert_eq!(
            m["delivered"] + m["missed"],
            4 * n,
            "delivered + missed != published: {m:?}"
        );
        assert_eq!(m["abandoned"], 0);
        if m["missed"] > 0 {
            lapped += 1;
        }
    }
    assert!(lapped >= 1, "the slow subscriber should have been lapped");
    let st = bus.stats();
    assert_eq!(st.published, 4 * n + 1);
    assert!(st.evicted > 0);
}

#[test]
fn group_of_three_processes_gets_each_frame_exactly_once() {
    let name = TempName::new("mp-group");
    let bus = Bus::create(&name, &Config::default().memory_limit(32 << 20)).unwrap();
    let members: Vec<Proc> = (0..3).map(|_| spawn("member", &[("BUS", name.to_string())])).collect();
    wait_for_subscribers(&bus, 3);
    let n = 6_000u64;
    finish_producers(spawn_producers(&name, 2, n), n, Duration::from_secs(60));
    let mut all = vec![];
    let mut per_member = vec![];
    for mut m in members {
        let lines = m.finish_clean(Duration::from_secs(60)).lines;
        let mut mine = 0;
        for l in &lines {
            let kvs = kv(l);
            if let (Some(p), Some(i)) = (kvs.get("p"), kvs.get("i")) {
                all.push((*p, *i));
                mine += 1;
            }
            if let Some(missed) = kvs.get("missed") {
                assert_eq!(*missed, 0);
            }
        }
        per_member.push(mine);
    }
    all.sort_unstable();
    let expect: Vec<(u64, u64)> = (0..2).flat_map(|p| (0..n).map(move |i| (p, i))).collect();
    assert_eq!(all.len(), expect.len(), "per member: {per_member:?}");
    assert_eq!(all, expect, "each frame must reach exactly one member");
}

/// Forty producers killed with SIGKILL at random moments, half of them
/// publishing one frame at a time and half in `publish_many` batches (so
/// some die between the commits of one claim): every frame delivered is
/// intact, a steady producer's frames arrive in order, and the bus keeps
/// working for everybody.
#[test]
fn killed_producers_do_not_stop_the_others() {
    let name = TempName::new("mp-kill-producer");
    let cfg = Config::default()
        .memory_limit(1 << 20)
        .max_frame_size(1024)
        .claim_timeout(Duration::from_millis(20));
    let bus = Bus::create(&name, &cfg).unwrap();
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    let steady_n = 30_000u64;
    let steady = spawn(
        "producer",
        &[
            ("BUS", name.to_string()),
            ("ID", "7".into()),
            ("N", steady_n.to_string()),
        ],
    );
    let mut rng = Rng::new(12345);
    let mut steady_seen = 0u64;
    let mut next_steady = 0u64;
    // Every frame is intact; the steady producer's arrive in order.
    let mut seen = |f: &shmbus::Frame| {
        let (p, i) = check_payload(f.payload());
        if p == 7 {
            assert!(i >= next_steady);
            next_steady = i + 1;
            steady_seen += 1;
        }
    };
    for k in 0..40 {
        // Every other victim publishes in batches (`publish_many`).
        let role = if k % 2 == 0 {
            "spin-producer"
        } else {
            "spin-many-producer"
        };
        let mut victim = spawn(role, &[("BUS", name.to_string()), ("ID", (100 + k).to_string())]);
        std::thread::sleep(Duration::from_millis(2 + rng.below(15)));
        victim.kill9();
        while let Some(f) = sub.try_recv().unwrap() {
            seen(&f);
        }
    }
    finish_producers(vec![steady], steady_n, Duration::from_secs(120));
    // The bus still works for everybody after 40 kills.
    let seq = bus.publish("after", &make_payload(9, 0, 64)).unwrap();
    let t0 = Instant::now();
    loop {
        match sub.recv_timeout(Duration::from_millis(200)).unwrap() {
            Some(f) if f.seq() == seq => break,
            Some(f) => seen(&f),
            None => {}
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "subscriber wedged");
    }
    assert!(steady_seen + sub.missed() > 0);
    bus.reap();
    assert!(bus.stats().producers.iter().all(|p| p.pid == std::process::id()));
}

#[test]
fn producer_killed_between_claim_and_commit_is_skipped_and_counted() {
    let name = TempName::new("mp-claim-kill");
    let cfg = Config::default()
        .memory_limit(256 << 10)
        .max_frame_size(1024)
        .claim_timeout(Duration::from_millis(50));
    let bus = Bus::create(&name, &cfg).unwrap();
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    let mut hang = spawn("claim-and-hang", &[("BUS", name.to_string())]);
    let claimed = kv(&hang.wait_line("claimed=", Duration::from_secs(20)))["claimed"];
    hang.kill9();
    let after = bus.publish("after", b"x").unwrap();
    assert_eq!(after, claimed + 1);
    let f = sub
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("subscriber must skip the abandoned claim");
    assert_eq!(f.seq(), after);
    assert_eq!(sub.abandoned(), 1);
    // Wrap the ring several times: rotation must not wait for the dead producer.
    for i in 0..20_000u64 {
        bus.publish("fill", &make_payload(1, i, 200)).unwrap();
    }
    assert!(bus.stats().abandoned >= 1);
}

#[test]
fn killed_subscriber_entry_is_reclaimed_and_no_longer_blocks() {
    let name = TempName::new("mp-kill-sub");
    let cfg = block_config(Duration::from_millis(200));
    let bus = Bus::create(&name, &cfg).unwrap();
    let mut child = spawn("idle-subscriber", &[("BUS", name.to_string())]);
    wait_for_subscribers(&bus, 1);
    child.kill9();
    let st = bus.stats();
    assert_eq!(st.subscribers.len(), 1);
    assert!(!st.subscribers[0].alive);
    // Publishing far beyond capacity succeeds: the dead subscriber holds nothing back.
    for i in 0..5_000u64 {
        bus.publish("t", &make_payload(1, i, 200)).unwrap();
    }
    bus.reap();
    assert!(bus.stats().subscribers.is_empty(), "dead entry must be reclaimed");
    // And a live slow subscriber does block.
    let _sub = bus
        .subscribe_with(
            Filter::all(),
            SubscribeOptions {
                start: Start::Newest,
                ..Default::default()
            },
        )
        .unwrap();
    let err = (0..5_000u64).find_map(|i| bus.publish("t", &make_payload(1, i, 200)).err());
    assert!(matches!(err, Some(shmbus::Error::Full)));
}
