//! Stopping in two phases, shared by every session driver.
//!
//! **Draining** (SIGTERM): listeners stop accepting; sessions still before
//! login are told goodbye in their own protocol and closed; relaying sessions
//! carry on. **Closing** (the grace period is over, or SIGINT): relays end.
//! A session driver needs two lines: its pre-login phase runs under
//! [`Shutdown::or_draining`] (writing its protocol's goodbye with
//! [`goodbye`] when that returns `None`), and its relay under
//! [`crate::relay::relay_until`] with [`Shutdown::closing`].

use std::future::Future;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::net::Stream;

/// How long a goodbye may take: a client that stopped reading must not hold
/// the session (or the drain) open.
pub const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// The process's shutdown state, cloned into every listener context.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    closing: CancellationToken,
    /// A child of `closing`: closing implies draining.
    draining: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        let closing = CancellationToken::new();
        let draining = closing.child_token();
        Self { closing, draining }
    }

    /// Stop taking new sessions; pre-login sessions say goodbye.
    pub(crate) fn start_draining(&self) {
        self.draining.cancel();
    }

    /// End every session now.
    pub(crate) fn close(&self) {
        self.closing.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    /// Completes when draining starts (SIGTERM or SIGINT).
    pub async fn draining(&self) {
        self.draining.cancelled().await
    }

    /// Completes when relaying sessions must end (grace period over, or SIGINT).
    pub async fn closing(&self) {
        self.closing.cancelled().await
    }

    /// Runs `work` (a session's pre-login phase) unless draining starts
    /// first, in which case `work` is dropped and `None` returned: the
    /// caller then says its protocol's goodbye.
    pub async fn or_draining<F: Future>(&self, work: F) -> Option<F::Output> {
        tokio::select! {
            out = work => Some(out),
            () = self.draining() => None,
        }
    }
}

/// Best effort: writes `line` (the protocol's goodbye) and closes, within
/// [`GOODBYE_TIMEOUT`].
pub async fn goodbye(stream: Option<Stream>, line: &[u8]) {
    let Some(mut s) = stream else { return };
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
        s.write_all(line).await?;
        s.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests;
