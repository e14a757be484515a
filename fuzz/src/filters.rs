//! Target `filters`: topic patterns, regexes, topics and filter trees.
//!
//! Proves, for arbitrary patterns, regexes, topics (including invalid UTF-8)
//! and nested `any`/`and`/`root_id` combinations of them:
//!
//! * parsing never panics; a pattern, regex or topic is rejected exactly when
//!   a reference validator written here (from the documented rules) rejects
//!   it, and a filter compiles exactly when all its leaves are valid;
//! * [`shmbus::filter::Matcher::matches`] agrees with a reference evaluator:
//!   patterns split on `.`, `+` is one non-empty level, `#` the rest
//!   (zero or more levels); regexes have `re.match` semantics (an anchored
//!   search with `regex-automata`, not end-anchored); non-UTF-8 topics match
//!   neither; `all` matches everything; `any([])` nothing, `and([])` all;
//! * asking twice gives the same answer (the per-topic cache is coherent),
//!   also for trees with more than 64 topic atoms (the uncached path).

use regex_automata::{meta, Anchored, Input};
use shmbus::filter::{validate_topic, Filter, MAX_REGEX_LEN, MAX_TOPIC_LEN};

use crate::Bytes;

/// Reference: is `c` forbidden in topics and patterns?
fn bad_char(c: char) -> bool {
    c == '\0' || c.is_control() || c.is_whitespace()
}

fn text_ok(t: &str) -> bool {
    !t.is_empty() && t.len() <= MAX_TOPIC_LEN && !t.chars().any(bad_char) && t.split('.').all(|level| !level.is_empty())
}

/// Reference validator for publish topics.
pub fn ref_topic_valid(t: &str) -> bool {
    text_ok(t) && !t.contains(['+', '#'])
}

/// Reference validator for topic patterns.
pub fn ref_pattern_valid(p: &str) -> bool {
    if !text_ok(p) {
        return false;
    }
    let levels: Vec<&str> = p.split('.').collect();
    levels.iter().enumerate().all(|(i, l)| match *l {
        "+" => true,
        "#" => i + 1 == levels.len(),
        l => !l.contains(['+', '#']),
    })
}

/// Reference matcher for a valid pattern against a topic.
pub fn ref_pattern_match(pattern: &str, topic: &[u8]) -> bool {
    fn go(pat: &[&str], topic: &[&str]) -> bool {
        match pat.split_first() {
            None => topic.is_empty(),
            Some((&"#", _)) => true,
            Some((&"+", rest)) => topic.first().is_some_and(|l| !l.is_empty()) && go(rest, &topic[1..]),
            Some((lit, rest)) => topic.first() == Some(lit) && go(rest, &topic[1..]),
        }
    }
    let Ok(topic) = std::str::from_utf8(topic) else {
        return false;
    };
    let pat: Vec<&str> = pattern.split('.').collect();
    let top: Vec<&str> = topic.split('.').collect();
    go(&pat, &top)
}

/// A filter tree with its reference semantics.
#[derive(Debug)]
enum Spec {
    All,
    Topic(String),
    /// The text and, when `regex-automata` accepts it, the reference regex.
    Regex(String, Option<meta::Regex>),
    Root(u128),
    Any(Vec<Spec>),
    And(Vec<Spec>),
}

impl Spec {
    fn filter(&self) -> Filter {
        match self {
            Spec::All => Filter::all(),
            Spec::Topic(p) => Filter::topic(p),
            Spec::Regex(r, _) => Filter::regex(r),
            Spec::Root(id) => Filter::root_id(*id),
            Spec::Any(c) => Filter::any_of(c.iter().map(Spec::filter)),
            Spec::And(c) => c.iter().fold(Filter::all(), |acc, s| acc.and(s.filter())),
        }
    }

    /// Whether every leaf is valid; checks each leaf against the core's own
    /// verdict on the way.
    fn valid(&self) -> bool {
        match self {
            Spec::All | Spec::Root(_) => true,
            Spec::Topic(p) => {
                let ok = ref_pattern_valid(p);
                assert_eq!(Filter::try_topic(p).is_ok(), ok, "pattern {p:?} validity");
                ok
            }
            Spec::Regex(r, reference) => {
                let ok = Filter::try_regex(r).is_ok();
                if r.len() > MAX_REGEX_LEN {
                    assert!(!ok, "regex longer than {MAX_REGEX_LEN} accepted");
                }
                if ok {
                    assert!(reference.is_some(), "regex {r:?} accepted but is not valid syntax");
                }
                ok
            }
            // Evaluate every child (no short-circuit) so each leaf is checked.
            Spec::Any(c) | Spec::And(c) => c.iter().map(Spec::valid).fold(true, |a, b| a & b),
        }
    }

