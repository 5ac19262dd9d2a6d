//! The hostile-input matrix for POP3, the twin of `imap.rs`: each row sends
//! what a broken or malicious client would, over the POP3S listener
//! (implicit TLS, port 995's role) and the STLS one (port 110's), and checks
//! the documented reply (or close), the error counted where the proxy counts
//! it, and that the proxy keeps serving others. The upstream is the
//! in-process fake, which records every line it receives, so "never becomes
//! a second command upstream" is checked on the upstream's side of the wire.
//!
//! POP3 has no literals: the 4 GiB literal announcements of the IMAP matrix
//! have no POP3 row. The nearest thing, a line that never ends, is the
//! over-long line row. Rows already run against a real Dovecot in
//! `tests/e2e/pop3.rs` (`bad_input_gets_err_and_the_proxy_keeps_serving`:
//! unknown commands, APOP, a cancelled AUTH, three wrong passwords closing
//! the connection) are not repeated here.

use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::client::Client;
use crate::support::fake_pop3::{Behaviour, FakePop3, upstream_config};
use crate::support::hostile::{
    garbage_instead_of_tls, http_request_lines, silent_crowd, slowloris, told_to_start_tls,
    write_without_reading,
};
use crate::support::metrics;
use crate::support::operator::Operator;
use crate::support::proxy::{Proxy, pop3_listeners};

/// A 3 s pre-login timeout, for the slowloris and backpressure rows.
const SHORT: &str = "prelogin_timeout_secs = 3\n";
/// Rows send many bad commands on one connection to show each reply; the
/// cut-off after `max_prelogin_errors` has its own row.
const MANY_ERRORS: &str = "max_prelogin_errors = 1000\n";
const GREETING: &str = "+OK PEC mail proxy ready.";
const AUTH_FAILED: &str = "-ERR [AUTH] Authentication failed";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `pec_proxy_client_errors_total{protocol="pop3",kind}`.
fn client_errors(kind: &str) -> f64 {
    metrics::value(
        "pec_proxy_client_errors_total",
        &[("protocol", "pop3"), ("kind", kind)],
    )
}

/// A proxy in front of a fake upstream with `limits` as its `[limits]`
/// table ([`SHORT`] unless a row needs more).
async fn proxy(fake: &FakePop3, limits: &str) -> Proxy {
    let many = if limits.contains("max_prelogin_errors") {
        ""
    } else {
        MANY_ERRORS
    };
    let config = format!(
        "{}{}\n[limits]\n{limits}{many}\n[penalty]\nenabled = false\n",
        pop3_listeners(),
        upstream_config(fake.addr)
    );
    Proxy::start(&config).await
}

/// A client past the greeting, under TLS: on `pop3s` from the first byte,
/// on `pop3` after STLS.
async fn connect(proxy: &Proxy, listener: &str) -> Client {
    match listener {
        "pop3s" => {
            let mut c = Client::tls(proxy.addr("pop3s")).await;
            assert_eq!(c.line().await, GREETING);
            c
        }
        "pop3" => {
            let mut c = Client::plain(proxy.addr("pop3")).await;
            assert_eq!(c.line().await, GREETING);
            assert_eq!(cmd(&mut c, "STLS").await, "+OK Begin TLS negotiation now");
            c.upgrade().await;
            c
        }
        other => panic!("no listener {other}"),
    }
}

/// Sends a command line (CRLF added) and returns the reply's first line.
async fn cmd(c: &mut Client, line: impl AsRef<[u8]>) -> String {
    c.send([line.as_ref(), b"\r\n"].concat()).await;
    c.line().await
}

/// `USER` then `PASS`; the reply to `PASS`.
async fn user_pass(c: &mut Client, user: impl AsRef<[u8]>, password: &str) -> String {
    assert_eq!(cmd(c, [b"USER ", user.as_ref()].concat()).await, "+OK");
    cmd(c, format!("PASS {password}")).await
}

