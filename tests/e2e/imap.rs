//! IMAP through pec-proxy, end to end, against a real Dovecot started by
//! `scripts/upstreams.sh`, with our raw client and with real clients
//! (Python's imaplib, curl).

use std::sync::OnceLock;
use std::time::Duration;

use crate::support::client::{Client, ca_file, cert_der, peer_certificate};
use crate::support::proxy::{Proxy, imap_listeners};
use crate::support::upstreams::Upstreams;

/// This module's own Dovecot + Postfix, started on first use; the script's
/// watchdog stops it when the process exits.
fn upstreams() -> &'static Upstreams {
    static UPSTREAMS: OnceLock<Upstreams> = OnceLock::new();
    UPSTREAMS.get_or_init(Upstreams::start)
}

/// A proxy in front of Dovecot's IMAP port, upstream over STARTTLS (verified
/// against the test CA), logging in with the client's credentials.
async fn proxy() -> Proxy {
    proxy_with_upstream("starttls", upstreams().imap_port).await
}

async fn proxy_with_upstream(tls: &str, port: u16) -> Proxy {
    let config = format!(
        "{}\n[upstream.imap]\naddress = \"127.0.0.1:{port}\"\ntls = \"{tls}\"\n{}login = \"pass-through\"\n",
        imap_listeners(),
        if tls == "none" {
            ""
        } else {
            "ca = \"certs/ca.pem\"\nserver_name = \"localhost\"\n"
        },
    );
    Proxy::start(&config).await
}

