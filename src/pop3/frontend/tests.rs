//! Transcript tests: client bytes in, the exact server bytes out.

use super::*;
use crate::frontend::test_support::{assert_cut_off, events, kinds};

/// Feeds `input` and drains events; returns all reply bytes as text and the
/// last event other than a reply or bad input (Login, StartTls or Close),
/// if any.
fn run(fe: &mut Pop3Frontend, input: &[u8]) -> (String, Option<Event>) {
    fe.receive(input);
    let mut out = Vec::new();
    while let Some(ev) = fe.next_event() {
        match ev {
            Event::Reply(bytes) => out.extend(bytes),
            Event::BadInput(_) => {}
            Event::StartTls(bytes) => {
                out.extend(bytes);
                return (String::from_utf8(out).unwrap(), Some(Event::StartTls(Vec::new())));
            }
            other => return (String::from_utf8(out).unwrap(), Some(other)),
        }
    }
    (String::from_utf8(out).unwrap(), None)
}

fn tls() -> Pop3Frontend {
    Pop3Frontend::new(FrontendOptions::default(), true)
}

fn stls_port() -> Pop3Frontend {
    Pop3Frontend::new(
        FrontendOptions {
            starttls: true,
            ..FrontendOptions::default()
        },
        false,
    )
}

/// A front-end that takes any amount of bad input, for transcripts of it.
fn tolerant() -> Pop3Frontend {
    Pop3Frontend::new(
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

fn b64(s: &[u8]) -> String {
    sasl::encode(s)
}

#[test]
fn greeting_and_capa_list_only_what_is_offered() {
    assert_eq!(tls().greeting(), b"+OK PEC mail proxy ready.\r\n");
    let (out, _) = run(&mut tls(), b"CAPA\r\n");
    assert_eq!(
        out,
        "+OK Capability list follows\r\nUSER\r\nSASL PLAIN LOGIN\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n.\r\n"
    );
    let (out, _) = run(&mut stls_port(), b"CAPA\r\n");
    assert_eq!(
        out,
        "+OK Capability list follows\r\nSTLS\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n.\r\n"
    );
    let mut plain_allowed = Pop3Frontend::new(
        FrontendOptions {
            allow_plaintext_login: true,
            ..FrontendOptions::default()
        },
        false,
    );
    let (out, _) = run(&mut plain_allowed, b"CAPA\r\n");
    assert!(
        out.contains("USER\r\nSASL PLAIN LOGIN\r\n") && !out.contains("STLS"),
        "{out}"
    );
}

#[test]
fn user_pass_logs_in_and_keeps_pipelined_bytes() {
    let mut fe = tls();
    let (out, ev) = run(
        &mut fe,
        b"USER alice@pec.example\r\nPASS s3 cret\r\nSTAT\r\nLIST\r\n",
    );
    assert_eq!(out, "+OK\r\n");
    let l = login(ev);
    assert_eq!(l.credentials.authcid, b"alice@pec.example");
    assert_eq!(l.credentials.password.expose(), b"s3 cret");
    assert_eq!(l.mechanism, LoginMechanism::UserPass);
    assert!(!fe.wants_input());
    assert!(fe.next_event().is_none(), "nothing happens while the login runs");
    assert_eq!(&fe.into_pipelined()[..], b"STAT\r\nLIST\r\n");
}

#[test]
fn pass_needs_a_user_and_a_failed_pass_forgets_it() {
    let mut fe = tls();
    let (out, ev) = run(&mut fe, b"PASS x\r\n");
    assert_eq!((out.as_str(), ev.is_none()), ("-ERR Send USER first\r\n", true));
    let (_, ev) = run(&mut fe, b"USER bob@pec.example\r\nPASS wrong\r\n");
    login(ev);
    let (reply, close) = fe.refused_with("-ERR [AUTH] Authentication failed", true);
    assert_eq!(
        (reply.as_slice(), close),
        (&b"-ERR [AUTH] Authentication failed\r\n"[..], false)
    );
    let (out, _) = run(&mut fe, b"PASS again\r\n");
    assert_eq!(out, "-ERR Send USER first\r\n");
}

#[test]
fn auth_plain_and_login_with_and_without_initial_response() {
    let plain = b64(b"\0alice@pec.example\0pw");
    let cases: Vec<(Vec<u8>, &str, LoginMechanism)> = vec![
        (
            format!("AUTH PLAIN {plain}\r\n").into_bytes(),
            "",
            LoginMechanism::Sasl(Mechanism::Plain),
        ),
        (
            format!("AUTH PLAIN\r\n{plain}\r\n").into_bytes(),
            "+ \r\n",
            LoginMechanism::Sasl(Mechanism::Plain),
        ),
        (
            format!("auth login {}\r\n{}\r\n", b64(b"alice@pec.example"), b64(b"pw")).into_bytes(),
            "+ UGFzc3dvcmQ6\r\n",
            LoginMechanism::Sasl(Mechanism::Login),
        ),
        (
            format!(
                "AUTH LOGIN\r\n{}\r\n{}\r\n",
                b64(b"alice@pec.example"),
                b64(b"pw")
            )
            .into_bytes(),
            "+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n",
            LoginMechanism::Sasl(Mechanism::Login),
        ),
    ];
    for (input, challenges, mechanism) in cases {
        let mut fe = tls();
        let (out, ev) = run(&mut fe, &input);
        assert_eq!(out, challenges, "{:?}", String::from_utf8_lossy(&input));
        let l = login(ev);
        assert_eq!(
            (
                l.credentials.authcid.as_slice(),
                l.credentials.password.expose(),
                l.mechanism
            ),
            (&b"alice@pec.example"[..], &b"pw"[..], mechanism)
        );
    }
}

#[test]
fn auth_cancel_bad_base64_unknown_mechanism_and_list() {
    let mut fe = tls();
    let (out, _) = run(&mut fe, b"AUTH PLAIN\r\n*\r\n");
    assert_eq!(out, "+ \r\n-ERR Authentication cancelled\r\n");
    let (out, _) = run(&mut fe, b"AUTH LOGIN\r\n!!!\r\nNOOP\r\n");
    assert_eq!(
        out,
        "+ VXNlcm5hbWU6\r\n-ERR Invalid authentication exchange: syntax error\r\n+OK\r\n"
    );
    let (out, _) = run(&mut fe, b"AUTH PLAIN AGFsaWNl\r\n");
    assert_eq!(out, "-ERR Authentication failed: malformed PLAIN message\r\n");
    let (out, _) = run(&mut fe, b"AUTH CRAM-MD5\r\n");
    assert_eq!(out, "-ERR Unsupported authentication mechanism\r\n");
    let (out, _) = run(&mut fe, b"AUTH\r\n");
    assert_eq!(out, "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n");
}

/// A bad byte in an AUTH response line is answered when the line ends, in
/// one reply: the rest of the line is never read as a command.
#[test]
fn a_bad_auth_line_is_answered_once_when_it_ends() {
    let mut fe = tls();
    assert_eq!(run(&mut fe, b"AUTH PLAIN\r\n").0, "+ \r\n");
    assert_eq!(run(&mut fe, b"AGFs!!!").0, "", "not before the line ends");
    let (out, ev) = run(&mut fe, b" CAPA\r\nNOOP\r\n");
    assert_eq!(
        out,
        "-ERR Invalid authentication exchange: syntax error\r\n+OK\r\n"
    );
    assert!(ev.is_none());

    assert_eq!(run(&mut fe, b"AUTH LOGIN\r\n").0, "+ VXNlcm5hbWU6\r\n");
    assert_eq!(run(&mut fe, b"AG\0").0, "");
    assert_eq!(
        run(&mut fe, b"Fs\r\nNOOP\r\n").0,
        "-ERR Invalid authentication exchange: NUL in command line\r\n+OK\r\n"
    );

    // A bad line that outgrows the limit is dropped, not kept, and still
    // answered once.
    assert_eq!(run(&mut fe, b"AUTH PLAIN\r\n").0, "+ \r\n");
    let long = [&b"!!!"[..], &[b'x'; MAX_AUTH_LINE_BYTES]].concat();
    assert_eq!(run(&mut fe, &long).0, "");
    assert!(fe.buf.is_empty());
    assert_eq!(
        run(&mut fe, b"x\r\nNOOP\r\n").0,
        "-ERR Command line too long\r\n+OK\r\n"
    );
}

#[test]
fn no_password_before_tls_on_a_plain_port() {
    let mut fe = stls_port();
    let refusal = "-ERR [AUTH] Plaintext authentication is disabled: use STLS or the POP3S port\r\n";
    for cmd in [
        &b"USER alice@pec.example\r\n"[..],
        b"PASS pw\r\n",
        b"AUTH PLAIN\r\n",
        b"AUTH\r\n",
    ] {
        let (out, ev) = run(&mut fe, cmd);
        assert_eq!(
            (out.as_str(), ev.is_none()),
            (refusal, true),
            "{:?}",
            String::from_utf8_lossy(cmd)
        );
    }
}

#[test]
fn stls_discards_pipelined_bytes_and_forgets_the_user() {
    let mut fe = Pop3Frontend::new(
        FrontendOptions {
            starttls: true,
            allow_plaintext_login: true,
            ..FrontendOptions::default()
        },
        false,
    );
    let (out, ev) = run(&mut fe, b"USER alice@pec.example\r\nSTLS\r\nPASS injected\r\n");
    assert_eq!(out, "+OK\r\n+OK Begin TLS negotiation now\r\n");
    assert!(matches!(ev, Some(Event::StartTls(_))));
    fe.tls_established();
    assert!(fe.next_event().is_none(), "the pipelined PASS was dropped");
    let (out, _) = run(&mut fe, b"PASS x\r\nSTLS\r\nCAPA\r\n");
    assert_eq!(
        out,
        "-ERR Send USER first\r\n-ERR TLS is already active\r\n+OK Capability list follows\r\nUSER\r\nSASL PLAIN LOGIN\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n.\r\n"
    );
    let (out, _) = run(&mut tls(), b"STLS\r\n");
    assert_eq!(out, "-ERR TLS is already active\r\n");
    let (out, _) = run(
        &mut Pop3Frontend::new(FrontendOptions::default(), false),
        b"STLS\r\n",
    );
    assert_eq!(out, "-ERR STLS is not offered here\r\n");
}

#[test]
fn bad_input_gets_err_and_the_session_goes_on() {
    let mut fe = tolerant();
    let (out, ev) = run(
        &mut fe,
        b"XYZZY\r\nRETR 1\r\nAPOP alice 0123\r\nUSER a\0b\r\nCAPA\nNOOP\r\nUSER\r\n\r\nNOOP\r\n",
    );
    assert_eq!(
        out,
        "-ERR Unknown command\r\n\
         -ERR Command RETR is not permitted before login\r\n\
         -ERR APOP is not supported: use USER/PASS or AUTH PLAIN over TLS\r\n\
         -ERR Invalid command: NUL in command line\r\n\
         -ERR Invalid command: line must end with CRLF\r\n\
         +OK\r\n\
         -ERR Invalid command: syntax error\r\n\
         -ERR Invalid command: syntax error\r\n\
         +OK\r\n"
    );
    assert!(ev.is_none());
}

#[test]
fn over_long_lines_are_refused_without_buffering_them() {
    let mut fe = tls();
    // Arrives in pieces, never with an end in the first 255 bytes.
    let (out, _) = run(&mut fe, &[b'A'; 200]);
    assert_eq!(out, "");
    let (out, _) = run(&mut fe, &[b'A'; 200]);
    assert_eq!(out, "");
    assert!(fe.buf.is_empty(), "the over-long line is dropped, not kept");
    for _ in 0..100 {
        run(&mut fe, &[b'B'; 4096]);
        assert!(fe.buf.is_empty());
    }
    let (out, _) = run(&mut fe, b"BBB\r\nNOOP\r\n");
    assert_eq!(out, "-ERR Command line too long\r\n+OK\r\n");

    // A complete line over the limit in one read: refused before it acts.
    let long_user = format!("USER {}\r\nPASS x\r\n", "u".repeat(300));
    let (out, ev) = run(&mut fe, long_user.as_bytes());
    assert_eq!(out, "-ERR Command line too long\r\n-ERR Send USER first\r\n");
    assert!(ev.is_none());

    // 255 octets with CRLF is fine (RFC 2449 §4).
    let at_limit = format!("USER {}\r\n", "u".repeat(255 - 7));
    assert_eq!(at_limit.len(), 255);
    let (out, _) = run(&mut fe, at_limit.as_bytes());
    assert_eq!(out, "+OK\r\n");
}

#[test]
fn over_long_auth_lines_end_the_exchange() {
    let mut fe = tls();
    let (out, _) = run(&mut fe, b"AUTH PLAIN\r\n");
    assert_eq!(out, "+ \r\n");
    let (out, _) = run(&mut fe, &vec![b'A'; MAX_AUTH_LINE_BYTES + 10]);
    assert_eq!(out, "");
    let (out, ev) = run(&mut fe, b"AAAA\r\nNOOP\r\n");
    assert_eq!(out, "-ERR Command line too long\r\n+OK\r\n");
    assert!(ev.is_none());
}

#[test]
fn too_many_failures_close_after_the_reply() {
    let mut fe = tls();
    for i in 1..=3 {
        let (_, ev) = run(&mut fe, b"USER a@pec.example\r\nPASS x\r\n");
        login(ev);
        let (reply, close) = fe.refused_with("-ERR [AUTH] Authentication failed", true);
        assert_eq!(reply, b"-ERR [AUTH] Authentication failed\r\n");
        assert_eq!(close, i == 3, "attempt {i}");
    }
    assert!(matches!(fe.next_event(), Some(Event::Close)));

    // Refusals that are not the client's fault do not count.
    let mut fe = tls();
    for _ in 0..5 {
        let (_, ev) = run(&mut fe, b"USER a@pec.example\r\nPASS x\r\n");
        login(ev);
        let (_, close) = fe.refused_with("-ERR [SYS/TEMP] later", false);
        assert!(!close);
    }
}

#[test]
fn quit_and_noop() {
    let mut fe = tls();
    let (out, ev) = run(&mut fe, b"NOOP\r\nQUIT\r\nNOOP\r\n");
    assert_eq!(out, "+OK\r\n+OK Logging out\r\n");
    assert!(matches!(ev, Some(Event::Close)));
}

#[test]
fn bad_input_known_answers() {
    use BadInput::*;
    let long_line = format!("USER {}\r\n", "u".repeat(300));
    let long_auth = [&b"AUTH PLAIN\r\n"[..], &[b'A'; MAX_AUTH_LINE_BYTES + 10], b"\r\n"].concat();
    let table: &[(bool, &[u8], &[BadInput])] = &[
        // (TLS, input, kinds)
        (true, b"CAPA\r\nNOOP\r\nAUTH\r\nUSER a@b\r\nQUIT\r\n", &[]),
        (true, b"XYZZY\r\n", &[UnknownCommand]),
        // Refused for what they are, not counted.
        (true, b"RETR 1\r\n", &[]),
        (true, b"PASS x\r\n", &[]),
        (true, b"AUTH CRAM-MD5\r\n", &[]),
        (true, b"AUTH PLAIN\r\n*\r\n", &[]),
        (true, b"STLS\r\n", &[]),
        (true, b"APOP alice 0123\r\n", &[Apop]),
        (true, b"USER a\0b\r\n", &[Syntax]),
        (true, b"CAPA\n", &[Syntax]),
        (true, b"\r\n", &[Syntax]),
        (true, long_line.as_bytes(), &[LineTooLong]),
        (true, &[b'A'; 600], &[]),
        (true, &[&[b'A'; 600][..], b"\r\n"].concat(), &[LineTooLong]),
        // Whole in one read, an over-long AUTH line is judged as SASL data.
        (true, &long_auth, &[BadBase64]),
        (false, b"USER alice@pec.example\r\n", &[LoginBeforeTls]),
        (false, b"AUTH\r\n", &[LoginBeforeTls]),
        (true, b"AUTH LOGIN\r\n!!!\r\n", &[BadBase64]),
        // Decodes, but is no PLAIN message.
        (true, b"AUTH PLAIN AGFsaWNl\r\n", &[BadBase64]),
        (true, b"XYZZY\r\nNOOP\r\nUSER\r\n", &[UnknownCommand, Syntax]),
    ];
    for (tls, input, expected) in table {
        let mut fe = if *tls { tolerant() } else { stls_port() };
        let got = kinds(&events(&mut fe, input));
        assert_eq!(got, *expected, "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn an_auth_line_outgrowing_its_limit_is_too_long() {
    let mut fe = tls();
    assert!(kinds(&events(&mut fe, b"AUTH PLAIN\r\n")).is_empty());
    assert!(kinds(&events(&mut fe, &[b'A'; MAX_AUTH_LINE_BYTES + 10])).is_empty());
    assert_eq!(kinds(&events(&mut fe, b"AAAA\r\n")), [BadInput::LineTooLong]);
}

#[test]
fn bad_input_follows_its_reply() {
    let mut fe = tls();
    let evs = events(&mut fe, b"APOP a b\r\nNOOP\r\n");
    assert!(
        matches!(
            evs.as_slice(),
            [Event::Reply(_), Event::BadInput(BadInput::Apop), Event::Reply(_)]
        ),
        "{evs:?}"
    );
}

#[test]
fn the_nth_refusal_closes_with_too_many_errors() {
    let opts = FrontendOptions::default();
    let max = opts.max_prelogin_errors as usize;
    let mut fe = Pop3Frontend::new(opts, true);
    let before = events(&mut fe, &b"XYZZY\r\n".repeat(max - 1));
    assert_eq!(kinds(&before), vec![BadInput::UnknownCommand; max - 1]);
    assert!(!before.iter().any(|ev| matches!(ev, Event::Close)));

    let last = events(&mut fe, b"\r\nUSER a@b\r\n");
    assert_cut_off(&last, BadInput::Syntax, reply::TOO_MANY_ERRORS);
    assert!(!fe.wants_input());
    assert!(matches!(events(&mut fe, b"NOOP\r\n").as_slice(), [Event::Close]));
}

/// Lines sent one byte per read, commands and an AUTH exchange: each is
/// parsed once, when it ends, and what the front-end holds stays within
/// its bound however the bytes come.
#[test]
fn lines_sent_one_byte_per_read_are_parsed_once() {
    let mut fe = tolerant();
    let response = "QUJD".repeat(500);
    let stream = format!("CAPA\r\nUSER alice@pec.example\r\nAUTH PLAIN\r\n{response}\r\n");
    for &b in stream.as_bytes() {
        fe.receive(&[b]);
        while fe.next_event().is_some() {}
        assert!(fe.buffered() <= fe.max_buffered());
    }
    assert_eq!(fe.parsed(), stream.len() as u64);
}
