//! POP3 (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH): the
//! pre-login front-end (pure) and its words, the upstream login, the
//! keep-on-server guard (pure, run by [`crate::relay::guarded`]), and the
//! protocol's hooks into the one session.

pub mod frontend;
pub mod guard;
pub mod parse;
pub mod reply;
pub mod upstream;

use frontend::{FrontendOptions, LoginAttempt, Pop3Frontend};
use guard::DeleGuard;

use crate::access::Credentials;
use crate::config::TlsMode;
use crate::net::ClientAddrs;
use crate::protocol::Protocol;
use crate::session::{self, Goodbyes, Guarded, Handoff, ListenerContext, MailProtocol, Principal};
use crate::store::account::Pop3Delete;
use crate::upstream::{Connection, Identity, Upstream, UpstreamError};

/// POP3, as the session drives it.
pub struct Pop3;

impl session::LoginAttempt for LoginAttempt {
    fn credentials(&self) -> &Credentials {
        &self.credentials
    }
    fn mechanism(&self) -> &'static str {
        self.mechanism.as_str()
    }
}

impl MailProtocol for Pop3 {
    const PROTOCOL: Protocol = Protocol::Pop3;
    const GOODBYES: Goodbyes = Goodbyes {
        shutdown: reply::SHUTDOWN,
        timeout: reply::LOGIN_TIMEOUT,
        revoked: reply::REVOKED,
        lifetime: reply::SESSION_LIFETIME,
    };
    type Login = LoginAttempt;
    type Frontend = Pop3Frontend;
    type LoggedIn = Connection;
    type Guard = DeleGuard;

    fn frontend(ctx: &ListenerContext, tls: bool) -> Pop3Frontend {
        let opts = FrontendOptions {
            starttls: ctx.listener.tls == TlsMode::Starttls,
            allow_plaintext_login: ctx.listener.allow_plaintext_login,
            max_line_bytes: ctx.limits.pop3_max_line_bytes,
            max_login_failures: ctx.limits.max_login_failures,
            max_prelogin_errors: ctx.limits.max_prelogin_errors,
            greeting: ctx.greeting.clone(),
        };
        Pop3Frontend::new(opts, tls)
    }

    async fn log_in_upstream<'a>(
        one: Upstream,
        identity: Identity<'a>,
        client: ClientAddrs,
        _frontend: &'a Pop3Frontend,
        _ctx: &'a ListenerContext,
    ) -> Result<Connection, UpstreamError> {
        upstream::login(&one, identity, client.peer).await
    }

    /// `+OK`, then anything the upstream sent behind its own. What the
    /// client pipelined behind its login goes upstream, through the guard
    /// when the mailbox keeps its messages on the server.
    fn handoff(
        ctx: &ListenerContext,
        frontend: Pop3Frontend,
        _attempt: LoginAttempt,
        conn: Connection,
        principal: Principal,
        _tls: bool,
    ) -> Handoff<DeleGuard> {
        let mut to_client = reply::LOGGED_IN.to_vec();
        to_client.extend_from_slice(&conn.buf);
        let pipelined = frontend.into_pipelined().to_vec();
        let (to_upstream, guard) = match principal.pop3_delete {
            Pop3Delete::Allow => (pipelined, None),
            Pop3Delete::Deny | Pop3Delete::ReadOnly => (
                Vec::new(),
                Some(Guarded {
                    inspector: DeleGuard::new(ctx.limits.pop3_max_line_bytes),
                    from_client: pipelined,
                    from_upstream: Vec::new(),
                }),
            ),
        };
        Handoff {
            to_client,
            to_upstream,
            upstream: conn.stream,
            guard,
        }
    }
}
