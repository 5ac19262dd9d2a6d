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
//!
//! # When the answer comes
//! A login whose client or name has failed before is held by the penalty's
//! delay `d` (at most `penalty.max_delay_ms`, decided when the login
//! arrives). With the account store the gate waits `d`, then verifies: the
//! answer comes `d` + the verification (a hash, and the upstream login as
//! the mailbox) after the login. In pass-through the upstream judges the
//! password while `d` runs ([`Admitted::answer_at`]): the answer comes
//! after the longer of `d` and the upstream's own answer, which may carry
//! its own failure delay (Dovecot: `auth_failure_delay`, 2 s, and its auth
//! penalty, up to 15 s), never their sum. The penalty is keyed on the
//! login's canonical name ([`canonical_login_name`]).
//!
//! A delay is only taken when it and a verification as slow as the recent
//! ones (of a wrong password, through this gate) end before the session's
//! pre-login deadline; otherwise the login is refused at once with the
//! penalty's temporary error ([`DenyReason::TooManyFailures`]) instead of
//! being cut off by the deadline with no answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::{LoginRefusal, LoginRequest};
use crate::access::authenticator::Authenticator;
use crate::access::login_name::canonical_login_name;
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
    /// How long judging a wrong password takes here lately: the time a
    /// delayed login needs before the deadline besides its delay.
    judging: Arc<JudgingTime>,
}

/// A login the gate let through: who to be upstream, and when the client
/// may have its answer.
#[derive(Debug)]
pub struct Admitted {
    pub verdict: Verdict,
    /// The answer, whatever it is, is not given before this: the login's
    /// arrival plus the penalty's delay. With the account store it has
    /// passed already (the gate waited before verifying); in pass-through
    /// the upstream's judgement runs meanwhile.
    pub answer_at: Instant,
}

/// A decaying maximum of how long judging a wrong password took: one slow
/// judgement (a loaded machine, an upstream's failure delay) counts at once
/// and fades by a quarter with each one after it.
#[derive(Debug, Default)]
struct JudgingTime {
    micros: AtomicU64,
}

impl JudgingTime {
    fn get(&self) -> Duration {
        Duration::from_micros(self.micros.load(Ordering::Relaxed))
    }

    fn observe(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .micros
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(took.max(old - old / 4))
            });
    }
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
        Self {
            authority,
            penalties,
            judging: Arc::default(),
        }
    }

    /// Pass-through without a penalty (for tests and tools).
    #[cfg(test)]
    pub fn pass_through() -> Self {
        Self::new(Authority::PassThrough, Arc::new(Penalties::disabled()))
    }

    /// Decides a login. First the penalty: a client or login name with
    /// recent failures is held (see "When the answer comes"), or refused
    /// unchecked with [`DenyReason::TooManyFailures`], also when the delay
    /// and a verification would not end before `deadline` (the session's
    /// pre-login deadline). Then the authority. The access log is written
    /// by the authenticator.
    pub async fn check(&self, req: &LoginRequest, deadline: Option<Instant>) -> Result<Admitted, Denial> {
        let creds = &req.credentials;
        // A SASL authorization identity other than the login itself would let a
        // client act as someone else; nobody needs that through the proxy.
        if creds.authzid.as_ref().is_some_and(|z| *z != creds.authcid) {
            return Err(DenyReason::NotPermitted.into());
        }
        let arrived = Instant::now();
        let latest = deadline.map(|d| d.checked_sub(self.judging.get()).unwrap_or(arrived));
        let login = canonical_login_name(&creds.authcid, req.separator);
        let delay = self
            .penalties
            .decide(req.protocol, req.peer.ip(), &login, arrived, latest)
            .map_err(|_| Denial::from(DenyReason::TooManyFailures))?;
        let answer_at = arrived + delay;
        match &self.authority {
            Authority::PassThrough => Ok(Admitted {
                verdict: Verdict::PassThrough,
                answer_at,
            }),
            Authority::Store(auth) => {
                // Verified only after the delay: a client that leaves
                // meanwhile costs no hash.
                tokio::time::sleep_until(answer_at).await;
                let judging = Instant::now();
                let permit = auth.authenticate(req).await;
                if matches!(&permit, Err(d) if d.reason == DenyReason::UnknownOrBadPassword) {
                    self.judging.observe(judging.elapsed());
                }
                permit.map(|permit| Admitted {
                    verdict: Verdict::Mailbox(permit),
                    answer_at,
                })
            }
        }
    }

    /// Records how a login ended: counts it and its duration, logs the
    /// decision, and feeds the penalty (a wrong password counts against the
    /// client and the login name; a success forgives that person's own).
    /// `outcome` is the verdict the session logged in with, or why not;
    /// `judged_in`, how long the upstream took to judge the client's own
    /// password (pass-through), when it did.
    pub fn record(
        &self,
        req: &LoginRequest,
        mechanism: &'static str,
        outcome: Result<&Verdict, &LoginRefusal>,
        started: Instant,
        judged_in: Option<Duration>,
    ) {
        let creds = &req.credentials;
        let ip = req.peer.ip();
        let login = canonical_login_name(&creds.authcid, req.separator);
        match outcome {
            Ok(_) => self.penalties.succeeded(ip, &login),
            Err(LoginRefusal::Denied(DenyReason::UnknownOrBadPassword)) => {
                if let Some(took) = judged_in {
                    self.judging.observe(took);
                }
                self.penalties
                    .failed(ip, &login, creds.password.expose(), Instant::now())
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
