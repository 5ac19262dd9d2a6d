//! Drives one IMAP client connection: TLS, the pre-login front-end, the
//! login (policy, then upstream), and the relay. The protocol logic lives in
//! the pure [`super::frontend`]; this is the I/O edge.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::info;

use super::frontend::{FrontendOptions, ImapFrontend, LoginAttempt};
use super::upstream::{self as imap_upstream, ClientAddrs, Identity, LoggedIn};
use crate::access::gate::{
    LoginOutcome, LoginRequest, Verdict, record_upstream_error, upstream_for, upstream_login,
};
use crate::access::policy::DenyReason;
use crate::listener::client_limits::Admission;
use crate::listener::{ListenerContext, SessionGauge, accept_tls};
use crate::net::Stream;
use crate::ops::metrics as m;
use crate::protocol::Protocol;
use crate::relay::{self, RelayOptions};
use crate::session::{self, Goodbyes, LoginResult, LoginStep};
use crate::upstream::UpstreamError;

/// Why a login did not lead to a session.
enum LoginFailure {
    /// Refused: counts as a failed attempt. `code` is the RFC 5530 response code.
    Denied { code: &'static str, text: String },
    /// Could not be carried out now; the client may retry.
    Unavailable,
}

/// Serves one client connection until it ends. `admission` holds the
/// client's per-IP places; its pre-login one is given back at login.
pub async fn serve(tcp: TcpStream, peer: SocketAddr, ctx: Arc<ListenerContext>, mut admission: Admission) {
    let started = Instant::now();
    let mut gauge = SessionGauge::prelogin(Protocol::Imap);
    // Everything up to the relay (handshake, pre-login, login, handoff) runs
    // in its own allocation, freed at login: the task itself is only as
    // large as the relay's state for the hours a session may stay in IDLE
    // (with all of it inline, an IMAP session's task was 17 KiB; ~1 KiB so).
    let Some((client, upstream_stream)) = Box::pin(open(tcp, peer, &ctx, started)).await else {
        return;
    };

    gauge.to_relay();
    admission.logged_in();
    let counter = m::RelayCounter::new(Protocol::Imap);
    let opts = RelayOptions {
        buffer_bytes: ctx.limits.relay_buffer_bytes,
        idle_timeout: ctx.limits.idle_timeout(Protocol::Imap),
    };
    let (stats, end) =
        relay::relay_until(client, upstream_stream, opts, &counter, ctx.shutdown.closing()).await;
    session::ended(Protocol::Imap, &ctx, peer, started, stats, end.label());
}

/// TLS, the pre-login front-end, the login and the handoff: the client and
/// upstream streams ready to relay, or `None` when the session ended first.
async fn open(
    tcp: TcpStream,
    peer: SocketAddr,
    ctx: &ListenerContext,
    started: Instant,
) -> Option<(Stream, Stream)> {
    let local = tcp.local_addr().unwrap_or(peer);
    let stream = accept_tls(tcp, ctx).await?;
    let opts = FrontendOptions {
        starttls: ctx.listener.tls == crate::config::TlsMode::Starttls,
        allow_plaintext_login: ctx.listener.allow_plaintext_login,
        max_line_bytes: ctx.limits.imap_max_line_bytes,
        max_literal_bytes: ctx.limits.imap_max_literal_bytes,
        max_login_failures: ctx.limits.max_login_failures,
        max_prelogin_errors: ctx.limits.max_prelogin_errors,
        greeting: ctx.greeting.clone(),
    };
    let mut frontend = ImapFrontend::new(opts, stream.is_tls());
    let addrs = ClientAddrs { peer, local };
    let goodbyes = Goodbyes {
        shutdown: super::reply::SHUTDOWN,
        timeout: super::reply::LOGIN_TIMEOUT,
    };
    let step = ImapLogin { ctx, addrs };
    let phase = session::prelogin_phase(stream, &mut frontend, ctx, started, step, goodbyes);
    let (mut client, (attempt, upstream)) = phase.await?;

    // Anything the client pipelined behind its login goes upstream first,
    // anything the upstream sent behind its OK goes to the client.
    let pipelined = frontend.into_pipelined();
    let LoggedIn { conn, capabilities } = upstream;
    let mut upstream_stream = conn.stream;
    let mut reply = attempt.tag.clone();
    match capabilities {
        Some(caps) => reply.extend_from_slice(format!(" OK [CAPABILITY {caps}] Logged in\r\n").as_bytes()),
        None => reply.extend_from_slice(b" OK Logged in\r\n"),
    }
    reply.extend_from_slice(&conn.buf);
    let handoff = async {
        client.write_all(&reply).await?;
        client.flush().await?;
        if !pipelined.is_empty() {
            upstream_stream.write_all(&pipelined).await?;
            upstream_stream.flush().await?;
        }
        Ok::<_, std::io::Error>(())
    };
    // Bounded like the relay that follows: a client that stopped reading
    // must not hold the session before it is even counted as relaying.
    let handoff = tokio::time::timeout(ctx.limits.idle_timeout(Protocol::Imap), handoff)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client not reading",
            ))
        });
    if let Err(e) = handoff {
        info!(peer = %peer, listener = %ctx.listener.name, error = %e, "imap session ended during handoff");
        return None;
    }
    Some((client, upstream_stream))
}

