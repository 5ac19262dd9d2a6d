//! Drives one SMTP client connection: TLS, the pre-login front-end, the
//! login (policy, then upstream), and the post-login guard. The protocol
//! logic lives in the pure [`super::frontend`] and [`super::guard`]; this
//! is the I/O edge.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::info;

use super::checks::HeaderRules;
use super::frontend::{Event, FrontendOptions, Greeting, LoginAttempt, SmtpFrontend};
use super::guard::{Guard, GuardOptions};
use super::reply;
use super::upstream::{self as smtp_upstream, Identity, LoggedIn};
use crate::login::{LoginOutcome, LoginRequest, Verdict, record_upstream_error, upstream_for};
use crate::metrics as m;
use crate::net::Stream;
use crate::policy::DenyReason;
use crate::protocol::Protocol;
use crate::relay::{ByteCounter, RelayOptions};
use crate::server::{ListenerContext, SessionGauge, accept_tls, upgrade_tls};
use crate::shutdown::goodbye;
use crate::upstream::UpstreamError;

/// RFC 5321 §4.5.3.2.6: a client waits 10 minutes for the reply to the
/// final dot; the proxy waits as long for the upstream's.
const DATA_VERDICT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Why a login did not lead to a session: the whole reply line.
enum LoginFailure {
    /// Refused: counts as a failed attempt.
    Denied(String),
    /// Could not be carried out now; the client may retry.
    Unavailable(&'static str),
}

struct Session {
    upstream: LoggedIn,
    frontend: SmtpFrontend,
    mailbox: String,
}

/// Serves one client connection until it ends.
pub async fn serve(tcp: TcpStream, peer: SocketAddr, ctx: Arc<ListenerContext>) {
    let started = Instant::now();
    let mut gauge = SessionGauge::prelogin(Protocol::Smtp);
    // The handshake and the pre-login phase run in their own allocations,
    // freed at login: the task itself stays small for the hours a session
    // may relay (inline, they made an IMAP session's task 17 KiB).
    let Some(stream) = Box::pin(accept_tls(tcp, &ctx)).await else {
        return;
    };
    let opts = FrontendOptions {
        starttls: ctx.listener.tls == crate::config::TlsMode::Starttls,
        allow_plaintext_login: ctx.listener.allow_plaintext_login,
        hostname: ctx.smtp.hostname.clone(),
        max_message_bytes: ctx.smtp.checks.max_message_bytes,
        max_command_line_bytes: ctx.limits.smtp_max_command_line_bytes,
        max_auth_line_bytes: ctx.limits.smtp_max_auth_line_bytes,
        max_login_failures: ctx.limits.max_login_failures,
    };
    let frontend = SmtpFrontend::new(opts, stream.is_tls());
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
        // RFC 5321 §3.8 and RFC 3463 X.3.2: shutting down, try again later.
        Box::pin(goodbye(stream, b"421 4.3.2 Service shutting down\r\n")).await;
        return;
    };
    let session = match outcome {
        Ok(Ok(Some(session))) => session,
        Ok(Ok(None)) | Ok(Err(_)) => return,
        Err(_) => {
            metrics::counter!(m::CLIENT_ERRORS_TOTAL, "protocol" => "smtp", "kind" => "prelogin_timeout")
                .increment(1);
            Box::pin(goodbye(stream, &reply::line(reply::LOGIN_TIMEOUT))).await;
            return;
        }
    };
    let Some(mut client) = stream else { return };
    let Session {
        upstream,
        frontend,
        mailbox,
    } = session;
    let tls = client.is_tls();
    let (_, pipelined) = frontend.into_logged_in();
    if client.write_all(&reply::line(reply::AUTH_OK)).await.is_err() {
        return;
    }

    gauge.to_relay();
    let checks = &ctx.smtp.checks;
    let opts = GuardOptions {
        hostname: ctx.smtp.hostname.clone(),
        tls,
        smtputf8: upstream.smtputf8,
        check_sender: checks.sender,
        check_size: checks.size,
        header_rules: HeaderRules {
            from_header: checks.from_header,
            no_bcc: checks.no_bcc,
            max_line_bytes: ctx.limits.smtp_max_text_line_bytes,
        },
        max_message_bytes: checks.max_message_bytes,
        max_command_line_bytes: ctx.limits.smtp_max_command_line_bytes,
        max_header_bytes: ctx.limits.smtp_max_header_bytes,
    };
    let guard = Guard::new(opts, mailbox, ctx.smtp.limiter.clone(), &pipelined);
    let counter = m::RelayCounter::new(Protocol::Smtp);
    let idle = ctx.limits.idle_timeout(Protocol::Smtp);
    let mut up = upstream.conn.stream;
    let leftover = upstream.conn.buf;
    let (c2u, u2c, end) = guarded_relay(
        &mut client,
        &mut up,
        guard,
        &leftover,
        RelayOptions {
            buffer_bytes: ctx.limits.relay_buffer_bytes,
            idle_timeout: idle,
        },
        &counter,
        ctx.shutdown.closing(),
    )
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(1), client.shutdown()).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), up.shutdown()).await;
    let duration = started.elapsed();
    metrics::histogram!(m::SESSION_DURATION_SECONDS, "protocol" => "smtp").record(duration.as_secs_f64());
    info!(
        protocol = "smtp",
        listener = %ctx.listener.name,
        peer = %peer,
        duration_ms = duration.as_millis() as u64,
        bytes_in = c2u,
        bytes_out = u2c,
        result = end,
        "session ended"
    );
}

