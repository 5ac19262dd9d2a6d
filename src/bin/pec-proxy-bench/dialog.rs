//! What a client says, per protocol: log in, log out, fetch a message,
//! enter and leave IMAP IDLE.

use base64::Engine;

use super::conn::{Conn, ConnError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Proto {
    Imap,
    Pop3,
    Smtp,
}

/// Reads the greeting and logs in.
pub async fn login(c: &mut Conn, proto: Proto, user: &str, password: &str) -> Result<(), ConnError> {
    match proto {
        Proto::Imap => {
            c.until(b"* OK", &[b"* BYE", b"* NO"]).await?;
            c.send(format!("a LOGIN \"{user}\" \"{password}\"\r\n").as_bytes())
                .await?;
            c.until(b"a OK", &[b"a NO", b"a BAD", b"* BYE"]).await
        }
        Proto::Pop3 => {
            c.until(b"+OK", &[b"-ERR"]).await?;
            c.send(format!("USER {user}\r\n").as_bytes()).await?;
            c.until(b"+OK", &[b"-ERR"]).await?;
            c.send(format!("PASS {password}\r\n").as_bytes()).await?;
            c.until(b"+OK", &[b"-ERR"]).await
        }
        Proto::Smtp => {
            c.until(b"220 ", &[b"4", b"5"]).await?;
            c.send(b"EHLO bench.example\r\n").await?;
            c.until(b"250 ", &[b"4", b"5"]).await?;
            let blob = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
            c.send(format!("AUTH PLAIN {blob}\r\n").as_bytes()).await?;
            c.until(b"235", &[b"4", b"5"]).await
        }
    }
}

/// Reads the greeting and logs in with a wrong password: done when the
/// server refuses it (IMAP only: `a NO`).
pub async fn refused_login(c: &mut Conn, user: &str, password: &str) -> Result<(), ConnError> {
    c.until(b"* OK", &[b"* BYE", b"* NO"]).await?;
    c.send(format!("a LOGIN \"{user}\" \"{password}\"\r\n").as_bytes())
        .await?;
    c.until(b"a NO", &[b"a OK", b"a BAD", b"* BYE"]).await
}

/// Logs out and waits for the server to close (or answer).
pub async fn logout(c: &mut Conn, proto: Proto) -> Result<(), ConnError> {
    match proto {
        Proto::Imap => {
            c.send(b"z LOGOUT\r\n").await?;
            c.until(b"z OK", &[b"z NO", b"z BAD"]).await?;
        }
        Proto::Pop3 => {
            c.send(b"QUIT\r\n").await?;
            c.until(b"+OK", &[b"-ERR"]).await?;
        }
        Proto::Smtp => {
            c.send(b"QUIT\r\n").await?;
            c.until(b"221", &[b"4", b"5"]).await?;
        }
    }
    c.shutdown().await;
    Ok(())
}

/// Fetches message 1 whole; returns its size.
pub async fn fetch(c: &mut Conn, proto: Proto) -> Result<u64, ConnError> {
    match proto {
        Proto::Imap => {
            c.send(b"f FETCH 1 BODY.PEEK[]\r\n").await?;
            let line = c.line().await?;
            let size = literal_size(line)
                .ok_or_else(|| ConnError::Protocol(String::from_utf8_lossy(line).trim_end().to_owned()))?;
            c.skip(size).await?;
            c.until(b"f OK", &[b"f NO", b"f BAD"]).await?;
            Ok(size)
        }
        Proto::Pop3 => {
            c.send(b"RETR 1\r\n").await?;
            c.until(b"+OK", &[b"-ERR"]).await?;
            c.multiline().await
        }
        Proto::Smtp => Err(ConnError::Protocol("no FETCH in SMTP".into())),
    }
}

/// `* 1 FETCH (BODY[] {1234}` → 1234.
fn literal_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = line.get(open + 1..line.len().checked_sub(1)?)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Enters IDLE (tag `i`).
pub async fn idle(c: &mut Conn) -> Result<(), ConnError> {
    c.send(b"i IDLE\r\n").await?;
    c.until(b"+", &[b"i NO", b"i BAD"]).await
}

/// Leaves IDLE, sends a NOOP, re-enters IDLE; returns the NOOP's round trip.
pub async fn noop_in_idle(c: &mut Conn) -> Result<std::time::Duration, ConnError> {
    c.send(b"DONE\r\n").await?;
    c.until(b"i OK", &[b"i NO", b"i BAD"]).await?;
    let started = tokio::time::Instant::now();
    c.send(b"n NOOP\r\n").await?;
    c.until(b"n OK", &[b"n NO", b"n BAD"]).await?;
    let rtt = started.elapsed();
    idle(c).await?;
    Ok(rtt)
}

#[cfg(test)]
mod tests;