/// Proves the proxy still serves: a fresh client logs in through it.
async fn still_serving(proxy: &Proxy) {
    let mut c = connect(proxy, "pop3s").await;
    assert_eq!(
        user_pass(&mut c, "someone@pec.example", FakePop3::PASSWORD).await,
        "+OK Logged in."
    );
    assert_eq!(
        cmd(&mut c, "STAT").await,
        format!("+OK 1 {}", FakePop3::MESSAGE_BYTES)
    );
}

/// What the fake saw were logins and nothing else: `CAPA`, `XCLIENT` and
/// one `AUTH` per login.
fn only_logins_reached(fake: &FakePop3) {
    let seen = fake.seen();
    for command in &seen.commands {
        assert!(
            ["CAPA", "XCLIENT", "AUTH"].contains(&command.as_str()),
            "the upstream saw {command}: {:?}",
            seen.commands
        );
    }
    let auths = seen.commands.iter().filter(|c| *c == "AUTH").count();
    assert_eq!(auths, seen.logins.len());
}

#[tokio::test]
async fn nul_bare_lf_and_bare_cr_get_err_and_the_session_goes_on() {
    metrics::install();
    let fake = FakePop3::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let before = client_errors("syntax");
    const NUL: &str = "-ERR Invalid command: NUL in command line";
    const SYNTAX: &str = "-ERR Invalid command: syntax error";
    const CRLF: &str = "-ERR Invalid command: line must end with CRLF";
    // (bytes sent, the replies in order)
    let rows: [(&[u8], &[&str]); 8] = [
        (b"USER al\0ice\r\n", &[NUL]),
        (b"NOOP\0\r\n", &[NUL]),
        (b"PASS a\0b\r\n", &[NUL]),
        (b"\0\0\0\r\n", &[SYNTAX]),
        (b"NOOP\n", &[CRLF]),
        // A bare LF ends the line for error recovery, but is not a command
        // end: the USER did not take effect.
        (b"USER alice\nPASS x\r\n", &[CRLF, "-ERR Send USER first"]),
        // A bare CR ends nothing: what follows it is never a command (the
        // NOOP below answers +OK, not a CAPA list).
        (b"NOOP\rCAPA\r\n", &[SYNTAX]),
        (
            b"USER alice\rPASS x\r\nPASS y\r\n",
            &[SYNTAX, "-ERR Send USER first"],
        ),
    ];
    for listener in ["pop3s", "pop3"] {
        let mut c = connect(&proxy, listener).await;
        for (input, replies) in rows {
            c.send(input).await;
            for reply in replies {
                assert_eq!(c.line().await, *reply, "{listener}: {input:?}");
            }
        }
        assert_eq!(cmd(&mut c, "NOOP").await, "+OK");
        // The same session logs in.
        assert_eq!(
            user_pass(&mut c, "someone@pec.example", FakePop3::PASSWORD).await,
            "+OK Logged in.",
            "{listener}"
        );
    }
    assert!(client_errors("syntax") >= before + 16.0, "each refusal counted");
    only_logins_reached(&fake);
    assert_eq!(fake.seen().logins.len(), 2);
    still_serving(&proxy).await;
}

