use super::*;

#[test]
fn server_names_are_dns_1035_labels_of_at_most_63_characters() {
    let longest = format!("a{}", "0".repeat(MAX_SERVER_NAME_LEN - 1));
    for good in ["a", "my-extension-server", "x1", longest.as_str()] {
        assert!(check_server_name(good).is_ok(), "{good}");
    }
    let too_long = format!("{longest}0");
    for bad in ["", "1abc", "a.b", "a-", "-a", "A", "a_b", too_long.as_str()] {
        assert!(check_server_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_checks_follow_kubernetes() {
    assert!(is_dns1123_subdomain("a.b-c.d0"));
    assert!(!is_dns1123_subdomain("a..b"));
    assert!(!is_dns1123_subdomain(&"a".repeat(254)));
    assert!(is_dns1123_subdomain(&format!("{}-tls", "a".repeat(63))));
    assert!(!is_dns_name(&format!("{}-tls", "a".repeat(63))));
    assert!(is_dns1035_label("a-1"));
    assert!(!is_dns1035_label("1a"));
    assert!(is_label_value(""));
    assert!(is_label_value("A_b.c-9"));
    assert!(!is_label_value("-a"));
    assert!(!is_label_value(&"a".repeat(64)));
}
