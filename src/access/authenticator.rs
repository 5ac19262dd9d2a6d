//! The login stage at the edge of tokio: parse the name, read the record,
//! run the pure policy on a bounded blocking pool, note the app password's
//! use, and write the access log.
//!
//! Hash verification is deliberately slow (argon2id: ~20 MiB and tens of
//! milliseconds). It runs under `spawn_blocking`, on one of a fixed set of
//! verifier slots (one per core), so a burst of logins queues for the
//! verifiers instead of stalling the async threads that relay established
//! sessions, and never runs more verifications at once than there are
//! slots. Every verification of a login (the dummy one for an unknown name,
//! app passwords, the main password) runs on a slot, on the record as read
//! once the slot is had: a change made while the login queued counts.
//!
//! Each slot owns its argon2 memory ([`HashMemory`]), allocated at its
//! first verification and reused by every later one, so a password spray
//! allocates nothing large. (Allocating and freeing 19 MiB per
//! verification let glibc keep it, per thread arena: 300 wrong logins, 16
//! at a time, left a 2-core proxy 330 to 400 MiB larger for good; see
//! `tests/spray_memory.rs`.) Bound, during and after any spray:
//!
//! RSS ≤ baseline + slots × M + what the sessions themselves hold,
//!
//! where slots = the cores the process may run on (shared by every
//! configuration a reload builds) and M = the largest argon2 memory cost
//! verified since start: 19 MiB for every hash `pec-proxy` creates and for
//! the dummy, at most [`MAX_VERIFY_MEMORY_KIB`](crate::access::password::MAX_VERIFY_MEMORY_KIB)
//! for an imported hash (see [`HashMemory`] for a store mixing several larger costs).

use std::cell::RefCell;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::access::LoginRequest;
use crate::access::login_name::{LoginName, parse_login_name};
use crate::access::password::{HashMemory, verify_dummy_in, verify_password_in};
use crate::access::policy::{self, Claim, Denial, DenyReason, PasswordCheck, Permit};
use crate::access::verified::VerifiedCache;
use crate::secret::Secret;
use crate::store::account::MailboxRecord;
use crate::store::{AccessLogEntry, AccountStore, LoginResult, unix_now};

/// The longest client name (IMAP `ID` "name" and "version") we record.
pub const MAX_CLIENT_NAME: usize = 128;

/// Authenticates logins against an account store.
#[derive(Clone)]
pub struct Authenticator {
    store: Arc<dyn AccountStore>,
    verifiers: Arc<Verifiers>,
    /// Recent successful verifications; `None`: every login verifies.
    verified: Option<Arc<VerifiedCache>>,
}

/// The verifier slots: a permit per slot, and the slots' memories not in
/// use. A permit holder takes one memory and gives it back before its
/// permit goes, so there is always one free memory per free permit and
/// never more memories than slots.
struct Verifiers {
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<HashMemory>>,
}

impl Verifiers {
    fn new(slots: usize) -> Arc<Self> {
        let slots = slots.max(1);
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(slots)),
            idle: Mutex::new((0..slots).map(|_| HashMemory::default()).collect()),
        })
    }

    /// The slots every [`Authenticator::new`] shares, one per core: a
    /// reload builds a new authenticator, not more slots.
    fn shared() -> Arc<Self> {
        static SHARED: OnceLock<Arc<Verifiers>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::new(std::thread::available_parallelism().map_or(1, |n| n.get())))
            .clone()
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<HashMemory>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a free slot; `None` once closed.
    async fn acquire(self: &Arc<Self>) -> Option<Slot> {
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        let memory = self.idle().pop().expect("a free permit has a free memory");
        Some(Slot {
            memory,
            verifiers: self.clone(),
            _permit: permit,
        })
    }

    /// Bytes held by the idle slots' memories (all of them when no
    /// verification runs).
    #[cfg(test)]
    fn idle_bytes(&self) -> Vec<usize> {
        self.idle().iter().map(HashMemory::bytes).collect()
    }
}

/// A verifier slot in use: its memory, given back when dropped, then its
/// permit (fields drop after `drop`).
struct Slot {
    memory: HashMemory,
    verifiers: Arc<Verifiers>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.verifiers.idle().push(std::mem::take(&mut self.memory));
    }
}

/// Verifies on a slot's memory; with the cache, successes are looked up
/// first and remembered.
struct SlotHashes<'a> {
    memory: RefCell<&'a mut HashMemory>,
    cache: Option<&'a VerifiedCache>,
}

impl PasswordCheck for SlotHashes<'_> {
    fn verify(&self, password: &Secret, hash: &str) -> bool {
        if self.cache.is_some_and(|c| c.contains(hash, password)) {
            return true;
        }
        let ok = verify_password_in(&mut self.memory.borrow_mut(), password, hash) == Ok(true);
        if ok {
            if let Some(cache) = self.cache {
                cache.insert(hash, password);
            }
        }
        ok
    }
    fn dummy(&self, password: &Secret) {
        verify_dummy_in(&mut self.memory.borrow_mut(), password);
    }
}

/// Only what the cache knows: no hashing, no dummy (the fast path runs on
/// the async thread; whatever it cannot decide goes to the verifiers).
struct CacheOnly<'a>(&'a VerifiedCache);

impl PasswordCheck for CacheOnly<'_> {
    fn verify(&self, password: &Secret, hash: &str) -> bool {
        self.0.contains(hash, password)
    }
    fn dummy(&self, _: &Secret) {}
}

impl Authenticator {
    /// One verifier slot per core, the same slots for every authenticator
    /// made with `new` (one per configuration).
    pub fn new(store: Arc<dyn AccountStore>) -> Self {
        Self {
            store,
            verifiers: Verifiers::shared(),
            verified: None,
        }
    }

