//! `pec-proxy store copy`: a SQLite store's rows into a PostgreSQL store,
//! for a provider moving from one machine to a fleet.
//!
//! - Every table that describes accounts or their history is copied:
//!   mailboxes, collaborators, app passwords (with their ids, so that the
//!   ids the owners see do not change), known devices, the access log.
//! - Idempotent: a row already in the target (same key; for the access
//!   log, which has none, the same attempt) is kept, not copied twice, so
//!   an interrupted copy is finished by running it again.
//! - Verified by counts: each source row was inserted or found in the
//!   target, or the copy fails naming the table (e.g. an app password id
//!   the target already gives to another mailbox).
//! - Bounded: rows are read 1000 at a time (by SQLite rowid) and written
//!   in one target transaction per batch.
//!
//! The target's schema must be current (`pec-proxy store migrate`). The
//! target's generation moves with the copy (its triggers), so running
//! proxies see the copied mailboxes at once.

use std::fmt;
use std::path::Path;

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::postgres::{PostgresStore, Schema};
use super::{SqliteStore, StoreError};
use crate::config::StoreBackend;

/// Rows read and written at a time.
const BATCH: i64 = 1000;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Int,
    OptInt,
    Text,
    OptText,
    Bool,
}

/// One table: its columns, and how a row already in the target is found.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    /// `ON CONFLICT ...` for tables with a key; `None`: the access log,
    /// where the same attempt is looked for instead.
    conflict: Option<&'static str>,
    /// The columns (a prefix of `columns`' names, by position) that say
    /// the row found is this one: its key, plus its mailbox.
    same: &'static [usize],
}

const TABLES: &[Table] = &[
    Table {
        name: "mailboxes",
        columns: &[
            ("address", Kind::Text),
            ("active", Kind::Bool),
            ("password_hash", Kind::OptText),
            ("imap", Kind::Bool),
            ("pop3", Kind::Bool),
            ("smtp", Kind::Bool),
            ("two_step", Kind::Bool),
            ("pop3_delete", Kind::Text),
            ("route", Kind::OptText),
            ("created_at", Kind::Int),
        ],
        conflict: Some("(address)"),
        same: &[0],
    },
    Table {
        name: "collaborators",
        columns: &[
            ("mailbox", Kind::Text),
            ("name", Kind::Text),
            ("active", Kind::Bool),
            ("password_hash", Kind::OptText),
            ("may_read", Kind::Bool),
            ("may_write", Kind::Bool),
            ("may_send", Kind::Bool),
            ("mail_client", Kind::Bool),
            ("pop3_delete", Kind::Text),
            ("created_at", Kind::Int),
        ],
        conflict: Some("(mailbox, name)"),
        same: &[0, 1],
    },
    Table {
        name: "app_passwords",
        columns: &[
            ("id", Kind::Int),
            ("mailbox", Kind::Text),
            ("collaborator", Kind::OptText),
            ("label", Kind::Text),
            ("hash", Kind::Text),
            ("created_at", Kind::Int),
            ("expires_at", Kind::OptInt),
            ("last_used_at", Kind::OptInt),
        ],
        conflict: Some("(id)"),
        same: &[0, 1, 4],
    },
    Table {
        name: "known_devices",
        columns: &[
            ("mailbox", Kind::Text),
            ("collaborator", Kind::Text),
            ("kind", Kind::Text),
            ("value", Kind::Text),
            ("first_seen", Kind::Int),
            ("last_seen", Kind::Int),
        ],
        conflict: Some("(mailbox, collaborator, kind, value)"),
        same: &[0, 1, 2, 3],
    },
    Table {
        name: "access_log",
        columns: &[
            ("at", Kind::Int),
            ("mailbox", Kind::Text),
            ("collaborator", Kind::OptText),
            ("protocol", Kind::Text),
            ("client_ip", Kind::Text),
            ("client_name", Kind::OptText),
            ("result", Kind::Text),
            ("reason", Kind::OptText),
            ("new_device", Kind::Bool),
        ],
        conflict: None,
        same: &[0, 1, 2, 3, 4, 5, 6, 7],
    },
];

/// One value, as read from SQLite.
#[derive(Debug, Clone)]
enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(bool),
}

/// What was copied, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub tables: Vec<TableCount>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    /// Rows in the source.
    pub source: u64,
    /// Copied now.
    pub copied: u64,
    /// Already in the target.
    pub present: u64,
    /// Rows in the target after the copy (it may hold others).
    pub target: u64,
}

impl fmt::Display for CopyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<14} {:>10} {:>10} {:>10} {:>10}",
            "table", "source", "copied", "present", "target"
        )?;
        for t in &self.tables {
            writeln!(
                f,
                "{:<14} {:>10} {:>10} {:>10} {:>10}",
                t.table, t.source, t.copied, t.present, t.target
            )?;
        }
        write!(f, "every source row is in the target")
    }
}

