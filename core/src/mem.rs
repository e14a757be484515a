//! Typed access to the bytes of a mapped segment.
//!
//! Everything the ring protocol reads or writes in shared memory goes through
//! [`Mem`]. In production `Mem` is a raw view of an `mmap`ed region; under
//! `--cfg loom` it is an array of loom atomics (one per 8-byte word) plus a
//! mutex standing in for the 128-bit tail, so loom can check every access.
//!
//! Invariant relied on by every accessor: offsets are computed from a
//! [`crate::layout::Layout`] that was validated against the mapping length
//! when the segment was opened, so `off + size <= len` and atomics are
//! naturally aligned. Accessors `debug_assert!` it.

use crate::sync::AtomicU64;

/// The 128-bit tail: `(position, seq)` updated together by compare-and-swap.
#[cfg(not(loom))]
pub(crate) struct Tail<'a>(&'a portable_atomic::AtomicU128);

#[cfg(not(loom))]
impl Tail<'_> {
    #[inline]
    pub(crate) fn load(&self) -> (u64, u64) {
        split(self.0.load(std::sync::atomic::Ordering::Acquire))
    }
    #[inline]
    pub(crate) fn cas(&self, cur: (u64, u64), new: (u64, u64)) -> bool {
        self.0
            .compare_exchange(
                join(cur),
                join(new),
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
            )
            .is_ok()
    }
    /// Plain store, used only while a segment is being initialised.
    pub(crate) fn init(&self, v: (u64, u64)) {
        self.0.store(join(v), std::sync::atomic::Ordering::Release)
    }
    /// Release store by the only writer (single-producer mode).
    #[inline]
    pub(crate) fn store(&self, v: (u64, u64)) {
        self.0.store(join(v), std::sync::atomic::Ordering::Release)
    }
}

#[cfg(not(loom))]
#[inline]
fn join((pos, seq): (u64, u64)) -> u128 {
    (u128::from(seq) << 64) | u128::from(pos)
}
#[cfg(not(loom))]
#[inline]
fn split(v: u128) -> (u64, u64) {
    (v as u64, (v >> 64) as u64)
}

/// A view of shared memory.
#[cfg(not(loom))]
#[derive(Clone, Copy)]
pub(crate) struct Mem {
    base: *mut u8,
    len: usize,
}

// SAFETY: `Mem` is a pointer to a shared mapping that outlives it (the owning
// `Segment` keeps the mapping alive); all concurrent access goes through
// atomics or through the seqlock-validated copies documented in ring.rs.
#[cfg(not(loom))]
unsafe impl Send for Mem {}
// SAFETY: see `Send` above.
#[cfg(not(loom))]
unsafe impl Sync for Mem {}

#[cfg(not(loom))]
impl Mem {
    /// # Safety
    /// `base..base+len` must stay mapped, readable and writable for the
    /// lifetime of the returned value and of every copy of it, and `base`
    /// must be 16-byte aligned.
    pub(crate) unsafe fn new(base: *mut u8, len: usize) -> Mem {
        debug_assert_eq!(base as usize % 16, 0);
        Mem { base, len }
    }

