//! The hostile-input matrix for SMTP submission: each row sends what a
//! broken or malicious client would, and checks the documented reply (or
//! close), the error counted where the proxy counts it, and that the proxy
//! keeps serving others. The upstream is the in-process fake, which records
//! every line it receives, so "never becomes a second command upstream" is
//! checked on the upstream's side of the wire.
//!
//! Rows already run against the real Postfix in `tests/e2e/smtp.rs`
//! (`bad_input_gets_the_right_codes_and_the_proxy_keeps_serving`: AUTH with
//! a non-base64 initial response, `@@@@` as an AUTH continuation, a 600-byte
//! NOOP or RCPT, NUL in NOOP and MAIL, XCLIENT from a client, STARTTLS
//! pipelining seen from the client's side) are not repeated here; the rows
//! below add the boundaries, the other line-end and SASL cases, and the
//! upstream's view.
//!
//! No 4 GiB literal row: literal announcements are IMAP's. The SMTP
//! equivalent, `BDAT <size>` (RFC 3030 CHUNKING), is never offered, before
//! login or after, and refused without waiting for the announced bytes:
//! see [`bdat_is_never_offered_and_a_4_gib_chunk_is_not_awaited`].

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::client::Client;
use crate::support::fake_smtp::{Behaviour, FakeSmtp, smtp_listeners, upstream_config};
use crate::support::hostile::{
    garbage_instead_of_tls, http_request_lines, silent_crowd, slowloris, told_to_start_tls,
    write_without_reading,
};
use crate::support::metrics;
use crate::support::proxy::Proxy;

/// A 3 s pre-login timeout, for the slowloris and backpressure rows.
const SHORT: &str = "prelogin_timeout_secs = 3\n";
/// Rows send many bad commands on one connection to show each reply; the
/// cut-off after `max_prelogin_errors` has its own row.
const MANY_ERRORS: &str = "max_prelogin_errors = 1000\n";
const GREETING: &str = "220 proxy.pec.example ESMTP PEC mail proxy ready";
const USER: &str = "someone@pec.example";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A proxy in front of a fake upstream with `limits` as its `[limits]`
/// table ([`SHORT`] unless a row needs more).
async fn proxy(fake: &FakeSmtp, limits: &str) -> Proxy {
    let many = if limits.contains("max_prelogin_errors") {
        ""
    } else {
        MANY_ERRORS
    };
    let config = format!(
        "{}{}\n[limits]\n{limits}{many}\n[penalty]\nenabled = false\n",
        smtp_listeners(),
        upstream_config(fake.addr)
    );
    Proxy::start(&config).await
}

/// `AUTH PLAIN` initial response for `user` and `password`.
fn plain(user: &[u8], password: &[u8]) -> String {
    STANDARD.encode([&b"\0"[..], user, b"\0", password].concat())
}

fn client_errors(kind: &str) -> f64 {
    metrics::value(
        "pec_proxy_client_errors_total",
        &[("protocol", "smtp"), ("kind", kind)],
    )
}

/// An implicit-TLS client, greeted.
async fn smtps(proxy: &Proxy) -> Client {
    let mut c = Client::tls(proxy.addr("smtps")).await;
    assert_eq!(c.line().await, GREETING);
    c
}

/// Sends `EHLO client.example`; returns the reply's lines.
async fn ehlo(c: &mut Client) -> Vec<String> {
    c.send("EHLO client.example\r\n").await;
    let mut lines = Vec::new();
    loop {
        let line = c.line().await;
        let last = !line.starts_with("250-");
        lines.push(line);
        if last {
            return lines;
        }
    }
}

/// Sends raw bytes and returns the next line.
async fn exchange(c: &mut Client, bytes: &[u8]) -> String {
    c.send(bytes).await;
    c.line().await
}

/// An implicit-TLS client, greeted, EHLO'd and logged in as [`USER`].
async fn logged_in(proxy: &Proxy) -> Client {
    let mut c = smtps(proxy).await;
    ehlo(&mut c).await;
    let auth = format!(
        "AUTH PLAIN {}\r\n",
        plain(USER.as_bytes(), FakeSmtp::PASSWORD.as_bytes())
    );
    assert_eq!(
        exchange(&mut c, auth.as_bytes()).await,
        "235 2.7.0 Authentication successful"
    );
    c
}

