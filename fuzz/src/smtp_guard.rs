//! SMTP: the post-login guard between an authenticated client and the
//! upstream, with the PEC submission checks and the message content
//! streamed through.
//!
//! Two models check it from outside. [`Upstream`] reads what the guard
//! sends as a strict RFC 5321 server would, and holds every command and
//! every message to the rules the guard enforces. [`client_units`] reads
//! the client's stream the same strict way, to check that each command
//! and each message gets exactly one reply, in order.

use std::collections::VecDeque;
use std::sync::Arc;

use pec_proxy::testing::smtp::checks::{self, HeaderRules, MAX_RECIPIENTS, RateLimiter, Recipients};
use pec_proxy::testing::smtp::guard::{Guard, GuardOptions, MAX_CLIENT_BUFFER, MAX_UPSTREAM_REPLY};
use pec_proxy::testing::smtp::parse::{self, Command, Decode, ReversePath};
use pec_proxy::testing::smtp::reply;

use super::segments;
use super::smtp::{HOSTNAME, check_smtp_replies};

const MAILBOX: &str = "alice@pec.example";

/// A command the upstream was sent and has not answered yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Ehlo,
    Mail,
    Rcpt,
    Data,
    /// The final dot of a message.
    DataEnd,
    Rset,
    Noop,
    Quit,
}

/// An upstream reply as the guard delimits it (and RFC 5321 §4.2.1 does):
/// lines up to one whose fourth byte is not `-`. Returns its length and
/// code (0 when the first three bytes are no number).
fn next_reply(bytes: &[u8]) -> Option<(usize, u16)> {
    let mut at = 0;
    loop {
        let lf = bytes[at..].iter().position(|&b| b == b'\n')? + at;
        let line = &bytes[at..=lf];
        at = lf + 1;
        if line.len() < 4 || line[3] != b'-' {
            let code = bytes
                .get(..3)
                .and_then(|c| std::str::from_utf8(c).ok())
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            return Some((at, code));
        }
    }
}

/// The replies in `bytes`, delimited as [`next_reply`] does.
fn replies_of(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some((len, _)) = next_reply(bytes) {
        out.push(&bytes[..len]);
        bytes = &bytes[len..];
    }
    out
}

fn code_of(reply: &[u8]) -> u16 {
    next_reply(reply).map_or(0, |(_, code)| code)
}

/// The end of DATA content starting at `from` (a line start), read
/// strictly: the first `"." CRLF` at a line start, where only CRLF ends a
/// line (RFC 5321 §4.1.1.4, §2.3.8). Returns the offset just past it.
fn content_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut line_start = from;
    loop {
        if bytes[line_start..].starts_with(b".\r\n") {
            return Some(line_start + 3);
        }
        let crlf = bytes[line_start..].windows(2).position(|w| w == b"\r\n")?;
        line_start += crlf + 2;
    }
}

/// The upstream as a strict SMTP server sees what the guard sends it:
/// command lines, and after a 354 to `DATA` the content up to
/// `CRLF "." CRLF`. Every byte is checked: no bare CR or LF anywhere, so
/// a lenient server reads the same (no smuggling); only the commands the
/// guard forwards, within its line limits; `MAIL` only from the mailbox
/// and within `SIZE`; `DATA` only after the verdicts on everything before
/// it, and nothing after it before its reply; every message within the
/// size limit and passing the header rules; nothing after `QUIT`.
struct Upstream {
    opts: GuardOptions,
    sent: Vec<u8>,
    /// Parsed up to here.
    at: usize,
    outstanding: VecDeque<Sent>,
    /// In a message: where its content starts.
    content: Option<usize>,
    quit: bool,
    /// Accepted recipients of the open transaction.
    tx: Option<u64>,
    /// Their mailboxes.
    recipients: Recipients,
    /// The mailboxes of the RCPTs not answered yet, in order.
    rcpt_paths: VecDeque<Vec<u8>>,
    /// Reply bytes whose reply has not ended.
    replies_in: Vec<u8>,
    /// The upstream said something that answers nothing, or answered QUIT:
    /// the guard has ended the session.
    ended: bool,
    /// The upstream said something that answers nothing.
    unsolicited: bool,
    /// 2xx replies to final dots: messages the upstream took.
    delivered: u64,
}

impl Upstream {
    fn new(opts: GuardOptions) -> Self {
        Self {
            opts,
            sent: Vec::new(),
            at: 0,
            outstanding: VecDeque::new(),
            content: None,
            quit: false,
            tx: None,
            recipients: Recipients::default(),
            rcpt_paths: VecDeque::new(),
            replies_in: Vec::new(),
            ended: false,
            unsolicited: false,
            delivered: 0,
        }
    }

