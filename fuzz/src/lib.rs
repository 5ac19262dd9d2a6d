//! The bodies of the fuzz targets, as plain functions: the libFuzzer targets
//! in `fuzz_targets/` call them, and `tests/fuzz_smoke.rs` runs them on the
//! stable toolchain with a seeded generator and the saved regression inputs.
//! Each asserts the invariants of what it drives, beyond "does not panic".

mod address;
mod imap_guard;
mod pop3;
mod proxy_protocol;
mod smtp;
mod smtp_guard;

pub use address::address;
pub use imap_guard::imap_guard;
pub use pop3::{pop3_frontend, pop3_guard, pop3_parse};
pub use proxy_protocol::proxy_protocol;
pub use smtp::{smtp_frontend, smtp_parse};
pub use smtp_guard::smtp_guard;

use pec_proxy::testing::access::LoginRefusal;
use pec_proxy::testing::access::login_name::{LoginName, parse_login_name};
use pec_proxy::testing::access::policy::DenyReason;
use pec_proxy::testing::frontend::BadInput;
use pec_proxy::testing::frontend::sasl::{self, Exchange, MAX_FIELD_BYTES, Mechanism, Step};
use pec_proxy::testing::imap::frontend::{Event, FrontendOptions, ImapFrontend};
use pec_proxy::testing::imap::parse::{self, Decode};

/// The IMAP pre-login parsers: `decode_command`, `decode_auth_line`, `head`,
/// `line_end`, `leading_tag`. A decoded command consumed a whole line of the input and
/// decodes the same from exactly those bytes; no shorter prefix of it
/// decodes as a command or fails.
pub fn imap_parse(data: &[u8]) {
    match parse::decode_command(data) {
        Decode::Done { consumed, value } => {
            assert!(consumed > 0 && consumed <= data.len());
            assert!(data[..consumed].ends_with(b"\n"));
            assert_eq!(
                parse::decode_command(&data[..consumed]),
                Decode::Done {
                    consumed,
                    value: value.clone()
                }
            );
            if consumed <= 256 {
                for end in 0..consumed {
                    match parse::decode_command(&data[..end]) {
                        Decode::Incomplete | Decode::LiteralAnnounced { .. } => {}
                        other => panic!("prefix of {end} bytes gave {other:?}"),
                    }
                }
            }
        }
        Decode::LiteralAnnounced { offset, .. } => assert!(offset <= data.len()),
        Decode::Incomplete | Decode::Failed(_) => {}
    }
    match parse::decode_auth_line(data) {
        Decode::Done { consumed, value } => {
            assert!(consumed <= data.len() && value.len() < consumed);
            assert!(data[..consumed].ends_with(b"\n"));
        }
        Decode::LiteralAnnounced { offset, .. } => assert!(offset <= data.len()),
        Decode::Incomplete | Decode::Failed(_) => {}
    }
    if let Some((tag, name)) = parse::head(data) {
        assert!(!tag.is_empty() && !name.is_empty() && data.starts_with(tag));
    }
    // One line of a command, as the front-end reads it: a literal is
    // announced only at its very end, and never inside a quoted string.
    let line = match data.iter().position(|&b| b == b'\n') {
        Some(lf) => &data[..=lf],
        None => data,
    };
    if let parse::LineEnd::Literal { data_at, length, .. } = parse::line_end(line) {
        assert_eq!(data_at, line.len());
        assert!(line.ends_with(b"}\r\n") && length < 1 << 63);
    }
    if let Some(tag) = parse::leading_tag(data) {
        assert!(!tag.is_empty() && data.starts_with(tag));
    }
}

/// A reply the front-end sends: CRLF-terminated lines of printable ASCII,
/// so nothing a client sent can reach another client's terminal or log as
/// a control sequence, and no bare LF.
fn check_reply(reply: &[u8]) {
    assert!(reply.ends_with(b"\r\n"), "{:?}", String::from_utf8_lossy(reply));
    for (i, &b) in reply.iter().enumerate() {
        match b {
            b'\n' => assert_eq!(reply[i - 1], b'\r'),
            b'\r' => assert_eq!(reply.get(i + 1), Some(&b'\n')),
            0x20..=0x7e => {}
            _ => panic!("byte {b:#x} in reply {:?}", String::from_utf8_lossy(reply)),
        }
    }
}

