//! The post-login IMAP guard, for sessions whose principal may not change
//! everything: a collaborator without `write` (read-only) and a mailbox or
//! collaborator that keeps messages on the server. It reads the client's
//! commands and answers `NO [NOPERM]` itself to those the policy refuses
//! ([`command::verdict`]), which never reach the server; it sends `SELECT`
//! as `EXAMINE` for read-only sessions and `CLOSE` as `UNSELECT`; and it
//! takes `COMPRESS=` out of the capabilities the server announces
//! (compressed traffic cannot be read; `COMPRESS` itself is refused).
//! Owners and collaborators with every right keep the plain relay.
//!
//! Pure: bytes in, bytes out; [`crate::relay::guarded`] does the I/O,
//! through the [`Inspector`] at the end of this file.
//!
//! # The invariant, and how the framing keeps it
//!
//! The server receives only whole commands the guard has read and allowed,
//! and literal data of those commands. Literal data is passed on unread,
//! so the guard must agree with the server on where it is:
//!
//! - a line is forwarded only if its framing has one reading
//!   ([`command::framing`]);
//! - literal data is forwarded only once the server has asked for it with
//!   `+`: proof that it read the announcement as a literal. Until then the
//!   guard stops reading the client. If the server answers the command
//!   instead (a `BAD`, a literal too large), the bytes that follow are read
//!   as commands again. A non-synchronising literal (`{n+}`, RFC 7888) is
//!   sent on as a synchronising one, and the server's `+` is not relayed:
//!   the client is already sending the data;
//! - so that a `+` or a tagged answer is never taken for another
//!   command's, a command that waits for a `+` (a literal, `IDLE`) is
//!   forwarded only once every command before it has been answered (tags
//!   need not be unique: a client may reuse one), and nothing more is
//!   forwarded until its `+` (after `IDLE`, then only `DONE` goes on) or
//!   its answer. `AUTHENTICATE` after login is refused.
//!
//! The server's responses are followed too (lines, and their literals by
//! count, unread), to find its `+`, its tagged answers, and the places
//! between responses where the guard's own replies may go.
//!
//! # Bounds
//!
//! - a client command line, literals excluded: [`MAX_LINE_BYTES`]; a longer
//!   one is answered `BAD` and dropped as it arrives (its first 1 KiB kept
//!   for the tag);
//! - client bytes held while the guard waits for the server: what one read
//!   brought (the relay reads at most 16 KiB, and no more while held);
//! - replies of the guard waiting for the server to finish a response:
//!   [`MAX_PENDING_BYTES`] plus one reply, then the client is not read;
//! - a server response line is held whole up to [`MAX_SERVER_HEAD_BYTES`]
//!   (to rewrite a capability list); a longer one passes on as it comes,
//!   unchanged.

mod command;
mod response;
mod sink;

pub use command::Access;
use command::{Head, LineEnd, Verdict};
pub use response::strip_capabilities;
use response::{rewrite_capabilities, server_literal};
pub use sink::Sent;
use sink::{Collect, Sink};

use crate::imap::reply::{self, Tagged};
use crate::ops::metrics as m;
use crate::relay::guarded::{Inspector, Output};

/// Longest client command line, literals excluded: Dovecot's
/// `imap_max_line_length` default (64 KiB). Longer than before login's 8
/// KiB: clients send long UID sets after login.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Most bytes of the guard's own replies waiting for the server's current
/// response to end; beyond, the client is not read until they are written.
pub const MAX_PENDING_BYTES: usize = 16 * 1024;

/// Longest server line held whole (to take `COMPRESS=` out of a capability
/// list: Dovecot's is under 1 KiB). A longer line passes on unchanged;
/// `COMPRESS` is refused anyway.
pub const MAX_SERVER_HEAD_BYTES: usize = 4096;

/// What is kept of a line too long, for its tag.
const KEPT_OF_LONG_LINE: usize = 1024;

/// What the guard does with the current command.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// Forwarded: its next lines go on.
    Forwarded,
    /// Refused: its next lines are dropped, then the refusal is owed.
    Refused,
    /// The server answered it before its literal's data came: the data
    /// and its next lines are dropped.
    ServerAnswered,
}

/// What the guard waits for from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// `+` for a literal; `client_sends` when the client announced it
    /// non-synchronising (the `+` is then not relayed).
    Literal { length: u64, client_sends: bool },
    /// `+` for `IDLE`.
    Idle,
}

