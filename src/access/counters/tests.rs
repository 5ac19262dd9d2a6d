//! The fleet's key and the events' text form.

use super::*;

const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

fn samples() -> [CounterEvent; 6] {
    [
        CounterEvent::LoginFailed {
            client: 0x0123_4567_89ab_cdef,
            login: u64::MAX,
            password: 0,
            at_ms: 1_780_000_000_123,
        },
        CounterEvent::LoginFailed {
            client: 1,
            login: 2,
            password: 3,
            at_ms: i64::MIN,
        },
        CounterEvent::LoginSucceeded {
            client: 0xfeed,
            login: 0xbeef,
            at_ms: 0,
        },
        CounterEvent::MessageSent {
            mailbox: 42,
            at_ms: -1,
        },
        CounterEvent::MessageRefunded {
            mailbox: u64::MAX,
            at_ms: i64::MAX,
        },
        CounterEvent::MessageSent {
            mailbox: 0xa0b1_c2d3_e4f5_0617,
            at_ms: 1_780_000_000_000,
        },
    ]
}

#[test]
fn nodes_with_the_same_secret_hash_alike_and_others_do_not() {
    let a = CounterKey::from_secret(SECRET).unwrap();
    let b = CounterKey::from_secret(SECRET).unwrap();
    let group = ClientGroup::of("203.0.113.5".parse().unwrap());
    assert_eq!(a.client(group), b.client(group));
    assert_eq!(a.login(b"alice@x"), b.login(b"alice@x"));
    assert_eq!(a.password(b"guess"), b.password(b"guess"));
    assert_eq!(a.mailbox("alice@x"), b.mailbox("alice@x"));

    let mut other = *SECRET;
    other[31] ^= 1;
    let c = CounterKey::from_secret(&other).unwrap();
    assert_ne!(a.login(b"alice@x"), c.login(b"alice@x"));
    assert_ne!(a.login(b"alice@x"), CounterKey::random().login(b"alice@x"));
    assert_ne!(
        CounterKey::random().login(b"alice@x"),
        CounterKey::random().login(b"alice@x")
    );
}

#[test]
fn a_value_hashes_differently_as_each_kind() {
    let k = CounterKey::from_secret(SECRET).unwrap();
    let v = [k.login(b"x@y"), k.password(b"x@y"), k.mailbox("x@y")];
    assert!(v[0] != v[1] && v[1] != v[2] && v[0] != v[2], "{v:x?}");
    // An IPv4 client and the IPv6 /64 with the same number differ too.
    assert_ne!(k.client(ClientGroup::V4(7)), k.client(ClientGroup::V6(7)));
}

#[test]
fn a_known_answer_pins_the_hash_every_node_computes() {
    // HMAC-SHA256(key = SECRET, b"l" ‖ b"alice@x"), first 8 bytes: a node
    // built from another version must compute the same, or the fleet
    // silently stops counting together. Regenerate with:
    // printf 'lalice@x' | openssl dgst -sha256 -mac HMAC \
    //   -macopt key:0123456789abcdef0123456789abcdef
    // (the first 16 hex digits).
    let k = CounterKey::from_secret(SECRET).unwrap();
    assert_eq!(format!("{:016x}", k.login(b"alice@x")), "b22630b5f15c5959");
}

#[test]
fn a_short_secret_is_refused_and_the_key_never_shows() {
    assert_eq!(
        CounterKey::from_secret(&SECRET[..31]).unwrap_err(),
        ShortSecret { len: 31 }
    );
    assert!(CounterKey::from_secret(b"").is_err());
    let shown = format!("{:?}", CounterKey::from_secret(SECRET).unwrap());
    assert_eq!(shown, "CounterKey { .. }");
    let err = ShortSecret { len: 3 }.to_string();
    assert!(err.contains("32"), "{err}");
}

#[test]
fn events_round_trip_in_one_spelling() {
    for e in samples() {
        let text = e.encode();
        assert!(text.len() <= 74, "{text}");
        assert_eq!(CounterEvent::decode(&text), Some(e), "{text}");
    }
    assert_eq!(
        samples()[0].encode(),
        "f1:0123456789abcdef:ffffffffffffffff:0000000000000000:1780000000123"
    );
    assert_eq!(samples()[3].encode(), "m1:000000000000002a:-1");
}