/// Proves the proxy still serves: a fresh client logs in and submits a
/// message, which the upstream accepts.
async fn still_serving(proxy: &Proxy, fake: &FakeSmtp) {
    let accepted = fake.seen().messages.len();
    let mut c = logged_in(proxy).await;
    c.send(format!(
        "MAIL FROM:<{USER}>\r\nRCPT TO:<bob@pec.example>\r\nDATA\r\n"
    ))
    .await;
    assert_eq!(c.line().await, "250 2.1.0 Ok");
    assert_eq!(c.line().await, "250 2.1.5 Ok");
    assert_eq!(c.line().await, "354 End data with <CR><LF>.<CR><LF>");
    c.send(format!(
        "From: {USER}\r\nTo: bob@pec.example\r\nSubject: still serving\r\n\r\nok\r\n.\r\n"
    ))
    .await;
    assert_eq!(c.line().await, "250 2.0.0 Ok: queued as FAKE1");
    assert_eq!(fake.seen().messages.len(), accepted + 1);
}

/// NUL, bare LF and bare CR: each line is one syntax error, never split
/// into two commands (the `QUIT` behind a bare CR or LF is not executed).
const BAD_LINE_ENDS: [(&[u8], &str); 8] = [
    (
        b"EH\0LO x\r\n",
        "500 5.5.2 Syntax error: NUL character in command",
    ),
    (b"NOOP\0\r\n", "500 5.5.2 Syntax error: NUL character in command"),
    (b"\0\0\0\r\n", "500 5.5.2 Syntax error: NUL character in command"),
    (b"NOOP\n", "500 5.5.2 Syntax error: lines must end with CRLF"),
    (b"QUIT\n", "500 5.5.2 Syntax error: lines must end with CRLF"),
    (b"NOOP\rQUIT\r\n", "501 5.5.4 Syntax: NOOP [text]"),
    (b"RSET\rQUIT\r\n", "501 5.5.4 Syntax: RSET"),
    (b"EHLO a\rQUIT\r\n", "501 5.5.4 Syntax: EHLO hostname"),
];

#[tokio::test]
async fn nul_bare_lf_and_bare_cr_are_syntax_errors_before_and_after_login() {
    metrics::install();
    let fake = FakeSmtp::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let before = client_errors("syntax");

    // Before login, the front-end answers.
    let mut c = smtps(&proxy).await;
    for (input, expected) in BAD_LINE_ENDS {
        assert_eq!(exchange(&mut c, input).await, expected, "{input:?}");
    }
    assert_eq!(exchange(&mut c, b"NOOP\r\n").await, "250 2.0.0 Ok");
    assert_eq!(fake.seen().connections, 0, "nothing reached the upstream");
    assert!(client_errors("syntax") >= before + BAD_LINE_ENDS.len() as f64);

    // After login, the guard answers the same, and forwards none of them.
    let mut c = logged_in(&proxy).await;
    for (input, expected) in BAD_LINE_ENDS {
        assert_eq!(exchange(&mut c, input).await, expected, "{input:?}");
    }
    // The upstream's own NOOP reply: everything before it has been seen.
    assert_eq!(exchange(&mut c, b"NOOP\r\n").await, "250 2.0.0 Ok");
    assert_eq!(fake.seen().commands, ["EHLO", "AUTH", "NOOP"]);
    still_serving(&proxy, &fake).await;
}

