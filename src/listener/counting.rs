//! The counters a proxy keeps across configuration reloads: the brute-force
//! penalty and the sending rate, shared with the fleet when the store is
//! PostgreSQL.

use std::sync::Arc;

use super::ServerError;
use crate::access::counters::{CounterKey, CounterSink};
use crate::access::fleet::{self, Fleet};
use crate::access::penalty::Penalties;
use crate::access::send_rate::{RATE_LIMITER_MAX_MAILBOXES, RateLimiter};
use crate::config::{Config, PostgresConfig, StoreBackend, StoreConfig};
use crate::store::PostgresStore;
use crate::store::postgres::Schema;

/// The counters every generation shares, made once at start: the
/// brute-force penalty and the sending rate, and, with a PostgreSQL store,
/// the transport that shares them with the rest of the fleet.
pub(super) struct Counting {
    pub(super) penalties: Arc<Penalties>,
    pub(super) send_rate: Arc<RateLimiter>,
    _fleet: Option<Fleet>,
}

impl Counting {
    /// With a PostgreSQL store, counted with the fleet's key and shared;
    /// otherwise this node's alone.
    pub(super) async fn start(config: &Config) -> Result<Self, ServerError> {
        let trusted = config.limits.trusted_networks.clone();
        let per_minute = config.pec_checks.messages_per_minute;
        let shared = match &config.store {
            Some(StoreConfig {
                backend: StoreBackend::Postgres(pg),
                fleet_key: Some(secret),
                ..
            }) => {
                let key = CounterKey::from_secret(secret.expose())
                    .map_err(|e| ServerError::FleetKey(e.to_string()))?;
                let pg = PostgresConfig {
                    max_connections: 2,
                    ..pg.clone()
                };
                Some((key, PostgresStore::open(&pg, Schema::MustBeCurrent).await?))
            }
            _ => None,
        };
        Ok(match shared {
            None => Self {
                penalties: Arc::new(Penalties::new(config.penalty.clone(), trusted)),
                send_rate: Arc::new(RateLimiter::new(per_minute, RATE_LIMITER_MAX_MAILBOXES)),
                _fleet: None,
            },
            Some((key, store)) => {
                let (outbox, events) = fleet::outbox();
                let sink: Arc<dyn CounterSink> = outbox;
                let penalties = Arc::new(Penalties::replicated(
                    config.penalty.clone(),
                    trusted,
                    key.clone(),
                    Some(sink.clone()),
                ));
                let send_rate = Arc::new(RateLimiter::replicated(
                    per_minute,
                    RATE_LIMITER_MAX_MAILBOXES,
                    key,
                    Some(sink),
                ));
                let fleet = Fleet::start(store, events, penalties.clone(), send_rate.clone()).await;
                Self {
                    penalties,
                    send_rate,
                    _fleet: Some(fleet),
                }
            }
        })
    }
}
