//! Logging in to the upstream IMAP server as the mailbox.
//!
//! Every value the client chose (user name, password) reaches the upstream
//! inside a quoted string with escapes or a literal, or base64-encoded in
//! SASL PLAIN, so nothing a client sends can become a second command.

use zeroize::Zeroizing;

use crate::config::{TlsMode, UpstreamLogin};
use crate::frontend::sasl;
use crate::net::ClientAddrs;
use crate::upstream::{Connection, Identity, Upstream, UpstreamError};

/// A logged-in upstream connection.
#[derive(Debug)]
pub struct LoggedIn {
    pub conn: Connection,
    /// The capabilities the server announced after login, for the client's
    /// tagged `OK [CAPABILITY ...]`.
    pub capabilities: Option<String>,
}

struct Tagged {
    ok: bool,
    bad: bool,
    code: Option<String>,
    text: String,
}

/// Connects, secures and logs in. The caller bounds the whole exchange with
/// a deadline.
pub async fn login(
    upstream: &Upstream,
    identity: Identity<'_>,
    addrs: ClientAddrs,
) -> Result<LoggedIn, UpstreamError> {
    let mut conn = upstream.connect(addrs.peer).await?;
    let greeting = conn.read_line().await?;
    let mut capabilities = greeting_capabilities(&greeting)?;

    if upstream.config.tls == TlsMode::Starttls {
        conn.send(b"P1 STARTTLS\r\n").await?;
        let reply = read_tagged(&mut conn, b"P1").await?;
        if !reply.ok {
            // Never fall back to plain text once TLS is configured.
            return Err(UpstreamError::Protocol(format!(
                "STARTTLS refused: {}",
                reply.text
            )));
        }
        conn = upstream.starttls(conn).await?;
        // RFC 3501 §6.2.1: capabilities must be discarded after STARTTLS.
        capabilities = None;
    }

    if upstream.config.send_client_address {
        let id = format!(
            "P2 ID (\"x-originating-ip\" \"{}\" \"x-originating-port\" \"{}\" \"x-connected-ip\" \"{}\" \"x-connected-port\" \"{}\")\r\n",
            addrs.peer.ip(),
            addrs.peer.port(),
            addrs.local.ip(),
            addrs.local.port()
        );
        conn.send(id.as_bytes()).await?;
        // The server's answer does not matter; only that it finished.
        read_tagged(&mut conn, b"P2").await?;
    }

    let caps = capabilities.as_deref().unwrap_or("");
    let literal_plus = has_capability(caps, "LITERAL+");
    let reply = match (&upstream.config.login, identity) {
        (_, Identity::Client { user, password }) => {
            send_login(&mut conn, user, password.expose(), literal_plus).await?
        }
        (
            UpstreamLogin::MasterUser {
                user: master,
                password,
                separator,
            },
            Identity::Mailbox(mailbox),
        ) => {
            let user = format!("{mailbox}{separator}{master}");
            send_login(&mut conn, user.as_bytes(), password.expose(), literal_plus).await?
        }
        (
            UpstreamLogin::SaslAuthzid {
                user: master,
                password,
            },
            Identity::Mailbox(mailbox),
        ) => {
            let blob = sasl::build_plain(mailbox.as_bytes(), master.as_bytes(), password);
            if has_capability(caps, "SASL-IR") {
                let mut cmd = Zeroizing::new(b"P3 AUTHENTICATE PLAIN ".to_vec());
                cmd.extend_from_slice(blob.expose());
                cmd.extend_from_slice(b"\r\n");
                conn.send(&cmd).await?;
            } else {
                conn.send(b"P3 AUTHENTICATE PLAIN\r\n").await?;
                expect_continuation(&mut conn, b"P3").await?;
                let mut line = Zeroizing::new(blob.expose().to_vec());
                line.extend_from_slice(b"\r\n");
                conn.send(&line).await?;
            }
            read_tagged(&mut conn, b"P3").await?
        }
        (UpstreamLogin::PassThrough | UpstreamLogin::Xclient, Identity::Mailbox(_)) => {
            return Err(UpstreamError::Protocol(
                "pass-through upstream cannot log in as a mailbox".into(),
            ));
        }
    };

    if !reply.ok {
        return Err(classify_refusal(&reply));
    }
    let mut capabilities = reply
        .code
        .as_deref()
        .and_then(|c| c.strip_prefix("CAPABILITY "))
        .map(str::to_owned);
    if capabilities.is_none() {
        conn.send(b"P4 CAPABILITY\r\n").await?;
        capabilities = read_capability(&mut conn, b"P4").await?;
    }
    Ok(LoggedIn { conn, capabilities })
}

/// `NO [AUTHENTICATIONFAILED]` and friends are the client's problem; a
/// server that cannot serve now is a temporary failure (RFC 5530 codes).
fn classify_refusal(reply: &Tagged) -> UpstreamError {
    let code = reply
        .code
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    if reply.bad {
        return UpstreamError::Protocol(format!("BAD to login: {}", reply.text));
    }
    match code.as_str() {
        "UNAVAILABLE" | "SERVERBUG" | "INUSE" | "LIMIT" | "OVERQUOTA" => {
            UpstreamError::Unavailable(reply.text.clone())
        }
        _ => UpstreamError::AuthFailed,
    }
}

