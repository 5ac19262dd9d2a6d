//! The login decision: a pure function of the request and the mailbox record.
//!
//! # Order of the checks, and why
//!
//! The rules, in the order the providers' guides apply them, are: the mailbox exists and
//! is active → the protocol is switched on → the collaborator exists, is
//! active and holds the right the protocol needs → the credential is of the
//! accepted kind (with two-step verification, only an unexpired app password
//! of that principal).
//!
//! Telling the client *which* rule failed is only safe once it has shown it
//! knows a credential of the principal. Otherwise anyone could learn, without
//! any password, that a mailbox exists, that its POP3 is off or that it uses
//! two-step verification. So [`check`] runs in two phases:
//!
//! 1. **Who are you?** Find the principal (the owner, or the named
//!    collaborator of the named mailbox) and verify the password against its
//!    main password and its app passwords. An unknown mailbox, an unknown
//!    collaborator or a password matching nothing gives
//!    [`DenyReason::UnknownOrBadPassword`], after one dummy verification so
//!    an unknown mailbox costs the time of a wrong password.
//! 2. **May you?** Only now the rules above are applied in the listed order,
//!    each with its own reason: an inactive mailbox still looks unknown
//!    (the owner cannot fix it from a mail client); then `protocol_disabled`,
//!    `collaborator_suspended`, `not_permitted`, and last the credential kind
//!    (`app_password_expired`, `app_password_required`).
//!
//! Residual timing signal: phase 1 costs one hash verification per candidate
//! (main password, plus each app password when the password has the shape of
//! one), so a principal with several app passwords answers a little slower.
//! It reveals at most that an account with app passwords exists, never a switch.

use std::net::IpAddr;

use crate::access::app_password;
use crate::access::login_name::LoginName;
use crate::access::password::{verify_dummy, verify_password};
use crate::protocol::Protocol;
use crate::secret::Secret;
use crate::store::account::{AppPassword, Collaborator, MailboxRecord, Pop3Delete};

/// Who the client says it is and what it presents, with the facts the
/// rules read: the pure policy's input.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub protocol: Protocol,
    pub login: &'a LoginName,
    pub password: &'a Secret,
    pub client_ip: IpAddr,
    /// Whether the password came over TLS. The front-ends already refuse a
    /// password on a plain connection unless the operator allowed it; kept
    /// here so a rule on it stays a pure-policy change.
    pub tls: bool,
}

/// What a successful login carries on to the upstream stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    /// The mailbox to open upstream, always as the mailbox itself.
    pub mailbox: String,
    /// The collaborator who logged in; for the access log, never upstream.
    pub collaborator: Option<String>,
    /// Upstream route override for this mailbox.
    pub route: Option<String>,
    /// What the session may remove: the stricter of the mailbox's and the
    /// collaborator's setting, and read-only for a collaborator without
    /// `write`.
    pub pop3_delete: Pop3Delete,
    /// The app password used, so its `last_used` can be touched.
    pub app_password_id: Option<i64>,
    /// The credential the client logged in with, for [`recheck`] while the
    /// session lasts.
    pub credential: CredentialUsed,
    pub labels: PermitLabels,
}

/// Which credential of its principal a session logged in with: what
/// [`recheck`] compares with the record as it is now. Holds no secret: a
/// fingerprint of the stored hash (not of the password), or an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialUsed {
    /// The principal's main password, whose stored hash had this
    /// [`hash_fingerprint`]: a new password (a new hash) ends the session.
    Main { fingerprint: u64 },
    /// The app password with this id (revoking or regenerating it removes
    /// the id).
    App { id: i64 },
}

/// A 64-bit fingerprint of a stored hash string, to notice a changed
/// password without keeping the hash for the session's lifetime. Argon2
/// hashes carry a random salt, so setting the same password again changes
/// it too (and ends the sessions: the operator asked for a new password).
pub fn hash_fingerprint(hash: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same in every process, which is all a
    // comparison within one process needs.
    let mut h = std::hash::DefaultHasher::new();
    hash.hash(&mut h);
    h.finish()
}

/// Bounded metric labels of a permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PermitLabels {
    pub collaborator: bool,
    pub app_password: bool,
}

/// A refused login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denial {
    pub reason: DenyReason,
}

impl From<DenyReason> for Denial {
    fn from(reason: DenyReason) -> Self {
        Self { reason }
    }
}

