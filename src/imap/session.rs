//! Drives one IMAP client connection: TLS, the pre-login front-end, the
//! login (policy, then upstream), and the relay. The protocol logic lives in
//! the pure [`super::frontend`]; this is the I/O edge.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::info;

use super::frontend::{Event, FrontendOptions, ImapFrontend, LoginAttempt};
use super::upstream::{self as imap_upstream, ClientAddrs, Identity, LoggedIn};
use crate::login::{LoginOutcome, LoginRequest, Verdict, record_upstream_error, upstream_for};
use crate::metrics as m;
use crate::net::Stream;
use crate::policy::DenyReason;
use crate::protocol::Protocol;
use crate::relay::{self, RelayOptions};
use crate::server::{ListenerContext, SessionGauge, accept_tls, upgrade_tls};
use crate::shutdown::goodbye;
use crate::upstream::UpstreamError;

/// Why a login did not lead to a session.
enum LoginFailure {
    /// Refused: counts as a failed attempt. `code` is the RFC 5530 response code.
    Denied { code: &'static str, text: String },
    /// Could not be carried out now; the client may retry.
    Unavailable,
}

/// How the pre-login phase ended. Returned once per session, so the
/// variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Prelogin {
    LoggedIn {
        attempt: LoginAttempt,
        upstream: LoggedIn,
        frontend: ImapFrontend,
    },
    Closed,
}

/// Serves one client connection until it ends.
pub async fn serve(tcp: TcpStream, peer: SocketAddr, ctx: Arc<ListenerContext>) {
    let started = Instant::now();
    let mut gauge = SessionGauge::prelogin(Protocol::Imap);
    // Everything up to the relay (handshake, pre-login, login, handoff) runs
    // in its own allocation, freed at login: the task itself is only as
    // large as the relay's state for the hours a session may stay in IDLE
    // (with all of it inline, an IMAP session's task was 17 KiB; now ~1 KiB).
    let Some((client, upstream_stream)) = Box::pin(open(tcp, peer, &ctx, started)).await else {
        return;
    };

    gauge.to_relay();
    let counter = m::RelayCounter::new(Protocol::Imap);
    let opts = RelayOptions {
        buffer_bytes: ctx.limits.relay_buffer_bytes,
        idle_timeout: ctx.limits.idle_timeout(Protocol::Imap),
    };
    let (stats, end) =
        relay::relay_until(client, upstream_stream, opts, &counter, ctx.shutdown.closing()).await;
    let duration = started.elapsed();
    metrics::histogram!(m::SESSION_DURATION_SECONDS, "protocol" => "imap").record(duration.as_secs_f64());
    info!(
        protocol = "imap",
        listener = %ctx.listener.name,
        peer = %peer,
        duration_ms = duration.as_millis() as u64,
        bytes_in = stats.client_to_upstream,
        bytes_out = stats.upstream_to_client,
        result = end.label(),
        "session ended"
    );
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
        greeting: ctx.greeting.clone(),
    };
    let frontend = ImapFrontend::new(opts, stream.is_tls());
    let mut stream = Some(stream);
    let deadline = started + ctx.limits.prelogin_timeout();
    let addrs = ClientAddrs { peer, local };

    let outcome = ctx
        .shutdown
        .or_draining(tokio::time::timeout_at(
            deadline,
            prelogin(&mut stream, frontend, ctx, addrs),
        ))
        .await;
    let Some(outcome) = outcome else {
        goodbye(stream, b"* BYE Server shutting down\r\n").await;
        return None;
    };
    let (attempt, upstream, frontend) = match outcome {
        Ok(Ok(Prelogin::LoggedIn {
            attempt,
            upstream,
            frontend,
        })) => (attempt, upstream, frontend),
        Ok(Ok(Prelogin::Closed)) | Ok(Err(_)) => return None,
        Err(_) => {
            metrics::counter!(m::CLIENT_ERRORS_TOTAL, "protocol" => "imap", "kind" => "prelogin_timeout")
                .increment(1);
            goodbye(stream, b"* BYE Disconnected: login timeout\r\n").await;
            return None;
        }
    };
    let mut client = stream?;

    // Anything the client pipelined behind its login goes upstream first,
    // anything the upstream sent behind its OK goes to the client.
    let pipelined = frontend.into_pipelined();
    let LoggedIn { conn, capabilities } = upstream;
    let crate::upstream::Connection {
        stream: mut upstream_stream,
        buf: upstream_buf,
    } = conn;
    let mut reply = attempt.tag.clone();
    match capabilities {
        Some(caps) => reply.extend_from_slice(format!(" OK [CAPABILITY {caps}] Logged in\r\n").as_bytes()),
        None => reply.extend_from_slice(b" OK Logged in\r\n"),
    }
    reply.extend_from_slice(&upstream_buf);
    let handoff = async {
        client.write_all(&reply).await?;
        client.flush().await?;
        if !pipelined.is_empty() {
            upstream_stream.write_all(&pipelined).await?;
            upstream_stream.flush().await?;
        }
        Ok::<_, std::io::Error>(())
    };
    if let Err(e) = handoff.await {
        info!(peer = %peer, listener = %ctx.listener.name, error = %e, "imap session ended during handoff");
        return None;
    }
    Some((client, upstream_stream))
}

