//! The sending-rate rule: messages per minute per mailbox, over all the
//! mailbox's sessions. An access rule like the brute-force penalty, kept
//! beside it: both are counters a fleet of proxies will share.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Messages per minute per mailbox, over all sessions of this proxy: a
/// token bucket per mailbox holding `per_minute` tokens, refilled evenly.
/// Memory is bounded by `max_mailboxes`; buckets idle for a minute (full
/// again) are dropped first, and when every slot is busy new mailboxes
/// are refused (a temporary `450`), never let through unmetered.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    max_mailboxes: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Default bound on tracked mailboxes: 100 000 buckets are a few MB.
pub const RATE_LIMITER_MAX_MAILBOXES: usize = 100_000;

impl RateLimiter {
    /// `per_minute == 0` turns the limiter off.
    pub fn new(per_minute: u32, max_mailboxes: usize) -> Self {
        Self {
            per_minute,
            max_mailboxes,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.per_minute > 0
    }

    /// Takes one message from `mailbox`'s budget, in one step under the lock
    /// (two sessions cannot both take the last token).
    pub fn try_acquire(&self, mailbox: &str) -> bool {
        if !self.enabled() {
            return true;
        }
        let now = Instant::now();
        let cap = f64::from(self.per_minute);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(mailbox) && buckets.len() >= self.max_mailboxes {
            buckets.retain(|_, b| now.duration_since(b.at) < Duration::from_secs(60));
            if buckets.len() >= self.max_mailboxes {
                return false;
            }
        }
        let b = buckets
            .entry(mailbox.to_owned())
            .or_insert(Bucket { tokens: cap, at: now });
        let refill = now.duration_since(b.at).as_secs_f64() * cap / 60.0;
        b.tokens = (b.tokens + refill).min(cap);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Gives back a message that was not submitted after all.
    pub fn refund(&self, mailbox: &str) {
        if !self.enabled() {
            return;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = buckets.get_mut(mailbox) {
            b.tokens = (b.tokens + 1.0).min(f64::from(self.per_minute));
        }
    }
}

#[cfg(test)]
mod tests;