/// Copies the SQLite store at `from` into the PostgreSQL store `to`.
pub async fn copy(from: &Path, to: &StoreBackend) -> Result<CopyReport, StoreError> {
    let StoreBackend::Postgres(cfg) = to else {
        return Err(StoreError::Corrupt(
            "the target of a copy must be a postgres:// URL".into(),
        ));
    };
    if !from.exists() {
        return Err(StoreError::Database(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} does not exist", from.display()),
        ))));
    }
    let source = SqliteStore::open(from).await?;
    let target = PostgresStore::open(cfg, Schema::MustBeCurrent).await?;
    let mut report = CopyReport::default();
    for table in TABLES {
        report.tables.push(copy_table(&source, &target, table).await?);
    }
    // The next app password id stays past every id copied.
    let next: i64 = sqlx::query("SELECT value FROM counters WHERE name = 'app_password_id'")
        .fetch_one(source.pool())
        .await?
        .try_get(0)?;
    sqlx::query("UPDATE counters SET value = GREATEST(value, $1) WHERE name = 'app_password_id'")
        .bind(next)
        .execute(target.pool())
        .await?;
    source.close().await;
    target.close().await;
    Ok(report)
}

async fn copy_table(
    source: &SqliteStore,
    target: &PostgresStore,
    table: &Table,
) -> Result<TableCount, StoreError> {
    let names: Vec<&str> = table.columns.iter().map(|c| c.0).collect();
    let select = format!(
        "SELECT rowid, {} FROM {} WHERE rowid > $1 ORDER BY rowid LIMIT $2",
        names.join(", "),
        table.name
    );
    let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    let insert = match table.conflict {
        Some(key) => format!(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT {key} DO NOTHING",
            table.name,
            names.join(", "),
            placeholders.join(", ")
        ),
        None => format!(
            "INSERT INTO {t} ({cols}) SELECT {ph} WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE {same})",
            t = table.name,
            cols = names.join(", "),
            ph = placeholders.join(", "),
            same = same_clause(table),
        ),
    };
    let found = format!("SELECT 1 FROM {} WHERE {}", table.name, same_clause(table));
    let mut count = TableCount {
        table: table.name,
        source: 0,
        copied: 0,
        present: 0,
        target: 0,
    };
    let mut after = 0i64;
    loop {
        let rows = sqlx::query(&select)
            .bind(after)
            .bind(BATCH)
            .fetch_all(source.pool())
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get(0)?;
        let mut tx = target.pool().begin().await?;
        for row in &rows {
            let values = read_row(row, table)?;
            count.source += 1;
            let inserted = bind_all(sqlx::query(&insert), &values)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if inserted > 0 {
                count.copied += 1;
                continue;
            }
            let same: Vec<Value> = table.same.iter().map(|&i| values[i].clone()).collect();
            if bind_all(sqlx::query(&found), &same)
                .fetch_optional(&mut *tx)
                .await?
                .is_none()
            {
                return Err(StoreError::Corrupt(format!(
                    "{}: a row conflicts with a different row already in the target (key {})",
                    table.name,
                    table.conflict.unwrap_or("")
                )));
            }
            count.present += 1;
        }
        tx.commit().await?;
    }
    count.target = sqlx::query(&format!("SELECT COUNT(*) FROM {}", table.name))
        .fetch_one(target.pool())
        .await?
        .try_get::<i64, _>(0)? as u64;
    if count.copied + count.present != count.source {
        return Err(StoreError::Corrupt(format!(
            "{}: counts do not add up",
            table.name
        )));
    }
    Ok(count)
}

/// `col1 = $1 AND col2 IS NOT DISTINCT FROM $2 ...` over `table.same`,
/// numbered in that order.
fn same_clause(table: &Table) -> String {
    table
        .same
        .iter()
        .enumerate()
        .map(|(n, &i)| format!("{} IS NOT DISTINCT FROM ${}", table.columns[i].0, n + 1))
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn read_row(row: &SqliteRow, table: &Table) -> Result<Vec<Value>, StoreError> {
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            let i = i + 1; // after rowid
            Ok(match kind {
                Kind::Int => Value::Int(Some(row.try_get(i)?)),
                Kind::OptInt => Value::Int(row.try_get(i)?),
                Kind::Text => Value::Text(Some(row.try_get(i)?)),
                Kind::OptText => Value::Text(row.try_get(i)?),
                Kind::Bool => Value::Bool(row.try_get(i)?),
            })
        })
        .collect()
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn bind_all<'q>(mut query: PgQuery<'q>, values: &'q [Value]) -> PgQuery<'q> {
    for v in values {
        query = match v {
            Value::Int(i) => query.bind(*i),
            Value::Text(t) => query.bind(t.as_deref()),
            Value::Bool(b) => query.bind(*b),
        };
    }
    query
}
