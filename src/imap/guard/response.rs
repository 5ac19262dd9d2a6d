//! What the guard reads of the server's responses: where a literal is
//! announced, and the capability lists it takes `COMPRESS=` out of.

use std::borrow::Cow;

/// The length of the literal a server line announces at its end:
/// `"{" number "}" CRLF` (RFC 9051 §4.3; `~{n}` for literal8 too).
pub(super) fn server_literal(end: &[u8]) -> Option<u64> {
    let body = end.strip_suffix(b"\n")?;
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    let body = body.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A server line with `COMPRESS=` taken out of its capability list: an
/// untagged `CAPABILITY` response, or a `[CAPABILITY ...]` response code.
pub(super) fn rewrite_capabilities(line: &[u8]) -> Cow<'_, [u8]> {
    let caps_at = if starts_with_ignore_case(line, b"* CAPABILITY ") {
        Some((12, line.len() - line_end_len(line)))
    } else {
        // `tag SP status SP "[CAPABILITY" ... "]"`
        let mut words = line.splitn(3, |&b| b == b' ');
        let (tag, status) = (words.next().unwrap_or(b""), words.next().unwrap_or(b""));
        let rest = words.next().unwrap_or(b"");
        let at = tag.len() + status.len() + 2;
        match rest.get(..12) {
            Some(code) if code.eq_ignore_ascii_case(b"[CAPABILITY ") => rest
                .iter()
                .position(|&b| b == b']')
                .map(|close| (at + 11, at + close)),
            _ => None,
        }
    };
    let Some((from, to)) = caps_at else {
        return Cow::Borrowed(line);
    };
    let list = &line[from..to];
    let stripped = strip_capabilities(list);
    if stripped.len() == list.len() {
        return Cow::Borrowed(line);
    }
    let mut out = line[..from].to_vec();
    out.extend_from_slice(&stripped);
    out.extend_from_slice(&line[to..]);
    Cow::Owned(out)
}

fn line_end_len(line: &[u8]) -> usize {
    if line.ends_with(b"\r\n") {
        2
    } else if line.ends_with(b"\n") {
        1
    } else {
        0
    }
}

fn starts_with_ignore_case(bytes: &[u8], prefix: &[u8]) -> bool {
    bytes.len() >= prefix.len() && bytes[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// A space-separated capability list (with its leading spaces) without
/// `COMPRESS=...` (RFC 4978): a guarded session cannot be compressed.
pub fn strip_capabilities(list: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(list.len());
    for (n, word) in list.split(|&b| b == b' ').enumerate() {
        if starts_with_ignore_case(word, b"COMPRESS=") {
            continue;
        }
        if n > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(word);
    }
    out
}
