//! Atomics shim: `std` atomics normally, `loom` atomics under `--cfg loom`.
//!
//! The ring protocol in [`crate::ring`] only touches shared memory through
//! [`crate::mem::Mem`], which hands out atomics from this module, so the very
//! same protocol code runs in production and under the loom model checker.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU64};

pub(crate) use std::sync::atomic::Ordering;

/// One step of a spin loop. Under loom this yields to the scheduler so that
/// the model checker can make progress in busy-wait loops.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}
