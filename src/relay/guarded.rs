//! The guarded relay: [`super::relay_until`] for sessions whose bytes an
//! [`Inspector`] reads on the way. The inspector is a pure state machine
//! (no I/O, no tokio): told what each side sends and when it closes, it
//! says what goes on to each side. POP3's keep-on-server DELE guard,
//! SMTP's PEC guard and IMAP's rights guard are the three.
//!
//! As in the plain relay, one future drives both directions, so there is
//! neither `split` nor a lock between the halves of a TLS stream; reads go
//! into the worker thread's scratch buffer, what the inspector passes on
//! is written straight from it, and only what a destination pushes back
//! on is kept (a POP3 message streams through without a copy). Byte counts
//! are live.
//!
//! Every wait on a peer, writes included, is bounded by the idle timeout
//! (a write that moves bytes postpones it: a slow reader is not idle, a
//! stopped one is) and by the stop signal. A client that asks for a
//! message and stops reading must not hold the session for ever: the
//! upstream session it keeps open holds Dovecot's POP3 lock on the
//! mailbox, and every other POP3 login to it gets `[IN-USE]`.
//!
//! Bounds: a side is read only once the destination took what its last
//! read led to (the client only once both sides took everything), so the
//! relay holds at most what the inspector made of one read; the inspector
//! bounds its own queues ([`Inspector::wants_client_input`]).
//!
//! Half-close: the client's end of stream reaches the upstream (its write
//! half is shut) once the inspector has sent on all that the client's
//! bytes lead to, and the upstream's replies go on reaching the client
//! until the upstream closes: a client that half-closes after its last
//! command gets every reply. The upstream's end of stream ends the
//! session: what the inspector has left for the client is written, then
//! the client's write half is shut.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use super::{ByteCounter, RelayEnd, RelayOptions, RelayStats, with_scratch};

mod output;
pub use output::Output;

/// How long the inspector's last line after an idle timeout may take to
/// write: the client is most likely gone.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// A pure reader of a session's bytes, between the client and the upstream.
/// It is told what each side sends and when it closes, and puts in an
/// [`Output`] what goes on to each side. No I/O: the relay does the waiting.
pub trait Inspector {
    /// Bytes the client sent. The first call carries the bytes the client
    /// sent with its login (maybe none).
    fn client_data(&mut self, data: &[u8], out: &mut Output);

    /// Bytes the upstream sent. The first call carries the bytes the
    /// upstream sent behind its login reply (maybe none).
    fn upstream_data(&mut self, data: &[u8], out: &mut Output);

    /// The client's stream ended (it may still be reading).
    fn client_closed(&mut self, _out: &mut Output) {}

    /// The upstream closed or failed: nothing more goes to it, and the
    /// session ends once `out` has reached the client.
    fn upstream_closed(&mut self, _out: &mut Output) -> UpstreamClosed {
        UpstreamClosed::Expected
    }

    /// Whether to read the client now: false lets the upstream catch up.
    fn wants_client_input(&self) -> bool {
        true
    }

    /// Whether client bytes it holds may still go upstream once the
    /// upstream answers. After the client's end of stream, the upstream's
    /// write half is shut only when this is false.
    fn holds_client_input(&self) -> bool {
        false
    }

    /// Whether the session is over: what is left for the client is
    /// written, then the relay ends ([`RelayEnd::Closed`]).
    fn finished(&self) -> bool {
        false
    }

    /// How long the session may now go without a byte moved: `configured`,
    /// or longer while the upstream is entitled to take its time.
    fn idle_timeout(&self, configured: Duration) -> Duration {
        configured
    }

    /// The session was idle too long: the protocol's last line for the
    /// client, if it has one. Written under a short bound, and only if
    /// nothing else is waiting to go to the client.
    fn timed_out(&mut self, _out: &mut Output) {}
}

/// How an upstream's close reads to the [`Inspector`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamClosed {
    /// The session was over, or the client had left: [`RelayEnd::Closed`].
    Expected,
    /// The upstream went in the middle of the session:
    /// [`RelayEnd::UpstreamError`].
    Lost,
}

/// Bytes read during the login that belong to the session.
#[derive(Debug, Clone, Copy, Default)]
pub struct Handoff<'a> {
    /// What the client pipelined behind its login.
    pub from_client: &'a [u8],
    /// What the upstream sent behind its login reply.
    pub from_upstream: &'a [u8],
}

/// A side of the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Upstream,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Client => Side::Upstream,
            Side::Upstream => Side::Client,
        }
    }
}

