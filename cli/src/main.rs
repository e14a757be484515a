//! `shmbus`: create, inspect, tail, publish to, remove, benchmark and demo
//! shmbus buses from a shell.
//!
//! Errors are printed as one line on standard error; see [`error`] for the
//! exit codes.

mod args;
mod cmd;
mod error;
mod segment_info;
mod signal;
mod size;
mod table;

use std::io::{self, BufWriter, Write};

use clap::{Parser, Subcommand};

use crate::error::{CliError, EXIT_USAGE};

const AFTER_HELP: &str = "\
Exit codes:
  0  success (also: Ctrl-C or a closed output pipe while tailing)
  1  runtime error: bus not found or already exists, permission denied, bus full, I/O
  2  usage error: bad arguments, size unit, mode, name, topic pattern or regex

Examples:
  shmbus create orders --memory-limit 64MiB
  shmbus pub orders events.order.created '{\"id\": 1}'
  shmbus tail orders 'events.#' --from oldest --format json | jq .
  shmbus stat orders --watch
  shmbus ls
  shmbus rm orders
  shmbus bench --quick
  shmbus demo";

/// Command-line interface of `shmbus`.
#[derive(Parser, Debug)]
#[command(
    name = "shmbus",
    version,
    about = "Create, inspect, tail, publish to and remove shmbus shared-memory buses",
    after_help = AFTER_HELP,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a bus.
    Create(cmd::create::CreateArgs),
    /// List every bus on this machine.
    Ls(cmd::ls::LsArgs),
    /// Show a bus's configuration, counters and subscribers.
    Stat(cmd::stat::StatArgs),
    /// Print frames as they arrive.
    Tail(cmd::tail::TailArgs),
    /// Publish one frame, or one per line of standard input.
    Pub(cmd::publish::PubArgs),
    /// Remove buses.
    Rm(cmd::rm::RmArgs),
    /// Benchmark cross-process latency and throughput against a baseline.
    Bench(cmd::bench::BenchArgs),
    /// Run a cross-process demo on a temporary bus (what `make demo` runs).
    Demo(cmd::demo::DemoArgs),
    /// Demo producer process (internal).
    #[command(name = "__demo-producer", hide = true)]
    DemoProducer(cmd::demo::ProducerArgs),
    /// Demo subscriber process (internal).
    #[command(name = "__demo-subscriber", hide = true)]
    DemoSubscriber(cmd::demo::SubscriberArgs),
}

/// Parse arguments; value errors become one line, help and version print
/// and exit 0, other usage errors keep clap's message; all usage errors exit 2.
fn parse() -> Cli {
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind as K;
            match e.kind() {
                K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
                K::InvalidValue | K::ValueValidation => {
                    let text = e.render().to_string();
                    let line = text
                        .lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("error: invalid value");
                    let _ = writeln!(io::stderr(), "{line}");
                    std::process::exit(EXIT_USAGE);
                }
                _ => {
                    let _ = write!(io::stderr(), "{}", e.render());
                    std::process::exit(EXIT_USAGE);
                }
            }
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = match &cli.command {
        Command::Create(a) => cmd::create::run(a, &mut out),
        Command::Ls(a) => cmd::ls::run(a, &mut out),
        Command::Stat(a) => cmd::stat::run(a, &mut out),
        Command::Tail(a) => cmd::tail::run(a, &mut out),
        Command::Pub(a) => cmd::publish::run(a, &mut io::stdin().lock(), &mut out),
        Command::Rm(a) => cmd::rm::run(a, &mut out),
        Command::Bench(a) => cmd::bench::run(a, &mut out),
        Command::Demo(a) => cmd::demo::run(a, &mut out),
        Command::DemoProducer(a) => cmd::demo::run_producer(a, &mut out),
        Command::DemoSubscriber(a) => cmd::demo::run_subscriber(a, &mut out),
    };
    // Flush even after an error so partial output is not lost; a closed
    // pipe here is still a quiet exit.
    let flushed = out.flush().map_err(CliError::from);
    result.and(flushed)
}

fn main() {
    // The bench harness re-executes this binary for its child processes.
    shmbus_benches::harness::maybe_run_child();
    let cli = parse();
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e @ CliError::Quiet) => e.exit_code(),
        Err(e) => {
            let _ = writeln!(io::stderr(), "error: {}", error::one_line(&e.to_string()));
            e.exit_code()
        }
    };
    std::process::exit(code);
}
