use super::*;

#[test]
fn quoting_escapes_and_refuses_what_cannot_be_quoted() {
    assert_eq!(quoted(b"alice").unwrap().as_slice(), b"\"alice\"");
    assert_eq!(quoted(b"a\"b\\c").unwrap().as_slice(), b"\"a\\\"b\\\\c\"");
    assert!(quoted(b"a\r\nb LOGOUT").is_none());
    assert!(quoted("è".as_bytes()).is_none());
}

#[test]
fn greetings_and_codes() {
    assert_eq!(
        greeting_capabilities(b"* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+] Dovecot ready.")
            .unwrap()
            .as_deref(),
        Some("IMAP4rev1 SASL-IR LITERAL+")
    );
    assert_eq!(greeting_capabilities(b"* OK ready").unwrap(), None);
    assert!(matches!(
        greeting_capabilities(b"* BYE too busy"),
        Err(UpstreamError::Unavailable(_))
    ));
    assert!(matches!(
        greeting_capabilities(b"* PREAUTH hi"),
        Err(UpstreamError::Protocol(_))
    ));
    assert_eq!(trailing_literal(b"* ID (\"name\" {7}"), Some(7));
    assert_eq!(trailing_literal(b"* OK {x}"), None);
}
