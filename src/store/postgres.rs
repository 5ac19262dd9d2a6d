//! The fleet's account store: one PostgreSQL database shared by every
//! proxy, the database providers already run (replicated, backed up,
//! monitored with their usual tools).
//!
//! - The SQL is the SQLite store's (`sql/*.rs`, included into [`sql`]), on
//!   the same schema ([`super::migrations`]).
//! - The schema is created or upgraded only when an operator says so
//!   (`pec-proxy store migrate`): nodes of one fleet are upgraded one after
//!   another, and none of them may change the schema under the others. A
//!   node refuses to start on a database without the schema, with an older
//!   one, or with one newer than it knows.
//! - Every change to an account moves the generation (a trigger, whoever
//!   writes the tables) and is announced on the channel
//!   `pec_proxy_accounts`; [`PostgresStore::listen`] hears it and the cache in front
//!   ([`super::CachedStore`]) drops its records at once. The cache's poll
//!   of the generation ([`super::cache::GENERATION_POLL`]) keeps running
//!   beside it, so a node whose listening connection drops still sees
//!   every change within the poll.
//! - Bounds: at most `max_connections` connections (plus one listening);
//!   a connection is waited for at most `acquire_timeout`; a statement runs
//!   at most `statement_timeout` (the server cancels it). A database that
//!   does not answer fails logins with the store's temporary error after
//!   at most these, never accepts one.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};

use super::StoreError;
use super::migrations::{Backend, SchemaState};
use crate::config::{PostgresConfig, SslMode};

mod listen;
pub use listen::{Channel, Listener};

/// One snapshot of the three tables a mailbox record is read from.
const SNAPSHOT: Option<&str> = Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY");

const MIGRATIONS_TABLE_EXISTS: &str = "SELECT 1 WHERE to_regclass('_sqlx_migrations') IS NOT NULL";

/// The channel the generation triggers announce on.
pub const ACCOUNTS_CHANNEL: &str = "pec_proxy_accounts";

/// The newest generation the database announced to this process, and the
/// task listening for it.
#[derive(Debug, Clone, Default)]
pub(super) struct Extra {
    announced: Arc<Announced>,
    listener: Arc<OnceLock<Listener>>,
}

#[derive(Debug)]
struct Announced(AtomicI64);

impl Announced {
    fn raise(&self, generation: i64) {
        self.0.fetch_max(generation, Ordering::AcqRel);
    }
}

impl Default for Announced {
    fn default() -> Self {
        Self(AtomicI64::new(i64::MIN))
    }
}

/// The newest generation announced since [`listen`] started, if any.
fn announced_generation(extra: &Extra) -> Option<i64> {
    let g = extra.announced.0.load(Ordering::Acquire);
    (g != i64::MIN).then_some(g)
}

/// How a transaction that will write begins (see `sql/store.rs`).
const WRITE_BEGIN: Option<&str> = None;

/// How long the access log's writer waits for more rows to commit with
/// the first one.
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// The account store's SQL on PostgreSQL.
pub mod sql {
    type Db = sqlx::Postgres;
    include!("sql/rows.rs");
    include!("sql/access_log.rs");
    include!("sql/store.rs");
}

/// The account store in a PostgreSQL database.
pub type PostgresStore = sql::SqlStore;

/// What to do with the schema when opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Refuse anything but this build's schema (a running node).
    MustBeCurrent,
    /// Create or upgrade it (`pec-proxy store migrate`); still refuse a
    /// newer one.
    Migrate,
}

impl PostgresStore {
    /// Connects to the database `cfg` names and checks (or, when told,
    /// migrates) its schema.
    pub async fn open(cfg: &PostgresConfig, schema: Schema) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections)
            .acquire_timeout(cfg.acquire_timeout)
            .connect_with(connect_options(cfg)?)
            .await?;
        let latest = Backend::Postgres.latest();
        match (SchemaState::of(sql::schema_version(&pool).await?, latest), schema) {
            (SchemaState::Newer { found, latest }, _) => {
                return Err(StoreError::SchemaTooNew { found, latest });
            }
            (SchemaState::Current, _) => {}
            (_, Schema::Migrate) => Backend::Postgres.migrator().await?.run(&pool).await?,
            (SchemaState::Empty, Schema::MustBeCurrent) => return Err(StoreError::SchemaMissing),
            (SchemaState::Older { found, latest }, Schema::MustBeCurrent) => {
                return Err(StoreError::SchemaOutdated { found, latest });
            }
        }
        Ok(Self::with_pool(pool, Extra::default()))
    }

    /// Starts listening for the database's announcements (once; later
    /// calls do nothing): account changes, and `channels`. Listening stops
    /// when the last handle of this store is dropped.
    pub fn listen(&self, channels: Vec<Channel>) {
        self.extra
            .listener
            .get_or_init(|| listen::spawn(self.pool().clone(), self.extra.announced.clone(), channels));
    }
}

/// The connection settings: the URL (without a password), the password from
/// its file, TLS, and the statement timeout.
fn connect_options(cfg: &PostgresConfig) -> Result<PgConnectOptions, StoreError> {
    let mut options: PgConnectOptions = cfg.url.parse()?;
    if let Some(password) = &cfg.password {
        options = options.password(password.expose_str().unwrap_or_default());
    }
    if let Some(mode) = cfg.sslmode {
        options = options.ssl_mode(match mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require => PgSslMode::Require,
            SslMode::VerifyCa => PgSslMode::VerifyCa,
            SslMode::VerifyFull => PgSslMode::VerifyFull,
        });
    }
    options = options
        .application_name("pec-proxy")
        .options([("statement_timeout", cfg.statement_timeout.as_millis())]);
    if let Some(ca) = &cfg.ca {
        options = options.ssl_root_cert(ca);
    }
    Ok(options)
}
