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
        // The narrowest of three brackets: a preemption inside one would put
        // the TSC reading far from the clock reading.
        let (mut tsc, mut ns, mut width) = (0, 0, u64::MAX);
        for _ in 0..3 {
            let a = rdtsc();
            let n = realtime_ns();
            let b = rdtsc();
            if b >= a && b - a < width {
                (tsc, ns, width) = (a + (b - a) / 2, n, b - a);
            }
        }
        if width == u64::MAX {
            return realtime_ns(); // the TSC went backwards between reads
        }
        let mut s = self.0.get();
        if s.base_ns == 0 || ns < s.base_ns || tsc <= s.base_tsc {
            // First anchor, or the clock (or the TSC) stepped back: restart
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
