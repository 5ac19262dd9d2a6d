//! SqliteStore and CachedStore against a temporary database file.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::protocol::Protocol;
use crate::store::account::{MailboxRecord, Pop3Delete, ProtocolSwitches, Rights};
use crate::store::{AccessLogEntry, AccountStore, AppPasswordInfo, CachedStore, LoginResult, NewAppPassword};

const T: i64 = 1_800_000_000;

async fn temp_store() -> (tempfile::TempDir, std::path::PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.db");
    let store = SqliteStore::open(&path).await.unwrap();
    (dir, path, store)
}

fn new_app(mailbox: &str, collaborator: Option<&str>, label: &str) -> NewAppPassword {
    NewAppPassword {
        mailbox: mailbox.into(),
        collaborator: collaborator.map(Into::into),
        label: label.into(),
        hash: format!("$argon2id$fake-{label}"),
        created: T,
        expires: Some(T + 90 * 86_400),
    }
}

#[tokio::test]
async fn mailbox_round_trip() {
    let (_dir, _path, store) = temp_store().await;
    assert_eq!(store.mailbox("a@pec.it").await.unwrap(), None);
    store.add_mailbox("a@pec.it", Some("$6$x$y"), T).await.unwrap();
    let fresh = store.mailbox("a@pec.it").await.unwrap().unwrap();
    assert_eq!(fresh, MailboxRecord::new("a@pec.it", Some("$6$x$y".into())));
    assert!(matches!(
        store.add_mailbox("a@pec.it", None, T).await,
        Err(StoreError::MailboxExists(_))
    ));

    store
        .set_protocol("a@pec.it", Protocol::Pop3, false)
        .await
        .unwrap();
    store.set_two_step("a@pec.it", true).await.unwrap();
    store.set_active("a@pec.it", false).await.unwrap();
    store
        .set_pop3_delete("a@pec.it", None, Pop3Delete::Deny)
        .await
        .unwrap();
    store.set_route("a@pec.it", Some("archive:993")).await.unwrap();
    store
        .set_password_hash("a@pec.it", "$argon2id$new")
        .await
        .unwrap();
    let rights = Rights::parse_list("send").unwrap();
    store
        .add_collaborator("a@pec.it", "anna", Some("$2y$h"), rights, T)
        .await
        .unwrap();
    store
        .set_pop3_delete("a@pec.it", Some("anna"), Pop3Delete::Deny)
        .await
        .unwrap();
    let owner_app = store
        .create_app_password(new_app("a@pec.it", None, "phone"))
        .await
        .unwrap();
    let anna_app = store
        .create_app_password(new_app("a@pec.it", Some("anna"), "pc"))
        .await
        .unwrap();
    assert_ne!(owner_app, anna_app);

    let m = store.mailbox("a@pec.it").await.unwrap().unwrap();
    assert!(!m.active && m.two_step);
    assert_eq!(
        m.protocols,
        ProtocolSwitches {
            imap: true,
            pop3: false,
            smtp: true
        }
    );
    assert_eq!(m.pop3_delete, Pop3Delete::Deny);
    assert_eq!(m.route.as_deref(), Some("archive:993"));
    assert_eq!(m.password_hash.as_deref(), Some("$argon2id$new"));
    assert_eq!(m.app_passwords.len(), 1);
    assert_eq!(m.app_passwords[0].label, "phone");
    assert_eq!(m.app_passwords[0].expires, Some(T + 90 * 86_400));
    let anna = m.collaborator("anna").unwrap();
    assert!(anna.active);
    assert_eq!(anna.rights, rights);
    assert_eq!(anna.pop3_delete, Pop3Delete::Deny);
    assert_eq!(anna.password_hash.as_deref(), Some("$2y$h"));
    assert_eq!(anna.app_passwords.len(), 1);
    assert_eq!(anna.app_passwords[0].id, anna_app);

    store
        .set_collaborator_active("a@pec.it", "anna", false)
        .await
        .unwrap();
    let all = Rights::parse_list("mail-client").unwrap();
    store
        .set_collaborator_rights("a@pec.it", "anna", all)
        .await
        .unwrap();
    store
        .set_collaborator_password_hash("a@pec.it", "anna", "$6$n$m")
        .await
        .unwrap();
    let m = store.mailbox("a@pec.it").await.unwrap().unwrap();
    let anna = m.collaborator("anna").unwrap();
    assert!(!anna.active);
    assert_eq!(anna.rights, all);
    assert_eq!(anna.password_hash.as_deref(), Some("$6$n$m"));

    // Removing the collaborator takes its app passwords; the owner's stay.
    store.remove_collaborator("a@pec.it", "anna").await.unwrap();
    assert_eq!(store.app_password(anna_app).await.unwrap(), None);
    assert!(store.app_password(owner_app).await.unwrap().is_some());
    // Removing the mailbox takes everything.
    store.remove_mailbox("a@pec.it").await.unwrap();
    assert_eq!(store.mailbox("a@pec.it").await.unwrap(), None);
    assert_eq!(store.app_password(owner_app).await.unwrap(), None);
}

