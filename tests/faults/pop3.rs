//! Faults behind the proxy, for POP3 (the twin of `imap.rs`): an upstream
//! that refuses, resets mid-login, hangs, sends garbage or answers
//! `-ERR [SYS/TEMP]`; a second upstream address tried when the first fails;
//! an account store that cannot be read. Each: `-ERR [SYS/TEMP]` to the
//! client (RFC 3206 §4) within a bound, counted, and the session goes on in
//! the AUTHORIZATION state (not a failed attempt of the client's: see
//! `LoginRefusal::counts_as_failure` in src/access/mod.rs).
//!
//! `tests/e2e/pop3.rs` already shows, against a closed port, that four such
//! failures in a row do not close the connection as three wrong passwords do.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::support::client::Client;
use crate::support::fake_pop3::{Behaviour, FakePop3};
use crate::support::metrics;
use crate::support::operator::Operator;
use crate::support::proxy::{Proxy, pop3_listeners};

const UNAVAILABLE: &str = "-ERR [SYS/TEMP] The mail server is not available now. Try again later.";

/// A pass-through proxy to `addresses` (tried in order), with a 3 s login deadline.
async fn proxy(addresses: &[SocketAddr]) -> Proxy {
    let list: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    let config = format!(
        "{}\n[upstream.pop3]\naddress = [{}]\ntls = \"none\"\nlogin = \"pass-through\"\n\n\
         [limits]\nupstream_login_timeout_secs = 3\nupstream_connect_timeout_secs = 3\n",
        pop3_listeners(),
        list.join(", ")
    );
    Proxy::start(&config).await
}

async fn cmd(c: &mut Client, line: &str) -> String {
    c.send(format!("{line}\r\n")).await;
    c.line().await
}

/// A client over POP3S that sends `USER user` and `PASS password`; the
/// reply to PASS.
async fn login(proxy: &Proxy, user: &str, password: &str) -> (Client, String) {
    let mut c = Client::tls(proxy.addr("pop3s")).await;
    assert_eq!(c.line().await, "+OK PEC mail proxy ready.");
    assert_eq!(cmd(&mut c, &format!("USER {user}")).await, "+OK");
    let reply = cmd(&mut c, &format!("PASS {password}")).await;
    (c, reply)
}

fn errors(kind: &str, upstream: SocketAddr) -> f64 {
    metrics::upstream_errors("pop3", kind, upstream)
}

fn logins(result: &str, reason: &str) -> f64 {
    metrics::value(
        "pec_proxy_logins_total",
        &[("protocol", "pop3"), ("result", result), ("reason", reason)],
    )
}

#[tokio::test]
async fn each_upstream_fault_is_sys_temp_and_counted() {
    metrics::install();
    let refused = FakePop3::refused_addr().await;
    let reset = FakePop3::start(Behaviour::ResetAtLogin).await;
    let garbage = FakePop3::start(Behaviour::GarbageGreeting).await;
    let garbage_reply = FakePop3::start(Behaviour::GarbageReply).await;
    let sys_temp = FakePop3::start(Behaviour::SysTempGreeting).await;
    let sys_temp_login = FakePop3::start(Behaviour::SysTempAtLogin).await;
    let hang = FakePop3::start(Behaviour::Hang).await;
    let rows = [
        (refused, "connect"),
        (reset.addr, "io"),
        (garbage.addr, "protocol"),
        (garbage_reply.addr, "protocol"),
        (sys_temp.addr, "unavailable"),
        (sys_temp_login.addr, "unavailable"),
        (hang.addr, "timeout"),
    ];
    for (addr, kind) in rows {
        let proxy = proxy(&[addr]).await;
        let before = errors(kind, addr);
        let unavailable = logins("unavailable", "upstream_unavailable");
        let started = Instant::now();
        let (mut c, reply) = login(&proxy, "alice@pec.example", FakePop3::PASSWORD).await;
        assert_eq!(reply, UNAVAILABLE, "{kind} at {addr}");
        assert!(started.elapsed() < Duration::from_secs(15), "{kind}: bounded");
        // A reset may surface as a read error or as end of stream.
        let counted = errors(kind, addr) + if kind == "io" { errors("closed", addr) } else { 0.0 };
        assert!(counted >= before + 1.0, "{kind} counted for {addr}");
        assert!(logins("unavailable", "upstream_unavailable") >= unavailable + 1.0);
        // The session goes on, in the AUTHORIZATION state, with no USER.
        assert_eq!(cmd(&mut c, "NOOP").await, "+OK", "{kind}");
        assert_eq!(cmd(&mut c, "PASS x").await, "-ERR Send USER first", "{kind}");
        assert_eq!(
            cmd(&mut c, "STAT").await,
            "-ERR Command STAT is not permitted before login"
        );
    }
    // The reset came after the login command, which the fake decoded; the
    // garbage and SYS/TEMP answers to it too.
    for fake in [&reset, &garbage_reply, &sys_temp_login] {
        let seen = fake.seen();
        assert_eq!(seen.logins.len(), 1);
        assert_eq!(seen.logins[0].1, b"alice@pec.example");
    }
}

