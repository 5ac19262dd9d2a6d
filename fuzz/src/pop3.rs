//! POP3: the pre-login parsers, the pre-login front-end and the
//! keep-on-server DELE guard.

use pec_proxy::testing::frontend::Event;
use pec_proxy::testing::pop3::frontend::{
    FrontendOptions, LoginMechanism, MAX_AUTH_LINE_BYTES, Pop3Frontend,
};
use pec_proxy::testing::pop3::guard::{DELE_REFUSAL, DeleGuard, Segment};
use pec_proxy::testing::pop3::parse::{self, Command, Decode};

use super::{BadInputs, check_credentials, check_reply, refusal, segments, stays_closed};

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

/// A command written back the way a client would send it.
fn encode(command: &Command<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    match command {
        Command::Capa => out.extend_from_slice(b"CAPA"),
        Command::Stls => out.extend_from_slice(b"STLS"),
        Command::Quit => out.extend_from_slice(b"QUIT"),
        Command::Noop => out.extend_from_slice(b"NOOP"),
        Command::User(name) => {
            out.extend_from_slice(b"USER ");
            out.extend_from_slice(name);
        }
        Command::Pass(pass) => {
            out.extend_from_slice(b"PASS ");
            out.extend_from_slice(pass);
        }
        Command::Auth {
            mechanism,
            initial_response,
        } => {
            out.extend_from_slice(b"AUTH");
            for part in [mechanism, initial_response].into_iter().flatten() {
                out.push(b' ');
                out.extend_from_slice(part);
            }
        }
        Command::Apop => out.extend_from_slice(b"APOP x y"),
        Command::Other { keyword } => out.extend_from_slice(keyword),
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The POP3 pre-login parsers: `decode_command` and `decode_auth_line`. A
/// decoded command consumed a whole CRLF line of the input, decodes the
/// same from exactly those bytes, no shorter prefix of it decodes as
/// anything but `Incomplete`, its fields hold only what their rules allow,
/// and written back it decodes to the same command (decode, encode,
/// decode).
pub fn pop3_parse(data: &[u8]) {
    match parse::decode_command(data) {
        Decode::Done { consumed, value } => {
            assert!(consumed > 0 && consumed <= data.len());
            let line = &data[..consumed];
            assert!(line.ends_with(b"\r\n"));
            assert!(!line[..consumed - 2].contains(&b'\n') && !line.contains(&0));
            assert_eq!(
                parse::decode_command(line),
                Decode::Done {
                    consumed,
                    value: value.clone()
                }
            );
            if consumed <= 256 {
                for end in 0..consumed {
                    assert_eq!(
                        parse::decode_command(&data[..end]),
                        Decode::Incomplete,
                        "prefix of {end} bytes"
                    );
                }
            }
            match &value {
                Command::User(name) => {
                    assert!(!name.is_empty() && name.iter().all(|&b| b.is_ascii_graphic() || b >= 0x80));
                }
                Command::Pass(pass) => {
                    assert!(!pass.is_empty() && !pass.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)));
                }
                Command::Auth {
                    mechanism,
                    initial_response,
                } => {
                    assert!(mechanism.is_some() || initial_response.is_none());
                    assert!(mechanism.is_none_or(|m| !m.is_empty() && m.len() <= 20));
                    assert!(
                        initial_response.is_none_or(|r| !r.is_empty() && r.iter().all(|&b| is_base64(b)))
                    );
                }
                Command::Other { keyword } => {
                    assert!(!keyword.is_empty() && keyword.iter().all(u8::is_ascii_alphanumeric));
                }
                Command::Capa | Command::Stls | Command::Quit | Command::Noop | Command::Apop => {}
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
        Decode::Incomplete => {
            // Nothing can be wrong before the line ends, except a NUL.
            assert!(!data.contains(&b'\n'), "a whole line is never incomplete");
        }
        Decode::Failed(why) => assert!(!why.is_empty()),
    }
    match parse::decode_auth_line(data) {
        Decode::Done { consumed, value } => {
            assert_eq!(consumed, value.len() + 2);
            assert!(data[..consumed].ends_with(b"\r\n"));
            assert!(value == b"*" || value.iter().all(|&b| is_base64(b)));
            for end in 0..consumed {
                assert_eq!(parse::decode_auth_line(&data[..end]), Decode::Incomplete);
            }
        }
        Decode::Incomplete => assert!(!data.contains(&b'\n')),
        Decode::Failed(_) => {}
    }
}

/// A POP3 reply: CRLF-terminated printable lines; `+OK`, `-ERR` or a
/// `+ ` continuation; only `+OK` has more lines, the last of them a lone
/// `.`.
fn check_pop3_reply(reply: &[u8]) {
    check_reply(reply);
    let lines: Vec<&[u8]> = reply.split_inclusive(|&b| b == b'\n').collect();
    let first = lines[0];
    assert!(
        first == b"+OK\r\n"
            || first.starts_with(b"+OK ")
            || first.starts_with(b"-ERR ")
            || first.starts_with(b"+ "),
        "{:?}",
        String::from_utf8_lossy(reply)
    );
    if lines.len() > 1 {
        assert!(first.starts_with(b"+OK"));
        assert_eq!(*lines.last().unwrap(), b".\r\n");
        assert!(lines[1..lines.len() - 1].iter().all(|l| !l.starts_with(b".")));
    }
}

/// The POP3 pre-login state machine fed arbitrary bytes in arbitrary
/// chunks. The first byte picks the listener kind (STLS or implicit TLS),
/// whether logins in clear are allowed, the line limit and how logins end;
/// the rest is the client's stream. Invariants: no panic; every reply is a
/// well-formed `+OK`/`-ERR`/`+ ` reply; STLS only where offered, with
/// nothing left buffered; a login only over TLS unless allowed, with
/// credentials within `MAX_FIELD_BYTES`, and nothing read while it runs;
/// the buffer within its documented bound after each chunk, and each line
/// parsed once; the bytes handed over
/// after a successful login a suffix of the stream; bad input cut off at
/// `max_prelogin_errors`; a closed front-end stays closed.
pub fn pop3_frontend(data: &[u8]) {
    let Some((&flags, stream)) = data.split_first() else {
        return;
    };
    let opts = FrontendOptions {
        starttls: flags & 1 != 0,
        allow_plaintext_login: flags & 2 != 0,
        max_line_bytes: if flags & 0x20 != 0 { 32 } else { 255 },
        max_login_failures: 3,
        max_prelogin_errors: if flags & 0xc0 == 0xc0 { 2 } else { 50 },
        greeting: "fuzz".into(),
    };
    let bound = opts.max_line_bytes.max(MAX_AUTH_LINE_BYTES);
    let mut bad = BadInputs::new(opts.max_prelogin_errors);
    let mut frontend = Pop3Frontend::new(opts.clone(), flags & 4 != 0);
    check_pop3_reply(&frontend.greeting());
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
                Event::Reply(bytes) => check_pop3_reply(&bytes),
                Event::BadInput(kind) => bad.saw(kind),
                Event::StartTls(bytes) => {
                    bad.goes_on();
                    check_pop3_reply(&bytes);
                    assert!(bytes.starts_with(b"+OK"));
                    assert!(
                        opts.starttls && !frontend.is_tls(),
                        "STLS where it is not offered"
                    );
                    assert_eq!(frontend.buffered(), 0, "bytes after STLS are discarded");
                    frontend.tls_established();
                }
                Event::Login(attempt) => {
                    bad.goes_on();
                    assert!(
                        frontend.is_tls() || opts.allow_plaintext_login,
                        "login accepted in clear"
                    );
                    let c = &attempt.credentials;
                    check_credentials(c);
                    // SASL names may hold CR or LF (RFC 4616: 1*SAFE); the
                    // upstream login refuses or base64-encodes them.
                    assert!(!c.authcid.contains(&0));
                    if attempt.mechanism == LoginMechanism::UserPass {
                        assert!(c.authzid.is_none());
                        assert!(c.authcid.iter().all(|&b| b.is_ascii_graphic() || b >= 0x80));
                        assert!(c.password.len() < opts.max_line_bytes);
                        assert!(
                            !c.password
                                .expose()
                                .iter()
                                .any(|&b| matches!(b, b'\r' | b'\n' | 0))
                        );
                    }
                    // Nothing is read while the login runs.
                    assert!(!frontend.wants_input());
                    assert!(frontend.next_event().is_none());
                    logins += 1;
                    if flags & 0x10 != 0 && logins == 2 {
                        // Logged in: what follows goes upstream untouched.
                        let pipelined = frontend.into_pipelined();
                        assert!(stream[..at].ends_with(&pipelined));
                        return;
                    }
                    let refusal = refusal(flags & 8 != 0, logins);
                    let (reply, close) = frontend.login_refused(&attempt, &refusal);
                    check_pop3_reply(&reply);
                    assert!(!close || refusal.counts_as_failure());
                    if close {
                        assert!(matches!(frontend.next_event(), Some(Event::Close)));
                        return;
                    }
                }
                Event::Close => {
                    stays_closed(&mut frontend, b"CAPA\r\n");
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

/// The command keyword of a line as a server reads it: the visible
/// characters before the first space, tab, other control or 8-bit byte
/// (RFC 2449 §3: `keyword = 3*4VCHAR`). A server that splits at any white
/// space, or a C server that stops at a NUL, reads no more than this.
fn keyword(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .position(|b| !b.is_ascii_graphic())
        .unwrap_or(line.len());
    &line[..end]
}

const TOO_LONG: &[u8] = b"-ERR Command line too long\r\n";

/// What went where in one run of the guard.
#[derive(Debug, PartialEq, Eq)]
struct GuardRun {
    /// Client bytes the guard read (the rest waited: too much owed).
    read: Vec<u8>,
    to_upstream: Vec<u8>,
    to_client: Vec<u8>,
    /// The upstream's bytes as passed to the client, without ours.
    passed: Vec<u8>,
    /// Our replies, in the order they went out.
    ours: Vec<&'static [u8]>,
    refused: u64,
}

/// Runs the guard over the client and upstream pieces in order; with
/// `bytewise`, every piece is fed one byte at a time. Client bytes wait
/// while the guard does not want them, as the relay does. Checks the
/// invariants that hold at every step.
fn run_dele_guard(max_line_bytes: usize, pieces: &[&[u8]], bytewise: bool) -> GuardRun {
    let mut guard = DeleGuard::new(max_line_bytes);
    let mut run = GuardRun {
        read: Vec::new(),
        to_upstream: Vec::new(),
        to_client: Vec::new(),
        passed: Vec::new(),
        ours: Vec::new(),
        refused: 0,
    };
    // Client bytes not read yet (the relay's socket buffer), from the
    // offset on.
    let mut waiting: (Vec<u8>, usize) = (Vec::new(), 0);
    let feed_client = |guard: &mut DeleGuard, waiting: &mut (Vec<u8>, usize), run: &mut GuardRun| {
        while guard.wants_client_input() && waiting.1 < waiting.0.len() {
            let from = waiting.1;
            let end = if bytewise { from + 1 } else { waiting.0.len() };
            waiting.1 = end;
            let chunk = &waiting.0[from..end];
            run.read.extend_from_slice(chunk);
            let out = guard.check_client(chunk);
            run.to_upstream.extend_from_slice(&out.to_upstream);
            if !out.to_client.is_empty() {
                assert!(
                    run.passed.is_empty() || run.passed.ends_with(b"\n"),
                    "a reply of ours inside an upstream line"
                );
            }
            for reply in out.to_client.split_inclusive(|&b| b == b'\n') {
                assert!(reply == DELE_REFUSAL || reply == TOO_LONG);
                run.ours.push(if reply == DELE_REFUSAL {
                    DELE_REFUSAL
                } else {
                    TOO_LONG
                });
            }
            run.to_client.extend_from_slice(&out.to_client);
            assert!(guard.buffered() <= max_line_bytes);
        }
    };
    for (i, piece) in pieces.iter().enumerate() {
        if i % 2 == 0 {
            waiting.0.extend_from_slice(piece);
            feed_client(&mut guard, &mut waiting, &mut run);
            continue;
        }
        let steps: Vec<&[u8]> = if bytewise {
            piece.chunks(1).collect()
        } else {
            vec![piece]
        };
        for chunk in steps {
            let mut covered = 0;
            for segment in guard.scan_upstream(chunk) {
                match segment {
                    Segment::Upstream(range) => {
                        // The upstream's bytes, whole and in order.
                        assert_eq!(range.start, covered);
                        assert!(range.end > range.start);
                        covered = range.end;
                        run.passed.extend_from_slice(&chunk[range.clone()]);
                        run.to_client.extend_from_slice(&chunk[range]);
                    }
                    Segment::Local(reply) => {
                        assert!(reply == DELE_REFUSAL || reply == TOO_LONG);
                        assert!(
                            run.passed.is_empty() || run.passed.ends_with(b"\n"),
                            "a reply of ours inside an upstream line"
                        );
                        run.ours.push(reply);
                        run.to_client.extend_from_slice(reply);
                    }
                }
            }
            assert_eq!(covered, chunk.len(), "upstream bytes dropped");
            feed_client(&mut guard, &mut waiting, &mut run);
        }
    }
    run.refused = guard.refused();
    run
}

/// The keep-on-server guard between a client and an upstream, both sending
/// arbitrary bytes. The first byte picks the line limit; the rest is split
/// at 0xFF bytes into pieces that go alternately to the client side and to
/// the upstream side. Invariants: no panic; what goes upstream is whole
/// client lines, unchanged and in order, none longer than the limit and
/// none a `DELE` however spelt (any keyword a server could read as DELE);
/// every complete client line is forwarded or refused; the client gets
/// exactly the upstream's bytes with only the guard's own replies
/// inserted, in the order owed and never inside an upstream line; the
/// buffered line stays within the limit; and the result does not depend on
/// how the bytes were split into reads.
pub fn pop3_guard(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let max_line_bytes = if flags & 1 != 0 { 16 } else { 255 };
    let pieces = segments(rest);
    let run = run_dele_guard(max_line_bytes, &pieces, false);

    // Upstream: the client's lines that are not DELE and within the limit;
    // the others are refused, in order.
    let mut sent = run.to_upstream.split_inclusive(|&b| b == b'\n').peekable();
    let mut owed: Vec<&[u8]> = Vec::new();
    let mut complete = 0usize;
    for line in run.read.split_inclusive(|&b| b == b'\n') {
        if !line.ends_with(b"\n") {
            break;
        }
        complete += 1;
        if line.len() > max_line_bytes {
            owed.push(TOO_LONG);
        } else if sent.peek() == Some(&line) {
            sent.next();
        } else {
            assert!(
                keyword(line).eq_ignore_ascii_case(b"DELE"),
                "line {:?} neither forwarded nor a DELE",
                String::from_utf8_lossy(line)
            );
            owed.push(DELE_REFUSAL);
        }
    }
    assert_eq!(sent.next(), None, "forwarded bytes that are no client line");
    for line in run.to_upstream.split_inclusive(|&b| b == b'\n') {
        assert!(
            !keyword(line).eq_ignore_ascii_case(b"DELE"),
            "DELE forwarded: {:?}",
            String::from_utf8_lossy(line)
        );
    }
    let forwarded = run.to_upstream.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(complete, forwarded + owed.len());
    assert_eq!(
        run.refused as usize,
        owed.iter().filter(|r| **r == DELE_REFUSAL).count()
    );
    assert!(owed.starts_with(&run.ours), "our replies out of order");

    // Client: the upstream's bytes, all of them.
    let upstream: Vec<u8> = pieces
        .iter()
        .skip(1)
        .step_by(2)
        .flat_map(|p| p.iter().copied())
        .collect();
    assert!(
        run.passed == upstream,
        "the client got other bytes than the upstream's"
    );

    // Reads split anywhere give the same result, when the guard read the
    // same bytes (a whole read may go past the queue's bound).
    let bytewise = run_dele_guard(max_line_bytes, &pieces, true);
    if bytewise.read == run.read {
        assert_eq!(bytewise, run, "the result depends on how reads were split");
    }
}
