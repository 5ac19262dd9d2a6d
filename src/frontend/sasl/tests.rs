use super::*;

fn b64(s: &[u8]) -> Vec<u8> {
    STANDARD.encode(s).into_bytes()
}

type PlainCase<'a> = (&'a [u8], Option<&'a [u8]>, &'a [u8], &'a [u8]);

#[test]
fn plain_known_answers() {
    // (decoded message, expected authzid, authcid, password) — RFC 4616 §4 examples.
    let cases: &[PlainCase] = &[
        (b"\0tim\0tanstaaftanstaaf", None, b"tim", b"tanstaaftanstaaf"),
        (b"Ursel\0Kurt\0xipj3plmq", Some(b"Ursel"), b"Kurt", b"xipj3plmq"),
        (b"\0alice@pec.example\0", None, b"alice@pec.example", b""),
    ];
    for (msg, authzid, authcid, pass) in cases {
        let c = parse_plain(msg).unwrap();
        assert_eq!(c.authzid.as_deref(), *authzid);
        assert_eq!(c.authcid, *authcid);
        assert_eq!(c.password.expose(), *pass);
    }
}

#[test]
fn plain_rejects_malformed() {
    assert_eq!(parse_plain(b"no-nuls"), Err(SaslError::MalformedPlain));
    assert_eq!(parse_plain(b"\0only-one"), Err(SaslError::MalformedPlain));
    assert_eq!(parse_plain(b"\0\0pass"), Err(SaslError::EmptyUser));
    assert_eq!(parse_plain(b"\0u\0pa\0ss"), Err(SaslError::MalformedPlain));
    assert_eq!(decode_response(b"!!notbase64"), Err(SaslError::Base64));
    assert_eq!(decode_response(b"*"), Err(SaslError::Cancelled));
    assert_eq!(decode_response(b"="), Ok(vec![]));
}

#[test]
fn plain_with_and_without_initial_response() {
    let msg = b64(b"\0alice@pec.example\0s3cret");
    match Exchange::start(Mechanism::Plain, Some(&msg)).unwrap() {
        Step::Done(c) => assert_eq!(c.authcid, b"alice@pec.example"),
        other => panic!("unexpected {other:?}"),
    }
    let Step::Challenge("", next) = Exchange::start(Mechanism::Plain, None).unwrap() else {
        panic!()
    };
    let Step::Done(c) = next.step(&msg).unwrap() else {
        panic!()
    };
    assert_eq!(c.password.expose(), b"s3cret");
}

#[test]
fn login_mechanism_steps_and_cancel() {
    let Step::Challenge(LOGIN_USERNAME_CHALLENGE, ex) = Exchange::start(Mechanism::Login, None).unwrap()
    else {
        panic!()
    };
    let Step::Challenge(LOGIN_PASSWORD_CHALLENGE, ex) = ex.step(&b64(b"bob@pec.example")).unwrap() else {
        panic!()
    };
    let Step::Done(c) = ex.step(&b64(b"pw")).unwrap() else {
        panic!()
    };
    assert_eq!(
        (c.authcid.as_slice(), c.password.expose()),
        (&b"bob@pec.example"[..], &b"pw"[..])
    );

    let Step::Challenge(_, ex) = Exchange::start(Mechanism::Login, Some(&b64(b"bob"))).unwrap() else {
        panic!()
    };
    assert_eq!(ex.step(b"*").unwrap_err(), SaslError::Cancelled);
}

#[test]
fn login_refuses_nul_so_the_upstream_plain_message_keeps_its_fields() {
    // "alice\0@pec.example" would reach the upstream as the PLAIN
    // message "\0alice\0@pec.example\0pw": user "alice".
    let ex = Exchange::LoginAwaitingUser;
    assert_eq!(ex.step(&b64(b"alice\0@pec.example")).unwrap_err(), SaslError::Nul);
    let Step::Challenge(_, ex) = Exchange::start(Mechanism::Login, Some(&b64(b"alice"))).unwrap() else {
        panic!()
    };
    assert_eq!(ex.step(&b64(b"pw\0x")).unwrap_err(), SaslError::Nul);
}

#[test]
fn upstream_plain_round_trips() {
    let built = build_plain(b"alice@pec.example", b"proxy-master", &Secret::from_slice(b"m"));
    let decoded = decode_response(built.expose()).unwrap();
    let c = parse_plain(&decoded).unwrap();
    assert_eq!(c.authzid.as_deref(), Some(&b"alice@pec.example"[..]));
    assert_eq!(c.authcid, b"proxy-master");
}
