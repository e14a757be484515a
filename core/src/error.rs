//! The one error type of the crate; one variant per thing a caller can act on.

use crate::filter::FilterError;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bus name is not acceptable.
    #[error("invalid bus name {name:?}: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A configuration value is out of range.
    #[error("invalid config: {field} {reason}")]
    Config {
        /// Which field.
        field: &'static str,
        /// What range is allowed.
        reason: String,
    },
    /// No bus with this name exists.
    #[error("bus {name:?} not found")]
    NotFound {
        /// The bus name.
        name: String,
    },
    /// A bus with this name already exists.
    #[error("bus {name:?} already exists")]
    Exists {
        /// The bus name.
        name: String,
    },
    /// The segment is not a shmbus segment of this layout version, or it is corrupt.
    #[error("incompatible segment {name:?}: {reason}")]
    Incompatible {
        /// The bus name.
        name: String,
        /// What did not match.
        reason: String,
    },
    /// The segment's permissions do not allow this process in.
    #[error("permission denied for bus {name:?}")]
    PermissionDenied {
        /// The bus name.
        name: String,
    },
    /// The bus is full and its overflow policy is `Reject` or `Block`.
    #[error("bus is full")]
    Full,
    /// A frame is larger than `max_frame_size`.
    #[error("frame too large: {size} bytes, max_frame_size is {max}")]
    TooLarge {
        /// Requested payload size.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// A table in the segment is full.
    #[error("{what} limit reached ({limit})")]
    Limit {
        /// Which table.
        what: &'static str,
        /// Its size.
        limit: usize,
    },
    /// A topic, topic pattern or regex was rejected.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// This thread still holds an uncommitted claim on this bus.
    #[error("this thread holds an uncommitted claim on this bus; commit or drop it first")]
    ClaimOutstanding,
    /// Joining a group with a filter different from the group's.
    #[error("group {group:?} uses filter {existing}, not {requested}")]
    GroupFilterMismatch {
        /// Group name.
        group: String,
        /// The group's filter.
        existing: String,
        /// The filter asked for.
        requested: String,
    },
    /// A second producer in single-producer mode.
    #[error("bus is single-producer and another producer is active (pid {pid})")]
    ProducerConflict {
        /// The pid holding the producer role.
        pid: u32,
    },
    /// An operating-system call failed.
    #[error("{op}: {source}")]
    Io {
        /// What we were doing.
        op: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(op: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { op: op.into(), source }
    }
    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Error {
        Error::Config {
            field,
            reason: reason.into(),
        }
    }
}
