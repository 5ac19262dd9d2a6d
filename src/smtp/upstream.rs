//! Logging in to the upstream submission server as the mailbox: Postfix
//! `XCLIENT` (as nginx does), SASL PLAIN with an authorization identity
//! (Dovecot submission), or the client's own credentials (pass-through).
//!
//! Nothing the client chose reaches the upstream unencoded: the mailbox in
//! `XCLIENT` is xtext (RFC 3461 §4), credentials are base64 in SASL PLAIN,
//! and the EHLO name was parsed as one printable word without spaces.

use std::net::IpAddr;

use zeroize::Zeroizing;

use crate::config::{TlsMode, UpstreamLogin};
use crate::frontend::sasl;
use crate::secret::Secret;
use crate::upstream::{Connection, Identity, Upstream, UpstreamError};

/// A logged-in upstream connection, in the state of a fresh authenticated
/// session after the client's EHLO.
#[derive(Debug)]
pub struct LoggedIn {
    pub conn: Connection,
    /// The upstream offers SMTPUTF8 (RFC 6531) to this session.
    pub smtputf8: bool,
}

/// Most lines in one upstream reply (EHLO lists a few dozen extensions).
const MAX_REPLY_LINES: usize = 100;

/// An upstream reply: its code and its lines' texts.
#[derive(Debug)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn has_extension(&self, name: &str) -> Option<&str> {
        self.lines.iter().skip(1).find_map(|l| {
            let (kw, rest) = l.split_once(' ').unwrap_or((l.as_str(), ""));
            kw.eq_ignore_ascii_case(name).then_some(rest)
        })
    }

    fn summary(&self) -> String {
        let last = self.lines.last().map(String::as_str).unwrap_or("");
        format!("{} {}", self.code, last.chars().take(200).collect::<String>())
    }
}

/// Connects, secures, and logs in. `client_name` is the client's EHLO
/// name, `our_name` the proxy's. The caller bounds the whole exchange.
pub async fn login(
    upstream: &Upstream,
    identity: Identity<'_>,
    client_ip: IpAddr,
    client_name: &str,
    our_name: &str,
) -> Result<LoggedIn, UpstreamError> {
    let mut conn = upstream.connect(std::net::SocketAddr::new(client_ip, 0)).await?;
    let greeting = read_reply(&mut conn).await?;
    if greeting.code != 220 {
        return Err(temporary_or_protocol(&greeting, "greeting"));
    }
    // With XCLIENT the first EHLO is the proxy's own; the client's comes
    // after XCLIENT resets the session. Otherwise the client's name is used
    // from the start, so the upstream's state is the client's.
    let xclient = matches!(upstream.config.login, UpstreamLogin::Xclient);
    let first_name = if xclient { our_name } else { client_name };
    let mut ehlo = command(&mut conn, format!("EHLO {first_name}\r\n").as_bytes()).await?;
    if ehlo.code != 250 {
        return Err(temporary_or_protocol(&ehlo, "EHLO"));
    }

    if upstream.config.tls == TlsMode::Starttls {
        let reply = command(&mut conn, b"STARTTLS\r\n").await?;
        if reply.code != 220 {
            // Never fall back to plain text once TLS is configured.
            return Err(UpstreamError::Protocol(format!(
                "STARTTLS refused: {}",
                reply.summary()
            )));
        }
        conn = upstream.starttls(conn).await?;
        // RFC 3207 §4.2: everything learnt before TLS is forgotten.
        ehlo = command(&mut conn, format!("EHLO {first_name}\r\n").as_bytes()).await?;
        if ehlo.code != 250 {
            return Err(temporary_or_protocol(&ehlo, "EHLO"));
        }
    }

    match (&upstream.config.login, identity) {
        (UpstreamLogin::Xclient, Identity::Mailbox(mailbox)) => {
            let Some(attrs) = ehlo.has_extension("XCLIENT") else {
                return Err(UpstreamError::Protocol(
                    "XCLIENT not offered (smtpd_authorized_xclient_hosts)".into(),
                ));
            };
            let offered = |a: &str| attrs.split(' ').any(|x| x.eq_ignore_ascii_case(a));
            let mut cmd = String::from("XCLIENT");
            if upstream.config.send_client_address && offered("ADDR") {
                cmd.push_str(" ADDR=");
                cmd.push_str(&xtext(xclient_addr(client_ip).as_bytes()));
            }
            cmd.push_str(" LOGIN=");
            cmd.push_str(&xtext(mailbox.as_bytes()));
            cmd.push_str("\r\n");
            let reply = command(&mut conn, cmd.as_bytes()).await?;
            // Postfix 2.3 and later answer 220 and restart the session.
            if reply.code != 220 && reply.code != 250 {
                return Err(temporary_or_protocol(&reply, "XCLIENT"));
            }
            ehlo = command(&mut conn, format!("EHLO {client_name}\r\n").as_bytes()).await?;
            if ehlo.code != 250 {
                return Err(temporary_or_protocol(&ehlo, "EHLO"));
            }
        }
        (UpstreamLogin::SaslAuthzid { user, password }, Identity::Mailbox(mailbox)) => {
            auth_plain(
                &mut conn,
                sasl::build_plain(mailbox.as_bytes(), user.as_bytes(), password),
            )
            .await?;
        }
        (
            UpstreamLogin::MasterUser {
                user,
                password,
                separator,
            },
            Identity::Mailbox(mailbox),
        ) => {
            let login = format!("{mailbox}{separator}{user}");
            auth_plain(&mut conn, sasl::build_plain(b"", login.as_bytes(), password)).await?;
        }
        (_, Identity::Client { user, password }) => {
            auth_plain(&mut conn, sasl::build_plain(b"", user, password)).await?;
        }
        (UpstreamLogin::PassThrough, Identity::Mailbox(_)) => {
            return Err(UpstreamError::Protocol(
                "pass-through upstream cannot log in as a mailbox".into(),
            ));
        }
    }
    let smtputf8 = ehlo.has_extension("SMTPUTF8").is_some();
    Ok(LoggedIn { conn, smtputf8 })
}