#[test]
fn what_encode_does_not_write_is_refused() {
    let refused = [
        "",
        ":",
        "f1",
        "f2:0000000000000001:0000000000000002:0000000000000003:5",
        "F1:0000000000000001:0000000000000002:0000000000000003:5",
        "m1:000000000000002A:5",
        "m1:000000000000002a",
        "m1:000000000000002a:",
        "m1:000000000000002a:5:",
        "m1:000000000000002a:5:6",
        "m1:00000000000002a:5",
        "m1:0000000000000002a:5",
        "m1:+00000000000002a:5",
        "m1:000000000000002a:+5",
        "m1:000000000000002a:05",
        "m1:000000000000002a:-0",
        "m1:000000000000002a:-",
        "m1:000000000000002a: 5",
        "m1:000000000000002a:5 ",
        "m1:000000000000002a:9223372036854775808",
        "m1:000000000000002a:1e3",
        "s1:0000000000000001:5",
        "s1:0000000000000001:0000000000000002:0000000000000003:5",
        "m1:00000000000000é:5",
        "m1\0:000000000000002a:5",
    ];
    for text in refused {
        assert_eq!(CounterEvent::decode(text), None, "{text:?}");
    }
    // Every proper prefix of a valid event is refused (no field is optional).
    for e in samples() {
        let text = e.encode();
        for end in 0..text.len() {
            let prefix = &text[..end];
            // A prefix that ends inside the time field is another valid
            // time, so it may decode; to something else then.
            if let Some(d) = CounterEvent::decode(prefix) {
                assert_ne!(d, e, "{prefix:?}");
                assert_eq!(d.encode(), prefix);
            }
        }
    }
    // Long input is refused unread, even when it starts as a valid event.
    let long = format!("{}{}", samples()[0].encode(), "0".repeat(MAX_ENCODED));
    assert_eq!(CounterEvent::decode(&long), None);
}

#[test]
fn garbage_never_decodes_to_anything_but_its_own_spelling() {
    // A fixed xorshift, so a failure replays; bytes skewed towards the
    // alphabet of the encoding so some inputs get deep into the parser.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"fsmr1:0123456789abcdef-+ \xc3\xa9\x00F2";
    let mut decoded = 0;
    for _ in 0..50_000 {
        let len = (next() % 140) as usize;
        let mut bytes: Vec<u8> = (0..len)
            .map(|_| {
                let r = next();
                if r % 4 == 0 {
                    (r >> 16) as u8
                } else {
                    alphabet[(r >> 8) as usize % alphabet.len()]
                }
            })
            .collect();
        // Half start as a valid kind, so the fields are reached.
        if next() % 2 == 0 && len >= 3 {
            bytes[..3].copy_from_slice([b"f1:", b"s1:", b"m1:", b"r1:"][(next() % 4) as usize]);
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Some(e) = CounterEvent::decode(&text) {
            assert_eq!(e.encode(), text, "{text:?}");
            decoded += 1;
        }
    }
    // Mutating one byte of a valid event: refused, or another valid event.
    for e in samples() {
        let text = e.encode().into_bytes();
        for i in 0..text.len() {
            for b in [b'0', b'g', b':', b'-', 0xff] {
                let mut m = text.clone();
                m[i] = b;
                let m = String::from_utf8_lossy(&m);
                if let Some(d) = CounterEvent::decode(&m) {
                    assert_eq!(d.encode(), m, "{m:?}");
                    decoded += 1;
                }
            }
        }
    }
    assert!(decoded > 0, "the mutations reach valid events too");
}

#[test]
fn ages_are_never_negative() {
    assert_eq!(age(1_000, 3_500), Duration::from_millis(2_500));
    assert_eq!(age(5_000, 3_500), Duration::ZERO, "from the future: now");
    assert_eq!(age(i64::MIN, i64::MAX), Duration::from_millis(i64::MAX as u64));
    assert_eq!(age(i64::MAX, i64::MIN), Duration::ZERO);
}

#[test]
fn wall_times_follow_the_monotonic_clock() {
    let t = Instant::now();
    let now = unix_ms(t);
    // Within a second of the wall clock (the two clocks are read apart).
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!((now - wall).abs() < 1_000, "{now} {wall}");
    // An hour before or after on the monotonic clock is an hour before or
    // after in unix time.
    let hour = Duration::from_secs(3600);
    assert!((now - unix_ms(t - hour) - 3_600_000).abs() < 1_000);
    assert!((unix_ms(t + hour) - now - 3_600_000).abs() < 1_000);
}
