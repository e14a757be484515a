//! Frame timestamps: `CLOCK_REALTIME` nanoseconds, read cheaply.
//!
//! Every frame carries the wall-clock time of its publish. `clock_gettime`
//! through the vDSO costs about 23 ns on the reference VM (a third of a
//! publish), of which the `rdtsc` it performs is about 10 ns. So each producer
//! thread keeps a [`Clock`]:
//!
//! - an *anchor* `(tsc0, ns0)`: one `clock_gettime` bracketed by two `rdtsc`;
//! - a ticks-to-nanoseconds multiplier `mult` (32.32 fixed point), measured
//!   between a *base* anchor and a later one: first over at least 1 ms, then
//!   re-measured every 100 ms, so NTP slewing is followed;
//! - a timestamp is `ns0 + (rdtsc - tsc0) * mult >> 32` while the anchor is
//!   younger than [`WINDOW_NS`]; past that (or if the TSC went backwards,
//!   e.g. a migration to a CPU whose TSC is behind) the clock re-anchors.
//!
//! **Invariant (accuracy):** a timestamp differs from `CLOCK_REALTIME` at the
//! same instant by at most the multiplier's relative error times
//! [`WINDOW_NS`] (with a 100 ms calibration span and a ~30 ns bracket: well
//! under 1 ns; with the first 1 ms span: tens of ns), plus the anchor's
//! bracket width. A step of `CLOCK_REALTIME` (settimeofday) is followed
//! within [`WINDOW_NS`]. Like `CLOCK_REALTIME` itself the timestamps are not
//! monotonic; order frames by seq.
//!
//! **The first multiplier** needs a span of at least [`FIRST_SPAN_NS`]
//! between two anchors, and until then each timestamp is a plain
//! `clock_gettime`. A clock is per thread and bus, so every new producer
//! thread (or a thread's first publish on another bus) would pay that for
//! its first millisecond of publishing (a `clock_gettime` per timestamp,
//! 23-44 ns on the reference VM, and it was three of them, instead of an
//! interpolation; a short-lived collector, or a benchmark run of 45 ms,
//! pays it every time). So the process takes one anchor when
//! it first opens or creates a bus ([`prime`]), and a new clock measures
//! its first span from there: usually its first timestamp is interpolated
//! already. The TSC is synchronized across CPUs wherever it is usable here
//! (below), so an anchor taken on one thread serves every thread.
//!
//! The TSC is read only where the kernel itself uses it as its clocksource,
//! i.e. where Linux has checked that it is invariant and synchronized across
//! CPUs. Elsewhere (another clocksource, not x86_64), and until the first
//! multiplier is measured, every timestamp is a plain `clock_gettime`.

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// Longest interpolation from one anchor, in nanoseconds.
pub(crate) const WINDOW_NS: u64 = 1_000_000;
/// Shortest span for the first multiplier.
const FIRST_SPAN_NS: u64 = 1_000_000;
/// Span after which the multiplier is re-measured and the base moved on.
const SPAN_NS: u64 = 100_000_000;

/// `CLOCK_REALTIME` in nanoseconds since the Unix epoch (vDSO call).
#[inline]
pub(crate) fn realtime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no preconditions; it is only used when the kernel's
    // clocksource is the TSC (`tsc_usable`), so the instruction exists and
    // is not trapped into something slower than clock_gettime.
    unsafe { core::arch::x86_64::_rdtsc() }
}
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn rdtsc() -> u64 {
    0
}

/// Is the TSC the kernel's clocksource? Read once per process.
fn tsc_usable() -> bool {
    // 0: not known yet, 1: yes, 2: no.
    static STATE: AtomicU8 = AtomicU8::new(0);
    match STATE.load(Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let yes = cfg!(target_arch = "x86_64")
                && std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
                    .is_ok_and(|s| s.trim() == "tsc");
            STATE.store(if yes { 1 } else { 2 }, Relaxed);
            yes
        }
    }
}

