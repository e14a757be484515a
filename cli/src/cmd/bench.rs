//! `shmbus bench`: the cross-process latency/throughput harness of
//! `shmbus-benches`, with a progress bar on standard error and the results
//! table (or JSON) on standard output.
//!
//! The harness creates and removes its own temporary buses (named
//! `bench-PID-...`); its child processes are this binary re-executed, which
//! is why `main` calls `maybe_run_child` before anything else.

use std::io::Write;
use std::time::Instant;

use clap::Args;
use shmbus_benches::harness::{self, Options, PAYLOAD_SIZES, SCENARIOS};

use crate::error::{CliError, CliResult};
use crate::signal;
use crate::size::parse_size;

/// Arguments of `shmbus bench`.
#[derive(Args, Debug)]
#[command(after_help = "\
Scenarios: latency, latency-pinned, latency-park, throughput, throughput-pinned, mpsc,
fanout, group
(default: all). Payload sizes: 8, 64, 1KiB, 16KiB (default: 64).
Every shmbus scenario runs in separate processes on temporary buses; the
in-process crossbeam ArrayQueue is measured alongside as a baseline.

Examples:
  shmbus bench --quick
  shmbus bench sensors --quick        (temporary buses named bench-PID-N-sensors-...)
  shmbus bench --scenarios latency,throughput --sizes 64,1KiB --runs 5
  shmbus bench --scenarios fanout --frames 2000000 --json > fanout.json")]
pub struct BenchArgs {
    /// Label for the temporary buses the harness creates (named
    /// bench-PID-N-NAME-..., removed afterwards); existing buses are never
    /// touched.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// Comma-separated scenarios to run (default: all).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_scenario)]
    pub scenarios: Vec<String>,
    /// Comma-separated payload sizes (8, 64, 1KiB, 16KiB).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_payload, default_value = "64")]
    pub sizes: Vec<usize>,
    /// Runs per scenario and peer, interleaved.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub runs: usize,
    /// Measured round trips per latency run.
    #[arg(long, value_name = "N", default_value_t = 200_000)]
    pub round_trips: u64,
    /// Frames per throughput run.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub frames: u64,
    /// Smoke-test sizes: one run, few frames (seconds instead of minutes).
    #[arg(long)]
    pub quick: bool,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Do not show progress on standard error.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_scenario(text: &str) -> Result<String, String> {
    if SCENARIOS.contains(&text) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "unknown scenario {text:?} (expected one of {})",
            SCENARIOS.join(", ")
        ))
    }
}

fn parse_payload(text: &str) -> Result<usize, String> {
    let bytes = parse_size(text)?;
    usize::try_from(bytes)
        .ok()
        .filter(|b| PAYLOAD_SIZES.contains(b))
        .ok_or_else(|| format!("unsupported payload size {text:?} (expected one of {PAYLOAD_SIZES:?} bytes)"))
}

/// A progress bar over (scenario, size) steps, driven by the harness's
/// progress lines (which start with the scenario name and the size).
pub struct Progress {
    steps: Vec<(String, usize)>,
    done: usize,
    start: Instant,
    tty: bool,
}

impl Progress {
    /// Steps in the order the harness runs them.
    pub fn new(args: &BenchArgs, tty: bool) -> Progress {
        let steps = SCENARIOS
            .iter()
            .filter(|s| args.scenarios.is_empty() || args.scenarios.iter().any(|x| x == *s))
            .flat_map(|s| args.sizes.iter().map(move |&z| (s.to_string(), z)))
            .collect();
        Progress {
            steps,
            done: 0,
            start: Instant::now(),
            tty,
        }
    }

    /// Advance to the step `line` belongs to, and render the status line.
    pub fn update(&mut self, line: &str) -> String {
        let mut words = line.split_whitespace();
        let scenario = words.next().unwrap_or("").trim_end_matches(':');
        let scenario = scenario.split('/').next().unwrap_or(scenario);
        let size: Option<usize> = words.next().and_then(|w| w.parse().ok());
        if let Some(i) = self
            .steps
            .iter()
            .position(|(s, z)| s == scenario && size.is_none_or(|size| size == *z))
        {
            self.done = self.done.max(i);
        }
        let total = self.steps.len().max(1);
        const WIDTH: usize = 20;
        let filled = self.done * WIDTH / total;
        format!(
            "[{}{}] {}/{total} {:>4}s  {line}",
            "#".repeat(filled),
            ".".repeat(WIDTH - filled),
            self.done + 1,
            self.start.elapsed().as_secs()
        )
    }

    /// Print a progress line to standard error (rewriting it on a terminal).
    pub fn show(&mut self, line: &str) {
        let text = self.update(line);
        let mut err = std::io::stderr();
        let _ = if self.tty {
            write!(err, "\r\x1b[2K{}", text.chars().take(160).collect::<String>())
        } else {
            writeln!(err, "{text}")
        };
        let _ = err.flush();
    }

    /// Clear the progress line on a terminal.
    pub fn finish(&self) {
        if self.tty {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

/// Run `shmbus bench`.
pub fn run(args: &BenchArgs, out: &mut dyn Write) -> CliResult {
    let opts = Options {
        scenarios: args.scenarios.clone(),
        payload_sizes: args.sizes.clone(),
        runs: args.runs,
        round_trips: args.round_trips,
        frames: args.frames,
        quick: args.quick,
    };
    if let Some(name) = &args.name {
        harness::set_bus_label(name).map_err(CliError::usage)?;
    }
    let mut progress = Progress::new(args, signal::stderr_is_tty());
    let quiet = args.quiet;
    let result = harness::run(&opts, &mut |line| {
        if !quiet {
            progress.show(line);
        }
    });
    progress.finish();
    let results = result.map_err(|e| CliError::runtime(format!("bench failed: {e}")))?;
    if args.json {
        write!(out, "{}", harness::to_json(&results))?;
    } else {
        write!(out, "{}", harness::render_table(&results))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(argv: &[&str]) -> Result<BenchArgs, clap::Error> {
        Wrapper::try_parse_from(std::iter::once("bench").chain(argv.iter().copied())).map(|w| w.args)
    }

    #[test]
    fn scenario_and_size_lists_are_validated() {
        let a = parse(&["--scenarios", "latency,fanout", "--sizes", "8,1KiB"]).unwrap();
        assert_eq!(a.scenarios, vec!["latency", "fanout"]);
        assert_eq!(a.sizes, vec![8, 1024]);
        assert!(parse(&["--scenarios", "warp"])
            .unwrap_err()
            .to_string()
            .contains("warp"));
        assert!(parse(&["--sizes", "100"])
            .unwrap_err()
            .to_string()
            .contains("unsupported"));
    }

    #[test]
    fn help_names_every_scenario() {
        use clap::CommandFactory;
        let help = Wrapper::command().get_after_help().expect("after_help").to_string();
        let listed = help.split("(default: all)").next().unwrap_or("");
        for s in SCENARIOS {
            assert!(
                listed.split([',', ' ', '\n']).any(|w| w == *s),
                "`shmbus bench --help` does not list scenario {s}"
            );
        }
    }

    #[test]
    fn progress_advances_with_the_scenario_in_the_line() {
        let a = parse(&["--scenarios", "latency,throughput", "--sizes", "8,64"]).unwrap();
        let mut p = Progress::new(&a, false);
        assert!(p.update("latency 8 B run 1/5: shmbus p50 1µs").contains("] 1/4 "));
        assert!(p.update("throughput 64 B run 1/5: x").contains("] 4/4 "));
        // Never goes backwards.
        assert!(p.update("latency 8 B run 2/5").contains("] 4/4 "));
    }
}
