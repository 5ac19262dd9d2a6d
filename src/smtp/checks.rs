//! The PEC submission checks of RFC 6109 §3.1.1 that need more than one
//! command: the message header rules (the sender fields are the
//! authenticated mailbox; no blind copies: the `To:` and `Cc:` addresses
//! are exactly the accepted recipients), and the per-mailbox sending rate.
//! Pure code, apart from the rate limiter's clock (tokio's, so tests can
//! pause it).

pub use crate::access::send_rate::{RATE_LIMITER_MAX_MAILBOXES, RateLimiter};

use std::collections::BTreeSet;

use super::address::{self, Address};
use super::reply;
use crate::ops::metrics as m;

/// The checks, as metric labels of `pec_proxy_pec_checks_total{check}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Sender,
    FromHeader,
    Bcc,
    Recipients,
    Size,
    Rate,
}

impl Check {
    pub fn label(self) -> &'static str {
        match self {
            Check::Sender => "sender",
            Check::FromHeader => "from_header",
            Check::Bcc => "bcc",
            Check::Recipients => "recipients",
            Check::Size => "size",
            Check::Rate => "rate",
        }
    }
}

/// Counts one check's outcome.
pub fn count(check: Check, passed: bool) {
    metrics::counter!(
        m::PEC_CHECKS_TOTAL,
        "check" => check.label(),
        "result" => if passed { "pass" } else { "fail" }
    )
    .increment(1);
}

/// Why a header block was refused; each has one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderRefusal {
    /// No `From:`, several, one with several addresses, or not the sender.
    FromMismatch,
    /// A `Sender:`, `Resent-From:` or `Resent-Sender:` that is not exactly
    /// the sender, or two `Sender:` fields.
    SenderFieldMismatch,
    BccPresent,
    /// No `To:` field.
    NoTo,
    /// A `To:` or `Cc:` that is no RFC 5322 address list.
    RecipientsUnreadable,
    /// The `To:` and `Cc:` addresses are not the accepted `RCPT TO` set.
    RecipientsMismatch,
    /// `Resent-To:`, `Resent-Cc:` or `Resent-Bcc:`.
    ResentRecipients,
    /// A line that is neither a header field nor a continuation: a mail
    /// server would end the header section there, a reader might not.
    MalformedField,
    LineTooLong,
}

impl HeaderRefusal {
    pub fn reply(self) -> &'static str {
        match self {
            HeaderRefusal::FromMismatch => reply::FROM_MISMATCH,
            HeaderRefusal::SenderFieldMismatch => reply::SENDER_FIELD_MISMATCH,
            HeaderRefusal::BccPresent => reply::BCC_PRESENT,
            HeaderRefusal::NoTo => reply::NO_TO,
            HeaderRefusal::RecipientsUnreadable => reply::RECIPIENTS_UNREADABLE,
            HeaderRefusal::RecipientsMismatch => reply::RECIPIENTS_MISMATCH,
            HeaderRefusal::ResentRecipients => reply::RESENT_RECIPIENTS,
            HeaderRefusal::MalformedField => reply::MALFORMED_HEADER_FIELD,
            HeaderRefusal::LineTooLong => reply::HEADER_LINE_TOO_LONG,
        }
    }
}

/// Which header rules apply.
#[derive(Debug, Clone, Copy)]
pub struct HeaderRules {
    /// `From:` is exactly the sender; `Sender:`, `Resent-From:` and
    /// `Resent-Sender:`, when present, too.
    pub from_header: bool,
    pub no_bcc: bool,
    /// `To:` is present, the `To:` and `Cc:` addresses are exactly the
    /// accepted recipients, no `Resent-To:`, `Resent-Cc:`, `Resent-Bcc:`,
    /// and every line is a field or a continuation.
    pub recipients: bool,
    /// Longest physical header line, CRLF included.
    pub max_line_bytes: usize,
}

impl HeaderRules {
    /// Whether any rule reads the header block (else it is not held).
    pub fn any(&self) -> bool {
        self.from_header || self.no_bcc || self.recipients
    }
}

/// The recipients the upstream accepted in a transaction, in canonical
/// form ([`address`]). Bounded by the caller: the guard takes at most
/// [`MAX_RECIPIENTS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipients {
    set: BTreeSet<Address>,
    /// An accepted recipient that is no address a header can name
    /// (`RCPT TO:<Postmaster>`): no `To:` or `Cc:` can match the set.
    unnamable: bool,
}

/// Recipients of one transaction the guard keeps, at most: Postfix's
/// default `smtpd_recipient_limit`; RFC 5321 §4.5.3.1.8 asks for 100.
pub const MAX_RECIPIENTS: u64 = 1000;

impl Recipients {
    /// Adds an accepted `RCPT TO` mailbox, as the SMTP parser gave it.
    pub fn add(&mut self, mailbox: &[u8]) {
        match address::smtp_mailbox(mailbox) {
            Ok(a) => {
                self.set.insert(a);
            }
            Err(_) => self.unnamable = true,
        }
    }

    /// Whether `named` (the `To:` and `Cc:` addresses) is exactly this set.
    pub fn named_by(&self, named: &[Address]) -> bool {
        !self.unnamable && named.iter().all(|a| self.set.contains(a)) && {
            let named: BTreeSet<&Address> = named.iter().collect();
            named.len() == self.set.len()
        }
    }
}

