use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

use super::*;
use crate::pop3::guard::{DELE_REFUSAL, DeleGuard};
use crate::relay::NoCounter;

/// What the client pipelined behind its login.
fn client_said(bytes: &[u8]) -> Handoff<'_> {
    Handoff {
        from_client: bytes,
        from_upstream: b"",
    }
}

/// The relay between two pipes, in a task of its own, with no stop signal.
fn spawn<I: Inspector + Send + 'static>(
    client: tokio::io::DuplexStream,
    upstream: tokio::io::DuplexStream,
    inspector: I,
    handoff: Handoff<'static>,
) -> tokio::task::JoinHandle<(RelayStats, RelayEnd)> {
    tokio::spawn(async move {
        relay(
            client,
            upstream,
            inspector,
            handoff,
            opts(),
            &NoCounter,
            std::future::pending(),
        )
        .await
    })
}

fn opts() -> RelayOptions {
    RelayOptions {
        buffer_bytes: 1024,
        idle_timeout: Duration::from_secs(600),
    }
}

#[tokio::test]
async fn pipelined_dele_is_refused_in_order_and_never_reaches_the_server() {
    let (client, mut client_peer) = duplex(4096);
    let (upstream, mut server) = duplex(4096);
    let task = spawn(client, upstream, DeleGuard::new(255), client_said(b"STAT\r\n"));
    client_peer
        .write_all(b"DELE 1\r\nLIST\r\nQUIT\r\n")
        .await
        .unwrap();
    let mut got = vec![0u8; 18];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(got, b"STAT\r\nLIST\r\nQUIT\r\n");
    server
        .write_all(b"+OK 1 5\r\n+OK 1 messages\r\n1 5\r\n.\r\n+OK Logging out.\r\n")
        .await
        .unwrap();
    drop(server);
    let mut all = Vec::new();
    client_peer.read_to_end(&mut all).await.unwrap();
    let mut want = b"+OK 1 5\r\n".to_vec();
    want.extend_from_slice(DELE_REFUSAL);
    want.extend_from_slice(b"+OK 1 messages\r\n1 5\r\n.\r\n+OK Logging out.\r\n");
    assert_eq!(String::from_utf8(all).unwrap(), String::from_utf8(want).unwrap());
    let (stats, end) = task.await.unwrap();
    assert!(matches!(end, RelayEnd::Closed), "{end:?}");
    assert_eq!(stats.client_to_upstream, 18);
}

/// A peer that stops reading is cut at the idle timeout, however long
/// the write it blocks has waited: the client during a message, the
/// upstream under a flood of commands.
#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_reading_is_cut_at_the_idle_timeout() {
    // The client asks for a message larger than its pipe and never reads.
    let (client, _client_peer) = duplex(64);
    let (upstream, mut server) = duplex(1 << 16);
    let task = spawn(client, upstream, DeleGuard::new(255), client_said(b"RETR 1\r\n"));
    let mut got = [0u8; 8];
    server.read_exact(&mut got).await.unwrap();
    server.write_all(b"+OK 4096 octets\r\n").await.unwrap();
    server.write_all(&[b'x'; 4096]).await.unwrap();
    let started = Instant::now();
    let (_, end) = tokio::time::timeout(Duration::from_secs(3600), task)
        .await
        .expect("the relay ended")
        .unwrap();
    assert!(matches!(end, RelayEnd::IdleTimeout), "{end:?}");
    let idle = opts().idle_timeout;
    assert!(started.elapsed() >= idle && started.elapsed() < idle * 2);

    // The upstream never reads the commands the client sends.
    let (client, mut client_peer) = duplex(1 << 16);
    let (upstream, _server) = duplex(64);
    let task = spawn(client, upstream, DeleGuard::new(255), client_said(b""));
    client_peer.write_all(&b"NOOP\r\n".repeat(100)).await.unwrap();
    let (_, end) = tokio::time::timeout(Duration::from_secs(3600), task)
        .await
        .expect("the relay ended")
        .unwrap();
    assert!(matches!(end, RelayEnd::IdleTimeout), "{end:?}");
}

