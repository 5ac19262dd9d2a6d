//! Connecting to an upstream mail server, shared by every protocol: TCP
//! connect under a deadline, TLS with certificate verification (never a
//! fallback to plain once TLS is configured), and a bounded line reader.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::{TlsMode, UpstreamConfig};
use crate::net::Stream;
use crate::secret::Secret;

mod failover;

pub use failover::{log_in, record_error};

/// Longest response line we read from an upstream while logging in. Dovecot's
/// capability lines are under 1 KiB; 64 KiB leaves room for odd servers.
pub const MAX_UPSTREAM_LINE: usize = 64 * 1024;

/// Why the upstream could not be used. `kind()` is the metric label.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    #[error("timed out during login")]
    Timeout,
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("closed the connection")]
    Closed,
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server refused the login credentials.
    #[error("refused the login")]
    AuthFailed,
    /// The server says it cannot serve now (`NO [UNAVAILABLE]`, `-ERR [SYS/TEMP]`, 4xx).
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// Another session holds the mailbox (POP3 `-ERR [IN-USE]`, RFC 2449
    /// §8.1.1). The text (printable, bounded) is passed to the client.
    #[error("mailbox in use: {0}")]
    MailboxInUse(String),
}

impl UpstreamError {
    /// Whether another address of the same upstream may do better: the
    /// server (or the path to it) failed. Not for a refused login (the other
    /// server has the same accounts) nor a timeout (the deadline is spent).
    /// Nor a mailbox in use: every address serves the same mailboxes.
    pub fn is_server_fault(&self) -> bool {
        !matches!(
            self,
            UpstreamError::AuthFailed | UpstreamError::Timeout | UpstreamError::MailboxInUse(_)
        )
    }

    /// Whether the connection failed at some step (RFC 3463 X.4.1, "no
    /// answer from host"), rather than the server answering as it should
    /// not. A reset mid-login surfaces as a read error or as end of stream
    /// depending on timing, and both must read the same.
    pub fn is_no_answer(&self) -> bool {
        matches!(
            self,
            UpstreamError::Connect(_)
                | UpstreamError::ConnectTimeout
                | UpstreamError::Timeout
                | UpstreamError::Closed
                | UpstreamError::Io(_)
        )
    }

    /// Whether [`with_failover`] has already told its `on_fault` about this
    /// error, with the address it came from: every server fault, and the
    /// deadline running out. The caller counts the others (a refusal of the
    /// proxy's own credentials) itself.
    pub fn reported_by_failover(&self) -> bool {
        self.is_server_fault() || matches!(self, UpstreamError::Timeout)
    }

    /// Bounded label for `pec_proxy_upstream_errors_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "connect",
            UpstreamError::ConnectTimeout => "connect_timeout",
            UpstreamError::Tls(_) => "tls",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Io(_) => "io",
            UpstreamError::Closed => "closed",
            UpstreamError::Protocol(_) => "protocol",
            UpstreamError::AuthFailed => "auth_failed",
            UpstreamError::Unavailable(_) => "unavailable",
            UpstreamError::MailboxInUse(_) => "mailbox_in_use",
        }
    }
}

/// Who to log in as upstream.
#[derive(Debug, Clone, Copy)]
pub enum Identity<'a> {
    /// The client's own credentials, checked by the upstream (pass-through).
    Client { user: &'a [u8], password: &'a Secret },
    /// The mailbox, with the proxy's master credentials. Only after the
    /// proxy itself has verified the client.
    Mailbox(&'a str),
}

/// An upstream endpoint ready to be dialled: the config plus its TLS client
/// config, built once.
#[derive(Clone)]
pub struct Upstream {
    pub config: UpstreamConfig,
    pub tls: Option<TlsConnector>,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("address", &self.config.address)
            .field("tls", &self.config.tls)
            .finish()
    }
}

impl Upstream {
    pub fn new(config: UpstreamConfig, tls: Option<Arc<ClientConfig>>, connect_timeout: Duration) -> Self {
        Self {
            config,
            tls: tls.map(TlsConnector::from),
            connect_timeout,
        }
    }

