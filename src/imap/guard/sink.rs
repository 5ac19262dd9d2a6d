//! Where the guard's output goes: the relay's [`Output`] (bytes under
//! inspection passed on without a copy), or [`Sent`], collected, for tests
//! and fuzzing.

use crate::relay::guarded::Output;

/// Where the guard's output goes: the relay's [`Output`], or [`Sent`].
pub(super) trait Sink {
    /// Passes `range` of the bytes under inspection on to the other side.
    fn pass(&mut self, range: std::ops::Range<usize>);
    fn for_client(&mut self, bytes: &[u8]);
    fn for_upstream(&mut self, bytes: &[u8]);
}

impl Sink for Output {
    fn pass(&mut self, range: std::ops::Range<usize>) {
        Output::pass(self, range);
    }
    fn for_client(&mut self, bytes: &[u8]) {
        Output::for_client(self, bytes);
    }
    fn for_upstream(&mut self, bytes: &[u8]) {
        Output::for_upstream(self, bytes);
    }
}

/// What the guard sent each way after some bytes, collected (for tests
/// and fuzzing: the relay takes an [`Output`] instead, without copies).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sent {
    pub to_upstream: Vec<u8>,
    pub to_client: Vec<u8>,
}

pub(super) struct Collect<'a> {
    pub(super) input: &'a [u8],
    pub(super) input_to_client: bool,
    pub(super) sent: Sent,
}

impl Sink for Collect<'_> {
    fn pass(&mut self, range: std::ops::Range<usize>) {
        let bytes = &self.input[range];
        if self.input_to_client {
            self.sent.to_client.extend_from_slice(bytes);
        } else {
            self.sent.to_upstream.extend_from_slice(bytes);
        }
    }
    fn for_client(&mut self, bytes: &[u8]) {
        self.sent.to_client.extend_from_slice(bytes);
    }
    fn for_upstream(&mut self, bytes: &[u8]) {
        self.sent.to_upstream.extend_from_slice(bytes);
    }
}
