//! The fleet's shared counters over PostgreSQL: what each node's penalty
//! and sending rate count reaches every other node within milliseconds.
//!
//! # Why PostgreSQL and not Redis
//! Each node keeps deciding from its own in-memory counters
//! ([`crate::access::counters`]): a login never waits for a round trip, and
//! a counter store that is down costs nothing on the login path. What
//! crosses the fleet is a stream of small events (a failed login, a
//! forgiven one, a message sent or given back), which is what PostgreSQL's
//! NOTIFY carries, in commit order, to every listening node; the table
//! `counter_events` keeps them for a node that was not listening. The
//! fleet already runs PostgreSQL (replicated, backed up, monitored): no
//! second store to run. Redis's `INCR`+`EXPIRE` would put a round trip on
//! every login and keep only counts, losing the penalty's "the same wrong
//! password counts once" and "a success forgives only your own mistakes".
//! The cost, measured in benches/README.md: one multi-row insert and its
//! NOTIFYs per batch of events, off the login path.
//!
//! # What happens when
//! - A node counts locally, then queues the event ([`Outbox`], at most
//!   [`QUEUE`]; when full, the event is dropped and counted: that node
//!   still counts it itself, the others miss it).
//! - One writer task commits what has queued (up to [`BATCH`] events per
//!   transaction: one insert and one NOTIFY each, payload
//!   `<node>:<seq>:<event>`, at most 120 bytes). Events wait in order while
//!   the database is down (at most [`PENDING`]; older ones are dropped
//!   first, counted), the failure is logged once and
//!   `pec_proxy_shared_counters_up` is 0; once it is back they are sent,
//!   and it is logged again.
//! - Every node listens on `pec_proxy_counters` and applies what other
//!   nodes sent (never its own). Each time listening (re)starts it reads
//!   back the events of the last [`Horizon`] from the table, so a node that
//!   was cut off, or just started, catches up. An event is applied once:
//!   `(node, seq)` pairs already applied are remembered for the horizon
//!   (at most [`MAX_SEEN`]).
//! - Rows older than the horizon are deleted by each node's writer, every
//!   [`PRUNE_EVERY`].
//! - Nothing here can accept a login: a node cut off counts alone, which
//!   is what a single proxy does.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::Row;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::access::counters::{CounterEvent, CounterSink, unix_ms};
use crate::access::penalty::Penalties;
use crate::access::send_rate::{REMOTE_HORIZON, RateLimiter};
use crate::ops::metrics as m;
use crate::store::PostgresStore;
use crate::store::postgres::Channel;

/// The channel the events are announced on.
pub const CHANNEL: &str = "pec_proxy_counters";
/// Events queued for the writer before new ones are dropped.
pub const QUEUE: usize = 4096;
/// Events committed in one transaction.
pub const BATCH: usize = 256;
/// Events kept while the database is down, oldest dropped first.
pub const PENDING: usize = 65_536;
/// Remembered `(node, seq)` pairs of applied events.
pub const MAX_SEEN: usize = 262_144;
/// How often each node deletes the rows older than the horizon.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Longest a starting node waits to read back the fleet's recent events.
pub const FIRST_CATCH_UP: Duration = Duration::from_secs(3);
/// First wait before writing again after a failure; doubled up to 5 s.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// How far back an event still matters: the longest of the penalty's
/// memory (`forget_after_secs`), its refusal (`refuse_secs`) and the
/// sending rate's minute.
#[derive(Debug, Clone, Copy)]
pub struct Horizon(pub Duration);

impl Horizon {
    pub fn of(penalties: &Penalties) -> Self {
        let cfg = penalties.config();
        Self(Duration::from_secs(cfg.forget_after_secs.max(cfg.refuse_secs)).max(REMOTE_HORIZON))
    }
}

/// Where the node's counters put their events: a bounded queue to the
/// writer.
#[derive(Debug)]
pub struct Outbox {
    queue: mpsc::Sender<CounterEvent>,
}

impl CounterSink for Outbox {
    fn publish(&self, event: CounterEvent) {
        if self.queue.try_send(event).is_err() {
            metrics::counter!(m::SHARED_COUNTER_EVENTS_TOTAL, "direction" => "sent", "result" => "dropped")
                .increment(1);
        }
    }
}

/// The outbox, and the other end for [`Fleet::start`].
pub fn outbox() -> (Arc<Outbox>, mpsc::Receiver<CounterEvent>) {
    let (queue, rx) = mpsc::channel(QUEUE);
    (Arc::new(Outbox { queue }), rx)
}

