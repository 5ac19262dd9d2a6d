//! Counters a fleet of proxies shares: the brute-force penalty
//! ([`crate::access::penalty`]) and the sending rate
//! ([`crate::access::send_rate`]). Each node keeps deciding from its own
//! memory (no round trip on the login path) and tells the others what it
//! counted, as [`CounterEvent`]s handed to a [`CounterSink`]; each node
//! applies the others' events (`Penalties::apply`, `RateLimiter::apply`) as
//! if they had happened locally. The transport (queue, table, NOTIFY) is
//! not here: a sink only queues, and whoever receives events calls `apply`.
//! When the transport is down, every node keeps counting what it sees.
//!
//! What crosses the fleet is hashes and times, never a name, an address or
//! a password: a [`CounterKey`] every node shares turns each into 64 bits
//! (HMAC-SHA256 truncated, one domain byte per kind). Whoever holds both the
//! key and the events can test guesses at HMAC speed: which addresses and
//! names they are (an IPv4 address is one of 2^32), and which wrong
//! passwords were tried (a typo is a few guesses away from the right one).
//! Keep the secret file as private as the TLS key; without it the events
//! say nothing.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use tokio::time::Instant;

use crate::net::client_ip::ClientGroup;

/// The keyed hash every node of a fleet shares, so that the same client,
/// login name, password or mailbox is the same 64-bit value on every node.
/// Its `Debug` shows nothing of the key.
#[derive(Clone)]
pub struct CounterKey {
    key: hmac::Key,
}

impl fmt::Debug for CounterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CounterKey { .. }")
    }
}

/// A shared secret too short to key the fleet's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the counter secret has {len} bytes; at least {MIN_SECRET_BYTES} are needed")]
pub struct ShortSecret {
    pub len: usize,
}

/// The shortest shared secret [`CounterKey::from_secret`] accepts: 32
/// bytes, SHA-256's output, so the key is never the weak point.
pub const MIN_SECRET_BYTES: usize = 32;

/// What a hashed value is, so that equal bytes of different kinds differ.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum Domain {
    Client = b'c',
    Login = b'l',
    Password = b'p',
    Mailbox = b'm',
}

impl CounterKey {
    /// A key of this process alone (a single node): 32 random bytes.
    pub fn random() -> Self {
        let mut seed = [0u8; MIN_SECRET_BYTES];
        getrandom::fill(&mut seed).expect("the OS random source works");
        let key = Self::keyed(&seed);
        seed.fill(0);
        key
    }

    /// The key of a fleet: `secret` as read from a file every node shares,
    /// at least [`MIN_SECRET_BYTES`] long.
    pub fn from_secret(secret: &[u8]) -> Result<Self, ShortSecret> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(ShortSecret { len: secret.len() });
        }
        Ok(Self::keyed(secret))
    }

    fn keyed(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// HMAC-SHA256(key, domain ‖ bytes), its first 8 bytes big-endian.
    fn hash(&self, domain: Domain, bytes: &[u8]) -> u64 {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&[domain as u8]);
        ctx.update(bytes);
        let tag = ctx.sign();
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag.as_ref()[..8]);
        u64::from_be_bytes(first)
    }

    /// A client (IPv4 address or IPv6 /64), in a byte form that does not
    /// depend on how Rust hashes an enum: `4` and 4 bytes, or `6` and 8.
    pub fn client(&self, group: ClientGroup) -> u64 {
        match group {
            ClientGroup::V4(a) => {
                let mut b = [4u8; 5];
                b[1..].copy_from_slice(&a.to_be_bytes());
                self.hash(Domain::Client, &b)
            }
            ClientGroup::V6(p) => {
                let mut b = [6u8; 9];
                b[1..].copy_from_slice(&p.to_be_bytes());
                self.hash(Domain::Client, &b)
            }
        }
    }

    /// A login name, as given: callers give its canonical spelling
    /// ([`crate::access::login_name::canonical_login_name`]).
    pub fn login(&self, login: &[u8]) -> u64 {
        self.hash(Domain::Login, login)
    }

    /// A password (a failed one: successes are never hashed).
    pub fn password(&self, password: &[u8]) -> u64 {
        self.hash(Domain::Password, password)
    }

    /// An authenticated mailbox, as the sending rate names it.
    pub fn mailbox(&self, mailbox: &str) -> u64 {
        self.hash(Domain::Mailbox, mailbox.as_bytes())
    }
}

/// What one node counted, for the others: hashes under the fleet's
/// [`CounterKey`] and the unix wall-clock time in milliseconds it happened
/// at (so a node that receives it late can age it), nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterEvent {
    /// A wrong password from `client` for `login`.
    LoginFailed {
        client: u64,
        login: u64,
        password: u64,
        at_ms: i64,
    },
    /// A successful login from `client` as `login`: forgives that person's
    /// own failures.
    LoginSucceeded { client: u64, login: u64, at_ms: i64 },
    /// A message submitted by `mailbox` took a token of its sending rate.
    MessageSent { mailbox: u64, at_ms: i64 },
    /// A message `mailbox` did not submit after all gave its token back.
    MessageRefunded { mailbox: u64, at_ms: i64 },
}

/// Bound on an encoded event: [`CounterEvent::decode`] refuses anything
/// longer unread. The longest encoding is 74 bytes (`f1:`, three 16-digit
/// hashes and `i64::MIN`).
pub const MAX_ENCODED: usize = 128;

