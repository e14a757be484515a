//! The fixed layout of one frame in the data region, and the types that
//! describe a frame to users.
//!
//! ```text
//! +---------------------------+ 0
//! | FrameHeader (96 bytes)    |  commit word first, written last (Release)
//! +---------------------------+ 96
//! | topic (topic_len bytes)   |  UTF-8, at most 255 bytes
//! | payload (payload_len)     |
//! | zero padding to 8 bytes   |
//! +---------------------------+ total_len (multiple of 8)
//! ```
//!
//! Every field is read back from shared memory as untrusted bytes and checked
//! by [`FrameHeader::validate`] before use.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of [`FrameHeader`] in bytes.
pub const HEADER_LEN: usize = std::mem::size_of::<FrameHeader>();
/// Longest topic, in bytes.
pub const MAX_TOPIC_LEN: usize = 255;
/// Frames start at multiples of this many bytes.
pub const FRAME_ALIGN: usize = 8;

/// The `#[repr(C)]` header in front of every frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct FrameHeader {
    /// `(tag << 32) | total_len`; written last with `Release` (see ring.rs).
    pub commit: u64,
    /// Absolute log position of this frame (checked by readers).
    pub position: u64,
    /// Global frame sequence number.
    pub seq: u64,
    /// Nanoseconds since the Unix epoch, set at publish.
    pub timestamp_ns: u64,
    /// Correlation id (0 = none), little-endian.
    pub correlation_id: [u8; 16],
    /// Parent id (0 = none), little-endian.
    pub parent_id: [u8; 16],
    /// Root id (0 = none), little-endian.
    pub root_id: [u8; 16],
    /// Process id of the publisher.
    pub producer: u32,
    /// Payload length in bytes.
    pub payload_len: u32,
    /// [`Kind`] as a byte.
    pub kind: u8,
    /// [`EventType`] as a byte.
    pub event_type: u8,
    /// Topic length in bytes.
    pub topic_len: u8,
    /// Reserved flags (bit 0: checksum present).
    pub flags: u8,
    /// CRC32C of header (with commit and checksum zeroed) and body, if flag bit 0.
    pub checksum: u32,
}

const _: () = assert!(HEADER_LEN == 96);

/// Total bytes a frame with this topic and payload occupies in the log.
#[inline]
pub const fn frame_len(topic_len: usize, payload_len: usize) -> usize {
    (HEADER_LEN + topic_len + payload_len + FRAME_ALIGN - 1) & !(FRAME_ALIGN - 1)
}

impl FrameHeader {
    /// The header's bytes after the commit word, as the eleven 8-byte words
    /// they occupy in memory (native byte order, exactly the struct's
    /// layout). A producer stores these words into the segment one by one:
    /// copying the struct with `memcpy` made wide loads of a header just
    /// built with narrow stores, which the CPU cannot forward, and every
    /// publish stalled on it.
    #[inline(always)]
    pub(crate) fn body_words(&self) -> [u64; HEADER_LEN / 8 - 1] {
        fn two<const A: usize, const B: usize>(a: [u8; A], b: [u8; B]) -> u64 {
            let mut w = [0u8; 8];
            w[..A].copy_from_slice(&a);
            w[A..A + B].copy_from_slice(&b);
            u64::from_ne_bytes(w)
        }
        let half = |id: &[u8; 16], i: usize| u64::from_ne_bytes(id[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let flags = [self.kind, self.event_type, self.topic_len, self.flags];
        [
            self.position,
            self.seq,
            self.timestamp_ns,
            half(&self.correlation_id, 0),
            half(&self.correlation_id, 1),
            half(&self.parent_id, 0),
            half(&self.parent_id, 1),
            half(&self.root_id, 0),
            half(&self.root_id, 1),
            two(self.producer.to_ne_bytes(), self.payload_len.to_ne_bytes()),
            two(flags, self.checksum.to_ne_bytes()),
        ]
    }

    /// Check that the header describes a frame of `total_len` bytes at
    /// `position`; returns a static reason when it does not.
    pub fn validate(&self, position: u64, total_len: usize) -> Result<(), &'static str> {
        if self.position != position {
            return Err("frame position does not match its place in the log");
        }
        let need = frame_len(self.topic_len as usize, self.payload_len as usize);
        if need != total_len {
            return Err("frame lengths are inconsistent");
        }
        if Kind::from_u8(self.kind).is_none() {
            return Err("unknown frame kind");
        }
        if EventType::from_u8(self.event_type).is_none() {
            return Err("unknown event type");
        }
        Ok(())
    }
}

/// A reader's private copy of one frame, 8-byte aligned so that its header
/// can be used in place ([`FrameBuf::header`]): readers copy a frame out of
/// the segment once and validate, match and hand it out from here, never
/// copying the header again.
///
/// Invariant: `words` always holds at least a header's worth of bytes, so
/// [`FrameBuf::header`] needs no check (it is meaningful only after a frame
/// was read and validated into the buffer).
#[derive(Clone, Debug)]
pub(crate) struct FrameBuf {
    words: Vec<u64>,
    len: usize,
}

impl Default for FrameBuf {
    fn default() -> FrameBuf {
        FrameBuf::with_capacity(0)
    }
}

impl FrameBuf {
    /// An empty buffer with room for `bytes` bytes.
    pub(crate) fn with_capacity(bytes: usize) -> FrameBuf {
        let mut words = Vec::with_capacity(bytes.max(HEADER_LEN).div_ceil(8));
        words.resize(HEADER_LEN / 8, 0);
        FrameBuf { words, len: 0 }
    }

