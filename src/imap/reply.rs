//! The replies the proxy itself gives IMAP clients before and at login, in
//! one place so the front-end, the session, the listener and the tests
//! agree (RFC 3501 §7.1 status responses).
//!
//! Response codes, RFC 5530 §3: `AUTHENTICATIONFAILED` (credentials, no
//! detail), `AUTHORIZATIONFAILED` (authenticated, but may not act as
//! requested), `EXPIRED` (the passphrase is no longer valid; get a new
//! one), `CONTACTADMIN` (the user should contact an administrator, here the
//! mailbox owner), `UNAVAILABLE` (temporary failure of a subsystem),
//! `PRIVACYREQUIRED`, `CANNOT`, `INUSE`; RFC 7888 §4 `TOOBIG`.

use crate::access::policy::DenyReason;
use crate::frontend::sasl::SaslError;
use crate::protocol::Protocol;

/// A tagged status response: `tag SP status SP ["[" code "]" SP] text
/// CRLF`, the tag being the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tagged {
    pub status: &'static str,
    pub code: Option<&'static str>,
    pub text: &'static str,
}

impl Tagged {
    const fn ok(text: &'static str) -> Self {
        Self {
            status: "OK",
            code: None,
            text,
        }
    }

    const fn no(code: &'static str, text: &'static str) -> Self {
        Self {
            status: "NO",
            code: Some(code),
            text,
        }
    }

    const fn bad(text: &'static str) -> Self {
        Self {
            status: "BAD",
            code: None,
            text,
        }
    }

    /// The reply to the command tagged `tag`.
    pub fn to(&self, tag: &[u8]) -> Vec<u8> {
        tagged(tag, self.status, self.code, self.text)
    }
}

