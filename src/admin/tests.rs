//! The admin commands as an operator types them, end to end against a
//! temporary SQLite file, checked through the Authenticator.

use std::sync::Arc;

use clap::Parser;

use super::*;
use crate::access::authenticator::Authenticator;
use crate::access::policy::DenyReason;
use crate::access::{Credentials, LoginRequest};
use crate::protocol::Protocol;
use crate::secret::Secret;
use crate::store::{CachedStore, SqliteStore};

const POLL: std::time::Duration = std::time::Duration::from_millis(60);

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: AdminCommand,
}

struct Operator {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    auth: Authenticator,
}

impl Operator {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("accounts.db")).await.unwrap());
        // The proxy's own view: cached, as in production, polled more often
        // than the default to keep the test short.
        let cached = CachedStore::with_poll(store.clone(), POLL);
        let auth = Authenticator::new(Arc::new(cached));
        Self {
            _dir: dir,
            store,
            auth,
        }
    }

    /// Runs `pec-proxy ARGS...` with `stdin`; returns standard output.
    async fn run(&self, args: &str, stdin: &str, json: bool) -> Result<String, AdminError> {
        let argv = std::iter::once("pec-proxy").chain(args.split_whitespace());
        let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args}: {e}"));
        let options = AdminOptions {
            json,
            hash_cost: HashCost::TEST_ONLY_WEAK,
        };
        let mut out = Vec::new();
        run_with(cli.cmd, &*self.store, &options, &mut stdin.as_bytes(), &mut out).await?;
        Ok(String::from_utf8(out).unwrap())
    }

    async fn ok(&self, args: &str, stdin: &str) -> String {
        self.run(args, stdin, false)
            .await
            .unwrap_or_else(|e| panic!("{args}: {e}"))
    }

    async fn login(
        &self,
        protocol: Protocol,
        login: &str,
        password: &str,
    ) -> Result<Option<i64>, DenyReason> {
        // Admin changes reach a running proxy within the cache's poll interval.
        tokio::time::sleep(POLL).await;
        self.auth
            .authenticate(&LoginRequest {
                protocol,
                credentials: Credentials {
                    authzid: None,
                    authcid: login.as_bytes().to_vec(),
                    password: Secret::from_slice(password.as_bytes()),
                },
                peer: "203.0.113.5:50000".parse().unwrap(),
                tls: true,
                client_name: None,
                separator: '/',
            })
            .await
            .map(|p| p.app_password_id)
            .map_err(|d| d.reason)
    }
}

#[tokio::test]
async fn operator_creates_mailbox_and_app_password() {
    let op = Operator::new().await;
    let out = op
        .ok("mailbox add Studio@PEC.it --password-stdin", "Main-Pass-91\n")
        .await;
    assert_eq!(out, "Added mailbox studio@pec.it\n");
    assert_eq!(
        op.login(Protocol::Imap, "studio@pec.it", "Main-Pass-91").await,
        Ok(None)
    );

    let created = op
        .run("app-password create studio@pec.it --label phone", "", true)
        .await
        .unwrap();
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let password = created["password"].as_str().unwrap().to_owned();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["login"], "studio@pec.it");
    assert!(created["expires"].as_i64().unwrap() > crate::store::unix_now() + 89 * 86_400);
    assert_eq!(
        op.login(Protocol::Imap, "studio@pec.it", &password).await,
        Ok(Some(id))
    );
    let spaced = password.replace('-', " ");
    assert_eq!(
        op.login(Protocol::Smtp, "studio@pec.it", &spaced).await,
        Ok(Some(id))
    );

    // Two-step on: the main password is refused, the app password works.
    op.ok("mailbox set studio@pec.it --two-step on", "").await;
    assert_eq!(
        op.login(Protocol::Imap, "studio@pec.it", "Main-Pass-91").await,
        Err(DenyReason::AppPasswordRequired)
    );
    assert_eq!(
        op.login(Protocol::Pop3, "studio@pec.it", &password).await,
        Ok(Some(id))
    );

    // A protocol switched off, and back on.
    op.ok("mailbox set studio@pec.it --pop3 off", "").await;
    assert_eq!(
        op.login(Protocol::Pop3, "studio@pec.it", &password).await,
        Err(DenyReason::ProtocolDisabled)
    );
    op.ok("mailbox set studio@pec.it --pop3 on", "").await;

    // Listed with its last use; the password itself never again.
    let listed = op.ok("app-password list studio@pec.it", "").await;
    assert!(
        listed.contains("phone") && !listed.contains(&password),
        "{listed}"
    );
    assert!(!listed.contains("last used never"), "{listed}");

    // Revoked: refused at the next login.
    assert_eq!(
        op.ok(&format!("app-password revoke {id}"), "").await,
        format!("App password {id} revoked\n")
    );
    assert_eq!(
        op.login(Protocol::Imap, "studio@pec.it", &password).await,
        Err(DenyReason::UnknownOrBadPassword)
    );

    // The history shows every attempt, newest first, without passwords.
    let log = op.ok("access-log studio@pec.it --limit 100", "").await;
    assert_eq!(log.lines().count(), 7, "{log}");
    assert!(
        log.contains("app_password_required") && log.contains("NEW DEVICE"),
        "{log}"
    );
    assert!(!log.contains(&password) && !log.contains("Main-Pass-91"));
}

