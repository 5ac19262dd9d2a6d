//! The hostile-input matrix for IMAP: each row sends what a broken or
//! malicious client would, and checks the documented reply (or close) and
//! that the proxy keeps serving others. The upstream is the in-process fake,
//! which records every command it receives, so "never becomes a second
//! command upstream" is checked on the upstream's side of the wire.

use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::client::Client;
use crate::support::fake_imap::{Behaviour, FakeImap, upstream_config};
use crate::support::hostile::{
    garbage_instead_of_tls, http_request_lines, silent_crowd, slowloris, told_to_start_tls,
    write_without_reading,
};
use crate::support::metrics;
use crate::support::proxy::{Proxy, imap_listeners};

/// A 3 s pre-login timeout, for the slowloris and backpressure rows.
const SHORT: &str = "prelogin_timeout_secs = 3\n";
/// Rows send many bad commands on one connection to show each reply; the
/// cut-off after `max_prelogin_errors` has its own row.
const MANY_ERRORS: &str = "max_prelogin_errors = 1000\n";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A proxy in front of a fake upstream with `limits` as its `[limits]`
/// table ([`SHORT`] unless a row needs more).
async fn proxy(fake: &FakeImap, limits: &str) -> Proxy {
    let many = if limits.contains("max_prelogin_errors") {
        ""
    } else {
        MANY_ERRORS
    };
    let config = format!(
        "{}{}\n[limits]\n{limits}{many}\n[penalty]\nenabled = false\n",
        imap_listeners(),
        upstream_config(fake.addr)
    );
    Proxy::start(&config).await
}

async fn imaps(proxy: &Proxy) -> Client {
    let mut c = Client::tls(proxy.addr("imaps")).await;
    assert!(c.line().await.starts_with("* OK [CAPABILITY IMAP4rev1 "));
    c
}

/// Proves the proxy still serves: a fresh client logs in through it.
async fn still_serving(proxy: &Proxy) {
    let mut c = imaps(proxy).await;
    let reply = c
        .command("ok", &format!("LOGIN someone@pec.example {}", FakeImap::PASSWORD))
        .await;
    assert!(
        reply.starts_with("ok OK [CAPABILITY IMAP4rev1 IDLE] Logged in"),
        "{reply}"
    );
}

/// Sends raw bytes and returns the next line.
async fn exchange(c: &mut Client, bytes: &[u8]) -> String {
    c.send(bytes).await;
    c.line().await
}

#[tokio::test]
async fn nul_bare_lf_and_bare_cr_are_bad_commands_and_the_session_goes_on() {
    let fake = FakeImap::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let mut c = imaps(&proxy).await;

    let rows: [(&[u8], &str); 5] = [
        (b"a LOGIN al\0ice secret\r\n", "a BAD Invalid command"),
        (b"b NOOP\0\r\n", "b BAD Invalid command"),
        // A bare LF ends the line for error recovery, but is not a command end.
        (b"c NOOP\n", "c BAD Invalid command"),
        (b"d NOOP\re NOOP\r\n", "d BAD Invalid command"),
        (b"\0\0\0\r\n", "* BAD Invalid command"),
    ];
    for (input, expected) in rows {
        let line = exchange(&mut c, input).await;
        assert!(line.starts_with(expected), "{input:?}: {line}");
    }
    assert_eq!(c.command("z", "NOOP").await, "z OK NOOP completed.");
    assert!(fake.seen().commands.is_empty(), "nothing reached the upstream");
    still_serving(&proxy).await;
}

#[tokio::test]
async fn over_long_lines_and_huge_literal_announcements() {
    let fake = FakeImap::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;

    // A 4 GiB synchronising literal: refused, no `+`, the session goes on.
    let mut c = imaps(&proxy).await;
    let line = exchange(&mut c, b"a LOGIN {4294967296}\r\n").await;
    assert_eq!(line, "a BAD [TOOBIG] Literal too large.");
    assert_eq!(c.command("b", "NOOP").await, "b OK NOOP completed.");
    // Larger than any integer type.
    let line = exchange(&mut c, b"c LOGIN {99999999999999999999999}\r\n").await;
    assert!(line.starts_with("c BAD"), "{line}");
    assert_eq!(c.command("d", "NOOP").await, "d OK NOOP completed.");

    // Non-synchronising: the data is on its way and cannot be skipped: close.
    let mut c = imaps(&proxy).await;
    c.send(b"a LOGIN {4294967296+}\r\nAAAA").await;
    let lines = c.expect_closed().await;
    assert_eq!(
        lines,
        ["a BAD [TOOBIG] Literal too large.", "* BYE Literal too large"]
    );

    // A line longer than 8 KiB, with and without its end, sent in pieces
    // (nothing after the limit, so the proxy reads all and closes cleanly).
    for end in [&b"\r\n"[..], b""] {
        let mut c = imaps(&proxy).await;
        c.send(b"a LOGIN ").await;
        for _ in 0..8 {
            c.send(&[b'x'; 1024]).await;
        }
        c.send([&b"yy"[..], end].concat()).await;
        let lines = c.expect_closed().await;
        assert_eq!(lines, ["* BYE Command line too long"]);
    }
    assert!(fake.seen().commands.is_empty());
    still_serving(&proxy).await;
}

