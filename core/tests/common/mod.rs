//! Helpers shared by the integration tests: unique bus names that are
//! removed even when a test fails, checksummed payloads, and (in [`child`])
//! child processes that are killed even when a test fails.
#![allow(dead_code)]

pub mod child;

use std::sync::atomic::{AtomicU64, Ordering};

use std::os::unix::fs::FileExt;

use shmbus::layout::SegmentHeader;
use shmbus::{Config, Overflow, Start, SubscribeOptions};
use zerocopy::FromBytes;

static N: AtomicU64 = AtomicU64::new(0);

/// A unique bus name, removed from /dev/shm on drop (also on panic).
pub struct TempName(pub String);

impl TempName {
    pub fn new(tag: &str) -> TempName {
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempName(format!("test-{tag}-{}-{n}", std::process::id()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The segment file of bus `name`.
pub fn shm_path(name: &str) -> String {
    format!("/dev/shm/shmbus.{name}")
}

/// The segment file of bus `name`, opened for reading and writing (to
/// scribble on or truncate it).
pub fn open_rw(name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(name))
        .unwrap()
}

/// The segment header as it is in the file.
pub fn read_header(file: &std::fs::File) -> SegmentHeader {
    let mut buf = vec![0u8; std::mem::size_of::<SegmentHeader>()];
    file.read_exact_at(&mut buf, 0).unwrap();
    SegmentHeader::read_from_bytes(&buf).unwrap()
}

impl Drop for TempName {
    fn drop(&mut self) {
        let _ = shmbus::Bus::remove(&self.0);
    }
}

impl std::ops::Deref for TempName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// xorshift checksum of a payload.
pub fn checksum(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Payload `[producer u32][index u64][filler...][checksum u64]`.
pub fn make_payload(producer: u32, index: u64, len: usize) -> Vec<u8> {
    assert!(len >= 20);
    let mut v = vec![0u8; len];
    v[..4].copy_from_slice(&producer.to_le_bytes());
    v[4..12].copy_from_slice(&index.to_le_bytes());
    for (i, b) in v[12..len - 8].iter_mut().enumerate() {
        *b = (index as usize).wrapping_mul(31).wrapping_add(i) as u8 ^ producer as u8;
    }
    let c = checksum(&v[..len - 8]);
    v[len - 8..].copy_from_slice(&c.to_le_bytes());
    v
}

/// Check a payload made by `make_payload`; returns (producer, index).
pub fn check_payload(v: &[u8]) -> (u32, u64) {
    assert!(v.len() >= 20, "payload too short: {}", v.len());
    verify_payload(v).expect("corrupt payload delivered")
}

/// Non-panicking version of [`check_payload`]: `(producer, index)` if the
/// payload is intact.
pub fn verify_payload(v: &[u8]) -> Option<(u32, u64)> {
    let n = v.len();
    if n < 20 {
        return None;
    }
    let c = u64::from_le_bytes(v[n - 8..].try_into().unwrap());
    (c == checksum(&v[..n - 8])).then(|| {
        (
            u32::from_le_bytes(v[..4].try_into().unwrap()),
            u64::from_le_bytes(v[4..12].try_into().unwrap()),
        )
    })
}

/// Checks a stream of frames from producers that publish `make_payload`
/// frames on `data.p<producer>` and end with `ctl.done`: every payload is
/// intact and on its producer's topic, seqs increase, and each producer's
/// indexes increase (gaps are frames missed).
#[derive(Default)]
pub struct StreamCheck {
    last_seq: Option<u64>,
    next: std::collections::BTreeMap<u32, u64>,
    /// Data frames checked so far.
    pub delivered: u64,
}

impl StreamCheck {
    /// Check `f`; returns `false` when it is `ctl.done`, the end of the stream.
    pub fn frame(&mut self, f: &shmbus::Frame) -> bool {
        if let Some(l) = self.last_seq {
            assert!(f.seq() > l, "seq went backwards");
        }
        self.last_seq = Some(f.seq());
        if f.topic() == "ctl.done" {
            return false;
        }
        let (p, i) = check_payload(f.payload());
        assert_eq!(f.topic(), format!("data.p{p}"));
        let e = self.next.entry(p).or_insert(0);
        assert!(i >= *e, "producer {p} order violated: {i} after {e}");
        *e = i + 1;
        self.delivered += 1;
        true
    }
}

/// Subscribe from the oldest frame still in the ring.
pub fn oldest() -> SubscribeOptions {
    SubscribeOptions {
        start: Start::Oldest,
        ..Default::default()
    }
}

/// xorshift64* generator (tests want reproducible, not good, randomness).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A small bus (256 KiB, frames up to 1 KiB) whose producers wait up to
/// `timeout` for the slowest subscriber (`Overflow::Block`).
pub fn block_config(timeout: std::time::Duration) -> Config {
    Config::default()
        .memory_limit(256 << 10)
        .max_frame_size(1024)
        .overflow(Overflow::Block(timeout))
}
