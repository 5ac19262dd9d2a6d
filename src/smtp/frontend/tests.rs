use super::*;
use crate::frontend::test_support::{assert_cut_off, events, kinds};

fn b64(s: &[u8]) -> String {
    crate::frontend::sasl::encode(s)
}

/// Feeds `input`, returns everything the front-end would send, and the
/// last event other than a reply or bad input (Login / StartTls / Close),
/// if any.
fn feed(fe: &mut SmtpFrontend, input: &[u8]) -> (String, Option<Event>) {
    fe.receive(input);
    let mut out = Vec::new();
    while let Some(event) = fe.next_event() {
        match event {
            Event::Reply(bytes) => out.extend(bytes),
            Event::BadInput(_) => {}
            Event::StartTls(bytes) => {
                out.extend(bytes);
                return (String::from_utf8(out).unwrap(), Some(Event::StartTls(vec![])));
            }
            other => return (String::from_utf8(out).unwrap(), Some(other)),
        }
    }
    (String::from_utf8(out).unwrap(), None)
}

fn tls() -> SmtpFrontend {
    SmtpFrontend::new(FrontendOptions::default(), true)
}

/// A front-end that takes any amount of bad input, for transcripts of it.
fn tolerant() -> SmtpFrontend {
    SmtpFrontend::new(
        FrontendOptions {
            max_prelogin_errors: u32::MAX,
            ..FrontendOptions::default()
        },
        true,
    )
}

fn starttls() -> SmtpFrontend {
    SmtpFrontend::new(
        FrontendOptions {
            starttls: true,
            ..FrontendOptions::default()
        },
        false,
    )
}

#[test]
fn greeting_and_ehlo_on_tls() {
    let mut fe = tls();
    assert_eq!(fe.greeting(), b"220 localhost ESMTP PEC mail proxy ready\r\n");
    let (out, ev) = feed(&mut fe, b"EHLO client.example\r\n");
    assert_eq!(
        out,
        "250-localhost\r\n250-PIPELINING\r\n250-SIZE 31457280\r\n250-8BITMIME\r\n\
         250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN\r\n"
    );
    assert!(ev.is_none());
    let (out, _) = feed(
        &mut fe,
        b"HELO x\r\nNOOP\r\nRSET\r\nHELP\r\nVRFY bob\r\nFOO bar\r\n",
    );
    assert_eq!(
        out,
        format!(
            "250 localhost\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n{}\r\n502 5.5.1 VRFY and EXPN are disabled\r\n\
             500 5.5.1 Command unrecognized\r\n",
            reply::HELP
        )
    );
    let (out, ev) = feed(&mut fe, b"QUIT\r\nNOOP\r\n");
    assert_eq!(out, "221 2.0.0 Bye\r\n");
    assert!(matches!(ev, Some(Event::Close)));
}

#[test]
fn before_tls_no_auth_and_starttls_discards_pipelined_bytes() {
    let mut fe = starttls();
    let (out, _) = feed(&mut fe, b"EHLO c\r\n");
    assert!(!out.contains("AUTH"), "{out}");
    assert!(out.ends_with("250 STARTTLS\r\n"), "{out}");
    let (out, _) = feed(&mut fe, b"AUTH PLAIN AGEAYg==\r\nMAIL FROM:<a@b>\r\n");
    assert_eq!(
        out,
        "530 5.7.0 Must issue a STARTTLS command first\r\n530 5.7.0 Authentication required\r\n"
    );
    // Commands pipelined behind STARTTLS are dropped, never executed.
    let (out, ev) = feed(&mut fe, b"STARTTLS\r\nAUTH PLAIN AGEAYg==\r\n");
    assert_eq!(out, "220 2.0.0 Ready to start TLS\r\n");
    assert!(matches!(ev, Some(Event::StartTls(_))));
    fe.tls_established();
    // RFC 3207: the greeting is forgotten, EHLO again.
    let (out, _) = feed(&mut fe, b"AUTH PLAIN AGEAYg==\r\n");
    assert_eq!(out, "503 5.5.1 Send EHLO first\r\n");
    let (out, _) = feed(&mut fe, b"EHLO c\r\nSTARTTLS\r\n");
    assert!(
        out.contains("250 AUTH PLAIN LOGIN\r\n") && !out.contains("250-STARTTLS"),
        "{out:?}"
    );
    assert!(out.ends_with("503 5.5.1 TLS already active\r\n"), "{out}");
}