impl Denial {
    pub fn label(&self) -> &'static str {
        self.reason.label()
    }
}

/// Why a login was refused. Each maps to one metric label, one text for a
/// person ([`DenyReason::text`]) and one reply per protocol, which each
/// protocol words in its `reply.rs` (`imap::reply::denied`, and so on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyReason {
    /// Unknown mailbox or collaborator, inactive mailbox, invalid login name,
    /// or a password that matches nothing: indistinguishable on purpose.
    UnknownOrBadPassword,
    ProtocolDisabled,
    AppPasswordRequired,
    AppPasswordExpired,
    CollaboratorSuspended,
    NotPermitted,
    StoreUnavailable,
    /// Refused unchecked by the brute-force penalty (`penalty.rs`): a
    /// temporary error, whatever the password.
    TooManyFailures,
}

impl DenyReason {
    /// Every reason, for metric registration and tests.
    pub const ALL: [DenyReason; 8] = [
        Self::UnknownOrBadPassword,
        Self::ProtocolDisabled,
        Self::AppPasswordRequired,
        Self::AppPasswordExpired,
        Self::CollaboratorSuspended,
        Self::NotPermitted,
        Self::StoreUnavailable,
        Self::TooManyFailures,
    ];

    /// snake_case metric label and access-log reason.
    pub fn label(self) -> &'static str {
        match self {
            Self::UnknownOrBadPassword => "unknown_or_bad_password",
            Self::ProtocolDisabled => "protocol_disabled",
            Self::AppPasswordRequired => "app_password_required",
            Self::AppPasswordExpired => "app_password_expired",
            Self::CollaboratorSuspended => "collaborator_suspended",
            Self::NotPermitted => "not_permitted",
            Self::StoreUnavailable => "store_unavailable",
            Self::TooManyFailures => "too_many_failures",
        }
    }

    /// The text for a person, shared by the three protocols' replies. It is
    /// specific where the owner can act on it (a protocol switched off,
    /// two-step verification on, an expired app password) and deliberately
    /// vague where detail would help an attacker.
    pub fn text(self, protocol: Protocol) -> String {
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
}

/// Which credential of the principal the password matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    Main,
    App(i64),
    ExpiredApp,
}

/// How passwords are checked against stored hashes: [`Hashes`] verifies
/// them; the authenticator adds a cache of recent successes in front.
pub trait PasswordCheck {
    /// Whether `password` matches `hash` (an unusable hash matches nothing).
    fn verify(&self, password: &Secret, hash: &str) -> bool;
    /// Spends the time of one verification, where there is nothing to verify.
    fn dummy(&self, password: &Secret);
}

/// Verifies every password with its hash scheme.
pub struct Hashes;

impl PasswordCheck for Hashes {
    fn verify(&self, password: &Secret, hash: &str) -> bool {
        verify_password(password, hash) == Ok(true)
    }
    fn dummy(&self, password: &Secret) {
        verify_dummy(password);
    }
}

/// Decides a login. `record` is the store's record for `req.login.mailbox`
/// (`None`: no such mailbox); `now` is unix seconds. See the module docs for
/// the order of the checks.
pub fn check(req: &Claim<'_>, record: Option<&MailboxRecord>, now: i64) -> Result<Permit, Denial> {
    check_with(req, record, now, &Hashes)
}

