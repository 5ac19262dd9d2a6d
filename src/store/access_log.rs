//! The access history ("storico accessi") in SQL: one row per login
//! attempt, the "new device" flag, and retention.

use sqlx::Row;
use sqlx::sqlite::SqlitePool;

use super::{AccessLogEntry, AccessLogRow, LoginResult, StoreError};

/// Records one attempt. The attempt is from a new device when neither its
/// client IP nor its client name has been seen in a successful login of the
/// same principal; only successful logins make a device known, so an
/// attacker's failures cannot make their address look familiar.
pub(super) async fn record_login(pool: &SqlitePool, entry: AccessLogEntry) -> Result<(), StoreError> {
    let principal = entry.collaborator.as_deref().unwrap_or("");
    let ip = entry.client_ip.to_string();
    let mut tx = pool.begin().await?;
    let seen = sqlx::query(
        "SELECT COUNT(*) FROM known_devices WHERE mailbox = ? AND collaborator = ? \
         AND ((kind = 'ip' AND value = ?) OR (kind = 'name' AND value = ?))",
    )
    .bind(&entry.mailbox)
    .bind(principal)
    .bind(&ip)
    .bind(entry.client_name.as_deref())
    .fetch_one(&mut *tx)
    .await?;
    let new_device = seen.try_get::<i64, _>(0)? == 0;
    sqlx::query(
        "INSERT INTO access_log \
         (at, mailbox, collaborator, protocol, client_ip, client_name, result, reason, new_device) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(entry.at)
    .bind(&entry.mailbox)
    .bind(entry.collaborator.as_deref())
    .bind(entry.protocol.as_str())
    .bind(&ip)
    .bind(entry.client_name.as_deref())
    .bind(entry.result.as_str())
    .bind(entry.reason.as_deref())
    .bind(new_device)
    .execute(&mut *tx)
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
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
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