/// Sends `a ID (` then `"fN" {1024+}` literals with their data for ever
/// (up to `max` bytes, stopping if the proxy closes), and returns what the
/// proxy said before it closed.
async fn endless_literal_chain(c: &mut Client, max: usize) -> Vec<String> {
    let mut sent = 0;
    let mut chain = b"a ID (".to_vec();
    let mut i = 0;
    while sent < max {
        while chain.len() < 4096 {
            chain.extend(format!("\"f{i}\" {{1024+}}\r\n").as_bytes());
            chain.extend([b'x'; 1024]);
            chain.push(b' ');
            i += 1;
        }
        if c.send_raw(&chain).await.is_err() {
            break;
        }
        sent += chain.len();
        chain.clear();
    }
    c.expect_closed().await
}

#[tokio::test]
async fn a_chain_of_literals_in_one_command_is_cut_off_at_the_command_budget() {
    let fake = FakeImap::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let refused = |protocol| {
        metrics::value(
            "pec_proxy_client_errors_total",
            &[("protocol", protocol), ("kind", "literal_too_big")],
        )
    };
    let before = refused("imap");
    const CUT: [&str; 2] = ["a BAD [TOOBIG] Command too large.", "* BYE Command too large"];

    // Over TLS: 1 MiB offered, refused at the 9th literal (8 of 1 KiB fit
    // the 32 KiB budget; the unit tests show the budget itself).
    let mut c = imaps(&proxy).await;
    assert_eq!(endless_literal_chain(&mut c, 1 << 20).await, CUT);

    // The same in clear on the STARTTLS port, before any TLS.
    let mut c = Client::plain(proxy.addr("imap")).await;
    assert!(c.line().await.starts_with("* OK [CAPABILITY IMAP4rev1 "));
    assert_eq!(endless_literal_chain(&mut c, 1 << 20).await, CUT);

    // Other rows count literal_too_big too, concurrently: at least ours.
    assert!(refused("imap") - before >= 2.0);
    assert!(fake.seen().commands.is_empty());
    still_serving(&proxy).await;
}

#[tokio::test]
async fn invalid_base64_and_empty_names_in_sasl() {
    metrics::install();
    let fake = FakeImap::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let bad_sasl = || {
        metrics::value(
            "pec_proxy_client_errors_total",
            &[("protocol", "imap"), ("kind", "bad_base64")],
        )
    };
    let before = bad_sasl();
    let mut c = imaps(&proxy).await;

    assert_eq!(exchange(&mut c, b"a AUTHENTICATE PLAIN\r\n").await, "+ ");
    let line = exchange(&mut c, b"!!!not base64!!!\r\n").await;
    assert!(line.starts_with("a BAD"), "{line}");
    let line = exchange(&mut c, b"b AUTHENTICATE PLAIN ****\r\n").await;
    assert!(line.starts_with("b BAD"), "{line}");
    let line = exchange(&mut c, b"c AUTHENTICATE PLAIN AGFsaWNl\r\n").await; // "\0alice": no password
    assert!(line.starts_with("c BAD"), "{line}");
    // authzid, empty authcid, password: "empty user name".
    let line = exchange(&mut c, b"d AUTHENTICATE PLAIN eAAAeA==\r\n").await;
    assert!(line.starts_with("d BAD"), "{line}");
    assert_eq!(
        exchange(&mut c, b"e AUTHENTICATE LOGIN\r\n").await,
        "+ VXNlcm5hbWU6"
    );
    let line = exchange(&mut c, b"=\r\n").await; // empty user name
    assert!(line.starts_with("e BAD"), "{line}");
    assert_eq!(c.command("f", "NOOP").await, "f OK NOOP completed.");
    // `b`'s `****` is a command syntax error; the other four are SASL data.
    assert!(bad_sasl() >= before + 4.0, "SASL refusals counted");
    assert!(
        fake.seen().commands.is_empty(),
        "no SASL garbage reached the upstream"
    );
}