#[tokio::test]
async fn smtp_smuggling_with_bare_line_ends_in_data_is_refused() {
    let fake = FakeSmtp::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let smuggled = "MAIL FROM:<evil@pec.example>\r\nRCPT TO:<victim@pec.example>\r\nDATA\r\n\
                    From: evil@pec.example\r\n\r\nsmuggled\r\n.\r\n";
    const REFUSED: &str = "550 5.6.0 Bare CR or LF in message content (RFC 5321 2.3.8), message refused";
    // (the end of data a lenient server would see, in the header or the
    // body; whether the message had started upstream)
    let rows = [
        (format!("Subject: h\r\n.\n{smuggled}"), false),
        (format!("Subject: h\n.\r\n{smuggled}"), false),
        (format!("Subject: h\r.\r\n{smuggled}"), false),
        (format!("Subject: b\r\n\r\nbody\r\n.\n{smuggled}"), true),
        (format!("Subject: b\r\n\r\nbody\n.\n{smuggled}"), true),
        (format!("Subject: b\r\n\r\nbody\r\n.\r{smuggled}"), true),
        (format!("Subject: b\r\n\r\nbody\r.\r\n{smuggled}"), true),
    ];
    for (i, (content, in_body)) in rows.iter().enumerate() {
        let mut c = logged_in(&proxy).await;
        c.send(format!(
            "MAIL FROM:<{USER}>\r\nRCPT TO:<bob@pec.example>\r\nDATA\r\n"
        ))
        .await;
        assert_eq!(c.line().await, "250 2.1.0 Ok");
        assert_eq!(c.line().await, "250 2.1.5 Ok");
        assert_eq!(c.line().await, "354 End data with <CR><LF>.<CR><LF>");
        c.send(format!("From: {USER}\r\nTo: bob@pec.example\r\n{content}"))
            .await;
        assert_eq!(c.line().await, REFUSED, "row {i}");
        if *in_body {
            // Part of the message is upstream and cannot be called back:
            // the upstream connection is dropped and the client told so.
            assert_eq!(
                c.expect_closed().await,
                ["421 4.4.2 Connection to the mail server lost, closing connection"],
                "row {i}"
            );
            fake.wait_ended(i + 1).await;
        } else {
            // Refused before DATA went upstream: the session goes on.
            assert_eq!(exchange(&mut c, b"NOOP\r\n").await, "250 2.0.0 Ok", "row {i}");
            assert_eq!(exchange(&mut c, b"QUIT\r\n").await, "221 2.0.0 Bye");
            fake.wait_ended(i + 1).await;
        }
    }
    let seen = fake.seen();
    assert!(seen.messages.is_empty(), "no message was accepted upstream");
    assert!(
        !seen.lines.iter().any(|l| l.starts_with(b"MAIL FROM:<evil")),
        "the smuggled command never reached the upstream: {:?}",
        seen.lines
    );
    assert!(!seen.commands.iter().any(|c| c == "."), "no final dot upstream");
    still_serving(&proxy, &fake).await;
}

#[tokio::test]
async fn over_long_lines_get_500_at_the_rfc_5321_boundaries() {
    metrics::install();
    let fake = FakeSmtp::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let before = client_errors("line_too_long");
    // RFC 5321 §4.5.3.1.4: 512 octets with the CRLF; MAIL may carry
    // RFC 4954 §5's AUTH= parameter, 500 octets more.
    let noop = |len: usize| format!("NOOP {}\r\n", "x".repeat(len - 7));
    let mail = |len: usize| format!("MAIL FROM:<{}@pec.example>\r\n", "m".repeat(len - 26));
    assert_eq!(noop(512).len(), 512);
    assert_eq!(mail(1012).len(), 1012);
    const TOO_LONG: &str = "500 5.5.2 Line too long";

    let mut c = smtps(&proxy).await;
    assert_eq!(exchange(&mut c, noop(512).as_bytes()).await, "250 2.0.0 Ok");
    assert_eq!(exchange(&mut c, noop(513).as_bytes()).await, TOO_LONG);
    assert_eq!(
        exchange(&mut c, mail(1012).as_bytes()).await,
        "530 5.7.0 Authentication required"
    );
    assert_eq!(exchange(&mut c, mail(1013).as_bytes()).await, TOO_LONG);
    // 64 KiB without a line end, in pieces: one 500, the rest is skipped up
    // to the line feed, and the session goes on.
    c.send(b"NOOP ").await;
    for _ in 0..64 {
        c.send([b'x'; 1024]).await;
    }
    c.send(b"yy\r\nNOOP\r\n").await;
    assert_eq!(c.line().await, TOO_LONG);
    assert_eq!(c.line().await, "250 2.0.0 Ok");
    // An AUTH initial response has the AUTH exchange's limit and code
    // (RFC 4954 §4, §6: 500 5.5.6).
    ehlo(&mut c).await;
    let auth = format!("AUTH PLAIN {}\r\n", "QUFB".repeat(2100));
    assert_eq!(
        exchange(&mut c, auth.as_bytes()).await,
        "500 5.5.6 Authentication Exchange line is too long"
    );
    assert_eq!(exchange(&mut c, b"AUTH PLAIN\r\n").await, "334 ");
    c.send("QUFB".repeat(2100)).await;
    assert_eq!(
        exchange(&mut c, b"\r\n").await,
        "500 5.5.6 Authentication Exchange line is too long"
    );
    assert_eq!(exchange(&mut c, b"NOOP\r\n").await, "250 2.0.0 Ok");
    assert_eq!(fake.seen().connections, 0);
    assert!(client_errors("line_too_long") >= before + 5.0);

    // After login the guard has the same limits, and forwards only what fits.
    let mut c = logged_in(&proxy).await;
    assert_eq!(exchange(&mut c, noop(512).as_bytes()).await, "250 2.0.0 Ok");
    assert_eq!(exchange(&mut c, noop(513).as_bytes()).await, TOO_LONG);
    assert_eq!(exchange(&mut c, mail(1013).as_bytes()).await, TOO_LONG);
    c.send(b"RSET ").await;
    for _ in 0..64 {
        c.send([b'x'; 1024]).await;
    }
    c.send(b"\r\nNOOP\r\n").await;
    assert_eq!(c.line().await, TOO_LONG);
    assert_eq!(c.line().await, "250 2.0.0 Ok");
    // The extra 500 octets are for AUTH= (the sender must be the mailbox).
    let prefix = format!("MAIL FROM:<{USER}> AUTH=");
    let mail_auth = |len: usize| format!("{prefix}{}\r\n", "a".repeat(len - prefix.len() - 2));
    assert_eq!(exchange(&mut c, mail_auth(1013).as_bytes()).await, TOO_LONG);
    assert_eq!(exchange(&mut c, mail_auth(1012).as_bytes()).await, "250 2.1.0 Ok");
    let seen = fake.seen();
    assert_eq!(seen.commands, ["EHLO", "AUTH", "NOOP", "NOOP", "MAIL"]);
    assert_eq!(seen.lines[2].len(), 510, "the 512-octet NOOP went through whole");
    still_serving(&proxy, &fake).await;
}

