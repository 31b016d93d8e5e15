use super::*;
use crate::context::Settings;
use crate::crd::schema;

#[test]
fn parses_go_durations() {
    assert_eq!(parse("2160h").unwrap(), Duration::from_secs(2160 * 3600));
    assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
    assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
    assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
    assert_eq!(parse("1ns").unwrap(), Duration::from_nanos(1));
    assert_eq!(parse("0.0000000019s").unwrap(), Duration::from_nanos(1));
}

#[test]
fn rejects_garbage() {
    for bad in [
        "",
        "h",
        "10",
        "10x",
        "ten seconds",
        "1.h",
        ".5h",
        "-1h",
        "1h ",
        "1µs",
        "99999999999999999999h",
        "100000h",
        "1234567890s",
    ] {
        assert!(parse(bad).is_err(), "{bad} should be rejected");
    }
}

/// Every string over a small alphabet up to `len` characters.
fn strings(alphabet: &[char], len: usize) -> Vec<String> {
    let mut all = vec![String::new()];
    let mut last = vec![String::new()];
    for _ in 0..len {
        last = last
            .iter()
            .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
            .collect();
        all.extend(last.iter().cloned());
    }
    all
}

#[test]
fn accepts_exactly_what_the_crd_pattern_accepts() {
    let pattern = regex::Regex::new(schema::DURATION_PATTERN).unwrap();
    let agree = |s: &str| {
        let admitted = s.len() <= schema::DURATION_MAX_LEN && pattern.is_match(s);
        assert_eq!(parse(s).is_ok(), admitted, "{s:?}");
    };
    for s in strings(&['0', '9', '.', 'h', 'm', 's', 'n', 'u', 'x', '-'], 5) {
        agree(&s);
    }
    // The digit limit of each unit, at and past it, and the length limit.
    for (unit, _, digits) in UNITS {
        agree(&format!("{}{unit}", "9".repeat(digits)));
        agree(&format!("{}{unit}", "9".repeat(digits + 1)));
        agree(&format!("{}.5{unit}", "1".repeat(digits)));
    }
    agree(&format!("{}s", "1".repeat(schema::DURATION_MAX_LEN - 1)));
    agree(&"1s".repeat(16));
    agree(&"1s".repeat(17));
}

#[test]
fn no_admitted_string_overflows_go_durations() {
    // Go keeps durations in i64 nanoseconds; CEL's duration() fails beyond that.
    let go_max = Duration::from_nanos(i64::MAX as u64);
    for worst in [
        "999999999s999999999s999999999s9h",
        "99999h99999h99999h99999h99999h9h",
        "9999999m9999999m9999999m99999h9h",
        "999999999999999999ns99999h9999m",
        "99999.999999999999999999999999h",
    ] {
        assert!(worst.len() <= schema::DURATION_MAX_LEN, "{worst}");
        assert!(parse(worst).unwrap() < go_max, "{worst}");
    }
}

#[test]
fn bounds_match_the_crd() {
    assert_eq!(parse(schema::MIN_LIFETIME).unwrap(), MIN_LIFETIME);
    assert_eq!(parse(schema::MAX_DURATION).unwrap(), MAX);
    assert_eq!(
        parse(schema::MIN_UNREGISTER_AFTER).unwrap(),
        MIN_UNREGISTER_AFTER
    );
    let defaults = Settings::default().default_lifetimes;
    assert_eq!(
        parse(schema::DEFAULT_CERTIFICATE_DURATION).unwrap(),
        defaults.certificate
    );
    assert_eq!(parse(schema::DEFAULT_CA_DURATION).unwrap(), defaults.ca);
}

#[test]
fn fields_are_checked_against_their_bounds() {
    let field = |text| parse_field("tls.certificateDuration", text, MIN_LIFETIME);
    assert_eq!(field("10s").unwrap(), MIN_LIFETIME);
    assert_eq!(field("87600h").unwrap(), MAX);
    for bad in [
        "1ns",
        "9.999s",
        "87600h1ns",
        "99999999999999999999h",
        "soon",
    ] {
        let message = field(bad).unwrap_err().to_string();
        assert!(
            message.contains("tls.certificateDuration must be a duration from 10s to 87600h"),
            "{bad}: {message}"
        );
    }
}
