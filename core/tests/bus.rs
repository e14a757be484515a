//! Behaviour of one bus within one process.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{block_config, check_payload, make_payload, oldest, open_rw, read_header, shm_path, TempName};
use shmbus::{Bus, Config, Error, EventType, Filter, Kind, Meta, Overflow, Start, SubscribeOptions, WaitStrategy};

const T: Duration = Duration::from_millis(500);

fn small() -> Config {
    Config::default().memory_limit(1 << 20).max_frame_size(4096)
}

/// Start `producers` threads, thread `p` publishing `per` frames
/// `make_payload(p, 0..per, len)` on topic `t`.
fn publish_from_threads(bus: &Bus, producers: u32, per: u64, len: usize) -> Vec<std::thread::JoinHandle<()>> {
    (0..producers)
        .map(|p| {
            let bus = bus.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    bus.publish("t", &make_payload(p, i, len)).unwrap();
                }
            })
        })
        .collect()
}

#[test]
fn published_frame_round_trips_with_metadata() {
    let name = TempName::new("roundtrip");
    let bus = Bus::create(&name, &small()).unwrap();
    let mut sub = bus.subscribe(Filter::topic("events.process.#")).unwrap();
    let meta = Meta::event(EventType::Update)
        .correlation_id(11)
        .parent_id(22)
        .root_id(33);
    let seq = bus.publish_with(&meta, "events.process.lifecycle", b"hello").unwrap();
    let f = sub.recv_timeout(T).unwrap().expect("frame");
    assert_eq!(f.seq(), seq);
    assert_eq!(f.topic(), "events.process.lifecycle");
    assert_eq!(f.payload(), b"hello");
    assert_eq!(f.kind(), Kind::Event);
    assert_eq!(f.event_type(), EventType::Update);
    assert_eq!(
        (f.correlation().id, f.correlation().parent, f.correlation().root),
        (11, 22, 33)
    );
    assert_eq!(f.producer(), std::process::id());
    assert!(f.timestamp() > 1_600_000_000_000_000_000);
    assert!(sub.recv_timeout(Duration::from_millis(10)).unwrap().is_none());
}

#[test]
fn subscriber_only_sees_matching_topics() {
    let name = TempName::new("filter");
    let bus = Bus::create(&name, &small()).unwrap();
    let mut sub = bus.subscribe(Filter::topic("a.+.c")).unwrap();
    let mut re = bus.subscribe(Filter::regex("(new|update):observable")).unwrap();
    for t in [
        "a.b.c",
        "a.b",
        "a.x.c",
        "a.b.c.d",
        "new:observable:url",
        "delete:observable",
    ] {
        bus.publish(t, t.as_bytes()).unwrap();
    }
    let mut got = vec![];
    while let Some(f) = sub.recv_timeout(Duration::from_millis(20)).unwrap() {
        got.push(f.topic().to_string());
    }
    assert_eq!(got, ["a.b.c", "a.x.c"]);
    let mut got = vec![];
    while let Some(f) = re.recv_timeout(Duration::from_millis(20)).unwrap() {
        got.push(f.topic().to_string());
    }
    assert_eq!(got, ["new:observable:url"]);
}

#[test]
fn claim_commit_is_delivered_and_dropped_claim_is_skipped() {
    let name = TempName::new("claim");
    let bus = Bus::create(&name, &small()).unwrap();
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    let mut c = bus.claim("t", 512).unwrap();
    assert!(matches!(bus.publish("t", b"x"), Err(Error::ClaimOutstanding)));
    c.payload_mut()[..3].copy_from_slice(b"abc");
    let seq = c.commit();
    {
        let mut aborted = bus.claim("t", 8).unwrap();
        aborted.payload_mut().fill(7);
    }
    let after = bus.publish("t", b"after").unwrap();
    let f = sub.recv_timeout(T).unwrap().unwrap();
    assert_eq!(f.seq(), seq);
    assert_eq!(f.payload().len(), 512);
    assert_eq!(&f.payload()[..4], b"abc\0");
    let f = sub.recv_timeout(T).unwrap().unwrap();
    assert_eq!((f.seq(), f.payload()), (after, &b"after"[..]));
    assert_eq!(bus.stats().aborted, 1);
}

/// Zero-copy claims in both header forms, with checksums on: the checksum
/// is computed from the segment (`seal_checksum`) over what the frame
/// stores, and readers accept exactly those frames; an aborted claim with
/// ids is skipped like one without.
#[test]
fn claims_with_and_without_ids_carry_valid_checksums() {
    use shmbus::{Correlation, Meta};
    let name = TempName::new("claimck");
    let bus = Bus::create(&name, &small().checksum(true)).unwrap();
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    let with_ids = Meta::default().correlation_id(3).root_id(1);
    for meta in [Meta::default(), with_ids] {
        let mut c = bus.claim_with(&meta, "claims.x", 13).unwrap();
        c.payload_mut().copy_from_slice(b"zero-copy!!!!");
        c.commit();
        drop(bus.claim_with(&meta, "claims.x", 5).unwrap()); // aborted
    }
    for expect in [Correlation::default(), with_ids.correlation] {
        let f = sub.recv_timeout(T).unwrap().unwrap();
        assert_eq!(
            (f.topic(), f.payload(), f.correlation()),
            ("claims.x", &b"zero-copy!!!!"[..], expect)
        );
    }
    assert!(sub.try_recv().unwrap().is_none());
    assert_eq!((sub.corrupt(), bus.stats().aborted), (0, 2));
}

