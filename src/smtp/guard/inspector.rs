//! The [`Guard`] in the guarded relay: each event is passed on to the
//! guard, and what it queued goes out; and what the guard makes of the
//! client's end of stream.

use std::time::Duration;

use super::{Guard, Mode};
use crate::relay::guarded::{Inspector, Output, UpstreamClosed};
use crate::smtp::reply;

/// RFC 5321 §4.5.3.2.6: a client waits 10 minutes for the reply to the
/// final dot; the proxy waits as long for the upstream's.
const DATA_VERDICT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

impl Guard {
    /// The client's stream ended. What it sent before is still relayed:
    /// see [`Guard::holds_client_input`].
    pub fn client_closed(&mut self) {
        self.client_gone = true;
    }

    /// Whether client bytes held now may still go upstream once the
    /// upstream answers: a command waiting for the verdicts before it (or
    /// for room in the pipeline), a header block waiting for the 354.
    /// What is left is an incomplete line or message, which never goes.
    pub fn holds_client_input(&self) -> bool {
        if self.finished || self.quit_sent {
            return false;
        }
        match self.mode {
            Mode::AwaitingGoAhead { .. } => true,
            // A complete line that was not taken is waiting.
            Mode::Commands => self.client_in.contains(&b'\n'),
            Mode::Header { .. } | Mode::Body { .. } | Mode::Swallow { .. } => false,
        }
    }

    fn send_queued(&mut self, out: &mut Output) {
        out.for_upstream(&self.take_to_upstream());
        out.for_client(&self.take_to_client());
    }
}

impl Inspector for Guard {
    /// Also sends what the guard queued for the bytes it was built with.
    fn client_data(&mut self, data: &[u8], out: &mut Output) {
        Guard::client_data(self, data);
        self.send_queued(out);
    }

    fn upstream_data(&mut self, data: &[u8], out: &mut Output) {
        Guard::upstream_data(self, data);
        self.send_queued(out);
    }

    fn client_closed(&mut self, out: &mut Output) {
        Guard::client_closed(self);
        self.send_queued(out);
    }

    fn upstream_closed(&mut self, out: &mut Output) -> UpstreamClosed {
        let lost = Guard::upstream_closed(self);
        self.send_queued(out);
        if lost {
            UpstreamClosed::Lost
        } else {
            UpstreamClosed::Expected
        }
    }

    fn wants_client_input(&self) -> bool {
        Guard::wants_client_input(self)
    }

    fn holds_client_input(&self) -> bool {
        Guard::holds_client_input(self)
    }

    fn finished(&self) -> bool {
        Guard::finished(self)
    }

    fn idle_timeout(&self, configured: Duration) -> Duration {
        if self.awaiting_message_verdict() {
            configured.max(DATA_VERDICT_TIMEOUT)
        } else {
            configured
        }
    }

    fn timed_out(&mut self, out: &mut Output) {
        out.for_client(&reply::line(reply::IDLE_TIMEOUT));
    }
}