#[tokio::test]
async fn invalid_base64_and_empty_user_names_in_auth_plain_and_login() {
    metrics::install();
    let fake = FakeSmtp::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let before = client_errors("bad_base64");
    let mut c = smtps(&proxy).await;
    ehlo(&mut c).await;

    const BAD_BASE64: &str = "501 5.5.2 Invalid base64 data";
    const MALFORMED: &str = "501 5.5.2 Malformed authentication data";
    const USERNAME: &str = "334 VXNlcm5hbWU6";
    const PASSWORD: &str = "334 UGFzc3dvcmQ6";
    // (lines of one AUTH exchange, each with the reply it gets)
    let rows: [&[(&[u8], &str)]; 12] = [
        // Base64 alphabet, but not base64 (RFC 4954 §4: 501 5.5.2).
        &[(b"AUTH PLAIN YWJj=\r\n", BAD_BASE64)],
        &[(b"AUTH PLAIN ====\r\n", BAD_BASE64)],
        &[(b"AUTH PLAIN\r\n", "334 "), (b"YWJj=\r\n", BAD_BASE64)],
        &[(b"AUTH PLAIN\r\n", "334 "), (b"YW Jj\r\n", BAD_BASE64)],
        &[(b"AUTH LOGIN YQ\r\n", BAD_BASE64)],
        &[(b"AUTH LOGIN\r\n", USERNAME), (b"Y*Q=\r\n", BAD_BASE64)],
        &[
            (b"AUTH LOGIN\r\n", USERNAME),
            (b"YWxpY2U=\r\n", PASSWORD),
            (b"!!\r\n", BAD_BASE64),
        ],
        // Empty user names, and PLAIN messages without their NULs.
        &[(b"AUTH PLAIN AABwdw==\r\n", MALFORMED)], // "\0\0pw"
        &[(b"AUTH PLAIN AGFsaWNl\r\n", MALFORMED)], // "\0alice": no password
        &[(b"AUTH PLAIN\r\n", "334 "), (b"=\r\n", MALFORMED)],
        &[(b"AUTH LOGIN =\r\n", MALFORMED)],
        &[(b"AUTH LOGIN\r\n", USERNAME), (b"=\r\n", MALFORMED)],
    ];
    for (i, row) in rows.iter().enumerate() {
        for (input, expected) in *row {
            assert_eq!(exchange(&mut c, input).await, *expected, "row {i}: {input:?}");
        }
    }
    assert_eq!(
        exchange(&mut c, b"AUTH LOGIN\r\n").await,
        USERNAME,
        "a client may cancel"
    );
    assert_eq!(
        exchange(&mut c, b"*\r\n").await,
        "501 5.7.0 Authentication cancelled"
    );
    assert_eq!(fake.seen().connections, 0, "no SASL garbage reached the upstream");
    assert!(client_errors("bad_base64") >= before + 7.0);
    // None of these was a login attempt (max_login_failures is 3).
    let auth = format!(
        "AUTH PLAIN {}\r\n",
        plain(USER.as_bytes(), FakeSmtp::PASSWORD.as_bytes())
    );
    assert_eq!(
        exchange(&mut c, auth.as_bytes()).await,
        "235 2.7.0 Authentication successful"
    );
    still_serving(&proxy, &fake).await;
}

