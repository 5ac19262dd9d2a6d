//! Drives one SMTP client connection: TLS, the pre-login front-end, the
//! login (policy, then upstream), and the post-login guard. The protocol
//! logic lives in the pure [`super::frontend`] and [`super::guard`]; this
//! is the I/O edge.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::checks::HeaderRules;
use super::frontend::{FrontendOptions, Greeting, LoginAttempt, SmtpFrontend};
use super::guard::{Guard, GuardOptions};
use super::reply;
use super::upstream::{self as smtp_upstream, Identity, LoggedIn};
use crate::access::gate::{
    LoginOutcome, LoginRequest, Verdict, record_upstream_error, upstream_for, upstream_login,
};
use crate::access::policy::DenyReason;
use crate::listener::client_limits::Admission;
use crate::listener::{ListenerContext, SessionGauge, accept_tls};
use crate::ops::metrics as m;
use crate::protocol::Protocol;
use crate::relay::RelayOptions;
use crate::relay::guarded::{self, Handoff};
use crate::session::{self, Goodbyes, LoginResult, LoginStep};
use crate::upstream::UpstreamError;

/// Why a login did not lead to a session: the whole reply line.
enum LoginFailure {
    /// Refused: counts as a failed attempt.
    Denied(String),
    /// Could not be carried out now; the client may retry.
    Unavailable(&'static str),
}

/// Serves one client connection until it ends.
pub async fn serve(tcp: TcpStream, peer: SocketAddr, ctx: Arc<ListenerContext>, mut admission: Admission) {
    let started = Instant::now();
    let mut gauge = SessionGauge::prelogin(Protocol::Smtp);
    // The handshake and pre-login futures are boxed: the task stays as small
    // as the relay's state for the hours a session lasts.
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
    let mut frontend = SmtpFrontend::new(opts, stream.is_tls());
    let timeout_line = reply::line(reply::LOGIN_TIMEOUT);
    let goodbyes = Goodbyes {
        // RFC 5321 §3.8 and RFC 3463 X.3.2: shutting down, try again later.
        shutdown: b"421 4.3.2 Service shutting down\r\n",
        timeout: &timeout_line,
        // RFC 5321 §3.8: 421 closes the session; 4.7.0 as for the per-address refusal.
        too_many_errors: b"421 4.7.0 Too many invalid commands, closing connection\r\n",
    };
    let step = SmtpLogin { ctx: &ctx, peer };
    let phase = session::prelogin_phase(
        stream,
        &mut frontend,
        &ctx,
        started,
        count_refusals,
        step,
        goodbyes,
    );
    let Some((mut client, (upstream, mailbox))) = Box::pin(phase).await else {
        return;
    };
    let tls = client.is_tls();
    let (_, pipelined) = frontend.into_logged_in();
    // Bounded like the relay that follows (a client that stopped reading).
    let idle = ctx.limits.idle_timeout(Protocol::Smtp);
    if !matches!(
        tokio::time::timeout(idle, client.write_all(&reply::line(reply::AUTH_OK))).await,
        Ok(Ok(()))
    ) {
        return;
    }

    gauge.to_relay();
    admission.logged_in();
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
    let mut up = upstream.conn.stream;
    let leftover = upstream.conn.buf;
    let (stats, end) = guarded::relay(
        &mut client,
        &mut up,
        guard,
        Handoff {
            from_client: b"",
            from_upstream: &leftover,
        },
        RelayOptions {
            buffer_bytes: ctx
                .limits
                .relay_buffer_bytes
                .min(crate::relay::GUARDED_BUFFER_BYTES),
            idle_timeout: idle,
        },
        &counter,
        ctx.shutdown.closing(),
    )
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(1), client.shutdown()).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), up.shutdown()).await;
    session::ended(Protocol::Smtp, &ctx, peer, started, stats, end.label());
}

/// The SMTP login step for [`session::prelogin`]: on success, the upstream
/// session and the mailbox every sender must be.
struct SmtpLogin<'a> {
    ctx: &'a ListenerContext,
    peer: SocketAddr,
}

impl LoginStep<SmtpFrontend> for SmtpLogin<'_> {
    type Session = (LoggedIn, String);

    async fn login(
        &mut self,
        fe: &mut SmtpFrontend,
        attempt: LoginAttempt,
        tls: bool,
    ) -> LoginResult<Self::Session> {
        let greeting = fe.client_greeting().cloned().unwrap_or(Greeting {
            name: "unknown".into(),
            esmtp: true,
        });
        match login(self.ctx, &attempt, self.peer, tls, &greeting.name).await {
            Ok(logged_in) => LoginResult::LoggedIn(logged_in),
            Err(LoginFailure::Denied(line)) => {
                let (reply, close) = fe.login_failed(&line);
                LoginResult::Refused { reply, close }
            }
            Err(LoginFailure::Unavailable(line)) => LoginResult::Refused {
                reply: fe.login_unavailable(line),
                close: false,
            },
        }
    }
}

/// Counts the front-end's refusals of bad input, by kind; says whether
/// `reply` was one.
fn count_refusals(reply: &[u8]) -> bool {
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
        return false;
    };
    metrics::counter!(m::CLIENT_ERRORS_TOTAL, "protocol" => "smtp", "kind" => kind).increment(1);
    true
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
    let (outcome, result) = match ctx.gate.check(&request).await {
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
            let hostname = &ctx.smtp.hostname;
            let result = upstream_login(ctx, &upstream, |one| async move {
                smtp_upstream::login(&one, identity, peer.ip(), client_name, hostname).await
            })
            .await;
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
                    if !e.reported_by_failover() {
                        record_upstream_error(Protocol::Smtp, &ctx.upstream_label, &e);
                    }
                    (
                        LoginOutcome::Unavailable("upstream_unavailable"),
                        Err(LoginFailure::Unavailable(unavailable_reply(&e))),
                    )
                }
            }
        }
    };
    ctx.gate
        .record(&request, attempt.mechanism.as_str(), &outcome, started);
    result
}

/// The temporary reply (RFC 4954 §6 `454`) to a login the upstream could
/// not carry out. The connection failing, at any step, is `4.4.1` (RFC 3463
/// "no answer from host"): a reset mid-login surfaces as a read error or as
/// end of stream depending on timing, and both must read the same. The
/// server answering but not as it should is `4.7.0`, RFC 4954's temporary
/// authentication failure.
fn unavailable_reply(e: &UpstreamError) -> &'static str {
    match e {
        UpstreamError::Connect(_)
        | UpstreamError::ConnectTimeout
        | UpstreamError::Timeout
        | UpstreamError::Closed
        | UpstreamError::Io(_) => reply::UPSTREAM_NOT_RESPONDING,
        _ => reply::UPSTREAM_UNAVAILABLE,
    }
}

#[cfg(test)]
mod tests;
