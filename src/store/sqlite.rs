//! The embedded account store: one SQLite file, created with its schema on
//! first run.
//!
//! Queries are built at run time (`sqlx::query`, no compile-time macros), so
//! building needs no database. The schema lives in `migrations/` and is
//! embedded with `include_str!` into a [`Migrator`]: sqlx's `migrate!` macro
//! would need sqlx's `macros` feature. Versions, checksums and the
//! `_sqlx_migrations` table are the same as with `migrate!` or `sqlx-cli`.

use std::borrow::Cow;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::access_log::GroupCommit;
use super::sqlite_rows::{
    APP_PASSWORD_COLUMNS, app_password_info, insert_app_password, load_mailbox, mailbox_must_exist,
};
use super::{AccessLogEntry, AccessLogRow, AccountStore, AppPasswordInfo, NewAppPassword, StoreError};
use crate::protocol::Protocol;
use crate::store::account::{MailboxRecord, Pop3Delete, Rights};

/// How long a writer waits for another (the admin CLI and the proxy share
/// the file) before giving up with "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema versions, oldest first, as files in `migrations/`.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "accounts", include_str!("../../migrations/0001_accounts.sql")),
    (
        2,
        "access log revoked",
        include_str!("../../migrations/0002_access_log_revoked.sql"),
    ),
];

type Resolved = Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send>>;

#[derive(Debug)]
struct EmbeddedMigrations;

impl MigrationSource<'static> for EmbeddedMigrations {
    fn resolve(self) -> Resolved {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The account store in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The access log's writer, started by the first login recorded (the
    /// admin commands never start it).
    access_log: Arc<OnceLock<GroupCommit>>,
}

impl SqliteStore {
    /// Opens (creating if needed, mode 0600) the database at `path` and
    /// brings its schema up to date. WAL mode lets the proxy read while the
    /// admin CLI writes.
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
        Migrator::new(EmbeddedMigrations).await?.run(&pool).await?;
        Ok(Self {
            pool,
            access_log: Arc::default(),
        })
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin().await?)
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

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Bumps a named counter and returns its new value.
pub(super) async fn bump(tx: &mut Transaction<'_, Sqlite>, name: &str) -> Result<i64, StoreError> {
    let row = sqlx::query("UPDATE counters SET value = value + 1 WHERE name = ? RETURNING value")
        .bind(name)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get(0)?)
}

