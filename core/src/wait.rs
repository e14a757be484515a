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

/// A reader's sense of whether it is draining a firehose: a stream whose
/// frames keep arriving within a few polls of each other.
///
/// A reader that has caught up polls the commit word of the next frame,
/// which sits in the cache line the producer is writing. Each poll pulls
/// that line to the reader's core (and the hardware prefetcher pulls the
/// next few with it), and the producer's next stores must take them back:
/// several cache-line round trips each time the reader catches up, paid by
/// the producer, which cap a one-producer stream at about 10 M frames/s
/// across cores on the benchmark machine. A reader that knows it is in a
/// firehose waits [`FIREHOSE_BACKOFF`] whenever it catches up, so the
/// producer writes many frames undisturbed and the reader then takes them
/// in one sweep: the fewer catch-ups per frame, the less the producer pays.
///
/// A `recv_many` batch that ends because the ring is empty has caught up
/// too, but the next call usually finds a frame at once (the producer wrote
/// it while the caller handled the batch), so "back off when the first poll
/// fails" would never fire: the reader would take a few frames per call
/// right behind the producer (single-frame `publish` with a `recv_many`
/// reader ran at half the rate of a `recv` reader, ninth/tenth session).
/// So the wait after such a batch backs off before its first poll.
///
/// Latency of sparse traffic is untouched, by two rules:
/// - a frame that took more than `QUICK_POLLS` polls to arrive ends the
///   firehose;
/// - so does a sweep of fewer than `FIREHOSE_SWEEP` frames after a back-off,
///   and then the next firehose needs twice as many quick frames in a row
///   (up to `FIREHOSE_FRAMES << MAX_BAR_SHIFT`; a long sweep resets it).
///   A request-reply exchange whose replies come within a few polls looks
///   like a firehose, and a reply found right after a back-off took no polls
///   at all: before this rule such an exchange stayed a "firehose" for good,
///   each reply waiting out the back-off (0.8 us per round trip in the
///   latency scenario), and with the rule alone but no growing bar it still
///   paid one back-off per 64 round trips (the p99.9).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pacing {
    /// Frames in a row that arrived within `QUICK_POLLS` polls.
    quick: u32,
    /// Frames taken since the last back-off.
    swept: u32,
    /// Whether the reader backed off and the sweep after it is not judged.
    trial: bool,
    /// A firehose takes `FIREHOSE_FRAMES << bar_shift` quick frames.
    bar_shift: u8,
    /// The last call ended caught up after taking frames (a `recv_many`
    /// batch that emptied the ring): see `took_ready`.
    caught_up: bool,
}

/// Polls within which a frame counts as part of a firehose.
const QUICK_POLLS: u32 = 4;
/// Frames in a row that make a firehose.
const FIREHOSE_FRAMES: u32 = 64;
/// Frames a sweep after a back-off must find for the stream to stay a
/// firehose: a stream of 5 M frames/s brings 15 in `FIREHOSE_BACKOFF`.
const FIREHOSE_SWEEP: u32 = 16;
/// Short sweeps in a row after which the bar stops growing (64 Ki frames).
const MAX_BAR_SHIFT: u8 = 10;
/// How long a firehose reader waits when it catches up: the most a frame
/// of a firehose can wait on top of the usual polling. Measured in time, not
/// in `pause` instructions, whose cost differs tenfold between CPUs (about
/// 25 ns on the benchmark machine, a few ns on others). 0.8 us (32 pauses
/// there) left single-frame 1 -> 1 throughput about a quarter lower
/// (BENCHMARKS.md, "Ninth session").
const FIREHOSE_BACKOFF: Duration = Duration::from_micros(3);

/// Spin (`pause`) for `d`, reading the clock once per 8 pauses.
fn back_off(d: Duration) {
    let start = Instant::now();
    loop {
        for _ in 0..8 {
            std::hint::spin_loop();
        }
        if start.elapsed() >= d {
            return;
        }
    }
}

