//! The subscriber table and the consumer-group table in the segment.
//!
//! Subscriber entry (256 bytes): owner pid, start time, position, next seq,
//! delivered, missed, abandoned, group (index + 1, 0 = none), filter summary.
//! Only the owning subscriber writes its counters; everybody may read them.
//!
//! Group entry (256 bytes): state, the shared cursor `(position, seq)` as one
//! 128-bit atomic that members advance by compare-and-swap (so each frame
//! goes to exactly one member), missed, delivered, name and filter summary.
//! Groups persist while the bus exists, like a named queue; a group whose
//! members are all dead no longer holds producers back (`Overflow::Block`).

use std::sync::atomic::Ordering::*;

use crate::error::{Error, Result};
use crate::layout::{self};
use crate::liveness;
use crate::mem::Mem;
use crate::ring::Ring;

pub(crate) const E_OWNER: usize = 0;
pub(crate) const E_START: usize = 8;
pub(crate) const E_POSITION: usize = 16;
pub(crate) const E_NEXT_SEQ: usize = 24;
pub(crate) const E_DELIVERED: usize = 32;
pub(crate) const E_MISSED: usize = 40;
pub(crate) const E_ABANDONED: usize = 48;
pub(crate) const E_GROUP: usize = 56;
pub(crate) const E_CORRUPT: usize = 64;
const E_FILTER_LEN: usize = 72;
const E_FILTER: usize = 80;
const E_FILTER_MAX: usize = layout::SUB_REC - E_FILTER;

pub(crate) const G_STATE: usize = 0;
pub(crate) const G_CURSOR: usize = 16;
pub(crate) const G_MISSED: usize = 32;
pub(crate) const G_DELIVERED: usize = 40;
const G_NAME_LEN: usize = 56;
const G_NAME: usize = 64;
/// Longest group name, in bytes.
pub const MAX_GROUP_NAME: usize = 64;
const G_FILTER_LEN: usize = 128;
const G_FILTER: usize = 136;
const G_FILTER_MAX: usize = layout::GROUP_REC - G_FILTER;

const G_FREE: u64 = 0;
const G_READY: u64 = 2;

fn write_str(mem: &Mem, len_off: usize, off: usize, max: usize, s: &str) {
    let mut n = s.len().min(max);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    mem.write(off, &s.as_bytes()[..n]);
    mem.u64_at(len_off).store(n as u64, Release);
}

