//! `shmbus stat`: configuration, counters, subscribers, groups and producers
//! of one bus; `--watch` refreshes like `top` and adds rates per second.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use shmbus::{Bus, Stats};

use crate::args::{format_timestamp, parse_duration, parse_name};
use crate::error::{CliError, CliResult};
use crate::segment_info::{file_info, read_header, ConfigView};
use crate::signal;
use crate::size::format_size;
use crate::table::Table;

/// Arguments of `shmbus stat`.
#[derive(Args, Debug)]
#[command(after_help = "\
Subscriber columns: PID, ALIVE, GROUP, FILTER, NEXT_SEQ, LAG (frames not yet
looked at), LAG_BYTES, DELIVERED, MISSED (lost to eviction), and with --watch
RATE (frames delivered per second).

Examples:
  shmbus stat orders
  shmbus stat orders --watch
  shmbus stat orders --watch --interval 500ms --iterations 10 > log.txt
  shmbus stat orders --json | jq '.subscribers[] | select(.lag_frames > 1000)'")]
pub struct StatArgs {
    /// Bus name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Refresh until Ctrl-C, showing rates per second.
    #[arg(long, short)]
    pub watch: bool,
    /// Time between refreshes with --watch.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// With --watch, stop after this many refreshes.
    #[arg(long, value_name = "N")]
    pub iterations: Option<u64>,
    /// Print JSON (with --watch: one object per line per refresh).
    #[arg(long)]
    pub json: bool,
}

/// Per-second rates between two snapshots.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Rates {
    /// Frames published per second.
    pub published_per_sec: f64,
    /// Frames evicted per second.
    pub evicted_per_sec: f64,
    /// Frames delivered per second, per subscriber row (same order).
    pub delivered_per_sec: Vec<Option<f64>>,
    /// Frames published per second, per producer row (same order).
    pub producer_per_sec: Vec<Option<f64>>,
}

/// Rates from `prev` to `cur`, `secs` apart. Rows are matched by position
/// and pid (a table entry reused by another process gets no rate).
pub fn rates(prev: &Stats, cur: &Stats, secs: f64) -> Rates {
    let per = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs.max(1e-9);
    Rates {
        published_per_sec: per(prev.published, cur.published),
        evicted_per_sec: per(prev.evicted, cur.evicted),
        delivered_per_sec: cur
            .subscribers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                prev.subscribers
                    .get(i)
                    .filter(|p| p.pid == s.pid && p.filter == s.filter && p.delivered <= s.delivered)
                    .map(|p| per(p.delivered, s.delivered))
            })
            .collect(),
        producer_per_sec: cur
            .producers
            .iter()
            .map(|p| {
                prev.producers
                    .iter()
                    .find(|q| q.pid == p.pid)
                    .map(|q| per(q.published, p.published))
            })
            .collect(),
    }
}

#[derive(Serialize)]
struct SubJson<'a> {
    pid: u32,
    alive: bool,
    group: Option<&'a str>,
    filter: &'a str,
    position: u64,
    next_seq: u64,
    lag_frames: u64,
    lag_bytes: u64,
    delivered: u64,
    missed: u64,
    abandoned: u64,
}

#[derive(Serialize)]
struct GroupJson<'a> {
    name: &'a str,
    filter: &'a str,
    members: usize,
    next_seq: u64,
    delivered: u64,
    missed: u64,
}

#[derive(Serialize)]
struct ProducerJson {
    pid: u32,
    published: u64,
}

#[derive(Serialize)]
struct StatJson<'a> {
    name: &'a str,
    config: Option<ConfigView>,
    file_mode: Option<String>,
    published: u64,
    claimed: u64,
    evicted: u64,
    rejected: u64,
    aborted: u64,
    abandoned: u64,
    bytes_used: u64,
    data_capacity: u64,
    memory_limit: u64,
    partitions: u64,
    oldest_seq: u64,
    next_seq: u64,
    subscribers: Vec<SubJson<'a>>,
    groups: Vec<GroupJson<'a>>,
    producers: Vec<ProducerJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rates: Option<&'a Rates>,
}

/// The JSON document for one snapshot.
pub fn to_json(s: &Stats, config: Option<ConfigView>, file_mode: Option<u32>, rates: Option<&Rates>) -> String {
    let doc = StatJson {
        name: &s.name,
        config,
        file_mode: file_mode.map(|m| format!("{m:04o}")),
        published: s.published,
        claimed: s.claimed,
        evicted: s.evicted,
        rejected: s.rejected,
        aborted: s.aborted,
        abandoned: s.abandoned,
        bytes_used: s.bytes_used,
        data_capacity: s.data_capacity,
        memory_limit: s.memory_limit,
        partitions: s.partitions,
        oldest_seq: s.oldest_seq,
        next_seq: s.next_seq,
        subscribers: s
            .subscribers
            .iter()
            .map(|x| SubJson {
                pid: x.pid,
                alive: x.alive,
                group: x.group.as_deref(),
                filter: &x.filter,
                position: x.position,
                next_seq: x.next_seq,
                lag_frames: x.lag_frames,
                lag_bytes: x.lag_bytes,
                delivered: x.delivered,
                missed: x.missed,
                abandoned: x.abandoned,
            })
            .collect(),
        groups: s
            .groups
            .iter()
            .map(|g| GroupJson {
                name: &g.name,
                filter: &g.filter,
                members: g.members,
                next_seq: g.next_seq,
                delivered: g.delivered,
                missed: g.missed,
            })
            .collect(),
        producers: s
            .producers
            .iter()
            .map(|p| ProducerJson {
                pid: p.pid,
                published: p.published,
            })
            .collect(),
        rates,
    };
    serde_json::to_string(&doc).expect("stats serialise")
}

