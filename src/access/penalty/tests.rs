//! The penalty's arithmetic with explicit time: no sleeping, no runtime.

use super::*;

fn cfg() -> PenaltyConfig {
    PenaltyConfig::default()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const S: Duration = Duration::from_secs(1);

#[test]
fn delays_follow_dovecot_2_4_8_15() {
    let c = cfg();
    let secs: Vec<u64> = (0..7).map(|n| c.delay_for(n).as_secs()).collect();
    assert_eq!(secs, [0, 2, 4, 8, 15, 15, 15]);
    assert_eq!(c.delay_for(u32::MAX), Duration::from_secs(15));
}

#[test]
fn failures_delay_then_refuse_and_the_refusal_ends() {
    let p = Penalties::new(cfg(), vec![]);
    let t0 = Instant::now();
    let a = ip("203.0.113.5");
    assert_eq!(p.check(a, b"alice@pec.example", t0), Penalty::None);
    let mut seen = Vec::new();
    for i in 0..10u32 {
        p.failed(
            a,
            b"alice@pec.example",
            format!("guess{i}").as_bytes(),
            t0 + S * i,
        );
        seen.push(p.check(a, b"bob@pec.example", t0 + S * i));
    }
    assert_eq!(
        &seen[..5],
        &[2, 4, 8, 15, 15].map(|s| Penalty::Delay(Duration::from_secs(s)))
    );
    // The 10th failure from the client refuses it, for any login name.
    assert_eq!(
        seen[9],
        Penalty::Refuse {
            retry_after: Duration::from_secs(600)
        }
    );
    let t_last = t0 + S * 9;
    assert!(matches!(
        p.check(a, b"carol@pec.example", t_last + S * 599),
        Penalty::Refuse { .. }
    ));
    // Cool-off over: delayed (the failures are remembered), not refused.
    assert_eq!(
        p.check(a, b"carol@pec.example", t_last + S * 600),
        Penalty::Delay(Duration::from_secs(15))
    );
    // An hour after the last failure, forgotten.
    assert_eq!(p.check(a, b"carol@pec.example", t_last + S * 3600), Penalty::None);
}

#[test]
fn other_clients_are_not_affected_but_the_login_name_is() {
    let p = Penalties::new(cfg(), vec![]);
    let t = Instant::now();
    for i in 0..3 {
        p.failed(ip("203.0.113.5"), b"alice@pec.example", &[i], t);
    }
    assert_eq!(p.check(ip("198.51.100.7"), b"bob@pec.example", t), Penalty::None);
    // The attacked name is slowed for everyone (a distributed attack).
    // Names come canonical (the gate's `canonical_login_name`): any spelling
    // of alice's is this one.
    assert_eq!(
        p.check(ip("198.51.100.7"), b"alice@pec.example", t),
        Penalty::Delay(Duration::from_secs(8))
    );
}

#[test]
fn ipv6_clients_are_one_per_64() {
    let p = Penalties::new(cfg(), vec![]);
    let t = Instant::now();
    p.failed(ip("2001:db8:1:2::1"), b"a@x", b"p1", t);
    p.failed(ip("2001:db8:1:2::2"), b"b@x", b"p2", t);
    assert_eq!(
        p.check(ip("2001:db8:1:2:ffff::3"), b"c@x", t),
        Penalty::Delay(Duration::from_secs(4))
    );
    assert_eq!(p.check(ip("2001:db8:1:3::1"), b"c@x", t), Penalty::None);
}

#[test]
fn the_same_wrong_password_does_not_escalate() {
    let p = Penalties::new(cfg(), vec![]);
    let t = Instant::now();
    let a = ip("203.0.113.5");
    for i in 0..50u32 {
        p.failed(a, b"alice@pec.example", b"old-password", t + S * i);
    }
    assert_eq!(
        p.check(a, b"alice@pec.example", t + S * 50),
        Penalty::Delay(2 * S)
    );
    // But the same password against other names (spraying) does.
    for name in [&b"b@x"[..], b"c@x", b"d@x"] {
        p.failed(a, name, b"old-password", t + S * 51);
    }
    assert_eq!(p.check(a, b"zz@x", t + S * 52), Penalty::Delay(15 * S));
}

#[test]
fn success_forgives_only_the_same_persons_failures() {
    let p = Penalties::new(cfg(), vec![]);
    let t = Instant::now();
    let attacker = ip("203.0.113.5");
    let owner = ip("192.0.2.10");
    // The attacker guesses at alice and also owns mallory.
    for i in 0..4u8 {
        p.failed(attacker, b"alice@x", &[i], t);
    }
    p.failed(attacker, b"mallory@x", b"typo", t);
    p.succeeded(attacker, b"mallory@x");
    // Only the typo on mallory is forgiven: 4 failures left.
    assert_eq!(p.check(attacker, b"x@x", t), Penalty::Delay(15 * S));
    // Alice mistypes once, then logs in: her own failure is forgiven, the
    // attacker's against her name are not.
    p.failed(owner, b"alice@x", b"typo", t);
    assert_eq!(p.check(owner, b"other@x", t), Penalty::Delay(2 * S));
    p.succeeded(owner, b"alice@x");
    assert_eq!(p.check(owner, b"other@x", t), Penalty::None);
    assert_eq!(p.check(owner, b"alice@x", t), Penalty::Delay(15 * S));
    // A client with nothing left is dropped from the map.
    p.failed(ip("192.0.2.99"), b"z@x", b"typo", t);
    let before = p.tracked().0;
    p.succeeded(ip("192.0.2.99"), b"z@x");
    assert_eq!(p.tracked().0, before - 1);
}

#[test]
fn the_login_name_is_refused_after_its_own_threshold() {
    let p = Penalties::new(cfg(), vec![]);
    let t = Instant::now();
    for i in 0..20u32 {
        // A botnet: each guess from another address.
        p.failed(
            ip(&format!("10.0.{}.{}", i / 200, i % 200)),
            b"alice@x",
            &i.to_be_bytes(),
            t,
        );
    }
    assert!(matches!(
        p.check(ip("192.0.2.1"), b"alice@x", t),
        Penalty::Refuse { .. }
    ));
    assert_eq!(p.check(ip("192.0.2.1"), b"bob@x", t), Penalty::None);
}

#[test]
fn thresholds_of_zero_only_delay() {
    let p = Penalties::new(
        PenaltyConfig {
            ip_refuse_after: 0,
            mailbox_refuse_after: 0,
            ..cfg()
        },
        vec![],
    );
    let t = Instant::now();
    for i in 0..100u32 {
        p.failed(ip("203.0.113.5"), b"a@x", &i.to_be_bytes(), t);
    }
    assert_eq!(p.check(ip("203.0.113.5"), b"a@x", t), Penalty::Delay(15 * S));
}

#[test]
fn trusted_networks_and_disabled_are_exempt() {
    let p = Penalties::new(cfg(), vec!["192.0.2.0/24".parse().unwrap()]);
    let t = Instant::now();
    for i in 0..30u32 {
        p.failed(ip("192.0.2.9"), b"a@x", &i.to_be_bytes(), t);
    }
    assert_eq!(p.check(ip("192.0.2.9"), b"a@x", t), Penalty::None);
    assert_eq!(p.tracked(), (0, 0));

    let p = Penalties::disabled();
    p.failed(ip("203.0.113.1"), b"a@x", b"p", t);
    assert_eq!(p.check(ip("203.0.113.1"), b"a@x", t), Penalty::None);
}

#[test]
fn memory_is_bounded_whatever_the_number_of_keys() {
    let p = Penalties::new(
        PenaltyConfig {
            max_tracked: 1000,
            ..cfg()
        },
        vec![],
    );
    let t = Instant::now();
    let mut max_seen = (0, 0);
    for i in 0..20_000u32 {
        let v6 = std::net::Ipv6Addr::from((0x2001_0db8_u128 << 96) | (u128::from(i) << 64));
        p.failed(
            IpAddr::V6(v6),
            format!("user{i}@x").as_bytes(),
            b"guess",
            t + Duration::from_millis(i.into()),
        );
        let now = p.tracked();
        max_seen = (max_seen.0.max(now.0), max_seen.1.max(now.1));
    }
    assert!(max_seen.0 <= 1000 && max_seen.1 <= 1000, "{max_seen:?}");
    // The newest records are the ones kept.
    let last = std::net::Ipv6Addr::from((0x2001_0db8_u128 << 96) | (19_999u128 << 64));
    assert_eq!(
        p.check(IpAddr::V6(last), b"nobody@x", t + S * 30),
        Penalty::Delay(2 * S)
    );
    // Sweeping after they expire empties the maps.
    p.sweep(t + S * 3700);
    assert_eq!(p.tracked(), (0, 0));
}

#[test]
fn concurrent_inserts_never_overshoot_the_cap() {
    let p = std::sync::Arc::new(Penalties::new(
        PenaltyConfig {
            max_tracked: 64,
            ..cfg()
        },
        vec![],
    ));
    let t = Instant::now();
    let threads: Vec<_> = (0..4u32)
        .map(|k| {
            let p = p.clone();
            std::thread::spawn(move || {
                let mut max = 0;
                for i in 0..2000u32 {
                    let ip = IpAddr::V4(std::net::Ipv4Addr::from((k << 24) | i));
                    p.failed(ip, b"a@x", &i.to_be_bytes(), t);
                    max = max.max(p.clients.len_exact());
                }
                max
            })
        })
        .collect();
    for th in threads {
        assert!(th.join().unwrap() <= 64);
    }
}

#[test]
fn a_record_is_small() {
    // The memory bound in the docs (about 120 bytes a record) rests on this.
    assert!(
        std::mem::size_of::<Record>() <= 112,
        "{}",
        std::mem::size_of::<Record>()
    );
    assert!(std::mem::size_of::<(ClientGroup, Record)>() <= 128);
}

#[test]
#[ignore = "a measurement: cargo test --lib -- --ignored --nocapture penalty_cost"]
fn penalty_cost() {
    let p = Penalties::new(cfg(), vec![]);
    let t = Instant::now();
    let n = 300_000u32;
    let started = Instant::now();
    for i in 0..n {
        let v6 = std::net::Ipv6Addr::from((0x2001_0db8_u128 << 96) | (u128::from(i) << 64));
        p.failed(
            IpAddr::V6(v6),
            format!("user{i}@x").as_bytes(),
            b"guess",
            t + Duration::from_millis(i.into()),
        );
    }
    let took = started.elapsed();
    eprintln!(
        "{n} failures from distinct clients and names, cap 100000: {:?} ({:?} each), tracked {:?}",
        took,
        took / n,
        p.tracked()
    );
}

#[test]
fn a_delay_that_would_end_after_the_latest_moment_is_a_refusal() {
    let p = Penalties::new(cfg(), vec![]);
    let t = Instant::now();
    let a = ip("203.0.113.5");
    p.failed(a, b"alice@x", b"guess", t);
    // 2 s of delay: taken when it ends by `latest`, refused (retry after the
    // delay) when it would not; no delay, no question.
    assert_eq!(p.decide(Protocol::Imap, a, b"alice@x", t, None), Ok(2 * S));
    assert_eq!(
        p.decide(Protocol::Imap, a, b"alice@x", t, Some(t + 2 * S)),
        Ok(2 * S)
    );
    assert_eq!(
        p.decide(Protocol::Imap, a, b"alice@x", t, Some(t + S)),
        Err(Refused { retry_after: 2 * S })
    );
    let b = ip("198.51.100.7");
    assert_eq!(
        p.decide(Protocol::Imap, b, b"bob@x", t, Some(t)),
        Ok(Duration::ZERO)
    );
}
