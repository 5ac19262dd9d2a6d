//! A fast upstream simulator for the capacity modes: just enough IMAP,
//! POP3 and SMTP for greeting, login, IDLE, NOOP, FETCH/RETR of one fixed
//! message and logout, one cheap task per session. Every login succeeds.
//! Functional tests use real Dovecot and Postfix; this is for load only.
//!
//! It also serves the TLS baselines: `imaps` (the IMAP simulator under
//! TLS) and `handshake` (a TLS handshake, a one-line greeting, then wait
//! for the client to close), both with pec-proxy's own server config.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Longest command line the simulator reads.
const MAX_LINE: usize = 8192;
/// A session silent this long is closed (the tool's runs are bounded anyway).
const SESSION_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Plain IMAP listener.
    #[arg(long)]
    pub imap: Option<SocketAddr>,
    /// Plain POP3 listener.
    #[arg(long)]
    pub pop3: Option<SocketAddr>,
    /// Plain SMTP listener.
    #[arg(long)]
    pub smtp: Option<SocketAddr>,
    /// IMAP under implicit TLS (the direct-with-TLS baseline).
    #[arg(long)]
    pub imaps: Option<SocketAddr>,
    /// TLS handshake only, then a one-line greeting (the bare rustls baseline).
    #[arg(long)]
    pub handshake: Option<SocketAddr>,
    /// Certificate and key for the TLS listeners.
    #[arg(long, default_value = "certs/server.pem")]
    pub cert: std::path::PathBuf,
    #[arg(long, default_value = "certs/server-key.pem")]
    pub key: std::path::PathBuf,
    /// Size of the message FETCH/RETR returns, bytes.
    #[arg(long, default_value_t = 4 << 20)]
    pub message_bytes: usize,
    /// Exit after this many seconds (the simulator never runs unbounded).
    #[arg(long, default_value_t = 3600)]
    pub lifetime_secs: u64,
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let message: Arc<[u8]> = message(args.message_bytes).into();
    let acceptor = if args.imaps.is_some() || args.handshake.is_some() {
        let config =
            pec_proxy::testing::tls::server_config(&[pec_proxy::testing::config::CertificateConfig {
                cert: args.cert.clone(),
                key: args.key.clone(),
                server_names: vec![],
                default: true,
            }])?;
        Some(TlsAcceptor::from(config))
    } else {
        None
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (addr, kind) in [
        (args.imap, Kind::Imap),
        (args.pop3, Kind::Pop3),
        (args.smtp, Kind::Smtp),
        (args.imaps, Kind::Imaps),
        (args.handshake, Kind::Handshake),
    ] {
        let Some(addr) = addr else { continue };
        let listener = TcpListener::bind(addr).await?;
        eprintln!("upstream-sim: {kind:?} on {}", listener.local_addr()?);
        tasks.spawn(accept_loop(listener, kind, message.clone(), acceptor.clone()));
    }
    anyhow::ensure!(!tasks.is_empty(), "no listener given");
    let _ = tokio::time::timeout(Duration::from_secs(args.lifetime_secs), tasks.join_next()).await;
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Imap,
    Pop3,
    Smtp,
    Imaps,
    Handshake,
}

async fn accept_loop(listener: TcpListener, kind: Kind, message: Arc<[u8]>, acceptor: Option<TlsAcceptor>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let message = message.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(SESSION_TIMEOUT, async move {
                match kind {
                    Kind::Imap => imap(tcp, &message).await,
                    Kind::Pop3 => pop3(tcp, &message).await,
                    Kind::Smtp => smtp(tcp).await,
                    Kind::Imaps => {
                        let tls = acceptor.expect("TLS configured").accept(tcp).await?;
                        imap(tls, &message).await
                    }
                    Kind::Handshake => {
                        let mut tls = acceptor.expect("TLS configured").accept(tcp).await?;
                        tls.write_all(b"* OK\r\n").await?;
                        tls.flush().await?;
                        let mut sink = [0u8; 64];
                        while tls.read(&mut sink).await? > 0 {}
                        Ok(())
                    }
                }
            })
            .await;
        });
    }
}

