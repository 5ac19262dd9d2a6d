//! SMTP: the command parsers and the pre-login front-end.

use pec_proxy::testing::frontend::Event;
use pec_proxy::testing::smtp::frontend::{FrontendOptions, SmtpFrontend};
use pec_proxy::testing::smtp::parse::{self, Command, Decode, Param, ReversePath};
use pec_proxy::testing::smtp::reply;

use super::{BadInputs, check_credentials, check_reply, refusal, stays_closed};

pub(crate) const HOSTNAME: &str = "proxy.example";

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

/// `c "." 1*3DIGIT "." 1*3DIGIT SP`: an RFC 3463 enhanced status code of
/// class `class` at the start of `text`.
fn starts_with_enhanced_code(text: &[u8], class: u8) -> bool {
    let Some(rest) = text.strip_prefix(&[class, b'.'][..]) else {
        return false;
    };
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let n = digits(rest);
    if !(1..=3).contains(&n) || rest.get(n) != Some(&b'.') {
        return false;
    }
    let rest = &rest[n + 1..];
    let m = digits(rest);
    (1..=3).contains(&m) && matches!(rest.get(m), Some(b' ') | Some(b'\r'))
}

/// The replies in `bytes`, each checked: CRLF-terminated printable lines,
/// `code "-" text` on every line but the last, `code SP text` on the last,
/// one code throughout (RFC 5321 §4.2.1). With `enhanced`, the text starts
/// with an RFC 3463 enhanced status code of the reply's class, except in
/// the replies that have none: 3xx, and the EHLO/HELO replies, which start
/// with our host name. Returns the replies.
pub(crate) fn check_smtp_replies(bytes: &[u8], enhanced: bool) -> Vec<&[u8]> {
    if bytes.is_empty() {
        return Vec::new();
    }
    check_reply(bytes);
    let mut replies = Vec::new();
    let mut start = 0;
    let mut at = 0;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        at += line.len();
        let text = String::from_utf8_lossy(line);
        assert!(line.len() >= 6, "short reply line {text:?}");
        assert!(
            matches!(line[0], b'2'..=b'5') && line[1].is_ascii_digit() && line[2].is_ascii_digit(),
            "bad code in {text:?}"
        );
        assert!(
            line[..3] == bytes[start..start + 3],
            "code changed within a reply: {text:?}"
        );
        match line[3] {
            b'-' => continue,
            b' ' => {}
            _ => panic!("bad separator in {text:?}"),
        }
        let reply = &bytes[start..at];
        let first_text = &reply[4..];
        let ours_without_code =
            reply[0] == b'3' || first_text.starts_with(format!("{HOSTNAME}\r\n").as_bytes());
        if enhanced && !ours_without_code {
            for l in reply.split_inclusive(|&b| b == b'\n') {
                assert!(
                    starts_with_enhanced_code(&l[4..], l[0]),
                    "no enhanced status code of class {} in {:?}",
                    l[0] as char,
                    String::from_utf8_lossy(l)
                );
            }
        }
        replies.push(reply);
        start = at;
    }
    assert_eq!(start, bytes.len(), "a reply without its last line");
    replies
}

