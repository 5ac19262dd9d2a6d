//! The sessions logged in now, each with who it is, so that a change to
//! the accounts reaches the sessions already open: the policy runs at
//! login, and an IMAP client in IDLE (or an SMTP client sending `NOOP`)
//! would otherwise keep a suspended collaborator's or a revoked app
//! password's session for days.
//!
//! [`Sessions::watch`] reads the account store's generation every
//! [`cache::GENERATION_POLL`]; when it moves, every live session's
//! principal is re-checked against its mailbox's record as it is now
//! ([`policy::recheck`]: no password is verified again; a changed password
//! is seen as a different stored hash), and each one that fails is ended
//! with its protocol's goodbye. A session's app password that expires
//! with time alone is ended at the first tick after it does.
//!
//! Bound: a session whose access is revoked by a change to the store gets
//! its goodbye within one poll (0.5 s) plus the store reads of one
//! re-check (one record per mailbox with live sessions, through the cache)
//! plus the goodbye's write (at most [`GOODBYE_TIMEOUT`](crate::ops::shutdown::GOODBYE_TIMEOUT)):
//! well inside 2 s on a store that answers. A store that does not answer
//! ends nothing (the next tick tries again): an outage is not a revocation.
//!
//! Memory: one entry per logged-in session (its mailbox and collaborator
//! names, about 100 bytes), removed when the session ends.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{oneshot, watch};

use crate::access::gate::{Authority, Gate};
use crate::access::policy::{self, CredentialUsed, RevokeReason, SessionClaim};
use crate::protocol::Protocol;
use crate::store::account::Pop3Delete;
use crate::store::{AccountStore, cache, unix_now};

/// Why the proxy ended a logged-in session (rather than the client, the
/// upstream, or the idle timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Its principal no longer passes the policy.
    Revoked(RevokeReason),
    /// It reached `limits.max_session_secs`.
    Lifetime,
    /// An operator ended it (`pec-proxy session end`).
    Operator,
}

impl EndReason {
    /// The `reason` label of `pec_proxy_sessions_revoked_total`.
    pub fn label(self) -> &'static str {
        match self {
            EndReason::Revoked(r) => r.label(),
            EndReason::Lifetime => "max_session_secs",
            EndReason::Operator => "operator",
        }
    }
}

/// Who a logged-in session is, as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub protocol: Protocol,
    pub mailbox: String,
    pub collaborator: Option<String>,
    /// `None`: pass-through, the upstream judged the client's own
    /// credentials; there is nothing of ours to re-check.
    pub credential: Option<CredentialUsed>,
    /// What its relay lets it do to messages (keep on server, read-only),
    /// chosen at login: a stricter setting since then ends the session.
    pub access: Pop3Delete,
    pub peer: SocketAddr,
    /// Unix seconds at login.
    pub since: i64,
}

struct Live {
    entry: Entry,
    /// When its app password expires (unix seconds), as last checked.
    expires: Option<i64>,
    end: Option<oneshot::Sender<EndReason>>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    live: HashMap<u64, Live>,
}

/// The registry of logged-in sessions, one per server (shared by every
/// configuration a reload builds).
#[derive(Default)]
pub struct Sessions {
    state: Mutex<State>,
}

/// A session's place in the registry, given back when dropped; and the
/// signal that the proxy ended it.
pub struct Registered {
    id: u64,
    sessions: Arc<Sessions>,
    ended: oneshot::Receiver<EndReason>,
}

impl Registered {
    /// Completes when the proxy ends this session, with why. Never
    /// completes otherwise.
    pub async fn ended(&mut self) -> EndReason {
        match (&mut self.ended).await {
            Ok(reason) => reason,
            Err(_) => std::future::pending().await,
        }
    }

    /// Its id in the registry.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.sessions.lock().live.remove(&self.id);
    }
}

impl Sessions {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Entries are plain data: a panic elsewhere leaves them usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a logged-in session. It stays until the returned value drops.
    pub fn register(self: &Arc<Self>, entry: Entry) -> Registered {
        let (tx, rx) = oneshot::channel();
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        state.live.insert(
            id,
            Live {
                entry,
                expires: None,
                end: Some(tx),
            },
        );
        Registered {
            id,
            sessions: self.clone(),
            ended: rx,
        }
    }

    /// The sessions logged in now (of `mailbox` only, if given), by id.
    pub fn list(&self, mailbox: Option<&str>) -> Vec<(u64, Entry)> {
        let state = self.lock();
        let mut all: Vec<(u64, Entry)> = state
            .live
            .iter()
            .filter(|(_, l)| mailbox.is_none_or(|m| l.entry.mailbox == m))
            .map(|(id, l)| (*id, l.entry.clone()))
            .collect();
        all.sort_unstable_by_key(|(id, _)| *id);
        all
    }

