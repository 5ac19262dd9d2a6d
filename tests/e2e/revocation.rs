//! Revocation reaches live sessions: a change made with the admin commands
//! (a collaborator suspended, an app password revoked, a protocol switched
//! off) ends the logged-in IMAP (in IDLE), POP3 and SMTP sessions it
//! concerns within 2 s, each with its protocol's goodbye, while the other
//! sessions on the same mailbox stay up. Real Dovecot and Postfix behind.

// Real daemons, real time: the elapsed times asserted are wall-clock.
#![allow(clippy::disallowed_types)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::support::client::Client;
use crate::support::operator::Operator;
use crate::support::proxy::{Proxy, store_config};
use crate::support::upstreams::Upstreams;

/// What the issue promises (2 s), plus a margin for the admin command's own
/// process start and a loaded test machine.
const WITHIN: Duration = Duration::from_millis(2_500);

const OWNER_PW: &str = "owner proxy password";
const ANNA_PW: &str = "anna proxy password";

const IMAP_BYE: &str = "* BYE [UNAVAILABLE] Access to this mailbox was revoked";
const POP3_BYE: &str = "-ERR [AUTH] Access to this mailbox was revoked";
const SMTP_BYE: &str = "421 4.7.0 Access to this mailbox was revoked, closing connection";

// Every test runs multi-threaded: the admin commands block the test's
// thread, and the proxy runs in this process. On one thread it would stop
// meanwhile: a session command would wait for an answer that never comes,
// and an account change for the proxy's access-log transaction (a
// revocation's row) to commit, until SQLite's busy timeout failed it.

/// This module's own Dovecot + Postfix.
fn upstreams() -> &'static Upstreams {
    static UPSTREAMS: OnceLock<Upstreams> = OnceLock::new();
    UPSTREAMS.get_or_init(Upstreams::start)
}

/// A proxy for all three protocols (implicit TLS each) with `op`'s
/// account store, logging in upstream as the mailbox; `limits` is added to
/// a `[limits]` table.
async fn proxy(op: &Operator, limits: &str) -> Proxy {
    Proxy::start(&store_config(upstreams(), op, &format!("[limits]\n{limits}\n"))).await
}

/// A Dovecot mailbox of the test's own, in the store with `OWNER_PW` and
/// collaborator `anna` (`ANNA_PW`, mail-client rights).
fn mailbox(op: &Operator, name: &str) -> String {
    let address = format!("{name}@pec.example");
    upstreams().add_user(&address, "dovecot's own, unused");
    op.add_mailbox(&address, OWNER_PW);
    op.run(
        &[
            "collaborator",
            "add",
            &format!("anna/{address}"),
            "--password-stdin",
        ],
        &format!("{ANNA_PW}\n"),
    );
    address
}

/// Logged in over IMAP with INBOX selected.
async fn imap(proxy: &Proxy, user: &str, pw: &str) -> Client {
    let mut c = Client::tls(proxy.addr("imaps")).await;
    c.line().await;
    let reply = c.command("a", &format!("LOGIN {user:?} {pw:?}")).await;
    assert!(reply.starts_with("a OK "), "{user}: {reply}");
    let reply = c.command("s", "SELECT INBOX").await;
    assert!(reply.starts_with("s OK "), "{reply}");
    c
}

/// Logged in over IMAP and in IDLE.
async fn imap_idle(proxy: &Proxy, user: &str, pw: &str) -> Client {
    let mut c = imap(proxy, user, pw).await;
    c.send("i IDLE\r\n").await;
    assert!(c.line().await.starts_with("+ "), "IDLE continuation");
    c
}

async fn pop3(proxy: &Proxy, user: &str, pw: &str) -> Client {
    let mut c = Client::tls(proxy.addr("pop3s")).await;
    assert!(c.line().await.starts_with("+OK"));
    c.send(format!("USER {user}\r\n")).await;
    assert!(c.line().await.starts_with("+OK"));
    c.send(format!("PASS {pw}\r\n")).await;
    assert_eq!(c.line().await, "+OK Logged in.", "{user}");
    c
}

