//! Sizes (`512KiB`), rates (`5MiB/s`, `10MB/min`) and durations (`10s`) as
//! the SRE and applications write them. Errors name the value and what is
//! accepted.

use std::time::Duration;

/// Parses a byte size: a whole number with an optional unit. `K`, `M`, `G`
/// with or without `i`/`B` are binary multiples (as kubelet and Docker treat
/// log sizes); plain `B` or no unit means bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size: expected a whole number with an optional unit, such as 16KiB or 1048576"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "{text:?}: unknown size unit {other:?} (use B, KiB, MiB or GiB)"
            ));
        }
    };
    value
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses a rate in bytes per second: a size, `/`, and a period (`s`, `min`,
/// `h`): `5MiB/s`, `10MB/min`. A bare size means per second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (size, period) = match text.split_once('/') {
        Some((size, period)) => (size, period.trim()),
        None => (text, "s"),
    };
    let bytes = parse_size(size).map_err(|e| format!("rate {e}"))?;
    let seconds = match period {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" | "hour" => 3600.0,
        other => {
            return Err(format!(
                "{text:?}: unknown rate period {other:?} (use /s, /min or /h)"
            ));
        }
    };
    if bytes == 0 {
        return Err(format!("{text:?}: a rate must be above zero"));
    }
    Ok(bytes as f64 / seconds)
}

/// Renders a rate the way it is written in configuration, for messages.
pub fn format_rate(bytes_per_second: f64) -> String {
    let units = [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, name) in units {
        let value = bytes_per_second / size as f64;
        if value >= 1.0 {
            return if value.fract() == 0.0 {
                format!("{value}{name}/s")
            } else {
                format!("{value:.2}{name}/s")
            };
        }
    }
    format!("{bytes_per_second:.0}B/s")
}

/// Renders a size the way it is written in configuration: `1MiB`, `512KiB`.
pub fn format_size(bytes: u64) -> String {
    for (size, name) in [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if bytes >= size && bytes % size == 0 {
            return format!("{}{name}", bytes / size);
        }
    }
    format!("{bytes}B")
}

/// Parses a duration: a number with a unit `ms`, `s`, `m`, `h` or `d`
/// (seconds when the unit is omitted).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: expected e.g. 5s or 250ms"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        other => {
            return Err(format!(
                "{text:?}: unknown duration unit {other:?} (use ms, s, m, h or d)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("16KiB"), Ok(16 << 10));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert!(parse_size("1.5M").is_err());
        assert!(
            parse_size("12XB")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn rates_take_a_size_and_a_period() {
        assert_eq!(parse_rate("5MiB/s"), Ok(5.0 * 1048576.0));
        assert_eq!(parse_rate("60KiB/min"), Ok(1024.0));
        assert_eq!(parse_rate("1024"), Ok(1024.0));
        assert!(
            parse_rate("5MiB/week")
                .unwrap_err()
                .contains("unknown rate period")
        );
        assert!(parse_rate("0/s").unwrap_err().contains("above zero"));
        assert!(parse_rate("fast").is_err());
        assert_eq!(format_rate(5.0 * 1048576.0), "5MiB/s");
        assert_eq!(format_rate(100.0), "100B/s");
    }

    #[test]
    fn durations_take_common_units() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
