//! A cache of mailbox records in front of any [`AccountStore`].
//!
//! Every login reads one record; admin changes are rare. The cache keeps
//! records by address and drops them all when the store's generation moves.
//! The generation is read at most once per poll interval, on demand, so an
//! idle proxy does not query the store and a busy one queries it once per
//! interval. Changes made through this cache clear it at once; changes by
//! another process (the admin CLI, another node) are seen within one
//! interval, or at the next read when the database announces them
//! ([`AccountStore::announced_generation`], PostgreSQL).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{AccessLogEntry, AccessLogRow, AccountStore, AppPasswordInfo, NewAppPassword, StoreError};
use crate::protocol::Protocol;
use crate::store::account::{MailboxRecord, Pop3Delete, Rights};

/// How often the generation is checked: a running proxy sees an admin
/// change "within a second" (the README's promise to operators).
pub const GENERATION_POLL: Duration = Duration::from_millis(500);

/// Bound on cached records (unknown addresses are cached too, so a scan of
/// random names must not grow memory without limit). When full, the cache
/// starts over.
pub const MAX_ENTRIES: usize = 50_000;

#[derive(Default)]
struct CacheState {
    generation: Option<i64>,
    checked_at: Option<Instant>,
    records: HashMap<String, Option<MailboxRecord>>,
}

/// Caching front for an account store.
pub struct CachedStore {
    inner: Arc<dyn AccountStore>,
    poll: Duration,
    state: Mutex<CacheState>,
}

impl CachedStore {
    pub fn new(inner: Arc<dyn AccountStore>) -> Self {
        Self::with_poll(inner, GENERATION_POLL)
    }

    pub fn with_poll(inner: Arc<dyn AccountStore>, poll: Duration) -> Self {
        Self {
            inner,
            poll,
            state: Mutex::new(CacheState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // A panic elsewhere cannot leave the map inconsistent: recover it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops every cached record.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.records.clear();
        state.generation = None;
    }

    /// Checks the generation if the last check is older than the interval;
    /// returns the generation the cache is valid for.
    async fn refresh(&self) -> Result<i64, StoreError> {
        {
            let state = self.lock();
            if let (Some(generation), Some(at)) = (state.generation, state.checked_at) {
                // A newer generation announced by the database is read now.
                let announced = self.inner.announced_generation().is_some_and(|a| a > generation);
                if at.elapsed() < self.poll && !announced {
                    return Ok(generation);
                }
            }
        }
        self.generation().await
    }

    /// Runs a change, then clears the cache whatever the outcome.
    async fn changed<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        self.clear();
        result
    }
}

#[async_trait]
impl AccountStore for CachedStore {
    async fn mailbox(&self, address: &str) -> Result<Option<MailboxRecord>, StoreError> {
        let generation = self.refresh().await?;
        if let Some(hit) = self.lock().records.get(address) {
            return Ok(hit.clone());
        }
        let record = self.inner.mailbox(address).await?;
        let mut state = self.lock();
        // Don't keep a record read before a change this cache already saw.
        if state.generation == Some(generation) {
            if state.records.len() >= MAX_ENTRIES {
                state.records.clear();
            }
            state.records.insert(address.to_owned(), record.clone());
        }
        Ok(record)
    }

    async fn mailboxes(&self) -> Result<Vec<String>, StoreError> {
        self.inner.mailboxes().await
    }

    /// Reads the store's generation now, whatever the interval, and keeps
    /// the cache in step with it: a caller that sees a new generation (the
    /// session registry's watch) then reads records of that generation or
    /// later, never ones this cache kept from before.
    fn announced_generation(&self) -> Option<i64> {
        self.inner.announced_generation()
    }

    async fn generation(&self) -> Result<i64, StoreError> {
        let current = self.inner.generation().await?;
        let mut state = self.lock();
        if state.generation != Some(current) {
            state.records.clear();
            state.generation = Some(current);
        }
        state.checked_at = Some(Instant::now());
        Ok(current)
    }

    async fn add_mailbox(
        &self,
        address: &str,
        password_hash: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.changed(self.inner.add_mailbox(address, password_hash, now).await)
            .await
    }

    async fn remove_mailbox(&self, address: &str) -> Result<(), StoreError> {
        self.changed(self.inner.remove_mailbox(address).await).await
    }

