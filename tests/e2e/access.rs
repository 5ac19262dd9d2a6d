//! The PEC access rules through the proxy, against real Dovecot: protocol
//! switches, two-step verification with app passwords, collaborators of
//! shared mailboxes, and the access log. Accounts are set up with the real
//! `pec-proxy` admin commands; the proxy logs in upstream as the mailbox with
//! Dovecot's master user.

use std::sync::OnceLock;
use std::time::Duration;

use crate::support::client::Client;
use crate::support::operator::Operator;
use crate::support::proxy::{Proxy, imap_listeners};
use crate::support::upstreams::Upstreams;

/// Passwords the proxy checks; deliberately not Dovecot's own, so a
/// successful login proves the proxy verified it and used master credentials.
const ALICE_PW: &str = "alice proxy password";
const SHARED_PW: &str = "shared proxy password";
const ANNA_PW: &str = "anna's own password";

/// This module's own Dovecot + Postfix, started on first use; the script's
/// watchdog stops it when the process exits.
fn upstreams() -> &'static Upstreams {
    static UPSTREAMS: OnceLock<Upstreams> = OnceLock::new();
    UPSTREAMS.get_or_init(Upstreams::start)
}

async fn proxy(op: &Operator, login: &str) -> Proxy {
    let up = upstreams();
    let master = op.secret_file("master-password", &up.master_password);
    let config = format!(
        "{}\n{}[upstream.imap]\naddress = \"127.0.0.1:{}\"\ntls = \"starttls\"\n\
         ca = \"certs/ca.pem\"\nserver_name = \"localhost\"\nlogin = \"{login}\"\nmaster_user = \"{}\"\n\
         master_password_file = {:?}\n",
        imap_listeners(),
        op.store_toml(),
        up.imap_port,
        up.master_user,
        master,
    );
    Proxy::start(&config).await
}

async fn login(proxy: &Proxy, user: &str, password: &str) -> (Client, String) {
    let mut c = Client::tls(proxy.addr("imaps")).await;
    c.line().await;
    let reply = c.command("a", &format!("LOGIN {user:?} {password:?}")).await;
    (c, reply)
}

fn logged_in(reply: &str) -> bool {
    reply.starts_with("a OK [CAPABILITY IMAP4rev1 ")
}

