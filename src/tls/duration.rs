//! Go-style durations (`2160h`, `1h30m`, `90s`) as used in the CRD.

use std::time::Duration;

use crate::error::{Error, Result};

/// Parses a Go duration string. Units: ns, us, ms, s, m, h.
pub fn parse(text: &str) -> Result<Duration> {
    let invalid = || Error::InvalidSpec(format!("{text:?} is not a duration such as 2160h or 90m"));
    if text.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let value: f64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += value * seconds;
        rest = &rest[unit_len..];
    }
    // Checked: an absurd value is an error, never a panic (the CRD in a cluster may be older
    // than this binary and accept it).
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("2160h").unwrap(), Duration::from_secs(2160 * 3600));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "h", "10", "10x", "ten seconds", "99999999999999999999h"] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
