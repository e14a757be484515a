//! The layout of one frame in the data region, and the types that describe
//! a frame to users.
//!
//! ```text
//! +-----------------------------+ 0
//! | FrameHeader, first 48 bytes |  commit word first, written last (Release)
//! +-----------------------------+ 48
//! | correlation, parent, root   |  only with FLAG_IDS (any id non-zero)
//! | ids (48 bytes)              |
//! +-----------------------------+ 48 or 96 (`FrameHeader::wire_len`)
//! | topic (topic_len bytes)     |  UTF-8, at most 255 bytes
//! | payload (payload_len)       |
//! | zero padding to 8 bytes     |
//! +-----------------------------+ total_len (multiple of 8)
//! ```
//!
//! The three 128-bit correlation ids take half of the 96-byte
//! [`FrameHeader`], and most frames carry none: a frame stores them only
//! when one is non-zero ([`FLAG_IDS`]), so a 64-byte event on a short topic
//! occupies two cache lines instead of three. Readers expand what they copy
//! back into the whole header (ids zero when absent), so everything after
//! the copy sees one fixed layout.
//!
//! Every field is read back from shared memory as untrusted bytes and checked
//! by [`FrameHeader::validate`] before use.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of [`FrameHeader`] in bytes: the header as readers hand it out
/// (ids included); in the segment a frame without ids stores only the
/// first [`BASE_HEADER_LEN`] bytes of it.
pub const HEADER_LEN: usize = std::mem::size_of::<FrameHeader>();
/// Bytes of the header every frame stores: everything but the ids.
pub const BASE_HEADER_LEN: usize = 48;
/// Bytes of the three correlation ids, stored after the base header only
/// by frames with [`FLAG_IDS`].
pub const IDS_LEN: usize = HEADER_LEN - BASE_HEADER_LEN;
/// Offset of [`FrameHeader::checksum`] in a frame.
pub(crate) const CHECKSUM_OFF: usize = BASE_HEADER_LEN - 4;
/// Offset of [`FrameHeader::flags`] in a frame.
pub(crate) const FLAGS_OFF: usize = CHECKSUM_OFF - 1;
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
    /// Flags: [`FLAG_CHECKSUM`], [`FLAG_IDS`]; other bits are reserved.
    pub flags: u8,
    /// CRC32C of the frame (see [`checksum`]), if [`FLAG_CHECKSUM`].
    pub checksum: u32,
    /// Correlation id (0 = none), little-endian. Stored only with [`FLAG_IDS`].
    pub correlation_id: [u8; 16],
    /// Parent id (0 = none), little-endian. Stored only with [`FLAG_IDS`].
    pub parent_id: [u8; 16],
    /// Root id (0 = none), little-endian. Stored only with [`FLAG_IDS`].
    pub root_id: [u8; 16],
}

const _: () = assert!(HEADER_LEN == 96 && BASE_HEADER_LEN % 8 == 0);

/// Total bytes a frame with this topic and payload occupies in the log;
/// `ids`: whether it stores correlation ids ([`FLAG_IDS`]).
///
/// ```
/// use shmbus::frame::frame_len;
/// assert_eq!(frame_len(10, 64, false), 128); // 48 + 10 + 64, padded to 8
/// assert_eq!(frame_len(10, 64, true), 176); // and the 48 bytes of ids
/// ```
#[inline]
pub const fn frame_len(topic_len: usize, payload_len: usize, ids: bool) -> usize {
    (header_len(ids) + topic_len + payload_len + FRAME_ALIGN - 1) & !(FRAME_ALIGN - 1)
}

/// Bytes of a frame's header in the segment: [`HEADER_LEN`] when it stores
/// its correlation ids, else [`BASE_HEADER_LEN`].
#[inline(always)]
pub const fn header_len(ids: bool) -> usize {
    if ids {
        HEADER_LEN
    } else {
        BASE_HEADER_LEN
    }
}

impl FrameHeader {
    /// Whether the frame stores its correlation ids ([`FLAG_IDS`]).
    #[inline(always)]
    pub fn has_ids(&self) -> bool {
        self.flags & FLAG_IDS != 0
    }