#[tokio::test]
async fn crlf_quotes_spaces_and_non_utf8_in_user_names_never_become_commands_upstream() {
    let fake = FakeSmtp::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, "max_login_failures = 50\n").await;
    let injected_login = format!(
        "alice@pec.example\r\nAUTH PLAIN {}",
        plain(b"alice@pec.example", FakeSmtp::PASSWORD.as_bytes())
    );
    let names: [&[u8]; 6] = [
        b"alice@pec.example\r\nRCPT TO:<victim@pec.example>\r\nDATA",
        injected_login.as_bytes(),
        b"alice\nQUIT",
        b"\"al\\\"ice\" \"x\"@pec.example",
        b"a l i c e @pec.example",
        b"\xff\xfe\xc3(@pec.example",
    ];
    let mut expected_auths = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let password = format!("wrong {i}\r\nQUIT");
        // PLAIN with an initial response, PLAIN after 334, and LOGIN.
        for how in ["plain-ir", "plain", "login"] {
            let mut c = smtps(&proxy).await;
            ehlo(&mut c).await;
            let blob = plain(name, password.as_bytes());
            let reply = match how {
                "plain-ir" => exchange(&mut c, format!("AUTH PLAIN {blob}\r\n").as_bytes()).await,
                "plain" => {
                    assert_eq!(exchange(&mut c, b"AUTH PLAIN\r\n").await, "334 ");
                    exchange(&mut c, format!("{blob}\r\n").as_bytes()).await
                }
                _ => {
                    let user = STANDARD.encode(name);
                    let line = format!("AUTH LOGIN {user}\r\n");
                    assert_eq!(exchange(&mut c, line.as_bytes()).await, "334 UGFzc3dvcmQ6");
                    let pw = STANDARD.encode(&password);
                    exchange(&mut c, format!("{pw}\r\n").as_bytes()).await
                }
            };
            assert_eq!(
                reply,
                "535 5.7.8 Authentication credentials invalid",
                "{how} {:?}",
                String::from_utf8_lossy(name)
            );
            expected_auths.push((Vec::new(), name.to_vec(), password.clone().into_bytes()));
            // The session goes on.
            assert_eq!(exchange(&mut c, b"NOOP\r\n").await, "250 2.0.0 Ok");
        }
    }
    // A NUL in a LOGIN user name or password would move the field
    // boundaries of the PLAIN message sent upstream (RFC 4616 §2 forbids it).
    let mut c = smtps(&proxy).await;
    ehlo(&mut c).await;
    let user = STANDARD.encode(b"alice\0@pec.example");
    assert_eq!(
        exchange(&mut c, format!("AUTH LOGIN {user}\r\n").as_bytes()).await,
        "501 5.5.2 Malformed authentication data"
    );
    assert_eq!(
        exchange(&mut c, b"AUTH LOGIN YWxpY2U=\r\n").await,
        "334 UGFzc3dvcmQ6"
    );
    let password = STANDARD.encode(b"x\0right-password");
    assert_eq!(
        exchange(&mut c, format!("{password}\r\n").as_bytes()).await,
        "501 5.5.2 Malformed authentication data"
    );
    // An authorization identity other than the user is refused unasked.
    let blob = STANDARD.encode(b"bob@pec.example\0alice@pec.example\0right-password");
    let reply = exchange(&mut c, format!("AUTH PLAIN {blob}\r\n").as_bytes()).await;
    assert!(reply.starts_with("550 5.7.1 "), "{reply}");

    fake.wait_ended(expected_auths.len()).await;
    let seen = fake.seen();
    assert_eq!(
        seen.connections,
        expected_auths.len(),
        "one upstream login per attempt"
    );
    assert_eq!(
        seen.auths, expected_auths,
        "the upstream got the exact names, as SASL"
    );
    for line in &seen.lines {
        assert!(
            line == b"EHLO client.example" || line.starts_with(b"AUTH PLAIN "),
            "the upstream saw {:?}",
            String::from_utf8_lossy(line)
        );
    }
    assert_eq!(seen.lines.len(), 2 * expected_auths.len());
    still_serving(&proxy, &fake).await;
}

