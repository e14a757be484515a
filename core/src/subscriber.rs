//! Subscribers: broadcast (own cursor) and group members (shared cursor).
//!
//! A broadcast subscriber keeps its own `(position, next_seq)` and sees every
//! frame its filter matches. A group member shares one cursor with the other
//! members of its group and takes a frame by compare-and-swapping the cursor
//! past it, so each frame goes to exactly one member.
//!
//! Accounting, per subscriber: when the ring laps it, the subscriber jumps to
//! the oldest retained frame and `missed` grows by the seq distance, which is
//! exactly the number of frames it lost. A frame whose claim was abandoned by
//! a dead producer is skipped after `claim_timeout` and counted in
//! `abandoned`. So `delivered + missed + abandoned + filtered-out` accounts
//! for every seq.

use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bus::Shared;
use crate::error::Result;
use crate::filter::Matcher;
use crate::frame::{Frame, FrameBuf, FrameHeader, Kind, HEADER_LEN};
use crate::registry::{
    self, E_ABANDONED, E_CORRUPT, E_DELIVERED, E_MISSED, E_NEXT_SEQ, E_POSITION, G_CURSOR, G_DELIVERED, G_MISSED,
};
use crate::ring::{Read, Ring, Term};
use crate::wait::{self, WaitStrategy};

/// Where a new subscriber starts reading.
///
/// ```
/// # let name = format!("doc-start-{}", std::process::id());
/// use shmbus::{Bus, Config, Filter, Start, SubscribeOptions};
/// let bus = Bus::create(&name, &Config::default().memory_limit(1 << 20))?;
/// for i in 0..5u8 { bus.publish("t", &[i])?; }
/// let opts = SubscribeOptions { start: Start::Seq(3), ..Default::default() };
/// let mut sub = bus.subscribe_with(Filter::all(), opts)?;
/// assert_eq!(sub.try_recv()?.unwrap().payload(), &[3]);
/// # drop(sub); Bus::remove(&name)?;
/// # Ok::<(), shmbus::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Start {
    /// Only frames published from now on (the default).
    #[default]
    Newest,
    /// The oldest frame still retained.
    Oldest,
    /// The frame with this seq (or the oldest retained if it was evicted,
    /// counting the evicted ones as missed).
    Seq(u64),
}

#[derive(Clone, Copy)]
enum Cursor {
    Own { pos: u64, next_seq: u64 },
    Group { index: usize },
}

/// A subscription. Receives frames with [`Subscriber::recv_timeout`].
///
/// ```
/// # let name = format!("doc-sub-{}", std::process::id());
/// use std::time::Duration;
/// use shmbus::{Bus, Config, Filter};
/// let bus = Bus::create(&name, &Config::default().memory_limit(1 << 20))?;
/// let mut sub = bus.subscribe(Filter::topic("events.#"))?;
/// bus.publish("events.process.start", b"pid=42")?;
/// let frame = sub.recv_timeout(Duration::from_secs(1))?.expect("a frame");
/// assert_eq!(frame.topic(), "events.process.start");
/// assert_eq!(frame.payload(), b"pid=42");
/// # drop(sub); drop(bus); Bus::remove(&name)?;
/// # Ok::<(), shmbus::Error>(())
/// ```
pub struct Subscriber {
    shared: Arc<Shared>,
    /// `shared.seg.ring`, copied in: every receive reaches the ring's
    /// mapping and layout in one load from the subscriber, not through the
    /// `Arc` first (a chain of dependent loads on each call that a caller
    /// across the C boundary cannot hoist out of its loop). Valid as long
    /// as `shared`, which owns the mapping, is held.
    ring: Ring,
    entry: usize,
    cursor: Cursor,
    group_name: Option<String>,
    skip_below: u64,
    matcher: Matcher,
    wait: WaitStrategy,
    /// The frame last read (see `ring::Ring::read`); when `ready`, the one
    /// to hand out.
    buf: FrameBuf,
    ready: bool,
    delivered: u64,
    missed: u64,
    abandoned: u64,
    corrupt: u64,
    checksum: bool,
    stuck: Option<(u64, Instant, bool)>,
    claim_timeout: Duration,
    fork_generation: u64,
    /// The term this subscriber last read in (see `ring::Term`).
    term: Term,
    /// Whether `recv` is draining a firehose (see `wait::Pacing`).
    pacing: wait::Pacing,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        // A subscriber inherited through fork() belongs to the parent.
        if self.fork_generation != crate::liveness::fork_generation() {
            return;
        }
        registry::free_sub(&self.ring, self.entry);
    }
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("bus", &self.shared.seg.name)
            .field("group", &self.group_name)
            .field("delivered", &self.delivered)
            .field("missed", &self.missed)
            .finish()
    }
}

