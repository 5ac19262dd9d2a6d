//! Drives one POP3 client connection: TLS, the pre-login front-end, the
//! login (the shared gate, then upstream), and the relay, guarded when the
//! mailbox keeps its messages on the server. The protocol logic lives in
//! the pure [`super::frontend`] and [`super::guard`]; this is the I/O edge.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::info;

use super::frontend::{Event, FrontendOptions, LoginAttempt, Pop3Frontend};
use super::guard::DeleGuard;
use super::upstream::{self as pop3_upstream, Identity, LoginError};
use crate::account::Pop3Delete;
use crate::login::{LoginOutcome, LoginRequest, Verdict, record_upstream_error, upstream_for};
use crate::metrics as m;
use crate::net::Stream;
use crate::policy::DenyReason;
use crate::protocol::Protocol;
use crate::relay::{self, RelayOptions};
use crate::server::{ListenerContext, SessionGauge, accept_tls, upgrade_tls};
use crate::shutdown::goodbye;
use crate::upstream::{Connection, UpstreamError};

/// What the client is told when the upstream cannot log it in now (RFC 3206 §4).
const UNAVAILABLE: &str = "-ERR [SYS/TEMP] The mail server is not available now. Try again later.";

/// Why a login did not lead to a session: the whole `-ERR` line, and
/// whether it counts as a failed attempt.
struct LoginFailure {
    line: String,
    counts: bool,
}

/// A logged-in upstream, and whether `DELE` is allowed on it.
struct LoggedIn {
    conn: Connection,
    pop3_delete: Pop3Delete,
}

enum Prelogin {
    LoggedIn {
        upstream: LoggedIn,
        frontend: Pop3Frontend,
    },
    Closed,
}

/// Serves one client connection until it ends.
pub async fn serve(tcp: TcpStream, peer: SocketAddr, ctx: Arc<ListenerContext>) {
    let started = Instant::now();
    let mut gauge = SessionGauge::prelogin(Protocol::Pop3);

    // The handshake and the pre-login phase run in their own allocations,
    // freed at login: the task itself stays small for the hours a session
    // may relay (inline, they made an IMAP session's task 17 KiB).
    let Some(stream) = Box::pin(accept_tls(tcp, &ctx)).await else {
        return;
    };
    let opts = FrontendOptions {
        starttls: ctx.listener.tls == crate::config::TlsMode::Starttls,
        allow_plaintext_login: ctx.listener.allow_plaintext_login,
        max_line_bytes: ctx.limits.pop3_max_line_bytes,
        max_login_failures: ctx.limits.max_login_failures,
        greeting: ctx.greeting.clone(),
    };
    let frontend = Pop3Frontend::new(opts, stream.is_tls());
    let mut stream = Some(stream);
    let deadline = started + ctx.limits.prelogin_timeout();

    let outcome = ctx
        .shutdown
        .or_draining(tokio::time::timeout_at(
            deadline,
            Box::pin(prelogin(&mut stream, frontend, &ctx, peer)),
        ))
        .await;
    let Some(outcome) = outcome else {
        // RFC 3206 §4: SYS/TEMP, the client may come back later.
        Box::pin(goodbye(stream, b"-ERR [SYS/TEMP] Server shutting down\r\n")).await;
        return;
    };
    let (upstream, frontend) = match outcome {
        Ok(Ok(Prelogin::LoggedIn { upstream, frontend })) => (upstream, frontend),
        Ok(Ok(Prelogin::Closed)) | Ok(Err(_)) => return,
        Err(_) => {
            metrics::counter!(m::CLIENT_ERRORS_TOTAL, "protocol" => "pop3", "kind" => "prelogin_timeout")
                .increment(1);
            Box::pin(goodbye(stream, b"-ERR Disconnected: login timeout\r\n")).await;
            return;
        }
    };
    let Some(mut client) = stream else { return };

    // Anything the upstream sent behind its +OK goes to the client; what the
    // client pipelined behind its login goes upstream (through the guard
    // when there is one).
    let pipelined = frontend.into_pipelined();
    let LoggedIn { conn, pop3_delete } = upstream;
    let mut upstream_stream = conn.stream;
    let mut reply = b"+OK Logged in.\r\n".to_vec();
    reply.extend_from_slice(&conn.buf);
    let guarded = pop3_delete == Pop3Delete::Deny;
    let handoff = async {
        client.write_all(&reply).await?;
        client.flush().await?;
        if !guarded && !pipelined.is_empty() {
            upstream_stream.write_all(&pipelined).await?;
            upstream_stream.flush().await?;
        }
        Ok::<_, std::io::Error>(())
    };
    if let Err(e) = handoff.await {
        info!(peer = %peer, listener = %ctx.listener.name, error = %e, "pop3 session ended during handoff");
        return;
    }

    gauge.to_relay();
    let counter = m::RelayCounter::new(Protocol::Pop3);
    let opts = RelayOptions {
        buffer_bytes: ctx.limits.relay_buffer_bytes,
        idle_timeout: ctx.limits.idle_timeout(Protocol::Pop3),
    };
    let (stats, end) = if guarded {
        let guard = DeleGuard::new(ctx.limits.pop3_max_line_bytes);
        let stop = ctx.shutdown.closing();
        super::guarded::relay(client, upstream_stream, guard, &pipelined, opts, &counter, stop).await
    } else {
        relay::relay_until(client, upstream_stream, opts, &counter, ctx.shutdown.closing()).await
    };
    let duration = started.elapsed();
    metrics::histogram!(m::SESSION_DURATION_SECONDS, "protocol" => "pop3").record(duration.as_secs_f64());
    info!(
        protocol = "pop3",
        listener = %ctx.listener.name,
        peer = %peer,
        duration_ms = duration.as_millis() as u64,
        bytes_in = stats.client_to_upstream,
        bytes_out = stats.upstream_to_client,
        pop3_delete = pop3_delete.as_str(),
        result = end.label(),
        "session ended"
    );
}