#[test]
fn bad_input_gets_clear_errors() {
    let name = TempName::new("badinput");
    let bus = Bus::create(&name, &small()).unwrap();
    assert!(matches!(bus.publish("", b"x"), Err(Error::Filter(_))));
    assert!(matches!(bus.publish("a..b", b"x"), Err(Error::Filter(_))));
    assert!(matches!(bus.publish("a.#", b"x"), Err(Error::Filter(_))));
    assert!(matches!(bus.publish(&"x".repeat(256), b"x"), Err(Error::Filter(_))));
    assert!(matches!(
        bus.publish("t", &vec![0; 4097]),
        Err(Error::TooLarge { size: 4097, max: 4096 })
    ));
    // The reserved padding kind is refused by publishes and claims alike.
    let padding = Meta::event(EventType::New).kind(Kind::Padding);
    assert!(matches!(
        bus.publish_with(&padding, "t", b"x"),
        Err(Error::Config { .. })
    ));
    assert!(matches!(bus.claim_with(&padding, "t", 8), Err(Error::Config { .. })));
    // Bad topics took no producer slot: this thread has published nothing.
    assert!(bus.stats().producers.is_empty());
    // A topic checked once is remembered by this thread (TopicMemo); a
    // different topic of the same length is still checked, by publish and
    // by claim.
    bus.publish("abcdefgh.ij", b"x").unwrap();
    for bad in [
        "abcdefgh..j",
        "abcdefgh.+j",
        "abcdefgh.i#",
        "abcdefgh.i ",
        ".bcdefgh.ij",
    ] {
        assert!(matches!(bus.publish(bad, b"x"), Err(Error::Filter(_))), "{bad}");
        assert!(matches!(bus.claim(bad, 8), Err(Error::Filter(_))), "{bad}");
        assert!(
            matches!(
                bus.publish_with_topic_bytes(&Meta::default(), bad.as_bytes(), b"x"),
                Err(Error::Filter(_))
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        bus.publish_with_topic_bytes(&Meta::default(), b"abcdefgh.i\xff", b"x"),
        Err(Error::Filter(_))
    ));
    assert!(matches!(bus.subscribe(Filter::topic("a.#.b")), Err(Error::Filter(_))));
    assert!(matches!(bus.subscribe(Filter::regex("(")), Err(Error::Filter(_))));
    assert!(matches!(Bus::create(&name, &small()), Err(Error::Exists { .. })));
    assert!(matches!(
        Bus::open("no-such-bus-shmbus-test"),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(Bus::create("a/b", &small()), Err(Error::InvalidName { .. })));
    assert!(matches!(
        Bus::create("x", &small().keep_ratio(2.0)),
        Err(Error::Config {
            field: "keep_ratio",
            ..
        })
    ));
    // Nothing was lost: the bus still works.
    let mut sub = bus.subscribe_with(Filter::all(), oldest()).unwrap();
    bus.publish("ok", b"1").unwrap();
    let f = sub.recv_timeout(T).unwrap().unwrap();
    assert_eq!((f.topic(), f.payload()), ("abcdefgh.ij", &b"x"[..]));
    assert_eq!(sub.recv_timeout(T).unwrap().unwrap().payload(), b"1");
    assert!(sub.try_recv().unwrap().is_none());
}

#[test]
fn lapped_subscriber_counts_missed_frames_exactly() {
    let name = TempName::new("lapped");
    let cfg = Config::default()
        .memory_limit(256 << 10)
        .max_frame_size(1024)
        .keep_ratio(0.8);
    let bus = Bus::create(&name, &cfg).unwrap();
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    let n = 20_000u64;
    for i in 0..n {
        bus.publish("t", &make_payload(1, i, 100)).unwrap();
    }
    let mut delivered = 0u64;
    let mut last = None;
    while let Some(f) = sub.recv_timeout(Duration::from_millis(20)).unwrap() {
        let (_, idx) = check_payload(f.payload());
        if let Some(l) = last {
            assert!(idx > l, "order violated");
        }
        last = Some(idx);
        delivered += 1;
    }
    assert!(sub.missed() > 0);
    assert_eq!(delivered + sub.missed(), n);
    let st = bus.stats();
    assert_eq!(st.published, n);
    assert!(st.evicted > 0);
    assert!(st.bytes_used <= st.data_capacity);
    // About keep_ratio of the data stays after an eviction.
    assert!(st.partitions == 5, "{}", st.partitions);
}

#[test]
fn reject_policy_refuses_instead_of_evicting_unread_frames() {
    let name = TempName::new("reject");
    let cfg = Config::default()
        .memory_limit(256 << 10)
        .max_frame_size(1024)
        .overflow(Overflow::Reject);
    let bus = Bus::create(&name, &cfg).unwrap();
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    let mut published = 0u64;
    let err = loop {
        match bus.publish("t", &[1; 500]) {
            Ok(_) => published += 1,
            Err(e) => break e,
        }
        assert!(published < 100_000);
    };
    assert!(matches!(err, Error::Full));
    assert_eq!(bus.stats().rejected, 1);
    let mut got = 0;
    while sub.recv_timeout(Duration::from_millis(10)).unwrap().is_some() {
        got += 1;
    }
    assert_eq!(got, published);
    assert_eq!(sub.missed(), 0);
    // After reading, there is room again.
    bus.publish("t", &[1; 500]).unwrap();
}

#[test]
fn block_policy_waits_then_fails_full() {
    let name = TempName::new("block");
    let cfg = block_config(Duration::from_millis(30));
    let bus = Bus::create(&name, &cfg).unwrap();
    let _sub = bus.subscribe(Filter::all()).unwrap();
    let started = std::time::Instant::now();
    let err = loop {
        if let Err(e) = bus.publish("t", &[1; 500]) {
            break e;
        }
    };
    assert!(matches!(err, Error::Full));
    assert!(started.elapsed() >= Duration::from_millis(30));
}

#[test]
fn block_policy_waits_for_a_slow_reader_and_loses_nothing() {
    let name = TempName::new("block-ok");
    let cfg = block_config(Duration::from_secs(10));
    let bus = Bus::create(&name, &cfg).unwrap();
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    // About four times what the bus holds, so the producer must wait for
    // the reader several times.
    const N: u64 = 2_000;
    std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut next = 0u64;
            while next < N {
                let f = sub.recv_timeout(Duration::from_secs(10)).unwrap().expect("a frame");
                assert_eq!(f.payload()[..8], next.to_le_bytes(), "frames in order, none lost");
                next += 1;
                if next % 64 == 0 {
                    std::thread::sleep(Duration::from_millis(1)); // a slow reader
                }
            }
            sub.missed()
        });
        for i in 0..N {
            let mut payload = [0u8; 500];
            payload[..8].copy_from_slice(&i.to_le_bytes());
            bus.publish("t", &payload)
                .expect("Block waits for the reader instead of failing");
        }
        assert_eq!(reader.join().unwrap(), 0);
    });
    assert_eq!(bus.stats().published, N);
}