    /// Bytes the guard sent; parsed by [`Self::parse`]. A CR is bare unless
    /// an LF follows it; a CR as the very last byte may still get its LF
    /// (or the connection is dropped there, and the message with it).
    fn append(&mut self, bytes: &[u8]) {
        let from = self.sent.len().saturating_sub(1);
        self.sent.extend_from_slice(bytes);
        let s = &self.sent;
        for i in from..s.len() {
            match s[i] {
                b'\n' => assert!(
                    i > 0 && s[i - 1] == b'\r',
                    "bare LF sent upstream at {i}: {:?}",
                    lossy(s)
                ),
                b'\r' => assert!(
                    i + 1 == s.len() || s[i + 1] == b'\n',
                    "bare CR sent upstream at {i}: {:?}",
                    lossy(s)
                ),
                _ => {}
            }
        }
    }

    /// Reply bytes from the upstream, in the order the guard got them.
    fn receive(&mut self, bytes: &[u8]) {
        if self.ended {
            return;
        }
        self.replies_in.extend_from_slice(bytes);
        while let Some((len, code)) = next_reply(&self.replies_in) {
            self.replies_in.drain(..len);
            self.answered(code);
            if self.ended {
                return;
            }
        }
    }

    fn answered(&mut self, code: u16) {
        let Some(sent) = self.outstanding.pop_front() else {
            self.ended = true;
            self.unsolicited = true;
            return;
        };
        let ok = (200..300).contains(&code);
        if sent == Sent::Rcpt {
            let path = self.rcpt_paths.pop_front().expect("a path for each RCPT");
            if let (true, Some(n)) = (ok, self.tx.as_mut()) {
                *n += 1;
                self.recipients.add(&path);
            }
        }
        if matches!(sent, Sent::Ehlo | Sent::Rset | Sent::DataEnd) || (sent == Sent::Mail && ok) {
            self.recipients = Recipients::default();
        }
        match sent {
            Sent::Mail if ok => self.tx = Some(0),
            Sent::Ehlo | Sent::Rset => self.tx = None,
            Sent::DataEnd => {
                self.delivered += u64::from(ok);
                self.tx = None;
            }
            Sent::Data if code == 354 => {
                // The guard sends what it holds at once: the header block,
                // perhaps the whole message.
                self.content = Some(self.at);
                self.parse_content();
            }
            Sent::Quit => self.ended = true,
            _ => {}
        }
    }

    /// Content, up to the end of the message if it has been sent.
    fn parse_content(&mut self) {
        let Some(start) = self.content else {
            return;
        };
        let rcpts = self.tx.map_or(1, |n| n.max(1));
        match content_end(&self.sent, self.at) {
            Some(end) => {
                let content = &self.sent[start..end - 3];
                self.check_message(content, rcpts);
                self.at = end;
                self.content = None;
                self.outstanding.push_back(Sent::DataEnd);
            }
            None => {
                // Lines done are content; keep the current line.
                if let Some(last) = self.sent[self.at..].windows(2).rposition(|w| w == b"\r\n") {
                    self.at += last + 2;
                }
            }
        }
    }

    fn check_message(&self, content: &[u8], rcpts: u64) {
        let rules = self.opts.header_rules;
        if rules.any() {
            let mut end = 0;
            for line in content.split_inclusive(|&b| b == b'\n') {
                if line == b"\r\n" {
                    break;
                }
                end += line.len();
            }
            assert!(
                checks::check_headers(&content[..end], MAILBOX, &self.recipients, rules).is_ok(),
                "a message the header rules refuse reached the upstream: {:?}",
                lossy(content)
            );
        }
        if self.opts.check_size {
            assert!(
                (content.len() as u64).saturating_mul(rcpts) <= self.opts.max_message_bytes,
                "a message of {} bytes x {rcpts} recipients reached the upstream",
                content.len()
            );
        }
    }

    /// Everything sent so far that can be read now.
    fn parse(&mut self) {
        loop {
            if self.content.is_some() {
                self.parse_content();
                if self.content.is_some() {
                    return;
                }
                continue;
            }
            if self.at == self.sent.len() {
                return;
            }
            assert!(
                !self.quit,
                "bytes sent after QUIT: {:?}",
                lossy(&self.sent[self.at..])
            );
            assert!(
                !self.outstanding.contains(&Sent::Data),
                "bytes sent after DATA before its reply: {:?}",
                lossy(&self.sent[self.at..])
            );
            let Some(lf) = self.sent[self.at..].iter().position(|&b| b == b'\n') else {
                return;
            };
            let line = self.sent[self.at..=self.at + lf].to_vec();
            self.at += lf + 1;
            self.command(&line);
        }
    }

