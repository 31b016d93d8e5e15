//! Kubernetes resource quantities compared by value: the API server stores `0.5` as `500m`
//! and `1024Mi` as `1Gi`, so the applied and the stored spellings differ.

/// The value of `text` in nano-units (`1` is 10^9), if it is a quantity that fits an `i128`.
pub fn nanos(text: &str) -> Option<i128> {
    if text.is_empty() {
        return None;
    }
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    // Like the API server, a quantity without digits ("-", "+", ".", "Mi") is zero.
    let digits: i128 = if whole.is_empty() && fraction.is_empty() {
        0
    } else {
        format!("{whole}{fraction}").parse().ok()?
    };
    let (exponent10, binary) = scale(suffix)?;
    let exponent = 9 + exponent10 - i32::try_from(fraction.len()).ok()?;
    let mut value = digits.checked_mul(1i128.checked_shl(binary)?)?;
    if exponent >= 0 {
        value = value.checked_mul(10i128.checked_pow(exponent.unsigned_abs())?)?;
    } else {
        let divisor = 10i128.checked_pow(exponent.unsigned_abs())?;
        if value % divisor != 0 {
            return None;
        }
        value /= divisor;
    }
    Some(sign * value)
}

/// A suffix as (power of ten, power of two).
fn scale(suffix: &str) -> Option<(i32, u32)> {
    let binary = |power| Some((0, power));
    match suffix {
        "" => Some((0, 0)),
        "n" => Some((-9, 0)),
        "u" => Some((-6, 0)),
        "m" => Some((-3, 0)),
        "k" => Some((3, 0)),
        "M" => Some((6, 0)),
        "G" => Some((9, 0)),
        "T" => Some((12, 0)),
        "P" => Some((15, 0)),
        "E" => Some((18, 0)),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        exponent => {
            let power = exponent
                .strip_prefix('e')
                .or_else(|| exponent.strip_prefix('E'))?;
            let power: i32 = power.parse().ok()?;
            (-30..=30).contains(&power).then_some((power, 0))
        }
    }
}

/// True when both are quantities of the same value.
pub fn same(a: &str, b: &str) -> bool {
    matches!((nanos(a), nanos(b)), (Some(a), Some(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_the_api_server_rewrites_are_the_same_quantity() {
        assert!(same("0.5", "500m"));
        assert!(same("1024Mi", "1Gi"));
        assert!(same("1e3", "1k"));
        assert!(same("1000m", "1"));
        assert!(same(".5", "500m"));
        assert!(same("1E", "1000P"));
    }

    #[test]
    fn a_quantity_without_digits_is_zero_as_the_api_server_stores_it() {
        for text in ["-", "+", ".", "-.", "Mi", "+k", "m", "-e3"] {
            assert!(same(text, "0"), "{text}");
        }
        assert_eq!(nanos("x"), None);
        assert_eq!(nanos(""), None);
    }

    #[test]
    fn different_values_and_non_quantities_are_not() {
        assert!(!same("0.5", "501m"));
        assert!(!same("1Gi", "1G"));
        assert!(!same("abc", "abc"));
        assert!(!same("1x", "1"));
        assert_eq!(nanos("1.5.5"), None);
        assert_eq!(nanos("-1m"), Some(-1_000_000));
        assert_eq!(nanos("99999999999999999999999999999999999Ei"), None);
    }
}