/// Where the client's stream is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Client {
    /// The next line starts a command.
    Command,
    /// The next line goes on with a command, after a literal's data.
    Continue { tag: Vec<u8>, answer: Answer },
    /// A literal's data.
    Literal {
        remaining: u64,
        tag: Vec<u8>,
        answer: Answer,
    },
    /// Nothing is read until the server sends `+` or answers `tag`.
    AwaitServer { tag: Vec<u8>, wait: Wait },
    /// Nothing is read until every forwarded command is answered: the
    /// held bytes start with a command that will wait for a `+`.
    AwaitQuiet,
    /// In `IDLE`: only `DONE` goes on.
    Idling { tag: Vec<u8> },
}

/// Where the server's stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    /// Reading a line into `head`; `continuation` when it goes on with a
    /// response after a literal (it does not start one).
    Head { continuation: bool },
    /// The rest of a line longer than the head, passed on (or dropped) as
    /// it comes.
    Rest { drop: bool },
    /// A literal's data.
    Literal(u64),
}

/// The guard's state for one session.
#[derive(Debug)]
pub struct ImapGuard {
    access: Access,
    client: Client,
    /// The client's current, incomplete line (bounded).
    line: Vec<u8>,
    /// The current line outgrew [`MAX_LINE_BYTES`]: dropped up to its LF.
    too_long: bool,
    /// Client bytes read while the guard waits for the server.
    held: Vec<u8>,
    /// Replies of the guard waiting for the server's response to end.
    pending: Vec<u8>,
    server: Server,
    /// The server's current line, up to [`MAX_SERVER_HEAD_BYTES`].
    head: Vec<u8>,
    /// The last bytes of a long server line, for its literal announcement.
    tail: Vec<u8>,
    /// Commands forwarded and not answered yet (a count: no memory).
    outstanding: u64,
    refused: u64,
}

/// Where client bytes being read come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum From {
    /// The bytes under inspection: literal data passes without a copy.
    Input,
    /// Bytes the guard held.
    Held,
}

impl ImapGuard {
    pub fn new(access: Access) -> Self {
        Self {
            access,
            client: Client::Command,
            line: Vec::new(),
            too_long: false,
            held: Vec::new(),
            pending: Vec::new(),
            server: Server::Head { continuation: false },
            head: Vec::new(),
            tail: Vec::new(),
            outstanding: 0,
            refused: 0,
        }
    }

    /// How many commands were refused so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Bytes held: the client's partial line, bytes waiting for the server,
    /// replies waiting, the server's partial line.
    pub fn buffered(&self) -> usize {
        self.line.len() + self.held.len() + self.pending.len() + self.head.len() + self.tail.len()
    }

    fn refusal(&self) -> Tagged {
        match self.access {
            Access::ReadOnly => reply::GUARD_READ_ONLY,
            Access::KeepOnServer => reply::GUARD_KEEP_ON_SERVER,
        }
    }

    /// Whether reading the client waits for the server.
    fn paused(&self) -> bool {
        matches!(self.client, Client::AwaitServer { .. } | Client::AwaitQuiet)
            || self.pending.len() >= MAX_PENDING_BYTES
    }

    /// Whether the server's stream is between two responses.
    fn at_boundary(&self) -> bool {
        self.server == (Server::Head { continuation: false }) && self.head.is_empty()
    }

    /// A reply of the guard's: written now if the server is between
    /// responses, else when its current one ends.
    fn owe(&mut self, reply: &[u8], out: &mut impl Sink) {
        if self.pending.is_empty() && self.at_boundary() {
            out.for_client(reply);
        } else {
            self.pending.extend_from_slice(reply);
        }
    }

    /// Reads client bytes. `data` is the input under inspection
    /// ([`From::Input`]) or bytes held before.
    fn client_bytes(&mut self, data: &[u8], from: From, out: &mut impl Sink) {
        let mut i = 0;
        while i < data.len() {
            if self.paused() {
                self.held.extend_from_slice(&data[i..]);
                return;
            }
            if let Client::Literal {
                remaining,
                tag,
                answer,
            } = &mut self.client
            {
                let n = (data.len() - i).min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                *remaining -= n as u64;
                if *answer == Answer::Forwarded {
                    match from {
                        From::Input => out.pass(i..i + n),
                        From::Held => out.for_upstream(&data[i..i + n]),
                    }
                }
                i += n;
                if *remaining == 0 {
                    self.client = Client::Continue {
                        tag: std::mem::take(tag),
                        answer: answer.clone(),
                    };
                }
                continue;
            }
            let rest = &data[i..];
            let (piece, ended) = match rest.iter().position(|&b| b == b'\n') {
                Some(p) => (&rest[..=p], true),
                None => (rest, false),
            };
            i += piece.len();
            if !self.too_long {
                if self.line.len() + piece.len() > MAX_LINE_BYTES {
                    self.too_long = true;
                    let keep = KEPT_OF_LONG_LINE.saturating_sub(self.line.len()).min(piece.len());
                    self.line.extend_from_slice(&piece[..keep]);
                    self.line.truncate(KEPT_OF_LONG_LINE);
                } else {
                    self.line.extend_from_slice(piece);
                }
            }
            if ended {
                let line = std::mem::take(&mut self.line);
                let framing = if std::mem::take(&mut self.too_long) {
                    Err("command line too long")
                } else {
                    let continuation = matches!(self.client, Client::Continue { .. });
                    command::framing(&line, continuation)
                };
                self.client_line(&line, framing, out);
                self.line = line;
                self.line.clear();
            }
        }
    }

