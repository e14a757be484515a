//! Subscription filters: topic patterns, regexes, correlation root ids and
//! their combinations.
//!
//! A [`Filter`] is a cheap, cloneable description of which frames a
//! subscriber wants. Before it is used on the hot path it is turned into a
//! [`Matcher`] with [`Filter::compile`]; the matcher caches the
//! topic-dependent part of the decision per topic, so skipping frames costs
//! little more than a byte comparison for repeated topics.
//!
//! ```
//! use shmbus::Filter;
//!
//! let filter = Filter::topic("events.#").and(Filter::root_id(7));
//! let mut matcher = filter.compile().unwrap();
//! assert!(matcher.matches(b"events.created", 7));
//! assert!(!matcher.matches(b"events.created", 8));
//! assert!(!matcher.matches(b"metrics.cpu", 7));
//! ```

use std::collections::HashMap;
use std::fmt;

use regex::{Regex, RegexBuilder};

/// Maximum length in bytes of a topic or a topic pattern.
///
/// ```
/// use shmbus::filter::{validate_topic, MAX_TOPIC_LEN};
///
/// assert!(validate_topic(&"a".repeat(MAX_TOPIC_LEN)).is_ok());
/// assert!(validate_topic(&"a".repeat(MAX_TOPIC_LEN + 1)).is_err());
/// ```
pub const MAX_TOPIC_LEN: usize = 255;

/// Maximum length in bytes of the text of a regex filter.
///
/// ```
/// use shmbus::filter::{Filter, MAX_REGEX_LEN};
///
/// assert!(Filter::try_regex(&"a".repeat(MAX_REGEX_LEN)).is_ok());
/// assert!(Filter::try_regex(&"a".repeat(MAX_REGEX_LEN + 1)).is_err());
/// ```
pub const MAX_REGEX_LEN: usize = 4096;

/// Size limit in bytes for a compiled regex (and for its lazy DFA cache).
///
/// Patterns whose compiled form would be larger are rejected with
/// [`FilterError::InvalidRegex`] instead of consuming memory.
///
/// ```
/// use shmbus::filter::{Filter, REGEX_SIZE_LIMIT};
///
/// assert_eq!(REGEX_SIZE_LIMIT, 1 << 20);
/// assert!(Filter::try_regex("(?:a{1000}){1000}").is_err());
/// ```
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Maximum number of distinct topics remembered by a [`Matcher`]; the cache
/// is cleared when it is full.
const CACHE_CAPACITY: usize = 4096;

/// Topics longer than this (necessarily invalid) are evaluated without being
/// cached, so the cache's memory stays bounded.
const MAX_CACHED_TOPIC_LEN: usize = MAX_TOPIC_LEN;

/// Number of topic-dependent sub-expressions whose results fit in one cache
/// entry (one bit each). Further ones are evaluated on every frame.
const MAX_CACHED_ATOMS: usize = 64;

/// Why a filter or topic was rejected.
///
/// Every variant names the offending text and a human-readable reason.
///
/// ```
/// use shmbus::filter::{validate_topic, FilterError};
///
/// let err = validate_topic("a..b").unwrap_err();
/// assert!(matches!(err, FilterError::InvalidTopic { ref topic, .. } if topic == "a..b"));
/// assert!(err.to_string().contains("a..b"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A publish topic is malformed.
    #[error("invalid topic {}: {reason}", quote(.topic))]
    InvalidTopic {
        /// The rejected topic.
        topic: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A topic pattern (as given to [`Filter::topic`]) is malformed.
    #[error("invalid topic pattern {}: {reason}", quote(.pattern))]
    InvalidPattern {
        /// The rejected pattern.
        pattern: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A regex (as given to [`Filter::regex`]) is malformed or too large.
    #[error("invalid regex {}: {reason}", quote(.regex))]
    InvalidRegex {
        /// The rejected regex text.
        regex: String,
        /// Why it was rejected.
        reason: String,
    },
}

/// Quotes `s` for an error message, eliding the middle of very long inputs.
fn quote(s: &str) -> String {
    const SHOWN: usize = 64;
    if s.len() <= SHOWN + 16 {
        return format!("{s:?}");
    }
    let mut end = SHOWN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &s[..end], s.len())
}

/// Checks that `topic` is a valid publish topic.
///
/// A topic is 1 to [`MAX_TOPIC_LEN`] bytes of UTF-8 made of `.`-separated
/// levels. No level may be empty (so no leading, trailing or doubled dot),
/// and the topic must not contain the wildcards `+` or `#`, NUL or other
/// control characters, or whitespace.
///
/// # Errors
///
/// [`FilterError::InvalidTopic`] naming the topic and the first problem found.
///
/// ```
/// use shmbus::filter::validate_topic;
///
/// assert!(validate_topic("events.user.created").is_ok());
/// assert!(validate_topic("events.#").is_err());
/// assert!(validate_topic("events..created").is_err());
/// assert!(validate_topic("has space").is_err());
/// ```
#[inline(always)]
pub fn validate_topic(topic: &str) -> Result<(), FilterError> {
    if plain_ascii_topic(topic.as_bytes()) {
        return Ok(());
    }
    validate_topic_slow(topic)
}

/// [`validate_topic`] for anything but a plain ASCII topic.
#[cold]
fn validate_topic_slow(topic: &str) -> Result<(), FilterError> {
    check_text(topic, false)
        .and_then(|()| check_levels(topic))
        .map_err(|reason| FilterError::InvalidTopic {
            topic: topic.to_owned(),
            reason,
        })
}

/// Validate a topic given as raw bytes (from C, or any binding that has
/// bytes rather than a `&str`) and return it as a `&str`: the same rules as
/// [`validate_topic`], plus UTF-8 validity, in one pass for the usual
/// printable-ASCII topic.
///
/// ```
/// use shmbus::filter::topic_from_bytes;
/// assert_eq!(topic_from_bytes(b"events.proc").unwrap(), "events.proc");
/// assert!(topic_from_bytes(b"a.\xff").unwrap_err().to_string().contains("UTF-8"));
/// assert!(topic_from_bytes(b"a..b").is_err());
/// ```
#[inline(always)]
pub fn topic_from_bytes(topic: &[u8]) -> Result<&str, FilterError> {
    if plain_ascii_topic(topic) {
        // SAFETY: every byte is printable ASCII (checked just above), and
        // ASCII is valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(topic) });
    }
    topic_from_bytes_slow(topic)
}

/// [`topic_from_bytes`] for anything but a plain ASCII topic.
#[cold]
fn topic_from_bytes_slow(topic: &[u8]) -> Result<&str, FilterError> {
    let s = std::str::from_utf8(topic).map_err(|e| FilterError::InvalidTopic {
        topic: String::from_utf8_lossy(topic).into_owned(),
        reason: format!("is not valid UTF-8 (at byte {})", e.valid_up_to()),
    })?;
    validate_topic(s)?;
    Ok(s)
}

/// The topic a producer thread published last, once it passed the topic
/// checks: publishing the same topic again (a collector publishes to a few
/// topics over and over) skips them. It remembers topics of 8 to 32 bytes,
/// as their length and the four words (first, last and two inner, which
/// overlap for short topics) that together cover every byte.
///
/// Invariant: `len` is 0 (nothing remembered) or the length of a topic that
/// passed a check returning it as `&str` (so it was UTF-8 and followed the
/// topic rules), and `words` are that topic's words at [`cover_offsets`].
#[derive(Debug, Default)]
pub(crate) struct TopicMemo {
    len: std::cell::Cell<usize>,
    words: std::cell::Cell<[u64; 4]>,
}

/// Offsets of four 8-byte words that together cover every byte of an
/// `n`-byte topic (`8 <= n <= 32`): 0, n-8, min(8, n-8) and n-16 (0 below
/// 16 bytes). The first two alone cover up to 16 bytes; the inner two add
/// bytes 8..16 and n-16..n-8, which covers up to 32. Topic comparisons
/// ([`same_bytes`], [`TopicMemo`]) compare these words instead of bytes.
#[inline(always)]
fn cover_offsets(n: usize) -> [usize; 4] {
    [0, n - 8, 8.min(n - 8), n.saturating_sub(16)]
}

impl TopicMemo {
    /// `check(topic)`, unless `topic` is the one remembered (then it is
    /// returned as is); a topic that passes is remembered.
    #[inline(always)]
    pub(crate) fn validate<'t, E>(
        &self,
        topic: &'t [u8],
        check: impl FnOnce(&'t [u8]) -> Result<&'t str, E>,
    ) -> Result<&'t str, E> {
        if self.knows(topic) {
            // SAFETY: `knows` compared every byte and the length with a
            // topic that a check returned as `&str` (the invariant above),
            // so these bytes are valid UTF-8.
            return Ok(unsafe { std::str::from_utf8_unchecked(topic) });
        }
        let checked = check(topic)?;
        self.remember(checked.as_bytes());
        Ok(checked)
    }

    #[inline(always)]
    fn knows(&self, topic: &[u8]) -> bool {
        let n = topic.len();
        if n != self.len.get() || n == 0 {
            // Also every length the memo does not keep (`len` 0 is "none").
            return false;
        }
        let w = self.words.get();
        let o = cover_offsets(n);
        (word(topic, o[0]) ^ w[0])
            | (word(topic, o[1]) ^ w[1])
            | (word(topic, o[2]) ^ w[2])
            | (word(topic, o[3]) ^ w[3])
            == 0
    }

    /// Remember `topic`, which passed the topic checks (see the invariant).
    #[inline]
    pub(crate) fn remember(&self, topic: &[u8]) {
        let n = topic.len();
        if !(8..=32).contains(&n) {
            self.len.set(0);
            return;
        }
        let o = cover_offsets(n);
        self.words.set(o.map(|at| word(topic, at)));
        self.len.set(n);
    }
}