#[test]
fn plain_listener_without_starttls_refuses_auth_and_starttls() {
    let mut fe = SmtpFrontend::new(FrontendOptions::default(), false);
    let (out, _) = feed(&mut fe, b"EHLO c\r\nSTARTTLS\r\nAUTH LOGIN\r\n");
    assert!(
        out.contains("502 5.5.1 STARTTLS is not offered here\r\n"),
        "{out}"
    );
    assert!(out.ends_with("538 5.7.11 Encryption required for requested authentication mechanism\r\n"));
    let mut fe = SmtpFrontend::new(
        FrontendOptions {
            allow_plaintext_login: true,
            ..FrontendOptions::default()
        },
        false,
    );
    let (out, ev) = feed(
        &mut fe,
        format!("EHLO c\r\nAUTH PLAIN {}\r\n", b64(b"\0a@b\0pw")).as_bytes(),
    );
    assert!(out.contains("AUTH PLAIN LOGIN"), "{out}");
    assert!(matches!(ev, Some(Event::Login(_))));
}

#[test]
fn auth_plain_with_and_without_initial_response() {
    let mut fe = tls();
    let msg = b64(b"\0alice@pec.example\0s3cret");
    let (_, ev) = feed(
        &mut fe,
        format!("EHLO c\r\nAUTH PLAIN {msg}\r\nMAIL FROM:<x@y>\r\n").as_bytes(),
    );
    let Some(Event::Login(attempt)) = ev else { panic!() };
    assert_eq!(attempt.credentials.authcid, b"alice@pec.example");
    assert_eq!(attempt.mechanism, Mechanism::Plain);
    assert!(!fe.wants_input());
    let (greeting, pipelined) = fe.into_logged_in();
    assert_eq!(greeting.name, "c");
    assert_eq!(&pipelined[..], b"MAIL FROM:<x@y>\r\n");

    let mut fe = tls();
    let (out, ev) = feed(&mut fe, b"EHLO c\r\nAUTH plain\r\n");
    assert!(out.ends_with("334 \r\n"), "{out}");
    assert!(ev.is_none());
    let (_, ev) = feed(&mut fe, format!("{msg}\r\n").as_bytes());
    assert!(matches!(ev, Some(Event::Login(_))));
}

#[test]
fn auth_login_steps_cancel_and_bad_base64() {
    let mut fe = tls();
    let (out, _) = feed(&mut fe, b"EHLO c\r\nAUTH LOGIN\r\n");
    assert!(out.ends_with("334 VXNlcm5hbWU6\r\n"), "{out}");
    let (out, _) = feed(&mut fe, format!("{}\r\n", b64(b"bob@pec.example")).as_bytes());
    assert_eq!(out, "334 UGFzc3dvcmQ6\r\n");
    let (out, _) = feed(&mut fe, b"*\r\n");
    assert_eq!(out, "501 5.7.0 Authentication cancelled\r\n");

    let (out, _) = feed(
        &mut fe,
        format!("AUTH LOGIN {}\r\n", b64(b"bob@pec.example")).as_bytes(),
    );
    assert_eq!(out, "334 UGFzc3dvcmQ6\r\n");
    let (_, ev) = feed(&mut fe, format!("{}\r\n", b64(b"pw")).as_bytes());
    let Some(Event::Login(attempt)) = ev else { panic!() };
    assert_eq!(attempt.credentials.password.expose(), b"pw");

    let mut fe = tls();
    let (out, _) = feed(
        &mut fe,
        b"EHLO c\r\nAUTH PLAIN ****\r\nAUTH PLAIN\r\nnot base64!\r\nAUTH PLAIN QQ=\r\n",
    );
    assert!(
        out.ends_with(
            "501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n334 \r\n\
             501 5.5.2 Invalid base64 data\r\n501 5.5.2 Invalid base64 data\r\n"
        ),
        "{out}"
    );
    let (out, _) = feed(&mut fe, b"AUTH CRAM-MD5\r\nAUTH PLAIN =\r\n");
    assert_eq!(
        out,
        "504 5.5.4 Unrecognized authentication type\r\n501 5.5.2 Malformed authentication data\r\n"
    );
}

