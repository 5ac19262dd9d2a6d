//! A tiny in-process POP3 upstream on 127.0.0.1:0, the POP3 twin of
//! [`super::fake_imap`]: it records every line it receives (so a test can
//! prove nothing a client sent became a second command), and it can
//! misbehave (reset, hang, send garbage, answer `-ERR [SYS/TEMP]` or
//! `-ERR [IN-USE]`).
//!
//! Plain TCP only (`tls = "none"` upstream). It speaks what
//! `src/pop3/upstream.rs` sends: `CAPA` (announcing `SASL PLAIN` and
//! `XCLIENT`, or neither for [`Behaviour::ServeUserPass`]), `XCLIENT`,
//! `AUTH PLAIN` with and without an initial response, `USER`/`PASS`. Any
//! user name logs in with [`FakePop3::PASSWORD`]. After login: `STAT`,
//! `NOOP`, `RETR` (one message of [`FakePop3::MESSAGE_BYTES`], streamed),
//! `DELE`, `QUIT`; anything else gets `+OK`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the fake behaves on each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// A working server offering SASL PLAIN and XCLIENT.
    Serve,
    /// A working server without SASL: the proxy logs in with USER/PASS.
    ServeUserPass,
    /// Greets, reads the login command, then resets the connection (RST).
    ResetAtLogin,
    /// Accepts and never says a word.
    Hang,
    /// Answers the connection with bytes that are not POP3.
    GarbageGreeting,
    /// Greets properly, then answers the login command with garbage.
    GarbageReply,
    /// Greets with `-ERR [SYS/TEMP]` (RFC 3206 §4) and closes.
    SysTempGreeting,
    /// Answers the login with `-ERR [SYS/TEMP]`, as Dovecot does when its
    /// auth process is down.
    SysTempAtLogin,
    /// Answers a right password with `-ERR [IN-USE]` (RFC 2449 §8.1.1):
    /// another POP3 session holds the mailbox.
    InUse,
}

/// One login the fake saw, decoded: `(authzid, user, password)`.
pub type Login = (Vec<u8>, Vec<u8>, Vec<u8>);

/// What the fake saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Every line received, without its line end, in arrival order (SASL
    /// continuation lines included).
    pub lines: Vec<Vec<u8>>,
    /// The keyword of each command line, upper-cased (`CAPA`, `AUTH`, ...);
    /// SASL continuation lines are not commands.
    pub commands: Vec<String>,
    /// Each login attempt (AUTH PLAIN or USER/PASS), decoded.
    pub logins: Vec<Login>,
    /// Connections accepted.
    pub connections: usize,
    /// Connections that have ended (the peer left, or the fake closed).
    pub ended: usize,
    /// Bytes of RETR answers written so far.
    pub retr_sent: usize,
}

pub struct FakePop3 {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakePop3 {
    pub const PASSWORD: &'static str = "right-password";
    /// The size of the mailbox's one message: far more than any socket
    /// buffer holds, so a proxy that buffers without bound is seen.
    pub const MESSAGE_BYTES: usize = 256 << 20;

    pub async fn start(behaviour: Behaviour) -> FakePop3 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                seen2.lock().unwrap().connections += 1;
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let _ = serve(tcp, behaviour, &seen).await;
                    seen.lock().unwrap().ended += 1;
                });
            }
        });
        FakePop3 { addr, seen, task }
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// An address where nothing listens (connection refused).
    pub async fn refused_addr() -> SocketAddr {
        super::fake_imap::FakeImap::refused_addr().await
    }
}

impl Drop for FakePop3 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Conn<'a> {
    tcp: TcpStream,
    buf: Vec<u8>,
    seen: &'a Mutex<Seen>,
}