    /// One whole client line (LF included), and how it frames.
    fn client_line(&mut self, line: &[u8], framing: Result<LineEnd, &'static str>, out: &mut impl Sink) {
        match std::mem::replace(&mut self.client, Client::Command) {
            Client::Command => self.first_line(line, framing, out),
            Client::Continue { tag, answer } => self.next_line(line, framing, tag, answer, out),
            Client::Idling { tag } => {
                let body = line.strip_suffix(b"\n").unwrap_or(line);
                let body = body.strip_suffix(b"\r").unwrap_or(body);
                if body.eq_ignore_ascii_case(b"DONE") {
                    out.for_upstream(line);
                } else {
                    // RFC 2177: nothing but DONE while idling.
                    let reply = match command::leading_tag(line) {
                        Some(tag) => reply::GUARD_EXPECTED_DONE.to(tag),
                        None => reply::GUARD_EXPECTED_DONE.to(b"*"),
                    };
                    self.owe(&reply, out);
                    self.client = Client::Idling { tag };
                }
            }
            Client::Literal { .. } | Client::AwaitServer { .. } | Client::AwaitQuiet => {
                unreachable!("lines are not read in these states")
            }
        }
    }

    /// The first line of a command.
    fn first_line(&mut self, line: &[u8], framing: Result<LineEnd, &'static str>, out: &mut impl Sink) {
        let (end, head) =
            match framing.and_then(|end| command::head(line).map(|h| (end, h)).ok_or("no command")) {
                Ok(ok) => ok,
                Err(why) => {
                    let reply = reply::invalid_command(command::leading_tag(line), why);
                    return self.owe(&reply, out);
                }
            };
        let literal = matches!(end, LineEnd::Literal { .. });
        let tag = head.tag.to_vec();
        match command::verdict(self.access, &head, literal) {
            Verdict::Forward { rename } => {
                let idle = !head.uid && head.name.eq_ignore_ascii_case(b"IDLE");
                if (idle || literal) && self.outstanding > 0 {
                    // Read again once the server is quiet: the loop holds
                    // what follows behind it.
                    let after = std::mem::take(&mut self.held);
                    self.held = line.to_vec();
                    self.held.extend_from_slice(&after);
                    self.client = Client::AwaitQuiet;
                    return;
                }
                self.outstanding += 1;
                out.for_upstream(&rewritten(line, &head, rename, end));
                self.client = match end {
                    LineEnd::Literal { length, sync, .. } => Client::AwaitServer {
                        tag,
                        wait: Wait::Literal {
                            length,
                            client_sends: !sync,
                        },
                    },
                    LineEnd::Command if idle => Client::AwaitServer {
                        tag,
                        wait: Wait::Idle,
                    },
                    LineEnd::Command => Client::Command,
                };
            }
            Verdict::Refuse => {
                self.refused += 1;
                self.end_or_drop(end, tag, Answer::Refused, out);
            }
        }
    }

    /// A line that goes on with a command after a literal's data.
    fn next_line(
        &mut self,
        line: &[u8],
        framing: Result<LineEnd, &'static str>,
        tag: Vec<u8>,
        answer: Answer,
        out: &mut impl Sink,
    ) {
        match (answer, framing) {
            (Answer::Forwarded, Ok(LineEnd::Command)) => out.for_upstream(line),
            (Answer::Forwarded, Ok(end @ LineEnd::Literal { length, sync, .. })) => {
                out.for_upstream(&sync_literal(line, end));
                self.client = Client::AwaitServer {
                    tag,
                    wait: Wait::Literal {
                        length,
                        client_sends: !sync,
                    },
                };
            }
            // The server has the command's start: end it there, and let
            // the server answer it.
            (Answer::Forwarded, Err(_)) => out.for_upstream(b"\r\n"),
            (answer, Ok(end)) => self.end_or_drop(end, tag, answer, out),
            (answer, Err(_)) => self.end_or_drop(LineEnd::Command, tag, answer, out),
        }
    }