/// Relays through `inspector` until the upstream closes, the inspector
/// finishes the session, one side fails, the session is idle for
/// `opts.idle_timeout` (or what the inspector makes of it), or `stop`
/// completes (a drain's grace period is over: nothing is injected).
/// `opts.buffer_bytes` is the largest read. The upstream is left open when
/// the inspector finishes: the caller closes it.
pub async fn relay<C, U, I>(
    client: C,
    upstream: U,
    inspector: I,
    handoff: Handoff<'_>,
    opts: RelayOptions,
    counter: &dyn ByteCounter,
    stop: impl Future<Output = ()>,
) -> (RelayStats, RelayEnd)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
    I: Inspector,
{
    let mut g = Guarded {
        client,
        upstream,
        inspector,
        to_client: Outbox::default(),
        to_upstream: Outbox::default(),
        client_eof: false,
        upstream_done: false,
        phase: Phase::Relaying,
        chunk: opts.buffer_bytes.max(1),
        meter: Meter {
            stats: RelayStats::default(),
            counter,
            last_activity: Instant::now(),
        },
    };
    g.take_handoff(handoff);
    let idle = tokio::time::sleep_until(g.idle_deadline(opts.idle_timeout));
    tokio::pin!(idle, stop);
    let end = std::future::poll_fn(|cx| {
        if stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(RelayEnd::Shutdown);
        }
        if let Poll::Ready(end) = g.poll(cx) {
            return Poll::Ready(end);
        }
        // The timer is moved only when it fires or the deadline comes
        // closer, not at every byte.
        loop {
            let deadline = g.idle_deadline(opts.idle_timeout);
            if deadline < idle.deadline() {
                idle.as_mut().reset(deadline);
            }
            ready!(idle.as_mut().poll(cx));
            if Instant::now() >= deadline {
                return Poll::Ready(RelayEnd::IdleTimeout);
            }
            idle.as_mut().reset(deadline);
        }
    })
    .await;
    if matches!(end, RelayEnd::IdleTimeout) {
        g.say_timed_out().await;
    }
    (g.meter.stats, end)
}

/// One session's relay.
struct Guarded<'a, C, U, I> {
    client: C,
    upstream: U,
    inspector: I,
    to_client: Outbox,
    to_upstream: Outbox,
    /// The client's stream ended: it is read no more.
    client_eof: bool,
    /// Nothing more goes to the upstream: its write half is shut, or it is gone.
    upstream_done: bool,
    phase: Phase,
    /// The largest read.
    chunk: usize,
    meter: Meter<'a>,
}

/// Where the session is.
enum Phase {
    Relaying,
    /// Over: what is left for the client goes, then its write half is shut.
    Closing(RelayEnd),
    /// Over, with nothing more to write.
    Done(RelayEnd),
}