    fn eval(&self, topic: &[u8], root: u128) -> bool {
        match self {
            Spec::All => true,
            Spec::Topic(p) => ref_pattern_match(p, topic),
            Spec::Regex(_, re) => {
                let re = re.as_ref().expect("valid filters have a reference regex");
                std::str::from_utf8(topic).is_ok_and(|t| re.is_match(Input::new(t).anchored(Anchored::Yes)))
            }
            Spec::Root(id) => *id == root,
            Spec::Any(c) => c.iter().any(|s| s.eval(topic, root)),
            Spec::And(c) => c.iter().all(|s| s.eval(topic, root)),
        }
    }
}

const LEVELS: &[&str] = &[
    "a", "b", "c", "ab", "+", "#", "", "a+", "#b", "é", "x y", "\u{0}", "\u{7f}", "Z", "events", "+#",
];
const REGEX_ATOMS: &[&str] = &[
    "a", "b", ".", "\\.", "(", ")", "|", "*", "+", "?", "[ab]", "^", "$", "(?x)", "#", "\n", "\\A", "\\z", "{2}",
    "(?i)", "[", "]", "\\", "é", "\\d", "(?:", "{1,3}", "\\b",
];

/// A string either built from `pool` (joined with `sep`) or taken raw.
fn text(b: &mut Bytes, pool: &[&str], sep: &str) -> String {
    let head = b.u8();
    let n = usize::from(head & 0x0f);
    if head & 0x80 != 0 {
        return String::from_utf8_lossy(b.take(n * 4)).into_owned();
    }
    let parts: Vec<&str> = (0..n.max(1)).map(|_| pool[usize::from(b.u8()) % pool.len()]).collect();
    let mut s = parts.join(sep);
    if head & 0x40 != 0 {
        // A long text, around the length limits.
        let extra = if head & 0x20 != 0 { MAX_REGEX_LEN } else { MAX_TOPIC_LEN };
        while s.len() < extra - 2 {
            s.push_str("a.");
        }
        s.truncate(extra - 2 + usize::from(b.u8() % 5));
        while s.len() < extra - 2 {
            s.push('b');
        }
    }
    s
}

fn spec(b: &mut Bytes, depth: u32, leaves: &mut usize) -> Spec {
    *leaves += 1;
    let kind = b.u8() % if depth >= 4 || *leaves > 80 { 4 } else { 6 };
    match kind {
        0 => Spec::All,
        1 => Spec::Topic(text(b, LEVELS, ".")),
        2 => {
            let r = text(b, REGEX_ATOMS, "");
            let reference = meta::Regex::new(&r).ok();
            Spec::Regex(r, reference)
        }
        3 => Spec::Root(u128::from(b.u8() % 4)),
        k => {
            let n = usize::from(b.u8() % 8);
            let children = (0..n).map(|_| spec(b, depth + 1, leaves)).collect();
            if k == 4 {
                Spec::Any(children)
            } else {
                Spec::And(children)
            }
        }
    }
}

/// Runs one input: builds a filter tree and topics from `data` and checks the
/// core against the reference.
pub fn run(data: &[u8]) {
    let mut b = Bytes::new(data);
    let mut leaves = 0;
    let spec = spec(&mut b, 0, &mut leaves);
    let filter = spec.filter();
    let _ = filter.to_string();
    let _ = filter.depends_only_on_topic();
    let valid = spec.valid();
    assert_eq!(filter.validate().is_ok(), valid, "filter validity: {spec:?}");
    let compiled = filter.compile();
    assert_eq!(compiled.is_ok(), valid, "filter compiles: {spec:?}");
    let mut queries: Vec<(Vec<u8>, u128)> = Vec::new();
    while !b.is_empty() && queries.len() < 64 {
        let topic = if b.u8() & 3 == 0 {
            let n = usize::from(b.u8() % 24);
            b.take(n).to_vec()
        } else {
            text(&mut b, LEVELS, ".").into_bytes()
        };
        if let Ok(t) = std::str::from_utf8(&topic) {
            assert_eq!(validate_topic(t).is_ok(), ref_topic_valid(t), "topic {t:?} validity");
        }
        queries.push((topic, u128::from(b.u8() % 4)));
    }
    let Ok(mut matcher) = compiled else {
        return;
    };
    for round in 0..2 {
        for (topic, root) in &queries {
            let want = spec.eval(topic, *root);
            let got = matcher.matches(topic, *root);
            assert_eq!(
                got,
                want,
                "round {round}: topic {:?} root {root} filter {spec:?}",
                String::from_utf8_lossy(topic)
            );
        }
    }
}