impl CounterEvent {
    /// When it happened (unix milliseconds).
    pub fn at_ms(&self) -> i64 {
        match *self {
            CounterEvent::LoginFailed { at_ms, .. }
            | CounterEvent::LoginSucceeded { at_ms, .. }
            | CounterEvent::MessageSent { at_ms, .. }
            | CounterEvent::MessageRefunded { at_ms, .. } => at_ms,
        }
    }

    /// The event as text (a PostgreSQL NOTIFY payload, a table cell), one
    /// form per event: a kind letter and a format version (`f1`, `s1`, `m1`,
    /// `r1`), then the hashes as 16 lowercase hex digits and the time in
    /// decimal, separated by `:`.
    /// `f1:<client>:<login>:<password>:<at_ms>`, `s1:<client>:<login>:<at_ms>`,
    /// `m1:<mailbox>:<at_ms>` (sent), `r1:<mailbox>:<at_ms>` (refunded).
    pub fn encode(&self) -> String {
        match *self {
            CounterEvent::LoginFailed {
                client,
                login,
                password,
                at_ms,
            } => format!("f1:{client:016x}:{login:016x}:{password:016x}:{at_ms}"),
            CounterEvent::LoginSucceeded { client, login, at_ms } => {
                format!("s1:{client:016x}:{login:016x}:{at_ms}")
            }
            CounterEvent::MessageSent { mailbox, at_ms } => format!("m1:{mailbox:016x}:{at_ms}"),
            CounterEvent::MessageRefunded { mailbox, at_ms } => format!("r1:{mailbox:016x}:{at_ms}"),
        }
    }

    /// Reads what [`CounterEvent::encode`] wrote, and only that: exactly
    /// one spelling per event (so `decode(s)` is `Some(e)` only when
    /// `e.encode() == s`); an unknown kind or version, a missing or extra
    /// field, or more than [`MAX_ENCODED`] bytes is `None`.
    pub fn decode(text: &str) -> Option<Self> {
        if text.len() > MAX_ENCODED {
            return None;
        }
        let mut fields = text.split(':');
        let event = match fields.next()? {
            "f1" => CounterEvent::LoginFailed {
                client: hash_field(fields.next()?)?,
                login: hash_field(fields.next()?)?,
                password: hash_field(fields.next()?)?,
                at_ms: time_field(fields.next()?)?,
            },
            "s1" => CounterEvent::LoginSucceeded {
                client: hash_field(fields.next()?)?,
                login: hash_field(fields.next()?)?,
                at_ms: time_field(fields.next()?)?,
            },
            "m1" => CounterEvent::MessageSent {
                mailbox: hash_field(fields.next()?)?,
                at_ms: time_field(fields.next()?)?,
            },
            "r1" => CounterEvent::MessageRefunded {
                mailbox: hash_field(fields.next()?)?,
                at_ms: time_field(fields.next()?)?,
            },
            _ => return None,
        };
        fields.next().is_none().then_some(event)
    }
}

/// Exactly 16 lowercase hex digits.
fn hash_field(field: &str) -> Option<u64> {
    if field.len() != 16 || !field.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(field, 16).ok()
}

/// An `i64` in decimal as Rust writes it: an optional `-`, no `+`, no
/// leading zero, no `-0`.
fn time_field(field: &str) -> Option<i64> {
    let digits = field.strip_prefix('-').unwrap_or(field);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && field != "-0";
    if !canonical {
        return None;
    }
    field.parse().ok()
}

/// Where a node's counters send what they counted. `publish` must not
/// block (the login path calls it): an implementation queues, and may drop
/// when its queue is full (the fleet then counts less, each node still
/// counts its own). It must not hand a node's events back to that node's
/// `apply`: a send would count twice.
pub trait CounterSink: Send + Sync {
    fn publish(&self, event: CounterEvent);
}

/// A counter's sink, if any (none: a single node).
#[derive(Clone, Default)]
pub(crate) struct Publisher(Option<Arc<dyn CounterSink>>);

impl Publisher {
    pub(crate) fn new(sink: Option<Arc<dyn CounterSink>>) -> Self {
        Self(sink)
    }

    /// Publishes the event `make` builds, if there is a sink to take it.
    pub(crate) fn publish(&self, make: impl FnOnce() -> CounterEvent) {
        if let Some(sink) = &self.0 {
            sink.publish(make());
        }
    }
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("sink", &self.0.is_some())
            .finish()
    }
}

/// The unix wall-clock time, in milliseconds, of the moment `at`: the
/// wall clock now, moved by how far `at` is from now on tokio's clock
/// (under paused time in tests, `unix_ms(Instant::now())` stays the real
/// wall clock while `Instant::now()` jumps).
pub fn unix_ms(at: Instant) -> i64 {
    let wall = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(after) => millis(after),
        Err(before) => millis(before.duration()).saturating_neg(),
    };
    let now = Instant::now();
    if at <= now {
        wall.saturating_sub(millis(now - at))
    } else {
        wall.saturating_add(millis(at - now))
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// How long ago an event from `at_ms` happened, seen at `now_ms`: an event
/// from the future (another node's clock ahead of ours) happened now.
pub(crate) fn age(at_ms: i64, now_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(now_ms.saturating_sub(at_ms)).unwrap_or(0))
}

/// A sink that keeps what it is given, for tests that carry events from
/// one node to another by hand.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct CollectingSink(std::sync::Mutex<Vec<CounterEvent>>);

#[cfg(test)]
impl CollectingSink {
    /// The events published since the last call.
    pub(crate) fn take(&self) -> Vec<CounterEvent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[cfg(test)]
impl CounterSink for CollectingSink {
    fn publish(&self, event: CounterEvent) {
        self.0.lock().unwrap().push(event);
    }
}

#[cfg(test)]
mod tests;