    async fn set_password_hash(&self, address: &str, hash: &str) -> Result<(), StoreError> {
        self.changed(self.inner.set_password_hash(address, hash).await)
            .await
    }

    async fn set_active(&self, address: &str, active: bool) -> Result<(), StoreError> {
        self.changed(self.inner.set_active(address, active).await).await
    }

    async fn set_protocol(&self, address: &str, protocol: Protocol, on: bool) -> Result<(), StoreError> {
        self.changed(self.inner.set_protocol(address, protocol, on).await)
            .await
    }

    async fn set_two_step(&self, address: &str, on: bool) -> Result<(), StoreError> {
        self.changed(self.inner.set_two_step(address, on).await).await
    }

    async fn set_pop3_delete(
        &self,
        address: &str,
        collaborator: Option<&str>,
        value: Pop3Delete,
    ) -> Result<(), StoreError> {
        let result = self.inner.set_pop3_delete(address, collaborator, value).await;
        self.changed(result).await
    }

    async fn set_route(&self, address: &str, route: Option<&str>) -> Result<(), StoreError> {
        self.changed(self.inner.set_route(address, route).await).await
    }

    async fn create_app_password(&self, new: NewAppPassword) -> Result<i64, StoreError> {
        self.changed(self.inner.create_app_password(new).await).await
    }

    async fn app_password(&self, id: i64) -> Result<Option<AppPasswordInfo>, StoreError> {
        self.inner.app_password(id).await
    }

    async fn app_passwords(&self, address: &str) -> Result<Vec<AppPasswordInfo>, StoreError> {
        self.inner.app_passwords(address).await
    }

    async fn revoke_app_password(&self, id: i64) -> Result<(), StoreError> {
        self.changed(self.inner.revoke_app_password(id).await).await
    }

    async fn set_app_password_expiry(&self, id: i64, expires: Option<i64>) -> Result<(), StoreError> {
        self.changed(self.inner.set_app_password_expiry(id, expires).await)
            .await
    }

    async fn regenerate_app_password(
        &self,
        id: i64,
        hash: &str,
        now: i64,
        expires: Option<i64>,
    ) -> Result<i64, StoreError> {
        let result = self.inner.regenerate_app_password(id, hash, now, expires).await;
        self.changed(result).await
    }

    async fn touch_app_password(&self, id: i64, now: i64) -> Result<(), StoreError> {
        // last_used is not part of any decision: no need to drop the cache.
        self.inner.touch_app_password(id, now).await
    }

    async fn add_collaborator(
        &self,
        address: &str,
        name: &str,
        password_hash: Option<&str>,
        rights: Rights,
        now: i64,
    ) -> Result<(), StoreError> {
        let result = self
            .inner
            .add_collaborator(address, name, password_hash, rights, now)
            .await;
        self.changed(result).await
    }

    async fn remove_collaborator(&self, address: &str, name: &str) -> Result<(), StoreError> {
        self.changed(self.inner.remove_collaborator(address, name).await)
            .await
    }

    async fn set_collaborator_active(
        &self,
        address: &str,
        name: &str,
        active: bool,
    ) -> Result<(), StoreError> {
        let result = self.inner.set_collaborator_active(address, name, active).await;
        self.changed(result).await
    }

    async fn set_collaborator_rights(
        &self,
        address: &str,
        name: &str,
        rights: Rights,
    ) -> Result<(), StoreError> {
        let result = self.inner.set_collaborator_rights(address, name, rights).await;
        self.changed(result).await
    }

    async fn set_collaborator_password_hash(
        &self,
        address: &str,
        name: &str,
        hash: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .inner
            .set_collaborator_password_hash(address, name, hash)
            .await;
        self.changed(result).await
    }

    async fn record_login(&self, entry: AccessLogEntry) -> Result<(), StoreError> {
        self.inner.record_login(entry).await
    }

    async fn access_log(&self, address: &str, limit: u32) -> Result<Vec<AccessLogRow>, StoreError> {
        self.inner.access_log(address, limit).await
    }

    async fn prune_access_log(&self, older_than: i64) -> Result<u64, StoreError> {
        self.inner.prune_access_log(older_than).await
    }
}