/// Printable lines of 78 bytes plus CRLF, none starting with a dot.
fn message(size: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(size + 80);
    m.extend_from_slice(b"From: a@pec.example\r\nTo: b@pec.example\r\nSubject: load\r\n\r\n");
    let line = [b'x'; 78];
    while m.len() + 80 <= size {
        m.extend_from_slice(&line);
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// Reads one line (CRLF stripped); `None` at EOF or an over-long line.
async fn read_line<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufStream<S>,
    line: &mut Vec<u8>,
) -> Option<()> {
    line.clear();
    let n = (&mut *s)
        .take(MAX_LINE as u64)
        .read_until(b'\n', line)
        .await
        .ok()?;
    if n == 0 || !line.ends_with(b"\n") {
        return None;
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Some(())
}

/// An IMAP command with its literals read in (synchronising ones answered with `+`).
async fn imap_command<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufStream<S>,
    cmd: &mut Vec<u8>,
) -> Option<()> {
    let mut line = Vec::new();
    read_line(s, cmd).await?;
    while let Some((size, sync)) = trailing_literal(cmd) {
        if size > MAX_LINE {
            return None;
        }
        if sync {
            s.write_all(b"+ go ahead\r\n").await.ok()?;
            s.flush().await.ok()?;
        }
        let mut lit = vec![0u8; size];
        s.read_exact(&mut lit).await.ok()?;
        cmd.extend_from_slice(&lit);
        read_line(s, &mut line).await?;
        cmd.extend_from_slice(&line);
    }
    Some(())
}

/// `... {12}` or `... {12+}` at the end of a line.
fn trailing_literal(line: &[u8]) -> Option<(usize, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let (digits, sync) = match digits.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (digits, true),
    };
    Some((std::str::from_utf8(digits).ok()?.parse().ok()?, sync))
}

const IMAP_CAPS: &str = "IMAP4rev1 LITERAL+ SASL-IR ID IDLE AUTH=PLAIN";

async fn imap<S: AsyncRead + AsyncWrite + Unpin>(stream: S, message: &[u8]) -> std::io::Result<()> {
    let mut s = BufStream::with_capacity(1024, 1024, stream);
    s.write_all(format!("* OK [CAPABILITY {IMAP_CAPS}] upstream-sim ready\r\n").as_bytes())
        .await?;
    s.flush().await?;
    let mut cmd = Vec::with_capacity(256);
    while imap_command(&mut s, &mut cmd).await.is_some() {
        let mut words = cmd.splitn(3, |&b| b == b' ');
        let tag = String::from_utf8_lossy(words.next().unwrap_or(b"*")).into_owned();
        let name = words.next().unwrap_or(b"").to_ascii_uppercase();
        let rest = words.next().unwrap_or(b"");
        let reply = match name.as_slice() {
            b"CAPABILITY" => format!("* CAPABILITY {IMAP_CAPS}\r\n{tag} OK done\r\n"),
            b"ID" => format!("* ID NIL\r\n{tag} OK ID completed\r\n"),
            b"LOGIN" => format!("{tag} OK [CAPABILITY {IMAP_CAPS}] Logged in\r\n"),
            b"AUTHENTICATE" => {
                if !rest.contains(&b' ') {
                    s.write_all(b"+ \r\n").await?;
                    s.flush().await?;
                    let mut line = Vec::new();
                    if read_line(&mut s, &mut line).await.is_none() {
                        return Ok(());
                    }
                }
                format!("{tag} OK [CAPABILITY {IMAP_CAPS}] Logged in\r\n")
            }
            b"SELECT" | b"EXAMINE" => {
                format!("* 1 EXISTS\r\n* 0 RECENT\r\n{tag} OK [READ-WRITE] selected\r\n")
            }
            b"IDLE" => {
                s.write_all(b"+ idling\r\n").await?;
                s.flush().await?;
                let mut line = Vec::new();
                if read_line(&mut s, &mut line).await.is_none() {
                    return Ok(());
                }
                format!("{tag} OK IDLE terminated\r\n")
            }
            b"FETCH" | b"UID" => {
                s.write_all(format!("* 1 FETCH (BODY[] {{{}}}\r\n", message.len()).as_bytes())
                    .await?;
                s.write_all(message).await?;
                format!(")\r\n{tag} OK FETCH completed\r\n")
            }
            b"LOGOUT" => {
                s.write_all(format!("* BYE logging out\r\n{tag} OK LOGOUT completed\r\n").as_bytes())
                    .await?;
                s.flush().await?;
                return Ok(());
            }
            _ => format!("{tag} OK done\r\n"),
        };
        s.write_all(reply.as_bytes()).await?;
        s.flush().await?;
    }
    Ok(())
}

