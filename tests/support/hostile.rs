//! Rows of the hostile-input matrices that are the same for every protocol
//! but for the words on the wire: a slowloris client and a crowd of silent
//! connections from one address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::client::{Client, connect_from};

/// Sends `command` one byte every `pace`, listening in between, until the
/// proxy says something (or closes). Returns that line and how long after
/// the first byte it came. Panics if the whole command went out first.
pub async fn slowloris(c: &mut Client, command: &[u8], pace: Duration) -> (Option<String>, Duration) {
    let started = Instant::now();
    let mut bytes = command.iter();
    loop {
        match tokio::time::timeout(pace, c.try_line()).await {
            Ok(line) => return (line, started.elapsed()),
            Err(_) => {
                let b = bytes.next().expect("the proxy waited for the whole command");
                c.send_raw(&[*b]).await.expect("still open");
            }
        }
    }
}

/// Opens `count` plain connections to `addr` from `from` and reads what
/// each is told first. Those greeted with `greeting` stay open (returned,
/// silent); the others must have been told `refusal`. Returns the silent
/// ones and the number refused.
pub async fn silent_crowd(
    from: IpAddr,
    addr: SocketAddr,
    count: usize,
    greeting: &[u8],
    refusal: &[u8],
) -> (Vec<TcpStream>, usize) {
    let mut silent = Vec::new();
    let mut refusals = 0;
    for _ in 0..count {
        let mut tcp = connect_from(from, addr).await.unwrap();
        let mut first = [0u8; 128];
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut first))
            .await
            .expect("an answer to every connection")
            .unwrap_or(0);
        if first[..n].starts_with(refusal) {
            refusals += 1;
        } else {
            assert!(
                first[..n].starts_with(greeting),
                "{:?}",
                String::from_utf8_lossy(&first[..n])
            );
            silent.push(tcp);
        }
    }
    (silent, refusals)
}
