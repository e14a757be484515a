//! Where everything lives inside a segment.
//!
//! ```text
//! 0        SegmentHeader (static config, zerocopy)       one page
//!   256    ready word (u64)
//!   512    tail: (position, seq) as one 128-bit atomic   own cache lines
//!   640    wake futex word (u32), parked readers (u32)
//!   768    space futex word (u32), parked producers (u32)
//!   896    counters: rejected, evicted, abandoned, retired published, aborted
//! parts    P partition records (128 bytes each): state, base_seq, end
//! slots    producer slots (128 bytes each): owner pid, start time, active, published
//! subs     subscriber table (256 bytes per entry)
//! groups   consumer-group table (256 bytes per entry)
//! data     P partitions of S bytes, page aligned
//! ```
//!
//! A [`Layout`] is computed from a validated [`crate::Config`] when a segment
//! is created, and recomputed from the header (then compared) when one is
//! opened, so a segment whose header lies about its geometry is refused.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Magic bytes at offset 0 of every segment.
pub const MAGIC: [u8; 8] = *b"SHMBUS\0\0";
/// Bumped whenever the layout or the protocol changes incompatibly
/// (2: frames store their correlation ids only when one is set).
pub const LAYOUT_VERSION: u32 = 2;
/// Value of the ready word once the creator has initialised the segment.
pub const READY: u64 = 0x5348_4d42_5553_5244; // "SHMBUSRD"

pub(crate) const PAGE: usize = 4096;
pub(crate) const HEADER_LEN: usize = PAGE;
pub(crate) const OFF_READY: usize = 256;
pub(crate) const OFF_TAIL: usize = 512;
pub(crate) const OFF_WAKE: usize = 640;
pub(crate) const OFF_WAITERS: usize = 644;
pub(crate) const OFF_REJECTED: usize = 896;
pub(crate) const OFF_EVICTED: usize = 904;
pub(crate) const OFF_ABANDONED: usize = 912;
pub(crate) const OFF_RETIRED: usize = 920;
pub(crate) const OFF_ABORTED: usize = 928;
/// Serialises group creation (rare, not on any hot path): owner pid or 0.
pub(crate) const OFF_GROUP_LOCK: usize = 1024;

pub(crate) const PART_REC: usize = 128;
pub(crate) const SLOT_REC: usize = 128;
pub(crate) const SUB_REC: usize = 256;
pub(crate) const GROUP_REC: usize = 256;

/// Static part of the segment header, written once by the creator.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct SegmentHeader {
    /// `MAGIC`.
    pub magic: [u8; 8],
    /// `LAYOUT_VERSION` of the creator.
    pub layout_version: u32,
    /// Bytes reserved for the header.
    pub header_len: u32,
    /// Total bytes of the segment.
    pub segment_len: u64,
    /// `keep_ratio` as `f64` bits.
    pub keep_ratio_bits: u64,
    /// Largest payload.
    pub max_frame_size: u32,
    /// Subscriber (and group) table size.
    pub listener_limit: u32,
    /// Producer table size.
    pub producer_limit: u32,
    /// Number of partitions `P`.
    pub partitions: u32,
    /// Bytes per partition `S`.
    pub partition_size: u64,
    /// 0 evict, 1 reject, 2 block.
    pub overflow: u32,
    /// File mode the creator asked for.
    pub mode: u32,
    /// Timeout of `Overflow::Block`.
    pub block_timeout_ns: u64,
    /// How long readers wait on an uncommitted claim.
    pub claim_timeout_ns: u64,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Pid of the creator.
    pub creator_pid: u32,
    /// Creation time, ns since the Unix epoch.
    pub created_ns: u64,
    /// Offset of the partition records.
    pub off_parts: u64,
    /// Offset of the producer slots.
    pub off_slots: u64,
    /// Offset of the subscriber table.
    pub off_subs: u64,
    /// Offset of the group table.
    pub off_groups: u64,
    /// Offset of the data region.
    pub off_data: u64,
}

/// Header flag: frames carry a CRC32C checksum.
pub const FLAG_CHECKSUM: u32 = 1;
/// Header flag: single-producer mode.
pub const FLAG_SINGLE_PRODUCER: u32 = 2;

