//! Authenticator against a temporary SQLite store.

use super::*;
use crate::access::Credentials;
use crate::access::app_password;
use crate::access::password::{HashCost, hash_password_with};
use crate::protocol::Protocol;
use crate::store::account::Rights;
use crate::store::{CachedStore, NewAppPassword, SqliteStore};

const OWNER_PW: &str = "Owner-Password-4f9c1";
const ANNA_PW: &str = "Anna-Password-7d2e8";
const APP_PW: &str = "wxyz-abcd-efgh-ijkl";
const WRONG_PW: &str = "Wrong-Password-0a1b2";

fn weak_hash(pw: &str) -> String {
    hash_password_with(&Secret::from_slice(pw.as_bytes()), HashCost::TEST_ONLY_WEAK).unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: Arc<SqliteStore>,
    auth: Authenticator,
    app_id: i64,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let now = unix_now();
    store
        .add_mailbox("studio@pec.it", Some(&weak_hash(OWNER_PW)), now)
        .await
        .unwrap();
    let rights = Rights::parse_list("mail-client").unwrap();
    store
        .add_collaborator("studio@pec.it", "anna", Some(&weak_hash(ANNA_PW)), rights, now)
        .await
        .unwrap();
    let normalised = app_password::normalise(&Secret::from_slice(APP_PW.as_bytes())).unwrap();
    let app_id = store
        .create_app_password(NewAppPassword {
            mailbox: "studio@pec.it".into(),
            collaborator: None,
            label: "phone".into(),
            hash: hash_password_with(&normalised, HashCost::TEST_ONLY_WEAK).unwrap(),
            created: now,
            expires: None,
        })
        .await
        .unwrap();
    let cached: Arc<dyn AccountStore> = Arc::new(CachedStore::new(store.clone()));
    let auth = Authenticator::with_verifiers(cached, 2);
    Fixture {
        _dir: dir,
        path,
        store,
        auth,
        app_id,
    }
}

fn request(protocol: Protocol, login: &str, password: &str) -> LoginRequest {
    LoginRequest {
        protocol,
        credentials: Credentials {
            authzid: None,
            authcid: login.as_bytes().to_vec(),
            password: Secret::from_slice(password.as_bytes()),
        },
        peer: "192.0.2.10:50000".parse().unwrap(),
        tls: true,
        client_name: Some("Thunderbird 128".into()),
        separator: '/',
    }
}

#[tokio::test]
async fn logins_are_decided_and_recorded() {
    let f = fixture().await;
    type Row<'a> = (Protocol, &'a str, &'a str, Result<Option<&'a str>, DenyReason>);
    let table: &[Row] = &[
        (Protocol::Imap, "Studio@PEC.it", OWNER_PW, Ok(None)),
        (
            Protocol::Pop3,
            "studio@pec.it",
            WRONG_PW,
            Err(DenyReason::UnknownOrBadPassword),
        ),
        (Protocol::Smtp, "anna/studio@pec.it", ANNA_PW, Ok(Some("anna"))),
        (
            Protocol::Imap,
            "anna/studio@pec.it",
            OWNER_PW,
            Err(DenyReason::UnknownOrBadPassword),
        ),
        (
            Protocol::Imap,
            "nobody@pec.it",
            OWNER_PW,
            Err(DenyReason::UnknownOrBadPassword),
        ),
        (Protocol::Imap, "studio@pec.it", APP_PW, Ok(None)),
    ];
    for (protocol, login, password, expected) in table {
        let got = f.auth.authenticate(&request(*protocol, login, password)).await;
        match (got, expected) {
            (Ok(permit), Ok(collaborator)) => {
                assert_eq!(permit.mailbox, "studio@pec.it");
                assert_eq!(permit.collaborator.as_deref(), *collaborator);
            }
            (Err(denial), Err(reason)) => assert_eq!(denial.reason, *reason, "{login}"),
            (got, expected) => panic!("{login}: got {got:?}, expected {expected:?}"),
        }
    }
    let log = f.store.access_log("studio@pec.it", 10).await.unwrap();
    assert_eq!(log.len(), 5);
    let mut results: Vec<(String, Option<String>, Option<String>)> = log
        .iter()
        .map(|r| (r.protocol.clone(), r.collaborator.clone(), r.reason.clone()))
        .collect();
    results.sort();
    assert!(results.contains(&("pop3".into(), None, Some("unknown_or_bad_password".into()))));
    assert!(results.contains(&("smtp".into(), Some("anna".into()), None)));
    assert!(log.iter().all(|r| r.client_ip == "192.0.2.10"));
    assert!(
        log.iter()
            .all(|r| r.client_name.as_deref() == Some("Thunderbird 128"))
    );
    // The unknown mailbox's attempt is filed under the name tried.
    assert_eq!(f.store.access_log("nobody@pec.it", 10).await.unwrap().len(), 1);
    // The app password's use was noted.
    let app = f.store.app_password(f.app_id).await.unwrap().unwrap();
    assert!(app.last_used.is_some());
}

