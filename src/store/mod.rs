//! The account store: mailboxes, their app passwords and collaborators, and
//! the access log.
//!
//! [`AccountStore`] is object-safe (`Arc<dyn AccountStore>`) through
//! `async-trait`. [`SqliteStore`] is the embedded default, [`PostgresStore`]
//! the fleet's: one SQL source for both (`sql/`), one schema
//! ([`migrations`]). [`CachedStore`] sits in front of either and
//! drops its cache when [`AccountStore::generation`] moves, which every
//! account change bumps, so a running proxy sees admin changes within
//! [`cache::GENERATION_POLL`] without a restart.

use std::net::IpAddr;

use async_trait::async_trait;
use serde::Serialize;
use thiserror::Error;

use crate::protocol::Protocol;
use crate::store::account::{MailboxRecord, Pop3Delete, Rights};

pub mod account;
pub mod cache;
pub mod copy;
pub mod migrations;
pub mod postgres;
pub mod sqlite;

pub use cache::CachedStore;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Default access-log retention: the six months providers show owners.
pub const DEFAULT_RETENTION_DAYS: i64 = 180;

/// A store failure. Messages name the object, never a password or a hash.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("mailbox {0} not found")]
    MailboxNotFound(String),
    #[error("mailbox {0} already exists")]
    MailboxExists(String),
    #[error("collaborator {0} not found")]
    CollaboratorNotFound(String),
    #[error("collaborator {0} already exists")]
    CollaboratorExists(String),
    #[error("app password {0} not found")]
    AppPasswordNotFound(i64),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database schema migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the database has no pec-proxy schema: create it with `pec-proxy store migrate`")]
    SchemaMissing,
    #[error(
        "the database schema is version {found}, this pec-proxy needs {latest}: run `pec-proxy store migrate`"
    )]
    SchemaOutdated { found: i64, latest: i64 },
    #[error(
        "the database schema is version {found}, newer than this pec-proxy knows ({latest}): upgrade pec-proxy"
    )]
    SchemaTooNew { found: i64, latest: i64 },
}

/// Whether a login attempt succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginResult {
    Success,
    Failure,
    /// Not a login: a logged-in session the proxy ended because its access
    /// was revoked (`reason`: the revocation's label).
    Revoked,
}

impl LoginResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Revoked => "revoked",
        }
    }
}

/// One login attempt, as recorded. Never holds a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogEntry {
    /// Unix seconds.
    pub at: i64,
    pub mailbox: String,
    pub collaborator: Option<String>,
    pub protocol: Protocol,
    pub client_ip: IpAddr,
    /// From IMAP `ID` when the client sent one.
    pub client_name: Option<String>,
    pub result: LoginResult,
    /// A [`crate::access::policy::DenyReason::label`] on failure, a
    /// [`crate::access::policy::RevokeReason::label`] when revoked.
    pub reason: Option<String>,
}

/// An access-log row as read back, with the store's "new device" flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessLogRow {
    pub at: i64,
    pub mailbox: String,
    pub collaborator: Option<String>,
    pub protocol: String,
    pub client_ip: String,
    pub client_name: Option<String>,
    pub result: String,
    pub reason: Option<String>,
    /// Neither the client IP nor the client name had been seen in a
    /// successful login of this principal (mailbox, collaborator) before.
    pub new_device: bool,
}

/// A new app password to store (the caller hashed it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAppPassword {
    pub mailbox: String,
    pub collaborator: Option<String>,
    pub label: String,
    /// argon2id of the normalised password.
    pub hash: String,
    pub created: i64,
    pub expires: Option<i64>,
}

/// An app password with its owner, for listing and for the admin CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppPasswordInfo {
    pub id: i64,
    pub mailbox: String,
    pub collaborator: Option<String>,
    pub label: String,
    pub created: i64,
    pub expires: Option<i64>,
    pub last_used: Option<i64>,
}

