//! Collaborator rights over IMAP, against real Dovecot: a read-only
//! collaborator (`read-only-client`) and one whose messages are kept on the
//! server (`pop3-delete deny`) read through the proxy's IMAP guard, and
//! nothing they send changes the maildir, checked on disk. Accounts are set
//! up with the real admin commands; the proxy opens the mailbox with
//! Dovecot's master user.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::client::Client;
use crate::support::operator::Operator;
use crate::support::proxy::{Proxy, imap_listeners};
use crate::support::upstreams::Upstreams;

const ANNA_PW: &str = "anna's own password";
const NOPERM: &str = " NO [NOPERM] ";

/// This module's own Dovecot + Postfix, started on first use; the script's
/// watchdog stops it when the process exits.
fn upstreams() -> &'static Upstreams {
    static UPSTREAMS: OnceLock<Upstreams> = OnceLock::new();
    UPSTREAMS.get_or_init(Upstreams::start)
}

async fn proxy(op: &Operator) -> Proxy {
    let up = upstreams();
    let master = op.secret_file("master-password", &up.master_password);
    let config = format!(
        "{}\n{}[upstream.imap]\naddress = \"127.0.0.1:{}\"\ntls = \"starttls\"\n\
         ca = \"certs/ca.pem\"\nserver_name = \"localhost\"\nlogin = \"master-user\"\nmaster_user = \"{}\"\n\
         master_password_file = {:?}\n",
        imap_listeners(),
        op.store_toml(),
        up.imap_port,
        up.master_user,
        master,
    );
    Proxy::start(&config).await
}

/// A Dovecot mailbox of the test's own with `count` small messages, its
/// owner in the proxy's store, and collaborator anna with `rights`.
fn shared_mailbox(name: &str, count: usize, rights: &str) -> (String, Operator) {
    let up = upstreams();
    let address = format!("{name}@rights.example");
    up.add_user(&address, &format!("{name}-dovecot-pw"));
    for i in 1..=count {
        up.deliver(
            &address,
            format!("From: harness@pec.example\r\nSubject: message {i}\r\n\r\nbody {i}\r\n").as_bytes(),
        );
    }
    up.wait_for_messages(&address, count, Duration::from_secs(10));
    let op = Operator::new();
    op.add_mailbox(&address, "owner password");
    op.run(
        &[
            "collaborator",
            "add",
            &format!("anna/{address}"),
            "--password-stdin",
            "--rights",
            rights,
        ],
        &format!("{ANNA_PW}\n"),
    );
    (address, op)
}

/// Every message file of the maildir, in every folder, with the flags in
/// its name, and every folder: what a change to the mailbox would change.
fn maildir_state(address: &str) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if rel.starts_with('.') || rel.contains("/.") {
                    out.push(format!("folder {rel}"));
                }
                walk(&path, root, out);
            } else if let Some(sub) = path.parent().and_then(|p| p.file_name()) {
                // A message's unique name and flags, wherever new/ or cur/.
                if sub == "cur" || sub == "new" {
                    let name = path.file_name().unwrap().to_string_lossy();
                    let (id, flags) = name.split_once(":2,").unwrap_or((&name, ""));
                    let folder = path.parent().unwrap().parent().unwrap();
                    let folder = folder.strip_prefix(root).unwrap().to_string_lossy();
                    let folder = if folder.is_empty() { "INBOX".into() } else { folder };
                    out.push(format!("message {folder}/{id} flags {flags}"));
                }
            }
        }
    }
    let root = upstreams().maildir(address);
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

async fn login_anna(proxy: &Proxy, address: &str) -> (Client, String) {
    let mut c = Client::tls(proxy.addr("imaps")).await;
    c.line().await;
    let reply = c
        .command("a", &format!("LOGIN \"anna/{address}\" \"{ANNA_PW}\""))
        .await;
    (c, reply)
}

fn tagged<'a>(lines: &'a [String], tag: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.starts_with(&format!("{tag} ")))
        .unwrap_or_else(|| panic!("no answer to {tag} in {lines:#?}"))
}

