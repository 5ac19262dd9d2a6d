//! IMAP (RFC 3501/9051 before login): the pre-login front-end (pure) and
//! its words, the upstream login, and the protocol's hooks into the one
//! session.

pub mod frontend;
pub mod parse;
pub mod reply;
pub mod upstream;

use frontend::{FrontendOptions, ImapFrontend, LoginAttempt};
use upstream::LoggedIn;

use crate::access::Credentials;
use crate::config::TlsMode;
use crate::net::ClientAddrs;
use crate::protocol::Protocol;
use crate::relay::guarded::{Inspector, Output};
use crate::session::{self, Goodbyes, Handoff, ListenerContext, MailProtocol, Principal};
use crate::upstream::{Identity, Upstream, UpstreamError};

/// IMAP, as the session drives it.
pub struct Imap;

/// IMAP has no post-login guard (yet): this type has no value.
pub enum NoGuard {}

impl Inspector for NoGuard {
    fn client_data(&mut self, _: &[u8], _: &mut Output) {
        match *self {}
    }
    fn upstream_data(&mut self, _: &[u8], _: &mut Output) {
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
    type Guard = NoGuard;

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
    /// the client pipelined behind its login goes upstream first.
    fn handoff(
        _ctx: &ListenerContext,
        frontend: ImapFrontend,
        attempt: LoginAttempt,
        logged_in: LoggedIn,
        _principal: Principal,
        _tls: bool,
    ) -> Handoff<NoGuard> {
        let LoggedIn { conn, capabilities } = logged_in;
        let mut to_client = reply::logged_in(&attempt.tag, capabilities.as_deref());
        to_client.extend_from_slice(&conn.buf);
        Handoff {
            to_client,
            to_upstream: frontend.into_pipelined().to_vec(),
            upstream: conn.stream,
            guard: None,
        }
    }
}
