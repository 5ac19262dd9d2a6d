use super::*;

#[test]
fn xtext_known_answers() {
    assert_eq!(xtext(b"alice@pec.example"), "alice@pec.example");
    assert_eq!(xtext(b"a+b=c d"), "a+2Bb+3Dc+20d");
    assert_eq!(xtext(b"x\r\nRCPT"), "x+0D+0ARCPT");
    assert_eq!(xtext("è".as_bytes()), "+C3+A8");
    assert_eq!(xclient_addr("192.0.2.1".parse().unwrap()), "192.0.2.1");
    assert_eq!(xclient_addr("2001:db8::1".parse().unwrap()), "IPV6:2001:db8::1");
    assert_eq!(xclient_addr("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1");
}

#[test]
fn extensions_are_found_by_keyword() {
    let r = Reply {
        code: 250,
        lines: vec![
            "mx.pec.example".into(),
            "PIPELINING".into(),
            "XCLIENT NAME ADDR PROTO HELO LOGIN".into(),
            "SMTPUTF8".into(),
        ],
    };
    assert_eq!(r.has_extension("xclient"), Some("NAME ADDR PROTO HELO LOGIN"));
    assert_eq!(r.has_extension("SMTPUTF8"), Some(""));
    assert_eq!(r.has_extension("mx.pec.example"), None);
    assert_eq!(r.has_extension("STARTTLS"), None);
}