#[tokio::test]
async fn invalid_names_are_refused_before_lookup() {
    let f = fixture().await;
    for login in [
        "",
        "studio@pec.it\r\nA1 LOGOUT",
        "a b@pec.it",
        "x/y/studio@pec.it",
    ] {
        let denial = f
            .auth
            .authenticate(&request(Protocol::Imap, login, OWNER_PW))
            .await
            .unwrap_err();
        assert_eq!(denial.reason, DenyReason::UnknownOrBadPassword, "{login:?}");
    }
    assert!(f.store.access_log("studio@pec.it", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn store_failure_is_unavailable() {
    let f = fixture().await;
    f.store.close().await;
    let auth = Authenticator::with_verifiers(f.store.clone(), 1);
    let denial = auth
        .authenticate(&request(Protocol::Imap, "studio@pec.it", OWNER_PW))
        .await
        .unwrap_err();
    assert_eq!(denial.reason, DenyReason::StoreUnavailable);
}

#[tokio::test]
async fn client_names_are_cleaned() {
    let f = fixture().await;
    let mut req = request(Protocol::Imap, "studio@pec.it", OWNER_PW);
    req.client_name = Some(format!("Evil\r\nClient{}", "x".repeat(500)));
    f.auth.authenticate(&req).await.unwrap();
    let name = f.store.access_log("studio@pec.it", 1).await.unwrap()[0]
        .client_name
        .clone()
        .unwrap();
    assert!(name.starts_with("EvilClientxxx"));
    assert_eq!(name.chars().count(), MAX_CLIENT_NAME);
}

/// No password, right or wrong, appears anywhere in the database files.
#[tokio::test]
async fn no_password_in_the_database() {
    let f = fixture().await;
    let attempts = [
        ("studio@pec.it", OWNER_PW),
        ("studio@pec.it", WRONG_PW),
        ("studio@pec.it", APP_PW),
        ("anna/studio@pec.it", ANNA_PW),
        ("anna/studio@pec.it", WRONG_PW),
        ("ghost@pec.it", OWNER_PW),
    ];
    for protocol in [Protocol::Imap, Protocol::Pop3, Protocol::Smtp] {
        for (login, password) in attempts {
            let _ = f.auth.authenticate(&request(protocol, login, password)).await;
        }
    }
    assert_eq!(f.store.access_log("studio@pec.it", 100).await.unwrap().len(), 15);
    f.store.close().await;
    let normalised_app = "wxyzabcdefghijkl";
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", f.path.display());
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        for needle in [OWNER_PW, ANNA_PW, APP_PW, WRONG_PW, normalised_app] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle:?} found in {file}"
            );
        }
    }
}

/// A `MakeWriter` that appends everything to one shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Every log line, at every level and including sqlx's, is free of passwords.
#[tokio::test]
async fn no_password_in_the_logs() {
    let f = fixture().await;
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .finish();
    // current-thread runtime: the guard covers every await below.
    let _guard = tracing::subscriber::set_default(subscriber);
    // Another test may hit these callsites first, with no subscriber, while
    // this one is being registered: tracing can then cache "never" for them
    // (seen about one run in five once more tests ran beside this one).
    // Recompute the interest and try again, a bounded number of times; the
    // assertion below still fails if nothing is ever captured.
    let mut logs = String::new();
    for _ in 0..3 {
        tracing::callsite::rebuild_interest_cache();
        for (login, password) in [
            ("studio@pec.it", OWNER_PW),
            ("studio@pec.it", WRONG_PW),
            ("studio@pec.it", APP_PW),
            ("anna/studio@pec.it", ANNA_PW),
            ("ghost@pec.it", WRONG_PW),
            ("bad name@pec.it", OWNER_PW),
        ] {
            let _ = f
                .auth
                .authenticate(&request(Protocol::Imap, login, password))
                .await;
        }
        logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        if logs.contains("login attempt") {
            break;
        }
    }
    assert!(logs.contains("login attempt"), "logging was captured: {logs}");
    for needle in [OWNER_PW, ANNA_PW, APP_PW, WRONG_PW, "wxyzabcdefghijkl"] {
        assert!(!logs.contains(needle), "{needle:?} in the logs");
    }
}

