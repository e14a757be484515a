//! Plain C structs and enums: configuration, metadata, frames, options, stats.
//!
//! Enum-valued fields of structs the caller fills in (`shmbus_config_t`,
//! `shmbus_meta_t`, `shmbus_subscribe_options_t`) are declared `int` so that
//! an out-of-range value is reported as an error rather than being undefined
//! behaviour; structs the library fills in use the enum types.

use std::ffi::{c_char, c_int, c_void};
use std::time::Duration;

use shmbus_core::{Config, EventType, Kind, Meta, Overflow, Start, SubscribeOptions, WaitStrategy};

use crate::status::shmbus_status_t::{SHMBUS_INVALID_ARGUMENT, SHMBUS_INVALID_CONFIG};
use crate::status::{ffi_boundary, static_cstr, Failure};

/// Longest topic, in bytes.
pub const SHMBUS_MAX_TOPIC_LEN: usize = 255;
/// Longest bus name, in bytes.
pub const SHMBUS_MAX_NAME_LEN: usize = 200;
/// Longest consumer-group name, in bytes.
pub const SHMBUS_MAX_GROUP_LEN: usize = 64;

/// What a frame carries. Same values and lower-case names
/// (`shmbus_kind_str`) as Rust's `shmbus::Kind`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmbus_kind_t {
    /// `"padding"`: an aborted claim. Reserved: never delivered, refused by publish.
    SHMBUS_KIND_PADDING = 0,
    /// `"event"`: a domain event (the default).
    SHMBUS_KIND_EVENT = 1,
    /// `"log"`: a log record.
    SHMBUS_KIND_LOG = 2,
    /// `"alert"`: an alert.
    SHMBUS_KIND_ALERT = 3,
    /// `"control"`: control traffic between participants.
    SHMBUS_KIND_CONTROL = 4,
}

/// Event type of a frame. Same values and lower-case names
/// (`shmbus_event_type_str`) as Rust's `shmbus::EventType`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmbus_event_type_t {
    /// `"other"`: not an object event, or unspecified (the default).
    SHMBUS_EVENT_OTHER = 0,
    /// `"new"`: an object was created.
    SHMBUS_EVENT_NEW = 1,
    /// `"update"`: an object was updated.
    SHMBUS_EVENT_UPDATE = 2,
    /// `"delete"`: an object was deleted.
    SHMBUS_EVENT_DELETE = 3,
}

/// What publishing does when the next frame does not fit (`shmbus_config_t.overflow`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmbus_overflow_t {
    /// Evict the oldest partition so that about `keep_ratio` of the data
    /// stays (the default). Publishing never blocks.
    SHMBUS_OVERFLOW_EVICT = 0,
    /// Fail with `SHMBUS_FULL` rather than evict frames a live subscriber has not read.
    SHMBUS_OVERFLOW_REJECT = 1,
    /// Wait up to `block_timeout_ms` for the slowest live subscriber, then fail with `SHMBUS_FULL`.
    SHMBUS_OVERFLOW_BLOCK = 2,
}

/// Where a new subscriber starts reading (`shmbus_subscribe_options_t.start`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmbus_start_t {
    /// Only frames published from now on (the default).
    SHMBUS_START_NEWEST = 0,
    /// The oldest frame still retained.
    SHMBUS_START_OLDEST = 1,
    /// The frame with seq `start_seq` (or the oldest retained one if it was
    /// evicted, counting the evicted ones as missed).
    SHMBUS_START_SEQ = 2,
}

/// How a subscriber waits in `shmbus_recv` (`shmbus_subscribe_options_t.wait`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmbus_wait_t {
    /// Busy-poll for `spin_us` microseconds, then sleep on a futex (the default, 50 us).
    SHMBUS_WAIT_SPIN_THEN_PARK = 0,
    /// Busy-poll: lowest latency, burns a core while idle.
    SHMBUS_WAIT_SPIN = 1,
    /// Sleep at once: no CPU while idle, a wake-up costs tens of microseconds.
    SHMBUS_WAIT_PARK = 2,
}

/// How the filter text of `shmbus_subscribe_with`/`shmbus_join_group_with`
/// is read (`shmbus_subscribe_options_t.filter`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmbus_filter_t {
    /// An MQTT-style topic pattern: levels separated by `.`, `+` matches one
    /// level, a final `#` matches any number of trailing levels (the default).
    SHMBUS_FILTER_TOPIC = 0,
    /// A regex anchored at the start of the topic (Python `re.match` semantics).
    SHMBUS_FILTER_REGEX = 1,
}

