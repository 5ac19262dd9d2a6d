//! IMAP (RFC 3501/9051 before login): the pre-login front-end (pure) and
//! its words, the upstream login, the guard of sessions that may not change
//! everything (pure, run by [`crate::relay::guarded`]), and the protocol's
//! hooks into the one session.

pub mod frontend;
pub mod guard;
pub mod parse;
pub mod reply;
pub mod upstream;

use frontend::{FrontendOptions, ImapFrontend, LoginAttempt};
use guard::{Access, ImapGuard};
use upstream::LoggedIn;

use crate::access::Credentials;
use crate::config::TlsMode;
use crate::net::ClientAddrs;
use crate::protocol::Protocol;
use crate::session::{self, Goodbyes, Guarded, Handoff, ListenerContext, MailProtocol, Principal};
use crate::store::account::Pop3Delete;
use crate::upstream::{Identity, Upstream, UpstreamError};

/// IMAP, as the session drives it.
pub struct Imap;

/// A guard that is never used: this type has no value. For the session's
/// tests, whose scripted protocol has no guard.
#[cfg(test)]
pub enum NoGuard {}

#[cfg(test)]
impl crate::relay::guarded::Inspector for NoGuard {
    fn client_data(&mut self, _: &[u8], _: &mut crate::relay::guarded::Output) {
        match *self {}
    }
    fn upstream_data(&mut self, _: &[u8], _: &mut crate::relay::guarded::Output) {
        match *self {}
    }
}

impl session::LoginAttempt for LoginAttempt {
    fn credentials(&self) -> &Credentials {
        &self.credentials
    }
    fn mechanism(&self) -> &'static str {
        self.mechanism.as_str()
    }
}

impl MailProtocol for Imap {
    const PROTOCOL: Protocol = Protocol::Imap;
    const GOODBYES: Goodbyes = Goodbyes {
        shutdown: reply::SHUTDOWN,
        timeout: reply::LOGIN_TIMEOUT,
        revoked: reply::REVOKED,
        lifetime: reply::SESSION_LIFETIME,
    };
    type Login = LoginAttempt;
    type Frontend = ImapFrontend;
    type LoggedIn = LoggedIn;
    type Guard = ImapGuard;

    fn frontend(ctx: &ListenerContext, tls: bool) -> ImapFrontend {
        let opts = FrontendOptions {
            starttls: ctx.listener.tls == TlsMode::Starttls,
            allow_plaintext_login: ctx.listener.allow_plaintext_login,
            max_line_bytes: ctx.limits.imap_max_line_bytes,
            max_literal_bytes: ctx.limits.imap_max_literal_bytes,
            max_login_failures: ctx.limits.max_login_failures,
            max_prelogin_errors: ctx.limits.max_prelogin_errors,
            greeting: ctx.greeting.clone(),
        };
        ImapFrontend::new(opts, tls)
    }

    fn client_name(frontend: &ImapFrontend) -> Option<String> {
        frontend.client_id().summary()
    }

    async fn log_in_upstream<'a>(
        one: Upstream,
        identity: Identity<'a>,
        client: ClientAddrs,
        _frontend: &'a ImapFrontend,
        _ctx: &'a ListenerContext,
    ) -> Result<LoggedIn, UpstreamError> {
        upstream::login(&one, identity, client).await
    }

    /// The tagged `OK` with the capabilities the server announced after
    /// login; anything the upstream sent behind its `OK` follows, and what
    /// the client pipelined behind its login goes upstream first. A session
    /// that may not change everything (keep on server, or a collaborator
    /// without `write`) goes through the guard, its capabilities without
    /// `COMPRESS=`; the others keep the plain relay.
    fn handoff(
        _ctx: &ListenerContext,
        frontend: ImapFrontend,
        attempt: LoginAttempt,
        logged_in: LoggedIn,
        principal: Principal,
        _tls: bool,
    ) -> Handoff<ImapGuard> {
        let LoggedIn { conn, capabilities } = logged_in;
        let pipelined = frontend.into_pipelined().to_vec();
        let access = match principal.pop3_delete {
            Pop3Delete::Allow => None,
            Pop3Delete::Deny => Some(Access::KeepOnServer),
            Pop3Delete::ReadOnly => Some(Access::ReadOnly),
        };
        let Some(access) = access else {
            let mut to_client = reply::logged_in(&attempt.tag, capabilities.as_deref());
            to_client.extend_from_slice(&conn.buf);
            return Handoff {
                to_client,
                to_upstream: pipelined,
                upstream: conn.stream,
                guard: None,
            };
        };
        let capabilities = capabilities
            .map(|caps| String::from_utf8_lossy(&guard::strip_capabilities(caps.as_bytes())).into_owned());
        Handoff {
            to_client: reply::logged_in(&attempt.tag, capabilities.as_deref()),
            to_upstream: Vec::new(),
            upstream: conn.stream,
            guard: Some(Guarded {
                inspector: ImapGuard::new(access),
                from_client: pipelined,
                from_upstream: conn.buf.to_vec(),
            }),
        }
    }
}
