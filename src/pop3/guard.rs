//! The keep-on-server guard (`pop3_delete = deny`): after login it reads the
//! client's POP3 command lines and answers `DELE` itself, without
//! forwarding it, so a later `QUIT` removes nothing from a mailbox others
//! read over IMAP (a shared mailbox's messages stay on the server for
//! every collaborator: the providers' "keep on server" setting).
//!
//! Pure: bytes in, bytes out; [`crate::relay::guarded`] does the I/O,
//! through the [`Inspector`] at the end of this file.
//!
//! # Order of replies under pipelining (RFC 2449 §6.6)
//!
//! A client may send `DELE 1\r\nSTAT\r\n` in one packet. The refusal of
//! `DELE` must reach it before the upstream's answer to `STAT`, and after
//! the answers to every command it sent earlier. So the guard keeps the
//! replies it owes the client in order: one entry per forwarded command
//! (answered by the upstream) or per refused one (answered by us). The
//! upstream's answers are tracked as they stream by, without buffering
//! them: a status line, and for the multi-line answers (`RETR`, `TOP`,
//! `LIST`/`UIDL` without argument, `CAPA`) the lines up to the lone `.`
//! (RFC 1939 §3; a line starting with `..` is byte-stuffed content). Our own
//! refusal is written as soon as everything before it has been.

use std::collections::VecDeque;
use std::ops::Range;

use crate::ops::metrics as m;
use crate::relay::guarded::{Inspector, Output};

/// The refusal of `DELE` (RFC 3206 §4: `SYS/PERM`, retrying will not help).
pub const DELE_REFUSAL: &[u8] =
    b"-ERR [SYS/PERM] This mailbox is shared: messages are kept on the server\r\n";

/// Most replies owed to the client at once. Beyond, the session stops
/// reading the client until the upstream catches up: this bounds the queue
/// whatever a client pipelines. 1024 commands is far more than any client
/// pipelines (Thunderbird sends at most a window of RETRs).
pub const MAX_OUTSTANDING: usize = 1024;

/// What the client is owed, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owed {
    /// The upstream's answer to a forwarded command.
    Upstream { multiline: bool },
    /// A reply of ours (the command was not forwarded).
    Local(&'static [u8]),
}

/// Where the scanner is in the upstream's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// At the first byte of a response.
    Start,
    /// In the status line; `multiline` if a body follows it when it is `+OK`.
    Status {
        positive: bool,
        multiline: bool,
        tracked: bool,
    },
    /// In a multi-line body, at the start of a line.
    LineStart,
    /// In a body line after a leading `.`.
    Dot,
    /// After `.` CR at the start of a line.
    DotCr,
    /// Inside a body line.
    Line,
}

/// What the last byte scanned ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    No,
    /// The response to the command at the front of the queue.
    Tracked,
    /// A line nobody asked for (passed through).
    Untracked,
}

impl Ended {
    /// The end of a status line, `tracked` if it answers the front command.
    fn line(tracked: bool) -> Self {
        if tracked { Ended::Tracked } else { Ended::Untracked }
    }
}

/// A piece of what goes to the client: a range of the upstream chunk just
/// scanned, or a reply of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Upstream(Range<usize>),
    Local(&'static [u8]),
}

/// The guard's state for one session.
#[derive(Debug)]
pub struct DeleGuard {
    max_line_bytes: usize,
    /// The client's current, incomplete command line (bounded).
    line: Vec<u8>,
    /// The current line outgrew the limit; its bytes are dropped until LF.
    discarding: bool,
    owed: VecDeque<Owed>,
    scan: Scan,
    refused: u64,
}

/// The output of feeding client bytes to the guard.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ClientOutput {
    /// Bytes to forward upstream (whole command lines).
    pub to_upstream: Vec<u8>,
    /// Replies of ours that may be written to the client now.
    pub to_client: Vec<u8>,
}

