//! The schema's versions, embedded in the binary.
//!
//! One migration set: the versions every backend shares (portable SQL,
//! `migrations/*.sql`) and, from version 4, each backend's own file of the
//! same version where the dialects differ (`migrations/sqlite/`,
//! `migrations/postgres/`: triggers). `tests/store.rs` (`both_backends_have_the_same_schema`) checks that the
//! two backends end with the same tables, columns and indexes.
//!
//! The files are embedded with `include_str!` into a [`Migrator`]: sqlx's
//! `migrate!` macro would need sqlx's `macros` feature. Versions, checksums
//! and the `_sqlx_migrations` table are the same as with `migrate!` or
//! `sqlx-cli`, so an operator can inspect them with the usual tools.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use super::StoreError;

/// One schema version: number, description, SQL.
type Version = (i64, &'static str, &'static str);

const SHARED: [Version; 3] = [
    (1, "accounts", include_str!("../../migrations/0001_accounts.sql")),
    (
        2,
        "access log revoked",
        include_str!("../../migrations/0002_access_log_revoked.sql"),
    ),
    (
        3,
        "counter events",
        include_str!("../../migrations/0003_counter_events.sql"),
    ),
];

/// The backends, for their own versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(store: &crate::config::StoreBackend) -> Self {
        match store {
            crate::config::StoreBackend::Sqlite(_) => Self::Sqlite,
            crate::config::StoreBackend::Postgres(_) => Self::Postgres,
        }
    }

    fn own(self) -> [Version; 1] {
        match self {
            Self::Sqlite => [(
                4,
                "generation triggers",
                include_str!("../../migrations/sqlite/0004_generation_triggers.sql"),
            )],
            Self::Postgres => [(
                4,
                "generation triggers",
                include_str!("../../migrations/postgres/0004_generation_triggers.sql"),
            )],
        }
    }

    /// The newest schema version this build knows.
    pub fn latest(self) -> i64 {
        self.own().last().map_or(SHARED[SHARED.len() - 1].0, |v| v.0)
    }

    /// The migrator for this backend's schema.
    pub async fn migrator(self) -> Result<Migrator, StoreError> {
        Ok(Migrator::new(Embedded(self)).await?)
    }
}

type Resolved = Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send>>;

#[derive(Debug)]
struct Embedded(Backend);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> Resolved {
        Box::pin(async move {
            Ok(SHARED
                .iter()
                .chain(self.0.own().iter())
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

/// Where a database's schema stands against this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaState {
    /// No schema at all.
    Empty,
    /// Older than this build: `pec-proxy store migrate` brings it up.
    Older {
        found: i64,
        latest: i64,
    },
    Current,
    /// Written by a newer pec-proxy: this one must not use it.
    Newer {
        found: i64,
        latest: i64,
    },
}

impl SchemaState {
    pub fn of(found: Option<i64>, latest: i64) -> Self {
        match found {
            None => Self::Empty,
            Some(found) if found < latest => Self::Older { found, latest },
            Some(found) if found > latest => Self::Newer { found, latest },
            Some(_) => Self::Current,
        }
    }
}
