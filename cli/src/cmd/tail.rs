//! `shmbus tail`: print frames as they arrive, as text, JSON lines or raw
//! payloads. Stops cleanly (status 0) on Ctrl-C/SIGTERM, when the reader of
//! the output goes away (`shmbus tail X | head -1`), after `--count` frames
//! or after `--timeout` without a frame.

use std::io::Write;
use std::time::{Duration, Instant};

use base64::Engine;
use clap::{Args, ValueEnum};
use serde::Serialize;
use shmbus::{Bus, Filter, Frame, Start, SubscribeOptions};

use crate::args::{format_hex_id, format_timestamp, parse_duration, parse_name, parse_start};
use crate::error::{CliError, CliResult};
use crate::signal;

/// Output formats of `tail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One human-readable line per frame.
    Text,
    /// One JSON object per line (for jq).
    Json,
    /// The payload bytes followed by a newline.
    Raw,
}

/// Arguments of `shmbus tail`.
#[derive(Args, Debug)]
#[command(after_help = "\
Patterns are MQTT-style over '.'-separated levels: '+' matches one level, '#'
any number of trailing levels. --regex matches from the start of the topic.
With both, a frame must match both.

Stops with status 0 on Ctrl-C, on SIGTERM and when the output pipe closes.

Examples:
  shmbus tail orders
  shmbus tail orders 'events.+.created' --from oldest
  shmbus tail orders --regex '(new|update):' --format json | jq .payload
  shmbus tail orders --group workers --count 10 --timeout 5s
  shmbus tail orders --format raw > payloads.txt")]
pub struct TailArgs {
    /// Bus name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Topic pattern, e.g. `events.#` or `sensors.+.temp` (default: every topic).
    pub pattern: Option<String>,
    /// Regex the topic must match (from its start).
    #[arg(long, value_name = "RE")]
    pub regex: Option<String>,
    /// Where to start: oldest, newest or a seq number.
    #[arg(long, value_name = "oldest|newest|SEQ", default_value = "newest", value_parser = parse_start)]
    pub from: Start,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit after printing this many frames.
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,
    /// Exit after this long without a frame.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Join this consumer group (each frame goes to one member) instead of
    /// receiving every frame.
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
}

impl TailArgs {
    /// The filter described by the pattern and regex, validated.
    pub fn filter(&self) -> Result<Filter, CliError> {
        let topic = self.pattern.as_deref().map(Filter::try_topic).transpose()?;
        let regex = self.regex.as_deref().map(Filter::try_regex).transpose()?;
        Ok(match (topic, regex) {
            (Some(t), Some(r)) => t.and(r),
            (Some(f), None) | (None, Some(f)) => f,
            (None, None) => Filter::all(),
        })
    }
}

/// A frame as one JSON object.
#[derive(Serialize)]
pub struct FrameJson<'a> {
    seq: u64,
    topic: &'a str,
    timestamp_ns: u64,
    kind: &'static str,
    event_type: &'static str,
    producer: u32,
    correlation_id: Option<String>,
    parent_id: Option<String>,
    root_id: Option<String>,
    payload: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_encoding: Option<&'static str>,
}

fn id(v: u128) -> Option<String> {
    (v != 0).then(|| format_hex_id(v))
}

impl<'a> FrameJson<'a> {
    /// Convert a received frame; non-UTF-8 payloads are base64-encoded.
    pub fn new(f: &Frame<'a>) -> FrameJson<'a> {
        let c = f.correlation();
        let (payload, payload_encoding) = match std::str::from_utf8(f.payload()) {
            Ok(s) => (s.to_string(), None),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(f.payload()),
                Some("base64"),
            ),
        };
        FrameJson {
            seq: f.seq(),
            topic: f.topic(),
            timestamp_ns: f.timestamp(),
            kind: f.kind().as_str(),
            event_type: f.event_type().as_str(),
            producer: f.producer(),
            correlation_id: id(c.id),
            parent_id: id(c.parent),
            root_id: id(c.root),
            payload,
            payload_encoding,
        }
    }
}

/// Payload bytes as one printable line: UTF-8 with control characters
/// escaped, other bytes as `\xNN`.
pub fn printable(payload: &[u8]) -> String {
    let mut out = String::with_capacity(payload.len());
    let mut rest = payload;
    while !rest.is_empty() {
        let (valid, invalid) = match std::str::from_utf8(rest) {
            Ok(s) => (s, &rest[rest.len()..]),
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                let bad_len = e.error_len().unwrap_or(bad.len());
                (std::str::from_utf8(good).unwrap_or_default(), &bad[..bad_len])
            }
        };
        for c in valid.chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in invalid {
            out.push_str(&format!("\\x{b:02x}"));
        }
        rest = &rest[valid.len() + invalid.len()..];
    }
    out
}

