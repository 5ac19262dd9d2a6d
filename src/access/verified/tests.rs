use super::*;

#[tokio::test(start_paused = true)]
async fn remembers_a_pair_until_the_ttl() {
    let cache = VerifiedCache::new(Duration::from_secs(60));
    let pw = Secret::from_slice(b"s3cret");
    assert!(!cache.contains("$argon2id$a", &pw));
    cache.insert("$argon2id$a", &pw);
    assert!(cache.contains("$argon2id$a", &pw));
    assert!(
        !cache.contains("$argon2id$b", &pw),
        "another hash (a changed password) misses"
    );
    assert!(!cache.contains("$argon2id$a", &Secret::from_slice(b"s3cre")));
    // The split between hash and password is part of the MAC.
    assert!(!cache.contains("$argon2id$as", &Secret::from_slice(b"3cret")));
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(!cache.contains("$argon2id$a", &pw), "expired");
    assert!(cache.is_empty());
}

#[test]
fn keys_differ_per_cache() {
    let pw = Secret::from_slice(b"x");
    let (a, b) = (
        VerifiedCache::new(Duration::from_secs(1)),
        VerifiedCache::new(Duration::from_secs(1)),
    );
    assert_ne!(a.tag("h", &pw), b.tag("h", &pw));
}