    /// Make the buffer hold a frame of `len` bytes (bytes never written
    /// before are zero) and return at least `room` bytes of it: more than
    /// `len` when `room` is larger, the bytes past `len` being scratch, never
    /// part of the frame.
    #[inline]
    pub(crate) fn fill_room(&mut self, len: usize, room: usize) -> &mut [u8] {
        let bytes = len.max(room);
        let words = bytes.div_ceil(8);
        if self.words.len() < words {
            self.words.resize(words, 0);
        }
        self.len = len;
        &mut zerocopy::IntoBytes::as_mut_bytes(&mut self.words[..])[..bytes]
    }

    /// The bytes of the frame.
    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        &zerocopy::IntoBytes::as_bytes(&self.words[..])[..self.len]
    }

    /// The header at the front, in place.
    #[inline(always)]
    pub(crate) fn header(&self) -> &FrameHeader {
        const _: () = assert!(HEADER_LEN % 8 == 0 && std::mem::align_of::<FrameHeader>() <= 8);
        debug_assert!(self.words.len() * 8 >= HEADER_LEN);
        // SAFETY: `words` holds at least HEADER_LEN initialized bytes (the
        // invariant above: created with that many, only ever grown), its
        // pointer is 8-aligned, which suffices for FrameHeader (checked at
        // compile time above), and every bit pattern is a valid FrameHeader
        // (it is `FromBytes`). The reference borrows `self`.
        unsafe { &*self.words.as_ptr().cast::<FrameHeader>() }
    }
}

/// Header flag bit: the frame carries a checksum.
pub const FLAG_CHECKSUM: u8 = 1;

/// CRC32C of a whole frame (`frame.len()` = its total length): the header
/// without its commit word and checksum field, then topic, payload, padding.
pub fn checksum(frame: &[u8]) -> u32 {
    const CK: usize = HEADER_LEN - 4;
    let c = crc32c::crc32c(&frame[8..CK]);
    crc32c::crc32c_append(c, &frame[HEADER_LEN..])
}

/// [`checksum`] of the frame these parts make (`total_len` bytes, zero
/// padded), computed from private memory rather than from the segment, so
/// bytes scribbled into the segment while the frame is written are caught.
pub fn checksum_parts(header: &FrameHeader, topic: &[u8], payload: &[u8], total_len: usize) -> u32 {
    const CK: usize = HEADER_LEN - 4;
    let h = zerocopy::IntoBytes::as_bytes(header);
    let mut c = crc32c::crc32c(&h[8..CK]);
    c = crc32c::crc32c_append(c, topic);
    c = crc32c::crc32c_append(c, payload);
    let pad = total_len - HEADER_LEN - topic.len() - payload.len();
    crc32c::crc32c_append(c, &[0u8; 8][..pad])
}

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Kind {
    /// An aborted claim; never delivered.
    Padding = 0,
    /// A domain event (the default).
    #[default]
    Event = 1,
    /// A log record.
    Log = 2,
    /// An alert.
    Alert = 3,
    /// Control traffic between participants.
    Control = 4,
}