/// Retries until `expected` (the store is re-read within a second of a change).
async fn eventually_reply(proxy: &Proxy, user: &str, password: &str, expected: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let (_, reply) = login(proxy, user, password).await;
        if reply == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {reply:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The subject of message 1 in INBOX, read through the proxy session.
async fn first_subject(c: &mut Client) -> String {
    c.send("s SELECT INBOX\r\n").await;
    c.until_tagged("s").await;
    c.send("f FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]\r\n").await;
    let lines = c.until_tagged("f").await;
    lines
        .iter()
        .find(|l| l.starts_with("Subject:"))
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn the_proxy_verifies_the_password_and_opens_the_mailbox_with_master_credentials() {
    for mode in ["master-user", "sasl-authzid"] {
        let op = Operator::new();
        op.add_mailbox("alice@pec.example", ALICE_PW);
        let proxy = proxy(&op, mode).await;
        let (mut c, reply) = login(&proxy, "Alice@PEC.example", ALICE_PW).await;
        assert!(logged_in(&reply), "{mode}: {reply}");
        assert!(
            !first_subject(&mut c).await.is_empty(),
            "{mode}: alice's seeded mail is visible"
        );
        // Dovecot's own password for alice is not ours to accept.
        let (_, reply) = login(&proxy, "alice@pec.example", "alice-secret").await;
        assert_eq!(reply, "a NO [AUTHENTICATIONFAILED] Authentication failed");
        // Unknown mailbox: the same answer as a wrong password.
        let (_, reply) = login(&proxy, "nobody@pec.example", ALICE_PW).await;
        assert_eq!(reply, "a NO [AUTHENTICATIONFAILED] Authentication failed");
    }
}

#[tokio::test]
async fn imap_switched_off_is_refused_with_a_specific_message() {
    let op = Operator::new();
    op.add_mailbox("alice@pec.example", ALICE_PW);
    op.run(&["mailbox", "set", "alice@pec.example", "--imap", "off"], "");
    let proxy = proxy(&op, "master-user").await;
    let (_, reply) = login(&proxy, "alice@pec.example", ALICE_PW).await;
    assert_eq!(
        reply,
        "a NO [AUTHORIZATIONFAILED] IMAP access is disabled for this mailbox"
    );
    // A wrong password learns nothing about the switch.
    let (_, reply) = login(&proxy, "alice@pec.example", "guess").await;
    assert_eq!(reply, "a NO [AUTHENTICATIONFAILED] Authentication failed");
    // Switched back on, without restarting the proxy.
    op.run(&["mailbox", "set", "alice@pec.example", "--imap", "on"], "");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !logged_in(&login(&proxy, "alice@pec.example", ALICE_PW).await.1) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the change never reached the proxy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_step_verification_requires_an_app_password_and_revocation_takes_effect() {
    let op = Operator::new();
    op.add_mailbox("alice@pec.example", ALICE_PW);
    op.run(&["mailbox", "set", "alice@pec.example", "--two-step", "on"], "");
    let (id, app_pw) = op.create_app_password("alice@pec.example", &[]);
    assert!(
        app_pw.len() == 19
            && app_pw
                .split('-')
                .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_lowercase())),
        "four groups of four letters: {app_pw}"
    );
    let proxy = proxy(&op, "master-user").await;

    let (_, reply) = login(&proxy, "alice@pec.example", ALICE_PW).await;
    assert_eq!(
        reply,
        "a NO [AUTHENTICATIONFAILED] Two-step verification is on: use an app password"
    );
    let (mut c, reply) = login(&proxy, "alice@pec.example", &app_pw).await;
    assert!(logged_in(&reply), "{reply}");
    assert!(!first_subject(&mut c).await.is_empty());
    // Typed without the hyphens, as on a phone keyboard.
    let (_, reply) = login(&proxy, "alice@pec.example", &app_pw.replace('-', "")).await;
    assert!(logged_in(&reply), "{reply}");

    op.run(&["app-password", "revoke", &id.to_string()], "");
    eventually_reply(
        &proxy,
        "alice@pec.example",
        &app_pw,
        "a NO [AUTHENTICATIONFAILED] Authentication failed",
    )
    .await;
    // The session opened with it before the revocation ends too (issue 16;
    // the timing is `revocation.rs`'s).
    let lines = c.expect_closed().await;
    assert_eq!(
        lines.last().map(String::as_str),
        Some("* BYE [UNAVAILABLE] Access to this mailbox was revoked"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn an_expired_app_password_is_refused() {
    let op = Operator::new();
    op.add_mailbox("alice@pec.example", ALICE_PW);
    op.run(&["mailbox", "set", "alice@pec.example", "--two-step", "on"], "");
    let (id, app_pw) = op.create_app_password("alice@pec.example", &["--expires-days", "1"]);
    let proxy = proxy(&op, "master-user").await;
    assert!(logged_in(&login(&proxy, "alice@pec.example", &app_pw).await.1));
    // Expire it now by writing the store as the admin API would after 1 day.
    let store = op.open_store().await;
    store
        .as_dyn()
        .set_app_password_expiry(id, Some(pec_proxy::testing::store::unix_now() - 1))
        .await
        .unwrap();
    store.close().await;
    eventually_reply(
        &proxy,
        "alice@pec.example",
        &app_pw,
        "a NO [EXPIRED] This app password has expired: create a new one",
    )
    .await;
}

#[tokio::test]
async fn collaborators_reach_the_shared_mailbox_with_their_own_password() {
    let up = upstreams();
    let op = Operator::new();
    op.add_mailbox("shared@pec.example", SHARED_PW);
    op.run(
        &[
            "collaborator",
            "add",
            "anna/shared@pec.example",
            "--password-stdin",
        ],
        &format!("{ANNA_PW}\n"),
    );
    op.run(
        &[
            "collaborator",
            "add",
            "reader/shared@pec.example",
            "--password-stdin",
            "--rights",
            "read",
        ],
        "reader-pw\n",
    );
    op.run(
        &[
            "collaborator",
            "add",
            "gone/shared@pec.example",
            "--password-stdin",
        ],
        "gone-pw\n",
    );
    op.run(&["collaborator", "suspend", "gone/shared@pec.example"], "");
    let proxy = proxy(&op, "master-user").await;

    let (mut c, reply) = login(&proxy, "anna/shared@pec.example", ANNA_PW).await;
    assert!(logged_in(&reply), "{reply}");
    // The shared mailbox's own seeded message, not anna's (she has none upstream).
    let subject = first_subject(&mut c).await;
    assert!(!subject.is_empty(), "shared@pec.example's INBOX is open");
    c.send("z LOGOUT\r\n").await;
    c.expect_closed().await;
    // The collaborator's name never reached the mail server.
    let log = std::fs::read_to_string(&up.dovecot_log).unwrap();
    assert!(
        log.contains("shared@pec.example"),
        "Dovecot saw the mailbox login"
    );
    assert!(
        !log.to_lowercase().contains("anna"),
        "Dovecot never saw the collaborator"
    );

    // The owner's password is not the collaborator's.
    assert_eq!(
        login(&proxy, "anna/shared@pec.example", SHARED_PW).await.1,
        "a NO [AUTHENTICATIONFAILED] Authentication failed"
    );
    assert_eq!(
        login(&proxy, "reader/shared@pec.example", "reader-pw").await.1,
        "a NO [AUTHORIZATIONFAILED] This collaborator account may not use IMAP on this mailbox"
    );
    assert_eq!(
        login(&proxy, "gone/shared@pec.example", "gone-pw").await.1,
        "a NO [CONTACTADMIN] This collaborator account is suspended: ask the mailbox owner"
    );

    // Every attempt is in the mailbox's access log, with its reason and no password.
    let rows = op.access_log("shared@pec.example");
    let summary: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["collaborator"].as_str().unwrap_or("").to_owned(),
                r["result"].as_str().unwrap_or("").to_owned(),
                r["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for expected in [
        ("anna", "success"),
        ("anna", "unknown_or_bad_password"),
        ("reader", "not_permitted"),
        ("gone", "collaborator_suspended"),
    ] {
        assert!(
            summary
                .iter()
                .any(|(c, res, reason)| c == expected.0 && (res == expected.1 || reason == expected.1)),
            "no {expected:?} in {summary:?}"
        );
    }
    let text = serde_json::to_string(&rows).unwrap();
    for secret in [ANNA_PW, SHARED_PW, "reader-pw", "gone-pw"] {
        assert!(!text.contains(secret));
    }
    assert!(
        rows.iter()
            .all(|r| r["protocol"] == "imap" && r["client_ip"] == "127.0.0.1"),
        "{rows:?}"
    );
}

/// Runs the real binary with debug logs and a metrics endpoint, logs in with
/// right and wrong passwords, and looks for every password in the logs, the
/// metrics and the database files.
#[tokio::test]
async fn no_password_reaches_logs_metrics_or_the_database() {
    use base64::Engine;
    let up = upstreams();
    let op = Operator::new();
    op.add_mailbox("alice@pec.example", ALICE_PW);
    op.run(&["mailbox", "set", "alice@pec.example", "--two-step", "on"], "");
    let (_, app_pw) = op.create_app_password("alice@pec.example", &[]);
    op.run(
        &[
            "collaborator",
            "add",
            "anna/alice@pec.example",
            "--password-stdin",
        ],
        &format!("{ANNA_PW}\n"),
    );
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (imaps, metrics) = (free_port(), free_port());
    let master = op.secret_file("master-password", &up.master_password);
    let config = format!(
        "[[certificate]]\ncert = \"{repo}/certs/server.pem\"\nkey = \"{repo}/certs/server-key.pem\"\n\n\
         [[listener]]\nname = \"imaps\"\nprotocol = \"imap\"\naddress = \"127.0.0.1:{imaps}\"\ntls = \"implicit\"\n\n\
         {store}\
         [upstream.imap]\naddress = \"127.0.0.1:{port}\"\ntls = \"starttls\"\nca = \"{repo}/certs/ca.pem\"\n\
         server_name = \"localhost\"\nlogin = \"master-user\"\nmaster_user = \"{mu}\"\nmaster_password_file = {master:?}\n\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n",
        repo = env!("CARGO_MANIFEST_DIR"),
        store = op.store_toml(),
        port = up.imap_port,
        mu = up.master_user,
    );
    let config_path = op.dir.path().join("pec-proxy.toml");
    std::fs::write(&config_path, config).unwrap();
    let log_path = op.dir.path().join("proxy.log");
    let mut proxy = std::process::Command::new(env!("CARGO_BIN_EXE_pec-proxy"))
        .args(["run", "--config"])
        .arg(&config_path)
        .env("PEC_PROXY_LOG", "trace")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::SystemTime::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", imaps))
        .await
        .is_err()
    {
        assert!(std::time::SystemTime::now() < deadline, "proxy did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let script = r#"
import imaplib, ssl, sys
port, app_pw, main_pw, anna_pw = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=sys.argv[5])
def attempt(user, pw, auth_plain=False):
    m = imaplib.IMAP4_SSL("localhost", port, ssl_context=ctx)
    try:
        if auth_plain:
            m.authenticate("PLAIN", lambda _: ("\0" + user + "\0" + pw).encode())
        else:
            m.login(user, pw)
        m.select("INBOX")
        m.logout()
        return "ok"
    except imaplib.IMAP4.error as e:
        return "refused"
print(attempt("alice@pec.example", app_pw))
print(attempt("alice@pec.example", app_pw, auth_plain=True))
print(attempt("alice@pec.example", main_pw))
print(attempt("alice@pec.example", "wrong-guess-123"))
print(attempt("anna/alice@pec.example", anna_pw))
"#;
    let ca = crate::support::client::ca_file();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            &imaps.to_string(),
            &app_pw,
            ALICE_PW,
            ANNA_PW,
            ca.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The collaborator needs an app password too once the owner turned two-step on.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\nok\nrefused\nrefused\nrefused\n"
    );

    let scrape = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            &format!("http://127.0.0.1:{metrics}/metrics"),
        ])
        .output()
        .unwrap();
    let metrics_text = String::from_utf8_lossy(&scrape.stdout).into_owned();
    assert!(metrics_text.contains("pec_proxy_logins_total"), "{metrics_text}");
    let _ = std::process::Command::new("kill")
        .arg(proxy.id().to_string())
        .status();
    let _ = proxy.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("login decision"), "the log has the login decisions");

    let plain_blob =
        base64::engine::general_purpose::STANDARD.encode(format!("\0alice@pec.example\0{app_pw}"));
    let secrets = [
        ALICE_PW,
        ANNA_PW,
        "wrong-guess-123",
        &app_pw,
        &app_pw.replace('-', ""),
        &plain_blob,
    ];
    let mut places = vec![
        ("log".to_owned(), log.into_bytes()),
        ("metrics".to_owned(), metrics_text.into_bytes()),
    ];
    for entry in std::fs::read_dir(op.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("accounts.db")
        {
            places.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    for (place, bytes) in &places {
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a password appears in {place}"
            );
        }
    }
}
