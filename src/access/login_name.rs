//! Login names: `mailbox@domain` (the owner) or `name/mailbox@domain`
//! (collaborator `name` of a shared mailbox, "PEC multiutente").
//!
//! Parsing is pure and happens before any lookup: a name that could not be a
//! mailbox is refused here, so the account store never sees it.

use thiserror::Error;

/// The separator between a collaborator's name and the mailbox, as in
/// Aruba's guide (`multiutente/mailbox@domain`).
pub const DEFAULT_SEPARATOR: char = '/';

/// RFC 5321 §4.5.3.1.1: a local part is at most 64 octets.
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2: a domain is at most 255 octets.
pub const MAX_DOMAIN: usize = 255;
/// 64 + 1 + 255: the longest address the two limits above allow.
pub const MAX_ADDRESS: usize = 320;
/// Our own limit: collaborator names are chosen by the owner and shown in
/// the access log; 64 is plenty and keeps them the size of a local part.
pub const MAX_COLLABORATOR: usize = 64;
/// The most a whole login name can be: collaborator, separator, address.
pub const MAX_LOGIN_NAME: usize = MAX_COLLABORATOR + 4 + MAX_ADDRESS;

/// A parsed login: which mailbox, and which collaborator of it (if any).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoginName {
    /// Canonical lower-case `local@domain`.
    pub mailbox: String,
    /// Lower-case collaborator name; `None` for the owner.
    pub collaborator: Option<String>,
}

impl LoginName {
    /// The owner of `mailbox` (already canonical).
    pub fn owner(mailbox: &str) -> Self {
        Self {
            mailbox: mailbox.to_owned(),
            collaborator: None,
        }
    }
}

/// Why a login name was refused. Never shown to the client (it gets the same
/// reply as for a wrong password); kept for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LoginNameError {
    #[error("login name is empty")]
    Empty,
    #[error("login name is too long")]
    TooLong,
    #[error("login name is not UTF-8")]
    NotUtf8,
    #[error("login name contains a control character, space, quote or backslash")]
    ForbiddenCharacter,
    #[error("login name contains more than one collaborator separator")]
    MultipleSeparators,
    #[error("collaborator name is empty")]
    EmptyCollaborator,
    #[error("collaborator name is too long")]
    CollaboratorTooLong,
    #[error("collaborator name has a character outside a-z 0-9 . _ -")]
    CollaboratorCharset,
    #[error("address has no '@'")]
    MissingAt,
    #[error("address has more than one '@'")]
    MultipleAt,
    #[error("local part is empty")]
    EmptyLocalPart,
    #[error("local part is too long")]
    LocalPartTooLong,
    #[error("local part is not a dot-atom")]
    BadLocalPart,
    #[error("domain is empty")]
    EmptyDomain,
    #[error("domain is too long")]
    DomainTooLong,
    #[error("domain is not a host name")]
    BadDomain,
    #[error("separator cannot be '@', alphanumeric, a space or a quote")]
    BadSeparator,
}

/// Parses a login name as sent by a client (IMAP LOGIN, SASL authcid, POP3 USER).
///
/// Case-insensitive: the result is lower case. `separator` splits the
/// collaborator's name from the mailbox (default [`DEFAULT_SEPARATOR`]).
pub fn parse_login_name(raw: &[u8], separator: char) -> Result<LoginName, LoginNameError> {
    check_separator(separator)?;
    if raw.is_empty() {
        return Err(LoginNameError::Empty);
    }
    // Cheap length check first, before any decoding work.
    if raw.len() > MAX_LOGIN_NAME {
        return Err(LoginNameError::TooLong);
    }
    let text = std::str::from_utf8(raw).map_err(|_| LoginNameError::NotUtf8)?;
    if text.chars().any(is_forbidden) {
        return Err(LoginNameError::ForbiddenCharacter);
    }
    let (collaborator, address) = match text.split_once(separator) {
        None => (None, text),
        Some((name, rest)) => {
            if rest.contains(separator) {
                return Err(LoginNameError::MultipleSeparators);
            }
            (Some(parse_collaborator(name)?), rest)
        }
    };
    let mailbox = parse_address(address)?;
    Ok(LoginName {
        mailbox,
        collaborator,
    })
}

/// The one spelling of a login name, for what counts logins by name (the
/// brute-force penalty): the name [`parse_login_name`] makes of it, so every
/// spelling the account store takes for one login is one name here. Unicode
/// lower case, not ASCII: `Mar\u{212A}@Pec.it` (U+212A KELVIN SIGN, whose
/// lower case is `k`) is `mark@pec.it`, the mailbox it logs in to. A
/// collaborator's login is `name<separator>mailbox`. A name that does not
/// parse (a pass-through upstream judges names the store would refuse) is
/// its Unicode lower case, or its bytes when it is not UTF-8.
pub fn canonical_login_name(raw: &[u8], separator: char) -> Vec<u8> {
    match parse_login_name(raw, separator) {
        Ok(LoginName {
            mailbox,
            collaborator: None,
        }) => mailbox.into_bytes(),
        Ok(LoginName {
            mailbox,
            collaborator: Some(name),
        }) => format!("{name}{separator}{mailbox}").into_bytes(),
        Err(_) => match std::str::from_utf8(raw) {
            Ok(text) => text.to_lowercase().into_bytes(),
            Err(_) => raw.to_vec(),
        },
    }
}