    #[inline]
    pub(crate) fn u64_at(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off % 8 == 0 && off + 8 <= self.len, "u64_at({off}) out of {}", self.len);
        // SAFETY: in bounds and 8-aligned (module invariant); AtomicU64 has the
        // same layout as u64, and all concurrent accesses to this word are atomic.
        unsafe { &*(self.base.add(off) as *const AtomicU64) }
    }

    #[inline]
    pub(crate) fn u32_at(&self, off: usize) -> &std::sync::atomic::AtomicU32 {
        debug_assert!(off % 4 == 0 && off + 4 <= self.len);
        // SAFETY: in bounds and 4-aligned (module invariant); all accesses atomic.
        unsafe { &*(self.base.add(off) as *const std::sync::atomic::AtomicU32) }
    }

    #[inline]
    pub(crate) fn tail(&self, off: usize) -> Tail<'_> {
        debug_assert!(off % 16 == 0 && off + 16 <= self.len);
        // SAFETY: in bounds and 16-aligned (module invariant); the tail word is
        // only ever accessed as an AtomicU128, whose lock-freedom is checked
        // when the segment is opened (`AtomicU128::is_lock_free`).
        Tail(unsafe { &*(self.base.add(off) as *const portable_atomic::AtomicU128) })
    }

    /// Copy `src` into the segment at `off`.
    ///
    /// Used by a producer on bytes it owns (its claimed frame), see ring.rs.
    #[inline]
    pub(crate) fn write(&self, off: usize, src: &[u8]) {
        assert!(off + src.len() <= self.len);
        // SAFETY: in bounds (asserted). The destination is a claimed frame that
        // no other writer touches (ring invariant W1); readers racing with this
        // write discard what they copied (seqlock check, ring invariant R2).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.base.add(off), src.len()) }
    }

    /// Fill `len` bytes at `off` with zeros (producer-owned bytes, like `write`).
    #[inline]
    pub(crate) fn zero(&self, off: usize, len: usize) {
        assert!(off + len <= self.len);
        // SAFETY: as for `write`.
        unsafe { std::ptr::write_bytes(self.base.add(off), 0, len) }
    }

    /// Copy `dst.len()` bytes at `off` out of the segment.
    ///
    /// The bytes may be concurrently rewritten by another process; callers
    /// validate the copy afterwards (seqlock) and never trust its contents.
    /// This is the seqlock read pattern used by crossbeam's `AtomicCell`: a
    /// volatile-strength copy whose result is discarded if it raced.
    #[inline]
    pub(crate) fn read(&self, off: usize, dst: &mut [u8]) {
        assert!(off + dst.len() <= self.len);
        // SAFETY: in bounds (asserted); the source may race with a writer in
        // another process, which is why the result is validated by the caller
        // before use and only ever treated as untrusted bytes.
        unsafe { std::ptr::copy_nonoverlapping(self.base.add(off), dst.as_mut_ptr(), dst.len()) }
    }

    /// Store `words` at `off` (8-aligned), one 8-byte store each; bytes the
    /// producer owns, like [`Mem::write`].
    #[inline(always)]
    pub(crate) fn write_words(&self, off: usize, words: &[u64]) {
        assert!(off % 8 == 0 && off + words.len() * 8 <= self.len);
        for (i, &w) in words.iter().enumerate() {
            // SAFETY: in bounds and 8-aligned (asserted; the mapping is page
            // aligned); the bytes are the producer's own, as for `write`.
            unsafe { self.base.add(off + i * 8).cast::<u64>().write(w) }
        }
    }

    /// [`Mem::read`] of a constant number of bytes: compiled to a few
    /// vector moves (no `memcpy` call), from which narrow loads of the
    /// copy are forwarded at once.
    #[inline(always)]
    pub(crate) fn read_array<const N: usize>(&self, off: usize, dst: &mut [u8; N]) {
        assert!(off + N <= self.len);
        // SAFETY: as for `read`.
        unsafe { std::ptr::copy_nonoverlapping(self.base.add(off), dst.as_mut_ptr(), N) }
    }

    /// Length of the mapping in bytes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Ask the CPU to bring the line holding `off` to this core in a
    /// writable state (`prefetchw`), so that a later store to it does not
    /// wait for the line. A hint only: no architectural effect, never faults.
    /// Call only where [`has_prefetch_w`] is true; out of bounds is a no-op.
    #[inline(always)]
    pub(crate) fn prefetch_for_write(&self, off: usize) {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        if off < self.len {
            // SAFETY: `off < len`, so the address is inside the mapping.
            // `prefetchw` is a hint that reads and writes no architectural
            // state (flags included) and cannot fault; the caller checked
            // that the CPU has it (`has_prefetch_w`).
            unsafe {
                std::arch::asm!(
                    "prefetchw byte ptr [{0}]",
                    in(reg) self.base.add(off),
                    options(nostack, preserves_flags, readonly)
                )
            }
        }
    }

    /// Raw pointer to `off`, for zero-copy claims (caller owns those bytes).
    #[inline]
    pub(crate) fn ptr(&self, off: usize, len: usize) -> *mut u8 {
        assert!(off + len <= self.len);
        // SAFETY: in bounds (asserted).
        unsafe { self.base.add(off) }
    }
}

/// Whether this CPU has `prefetchw` (CPUID leaf 8000_0001h, ECX bit 8:
/// PRFCHW, AMD's 3DNowPrefetch): every AMD64 CPU, and Intel's since
/// Broadwell. Checked once per process; false off x86_64.
pub(crate) fn has_prefetch_w() -> bool {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            use std::arch::x86_64::__cpuid;
            // SAFETY (for toolchains where `__cpuid` is still `unsafe`):
            // every x86_64 CPU has `cpuid`, and leaf 8000_0001h is read only
            // when the maximum extended leaf says it exists.
            #[allow(unused_unsafe)]
            let max = unsafe { __cpuid(0x8000_0000) }.eax;
            #[allow(unused_unsafe)]
            let ecx = || unsafe { __cpuid(0x8000_0001) }.ecx;
            max >= 0x8000_0001 && ecx() & (1 << 8) != 0
        })
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom), not(miri))))]
    {
        false
    }
}