/// Runs the guard between client and upstream until either side ends.
/// Returns bytes client→upstream, upstream→client, and how it ended.
async fn guarded_relay<C, U>(
    client: &mut C,
    upstream: &mut U,
    mut guard: Guard,
    leftover: &[u8],
    opts: RelayOptions,
    counter: &dyn ByteCounter,
    stop: impl Future<Output = ()>,
) -> (u64, u64, &'static str)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut c2u, mut u2c) = (0u64, 0u64);
    let idle = opts.idle_timeout;
    let mut cbuf = vec![0u8; opts.buffer_bytes];
    let mut ubuf = vec![0u8; opts.buffer_bytes];
    if !leftover.is_empty() {
        guard.upstream_data(leftover);
    }
    tokio::pin!(stop);
    loop {
        let to_upstream = guard.take_to_upstream();
        if !to_upstream.is_empty() {
            match tokio::time::timeout(idle, upstream.write_all(&to_upstream)).await {
                Ok(Ok(())) => {}
                _ => guard.upstream_closed(),
            }
            let _ = tokio::time::timeout(idle, upstream.flush()).await;
            c2u += to_upstream.len() as u64;
            counter.client_to_upstream(to_upstream.len() as u64);
        }
        let to_client = guard.take_to_client();
        if !to_client.is_empty() {
            let write = async {
                client.write_all(&to_client).await?;
                client.flush().await
            };
            if !matches!(tokio::time::timeout(idle, write).await, Ok(Ok(()))) {
                return (c2u, u2c, "client_error");
            }
            u2c += to_client.len() as u64;
            counter.upstream_to_client(to_client.len() as u64);
        }
        if guard.finished() {
            return (c2u, u2c, "closed");
        }
        let wait = if guard.awaiting_message_verdict() {
            DATA_VERDICT_TIMEOUT
        } else {
            idle
        };
        let want_client = guard.wants_client_input();
        tokio::select! {
            // The drain's grace period is over: close, injecting nothing.
            _ = &mut stop => return (c2u, u2c, "shutdown"),
            r = client.read(&mut cbuf), if want_client => match r {
                Ok(0) | Err(_) => return (c2u, u2c, "client_closed"),
                Ok(n) => guard.client_data(&cbuf[..n]),
            },
            r = upstream.read(&mut ubuf) => match r {
                Ok(0) | Err(_) => guard.upstream_closed(),
                Ok(n) => guard.upstream_data(&ubuf[..n]),
            },
            _ = tokio::time::sleep(wait) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), client.write_all(&reply::line(reply::IDLE_TIMEOUT))).await;
                return (c2u, u2c, "idle_timeout");
            }
        }
    }
}

/// Runs the front-end until a login succeeds or the client goes away.
async fn prelogin(
    stream: &mut Option<Stream>,
    mut frontend: SmtpFrontend,
    ctx: &ListenerContext,
    peer: SocketAddr,
) -> std::io::Result<Option<Session>> {
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
                        None => return Ok(None),
                    }
                }
                Event::Close => {
                    s.flush().await?;
                    let _ = s.shutdown().await;
                    return Ok(None);
                }
                Event::Login(attempt) => {
                    s.flush().await?;
                    let tls = s.is_tls();
                    let greeting = frontend.client_greeting().cloned().unwrap_or(Greeting {
                        name: "unknown".into(),
                        esmtp: true,
                    });
                    let reply = match login(ctx, &attempt, peer, tls, &greeting.name).await {
                        Ok((upstream, mailbox)) => {
                            return Ok(Some(Session {
                                upstream,
                                frontend,
                                mailbox,
                            }));
                        }
                        Err(LoginFailure::Denied(line)) => {
                            let (reply, close) = frontend.login_failed(&line);
                            if close {
                                let s = stream.as_mut().expect("stream present");
                                s.write_all(&reply).await?;
                                s.flush().await?;
                                let _ = s.shutdown().await;
                                return Ok(None);
                            }
                            reply
                        }
                        Err(LoginFailure::Unavailable(line)) => frontend.login_unavailable(line),
                    };
                    stream.as_mut().expect("stream present").write_all(&reply).await?;
                }
            }
        }
        let s = stream.as_mut().expect("stream present until handed off");
        s.flush().await?;
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        frontend.receive(&buf[..n]);
    }
}