impl Pacing {
    /// A frame arrived after `polls` failed polls (0: it was already there).
    #[inline]
    fn arrived(&mut self, polls: u32) {
        if polls <= QUICK_POLLS {
            self.quick = self.quick.saturating_add(1);
        } else {
            self.quick = 0;
            self.trial = false;
        }
        self.swept = self.swept.saturating_add(1);
    }

    /// `n` more frames were taken without waiting (the rest of a
    /// `recv_many` batch): as `n` calls of `arrived(0)`. `caught_up`: the
    /// batch ended because nothing more was ready, not at its limit.
    ///
    /// A batch that ends caught up has just polled the frame the producer
    /// is writing, like a failed first poll of `recv`; but by the next call
    /// (after the caller handled the batch) the next frame is usually
    /// there, so that call's first poll succeeds and a firehose reader
    /// would never back off, taking a few frames per call right behind the
    /// producer. The next wait backs off first instead (`wait_for`).
    #[inline]
    pub(crate) fn took_ready(&mut self, n: u32, caught_up: bool) {
        self.quick = self.quick.saturating_add(n);
        self.swept = self.swept.saturating_add(n);
        self.caught_up = caught_up;
    }

    /// Whether the frames so far make a firehose (no judgement of the
    /// last sweep: see `back_off_now`).
    #[inline]
    fn in_firehose(&self) -> bool {
        self.quick >= FIREHOSE_FRAMES << self.bar_shift
    }

    /// The reader has caught up: should it back off now? Yes in a firehose,
    /// unless the sweep after the last back-off was short, which ends the
    /// firehose and raises the bar for the next one.
    #[inline]
    fn back_off_now(&mut self) -> bool {
        if !self.in_firehose() {
            return false;
        }
        if self.trial {
            if self.swept < FIREHOSE_SWEEP {
                self.quick = 0;
                self.trial = false;
                self.bar_shift = (self.bar_shift + 1).min(MAX_BAR_SHIFT);
                return false;
            }
            self.bar_shift = 0;
        }
        self.swept = 0;
        self.trial = true;
        true
    }
}

/// The reader has caught up with a stream: in a firehose, let the producer
/// get ahead before polling the line it is writing (see `Pacing`), unless
/// the caller's deadline is nearer than the back-off (`recv_timeout` with a
/// zero timeout must not spin for it). Returns whether it backed off.
#[inline]
fn pace(pacing: &mut Pacing, deadline: Deadline) -> bool {
    // `in_firehose` first: `allows` may read the clock.
    let go = pacing.in_firehose() && deadline.allows(FIREHOSE_BACKOFF) && pacing.back_off_now();
    if go {
        back_off(FIREHOSE_BACKOFF);
    }
    go
}

/// When a wait ends. A timeout relative to the call is turned into an
/// instant only once the wait really starts (after the first attempt), so
/// a `recv_timeout` that finds a frame ready reads no clock: a C or Python
/// consumer that passes a timeout on every call would otherwise pay a
/// clock read (20-30 ns in a VM) per frame.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deadline {
    /// Wait as long as it takes.
    Never,
    /// Give up at this instant.
    At(Instant),
    /// Give up this long after the wait starts.
    After(Duration),
}

impl Deadline {
    /// Whether waiting `d` from now keeps within the deadline (reads the
    /// clock for `At` only).
    fn allows(self, d: Duration) -> bool {
        match self {
            Deadline::Never => true,
            Deadline::After(t) => t >= d,
            Deadline::At(t) => t.saturating_duration_since(Instant::now()) >= d,
        }
    }

