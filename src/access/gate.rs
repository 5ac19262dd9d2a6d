//! The login step, the same for every protocol: from the credentials a
//! front-end collected to a decision on who, if anyone, is logged in
//! upstream. With an account store, the proxy verifies the client itself and
//! opens the upstream session as the mailbox; without one, the upstream
//! checks the client's own credentials (pass-through).
//!
//! [`Gate::check`] decides (the brute-force penalty, then the authority);
//! once the session knows how the login ended, [`Gate::record`] counts it,
//! logs it, and feeds the penalty. [`crate::session`] calls both, for every
//! protocol.

use std::sync::Arc;

use tokio::time::Instant;

use super::{LoginRefusal, LoginRequest};
use crate::access::authenticator::Authenticator;
use crate::access::penalty::Penalties;
use crate::access::policy::{Denial, DenyReason, Permit};
use crate::ops::metrics as m;

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
    #[cfg(test)]
    pub fn pass_through() -> Self {
        Self::new(Authority::PassThrough, Arc::new(Penalties::disabled()))
    }

    /// Decides a login. First the penalty: a client or login name with recent
    /// failures waits (bounded by `penalty.max_delay_ms`, and by the caller's
    /// pre-login deadline), or is refused unchecked with
    /// [`DenyReason::TooManyFailures`]. The access log is written by the
    /// authenticator.
    pub async fn check(&self, req: &LoginRequest) -> Result<Verdict, Denial> {
        let creds = &req.credentials;
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
            Authority::Store(auth) => auth.authenticate(req).await.map(Verdict::Mailbox),
        }
    }

    /// Records how a login ended: counts it and its duration, logs the
    /// decision, and feeds the penalty (a wrong password counts against the
    /// client and the login name; a success forgives that person's own).
    /// `outcome` is the verdict the session logged in with, or why not.
    pub fn record(
        &self,
        req: &LoginRequest,
        mechanism: &'static str,
        outcome: Result<&Verdict, &LoginRefusal>,
        started: Instant,
    ) {
        let creds = &req.credentials;
        let ip = req.peer.ip();
        match outcome {
            Ok(_) => self.penalties.succeeded(ip, &creds.authcid),
            Err(LoginRefusal::Denied(DenyReason::UnknownOrBadPassword)) => {
                self.penalties
                    .failed(ip, &creds.authcid, creds.password.expose(), Instant::now())
            }
            // Past the password (a switch, two-step verification), refused
            // unchecked, or not carried out: no guess was judged.
            Err(_) => {}
        }
        record(req, mechanism, outcome, started);
    }
}

/// Counts a login attempt and its duration; logs the decision (one line per
/// attempt; the login name is cut and escaped, the password never logged).
/// Sessions call [`Gate::record`], which also feeds the penalty.
fn record(
    req: &LoginRequest,
    mechanism: &'static str,
    outcome: Result<&Verdict, &LoginRefusal>,
    started: Instant,
) {
    let protocol = req.protocol;
    let (result, reason) = match outcome {
        Ok(_) => ("ok", "none"),
        Err(refusal) => refusal.labels(),
    };
    let collaborator = matches!(outcome, Ok(Verdict::Mailbox(p)) if p.collaborator.is_some());
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
    let user: String = String::from_utf8_lossy(&req.credentials.authcid)
        .chars()
        .take(100)
        .collect();
    tracing::info!(
        protocol = protocol.as_str(),
        peer = %req.peer,
        user = %user.escape_debug(),
        mechanism,
        result,
        reason,
        "login decision"
    );
}

#[cfg(test)]
mod tests;