/// Runs the front-end until a login succeeds or the client goes away.
async fn prelogin(
    stream: &mut Option<Stream>,
    mut frontend: Pop3Frontend,
    ctx: &ListenerContext,
    peer: SocketAddr,
) -> std::io::Result<Prelogin> {
    let s = stream.as_mut().expect("stream present until handed off");
    s.write_all(&frontend.greeting()).await?;
    s.flush().await?;
    let mut buf = [0u8; 4096];
    loop {
        while let Some(event) = frontend.next_event() {
            let s = stream.as_mut().expect("stream present until handed off");
            match event {
                Event::Reply(bytes) => {
                    count_refusals(&bytes);
                    s.write_all(&bytes).await?;
                }
                Event::StartTls(ok) => {
                    s.write_all(&ok).await?;
                    s.flush().await?;
                    let plain = stream.take().expect("stream present");
                    match upgrade_tls(plain, ctx).await {
                        Some(tls) => {
                            *stream = Some(tls);
                            frontend.tls_established();
                        }
                        None => return Ok(Prelogin::Closed),
                    }
                }
                Event::Close => {
                    s.flush().await?;
                    let _ = s.shutdown().await;
                    return Ok(Prelogin::Closed);
                }
                Event::Login(attempt) => {
                    s.flush().await?;
                    let tls = s.is_tls();
                    match login(ctx, &attempt, peer, tls).await {
                        Ok(upstream) => return Ok(Prelogin::LoggedIn { upstream, frontend }),
                        Err(failure) => {
                            let (reply, close) = frontend.login_refused(&failure.line, failure.counts);
                            let s = stream.as_mut().expect("stream present");
                            s.write_all(&reply).await?;
                            if close {
                                s.flush().await?;
                                let _ = s.shutdown().await;
                                return Ok(Prelogin::Closed);
                            }
                        }
                    }
                }
            }
        }
        let s = stream.as_mut().expect("stream present until handed off");
        s.flush().await?;
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(Prelogin::Closed);
        }
        frontend.receive(&buf[..n]);
    }
}

