//! The replies the proxy itself gives SMTP clients, each with its RFC 3463
//! enhanced status code, in one place so the front-end, the guard, the
//! session, the listener, the tests and the README agree.
//!
//! Login refusals, RFC 4954 §6 with RFC 3463 / RFC 5248 enhanced codes:
//! `535 5.7.8` credentials invalid, `534 5.7.9` mechanism too weak (the
//! reply Google gives when an application-specific password is required),
//! `454 4.7.0` temporary authentication failure, and `550 5.7.1` (RFC 3463
//! X.7.1 "not authorized") for a refusal no other password would change.

use super::parse::Invalid;
use crate::access::policy::DenyReason;
use crate::protocol::Protocol;

/// `code SP text CRLF`, for a single-line reply; `text` starts with the
/// enhanced status code.
pub fn line(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// A multi-line reply (RFC 5321 §4.2.1): `code-line` for all but the last,
/// `code SP line` for the last.
pub fn multiline(code: u16, lines: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        out.extend_from_slice(format!("{code}{sep}{l}\r\n").as_bytes());
    }
    out
}

/// The `220` greeting (RFC 5321 §4.2, §3.1).
pub fn greeting(hostname: &str) -> Vec<u8> {
    line(&format!("220 {hostname} ESMTP PEC mail proxy ready"))
}

/// The reply to `HELO`.
pub fn helo(hostname: &str) -> Vec<u8> {
    line(&format!("250 {hostname}"))
}

/// A SASL server challenge (RFC 4954 §4): `334 SP base64 CRLF`.
pub fn challenge(challenge: &str) -> Vec<u8> {
    line(&format!("334 {challenge}"))
}

/// The reply to a line that is not a valid command.
pub fn invalid_command(invalid: Invalid) -> Vec<u8> {
    match invalid {
        Invalid::Arguments(verb) => line(&format!("501 5.5.4 Syntax: {}", verb.syntax())),
        Invalid::Syntax(why) => line(&format!("500 5.5.2 Syntax error: {why}")),
    }
}

pub const OK: &str = "250 2.0.0 Ok";
pub const BYE: &str = "221 2.0.0 Bye";
pub const HELP: &str = "214 2.0.0 See RFC 5321; submission needs EHLO, STARTTLS or TLS, AUTH";
pub const READY_FOR_TLS: &str = "220 2.0.0 Ready to start TLS";
pub const AUTH_OK: &str = "235 2.7.0 Authentication successful";
pub const START_DATA: &str = "354 End data with <CR><LF>.<CR><LF>";

pub const AUTH_REQUIRED: &str = "530 5.7.0 Authentication required";
pub const STARTTLS_FIRST: &str = "530 5.7.0 Must issue a STARTTLS command first";
/// RFC 4954 §6: no TLS on offer here at all.
pub const ENCRYPTION_REQUIRED: &str = "538 5.7.11 Encryption required for requested authentication mechanism";
pub const AUTH_CANCELLED: &str = "501 5.7.0 Authentication cancelled";
pub const BAD_BASE64: &str = "501 5.5.2 Invalid base64 data";
pub const BAD_SASL: &str = "501 5.5.2 Malformed authentication data";
pub const AUTH_LINE_TOO_LONG: &str = "500 5.5.6 Authentication Exchange line is too long";
pub const UNKNOWN_MECHANISM: &str = "504 5.5.4 Unrecognized authentication type";
pub const ALREADY_AUTHENTICATED: &str = "503 5.5.1 Already authenticated";
pub const EHLO_FIRST: &str = "503 5.5.1 Send EHLO first";
pub const TLS_ACTIVE: &str = "503 5.5.1 TLS already active";
pub const NO_STARTTLS: &str = "502 5.5.1 STARTTLS is not offered here";
pub const NOT_IMPLEMENTED: &str = "502 5.5.1 Command not implemented";
pub const VRFY_DISABLED: &str = "502 5.5.1 VRFY and EXPN are disabled";
pub const UNKNOWN_COMMAND: &str = "500 5.5.1 Command unrecognized";
/// RFC 5321 §4.2.3 lists "command line too long" under 500; X.5.2 is the
/// syntax error code (Dovecot submission answers the same).
pub const LINE_TOO_LONG: &str = "500 5.5.2 Line too long";
pub const NEED_MAIL: &str = "503 5.5.1 Error: need MAIL command";
pub const NO_VALID_RECIPIENTS: &str = "554 5.5.1 Error: no valid recipients";
pub const TOO_MANY_FAILURES: &str = "421 4.7.0 Too many failed authentication attempts, closing connection";
pub const IDLE_TIMEOUT: &str = "421 4.4.2 Idle timeout, closing connection";
pub const UPSTREAM_UNAVAILABLE: &str = "454 4.7.0 Temporary authentication failure, try again later";
pub const UPSTREAM_NOT_RESPONDING: &str = "454 4.4.1 Mail server not responding, try again later";
/// The upstream answered our DATA with neither 354 nor a refusal.
pub const DATA_NOT_TAKEN: &str = "451 4.3.0 The mail server did not take the message, try again later";
pub const UPSTREAM_LOST: &str = "421 4.4.2 Connection to the mail server lost, closing connection";

// PEC submission checks (RFC 6109 §3.1.1).
pub const SENDER_NOT_OWNED: &str = "553 5.7.1 Sender address not owned by the authenticated mailbox";
pub const FROM_MISMATCH: &str =
    "550 5.7.1 The From: header must equal the envelope sender (PEC rule, RFC 6109 3.1.1)";
