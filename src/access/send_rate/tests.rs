use std::time::Duration;

use super::*;

#[tokio::test(start_paused = true)]
async fn rate_limiter_refills_refunds_and_is_bounded() {
    let off = RateLimiter::new(0, 10);
    assert!((0..100).all(|_| off.try_acquire("a@b")));

    let rl = RateLimiter::new(2, 2);
    assert!(rl.try_acquire("a@b"));
    assert!(rl.try_acquire("a@b"));
    assert!(!rl.try_acquire("a@b"));
    rl.refund("a@b");
    assert!(rl.try_acquire("a@b"));
    assert!(!rl.try_acquire("a@b"));
    tokio::time::advance(Duration::from_secs(30)).await;
    assert!(rl.try_acquire("a@b"), "one token back after 30 s at 2/min");
    assert!(!rl.try_acquire("a@b"));

    assert!(rl.try_acquire("c@d"));
    // Both slots busy: a third mailbox is refused, not let through.
    assert!(!rl.try_acquire("e@f"));
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(rl.try_acquire("e@f"), "idle buckets are dropped to make room");
}

// Across a fleet: limiters built with one shared key, the events one
// publishes carried by hand to another's `apply`.

use std::sync::Arc;

use crate::access::counters::{CollectingSink, CounterEvent, CounterKey, unix_ms};

const FLEET: &[u8; 32] = b"fleet-secret-shared-by-all-nodes";

struct Node {
    rl: RateLimiter,
    sink: Arc<CollectingSink>,
}

fn node(per_minute: u32, max_mailboxes: usize) -> Node {
    let sink = Arc::new(CollectingSink::default());
    let rl = RateLimiter::replicated(
        per_minute,
        max_mailboxes,
        CounterKey::from_secret(FLEET).unwrap(),
        Some(sink.clone()),
    );
    Node { rl, sink }
}

/// Carries what `from` published since the last time to `to`, as soon as
/// it happened.
fn deliver(from: &Node, to: &Node) -> usize {
    let events = from.sink.take();
    for e in &events {
        to.rl.apply(e, Instant::now(), e.at_ms());
    }
    events.len()
}

fn sent(mailbox: &str, at_ms: i64) -> CounterEvent {
    CounterEvent::MessageSent {
        mailbox: CounterKey::from_secret(FLEET).unwrap().mailbox(mailbox),
        at_ms,
    }
}

#[tokio::test(start_paused = true)]
async fn sends_alternating_over_two_nodes_share_one_budget() {
    let (a, b) = (node(4, 10), node(4, 10));
    for i in 0..4 {
        let (here, there) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        assert!(here.rl.try_acquire("m@x"), "send {i}");
        assert_eq!(deliver(here, there), 1);
    }
    assert!(!a.rl.try_acquire("m@x"), "the 5th is refused on A");
    assert!(!b.rl.try_acquire("m@x"), "and on B");
    assert_eq!(
        a.sink.take().len() + b.sink.take().len(),
        0,
        "a refusal tells no one"
    );
    // Other mailboxes keep their own budget.
    assert!(a.rl.try_acquire("other@x"));

    // Today's nodes, each on its own, accept 4 each.
    let (lone_a, lone_b) = (RateLimiter::new(4, 10), RateLimiter::new(4, 10));
    let accepted = (0..8)
        .filter(|i| if i % 2 == 0 { &lone_a } else { &lone_b }.try_acquire("m@x"))
        .count();
    assert_eq!(accepted, 8);
}

#[tokio::test(start_paused = true)]
async fn a_refund_on_one_node_is_seen_on_the_other() {
    let (a, b) = (node(2, 10), node(2, 10));
    assert!(a.rl.try_acquire("m@x"));
    deliver(&a, &b);
    assert!(b.rl.try_acquire("m@x"));
    deliver(&b, &a);
    assert!(!a.rl.try_acquire("m@x") && !b.rl.try_acquire("m@x"));
    a.rl.refund("m@x");
    assert_eq!(deliver(&a, &b), 1);
    assert!(b.rl.try_acquire("m@x"), "A's refund is B's token");
    deliver(&b, &a);
    assert!(!a.rl.try_acquire("m@x"), "and B took it");
}

