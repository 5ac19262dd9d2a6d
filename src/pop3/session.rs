//! Drives one POP3 client connection: TLS, the pre-login front-end, the
//! login (the shared gate, then upstream), and the relay, guarded when the
//! mailbox keeps its messages on the server. The protocol logic lives in
//! the pure [`super::frontend`] and [`super::guard`]; this is the I/O edge.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::info;

use super::frontend::{FrontendOptions, LoginAttempt, Pop3Frontend};
use super::guard::DeleGuard;
use super::upstream::{self as pop3_upstream, Identity, LoginError};
use crate::access::gate::{
    LoginOutcome, LoginRequest, Verdict, record_upstream_error, upstream_for, upstream_login,
};
use crate::access::policy::DenyReason;
use crate::listener::client_limits::Admission;
use crate::listener::{ListenerContext, SessionGauge, accept_tls};
use crate::ops::metrics as m;
use crate::protocol::Protocol;
use crate::relay::{self, RelayOptions};
use crate::session::{self, Goodbyes, LoginResult, LoginStep};
use crate::store::account::Pop3Delete;
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

/// Serves one client connection until it ends.
pub async fn serve(tcp: TcpStream, peer: SocketAddr, ctx: Arc<ListenerContext>, mut admission: Admission) {
    let started = Instant::now();
    let mut gauge = SessionGauge::prelogin(Protocol::Pop3);

    // The handshake and pre-login futures are boxed: the task stays as small
    // as the relay's state for the hours a session lasts.
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
    let mut frontend = Pop3Frontend::new(opts, stream.is_tls());
    let goodbyes = Goodbyes {
        // RFC 3206 §4: SYS/TEMP, the client may come back later.
        shutdown: b"-ERR [SYS/TEMP] Server shutting down\r\n",
        timeout: b"-ERR Disconnected: login timeout\r\n",
        too_many_errors: b"-ERR Too many invalid commands\r\n",
    };
    let step = Pop3Login { ctx: &ctx, peer };
    let phase = session::prelogin_phase(
        stream,
        &mut frontend,
        &ctx,
        started,
        count_refusals,
        step,
        goodbyes,
    );
    let Some((mut client, upstream)) = Box::pin(phase).await else {
        return;
    };

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
    // Bounded like the relay that follows: a client that stopped reading
    // must not hold the session (and the upstream's lock on the mailbox).
    let idle_timeout = ctx.limits.idle_timeout(Protocol::Pop3);
    let handoff = tokio::time::timeout(idle_timeout, handoff)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client not reading",
            ))
        });
    if let Err(e) = handoff {
        info!(peer = %peer, listener = %ctx.listener.name, error = %e, "pop3 session ended during handoff");
        return;
    }

    gauge.to_relay();
    admission.logged_in();
    let counter = m::RelayCounter::new(Protocol::Pop3);
    let opts = RelayOptions {
        buffer_bytes: ctx.limits.relay_buffer_bytes,
        idle_timeout,
    };
    let (stats, end) = if guarded {
        let guard = DeleGuard::new(ctx.limits.pop3_max_line_bytes);
        let stop = ctx.shutdown.closing();
        let opts = RelayOptions {
            buffer_bytes: opts.buffer_bytes.min(relay::GUARDED_BUFFER_BYTES),
            ..opts
        };
        let handoff = relay::guarded::Handoff {
            from_client: &pipelined,
            from_upstream: b"",
        };
        relay::guarded::relay(client, upstream_stream, guard, handoff, opts, &counter, stop).await
    } else {
        relay::relay_until(client, upstream_stream, opts, &counter, ctx.shutdown.closing()).await
    };
    session::ended(Protocol::Pop3, &ctx, peer, started, stats, end.label());
}

/// The POP3 login step for [`session::prelogin`].
struct Pop3Login<'a> {
    ctx: &'a ListenerContext,
    peer: SocketAddr,
}

impl LoginStep<Pop3Frontend> for Pop3Login<'_> {
    type Session = LoggedIn;

    async fn login(
        &mut self,
        fe: &mut Pop3Frontend,
        attempt: LoginAttempt,
        tls: bool,
    ) -> LoginResult<LoggedIn> {
        match login(self.ctx, &attempt, self.peer, tls).await {
            Ok(upstream) => LoginResult::LoggedIn(upstream),
            Err(failure) => {
                let (reply, close) = fe.refused_with(&failure.line, failure.counts);
                LoginResult::Refused { reply, close }
            }
        }
    }
}

/// Counts the front-end's refusals of bad input, by kind; says whether
/// `reply` was one.
fn count_refusals(reply: &[u8]) -> bool {
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
    } else if reply.starts_with(b"-ERR Authentication failed:")
        || reply.starts_with(b"-ERR Invalid authentication exchange")
    {
        // Undecodable or malformed SASL data (SMTP's name for the same).
        "bad_base64"
    } else {
        return false;
    };
    metrics::counter!(m::CLIENT_ERRORS_TOTAL, "protocol" => "pop3", "kind" => kind).increment(1);
    true
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
    let (outcome, result) = match ctx.gate.check(&request).await {
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
            let result = upstream_login(ctx, &upstream, |one| async move {
                pop3_upstream::login(&one, identity, peer).await
            })
            .await;
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
                    if !e.reported_by_failover() {
                        record_upstream_error(Protocol::Pop3, &ctx.upstream_label, &e);
                    }
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
    ctx.gate
        .record(&request, attempt.mechanism.as_str(), &outcome, started);
    result
}