#[tokio::test]
async fn bytes_pipelined_after_starttls_are_never_executed() {
    let fake = FakeSmtp::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let mut c = Client::plain(proxy.addr("submission")).await;
    assert_eq!(c.line().await, GREETING);
    let ehlo_lines = ehlo(&mut c).await;
    assert_eq!(ehlo_lines.last().unwrap(), "250 STARTTLS");
    let auth = format!(
        "AUTH PLAIN {}\r\n",
        plain(USER.as_bytes(), FakeSmtp::PASSWORD.as_bytes())
    );
    c.send(format!(
        "STARTTLS\r\nEHLO injected\r\n{auth}MAIL FROM:<{USER}>\r\nRCPT TO:<bob@pec.example>\r\n"
    ))
    .await;
    assert_eq!(c.line().await, "220 2.0.0 Ready to start TLS");
    c.upgrade().await;
    // The EHLO before TLS is forgotten (RFC 3207 §4.2) and the pipelined
    // one was never executed: AUTH needs a new EHLO.
    assert_eq!(
        exchange(&mut c, auth.as_bytes()).await,
        "503 5.5.1 Send EHLO first"
    );
    assert_eq!(
        exchange(&mut c, format!("MAIL FROM:<{USER}>\r\n").as_bytes()).await,
        "530 5.7.0 Authentication required"
    );
    assert_eq!(fake.seen().connections, 0, "the pipelined AUTH never logged in");
    let ehlo_lines = ehlo(&mut c).await;
    assert!(
        !ehlo_lines.iter().any(|l| l.contains("STARTTLS")),
        "{ehlo_lines:?}"
    );
    assert_eq!(
        exchange(&mut c, auth.as_bytes()).await,
        "235 2.7.0 Authentication successful"
    );
    assert_eq!(fake.seen().auths.len(), 1);
    still_serving(&proxy, &fake).await;
}

/// A plain connection to `submission` that has been told to start TLS.
async fn after_starttls(proxy: &Proxy) -> TcpStream {
    told_to_start_tls(
        proxy.addr("submission"),
        b"EHLO c\r\nSTARTTLS\r\n",
        b"220 2.0.0 Ready to start TLS\r\n",
    )
    .await
}

#[tokio::test]
async fn tls_client_hello_garbage_is_closed_and_counted() {
    metrics::install();
    let fake = FakeSmtp::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let errors = || {
        metrics::value(
            "pec_proxy_tls_handshakes_total",
            &[("protocol", "smtp"), ("result", "error")],
        )
    };
    let before = errors();
    let garbage: [&[u8]; 4] = [
        b"\x16\x03\x01\x00\x05hello",
        b"EHLO client.example\r\n",
        b"\x16\x03\x03\xff\xff",
        &[0u8; 600],
    ];
    for bytes in garbage {
        let tcp = TcpStream::connect(proxy.addr("smtps")).await.unwrap();
        garbage_instead_of_tls(tcp, bytes).await;
        garbage_instead_of_tls(after_starttls(&proxy).await, bytes).await;
    }
    // One may end as a timeout rather than an error on a slow machine; at
    // least the clearly broken records are errors.
    assert!(errors() >= before + 6.0, "{} errors", errors() - before);
    assert_eq!(fake.seen().connections, 0);
    still_serving(&proxy, &fake).await;
}

#[tokio::test]
async fn a_client_that_never_finishes_tls_is_cut_at_the_handshake_timeout() {
    let fake = FakeSmtp::start(Behaviour::Serve).await;
    let proxy = proxy(
        &fake,
        "tls_handshake_timeout_secs = 1\nprelogin_timeout_secs = 30\n",
    )
    .await;
    for starttls in [false, true] {
        let started = Instant::now();
        let mut tcp = if starttls {
            after_starttls(&proxy).await
        } else {
            TcpStream::connect(proxy.addr("smtps")).await.unwrap()
        };
        tcp.write_all(b"\x16\x03").await.unwrap(); // half a record header, then silence
        let mut reply = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut reply)).await;
        assert!(read.is_ok(), "closed (STARTTLS: {starttls})");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(10),
            "{took:?} (STARTTLS: {starttls})"
        );
    }
    still_serving(&proxy, &fake).await;
}