    /// Ends (as [`EndReason::Operator`]) the sessions `target` names: a
    /// session id, a mailbox (all its sessions, the owner's and its
    /// collaborators'), or `name/mailbox` (one collaborator's). Returns
    /// how many were told to end.
    pub fn end_matching(&self, target: &str) -> usize {
        let target = target.trim().to_lowercase();
        let id: Option<u64> = target.parse().ok();
        let (collaborator, mailbox) = match target.split_once('/') {
            Some((name, mailbox)) => (Some(name), mailbox),
            None => (None, target.as_str()),
        };
        let mut state = self.lock();
        let mut ended = 0;
        for (live_id, live) in state.live.iter_mut() {
            let e = &live.entry;
            let hit = match id {
                Some(id) => id == *live_id,
                None => {
                    e.mailbox == mailbox && collaborator.is_none_or(|c| e.collaborator.as_deref() == Some(c))
                }
            };
            if hit && live.end.is_some() {
                Self::end(live, EndReason::Operator);
                ended += 1;
            }
        }
        ended
    }

    /// Who session `id` is, while it is registered.
    pub fn entry(&self, id: u64) -> Option<Entry> {
        self.lock().live.get(&id).map(|l| l.entry.clone())
    }

    /// Sessions logged in now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().live.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tells session `id` to end; the first reason given wins.
    fn end(live: &mut Live, reason: EndReason) {
        if let Some(tx) = live.end.take() {
            let _ = tx.send(reason);
        }
    }

    /// Re-checks the sessions of `only` (or every session with a
    /// credential of ours) against the records in `store` now. Returns
    /// `false` if a record could not be read (nothing is ended on its
    /// behalf: an outage is not a revocation).
    pub async fn recheck(&self, store: &dyn AccountStore, only: Option<u64>) -> bool {
        let mailboxes: Vec<String> = {
            let state = self.lock();
            let mut names: Vec<String> = state
                .live
                .iter()
                .filter(|(id, l)| l.entry.credential.is_some() && only.is_none_or(|o| o == **id))
                .map(|(_, l)| l.entry.mailbox.clone())
                .collect();
            names.sort_unstable();
            names.dedup();
            names
        };
        let mut records = BTreeMap::new();
        let mut complete = true;
        for mailbox in mailboxes {
            match store.mailbox(&mailbox).await {
                Ok(record) => {
                    records.insert(mailbox, record);
                }
                Err(error) => {
                    tracing::warn!(%error, "account store unavailable: sessions not re-checked");
                    complete = false;
                }
            }
        }
        let now = unix_now();
        let mut state = self.lock();
        for (id, live) in state.live.iter_mut() {
            if only.is_some_and(|o| o != *id) {
                continue;
            }
            let (Some(credential), Some(record)) = (live.entry.credential, records.get(&live.entry.mailbox))
            else {
                continue;
            };
            let claim = SessionClaim {
                protocol: live.entry.protocol,
                mailbox: &live.entry.mailbox,
                collaborator: live.entry.collaborator.as_deref(),
                credential,
                access: live.entry.access,
            };
            match policy::recheck(&claim, record.as_ref(), now) {
                Ok(expires) => live.expires = expires,
                Err(reason) => Self::end(live, EndReason::Revoked(reason)),
            }
        }
        complete
    }

    /// Ends the sessions whose app password has expired by `now`.
    fn end_expired(&self, now: i64) {
        let mut state = self.lock();
        for live in state.live.values_mut() {
            if live.expires.is_some_and(|e| e <= now) {
                Self::end(live, EndReason::Revoked(RevokeReason::AppPasswordExpired));
            }
        }
    }

    /// Runs for as long as the server does: every [`cache::GENERATION_POLL`],
    /// reads the current configuration's account store's generation and,
    /// when it moved (or the store itself changed on reload), re-checks
    /// every session; in between, ends sessions whose app password expired.
    pub async fn watch(self: Arc<Self>, gate: watch::Receiver<Gate>) {
        let mut tick = tokio::time::interval(cache::GENERATION_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The store (by address) and its generation last re-checked against.
        let mut seen: Option<(usize, i64)> = None;
        loop {
            tick.tick().await;
            let store = match &gate.borrow().authority {
                Authority::Store(auth) => auth.store().clone(),
                Authority::PassThrough => continue,
            };
            let key = Arc::as_ptr(&store) as *const () as usize;
            let generation = match store.generation().await {
                Ok(g) => g,
                Err(error) => {
                    tracing::warn!(%error, "account store unavailable: sessions not re-checked");
                    continue;
                }
            };
            if seen != Some((key, generation)) {
                if self.recheck(store.as_ref(), None).await {
                    seen = Some((key, generation));
                }
            } else {
                self.end_expired(unix_now());
            }
        }
    }
}

#[cfg(test)]
mod tests;
