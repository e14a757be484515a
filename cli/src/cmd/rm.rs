//! `shmbus rm`: remove buses. Processes that have a bus open keep using it
//! until they exit; a later `create` starts a fresh one.

use std::io::Write;

use clap::Args;
use shmbus::Bus;

use crate::args::parse_name;
use crate::error::{CliError, CliResult};

/// Arguments of `shmbus rm`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  shmbus rm orders
  shmbus rm old1 old2 --force")]
pub struct RmArgs {
    /// Names of the buses to remove.
    #[arg(required = true, value_parser = parse_name)]
    pub names: Vec<String>,
    /// Ignore buses that do not exist.
    #[arg(long, short)]
    pub force: bool,
}

/// Run `shmbus rm`: removes every name it can; fails with the first error.
pub fn run(args: &RmArgs, _out: &mut dyn Write) -> CliResult {
    let mut first: Option<CliError> = None;
    for name in &args.names {
        match Bus::remove(name) {
            Ok(()) => {}
            Err(shmbus::Error::NotFound { .. }) if args.force => {}
            Err(e) => {
                first.get_or_insert(e.into());
            }
        }
    }
    first.map_or(Ok(()), Err)
}
