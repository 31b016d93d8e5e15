//! Go-style durations (`2160h`, `1h30m`, `90s`) as used in the CRD: the same strings the CRD's
//! pattern accepts, parsed without floating point or unchecked arithmetic.

use std::time::Duration;

use crate::crd::schema::{DURATION_MAX_LEN, MAX_DURATION};
use crate::error::{Error, Result};

/// Shortest certificate or CA lifetime (`crd::schema::MIN_LIFETIME`).
pub const MIN_LIFETIME: Duration = Duration::from_secs(10);
/// Longest duration of any spec field (`crd::schema::MAX_DURATION`).
pub const MAX: Duration = Duration::from_secs(87600 * 3600);
/// Shortest `registration.unregisterAfter` (`crd::schema::MIN_UNREGISTER_AFTER`).
pub const MIN_UNREGISTER_AFTER: Duration = Duration::from_secs(1);

/// Units, the longer first where one is a prefix of another, with their nanoseconds and the
/// most integer digits the CRD's pattern allows before them.
const UNITS: [(&str, u128, usize); 6] = [
    ("ns", 1, 18),
    ("us", 1_000, 15),
    ("ms", 1_000_000, 12),
    ("s", 1_000_000_000, 9),
    ("m", 60_000_000_000, 7),
    ("h", 3_600_000_000_000, 5),
];

/// Parses a Go duration string made of `<digits>[.<digits>]<unit>` parts, units ns, us, ms, s,
/// m and h. Any other string (and one longer than the CRD allows) is an error, never a panic.
pub fn parse(text: &str) -> Result<Duration> {
    let invalid = || Error::InvalidSpec(format!("{text:?} is not a duration such as 2160h or 90m"));
    if text.is_empty() || text.len() > DURATION_MAX_LEN {
        return Err(invalid());
    }
    let mut nanos: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let (value, tail) = part(rest).ok_or_else(invalid)?;
        nanos = nanos.checked_add(value).ok_or_else(invalid)?;
        rest = tail;
    }
    let seconds = u64::try_from(nanos / 1_000_000_000).map_err(|_| invalid())?;
    let subsec = u32::try_from(nanos % 1_000_000_000).map_err(|_| invalid())?;
    Ok(Duration::new(seconds, subsec))
}

/// Parses `text` of spec field `field` and checks it lies from `min` to [`MAX`].
pub fn parse_field(field: &str, text: &str, min: Duration) -> Result<Duration> {
    let out_of_bounds = || {
        Error::InvalidSpec(format!(
            "{field} must be a duration from {} to {MAX_DURATION} (10 years), not {text:?}",
            seconds(min)
        ))
    };
    let value = parse(text).map_err(|_| out_of_bounds())?;
    if value < min || value > MAX {
        return Err(out_of_bounds());
    }
    Ok(value)
}

/// `10s`, for messages.
fn seconds(duration: Duration) -> String {
    format!("{}s", duration.as_secs())
}

/// The first part of `text`: its nanoseconds and the rest of the string.
fn part(text: &str) -> Option<(u128, &str)> {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let (whole, after_whole) = text.split_at(digits(text));
    let (fraction, rest) = match after_whole.strip_prefix('.') {
        Some(after) if digits(after) > 0 => after.split_at(digits(after)),
        Some(_) => return None,
        None => ("", after_whole),
    };
    let (unit, unit_nanos, max_digits) = UNITS.iter().find(|(u, ..)| rest.starts_with(u))?;
    if whole.is_empty() || whole.len() > *max_digits {
        return None;
    }
    let mut value = whole.parse::<u128>().ok()?.checked_mul(*unit_nanos)?;
    // Digits past the 18th are below a nanosecond for every unit.
    let fraction = &fraction[..fraction.len().min(18)];
    if !fraction.is_empty() {
        let scale = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
        let parsed = fraction.parse::<u128>().ok()?;
        value = value.checked_add(parsed.checked_mul(*unit_nanos)? / scale)?;
    }
    Some((value, &rest[unit.len()..]))
}

#[cfg(test)]
mod tests;
