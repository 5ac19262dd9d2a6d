//! One client session, the same for every protocol: TLS, the protocol's
//! pre-login front-end, the login (the access gate, then the upstream
//! login as the mailbox), the handoff, and the relay. What differs between
//! IMAP, POP3 and SMTP is a [`MailProtocol`]: its front-end, its upstream
//! login, its success reply and, where a rule needs it, its guard.
//!
//! ```text
//! serve ─▶ tls ─▶ prelogin (front-end events) ─▶ login::log_in ─▶ handoff ─▶ relay
//!                     ▲   refused: Frontend::login_refused ◀─┘
//! ```

pub mod control;
mod login;
mod prelogin;
pub mod registry;
#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::info;

use crate::access::Credentials;
use crate::access::client_limits::Admission;
use crate::access::gate::{Authority, Gate};
use crate::access::policy::CredentialUsed;
use crate::access::send_rate::RateLimiter;
use crate::config::{Limits, ListenerConfig, PecChecks, TlsMode};
use crate::frontend::Frontend;
use crate::net::{ClientAddrs, Stream};
use crate::ops::metrics as m;
use crate::ops::shutdown::{Shutdown, goodbye};
use crate::protocol::Protocol;
use crate::relay::guarded::Inspector;
use crate::relay::{self, ByteCounter, RelayEnd, RelayOptions, RelayStats};
use crate::store::account::Pop3Delete;
use crate::store::{AccessLogEntry, LoginResult, unix_now};
use crate::upstream::{Identity, Upstream, UpstreamError};
use registry::{EndReason, Entry, Registered, Sessions};

/// How long closing a side after a guarded relay may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Everything a session needs from its listener, built from one
/// configuration and swapped whole on reload: a session keeps the context
/// it was accepted with.
pub struct ListenerContext {
    pub listener: ListenerConfig,
    pub acceptor: Option<crate::tls::Acceptor>,
    pub limits: Limits,
    pub upstream: Upstream,
    /// The upstream's address, as a (config-bounded) metric label.
    pub upstream_label: String,
    pub greeting: String,
    pub gate: Gate,
    pub login_name_separator: char,
    /// Drain and close signals: pre-login phases run under
    /// [`Shutdown::or_draining`], relays under [`Shutdown::closing`].
    pub shutdown: Shutdown,
    /// SMTP: our name in the greeting and EHLO (`[smtp] hostname`).
    pub smtp_hostname: String,
    /// SMTP: the PEC submission checks.
    pub pec_checks: PecChecks,
    /// SMTP: each mailbox's sending rate, over all its sessions.
    pub send_rate: Arc<RateLimiter>,
    /// The logged-in sessions, for ending them when their access is
    /// revoked (one registry per server, across reloads).
    pub sessions: Arc<Sessions>,
}

/// Who a logged-in session is, for the rules that still apply after login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The mailbox open upstream (lower case). With pass-through, the login
    /// name as the client typed it.
    pub mailbox: String,
    /// The collaborator who logged in, if one did.
    pub collaborator: Option<String>,
    /// Whether POP3 `DELE` reaches the server (keep-on-server otherwise).
    pub pop3_delete: Pop3Delete,
    /// The credential it logged in with; `None` in pass-through.
    pub credential: Option<CredentialUsed>,
}

/// What a front-end's login event carries, in any protocol.
pub trait LoginAttempt {
    fn credentials(&self) -> &Credentials;
    /// The mechanism, as a bounded metric label (`login`, `plain`, ...).
    fn mechanism(&self) -> &'static str;
}

/// What a protocol says when the pre-login phase is cut short.
pub struct Goodbyes {
    /// On drain (SIGTERM): e.g. `* BYE Server shutting down`.
    pub shutdown: &'static [u8],
    /// When the login deadline passes.
    pub timeout: &'static [u8],
    /// After login, when the session's access is revoked (a collaborator
    /// suspended, an app password revoked, ...).
    pub revoked: &'static [u8],
    /// After login, at `limits.max_session_secs`.
    pub lifetime: &'static [u8],
}

/// What the session does at login, as the protocol decides it: the bytes
/// each side is owed first, and the relay that follows.
pub struct Handoff<G> {
    /// The login's success reply, and anything the upstream sent behind its
    /// own that no guard reads.
    pub to_client: Vec<u8>,
    /// What the client pipelined behind its login, when no guard reads it.
    pub to_upstream: Vec<u8>,
    pub upstream: Stream,
    /// `Some`: the relay reads the stream through this guard.
    pub guard: Option<Guarded<G>>,
}

/// A post-login guard ([`Inspector`]), and the bytes of the login it reads
/// first.
pub struct Guarded<G> {
    pub inspector: G,
    /// What the client pipelined behind its login.
    pub from_client: Vec<u8>,
    /// What the upstream sent behind its login reply.
    pub from_upstream: Vec<u8>,
}

