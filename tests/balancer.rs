//! Behind a load balancer: listeners with `proxy_protocol = true` in front
//! of the real Dovecot and Postfix, with this test playing the balancer
//! (127.0.0.1, the one trusted proxy) and writing the PROXY header itself,
//! v1 or v2, as HAProxy's `send-proxy` / `send-proxy-v2` do. What a client
//! and an operator see:
//! - the address in the header is the client's: in the access log, in
//!   Dovecot's log (through `ID x-originating-ip`), in the per-client limits
//!   and the penalty;
//! - a connection from an address that is not a trusted proxy is closed
//!   unanswered, and so is one whose header is malformed, too long, too
//!   slow, or comes after the client's first bytes;
//! - a header split over many segments is read whole; v2 LOCAL (a health
//!   check) is answered as the balancer's own connection.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use pec_proxy::testing::net::proxy_protocol::{encode_v1, encode_v2};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::client::{Client, connect_from};
use support::operator::Operator;
use support::proxy::{Proxy, store_config};
use support::upstreams::Upstreams;

fn upstreams() -> &'static Upstreams {
    static UPSTREAMS: OnceLock<Upstreams> = OnceLock::new();
    UPSTREAMS.get_or_init(Upstreams::start)
}

const PW: &str = "balanced proxy password";
const BALANCER: &str = "127.0.0.1";

/// A proxy whose IMAPS, POP3S and SMTPS listeners all expect a PROXY header
/// from 127.0.0.1; `limits` is added to its `[limits]`.
async fn proxy(op: &Operator, limits: &str) -> Proxy {
    support::metrics::install();
    let config = store_config(
        upstreams(),
        op,
        &format!(
            "[limits]\ntrusted_proxies = [\"{BALANCER}/32\"]\nproxy_header_timeout_ms = 500\n{limits}\n\
             [penalty]\ninitial_delay_ms = 1\nmax_delay_ms = 1\nip_refuse_after = 3\nmailbox_refuse_after = 0\n"
        ),
    )
    .replace("tls = \"implicit\"\n", "tls = \"implicit\"\nproxy_protocol = true\n");
    assert_eq!(config.matches("proxy_protocol = true").count(), 3, "{config}");
    Proxy::start(&config).await
}

fn mailbox(op: &Operator, name: &str) -> String {
    let address = format!("{name}@pec.example");
    upstreams().add_user(&address, "dovecot's own, unused");
    op.add_mailbox(&address, PW);
    address
}

fn balancer() -> IpAddr {
    BALANCER.parse().unwrap()
}

/// An IMAPS connection through "the balancer" for `client`: v2 header.
async fn imaps_as(proxy: &Proxy, client: SocketAddr) -> Client {
    let to = proxy.addr("imaps");
    let mut c = Client::tls_after(balancer(), to, &encode_v2(client, to)).await;
    assert!(c.line().await.starts_with("* OK "));
    c
}

