//! `shmbus ls`: every bus on the machine, one row each. Objects that cannot
//! be opened (permissions, foreign or corrupt) get a row with an error
//! instead of failing the listing.

use std::io::Write;

use clap::Args;
use serde::Serialize;
use shmbus::Bus;

use crate::error::CliResult;
use crate::segment_info::{file_info, read_header};
use crate::size::format_size;
use crate::table::Table;

/// Arguments of `shmbus ls`.
#[derive(Args, Debug)]
#[command(after_help = "\
Columns: NAME, SIZE (segment), USED (retained log bytes), FRAMES (retained),
SUBS (live subscribers), PRODUCERS (producer slots in use), MODE, and
STATUS (ok, or why the bus could not be opened).

Examples:
  shmbus ls
  shmbus ls --json | jq -r '.[] | select(.subscribers == 0) | .name'")]
pub struct LsArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One row of `ls`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Row {
    /// Bus name.
    pub name: String,
    /// Segment size in bytes (file size when the bus cannot be opened).
    pub size: Option<u64>,
    /// Retained log bytes.
    pub used: Option<u64>,
    /// Retained frames (seq range).
    pub frames: Option<u64>,
    /// Live subscribers.
    pub subscribers: Option<usize>,
    /// Producer slots in use.
    pub producers: Option<usize>,
    /// Frames published since creation.
    pub published: Option<u64>,
    /// File mode, octal.
    pub mode: Option<String>,
    /// Why the bus could not be opened, if it could not.
    pub error: Option<String>,
}

/// Inspect bus `name`, never failing: problems go into `error`.
pub fn row(name: &str) -> Row {
    let info = file_info(name).ok();
    let mut row = Row {
        name: name.to_string(),
        size: info.as_ref().map(|i| i.size),
        used: None,
        frames: None,
        subscribers: None,
        producers: None,
        published: None,
        mode: info.as_ref().map(|i| format!("{:04o}", i.mode)),
        error: None,
    };
    // Check the header ourselves first: the core waits up to 2 s for a
    // segment that looks half-created, which a listing must not do.
    if let Err(e) = read_header(name) {
        row.error = Some(e);
        return row;
    }
    match Bus::open(name) {
        Ok(bus) => {
            let s = bus.stats();
            row.size = Some(s.memory_limit);
            row.used = Some(s.bytes_used);
            row.frames = Some(s.next_seq.saturating_sub(s.oldest_seq));
            row.subscribers = Some(s.subscribers.iter().filter(|x| x.alive).count());
            row.producers = Some(s.producers.len());
            row.published = Some(s.published);
        }
        Err(e) => {
            let text = match e {
                shmbus::Error::PermissionDenied { .. } => "permission denied".to_string(),
                shmbus::Error::Incompatible { reason, .. } => reason,
                other => other.to_string(),
            };
            row.error = Some(text);
        }
    }
    row
}

/// Run `shmbus ls`.
pub fn run(args: &LsArgs, out: &mut dyn Write) -> CliResult {
    let rows: Vec<Row> = Bus::list()?.iter().map(|n| row(n)).collect();
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &rows).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    let mut table = Table::new(&["NAME", "SIZE", "USED", "FRAMES", "SUBS", "PRODUCERS", "MODE", "STATUS"]);
    table.right_align(&[1, 2, 3, 4, 5]);
    let q = |v: Option<String>| v.unwrap_or_else(|| "?".to_string());
    for r in &rows {
        table.row(vec![
            r.name.clone(),
            q(r.size.map(format_size)),
            q(r.used.map(format_size)),
            q(r.frames.map(|v| v.to_string())),
            q(r.subscribers.map(|v| v.to_string())),
            q(r.producers.map(|v| v.to_string())),
            q(r.mode.clone()),
            r.error
                .as_ref()
                .map_or_else(|| "ok".to_string(), |e| format!("error: {e}")),
        ]);
    }
    write!(out, "{}", table.render())?;
    Ok(())
}
