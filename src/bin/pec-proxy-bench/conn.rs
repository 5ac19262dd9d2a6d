//! One client connection of the load tool: TCP (optionally from a chosen
//! 127.0.0.x source), optionally TLS, and a line reader, every wait under
//! the read timeout.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::client::Resumption;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

/// What can go wrong, as the report's error kinds.
#[derive(Debug)]
pub enum ConnError {
    Connect(io::Error),
    Tls(io::Error),
    Timeout,
    Closed,
    Io(io::Error),
    /// The server answered something other than what the step expects.
    Protocol(String),
}

impl std::error::Error for ConnError {}

impl ConnError {
    pub fn kind(&self) -> &'static str {
        match self {
            ConnError::Connect(_) => "connect",
            ConnError::Tls(_) => "tls",
            ConnError::Timeout => "timeout",
            ConnError::Closed => "closed",
            ConnError::Io(_) => "io",
            ConnError::Protocol(_) => "protocol",
        }
    }
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnError::Connect(e) | ConnError::Tls(e) | ConnError::Io(e) => write!(f, "{}: {e}", self.kind()),
            ConnError::Protocol(s) => write!(f, "protocol: {s}"),
            _ => f.write_str(self.kind()),
        }
    }
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Key exchange groups the client offers.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kx {
    /// X25519 only, what nginx's OpenSSL 3.0 and most mail clients negotiate.
    X25519,
    /// The rustls default list (X25519MLKEM768 first).
    Default,
}

/// The client's TLS settings, built once per run.
#[derive(Clone)]
pub struct TlsClient {
    pub connector: TlsConnector,
    pub server_name: ServerName<'static>,
}

impl TlsClient {
    /// Trusts `ca`; resumption off unless `resume` (then one shared cache).
    pub fn new(ca: &Path, server_name: &str, resume: bool, tls13_only: bool, kx: Kx) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::pem::PemObject::pem_file_iter(ca)? {
            roots.add(cert?)?;
        }
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        if let Kx::X25519 = kx {
            provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
        }
        let versions: &[&rustls::SupportedProtocolVersion] = if tls13_only {
            &[&rustls::version::TLS13]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        if !resume {
            config.resumption = Resumption::disabled();
        }
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            server_name: ServerName::try_from(server_name.to_owned())?,
        })
    }
}

/// A connected client.
pub struct Conn {
    pub io: BufStream<Box<dyn Io>>,
    pub timeout: Duration,
    pub line: Vec<u8>,
}

/// Connects from `source` (any port) when given.
pub async fn connect(
    target: SocketAddr,
    source: Option<IpAddr>,
    tls: Option<&TlsClient>,
    timeout: Duration,
) -> Result<Conn, ConnError> {
    let tcp = tokio::time::timeout(timeout, async {
        let socket = if target.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }?;
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        socket.connect(target).await
    })
    .await
    .map_err(|_| ConnError::Timeout)?
    .map_err(ConnError::Connect)?;
    tcp.set_nodelay(true).map_err(ConnError::Connect)?;
    let io: Box<dyn Io> = match tls {
        None => Box::new(tcp),
        Some(t) => Box::new(handshake(tcp, t, timeout).await?),
    };
    Ok(Conn {
        io: BufStream::with_capacity(2048, 2048, io),
        timeout,
        line: Vec::with_capacity(256),
    })
}

pub async fn handshake(
    tcp: TcpStream,
    tls: &TlsClient,
    timeout: Duration,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnError> {
    tokio::time::timeout(timeout, tls.connector.connect(tls.server_name.clone(), tcp))
        .await
        .map_err(|_| ConnError::Timeout)?
        .map_err(ConnError::Tls)
}

impl Conn {
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        tokio::time::timeout(self.timeout, async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        })
        .await
        .map_err(|_| ConnError::Timeout)?
        .map_err(ConnError::Io)
    }

    /// One line, CRLF included.
    pub async fn line(&mut self) -> Result<&[u8], ConnError> {
        self.line.clear();
        let n = tokio::time::timeout(self.timeout, self.io.read_until(b'\n', &mut self.line))
            .await
            .map_err(|_| ConnError::Timeout)?
            .map_err(ConnError::Io)?;
        if n == 0 {
            return Err(ConnError::Closed);
        }
        Ok(&self.line)
    }

    /// Reads lines until one starts with `prefix`; fails on one starting with any of `bad`.
    pub async fn until(&mut self, prefix: &[u8], bad: &[&[u8]]) -> Result<(), ConnError> {
        loop {
            let line = self.line().await?;
            if line.starts_with(prefix) {
                return Ok(());
            }
            if bad.iter().any(|b| line.starts_with(b)) {
                return Err(ConnError::Protocol(
                    String::from_utf8_lossy(line).trim_end().to_owned(),
                ));
            }
        }
    }

    /// Discards exactly `n` bytes.
    pub async fn skip(&mut self, mut n: u64) -> Result<(), ConnError> {
        let mut chunk = [0u8; 16384];
        while n > 0 {
            let want = chunk.len().min(n as usize);
            let got = tokio::time::timeout(self.timeout, self.io.read(&mut chunk[..want]))
                .await
                .map_err(|_| ConnError::Timeout)?
                .map_err(ConnError::Io)?;
            if got == 0 {
                return Err(ConnError::Closed);
            }
            n -= got as u64;
        }
        Ok(())
    }

    /// Reads a POP3 multi-line body through its terminating `.` line, in
    /// 16 KiB reads as a mail client would (line by line, the tool itself
    /// became the bottleneck and the proxy wrote in small pieces); returns
    /// the bytes before the `.` line.
    pub async fn multiline(&mut self) -> Result<u64, ConnError> {
        const END: &[u8] = b"\r\n.\r\n";
        let mut chunk = [0u8; 16384];
        // The last bytes seen, to find END across reads; the status line's
        // CRLF starts it, for an empty body.
        let mut tail = b"\r\n".to_vec();
        let mut total = 0u64;
        loop {
            let got = tokio::time::timeout(self.timeout, self.io.read(&mut chunk))
                .await
                .map_err(|_| ConnError::Timeout)?
                .map_err(ConnError::Io)?;
            if got == 0 {
                return Err(ConnError::Closed);
            }
            total += got as u64;
            // The end is the last bytes read: the tool never pipelines, so
            // nothing follows the `.` line.
            tail.extend_from_slice(&chunk[..got]);
            if tail.ends_with(END) {
                return Ok(total - 3);
            }
            tail.drain(..tail.len().saturating_sub(END.len() - 1));
        }
    }

    pub async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(self.timeout, self.io.shutdown()).await;
    }
}

#[cfg(test)]
mod tests;
