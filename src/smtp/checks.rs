//! The PEC submission checks of RFC 6109 §3.1.1 that need more than one
//! command: the message header rules, and the per-mailbox sending rate.
//! Pure code, apart from the rate limiter's clock (tokio's, so tests can
//! pause it).

pub use crate::access::send_rate::{RATE_LIMITER_MAX_MAILBOXES, RateLimiter};

use super::reply;
use crate::ops::metrics as m;

/// The checks, as metric labels of `pec_proxy_pec_checks_total{check}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Sender,
    FromHeader,
    Bcc,
    Size,
    Rate,
}

impl Check {
    pub fn label(self) -> &'static str {
        match self {
            Check::Sender => "sender",
            Check::FromHeader => "from_header",
            Check::Bcc => "bcc",
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
    BccPresent,
    LineTooLong,
}

impl HeaderRefusal {
    pub fn reply(self) -> &'static str {
        match self {
            HeaderRefusal::FromMismatch => reply::FROM_MISMATCH,
            HeaderRefusal::BccPresent => reply::BCC_PRESENT,
            HeaderRefusal::LineTooLong => reply::HEADER_LINE_TOO_LONG,
        }
    }
}

/// Which header rules apply.
#[derive(Debug, Clone, Copy)]
pub struct HeaderRules {
    pub from_header: bool,
    pub no_bcc: bool,
    /// Longest physical header line, CRLF included.
    pub max_line_bytes: usize,
}

/// Checks a message's header block (as sent in DATA: dot-stuffed, CRLF
/// lines, up to and excluding the empty line) against the rules, for the
/// envelope sender `sender`. Counts each rule it applies.
pub fn check_headers(block: &[u8], sender: &str, rules: HeaderRules) -> Result<(), HeaderRefusal> {
    let mut froms: Vec<Vec<u8>> = Vec::new();
    let mut bcc = false;
    // The field being unfolded: (is From, value so far).
    let mut current: Option<(bool, Vec<u8>)> = None;
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
            if let Some((_, value)) = current.as_mut() {
                value.extend_from_slice(l);
            }
            continue;
        }
        if let Some((true, value)) = current.take() {
            froms.push(value);
        }
        let Some(colon) = l.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = l[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"Bcc") {
            bcc = true;
        }
        current = Some((name.eq_ignore_ascii_case(b"From"), l[colon + 1..].to_vec()));
    }
    if let Some((true, value)) = current.take() {
        froms.push(value);
    }

    if rules.no_bcc {
        count(Check::Bcc, !bcc);
        if bcc {
            return Err(HeaderRefusal::BccPresent);
        }
    }
    if rules.from_header {
        let ok =
            froms.len() == 1 && single_address(&froms[0]).is_some_and(|a| a.eq_ignore_ascii_case(sender));
        count(Check::FromHeader, ok);
        if !ok {
            return Err(HeaderRefusal::FromMismatch);
        }
    }
    Ok(())
}

/// The one address of a `From:` value (`mailbox-list` of RFC 5322 §3.6.2
/// with exactly one mailbox): the `<angle-addr>` if present, else the
/// bare `addr-spec`; comments dropped. `None` for zero or several.
pub fn single_address(value: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(value);
    // Drop comments and quoted display names, find separators outside them.
    let mut plain = String::new();
    let (mut depth, mut quoted, mut escaped, mut angle) = (0u32, false, false, false);
    let mut parts = 1;
    for c in text.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => escaped = true,
            '"' if depth == 0 => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if quoted || depth > 0 => {}
            '<' => {
                angle = true;
                plain.push(c);
            }
            '>' => {
                angle = false;
                plain.push(c);
            }
            ',' | ';' if !angle => parts += 1,
            _ => plain.push(c),
        }
    }
    if parts != 1 || quoted || depth > 0 {
        return None;
    }
    let address = match (plain.find('<'), plain.rfind('>')) {
        (Some(open), Some(close)) if open < close => plain[open + 1..close].trim().to_owned(),
        (None, None) => plain.trim().to_owned(),
        _ => return None,
    };
    (address.contains('@') && !address.contains(char::is_whitespace)).then_some(address)
}

#[cfg(test)]
mod tests;