/// `tag SP status SP ["[" code "]" SP] text CRLF`
fn tagged(tag: &[u8], status: &str, code: Option<&str>, text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(tag.len() + text.len() + 32);
    out.extend_from_slice(tag);
    out.push(b' ');
    out.extend_from_slice(status.as_bytes());
    out.push(b' ');
    if let Some(code) = code {
        out.push(b'[');
        out.extend_from_slice(code.as_bytes());
        out.extend_from_slice(b"] ");
    }
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// An untagged line or a continuation: `text CRLF`.
pub fn line(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// What the connection offers before login, for the greeting and
/// `CAPABILITY`.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// `STARTTLS` is on offer (a plain connection on a STARTTLS listener).
    pub starttls: bool,
    /// A login is allowed now (TLS, or plain text allowed): `AUTH=`
    /// mechanisms, else RFC 3501 `LOGINDISABLED`.
    pub login: bool,
}

impl Capabilities {
    /// The capability list: only what this connection really offers now.
    pub fn list(self) -> String {
        let mut caps = String::from("IMAP4rev1 SASL-IR ID LITERAL+");
        if self.starttls {
            caps.push_str(" STARTTLS");
        }
        if self.login {
            caps.push_str(" AUTH=PLAIN AUTH=LOGIN");
        } else {
            caps.push_str(" LOGINDISABLED");
        }
        caps
    }
}

/// The untagged greeting, with capabilities (RFC 3501 §7.1, RFC 2221
/// CAPABILITY code); `text` is the operator's.
pub fn greeting(caps: Capabilities, text: &str) -> Vec<u8> {
    line(&format!("* OK [CAPABILITY {}] {text}", caps.list()))
}

/// The reply to `CAPABILITY`.
pub fn capability(tag: &[u8], caps: Capabilities) -> Vec<u8> {
    let mut out = line(&format!("* CAPABILITY {}", caps.list()));
    out.extend(CAPABILITY_COMPLETED.to(tag));
    out
}

pub const CAPABILITY_COMPLETED: Tagged = Tagged::ok("Capability completed.");
pub const NOOP_COMPLETED: Tagged = Tagged::ok("NOOP completed.");
pub const LOGGING_OUT: &str = "* BYE Logging out";
pub const LOGOUT_COMPLETED: Tagged = Tagged::ok("Logout completed.");
/// RFC 2971: the proxy names itself, never the upstream.
pub const ID: &str = "* ID (\"name\" \"pec-proxy\")";
pub const ID_COMPLETED: Tagged = Tagged::ok("ID completed.");

/// The go-ahead: sent in clear, then the handshake.
pub const BEGIN_TLS: Tagged = Tagged::ok("Begin TLS negotiation now.");
pub const TLS_ACTIVE: Tagged = Tagged::bad("TLS is already active.");
pub const NO_STARTTLS: Tagged = Tagged::bad("STARTTLS is not offered here.");

/// RFC 3501 §6.2.3: with LOGINDISABLED the server answers LOGIN with NO.
pub const PRIVACY_REQUIRED: Tagged = Tagged::no(
    "PRIVACYREQUIRED",
    "Plaintext authentication is disabled: use STARTTLS or the IMAPS port.",
);
pub const UNKNOWN_MECHANISM: Tagged = Tagged::no("CANNOT", "Unsupported authentication mechanism.");
/// RFC 3501 §6.2.2: a cancelled exchange is answered with BAD.
pub const AUTH_CANCELLED: Tagged = Tagged::bad("Authentication cancelled.");
pub const BAD_BASE64: Tagged = Tagged::bad("Invalid base64 in authentication exchange.");

/// A SASL server challenge (RFC 3501 §7.5): `+ SP base64 CRLF`.
pub fn challenge(challenge: &str) -> Vec<u8> {
    line(&format!("+ {challenge}"))
}

/// SASL data that decoded to nothing acceptable.
pub fn sasl_failed(tag: &[u8], error: &SaslError) -> Vec<u8> {
    tagged(tag, "BAD", None, &format!("Authentication failed: {error}."))
}

pub const UNKNOWN_COMMAND: Tagged = Tagged::bad("Unknown command.");

/// An IMAP command that is valid after login, named so a confused
/// client's log says what went wrong.
pub fn not_permitted(tag: &[u8], command: &str) -> Vec<u8> {
    tagged(
        tag,
        "BAD",
        None,
        &format!("Command {command} is not permitted before login."),
    )
}

/// A line that cannot be a command: with its tag when it has one.
pub fn invalid_command(tag: Option<&[u8]>, why: &str) -> Vec<u8> {
    let text = format!("Invalid command: {why}.");
    match tag {
        Some(tag) => tagged(tag, "BAD", None, &text),
        None => line(&format!("* BAD {text}")),
    }
}

pub const LINE_TOO_LONG: &str = "* BYE Command line too long";
pub const READY_FOR_LITERAL: &str = "+ Ready for literal data";
pub const LITERAL_TOO_BIG: Tagged = Tagged {
    status: "BAD",
    code: Some("TOOBIG"),
    text: "Literal too large.",
};
/// A command whose literals would take it over its byte budget, or past
/// the number of literals one command may carry before login.
pub const COMMAND_TOO_BIG: Tagged = Tagged {
    status: "BAD",
    code: Some("TOOBIG"),
    text: "Command too large.",
};
/// [`COMMAND_TOO_BIG`] for a non-synchronising literal, which is on its way
/// (RFC 7888 §4): refuse and close.
pub const COMMAND_TOO_BIG_BYE: &str = "* BYE Command too large";
/// A literal announced in a command that takes none before login.
pub const LITERAL_NOT_PERMITTED: Tagged = Tagged::bad("Command is not permitted before login.");
/// RFC 7888 §4: a non-synchronising literal too large to take is on its
/// way and cannot be told apart from the next command: refuse and close.
pub const LITERAL_TOO_BIG_BYE: &str = "* BYE Literal too large";

/// A refused login: `tag NO [code] text`, `code` saying why (see
/// [`denied`]).
pub fn login_failed(tag: &[u8], code: &str, text: &str) -> Vec<u8> {
    tagged(tag, "NO", Some(code), text)
}

/// After `max_login_failures` failed logins.
pub const TOO_MANY_FAILURES: &str = "* BYE Too many invalid authentication attempts";

/// A login that could not be carried out now (the account store or the
/// upstream): not the client's fault, it may retry.
pub fn unavailable(tag: &[u8], text: &str) -> Vec<u8> {
    tagged(tag, "NO", Some("UNAVAILABLE"), text)
}

/// The text of [`unavailable`].
pub const UNAVAILABLE: &str = "The mail server is not available now. Try again later.";

/// Another session holds the mailbox; `text` is the server's.
pub fn in_use(tag: &[u8], text: &str) -> Vec<u8> {
    tagged(tag, "NO", Some("INUSE"), text)
}

/// The response code and the text of the tagged `NO` that refuses a login
/// for `reason`: `tag NO [CODE] text`.
pub fn denied(reason: DenyReason) -> (&'static str, String) {
    let code = match reason {
        DenyReason::UnknownOrBadPassword | DenyReason::AppPasswordRequired => "AUTHENTICATIONFAILED",
        DenyReason::AppPasswordExpired => "EXPIRED",
        DenyReason::ProtocolDisabled | DenyReason::NotPermitted => "AUTHORIZATIONFAILED",
        DenyReason::CollaboratorSuspended => "CONTACTADMIN",
        DenyReason::StoreUnavailable | DenyReason::TooManyFailures => "UNAVAILABLE",
    };
    (code, reason.text(Protocol::Imap))
}

/// The tagged `OK` to a login, with the capabilities the server announced
/// after it (RFC 3501 §7.1: clients then need not ask again).
pub fn logged_in(tag: &[u8], capabilities: Option<&str>) -> Vec<u8> {
    let mut reply = tag.to_vec();
    match capabilities {
        Some(caps) => reply.extend_from_slice(format!(" OK [CAPABILITY {caps}] Logged in\r\n").as_bytes()),
        None => reply.extend_from_slice(b" OK Logged in\r\n"),
    }
    reply
}

// Written as they are by the session and the listener, CRLF included.

/// On drain (SIGTERM), before login.
pub const SHUTDOWN: &[u8] = b"* BYE Server shutting down\r\n";
/// When the login deadline passes.
pub const LOGIN_TIMEOUT: &[u8] = b"* BYE Disconnected: login timeout\r\n";
/// A logged-in session whose access was revoked (a collaborator
/// suspended, an app password revoked, a protocol switched off...):
/// RFC 3501 §7.1.5 BYE, RFC 5530 UNAVAILABLE.
pub const REVOKED: &[u8] = b"* BYE [UNAVAILABLE] Access to this mailbox was revoked\r\n";
/// A logged-in session past `limits.max_session_secs`: the client logs in again.
pub const SESSION_LIFETIME: &[u8] =
    b"* BYE [UNAVAILABLE] Session time limit reached, please log in again\r\n";
/// After `max_prelogin_errors` refused commands.
pub const TOO_MANY_ERRORS: &[u8] = b"* BYE Too many invalid commands\r\n";
/// Over a per-client connection limit: RFC 3501 §7.1.5 BYE as a greeting,
/// RFC 5530 UNAVAILABLE.
pub const TOO_MANY_CONNECTIONS: &[u8] = b"* BYE [UNAVAILABLE] Too many connections from your address\r\n";

// After login, from the guard of sessions that may not change everything
// (`imap/guard.rs`). RFC 5530 §3: `NOPERM`, the access control does not
// allow the operation.

/// A command refused to a collaborator without `write`.
pub const GUARD_READ_ONLY: Tagged = Tagged::no(
    "NOPERM",
    "Read-only access: this command would change the mailbox.",
);
/// A command refused where messages are kept on the server.
pub const GUARD_KEEP_ON_SERVER: Tagged = Tagged::no(
    "NOPERM",
    "This mailbox is shared: messages are kept on the server.",
);
/// A line other than `DONE` while idling (RFC 2177 §3).
pub const GUARD_EXPECTED_DONE: Tagged = Tagged::bad("Expected DONE.");

#[cfg(test)]
mod tests;
