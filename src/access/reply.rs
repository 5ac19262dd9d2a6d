//! What a refused client is told, per protocol: one reply per [`DenyReason`].
//!
//! The wording is specific where the owner can act on it (a protocol
//! switched off, two-step verification on, an expired app password) and
//! deliberately vague where detail would help an attacker.
//!
//! Codes:
//! - IMAP, RFC 5530 §3: `AUTHENTICATIONFAILED` (credentials, no detail),
//!   `AUTHORIZATIONFAILED` (authenticated, but may not act as requested),
//!   `EXPIRED` (the passphrase is no longer valid; get a new one),
//!   `CONTACTADMIN` (the user should contact an administrator, here the
//!   mailbox owner), `UNAVAILABLE` (temporary failure of a subsystem).
//! - POP3, RFC 3206 §4: `[AUTH]` (a problem with the credentials: clients
//!   ask for a new password), `[SYS/TEMP]` (temporary system failure, retry),
//!   `[SYS/PERM]` (will not succeed by retrying or by another password:
//!   clients show the text instead of prompting for a password again).
//! - SMTP, RFC 4954 §6 with RFC 3463 / RFC 5248 enhanced codes:
//!   `535 5.7.8` credentials invalid, `534 5.7.9` mechanism too weak (the
//!   reply Google gives when an application-specific password is required),
//!   `454 4.7.0` temporary authentication failure, and `550 5.7.1` (RFC 3463
//!   X.7.1 "not authorized") for a refusal no other password would change.

use crate::access::policy::{Denial, DenyReason};
use crate::protocol::Protocol;

impl DenyReason {
    /// The text for a person, shared by the three protocols.
    fn text(self, protocol: Protocol) -> String {
        let p = protocol.display_name();
        match self {
            Self::UnknownOrBadPassword => "Authentication failed".into(),
            Self::ProtocolDisabled => format!("{p} access is disabled for this mailbox"),
            Self::AppPasswordRequired => "Two-step verification is on: use an app password".into(),
            Self::AppPasswordExpired => "This app password has expired: create a new one".into(),
            Self::CollaboratorSuspended => {
                "This collaborator account is suspended: ask the mailbox owner".into()
            }
            Self::NotPermitted => {
                format!("This collaborator account may not use {p} on this mailbox")
            }
            Self::StoreUnavailable => "Temporary failure, try again later".into(),
            Self::TooManyFailures => "Too many failed logins, try again later".into(),
        }
    }

    /// IMAP: the response code (RFC 5530) and the text for a tagged `NO`:
    /// `tag NO [CODE] text`.
    pub fn imap_reply(self) -> (&'static str, String) {
        let code = match self {
            Self::UnknownOrBadPassword | Self::AppPasswordRequired => "AUTHENTICATIONFAILED",
            Self::AppPasswordExpired => "EXPIRED",
            Self::ProtocolDisabled | Self::NotPermitted => "AUTHORIZATIONFAILED",
            Self::CollaboratorSuspended => "CONTACTADMIN",
            Self::StoreUnavailable | Self::TooManyFailures => "UNAVAILABLE",
        };
        (code, self.text(Protocol::Imap))
    }

    /// POP3: the whole `-ERR` line without CRLF (RFC 3206 codes).
    pub fn pop3_reply(self) -> String {
        let code = match self {
            Self::UnknownOrBadPassword | Self::AppPasswordRequired | Self::AppPasswordExpired => "AUTH",
            Self::ProtocolDisabled | Self::NotPermitted | Self::CollaboratorSuspended => "SYS/PERM",
            Self::StoreUnavailable | Self::TooManyFailures => "SYS/TEMP",
        };
        format!("-ERR [{code}] {}", self.text(Protocol::Pop3))
    }

    /// SMTP: the whole reply line without CRLF (RFC 4954 §6, RFC 3463).
    pub fn smtp_reply(self) -> String {
        match self {
            Self::UnknownOrBadPassword => "535 5.7.8 Authentication credentials invalid".into(),
            Self::AppPasswordExpired => format!("535 5.7.8 {}", self.text(Protocol::Smtp)),
            Self::AppPasswordRequired => format!("534 5.7.9 {}", self.text(Protocol::Smtp)),
            Self::ProtocolDisabled | Self::NotPermitted | Self::CollaboratorSuspended => {
                format!("550 5.7.1 {}", self.text(Protocol::Smtp))
            }
            Self::StoreUnavailable => "454 4.7.0 Temporary authentication failure".into(),
            Self::TooManyFailures => format!("454 4.7.0 {}", self.text(Protocol::Smtp)),
        }
    }
}

impl Denial {
    /// See [`DenyReason::imap_reply`].
    pub fn imap_reply(&self) -> (&'static str, String) {
        self.reason.imap_reply()
    }

    /// See [`DenyReason::pop3_reply`].
    pub fn pop3_reply(&self) -> String {
        self.reason.pop3_reply()
    }

    /// See [`DenyReason::smtp_reply`].
    pub fn smtp_reply(&self) -> String {
        self.reason.smtp_reply()
    }

    pub fn label(&self) -> &'static str {
        self.reason.label()
    }
}

#[cfg(test)]
mod tests;