#[tokio::test]
async fn empty_non_utf8_crlf_and_quotes_in_user_names_never_become_commands_upstream() {
    let fake = FakeImap::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, "max_login_failures = 10\n").await;
    let mut c = imaps(&proxy).await;

    let injected = b"alice\r\nX1 LOGOUT\r\nX2 SELECT INBOX";
    let names: Vec<(Vec<u8>, &[u8])> = vec![
        (b"\"\"".to_vec(), b""),
        (b"\"al\\\"ice\\\\\"".to_vec(), b"al\"ice\\"),
        (
            [format!("{{{}}}\r\n", injected.len()).as_bytes(), injected].concat(),
            injected,
        ),
        (b"{4}\r\n\xff\xfe\xc3(".to_vec(), b"\xff\xfe\xc3("),
        (b"{11}\r\nal\"ice\" \"\r\n".to_vec(), b"al\"ice\" \"\r\n"),
    ];
    for (i, (wire, decoded)) in names.iter().enumerate() {
        let tag = format!("t{i}");
        let mut cmd = format!("{tag} LOGIN ").into_bytes();
        // Literals: send up to the announcement, wait for `+`, then the rest.
        match wire.iter().position(|&b| b == b'\n') {
            Some(nl) if wire[0] == b'{' => {
                cmd.extend_from_slice(&wire[..=nl]);
                assert!(exchange(&mut c, &cmd).await.starts_with("+ "));
                cmd = wire[nl + 1..].to_vec();
            }
            _ => cmd.extend_from_slice(wire),
        }
        cmd.extend_from_slice(b" wrong-password\r\n");
        let reply = exchange(&mut c, &cmd).await;
        assert_eq!(
            reply,
            format!("{tag} NO [AUTHENTICATIONFAILED] Authentication failed"),
            "{:?}",
            String::from_utf8_lossy(decoded)
        );
        let seen = fake.seen();
        assert_eq!(
            seen.logins.last().unwrap().0,
            *decoded,
            "the upstream got the exact name"
        );
    }
    // NUL is not a CHAR8 (RFC 3501 §9): refused before anything goes upstream.
    assert!(exchange(&mut c, b"n LOGIN {6}\r\n").await.starts_with("+ "));
    assert_eq!(
        exchange(&mut c, b"al\0ice x\r\n").await,
        "n BAD Invalid command: NUL in literal."
    );
    let seen = fake.seen();
    assert_eq!(seen.logins.len(), names.len());
    for cmd in &seen.commands {
        assert!(
            cmd == "ID" || cmd == "LOGIN",
            "the upstream saw {cmd}: {:?}",
            seen.commands
        );
    }
}

#[tokio::test]
async fn bytes_pipelined_after_starttls_are_never_executed() {
    let fake = FakeImap::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let mut c = Client::plain(proxy.addr("imap")).await;
    c.line().await;
    c.send(format!(
        "a STARTTLS\r\nb LOGIN someone@pec.example {}\r\nc LOGOUT\r\n",
        FakeImap::PASSWORD
    ))
    .await;
    assert_eq!(c.line().await, "a OK Begin TLS negotiation now.");
    c.upgrade().await;
    assert_eq!(c.command("d", "NOOP").await, "d OK NOOP completed.");
    assert!(fake.seen().logins.is_empty(), "the pipelined LOGIN was discarded");
}

#[tokio::test]
async fn tls_client_hello_garbage_is_closed_and_counted() {
    metrics::install();
    let fake = FakeImap::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let before = metrics::value("pec_proxy_tls_handshakes_total", &[("result", "error")]);
    let garbage: [&[u8]; 4] = [
        b"\x16\x03\x01\x00\x05hello",
        b"a LOGIN alice secret\r\n",
        b"\x16\x03\x03\xff\xff",
        &[0u8; 600],
    ];
    // On the IMAPS port, and on the STARTTLS port after its tagged OK.
    for bytes in garbage {
        let tcp = TcpStream::connect(proxy.addr("imaps")).await.unwrap();
        garbage_instead_of_tls(tcp, bytes).await;
        let ok = b"a OK Begin TLS negotiation now.\r\n";
        let tcp = told_to_start_tls(proxy.addr("imap"), b"a STARTTLS\r\n", ok).await;
        garbage_instead_of_tls(tcp, bytes).await;
    }
    assert!(metrics::value("pec_proxy_tls_handshakes_total", &[("result", "error")]) >= before + 3.0);
    still_serving(&proxy).await;
}

#[tokio::test]
async fn slowloris_is_cut_at_the_prelogin_timeout() {
    let fake = FakeImap::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let mut c = Client::plain(proxy.addr("imap")).await;
    c.line().await;
    let command = b"a LOGIN someone@pec.example secret-secret-secret\r\n";
    let (line, took) = slowloris(&mut c, command, Duration::from_millis(400)).await;
    assert_eq!(line.as_deref(), Some("* BYE Disconnected: login timeout"));
    assert!(c.try_line().await.is_none(), "closed after the BYE");
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(15),
        "cut after {took:?}"
    );
    still_serving(&proxy).await;
}

