//! The guard's reading of one client command line (RFC 9051 §9), and the
//! policy that judges a command by its name.
//!
//! The reading is strict on purpose. A forwarded line must frame the same
//! for the guard and for the server: where the server sees a literal, so
//! must the guard, with the same length, or bytes the guard passes on
//! unread as literal data could be a command to the server. So a line is
//! forwarded only when its framing has one reading: `"` opens a quoted
//! string only where an argument starts (after SP, `(` or at the start),
//! and a closed one is followed by SP, `)` or the line's end; `{` appears
//! outside quoted strings only in the literal announcement that ends the
//! line (`SP/"(" "{" number64 ["+"] "}" CRLF`); no control character but
//! the final CRLF (or LF). Anything else is answered `BAD` by the guard
//! and never reaches the server. `~{n}` (literal8, RFC 3516) is refused
//! that way too: servers read it as a literal only in some commands.

/// How a command line ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    /// The command ends with this line.
    Command,
    /// A literal of `length` bytes follows: `{length}` (`sync`) or
    /// `{length+}` (RFC 7888 non-synchronising) at the end of the line.
    Literal { length: u64, sync: bool, brace: usize },
}

/// Checks a line's framing (see the module docs): `line` is the whole line,
/// LF included, a command's first line or (`continuation`) the rest of one
/// after a literal's data, which must go on with SP, `)` or the line's end.
/// The error is the reason, for a `BAD`.
pub fn framing(line: &[u8], continuation: bool) -> Result<LineEnd, &'static str> {
    if continuation && !matches!(line.first(), Some(b' ' | b')' | b'\r' | b'\n')) {
        return Err("text right after a literal");
    }
    let body = line.strip_suffix(b"\n").ok_or("line without its end")?;
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    let mut i = 0;
    // A first line starts with its tag; a continuation right after a
    // literal's data, which must be followed by SP, `)` or the line's end.
    let mut arg_start = false;
    while i < body.len() {
        let b = body[i];
        match b {
            b'"' => {
                if !arg_start {
                    return Err("quote inside an atom");
                }
                i += 1;
                loop {
                    match body.get(i) {
                        None => return Err("unterminated quoted string"),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            match body.get(i + 1) {
                                Some(&c) if c >= 0x20 && c != 0x7f => i += 2,
                                _ => return Err("invalid quoted string"),
                            }
                            continue;
                        }
                        Some(&c) if c < 0x20 || c == 0x7f => {
                            return Err("control character in a quoted string");
                        }
                        Some(_) => i += 1,
                    }
                }
                // The closing quote: what follows must end the argument.
                i += 1;
                match body.get(i) {
                    None | Some(b' ') | Some(b')') => {}
                    Some(_) => return Err("text after a quoted string"),
                }
                arg_start = false;
                continue;
            }
            b'{' => {
                if !arg_start {
                    return Err("brace inside an atom");
                }
                return literal_announcement(line, body, i);
            }
            b' ' | b'(' => arg_start = true,
            c if c < 0x20 || c == 0x7f => return Err("control character"),
            _ => arg_start = false,
        }
        i += 1;
    }
    Ok(LineEnd::Command)
}

/// `literal = "{" number64 ["+"] "}" CRLF` ending the line, `brace` the
/// index of `{` in `body` (the line without its line end).
fn literal_announcement(line: &[u8], body: &[u8], brace: usize) -> Result<LineEnd, &'static str> {
    if !line.ends_with(b"\r\n") {
        return Err("literal announcement without CRLF");
    }
    let inner = body[brace + 1..]
        .strip_suffix(b"}")
        .ok_or("brace outside a literal announcement")?;
    let (digits, sync) = match inner.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (inner, true),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err("invalid literal length");
    }
    let length = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u64>().ok())
        .filter(|&n| n < (1 << 63))
        .ok_or("invalid literal length")?;
    Ok(LineEnd::Literal { length, sync, brace })
}

/// The head of a command's first line: `tag SP ["UID" SP] name`, single
/// spaces, followed by SP or the line's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head<'a> {
    pub tag: &'a [u8],
    pub uid: bool,
    /// The command name as sent (any case).
    pub name: &'a [u8],
    /// Where `name` starts in the line (for a rewrite).
    pub name_at: usize,
    /// The arguments after `name` and its SP, up to the line's end.
    pub args: &'a [u8],
}

/// Reads the head of a command's first line (framing already checked).
pub fn head(line: &[u8]) -> Option<Head<'_>> {
    let body = line.strip_suffix(b"\n")?;
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    let tag = leading_tag(body)?;
    let mut at = tag.len() + 1;
    let word = |from: usize| {
        let end = body[from..]
            .iter()
            .position(|&b| b == b' ')
            .map_or(body.len(), |p| from + p);
        (&body[from..end], end)
    };
    let (mut name, mut end) = word(at);
    let mut uid = false;
    if name.eq_ignore_ascii_case(b"UID") {
        if end == body.len() {
            return None;
        }
        uid = true;
        at = end + 1;
        (name, end) = word(at);
    }
    if name.is_empty() || !name.iter().all(|&b| is_atom_char(b)) {
        return None;
    }
    let args = if end < body.len() {
        &body[end + 1..]
    } else {
        &[][..]
    };
    Some(Head {
        tag,
        uid,
        name,
        name_at: at,
        args,
    })
}

/// The tag at the start of a line, if it has one followed by SP: for a
/// reply to a line that failed.
pub fn leading_tag(line: &[u8]) -> Option<&[u8]> {
    let end = line.iter().position(|&b| !is_tag_char(b)).unwrap_or(line.len());
    (end > 0 && line.get(end) == Some(&b' ')).then(|| &line[..end])
}