/// Runs the front-end until a login succeeds or the client goes away.
async fn prelogin(
    stream: &mut Option<Stream>,
    mut frontend: ImapFrontend,
    ctx: &ListenerContext,
    addrs: ClientAddrs,
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
                    let client_name = frontend.client_id().summary();
                    match login(ctx, &attempt, addrs, tls, client_name).await {
                        Ok(upstream) => {
                            return Ok(Prelogin::LoggedIn {
                                attempt,
                                upstream,
                                frontend,
                            });
                        }
                        Err(LoginFailure::Denied { code, text }) => {
                            let (reply, close) = frontend.login_failed(&attempt.tag, code, &text);
                            let s = stream.as_mut().expect("stream present");
                            s.write_all(&reply).await?;
                            if close {
                                s.flush().await?;
                                let _ = s.shutdown().await;
                                return Ok(Prelogin::Closed);
                            }
                        }
                        Err(LoginFailure::Unavailable) => {
                            let reply = frontend.login_unavailable(
                                &attempt.tag,
                                "The mail server is not available now. Try again later.",
                            );
                            stream.as_mut().expect("stream present").write_all(&reply).await?;
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
    let kind = if reply.starts_with(b"* BYE Command line too long") {
        "line_too_long"
    } else if reply.windows(8).any(|w| w == b"[TOOBIG]") {
        "literal_too_big"
    } else if reply.windows(20).any(|w| w == b"BAD Invalid command:") {
        "syntax"
    } else if reply.windows(15).any(|w| w == b"BAD Unknown com") {
        "unknown_command"
    } else if reply.windows(17).any(|w| w == b"[PRIVACYREQUIRED]") {
        "login_before_tls"
    } else {
        return;
    };
    metrics::counter!(m::CLIENT_ERRORS_TOTAL, "protocol" => "imap", "kind" => kind).increment(1);
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
    let (outcome, result) = match ctx.gate.check(request).await {
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
            let connect_started = Instant::now();
            let result = tokio::time::timeout(
                ctx.limits.upstream_login_timeout(),
                imap_upstream::login(&upstream, identity, addrs),
            )
            .await
            .unwrap_or(Err(UpstreamError::Timeout));
            metrics::histogram!(m::UPSTREAM_CONNECT_DURATION_SECONDS, "protocol" => "imap", "upstream" => ctx.upstream_label.clone())
                .record(connect_started.elapsed().as_secs_f64());
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
                    record_upstream_error(Protocol::Imap, &ctx.upstream_label, &e);
                    (
                        LoginOutcome::Unavailable("upstream_unavailable"),
                        Err(LoginFailure::Unavailable),
                    )
                }
            }
        }
    };
    crate::login::record(
        Protocol::Imap,
        attempt.mechanism.as_str(),
        &outcome,
        addrs.peer,
        &creds.authcid,
        started,
    );
    result
}
