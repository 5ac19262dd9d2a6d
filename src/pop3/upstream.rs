//! Logging in to the upstream POP3 server as the mailbox.
//!
//! Credentials go upstream as SASL PLAIN (RFC 5034), base64-encoded, so no
//! byte a client chose can end the line and start a second command. Only a
//! server without SASL PLAIN gets `USER`/`PASS`, and then a value holding
//! CR, LF or NUL is refused before anything is sent.

use std::net::SocketAddr;

use zeroize::Zeroizing;

use crate::config::{TlsMode, UpstreamLogin};
use crate::frontend::sasl;
use crate::secret::Secret;
use crate::upstream::{Connection, Identity, Upstream, UpstreamError};

/// RFC 2449 §4: a command line is at most 255 octets, CRLF included.
const MAX_COMMAND_LINE: usize = 255;

/// Longest `CAPA` answer we read, in lines. Dovecot sends about ten.
const MAX_CAPA_LINES: usize = 100;

/// What the server said it supports (RFC 2449 CAPA), the parts we use.
#[derive(Debug, Default, PartialEq, Eq)]
struct Capabilities {
    sasl_plain: bool,
    xclient: bool,
}

/// Connects, secures, passes the client's address and logs in. Returns the
/// connection right after the server's `+OK` to the login. The caller bounds
/// the whole exchange with a deadline.
pub async fn login(
    upstream: &Upstream,
    identity: Identity<'_>,
    peer: SocketAddr,
) -> Result<Connection, UpstreamError> {
    let mut conn = upstream.connect(peer).await?;
    let greeting = conn.read_line().await?;
    if let Some(text) = greeting.strip_prefix(b"-ERR") {
        return Err(UpstreamError::Unavailable(printable(text)));
    }
    if !greeting.starts_with(b"+OK") {
        return Err(UpstreamError::Protocol("unexpected greeting".into()));
    }
    // Dovecot announces XCLIENT to trusted peers in its greeting,
    // `+OK [XCLIENT] ...`, not in CAPA (pop3-login's "extension to avoid
    // an extra roundtrip").
    let greeting_xclient = greeting
        .get(3..)
        .is_some_and(|rest| rest.trim_ascii_start().starts_with(b"[XCLIENT]"));

    if upstream.config.tls == TlsMode::Starttls {
        conn.send(b"STLS\r\n").await?;
        let reply = conn.read_line().await?;
        if !reply.starts_with(b"+OK") {
            // Never fall back to plain text once TLS is configured.
            return Err(UpstreamError::Protocol(format!(
                "STLS refused: {}",
                printable(&reply)
            )));
        }
        conn = upstream.starttls(conn).await?;
    }

    // After TLS: RFC 2595 §4, what was learnt before is void.
    let caps = capabilities(&mut conn).await?;

    if upstream.config.send_client_address && (caps.xclient || greeting_xclient) {
        // Dovecot's POP3 XCLIENT: the login process records the real client
        // (needs the proxy in login_trusted_networks, which is also what
        // makes Dovecot announce XCLIENT).
        let cmd = format!("XCLIENT ADDR={} PORT={}\r\n", peer.ip(), peer.port());
        conn.send(cmd.as_bytes()).await?;
        let reply = conn.read_line().await?;
        if !reply.starts_with(b"+OK") {
            tracing::warn!(reply = %printable(&reply), "upstream refused XCLIENT; continuing without it");
        }
    }

    let (authzid, authcid, password): (&[u8], Zeroizing<Vec<u8>>, &Secret) =
        match (&upstream.config.login, identity) {
            (_, Identity::Client { user, password }) => (b"", Zeroizing::new(user.to_vec()), password),
            (
                UpstreamLogin::MasterUser {
                    user: master,
                    password,
                    separator,
                },
                Identity::Mailbox(mailbox),
            ) => (
                b"",
                Zeroizing::new(format!("{mailbox}{separator}{master}").into_bytes()),
                password,
            ),
            (
                UpstreamLogin::SaslAuthzid {
                    user: master,
                    password,
                },
                Identity::Mailbox(mailbox),
            ) => {
                if !caps.sasl_plain {
                    return Err(UpstreamError::Protocol(
                        "sasl-authzid login, but the server does not offer SASL PLAIN".into(),
                    ));
                }
                (
                    mailbox.as_bytes(),
                    Zeroizing::new(master.as_bytes().to_vec()),
                    password,
                )
            }
            (UpstreamLogin::PassThrough | UpstreamLogin::Xclient, Identity::Mailbox(_)) => {
                return Err(UpstreamError::Protocol(
                    "pass-through upstream cannot log in as a mailbox".into(),
                ));
            }
        };

    let reply = if caps.sasl_plain {
        auth_plain(&mut conn, authzid, &authcid, password).await?
    } else {
        user_pass(&mut conn, &authcid, password).await?
    };
    if reply.starts_with(b"+OK") {
        return Ok(conn);
    }
    Err(classify_refusal(&reply))
}