/// The process's anchor `(tsc, ns)` for new clocks to measure their first
/// span from (see the module docs); `(0, 0)`: none. Taken by [`prime`],
/// refreshed by every clock that measures a multiplier.
static PROCESS_ANCHOR: std::sync::Mutex<(u64, u64)> = std::sync::Mutex::new((0, 0));

/// A process anchor older than this is not used: a multiplier measured over
/// a longer span would average an NTP frequency correction over it instead
/// of following the current one, as the 100 ms re-measurements do.
const ANCHOR_MAX_AGE_NS: u64 = 10 * SPAN_NS;

/// Run `f` on the process anchor if its lock is free right now; `None`
/// otherwise. Never waits: the anchor only saves calibration time, and a
/// process forked while another thread held the lock has it locked for good
/// (a blocking `lock` there would hang every later publish's re-anchor).
fn with_process_anchor<R>(f: impl FnOnce(&mut (u64, u64)) -> R) -> Option<R> {
    match PROCESS_ANCHOR.try_lock() {
        Ok(mut a) => Some(f(&mut a)),
        // Nothing panics while holding it; a poisoned lock still holds a
        // pair that was written whole.
        Err(std::sync::TryLockError::Poisoned(e)) => Some(f(&mut e.into_inner())),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Take the process's anchor if the TSC is usable and there is none yet, or
/// it is too old to use. Called when a bus is opened or created: one clock
/// read after the first call.
pub(crate) fn prime() {
    if !tsc_usable() {
        return;
    }
    with_process_anchor(|a| {
        let now = realtime_ns();
        if a.1 == 0 || now < a.1 || now - a.1 > ANCHOR_MAX_AGE_NS / 2 {
            if let Some(b) = bracket() {
                *a = b;
            }
        }
    });
}

/// A TSC reading and the `CLOCK_REALTIME` time at the same instant: the
/// narrowest of three brackets (a preemption inside one would put the TSC
/// reading far from the clock reading). `None` if the TSC went backwards
/// between reads.
fn bracket() -> Option<(u64, u64)> {
    let (mut tsc, mut ns, mut width) = (0, 0, u64::MAX);
    for _ in 0..3 {
        let a = rdtsc();
        let n = realtime_ns();
        let b = rdtsc();
        if b >= a && b - a < width {
            (tsc, ns, width) = (a + (b - a) / 2, n, b - a);
        }
    }
    (width != u64::MAX).then_some((tsc, ns))
}

#[derive(Clone, Copy, Default)]
struct State {
    /// Current anchor.
    tsc0: u64,
    ns0: u64,
    /// Anchor the multiplier is measured from (`base_ns == 0`: none yet).
    base_tsc: u64,
    base_ns: u64,
    /// Nanoseconds per tick, 32.32 fixed point; 0 while uncalibrated.
    mult: u64,
    /// Ticks in [`WINDOW_NS`] at `mult`.
    window: u64,
}

/// A per-thread timestamp source (see the module docs). Not `Sync`: each
/// producer thread owns one (in its producer slot).
#[derive(Default)]
pub(crate) struct Clock(Cell<State>);

impl Clock {
    /// Nanoseconds since the Unix epoch, now.
    #[inline(always)]
    pub(crate) fn now(&self) -> u64 {
        let s = self.0.get();
        if s.mult != 0 {
            let d = rdtsc().wrapping_sub(s.tsc0);
            if d < s.window {
                return s.ns0 + ((u128::from(d) * u128::from(s.mult)) >> 32) as u64;
            }
        }
        self.reanchor()
    }

    #[cold]
    fn reanchor(&self) -> u64 {
        if !tsc_usable() {
            return realtime_ns();
        }
        let mut s = self.0.get();
        if s.base_ns == 0 {
            // A new clock: measure the first span from the process's anchor
            // (checked against the new anchor below).
            (s.base_tsc, s.base_ns) = with_process_anchor(|a| *a).unwrap_or((0, 0));
        } else if s.mult == 0 {
            // Calibrating: until the first span is long enough, a plain
            // clock read (not three brackets) is the timestamp.
            let ns = realtime_ns();
            if ns >= s.base_ns && ns - s.base_ns < FIRST_SPAN_NS {
                return ns;
            }
        }
        let Some((tsc, ns)) = bracket() else {
            return realtime_ns(); // the TSC went backwards between reads
        };
        if s.base_ns == 0 || ns < s.base_ns || tsc <= s.base_tsc || (s.mult == 0 && ns - s.base_ns > ANCHOR_MAX_AGE_NS)
        {
            // First anchor, the clock (or the TSC) stepped back, or a new
            // clock's process anchor is too old to measure from: restart
            // the calibration from here.
            s = State {
                base_tsc: tsc,
                base_ns: ns,
                ..State::default()
            };
        } else {
            let span_ns = ns - s.base_ns;
            let span_tsc = tsc - s.base_tsc;
            if span_ns >= SPAN_NS || (s.mult == 0 && span_ns >= FIRST_SPAN_NS) {
                let mult = (u128::from(span_ns) << 32) / u128::from(span_tsc);
                // Between 0.01 and 100 ns per tick, or the spans are nonsense
                // (a clock step forward): recalibrate.
                if ((1u128 << 32) / 100..=100u128 << 32).contains(&mult) {
                    s.mult = mult as u64;
                    s.window = ((u128::from(WINDOW_NS) << 32) / mult) as u64;
                    with_process_anchor(|a| *a = (tsc, ns));
                } else {
                    s.mult = 0;
                }
                s.base_tsc = tsc;
                s.base_ns = ns;
            }
        }
        s.tsc0 = tsc;
        s.ns0 = ns;
        self.0.set(s);
        ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timestamps stay within a small tolerance of CLOCK_REALTIME read just
    /// before and after, across calibration and many re-anchors.
    #[test]
    fn clock_tracks_realtime() {
        let clock = Clock::default();
        // Generous: a preempted thread can see a wide bracket; the point is
        // that nothing drifts or jumps by more than this.
        const TOLERANCE: u64 = 200_000;
        let start = std::time::Instant::now();
        let mut calibrated = false;
        let mut worst = 0u64;
        let mut n = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(300) {
            let before = realtime_ns();
            let t = clock.now();
            let after = realtime_ns();
            assert!(
                before.saturating_sub(TOLERANCE) <= t && t <= after + TOLERANCE,
                "timestamp {t} outside [{before}, {after}] +- {TOLERANCE} after {n} reads"
            );
            worst = worst.max(before.saturating_sub(t)).max(t.saturating_sub(after));
            calibrated |= clock.0.get().mult != 0;
            n += 1;
        }
        // On a TSC clocksource the fast path must have been reached.
        assert_eq!(
            calibrated,
            tsc_usable(),
            "calibration state after {n} reads (worst error {worst} ns)"
        );
    }

    /// With the anchor's lock held (as in a child forked while another
    /// thread held it), opening a bus and timestamping neither block nor
    /// lose accuracy: the clock calibrates on its own.
    #[test]
    fn a_held_anchor_lock_blocks_nothing() {
        let guard = PROCESS_ANCHOR.lock().unwrap_or_else(|e| e.into_inner());
        prime();
        let c = Clock::default();
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_nanos(3 * FIRST_SPAN_NS) {
            let before = realtime_ns();
            let t = c.now();
            let after = realtime_ns();
            assert!(before.saturating_sub(200_000) <= t && t <= after + 200_000);
        }
        assert_eq!(c.0.get().mult != 0, tsc_usable(), "calibrated without the anchor");
        drop(guard);
    }

    /// A clock with the given base anchor and nothing measured yet, like a
    /// new clock that picked up the process's anchor.
    fn clock_based_at((tsc, ns): (u64, u64)) -> Clock {
        let c = Clock::default();
        c.0.set(State {
            base_tsc: tsc,
            base_ns: ns,
            ..State::default()
        });
        c
    }

    #[test]
    fn prime_takes_a_process_anchor() {
        prime();
        // (Another test may hold the lock for a moment: then skip the check.)
        let Some((tsc, ns)) = with_process_anchor(|a| *a) else {
            return;
        };
        if tsc_usable() {
            assert!(tsc != 0 && ns != 0 && ns <= realtime_ns(), "anchor ({tsc}, {ns})");
        }
    }

    /// A new clock measures its first span from the process's anchor: once
    /// that is `FIRST_SPAN_NS` old, the clock's first timestamp already
    /// yields a multiplier, and the timestamps are accurate.
    #[test]
    fn a_clock_based_on_an_older_anchor_is_calibrated_at_once() {
        if !tsc_usable() {
            return;
        }
        let anchor = bracket().expect("tsc");
        std::thread::sleep(std::time::Duration::from_nanos(2 * FIRST_SPAN_NS));
        let c = clock_based_at(anchor);
        let before = realtime_ns();
        let t = c.now();
        assert!(c.0.get().mult != 0, "not calibrated by the first timestamp");
        let t2 = c.now();
        let after = realtime_ns();
        // Generous, as in `clock_tracks_realtime`.
        const TOLERANCE: u64 = 200_000;
        for t in [t, t2] {
            assert!(
                before - TOLERANCE <= t && t <= after + TOLERANCE,
                "{t} outside [{before}, {after}]"
            );
        }
    }

    /// Before the first span is long enough, a timestamp is a plain clock
    /// read and the base stays; an anchor older than `ANCHOR_MAX_AGE_NS`
    /// is not measured from but replaced.
    #[test]
    fn a_young_anchor_is_waited_for_and_a_stale_one_replaced() {
        if !tsc_usable() {
            return;
        }
        let young = bracket().expect("tsc");
        let c = clock_based_at(young);
        let before = realtime_ns();
        let t = c.now();
        assert!(before <= t && t <= realtime_ns());
        let s = c.0.get();
        if s.mult == 0 {
            // (Unless this thread was descheduled for a millisecond.)
            assert_eq!((s.base_tsc, s.base_ns), young, "the base moved before the first span");
        }
        // A stale anchor: the same ticks-per-ns as this machine's, 2 s ago.
        let calibrated = clock_based_at(bracket().expect("tsc"));
        std::thread::sleep(std::time::Duration::from_nanos(2 * FIRST_SPAN_NS));
        calibrated.now();
        let mult = calibrated.0.get().mult;
        assert!(mult != 0);
        let (tsc, ns) = bracket().expect("tsc");
        let age = 2 * ANCHOR_MAX_AGE_NS;
        let ticks = ((u128::from(age) << 32) / u128::from(mult)) as u64;
        let c = clock_based_at((tsc - ticks, ns - age));
        c.now();
        let s = c.0.get();
        assert_eq!(s.mult, 0, "measured over a stale anchor");
        assert!(s.base_ns >= ns, "the stale anchor was kept as the base");
    }

    /// The fast path is taken between anchors, and re-anchoring happens once
    /// the window is used up.
    #[test]
    fn clock_reanchors_after_window() {
        if !tsc_usable() {
            return;
        }
        let clock = Clock::default();
        let t0 = std::time::Instant::now();
        while clock.0.get().mult == 0 {
            clock.now();
            assert!(t0.elapsed().as_secs() < 5, "never calibrated");
        }
        let anchor = clock.0.get().tsc0;
        clock.now();
        std::thread::sleep(std::time::Duration::from_nanos(2 * WINDOW_NS));
        clock.now();
        assert_ne!(clock.0.get().tsc0, anchor, "no re-anchor after the window");
    }
}