    fn command(&mut self, line: &[u8]) {
        let text = lossy(line);
        let Decode::Done { consumed, value } = parse::decode_command(line) else {
            panic!("not a command, sent upstream: {text:?}");
        };
        assert_eq!(consumed, line.len());
        let limit = self.opts.max_command_line_bytes
            + if matches!(value, Command::Mail { .. }) {
                500
            } else {
                0
            };
        assert!(line.len() <= limit, "over-long line sent upstream: {text:?}");
        let sent = match value {
            Command::Ehlo(_) | Command::Helo(_) => Sent::Ehlo,
            Command::Mail { from, params } => {
                if self.opts.check_sender {
                    assert!(
                        matches!(from, ReversePath::Mailbox(a) if a.eq_ignore_ascii_case(MAILBOX.as_bytes())),
                        "foreign sender sent upstream: {text:?}"
                    );
                }
                let size = parse::declared_size(&params).expect("a bad SIZE= sent upstream");
                if self.opts.check_size {
                    assert!(size.is_none_or(|n| n <= self.opts.max_message_bytes), "{text:?}");
                }
                Sent::Mail
            }
            Command::Rcpt { to, .. } => {
                if self.opts.header_rules.recipients {
                    let open = self.tx.unwrap_or(0) + self.rcpt_paths.len() as u64;
                    assert!(open < MAX_RECIPIENTS, "over {MAX_RECIPIENTS} recipients kept");
                }
                self.rcpt_paths.push_back(to.to_vec());
                Sent::Rcpt
            }
            Command::Data => {
                assert_eq!(line, b"DATA\r\n");
                assert!(
                    self.outstanding.is_empty(),
                    "DATA before the verdicts on {:?}",
                    self.outstanding
                );
                Sent::Data
            }
            Command::Rset => Sent::Rset,
            Command::Noop => Sent::Noop,
            Command::Quit => {
                self.quit = true;
                Sent::Quit
            }
            other => panic!("{} sent upstream: {text:?}", other.name()),
        };
        self.outstanding.push_back(sent);
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A simulated upstream's reply to `sent`: `choice` picks success or one
/// of three refusals.
fn simulated_reply(sent: Sent, choice: u8) -> &'static [u8] {
    if choice % 4 == 0 && sent != Sent::Quit {
        return match (choice >> 2) % 3 {
            0 => b"451 4.3.0 Try again later\r\n",
            1 => b"550 5.7.1 Refused\r\n",
            _ => b"554-5.5.1 Refused,\r\n554 5.5.1 twice\r\n",
        };
    }
    match sent {
        Sent::Ehlo => b"250-mx.pec.example\r\n250-XCLIENT ADDR LOGIN\r\n250 STARTTLS\r\n",
        Sent::Mail => b"250 2.1.0 Ok\r\n",
        Sent::Rcpt => b"250 2.1.5 Ok\r\n",
        Sent::Data => b"354 End data with <CR><LF>.<CR><LF>\r\n",
        Sent::DataEnd => b"250 2.0.0 Ok: queued as 4F2B1\r\n",
        Sent::Rset | Sent::Noop => b"250 2.0.0 Ok\r\n",
        Sent::Quit => b"221 2.0.0 Bye\r\n",
    }
}

/// `code [( SP / "-" ) text] CRLF` with a 2xx-5xx code and printable
/// text: a reply line of the guard's own (or one the upstream sent that
/// looks like it).
fn well_formed_line(line: &[u8]) -> bool {
    line.len() >= 5
        && matches!(line[0], b'2'..=b'5')
        && line[1].is_ascii_digit()
        && line[2].is_ascii_digit()
        && line.ends_with(b"\r\n")
        && (line.len() == 5 || matches!(line[3], b' ' | b'-'))
        && line[3..line.len() - 2].iter().all(|&b| (0x20..0x7f).contains(&b))
}

struct Setup {
    opts: GuardOptions,
    per_minute: u32,
    /// The upstream is simulated: the upstream pieces pick its replies.
    simulated: bool,
    /// The upstream closes after the last piece.
    close_at_end: bool,
    /// The first client piece came with the login (pipelined after AUTH).
    pipelined: bool,
}

impl Setup {
    fn new(f0: u8, f1: u8) -> Self {
        let opts = GuardOptions {
            hostname: HOSTNAME.into(),
            tls: f0 & 0x40 != 0,
            smtputf8: f0 & 0x80 != 0,
            check_sender: f0 & 1 != 0,
            check_size: f0 & 2 != 0,
            header_rules: HeaderRules {
                from_header: f0 & 4 != 0,
                no_bcc: f0 & 8 != 0,
                // The two blind-copy rules share a flag.
                recipients: f0 & 8 != 0,
                max_line_bytes: if f1 & 0x20 != 0 { 40 } else { 1000 },
            },
            max_message_bytes: [100, 400, 1000, 30 << 20][usize::from(f1 & 3)],
            max_command_line_bytes: if f1 & 0x10 != 0 { 64 } else { 512 },
            max_header_bytes: [40, 128, 512, 4096][usize::from((f1 >> 2) & 3)],
        };
        Self {
            opts,
            per_minute: if f0 & 0x10 != 0 { 2 } else { 0 },
            simulated: f0 & 0x20 != 0,
            close_at_end: f1 & 0x40 != 0,
            pipelined: f1 & 0x80 != 0,
        }
    }
}

/// One run of the guard: what it read and wrote.
#[derive(Debug, PartialEq, Eq)]
struct Trace {
    read: Vec<u8>,
    upstream_sent: Vec<u8>,
    to_upstream: Vec<u8>,
    to_client: Vec<u8>,
    finished: bool,
    delivered: u64,
    /// The upstream sent a reply that answers nothing.
    unsolicited: bool,
    /// The upstream was in the middle of a message at the end.
    in_message: bool,
}

struct Session<'a> {
    setup: &'a Setup,
    guard: Guard,
    upstream: Upstream,
    trace: Trace,
    /// Client bytes not read yet (the relay's socket buffer), from
    /// `waiting_from` on.
    waiting: Vec<u8>,
    waiting_from: usize,
    bytewise: bool,
    /// Upstream lines relayed to the client so far are at or after this
    /// one (raw upstream only).
    relayed: usize,
}

