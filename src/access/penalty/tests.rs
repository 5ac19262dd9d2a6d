//! The penalty's arithmetic with explicit time: no sleeping, no runtime.

use super::*;
use crate::access::counters::CollectingSink;

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
    assert!(std::mem::size_of::<(u64, Record)>() <= 128);
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

// Across a fleet: nodes built with one shared key, the events one node
// publishes carried by hand to another's `apply`.

const FLEET: &[u8; 32] = b"fleet-secret-shared-by-all-nodes";

struct Node {
    p: Penalties,
    sink: Arc<CollectingSink>,
}

fn node_with(cfg: PenaltyConfig, secret: &[u8]) -> Node {
    let sink = Arc::new(CollectingSink::default());
    let p = Penalties::replicated(
        cfg,
        vec!["192.0.2.0/24".parse().unwrap()],
        CounterKey::from_secret(secret).unwrap(),
        Some(sink.clone()),
    );
    Node { p, sink }
}

fn node() -> Node {
    node_with(cfg(), FLEET)
}

/// Carries what `from` published since the last time to `to`, arriving at
/// `now`, `late` after it happened (by the receiver's wall clock).
fn deliver_late(from: &Node, to: &Node, now: Instant, late: Duration) -> usize {
    let events = from.sink.take();
    for e in &events {
        to.p.apply(e, now, e.at_ms() + late.as_millis() as i64);
    }
    events.len()
}

fn deliver(from: &Node, to: &Node, now: Instant) -> usize {
    deliver_late(from, to, now, Duration::ZERO)
}

#[test]
fn a_guess_series_over_two_nodes_is_refused_when_one_node_would_refuse_it() {
    let c = ip("203.0.113.5");
    let t0 = Instant::now();
    let one = Penalties::new(cfg(), vec![]);
    let (a, b) = (node(), node());
    let (lone_a, lone_b) = (Penalties::new(cfg(), vec![]), Penalties::new(cfg(), vec![]));
    let (mut on_one, mut on_two, mut on_lone) = (vec![], vec![], vec![]);
    for i in 0..12u32 {
        let t = t0 + S * i;
        let guess = format!("guess{i}");
        one.failed(c, b"alice@x", guess.as_bytes(), t);
        on_one.push(one.check(c, b"bob@x", t));
        // Guesses alternate A, B, A, ...; the next one reaches the other.
        let (here, there) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        here.p.failed(c, b"alice@x", guess.as_bytes(), t);
        assert_eq!(deliver(here, there, t), 1);
        on_two.push(there.p.check(c, b"bob@x", t));
        assert_eq!(here.p.check(c, b"bob@x", t), there.p.check(c, b"bob@x", t));
        // Today's nodes, each on its own: the sprayer's problem.
        let lone = if i % 2 == 0 { &lone_a } else { &lone_b };
        lone.failed(c, b"alice@x", guess.as_bytes(), t);
        on_lone.push(if i % 2 == 0 { &lone_b } else { &lone_a }.check(c, b"bob@x", t));
    }
    assert_eq!(on_two, on_one);
    assert!(!matches!(on_two[8], Penalty::Refuse { .. }));
    assert_eq!(
        on_two[9],
        Penalty::Refuse {
            retry_after: Duration::from_secs(600)
        },
        "refused at the 10th failure, wherever it was counted"
    );
    assert_eq!(
        on_lone[9],
        Penalty::Delay(15 * S),
        "separate nodes: 10 guesses are 5 each"
    );
    // The login name's record counted every guess on both nodes too.
    let other = ip("198.51.100.7");
    assert_eq!(
        a.p.check(other, b"alice@x", t0 + S * 12),
        one.check(other, b"alice@x", t0 + S * 12)
    );
    assert_eq!(b.p.check(other, b"alice@x", t0 + S * 12), Penalty::Delay(15 * S));
}

#[test]
fn the_same_wrong_password_on_both_nodes_counts_once() {
    let (a, b) = (node(), node());
    let c = ip("203.0.113.5");
    let t = Instant::now();
    for i in 0..5u32 {
        a.p.failed(c, b"alice@x", b"old-password", t + S * i);
        deliver(&a, &b, t + S * i);
        b.p.failed(c, b"alice@x", b"old-password", t + S * i);
        deliver(&b, &a, t + S * i);
    }
    for n in [&a, &b] {
        assert_eq!(n.p.check(c, b"alice@x", t + S * 5), Penalty::Delay(2 * S));
    }
}

