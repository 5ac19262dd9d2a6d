//! SMTP submission through the proxy against the real private Postfix
//! (XCLIENT, delivering to Dovecot over LMTP), with Python's smtplib as a
//! real client and raw bytes for the refusals. Accounts are set up with the
//! real `pec-proxy` admin commands.

use std::sync::OnceLock;

use crate::support::client::Client;
use crate::support::operator::Operator;
use crate::support::proxy::Proxy;
use crate::support::smtp::{body_of, find_message, proxy, submit};
use crate::support::upstreams::Upstreams;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Passwords the proxy checks; not Postfix's or Dovecot's, so a delivery
/// proves the proxy verified the client and logged in with XCLIENT.
const ALICE_PW: &str = "alice proxy password";
const SHARED_PW: &str = "shared proxy password";

/// This module's own Dovecot + Postfix, started on first use; the script's
/// watchdog stops it when the process exits.
fn upstreams() -> &'static Upstreams {
    static UPSTREAMS: OnceLock<Upstreams> = OnceLock::new();
    UPSTREAMS.get_or_init(Upstreams::start)
}

fn plain(user: &str, pw: &str) -> String {
    STANDARD.encode(format!("\0{user}\0{pw}"))
}

fn token() -> String {
    format!("tok{:x}", rand_u64())
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u64::from_le_bytes(b)
}

fn message(from: &str, to: &str, token: &str, body: &str) -> String {
    format!("From: {from}\r\nTo: {to}\r\nSubject: {token}\r\nMessage-ID: <{token}@pec.example>\r\n\r\n{body}")
}

/// A TLS client, greeted, EHLO'd and authenticated as `user`.
async fn logged_in(proxy: &Proxy, user: &str, pw: &str) -> Client {
    let mut c = Client::tls(proxy.addr("smtps")).await;
    assert!(c.line().await.starts_with("220 proxy.pec.example ESMTP"));
    c.send("EHLO client.example\r\n").await;
    while c.line().await.starts_with("250-") {}
    c.send(format!("AUTH PLAIN {}\r\n", plain(user, pw))).await;
    assert_eq!(c.line().await, "235 2.7.0 Authentication successful");
    c
}

async fn say(c: &mut Client, line: &str) -> String {
    c.send(format!("{line}\r\n")).await;
    c.line().await
}

#[tokio::test]
async fn submit_over_smtps_and_starttls_with_plain_and_login() {
    let op = Operator::new();
    op.add_mailbox("alice@pec.example", ALICE_PW);
    let proxy = proxy(upstreams(), &op, "").await;
    let dir = tempfile::tempdir().unwrap();
    for (listener, mode, mech) in [
        ("smtps", "ssl", "PLAIN"),
        ("smtps", "ssl", "LOGIN"),
        ("submission", "starttls", "PLAIN"),
        ("submission", "starttls", "LOGIN"),
    ] {
        let tok = token();
        let body = format!("Ciao Bob,\r\nvia {listener} with {mech}.\r\n.leading dot\r\n\r\nàèìòù 8-bit\r\n");
        let path = dir.path().join(&tok);
        std::fs::write(
            &path,
            message("alice@pec.example", "bob@pec.example", &tok, &body),
        )
        .unwrap();
        let run = submit(
            proxy.addr(listener).port(),
            mode,
            mech,
            "alice@pec.example",
            ALICE_PW,
            "alice@pec.example",
            "bob@pec.example",
            &path,
        )
        .await;
        assert!(run.ok, "{listener} {mech}: {}{}", run.stdout, run.stderr);
        let stored = find_message(upstreams(), "bob@pec.example", &tok).await;
        assert_eq!(
            String::from_utf8_lossy(&body_of(&stored)),
            body,
            "{listener} {mech}: body byte-identical (Dovecot stores LF line ends)"
        );
    }
}

