//! The brute-force penalty through the proxy: a login storm with wrong
//! passwords from one client address shows the delays growing, then
//! refusals; other addresses are not affected; the penalty's memory stays
//! within its cap however many addresses fail.
//!
//! The in-process proxy listens on 127.0.0.1; clients bind other loopback
//! addresses (Linux routes all of 127/8 to lo) to look like other clients.
//! The upstream is a fake that judges passwords (pass-through), so a wrong
//! password is refused by "the server" as in production.
//!
//! Alone in its binary: it asserts process-wide penalty metrics exactly (no
//! delay counted for another address, a delay sum of exactly 0.9 s, at most
//! 16 records tracked), and any other proxy in the process would move them:
//! a failed login with the penalty on counts a delay, and every proxy's
//! penalty sets the one `pec_proxy_login_penalty_tracked` gauge to its own
//! size (at each failure and each sweep).

mod support;

use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use support::client::Client;
use support::fake_imap::{Behaviour, FakeImap, upstream_config};
use support::metrics;
use support::proxy::{Proxy, imap_listeners};

const NO_AUTH: &str = "NO [AUTHENTICATIONFAILED] Authentication failed";
const REFUSED: &str = "NO [UNAVAILABLE] Too many failed logins, try again later";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn proxy(fake: &FakeImap, penalty: &str) -> Proxy {
    let config = format!(
        "{}{}\n[limits]\nmax_login_failures = 100\n\n[penalty]\n{penalty}\n",
        imap_listeners(),
        upstream_config(fake.addr)
    );
    Proxy::start(&config).await
}

