//! The public handle on a bus: create/open/remove, publish, claim, subscribe.

use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::atomic::Ordering::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{Config, Overflow};
use crate::error::{Error, Result};
use crate::filter::{validate_topic, Filter};
use crate::frame::{frame_len, header_len, FrameHeader, Meta};
use crate::layout;
use crate::producer::{self, ThreadSlot};
use crate::registry;
use crate::ring::{AlwaysEvict, ClaimError, Claimed, Gate, Ring, S_PUBLISHED};
use crate::segment::Segment;
use crate::stats::{GroupStats, ProducerStats, Stats, SubscriberStats};
use crate::subscriber::{Start, Subscriber};
use crate::wait::{self, WaitStrategy};

static NEXT_ID: StdAtomicU64 = StdAtomicU64::new(1);

thread_local! {
    static CHECKSUM_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// State shared by a bus handle, its subscribers and its thread slots.
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) seg: Segment,
    /// Producer slots handed out to threads, with the fork generation of
    /// the process that took them (a forked child must not free the parent's).
    pub(crate) slots: Mutex<Vec<(usize, u64)>>,
    pub(crate) overflow: Overflow,
    pub(crate) max_frame_size: usize,
    pub(crate) claim_timeout: Duration,
    pub(crate) single_producer: bool,
    pub(crate) checksum: bool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let slots = std::mem::take(&mut *self.slots.lock().unwrap_or_else(|e| e.into_inner()));
        let generation = crate::liveness::fork_generation();
        for (i, g) in slots {
            if g == generation {
                producer::free_slot(&self.seg.ring, i);
            }
        }
    }
}

/// A handle on a bus (one shared-memory segment).
///
/// `Bus` is `Send + Sync`: share it between threads (e.g. in an `Arc`) and
/// publish from all of them; each publishing thread gets its own producer slot.
///
/// ```
/// # let name = format!("doc-bus-{}", std::process::id());
/// use std::time::Duration;
/// use shmbus::{Bus, Config, Filter};
/// let cfg = Config::default().memory_limit(4 << 20).keep_ratio(0.9);
/// let bus = Bus::create(&name, &cfg)?;
/// let mut sub = bus.subscribe(Filter::topic("events.process.#"))?;
/// let seq = bus.publish("events.process.lifecycle", b"started")?;
/// let mut claim = bus.claim("events.process.lifecycle", 3)?;
/// claim.payload_mut().copy_from_slice(b"abc");
/// claim.commit();
/// let f = sub.recv_timeout(Duration::from_millis(100))?.unwrap();
/// assert_eq!((f.seq(), f.payload()), (seq, &b"started"[..]));
/// assert_eq!(sub.recv_timeout(Duration::from_millis(100))?.unwrap().payload(), b"abc");
/// assert_eq!(sub.missed(), 0);
/// drop(sub);
/// Bus::remove(&name)?;
/// # Ok::<(), shmbus::Error>(())
/// ```
#[derive(Clone)]
pub struct Bus {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("name", &self.shared.seg.name).finish()
    }
}

/// Options for [`Bus::subscribe_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Where to start.
    pub start: Start,
    /// How to wait.
    pub wait: WaitStrategy,
}

/// Bytes of frames [`Bus::publish_many`] claims at once, at most: enough to
/// share a claim among dozens of small frames.
const MANY_CLAIM_BYTES: usize = 16 << 10;

/// Eviction gate for `Overflow::Reject` (`block: None`) and
/// `Overflow::Block` (`block: Some(timeout)`).
///
/// The gate is built for every publish but consulted only when a claim
/// would evict (once per term), so the clock is read only when a publish
/// really has to wait: reading it up front cost every `Block` publish a
/// clock read (20-30 ns in a VM).
struct PolicyGate {
    block: Option<Duration>,
}