#[test]
fn listener_limit_is_enforced_and_freed_on_drop() {
    let name = TempName::new("limit");
    let bus = Bus::create(&name, &small().listener_limit(2)).unwrap();
    let a = bus.subscribe(Filter::all()).unwrap();
    let _b = bus.subscribe(Filter::all()).unwrap();
    assert!(matches!(
        bus.subscribe(Filter::all()),
        Err(Error::Limit {
            what: "listener",
            limit: 2
        })
    ));
    drop(a);
    bus.subscribe(Filter::all()).unwrap();
}

#[test]
fn start_positions_oldest_newest_and_seq() {
    let name = TempName::new("start");
    let bus = Bus::create(&name, &small()).unwrap();
    for i in 0..10u8 {
        bus.publish("t", &[i]).unwrap();
    }
    let mut newest = bus.subscribe(Filter::all()).unwrap();
    let mut oldest_sub = bus.subscribe_with(Filter::all(), oldest()).unwrap();
    let mut from7 = bus
        .subscribe_with(
            Filter::all(),
            SubscribeOptions {
                start: Start::Seq(7),
                wait: WaitStrategy::Spin,
            },
        )
        .unwrap();
    assert!(newest.recv_timeout(Duration::from_millis(10)).unwrap().is_none());
    assert_eq!(oldest_sub.recv_timeout(T).unwrap().unwrap().seq(), 0);
    assert_eq!(from7.recv_timeout(T).unwrap().unwrap().seq(), 7);
}

#[test]
fn group_delivers_each_frame_to_exactly_one_member() {
    let name = TempName::new("group");
    let bus = Bus::create(&name, &Config::default().memory_limit(8 << 20)).unwrap();
    let n = 3000u64;
    let members: Vec<_> = (0..3)
        .map(|_| bus.join_group("enrichers", Filter::all()).unwrap())
        .collect();
    assert!(matches!(
        bus.join_group("enrichers", Filter::topic("x")),
        Err(Error::GroupFilterMismatch { .. })
    ));
    let handles: Vec<_> = members
        .into_iter()
        .map(|mut m| {
            std::thread::spawn(move || {
                let mut seen = vec![];
                while let Some(f) = m.recv_timeout(Duration::from_millis(300)).unwrap() {
                    seen.push(check_payload(f.payload()).1);
                }
                seen
            })
        })
        .collect();
    for i in 0..n {
        bus.publish("t", &make_payload(0, i, 64)).unwrap();
    }
    let mut all = vec![];
    for h in handles {
        let seen = h.join().unwrap();
        for w in seen.windows(2) {
            assert!(w[0] < w[1]);
        }
        all.extend(seen);
    }
    all.sort_unstable();
    assert_eq!(all, (0..n).collect::<Vec<_>>());
    let st = bus.stats();
    assert_eq!(st.groups.len(), 1);
    assert_eq!(st.groups[0].delivered, n);
}