    /// Bytes of this header in the segment: [`BASE_HEADER_LEN`], or
    /// [`HEADER_LEN`] with the ids.
    #[inline(always)]
    pub fn wire_len(&self) -> usize {
        header_len(self.has_ids())
    }

    /// The header's bytes after the commit word, as the 8-byte words they
    /// occupy in memory (native byte order, exactly the struct's layout):
    /// the base header's five, then, with [`FLAG_IDS`], the ids' six. A
    /// producer stores these words into the segment one by one: copying the
    /// struct with `memcpy` made wide loads of a header just built with
    /// narrow stores, which the CPU cannot forward, and every publish
    /// stalled on it.
    #[inline(always)]
    pub(crate) fn base_words(&self) -> [u64; BASE_HEADER_LEN / 8 - 1] {
        fn two<const A: usize, const B: usize>(a: [u8; A], b: [u8; B]) -> u64 {
            let mut w = [0u8; 8];
            w[..A].copy_from_slice(&a);
            w[A..A + B].copy_from_slice(&b);
            u64::from_ne_bytes(w)
        }
        let flags = [self.kind, self.event_type, self.topic_len, self.flags];
        [
            self.position,
            self.seq,
            self.timestamp_ns,
            two(self.producer.to_ne_bytes(), self.payload_len.to_ne_bytes()),
            two(flags, self.checksum.to_ne_bytes()),
        ]
    }