/// Connects to `listener` ("imaps" or "imap") and returns a client past the
/// greeting, under TLS either way.
async fn connect(proxy: &Proxy, listener: &str) -> Client {
    match listener {
        "imaps" => {
            let mut c = Client::tls(proxy.addr("imaps")).await;
            let greeting = c.line().await;
            assert!(greeting.starts_with("* OK [CAPABILITY IMAP4rev1 "), "{greeting}");
            assert!(
                greeting.contains("AUTH=PLAIN") && !greeting.contains("LOGINDISABLED"),
                "{greeting}"
            );
            c
        }
        "imap" => {
            let mut c = Client::plain(proxy.addr("imap")).await;
            let greeting = c.line().await;
            assert!(
                greeting.contains(" STARTTLS") && greeting.contains("LOGINDISABLED"),
                "{greeting}"
            );
            assert_eq!(
                c.command("s", "STARTTLS").await,
                "s OK Begin TLS negotiation now."
            );
            c.upgrade().await;
            c
        }
        other => panic!("no listener {other}"),
    }
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn assert_logged_in(line: &str, tag: &str) {
    assert!(
        line.starts_with(&format!("{tag} OK [CAPABILITY IMAP4rev1 ")),
        "{line}"
    );
    // The capabilities are the upstream's post-login ones, not our pre-login list.
    assert!(line.contains(" IDLE") && line.ends_with("] Logged in"), "{line}");
}

async fn lines_of(c: &mut Client, tag: &str, command: &str) -> Vec<String> {
    c.send(format!("{tag} {command}\r\n")).await;
    c.until_tagged(tag).await
}

/// Selects INBOX; returns the EXISTS count.
async fn select_inbox(c: &mut Client) -> u32 {
    let lines = lines_of(c, "s1", "SELECT INBOX").await;
    assert!(
        lines.last().unwrap().starts_with("s1 OK [READ-WRITE]"),
        "{lines:?}"
    );
    lines
        .iter()
        .find_map(|l| {
            l.strip_prefix("* ")
                .and_then(|l| l.strip_suffix(" EXISTS"))
                .map(|n| n.parse().unwrap())
        })
        .expect("EXISTS in SELECT response")
}

async fn logout(c: &mut Client) {
    c.send("z LOGOUT\r\n").await;
    let lines = c.expect_closed().await;
    assert!(lines.first().is_some_and(|l| l.starts_with("* BYE")), "{lines:?}");
    assert!(lines.last().unwrap().starts_with("z OK"), "{lines:?}");
}

/// Every way a client can present `alice@pec.example` / `alice-secret`,
/// each as the exchange the client sends and the lines it waits for.
fn login_forms() -> Vec<(&'static str, Vec<String>)> {
    let plain = b64("\0alice@pec.example\0alice-secret");
    let user = b64("alice@pec.example");
    let pass = b64("alice-secret");
    vec![
        ("atom", vec!["a LOGIN alice@pec.example alice-secret\r\n".into()]),
        (
            "quoted",
            vec!["a LOGIN \"alice@pec.example\" \"alice-secret\"\r\n".into()],
        ),
        (
            "sync literal",
            vec![
                "a LOGIN {17}\r\n".into(),
                "alice@pec.example {12}\r\n".into(),
                "alice-secret\r\n".into(),
            ],
        ),
        (
            "non-sync literal",
            vec!["a LOGIN {17+}\r\nalice@pec.example {12+}\r\nalice-secret\r\n".into()],
        ),
        (
            "PLAIN with initial response",
            vec![format!("a AUTHENTICATE PLAIN {plain}\r\n")],
        ),
        (
            "PLAIN",
            vec!["a AUTHENTICATE PLAIN\r\n".into(), format!("{plain}\r\n")],
        ),
        (
            "LOGIN with initial response",
            vec![format!("a AUTHENTICATE LOGIN {user}\r\n"), format!("{pass}\r\n")],
        ),
        (
            "LOGIN",
            vec![
                "a AUTHENTICATE LOGIN\r\n".into(),
                format!("{user}\r\n"),
                format!("{pass}\r\n"),
            ],
        ),
    ]
}

#[tokio::test]
async fn every_login_form_works_over_imaps_and_starttls() {
    let proxy = proxy().await;
    for listener in ["imaps", "imap"] {
        for (form, steps) in login_forms() {
            let mut c = connect(&proxy, listener).await;
            let (last, continuations) = steps.split_last().unwrap();
            for step in continuations {
                c.send(step).await;
                let cont = c.line().await;
                assert!(
                    cont.starts_with("+ "),
                    "{listener}/{form}: expected a continuation, got {cont}"
                );
            }
            c.send(last).await;
            let reply = c.line().await;
            assert_logged_in(&reply, "a");
            assert!(select_inbox(&mut c).await >= 1, "{listener}/{form}");
            logout(&mut c).await;
        }
    }
}

#[tokio::test]
async fn fetch_returns_the_stored_bytes_and_a_large_message_relays_intact() {
    let up = upstreams();
    up.add_user("fetch@pec.example", "fetch-secret");
    let small =
        b"From: bob@pec.example\r\nTo: fetch@pec.example\r\nSubject: small\r\n\r\nHello \xc3\xa8 world\r\n"
            .to_vec();
    // ~3 MiB of base64-looking lines: what a PEC receipt with an attachment looks like.
    let mut large = b"From: bob@pec.example\r\nTo: fetch@pec.example\r\nSubject: large\r\n\r\n".to_vec();
    for i in 0..40_000u32 {
        large.extend_from_slice(
            format!("{i:08} QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0123456789abcdefghijklmnopqrstuvwxyz\r\n")
                .as_bytes(),
        );
    }
    up.deliver("fetch@pec.example", &small);
    up.deliver("fetch@pec.example", &large);

    let proxy = proxy().await;
    let mut c = connect(&proxy, "imaps").await;
    assert_logged_in(&c.command("a", "LOGIN fetch@pec.example fetch-secret").await, "a");
    assert_eq!(select_inbox(&mut c).await, 2);
    for (seq, sent) in [(1, &small), (2, &large)] {
        c.send(format!("f{seq} FETCH {seq} BODY.PEEK[]\r\n")).await;
        let head = c.line().await;
        let size: usize = head
            .strip_prefix(&format!("* {seq} FETCH (BODY[] {{"))
            .and_then(|r| r.strip_suffix('}'))
            .unwrap_or_else(|| panic!("unexpected {head}"))
            .parse()
            .unwrap();
        let fetched = c.bytes(size).await;
        assert_eq!(c.line().await, ")");
        assert!(c.line().await.starts_with(&format!("f{seq} OK")));
        // What the user sent arrives unchanged after the headers LMTP delivery adds...
        assert!(
            fetched.ends_with(sent),
            "message {seq} differs from what was sent"
        );
        // ...and equals what Dovecot stored (maildir keeps bare LF on disk).
        let stored = up
            .message_files("fetch@pec.example")
            .into_iter()
            .map(|p| std::fs::read(p).unwrap())
            .find(|m| m.len() + m.iter().filter(|&&b| b == b'\n').count() == size)
            .expect("a stored message of the fetched size");
        assert_eq!(
            fetched,
            String::from_utf8(stored)
                .unwrap()
                .replace('\n', "\r\n")
                .into_bytes()
        );
    }
    logout(&mut c).await;
}

#[tokio::test]
async fn idle_receives_mail_delivered_while_idling() {
    let up = upstreams();
    up.add_user("idle@pec.example", "idle-secret");
    let proxy = proxy().await;
    let mut c = connect(&proxy, "imap").await;
    assert_logged_in(&c.command("a", "LOGIN idle@pec.example idle-secret").await, "a");
    let before = select_inbox(&mut c).await;
    c.send("i IDLE\r\n").await;
    assert!(c.line().await.starts_with("+ "), "IDLE continuation");
    up.deliver(
        "idle@pec.example",
        b"From: bob@pec.example\r\nSubject: while idling\r\n\r\nhi\r\n",
    );
    // Dovecot notifies at once through inotify; allow for its 30 s polling fallback.
    let expected = format!("* {} EXISTS", before + 1);
    let notified = tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            if c.line().await == expected {
                return;
            }
        }
    })
    .await;
    assert!(notified.is_ok(), "no {expected} while idling");
    c.send("DONE\r\n").await;
    assert!(c.until_tagged("i").await.last().unwrap().starts_with("i OK"));
    logout(&mut c).await;
}