/// The header fields the rules read, by name (RFC 5322 §3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    From,
    Sender,
    ResentFrom,
    ResentSender,
    To,
    Cc,
    Bcc,
    ResentRecipients,
    Other,
}

impl Field {
    fn of(name: &[u8]) -> Field {
        const NAMES: &[(&str, Field)] = &[
            ("From", Field::From),
            ("Sender", Field::Sender),
            ("Resent-From", Field::ResentFrom),
            ("Resent-Sender", Field::ResentSender),
            ("To", Field::To),
            ("Cc", Field::Cc),
            ("Bcc", Field::Bcc),
            ("Resent-To", Field::ResentRecipients),
            ("Resent-Cc", Field::ResentRecipients),
            ("Resent-Bcc", Field::ResentRecipients),
        ];
        NAMES
            .iter()
            .find(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
            .map_or(Field::Other, |(_, f)| *f)
    }
}

/// Checks a message's header block (as sent in DATA: dot-stuffed, CRLF
/// lines, up to and excluding the empty line) against the rules, for the
/// authenticated mailbox `sender` and the transaction's accepted
/// `recipients`. Counts each rule it applies. Linear in the block.
pub fn check_headers(
    block: &[u8],
    sender: &str,
    recipients: &Recipients,
    rules: HeaderRules,
) -> Result<(), HeaderRefusal> {
    // Unfolded values of the fields the rules read; bounded by the block.
    let mut fields: Vec<(Field, Vec<u8>)> = Vec::new();
    let mut malformed = false;
    let mut in_field = false;
    for raw in block.split_inclusive(|&b| b == b'\n') {
        if raw.len() > rules.max_line_bytes {
            return Err(HeaderRefusal::LineTooLong);
        }
        let mut l = raw.strip_suffix(b"\n").unwrap_or(raw);
        l = l.strip_suffix(b"\r").unwrap_or(l);
        // Undo dot-stuffing (RFC 5321 §4.5.2).
        if l.first() == Some(&b'.') {
            l = &l[1..];
        }
        if l.is_empty() {
            continue;
        }
        if l[0] == b' ' || l[0] == b'\t' {
            // RFC 5322 §2.2.3 folding: a continuation of the current field.
            malformed |= !in_field;
            if let Some((_, value)) = fields.last_mut().filter(|_| in_field) {
                value.extend_from_slice(l);
            }
            continue;
        }
        // `field-name = 1*ftext`, and `obs-optional` white space before
        // the colon (RFC 5322 §3.6.8, §4.5).
        let Some(colon) = l.iter().position(|&b| b == b':') else {
            malformed = true;
            in_field = false;
            continue;
        };
        let name = l[..colon].trim_ascii_end();
        if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
            malformed = true;
            in_field = false;
            continue;
        }
        in_field = true;
        fields.push((Field::of(name), l[colon + 1..].to_vec()));
    }
    let values = |f: Field| {
        fields
            .iter()
            .filter(move |(g, _)| *g == f)
            .map(|(_, v)| v.as_slice())
    };
    let is_sender = |v: &[u8]| {
        address::mailbox_list(v).is_ok_and(|list| {
            list.len() == 1
                && address::smtp_mailbox(sender.as_bytes()).map_or_else(
                    |_| list[0].to_string().eq_ignore_ascii_case(sender),
                    |s| list[0] == s,
                )
        })
    };

    if rules.recipients && malformed {
        count(Check::Recipients, false);
        return Err(HeaderRefusal::MalformedField);
    }
    if rules.no_bcc {
        let bcc = values(Field::Bcc).next().is_some();
        count(Check::Bcc, !bcc);
        if bcc {
            return Err(HeaderRefusal::BccPresent);
        }
    }
    if rules.from_header {
        let mut froms = values(Field::From);
        let ok = matches!((froms.next(), froms.next()), (Some(v), None) if is_sender(v));
        if !ok {
            count(Check::FromHeader, false);
            return Err(HeaderRefusal::FromMismatch);
        }
        let ok = values(Field::Sender).count() <= 1
            && [Field::Sender, Field::ResentFrom, Field::ResentSender]
                .into_iter()
                .flat_map(values)
                .all(is_sender);
        count(Check::FromHeader, ok);
        if !ok {
            return Err(HeaderRefusal::SenderFieldMismatch);
        }
    }
    if rules.recipients {
        let refusal = recipients_refusal(&fields, recipients);
        count(Check::Recipients, refusal.is_none());
        if let Some(r) = refusal {
            return Err(r);
        }
    }
    Ok(())
}

/// RFC 6109 §3.1.1: the forward-paths are the `To:` and `Cc:` addresses.
fn recipients_refusal(fields: &[(Field, Vec<u8>)], recipients: &Recipients) -> Option<HeaderRefusal> {
    if fields.iter().any(|(f, _)| *f == Field::ResentRecipients) {
        return Some(HeaderRefusal::ResentRecipients);
    }
    if !fields.iter().any(|(f, _)| *f == Field::To) {
        return Some(HeaderRefusal::NoTo);
    }
    let mut named = Vec::new();
    for (_, value) in fields.iter().filter(|(f, _)| matches!(f, Field::To | Field::Cc)) {
        match address::address_list(value) {
            Ok(list) => named.extend(list),
            Err(_) => return Some(HeaderRefusal::RecipientsUnreadable),
        }
    }
    (!recipients.named_by(&named)).then_some(HeaderRefusal::RecipientsMismatch)
}

#[cfg(test)]
mod tests;