/// `AUTH PLAIN` with the initial response when the line stays within 255
/// octets, otherwise after the server's empty challenge (RFC 5034 §4).
async fn auth_plain(
    conn: &mut Connection,
    authzid: &[u8],
    authcid: &[u8],
    password: &Secret,
) -> Result<Vec<u8>, UpstreamError> {
    let blob = sasl::build_plain(authzid, authcid, password);
    let mut cmd = Zeroizing::new(Vec::with_capacity(blob.len() + 16));
    if b"AUTH PLAIN ".len() + blob.len() + 2 <= MAX_COMMAND_LINE {
        cmd.extend_from_slice(b"AUTH PLAIN ");
        cmd.extend_from_slice(blob.expose());
        cmd.extend_from_slice(b"\r\n");
        conn.send(&cmd).await?;
    } else {
        conn.send(b"AUTH PLAIN\r\n").await?;
        let challenge = conn.read_line().await?;
        if !challenge.starts_with(b"+ ") && challenge != b"+" {
            return Ok(challenge);
        }
        cmd.extend_from_slice(blob.expose());
        cmd.extend_from_slice(b"\r\n");
        conn.send(&cmd).await?;
    }
    conn.read_line().await
}

/// `USER` then `PASS` (RFC 1939 §7), for servers without SASL PLAIN.
async fn user_pass(conn: &mut Connection, user: &[u8], password: &Secret) -> Result<Vec<u8>, UpstreamError> {
    let unsafe_byte = |b: &u8| matches!(b, b'\r' | b'\n' | 0);
    if user.iter().any(|b| unsafe_byte(b) || *b == b' ') || password.expose().iter().any(unsafe_byte) {
        // Cannot be sent as one argument on one line: no server could
        // accept it, so it is a refusal, decided without asking.
        return Ok(b"-ERR [AUTH] invalid characters in credentials".to_vec());
    }
    let mut cmd = Zeroizing::new(b"USER ".to_vec());
    cmd.extend_from_slice(user);
    cmd.extend_from_slice(b"\r\n");
    conn.send(&cmd).await?;
    let reply = conn.read_line().await?;
    if !reply.starts_with(b"+OK") {
        return Ok(reply);
    }
    let mut cmd = Zeroizing::new(b"PASS ".to_vec());
    cmd.extend_from_slice(password.expose());
    cmd.extend_from_slice(b"\r\n");
    conn.send(&cmd).await?;
    conn.read_line().await
}

/// `CAPA` (RFC 2449 §5); a server without it has none of what we look for.
async fn capabilities(conn: &mut Connection) -> Result<Capabilities, UpstreamError> {
    conn.send(b"CAPA\r\n").await?;
    let status = conn.read_line().await?;
    let mut caps = Capabilities::default();
    if !status.starts_with(b"+OK") {
        return Ok(caps);
    }
    for _ in 0..MAX_CAPA_LINES {
        let line = conn.read_line().await?;
        if line == b"." {
            return Ok(caps);
        }
        parse_capability(&line, &mut caps);
    }
    Err(UpstreamError::Protocol("CAPA answer too long".into()))
}

fn parse_capability(line: &[u8], caps: &mut Capabilities) {
    let text = String::from_utf8_lossy(line);
    let mut words = text.split_ascii_whitespace();
    match words.next() {
        Some(w) if w.eq_ignore_ascii_case("SASL") && words.any(|m| m.eq_ignore_ascii_case("PLAIN")) => {
            caps.sasl_plain = true;
        }
        Some(w) if w.eq_ignore_ascii_case("XCLIENT") => caps.xclient = true,
        _ => {}
    }
}

/// `-ERR [IN-USE]` goes to the client; `[SYS/TEMP]` (RFC 3206 §4) is a
/// temporary failure; `[AUTH]`, `[SYS/PERM]` or no code: the credentials
/// were refused.
fn classify_refusal(reply: &[u8]) -> UpstreamError {
    let text = reply.strip_prefix(b"-ERR").unwrap_or(reply);
    let text = text.strip_prefix(b" ").unwrap_or(text);
    let (code, rest) = match text.strip_prefix(b"[").and_then(|t| {
        let end = t.iter().position(|&b| b == b']')?;
        Some((&t[..end], &t[end + 1..]))
    }) {
        Some((code, rest)) => (code.to_ascii_uppercase(), rest),
        None => (Vec::new(), text),
    };
    if !reply.starts_with(b"-ERR") {
        return UpstreamError::Protocol("unexpected reply to login".into());
    }
    match code.as_slice() {
        b"IN-USE" => UpstreamError::MailboxInUse(printable(rest)),
        b"SYS/TEMP" => UpstreamError::Unavailable(printable(rest)),
        _ => UpstreamError::AuthFailed,
    }
}

/// A server's text made safe for a client reply and for logs: printable
/// ASCII, at most 200 bytes, trimmed.
fn printable(text: &[u8]) -> String {
    text.iter()
        .take(200)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests;
