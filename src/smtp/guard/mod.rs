//! The post-login guard: sits between the authenticated client and the
//! upstream, reads the client's commands and the upstream's replies, and
//! enforces the PEC submission checks (RFC 6109 §3.1.1). Pure: bytes in,
//! bytes out; [`crate::relay::guarded`] does the I/O, through the
//! [`crate::relay::guarded::Inspector`] in `inspector.rs`.
//!
//! # The message content
//!
//! Content is never modified and never held whole. The proxy answers the
//! client's `DATA` with `354` itself and holds back only the **header
//! block** (bounded by `smtp_max_header_bytes`) until the header rules have
//! been checked. Only then does it send `DATA` upstream, wait for the
//! upstream's `354`, and stream the header block and the body through. A
//! refused message therefore never reaches the upstream at all: the rest
//! of its content is read and dropped up to the final dot, the client gets
//! the `550`, and the upstream transaction is ended with `RSET`. (The other
//! option, sending `DATA` upstream at once, leaves no way to abort: the
//! upstream accepts at the final dot, and withholding the dot only leaves a
//! half-sent message that needs a new connection.)
//!
//! Once the body streams, only two things can still refuse the message: the
//! size × recipients limit when the client did not declare `SIZE=`, and
//! a bare CR or LF (RFC 5321 §2.3.8; also what SMTP smuggling relies on).
//! Then the final dot is withheld, the upstream connection is dropped (the
//! only way to abort a transaction in DATA), the client gets the refusal
//! and `421`, and must reconnect.
//!
//! # Order
//!
//! Replies go to the client in the order of its commands (RFC 2920): local
//! replies wait in a queue behind the upstream replies still due before them.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Buf, BytesMut};

use super::checks::{self, Check, HeaderRefusal, HeaderRules, MAX_RECIPIENTS, RateLimiter, Recipients};
use super::end_scan::{EndScan, EndState, Scan};
use super::frontend::invalid_reply;
use super::parse::{self, Command, Decode, ReversePath};
use super::reply::{self, Extensions};

/// Settings of the guard, from the configuration.
#[derive(Debug, Clone)]
pub struct GuardOptions {
    pub hostname: String,
    pub tls: bool,
    /// The upstream offered SMTPUTF8 after login.
    pub smtputf8: bool,
    pub check_sender: bool,
    pub check_size: bool,
    pub header_rules: HeaderRules,
    pub max_message_bytes: u64,
    pub max_command_line_bytes: usize,
    pub max_header_bytes: usize,
}

/// Commands in flight upstream, at most; beyond, the client is not read
/// until replies come back (RFC 2920 lets the server do so).
const MAX_PIPELINED: usize = 100;
/// Client bytes held while the guard waits (a DATA waiting for earlier
/// replies, the upstream's 354); beyond, the client is not read.
pub const MAX_CLIENT_BUFFER: usize = 64 * 1024;
/// Longest upstream reply (all its lines): RFC 5321 §4.5.3.1.5 gives 512
/// per line; EHLO replies run to a few dozen lines.
pub const MAX_UPSTREAM_REPLY: usize = 64 * 1024;

const BARE_NEWLINE: &str = "550 5.6.0 Bare CR or LF in message content (RFC 5321 2.3.8), message refused";

/// What an upstream reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Mail {
        reserved: bool,
    },
    Rcpt,
    Ehlo,
    Rset,
    Noop,
    Quit,
    /// Our `DATA`, sent once the header block passed; its `354` is ours to eat.
    GoAhead,
    /// The final dot: the upstream's verdict on the message.
    DataEnd,
    /// Our `RSET` after a refused message: its reply is not the client's.
    HiddenRset,
}

#[derive(Debug)]
enum Pending {
    Local(Vec<u8>),
    Upstream(Expect),
}

/// Where the client's bytes are going.
#[derive(Debug)]
enum Mode {
    Commands,
    /// After our `354`: collecting the header block.
    Header {
        block: Vec<u8>,
    },
    /// Header block passed; our `DATA` is upstream, waiting for its `354`.
    /// `complete`: the block already holds the end of the message.
    AwaitingGoAhead {
        block: Vec<u8>,
        complete: bool,
    },
    /// Streaming the body upstream.
    Body {
        scan: EndScan,
        size: u64,
    },
    /// Reading and dropping content up to the final dot, then `reply`.
    Swallow {
        scan: EndScan,
        reply: String,
        kill_upstream: bool,
    },
}