impl Session<'_> {
    /// After each call into the guard: take what it wrote, check it and
    /// what it holds. `read` is the size of the last client read.
    fn after(&mut self, read: usize) {
        let to_upstream = self.guard.take_to_upstream();
        self.upstream.append(&to_upstream);
        self.trace.to_upstream.extend_from_slice(&to_upstream);
        let to_client = self.guard.take_to_client();
        self.check_to_client(&to_client);
        self.trace.to_client.extend_from_slice(&to_client);

        let b = self.guard.buffered();
        // The final dot of a message that ends in its header block is no
        // header, but is held with it.
        assert!(
            b.header_block <= self.setup.opts.max_header_bytes + 3,
            "{} bytes of header block held",
            b.header_block
        );
        assert!(b.client <= MAX_CLIENT_BUFFER + read);
        assert!(b.upstream <= MAX_UPSTREAM_REPLY);
        if !self.guard.finished() {
            // Every complete upstream reply has been dealt with.
            let sent = &self.trace.upstream_sent;
            let held = &sent[sent.len() - b.upstream..];
            assert!(next_reply(held).is_none(), "a complete reply left unread");
        }
    }

    fn check_to_client(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        assert!(bytes.ends_with(b"\n"), "half a line to the client");
        if self.setup.simulated {
            check_smtp_replies(bytes, true);
            return;
        }
        // A line is the guard's own, well-formed, or one the upstream sent,
        // unchanged and in order.
        let upstream_lines: Vec<&[u8]> = self
            .trace
            .upstream_sent
            .split_inclusive(|&b| b == b'\n')
            .collect();
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            if well_formed_line(line) {
                continue;
            }
            match upstream_lines[self.relayed.min(upstream_lines.len())..]
                .iter()
                .position(|l| *l == line)
            {
                Some(i) => self.relayed += i + 1,
                None => panic!("malformed line to the client: {:?}", lossy(line)),
            }
        }
    }

    fn feed_client(&mut self) {
        while self.waiting_from < self.waiting.len() && self.guard.wants_client_input() {
            let from = self.waiting_from;
            let end = if self.bytewise {
                from + 1
            } else {
                self.waiting.len()
            };
            self.waiting_from = end;
            self.trace.read.extend_from_slice(&self.waiting[from..end]);
            self.guard.client_data(&self.waiting[from..end]);
            self.after(end - from);
            self.upstream.parse();
        }
    }

    fn feed_upstream(&mut self, bytes: &[u8]) {
        let steps: Vec<&[u8]> = if self.bytewise {
            bytes.chunks(1).collect()
        } else {
            vec![bytes]
        };
        for chunk in steps {
            if self.guard.finished() {
                return;
            }
            self.trace.upstream_sent.extend_from_slice(chunk);
            self.guard.upstream_data(chunk);
            let to_upstream = self.guard.take_to_upstream();
            self.upstream.append(&to_upstream);
            self.trace.to_upstream.extend_from_slice(&to_upstream);
            self.upstream.receive(chunk);
            if self.upstream.ended {
                assert!(
                    self.guard.finished(),
                    "a reply that answers nothing did not end the session"
                );
            }
            self.after(0);
            self.upstream.parse();
            self.feed_client();
        }
    }

    /// The simulated upstream answers up to one command per byte of `choices`.
    fn answer(&mut self, choices: &[u8]) {
        let replies: Vec<u8> = self
            .upstream
            .outstanding
            .iter()
            .zip(choices)
            .flat_map(|(&sent, &c)| simulated_reply(sent, c).iter().copied())
            .collect();
        if !replies.is_empty() {
            self.feed_upstream(&replies);
        }
    }
}