async fn pop3<S: AsyncRead + AsyncWrite + Unpin>(stream: S, message: &[u8]) -> std::io::Result<()> {
    let mut s = BufStream::with_capacity(1024, 1024, stream);
    s.write_all(b"+OK upstream-sim ready\r\n").await?;
    s.flush().await?;
    let mut line = Vec::with_capacity(256);
    while read_line(&mut s, &mut line).await.is_some() {
        let name = line
            .split(|&b| b == b' ')
            .next()
            .unwrap_or(b"")
            .to_ascii_uppercase();
        match name.as_slice() {
            b"CAPA" => {
                s.write_all(b"+OK\r\nUSER\r\nSASL PLAIN\r\nRESP-CODES\r\nPIPELINING\r\nTOP\r\nUIDL\r\n.\r\n")
                    .await?
            }
            b"AUTH" if !line[4..].trim_ascii().contains(&b' ') => {
                s.write_all(b"+ \r\n").await?;
                s.flush().await?;
                let mut answer = Vec::new();
                if read_line(&mut s, &mut answer).await.is_none() {
                    return Ok(());
                }
                s.write_all(b"+OK Logged in.\r\n").await?
            }
            b"STAT" => {
                s.write_all(format!("+OK 1 {}\r\n", message.len()).as_bytes())
                    .await?
            }
            b"RETR" => {
                s.write_all(format!("+OK {} octets\r\n", message.len()).as_bytes())
                    .await?;
                s.write_all(message).await?;
                s.write_all(b".\r\n").await?
            }
            b"QUIT" => {
                s.write_all(b"+OK Logging out.\r\n").await?;
                s.flush().await?;
                return Ok(());
            }
            _ => s.write_all(b"+OK\r\n").await?,
        }
        s.flush().await?;
    }
    Ok(())
}

async fn smtp<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> std::io::Result<()> {
    const GREETING: &[u8] = b"220 upstream-sim ESMTP\r\n";
    let mut s = BufStream::with_capacity(1024, 1024, stream);
    s.write_all(GREETING).await?;
    s.flush().await?;
    let mut line = Vec::with_capacity(256);
    while read_line(&mut s, &mut line).await.is_some() {
        let name = line
            .split(|&b| b == b' ')
            .next()
            .unwrap_or(b"")
            .to_ascii_uppercase();
        match name.as_slice() {
            b"EHLO" => s.write_all(b"250-upstream-sim\r\n250-PIPELINING\r\n250-SIZE 31457280\r\n250-AUTH PLAIN LOGIN\r\n250-XCLIENT ADDR LOGIN NAME\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n").await?,
            b"HELO" => s.write_all(b"250 upstream-sim\r\n").await?,
            b"XCLIENT" => s.write_all(GREETING).await?,
            b"AUTH" => {
                let words = line.split(|&b| b == b' ').count();
                let login = line.len() >= 10 && line[5..10].eq_ignore_ascii_case(b"LOGIN");
                let prompts = match (login, words) {
                    (true, 2) => 2,
                    (true, _) => 1,
                    (false, 2) => 1,
                    (false, _) => 0,
                };
                for _ in 0..prompts {
                    s.write_all(b"334 \r\n").await?;
                    s.flush().await?;
                    let mut answer = Vec::new();
                    if read_line(&mut s, &mut answer).await.is_none() {
                        return Ok(());
                    }
                }
                s.write_all(b"235 2.7.0 Authentication successful\r\n").await?
            }
            b"DATA" => {
                s.write_all(b"354 go ahead\r\n").await?;
                s.flush().await?;
                let mut data = Vec::new();
                loop {
                    if read_line(&mut s, &mut data).await.is_none() {
                        return Ok(());
                    }
                    if data == b"." {
                        break;
                    }
                }
                s.write_all(b"250 2.0.0 queued\r\n").await?
            }
            b"QUIT" => {
                s.write_all(b"221 2.0.0 Bye\r\n").await?;
                s.flush().await?;
                return Ok(());
            }
            _ => s.write_all(b"250 2.0.0 Ok\r\n").await?,
        }
        s.flush().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