#[tokio::test]
async fn over_long_lines_get_err_when_they_end_and_the_session_goes_on() {
    metrics::install();
    let fake = FakePop3::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let before = client_errors("line_too_long");
    const TOO_LONG: &str = "-ERR Command line too long";
    let long_password = "p".repeat(300);
    let long_plain = b64(format!("\0someone@pec.example\0{long_password}"));
    for listener in ["pop3s", "pop3"] {
        let mut c = connect(&proxy, listener).await;
        // RFC 2449 §4: 255 octets with CRLF is a command line, 256 is not.
        let at_limit = format!("USER {}", "u".repeat(248));
        assert_eq!(at_limit.len() + 2, 255);
        assert_eq!(cmd(&mut c, &at_limit).await, "+OK");
        assert_eq!(cmd(&mut c, format!("{at_limit}u")).await, TOO_LONG);
        // Refused whole: the over-long line also forgot the USER before it.
        assert_eq!(cmd(&mut c, "PASS x").await, "-ERR Send USER first");
        assert_eq!(cmd(&mut c, "USER someone@pec.example").await, "+OK");
        assert_eq!(cmd(&mut c, format!("PASS {long_password}")).await, TOO_LONG);
        assert_eq!(cmd(&mut c, "PASS x").await, "-ERR Send USER first");
        // AUTH with an initial response is a command line like any other;
        // RFC 5034 §4: a longer response goes after the empty challenge,
        // where a line may hold three 1 KiB fields in base64.
        assert_eq!(cmd(&mut c, format!("AUTH PLAIN {long_plain}")).await, TOO_LONG);
        assert_eq!(cmd(&mut c, "AUTH PLAIN").await, "+ ");
        assert_eq!(cmd(&mut c, &long_plain).await, AUTH_FAILED);
        // Beyond that, the exchange ends.
        assert_eq!(cmd(&mut c, "AUTH PLAIN").await, "+ ");
        assert_eq!(cmd(&mut c, "A".repeat(8192)).await, TOO_LONG);
        assert_eq!(cmd(&mut c, "NOOP").await, "+OK");
        // A megabyte without a line end, in pieces: dropped as it arrives
        // (the proxy reads it all), answered once, when the line ends.
        c.send("USER ").await;
        for _ in 0..64 {
            c.send([b'x'; 16384]).await;
        }
        c.send("\r\nNOOP\r\n").await;
        assert_eq!(c.line().await, TOO_LONG);
        assert_eq!(c.line().await, "+OK");
        assert_eq!(
            user_pass(&mut c, "someone@pec.example", FakePop3::PASSWORD).await,
            "+OK Logged in.",
            "{listener}"
        );
    }
    assert!(client_errors("line_too_long") >= before + 10.0, "each counted");
    let seen = fake.seen();
    // The long password reached the upstream whole, after AUTH PLAIN's
    // challenge (on one line it would be over 255 octets).
    assert!(seen.logins.iter().any(|(_, _, p)| *p == long_password.as_bytes()));
    assert!(seen.lines.iter().any(|l| l == b"AUTH PLAIN"));
    assert!(!seen.lines.iter().any(|l| l.len() > 255 && l.starts_with(b"AUTH")));
    only_logins_reached(&fake);
    still_serving(&proxy).await;
}

