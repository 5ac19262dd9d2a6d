//! Remembers successful password verifications, so a client that logs in
//! again (phones poll every few minutes, each poll a new connection) does
//! not pay argon2id again: ~20 ms of CPU and 19 MiB per verification.
//!
//! As Dovecot's auth cache, but without the password: an entry is an
//! HMAC-SHA256, under a key drawn at start and never stored, of the stored
//! hash (PHC string, salt included) and the password that matched it. A
//! changed password has a new hash and so misses; a revoked app password is
//! no longer in the record and is never consulted; every other rule (active,
//! protocols, collaborator rights, two-step, expiry) is still checked on the
//! current record at each login. Failures are never cached: guessing costs
//! a full verification every time. Entries expire after the TTL.
//!
//! Trade-off: someone who can read the process memory gets the key and the
//! MACs, and could test guesses at HMAC speed rather than argon2id speed
//! for the passwords used within the TTL. The same reader could already
//! capture passwords in flight; set `auth_cache_ttl_secs = 0` to opt out.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use aws_lc_rs::hmac;
use tokio::time::Instant;

use crate::secret::Secret;

/// Bound on remembered verifications; when full, the cache starts over
/// (as [`crate::store::cache::MAX_ENTRIES`]).
pub const MAX_ENTRIES: usize = 100_000;

type Tag = [u8; 32];

/// Successful verifications, keyed by MAC, with their expiry.
pub struct VerifiedCache {
    key: hmac::Key,
    ttl: Duration,
    entries: Mutex<HashMap<Tag, Instant>>,
}

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl VerifiedCache {
    /// A cache with a fresh random key.
    pub fn new(ttl: Duration) -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the OS random source works");
        let key = hmac::Key::new(hmac::HMAC_SHA256, &seed);
        seed.fill(0);
        Self {
            key,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn tag(&self, hash: &str, password: &Secret) -> Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        // Length-prefixed: no (hash, password) pair can collide with another.
        ctx.update(&(hash.len() as u64).to_be_bytes());
        ctx.update(hash.as_bytes());
        ctx.update(password.expose());
        let mut tag = [0u8; 32];
        tag.copy_from_slice(ctx.sign().as_ref());
        tag
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Tag, Instant>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `password` was verified against `hash` within the TTL.
    pub fn contains(&self, hash: &str, password: &Secret) -> bool {
        let tag = self.tag(hash, password);
        let now = Instant::now();
        let mut entries = self.lock();
        match entries.get(&tag) {
            Some(&expires) if expires > now => true,
            Some(_) => {
                entries.remove(&tag);
                false
            }
            None => false,
        }
    }

    /// Notes a successful verification.
    pub fn insert(&self, hash: &str, password: &Secret) {
        let tag = self.tag(hash, password);
        let expires = Instant::now() + self.ttl;
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            let now = Instant::now();
            entries.retain(|_, e| *e > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(tag, expires);
    }

    /// Remembered verifications, expired ones included until next touched.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
