//! The login step, the same for every protocol: the access gate decides
//! who, if anyone, logs in; the upstream login follows as that mailbox (or,
//! pass-through, with the client's own credentials), on each upstream
//! address in turn; the outcome is recorded once.
//!
//! The security rules live here, once: with pass-through, a refusal by the
//! upstream is the client's (a wrong password, counted against it); with
//! the proxy's own master credentials, a refusal is our configuration's
//! fault, and the client is told to retry later.

use tokio::time::Instant;

use super::{ListenerContext, LoginAttempt, MailProtocol, Principal};
use crate::access::gate::Verdict;
use crate::access::policy::DenyReason;
use crate::access::{LoginRefusal, LoginRequest};
use crate::net::ClientAddrs;
use crate::store::account::Pop3Delete;
use crate::upstream::{self, Identity, UpstreamError};

/// Carries out one login attempt: the gate, then the upstream login; the
/// answer waits for the penalty's delay (see [`crate::access::gate`]: at
/// most `penalty.max_delay_ms` plus the verification, and never past the
/// pre-login `deadline` for a delay).
pub(super) async fn log_in<P: MailProtocol>(
    ctx: &ListenerContext,
    frontend: &P::Frontend,
    attempt: &P::Login,
    client: ClientAddrs,
    tls: bool,
    deadline: Instant,
) -> Result<(P::LoggedIn, Principal), LoginRefusal> {
    let started = Instant::now();
    let request = LoginRequest {
        protocol: P::PROTOCOL,
        credentials: attempt.credentials().clone(),
        peer: client.peer,
        tls,
        client_name: P::client_name(frontend),
        separator: ctx.login_name_separator,
    };
    let mechanism = attempt.mechanism();
    let admitted = match ctx.gate.check(&request, Some(deadline)).await {
        Ok(admitted) => admitted,
        Err(denial) => {
            let refusal = LoginRefusal::from(denial.reason);
            ctx.gate.record(&request, mechanism, Err(&refusal), started, None);
            return Err(refusal);
        }
    };
    let verdict = &admitted.verdict;
    let creds = &request.credentials;
    let (identity, principal, route) = match verdict {
        Verdict::PassThrough => (
            Identity::Client {
                user: &creds.authcid,
                password: &creds.password,
            },
            Principal {
                mailbox: String::from_utf8_lossy(&creds.authcid).to_lowercase(),
                collaborator: None,
                pop3_delete: Pop3Delete::Allow,
                credential: None,
            },
            None,
        ),
        Verdict::Mailbox(permit) => (
            Identity::Mailbox(&permit.mailbox),
            Principal {
                mailbox: permit.mailbox.clone(),
                collaborator: permit.collaborator.clone(),
                pop3_delete: permit.pop3_delete,
                credential: Some(permit.credential),
            },
            permit.route.as_deref(),
        ),
    };
    let upstream = ctx.upstream.routed(route);
    let judging = Instant::now();
    let result = upstream::log_in(
        &upstream,
        P::PROTOCOL,
        &ctx.upstream_label,
        ctx.limits.upstream_login_timeout(),
        |one| P::log_in_upstream(one, identity, client, frontend, ctx),
    )
    .await
    .map_err(|e| refusal::<P>(ctx, e, matches!(verdict, Verdict::PassThrough)));
    let judged_in = matches!(verdict, Verdict::PassThrough).then(|| judging.elapsed());
    // In pass-through the penalty's delay ran alongside the upstream's
    // judgement: the answer waits for whichever is longer.
    tokio::time::sleep_until(admitted.answer_at).await;
    ctx.gate.record(
        &request,
        mechanism,
        result.as_ref().map(|_| verdict),
        started,
        judged_in,
    );
    result.map(|logged_in| (logged_in, principal))
}

/// What the client is told when the upstream login failed: with
/// pass-through, the upstream judged the client's own password; otherwise
/// the failure is ours (counted here unless failover counted it already).
fn refusal<P: MailProtocol>(ctx: &ListenerContext, e: UpstreamError, pass_through: bool) -> LoginRefusal {
    match e {
        UpstreamError::AuthFailed if pass_through => LoginRefusal::Denied(DenyReason::UnknownOrBadPassword),
        // Not the client's fault, and not a failed attempt.
        UpstreamError::MailboxInUse(text) => LoginRefusal::MailboxInUse(text),
        e => {
            if !e.reported_by_failover() {
                upstream::record_error(P::PROTOCOL, &ctx.upstream_label, &e);
            }
            LoginRefusal::UpstreamUnavailable {
                no_answer: e.is_no_answer(),
            }
        }
    }
}
