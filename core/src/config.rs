//! Bus configuration, validated before anything touches the system.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::frame::{frame_len, MAX_TOPIC_LEN};

/// What `publish` does when the next frame does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Evict the oldest partition so that about `keep_ratio` of the data
    /// stays (the default). Publishing never blocks.
    #[default]
    Evict,
    /// Fail with [`Error::Full`] rather than evict frames a live subscriber
    /// has not read yet.
    Reject,
    /// Wait up to the timeout for the slowest live subscriber, then fail with
    /// [`Error::Full`].
    Block(Duration),
}

/// Configuration of a bus, fixed when the bus is created.
///
/// ```
/// use shmbus::{Config, Overflow};
/// let cfg = Config::default().memory_limit(8 << 20).keep_ratio(0.75).overflow(Overflow::Reject);
/// assert!(cfg.validate().is_ok());
/// assert!(Config::default().keep_ratio(1.5).validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub(crate) memory_limit: u64,
    pub(crate) keep_ratio: f64,
    pub(crate) max_frame_size: u32,
    pub(crate) listener_limit: u32,
    pub(crate) producer_limit: u32,
    pub(crate) overflow: Overflow,
    pub(crate) mode: u32,
    pub(crate) claim_timeout: Duration,
    pub(crate) checksum: bool,
    pub(crate) single_producer: bool,
}

/// Smallest accepted `memory_limit`.
pub const MIN_MEMORY_LIMIT: u64 = 64 << 10;
/// Largest accepted `memory_limit`.
pub const MAX_MEMORY_LIMIT: u64 = 1 << 40;
/// Largest accepted `max_frame_size`.
pub const MAX_FRAME_SIZE: u32 = 64 << 20;
/// Largest accepted `listener_limit` and `producer_limit`.
pub const MAX_TABLE: u32 = 4096;

impl Default for Config {
    fn default() -> Self {
        Config {
            memory_limit: 64 << 20,
            keep_ratio: 0.9,
            max_frame_size: 64 << 10,
            listener_limit: 64,
            producer_limit: 128,
            overflow: Overflow::Evict,
            mode: 0o600,
            claim_timeout: Duration::from_millis(100),
            checksum: false,
            single_producer: false,
        }
    }
}

