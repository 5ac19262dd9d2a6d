//! The byte relay after login: copies both ways with bounded buffers,
//! half-close aware, under an idle timeout, counting bytes per direction.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Bytes moved, per direction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayStats {
    pub client_to_upstream: u64,
    pub upstream_to_client: u64,
}

/// Why a relay ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// Both sides closed their sending half.
    Closed,
    /// Nothing moved either way for the idle timeout.
    IdleTimeout,
    /// The client's side failed (reset, TLS error).
    ClientError(io::Error),
    /// The upstream's side failed.
    UpstreamError(io::Error),
    /// The proxy is shutting down and the grace period is over.
    Shutdown,
}

impl RelayEnd {
    /// Short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            RelayEnd::Closed => "closed",
            RelayEnd::IdleTimeout => "idle_timeout",
            RelayEnd::ClientError(_) => "client_error",
            RelayEnd::UpstreamError(_) => "upstream_error",
            RelayEnd::Shutdown => "shutdown",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RelayOptions {
    pub buffer_bytes: usize,
    pub idle_timeout: Duration,
}

/// Called with each chunk's size as it is relayed, so metrics stay live for
/// sessions that last hours.
pub trait ByteCounter: Sync {
    fn client_to_upstream(&self, n: u64);
    fn upstream_to_client(&self, n: u64);
}

/// A counter that counts nothing, for tests.
pub struct NoCounter;
impl ByteCounter for NoCounter {
    fn client_to_upstream(&self, _: u64) {}
    fn upstream_to_client(&self, _: u64) {}
}

enum PumpError {
    Read(io::Error),
    Write(io::Error),
}

/// Relays until both directions have closed, one side fails, or the
/// session is idle for `opts.idle_timeout`.
pub async fn relay<C, U>(
    client: C,
    upstream: U,
    opts: RelayOptions,
    counter: &dyn ByteCounter,
) -> (RelayStats, RelayEnd)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    relay_until(client, upstream, opts, counter, std::future::pending()).await
}

