//! Target `ops`: arbitrary sequences of bus operations against a model.
//!
//! One in-process bus (64 KiB, `max_frame_size` 1024, a fuzzed `keep_ratio`,
//! so the ring rotates and evicts after a few dozen frames) runs a decoded
//! list of operations: publish, burst publish, claim + commit, claim + drop
//! (abort), invalid publishes, subscribe (newest, oldest, from a seq; with or
//! without a topic filter), drop a subscriber, receive up to k frames, join
//! and leave consumer groups, and stats. Next to it runs an exact model of
//! the log: a list of frames by seq, the tail `(position, seq)`, the
//! partition geometry (`P` terms of `S` bytes; a frame goes in the current
//! term if it fits with 8 bytes to spare, else the next term opens and term
//! `next - P` is evicted: the keep-ratio rule), per-subscriber cursors and
//! per-group shared cursors.
//!
//! Proves, after every operation:
//!
//! * every frame delivered is exactly the one the model expects: the same
//!   seq, topic and payload (so seqs strictly increase, nothing is duplicated,
//!   nothing is torn, filters are applied, aborted claims are never
//!   delivered, a reader waits at an uncommitted claim);
//! * `missed`, `delivered` and `next_seq` of every subscriber and group equal
//!   the model's; for each subscriber `delivered + missed + aborted skipped +
//!   filtered out + below its start seq == seqs it walked past` (so for an
//!   unfiltered subscriber, delivered + missed + aborted == published since
//!   it subscribed, once drained);
//! * `stats()` agrees with the model: next/oldest seq, evicted, aborted,
//!   published, `bytes_used <= data_capacity`, and the oldest retained seq
//!   never decreases;
//! * errors are the documented ones (`ClaimOutstanding`, `Limit`,
//!   `GroupFilterMismatch`, `TooLarge`, invalid topic) and change nothing.

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use shmbus::{Bus, Claim, Config, Error, Filter, Frame, Start, SubscribeOptions, Subscriber};

use crate::filters::ref_pattern_match;
use crate::{unique_name, ShmGuard};

const TOPICS: &[&str] = &["a", "a.b", "a.b.c", "b.x", "c"];
/// `None` is `Filter::all()`.
const FILTERS: &[Option<&str>] = &[None, Some("a.#"), Some("a.+"), Some("+.x"), Some("#"), Some("b.x")];
const GROUPS: &[&str] = &["g0", "g1"];
const LISTENERS: usize = 4;
const MAX_FRAME: usize = 1024;

#[derive(Arbitrary, Debug)]
enum StartAt {
    Newest,
    Oldest,
    Seq(u16),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Publish { topic: u8, len: u16 },
    Burst { topic: u8, len: u16, count: u8 },
    Claim { topic: u8, len: u16 },
    Commit,
    Abort,
    PublishBadTopic,
    PublishTooLarge,
    Subscribe { filter: u8, start: StartAt },
    Drop { sub: u8 },
    Recv { sub: u8, max: u8 },
    Join { group: u8, filter: u8, oldest: bool },
    Stats,
}

