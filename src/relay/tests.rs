use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

fn opts() -> RelayOptions {
    RelayOptions {
        buffer_bytes: 1024,
        idle_timeout: Duration::from_secs(1800),
    }
}

#[tokio::test]
async fn copies_both_ways_and_honours_half_close() {
    let (client, mut client_peer) = duplex(64);
    let (upstream, mut upstream_peer) = duplex(64);
    let task = tokio::spawn(async move { relay(client, upstream, opts(), &NoCounter).await });

    client_peer.write_all(b"a LOGOUT\r\n").await.unwrap();
    let mut got = [0u8; 10];
    upstream_peer.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"a LOGOUT\r\n");
    // The client closes its side; the server still answers, then closes.
    client_peer.shutdown().await.unwrap();
    let mut eof = [0u8; 1];
    assert_eq!(
        upstream_peer.read(&mut eof).await.unwrap(),
        0,
        "half-close reaches the upstream"
    );
    upstream_peer.write_all(b"* BYE\r\na OK\r\n").await.unwrap();
    drop(upstream_peer);
    let mut rest = Vec::new();
    client_peer.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"* BYE\r\na OK\r\n");

    let (stats, end) = task.await.unwrap();
    assert!(matches!(end, RelayEnd::Closed), "{end:?}");
    assert_eq!(
        stats,
        RelayStats {
            client_to_upstream: 10,
            upstream_to_client: 13
        }
    );
}

#[tokio::test]
async fn a_stop_ends_the_relay_with_its_counts() {
    let (client, mut client_peer) = duplex(64);
    let (upstream, mut upstream_peer) = duplex(64);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let stop = async {
            let _ = stop_rx.await;
        };
        relay_until(client, upstream, opts(), &NoCounter, stop).await
    });
    client_peer.write_all(b"a IDLE\r\n").await.unwrap();
    let mut got = [0u8; 8];
    upstream_peer.read_exact(&mut got).await.unwrap();
    stop_tx.send(()).unwrap();
    let (stats, end) = task.await.unwrap();
    assert!(matches!(end, RelayEnd::Shutdown), "{end:?}");
    assert_eq!(stats.client_to_upstream, 8);
    let mut rest = Vec::new();
    client_peer.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "nothing injected, the stream just closes");
}

/// A megabyte each way through 64-byte pipes: the relay keeps what a
/// slow side cannot take yet, loses nothing and reorders nothing.
#[tokio::test]
async fn back_pressure_keeps_every_byte_in_order() {
    let (client, client_peer) = duplex(64);
    let (upstream, upstream_peer) = duplex(64);
    let task = tokio::spawn(async move { relay(client, upstream, opts(), &NoCounter).await });
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let pump = |mut peer: tokio::io::DuplexStream, data: Vec<u8>| async move {
        let (mut r, mut w) = tokio::io::split(&mut peer);
        let send = async {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut got = Vec::new();
        let recv = r.read_to_end(&mut got);
        let (_, n) = tokio::join!(send, recv);
        n.unwrap();
        got
    };
    let (from_upstream, from_client) =
        tokio::join!(pump(client_peer, data.clone()), pump(upstream_peer, data.clone()));
    assert!(from_upstream == data && from_client == data);
    let (stats, end) = task.await.unwrap();
    assert!(matches!(end, RelayEnd::Closed), "{end:?}");
    assert_eq!(stats.client_to_upstream, 1_000_000);
    assert_eq!(stats.upstream_to_client, 1_000_000);
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_time_out_and_activity_postpones_it() {
    let (client, mut client_peer) = duplex(64);
    let (upstream, mut upstream_peer) = duplex(64);
    let task = tokio::spawn(async move { relay(client, upstream, opts(), &NoCounter).await });
    tokio::time::sleep(Duration::from_secs(1700)).await;
    client_peer.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    upstream_peer.read_exact(&mut one).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1700)).await;
    assert!(!task.is_finished(), "activity at 1700 s postpones the timeout");
    tokio::time::sleep(Duration::from_secs(200)).await;
    let (_, end) = task.await.unwrap();
    assert!(matches!(end, RelayEnd::IdleTimeout), "{end:?}");
}