#[test]
fn threads_publish_concurrently_with_per_producer_order() {
    let name = TempName::new("threads");
    let bus = Bus::create(&name, &Config::default().memory_limit(16 << 20)).unwrap();
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    let per = 5000u64;
    let hs = publish_from_threads(&bus, 4, per, 48);
    let mut next = [0u64; 4];
    let mut last_seq = None;
    let mut got = 0;
    while got < 4 * per {
        let f = sub.recv_timeout(Duration::from_secs(5)).unwrap().expect("frame");
        let (p, i) = check_payload(f.payload());
        assert_eq!(i, next[p as usize], "producer {p} out of order");
        next[p as usize] += 1;
        if let Some(l) = last_seq {
            assert!(f.seq() > l);
        }
        last_seq = Some(f.seq());
        got += 1;
    }
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(sub.missed(), 0);
    assert_eq!(bus.stats().published, 4 * per);
}

#[test]
fn garbage_and_foreign_segments_are_refused() {
    use std::io::Write;
    for (tag, bytes) in [
        ("empty", vec![]),
        ("short", vec![1u8; 100]),
        ("garbage", vec![0xAB; 64 << 10]),
        ("zeros", vec![0; 64 << 10]),
    ] {
        let name = TempName::new(tag);
        std::fs::File::create(shm_path(&name))
            .unwrap()
            .write_all(&bytes)
            .unwrap();
        match Bus::open(&name) {
            Err(Error::Incompatible { .. }) => {}
            other => panic!("{tag}: expected Incompatible, got {other:?}"),
        }
    }
}

#[test]
fn wrong_layout_version_is_incompatible() {
    use std::os::unix::fs::FileExt;
    let name = TempName::new("version");
    drop(Bus::create(&name, &small()).unwrap());
    open_rw(&name).write_at(&99u32.to_le_bytes(), 8).unwrap();
    let err = Bus::open(&name).unwrap_err();
    assert!(matches!(err, Error::Incompatible { .. }));
    assert!(err.to_string().contains("version"), "{err}");
}

