//! SMTP submission: the pre-login front-end (pure), the upstream login,
//! the post-login guard with the PEC submission checks, and the protocol's
//! hooks into the one session.

pub mod address;
pub mod checks;
mod end_scan;
pub mod frontend;
pub mod guard;
pub mod parse;
pub mod reply;
pub mod upstream;

use checks::HeaderRules;
use frontend::{FrontendOptions, LoginAttempt, SmtpFrontend};
use guard::{Guard, GuardOptions};
use upstream::LoggedIn;

use crate::access::Credentials;
use crate::config::TlsMode;
use crate::net::ClientAddrs;
use crate::protocol::Protocol;
use crate::session::{self, Goodbyes, Guarded, Handoff, ListenerContext, MailProtocol, Principal};
use crate::upstream::{Identity, Upstream, UpstreamError};

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
        revoked: reply::REVOKED,
        lifetime: reply::SESSION_LIFETIME,
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
                recipients: checks.recipients,
                max_line_bytes: ctx.limits.smtp_max_text_line_bytes,
            },
            max_message_bytes: checks.max_message_bytes,
            max_command_line_bytes: ctx.limits.smtp_max_command_line_bytes,
            max_header_bytes: ctx.limits.smtp_max_header_bytes,
        };
        let guard = Guard::new(opts, principal.mailbox, ctx.send_rate.clone(), &[]);
        let conn = logged_in.conn;
        Handoff {
            to_client: reply::line(reply::AUTH_OK),
            to_upstream: Vec::new(),
            upstream: conn.stream,
            guard: Some(Guarded {
                inspector: guard,
                from_client: pipelined.to_vec(),
                from_upstream: conn.buf.to_vec(),
            }),
        }
    }
}