/// The stop signal (the drain's grace period is over) ends a relay
/// blocked writing to a client that stopped reading.
#[tokio::test]
async fn stop_ends_a_relay_blocked_on_a_client() {
    let (client, _client_peer) = duplex(64);
    let (upstream, mut server) = duplex(1 << 16);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let stop = async {
            let _ = stop_rx.await;
        };
        relay(
            client,
            upstream,
            DeleGuard::new(255),
            client_said(b"RETR 1\r\n"),
            opts(),
            &NoCounter,
            stop,
        )
        .await
    });
    let mut got = [0u8; 8];
    server.read_exact(&mut got).await.unwrap();
    server.write_all(b"+OK 4096 octets\r\n").await.unwrap();
    server.write_all(&[b'x'; 4096]).await.unwrap();
    stop_tx.send(()).unwrap();
    let (_, end) = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the relay ended")
        .unwrap();
    assert!(matches!(end, RelayEnd::Shutdown), "{end:?}");
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_time_out() {
    let (client, _client_peer) = duplex(64);
    let (upstream, _server) = duplex(64);
    let (_, end) = relay(
        client,
        upstream,
        DeleGuard::new(255),
        client_said(b""),
        opts(),
        &NoCounter,
        std::future::pending(),
    )
    .await;
    assert!(matches!(end, RelayEnd::IdleTimeout), "{end:?}");
}

/// Passes every byte on unchanged; says `farewell` to the client when the
/// upstream closes.
struct PassThrough {
    farewell: &'static [u8],
}

impl Inspector for PassThrough {
    fn client_data(&mut self, data: &[u8], out: &mut Output) {
        out.pass(0..data.len());
    }

    fn upstream_data(&mut self, data: &[u8], out: &mut Output) {
        out.pass(0..data.len());
    }

    fn upstream_closed(&mut self, out: &mut Output) -> UpstreamClosed {
        out.for_client(self.farewell);
        UpstreamClosed::Expected
    }
}

fn pass_through() -> PassThrough {
    PassThrough { farewell: b"" }
}

#[test]
fn output_keeps_the_order_of_passed_and_own_bytes() {
    let input = b"0123456789";
    let mut out = Output::new(Side::Client);
    out.pass(0..2);
    out.pass(2..4);
    out.for_client(b"ab");
    out.for_client(b"");
    out.for_client(b"c");
    out.pass(4..4);
    out.pass(6..10);
    out.for_upstream(b"up");
    let client: Vec<&[u8]> = out.client.slices(input).collect();
    assert_eq!(client, [&b"0123"[..], b"abc", b"6789"], "adjacent pieces merge");
    let upstream: Vec<&[u8]> = out.upstream.slices(input).collect();
    assert_eq!(upstream, [&b"up"[..]]);
}

/// The client shuts its write side after its last command: the upstream
/// hears the end of stream, and every reply it sends after still arrives.
#[tokio::test]
async fn a_client_half_close_reaches_the_upstream_and_the_replies_still_arrive() {
    let (client, mut client_peer) = duplex(64);
    let (upstream, mut server) = duplex(64);
    let task = spawn(client, upstream, pass_through(), Handoff::default());
    client_peer.write_all(b"LAST\r\n").await.unwrap();
    client_peer.shutdown().await.unwrap();
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"LAST\r\n", "the command, then the end of stream");
    server.write_all(b"+OK one\r\n+OK two\r\n").await.unwrap();
    drop(server);
    let mut replies = Vec::new();
    client_peer.read_to_end(&mut replies).await.unwrap();
    assert_eq!(replies, b"+OK one\r\n+OK two\r\n");
    let (stats, end) = task.await.unwrap();
    assert!(matches!(end, RelayEnd::Closed), "{end:?}");
    assert_eq!(
        stats,
        RelayStats {
            client_to_upstream: 6,
            upstream_to_client: 18,
        }
    );
}

/// The upstream closes while the client is slow to read: what is pending
/// and the inspector's last words arrive, then the client's side closes.
#[tokio::test]
async fn an_upstream_close_delivers_what_is_pending_then_closes_the_client() {
    let (client, mut client_peer) = duplex(4);
    let (upstream, mut server) = duplex(1 << 16);
    let task = tokio::spawn(async move {
        let inspector = PassThrough { farewell: b"bye\r\n" };
        relay(
            client,
            upstream,
            inspector,
            Handoff::default(),
            opts(),
            &NoCounter,
            std::future::pending(),
        )
        .await
    });
    let reply = b"+OK a reply longer than the client's pipe\r\n";
    server.write_all(reply).await.unwrap();
    drop(server);
    let mut got = Vec::new();
    client_peer.read_to_end(&mut got).await.unwrap();
    let mut want = reply.to_vec();
    want.extend_from_slice(b"bye\r\n");
    assert_eq!(got, want, "everything, then the end of stream");
    let (stats, end) = task.await.unwrap();
    assert!(matches!(end, RelayEnd::Closed), "{end:?}");
    assert_eq!(stats.upstream_to_client, want.len() as u64);
}