fn rate(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |r| format!("{r:.0}/s"))
}

/// The human-readable report for one snapshot.
pub fn to_text(s: &Stats, config: Option<&ConfigView>, file_mode: Option<u32>, rates: Option<&Rates>) -> String {
    let mut o = String::new();
    let mode = file_mode.map_or_else(|| "? (removed?)".to_string(), |m| format!("{m:04o}"));
    o.push_str(&format!("bus {:?}  mode {mode}\n", s.name));
    if let Some(c) = config {
        let overflow = match c.block_timeout_ms {
            Some(ms) => format!("block ({ms:.0} ms)"),
            None => c.overflow.clone(),
        };
        o.push_str(&format!(
            "  config     memory_limit {}, keep_ratio {}, max_frame {}, listeners {}, producers {},\n\
             \x20            overflow {overflow}, claim_timeout {} ms, checksum {}, single_producer {}\n",
            format_size(c.memory_limit),
            c.keep_ratio,
            format_size(u64::from(c.max_frame_size)),
            c.listener_limit,
            c.producer_limit,
            c.claim_timeout_ms,
            if c.checksum { "on" } else { "off" },
            if c.single_producer { "on" } else { "off" },
        ));
        o.push_str(&format!(
            "  created    {} by pid {}\n",
            format_timestamp(c.created_ns),
            c.creator_pid
        ));
    }
    let pct = if s.data_capacity > 0 {
        s.bytes_used as f64 * 100.0 / s.data_capacity as f64
    } else {
        0.0
    };
    o.push_str(&format!(
        "  log        {} used of {} ({pct:.1}%), {} partitions, seq {}..{} ({} frames retained)\n",
        format_size(s.bytes_used),
        format_size(s.data_capacity),
        s.partitions,
        s.oldest_seq,
        s.next_seq,
        s.next_seq.saturating_sub(s.oldest_seq)
    ));
    o.push_str(&format!(
        "  counters   published {}, claimed {}, evicted {}, rejected {}, aborted {}, abandoned {}\n",
        s.published, s.claimed, s.evicted, s.rejected, s.aborted, s.abandoned
    ));
    if let Some(r) = rates {
        o.push_str(&format!(
            "  rates      published {:.0}/s, evicted {:.0}/s\n",
            r.published_per_sec, r.evicted_per_sec
        ));
    }
    o.push('\n');
    let mut header = vec![
        "PID",
        "ALIVE",
        "GROUP",
        "FILTER",
        "NEXT_SEQ",
        "LAG",
        "LAG_BYTES",
        "DELIVERED",
        "MISSED",
    ];
    if rates.is_some() {
        header.push("RATE");
    }
    let mut subs = Table::new(&header);
    subs.right_align(&[0, 4, 5, 6, 7, 8, 9]);
    for (i, x) in s.subscribers.iter().enumerate() {
        let mut cells = vec![
            x.pid.to_string(),
            if x.alive { "yes" } else { "no" }.to_string(),
            x.group.clone().unwrap_or_else(|| "-".to_string()),
            x.filter.clone(),
            x.next_seq.to_string(),
            x.lag_frames.to_string(),
            format_size(x.lag_bytes),
            x.delivered.to_string(),
            x.missed.to_string(),
        ];
        if let Some(r) = rates {
            cells.push(rate(r.delivered_per_sec.get(i).copied().flatten()));
        }
        subs.row(cells);
    }
    o.push_str(&format!("subscribers ({})\n", s.subscribers.len()));
    if !subs.is_empty() {
        o.push_str(&subs.render());
    }
    if !s.groups.is_empty() {
        let mut groups = Table::new(&["GROUP", "FILTER", "MEMBERS", "NEXT_SEQ", "DELIVERED", "MISSED"]);
        groups.right_align(&[2, 3, 4, 5]);
        for g in &s.groups {
            groups.row(vec![
                g.name.clone(),
                g.filter.clone(),
                g.members.to_string(),
                g.next_seq.to_string(),
                g.delivered.to_string(),
                g.missed.to_string(),
            ]);
        }
        o.push_str(&format!("\ngroups ({})\n", s.groups.len()));
        o.push_str(&groups.render());
    }
    o.push_str(&format!("\nproducers ({})\n", s.producers.len()));
    if !s.producers.is_empty() {
        let mut header = vec!["PID", "PUBLISHED"];
        if rates.is_some() {
            header.push("RATE");
        }
        let mut prods = Table::new(&header);
        prods.right_align(&[0, 1, 2]);
        for (i, p) in s.producers.iter().enumerate() {
            let mut cells = vec![p.pid.to_string(), p.published.to_string()];
            if let Some(r) = rates {
                cells.push(rate(r.producer_per_sec.get(i).copied().flatten()));
            }
            prods.row(cells);
        }
        o.push_str(&prods.render());
    }
    o
}

