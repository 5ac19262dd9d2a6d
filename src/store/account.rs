//! What the account store knows about a mailbox: the record the policy reads.
//!
//! Plain data, no I/O. Times are unix seconds.

use serde::Serialize;

use crate::protocol::Protocol;

/// Whether POP3 `DELE` is allowed (enforced by the POP3 relay). Shared
/// mailboxes usually want `Deny`: one POP3 client can empty everyone's inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pop3Delete {
    #[default]
    Allow,
    Deny,
}

impl Pop3Delete {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }

    /// Parses `allow` / `deny` (as stored and as typed in the CLI).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allow" => Some(Self::Allow),
            "deny" => Some(Self::Deny),
            _ => None,
        }
    }

    /// The stricter of two settings.
    pub fn stricter(self, other: Self) -> Self {
        if self == Self::Deny || other == Self::Deny {
            Self::Deny
        } else {
            Self::Allow
        }
    }
}

/// A collaborator's rights, cumulative as in PEC multiutente.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Rights {
    pub read: bool,
    /// Move, delete, manage folders.
    pub write: bool,
    pub send: bool,
    /// Use the mailbox from a mail client over IMAP/POP3.
    pub mail_client: bool,
}

impl Rights {
    /// Applies the implication in the providers' rules: mail-client use
    /// implies write and send, and write implies read.
    pub fn with_implied(mut self) -> Self {
        if self.mail_client {
            self.write = true;
            self.send = true;
        }
        if self.write {
            self.read = true;
        }
        self
    }

    /// Whether these rights let a collaborator log in over `protocol`.
    /// IMAP and POP3 are mail-client use; SMTP is sending.
    pub fn allow(&self, protocol: Protocol) -> bool {
        match protocol {
            Protocol::Imap | Protocol::Pop3 => self.mail_client,
            Protocol::Smtp => self.send,
        }
    }

    /// Parses `read,write,send,mail-client` (any order, `none` for none).
    pub fn parse_list(list: &str) -> Result<Self, String> {
        let mut rights = Self::default();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "read" => rights.read = true,
                "write" => rights.write = true,
                "send" => rights.send = true,
                "mail-client" | "mail_client" => rights.mail_client = true,
                "none" => {}
                other => return Err(format!("unknown right {other:?}")),
            }
        }
        Ok(rights.with_implied())
    }

    /// `read,write,send,mail-client`, or `none`.
    pub fn to_list(&self) -> String {
        let words: Vec<&str> = [
            (self.read, "read"),
            (self.write, "write"),
            (self.send, "send"),
            (self.mail_client, "mail-client"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, w)| *w)
        .collect();
        if words.is_empty() {
            "none".into()
        } else {
            words.join(",")
        }
    }
}

/// One app password of a mailbox owner or of a collaborator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppPassword {
    pub id: i64,
    pub label: String,
    /// argon2id hash of the normalised password.
    #[serde(skip)]
    pub hash: String,
    pub created: i64,
    /// `None`: never expires.
    pub expires: Option<i64>,
    pub last_used: Option<i64>,
}

impl AppPassword {
    /// Expired at `now` (an app password expiring at `now` is already expired).
    pub fn expired_at(&self, now: i64) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

/// A collaborator of a shared mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Collaborator {
    /// Lower-case name, as in `name/mailbox@domain`.
    pub name: String,
    /// `false`: suspended by the owner.
    pub active: bool,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub rights: Rights,
    pub pop3_delete: Pop3Delete,
    pub app_passwords: Vec<AppPassword>,
}

/// The per-mailbox protocol switches, all on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProtocolSwitches {
    pub imap: bool,
    pub pop3: bool,
    pub smtp: bool,
}

impl Default for ProtocolSwitches {
    fn default() -> Self {
        Self {
            imap: true,
            pop3: true,
            smtp: true,
        }
    }
}

impl ProtocolSwitches {
    pub fn enabled(&self, protocol: Protocol) -> bool {
        match protocol {
            Protocol::Imap => self.imap,
            Protocol::Pop3 => self.pop3,
            Protocol::Smtp => self.smtp,
        }
    }

    pub fn set(&mut self, protocol: Protocol, on: bool) {
        match protocol {
            Protocol::Imap => self.imap = on,
            Protocol::Pop3 => self.pop3 = on,
            Protocol::Smtp => self.smtp = on,
        }
    }

    /// With all three off the mailbox is webmail-only.
    pub fn any(&self) -> bool {
        self.imap || self.pop3 || self.smtp
    }
}

/// Everything the policy needs to decide a login to one mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxRecord {
    /// Canonical lower-case `local@domain`.
    pub address: String,
    pub active: bool,
    /// The owner's main password; `None` until one is set.
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub protocols: ProtocolSwitches,
    pub two_step: bool,
    pub pop3_delete: Pop3Delete,
    /// The owner's app passwords.
    pub app_passwords: Vec<AppPassword>,
    pub collaborators: Vec<Collaborator>,
    /// Upstream route override (a route name or `host:port`).
    pub route: Option<String>,
}

impl MailboxRecord {
    /// A new, active mailbox with every protocol on and two-step off.
    pub fn new(address: &str, password_hash: Option<String>) -> Self {
        Self {
            address: address.to_owned(),
            active: true,
            password_hash,
            protocols: ProtocolSwitches::default(),
            two_step: false,
            pop3_delete: Pop3Delete::Allow,
            app_passwords: Vec::new(),
            collaborators: Vec::new(),
            route: None,
        }
    }

    pub fn collaborator(&self, name: &str) -> Option<&Collaborator> {
        self.collaborators.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests;