#[tokio::test]
async fn not_found_errors() {
    let (_dir, _path, store) = temp_store().await;
    let none = "x@pec.it";
    assert!(matches!(
        store.remove_mailbox(none).await,
        Err(StoreError::MailboxNotFound(_))
    ));
    assert!(matches!(
        store.set_two_step(none, true).await,
        Err(StoreError::MailboxNotFound(_))
    ));
    assert!(matches!(
        store
            .add_collaborator(none, "a", None, Rights::default(), T)
            .await,
        Err(StoreError::MailboxNotFound(_))
    ));
    assert!(matches!(
        store.create_app_password(new_app(none, None, "l")).await,
        Err(StoreError::MailboxNotFound(_))
    ));
    store.add_mailbox("a@pec.it", None, T).await.unwrap();
    assert!(matches!(
        store.set_collaborator_active("a@pec.it", "bob", false).await,
        Err(StoreError::CollaboratorNotFound(_))
    ));
    assert!(matches!(
        store
            .create_app_password(new_app("a@pec.it", Some("bob"), "l"))
            .await,
        Err(StoreError::CollaboratorNotFound(_))
    ));
    assert!(matches!(
        store.revoke_app_password(99).await,
        Err(StoreError::AppPasswordNotFound(99))
    ));
    assert!(matches!(
        store.set_app_password_expiry(99, None).await,
        Err(StoreError::AppPasswordNotFound(99))
    ));
    store
        .add_collaborator("a@pec.it", "anna", None, Rights::default(), T)
        .await
        .unwrap();
    assert!(matches!(
        store
            .add_collaborator("a@pec.it", "anna", None, Rights::default(), T)
            .await,
        Err(StoreError::CollaboratorExists(_))
    ));
}

#[tokio::test]
async fn app_password_lifecycle() {
    let (_dir, _path, store) = temp_store().await;
    store.add_mailbox("a@pec.it", None, T).await.unwrap();
    let id = store
        .create_app_password(new_app("a@pec.it", None, "phone"))
        .await
        .unwrap();
    store.touch_app_password(id, T + 5).await.unwrap();
    store.set_app_password_expiry(id, Some(T + 1000)).await.unwrap();
    let info = store.app_password(id).await.unwrap().unwrap();
    assert_eq!(
        info,
        AppPasswordInfo {
            id,
            mailbox: "a@pec.it".into(),
            collaborator: None,
            label: "phone".into(),
            created: T,
            expires: Some(T + 1000),
            last_used: Some(T + 5),
        }
    );
    let new_id = store
        .regenerate_app_password(id, "$argon2id$regen", T + 10, None)
        .await
        .unwrap();
    assert_ne!(new_id, id);
    assert_eq!(store.app_password(id).await.unwrap(), None);
    let list = store.app_passwords("a@pec.it").await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].id, list[0].label.as_str(), list[0].created),
        (new_id, "phone", T + 10)
    );
    let record = store.mailbox("a@pec.it").await.unwrap().unwrap();
    assert_eq!(record.app_passwords[0].hash, "$argon2id$regen");
    store.revoke_app_password(new_id).await.unwrap();
    assert!(store.app_passwords("a@pec.it").await.unwrap().is_empty());
}