#[tokio::test]
async fn invalid_base64_and_empty_names_in_sasl() {
    metrics::install();
    let fake = FakePop3::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let before = client_errors("syntax");
    let before_sasl = client_errors("bad_base64");
    const SYNTAX: &str = "-ERR Invalid command: syntax error";
    const BAD_LINE: &str = "-ERR Invalid authentication exchange: syntax error";
    const BASE64: &str = "-ERR Authentication failed: invalid base64";
    const EMPTY_USER: &str = "-ERR Authentication failed: empty user name";
    // (lines sent, the reply to each)
    let rows: [(&[&[u8]], &[&str]); 12] = [
        // On the AUTH line, bytes that are not base64 are a syntax error.
        (&[b"AUTH PLAIN !!!"], &[SYNTAX]),
        (&[b"AUTH PLAIN ****"], &[SYNTAX]),
        (&[b"AUTH LOGIN %%%"], &[SYNTAX]),
        // Base64 characters that do not decode.
        (&[b"AUTH PLAIN A"], &[BASE64]),
        (&[b"AUTH PLAIN", b"AAA"], &["+ ", BASE64]),
        (&[b"AUTH PLAIN", b"!!!not base64!!!"], &["+ ", BAD_LINE]),
        (
            &[b"AUTH PLAIN", b"AG\0Fs"],
            &["+ ", "-ERR Invalid authentication exchange: NUL in command line"],
        ),
        (&[b"AUTH LOGIN YWxpY2U=", b"@@@"], &["+ UGFzc3dvcmQ6", BAD_LINE]),
        // "\0alice": no password.
        (
            &[b"AUTH PLAIN AGFsaWNl"],
            &["-ERR Authentication failed: malformed PLAIN message"],
        ),
        // "x\0\0x": an authzid, an empty user name, a password.
        (&[b"AUTH PLAIN eAAAeA=="], &[EMPTY_USER]),
        (&[b"AUTH LOGIN ="], &[EMPTY_USER]),
        (&[b"AUTH LOGIN", b"="], &["+ VXNlcm5hbWU6", EMPTY_USER]),
    ];
    for listener in ["pop3s", "pop3"] {
        let mut c = connect(&proxy, listener).await;
        for (lines, replies) in rows {
            for (line, reply) in lines.iter().zip(replies.iter()) {
                assert_eq!(cmd(&mut c, line).await, *reply, "{listener}: {lines:?}");
            }
        }
        // An invalid response is answered when its line ends, once, like a
        // command line: not at the first bad byte, with the rest of the
        // line then read as a command.
        assert_eq!(cmd(&mut c, "AUTH PLAIN").await, "+ ");
        c.send("AGFs!!!").await;
        let early = tokio::time::timeout(Duration::from_millis(500), c.try_line()).await;
        assert!(early.is_err(), "answered before the line ended: {early:?}");
        c.send("\r\nNOOP\r\n").await;
        assert_eq!(c.line().await, BAD_LINE);
        assert_eq!(c.line().await, "+OK", "one reply for the one line");
        assert_eq!(
            user_pass(&mut c, "someone@pec.example", FakePop3::PASSWORD).await,
            "+OK Logged in.",
            "{listener}"
        );
    }
    assert!(client_errors("syntax") >= before + 6.0);
    // Nine bad SASL exchanges per listener (three were command syntax).
    assert!(client_errors("bad_base64") >= before_sasl + 18.0);
    // Only the two good logins reached the upstream.
    only_logins_reached(&fake);
    assert_eq!(fake.seen().logins.len(), 2);
    still_serving(&proxy).await;
}