#[test]
fn an_event_applied_twice_counts_once() {
    let (a, b) = (node(), node());
    let c = ip("203.0.113.5");
    let t = Instant::now();
    a.p.failed(c, b"alice@x", b"guess", t);
    let events = a.sink.take();
    for e in events.iter().chain(&events) {
        b.p.apply(e, t, e.at_ms());
    }
    assert_eq!(b.p.check(c, b"alice@x", t), Penalty::Delay(2 * S));
}

#[test]
fn a_duplicate_after_more_than_recent_other_failures_counts_again() {
    // The bound stated in "Across a fleet": a record remembers its last
    // RECENT pairs, so the transport must deduplicate beyond them.
    let strict = PenaltyConfig {
        ip_refuse_after: RECENT as u32 + 2,
        mailbox_refuse_after: 0,
        ..cfg()
    };
    let (a, b) = (node_with(strict.clone(), FLEET), node_with(strict, FLEET));
    let c = ip("203.0.113.5");
    let t = Instant::now();
    a.p.failed(c, b"alice@x", b"first", t);
    let first = a.sink.take();
    b.p.apply(&first[0], t, first[0].at_ms());
    for i in 0..RECENT as u32 {
        b.p.failed(c, b"alice@x", &i.to_be_bytes(), t);
    }
    assert_eq!(b.p.check(c, b"x@x", t), Penalty::Delay(15 * S));
    b.p.apply(&first[0], t, first[0].at_ms());
    assert!(matches!(b.p.check(c, b"x@x", t), Penalty::Refuse { .. }));
}

#[test]
fn a_success_on_one_node_forgives_the_same_person_on_the_others() {
    let (a, b) = (node(), node());
    let owner = ip("203.0.113.10");
    let attacker = ip("198.51.100.66");
    let t = Instant::now();
    for i in 0..3u8 {
        a.p.failed(attacker, b"alice@x", &[i], t);
    }
    b.p.failed(owner, b"alice@x", b"typo", t);
    deliver(&a, &b, t);
    deliver(&b, &a, t);
    assert_eq!(a.p.check(owner, b"other@x", t), Penalty::Delay(2 * S));
    a.p.succeeded(owner, b"alice@x");
    assert_eq!(deliver(&a, &b, t), 1);
    // The owner's typo is forgiven on B as on A; the attacker's three
    // guesses at alice's name are not.
    for n in [&a, &b] {
        assert_eq!(n.p.check(owner, b"other@x", t), Penalty::None);
        assert_eq!(n.p.check(owner, b"alice@x", t), Penalty::Delay(8 * S));
        assert_eq!(n.p.check(attacker, b"other@x", t), Penalty::Delay(8 * S));
        assert_eq!(n.p.tracked(), (1, 1), "the owner's record is gone");
    }
}

#[test]
fn nodes_with_different_keys_do_not_count_together() {
    let a = node();
    let b = node_with(cfg(), b"another-fleet-with-its-own-secret");
    let c = ip("203.0.113.5");
    let t = Instant::now();
    for i in 0..3u8 {
        a.p.failed(c, b"alice@x", &[i], t);
    }
    assert_eq!(deliver(&a, &b, t), 3);
    assert_eq!(a.p.check(c, b"alice@x", t), Penalty::Delay(8 * S));
    assert_eq!(b.p.check(c, b"alice@x", t), Penalty::None);
}

#[test]
fn an_event_is_aged_and_one_as_old_as_forget_after_does_nothing() {
    let (a, b) = (node(), node());
    let c = ip("203.0.113.5");
    let t = Instant::now();
    let hour = Duration::from_secs(3600);
    a.p.failed(c, b"alice@x", b"guess", t);
    a.p.failed(c, b"bob@x", b"guess", t);
    let events = a.sink.take();
    // An hour late (forget_after_secs): nothing at all.
    b.p.apply(&events[0], t + hour, events[0].at_ms() + hour.as_millis() as i64);
    assert_eq!(b.p.check(c, b"alice@x", t + hour), Penalty::None);
    assert_eq!(b.p.tracked(), (0, 0));
    // A second younger: counted, as of when it happened, so forgotten a
    // second later.
    let late = hour - S;
    b.p.apply(&events[1], t + late, events[1].at_ms() + late.as_millis() as i64);
    assert_eq!(b.p.check(c, b"bob@x", t + late), Penalty::Delay(2 * S));
    assert_eq!(b.p.check(c, b"bob@x", t + hour), Penalty::None);
}