#[tokio::test(start_paused = true)]
async fn a_race_for_the_last_token_is_paid_back_on_both_nodes() {
    // 1 a minute; both nodes take it before hearing of the other.
    let (a, b) = (node(1, 10), node(1, 10));
    assert!(a.rl.try_acquire("m@x"));
    assert!(b.rl.try_acquire("m@x"));
    deliver(&a, &b);
    deliver(&b, &a);
    // Each bucket is at -1: the fleet sent two, so nothing for two minutes.
    tokio::time::advance(Duration::from_secs(100)).await;
    assert!(!a.rl.try_acquire("m@x") && !b.rl.try_acquire("m@x"));
    tokio::time::advance(Duration::from_secs(21)).await;
    assert!(a.rl.try_acquire("m@x"));
    deliver(&a, &b);
    assert!(!b.rl.try_acquire("m@x"));
}

#[tokio::test(start_paused = true)]
async fn remote_sends_take_a_bucket_down_to_minus_per_minute_at_most() {
    let b = node(2, 10);
    let now_ms = unix_ms(Instant::now());
    for _ in 0..10 {
        b.rl.apply(&sent("m@x", now_ms), Instant::now(), now_ms);
    }
    // At -2, not -8: a token back after 90 s (1 every 30 s), not 270 s.
    tokio::time::advance(Duration::from_secs(88)).await;
    assert!(!b.rl.try_acquire("m@x"));
    tokio::time::advance(Duration::from_secs(4)).await;
    assert!(b.rl.try_acquire("m@x"));
    assert!(b.sink.take().len() == 1, "applied events are not published again");
}

#[tokio::test(start_paused = true)]
async fn a_remote_event_a_minute_old_is_ignored() {
    let (old, young) = (node(1, 10), node(1, 10));
    let at = unix_ms(Instant::now());
    old.rl.apply(&sent("m@x", at), Instant::now(), at + 60_000);
    assert!(old.rl.try_acquire("m@x"));
    young.rl.apply(&sent("m@x", at), Instant::now(), at + 59_999);
    assert!(!young.rl.try_acquire("m@x"));
    // From a clock ahead of ours: now.
    let ahead = node(1, 10);
    ahead.rl.apply(&sent("m@x", at + 600_000), Instant::now(), at);
    assert!(!ahead.rl.try_acquire("m@x"));
}

#[tokio::test(start_paused = true)]
async fn what_is_published_is_the_mailbox_hash_and_an_off_limiter_says_nothing() {
    let a = node(1, 10);
    assert!(a.rl.try_acquire("m@x"));
    a.rl.refund("m@x");
    let key = CounterKey::from_secret(FLEET).unwrap();
    let at_ms = unix_ms(Instant::now());
    assert_eq!(
        a.sink.take(),
        [
            CounterEvent::MessageSent {
                mailbox: key.mailbox("m@x"),
                at_ms
            },
            CounterEvent::MessageRefunded {
                mailbox: key.mailbox("m@x"),
                at_ms
            },
        ]
    );

    let off = node(0, 10);
    assert!(off.rl.try_acquire("m@x"));
    off.rl.refund("m@x");
    assert!(off.sink.take().is_empty());
    off.rl.apply(&sent("m@x", at_ms), Instant::now(), at_ms);
    assert!(off.rl.buckets.lock().unwrap().is_empty());
    // The penalty's events are not the sending rate's.
    let login = CounterEvent::LoginFailed {
        client: 1,
        login: key.mailbox("m@x"),
        password: 2,
        at_ms,
    };
    a.rl.apply(&login, Instant::now(), at_ms);
    assert!(a.rl.try_acquire("m@x"));
}

#[tokio::test(start_paused = true)]
async fn remote_events_respect_the_mailbox_bound() {
    let a = node(2, 1);
    assert!(a.rl.try_acquire("busy@x"));
    let now_ms = unix_ms(Instant::now());
    // The one slot is busy (its bucket is not full): dropped, as this
    // node's own sends for that mailbox would be refused.
    a.rl.apply(&sent("c@x", now_ms), Instant::now(), now_ms);
    assert_eq!(a.rl.buckets.lock().unwrap().len(), 1);
    // Full again after 30 s: its slot is taken by the remote send.
    tokio::time::advance(Duration::from_secs(31)).await;
    a.rl.apply(&sent("c@x", now_ms), Instant::now(), now_ms);
    assert_eq!(a.rl.buckets.lock().unwrap().len(), 1);
    assert!(a.rl.try_acquire("c@x"));
    assert!(!a.rl.try_acquire("c@x"), "the remote send took one of its two");
}