impl Kind {
    /// Decode a byte read from shared memory.
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            0 => Kind::Padding,
            1 => Kind::Event,
            2 => Kind::Log,
            3 => Kind::Alert,
            4 => Kind::Control,
            _ => return None,
        })
    }
    /// Lower-case name (`"event"`, `"log"`, ...), the same in Rust, C and Python.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Padding => "padding",
            Kind::Event => "event",
            Kind::Log => "log",
            Kind::Alert => "alert",
            Kind::Control => "control",
        }
    }
    /// Parse a lower-case name; `padding` is internal and not accepted.
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "event" => Kind::Event,
            "log" => Kind::Log,
            "alert" => Kind::Alert,
            "control" => Kind::Control,
            _ => return None,
        })
    }
}

/// Yeti's event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum EventType {
    /// Not an object event, or unspecified (the default).
    #[default]
    Other = 0,
    /// An object was created.
    New = 1,
    /// An object was updated.
    Update = 2,
    /// An object was deleted.
    Delete = 3,
}

impl EventType {
    /// Decode a byte read from shared memory.
    pub fn from_u8(v: u8) -> Option<EventType> {
        Some(match v {
            0 => EventType::Other,
            1 => EventType::New,
            2 => EventType::Update,
            3 => EventType::Delete,
            _ => return None,
        })
    }
    /// Lower-case name (`"new"`, `"update"`, `"delete"`, `"other"`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Other => "other",
            EventType::New => "new",
            EventType::Update => "update",
            EventType::Delete => "delete",
        }
    }
    /// Parse a lower-case name.
    pub fn parse(s: &str) -> Option<EventType> {
        Some(match s {
            "other" => EventType::Other,
            "new" => EventType::New,
            "update" => EventType::Update,
            "delete" => EventType::Delete,
            _ => return None,
        })
    }
}

/// Correlation metadata carried by every frame (0 = none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Correlation {
    /// This frame's correlation id.
    pub id: u128,
    /// The id of the frame that caused this one.
    pub parent: u128,
    /// The id of the first frame of the chain.
    pub root: u128,
}

/// Metadata for [`crate::Bus::publish_with`].
///
/// ```
/// use shmbus::{EventType, Kind, Meta};
/// let meta = Meta::event(EventType::New).correlation_id(7).root_id(1);
/// assert_eq!(meta.kind, Kind::Event);
/// assert_eq!(meta.correlation.root, 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Meta {
    /// Frame kind.
    pub kind: Kind,
    /// Event type.
    pub event_type: EventType,
    /// Correlation ids.
    pub correlation: Correlation,
}

impl Meta {
    /// An event of the given type.
    pub fn event(event_type: EventType) -> Meta {
        Meta {
            kind: Kind::Event,
            event_type,
            ..Meta::default()
        }
    }
    /// A log record.
    pub fn log() -> Meta {
        Meta {
            kind: Kind::Log,
            ..Meta::default()
        }
    }
    /// An alert.
    pub fn alert() -> Meta {
        Meta {
            kind: Kind::Alert,
            ..Meta::default()
        }
    }
    /// Set the kind.
    pub fn kind(mut self, kind: Kind) -> Meta {
        self.kind = kind;
        self
    }
    /// Set the event type.
    pub fn event_type(mut self, event_type: EventType) -> Meta {
        self.event_type = event_type;
        self
    }
    /// Set the correlation id.
    pub fn correlation_id(mut self, id: u128) -> Meta {
        self.correlation.id = id;
        self
    }
    /// Set the parent id.
    pub fn parent_id(mut self, id: u128) -> Meta {
        self.correlation.parent = id;
        self
    }
    /// Set the root id.
    pub fn root_id(mut self, id: u128) -> Meta {
        self.correlation.root = id;
        self
    }
}

/// A frame received by a subscriber.
///
/// It borrows the subscriber's private buffer: the bytes were copied out of
/// the segment and validated, so they can never change under you, and they
/// stay valid until the next call on that subscriber.
#[derive(Clone, Copy)]
pub struct Frame<'a> {
    pub(crate) header: &'a FrameHeader,
    pub(crate) topic: &'a str,
    pub(crate) payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Global sequence number.
    pub fn seq(&self) -> u64 {
        self.header.seq
    }
    /// The topic it was published to.
    pub fn topic(&self) -> &'a str {
        self.topic
    }
    /// The payload bytes.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
    /// Publish time, nanoseconds since the Unix epoch.
    pub fn timestamp(&self) -> u64 {
        self.header.timestamp_ns
    }
    /// Frame kind.
    pub fn kind(&self) -> Kind {
        Kind::from_u8(self.header.kind).unwrap_or(Kind::Event)
    }
    /// Event type.
    pub fn event_type(&self) -> EventType {
        EventType::from_u8(self.header.event_type).unwrap_or_default()
    }
    /// Correlation ids.
    pub fn correlation(&self) -> Correlation {
        Correlation {
            id: u128::from_le_bytes(self.header.correlation_id),
            parent: u128::from_le_bytes(self.header.parent_id),
            root: u128::from_le_bytes(self.header.root_id),
        }
    }
    /// Process id of the publisher.
    pub fn producer(&self) -> u32 {
        self.header.producer
    }
}

