//! SMTP submission: the pre-login front-end (pure), the upstream login, the
//! post-login guard with the PEC submission checks, and the session driver.

pub mod checks;
mod end_scan;
pub mod frontend;
pub mod guard;
pub mod parse;
pub mod reply;
pub mod session;
pub mod upstream;

use crate::config::PecChecks;

/// SMTP settings shared by every SMTP listener, built once: the rate
/// limiter counts a mailbox's messages over all its sessions.
#[derive(Debug)]
pub struct SmtpSettings {
    /// Our name in the greeting and EHLO (`[smtp] hostname`).
    pub hostname: String,
    pub checks: PecChecks,
    pub limiter: std::sync::Arc<checks::RateLimiter>,
}

impl SmtpSettings {
    pub fn new(hostname: String, checks: PecChecks) -> Self {
        let limiter =
            checks::RateLimiter::new(checks.messages_per_minute, checks::RATE_LIMITER_MAX_MAILBOXES);
        Self {
            hostname,
            checks,
            limiter: std::sync::Arc::new(limiter),
        }
    }
}