#[tokio::test]
async fn each_pec_check_is_refused_with_its_reply_and_a_compliant_message_passes() {
    let op = Operator::new();
    op.add_mailbox("alice@pec.example", ALICE_PW);
    let proxy = proxy(upstreams(), &op, "").await;
    let mut c = logged_in(&proxy, "alice@pec.example", ALICE_PW).await;

    assert_eq!(
        say(&mut c, "MAIL FROM:<bob@pec.example>").await,
        "553 5.7.1 Sender address not owned by the authenticated mailbox"
    );
    assert_eq!(
        say(&mut c, "MAIL FROM:<alice@pec.example> SIZE=31457281").await,
        "552 5.3.4 Message size times recipients exceeds the fixed maximum message size"
    );
    // 20 MB declared: one recipient fits, the second would make 40 MB.
    assert!(
        say(&mut c, "MAIL FROM:<alice@pec.example> SIZE=20000000")
            .await
            .starts_with("250 2.1.0")
    );
    assert!(
        say(&mut c, "RCPT TO:<bob@pec.example>")
            .await
            .starts_with("250 2.1.5")
    );
    assert_eq!(
        say(&mut c, "RCPT TO:<carol@pec.example>").await,
        "552 5.3.4 Message size times recipients exceeds the fixed maximum message size"
    );
    assert!(say(&mut c, "RSET").await.starts_with("250 2.0.0"));

    for (headers, reply) in [
        (
            "From: bob@pec.example\r\n",
            "550 5.7.1 The From: header must equal the envelope sender (PEC rule, RFC 6109 3.1.1)",
        ),
        (
            "From: alice@pec.example\r\nBcc: carol@pec.example\r\n",
            "550 5.7.1 A Bcc: header is not allowed in certified mail (PEC rule, RFC 6109 3.1.1)",
        ),
    ] {
        let tok = token();
        // Pipelined envelope (RFC 2920): replies come back in order.
        c.send("MAIL FROM:<alice@pec.example>\r\nRCPT TO:<bob@pec.example>\r\nDATA\r\n")
            .await;
        assert!(c.line().await.starts_with("250 2.1.0"));
        assert!(c.line().await.starts_with("250 2.1.5"));
        assert_eq!(c.line().await, "354 End data with <CR><LF>.<CR><LF>");
        c.send(format!("{headers}Subject: {tok}\r\n\r\nrefused\r\n.\r\n"))
            .await;
        assert_eq!(c.line().await, reply);
        assert!(
            upstreams()
                .message_files("bob@pec.example")
                .iter()
                .all(|f| !std::fs::read_to_string(f).unwrap_or_default().contains(&tok)),
            "a refused message never reaches the mailbox"
        );
    }

    // Compliant, in the same session: accepted and delivered.
    let tok = token();
    c.send("MAIL FROM:<alice@pec.example>\r\nRCPT TO:<bob@pec.example>\r\nDATA\r\n")
        .await;
    for _ in 0..3 {
        c.line().await;
    }
    c.send(message("Alice <alice@pec.example>", "bob@pec.example", &tok, "ok\r\n") + ".\r\n")
        .await;
    assert!(c.line().await.starts_with("250 2.0.0 Ok: queued"));
    find_message(upstreams(), "bob@pec.example", &tok).await;
    assert_eq!(say(&mut c, "QUIT").await, "221 2.0.0 Bye");
}