    /// The ids as the six words that follow the base header (see
    /// [`FrameHeader::base_words`]).
    #[inline(always)]
    pub(crate) fn id_words(&self) -> [u64; IDS_LEN / 8] {
        let half = |id: &[u8; 16], i: usize| u64::from_ne_bytes(id[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        [
            half(&self.correlation_id, 0),
            half(&self.correlation_id, 1),
            half(&self.parent_id, 0),
            half(&self.parent_id, 1),
            half(&self.root_id, 0),
            half(&self.root_id, 1),
        ]
    }

    /// Check that the header describes a frame of `total_len` bytes at
    /// `position`; returns a static reason when it does not.
    #[inline]
    pub fn validate(&self, position: u64, total_len: usize) -> Result<(), &'static str> {
        if self.position != position {
            return Err("frame position does not match its place in the log");
        }
        let need = frame_len(self.topic_len as usize, self.payload_len as usize, self.has_ids());
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

    /// Set the frame's length after [`FrameBuf::fill_room`] (at most the
    /// bytes it returned).
    #[inline]
    pub(crate) fn set_len(&mut self, len: usize) {
        debug_assert!(len <= self.words.len() * 8);
        self.len = len.min(self.words.len() * 8);
    }

    /// The bytes of the frame.
    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        &zerocopy::IntoBytes::as_bytes(&self.words[..])[..self.len]
    }

    /// [`checksum`] of the frame this buffer holds, computed over the
    /// bytes the frame stored: the ids only with [`FLAG_IDS`]. Meaningful
    /// after a frame was read and validated into the buffer (which then
    /// holds at least a whole header).
    pub(crate) fn checksum(&self) -> u32 {
        let b = self.bytes();
        let rest = if self.header().has_ids() {
            BASE_HEADER_LEN
        } else {
            HEADER_LEN
        };
        crc_from(b, b.get(rest..).unwrap_or_default())
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
/// Header flag bit: the frame stores its correlation ids (one is non-zero).
pub const FLAG_IDS: u8 = 2;

/// CRC32C of the header bytes between the commit word and the checksum
/// field, continued over `rest`.
fn crc_from(header: &[u8], rest: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&header[8..CHECKSUM_OFF]), rest)
}

/// CRC32C of a whole frame as stored in the segment (`frame.len()` = its
/// total length): the base header without its commit word and checksum
/// field, then everything after it (the ids if stored, topic, payload,
/// padding).
pub fn checksum(frame: &[u8]) -> u32 {
    crc_from(frame, &frame[BASE_HEADER_LEN..])
}

/// [`checksum`] of the frame these parts make (`total_len` bytes, zero
/// padded), computed from private memory rather than from the segment, so
/// bytes scribbled into the segment while the frame is written are caught.
pub fn checksum_parts(header: &FrameHeader, topic: &[u8], payload: &[u8], total_len: usize) -> u32 {
    let h = zerocopy::IntoBytes::as_bytes(header);
    let mut c = crc_from(h, &h[BASE_HEADER_LEN..header.wire_len()]);
    c = crc32c::crc32c_append(c, topic);
    c = crc32c::crc32c_append(c, payload);
    let pad = total_len - header.wire_len() - topic.len() - payload.len();
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

impl Correlation {
    /// Whether any id is set: then a frame stores them ([`FLAG_IDS`]).
    #[inline(always)]
    pub(crate) fn is_set(&self) -> bool {
        (self.id | self.parent | self.root) != 0
    }
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
    fn header_words_are_the_header_bytes_after_the_commit_word() {
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
        assert_eq!(h.base_words().as_bytes(), &h.as_bytes()[8..BASE_HEADER_LEN]);
        assert_eq!(h.id_words().as_bytes(), &h.as_bytes()[BASE_HEADER_LEN..]);
        assert_eq!(&h.as_bytes()[CHECKSUM_OFF..BASE_HEADER_LEN], &h.checksum.to_ne_bytes());
        assert_eq!(h.as_bytes()[FLAGS_OFF], h.flags);
        assert_eq!(h.wire_len(), BASE_HEADER_LEN);
        assert_eq!(FrameHeader { flags: FLAG_IDS, ..h }.wire_len(), HEADER_LEN);
    }

    #[test]
    fn frame_len_is_aligned_and_accounts_bytes() {
        assert_eq!(frame_len(0, 0, false), 48);
        assert_eq!(frame_len(1, 0, false), 56);
        assert_eq!(frame_len(5, 100, false), 160);
        assert_eq!(frame_len(0, 0, true), 96);
        assert_eq!(frame_len(1, 0, true), 104);
        assert_eq!(frame_len(5, 100, true), 208);
        assert_eq!(frame_len(255, 65536, true) % 8, 0);
    }

    /// The checksum covers what the segment stores: the same for a frame
    /// whichever way it is computed (parts, stored bytes, a reader's
    /// expanded copy), and the ids count only when stored.
    #[test]
    fn checksum_is_the_same_from_parts_stored_bytes_and_a_readers_copy() {
        for ids in [false, true] {
            let h = FrameHeader {
                position: 4096,
                seq: 7,
                topic_len: 3,
                payload_len: 5,
                kind: 1,
                flags: FLAG_CHECKSUM | if ids { FLAG_IDS } else { 0 },
                root_id: if ids { [9; 16] } else { [0; 16] },
                ..FrameHeader::default()
            };
            let len = frame_len(3, 5, ids);
            let mut stored = h.as_bytes()[..h.wire_len()].to_vec();
            stored.extend_from_slice(b"abchello");
            stored.resize(len, 0);
            let sum = checksum_parts(&h, b"abc", b"hello", len);
            assert_eq!(checksum(&stored), sum, "ids {ids}");
            let mut buf = FrameBuf::default();
            let copy = buf.fill_room(len + HEADER_LEN - h.wire_len(), 0);
            copy[..HEADER_LEN].copy_from_slice(h.as_bytes());
            copy[HEADER_LEN..].copy_from_slice(&stored[h.wire_len()..]);
            assert_eq!(buf.checksum(), sum, "ids {ids}");
            let other = FrameHeader {
                parent_id: [1; 16],
                ..h
            };
            assert_eq!(checksum_parts(&other, b"abc", b"hello", len) == sum, !ids);
        }
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
        assert!(h.validate(64, frame_len(3, 5, false)).is_ok());
        assert!(h.validate(64, frame_len(3, 5, true)).is_err());
        assert!(h.validate(72, frame_len(3, 5, false)).is_err());
        assert!(h.validate(64, frame_len(3, 5, false) + 8).is_err());
        h.flags = FLAG_IDS;
        assert!(h.validate(64, frame_len(3, 5, true)).is_ok());
        assert!(h.validate(64, frame_len(3, 5, false)).is_err());
        h.flags = 0;
        h.kind = 9;
        assert!(h.validate(64, frame_len(3, 5, false)).is_err());
        h.kind = 1;
        h.event_type = 200;
        assert!(h.validate(64, frame_len(3, 5, false)).is_err());
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
