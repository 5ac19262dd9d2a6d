//! SMTP submission: the pre-login front-end (pure), the upstream login,
//! the post-login guard with the PEC submission checks, and the protocol's
//! hooks into the one session.

pub mod checks;
mod end_scan;
pub mod frontend;
pub mod guard;
pub mod parse;
pub mod reply;
pub mod upstream;

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use checks::HeaderRules;
use frontend::{FrontendOptions, LoginAttempt, SmtpFrontend};
use guard::{Guard, GuardOptions};
use upstream::LoggedIn;

use crate::access::Credentials;
use crate::config::TlsMode;
use crate::net::{ClientAddrs, Stream};
use crate::protocol::Protocol;
use crate::relay::{self, ByteCounter, RelayEnd, RelayOptions, RelayStats};
use crate::session::{self, Goodbyes, Handoff, ListenerContext, MailProtocol, Principal};
use crate::upstream::{Identity, Upstream, UpstreamError};

/// RFC 5321 §4.5.3.2.6: a client waits 10 minutes for the reply to the
/// final dot; the proxy waits as long for the upstream's.
const DATA_VERDICT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// SMTP submission, as the session drives it.
pub struct Smtp;

impl session::LoginAttempt for LoginAttempt {
    fn credentials(&self) -> &Credentials {
        &self.credentials
    }
    fn mechanism(&self) -> &'static str {
        self.mechanism.as_str()
    }
}

impl MailProtocol for Smtp {
    const PROTOCOL: Protocol = Protocol::Smtp;
    const GOODBYES: Goodbyes = Goodbyes {
        shutdown: reply::SHUTDOWN,
        timeout: reply::LOGIN_TIMEOUT,
    };
    type Login = LoginAttempt;
    type Frontend = SmtpFrontend;
    type LoggedIn = LoggedIn;
    type Guard = Guard;

    fn frontend(ctx: &ListenerContext, tls: bool) -> SmtpFrontend {
        let opts = FrontendOptions {
            starttls: ctx.listener.tls == TlsMode::Starttls,
            allow_plaintext_login: ctx.listener.allow_plaintext_login,
            hostname: ctx.smtp_hostname.clone(),
            max_message_bytes: ctx.pec_checks.max_message_bytes,
            max_command_line_bytes: ctx.limits.smtp_max_command_line_bytes,
            max_auth_line_bytes: ctx.limits.smtp_max_auth_line_bytes,
            max_login_failures: ctx.limits.max_login_failures,
            max_prelogin_errors: ctx.limits.max_prelogin_errors,
        };
        SmtpFrontend::new(opts, tls)
    }

    /// Logs in with the client's EHLO name (for `XCLIENT HELO`).
    async fn log_in_upstream<'a>(
        one: Upstream,
        identity: Identity<'a>,
        client: ClientAddrs,
        frontend: &'a SmtpFrontend,
        ctx: &'a ListenerContext,
    ) -> Result<LoggedIn, UpstreamError> {
        let name = frontend.client_greeting().map_or("unknown", |g| g.name.as_str());
        upstream::login(&one, identity, client.peer.ip(), name, &ctx.smtp_hostname).await
    }

    /// `235`, and every later command through the PEC guard, the pipelined
    /// ones first; the guard also reads what the upstream sent behind its
    /// login.
    fn handoff(
        ctx: &ListenerContext,
        frontend: SmtpFrontend,
        _attempt: LoginAttempt,
        logged_in: LoggedIn,
        principal: Principal,
        tls: bool,
    ) -> Handoff<Guard> {
        let (_, pipelined) = frontend.into_logged_in();
        let checks = &ctx.pec_checks;
        let opts = GuardOptions {
            hostname: ctx.smtp_hostname.clone(),
            tls,
            smtputf8: logged_in.smtputf8,
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
        let mut guard = Guard::new(opts, principal.mailbox, ctx.send_rate.clone(), &pipelined);
        let conn = logged_in.conn;
        if !conn.buf.is_empty() {
            guard.upstream_data(&conn.buf);
        }
        Handoff {
            to_client: reply::line(reply::AUTH_OK),
            to_upstream: Vec::new(),
            upstream: conn.stream,
            guard: Some(guard),
        }
    }

    async fn relay_guarded(
        ctx: &ListenerContext,
        mut client: Stream,
        mut up: Stream,
        guard: Guard,
        counter: &dyn ByteCounter,
    ) -> (RelayStats, RelayEnd) {
        let opts = RelayOptions {
            buffer_bytes: ctx.limits.relay_buffer_bytes.min(relay::GUARDED_BUFFER_BYTES),
            idle_timeout: ctx.limits.idle_timeout(Protocol::Smtp),
        };
        let (c2u, u2c, end) =
            guarded_relay(&mut client, &mut up, guard, opts, counter, ctx.shutdown.closing()).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), client.shutdown()).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), up.shutdown()).await;
        let stats = RelayStats {
            client_to_upstream: c2u,
            upstream_to_client: u2c,
        };
        (stats, end)
    }
}

/// Runs the guard between client and upstream until either side ends.
/// Returns bytes client→upstream, upstream→client, and how it ended.
async fn guarded_relay<C, U>(
    client: &mut C,
    upstream: &mut U,
    mut guard: Guard,
    opts: RelayOptions,
    counter: &dyn ByteCounter,
    stop: impl Future<Output = ()>,
) -> (u64, u64, RelayEnd)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut c2u, mut u2c) = (0u64, 0u64);
    let idle = opts.idle_timeout;
    let mut cbuf = vec![0u8; opts.buffer_bytes];
    let mut ubuf = vec![0u8; opts.buffer_bytes];
    let mut upstream_lost = false;
    tokio::pin!(stop);
    loop {
        let to_upstream = guard.take_to_upstream();
        if !to_upstream.is_empty() {
            match tokio::time::timeout(idle, upstream.write_all(&to_upstream)).await {
                Ok(Ok(())) => {}
                _ => upstream_lost = guard.upstream_closed(),
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
                return (
                    c2u,
                    u2c,
                    RelayEnd::ClientError(std::io::ErrorKind::BrokenPipe.into()),
                );
            }
            u2c += to_client.len() as u64;
            counter.upstream_to_client(to_client.len() as u64);
        }
        if guard.finished() {
            return (
                c2u,
                u2c,
                if upstream_lost {
                    RelayEnd::UpstreamError(std::io::ErrorKind::UnexpectedEof.into())
                } else {
                    RelayEnd::Closed
                },
            );
        }
        let wait = if guard.awaiting_message_verdict() {
            DATA_VERDICT_TIMEOUT
        } else {
            idle
        };
        let want_client = guard.wants_client_input();
        tokio::select! {
            // The drain's grace period is over: close, injecting nothing.
            _ = &mut stop => return (c2u, u2c, RelayEnd::Shutdown),
            r = client.read(&mut cbuf), if want_client => match r {
                Ok(0) | Err(_) => return (c2u, u2c, RelayEnd::Closed),
                Ok(n) => guard.client_data(&cbuf[..n]),
            },
            r = upstream.read(&mut ubuf) => match r {
                Ok(0) | Err(_) => upstream_lost = guard.upstream_closed(),
                Ok(n) => guard.upstream_data(&ubuf[..n]),
            },
            _ = tokio::time::sleep(wait) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), client.write_all(&reply::line(reply::IDLE_TIMEOUT))).await;
                return (c2u, u2c, RelayEnd::IdleTimeout);
            }
        }
    }
}
