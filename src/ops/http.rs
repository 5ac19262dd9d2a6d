//! The operator's HTTP listener (`metrics.listen`): `/metrics` for
//! Prometheus, `/healthz` (the process answers) and `/readyz` (listeners
//! bound, account store answering, not draining).
//!
//! A deliberately small HTTP/1.1 server: three GET routes on loopback or a
//! private network do not need hyper's dozen crates, and a bounded request
//! head, a read deadline, a connection cap and `Connection: close` are easy to
//! get right by hand.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::debug;

/// Request line plus headers. 8 KiB, nginx's `large_client_header_buffers`
/// line size; a scraper sends a few hundred bytes.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Deadline to receive the request head, and again to send the response.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Concurrent HTTP connections; beyond, new ones are closed at once.
/// Prometheus and a load balancer's health checks need a handful.
pub const MAX_CONNECTIONS: usize = 32;
/// What `/readyz` asks once the listeners are bound (the running server
/// answers: not draining, its account store answering).
#[async_trait::async_trait]
pub trait Readiness: Send + Sync {
    /// `Ok` when ready, else why not.
    async fn check(&self) -> Result<(), &'static str>;
}

/// State behind the status listener.
pub struct Status {
    metrics: PrometheusHandle,
    /// Set once the proxy's listeners are bound.
    readiness: OnceLock<Box<dyn Readiness>>,
}

impl Status {
    pub fn new(metrics: PrometheusHandle) -> Arc<Self> {
        Arc::new(Self {
            metrics,
            readiness: OnceLock::new(),
        })
    }

    /// Called once the listeners are bound.
    pub fn set_ready(&self, readiness: impl Readiness + 'static) {
        let _ = self.readiness.set(Box::new(readiness));
    }

    async fn respond(&self, path: &str) -> Response {
        match path {
            "/metrics" => Response {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: self.metrics.render(),
            },
            "/healthz" => Response::text(200, "ok\n".into()),
            "/readyz" => match self.readiness.get() {
                None => Response::text(503, "not ready: starting\n".into()),
                Some(r) => match r.check().await {
                    Ok(()) => Response::text(200, "ready\n".into()),
                    Err(why) => Response::text(503, format!("not ready: {why}\n")),
                },
            },
            _ => Response::text(404, "not found\n".into()),
        }
    }
}

/// Serves the status listener until the process ends.
pub async fn serve(listener: TcpListener, status: Arc<Status>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                debug!(error = %e, "status listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            debug!(%peer, "status listener: too many connections");
            continue;
        };
        let status = status.clone();
        tokio::spawn(async move {
            handle(tcp, &status).await;
            drop(permit);
        });
    }
}

async fn handle(mut tcp: TcpStream, status: &Status) {
    let request = tokio::time::timeout(IO_TIMEOUT, read_head(&mut tcp)).await;
    let (response, head_only) = match request {
        Ok(Ok(head)) => match parse_request(&head) {
            Ok(Request { method, path }) => (status.respond(path).await, method == Method::Head),
            Err(code) => (Response::text(code, format!("{}\n", reason(code))), false),
        },
        Ok(Err(HeadError::TooLarge)) => (Response::text(431, "request head too large\n".into()), false),
        Ok(Err(HeadError::Io)) | Err(_) => return,
    };
    let bytes = response.encode(head_only);
    let _ = tokio::time::timeout(IO_TIMEOUT, async {
        tcp.write_all(&bytes).await?;
        tcp.shutdown().await?;
        // Lingering close: closing with unread input would reset the
        // connection and could destroy the response before the client reads
        // it (an over-long head). Bounded in bytes and time.
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            match tcp.read(&mut sink).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

enum HeadError {
    TooLarge,
    Io,
}

/// Reads until the blank line that ends the head, at most [`MAX_REQUEST_HEAD`] bytes.
async fn read_head(tcp: &mut TcpStream) -> Result<Vec<u8>, HeadError> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = tcp.read(&mut buf).await.map_err(|_| HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Io);
        }
        let searched_from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find(&head[searched_from..], b"\r\n\r\n") {
            head.truncate(searched_from + end + 4);
            return Ok(head);
        }
        if head.len() > MAX_REQUEST_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[derive(Debug, PartialEq, Eq)]
enum Method {
    Get,
    Head,
}

#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    method: Method,
    path: &'a str,
}

/// `request-line = method SP request-target SP HTTP-version CRLF` (RFC 9112 §3);
/// the headers that follow are not needed. Errors are HTTP status codes.
fn parse_request(head: &[u8]) -> Result<Request<'_>, u16> {
    let line_end = find(head, b"\r\n").ok_or(400u16)?;
    let line = std::str::from_utf8(&head[..line_end]).map_err(|_| 400u16)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(505);
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => return Err(405),
    };
    if !target.starts_with('/') {
        return Err(400);
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    Ok(Request { method, path })
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn text(status: u16, body: String) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }

    fn encode(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        if self.status == 405 {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("Connection: close\r\n\r\n");
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

#[cfg(test)]
mod tests;