#[tokio::test]
async fn slowloris_is_cut_at_the_prelogin_timeout() {
    metrics::install();
    let fake = FakeSmtp::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let before = client_errors("prelogin_timeout");
    let mut c = Client::plain(proxy.addr("submission")).await;
    assert_eq!(c.line().await, GREETING);
    let command = b"EHLO a-client-that-sends-one-byte-a-second.example\r\n";
    let (line, took) = slowloris(&mut c, command, Duration::from_secs(1)).await;
    assert_eq!(
        line.as_deref(),
        Some("421 4.4.2 Timeout waiting for authentication, closing connection")
    );
    assert!(c.try_line().await.is_none(), "closed after the 421");
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(15),
        "cut after {took:?}"
    );
    assert!(client_errors("prelogin_timeout") >= before + 1.0);
    still_serving(&proxy, &fake).await;
}

#[tokio::test]
async fn a_client_that_pipelines_without_reading_cannot_make_us_buffer_without_bound() {
    let fake = FakeSmtp::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;

    // Before login: EHLO, whose answer is 20 times larger than it is.
    let mut c = Client::plain(proxy.addr("submission")).await;
    let written = write_without_reading(&mut c, &b"EHLO c\r\n".repeat(4096)).await;
    // Loopback socket buffers hold a few MB at most; without backpressure
    // the proxy would have taken everything we could write in 2 s.
    eprintln!("before login: the proxy took {written} bytes, then stopped reading");
    assert!(written < 32 << 20, "the proxy took {written} bytes");

    // After login: commands the guard answers itself (HELP) and commands it
    // forwards (NOOP), pipelined (RFC 2920) and never read.
    let mut logged = logged_in(&proxy).await;
    let written = write_without_reading(&mut logged, &b"HELP\r\nNOOP\r\n".repeat(2048)).await;
    eprintln!("after login: the proxy took {written} bytes, then stopped reading");
    assert!(written < 32 << 20, "the proxy took {written} bytes");
    let forwarded = fake.seen().commands.len();
    assert!(forwarded < 1 << 20, "the upstream got {forwarded} commands");

    still_serving(&proxy, &fake).await;
    // The pre-login timeout ends the stuck session; its 421 write is bounded.
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while c.try_line().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stuck session was closed");
}

#[tokio::test]
async fn a_thousand_silent_connections_from_one_address_do_not_stop_others() {
    metrics::install();
    let fake = FakeSmtp::start(Behaviour::Serve).await;
    let proxy = proxy(
        &fake,
        "prelogin_timeout_secs = 120\nmax_connections = 500\nmax_connections_per_ip = 20\nmax_prelogin_per_ip = 10\n",
    )
    .await;
    let refused = || {
        metrics::value(
            "pec_proxy_connections_refused_total",
            &[("limit", "prelogin_per_ip")],
        )
    };
    let before = refused();
    // Admitted ones get the greeting, refused ones a 421 and a close.
    let (silent, refusals) = silent_crowd(
        ip("127.0.0.2"),
        proxy.addr("submission"),
        1000,
        GREETING.as_bytes(),
        b"421 4.7.0 Too many connections from your address\r\n",
    )
    .await;
    assert_eq!(silent.len(), 10, "max_prelogin_per_ip admitted");
    assert_eq!(refusals, 990);
    assert!(refused() >= before + 990.0);
    // Another address is served at once.
    let mut c = Client::tls_from(ip("127.0.0.3"), proxy.addr("smtps")).await;
    assert_eq!(c.line().await, GREETING);
    ehlo(&mut c).await;
    let auth = format!(
        "AUTH PLAIN {}\r\n",
        plain(USER.as_bytes(), FakeSmtp::PASSWORD.as_bytes())
    );
    assert_eq!(
        exchange(&mut c, auth.as_bytes()).await,
        "235 2.7.0 Authentication successful"
    );
}

#[tokio::test]
async fn bdat_is_never_offered_and_a_4_gib_chunk_is_not_awaited() {
    let fake = FakeSmtp::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let mut c = smtps(&proxy).await;
    let offered = ehlo(&mut c).await;
    assert!(!offered.iter().any(|l| l.contains("CHUNKING")), "{offered:?}");
    assert_eq!(
        exchange(&mut c, b"BDAT 4294967296 LAST\r\n").await,
        "530 5.7.0 Authentication required"
    );
    assert_eq!(exchange(&mut c, b"NOOP\r\n").await, "250 2.0.0 Ok");

    let mut c = logged_in(&proxy).await;
    let offered = ehlo(&mut c).await;
    assert!(!offered.iter().any(|l| l.contains("CHUNKING")), "{offered:?}");
    assert_eq!(
        exchange(&mut c, b"BDAT 4294967296 LAST\r\n").await,
        "502 5.5.1 Command not implemented"
    );
    assert_eq!(exchange(&mut c, b"NOOP\r\n").await, "250 2.0.0 Ok");
    assert_eq!(fake.seen().commands, ["EHLO", "AUTH", "EHLO", "NOOP"]);
    still_serving(&proxy, &fake).await;
}

