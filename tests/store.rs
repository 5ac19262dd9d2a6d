//! The account store's contract, on both backends: every test runs on a
//! SQLite file and on a PostgreSQL database of the binary's private cluster
//! (`both!`), through the one `AccountStore` the proxy uses. Then what only
//! one backend has: the schema the two must share, the schema versions a
//! store refuses, the announcements a fleet hears, and `store copy`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use pec_proxy::testing::protocol::Protocol;
use pec_proxy::testing::store::account::{MailboxRecord, Pop3Delete, ProtocolSwitches, Rights};
use pec_proxy::testing::store::{
    AccessLogEntry, AccountStore, AppPasswordInfo, CachedStore, LoginResult, NewAppPassword, StoreError,
};
use support::operator::Operator;

/// Runs each named `async fn(Operator)` once per backend.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Operator::sqlite()).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(super::Operator::postgres()).await
            }
        }
    )*};
}

const T: i64 = 1_800_000_000;

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

async fn mailbox_round_trip(op: Operator) {
    let store = op.open_store().await;
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

async fn not_found_errors(op: Operator) {
    let store = op.open_store().await;
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

async fn app_password_lifecycle(op: Operator) {
    let store = op.open_store().await;
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

async fn generation_moves_on_changes_only(op: Operator) {
    let store = op.open_store().await;
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

async fn store_with_anna(op: &Operator) -> pec_proxy::testing::store::Opened {
    let store = op.open_store().await;
    store.add_mailbox("a@pec.it", None, T).await.unwrap();
    store
        .add_collaborator("a@pec.it", "anna", None, Rights::default(), T)
        .await
        .unwrap();
    store
}

async fn check_device_rows(store: &dyn AccountStore) {
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

async fn access_log_new_device_and_retention(op: Operator) {
    use LoginResult::{Failure, Success};
    let store = store_with_anna(&op).await;
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
    check_device_rows(&*store).await;
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
async fn access_log_rows_queued_together_keep_their_order(op: Operator) {
    let store = store_with_anna(&op).await;
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
    check_device_rows(&*store).await;
}

async fn schema_created_once_and_reopened(op: Operator) {
    let store = op.open_store().await;
    store.add_mailbox("a@pec.it", None, T).await.unwrap();
    store.close().await;
    let again = op.open_store().await;
    assert_eq!(again.mailboxes().await.unwrap(), vec!["a@pec.it".to_string()]);
    if op.pg.is_none() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(op.store_path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "database readable by others: {mode:o}");
    }
}

async fn cache_sees_changes_from_another_process(op: Operator) {
    let store = op.open_store().await;
    store.add_mailbox("a@pec.it", None, T).await.unwrap();
    // A second handle on the same database plays the admin CLI.
    let admin = op.open_store().await;
    let inner: Arc<dyn AccountStore> = store.shared();

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

both!(
    mailbox_round_trip,
    not_found_errors,
    app_password_lifecycle,
    generation_moves_on_changes_only,
    access_log_new_device_and_retention,
    access_log_rows_queued_together_keep_their_order,
    schema_created_once_and_reopened,
    cache_sees_changes_from_another_process,
);

/// A change written straight into the tables (the provider's own tools)
/// moves the generation on both backends: the triggers, not our code.
async fn a_write_by_another_tool_moves_the_generation(op: Operator) {
    let store = op.open_store().await;
    store.add_mailbox("a@pec.it", None, T).await.unwrap();
    let before = store.generation().await.unwrap();
    raw_sql(
        &op,
        "UPDATE mailboxes SET imap = FALSE WHERE address = 'a@pec.it'",
    )
    .await;
    let after = store.generation().await.unwrap();
    assert!(after > before, "generation {before} -> {after}");
    assert!(!store.mailbox("a@pec.it").await.unwrap().unwrap().protocols.imap);
    // Touching an app password's last use is not a change.
    let id = store
        .create_app_password(new_app("a@pec.it", None, "phone"))
        .await
        .unwrap();
    let g = store.generation().await.unwrap();
    raw_sql(
        &op,
        &format!("UPDATE app_passwords SET last_used_at = 5 WHERE id = {id}"),
    )
    .await;
    assert_eq!(store.generation().await.unwrap(), g);
}

/// Runs `sql` as another client of the database would (psql, or Python's
/// sqlite3 module); returns the rows, one per line, columns joined by `|`.
async fn raw_sql(op: &Operator, sql: &str) -> String {
    match &op.pg {
        Some(db) => db.psql(sql).unwrap(),
        None => {
            let script = "import sqlite3, sys\n\
                c = sqlite3.connect(sys.argv[1])\n\
                rows = c.execute(sys.argv[2]).fetchall()\n\
                c.commit()\n\
                print('\\n'.join('|'.join('' if v is None else str(v) for v in r) for r in rows))\n";
            let out = std::process::Command::new("python3")
                .args(["-c", script])
                .arg(op.store_path())
                .arg(sql)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    }
}

/// A store refuses a schema newer than it knows, and a node never creates
/// or upgrades a PostgreSQL schema by itself.
async fn a_store_refuses_a_schema_it_does_not_know(op: Operator) {
    let latest = op.open_store().await;
    latest.close().await;
    raw_sql(
        &op,
        &"INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
          VALUES (99, 'from the future', TRUE, x'00', 0)"
            .replace(
                "x'00'",
                if op.pg.is_some() {
                    "'\\x00'::bytea"
                } else {
                    "x'00'"
                },
            ),
    )
    .await;
    let (ok, _, err) = op.try_run(&["mailbox", "list"], "");
    assert!(!ok);
    assert!(
        err.contains("version 99, newer than this pec-proxy knows"),
        "{err}"
    );
}

both!(
    a_write_by_another_tool_moves_the_generation,
    a_store_refuses_a_schema_it_does_not_know
);

/// PostgreSQL: a database without the schema, or with an older one, is
/// refused until `pec-proxy store migrate` (which the admin commands never
/// run by themselves).
#[tokio::test]
async fn postgres_schema_is_made_only_by_store_migrate() {
    let db = support::postgres::PgCluster::shared().database();
    let op = Operator {
        dir: tempfile::tempdir().unwrap(),
        pg: Some(db),
    };
    let (ok, _, err) = op.try_run(&["mailbox", "list"], "");
    assert!(!ok);
    assert!(
        err.contains("no pec-proxy schema: create it with `pec-proxy store migrate`"),
        "{err}"
    );
    assert_eq!(
        op.pg
            .as_ref()
            .unwrap()
            .psql("SELECT to_regclass('mailboxes') IS NULL")
            .unwrap()
            .trim(),
        "t"
    );
    let out = op.run(&["store", "migrate"], "");
    assert!(out.contains("schema is at version"), "{out}");
    op.run(&["mailbox", "list"], "");
    // One version back: refused, then migrated again.
    op.pg
        .as_ref()
        .unwrap()
        .psql("DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)")
        .unwrap();
    let (ok, _, err) = op.try_run(&["mailbox", "list"], "");
    assert!(!ok);
    assert!(err.contains("run `pec-proxy store migrate`"), "{err}");
}

/// The two backends end with the same tables, columns (name, type,
/// nullability, key) and indexes: one schema, two dialects.
#[tokio::test]
async fn both_backends_have_the_same_schema() {
    let sqlite = Operator::sqlite();
    sqlite.open_store().await.close().await;
    let lite = raw_sql(
        &sqlite,
        "SELECT m.name, p.name, lower(p.type), p.\"notnull\" OR p.pk > 0, p.pk > 0 \
         FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations' \
         UNION ALL SELECT 'index', name, tbl_name, 0, 0 FROM sqlite_master \
         WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%' ORDER BY 1, 2",
    )
    .await
    .replace("|1|", "|t|")
    .replace("|0|", "|f|")
    .replace("|1\n", "|t\n")
    .replace("|0\n", "|f\n");
    let pg = Operator::postgres();
    let post = raw_sql(
        &pg,
        "SELECT c.table_name, c.column_name, c.data_type, c.is_nullable = 'NO', \
         EXISTS (SELECT 1 FROM information_schema.key_column_usage k \
           JOIN information_schema.table_constraints t ON t.constraint_name = k.constraint_name \
           AND t.table_name = k.table_name \
           WHERE t.constraint_type = 'PRIMARY KEY' AND k.table_name = c.table_name \
           AND k.column_name = c.column_name) \
         FROM information_schema.columns c \
         WHERE c.table_schema = current_schema() AND c.table_name <> '_sqlx_migrations' \
         UNION ALL SELECT 'index', indexname, tablename, false, false FROM pg_indexes \
         WHERE schemaname = current_schema() AND indexname NOT LIKE '%_pkey' ORDER BY 1, 2",
    )
    .await;
    assert!(lite.lines().count() > 40, "{lite}");
    assert_eq!(lite, post);
}

/// PostgreSQL announces every change (NOTIFY): a cache that polls only once
/// an hour still sees a change made elsewhere at its next read.
#[tokio::test]
async fn postgres_announcements_reach_the_cache_at_once() {
    let op = Operator::postgres();
    let store = op.open_store().await;
    let pec_proxy::testing::store::Opened::Postgres(pg) = &store else {
        unreachable!()
    };
    pg.listen(Vec::new());
    store.add_mailbox("a@pec.it", None, T).await.unwrap();
    let cache = CachedStore::with_poll(store.shared(), Duration::from_secs(3600));
    assert!(cache.mailbox("a@pec.it").await.unwrap().unwrap().protocols.imap);
    // Listening has started once the first announcement is heard.
    let started = tokio::time::Instant::now();
    while pg.announced_generation().is_none() {
        assert!(started.elapsed() < Duration::from_secs(10), "never listening");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    op.run(&["mailbox", "set", "a@pec.it", "--imap", "off"], "");
    let changed = tokio::time::Instant::now();
    loop {
        if !cache.mailbox("a@pec.it").await.unwrap().unwrap().protocols.imap {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(5),
            "the cache never heard the change"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `store copy` moves a SQLite store into PostgreSQL: every mailbox,
/// collaborator, app password (same ids) and access-log row; a second run
/// copies nothing twice.
#[tokio::test]
async fn store_copy_moves_everything_and_twice_copies_nothing() {
    let from = Operator::sqlite();
    let store = from.open_store().await;
    store
        .add_mailbox("a@pec.it", Some("$argon2id$a"), T)
        .await
        .unwrap();
    store.add_mailbox("b@pec.it", None, T).await.unwrap();
    store
        .add_collaborator(
            "a@pec.it",
            "anna",
            Some("$2y$h"),
            Rights::parse_list("read").unwrap(),
            T,
        )
        .await
        .unwrap();
    store
        .set_protocol("b@pec.it", Protocol::Pop3, false)
        .await
        .unwrap();
    let app = store
        .create_app_password(new_app("a@pec.it", Some("anna"), "pc"))
        .await
        .unwrap();
    for (i, (collaborator, ip, name, result, _)) in device_table().iter().enumerate() {
        let e = entry("a@pec.it", *collaborator, ip, *name, *result, T + i as i64);
        store.record_login(e).await.unwrap();
    }
    store.close().await;

    let to = Operator::postgres();
    let copy = |expect_copied: bool| {
        let out = to.run(
            &[
                "store",
                "copy",
                "--from",
                from.store_path().to_str().unwrap(),
                "--to",
                &to.store_arg(),
            ],
            "",
        );
        assert!(out.contains("every source row is in the target"), "{out}");
        let access = out
            .lines()
            .find(|l| l.starts_with("access_log"))
            .unwrap()
            .to_owned();
        let n: Vec<u64> = access
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect();
        let rows = device_table().len() as u64;
        if expect_copied {
            assert_eq!(n, vec![rows, rows, 0, rows], "{out}");
        } else {
            assert_eq!(n, vec![rows, 0, rows, rows], "{out}");
        }
    };
    copy(true);
    copy(false);
    let source = from.open_store().await;
    let target = to.open_store().await;
    for mailbox in ["a@pec.it", "b@pec.it"] {
        assert_eq!(
            source.mailbox(mailbox).await.unwrap(),
            target.mailbox(mailbox).await.unwrap()
        );
        assert_eq!(
            source.access_log(mailbox, 100).await.unwrap(),
            target.access_log(mailbox, 100).await.unwrap()
        );
    }
    assert_eq!(target.app_password(app).await.unwrap().unwrap().label, "pc");
    // New app passwords get ids after the copied ones.
    let next = target
        .create_app_password(new_app("b@pec.it", None, "new"))
        .await
        .unwrap();
    assert!(next > app);
}

/// TLS to PostgreSQL: `verify-full` with the server's CA connects over TLS
/// (the server says so); without that CA (Mozilla's roots) it is refused.
#[tokio::test]
async fn postgres_tls_is_verified() {
    use pec_proxy::testing::config::{PostgresConfig, SslMode};
    use pec_proxy::testing::store::{PostgresStore, Schema};
    use sqlx::Row;
    let op = Operator::postgres();
    let db = op.pg.as_ref().unwrap();
    let config = |ca: Option<std::path::PathBuf>| PostgresConfig {
        url: db.url(),
        password: Some(pec_proxy::testing::secret::Secret::new(
            db.password().into_bytes(),
        )),
        sslmode: Some(SslMode::VerifyFull),
        ca,
        max_connections: 1,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(5),
    };
    let ca = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("certs/ca.pem");
    let store = PostgresStore::open(&config(Some(ca)), Schema::MustBeCurrent)
        .await
        .expect("verify-full with the right CA");
    let tls: bool = sqlx::query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
    assert!(tls, "the connection is not TLS");
    store.close().await;
    let refused = PostgresStore::open(&config(None), Schema::MustBeCurrent).await;
    let error = refused
        .expect_err("an unknown issuer must be refused")
        .to_string();
    assert!(!error.contains(&db.password()), "{error}");
}