#[tokio::test]
async fn a_client_that_never_starts_tls_is_cut_at_the_handshake_timeout() {
    let fake = FakeImap::start(Behaviour::Serve).await;
    let proxy = proxy(
        &fake,
        "tls_handshake_timeout_secs = 1\nprelogin_timeout_secs = 30\n",
    )
    .await;
    let started = Instant::now();
    let mut tcp = TcpStream::connect(proxy.addr("imaps")).await.unwrap();
    tcp.write_all(b"\x16\x03").await.unwrap(); // half a record header, then silence
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "closed");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    still_serving(&proxy).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_cannot_make_us_buffer_without_bound() {
    let fake = FakeImap::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let mut c = Client::plain(proxy.addr("imap")).await;
    // Requests whose answers are larger than they are, never reading one.
    let written = write_without_reading(&mut c, &b"a CAPABILITY\r\n".repeat(4096)).await;
    // Loopback socket buffers hold a few MB at most; without backpressure
    // the proxy would have taken everything we could write in 2 s.
    eprintln!("backpressure: the proxy took {written} bytes, then stopped reading");
    assert!(written < 32 << 20, "the proxy took {written} bytes");
    still_serving(&proxy).await;
    // The pre-login timeout ends the stuck session; its BYE write is bounded.
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while c.try_line().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stuck session was closed");
}

#[tokio::test]
async fn a_thousand_silent_connections_from_one_address_do_not_stop_others() {
    metrics::install();
    let fake = FakeImap::start(Behaviour::Serve).await;
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
    // Admitted ones get the greeting, refused ones a BYE and a close.
    let (silent, byes) = silent_crowd(
        ip("127.0.0.2"),
        proxy.addr("imap"),
        1000,
        b"* OK",
        b"* BYE [UNAVAILABLE] Too many connections",
    )
    .await;
    assert_eq!(silent.len(), 10, "max_prelogin_per_ip admitted");
    assert_eq!(byes, 990);
    assert!(refused() >= before + 990.0);
    // Another address is served at once.
    let mut c = Client::tls_from(ip("127.0.0.3"), proxy.addr("imaps")).await;
    assert!(c.line().await.starts_with("* OK"));
    let reply = c
        .command("a", &format!("LOGIN someone@pec.example {}", FakeImap::PASSWORD))
        .await;
    assert!(reply.starts_with("a OK"), "{reply}");
}

#[tokio::test]
async fn logged_in_sessions_free_their_prelogin_place_but_count_as_connections() {
    let fake = FakeImap::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, "max_connections_per_ip = 3\nmax_prelogin_per_ip = 2\n").await;
    let from = ip("127.0.0.6");
    let mut sessions = Vec::new();
    for i in 0..3 {
        let mut c = Client::tls_from(from, proxy.addr("imaps")).await;
        c.line().await;
        let reply = c
            .command("a", &format!("LOGIN user{i}@pec.example {}", FakeImap::PASSWORD))
            .await;
        assert!(reply.starts_with("a OK"), "{reply}");
        sessions.push(c);
    }
    // Three logged in: the fourth connection is over max_connections_per_ip.
    let mut c = Client::plain_from(from, proxy.addr("imap")).await;
    assert_eq!(
        c.expect_closed().await,
        ["* BYE [UNAVAILABLE] Too many connections from your address"]
    );
    drop(sessions.pop());
    // The place comes back when a session ends (asynchronously: retry briefly).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = Client::plain_from(from, proxy.addr("imap")).await;
        if c.line().await.starts_with("* OK") {
            break;
        }
        assert!(Instant::now() < deadline, "the place was not given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// ALPACA (CVE-2021-3618): an HTTP request sent to the IMAP port is cut
/// off after `max_prelogin_errors` (5) refusals, before its body's LOGIN.
#[tokio::test]
async fn an_http_request_is_cut_off_after_five_errors() {
    metrics::install();
    let fake = FakeImap::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, "max_prelogin_errors = 5\n").await;
    let cut = || {
        metrics::value(
            "pec_proxy_client_errors_total",
            &[("protocol", "imap"), ("kind", "too_many_errors")],
        )
    };
    let before = cut();
    let lines = http_request_lines(proxy.addr("imap")).await;
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert!(lines[..5].iter().all(|l| l.contains("BAD ")), "{lines:#?}");
    assert_eq!(lines[5], "* BYE Too many invalid commands");
    assert!(cut() >= before + 1.0);
    assert_eq!(fake.seen().connections, 0, "nothing reached the upstream");
    still_serving(&proxy).await;
}
