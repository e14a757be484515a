//! Target `frame_decode`: untrusted bytes where readers decode frames.
//!
//! A small valid bus gets a few frames (and maybe an aborted claim); then the
//! input is written into the data region around them: raw bytes at an offset
//! into a frame (commit word, header fields, topic, payload, padding) or a
//! forged header with chosen lengths, kind, event type, topic length, seq and
//! position, optionally with a correctly tagged commit word so that it passes
//! the commit check and reaches header validation. Then a broadcast
//! subscriber and a group member read from the oldest frame until exhausted
//! (waiting out the 1 ms claim timeout a few times, so that stuck positions
//! are scanned past).
//!
//! Proves: no panic, no out-of-bounds access, no endless loop; every frame
//! delivered is either a published frame, byte for byte, or structurally
//! valid (topic valid UTF-8 of at most 255 bytes and not a padding frame,
//! lengths within the partition); a broadcast subscriber's seqs strictly
//! increase; and with no patch at all, every published frame is delivered
//! exactly once and nothing else.

use std::collections::HashMap;
use std::time::Duration;

use shmbus::frame::{frame_len, FrameHeader, BASE_HEADER_LEN, FLAG_IDS, MAX_TOPIC_LEN};
use shmbus::layout::SegmentHeader;
use shmbus::{Bus, Config, Filter, Meta, Start, SubscribeOptions, Subscriber};
use zerocopy::{FromBytes, IntoBytes};

use crate::{commit_tag, unique_name, Bytes, ShmGuard};

const MAX_FRAMES: usize = 5_000;

/// Runs one input (see the module documentation).
pub fn run(data: &[u8]) {
    let mut b = Bytes::new(data);
    let c = b.u8();
    let cfg = Config::default()
        .memory_limit(64 << 10)
        .keep_ratio([0.5, 0.75, 0.9, 0.6][usize::from(c & 3)])
        .max_frame_size(1024)
        .listener_limit(4)
        .producer_limit(2)
        .claim_timeout(Duration::from_millis(1));
    let name = unique_name("frame");
    let _guard = ShmGuard(name.clone());
    let bus = Bus::create(&name, &cfg).expect("create a valid bus");

    // Publish a few frames; remember where each one is.
    let mut published: HashMap<u64, (String, Vec<u8>, u128)> = HashMap::new();
    let mut positions = Vec::new(); // (position, frame length)
    let mut pos = 0u64;
    let n = usize::from(b.u8() % 12) + 1;
    for i in 0..n {
        let topic = ["a", "a.b", "ccc.dd.e", "\u{e9}t\u{e9}"][i % 4];
        let payload: Vec<u8> = (0..(i * 13) % 120).map(|k| (k + i) as u8).collect();
        // Every third frame carries a root id, so both header forms are
        // in the segment (the ids are stored only when set).
        let meta = Meta::default().root_id(if i % 3 == 2 { i as u128 } else { 0 });
        let len = frame_len(topic.len(), payload.len(), i % 3 == 2) as u64;
        if c & 0x80 != 0 && i == 1 {
            let claim = bus.claim(topic, payload.len()).expect("claim");
            assert_eq!(claim.seq(), i as u64);
            drop(claim); // aborted: a padding frame readers skip
        } else {
            let seq = bus.publish_with(&meta, topic, &payload).expect("publish");
            assert_eq!(seq, i as u64);
            published.insert(seq, (topic.to_string(), payload, meta.correlation.root));
        }
        positions.push((pos, len));
        pos += len;
    }
    let tail = pos;

    // Patch the data region.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(crate::shm_path(&name))
        .expect("open segment file");
    let mut raw_hdr = [0u8; std::mem::size_of::<SegmentHeader>()];
    std::io::Read::read_exact(&mut file, &mut raw_hdr).expect("read header");
    let (h, _) = SegmentHeader::read_from_prefix(&raw_hdr[..]).expect("header");
    let (parts, size) = (u64::from(h.partitions), h.partition_size);
    let mut patched = false;
    let mut patches = 0;
    while !b.is_empty() && patches < 32 {
        patches += 1;
        let op = b.u8();
        // Target: one of the frames, or the tail (where nothing is yet).
        let k = usize::from(b.u8()) % (positions.len() + 1);
        let (at, flen) = positions.get(k).copied().unwrap_or((tail, 0));
        match op % 2 {
            0 => {
                // Raw bytes at an offset into (or just after) the frame.
                let off = at + u64::from(b.u16()) % (flen + 16);
                let n = usize::from(b.u8() % 16) + 1;
                let bytes = b.take(n);
                write_at(&mut file, h.off_data + (off % (parts * size)), bytes, h.segment_len);
            }
            _ => {
                // A forged header (and commit word) at the frame.
                let topic_len = b.u8();
                let payload_len = u32::from(b.u16() % 2048);
                let flags = b.u8();
                let ids = flags & 32 != 0;
                let sane = frame_len(usize::from(topic_len), payload_len as usize, ids) as u64;
                let total = if flags & 1 != 0 { u64::from(b.u16()) } else { sane };
                let tag = if flags & 2 != 0 {
                    b.u32()
                } else {
                    commit_tag(at, parts, size)
                };
                let fh = FrameHeader {
                    commit: (u64::from(tag) << 32) | (total & 0xffff_ffff),
                    position: if flags & 4 != 0 { b.u64() } else { at },
                    seq: if flags & 8 != 0 { b.u64() } else { u64::from(b.u8()) },
                    timestamp_ns: 0,
                    producer: 1,
                    payload_len,
                    kind: b.u8() % 7,
                    event_type: b.u8() % 6,
                    topic_len,
                    flags: if ids { FLAG_IDS } else { 0 },
                    checksum: 0,
                    correlation_id: [0; 16],
                    parent_id: [0; 16],
                    root_id: [0x5a; 16],
                };
                // The header as a frame stores it: the ids only with FLAG_IDS.
                let mut bytes = fh.as_bytes()[..fh.wire_len()].to_vec();
                if flags & 16 != 0 {
                    // Topic bytes right after the header (maybe invalid UTF-8).
                    bytes.extend_from_slice(b.take(usize::from(topic_len)));
                }
                let off = h.off_data + (at % (parts * size));
                write_at(&mut file, off, &bytes, h.segment_len);
            }
        }
        patched = true;
    }
    drop(file);

    let oldest = SubscribeOptions {
        start: Start::Oldest,
        ..Default::default()
    };
    let mut sub = bus.subscribe_with(Filter::all(), oldest).expect("subscribe");
    let got = read_all(&bus, &mut sub, &published, size, true);
    if !patched {
        let mut want: Vec<u64> = published.keys().copied().collect();
        want.sort_unstable();
        assert_eq!(got, want, "unpatched bus: every published frame, once, in order");
        assert_eq!(sub.missed(), 0);
    }
    drop(sub);
    let mut member = bus.join_group_with("g", Filter::all(), oldest).expect("join group");
    let got = read_all(&bus, &mut member, &published, size, false);
    if !patched {
        assert_eq!(got.len(), published.len(), "group member gets every frame");
    }
}

