//! The floor: the least a TLS-terminating IMAP login proxy can do with the
//! stack pec-proxy is built on (tokio, tokio-rustls, pec-proxy's own TLS
//! server config), to tell what of pec-proxy's cost is its own and what any
//! proxy on this stack pays.
//!
//! Per connection: the TLS handshake, a greeting, one line from the client
//! (its LOGIN), a TCP connection to the upstream (no delay), the upstream's
//! greeting read and dropped, the client's line sent as it is, the
//! upstream's reply line written back, then `copy_bidirectional` with
//! `--relay-bytes` buffers until both sides close. No parsing, no policy,
//! no limits, no logging, no metrics: not a proxy anyone should run, only a
//! measuring stick for `login` and `bulk` (IMAP against the simulator).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Longest line read from either side.
const MAX_LINE: u64 = 8192;
/// A session is given up after this long (the tool's runs are bounded anyway).
const SESSION_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, clap::Args)]
pub struct FloorArgs {
    /// Implicit-TLS IMAP listener.
    #[arg(long)]
    pub listen: SocketAddr,
    /// The plain IMAP upstream (the simulator).
    #[arg(long)]
    pub upstream: SocketAddr,
    #[arg(long, default_value = "certs/server.pem")]
    pub cert: std::path::PathBuf,
    #[arg(long, default_value = "certs/server-key.pem")]
    pub key: std::path::PathBuf,
    /// Buffer per direction of the relay after login.
    #[arg(long, default_value_t = 64 * 1024)]
    pub relay_bytes: usize,
    /// Exit after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub lifetime_secs: u64,
}

pub async fn run(args: FloorArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.listen.ip().is_loopback() && args.upstream.ip().is_loopback(),
        "loopback addresses only"
    );
    let config = pec_proxy::testing::tls::server_config(&[pec_proxy::testing::config::CertificateConfig {
        cert: args.cert.clone(),
        key: args.key.clone(),
        server_names: vec![],
        default: true,
    }])?;
    let acceptor = TlsAcceptor::from(config);
    let listener = TcpListener::bind(args.listen).await?;
    eprintln!(
        "floor-proxy: IMAPS on {} to {}",
        listener.local_addr()?,
        args.upstream
    );
    let accept = async {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let acceptor = acceptor.clone();
            let (upstream, relay_bytes) = (args.upstream, args.relay_bytes);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(SESSION_TIMEOUT, session(tcp, acceptor, upstream, relay_bytes))
                    .await;
            });
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(args.lifetime_secs), accept).await;
    Ok(())
}

async fn session(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    upstream: SocketAddr,
    relay_bytes: usize,
) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    let mut client = acceptor.accept(tcp).await?;
    client
        .write_all(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")
        .await?;
    client.flush().await?;
    let mut client = BufReader::new(client);
    let login = line(&mut client).await?;

    let up = TcpStream::connect(upstream).await?;
    up.set_nodelay(true)?;
    let mut up = BufReader::new(up);
    line(&mut up).await?;
    up.get_mut().write_all(&login).await?;
    let reply = line(&mut up).await?;
    client.get_mut().write_all(&reply).await?;
    client.get_mut().flush().await?;

    // Nothing else is pipelined in the load tool's dialogs: the readers'
    // buffers are empty here.
    let (mut client, mut up) = (client.into_inner(), up.into_inner());
    tokio::io::copy_bidirectional_with_sizes(&mut client, &mut up, relay_bytes, relay_bytes).await?;
    Ok(())
}

async fn line<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::with_capacity(128);
    let n = tokio::io::AsyncReadExt::take(&mut *r, MAX_LINE)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 || !line.ends_with(b"\n") {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line)
}
