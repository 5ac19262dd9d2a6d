//! A fleet: two pec-proxy nodes on one PostgreSQL store (a private cluster
//! of this binary), in front of the same real Dovecot and Postfix, as a
//! provider runs them behind a load balancer. What a client and an operator
//! see:
//! - a mailbox added with the admin commands logs in through either node;
//! - an access switched off with the admin commands refuses the next login
//!   at the other node within a second;
//! - a wrong-password series split evenly over both nodes is refused after
//!   as many failures as on one node, and a node started later knows it;
//! - the per-mailbox sending rate holds over both nodes together;
//! - PostgreSQL stopped mid-run: logins get the temporary error, never
//!   acceptance; started again: logins work, without restarting the nodes.

// Real daemons, real time: the elapsed times asserted are wall-clock.
#![allow(clippy::disallowed_types)]

mod support;

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use support::client::Client;
use support::operator::Operator;
use support::postgres::PgCluster;
use support::proxy::{Proxy, store_config};
use support::upstreams::Upstreams;

fn upstreams() -> &'static Upstreams {
    static UPSTREAMS: OnceLock<Upstreams> = OnceLock::new();
    UPSTREAMS.get_or_init(Upstreams::start)
}

const PW: &str = "fleet proxy password";

/// A node of `op`'s fleet: IMAPS, POP3S and SMTPS in front of the real
/// Dovecot (master user) and Postfix (XCLIENT), with its own control socket.
async fn node(op: &Operator, name: &str, extra: &str) -> Proxy {
    let config = store_config(upstreams(), op, extra).replace(
        &format!("control_socket = {:?}", op.control_socket()),
        &format!(
            "control_socket = {:?}",
            op.dir.path().join(format!("{name}.sock"))
        ),
    );
    assert!(config.contains(&format!("{name}.sock")), "{config}");
    Proxy::start(&config).await
}

/// Two nodes of one fleet.
async fn fleet(op: &Operator, extra: &str) -> [Proxy; 2] {
    [node(op, "a", extra).await, node(op, "b", extra).await]
}

/// A Dovecot mailbox of the test's own, added to the store with `PW`.
fn mailbox(op: &Operator, name: &str) -> String {
    let address = format!("{name}@pec.example");
    upstreams().add_user(&address, "dovecot's own, unused");
    op.add_mailbox(&address, PW);
    address
}

/// One IMAP LOGIN on a fresh connection from `from`: the tagged reply.
async fn imap_login_from(proxy: &Proxy, from: IpAddr, user: &str, pw: &str) -> String {
    let mut c = Client::tls_from(from, proxy.addr("imaps")).await;
    c.line().await;
    c.command("a", &format!("LOGIN {user:?} {pw:?}")).await
}

