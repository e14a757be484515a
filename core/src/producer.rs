//! Producer slots: one per publishing thread, so rotations know who may still
//! be writing into the partition they are about to reuse (ring.rs, barrier).
//!
//! A slot is owned by `(pid, start time)`; slots of dead processes are
//! reclaimed when the table runs out. A thread finds its slot for a bus in a
//! thread-local list (no lock, no syscall on the publish path); the slot is
//! released when the thread exits or the bus handle is dropped.

use std::cell::{Cell, RefCell};
use std::sync::atomic::Ordering::*;
use std::sync::{Arc, Weak};

use crate::bus::Shared;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::filter::{FilterError, TopicMemo};
use crate::layout;
use crate::liveness;
use crate::ring::{Ring, Term, S_ACTIVE, S_OWNER, S_PUBLISHED, S_START};

/// Per-thread handle on a producer slot.
pub(crate) struct ThreadSlot {
    bus_id: u64,
    fork_generation: u64,
    shared: Weak<Shared>,
    pub(crate) index: usize,
    /// The pid of the process that owns this slot (the frame header's
    /// `producer`): fixed for the slot's fork generation, so publish reads
    /// it here instead of asking `liveness` each time.
    pub(crate) pid: u32,
    pub(crate) claim_outstanding: Cell<bool>,
    pub(crate) published: Cell<u64>,
    /// This thread's timestamp source.
    pub(crate) clock: Clock,
    /// The term this thread last claimed in (see `ring::Term`).
    pub(crate) term: Cell<Term>,
    /// The topic this thread last published to on this bus, checked.
    pub(crate) topic: TopicMemo,
}

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        // Invariant of `LAST`: it never points to a freed slot.
        let me: *const ThreadSlot = self;
        let _ = LAST.try_with(|last| {
            if last.get().2 == me {
                last.set(NO_LAST);
            }
        });
        if self.fork_generation != liveness::fork_generation() {
            return; // inherited from the parent process: not ours to free
        }
        if let Some(shared) = self.shared.upgrade() {
            shared
                .slots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|&(i, _)| i != self.index);
            free_slot(&shared.seg.ring, self.index);
        }
    }
}

/// `(bus id, fork generation, slot)` of the slot a thread used last.
type Last = (u64, u64, *const ThreadSlot);
const NO_LAST: Last = (0, 0, std::ptr::null());

thread_local! {
    /// This thread's slots, boxed so that their addresses are stable
    /// (`LAST` points to one; the vector itself reallocates as it grows).
    #[allow(clippy::vec_box)]
    static SLOTS: RefCell<Vec<Box<ThreadSlot>>> = const { RefCell::new(Vec::new()) };
    /// The slot this thread used last: the publish fast path is one access
    /// to this plain cell (no destructor, so no lazy-registration check; one
    /// `__tls_get_addr` in a shared library) instead of a search of `SLOTS`.
    ///
    /// Invariant: a non-NULL pointer is a live entry of this thread's
    /// `SLOTS`. It is only set from such an entry (below), and
    /// `ThreadSlot::drop` resets it before the entry is freed, which covers
    /// both ways entries go: `retain` in the slow path and thread exit.
    static LAST: Cell<Last> = const { Cell::new(NO_LAST) };
}

/// The slot this thread used last, if it is its slot on `shared`: the fast
/// path, one thread-local read.
#[inline(always)]
fn last_slot(shared: &Arc<Shared>, generation: u64) -> Option<&ThreadSlot> {
    let (id, g, slot) = LAST.with(Cell::get);
    if id == shared.id && g == generation && !slot.is_null() {
        // SAFETY: per `LAST`'s invariant `slot` is a live boxed entry of this
        // thread's `SLOTS`, and it stays alive while `shared` is borrowed:
        // entries are dropped only by thread exit (not while this thread
        // holds the borrow) or by `slot_slow`'s `retain`, which keeps every
        // entry whose bus is alive, and `shared` keeps this slot's bus alive.
        return Some(unsafe { &*slot });
    }
    None
}

/// This thread's slot on `shared`, allocating one if needed.
#[inline(always)]
pub(crate) fn slot(shared: &Arc<Shared>) -> Result<&ThreadSlot> {
    let generation = liveness::fork_generation();
    match last_slot(shared, generation) {
        Some(slot) => Ok(slot),
        None => slot_slow(shared, generation),
    }
}

