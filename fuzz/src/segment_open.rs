//! Target `segment_open`: untrusted bytes as a whole segment.
//!
//! Proves that `Bus::open` on a shared-memory object holding arbitrary bytes,
//! and everything done with the handle afterwards (stats, a subscriber from
//! the oldest frame and a group member reading until exhausted, one publish,
//! reading again), ends with a typed error or normal results: never a panic,
//! an out-of-bounds access (debug assertions are on in fuzz builds) or an
//! endless loop.
//!
//! The first byte selects the mode:
//!
//! * even: *raw*: the rest of the input is the segment (optionally padded with
//!   zeros to the size its header claims, so the header checks can pass);
//! * odd: *patched*: a valid bus is created and filled, then the input is
//!   applied as `(region, offset, bytes)` patches over the header, the tail
//!   and counters, the partition, producer, subscriber and group tables and
//!   the data, so the fuzzer gets past header validation into the protocol.

use std::io::{Seek, SeekFrom, Write};

use shmbus::layout::{SegmentHeader, MAGIC, READY};
use shmbus::{Bus, Config, Filter, Start, SubscribeOptions};
use zerocopy::FromBytes;

use crate::{drain, shm_path, unique_name, Bytes, ShmGuard};

/// No segment used here can hold this many frames.
const MAX_FRAMES: usize = 20_000;
const OFF_READY: usize = 256;

/// Runs one input (see the module documentation).
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        raw(mode, rest);
    } else {
        patched(rest);
    }
}

fn raw(mode: u8, bytes: &[u8]) {
    if bytes.is_empty() {
        // A zero-sized object means "creator still sizing it": open waits.
        return;
    }
    let mut seg = bytes.to_vec();
    let header_len = std::mem::size_of::<SegmentHeader>();
    if mode & 2 != 0 && seg.len() >= header_len {
        // Pad to the length the header claims, if that is small.
        let claimed = u64::from_le_bytes(seg[16..24].try_into().expect("8 bytes"));
        if claimed as usize > seg.len() && claimed <= 1 << 20 {
            seg.resize(claimed as usize, 0);
        }
    }
    if seg.len() >= OFF_READY + 8 && seg[..8] == MAGIC {
        // A segment with the magic but no ready word makes `open` wait two
        // seconds for its creator; mark it ready so fuzzing stays fast.
        seg[OFF_READY..OFF_READY + 8].copy_from_slice(&READY.to_le_bytes());
    }
    if skip_known() && known_open_bug(&seg).is_some() {
        return;
    }
    let name = unique_name("seg");
    let _guard = ShmGuard(name.clone());
    std::fs::write(shm_path(&name), &seg).expect("write segment to /dev/shm");
    exercise(&name);
}