/// Configuration of a new bus. Start from `shmbus_config_default()` and
/// change fields; the library checks every field and reports the first bad
/// one with `SHMBUS_INVALID_CONFIG`, naming it in `shmbus_last_error()`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct shmbus_config_t {
    /// Cap on the whole segment, in bytes (default 64 MiB; 64 KiB to 1 TiB).
    /// Allocated when the bus is created: without room for it in /dev/shm,
    /// `shmbus_create` fails with `SHMBUS_IO`, never a later publish.
    pub memory_limit: u64,
    /// Fraction of the data kept by an eviction, in the open interval (0, 1) (default 0.9).
    pub keep_ratio: f64,
    /// Largest payload, in bytes (default 64 KiB; at most 64 MiB).
    pub max_frame_size: u32,
    /// Size of the subscriber table (default 64; 1 to 4096); also bounds the groups.
    pub listener_limit: u32,
    /// Size of the producer table: threads publishing at once (default 128; 1 to 4096).
    pub producer_limit: u32,
    /// A `shmbus_overflow_t` (default `SHMBUS_OVERFLOW_EVICT`).
    pub overflow: c_int,
    /// For `SHMBUS_OVERFLOW_BLOCK`: how long a publish waits, in ms (default 1000; at most one hour).
    pub block_timeout_ms: u32,
    /// File mode of the segment (default 0600; must include 0600).
    pub mode: u32,
    /// How long readers wait on a claimed but uncommitted frame before
    /// skipping it as abandoned, in ms (default 100; 1 to 60000).
    pub claim_timeout_ms: u32,
    /// Per-frame CRC32C checksum (default false).
    pub checksum: bool,
    /// Single-producer mode (default false).
    pub single_producer: bool,
}

/// Metadata of a frame for `shmbus_publish_with` and `shmbus_claim_with`.
/// Start from `shmbus_meta_default()`: an all-zero struct has kind
/// `SHMBUS_KIND_PADDING`, which publishing refuses.
///
/// Correlation ids are 128-bit numbers stored as 16 bytes, least significant
/// byte first (little-endian), exactly as in the frame header; all zero means
/// "none". Rust's `Meta::root_id(9)` is `root_id[0] = 9` here.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct shmbus_meta_t {
    /// A `shmbus_kind_t` other than `SHMBUS_KIND_PADDING` (default `SHMBUS_KIND_EVENT`).
    pub kind: c_int,
    /// A `shmbus_event_type_t` (default `SHMBUS_EVENT_OTHER`).
    pub event_type: c_int,
    /// This frame's correlation id, little-endian.
    pub correlation_id: [u8; 16],
    /// The id of the frame that caused this one, little-endian.
    pub parent_id: [u8; 16],
    /// The id of the first frame of the chain, little-endian.
    pub root_id: [u8; 16],
}

/// One payload of `shmbus_publish_many`: `len` bytes at `data` (`data` may
/// be NULL when `len` is 0).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmbus_payload_t {
    /// The bytes.
    pub data: *const c_void,
    /// How many.
    pub len: usize,
}

/// A received frame, filled in by `shmbus_recv`.
///
/// `topic` and `payload` point into the subscriber's private buffer (the
/// core copies each frame out of shared memory before validating it, so the
/// bytes can never change or be torn under you). They are valid until the
/// next call on that subscriber or its close; copy them to keep them longer.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmbus_frame_t {
    /// The topic, NUL-terminated (UTF-8, no embedded NUL).
    pub topic: *const c_char,
    /// Length of `topic` in bytes, without the NUL.
    pub topic_len: usize,
    /// The payload bytes (not NUL-terminated; never NULL, even when empty).
    pub payload: *const u8,
    /// Length of `payload` in bytes.
    pub payload_len: usize,
    /// Global sequence number of the frame in its bus.
    pub seq: u64,
    /// Publish time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Process id of the publisher.
    pub producer: u32,
    /// Frame kind.
    pub kind: shmbus_kind_t,
    /// Event type.
    pub event_type: shmbus_event_type_t,
    /// Correlation id, little-endian (see `shmbus_meta_t`).
    pub correlation_id: [u8; 16],
    /// Parent id, little-endian.
    pub parent_id: [u8; 16],
    /// Root id, little-endian.
    pub root_id: [u8; 16],
}

