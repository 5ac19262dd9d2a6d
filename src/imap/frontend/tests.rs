//! Transcript tests: client bytes in, the exact server bytes out.

use super::*;
use crate::frontend::test_support::{assert_cut_off, events, kinds};

/// Feeds `input` and drains events; returns all reply bytes as text and the
/// last event other than a reply or bad input (Login, StartTls or Close),
/// if any.
fn run(fe: &mut ImapFrontend, input: &[u8]) -> (String, Option<Event>) {
    fe.receive(input);
    let mut out = Vec::new();
    while let Some(ev) = fe.next_event() {
        match ev {
            Event::Reply(bytes) => out.extend(bytes),
            Event::BadInput(_) => {}
            other => return (String::from_utf8(out).unwrap(), Some(other)),
        }
    }
    (String::from_utf8(out).unwrap(), None)
}

fn tls() -> ImapFrontend {
    ImapFrontend::new(FrontendOptions::default(), true)
}

fn starttls_port() -> ImapFrontend {
    ImapFrontend::new(
        FrontendOptions {
            starttls: true,
            ..FrontendOptions::default()
        },
        false,
    )
}

/// A front-end that takes any amount of bad input, for transcripts of it.
fn tolerant() -> ImapFrontend {
    ImapFrontend::new(
        FrontendOptions {
            max_prelogin_errors: u32::MAX,
            ..FrontendOptions::default()
        },
        true,
    )
}

fn login(ev: Option<Event>) -> LoginAttempt {
    match ev {
        Some(Event::Login(l)) => l,
        other => panic!("expected a login, got {other:?}"),
    }
}

#[test]
fn greeting_advertises_only_what_is_offered() {
    assert_eq!(
        tls().greeting(),
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ AUTH=PLAIN AUTH=LOGIN] PEC mail proxy ready.\r\n"
    );
    assert_eq!(
        starttls_port().greeting(),
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ STARTTLS LOGINDISABLED] PEC mail proxy ready.\r\n"
    );
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let mut fe = tls();
    let (out, ev) = run(&mut fe, b"a CAPABILITY\r\nb NOOP\r\nc ID (\"name\" \"Thunderbird\" \"version\" \"128.0\")\r\nd FETCH 1 BODY[]\r\n");
    assert_eq!(
        out,
        "* CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ AUTH=PLAIN AUTH=LOGIN\r\na OK Capability completed.\r\n\
         b OK NOOP completed.\r\n\
         * ID (\"name\" \"pec-proxy\")\r\nc OK ID completed.\r\n\
         d BAD Command FETCH is not permitted before login.\r\n"
    );
    assert!(ev.is_none());
    assert_eq!(
        fe.client_id(),
        &ClientId {
            name: Some("Thunderbird".into()),
            version: Some("128.0".into())
        }
    );
}

#[test]
fn login_then_pipelined_bytes_are_kept_for_upstream() {
    let mut fe = tls();
    let (out, ev) = run(
        &mut fe,
        b"a1 LOGIN alice@pec.example \"s3 cret\"\r\na2 SELECT INBOX\r\n",
    );
    assert_eq!(out, "");
    let l = login(ev);
    assert_eq!(
        (l.tag.as_slice(), l.credentials.authcid.as_slice()),
        (&b"a1"[..], &b"alice@pec.example"[..])
    );
    assert_eq!(l.credentials.password.expose(), b"s3 cret");
    assert_eq!(l.mechanism, LoginMechanism::Login);
    assert!(!fe.wants_input());
    assert!(fe.next_event().is_none(), "nothing happens while the login runs");
    assert_eq!(&fe.into_pipelined()[..], b"a2 SELECT INBOX\r\n");
}

