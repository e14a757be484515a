//! The lock-free multi-producer, multi-consumer log in shared memory.
//!
//! The protocol (shared words, claim/commit, rotation with its producer
//! barrier, seqlock reads) and its invariants **W1**, **W2**, **R1**, **R2**
//! are written down once, in `ARCHITECTURE.md` ("The log"). The code below
//! refers to those invariants by name; the loom tests at the bottom of this
//! file check them.
//!
//! In one paragraph: positions are absolute bytes, term `T = pos / S` lives in
//! partition `T % P`; producers claim `(pos, seq)` with one 128-bit CAS on the
//! tail after announcing the term in their slot; the producer whose frame does
//! not fit closes the term (`ROT` bit) and anyone helps rotate: mark the end,
//! raise the next partition's state, wait for writers still in the evicted
//! term, set its base seq, mark it stable, release the tail. Readers check the
//! partition state before and after copying a frame and discard torn copies.

use crate::frame::{
    frame_len, FrameBuf, FrameHeader, Kind, BASE_HEADER_LEN, CHECKSUM_OFF, FLAGS_OFF, FLAG_IDS, HEADER_LEN, IDS_LEN,
};
use crate::layout::{self, Layout};
use crate::mem::Mem;
use crate::sync::{fence, spin_hint, Ordering::*};

/// How long a rotation waits for one live producer still writing into the
/// term being evicted before treating its claim as abandoned.
#[cfg(not(loom))]
const STALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Positions and seqs read from the segment at or above this are garbage
/// (2^62 bytes at 10 GB/s is 14 years): refusing them keeps all the
/// arithmetic derived from them free of overflow.
pub(crate) const MAX_POS: u64 = 1 << 62;

/// Bit 0 of the tail position: rotation in progress.
pub(crate) const ROT: u64 = 1;

const P_STATE: usize = 0;
const P_BASE: usize = 8;
const P_END: usize = 16;

pub(crate) const S_OWNER: usize = 0;
pub(crate) const S_START: usize = 8;
pub(crate) const S_ACTIVE: usize = 16;
pub(crate) const S_PUBLISHED: usize = 24;

/// What a reader found at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// A validated frame of `len` bytes was copied into the buffer (its
    /// header validated, in place at the front).
    Frame { len: usize },
    /// The term ended here; continue at `next`.
    End { next: u64 },
    /// The partition moved on: this position was evicted.
    Lapped,
    /// Nothing committed (yet) at this position.
    Empty,
}

/// Outcome of the eviction gate consulted before a rotation.
pub(crate) trait Gate {
    /// May term `evicted` be dropped now? `false` means the claim fails `Full`.
    fn may_evict(&mut self, ring: &Ring, evicted: u64) -> bool;
}

/// A gate that always allows eviction (`Overflow::Evict`).
pub(crate) struct AlwaysEvict;
impl Gate for AlwaysEvict {
    fn may_evict(&mut self, _: &Ring, _: u64) -> bool {
        true
    }
}

/// Error of [`Ring::claim`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ClaimError {
    /// The gate refused to evict.
    Full,
    /// The tail contradicts the partition states: the segment was scribbled
    /// over or truncated by another process.
    Corrupt,
}

/// Bytes after the base header a reader copies with one fixed-length
/// (inlined) copy before the rest: the ids, if stored, and the first 32
/// bytes of the topic.
const READ_PREFIX: usize = IDS_LEN + 32;

/// What the hot paths need to know about one term, derived from a position
/// by divisions. A term spans `S` bytes (hundreds to millions of frames), so
/// producers and readers compute this once per term and cache it
/// ([`Ring::term`]); every position inside the term then needs only a
/// subtraction.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Term {
    /// Absolute position of the term's first byte (`number * S`).
    pub(crate) start: u64,
    /// The term number `T = pos / S`.
    pub(crate) number: u64,
    /// Its partition `T % P`.
    pub(crate) part: u64,
    /// Segment offset of `start`.
    pub(crate) data: usize,
    /// Commit tag of the term's lap (every position of a term is in one lap,
    /// since a lap `P * S` is a multiple of `S`).
    pub(crate) tag: u32,
}

impl Term {
    /// A cache that matches no position: every position is below
    /// `MAX_POS = 2^62`, so `pos - 2^63` wraps to at least `2^63 > S`.
    pub(crate) const NONE: Term = Term {
        start: 1 << 63,
        number: 0,
        part: 0,
        data: 0,
        tag: 0,
    };
}