/// The 8 bytes of `t` at `at`, little-endian (topic checks, comparisons
/// and hashing work a word at a time).
#[inline(always)]
fn word(t: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(t[at..at + 8].try_into().expect("8 bytes"))
}

/// `bytes` as a `&str` if they are UTF-8, with a word-at-a-time ASCII fast
/// path (the usual topic is ASCII; `from_utf8` walks short strings byte by
/// byte). Readers use it on topics copied from the segment.
#[inline]
pub(crate) fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).ok()
}

/// Fast path of [`validate_topic`] for the common case, one pass over the
/// bytes: printable ASCII without wildcards, no empty level. Anything else
/// goes through the full check (which also words the error).
///
/// Eight bytes at a time (SWAR): every publish validates its topic, and a
/// byte loop was ~15 instructions per byte. Each test below is an exact
/// "some byte of the word is ..." test (no false positives or negatives as
/// a whole-word answer), the standard bit tricks for bytes below 0x80; bytes
/// at or above 0x80 are caught by the "above 0x7e" test.
#[inline(always)]
fn plain_ascii_topic(t: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    /// Some byte is zero.
    #[inline(always)]
    fn any_zero(x: u64) -> bool {
        x.wrapping_sub(ONES) & !x & HIGH != 0
    }
    /// 0x80 in exactly the bytes that are zero (no carries between bytes).
    #[inline(always)]
    fn zero_bytes(x: u64) -> u64 {
        !((((x & LOW7) + LOW7) | x) | LOW7)
    }
    /// Does word `x` (8 topic bytes) hold a bad byte or two dots in a row?
    /// `carry` has bit 63 set if the byte before the word was a dot; returns
    /// the same flag for the word's last byte.
    #[inline(always)]
    fn bad(x: u64, carry: u64) -> Option<u64> {
        let below_0x21 = x.wrapping_sub(0x21 * ONES) & !x & HIGH != 0;
        // Adding 0x7f - 0x7e = 1 to each 7-bit byte reaches bit 7 from 0x7f up.
        let above_0x7e = ((x & LOW7).wrapping_add(ONES) | x) & HIGH != 0;
        if below_0x21 || above_0x7e || any_zero(x ^ (u64::from(b'+') * ONES)) || any_zero(x ^ (u64::from(b'#') * ONES))
        {
            return None;
        }
        let dots = zero_bytes(x ^ (u64::from(b'.') * ONES));
        if dots & ((dots << 8) | (carry >> 56)) != 0 {
            return None; // two dots in a row: an empty level
        }
        Some(dots & (0x80 << 56))
    }
    let n = t.len();
    if n == 0 || n > MAX_TOPIC_LEN || t[0] == b'.' || t[n - 1] == b'.' {
        return false;
    }
    if n < 8 {
        // One word, padded with a harmless letter.
        let mut x = u64::from_le_bytes([b'a'; 8]);
        for (i, &b) in t.iter().enumerate() {
            x = (x & !(0xff << (8 * i))) | (u64::from(b) << (8 * i));
        }
        return bad(x, 0).is_some();
    }
    // Whole words, then the last 8 bytes (overlapping the previous word):
    // every byte and every adjacent pair lies inside one checked word or
    // across a word boundary covered by `carry`.
    let mut carry = 0;
    let mut at = 0;
    while at + 8 <= n {
        match bad(word(t, at), carry) {
            Some(c) => carry = c,
            None => return false,
        }
        at += 8;
    }
    at == n || bad(word(t, n - 8), 0).is_some()
}

/// Checks length and characters shared by topics and patterns.
fn check_text(text: &str, wildcards_allowed: bool) -> Result<(), String> {
    if text.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if text.len() > MAX_TOPIC_LEN {
        return Err(format!("is {} bytes long (maximum {MAX_TOPIC_LEN})", text.len()));
    }
    for (at, c) in text.char_indices() {
        if c == '\0' {
            return Err(format!("contains a NUL byte at byte {at}"));
        }
        if c.is_control() {
            return Err(format!(
                "contains control character U+{:04X} at byte {at}",
                u32::from(c)
            ));
        }
        if c.is_whitespace() {
            return Err(format!("contains whitespace U+{:04X} at byte {at}", u32::from(c)));
        }
        if !wildcards_allowed && (c == '+' || c == '#') {
            return Err(format!(
                "contains wildcard '{c}' at byte {at} (wildcards are only allowed in subscription patterns)"
            ));
        }
    }
    Ok(())
}

/// Checks that no `.`-separated level of `text` is empty.
fn check_levels(text: &str) -> Result<(), String> {
    if text.starts_with('.') {
        return Err("starts with '.' (empty first level)".to_owned());
    }
    if text.ends_with('.') {
        return Err("ends with '.' (empty last level)".to_owned());
    }
    if let Some(at) = text.find("..") {
        return Err(format!("contains an empty level ('..') at byte {at}"));
    }
    Ok(())
}

/// One level of a compiled topic pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Level {
    /// Matches exactly this level.
    Literal(Box<str>),
    /// `+`: matches exactly one non-empty level.
    One,
    /// `#`: matches zero or more trailing levels.
    Rest,
}

/// Parses a topic pattern into levels, or explains why it is invalid.
fn parse_pattern(pattern: &str) -> Result<Box<[Level]>, String> {
    check_text(pattern, true)?;
    check_levels(pattern)?;
    let count = pattern.split('.').count();
    pattern
        .split('.')
        .enumerate()
        .map(|(i, level)| match level {
            "+" => Ok(Level::One),
            "#" if i + 1 == count => Ok(Level::Rest),
            "#" => Err("'#' must be the last level".to_owned()),
            _ if level.contains(['+', '#']) => {
                Err(format!("wildcards must occupy a whole level, found level {level:?}"))
            }
            _ => Ok(Level::Literal(level.into())),
        })
        .collect()
}

/// Matches a (UTF-8) topic against pattern levels.
fn pattern_matches(levels: &[Level], topic: &str) -> bool {
    let mut parts = topic.split('.');
    for level in levels {
        match level {
            Level::Rest => return true,
            Level::One => match parts.next() {
                Some(part) if !part.is_empty() => {}
                _ => return false,
            },
            Level::Literal(lit) => match parts.next() {
                Some(part) if part == &**lit => {}
                _ => return false,
            },
        }
    }
    parts.next().is_none()
}

/// A regex with Python `re.match` semantics: anchored at the start only.
#[derive(Clone, Debug)]
enum PrefixRegex {
    /// Compiled as `\A(?:re)`.
    Anchored(Regex),
    /// The user's regex compiled as is; a match must start at offset 0. Only
    /// used when wrapping is impossible (an `(?x)` comment running to the
    /// end of the regex would swallow the closing parenthesis).
    Bare(Regex),
}

impl PrefixRegex {
    fn is_match(&self, topic: &str) -> bool {
        match self {
            PrefixRegex::Anchored(re) => re.is_match(topic),
            // The leftmost match starts at 0 iff any match starts at 0.
            PrefixRegex::Bare(re) => re.find(topic).is_some_and(|m| m.start() == 0),
        }
    }
}

fn build_regex(text: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(text)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
}

fn regex_reason(err: &regex::Error) -> String {
    match err {
        regex::Error::CompiledTooBig(limit) => {
            format!("compiled regex would exceed the size limit of {limit} bytes")
        }
        other => other.to_string(),
    }
}

/// Compiles `text` with prefix-match semantics, or explains why it is invalid.
fn compile_prefix_regex(text: &str) -> Result<PrefixRegex, String> {
    if text.len() > MAX_REGEX_LEN {
        return Err(format!("is {} bytes long (maximum {MAX_REGEX_LEN})", text.len()));
    }
    // Compiling the user's text on its own first both gives error messages
    // whose positions refer to that text, and guarantees it is balanced, so
    // that wrapping it cannot change its meaning (e.g. `a)|(b`).
    let bare = build_regex(text).map_err(|e| regex_reason(&e))?;
    match build_regex(&format!(r"\A(?:{text})")) {
        Ok(anchored) => Ok(PrefixRegex::Anchored(anchored)),
        Err(regex::Error::CompiledTooBig(limit)) => Err(regex_reason(&regex::Error::CompiledTooBig(limit))),
        Err(_) => Ok(PrefixRegex::Bare(bare)),
    }
}

/// What a [`Filter`] is made of.
#[derive(Clone, Debug)]
enum Node {
    All,
    Topic {
        text: Box<str>,
        levels: Result<Box<[Level]>, FilterError>,
    },
    Regex {
        text: Box<str>,
        compiled: Result<PrefixRegex, FilterError>,
    },
    RootId(u128),
    Any(Vec<Filter>),
    And(Vec<Filter>),
}

/// Which frames a subscriber wants to receive.
///
/// Filters are built from [`Filter::all`], topic patterns
/// ([`Filter::topic`]), regexes ([`Filter::regex`]) and correlation root ids
/// ([`Filter::root_id`]), combined with [`Filter::or`], [`Filter::any_of`]
/// and [`Filter::and`]. Constructors never panic: an invalid pattern or regex
/// is kept inside the filter and reported by [`Filter::validate`] and
/// [`Filter::compile`].
///
/// ```
/// use shmbus::Filter;
///
/// let filter = Filter::topic("events.#").or(Filter::regex("(new|update):"));
/// assert_eq!(filter.to_string(), "any(topic:events.#, regex:(new|update):)");
/// let mut matcher = filter.compile().unwrap();
/// assert!(matcher.matches(b"events.a", 0));
/// assert!(matcher.matches(b"new:observable", 0));
/// assert!(!matcher.matches(b"metrics", 0));
/// ```
#[derive(Clone, Debug)]
pub struct Filter {
    node: Node,
}

impl Filter {
    /// A filter matching every frame, including frames whose topic is not
    /// valid UTF-8.
    ///
    /// ```
    /// use shmbus::Filter;
    ///
    /// let mut m = Filter::all().compile().unwrap();
    /// assert!(m.matches(b"anything", 42));
    /// assert!(m.matches(b"\xff\xfe", 0));
    /// ```
    #[must_use]
    pub fn all() -> Filter {
        Filter { node: Node::All }
    }