/// With the verified-password cache: a repeat login skips the hash, and
/// every change to the record still applies at once.
#[tokio::test]
async fn the_verified_cache_never_outlives_a_change() {
    let f = fixture().await;
    let auth = f
        .auth
        .clone()
        .with_verified_cache(std::time::Duration::from_secs(3600));
    let cache = auth.verified.clone().unwrap();
    let login = |pw: &str| {
        let req = request(Protocol::Imap, "studio@pec.it", pw);
        let auth = &auth;
        async move { auth.authenticate(&req).await }
    };
    assert!(login(OWNER_PW).await.is_ok());
    assert!(login(APP_PW).await.is_ok());
    assert_eq!(cache.len(), 2, "two successes remembered");
    assert!(login(WRONG_PW).await.is_err());
    assert_eq!(cache.len(), 2, "failures are never remembered");
    assert!(login(OWNER_PW).await.is_ok(), "served from the cache");

    let store = auth.store().clone();
    store
        .set_protocol("studio@pec.it", Protocol::Imap, false)
        .await
        .unwrap();
    let denied = login(OWNER_PW).await.unwrap_err();
    assert_eq!(denied.reason, DenyReason::ProtocolDisabled);
    store
        .set_protocol("studio@pec.it", Protocol::Imap, true)
        .await
        .unwrap();

    store.revoke_app_password(f.app_id).await.unwrap();
    let denied = login(APP_PW).await.unwrap_err();
    assert_eq!(
        denied.reason,
        DenyReason::UnknownOrBadPassword,
        "revoked app password"
    );

    store
        .set_password_hash("studio@pec.it", &weak_hash("New-Password-99x"))
        .await
        .unwrap();
    let denied = login(OWNER_PW).await.unwrap_err();
    assert_eq!(
        denied.reason,
        DenyReason::UnknownOrBadPassword,
        "old password after a change"
    );
    assert!(login("New-Password-99x").await.is_ok());

    store.set_active("studio@pec.it", false).await.unwrap();
    assert!(login("New-Password-99x").await.is_err(), "inactive mailbox");
}

/// Concurrent logins share the authenticator's slots: the dummy
/// verification of an unknown name (19 MiB, the recommended cost) and the
/// weak test hashes (8 KiB) all run in the two slots' memories, which are
/// all there is once the logins are done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verification_runs_in_a_slots_memory() {
    let f = fixture().await;
    let mut logins = tokio::task::JoinSet::new();
    for i in 0..8 {
        let auth = f.auth.clone();
        let login = [
            "ghost@pec.it",
            "studio@pec.it",
            "anna/studio@pec.it",
            "nobody/studio@pec.it",
        ][i % 4];
        logins.spawn(async move {
            auth.authenticate(&request(Protocol::Imap, login, WRONG_PW))
                .await
                .unwrap_err()
        });
    }
    while let Some(denial) = logins.join_next().await {
        assert_eq!(denial.unwrap().reason, DenyReason::UnknownOrBadPassword);
    }
    let dummy = 19 * 1024 * 1024;
    let idle = f.auth.verifiers.idle_bytes();
    assert_eq!(idle.len(), 2, "{idle:?}");
    assert!(idle.iter().all(|&b| b == 0 || b == dummy), "{idle:?}");
    assert!(idle.contains(&dummy), "the dummy ran in a slot: {idle:?}");
}

/// A login whose client went away mid-verification gives its slot back
/// when the hash is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_login_gives_its_slot_back() {
    let f = fixture().await;
    // Slow enough (t = 16: some hundreds of ms) to be seen running.
    let slow = HashCost {
        memory_kib: 19 * 1024,
        iterations: 16,
        parallelism: 1,
    };
    let hash = hash_password_with(&Secret::from_slice(b"whatever"), slow).unwrap();
    f.store
        .add_mailbox("slow@pec.it", Some(&hash), unix_now())
        .await
        .unwrap();
    let auth = f.auth.clone();
    let login = tokio::spawn(async move {
        auth.authenticate(&request(Protocol::Imap, "slow@pec.it", WRONG_PW))
            .await
    });
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while f.auth.verifiers.idle_bytes().len() == 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the verification never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    login.abort();
    assert!(
        login.await.unwrap_err().is_cancelled(),
        "dropped mid-verification"
    );
    // Both slots come free, the second once the abandoned hash is done.
    let first = f.auth.verifiers.acquire().await.unwrap();
    let second = f.auth.verifiers.acquire().await.unwrap();
    assert!(f.auth.verifiers.idle_bytes().is_empty());
    drop((first, second));
    assert_eq!(f.auth.verifiers.idle_bytes().len(), 2);
}

/// A login that waits for a verifier slot is decided on the record as it
/// is once it has one: a collaborator suspended meanwhile is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_waiting_for_a_slot_is_decided_on_the_record_after_the_wait() {
    let f = fixture().await;
    let first = f.auth.verifiers.acquire().await.unwrap();
    let second = f.auth.verifiers.acquire().await.unwrap();
    let auth = f.auth.clone();
    let login = tokio::spawn(async move {
        auth.authenticate(&request(Protocol::Imap, "anna/studio@pec.it", ANNA_PW))
            .await
    });
    // Time for the login to read the record (anna active) and queue for a
    // slot. Were it slower, the record it read would already be the new
    // one and the test would pass without showing anything, never fail.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    f.auth
        .store()
        .set_collaborator_active("studio@pec.it", "anna", false)
        .await
        .unwrap();
    drop((first, second));
    assert_eq!(
        login.await.unwrap().map_err(|d| d.reason),
        Err(DenyReason::CollaboratorSuspended)
    );
}