/// A mail protocol, as the session sees it: the hooks where IMAP, POP3 and
/// SMTP differ. Everything else (TLS, the login deadline, drain, the
/// access gate, upstream failover, counting, the relay) is the session's.
pub trait MailProtocol: Send + Sync + 'static {
    const PROTOCOL: Protocol;
    const GOODBYES: Goodbyes;
    type Login: LoginAttempt + Send + Sync;
    type Frontend: Frontend<Login = Self::Login> + Send + Sync;
    /// A logged-in upstream connection and what the handoff needs of it.
    type LoggedIn: Send;
    /// The post-login guard, for protocols that have one.
    type Guard: Inspector + Send;

    /// A fresh pre-login front-end for a client, over TLS or not yet.
    fn frontend(ctx: &ListenerContext, tls: bool) -> Self::Frontend;

    /// The client's name and version, for the access log (IMAP `ID`).
    fn client_name(_frontend: &Self::Frontend) -> Option<String> {
        None
    }

    /// Connects to one address of the upstream and logs in as `identity`.
    /// The session bounds it with the login deadline and tries the next
    /// address on a server fault.
    fn log_in_upstream<'a>(
        upstream: Upstream,
        identity: Identity<'a>,
        client: ClientAddrs,
        frontend: &'a Self::Frontend,
        ctx: &'a ListenerContext,
    ) -> impl Future<Output = Result<Self::LoggedIn, UpstreamError>> + Send + 'a;

    /// The handoff after a successful login: the success reply, the
    /// pipelined bytes, and the guard where the principal needs one.
    fn handoff(
        ctx: &ListenerContext,
        frontend: Self::Frontend,
        attempt: Self::Login,
        upstream: Self::LoggedIn,
        principal: Principal,
        tls: bool,
    ) -> Handoff<Self::Guard>;
}

/// Serves one client connection until it ends. `admission` holds the
/// client's per-IP places; its pre-login one is given back at login.
pub async fn serve<P: MailProtocol>(
    tcp: TcpStream,
    peer: SocketAddr,
    ctx: Arc<ListenerContext>,
    mut admission: Admission,
) {
    let started = Instant::now();
    let mut gauge = SessionGauge::prelogin(P::PROTOCOL);
    // Everything up to the relay (handshake, pre-login, login, handoff) runs
    // in its own allocation, freed at login: the task itself is only as
    // large as the relay's state for the hours a session may stay in IDLE
    // (with all of it inline, an IMAP session's task was 17 KiB; ~1 KiB so).
    let Some((client, upstream, guard, principal)) = Box::pin(open::<P>(tcp, peer, &ctx, started)).await
    else {
        return;
    };

    gauge.relaying();
    admission.logged_in();
    let mut registered = ctx.sessions.register(Entry {
        protocol: P::PROTOCOL,
        mailbox: principal.mailbox,
        collaborator: principal.collaborator,
        credential: principal.credential,
        access: principal.pop3_delete,
        peer,
        since: unix_now(),
    });
    if let Authority::Store(auth) = &ctx.gate.authority {
        // The login was decided on the record before the upstream login:
        // a change since then, which the watch may have re-checked before
        // this session was registered, is checked here.
        let store = auth.store().clone();
        let sessions = ctx.sessions.clone();
        let id = registered.id();
        tokio::spawn(async move { sessions.recheck(store.as_ref(), Some(id)).await });
    }
    let mut client = LastByte {
        inner: client,
        // The handoff's last byte was its reply's line feed.
        last: b'\n',
    };
    let mut upstream = upstream;
    let counter = m::RelayCounter::new(P::PROTOCOL);
    let idle_timeout = ctx.limits.idle_timeout(P::PROTOCOL);
    // What ended the relay when its stop signal did: `None` for the drain,
    // the reason when the proxy ended this session.
    let why: OnceLock<Option<EndReason>> = OnceLock::new();
    let max_session = ctx.limits.max_session();
    let stop = async {
        let reason = tokio::select! {
            () = ctx.shutdown.closing() => None,
            reason = registered.ended() => Some(reason),
            () = async {
                match max_session {
                    Some(max) => tokio::time::sleep(max).await,
                    None => std::future::pending().await,
                }
            } => Some(EndReason::Lifetime),
        };
        let _ = why.set(reason);
    };
    let (stats, end) = match guard {
        None => {
            let opts = RelayOptions {
                buffer_bytes: ctx.limits.relay_buffer_bytes,
                idle_timeout,
            };
            relay::relay_until(&mut client, &mut upstream, opts, &counter, stop).await
        }
        Some(guarded) => {
            let opts = RelayOptions {
                buffer_bytes: ctx.limits.relay_buffer_bytes.min(relay::GUARDED_BUFFER_BYTES),
                idle_timeout,
            };
            // Boxed: its state would otherwise size every session's task,
            // plain relays included, for as long as they last.
            Box::pin(relay_guarded(
                &mut client,
                &mut upstream,
                guarded,
                opts,
                &counter,
                stop,
                &why,
            ))
            .await
        }
    };
    let ended_by = why.get().copied().flatten();
    if let Some(reason) = ended_by {
        end_session::<P>(&ctx, peer, &registered, reason, client, upstream).await;
    }
    drop(registered);
    ended(P::PROTOCOL, &ctx, peer, started, stats, &end, ended_by);
}