/// A front-end that said `Close` stays closed: it says so again, and again
/// after `more` input.
fn stays_closed<F: pec_proxy::testing::frontend::Frontend>(frontend: &mut F, more: &[u8]) {
    assert!(matches!(
        frontend.next_event(),
        Some(pec_proxy::testing::frontend::Event::Close)
    ));
    frontend.receive(more);
    assert!(matches!(
        frontend.next_event(),
        Some(pec_proxy::testing::frontend::Event::Close)
    ));
}

/// A front-end's [`BadInput`] events against its `max_prelogin_errors`:
/// never more than that many refusals, then `TooManyErrors` as the last
/// event before `Close` (its goodbye reply aside).
struct BadInputs {
    max: u32,
    seen: u32,
    cut_off: bool,
}

impl BadInputs {
    fn new(max: u32) -> Self {
        Self {
            max,
            seen: 0,
            cut_off: false,
        }
    }

    fn saw(&mut self, kind: BadInput) {
        assert!(!self.cut_off, "{kind:?} after TooManyErrors");
        self.seen += 1;
        assert!(self.seen <= self.max + 1, "{} bad inputs", self.seen);
        if kind == BadInput::TooManyErrors {
            assert_eq!(self.seen, self.max + 1, "cut off early");
            self.cut_off = true;
        }
    }

    /// Any other event than a reply or `Close`.
    fn goes_on(&self) {
        assert!(!self.cut_off, "the session went on after TooManyErrors");
        assert!(
            self.seen < self.max,
            "the limit was reached without TooManyErrors"
        );
    }
}

/// The login refusal for the `logins`-th attempt: a temporary one (not
/// counted as a failure) every other time when `flag` is set, otherwise
/// a wrong password.
fn refusal(flag: bool, logins: u32) -> LoginRefusal {
    if flag && logins % 2 == 0 {
        LoginRefusal::UpstreamUnavailable { no_answer: false }
    } else {
        LoginRefusal::Denied(DenyReason::UnknownOrBadPassword)
    }
}

/// The IMAP pre-login state machine fed arbitrary bytes in arbitrary
/// chunks. The first byte picks the listener kind, the error limit and how
/// logins end; the rest is the client's stream. Invariants: no panic,
/// every reply is well-formed, the buffer stays within the command's
/// budget after each chunk however many literals the client announces, the
/// parsers read each byte at most twice, bad input is cut off at `max_prelogin_errors`, and a closed
/// front-end stays closed.
pub fn imap_frontend(data: &[u8]) {
    let Some((&flags, stream)) = data.split_first() else {
        return;
    };
    let opts = FrontendOptions {
        starttls: flags & 1 != 0,
        allow_plaintext_login: flags & 2 != 0,
        max_line_bytes: 1024,
        max_literal_bytes: 256,
        max_login_failures: 3,
        max_prelogin_errors: if flags & 0x30 == 0x30 { 2 } else { 50 },
        greeting: "fuzz".into(),
    };
    // All a client can make the front-end hold, whatever it sends: one
    // command's budget, literals included.
    let bound = opts.max_command_bytes();
    assert_eq!(bound, 4 * 1024);
    let mut bad = BadInputs::new(opts.max_prelogin_errors);
    let mut frontend = ImapFrontend::new(opts, flags & 4 != 0);
    check_reply(&frontend.greeting());
    let mut logins = 0u32;
    let mut at = 0;
    let mut chunk = 0usize;
    while at < stream.len() {
        chunk += 1;
        let len = 1 + (chunk * 31 + usize::from(flags >> 3)) % 97;
        let end = (at + len).min(stream.len());
        frontend.receive(&stream[at..end]);
        at = end;
        while let Some(event) = frontend.next_event() {
            match event {
                Event::Reply(bytes) => check_reply(&bytes),
                Event::BadInput(kind) => bad.saw(kind),
                Event::StartTls(bytes) => {
                    bad.goes_on();
                    check_reply(&bytes);
                    assert_eq!(frontend.buffered(), 0, "bytes after STARTTLS are discarded");
                    frontend.tls_established();
                }
                Event::Login(attempt) => {
                    bad.goes_on();
                    assert!(frontend.is_tls() || flags & 2 != 0, "login accepted in clear");
                    assert!(attempt.credentials.password.len() <= bound);
                    logins += 1;
                    let refusal = refusal(flags & 8 != 0, logins);
                    let (reply, close) = frontend.login_refused(&attempt, &refusal);
                    check_reply(&reply);
                    assert!(!close || refusal.counts_as_failure());
                    if close {
                        assert!(matches!(frontend.next_event(), Some(Event::Close)));
                        return;
                    }
                }
                Event::Close => {
                    stays_closed(&mut frontend, b"a NOOP\r\n");
                    return;
                }
            }
        }
        assert!(
            frontend.buffered() <= bound,
            "{} bytes buffered",
            frontend.buffered()
        );
        assert!(
            frontend.parsed() <= 2 * at as u64,
            "{} bytes parsed of {at} received",
            frontend.parsed()
        );
    }
}