/// A client that pipelines a whole submission, then half-closes after its
/// QUIT (TLS close_notify) and reads to the end, gets every reply, and
/// the message is delivered.
#[tokio::test]
async fn a_client_that_half_closes_after_quit_gets_every_reply() {
    let op = Operator::new();
    op.add_mailbox("alice@pec.example", ALICE_PW);
    let proxy = proxy(upstreams(), &op, "").await;
    let mut c = logged_in(&proxy, "alice@pec.example", ALICE_PW).await;
    let tok = token();
    let content = message(
        "alice@pec.example",
        "bob@pec.example",
        &tok,
        "sent, then half-closed\r\n",
    );
    c.send(format!(
        "MAIL FROM:<alice@pec.example>\r\nRCPT TO:<bob@pec.example>\r\nDATA\r\n{content}.\r\nQUIT\r\n"
    ))
    .await;
    c.shutdown_write().await;
    let replies = c.expect_closed().await;
    assert_eq!(replies.len(), 5, "{replies:?}");
    assert!(replies[0].starts_with("250 2.1.0"), "{replies:?}");
    assert!(replies[1].starts_with("250 2.1.5"), "{replies:?}");
    assert_eq!(replies[2], "354 End data with <CR><LF>.<CR><LF>");
    assert!(replies[3].starts_with("250 2.0.0 Ok: queued"), "{replies:?}");
    assert_eq!(replies[4], "221 2.0.0 Bye");
    find_message(upstreams(), "bob@pec.example", &tok).await;
}

/// A client that pipelines its whole submission behind its AUTH line
/// (RFC 2920): the commands that arrived with the login go through the PEC
/// guard like any later ones, every reply comes in order, and the message
/// is delivered.
#[tokio::test]
async fn commands_pipelined_behind_auth_are_guarded_and_delivered() {
    let op = Operator::new();
    op.add_mailbox("alice@pec.example", ALICE_PW);
    let proxy = proxy(upstreams(), &op, "").await;
    let mut c = Client::tls(proxy.addr("smtps")).await;
    assert!(c.line().await.starts_with("220 proxy.pec.example ESMTP"));
    c.send("EHLO client.example\r\n").await;
    while c.line().await.starts_with("250-") {}
    let tok = token();
    let content = message(
        "alice@pec.example",
        "bob@pec.example",
        &tok,
        "pipelined behind AUTH\r\n",
    );
    c.send(format!(
        "AUTH PLAIN {}\r\nMAIL FROM:<mallory@pec.example>\r\nMAIL FROM:<alice@pec.example>\r\nRCPT TO:<bob@pec.example>\r\nDATA\r\n{content}.\r\nQUIT\r\n",
        plain("alice@pec.example", ALICE_PW)
    ))
    .await;
    let replies = c.expect_closed().await;
    assert_eq!(replies.len(), 7, "{replies:?}");
    assert_eq!(replies[0], "235 2.7.0 Authentication successful");
    // The guard read the pipelined commands: a sender other than the
    // mailbox is refused, as it would be one command at a time.
    assert!(replies[1].starts_with("553 5.7.1"), "{replies:?}");
    assert!(replies[2].starts_with("250 2.1.0"), "{replies:?}");
    assert!(replies[3].starts_with("250 2.1.5"), "{replies:?}");
    assert_eq!(replies[4], "354 End data with <CR><LF>.<CR><LF>");
    assert!(replies[5].starts_with("250 2.0.0 Ok: queued"), "{replies:?}");
    assert_eq!(replies[6], "221 2.0.0 Bye");
    find_message(upstreams(), "bob@pec.example", &tok).await;
}

#[tokio::test]
async fn rate_limit_per_mailbox() {
    let op = Operator::new();
    op.add_mailbox("alice@pec.example", ALICE_PW);
    let proxy = proxy(upstreams(), &op, "[pec_checks]\nmessages_per_minute = 1\n").await;
    let mut c = logged_in(&proxy, "alice@pec.example", ALICE_PW).await;
    c.send("MAIL FROM:<alice@pec.example>\r\nRCPT TO:<bob@pec.example>\r\nDATA\r\n")
        .await;
    for _ in 0..3 {
        c.line().await;
    }
    c.send(message("alice@pec.example", "bob@pec.example", &token(), "one\r\n") + ".\r\n")
        .await;
    assert!(c.line().await.starts_with("250 2.0.0"));
    // Over every session of the mailbox.
    let mut other = logged_in(&proxy, "alice@pec.example", ALICE_PW).await;
    assert_eq!(
        say(&mut other, "MAIL FROM:<alice@pec.example>").await,
        "450 4.7.1 Too many messages from this mailbox, try again in a minute"
    );
}