#[tokio::test]
async fn upstream_over_implicit_tls_and_over_plain_loopback() {
    let up = upstreams();
    for (tls, port) in [("implicit", up.imaps_port), ("none", up.imap_port)] {
        let proxy = proxy_with_upstream(tls, port).await;
        let mut c = connect(&proxy, "imaps").await;
        assert_logged_in(&c.command("a", "LOGIN bob@pec.example bob-secret").await, "a");
        logout(&mut c).await;
    }
}

/// Python's imaplib and curl are mail clients we did not write.
#[tokio::test]
async fn python_imaplib_and_curl_read_mail_through_the_proxy() {
    let proxy = proxy().await;
    let (imaps, imap) = (proxy.addr("imaps").port(), proxy.addr("imap").port());
    let script = r#"
import imaplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
for conn in (lambda: imaplib.IMAP4_SSL("localhost", int(sys.argv[2]), ssl_context=ctx),
             lambda: imaplib.IMAP4("localhost", int(sys.argv[3]))):
    m = conn()
    if not isinstance(m, imaplib.IMAP4_SSL):
        m.starttls(ssl_context=ctx)
    m.login("alice@pec.example", "alice-secret")
    typ, data = m.select("INBOX")
    assert typ == "OK", typ
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    print(data[0][1].decode().strip())
    m.logout()
"#;
    let ca = ca_file();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args([
                "-c",
                script,
                ca.to_str().unwrap(),
                &imaps.to_string(),
                &imap.to_string(),
            ])
            .output()
            .expect("python3")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "imaplib failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.matches("Subject:").count(), 2, "{stdout}");

    let ca = ca_file();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "20", "--cacert", ca.to_str().unwrap()])
            .args([
                "-u",
                "alice@pec.example:alice-secret",
                &format!("imaps://localhost:{imaps}/INBOX;UID=1"),
            ])
            .output()
            .expect("curl")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Subject:"));
}

#[tokio::test]
async fn wrong_password_is_refused_and_others_keep_being_served() {
    let proxy = proxy().await;
    let mut bad = connect(&proxy, "imaps").await;
    assert_eq!(
        bad.command("a", "LOGIN alice@pec.example wrong").await,
        "a NO [AUTHENTICATIONFAILED] Authentication failed"
    );
    // Same answer for a mailbox that does not exist.
    assert_eq!(
        bad.command("b", "LOGIN nobody@pec.example wrong").await,
        "b NO [AUTHENTICATIONFAILED] Authentication failed"
    );
    let mut good = connect(&proxy, "imaps").await;
    assert_logged_in(
        &good.command("a", "LOGIN alice@pec.example alice-secret").await,
        "a",
    );
    logout(&mut good).await;
    // The third failure on one connection ends it.
    bad.send("c LOGIN alice@pec.example wrong\r\n").await;
    assert_eq!(
        bad.expect_closed().await,
        [
            "c NO [AUTHENTICATIONFAILED] Authentication failed",
            "* BYE Too many invalid authentication attempts"
        ]
    );
}

#[tokio::test]
async fn commands_pipelined_behind_starttls_are_discarded() {
    let proxy = proxy().await;
    let mut c = Client::plain(proxy.addr("imap")).await;
    c.line().await;
    // A man in the middle appends a LOGIN to the client's STARTTLS (CVE-2011-0411).
    c.send("a STARTTLS\r\nb LOGIN alice@pec.example alice-secret\r\n")
        .await;
    assert_eq!(c.line().await, "a OK Begin TLS negotiation now.");
    c.upgrade().await;
    let lines = lines_of(&mut c, "c", "CAPABILITY").await;
    assert_eq!(lines.len(), 2, "only our CAPABILITY is answered: {lines:?}");
    assert!(
        lines[0].starts_with("* CAPABILITY IMAP4rev1 ") && !lines[0].contains("STARTTLS"),
        "{lines:?}"
    );
    assert_eq!(lines[1], "c OK Capability completed.");
    // The injected LOGIN did not log us in.
    assert!(c.command("d", "SELECT INBOX").await.starts_with("d BAD"));
}