#[tokio::test]
async fn a_read_only_collaborator_reads_and_changes_nothing() {
    let (address, op) = shared_mailbox("reader", 2, "read-only-client");
    let before = maildir_state(&address);
    assert_eq!(before.iter().filter(|l| l.starts_with("message")).count(), 2);
    let proxy = proxy(&op).await;

    let (mut c, reply) = login_anna(&proxy, &address).await;
    assert!(reply.starts_with("a OK [CAPABILITY IMAP4rev1 "), "{reply}");
    assert!(!reply.contains("COMPRESS"), "{reply}");
    // Pipelined, in one write: reads and every kind of change, a literal
    // of each kind among them (the non-synchronising one's data would
    // expunge if it reached the server as a command).
    let message = "From: anna\r\nSubject: added\r\n\r\nhi\r\n";
    c.send(format!(
        concat!(
            "b SELECT INBOX\r\n",
            "c FETCH 1:* (FLAGS BODY[])\r\n",
            "d UID SEARCH ALL\r\n",
            "e UID STORE 1:* +FLAGS.SILENT (\\Deleted)\r\n",
            "f EXPUNGE\r\n",
            "g UID MOVE 1 Trash\r\n",
            "h APPEND INBOX {{{}+}}\r\n{}\r\n",
            "i APPEND INBOX {{11+}}\r\nj EXPUNGE\r\n\r\n",
            "k CREATE Foo\r\n",
            "l COPY 1 INBOX\r\n",
            "m STORE 2 +FLAGS (\\Seen)\r\n",
            "n CAPABILITY\r\n",
            "o CLOSE\r\n",
        ),
        message.len(),
        message
    ))
    .await;
    let lines = c.until_tagged("o").await;
    assert!(tagged(&lines, "b").starts_with("b OK [READ-ONLY]"), "{lines:#?}");
    assert!(tagged(&lines, "c").starts_with("c OK"), "{lines:#?}");
    assert!(lines.iter().any(|l| l == "body 2"), "{lines:#?}");
    assert!(lines.iter().any(|l| l == "* SEARCH 1 2"), "{lines:#?}");
    assert!(tagged(&lines, "d").starts_with("d OK"));
    for tag in ["e", "f", "g", "h", "i", "k", "l", "m"] {
        assert!(
            tagged(&lines, tag).starts_with(&format!("{tag}{NOPERM}")),
            "{tag}: {lines:#?}"
        );
    }
    assert!(!lines.iter().any(|l| l.starts_with("j ")), "{lines:#?}");
    let capability = lines.iter().find(|l| l.starts_with("* CAPABILITY ")).unwrap();
    assert!(!capability.contains("COMPRESS"), "{capability}");
    assert!(tagged(&lines, "o").starts_with("o OK"));
    // A synchronising literal refused: answered at once, no data sent.
    assert!(
        c.command("p", "APPEND INBOX {5}")
            .await
            .starts_with(&format!("p{NOPERM}"))
    );
    assert!(c.command("q", "NOOP").await.starts_with("q OK"));
    c.command("z", "LOGOUT").await;

    assert_eq!(maildir_state(&address), before, "the maildir changed");
}

#[tokio::test]
async fn keep_on_server_flags_but_never_deletes_over_imap() {
    let (address, op) = shared_mailbox("keeper", 2, "mail-client");
    op.run(
        &[
            "collaborator",
            "set-pop3-delete",
            &format!("anna/{address}"),
            "deny",
        ],
        "",
    );
    let ids = |state: &[String]| -> Vec<String> {
        state
            .iter()
            .filter(|l| l.starts_with("message INBOX/"))
            .map(|l| l.split(" flags ").next().unwrap().to_owned())
            .collect()
    };
    let before = maildir_state(&address);
    let proxy = proxy(&op).await;

    let (mut c, reply) = login_anna(&proxy, &address).await;
    assert!(reply.starts_with("a OK [CAPABILITY IMAP4rev1 "), "{reply}");
    c.send(concat!(
        "b SELECT INBOX\r\n",
        "c UID STORE 1:* +FLAGS.SILENT (\\Deleted)\r\n",
        "d STORE 1 +FLAGS (\\Flagged)\r\n",
        "e EXPUNGE\r\n",
        "f UID EXPUNGE 1:*\r\n",
        "g UID MOVE 1:* Trash\r\n",
        "h DELETE INBOX\r\n",
        "i CLOSE\r\n",
    ))
    .await;
    let lines = c.until_tagged("i").await;
    c.command("z", "LOGOUT").await;

    let after = maildir_state(&address);
    assert_eq!(
        ids(&after),
        ids(&before),
        "a message was deleted or moved: {after:#?}"
    );
    assert!(tagged(&lines, "b").starts_with("b OK [READ-WRITE]"), "{lines:#?}");
    assert!(tagged(&lines, "d").starts_with("d OK"), "{lines:#?}");
    for tag in ["c", "e", "f", "g", "h"] {
        assert!(
            tagged(&lines, tag).starts_with(&format!("{tag}{NOPERM}")),
            "{tag}: {lines:#?}"
        );
    }
    assert!(tagged(&lines, "i").starts_with("i OK"));
    let flags: Vec<&str> = after.iter().filter_map(|l| l.split(" flags ").nth(1)).collect();
    assert!(
        flags.iter().any(|f| f.contains('F')),
        "the flag was set: {after:#?}"
    );
    // `T` is `\Deleted` in a maildir name.
    assert!(!flags.iter().any(|f| f.contains('T')), "{after:#?}");
}