/// The transaction as the upstream accepted it.
#[derive(Debug, Default)]
struct Transaction {
    reserved: bool,
    rcpts: u64,
    /// The accepted recipients, kept when the recipients rule is on: at
    /// most [`MAX_RECIPIENTS`].
    recipients: Recipients,
}

/// What a [`Guard`] holds between calls, each bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffered {
    /// Client bytes not consumed yet: under [`MAX_CLIENT_BUFFER`] plus one
    /// read, as long as the session heeds [`Guard::wants_client_input`].
    pub client: usize,
    /// The header block held back for the PEC header rules: at most
    /// `max_header_bytes`, and the final dot's 3 bytes when the message
    /// ends in it.
    pub header_block: usize,
    /// The start of an upstream reply whose last line has not arrived: at
    /// most [`MAX_UPSTREAM_REPLY`].
    pub upstream: usize,
}

/// The post-login SMTP guard for one session.
pub struct Guard {
    opts: GuardOptions,
    mailbox: String,
    limiter: Arc<RateLimiter>,
    client_in: BytesMut,
    upstream_in: BytesMut,
    to_client: Vec<u8>,
    to_upstream: Vec<u8>,
    pending: VecDeque<Pending>,
    mode: Mode,
    tx: Option<Transaction>,
    /// `SIZE=` of the last `MAIL` sent, for the RCPT-time check.
    declared_size: Option<u64>,
    /// Recipients sent whose replies are due.
    rcpts_in_flight: u64,
    /// Their mailboxes, in order, when the recipients rule is on (at most
    /// [`MAX_PIPELINED`] of at most a command line each).
    rcpt_paths: VecDeque<Vec<u8>>,
    discarding: bool,
    quit_sent: bool,
    /// The client's stream ended: it sends nothing more.
    client_gone: bool,
    /// Close both sides once `to_client` is written.
    finished: bool,
}

impl Guard {
    /// A guard for `mailbox` (the authenticated mailbox: every sender must
    /// be it). `pipelined` are client bytes that followed its AUTH.
    pub fn new(opts: GuardOptions, mailbox: String, limiter: Arc<RateLimiter>, pipelined: &[u8]) -> Self {
        let mut g = Self {
            opts,
            mailbox,
            limiter,
            client_in: BytesMut::new(),
            upstream_in: BytesMut::new(),
            to_client: Vec::new(),
            to_upstream: Vec::new(),
            pending: VecDeque::new(),
            mode: Mode::Commands,
            tx: None,
            declared_size: None,
            rcpts_in_flight: 0,
            rcpt_paths: VecDeque::new(),
            discarding: false,
            quit_sent: false,
            client_gone: false,
            finished: false,
        };
        g.client_data(pipelined);
        g
    }