#[tokio::test]
async fn access_rules_apply_to_smtp() {
    let op = Operator::new();
    op.add_mailbox("alice@pec.example", ALICE_PW);
    op.add_mailbox("shared@pec.example", SHARED_PW);
    op.run(&["mailbox", "set", "alice@pec.example", "--smtp", "off"], "");
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
            "sender/shared@pec.example",
            "--password-stdin",
            "--rights",
            "send",
        ],
        "sender-pw\n",
    );
    op.add_mailbox("carol@pec.example", "carol proxy password");
    op.run(&["mailbox", "set", "carol@pec.example", "--two-step", "on"], "");
    let proxy = proxy(upstreams(), &op, "").await;

    let cases = [
        (
            "alice@pec.example",
            ALICE_PW,
            "550 5.7.1 SMTP access is disabled for this mailbox",
        ),
        (
            "carol@pec.example",
            "carol proxy password",
            "534 5.7.9 Two-step verification is on: use an app password",
        ),
        (
            "reader/shared@pec.example",
            "reader-pw",
            "550 5.7.1 This collaborator account may not use SMTP on this mailbox",
        ),
        (
            "alice@pec.example",
            "wrong",
            "535 5.7.8 Authentication credentials invalid",
        ),
    ];
    for (user, pw, expected) in cases {
        let mut c = Client::tls(proxy.addr("smtps")).await;
        c.line().await;
        c.send("EHLO c\r\n").await;
        while c.line().await.starts_with("250-") {}
        assert_eq!(
            say(&mut c, &format!("AUTH PLAIN {}", plain(user, pw))).await,
            expected,
            "{user}"
        );
    }

    // A collaborator with the send right sends as the mailbox, never as itself.
    let mut c = logged_in(&proxy, "sender/shared@pec.example", "sender-pw").await;
    assert_eq!(
        say(&mut c, "MAIL FROM:<sender@pec.example>").await,
        "553 5.7.1 Sender address not owned by the authenticated mailbox"
    );
    let tok = token();
    c.send("MAIL FROM:<shared@pec.example>\r\nRCPT TO:<bob@pec.example>\r\nDATA\r\n")
        .await;
    for _ in 0..3 {
        c.line().await;
    }
    c.send(message("shared@pec.example", "bob@pec.example", &tok, "from the team\r\n") + ".\r\n")
        .await;
    assert!(c.line().await.starts_with("250 2.0.0"));
    find_message(upstreams(), "bob@pec.example", &tok).await;
}