#[test]
fn synchronising_literals_get_a_continuation_each() {
    let mut fe = tls();
    let (out, ev) = run(&mut fe, b"a LOGIN {5}\r\n");
    assert_eq!(
        (out.as_str(), ev.is_none()),
        ("+ Ready for literal data\r\n", true)
    );
    let (out, ev) = run(&mut fe, b"alice {3}\r\n");
    assert_eq!(
        (out.as_str(), ev.is_none()),
        ("+ Ready for literal data\r\n", true)
    );
    let (out, ev) = run(&mut fe, b"p\"w");
    assert_eq!((out.as_str(), ev.is_none()), ("", true));
    let (_, ev) = run(&mut fe, b"\r\n");
    let l = login(ev);
    assert_eq!(
        (l.credentials.authcid.as_slice(), l.credentials.password.expose()),
        (&b"alice"[..], &b"p\"w"[..])
    );
}

#[test]
fn non_synchronising_literals_need_no_continuation() {
    let mut fe = tls();
    let (out, ev) = run(&mut fe, b"a LOGIN {5+}\r\nalice {2+}\r\npw\r\n");
    assert_eq!(out, "");
    assert_eq!(login(ev).credentials.password.expose(), b"pw");
}

#[test]
fn oversized_literals_are_refused() {
    let mut fe = tls();
    let (out, ev) = run(&mut fe, b"a LOGIN {9000}\r\n");
    assert_eq!(out, "a BAD [TOOBIG] Literal too large.\r\n");
    assert!(ev.is_none());
    // The connection is still usable: the client sent no literal data.
    let (out, _) = run(&mut fe, b"b NOOP\r\n");
    assert_eq!(out, "b OK NOOP completed.\r\n");

    let mut fe = tls();
    let (out, ev) = run(&mut fe, b"a LOGIN {4294967296+}\r\n");
    assert_eq!(
        out,
        "a BAD [TOOBIG] Literal too large.\r\n* BYE Literal too large\r\n"
    );
    assert!(matches!(ev, Some(Event::Close)));
}