/// Ends a session the proxy decided to end: counts it, logs it (with who
/// it was: the access log of a revocation), says the protocol's goodbye
/// and closes both sides, each under a short bound.
async fn end_session<P: MailProtocol>(
    ctx: &ListenerContext,
    peer: SocketAddr,
    registered: &Registered,
    reason: EndReason,
    client: LastByte<Stream>,
    mut upstream: Stream,
) {
    let protocol = P::PROTOCOL.as_str();
    metrics::counter!(m::SESSIONS_REVOKED_TOTAL, "protocol" => protocol, "reason" => reason.label())
        .increment(1);
    let who = ctx.sessions.entry(registered.id());
    info!(
        protocol,
        listener = %ctx.listener.name,
        peer = %peer,
        session = registered.id(),
        mailbox = who.as_ref().map_or("", |e| e.mailbox.as_str()),
        collaborator = who.as_ref().and_then(|e| e.collaborator.as_deref()).unwrap_or(""),
        reason = reason.label(),
        "session ended by the proxy"
    );
    let line = match reason {
        EndReason::Revoked(_) | EndReason::Operator => P::GOODBYES.revoked,
        EndReason::Lifetime => P::GOODBYES.lifetime,
    };
    // Only between lines: in the middle of a response (a message being
    // downloaded) a goodbye would be read as part of it.
    if client.last == b'\n' {
        goodbye(Some(client.inner), line).await;
    } else {
        let mut client = client.inner;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.shutdown()).await;
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, upstream.shutdown()).await;
    // After the goodbye, so the store's write does not delay it: the
    // revocation in the mailbox's access log, beside the login it ends.
    let logged = match reason {
        EndReason::Revoked(revoked) => Some(revoked.label()),
        EndReason::Operator => Some(reason.label()),
        EndReason::Lifetime => None,
    };
    if let (Some(why), Authority::Store(auth), Some(who)) = (logged, &ctx.gate.authority, who) {
        let entry = AccessLogEntry {
            at: unix_now(),
            mailbox: who.mailbox,
            collaborator: who.collaborator,
            protocol: P::PROTOCOL,
            client_ip: peer.ip(),
            client_name: None,
            result: LoginResult::Revoked,
            reason: Some(why.to_owned()),
        };
        if let Err(error) = auth.store().record_login(entry).await {
            tracing::warn!(%error, "could not write the access log");
        }
    }
}

/// A stream that remembers the last byte written to it: whether the
/// client was last sent a whole line, so that a goodbye can follow.
struct LastByte<S> {
    inner: S,
    last: u8,
}

impl<S: AsyncRead + Unpin> AsyncRead for LastByte<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LastByte<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            if n > 0 {
                this.last = buf[n - 1];
            }
        }
        written
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The guarded relay, then both sides closed (TLS `close_notify` included)
/// under a short bound: a guard may end the session itself (SMTP after
/// `QUIT`).
async fn relay_guarded<I: Inspector>(
    client: &mut LastByte<Stream>,
    upstream: &mut Stream,
    guarded: Guarded<I>,
    opts: RelayOptions,
    counter: &dyn ByteCounter,
    stop: impl Future<Output = ()>,
    why: &OnceLock<Option<EndReason>>,
) -> (RelayStats, RelayEnd) {
    let Guarded {
        inspector,
        from_client,
        from_upstream,
    } = guarded;
    let login = relay::guarded::Handoff {
        from_client: &from_client,
        from_upstream: &from_upstream,
    };
    let result = relay::guarded::relay(
        &mut *client,
        &mut *upstream,
        inspector,
        login,
        opts,
        counter,
        stop,
    )
    .await;
    if why.get().is_some_and(Option::is_some) {
        // The proxy ended the session: the goodbye comes before the close.
        return result;
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.shutdown()).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, upstream.shutdown()).await;
    result
}

