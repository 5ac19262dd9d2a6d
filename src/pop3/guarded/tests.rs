use std::time::Duration;

use tokio::io::duplex;

use super::*;
use crate::pop3::guard::DELE_REFUSAL;
use crate::relay::NoCounter;

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
    let task = tokio::spawn(async move {
        relay(
            client,
            upstream,
            DeleGuard::new(255),
            b"STAT\r\n",
            opts(),
            &NoCounter,
            std::future::pending(),
        )
        .await
    });
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
    let task = tokio::spawn(async move {
        relay(
            client,
            upstream,
            DeleGuard::new(255),
            b"RETR 1\r\n",
            opts(),
            &NoCounter,
            std::future::pending(),
        )
        .await
    });
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
    let task = tokio::spawn(async move {
        relay(
            client,
            upstream,
            DeleGuard::new(255),
            b"",
            opts(),
            &NoCounter,
            std::future::pending(),
        )
        .await
    });
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
            b"RETR 1\r\n",
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
        b"",
        opts(),
        &NoCounter,
        std::future::pending(),
    )
    .await;
    assert!(matches!(end, RelayEnd::IdleTimeout), "{end:?}");
}