#[test]
fn an_event_from_a_clock_ahead_counts_as_now() {
    let (a, b) = (node(), node());
    let c = ip("203.0.113.5");
    let t = Instant::now();
    a.p.failed(c, b"alice@x", b"guess", t);
    // B's wall clock is 10 minutes behind A's: the failure happened now,
    // not in 10 minutes, and is forgotten an hour from now.
    deliver_late(&a, &b, t, Duration::ZERO);
    let e = CounterEvent::LoginFailed {
        client: b.p.client_key(c),
        login: b.p.key.login(b"bob@x"),
        password: 1,
        at_ms: unix_ms(t) + 600_000,
    };
    b.p.apply(&e, t, unix_ms(t));
    assert_eq!(b.p.check(c, b"bob@x", t), Penalty::Delay(4 * S));
    assert_eq!(
        b.p.check(c, b"bob@x", t + Duration::from_secs(3600)),
        Penalty::None
    );
}

#[test]
fn a_late_event_never_makes_a_record_look_older() {
    let (a, b) = (node(), node());
    let c = ip("203.0.113.5");
    let t = Instant::now();
    b.p.failed(c, b"alice@x", b"new", t);
    // A's failure from 50 minutes ago arrives only now.
    let late = Duration::from_secs(50 * 60);
    a.p.failed(c, b"alice@x", b"old", t - late);
    deliver_late(&a, &b, t, late);
    // Both count; the record's last failure is still B's, at t.
    let half_hour = t + Duration::from_secs(30 * 60);
    assert_eq!(b.p.check(c, b"alice@x", half_hour), Penalty::Delay(4 * S));
}

#[test]
fn a_late_event_never_shortens_a_refusal() {
    let (a, b) = (node(), node());
    let c = ip("203.0.113.5");
    let t = Instant::now();
    for i in 0..10u8 {
        b.p.failed(c, b"alice@x", &[i], t);
    }
    // Refused until t + 600 s; an 11th failure from 5 minutes ago arrives.
    let late = Duration::from_secs(300);
    a.p.failed(c, b"alice@x", b"eleventh", t - late);
    deliver_late(&a, &b, t, late);
    assert_eq!(
        b.p.check(c, b"x@x", t + Duration::from_secs(400)),
        Penalty::Refuse {
            retry_after: Duration::from_secs(200)
        }
    );
}

#[test]
fn what_is_published_is_hashes_and_exempt_clients_publish_nothing() {
    let a = node();
    let t = Instant::now();
    // 192.0.2.0/24 is trusted: it counts nothing, so tells nothing.
    a.p.failed(ip("192.0.2.9"), b"alice@x", b"guess", t);
    a.p.succeeded(ip("192.0.2.9"), b"alice@x");
    assert!(a.sink.take().is_empty());

    let c = ip("203.0.113.5");
    a.p.failed(c, b"alice@x", b"hunter2", t);
    a.p.succeeded(c, b"alice@x");
    let events = a.sink.take();
    let key = CounterKey::from_secret(FLEET).unwrap();
    let (client, login) = (key.client(ClientGroup::of(c)), key.login(b"alice@x"));
    // The time is the wall clock of `t`, read twice (so within 1 ms).
    let CounterEvent::LoginFailed { at_ms, .. } = events[0] else {
        panic!("{:?}", events[0]);
    };
    assert!((at_ms - unix_ms(t)).abs() <= 1, "{at_ms} vs {}", unix_ms(t));
    assert_eq!(
        events[0],
        CounterEvent::LoginFailed {
            client,
            login,
            password: key.password(b"hunter2"),
            at_ms,
        }
    );
    assert!(
        matches!(events[1], CounterEvent::LoginSucceeded { client: c2, login: l2, .. }
        if c2 == client && l2 == login)
    );
    assert_eq!(events.len(), 2);
    for e in &events {
        let text = e.encode();
        assert!(!text.contains("alice") && !text.contains("hunter2"), "{text}");
    }
    // A success with nothing to forgive (a phone polling) tells no one.
    a.p.succeeded(c, b"alice@x");
    a.p.succeeded(ip("198.51.100.1"), b"bob@x");
    assert!(a.sink.take().is_empty());

    // A penalty that is off publishes nothing and applies nothing.
    let off = node_with(
        PenaltyConfig {
            enabled: false,
            ..cfg()
        },
        FLEET,
    );
    off.p.failed(c, b"alice@x", b"guess", t);
    assert!(off.sink.take().is_empty());
    off.p.apply(&events[0], t, events[0].at_ms());
    assert_eq!(off.p.tracked(), (0, 0));
    // The sending rate's events are not the penalty's.
    a.p.apply(
        &CounterEvent::MessageSent {
            mailbox: client,
            at_ms: unix_ms(t),
        },
        t,
        unix_ms(t),
    );
    assert_eq!(a.p.tracked(), (0, 0));
}
