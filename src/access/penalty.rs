//! The brute-force penalty: failed logins make the next ones slow, then
//! refused for a while, per client (IPv4 address or IPv6 /64) and per login
//! name. Protocol-neutral: it answers [`Penalty`], and each front-end says it
//! in its own words (IMAP `NO [UNAVAILABLE]`, POP3 `-ERR [SYS/TEMP]`, SMTP
//! `454 4.7.0`).
//!
//! # How it counts
//! - Each failed login (a wrong password, as judged by the account store or,
//!   in pass-through, by the upstream) adds one to the client's record and
//!   one to the login name's record.
//! - The same wrong password again, for the same login from the same client,
//!   adds nothing: a phone polling with an old password is one mistake, not
//!   an attack. Each record keeps a keyed hash (HMAC-SHA256 under the
//!   [`CounterKey`], truncated to 64 bits) of its last few ([`RECENT`])
//!   failed (login, password) or (client, password) pairs, never a password.
//! - The answer to the next login from a client or for a login name with
//!   `n` failures is held `initial_delay * 2^(n-1)`, at most `max_delay`
//!   (Dovecot's auth penalty: 2, 4, 8, 15 s), whatever the outcome, so a
//!   guess gains nothing by racing its reply. The account store checks it
//!   only after the delay (a client that leaves costs no hash).
//! - At `ip_refuse_after` (client) or `mailbox_refuse_after` (login name)
//!   failures, logins are refused unchecked for `refuse_secs`.
//! - A success forgives only what the same person did: on the client's
//!   record, the failures for that login name; on the login name's record,
//!   the failures from that client. An attacker who owns one mailbox cannot
//!   wash its own record clean by logging in to it between guesses at others,
//!   and a distributed attack on one mailbox stays counted when its owner
//!   logs in.
//! - Records are forgotten `forget_after_secs` after their last failure.
//! - A login name is counted under the name the account store knows it by
//!   ([`crate::access::login_name::canonical_login_name`], which the gate
//!   hands in): `Mar\u{212A}@x` (U+212A KELVIN SIGN) and `mark@x` are one
//!   mailbox, so one count.
//!
//! # Across a fleet
//! Many proxies behind one load balancer count as one, without asking each
//! other on the login path: each node decides from its own records, and
//! tells the others what it counted ([`Penalties::replicated`] with a
//! [`CounterSink`]): a counted failure as [`CounterEvent::LoginFailed`]
//! (client, login name and password hashed under the fleet's shared
//! [`CounterKey`], and the time), a success that forgave something here as
//! [`CounterEvent::LoginSucceeded`] (most successes forgive nothing, and
//! say nothing). Each node hands the others' events to
//! [`Penalties::apply`], which counts them as if they had happened here,
//! at their own time: a password sprayer spreading guesses over N nodes
//! is refused after as many guesses as on one. Clients in trusted networks
//! publish nothing, as they count nothing. When the transport is down, each
//! node keeps counting what it sees (the fleet then allows at most N times
//! the guesses, as separate proxies do), and counts the others' events
//! when they arrive, if younger than `forget_after_secs`.
//!
//! An event applied late counts at its own time, as the receiving node
//! sees it (its wall clock less the event's, never in the future): a
//! record's last failure and its refusal's end never move back, so a late
//! event never makes a record look older or a refusal shorter. The same
//! event applied twice counts once as long as its (other, password) pair
//! is still among the [`RECENT`] pairs both of its records remember: that
//! is, unless more than [`RECENT`] other pairs failed on one of them in
//! between, a success forgave the pair in between, or the record was
//! forgotten or evicted in between. The transport must deduplicate for
//! those cases (e.g. by per-node sequence numbers). Across nodes, a failure
//! and a later success by the same person that cross in flight may leave
//! the failure forgiven on one node and counted on the other (until it is
//! forgotten, or that person's next success forgives it everywhere): a
//! success only ever forgives the failures of the same client for the
//! same name, so an attacker gains nothing.
//!
//! # How long a client waits
//! The delay `d` is decided once, when the login arrives (failures that
//! concurrent logins add while it waits do not lengthen it), and is at most
//! `max_delay`. [`Penalties::decide`] only decides; the gate holds the
//! answer (`crate::access::gate`): with the account store it waits `d`, then
//! verifies, so the answer comes `d` + the verification after the login;
//! in pass-through the upstream judges during `d`, so the answer comes after
//! the longer of the two, never their sum (Dovecot delays a wrong password
//! by its own `auth_failure_delay`, 2 s, and its own penalty, up to 15 s,
//! which stacked on ours to 30 s). A delay that would end past `latest`
//! (the session's pre-login deadline, less the time a verification takes)
//! is not waited: the login is refused at once, with the same temporary
//! error as a refusal, rather than cut off by the deadline without an
//! answer.
//!
//! # Memory
//! Each dimension is a `DashMap` of at most `max_tracked` records (about
//! 120 bytes each), keyed by the 64-bit keyed hash of the client or the
//! login name, so a 8 KiB user name costs what a short one does (and an
//! event from another node finds its record by the hash alone). A new
//! record beyond the cap first drops the expired ones, then the least
//! recently failed eighth.
//! New records are inserted under one mutex so concurrent inserts cannot
//! overshoot the cap; updates of existing records do not take it.
//!
//! # Cost
//! A login computes the HMAC of its client and its login name when it is
//! decided and again when it is recorded, and of its password when it
//! failed: about 1.2 µs of CPU a login in release, against 0.3 µs with the
//! per-process SipHash before (nothing beside an argon2 verification).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

