//! The control socket's requests and answers, over a real socket.

use super::*;
use crate::protocol::Protocol;
use crate::store::account::Pop3Delete;

fn entry(mailbox: &str, collaborator: Option<&str>, credential: Option<CredentialUsed>) -> Entry {
    Entry {
        protocol: Protocol::Imap,
        mailbox: mailbox.into(),
        collaborator: collaborator.map(Into::into),
        credential,
        access: Pop3Delete::Allow,
        peer: "192.0.2.7:50000".parse().unwrap(),
        since: 1_800_000_000,
    }
}

#[tokio::test]
async fn list_and_end_over_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::config::StoreBackend::Sqlite(dir.path().join("accounts.db")).default_control_socket();
    assert!(path.ends_with("accounts.sessions.sock"));
    let sessions = Sessions::new();
    let mut owner = sessions.register(entry(
        "studio@pec.it",
        None,
        Some(CredentialUsed::Main { fingerprint: 1 }),
    ));
    let mut anna = sessions.register(entry(
        "studio@pec.it",
        Some("anna"),
        Some(CredentialUsed::App { id: 7 }),
    ));
    let _other = sessions.register(entry("other@pec.it", None, None));
    let listener = bind(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    tokio::spawn(serve(listener, sessions.clone()));
    let ask = |line: &'static str| {
        let path = path.clone();
        tokio::task::spawn_blocking(move || request(&path, line).unwrap())
    };

    let all: Vec<SessionInfo> = serde_json::from_str(&ask("list").await.unwrap()).unwrap();
    assert_eq!(all.len(), 3);
    let listed: Vec<SessionInfo> = serde_json::from_str(&ask("list STUDIO@pec.it").await.unwrap()).unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|s| (s.collaborator.as_deref(), s.credential.as_str()))
            .collect::<Vec<_>>(),
        [(None, "main"), (Some("anna"), "app:7")]
    );
    assert_eq!(listed[1].client, "192.0.2.7:50000");

    let ended: Ended = serde_json::from_str(&ask("end anna/studio@pec.it").await.unwrap()).unwrap();
    assert_eq!(ended, Ended { ended: 1 });
    assert_eq!(anna.ended().await, super::super::registry::EndReason::Operator);
    let still = tokio::time::timeout(Duration::from_millis(10), owner.ended()).await;
    assert!(still.is_err(), "the owner's session goes on");

    let by_id = format!("end {}", owner.id());
    let path2 = path.clone();
    let answer = tokio::task::spawn_blocking(move || request(&path2, &by_id).unwrap())
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Ended>(&answer).unwrap(),
        Ended { ended: 1 }
    );

    let bad = ask("drop everything").await.unwrap();
    assert!(bad.contains("\"error\""), "{bad}");
    // A second proxy start replaces the stale socket.
    drop(bind(&path).unwrap());
}