impl Config {
    /// Cap on the whole segment, in bytes (default 64 MiB). The segment's
    /// memory is allocated when the bus is created, so a `/dev/shm` without
    /// room for it fails [`Bus::create`](crate::Bus::create) with an
    /// [`Error::Io`](crate::Error::Io), never a later publish.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = bytes;
        self
    }
    /// Fraction of the data kept by an eviction, in (0, 1) (default 0.9).
    pub fn keep_ratio(mut self, ratio: f64) -> Self {
        self.keep_ratio = ratio;
        self
    }
    /// Largest payload, in bytes (default 64 KiB).
    pub fn max_frame_size(mut self, bytes: u32) -> Self {
        self.max_frame_size = bytes;
        self
    }
    /// Size of the subscriber table (default 64); also bounds the groups.
    pub fn listener_limit(mut self, n: u32) -> Self {
        self.listener_limit = n;
        self
    }
    /// Size of the producer table: publishing threads at once (default 128).
    pub fn producer_limit(mut self, n: u32) -> Self {
        self.producer_limit = n;
        self
    }
    /// Overflow policy (default [`Overflow::Evict`]).
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }
    /// File mode of the segment (default `0o600`).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
    /// How long readers wait on a claimed but uncommitted frame before
    /// skipping it as abandoned (default 100 ms). A reader notices the claim
    /// at a wait checkpoint and skips it after a whole timeout more, so a
    /// dead producer's claim is skipped within one to two timeouts.
    pub fn claim_timeout(mut self, timeout: Duration) -> Self {
        self.claim_timeout = timeout;
        self
    }
    /// Per-frame CRC32C checksum (default off).
    pub fn checksum(mut self, on: bool) -> Self {
        self.checksum = on;
        self
    }
    /// Single-producer mode (default off).
    pub fn single_producer(mut self, on: bool) -> Self {
        self.single_producer = on;
        self
    }

    /// The configured overflow policy.
    pub fn get_overflow(&self) -> Overflow {
        self.overflow
    }
    /// The configured memory limit (for an opened bus: the segment size).
    pub fn get_memory_limit(&self) -> u64 {
        self.memory_limit
    }
    /// The configured keep ratio.
    pub fn get_keep_ratio(&self) -> f64 {
        self.keep_ratio
    }
    /// The configured largest payload.
    pub fn get_max_frame_size(&self) -> u32 {
        self.max_frame_size
    }
    /// The configured subscriber table size.
    pub fn get_listener_limit(&self) -> u32 {
        self.listener_limit
    }
    /// The configured producer table size.
    pub fn get_producer_limit(&self) -> u32 {
        self.producer_limit
    }
    /// The configured file mode.
    pub fn get_mode(&self) -> u32 {
        self.mode
    }
    /// The configured claim timeout.
    pub fn get_claim_timeout(&self) -> Duration {
        self.claim_timeout
    }
    /// Whether frames carry a checksum.
    pub fn get_checksum(&self) -> bool {
        self.checksum
    }
    /// Whether the bus is single-producer.
    pub fn get_single_producer(&self) -> bool {
        self.single_producer
    }

    /// Largest frame in the log, header and topic included.
    pub(crate) fn max_frame_len(&self) -> usize {
        frame_len(MAX_TOPIC_LEN, self.max_frame_size as usize, true)
    }

    /// Check every field; the error names the field and its allowed range.
    pub fn validate(&self) -> Result<()> {
        if !(self.keep_ratio > 0.0 && self.keep_ratio < 1.0) {
            return Err(Error::config(
                "keep_ratio",
                format!("must be in the open interval (0, 1), got {}", self.keep_ratio),
            ));
        }
        if self.max_frame_size == 0 || self.max_frame_size > MAX_FRAME_SIZE {
            return Err(Error::config(
                "max_frame_size",
                format!("must be in 1..={MAX_FRAME_SIZE} bytes, got {}", self.max_frame_size),
            ));
        }
        if self.listener_limit == 0 || self.listener_limit > MAX_TABLE {
            return Err(Error::config(
                "listener_limit",
                format!("must be in 1..={MAX_TABLE}, got {}", self.listener_limit),
            ));
        }
        if self.producer_limit == 0 || self.producer_limit > MAX_TABLE {
            return Err(Error::config(
                "producer_limit",
                format!("must be in 1..={MAX_TABLE}, got {}", self.producer_limit),
            ));
        }
        if self.mode > 0o777 {
            return Err(Error::config(
                "mode",
                format!("must be in 0..=0o777, got {:#o}", self.mode),
            ));
        }
        if self.mode & 0o600 != 0o600 {
            return Err(Error::config(
                "mode",
                format!("must give the owner read and write (0o600), got {:#o}", self.mode),
            ));
        }
        if self.claim_timeout < Duration::from_millis(1) || self.claim_timeout > Duration::from_secs(60) {
            return Err(Error::config(
                "claim_timeout",
                format!("must be in 1 ms..=60 s, got {:?}", self.claim_timeout),
            ));
        }
        if let Overflow::Block(t) = self.overflow {
            if t > Duration::from_secs(3600) {
                return Err(Error::config(
                    "overflow",
                    format!("block timeout must be at most 1 h, got {t:?}"),
                ));
            }
        }
        if self.memory_limit < MIN_MEMORY_LIMIT || self.memory_limit > MAX_MEMORY_LIMIT {
            return Err(Error::config(
                "memory_limit",
                format!(
                    "must be in {MIN_MEMORY_LIMIT}..={MAX_MEMORY_LIMIT} bytes, got {}",
                    self.memory_limit
                ),
            ));
        }
        if self.layout().is_none() {
            return Err(Error::config(
                "memory_limit",
                format!(
                    "{} bytes is too small for two partitions of frames up to {} bytes \
                     (max_frame_size {} + header + topic) plus the tables; raise memory_limit \
                     or lower max_frame_size/listener_limit/producer_limit",
                    self.memory_limit,
                    self.max_frame_len(),
                    self.max_frame_size
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn layout(&self) -> Option<crate::layout::Layout> {
        crate::layout::Layout::compute(
            usize::try_from(self.memory_limit).ok()?,
            self.keep_ratio,
            self.max_frame_len(),
            self.producer_limit as usize,
            self.listener_limit as usize,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(cfg: Config) -> &'static str {
        match cfg.validate() {
            Err(Error::Config { field, .. }) => field,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn default_config_is_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(field_of(Config::default().keep_ratio(0.0)), "keep_ratio");
        assert_eq!(field_of(Config::default().keep_ratio(1.0)), "keep_ratio");
        assert_eq!(field_of(Config::default().keep_ratio(f64::NAN)), "keep_ratio");
        assert_eq!(field_of(Config::default().max_frame_size(0)), "max_frame_size");
        assert_eq!(field_of(Config::default().listener_limit(0)), "listener_limit");
        assert_eq!(field_of(Config::default().producer_limit(100_000)), "producer_limit");
        assert_eq!(field_of(Config::default().mode(0o1777)), "mode");
        assert_eq!(field_of(Config::default().mode(0o400)), "mode");
        assert_eq!(field_of(Config::default().memory_limit(1000)), "memory_limit");
        assert_eq!(
            field_of(Config::default().claim_timeout(Duration::ZERO)),
            "claim_timeout"
        );
    }

    #[test]
    fn memory_limit_too_small_for_one_max_frame_is_refused() {
        let cfg = Config::default().memory_limit(256 << 10).max_frame_size(1 << 20);
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("memory_limit"), "{err}");
        assert!(err.contains("max_frame_size"), "{err}");
    }
}