    /// A command not forwarded, at the end of one of its lines: over (the
    /// refusal is owed), or a non-synchronising literal to drop first.
    fn end_or_drop(&mut self, end: LineEnd, tag: Vec<u8>, answer: Answer, out: &mut impl Sink) {
        match end {
            LineEnd::Literal {
                length, sync: false, ..
            } => {
                self.client = Client::Literal {
                    remaining: length,
                    tag,
                    answer,
                };
                self.literal_done_if_empty();
            }
            // A synchronising literal is not sent before a `+`: the answer
            // ends the command.
            LineEnd::Literal { sync: true, .. } | LineEnd::Command => {
                if answer == Answer::Refused {
                    let reply = self.refusal().to(&tag);
                    self.owe(&reply, out);
                }
            }
        }
    }

    fn literal_done_if_empty(&mut self) {
        if let Client::Literal {
            remaining: 0,
            tag,
            answer,
        } = &self.client
        {
            self.client = Client::Continue {
                tag: tag.clone(),
                answer: answer.clone(),
            };
        }
    }

    /// Reads held client bytes, while the guard need not wait.
    fn resume(&mut self, out: &mut impl Sink) {
        while !self.paused() && !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            self.client_bytes(&held, From::Held, out);
        }
    }

    /// Reads server bytes: they go on to the client (a capability list
    /// rewritten, a `+` the client did not ask for dropped), with the
    /// guard's replies between responses.
    fn server_bytes(&mut self, data: &[u8], out: &mut impl Sink) {
        let mut i = 0;
        while i < data.len() {
            match self.server {
                Server::Literal(remaining) => {
                    let n = (data.len() - i).min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    out.pass(i..i + n);
                    i += n;
                    let remaining = remaining - n as u64;
                    self.server = if remaining == 0 {
                        Server::Head { continuation: true }
                    } else {
                        Server::Literal(remaining)
                    };
                }
                Server::Head { continuation } => {
                    let rest = &data[i..];
                    let room = MAX_SERVER_HEAD_BYTES - self.head.len();
                    match rest.iter().position(|&b| b == b'\n') {
                        Some(p) if p < room => {
                            self.head.extend_from_slice(&rest[..=p]);
                            i += p + 1;
                            let line = std::mem::take(&mut self.head);
                            let drop = !continuation && self.response_start(&line);
                            if !drop {
                                out.for_client(&rewrite_capabilities(&line));
                            }
                            self.line_ended(&line, out);
                            self.head = line;
                            self.head.clear();
                        }
                        _ => {
                            let n = rest.len().min(room);
                            self.head.extend_from_slice(&rest[..n]);
                            i += n;
                            if self.head.len() == MAX_SERVER_HEAD_BYTES {
                                let head = std::mem::take(&mut self.head);
                                let drop = !continuation && self.response_start(&head);
                                if !drop {
                                    out.for_client(&head);
                                }
                                self.keep_tail(&head);
                                self.server = Server::Rest { drop };
                            }
                        }
                    }
                }
                Server::Rest { drop } => {
                    let rest = &data[i..];
                    let (n, ended) = match rest.iter().position(|&b| b == b'\n') {
                        Some(p) => (p + 1, true),
                        None => (rest.len(), false),
                    };
                    if !drop {
                        out.pass(i..i + n);
                    }
                    self.keep_tail(&rest[..n]);
                    i += n;
                    if ended {
                        let tail = std::mem::take(&mut self.tail);
                        self.line_ended(&tail, out);
                    }
                }
            }
        }
    }

    /// Keeps the last bytes of a long line, where a literal is announced.
    fn keep_tail(&mut self, bytes: &[u8]) {
        const TAIL: usize = 32;
        self.tail
            .extend_from_slice(&bytes[bytes.len().saturating_sub(TAIL)..]);
        let excess = self.tail.len().saturating_sub(TAIL);
        self.tail.drain(..excess);
    }

    /// A server line ended (`end` is it, or its last bytes): a literal
    /// follows, or the response is over and the guard's replies and the
    /// held client bytes may go.
    fn line_ended(&mut self, end: &[u8], out: &mut impl Sink) {
        match server_literal(end) {
            Some(0) => self.server = Server::Head { continuation: true },
            Some(n) => self.server = Server::Literal(n),
            None => {
                self.server = Server::Head { continuation: false };
                if !self.pending.is_empty() {
                    out.for_client(&std::mem::take(&mut self.pending));
                }
                self.resume(out);
            }
        }
    }

    /// The start of a server response: a `+` or a tagged answer the guard
    /// waits for moves the client's state on. Whether to drop the line (a
    /// `+` the client did not ask for).
    fn response_start(&mut self, line: &[u8]) -> bool {
        if !line.starts_with(b"+") && !line.starts_with(b"*") {
            self.outstanding = self.outstanding.saturating_sub(1);
            if self.outstanding == 0 && self.client == Client::AwaitQuiet {
                self.client = Client::Command;
            }
        }
        let tagged = |tag: &[u8]| line.starts_with(tag) && line.get(tag.len()) == Some(&b' ');
        match std::mem::replace(&mut self.client, Client::Command) {
            Client::AwaitServer { tag, wait } if line.starts_with(b"+") => match wait {
                Wait::Literal { length, client_sends } => {
                    self.client = Client::Literal {
                        remaining: length,
                        tag,
                        answer: Answer::Forwarded,
                    };
                    self.literal_done_if_empty();
                    client_sends
                }
                Wait::Idle => {
                    self.client = Client::Idling { tag };
                    false
                }
            },
            Client::AwaitServer { tag, wait } if tagged(&tag) => {
                if let Wait::Literal {
                    length,
                    client_sends: true,
                } = wait
                {
                    // The client sends the data anyway: dropped.
                    self.client = Client::Literal {
                        remaining: length,
                        tag,
                        answer: Answer::ServerAnswered,
                    };
                    self.literal_done_if_empty();
                }
                false
            }
            // The server ended IDLE itself.
            Client::Idling { tag } if tagged(&tag) => false,
            other => {
                self.client = other;
                false
            }
        }
    }
}