async fn imap_login(proxy: &Proxy, user: &str, pw: &str) -> String {
    imap_login_from(proxy, "127.0.0.1".parse().unwrap(), user, pw).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mailbox_added_with_the_admin_commands_logs_in_through_either_node() {
    let op = Operator::postgres();
    let [a, b] = fleet(&op, "").await;
    let address = mailbox(&op, "either");
    for node in [&a, &b] {
        let reply = imap_login(node, &address, PW).await;
        assert!(reply.starts_with("a OK "), "{reply}");
    }
    // Both nodes wrote the access log of the one store.
    let log = op.access_log(&address);
    assert_eq!(
        log.iter().filter(|r| r["result"] == "success").count(),
        2,
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_switched_off_refuses_the_next_login_at_the_other_node_within_a_second() {
    let op = Operator::postgres();
    let [_a, b] = fleet(&op, "").await;
    let address = mailbox(&op, "switch");
    // Node B has the record cached.
    assert!(imap_login(&b, &address, PW).await.starts_with("a OK "));
    op.run(&["mailbox", "set", &address, "--imap", "off"], "");
    let changed = Instant::now();
    loop {
        let reply = imap_login(&b, &address, PW).await;
        if reply.starts_with("a NO [AUTHORIZATIONFAILED]") {
            break;
        }
        assert!(reply.starts_with("a OK "), "{reply}");
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "B still lets the login in after 1 s"
        );
    }
    let took = changed.elapsed();
    assert!(took < Duration::from_secs(1), "{took:?}");
}

/// `[penalty]` for the split series: no delays to speak of, refusal of the
/// client address after `REFUSE_AFTER` failures.
const REFUSE_AFTER: usize = 6;

fn penalty() -> String {
    format!(
        "[penalty]\ninitial_delay_ms = 1\nmax_delay_ms = 1\nip_refuse_after = {REFUSE_AFTER}\n\
         mailbox_refuse_after = 0\nrefuse_secs = 60\n"
    )
}

/// Wrong passwords from `from` for `user`, each at the next node in turn,
/// until one is refused unchecked: how many were judged before it.
async fn failures_before_refusal(nodes: &[&Proxy], from: IpAddr, user: &str) -> usize {
    for i in 0..REFUSE_AFTER * 3 {
        let node = nodes[i % nodes.len()];
        let reply = imap_login_from(node, from, user, &format!("guess {i}")).await;
        if reply.starts_with("a NO [UNAVAILABLE]") {
            return i;
        }
        assert!(
            reply.starts_with("a NO [AUTHENTICATIONFAILED]"),
            "attempt {i}: {reply}"
        );
        // The other node hears of it within milliseconds; a client's next
        // attempt comes later than that.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_series_split_over_two_nodes_is_refused_as_on_one() {
    let op = Operator::postgres();
    let [a, b] = fleet(&op, &penalty()).await;
    let address = mailbox(&op, "sprayed");
    // One node: the series is refused after REFUSE_AFTER failures.
    let alone = failures_before_refusal(&[&a], "127.0.0.71".parse().unwrap(), &address).await;
    assert_eq!(alone, REFUSE_AFTER);
    // The same series, from another address, alternating A, B, A, B...
    let split = failures_before_refusal(&[&a, &b], "127.0.0.72".parse().unwrap(), &address).await;
    assert_eq!(split, alone);
    // And both nodes refuse that address now, whichever it tries; so does
    // a node started after the series (it reads back what it missed).
    let c = node(&op, "c", &penalty()).await;
    for node in [&a, &b, &c] {
        let reply = imap_login_from(node, "127.0.0.72".parse().unwrap(), &address, PW).await;
        assert!(reply.starts_with("a NO [UNAVAILABLE]"), "{reply}");
    }
    // While another address still logs in.
    let reply = imap_login_from(&c, "127.0.0.73".parse().unwrap(), &address, PW).await;
    assert!(reply.starts_with("a OK "), "{reply}");
}

/// A TLS SMTP client, greeted, EHLO'd and authenticated as `user`.
async fn smtp_logged_in(proxy: &Proxy, user: &str) -> Client {
    let mut c = Client::tls(proxy.addr("smtps")).await;
    assert!(c.line().await.starts_with("220 "));
    c.send("EHLO client.example\r\n").await;
    while c.line().await.starts_with("250-") {}
    c.send(format!(
        "AUTH PLAIN {}\r\n",
        STANDARD.encode(format!("\0{user}\0{PW}"))
    ))
    .await;
    assert_eq!(c.line().await, "235 2.7.0 Authentication successful");
    c
}

/// Submits one message from `from` to itself: the reply to its end of data,
/// or the refusal of `MAIL FROM`.
async fn send_one(proxy: &Proxy, from: &str, n: usize) -> String {
    let mut c = smtp_logged_in(proxy, from).await;
    c.send(format!("MAIL FROM:<{from}>\r\n")).await;
    let reply = c.line().await;
    if !reply.starts_with("250") {
        return reply;
    }
    c.send(format!("RCPT TO:<{from}>\r\nDATA\r\n")).await;
    assert!(c.line().await.starts_with("250"));
    assert!(c.line().await.starts_with("354"));
    c.send(format!(
        "From: {from}\r\nTo: {from}\r\nSubject: fleet {n}\r\nMessage-ID: <fleet{n}.{}@pec.example>\r\n\r\nbody\r\n.\r\n",
        std::process::id()
    ))
    .await;
    c.line().await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sending_rate_holds_over_both_nodes() {
    const PER_MINUTE: usize = 4;
    let op = Operator::postgres();
    let [a, b] = fleet(
        &op,
        &format!("[pec_checks]\nmessages_per_minute = {PER_MINUTE}\n"),
    )
    .await;
    let address = mailbox(&op, "sender");
    for n in 0..PER_MINUTE {
        let node = if n % 2 == 0 { &a } else { &b };
        let reply = send_one(node, &address, n).await;
        assert!(reply.starts_with("250 2.0.0"), "message {n}: {reply}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for node in [&a, &b] {
        assert_eq!(
            send_one(node, &address, 99).await,
            "450 4.7.1 Too many messages from this mailbox, try again in a minute"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_stopped_gives_temporary_errors_and_started_again_logins_work() {
    // A cluster of this test's own: the others keep theirs running.
    let cluster = PgCluster::private();
    let op = Operator::postgres_on(&cluster);
    let [a, b] = fleet(&op, "[limits]\nauth_cache_ttl_secs = 300\n").await;
    let address = mailbox(&op, "outage");
    for node in [&a, &b] {
        assert!(imap_login(node, &address, PW).await.starts_with("a OK "));
    }
    cluster.stop();
    // Past the cache's poll: every login is now a temporary error, never
    // acceptance (nor a wrong-password answer), on both nodes.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for round in 0..3 {
        for node in [&a, &b] {
            let reply = imap_login(node, &address, PW).await;
            assert!(reply.starts_with("a NO [UNAVAILABLE]"), "round {round}: {reply}");
        }
    }
    cluster.start();
    let restarted = Instant::now();
    for node in [&a, &b] {
        loop {
            let reply = imap_login(node, &address, PW).await;
            if reply.starts_with("a OK ") {
                break;
            }
            assert!(reply.starts_with("a NO [UNAVAILABLE]"), "{reply}");
            assert!(
                restarted.elapsed() < Duration::from_secs(15),
                "no recovery: {reply}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // And the nodes write the access log again.
    let log = op.access_log(&address);
    assert!(
        log.iter().filter(|r| r["result"] == "success").count() >= 4,
        "{log:?}"
    );
}