fn run(setup: &Setup, pieces: &[&[u8]], bytewise: bool) -> Trace {
    let limiter = Arc::new(RateLimiter::new(setup.per_minute, 10));
    let (pipelined, pieces) = match (setup.pipelined, pieces.split_first()) {
        (true, Some((first, rest))) => (*first, rest),
        _ => (&b""[..], pieces),
    };
    let guard = Guard::new(setup.opts.clone(), MAILBOX.into(), limiter, pipelined);
    let mut s = Session {
        setup,
        guard,
        upstream: Upstream::new(setup.opts.clone()),
        trace: Trace {
            read: pipelined.to_vec(),
            upstream_sent: Vec::new(),
            to_upstream: Vec::new(),
            to_client: Vec::new(),
            finished: false,
            delivered: 0,
            unsolicited: false,
            in_message: false,
        },
        waiting: Vec::new(),
        waiting_from: 0,
        bytewise,
        relayed: 0,
    };
    s.after(pipelined.len());
    s.upstream.parse();
    // With a pipelined first piece, the pieces after it start upstream.
    let offset = usize::from(setup.pipelined && !pieces.is_empty());
    for (i, piece) in pieces.iter().enumerate() {
        if s.guard.finished() {
            break;
        }
        if (i + offset) % 2 == 0 {
            s.waiting.extend_from_slice(piece);
            s.feed_client();
        } else if setup.simulated {
            s.answer(piece);
        } else {
            s.feed_upstream(piece);
        }
    }
    if setup.simulated {
        // The upstream answers everything, and the client's bytes are all
        // read: every command and message must have its reply then.
        for _ in 0..10_000 {
            if s.guard.finished() || s.upstream.outstanding.is_empty() {
                break;
            }
            s.answer(&[1; 256]);
        }
        if !s.guard.finished() {
            assert!(s.upstream.outstanding.is_empty());
            assert_eq!(
                s.waiting_from,
                s.waiting.len(),
                "the guard stopped reading the client for good"
            );
        }
    } else if setup.close_at_end && !s.guard.finished() {
        s.guard.upstream_closed();
        assert!(s.guard.finished());
        let out = s.guard.take_to_client();
        assert!(s.guard.take_to_upstream().is_empty());
        s.check_to_client(&out);
        s.trace.to_client.extend_from_slice(&out);
        if !s.upstream.quit {
            assert!(out.ends_with(format!("{}\r\n", reply::UPSTREAM_LOST).as_bytes()));
        }
    }
    s.trace.finished = s.guard.finished();
    s.trace.delivered = s.upstream.delivered;
    s.trace.unsolicited = s.upstream.unsolicited;
    s.trace.in_message = s.upstream.content.is_some();
    s.trace
}

