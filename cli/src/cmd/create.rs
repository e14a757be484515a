//! `shmbus create`: create a bus with a given configuration.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use shmbus::{Bus, Config, Overflow};

use crate::args::{parse_duration, parse_mode, parse_name, OverflowArg};
use crate::error::CliResult;
use crate::size::{format_size, parse_size, parse_size_u32};

/// Arguments of `shmbus create`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  shmbus create orders
  shmbus create telemetry --memory-limit 256MiB --max-frame 1MiB --keep-ratio 0.75
  shmbus create alerts --overflow reject --mode 0660
  shmbus create jobs --overflow block --block-timeout 500ms --checksum")]
pub struct CreateArgs {
    /// Name of the new bus (the object /dev/shm/shmbus.NAME).
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Size of the whole segment (units: B, KiB, MiB, GiB, KB, MB, GB).
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub memory_limit: u64,
    /// Fraction of the data kept when the oldest frames are evicted, in (0, 1).
    #[arg(long, value_name = "RATIO", default_value_t = 0.9)]
    pub keep_ratio: f64,
    /// Largest payload of one frame.
    #[arg(long, value_name = "SIZE", default_value = "64KiB", value_parser = parse_size_u32)]
    pub max_frame: u32,
    /// Size of the subscriber table (also bounds the consumer groups).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub listeners: u32,
    /// Size of the producer table (publishing threads at once).
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub producers: u32,
    /// What publishing does when the bus is full.
    #[arg(long, value_enum, default_value_t = OverflowArg::Evict)]
    pub overflow: OverflowArg,
    /// How long `--overflow block` waits for slow subscribers.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub block_timeout: Duration,
    /// File mode of the segment, octal (0600, 660, 0o640); must include 0600.
    #[arg(long, value_name = "MODE", default_value = "0600", value_parser = parse_mode)]
    pub mode: u32,
    /// How long readers wait on an uncommitted claim before skipping it.
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    pub claim_timeout: Duration,
    /// Add a CRC32C checksum to every frame.
    #[arg(long)]
    pub checksum: bool,
    /// Allow only one producer at a time.
    #[arg(long)]
    pub single_producer: bool,
    /// Print nothing on success.
    #[arg(long, short)]
    pub quiet: bool,
}

impl CreateArgs {
    /// The core configuration these arguments describe.
    pub fn config(&self) -> Config {
        let overflow = match self.overflow {
            OverflowArg::Evict => Overflow::Evict,
            OverflowArg::Reject => Overflow::Reject,
            OverflowArg::Block => Overflow::Block(self.block_timeout),
        };
        Config::default()
            .memory_limit(self.memory_limit)
            .keep_ratio(self.keep_ratio)
            .max_frame_size(self.max_frame)
            .listener_limit(self.listeners)
            .producer_limit(self.producers)
            .overflow(overflow)
            .mode(self.mode)
            .claim_timeout(self.claim_timeout)
            .checksum(self.checksum)
            .single_producer(self.single_producer)
    }
}

/// Run `shmbus create`.
pub fn run(args: &CreateArgs, out: &mut dyn Write) -> CliResult {
    let cfg = args.config();
    cfg.validate()?;
    let bus = Bus::create(&args.name, &cfg)?;
    if !args.quiet {
        let stats = bus.stats();
        writeln!(
            out,
            "created bus {:?}: {} segment, {} data in {} partitions, mode {:04o}",
            args.name,
            format_size(stats.memory_limit),
            format_size(stats.data_capacity),
            stats.partitions,
            args.mode
        )?;
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
        args: CreateArgs,
    }

    #[test]
    fn defaults_match_the_core_defaults() {
        let w = Wrapper::try_parse_from(["create", "x"]).unwrap();
        assert_eq!(w.args.config(), Config::default());
    }

    #[test]
    fn flags_map_onto_the_config() {
        let w = Wrapper::try_parse_from([
            "create",
            "x",
            "--memory-limit",
            "8MiB",
            "--max-frame",
            "4KiB",
            "--overflow",
            "block",
            "--block-timeout",
            "250ms",
            "--mode",
            "660",
            "--checksum",
        ])
        .unwrap();
        let expected = Config::default()
            .memory_limit(8 << 20)
            .max_frame_size(4096)
            .overflow(Overflow::Block(Duration::from_millis(250)))
            .mode(0o660)
            .checksum(true);
        assert_eq!(w.args.config(), expected);
    }

    #[test]
    fn bad_size_unit_is_rejected_by_the_parser() {
        let err = Wrapper::try_parse_from(["create", "x", "--memory-limit", "64XB"])
            .err()
            .expect("parse error");
        assert!(err.to_string().contains("64XB"));
    }
}