#[tokio::test]
async fn human_output_shows_the_password_once() {
    let op = Operator::new().await;
    op.ok("mailbox add studio@pec.it", "").await;
    let out = op
        .ok(
            "app-password create studio@pec.it --label office-pc --never-expires",
            "",
        )
        .await;
    let shown: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| l.len() == 19 && l.split('-').count() == 4)
        .collect();
    assert_eq!(shown.len(), 1, "{out}");
    assert!(
        out.contains("shown only this once") && out.contains("Expires: never"),
        "{out}"
    );
    assert_eq!(
        op.login(Protocol::Imap, "studio@pec.it", shown[0])
            .await
            .map(|id| id.is_some()),
        Ok(true)
    );

    // Regenerate: the old one stops working, the new one works.
    let show = op.ok("mailbox show studio@pec.it", "").await;
    let id: i64 = show
        .split('#')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let again = op
        .run(&format!("app-password regenerate {id}"), "", true)
        .await
        .unwrap();
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["label"], "office-pc");
    assert!(again["expires"].is_null());
    assert_eq!(
        op.login(Protocol::Imap, "studio@pec.it", shown[0]).await,
        Err(DenyReason::UnknownOrBadPassword)
    );
    let new_password = again["password"].as_str().unwrap();
    assert!(
        op.login(Protocol::Imap, "studio@pec.it", new_password)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn no_app_password_when_every_protocol_is_off() {
    let op = Operator::new().await;
    op.ok("mailbox add studio@pec.it", "").await;
    op.ok("mailbox set studio@pec.it --imap off --pop3 off --smtp off", "")
        .await;
    let err = op
        .run("app-password create studio@pec.it --label x", "", false)
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::Refused(_)), "{err}");
    assert!(op.store.app_passwords("studio@pec.it").await.unwrap().is_empty());
}

