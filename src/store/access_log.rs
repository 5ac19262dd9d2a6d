//! The access history ("storico accessi") in SQL: one row per login
//! attempt, the "new device" flag, and retention.
//!
//! Rows are written by group commit: logins queue their row and wait for
//! it to be committed, and one writer task commits whatever has queued up
//! in one transaction. A login still answers only once its row is in the
//! database, as before; under load the transaction, its locks and its WAL
//! write are shared by up to [`BATCH`] logins instead of paid by each.

use sqlx::Row;
use sqlx::sqlite::{Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::{AccessLogEntry, AccessLogRow, LoginResult, StoreError};

/// Most rows committed in one transaction.
const BATCH: usize = 64;
/// Rows waiting for the writer; a login waits for room beyond that.
const QUEUE: usize = 1024;

/// The queue to the access log's writer task.
#[derive(Debug)]
pub(super) struct GroupCommit {
    queue: mpsc::Sender<Queued>,
}

#[derive(Debug)]
struct Queued {
    entry: AccessLogEntry,
    /// The commit's outcome (errors as text: one failure answers many).
    done: oneshot::Sender<Result<(), String>>,
}

impl GroupCommit {
    /// Starts the writer task on the current runtime. It ends when the
    /// last handle is dropped, after committing what was queued.
    pub(super) fn start(pool: SqlitePool) -> Self {
        let (queue, mut rx) = mpsc::channel::<Queued>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let result = commit(&pool, batch.iter().map(|q| &q.entry)).await;
                match result {
                    Ok(()) => {
                        for q in batch.drain(..) {
                            let _ = q.done.send(Ok(()));
                        }
                    }
                    // One row that cannot be written must not cost the
                    // others theirs: each is tried again on its own.
                    Err(_) => {
                        for q in batch.drain(..) {
                            let result = commit(&pool, std::iter::once(&q.entry)).await;
                            let _ = q.done.send(result.map_err(|e| e.to_string()));
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    /// Queues one attempt and waits until it is committed.
    pub(super) async fn record(&self, entry: AccessLogEntry) -> Result<(), StoreError> {
        let (done, committed) = oneshot::channel();
        let stopped = || StoreError::Corrupt("access log writer stopped".into());
        self.queue
            .send(Queued { entry, done })
            .await
            .map_err(|_| stopped())?;
        committed
            .await
            .map_err(|_| stopped())?
            .map_err(|e| StoreError::Database(sqlx::Error::Protocol(e)))
    }
}

/// Writes `entries`, in order, in one transaction.
async fn commit<'a>(
    pool: &SqlitePool,
    entries: impl Iterator<Item = &'a AccessLogEntry>,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    for entry in entries {
        record_login(&mut tx, entry).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Records one attempt. The attempt is from a new device when neither its
/// client IP nor its client name has been seen in a successful login of the
/// same principal; only successful logins make a device known, so an
/// attacker's failures cannot make their address look familiar. Earlier
/// rows of the same transaction count: they were attempts before this one.
async fn record_login(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    entry: &AccessLogEntry,
) -> Result<(), StoreError> {
    let principal = entry.collaborator.as_deref().unwrap_or("");
    let ip = entry.client_ip.to_string();
    sqlx::query(
        "INSERT INTO access_log \
         (at, mailbox, collaborator, protocol, client_ip, client_name, result, reason, new_device) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, NOT EXISTS (SELECT 1 FROM known_devices \
         WHERE mailbox = ? AND collaborator = ? \
         AND ((kind = 'ip' AND value = ?) OR (kind = 'name' AND value = ?))))",
    )
    .bind(entry.at)
    .bind(&entry.mailbox)
    .bind(entry.collaborator.as_deref())
    .bind(entry.protocol.as_str())
    .bind(&ip)
    .bind(entry.client_name.as_deref())
    .bind(entry.result.as_str())
    .bind(entry.reason.as_deref())
    .bind(&entry.mailbox)
    .bind(principal)
    .bind(&ip)
    .bind(entry.client_name.as_deref())
    .execute(&mut **tx)
    .await?;
    if entry.result == LoginResult::Success {
        let devices = [
            Some(("ip", ip.as_str())),
            entry.client_name.as_deref().map(|n| ("name", n)),
        ];
        for (kind, value) in devices.into_iter().flatten() {
            sqlx::query(
                "INSERT INTO known_devices (mailbox, collaborator, kind, value, first_seen, last_seen) \
                 VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (mailbox, collaborator, kind, value) DO UPDATE SET last_seen = excluded.last_seen",
            )
            .bind(&entry.mailbox)
            .bind(principal)
            .bind(kind)
            .bind(value)
            .bind(entry.at)
            .bind(entry.at)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// The latest `limit` attempts on a mailbox, newest first.
pub(super) async fn access_log(
    pool: &SqlitePool,
    address: &str,
    limit: u32,
) -> Result<Vec<AccessLogRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT at, mailbox, collaborator, protocol, client_ip, client_name, result, reason, \
         new_device FROM access_log WHERE mailbox = ? ORDER BY at DESC LIMIT ?",
    )
    .bind(address)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AccessLogRow {
                at: r.try_get("at")?,
                mailbox: r.try_get("mailbox")?,
                collaborator: r.try_get("collaborator")?,
                protocol: r.try_get("protocol")?,
                client_ip: r.try_get("client_ip")?,
                client_name: r.try_get("client_name")?,
                result: r.try_get("result")?,
                reason: r.try_get("reason")?,
                new_device: r.try_get("new_device")?,
            })
        })
        .collect()
}

/// Deletes attempts before `older_than`, and devices not seen since.
pub(super) async fn prune(pool: &SqlitePool, older_than: i64) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query("DELETE FROM access_log WHERE at < ?")
        .bind(older_than)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM known_devices WHERE last_seen < ?")
        .bind(older_than)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(deleted)
}