    fn resolve(self, start: Instant) -> Option<Instant> {
        match self {
            Deadline::Never => None,
            Deadline::At(t) => Some(t),
            // An instant too far to represent is as good as never.
            Deadline::After(d) => start.checked_add(d),
        }
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
    deadline: Deadline,
    pacing: &mut Pacing,
    mut attempt: impl FnMut(bool) -> Option<T>,
) -> Option<T> {
    // The last batch ended caught up: a firehose reader backs off before
    // its first poll (see `Pacing::took_ready`).
    if std::mem::take(&mut pacing.caught_up) {
        pace(pacing, deadline);
    }
    if let Some(v) = attempt(false) {
        pacing.arrived(0);
        return Some(v);
    }
    if pace(pacing, deadline) {
        if let Some(v) = attempt(false) {
            pacing.arrived(1);
            return Some(v);
        }
    }
    let start = Instant::now();
    let deadline = deadline.resolve(start);
    let spin_budget = match strategy {
        WaitStrategy::Spin => None,
        WaitStrategy::SpinThenPark(b) => Some(b),
        WaitStrategy::Park => Some(Duration::ZERO),
    };
    // Spin phase.
    let mut i = 0u32;
    loop {
        if let Some(v) = attempt(i % 64 == 63) {
            pacing.arrived(i.saturating_add(1));
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
            pacing.arrived(u32::MAX);
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
            pacing.arrived(u32::MAX);
            return Some(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_allows_a_back_off_only_if_it_is_that_far() {
        let b = FIREHOSE_BACKOFF;
        assert!(Deadline::Never.allows(b));
        assert!(Deadline::After(b).allows(b));
        assert!(!Deadline::After(Duration::ZERO).allows(b));
        assert!(!Deadline::After(b / 2).allows(b));
        assert!(Deadline::At(Instant::now() + Duration::from_secs(60)).allows(b));
        assert!(!Deadline::At(Instant::now()).allows(b));
    }

    #[test]
    fn back_off_waits_at_least_as_long_as_asked() {
        for d in [Duration::ZERO, FIREHOSE_BACKOFF, Duration::from_micros(200)] {
            let start = Instant::now();
            back_off(d);
            assert!(start.elapsed() >= d, "{d:?}");
        }
    }

    #[test]
    fn pacing_enters_a_firehose_after_quick_frames_and_leaves_it_on_a_slow_one() {
        let mut p = Pacing::default();
        for i in 0..FIREHOSE_FRAMES {
            assert!(!p.back_off_now(), "after {i} quick frames");
            p.arrived(i % (QUICK_POLLS + 1)); // already there, or within a few polls
        }
        assert!(p.back_off_now());
        for _ in 0..FIREHOSE_SWEEP {
            p.arrived(0);
        }
        p.arrived(QUICK_POLLS);
        assert!(p.back_off_now(), "a frame within QUICK_POLLS polls keeps it");
        for _ in 0..FIREHOSE_SWEEP {
            p.arrived(0);
        }
        p.arrived(QUICK_POLLS + 1);
        assert!(!p.back_off_now(), "a frame that kept the reader waiting ends it");
        p.arrived(u32::MAX); // after a park
        assert!(!p.back_off_now());
    }

    #[test]
    fn frames_taken_in_a_batch_count_as_a_sweep() {
        let mut p = Pacing::default();
        p.arrived(0);
        p.took_ready(FIREHOSE_FRAMES - 1, false);
        assert!(p.back_off_now(), "a batch of quick frames makes a firehose");
        p.arrived(1);
        p.took_ready(FIREHOSE_SWEEP - 1, false);
        assert!(p.back_off_now(), "a batch after a back-off is a long sweep");
        p.arrived(1);
        assert!(!p.back_off_now(), "one frame is not");
    }

    /// A heap stand-in for a segment's header (only the futex words are
    /// used, by the park phase, which these tests never reach).
    fn scratch_mem(words: &mut [u128]) -> Mem {
        assert!(words.len() * 16 >= layout::OFF_WAKE + 4 && words.len() * 16 >= layout::OFF_WAITERS + 4);
        // SAFETY: `words` is 16-byte aligned, readable and writable, and
        // outlives every use of the returned `Mem` in the calling test.
        unsafe { Mem::new(words.as_mut_ptr().cast(), words.len() * 16) }
    }

    fn firehose() -> Pacing {
        let mut p = Pacing::default();
        p.arrived(0);
        p.took_ready(FIREHOSE_FRAMES - 1, false);
        assert!(p.in_firehose());
        p
    }

    #[test]
    fn a_batch_that_caught_up_makes_the_next_wait_back_off_first() {
        let mut words = vec![0u128; 64];
        let mem = scratch_mem(&mut words);
        let mut p = firehose();
        p.took_ready(0, true);
        let start = Instant::now();
        let mut first_poll = None;
        let got = wait_for(&mem, WaitStrategy::Spin, Deadline::Never, &mut p, |_| {
            first_poll.get_or_insert_with(Instant::now);
            Some(())
        });
        assert_eq!(got, Some(()));
        let waited = first_poll.unwrap() - start;
        assert!(waited >= FIREHOSE_BACKOFF, "first poll after {waited:?}");
        assert!(
            p.trial && p.swept == 1,
            "the frame after the back-off opens a sweep: {p:?}"
        );
        assert!(!p.caught_up, "the mark is used once");
    }

    #[test]
    fn no_back_off_first_after_a_full_batch_outside_a_firehose_or_near_a_deadline() {
        let mut words = vec![0u128; 64];
        let mem = scratch_mem(&mut words);
        let cases: [(Pacing, Deadline, &str); 3] = [
            (
                {
                    let mut p = firehose();
                    p.took_ready(10, false);
                    p
                },
                Deadline::Never,
                "a full batch",
            ),
            (
                {
                    let mut p = Pacing::default();
                    p.took_ready(10, true);
                    p
                },
                Deadline::Never,
                "no firehose yet",
            ),
            (
                {
                    let mut p = firehose();
                    p.took_ready(10, true);
                    p
                },
                Deadline::After(Duration::ZERO),
                "a zero timeout",
            ),
        ];
        for (mut p, deadline, case) in cases {
            let got = wait_for(&mem, WaitStrategy::Spin, deadline, &mut p, |_| Some(()));
            assert_eq!(got, Some(()), "{case}");
            assert!(!p.trial, "{case}: backed off ({p:?})");
            assert!(!p.caught_up, "{case}: the mark is used once");
        }
    }

    #[test]
    fn a_short_sweep_after_a_back_off_ends_the_firehose_and_raises_the_bar() {
        let mut p = Pacing::default();
        for _ in 0..FIREHOSE_FRAMES {
            p.arrived(0);
        }
        assert!(p.back_off_now());
        // Request-reply: one frame per back-off, found at once each time.
        p.arrived(1);
        assert!(!p.back_off_now(), "one frame after a back-off is no firehose");
        // The next firehose takes twice as many quick frames...
        for i in 0..2 * FIREHOSE_FRAMES - 1 {
            p.arrived(1);
            assert!(!p.back_off_now(), "after {i} quick frames");
        }
        p.arrived(1);
        assert!(p.back_off_now());
        p.arrived(0);
        assert!(!p.back_off_now());
        // ... and the bar stops growing at FIREHOSE_FRAMES << MAX_BAR_SHIFT.
        for _ in 0..2 * MAX_BAR_SHIFT {
            for _ in 0..FIREHOSE_FRAMES << MAX_BAR_SHIFT {
                p.arrived(1);
            }
            assert!(p.back_off_now());
            p.arrived(0);
            assert!(!p.back_off_now());
        }
        // A real firehose: a long sweep after the back-off resets the bar.
        for _ in 0..FIREHOSE_FRAMES << MAX_BAR_SHIFT {
            p.arrived(1);
        }
        assert!(p.back_off_now());
        for _ in 0..FIREHOSE_SWEEP {
            p.arrived(0);
        }
        assert!(p.back_off_now(), "a long sweep keeps the firehose");
        for _ in 0..FIREHOSE_SWEEP {
            p.arrived(0);
        }
        p.arrived(QUICK_POLLS + 1); // a slow frame ends it
        for _ in 0..FIREHOSE_FRAMES {
            p.arrived(0);
        }
        assert!(p.back_off_now(), "the bar is back at FIREHOSE_FRAMES");
    }
}