/// [`check`], with passwords checked by `passwords`.
pub fn check_with(
    req: &Claim<'_>,
    record: Option<&MailboxRecord>,
    now: i64,
    passwords: &dyn PasswordCheck,
) -> Result<Permit, Denial> {
    // Phase 1: who are you?
    let Some(mailbox) = record.filter(|m| m.address == req.login.mailbox) else {
        passwords.dummy(req.password);
        return Err(DenyReason::UnknownOrBadPassword.into());
    };
    let collaborator: Option<&Collaborator> = match &req.login.collaborator {
        None => None,
        Some(name) => match mailbox.collaborator(name) {
            Some(c) => Some(c),
            None => {
                passwords.dummy(req.password);
                return Err(DenyReason::UnknownOrBadPassword.into());
            }
        },
    };
    let (main_hash, app_passwords) = match collaborator {
        None => (mailbox.password_hash.as_deref(), &mailbox.app_passwords),
        Some(c) => (c.password_hash.as_deref(), &c.app_passwords),
    };
    let credential = identify(
        passwords,
        req.password,
        main_hash,
        app_passwords,
        mailbox.two_step,
        now,
    )
    .ok_or(DenyReason::UnknownOrBadPassword)?;

    // Phase 2: may you? The client has shown a credential of this principal.
    if !mailbox.active {
        return Err(DenyReason::UnknownOrBadPassword.into());
    }
    if !mailbox.protocols.enabled(req.protocol) {
        return Err(DenyReason::ProtocolDisabled.into());
    }
    if let Some(c) = collaborator {
        if !c.active {
            return Err(DenyReason::CollaboratorSuspended.into());
        }
        if !c.rights.allow(req.protocol) {
            return Err(DenyReason::NotPermitted.into());
        }
    }
    let (app_password_id, credential) = match credential {
        Credential::ExpiredApp => return Err(DenyReason::AppPasswordExpired.into()),
        Credential::Main if mailbox.two_step => {
            return Err(DenyReason::AppPasswordRequired.into());
        }
        Credential::Main => (
            None,
            CredentialUsed::Main {
                // `identify` only answers Main when there is a main hash.
                fingerprint: hash_fingerprint(main_hash.unwrap_or_default()),
            },
        ),
        Credential::App(id) => (Some(id), CredentialUsed::App { id }),
    };
    Ok(Permit {
        mailbox: mailbox.address.clone(),
        collaborator: collaborator.map(|c| c.name.clone()),
        route: mailbox.route.clone(),
        pop3_delete: access_of(mailbox, collaborator),
        app_password_id,
        credential,
        labels: PermitLabels {
            collaborator: collaborator.is_some(),
            app_password: app_password_id.is_some(),
        },
    })
}

/// What a principal may do to the mailbox's messages after login: the
/// mailbox's keep-on-server setting, the collaborator's own, and read-only
/// for a collaborator without `write`, the strictest of them.
fn access_of(mailbox: &MailboxRecord, collaborator: Option<&Collaborator>) -> Pop3Delete {
    collaborator.map_or(mailbox.pop3_delete, |c| {
        let setting = mailbox.pop3_delete.stricter(c.pop3_delete);
        if c.rights.write {
            setting
        } else {
            setting.stricter(Pop3Delete::ReadOnly)
        }
    })
}

/// Why a logged-in session no longer passes the policy: what [`recheck`]
/// finds when the record changed under it. One metric label each
/// (`pec_proxy_sessions_revoked_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevokeReason {
    /// The mailbox was removed or deactivated.
    MailboxInactive,
    ProtocolDisabled,
    CollaboratorRemoved,
    CollaboratorSuspended,
    /// The collaborator's rights no longer cover the protocol.
    NotPermitted,
    /// The main password the session logged in with was changed.
    PasswordChanged,
    /// Two-step verification was turned on: main-password sessions end.
    AppPasswordRequired,
    /// The app password was revoked (or regenerated, which replaces it).
    AppPasswordRevoked,
    AppPasswordExpired,
    /// What the principal may do to messages became stricter (keep on
    /// server turned on, `write` taken away) than what the session's relay,
    /// chosen at login, enforces.
    AccessReduced,
}

impl RevokeReason {
    /// Every reason, for tests.
    pub const ALL: [RevokeReason; 10] = [
        Self::MailboxInactive,
        Self::ProtocolDisabled,
        Self::CollaboratorRemoved,
        Self::CollaboratorSuspended,
        Self::NotPermitted,
        Self::PasswordChanged,
        Self::AppPasswordRequired,
        Self::AppPasswordRevoked,
        Self::AppPasswordExpired,
        Self::AccessReduced,
    ];

    /// snake_case metric label and log reason.
    pub fn label(self) -> &'static str {
        match self {
            Self::MailboxInactive => "mailbox_inactive",
            Self::ProtocolDisabled => "protocol_disabled",
            Self::CollaboratorRemoved => "collaborator_removed",
            Self::CollaboratorSuspended => "collaborator_suspended",
            Self::NotPermitted => "not_permitted",
            Self::PasswordChanged => "password_changed",
            Self::AppPasswordRequired => "app_password_required",
            Self::AppPasswordRevoked => "app_password_revoked",
            Self::AppPasswordExpired => "app_password_expired",
            Self::AccessReduced => "access_reduced",
        }
    }
}