/// The pieces of a two-sided input: split at each 0xFF byte, the pieces
/// go alternately to the client side (even) and the upstream side (odd).
/// Two 0xFF in a row split one side's bytes into two reads.
fn segments(data: &[u8]) -> Vec<&[u8]> {
    data.split(|&b| b == 0xff).collect()
}

fn check_credentials(c: &sasl::Credentials) {
    assert!(!c.authcid.is_empty() && c.authcid.len() <= MAX_FIELD_BYTES);
    assert!(c.password.len() <= MAX_FIELD_BYTES);
    assert!(
        c.authzid
            .as_ref()
            .is_none_or(|z| !z.is_empty() && z.len() <= MAX_FIELD_BYTES)
    );
}

/// SASL: `decode_response`, `parse_plain`, and a whole `Exchange` driven by
/// the input's lines (the first byte picks the mechanism and whether the
/// first line is a SASL-IR initial response).
pub fn sasl(data: &[u8]) {
    if let Ok(decoded) = sasl::decode_response(data) {
        assert!(decoded.len() <= 3 * MAX_FIELD_BYTES);
    }
    if let Ok(c) = sasl::parse_plain(data) {
        check_credentials(&c);
        assert!(!c.password.expose().contains(&0));
    }
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mechanism = if flags & 1 == 0 {
        Mechanism::Plain
    } else {
        Mechanism::Login
    };
    let mut lines = rest.split(|&b| b == b'\n');
    let initial = if flags & 2 != 0 { lines.next() } else { None };
    let mut step = Exchange::start(mechanism, initial);
    for _ in 0..8 {
        match step {
            Ok(Step::Challenge(challenge, exchange)) => {
                assert!(sasl::decode_response(challenge.as_bytes()).is_ok() || challenge.is_empty());
                let Some(line) = lines.next() else { return };
                step = exchange.step(line);
            }
            Ok(Step::Done(c)) => {
                check_credentials(&c);
                return;
            }
            Err(_) => return,
        }
    }
    panic!("a SASL exchange took more than 8 steps");
}

/// Login names: a parsed name is canonical (lower case, one `@`, no
/// separator in the mailbox) and parses to itself when written back.
pub fn login_name(data: &[u8]) {
    for separator in ['/', '%', '#'] {
        let Ok(name) = parse_login_name(data, separator) else {
            continue;
        };
        let LoginName {
            mailbox,
            collaborator,
        } = &name;
        assert_eq!(mailbox.matches('@').count(), 1);
        assert!(!mailbox.contains(separator));
        assert_eq!(*mailbox, mailbox.to_lowercase());
        let written = match collaborator {
            Some(c) => {
                assert!(!c.is_empty() && *c == c.to_lowercase());
                format!("{c}{separator}{mailbox}")
            }
            None => mailbox.clone(),
        };
        assert_eq!(parse_login_name(written.as_bytes(), separator), Ok(name.clone()));
    }
}
