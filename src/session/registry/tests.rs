//! The registry against a real SQLite store behind the cache, as the
//! proxy runs it: a change ends the sessions it concerns, and only those.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::access::policy::hash_fingerprint;
use crate::store::account::Rights;
use crate::store::{CachedStore, NewAppPassword, SqliteStore};

const MAILBOX: &str = "studio@pec.it";

async fn store() -> (tempfile::TempDir, Arc<dyn AccountStore>) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("accounts.db")).await.unwrap();
    sqlite
        .add_mailbox(MAILBOX, Some("$argon2id$owner"), 0)
        .await
        .unwrap();
    let rights = Rights::parse_list("mail-client").unwrap();
    sqlite
        .add_collaborator(MAILBOX, "anna", Some("$argon2id$anna"), rights, 0)
        .await
        .unwrap();
    (dir, Arc::new(CachedStore::new(Arc::new(sqlite))))
}

fn entry(protocol: Protocol, collaborator: Option<&str>, credential: CredentialUsed) -> Entry {
    Entry {
        protocol,
        mailbox: MAILBOX.into(),
        collaborator: collaborator.map(Into::into),
        credential: Some(credential),
        access: Pop3Delete::Allow,
        peer: "192.0.2.1:40000".parse().unwrap(),
        since: 0,
    }
}

fn main_password(hash: &str) -> CredentialUsed {
    CredentialUsed::Main {
        fingerprint: hash_fingerprint(hash),
    }
}

/// The reason `r` was ended with, if it was (without waiting).
async fn ended(r: &mut Registered) -> Option<EndReason> {
    tokio::time::timeout(Duration::from_millis(10), r.ended())
        .await
        .ok()
}

#[tokio::test]
async fn a_change_ends_the_sessions_it_concerns_and_only_those() {
    let (_dir, store) = store().await;
    let sessions = Sessions::new();
    let mut anna_imap = sessions.register(entry(
        Protocol::Imap,
        Some("anna"),
        main_password("$argon2id$anna"),
    ));
    let mut anna_smtp = sessions.register(entry(
        Protocol::Smtp,
        Some("anna"),
        main_password("$argon2id$anna"),
    ));
    let mut owner = sessions.register(entry(Protocol::Imap, None, main_password("$argon2id$owner")));
    assert!(sessions.recheck(store.as_ref(), None).await);
    assert_eq!(ended(&mut anna_imap).await, None, "nothing changed");

    store
        .set_collaborator_active(MAILBOX, "anna", false)
        .await
        .unwrap();
    assert!(sessions.recheck(store.as_ref(), None).await);
    let suspended = Some(EndReason::Revoked(RevokeReason::CollaboratorSuspended));
    assert_eq!(ended(&mut anna_imap).await, suspended);
    assert_eq!(ended(&mut anna_smtp).await, suspended);
    assert_eq!(ended(&mut owner).await, None);

    store.set_password_hash(MAILBOX, "$argon2id$new").await.unwrap();
    assert!(sessions.recheck(store.as_ref(), Some(owner.id())).await);
    assert_eq!(
        ended(&mut owner).await,
        Some(EndReason::Revoked(RevokeReason::PasswordChanged))
    );

    assert_eq!(sessions.len(), 3, "registered until the sessions drop");
    drop((anna_imap, anna_smtp, owner));
    assert!(sessions.is_empty());
}

#[tokio::test]
async fn an_app_password_ends_its_session_when_it_expires_without_a_change() {
    let (_dir, store) = store().await;
    let now = unix_now();
    let id = store
        .create_app_password(NewAppPassword {
            mailbox: MAILBOX.into(),
            collaborator: None,
            label: "phone".into(),
            hash: "$argon2id$app".into(),
            created: now,
            expires: Some(now + 60),
        })
        .await
        .unwrap();
    let sessions = Sessions::new();
    let mut app = sessions.register(entry(Protocol::Pop3, None, CredentialUsed::App { id }));
    let mut main = sessions.register(entry(Protocol::Pop3, None, main_password("$argon2id$owner")));
    assert!(sessions.recheck(store.as_ref(), None).await);
    sessions.end_expired(now + 59);
    assert_eq!(ended(&mut app).await, None);
    sessions.end_expired(now + 60);
    assert_eq!(
        ended(&mut app).await,
        Some(EndReason::Revoked(RevokeReason::AppPasswordExpired))
    );
    assert_eq!(ended(&mut main).await, None);
}

#[tokio::test]
async fn pass_through_sessions_are_not_rechecked() {
    let (_dir, store) = store().await;
    let sessions = Sessions::new();
    let mut theirs = sessions.register(Entry {
        credential: None,
        mailbox: "unknown@pec.it".into(),
        ..entry(Protocol::Imap, None, main_password("x"))
    });
    assert!(sessions.recheck(store.as_ref(), None).await);
    assert_eq!(
        ended(&mut theirs).await,
        None,
        "not our account: nothing to revoke"
    );
}