#[tokio::test]
async fn generation_moves_on_changes_only() {
    let (_dir, _path, store) = temp_store().await;
    let g0 = store.generation().await.unwrap();
    store.add_mailbox("a@pec.it", None, T).await.unwrap();
    let g1 = store.generation().await.unwrap();
    assert!(g1 > g0);
    let id = store
        .create_app_password(new_app("a@pec.it", None, "p"))
        .await
        .unwrap();
    let g2 = store.generation().await.unwrap();
    assert!(g2 > g1);
    store.touch_app_password(id, T).await.unwrap();
    store
        .record_login(entry(
            "a@pec.it",
            None,
            "192.0.2.1",
            None,
            LoginResult::Success,
            T,
        ))
        .await
        .unwrap();
    assert_eq!(store.generation().await.unwrap(), g2);
    // A failed change does not move it.
    assert!(store.set_two_step("nobody@pec.it", true).await.is_err());
    assert_eq!(store.generation().await.unwrap(), g2);
}

fn entry(
    mailbox: &str,
    collaborator: Option<&str>,
    ip: &str,
    name: Option<&str>,
    result: LoginResult,
    at: i64,
) -> AccessLogEntry {
    AccessLogEntry {
        at,
        mailbox: mailbox.into(),
        collaborator: collaborator.map(Into::into),
        protocol: Protocol::Imap,
        client_ip: ip.parse().unwrap(),
        client_name: name.map(Into::into),
        result,
        reason: (result == LoginResult::Failure).then(|| "unknown_or_bad_password".into()),
    }
}

/// (collaborator, ip, client name, result, expected new_device)
type DeviceRow = (
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
    LoginResult,
    bool,
);

/// Attempts on `a@pec.it` at T, T+1, ... and whether each is from a new device.
fn device_table() -> &'static [DeviceRow] {
    use LoginResult::{Failure, Success};
    &[
        (None, "192.0.2.1", Some("Thunderbird"), Failure, true), // failures don't make it known
        (None, "192.0.2.1", Some("Thunderbird"), Success, true),
        (None, "192.0.2.1", Some("Thunderbird"), Success, false),
        (None, "192.0.2.1", None, Success, false), // known IP
        (None, "198.51.100.7", Some("Thunderbird"), Success, false), // known name
        (None, "2001:db8::1", Some("iPhone Mail"), Success, true), // both new
        (Some("anna"), "192.0.2.1", Some("Thunderbird"), Success, true), // per principal
        (Some("anna"), "192.0.2.1", None, Failure, false),
    ]
}

async fn store_with_anna() -> (tempfile::TempDir, SqliteStore) {
    let (dir, _path, store) = temp_store().await;
    store.add_mailbox("a@pec.it", None, T).await.unwrap();
    store
        .add_collaborator("a@pec.it", "anna", None, Rights::default(), T)
        .await
        .unwrap();
    (dir, store)
}

async fn check_device_rows(store: &SqliteStore) {
    let table = device_table();
    let log = store.access_log("a@pec.it", 100).await.unwrap();
    assert_eq!(log.len(), table.len());
    for (row, (i, expected)) in log.iter().rev().zip(table.iter().enumerate()) {
        assert_eq!(row.at, T + i as i64);
        assert_eq!(row.collaborator.as_deref(), expected.0);
        assert_eq!(row.client_ip, expected.1);
        assert_eq!(row.client_name.as_deref(), expected.2);
        assert_eq!(row.result, expected.3.as_str());
        assert_eq!(row.new_device, expected.4, "row {i}");
        assert_eq!(row.protocol, "imap");
    }
}