impl DeleGuard {
    /// `max_line_bytes` bounds a client command line (RFC 2449 §4: 255).
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            max_line_bytes,
            line: Vec::with_capacity(64),
            discarding: false,
            owed: VecDeque::new(),
            scan: Scan::Start,
            refused: 0,
        }
    }

    /// How many `DELE` commands were refused so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Bytes of the client's current, incomplete command line held: at most
    /// `max_line_bytes` (a longer line is dropped as it arrives).
    pub fn buffered(&self) -> usize {
        self.line.len()
    }

    /// Whether the session may read more client input now.
    pub fn wants_client_input(&self) -> bool {
        self.owed.len() < MAX_OUTSTANDING
    }

    /// Feeds bytes the client sent. Complete command lines are forwarded
    /// or answered; a partial line is kept for the next call.
    pub fn check_client(&mut self, data: &[u8]) -> ClientOutput {
        let mut out = ClientOutput::default();
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(nl + 1);
            rest = tail;
            if self.discarding {
                self.discarding = false;
                self.owe_local(b"-ERR Command line too long\r\n", &mut out);
                continue;
            }
            if self.line.len() + head.len() > self.max_line_bytes {
                self.line.clear();
                self.owe_local(b"-ERR Command line too long\r\n", &mut out);
                continue;
            }
            self.line.extend_from_slice(head);
            let line = std::mem::take(&mut self.line);
            self.command_line(&line, &mut out);
            self.line = line;
            self.line.clear();
        }
        if !self.discarding {
            if self.line.len() + rest.len() > self.max_line_bytes {
                self.line.clear();
                self.discarding = true;
            } else {
                self.line.extend_from_slice(rest);
            }
        }
        out
    }

    fn command_line(&mut self, line: &[u8], out: &mut ClientOutput) {
        // `keyword = 3*4VCHAR` (RFC 2449 §3): the visible characters at the
        // start, however the line goes on. Dovecot splits at SP, but reads
        // the line as a C string ("DELE\0 1" is DELE there); other servers
        // split at any white space ("DELE\t1"). What any of them could read
        // as DELE is refused.
        let keyword_end = line
            .iter()
            .position(|b| !b.is_ascii_graphic())
            .unwrap_or(line.len());
        let keyword = &line[..keyword_end];
        let has_argument = line.get(keyword_end) == Some(&b' ');
        let is = |k: &[u8]| keyword.eq_ignore_ascii_case(k);
        if is(b"DELE") {
            self.refused += 1;
            self.owe_local(DELE_REFUSAL, out);
            return;
        }
        // RFC 1939 §§5-7, RFC 2449 §5: the commands whose positive answer
        // is multi-line. LIST and UIDL are only with no argument.
        let multiline =
            is(b"RETR") || is(b"TOP") || is(b"CAPA") || ((is(b"LIST") || is(b"UIDL")) && !has_argument);
        self.owed.push_back(Owed::Upstream { multiline });
        out.to_upstream.extend_from_slice(line);
    }

    /// A reply of ours: written now if nothing is owed before it and the
    /// upstream is not in the middle of a line nobody asked for (a
    /// farewell split across reads): ours waits for that line's end.
    fn owe_local(&mut self, reply: &'static [u8], out: &mut ClientOutput) {
        if self.owed.is_empty() && self.scan == Scan::Start {
            out.to_client.extend_from_slice(reply);
        } else {
            self.owed.push_back(Owed::Local(reply));
        }
    }

    /// Scans a chunk the upstream sent and says what to write to the
    /// client, in order: the chunk itself, split where replies of ours go
    /// between two of the upstream's responses.
    pub fn scan_upstream(&mut self, chunk: &[u8]) -> Vec<Segment> {
        let mut segments = Vec::new();
        let mut from = 0;
        let mut i = 0;
        while i < chunk.len() {
            if matches!(self.scan, Scan::Line | Scan::Status { .. }) {
                // Inside a line only its end matters: skip to it at memchr
                // speed instead of stepping through a message byte by byte.
                match chunk[i..].iter().position(|&b| b == b'\n') {
                    Some(p) => i += p,
                    None => break,
                }
            }
            let b = chunk[i];
            let ended = self.step(b);
            if ended != Ended::No {
                // A response (or a line nobody asked for) ended at byte i.
                if ended == Ended::Tracked {
                    debug_assert!(matches!(self.owed.front(), Some(Owed::Upstream { .. })));
                    self.owed.pop_front();
                }
                let mut locals = self.take_ready_locals().peekable();
                if locals.peek().is_some() {
                    segments.push(Segment::Upstream(from..i + 1));
                    from = i + 1;
                    segments.extend(locals.map(Segment::Local));
                }
            }
            i += 1;
        }
        if from < chunk.len() {
            segments.push(Segment::Upstream(from..chunk.len()));
        }
        segments
    }

    /// Our replies now at the front of the queue.
    fn take_ready_locals(&mut self) -> impl Iterator<Item = &'static [u8]> + '_ {
        std::iter::from_fn(|| match self.owed.front() {
            Some(Owed::Local(reply)) => {
                let reply = *reply;
                self.owed.pop_front();
                Some(reply)
            }
            _ => None,
        })
    }

    /// Advances the scanner by one byte; says whether a response ended there.
    fn step(&mut self, b: u8) -> Ended {
        let (next, ended) = match self.scan {
            Scan::Start => {
                let (multiline, tracked) = match self.owed.front() {
                    Some(Owed::Upstream { multiline }) => (*multiline, true),
                    // Nothing is owed (e.g. a server's farewell before it
                    // closes): a single line, passed through.
                    _ => (false, false),
                };
                let status = Scan::Status {
                    positive: b == b'+',
                    multiline,
                    tracked,
                };
                if b == b'\n' {
                    (Scan::Start, Ended::line(tracked))
                } else {
                    (status, Ended::No)
                }
            }
            Scan::Status {
                positive,
                multiline,
                tracked,
            } => match b {
                b'\n' if positive && multiline => (Scan::LineStart, Ended::No),
                b'\n' => (Scan::Start, Ended::line(tracked)),
                _ => (self.scan, Ended::No),
            },
            Scan::LineStart => match b {
                b'.' => (Scan::Dot, Ended::No),
                b'\n' => (Scan::LineStart, Ended::No),
                _ => (Scan::Line, Ended::No),
            },
            Scan::Dot => match b {
                b'\r' => (Scan::DotCr, Ended::No),
                // A lone "." ended by a bare LF: tolerated as the end.
                b'\n' => (Scan::Start, Ended::Tracked),
                // ".." and ".x": byte-stuffed content.
                _ => (Scan::Line, Ended::No),
            },
            Scan::DotCr => match b {
                b'\n' => (Scan::Start, Ended::Tracked),
                _ => (Scan::Line, Ended::No),
            },
            Scan::Line => match b {
                b'\n' => (Scan::LineStart, Ended::No),
                _ => (Scan::Line, Ended::No),
            },
        };
        self.scan = next;
        ended
    }
}

/// The guard in the guarded relay. The client's end of stream needs nothing
/// of it: the relay passes it on, and the upstream then deletes nothing
/// (RFC 1939 §6: only QUIT enters UPDATE). Nor does the upstream's: the
/// replies of ours still owed would follow answers that never came.
impl Inspector for DeleGuard {
    fn client_data(&mut self, data: &[u8], out: &mut Output) {
        let refused = self.refused;
        let checked = self.check_client(data);
        if self.refused > refused {
            metrics::counter!(m::PEC_CHECKS_TOTAL, "check" => "pop3_dele", "result" => "refused")
                .increment(self.refused - refused);
        }
        out.for_upstream(&checked.to_upstream);
        out.for_client(&checked.to_client);
    }

    /// The upstream's bytes go to the client as they are, without a copy,
    /// with our replies between its responses where they are due.
    fn upstream_data(&mut self, data: &[u8], out: &mut Output) {
        for segment in self.scan_upstream(data) {
            match segment {
                Segment::Upstream(range) => out.pass(range),
                Segment::Local(reply) => out.for_client(reply),
            }
        }
    }

    fn wants_client_input(&self) -> bool {
        DeleGuard::wants_client_input(self)
    }
}

#[cfg(test)]
mod tests;
