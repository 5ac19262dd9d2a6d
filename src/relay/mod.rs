//! The byte relay after login: copies both ways with bounded buffers,
//! half-close aware, under an idle timeout, counting bytes per direction.
//! [`guarded`] is the same relay for sessions whose bytes a pure inspector
//! reads on the way (POP3's DELE guard, SMTP's PEC checks).

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

pub mod guarded;

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
    /// The I/O error that ended the relay, if one did: for the log.
    pub fn error(&self) -> Option<&io::Error> {
        match self {
            RelayEnd::ClientError(e) | RelayEnd::UpstreamError(e) => Some(e),
            _ => None,
        }
    }

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

/// Largest read of the [`guarded`] relay (POP3's DELE guard, SMTP's PEC
/// checks): one TLS record's worth, whatever `relay_buffer_bytes` says,
/// so what an inspector makes of one read stays small.
pub const GUARDED_BUFFER_BYTES: usize = 16 * 1024;

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
#[cfg(test)]
pub struct NoCounter;
#[cfg(test)]
impl ByteCounter for NoCounter {
    fn client_to_upstream(&self, _: u64) {}
    fn upstream_to_client(&self, _: u64) {}
}

/// Relays until both directions have closed, one side fails, or the
/// session is idle for `opts.idle_timeout` (for tests: sessions always
/// have a stop signal).
#[cfg(test)]
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

/// Relays until both directions have closed, one side fails, the session
/// is idle for `opts.idle_timeout`, or `stop` completes (a drain's grace
/// period is over: [`RelayEnd::Shutdown`]). Nothing is injected into the stream:
/// mid-response, a goodbye line would corrupt what the client is parsing.
///
/// Memory: an idle session holds no relay buffer. Reads go into a scratch
/// buffer owned by the worker thread and are written on at once; only what
/// the destination cannot take now is copied into a per-direction buffer,
/// released when the burst is over. IMAP clients sit in IDLE for hours, and
/// two 16 KiB buffers per session were most of an idle session's memory.
/// Both directions are driven from one future without `split`, so there
/// is no lock between the halves of a TLS stream either.
pub async fn relay_until<C, U>(
    mut client: C,
    mut upstream: U,
    opts: RelayOptions,
    counter: &dyn ByteCounter,
    stop: impl Future<Output = ()>,
) -> (RelayStats, RelayEnd)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    // Milliseconds since `start` of the last byte moved in either direction.
    let last_activity = AtomicU64::new(0);
    let mut c2u = Direction::default();
    let mut u2c = Direction::default();
    let chunk = opts.buffer_bytes.max(1);
    let transfer = std::future::poll_fn(|cx| {
        let mark = || last_activity.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        let c2u_poll = c2u.poll(cx, &mut client, &mut upstream, chunk, &|n| {
            counter.client_to_upstream(n);
            mark();
        });
        match c2u_poll {
            Poll::Ready(Err(PumpError::Read(e))) => return Poll::Ready(RelayEnd::ClientError(e)),
            Poll::Ready(Err(PumpError::Write(e))) => return Poll::Ready(RelayEnd::UpstreamError(e)),
            Poll::Ready(Ok(())) | Poll::Pending => {}
        }
        let u2c_poll = u2c.poll(cx, &mut upstream, &mut client, chunk, &|n| {
            counter.upstream_to_client(n);
            mark();
        });
        match u2c_poll {
            Poll::Ready(Err(PumpError::Read(e))) => return Poll::Ready(RelayEnd::UpstreamError(e)),
            Poll::Ready(Err(PumpError::Write(e))) => return Poll::Ready(RelayEnd::ClientError(e)),
            Poll::Ready(Ok(())) | Poll::Pending => {}
        }
        if c2u.closed && u2c.closed {
            Poll::Ready(RelayEnd::Closed)
        } else {
            Poll::Pending
        }
    });
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
    let end = tokio::select! {
        end = transfer => end,
        _ = idle => RelayEnd::IdleTimeout,
        _ = stop => RelayEnd::Shutdown,
    };
    let stats = RelayStats {
        client_to_upstream: c2u.total,
        upstream_to_client: u2c.total,
    };
    (stats, end)
}

