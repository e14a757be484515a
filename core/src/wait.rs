//! How a subscriber waits for the next frame: spin, spin then park, or park.
//!
//! Parking uses a process-shared futex word in the segment header. A reader
//! that parks first increments the `waiters` word, re-checks the ring, then
//! sleeps on the `wake` word. A producer, after its commit (a SeqCst swap),
//! loads `waiters` (SeqCst) and only when it is non-zero bumps `wake` and
//! issues the wake syscall. Both sides use SeqCst operations, so either the
//! producer sees the waiter or the waiter's re-check sees the frame: no lost
//! wake-up, and no syscall on the publish path when nobody is parked. Parked
//! sleeps are also bounded (100 ms) as a second line of defence.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use crate::layout;
use crate::mem::Mem;

/// Wait strategy of a subscriber.
///
/// ```
/// use std::time::Duration;
/// use shmbus::WaitStrategy;
/// let w = WaitStrategy::SpinThenPark(Duration::from_micros(20));
/// assert_ne!(w, WaitStrategy::Spin);
/// assert_eq!(WaitStrategy::default(), WaitStrategy::SpinThenPark(Duration::from_micros(50)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Busy-poll: lowest latency, burns a core while idle.
    Spin,
    /// Busy-poll for the given budget, then park on the futex (the default,
    /// with a 50 µs budget).
    SpinThenPark(Duration),
    /// Park at once: no CPU while idle, a wake-up costs tens of microseconds.
    Park,
}

impl Default for WaitStrategy {
    fn default() -> Self {
        WaitStrategy::SpinThenPark(Duration::from_micros(50))
    }
}

const MAX_PARK: Duration = Duration::from_millis(100);

fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned u32 in a shared mapping that outlives
    // the call; FUTEX_WAIT (not PRIVATE) because other processes wake it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: as in `futex_wait`.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

/// Producer side: wake parked readers, if any (call after the commit swap).
#[inline]
pub(crate) fn notify(mem: &Mem) {
    if mem.u32_at(layout::OFF_WAITERS).load(SeqCst) != 0 {
        let wake = mem.u32_at(layout::OFF_WAKE);
        wake.fetch_add(1, SeqCst);
        futex_wake_all(wake);
    }
}

/// Run `attempt` until it yields a value or `deadline` passes. `attempt`'s
/// argument says whether this call is a checkpoint (every 64th spin, and
/// every call around a park) where slow bookkeeping (clock reads, tail
/// loads) may be done; between checkpoints it should stay cheap. The first
/// attempt is not a checkpoint: a caught-up reader calling `recv` per frame
/// would otherwise load the producers' tail line on every call (a cache miss
/// for it and an extra transfer for the next claim). Every call still
/// reaches a checkpoint before its deadline is first checked (spin 63).
pub(crate) fn wait_for<T>(
    mem: &Mem,
    strategy: WaitStrategy,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(bool) -> Option<T>,
) -> Option<T> {
    if let Some(v) = attempt(false) {
        return Some(v);
    }
    let start = Instant::now();
    let spin_budget = match strategy {
        WaitStrategy::Spin => None,
        WaitStrategy::SpinThenPark(b) => Some(b),
        WaitStrategy::Park => Some(Duration::ZERO),
    };
    // Spin phase.
    let mut i = 0u32;
    loop {
        if let Some(v) = attempt(i % 64 == 63) {
            return Some(v);
        }
        i = i.wrapping_add(1);
        if i % 64 == 0 {
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return None;
            }
            if spin_budget.is_some_and(|b| now - start >= b) {
                break;
            }
        }
        std::hint::spin_loop();
    }
    // Park phase.
    let waiters = mem.u32_at(layout::OFF_WAITERS);
    let wake = mem.u32_at(layout::OFF_WAKE);
    loop {
        waiters.fetch_add(1, SeqCst);
        let seen = wake.load(SeqCst);
        if let Some(v) = attempt(true) {
            waiters.fetch_sub(1, SeqCst);
            return Some(v);
        }
        let now = Instant::now();
        let slice = match deadline {
            Some(d) if now >= d => {
                waiters.fetch_sub(1, SeqCst);
                return None;
            }
            Some(d) => (d - now).min(MAX_PARK),
            None => MAX_PARK,
        };
        futex_wait(wake, seen, slice);
        waiters.fetch_sub(1, SeqCst);
        if let Some(v) = attempt(true) {
            return Some(v);
        }
    }
}