/// Accounts and access history. Every method that changes an account bumps
/// the generation; recording logins and touching `last_used` do not (they
/// would otherwise flush every cache at every login).
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// The whole record of one mailbox (canonical address), or `None`.
    async fn mailbox(&self, address: &str) -> Result<Option<MailboxRecord>, StoreError>;
    /// All mailbox addresses, sorted.
    async fn mailboxes(&self) -> Result<Vec<String>, StoreError>;
    /// A number that changes whenever an account changes.
    async fn generation(&self) -> Result<i64, StoreError>;
    /// The newest generation the database announced by itself (PostgreSQL's
    /// NOTIFY), if it does: a hint to read [`Self::generation`] now rather
    /// than at the next poll. Never a substitute for reading it.
    fn announced_generation(&self) -> Option<i64> {
        None
    }

    async fn add_mailbox(
        &self,
        address: &str,
        password_hash: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;
    async fn remove_mailbox(&self, address: &str) -> Result<(), StoreError>;
    async fn set_password_hash(&self, address: &str, hash: &str) -> Result<(), StoreError>;
    async fn set_active(&self, address: &str, active: bool) -> Result<(), StoreError>;
    async fn set_protocol(&self, address: &str, protocol: Protocol, on: bool) -> Result<(), StoreError>;
    async fn set_two_step(&self, address: &str, on: bool) -> Result<(), StoreError>;
    /// `collaborator: None` sets the mailbox's own setting.
    async fn set_pop3_delete(
        &self,
        address: &str,
        collaborator: Option<&str>,
        value: Pop3Delete,
    ) -> Result<(), StoreError>;
    async fn set_route(&self, address: &str, route: Option<&str>) -> Result<(), StoreError>;

    /// Stores a new app password and returns its id.
    async fn create_app_password(&self, new: NewAppPassword) -> Result<i64, StoreError>;
    async fn app_password(&self, id: i64) -> Result<Option<AppPasswordInfo>, StoreError>;
    /// The app passwords of a mailbox's owner and of its collaborators.
    async fn app_passwords(&self, address: &str) -> Result<Vec<AppPasswordInfo>, StoreError>;
    async fn revoke_app_password(&self, id: i64) -> Result<(), StoreError>;
    async fn set_app_password_expiry(&self, id: i64, expires: Option<i64>) -> Result<(), StoreError>;
    /// Replaces an app password by a new one (same owner, label and
    /// lifetime) in one transaction; returns the new id.
    async fn regenerate_app_password(
        &self,
        id: i64,
        hash: &str,
        now: i64,
        expires: Option<i64>,
    ) -> Result<i64, StoreError>;
    /// Notes that an app password was used at `now` (no generation bump).
    async fn touch_app_password(&self, id: i64, now: i64) -> Result<(), StoreError>;

    async fn add_collaborator(
        &self,
        address: &str,
        name: &str,
        password_hash: Option<&str>,
        rights: Rights,
        now: i64,
    ) -> Result<(), StoreError>;
    async fn remove_collaborator(&self, address: &str, name: &str) -> Result<(), StoreError>;
    /// Suspends (`false`) or resumes (`true`) a collaborator.
    async fn set_collaborator_active(
        &self,
        address: &str,
        name: &str,
        active: bool,
    ) -> Result<(), StoreError>;
    async fn set_collaborator_rights(
        &self,
        address: &str,
        name: &str,
        rights: Rights,
    ) -> Result<(), StoreError>;
    async fn set_collaborator_password_hash(
        &self,
        address: &str,
        name: &str,
        hash: &str,
    ) -> Result<(), StoreError>;

    /// Records a login attempt, computing its "new device" flag.
    async fn record_login(&self, entry: AccessLogEntry) -> Result<(), StoreError>;
    /// The latest `limit` attempts on a mailbox, newest first.
    async fn access_log(&self, address: &str, limit: u32) -> Result<Vec<AccessLogRow>, StoreError>;
    /// Deletes attempts (and devices last seen) before `older_than`;
    /// returns the number of access-log rows deleted.
    async fn prune_access_log(&self, older_than: i64) -> Result<u64, StoreError>;
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An open account store, of either backend.
#[derive(Debug, Clone)]
pub enum Opened {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl std::ops::Deref for Opened {
    type Target = dyn AccountStore + 'static;

    fn deref(&self) -> &(dyn AccountStore + 'static) {
        match self {
            Self::Sqlite(s) => s,
            Self::Postgres(s) => s,
        }
    }
}

impl Opened {
    /// Opens the store `backend` names. SQLite creates and upgrades its
    /// file's schema; PostgreSQL does only when `schema` says so.
    pub async fn open(
        backend: &crate::config::StoreBackend,
        schema: postgres::Schema,
    ) -> Result<Self, StoreError> {
        Ok(match backend {
            crate::config::StoreBackend::Sqlite(path) => Self::Sqlite(SqliteStore::open(path).await?),
            crate::config::StoreBackend::Postgres(cfg) => {
                Self::Postgres(PostgresStore::open(cfg, schema).await?)
            }
        })
    }

    pub fn as_dyn(&self) -> &dyn AccountStore {
        &**self
    }

    pub fn shared(&self) -> std::sync::Arc<dyn AccountStore> {
        match self {
            Self::Sqlite(s) => std::sync::Arc::new(s.clone()),
            Self::Postgres(s) => std::sync::Arc::new(s.clone()),
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}
