//! A snapshot of a bus: counters, geometry and the subscriber table.

/// One subscriber in [`Stats::subscribers`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriberStats {
    /// Owning process.
    pub pid: u32,
    /// Whether that process is still running.
    pub alive: bool,
    /// Group name, for group members.
    pub group: Option<String>,
    /// Filter summary.
    pub filter: String,
    /// Log position it will read next.
    pub position: u64,
    /// Seq it will read next.
    pub next_seq: u64,
    /// Frames published that it has not looked at yet.
    pub lag_frames: u64,
    /// Bytes of log between its position and the tail.
    pub lag_bytes: u64,
    /// Frames delivered.
    pub delivered: u64,
    /// Frames lost to eviction.
    pub missed: u64,
    /// Abandoned claims skipped.
    pub abandoned: u64,
    /// Frames dropped because their checksum did not match.
    pub corrupt: u64,
}

/// One consumer group in [`Stats::groups`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStats {
    /// Group name.
    pub name: String,
    /// The group's filter summary.
    pub filter: String,
    /// Live members.
    pub members: usize,
    /// Shared cursor position.
    pub position: u64,
    /// Seq of the next frame the group will hand out.
    pub next_seq: u64,
    /// Frames delivered to members.
    pub delivered: u64,
    /// Frames the group lost to eviction.
    pub missed: u64,
}

/// A producer slot in [`Stats::producers`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerStats {
    /// Owning process.
    pub pid: u32,
    /// Frames it published through this slot.
    pub published: u64,
}

/// Snapshot returned by [`crate::Bus::stats`].
///
/// ```
/// # let name = format!("doc-stats-{}", std::process::id());
/// use shmbus::{Bus, Config, Filter};
/// let bus = Bus::create(&name, &Config::default().memory_limit(1 << 20))?;
/// let _sub = bus.subscribe(Filter::topic("a.#"))?;
/// bus.publish("a.b", b"x")?;
/// let st = bus.stats();
/// assert_eq!((st.published, st.next_seq, st.evicted), (1, 1, 0));
/// assert_eq!(st.subscribers[0].filter, "topic:a.#");
/// assert_eq!(st.subscribers[0].lag_frames, 1);
/// # drop(_sub); Bus::remove(&name)?;
/// # Ok::<(), shmbus::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    /// Bus name.
    pub name: String,
    /// Frames committed by producers (including aborted claims' padding: no).
    pub published: u64,
    /// Seq numbers handed out (claims, including aborted and abandoned ones).
    pub claimed: u64,
    /// Frames dropped by eviction.
    pub evicted: u64,
    /// Publishes refused with `Full`.
    pub rejected: u64,
    /// Claims dropped without commit.
    pub aborted: u64,
    /// Claims whose producer died before committing.
    pub abandoned: u64,
    /// Bytes of log currently retained.
    pub bytes_used: u64,
    /// Bytes of the data region.
    pub data_capacity: u64,
    /// Size of the segment.
    pub memory_limit: u64,
    /// Configured keep ratio.
    pub keep_ratio: f64,
    /// Number of partitions (eviction granularity).
    pub partitions: u64,
    /// Seq of the oldest retained frame.
    pub oldest_seq: u64,
    /// Seq the next frame will get.
    pub next_seq: u64,
    /// Subscribers, including group members.
    pub subscribers: Vec<SubscriberStats>,
    /// Consumer groups.
    pub groups: Vec<GroupStats>,
    /// Producer slots in use.
    pub producers: Vec<ProducerStats>,
}
