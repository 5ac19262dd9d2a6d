//! Logging in upstream with failover: each address of an upstream in turn,
//! under one deadline, every failing address counted and logged.

use std::time::Duration;

use tokio::time::Instant;

use super::{Upstream, UpstreamError};
use crate::ops::metrics as m;
use crate::protocol::Protocol;

/// Logs in upstream: `attempt` against each address of `upstream` in turn
/// ([`with_failover`]) within `timeout`, every failing address counted and
/// logged ([`record_error`]), the whole timed in
/// `pec_proxy_upstream_connect_duration_seconds{protocol, upstream = label}`
/// (`label`: the configured upstream, a bounded metric label).
pub async fn log_in<T, F, Fut>(
    upstream: &Upstream,
    protocol: Protocol,
    label: &str,
    timeout: Duration,
    attempt: F,
) -> Result<T, UpstreamError>
where
    F: FnMut(Upstream) -> Fut,
    Fut: Future<Output = Result<T, UpstreamError>>,
{
    let started = Instant::now();
    let result = with_failover(
        upstream,
        started + timeout,
        |address, e| record_error(protocol, address, e),
        attempt,
    )
    .await;
    metrics::histogram!(m::UPSTREAM_CONNECT_DURATION_SECONDS, "protocol" => protocol.as_str(), "upstream" => label.to_owned())
        .record(started.elapsed().as_secs_f64());
    result
}

/// Counts an upstream failure by kind, and logs it.
pub fn record_error(protocol: Protocol, upstream: &str, error: &UpstreamError) {
    metrics::counter!(
        m::UPSTREAM_ERRORS_TOTAL,
        "protocol" => protocol.as_str(),
        "upstream" => upstream.to_owned(),
        "kind" => error.kind()
    )
    .increment(1);
    tracing::warn!(protocol = protocol.as_str(), upstream, %error, "upstream login failed");
}

/// Runs `attempt` (connect and log in) against each address of `upstream`
/// in turn, until one succeeds or fails in a way another address would not
/// fix ([`UpstreamError::is_server_fault`]), all before `deadline` (past it:
/// [`UpstreamError::Timeout`]). Every address but the last has an equal
/// share of the time left when its turn comes; overrunning it is reported
/// to `on_fault` as a timeout of that address, and the next one is tried.
/// `on_fault(address, error)` hears, with the address that failed, every
/// error for which [`UpstreamError::reported_by_failover`] is true: each
/// server fault, the last one included, and the deadline. Other errors (a
/// refused login) are only returned.
pub async fn with_failover<T, F, Fut>(
    upstream: &Upstream,
    deadline: Instant,
    mut on_fault: impl FnMut(&str, &UpstreamError),
    mut attempt: F,
) -> Result<T, UpstreamError>
where
    F: FnMut(Upstream) -> Fut,
    Fut: Future<Output = Result<T, UpstreamError>>,
{
    let candidates = upstream.candidates();
    let total = candidates.len();
    let mut candidates = candidates.into_iter().enumerate().peekable();
    loop {
        let Some((index, candidate)) = candidates.next() else {
            return Err(UpstreamError::Protocol("no upstream address".into()));
        };
        let address = candidate.config.address.clone();
        // A server that accepts and then hangs must not spend the whole
        // deadline: each address but the last gets an equal share of what
        // is left, and running out of its share is a fault of that address.
        let left = (total - index) as u32;
        let share = Instant::now() + deadline.saturating_duration_since(Instant::now()) / left;
        let result = match tokio::time::timeout_at(share, attempt(candidate)).await {
            Ok(result) => result,
            Err(_) => {
                on_fault(&address, &UpstreamError::Timeout);
                if left > 1 {
                    continue;
                }
                return Err(UpstreamError::Timeout);
            }
        };
        match result {
            Err(e) if e.is_server_fault() => {
                on_fault(&address, &e);
                if candidates.peek().is_none() {
                    return Err(e);
                }
            }
            ok => return ok,
        }
    }
}

#[cfg(test)]
mod tests;