/// Runs one account change: the statement must touch exactly one row, or
/// `not_found` is returned; the generation moves with it.
async fn change_one<'q>(
    tx: &mut Transaction<'_, Sqlite>,
    query: SqliteQuery<'q>,
    not_found: StoreError,
) -> Result<(), StoreError> {
    if query.execute(&mut **tx).await?.rows_affected() == 0 {
        return Err(not_found);
    }
    bump(tx, "generation").await?;
    Ok(())
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn mailbox(&self, address: &str) -> Result<Option<MailboxRecord>, StoreError> {
        load_mailbox(&self.pool, address).await
    }
    async fn mailboxes(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT address FROM mailboxes ORDER BY address")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(StoreError::from))
            .collect()
    }

    async fn generation(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT value FROM counters WHERE name = 'generation'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn add_mailbox(
        &self,
        address: &str,
        password_hash: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO mailboxes (address, password_hash, created_at) VALUES (?, ?, ?) \
             ON CONFLICT (address) DO NOTHING",
        )
        .bind(address)
        .bind(password_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::MailboxExists(address.into()));
        }
        bump(&mut tx, "generation").await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_mailbox(&self, address: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        // Its history goes with it; cascades remove the rest.
        sqlx::query("DELETE FROM access_log WHERE mailbox = ?")
            .bind(address)
            .execute(&mut *tx)
            .await?;
        let query = sqlx::query("DELETE FROM mailboxes WHERE address = ?").bind(address);
        change_one(&mut tx, query, StoreError::MailboxNotFound(address.into())).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_password_hash(&self, address: &str, hash: &str) -> Result<(), StoreError> {
        self.update_mailbox(
            address,
            sqlx::query("UPDATE mailboxes SET password_hash = ? WHERE address = ?").bind(hash),
        )
        .await
    }

    async fn set_active(&self, address: &str, active: bool) -> Result<(), StoreError> {
        self.update_mailbox(
            address,
            sqlx::query("UPDATE mailboxes SET active = ? WHERE address = ?").bind(active),
        )
        .await
    }

    async fn set_protocol(&self, address: &str, protocol: Protocol, on: bool) -> Result<(), StoreError> {
        // The column name comes from our enum, never from input.
        let sql = match protocol {
            Protocol::Imap => "UPDATE mailboxes SET imap = ? WHERE address = ?",
            Protocol::Pop3 => "UPDATE mailboxes SET pop3 = ? WHERE address = ?",
            Protocol::Smtp => "UPDATE mailboxes SET smtp = ? WHERE address = ?",
        };
        self.update_mailbox(address, sqlx::query(sql).bind(on)).await
    }

    async fn set_two_step(&self, address: &str, on: bool) -> Result<(), StoreError> {
        self.update_mailbox(
            address,
            sqlx::query("UPDATE mailboxes SET two_step = ? WHERE address = ?").bind(on),
        )
        .await
    }

    async fn set_pop3_delete(
        &self,
        address: &str,
        collaborator: Option<&str>,
        value: Pop3Delete,
    ) -> Result<(), StoreError> {
        match collaborator {
            None => {
                self.update_mailbox(
                    address,
                    sqlx::query("UPDATE mailboxes SET pop3_delete = ? WHERE address = ?")
                        .bind(value.as_str()),
                )
                .await
            }
            Some(name) => {
                self.update_collaborator(
                    address,
                    name,
                    sqlx::query("UPDATE collaborators SET pop3_delete = ? WHERE mailbox = ? AND name = ?")
                        .bind(value.as_str()),
                )
                .await
            }
        }
    }

    async fn set_route(&self, address: &str, route: Option<&str>) -> Result<(), StoreError> {
        self.update_mailbox(
            address,
            sqlx::query("UPDATE mailboxes SET route = ? WHERE address = ?").bind(route),
        )
        .await
    }

    async fn create_app_password(&self, new: NewAppPassword) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let id = insert_app_password(&mut tx, &new).await?;
        bump(&mut tx, "generation").await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn app_password(&self, id: i64) -> Result<Option<AppPasswordInfo>, StoreError> {
        sqlx::query(&format!(
            "SELECT {APP_PASSWORD_COLUMNS} FROM app_passwords WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(app_password_info)
        .transpose()
    }

    async fn app_passwords(&self, address: &str) -> Result<Vec<AppPasswordInfo>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {APP_PASSWORD_COLUMNS} FROM app_passwords WHERE mailbox = ? ORDER BY id"
        ))
        .bind(address)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(app_password_info).collect()
    }

    async fn revoke_app_password(&self, id: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let query = sqlx::query("DELETE FROM app_passwords WHERE id = ?").bind(id);
        change_one(&mut tx, query, StoreError::AppPasswordNotFound(id)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_app_password_expiry(&self, id: i64, expires: Option<i64>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let query = sqlx::query("UPDATE app_passwords SET expires_at = ? WHERE id = ?")
            .bind(expires)
            .bind(id);
        change_one(&mut tx, query, StoreError::AppPasswordNotFound(id)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn regenerate_app_password(
        &self,
        id: i64,
        hash: &str,
        now: i64,
        expires: Option<i64>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let old = sqlx::query(&format!(
            "SELECT {APP_PASSWORD_COLUMNS} FROM app_passwords WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::AppPasswordNotFound(id))?;
        let old = app_password_info(&old)?;
        sqlx::query("DELETE FROM app_passwords WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let new = NewAppPassword {
            mailbox: old.mailbox,
            collaborator: old.collaborator,
            label: old.label,
            hash: hash.into(),
            created: now,
            expires,
        };
        let new_id = insert_app_password(&mut tx, &new).await?;
        bump(&mut tx, "generation").await?;
        tx.commit().await?;
        Ok(new_id)
    }

    async fn touch_app_password(&self, id: i64, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE app_passwords SET last_used_at = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn add_collaborator(
        &self,
        address: &str,
        name: &str,
        password_hash: Option<&str>,
        rights: Rights,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        mailbox_must_exist(&mut tx, address).await?;
        let inserted = sqlx::query(
            "INSERT INTO collaborators \
             (mailbox, name, password_hash, may_read, may_write, may_send, mail_client, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (mailbox, name) DO NOTHING",
        )
        .bind(address)
        .bind(name)
        .bind(password_hash)
        .bind(rights.read)
        .bind(rights.write)
        .bind(rights.send)
        .bind(rights.mail_client)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::CollaboratorExists(format!("{name}/{address}")));
        }
        bump(&mut tx, "generation").await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_collaborator(&self, address: &str, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM known_devices WHERE mailbox = ? AND collaborator = ?")
            .bind(address)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let query = sqlx::query("DELETE FROM collaborators WHERE mailbox = ? AND name = ?")
            .bind(address)
            .bind(name);
        change_one(
            &mut tx,
            query,
            StoreError::CollaboratorNotFound(format!("{name}/{address}")),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_collaborator_active(
        &self,
        address: &str,
        name: &str,
        active: bool,
    ) -> Result<(), StoreError> {
        self.update_collaborator(
            address,
            name,
            sqlx::query("UPDATE collaborators SET active = ? WHERE mailbox = ? AND name = ?").bind(active),
        )
        .await
    }

    async fn set_collaborator_rights(
        &self,
        address: &str,
        name: &str,
        rights: Rights,
    ) -> Result<(), StoreError> {
        self.update_collaborator(
            address,
            name,
            sqlx::query(
                "UPDATE collaborators SET may_read = ?, may_write = ?, may_send = ?, \
                 mail_client = ? WHERE mailbox = ? AND name = ?",
            )
            .bind(rights.read)
            .bind(rights.write)
            .bind(rights.send)
            .bind(rights.mail_client),
        )
        .await
    }

    async fn set_collaborator_password_hash(
        &self,
        address: &str,
        name: &str,
        hash: &str,
    ) -> Result<(), StoreError> {
        self.update_collaborator(
            address,
            name,
            sqlx::query("UPDATE collaborators SET password_hash = ? WHERE mailbox = ? AND name = ?")
                .bind(hash),
        )
        .await
    }

    async fn record_login(&self, entry: AccessLogEntry) -> Result<(), StoreError> {
        let writer = self
            .access_log
            .get_or_init(|| GroupCommit::start(self.pool.clone()));
        writer.record(entry).await
    }

    async fn access_log(&self, address: &str, limit: u32) -> Result<Vec<AccessLogRow>, StoreError> {
        super::access_log::access_log(&self.pool, address, limit).await
    }

    async fn prune_access_log(&self, older_than: i64) -> Result<u64, StoreError> {
        super::access_log::prune(&self.pool, older_than).await
    }
}

impl SqliteStore {
    /// Runs `UPDATE mailboxes SET ... WHERE address = ?` (the address is bound here).
    async fn update_mailbox<'q>(&self, address: &'q str, query: SqliteQuery<'q>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        change_one(
            &mut tx,
            query.bind(address),
            StoreError::MailboxNotFound(address.into()),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Runs `UPDATE collaborators SET ... WHERE mailbox = ? AND name = ?`.
    async fn update_collaborator<'q>(
        &self,
        address: &'q str,
        name: &'q str,
        query: SqliteQuery<'q>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        change_one(
            &mut tx,
            query.bind(address).bind(name),
            StoreError::CollaboratorNotFound(format!("{name}/{address}")),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
