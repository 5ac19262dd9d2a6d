//! The login step, the same for every protocol: from the credentials a
//! front-end collected to a decision on who, if anyone, is logged in
//! upstream. With an account store, the proxy verifies the client itself and
//! opens the upstream session as the mailbox; without one, the upstream
//! checks the client's own credentials (pass-through).
//!
//! # What a protocol session calls (the IMAP, POP3 and SMTP sessions all do)
//! 1. `serve(tcp, peer, ctx, admission)`: the accept loop hands over the
//!    client's per-IP places ([`crate::listener::client_limits::Admission`]); call
//!    `admission.logged_in()` next to `gauge.to_relay()`.
//! 2. `ctx.gate.check(&request)`: the brute-force penalty (a delay, or
//!    `Err(Denial)` with [`DenyReason::TooManyFailures`]: answer it with
//!    `denial.pop3_reply()` / `smtp_reply()`, a temporary error, and count it
//!    as a failed attempt of the session), then the authority.
//! 3. Log in upstream through [`crate::upstream::with_failover`], so a second
//!    address is tried when the first fails.
//! 4. `ctx.gate.record(&request, mechanism, &outcome, started)` once the
//!    outcome is known: metrics, the log line, and the penalty's counters.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::time::Instant;

use crate::access::authenticator::{AuthRequest, Authenticator};
use crate::access::penalty::Penalties;
use crate::access::policy::{Denial, DenyReason, Permit};
use crate::frontend::sasl::Credentials;
use crate::listener::ListenerContext;
use crate::ops::metrics as m;
use crate::protocol::Protocol;
use crate::upstream::{ServerFault, Upstream, UpstreamError, with_failover};

/// Who decides whether a password is right.
#[derive(Clone)]
pub enum Authority {
    /// No account store: every login goes to the upstream as typed.
    PassThrough,
    /// The account store's rules (protocol switches, app passwords,
    /// collaborators), then a master login upstream as the mailbox.
    Store(Authenticator),
}

/// The login step every protocol goes through: the brute-force penalty,
/// then the [`Authority`]; and, once the outcome is known, [`Gate::record`].
#[derive(Clone)]
pub struct Gate {
    pub authority: Authority,
    pub penalties: Arc<Penalties>,
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
    pub fn new(authority: Authority, penalties: Arc<Penalties>) -> Self {
        Self { authority, penalties }
    }

    /// Pass-through without a penalty (for tests and tools).
    pub fn pass_through() -> Self {
        Self::new(Authority::PassThrough, Arc::new(Penalties::disabled()))
    }

    /// Decides a login. First the penalty: a client or login name with recent
    /// failures waits (bounded by `penalty.max_delay_ms`, and by the caller's
    /// pre-login deadline), or is refused unchecked with
    /// [`DenyReason::TooManyFailures`]. The access log is written by the
    /// authenticator.
    pub async fn check(&self, req: &LoginRequest<'_>) -> Result<Verdict, Denial> {
        let creds = req.credentials;
        // A SASL authorization identity other than the login itself would let a
        // client act as someone else; nobody needs that through the proxy.
        if creds.authzid.as_ref().is_some_and(|z| *z != creds.authcid) {
            return Err(DenyReason::NotPermitted.into());
        }
        if self
            .penalties
            .admit(req.protocol, req.peer.ip(), &creds.authcid)
            .await
            .is_err()
        {
            return Err(DenyReason::TooManyFailures.into());
        }
        match &self.authority {
            Authority::PassThrough => Ok(Verdict::PassThrough),
            Authority::Store(auth) => auth
                .authenticate(AuthRequest {
                    protocol: req.protocol,
                    login: creds.authcid.clone(),
                    password: creds.password.clone(),
                    client_ip: req.peer.ip(),
                    tls: req.tls,
                    client_name: req.client_name.clone(),
                    separator: req.separator,
                })
                .await
                .map(Verdict::Mailbox),
        }
    }

    /// Records how a login ended: counts it and its duration, logs the
    /// decision, and feeds the penalty (a wrong password counts against the
    /// client and the login name; a success forgives that person's own).
    pub fn record(
        &self,
        req: &LoginRequest<'_>,
        mechanism: &'static str,
        outcome: &LoginOutcome,
        started: Instant,
    ) {
        let creds = req.credentials;
        let ip = req.peer.ip();
        match outcome {
            LoginOutcome::Ok { .. } => self.penalties.succeeded(ip, &creds.authcid),
            LoginOutcome::Denied(DenyReason::UnknownOrBadPassword) | LoginOutcome::UpstreamRefused => self
                .penalties
                .failed(ip, &creds.authcid, creds.password.expose(), Instant::now()),
            // Past the password (a switch, two-step verification), refused
            // unchecked, or not carried out: no guess was judged.
            LoginOutcome::Denied(_) | LoginOutcome::Unavailable(_) => {}
        }
        record(
            req.protocol,
            mechanism,
            outcome,
            req.peer,
            &creds.authcid,
            started,
        );
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
            routed.config.fallback_addresses.clear();
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
            LoginOutcome::Denied(DenyReason::TooManyFailures) => ("refused", "too_many_failures"),
            LoginOutcome::Denied(r) => ("denied", r.label()),
            LoginOutcome::UpstreamRefused => ("denied", DenyReason::UnknownOrBadPassword.label()),
            LoginOutcome::Unavailable(kind) => ("unavailable", kind),
        }
    }
}

/// Counts a login attempt and its duration; logs the decision (one line per
/// attempt; the login name is cut and escaped, the password never logged).
/// Sessions call [`Gate::record`], which also feeds the penalty.
fn record(
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

/// Logs in upstream: `attempt` against each address of `upstream` in turn
/// ([`with_failover`]) under the listener's login deadline, every failing
/// address counted and logged, the whole timed in
/// `pec_proxy_upstream_connect_duration_seconds`.
pub async fn upstream_login<T, E, F, Fut>(
    ctx: &ListenerContext,
    upstream: &Upstream,
    attempt: F,
) -> Result<T, E>
where
    E: ServerFault,
    F: FnMut(Upstream) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let protocol = ctx.listener.protocol;
    let started = Instant::now();
    let result = with_failover(
        upstream,
        started + ctx.limits.upstream_login_timeout(),
        |address, e| record_upstream_error(protocol, address, e),
        attempt,
    )
    .await;
    metrics::histogram!(m::UPSTREAM_CONNECT_DURATION_SECONDS, "protocol" => protocol.as_str(), "upstream" => ctx.upstream_label.clone())
        .record(started.elapsed().as_secs_f64());
    result
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
