//! Faults behind the proxy: an upstream that refuses, resets mid-login,
//! hangs, sends garbage or says it is unavailable; a second upstream address
//! tried when the first fails; an account store that cannot be read. Each:
//! `NO [UNAVAILABLE]` to the client, counted, and the proxy keeps serving.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::support::client::Client;
use crate::support::fake_imap::{Behaviour, FakeImap};
use crate::support::metrics;
use crate::support::operator::Operator;
use crate::support::proxy::{Proxy, imap_listeners};

const UNAVAILABLE: &str = "a NO [UNAVAILABLE] The mail server is not available now. Try again later.";

/// A pass-through proxy to `addresses` (tried in order), with a 3 s login deadline.
async fn proxy(addresses: &[SocketAddr]) -> Proxy {
    let list: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    let config = format!(
        "{}\n[upstream.imap]\naddress = [{}]\ntls = \"none\"\nlogin = \"pass-through\"\n\n\
         [limits]\nupstream_login_timeout_secs = 3\nupstream_connect_timeout_secs = 3\n",
        imap_listeners(),
        list.join(", ")
    );
    Proxy::start(&config).await
}

async fn login(proxy: &Proxy, user: &str) -> (Client, String) {
    let mut c = Client::tls(proxy.addr("imaps")).await;
    c.line().await;
    let reply = c
        .command("a", &format!("LOGIN {user} {}", FakeImap::PASSWORD))
        .await;
    (c, reply)
}

fn errors(kind: &str, upstream: SocketAddr) -> f64 {
    metrics::upstream_errors("imap", kind, upstream)
}

#[tokio::test]
async fn each_upstream_fault_is_unavailable_and_counted() {
    metrics::install();
    let refused = FakeImap::refused_addr().await;
    let reset = FakeImap::start(Behaviour::ResetAtLogin).await;
    let garbage = FakeImap::start(Behaviour::GarbageGreeting).await;
    let garbage_reply = FakeImap::start(Behaviour::GarbageReply).await;
    let bye = FakeImap::start(Behaviour::Bye).await;
    let hang = FakeImap::start(Behaviour::Hang).await;
    let rows = [
        (refused, "connect"),
        (reset.addr, "io"),
        (garbage.addr, "protocol"),
        (garbage_reply.addr, "protocol"),
        (bye.addr, "unavailable"),
        (hang.addr, "timeout"),
    ];
    for (addr, kind) in rows {
        let proxy = proxy(&[addr]).await;
        let before = errors(kind, addr);
        let started = Instant::now();
        let (mut c, reply) = login(&proxy, "alice@pec.example").await;
        assert_eq!(reply, UNAVAILABLE, "{kind} at {addr}");
        assert!(started.elapsed() < Duration::from_secs(15), "{kind}: bounded");
        // A reset may surface as a read error or as end of stream.
        let counted = errors(kind, addr) + if kind == "io" { errors("closed", addr) } else { 0.0 };
        assert!(counted >= before + 1.0, "{kind} counted for {addr}");
        // The session goes on: the failure did not count against the client.
        assert_eq!(c.command("b", "NOOP").await, "b OK NOOP completed.");
    }
    assert_eq!(reset.seen().logins.len(), 1, "the reset came after LOGIN");
}

#[tokio::test]
async fn a_second_address_is_tried_when_the_first_fails() {
    metrics::install();
    let good = FakeImap::start(Behaviour::Serve).await;
    let refused = FakeImap::refused_addr().await;
    let reset = FakeImap::start(Behaviour::ResetAtLogin).await;
    let hang = FakeImap::start(Behaviour::Hang).await;
    for first in [refused, reset.addr, hang.addr] {
        let proxy = proxy(&[first, good.addr]).await;
        let (mut c, reply) = login(&proxy, "bob@pec.example").await;
        assert!(
            reply.starts_with("a OK [CAPABILITY IMAP4rev1 IDLE] Logged in"),
            "{reply}"
        );
        assert_eq!(c.command("b", "NOOP").await, "b OK NOOP done");
    }
    assert!(errors("connect", refused) >= 1.0);
    // The hanging server had half of the 3 s login deadline, not all of it.
    assert!(errors("timeout", hang.addr) >= 1.0);
    // When the last address hangs, its timeout is counted against it, not
    // against the first address.
    let before = (errors("timeout", refused), errors("timeout", hang.addr));
    let last_hangs = proxy(&[refused, hang.addr]).await;
    let (_c, reply) = login(&last_hangs, "bob@pec.example").await;
    assert_eq!(reply, UNAVAILABLE);
    assert_eq!(errors("timeout", refused), before.0);
    assert_eq!(errors("timeout", hang.addr), before.1 + 1.0);
    assert_eq!(good.seen().logins.len(), 3);
    // A wrong password is not retried on the second address.
    let proxy = proxy(&[good.addr, good.addr]).await;
    let mut c = Client::tls(proxy.addr("imaps")).await;
    c.line().await;
    let reply = c.command("a", "LOGIN bob@pec.example wrong").await;
    assert_eq!(reply, "a NO [AUTHENTICATIONFAILED] Authentication failed");
    assert_eq!(good.seen().logins.len(), 4);
}

#[tokio::test]
async fn an_unreadable_account_store_is_unavailable() {
    let op = Operator::new();
    op.add_mailbox("carol@pec.example", "carol-password-1");
    let fake = FakeImap::start(Behaviour::Serve).await;
    let master = op.secret_file("master-password", FakeImap::PASSWORD);
    let config = format!(
        "{}\n[store]\npath = {:?}\n\n[upstream.imap]\naddress = \"{}\"\ntls = \"none\"\n\
         login = \"master-user\"\nmaster_user = \"proxy-master\"\nmaster_password_file = {:?}\n",
        imap_listeners(),
        op.store_path(),
        fake.addr,
        master
    );
    let proxy = Proxy::start(&config).await;
    let mut c = Client::tls(proxy.addr("imaps")).await;
    c.line().await;
    let reply = c.command("a", "LOGIN carol@pec.example carol-password-1").await;
    assert!(reply.starts_with("a OK"), "the store works at first: {reply}");
    assert_eq!(fake.seen().logins[0].0, b"carol@pec.example*proxy-master");

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
        let mut c = Client::tls(proxy.addr("imaps")).await;
        c.line().await;
        let reply = c.command("a", "LOGIN dave@pec.example whatever").await;
        if reply == UNAVAILABLE {
            assert_eq!(c.command("b", "NOOP").await, "b OK NOOP completed.");
            break;
        }
        assert_eq!(reply, "a NO [AUTHENTICATIONFAILED] Authentication failed");
        assert!(Instant::now() < deadline, "the broken store was never noticed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(fake.seen().logins.len(), 1, "nothing more reached the upstream");
}