/// Feeds `stream` in `chunk`-byte reads until the front-end closes;
/// returns the replies, the bytes it took before closing (`None` if it
/// never closed) and, after every read, checks what it holds against its
/// bound and its parse work against the bytes received.
fn feed_until_closed(fe: &mut ImapFrontend, stream: &[u8], chunk: usize) -> (String, Option<usize>) {
    let mut out = Vec::new();
    let mut received = 0usize;
    for piece in stream.chunks(chunk) {
        fe.receive(piece);
        received += piece.len();
        while let Some(ev) = fe.next_event() {
            match ev {
                Event::Reply(bytes) => out.extend(bytes),
                Event::Close => return (String::from_utf8(out).unwrap(), Some(received)),
                Event::BadInput(_) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(fe.buffered() <= fe.max_buffered(), "{} bytes held", fe.buffered());
        assert!(
            fe.parsed() <= 2 * received as u64,
            "{} bytes parsed of {received}",
            fe.parsed()
        );
    }
    (String::from_utf8(out).unwrap(), None)
}

/// `a ID (` then `"f" {n+}` literals for ever, as the attacker sent.
fn endless_id_literals(literal: usize, count: usize) -> Vec<u8> {
    let mut stream = b"a ID (".to_vec();
    for i in 0..count {
        stream.extend(format!("\"f{i}\" {{{literal}+}}\r\n").as_bytes());
        stream.extend(std::iter::repeat_n(b'x', literal));
        stream.push(b' ');
    }
    stream
}

#[test]
fn a_chain_of_literals_cannot_grow_a_command_past_its_budget() {
    let mut fe = tls();
    let budget = fe.max_buffered();
    assert_eq!(budget, 32 * 1024, "four 8 KiB lines with the defaults");
    // Literals of 1000 bytes: 31 fit the 32 KiB budget, the 32nd is over it.
    let (out, closed) = feed_until_closed(&mut fe, &endless_id_literals(1000, 64), 4096);
    assert_eq!(
        out,
        "a BAD [TOOBIG] Command too large.\r\n* BYE Command too large\r\n"
    );
    assert!(
        closed.is_some_and(|n| n <= budget + 4096),
        "closed after {closed:?} bytes"
    );

    // Literals at ID's 1024-octet limit, sent one byte per read: the
    // parsers still read each byte at most twice.
    let mut fe = tls();
    let (out, closed) = feed_until_closed(&mut fe, &endless_id_literals(1024, 40), 1);
    assert!(out.ends_with("* BYE Command too large\r\n"), "{out}");
    assert!(
        closed.is_some_and(|n| n <= budget),
        "closed after {closed:?} bytes"
    );
}

#[test]
fn a_command_of_many_lines_is_bounded_by_its_total_not_each_line() {
    // LOGIN literals at the literal limit fit; a chain of sync literals in
    // ID is refused once its total would pass the budget.
    let opts = FrontendOptions {
        max_line_bytes: 1024,
        max_literal_bytes: 1024,
        ..FrontendOptions::default()
    };
    assert_eq!(opts.max_command_bytes(), 4096);
    let mut fe = ImapFrontend::new(opts, true);
    let mut stream = b"a ID (".to_vec();
    let mut acks = 0;
    loop {
        stream.extend(b"\"f\" {1000}\r\n");
        let (out, ev) = run(&mut fe, &stream);
        stream.clear();
        if out != "+ Ready for literal data\r\n" {
            assert_eq!(out, "a BAD [TOOBIG] Command too large.\r\n");
            assert!(ev.is_none(), "a refused sync literal leaves the connection open");
            break;
        }
        acks += 1;
        stream.extend(std::iter::repeat_n(b'y', 1000));
        stream.push(b' ');
    }
    assert_eq!(acks, 4, "4 literals of 1000 bytes fit 4096 bytes, not 5");
    let (out, _) = run(&mut fe, b"b NOOP\r\n");
    assert_eq!(out, "b OK NOOP completed.\r\n");
}

#[test]
fn id_follows_rfc_2971_limits() {
    let pairs = |n: usize| {
        let mut cmd = b"a ID (".to_vec();
        for i in 0..n {
            if i > 0 {
                cmd.push(b' ');
            }
            cmd.extend(format!("\"k{i}\" \"v\"").as_bytes());
        }
        cmd.extend(b")\r\n");
        cmd
    };
    let mut fe = tolerant();
    let (out, _) = run(&mut fe, &pairs(30));
    assert!(out.ends_with("a OK ID completed.\r\n"), "{out}");
    let (out, _) = run(&mut fe, &pairs(31));
    assert_eq!(
        out,
        "a BAD Invalid command: more than 30 ID field-value pairs.\r\n"
    );
    let field = "f".repeat(31);
    let (out, _) = run(&mut fe, format!("a ID (\"{field}\" NIL)\r\n").as_bytes());
    assert_eq!(out, "a BAD Invalid command: ID field longer than 30 octets.\r\n");
    let value = "v".repeat(1025);
    let (out, _) = run(&mut fe, format!("a ID (\"name\" \"{value}\")\r\n").as_bytes());
    assert_eq!(
        out,
        "a BAD Invalid command: ID value longer than 1024 octets.\r\n"
    );
    let (out, _) = run(&mut fe, b"a ID (\"name\" {1025}\r\n");
    assert_eq!(out, "a BAD [TOOBIG] Literal too large.\r\n");
    let value = "v".repeat(1024);
    let (out, _) = run(&mut fe, format!("a ID (\"name\" \"{value}\")\r\n").as_bytes());
    assert!(out.ends_with("a OK ID completed.\r\n"), "{out}");
}

#[test]
fn thirty_literal_values_in_one_id_are_taken() {
    // RFC 2971 allows every string of ID to be a literal: within the
    // budget, as many as the client likes, each read once.
    let mut fe = tls();
    let mut stream = b"a ID (".to_vec();
    for i in 0..30 {
        if i > 0 {
            stream.push(b' ');
        }
        stream.extend(format!("{{2+}}\r\nk{} {{1+}}\r\nv", i % 10).as_bytes());
    }
    stream.extend(b")\r\n");
    let (out, ev) = run(&mut fe, &stream);
    assert!(out.ends_with("a OK ID completed.\r\n"), "{out}");
    assert!(ev.is_none());
    assert!(fe.parsed() <= 2 * stream.len() as u64);
}

/// Read once for a literal at its end, parsed once as a command: twice.
#[test]
fn a_line_sent_one_byte_per_read_is_parsed_once() {
    let mut fe = tolerant();
    let line = format!("a LOGIN \"{}\" \"{}\"\r\n", "u".repeat(4000), "p".repeat(4000));
    let mut last = None;
    for &b in line.as_bytes() {
        fe.receive(&[b]);
        while let Some(ev) = fe.next_event() {
            last = Some(ev);
        }
    }
    assert!(matches!(last, Some(Event::Login(_))));
    assert_eq!(fe.parsed(), 2 * line.len() as u64);
}

#[test]
fn literals_in_other_commands_are_refused_at_once() {
    let mut fe = tls();
    let (out, _) = run(&mut fe, b"a APPEND INBOX {310}\r\nb NOOP\r\n");
    assert_eq!(
        out,
        "a BAD Command is not permitted before login.\r\nb OK NOOP completed.\r\n"
    );
}

#[test]
fn authenticate_plain_with_and_without_initial_response() {
    // "\0alice@pec.example\0s3cret"
    let ir = "AGFsaWNlQHBlYy5leGFtcGxlAHMzY3JldA==";
    let mut fe = tls();
    let (_, ev) = run(&mut fe, format!("a AUTHENTICATE PLAIN {ir}\r\n").as_bytes());
    let l = login(ev);
    assert_eq!(l.mechanism, LoginMechanism::Sasl(Mechanism::Plain));
    assert_eq!(l.credentials.authcid, b"alice@pec.example");

    let mut fe = tls();
    let (out, ev) = run(&mut fe, b"a AUTHENTICATE PLAIN\r\n");
    assert_eq!((out.as_str(), ev.is_none()), ("+ \r\n", true));
    let (_, ev) = run(&mut fe, format!("{ir}\r\n").as_bytes());
    assert_eq!(login(ev).credentials.password.expose(), b"s3cret");
}

#[test]
fn authenticate_login_and_cancel() {
    let mut fe = tls();
    let (out, _) = run(&mut fe, b"a AUTHENTICATE LOGIN\r\n");
    assert_eq!(out, "+ VXNlcm5hbWU6\r\n");
    let (out, _) = run(&mut fe, b"Ym9iQHBlYy5leGFtcGxl\r\n");
    assert_eq!(out, "+ UGFzc3dvcmQ6\r\n");
    let (_, ev) = run(&mut fe, b"cHc=\r\n");
    let l = login(ev);
    assert_eq!(
        (l.credentials.authcid.as_slice(), l.credentials.password.expose()),
        (&b"bob@pec.example"[..], &b"pw"[..])
    );

    let mut fe = tls();
    let (_, _) = run(&mut fe, b"a AUTHENTICATE LOGIN Ym9i\r\n");
    let (out, _) = run(&mut fe, b"*\r\nb NOOP\r\n");
    assert_eq!(out, "a BAD Authentication cancelled.\r\nb OK NOOP completed.\r\n");

    let mut fe = tls();
    let (out, _) = run(&mut fe, b"a AUTHENTICATE PLAIN\r\n!!!\r\n");
    assert_eq!(out, "+ \r\na BAD Invalid base64 in authentication exchange.\r\n");
    let (out, _) = run(&mut fe, b"a AUTHENTICATE CRAM-MD5\r\n");
    assert_eq!(out, "a NO [CANNOT] Unsupported authentication mechanism.\r\n");
}

#[test]
fn no_login_before_tls_on_a_starttls_port() {
    let mut fe = starttls_port();
    let (out, ev) = run(&mut fe, b"a LOGIN alice pw\r\nb AUTHENTICATE PLAIN AGEAYg==\r\n");
    assert_eq!(
        out,
        "a NO [PRIVACYREQUIRED] Plaintext authentication is disabled: use STARTTLS or the IMAPS port.\r\n\
         b NO [PRIVACYREQUIRED] Plaintext authentication is disabled: use STARTTLS or the IMAPS port.\r\n"
    );
    assert!(ev.is_none());

    let opts = FrontendOptions {
        starttls: true,
        allow_plaintext_login: true,
        ..FrontendOptions::default()
    };
    let mut fe = ImapFrontend::new(opts, false);
    assert!(matches!(
        run(&mut fe, b"a LOGIN alice pw\r\n").1,
        Some(Event::Login(_))
    ));
}

#[test]
fn starttls_discards_pipelined_bytes() {
    let mut fe = starttls_port();
    let (out, ev) = run(&mut fe, b"a STARTTLS\r\nb LOGIN alice pw\r\n");
    assert_eq!(out, "");
    match ev {
        Some(Event::StartTls(ok)) => assert_eq!(ok, b"a OK Begin TLS negotiation now.\r\n"),
        other => panic!("{other:?}"),
    }
    fe.tls_established();
    assert!(fe.next_event().is_none(), "the injected LOGIN must be gone");
    let (out, _) = run(&mut fe, b"c CAPABILITY\r\nd STARTTLS\r\n");
    assert_eq!(
        out,
        "* CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ AUTH=PLAIN AUTH=LOGIN\r\nc OK Capability completed.\r\n\
         d BAD TLS is already active.\r\n"
    );
}

#[test]
fn bad_input_gets_bad_and_the_session_goes_on() {
    let mut fe = tolerant();
    let (out, _) = run(&mut fe, b"a LOGIN alice\r\n\r\n+x NOOP\r\nb XYZZY\r\nc NOOP\r\n");
    assert_eq!(
        out,
        "a BAD Invalid command: syntax error.\r\n* BAD Invalid command: syntax error.\r\n\
         * BAD Invalid command: syntax error.\r\nb BAD Unknown command.\r\nc OK NOOP completed.\r\n"
    );
    let (out, _) = run(&mut fe, b"d NOOP\n");
    assert_eq!(out, "d BAD Invalid command: syntax error.\r\n");
    let (out, _) = run(&mut fe, b"e LOGIN \"a\0b\" c\r\n");
    assert_eq!(
        out,
        "e BAD Invalid command: invalid character in quoted string.\r\n"
    );
}

#[test]
fn overlong_lines_end_the_session() {
    let mut fe = tls();
    let mut line = b"a LOGIN ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 9000));
    let (out, ev) = run(&mut fe, &line);
    assert_eq!(out, "* BYE Command line too long\r\n");
    assert!(matches!(ev, Some(Event::Close)));
}

#[test]
fn overlong_lines_are_refused_however_they_arrive() {
    let mut line = b"a LOGIN ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 9000));
    line.extend(b"\r\n");
    for chunk in [line.len(), 4096, 1000] {
        let mut fe = tls();
        let mut out = String::new();
        let mut last = None;
        for piece in line.chunks(chunk) {
            let (o, ev) = run(&mut fe, piece);
            out.push_str(&o);
            if ev.is_some() {
                last = ev;
                break;
            }
        }
        assert_eq!(out, "* BYE Command line too long\r\n", "chunks of {chunk}");
        assert!(matches!(last, Some(Event::Close)));
    }
}

#[test]
fn failed_logins_are_limited() {
    let mut fe = tls();
    for i in 1..=3 {
        let (_, ev) = run(&mut fe, format!("t{i} LOGIN alice wrong\r\n").as_bytes());
        let l = login(ev);
        let (reply, close) = fe.login_failed(&l.tag, "AUTHENTICATIONFAILED", "Authentication failed.");
        let mut expected = format!("t{i} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
        if i == 3 {
            expected.push_str("* BYE Too many invalid authentication attempts\r\n");
        }
        assert_eq!((String::from_utf8(reply).unwrap(), close), (expected, i == 3));
    }
}

#[test]
fn logout_says_bye_and_closes() {
    let mut fe = tls();
    let (out, ev) = run(&mut fe, b"z LOGOUT\r\nignored NOOP\r\n");
    assert_eq!(out, "* BYE Logging out\r\nz OK Logout completed.\r\n");
    assert!(matches!(ev, Some(Event::Close)));
}

#[test]
fn bad_input_known_answers() {
    use BadInput::*;
    let long = [&b"a LOGIN "[..], &[b'x'; 9000]].concat();
    // Whole in one read: refused for its length only, never as unknown.
    let long_unknown = [&b"a XYZZY "[..], &[b'x'; 9000], b"\r\n"].concat();
    let table: &[(bool, &[u8], &[BadInput])] = &[
        // (TLS, input, kinds)
        (true, b"a NOOP\r\nb CAPABILITY\r\nc ID NIL\r\nd LOGOUT\r\n", &[]),
        (true, b"a XYZZY\r\n", &[UnknownCommand]),
        // Refused for what it is, not counted.
        (true, b"a FETCH 1 BODY[]\r\n", &[]),
        (true, b"a APPEND INBOX {310}\r\n", &[]),
        (true, b"a LOGIN alice\r\n", &[Syntax]),
        (true, b"\r\n", &[Syntax]),
        (true, b"d NOOP\n", &[Syntax]),
        (true, &long, &[LineTooLong]),
        (true, &long_unknown, &[LineTooLong]),
        (true, b"a LOGIN {9000}\r\n", &[LiteralTooBig]),
        (true, b"a LOGIN {4294967296+}\r\n", &[LiteralTooBig]),
        (false, b"a LOGIN alice pw\r\n", &[LoginBeforeTls]),
        (false, b"a AUTHENTICATE PLAIN\r\n", &[LoginBeforeTls]),
        (true, b"a AUTHENTICATE PLAIN\r\n!!!\r\n", &[BadBase64]),
        // Decodes, but is no PLAIN message.
        (true, b"a AUTHENTICATE PLAIN AGFsaWNl\r\n", &[BadBase64]),
        (true, b"a AUTHENTICATE LOGIN\r\n*\r\n", &[]),
        (true, b"a AUTHENTICATE CRAM-MD5\r\n", &[]),
        (true, b"a STARTTLS\r\n", &[]),
        (false, b"a STARTTLS\r\n", &[]),
        // A tag is the client's: echoed in a reply, never read back.
        (true, b"[TOOBIG] NOOP\r\n[PRIVACYREQUIRED] NOOP\r\n", &[]),
        (
            true,
            b"a XYZZY\r\nb NOOP\r\nc LOGIN x\r\n",
            &[UnknownCommand, Syntax],
        ),
    ];
    for (tls, input, expected) in table {
        let mut fe = if *tls { tolerant() } else { starttls_port() };
        let got = kinds(&events(&mut fe, input));
        assert_eq!(got, *expected, "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn bad_input_follows_its_reply() {
    let mut fe = tls();
    let evs = events(&mut fe, b"a XYZZY\r\nb NOOP\r\n");
    assert!(
        matches!(
            evs.as_slice(),
            [
                Event::Reply(_),
                Event::BadInput(BadInput::UnknownCommand),
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
    let mut fe = ImapFrontend::new(opts, true);
    let before = events(&mut fe, &b"a XYZZY\r\n".repeat(max - 1));
    assert_eq!(kinds(&before), vec![BadInput::UnknownCommand; max - 1]);
    assert!(!before.iter().any(|ev| matches!(ev, Event::Close)));

    let last = events(&mut fe, b"b XYZZY\r\nc NOOP\r\n");
    assert_cut_off(&last, BadInput::UnknownCommand, reply::TOO_MANY_ERRORS);
    // Closed stays closed.
    assert!(matches!(
        events(&mut fe, b"d NOOP\r\n").as_slice(),
        [Event::Close]
    ));

    // A refusal that closes by itself still ends with the cut-off.
    let mut fe = ImapFrontend::new(
        FrontendOptions {
            max_prelogin_errors: 1,
            ..FrontendOptions::default()
        },
        true,
    );
    let long = [&b"a LOGIN "[..], &[b'x'; 9000]].concat();
    assert_eq!(
        kinds(&events(&mut fe, &long)),
        [BadInput::LineTooLong, BadInput::TooManyErrors]
    );
}