/// Options for `shmbus_subscribe_with` and `shmbus_join_group_with`. Start
/// from `shmbus_subscribe_options_default()`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct shmbus_subscribe_options_t {
    /// A `shmbus_filter_t`: how the filter text is read (default `SHMBUS_FILTER_TOPIC`).
    pub filter: c_int,
    /// A `shmbus_start_t` (default `SHMBUS_START_NEWEST`). For a group it
    /// only applies when the call creates the group, and `SHMBUS_START_SEQ`
    /// starts a new group at the oldest retained frame.
    pub start: c_int,
    /// The first seq to read for `SHMBUS_START_SEQ`.
    pub start_seq: u64,
    /// A `shmbus_wait_t` (default `SHMBUS_WAIT_SPIN_THEN_PARK`).
    pub wait: c_int,
    /// Busy-poll budget for `SHMBUS_WAIT_SPIN_THEN_PARK`, in us (default 50).
    pub spin_us: u32,
}

/// A snapshot of a bus's counters and geometry, filled in by `shmbus_stats`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct shmbus_stats_t {
    /// Frames committed by producers.
    pub published: u64,
    /// Seq numbers handed out (claims, including aborted and abandoned ones).
    pub claimed: u64,
    /// Frames dropped by eviction.
    pub evicted: u64,
    /// Publishes refused with `SHMBUS_FULL`.
    pub rejected: u64,
    /// Claims aborted without commit.
    pub aborted: u64,
    /// Claims whose producer died before committing.
    pub abandoned: u64,
    /// Bytes of log currently retained.
    pub bytes_used: u64,
    /// Bytes of the data region.
    pub data_capacity: u64,
    /// Size of the segment, in bytes.
    pub memory_limit: u64,
    /// Configured keep ratio.
    pub keep_ratio: f64,
    /// Number of partitions (eviction granularity).
    pub partitions: u64,
    /// Seq of the oldest retained frame.
    pub oldest_seq: u64,
    /// Seq the next frame will get.
    pub next_seq: u64,
    /// Entries in the subscriber table (group members included, dead ones not yet reaped included).
    pub subscribers: u32,
    /// Subscribers whose process is alive.
    pub subscribers_alive: u32,
    /// Consumer groups.
    pub groups: u32,
    /// Producer slots in use.
    pub producers: u32,
}

fn ms(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

fn millis_u32(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn bad_enum(field: &str, value: c_int, allowed: &str) -> Failure {
    Failure::new(
        SHMBUS_INVALID_ARGUMENT,
        format!("field `{field}` is {value}, not one of {allowed}"),
    )
}

impl shmbus_config_t {
    /// The Rust config, validated.
    pub(crate) fn to_rust(self) -> Result<Config, Failure> {
        let overflow = match self.overflow {
            0 => Overflow::Evict,
            1 => Overflow::Reject,
            2 => Overflow::Block(ms(self.block_timeout_ms)),
            v => {
                return Err(Failure::new(
                    SHMBUS_INVALID_CONFIG,
                    format!("invalid config: overflow must be a shmbus_overflow_t (0..=2), got {v}"),
                ))
            }
        };
        let cfg = Config::default()
            .memory_limit(self.memory_limit)
            .keep_ratio(self.keep_ratio)
            .max_frame_size(self.max_frame_size)
            .listener_limit(self.listener_limit)
            .producer_limit(self.producer_limit)
            .overflow(overflow)
            .mode(self.mode)
            .claim_timeout(ms(self.claim_timeout_ms))
            .checksum(self.checksum)
            .single_producer(self.single_producer);
        cfg.validate()?;
        Ok(cfg)
    }
}

impl Default for shmbus_config_t {
    fn default() -> Self {
        // The core's defaults are private fields; mirror them and check the
        // mirror in a test.
        shmbus_config_t {
            memory_limit: 64 << 20,
            keep_ratio: 0.9,
            max_frame_size: 64 << 10,
            listener_limit: 64,
            producer_limit: 128,
            overflow: shmbus_overflow_t::SHMBUS_OVERFLOW_EVICT as c_int,
            block_timeout_ms: 1000,
            mode: 0o600,
            claim_timeout_ms: millis_u32(Duration::from_millis(100)),
            checksum: false,
            single_producer: false,
        }
    }
}

impl Default for shmbus_meta_t {
    fn default() -> Self {
        shmbus_meta_t {
            kind: shmbus_kind_t::SHMBUS_KIND_EVENT as c_int,
            event_type: shmbus_event_type_t::SHMBUS_EVENT_OTHER as c_int,
            correlation_id: [0; 16],
            parent_id: [0; 16],
            root_id: [0; 16],
        }
    }
}

impl shmbus_meta_t {
    /// The Rust metadata; refuses unknown values and the reserved padding kind.
    pub(crate) fn to_rust(self) -> Result<Meta, Failure> {
        let kind = match self.kind {
            1 => Kind::Event,
            2 => Kind::Log,
            3 => Kind::Alert,
            4 => Kind::Control,
            0 => {
                return Err(Failure::new(
                    SHMBUS_INVALID_ARGUMENT,
                    "field `kind` is SHMBUS_KIND_PADDING, which is reserved for aborted claims \
                     (start from shmbus_meta_default())",
                ))
            }
            v => return Err(bad_enum("kind", v, "SHMBUS_KIND_EVENT/LOG/ALERT/CONTROL (1..=4)")),
        };
        let event_type = match self.event_type {
            0 => EventType::Other,
            1 => EventType::New,
            2 => EventType::Update,
            3 => EventType::Delete,
            v => {
                return Err(bad_enum(
                    "event_type",
                    v,
                    "SHMBUS_EVENT_OTHER/NEW/UPDATE/DELETE (0..=3)",
                ))
            }
        };
        Ok(Meta::default()
            .kind(kind)
            .event_type(event_type)
            .correlation_id(u128::from_le_bytes(self.correlation_id))
            .parent_id(u128::from_le_bytes(self.parent_id))
            .root_id(u128::from_le_bytes(self.root_id)))
    }
}

impl From<Kind> for shmbus_kind_t {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Padding => shmbus_kind_t::SHMBUS_KIND_PADDING,
            Kind::Event => shmbus_kind_t::SHMBUS_KIND_EVENT,
            Kind::Log => shmbus_kind_t::SHMBUS_KIND_LOG,
            Kind::Alert => shmbus_kind_t::SHMBUS_KIND_ALERT,
            Kind::Control => shmbus_kind_t::SHMBUS_KIND_CONTROL,
        }
    }
}

