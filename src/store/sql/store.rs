// The account store in SQL, written once for every SQL backend: each
// backend module (`sqlite`, `postgres`) includes this file into its own
// `sql` module, with `Db` its `sqlx::Database` and, in the backend module
// itself (`super::`):
//   - `SNAPSHOT`: the statement that makes a transaction read one snapshot
//     of the database, if the backend needs one;
//   - `WRITE_BEGIN`: how a transaction that will write begins, if not
//     plain `BEGIN`;
//   - `Extra`: what else the backend keeps beside its pool, and
//     `announced_generation(&Extra)`: the newest generation the database
//     announced to this process, if it announces them.
// rows.rs and access_log.rs are included beside this file; the imports
// of all three are here.
// Placeholders are `$1`, `$2`…: PostgreSQL's, which sqlx's SQLite driver
// reads as the same numbered parameters.
// The generation is bumped by the database itself (the triggers of
// migrations/*/0004_generation_triggers.sql), whoever changes an account:
// this code, another node, or the provider's own tools.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use sqlx::Row;

use crate::protocol::Protocol;
use tokio::sync::{mpsc, oneshot};

use crate::store::account::{AppPassword, Collaborator, MailboxRecord, Pop3Delete, ProtocolSwitches, Rights};
use crate::store::{
    AccessLogEntry, AccessLogRow, AccountStore, AppPasswordInfo, LoginResult, NewAppPassword, StoreError,
};

/// The account store in one SQL database.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: sqlx::Pool<Db>,
    /// The access log's writer, started by the first login recorded (the
    /// admin commands never start it).
    access_log: Arc<OnceLock<GroupCommit>>,
    pub(super) extra: super::Extra,
}

impl SqlStore {
    pub(super) fn with_pool(pool: sqlx::Pool<Db>, extra: super::Extra) -> Self {
        Self {
            pool,
            access_log: Arc::default(),
            extra,
        }
    }

    /// The pool, for the store's other users of the same database (the
    /// copy, the fleet's counters).
    pub fn pool(&self) -> &sqlx::Pool<Db> {
        &self.pool
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A transaction that will write: the backend's `WRITE_BEGIN` (SQLite:
    /// `BEGIN IMMEDIATE`, which takes the write lock at once, waiting its
    /// busy timeout; a deferred transaction that reads first and writes
    /// later fails with "database is locked" at once when another writer
    /// got in between, without waiting).
    async fn begin(&self) -> Result<sqlx::Transaction<'static, Db>, StoreError> {
        Ok(match super::WRITE_BEGIN {
            Some(statement) => self.pool.begin_with(statement).await?,
            None => self.pool.begin().await?,
        })
    }
}

type DbQuery<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

/// Bumps a named counter and returns its new value.
async fn bump(tx: &mut sqlx::Transaction<'_, Db>, name: &str) -> Result<i64, StoreError> {
    let row = sqlx::query("UPDATE counters SET value = value + 1 WHERE name = $1 RETURNING value")
        .bind(name)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get(0)?)
}

/// Runs one account change: the statement must touch exactly one row, or
/// `not_found` is returned.
async fn change_one<'q>(
    tx: &mut sqlx::Transaction<'_, Db>,
    query: DbQuery<'q>,
    not_found: StoreError,
) -> Result<(), StoreError> {
    if query.execute(&mut **tx).await?.rows_affected() == 0 {
        return Err(not_found);
    }
    Ok(())
}

