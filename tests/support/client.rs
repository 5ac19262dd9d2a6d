//! A raw IMAP/POP3/SMTP test client speaking bytes over TCP or TLS, with
//! timeouts on every read so a broken proxy fails the test instead of hanging it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pec_proxy::testing::net::Stream;
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

pub fn ca_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("certs/ca.pem")
}

/// A rustls client config trusting the test CA.
pub fn tls_config() -> Arc<rustls::ClientConfig> {
    pec_proxy::testing::tls::client_config(Some(&ca_file())).unwrap()
}

pub struct Client {
    stream: Option<Stream>,
    buf: Vec<u8>,
}

impl Client {
    pub async fn plain(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Client {
            stream: Some(Stream::Plain(tcp)),
            buf: Vec::new(),
        }
    }

    /// A plain connection from a chosen local address (any of 127/8 on
    /// Linux), so one in-process proxy sees several client IPs.
    pub async fn plain_from(local: std::net::IpAddr, addr: SocketAddr) -> Client {
        Client {
            stream: Some(Stream::Plain(connect_from(local, addr).await.expect("connect"))),
            buf: Vec::new(),
        }
    }

    /// A connection from `local` that first sends `preamble` (a load
    /// balancer's PROXY header), then speaks TLS.
    pub async fn tls_after(local: std::net::IpAddr, addr: SocketAddr, preamble: &[u8]) -> Client {
        let mut tcp = connect_from(local, addr).await.expect("connect");
        tcp.write_all(preamble).await.expect("preamble");
        let tls = handshake(tcp, tls_config(), "localhost")
            .await
            .expect("TLS handshake");
        Client {
            stream: Some(tls),
            buf: Vec::new(),
        }
    }

    /// TLS over a connection the test has already written to.
    pub async fn tls_over(tcp: TcpStream) -> Client {
        let tls = handshake(tcp, tls_config(), "localhost")
            .await
            .expect("TLS handshake");
        Client {
            stream: Some(tls),
            buf: Vec::new(),
        }
    }

    /// Like [`Client::tls`], from a chosen local address.
    pub async fn tls_from(local: std::net::IpAddr, addr: SocketAddr) -> Client {
        let tcp = connect_from(local, addr).await.expect("connect");
        let tls = handshake(tcp, tls_config(), "localhost")
            .await
            .expect("TLS handshake");
        Client {
            stream: Some(tls),
            buf: Vec::new(),
        }
    }

    /// Raw bytes on the wire, without the line buffer (for hostile input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.s().write_all(bytes).await?;
        self.s().flush().await
    }

    pub async fn tls(addr: SocketAddr) -> Client {
        Self::tls_with(addr, tls_config(), "localhost")
            .await
            .expect("TLS handshake")
    }

    pub async fn tls_with(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        sni: &str,
    ) -> std::io::Result<Client> {
        let tcp = TcpStream::connect(addr).await?;
        let tls = handshake(tcp, config, sni).await?;
        Ok(Client {
            stream: Some(tls),
            buf: Vec::new(),
        })
    }

    /// Upgrades after the server accepted STARTTLS/STLS. Fails the test if the
    /// server sent anything more in clear.
    pub async fn upgrade(&mut self) {
        assert!(self.buf.is_empty(), "server sent bytes after its STARTTLS answer");
        let Some(Stream::Plain(tcp)) = self.stream.take() else {
            panic!("not plain")
        };
        self.stream = Some(
            handshake(tcp, tls_config(), "localhost")
                .await
                .expect("STARTTLS handshake"),
        );
    }

    fn s(&mut self) -> &mut Stream {
        self.stream.as_mut().unwrap()
    }

    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.s().write_all(bytes.as_ref()).await.expect("send");
        self.s().flush().await.expect("flush");
    }

    /// Shuts the sending half (over TLS: close_notify, then FIN); the
    /// server may go on answering.
    pub async fn shutdown_write(&mut self) {
        self.s().shutdown().await.expect("shutdown");
    }

    /// One line, without CRLF.
    pub async fn line(&mut self) -> String {
        self.try_line()
            .await
            .expect("connection closed while waiting for a line")
    }

    /// One line, or `None` at end of stream (or a reset).
    pub async fn try_line(&mut self) -> Option<String> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Some(String::from_utf8_lossy(&line).into_owned());
            }
            if self.fill().await == 0 {
                return None;
            }
        }
    }

    /// Exactly `n` bytes (an IMAP literal).
    pub async fn bytes(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await > 0, "closed inside a literal");
        }
        self.buf.drain(..n).collect()
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16384];
        let read = tokio::time::timeout(READ_TIMEOUT, self.s().read(&mut chunk))
            .await
            .expect("read timed out");
        let n = read.unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Lines up to and including the one tagged `tag`.
    pub async fn until_tagged(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// Sends an IMAP command and returns its tagged completion line.
    pub async fn command(&mut self, tag: &str, command: &str) -> String {
        self.send(format!("{tag} {command}\r\n")).await;
        self.until_tagged(tag).await.pop().unwrap()
    }

    /// Asserts the server closes the connection (after any lines it sends).
    pub async fn expect_closed(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.try_line().await {
            lines.push(line);
        }
        lines
    }
}

/// TCP connect from `local` (port chosen by the kernel) to `addr`.
pub async fn connect_from(local: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if local.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(addr).await
}

async fn handshake(tcp: TcpStream, config: Arc<rustls::ClientConfig>, sni: &str) -> std::io::Result<Stream> {
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(tls))))
}

/// The certificate the server presented, as DER.
pub fn peer_certificate(client: &Client) -> Vec<u8> {
    match client.stream.as_ref().unwrap() {
        Stream::Tls(t) => match t.as_ref() {
            tokio_rustls::TlsStream::Client(c) => c.get_ref().1.peer_certificates().unwrap()[0].to_vec(),
            _ => unreachable!("test clients are TLS clients"),
        },
        Stream::Plain(_) => panic!("not TLS"),
    }
}

/// The DER of the first certificate in a PEM file of the repo's certs/.
pub fn cert_der(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("certs").join(name);
    rustls_pki_types::CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}