use crate::access::counters::{self, CounterEvent, CounterKey, CounterSink, Publisher, unix_ms};
pub use crate::config::PenaltyConfig;
use crate::net::client_ip::{ClientGroup, Network, is_trusted};
use crate::ops::metrics as m;
use crate::protocol::Protocol;

impl PenaltyConfig {
    fn initial_delay(&self) -> Duration {
        Duration::from_millis(self.initial_delay_ms)
    }
    fn max_delay(&self) -> Duration {
        Duration::from_millis(self.max_delay_ms)
    }
    fn refuse_for(&self) -> Duration {
        Duration::from_secs(self.refuse_secs)
    }
    fn forget_after(&self) -> Duration {
        Duration::from_secs(self.forget_after_secs)
    }

    /// The delay before a login with `failures` prior failures: none for 0,
    /// then `initial * 2^(failures-1)` up to `max`.
    pub fn delay_for(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let doublings = (failures - 1).min(31);
        self.initial_delay()
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay())
    }
}

/// What to do with a login before checking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Penalty {
    /// Check it now.
    None,
    /// Hold its answer this long (see "How long a client waits").
    Delay(Duration),
    /// Do not check it; tell the client to come back later.
    Refuse { retry_after: Duration },
}

/// Hash of what a failure was about: (the other dimension, the password).
type Fingerprint = (u64, u64);

/// How many failed (other, password) pairs a record remembers.
pub const RECENT: usize = 4;

#[derive(Debug, Clone)]
struct Record {
    failures: u32,
    last_failure: Instant,
    refused_until: Option<Instant>,
    recent: [Fingerprint; RECENT],
    recent_len: u8,
}

impl Record {
    fn new(now: Instant) -> Self {
        Self {
            failures: 0,
            last_failure: now,
            refused_until: None,
            recent: [(0, 0); RECENT],
            recent_len: 0,
        }
    }

    fn expired(&self, now: Instant, cfg: &PenaltyConfig) -> bool {
        now >= self.last_failure + cfg.forget_after() && self.refused_until.is_none_or(|u| now >= u)
    }

    fn recent(&self) -> &[Fingerprint] {
        &self.recent[..usize::from(self.recent_len)]
    }

    fn penalty(&self, now: Instant, cfg: &PenaltyConfig) -> Penalty {
        if self.expired(now, cfg) {
            return Penalty::None;
        }
        if let Some(until) = self.refused_until.filter(|u| now < *u) {
            return Penalty::Refuse {
                retry_after: until - now,
            };
        }
        match cfg.delay_for(self.failures) {
            d if d.is_zero() => Penalty::None,
            d => Penalty::Delay(d),
        }
    }

