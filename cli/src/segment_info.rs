//! What the command can learn about a bus from its shared-memory object
//! without the core API: file mode, owner and the static header (the full
//! configuration, which `shmbus::Config` does not expose field by field).

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use shmbus::layout::{SegmentHeader, FLAG_CHECKSUM, FLAG_SINGLE_PRODUCER, MAGIC};
use zerocopy::FromBytes;

/// Where bus `name` lives on Linux.
pub fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/shmbus.{name}"))
}

/// File facts about a bus object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Size of the object in bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
}

/// Stat the object behind bus `name`.
pub fn file_info(name: &str) -> std::io::Result<FileInfo> {
    let meta = fs::metadata(shm_path(name))?;
    Ok(FileInfo {
        size: meta.len(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
    })
}

/// Read the static header of bus `name`. Errors describe why it is not a
/// readable shmbus header (permissions, too small, bad magic).
pub fn read_header(name: &str) -> Result<SegmentHeader, String> {
    let mut file = fs::File::open(shm_path(name)).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::NotFound => "not found".to_string(),
        _ => e.to_string(),
    })?;
    let mut buf = vec![0u8; std::mem::size_of::<SegmentHeader>()];
    file.read_exact(&mut buf)
        .map_err(|_| "too small to be a bus".to_string())?;
    let header = SegmentHeader::read_from_bytes(&buf[..]).map_err(|_| "unreadable header".to_string())?;
    if header.magic != MAGIC {
        return Err("not a shmbus segment (bad magic)".into());
    }
    Ok(header)
}

/// The configuration recorded in a header, for display and JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfigView {
    /// Segment size in bytes.
    pub memory_limit: u64,
    /// Fraction kept on eviction.
    pub keep_ratio: f64,
    /// Largest payload in bytes.
    pub max_frame_size: u32,
    /// Subscriber table size.
    pub listener_limit: u32,
    /// Producer table size.
    pub producer_limit: u32,
    /// `evict`, `reject` or `block`.
    pub overflow: String,
    /// Timeout of the `block` policy, in milliseconds.
    pub block_timeout_ms: Option<f64>,
    /// Requested mode (octal string).
    pub mode: String,
    /// Claim timeout in milliseconds.
    pub claim_timeout_ms: f64,
    /// Per-frame checksums.
    pub checksum: bool,
    /// Single-producer mode.
    pub single_producer: bool,
    /// Pid of the creator.
    pub creator_pid: u32,
    /// Creation time, ns since the Unix epoch.
    pub created_ns: u64,
    /// Layout version.
    pub layout_version: u32,
}

impl ConfigView {
    /// Decode a header.
    pub fn from_header(h: &SegmentHeader) -> ConfigView {
        let overflow = match h.overflow {
            0 => "evict",
            1 => "reject",
            2 => "block",
            _ => "unknown",
        };
        let ms = |ns: u64| Duration::from_nanos(ns).as_secs_f64() * 1e3;
        ConfigView {
            memory_limit: h.segment_len,
            keep_ratio: f64::from_bits(h.keep_ratio_bits),
            max_frame_size: h.max_frame_size,
            listener_limit: h.listener_limit,
            producer_limit: h.producer_limit,
            overflow: overflow.to_string(),
            block_timeout_ms: (h.overflow == 2).then(|| ms(h.block_timeout_ns)),
            mode: format!("{:04o}", h.mode),
            claim_timeout_ms: ms(h.claim_timeout_ns),
            checksum: h.flags & FLAG_CHECKSUM != 0,
            single_producer: h.flags & FLAG_SINGLE_PRODUCER != 0,
            creator_pid: h.creator_pid,
            created_ns: h.created_ns,
            layout_version: h.layout_version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_of_a_missing_bus_says_not_found() {
        let err = read_header(&format!("cli-no-such-bus-{}", std::process::id())).unwrap_err();
        assert_eq!(err, "not found");
    }

    #[test]
    fn config_view_decodes_the_header_fields() {
        let h = SegmentHeader {
            magic: MAGIC,
            segment_len: 1 << 20,
            keep_ratio_bits: 0.75f64.to_bits(),
            max_frame_size: 4096,
            overflow: 2,
            block_timeout_ns: 5_000_000,
            mode: 0o640,
            claim_timeout_ns: 100_000_000,
            flags: FLAG_CHECKSUM,
            ..Default::default()
        };
        let v = ConfigView::from_header(&h);
        assert_eq!(v.overflow, "block");
        assert_eq!(v.block_timeout_ms, Some(5.0));
        assert_eq!(v.mode, "0640");
        assert_eq!(v.claim_timeout_ms, 100.0);
        assert!(v.checksum && !v.single_producer);
        assert_eq!(v.keep_ratio, 0.75);
    }
}