#[tokio::test]
async fn a_mailbox_in_use_is_passed_on_and_not_tried_elsewhere() {
    metrics::install();
    let in_use = FakePop3::start(Behaviour::InUse).await;
    let good = FakePop3::start(Behaviour::Serve).await;
    let proxy = proxy(&[in_use.addr, good.addr]).await;
    let before = logins("unavailable", "mailbox_in_use");
    let (mut c, reply) = login(&proxy, "alice@pec.example", FakePop3::PASSWORD).await;
    // RFC 2449 §8.1.1: the client learns why, in the server's words.
    assert_eq!(reply, "-ERR [IN-USE] Mailbox is locked by another POP3 session");
    assert!(logins("unavailable", "mailbox_in_use") >= before + 1.0);
    // Another address serves the same mailboxes: not a fault, not retried.
    assert_eq!(good.seen().connections, 0);
    for kind in ["protocol", "unavailable", "auth_failed", "io", "closed"] {
        assert_eq!(errors(kind, in_use.addr), 0.0, "{kind}");
    }
    // Not counted against the client either: the session goes on.
    assert_eq!(cmd(&mut c, "NOOP").await, "+OK");
}

#[tokio::test]
async fn a_second_address_is_tried_when_the_first_fails() {
    metrics::install();
    let good = FakePop3::start(Behaviour::Serve).await;
    let refused = FakePop3::refused_addr().await;
    let reset = FakePop3::start(Behaviour::ResetAtLogin).await;
    let garbage = FakePop3::start(Behaviour::GarbageGreeting).await;
    let sys_temp = FakePop3::start(Behaviour::SysTempGreeting).await;
    let hang = FakePop3::start(Behaviour::Hang).await;
    let firsts = [
        (refused, "connect"),
        (reset.addr, "io"),
        (garbage.addr, "protocol"),
        (sys_temp.addr, "unavailable"),
        (hang.addr, "timeout"),
    ];
    for (first, kind) in firsts {
        let proxy = proxy(&[first, good.addr]).await;
        let before = errors(kind, first) + errors("closed", first);
        let started = Instant::now();
        let (mut c, reply) = login(&proxy, "bob@pec.example", FakePop3::PASSWORD).await;
        assert_eq!(reply, "+OK Logged in.", "after {kind}");
        // The hanging server had half of the 3 s login deadline, not all of it.
        assert!(started.elapsed() < Duration::from_secs(10), "{kind}: bounded");
        assert!(
            errors(kind, first) + errors("closed", first) >= before + 1.0,
            "{kind} counted"
        );
        assert_eq!(
            cmd(&mut c, "STAT").await,
            format!("+OK 1 {}", FakePop3::MESSAGE_BYTES)
        );
    }
    assert_eq!(good.seen().logins.len(), firsts.len());

    // Both addresses failing: SYS/TEMP, each counted.
    let both_fail = proxy(&[refused, reset.addr]).await;
    let before = (
        errors("connect", refused),
        errors("io", reset.addr) + errors("closed", reset.addr),
    );
    let (_, reply) = login(&both_fail, "bob@pec.example", FakePop3::PASSWORD).await;
    assert_eq!(reply, UNAVAILABLE);
    assert!(errors("connect", refused) >= before.0 + 1.0);
    assert!(errors("io", reset.addr) + errors("closed", reset.addr) >= before.1 + 1.0);

    // A wrong password is not retried on the second address.
    let twice = proxy(&[good.addr, good.addr]).await;
    let (_, reply) = login(&twice, "bob@pec.example", "wrong").await;
    assert_eq!(reply, "-ERR [AUTH] Authentication failed");
    assert_eq!(good.seen().logins.len(), firsts.len() + 1);
}

#[tokio::test]
async fn an_unreadable_account_store_is_sys_temp() {
    let op = Operator::new();
    op.add_mailbox("carol@pec.example", "carol-password-1");
    let fake = FakePop3::start(Behaviour::Serve).await;
    let master = op.secret_file("master-password", FakePop3::PASSWORD);
    let config = format!(
        "{}\n[store]\npath = {:?}\n\n[upstream.pop3]\naddress = \"{}\"\ntls = \"none\"\n\
         login = \"master-user\"\nmaster_user = \"proxy-master\"\nmaster_password_file = {:?}\n",
        pop3_listeners(),
        op.store_path(),
        fake.addr,
        master
    );
    let proxy = Proxy::start(&config).await;
    let (_, reply) = login(&proxy, "carol@pec.example", "carol-password-1").await;
    assert_eq!(reply, "+OK Logged in.", "the store works at first");
    assert_eq!(fake.seen().logins[0].1, b"carol@pec.example*proxy-master");

    // The database file is overwritten with garbage under the running proxy.
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", op.store_path().display());
        if std::path::Path::new(&path).exists() {
            std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        }
    }
    // The cache re-reads the store's generation within a second.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (mut c, reply) = login(&proxy, "dave@pec.example", "whatever").await;
        if reply.starts_with("-ERR [SYS/TEMP]") {
            assert_eq!(reply, "-ERR [SYS/TEMP] Temporary failure, try again later");
            // Not the client's fault: the session goes on.
            assert_eq!(cmd(&mut c, "NOOP").await, "+OK");
            break;
        }
        assert_eq!(reply, "-ERR [AUTH] Authentication failed");
        assert!(Instant::now() < deadline, "the broken store was never noticed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(fake.seen().logins.len(), 1, "nothing more reached the upstream");
}