    /// Counts a failure that happened at `at` (now, or earlier for another
    /// node's, which may arrive after later ones: times only move forward).
    fn fail(&mut self, fp: Fingerprint, at: Instant, refuse_after: u32, cfg: &PenaltyConfig) {
        if self.expired(at, cfg) {
            *self = Record::new(at);
        }
        self.last_failure = self.last_failure.max(at);
        if self.recent().contains(&fp) {
            return;
        }
        if usize::from(self.recent_len) < RECENT {
            self.recent_len += 1;
        }
        self.recent.copy_within(0..RECENT - 1, 1);
        self.recent[0] = fp;
        self.failures = self.failures.saturating_add(1);
        if refuse_after > 0 && self.failures >= refuse_after {
            let until = at + cfg.refuse_for();
            self.refused_until = Some(self.refused_until.map_or(until, |u| u.max(until)));
        }
    }

    /// Forgets the remembered failures about `other`; how many.
    fn forgive(&mut self, other: u64, refuse_after: u32) -> usize {
        let kept: Vec<Fingerprint> = self.recent().iter().copied().filter(|f| f.0 != other).collect();
        let forgiven = usize::from(self.recent_len) - kept.len();
        self.recent[..kept.len()].copy_from_slice(&kept);
        self.recent_len = kept.len() as u8;
        self.failures = self.failures.saturating_sub(forgiven as u32);
        if refuse_after == 0 || self.failures < refuse_after {
            self.refused_until = None;
        }
        forgiven
    }
}

/// One dimension's records, bounded.
#[derive(Debug)]
struct Tracker<K: std::hash::Hash + Eq> {
    records: DashMap<K, Record>,
    /// Serialises the insertion of new records so the cap holds exactly.
    inserting: Mutex<()>,
    refuse_after: u32,
}

impl<K: std::hash::Hash + Eq + Copy> Tracker<K> {
    fn new(refuse_after: u32) -> Self {
        Self {
            records: DashMap::new(),
            inserting: Mutex::new(()),
            refuse_after,
        }
    }

    fn penalty(&self, key: &K, now: Instant, cfg: &PenaltyConfig) -> Penalty {
        self.records
            .get(key)
            .map_or(Penalty::None, |r| r.penalty(now, cfg))
    }

    /// Counts a failure from `at` (see [`Record::fail`]); `now` decides
    /// what eviction finds expired.
    fn fail(&self, key: K, fp: Fingerprint, at: Instant, now: Instant, cfg: &PenaltyConfig) {
        if let Some(mut r) = self.records.get_mut(&key) {
            r.fail(fp, at, self.refuse_after, cfg);
            return;
        }
        let _inserting = self.inserting.lock().unwrap_or_else(|e| e.into_inner());
        if !self.records.contains_key(&key) && self.records.len() >= cfg.max_tracked {
            self.evict(now, cfg);
        }
        self.records
            .entry(key)
            .or_insert_with(|| Record::new(at))
            .fail(fp, at, self.refuse_after, cfg);
    }

    /// Forgives `key`'s failures about `other`, dropping a record left
    /// with none; whether there were any.
    fn forgive(&self, key: &K, other: u64) -> bool {
        let (forgiven, empty) = self.records.get_mut(key).map_or((0, false), |mut r| {
            let forgiven = r.forgive(other, self.refuse_after);
            (forgiven, r.failures == 0)
        });
        if empty {
            self.records.remove_if(key, |_, r| r.failures == 0);
        }
        forgiven > 0
    }

    /// Drops expired records, then the least recently failed until the map
    /// is at 7/8 of the cap, so eviction runs once per cap/8 new records.
    fn evict(&self, now: Instant, cfg: &PenaltyConfig) {
        self.records.retain(|_, r| !r.expired(now, cfg));
        let target = cfg.max_tracked - cfg.max_tracked / 8;
        let len = self.records.len();
        if len < target.max(1) {
            return;
        }
        let mut ages: Vec<(Instant, K)> = self.records.iter().map(|e| (e.last_failure, *e.key())).collect();
        let excess = (len - target).max(1).min(ages.len());
        ages.select_nth_unstable_by_key(excess - 1, |(t, _)| *t);
        for (_, key) in &ages[..excess] {
            self.records.remove(key);
        }
    }

    /// The exact number of records: with the insert lock held nothing can
    /// be added, whereas a bare `len()` sums the shards one after another and
    /// can count a record evicted from one shard and its successor in another.
    #[cfg(test)]
    fn len_exact(&self) -> usize {
        let _inserting = self.inserting.lock().unwrap_or_else(|e| e.into_inner());
        self.records.len()
    }