    /// A filter matching topics against an MQTT-style pattern.
    ///
    /// Levels are separated by `.`. A level `+` matches exactly one
    /// (non-empty) level; a level `#` matches zero or more trailing levels
    /// and must be the last level; any other level matches literally.
    /// Wildcards must occupy a whole level. A pattern is 1 to
    /// [`MAX_TOPIC_LEN`] bytes and obeys the same character rules as a
    /// topic (see [`validate_topic`]) apart from the wildcards.
    ///
    /// This never panics: an invalid pattern is reported by
    /// [`Filter::validate`] (use [`Filter::try_topic`] to fail early).
    /// Topics that are not valid UTF-8 never match.
    ///
    /// ```
    /// use shmbus::Filter;
    ///
    /// let mut m = Filter::topic("events.#").compile().unwrap();
    /// assert!(m.matches(b"events", 0));
    /// assert!(m.matches(b"events.a.b", 0));
    /// assert!(!m.matches(b"eventsx", 0));
    ///
    /// let mut m = Filter::topic("events.+").compile().unwrap();
    /// assert!(m.matches(b"events.a", 0));
    /// assert!(!m.matches(b"events", 0));
    /// assert!(!m.matches(b"events.a.b", 0));
    ///
    /// assert!(Filter::topic("ev+").validate().is_err());
    /// ```
    #[must_use]
    pub fn topic(pattern: &str) -> Filter {
        let levels = parse_pattern(pattern).map_err(|reason| FilterError::InvalidPattern {
            pattern: pattern.to_owned(),
            reason,
        });
        Filter {
            node: Node::Topic {
                text: pattern.into(),
                levels,
            },
        }
    }

    /// Like [`Filter::topic`], but returns the error of an invalid pattern.
    ///
    /// # Errors
    ///
    /// [`FilterError::InvalidPattern`] if `pattern` is not a valid pattern.
    ///
    /// ```
    /// use shmbus::filter::{Filter, FilterError};
    ///
    /// assert!(Filter::try_topic("a.+.c").is_ok());
    /// let err = Filter::try_topic("a.#.c").unwrap_err();
    /// assert!(matches!(err, FilterError::InvalidPattern { .. }));
    /// ```
    pub fn try_topic(pattern: &str) -> Result<Filter, FilterError> {
        let filter = Filter::topic(pattern);
        filter.validate()?;
        Ok(filter)
    }

    /// A filter matching topics against a regex with Python `re.match`
    /// semantics: the regex must match at the start of the topic but need
    /// not reach its end (it is compiled as `\A(?:re)`), so `""` matches
    /// every topic.
    ///
    /// The syntax is that of the [`regex`] crate (no look-around or
    /// back-references). The text is at most [`MAX_REGEX_LEN`] bytes and the
    /// compiled form at most [`REGEX_SIZE_LIMIT`] bytes. This never panics:
    /// an invalid regex is reported by [`Filter::validate`] (use
    /// [`Filter::try_regex`] to fail early). Topics that are not valid UTF-8
    /// never match.
    ///
    /// ```
    /// use shmbus::Filter;
    ///
    /// let mut m = Filter::regex("(new|update):").compile().unwrap();
    /// assert!(m.matches(b"new:observable", 0));
    /// assert!(!m.matches(b"observable:new:", 0));
    /// ```
    #[must_use]
    pub fn regex(re: &str) -> Filter {
        let compiled = compile_prefix_regex(re).map_err(|reason| FilterError::InvalidRegex {
            regex: re.to_owned(),
            reason,
        });
        Filter {
            node: Node::Regex {
                text: re.into(),
                compiled,
            },
        }
    }

    /// Like [`Filter::regex`], but returns the error of an invalid regex.
    ///
    /// # Errors
    ///
    /// [`FilterError::InvalidRegex`] if `re` is too long, is not valid
    /// syntax or compiles to more than [`REGEX_SIZE_LIMIT`] bytes.
    ///
    /// ```
    /// use shmbus::filter::{Filter, FilterError};
    ///
    /// assert!(Filter::try_regex("a|b").is_ok());
    /// let err = Filter::try_regex("(unclosed").unwrap_err();
    /// assert!(matches!(err, FilterError::InvalidRegex { .. }));
    /// ```
    pub fn try_regex(re: &str) -> Result<Filter, FilterError> {
        let filter = Filter::regex(re);
        filter.validate()?;
        Ok(filter)
    }

    /// A filter matching frames whose correlation root id equals `id`,
    /// whatever their topic.
    ///
    /// ```
    /// use shmbus::Filter;
    ///
    /// let mut m = Filter::root_id(7).compile().unwrap();
    /// assert!(m.matches(b"any.topic", 7));
    /// assert!(!m.matches(b"any.topic", 8));
    /// ```
    #[must_use]
    pub fn root_id(id: u128) -> Filter {
        Filter { node: Node::RootId(id) }
    }

    /// A filter matching frames matched by any of `filters`; with no filters
    /// it matches nothing.
    ///
    /// ```
    /// use shmbus::Filter;
    ///
    /// let mut m = Filter::any_of([Filter::topic("a.#"), Filter::topic("b.#")])
    ///     .compile()
    ///     .unwrap();
    /// assert!(m.matches(b"a.x", 0));
    /// assert!(m.matches(b"b", 0));
    /// assert!(!m.matches(b"c", 0));
    ///
    /// let mut nothing = Filter::any_of([]).compile().unwrap();
    /// assert!(!nothing.matches(b"a", 0));
    /// ```
    #[must_use]
    pub fn any_of<I: IntoIterator<Item = Filter>>(filters: I) -> Filter {
        Filter {
            node: Node::Any(filters.into_iter().collect()),
        }
    }

    /// A filter matching frames matched by `self` or by `other`.
    ///
    /// ```
    /// use shmbus::Filter;
    ///
    /// let filter = Filter::topic("a.#").or(Filter::root_id(1));
    /// let mut m = filter.compile().unwrap();
    /// assert!(m.matches(b"a.b", 0));
    /// assert!(m.matches(b"z", 1));
    /// assert!(!m.matches(b"z", 0));
    /// ```
    #[must_use]
    pub fn or(self, other: Filter) -> Filter {
        let mut children = match self.node {
            Node::Any(children) => children,
            node => vec![Filter { node }],
        };
        match other.node {
            Node::Any(more) => children.extend(more),
            node => children.push(Filter { node }),
        }
        Filter {
            node: Node::Any(children),
        }
    }

    /// A filter matching frames matched by both `self` and `other`.
    ///
    /// ```
    /// use shmbus::Filter;
    ///
    /// let mut m = Filter::topic("events.#").and(Filter::root_id(7)).compile().unwrap();
    /// assert!(m.matches(b"events.a", 7));
    /// assert!(!m.matches(b"events.a", 6));
    /// assert!(!m.matches(b"other", 7));
    /// ```
    #[must_use]
    pub fn and(self, other: Filter) -> Filter {
        let mut children = match self.node {
            Node::And(children) => children,
            node => vec![Filter { node }],
        };
        match other.node {
            Node::And(more) => children.extend(more),
            node => children.push(Filter { node }),
        }
        Filter {
            node: Node::And(children),
        }
    }

    /// Checks every pattern and regex in the filter, returning the first
    /// error found.
    ///
    /// # Errors
    ///
    /// [`FilterError::InvalidPattern`] or [`FilterError::InvalidRegex`] for
    /// the first invalid topic pattern or regex, searching depth-first.
    ///
    /// ```
    /// use shmbus::Filter;
    ///
    /// assert!(Filter::topic("a.#").validate().is_ok());
    /// assert!(Filter::all().and(Filter::topic("a.#.b")).validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), FilterError> {
        match &self.node {
            Node::All | Node::RootId(_) => Ok(()),
            Node::Topic { levels, .. } => levels.as_ref().map(|_| ()).map_err(Clone::clone),
            Node::Regex { compiled, .. } => compiled.as_ref().map(|_| ()).map_err(Clone::clone),
            Node::Any(children) | Node::And(children) => children.iter().try_for_each(Filter::validate),
        }
    }

    /// Whether the filter's decision depends only on the topic (it contains
    /// no [`Filter::root_id`]), so that it can be cached per topic.
    ///
    /// ```
    /// use shmbus::Filter;
    ///
    /// assert!(Filter::topic("a.#").or(Filter::regex("b")).depends_only_on_topic());
    /// assert!(!Filter::topic("a.#").and(Filter::root_id(1)).depends_only_on_topic());
    /// ```
    #[must_use]
    pub fn depends_only_on_topic(&self) -> bool {
        match &self.node {
            Node::All | Node::Topic { .. } | Node::Regex { .. } => true,
            Node::RootId(_) => false,
            Node::Any(children) | Node::And(children) => children.iter().all(Filter::depends_only_on_topic),
        }
    }

    /// Compiles the filter into a [`Matcher`] for the hot path, after
    /// validating it.
    ///
    /// # Errors
    ///
    /// The error of [`Filter::validate`] if the filter is invalid.
    ///
    /// ```
    /// use shmbus::Filter;
    ///
    /// let mut m = Filter::topic("+.x").compile().unwrap();
    /// assert!(m.matches(b"a.x", 0));
    /// assert!(Filter::topic("a..b").compile().is_err());
    /// ```
    pub fn compile(&self) -> Result<Matcher, FilterError> {
        self.validate()?;
        let plan = match lower(self) {
            Ir::Const(value) => Plan::Const(value),
            Ir::Topic(TopicExpr::Pattern(levels)) if matches!(&*levels, [Level::Rest]) => Plan::AnyText,
            Ir::Topic(expr) => Plan::Topic(expr),
            ir => {
                let mut steps = Vec::new();
                let mut atoms = Vec::new();
                let entry = emit(ir, ACCEPT, REJECT, &mut steps, &mut atoms);
                Plan::Mixed {
                    entry,
                    steps: steps.into(),
                    atoms: atoms.into(),
                }
            }
        };
        Ok(Matcher {
            plan,
            cache: TopicCache::new(),
        })
    }
}