fn payload_for(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

fn filter_of(i: usize) -> Filter {
    FILTERS[i].map_or_else(Filter::all, Filter::topic)
}

fn filter_matches(i: usize, topic: usize) -> bool {
    FILTERS[i].is_none_or(|p| ref_pattern_match(p, TOPICS[topic].as_bytes()))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Pending,
    Committed,
    Aborted,
}

struct MFrame {
    topic: usize,
    len: usize,
    state: State,
}

/// What happened to the seqs a cursor walked past.
#[derive(Default, Debug, Clone, Copy)]
struct Walk {
    delivered: u64,
    missed: u64,
    aborted: u64,
    filtered: u64,
    below: u64,
}

struct MGroup {
    name: &'static str,
    filter: usize,
    next: u64,
    missed: u64,
    delivered: u64,
}

enum MCursor {
    Own { next: u64, skip_below: u64, origin: u64 },
    Member { group: usize },
}

struct MSub {
    filter: usize,
    cursor: MCursor,
    walk: Walk,
}

/// The exact model of the log.
struct Model {
    parts: u64,
    size: u64,
    tail_pos: u64,
    bases: Vec<u64>,
    frames: Vec<MFrame>,
    evicted: u64,
    aborted: u64,
    committed: u64,
    groups: Vec<MGroup>,
}

impl Model {
    fn tail_seq(&self) -> u64 {
        self.frames.len() as u64
    }
    fn first_term(&self) -> u64 {
        (self.tail_pos / self.size + 1).saturating_sub(self.parts)
    }
    fn oldest_seq(&self) -> u64 {
        self.bases[self.first_term() as usize]
    }
    /// Reserve a frame of `len` bytes; returns its seq.
    fn claim(&mut self, topic: usize, payload: usize) -> u64 {
        let len = shmbus::frame::frame_len(TOPICS[topic].len(), payload, false) as u64;
        if self.tail_pos % self.size + len + 8 > self.size {
            let next = self.tail_pos / self.size + 1;
            if let Some(e) = next.checked_sub(self.parts) {
                let e = e as usize;
                self.evicted += self.bases[e + 1] - self.bases[e];
            }
            assert_eq!(self.bases.len() as u64, next);
            self.bases.push(self.tail_seq());
            self.tail_pos = next * self.size;
        }
        self.tail_pos += len;
        self.frames.push(MFrame {
            topic,
            len: payload,
            state: State::Pending,
        });
        self.tail_seq() - 1
    }

    /// Advance a cursor at `next` to the next deliverable frame.
    fn step(&self, next: &mut u64, filter: usize, skip_below: u64, walk: &mut Walk) -> Option<u64> {
        let oldest = self.oldest_seq();
        if *next < oldest {
            walk.missed += oldest - *next;
            *next = oldest;
        }
        loop {
            let f = self.frames.get(*next as usize)?;
            if f.state == State::Pending {
                return None;
            }
            let seq = *next;
            *next += 1;
            if f.state == State::Aborted {
                walk.aborted += 1;
            } else if seq < skip_below {
                walk.below += 1;
            } else if !filter_matches(filter, f.topic) {
                walk.filtered += 1;
            } else {
                walk.delivered += 1;
                return Some(seq);
            }
        }
    }

    fn recv(&mut self, sub: &mut MSub) -> Option<u64> {
        match &mut sub.cursor {
            MCursor::Own { next, skip_below, .. } => {
                let (mut n, below) = (*next, *skip_below);
                let got = self.step(&mut n, sub.filter, below, &mut sub.walk);
                if let MCursor::Own { next, .. } = &mut sub.cursor {
                    *next = n;
                }
                got
            }
            MCursor::Member { group } => {
                let g = *group;
                let mut n = self.groups[g].next;
                let before = sub.walk;
                let got = self.step(&mut n, sub.filter, 0, &mut sub.walk);
                let grp = &mut self.groups[g];
                grp.next = n;
                grp.missed += sub.walk.missed - before.missed;
                grp.delivered += sub.walk.delivered - before.delivered;
                got
            }
        }
    }
}

fn check_frame(model: &Model, f: &Frame<'_>, want: u64) {
    assert_eq!(f.seq(), want, "delivered seq");
    let m = &model.frames[want as usize];
    assert_eq!(f.topic(), TOPICS[m.topic], "topic of seq {want}");
    assert_eq!(f.payload(), &payload_for(want, m.len)[..], "payload of seq {want}");
    assert_eq!(f.kind(), shmbus::Kind::Event);
}

fn recv_one(model: &mut Model, sub: &mut Subscriber, m: &mut MSub) -> bool {
    let want = model.recv(m);
    let got = sub.try_recv().expect("try_recv");
    match (got, want) {
        (None, None) => {}
        (Some(f), Some(w)) => check_frame(model, &f, w),
        (got, want) => panic!("try_recv gave {got:?}, model expects seq {want:?}"),
    }
    check_sub(model, sub, m);
    want.is_some()
}

fn check_sub(model: &Model, sub: &Subscriber, m: &MSub) {
    assert_eq!(sub.delivered(), m.walk.delivered, "delivered");
    assert_eq!(sub.missed(), m.walk.missed, "missed");
    assert_eq!(sub.abandoned(), 0, "abandoned");
    let next = match m.cursor {
        MCursor::Own { next, origin, .. } => {
            let w = m.walk;
            assert_eq!(
                w.delivered + w.missed + w.aborted + w.filtered + w.below,
                next - origin,
                "every seq accounted for"
            );
            next
        }
        MCursor::Member { group } => model.groups[group].next,
    };
    assert_eq!(sub.next_seq(), next, "next_seq");
    assert_eq!(sub.lag(), model.tail_seq() - next, "lag");
}

fn check_stats(bus: &Bus, model: &Model, oldest_seen: &mut u64, n_subs: usize) {
    let st = bus.stats();
    assert_eq!(st.next_seq, model.tail_seq(), "next_seq");
    assert_eq!(st.claimed, model.tail_seq(), "claimed");
    assert_eq!(st.oldest_seq, model.oldest_seq(), "oldest_seq");
    assert!(st.oldest_seq >= *oldest_seen, "oldest retained seq went backwards");
    *oldest_seen = st.oldest_seq;
    assert_eq!(st.evicted, model.evicted, "evicted");
    assert_eq!(st.aborted, model.aborted, "aborted");
    assert_eq!(st.published, model.committed, "published");
    assert_eq!(
        st.bytes_used,
        model.tail_pos - model.first_term() * model.size,
        "bytes_used"
    );
    assert!(st.bytes_used <= st.data_capacity, "bytes_used above capacity");
    assert_eq!(st.subscribers.len(), n_subs, "subscriber rows");
    for g in &model.groups {
        let row = st.groups.iter().find(|r| r.name == g.name).expect("group row");
        assert_eq!(
            (row.next_seq, row.missed, row.delivered),
            (g.next, g.missed, g.delivered),
            "group {}",
            g.name
        );
    }
}

/// Runs one input (see the module documentation).
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let keep: u8 = u.arbitrary().unwrap_or(0);
    let cfg = Config::default()
        .memory_limit(64 << 10)
        .keep_ratio([0.5, 0.75, 0.9, 0.99][usize::from(keep % 4)])
        .max_frame_size(MAX_FRAME as u32)
        .listener_limit(LISTENERS as u32)
        .producer_limit(2)
        .claim_timeout(Duration::from_secs(60));
    let name = unique_name("ops");
    let _guard = ShmGuard(name.clone());
    let bus = Bus::create(&name, &cfg).expect("create");
    let st = bus.stats();
    let mut model = Model {
        parts: st.partitions,
        size: st.data_capacity / st.partitions,
        tail_pos: 0,
        bases: vec![0],
        frames: Vec::new(),
        evicted: 0,
        aborted: 0,
        committed: 0,
        groups: Vec::new(),
    };
    assert!(st.data_capacity <= st.memory_limit);
    let mut oldest_seen = 0;
    let mut subs: Vec<(Subscriber, MSub)> = Vec::new();
    let mut claim: Option<Claim<'_>> = None;
    let mut n_ops = 0;
    while !u.is_empty() && n_ops < 300 {
        let Ok(op) = u.arbitrary::<Op>() else {
            break;
        };
        n_ops += 1;
        match op {
            Op::Publish { topic, len } | Op::Burst { topic, len, count: _ } if claim.is_some() => {
                let (topic, len) = (usize::from(topic) % TOPICS.len(), usize::from(len) % (MAX_FRAME + 1));
                let r = bus.publish(TOPICS[topic], &payload_for(0, len));
                assert!(
                    matches!(r, Err(Error::ClaimOutstanding)),
                    "publish with a claim outstanding: {r:?}"
                );
            }
            Op::Publish { topic, len } => publish(&bus, &mut model, topic, len),
            Op::Burst { topic, len, count } => {
                for i in 0..count % 32 {
                    publish(
                        &bus,
                        &mut model,
                        topic.wrapping_add(i),
                        len.wrapping_mul(u16::from(i) + 1),
                    );
                }
            }
            Op::Claim { topic, len } => {
                let (topic, len) = (usize::from(topic) % TOPICS.len(), usize::from(len) % (MAX_FRAME + 1));
                let r = bus.claim(TOPICS[topic], len);
                if claim.is_some() {
                    assert!(matches!(r, Err(Error::ClaimOutstanding)), "second claim");
                } else {
                    let mut c = r.expect("claim");
                    let seq = model.claim(topic, len);
                    assert_eq!(c.seq(), seq, "claimed seq");
                    assert!(c.payload_mut().iter().all(|&b| b == 0), "claimed payload is zeroed");
                    c.payload_mut().copy_from_slice(&payload_for(seq, len));
                    claim = Some(c);
                }
            }
            Op::Commit => {
                if let Some(c) = claim.take() {
                    let seq = c.commit();
                    model.frames[seq as usize].state = State::Committed;
                    model.committed += 1;
                }
            }
            Op::Abort => {
                if let Some(c) = claim.take() {
                    let seq = c.seq();
                    drop(c);
                    model.frames[seq as usize].state = State::Aborted;
                    model.aborted += 1;
                }
            }
            Op::PublishBadTopic => {
                let r = bus.publish("bad..topic", b"x");
                assert!(matches!(r, Err(Error::Filter(_))), "bad topic: {r:?}");
            }
            Op::PublishTooLarge => {
                let r = bus.publish("a", &[0; MAX_FRAME + 1]);
                assert!(matches!(r, Err(Error::TooLarge { .. })), "too large: {r:?}");
            }
            Op::Subscribe { filter, start } => {
                let filter = usize::from(filter) % FILTERS.len();
                let oldest = model.oldest_seq();
                let (start, cursor, missed) = match start {
                    StartAt::Newest => (Start::Newest, own(model.tail_seq(), 0, model.tail_seq()), 0),
                    StartAt::Oldest => (Start::Oldest, own(oldest, 0, oldest), 0),
                    StartAt::Seq(n) => {
                        let n = u64::from(n);
                        if n < oldest {
                            (Start::Seq(n), own(oldest, 0, n), oldest - n)
                        } else {
                            (Start::Seq(n), own(oldest, n, oldest), 0)
                        }
                    }
                };
                let opts = SubscribeOptions {
                    start,
                    ..Default::default()
                };
                let r = bus.subscribe_with(filter_of(filter), opts);
                if subs.len() == LISTENERS {
                    assert!(matches!(r, Err(Error::Limit { .. })), "subscriber table full: {r:?}");
                } else {
                    let walk = Walk {
                        missed,
                        ..Walk::default()
                    };
                    let m = MSub { filter, cursor, walk };
                    let s = r.expect("subscribe");
                    check_sub(&model, &s, &m);
                    subs.push((s, m));
                }
            }
            Op::Drop { sub } => {
                if !subs.is_empty() {
                    let i = usize::from(sub) % subs.len();
                    subs.remove(i);
                }
            }
            Op::Recv { sub, max } => {
                if !subs.is_empty() {
                    let i = usize::from(sub) % subs.len();
                    let (s, m) = &mut subs[i];
                    for _ in 0..max % 16 + 1 {
                        if !recv_one(&mut model, s, m) {
                            break;
                        }
                    }
                }
            }
            Op::Join { group, filter, oldest } => join(&bus, &mut model, &mut subs, group, filter, oldest),
            Op::Stats => {}
        }
        check_stats(&bus, &model, &mut oldest_seen, subs.len());
    }
    if let Some(c) = claim.take() {
        let seq = c.seq();
        drop(c);
        model.frames[seq as usize].state = State::Aborted;
        model.aborted += 1;
    }
    // Drain everybody: nothing may be left behind or delivered twice.
    for (s, m) in &mut subs {
        let mut n = 0;
        while recv_one(&mut model, s, m) {
            n += 1;
            assert!(n <= model.frames.len(), "endless delivery");
        }
        assert_eq!(s.next_seq(), model.tail_seq(), "a drained reader is at the tail");
    }
    check_stats(&bus, &model, &mut oldest_seen, subs.len());
}