/// The highest schema version applied, `None` before any.
pub(super) async fn schema_version(pool: &sqlx::Pool<Db>) -> Result<Option<i64>, StoreError> {
    let exists = sqlx::query(super::MIGRATIONS_TABLE_EXISTS)
        .fetch_optional(pool)
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let row = sqlx::query("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await?;
    Ok(row.try_get(0)?)
}

#[async_trait]
impl AccountStore for SqlStore {
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

    fn announced_generation(&self) -> Option<i64> {
        super::announced_generation(&self.extra)
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
            "INSERT INTO mailboxes (address, password_hash, created_at) VALUES ($1, $2, $3) \
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
        tx.commit().await?;
        Ok(())
    }

    async fn remove_mailbox(&self, address: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        // Its history goes with it; cascades remove the rest.
        sqlx::query("DELETE FROM access_log WHERE mailbox = $1")
            .bind(address)
            .execute(&mut *tx)
            .await?;
        let query = sqlx::query("DELETE FROM mailboxes WHERE address = $1").bind(address);
        change_one(&mut tx, query, StoreError::MailboxNotFound(address.into())).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_password_hash(&self, address: &str, hash: &str) -> Result<(), StoreError> {
        self.update_mailbox(
            address,
            sqlx::query("UPDATE mailboxes SET password_hash = $1 WHERE address = $2").bind(hash),
        )
        .await
    }

    async fn set_active(&self, address: &str, active: bool) -> Result<(), StoreError> {
        self.update_mailbox(
            address,
            sqlx::query("UPDATE mailboxes SET active = $1 WHERE address = $2").bind(active),
        )
        .await
    }

    async fn set_protocol(&self, address: &str, protocol: Protocol, on: bool) -> Result<(), StoreError> {
        // The column name comes from our enum, never from input.
        let sql = match protocol {
            Protocol::Imap => "UPDATE mailboxes SET imap = $1 WHERE address = $2",
            Protocol::Pop3 => "UPDATE mailboxes SET pop3 = $1 WHERE address = $2",
            Protocol::Smtp => "UPDATE mailboxes SET smtp = $1 WHERE address = $2",
        };
        self.update_mailbox(address, sqlx::query(sql).bind(on)).await
    }

    async fn set_two_step(&self, address: &str, on: bool) -> Result<(), StoreError> {
        self.update_mailbox(
            address,
            sqlx::query("UPDATE mailboxes SET two_step = $1 WHERE address = $2").bind(on),
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
                    sqlx::query("UPDATE mailboxes SET pop3_delete = $1 WHERE address = $2")
                        .bind(value.as_str()),
                )
                .await
            }
            Some(name) => {
                self.update_collaborator(
                    address,
                    name,
                    sqlx::query("UPDATE collaborators SET pop3_delete = $1 WHERE mailbox = $2 AND name = $3")
                        .bind(value.as_str()),
                )
                .await
            }
        }
    }

    async fn set_route(&self, address: &str, route: Option<&str>) -> Result<(), StoreError> {
        self.update_mailbox(
            address,
            sqlx::query("UPDATE mailboxes SET route = $1 WHERE address = $2").bind(route),
        )
        .await
    }

    async fn create_app_password(&self, new: NewAppPassword) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let id = insert_app_password(&mut tx, &new).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn app_password(&self, id: i64) -> Result<Option<AppPasswordInfo>, StoreError> {
        sqlx::query(&format!(
            "SELECT {APP_PASSWORD_COLUMNS} FROM app_passwords WHERE id = $1"
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
            "SELECT {APP_PASSWORD_COLUMNS} FROM app_passwords WHERE mailbox = $1 ORDER BY id"
        ))
        .bind(address)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(app_password_info).collect()
    }

    async fn revoke_app_password(&self, id: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let query = sqlx::query("DELETE FROM app_passwords WHERE id = $1").bind(id);
        change_one(&mut tx, query, StoreError::AppPasswordNotFound(id)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_app_password_expiry(&self, id: i64, expires: Option<i64>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let query = sqlx::query("UPDATE app_passwords SET expires_at = $1 WHERE id = $2")
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
            "SELECT {APP_PASSWORD_COLUMNS} FROM app_passwords WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::AppPasswordNotFound(id))?;
        let old = app_password_info(&old)?;
        sqlx::query("DELETE FROM app_passwords WHERE id = $1")
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
        tx.commit().await?;
        Ok(new_id)
    }

    async fn touch_app_password(&self, id: i64, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE app_passwords SET last_used_at = $1 WHERE id = $2")
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (mailbox, name) DO NOTHING",
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
        tx.commit().await?;
        Ok(())
    }

    async fn remove_collaborator(&self, address: &str, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM known_devices WHERE mailbox = $1 AND collaborator = $2")
            .bind(address)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let query = sqlx::query("DELETE FROM collaborators WHERE mailbox = $1 AND name = $2")
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
            sqlx::query("UPDATE collaborators SET active = $1 WHERE mailbox = $2 AND name = $3").bind(active),
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
                "UPDATE collaborators SET may_read = $1, may_write = $2, may_send = $3, \
                 mail_client = $4 WHERE mailbox = $5 AND name = $6",
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
            sqlx::query("UPDATE collaborators SET password_hash = $1 WHERE mailbox = $2 AND name = $3")
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
        access_log(&self.pool, address, limit).await
    }

    async fn prune_access_log(&self, older_than: i64) -> Result<u64, StoreError> {
        prune(&self.pool, older_than).await
    }
}

impl SqlStore {
    /// Runs `UPDATE mailboxes SET ... WHERE address = ?` (the address is bound here).
    async fn update_mailbox<'q>(&self, address: &'q str, query: DbQuery<'q>) -> Result<(), StoreError> {
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
        query: DbQuery<'q>,
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
