//! The relay for sessions under the keep-on-server guard: like
//! [`crate::relay::relay`] (bounded buffers, half-close aware, idle
//! timeout, live byte counts), but client bytes go through the
//! [`DeleGuard`] and the upstream's are split where its replies go.
//!
//! One task drives both directions, so the guard needs no lock; a
//! direction that cannot write holds only itself and the guard's bounded
//! queue stops reading the client while the upstream is behind.
//!
//! Every write waits under the same bounds as the reads: the idle timeout
//! (no byte moved either way) and the stop signal. A client that asks for
//! a message and stops reading must not hold the session for ever: the
//! upstream session it keeps open holds Dovecot's POP3 lock on the
//! mailbox, and every other POP3 login to it gets `[IN-USE]`.

use std::io;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::guard::{DeleGuard, Segment};
use crate::ops::metrics as m;
use crate::relay::{ByteCounter, RelayEnd, RelayOptions, RelayStats};

/// Relays under the guard until the upstream closes, one side fails, the
/// session is idle for `opts.idle_timeout`, or `stop` completes.
/// `pipelined` are client bytes that arrived with the login, checked like
/// any others.
pub async fn relay<C, U>(
    client: C,
    upstream: U,
    mut guard: DeleGuard,
    pipelined: &[u8],
    opts: RelayOptions,
    counter: &dyn ByteCounter,
    stop: impl Future<Output = ()>,
) -> (RelayStats, RelayEnd)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (mut upstream_r, mut upstream_w) = tokio::io::split(upstream);
    let refusals = metrics::counter!(m::PEC_CHECKS_TOTAL, "check" => "pop3_dele", "result" => "refused");
    let mut client_buf = vec![0u8; opts.buffer_bytes];
    let mut upstream_buf = vec![0u8; opts.buffer_bytes];
    let mut client_open = true;
    tokio::pin!(stop);
    let mut s = Session {
        stats: RelayStats::default(),
        counter,
        refusals: &refusals,
        refused: 0,
        bounds: Bounds {
            idle_timeout: opts.idle_timeout,
            last_activity: Instant::now(),
            stop,
        },
    };

    if let Err(end) = s
        .forward_client(&mut guard, pipelined, &mut upstream_w, &mut client_w)
        .await
    {
        return (s.stats, end);
    }
    let end = loop {
        let idle = tokio::time::sleep_until(s.bounds.deadline());
        tokio::select! {
            // The drain's grace period is over: close, writing nothing more.
            () = s.bounds.stop.as_mut() => break RelayEnd::Shutdown,
            r = client_r.read(&mut client_buf), if client_open && guard.wants_client_input() => match r {
                Ok(0) => {
                    client_open = false;
                    // The upstream sees the client go; POP3 then deletes
                    // nothing (RFC 1939 §6: only QUIT enters UPDATE).
                    if let Err(end) = s.bounds.wait(upstream_w.shutdown()).await {
                        break end;
                    }
                }
                // A client closing TCP without close_notify ends its stream.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    client_open = false;
                    if let Err(end) = s.bounds.wait(upstream_w.shutdown()).await {
                        break end;
                    }
                }
                Ok(n) => {
                    s.bounds.moved();
                    if let Err(end) = s.forward_client(&mut guard, &client_buf[..n], &mut upstream_w, &mut client_w).await {
                        break end;
                    }
                }
                Err(e) => break RelayEnd::ClientError(e),
            },
            r = upstream_r.read(&mut upstream_buf) => match r {
                Ok(0) => {
                    let _ = s.bounds.wait(client_w.shutdown()).await;
                    break RelayEnd::Closed;
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    let _ = s.bounds.wait(client_w.shutdown()).await;
                    break RelayEnd::Closed;
                }
                Ok(n) => {
                    s.bounds.moved();
                    if let Err(end) = s.forward_upstream(&mut guard, &upstream_buf[..n], &mut client_w).await {
                        break end;
                    }
                }
                Err(e) => break RelayEnd::UpstreamError(e),
            },
            () = idle => break RelayEnd::IdleTimeout,
        }
    };
    (s.stats, end)
}

/// The session's idle clock and stop signal, which bound every wait on a
/// peer, writes included.
struct Bounds<S> {
    idle_timeout: Duration,
    /// When a byte last moved either way.
    last_activity: Instant,
    stop: Pin<S>,
}