#[test]
fn mail_before_auth_and_bad_input() {
    let mut fe = tolerant();
    let (out, _) = feed(
        &mut fe,
        b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@b>\r\nDATA\r\nMAIL FROM:a\r\nNO\0OP\r\nNOOP\n",
    );
    assert!(
        out.ends_with(
            "530 5.7.0 Authentication required\r\n530 5.7.0 Authentication required\r\n\
             530 5.7.0 Authentication required\r\n501 5.5.4 Syntax: MAIL FROM:<address> [parameters]\r\n\
             500 5.5.2 Syntax error: NUL character in command\r\n500 5.5.2 Syntax error: lines must end with CRLF\r\n"
        ),
        "{out}"
    );
}

#[test]
fn over_long_lines_are_refused_and_skipped() {
    let mut fe = tolerant();
    // A line that arrives in pieces without its end...
    let (out, _) = feed(&mut fe, &[b'X'; 600]);
    assert_eq!(out, "500 5.5.2 Line too long\r\n");
    // ...is skipped up to its line feed, then the session goes on.
    let (out, _) = feed(&mut fe, b"XXXX\r\nNOOP\r\n");
    assert_eq!(out, "250 2.0.0 Ok\r\n");
    // A complete over-long line in one read.
    let long = format!("NOOP {}\r\nNOOP\r\n", "y".repeat(600));
    let (out, _) = feed(&mut fe, long.as_bytes());
    assert_eq!(out, "500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n");
    // MAIL may be 500 octets longer (RFC 4954 §5).
    let mail = format!("MAIL FROM:<{}@b>\r\n", "a".repeat(700));
    let (out, _) = feed(&mut fe, mail.as_bytes());
    assert_eq!(out, "530 5.7.0 Authentication required\r\n");
    // AUTH exchange lines have their own limit and code (RFC 4954 §4).
    let (out, _) = feed(&mut fe, b"EHLO c\r\nAUTH PLAIN\r\n");
    assert!(out.ends_with("334 \r\n"));
    let (out, _) = feed(&mut fe, &vec![b'A'; 9000]);
    assert_eq!(out, "500 5.5.6 Authentication Exchange line is too long\r\n");
    let (out, _) = feed(&mut fe, b"AAAA\r\nNOOP\r\n");
    assert_eq!(out, "250 2.0.0 Ok\r\n");
    // So does an initial response on the AUTH line itself, whole or in pieces.
    let long = format!("AUTH PLAIN {}\r\nNOOP\r\n", "A".repeat(9000));
    let (out, _) = feed(&mut fe, long.as_bytes());
    assert_eq!(
        out,
        "500 5.5.6 Authentication Exchange line is too long\r\n250 2.0.0 Ok\r\n"
    );
    let (out, _) = feed(&mut fe, format!("AUTH LOGIN {}", "A".repeat(9000)).as_bytes());
    assert_eq!(out, "500 5.5.6 Authentication Exchange line is too long\r\n");
    let (out, _) = feed(&mut fe, b"AAAA\r\nNOOP\r\n");
    assert_eq!(out, "250 2.0.0 Ok\r\n");
}

#[test]
fn failed_logins_are_counted_and_close() {
    let mut fe = tls();
    let plain = format!("AUTH PLAIN {}\r\n", b64(b"\0a@b\0wrong"));
    feed(&mut fe, b"EHLO c\r\n");
    for i in 1..=3 {
        let (_, ev) = feed(&mut fe, plain.as_bytes());
        assert!(matches!(ev, Some(Event::Login(_))));
        let (out, close) = fe.login_failed("535 5.7.8 Authentication credentials invalid");
        if i < 3 {
            assert_eq!(out, b"535 5.7.8 Authentication credentials invalid\r\n");
            assert!(!close);
        } else {
            assert!(close);
            assert!(
                out.ends_with(b"421 4.7.0 Too many failed authentication attempts, closing connection\r\n")
            );
        }
    }
    let mut fe = tls();
    feed(&mut fe, b"EHLO c\r\n");
    feed(&mut fe, plain.as_bytes());
    assert_eq!(
        fe.login_unavailable(reply::UPSTREAM_UNAVAILABLE),
        b"454 4.7.0 Temporary authentication failure, try again later\r\n"
    );
    assert!(fe.wants_input());
}