/// `ATOM-CHAR = <any CHAR except atom-specials>`
fn is_atom_char(b: u8) -> bool {
    b.is_ascii() && !b.is_ascii_control() && !b"(){ %*\"\\]".contains(&b)
}

/// `tag = 1*<any ASTRING-CHAR except "+">`
fn is_tag_char(b: u8) -> bool {
    (is_atom_char(b) || b == b']') && b != b'+'
}

/// What a guarded session may do: what its principal may not is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Keep on server: read, flag, copy, append, create folders; nothing
    /// is deleted or moved out (no `\Deleted`, no expunge, no move, no
    /// folder deleted or renamed, no ACL change).
    KeepOnServer,
    /// A collaborator without `write`: mailboxes are opened read-only
    /// (`SELECT` is sent as `EXAMINE`) and nothing is changed.
    ReadOnly,
}

/// What the guard does with a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forwarded, the command name replaced by `rename` if given.
    Forward { rename: Option<&'static [u8]> },
    /// Answered `NO [NOPERM]` by the guard.
    Refuse,
}

/// Judges a command by its name (and, for `STORE`, its arguments). An
/// allowlist: a command not named here (an extension the guard does not
/// know, `REPLACE`, `XAPPLEPUSHSERVICE`...) is refused, so a server
/// extension that changes mail cannot slip through.
///
/// `CLOSE` is sent as `UNSELECT` (RFC 3691, in IMAP4rev2's base): the same
/// answer without the implicit expunge of messages others marked
/// `\Deleted`. `IDLE` is forwarded; the guard follows it to `DONE`.
pub fn verdict(access: Access, head: &Head<'_>, literal: bool) -> Verdict {
    let name = head.name.to_ascii_uppercase();
    let read_only = access == Access::ReadOnly;
    let forward = Verdict::Forward { rename: None };
    if head.uid {
        return match name.as_slice() {
            b"FETCH" | b"SEARCH" | b"SORT" | b"THREAD" => forward,
            b"COPY" if !read_only => forward,
            b"STORE" if !read_only && store_keeps(head.args, literal) => forward,
            _ => Verdict::Refuse,
        };
    }
    match name.as_slice() {
        b"CAPABILITY" | b"NOOP" | b"LOGOUT" | b"ID" | b"ENABLE" | b"EXAMINE" | b"LIST" | b"LSUB"
        | b"STATUS" | b"NAMESPACE" | b"CHECK" | b"UNSELECT" | b"FETCH" | b"SEARCH" | b"SORT" | b"THREAD"
        | b"IDLE" | b"GETQUOTA" | b"GETQUOTAROOT" | b"GETACL" | b"LISTRIGHTS" | b"MYRIGHTS"
        | b"GETMETADATA" | b"NOTIFY" => forward,
        b"CLOSE" => Verdict::Forward {
            rename: Some(b"UNSELECT"),
        },
        b"SELECT" if read_only => Verdict::Forward {
            rename: Some(b"EXAMINE"),
        },
        b"SELECT" => forward,
        b"COPY" | b"APPEND" | b"CREATE" | b"SUBSCRIBE" | b"UNSUBSCRIBE" | b"SETMETADATA" if !read_only => {
            forward
        }
        b"STORE" if !read_only && store_keeps(head.args, literal) => forward,
        _ => Verdict::Refuse,
    }
}

/// Whether a `STORE` keeps every message on the server: it removes flags,
/// or sets flags without `\Deleted`.
/// `store = "STORE" SP sequence-set [SP "(" store-modifier ... ")"] SP store-att-flags`;
/// `store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)))`
/// (RFC 9051, RFC 7162 §3.1.3). Flags are atoms, so a `STORE` announcing a
/// literal is not one that keeps (the flags could be in it).
fn store_keeps(args: &[u8], literal: bool) -> bool {
    if literal {
        return false;
    }
    let Some(sp) = args.iter().position(|&b| b == b' ') else {
        return false;
    };
    // `sequence-set` (with RFC 5182's `$`): anything else is not a STORE
    // the server reads as we do, so it does not keep.
    let sequence_set = &args[..sp];
    if sequence_set.is_empty() || !sequence_set.iter().all(|b| b"0123456789:,*$".contains(b)) {
        return false;
    }
    let mut rest = &args[sp + 1..];
    if rest.first() == Some(&b'(') {
        let Some(close) = rest.iter().position(|&b| b == b')') else {
            return false;
        };
        // The one store-modifier there is: `UNCHANGEDSINCE` SP mod-sequence.
        let modifier = rest[1..close].to_ascii_uppercase();
        let known = modifier
            .strip_prefix(b"UNCHANGEDSINCE ")
            .is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit));
        match rest.get(close + 1) {
            Some(b' ') if known => rest = &rest[close + 2..],
            _ => return false,
        }
    }
    let Some(item_end) = rest.iter().position(|&b| b == b' ') else {
        // No flags after the item: not a STORE the server reads as we do.
        return false;
    };
    let item = rest[..item_end].to_ascii_uppercase();
    let flags = &rest[item_end..];
    match item.as_slice() {
        b"-FLAGS" | b"-FLAGS.SILENT" => true,
        b"+FLAGS" | b"+FLAGS.SILENT" | b"FLAGS" | b"FLAGS.SILENT" => {
            !contains_ignore_case(flags, b"\\deleted")
        }
        _ => false,
    }
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}
