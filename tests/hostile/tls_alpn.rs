//! ALPACA (CVE-2021-3618) at the TLS layer: a web page makes a browser open
//! a TLS connection to a mail port, offering ALPN `http/1.1` or `h2`. The
//! proxy refuses such a ClientHello with the `no_application_protocol`
//! alert (RFC 7301 §3.2) before a byte of the mail protocol is spoken; a
//! client without ALPN (most mail clients) or with its own protocol's
//! identifier is served. Each row is a real rustls client against the
//! in-process proxy, on implicit TLS and after STARTTLS.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::AlertDescription;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::support::client::{cert_der, tls_config};
use crate::support::fake_imap::FakeImap;
use crate::support::hostile::told_to_start_tls;
use crate::support::metrics;
use crate::support::proxy::{Proxy, imap_listeners};

const IMAP_GREETING: &str = "* OK [CAPABILITY IMAP4rev1 ";
const POP3_GREETING: &str = "+OK PEC mail proxy ready.";
const SMTP_GREETING: &str = "220 proxy.pec.example ESMTP PEC mail proxy ready";

/// Every kind of TLS listener, in front of upstreams that are never reached
/// (nothing here logs in).
async fn proxy() -> Proxy {
    let nowhere = FakeImap::refused_addr().await;
    let upstreams: String = ["imap", "pop3", "smtp"]
        .iter()
        .map(|p| {
            format!("\n[upstream.{p}]\naddress = \"{nowhere}\"\ntls = \"none\"\nlogin = \"pass-through\"\n")
        })
        .collect();
    // The certificates (SNI: mail.other.example has its own) and the two
    // IMAP listeners every IMAP test uses, plus the other protocols'.
    let config = format!(
        r#"{}
[[listener]]
name = "pop3s"
protocol = "pop3"
address = "127.0.0.1:0"
tls = "implicit"

[[listener]]
name = "smtps"
protocol = "smtp"
address = "127.0.0.1:0"
tls = "implicit"

[[listener]]
name = "submission"
protocol = "smtp"
address = "127.0.0.1:0"
tls = "starttls"

[smtp]
hostname = "proxy.pec.example"
{upstreams}
[penalty]
enabled = false
"#,
        imap_listeners()
    );
    Proxy::start(&config).await
}

/// The client side of a handshake on `tcp`, offering `alpn` (no ALPN
/// extension when empty) with SNI `sni`.
async fn handshake(tcp: TcpStream, alpn: &[&[u8]], sni: &str) -> io::Result<TlsStream<TcpStream>> {
    let mut config = (*tls_config()).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    tokio::time::timeout(
        Duration::from_secs(20),
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .expect("the handshake ends")
}

async fn implicit(addr: SocketAddr, alpn: &[&[u8]]) -> io::Result<TlsStream<TcpStream>> {
    handshake(TcpStream::connect(addr).await.unwrap(), alpn, "localhost").await
}

/// Asserts the handshake was refused with `no_application_protocol`.
fn assert_refused(result: io::Result<TlsStream<TcpStream>>, what: &str) {
    let err = match result {
        Ok(_) => panic!("{what}: the handshake succeeded"),
        Err(e) => e,
    };
    let rustls_err = err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
    assert_eq!(
        rustls_err,
        Some(&rustls::Error::AlertReceived(
            AlertDescription::NoApplicationProtocol
        )),
        "{what}: {err}"
    );
}

/// Asserts the handshake succeeded with `negotiated` as the ALPN protocol,
/// and returns the stream.
fn assert_accepted(
    result: io::Result<TlsStream<TcpStream>>,
    negotiated: Option<&[u8]>,
    what: &str,
) -> TlsStream<TcpStream> {
    let tls = result.unwrap_or_else(|e| panic!("{what}: refused: {e}"));
    assert_eq!(tls.get_ref().1.alpn_protocol(), negotiated, "{what}");
    tls
}

/// The next line the server sends, without CRLF.
async fn line(tls: &mut TlsStream<TcpStream>) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(20), tls.read(&mut byte))
            .await
            .expect("a line in time")
            .expect("read");
        assert!(
            n > 0,
            "closed before a line: {:?}",
            String::from_utf8_lossy(&line)
        );
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).unwrap()
}