enum PumpError {
    Read(io::Error),
    Write(io::Error),
}

thread_local! {
    /// Each worker thread's read buffer, shared by every session it runs:
    /// filled by one `poll_read` and emptied by the writes right after, so
    /// it is never held across a wait. Sized to the largest chunk asked for.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` bytes of this worker thread's [`SCRATCH`] buffer.
/// `f` must not wait: whatever it keeps of the buffer, it copies.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with(|scratch| {
        let Ok(mut scratch) = scratch.try_borrow_mut() else {
            // Re-entered from inside a read or write: cannot happen
            // with tokio's streams, but stay correct if it does.
            return f(&mut vec![0u8; len]);
        };
        if scratch.len() < len {
            scratch.resize(len, 0);
        }
        f(&mut scratch[..len])
    })
}

/// One direction of the relay.
#[derive(Default)]
struct Direction {
    /// Read but not yet accepted by the destination. Empty (unallocated)
    /// unless the destination pushed back.
    pending: Vec<u8>,
    /// How much of `pending` has been written.
    written: usize,
    /// Written, but the destination's flush has not completed yet.
    needs_flush: bool,
    /// The source reached end of stream.
    eof: bool,
    /// End of stream passed on: this direction is finished.
    closed: bool,
    total: u64,
}

impl Direction {
    /// Copies from `r` to `w` until `r` would block (`Pending`), or this
    /// direction finishes (`Ready(Ok)`) or fails.
    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
        w: &mut W,
        chunk: usize,
        moved: &dyn Fn(u64),
    ) -> Poll<Result<(), PumpError>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        loop {
            // What the destination pushed back on goes first.
            while self.written < self.pending.len() {
                let n = ready!(Pin::new(&mut *w).poll_write(cx, &self.pending[self.written..]))
                    .map_err(PumpError::Write)?;
                if n == 0 {
                    return Poll::Ready(Err(PumpError::Write(io::ErrorKind::WriteZero.into())));
                }
                self.written += n;
            }
            if self.needs_flush {
                ready!(Pin::new(&mut *w).poll_flush(cx)).map_err(PumpError::Write)?;
                self.needs_flush = false;
            }
            if self.eof {
                // The peer may already be gone; a failed shutdown is no error of the session.
                let _ = ready!(Pin::new(&mut *w).poll_shutdown(cx));
                self.closed = true;
                return Poll::Ready(Ok(()));
            }
            // Nothing buffered: read into the thread's scratch buffer and
            // write straight from it.
            let step = with_scratch(chunk, |buf| self.read_and_write(cx, r, w, buf, moved));
            match step {
                Poll::Ready(Ok(())) => continue,
                other => return other,
            }
        }
    }

    /// One read into `buf` and the writes of what it got; whatever the
    /// destination does not take now is kept in `pending`.
    fn read_and_write<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
        w: &mut W,
        buf: &mut [u8],
        moved: &dyn Fn(u64),
    ) -> Poll<Result<(), PumpError>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut read_buf = ReadBuf::new(buf);
        match Pin::new(&mut *r).poll_read(cx, &mut read_buf) {
            Poll::Pending => {
                // The burst is over: give its buffer back.
                self.pending = Vec::new();
                self.written = 0;
                return Poll::Pending;
            }
            // Many clients close TCP without a TLS close_notify after LOGOUT:
            // that is an end of stream, not a failure.
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(PumpError::Read(e))),
            Poll::Ready(Ok(())) => {}
        }
        let data = read_buf.filled();
        if data.is_empty() {
            self.eof = true;
            return Poll::Ready(Ok(()));
        }
        let n = data.len();
        self.total += n as u64;
        moved(n as u64);
        self.needs_flush = true;
        let mut off = 0;
        while off < n {
            match Pin::new(&mut *w).poll_write(cx, &data[off..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(PumpError::Write(io::ErrorKind::WriteZero.into())));
                }
                Poll::Ready(Ok(k)) => off += k,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(PumpError::Write(e))),
                Poll::Pending => {
                    self.pending.clear();
                    self.pending.extend_from_slice(&data[off..]);
                    self.written = 0;
                    return Poll::Pending;
                }
            }
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests;