#[tokio::test]
async fn collaborators() {
    let op = Operator::new().await;
    op.ok("mailbox add studio@pec.it --password-stdin", "Owner-Pass-1\n")
        .await;
    let out = op
        .ok(
            "collaborator add Anna/studio@pec.it --password-stdin --rights send",
            "Anna-Pass-2\n",
        )
        .await;
    assert_eq!(out, "Added collaborator anna/studio@pec.it with rights send\n");
    assert_eq!(
        op.login(Protocol::Smtp, "anna/studio@pec.it", "Anna-Pass-2")
            .await,
        Ok(None)
    );
    assert_eq!(
        op.login(Protocol::Imap, "anna/studio@pec.it", "Anna-Pass-2")
            .await,
        Err(DenyReason::NotPermitted)
    );
    op.ok("collaborator set-rights anna/studio@pec.it mail-client", "")
        .await;
    assert_eq!(
        op.login(Protocol::Imap, "anna/studio@pec.it", "Anna-Pass-2")
            .await,
        Ok(None)
    );
    op.ok("collaborator suspend anna/studio@pec.it", "").await;
    assert_eq!(
        op.login(Protocol::Imap, "anna/studio@pec.it", "Anna-Pass-2")
            .await,
        Err(DenyReason::CollaboratorSuspended)
    );
    op.ok("collaborator set-password anna/studio@pec.it", "Anna-New-3\n")
        .await;
    op.ok("collaborator resume anna/studio@pec.it", "").await;
    assert_eq!(
        op.login(Protocol::Imap, "anna/studio@pec.it", "Anna-New-3").await,
        Ok(None)
    );

    // Two-step on for the mailbox: anna needs her own app password.
    op.ok("mailbox set studio@pec.it --two-step on", "").await;
    assert_eq!(
        op.login(Protocol::Imap, "anna/studio@pec.it", "Anna-New-3").await,
        Err(DenyReason::AppPasswordRequired)
    );
    let created = op
        .run(
            "app-password create studio@pec.it --collaborator anna --label laptop",
            "",
            true,
        )
        .await
        .unwrap();
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    assert_eq!(created["login"], "anna/studio@pec.it");
    let app = created["password"].as_str().unwrap();
    assert!(op.login(Protocol::Imap, "anna/studio@pec.it", app).await.is_ok());
    // It is anna's, not the owner's.
    assert_eq!(
        op.login(Protocol::Imap, "studio@pec.it", app).await,
        Err(DenyReason::UnknownOrBadPassword)
    );

    let show = op.run("mailbox show studio@pec.it", "", true).await.unwrap();
    let show: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(show["collaborators"][0]["name"], "anna");
    assert_eq!(show["password_set"], true);
    assert!(!show.to_string().contains("$argon2id$"), "hashes are never shown");

    op.ok("collaborator remove anna/studio@pec.it", "").await;
    assert_eq!(
        op.login(Protocol::Imap, "anna/studio@pec.it", app).await,
        Err(DenyReason::UnknownOrBadPassword)
    );
}

#[tokio::test]
async fn bad_input_is_refused() {
    let op = Operator::new().await;
    let refused = [
        ("mailbox add not-an-address", ""),
        ("mailbox add a@pec.it --password-stdin", "\n"),
        ("mailbox add a@pec.it --password-hash plaintext", ""),
        ("mailbox set a@pec.it", ""),
        ("collaborator add a@pec.it --rights send", ""),
        ("collaborator add x/a@pec.it --rights admin", ""),
    ];
    for (args, stdin) in refused {
        assert!(op.run(args, stdin, false).await.is_err(), "{args}");
    }
    op.ok("mailbox add a@pec.it --password-hash $6$saltsaltsalt$Cy2drr8kDRji6smvDcT28wkqtq0R0VzVL5CkrjPQCITc5d/31j94knt9rGTcVSyjLXfjsiIsBh5ee8qR/3QDx1", "")
        .await;
    assert_eq!(
        op.login(Protocol::Imap, "a@pec.it", "correct horse").await,
        Ok(None)
    );
    op.ok(
        "mailbox import-hash a@pec.it -",
        "$2y$04$rIlYJUPdn9Gnoh/AK7G.S.vD5Z1Y8L9wOrJrIWW7I.WLEA8XMGAzS\n",
    )
    .await;
    assert_eq!(
        op.login(Protocol::Imap, "a@pec.it", "correct horse").await,
        Ok(None)
    );
    assert!(matches!(
        op.run("mailbox remove b@pec.it", "", false).await,
        Err(AdminError::Store(crate::store::StoreError::MailboxNotFound(_)))
    ));
}