fn own(next: u64, skip_below: u64, origin: u64) -> MCursor {
    MCursor::Own {
        next,
        skip_below,
        origin,
    }
}

fn publish(bus: &Bus, model: &mut Model, topic: u8, len: u16) {
    let (topic, len) = (usize::from(topic) % TOPICS.len(), usize::from(len) % (MAX_FRAME + 1));
    let seq = model.tail_seq();
    let got = bus.publish(TOPICS[topic], &payload_for(seq, len)).expect("publish");
    let want = model.claim(topic, len);
    assert_eq!(got, want, "published seq");
    model.frames[want as usize].state = State::Committed;
    model.committed += 1;
}

fn join(bus: &Bus, model: &mut Model, subs: &mut Vec<(Subscriber, MSub)>, group: u8, filter: u8, oldest: bool) {
    let name = GROUPS[usize::from(group) % GROUPS.len()];
    let filter = usize::from(filter) % FILTERS.len();
    let opts = SubscribeOptions {
        start: if oldest { Start::Oldest } else { Start::Newest },
        ..Default::default()
    };
    let r = bus.join_group_with(name, filter_of(filter), opts);
    let existing = model.groups.iter().position(|g| g.name == name);
    let index = match existing {
        Some(i) if model.groups[i].filter != filter => {
            assert!(
                matches!(r, Err(Error::GroupFilterMismatch { .. })),
                "filter mismatch: {r:?}"
            );
            return;
        }
        Some(i) => i,
        None => {
            // The group is created even if the subscriber table is full.
            let next = if oldest { model.oldest_seq() } else { model.tail_seq() };
            model.groups.push(MGroup {
                name,
                filter,
                next,
                missed: 0,
                delivered: 0,
            });
            model.groups.len() - 1
        }
    };
    if subs.len() == LISTENERS {
        assert!(matches!(r, Err(Error::Limit { .. })), "subscriber table full: {r:?}");
        return;
    }
    let m = MSub {
        filter,
        cursor: MCursor::Member { group: index },
        walk: Walk::default(),
    };
    let s = r.expect("join group");
    check_sub(model, &s, &m);
    subs.push((s, m));
}