/// `LOGIN` with each argument as a quoted string when it can be one, a
/// literal otherwise (8-bit or control characters).
async fn send_login(
    conn: &mut Connection,
    user: &[u8],
    password: &[u8],
    literal_plus: bool,
) -> Result<Tagged, UpstreamError> {
    let mut pending = Zeroizing::new(b"P3 LOGIN ".to_vec());
    for (i, arg) in [user, password].into_iter().enumerate() {
        if i > 0 {
            pending.push(b' ');
        }
        if let Some(q) = quoted(arg) {
            pending.extend_from_slice(&q);
            continue;
        }
        pending.extend_from_slice(
            format!("{{{}{}}}\r\n", arg.len(), if literal_plus { "+" } else { "" }).as_bytes(),
        );
        if !literal_plus {
            conn.send(&pending).await?;
            pending.clear();
            expect_continuation(conn, b"P3").await?;
        }
        pending.extend_from_slice(arg);
    }
    pending.extend_from_slice(b"\r\n");
    conn.send(&pending).await?;
    read_tagged(conn, b"P3").await
}

/// `quoted = DQUOTE *QUOTED-CHAR DQUOTE` when every byte is 7-bit TEXT-CHAR.
fn quoted(arg: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if arg
        .iter()
        .any(|&b| b == 0 || b == b'\r' || b == b'\n' || b >= 0x80)
    {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(arg.len() + 2));
    out.push(b'"');
    for &b in arg {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    Some(out)
}

fn has_capability(caps: &str, name: &str) -> bool {
    caps.split(' ').any(|c| c.eq_ignore_ascii_case(name))
}

/// The greeting must be `* OK`; `[CAPABILITY ...]` in it is remembered.
fn greeting_capabilities(line: &[u8]) -> Result<Option<String>, UpstreamError> {
    let text = String::from_utf8_lossy(line);
    let upper = text.to_ascii_uppercase();
    if upper.starts_with("* BYE") {
        return Err(UpstreamError::Unavailable(text.chars().take(200).collect()));
    }
    if !upper.starts_with("* OK") {
        return Err(UpstreamError::Protocol("unexpected greeting".into()));
    }
    Ok(response_code(&text[4..]).and_then(|c| c.strip_prefix("CAPABILITY ").map(str::to_owned)))
}

/// The `[...]` response code at the start of a response text.
fn response_code(text: &str) -> Option<&str> {
    let t = text.trim_start();
    let inner = t.strip_prefix('[')?;
    let end = inner.find(']')?;
    Some(&inner[..end])
}

/// Reads responses until the one tagged `tag`, skipping untagged ones (and
/// any literals they carry).
async fn read_tagged(conn: &mut Connection, tag: &[u8]) -> Result<Tagged, UpstreamError> {
    loop {
        let line = read_response(conn).await?;
        if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(b" ")) {
            let text = String::from_utf8_lossy(rest).into_owned();
            let (status, after) = text.split_once(' ').unwrap_or((text.as_str(), ""));
            let status = status.to_ascii_uppercase();
            let code = response_code(after).map(str::to_owned);
            let text = match code.as_ref() {
                Some(c) => after.trim_start()[c.len() + 2..].trim_start().to_owned(),
                None => after.to_owned(),
            };
            return Ok(Tagged {
                ok: status == "OK",
                bad: status == "BAD",
                code,
                text,
            });
        }
        check_untagged(&line)?;
    }
}

/// Like [`read_tagged`], keeping the `* CAPABILITY` line's contents.
async fn read_capability(conn: &mut Connection, tag: &[u8]) -> Result<Option<String>, UpstreamError> {
    let mut caps = None;
    loop {
        let line = read_response(conn).await?;
        if line.len() > 13 && line[..13].eq_ignore_ascii_case(b"* CAPABILITY ") {
            caps = Some(String::from_utf8_lossy(&line[13..]).into_owned());
            continue;
        }
        if line.starts_with(tag) && line.get(tag.len()) == Some(&b' ') {
            return Ok(caps);
        }
        check_untagged(&line)?;
    }
}

async fn expect_continuation(conn: &mut Connection, tag: &[u8]) -> Result<(), UpstreamError> {
    loop {
        let line = read_response(conn).await?;
        if line.starts_with(b"+") {
            return Ok(());
        }
        if line.starts_with(tag) {
            return Err(UpstreamError::Protocol(
                "command refused instead of a continuation".into(),
            ));
        }
        check_untagged(&line)?;
    }
}

fn check_untagged(line: &[u8]) -> Result<(), UpstreamError> {
    if line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"* BYE") {
        return Err(UpstreamError::Unavailable(
            String::from_utf8_lossy(&line[5..])
                .trim()
                .chars()
                .take(200)
                .collect(),
        ));
    }
    if !line.starts_with(b"* ") {
        return Err(UpstreamError::Protocol("unexpected response".into()));
    }
    Ok(())
}

/// One response line; a line ending in a literal announcement `{n}` has its
/// literal skipped and continues on the next line.
async fn read_response(conn: &mut Connection) -> Result<Vec<u8>, UpstreamError> {
    let mut line = conn.read_line().await?;
    while let Some(n) = trailing_literal(&line) {
        conn.skip(n).await?;
        let more = conn.read_line().await?;
        line.extend_from_slice(&more);
        if line.len() > crate::upstream::MAX_UPSTREAM_LINE {
            return Err(UpstreamError::Protocol("response too long".into()));
        }
    }
    Ok(line)
}

fn trailing_literal(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests;