/// Counts the front-end's refusals of bad input, by kind.
fn count_refusals(reply: &[u8]) {
    let kind = if reply.starts_with(reply::LINE_TOO_LONG.as_bytes())
        || reply.starts_with(reply::AUTH_LINE_TOO_LONG.as_bytes())
    {
        "line_too_long"
    } else if reply.starts_with(b"500 5.5.2") || reply.starts_with(b"501 5.5.4") {
        "syntax"
    } else if reply.starts_with(reply::UNKNOWN_COMMAND.as_bytes()) {
        "unknown_command"
    } else if reply.starts_with(reply::STARTTLS_FIRST.as_bytes()) || reply.starts_with(b"538 ") {
        "login_before_tls"
    } else if reply.starts_with(reply::AUTH_REQUIRED.as_bytes()) {
        "auth_required"
    } else if reply.starts_with(reply::BAD_BASE64.as_bytes()) {
        "bad_base64"
    } else {
        return;
    };
    metrics::counter!(m::CLIENT_ERRORS_TOTAL, "protocol" => "smtp", "kind" => kind).increment(1);
}

/// The login step: the gate (account store rules, or pass-through), then
/// the upstream login as the mailbox. Returns the session and the mailbox
/// every sender must be.
async fn login(
    ctx: &ListenerContext,
    attempt: &LoginAttempt,
    peer: SocketAddr,
    tls: bool,
    client_name: &str,
) -> Result<(LoggedIn, String), LoginFailure> {
    let started = Instant::now();
    let creds = &attempt.credentials;
    let request = LoginRequest {
        protocol: Protocol::Smtp,
        credentials: creds,
        peer,
        tls,
        client_name: None,
        separator: ctx.login_name_separator,
    };
    let (outcome, result) = match ctx.gate.check(request).await {
        Err(denial) => {
            let failure = if denial.reason == DenyReason::StoreUnavailable {
                LoginFailure::Unavailable(reply::UPSTREAM_UNAVAILABLE)
            } else {
                LoginFailure::Denied(denial.smtp_reply())
            };
            (LoginOutcome::Denied(denial.reason), Err(failure))
        }
        Ok(verdict) => {
            let upstream = upstream_for(&ctx.upstream, &verdict);
            let (identity, mailbox) = match &verdict {
                Verdict::PassThrough => (
                    Identity::Client {
                        user: &creds.authcid,
                        password: &creds.password,
                    },
                    String::from_utf8_lossy(&creds.authcid).to_lowercase(),
                ),
                Verdict::Mailbox(permit) => (Identity::Mailbox(&permit.mailbox), permit.mailbox.clone()),
            };
            let connect_started = Instant::now();
            let result = tokio::time::timeout(
                ctx.limits.upstream_login_timeout(),
                smtp_upstream::login(&upstream, identity, peer.ip(), client_name, &ctx.smtp.hostname),
            )
            .await
            .unwrap_or(Err(UpstreamError::Timeout));
            metrics::histogram!(m::UPSTREAM_CONNECT_DURATION_SECONDS, "protocol" => "smtp", "upstream" => ctx.upstream_label.clone())
                .record(connect_started.elapsed().as_secs_f64());
            let collaborator = matches!(&verdict, Verdict::Mailbox(p) if p.collaborator.is_some());
            match (result, &verdict) {
                (Ok(logged_in), _) => (LoginOutcome::Ok { collaborator }, Ok((logged_in, mailbox))),
                // Pass-through: the upstream judged the client's own password.
                (Err(UpstreamError::AuthFailed), Verdict::PassThrough) => (
                    LoginOutcome::UpstreamRefused,
                    Err(LoginFailure::Denied(
                        DenyReason::UnknownOrBadPassword.smtp_reply(),
                    )),
                ),
                // With the proxy's own credentials a refusal is our
                // configuration's fault: the client is told to retry later.
                (Err(e), _) => {
                    record_upstream_error(Protocol::Smtp, &ctx.upstream_label, &e);
                    let line = match e {
                        UpstreamError::Connect(_)
                        | UpstreamError::ConnectTimeout
                        | UpstreamError::Timeout
                        | UpstreamError::Closed => reply::UPSTREAM_NOT_RESPONDING,
                        _ => reply::UPSTREAM_UNAVAILABLE,
                    };
                    (
                        LoginOutcome::Unavailable("upstream_unavailable"),
                        Err(LoginFailure::Unavailable(line)),
                    )
                }
            }
        }
    };
    crate::login::record(
        Protocol::Smtp,
        attempt.mechanism.as_str(),
        &outcome,
        peer,
        &creds.authcid,
        started,
    );
    result
}