/// [`relay`], also ending with [`RelayEnd::Shutdown`] when `stop` completes
/// (a drain's grace period is over). Nothing is injected into the stream:
/// mid-response, a goodbye line would corrupt what the client is parsing.
pub async fn relay_until<C, U>(
    client: C,
    upstream: U,
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
    let start = Instant::now();
    // Milliseconds since `start` of the last byte moved in either direction.
    let last_activity = AtomicU64::new(0);
    let c2u_bytes = AtomicU64::new(0);
    let u2c_bytes = AtomicU64::new(0);

    let count_c2u = |n| counter.client_to_upstream(n);
    let count_u2c = |n| counter.upstream_to_client(n);
    let c2u = pump(
        &mut client_r,
        &mut upstream_w,
        opts.buffer_bytes,
        start,
        &last_activity,
        &c2u_bytes,
        &count_c2u,
    );
    let u2c = pump(
        &mut upstream_r,
        &mut client_w,
        opts.buffer_bytes,
        start,
        &last_activity,
        &u2c_bytes,
        &count_u2c,
    );
    let idle = async {
        loop {
            let last = start + Duration::from_millis(last_activity.load(Ordering::Relaxed));
            let deadline = last + opts.idle_timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    tokio::pin!(c2u, u2c, idle, stop);
    let (mut c2u_done, mut u2c_done) = (false, false);
    let end = loop {
        tokio::select! {
            r = &mut c2u, if !c2u_done => match r {
                Ok(()) => c2u_done = true,
                Err(PumpError::Read(e)) => break RelayEnd::ClientError(e),
                Err(PumpError::Write(e)) => break RelayEnd::UpstreamError(e),
            },
            r = &mut u2c, if !u2c_done => match r {
                Ok(()) => u2c_done = true,
                Err(PumpError::Read(e)) => break RelayEnd::UpstreamError(e),
                Err(PumpError::Write(e)) => break RelayEnd::ClientError(e),
            },
            _ = &mut idle => break RelayEnd::IdleTimeout,
            _ = &mut stop => break RelayEnd::Shutdown,
        }
        if c2u_done && u2c_done {
            break RelayEnd::Closed;
        }
    };
    let stats = RelayStats {
        client_to_upstream: c2u_bytes.load(Ordering::Relaxed),
        upstream_to_client: u2c_bytes.load(Ordering::Relaxed),
    };
    (stats, end)
}

/// Copies one direction until EOF, then half-closes the destination so the
/// other direction can finish (an IMAP server still sends its `BYE`).
async fn pump<R, W>(
    r: &mut R,
    w: &mut W,
    buffer_bytes: usize,
    start: Instant,
    last_activity: &AtomicU64,
    total: &AtomicU64,
    count: &(dyn Fn(u64) + Sync),
) -> Result<(), PumpError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; buffer_bytes];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(n) => n,
            // Many clients close TCP without a TLS close_notify after LOGOUT:
            // that is an end of stream, not a failure.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(PumpError::Read(e)),
        };
        if n == 0 {
            // The peer may already be gone; a failed shutdown is no error of the session.
            let _ = w.shutdown().await;
            return Ok(());
        }
        w.write_all(&buf[..n]).await.map_err(PumpError::Write)?;
        w.flush().await.map_err(PumpError::Write)?;
        total.fetch_add(n as u64, Ordering::Relaxed);
        count(n as u64);
        last_activity.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    fn opts() -> RelayOptions {
        RelayOptions {
            buffer_bytes: 1024,
            idle_timeout: Duration::from_secs(1800),
        }
    }

    #[tokio::test]
    async fn copies_both_ways_and_honours_half_close() {
        let (client, mut client_peer) = duplex(64);
        let (upstream, mut upstream_peer) = duplex(64);
        let task = tokio::spawn(async move { relay(client, upstream, opts(), &NoCounter).await });

        client_peer.write_all(b"a LOGOUT\r\n").await.unwrap();
        let mut got = [0u8; 10];
        upstream_peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"a LOGOUT\r\n");
        // The client closes its side; the server still answers, then closes.
        client_peer.shutdown().await.unwrap();
        let mut eof = [0u8; 1];
        assert_eq!(
            upstream_peer.read(&mut eof).await.unwrap(),
            0,
            "half-close reaches the upstream"
        );
        upstream_peer.write_all(b"* BYE\r\na OK\r\n").await.unwrap();
        drop(upstream_peer);
        let mut rest = Vec::new();
        client_peer.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"* BYE\r\na OK\r\n");

        let (stats, end) = task.await.unwrap();
        assert!(matches!(end, RelayEnd::Closed), "{end:?}");
        assert_eq!(
            stats,
            RelayStats {
                client_to_upstream: 10,
                upstream_to_client: 13
            }
        );
    }

    #[tokio::test]
    async fn a_stop_ends_the_relay_with_its_counts() {
        let (client, mut client_peer) = duplex(64);
        let (upstream, mut upstream_peer) = duplex(64);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stop = async {
                let _ = stop_rx.await;
            };
            relay_until(client, upstream, opts(), &NoCounter, stop).await
        });
        client_peer.write_all(b"a IDLE\r\n").await.unwrap();
        let mut got = [0u8; 8];
        upstream_peer.read_exact(&mut got).await.unwrap();
        stop_tx.send(()).unwrap();
        let (stats, end) = task.await.unwrap();
        assert!(matches!(end, RelayEnd::Shutdown), "{end:?}");
        assert_eq!(stats.client_to_upstream, 8);
        let mut rest = Vec::new();
        client_peer.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "nothing injected, the stream just closes");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_sessions_time_out_and_activity_postpones_it() {
        let (client, mut client_peer) = duplex(64);
        let (upstream, mut upstream_peer) = duplex(64);
        let task = tokio::spawn(async move { relay(client, upstream, opts(), &NoCounter).await });
        tokio::time::sleep(Duration::from_secs(1700)).await;
        client_peer.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        upstream_peer.read_exact(&mut one).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1700)).await;
        assert!(!task.is_finished(), "activity at 1700 s postpones the timeout");
        tokio::time::sleep(Duration::from_secs(200)).await;
        let (_, end) = task.await.unwrap();
        assert!(matches!(end, RelayEnd::IdleTimeout), "{end:?}");
    }
}