/// `AUTH PLAIN <initial response>` (RFC 4954 §4): 235, or the refusal
/// mapped: 535 bad credentials, 4xx temporary.
async fn auth_plain(conn: &mut Connection, blob: Secret) -> Result<(), UpstreamError> {
    let mut cmd = Zeroizing::new(b"AUTH PLAIN ".to_vec());
    cmd.extend_from_slice(blob.expose());
    cmd.extend_from_slice(b"\r\n");
    conn.send(&cmd).await?;
    let reply = read_reply(conn).await?;
    match reply.code {
        235 => Ok(()),
        535 => Err(UpstreamError::AuthFailed),
        _ => Err(temporary_or_protocol(&reply, "AUTH")),
    }
}

fn temporary_or_protocol(reply: &Reply, what: &str) -> UpstreamError {
    if (400..500).contains(&reply.code) {
        UpstreamError::Unavailable(reply.summary())
    } else {
        UpstreamError::Protocol(format!("{what}: {}", reply.summary()))
    }
}

async fn command(conn: &mut Connection, line: &[u8]) -> Result<Reply, UpstreamError> {
    conn.send(line).await?;
    read_reply(conn).await
}

/// Reads one reply, all its lines (RFC 5321 §4.2.1: `code "-" text` for all
/// but the last, `code SP text` or `code` for the last).
async fn read_reply(conn: &mut Connection) -> Result<Reply, UpstreamError> {
    let mut lines = Vec::new();
    loop {
        let line = conn.read_line().await?;
        let code = line
            .get(..3)
            .filter(|c| c.iter().all(u8::is_ascii_digit))
            .and_then(|c| std::str::from_utf8(c).ok()?.parse::<u16>().ok())
            .ok_or_else(|| UpstreamError::Protocol("malformed reply".into()))?;
        let more = line.get(3) == Some(&b'-');
        lines.push(String::from_utf8_lossy(line.get(4..).unwrap_or(b"")).into_owned());
        if !more {
            return Ok(Reply { code, lines });
        }
        if lines.len() >= MAX_REPLY_LINES {
            return Err(UpstreamError::Protocol("reply too long".into()));
        }
    }
}

/// The client address as Postfix's XCLIENT wants it: `IPV6:` before IPv6.
fn xclient_addr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("IPV6:{v6}"),
        },
    }
}

/// `xtext = *( xchar / hexchar )`; `xchar` = "!".."~" except "+" and "=";
/// `hexchar = "+" 2(%x30-39 / %x41-46)` (RFC 3461 §4).
pub fn xtext(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
