//! Value parsers for command-line arguments other than sizes: bus names,
//! file modes, durations, overflow policies, start positions and ids.
//!
//! Each returns `Err(String)` naming the bad value, which clap reports as a
//! usage error (exit code 2).

use std::time::Duration;

use shmbus::Start;

/// A bus name, checked with [`shmbus::validate_name`].
pub fn parse_name(text: &str) -> Result<String, String> {
    shmbus::validate_name(text).map_err(|e| e.to_string())?;
    Ok(text.to_string())
}

/// An octal file mode: `0600`, `600`, `0o660`.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let s = text.trim();
    let digits = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!(
            "invalid mode {text:?}: expected octal digits like 0600, 660 or 0o640"
        ));
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|_| format!("invalid mode {text:?}: too large"))?;
    if mode > 0o777 {
        return Err(format!(
            "invalid mode {text:?}: only permission bits (at most 0777) are allowed"
        ));
    }
    Ok(mode)
}

/// A duration: `100ms`, `1.5s`, `250us`, `2m`, `1h`; a plain number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = (&s[..split], s[split..].trim_start());
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected a number with a unit such as 100ms, 2s or 1m"))?;
    let seconds_per_unit = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "invalid duration {text:?}: unknown unit {unit:?} (expected ns, us, ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(value * seconds_per_unit)
        .map_err(|_| format!("invalid duration {text:?}: out of range"))
}

/// Overflow policy names accepted by `create --overflow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OverflowArg {
    /// Evict the oldest frames (never blocks).
    Evict,
    /// Fail with "bus is full" instead of evicting unread frames.
    Reject,
    /// Wait up to --block-timeout for slow subscribers, then fail.
    Block,
}

/// Where `tail` starts: `oldest`, `newest` or a seq number.
pub fn parse_start(text: &str) -> Result<Start, String> {
    match text {
        "oldest" => Ok(Start::Oldest),
        "newest" => Ok(Start::Newest),
        _ => text
            .parse::<u64>()
            .map(Start::Seq)
            .map_err(|_| format!("invalid start {text:?}: expected oldest, newest or a seq number")),
    }
}

/// A 128-bit id in hex (optionally `0x`-prefixed), as printed by `tail`.
pub fn parse_hex_id(text: &str) -> Result<u128, String> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.is_empty() || digits.len() > 32 {
        return Err(format!("invalid id {text:?}: expected 1 to 32 hex digits"));
    }
    u128::from_str_radix(digits, 16).map_err(|_| format!("invalid id {text:?}: expected hex digits"))
}

/// A 128-bit id as 32 lower-case hex digits.
pub fn format_hex_id(id: u128) -> String {
    format!("{id:032x}")
}

/// A duration for humans: `850ns`, `12.3µs`, `4.5ms`, `2.00s`.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.1}ms", ns as f64 / 1e6)
    } else {
        format!("{:.2}s", ns as f64 / 1e9)
    }
}

/// Unix time in nanoseconds as an ISO-8601 UTC timestamp with microseconds.
pub fn format_timestamp(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let micros = (ns % 1_000_000_000) / 1_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_accept_the_three_octal_spellings() {
        assert_eq!(parse_mode("0600"), Ok(0o600));
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0o660"), Ok(0o660));
        assert_eq!(parse_mode("0777"), Ok(0o777));
    }

    #[test]
    fn bad_modes_name_the_value() {
        for bad in ["", "0x600", "rw-------", "0800", "01777", "0o"] {
            let err = parse_mode(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn durations_accept_common_units() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("5 parsecs").unwrap_err().contains("\"parsecs\""));
        assert!(parse_duration("ms").is_err());
    }

    #[test]
    fn start_positions_parse() {
        assert_eq!(parse_start("oldest"), Ok(Start::Oldest));
        assert_eq!(parse_start("newest"), Ok(Start::Newest));
        assert_eq!(parse_start("42"), Ok(Start::Seq(42)));
        assert!(parse_start("latest").unwrap_err().contains("\"latest\""));
    }

    #[test]
    fn names_are_validated_by_the_core_rules() {
        assert_eq!(parse_name("orders"), Ok("orders".to_string()));
        assert!(parse_name("a/b").unwrap_err().contains("'/'"));
        assert!(parse_name("").is_err());
    }

    #[test]
    fn hex_ids_round_trip() {
        let id = 0xdead_beef_u128 << 64 | 7;
        assert_eq!(parse_hex_id(&format_hex_id(id)), Ok(id));
        assert_eq!(parse_hex_id("0x1f"), Ok(31));
        assert!(parse_hex_id("xyz").is_err());
        assert!(parse_hex_id(&"f".repeat(33)).is_err());
    }

    #[test]
    fn timestamps_format_as_utc() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000000Z");
        // 2024-02-29T12:34:56.789012Z
        assert_eq!(
            format_timestamp(1_709_210_096_789_012_000),
            "2024-02-29T12:34:56.789012Z"
        );
    }

    #[test]
    fn durations_format_with_a_fitting_unit() {
        assert_eq!(format_duration(Duration::from_nanos(850)), "850ns");
        assert_eq!(format_duration(Duration::from_nanos(12_345)), "12.3µs");
        assert_eq!(format_duration(Duration::from_micros(4_500)), "4.5ms");
        assert_eq!(format_duration(Duration::from_secs(2)), "2.00s");
    }
}