async fn smtp(proxy: &Proxy, user: &str, pw: &str) -> Client {
    let mut c = Client::tls(proxy.addr("smtps")).await;
    assert!(c.line().await.starts_with("220 "));
    c.send("EHLO client.example\r\n").await;
    while c.line().await.starts_with("250-") {}
    let plain = STANDARD.encode(format!("\0{user}\0{pw}"));
    c.send(format!("AUTH PLAIN {plain}\r\n")).await;
    assert_eq!(c.line().await, "235 2.7.0 Authentication successful", "{user}");
    c
}

/// Reads until the proxy closes `c`; asserts its last line was `bye` and
/// that it came within [`WITHIN`] of `since`.
async fn ended_with(c: &mut Client, bye: &str, since: Instant, what: &str) {
    let lines = c.expect_closed().await;
    let took = since.elapsed();
    eprintln!("{what}: ended {took:?} after the change");
    assert_eq!(lines.last().map(String::as_str), Some(bye), "{what}: {lines:?}");
    assert!(took <= WITHIN, "{what}: ended {took:?} after the change");
}

async fn imap_alive(c: &mut Client, what: &str) {
    let reply = c.command("n", "NOOP").await;
    assert!(reply.starts_with("n OK"), "{what}: {reply}");
}

async fn pop3_alive(c: &mut Client, what: &str) {
    c.send("NOOP\r\n").await;
    assert_eq!(c.line().await, "+OK", "{what}");
}