/// One login over IMAPS from `from`; returns the tagged reply and how long
/// the proxy took to give it.
async fn login(proxy: &Proxy, from: IpAddr, user: &str, password: &str) -> (String, Duration) {
    let mut c = Client::tls_from(from, proxy.addr("imaps")).await;
    c.line().await; // greeting
    let started = Instant::now();
    let reply = c.command("a", &format!("LOGIN {user} {password}")).await;
    let took = started.elapsed();
    (reply.trim_start_matches("a ").to_owned(), took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_storm_from_one_address_is_slowed_then_refused_others_are_not() {
    metrics::install();
    let fake = FakeImap::start(Behaviour::Serve).await;
    let proxy = proxy(
        &fake,
        "initial_delay_ms = 300\nmax_delay_ms = 1200\nip_refuse_after = 6\nmailbox_refuse_after = 0\nrefuse_secs = 600",
    )
    .await;
    let attacker = ip("127.0.0.2");

    let mut took = Vec::new();
    for i in 0..6 {
        let (reply, t) = login(&proxy, attacker, "victim@pec.example", &format!("guess-{i}")).await;
        assert_eq!(reply, NO_AUTH, "attempt {i}");
        took.push(t);
    }
    // Each login waits at least 300 ms * 2^(failures so far - 1), at most 1.2 s.
    let floor_ms = [0, 300, 600, 1200, 1200, 1200];
    for (i, (t, floor)) in took.iter().zip(floor_ms).enumerate() {
        assert!(
            *t >= Duration::from_millis(floor),
            "attempt {i} took {t:?}, expected at least {floor} ms: {took:?}"
        );
    }
    eprintln!("login storm: time to each reply {took:?}");
    assert_eq!(fake.seen().logins.len(), 6);

    // The sixth failure crossed the threshold: refused unchecked, even with
    // the right password of another mailbox, and without a delay.
    let (reply, t) = login(&proxy, attacker, "victim@pec.example", "guess-7").await;
    assert_eq!(reply, REFUSED);
    assert!(t < Duration::from_millis(1200), "refusals are not delayed: {t:?}");
    let (reply, _) = login(&proxy, attacker, "someone@pec.example", FakeImap::PASSWORD).await;
    assert_eq!(reply, REFUSED);
    assert_eq!(
        fake.seen().logins.len(),
        6,
        "refused logins never reach the upstream"
    );

    // Another address is neither refused nor delayed, for another mailbox or
    // for the attacked one (its per-name threshold is off here, and one
    // wrong guess per name from the storm is below nothing: it only delays).
    let delays = metrics::value("pec_proxy_login_penalty_delays_total", &[]);
    let (reply, _) = login(&proxy, ip("127.0.0.3"), "someone@pec.example", FakeImap::PASSWORD).await;
    assert!(
        reply.starts_with("OK [CAPABILITY IMAP4rev1 IDLE] Logged in"),
        "{reply}"
    );
    assert_eq!(
        metrics::value("pec_proxy_login_penalty_delays_total", &[]),
        delays,
        "the other address was not delayed"
    );
    assert!(metrics::value("pec_proxy_login_penalty_refusals_total", &[("protocol", "imap")]) >= 2.0);
    assert!(metrics::value("pec_proxy_login_penalty_delays_total", &[("protocol", "imap")]) >= 5.0);
    assert!(
        metrics::value(
            "pec_proxy_logins_total",
            &[("result", "refused"), ("reason", "too_many_failures")]
        ) >= 2.0
    );

    // The same wrong password again does not escalate: a fresh address
    // retrying one stale password stays at the first delay (the histogram
    // holds the delays decided, not the times measured: exact).
    let phone = ip("127.0.0.4");
    let delayed = || metrics::value("pec_proxy_login_penalty_delay_seconds_sum", &[]);
    let before = delayed();
    for _ in 0..4 {
        let (reply, _) = login(&proxy, phone, "phone@pec.example", "stale").await;
        assert_eq!(reply, NO_AUTH);
    }
    let total = delayed() - before;
    assert!((total - 0.9).abs() < 1e-6, "0 + 3 x 300 ms, got {total}");
    let (reply, _) = login(&proxy, phone, "phone@pec.example", FakeImap::PASSWORD).await;
    assert!(reply.starts_with("OK "), "{reply}");

    // Memory: 40 addresses fail once each against a cap of 16 records.
    drop(proxy);
    let proxy = proxy_with_cap(&fake).await;
    for i in 1..=40u8 {
        let (reply, _) = login(
            &proxy,
            ip(&format!("127.0.1.{i}")),
            &format!("u{i}@pec.example"),
            "x",
        )
        .await;
        assert_eq!(reply, NO_AUTH);
        let clients = metrics::value("pec_proxy_login_penalty_tracked", &[("dimension", "client")]);
        let logins = metrics::value("pec_proxy_login_penalty_tracked", &[("dimension", "login")]);
        assert!(clients <= 16.0 && logins <= 16.0, "{clients} {logins} after {i}");
    }
    // The newest address is still remembered: its next login is delayed.
    let delays = metrics::value("pec_proxy_login_penalty_delays_total", &[]);
    login(&proxy, ip("127.0.1.40"), "u40@pec.example", "y").await;
    assert_eq!(
        metrics::value("pec_proxy_login_penalty_delays_total", &[]),
        delays + 1.0
    );
}

async fn proxy_with_cap(fake: &FakeImap) -> Proxy {
    proxy(fake, "initial_delay_ms = 10\nmax_delay_ms = 20\nmax_tracked = 16").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_networks_are_exempt() {
    let fake = FakeImap::start(Behaviour::Serve).await;
    let config = format!(
        "{}{}\n[limits]\nmax_login_failures = 100\ntrusted_networks = [\"127.0.0.5/32\"]\n\n[penalty]\ninitial_delay_ms = 2000\nip_refuse_after = 2\n",
        imap_listeners(),
        upstream_config(fake.addr)
    );
    let proxy = Proxy::start(&config).await;
    for i in 0..4 {
        let (reply, t) = login(&proxy, ip("127.0.0.5"), "webmail@pec.example", &format!("w{i}")).await;
        assert_eq!(reply, NO_AUTH);
        assert!(t < Duration::from_millis(2000), "{t:?}");
    }
}