fn read_str(mem: &Mem, len_off: usize, off: usize, max: usize) -> String {
    let n = (mem.u64_at(len_off).load(Acquire) as usize).min(max);
    let mut buf = vec![0; n];
    mem.read(off, &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Claim a free subscriber entry for this process.
pub(crate) fn alloc_sub(ring: &Ring, filter: &str, group: Option<usize>, pos: u64, seq: u64) -> Result<usize> {
    let (pid, start) = liveness::current();
    let mem = &ring.mem;
    for pass in 0..2 {
        for i in 0..ring.l.n_subs {
            let e = ring.l.sub(i);
            if mem
                .u64_at(e + E_OWNER)
                .compare_exchange(0, u64::from(pid), AcqRel, Relaxed)
                .is_ok()
            {
                mem.u64_at(e + E_START).store(start, Relaxed);
                mem.u64_at(e + E_POSITION).store(pos, Relaxed);
                mem.u64_at(e + E_NEXT_SEQ).store(seq, Relaxed);
                for f in [E_DELIVERED, E_MISSED, E_ABANDONED, E_CORRUPT] {
                    mem.u64_at(e + f).store(0, Relaxed);
                }
                mem.u64_at(e + E_GROUP)
                    .store(group.map_or(0, |g| g as u64 + 1), Relaxed);
                write_str(mem, e + E_FILTER_LEN, e + E_FILTER, E_FILTER_MAX, filter);
                return Ok(i);
            }
        }
        if pass == 0 {
            reap_subs(ring);
        }
    }
    Err(Error::Limit {
        what: "listener",
        limit: ring.l.n_subs,
    })
}

/// Free an entry owned by this process.
pub(crate) fn free_sub(ring: &Ring, i: usize) {
    ring.mem.u64_at(ring.l.sub(i) + E_OWNER).store(0, Release);
}

/// Reclaim entries whose process died. Returns how many were reclaimed.
pub(crate) fn reap_subs(ring: &Ring) -> usize {
    let mut n = 0;
    for i in 0..ring.l.n_subs {
        let e = ring.l.sub(i);
        let owner = ring.mem.u64_at(e + E_OWNER).load(Acquire);
        if owner == 0 {
            continue;
        }
        let start = ring.mem.u64_at(e + E_START).load(Acquire);
        if !liveness::is_alive(owner as u32, start)
            && ring
                .mem
                .u64_at(e + E_OWNER)
                .compare_exchange(owner, 0, AcqRel, Relaxed)
                .is_ok()
        {
            n += 1;
        }
    }
    n
}

/// One row of the subscriber table.
#[derive(Clone, Debug)]
pub(crate) struct SubRow {
    pub pid: u32,
    pub alive: bool,
    pub position: u64,
    pub next_seq: u64,
    pub delivered: u64,
    pub missed: u64,
    pub abandoned: u64,
    pub corrupt: u64,
    pub group: Option<usize>,
    pub filter: String,
}

pub(crate) fn sub_rows(ring: &Ring) -> Vec<SubRow> {
    let mem = &ring.mem;
    (0..ring.l.n_subs)
        .filter_map(|i| {
            let e = ring.l.sub(i);
            let owner = mem.u64_at(e + E_OWNER).load(Acquire);
            if owner == 0 {
                return None;
            }
            let start = mem.u64_at(e + E_START).load(Acquire);
            let g = mem.u64_at(e + E_GROUP).load(Relaxed) as usize;
            Some(SubRow {
                pid: owner as u32,
                alive: liveness::is_alive(owner as u32, start),
                position: mem.u64_at(e + E_POSITION).load(Relaxed),
                next_seq: mem.u64_at(e + E_NEXT_SEQ).load(Relaxed),
                delivered: mem.u64_at(e + E_DELIVERED).load(Relaxed),
                missed: mem.u64_at(e + E_MISSED).load(Relaxed),
                abandoned: mem.u64_at(e + E_ABANDONED).load(Relaxed),
                corrupt: mem.u64_at(e + E_CORRUPT).load(Relaxed),
                group: (g > 0 && g <= ring.l.n_groups).then(|| g - 1),
                filter: read_str(mem, e + E_FILTER_LEN, e + E_FILTER, E_FILTER_MAX),
            })
        })
        .collect()
}

/// Check a group name: 1..=64 bytes, printable, no whitespace.
pub(crate) fn validate_group_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > MAX_GROUP_NAME {
        return bad("group names must be 1..=64 bytes");
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("group names must not contain whitespace or control characters");
    }
    Ok(())
}

fn group_name(ring: &Ring, i: usize) -> String {
    let g = ring.l.group(i);
    read_str(&ring.mem, g + G_NAME_LEN, g + G_NAME, MAX_GROUP_NAME)
}

pub(crate) fn group_filter(ring: &Ring, i: usize) -> String {
    let g = ring.l.group(i);
    read_str(&ring.mem, g + G_FILTER_LEN, g + G_FILTER, G_FILTER_MAX)
}

fn find_group(ring: &Ring, name: &str) -> Option<usize> {
    (0..ring.l.n_groups)
        .find(|&i| ring.mem.u64_at(ring.l.group(i) + G_STATE).load(Acquire) == G_READY && group_name(ring, i) == name)
}

/// Find the group `name` or create it with its cursor at `start`.
/// Returns the group index.
pub(crate) fn find_or_create_group(ring: &Ring, name: &str, filter: &str, start: (u64, u64)) -> Result<usize> {
    validate_group_name(name)?;
    let check_filter = |i: usize| -> Result<usize> {
        let existing = group_filter(ring, i);
        let mut f = filter.to_string();
        while f.len() > G_FILTER_MAX {
            f.pop();
        }
        if existing != f {
            return Err(Error::GroupFilterMismatch {
                group: name.into(),
                existing,
                requested: filter.into(),
            });
        }
        Ok(i)
    };
    if let Some(i) = find_group(ring, name) {
        return check_filter(i);
    }
    // Creation is serialised by a small lock word so two processes creating
    // the same group at once end up in one entry. A dead holder is detected
    // by pid and the lock is taken over.
    let _lock = GroupLock::acquire(ring);
    if let Some(i) = find_group(ring, name) {
        return check_filter(i);
    }
    for i in 0..ring.l.n_groups {
        let g = ring.l.group(i);
        let st = ring.mem.u64_at(g + G_STATE);
        if st.load(Acquire) == G_FREE {
            write_str(&ring.mem, g + G_NAME_LEN, g + G_NAME, MAX_GROUP_NAME, name);
            write_str(&ring.mem, g + G_FILTER_LEN, g + G_FILTER, G_FILTER_MAX, filter);
            ring.mem.tail(g + G_CURSOR).init(start);
            ring.mem.u64_at(g + G_MISSED).store(0, Relaxed);
            ring.mem.u64_at(g + G_DELIVERED).store(0, Relaxed);
            st.store(G_READY, Release);
            return Ok(i);
        }
    }
    Err(Error::Limit {
        what: "group",
        limit: ring.l.n_groups,
    })
}

struct GroupLock<'a>(&'a Ring);

