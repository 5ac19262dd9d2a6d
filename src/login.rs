//! The login step, the same for every protocol: from the credentials a
//! front-end collected to a decision on who, if anyone, is logged in
//! upstream. With an account store, the proxy verifies the client itself and
//! opens the upstream session as the mailbox; without one, the upstream
//! checks the client's own credentials (pass-through).

use std::net::SocketAddr;

use tokio::time::Instant;

use crate::auth::{AuthRequest, Authenticator};
use crate::metrics as m;
use crate::policy::{Denial, DenyReason, Permit};
use crate::protocol::Protocol;
use crate::sasl::Credentials;
use crate::upstream::{Upstream, UpstreamError};

/// Who decides logins.
#[derive(Clone)]
pub enum Gate {
    /// No account store: every login goes to the upstream as typed.
    PassThrough,
    /// The account store's rules (protocol switches, app passwords,
    /// collaborators), then a master login upstream as the mailbox.
    Store(Authenticator),
}

/// A login attempt, as any front-end hands it over.
#[derive(Debug)]
pub struct LoginRequest<'a> {
    pub protocol: Protocol,
    pub credentials: &'a Credentials,
    pub peer: SocketAddr,
    pub tls: bool,
    /// The client's name and version (IMAP `ID`), for the access log.
    pub client_name: Option<String>,
    pub separator: char,
}

/// Who to be upstream.
#[derive(Debug)]
pub enum Verdict {
    /// Log in with the client's own credentials; the upstream decides.
    PassThrough,
    /// The proxy verified the client: log in as `permit.mailbox`.
    Mailbox(Permit),
}

impl Gate {
    /// Decides a login. The access log is written by the authenticator.
    pub async fn check(&self, req: LoginRequest<'_>) -> Result<Verdict, Denial> {
        let creds = req.credentials;
        // A SASL authorization identity other than the login itself would let a
        // client act as someone else; nobody needs that through the proxy.
        if creds.authzid.as_ref().is_some_and(|z| *z != creds.authcid) {
            return Err(DenyReason::NotPermitted.into());
        }
        match self {
            Gate::PassThrough => Ok(Verdict::PassThrough),
            Gate::Store(auth) => auth
                .authenticate(AuthRequest {
                    protocol: req.protocol,
                    login: creds.authcid.clone(),
                    password: creds.password.clone(),
                    client_ip: req.peer.ip(),
                    tls: req.tls,
                    client_name: req.client_name,
                    separator: req.separator,
                })
                .await
                .map(Verdict::Mailbox),
        }
    }
}

/// The upstream for a login: the mailbox's route override, when it has one,
/// with the protocol upstream's TLS and login settings.
pub fn upstream_for(base: &Upstream, verdict: &Verdict) -> Upstream {
    match verdict {
        Verdict::Mailbox(Permit {
            route: Some(route), ..
        }) => {
            let mut routed = base.clone();
            routed.config.address = route.clone();
            routed
        }
        _ => base.clone(),
    }
}

/// How a login ended, in the terms every protocol reports it.
#[derive(Debug)]
pub enum LoginOutcome {
    Ok {
        collaborator: bool,
    },
    /// Refused: counts as a failed attempt.
    Denied(DenyReason),
    /// The upstream refused the client's own credentials (pass-through).
    UpstreamRefused,
    /// Could not be carried out now (store or upstream unavailable).
    Unavailable(&'static str),
}

impl LoginOutcome {
    /// `(result, reason)` labels of `pec_proxy_logins_total`.
    pub fn labels(&self) -> (&'static str, &'static str) {
        match self {
            LoginOutcome::Ok { .. } => ("ok", "none"),
            LoginOutcome::Denied(DenyReason::StoreUnavailable) => ("unavailable", "store_unavailable"),
            LoginOutcome::Denied(r) => ("denied", r.label()),
            LoginOutcome::UpstreamRefused => ("denied", DenyReason::UnknownOrBadPassword.label()),
            LoginOutcome::Unavailable(kind) => ("unavailable", kind),
        }
    }
}

/// Counts a login attempt and its duration; logs the decision (one line per
/// attempt; the login name is cut and escaped, the password never logged).
pub fn record(
    protocol: Protocol,
    mechanism: &'static str,
    outcome: &LoginOutcome,
    peer: SocketAddr,
    user: &[u8],
    started: Instant,
) {
    let (result, reason) = outcome.labels();
    let collaborator = matches!(outcome, LoginOutcome::Ok { collaborator: true });
    metrics::counter!(
        m::LOGINS_TOTAL,
        "protocol" => protocol.as_str(),
        "result" => result,
        "reason" => reason,
        "mechanism" => mechanism,
        "collaborator" => if collaborator { "true" } else { "false" }
    )
    .increment(1);
    metrics::histogram!(m::LOGIN_DURATION_SECONDS, "protocol" => protocol.as_str())
        .record(started.elapsed().as_secs_f64());
    let user: String = String::from_utf8_lossy(user).chars().take(100).collect();
    tracing::info!(
        protocol = protocol.as_str(),
        %peer,
        user = %user.escape_debug(),
        mechanism,
        result,
        reason,
        "login decision"
    );
}

/// Counts an upstream failure by kind, and logs it.
pub fn record_upstream_error(protocol: Protocol, upstream: &str, error: &UpstreamError) {
    metrics::counter!(
        m::UPSTREAM_ERRORS_TOTAL,
        "protocol" => protocol.as_str(),
        "upstream" => upstream.to_owned(),
        "kind" => error.kind()
    )
    .increment(1);
    tracing::warn!(protocol = protocol.as_str(), upstream, %error, "upstream login failed");
}