#[tokio::test]
async fn bad_input_gets_the_right_codes_and_the_proxy_keeps_serving() {
    let op = Operator::new();
    op.add_mailbox("alice@pec.example", ALICE_PW);
    // Each bad command's reply on one connection: past the default cut-off
    // of five (tests/hostile/smtp.rs has that row).
    let proxy = proxy(upstreams(), &op, "[limits]\nmax_prelogin_errors = 100\n").await;

    // Commands pipelined after STARTTLS are discarded, never executed.
    let mut c = Client::plain(proxy.addr("submission")).await;
    c.line().await;
    c.send("EHLO c\r\n").await;
    let mut ehlo = vec![];
    loop {
        let l = c.line().await;
        ehlo.push(l.clone());
        if !l.starts_with("250-") {
            break;
        }
    }
    assert!(ehlo.contains(&"250 STARTTLS".to_owned()), "{ehlo:?}");
    assert!(
        !ehlo.iter().any(|l| l.contains("AUTH")),
        "no AUTH before TLS: {ehlo:?}"
    );
    assert_eq!(
        say(
            &mut c,
            &format!("AUTH PLAIN {}", plain("alice@pec.example", ALICE_PW))
        )
        .await,
        "530 5.7.0 Must issue a STARTTLS command first"
    );
    assert_eq!(
        say(&mut c, "MAIL FROM:<alice@pec.example>").await,
        "530 5.7.0 Authentication required"
    );
    c.send("STARTTLS\r\nEHLO injected\r\nAUTH PLAIN AGEAYg==\r\n")
        .await;
    assert_eq!(c.line().await, "220 2.0.0 Ready to start TLS");
    c.upgrade().await;
    assert_eq!(
        say(&mut c, "NOOP").await,
        "250 2.0.0 Ok",
        "nothing pipelined was answered"
    );

    // Bad base64, an over-long line, NUL, unknown commands, DATA before RCPT.
    let mut c = Client::tls(proxy.addr("smtps")).await;
    c.line().await;
    c.send("EHLO c\r\n").await;
    while c.line().await.starts_with("250-") {}
    assert_eq!(
        say(&mut c, "AUTH PLAIN not*base64").await,
        "501 5.5.4 Syntax: AUTH mechanism [initial-response]"
    );
    assert_eq!(say(&mut c, "AUTH PLAIN").await, "334 ");
    assert_eq!(say(&mut c, "@@@@").await, "501 5.5.2 Invalid base64 data");
    assert_eq!(
        say(&mut c, &format!("NOOP {}", "x".repeat(600))).await,
        "500 5.5.2 Line too long"
    );
    assert_eq!(
        say(&mut c, "NO\0OP").await,
        "500 5.5.2 Syntax error: NUL character in command"
    );
    assert_eq!(say(&mut c, "FOO").await, "500 5.5.1 Command unrecognized");
    assert_eq!(say(&mut c, "DATA").await, "530 5.7.0 Authentication required");
    c.send(format!("AUTH PLAIN {}\r\n", plain("alice@pec.example", ALICE_PW)))
        .await;
    assert_eq!(c.line().await, "235 2.7.0 Authentication successful");
    assert_eq!(say(&mut c, "DATA").await, "503 5.5.1 Error: need MAIL command");
    assert!(
        say(&mut c, "MAIL FROM:<alice@pec.example>")
            .await
            .starts_with("250")
    );
    assert_eq!(say(&mut c, "DATA").await, "554 5.5.1 Error: no valid recipients");
    assert_eq!(
        say(&mut c, "XCLIENT LOGIN=bob@pec.example").await,
        "500 5.5.1 Command unrecognized"
    );
    assert_eq!(
        say(&mut c, "MAIL FROM:<alice@pec.example>\0").await,
        "500 5.5.2 Syntax error: NUL character in command"
    );
    assert_eq!(
        say(&mut c, &format!("RCPT TO:<{}@pec.example>", "b".repeat(600))).await,
        "500 5.5.2 Line too long"
    );
    assert!(say(&mut c, "NOOP").await.starts_with("250"));
    assert_eq!(say(&mut c, "QUIT").await.get(..3), Some("221"));

    // Still serving.
    let mut c = logged_in(&proxy, "alice@pec.example", ALICE_PW).await;
    assert!(say(&mut c, "NOOP").await.starts_with("250"));
}

/// A mail client's blind copy and carbon copy, as Python's smtplib sends
/// them (`send_message` strips `Bcc:` and adds its addresses to the
/// `RCPT TO`s, like every client): prints the server's verdict.
const SEND_MESSAGE: &str = r#"
import smtplib, ssl, sys
from email.message import EmailMessage
port, user, pw, to, cc, bcc, token, ca = sys.argv[1:]
m = EmailMessage()
m["From"] = "Alice <" + user + ">"
m["To"] = to
if cc: m["Cc"] = cc
if bcc: m["Bcc"] = bcc
m["Subject"] = token
m.set_content("certified " + token + "\n")
s = smtplib.SMTP_SSL("localhost", int(port), context=ssl.create_default_context(cafile=ca), timeout=60)
s.login(user, pw)
try:
    s.send_message(m)
    print("sent")
except smtplib.SMTPDataError as e:
    print(e.smtp_code, e.smtp_error.decode())
