//! The access stage: from the credentials a front-end collected to a
//! decision on who, if anyone, is logged in upstream. The login name is
//! parsed ([`login_name`]), the brute-force [`penalty`] consulted, the
//! mailbox's record read and judged by the pure [`policy`] (password
//! verification, app passwords, collaborators, protocol switches), and the
//! decision recorded. [`gate::Gate`] is the one entry point sessions use.
//! The penalty and the sending rate ([`send_rate`]) can be shared by a
//! fleet of proxies ([`counters`], over PostgreSQL: [`fleet`]).

pub mod app_password;
pub mod authenticator;
pub mod client_limits;
pub mod counters;
pub mod fleet;
pub mod gate;
pub mod login_name;
pub mod password;
pub mod penalty;
pub mod policy;
pub mod send_rate;
pub mod verified;

use std::net::SocketAddr;

use crate::protocol::Protocol;
use crate::secret::Secret;
use policy::DenyReason;

/// A login attempt, as any front-end hands it over: what the gate, the
/// account store's authenticator and the access log see.
#[derive(Debug)]
pub struct LoginRequest {
    pub protocol: Protocol,
    pub credentials: Credentials,
    /// The client's address (the penalty's and the access log's).
    pub peer: SocketAddr,
    /// Whether the credentials came over TLS.
    pub tls: bool,
    /// The client's name and version (IMAP `ID`), for the access log.
    pub client_name: Option<String>,
    /// Collaborator separator from the config (default `/`).
    pub separator: char,
}

/// What a client presented to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Authorization identity, when the client asked to act as someone else.
    /// Clients normally leave it empty.
    pub authzid: Option<Vec<u8>>,
    /// The login name as typed by the user (`mailbox@domain` or `name/mailbox@domain`).
    pub authcid: Vec<u8>,
    pub password: Secret,
}

/// Why a login attempt did not lead to a session, by its source. Each
/// front-end turns it into its protocol's words
/// ([`crate::frontend::Frontend::login_refused`]); [`LoginRefusal::labels`]
/// is how it is counted, whatever the words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginRefusal {
    /// The policy said no, or (pass-through) the upstream refused the
    /// client's own credentials: a failed attempt. Never
    /// [`DenyReason::TooManyFailures`] or [`DenyReason::StoreUnavailable`],
    /// which are [`LoginRefusal::Penalised`] and
    /// [`LoginRefusal::StoreUnavailable`].
    Denied(DenyReason),
    /// Refused unchecked by the brute-force penalty: a failed attempt,
    /// answered with a temporary error whatever the password.
    Penalised,
    /// The account store could not be read: try again later.
    StoreUnavailable,
    /// The upstream could not log the mailbox in now (with the proxy's own
    /// credentials a refusal is our configuration's fault, not the
    /// client's). `no_answer`: the connection failed at some step (RFC 3463
    /// X.4.1), rather than the server answering as it should not.
    UpstreamUnavailable { no_answer: bool },
    /// Another session holds the mailbox (POP3 `[IN-USE]`, RFC 2449
    /// §8.1.1), with the server's (printable, bounded) text.
    MailboxInUse(String),
}

impl From<DenyReason> for LoginRefusal {
    fn from(reason: DenyReason) -> Self {
        match reason {
            DenyReason::TooManyFailures => LoginRefusal::Penalised,
            DenyReason::StoreUnavailable => LoginRefusal::StoreUnavailable,
            other => LoginRefusal::Denied(other),
        }
    }
}

impl LoginRefusal {
    /// Whether it counts towards `limits.max_login_failures`: the client's
    /// own doing, not a failure of ours.
    pub fn counts_as_failure(&self) -> bool {
        matches!(self, LoginRefusal::Denied(_) | LoginRefusal::Penalised)
    }

    /// `(result, reason)` labels of `pec_proxy_logins_total`.
    pub fn labels(&self) -> (&'static str, &'static str) {
        match self {
            LoginRefusal::Denied(reason) => ("denied", reason.label()),
            LoginRefusal::Penalised => ("refused", DenyReason::TooManyFailures.label()),
            LoginRefusal::StoreUnavailable => ("unavailable", DenyReason::StoreUnavailable.label()),
            LoginRefusal::UpstreamUnavailable { .. } => ("unavailable", "upstream_unavailable"),
            LoginRefusal::MailboxInUse(_) => ("unavailable", "mailbox_in_use"),
        }
    }
}