/// Counts the front-end's refusals of bad input, by kind.
fn count_refusals(reply: &[u8]) {
    let kind = if reply.starts_with(b"-ERR Command line too long") {
        "line_too_long"
    } else if reply.starts_with(b"-ERR Invalid command:") {
        "syntax"
    } else if reply.starts_with(b"-ERR Unknown command") {
        "unknown_command"
    } else if reply.starts_with(b"-ERR [AUTH] Plaintext") {
        "login_before_tls"
    } else if reply.starts_with(b"-ERR APOP") {
        "apop"
    } else {
        return;
    };
    metrics::counter!(m::CLIENT_ERRORS_TOTAL, "protocol" => "pop3", "kind" => kind).increment(1);
}

/// The login step: the gate (account store rules, or pass-through), then
/// the upstream login as the mailbox.
async fn login(
    ctx: &ListenerContext,
    attempt: &LoginAttempt,
    peer: SocketAddr,
    tls: bool,
) -> Result<LoggedIn, LoginFailure> {
    let started = Instant::now();
    let creds = &attempt.credentials;
    let request = LoginRequest {
        protocol: Protocol::Pop3,
        credentials: creds,
        peer,
        tls,
        client_name: None,
        separator: ctx.login_name_separator,
    };
    let (outcome, result) = match ctx.gate.check(request).await {
        Err(denial) => {
            let counts = denial.reason != DenyReason::StoreUnavailable;
            let line = denial.pop3_reply();
            (
                LoginOutcome::Denied(denial.reason),
                Err(LoginFailure { line, counts }),
            )
        }
        Ok(verdict) => {
            let upstream = upstream_for(&ctx.upstream, &verdict);
            let (identity, pop3_delete, collaborator) = match &verdict {
                Verdict::PassThrough => (
                    Identity::Client {
                        user: &creds.authcid,
                        password: &creds.password,
                    },
                    Pop3Delete::Allow,
                    false,
                ),
                Verdict::Mailbox(permit) => (
                    Identity::Mailbox(&permit.mailbox),
                    permit.pop3_delete,
                    permit.collaborator.is_some(),
                ),
            };
            let connect_started = Instant::now();
            let result = tokio::time::timeout(
                ctx.limits.upstream_login_timeout(),
                pop3_upstream::login(&upstream, identity, peer),
            )
            .await
            .unwrap_or(Err(LoginError::Upstream(UpstreamError::Timeout)));
            metrics::histogram!(m::UPSTREAM_CONNECT_DURATION_SECONDS, "protocol" => "pop3", "upstream" => ctx.upstream_label.clone())
                .record(connect_started.elapsed().as_secs_f64());
            match (result, &verdict) {
                (Ok(conn), _) => (
                    LoginOutcome::Ok { collaborator },
                    Ok(LoggedIn { conn, pop3_delete }),
                ),
                // Another POP3 session holds the mailbox (RFC 2449 §8.1.1):
                // the client is told so; not its fault, not a failed attempt.
                (Err(LoginError::InUse(text)), _) => (
                    LoginOutcome::Unavailable("mailbox_in_use"),
                    Err(LoginFailure {
                        line: format!("-ERR [IN-USE] {text}"),
                        counts: false,
                    }),
                ),
                // Pass-through: the upstream judged the client's own password.
                (Err(LoginError::Upstream(UpstreamError::AuthFailed)), Verdict::PassThrough) => (
                    LoginOutcome::UpstreamRefused,
                    Err(LoginFailure {
                        line: DenyReason::UnknownOrBadPassword.pop3_reply(),
                        counts: true,
                    }),
                ),
                // With master credentials a refusal is our configuration's
                // fault, not the client's: it is told to retry later.
                (Err(LoginError::Upstream(e)), _) => {
                    record_upstream_error(Protocol::Pop3, &ctx.upstream_label, &e);
                    (
                        LoginOutcome::Unavailable("upstream_unavailable"),
                        Err(LoginFailure {
                            line: UNAVAILABLE.to_owned(),
                            counts: false,
                        }),
                    )
                }
            }
        }
    };
    crate::login::record(
        Protocol::Pop3,
        attempt.mechanism.as_str(),
        &outcome,
        peer,
        &creds.authcid,
        started,
    );
    result
}
