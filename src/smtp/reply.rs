//! The replies the proxy itself gives SMTP clients, each with its RFC 3463
//! enhanced status code, in one place so the front-end, the guard, the
//! tests and the README agree.

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

pub const OK: &str = "250 2.0.0 Ok";
pub const BYE: &str = "221 2.0.0 Bye";
pub const HELP: &str = "214 2.0.0 See RFC 5321; submission needs EHLO, STARTTLS or TLS, AUTH";
pub const READY_FOR_TLS: &str = "220 2.0.0 Ready to start TLS";
pub const AUTH_OK: &str = "235 2.7.0 Authentication successful";
pub const START_DATA: &str = "354 End data with <CR><LF>.<CR><LF>";

pub const AUTH_REQUIRED: &str = "530 5.7.0 Authentication required";
pub const STARTTLS_FIRST: &str = "530 5.7.0 Must issue a STARTTLS command first";
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
pub const LOGIN_TIMEOUT: &str = "421 4.4.2 Timeout waiting for authentication, closing connection";
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
pub const HEADER_LINE_TOO_LONG: &str = "550 5.6.0 Header line too long (RFC 5322 2.1.1), message refused";
pub const HEADER_TOO_LARGE: &str = "552 5.3.4 Message header block too large to check, message refused";
pub const TOO_BIG: &str = "552 5.3.4 Message size times recipients exceeds the fixed maximum message size";
pub const RATE_LIMITED: &str = "450 4.7.1 Too many messages from this mailbox, try again in a minute";

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