impl Conn<'_> {
    /// One line without its line end, recorded.
    async fn line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.seen.lock().unwrap().lines.push(line.clone());
                return Ok(line);
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(60), self.tcp.read(&mut chunk))
                .await
                .map_err(|_| std::io::Error::other("fake: read timed out"))??;
            if n == 0 {
                return Err(std::io::Error::other("fake: closed"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.tcp.write_all(bytes).await
    }

    /// Streams the message, byte-stuffing free (no line starts with `.`).
    async fn retr(&mut self) -> std::io::Result<()> {
        self.send(format!("+OK {} octets\r\n", FakePop3::MESSAGE_BYTES).as_bytes())
            .await?;
        let line = b"The quick brown fox jumps over the lazy dog, posta certificata.\r\n";
        let chunk = line.repeat(1024);
        let mut sent = 0;
        while sent < FakePop3::MESSAGE_BYTES {
            let n = chunk.len().min(FakePop3::MESSAGE_BYTES - sent);
            self.send(&chunk[..n]).await?;
            sent += n;
            self.seen.lock().unwrap().retr_sent += n;
        }
        self.send(b".\r\n").await
    }
}

fn decode_plain(b64: &[u8]) -> Option<Login> {
    let plain = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let mut parts = plain.splitn(3, |&b| b == 0);
    Some((
        parts.next()?.to_vec(),
        parts.next()?.to_vec(),
        parts.next()?.to_vec(),
    ))
}

async fn serve(tcp: TcpStream, behaviour: Behaviour, seen: &Mutex<Seen>) -> std::io::Result<()> {
    let mut c = Conn {
        tcp,
        buf: Vec::new(),
        seen,
    };
    match behaviour {
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            return Ok(());
        }
        Behaviour::GarbageGreeting => {
            c.send(b"\x16\x03\x01\x00\xffHELLO?\xfe\r\n").await?;
            tokio::time::sleep(Duration::from_secs(5)).await;
            return Ok(());
        }
        Behaviour::SysTempGreeting => {
            return c.send(b"-ERR [SYS/TEMP] Server overloaded\r\n").await;
        }
        _ => {}
    }
    c.send(b"+OK fake ready\r\n").await?;
    let mut user: Option<Vec<u8>> = None;
    let mut logged_in = false;
    loop {
        let line = c.line().await?;
        let mut words = line.splitn(3, |&b| b == b' ');
        let name = String::from_utf8_lossy(words.next().unwrap_or_default()).to_ascii_uppercase();
        let (arg, rest) = (words.next(), words.next());
        seen.lock().unwrap().commands.push(name.clone());
        let login = match (name.as_str(), logged_in) {
            ("CAPA", _) => {
                let sasl = if behaviour == Behaviour::ServeUserPass {
                    ""
                } else {
                    "SASL PLAIN\r\nXCLIENT\r\n"
                };
                c.send(format!("+OK\r\nTOP\r\nUSER\r\n{sasl}PIPELINING\r\n.\r\n").as_bytes())
                    .await?;
                continue;
            }
            ("XCLIENT", false) if behaviour != Behaviour::ServeUserPass => {
                c.send(b"+OK Updated\r\n").await?;
                continue;
            }
            ("AUTH", false)
                if behaviour != Behaviour::ServeUserPass
                    && arg.is_some_and(|m| m.eq_ignore_ascii_case(b"PLAIN")) =>
            {
                let response = match rest {
                    Some(ir) => ir.to_vec(),
                    None => {
                        c.send(b"+ \r\n").await?;
                        c.line().await?
                    }
                };
                match decode_plain(&response) {
                    Some(login) => login,
                    None => {
                        c.send(b"-ERR [AUTH] Invalid base64 data\r\n").await?;
                        continue;
                    }
                }
            }
            ("USER", false) => {
                user = Some(line[5.min(line.len())..].to_vec());
                c.send(b"+OK\r\n").await?;
                continue;
            }
            ("PASS", false) => match user.take() {
                Some(user) => (Vec::new(), user, line[5.min(line.len())..].to_vec()),
                None => {
                    c.send(b"-ERR No USER given\r\n").await?;
                    continue;
                }
            },
            ("STAT", true) => {
                c.send(format!("+OK 1 {}\r\n", FakePop3::MESSAGE_BYTES).as_bytes())
                    .await?;
                continue;
            }
            ("RETR", true) => {
                c.retr().await?;
                continue;
            }
            ("DELE", true) => {
                c.send(b"+OK Marked to be deleted.\r\n").await?;
                continue;
            }
            ("QUIT", _) => {
                c.send(b"+OK Logging out.\r\n").await?;
                return Ok(());
            }
            (_, true) => {
                c.send(b"+OK\r\n").await?;
                continue;
            }
            (_, false) => {
                c.send(b"-ERR Unknown command\r\n").await?;
                continue;
            }
        };
        let right = login.2 == FakePop3::PASSWORD.as_bytes();
        seen.lock().unwrap().logins.push(login);
        match behaviour {
            Behaviour::ResetAtLogin => {
                c.tcp.set_zero_linger()?;
                return Ok(());
            }
            Behaviour::GarbageReply => c.send(b"\x00\x01garbage \xff\r\n").await?,
            Behaviour::SysTempAtLogin => {
                c.send(b"-ERR [SYS/TEMP] Temporary authentication failure\r\n")
                    .await?
            }
            Behaviour::InUse if right => {
                c.send(b"-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n")
                    .await?
            }
            _ if right => {
                logged_in = true;
                c.send(b"+OK Logged in.\r\n").await?;
            }
            _ => c.send(b"-ERR [AUTH] Authentication failed.\r\n").await?,
        }
    }
}

/// Upstream config text for a fake at `addr`: plain TCP, pass-through.
pub fn upstream_config(addr: SocketAddr) -> String {
    format!("\n[upstream.pop3]\naddress = \"{addr}\"\ntls = \"none\"\nlogin = \"pass-through\"\n")
}