/// A claimed frame: where it is and how its commit word is tagged.
///
/// [`Ring::claim`] fills one in place (and is inlined whole, single-producer
/// path included) rather than returning it: returned inside a `Result` from
/// several return points, it went through a stack slot written field by
/// field and copied out with a 16-byte load spanning two 8-byte stores,
/// which the CPU cannot forward. `perf annotate` put 15-23 % of a publish
/// loop's samples on that load (eighth session, BENCHMARKS.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Claimed {
    pub(crate) pos: u64,
    pub(crate) seq: u64,
    /// Segment offset of the frame.
    pub(crate) off: usize,
    pub(crate) tag: u32,
}

/// The commit word of a frame of `len` bytes claimed with `tag` (R1).
#[inline(always)]
fn commit_word(tag: u32, len: usize) -> u64 {
    (u64::from(tag) << 32) | len as u64
}

#[inline]
fn state_init(term: u64, parts: u64) -> u64 {
    (term + parts) << 1
}
#[inline]
fn state_stable(term: u64, parts: u64) -> u64 {
    ((term + parts) << 1) | 1
}

/// The ring protocol over one segment.
#[derive(Clone)]
pub(crate) struct Ring {
    pub(crate) mem: Mem,
    pub(crate) l: Layout,
    /// Single-producer mode: exactly one producer thread exists (enforced
    /// at slot allocation), so claims need no compare-and-swap and no slot
    /// announcement (nobody else can lap it mid-write).
    pub(crate) single: bool,
    /// Whether `write_frame` asks for the lines ahead with `prefetchw`
    /// ([`crate::mem::has_prefetch_w`]).
    pub(crate) write_ahead: bool,
}

/// How far ahead of the frame it writes a producer asks for lines
/// (`Ring::write_frame`): 8 lines, a few frames of the common sizes.
const WRITE_AHEAD: usize = 512;

impl Ring {
    /// Initialise a freshly created, zero-filled segment.
    pub(crate) fn init(&self) {
        let p = self.l.parts;
        for i in 0..p {
            // Partition i holds term i - P (nothing), partition 0 holds term 0.
            let st = if i == 0 { state_stable(0, p) } else { state_stable(i, 0) };
            self.part_word(i, P_STATE).store(st, Release);
        }
        self.mem.tail(layout::OFF_TAIL).init((0, 0));
    }

    #[inline]
    fn part_word(&self, i: u64, field: usize) -> &crate::sync::AtomicU64 {
        self.mem.u64_at(self.l.part(i) + field)
    }
    #[inline]
    pub(crate) fn slot_word(&self, i: usize, field: usize) -> &crate::sync::AtomicU64 {
        self.mem.u64_at(self.l.slot(i) + field)
    }
    #[inline]
    pub(crate) fn counter(&self, off: usize) -> &crate::sync::AtomicU64 {
        self.mem.u64_at(off)
    }

    /// The tail `(position, seq)` with the `ROT` flag cleared.
    #[inline]
    pub(crate) fn tail(&self) -> (u64, u64) {
        let (p, s) = self.mem.tail(layout::OFF_TAIL).load();
        ((p & !7).min(MAX_POS), s.min(MAX_POS))
    }

    #[inline]
    fn tag(&self, pos: u64) -> u32 {
        let lap = pos / (self.l.parts * self.l.part_size);
        (lap as u32).wrapping_mul(0x9E37_79B1) ^ 0x5348_4D42
    }