    /// This upstream, or the same at `route` (a mailbox's own backend, with
    /// this upstream's TLS and login settings, and no fallback).
    pub fn routed(&self, route: Option<&str>) -> Upstream {
        let mut one = self.clone();
        if let Some(address) = route {
            one.config.address = address.to_owned();
            one.config.fallback_addresses.clear();
        }
        one
    }

    /// This upstream at each of its addresses, in the order to try them.
    pub fn candidates(&self) -> Vec<Upstream> {
        std::iter::once(&self.config.address)
            .chain(&self.config.fallback_addresses)
            .map(|address| {
                let mut one = self.clone();
                one.config.address = address.clone();
                one.config.fallback_addresses.clear();
                one
            })
            .collect()
    }

    /// TCP connect (and the TLS handshake for implicit TLS) to `config.address`.
    /// Connects to the upstream (and, with `proxy_protocol`, first tells it
    /// that the connection is `client`'s, to this proxy's own address).
    pub async fn connect(&self, client: std::net::SocketAddr) -> Result<Connection, UpstreamError> {
        let mut tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.config.address))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?
            .map_err(UpstreamError::Connect)?;
        // Login exchanges are small request/response steps: Nagle would add latency.
        tcp.set_nodelay(true).map_err(UpstreamError::Connect)?;
        if self.config.proxy_protocol {
            // Before anything else, TLS included: who the client is.
            let ours = tcp.local_addr().map_err(UpstreamError::Connect)?;
            let header = crate::net::proxy_protocol::encode_v2(client, ours);
            tokio::io::AsyncWriteExt::write_all(&mut tcp, &header)
                .await
                .map_err(UpstreamError::Connect)?;
        }
        let stream = match self.config.tls {
            TlsMode::Implicit => self.handshake(tcp).await?,
            TlsMode::Starttls | TlsMode::None => Stream::Plain(tcp),
        };
        Ok(Connection {
            stream,
            buf: BytesMut::with_capacity(1024),
        })
    }

    /// Upgrades a plain connection after the protocol's STARTTLS/STLS was accepted.
    pub async fn starttls(&self, conn: Connection) -> Result<Connection, UpstreamError> {
        if !conn.buf.is_empty() {
            // Bytes after the server's "go ahead" and before the handshake could
            // only be injected by a man in the middle (CVE-2011-0411, upstream side).
            return Err(UpstreamError::Protocol(
                "data pipelined after STARTTLS response".into(),
            ));
        }
        let Stream::Plain(tcp) = conn.stream else {
            return Err(UpstreamError::Protocol("STARTTLS on a TLS connection".into()));
        };
        Ok(Connection {
            stream: self.handshake(tcp).await?,
            buf: conn.buf,
        })
    }

    async fn handshake(&self, tcp: TcpStream) -> Result<Stream, UpstreamError> {
        let connector = self
            .tls
            .as_ref()
            .ok_or_else(|| UpstreamError::Protocol("no TLS config".into()))?;
        let name = ServerName::try_from(self.config.server_name.clone())
            .map_err(|_| UpstreamError::Protocol("invalid upstream server_name".into()))?;
        let tls = connector.connect(name, tcp).await.map_err(UpstreamError::Tls)?;
        Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(tls))))
    }
}

/// A connection to an upstream during login, with what has been read but not
/// consumed yet.
#[derive(Debug)]
pub struct Connection {
    pub stream: Stream,
    pub buf: BytesMut,
}

impl Connection {
    /// Reads one line (CRLF or LF terminated), returned without the line end.
    pub async fn read_line(&mut self) -> Result<Vec<u8>, UpstreamError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line = self.buf.split_to(pos + 1).to_vec();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > MAX_UPSTREAM_LINE {
                return Err(UpstreamError::Protocol("response line too long".into()));
            }
            self.fill().await?;
        }
    }

    /// Discards exactly `n` bytes (an IMAP literal in a response we skip).
    pub async fn skip(&mut self, mut n: usize) -> Result<(), UpstreamError> {
        loop {
            let take = n.min(self.buf.len());
            self.buf.advance(take);
            n -= take;
            if n == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> Result<(), UpstreamError> {
        self.buf.reserve(4096);
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(UpstreamError::Closed);
        }
        Ok(())
    }

    /// Writes and flushes.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), UpstreamError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }
}
