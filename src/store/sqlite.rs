//! The embedded account store: one SQLite file, created with its schema on
//! first run and brought up to date when opened (one machine, one owner; a
//! fleet's shared database is migrated only when told, see
//! [`super::postgres`]).
//!
//! The SQL is shared with PostgreSQL (`sql/*.rs`, included into [`sql`]);
//! queries are built at run time (`sqlx::query`, no compile-time macros),
//! so building needs no database.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::StoreError;
use super::migrations::{Backend, SchemaState};

/// How long a writer waits for another (the admin CLI and the proxy share
/// the file) before giving up with "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A read transaction in WAL mode reads one snapshot already.
const SNAPSHOT: Option<&str> = None;

const MIGRATIONS_TABLE_EXISTS: &str =
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'";

/// Nothing beside the pool.
#[derive(Debug, Clone, Default)]
pub(super) struct Extra;

/// SQLite announces nothing: the generation is polled from the file.
fn announced_generation(_: &Extra) -> Option<i64> {
    None
}

/// How a transaction that will write begins (see `sql/store.rs`).
const WRITE_BEGIN: Option<&str> = Some("BEGIN IMMEDIATE");

/// How long the access log's writer waits for more rows to commit with
/// the first one.
const LINGER: std::time::Duration = std::time::Duration::ZERO;

/// The account store's SQL on SQLite.
pub mod sql {
    type Db = sqlx::Sqlite;
    include!("sql/rows.rs");
    include!("sql/access_log.rs");
    include!("sql/store.rs");
}

/// The account store in a SQLite file.
pub type SqliteStore = sql::SqlStore;

impl SqliteStore {
    /// Opens (creating if needed, mode 0600) the database at `path` and
    /// brings its schema up to date; refuses a schema newer than this
    /// build's. WAL mode lets the proxy read while the admin CLI writes.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        create_private(path).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let latest = Backend::Sqlite.latest();
        if let SchemaState::Newer { found, latest } =
            SchemaState::of(sql::schema_version(&pool).await?, latest)
        {
            return Err(StoreError::SchemaTooNew { found, latest });
        }
        Backend::Sqlite.migrator().await?.run(&pool).await?;
        Ok(Self::with_pool(pool, Extra))
    }
}

/// The file holds password hashes: nobody but the proxy's user should read it.
#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other.map(drop),
    }
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}