impl Default for Filter {
    /// The same as [`Filter::all`].
    ///
    /// ```
    /// use shmbus::Filter;
    ///
    /// assert_eq!(Filter::default().to_string(), "all");
    /// ```
    fn default() -> Filter {
        Filter::all()
    }
}

impl From<&str> for Filter {
    /// The same as [`Filter::topic`].
    ///
    /// ```
    /// use shmbus::Filter;
    ///
    /// let filter: Filter = "events.#".into();
    /// assert_eq!(filter.to_string(), "topic:events.#");
    /// ```
    fn from(pattern: &str) -> Filter {
        Filter::topic(pattern)
    }
}

impl fmt::Display for Filter {
    /// A compact summary such as `all`, `topic:events.#`,
    /// `regex:(new|update):`, `root:<32 hex digits>`, `any(a, b)` or
    /// `and(a, b)`.
    ///
    /// ```
    /// use shmbus::Filter;
    ///
    /// let filter = Filter::topic("a.#").and(Filter::root_id(0xff));
    /// assert_eq!(
    ///     filter.to_string(),
    ///     "and(topic:a.#, root:000000000000000000000000000000ff)"
    /// );
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(f: &mut fmt::Formatter<'_>, name: &str, children: &[Filter]) -> fmt::Result {
            f.write_str(name)?;
            f.write_str("(")?;
            for (i, child) in children.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                fmt::Display::fmt(child, f)?;
            }
            f.write_str(")")
        }
        match &self.node {
            Node::All => f.write_str("all"),
            Node::Topic { text, .. } => write!(f, "topic:{text}"),
            Node::Regex { text, .. } => write!(f, "regex:{text}"),
            Node::RootId(id) => write!(f, "root:{id:032x}"),
            Node::Any(children) => list(f, "any", children),
            Node::And(children) => list(f, "and", children),
        }
    }
}

/// A topic-only expression, evaluated on cache misses.
#[derive(Clone, Debug)]
enum TopicExpr {
    Pattern(Box<[Level]>),
    Regex(PrefixRegex),
    Any(Vec<TopicExpr>),
    And(Vec<TopicExpr>),
}

impl TopicExpr {
    fn eval(&self, topic: &str) -> bool {
        match self {
            TopicExpr::Pattern(levels) => pattern_matches(levels, topic),
            TopicExpr::Regex(re) => re.is_match(topic),
            TopicExpr::Any(children) => children.iter().any(|c| c.eval(topic)),
            TopicExpr::And(children) => children.iter().all(|c| c.eval(topic)),
        }
    }

    /// Evaluates against raw topic bytes: non-UTF-8 topics never match.
    fn eval_bytes(&self, topic: &[u8]) -> bool {
        std::str::from_utf8(topic).is_ok_and(|topic| self.eval(topic))
    }
}

/// A simplified filter in which topic-only subtrees are merged.
enum Ir {
    Const(bool),
    Root(u128),
    Topic(TopicExpr),
    Any(Vec<Ir>),
    And(Vec<Ir>),
}

/// Simplifies a (validated) filter.
fn lower(filter: &Filter) -> Ir {
    match &filter.node {
        Node::All => Ir::Const(true),
        Node::RootId(id) => Ir::Root(*id),
        // Invalid patterns never reach here (`compile` validates first).
        Node::Topic { levels, .. } => levels
            .as_ref()
            .map_or(Ir::Const(false), |l| Ir::Topic(TopicExpr::Pattern(l.clone()))),
        Node::Regex { compiled, .. } => compiled
            .as_ref()
            .map_or(Ir::Const(false), |re| Ir::Topic(TopicExpr::Regex(re.clone()))),
        Node::Any(children) => lower_list(children, false),
        Node::And(children) => lower_list(children, true),
    }
}

/// Simplifies an `and` (`is_and`) or `any` node: constants are folded, nested
/// nodes of the same kind flattened, topic-only children merged into one
/// topic expression (evaluated last, as it may need a cache lookup) and
/// root-id children evaluated first.
fn lower_list(children: &[Filter], is_and: bool) -> Ir {
    // `true` is neutral for `and` and absorbing for `any`, and vice versa.
    let neutral = is_and;
    let mut others = Vec::new();
    let mut topics = Vec::new();
    let mut pending: Vec<Ir> = children.iter().map(lower).collect();
    pending.reverse();
    while let Some(ir) = pending.pop() {
        match ir {
            Ir::Const(value) if value == neutral => {}
            Ir::Const(value) => return Ir::Const(value),
            Ir::Topic(expr) => topics.push(expr),
            Ir::And(nested) if is_and => pending.extend(nested.into_iter().rev()),
            Ir::Any(nested) if !is_and => pending.extend(nested.into_iter().rev()),
            other => others.push(other),
        }
    }
    let topic = match topics.len() {
        0 => None,
        1 => topics.pop(),
        _ if is_and => Some(TopicExpr::And(topics)),
        _ => Some(TopicExpr::Any(topics)),
    };
    others.extend(topic.map(Ir::Topic));
    match others.len() {
        0 => Ir::Const(neutral),
        1 => others.swap_remove(0),
        _ if is_and => Ir::And(others),
        _ => Ir::Any(others),
    }
}

/// A condition tested by one [`Step`].
#[derive(Clone, Copy, Debug)]
enum Test {
    /// The frame's root id equals this.
    Root(u128),
    /// The topic expression with this index into the atoms matches. The
    /// results of atoms below [`MAX_CACHED_ATOMS`] are cached per topic.
    Atom(usize),
}

/// One instruction of a mixed plan's decision program: test, then go to
/// another step or finish with [`ACCEPT`] or [`REJECT`].
#[derive(Clone, Debug)]
struct Step {
    test: Test,
    if_true: usize,
    if_false: usize,
}

/// Program target meaning "the frame matches".
const ACCEPT: usize = usize::MAX;
/// Program target meaning "the frame does not match".
const REJECT: usize = usize::MAX - 1;

/// Emits short-circuit code for `ir` that continues at `on_true` or
/// `on_false`, returning the entry point. Children are emitted last to
/// first so that every target already exists; evaluation then runs as a
/// loop without recursion.
fn emit(ir: Ir, on_true: usize, on_false: usize, steps: &mut Vec<Step>, atoms: &mut Vec<TopicExpr>) -> usize {
    let test = match ir {
        Ir::Const(true) => return on_true,
        Ir::Const(false) => return on_false,
        Ir::And(children) => {
            return children
                .into_iter()
                .rev()
                .fold(on_true, |next, child| emit(child, next, on_false, steps, atoms))
        }
        Ir::Any(children) => {
            return children
                .into_iter()
                .rev()
                .fold(on_false, |next, child| emit(child, on_true, next, steps, atoms))
        }
        Ir::Root(id) => Test::Root(id),
        Ir::Topic(expr) => {
            atoms.push(expr);
            Test::Atom(atoms.len() - 1)
        }
    };
    steps.push(Step {
        test,
        if_true: on_true,
        if_false: on_false,
    });
    steps.len() - 1
}

/// How a [`Matcher`] decides.
#[derive(Clone, Debug)]
enum Plan {
    /// Independent of the frame.
    Const(bool),
    /// Every UTF-8 topic matches (the pattern `#`, the usual "everything"
    /// subscription from C and Python): no cache lookup, just the UTF-8 check.
    AnyText,
    /// Depends only on the topic: the cache holds the result in bit 0.
    Topic(TopicExpr),
    /// Depends on the root id too: a decision program whose topic tests
    /// (atoms) are cached together, one bit per atom.
    Mixed {
        entry: usize,
        steps: Box<[Step]>,
        atoms: Box<[TopicExpr]>,
    },
}

/// log2 of the number of slots in the direct-mapped front of the cache.
const RECENT_BITS: u32 = 6;

/// Per-topic cache of topic-dependent results.
///
/// The slots used last and second to last are checked first, so a topic
/// repeated frame after frame, or two topics interleaved, cost one or two
/// byte comparisons and no hashing. Otherwise a small
/// direct-mapped table of recently seen topics, indexed by a cheap hash of a
/// few words of the topic, answers most lookups with one byte comparison.
/// Misses go to a bounded hash map, and only then to the filter itself.
#[derive(Clone)]
struct TopicCache {
    /// Slot of the topic looked up last, and of the one before it.
    last: usize,
    prev: usize,
    recent: Box<[Slot]>,
    map: HashMap<Box<[u8]>, u64>,
}

/// One entry of the direct-mapped table; its buffer is reused.
#[derive(Clone, Default)]
struct Slot {
    valid: bool,
    bits: u64,
    topic: Vec<u8>,
}

/// `a == b`, inline for topics of 8 to 32 bytes (two or four word
/// compares, overlapping, combined without branches; no call to `memcmp`):
/// the cache compares a topic on every frame.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if (8..=32).contains(&n) {
        // Without branches per word (see `cover_offsets`; up to 16 bytes the
        // first two words suffice).
        let o = cover_offsets(n);
        let diff = |i: usize| word(a, o[i]) ^ word(b, o[i]);
        let ends = diff(0) | diff(1);
        return if n <= 16 {
            ends == 0
        } else {
            ends | diff(2) | diff(3) == 0
        };
    }
    a == b
}

impl TopicCache {
    fn new() -> TopicCache {
        TopicCache {
            last: 0,
            prev: 0,
            recent: vec![Slot::default(); 1 << RECENT_BITS].into(),
            map: HashMap::new(),
        }
    }

