//! Cross-process benchmark harness: prints a table (or JSON) of shmbus
//! against the crossbeam baseline. See `BENCHMARKS.md`.
//!
//! ```text
//! harness [--quick] [--scenarios a,b] [--sizes 8,64,1024,16384] [--runs N]
//!         [--round-trips N] [--frames N] [--json] [--list]
//! ```

use shmbus_benches::harness::{self, Options, PAYLOAD_SIZES, SCENARIOS};

const USAGE: &str = "usage: harness [--quick] [--scenarios a,b] [--sizes 8,64,1024,16384] [--runs N] \
                     [--round-trips N] [--frames N] [--json] [--list]";

fn parse_list<T: std::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>, String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| x.trim().parse().map_err(|_| format!("bad {what}: {x:?}")))
        .collect()
}

fn parse_args() -> Result<(Options, bool), String> {
    let mut o = Options::default();
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => o.quick = true,
            "--json" => json = true,
            "--scenarios" => o.scenarios = parse_list(&val("--scenarios")?, "scenario")?,
            "--sizes" => o.payload_sizes = parse_list(&val("--sizes")?, "size")?,
            "--runs" => o.runs = parse_list(&val("--runs")?, "count")?.first().copied().unwrap_or(1),
            "--round-trips" => o.round_trips = val("--round-trips")?.parse().map_err(|_| "bad --round-trips")?,
            "--frames" => o.frames = val("--frames")?.parse().map_err(|_| "bad --frames")?,
            "--list" => {
                println!("scenarios: {}\nsizes: {PAYLOAD_SIZES:?}", SCENARIOS.join(", "));
                std::process::exit(0);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok((o, json))
}

fn main() {
    harness::maybe_run_child();
    let (opts, json) = match parse_args() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match harness::run(&opts, &mut |line| eprintln!("{line}")) {
        Ok(results) => {
            if json {
                print!("{}", harness::to_json(&results));
            } else {
                print!("{}", harness::render_table(&results));
            }
        }
        Err(e) => {
            eprintln!("harness: {e}");
            std::process::exit(1);
        }
    }
}
