//! A front-end's buffer of bytes received before login, and where in it
//! the next line feed is looked for.

use std::ops::Deref;

use bytes::{Buf, BytesMut};

/// Bytes received and not consumed yet, scanned for line feeds so that
/// every byte is scanned once and a command is handed to its parser only
/// when a line of it has ended: a line sent one byte per read costs what it
/// costs sent whole (CPU per byte constant, never a parse of the whole
/// buffer per read).
#[derive(Debug, Default)]
pub struct Input {
    bytes: BytesMut,
    /// Bytes before this offset hold no line feed the parser has not been
    /// told of (or are an IMAP literal's data, which is not scanned).
    scanned: usize,
    /// Bytes handed to the parser so far, for the bound on parse work.
    parsed: u64,
}

impl Input {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            bytes: BytesMut::with_capacity(capacity),
            ..Self::default()
        }
    }

    /// Bytes received from the client.
    pub fn extend(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
    }

    /// Drops the first `n` bytes (a command was consumed); the scan keeps
    /// its place in what is left.
    pub fn advance(&mut self, n: usize) {
        self.bytes.advance(n);
        self.scanned = self.scanned.saturating_sub(n);
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.scanned = 0;
    }

    /// Whether a line feed has arrived at or after the scanned offset; the
    /// offset moves just past it (or to the end), so the same bytes are not
    /// scanned again.
    pub fn line_ended(&mut self) -> bool {
        let from = self.scanned.min(self.bytes.len());
        match self.bytes[from..].iter().position(|&b| b == b'\n') {
            Some(at) => {
                self.scanned = from + at + 1;
                true
            }
            None => {
                // Never back: a skip may reach past what has arrived.
                self.scanned = self.scanned.max(self.bytes.len());
                false
            }
        }
    }

    /// Bytes up to `offset` are not to be scanned (an IMAP literal's data).
    pub fn skip_to(&mut self, offset: usize) {
        self.scanned = self.scanned.max(offset);
    }

    /// Just past the line feed found by the last [`Input::line_ended`] that
    /// said yes.
    pub fn scanned(&self) -> usize {
        self.scanned
    }

    /// Records that a parser is about to read `bytes` of the buffer, for
    /// the bound on parse work a front-end states ([`Input::parsed`]). A
    /// line parser called just after [`Input::line_ended`] said yes reads
    /// no further than [`Input::scanned`].
    pub fn parsing(&mut self, bytes: usize) {
        self.parsed = self.parsed.saturating_add(bytes as u64);
    }

    /// Whether a line has ended ([`Input::line_ended`]), the line parser
    /// about to read the buffer up to it recorded as parse work.
    pub fn line_to_parse(&mut self) -> bool {
        let ended = self.line_ended();
        if ended {
            self.parsing(self.scanned);
        }
        ended
    }

    /// Bytes handed to the parser so far.
    pub fn parsed(&self) -> u64 {
        self.parsed
    }

    /// The bytes left, for the session after a login (pipelined commands).
    pub fn into_bytes(self) -> BytesMut {
        self.bytes
    }
}

impl Deref for Input {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests;