impl Gate for PolicyGate {
    fn may_evict(&mut self, ring: &Ring, evicted: u64) -> bool {
        let needed_until = (evicted + 1) * ring.l.part_size;
        let mut deadline = None;
        loop {
            match registry::slowest_live_position(ring) {
                Some(p) if p < needed_until => {}
                _ => return true,
            }
            let Some(t) = self.block else { return false };
            // Set on the first wait: the timeout runs from when the
            // publish started waiting. A timeout past what an `Instant`
            // can hold (validation caps it at 1 h) fails, never wedges.
            let Some(d) = *deadline.get_or_insert_with(|| Instant::now().checked_add(t)) else {
                return false;
            };
            if Instant::now() >= d {
                return false;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

impl Bus {
    fn wrap(seg: Segment) -> Bus {
        crate::clock::prime();
        let cfg = seg.config();
        Bus {
            shared: Arc::new(Shared {
                id: NEXT_ID.fetch_add(1, Relaxed),
                overflow: cfg.overflow,
                max_frame_size: cfg.max_frame_size as usize,
                claim_timeout: cfg.claim_timeout,
                single_producer: cfg.single_producer,
                checksum: cfg.checksum,
                seg,
                slots: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Create bus `name`; fails with [`Error::Exists`] if it exists.
    pub fn create(name: &str, cfg: &Config) -> Result<Bus> {
        Segment::create(name, cfg).map(Bus::wrap)
    }

    /// Open existing bus `name`; fails with [`Error::NotFound`] if there is none.
    pub fn open(name: &str) -> Result<Bus> {
        Segment::open(name).map(Bus::wrap)
    }

    /// Open bus `name`, creating it with `cfg` if it does not exist.
    /// An existing bus keeps its own configuration.
    pub fn open_or_create(name: &str, cfg: &Config) -> Result<Bus> {
        cfg.validate()?;
        for _ in 0..10 {
            match Bus::open(name) {
                Err(Error::NotFound { .. }) => {}
                other => return other,
            }
            match Bus::create(name, cfg) {
                Err(Error::Exists { .. }) => continue,
                other => return other,
            }
        }
        Bus::open(name)
    }

    /// Remove bus `name`. Processes that have it open keep using it until
    /// they drop it; a later `create` starts a fresh segment.
    pub fn remove(name: &str) -> Result<()> {
        Segment::remove(name)
    }

    /// Names of every bus on this machine.
    pub fn list() -> Result<Vec<String>> {
        crate::segment::list()
    }

    /// The bus name.
    pub fn name(&self) -> &str {
        &self.shared.seg.name
    }

    /// The configuration the bus was created with.
    pub fn config(&self) -> Config {
        self.shared.seg.config()
    }

    /// The checks of a publish or claim that need neither topic nor slot:
    /// `meta` is not the reserved padding kind, and `len` payload bytes fit
    /// in a frame.
    #[inline]
    fn check_meta_and_size(&self, meta: &Meta, len: usize) -> Result<()> {
        if meta.kind == crate::frame::Kind::Padding {
            return Err(Error::config("kind", "padding is reserved for aborted claims"));
        }
        if len > self.shared.max_frame_size {
            return Err(Error::TooLarge {
                size: len,
                max: self.shared.max_frame_size,
            });
        }
        Ok(())
    }

    /// Claim `len` bytes for `frames` frames into `c` (in place: see
    /// `ring::Claimed`).
    #[inline(always)]
    fn reserve(&self, slot: &ThreadSlot, len: usize, frames: u64, c: &mut Claimed) -> Result<()> {
        if slot.claim_outstanding.get() {
            return Err(Error::ClaimOutstanding);
        }
        let ring = &self.shared.seg.ring;
        let res = match self.shared.overflow {
            Overflow::Evict => ring.claim(slot.index, len, frames, &mut AlwaysEvict, &slot.term, c),
            Overflow::Reject => ring.claim(slot.index, len, frames, &mut PolicyGate { block: None }, &slot.term, c),
            Overflow::Block(t) => ring.claim(
                slot.index,
                len,
                frames,
                &mut PolicyGate { block: Some(t) },
                &slot.term,
                c,
            ),
        };
        res.map_err(|e| match e {
            ClaimError::Full => {
                ring.counter(layout::OFF_REJECTED).fetch_add(1, Relaxed);
                Error::Full
            }
            ClaimError::Corrupt => match self.shared.seg.check_truncated() {
                Err(truncated) => truncated,
                Ok(()) => Error::Incompatible {
                    name: self.name().to_string(),
                    reason: "the tail contradicts the partition states: the segment was overwritten by another \
                             process"
                        .into(),
                },
            },
        })
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn header(
        &self,
        slot: &ThreadSlot,
        meta: &Meta,
        ids: bool,
        pos: u64,
        seq: u64,
        topic: &str,
        payload_len: usize,
    ) -> FrameHeader {
        FrameHeader {
            commit: 0,
            position: pos,
            seq,
            timestamp_ns: slot.clock.now(),
            correlation_id: meta.correlation.id.to_le_bytes(),
            parent_id: meta.correlation.parent.to_le_bytes(),
            root_id: meta.correlation.root.to_le_bytes(),
            producer: slot.pid,
            payload_len: payload_len as u32,
            kind: meta.kind as u8,
            event_type: meta.event_type as u8,
            topic_len: topic.len() as u8,
            flags: if self.shared.checksum {
                crate::frame::FLAG_CHECKSUM
            } else {
                0
            } | if ids { crate::frame::FLAG_IDS } else { 0 },
            checksum: 0,
        }
    }

    /// Commit a written frame. `checksum`: the CRC computed from the
    /// producer's private copy (publish), or `None` to compute it from the
    /// segment (zero-copy claims, whose bytes only exist there).
    #[inline(always)]
    fn finish(&self, slot: &ThreadSlot, c: &Claimed, len: usize, checksum: Option<u32>) {
        let ring = &self.shared.seg.ring;
        if self.shared.checksum {
            match checksum {
                Some(sum) => ring.store_checksum(c.off, sum),
                None => CHECKSUM_SCRATCH.with(|s| ring.seal_checksum(c.off, len, &mut s.borrow_mut())),
            }
        }
        ring.commit(c, len);
        ring.release(slot.index);
        let n = slot.published.get() + 1;
        slot.published.set(n);
        ring.slot_word(slot.index, S_PUBLISHED).store(n, Relaxed);
        wait::notify(&ring.mem);
    }

    /// Publish `payload` to `topic` as an event; returns its seq. Never
    /// blocks with the default `Overflow::Evict`.
    #[inline]
    pub fn publish(&self, topic: &str, payload: &[u8]) -> Result<u64> {
        self.publish_with(&Meta::default(), topic, payload)
    }

    /// Publish with explicit kind, event type and correlation ids.
    ///
    /// ```
    /// # let name = format!("doc-pubwith-{}", std::process::id());
    /// use shmbus::{Bus, Config, EventType, Filter, Kind, Meta, Start, SubscribeOptions};
    /// let bus = Bus::create(&name, &Config::default().memory_limit(1 << 20))?;
    /// bus.publish_with(&Meta::event(EventType::New).root_id(9), "observables.url", b"{}")?;
    /// let opts = SubscribeOptions { start: Start::Oldest, ..Default::default() };
    /// let mut sub = bus.subscribe_with(Filter::root_id(9), opts)?;
    /// let f = sub.try_recv()?.unwrap();
    /// assert_eq!((f.kind(), f.event_type(), f.correlation().root), (Kind::Event, EventType::New, 9));
    /// # drop(sub); Bus::remove(&name)?;
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    #[inline]
    pub fn publish_with(&self, meta: &Meta, topic: &str, payload: &[u8]) -> Result<u64> {
        self.publish_checked(
            meta,
            topic.as_bytes(),
            |_| validate_topic(topic).map(|()| topic),
            payload,
        )
    }

    /// Publish every payload of `payloads` to `topic`, in order; returns the
    /// seq of the last one, `None` when `payloads` is empty.
    ///
    /// Faster than [`Bus::publish`] per payload for small frames: the topic
    /// is checked once, and frames are claimed together, up to 16 KiB of
    /// frames per claim, and made visible with one fence per claim instead
    /// of one atomic read-modify-write per frame. The frames of one claim
    /// have consecutive seqs and share one timestamp; other producers'
    /// frames may come between two claims.
    ///
    /// Every payload's size is checked before anything is published
    /// ([`Error::TooLarge`] publishes nothing). A claim refused later
    /// ([`Error::Full`] with `Overflow::Reject`, or a `Block` timeout) leaves
    /// the frames of the earlier claims published.
    ///
    /// ```
    /// # let name = format!("doc-pubmany-{}", std::process::id());
    /// use shmbus::{Bus, Config, Filter};
    /// let bus = Bus::create(&name, &Config::default().memory_limit(1 << 20))?;
    /// let mut sub = bus.subscribe(Filter::all())?;
    /// let last = bus.publish_many("events.file", &[&b"a"[..], b"bc", b"def"])?;
    /// assert_eq!(last, Some(2));
    /// for want in [&b"a"[..], b"bc", b"def"] {
    ///     assert_eq!(sub.try_recv()?.unwrap().payload(), want);
    /// }
    /// assert_eq!(bus.publish_many::<&[u8]>("events.file", &[])?, None);
    /// # drop(sub); Bus::remove(&name)?;
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    pub fn publish_many<P: AsRef<[u8]>>(&self, topic: &str, payloads: &[P]) -> Result<Option<u64>> {
        self.publish_many_with(&Meta::default(), topic, payloads)
    }

    /// [`Bus::publish_many`] with explicit metadata, the same for every frame.
    pub fn publish_many_with<P: AsRef<[u8]>>(&self, meta: &Meta, topic: &str, payloads: &[P]) -> Result<Option<u64>> {
        self.publish_many_checked(
            meta,
            topic.as_bytes(),
            |_| validate_topic(topic).map(|()| topic),
            payloads,
        )
    }

    /// [`Bus::publish_many_with`] for a topic given as bytes (see
    /// [`Bus::publish_with_topic_bytes`]). The C ABI publishes through this.
    pub fn publish_many_with_topic_bytes<P: AsRef<[u8]>>(
        &self,
        meta: &Meta,
        topic: &[u8],
        payloads: &[P],
    ) -> Result<Option<u64>> {
        self.publish_many_checked(meta, topic, crate::filter::topic_from_bytes, payloads)
    }

    fn publish_many_checked<'t, P: AsRef<[u8]>>(
        &self,
        meta: &Meta,
        topic: &'t [u8],
        check: impl FnOnce(&'t [u8]) -> std::result::Result<&'t str, crate::filter::FilterError>,
        payloads: &[P],
    ) -> Result<Option<u64>> {
        // The largest payload decides: all are checked before any is published.
        let largest = payloads.iter().map(|p| p.as_ref().len()).max().unwrap_or(0);
        self.check_meta_and_size(meta, largest)?;
        self.shared.seg.check_truncated()?;
        let (slot, topic) = producer::slot_for_topic(&self.shared, topic, check)?;
        let ids = meta.correlation.is_set(); // stored only when set
        let frame = |p: &P| frame_len(topic.len(), p.as_ref().len(), ids);
        // A claim never spans terms: at most an eighth of one (or a single
        // frame, which always fits), so closing a term early wastes little.
        let cap = MANY_CLAIM_BYTES.min(self.shared.seg.ring.l.part_size as usize / 8);
        let mut last = None;
        let mut rest = payloads;
        while let Some(first) = rest.first() {
            let mut total = frame(first);
            let mut n = 1;
            while let Some(p) = rest.get(n) {
                let len = frame(p);
                if total + len > cap {
                    break;
                }
                total += len;
                n += 1;
            }
            let (batch, tail) = rest.split_at(n);
            last = Some(self.publish_claimed_batch(slot, meta, ids, topic, batch, total)?);
            rest = tail;
        }
        self.shared.seg.check_truncated()?;
        Ok(last)
    }

    /// Claim `total` bytes for the frames of `batch`, write and commit them;
    /// returns the last one's seq.
    fn publish_claimed_batch<P: AsRef<[u8]>>(
        &self,
        slot: &ThreadSlot,
        meta: &Meta,
        ids: bool,
        topic: &str,
        batch: &[P],
        total: usize,
    ) -> Result<u64> {
        let ring = &self.shared.seg.ring;
        let mut c = Claimed::default();
        self.reserve(slot, total, batch.len() as u64, &mut c)?;
        let mut h = self.header(slot, meta, ids, c.pos, c.seq, topic, 0);
        let mut at = 0;
        for p in batch {
            let payload = p.as_ref();
            let len = frame_len(topic.len(), payload.len(), ids);
            h.position = c.pos + at as u64;
            h.payload_len = payload.len() as u32;
            ring.write_frame(c.off + at, &h, ids, topic.as_bytes(), payload);
            if self.shared.checksum {
                let sum = crate::frame::checksum_parts(&{ h }, topic.as_bytes(), payload, len);
                ring.store_checksum(c.off + at, sum);
            }
            // Each frame is committed once written, in position order (the
            // order readers take them); the claim's slot announcement covers
            // them all until `release` below.
            ring.commit_unfenced(c.off + at, c.tag, len);
            h.seq += 1;
            at += len;
        }
        debug_assert_eq!(at, total);
        // One fence for the parked-reader check, as `Ring::commit` does for
        // one frame.
        crate::sync::fence(SeqCst);
        ring.release(slot.index);
        let n = slot.published.get() + batch.len() as u64;
        slot.published.set(n);
        ring.slot_word(slot.index, S_PUBLISHED).store(n, Relaxed);
        wait::notify(&ring.mem);
        Ok(c.seq + batch.len() as u64 - 1)
    }

    /// [`Bus::publish_with`] for a topic given as bytes (a C string's bytes,
    /// say): validated once, UTF-8 included, by
    /// [`crate::filter::topic_from_bytes`]. The C ABI publishes through this.
    #[inline(always)]
    pub fn publish_with_topic_bytes(&self, meta: &Meta, topic: &[u8], payload: &[u8]) -> Result<u64> {
        self.publish_checked(meta, topic, crate::filter::topic_from_bytes, payload)
    }

    /// Publish after `check` (the topic checks for `topic`'s form); `check`
    /// is skipped when this thread published this topic last on this bus
    /// (see [`producer::slot_for_topic`]).
    #[inline(always)]
    fn publish_checked<'t>(
        &self,
        meta: &Meta,
        topic: &'t [u8],
        check: impl FnOnce(&'t [u8]) -> std::result::Result<&'t str, crate::filter::FilterError>,
        payload: &[u8],
    ) -> Result<u64> {
        self.check_meta_and_size(meta, payload.len())?;
        self.shared.seg.check_truncated()?;
        let (slot, topic) = producer::slot_for_topic(&self.shared, topic, check)?;
        let ids = meta.correlation.is_set(); // stored only when set
        let len = frame_len(topic.len(), payload.len(), ids);
        let mut c = Claimed::default();
        self.reserve(slot, len, 1, &mut c)?;
        let h = self.header(slot, meta, ids, c.pos, c.seq, topic, payload.len());
        self.shared
            .seg
            .ring
            .write_frame(c.off, &h, ids, topic.as_bytes(), payload);
        let crc = self
            .shared
            .checksum
            // A copy (`&{ h }`): were `h`'s own address taken, it would live
            // in memory, and `write_frame` above would load its words back
            // with wide loads of fields just stored one by one, a failed
            // store-to-load forward on every publish (seventh session).
            .then(|| crate::frame::checksum_parts(&{ h }, topic.as_bytes(), payload, len));
        self.finish(slot, &c, len, crc);
        self.shared.seg.check_truncated()?;
        Ok(c.seq)
    }

    /// Reserve a frame of `len` payload bytes to fill in place (zero-copy).
    /// Commit it with [`Claim::commit`]; dropping it aborts (readers skip it).
    /// Until then this thread may not publish on this bus
    /// ([`Error::ClaimOutstanding`]).
    pub fn claim(&self, topic: &str, len: usize) -> Result<Claim<'_>> {
        self.claim_with(&Meta::default(), topic, len)
    }

    /// [`Bus::claim`] with metadata.
    pub fn claim_with(&self, meta: &Meta, topic: &str, len: usize) -> Result<Claim<'_>> {
        self.check_meta_and_size(meta, len)?;
        self.shared.seg.check_truncated()?;
        let check = |_| validate_topic(topic).map(|()| topic);
        let (slot, topic) = producer::slot_for_topic(&self.shared, topic.as_bytes(), check)?;
        self.claim_in(slot, meta, topic, len)
    }

    /// The body of [`Bus::claim_with`] once the topic is checked. Always
    /// inlined: left as a function (a closure) of its own, LLVM returned the
    /// `Claim` through memory and the caller copied it with 16-byte loads
    /// spanning several narrower stores, a failed store-to-load forward on
    /// every claim.
    #[inline(always)]
    fn claim_in(&self, slot: &ThreadSlot, meta: &Meta, topic: &str, len: usize) -> Result<Claim<'_>> {
        let ids = meta.correlation.is_set(); // stored only when set
        let total = frame_len(topic.len(), len, ids);
        let mut c = Claimed::default();
        self.reserve(slot, total, 1, &mut c)?;
        let ring = &self.shared.seg.ring;
        let h = self.header(slot, meta, ids, c.pos, c.seq, topic, len);
        // Write header and topic now; zero the payload so no stale bytes leak.
        ring.write_frame(c.off, &h, ids, topic.as_bytes(), &[]);
        let body = header_len(ids) + topic.len();
        let payload_off = c.off + body;
        ring.mem.zero(payload_off, total - body);
        slot.claim_outstanding.set(true);
        Ok(Claim {
            bus: self,
            claimed: c,
            len: total,
            payload: ring.mem.ptr(payload_off, len),
            payload_len: len,
            slot: slot.index,
            done: false,
            _not_send: std::marker::PhantomData,
        })
    }

    /// Subscribe from the newest frame with the default wait strategy.
    pub fn subscribe(&self, filter: Filter) -> Result<Subscriber> {
        self.subscribe_with(filter, SubscribeOptions::default())
    }

    /// Subscribe with a start position and wait strategy.
    pub fn subscribe_with(&self, filter: Filter, opts: SubscribeOptions) -> Result<Subscriber> {
        filter.validate()?;
        let matcher = filter.compile()?;
        Subscriber::new_broadcast(self.shared.clone(), matcher, &filter.to_string(), opts.start, opts.wait)
    }

    /// Join (creating if needed) the consumer group `group`: each frame goes
    /// to exactly one member. All members must use the same filter.
    pub fn join_group(&self, group: &str, filter: Filter) -> Result<Subscriber> {
        self.join_group_with(group, filter, SubscribeOptions::default())
    }

    /// [`Bus::join_group`] with options; `start` only applies when this call
    /// creates the group.
    pub fn join_group_with(&self, group: &str, filter: Filter, opts: SubscribeOptions) -> Result<Subscriber> {
        filter.validate()?;
        let matcher = filter.compile()?;
        let summary = filter.to_string();
        let ring = &self.shared.seg.ring;
        let start = match opts.start {
            Start::Newest => ring.tail(),
            _ => ring.oldest(),
        };
        let index = registry::find_or_create_group(ring, group, &summary, start)?;
        Subscriber::new_member(self.shared.clone(), matcher, group, index, &summary, opts.wait)
    }

    /// A snapshot of counters, geometry, subscribers, groups and producers.
    pub fn stats(&self) -> Stats {
        let ring = &self.shared.seg.ring;
        let cfg = self.config();
        let (tail_pos, next_seq) = ring.tail();
        let (oldest_pos, oldest_seq) = ring.oldest();
        let producers: Vec<ProducerStats> = producer::snapshot(ring)
            .into_iter()
            .map(|(pid, published)| ProducerStats { pid, published })
            .collect();
        let published =
            ring.counter(layout::OFF_RETIRED).load(Relaxed) + producers.iter().map(|p| p.published).sum::<u64>();
        let groups_raw = registry::group_rows(ring);
        let subs_raw = registry::sub_rows(ring);
        let subscribers = subs_raw
            .iter()
            .map(|r| SubscriberStats {
                pid: r.pid,
                alive: r.alive,
                group: r
                    .group
                    .and_then(|g| groups_raw.iter().find(|x| x.index == g))
                    .map(|g| g.name.clone()),
                filter: r.filter.clone(),
                position: r.position,
                next_seq: r.next_seq,
                lag_frames: next_seq.saturating_sub(r.next_seq),
                lag_bytes: tail_pos.saturating_sub(r.position),
                delivered: r.delivered,
                missed: r.missed,
                abandoned: r.abandoned,
                corrupt: r.corrupt,
            })
            .collect();
        let groups = groups_raw
            .iter()
            .map(|g| GroupStats {
                name: g.name.clone(),
                filter: g.filter.clone(),
                members: subs_raw.iter().filter(|r| r.alive && r.group == Some(g.index)).count(),
                position: g.position,
                next_seq: g.next_seq,
                delivered: g.delivered,
                missed: g.missed,
            })
            .collect();
        Stats {
            name: self.name().to_string(),
            published,
            claimed: next_seq,
            evicted: ring.counter(layout::OFF_EVICTED).load(Relaxed),
            rejected: ring.counter(layout::OFF_REJECTED).load(Relaxed),
            aborted: ring.counter(layout::OFF_ABORTED).load(Relaxed),
            abandoned: ring.counter(layout::OFF_ABANDONED).load(Relaxed),
            bytes_used: tail_pos.saturating_sub(oldest_pos),
            data_capacity: ring.l.parts * ring.l.part_size,
            memory_limit: ring.l.segment_len as u64,
            keep_ratio: cfg.keep_ratio,
            partitions: ring.l.parts,
            oldest_seq,
            next_seq,
            subscribers,
            groups,
            producers,
        }
    }

    /// Reclaim table entries of dead processes now (also done lazily).
    pub fn reap(&self) -> usize {
        let ring = &self.shared.seg.ring;
        producer::reap(ring);
        registry::reap_subs(ring)
    }
}

/// A reserved frame being written in place. [`Claim::commit`] publishes it;
/// dropping it without commit aborts it (readers skip it).
///
/// A claim belongs to the thread that made it (it is not `Send`), and that
/// thread cannot publish on the same bus until the claim is committed or
/// dropped ([`Error::ClaimOutstanding`]). Commit promptly: a rotation that
/// needs the claim's partition waits for it.
///
/// ```
/// # let name = format!("doc-claim-{}", std::process::id());
/// use shmbus::{Bus, Config, Filter, Start, SubscribeOptions};
/// let bus = Bus::create(&name, &Config::default().memory_limit(1 << 20))?;
/// let mut claim = bus.claim("events.net.flow", 16)?;
/// claim.payload_mut()[..4].copy_from_slice(&42u32.to_le_bytes());
/// let seq = claim.commit();
/// drop(bus.claim("events.net.flow", 16)?); // aborted: never delivered
/// let opts = SubscribeOptions { start: Start::Oldest, ..Default::default() };
/// let mut sub = bus.subscribe_with(Filter::all(), opts)?;
/// let f = sub.try_recv()?.unwrap();
/// assert_eq!((f.seq(), &f.payload()[..4]), (seq, &42u32.to_le_bytes()[..]));
/// assert!(sub.try_recv()?.is_none());
/// # drop(sub); Bus::remove(&name)?;
/// # Ok::<(), shmbus::Error>(())
/// ```
pub struct Claim<'a> {
    bus: &'a Bus,
    claimed: Claimed,
    len: usize,
    payload: *mut u8,
    payload_len: usize,
    slot: usize,
    done: bool,
    _not_send: std::marker::PhantomData<*mut u8>,
}

impl Claim<'_> {
    /// The payload bytes to fill (zeroed initially).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        // SAFETY: `payload..payload+payload_len` is inside the frame this claim
        // owns (ring invariant W1: no other writer); the partition cannot be
        // reused while our slot announces the term (rotation barrier W2), and
        // the mapping outlives `'a` because `bus` keeps it alive.
        unsafe { std::slice::from_raw_parts_mut(self.payload, self.payload_len) }
    }
    /// The seq this frame will have.
    pub fn seq(&self) -> u64 {
        self.claimed.seq
    }
    /// Publish the frame; returns its seq.
    pub fn commit(mut self) -> u64 {
        self.done = true;
        let bus = self.bus;
        if let Ok(slot) = producer::slot(&bus.shared) {
            slot.claim_outstanding.set(false);
            bus.finish(slot, &self.claimed, self.len, None);
        }
        self.claimed.seq
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let bus = self.bus;
        let ring = &bus.shared.seg.ring;
        ring.abort(&self.claimed, self.len);
        ring.release(self.slot);
        if let Ok(slot) = producer::slot(&bus.shared) {
            slot.claim_outstanding.set(false);
        }
        wait::notify(&ring.mem);
    }
}