/// What the client sent, read strictly, as the units that each get one
/// reply: command lines (up to LF, however long or malformed), and after
/// a `354` to `DATA` the message content up to `CRLF "." CRLF`. Stops at
/// `QUIT`, at a DATA whose reply is not known yet, and at an incomplete
/// unit. Returns whether each unit is a message, and whether the client's
/// last line is incomplete but already over the limit (it has its reply).
fn client_units(read: &[u8], replies: &[&[u8]], opts: &GuardOptions) -> (Vec<bool>, bool) {
    let mut units = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &read[pos..];
        let is_mail = parse::verb_of(&rest[..rest.len().min(4)]).as_deref() == Some(b"MAIL");
        let limit = opts.max_command_line_bytes + if is_mail { 500 } else { 0 };
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            return (units, rest.len() > limit);
        };
        let line = &rest[..=lf];
        pos += lf + 1;
        units.push(false);
        let command = match parse::decode_command(line) {
            Decode::Done { value, .. } if line.len() <= limit => Some(value),
            _ => None,
        };
        match command {
            Some(Command::Data) => {
                let Some(reply) = replies.get(units.len() - 1) else {
                    return (units, false);
                };
                if reply.starts_with(b"354") {
                    let Some(end) = content_end(read, pos) else {
                        return (units, false);
                    };
                    pos = end;
                    units.push(true);
                }
            }
            Some(Command::Quit) => return (units, false),
            _ => {}
        }
    }
}

/// The post-login SMTP guard between a client and an upstream. The first
/// two bytes pick the options (which PEC checks, the limits, a rate limit,
/// TLS) and the mode: the upstream sends raw bytes, or it is simulated and
/// answers each command it gets with a reply its piece picks. The rest is
/// split at 0xFF bytes into pieces that go alternately to the client and
/// to the upstream.
///
/// Invariants: no panic. What reaches the upstream, read as a strict
/// server reads it ([`Upstream`]), holds no bare CR or LF (so no reading
/// of it, lenient or strict, finds an end of data the guard did not send,
/// nor a command the client smuggled after a bare-LF "end of data"); only
/// forwardable commands, within the line limits, `MAIL` only from the
/// mailbox; `DATA` only once everything before has its verdict and
/// nothing after it before its 354; every message within the size limit
/// and passing the header rules, so a refused message never reaches the
/// upstream. Replies to the client are whole lines, each the guard's own
/// and well-formed (with an enhanced status code against a well-behaved
/// upstream) or a line the upstream sent. Held bytes stay bounded: the
/// header block within `max_header_bytes`, no complete upstream reply
/// left unread. Unless the session ended: no more replies than client
/// commands and messages, a message gets a 2xx only when the upstream
/// took it, and against the simulated upstream, once everything is
/// answered, every command and message has exactly one reply. Reads split
/// into single bytes give the same result (except where a message cut for
/// size had part of it sent already, or the upstream said something out of
/// turn).
pub fn smtp_guard(data: &[u8]) {
    let [f0, f1, rest @ ..] = data else {
        return;
    };
    let setup = Setup::new(*f0, *f1);
    let pieces = segments(rest);
    let trace = run(&setup, &pieces, false);

    if !trace.finished {
        let replies = if setup.simulated {
            check_smtp_replies(&trace.to_client, true)
        } else {
            replies_of(&trace.to_client)
        };
        let (units, trailing_long) = client_units(&trace.read, &replies, &setup.opts);
        let expected = units.len() + usize::from(trailing_long);
        assert!(
            replies.len() <= expected,
            "{} replies to {expected} commands and messages",
            replies.len()
        );
        if setup.simulated {
            assert_eq!(
                replies.len(),
                expected,
                "commands or messages left without a reply: {:?}",
                lossy(&trace.read)
            );
        }
        let taken = units
            .iter()
            .zip(&replies)
            .filter(|(message, reply)| **message && (200..300).contains(&code_of(reply)))
            .count() as u64;
        assert_eq!(
            taken, trace.delivered,
            "a 2xx for a message the upstream did not take"
        );
    }

    let bytewise = run(&setup, &pieces, true);
    if trace.unsolicited || bytewise.unsolicited {
        // When a reply that answers nothing arrives decides what the
        // client's commands before it got: the session ends there anyway.
        return;
    }
    assert_eq!(
        lossy(&bytewise.to_client),
        lossy(&trace.to_client),
        "replies depend on how reads were split"
    );
    assert_eq!(bytewise.finished, trace.finished);
    if bytewise.to_upstream != trace.to_upstream {
        // Cut for size: the read that went over is not sent; byte by byte,
        // the bytes before the one that went over are. The rest of that
        // message is dropped either way.
        assert!(
            trace.in_message && bytewise.to_upstream.starts_with(&trace.to_upstream),
            "what went upstream depends on how reads were split: {:?} then {:?}",
            lossy(&trace.to_upstream),
            lossy(&bytewise.to_upstream)
        );
    }
}