#[tokio::test]
async fn empty_non_utf8_crlf_quotes_and_spaces_in_user_names_never_become_commands_upstream() {
    let fake = FakePop3::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, "max_login_failures = 100\n").await;
    let mut c = connect(&proxy, "pop3s").await;

    // USER takes one argument of visible characters (RFC 2449 §3 `param =
    // 1*VCHAR`; we take 8-bit bytes too): empty, spaced or quoted-with-a-
    // space names are refused by the proxy.
    for line in ["USER ", "USER al ice", "USER \"al ice\"", "USER  alice"] {
        assert_eq!(
            cmd(&mut c, line).await,
            "-ERR Invalid command: syntax error",
            "{line:?}"
        );
    }
    // What USER takes reaches the upstream exactly, inside AUTH PLAIN's base64.
    let user_names: [&[u8]; 3] = [b"al\"ice\"", b"\xff\xfe\xc3(", b"'alice'@pec.example"];
    for name in user_names {
        assert_eq!(user_pass(&mut c, name, "wrong").await, AUTH_FAILED);
        assert_eq!(fake.seen().logins.last().unwrap().1, name);
    }
    // SASL carries any byte but NUL in a name: CRLF and a command, quotes,
    // spaces, a lone dot line, non-UTF-8.
    let injected: &[u8] = b"alice\r\nDELE 1\r\nQUIT";
    let sasl_names: [&[u8]; 7] = [
        injected,
        b"al\"ice\" \"",
        b"al ice",
        b"\xff\xfe",
        b"alice\r\n.\r\n",
        b"\r\n",
        b" ",
    ];
    for name in sasl_names {
        let plain = b64([b"\0", name, b"\0wrong"].concat());
        let forms: [(&[String], &[&str]); 3] = [
            (&[format!("AUTH PLAIN {plain}")], &[]),
            (&["AUTH PLAIN".into(), plain.clone()], &["+ "]),
            (
                &["AUTH LOGIN".into(), b64(name), b64("wrong")],
                &["+ VXNlcm5hbWU6", "+ UGFzc3dvcmQ6"],
            ),
        ];
        for (lines, challenges) in forms {
            let (last, first) = lines.split_last().unwrap();
            for (line, challenge) in first.iter().zip(challenges.iter()) {
                assert_eq!(cmd(&mut c, line).await, *challenge);
            }
            assert_eq!(cmd(&mut c, last).await, AUTH_FAILED, "{name:?}");
            assert_eq!(
                fake.seen().logins.last().unwrap().1,
                name,
                "the upstream got the exact name"
            );
        }
    }
    only_logins_reached(&fake);
    assert_eq!(fake.seen().logins.len(), user_names.len() + 3 * sasl_names.len());

    // A server without SASL gets USER/PASS, where such a name cannot be one
    // argument: the proxy refuses it without sending a line of it.
    let fake = FakePop3::start(Behaviour::ServeUserPass).await;
    let proxy = self::proxy(&fake, "max_login_failures = 100\n").await;
    let mut c = connect(&proxy, "pop3s").await;
    let unsendable: [(&[u8], &[u8]); 4] = [
        (injected, b"wrong"),
        (b"al ice", b"wrong"),
        (b"alice\0", b"wrong"),
        (b"alice@pec.example", b"x\r\nDELE 1"),
    ];
    for (name, password) in unsendable {
        let plain = b64([b"\0", name, b"\0", password].concat());
        let reply = cmd(&mut c, format!("AUTH PLAIN {plain}")).await;
        // A NUL in the name makes a four-field PLAIN message.
        if name.contains(&0) {
            assert_eq!(reply, "-ERR Authentication failed: malformed PLAIN message");
        } else {
            assert_eq!(reply, AUTH_FAILED, "{name:?}");
        }
    }
    let seen = fake.seen();
    assert!(seen.commands.iter().all(|c| c == "CAPA"), "{:?}", seen.commands);
    assert!(seen.logins.is_empty());
    // A name that fits goes as USER and PASS.
    assert_eq!(user_pass(&mut c, "al\"ice", "wrong").await, AUTH_FAILED);
    let seen = fake.seen();
    assert_eq!(seen.commands[seen.commands.len() - 3..], ["CAPA", "USER", "PASS"]);
    assert_eq!(seen.logins.last().unwrap().1, b"al\"ice");
}

#[tokio::test]
async fn bytes_pipelined_after_stls_are_never_executed() {
    metrics::install();
    let fake = FakePop3::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let mut c = Client::plain(proxy.addr("pop3")).await;
    assert_eq!(c.line().await, GREETING);
    // No name or password in clear on the STLS port (counted).
    let before = client_errors("login_before_tls");
    for line in ["USER someone@pec.example", "AUTH PLAIN"] {
        assert_eq!(
            cmd(&mut c, line).await,
            "-ERR [AUTH] Plaintext authentication is disabled: use STLS or the POP3S port"
        );
    }
    assert!(client_errors("login_before_tls") >= before + 2.0);
    c.send(format!(
        "STLS\r\nUSER someone@pec.example\r\nPASS {}\r\nSTAT\r\nQUIT\r\n",
        FakePop3::PASSWORD
    ))
    .await;
    assert_eq!(c.line().await, "+OK Begin TLS negotiation now");
    // Fails the test if the proxy answered anything more in clear.
    c.upgrade().await;
    assert_eq!(cmd(&mut c, "PASS x").await, "-ERR Send USER first");
    assert_eq!(cmd(&mut c, "NOOP").await, "+OK");
    assert_eq!(cmd(&mut c, "STLS").await, "-ERR TLS is already active");
    assert_eq!(fake.seen().connections, 0, "the pipelined login was discarded");
    // The session goes on under TLS.
    assert_eq!(
        user_pass(&mut c, "someone@pec.example", FakePop3::PASSWORD).await,
        "+OK Logged in."
    );
    assert_eq!(fake.seen().logins.len(), 1);
    still_serving(&proxy).await;
}