    /// Index of `topic`'s slot, from its length and up to three words taken
    /// at its start, middle and end (all of it for topics up to 24 bytes).
    #[inline]
    fn slot_of(topic: &[u8]) -> usize {
        let len = topic.len();
        let (start, middle, end) = if len >= 8 {
            (word(topic, 0), word(topic, len / 2 - 4), word(topic, len - 8))
        } else {
            let mut short = [0; 8];
            short[..len].copy_from_slice(topic);
            (u64::from_le_bytes(short), 0, 0)
        };
        let hash = (start ^ (len as u64).rotate_right(8)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ middle.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            ^ end.rotate_left(29).wrapping_mul(0x1656_67b1_9e37_79f9);
        let hash = (hash ^ (hash >> 31)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        (hash >> (64 - RECENT_BITS)) as usize
    }

    #[inline]
    fn get(&mut self, topic: &[u8], compute: impl FnOnce(&[u8]) -> u64) -> u64 {
        let last = &self.recent[self.last];
        if last.valid && same_bytes(&last.topic, topic) {
            return last.bits;
        }
        let prev = &self.recent[self.prev];
        if prev.valid && same_bytes(&prev.topic, topic) {
            let bits = prev.bits;
            std::mem::swap(&mut self.last, &mut self.prev);
            return bits;
        }
        self.get_recent(topic, compute)
    }

    fn get_recent(&mut self, topic: &[u8], compute: impl FnOnce(&[u8]) -> u64) -> u64 {
        let index = TopicCache::slot_of(topic);
        let slot = &self.recent[index];
        if slot.valid && same_bytes(&slot.topic, topic) {
            self.prev = std::mem::replace(&mut self.last, index);
            return slot.bits;
        }
        self.get_slow(index, topic, compute)
    }

    fn get_slow(&mut self, index: usize, topic: &[u8], compute: impl FnOnce(&[u8]) -> u64) -> u64 {
        if topic.len() > MAX_CACHED_TOPIC_LEN {
            // Not cached at all, so that memory stays bounded.
            return compute(topic);
        }
        let bits = if let Some(&bits) = self.map.get(topic) {
            bits
        } else {
            let bits = compute(topic);
            if self.map.len() >= CACHE_CAPACITY {
                self.map.clear();
            }
            self.map.insert(topic.into(), bits);
            bits
        };
        let slot = &mut self.recent[index];
        slot.topic.clear();
        slot.topic.extend_from_slice(topic);
        slot.bits = bits;
        slot.valid = true;
        self.prev = std::mem::replace(&mut self.last, index);
        bits
    }
}

/// A compiled [`Filter`] for the hot path, created by [`Filter::compile`].
///
/// The topic-dependent part of the decision is cached per topic: a topic
/// equal to the previous one costs one byte comparison, recently seen topics
/// are found in a small direct-mapped table, and up to 4096 topics are kept
/// in a hash map that is cleared when full. Root-id conditions are evaluated
/// for every frame, before any topic lookup. Topics that are not valid UTF-8
/// never match topic patterns or regexes (but [`Filter::all`] matches them).
///
/// ```
/// use shmbus::Filter;
///
/// let mut m = Filter::topic("events.+").compile().unwrap();
/// for _ in 0..3 {
///     assert!(m.matches(b"events.a", 0));
///     assert!(!m.matches(b"events", 0));
/// }
/// assert!(!m.matches(b"events.\xff", 0));
/// ```
#[derive(Clone)]
pub struct Matcher {
    plan: Plan,
    cache: TopicCache,
}

impl Matcher {
    /// Whether a reader delivers a frame with this topic and root id:
    /// [`Matcher::matches`] *and* the topic is UTF-8 (readers hand topics
    /// out as `&str`). Topic-only plans never match a non-UTF-8 topic, so
    /// only the others check UTF-8 again.
    #[inline(always)]
    pub(crate) fn accepts(&mut self, topic: &[u8], root_id: u128) -> bool {
        // A constant plan (`Filter::all`, the common subscription) without
        // a call: `matches` is too big to inline at every receive path.
        if let Plan::Const(value) = self.plan {
            return value && utf8(topic).is_some();
        }
        self.matches(topic, root_id) && (matches!(self.plan, Plan::AnyText | Plan::Topic(_)) || utf8(topic).is_some())
    }

    /// Whether a frame with this topic and correlation root id matches.
    ///
    /// ```
    /// use shmbus::Filter;
    ///
    /// let mut m = Filter::regex("new").and(Filter::root_id(3)).compile().unwrap();
    /// assert!(m.matches(b"new:observable", 3));
    /// assert!(!m.matches(b"new:observable", 4));
    /// assert!(!m.matches(b"old:observable", 3));
    /// ```
    #[inline]
    pub fn matches(&mut self, topic: &[u8], root_id: u128) -> bool {
        match &self.plan {
            Plan::Const(value) => *value,
            Plan::AnyText => utf8(topic).is_some(),
            Plan::Topic(expr) => self.cache.get(topic, |topic| u64::from(expr.eval_bytes(topic))) != 0,
            Plan::Mixed { entry, steps, atoms } => {
                let mut bits = None;
                let mut pc = *entry;
                while pc < REJECT {
                    let step = &steps[pc];
                    let passed = match step.test {
                        Test::Root(id) => id == root_id,
                        Test::Atom(index) if index < MAX_CACHED_ATOMS => {
                            let bits =
                                *bits.get_or_insert_with(|| self.cache.get(topic, |topic| atom_bits(atoms, topic)));
                            bits & (1 << index) != 0
                        }
                        Test::Atom(index) => atoms[index].eval_bytes(topic),
                    };
                    pc = if passed { step.if_true } else { step.if_false };
                }
                pc == ACCEPT
            }
        }
    }
}

/// One bit per cached atom: whether it matches `topic`.
fn atom_bits(atoms: &[TopicExpr], topic: &[u8]) -> u64 {
    let Ok(topic) = std::str::from_utf8(topic) else {
        return 0;
    };
    atoms
        .iter()
        .take(MAX_CACHED_ATOMS)
        .enumerate()
        .filter(|(_, atom)| atom.eval(topic))
        .fold(0, |bits, (i, _)| bits | (1 << i))
}

impl fmt::Debug for Matcher {
    /// Shows the compiled plan and the number of cached topics.
    ///
    /// ```
    /// use shmbus::Filter;
    ///
    /// let m = Filter::all().compile().unwrap();
    /// assert!(format!("{m:?}").contains("Matcher"));
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Matcher")
            .field("plan", &self.plan)
            .field("cached_topics", &self.cache.map.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_memo_knows_exactly_the_remembered_topic() {
        for n in 1..40usize {
            let a: Vec<u8> = (0..n as u8).map(|i| b'a' + i % 26).collect();
            let memo = TopicMemo::default();
            let checks = std::cell::Cell::new(0);
            let check = |t| {
                checks.set(checks.get() + 1);
                std::str::from_utf8(t).map_err(|_| ())
            };
            assert_eq!(memo.validate(&a, check), Ok(std::str::from_utf8(&a).unwrap()));
            assert_eq!(memo.validate(&a, check), Ok(std::str::from_utf8(&a).unwrap()));
            // Remembered (one check for both calls) exactly for 8..=32 bytes.
            assert_eq!(checks.get(), if (8..=32).contains(&n) { 1 } else { 2 }, "n {n}");
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!memo.knows(&b), "n {n} at {at}");
            }
            assert!(!memo.knows(&a[..n - 1]));
            // A failed check is not remembered and does not forget the last.
            let bad = vec![0xffu8; n];
            assert_eq!(memo.validate(&bad, check), Err(()));
            assert!(!memo.knows(&bad));
            assert_eq!(memo.knows(&a), (8..=32).contains(&n));
        }
    }

    /// The cache's inline comparison agrees with `==` for every length up
    /// to 40 and a difference at every position.
    #[test]
    fn same_bytes_matches_slice_equality() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(7)).collect();
            assert!(same_bytes(&a, &a.clone()));
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!same_bytes(&a, &b), "n {n} at {at}");
            }
            assert!(!same_bytes(&a, &a[..n.saturating_sub(1)]) || n == 0);
        }
    }

    /// The word-at-a-time topic check agrees with a byte-by-byte reference
    /// on every short string over an alphabet of the interesting bytes, at
    /// every alignment of the interesting bytes relative to the 8-byte words.
    #[test]
    fn plain_ascii_topic_matches_byte_reference() {
        fn reference(t: &[u8]) -> bool {
            !t.is_empty()
                && t.len() <= MAX_TOPIC_LEN
                && t[0] != b'.'
                && t[t.len() - 1] != b'.'
                && t.iter().all(|&b| (0x21..=0x7e).contains(&b) && b != b'+' && b != b'#')
                && !t.windows(2).any(|w| w == b"..")
        }
        let alphabet = [
            b'a', b'.', b'+', b'#', b' ', 0x20, 0x21, 0x7e, 0x7f, 0x80, 0xff, 0, b'-', b'/',
        ];
        let mut checked = 0;
        for prefix in 0..10 {
            for len in 1..=3 {
                let mut idx = vec![0usize; len];
                loop {
                    let mut t = vec![b'x'; prefix];
                    t.extend(idx.iter().map(|&i| alphabet[i]));
                    t.extend_from_slice(b"yz");
                    for cut in [t.len(), t.len() - 2] {
                        let s = &t[..cut];
                        assert_eq!(plain_ascii_topic(s), reference(s), "{s:?}");
                        checked += 1;
                    }
                    // Next combination.
                    let mut k = 0;
                    while k < len {
                        idx[k] += 1;
                        if idx[k] < alphabet.len() {
                            break;
                        }
                        idx[k] = 0;
                        k += 1;
                    }
                    if k == len {
                        break;
                    }
                }
            }
        }
        assert!(checked > 50_000);
        let long = vec![b'a'; MAX_TOPIC_LEN + 1];
        assert!(!plain_ascii_topic(&long));
        assert!(plain_ascii_topic(&long[..MAX_TOPIC_LEN]));
    }

    fn matcher(filter: &Filter) -> Matcher {
        filter
            .compile()
            .unwrap_or_else(|e| panic!("{filter} should compile: {e}"))
    }

    fn topic_matches(pattern: &str, topic: &str) -> bool {
        matcher(&Filter::topic(pattern)).matches(topic.as_bytes(), 0)
    }

    fn regex_matches(re: &str, topic: &str) -> bool {
        matcher(&Filter::regex(re)).matches(topic.as_bytes(), 0)
    }

    #[test]
    fn topic_pattern_wildcard_table() {
        let cases: &[(&str, &str, bool)] = &[
            // Literals.
            ("events", "events", true),
            ("events", "event", false),
            ("events", "eventsx", false),
            ("events", "events.a", false),
            ("events.a", "events.a", true),
            ("events.a", "events.b", false),
            ("events.a", "events", false),
            ("events.a", "events.a.b", false),
            ("a.b.c", "a.b.c", true),
            ("a.b.c", "a.b.cd", false),
            ("é.ß", "é.ß", true),
            // `#`: zero or more trailing levels.
            ("events.#", "events", true),
            ("events.#", "events.a", true),
            ("events.#", "events.a.b", true),
            ("events.#", "events.a.b.c.d.e", true),
            ("events.#", "eventsx", false),
            ("events.#", "eventsx.a", false),
            ("events.#", "other.events", false),
            ("events.#", "event", false),
            ("#", "a", true),
            ("#", "a.b.c", true),
            ("#", "events", true),
            ("a.b.#", "a.b", true),
            ("a.b.#", "a.b.c", true),
            ("a.b.#", "a", false),
            ("a.b.#", "a.c.b", false),
            // `+`: exactly one level.
            ("events.+", "events.a", true),
            ("events.+", "events.abc", true),
            ("events.+", "events", false),
            ("events.+", "events.a.b", false),
            ("events.+", "other.a", false),
            ("+", "a", true),
            ("+", "a.b", false),
            ("+.x", "a.x", true),
            ("+.x", "bcd.x", true),
            ("+.x", "x", false),
            ("+.x", "a.y", false),
            ("+.x", "a.x.y", false),
            ("+.+", "a.b", true),
            ("+.+", "a", false),
            ("+.+", "a.b.c", false),
            ("a.+.c", "a.b.c", true),
            ("a.+.c", "a.c", false),
            ("a.+.c", "a.b.d", false),
            ("a.+.c", "a.b.x.c", false),
            // Combined.
            ("+.#", "a", true),
            ("+.#", "a.b.c", true),
            ("a.+.#", "a", false),
            ("a.+.#", "a.b", true),
            ("a.+.#", "a.b.c.d", true),
            ("+.b.#", "a.b", true),
            ("+.b.#", "a.c", false),
        ];
        for &(pattern, topic, expected) in cases {
            assert_eq!(
                topic_matches(pattern, topic),
                expected,
                "pattern {pattern:?} vs topic {topic:?}"
            );
        }
    }

    #[test]
    fn plus_does_not_match_an_empty_level_of_a_malformed_topic() {
        assert!(!topic_matches("+", ""));
        assert!(!topic_matches("a.+", "a."));
        assert!(!topic_matches("+.b", ".b"));
        assert!(!topic_matches("a.+.c", "a..c"));
    }

    #[test]
    fn hash_alone_matches_every_utf8_topic() {
        let mut m = matcher(&Filter::topic("#"));
        for topic in ["a", "a.b", "x.y.z", "ünïcödé", ""] {
            assert!(m.matches(topic.as_bytes(), 0), "{topic:?}");
        }
    }

    #[test]
    fn valid_patterns_are_accepted() {
        for pattern in [
            "a",
            "#",
            "+",
            "a.#",
            "+.#",
            "+.+.+",
            "a.+.b.#",
            "événements.+",
            "a-b_c:d/e",
            &"a".repeat(MAX_TOPIC_LEN),
        ] {
            assert!(Filter::try_topic(pattern).is_ok(), "{pattern:?}");
        }
    }

    #[test]
    fn invalid_patterns_report_the_pattern_and_the_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("ev+", "whole level"),
            ("a.ev#", "whole level"),
            ("+a.b", "whole level"),
            ("a.++", "whole level"),
            ("##", "whole level"),
            ("a.#.b", "last level"),
            ("#.a", "last level"),
            ("#.#", "last level"),
            (".a", "starts with '.'"),
            ("a.", "ends with '.'"),
            ("a..b", "empty level"),
            (".", "starts with '.'"),
            ("a b", "whitespace"),
            ("a\tb", "control"),
            ("a\nb", "control"),
            ("a\0b", "NUL"),
            ("a\u{7f}", "control"),
            ("a\u{a0}b", "whitespace"),
        ];
        for &(pattern, reason_part) in cases {
            let err = Filter::try_topic(pattern).unwrap_err();
            let FilterError::InvalidPattern { pattern: named, reason } = &err else {
                panic!("{pattern:?}: unexpected error {err:?}");
            };
            assert_eq!(named, pattern);
            assert!(
                reason.contains(reason_part),
                "{pattern:?}: reason {reason:?} should mention {reason_part:?}"
            );
            let message = err.to_string();
            assert!(message.contains("invalid topic pattern"), "{message}");
            assert!(message.contains(&format!("{pattern:?}")), "{message}");
            assert!(message.contains(reason.as_str()), "{message}");
        }
    }

    #[test]
    fn overlong_pattern_is_rejected() {
        let pattern = "a".repeat(MAX_TOPIC_LEN + 1);
        let err = Filter::try_topic(&pattern).unwrap_err();
        assert!(
            matches!(&err, FilterError::InvalidPattern { pattern: p, reason }
                if *p == pattern && reason.contains("256 bytes")),
            "{err:?}"
        );
        // The message elides the middle of very long text.
        assert!(err.to_string().len() < 200, "{err}");
    }

    #[test]
    fn topic_constructor_never_panics_and_defers_the_error() {
        let filter = Filter::topic("a.#.b");
        assert!(filter.validate().is_err());
        assert!(filter.compile().is_err());
        assert_eq!(filter.to_string(), "topic:a.#.b");
        let nested = Filter::all().or(Filter::root_id(1).and(filter));
        assert!(matches!(
            nested.validate(),
            Err(FilterError::InvalidPattern { ref pattern, .. }) if pattern == "a.#.b"
        ));
        assert!(nested.compile().is_err());
    }

    #[test]
    fn valid_topics_are_accepted() {
        for topic in [
            "a",
            "events",
            "events.user.created",
            "a.b.c.d.e.f",
            "événements.créés",
            "a-b_c:d/e@f",
            "0.1.2",
            &"x".repeat(MAX_TOPIC_LEN),
            &["é"; 127].concat(),
        ] {
            assert_eq!(validate_topic(topic), Ok(()), "{topic:?}");
        }
    }

    #[test]
    fn invalid_topics_report_the_topic_and_the_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            (".", "starts with '.'"),
            (".a", "starts with '.'"),
            ("a.", "ends with '.'"),
            ("a..b", "empty level"),
            ("a+b", "wildcard '+'"),
            ("a.+", "wildcard '+'"),
            ("a.#", "wildcard '#'"),
            ("#", "wildcard '#'"),
            ("a\0", "NUL"),
            ("a\x01", "U+0001"),
            ("a\x1b[0m", "control"),
            ("a\u{7f}", "control"),
            ("a\u{85}", "control"),
            ("a b", "whitespace"),
            ("a\u{3000}b", "whitespace"),
            (" a", "whitespace"),
        ];
        for &(topic, reason_part) in cases {
            let err = validate_topic(topic).unwrap_err();
            let FilterError::InvalidTopic { topic: named, reason } = &err else {
                panic!("{topic:?}: unexpected error {err:?}");
            };
            assert_eq!(named, topic);
            assert!(
                reason.contains(reason_part),
                "{topic:?}: reason {reason:?} should mention {reason_part:?}"
            );
            assert!(err.to_string().starts_with("invalid topic "), "{err}");
        }
    }

    #[test]
    fn topic_length_limit_counts_bytes_not_chars() {
        assert!(validate_topic(&"a".repeat(255)).is_ok());
        let err = validate_topic(&"a".repeat(256)).unwrap_err();
        assert!(err.to_string().contains("256 bytes"), "{err}");
        // 128 two-byte characters are 256 bytes.
        assert!(validate_topic(&"é".repeat(128)).is_err());
    }

    #[test]
    fn regex_has_python_re_match_prefix_semantics() {
        let cases: &[(&str, &str, bool)] = &[
            ("new", "new:observable", true),
            ("observable", "new:observable", false),
            ("new:observable", "new:observable", true),
            ("new:observable$", "new:observable", true),
            ("new$", "new:observable", false),
            ("", "anything", true),
            ("", "", true),
            ("a|b", "b", true),
            ("a|b", "a", true),
            ("a|b", "xb", false),
            ("a|b", "xa", false),
            ("a|b", "bx", true),
            ("(new|update):observable", "update:observable", true),
            ("(new|update):observable", "delete:observable", false),
            (".*observable", "new:observable", true),
            ("x*", "abc", true),
            ("^new", "new", true),
            (r"\d+\.", "12.x", true),
            (r"\d+\.", "x12.", false),
            ("(?i)NEW", "new", true),
            ("é+", "ééx", true),
        ];
        for &(re, topic, expected) in cases {
            assert_eq!(regex_matches(re, topic), expected, "re.match({re:?}, {topic:?})");
        }
    }

    #[test]
    fn regex_with_unbalanced_groups_cannot_escape_the_anchor() {
        // `\A(?:a)|(b)` would match "xb"; such text must be rejected instead.
        for re in ["a)|(b", ")", "a)", "(?:a"] {
            let err = Filter::try_regex(re).unwrap_err();
            assert!(
                matches!(&err, FilterError::InvalidRegex { regex, .. } if regex == re),
                "{re:?}: {err:?}"
            );
        }
    }

    #[test]
    fn regex_with_verbose_comment_keeps_prefix_semantics() {
        // In `(?x)` mode a trailing comment would swallow a closing group.
        let re = "(?x) new # comment with ) in it";
        assert!(regex_matches(re, "new:observable"));
        assert!(!regex_matches(re, "old:new"));
        let re = "(?x) a | b # alternatives";
        assert!(regex_matches(re, "bx"));
        assert!(!regex_matches(re, "xb"));
    }

    #[test]
    fn invalid_regexes_report_the_regex_and_the_reason() {
        let cases: &[(&str, &str)] = &[
            ("(unclosed", "unclosed group"),
            ("[a-", "unclosed character class"),
            ("a{2,1}", "invalid repetition"),
            ("*", "repetition operator missing expression"),
            (r"(a)\1", "backreferences are not supported"),
            ("(?=a)", "look-around"),
        ];
        for &(re, reason_part) in cases {
            let err = Filter::try_regex(re).unwrap_err();
            let FilterError::InvalidRegex { regex, reason } = &err else {
                panic!("{re:?}: unexpected error {err:?}");
            };
            assert_eq!(regex, re);
            assert!(
                reason.contains(reason_part),
                "{re:?}: reason {reason:?} should mention {reason_part:?}"
            );
            let message = err.to_string();
            assert!(message.starts_with("invalid regex "), "{message}");
            assert!(message.contains(&format!("{re:?}")), "{message}");
        }
    }

    #[test]
    fn hostile_regex_is_rejected_by_the_size_limit() {
        for re in ["(?:a{1000}){1000}", r"\w{500}\w{500}", "(((a{100}){100}){100})"] {
            let err = Filter::try_regex(re).unwrap_err();
            assert!(
                matches!(&err, FilterError::InvalidRegex { regex, reason }
                    if regex == re && reason.contains("size limit")),
                "{re:?}: {err:?}"
            );
        }
    }

    #[test]
    fn overlong_regex_text_is_rejected() {
        assert!(Filter::try_regex(&"a".repeat(MAX_REGEX_LEN)).is_ok());
        let re = "a".repeat(MAX_REGEX_LEN + 1);
        let err = Filter::try_regex(&re).unwrap_err();
        assert!(
            matches!(&err, FilterError::InvalidRegex { reason, .. } if reason.contains("4097 bytes")),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("(4097 bytes)"), "{message}");
    }

    #[test]
    fn regex_constructor_never_panics_and_defers_the_error() {
        let filter = Filter::regex("(");
        assert!(filter.validate().is_err());
        assert!(filter.compile().is_err());
        assert_eq!(filter.to_string(), "regex:(");
    }

    #[test]
    fn display_summarises_filters() {
        assert_eq!(Filter::all().to_string(), "all");
        assert_eq!(Filter::default().to_string(), "all");
        assert_eq!(Filter::topic("events.#").to_string(), "topic:events.#");
        assert_eq!(Filter::from("a.+").to_string(), "topic:a.+");
        assert_eq!(
            Filter::regex("(new|update):observable").to_string(),
            "regex:(new|update):observable"
        );
        assert_eq!(Filter::root_id(7).to_string(), "root:00000000000000000000000000000007");
        assert_eq!(
            Filter::root_id(u128::MAX).to_string(),
            format!("root:{}", "f".repeat(32))
        );
        assert_eq!(
            Filter::any_of([Filter::topic("a.#"), Filter::regex("x")]).to_string(),
            "any(topic:a.#, regex:x)"
        );
        assert_eq!(Filter::any_of([]).to_string(), "any()");
        assert_eq!(
            Filter::topic("a.#").and(Filter::root_id(1)).to_string(),
            "and(topic:a.#, root:00000000000000000000000000000001)"
        );
        assert_eq!(
            Filter::topic("a")
                .or(Filter::topic("b"))
                .or(Filter::topic("c"))
                .to_string(),
            "any(topic:a, topic:b, topic:c)"
        );
        assert_eq!(
            Filter::topic("a")
                .and(Filter::topic("b").or(Filter::root_id(2)))
                .and(Filter::regex("c"))
                .to_string(),
            "and(topic:a, any(topic:b, root:00000000000000000000000000000002), regex:c)"
        );
    }

    #[test]
    fn all_matches_everything_including_non_utf8() {
        let mut m = matcher(&Filter::all());
        assert!(m.matches(b"a.b", 0));
        assert!(m.matches(b"", u128::MAX));
        assert!(m.matches(b"\xff\xfe\xfd", 1));
        assert!(matches!(m.plan, Plan::Const(true)));
        assert!(m.cache.map.is_empty());
        assert!(m.cache.recent.iter().all(|slot| !slot.valid));
    }

    /// `#` alone is compiled to a UTF-8 check without the topic cache, with
    /// exactly the pattern's answers (every UTF-8 topic, no other bytes).
    #[test]
    fn hash_alone_is_any_text_without_cache() {
        let mut m = matcher(&Filter::topic("#"));
        assert!(matches!(m.plan, Plan::AnyText));
        let levels = [Level::Rest];
        for t in [
            &b"a"[..],
            b"a.b.c",
            b"events.process.start",
            b"\xc3\xa9t\xc3\xa9",
            b"\xff",
            b"a.\xc3",
            b"",
        ] {
            let reference = std::str::from_utf8(t).is_ok_and(|t| pattern_matches(&levels, t));
            assert_eq!(m.matches(t, 0), reference, "{t:?}");
        }
        assert!(m.cache.map.is_empty());
        assert!(m.cache.recent.iter().all(|slot| !slot.valid));
        // Combined with other topic filters it is an ordinary pattern.
        assert!(matches!(
            matcher(&Filter::topic("#").or(Filter::regex("x"))).plan,
            Plan::Topic(_)
        ));
    }

    #[test]
    fn any_of_nothing_matches_nothing() {
        let mut m = matcher(&Filter::any_of(Vec::new()));
        assert!(!m.matches(b"a", 0));
        assert!(!m.matches(b"\xff", 0));
        assert!(matches!(m.plan, Plan::Const(false)));
    }

    #[test]
    fn non_utf8_topic_never_matches_patterns_or_regexes() {
        let invalid: &[&[u8]] = &[b"\xff", b"events.\xff", b"\xc3", b"new\x80:observable"];
        let cases = [
            (Filter::topic("#"), "x"),
            (Filter::topic("events.#"), "events.a"),
            (Filter::topic("+"), "new"),
            (Filter::regex(""), "x"),
            (Filter::regex("new"), "new:observable"),
            (Filter::regex(".*"), "x"),
            (Filter::topic("#").or(Filter::regex("")), "x"),
            (Filter::topic("#").and(Filter::root_id(1)), "x"),
            (Filter::topic("#").or(Filter::root_id(1)), "x"),
        ];
        for (filter, valid) in cases {
            let mut m = matcher(&filter);
            for &topic in invalid {
                // Twice: once computed, once from the cache.
                assert!(!m.matches(topic, 0), "{filter} vs {topic:?}");
                assert!(!m.matches(topic, 0), "{filter} vs {topic:?}");
            }
            assert!(m.matches(valid.as_bytes(), 1), "{filter} vs {valid:?}");
        }
        // A root-id alternative still matches by root id.
        let mut m = matcher(&Filter::topic("#").or(Filter::root_id(1)));
        assert!(m.matches(b"\xff", 1));
        // `all` inside a combinator still matches.
        let mut m = matcher(&Filter::all().or(Filter::topic("a")));
        assert!(m.matches(b"\xff", 0));
    }

    #[test]
    fn root_id_matches_exact_id_regardless_of_topic() {
        let id = 0x0123_4567_89ab_cdef_0123_4567_89ab_cdef_u128;
        let mut m = matcher(&Filter::root_id(id));
        assert!(m.matches(b"a", id));
        assert!(m.matches(b"\xff", id));
        assert!(!m.matches(b"a", id + 1));
        assert!(!m.matches(b"a", 0));
        // No topic is involved, so nothing is cached.
        assert!(m.cache.map.is_empty());
    }

    #[test]
    fn and_with_root_id_requires_both() {
        let mut m = matcher(&Filter::topic("events.#").and(Filter::root_id(7)));
        assert!(m.matches(b"events", 7));
        assert!(m.matches(b"events.a.b", 7));
        assert!(!m.matches(b"events.a", 8));
        assert!(!m.matches(b"metrics", 7));
        assert!(!m.matches(b"metrics", 8));
    }

    #[test]
    fn or_with_root_id_requires_either() {
        let mut m = matcher(&Filter::topic("events.#").or(Filter::root_id(7)));
        assert!(m.matches(b"events.a", 0));
        assert!(m.matches(b"metrics", 7));
        assert!(!m.matches(b"metrics", 8));
    }

    #[test]
    fn nested_combinators_with_root_ids() {
        // (a.# and root 1) or (b.+ and (root 2 or regex "b.x"))
        let filter = Filter::topic("a.#")
            .and(Filter::root_id(1))
            .or(Filter::topic("b.+").and(Filter::root_id(2).or(Filter::regex(r"b\.x"))));
        assert!(!filter.depends_only_on_topic());
        let mut m = matcher(&filter);
        let cases: &[(&[u8], u128, bool)] = &[
            (b"a", 1, true),
            (b"a.z", 1, true),
            (b"a.z", 2, false),
            (b"b.y", 2, true),
            (b"b.y", 1, false),
            (b"b.x", 1, true),
            (b"b.x", 0, true),
            (b"b.x.y", 2, false),
            (b"c", 1, false),
            (b"c", 2, false),
        ];
        // Twice, so that the second round is answered from the cache.
        for _ in 0..2 {
            for &(topic, root, expected) in cases {
                assert_eq!(m.matches(topic, root), expected, "{topic:?} root {root}");
            }
        }
    }

    #[test]
    fn constants_fold_inside_combinators() {
        let mut m = matcher(&Filter::all().and(Filter::root_id(3)));
        assert!(m.matches(b"\xff", 3));
        assert!(!m.matches(b"x", 4));
        assert!(matches!(m.plan, Plan::Mixed { ref atoms, .. } if atoms.is_empty()));

        let m = matcher(&Filter::all().or(Filter::root_id(3)));
        assert!(matches!(m.plan, Plan::Const(true)));

        let m = matcher(&Filter::any_of([]).and(Filter::topic("a")));
        assert!(matches!(m.plan, Plan::Const(false)));

        let mut m = matcher(&Filter::any_of([]).or(Filter::topic("a")));
        assert!(m.matches(b"a", 0));
        assert!(!m.matches(b"b", 0));

        let mut m = matcher(&Filter::topic("a.#").and(Filter::all()));
        assert!(matches!(m.plan, Plan::Topic(_)));
        assert!(m.matches(b"a.b", 0));
        assert!(!m.matches(b"\xff", 0));
    }

    #[test]
    fn topic_only_combinators_are_cached_as_one_result() {
        let filter = Filter::topic("a.#").and(Filter::regex("a.b")).or(Filter::topic("c"));
        assert!(filter.depends_only_on_topic());
        let mut m = matcher(&filter);
        assert!(matches!(m.plan, Plan::Topic(_)));
        assert!(m.matches(b"a.b", 0));
        assert!(m.matches(b"a.bcd.e", 0));
        assert!(!m.matches(b"a.c", 0));
        assert!(m.matches(b"c", 0));
        assert!(!m.matches(b"c.d", 0));
    }

    #[test]
    fn depends_only_on_topic_detects_root_ids_anywhere() {
        assert!(Filter::all().depends_only_on_topic());
        assert!(Filter::topic("a").depends_only_on_topic());
        assert!(Filter::regex("a").depends_only_on_topic());
        assert!(Filter::any_of([]).depends_only_on_topic());
        assert!(!Filter::root_id(0).depends_only_on_topic());
        assert!(
            !Filter::any_of([Filter::topic("a"), Filter::topic("b").and(Filter::root_id(1))]).depends_only_on_topic()
        );
    }

    #[test]
    fn repeated_topic_uses_the_last_topic_fast_path() {
        let mut m = matcher(&Filter::topic("events.+"));
        for _ in 0..10 {
            assert!(m.matches(b"events.a", 0));
        }
        assert_eq!(m.cache.map.len(), 1);
        let last = &m.cache.recent[m.cache.last];
        assert!(last.valid);
        assert_eq!(last.topic, b"events.a");
        for _ in 0..10 {
            assert!(!m.matches(b"events", 0));
            assert!(m.matches(b"events.a", 0));
        }
        assert_eq!(m.cache.map.len(), 2);
    }

    #[test]
    fn cache_answers_agree_with_fresh_evaluation() {
        let filter = Filter::topic("t.+").or(Filter::regex(r"u\.\d*7$"));
        let mut cached = matcher(&filter);
        for round in 0..3 {
            for i in 0..300 {
                let topic = match i % 3 {
                    0 => format!("t.{i}"),
                    1 => format!("u.{i}"),
                    _ => format!("t.{i}.x"),
                };
                let fresh = matcher(&filter).matches(topic.as_bytes(), 0);
                assert_eq!(cached.matches(topic.as_bytes(), 0), fresh, "{topic} round {round}");
            }
        }
        assert_eq!(cached.cache.map.len(), 300);
    }

    /// Two interleaved topics are answered from the last two slots (each
    /// evaluated once), and a third topic in between does not confuse them.
    #[test]
    fn interleaved_topics_are_answered_from_the_recent_slots() {
        let mut m = matcher(&Filter::topic("events.+.start"));
        let (yes, no, other) = (&b"events.process.start"[..], &b"events.process.other"[..], &b"x.y"[..]);
        for i in 0..100 {
            assert!(m.matches(yes, 0), "round {i}");
            assert!(!m.matches(no, 0), "round {i}");
            if i % 10 == 0 {
                assert!(!m.matches(other, 0), "round {i}");
            }
        }
        assert_eq!(m.cache.map.len(), 3, "each topic evaluated once");
    }

    #[test]
    fn cache_is_bounded_and_stays_correct_after_overflow() {
        let mut m = matcher(&Filter::topic("even.#").and(Filter::root_id(5)));
        let is_even = |i: usize| i & 1 == 0;
        let topic = |i: usize| {
            if is_even(i) {
                format!("even.{i}")
            } else {
                format!("odd.{i}")
            }
        };
        let mut clears = 0;
        for round in 0..2 {
            for i in 0..(CACHE_CAPACITY * 2 + 10) {
                let t = topic(i);
                let before = m.cache.map.len();
                assert_eq!(m.matches(t.as_bytes(), 5), is_even(i), "{t} round {round}");
                assert!(!m.matches(t.as_bytes(), 4), "{t} round {round}");
                let after = m.cache.map.len();
                assert!(after <= CACHE_CAPACITY);
                if after < before {
                    clears += 1;
                }
            }
        }
        assert!(clears >= 4, "the full cache was cleared {clears} times");
        // Entries cached before the last clear are recomputed correctly.
        assert!(m.matches(b"even.0", 5));
        assert!(!m.matches(b"odd.1", 5));
        assert!(m.cache.map.len() <= CACHE_CAPACITY);
    }

    #[test]
    fn overlong_topics_are_matched_but_not_cached() {
        let mut m = matcher(&Filter::topic("a.#"));
        let long = format!("a.{}", "b".repeat(1000));
        for _ in 0..3 {
            assert!(m.matches(long.as_bytes(), 0));
            assert!(!m.matches(&long.as_bytes()[1..], 0));
        }
        assert!(m.cache.map.is_empty());
        assert!(m.cache.recent.iter().all(|slot| !slot.valid));
        assert!(m.matches(b"a.b", 0));
        assert_eq!(m.cache.map.len(), 1);
    }

    #[test]
    fn topics_sharing_a_prefix_are_not_confused_by_the_fast_path() {
        let mut m = matcher(&Filter::topic("a.b"));
        assert!(m.matches(b"a.b", 0));
        assert!(!m.matches(b"a.bc", 0));
        assert!(!m.matches(b"a.", 0));
        assert!(m.matches(b"a.b", 0));
        assert!(!m.matches(b"", 0));
    }

    #[test]
    fn many_topic_atoms_beyond_the_cached_bits_still_match() {
        // Each `and(topic, root)` yields its own topic atom: 70 of them.
        let filter = Filter::any_of((0..70u128).map(|i| Filter::topic(&format!("t{i}")).and(Filter::root_id(i))));
        let mut m = matcher(&filter);
        assert!(matches!(m.plan, Plan::Mixed { ref atoms, .. } if atoms.len() == 70));
        for _ in 0..2 {
            for i in 0..70u128 {
                let topic = format!("t{i}");
                assert!(m.matches(topic.as_bytes(), i), "{topic}");
                assert!(!m.matches(topic.as_bytes(), i + 1), "{topic}");
            }
            assert!(!m.matches(b"\xff", 69));
        }
    }

    #[test]
    fn root_ids_are_checked_before_topics() {
        let mut m = matcher(&Filter::topic("a").and(Filter::root_id(1)));
        // A frame rejected by root id does not touch the cache.
        assert!(!m.matches(b"a", 2));
        assert!(m.cache.map.is_empty());
        assert!(m.matches(b"a", 1));
        assert_eq!(m.cache.map.len(), 1);
    }

    #[test]
    fn cloned_matcher_and_filter_behave_the_same() {
        let filter = Filter::regex("x").or(Filter::root_id(9));
        let copy = filter.clone();
        let mut m1 = matcher(&filter);
        assert!(m1.matches(b"xy", 0));
        let mut m2 = m1.clone();
        let mut m3 = matcher(&copy);
        for (topic, root) in [(&b"xy"[..], 0), (b"yx", 0), (b"yx", 9)] {
            let expected = m1.matches(topic, root);
            assert_eq!(m2.matches(topic, root), expected);
            assert_eq!(m3.matches(topic, root), expected);
        }
    }

    #[test]
    fn topics_sharing_a_recent_slot_are_told_apart() {
        let slot = TopicCache::slot_of(b"hit.0");
        let twin = (1..10_000)
            .map(|i| format!("miss.{i}"))
            .find(|t| TopicCache::slot_of(t.as_bytes()) == slot)
            .expect("some topic shares the slot");
        let mut m = matcher(&Filter::topic("hit.+"));
        for _ in 0..5 {
            assert!(m.matches(b"hit.0", 0));
            assert!(!m.matches(twin.as_bytes(), 0), "{twin}");
        }
        assert_eq!(m.cache.map.len(), 2);
    }

    #[test]
    fn recent_slot_index_is_in_range_for_all_lengths() {
        let slots = 1 << RECENT_BITS;
        let mut seen = vec![false; slots];
        for n in 0..=MAX_TOPIC_LEN + 10 {
            for fill in [b'a', b'z', 0xff] {
                let topic = vec![fill; n];
                let index = TopicCache::slot_of(&topic);
                assert!(index < slots);
                seen[index] = true;
            }
        }
        // The hash spreads topics over most of the table.
        assert!(seen.iter().filter(|&&s| s).count() > slots / 2);
    }

    #[test]
    fn topics_differing_only_in_the_middle_are_told_apart() {
        let mut m = matcher(&Filter::regex(r"sensor\.0*7\."));
        for _ in 0..3 {
            for i in 0..40 {
                let topic = format!("sensor.{i:08}.reading.temperature");
                assert_eq!(m.matches(topic.as_bytes(), 0), i == 7, "{topic}");
            }
        }
    }

    #[test]
    fn error_messages_quote_control_characters() {
        let err = validate_topic("a\0b").unwrap_err();
        assert!(err.to_string().contains(r#""a\0b""#), "{err}");
    }
}