#[tokio::test]
async fn login_on_the_plain_port_without_tls_is_refused() {
    let proxy = proxy().await;
    let mut c = Client::plain(proxy.addr("imap")).await;
    assert!(c.line().await.contains("LOGINDISABLED"));
    assert_eq!(
        c.command("a", "LOGIN alice@pec.example alice-secret").await,
        "a NO [PRIVACYREQUIRED] Plaintext authentication is disabled: use STARTTLS or the IMAPS port."
    );
    assert_eq!(
        c.command(
            "b",
            &format!("AUTHENTICATE PLAIN {}", b64("\0alice@pec.example\0alice-secret"))
        )
        .await,
        "b NO [PRIVACYREQUIRED] Plaintext authentication is disabled: use STARTTLS or the IMAPS port."
    );
}

/// A TLS 1.1 ClientHello (no supported_versions extension) is refused with an alert.
#[tokio::test]
async fn tls_1_1_is_refused_and_tls_1_2_accepted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let proxy = proxy().await;
    let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
    body.extend([7u8; 32]); // random
    body.push(0); // session id
    body.extend([0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // two TLS 1.0-era suites
    body.extend([0x01, 0x00]); // null compression
    let mut hello = vec![0x01, 0, (body.len() >> 8) as u8, body.len() as u8];
    hello.extend(body);
    let mut record = vec![0x16, 0x03, 0x01, (hello.len() >> 8) as u8, hello.len() as u8];
    record.extend(hello);
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr("imaps")).await.unwrap();
    tcp.write_all(&record).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        reply.first(),
        Some(&0x15),
        "expected a TLS alert, got {reply:02x?}"
    );

    let tls12 = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates({
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert_der("ca.pem").into()).unwrap();
        roots
    })
    .with_no_client_auth();
    let mut c = Client::tls_with(proxy.addr("imaps"), std::sync::Arc::new(tls12), "localhost")
        .await
        .unwrap();
    assert!(c.line().await.starts_with("* OK"));
}

#[tokio::test]
async fn sni_selects_the_certificate() {
    let proxy = proxy().await;
    let c = Client::tls(proxy.addr("imaps")).await;
    assert_eq!(peer_certificate(&c), cert_der("server.pem"));
    let c = Client::tls_with(
        proxy.addr("imaps"),
        crate::support::client::tls_config(),
        "mail.other.example",
    )
    .await
    .unwrap();
    assert_eq!(peer_certificate(&c), cert_der("alt.pem"));
    // No SNI (rustls sends none for an IP address) gets the default certificate.
    let c = Client::tls_with(
        proxy.addr("imaps"),
        crate::support::client::tls_config(),
        "127.0.0.1",
    )
    .await
    .unwrap();
    assert_eq!(peer_certificate(&c), cert_der("server.pem"));
}

#[tokio::test]
async fn bad_input_gets_the_documented_reply_and_the_proxy_keeps_serving() {
    let proxy = proxy().await;

    let mut c = connect(&proxy, "imaps").await;
    assert_eq!(c.command("a", "XYZZY").await, "a BAD Unknown command.");
    assert_eq!(
        c.command("b", "FETCH 1 BODY[]").await,
        "b BAD Command FETCH is not permitted before login."
    );
    assert_eq!(
        c.command("c", "LOGIN {100000}").await,
        "c BAD [TOOBIG] Literal too large."
    );
    assert_eq!(
        c.command("d", "LOGIN \"unterminated").await,
        "d BAD Invalid command: invalid character in quoted string."
    );
    c.send(b"e NOOP\0\r\n").await;
    assert_eq!(c.line().await, "e BAD Invalid command: syntax error.");
    assert_eq!(c.command("f", "NOOP").await, "f OK NOOP completed.");

    let mut c = connect(&proxy, "imaps").await;
    c.send(format!("a LOGIN {}\r\n", "x".repeat(10_000))).await;
    assert_eq!(c.expect_closed().await, ["* BYE Command line too long"]);

    let mut c = connect(&proxy, "imaps").await;
    c.send("a LOGIN {4294967296+}\r\n").await;
    assert_eq!(
        c.expect_closed().await,
        ["a BAD [TOOBIG] Literal too large.", "* BYE Literal too large"]
    );

    let mut c = connect(&proxy, "imaps").await;
    assert_logged_in(&c.command("a", "LOGIN alice@pec.example alice-secret").await, "a");
    logout(&mut c).await;
}

#[tokio::test]
async fn an_unreachable_upstream_gets_unavailable_not_a_hang() {
    // A port nothing listens on: bind, learn it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proxy = proxy_with_upstream("none", port).await;
    let mut c = connect(&proxy, "imaps").await;
    assert_eq!(
        c.command("a", "LOGIN alice@pec.example alice-secret").await,
        "a NO [UNAVAILABLE] The mail server is not available now. Try again later."
    );
    // Not counted as a failed attempt: the client may retry.
    for tag in ["b", "c", "d"] {
        assert!(
            c.command(tag, "LOGIN alice@pec.example alice-secret")
                .await
                .contains("[UNAVAILABLE]")
        );
    }
}