#[tokio::test]
async fn tls_client_hello_garbage_is_closed_and_counted() {
    metrics::install();
    let fake = FakePop3::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let errors = || {
        metrics::value(
            "pec_proxy_tls_handshakes_total",
            &[("protocol", "pop3"), ("result", "error")],
        )
    };
    let before = errors();
    let garbage: [&[u8]; 4] = [
        b"\x16\x03\x01\x00\x05hello",
        b"USER alice@pec.example\r\n",
        b"\x16\x03\x03\xff\xff",
        &[0u8; 600],
    ];
    // On the POP3S port, and on the STLS port after `+OK` to STLS.
    for bytes in garbage {
        let tcp = TcpStream::connect(proxy.addr("pop3s")).await.unwrap();
        garbage_instead_of_tls(tcp, bytes).await;
        let stls = b"+OK Begin TLS negotiation now\r\n";
        let tcp = told_to_start_tls(proxy.addr("pop3"), b"STLS\r\n", stls).await;
        garbage_instead_of_tls(tcp, bytes).await;
    }
    assert!(errors() >= before + 6.0, "counted: {} -> {}", before, errors());
    assert_eq!(fake.seen().connections, 0);
    still_serving(&proxy).await;
}

#[tokio::test]
async fn slowloris_is_cut_at_the_prelogin_timeout() {
    metrics::install();
    let fake = FakePop3::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let before = client_errors("prelogin_timeout");
    let mut c = Client::plain(proxy.addr("pop3")).await;
    assert_eq!(c.line().await, GREETING);
    let command = b"USER someone-with-a-long-name@pec.example\r\n";
    let (line, took) = slowloris(&mut c, command, Duration::from_secs(1)).await;
    assert_eq!(line.as_deref(), Some("-ERR Disconnected: login timeout"));
    assert!(c.try_line().await.is_none(), "closed after the -ERR");
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(15),
        "cut after {took:?}"
    );
    assert!(client_errors("prelogin_timeout") >= before + 1.0);
    still_serving(&proxy).await;
}

#[tokio::test]
async fn a_client_that_never_finishes_tls_is_cut_at_the_handshake_timeout() {
    metrics::install();
    let fake = FakePop3::start(Behaviour::Serve).await;
    let proxy = proxy(
        &fake,
        "tls_handshake_timeout_secs = 1\nprelogin_timeout_secs = 30\n",
    )
    .await;
    let timeouts = || {
        metrics::value(
            "pec_proxy_tls_handshakes_total",
            &[("protocol", "pop3"), ("result", "timeout")],
        )
    };
    let before = timeouts();
    let started = Instant::now();
    let mut tcp = TcpStream::connect(proxy.addr("pop3s")).await.unwrap();
    tcp.write_all(b"\x16\x03").await.unwrap(); // half a record header, then silence
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "closed");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(timeouts() >= before + 1.0);
    still_serving(&proxy).await;
}

/// The most bytes the proxy may take from one side while the other does
/// not read: the kernel's socket buffers on both of the proxy's sockets and
/// the peers' (loopback autotuning lets a receive buffer grow to a few MB),
/// and one relay buffer. Without backpressure it would be all there is.
const BACKPRESSURE_BOUND: usize = 32 << 20;

