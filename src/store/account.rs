//! What the account store knows about a mailbox: the record the policy reads.
//!
//! Plain data, no I/O. Times are unix seconds.

use serde::Serialize;

use crate::protocol::Protocol;

/// What a client session may remove from the mailbox: the stored
/// `pop3_delete` setting (`allow`, `deny`: keep on server), and what a
/// collaborator's rights make of it (`ReadOnly`, never stored). Enforced by
/// the POP3 guard (`DELE` refused unless `Allow`) and the IMAP guard
/// (`imap/guard.rs`: no deletion, expunge or move out under `Deny`; no
/// change at all under `ReadOnly`). Shared mailboxes usually want `Deny`:
/// one POP3 client can empty everyone's inbox. Ordered from the least
/// strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pop3Delete {
    #[default]
    Allow,
    /// Keep on server: read, flag, copy, add; nothing deleted or moved out.
    Deny,
    /// A collaborator without `write`: mailboxes open read-only, nothing
    /// changed. Comes from the rights, never from the stored setting.
    ReadOnly,
}

impl Pop3Delete {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::ReadOnly => "read-only",
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
        self.max(other)
    }
}

/// A collaborator's rights, cumulative as in PEC multiutente. What each
/// allows on each protocol is the README's table ("Collaborator rights").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Rights {
    pub read: bool,
    /// Move, delete, manage folders. Without it a mail client's session is
    /// read-only ([`Pop3Delete::ReadOnly`]).
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
    /// `mail-client` is full client use (it implies `write` and `send`);
    /// `read-only-client` is client use with `read` alone (add `send` for
    /// SMTP), and cannot be combined with `write` or `mail-client`.
    pub fn parse_list(list: &str) -> Result<Self, String> {
        let mut rights = Self::default();
        let mut read_only_client = false;
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "read" => rights.read = true,
                "write" => rights.write = true,
                "send" => rights.send = true,
                "mail-client" | "mail_client" => rights.mail_client = true,
                "read-only-client" | "read_only_client" => read_only_client = true,
                "none" => {}
                other => return Err(format!("unknown right {other:?}")),
            }
        }
        if !read_only_client {
            return Ok(rights.with_implied());
        }
        if rights.write || rights.mail_client {
            return Err("read-only-client cannot be combined with write or mail-client".into());
        }
        rights.mail_client = true;
        rights.read = true;
        Ok(rights)
    }

    /// `read,write,send,mail-client`, `read,send,read-only-client`, or `none`:
    /// what [`Rights::parse_list`] reads back as the same rights.
    pub fn to_list(&self) -> String {
        let words: Vec<&str> = [
            (self.read, "read"),
            (self.write, "write"),
            (self.send, "send"),
            (self.mail_client && self.write, "mail-client"),
            (self.mail_client && !self.write, "read-only-client"),
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