/// A megabyte each way through 64-byte pipes: nothing lost or reordered
/// where the relay keeps what a slow side cannot take yet. The upstream
/// closes last: its end of stream ends the session.
#[tokio::test]
async fn back_pressure_keeps_every_byte_in_order() {
    let (client, client_peer) = duplex(64);
    let (upstream, upstream_peer) = duplex(64);
    let task = spawn(client, upstream, pass_through(), Handoff::default());
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let client = async {
        let (mut r, mut w) = tokio::io::split(client_peer);
        let send = async {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut got = Vec::new();
        let (_, n) = tokio::join!(send, r.read_to_end(&mut got));
        n.unwrap();
        got
    };
    let upstream = async {
        let (mut r, mut w) = tokio::io::split(upstream_peer);
        let mut got = Vec::new();
        let (sent, n) = tokio::join!(w.write_all(&data), r.read_to_end(&mut got));
        sent.unwrap();
        n.unwrap();
        w.shutdown().await.unwrap();
        got
    };
    let (from_upstream, from_client) = tokio::join!(client, upstream);
    assert!(from_upstream == data && from_client == data);
    let (stats, end) = task.await.unwrap();
    assert!(matches!(end, RelayEnd::Closed), "{end:?}");
    assert_eq!(stats.client_to_upstream, 1_000_000);
    assert_eq!(stats.upstream_to_client, 1_000_000);
}

/// A client that reads slowly is not idle: each write that moves bytes
/// postpones the timeout.
#[tokio::test(start_paused = true)]
async fn a_slow_reader_is_not_idle() {
    let (client, mut client_peer) = duplex(64);
    let (upstream, mut server) = duplex(1 << 16);
    let task = spawn(client, upstream, pass_through(), Handoff::default());
    server.write_all(&[b'x'; 1024]).await.unwrap();
    let mut got = vec![0u8; 1024];
    for piece in got.chunks_mut(64) {
        // Most of the idle timeout between two reads, 16 times over.
        tokio::time::sleep(opts().idle_timeout * 5 / 6).await;
        client_peer.read_exact(piece).await.unwrap();
    }
    assert_eq!(got, [b'x'; 1024]);
    assert!(!task.is_finished());
    drop(server);
    let (_, end) = task.await.unwrap();
    assert!(matches!(end, RelayEnd::Closed), "{end:?}");
}

mod smtp {
    use std::sync::Arc;

    use super::*;
    use crate::smtp::checks::{HeaderRules, RateLimiter};
    use crate::smtp::guard::{Guard, GuardOptions};
    use crate::smtp::reply;

    fn guard() -> Guard {
        let opts = GuardOptions {
            hostname: "proxy.example".into(),
            tls: true,
            smtputf8: false,
            check_sender: true,
            check_size: true,
            header_rules: HeaderRules {
                from_header: true,
                no_bcc: true,
                recipients: false,
                max_line_bytes: 1000,
            },
            max_message_bytes: 1 << 20,
            max_command_line_bytes: 512,
            max_header_bytes: 4096,
        };
        let limiter = Arc::new(RateLimiter::new(0, 10));
        Guard::new(opts, "alice@pec.example".into(), limiter, b"")
    }

    fn run(
        client: tokio::io::DuplexStream,
        upstream: tokio::io::DuplexStream,
        opts: RelayOptions,
    ) -> tokio::task::JoinHandle<(RelayStats, RelayEnd)> {
        tokio::spawn(async move {
            relay(
                client,
                upstream,
                guard(),
                Handoff::default(),
                opts,
                &NoCounter,
                std::future::pending(),
            )
            .await
        })
    }

    /// Reads from the scripted upstream until what it got ends with `end`.
    async fn expect(server: &mut tokio::io::DuplexStream, end: &str) -> String {
        let mut got = Vec::new();
        while !got.ends_with(end.as_bytes()) {
            let mut buf = [0u8; 1024];
            let n = server.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before {end:?}; got {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap()
    }

    /// The reply codes the client got: the last line of each reply.
    fn codes(replies: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(replies)
            .split("\r\n")
            .filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ')
            .map(|l| l[..3].to_owned())
            .collect()
    }

    const MESSAGE: &str = "From: alice@pec.example\r\nSubject: hi\r\n\r\nbody\r\n.\r\n";

    /// A client pipelines a whole session and half-closes: the guard
    /// still sends DATA, the message and QUIT as the upstream's verdicts
    /// come, the upstream hears the end of stream after QUIT, and every
    /// reply reaches the client.
    #[tokio::test]
    async fn a_pipelined_session_then_a_half_close_gets_every_reply() {
        let (client, mut client_peer) = duplex(4096);
        let (upstream, mut server) = duplex(4096);
        let task = run(client, upstream, opts());
        client_peer
            .write_all(
                format!(
                    "EHLO client.example\r\nMAIL FROM:<alice@pec.example>\r\n\
                     RCPT TO:<bob@pec.example>\r\nDATA\r\n{MESSAGE}QUIT\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        client_peer.shutdown().await.unwrap();

        expect(&mut server, "RCPT TO:<bob@pec.example>\r\n").await;
        server
            .write_all(b"250-upstream.example\r\n250 PIPELINING\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n")
            .await
            .unwrap();
        assert_eq!(expect(&mut server, "\r\n").await, "DATA\r\n");
        server.write_all(b"354 go ahead\r\n").await.unwrap();
        assert_eq!(
            expect(&mut server, "QUIT\r\n").await,
            format!("{MESSAGE}QUIT\r\n")
        );
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "the client's end of stream, after its QUIT");
        server
            .write_all(b"250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n")
            .await
            .unwrap();

        let mut replies = Vec::new();
        client_peer.read_to_end(&mut replies).await.unwrap();
        assert_eq!(codes(&replies), ["250", "250", "250", "354", "250", "221"]);
        assert!(String::from_utf8_lossy(&replies).contains(reply::START_DATA));
        let (_, end) = task.await.unwrap();
        assert!(matches!(end, RelayEnd::Closed), "{end:?}");
    }

    /// The upstream going mid-transaction is news for the client (421) and
    /// an upstream error; going after a client that left is neither.
    #[tokio::test]
    async fn an_upstream_lost_mid_session_is_told_but_not_after_the_client_left() {
        let (client, mut client_peer) = duplex(4096);
        let (upstream, mut server) = duplex(4096);
        let task = run(client, upstream, opts());
        client_peer
            .write_all(b"MAIL FROM:<alice@pec.example>\r\n")
            .await
            .unwrap();
        expect(&mut server, "\r\n").await;
        drop(server);
        let mut replies = Vec::new();
        client_peer.read_to_end(&mut replies).await.unwrap();
        assert_eq!(replies, reply::line(reply::UPSTREAM_LOST));
        let (_, end) = task.await.unwrap();
        assert_eq!(end.label(), "upstream_error", "{end:?}");

        let (client, mut client_peer) = duplex(4096);
        let (upstream, mut server) = duplex(4096);
        let task = run(client, upstream, opts());
        client_peer
            .write_all(b"MAIL FROM:<alice@pec.example>\r\n")
            .await
            .unwrap();
        client_peer.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        server.write_all(b"250 2.1.0 Ok\r\n").await.unwrap();
        drop(server);
        let mut replies = Vec::new();
        client_peer.read_to_end(&mut replies).await.unwrap();
        assert_eq!(replies, b"250 2.1.0 Ok\r\n");
        let (_, end) = task.await.unwrap();
        assert!(matches!(end, RelayEnd::Closed), "{end:?}");
    }

    /// The upstream may take 10 minutes over a message (RFC 5321
    /// §4.5.3.2.6), longer than the idle timeout; then the idle timeout
    /// is back, and ends the session with SMTP's 421.
    #[tokio::test(start_paused = true)]
    async fn the_verdict_on_a_message_may_take_longer_than_the_idle_timeout() {
        let (client, mut client_peer) = duplex(4096);
        let (upstream, mut server) = duplex(4096);
        let idle = Duration::from_secs(60);
        let task = run(
            client,
            upstream,
            RelayOptions {
                buffer_bytes: 1024,
                idle_timeout: idle,
            },
        );
        client_peer
            .write_all(
                format!("MAIL FROM:<alice@pec.example>\r\nRCPT TO:<bob@pec.example>\r\nDATA\r\n{MESSAGE}")
                    .as_bytes(),
            )
            .await
            .unwrap();
        expect(&mut server, "RCPT TO:<bob@pec.example>\r\n").await;
        server
            .write_all(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n")
            .await
            .unwrap();
        expect(&mut server, "DATA\r\n").await;
        server.write_all(b"354 go ahead\r\n").await.unwrap();
        expect(&mut server, "\r\n.\r\n").await;
        tokio::time::sleep(Duration::from_secs(9 * 60)).await;
        assert!(!task.is_finished(), "waiting for the verdict");
        server.write_all(b"250 2.0.0 Ok: queued\r\n").await.unwrap();
        let verdict_at = Instant::now();

        let mut replies = Vec::new();
        client_peer.read_to_end(&mut replies).await.unwrap();
        assert_eq!(codes(&replies), ["250", "250", "354", "250", "421"]);
        assert!(replies.ends_with(&reply::line(reply::IDLE_TIMEOUT)));
        let (_, end) = task.await.unwrap();
        assert!(matches!(end, RelayEnd::IdleTimeout), "{end:?}");
        let quiet = verdict_at.elapsed();
        assert!(quiet >= idle && quiet < idle * 2, "{quiet:?}");
    }
}