#[tokio::test]
async fn a_client_that_stops_reading_before_login_cannot_make_us_buffer_without_bound() {
    let fake = FakePop3::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, SHORT).await;
    let mut c = Client::plain(proxy.addr("pop3")).await;
    // Requests whose answers are larger than they are, never reading one.
    let written = write_without_reading(&mut c, &b"CAPA\r\n".repeat(4096)).await;
    eprintln!("backpressure before login: the proxy took {written} bytes, then stopped reading");
    assert!(written < BACKPRESSURE_BOUND, "the proxy took {written} bytes");
    still_serving(&proxy).await;
    // The pre-login timeout ends the stuck session; its -ERR write is bounded.
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while c.try_line().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stuck session was closed");
}

/// Waits until the fake's RETR answer stops moving (the proxy stopped
/// reading it) and returns how much of it the fake could send.
async fn retr_stalls(fake: &FakePop3) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut last, mut still) = (0, 0);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let sent = fake.seen().retr_sent;
        if sent > BACKPRESSURE_BOUND {
            return sent;
        }
        if sent > 0 && sent == last {
            still += 1;
            // Two seconds without a byte moving.
            if still == 8 {
                return sent;
            }
        } else {
            (last, still) = (sent, 0);
        }
        assert!(Instant::now() < deadline, "RETR never started or never stalled");
    }
}