fn encode_params(out: &mut Vec<u8>, params: &[Param<'_>]) {
    for p in params {
        out.push(b' ');
        out.extend_from_slice(p.keyword);
        if let Some(v) = p.value {
            out.push(b'=');
            out.extend_from_slice(v);
        }
    }
}

/// A command written back the way a client would send it.
fn encode(command: &Command<'_>) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    let word = |out: &mut Vec<u8>, w: &[u8]| out.extend_from_slice(w);
    match command {
        Command::Ehlo(name) => {
            word(&mut out, b"EHLO ");
            word(&mut out, name);
        }
        Command::Helo(name) => {
            word(&mut out, b"HELO ");
            word(&mut out, name);
        }
        Command::Mail { from, params } => {
            word(&mut out, b"MAIL FROM:<");
            if let ReversePath::Mailbox(a) = from {
                word(&mut out, a);
            }
            word(&mut out, b">");
            encode_params(&mut out, params);
        }
        Command::Rcpt { to, params } => {
            word(&mut out, b"RCPT TO:<");
            word(&mut out, to);
            word(&mut out, b">");
            encode_params(&mut out, params);
        }
        Command::Data => word(&mut out, b"DATA"),
        Command::Rset => word(&mut out, b"RSET"),
        Command::Noop => word(&mut out, b"NOOP"),
        Command::Quit => word(&mut out, b"QUIT"),
        Command::StartTls => word(&mut out, b"STARTTLS"),
        Command::Auth {
            mechanism,
            initial_response,
        } => {
            word(&mut out, b"AUTH ");
            word(&mut out, mechanism);
            if let Some(ir) = initial_response {
                word(&mut out, b" ");
                word(&mut out, ir);
            }
        }
        Command::Vrfy => word(&mut out, b"VRFY x"),
        Command::Expn => word(&mut out, b"EXPN x"),
        Command::Help => word(&mut out, b"HELP"),
        Command::Bdat => word(&mut out, b"BDAT 1 LAST"),
        Command::Other { name } => word(&mut out, name),
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// An address as parsed: no control character, no line end, an `@`
/// (RFC 5321 §4.1.2; 8-bit and quoted spaces allowed).
fn check_address(a: &[u8]) {
    assert!(!a.is_empty());
    assert!(
        !a.iter().any(|&b| b < 0x20 || b == 0x7f),
        "{:?}",
        String::from_utf8_lossy(a)
    );
}

fn check_params(params: &[Param<'_>]) {
    for p in params {
        assert!(p.keyword.first().is_some_and(u8::is_ascii_alphanumeric));
        assert!(p.keyword.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-'));
        assert!(
            p.value
                .is_none_or(|v| !v.is_empty() && !v.iter().any(|&b| b <= b' ' || b == b'=' || b == 0x7f))
        );
    }
    match parse::declared_size(params) {
        Ok(Some(n)) => {
            let v = params
                .iter()
                .find(|p| p.keyword.eq_ignore_ascii_case(b"SIZE"))
                .and_then(|p| p.value)
                .unwrap();
            assert!(v.len() <= 20 && v.iter().all(u8::is_ascii_digit));
            let exact = std::str::from_utf8(v).unwrap().parse::<u64>().unwrap_or(u64::MAX);
            assert_eq!(n, exact);
        }
        Ok(None) => assert!(!params.iter().any(|p| p.keyword.eq_ignore_ascii_case(b"SIZE"))),
        Err(_) => {}
    }
}

/// The SMTP parsers: `decode_command`, `decode_auth_line`, `verb_of`,
/// `declared_size`. A decoded (or refused) command is exactly the first
/// line, up to its LF; a decoded one ends in CRLF, holds no NUL, decodes
/// the same from exactly its bytes and not from any prefix; its fields
/// hold only what their rules allow; written back, it decodes to the same
/// command; the reply to a refused line is well-formed.
pub fn smtp_parse(data: &[u8]) {
    let line_end = data.iter().position(|&b| b == b'\n').map(|i| i + 1);
    match parse::decode_command(data) {
        Decode::Done { consumed, value } => {
            assert_eq!(Some(consumed), line_end);
            let line = &data[..consumed];
            assert!(line.ends_with(b"\r\n") && !line.contains(&0));
            assert_eq!(
                parse::decode_command(line),
                Decode::Done {
                    consumed,
                    value: value.clone()
                }
            );
            if consumed <= 256 {
                for end in 0..consumed {
                    assert_eq!(parse::decode_command(&data[..end]), Decode::Incomplete);
                }
            }
            match &value {
                Command::Ehlo(name) | Command::Helo(name) => {
                    assert!(!name.is_empty() && name.iter().all(u8::is_ascii_graphic));
                }
                Command::Mail { from, params } => {
                    if let ReversePath::Mailbox(a) = from {
                        check_address(a);
                        assert!(a.contains(&b'@'));
                    }
                    check_params(params);
                }
                Command::Rcpt { to, params } => {
                    check_address(to);
                    assert!(to.contains(&b'@') || to.eq_ignore_ascii_case(b"Postmaster"));
                    check_params(params);
                }
                Command::Auth {
                    mechanism,
                    initial_response,
                } => {
                    assert!(!mechanism.is_empty() && mechanism.len() <= 20);
                    assert!(
                        initial_response.is_none_or(|r| !r.is_empty() && r.iter().all(|&b| is_base64(b)))
                    );
                }
                Command::Other { name } => {
                    assert!(!name.is_empty() && name.iter().all(u8::is_ascii_alphabetic));
                }
                _ => {}
            }
            let verb = parse::verb_of(line).expect("a command without a verb");
            match &value {
                Command::Other { name } => assert_eq!(verb, name.to_ascii_uppercase()),
                known => assert_eq!(verb, known.name().as_bytes()),
            }
            let written = encode(&value);
            match parse::decode_command(&written) {
                Decode::Done {
                    consumed,
                    value: again,
                } => {
                    assert_eq!(consumed, written.len());
                    assert_eq!(again, value);
                }
                other => panic!("{value:?} written back gave {other:?}"),
            }
        }
        Decode::Failed { consumed, invalid } => {
            assert_eq!(Some(consumed), line_end);
            check_smtp_replies(&reply::invalid_command(invalid), true);
        }
        Decode::Incomplete => assert_eq!(line_end, None),
    }
    match parse::decode_auth_line(data) {
        Decode::Done { consumed, value } => {
            assert_eq!(Some(consumed), line_end);
            assert_eq!(&data[..consumed], [value, b"\r\n"].concat().as_slice());
            assert!(value == b"*" || value.iter().all(|&b| is_base64(b)));
        }
        Decode::Failed { consumed, .. } => assert_eq!(Some(consumed), line_end),
        Decode::Incomplete => assert_eq!(line_end, None),
    }
    if let Some(verb) = parse::verb_of(data) {
        assert!(!verb.is_empty() && verb.iter().all(u8::is_ascii_uppercase));
        assert!(data[..verb.len()].eq_ignore_ascii_case(&verb));
    }
}

/// The SMTP pre-login state machine fed arbitrary bytes in arbitrary
/// chunks. The first byte picks the listener kind (STARTTLS or implicit
/// TLS), whether AUTH in clear is allowed, the line limits and how logins
/// end; the rest is the client's stream. Invariants: no panic; every reply
/// is a well-formed SMTP reply with an enhanced status code where ours
/// have one; STARTTLS only where offered, forgetting the EHLO and every
/// byte after it; a login only over TLS unless allowed, after EHLO, with
/// credentials within `MAX_FIELD_BYTES`, and nothing read while it runs;
/// the buffer within its documented bound after each chunk, and each line
/// parsed once; the bytes handed over
/// after a successful login a suffix of the stream; bad input cut off at
/// `max_prelogin_errors`; closed stays closed.
pub fn smtp_frontend(data: &[u8]) {
    let Some((&flags, stream)) = data.split_first() else {
        return;
    };
    let small = flags & 0x20 != 0;
    let opts = FrontendOptions {
        starttls: flags & 1 != 0,
        allow_plaintext_login: flags & 2 != 0,
        hostname: HOSTNAME.into(),
        max_message_bytes: 1000,
        max_command_line_bytes: if small { 32 } else { 512 },
        max_auth_line_bytes: if small { 64 } else { 1024 },
        max_login_failures: 3,
        max_prelogin_errors: if flags & 0xc0 == 0xc0 { 2 } else { 50 },
    };
    let bound = (opts.max_command_line_bytes + 500).max(opts.max_auth_line_bytes);
    let mut bad = BadInputs::new(opts.max_prelogin_errors);
    let mut frontend = SmtpFrontend::new(opts.clone(), flags & 4 != 0);
    let greeting = frontend.greeting();
    check_smtp_replies(&greeting, false);
    assert!(greeting.starts_with(format!("220 {HOSTNAME} ").as_bytes()));
    let mut logins = 0u32;
    let mut at = 0;
    let mut chunk = 0usize;
    while at < stream.len() {
        chunk += 1;
        let len = 1 + (chunk * 31 + usize::from(flags >> 6)) % 97;
        let end = (at + len).min(stream.len());
        frontend.receive(&stream[at..end]);
        at = end;
        while let Some(event) = frontend.next_event() {
            match event {
                Event::Reply(bytes) => {
                    check_smtp_replies(&bytes, true);
                }
                Event::BadInput(kind) => bad.saw(kind),
                Event::StartTls(bytes) => {
                    bad.goes_on();
                    check_smtp_replies(&bytes, true);
                    assert!(bytes.starts_with(b"220 "));
                    assert!(
                        opts.starttls && !frontend.is_tls(),
                        "STARTTLS where it is not offered"
                    );
                    assert_eq!(frontend.buffered(), 0, "bytes after STARTTLS are discarded");
                    assert!(frontend.client_greeting().is_none(), "EHLO not forgotten");
                    frontend.tls_established();
                }
                Event::Login(attempt) => {
                    bad.goes_on();
                    assert!(
                        frontend.is_tls() || opts.allow_plaintext_login,
                        "AUTH accepted in clear"
                    );
                    assert!(
                        frontend.client_greeting().is_some_and(|g| g.esmtp),
                        "AUTH before EHLO"
                    );
                    check_credentials(&attempt.credentials);
                    assert!(!frontend.wants_input());
                    assert!(frontend.next_event().is_none());
                    logins += 1;
                    if flags & 0x10 != 0 && logins == 2 {
                        let (greeting, pipelined) = frontend.into_logged_in();
                        assert!(greeting.esmtp);
                        assert!(stream[..at].ends_with(&pipelined));
                        return;
                    }
                    let refusal = refusal(flags & 8 != 0, logins);
                    let (reply, close) = frontend.login_refused(&attempt, &refusal);
                    check_smtp_replies(&reply, true);
                    assert!(!close || refusal.counts_as_failure());
                    if close {
                        assert!(matches!(frontend.next_event(), Some(Event::Close)));
                        return;
                    }
                }
                Event::Close => {
                    stays_closed(&mut frontend, b"NOOP\r\n");
                    return;
                }
            }
        }
        assert!(frontend.wants_input());
        assert!(
            frontend.buffered() <= bound,
            "{} bytes buffered",
            frontend.buffered()
        );
        assert_eq!(bound, frontend.max_buffered(), "the documented bound");
        assert!(
            frontend.parsed() <= at as u64,
            "{} bytes parsed of {at} received: a line parsed more than once",
            frontend.parsed()
        );
    }
}