    fn sweep(&self, now: Instant, cfg: &PenaltyConfig) {
        self.records.retain(|_, r| !r.expired(now, cfg));
    }
}

/// The penalty state for the whole process, shared by every listener.
#[derive(Debug)]
pub struct Penalties {
    cfg: PenaltyConfig,
    trusted: Vec<Network>,
    /// Keyed by [`CounterKey::client`].
    clients: Tracker<u64>,
    /// Keyed by [`CounterKey::login`].
    logins: Tracker<u64>,
    key: CounterKey,
    publisher: Publisher,
}

impl Penalties {
    /// The penalty of a single node: a key of its own, telling no one.
    pub fn new(cfg: PenaltyConfig, trusted: Vec<Network>) -> Self {
        Self::replicated(cfg, trusted, CounterKey::random(), None)
    }

    /// The penalty of one node of a fleet: `key` is the fleet's, and what
    /// it counts goes to `sink` (see "Across a fleet").
    pub fn replicated(
        cfg: PenaltyConfig,
        trusted: Vec<Network>,
        key: CounterKey,
        sink: Option<Arc<dyn CounterSink>>,
    ) -> Self {
        Self {
            clients: Tracker::new(cfg.ip_refuse_after),
            logins: Tracker::new(cfg.mailbox_refuse_after),
            cfg,
            trusted,
            key,
            publisher: Publisher::new(sink),
        }
    }

    /// No penalty at all (for tests and tools that log nobody in).
    #[cfg(test)]
    pub fn disabled() -> Self {
        Self::new(
            PenaltyConfig {
                enabled: false,
                ..PenaltyConfig::default()
            },
            Vec::new(),
        )
    }

    fn client_key(&self, ip: IpAddr) -> u64 {
        self.key.client(ClientGroup::of(ip))
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        !self.cfg.enabled || is_trusted(&self.trusted, ip)
    }

    /// What to do with a login by `ip` as `login` (canonical) at `now`.
    pub fn check(&self, ip: IpAddr, login: &[u8], now: Instant) -> Penalty {
        if self.exempt(ip) {
            return Penalty::None;
        }
        let a = self.clients.penalty(&self.client_key(ip), now, &self.cfg);
        let b = self.logins.penalty(&self.key.login(login), now, &self.cfg);
        match (a, b) {
            (Penalty::Refuse { retry_after: x }, Penalty::Refuse { retry_after: y }) => Penalty::Refuse {
                retry_after: x.max(y),
            },
            (r @ Penalty::Refuse { .. }, _) | (_, r @ Penalty::Refuse { .. }) => r,
            (Penalty::Delay(x), Penalty::Delay(y)) => Penalty::Delay(x.max(y)),
            (d @ Penalty::Delay(_), Penalty::None) | (Penalty::None, d @ Penalty::Delay(_)) => d,
            (Penalty::None, Penalty::None) => Penalty::None,
        }
    }

    /// A wrong password by `ip` for `login` (canonical), at `now`: counted
    /// here, then published.
    pub fn failed(&self, ip: IpAddr, login: &[u8], password: &[u8], now: Instant) {
        if self.exempt(ip) {
            return;
        }
        let client = self.client_key(ip);
        let login = self.key.login(login);
        let password = self.key.password(password);
        self.count_failure(client, login, password, now, now);
        self.publisher.publish(|| CounterEvent::LoginFailed {
            client,
            login,
            password,
            at_ms: unix_ms(now),
        });
        self.report_size();
    }

    /// A successful login by `ip` as `login` (canonical): forgives that
    /// person's own mistakes, here, then published if there were any
    /// here (most logins have nothing to forgive, and say nothing).
    pub fn succeeded(&self, ip: IpAddr, login: &[u8]) {
        if self.exempt(ip) {
            return;
        }
        let client = self.client_key(ip);
        let login = self.key.login(login);
        if !self.forgive(client, login) {
            return;
        }
        self.publisher.publish(|| CounterEvent::LoginSucceeded {
            client,
            login,
            at_ms: unix_ms(Instant::now()),
        });
        self.report_size();
    }