/// Run `shmbus stat`.
pub fn run(args: &StatArgs, out: &mut dyn Write) -> CliResult {
    let bus = Bus::open(&args.name)?;
    let config = read_header(&args.name).ok().map(|h| ConfigView::from_header(&h));
    let file_mode = || file_info(&args.name).ok().map(|i| i.mode);
    if !args.watch {
        let s = bus.stats();
        if args.json {
            writeln!(out, "{}", to_json(&s, config, file_mode(), None))?;
        } else {
            write!(out, "{}", to_text(&s, config.as_ref(), file_mode(), None))?;
        }
        return Ok(());
    }
    signal::install();
    let clear = !args.json && signal::stdout_is_tty();
    let mut prev: Option<(Stats, Instant)> = None;
    let mut n = 0u64;
    loop {
        let now = Instant::now();
        let s = bus.stats();
        let r = prev
            .as_ref()
            .map(|(p, t)| rates(p, &s, now.duration_since(*t).as_secs_f64()));
        let r = Some(r.unwrap_or_else(|| Rates {
            delivered_per_sec: vec![None; s.subscribers.len()],
            producer_per_sec: vec![None; s.producers.len()],
            ..Rates::default()
        }));
        if args.json {
            writeln!(out, "{}", to_json(&s, config.clone(), file_mode(), r.as_ref()))?;
        } else {
            let body = to_text(&s, config.as_ref(), file_mode(), r.as_ref());
            if clear {
                write!(out, "\x1b[H\x1b[2J{body}")?;
            } else {
                writeln!(out, "{body}")?;
            }
        }
        out.flush()?;
        prev = Some((s, now));
        n += 1;
        if args.iterations.is_some_and(|max| n >= max) {
            return Ok(());
        }
        let deadline = now + args.interval;
        while Instant::now() < deadline {
            if signal::stop_requested() {
                return Ok(());
            }
            if signal::stdout_closed() {
                return Err(CliError::Quiet);
            }
            std::thread::sleep(Duration::from_millis(20).min(deadline.saturating_duration_since(Instant::now())));
        }
        if signal::stop_requested() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shmbus::{ProducerStats, SubscriberStats};

    fn stats(published: u64, delivered: u64) -> Stats {
        Stats {
            name: "t".into(),
            published,
            claimed: published,
            evicted: 0,
            rejected: 0,
            aborted: 0,
            abandoned: 0,
            bytes_used: 100,
            data_capacity: 1000,
            memory_limit: 4096,
            keep_ratio: 0.9,
            partitions: 4,
            oldest_seq: 0,
            next_seq: published,
            subscribers: vec![SubscriberStats {
                pid: 7,
                alive: true,
                group: None,
                filter: "all".into(),
                position: 0,
                next_seq: delivered,
                lag_frames: published - delivered,
                lag_bytes: 0,
                delivered,
                missed: 0,
                abandoned: 0,
                corrupt: 0,
            }],
            groups: vec![],
            producers: vec![ProducerStats { pid: 9, published }],
        }
    }

    #[test]
    fn rates_are_deltas_per_second() {
        let r = rates(&stats(100, 50), &stats(300, 150), 2.0);
        assert_eq!(r.published_per_sec, 100.0);
        assert_eq!(r.delivered_per_sec, vec![Some(50.0)]);
        assert_eq!(r.producer_per_sec, vec![Some(100.0)]);
    }

    #[test]
    fn a_reused_subscriber_entry_gets_no_rate() {
        let mut cur = stats(300, 150);
        cur.subscribers[0].pid = 8;
        assert_eq!(rates(&stats(100, 50), &cur, 1.0).delivered_per_sec, vec![None]);
    }

    #[test]
    fn text_report_lists_subscriber_rows_and_counters() {
        let text = to_text(&stats(10, 4), None, Some(0o600), None);
        assert!(text.contains("published 10"), "{text}");
        assert!(text.contains("mode 0600"), "{text}");
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with("7 "))
            .expect("subscriber row");
        assert!(row.contains("all") && row.contains(" 6 "), "{row}");
    }

    #[test]
    fn json_report_parses_back() {
        let v: serde_json::Value = serde_json::from_str(&to_json(&stats(10, 4), None, Some(0o640), None)).unwrap();
        assert_eq!(v["published"], 10);
        assert_eq!(v["file_mode"], "0640");
        assert_eq!(v["subscribers"][0]["lag_frames"], 6);
        assert!(v.get("rates").is_none());
    }
}