pub const BCC_PRESENT: &str =
    "550 5.7.1 A Bcc: header is not allowed in certified mail (PEC rule, RFC 6109 3.1.1)";
pub const SENDER_FIELD_MISMATCH: &str = "550 5.7.1 Sender:, Resent-From: and Resent-Sender: must be the authenticated mailbox (PEC rule, RFC 6109 3.1.1)";
pub const NO_TO: &str = "550 5.7.1 A To: header is required in certified mail (PEC rule, RFC 6109 3.1.1)";
pub const RECIPIENTS_MISMATCH: &str = "550 5.7.1 Recipients must be exactly the To: and Cc: addresses, no blind copies (PEC rule, RFC 6109 3.1.1)";
pub const RECIPIENTS_UNREADABLE: &str =
    "550 5.7.1 To: and Cc: must be RFC 5322 address lists to check the recipients (PEC rule, RFC 6109 3.1.1)";
pub const RESENT_RECIPIENTS: &str = "550 5.7.1 Resent-To:, Resent-Cc: and Resent-Bcc: are not allowed in certified mail (PEC rule, RFC 6109 3.1.1)";
pub const MALFORMED_HEADER_FIELD: &str =
    "550 5.6.0 A header line is neither a field nor a continuation (RFC 5322 2.2), message refused";
/// RFC 5321 §4.5.3.1.10: too many recipients is `452`, and a client sends
/// the rest in another transaction.
pub const TOO_MANY_RECIPIENTS: &str = "452 4.5.3 Too many recipients";
pub const HEADER_LINE_TOO_LONG: &str = "550 5.6.0 Header line too long (RFC 5322 2.1.1), message refused";
pub const HEADER_TOO_LARGE: &str = "552 5.3.4 Message header block too large to check, message refused";
pub const TOO_BIG: &str = "552 5.3.4 Message size times recipients exceeds the fixed maximum message size";
pub const RATE_LIMITED: &str = "450 4.7.1 Too many messages from this mailbox, try again in a minute";

/// The reply line that refuses a login for `reason`.
pub fn denied(reason: DenyReason) -> String {
    let text = reason.text(Protocol::Smtp);
    match reason {
        DenyReason::UnknownOrBadPassword => "535 5.7.8 Authentication credentials invalid".into(),
        DenyReason::AppPasswordExpired => format!("535 5.7.8 {text}"),
        DenyReason::AppPasswordRequired => format!("534 5.7.9 {text}"),
        DenyReason::ProtocolDisabled | DenyReason::NotPermitted | DenyReason::CollaboratorSuspended => {
            format!("550 5.7.1 {text}")
        }
        DenyReason::StoreUnavailable => "454 4.7.0 Temporary authentication failure".into(),
        DenyReason::TooManyFailures => format!("454 4.7.0 {text}"),
    }
}

// Written as they are by the session and the listener, CRLF included.
// RFC 5321 §3.8: a 421 closes the session.

/// On drain (SIGTERM), before login: RFC 3463 X.3.2, shutting down, try
/// again later.
pub const SHUTDOWN: &[u8] = b"421 4.3.2 Service shutting down\r\n";
/// When the login deadline passes.
pub const LOGIN_TIMEOUT: &[u8] = b"421 4.4.2 Timeout waiting for authentication, closing connection\r\n";
/// A logged-in session whose access was revoked: RFC 5321 §3.8 421 (the
/// server closes), RFC 3463 X.7.0 (a security or policy status).
pub const REVOKED: &[u8] = b"421 4.7.0 Access to this mailbox was revoked, closing connection\r\n";
/// A logged-in session past `limits.max_session_secs`: RFC 3463 X.4.2,
/// the connection is dropped; the client connects again.
pub const SESSION_LIFETIME: &[u8] = b"421 4.4.2 Session time limit reached, closing connection\r\n";
/// After `max_prelogin_errors` refused commands: 4.7.0 as for the
/// per-address refusal.
pub const TOO_MANY_ERRORS: &[u8] = b"421 4.7.0 Too many invalid commands, closing connection\r\n";
/// Over a per-client connection limit: RFC 5321 §3.1 / §4.2.2, 421
/// instead of the greeting; RFC 3463 4.7.0.
pub const TOO_MANY_CONNECTIONS: &[u8] = b"421 4.7.0 Too many connections from your address\r\n";

/// The extensions a submission client is offered (RFC 5321 §4.1.1.1).
#[derive(Debug, Clone, Copy)]
pub struct Extensions {
    pub size: u64,
    pub starttls: bool,
    pub auth: bool,
    pub smtputf8: bool,
}

/// The reply to `EHLO`: our host name, then our own extension list, never
/// the upstream's (which would offer XCLIENT, or STARTTLS to the proxy).
pub fn ehlo(hostname: &str, ext: Extensions) -> Vec<u8> {
    let mut lines = vec![
        hostname.to_owned(),
        "PIPELINING".to_owned(),
        format!("SIZE {}", ext.size),
        "8BITMIME".to_owned(),
        "ENHANCEDSTATUSCODES".to_owned(),
    ];
    if ext.smtputf8 {
        lines.push("SMTPUTF8".to_owned());
    }
    if ext.starttls {
        lines.push("STARTTLS".to_owned());
    }
    if ext.auth {
        lines.push("AUTH PLAIN LOGIN".to_owned());
    }
    multiline(250, &lines)
}

#[cfg(test)]
mod tests;
