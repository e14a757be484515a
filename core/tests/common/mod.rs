//! Helpers shared by the integration tests: unique bus names that are
//! removed even when a test fails.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

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
    let n = v.len();
    let c = u64::from_le_bytes(v[n - 8..].try_into().unwrap());
    assert_eq!(c, checksum(&v[..n - 8]), "corrupt payload delivered");
    (
        u32::from_le_bytes(v[..4].try_into().unwrap()),
        u64::from_le_bytes(v[4..12].try_into().unwrap()),
    )
}
