//! The relay for sessions under the keep-on-server guard: like
//! [`crate::relay::relay`] (bounded buffers, half-close aware, idle
//! timeout, live byte counts), but client bytes go through the
//! [`DeleGuard`] and the upstream's are split where its replies go.
//!
//! One task drives both directions, so the guard needs no lock; a
//! direction that cannot write holds only itself and the guard's bounded
//! queue stops reading the client while the upstream is behind.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::guard::{DeleGuard, Segment};
use crate::metrics as m;
use crate::relay::{ByteCounter, RelayEnd, RelayOptions, RelayStats};

/// Relays under the guard until the upstream closes, one side fails, or the
/// session is idle for `opts.idle_timeout`. `pipelined` are client bytes
/// that arrived with the login, checked like any others.
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
    let mut stats = RelayStats::default();
    let refusals = metrics::counter!(m::PEC_CHECKS_TOTAL, "check" => "pop3_dele", "result" => "refused");
    let mut refused = 0;
    let mut client_buf = vec![0u8; opts.buffer_bytes];
    let mut upstream_buf = vec![0u8; opts.buffer_bytes];
    let mut client_open = true;
    let mut last_activity = Instant::now();

    let mut sides = Sides {
        stats: &mut stats,
        counter,
        refusals: &refusals,
        refused: &mut refused,
    };
    if let Err(end) = sides
        .forward_client(&mut guard, pipelined, &mut upstream_w, &mut client_w)
        .await
    {
        return (stats, end);
    }
    tokio::pin!(stop);
    let end = loop {
        let idle = tokio::time::sleep_until(last_activity + opts.idle_timeout);
        tokio::select! {
            // The drain's grace period is over: close, writing nothing more.
            _ = &mut stop => break RelayEnd::Shutdown,
            r = client_r.read(&mut client_buf), if client_open && guard.wants_client_input() => match r {
                Ok(0) => {
                    client_open = false;
                    // The upstream sees the client go; POP3 then deletes
                    // nothing (RFC 1939 §6: only QUIT enters UPDATE).
                    let _ = upstream_w.shutdown().await;
                }
                // A client closing TCP without close_notify ends its stream.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    client_open = false;
                    let _ = upstream_w.shutdown().await;
                }
                Ok(n) => {
                    last_activity = Instant::now();
                    let mut sides = Sides { stats: &mut stats, counter, refusals: &refusals, refused: &mut refused };
                    if let Err(end) = sides.forward_client(&mut guard, &client_buf[..n], &mut upstream_w, &mut client_w).await {
                        break end;
                    }
                }
                Err(e) => break RelayEnd::ClientError(e),
            },
            r = upstream_r.read(&mut upstream_buf) => match r {
                Ok(0) => {
                    let _ = client_w.shutdown().await;
                    break RelayEnd::Closed;
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    let _ = client_w.shutdown().await;
                    break RelayEnd::Closed;
                }
                Ok(n) => {
                    last_activity = Instant::now();
                    let chunk = &upstream_buf[..n];
                    let mut written = 0u64;
                    let mut failed = None;
                    for segment in guard.scan_upstream(chunk) {
                        let bytes = match segment {
                            Segment::Upstream(range) => &chunk[range],
                            Segment::Local(reply) => reply,
                        };
                        if let Err(e) = client_w.write_all(bytes).await {
                            failed = Some(e);
                            break;
                        }
                        written += bytes.len() as u64;
                    }
                    if let Some(e) = failed {
                        break RelayEnd::ClientError(e);
                    }
                    if let Err(e) = client_w.flush().await {
                        break RelayEnd::ClientError(e);
                    }
                    stats.upstream_to_client += written;
                    counter.upstream_to_client(written);
                }
                Err(e) => break RelayEnd::UpstreamError(e),
            },
            _ = idle => break RelayEnd::IdleTimeout,
        }
    };
    (stats, end)
}

/// The counters a client chunk updates.
struct Sides<'a> {
    stats: &'a mut RelayStats,
    counter: &'a dyn ByteCounter,
    refusals: &'a metrics::Counter,
    refused: &'a mut u64,
}

impl Sides<'_> {
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
        if guard.refused() > *self.refused {
            self.refusals.increment(guard.refused() - *self.refused);
            *self.refused = guard.refused();
        }
        write(upstream_w, &out.to_upstream)
            .await
            .map_err(RelayEnd::UpstreamError)?;
        write(client_w, &out.to_client)
            .await
            .map_err(RelayEnd::ClientError)?;
        let (up, down) = (out.to_upstream.len() as u64, out.to_client.len() as u64);
        self.stats.client_to_upstream += up;
        self.stats.upstream_to_client += down;
        self.counter.client_to_upstream(up);
        self.counter.upstream_to_client(down);
        Ok(())
    }
}

async fn write<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    w.write_all(bytes).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::duplex;

    use super::*;
    use crate::pop3::guard::DELE_REFUSAL;
    use crate::relay::NoCounter;

    fn opts() -> RelayOptions {
        RelayOptions {
            buffer_bytes: 1024,
            idle_timeout: Duration::from_secs(600),
        }
    }

    #[tokio::test]
    async fn pipelined_dele_is_refused_in_order_and_never_reaches_the_server() {
        let (client, mut client_peer) = duplex(4096);
        let (upstream, mut server) = duplex(4096);
        let task = tokio::spawn(async move {
            relay(
                client,
                upstream,
                DeleGuard::new(255),
                b"STAT\r\n",
                opts(),
                &NoCounter,
                std::future::pending(),
            )
            .await
        });
        client_peer
            .write_all(b"DELE 1\r\nLIST\r\nQUIT\r\n")
            .await
            .unwrap();
        let mut got = vec![0u8; 18];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"STAT\r\nLIST\r\nQUIT\r\n");
        server
            .write_all(b"+OK 1 5\r\n+OK 1 messages\r\n1 5\r\n.\r\n+OK Logging out.\r\n")
            .await
            .unwrap();
        drop(server);
        let mut all = Vec::new();
        client_peer.read_to_end(&mut all).await.unwrap();
        let mut want = b"+OK 1 5\r\n".to_vec();
        want.extend_from_slice(DELE_REFUSAL);
        want.extend_from_slice(b"+OK 1 messages\r\n1 5\r\n.\r\n+OK Logging out.\r\n");
        assert_eq!(String::from_utf8(all).unwrap(), String::from_utf8(want).unwrap());
        let (stats, end) = task.await.unwrap();
        assert!(matches!(end, RelayEnd::Closed), "{end:?}");
        assert_eq!(stats.client_to_upstream, 18);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_sessions_time_out() {
        let (client, _client_peer) = duplex(64);
        let (upstream, _server) = duplex(64);
        let (_, end) = relay(
            client,
            upstream,
            DeleGuard::new(255),
            b"",
            opts(),
            &NoCounter,
            std::future::pending(),
        )
        .await;
        assert!(matches!(end, RelayEnd::IdleTimeout), "{end:?}");
    }
}