/// After login, a client asks for a huge message and never reads: the
/// proxy stops reading the upstream and serves others; when the proxy
/// drains (`shutdown_grace_secs = 1`), the stuck session is closed with
/// the others, its upstream session too, though the client is still there.
async fn stuck_retr(proxy: Proxy, fake: &FakePop3, user: &str, password: &str) {
    let mut c = connect(&proxy, "pop3s").await;
    assert_eq!(user_pass(&mut c, user, password).await, "+OK Logged in.");
    c.send("RETR 1\r\n").await;
    let sent = retr_stalls(fake).await;
    eprintln!("backpressure after login: the upstream sent {sent} bytes, then the proxy stopped reading");
    assert!(sent < BACKPRESSURE_BOUND, "the proxy took {sent} bytes");
    let mut other = connect(&proxy, "pop3s").await;
    assert_eq!(user_pass(&mut other, user, password).await, "+OK Logged in.");
    assert_eq!(
        cmd(&mut other, "STAT").await,
        format!("+OK 1 {}", FakePop3::MESSAGE_BYTES)
    );
    drop(proxy);
    let deadline = Instant::now() + Duration::from_secs(20);
    while fake.seen().ended < fake.seen().connections {
        assert!(
            Instant::now() < deadline,
            "an upstream session outlived the drain: {:?}",
            (fake.seen().ended, fake.seen().connections)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(c);
}

#[tokio::test]
async fn a_client_that_stops_reading_a_message_cannot_make_us_buffer_without_bound() {
    let fake = FakePop3::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, "shutdown_grace_secs = 1\n").await;
    stuck_retr(proxy, &fake, "someone@pec.example", FakePop3::PASSWORD).await;
}

#[tokio::test]
async fn the_same_under_the_keep_on_server_guard() {
    let op = Operator::new();
    op.add_mailbox("carol@pec.example", "carol-password-1");
    op.run(
        &["mailbox", "set", "carol@pec.example", "--pop3-delete", "deny"],
        "",
    );
    let fake = FakePop3::start(Behaviour::Serve).await;
    let master = op.secret_file("master-password", FakePop3::PASSWORD);
    let config = format!(
        "{}\n[store]\npath = {:?}\n\n[upstream.pop3]\naddress = \"{}\"\ntls = \"none\"\n\
         login = \"master-user\"\nmaster_user = \"proxy-master\"\nmaster_password_file = {:?}\n\
         [limits]\nshutdown_grace_secs = 1\n[penalty]\nenabled = false\n",
        pop3_listeners(),
        op.store_path(),
        fake.addr,
        master
    );
    let proxy = Proxy::start(&config).await;
    stuck_retr(proxy, &fake, "carol@pec.example", "carol-password-1").await;
    let seen = fake.seen();
    assert_eq!(seen.logins[0].1, b"carol@pec.example*proxy-master");
    assert!(!seen.commands.contains(&"DELE".to_owned()));
}

#[tokio::test]
async fn a_thousand_silent_connections_from_one_address_do_not_stop_others() {
    metrics::install();
    let fake = FakePop3::start(Behaviour::Serve).await;
    let proxy = proxy(
        &fake,
        "prelogin_timeout_secs = 120\nmax_connections = 500\nmax_connections_per_ip = 20\nmax_prelogin_per_ip = 10\n",
    )
    .await;
    let refused = || {
        metrics::value(
            "pec_proxy_connections_refused_total",
            &[("protocol", "pop3"), ("limit", "prelogin_per_ip")],
        )
    };
    let before = refused();
    // Admitted ones get the greeting, refused ones -ERR and a close.
    let (silent, refusals) = silent_crowd(
        ip("127.0.0.2"),
        proxy.addr("pop3"),
        1000,
        b"+OK",
        b"-ERR [SYS/TEMP] Too many connections from your address\r\n",
    )
    .await;
    assert_eq!(silent.len(), 10, "max_prelogin_per_ip admitted");
    assert_eq!(refusals, 990);
    assert!(refused() >= before + 990.0);
    // Another address is served at once.
    let mut c = Client::tls_from(ip("127.0.0.3"), proxy.addr("pop3s")).await;
    assert_eq!(c.line().await, GREETING);
    assert_eq!(
        user_pass(&mut c, "someone@pec.example", FakePop3::PASSWORD).await,
        "+OK Logged in."
    );
}

#[tokio::test]
async fn logged_in_sessions_free_their_prelogin_place_but_count_as_connections() {
    let fake = FakePop3::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, "max_connections_per_ip = 3\nmax_prelogin_per_ip = 2\n").await;
    let from = ip("127.0.0.6");
    let mut sessions = Vec::new();
    for i in 0..3 {
        let mut c = Client::tls_from(from, proxy.addr("pop3s")).await;
        assert_eq!(c.line().await, GREETING);
        let reply = user_pass(&mut c, format!("user{i}@pec.example"), FakePop3::PASSWORD).await;
        assert_eq!(reply, "+OK Logged in.");
        sessions.push(c);
    }
    // Three logged in: the fourth connection is over max_connections_per_ip.
    let mut c = Client::plain_from(from, proxy.addr("pop3")).await;
    assert_eq!(
        c.expect_closed().await,
        ["-ERR [SYS/TEMP] Too many connections from your address"]
    );
    drop(sessions.pop());
    // The place comes back when a session ends (asynchronously: retry briefly).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = Client::plain_from(from, proxy.addr("pop3")).await;
        if c.line().await == GREETING {
            break;
        }
        assert!(Instant::now() < deadline, "the place was not given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// ALPACA (CVE-2021-3618): an HTTP request sent to the POP3 port is cut
/// off after `max_prelogin_errors` (5) refusals, before its body's USER.
#[tokio::test]
async fn an_http_request_is_cut_off_after_five_errors() {
    metrics::install();
    let fake = FakePop3::start(Behaviour::Serve).await;
    let proxy = proxy(&fake, "max_prelogin_errors = 5\n").await;
    let before = client_errors("too_many_errors");
    let lines = http_request_lines(proxy.addr("pop3")).await;
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert!(lines[..5].iter().all(|l| l.starts_with("-ERR ")), "{lines:#?}");
    assert_eq!(lines[5], "-ERR Too many invalid commands");
    assert!(client_errors("too_many_errors") >= before + 1.0);
    assert_eq!(fake.seen().connections, 0, "nothing reached the upstream");
    still_serving(&proxy).await;
}