impl std::fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("seq", &self.seq())
            .field("topic", &self.topic)
            .field("kind", &self.kind())
            .field("event_type", &self.event_type())
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header view sits on the first bytes of the buffer, is aligned,
    /// and stays valid (whole) for an empty or short buffer; `fill` keeps
    /// bytes already there.
    #[test]
    fn frame_buf_header_is_the_first_bytes_in_place() {
        let mut buf = FrameBuf::default();
        assert_eq!(buf.bytes().len(), 0);
        assert_eq!(buf.header().seq, 0);
        let h = FrameHeader {
            seq: 42,
            topic_len: 3,
            ..FrameHeader::default()
        };
        let len = HEADER_LEN + 8;
        let bytes = buf.fill_room(len, 0);
        assert_eq!(bytes.len(), len);
        bytes[..HEADER_LEN].copy_from_slice(h.as_bytes());
        bytes[HEADER_LEN..].copy_from_slice(b"abcdefgh");
        assert_eq!(buf.header(), &h);
        assert_eq!(std::ptr::from_ref(buf.header()).cast::<u8>(), buf.bytes().as_ptr());
        assert_eq!(buf.bytes().as_ptr() as usize % 8, 0);
        assert_eq!(&buf.bytes()[HEADER_LEN..], b"abcdefgh");
        // Growing keeps the bytes; shrinking keeps the header view whole.
        assert_eq!(&buf.fill_room(len + 100, 0)[HEADER_LEN..len], b"abcdefgh");
        // Room beyond the frame is scratch, not part of it.
        assert_eq!(buf.fill_room(8, 200).len(), 200);
        assert_eq!(buf.bytes().len(), 8);
        assert_eq!(buf.header().seq, 42);
    }

    #[test]
    fn body_words_are_the_header_bytes_after_the_commit_word() {
        let h = FrameHeader {
            commit: 0x0101_0101_0101_0101,
            position: 0x1122_3344_5566_7788,
            seq: 0x99aa_bbcc_ddee_ff00,
            timestamp_ns: 0x0123_4567_89ab_cdef,
            correlation_id: std::array::from_fn(|i| i as u8 + 1),
            parent_id: std::array::from_fn(|i| i as u8 + 0x21),
            root_id: std::array::from_fn(|i| i as u8 + 0x41),
            producer: 0xdead_beef,
            payload_len: 0x0bad_f00d,
            kind: 3,
            event_type: 2,
            topic_len: 0xfe,
            flags: 1,
            checksum: 0xcafe_babe,
        };
        let words = h.body_words();
        assert_eq!(words.as_bytes(), &h.as_bytes()[8..]);
    }

    #[test]
    fn frame_len_is_aligned_and_accounts_bytes() {
        assert_eq!(frame_len(0, 0), 96);
        assert_eq!(frame_len(1, 0), 104);
        assert_eq!(frame_len(5, 100), 208);
        assert_eq!(frame_len(255, 65536) % 8, 0);
    }

    #[test]
    fn header_validation_rejects_inconsistent_fields() {
        let mut h = FrameHeader {
            position: 64,
            topic_len: 3,
            payload_len: 5,
            kind: 1,
            ..Default::default()
        };
        assert!(h.validate(64, frame_len(3, 5)).is_ok());
        assert!(h.validate(72, frame_len(3, 5)).is_err());
        assert!(h.validate(64, frame_len(3, 5) + 8).is_err());
        h.kind = 9;
        assert!(h.validate(64, frame_len(3, 5)).is_err());
        h.kind = 1;
        h.event_type = 200;
        assert!(h.validate(64, frame_len(3, 5)).is_err());
    }

    #[test]
    fn kind_and_event_type_names_round_trip() {
        for k in [Kind::Event, Kind::Log, Kind::Alert, Kind::Control] {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            assert_eq!(Kind::from_u8(k as u8), Some(k));
        }
        for e in [EventType::Other, EventType::New, EventType::Update, EventType::Delete] {
            assert_eq!(EventType::parse(e.as_str()), Some(e));
        }
        assert_eq!(Kind::parse("padding"), None);
    }
}