    /// Its own `verifiers` slots (at least 1): at most that many hash
    /// verifications at once.
    #[cfg(test)]
    pub fn with_verifiers(store: Arc<dyn AccountStore>, verifiers: usize) -> Self {
        Self {
            store,
            verifiers: Verifiers::new(verifiers),
            verified: None,
        }
    }

    /// Remembers successful verifications for `ttl` (see [`crate::access::verified`]);
    /// a zero `ttl` leaves the cache off.
    pub fn with_verified_cache(mut self, ttl: std::time::Duration) -> Self {
        self.verified = (!ttl.is_zero()).then(|| Arc::new(VerifiedCache::new(ttl)));
        self
    }

    /// The store behind this authenticator (for the admin API and pruning).
    pub fn store(&self) -> &Arc<dyn AccountStore> {
        &self.store
    }

    /// Decides one login and records it. The password never leaves this
    /// function except into the hash verification.
    pub async fn authenticate(&self, req: &LoginRequest) -> Result<Permit, Denial> {
        let now = unix_now();
        let login = match parse_login_name(&req.credentials.authcid, req.separator) {
            Ok(login) => login,
            Err(error) => {
                // Not a name any mailbox could have: no lookup, no access-log
                // row (there is no mailbox to file it under).
                tracing::info!(protocol = %req.protocol, client_ip = %req.peer.ip(), %error,
                    "login refused: invalid login name");
                return Err(DenyReason::UnknownOrBadPassword.into());
            }
        };
        let client_name = req
            .client_name
            .as_deref()
            .map(clean_client_name)
            .filter(|n| !n.is_empty());
        let outcome = self.decide(req, &login, now).await;
        if let Some(id) = outcome.as_ref().ok().and_then(|p| p.app_password_id) {
            if let Err(error) = self.store.touch_app_password(id, now).await {
                tracing::warn!(%error, app_password_id = id, "could not note app password use");
            }
        }
        let (result, reason) = match &outcome {
            Ok(_) => (LoginResult::Success, None),
            Err(denial) => (LoginResult::Failure, Some(denial.label())),
        };
        // The account store's decision, as the access log records it; the
        // session logs the final outcome (upstream included) as well.
        tracing::info!(
            protocol = %req.protocol,
            mailbox = %login.mailbox,
            collaborator = login.collaborator.as_deref().unwrap_or(""),
            client_ip = %req.peer.ip(),
            client_name = client_name.as_deref().unwrap_or(""),
            tls = req.tls,
            result = result.as_str(),
            reason = reason.unwrap_or(""),
            "login attempt"
        );
        let entry = AccessLogEntry {
            at: now,
            mailbox: login.mailbox,
            collaborator: login.collaborator,
            protocol: req.protocol,
            client_ip: req.peer.ip(),
            client_name,
            result,
            reason: reason.map(str::to_owned),
        };
        if let Err(error) = self.store.record_login(entry).await {
            // The decision stands; losing one history row is better than
            // refusing every login while the log cannot be written.
            tracing::warn!(%error, "could not write the access log");
        }
        outcome
    }

    /// The mailbox's record, or why not.
    async fn record(&self, login: &LoginName) -> Result<Option<MailboxRecord>, Denial> {
        self.store.mailbox(&login.mailbox).await.map_err(|error| {
            tracing::error!(%error, "account store unavailable");
            DenyReason::StoreUnavailable.into()
        })
    }

    async fn decide(&self, req: &LoginRequest, login: &LoginName, now: i64) -> Result<Permit, Denial> {
        let record = self.record(login).await?;
        if let Some(cache) = &self.verified {
            // A client seen recently: decided here, without a hash and
            // without a trip to the blocking pool. Anything else, refusals
            // included, is decided in full below.
            let request = Claim {
                protocol: req.protocol,
                login,
                password: &req.credentials.password,
                client_ip: req.peer.ip(),
                tls: req.tls,
            };
            if let Ok(permit) = policy::check_with(&request, record.as_ref(), now, &CacheOnly(cache)) {
                return Ok(permit);
            }
        }
        let Some(mut slot) = self.verifiers.acquire().await else {
            return Err(DenyReason::StoreUnavailable.into()); // closed: shutting down
        };
        // A burst of logins may queue here for a while: decide on the
        // record as it is now, not as it was before the wait (a
        // collaborator suspended meanwhile stays out). Through the cache,
        // usually without a query; a read that fails now is a failure now.
        let record = self.record(login).await?;
        let (protocol, client_ip, tls) = (req.protocol, req.peer.ip(), req.tls);
        let (login, password) = (login.clone(), req.credentials.password.clone());
        let cache = self.verified.clone();
        let decision = tokio::task::spawn_blocking(move || {
            // Held by the blocking task itself: if the client goes away and
            // this future is dropped, the slot stays taken until the hash is done.
            let passwords = SlotHashes {
                memory: RefCell::new(&mut slot.memory),
                cache: cache.as_deref(),
            };
            let request = Claim {
                protocol,
                login: &login,
                password: &password,
                client_ip,
                tls,
            };
            policy::check_with(&request, record.as_ref(), now, &passwords)
        })
        .await;
        decision.unwrap_or_else(|error| {
            tracing::error!(%error, "password verification task failed");
            Err(DenyReason::StoreUnavailable.into())
        })
    }
}

/// Client names come from the client: keep printable characters only (no
/// control characters for a log to interpret) and at most [`MAX_CLIENT_NAME`].
fn clean_client_name(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_control())
        .take(MAX_CLIENT_NAME)
        .collect()
}

#[cfg(test)]
mod tests;