    /// [`Ring::term`] for a reader, whose cache is its own (`&mut`): the
    /// fields are used in place, where copying the cell's 40 bytes out and
    /// back in cost a few cycles on every read.
    #[inline(always)]
    pub(crate) fn reader_term<'c>(&self, cache: &'c mut Term, pos: u64) -> &'c Term {
        if pos.wrapping_sub(cache.start) >= self.l.part_size {
            *cache = self.compute_term(pos);
        }
        cache
    }

    /// The term holding `pos` (`pos < MAX_POS`), from `cache` when it is the
    /// cached term, else computed and cached.
    #[inline]
    pub(crate) fn term(&self, cache: &std::cell::Cell<Term>, pos: u64) -> Term {
        let t = cache.get();
        if pos.wrapping_sub(t.start) < self.l.part_size {
            return t;
        }
        let t = self.compute_term(pos);
        cache.set(t);
        t
    }

    #[inline(never)]
    fn compute_term(&self, pos: u64) -> Term {
        let (parts, size) = (self.l.parts, self.l.part_size);
        let number = pos / size;
        let part = number % parts;
        Term {
            start: number * size,
            number,
            part,
            data: self.l.off_data + (part * size) as usize,
            tag: self.tag(pos),
        }
    }

    /// Reserve `len` bytes (a multiple of 8, `< S`) and the next `frames`
    /// seqs, into `out` (see [`Claimed`] on why not as the return value).
    ///
    /// `slot` is the caller's producer slot; on success its `active` word
    /// announces the claimed term until [`Ring::release`].
    /// `cache` is the caller's [`Term`] cache.
    #[inline(always)]
    pub(crate) fn claim(
        &self,
        slot: usize,
        len: usize,
        frames: u64,
        gate: &mut dyn Gate,
        cache: &std::cell::Cell<Term>,
        out: &mut Claimed,
    ) -> Result<(), ClaimError> {
        let (parts, size) = (self.l.parts, self.l.part_size);
        let tail = self.mem.tail(layout::OFF_TAIL);
        let active = self.slot_word(slot, S_ACTIVE);
        // With an honest segment a stale tail resolves within a few retries
        // (the tail moved on); a tail that keeps contradicting the partition
        // state was scribbled (or the segment truncated): report, never spin.
        if self.single {
            return self.claim_single(len, frames, gate, cache, out);
        }
        let mut stale = 0u32;
        loop {
            let (p, s) = tail.load();
            if p & (7 & !ROT) != 0 || p >= MAX_POS || s >= MAX_POS {
                return Err(ClaimError::Corrupt);
            }
            if p & ROT != 0 {
                self.help_rotate(p & !ROT, s, Some(slot));
                continue;
            }
            let t = self.term(cache, p);
            let term = t.number;
            let within = p - t.start;
            if within + len as u64 + 8 <= size {
                active.store(term + 1, SeqCst);
                if self.part_word(t.part, P_STATE).load(SeqCst) != state_stable(term, parts) {
                    // Stale tail: the term was already evicted. Retry.
                    active.store(0, Release);
                    stale += 1;
                    if stale > 100_000 {
                        return Err(ClaimError::Corrupt);
                    }
                    spin_hint();
                    continue;
                }
                if tail.cas((p, s), (p + len as u64, s + frames)) {
                    *out = Claimed {
                        pos: p,
                        seq: s,
                        off: t.data + within as usize,
                        tag: t.tag,
                    };
                    return Ok(());
                }
                active.store(0, Release);
                spin_hint();
                continue;
            }
            // The frame does not fit: close the term and open the next one.
            let evicted = (term + 1).checked_sub(parts);
            if let Some(e) = evicted {
                if !gate.may_evict(self, e) {
                    return Err(ClaimError::Full);
                }
            }
            if tail.cas((p, s), (p | ROT, s)) {
                self.help_rotate(p, s, Some(slot));
            }
        }
    }

    /// [`Ring::claim`] for single-producer mode: plain loads and stores of
    /// the tail (one 16-byte store), no read-modify-write on the hot path.
    /// The only writer of the tail is this thread, so nothing can race it.
    #[inline(always)]
    fn claim_single(
        &self,
        len: usize,
        frames: u64,
        gate: &mut dyn Gate,
        cache: &std::cell::Cell<Term>,
        out: &mut Claimed,
    ) -> Result<(), ClaimError> {
        let (parts, size) = (self.l.parts, self.l.part_size);
        let tail = self.mem.tail(layout::OFF_TAIL);
        for _ in 0..4 {
            let (p, s) = tail.load();
            if p & (7 & !ROT) != 0 || p >= MAX_POS || s >= MAX_POS {
                return Err(ClaimError::Corrupt);
            }
            if p & ROT != 0 {
                self.help_rotate(p & !ROT, s, None);
                continue;
            }
            let t = self.term(cache, p);
            let term = t.number;
            let within = p - t.start;
            if within + len as u64 + 8 <= size {
                if self.part_word(t.part, P_STATE).load(Relaxed) != state_stable(term, parts) {
                    return Err(ClaimError::Corrupt);
                }
                tail.store((p + len as u64, s + frames));
                *out = Claimed {
                    pos: p,
                    seq: s,
                    off: t.data + within as usize,
                    tag: t.tag,
                };
                return Ok(());
            }
            if let Some(e) = (term + 1).checked_sub(parts) {
                if !gate.may_evict(self, e) {
                    return Err(ClaimError::Full);
                }
            }
            tail.store((p | ROT, s));
            self.help_rotate(p, s, None);
        }
        // An honest tail settles after at most one rotation.
        Err(ClaimError::Corrupt)
    }

    /// Complete the rotation announced by tail `(p | ROT, s)` (idempotent).
    pub(crate) fn help_rotate(&self, p: u64, s: u64, own_slot: Option<usize>) {
        let (parts, size) = (self.l.parts, self.l.part_size);
        let term = p / size;
        let next = term + 1;
        let a = term % parts;
        let b = next % parts;
        self.part_word(a, P_END).fetch_max(p | 1, AcqRel);
        // Read both bases *before* raising the state: if our fetch_max turns
        // out to be the first, nobody had started this rotation when we read
        // them, so they are still the bases of terms E and E+1 (once we raise
        // the state, faster helpers may finish this and later rotations).
        let old_base = self.part_word(b, P_BASE).load(Acquire);
        let next_base = self.part_word((next + 1) % parts, P_BASE).load(Acquire);
        let prev = self.part_word(b, P_STATE).fetch_max(state_init(next, parts), SeqCst);
        if let Some(e) = next.checked_sub(parts) {
            self.wait_for_writers(e, own_slot);
            if prev < state_init(next, parts) {
                // We are the unique initialiser: count term E's frames.
                let n = if e + 1 == next { s } else { next_base };
                self.counter(layout::OFF_EVICTED)
                    .fetch_add(n.saturating_sub(old_base), Relaxed);
            }
        }
        self.part_word(b, P_BASE).fetch_max(s, AcqRel);
        self.part_word(b, P_STATE).fetch_max(state_stable(next, parts), SeqCst);
        let tail = self.mem.tail(layout::OFF_TAIL);
        tail.cas((p | ROT, s), (next * size, s));
    }

    /// Barrier of rotation step 3: no slot may still announce a term `<= e`.
    fn wait_for_writers(&self, e: u64, own_slot: Option<usize>) {
        for i in 0..self.l.n_slots {
            if Some(i) == own_slot {
                continue;
            }
            let active = self.slot_word(i, S_ACTIVE);
            let mut spins = 0u32;
            // The clock is read only once this slot makes us wait: read up
            // front for each of the (default 128) slots, it made every
            // rotation cost about 3 us, the p99.9 of the latency benchmark.
            #[cfg(not(loom))]
            let mut started = None;
            loop {
                let a = active.load(SeqCst);
                if a == 0 || a - 1 > e {
                    break;
                }
                spins = spins.wrapping_add(1);
                // A live writer is waited for (that is the point, W2), but not
                // forever: a process stopped in a debugger or a scribbled slot
                // must not wedge every producer. Past STALL_LIMIT the slot is
                // treated as abandoned.
                #[cfg(not(loom))]
                let stalled = {
                    let since = *started.get_or_insert_with(std::time::Instant::now);
                    spins % 1024 == 0 && since.elapsed() > STALL_LIMIT
                };
                #[cfg(loom)]
                let stalled = false;
                if stalled || (spins % 1024 == 0 && self.slot_owner_dead(i)) {
                    if active.compare_exchange(a, 0, SeqCst, Relaxed).is_ok() {
                        self.counter(layout::OFF_ABANDONED).fetch_add(1, Relaxed);
                    }
                    break;
                }
                if spins > 64 {
                    #[cfg(not(loom))]
                    std::thread::yield_now();
                }
                spin_hint();
            }
        }
    }

    #[cfg(not(loom))]
    fn slot_owner_dead(&self, i: usize) -> bool {
        let owner = self.slot_word(i, S_OWNER).load(Acquire);
        let start = self.slot_word(i, S_START).load(Acquire);
        owner != 0 && !crate::liveness::is_alive(owner as u32, start)
    }
    #[cfg(loom)]
    fn slot_owner_dead(&self, _i: usize) -> bool {
        false
    }

    /// Write a whole frame into a claimed range (at segment offset `off`);
    /// `ids`: whether it stores its correlation ids, which must agree with
    /// `header.flags`. It is passed rather than read back from `header`:
    /// that read loads the byte fields just stored one by one with one wide
    /// load, a failed store-to-load forward that stalled every publish
    /// (seventh session, `perf annotate`).
    #[inline(always)]
    pub(crate) fn write_frame(&self, off: usize, header: &FrameHeader, ids: bool, topic: &[u8], payload: &[u8]) {
        debug_assert_eq!(ids, header.has_ids());
        let head = crate::frame::header_len(ids);
        let len = frame_len(topic.len(), payload.len(), ids);
        // Seqlock writer fence: our claim happens-after the rotation that made
        // this term current (tail acquire); this release fence orders that
        // before our data stores, so a reader whose copy sees any of them also
        // sees the partition state change after its acquire fence (R2).
        fence(Release);
        if self.write_ahead {
            // Ask for two lines a few frames ahead now (for writing), so
            // that their transfer overlaps this frame and the next instead
            // of stalling a later store, or the commit fence, which waits
            // for every earlier store's line. A hint changes no byte, so
            // the protocol is untouched: at worst it moves a line that a
            // reader (copying an old frame there) or another producer (in
            // a claim just ahead of ours) then fetches back. Across
            // processes this bought 15-20 % single-frame 1 -> 1 throughput
            // (BENCHMARKS.md, "Ninth session").
            self.mem.prefetch_for_write(off + WRITE_AHEAD);
            self.mem.prefetch_for_write(off + WRITE_AHEAD + 64);
        }
        // The commit word (first 8 bytes) is written by `commit`.
        self.mem.write_words(off + 8, &header.base_words());
        if ids {
            self.mem.write_words(off + BASE_HEADER_LEN, &header.id_words());
        }
        // Zero padding (fewer than 8 bytes) exists only when topic and
        // payload end short of `len`; then `len >= head + 8` (both are
        // multiples of 8), so the frame's last word lies after the header
        // and is cleared with one store before the body overwrites its head.
        if head + topic.len() + payload.len() < len {
            self.mem.write(off + len - 8, &[0u8; 8]);
        }
        self.mem.write(off + head, topic);
        self.mem.write(off + head + topic.len(), payload);
    }

    /// Compute and store the checksum of the (fully written) frame at `off`.
    pub(crate) fn seal_checksum(&self, off: usize, len: usize, scratch: &mut Vec<u8>) {
        scratch.resize(len, 0);
        // Our own claimed bytes (W1): nobody else writes them.
        self.mem.read(off, scratch);
        let c = crate::frame::checksum(scratch);
        self.mem.write(off + CHECKSUM_OFF, &c.to_le_bytes());
    }

    /// Store a checksum computed from the producer's private copy.
    pub(crate) fn store_checksum(&self, off: usize, c: u32) {
        self.mem.write(off + CHECKSUM_OFF, &c.to_le_bytes());
    }

    /// Make the claimed frame `c` of `len` bytes visible to readers
    /// (invariant R1).
    #[inline]
    pub(crate) fn commit(&self, c: &Claimed, len: usize) {
        if self.single {
            // Release store, then a full fence for the parked-reader check
            // (wait.rs): a fence, not a read-modify-write.
            self.commit_unfenced(c.off, c.tag, len);
            fence(SeqCst);
        } else {
            self.mem.u64_at(c.off).swap(commit_word(c.tag, len), SeqCst);
        }
    }

    /// Make the frame of `len` bytes at segment offset `off`, claimed with
    /// `tag`, visible to readers (R1) with a release store and no fence:
    /// for the frames of a batch, after which the caller issues one
    /// `fence(SeqCst)` before checking for parked readers (as [`Ring::commit`]
    /// does for one frame).
    #[inline(always)]
    pub(crate) fn commit_unfenced(&self, off: usize, tag: u32, len: usize) {
        self.mem.u64_at(off).store(commit_word(tag, len), Release);
    }

    /// Clear the slot's announcement after commit or abort.
    #[inline]
    pub(crate) fn release(&self, slot: usize) {
        self.slot_word(slot, S_ACTIVE).store(0, Release);
    }

    /// Turn a claimed but unwanted frame into padding readers skip.
    pub(crate) fn abort(&self, c: &Claimed, len: usize) {
        let h = FrameHeader {
            position: c.pos,
            seq: c.seq,
            payload_len: (len - BASE_HEADER_LEN) as u32,
            kind: Kind::Padding as u8,
            ..FrameHeader::default()
        };
        fence(Release); // as in `write_frame`
        self.mem.write_words(c.off + 8, &h.base_words()); // no ids: a claim holds at least this
        self.commit(c, len);
        self.counter(layout::OFF_ABORTED).fetch_add(1, Relaxed);
    }

    /// Try to read the frame at `pos` into `buf` (see "Reading" above);
    /// `cache` is the reader's [`Term`] cache.
    #[inline(always)]
    pub(crate) fn read(&self, pos: u64, buf: &mut FrameBuf, cache: &mut Term) -> Read {
        let (parts, size) = (self.l.parts, self.l.part_size);
        if pos >= MAX_POS {
            return Read::Lapped;
        }
        let t = self.reader_term(cache, pos);
        let (term, i, within) = (t.number, t.part, pos - t.start);
        let st = self.part_word(i, P_STATE).load(Acquire);
        let want = state_stable(term, parts);
        if st != want {
            return if st > want { Read::Lapped } else { Read::Empty };
        }
        let base = self.part_word(i, P_BASE).load(Acquire);
        let off = t.data + within as usize;
        let w = self.mem.u64_at(off).load(Acquire);
        if (w >> 32) as u32 != t.tag {
            // No frame of this lap starts here. Either nothing is committed
            // yet, or the term was closed here: no claim of this lap starts
            // at the closing position, so checking `end` only now is enough
            // (and keeps it off the per-frame path).
            let end = self.part_word(i, P_END).load(Acquire);
            if end & 1 == 1 {
                let e = end & !1;
                if e.wrapping_sub(t.start) < size && pos >= e {
                    return Read::End { next: t.start + size };
                }
            }
            return Read::Empty;
        }
        let len = (w & 0xffff_ffff) as usize;
        if len < BASE_HEADER_LEN || len % 8 != 0 || within + len as u64 + 8 > size {
            return Read::Empty;
        }
        // The copy always holds the whole header in front of the topic: a
        // frame without ids (FLAG_IDS clear) gets 48 zero bytes where they
        // would be, so everything after this function sees one layout.
        // Which way to copy is decided by the flag byte of the base header
        // just copied, before the copy is known to be stable; a torn flag
        // only ever comes with the state check below failing, and the
        // length check in `validate` uses the same flag, so a wrong choice
        // is never delivered.
        //
        // The base header and the next READ_PREFIX bytes (ids, and usually
        // the topic) are copied with constant lengths, inlined as a few
        // vector moves from which the header checks and the topic match
        // below load at once. Copied with the rest by one `memcpy` call,
        // they came from wide stores that the CPU could not forward to those
        // narrow loads, which stalled every read (BENCHMARKS.md, "Third
        // session"). A frame shorter than that is copied with bytes after
        // it, which are scratch (beyond the frame, never used; they may race
        // with a writer like any seqlock read); only at the very end of the
        // segment is the frame copied alone.
        let dst = buf.fill_room(len + IDS_LEN, HEADER_LEN + READ_PREFIX);
        let (head, tail) = dst.split_at_mut(BASE_HEADER_LEN);
        let head: &mut [u8; BASE_HEADER_LEN] = head.try_into().expect("BASE_HEADER_LEN bytes");
        self.mem.read_array(off, head); // off + len is mapped and len >= BASE_HEADER_LEN
        let ids = head[FLAGS_OFF] & FLAG_IDS != 0;
        let tail = if ids {
            tail
        } else {
            let (zeros, tail) = tail.split_at_mut(IDS_LEN);
            zeros.fill(0);
            tail
        };
        // `tail` holds at least max(body, READ_PREFIX) bytes (see fill_room).
        let body = len - BASE_HEADER_LEN;
        if off + BASE_HEADER_LEN + READ_PREFIX <= self.mem.len() {
            let (pre, more) = tail.split_at_mut(READ_PREFIX);
            let pre: &mut [u8; READ_PREFIX] = pre.try_into().expect("READ_PREFIX bytes");
            self.mem.read_array(off + BASE_HEADER_LEN, pre);
            if body > READ_PREFIX {
                self.mem
                    .read(off + BASE_HEADER_LEN + READ_PREFIX, &mut more[..body - READ_PREFIX]);
            }
        } else {
            self.mem.read(off + BASE_HEADER_LEN, &mut tail[..body]);
        }
        buf.set_len(if ids { len } else { len + IDS_LEN });
        fence(Acquire);
        if self.part_word(i, P_STATE).load(Relaxed) != st {
            return Read::Lapped;
        }
        let header = buf.header();
        // A term of S bytes holds fewer than S / BASE_HEADER_LEN frames, so a
        // seq outside that window was scribbled: never trust it.
        let max_frames = size / BASE_HEADER_LEN as u64;
        if header.validate(pos, len).is_err() || header.seq < base || header.seq - base > max_frames {
            return Read::Empty;
        }
        Read::Frame { len }
    }

    /// Oldest retained position and the seq of its first frame.
    /// With an honest segment this settles within a few retries (a rotation
    /// in progress); if the words never agree (scribbled), it falls back to
    /// the tail so that a reader skips ahead instead of spinning.
    pub(crate) fn oldest(&self) -> (u64, u64) {
        let (parts, size) = (self.l.parts, self.l.part_size);
        for _ in 0..128 {
            let (p, _) = self.mem.tail(layout::OFF_TAIL).load();
            if p >= MAX_POS {
                break;
            }
            let rot = p & ROT != 0;
            let cur = (p & !ROT) / size;
            let mut first = (cur + 1).saturating_sub(parts);
            if rot && cur + 1 >= parts {
                first += 1;
            }
            let first = first.min(cur);
            let i = first % parts;
            let st = self.part_word(i, P_STATE).load(Acquire);
            let base = self.part_word(i, P_BASE).load(Acquire);
            fence(Acquire);
            if st == state_stable(first, parts) && self.part_word(i, P_STATE).load(Relaxed) == st {
                return (first * size, base);
            }
            spin_hint();
        }
        self.tail()
    }

    /// After a claim at `pos` stayed uncommitted past the claim timeout, find
    /// the next readable thing after it: a committed frame or the term's end.
    /// Returns the position to continue from, or `None` if nothing is there yet.
    pub(crate) fn scan_past(&self, pos: u64, buf: &mut FrameBuf, cache: &mut Term) -> Option<u64> {
        let size = self.l.part_size;
        let term_end = (pos / size + 1) * size;
        let (tail, _) = self.tail();
        let mut x = pos + 8;
        while x < term_end && x < tail {
            match self.read(x, buf, cache) {
                Read::Frame { .. } => return Some(x),
                Read::End { next } => return Some(next),
                Read::Lapped => return Some(x),
                Read::Empty => x += 8,
            }
        }
        match self.read(x.min(term_end - 8), buf, cache) {
            Read::End { next } => Some(next),
            _ => None,
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Model checks of the protocol above. Run with
    //! `RUSTFLAGS="--cfg loom" cargo test -p shmbus --release --lib loom`.
    use super::*;
    use loom::thread;

    /// A tiny ring: 2 partitions of 192 bytes, 2 producer slots. A frame
    /// (96-byte header + 1-byte topic, no payload) is 104 bytes, so every
    /// term holds exactly one frame: every publish after the first rotates,
    /// and the third evicts term 0.
    fn model() -> Ring {
        let l = Layout {
            parts: 2,
            part_size: 192,
            n_slots: 2,
            n_subs: 0,
            n_groups: 0,
            off_parts: 1024,
            off_slots: 1024 + 2 * layout::PART_REC,
            off_subs: 2048,
            off_groups: 2048,
            off_data: 2048,
            segment_len: 2048 + 384,
        };
        let ring = Ring {
            mem: Mem::new_model(l.segment_len),
            l,
            single: false,
            write_ahead: false,
        };
        ring.init();
        ring
    }

    /// Publish a frame whose marker byte fills several header words, so a
    /// torn copy shows as words that disagree. It stores ids (FLAG_IDS), the
    /// longer of the two header forms, which both take the same protocol.
    fn publish(ring: &Ring, slot: usize, byte: u8) -> (u64, u64) {
        let len = frame_len(1, 0, true);
        let cache = std::cell::Cell::new(Term::NONE);
        let mut c = Claimed::default();
        ring.claim(slot, len, 1, &mut AlwaysEvict, &cache, &mut c).unwrap();
        let (pos, seq) = (c.pos, c.seq);
        let h = FrameHeader {
            position: pos,
            seq,
            timestamp_ns: u64::from_le_bytes([byte; 8]),
            correlation_id: [byte; 16],
            root_id: [byte; 16],
            topic_len: 1,
            kind: Kind::Event as u8,
            flags: crate::frame::FLAG_IDS,
            ..FrameHeader::default()
        };
        ring.write_frame(c.off, &h, true, &[byte], &[]);
        ring.commit(&c, len);
        ring.release(slot);
        (pos, seq)
    }

    /// Read everything currently readable; check every frame is intact.
    fn drain(ring: &Ring, mut pos: u64, mut next_seq: u64) -> Vec<(u64, u8)> {
        let mut buf = FrameBuf::default();
        let mut out = Vec::new();
        let mut cache = Term::NONE;
        for _ in 0..6 {
            match ring.read(pos, &mut buf, &mut cache) {
                Read::Frame { len } => {
                    let h = *buf.header();
                    assert!(h.seq >= next_seq, "seq went backwards");
                    let b = buf.bytes()[HEADER_LEN];
                    assert_eq!(h.timestamp_ns, u64::from_le_bytes([b; 8]), "torn frame delivered");
                    assert_eq!(h.correlation_id, [b; 16], "torn frame delivered");
                    assert_eq!(h.root_id, [b; 16], "torn frame delivered");
                    out.push((h.seq, b));
                    next_seq = h.seq + 1;
                    pos += len as u64;
                }
                Read::End { next } => pos = next,
                Read::Lapped => {
                    let (p, s) = ring.oldest();
                    assert!(s >= next_seq);
                    pos = p;
                    next_seq = s;
                }
                Read::Empty => break,
            }
        }
        out
    }

    fn model_check(bound: usize, f: impl Fn() + Sync + Send + 'static) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let runs = std::sync::Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(bound);
        b.check(move || {
            r.fetch_add(1, Ordering::Relaxed);
            f()
        });
        let n = runs.load(Ordering::Relaxed);
        eprintln!("loom explored {n} executions");
        assert!(n > 1, "the model never branched: it checked nothing");
    }

    /// W1 and seq uniqueness: two producers racing for claims and rotations
    /// get distinct seqs and disjoint, intact frames.
    #[test]
    fn loom_two_producers_claim_distinct_seqs_across_rotation() {
        model_check(2, || {
            let ring = model();
            let r1 = ring.clone();
            let p1 = thread::spawn(move || publish(&r1, 0, 1));
            let (_, s2) = publish(&ring, 1, 2);
            let (_, s1) = p1.join().unwrap();
            assert_ne!(s1, s2);
            assert_eq!(ring.tail().1, 2);
            let got = drain(&ring, 0, 0);
            assert_eq!(got.len(), 2, "both frames readable: {got:?}");
        });
    }

    /// R1/R2: a reader racing with a producer that rotates and evicts the
    /// frame being read never delivers a torn frame, and seqs only increase.
    #[test]
    fn loom_reader_racing_eviction_is_lapped_not_torn() {
        model_check(2, || {
            // One frame per term; the third publish evicts term 0.
            let ring = model();
            publish(&ring, 0, 9);
            let r1 = ring.clone();
            let p = thread::spawn(move || {
                publish(&r1, 0, 1);
                publish(&r1, 0, 2);
            });
            let got = drain(&ring, 0, 0);
            for w in got.windows(2) {
                assert!(w[0].0 < w[1].0);
            }
            p.join().unwrap();
            assert_eq!(ring.tail().1, 3);
        });
    }

    /// A batch claim (`Bus::publish_many`): two short frames (56 bytes each,
    /// no ids) claimed together, each written then committed with a release
    /// store, then one SeqCst fence, as `Bus::publish_many` does. A reader racing
    /// with it sees a prefix of them, each intact, with consecutive seqs;
    /// afterwards both are there.
    #[test]
    fn loom_batch_claim_commits_each_frame_intact() {
        fn publish_pair(ring: &Ring, slot: usize, byte: u8) {
            let len = frame_len(1, 0, false);
            let cache = std::cell::Cell::new(Term::NONE);
            let mut c = Claimed::default();
            ring.claim(slot, 2 * len, 2, &mut AlwaysEvict, &cache, &mut c).unwrap();
            for i in 0..2u8 {
                let h = FrameHeader {
                    position: c.pos + u64::from(i) * len as u64,
                    seq: c.seq + u64::from(i),
                    timestamp_ns: u64::from_le_bytes([byte + i; 8]),
                    topic_len: 1,
                    kind: Kind::Event as u8,
                    ..FrameHeader::default()
                };
                let off = c.off + usize::from(i) * len;
                ring.write_frame(off, &h, false, &[byte + i], &[]);
                ring.commit_unfenced(off, c.tag, len);
            }
            fence(SeqCst);
            ring.release(slot);
        }
        fn read_all(ring: &Ring) -> Vec<(u64, u8)> {
            let mut buf = FrameBuf::default();
            let mut cache = Term::NONE;
            let (mut pos, mut out) = (0, Vec::new());
            while let Read::Frame { len } = ring.read(pos, &mut buf, &mut cache) {
                let h = *buf.header();
                let b = buf.bytes()[HEADER_LEN];
                assert_eq!(h.timestamp_ns, u64::from_le_bytes([b; 8]), "torn frame delivered");
                assert_eq!((h.correlation_id, h.root_id), ([0; 16], [0; 16]));
                out.push((h.seq, b));
                pos += len as u64;
            }
            out
        }
        model_check(2, || {
            let ring = model();
            let r1 = ring.clone();
            let p = thread::spawn(move || publish_pair(&r1, 0, 5));
            let seen = read_all(&ring);
            assert!(seen.len() <= 2);
            for (i, &(seq, b)) in seen.iter().enumerate() {
                assert_eq!((seq, b), (i as u64, 5 + i as u8), "a prefix, in order, intact");
            }
            p.join().unwrap();
            assert_eq!(read_all(&ring), vec![(0, 5), (1, 6)]);
            assert_eq!(ring.tail(), (2 * frame_len(1, 0, false) as u64, 2));
        });
    }

    /// W2: a producer whose claim is in flight holds back the rotation that
    /// would evict its term, so its frame is never overwritten mid-write.
    #[test]
    fn loom_rotation_waits_for_writer_in_evicted_term() {
        model_check(2, || {
            let ring = model();
            let r1 = ring.clone();
            // Producer 0 writes frame seq 0 into term 0 ...
            let p = thread::spawn(move || publish(&r1, 0, 1));
            // ... while producer 1 publishes twice, the second rotation
            // evicting term 0.
            publish(&ring, 1, 2);
            publish(&ring, 1, 3);
            p.join().unwrap();
            // Whatever is still retained is intact (drain asserts it).
            let (pos, seq) = ring.oldest();
            drain(&ring, pos, seq);
        });
    }
}