/// A command's first line as it goes on: the name replaced where the
/// policy says, a non-synchronising literal made synchronising.
fn rewritten(line: &[u8], head: &Head<'_>, rename: Option<&[u8]>, end: LineEnd) -> Vec<u8> {
    let line = sync_literal(line, end);
    match rename {
        None => line,
        Some(name) => {
            let mut out = Vec::with_capacity(line.len() + name.len());
            out.extend_from_slice(&line[..head.name_at]);
            out.extend_from_slice(name);
            out.extend_from_slice(&line[head.name_at + head.name.len()..]);
            out
        }
    }
}

/// `{n+}` CRLF at the end of `line` made `{n}` CRLF.
fn sync_literal(line: &[u8], end: LineEnd) -> Vec<u8> {
    match end {
        LineEnd::Literal { sync: false, .. } => {
            let mut out = line[..line.len() - 4].to_vec();
            out.extend_from_slice(b"}\r\n");
            out
        }
        _ => line.to_vec(),
    }
}

impl ImapGuard {
    /// Reads bytes the client sent; says what goes on each way.
    pub fn client_sent(&mut self, data: &[u8]) -> Sent {
        let mut out = Collect {
            input: data,
            input_to_client: false,
            sent: Sent::default(),
        };
        self.client_bytes(data, From::Input, &mut out);
        out.sent
    }

    /// Reads bytes the server sent; says what goes on each way.
    pub fn server_sent(&mut self, data: &[u8]) -> Sent {
        let mut out = Collect {
            input: data,
            input_to_client: true,
            sent: Sent::default(),
        };
        self.server_bytes(data, &mut out);
        out.sent
    }

    /// Whether the relay may read the client now ([`Inspector::wants_client_input`]).
    pub fn wants_client(&self) -> bool {
        !self.paused() && self.held.is_empty()
    }
}

/// The guard in the guarded relay.
impl Inspector for ImapGuard {
    fn client_data(&mut self, data: &[u8], out: &mut Output) {
        let refused = self.refused;
        self.client_bytes(data, From::Input, out);
        if self.refused > refused {
            metrics::counter!(m::PEC_CHECKS_TOTAL, "check" => "imap_guard", "result" => "refused")
                .increment(self.refused - refused);
        }
    }

    fn upstream_data(&mut self, data: &[u8], out: &mut Output) {
        let refused = self.refused;
        self.server_bytes(data, out);
        if self.refused > refused {
            metrics::counter!(m::PEC_CHECKS_TOTAL, "check" => "imap_guard", "result" => "refused")
                .increment(self.refused - refused);
        }
    }

    fn wants_client_input(&self) -> bool {
        self.wants_client()
    }

    fn holds_client_input(&self) -> bool {
        !self.held.is_empty()
    }
}

#[cfg(test)]
mod tests;