impl<C, U, I> Guarded<'_, C, U, I>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
    I: Inspector,
{
    fn idle_deadline(&self, configured: Duration) -> Instant {
        self.meter.last_activity + self.inspector.idle_timeout(configured)
    }

    /// The bytes read during the login go through the inspector first;
    /// what it makes of them waits for the first poll.
    fn take_handoff(&mut self, handoff: Handoff<'_>) {
        for (from, input) in [
            (Side::Client, handoff.from_client),
            (Side::Upstream, handoff.from_upstream),
        ] {
            let mut out = Output::new(from.other());
            match from {
                Side::Client => self.inspector.client_data(input, &mut out),
                Side::Upstream => self.inspector.upstream_data(input, &mut out),
            }
            out.client.slices(input).for_each(|b| self.to_client.keep(b));
            out.upstream.slices(input).for_each(|b| self.to_upstream.keep(b));
        }
    }

    /// Moves bytes until nothing can move now (`Pending`) or the session ends.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<RelayEnd> {
        loop {
            match std::mem::replace(&mut self.phase, Phase::Relaying) {
                Phase::Relaying => {}
                Phase::Closing(end) => return self.poll_close(cx, end),
                Phase::Done(end) => return Poll::Ready(end),
            }
            // What the destinations pushed back on goes first.
            let upstream_idle = self.upstream_done || self.drain_upstream(cx);
            let client_idle = self.drain_client(cx);
            if !matches!(self.phase, Phase::Relaying) {
                continue;
            }
            if self.inspector.finished() {
                self.phase = Phase::Closing(RelayEnd::Closed);
                continue;
            }
            if self.client_eof && !self.upstream_done && upstream_idle && !self.inspector.holds_client_input()
            {
                // All the client sent is passed on: the upstream hears it
                // leave (POP3 then deletes nothing, RFC 1939 §6: only QUIT
                // enters UPDATE). Its replies still come. A failed shutdown
                // means the upstream is gone, and its read side will say so.
                if Pin::new(&mut self.upstream).poll_shutdown(cx).is_ready() {
                    self.upstream_done = true;
                }
            }
            if client_idle && self.read(cx, Side::Upstream).is_ready() {
                continue;
            }
            let client_wanted = !self.client_eof && self.inspector.wants_client_input();
            if client_wanted && client_idle && upstream_idle && self.read(cx, Side::Client).is_ready() {
                continue;
            }
            return Poll::Pending;
        }
    }

    /// Whether the upstream has taken all it was sent.
    fn drain_upstream(&mut self, cx: &mut Context<'_>) -> bool {
        let drained = self
            .to_upstream
            .poll_drain(cx, &mut self.upstream, &mut self.meter, Side::Upstream);
        match drained {
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(e)) => {
                self.upstream_gone(cx, Err(e));
                false
            }
            Poll::Pending => false,
        }
    }

    /// Whether the client has taken all it was sent.
    fn drain_client(&mut self, cx: &mut Context<'_>) -> bool {
        let drained = self
            .to_client
            .poll_drain(cx, &mut self.client, &mut self.meter, Side::Client);
        match drained {
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(e)) => {
                self.client_failed(e);
                false
            }
            Poll::Pending => false,
        }
    }

    /// One read from `from` into the scratch buffer, through the inspector,
    /// and on to the destinations as far as they take it now. `Ready` when
    /// something happened: bytes, an end of stream, a failure.
    fn read(&mut self, cx: &mut Context<'_>, from: Side) -> Poll<()> {
        with_scratch(self.chunk, |buf| {
            let mut read_buf = ReadBuf::new(buf);
            let polled = match from {
                Side::Client => Pin::new(&mut self.client).poll_read(cx, &mut read_buf),
                Side::Upstream => Pin::new(&mut self.upstream).poll_read(cx, &mut read_buf),
            };
            let end_of_stream = match polled {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => read_buf.filled().is_empty(),
                // Many clients close TCP without a TLS close_notify after
                // their last command: an end of stream, not a failure.
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => true,
                Poll::Ready(Err(e)) => {
                    match from {
                        Side::Client => self.client_failed(e),
                        Side::Upstream => self.upstream_gone(cx, Err(e)),
                    }
                    return Poll::Ready(());
                }
            };
            if end_of_stream {
                match from {
                    Side::Client => self.client_gone(cx),
                    Side::Upstream => self.upstream_gone(cx, Ok(())),
                }
                return Poll::Ready(());
            }
            let data = read_buf.filled();
            self.meter.received();
            let mut out = Output::new(from.other());
            match from {
                Side::Client => self.inspector.client_data(data, &mut out),
                Side::Upstream => self.inspector.upstream_data(data, &mut out),
            }
            self.deliver(cx, &out, data);
            Poll::Ready(())
        })
    }

    /// Writes `out` as far as the destinations take it now and keeps the
    /// rest; `input` is what [`Output::pass`] ranges point into.
    fn deliver(&mut self, cx: &mut Context<'_>, out: &Output, input: &[u8]) {
        for bytes in out.client.slices(input) {
            let sent = self
                .to_client
                .send(cx, &mut self.client, bytes, &mut self.meter, Side::Client);
            if let Err(e) = sent {
                return self.client_failed(e);
            }
        }
        if self.upstream_done {
            return;
        }
        for bytes in out.upstream.slices(input) {
            let sent = self
                .to_upstream
                .send(cx, &mut self.upstream, bytes, &mut self.meter, Side::Upstream);
            if let Err(e) = sent {
                return self.upstream_gone(cx, Err(e));
            }
        }
    }

    /// The client's side failed: the session ends at once, unless it was
    /// ending already (then that is why it ended).
    fn client_failed(&mut self, e: io::Error) {
        if matches!(self.phase, Phase::Relaying) {
            self.phase = Phase::Done(RelayEnd::ClientError(e));
        }
    }

    /// The client's stream ended; it may still read the replies.
    fn client_gone(&mut self, cx: &mut Context<'_>) {
        self.client_eof = true;
        let mut out = Output::new(Side::Upstream);
        self.inspector.client_closed(&mut out);
        self.deliver(cx, &out, &[]);
    }

    /// The upstream closed (`Ok`) or failed: the inspector has its last
    /// word for the client, and the session ends once that is written.
    fn upstream_gone(&mut self, cx: &mut Context<'_>, result: io::Result<()>) {
        if !matches!(self.phase, Phase::Relaying) {
            return;
        }
        self.upstream_done = true;
        self.to_upstream = Outbox::default();
        let mut out = Output::new(Side::Client);
        let closed = self.inspector.upstream_closed(&mut out);
        self.deliver(cx, &out, &[]);
        let end = match (result, closed) {
            (Err(e), _) => RelayEnd::UpstreamError(e),
            (Ok(()), UpstreamClosed::Lost) => RelayEnd::UpstreamError(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the upstream closed in the middle of the session",
            )),
            (Ok(()), UpstreamClosed::Expected) => RelayEnd::Closed,
        };
        // A client that could not take the last words: the session still
        // ended because of the upstream.
        self.phase = Phase::Closing(end);
    }

    /// Writes what is left for the client, shuts its write half, and ends.
    fn poll_close(&mut self, cx: &mut Context<'_>, end: RelayEnd) -> Poll<RelayEnd> {
        let drained = self
            .to_client
            .poll_drain(cx, &mut self.client, &mut self.meter, Side::Client);
        let drained = match drained {
            Poll::Ready(drained) => drained,
            Poll::Pending => {
                self.phase = Phase::Closing(end);
                return Poll::Pending;
            }
        };
        if drained.is_ok() && Pin::new(&mut self.client).poll_shutdown(cx).is_pending() {
            self.phase = Phase::Closing(end);
            return Poll::Pending;
        }
        // The client may be gone already: a failed shutdown is no error of
        // the session, and a failed write is one only if nothing else was.
        Poll::Ready(match (drained, end) {
            (Err(e), RelayEnd::Closed) => RelayEnd::ClientError(e),
            (_, end) => end,
        })
    }

    /// After an idle timeout: the inspector's last line, if it has one and
    /// the client is not in the middle of something else.
    async fn say_timed_out(&mut self) {
        if !matches!(self.phase, Phase::Relaying) || !self.to_client.is_empty() {
            return;
        }
        let mut out = Output::new(Side::Client);
        self.inspector.timed_out(&mut out);
        let line: Vec<u8> = out.client.slices(&[]).flatten().copied().collect();
        if line.is_empty() {
            return;
        }
        let client = &mut self.client;
        let write = async {
            client.write_all(&line).await?;
            client.flush().await
        };
        if let Ok(Ok(())) = tokio::time::timeout(GOODBYE_TIMEOUT, write).await {
            self.meter.sent(Side::Client, line.len());
        }
    }
}