impl<S> Bounds<S>
where
    S: std::ops::DerefMut,
    S::Target: Future<Output = ()>,
{
    fn deadline(&self) -> Instant {
        self.last_activity + self.idle_timeout
    }

    fn moved(&mut self) {
        self.last_activity = Instant::now();
    }

    /// `work`, unless the session goes idle or `stop` completes first.
    async fn wait<F: Future>(&mut self, work: F) -> Result<F::Output, RelayEnd> {
        tokio::select! {
            out = work => Ok(out),
            () = tokio::time::sleep_until(self.deadline()) => Err(RelayEnd::IdleTimeout),
            () = self.stop.as_mut() => Err(RelayEnd::Shutdown),
        }
    }

    /// Writes all of `bytes`; each write that moves bytes postpones the
    /// idle deadline, as in [`crate::relay`]: a slow reader is not idle, a
    /// reader that stopped is. `side` says whose error an I/O error is.
    async fn write_all<W: AsyncWrite + Unpin>(
        &mut self,
        w: &mut W,
        bytes: &[u8],
        side: fn(io::Error) -> RelayEnd,
    ) -> Result<(), RelayEnd> {
        let mut off = 0;
        while off < bytes.len() {
            match self.wait(w.write(&bytes[off..])).await? {
                Ok(0) => return Err(side(io::ErrorKind::WriteZero.into())),
                Ok(n) => off += n,
                Err(e) => return Err(side(e)),
            }
            self.moved();
        }
        Ok(())
    }

    async fn flush<W: AsyncWrite + Unpin>(
        &mut self,
        w: &mut W,
        side: fn(io::Error) -> RelayEnd,
    ) -> Result<(), RelayEnd> {
        self.wait(w.flush()).await?.map_err(side)
    }
}

/// What one session's relay keeps besides its streams.
struct Session<'a, S> {
    stats: RelayStats,
    counter: &'a dyn ByteCounter,
    refusals: &'a metrics::Counter,
    refused: u64,
    bounds: Bounds<S>,
}

impl<S> Session<'_, S>
where
    S: std::ops::DerefMut,
    S::Target: Future<Output = ()>,
{
    /// Checks client bytes, forwards what passes, writes the replies that
    /// are due.
    async fn forward_client<UW, CW>(
        &mut self,
        guard: &mut DeleGuard,
        data: &[u8],
        upstream_w: &mut UW,
        client_w: &mut CW,
    ) -> Result<(), RelayEnd>
    where
        UW: AsyncWrite + Unpin,
        CW: AsyncWrite + Unpin,
    {
        let out = guard.check_client(data);
        if guard.refused() > self.refused {
            self.refusals.increment(guard.refused() - self.refused);
            self.refused = guard.refused();
        }
        if !out.to_upstream.is_empty() {
            let b = &mut self.bounds;
            b.write_all(upstream_w, &out.to_upstream, RelayEnd::UpstreamError)
                .await?;
            b.flush(upstream_w, RelayEnd::UpstreamError).await?;
            let up = out.to_upstream.len() as u64;
            self.stats.client_to_upstream += up;
            self.counter.client_to_upstream(up);
        }
        if !out.to_client.is_empty() {
            let b = &mut self.bounds;
            b.write_all(client_w, &out.to_client, RelayEnd::ClientError)
                .await?;
            b.flush(client_w, RelayEnd::ClientError).await?;
            let down = out.to_client.len() as u64;
            self.stats.upstream_to_client += down;
            self.counter.upstream_to_client(down);
        }
        Ok(())
    }

    /// Writes a chunk from the upstream to the client, with our replies
    /// where they go between its responses.
    async fn forward_upstream<CW: AsyncWrite + Unpin>(
        &mut self,
        guard: &mut DeleGuard,
        chunk: &[u8],
        client_w: &mut CW,
    ) -> Result<(), RelayEnd> {
        for segment in guard.scan_upstream(chunk) {
            let bytes = match segment {
                Segment::Upstream(range) => &chunk[range],
                Segment::Local(reply) => reply,
            };
            self.bounds
                .write_all(client_w, bytes, RelayEnd::ClientError)
                .await?;
            self.stats.upstream_to_client += bytes.len() as u64;
            self.counter.upstream_to_client(bytes.len() as u64);
        }
        self.bounds.flush(client_w, RelayEnd::ClientError).await
    }
}

#[cfg(test)]
mod tests;
