//! A tiny in-process SMTP submission upstream on 127.0.0.1:0, the SMTP
//! sibling of [`super::fake_imap`]: it records every line it receives (so a
//! test can prove nothing a client sent became a second command upstream),
//! and it can misbehave (reset, hang, send garbage, refuse, fail in DATA).
//!
//! Plain TCP only (`tls = "none"` upstream). It speaks what
//! `src/smtp/upstream.rs` sends: `EHLO`, `AUTH PLAIN` (with or without an
//! initial response; the proxy always sends one and never uses LOGIN, so
//! only PLAIN is offered) and `XCLIENT` (answered `220` with a session
//! restart, as Postfix does); then `MAIL`, `RCPT`, `DATA`, `RSET`, `NOOP`,
//! `QUIT`.
//!
//! Deliberately lenient like the servers SMTP smuggling exploits: a bare LF
//! ends a line, and `.` alone on such a line ends DATA. A proxy that let a
//! bare line end through would make this fake execute what followed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the fake behaves on each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// A working server: `AUTH PLAIN` succeeds when the password is
    /// [`FakeSmtp::PASSWORD`]; `XCLIENT` always does.
    Serve,
    /// Greets, answers EHLO, reads the AUTH (or XCLIENT), then resets (RST).
    ResetAtLogin,
    /// Accepts and never says a word.
    Hang,
    /// Answers the connection with bytes that are not SMTP.
    GarbageGreeting,
    /// Greets properly, then answers AUTH (or XCLIENT) with garbage.
    GarbageReply,
    /// Greets with `421` and closes (RFC 5321 §3.1: service not available).
    Unavailable,
    /// Answers AUTH (or XCLIENT) with `454 4.7.0` (RFC 4954 §6).
    TempFail,
    /// Serves the login, `MAIL`, `RCPT` and the `354`, then resets after
    /// the first line of message content.
    ResetInData,
    /// Serves up to the final dot, then resets instead of answering it.
    ResetAtDot,
}

/// What the fake saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Every line received, command or content, without its line end.
    pub lines: Vec<Vec<u8>>,
    /// The command verbs, upper-cased, in arrival order (not content lines
    /// nor AUTH continuation lines).
    pub commands: Vec<String>,
    /// (authzid, authcid, password) of each `AUTH PLAIN`, decoded.
    pub auths: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    /// The arguments of each `XCLIENT`.
    pub xclients: Vec<String>,
    /// The content of each message accepted with `250`, dot-unstuffed, CRLF line ends.
    pub messages: Vec<Vec<u8>>,
    /// Connections accepted.
    pub connections: usize,
}

