//! Connections through a load balancer: a listener with `proxy_protocol`
//! takes each connection only from `limits.trusted_proxies`, reads the
//! PROXY protocol header (v1 or v2, [`crate::net::proxy_protocol`]) the
//! balancer sends first, and from then on the client is the address the
//! header names: for the per-client limits, the penalty, the access log and
//! the address sent upstream (`ID x-originating-ip`, `XCLIENT`).
//!
//! - A connection from any other address is closed at once, unread.
//! - The header is read without reading past it: the bytes are peeked
//!   (at most [`MAX_HEADER`]) until the header is whole, then exactly the
//!   header is consumed, so what the client sent after it (a TLS
//!   ClientHello, a command) stays in the socket for the session.
//! - A header that is malformed, of an unknown version, longer than the
//!   bound, or not whole within `limits.proxy_header_timeout_ms`, closes
//!   the connection; nothing is answered (the balancer is not a client).
//! - v2 `LOCAL` (the balancer's own health check) and `UNKNOWN` are served
//!   as the balancer's own connection: its address, under its limits.
//! - Each outcome is counted in `pec_proxy_proxy_headers_total{listener,result}`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::net::proxy_protocol::{Header, MAX_HEADER, parse};
use crate::ops::metrics as m;

/// Between two looks at a header that is not whole yet: a balancer sends it
/// in one segment, so this only paces a client that dribbles it.
const REPEEK: Duration = Duration::from_millis(5);

/// Why a connection was dropped before its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    Timeout,
    Closed,
    Invalid(&'static str),
}

impl Dropped {
    pub fn label(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Closed => "closed",
            Self::Invalid(label) => label,
        }
    }
}

/// Reads the PROXY header of a connection from a trusted balancer at
/// `peer`: the client's address (the header's, or `peer` for `LOCAL` and
/// `UNKNOWN`), or why the connection must be dropped. Counts the outcome.
pub async fn client_of(
    tcp: &mut TcpStream,
    peer: SocketAddr,
    listener: &str,
    timeout: Duration,
) -> Option<SocketAddr> {
    let outcome = tokio::time::timeout(timeout, read_header(tcp)).await;
    let (client, result) = match outcome {
        Ok(Ok(Header::Proxy { source, .. })) => (Some(source), "proxy"),
        Ok(Ok(Header::Local)) => (Some(peer), "local"),
        Ok(Ok(Header::Unknown)) => (Some(peer), "unknown"),
        Ok(Err(dropped)) => (None, dropped.label()),
        Err(_) => (None, Dropped::Timeout.label()),
    };
    metrics::counter!(m::PROXY_HEADERS_TOTAL, "listener" => listener.to_owned(), "result" => result)
        .increment(1);
    if client.is_none() {
        tracing::debug!(%peer, listener, result, "connection dropped: no valid PROXY header");
    }
    client
}

/// Peeks until the header is whole, then consumes exactly it.
async fn read_header(tcp: &mut TcpStream) -> Result<Header, Dropped> {
    let mut buf = [0u8; MAX_HEADER];
    let mut seen = 0;
    loop {
        let n = tcp.peek(&mut buf).await.map_err(|_| Dropped::Closed)?;
        if n == 0 {
            return Err(Dropped::Closed);
        }
        match parse(&buf[..n]) {
            Ok(Some((header, consumed))) => {
                tcp.read_exact(&mut buf[..consumed])
                    .await
                    .map_err(|_| Dropped::Closed)?;
                return Ok(header);
            }
            Ok(None) if n == buf.len() => return Err(Dropped::Invalid("too_long")),
            Ok(None) => {
                // Nothing new since the last look: wait before looking again
                // (peek returns at once while any byte is unread).
                if n == seen {
                    tokio::time::sleep(REPEEK).await;
                }
                seen = n;
            }
            Err(e) => return Err(Dropped::Invalid(e.label())),
        }
    }
}