impl From<EventType> for shmbus_event_type_t {
    fn from(e: EventType) -> Self {
        match e {
            EventType::Other => shmbus_event_type_t::SHMBUS_EVENT_OTHER,
            EventType::New => shmbus_event_type_t::SHMBUS_EVENT_NEW,
            EventType::Update => shmbus_event_type_t::SHMBUS_EVENT_UPDATE,
            EventType::Delete => shmbus_event_type_t::SHMBUS_EVENT_DELETE,
        }
    }
}

impl Default for shmbus_subscribe_options_t {
    fn default() -> Self {
        shmbus_subscribe_options_t {
            filter: shmbus_filter_t::SHMBUS_FILTER_TOPIC as c_int,
            start: shmbus_start_t::SHMBUS_START_NEWEST as c_int,
            start_seq: 0,
            wait: shmbus_wait_t::SHMBUS_WAIT_SPIN_THEN_PARK as c_int,
            spin_us: 50,
        }
    }
}

/// Which filter constructor the options ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FilterKind {
    Topic,
    Regex,
}

impl shmbus_subscribe_options_t {
    /// The filter kind and the Rust options; refuses unknown enum values.
    pub(crate) fn to_rust(self) -> Result<(FilterKind, SubscribeOptions), Failure> {
        let filter = match self.filter {
            0 => FilterKind::Topic,
            1 => FilterKind::Regex,
            v => return Err(bad_enum("filter", v, "SHMBUS_FILTER_TOPIC/REGEX (0..=1)")),
        };
        let start = match self.start {
            0 => Start::Newest,
            1 => Start::Oldest,
            2 => Start::Seq(self.start_seq),
            v => return Err(bad_enum("start", v, "SHMBUS_START_NEWEST/OLDEST/SEQ (0..=2)")),
        };
        let wait = match self.wait {
            0 => WaitStrategy::SpinThenPark(Duration::from_micros(u64::from(self.spin_us))),
            1 => WaitStrategy::Spin,
            2 => WaitStrategy::Park,
            v => return Err(bad_enum("wait", v, "SHMBUS_WAIT_SPIN_THEN_PARK/SPIN/PARK (0..=2)")),
        };
        Ok((filter, SubscribeOptions { start, wait }))
    }
}

/// The default configuration (the same defaults as Rust's `Config::default()`):
/// 64 MiB, keep ratio 0.9, 64 KiB frames, 64 subscribers, 128 producers,
/// evict on overflow, mode 0600, 100 ms claim timeout, no checksum, multi-producer.
#[no_mangle]
pub extern "C" fn shmbus_config_default() -> shmbus_config_t {
    shmbus_config_t::default()
}