// ---------------------------------------------------------------------------
// loom model of the same memory
// ---------------------------------------------------------------------------

#[cfg(loom)]
pub(crate) struct Tail<'a>(&'a loom::sync::Mutex<(u64, u64)>);

#[cfg(loom)]
impl Tail<'_> {
    pub(crate) fn load(&self) -> (u64, u64) {
        *self.0.lock().unwrap()
    }
    pub(crate) fn cas(&self, cur: (u64, u64), new: (u64, u64)) -> bool {
        let mut g = self.0.lock().unwrap();
        if *g == cur {
            *g = new;
            true
        } else {
            false
        }
    }
    pub(crate) fn init(&self, v: (u64, u64)) {
        *self.0.lock().unwrap() = v;
    }
    pub(crate) fn store(&self, v: (u64, u64)) {
        *self.0.lock().unwrap() = v;
    }
}

#[cfg(loom)]
pub(crate) struct Mem {
    words: std::sync::Arc<(Vec<AtomicU64>, loom::sync::Mutex<(u64, u64)>)>,
}

#[cfg(loom)]
impl Clone for Mem {
    fn clone(&self) -> Self {
        Mem {
            words: self.words.clone(),
        }
    }
}

#[cfg(loom)]
impl Mem {
    pub(crate) fn new_model(len: usize) -> Mem {
        let words = (0..len / 8).map(|_| AtomicU64::new(0)).collect();
        Mem {
            words: std::sync::Arc::new((words, loom::sync::Mutex::new((0, 0)))),
        }
    }
    pub(crate) fn len(&self) -> usize {
        self.words.0.len() * 8
    }
    pub(crate) fn prefetch_for_write(&self, _off: usize) {}
    pub(crate) fn u64_at(&self, off: usize) -> &AtomicU64 {
        assert!(off % 8 == 0);
        &self.words.0[off / 8]
    }
    pub(crate) fn tail(&self, _off: usize) -> Tail<'_> {
        Tail(&self.words.1)
    }
    pub(crate) fn write(&self, off: usize, src: &[u8]) {
        use crate::sync::Ordering::Relaxed;
        let end = off + src.len();
        let mut o = off & !7;
        while o < end {
            let w = self.u64_at(o);
            // Whole words are plain stores; partial words keep their other bytes.
            let mut b = if o >= off && o + 8 <= end {
                [0u8; 8]
            } else {
                w.load(Relaxed).to_le_bytes()
            };
            for (i, byte) in b.iter_mut().enumerate() {
                let a = o + i;
                if a >= off && a < end {
                    *byte = src[a - off];
                }
            }
            w.store(u64::from_le_bytes(b), Relaxed);
            o += 8;
        }
    }
    pub(crate) fn zero(&self, off: usize, len: usize) {
        self.write(off, &vec![0; len]);
    }
    pub(crate) fn read_array<const N: usize>(&self, off: usize, dst: &mut [u8; N]) {
        self.read(off, dst);
    }
    pub(crate) fn write_words(&self, off: usize, words: &[u64]) {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        self.write(off, &bytes);
    }
    pub(crate) fn read(&self, off: usize, dst: &mut [u8]) {
        use crate::sync::Ordering::Relaxed;
        let mut o = off & !7;
        while o < off + dst.len() {
            let b = self.u64_at(o).load(Relaxed).to_le_bytes();
            for (i, byte) in b.iter().enumerate() {
                let a = o + i;
                if a >= off && a < off + dst.len() {
                    dst[a - off] = *byte;
                }
            }
            o += 8;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    /// The CPUID bit read by `has_prefetch_w` is the one Linux reports as
    /// `3dnowprefetch`.
    #[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
    #[test]
    fn prefetch_w_detection_agrees_with_the_kernel() {
        let info = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo");
        let flags = info.lines().find(|l| l.starts_with("flags")).expect("a flags line");
        let kernel = flags.split_whitespace().any(|f| f == "3dnowprefetch");
        assert_eq!(super::has_prefetch_w(), kernel, "{flags}");
    }
}
