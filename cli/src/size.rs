//! Parsing and printing of byte sizes such as `64MiB`, `512KB` or `4096`.
//!
//! Binary units (`KiB`, `MiB`, `GiB`, `TiB`, and the short forms `K`, `M`,
//! `G`, `T`) are powers of 1024; decimal units (`KB`, `MB`, `GB`, `TB`) are
//! powers of 1000; `B` or no unit means bytes. Units are case-insensitive,
//! may be separated from the number by spaces, and the number may have a
//! fraction as long as the result is a whole number of bytes (`1.5KiB`).

/// Units accepted by [`parse_size`], with their multipliers.
const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1 << 10),
    ("kib", 1 << 10),
    ("m", 1 << 20),
    ("mib", 1 << 20),
    ("g", 1 << 30),
    ("gib", 1 << 30),
    ("t", 1 << 40),
    ("tib", 1 << 40),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
];

/// The list of units shown in error messages.
const UNIT_HELP: &str = "B, KiB, MiB, GiB, TiB, KB, MB, GB, TB";

/// Parse a size with an optional unit into bytes.
///
/// Errors name the bad value and say what was expected.
///
/// ```ignore
/// assert_eq!(parse_size("64MiB"), Ok(64 << 20));
/// ```
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = (&s[..split], s[split..].trim_start());
    if number.is_empty() {
        return Err(format!(
            "invalid size {text:?}: expected a number followed by an optional unit ({UNIT_HELP})"
        ));
    }
    let multiplier = UNITS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(unit))
        .map(|&(_, m)| m)
        .ok_or_else(|| format!("invalid size {text:?}: unknown unit {unit:?} (expected one of {UNIT_HELP})"))?;
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if fraction.contains('.') || (whole.is_empty() && fraction.is_empty()) {
        return Err(format!("invalid size {text:?}: malformed number {number:?}"));
    }
    let too_big = || format!("invalid size {text:?}: too large");
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_big())?
    };
    let mut bytes = whole.checked_mul(multiplier).ok_or_else(too_big)?;
    if !fraction.is_empty() {
        // Exact decimal arithmetic: fraction digits * multiplier / 10^digits.
        if fraction.len() > 12 {
            return Err(format!("invalid size {text:?}: too many decimal places"));
        }
        let digits: u128 = fraction.parse().map_err(|_| too_big())?;
        let scale = 10u128.pow(fraction.len() as u32);
        let scaled = digits * u128::from(multiplier);
        if !scaled.is_multiple_of(scale) {
            return Err(format!("invalid size {text:?}: not a whole number of bytes"));
        }
        let extra = u64::try_from(scaled / scale).map_err(|_| too_big())?;
        bytes = bytes.checked_add(extra).ok_or_else(too_big)?;
    }
    Ok(bytes)
}

/// Like [`parse_size`], for values that must fit in a `u32`.
pub fn parse_size_u32(text: &str) -> Result<u32, String> {
    let bytes = parse_size(text)?;
    u32::try_from(bytes).map_err(|_| format!("invalid size {text:?}: {bytes} bytes is more than 4 GiB"))
}

/// Format a byte count for humans: `512 B`, `64.0 KiB`, `1.5 MiB`.
pub fn format_size(bytes: u64) -> String {
    const NAMES: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < NAMES.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", NAMES[unit])
    } else {
        format!("{value:.1} {}", NAMES[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers_are_bytes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("12B"), Ok(12));
    }

    #[test]
    fn binary_units_are_powers_of_1024() {
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("8M"), Ok(8 << 20));
    }

    #[test]
    fn decimal_units_are_powers_of_1000() {
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("3MB"), Ok(3_000_000));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
    }

    #[test]
    fn units_are_case_insensitive_and_may_follow_a_space() {
        assert_eq!(parse_size("64mib"), Ok(64 << 20));
        assert_eq!(parse_size("64 MiB"), Ok(64 << 20));
        assert_eq!(parse_size(" 1 kb "), Ok(1000));
    }

    #[test]
    fn fractions_must_give_whole_bytes() {
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("0.5MiB"), Ok(512 << 10));
        assert_eq!(parse_size(".5KiB"), Ok(512));
        assert!(parse_size("1.5B").unwrap_err().contains("whole number"));
        assert!(parse_size("1.2.3MiB").is_err());
    }

    #[test]
    fn unknown_unit_error_names_the_value_and_the_unit() {
        let err = parse_size("64XB").unwrap_err();
        assert!(err.contains("\"64XB\""), "{err}");
        assert!(err.contains("\"XB\""), "{err}");
        assert!(err.contains("MiB"), "{err}");
    }

    #[test]
    fn missing_number_and_overflow_are_errors() {
        assert!(parse_size("MiB").unwrap_err().contains("expected a number"));
        assert!(parse_size("").is_err());
        assert!(parse_size("-5").is_err());
        assert!(parse_size("99999999999999999999").unwrap_err().contains("too large"));
        assert!(parse_size("20000000TiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn u32_sizes_reject_values_over_4gib() {
        assert_eq!(parse_size_u32("64KiB"), Ok(65536));
        assert!(parse_size_u32("8GiB").unwrap_err().contains("4 GiB"));
    }

    #[test]
    fn sizes_format_with_binary_units() {
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(64 << 10), "64 KiB");
        assert_eq!(format_size(1536 << 10), "1.5 MiB");
        assert_eq!(format_size(3 << 30), "3 GiB");
    }
}