/// Default metadata: kind `SHMBUS_KIND_EVENT`, event type
/// `SHMBUS_EVENT_OTHER`, no correlation ids (what `shmbus_publish` uses).
#[no_mangle]
pub extern "C" fn shmbus_meta_default() -> shmbus_meta_t {
    shmbus_meta_t::default()
}

/// Default subscribe options: topic pattern, start at the newest frame,
/// spin 50 us then park.
#[no_mangle]
pub extern "C" fn shmbus_subscribe_options_default() -> shmbus_subscribe_options_t {
    shmbus_subscribe_options_t::default()
}

/// The lower-case name of a kind (`"event"`, `"log"`, `"alert"`,
/// `"control"`, `"padding"`), the same as in Rust and Python; NULL if `kind`
/// is not a `shmbus_kind_t`. The string lives forever.
#[no_mangle]
pub extern "C" fn shmbus_kind_str(kind: c_int) -> *const c_char {
    ffi_boundary!("shmbus_kind_str", default = std::ptr::null(), {
        let name: &'static [u8] = match kind {
            0 => b"padding\0",
            1 => b"event\0",
            2 => b"log\0",
            3 => b"alert\0",
            4 => b"control\0",
            _ => return Ok(std::ptr::null()),
        };
        Ok(static_cstr(name))
    })
}

/// The lower-case name of an event type (`"other"`, `"new"`, `"update"`,
/// `"delete"`), the same as in Rust and Python; NULL if `event_type` is not
/// a `shmbus_event_type_t`. The string lives forever.
#[no_mangle]
pub extern "C" fn shmbus_event_type_str(event_type: c_int) -> *const c_char {
    ffi_boundary!("shmbus_event_type_str", default = std::ptr::null(), {
        let name: &'static [u8] = match event_type {
            0 => b"other\0",
            1 => b"new\0",
            2 => b"update\0",
            3 => b"delete\0",
            _ => return Ok(std::ptr::null()),
        };
        Ok(static_cstr(name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn config_default_mirrors_the_core_default() {
        let c = shmbus_config_default().to_rust().unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn constants_mirror_the_core() {
        assert_eq!(SHMBUS_MAX_TOPIC_LEN, shmbus_core::frame::MAX_TOPIC_LEN);
        assert_eq!(SHMBUS_MAX_NAME_LEN, shmbus_core::MAX_NAME_LEN);
        assert!(shmbus_core::validate_name(&"g".repeat(SHMBUS_MAX_NAME_LEN)).is_ok());
    }

    #[test]
    fn names_match_the_rust_names() {
        for k in [Kind::Padding, Kind::Event, Kind::Log, Kind::Alert, Kind::Control] {
            let c = shmbus_kind_t::from(k);
            // SAFETY: a known kind gives a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(shmbus_kind_str(c as c_int)) };
            assert_eq!(name.to_str().unwrap(), k.as_str());
            assert_eq!(c as u8, k as u8);
        }
        for e in [EventType::Other, EventType::New, EventType::Update, EventType::Delete] {
            let c = shmbus_event_type_t::from(e);
            // SAFETY: as above.
            let name = unsafe { CStr::from_ptr(shmbus_event_type_str(c as c_int)) };
            assert_eq!(name.to_str().unwrap(), e.as_str());
            assert_eq!(c as u8, e as u8);
        }
        assert!(shmbus_kind_str(5).is_null());
        assert!(shmbus_event_type_str(-1).is_null());
    }

    #[test]
    fn meta_converts_ids_little_endian_and_refuses_bad_values() {
        let mut m = shmbus_meta_default();
        m.root_id[0] = 9;
        m.correlation_id[15] = 1;
        let r = m.to_rust().unwrap();
        assert_eq!(r.correlation.root, 9);
        assert_eq!(r.correlation.id, 1u128 << 120);
        m.kind = 0;
        assert_eq!(m.to_rust().unwrap_err().status, SHMBUS_INVALID_ARGUMENT);
        m.kind = 1;
        m.event_type = 4;
        assert_eq!(m.to_rust().unwrap_err().status, SHMBUS_INVALID_ARGUMENT);
    }

    #[test]
    fn options_convert() {
        let mut o = shmbus_subscribe_options_default();
        assert_eq!(o.to_rust().unwrap().1, SubscribeOptions::default());
        o.start = 2;
        o.start_seq = 5;
        o.wait = 2;
        o.filter = 1;
        let (f, r) = o.to_rust().unwrap();
        assert_eq!(f, FilterKind::Regex);
        assert_eq!((r.start, r.wait), (Start::Seq(5), WaitStrategy::Park));
        o.wait = 3;
        assert!(o.to_rust().is_err());
    }
}
