//! Rows of the hostile-input matrices that are the same for every protocol
//! but for the words on the wire: a slowloris client and a crowd of silent
//! connections from one address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// What a browser sends when a web page makes it POST to a mail port
/// (ALPACA, CVE-2021-3618): lines that are each an invalid command, with
/// mail commands in the body. The proxy must stop after
/// `max_prelogin_errors` of them, before the body's commands.
pub const HTTP_REQUEST: &[u8] = b"POST / HTTP/1.1\r\n\
Host: mail.pec.example:143\r\n\
User-Agent: Mozilla/5.0\r\n\
Accept: */*\r\n\
Content-Type: text/plain\r\n\
Origin: http://attacker.example\r\n\
Content-Length: 38\r\n\
\r\n\
a LOGIN x y\r\nUSER x\r\nAUTH PLAIN AHgAeQ==\r\n";

/// Sends [`HTTP_REQUEST`] on a fresh plain connection to `addr`, past its
/// greeting, and returns every line the proxy sends until it closes.
pub async fn http_request_lines(addr: SocketAddr) -> Vec<String> {
    let mut c = Client::plain(addr).await;
    c.line().await;
    c.send(HTTP_REQUEST).await;
    tokio::time::timeout(Duration::from_secs(20), c.expect_closed())
        .await
        .expect("the connection was closed")
}

/// Writes `chunk` again and again for 2 s without reading, until a write
/// blocks for 500 ms or fails; returns how many bytes were taken.
pub async fn write_without_reading(c: &mut Client, chunk: &[u8]) -> usize {
    let mut written = 0usize;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), c.send_raw(chunk)).await {
            Ok(Ok(())) => written += chunk.len(),
            Ok(Err(_)) => break, // closed by the proxy
            Err(_) => break,     // blocked: the proxy stopped reading
        }
    }
    written
}

/// Opens a TCP connection, sends `bytes`, and reads to the end: the proxy
/// must close within 15 s and send nothing but a TLS alert.
pub async fn garbage_instead_of_tls(mut tcp: TcpStream, bytes: &[u8]) {
    let _ = tcp.write_all(bytes).await;
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut reply)).await;
    assert!(
        read.is_ok(),
        "the proxy closes a connection that sends {bytes:02x?}"
    );
    assert!(
        reply.is_empty() || reply[0] == 0x15,
        "only a TLS alert, if anything: {reply:02x?}"
    );
}

/// A plain connection to `addr` that sent `request` (STLS, STARTTLS) and
/// read up to the proxy's `ready` line: the next bytes must be TLS.
pub async fn told_to_start_tls(addr: SocketAddr, request: &[u8], ready: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 1024];
    while !seen.ends_with(ready) {
        let n = tokio::time::timeout(Duration::from_secs(20), tcp.read(&mut chunk))
            .await
            .expect("the answer to the TLS request")
            .unwrap();
        assert!(n > 0, "closed before the TLS request was answered");
        seen.extend_from_slice(&chunk[..n]);
    }
    tcp
}