/// The running transport; its tasks stop when it is dropped.
#[derive(Debug)]
pub struct Fleet {
    writer: JoinHandle<()>,
    /// Keeps the listening task (it stops with the last store handle).
    _store: PostgresStore,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.writer.abort();
    }
}

/// What this node applied already, by `(node, seq)`, with the event's time.
#[derive(Debug, Default)]
struct Seen {
    applied: HashMap<(i64, i64), i64>,
}

impl Seen {
    /// Records the pair; false when it was applied before.
    fn first_time(&mut self, node: i64, seq: i64, at_ms: i64, now_ms: i64, horizon: Horizon) -> bool {
        if self.applied.len() >= MAX_SEEN {
            let oldest = now_ms - horizon.0.as_millis() as i64;
            self.applied.retain(|_, at| *at >= oldest);
            if self.applied.len() >= MAX_SEEN {
                self.applied.clear();
            }
        }
        self.applied.insert((node, seq), at_ms).is_none()
    }
}

/// Applies other nodes' events to this node's counters.
struct Receiver {
    node: i64,
    horizon: Horizon,
    penalties: Arc<Penalties>,
    rate: Arc<RateLimiter>,
    seen: Mutex<Seen>,
}

impl Receiver {
    /// One `<node>:<seq>:<event>` payload or row.
    fn heard(&self, node: i64, seq: i64, event: &str) {
        if node == self.node {
            return;
        }
        let Some(event) = CounterEvent::decode(event) else {
            metrics::counter!(m::SHARED_COUNTER_EVENTS_TOTAL, "direction" => "received", "result" => "invalid")
                .increment(1);
            return;
        };
        let now = Instant::now();
        let now_ms = unix_ms(now);
        let first = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first_time(node, seq, event.at_ms(), now_ms, self.horizon);
        if !first {
            return;
        }
        self.penalties.apply(&event, now, now_ms);
        self.rate.apply(&event, now, now_ms);
        metrics::counter!(m::SHARED_COUNTER_EVENTS_TOTAL, "direction" => "received", "result" => "ok")
            .increment(1);
    }

    fn heard_payload(&self, payload: &str) {
        let mut parts = payload.splitn(3, ':');
        let (Some(node), Some(seq), Some(event)) = (parts.next(), parts.next(), parts.next()) else {
            metrics::counter!(m::SHARED_COUNTER_EVENTS_TOTAL, "direction" => "received", "result" => "invalid")
                .increment(1);
            return;
        };
        match (node.parse(), seq.parse()) {
            (Ok(node), Ok(seq)) => self.heard(node, seq, event),
            _ => {
                metrics::counter!(m::SHARED_COUNTER_EVENTS_TOTAL, "direction" => "received", "result" => "invalid")
                    .increment(1);
            }
        }
    }