async fn smtp_alive(c: &mut Client, what: &str) {
    c.send("NOOP\r\n").await;
    let reply = c.line().await;
    assert!(reply.starts_with("250 "), "{what}: {reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspending_a_collaborator_ends_its_imap_idle_pop3_and_smtp_sessions_not_the_owners() {
    let op = Operator::new();
    let address = mailbox(&op, "suspended");
    let anna = format!("anna/{address}");
    let proxy = proxy(&op, "").await;
    let mut anna_imap = imap_idle(&proxy, &anna, ANNA_PW).await;
    let mut anna_pop3 = pop3(&proxy, &anna, ANNA_PW).await;
    let mut anna_smtp = smtp(&proxy, &anna, ANNA_PW).await;
    // The owner's own sessions on the same mailbox (POP3 is anna's: Dovecot
    // lets one POP3 session hold a mailbox).
    let mut owner_imap = imap(&proxy, &address, OWNER_PW).await;
    let mut owner_smtp = smtp(&proxy, &address, OWNER_PW).await;

    let changed = Instant::now();
    op.run(&["collaborator", "suspend", &anna], "");
    ended_with(&mut anna_imap, IMAP_BYE, changed, "anna's IMAP IDLE").await;
    ended_with(&mut anna_pop3, POP3_BYE, changed, "anna's POP3").await;
    ended_with(&mut anna_smtp, SMTP_BYE, changed, "anna's SMTP").await;

    imap_alive(&mut owner_imap, "owner's IMAP").await;
    smtp_alive(&mut owner_smtp, "owner's SMTP").await;
    // The owner sees it in the mailbox's access log (written after the
    // goodbye, by the store's batched writer).
    let deadline = Instant::now() + Duration::from_secs(5);
    let revoked = loop {
        let log = op.access_log(&address);
        let revoked: Vec<_> = log.into_iter().filter(|r| r["result"] == "revoked").collect();
        if revoked.len() >= 3 || Instant::now() > deadline {
            break revoked;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(revoked.len(), 3, "one row per ended session: {revoked:?}");
    for row in revoked {
        assert_eq!(row["collaborator"], "anna", "{row}");
        assert_eq!(row["reason"], "collaborator_suspended", "{row}");
    }
    // And anna cannot come back.
    let mut c = Client::tls(proxy.addr("imaps")).await;
    c.line().await;
    let reply = c.command("a", &format!("LOGIN {anna:?} {ANNA_PW:?}")).await;
    assert!(reply.starts_with("a NO "), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_an_app_password_ends_the_sessions_that_used_it_only() {
    let op = Operator::new();
    let address = mailbox(&op, "revoked");
    let (revoked_id, revoked_pw) = op.create_app_password(&address, &[]);
    let (_, kept_pw) = op.create_app_password(&address, &[]);
    let proxy = proxy(&op, "").await;
    let mut revoked_imap = imap_idle(&proxy, &address, &revoked_pw).await;
    let mut revoked_pop3 = pop3(&proxy, &address, &revoked_pw).await;
    let mut revoked_smtp = smtp(&proxy, &address, &revoked_pw).await;
    let mut kept_imap = imap(&proxy, &address, &kept_pw).await;
    let mut kept_smtp = smtp(&proxy, &address, &kept_pw).await;
    let mut main_imap = imap(&proxy, &address, OWNER_PW).await;

    let changed = Instant::now();
    op.run(&["app-password", "revoke", &revoked_id.to_string()], "");
    ended_with(
        &mut revoked_imap,
        IMAP_BYE,
        changed,
        "IMAP IDLE with the app password",
    )
    .await;
    ended_with(&mut revoked_pop3, POP3_BYE, changed, "POP3 with the app password").await;
    ended_with(&mut revoked_smtp, SMTP_BYE, changed, "SMTP with the app password").await;

    imap_alive(&mut kept_imap, "IMAP with the other app password").await;
    smtp_alive(&mut kept_smtp, "SMTP with the other app password").await;
    imap_alive(&mut main_imap, "IMAP with the main password").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_a_protocol_off_ends_that_protocols_sessions_only() {
    let op = Operator::new();
    let address = mailbox(&op, "switched");
    let proxy = proxy(&op, "").await;
    let mut owner_imap = imap_idle(&proxy, &address, OWNER_PW).await;
    let mut anna_imap = imap_idle(&proxy, &format!("anna/{address}"), ANNA_PW).await;
    let mut owner_pop3 = pop3(&proxy, &address, OWNER_PW).await;
    let mut owner_smtp = smtp(&proxy, &address, OWNER_PW).await;

    let changed = Instant::now();
    op.run(&["mailbox", "set", &address, "--imap", "off"], "");
    ended_with(&mut owner_imap, IMAP_BYE, changed, "owner's IMAP IDLE").await;
    ended_with(&mut anna_imap, IMAP_BYE, changed, "anna's IMAP IDLE").await;

    pop3_alive(&mut owner_pop3, "owner's POP3").await;
    smtp_alive(&mut owner_smtp, "owner's SMTP").await;

    let changed = Instant::now();
    op.run(
        &["mailbox", "set", &address, "--pop3", "off", "--smtp", "off"],
        "",
    );
    ended_with(&mut owner_pop3, POP3_BYE, changed, "owner's POP3").await;
    ended_with(&mut owner_smtp, SMTP_BYE, changed, "owner's SMTP").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_past_max_session_secs_is_told_goodbye() {
    let op = Operator::new();
    let address = mailbox(&op, "lifetime");
    let proxy = proxy(&op, "max_session_secs = 1").await;
    let logged_in = Instant::now();
    let mut c = imap_idle(&proxy, &address, OWNER_PW).await;
    let lines = c.expect_closed().await;
    assert_eq!(
        lines.last().map(String::as_str),
        Some("* BYE [UNAVAILABLE] Session time limit reached, please log in again"),
        "{lines:?}"
    );
    assert!(
        logged_in.elapsed() <= Duration::from_secs(3),
        "{:?}",
        logged_in.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_a_mailboxs_sessions_and_ends_a_collaborators() {
    let op = Operator::new();
    let address = mailbox(&op, "operator");
    let anna = format!("anna/{address}");
    let proxy = proxy(&op, "").await;
    let mut anna_imap = imap_idle(&proxy, &anna, ANNA_PW).await;
    let mut anna_smtp = smtp(&proxy, &anna, ANNA_PW).await;
    let mut owner_imap = imap(&proxy, &address, OWNER_PW).await;

    let listed = op.run(&["session", "list", &address, "--json"], "");
    let listed: Vec<serde_json::Value> = serde_json::from_str(listed.trim()).unwrap();
    let mut who: Vec<(String, String)> = listed
        .iter()
        .map(|s| {
            (
                s["protocol"].as_str().unwrap().to_owned(),
                s["collaborator"].as_str().unwrap_or("(owner)").to_owned(),
            )
        })
        .collect();
    who.sort();
    assert_eq!(
        who,
        [
            ("imap".to_owned(), "(owner)".to_owned()),
            ("imap".to_owned(), "anna".to_owned()),
            ("smtp".to_owned(), "anna".to_owned()),
        ],
        "{listed:?}"
    );

    let changed = Instant::now();
    let out = op.run(&["session", "end", &anna, "--json"], "");
    assert_eq!(out.trim(), r#"{"ended":2}"#);
    ended_with(&mut anna_imap, IMAP_BYE, changed, "anna's IMAP IDLE").await;
    ended_with(&mut anna_smtp, SMTP_BYE, changed, "anna's SMTP").await;
    imap_alive(&mut owner_imap, "owner's IMAP").await;
    // Anna was not suspended: she may log in again.
    let mut again = imap(&proxy, &anna, ANNA_PW).await;
    imap_alive(&mut again, "anna's new session").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_step_on_a_new_password_and_a_deactivated_mailbox_end_main_password_sessions() {
    let op = Operator::new();
    let proxy = proxy(&op, "").await;
    // (mailbox name, the change, whether an app-password session survives)
    let cases: [(&str, &[&str], &str, bool); 3] = [
        (
            "twostep",
            &["mailbox", "set", "ADDRESS", "--two-step", "on"],
            "",
            true,
        ),
        (
            "newpass",
            &["mailbox", "set-password", "ADDRESS"],
            "a new password\n",
            true,
        ),
        (
            "inactive",
            &["mailbox", "set", "ADDRESS", "--active", "off"],
            "",
            false,
        ),
    ];
    for (name, change, stdin, app_survives) in cases {
        let address = mailbox(&op, name);
        let (_, app_pw) = op.create_app_password(&address, &[]);
        let mut main_imap = imap_idle(&proxy, &address, OWNER_PW).await;
        let mut main_pop3 = pop3(&proxy, &address, OWNER_PW).await;
        let mut main_smtp = smtp(&proxy, &address, OWNER_PW).await;
        let mut app_imap = imap(&proxy, &address, &app_pw).await;

        let args: Vec<&str> = change
            .iter()
            .map(|a| if *a == "ADDRESS" { address.as_str() } else { a })
            .collect();
        let changed = Instant::now();
        op.run(&args, stdin);
        ended_with(&mut main_imap, IMAP_BYE, changed, &format!("{name}: IMAP IDLE")).await;
        ended_with(&mut main_pop3, POP3_BYE, changed, &format!("{name}: POP3")).await;
        ended_with(&mut main_smtp, SMTP_BYE, changed, &format!("{name}: SMTP")).await;
        if app_survives {
            imap_alive(&mut app_imap, &format!("{name}: the app password's IMAP")).await;
        } else {
            ended_with(
                &mut app_imap,
                IMAP_BYE,
                changed,
                &format!("{name}: the app password's IMAP"),
            )
            .await;
        }
    }
}

/// A session's relay is chosen at login (plain, keep-on-server, read-only):
/// rights made stricter since end it, so the client logs in again under
/// the guard the new rights call for; the owner's session stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rights_made_stricter_end_the_sessions_relayed_under_the_old_ones() {
    let op = Operator::new();
    let address = mailbox(&op, "stricter");
    let proxy = proxy(&op, "").await;
    let mut owner_imap = imap_idle(&proxy, &address, OWNER_PW).await;
    let mut anna_imap = imap_idle(&proxy, &format!("anna/{address}"), ANNA_PW).await;
    let mut anna_smtp = smtp(&proxy, &format!("anna/{address}"), ANNA_PW).await;

    let changed = Instant::now();
    op.run(
        &[
            "collaborator",
            "set-rights",
            &format!("anna/{address}"),
            "read-only-client,send",
        ],
        "",
    );
    ended_with(&mut anna_imap, IMAP_BYE, changed, "anna's IMAP IDLE").await;
    // Sending is what SMTP does; it reads no messages: it goes on.
    smtp_alive(&mut anna_smtp, "anna's SMTP").await;

    let mut owner_pop3 = pop3(&proxy, &address, OWNER_PW).await;
    let changed = Instant::now();
    op.run(&["mailbox", "set", &address, "--pop3-delete", "deny"], "");
    ended_with(
        &mut owner_pop3,
        POP3_BYE,
        changed,
        "owner's POP3 after keep-on-server",
    )
    .await;
    ended_with(
        &mut owner_imap,
        IMAP_BYE,
        changed,
        "owner's IMAP after keep-on-server",
    )
    .await;
}