impl Subscriber {
    pub(crate) fn new_broadcast(
        shared: Arc<Shared>,
        matcher: Matcher,
        filter: &str,
        start: Start,
        wait: WaitStrategy,
    ) -> Result<Subscriber> {
        let ring = &shared.seg.ring;
        let (pos, next_seq) = match start {
            Start::Newest => ring.tail(),
            Start::Oldest | Start::Seq(_) => ring.oldest(),
        };
        let mut missed = 0;
        let mut skip_below = 0;
        if let Start::Seq(n) = start {
            if n < next_seq {
                missed = next_seq - n;
            } else {
                skip_below = n;
            }
        }
        let entry = registry::alloc_sub(ring, filter, None, pos, next_seq)?;
        Ok(Subscriber::build(
            shared,
            entry,
            Cursor::Own { pos, next_seq },
            None,
            skip_below,
            missed,
            matcher,
            wait,
        ))
    }

    pub(crate) fn new_member(
        shared: Arc<Shared>,
        matcher: Matcher,
        group: &str,
        index: usize,
        filter: &str,
        wait: WaitStrategy,
    ) -> Result<Subscriber> {
        let (pos, seq) = shared
            .seg
            .ring
            .mem
            .tail(shared.seg.ring.l.group(index) + G_CURSOR)
            .load();
        let entry = registry::alloc_sub(&shared.seg.ring, filter, Some(index), pos, seq)?;
        let group = Some(group.to_string());
        Ok(Subscriber::build(
            shared,
            entry,
            Cursor::Group { index },
            group,
            0,
            0,
            matcher,
            wait,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        shared: Arc<Shared>,
        entry: usize,
        cursor: Cursor,
        group_name: Option<String>,
        skip_below: u64,
        missed: u64,
        matcher: Matcher,
        wait: WaitStrategy,
    ) -> Subscriber {
        Subscriber {
            ring: shared.seg.ring.clone(),
            claim_timeout: shared.claim_timeout,
            checksum: shared.checksum,
            shared,
            entry,
            cursor,
            group_name,
            skip_below,
            matcher,
            wait,
            buf: FrameBuf::with_capacity(4096),
            ready: false,
            delivered: 0,
            missed,
            abandoned: 0,
            corrupt: 0,
            stuck: None,
            fork_generation: crate::liveness::fork_generation(),
            term: Term::NONE,
            pacing: wait::Pacing::default(),
        }
    }

    /// Frames this subscriber lost to eviction (exact; for a group member,
    /// the frames the group lost while this member moved the cursor).
    pub fn missed(&self) -> u64 {
        self.missed
    }
    /// Frames delivered to this subscriber.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }
    /// Claims skipped because their producer died before committing.
    pub fn abandoned(&self) -> u64 {
        self.abandoned
    }
    /// Frames dropped because their checksum did not match (only with
    /// `Config::checksum(true)`).
    pub fn corrupt(&self) -> u64 {
        self.corrupt
    }
    /// The group this subscriber belongs to, if any.
    pub fn group(&self) -> Option<&str> {
        self.group_name.as_deref()
    }
    /// Seq of the next frame this subscriber will look at.
    pub fn next_seq(&self) -> u64 {
        match self.cursor {
            Cursor::Own { next_seq, .. } => next_seq,
            Cursor::Group { index } => self.group_cursor(index).1,
        }
    }
    /// Change the wait strategy.
    pub fn set_wait_strategy(&mut self, wait: WaitStrategy) {
        self.wait = wait;
    }
    /// The wait strategy.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    fn group_cursor(&self, index: usize) -> (u64, u64) {
        let ring = &self.ring;
        ring.mem.tail(ring.l.group(index) + G_CURSOR).load()
    }

    /// Next matching frame, waiting at most `timeout`; `Ok(None)` on timeout.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Frame<'_>>> {
        self.wait(wait::Deadline::After(timeout))
    }