    /// Reads back the other nodes' events of the horizon.
    async fn catch_up(self: Arc<Self>, store: PostgresStore) {
        let since = unix_ms(Instant::now()) - self.horizon.0.as_millis() as i64;
        let rows = sqlx::query(
            "SELECT node, seq, event FROM counter_events WHERE at_ms >= $1 AND node <> $2 \
             ORDER BY at_ms, node, seq",
        )
        .bind(since)
        .bind(self.node)
        .fetch_all(store.pool())
        .await;
        match rows {
            Ok(rows) => {
                for row in rows {
                    if let (Ok(node), Ok(seq), Ok(event)) = (
                        row.try_get::<i64, _>(0),
                        row.try_get::<i64, _>(1),
                        row.try_get::<String, _>(2),
                    ) {
                        self.heard(node, seq, &event);
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "shared counters: could not read back missed events"),
        }
    }
}

impl Fleet {
    /// Starts sharing `penalties` and `rate` (made with [`outbox`]'s sink
    /// and the fleet's key) through `store`. Reads back the fleet's recent
    /// events first (at most [`FIRST_CATCH_UP`]), so a node that starts
    /// while a guessing series runs refuses it from its first login.
    pub async fn start(
        store: PostgresStore,
        events: mpsc::Receiver<CounterEvent>,
        penalties: Arc<Penalties>,
        rate: Arc<RateLimiter>,
    ) -> Self {
        let mut node_bytes = [0u8; 8];
        getrandom::fill(&mut node_bytes).expect("the OS random source works");
        let node = i64::from_le_bytes(node_bytes);
        let horizon = Horizon::of(&penalties);
        let receiver = Arc::new(Receiver {
            node,
            horizon,
            penalties,
            rate,
            seen: Mutex::default(),
        });
        if tokio::time::timeout(FIRST_CATCH_UP, receiver.clone().catch_up(store.clone()))
            .await
            .is_err()
        {
            tracing::warn!("shared counters: the fleet's recent events were not read back in time");
        }
        let on_message = {
            let receiver = receiver.clone();
            Box::new(move |payload: &str| receiver.heard_payload(payload))
        };
        let on_gap = {
            let store = store.clone();
            Box::new(move || {
                tokio::spawn(receiver.clone().catch_up(store.clone()));
            })
        };
        store.listen(vec![Channel {
            name: CHANNEL,
            on_message,
            on_gap,
        }]);
        let writer = tokio::spawn(write(store.clone(), events, node, horizon));
        Self {
            writer,
            _store: store,
        }
    }
}

/// The writer: commits queued events in order, waits out a database that
/// is down, prunes old rows.
async fn write(store: PostgresStore, mut events: mpsc::Receiver<CounterEvent>, node: i64, horizon: Horizon) {
    let mut pending: VecDeque<(i64, CounterEvent)> = VecDeque::new();
    let mut seq = 0i64;
    let mut down = false;
    let mut wait = RETRY_MIN;
    let mut last_prune = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    metrics::gauge!(m::SHARED_COUNTERS_UP).set(1.0);
    loop {
        if pending.is_empty() {
            if events.recv_many(&mut batch, BATCH).await == 0 {
                return;
            }
        } else {
            // Take what else has queued, without waiting.
            while batch.len() < BATCH {
                match events.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
        }
        for event in batch.drain(..) {
            seq += 1;
            if pending.len() >= PENDING {
                pending.pop_front();
                metrics::counter!(m::SHARED_COUNTER_EVENTS_TOTAL, "direction" => "sent", "result" => "dropped")
                    .increment(1);
            }
            pending.push_back((seq, event));
        }
        while !pending.is_empty() {
            let n = pending.len().min(BATCH);
            match commit(&store, node, pending.range(..n)).await {
                Ok(()) => {
                    pending.drain(..n);
                    metrics::counter!(m::SHARED_COUNTER_EVENTS_TOTAL, "direction" => "sent", "result" => "ok")
                        .increment(n as u64);
                    if down {
                        tracing::info!("shared counters: the database is back, sharing again");
                        metrics::gauge!(m::SHARED_COUNTERS_UP).set(1.0);
                        down = false;
                    }
                    wait = RETRY_MIN;
                }
                Err(error) => {
                    if !down {
                        tracing::warn!(%error, "shared counters: cannot reach the database; counting on this node alone until it is back");
                        metrics::gauge!(m::SHARED_COUNTERS_UP).set(0.0);
                        down = true;
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_MAX);
                    break;
                }
            }
        }
        if !down && last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            let before = unix_ms(last_prune) - horizon.0.as_millis() as i64;
            if let Err(error) = sqlx::query("DELETE FROM counter_events WHERE at_ms < $1")
                .bind(before)
                .execute(store.pool())
                .await
            {
                tracing::debug!(%error, "shared counters: prune failed");
            }
        }
    }
}

/// Inserts and announces `events` in one transaction: two statements
/// whatever their number (arrays, unnested by the server).
async fn commit<'a>(
    store: &PostgresStore,
    node: i64,
    events: impl Iterator<Item = &'a (i64, CounterEvent)>,
) -> Result<(), sqlx::Error> {
    let (mut seqs, mut times, mut texts, mut payloads) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (seq, event) in events {
        let text = event.encode();
        payloads.push(format!("{node}:{seq}:{text}"));
        seqs.push(*seq);
        times.push(event.at_ms());
        texts.push(text);
    }
    let mut tx = store.pool().begin().await?;
    sqlx::query(
        "INSERT INTO counter_events (node, seq, at_ms, event) \
         SELECT $1, s, t, e FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::TEXT[]) AS u (s, t, e) \
         ON CONFLICT (node, seq) DO NOTHING",
    )
    .bind(node)
    .bind(&seqs)
    .bind(&times)
    .bind(&texts)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify($1, p) FROM UNNEST($2::TEXT[]) AS u (p)")
        .bind(CHANNEL)
        .bind(&payloads)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}
