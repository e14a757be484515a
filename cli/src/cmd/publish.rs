//! `shmbus pub`: publish one frame, or one frame per line of standard input.

use std::io::{BufRead, Write};

use clap::{Args, ValueEnum};
use shmbus::{Bus, EventType, Kind, Meta};

use crate::args::{parse_hex_id, parse_name};
use crate::error::{CliError, CliResult};

/// Frame kinds accepted by `pub --kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// A domain event.
    Event,
    /// A log record.
    Log,
    /// An alert.
    Alert,
    /// Control traffic.
    Control,
}

/// Event types accepted by `pub --event-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EventTypeArg {
    /// Unspecified.
    Other,
    /// An object was created.
    New,
    /// An object was updated.
    Update,
    /// An object was deleted.
    Delete,
}

/// Arguments of `shmbus pub`.
#[derive(Args, Debug)]
#[command(after_help = "\
Without DATA, or with DATA '-', every line of standard input is published as
one frame (without its line ending).

Examples:
  shmbus pub orders events.order.created '{\"id\": 42}'
  shmbus pub orders events.order.created '{\"id\": 42}' --event-type new --correlation-id 2a
  printf 'a\\nb\\nc\\n' | shmbus pub orders logs.app --kind log
  shmbus pub orders load.test payload --repeat 100000")]
pub struct PubArgs {
    /// Bus name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Topic, '.'-separated levels without wildcards (e.g. events.order.created).
    pub topic: String,
    /// Payload; '-' or absent reads one frame per line from standard input.
    pub data: Option<String>,
    /// Frame kind.
    #[arg(long, value_enum, default_value_t = KindArg::Event)]
    pub kind: KindArg,
    /// Event type.
    #[arg(long, value_enum, default_value_t = EventTypeArg::Other)]
    pub event_type: EventTypeArg,
    /// Correlation id (hex, up to 32 digits).
    #[arg(long, value_name = "HEX", value_parser = parse_hex_id)]
    pub correlation_id: Option<u128>,
    /// Parent id (hex).
    #[arg(long, value_name = "HEX", value_parser = parse_hex_id)]
    pub parent_id: Option<u128>,
    /// Root id (hex); subscribers can filter on it.
    #[arg(long, value_name = "HEX", value_parser = parse_hex_id)]
    pub root_id: Option<u128>,
    /// Publish each frame this many times.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub repeat: u64,
    /// Print the seq of every published frame.
    #[arg(long, short)]
    pub verbose: bool,
}

impl PubArgs {
    /// The metadata of the frames to publish.
    pub fn meta(&self) -> Meta {
        let kind = match self.kind {
            KindArg::Event => Kind::Event,
            KindArg::Log => Kind::Log,
            KindArg::Alert => Kind::Alert,
            KindArg::Control => Kind::Control,
        };
        let event_type = match self.event_type {
            EventTypeArg::Other => EventType::Other,
            EventTypeArg::New => EventType::New,
            EventTypeArg::Update => EventType::Update,
            EventTypeArg::Delete => EventType::Delete,
        };
        Meta::default()
            .kind(kind)
            .event_type(event_type)
            .correlation_id(self.correlation_id.unwrap_or(0))
            .parent_id(self.parent_id.unwrap_or(0))
            .root_id(self.root_id.unwrap_or(0))
    }
}

/// Strip one trailing `\n` or `\r\n`.
pub fn strip_line_end(mut line: &[u8]) -> &[u8] {
    if let Some(l) = line.strip_suffix(b"\n") {
        line = l;
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
    }
    line
}

/// Run `shmbus pub`, reading lines from `input` when there is no DATA.
pub fn run(args: &PubArgs, input: &mut dyn BufRead, out: &mut dyn Write) -> CliResult {
    shmbus::filter::validate_topic(&args.topic)?;
    let bus = Bus::open(&args.name)?;
    let meta = args.meta();
    let send = |payload: &[u8], out: &mut dyn Write| -> CliResult {
        for _ in 0..args.repeat {
            let seq = bus.publish_with(&meta, &args.topic, payload)?;
            if args.verbose {
                writeln!(out, "{seq}")?;
            }
        }
        Ok(())
    };
    match args.data.as_deref() {
        Some(data) if data != "-" => send(data.as_bytes(), out)?,
        _ => {
            let mut line = Vec::new();
            let mut n = 0u64;
            loop {
                line.clear();
                let read = input
                    .read_until(b'\n', &mut line)
                    .map_err(|e| CliError::runtime(format!("reading standard input: {e}")))?;
                if read == 0 {
                    break;
                }
                n += 1;
                send(strip_line_end(&line), out).map_err(|e| annotate(e, n))?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// Say which input line a publish error came from.
fn annotate(e: CliError, line: u64) -> CliError {
    match e {
        CliError::Fail { code, message } => CliError::Fail {
            code,
            message: format!("line {line}: {message}"),
        },
        quiet => quiet,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_are_stripped_once() {
        assert_eq!(strip_line_end(b"abc\n"), b"abc");
        assert_eq!(strip_line_end(b"abc\r\n"), b"abc");
        assert_eq!(strip_line_end(b"abc"), b"abc");
        assert_eq!(strip_line_end(b"abc\n\n"), b"abc\n");
    }

    #[test]
    fn errors_from_stdin_name_the_line() {
        let e = annotate(CliError::runtime("bus is full"), 3);
        assert_eq!(e.to_string(), "line 3: bus is full");
        assert_eq!(e.exit_code(), 1);
    }
}