fn write_at(file: &mut std::fs::File, off: u64, bytes: &[u8], len: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let n = bytes.len().min(len.saturating_sub(off) as usize);
    file.seek(SeekFrom::Start(off)).expect("seek");
    file.write_all(&bytes[..n]).expect("patch");
}

/// Read until exhausted, waiting out the claim timeout a few times; check
/// every frame. Returns the seqs delivered.
fn read_all(
    bus: &Bus,
    sub: &mut Subscriber,
    published: &HashMap<u64, (String, Vec<u8>, u128)>,
    part_size: u64,
    broadcast: bool,
) -> Vec<u64> {
    let mut seqs: Vec<u64> = Vec::new();
    let mut waits = 0;
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < MAX_FRAMES, "reader never finishes: endless loop");
        match sub.try_recv().expect("try_recv on a valid bus") {
            Some(f) => {
                let intact = published
                    .get(&f.seq())
                    .is_some_and(|(t, p, r)| t == f.topic() && p == f.payload() && *r == f.correlation().root);
                if !intact {
                    assert!(f.topic().len() <= MAX_TOPIC_LEN, "topic too long");
                    assert!(
                        ((BASE_HEADER_LEN + f.topic().len() + f.payload().len()) as u64) < part_size,
                        "frame larger than a partition"
                    );
                    assert_ne!(f.kind(), shmbus::Kind::Padding, "padding delivered");
                }
                if broadcast {
                    if let Some(&last) = seqs.last() {
                        assert!(f.seq() > last, "seq went backwards: {last} then {}", f.seq());
                    }
                }
                seqs.push(f.seq());
            }
            None => {
                let next = bus.stats().next_seq;
                if sub.next_seq() >= next || waits >= 3 {
                    return seqs;
                }
                // Something unreadable before the tail: wait out the claim
                // timeout so the reader scans past it.
                waits += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}