    /// Bytes to write to the client now.
    pub fn take_to_client(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.to_client)
    }

    /// Bytes to write to the upstream now.
    pub fn take_to_upstream(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.to_upstream)
    }

    /// The session is over: write what is left to the client, then close both.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Whether to read more from the client now.
    pub fn wants_client_input(&self) -> bool {
        !self.finished
            && !self.quit_sent
            && self.client_in.len() < MAX_CLIENT_BUFFER
            && self.pending.len() < MAX_PIPELINED
            && !matches!(self.mode, Mode::AwaitingGoAhead { .. })
    }

    /// Whether the upstream is judging a message (its reply to the final
    /// dot may take longer: RFC 5321 §4.5.3.2.6 gives it 10 minutes).
    pub fn awaiting_message_verdict(&self) -> bool {
        self.pending
            .iter()
            .any(|p| matches!(p, Pending::Upstream(Expect::DataEnd)))
    }

    /// What the guard holds now (for tests and the fuzz targets).
    pub fn buffered(&self) -> Buffered {
        let header_block = match &self.mode {
            Mode::Header { block } | Mode::AwaitingGoAhead { block, .. } => block.len(),
            _ => 0,
        };
        Buffered {
            client: self.client_in.len(),
            header_block,
            upstream: self.upstream_in.len(),
        }
    }

    /// The upstream closed or failed. Returns whether it was lost: closed
    /// before the session was over and without the client's QUIT, while
    /// the client was still there or still owed replies (a client that
    /// left without QUIT is not owed the news).
    pub fn upstream_closed(&mut self) -> bool {
        if self.finished {
            return false;
        }
        let owed = self.holds_client_input()
            || self
                .pending
                .iter()
                .any(|p| matches!(p, Pending::Upstream(e) if *e != Expect::HiddenRset));
        self.flush_locals_all();
        let lost = !self.quit_sent && (!self.client_gone || owed);
        if lost {
            self.to_client.extend(reply::line(reply::UPSTREAM_LOST));
        }
        self.end_transaction(false);
        self.finished = true;
        lost
    }

    /// Bytes from the client.
    pub fn client_data(&mut self, data: &[u8]) {
        if self.finished {
            return;
        }
        self.client_in.extend_from_slice(data);
        self.process_client();
    }

    /// Bytes from the upstream.
    pub fn upstream_data(&mut self, data: &[u8]) {
        if self.finished {
            return;
        }
        self.upstream_in.extend_from_slice(data);
        while let Some((code, bytes)) = self.next_upstream_reply() {
            self.handle_reply(code, bytes);
            if self.finished {
                return;
            }
        }
        if self.upstream_in.len() > MAX_UPSTREAM_REPLY {
            self.upstream_closed();
            return;
        }
        self.process_client();
    }

    fn queue_local(&mut self, text: &str) {
        self.queue_local_bytes(reply::line(text));
    }

    fn queue_local_bytes(&mut self, bytes: Vec<u8>) {
        if self.pending.is_empty() {
            self.to_client.extend(bytes);
        } else {
            self.pending.push_back(Pending::Local(bytes));
        }
    }

    fn forward(&mut self, line: &[u8], expect: Expect) {
        self.to_upstream.extend_from_slice(line);
        self.pending.push_back(Pending::Upstream(expect));
    }

    fn flush_locals(&mut self) {
        while let Some(Pending::Local(_)) = self.pending.front() {
            if let Some(Pending::Local(bytes)) = self.pending.pop_front() {
                self.to_client.extend(bytes);
            }
        }
    }

    fn flush_locals_all(&mut self) {
        for p in std::mem::take(&mut self.pending) {
            if let Pending::Local(bytes) = p {
                self.to_client.extend(bytes);
            }
        }
    }

    /// Ends the transaction; `submitted` keeps its rate-limit token.
    fn end_transaction(&mut self, submitted: bool) {
        if let Some(tx) = self.tx.take() {
            if tx.reserved && !submitted {
                self.limiter.refund(&self.mailbox);
            }
        }
    }

    fn process_client(&mut self) {
        loop {
            let progressed = match self.mode {
                Mode::Commands => self.next_command(),
                Mode::Header { .. } => self.next_header_line(),
                Mode::AwaitingGoAhead { .. } => false,
                Mode::Body { .. } | Mode::Swallow { .. } => self.content(),
            };
            if !progressed || self.finished {
                return;
            }
        }
    }

    fn next_command(&mut self) -> bool {
        if self.quit_sent || self.pending.len() >= MAX_PIPELINED {
            return false;
        }
        if self.discarding {
            match self.client_in.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.client_in.advance(end + 1);
                    self.discarding = false;
                }
                None => {
                    self.client_in.clear();
                    return false;
                }
            }
        }
        let buf = std::mem::take(&mut self.client_in);
        let limit = match parse::verb_of(&buf[..buf.len().min(4)]).as_deref() {
            Some(b"MAIL") => self.opts.max_command_line_bytes + 500,
            _ => self.opts.max_command_line_bytes,
        };
        let consumed = match parse::decode_command(&buf) {
            Decode::Incomplete => {
                self.client_in = buf;
                if self.client_in.len() > limit {
                    self.client_in.clear();
                    self.discarding = true;
                    self.queue_local(reply::LINE_TOO_LONG);
                    return true;
                }
                return false;
            }
            Decode::Done { consumed, .. } | Decode::Failed { consumed, .. } if consumed > limit => {
                self.queue_local(reply::LINE_TOO_LONG);
                consumed
            }
            Decode::Failed { consumed, invalid } => {
                self.queue_local_bytes(invalid_reply(invalid));
                consumed
            }
            Decode::Done { consumed, value } => {
                let needs_verdicts = match value {
                    Command::Data => true,
                    // The rate limiter must know whether a transaction is open.
                    Command::Mail { .. } => self.limiter.enabled(),
                    _ => false,
                };
                if needs_verdicts && !self.pending.is_empty() {
                    // DATA needs the verdicts on MAIL and RCPT first.
                    self.client_in = buf;
                    return false;
                }
                self.handle_command(value, &buf[..consumed]);
                consumed
            }
        };
        self.client_in = buf;
        self.client_in.advance(consumed);
        true
    }

    fn handle_command(&mut self, command: Command<'_>, line: &[u8]) {
        match command {
            Command::Ehlo(_) | Command::Helo(_) => {
                self.declared_size = None;
                self.forward(line, Expect::Ehlo);
            }
            Command::Mail { from, params } => self.mail(from, &params, line),
            Command::Rcpt { to, .. } => {
                if self.opts.header_rules.recipients {
                    let rcpts = self.tx.as_ref().map_or(0, |t| t.rcpts) + self.rcpts_in_flight;
                    if rcpts >= MAX_RECIPIENTS {
                        return self.queue_local(reply::TOO_MANY_RECIPIENTS);
                    }
                }
                if self.opts.check_size {
                    if let Some(size) = self.declared_size {
                        let rcpts = self.tx.as_ref().map_or(0, |t| t.rcpts) + self.rcpts_in_flight + 1;
                        let ok = size.saturating_mul(rcpts) <= self.opts.max_message_bytes;
                        checks::count(Check::Size, ok);
                        if !ok {
                            return self.queue_local(reply::TOO_BIG);
                        }
                    }
                }
                self.rcpts_in_flight += 1;
                if self.opts.header_rules.recipients {
                    self.rcpt_paths.push_back(to.to_vec());
                }
                self.forward(line, Expect::Rcpt);
            }
            Command::Data => match self.tx.as_ref().map(|t| t.rcpts) {
                None => self.queue_local(reply::NEED_MAIL),
                Some(0) => self.queue_local(reply::NO_VALID_RECIPIENTS),
                Some(_) => {
                    self.queue_local(reply::START_DATA);
                    self.mode = if self.opts.header_rules.any() {
                        Mode::Header { block: Vec::new() }
                    } else {
                        self.go_ahead(Vec::new(), false)
                    };
                }
            },
            Command::Rset => {
                self.declared_size = None;
                self.forward(line, Expect::Rset);
            }
            Command::Noop => self.forward(line, Expect::Noop),
            Command::Quit => {
                self.quit_sent = true;
                self.forward(line, Expect::Quit);
            }
            Command::Help => self.queue_local(reply::HELP),
            Command::Vrfy | Command::Expn => self.queue_local(reply::VRFY_DISABLED),
            Command::Auth { .. } => self.queue_local(reply::ALREADY_AUTHENTICATED),
            Command::StartTls => self.queue_local(if self.opts.tls {
                reply::TLS_ACTIVE
            } else {
                "503 5.5.1 STARTTLS is not possible after authentication"
            }),
            // CHUNKING is never offered; XCLIENT, XFORWARD and the like
            // must never reach an upstream that trusts the proxy.
            Command::Bdat => self.queue_local(reply::NOT_IMPLEMENTED),
            Command::Other { .. } => self.queue_local(reply::UNKNOWN_COMMAND),
        }
    }

    fn mail(&mut self, from: ReversePath<'_>, params: &[parse::Param<'_>], line: &[u8]) {
        if self.opts.check_sender {
            let ok =
                matches!(from, ReversePath::Mailbox(a) if a.eq_ignore_ascii_case(self.mailbox.as_bytes()));
            checks::count(Check::Sender, ok);
            if !ok {
                return self.queue_local(reply::SENDER_NOT_OWNED);
            }
        }
        let Ok(size) = parse::declared_size(params) else {
            return self.queue_local("501 5.5.4 Syntax: SIZE=<number of octets>");
        };
        if self.opts.check_size {
            if let Some(size) = size {
                let ok = size <= self.opts.max_message_bytes;
                checks::count(Check::Size, ok);
                if !ok {
                    return self.queue_local(reply::TOO_BIG);
                }
            }
        }
        // A MAIL inside a transaction is the upstream's to refuse (503).
        let reserved = self.limiter.enabled() && self.tx.is_none();
        if reserved {
            let ok = self.limiter.try_acquire(&self.mailbox);
            checks::count(Check::Rate, ok);
            if !ok {
                return self.queue_local(reply::RATE_LIMITED);
            }
        }
        self.declared_size = size;
        self.forward(line, Expect::Mail { reserved });
    }

    /// Sends our DATA upstream; the header block waits for its `354`.
    fn go_ahead(&mut self, block: Vec<u8>, complete: bool) -> Mode {
        self.forward(b"DATA\r\n", Expect::GoAhead);
        Mode::AwaitingGoAhead { block, complete }
    }

    /// One complete reply from the upstream, if it has arrived: its code
    /// and all its lines.
    fn next_upstream_reply(&mut self) -> Option<(u16, Vec<u8>)> {
        let mut at = 0;
        loop {
            let lf = self.upstream_in[at..].iter().position(|&b| b == b'\n')? + at;
            let l = &self.upstream_in[at..=lf];
            let last = l.len() < 4 || l[3] != b'-';
            at = lf + 1;
            if last {
                let code = self
                    .upstream_in
                    .get(..3)
                    .and_then(|c| std::str::from_utf8(c).ok())
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                return Some((code, self.upstream_in.split_to(at).to_vec()));
            }
        }
    }

    fn handle_reply(&mut self, code: u16, bytes: Vec<u8>) {
        self.flush_locals();
        let Some(Pending::Upstream(expect)) = self.pending.pop_front() else {
            // Unsolicited: a 421 before closing, or a confused server.
            if code != 421 {
                self.to_client.extend(reply::line(reply::UPSTREAM_LOST));
            } else {
                self.to_client.extend(bytes);
            }
            self.end_transaction(false);
            self.finished = true;
            return;
        };
        let ok = (200..300).contains(&code);
        match expect {
            Expect::Mail { reserved } => {
                if ok {
                    self.tx = Some(Transaction {
                        reserved,
                        ..Transaction::default()
                    });
                } else if reserved {
                    self.limiter.refund(&self.mailbox);
                }
                self.to_client.extend(bytes);
            }
            Expect::Rcpt => {
                self.rcpts_in_flight = self.rcpts_in_flight.saturating_sub(1);
                let path = self.rcpt_paths.pop_front();
                if let (true, Some(tx)) = (ok, self.tx.as_mut()) {
                    tx.rcpts += 1;
                    if let Some(path) = path {
                        tx.recipients.add(&path);
                    }
                }
                self.to_client.extend(bytes);
            }
            Expect::Ehlo => {
                self.end_transaction(false);
                if code == 250 {
                    let ext = Extensions {
                        size: self.opts.max_message_bytes,
                        starttls: false,
                        auth: false,
                        smtputf8: self.opts.smtputf8,
                    };
                    self.to_client.extend(reply::ehlo(&self.opts.hostname, ext));
                } else {
                    self.to_client.extend(bytes);
                }
            }
            Expect::Rset => {
                self.end_transaction(false);
                self.to_client.extend(bytes);
            }
            Expect::Noop => self.to_client.extend(bytes),
            Expect::Quit => {
                self.to_client.extend(bytes);
                self.flush_locals_all();
                self.finished = true;
            }
            Expect::GoAhead => {
                let Mode::AwaitingGoAhead { block, complete } =
                    std::mem::replace(&mut self.mode, Mode::Commands)
                else {
                    return;
                };
                if code == 354 {
                    let size = block.len() as u64;
                    self.to_upstream.extend_from_slice(&block);
                    if complete {
                        self.pending.push_back(Pending::Upstream(Expect::DataEnd));
                    } else {
                        self.mode = Mode::Body {
                            scan: EndScan::line_start(),
                            size,
                        };
                    }
                } else {
                    // The upstream will not take the message: its reply is
                    // the client's verdict, once the content is read.
                    let why = reply_text(&bytes);
                    if complete {
                        self.refused(&why, false);
                    } else {
                        self.refuse_content(&why, false, EndScan::line_start());
                    }
                }
            }
            Expect::DataEnd => {
                self.end_transaction(ok);
                self.to_client.extend(bytes);
            }
            Expect::HiddenRset => self.end_transaction(false),
        }
        self.flush_locals();
    }
}

/// The client's verdict on a message the upstream would not take, from
/// its reply to our DATA: that reply's last line, re-sent as ours, when it
/// is a 4xx or 5xx refusal; printable ASCII only. Anything else (a 2xx, or
/// bytes that are no reply) must not reach the client as the verdict on a
/// message that was never sent: a temporary failure instead.
fn reply_text(bytes: &[u8]) -> String {
    let last = bytes
        .trim_ascii_end()
        .rsplit(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    let refusal = matches!(last.first(), Some(b'4' | b'5'))
        && last.get(1..3).is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && matches!(last.get(3), None | Some(b' '));
    if !refusal {
        return reply::DATA_NOT_TAKEN.to_owned();
    }
    let text: String = last
        .iter()
        .filter(|b| (0x20..0x7f).contains(*b))
        .map(|&b| char::from(b))
        .collect();
    text.trim_end().to_owned()
}

fn metrics_header_line_too_long() {
    metrics::counter!(crate::ops::metrics::CLIENT_ERRORS_TOTAL, "protocol" => "smtp", "kind" => "header_line_too_long")
        .increment(1);
}

mod content;
mod inspector;

#[cfg(test)]
mod tests;
