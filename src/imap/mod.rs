//! IMAP (RFC 3501/9051 before login): the pre-login front-end (pure), the
//! upstream login, and the protocol's hooks into the one session.

pub mod frontend;
pub mod parse;
pub mod upstream;

use frontend::{FrontendOptions, ImapFrontend, LoginAttempt};
use upstream::LoggedIn;

use crate::access::Credentials;
use crate::config::TlsMode;
use crate::net::{ClientAddrs, Stream};
use crate::protocol::Protocol;
use crate::relay::{ByteCounter, RelayEnd, RelayStats};
use crate::session::{self, Goodbyes, Handoff, ListenerContext, MailProtocol, Principal};
use crate::upstream::{Identity, Upstream, UpstreamError};

/// IMAP, as the session drives it.
pub struct Imap;

/// IMAP has no post-login guard (yet): this type has no value.
pub enum NoGuard {}

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
        shutdown: b"* BYE Server shutting down\r\n",
        timeout: b"* BYE Disconnected: login timeout\r\n",
        too_many_errors: b"* BYE Too many invalid commands\r\n",
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
        let mut reply = attempt.tag;
        match capabilities {
            Some(caps) => {
                reply.extend_from_slice(format!(" OK [CAPABILITY {caps}] Logged in\r\n").as_bytes())
            }
            None => reply.extend_from_slice(b" OK Logged in\r\n"),
        }
        reply.extend_from_slice(&conn.buf);
        Handoff {
            to_client: reply,
            to_upstream: frontend.into_pipelined().to_vec(),
            upstream: conn.stream,
            guard: None,
        }
    }

    async fn relay_guarded(
        _ctx: &ListenerContext,
        _client: Stream,
        _upstream: Stream,
        guard: NoGuard,
        _counter: &dyn ByteCounter,
    ) -> (RelayStats, RelayEnd) {
        match guard {}
    }

    fn count_refusals(reply: &[u8]) -> bool {
        count_refusals(reply)
    }
}

/// Counts the front-end's refusals of bad input, by kind; says whether
/// `reply` was one.
fn count_refusals(reply: &[u8]) -> bool {
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
    } else if reply.windows(26).any(|w| w == b"BAD Authentication failed:")
        || reply.windows(18).any(|w| w == b"BAD Invalid base64")
    {
        // Undecodable or malformed SASL data (SMTP's name for the same).
        "bad_base64"
    } else {
        return false;
    };
    metrics::counter!(crate::ops::metrics::CLIENT_ERRORS_TOTAL, "protocol" => "imap", "kind" => kind)
        .increment(1);
    true
}
