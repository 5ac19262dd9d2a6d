//! The replies the proxy itself gives POP3 clients before and at login, in
//! one place so the front-end, the session, the listener and the tests
//! agree. Each is a whole line without its CRLF, written with [`line`].
//!
//! Response codes, RFC 3206 §4 (RFC 2449 §8): `[AUTH]` (a problem with the
//! credentials: clients ask for a new password), `[SYS/TEMP]` (temporary
//! system failure, retry), `[SYS/PERM]` (will not succeed by retrying or by
//! another password: clients show the text instead of prompting for a
//! password again), `[IN-USE]` (RFC 2449 §8.1.1).

use crate::access::policy::DenyReason;
use crate::frontend::sasl::SaslError;
use crate::protocol::Protocol;

/// `line CRLF`
pub fn line(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// `+OK [text] CRLF`
pub fn ok(text: &str) -> Vec<u8> {
    if text.is_empty() {
        line("+OK")
    } else {
        line(&format!("+OK {text}"))
    }
}

/// What the connection offers before login, for `CAPA`.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// `STLS` is on offer (a plain connection on an STLS listener).
    pub stls: bool,
    /// A login is allowed now (TLS, or plain text allowed).
    pub login: bool,
}

/// The CAPA list (RFC 2449 §6): only what this connection offers now.
pub fn capabilities(caps: Capabilities) -> Vec<u8> {
    let mut out = ok("Capability list follows");
    if caps.stls {
        out.extend_from_slice(b"STLS\r\n");
    }
    if caps.login {
        out.extend_from_slice(b"USER\r\nSASL PLAIN LOGIN\r\n");
    }
    out.extend_from_slice(b"RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n.\r\n");
    out
}

/// The mechanism list, as Dovecot answers a bare `AUTH`.
pub const MECHANISMS: &[u8] = b"+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n";

pub const LOGGING_OUT: &str = "+OK Logging out";
/// The go-ahead: sent in clear, then the handshake.
pub const BEGIN_TLS: &str = "+OK Begin TLS negotiation now";
pub const TLS_ACTIVE: &str = "-ERR TLS is already active";
pub const NO_STLS: &str = "-ERR STLS is not offered here";

/// RFC 2595 §4 / Dovecot: no password in clear unless the operator allowed it.
pub const PLAINTEXT_DISABLED: &str =
    "-ERR [AUTH] Plaintext authentication is disabled: use STLS or the POP3S port";
pub const USER_TOO_LONG: &str = "-ERR User name too long";
pub const SEND_USER_FIRST: &str = "-ERR Send USER first";
pub const UNKNOWN_MECHANISM: &str = "-ERR Unsupported authentication mechanism";
/// APOP needs the cleartext password on the server side: never offered.
pub const APOP: &str = "-ERR APOP is not supported: use USER/PASS or AUTH PLAIN over TLS";

/// A SASL server challenge (RFC 5034 §4): `continue-req = "+" SP [base64] CRLF`.
pub fn challenge(challenge: &str) -> Vec<u8> {
    line(&format!("+ {challenge}"))
}

/// RFC 5034 §4: a cancelled exchange is answered with -ERR.
pub const AUTH_CANCELLED: &str = "-ERR Authentication cancelled";

/// SASL data that decoded to nothing acceptable.
pub fn sasl_failed(error: &SaslError) -> String {
    format!("-ERR Authentication failed: {error}")
}

/// An AUTH exchange line that cannot be one.
pub fn invalid_auth_line(why: &str) -> String {
    format!("-ERR Invalid authentication exchange: {why}")
}

pub const UNKNOWN_COMMAND: &str = "-ERR Unknown command";

/// A TRANSACTION state command (RFC 1939 §5), named so a confused
/// client's log says what went wrong.
pub fn not_permitted(command: &str) -> String {
    format!("-ERR Command {command} is not permitted before login")
}

/// A line that cannot be a command.
pub fn invalid_command(why: &str) -> String {
    format!("-ERR Invalid command: {why}")
}

pub const LINE_TOO_LONG: &str = "-ERR Command line too long";

/// The login could not be carried out now: SYS/TEMP, the client may come
/// back later.
pub const UNAVAILABLE: &str = "-ERR [SYS/TEMP] The mail server is not available now. Try again later.";

/// Another session holds the mailbox (RFC 2449 §8.1.1); `text` is the
/// server's.
pub fn in_use(text: &str) -> String {
    format!("-ERR [IN-USE] {text}")
}

/// The `-ERR` line that refuses a login for `reason`.
pub fn denied(reason: DenyReason) -> String {
    let code = match reason {
        DenyReason::UnknownOrBadPassword
        | DenyReason::AppPasswordRequired
        | DenyReason::AppPasswordExpired => "AUTH",
        DenyReason::ProtocolDisabled | DenyReason::NotPermitted | DenyReason::CollaboratorSuspended => {
            "SYS/PERM"
        }
        DenyReason::StoreUnavailable | DenyReason::TooManyFailures => "SYS/TEMP",
    };
    format!("-ERR [{code}] {}", reason.text(Protocol::Pop3))
}

/// The `+OK` to a login.
pub const LOGGED_IN: &[u8] = b"+OK Logged in.\r\n";

// Written as they are by the session and the listener, CRLF included.
// POP3 has no unsolicited replies: each is a last `-ERR`.

/// On drain (SIGTERM), before login: SYS/TEMP, the client may come back later.
pub const SHUTDOWN: &[u8] = b"-ERR [SYS/TEMP] Server shutting down\r\n";
/// When the login deadline passes.
pub const LOGIN_TIMEOUT: &[u8] = b"-ERR Disconnected: login timeout\r\n";
/// A logged-in session whose access was revoked: RFC 3206 AUTH, a problem
/// with the user's credentials (not worth retrying as they are).
pub const REVOKED: &[u8] = b"-ERR [AUTH] Access to this mailbox was revoked\r\n";
/// A logged-in session past `limits.max_session_secs`: SYS/TEMP, the client
/// may log in again at once.
pub const SESSION_LIFETIME: &[u8] = b"-ERR [SYS/TEMP] Session time limit reached, please log in again\r\n";
/// After `max_prelogin_errors` refused commands.
pub const TOO_MANY_ERRORS: &[u8] = b"-ERR Too many invalid commands\r\n";
/// Over a per-client connection limit: RFC 2449 §8.3 greeting -ERR, RFC
/// 3206 SYS/TEMP.
pub const TOO_MANY_CONNECTIONS: &[u8] = b"-ERR [SYS/TEMP] Too many connections from your address\r\n";

#[cfg(test)]
mod tests;
