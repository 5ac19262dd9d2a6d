//! Hearing the database: one dedicated connection that LISTENs to the
//! accounts channel (the generation triggers' announcements) and to any
//! other channel a caller registers (the fleet's counters), reconnecting
//! by itself.
//!
//! When the connection is lost, or cannot be made, it is logged once (and
//! once more when it is back), counted (`pec_proxy_store_listen_lost_total`,
//! `pec_proxy_store_listening` 0), and retried after 0.1 s, doubling up
//! to 5 s. Meanwhile nothing is lost for the accounts: the cache still
//! polls the generation. Once it is back, the generation is read once and
//! each channel's `on_gap` runs, so a caller can read back what it missed.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgListener, PgPool};
use tokio::task::JoinHandle;

use super::{ACCOUNTS_CHANNEL, Announced};
use crate::ops::metrics as m;

/// First wait before reconnecting; doubled up to [`RECONNECT_MAX`].
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// A channel to listen to besides the accounts'.
pub struct Channel {
    pub name: &'static str,
    /// Runs for each notification, with its payload (at most 8000 bytes:
    /// PostgreSQL's limit). Must not block.
    pub on_message: Box<dyn Fn(&str) + Send + Sync>,
    /// Runs each time listening starts or starts again: notifications
    /// sent meanwhile were not heard.
    pub on_gap: Box<dyn Fn() + Send + Sync>,
}

/// The listening task; it stops when this is dropped.
#[derive(Debug)]
pub struct Listener {
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts listening on the accounts channel and `channels`. The task holds
/// the pool and the announcement, not the store: it ends when the last
/// handle of the store that keeps the [`Listener`] is dropped.
pub(super) fn spawn(pool: PgPool, announced: Arc<Announced>, channels: Vec<Channel>) -> Listener {
    Listener {
        task: tokio::spawn(run(pool, announced, channels)),
    }
}

async fn run(pool: PgPool, announced: Arc<Announced>, channels: Vec<Channel>) {
    let mut names = vec![ACCOUNTS_CHANNEL];
    names.extend(channels.iter().map(|c| c.name));
    let mut wait = RECONNECT_MIN;
    let mut down_logged = false;
    loop {
        let error = match connect(&pool, &names).await {
            Ok(mut listener) => {
                if down_logged {
                    tracing::info!("account store: listening for changes again");
                    down_logged = false;
                }
                metrics::gauge!(m::STORE_LISTENING).set(1.0);
                wait = RECONNECT_MIN;
                // What was announced before we listened: read once.
                if let Ok(row) = sqlx::query("SELECT value FROM counters WHERE name = 'generation'")
                    .fetch_one(&pool)
                    .await
                {
                    if let Ok(g) = row.try_get::<i64, _>(0) {
                        announced.raise(g);
                    }
                }
                for c in &channels {
                    (c.on_gap)();
                }
                hear(&announced, &mut listener, &channels).await
            }
            Err(e) => e,
        };
        metrics::gauge!(m::STORE_LISTENING).set(0.0);
        metrics::counter!(m::STORE_LISTEN_LOST_TOTAL).increment(1);
        if !down_logged {
            tracing::warn!(%error, "account store: not listening for changes; polling until it is back");
            down_logged = true;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RECONNECT_MAX);
    }
}

async fn connect(pool: &PgPool, names: &[&'static str]) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A closed pool (shutdown) must not end a listener another store uses.
    listener.ignore_pool_close_event(true);
    listener.listen_all(names.iter().copied()).await?;
    Ok(listener)
}

/// Dispatches notifications until the connection is lost; returns why.
async fn hear(announced: &Announced, listener: &mut PgListener, channels: &[Channel]) -> sqlx::Error {
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) if n.channel() == ACCOUNTS_CHANNEL => {
                if let Ok(g) = n.payload().parse::<i64>() {
                    announced.raise(g);
                }
            }
            Ok(Some(n)) => {
                if let Some(c) = channels.iter().find(|c| c.name == n.channel()) {
                    (c.on_message)(n.payload());
                }
            }
            // The connection was lost; a new listener is made (with a
            // wait), rather than letting this one reconnect at once.
            Ok(None) => return sqlx::Error::Protocol("connection lost".into()),
            Err(e) => return e,
        }
    }
}