/// A logged-in session's principal, as [`recheck`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionClaim<'a> {
    pub protocol: Protocol,
    /// The mailbox open upstream (canonical address).
    pub mailbox: &'a str,
    pub collaborator: Option<&'a str>,
    pub credential: CredentialUsed,
    /// What the session's relay lets it do to messages, chosen at login.
    pub access: Pop3Delete,
}

/// Whether a logged-in session still passes the policy on `record` (the
/// mailbox's record now; `None`: removed) at `now`: phase 2 of [`check`]
/// again, with no password to verify. The credential is compared instead:
/// the main password's hash must be the one the session logged in with,
/// an app password must still exist and be unexpired. `Ok` carries when
/// the session's app password expires, if it does, so the caller can end
/// it then without a change to the store.
pub fn recheck(
    session: &SessionClaim<'_>,
    record: Option<&MailboxRecord>,
    now: i64,
) -> Result<Option<i64>, RevokeReason> {
    let Some(mailbox) = record.filter(|m| m.address == session.mailbox && m.active) else {
        return Err(RevokeReason::MailboxInactive);
    };
    if !mailbox.protocols.enabled(session.protocol) {
        return Err(RevokeReason::ProtocolDisabled);
    }
    let (main_hash, app_passwords) = match session.collaborator {
        None => (mailbox.password_hash.as_deref(), &mailbox.app_passwords),
        Some(name) => {
            let c = mailbox
                .collaborator(name)
                .ok_or(RevokeReason::CollaboratorRemoved)?;
            if !c.active {
                return Err(RevokeReason::CollaboratorSuspended);
            }
            if !c.rights.allow(session.protocol) {
                return Err(RevokeReason::NotPermitted);
            }
            (c.password_hash.as_deref(), &c.app_passwords)
        }
    };
    // What may be done to messages only matters where messages are read.
    let collaborator = session.collaborator.and_then(|name| mailbox.collaborator(name));
    if session.protocol != Protocol::Smtp && access_of(mailbox, collaborator) > session.access {
        return Err(RevokeReason::AccessReduced);
    }
    match session.credential {
        CredentialUsed::Main { fingerprint } => {
            if main_hash.map(hash_fingerprint) != Some(fingerprint) {
                return Err(RevokeReason::PasswordChanged);
            }
            if mailbox.two_step {
                return Err(RevokeReason::AppPasswordRequired);
            }
            Ok(None)
        }
        CredentialUsed::App { id } => {
            let app = app_passwords
                .iter()
                .find(|a| a.id == id)
                .ok_or(RevokeReason::AppPasswordRevoked)?;
            if app.expired_at(now) {
                return Err(RevokeReason::AppPasswordExpired);
            }
            Ok(app.expires)
        }
    }
}

/// Finds which credential of a principal `password` is, if any. Tries the
/// likelier kind first (app passwords under two-step verification) and
/// unexpired app passwords before expired ones. A hash we cannot use
/// (unknown scheme, malformed) matches nothing.
fn identify(
    passwords: &dyn PasswordCheck,
    password: &Secret,
    main_hash: Option<&str>,
    app_passwords: &[AppPassword],
    two_step: bool,
    now: i64,
) -> Option<Credential> {
    let mut verifications = 0;
    let try_main = |verifications: &mut u32| {
        main_hash.is_some_and(|hash| {
            *verifications += 1;
            passwords.verify(password, hash)
        })
    };
    if !two_step && try_main(&mut verifications) {
        return Some(Credential::Main);
    }
    // Only something shaped like an app password is worth a verification.
    if let Some(normalised) = app_password::normalise(password) {
        let (live, expired): (Vec<&AppPassword>, Vec<&AppPassword>) =
            app_passwords.iter().partition(|a| !a.expired_at(now));
        for app in live {
            verifications += 1;
            if passwords.verify(&normalised, &app.hash) {
                return Some(Credential::App(app.id));
            }
        }
        for app in expired {
            verifications += 1;
            if passwords.verify(&normalised, &app.hash) {
                return Some(Credential::ExpiredApp);
            }
        }
    }
    if two_step && try_main(&mut verifications) {
        return Some(Credential::Main);
    }
    if verifications == 0 {
        passwords.dummy(password);
    }
    None
}

#[cfg(test)]
mod tests;
