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