/// An ALPN list as text, for messages.
fn names(alpn: &[&[u8]]) -> String {
    let names: Vec<_> = alpn.iter().map(|p| String::from_utf8_lossy(p)).collect();
    format!("[{}]", names.join(", "))
}

fn refusals(protocol: &str) -> f64 {
    metrics::value(
        "pec_proxy_tls_handshakes_total",
        &[("protocol", protocol), ("result", "no_application_protocol")],
    )
}

#[tokio::test]
async fn a_browser_s_alpn_is_refused_with_no_application_protocol_and_counted() {
    metrics::install();
    let proxy = proxy().await;
    let offers: [&[&[u8]]; 3] = [&[b"http/1.1"], &[b"h2", b"http/1.1"], &[b"h3", b"http/1.0"]];
    for (listener, protocol) in [("imaps", "imap"), ("pop3s", "pop3"), ("smtps", "smtp")] {
        let before = refusals(protocol);
        for alpn in offers {
            let what = format!("{listener} offered {}", names(alpn));
            assert_refused(implicit(proxy.addr(listener), alpn).await, &what);
        }
        assert!(
            refusals(protocol) >= before + offers.len() as f64,
            "{listener}: each refusal counted under result=\"no_application_protocol\""
        );
    }
}

#[tokio::test]
async fn a_client_hello_without_alpn_is_greeted_and_nothing_is_negotiated() {
    let proxy = proxy().await;
    for (listener, greeting) in [
        ("imaps", IMAP_GREETING),
        ("pop3s", POP3_GREETING),
        ("smtps", SMTP_GREETING),
    ] {
        let mut tls = assert_accepted(implicit(proxy.addr(listener), &[]).await, None, listener);
        let first = line(&mut tls).await;
        assert!(first.starts_with(greeting), "{listener}: {first}");
    }
}

#[tokio::test]
async fn imap_and_pop3_listeners_negotiate_their_own_identifier_and_refuse_each_other_s() {
    let proxy = proxy().await;
    /// (listener, ALPN offered, protocol negotiated, greeting)
    type Row = (
        &'static str,
        &'static [&'static [u8]],
        Option<&'static [u8]>,
        &'static str,
    );
    let rows: [Row; 6] = [
        ("imaps", &[b"imap"], Some(b"imap"), IMAP_GREETING),
        ("imaps", &[b"h2", b"imap"], Some(b"imap"), IMAP_GREETING),
        ("imaps", &[b"imap", b"http/1.1"], Some(b"imap"), IMAP_GREETING),
        ("pop3s", &[b"pop3"], Some(b"pop3"), POP3_GREETING),
        ("pop3s", &[b"http/1.1", b"pop3"], Some(b"pop3"), POP3_GREETING),
        ("pop3s", &[b"h2", b"pop3"], Some(b"pop3"), POP3_GREETING),
    ];
    for (listener, alpn, negotiated, greeting) in rows {
        let what = format!("{listener} offered {}", names(alpn));
        let mut tls = assert_accepted(implicit(proxy.addr(listener), alpn).await, negotiated, &what);
        let first = line(&mut tls).await;
        assert!(first.starts_with(greeting), "{what}: {first}");
    }
    let refused: [(&str, &[&[u8]]); 4] = [
        ("pop3s", &[b"imap"]),
        ("imaps", &[b"pop3"]),
        ("imaps", &[b"smtp"]),
        ("imaps", &[b"managesieve", b"ftp"]),
    ];
    for (listener, alpn) in refused {
        assert_refused(
            implicit(proxy.addr(listener), alpn).await,
            &format!("{listener} offered {}", names(alpn)),
        );
    }
}