#[test]
fn segment_is_created_owner_only_by_default() {
    use std::os::unix::fs::PermissionsExt;
    let name = TempName::new("mode");
    let _bus = Bus::create(&name, &small()).unwrap();
    let meta = std::fs::metadata(shm_path(&name)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let name2 = TempName::new("mode2");
    let _bus2 = Bus::create(&name2, &small().mode(0o660)).unwrap();
    let meta = std::fs::metadata(shm_path(&name2)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
}

#[test]
fn removed_bus_keeps_working_for_holders_and_recreate_starts_clean() {
    let name = TempName::new("remove");
    let bus = Bus::create(&name, &small()).unwrap();
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    Bus::remove(&name).unwrap();
    assert!(matches!(Bus::remove(&name), Err(Error::NotFound { .. })));
    bus.publish("t", b"still").unwrap();
    assert_eq!(sub.recv_timeout(T).unwrap().unwrap().payload(), b"still");
    let fresh = Bus::create(&name, &small()).unwrap();
    assert_eq!(fresh.stats().next_seq, 0);
}

#[test]
fn stats_report_subscribers_and_counters() {
    let name = TempName::new("stats");
    let bus = Bus::create(&name, &small()).unwrap();
    let mut sub = bus.subscribe(Filter::topic("a.#")).unwrap();
    for _ in 0..5 {
        bus.publish("a.b", b"x").unwrap();
    }
    sub.recv_timeout(T).unwrap().unwrap();
    let st = bus.stats();
    assert_eq!(st.published, 5);
    assert_eq!(st.next_seq, 5);
    assert_eq!(st.subscribers.len(), 1);
    let s = &st.subscribers[0];
    assert_eq!(s.pid, std::process::id());
    assert!(s.alive);
    assert_eq!(s.filter, "topic:a.#");
    assert_eq!(s.delivered, 1);
    assert_eq!(s.lag_frames, 4);
    let seen: HashSet<u32> = st.producers.iter().map(|p| p.pid).collect();
    assert!(seen.contains(&std::process::id()));
}

fn data_offset(name: &str) -> u64 {
    read_header(&open_rw(name)).off_data
}

#[test]
fn checksum_detects_a_scribbled_payload_and_drops_the_frame() {
    use shmbus::frame::{frame_len, BASE_HEADER_LEN};
    use shmbus::Meta;
    use std::os::unix::fs::FileExt;
    let name = TempName::new("checksum");
    let bus = Bus::create(&name, &small().checksum(true)).unwrap();
    let mut sub = bus.subscribe_with(Filter::all(), oldest()).unwrap();
    // Both header forms: without ids (48 bytes) and with them (96).
    bus.publish("t", b"first frame payload").unwrap();
    bus.publish_with(&Meta::default().root_id(7), "t", b"with ids").unwrap();
    let good = bus.publish("t", b"second").unwrap();
    let good_ids = bus.publish_with(&Meta::default().root_id(9), "t", b"kept").unwrap();
    let f = open_rw(&name);
    let f0 = data_offset(&name);
    // Flip one payload byte of the first frame (header 48 + topic 1) and
    // one byte of the second frame's root id (the last of its 3 ids).
    f.write_at(b"X", f0 + BASE_HEADER_LEN as u64 + 1 + 3).unwrap();
    let f1 = f0 + frame_len(1, 19, false) as u64;
    f.write_at(b"X", f1 + 96 - 5).unwrap();
    let got = sub.recv_timeout(T).unwrap().unwrap();
    assert_eq!((got.seq(), got.payload()), (good, &b"second"[..]));
    let got = sub.recv_timeout(T).unwrap().unwrap();
    assert_eq!(
        (got.seq(), got.payload(), got.correlation().root),
        (good_ids, &b"kept"[..], 9)
    );
    assert_eq!(sub.corrupt(), 2);
    assert_eq!(sub.missed(), 0);
    assert_eq!(bus.stats().subscribers[0].corrupt, 2);
}

/// A frame stores its correlation ids only when one is set: 48 header
/// bytes instead of 96. Readers see the same frame either way.
#[test]
fn frames_store_correlation_ids_only_when_set() {
    use shmbus::frame::frame_len;
    use shmbus::{Correlation, Meta};
    use std::os::unix::fs::FileExt;
    let name = TempName::new("ids");
    let bus = Bus::create(&name, &small()).unwrap();
    let mut sub = bus.subscribe_with(Filter::all(), oldest()).unwrap();
    let payload = [0xa5u8; 64];
    let only_parent = Correlation {
        parent: 5,
        ..Correlation::default()
    };
    let metas = [Meta::default(), Meta::default().parent_id(5), Meta::default()];
    for meta in &metas {
        bus.publish_with(meta, "t", &payload).unwrap();
    }
    // The commit words in the segment give each frame's stored length.
    let f = open_rw(&name);
    let mut at = data_offset(&name);
    for ids in [false, true, false] {
        let mut w = [0u8; 8];
        f.read_exact_at(&mut w, at).unwrap();
        let len = u64::from_le_bytes(w) & 0xffff_ffff;
        assert_eq!(len, frame_len(1, 64, ids) as u64, "ids {ids}");
        at += len;
    }
    assert_eq!(frame_len(1, 64, false), 120);
    for expect in [Correlation::default(), only_parent, Correlation::default()] {
        let got = sub.recv_timeout(T).unwrap().unwrap();
        assert_eq!(
            (got.topic(), got.payload(), got.correlation()),
            ("t", &payload[..], expect)
        );
    }
}

#[test]
fn without_checksum_a_scribbled_payload_is_not_detected_but_headers_are_validated() {
    use std::os::unix::fs::FileExt;
    let name = TempName::new("nochecksum");
    let bus = Bus::create(&name, &small().claim_timeout(Duration::from_millis(10))).unwrap();
    let mut sub = bus.subscribe_with(Filter::all(), oldest()).unwrap();
    bus.publish("t", b"payload").unwrap();
    let second = bus.publish("t", b"next").unwrap();
    let f = open_rw(&name);
    // Scribble the first frame's recorded position: validation refuses it and
    // the reader skips it after the claim timeout.
    f.write_at(&[0xEE; 8], data_offset(&name) + 8).unwrap();
    let got = sub.recv_timeout(Duration::from_secs(2)).unwrap().unwrap();
    assert_eq!(got.seq(), second);
    assert_eq!(sub.abandoned(), 1);
}

#[test]
fn truncated_segment_gives_an_error_not_sigbus() {
    let name = TempName::new("truncate");
    let bus = Bus::create(&name, &small()).unwrap();
    let mut sub = bus.subscribe_with(Filter::all(), oldest()).unwrap();
    bus.publish("t", b"before").unwrap();
    open_rw(&name).set_len(4096).unwrap();
    let err = loop {
        match sub.recv_timeout(Duration::from_millis(50)) {
            Err(e) => break e,
            Ok(_) => continue,
        }
    };
    assert!(matches!(err, Error::Incompatible { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(matches!(bus.publish("t", b"after"), Err(Error::Incompatible { .. })));
}

#[test]
fn create_allocates_all_the_memory_up_front() {
    use std::os::unix::fs::MetadataExt;
    let name = TempName::new("reserve");
    let bus = Bus::create(&name, &small()).unwrap();
    let md = std::fs::metadata(shm_path(&name)).unwrap();
    assert!(md.len() > 0 && md.len() <= 1 << 20, "segment of {} bytes", md.len());
    // st_blocks counts 512-byte units: every page is there before any publish.
    assert!(
        md.blocks() * 512 >= md.len(),
        "{} blocks for {} bytes",
        md.blocks(),
        md.len()
    );
    drop(bus);
}

#[test]
fn racing_open_or_create_all_succeed_while_the_creator_allocates() {
    // Creating a 64 MiB bus allocates and maps it (tens of ms): the others
    // must wait for the header, not call the half-made object foreign.
    for round in 0..3 {
        let name = TempName::new(&format!("race{round}"));
        let barrier = std::sync::Barrier::new(4);
        let results: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        Bus::open_or_create(&name, &Config::default()).map(drop)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in &results {
            assert!(r.is_ok(), "{r:?}");
        }
    }
}

#[test]
fn bus_larger_than_dev_shm_is_refused_at_create_not_at_a_later_publish() {
    // SAFETY: an all-zero statvfs is a valid out-buffer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid out-pointer.
    let rc = unsafe { libc::statvfs(c"/dev/shm".as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statvfs /dev/shm: {}", std::io::Error::last_os_error());
    let limit = 1u64 << 40; // the largest memory_limit a Config accepts
    if (st.f_blocks as u64).saturating_mul(st.f_frsize as u64) >= limit {
        eprintln!("skipped: /dev/shm holds a {limit}-byte bus");
        return;
    }
    let name = TempName::new("too-big");
    let err = Bus::create(&name, &Config::default().memory_limit(limit)).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("not enough room in /dev/shm"), "{err}");
    assert!(
        !std::path::Path::new(&shm_path(&name)).exists(),
        "the half-made bus is removed"
    );
}

#[test]
fn evicted_count_is_exact_with_concurrent_producers() {
    let name = TempName::new("evicted");
    let bus = Bus::create(&name, &Config::default().memory_limit(1 << 20).max_frame_size(1024)).unwrap();
    let per = 50_000u64;
    let hs = publish_from_threads(&bus, 2, per, 64);
    for h in hs {
        h.join().unwrap();
    }
    let st = bus.stats();
    // Everything before the oldest retained frame was evicted, nothing else.
    assert_eq!(st.evicted, st.oldest_seq);
    assert!(st.evicted > 0);
}

#[test]
fn single_producer_mode_delivers_and_refuses_a_second_producer() {
    let name = TempName::new("spsc");
    let cfg = Config::default()
        .memory_limit(256 << 10)
        .max_frame_size(1024)
        .single_producer(true);
    let bus = Bus::create(&name, &cfg).unwrap();
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    let n = 20_000u64;
    for i in 0..n {
        bus.publish("t", &make_payload(1, i, 100)).unwrap();
    }
    let mut delivered = 0;
    let mut last = None;
    while let Some(f) = sub.recv_timeout(Duration::from_millis(20)).unwrap() {
        let (_, i) = check_payload(f.payload());
        assert!(last.is_none_or(|l| i > l));
        last = Some(i);
        delivered += 1;
    }
    assert_eq!(
        delivered + sub.missed(),
        n,
        "lapped reader still reconciles in SPSC mode"
    );
    // A second handle (same process) and a second thread are refused.
    let other = Bus::open(&name).unwrap();
    assert!(matches!(other.publish("t", b"x"), Err(Error::ProducerConflict { .. })));
    let b2 = bus.clone();
    let r = std::thread::spawn(move || b2.publish("t", b"x").map(|_| ()))
        .join()
        .unwrap();
    assert!(matches!(r, Err(Error::ProducerConflict { .. })));
    // The producer keeps working.
    bus.publish("t", b"still").unwrap();
    // Once it is gone, another producer may take over.
    drop(sub);
    drop(bus);
    other.publish("t", b"next").unwrap();
}

/// A claim that is never committed is skipped by a reader that only polls
/// `try_recv` (no waiting `recv`), within about two claim timeouts.
#[test]
fn an_uncommitted_claim_is_skipped_by_a_try_recv_loop() {
    let name = TempName::new("tryrecv-abandoned");
    let timeout = Duration::from_millis(20);
    let bus = Bus::create(&name, &small().claim_timeout(timeout)).unwrap();
    let mut sub = bus.subscribe_with(Filter::all(), oldest()).unwrap();
    let claim = bus.claim("t", 4).unwrap();
    let after = {
        let bus = bus.clone();
        std::thread::spawn(move || bus.publish("t", b"after").unwrap())
            .join()
            .unwrap()
    };
    let started = std::time::Instant::now();
    let got = loop {
        if let Some(f) = sub.try_recv().unwrap() {
            break (f.seq(), f.payload().to_vec());
        }
        assert!(started.elapsed() < Duration::from_secs(5), "claim never skipped");
        std::thread::sleep(Duration::from_millis(1));
    };
    let took = started.elapsed();
    assert_eq!(got, (after, b"after".to_vec()));
    assert_eq!(sub.abandoned(), 1);
    assert!(took >= timeout, "skipped after {took:?}, before the claim timeout");
    drop(claim);
}

/// A thread publishing to two buses in turn holds one producer slot on
/// each; a new handle on a bus after the old one was dropped gets one too.
#[test]
fn a_thread_alternating_between_buses_holds_one_slot_on_each() {
    let (na, nb) = (TempName::new("slots-a"), TempName::new("slots-b"));
    let a = Bus::create(&na, &small()).unwrap();
    let b = Bus::create(&nb, &small()).unwrap();
    for i in 0..100u64 {
        a.publish("t", &i.to_le_bytes()).unwrap();
        b.publish("t", &i.to_le_bytes()).unwrap();
    }
    assert_eq!(a.stats().producers.len(), 1);
    assert_eq!(b.stats().producers.len(), 1);
    assert_eq!(a.stats().published, 100);
    drop(a);
    let a = Bus::open(&na).unwrap();
    a.publish("t", b"again").unwrap();
    b.publish("t", b"again").unwrap();
    assert_eq!(a.stats().producers.len(), 1);
    assert_eq!(b.stats().producers.len(), 1);
    assert_eq!(a.stats().published, 101);
}

/// A `publish_many` payload: which call and which position in it, the
/// call's length, then filler derived from them (checked by the reader).
fn many_payload(call: u32, pos: u32, count: u32, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len.max(12));
    v.extend_from_slice(&call.to_le_bytes());
    v.extend_from_slice(&pos.to_le_bytes());
    v.extend_from_slice(&count.to_le_bytes());
    v.extend((12..len.max(12)).map(|i| (i as u32 ^ call ^ pos) as u8));
    v
}

/// Frames published by `publish_many`, in calls of 1 to 300 payloads of 12
/// to 1024 bytes (some calls with correlation ids, so both header forms),
/// on a small checksummed bus whose producers wait for the reader
/// (`Overflow::Block`), beside a thread publishing one frame at a time:
/// every frame arrives intact and in order, each call's last frame carries
/// the seq the call returned, and nothing is lost, missed or corrupt
/// through many claims and rotations.
#[test]
fn publish_many_delivers_every_frame_in_order_through_claims_and_rotations() {
    let name = TempName::new("many");
    let cfg = block_config(Duration::from_secs(10)).checksum(true);
    let bus = Bus::create(&name, &cfg).unwrap();
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    const CALLS: u32 = 400;
    const SINGLES: u64 = 5_000;
    std::thread::scope(|s| {
        let many = s.spawn(|| {
            let mut rng = common::Rng::new(7);
            let mut published = 0u64;
            let mut lasts = Vec::new();
            for call in 0..CALLS {
                let count = 1 + rng.below(300) as u32;
                let payloads: Vec<Vec<u8>> = (0..count)
                    .map(|pos| many_payload(call, pos, count, 12 + rng.below(1013) as usize))
                    .collect();
                let meta = Meta::default().root_id(u128::from(call % 3 == 0) * u128::from(call + 1));
                let last = bus.publish_many_with(&meta, "many", &payloads).unwrap();
                lasts.push(last.expect("a seq"));
                published += u64::from(count);
            }
            (published, lasts)
        });
        let single = s.spawn(|| {
            for i in 0..SINGLES {
                bus.publish("single", &make_payload(9, i, 40)).unwrap();
            }
        });
        let mut next_single = 0u64;
        let (mut call, mut pos, mut count) = (0u32, 0u32, 0u32);
        // Until the last `publish_many` frame; the single frames left after
        // it are taken below.
        let mut prev_seq: Option<u64> = None;
        let mut prev_many_seq = 0u64;
        let mut call_last = Vec::new();
        let mut delivered = 0u64;
        loop {
            let f = sub.recv_timeout(Duration::from_secs(10)).unwrap().expect("a frame");
            delivered += 1;
            if let Some(p) = prev_seq {
                assert!(f.seq() > p, "seqs increase");
            }
            prev_seq = Some(f.seq());
            if f.topic() == "single" {
                assert_eq!(check_payload(f.payload()), (9, next_single));
                next_single += 1;
                continue;
            }
            let b = f.payload();
            let word = |i: usize| u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
            let (c, p, n) = (word(0), word(1), word(2));
            assert_eq!(b, &many_payload(c, p, n, b.len())[..], "intact");
            if p == 0 {
                assert_eq!((c, pos), (call, 0), "calls in order, each whole");
                count = n;
            } else {
                assert_eq!((c, p), (call, pos), "a call's frames in order");
                // Consecutive within one claim; another producer's frames
                // may come between two claims of one call.
                assert!(f.seq() > prev_many_seq, "a call's frames in seq order");
            }
            let root = u128::from(c % 3 == 0) * u128::from(c + 1);
            assert_eq!(f.correlation().root, root);
            pos = p + 1;
            prev_many_seq = f.seq();
            if pos == count {
                call_last.push(f.seq());
                call += 1;
                pos = 0;
                if call == CALLS {
                    break;
                }
            }
        }
        while next_single < SINGLES {
            let f = sub.recv_timeout(Duration::from_secs(10)).unwrap().expect("a frame");
            assert_eq!(check_payload(f.payload()), (9, next_single));
            next_single += 1;
            delivered += 1;
        }
        let (published, lasts) = many.join().unwrap();
        single.join().unwrap();
        assert_eq!(call, CALLS, "every call delivered");
        assert_eq!(call_last, lasts, "each call returned the seq of its last frame");
        assert_eq!(delivered, published + SINGLES);
        assert_eq!((sub.missed(), sub.abandoned(), sub.corrupt()), (0, 0, 0));
        assert_eq!(bus.stats().published, published + SINGLES);
    });
}

/// `publish_many` checks every payload before publishing any, and an empty
/// list publishes nothing.
#[test]
fn publish_many_refuses_bad_input_before_publishing_anything() {
    let name = TempName::new("many-bad");
    let bus = Bus::create(&name, &small()).unwrap();
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    let big = vec![0u8; 4097];
    let list: [&[u8]; 3] = [b"a", &big, b"c"];
    assert!(matches!(
        bus.publish_many("t", &list),
        Err(Error::TooLarge { size: 4097, max: 4096 })
    ));
    assert!(matches!(bus.publish_many("bad..topic", &[b"x"]), Err(Error::Filter(_))));
    let padding = Meta {
        kind: Kind::Padding,
        ..Meta::default()
    };
    assert!(matches!(
        bus.publish_many_with(&padding, "t", &[b"x"]),
        Err(Error::Config { .. })
    ));
    assert_eq!(bus.publish_many::<&[u8]>("t", &[]).unwrap(), None);
    assert!(sub.try_recv().unwrap().is_none(), "nothing was published");
    assert_eq!(bus.stats().published, 0);
    assert_eq!(bus.publish_many("t", &[b"x", b"y"]).unwrap(), Some(1));
    assert_eq!(sub.try_recv().unwrap().unwrap().payload(), b"x");
}

/// `recv_many` hands over frames in order, never more than `max`, only the
/// ones the filter matches, returns 0 on timeout, and works for group
/// members (each frame to one member) and for a lapped subscriber (the
/// lost frames counted in `missed`).
#[test]
fn recv_many_delivers_in_order_up_to_max_for_every_kind_of_subscriber() {
    let name = TempName::new("recv-many");
    let bus = Bus::create(&name, &small()).unwrap();
    let mut odd = bus.subscribe(Filter::topic("odd")).unwrap();
    let mut m1 = bus.join_group("g", Filter::all()).unwrap();
    let mut m2 = bus.join_group("g", Filter::all()).unwrap();
    assert_eq!(
        odd.recv_many(10, Duration::from_millis(5), |_| panic!("nothing yet"))
            .unwrap(),
        0
    );
    for i in 0..1000u64 {
        bus.publish(if i % 2 == 1 { "odd" } else { "even" }, &i.to_le_bytes())
            .unwrap();
    }
    let mut got = Vec::new();
    let payload = |f: shmbus::Frame<'_>| u64::from_le_bytes(f.payload().try_into().unwrap());
    assert_eq!(odd.recv_many(7, T, |f| got.push(payload(f))).unwrap(), 7);
    while odd.recv_many(100, Duration::ZERO, |f| got.push(payload(f))).unwrap() > 0 {}
    assert_eq!(got, (0..1000).filter(|i| i % 2 == 1).collect::<Vec<_>>());
    assert_eq!(odd.delivered(), 500);
    let mut shares = Vec::new();
    for k in 0..4 {
        let m = if k % 2 == 0 { &mut m1 } else { &mut m2 };
        let mut mine = Vec::new();
        m.recv_many(300, T, |f| mine.push(payload(f))).unwrap();
        assert!(mine.len() <= 300 && mine.windows(2).all(|w| w[0] < w[1]));
        shares.extend(mine);
    }
    while m1.recv_many(1000, Duration::ZERO, |f| shares.push(payload(f))).unwrap() > 0 {}
    shares.sort_unstable();
    assert_eq!(
        shares,
        (0..1000).collect::<Vec<_>>(),
        "each frame to exactly one member"
    );
    // Lapped: what is gone is counted, what is delivered is in order.
    let mut late = bus.subscribe_with(Filter::all(), oldest()).unwrap();
    for i in 1000..60_000u64 {
        bus.publish("even", &i.to_le_bytes()).unwrap();
    }
    let mut seen = Vec::new();
    while late.recv_many(4096, Duration::ZERO, |f| seen.push(payload(f))).unwrap() > 0 {}
    assert!(late.missed() > 0 && seen.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(seen.len() as u64 + late.missed(), 60_000);
}
