use super::*;

#[test]
fn refusals_map_to_what_the_client_is_told() {
    let in_use = classify_refusal(b"-ERR [IN-USE] Mailbox is locked by another POP3 session");
    assert!(
        matches!(&in_use, UpstreamError::MailboxInUse(t) if t == "Mailbox is locked by another POP3 session"),
        "{in_use:?}"
    );
    for line in [
        &b"-ERR [AUTH] Authentication failed."[..],
        b"-ERR Authentication failed.",
        b"-ERR [SYS/PERM] Account disabled",
        b"-ERR",
    ] {
        assert!(
            matches!(classify_refusal(line), UpstreamError::AuthFailed),
            "{line:?}"
        );
    }
    assert!(matches!(
        classify_refusal(b"-ERR [SYS/TEMP] Temporary authentication failure"),
        UpstreamError::Unavailable(t) if t == "Temporary authentication failure"
    ));
    assert!(matches!(
        classify_refusal(b"* OK what"),
        UpstreamError::Protocol(_)
    ));
    assert!(matches!(
        classify_refusal(b"-ERR [in-use] x\r\x1b"),
        UpstreamError::MailboxInUse(t) if t == "x??"
    ));
}

#[test]
fn capabilities_we_use() {
    let mut caps = Capabilities::default();
    for line in [&b"TOP"[..], b"SASL LOGIN PLAIN", b"RESP-CODES", b"XCLIENT"] {
        parse_capability(line, &mut caps);
    }
    assert_eq!(
        caps,
        Capabilities {
            sasl_plain: true,
            xclient: true
        }
    );
    let mut caps = Capabilities::default();
    parse_capability(b"SASL CRAM-MD5", &mut caps);
    parse_capability(b"XCLIENTS", &mut caps);
    assert_eq!(caps, Capabilities::default());
}

/// A scripted POP3 server: sends `greeting`, then answers each line it
/// receives with the next reply; returns the lines it received.
async fn scripted(
    greeting: &'static str,
    replies: Vec<&'static str>,
) -> (Upstream, tokio::task::JoinHandle<Vec<String>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (r, mut w) = tcp.into_split();
        let mut r = BufReader::new(r);
        w.write_all(greeting.as_bytes()).await.unwrap();
        let mut received = Vec::new();
        for reply in replies {
            let mut line = String::new();
            if r.read_line(&mut line).await.unwrap() == 0 {
                break;
            }
            received.push(line);
            w.write_all(reply.as_bytes()).await.unwrap();
        }
        received
    });
    let config = crate::config::UpstreamConfig {
        address,
        fallback_addresses: Vec::new(),
        tls: TlsMode::None,
        ca: None,
        server_name: "localhost".into(),
        login: UpstreamLogin::SaslAuthzid {
            user: "proxy-master".into(),
            password: Secret::from_slice(b"m-pw"),
        },
        send_client_address: true,
        proxy_protocol: false,
    };
    (
        Upstream::new(config, None, std::time::Duration::from_secs(5)),
        server,
    )
}

fn peer() -> SocketAddr {
    "192.0.2.7:4321".parse().unwrap()
}

#[tokio::test]
async fn xclient_from_the_greeting_then_sasl_plain_with_authzid() {
    let (upstream, server) = scripted(
        "+OK [XCLIENT] Dovecot ready.\r\n",
        vec![
            "+OK\r\nTOP\r\nSASL PLAIN LOGIN\r\n.\r\n",
            "+OK Updated\r\n",
            "+OK Logged in.\r\n",
        ],
    )
    .await;
    let conn = login(&upstream, Identity::Mailbox("shared@pec.example"), peer()).await;
    assert!(conn.is_ok(), "{conn:?}");
    let plain = sasl::encode(b"shared@pec.example\0proxy-master\0m-pw");
    assert_eq!(
        server.await.unwrap(),
        [
            "CAPA\r\n".to_owned(),
            "XCLIENT ADDR=192.0.2.7 PORT=4321\r\n".to_owned(),
            format!("AUTH PLAIN {plain}\r\n"),
        ]
    );
}

#[tokio::test]
async fn without_sasl_the_client_credentials_go_as_user_pass_unless_unsafe() {
    let (upstream, server) = scripted(
        "+OK ready\r\n",
        vec![
            "-ERR no CAPA\r\n",
            "+OK\r\n",
            "-ERR [IN-USE] Mailbox is locked\r\n",
        ],
    )
    .await;
    let pw = Secret::from_slice(b"p w");
    let err = login(
        &upstream,
        Identity::Client {
            user: b"alice@pec.example",
            password: &pw,
        },
        peer(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, UpstreamError::MailboxInUse(t) if t == "Mailbox is locked"),
        "{err:?}"
    );
    assert_eq!(
        server.await.unwrap(),
        ["CAPA\r\n", "USER alice@pec.example\r\n", "PASS p w\r\n"]
    );

    // A password holding CRLF never reaches a server without SASL.
    let (upstream, server) = scripted("+OK ready\r\n", vec!["-ERR no CAPA\r\n"]).await;
    let pw = Secret::from_slice(b"x\r\nDELE 1");
    let err = login(
        &upstream,
        Identity::Client {
            user: b"alice@pec.example",
            password: &pw,
        },
        peer(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, UpstreamError::AuthFailed), "{err:?}");
    assert_eq!(server.await.unwrap(), ["CAPA\r\n"]);
}

#[tokio::test]
async fn a_refusing_greeting_is_unavailable() {
    let (upstream, _server) = scripted("-ERR [SYS/TEMP] too busy\r\n", vec![]).await;
    let err = login(&upstream, Identity::Mailbox("a@pec.example"), peer())
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Unavailable(_)), "{err:?}");
}