/// Connections dropped before their session, by any reason
/// (`pec_proxy_proxy_headers_total` but for the accepted results).
fn dropped() -> f64 {
    // One rendering: other tests of this binary count accepted headers
    // meanwhile.
    support::metrics::handle()
        .render()
        .lines()
        .filter(|l| l.starts_with("pec_proxy_proxy_headers_total{"))
        .filter(|l| {
            !["proxy", "local", "unknown"]
                .iter()
                .any(|r| l.contains(&format!("result=\"{r}\"")))
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// What the proxy sends on a raw connection from `from` after `bytes`,
/// until it closes or 2 s pass.
async fn raw_answer(from: IpAddr, to: SocketAddr, bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut tcp = connect_from(from, to).await.unwrap();
    let _ = tcp.write_all(bytes).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (got, closed)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_address_in_the_header_is_the_clients_in_the_access_log_and_at_dovecot() {
    let op = Operator::new();
    let proxy = proxy(&op, "").await;
    let address = mailbox(&op, "behind");
    let client: SocketAddr = "198.51.100.7:40001".parse().unwrap();
    let mut c = imaps_as(&proxy, client).await;
    let reply = c.command("a", &format!("LOGIN {address:?} {PW:?}")).await;
    assert!(reply.starts_with("a OK "), "{reply}");
    c.command("b", "LOGOUT").await;
    let log = op.access_log(&address);
    assert_eq!(log[0]["client_ip"], "198.51.100.7", "{log:?}");
    // Dovecot was told too (ID x-originating-ip): its login line names it.
    let mut seen = false;
    for _ in 0..50 {
        let tail = upstreams().log_tail(400);
        if tail
            .lines()
            .any(|l| l.contains(&address) && l.contains("198.51.100.7"))
        {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen,
        "Dovecot's log never named the client:\n{}",
        upstreams().log_tail(40)
    );
    // v1, as `send-proxy` writes it, works the same way.
    let to = proxy.addr("imaps");
    let v1_client: SocketAddr = "203.0.113.9:5555".parse().unwrap();
    let mut c = Client::tls_after(balancer(), to, &encode_v1(v1_client, to)).await;
    assert!(c.line().await.starts_with("* OK "));
    let reply = c.command("a", &format!("LOGIN {address:?} {PW:?}")).await;
    assert!(reply.starts_with("a OK "), "{reply}");
    assert_eq!(op.access_log(&address)[0]["client_ip"], "203.0.113.9");
}

#[tokio::test(flavor = "multi_thread")]
async fn per_client_limits_and_the_penalty_follow_the_header_not_the_balancer() {
    let op = Operator::new();
    let proxy = proxy(&op, "max_prelogin_per_ip = 2\n").await;
    let address = mailbox(&op, "limited");
    // Two pending logins from one client are its limit...
    let crowd: SocketAddr = "198.51.100.20:1000".parse().unwrap();
    let _a = imaps_as(&proxy, crowd).await;
    let _b = imaps_as(&proxy, crowd).await;
    // (on an implicit-TLS port the refusal is the close: no plain-text
    // line can be read before TLS).
    let to = proxy.addr("imaps");
    let (got, closed) = raw_answer(balancer(), to, &encode_v2(crowd, to)).await;
    assert!(got.is_empty() && closed, "a third pending login was let in");
    // ...while another client through the same balancer goes on.
    let other: SocketAddr = "198.51.100.21:1000".parse().unwrap();
    let mut c = imaps_as(&proxy, other).await;
    assert!(
        c.command("a", &format!("LOGIN {address:?} {PW:?}"))
            .await
            .starts_with("a OK ")
    );

    // The penalty: three wrong passwords from one client refuse it, not
    // the others behind the balancer.
    let guesser: SocketAddr = "198.51.100.30:1000".parse().unwrap();
    for i in 0..3 {
        let mut c = imaps_as(&proxy, guesser).await;
        let reply = c.command("a", &format!("LOGIN {address:?} \"guess {i}\"")).await;
        assert!(reply.starts_with("a NO [AUTHENTICATIONFAILED]"), "{reply}");
    }
    let mut c = imaps_as(&proxy, guesser).await;
    let reply = c.command("a", &format!("LOGIN {address:?} {PW:?}")).await;
    assert!(reply.starts_with("a NO [UNAVAILABLE]"), "{reply}");
    let mut c = imaps_as(&proxy, "198.51.100.31:1000".parse().unwrap()).await;
    let reply = c.command("a", &format!("LOGIN {address:?} {PW:?}")).await;
    assert!(reply.starts_with("a OK "), "{reply}");
}

#[tokio::test(flavor = "multi_thread")]
async fn what_is_not_a_trusted_balancers_header_is_closed_unanswered() {
    let op = Operator::new();
    let proxy = proxy(&op, "").await;
    let to = proxy.addr("imaps");
    let client: SocketAddr = "198.51.100.40:1000".parse().unwrap();
    let v2 = encode_v2(client, to);
    let mut huge = v2[..16].to_vec();
    huge[14] = 0xff;
    huge[15] = 0xff;
    let client_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    let mut hello_then_header = client_hello.to_vec();
    hello_then_header.extend_from_slice(&v2);
    let rows: Vec<(&str, IpAddr, Vec<u8>)> = vec![
        (
            "a valid header from an untrusted address",
            "127.0.0.2".parse().unwrap(),
            v2.clone(),
        ),
        ("v2 declaring 65535 bytes", balancer(), huge),
        (
            "v1 with two spaces",
            balancer(),
            b"PROXY TCP4  198.51.100.40 127.0.0.1 1000 993\r\n".to_vec(),
        ),
        (
            "v1 with a bad port",
            balancer(),
            b"PROXY TCP4 198.51.100.40 127.0.0.1 99999 993\r\n".to_vec(),
        ),
        (
            "v1 without CRLF, 120 bytes",
            balancer(),
            [b"PROXY TCP4 ".as_slice(), &[b'1'; 109]].concat(),
        ),
        (
            "a TLS ClientHello before the header",
            balancer(),
            hello_then_header,
        ),
        ("nothing at all (the header's deadline)", balancer(), Vec::new()),
    ];
    for (what, from, bytes) in rows {
        let before = dropped();
        let (got, closed) = raw_answer(from, to, &bytes).await;
        assert!(
            got.is_empty(),
            "{what}: the proxy answered {:?}",
            String::from_utf8_lossy(&got)
        );
        assert!(closed, "{what}: still open after 2 s");
        assert!(dropped() > before, "{what}: not counted as dropped");
    }
    // And the proxy still serves a good one.
    let mut c = imaps_as(&proxy, client).await;
    assert!(c.command("a", "CAPABILITY").await.starts_with("a OK "));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_header_in_pieces_is_read_whole_and_local_is_the_balancers_own() {
    let op = Operator::new();
    let proxy = proxy(&op, "").await;
    let address = mailbox(&op, "pieces");
    let to = proxy.addr("imaps");
    let client: SocketAddr = "[2001:db8::7]:4242".parse().unwrap();
    // One byte per segment, then TLS as usual.
    let header = encode_v2(client, "[::1]:993".parse().unwrap());
    let mut tcp = connect_from(balancer(), to).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    for b in &header {
        tcp.write_all(&[*b]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut c = support::client::Client::tls_over(tcp).await;
    assert!(c.line().await.starts_with("* OK "));
    let reply = c.command("a", &format!("LOGIN {address:?} {PW:?}")).await;
    assert!(reply.starts_with("a OK "), "{reply}");
    assert_eq!(op.access_log(&address)[0]["client_ip"], "2001:db8::7");
    // v2 LOCAL: HAProxy's health check gets the greeting.
    let local = b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00";
    let mut c = Client::tls_after(balancer(), to, local).await;
    assert!(c.line().await.starts_with("* OK "));
}

/// PROXY protocol towards the mail server: with `[upstream.imap]
/// proxy_protocol = true` (and no `ID`), Dovecot learns the client's
/// address from the header pec-proxy sends first, on a `haproxy = yes`
/// listener, and logs it as the login's remote address.
#[tokio::test(flavor = "multi_thread")]
async fn dovecot_hears_the_client_from_the_proxys_own_proxy_header() {
    let op = Operator::new();
    let up = upstreams();
    let plain = format!("[upstream.imap]\naddress = \"127.0.0.1:{}\"\n", up.imap_port);
    let config = store_config(
        up,
        &op,
        &format!("[limits]\ntrusted_proxies = [\"{BALANCER}/32\"]\n"),
    )
    .replace("tls = \"implicit\"\n", "tls = \"implicit\"\nproxy_protocol = true\n")
    .replace(
        &plain,
        &format!(
            "[upstream.imap]\naddress = \"127.0.0.1:{}\"\nproxy_protocol = true\nsend_client_address = false\n",
            up.imap_haproxy_port
        ),
    );
    assert!(config.contains(&up.imap_haproxy_port.to_string()), "{config}");
    let proxy = Proxy::start(&config).await;
    let address = mailbox(&op, "heard");
    let mut c = imaps_as(&proxy, "198.51.100.50:50000".parse().unwrap()).await;
    let reply = c.command("a", &format!("LOGIN {address:?} {PW:?}")).await;
    assert!(reply.starts_with("a OK "), "{reply}");
    let mut seen = false;
    for _ in 0..50 {
        let tail = up.log_tail(400);
        if tail
            .lines()
            .any(|l| l.contains("Login: user=<") && l.contains(&address) && l.contains("rip=198.51.100.50"))
        {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen,
        "Dovecot never logged rip=198.51.100.50:\n{}",
        up.log_tail(30)
    );
}