/// Canonicalises a mailbox address (`Local@Domain` → `local@domain`), with
/// the same rules as the address part of a login name. For the admin CLI.
pub fn parse_mailbox_address(raw: &str) -> Result<String, LoginNameError> {
    if raw.is_empty() {
        return Err(LoginNameError::Empty);
    }
    if raw.chars().any(is_forbidden) {
        return Err(LoginNameError::ForbiddenCharacter);
    }
    parse_address(raw)
}

/// Canonicalises a collaborator name (lower case, conservative charset).
pub fn parse_collaborator_name(raw: &str) -> Result<String, LoginNameError> {
    parse_collaborator(raw)
}

fn check_separator(separator: char) -> Result<(), LoginNameError> {
    if separator == '@' || separator.is_alphanumeric() || is_forbidden(separator) {
        return Err(LoginNameError::BadSeparator);
    }
    Ok(())
}

/// Control characters (CR, LF, NUL, DEL, C1...), any white space, quotes and
/// backslash: none can appear in a mailbox name we accept, and each is a
/// classic way to smuggle something into a protocol line or a log.
fn is_forbidden(c: char) -> bool {
    c.is_control() || c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '\\')
}

/// Collaborator names: `[a-z0-9]` first, then `[a-z0-9._-]`, at most 64.
fn parse_collaborator(raw: &str) -> Result<String, LoginNameError> {
    if raw.is_empty() {
        return Err(LoginNameError::EmptyCollaborator);
    }
    if raw.len() > MAX_COLLABORATOR {
        return Err(LoginNameError::CollaboratorTooLong);
    }
    let name = raw.to_ascii_lowercase();
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if !(first_ok && rest_ok) {
        return Err(LoginNameError::CollaboratorCharset);
    }
    Ok(name)
}

/// `addr-spec = local-part "@" domain` (RFC 5322 §3.4.1), restricted to the
/// dot-atom form: quoted local parts and address literals are refused.
fn parse_address(raw: &str) -> Result<String, LoginNameError> {
    if raw.len() > MAX_ADDRESS {
        return Err(LoginNameError::TooLong);
    }
    // The rules hold for the lower-case form, which is what is stored and
    // compared: Unicode lower case can bring in characters they refuse
    // ("İ" is "i" and a combining dot) or lengthen a name ("Ⱥ", 2 octets,
    // is "ⱥ", 3).
    let address = raw.to_lowercase();
    if address.len() > MAX_ADDRESS {
        return Err(LoginNameError::TooLong);
    }
    let mut parts = address.split('@');
    let (Some(local), Some(domain)) = (parts.next(), parts.next()) else {
        return Err(LoginNameError::MissingAt);
    };
    if parts.next().is_some() {
        return Err(LoginNameError::MultipleAt);
    }
    check_local_part(local)?;
    check_domain(domain)?;
    Ok(address)
}

/// `dot-atom-text = 1*atext *("." 1*atext)` (RFC 5322 §3.2.3); non-ASCII
/// letters and digits are allowed as in RFC 6531 (SMTPUTF8). `/` is atext in
/// the RFC but refused here: it is the default collaborator separator, so a
/// mailbox with one could never log in, and no PEC provider issues such names.
fn check_local_part(local: &str) -> Result<(), LoginNameError> {
    if local.is_empty() {
        return Err(LoginNameError::EmptyLocalPart);
    }
    if local.len() > MAX_LOCAL_PART {
        return Err(LoginNameError::LocalPartTooLong);
    }
    let atext = |c: char| {
        c.is_ascii_alphanumeric() || "!#$%&*+-=?^_{|}~".contains(c) || (!c.is_ascii() && c.is_alphanumeric())
    };
    if local
        .split('.')
        .any(|atom| atom.is_empty() || !atom.chars().all(atext))
    {
        return Err(LoginNameError::BadLocalPart);
    }
    Ok(())
}

/// `domain = label *("." label)`, each label letters, digits and inner
/// hyphens, at most 63 octets (RFC 1035 §2.3.1, RFC 5890 for non-ASCII).
fn check_domain(domain: &str) -> Result<(), LoginNameError> {
    if domain.is_empty() {
        return Err(LoginNameError::EmptyDomain);
    }
    if domain.len() > MAX_DOMAIN {
        return Err(LoginNameError::DomainTooLong);
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if !domain.split('.').all(label_ok) {
        return Err(LoginNameError::BadDomain);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