/// Byte counts and the idle clock.
struct Meter<'a> {
    stats: RelayStats,
    counter: &'a dyn ByteCounter,
    /// When a byte last moved either way.
    last_activity: Instant,
}

impl Meter<'_> {
    /// `n` bytes were written to `to`.
    fn sent(&mut self, to: Side, n: usize) {
        let n = n as u64;
        match to {
            Side::Upstream => {
                self.stats.client_to_upstream += n;
                self.counter.client_to_upstream(n);
            }
            Side::Client => {
                self.stats.upstream_to_client += n;
                self.counter.upstream_to_client(n);
            }
        }
        self.last_activity = Instant::now();
    }

    /// Bytes were read.
    fn received(&mut self) {
        self.last_activity = Instant::now();
    }
}

/// What one destination has not taken yet.
#[derive(Default)]
struct Outbox {
    /// Empty (unallocated) unless the destination pushed back.
    bytes: Vec<u8>,
    /// How much of `bytes` has been written.
    written: usize,
    /// Written, but the destination's flush has not completed yet.
    needs_flush: bool,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.written == self.bytes.len()
    }

    /// Writes what is kept and flushes: `Ready(Ok)` once the destination
    /// has taken everything.
    fn poll_drain<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        w: &mut W,
        meter: &mut Meter<'_>,
        to: Side,
    ) -> Poll<io::Result<()>> {
        while self.written < self.bytes.len() {
            let n = ready!(Pin::new(&mut *w).poll_write(cx, &self.bytes[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
            meter.sent(to, n);
        }
        if !self.bytes.is_empty() {
            // The burst is over: give its buffer back.
            self.bytes = Vec::new();
            self.written = 0;
        }
        if self.needs_flush {
            ready!(Pin::new(&mut *w).poll_flush(cx))?;
            self.needs_flush = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Sends `bytes`: written straight away while the destination takes
    /// them, copied from where it pushes back.
    fn send<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        w: &mut W,
        bytes: &[u8],
        meter: &mut Meter<'_>,
        to: Side,
    ) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.needs_flush = true;
        let mut off = 0;
        if self.is_empty() {
            while off < bytes.len() {
                match Pin::new(&mut *w).poll_write(cx, &bytes[off..]) {
                    Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                    Poll::Ready(Ok(n)) => {
                        off += n;
                        meter.sent(to, n);
                    }
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => break,
                }
            }
        }
        self.bytes.extend_from_slice(&bytes[off..]);
        Ok(())
    }

    /// Keeps `bytes` for the next drain.
    fn keep(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.bytes.extend_from_slice(bytes);
            self.needs_flush = true;
        }
    }
}

#[cfg(test)]
mod tests;