#[tokio::test]
async fn access_log_new_device_and_retention() {
    use LoginResult::{Failure, Success};
    let (_dir, store) = store_with_anna().await;
    let table = device_table();
    for (i, (collaborator, ip, name, result, _)) in table.iter().enumerate() {
        let e = entry("a@pec.it", *collaborator, ip, *name, *result, T + i as i64);
        store.record_login(e).await.unwrap();
    }
    // Attempts on unknown mailboxes are kept too.
    store
        .record_login(entry("ghost@pec.it", None, "203.0.113.9", None, Failure, T))
        .await
        .unwrap();
    check_device_rows(&store).await;
    assert_eq!(store.access_log("a@pec.it", 2).await.unwrap()[0].at, T + 7);
    assert_eq!(store.access_log("ghost@pec.it", 10).await.unwrap().len(), 1);

    assert_eq!(store.prune_access_log(T + 4).await.unwrap(), 5);
    assert_eq!(store.access_log("a@pec.it", 100).await.unwrap().len(), 4);
    // Devices last seen before the cut are forgotten: the IPv4 address is new again.
    store
        .record_login(entry("a@pec.it", None, "192.0.2.1", None, Success, T + 9))
        .await
        .unwrap();
    assert!(store.access_log("a@pec.it", 1).await.unwrap()[0].new_device);
}

/// Logins that queue their rows together are committed in one transaction
/// (group commit), in the order they queued: a row sees the devices made
/// known by the rows before it in the same transaction.
#[tokio::test]
async fn access_log_rows_queued_together_keep_their_order() {
    let (_dir, store) = store_with_anna().await;
    let mut pending: Vec<_> = device_table()
        .iter()
        .enumerate()
        .map(|(i, (collaborator, ip, name, result, _))| {
            let e = entry("a@pec.it", *collaborator, ip, *name, *result, T + i as i64);
            Some(Box::pin(store.record_login(e)))
        })
        .collect();
    // Polled in order, so the rows queue in order before the writer runs.
    std::future::poll_fn(|cx| {
        for slot in pending.iter_mut() {
            if let Some(f) = slot {
                if let std::task::Poll::Ready(result) = f.as_mut().poll(cx) {
                    result.unwrap();
                    *slot = None;
                }
            }
        }
        if pending.iter().all(Option::is_none) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    check_device_rows(&store).await;
}

#[tokio::test]
async fn schema_created_once_and_reopened() {
    let (_dir, path, store) = temp_store().await;
    store.add_mailbox("a@pec.it", None, T).await.unwrap();
    store.close().await;
    let again = SqliteStore::open(&path).await.unwrap();
    assert_eq!(again.mailboxes().await.unwrap(), vec!["a@pec.it".to_string()]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "database readable by others: {mode:o}");
    }
}

#[tokio::test]
async fn cache_sees_changes_from_another_process() {
    let (_dir, path, store) = temp_store().await;
    store.add_mailbox("a@pec.it", None, T).await.unwrap();
    // A second handle on the same file plays the admin CLI.
    let admin = SqliteStore::open(&path).await.unwrap();
    let inner: Arc<dyn AccountStore> = Arc::new(store);

    let slow = CachedStore::with_poll(inner.clone(), Duration::from_secs(3600));
    assert!(slow.mailbox("a@pec.it").await.unwrap().unwrap().protocols.imap);
    admin
        .set_protocol("a@pec.it", Protocol::Imap, false)
        .await
        .unwrap();
    // Within the poll interval the cached record is served...
    assert!(slow.mailbox("a@pec.it").await.unwrap().unwrap().protocols.imap);
    // ...while a change through the cache clears it at once.
    slow.set_two_step("a@pec.it", true).await.unwrap();
    let fresh = slow.mailbox("a@pec.it").await.unwrap().unwrap();
    assert!(!fresh.protocols.imap && fresh.two_step);

    let polling = CachedStore::with_poll(inner, Duration::ZERO);
    assert_eq!(polling.mailbox("b@pec.it").await.unwrap(), None);
    admin.add_mailbox("b@pec.it", None, T).await.unwrap();
    assert!(polling.mailbox("b@pec.it").await.unwrap().is_some());
}

#[tokio::test]
async fn default_poll_is_within_a_second() {
    assert!(crate::store::cache::GENERATION_POLL <= Duration::from_secs(1));
}