/// SMTP has no ALPN identifier: a list that names only other registered
/// protocols is refused, anything else is served without negotiating.
#[tokio::test]
async fn smtp_refuses_lists_of_other_protocols_and_serves_unknown_identifiers() {
    let proxy = proxy().await;
    let refused: [&[&[u8]]; 4] = [
        &[b"imap"],
        &[b"pop3", b"imap"],
        &[b"xmpp-client"],
        &[b"acme-tls/1"],
    ];
    for alpn in refused {
        assert_refused(
            implicit(proxy.addr("smtps"), alpn).await,
            &format!("smtps offered {}", names(alpn)),
        );
    }
    let served: [&[&[u8]]; 3] = [&[b"smtp"], &[b"smtp", b"http/1.1"], &[b"x-future-mail"]];
    for alpn in served {
        let what = format!("smtps offered {}", names(alpn));
        let mut tls = assert_accepted(implicit(proxy.addr("smtps"), alpn).await, None, &what);
        assert_eq!(line(&mut tls).await, SMTP_GREETING, "{what}");
    }
}

#[tokio::test]
async fn after_starttls_the_listener_s_protocol_decides_too() {
    let proxy = proxy().await;
    let imap_ready = b"a OK Begin TLS negotiation now.\r\n";
    let smtp_ready = b"220 2.0.0 Ready to start TLS\r\n";
    let imap = || told_to_start_tls(proxy.addr("imap"), b"a STARTTLS\r\n", imap_ready);
    let smtp = || told_to_start_tls(proxy.addr("submission"), b"EHLO c\r\nSTARTTLS\r\n", smtp_ready);

    assert_refused(
        handshake(imap().await, &[b"http/1.1"], "localhost").await,
        "imap STARTTLS, http/1.1",
    );
    assert_refused(
        handshake(smtp().await, &[b"http/1.1"], "localhost").await,
        "submission STARTTLS, http/1.1",
    );

    let mut tls = assert_accepted(
        handshake(imap().await, &[b"imap"], "localhost").await,
        Some(b"imap"),
        "imap STARTTLS, imap",
    );
    tls.write_all(b"b CAPABILITY\r\n").await.unwrap();
    let first = line(&mut tls).await;
    assert!(first.starts_with("* CAPABILITY IMAP4rev1 "), "{first}");

    let mut tls = assert_accepted(
        handshake(smtp().await, &[], "localhost").await,
        None,
        "submission STARTTLS",
    );
    tls.write_all(b"EHLO c\r\n").await.unwrap();
    assert_eq!(line(&mut tls).await, "250-proxy.pec.example");
}

/// Choosing the certificate by SNI is unchanged, on the listeners rustls
/// refuses for (IMAP) and on those the proxy decides for (SMTP).
#[tokio::test]
async fn sni_still_picks_the_certificate() {
    let proxy = proxy().await;
    let alt = cert_der("alt.pem");
    let server = cert_der("server.pem");
    /// (listener, ALPN offered, SNI, the certificate expected)
    type Row<'a> = (&'a str, &'a [&'a [u8]], &'a str, &'a [u8]);
    let rows: [Row; 4] = [
        ("imaps", &[b"imap"], "mail.other.example", &alt),
        ("imaps", &[], "mail.pec.example", &server),
        ("smtps", &[b"smtp"], "mail.other.example", &alt),
        ("smtps", &[], "mail.pec.example", &server),
    ];
    for (listener, alpn, sni, expected) in rows {
        let tcp = TcpStream::connect(proxy.addr(listener)).await.unwrap();
        let tls = handshake(tcp, alpn, sni)
            .await
            .unwrap_or_else(|e| panic!("{listener} {sni}: {e}"));
        let presented = tls.get_ref().1.peer_certificates().unwrap()[0].as_ref();
        assert!(
            presented == expected,
            "{listener} with SNI {sni}: wrong certificate"
        );
    }
}
