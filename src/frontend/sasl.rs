//! SASL mechanisms the proxy accepts from clients: PLAIN (RFC 4616) and the
//! de-facto LOGIN mechanism (draft-murchison-sasl-login). Both need the
//! cleartext password on our side, which is why they are the only ones offered.
//!
//! Pure code shared by the IMAP, POP3 and SMTP front-ends: base64 in,
//! [`Credentials`] out.

pub use crate::access::Credentials;
use crate::secret::Secret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use thiserror::Error;

/// Upper bound on one decoded SASL field (authzid, authcid or password).
/// RFC 4616 §2 allows up to 255 octets per field; we accept more for long
/// passwords but stay far below any line limit.
pub const MAX_FIELD_BYTES: usize = 1024;

/// The SASL mechanisms we offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    /// Case-insensitive lookup of a mechanism name as sent by a client.
    pub fn from_name(name: &[u8]) -> Option<Self> {
        if name.eq_ignore_ascii_case(b"PLAIN") {
            Some(Mechanism::Plain)
        } else if name.eq_ignore_ascii_case(b"LOGIN") {
            Some(Mechanism::Login)
        } else {
            None
        }
    }

    /// Metric label and log name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Plain => "plain",
            Mechanism::Login => "login",
        }
    }
}

/// Why a SASL exchange failed. Never carries the offending bytes: they may be a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SaslError {
    #[error("invalid base64")]
    Base64,
    #[error("malformed PLAIN message")]
    MalformedPlain,
    #[error("empty user name")]
    EmptyUser,
    #[error("credentials too long")]
    TooLong,
    /// A NUL in a LOGIN user name or password: RFC 4616 §2 forbids it in
    /// `authcid` and `passwd`, and in the PLAIN message the proxy builds
    /// upstream it would move the field boundaries.
    #[error("NUL in a user name or password")]
    Nul,
    #[error("authentication cancelled by the client")]
    Cancelled,
}

/// Decodes one client response line: `*` cancels (RFC 4422 §3.5), `=` is an
/// empty response (RFC 4959, RFC 5034, RFC 4954), anything else is base64.
pub fn decode_response(line: &[u8]) -> Result<Vec<u8>, SaslError> {
    match line {
        b"*" => Err(SaslError::Cancelled),
        b"=" => Ok(Vec::new()),
        b64 => {
            if b64.len() > 4 * MAX_FIELD_BYTES {
                return Err(SaslError::TooLong);
            }
            STANDARD.decode(b64).map_err(|_| SaslError::Base64)
        }
    }
}

/// Encodes a server challenge or a client response as base64.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// `message = [authzid] UTF8NUL authcid UTF8NUL passwd` (RFC 4616 §2), already base64-decoded.
pub fn parse_plain(message: &[u8]) -> Result<Credentials, SaslError> {
    let mut parts = message.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SaslError::MalformedPlain);
    };
    if password.contains(&0) {
        return Err(SaslError::MalformedPlain);
    }
    if authcid.is_empty() {
        return Err(SaslError::EmptyUser);
    }
    if authzid.len() > MAX_FIELD_BYTES || authcid.len() > MAX_FIELD_BYTES || password.len() > MAX_FIELD_BYTES
    {
        return Err(SaslError::TooLong);
    }
    Ok(Credentials {
        authzid: (!authzid.is_empty()).then(|| authzid.to_vec()),
        authcid: authcid.to_vec(),
        password: Secret::from_slice(password),
    })
}

/// Builds a PLAIN message (not yet base64) for logging in upstream.
pub fn build_plain(authzid: &[u8], authcid: &[u8], password: &Secret) -> Secret {
    let mut msg = Vec::with_capacity(authzid.len() + authcid.len() + password.len() + 2);
    msg.extend_from_slice(authzid);
    msg.push(0);
    msg.extend_from_slice(authcid);
    msg.push(0);
    msg.extend_from_slice(password.expose());
    let b64 = STANDARD.encode(&msg);
    zeroize::Zeroize::zeroize(&mut msg);
    Secret::new(b64.into_bytes())
}

/// The challenges of the LOGIN mechanism, base64 of "Username:" and "Password:".
pub const LOGIN_USERNAME_CHALLENGE: &str = "VXNlcm5hbWU6";
pub const LOGIN_PASSWORD_CHALLENGE: &str = "UGFzc3dvcmQ6";

/// The state of a SASL exchange with a client, independent of the protocol
/// that frames it. Each step consumes the state and returns the next one.
#[derive(Debug)]
pub enum Exchange {
    /// PLAIN without an initial response: waiting for the client's message.
    PlainAwaitingResponse,
    /// LOGIN: waiting for the user name.
    LoginAwaitingUser,
    /// LOGIN: got the user name, waiting for the password.
    LoginAwaitingPassword { user: Vec<u8> },
}

/// What the front-end does after feeding one client line to an [`Exchange`].
#[derive(Debug)]
pub enum Step {
    /// Send this base64 challenge (possibly empty) and wait for the next line.
    Challenge(&'static str, Exchange),
    /// The exchange is complete.
    Done(Credentials),
}

impl Exchange {
    /// Starts an exchange. `initial` is the SASL-IR initial response, still base64
    /// (`=` for an empty one). Returns the first step.
    pub fn start(mechanism: Mechanism, initial: Option<&[u8]>) -> Result<Step, SaslError> {
        match (mechanism, initial) {
            (Mechanism::Plain, None) => Ok(Step::Challenge("", Exchange::PlainAwaitingResponse)),
            (Mechanism::Plain, Some(ir)) => Exchange::PlainAwaitingResponse.step(ir),
            (Mechanism::Login, None) => Ok(Step::Challenge(
                LOGIN_USERNAME_CHALLENGE,
                Exchange::LoginAwaitingUser,
            )),
            (Mechanism::Login, Some(ir)) => Exchange::LoginAwaitingUser.step(ir),
        }
    }

    /// Feeds one client response line (without CRLF).
    pub fn step(self, line: &[u8]) -> Result<Step, SaslError> {
        let decoded = decode_response(line)?;
        match self {
            Exchange::PlainAwaitingResponse => parse_plain(&decoded).map(Step::Done),
            Exchange::LoginAwaitingUser => {
                if decoded.is_empty() {
                    return Err(SaslError::EmptyUser);
                }
                if decoded.contains(&0) {
                    return Err(SaslError::Nul);
                }
                if decoded.len() > MAX_FIELD_BYTES {
                    return Err(SaslError::TooLong);
                }
                Ok(Step::Challenge(
                    LOGIN_PASSWORD_CHALLENGE,
                    Exchange::LoginAwaitingPassword { user: decoded },
                ))
            }
            Exchange::LoginAwaitingPassword { user } => {
                if decoded.len() > MAX_FIELD_BYTES {
                    return Err(SaslError::TooLong);
                }
                if decoded.contains(&0) {
                    return Err(SaslError::Nul);
                }
                Ok(Step::Done(Credentials {
                    authzid: None,
                    authcid: user,
                    password: Secret::new(decoded),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests;