#[test]
fn bad_input_known_answers() {
    use BadInput::*;
    let starttls_port = FrontendOptions {
        starttls: true,
        ..FrontendOptions::default()
    };
    let no_tls = FrontendOptions::default();
    let long_auth = format!("EHLO c\r\nAUTH PLAIN {}\r\n", "A".repeat(9000));
    let table: &[(Option<&FrontendOptions>, &[u8], &[BadInput])] = &[
        // (plain listener, or TLS; input; kinds)
        (None, b"EHLO c\r\nHELO c\r\nNOOP\r\nRSET\r\nHELP\r\nQUIT\r\n", &[]),
        (None, b"FOO bar\r\n", &[UnknownCommand]),
        // Refused for what they are, not counted.
        (None, b"VRFY bob\r\nEXPN list\r\n", &[]),
        (None, b"AUTH PLAIN\r\n", &[]),
        (None, b"STARTTLS\r\n", &[]),
        (None, b"EHLO c\r\nAUTH CRAM-MD5\r\n", &[]),
        (None, b"EHLO c\r\nAUTH LOGIN\r\n*\r\n", &[]),
        // Decodes, but is no PLAIN message: not counted in SMTP.
        (None, b"EHLO c\r\nAUTH PLAIN =\r\n", &[]),
        (
            None,
            b"MAIL FROM:<a@b>\r\nRCPT TO:<a@b>\r\nDATA\r\nBDAT 1 LAST\r\n",
            &[AuthRequired; 4],
        ),
        (None, b"MAIL FROM:a\r\n", &[Syntax]),
        (None, b"NO\0OP\r\n", &[Syntax]),
        (None, b"NOOP\n", &[Syntax]),
        (None, b"EHLO c\r\nAUTH PLAIN ****\r\n", &[Syntax]),
        (None, &[b'X'; 600], &[LineTooLong]),
        (None, long_auth.as_bytes(), &[LineTooLong]),
        (
            None,
            b"EHLO c\r\nAUTH PLAIN\r\nnot base64!\r\nAUTH PLAIN QQ=\r\n",
            &[BadBase64, BadBase64],
        ),
        (
            Some(&starttls_port),
            b"EHLO c\r\nAUTH PLAIN AGEAYg==\r\n",
            &[LoginBeforeTls],
        ),
        (Some(&no_tls), b"EHLO c\r\nAUTH LOGIN\r\n", &[LoginBeforeTls]),
        (
            None,
            b"FOO\r\nNOOP\r\nMAIL FROM:<a@b>\r\n",
            &[UnknownCommand, AuthRequired],
        ),
    ];
    for (plain, input, expected) in table {
        let mut fe = match plain {
            Some(opts) => SmtpFrontend::new((*opts).clone(), false),
            None => tolerant(),
        };
        let got = kinds(&events(&mut fe, input));
        assert_eq!(got, *expected, "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn bad_input_follows_its_reply() {
    let mut fe = tls();
    let evs = events(&mut fe, b"MAIL FROM:<a@b>\r\nNOOP\r\n");
    assert!(
        matches!(
            evs.as_slice(),
            [
                Event::Reply(_),
                Event::BadInput(BadInput::AuthRequired),
                Event::Reply(_)
            ]
        ),
        "{evs:?}"
    );
}

#[test]
fn the_nth_refusal_closes_with_too_many_errors() {
    let opts = FrontendOptions::default();
    let max = opts.max_prelogin_errors as usize;
    let mut fe = SmtpFrontend::new(opts, true);
    let before = events(&mut fe, &b"RCPT TO:<a@b>\r\n".repeat(max - 1));
    assert_eq!(kinds(&before), vec![BadInput::AuthRequired; max - 1]);
    assert!(!before.iter().any(|ev| matches!(ev, Event::Close)));

    let last = events(&mut fe, b"FOO\r\nEHLO c\r\n");
    assert_cut_off(&last, BadInput::UnknownCommand, reply::TOO_MANY_ERRORS);
    assert!(!fe.wants_input());
    assert!(matches!(events(&mut fe, b"NOOP\r\n").as_slice(), [Event::Close]));
}

/// Lines sent one byte per read, commands and an AUTH LOGIN exchange: each
/// is parsed once, when it ends, and what the front-end holds stays within
/// its bound however the bytes come.
#[test]
fn lines_sent_one_byte_per_read_are_parsed_once() {
    let mut fe = tolerant();
    let name = "h".repeat(400);
    let user = "u".repeat(3000);
    let stream = format!("EHLO {name}\r\nNOOP\r\nAUTH LOGIN\r\n{user}\r\n");
    for &b in stream.as_bytes() {
        fe.receive(&[b]);
        while fe.next_event().is_some() {}
        assert!(fe.buffered() <= fe.max_buffered());
    }
    assert_eq!(fe.parsed(), stream.len() as u64);
}
