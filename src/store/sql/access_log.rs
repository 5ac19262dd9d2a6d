// The access history ("storico accessi") in SQL: one row per login
// attempt, the "new device" flag, and retention (included by each SQL
// backend's `sql` module, see store.rs).
//
// Rows are written by group commit: logins queue their row and wait for
// it to be committed, and one writer task commits whatever has queued up
// in one transaction (under load, after waiting the backend's `LINGER`
// for more: at most 1 ms more per login). A login answers only once its row is in the
// database; under load the transaction, its locks and its WAL (or
// PostgreSQL's commit) are shared by up to `BATCH` logins instead of paid
// by each. A database that does not answer fails the login with a
// temporary error after at most `ACCESS_LOG_TIMEOUT`, never accepts it.

/// Most rows committed in one transaction.
const BATCH: usize = 64;
/// Rows waiting for the writer; a login waits for room beyond that.
const QUEUE: usize = 1024;
/// Longest a login waits for its row: then it is answered with the
/// store's temporary error (the row may still be written).
const ACCESS_LOG_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// An error that says the database is not there (rather than a row it
/// refused).
fn unreachable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_)
    )
}

/// The queue to the access log's writer task.
#[derive(Debug)]
struct GroupCommit {
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
    fn start(pool: sqlx::Pool<Db>) -> Self {
        let (queue, mut rx) = mpsc::channel::<Queued>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            // Whether the last commit was shared: logins are arriving
            // together, and lingering gathers more of them.
            let mut busy = false;
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                // Under load, rows that arrive within the backend's linger
                // join this commit (PostgreSQL: one transaction for more
                // logins, a third of the server's CPU per login). A lone
                // login is committed at once.
                if busy && !super::LINGER.is_zero() {
                    let until = tokio::time::Instant::now() + super::LINGER;
                    while batch.len() < BATCH {
                        match tokio::time::timeout_at(until, rx.recv_many(&mut batch, BATCH)).await {
                            Ok(n) if n > 0 => {}
                            _ => break,
                        }
                    }
                }
                busy = batch.len() > 1;
                let result = commit(&pool, batch.iter().map(|q| &q.entry)).await;
                match result {
                    Ok(()) => {
                        for q in batch.drain(..) {
                            let _ = q.done.send(Ok(()));
                        }
                    }
                    // A database that cannot be reached fails the batch
                    // at once (trying each row would cost one timeout each).
                    Err(StoreError::Database(e)) if unreachable(&e) => {
                        let error = e.to_string();
                        for q in batch.drain(..) {
                            let _ = q.done.send(Err(error.clone()));
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

    /// Queues one attempt and waits until it is committed, at most
    /// `ACCESS_LOG_TIMEOUT` (room in the queue included).
    async fn record(&self, entry: AccessLogEntry) -> Result<(), StoreError> {
        let (done, committed) = oneshot::channel();
        let stopped = || StoreError::Corrupt("access log writer stopped".into());
        let outcome = tokio::time::timeout(ACCESS_LOG_TIMEOUT, async {
            self.queue
                .send(Queued { entry, done })
                .await
                .map_err(|_| stopped())?;
            committed.await.map_err(|_| stopped())
        })
        .await
        .map_err(|_| StoreError::Database(sqlx::Error::PoolTimedOut))??;
        outcome.map_err(|e| StoreError::Database(sqlx::Error::Protocol(e)))
    }
}

/// Writes `entries`, in order, in one transaction.
async fn commit<'a>(
    pool: &sqlx::Pool<Db>,
    entries: impl Iterator<Item = &'a AccessLogEntry>,
) -> Result<(), StoreError> {
    let mut tx = match super::WRITE_BEGIN {
        Some(statement) => pool.begin_with(statement).await?,
        None => pool.begin().await?,
    };
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
async fn record_login(tx: &mut sqlx::Transaction<'_, Db>, entry: &AccessLogEntry) -> Result<(), StoreError> {
    let principal = entry.collaborator.as_deref().unwrap_or("");
    let ip = entry.client_ip.to_string();
    sqlx::query(
        "INSERT INTO access_log \
         (at, mailbox, collaborator, protocol, client_ip, client_name, result, reason, new_device) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NOT EXISTS (SELECT 1 FROM known_devices \
         WHERE mailbox = $9 AND collaborator = $10 \
         AND ((kind = 'ip' AND value = $11) OR (kind = 'name' AND value = $12))))",
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
                 VALUES ($1, $2, $3, $4, $5, $6) \
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
async fn access_log(
    pool: &sqlx::Pool<Db>,
    address: &str,
    limit: u32,
) -> Result<Vec<AccessLogRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT at, mailbox, collaborator, protocol, client_ip, client_name, result, reason, \
         new_device FROM access_log WHERE mailbox = $1 ORDER BY at DESC LIMIT $2",
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
async fn prune(pool: &sqlx::Pool<Db>, older_than: i64) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query("DELETE FROM access_log WHERE at < $1")
        .bind(older_than)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM known_devices WHERE last_seen < $1")
        .bind(older_than)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(deleted)
}