/// The IMAP login step for [`session::prelogin`].
struct ImapLogin<'a> {
    ctx: &'a ListenerContext,
    addrs: ClientAddrs,
}

impl LoginStep<ImapFrontend> for ImapLogin<'_> {
    type Session = (LoginAttempt, LoggedIn);

    async fn login(
        &mut self,
        fe: &mut ImapFrontend,
        attempt: LoginAttempt,
        tls: bool,
    ) -> LoginResult<Self::Session> {
        let client_name = fe.client_id().summary();
        match login(self.ctx, &attempt, self.addrs, tls, client_name).await {
            Ok(upstream) => LoginResult::LoggedIn((attempt, upstream)),
            Err(LoginFailure::Denied { code, text }) => {
                let (reply, close) = fe.login_failed(&attempt.tag, code, &text);
                LoginResult::Refused { reply, close }
            }
            Err(LoginFailure::Unavailable) => LoginResult::Refused {
                reply: fe.login_unavailable(
                    &attempt.tag,
                    "The mail server is not available now. Try again later.",
                ),
                close: false,
            },
        }
    }
}

/// The login step: the gate (account store rules, or pass-through), then
/// the upstream login as the mailbox.
async fn login(
    ctx: &ListenerContext,
    attempt: &LoginAttempt,
    addrs: ClientAddrs,
    tls: bool,
    client_name: Option<String>,
) -> Result<LoggedIn, LoginFailure> {
    let started = Instant::now();
    let creds = &attempt.credentials;
    let request = LoginRequest {
        protocol: Protocol::Imap,
        credentials: creds,
        peer: addrs.peer,
        tls,
        client_name,
        separator: ctx.login_name_separator,
    };
    let (outcome, result) = match ctx.gate.check(&request).await {
        Err(denial) => {
            let outcome = LoginOutcome::Denied(denial.reason);
            let failure = if denial.reason == DenyReason::StoreUnavailable {
                LoginFailure::Unavailable
            } else {
                let (code, text) = denial.imap_reply();
                LoginFailure::Denied { code, text }
            };
            (outcome, Err(failure))
        }
        Ok(verdict) => {
            let upstream = upstream_for(&ctx.upstream, &verdict);
            let identity = match &verdict {
                Verdict::PassThrough => Identity::Client {
                    user: &creds.authcid,
                    password: &creds.password,
                },
                Verdict::Mailbox(permit) => Identity::Mailbox(&permit.mailbox),
            };
            let result = upstream_login(ctx, &upstream, |one| async move {
                imap_upstream::login(&one, identity, addrs).await
            })
            .await;
            match (result, &verdict) {
                (Ok(logged_in), Verdict::Mailbox(permit)) => (
                    LoginOutcome::Ok {
                        collaborator: permit.collaborator.is_some(),
                    },
                    Ok(logged_in),
                ),
                (Ok(logged_in), Verdict::PassThrough) => {
                    (LoginOutcome::Ok { collaborator: false }, Ok(logged_in))
                }
                // Pass-through: the upstream judged the client's own password.
                (Err(UpstreamError::AuthFailed), Verdict::PassThrough) => {
                    let (code, text) = DenyReason::UnknownOrBadPassword.imap_reply();
                    (
                        LoginOutcome::UpstreamRefused,
                        Err(LoginFailure::Denied { code, text }),
                    )
                }
                // With master credentials a refusal is our configuration's
                // fault, not the client's: it is told to retry later.
                (Err(e), _) => {
                    if !e.reported_by_failover() {
                        record_upstream_error(Protocol::Imap, &ctx.upstream_label, &e);
                    }
                    (
                        LoginOutcome::Unavailable("upstream_unavailable"),
                        Err(LoginFailure::Unavailable),
                    )
                }
            }
        }
    };
    ctx.gate
        .record(&request, attempt.mechanism.as_str(), &outcome, started);
    result
}
