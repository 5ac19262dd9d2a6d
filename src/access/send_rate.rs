//! The sending-rate rule: messages per minute per mailbox, over all the
//! mailbox's sessions. An access rule like the brute-force penalty, kept
//! beside it: both are counters a fleet of proxies shares
//! ([`crate::access::counters`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::access::counters::{self, CounterEvent, CounterKey, CounterSink, Publisher, unix_ms};

/// Messages per minute per mailbox, over all sessions of this proxy (and,
/// built with [`RateLimiter::replicated`], of its fleet): a token bucket
/// per mailbox holding `per_minute` tokens, refilled evenly. Memory is
/// bounded by `max_mailboxes`; buckets full again are dropped first, and
/// when every slot is busy new mailboxes are refused (a temporary `450`),
/// never let through unmetered.
///
/// # Across a fleet
/// A node decides from its own buckets, and publishes each token it takes
/// ([`CounterEvent::MessageSent`]) or gives back
/// ([`CounterEvent::MessageRefunded`]); [`RateLimiter::apply`] takes or
/// gives the others' tokens here, without the acceptance check: a send
/// another node accepted happened, so it may take this bucket below zero,
/// down to `-per_minute` at most (so whatever arrives, a mailbox waits at
/// most two minutes for its next token). A bucket is keyed by the
/// mailbox's 64-bit keyed hash ([`CounterKey::mailbox`]), the name every
/// node gives it.
///
/// Bound: a node accepts a send only with a whole token in its bucket, and
/// its bucket has counted every send of the fleet but those still in
/// flight to it; so in any window of `W` the fleet accepts at most
/// `per_minute + W × per_minute / 60` sends, plus those in flight and the
/// debt the floor forgave. The floor forgives only when others' sends
/// arrive in one go beyond what the bucket holds plus `per_minute`: with
/// two nodes racing for a full bucket, at most what refills during one
/// delivery delay; with `N`, up to `(N − 2) × per_minute` per race. When
/// the transport is down each node counts its own sends alone (the fleet
/// then allows `N` times the rate, as separate proxies do).
///
/// An event from another node is applied when it arrives, whole, if it is
/// younger than [`REMOTE_HORIZON`], and ignored if older: a send counts
/// against the minute after it. Applying it at arrival rather than at its
/// time is exact for a bucket that was below full since, and for a full
/// one takes from this node a fraction of a token too many (what refilled
/// in the delay), given back by the refill within that delay. Applying the
/// same event twice counts twice: the transport must deduplicate.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    max_mailboxes: usize,
    /// Keyed by [`CounterKey::mailbox`].
    buckets: Mutex<HashMap<u64, Bucket>>,
    key: CounterKey,
    publisher: Publisher,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Between `-per_minute` and `per_minute`.
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Brings the tokens up to `now` (never back in time), at most `cap`.
    fn refill(&mut self, now: Instant, cap: f64) {
        self.tokens = self.refilled(now, cap);
        self.at = self.at.max(now);
    }

    fn refilled(&self, now: Instant, cap: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * cap / 60.0).min(cap)
    }
}

/// Default bound on tracked mailboxes: 100 000 buckets are a few MB.
pub const RATE_LIMITER_MAX_MAILBOXES: usize = 100_000;

/// Another node's send or refund older than this is ignored: a minute, the
/// limit's own period.
pub const REMOTE_HORIZON: Duration = Duration::from_secs(60);

impl RateLimiter {
    /// The limiter of a single node: `per_minute == 0` turns it off.
    pub fn new(per_minute: u32, max_mailboxes: usize) -> Self {
        Self::replicated(per_minute, max_mailboxes, CounterKey::random(), None)
    }

    /// The limiter of one node of a fleet: `key` is the fleet's, and the
    /// tokens it takes and gives back go to `sink` (see "Across a fleet").
    pub fn replicated(
        per_minute: u32,
        max_mailboxes: usize,
        key: CounterKey,
        sink: Option<Arc<dyn CounterSink>>,
    ) -> Self {
        Self {
            per_minute,
            max_mailboxes,
            buckets: Mutex::new(HashMap::new()),
            key,
            publisher: Publisher::new(sink),
        }
    }

    /// Messages per minute per mailbox (0: off).
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    pub fn enabled(&self) -> bool {
        self.per_minute > 0
    }

    fn cap(&self) -> f64 {
        f64::from(self.per_minute)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Bucket>> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bucket of `mailbox`, refilled to `now`, made (full) if there was
    /// none; `None` when every slot is busy with a bucket not yet full.
    fn bucket<'a>(
        &self,
        buckets: &'a mut HashMap<u64, Bucket>,
        mailbox: u64,
        now: Instant,
    ) -> Option<&'a mut Bucket> {
        let cap = self.cap();
        if !buckets.contains_key(&mailbox) && buckets.len() >= self.max_mailboxes {
            buckets.retain(|_, b| b.refilled(now, cap) < cap);
            if buckets.len() >= self.max_mailboxes {
                return None;
            }
        }
        let b = buckets.entry(mailbox).or_insert(Bucket { tokens: cap, at: now });
        b.refill(now, cap);
        Some(b)
    }

    /// Takes one message from `mailbox`'s budget, in one step under the lock
    /// (two sessions cannot both take the last token), and publishes it.
    pub fn try_acquire(&self, mailbox: &str) -> bool {
        if !self.enabled() {
            return true;
        }
        let now = Instant::now();
        let mailbox = self.key.mailbox(mailbox);
        let taken = match self.bucket(&mut self.lock(), mailbox, now) {
            Some(b) if b.tokens >= 1.0 => {
                b.tokens -= 1.0;
                true
            }
            _ => false,
        };
        if taken {
            self.publisher.publish(|| CounterEvent::MessageSent {
                mailbox,
                at_ms: unix_ms(now),
            });
        }
        taken
    }

    /// Gives back a message that was not submitted after all, and
    /// publishes it.
    pub fn refund(&self, mailbox: &str) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        let mailbox = self.key.mailbox(mailbox);
        self.give_back(mailbox, now);
        self.publisher.publish(|| CounterEvent::MessageRefunded {
            mailbox,
            at_ms: unix_ms(now),
        });
    }

    /// A token back to `mailbox`'s bucket, if it has one (one that was
    /// dropped was full).
    fn give_back(&self, mailbox: u64, now: Instant) {
        let cap = self.cap();
        if let Some(b) = self.lock().get_mut(&mailbox) {
            b.refill(now, cap);
            b.tokens = (b.tokens + 1.0).min(cap);
        }
    }

    /// Applies another node's send or refund at `now` (the wall clock
    /// reading `now_ms`), without publishing it again: a send takes a token
    /// whatever the bucket holds, down to `-per_minute`; a refund gives one
    /// back, up to `per_minute`. Ignored when older than
    /// [`REMOTE_HORIZON`], when the limiter is off, when every slot is busy
    /// (as this node's own sends for that mailbox would be refused), and
    /// for the penalty's events.
    pub fn apply(&self, event: &CounterEvent, now: Instant, now_ms: i64) {
        if !self.enabled() || counters::age(event.at_ms(), now_ms) >= REMOTE_HORIZON {
            return;
        }
        match *event {
            CounterEvent::MessageSent { mailbox, .. } => {
                let floor = -self.cap();
                if let Some(b) = self.bucket(&mut self.lock(), mailbox, now) {
                    b.tokens = (b.tokens - 1.0).max(floor);
                }
            }
            CounterEvent::MessageRefunded { mailbox, .. } => self.give_back(mailbox, now),
            CounterEvent::LoginFailed { .. } | CounterEvent::LoginSucceeded { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests;