    /// Next matching frame, waiting as long as it takes.
    pub fn recv(&mut self) -> Result<Frame<'_>> {
        loop {
            if self.recv_until(None)?.is_some() {
                return Ok(self.current());
            }
        }
    }

    /// Next matching frame if one is ready now, without waiting.
    #[inline]
    pub fn try_recv(&mut self) -> Result<Option<Frame<'_>>> {
        self.shared.seg.check_truncated()?;
        self.ready = self.step(true);
        self.shared.seg.check_truncated()?;
        Ok(self.ready.then(|| self.current()))
    }

    /// Receive up to `max` frames, calling `f` with each: waits at most
    /// `timeout` for the first, then takes frames that are ready now,
    /// without waiting again (it may stop short of `max` while more are
    /// ready: call again). Returns how many `f` got (0 on timeout).
    ///
    /// Cheaper per frame than a loop of [`Subscriber::try_recv`] for a
    /// broadcast subscriber: the checks and the bookkeeping that every
    /// receive does once (the segment's truncation flag, the cursor and the
    /// subscriber's entry in the segment) are done once per call. So if `f`
    /// panics, the frames this call already handed over may be handed over
    /// again by the next receive.
    ///
    /// ```
    /// # let name = format!("doc-recvmany-{}", std::process::id());
    /// use std::time::Duration;
    /// use shmbus::{Bus, Config, Filter};
    /// let bus = Bus::create(&name, &Config::default().memory_limit(1 << 20))?;
    /// let mut sub = bus.subscribe(Filter::all())?;
    /// bus.publish_many("t", &[&b"a"[..], b"b", b"c"])?;
    /// let mut got = Vec::new();
    /// let n = sub.recv_many(2, Duration::from_secs(1), |f| got.push(f.payload().to_vec()))?;
    /// assert_eq!((n, got), (2, vec![b"a".to_vec(), b"b".to_vec()]));
    /// assert_eq!(sub.recv_many(10, Duration::ZERO, |f| assert_eq!(f.payload(), b"c"))?, 1);
    /// # drop(sub); Bus::remove(&name)?;
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    pub fn recv_many(&mut self, max: usize, timeout: Duration, mut f: impl FnMut(Frame<'_>)) -> Result<usize> {
        if max == 0 {
            return Ok(0);
        }
        match self.recv_timeout(timeout)? {
            Some(frame) => f(frame),
            None => return Ok(0),
        }
        let mut n = 1;
        match self.cursor {
            Cursor::Own { .. } if n < max => {
                self.step_own_with(true, |s| {
                    f(s.current());
                    n += 1;
                    n < max
                });
            }
            Cursor::Own { .. } => {}
            Cursor::Group { index } => {
                while n < max && self.step_group(index, true) {
                    self.ready = true;
                    f(self.current());
                    n += 1;
                }
            }
        }
        // The frames after the first were ready without waiting: the pacing
        // counts them as such (see `wait::Pacing`), or a firehose drained
        // in batches would look like one frame per catch-up.
        self.pacing
            .took_ready(u32::try_from(n - 1).unwrap_or(u32::MAX), n < max);
        self.ready = false;
        self.shared.seg.check_truncated()?;
        Ok(n)
    }

    /// Wait until `deadline` (`None`: forever).
    pub fn recv_until(&mut self, deadline: Option<Instant>) -> Result<Option<Frame<'_>>> {
        self.wait(deadline.map_or(wait::Deadline::Never, wait::Deadline::At))
    }

    fn wait(&mut self, deadline: wait::Deadline) -> Result<Option<Frame<'_>>> {
        let mem = self.ring.mem;
        let strategy = self.wait;
        self.shared.seg.check_truncated()?;
        let mut pacing = self.pacing;
        let got = wait::wait_for(&mem, strategy, deadline, &mut pacing, |checkpoint| {
            self.step(checkpoint).then_some(())
        });
        self.pacing = pacing;
        self.shared.seg.check_truncated()?;
        self.ready = got.is_some();
        Ok(self.ready.then(|| self.current()))
    }

    /// Header of the frame in `buf` (validated after `Read::Frame`).
    #[inline(always)]
    fn header(&self) -> &FrameHeader {
        self.buf.header()
    }

    /// The frame to hand out. Only called when `ready`, i.e. right after
    /// `deliverable` accepted the frame now in `buf`.
    #[inline(always)]
    fn current(&self) -> Frame<'_> {
        debug_assert!(self.ready);
        let header = self.header();
        let bytes = self.buf.bytes();
        let topic_end = HEADER_LEN + header.topic_len as usize;
        let topic = &bytes[HEADER_LEN..topic_end];
        debug_assert!(std::str::from_utf8(topic).is_ok());
        // SAFETY: `deliverable` accepted this frame through
        // `Matcher::accepts`, which accepts only UTF-8 topics; `buf` has not
        // changed since (every path that sets `ready` stops reading right
        // after `deliverable`).
        let topic = unsafe { std::str::from_utf8_unchecked(topic) };
        let payload = &bytes[topic_end..topic_end + header.payload_len as usize];
        Frame { header, topic, payload }
    }

    /// Try to advance to the next deliverable frame without waiting. Returns
    /// true when `self.buf` holds it.
    #[inline(always)]
    fn step(&mut self, checkpoint: bool) -> bool {
        match self.cursor {
            Cursor::Own { .. } => self.step_own(checkpoint),
            Cursor::Group { index } => self.step_group(index, checkpoint),
        }
    }

    /// With checksums on, is the copied frame (in `buf`) intact? Counts it
    /// if not.
    #[inline(always)]
    fn intact(&mut self) -> bool {
        if !self.checksum {
            return true;
        }
        let ok = self.intact_peek();
        if !ok {
            self.corrupt += 1;
        }
        ok
    }

    /// Like `intact` but without counting (group members count only after
    /// winning the cursor).
    fn intact_peek(&self) -> bool {
        if !self.checksum {
            return true;
        }
        let h = self.header();
        h.kind == Kind::Padding as u8
            || (h.flags & crate::frame::FLAG_CHECKSUM != 0 && self.buf.checksum() == h.checksum)
    }

    /// Decide whether the validated frame in `buf` is delivered.
    #[inline(always)]
    fn deliverable(&mut self) -> bool {
        // Field by field (not `self.header()`): the matcher is borrowed
        // mutably beside the buffer.
        let h = self.buf.header();
        if h.kind == Kind::Padding as u8 || h.seq < self.skip_below {
            return false;
        }
        let topic_end = HEADER_LEN + h.topic_len as usize;
        let topic = &self.buf.bytes()[HEADER_LEN..topic_end];
        self.matcher.accepts(topic, u128::from_le_bytes(h.root_id))
    }

    fn publish_entry(&self, pos: u64, next_seq: u64) {
        let ring = &self.ring;
        let e = ring.l.sub(self.entry);
        ring.mem.u64_at(e + E_POSITION).store(pos, Relaxed);
        ring.mem.u64_at(e + E_NEXT_SEQ).store(next_seq, Relaxed);
        ring.mem.u64_at(e + E_DELIVERED).store(self.delivered, Relaxed);
        ring.mem.u64_at(e + E_MISSED).store(self.missed, Relaxed);
        ring.mem.u64_at(e + E_ABANDONED).store(self.abandoned, Relaxed);
        ring.mem.u64_at(e + E_CORRUPT).store(self.corrupt, Relaxed);
    }

    /// Has the claim at `pos` stayed uncommitted past the claim timeout?
    /// Then return where to continue.
    ///
    /// Only at checkpoints (see `wait::wait_for`; `try_recv` is one): the
    /// clock read stays off the polling fast path. The tail, which producers
    /// write on every claim, is loaded at most once per claim timeout while
    /// nothing arrives: loading it on every empty poll made a caught-up
    /// reader steal the producers' hottest cache line once per frame.
    ///
    /// `stuck` is `(pos, since, claimed)`: nothing readable at `pos` since
    /// `since`, and whether a claim at `pos` was already seen then. A claim
    /// is abandoned only after a whole claim timeout *with the claim seen*,
    /// so a frame being written right after a long idle spell is never
    /// skipped; detection takes at most two claim timeouts.
    fn skip_abandoned(&mut self, pos: u64, checkpoint: bool) -> Option<u64> {
        if !checkpoint {
            return None;
        }
        let now = Instant::now();
        let (since, claimed) = match self.stuck {
            Some((p, since, claimed)) if p == pos => (since, claimed),
            _ => {
                self.stuck = Some((pos, now, false));
                return None;
            }
        };
        if now.saturating_duration_since(since) < self.claim_timeout {
            return None;
        }
        let (tail, _) = self.ring.tail();
        if pos >= tail || !claimed {
            // Idle (nothing claimed here), or the claim was not seen when
            // this wait started: (re)start the clock, now knowing.
            self.stuck = Some((pos, now, pos < tail));
            return None;
        }
        let next = self.ring.scan_past(pos, &mut self.buf, &mut self.term);
        self.stuck = match next {
            Some(_) => None,
            None => Some((pos, now, true)),
        };
        next
    }

    #[inline(always)]
    fn step_own(&mut self, checkpoint: bool) -> bool {
        self.step_own_with(checkpoint, |_| false)
    }

    /// [`Subscriber::step_own`] that hands each deliverable frame to `more`
    /// (with `ready` set) and goes on while it returns true; returns whether
    /// a frame was found. The cursor and the subscriber's entry are written
    /// once, at the end.
    #[inline(always)]
    fn step_own_with(&mut self, checkpoint: bool, mut more: impl FnMut(&Subscriber) -> bool) -> bool {
        // The ring is reached through `self.ring` at each use (a borrow of
        // that field alone, disjoint from `self.buf`) rather than cloned:
        // a clone copies the whole 112-byte `Ring` on every call.
        let Cursor::Own { mut pos, mut next_seq } = self.cursor else {
            unreachable!()
        };
        let mut found = false;
        for _ in 0..4096 {
            match self.ring.read(pos, &mut self.buf, &mut self.term) {
                Read::Frame { len } => {
                    pos = pos.wrapping_add(len as u64);
                    self.stuck = None;
                    if !self.intact() {
                        next_seq = next_seq.saturating_add(1); // a real frame holds exactly one seq
                        continue;
                    }
                    let seq = self.header().seq;
                    if seq < next_seq {
                        continue; // cannot happen with an honest producer
                    }
                    if seq > next_seq {
                        self.abandoned = self.abandoned.saturating_add(seq - next_seq);
                    }
                    next_seq = seq.saturating_add(1);
                    if self.deliverable() {
                        self.delivered += 1;
                        found = true;
                        self.ready = true;
                        if !more(self) {
                            break;
                        }
                    }
                }
                Read::End { next } => pos = next,
                Read::Lapped => {
                    // Honest segment: the oldest retained frame is ahead of us.
                    // If it is not (scribbled partition words), skip to the
                    // tail instead of going back and repeating frames.
                    let ring = &self.ring;
                    let (mut p, mut s) = ring.oldest();
                    if p <= pos {
                        (p, s) = ring.tail();
                    }
                    // Never trust a base seq beyond the tail (scribbled).
                    let s = s.min(ring.tail().1);
                    if s > next_seq {
                        self.missed = self.missed.saturating_add(s - next_seq);
                        next_seq = s;
                    }
                    if p <= pos {
                        // No way forward (partition words scribbled): end
                        // this attempt rather than spin here, so the caller's
                        // deadline is checked (each `oldest` may retry 128
                        // times; 4096 of them would take tens of ms).
                        break;
                    }
                    pos = p;
                }
                Read::Empty => match self.skip_abandoned(pos, checkpoint) {
                    Some(next) => pos = next,
                    None => break,
                },
            }
        }
        self.cursor = Cursor::Own { pos, next_seq };
        self.publish_entry(pos, next_seq);
        found
    }

    fn step_group(&mut self, index: usize, checkpoint: bool) -> bool {
        // As in `step_own`, no copy of the ring: `mem` is a 16-byte view
        // and everything else is reached through `self.ring` at each use.
        let mem = self.ring.mem;
        let g = self.ring.l.group(index);
        let cursor = mem.tail(g + G_CURSOR);
        let mut found = false;
        let mut last = (0, 0);
        for _ in 0..4096 {
            let (pos, seq) = cursor.load();
            last = (pos, seq);
            match self.ring.read(pos, &mut self.buf, &mut self.term) {
                Read::Frame { len } => {
                    let intact = self.intact_peek();
                    let h_seq = self.header().seq;
                    let next_seq = if !intact || h_seq < seq {
                        seq.saturating_add(1)
                    } else {
                        h_seq.saturating_add(1)
                    };
                    if !cursor.cas((pos, seq), (pos + len as u64, next_seq)) {
                        continue;
                    }
                    if !intact {
                        self.corrupt += 1;
                        continue;
                    }
                    self.stuck = None;
                    last = (pos + len as u64, next_seq);
                    if h_seq > seq {
                        self.abandoned = self.abandoned.saturating_add(h_seq - seq);
                    }
                    if self.deliverable() {
                        self.delivered += 1;
                        mem.u64_at(g + G_DELIVERED).fetch_add(1, Relaxed);
                        found = true;
                        break;
                    }
                }
                Read::End { next } => {
                    cursor.cas((pos, seq), (next, seq));
                }
                Read::Lapped => {
                    let (mut p, mut s) = self.ring.oldest();
                    if p <= pos {
                        (p, s) = self.ring.tail(); // scribbled: never go back
                    }
                    let p = p.max(pos);
                    let s = s.min(self.ring.tail().1).max(seq);
                    if (p, s) == (pos, seq) {
                        break; // no way forward (scribbled): see step_own
                    }
                    if cursor.cas((pos, seq), (p, s)) {
                        self.missed = self.missed.saturating_add(s - seq);
                        mem.u64_at(g + G_MISSED).fetch_add(s - seq, Relaxed);
                    }
                }
                Read::Empty => match self.skip_abandoned(pos, checkpoint) {
                    Some(next) => {
                        cursor.cas((pos, seq), (next, seq));
                    }
                    None => break,
                },
            }
        }
        self.publish_entry(last.0, last.1);
        found
    }
}

impl Subscriber {
    /// Frames still to read before this subscriber catches up (approximate).
    pub fn lag(&self) -> u64 {
        let (_, tail_seq) = self.ring.tail();
        tail_seq.saturating_sub(self.next_seq())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn start_default_is_newest() {
        assert_eq!(super::Start::default(), super::Start::Newest);
    }
}