/// This thread's slot on `shared` (allocated if needed) for a publish or
/// claim of `topic`, and the topic as `&str`: after `check` passed it, or
/// straight away when it is the topic this thread published last on this
/// bus (the slot's [`TopicMemo`]). When this thread has no slot here yet,
/// `check` runs before one is allocated, so a bad topic is reported as such
/// and takes no slot.
///
/// It returns the slot rather than taking a closure: a claim's closure was
/// left out of line, and its `Claim` came back through memory into a
/// stalled copy (see `Bus::claim_in`).
#[inline(always)]
pub(crate) fn slot_for_topic<'a, 't>(
    shared: &'a Arc<Shared>,
    topic: &'t [u8],
    check: impl FnOnce(&'t [u8]) -> std::result::Result<&'t str, FilterError>,
) -> Result<(&'a ThreadSlot, &'t str)> {
    let generation = liveness::fork_generation();
    if let Some(slot) = last_slot(shared, generation) {
        return Ok((slot, slot.topic.validate(topic, check)?));
    }
    let topic = check(topic)?;
    let slot = slot_slow(shared, generation)?;
    slot.topic.remember(topic.as_bytes());
    Ok((slot, topic))
}

/// This thread's slot on `shared`, found in `SLOTS` or allocated, and made
/// the `LAST` one.
#[inline(never)]
fn slot_slow(shared: &Arc<Shared>, generation: u64) -> Result<&ThreadSlot> {
    let slot = SLOTS.with(|slots| -> Result<*const ThreadSlot> {
        if let Some(s) = slots
            .borrow()
            .iter()
            .find(|s| s.bus_id == shared.id && s.fork_generation == generation)
        {
            return Ok(&**s);
        }
        let index = allocate(shared)?;
        let mut v = slots.borrow_mut();
        // Forget entries of bus handles that are gone.
        v.retain(|s| s.shared.strong_count() > 0 && s.fork_generation == generation);
        v.push(Box::new(ThreadSlot {
            bus_id: shared.id,
            fork_generation: generation,
            shared: Arc::downgrade(shared),
            index,
            pid: liveness::pid(),
            claim_outstanding: Cell::new(false),
            published: Cell::new(0),
            clock: Clock::default(),
            term: Cell::new(Term::NONE),
            topic: TopicMemo::default(),
        }));
        Ok(&**v.last().expect("just pushed"))
    })?;
    LAST.with(|last| last.set((shared.id, generation, slot)));
    // SAFETY: `slot` is a live boxed entry of `SLOTS` (found or pushed just
    // above), alive while `shared` is borrowed as in `last_slot`.
    Ok(unsafe { &*slot })
}

fn allocate(shared: &Arc<Shared>) -> Result<usize> {
    let ring = &shared.seg.ring;
    let (pid, start) = liveness::current();
    if shared.single_producer {
        // Refuse a second producer anywhere: another live process, or
        // another thread or handle of this one (each holds its own slot).
        for i in 0..ring.l.n_slots {
            let owner = ring.slot_word(i, S_OWNER).load(Acquire);
            if owner == 0 {
                continue;
            }
            let st = ring.slot_word(i, S_START).load(Acquire);
            if owner == u64::from(pid) || liveness::is_alive(owner as u32, st) {
                return Err(Error::ProducerConflict { pid: owner as u32 });
            }
            reclaim(ring, i, owner);
        }
    }
    for pass in 0..2 {
        for i in 0..ring.l.n_slots {
            let owner = ring.slot_word(i, S_OWNER);
            if owner.compare_exchange(0, u64::from(pid), AcqRel, Relaxed).is_ok() {
                ring.slot_word(i, S_START).store(start, Release);
                ring.slot_word(i, S_PUBLISHED).store(0, Relaxed);
                ring.slot_word(i, S_ACTIVE).store(0, Release);
                shared
                    .slots
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((i, liveness::fork_generation()));
                return Ok(i);
            }
        }
        if pass == 0 {
            reap(ring);
        }
    }
    Err(Error::Limit {
        what: "producer",
        limit: ring.l.n_slots,
    })
}

/// Reclaim slots whose owning process is dead.
pub(crate) fn reap(ring: &Ring) {
    for i in 0..ring.l.n_slots {
        let owner = ring.slot_word(i, S_OWNER).load(Acquire);
        if owner == 0 {
            continue;
        }
        let start = ring.slot_word(i, S_START).load(Acquire);
        if !liveness::is_alive(owner as u32, start) {
            reclaim(ring, i, owner);
        }
    }
}

fn reclaim(ring: &Ring, i: usize, owner: u64) {
    let active = ring.slot_word(i, S_ACTIVE).swap(0, AcqRel);
    if active != 0 {
        ring.counter(layout::OFF_ABANDONED).fetch_add(1, Relaxed);
    }
    let published = ring.slot_word(i, S_PUBLISHED).swap(0, AcqRel);
    if ring
        .slot_word(i, S_OWNER)
        .compare_exchange(owner, 0, AcqRel, Relaxed)
        .is_ok()
    {
        ring.counter(layout::OFF_RETIRED).fetch_add(published, Relaxed);
    } else {
        // Somebody else reclaimed and reused it meanwhile; give the count back.
        ring.slot_word(i, S_PUBLISHED).fetch_add(published, Relaxed);
    }
}

/// Release a slot owned by this process.
pub(crate) fn free_slot(ring: &Ring, i: usize) {
    ring.slot_word(i, S_ACTIVE).store(0, Release);
    let published = ring.slot_word(i, S_PUBLISHED).swap(0, AcqRel);
    ring.counter(layout::OFF_RETIRED).fetch_add(published, Relaxed);
    ring.slot_word(i, S_OWNER).store(0, Release);
}

/// Live producer slots: `(pid, published)`.
pub(crate) fn snapshot(ring: &Ring) -> Vec<(u32, u64)> {
    (0..ring.l.n_slots)
        .filter_map(|i| {
            let owner = ring.slot_word(i, S_OWNER).load(Acquire);
            (owner != 0).then(|| (owner as u32, ring.slot_word(i, S_PUBLISHED).load(Relaxed)))
        })
        .collect()
}