/// Write one frame in `format`.
pub fn write_frame(out: &mut dyn Write, format: Format, f: &Frame<'_>) -> std::io::Result<()> {
    match format {
        Format::Text => {
            let mut meta = f.kind().as_str().to_string();
            if f.event_type() != shmbus::EventType::Other {
                meta.push('/');
                meta.push_str(f.event_type().as_str());
            }
            let c = f.correlation();
            let corr = if c.id != 0 {
                format!(" corr={}", format_hex_id(c.id))
            } else {
                String::new()
            };
            writeln!(
                out,
                "{} #{} {} {} pid={}{corr} {}",
                format_timestamp(f.timestamp()),
                f.seq(),
                f.topic(),
                meta,
                f.producer(),
                printable(f.payload())
            )
        }
        Format::Json => {
            serde_json::to_writer(&mut *out, &FrameJson::new(f))?;
            out.write_all(b"\n")
        }
        Format::Raw => {
            out.write_all(f.payload())?;
            out.write_all(b"\n")
        }
    }
}

/// How long one wait lasts, so signals and closed pipes are noticed quickly.
const SLICE: Duration = Duration::from_millis(100);

/// Run `shmbus tail`.
pub fn run(args: &TailArgs, out: &mut dyn Write) -> CliResult {
    let filter = args.filter()?;
    let bus = Bus::open(&args.name)?;
    let opts = SubscribeOptions {
        start: args.from,
        ..Default::default()
    };
    let mut sub = match &args.group {
        Some(g) => bus.join_group_with(g, filter, opts)?,
        None => bus.subscribe_with(filter, opts)?,
    };
    signal::install();
    if args.count == Some(0) {
        return Ok(());
    }
    let mut printed = 0u64;
    let mut last_frame = Instant::now();
    let mut pending = false;
    loop {
        if signal::stop_requested() {
            break;
        }
        // Drain what is ready without waiting; flush before waiting.
        let wait = if pending { Duration::ZERO } else { SLICE };
        let wait = match args.timeout {
            Some(t) => wait.min(t.saturating_sub(last_frame.elapsed())),
            None => wait,
        };
        match sub.recv_timeout(wait)? {
            Some(frame) => {
                write_frame(out, args.format, &frame)?;
                pending = true;
                printed += 1;
                last_frame = Instant::now();
                if args.count.is_some_and(|n| printed >= n) {
                    break;
                }
            }
            None => {
                if pending {
                    out.flush()?;
                    pending = false;
                    continue;
                }
                if args.timeout.is_some_and(|t| last_frame.elapsed() >= t) {
                    break;
                }
                if signal::stdout_closed() {
                    return Err(CliError::Quiet);
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_invalid_bytes_are_escaped() {
        assert_eq!(printable(b"plain text"), "plain text");
        assert_eq!(printable(b"a\nb\tc"), "a\\nb\\tc");
        assert_eq!(printable(b"ok\xff\xfe"), "ok\\xff\\xfe");
        assert_eq!(printable("héllo".as_bytes()), "héllo");
    }

    fn args(pattern: Option<&str>, regex: Option<&str>) -> TailArgs {
        TailArgs {
            name: "x".into(),
            pattern: pattern.map(str::to_string),
            regex: regex.map(str::to_string),
            from: Start::Newest,
            format: Format::Text,
            count: None,
            timeout: None,
            group: None,
        }
    }

    #[test]
    fn pattern_and_regex_combine_with_and() {
        let f = args(Some("a.#"), Some("a\\.b")).filter().unwrap();
        let mut m = f.compile().unwrap();
        assert!(m.matches(b"a.b.c", 0));
        assert!(!m.matches(b"a.c", 0));
        assert!(Filter::all().to_string() == args(None, None).filter().unwrap().to_string());
    }

    #[test]
    fn bad_pattern_and_bad_regex_are_usage_errors() {
        let e = args(Some("a.#.b"), None).filter().unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("invalid topic pattern"), "{e}");
        let e = args(None, Some("(unclosed")).filter().unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("invalid regex"), "{e}");
    }
}