/// Geometry of a segment, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub parts: u64,
    pub part_size: u64,
    pub n_slots: usize,
    pub n_subs: usize,
    pub n_groups: usize,
    pub off_parts: usize,
    pub off_slots: usize,
    pub off_subs: usize,
    pub off_groups: usize,
    pub off_data: usize,
    pub segment_len: usize,
}

fn round_up(v: usize, a: usize) -> usize {
    v.div_ceil(a) * a
}

/// Number of partitions for a keep ratio: evicting one partition keeps
/// `(P-1)/P` of the data, so `P = 1 / (1 - keep_ratio)`, at least 2, at most 256.
pub(crate) fn partitions_for(keep_ratio: f64) -> u64 {
    let p = (1.0 / (1.0 - keep_ratio)).round();
    p.clamp(2.0, 256.0) as u64
}

impl Layout {
    /// Geometry for a segment of at most `memory_limit` bytes. Returns `None`
    /// if even two partitions cannot hold one frame of `max_frame_len` bytes.
    pub(crate) fn compute(
        memory_limit: usize,
        keep_ratio: f64,
        max_frame_len: usize,
        n_slots: usize,
        n_subs: usize,
    ) -> Option<Layout> {
        let mut parts = partitions_for(keep_ratio);
        loop {
            let probe = Layout::with(parts, 0, n_slots, n_subs);
            let data = memory_limit.checked_sub(probe.off_data)?;
            let part_size = (data / parts as usize) & !63;
            // A frame must fit strictly inside a partition (ring.rs, claim rule).
            if part_size > max_frame_len {
                return Some(Layout::with(parts, part_size as u64, n_slots, n_subs));
            }
            if parts == 2 {
                return None;
            }
            parts -= 1;
        }
    }

    /// Offsets for a given geometry (the single formula both `compute` and
    /// header validation use).
    pub(crate) fn with(parts: u64, part_size: u64, n_slots: usize, n_subs: usize) -> Layout {
        let n_groups = n_subs;
        let off_parts = HEADER_LEN;
        let off_slots = off_parts + parts as usize * PART_REC;
        let off_subs = off_slots + n_slots * SLOT_REC;
        let off_groups = off_subs + n_subs * SUB_REC;
        let off_data = round_up(off_groups + n_groups * GROUP_REC, PAGE);
        Layout {
            parts,
            part_size,
            n_slots,
            n_subs,
            n_groups,
            off_parts,
            off_slots,
            off_subs,
            off_groups,
            off_data,
            segment_len: off_data + parts as usize * part_size as usize,
        }
    }

    pub(crate) fn part(&self, i: u64) -> usize {
        self.off_parts + i as usize * PART_REC
    }
    pub(crate) fn slot(&self, i: usize) -> usize {
        self.off_slots + i * SLOT_REC
    }
    pub(crate) fn sub(&self, i: usize) -> usize {
        self.off_subs + i * SUB_REC
    }
    pub(crate) fn group(&self, i: usize) -> usize {
        self.off_groups + i * GROUP_REC
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_ratio_sets_partition_count() {
        assert_eq!(partitions_for(0.9), 10);
        assert_eq!(partitions_for(0.5), 2);
        assert_eq!(partitions_for(0.1), 2);
        assert_eq!(partitions_for(0.75), 4);
        assert_eq!(partitions_for(0.999999), 256);
    }

    #[test]
    fn layout_fits_in_memory_limit() {
        let l = Layout::compute(64 << 20, 0.9, 65536 + 400, 128, 64).unwrap();
        assert_eq!(l.parts, 10);
        assert!(l.segment_len <= 64 << 20);
        assert_eq!(l.off_data % PAGE, 0);
        assert!(l.part_size as usize > 65536 + 400);
    }

    #[test]
    fn layout_drops_partitions_before_refusing() {
        let l = Layout::compute(1 << 20, 0.99, 200_000, 16, 16).unwrap();
        assert!(l.parts < 100 && l.parts >= 2);
        assert!(Layout::compute(64 << 10, 0.9, 1 << 20, 16, 16).is_none());
    }
}