fn patched(data: &[u8]) {
    let mut b = Bytes::new(data);
    let c = b.u8();
    let cfg = Config::default()
        .memory_limit([64 << 10, 96 << 10, 128 << 10, 256 << 10][usize::from(c & 3)])
        .keep_ratio([0.5, 0.75, 0.9, 0.99][usize::from((c >> 2) & 3)])
        .max_frame_size([256, 1024, 4096, 512][usize::from((c >> 4) & 3)])
        .listener_limit(4)
        .producer_limit(4);
    let frames = usize::from(b.u8() % 64);
    let name = unique_name("segp");
    let _guard = ShmGuard(name.clone());
    {
        let bus = Bus::create(&name, &cfg).expect("create a valid bus");
        let max = bus.config().get_max_frame_size() as usize;
        for i in 0..frames {
            let topic = ["a", "a.b", "c.d.e"][i % 3];
            let payload = vec![i as u8; (i * 37) % max];
            bus.publish(topic, &payload).expect("publish");
        }
        if c & 0x40 != 0 {
            drop(bus.claim("aborted", 10).expect("claim"));
        }
        if c & 0x80 != 0 {
            // A group and a subscriber entry to patch.
            let _g = bus.join_group("g", Filter::all()).expect("join group");
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(&name))
        .expect("open segment file");
    let mut raw_hdr = [0u8; std::mem::size_of::<SegmentHeader>()];
    std::io::Read::read_exact(&mut file, &mut raw_hdr).expect("read header");
    let (h, _) = SegmentHeader::read_from_prefix(&raw_hdr[..]).expect("header");
    let (len, parts, slots, subs, groups, data_off) = (
        h.segment_len,
        h.off_parts,
        h.off_slots,
        h.off_subs,
        h.off_groups,
        h.off_data,
    );
    let regions = [
        (0, 4096),
        (256, 1040),
        (parts, slots),
        (slots, subs),
        (subs, groups),
        (groups, data_off),
        (data_off, data_off + 8192),
        (data_off, len),
    ];
    let mut patches = 0;
    while !b.is_empty() && patches < 64 {
        let (lo, hi) = regions[usize::from(b.u8() % 8)];
        let hi = hi.min(len);
        let off = lo + u64::from(b.u16()) % (hi - lo).max(1);
        let n = usize::from(b.u8() % 16) + 1;
        let bytes = b.take(n);
        let n = bytes.len().min((len - off) as usize);
        file.seek(SeekFrom::Start(off)).expect("seek");
        file.write_all(&bytes[..n]).expect("patch");
        patches += 1;
    }
    drop(file);
    if skip_known() {
        let seg = std::fs::read(shm_path(&name)).expect("read segment back");
        if known_open_bug(&seg).is_some() {
            return;
        }
    }
    exercise(&name);
}

/// With `SHMBUS_FUZZ_SKIP_KNOWN=1`, inputs that trigger a core bug already
/// reported (see `regressions/KNOWN_OPEN`) are skipped, so that a fuzzing
/// campaign can look for new ones. Off by default: the target checks all.
pub(crate) fn skip_known() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("SHMBUS_FUZZ_SKIP_KNOWN").is_ok_and(|v| v == "1"))
}

/// Which already reported core bug, if any, a segment would trigger.
fn known_open_bug(seg: &[u8]) -> Option<&'static str> {
    let u64_at = |at: usize| {
        seg.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    let (h, _) = SegmentHeader::read_from_prefix(seg).ok()?;
    if h.magic != MAGIC || h.partitions < 2 || h.partitions > 256 || h.partition_size == 0 {
        return None;
    }
    let (p, size) = (u64::from(h.partitions), h.partition_size);
    // Layout::with computes off_data + P * S unchecked.
    if p.checked_mul(size).and_then(|d| d.checked_add(1 << 24)).is_none() {
        return Some("layout-overflow");
    }
    // subscriber.rs `step_own`, `Read::Lapped`: `next_seq = s` can move the
    // cursor back when a retained term's partition state is off, and the
    // subscriber delivers the same frames again, forever.
    let (pos, off_parts) = (u64_at(512)?, usize::try_from(h.off_parts).ok()?);
    let cur = (pos & !1) / size;
    let first = (cur + 1).saturating_sub(p);
    let stable = |t: u64| t.checked_add(p).and_then(|t| t.checked_mul(2)).map(|s| s | 1);
    let state = |t: u64| u64_at(off_parts.checked_add(((t % p) * 128) as usize)?);
    for t in first..=cur {
        if state(t)? != stable(t)? {
            return Some("lapped-seq-backwards");
        }
    }
    None
}

/// Open bus `name` and use it every way a reader and a producer would.
fn exercise(name: &str) {
    let bus = match Bus::open(name) {
        Ok(bus) => bus,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = bus.config();
    let _ = bus.stats();
    let oldest = SubscribeOptions {
        start: Start::Oldest,
        ..Default::default()
    };
    let mut sub = bus.subscribe_with(Filter::all(), oldest).ok();
    let mut member = bus.join_group_with("fuzz", Filter::all(), oldest).ok();
    for s in sub.iter_mut().chain(member.iter_mut()) {
        drain(s, MAX_FRAMES, |f| {
            let _ = (
                f.seq(),
                f.topic(),
                f.payload(),
                f.kind(),
                f.event_type(),
                f.correlation(),
            );
        });
    }
    let _ = bus.publish("fuzz.segment", b"after");
    for s in sub.iter_mut().chain(member.iter_mut()) {
        drain(s, MAX_FRAMES, |_| {});
        let _ = (s.missed(), s.delivered(), s.abandoned(), s.next_seq(), s.lag());
    }
    let _ = bus.stats();
}