impl<'a> GroupLock<'a> {
    fn acquire(ring: &'a Ring) -> GroupLock<'a> {
        let word = ring.counter(layout::OFF_GROUP_LOCK);
        let (pid, _) = liveness::current();
        let mut spins = 0u32;
        let started = std::time::Instant::now();
        loop {
            let cur = word.load(Acquire);
            // Creating a group takes microseconds: a holder that is dead, or
            // that held it for a second (stopped, or a scribbled word that
            // happens to name a live pid), loses it.
            let free = cur == 0
                || (spins > 1000
                    && (!liveness::is_alive(cur as u32, 0) || started.elapsed() > std::time::Duration::from_secs(1)));
            if free && word.compare_exchange(cur, u64::from(pid), AcqRel, Relaxed).is_ok() {
                return GroupLock(ring);
            }
            spins += 1;
            std::thread::yield_now();
        }
    }
}

impl Drop for GroupLock<'_> {
    fn drop(&mut self) {
        self.0.counter(layout::OFF_GROUP_LOCK).store(0, Release);
    }
}

/// One row of the group table.
#[derive(Clone, Debug)]
pub(crate) struct GroupRow {
    pub index: usize,
    pub name: String,
    pub filter: String,
    pub position: u64,
    pub next_seq: u64,
    pub missed: u64,
    pub delivered: u64,
}

pub(crate) fn group_rows(ring: &Ring) -> Vec<GroupRow> {
    (0..ring.l.n_groups)
        .filter_map(|i| {
            let g = ring.l.group(i);
            if ring.mem.u64_at(g + G_STATE).load(Acquire) != G_READY {
                return None;
            }
            let (position, next_seq) = ring.mem.tail(g + G_CURSOR).load();
            Some(GroupRow {
                index: i,
                name: group_name(ring, i),
                filter: group_filter(ring, i),
                position,
                next_seq,
                missed: ring.mem.u64_at(g + G_MISSED).load(Relaxed),
                delivered: ring.mem.u64_at(g + G_DELIVERED).load(Relaxed),
            })
        })
        .collect()
}

/// Smallest position any live consumer still needs, or `None` if there is
/// no live consumer. Reclaims dead subscriber entries on the way.
pub(crate) fn slowest_live_position(ring: &Ring) -> Option<u64> {
    let rows = sub_rows(ring);
    let mut min: Option<u64> = None;
    let mut live_groups = vec![false; ring.l.n_groups];
    for r in &rows {
        if !r.alive {
            continue;
        }
        match r.group {
            Some(g) => live_groups[g] = true,
            None => min = Some(min.map_or(r.position, |m| m.min(r.position))),
        }
    }
    for g in group_rows(ring) {
        if live_groups[g.index] {
            min = Some(min.map_or(g.position, |m| m.min(g.position)));
        }
    }
    if rows.iter().any(|r| !r.alive) {
        reap_subs(ring);
    }
    min
}
