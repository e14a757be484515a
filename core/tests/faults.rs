//! Fault injection (issue #5, hardening): scribbled segments, truncation under
//! running readers, kill -9 at the worst moments, removal while mapped,
//! permissions across uids, hostile names and hostile lengths.
//!
//! Children are this test binary re-executed with a role (see
//! `common::child`); the `child_entry_point` test then plays that role and
//! prints `RESULT ...` lines on stdout. Every child is wrapped in a [`Proc`]
//! that kills it on drop, and every bus name is a [`TempName`] removed on
//! drop, so a failing test leaves neither processes nor segments behind.
//!
//! Random choices come from a seeded xorshift generator; the seed is printed
//! and can be fixed with `SHMBUS_FAULTS_SEED=N`.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::child::{
    self, arg, arg_u64, child_command, kv, result, spawn, spawn_with_stdin, wait_for_subscribers, Outcome, Proc,
};
use common::{check_payload, make_payload, oldest, open_rw, read_header, shm_path, verify_payload, Rng, TempName};
use shmbus::{Bus, Config, Error, Filter, Frame, Subscriber};

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// The seed for this run: `SHMBUS_FAULTS_SEED` or the clock.
fn seed() -> u64 {
    std::env::var("SHMBUS_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// Peak resident set size of this process, in KiB.
fn vm_hwm_kib() -> u64 {
    child::status_kib("self", "VmHWM").unwrap()
}

/// Offsets inside a frame header (see `shmbus::frame::FrameHeader`).
const FH_SEQ: u64 = 16;
const FH_PAYLOAD_LEN: u64 = 36;
const FH_KIND: u64 = 40;
/// Bytes of the header of a frame without correlation ids, as these tests
/// publish them: its topic starts here.
const FH_LEN: u64 = shmbus::frame::BASE_HEADER_LEN as u64;

// ---------------------------------------------------------------------------
// child roles
// ---------------------------------------------------------------------------

#[test]
fn child_entry_point() {
    let Some(role) = child::role() else { return };
    match role.as_str() {
        "scribble-producer" => role_scribble_producer(),
        "scribble-subscriber" => role_scribble_subscriber(),
        "scribbler" => role_scribbler(),
        "truncate-reader" => role_truncate_victim(false),
        "truncate-publisher" => role_truncate_victim(true),
        "truncate-self" => role_truncate_self(),
        "claimer" => role_claimer(),
        "steady-producer" => role_steady_producer(),
        "paced-producer" => role_paced_producer(),
        "member" => role_member(),
        "idle-subscriber" => role_idle_subscriber(),
        "remove-survivor" => role_remove_survivor(),
        "uid-opener" => role_uid_opener(),
        "bad-names" => role_bad_names(),
        "hostile-reader" => role_hostile_reader(),
        other => panic!("unknown role {other}"),
    }
}

/// Publish at full speed until `MS` elapse; errors are counted, not fatal.
fn role_scribble_producer() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let id = arg_u64("ID") as u32;
    let deadline = Instant::now() + Duration::from_millis(arg_u64("MS"));
    let (mut published, mut errors, mut slowest) = (0u64, 0u64, Duration::ZERO);
    let mut i = 0u64;
    while Instant::now() < deadline {
        let len = 24 + (i as usize * 7 + id as usize * 13) % 400;
        let t = Instant::now();
        match bus.publish(&format!("data.p{id}"), &make_payload(id, i, len)) {
            Ok(_) => published += 1,
            Err(e) => {
                errors += 1;
                if errors <= 3 {
                    result(format!("error {e}"));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        slowest = slowest.max(t.elapsed());
        i += 1;
    }
    result(format!(
        "published={published} errors={errors} slowest_us={}",
        slowest.as_micros()
    ));
}

/// Receive until `MS` elapse and check every delivered frame. `STRICT=1`
/// (checksum on): every delivered payload must be intact.
fn role_scribble_subscriber() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let strict = arg("STRICT") == "1";
    let slow = arg("SLOW") == "1";
    let max_frame = bus.config().get_max_frame_size() as usize;
    let deadline = Instant::now() + Duration::from_millis(arg_u64("MS"));
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    result("ready");
    let timeout = Duration::from_millis(100);
    let (mut delivered, mut bad_struct, mut bad_order, mut bad_payload, mut undetected) = (0u64, 0u64, 0u64, 0, 0);
    let (mut errors, mut overlong, mut slowest) = (0u64, 0u64, Duration::ZERO);
    let mut last_seq: Option<u64> = None;
    let mut after = 0u64;
    let mut next_index: BTreeMap<u32, u64> = BTreeMap::new();
    while Instant::now() < deadline {
        let t = Instant::now();
        let r = sub.recv_timeout(timeout);
        let took = t.elapsed();
        slowest = slowest.max(took);
        if took > timeout + Duration::from_secs(1) {
            overlong += 1;
        }
        match r {
            Ok(Some(f)) if f.topic() == "ctl.after" => {
                // Published by the parent after the scribbler stopped.
                after += 1;
                if last_seq.is_some_and(|l| f.seq() <= l) {
                    bad_order += 1;
                }
                last_seq = Some(f.seq());
            }
            Ok(Some(f)) => {
                delivered += 1;
                if last_seq.is_some_and(|l| f.seq() <= l) {
                    bad_order += 1;
                }
                last_seq = Some(f.seq());
                if f.payload().len() > max_frame || f.topic().len() > 255 {
                    bad_struct += 1;
                }
                match verify_payload(f.payload()) {
                    Some((p, i)) if f.topic() == format!("data.p{p}") => {
                        let e = next_index.entry(p).or_insert(0);
                        if i < *e {
                            bad_order += 1;
                        }
                        *e = i + 1;
                    }
                    _ if strict => bad_payload += 1,
                    _ => undetected += 1,
                }
                if slow && delivered % 32 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Ok(None) => {}
            Err(e) => {
                errors += 1;
                if errors <= 3 {
                    result(format!("error {e}"));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    result(format!(
        "delivered={delivered} missed={} abandoned={} corrupt={} bad_struct={bad_struct} \
         bad_order={bad_order} bad_payload={bad_payload} undetected={undetected} errors={errors} \
         overlong={overlong} slowest_ms={} after={after}",
        sub.missed(),
        sub.abandoned(),
        sub.corrupt(),
        slowest.as_millis()
    ));
}

/// Write random bytes into the segment file: for `DATA_MS` over the data
/// region (where: `TARGET` = `any`, `committed` or `inflight`), then
/// for `HEADER_MS` over the header's live words (512..1024: tail, wake
/// words, counters).
fn role_scribbler() {
    let file = open_rw(&arg("BUS"));
    let h = read_header(&file);
    let mut rng = Rng::new(arg_u64("SEED"));
    let target = arg("TARGET");
    let ring = h.partitions as u64 * h.partition_size;
    let (mut data_hits, mut header_hits) = (0u64, 0u64);
    let mut bytes = [0u8; 16];
    let t0 = Instant::now();
    let data_ms = Duration::from_millis(arg_u64("DATA_MS"));
    while t0.elapsed() < data_ms {
        let mut tail = [0u8; 8];
        file.read_exact_at(&mut tail, 512).unwrap();
        let tail = u64::from_le_bytes(tail);
        let pos = match target.as_str() {
            // Committed frames only: stay clear of the frames being written
            // around the tail.
            "committed" => tail.wrapping_add(16 << 10).wrapping_add(rng.below(ring - (80 << 10))) % ring,
            // Frames being written right now.
            "inflight" => tail.wrapping_sub(2 << 10).wrapping_add(rng.below(4 << 10)) % ring,
            // Anywhere; half of the writes just behind the tail, where the
            // unread frames are.
            _ if rng.below(2) == 0 => rng.below(ring),
            _ => tail.wrapping_sub(1 + rng.below(64 << 10)) % ring,
        };
        let n = 1 + rng.below(8) as usize;
        for b in bytes.iter_mut().take(n) {
            *b = rng.next() as u8;
        }
        let off = h.off_data + pos.min(ring - n as u64);
        file.write_all_at(&bytes[..n], off).unwrap();
        data_hits += 1;
        std::thread::sleep(Duration::from_micros(300));
    }
    let t1 = Instant::now();
    let header_ms = Duration::from_millis(arg_u64("HEADER_MS"));
    while t1.elapsed() < header_ms {
        let n = 1 + rng.below(16) as usize;
        for b in bytes.iter_mut().take(n) {
            *b = rng.next() as u8;
        }
        let off = 512 + rng.below(512 - n as u64);
        file.write_all_at(&bytes[..n], off).unwrap();
        header_hits += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    result(format!("data_hits={data_hits} header_hits={header_hits}"));
}

/// Read (or publish) in a loop until the segment is truncated under us; exit
/// 3 on the expected `Incompatible` error, 4 on another error, 5 if nothing
/// happened within 20 s.
fn role_truncate_victim(publish: bool) {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    result("ready");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0u64;
    while Instant::now() < deadline {
        let r = if publish {
            i += 1;
            std::thread::sleep(Duration::from_micros(100));
            bus.publish("data.t", &make_payload(1, i, 64)).map(|_| ())
        } else {
            sub.recv_timeout(Duration::from_millis(10)).map(|_| ())
        };
        match r {
            Ok(()) => {}
            Err(Error::Incompatible { reason, .. }) => {
                result(format!("incompatible {reason}"));
                std::process::exit(3);
            }
            Err(e) => {
                result(format!("other {e}"));
                std::process::exit(4);
            }
        }
    }
    std::process::exit(5);
}

/// Truncate our own bus under our own subscriber and producer handle.
fn role_truncate_self() {
    let name = arg("BUS");
    let bus = Bus::open(&name).unwrap();
    let mut sub = bus.subscribe_with(Filter::all(), oldest()).unwrap();
    for i in 0..10 {
        bus.publish("data.t", &make_payload(1, i, 100)).unwrap();
    }
    assert!(sub.try_recv().unwrap().is_some(), "the bus works before truncation");
    open_rw(&name).set_len(4096).unwrap();
    let mut errs = vec![];
    // A few tries: the fault may only be taken on the next access of a cut page.
    for _ in 0..3 {
        if let Err(e) = sub.try_recv() {
            errs.push(e);
            break;
        }
    }
    match bus.publish("data.t", &make_payload(1, 99, 100)) {
        Err(e) => errs.push(e),
        Ok(seq) => panic!("publish into a truncated segment succeeded (seq {seq})"),
    }
    assert_eq!(errs.len(), 2, "try_recv kept succeeding on a truncated segment");
    for e in errs {
        match e {
            Error::Incompatible { reason, .. } => assert!(reason.contains("truncated"), "{reason}"),
            other => panic!("expected Incompatible, got {other:?}"),
        }
    }
    result("ok");
}

/// claim -> sleep 0..2 ms -> commit, forever (the parent kills us).
fn role_claimer() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let id = arg_u64("ID") as u32;
    let mut rng = Rng::new(seed() ^ u64::from(id));
    result("ready");
    let mut i = 0u64;
    loop {
        let mut c = bus.claim("data.claim", 64).unwrap();
        c.payload_mut().copy_from_slice(&make_payload(id, i, 64));
        std::thread::sleep(Duration::from_micros(rng.below(2000)));
        c.commit();
        i += 1;
    }
}

/// Publish id 7 frames (paced) until stdin closes.
fn role_steady_producer() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let stop = child::stop_on_stdin_eof();
    let mut i = 0u64;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        bus.publish("data.steady", &make_payload(7, i, 48 + (i as usize % 200)))
            .unwrap();
        i += 1;
        if i % 16 == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    result(format!("published={i}"));
}

/// Publish `N` frames with id `ID`, pausing 5 ms every 20 frames.
fn role_paced_producer() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let id = arg_u64("ID") as u32;
    let n = arg_u64("N");
    for i in 0..n {
        bus.publish("data.paced", &make_payload(id, i, 24 + (i as usize % 100)))
            .unwrap();
        if i % 20 == 19 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    result(format!("published={n}"));
}

/// Group member that reports every frame the moment it has it.
fn role_member() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let mut sub = bus.join_group("workers", Filter::topic("data.#")).unwrap();
    result("ready");
    let mut started = false;
    loop {
        let wait = Duration::from_millis(if started { 1500 } else { 20_000 });
        match sub.recv_timeout(wait).unwrap() {
            Some(f) => {
                started = true;
                let (p, i) = check_payload(f.payload());
                result(format!("p={p} i={i}"));
            }
            None => break,
        }
    }
    result(format!("done missed={} delivered={}", sub.missed(), sub.delivered()));
}

fn role_idle_subscriber() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let _sub = bus.subscribe(Filter::all()).unwrap();
    result("ready");
    std::thread::sleep(Duration::from_secs(60));
}

/// Keep using a bus after its name was removed: receive `N` frames, then
/// publish `N` frames back.
fn role_remove_survivor() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let n = arg_u64("N");
    let mut sub = bus.subscribe(Filter::topic("to.child")).unwrap();
    result("ready");
    for i in 0..n {
        let f = sub
            .recv_timeout(Duration::from_secs(20))
            .unwrap()
            .expect("frames stopped coming after remove");
        assert_eq!(check_payload(f.payload()), (1, i));
    }
    for i in 0..n {
        bus.publish("from.child", &make_payload(2, i, 80)).unwrap();
    }
    result(format!("got={n}"));
}

/// Run as another uid: the 0600 bus is refused, the 0666 bus works.
fn role_uid_opener() {
    let uid = unsafe { libc::getuid() };
    match Bus::open(&arg("PRIVATE")) {
        Err(Error::PermissionDenied { .. }) => result("private=denied"),
        Err(e) => result(format!("private=error {e}")),
        Ok(_) => result("private=opened"),
    }
    let bus = Bus::open(&arg("SHARED")).unwrap();
    bus.publish("from.other.uid", &make_payload(uid, 1, 64)).unwrap();
    result(format!("shared=published uid={uid}"));
}

/// Bad names (run under strace by the parent), then one good one as a
/// positive control of the trace.
fn role_bad_names() {
    for bad in bad_names() {
        assert!(matches!(Bus::open(&bad), Err(Error::InvalidName { .. })), "{bad:?}");
        assert!(
            matches!(Bus::create(&bad, &Config::default()), Err(Error::InvalidName { .. })),
            "{bad:?}"
        );
        assert!(matches!(Bus::remove(&bad), Err(Error::InvalidName { .. })), "{bad:?}");
    }
    let good = arg("GOOD");
    drop(Bus::create(&good, &Config::default().memory_limit(1 << 20)).unwrap());
    Bus::remove(&good).unwrap();
    result("ok");
}

/// Read a segment whose first frames carry hostile lengths; report the peak
/// RSS growth.
fn role_hostile_reader() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let before = vm_hwm_kib();
    let mut sub = bus.subscribe_with(Filter::all(), oldest()).unwrap();
    let mut got = vec![];
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) && got.len() < 2 {
        if let Some(f) = sub.recv_timeout(Duration::from_millis(100)).unwrap() {
            got.push(check_payload(f.payload()).1);
        }
    }
    let growth = vm_hwm_kib().saturating_sub(before);
    result(format!(
        "delivered={} first={} abandoned={} hwm_growth_kib={growth}",
        got.len(),
        got.first().copied().unwrap_or(u64::MAX),
        sub.abandoned()
    ));
}

fn bad_names() -> Vec<String> {
    let mut v: Vec<String> = [
        "", "a/b", "/abs", "..", "../etc", "x..y", "a\0b", "sp ace", "nl\n", "tab\t",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("x".repeat(shmbus::MAX_NAME_LEN + 1));
    v
}

// ---------------------------------------------------------------------------
// scribbler
// ---------------------------------------------------------------------------

/// 2 producer and 2 subscriber processes run while a third process scribbles
/// over the segment; every process must end on its own, cleanly.
fn scribble_run(tag: &str, checksum: bool, target: &str, data_ms: u64, header_ms: u64) -> Vec<Outcome> {
    let seed = seed();
    eprintln!("{tag}: seed {seed} (SHMBUS_FAULTS_SEED={seed} to replay)");
    let name = TempName::new(tag);
    let cfg = Config::default()
        .memory_limit(1 << 20)
        .max_frame_size(1024)
        .claim_timeout(Duration::from_millis(20))
        .checksum(checksum);
    let bus = Bus::create(&name, &cfg).unwrap();
    let run = data_ms + header_ms;
    let subs: Vec<Proc> = (0..2)
        .map(|k| {
            spawn(
                "scribble-subscriber",
                &[
                    ("BUS", name.to_string()),
                    ("STRICT", if checksum { "1" } else { "0" }.into()),
                    ("SLOW", if k == 1 { "1" } else { "0" }.into()),
                    ("MS", (run + 1500).to_string()),
                ],
            )
        })
        .collect();
    wait_for_subscribers(&bus, 2);
    drop(bus);
    let producers: Vec<Proc> = (0..2)
        .map(|id| {
            spawn(
                "scribble-producer",
                &[
                    ("BUS", name.to_string()),
                    ("ID", id.to_string()),
                    ("MS", (run + 600).to_string()),
                ],
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut scribbler = spawn(
        "scribbler",
        &[
            ("BUS", name.to_string()),
            ("SEED", seed.to_string()),
            ("TARGET", target.to_string()),
            ("DATA_MS", data_ms.to_string()),
            ("HEADER_MS", header_ms.to_string()),
        ],
    );
    // Every process has its own deadline; 10 s past it is a hang.
    let limit = Duration::from_millis(run + 12_000);
    let mut all = vec![scribbler.finish(limit)];
    // The scribbler is done: every subscriber must still get new frames.
    // Published once while the producers still run and once after they
    // stopped: a slow subscriber lapped by fast producers may miss the first
    // batch (that is loss, counted in `missed`, not a wedge), never the second.
    let publish_after = |from: u64| {
        if header_ms == 0 {
            let bus = Bus::open(&name).unwrap();
            for k in from..from + 30 {
                bus.publish("ctl.after", &make_payload(99, k, 64)).unwrap();
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    publish_after(0);
    all.extend(producers.into_iter().map(|mut p| p.finish(limit)));
    publish_after(30);
    all.extend(subs.into_iter().map(|mut s| s.finish(limit)));
    for o in &all {
        eprintln!("{tag}: {} {:?}", o.name, o.lines);
    }
    let failures: Vec<String> = all.iter().filter(|o| !o.clean()).map(Outcome::describe).collect();
    assert!(failures.is_empty(), "{tag} seed {seed}: {failures:#?}");
    for s in all.iter().filter(|o| o.name == "scribble-subscriber") {
        let m = s.kv("delivered");
        assert!(m["delivered"] > 0, "seed {seed}: a subscriber got nothing: {m:?}");
        assert_eq!(
            m["bad_struct"], 0,
            "seed {seed}: structurally bad frame delivered: {m:?}"
        );
        assert_eq!(m["bad_order"], 0, "seed {seed}: seq/order went backwards: {m:?}");
        assert_eq!(m["overlong"], 0, "seed {seed}: recv_timeout overran its timeout: {m:?}");
        if checksum {
            assert_eq!(m["bad_payload"], 0, "seed {seed}: corrupt payload delivered: {m:?}");
        }
        // Without a checksum a scribbled seq wedges subscribers (see
        // scribbled_frame_seq_does_not_wedge_a_subscriber_without_checksum).
        if header_ms == 0 && checksum {
            assert!(
                m["after"] > 0,
                "seed {seed}: a subscriber received nothing published after the scribbling: {m:?}"
            );
        }
    }
    all
}

#[test]
fn scribbled_data_region_never_crashes_or_hangs_readers_without_checksum() {
    let all = scribble_run("scribble-plain", false, "any", 2000, 0);
    let hits = all[0].kv("data_hits")["data_hits"];
    assert!(hits > 100, "the scribbler barely ran: {hits}");
}

#[test]
fn scribbled_frames_are_detected_counted_and_never_delivered_with_checksum() {
    let all = scribble_run("scribble-crc", true, "committed", 2000, 0);
    let corrupt: u64 = all
        .iter()
        .filter(|o| o.name == "scribble-subscriber")
        .map(|o| o.kv("corrupt")["corrupt"])
        .sum();
    assert!(
        corrupt > 0,
        "the scribbler hit {} times but no subscriber counted a corrupt frame",
        all[0].kv("data_hits")["data_hits"]
    );
}

/// Scribbles landing in frames while their producer writes them: the
/// checksum must still catch them (it must cover what the producer meant to
/// write, not what is in shared memory when it seals the frame).
#[test]
fn scribbled_frames_being_written_are_never_delivered_with_checksum() {
    scribble_run("scribble-inflight", true, "inflight", 2000, 0);
}

#[test]
fn scribbled_header_words_never_crash_or_hang_producers_or_subscribers() {
    scribble_run("scribble-header", true, "any", 500, 1500);
}

/// A bus on `name` (`cfg`) with a subscriber from the oldest frame and
/// frames `make_payload(1, 0..3, 100)` on `data.x`; also returns the segment
/// file (to scribble on) and the file offset of frame 1.
fn three_frames(name: &TempName, cfg: &Config) -> (Bus, Subscriber, std::fs::File, u64) {
    let bus = Bus::create(name, cfg).unwrap();
    let sub = bus.subscribe_with(Filter::all(), oldest()).unwrap();
    for i in 0..3 {
        bus.publish("data.x", &make_payload(1, i, 100)).unwrap();
    }
    let file = open_rw(name);
    // Frame 1 starts right after frame 0 (48 + 6 + 100 -> 160 bytes).
    let f1 = read_header(&file).off_data + shmbus::frame::frame_len(6, 100, false) as u64;
    (bus, sub, file, f1)
}

/// `f` of every frame received until none comes for 300 ms.
fn recv_until_quiet<T>(sub: &mut Subscriber, mut f: impl FnMut(&Frame) -> T) -> Vec<T> {
    let mut got = vec![];
    while let Some(frame) = sub.recv_timeout(Duration::from_millis(300)).unwrap() {
        got.push(f(&frame));
    }
    got
}

/// One payload byte of a committed frame flipped in the file: with the
/// checksum the frame is dropped and counted; without it only the
/// application's own check can notice (which is what `checksum` is for).
#[test]
fn flipped_payload_byte_is_dropped_and_counted_only_with_checksum() {
    for on in [true, false] {
        let name = TempName::new("crc-flip");
        let (bus, mut sub, file, f1) = three_frames(&name, &Config::default().memory_limit(1 << 20).checksum(on));
        assert_eq!(bus.config().get_checksum(), on);
        let at = f1 + FH_LEN + 6 + 30;
        let mut b = [0u8; 1];
        file.read_exact_at(&mut b, at).unwrap();
        file.write_all_at(&[b[0] ^ 0x40], at).unwrap();
        let got = recv_until_quiet(&mut sub, |f| (f.seq(), verify_payload(f.payload()).is_some()));
        if on {
            assert_eq!(got, vec![(0, true), (2, true)], "checksum on");
            assert_eq!(sub.corrupt(), 1);
            let st = bus.stats();
            assert_eq!(st.subscribers[0].corrupt, 1, "{:?}", st.subscribers);
        } else {
            assert_eq!(got, vec![(0, true), (1, false), (2, true)], "checksum off");
            assert_eq!(sub.corrupt(), 0);
        }
    }
}

/// A scribbled header field fails validation even without a checksum: the
/// frame is treated as never committed and skipped after `claim_timeout`.
#[test]
fn scribbled_frame_header_is_skipped_as_abandoned_without_checksum() {
    let name = TempName::new("hdr-flip");
    let cfg = Config::default()
        .memory_limit(1 << 20)
        .claim_timeout(Duration::from_millis(10));
    let (_bus, mut sub, file, f1) = three_frames(&name, &cfg);
    file.write_all_at(&[0xEE], f1 + FH_KIND).unwrap();
    let got = recv_until_quiet(&mut sub, |f| check_payload(f.payload()).1);
    assert_eq!(got, vec![0, 2]);
    assert_eq!(sub.abandoned(), 1);
}

/// A committed frame whose seq field was scribbled (not covered by header
/// validation, and without a checksum nothing else notices) must not stop a
/// subscriber from receiving what is published after it.
#[test]
fn scribbled_frame_seq_does_not_wedge_a_subscriber_without_checksum() {
    let name = TempName::new("seq-flip");
    let (bus, mut sub, file, f1) = three_frames(&name, &Config::default().memory_limit(1 << 20));
    file.write_all_at(&(1u64 << 60).to_le_bytes(), f1 + FH_SEQ).unwrap();
    for i in 3..13 {
        bus.publish("data.x", &make_payload(1, i, 100)).unwrap();
    }
    let got = recv_until_quiet(&mut sub, |f| check_payload(f.payload()).1);
    assert!(
        got.ends_with(&(3..13).collect::<Vec<u64>>()),
        "frames published after the scribbled one never arrived: got {got:?}, abandoned {}",
        sub.abandoned()
    );
}

// ---------------------------------------------------------------------------
// truncation
// ---------------------------------------------------------------------------

/// Start a reader or publisher child, cut the segment to one page under it,
/// and check that it ends with exit code 3 (the `Incompatible` error), not
/// with SIGBUS or a hang.
fn truncate_under(role: &str) {
    let name = TempName::new("truncate");
    let bus = Bus::create(&name, &Config::default().memory_limit(1 << 20)).unwrap();
    let mut victim = spawn(role, &[("BUS", name.to_string())]);
    victim.wait_line("ready", Duration::from_secs(20));
    for i in 0..100 {
        bus.publish("data.t", &make_payload(9, i, 64)).unwrap();
    }
    // Our own mapping is about to be cut too: stop using it first.
    drop(bus);
    std::thread::sleep(Duration::from_millis(50));
    open_rw(&name).set_len(4096).unwrap();
    let o = victim.finish(Duration::from_secs(10));
    assert!(!o.hung, "{}", o.describe());
    let st = o.status.unwrap();
    assert_eq!(st.signal(), None, "{} died of a signal: {}", o.name, o.describe());
    assert_eq!(st.code(), Some(3), "{}: {} {:?}", o.name, o.describe(), o.lines);
    let line = o.lines.iter().find(|l| l.starts_with("incompatible")).unwrap();
    assert!(line.contains("truncated"), "{line}");
}

#[test]
fn truncated_segment_fails_a_running_reader_with_an_error_not_sigbus() {
    truncate_under("truncate-reader");
}

#[test]
fn truncated_segment_fails_a_running_publisher_with_an_error_not_sigbus() {
    truncate_under("truncate-publisher");
}

#[test]
fn truncated_segment_fails_try_recv_and_publish_in_the_same_process() {
    // In a child, so that a SIGBUS (the bug this guards against) cannot take
    // the whole test binary down.
    let name = TempName::new("truncate-self");
    drop(Bus::create(&name, &Config::default().memory_limit(1 << 20)).unwrap());
    let o = spawn("truncate-self", &[("BUS", name.to_string())]).finish_clean(Duration::from_secs(30));
    assert_eq!(o.lines, vec!["ok".to_string()]);
}

// ---------------------------------------------------------------------------
// kill -9
// ---------------------------------------------------------------------------

#[test]
fn producers_killed_between_claim_and_commit_200_times_do_not_stop_subscribers() {
    let t0 = Instant::now();
    let mut rng = Rng::new(seed());
    let name = TempName::new("claim-kill");
    let cfg = Config::default()
        .memory_limit(256 << 10)
        .max_frame_size(1024)
        .claim_timeout(Duration::from_millis(5));
    let bus = Bus::create(&name, &cfg).unwrap();
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    let (mut steady, steady_stdin) = spawn_with_stdin("steady-producer", &[("BUS", name.to_string())]);

    let mut next_steady = 0u64;
    let mut steady_seen = 0u64;
    let mut other = 0u64;
    let mut seen = |p: u32, i: u64| {
        if p == 7 {
            assert!(
                i >= next_steady,
                "steady producer order violated: {i} after {next_steady}"
            );
            next_steady = i + 1;
            steady_seen += 1;
        } else {
            other += 1;
        }
    };
    let drain = |sub: &mut shmbus::Subscriber, seen: &mut dyn FnMut(u32, u64)| {
        while let Some(f) = sub.try_recv().unwrap() {
            let (p, i) = check_payload(f.payload());
            seen(p, i);
        }
    };
    let kills = 200;
    for k in 0..kills {
        let mut victim = spawn("claimer", &[("BUS", name.to_string()), ("ID", (100 + k).to_string())]);
        victim.wait_line("ready", Duration::from_secs(20));
        std::thread::sleep(Duration::from_micros(500 + rng.below(3000)));
        let st = victim.kill9();
        assert_eq!(st.signal(), Some(libc::SIGKILL), "claimer ended on its own: {st}");
        drain(&mut sub, &mut seen);
    }
    let kill_time = t0.elapsed();
    // Let the steady producer lap the ring a few times, so that every term a
    // dead claimer announced is evicted (and its slot counted abandoned).
    std::thread::sleep(Duration::from_millis(300));
    drop(steady_stdin);
    let o = steady.finish_clean(Duration::from_secs(20));
    let steady_published = o.kv("published")["published"];
    let end = bus.publish("ctl.end", &make_payload(0, 0, 32)).unwrap();
    let t1 = Instant::now();
    loop {
        let f = sub.recv_timeout(Duration::from_millis(200)).unwrap();
        if let Some(f) = f {
            let (p, i) = check_payload(f.payload());
            if f.seq() == end {
                break;
            }
            seen(p, i);
        }
        assert!(
            t1.elapsed() < Duration::from_secs(20),
            "subscriber wedged after the kills"
        );
    }
    let st = bus.stats();
    eprintln!(
        "claim-kill: {kills} kills in {kill_time:?}; steady published {steady_published}, seen {steady_seen}; \
         claimers' frames seen {other}; sub delivered {} missed {} abandoned {}; bus abandoned {}",
        sub.delivered(),
        sub.missed(),
        sub.abandoned(),
        st.abandoned
    );
    assert!(steady_seen > 0);
    if sub.missed() == 0 {
        assert_eq!(
            steady_seen, steady_published,
            "not lapped, so every steady frame arrives"
        );
    }
    assert_eq!(next_steady, steady_published, "the last steady frame arrives");
    assert_eq!(
        sub.delivered() + sub.missed() + sub.abandoned(),
        end + 1,
        "every seq is delivered, missed or abandoned"
    );
    assert!(sub.abandoned() > 0, "some kills must have hit between claim and commit");
    assert!(st.abandoned > 0, "stats().abandoned counts the dead producers' claims");
    bus.reap();
    assert!(
        bus.stats().producers.iter().all(|p| p.pid == std::process::id()),
        "dead producers' slots are reclaimed"
    );
    assert!(t0.elapsed() < Duration::from_secs(90), "took {:?}", t0.elapsed());
}

#[test]
fn killed_group_member_and_subscriber_are_reclaimed_and_lose_at_most_one_frame() {
    let name = TempName::new("member-kill");
    let bus = Bus::create(&name, &Config::default().memory_limit(8 << 20)).unwrap();
    let mut members: Vec<Proc> = (0..3).map(|_| spawn("member", &[("BUS", name.to_string())])).collect();
    let mut idle = spawn("idle-subscriber", &[("BUS", name.to_string())]);
    for m in members.iter_mut() {
        m.wait_line("ready", Duration::from_secs(20));
    }
    idle.wait_line("ready", Duration::from_secs(20));
    wait_for_subscribers(&bus, 4);
    let n = 4000u64;
    let mut producer = spawn(
        "paced-producer",
        &[("BUS", name.to_string()), ("ID", "3".into()), ("N", n.to_string())],
    );
    let t0 = Instant::now();
    while bus.stats().groups[0].delivered < n / 2 {
        assert!(t0.elapsed() < Duration::from_secs(30), "the group is not progressing");
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut victim = members.remove(0);
    assert_eq!(victim.kill9().signal(), Some(libc::SIGKILL));
    assert_eq!(idle.kill9().signal(), Some(libc::SIGKILL));
    let dead = victim.finish(Duration::from_secs(5));
    let reaped = bus.reap();
    let st = bus.stats();
    assert_eq!(reaped, 2, "both dead entries reclaimed: {:?}", st.subscribers);
    assert_eq!(st.subscribers.len(), 2, "{:?}", st.subscribers);
    assert!(st.subscribers.iter().all(|s| s.alive));
    assert_eq!(st.groups[0].members, 2);
    producer.finish_clean(Duration::from_secs(60));
    let mut all: Vec<u64> = vec![];
    let from_dead = dead.lines.iter().filter(|l| l.starts_with("p=")).count();
    for l in &dead.lines {
        if let Some(i) = kv(l).get("i") {
            all.push(*i);
        }
    }
    for mut m in members {
        let o = m.finish_clean(Duration::from_secs(60));
        let mut after_kill = 0;
        for l in &o.lines {
            let m = kv(l);
            if let Some(i) = m.get("i") {
                all.push(*i);
                after_kill += 1;
            }
            if let Some(missed) = m.get("missed") {
                assert_eq!(*missed, 0, "the group lost frames to eviction");
            }
        }
        assert!(after_kill > 0);
    }
    let total = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), total, "a frame went to two members");
    let missing: Vec<u64> = (0..n).filter(|i| all.binary_search(i).is_err()).collect();
    eprintln!("member-kill: dead member printed {from_dead} frames; missing {missing:?}");
    assert!(
        missing.len() <= 1,
        "only the frame in the dead member's hands may be lost: {missing:?}"
    );
}

// ---------------------------------------------------------------------------
// remove while mapped
// ---------------------------------------------------------------------------

#[test]
fn removed_bus_keeps_working_for_its_users_and_a_later_create_starts_clean() {
    let name = TempName::new("remove-mapped");
    let old = Bus::create(&name, &Config::default().memory_limit(1 << 20)).unwrap();
    let mut old_sub = old.subscribe(Filter::topic("from.child")).unwrap();
    let n = 100u64;
    let mut child = spawn("remove-survivor", &[("BUS", name.to_string()), ("N", n.to_string())]);
    child.wait_line("ready", Duration::from_secs(20));
    Bus::remove(&name).unwrap();
    assert!(!std::path::Path::new(&shm_path(&name)).exists());
    assert!(matches!(Bus::open(&name), Err(Error::NotFound { .. })));
    assert!(!Bus::list().unwrap().contains(&name.to_string()));
    // The old mapping still works both ways.
    for i in 0..n {
        old.publish("to.child", &make_payload(1, i, 80)).unwrap();
    }
    // A new bus under the same name is a fresh segment.
    let fresh = Bus::create(&name, &Config::default().memory_limit(1 << 20)).unwrap();
    let st = fresh.stats();
    assert_eq!((st.published, st.next_seq, st.evicted), (0, 0, 0));
    assert!(st.subscribers.is_empty() && st.producers.is_empty() && st.groups.is_empty());
    let mut fresh_sub = fresh.subscribe_with(Filter::all(), oldest()).unwrap();
    let mut got = 0;
    while got < n {
        let f = old_sub
            .recv_timeout(Duration::from_secs(20))
            .unwrap()
            .expect("the child's frames never came back on the removed bus");
        assert_eq!(check_payload(f.payload()), (2, got));
        got += 1;
    }
    child.finish_clean(Duration::from_secs(20));
    assert!(
        fresh_sub.try_recv().unwrap().is_none(),
        "old traffic leaked into the new bus"
    );
    assert_eq!(fresh.stats().next_seq, 0);
    assert_eq!(old.stats().next_seq, 2 * n);
    drop((old_sub, old));
    assert!(
        std::path::Path::new(&shm_path(&name)).exists(),
        "dropping the old handle keeps the new bus"
    );
}

// ---------------------------------------------------------------------------
// security
// ---------------------------------------------------------------------------

#[test]
fn another_uid_cannot_open_a_0600_bus_but_can_open_a_0666_one() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to switch to the `nobody` user");
        return;
    }
    let pw = unsafe { libc::getpwnam(c"nobody".as_ptr()) };
    if pw.is_null() {
        eprintln!("skipped: no `nobody` user");
        return;
    }
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    let private = TempName::new("uid-0600");
    let shared = TempName::new("uid-0666");
    let p = Bus::create(&private, &Config::default().memory_limit(1 << 20)).unwrap();
    assert_eq!(p.config().get_mode(), 0o600, "0600 is the default");
    let s = Bus::create(&shared, &Config::default().memory_limit(1 << 20).mode(0o666)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = |n: &str| std::fs::metadata(shm_path(n)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&private), 0o600);
    assert_eq!(mode(&shared), 0o666, "mode is set exactly, whatever the umask");
    let mut sub = s.subscribe(Filter::topic("from.other.uid")).unwrap();
    let mut cmd = child_command(
        "uid-opener",
        &[("PRIVATE", private.to_string()), ("SHARED", shared.to_string())],
    );
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = Proc::new("uid-opener", cmd).finish_clean(Duration::from_secs(30));
    assert!(o.lines.contains(&"private=denied".to_string()), "{:?}", o.lines);
    assert!(
        o.lines.contains(&format!("shared=published uid={uid}")),
        "{:?}",
        o.lines
    );
    let f = sub
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("frame from nobody");
    assert_eq!(check_payload(f.payload()), (uid, 1));
}

#[test]
fn bad_names_are_rejected_before_any_system_call() {
    let before: Vec<String> = Bus::list().unwrap();
    for bad in bad_names() {
        for r in [
            Bus::open(&bad).map(|_| ()),
            Bus::create(&bad, &Config::default()).map(|_| ()),
            Bus::open_or_create(&bad, &Config::default()).map(|_| ()),
            Bus::remove(&bad),
        ] {
            assert!(matches!(r, Err(Error::InvalidName { .. })), "{bad:?}: {r:?}");
        }
    }
    assert!(shmbus::validate_name(&"x".repeat(shmbus::MAX_NAME_LEN)).is_ok());
    let after = Bus::list().unwrap();
    let bad_left: Vec<&String> = after
        .iter()
        .filter(|n| !before.contains(n) && bad_names().contains(n))
        .collect();
    assert!(bad_left.is_empty(), "{bad_left:?}");

    // The same under strace: no open/unlink of any shmbus object for the bad
    // names, while the good name of the positive control is seen.
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("strace not installed: system-call check skipped");
        return;
    }
    let good = TempName::new("names-control");
    let trace = std::env::temp_dir().join(format!("shmbus-names-{}.trace", std::process::id()));
    let mut cmd = Command::new("strace");
    cmd.args([
        "-f",
        "-qq",
        "-e",
        "trace=open,openat,unlink,unlinkat,ftruncate,mmap",
        "-o",
    ])
    .arg(&trace)
    .arg(std::env::current_exe().unwrap());
    child::configure(&mut cmd, "bad-names", &[("GOOD", good.to_string())]);
    cmd.stderr(Stdio::piped());
    let out = cmd.output().unwrap();
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    let _ = std::fs::remove_file(&trace);
    if !out.status.success() && text.is_empty() {
        eprintln!(
            "strace cannot trace here ({}): system-call check skipped",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return;
    }
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shm: Vec<&str> = text.lines().filter(|l| l.contains("shmbus.")).collect();
    assert!(
        shm.iter().any(|l| l.contains(good.as_str())),
        "positive control not traced: {shm:?}"
    );
    assert!(
        shm.iter().all(|l| l.contains(good.as_str())),
        "a bad name reached a system call: {shm:?}"
    );
}

#[test]
fn largest_frame_and_topic_round_trip_and_one_more_byte_is_refused() {
    let name = TempName::new("bounds");
    let max = 4096u32;
    let bus = Bus::create(&name, &Config::default().memory_limit(1 << 20).max_frame_size(max)).unwrap();
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    let topic = "t".repeat(255);
    let payload = make_payload(1, 1, max as usize);
    bus.publish(&topic, &payload).unwrap();
    let f = sub.recv_timeout(Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!((f.topic(), f.payload()), (topic.as_str(), payload.as_slice()));
    assert!(matches!(
        bus.publish("t", &vec![0; max as usize + 1]),
        Err(Error::TooLarge { .. })
    ));
    assert!(matches!(bus.claim("t", max as usize + 1), Err(Error::TooLarge { .. })));
    assert!(matches!(bus.publish(&"t".repeat(256), b"x"), Err(Error::Filter(_))));
    assert!(matches!(
        Config::default().max_frame_size(u32::MAX).validate(),
        Err(Error::Config {
            field: "max_frame_size",
            ..
        })
    ));
}

#[test]
fn hostile_frame_lengths_are_refused_without_allocating_or_panicking() {
    let name = TempName::new("hostile");
    let cfg = Config::default()
        .memory_limit(1 << 20)
        .max_frame_size(1024)
        .claim_timeout(Duration::from_millis(10));
    let bus = Bus::create(&name, &cfg).unwrap();
    for i in 0..3 {
        bus.publish("data.x", &make_payload(1, i, 100)).unwrap();
    }
    let file = open_rw(&name);
    let h = read_header(&file);
    let f0 = h.off_data;
    let f1 = f0 + shmbus::frame::frame_len(6, 100, false) as u64;
    // Frame 0: a commit word with the right tag and a length of ~4 GiB.
    let mut w = [0u8; 8];
    file.read_exact_at(&mut w, f0).unwrap();
    let w = (u64::from_le_bytes(w) & !0xffff_ffff) | 0xffff_fff8;
    file.write_all_at(&w.to_le_bytes(), f0).unwrap();
    // Frame 1: a header claiming a ~4 GiB payload.
    file.write_all_at(&0xffff_fff0u32.to_le_bytes(), f1 + FH_PAYLOAD_LEN)
        .unwrap();
    let o = spawn("hostile-reader", &[("BUS", name.to_string())]).finish_clean(Duration::from_secs(30));
    let m = o.kv("delivered");
    assert_eq!((m["delivered"], m["first"], m["abandoned"]), (1, 2, 2), "{m:?}");
    let bound_kib = h.partition_size / 1024 + 2048;
    assert!(
        m["hwm_growth_kib"] < bound_kib,
        "reader's peak RSS grew by {} KiB (bound {bound_kib} KiB)",
        m["hwm_growth_kib"]
    );
    // The bus itself is fine for everybody else.
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    bus.publish("data.x", &make_payload(1, 3, 100)).unwrap();
    assert!(sub.recv_timeout(Duration::from_secs(1)).unwrap().is_some());
}