/// ALPACA (CVE-2021-3618): an HTTP request sent to the submission port is
/// cut off after `max_prelogin_errors` (5) refusals, before its body's AUTH.
#[tokio::test]
async fn an_http_request_is_cut_off_after_five_errors() {
    metrics::install();
    let fake = FakeSmtp::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, "max_prelogin_errors = 5\n").await;
    let before = client_errors("too_many_errors");
    let lines = http_request_lines(proxy.addr("submission")).await;
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert!(lines[..5].iter().all(|l| l.starts_with("5")), "{lines:#?}");
    assert_eq!(
        lines[5],
        "421 4.7.0 Too many invalid commands, closing connection"
    );
    assert!(client_errors("too_many_errors") >= before + 1.0);
    assert_eq!(fake.seen().connections, 0, "nothing reached the upstream");
    still_serving(&proxy, &fake).await;
}

/// Header blocks that would let a reader see fewer recipients than the
/// `RCPT TO`s (a blind copy, RFC 6109 §3.1.1): a `To:` after a line a mail
/// server ends the header at, two addresses without a comma, an open
/// comment, a continuation that is a second `To:`, a `Resent-To:`. Each is
/// refused at the end of the header block with its reply, the session
/// goes on, and the upstream never gets `DATA` nor a line of the message.
#[tokio::test]
async fn recipients_hidden_from_the_reader_are_refused_before_data_goes_upstream() {
    const MALFORMED: &str =
        "550 5.6.0 A header line is neither a field nor a continuation (RFC 5322 2.2), message refused";
    const UNREADABLE: &str = "550 5.7.1 To: and Cc: must be RFC 5322 address lists to check the recipients (PEC rule, RFC 6109 3.1.1)";
    const RESENT: &str = "550 5.7.1 Resent-To:, Resent-Cc: and Resent-Bcc: are not allowed in certified mail (PEC rule, RFC 6109 3.1.1)";
    let fake = FakeSmtp::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let rows = [
        (
            "To: bob@pec.example\r\nnot a field\r\nTo: hidden@pec.example\r\n",
            MALFORMED,
        ),
        (
            "To: bob@pec.example\r\nX Y: z\r\nCc: hidden@pec.example\r\n",
            MALFORMED,
        ),
        ("To: bob@pec.example hidden@pec.example\r\n", UNREADABLE),
        ("To: bob@pec.example, (hidden@pec.example\r\n", UNREADABLE),
        ("To: bob@pec.example\r\n To: hidden@pec.example\r\n", UNREADABLE),
        (
            "To: bob@pec.example, hidden@pec.example\r\nResent-To: bob@pec.example\r\n",
            RESENT,
        ),
    ];
    for (i, (headers, reply)) in rows.iter().enumerate() {
        let mut c = logged_in(&proxy).await;
        c.send(format!(
            "MAIL FROM:<{USER}>\r\nRCPT TO:<bob@pec.example>\r\nRCPT TO:<hidden@pec.example>\r\nDATA\r\n"
        ))
        .await;
        assert_eq!(c.line().await, "250 2.1.0 Ok");
        assert_eq!(c.line().await, "250 2.1.5 Ok");
        assert_eq!(c.line().await, "250 2.1.5 Ok");
        assert_eq!(c.line().await, "354 End data with <CR><LF>.<CR><LF>");
        c.send(format!("From: {USER}\r\n{headers}\r\nhidden body {i}\r\n.\r\n"))
            .await;
        assert_eq!(c.line().await, *reply, "row {i}");
        assert_eq!(exchange(&mut c, b"NOOP\r\n").await, "250 2.0.0 Ok", "row {i}");
        assert_eq!(exchange(&mut c, b"QUIT\r\n").await, "221 2.0.0 Bye");
        fake.wait_ended(i + 1).await;
    }
    let seen = fake.seen();
    assert!(!seen.commands.iter().any(|c| c == "DATA"), "{:?}", seen.commands);
    assert!(
        !seen
            .lines
            .iter()
            .any(|l| l.starts_with(b"From:") || l.starts_with(b"hidden body")),
        "no line of a refused message reaches the upstream"
    );
    still_serving(&proxy, &fake).await;
}