s.quit()
"#;

async fn send_message(proxy: &Proxy, to: &str, cc: &str, bcc: &str, token: &str) -> String {
    let ca = crate::support::proxy::repo().join("certs/ca.pem");
    let out = tokio::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(SEND_MESSAGE)
        .arg(proxy.addr("smtps").port().to_string())
        .args(["alice@pec.example", ALICE_PW, to, cc, bcc, token])
        .arg(ca)
        .kill_on_drop(true)
        .output()
        .await
        .expect("python3 ran");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}

fn holds(address: &str, token: &str) -> bool {
    upstreams()
        .message_files(address)
        .iter()
        .any(|f| std::fs::read_to_string(f).unwrap_or_default().contains(token))
}

/// RFC 6109 §3.1.1, no blind copies: a message whose `RCPT TO` set is not
/// its `To:` and `Cc:` addresses is refused with `550 5.7.1` and reaches
/// no mailbox, neither the one named nor the hidden one; one whose `To:`
/// and `Cc:` are its recipients reaches both. (Before the rule the blind
/// copy was delivered to both, certified.)
#[tokio::test]
async fn a_blind_copy_is_refused_and_to_plus_cc_is_delivered() {
    let op = Operator::new();
    op.add_mailbox("alice@pec.example", ALICE_PW);
    let proxy = proxy(upstreams(), &op, "").await;

    let blind = token();
    assert_eq!(
        send_message(&proxy, "bob@pec.example", "", "carol@pec.example", &blind).await,
        "550 5.7.1 Recipients must be exactly the To: and Cc: addresses, no blind copies (PEC rule, RFC 6109 3.1.1)"
    );
    // A To: that names nobody (an empty group) is a blind copy too.
    let undisclosed = token();
    assert_eq!(
        send_message(
            &proxy,
            "undisclosed-recipients:;",
            "",
            "bob@pec.example",
            &undisclosed
        )
        .await,
        "550 5.7.1 Recipients must be exactly the To: and Cc: addresses, no blind copies (PEC rule, RFC 6109 3.1.1)"
    );

    let copied = token();
    assert_eq!(
        send_message(
            &proxy,
            "Bob <Bob@PEC.example>",
            "\"Carol C.\" <carol@pec.example>",
            "",
            &copied
        )
        .await,
        "sent"
    );
    find_message(upstreams(), "bob@pec.example", &copied).await;
    find_message(upstreams(), "carol@pec.example", &copied).await;
    // Delivered after the refused ones were sent: had they reached
    // Postfix, they would be in the maildirs by now.
    for address in ["bob@pec.example", "carol@pec.example"] {
        for refused in [&blind, &undisclosed] {
            assert!(!holds(address, refused), "{refused} reached {address}");
        }
    }
}

/// A message with no `To:` at all is refused, over raw bytes.
#[tokio::test]
async fn a_message_without_to_is_refused() {
    let op = Operator::new();
    op.add_mailbox("alice@pec.example", ALICE_PW);
    let proxy = proxy(upstreams(), &op, "").await;
    let mut c = logged_in(&proxy, "alice@pec.example", ALICE_PW).await;
    let tok = token();
    c.send("MAIL FROM:<alice@pec.example>\r\nRCPT TO:<bob@pec.example>\r\nDATA\r\n")
        .await;
    for _ in 0..3 {
        c.line().await;
    }
    c.send(format!(
        "From: alice@pec.example\r\nCc: bob@pec.example\r\nSubject: {tok}\r\n\r\nno To:\r\n.\r\n"
    ))
    .await;
    assert_eq!(
        c.line().await,
        "550 5.7.1 A To: header is required in certified mail (PEC rule, RFC 6109 3.1.1)"
    );
    // The session goes on: the upstream got RSET, not the message.
    assert!(say(&mut c, "NOOP").await.starts_with("250"));
    assert!(!holds("bob@pec.example", &tok));
}