    /// Applies what another node counted, without publishing it again:
    /// a failure counts as if it had happened here `now_ms - at_ms` before
    /// `now` (never after `now`), a success forgives here. An event as old
    /// as `forget_after_secs` or older does nothing, nor does any event
    /// when the penalty is off; the sending-rate events are not the
    /// penalty's and do nothing here. See "Across a fleet" for what counts
    /// once when applied twice.
    pub fn apply(&self, event: &CounterEvent, now: Instant, now_ms: i64) {
        if !self.cfg.enabled {
            return;
        }
        let age = counters::age(event.at_ms(), now_ms);
        if age >= self.cfg.forget_after() {
            return;
        }
        let Some(at) = now.checked_sub(age) else {
            return;
        };
        match *event {
            CounterEvent::LoginFailed {
                client,
                login,
                password,
                ..
            } => self.count_failure(client, login, password, at, now),
            CounterEvent::LoginSucceeded { client, login, .. } => {
                self.forgive(client, login);
            }
            CounterEvent::MessageSent { .. } | CounterEvent::MessageRefunded { .. } => return,
        }
        self.report_size();
    }

    /// One failure from `at`: one on the client's record, one on the
    /// login name's.
    fn count_failure(&self, client: u64, login: u64, password: u64, at: Instant, now: Instant) {
        self.clients.fail(client, (login, password), at, now, &self.cfg);
        self.logins.fail(login, (client, password), at, now, &self.cfg);
    }

    /// Forgives what `client` failed for `login`; whether there was any.
    fn forgive(&self, client: u64, login: u64) -> bool {
        let on_client = self.clients.forgive(&client, login);
        let on_login = self.logins.forgive(&login, client);
        on_client || on_login
    }

    /// Drops expired records (a periodic chore; the cap holds without it).
    pub fn sweep(&self, now: Instant) {
        self.clients.sweep(now, &self.cfg);
        self.logins.sweep(now, &self.cfg);
        self.report_size();
    }

    /// Records kept now: (clients, login names).
    pub fn tracked(&self) -> (usize, usize) {
        (self.clients.records.len(), self.logins.records.len())
    }

    fn report_size(&self) {
        let (clients, logins) = self.tracked();
        metrics::gauge!(m::LOGIN_PENALTY_TRACKED, "dimension" => "client").set(clients as f64);
        metrics::gauge!(m::LOGIN_PENALTY_TRACKED, "dimension" => "login").set(logins as f64);
    }

    /// Decides a login by `ip` as `login` (canonical) at `now`: how long its
    /// answer is held (zero, or at most `max_delay`), or why it is refused
    /// unchecked: too many failures, or a delay that would end after
    /// `latest` (then `retry_after` is the delay). Counted in
    /// `pec_proxy_login_penalty_{delays,refusals}_total`; never waits.
    pub fn decide(
        &self,
        protocol: Protocol,
        ip: IpAddr,
        login: &[u8],
        now: Instant,
        latest: Option<Instant>,
    ) -> Result<Duration, Refused> {
        let refused = |retry_after: Duration, why: &'static str| {
            metrics::counter!(m::LOGIN_PENALTY_REFUSALS_TOTAL, "protocol" => protocol.as_str()).increment(1);
            tracing::info!(protocol = protocol.as_str(), client = %ClientGroup::of(ip),
                retry_after_secs = retry_after.as_secs(), "login refused: {why}");
            Err(Refused { retry_after })
        };
        match self.check(ip, login, now) {
            Penalty::None => Ok(Duration::ZERO),
            Penalty::Delay(d) if latest.is_some_and(|latest| now + d > latest) => {
                refused(d, "its penalty delay would run past the login deadline")
            }
            Penalty::Delay(d) => {
                metrics::counter!(m::LOGIN_PENALTY_DELAYS_TOTAL, "protocol" => protocol.as_str())
                    .increment(1);
                metrics::histogram!(m::LOGIN_PENALTY_DELAY_SECONDS, "protocol" => protocol.as_str())
                    .record(d.as_secs_f64());
                Ok(d)
            }
            Penalty::Refuse { retry_after } => refused(retry_after, "too many failed logins"),
        }
    }

    /// Sweeps expired records every `every`, for ever (run it in a task that
    /// is aborted at shutdown).
    pub async fn sweep_every(self: std::sync::Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.sweep(Instant::now());
        }
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &PenaltyConfig {
        &self.cfg
    }
}

/// A login refused by the penalty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
}

#[cfg(test)]
mod tests;
