//! What an [`Inspector`](super::Inspector) sends on: pure, so an inspector
//! stays free of I/O, and in pieces, so bytes it passes on unchanged are
//! written from the relay's read buffer without a copy.

use std::ops::Range;

use super::Side;

/// What an [`Inspector`](super::Inspector) sends on, in order for each side.
#[derive(Debug)]
pub struct Output {
    pub(super) client: Lane,
    pub(super) upstream: Lane,
    /// Where [`Output::pass`] sends the bytes under inspection: the other side.
    pass_to: Side,
}

impl Output {
    pub(super) fn new(pass_to: Side) -> Self {
        Self {
            client: Lane::default(),
            upstream: Lane::default(),
            pass_to,
        }
    }

    /// Bytes of the inspector's own for the client (a reply it gives).
    pub fn for_client(&mut self, bytes: &[u8]) {
        self.client.own(bytes);
    }

    /// Bytes for the upstream.
    pub fn for_upstream(&mut self, bytes: &[u8]) {
        self.upstream.own(bytes);
    }

    /// Passes `range` of the bytes under inspection on to the other side as
    /// they are, without a copy: the relay writes them from its read
    /// buffer. Only from [`client_data`](super::Inspector::client_data) and
    /// [`upstream_data`](super::Inspector::upstream_data): elsewhere there
    /// are no such bytes, and a range is out of bounds.
    pub fn pass(&mut self, range: Range<usize>) {
        match self.pass_to {
            Side::Client => self.client.input(range),
            Side::Upstream => self.upstream.input(range),
        }
    }
}

/// What goes to one side: pieces, in order, of the bytes under inspection
/// and of the inspector's own.
#[derive(Debug, Default)]
pub(super) struct Lane {
    own: Vec<u8>,
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Input(Range<usize>),
    Own(Range<usize>),
}

impl Lane {
    fn own(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let start = self.own.len();
        self.own.extend_from_slice(bytes);
        let end = self.own.len();
        match self.pieces.last_mut() {
            Some(Piece::Own(last)) => last.end = end,
            _ => self.pieces.push(Piece::Own(start..end)),
        }
    }

    fn input(&mut self, range: Range<usize>) {
        if range.is_empty() {
            return;
        }
        match self.pieces.last_mut() {
            Some(Piece::Input(last)) if last.end == range.start => last.end = range.end,
            _ => self.pieces.push(Piece::Input(range)),
        }
    }

    pub(super) fn slices<'a>(&'a self, input: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
        self.pieces.iter().map(move |piece| match piece {
            Piece::Input(r) => &input[r.clone()],
            Piece::Own(r) => &self.own[r.clone()],
        })
    }
}
