//! A tiny in-process IMAP upstream on 127.0.0.1:0 for edge cases a real
//! Dovecot cannot be made to show on demand: it records every command it
//! receives (so a test can prove nothing a client sent became a second
//! command), and it can misbehave (reset, hang, send garbage, refuse).
//!
//! Plain TCP only (`tls = "none"` upstream). It accepts `LOGIN` with quoted
//! strings, atoms and synchronising literals (it does not announce LITERAL+),
//! and answers `ID`, `CAPABILITY`, `NOOP`, `LOGOUT`; after login anything else
//! gets `OK`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the fake behaves on each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// A working server: `LOGIN user <password>` succeeds when the password is
    /// [`FakeImap::PASSWORD`].
    Serve,
    /// Greets, reads the LOGIN command, then resets the connection (RST).
    ResetAtLogin,
    /// Accepts and never says a word.
    Hang,
    /// Answers the connection with bytes that are not IMAP.
    GarbageGreeting,
    /// Greets properly, then answers LOGIN with garbage.
    GarbageReply,
    /// Greets with `* BYE [UNAVAILABLE]`.
    Bye,
}

/// What the fake saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Command names in arrival order, upper-cased (`ID`, `LOGIN`, ...).
    pub commands: Vec<String>,
    /// (user, password) of each LOGIN, decoded.
    pub logins: Vec<(Vec<u8>, Vec<u8>)>,
    /// Connections accepted.
    pub connections: usize,
}

pub struct FakeImap {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeImap {
    pub const PASSWORD: &'static str = "right-password";

    pub async fn start(behaviour: Behaviour) -> FakeImap {
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
                    let _ = serve(tcp, behaviour, seen).await;
                });
            }
        });
        FakeImap { addr, seen, task }
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// An address where nothing listens (connection refused).
    pub async fn refused_addr() -> SocketAddr {
        // Bound but never listening: a connection to it is refused (RST),
        // and the port stays taken for the rest of the process, so no
        // other test's server can be given it (a freed port can be, and
        // then the "refused" address answers).
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let a = socket.local_addr().unwrap();
        std::mem::forget(socket);
        a
    }
}

impl Drop for FakeImap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Conn {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(60), self.tcp.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::other("fake: read timed out"))??;
        if n == 0 {
            return Err(std::io::Error::other("fake: closed"));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn byte(&mut self) -> std::io::Result<u8> {
        if self.buf.is_empty() {
            self.fill().await?;
        }
        Ok(self.buf.remove(0))
    }

    async fn until(&mut self, stop: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let b = self.byte().await?;
            if stop.contains(&b) {
                self.buf.insert(0, b);
                return Ok(out);
            }
            out.push(b);
        }
    }

    async fn rest_of_line(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let b = self.byte().await?;
            if b == b'\n' {
                if out.last() == Some(&b'\r') {
                    out.pop();
                }
                return Ok(out);
            }
            out.push(b);
        }
    }

    /// `astring`: atom, quoted string with escapes, or `{n}` literal.
    async fn astring(&mut self) -> std::io::Result<Vec<u8>> {
        match self.byte().await? {
            b'"' => {
                let mut out = Vec::new();
                loop {
                    match self.byte().await? {
                        b'\\' => out.push(self.byte().await?),
                        b'"' => return Ok(out),
                        b => out.push(b),
                    }
                }
            }
            b'{' => {
                let n = self.until(b"}").await?;
                self.byte().await?; // }
                self.rest_of_line().await?;
                let n: usize = String::from_utf8_lossy(n.strip_suffix(b"+").unwrap_or(&n))
                    .parse()
                    .map_err(std::io::Error::other)?;
                self.tcp.write_all(b"+ go ahead\r\n").await?;
                while self.buf.len() < n {
                    self.fill().await?;
                }
                Ok(self.buf.drain(..n).collect())
            }
            b => {
                let mut out = vec![b];
                out.extend(self.until(b" \r").await?);
                Ok(out)
            }
        }
    }
}

async fn serve(tcp: TcpStream, behaviour: Behaviour, seen: Arc<Mutex<Seen>>) -> std::io::Result<()> {
    let mut c = Conn { tcp, buf: Vec::new() };
    match behaviour {
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            return Ok(());
        }
        Behaviour::GarbageGreeting => {
            c.tcp.write_all(b"\x16\x03\x01\x00\xffHELLO?\xfe\r\n").await?;
            tokio::time::sleep(Duration::from_secs(5)).await;
            return Ok(());
        }
        Behaviour::Bye => {
            c.tcp
                .write_all(b"* BYE [UNAVAILABLE] Server overloaded\r\n")
                .await?;
            return Ok(());
        }
        _ => {}
    }
    c.tcp
        .write_all(b"* OK [CAPABILITY IMAP4rev1 ID AUTH=PLAIN] fake ready\r\n")
        .await?;
    let mut logged_in = false;
    loop {
        let tag = String::from_utf8_lossy(&c.until(b" ").await?).into_owned();
        c.byte().await?;
        let name = String::from_utf8_lossy(&c.until(b" \r\n").await?).to_ascii_uppercase();
        seen.lock().unwrap().commands.push(name.clone());
        match name.as_str() {
            "LOGIN" if !logged_in => {
                c.byte().await?; // SP
                let user = c.astring().await?;
                c.byte().await?; // SP
                let password = c.astring().await?;
                c.rest_of_line().await?;
                seen.lock().unwrap().logins.push((user, password.clone()));
                match behaviour {
                    Behaviour::ResetAtLogin => {
                        c.tcp.set_zero_linger()?;
                        return Ok(());
                    }
                    Behaviour::GarbageReply => {
                        c.tcp.write_all(b"\x00\x01garbage \xff\r\n").await?;
                        continue;
                    }
                    _ => {}
                }
                if password == FakeImap::PASSWORD.as_bytes() {
                    logged_in = true;
                    c.tcp
                        .write_all(format!("{tag} OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n").as_bytes())
                        .await?;
                } else {
                    c.tcp
                        .write_all(
                            format!("{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n").as_bytes(),
                        )
                        .await?;
                }
            }
            "LOGOUT" => {
                c.rest_of_line().await?;
                c.tcp
                    .write_all(format!("* BYE bye\r\n{tag} OK Logout completed.\r\n").as_bytes())
                    .await?;
                return Ok(());
            }
            "ID" => {
                c.rest_of_line().await?;
                c.tcp
                    .write_all(format!("* ID NIL\r\n{tag} OK ID completed.\r\n").as_bytes())
                    .await?;
            }
            _ => {
                c.rest_of_line().await?;
                let status = if logged_in { "OK" } else { "BAD" };
                c.tcp
                    .write_all(format!("{tag} {status} {name} done\r\n").as_bytes())
                    .await?;
            }
        }
    }
}

/// Upstream config text for a fake at `addr`: plain TCP, pass-through.
pub fn upstream_config(addr: SocketAddr) -> String {
    format!("\n[upstream.imap]\naddress = \"{addr}\"\ntls = \"none\"\nlogin = \"pass-through\"\n")
}
