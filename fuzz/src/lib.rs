//! Fuzz targets for shmbus.
//!
//! Each target is a plain function `run(data: &[u8])` so that it can be driven
//! both by libFuzzer (`fuzz_targets/*.rs`, `cargo fuzz run --features libfuzzer
//! NAME`) and by an ordinary test on the stable toolchain (`tests/corpus.rs`
//! replays `corpus/NAME/` and `regressions/NAME/`). A target fails by
//! panicking; an endless loop is caught by libFuzzer's `-timeout` and by the
//! corpus test's watchdog.
//!
//! * [`segment_open`]: arbitrary or patched segments are opened and read
//!   without panics, out-of-bounds accesses or endless loops.
//! * [`frame_decode`]: arbitrary bytes in the data region decode to a clean
//!   skip or to a structurally valid frame.
//! * [`filters`]: filter parsing and matching agree with a reference matcher.
//! * [`ops`]: a sequence of bus operations agrees with an exact model of the
//!   ring (delivery, eviction, missed/aborted accounting, groups).
//!
//! Every bus a target creates has a unique name and is removed on drop, even
//! when the target panics.

#![warn(missing_docs)]

pub mod filters;
pub mod frame_decode;
pub mod ops;
pub mod segment_open;

use std::sync::atomic::{AtomicU64, Ordering};

/// A bus name unique to this process and call.
pub(crate) fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "fuzz-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Path of the shared-memory object behind bus `name` (Linux).
pub(crate) fn shm_path(name: &str) -> String {
    format!("/dev/shm/shmbus.{name}")
}

/// Removes the shared-memory object of a bus when dropped (also on panic).
pub(crate) struct ShmGuard(pub(crate) String);

impl Drop for ShmGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(shm_path(&self.0));
    }
}

/// A little-endian byte reader that yields zeros once the input is used up.
pub(crate) struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Bytes { data }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub(crate) fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    pub(crate) fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    /// Up to `n` bytes (fewer at the end of the input).
    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }
}

/// Reads from `sub` with `try_recv` until it has nothing more, calling
/// `check` on each frame. Panics if it never stops (an endless loop in the
/// reader): no segment can hold `limit` frames.
pub(crate) fn drain(sub: &mut shmbus::Subscriber, limit: usize, mut check: impl FnMut(&shmbus::Frame<'_>)) -> usize {
    let mut n = 0;
    loop {
        match sub.try_recv() {
            Ok(Some(f)) => {
                check(&f);
                n += 1;
                assert!(
                    n <= limit,
                    "subscriber (group {:?}) delivered more than {limit} frames: endless loop",
                    sub.group()
                );
            }
            Ok(None) => return n,
            Err(e) => {
                let _ = e.to_string();
                return n;
            }
        }
    }
}

/// The tag of the commit word of a frame at `pos` (ARCHITECTURE.md: a hash
/// of the lap number), so that targets can forge committed frames.
pub(crate) fn commit_tag(pos: u64, parts: u64, part_size: u64) -> u32 {
    let lap = pos / (parts * part_size);
    (lap as u32).wrapping_mul(0x9E37_79B1) ^ 0x5348_4D42
}