/// TLS, the pre-login front-end, the login and the handoff: the client and
/// upstream streams ready to relay, or `None` when the session ended first.
async fn open<P: MailProtocol>(
    tcp: TcpStream,
    peer: SocketAddr,
    ctx: &ListenerContext,
    started: Instant,
) -> Option<(Stream, Stream, Option<Guarded<P::Guard>>, Principal)> {
    let local = tcp.local_addr().unwrap_or(peer);
    let stream = accept_tls(tcp, ctx).await?;
    let mut frontend = P::frontend(ctx, stream.is_tls());
    let client = ClientAddrs { peer, local };
    let (mut stream, logged_in) = prelogin::phase::<P>(stream, &mut frontend, ctx, client, started).await?;
    let prelogin::LoggedIn {
        attempt,
        upstream,
        principal,
    } = logged_in;
    let tls = stream.is_tls();
    let Handoff {
        to_client,
        to_upstream,
        mut upstream,
        guard,
    } = P::handoff(ctx, frontend, attempt, upstream, principal.clone(), tls);
    let handoff = async {
        stream.write_all(&to_client).await?;
        stream.flush().await?;
        if !to_upstream.is_empty() {
            upstream.write_all(&to_upstream).await?;
            upstream.flush().await?;
        }
        Ok::<_, io::Error>(())
    };
    // Bounded like the relay that follows: a client that stopped reading
    // must not hold the session (and, in POP3, the upstream's lock on the
    // mailbox) before it is even counted as relaying.
    let handoff = tokio::time::timeout(ctx.limits.idle_timeout(P::PROTOCOL), handoff)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "client not reading")));
    if let Err(e) = handoff {
        info!(protocol = P::PROTOCOL.as_str(), peer = %peer, listener = %ctx.listener.name, error = %e, "session ended during handoff");
        return None;
    }
    Some((stream, upstream, guard, principal))
}

/// For implicit-TLS listeners, the handshake; otherwise the plain stream.
async fn accept_tls(tcp: TcpStream, ctx: &ListenerContext) -> Option<Stream> {
    match ctx.listener.tls {
        TlsMode::Implicit => upgrade_tls(Stream::Plain(tcp), ctx).await,
        TlsMode::Starttls | TlsMode::None => Some(Stream::Plain(tcp)),
    }
}

/// The server-side TLS handshake on a plain stream (implicit TLS, or after
/// STARTTLS).
async fn upgrade_tls(stream: Stream, ctx: &ListenerContext) -> Option<Stream> {
    let (Stream::Plain(tcp), Some(acceptor)) = (stream, ctx.acceptor.as_ref()) else {
        return None;
    };
    crate::tls::accept(tcp, acceptor, ctx.limits.tls_handshake_timeout()).await
}

/// Keeps `pec_proxy_sessions_active{protocol,stage}` right whatever way a
/// session ends.
struct SessionGauge {
    protocol: Protocol,
    stage: &'static str,
}

impl SessionGauge {
    fn prelogin(protocol: Protocol) -> Self {
        metrics::gauge!(m::SESSIONS_ACTIVE, "protocol" => protocol.as_str(), "stage" => "prelogin")
            .increment(1.0);
        Self {
            protocol,
            stage: "prelogin",
        }
    }

    fn relaying(&mut self) {
        let p = self.protocol.as_str();
        metrics::gauge!(m::SESSIONS_ACTIVE, "protocol" => p, "stage" => self.stage).decrement(1.0);
        self.stage = "relay";
        metrics::gauge!(m::SESSIONS_ACTIVE, "protocol" => p, "stage" => "relay").increment(1.0);
    }
}

impl Drop for SessionGauge {
    fn drop(&mut self) {
        metrics::gauge!(m::SESSIONS_ACTIVE, "protocol" => self.protocol.as_str(), "stage" => self.stage)
            .decrement(1.0);
    }
}

/// Records a finished session: its duration histogram and one log line.
fn ended(
    protocol: Protocol,
    ctx: &ListenerContext,
    peer: SocketAddr,
    started: Instant,
    stats: RelayStats,
    end: &RelayEnd,
    ended_by: Option<EndReason>,
) {
    let result = match ended_by {
        Some(EndReason::Revoked(_)) => "revoked",
        Some(EndReason::Lifetime) => "lifetime",
        Some(EndReason::Operator) => "operator",
        None => end.label(),
    };
    let duration = started.elapsed();
    // By how it ended, so an upstream failing mid-session (`upstream_error`)
    // is counted, not only logged.
    metrics::histogram!(m::SESSION_DURATION_SECONDS, "protocol" => protocol.as_str(), "result" => result)
        .record(duration.as_secs_f64());
    info!(
        protocol = protocol.as_str(),
        listener = %ctx.listener.name,
        peer = %peer,
        duration_ms = duration.as_millis() as u64,
        bytes_in = stats.client_to_upstream,
        bytes_out = stats.upstream_to_client,
        result,
        error = end.error().map(tracing::field::display),
        "session ended"
    );
}
