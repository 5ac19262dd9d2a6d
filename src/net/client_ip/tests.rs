use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn ipv6_is_grouped_per_64_and_mapped_ipv4_is_ipv4() {
    assert_eq!(
        ClientGroup::of(ip("2001:db8:1:2:aaaa::1")),
        ClientGroup::of(ip("2001:db8:1:2:ffff:1:2:3"))
    );
    assert_ne!(
        ClientGroup::of(ip("2001:db8:1:2::1")),
        ClientGroup::of(ip("2001:db8:1:3::1"))
    );
    assert_eq!(
        ClientGroup::of(ip("::ffff:192.0.2.7")),
        ClientGroup::of(ip("192.0.2.7"))
    );
    assert_ne!(ClientGroup::of(ip("192.0.2.7")), ClientGroup::of(ip("192.0.2.8")));
    assert_eq!(
        ClientGroup::of(ip("2001:db8:1:2::9")).to_string(),
        "2001:db8:1:2::/64"
    );
}

#[test]
fn networks_parse_and_match() {
    let n: Network = "10.1.0.0/16".parse().unwrap();
    assert!(n.contains(ip("10.1.200.3")));
    assert!(n.contains(ip("::ffff:10.1.0.1")));
    assert!(!n.contains(ip("10.2.0.1")));
    assert!(!n.contains(ip("::1")));
    let n: Network = "2001:db8::/32".parse().unwrap();
    assert!(n.contains(ip("2001:db8:ffff::1")));
    assert!(!n.contains(ip("2001:db9::1")));
    let any: Network = "0.0.0.0/0".parse().unwrap();
    assert!(any.contains(ip("203.0.113.9")));
    let host: Network = "192.0.2.1".parse().unwrap();
    assert!(host.contains(ip("192.0.2.1")) && !host.contains(ip("192.0.2.2")));
    for bad in ["10.0.0.0/33", "::/129", "mail.example", "10.0.0.0/", "10.0.0.0/x"] {
        assert!(bad.parse::<Network>().is_err(), "{bad}");
    }
}