pub struct FakeSmtp {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    /// Connections whose handler has returned (closed, reset, or failed).
    ended: tokio::sync::watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeSmtp {
    pub const PASSWORD: &'static str = "right-password";

    pub async fn start(behaviour: Behaviour) -> FakeSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let seen2 = seen.clone();
        let (ended_tx, ended) = tokio::sync::watch::channel(0usize);
        let ended_tx = Arc::new(ended_tx);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                seen2.lock().unwrap().connections += 1;
                let seen = seen2.clone();
                let ended = ended_tx.clone();
                tokio::spawn(async move {
                    let _ = serve(tcp, behaviour, seen).await;
                    ended.send_modify(|n| *n += 1);
                });
            }
        });
        FakeSmtp {
            addr,
            seen,
            ended,
            task,
        }
    }

    /// Waits until `n` connections have ended on the fake's side, so that
    /// [`Self::seen`] holds everything they received.
    pub async fn wait_ended(&self, n: usize) {
        let mut ended = self.ended.clone();
        tokio::time::timeout(Duration::from_secs(20), ended.wait_for(|&e| e >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} upstream connections ended"))
            .expect("the fake is running");
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// An address where nothing listens (connection refused).
    pub async fn refused_addr() -> SocketAddr {
        super::fake_imap::FakeImap::refused_addr().await
    }
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Longest line the fake reads (a broken proxy must not make it grow forever).
const MAX_LINE: usize = 1 << 20;

struct Conn {
    tcp: TcpStream,
    buf: Vec<u8>,
    seen: Arc<Mutex<Seen>>,
}

impl Conn {
    /// One line ended by LF (a CR before it is dropped), recorded.
    async fn line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(lf) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=lf).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.seen.lock().unwrap().lines.push(line.clone());
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE {
                return Err(std::io::Error::other("fake: line too long"));
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

    async fn say(&mut self, reply: &str) -> std::io::Result<()> {
        self.tcp.write_all(reply.as_bytes()).await
    }

    /// Ends the connection with a TCP reset.
    fn reset(self) -> std::io::Result<()> {
        self.tcp.set_zero_linger()
    }
}

const GREETING: &str = "220 fake.upstream ESMTP ready\r\n";
const EHLO: &str = "250-fake.upstream\r\n250-PIPELINING\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n\
                    250-ENHANCEDSTATUSCODES\r\n250-AUTH PLAIN\r\n250 XCLIENT NAME ADDR PROTO HELO LOGIN\r\n";

async fn serve(tcp: TcpStream, behaviour: Behaviour, seen: Arc<Mutex<Seen>>) -> std::io::Result<()> {
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
            c.tcp.write_all(b"\x16\x03\x01\x00\xffHELLO?\xfe\r\n").await?;
            tokio::time::sleep(Duration::from_secs(5)).await;
            return Ok(());
        }
        Behaviour::Unavailable => {
            return c.say("421 4.3.2 fake.upstream Service not available\r\n").await;
        }
        _ => {}
    }
    c.say(GREETING).await?;
    let mut logged_in = false;
    loop {
        let line = c.line().await?;
        let verb_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
        let verb = String::from_utf8_lossy(&line[..verb_end]).to_ascii_uppercase();
        let args = line.get(verb_end + 1..).unwrap_or_default().to_vec();
        c.seen.lock().unwrap().commands.push(verb.clone());
        let login_step = matches!(verb.as_str(), "AUTH" | "XCLIENT") && !logged_in;
        if login_step {
            // What the AUTH carries, for the record, before misbehaving.
            if verb == "AUTH" {
                let mut words = args.splitn(2, |&b| b == b' ');
                let mechanism = words.next().unwrap_or_default().to_ascii_uppercase();
                if mechanism != b"PLAIN" {
                    c.say("504 5.5.4 Unrecognized authentication type\r\n").await?;
                    continue;
                }
                let response = match words.next() {
                    Some(ir) => ir.to_vec(),
                    None => {
                        c.say("334 \r\n").await?;
                        c.line().await?
                    }
                };
                let decoded = STANDARD.decode(&response).unwrap_or_default();
                let mut parts = decoded.splitn(3, |&b| b == 0).map(<[u8]>::to_vec);
                let auth = (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                );
                c.seen.lock().unwrap().auths.push(auth);
            } else {
                let xclient = String::from_utf8_lossy(&args).into_owned();
                c.seen.lock().unwrap().xclients.push(xclient);
            }
            match behaviour {
                Behaviour::ResetAtLogin => return c.reset(),
                Behaviour::GarbageReply => {
                    c.tcp.write_all(b"\x00\x01garbage \xff\r\n").await?;
                    continue;
                }
                Behaviour::TempFail => {
                    c.say("454 4.7.0 Temporary authentication failure\r\n").await?;
                    continue;
                }
                _ => {}
            }
        }
        match verb.as_str() {
            "EHLO" => c.say(EHLO).await?,
            "HELO" => c.say("250 fake.upstream\r\n").await?,
            "XCLIENT" => {
                // Postfix: the session restarts, as the given client.
                logged_in = true;
                c.say(GREETING).await?;
            }
            "AUTH" if logged_in => c.say("503 5.5.1 Error: already authenticated\r\n").await?,
            "AUTH" => {
                let (_, _, password) = c.seen.lock().unwrap().auths.last().cloned().unwrap();
                if password == FakeSmtp::PASSWORD.as_bytes() {
                    logged_in = true;
                    c.say("235 2.7.0 Authentication successful\r\n").await?;
                } else {
                    c.say("535 5.7.8 Error: authentication failed\r\n").await?;
                }
            }
            "QUIT" => {
                c.say("221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            "NOOP" | "RSET" => c.say("250 2.0.0 Ok\r\n").await?,
            "MAIL" | "RCPT" | "DATA" if !logged_in => c.say("530 5.7.0 Authentication required\r\n").await?,
            "MAIL" => c.say("250 2.1.0 Ok\r\n").await?,
            "RCPT" => c.say("250 2.1.5 Ok\r\n").await?,
            "DATA" => {
                c.say("354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let mut message = Vec::new();
                loop {
                    let line = c.line().await?;
                    if behaviour == Behaviour::ResetInData {
                        return c.reset();
                    }
                    if line == b"." {
                        break;
                    }
                    message.extend_from_slice(line.strip_prefix(b".").unwrap_or(&line));
                    message.extend_from_slice(b"\r\n");
                }
                if behaviour == Behaviour::ResetAtDot {
                    return c.reset();
                }
                c.seen.lock().unwrap().messages.push(message);
                c.say("250 2.0.0 Ok: queued as FAKE1\r\n").await?;
            }
            _ => c.say("502 5.5.2 Error: command not recognized\r\n").await?,
        }
    }
}

/// Upstream config text for a fake at `addr`: plain TCP, pass-through.
pub fn upstream_config(addr: SocketAddr) -> String {
    format!("\n[upstream.smtp]\naddress = \"{addr}\"\ntls = \"none\"\nlogin = \"pass-through\"\n")
}

/// Certificates, `[smtp] hostname` and the two SMTP listeners every SMTP
/// test against a fake uses: `smtps` (implicit TLS) and `submission`
/// (STARTTLS).
pub fn smtp_listeners() -> String {
    r#"
[[certificate]]
cert = "certs/server.pem"
key = "certs/server-key.pem"
server_names = ["localhost"]
default = true

[[listener]]
name = "smtps"
protocol = "smtp"
address = "127.0.0.1:0"
tls = "implicit"

[[listener]]
name = "submission"
protocol = "smtp"
address = "127.0.0.1:0"
tls = "starttls"

[metrics]

[smtp]
hostname = "proxy.pec.example"
"#
    .to_owned()
}
