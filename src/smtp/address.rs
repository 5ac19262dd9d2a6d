//! RFC 5322 §3.4 address lists, as the PEC header rules read them from
//! `To:`, `Cc:`, `From:`, `Sender:` and the `Resent-` fields, and RFC 5321
//! mailboxes as `RCPT TO` names them, both reduced to one canonical
//! [`Address`] so the two can be compared as sets.
//!
//! One function per ABNF rule, the rule above it; the obsolete forms of
//! RFC 5322 §4.4 that real clients still send are accepted (`John Q.
//! Public`, empty list elements, a route in `<...>`, CFWS around the dots
//! of an address), as are UTF-8 bytes where RFC 6532 allows them.
//! Encoded words (RFC 2047) are atoms of a display name and need no
//! decoding: only the addresses are compared.
//!
//! # Why our own parser
//!
//! `mail-parser` and `mailparse` parse address lists, but leniently: they
//! return their best guess for any input, where a check must refuse what
//! a reader could see differently (`To: bob@x hidden@y`). `email_address`
//! parses one `addr-spec`, without display names or groups; `addr` parses
//! domain names. So: nom rules like the rest of the project, strict, with
//! stated bounds; `idna` (already built for `url`) for domains.
//!
//! # Canonical form
//!
//! The local part is its meaning, not its spelling: quotes and
//! quoted-pairs undone (`"a.b"@x` is `a.b@x`, RFC 5321 §4.1.2), CFWS
//! dropped; ASCII letters lowered. RFC 5321 §2.4 lets a server treat
//! local parts case-sensitively, but PEC mailboxes are lower-case and the
//! providers treat addresses case-insensitively, so a `Bob@` in `To:` and
//! a `bob@` in `RCPT TO` are the same recipient. Non-ASCII local parts
//! (RFC 6531) are compared byte for byte. The domain is lowered and made
//! an A-label by UTS #46 (`idna`, STD3 rules): `bücher.example`,
//! `BÜCHER.example` and `xn--bcher-kva.example` are one domain. A domain
//! literal (`[192.0.2.1]`) is kept as written, ASCII letters lowered; it
//! must be ASCII without `@`, as every RFC 5321 address literal is.
//!
//! # Bounds
//!
//! Linear in the input: every rule consumes what it reads or fails without
//! trying another rule on the same bytes, but for `address`, which reads
//! the words once and then decides from the next byte whether they were a
//! display name, a group name or a local part. No recursion: comments nest
//! (RFC 5322 §3.2.2) and are read by a loop with a depth counter, refused
//! deeper than [`MAX_COMMENT_DEPTH`]; groups do not nest. A domain is at
//! most [`MAX_DOMAIN_BYTES`], so its UTS #46 mapping (Punycode is
//! quadratic in a label) costs a bounded amount per address. Addresses
//! returned: at most one per 3 input bytes (`a@b`); the caller bounds the
//! input (the guard's header block, `smtp_max_header_bytes`).

use std::fmt;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// Comments nested deeper than this are refused. RFC 5322 sets no limit;
/// real comments do not nest at all.
pub const MAX_COMMENT_DEPTH: usize = 8;
/// RFC 5321 §4.5.3.1.2: a domain is at most 255 octets, as written and
/// as A-labels.
pub const MAX_DOMAIN_BYTES: usize = 255;

/// An address in canonical form (see the module documentation): equal
/// addresses are the same recipient.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    local: String,
    domain: String,
}

impl Address {
    /// The local part, unquoted, ASCII letters lowered.
    pub fn local(&self) -> &str {
        &self.local
    }

    /// The domain: lower-case A-labels, or a domain literal.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    fn new(local: &[u8], domain: Domain) -> Result<Self, AddressError> {
        let local = std::str::from_utf8(local).map_err(|_| AddressError::NotUtf8)?;
        let domain = match domain {
            Domain::Literal(l) => std::str::from_utf8(&l)
                .map_err(|_| AddressError::NotUtf8)?
                .to_ascii_lowercase(),
            Domain::Name(name) => {
                if name.len() > MAX_DOMAIN_BYTES {
                    return Err(AddressError::BadDomain);
                }
                let ascii = Uts46::new()
                    .to_ascii(&name, AsciiDenyList::STD3, Hyphens::Allow, DnsLength::Ignore)
                    .map_err(|_| AddressError::BadDomain)?;
                // The A-labels too: the canonical form parses back.
                if ascii.len() > MAX_DOMAIN_BYTES {
                    return Err(AddressError::BadDomain);
                }
                ascii.into_owned()
            }
        };
        Ok(Self {
            local: local.to_ascii_lowercase(),
            domain,
        })
    }
}

/// `local@domain`, the local part quoted when it is no `dot-atom-text`:
/// an `addr-spec` that parses back to the same address.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = self.local.as_bytes();
        let dot_atom = !l.is_empty()
            && l.split(|&b| b == b'.')
                .all(|atom| !atom.is_empty() && atom.iter().all(|&b| is_atext(b)));
        if dot_atom {
            write!(f, "{}@{}", self.local, self.domain)
        } else {
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            write!(f, "\"@{}", self.domain)
        }
    }
}

/// Why a value is not an address list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    /// Not the RFC 5322 syntax.
    Syntax,
    /// Comments nested deeper than [`MAX_COMMENT_DEPTH`].
    CommentTooDeep,
    /// An address that is not UTF-8.
    NotUtf8,
    /// A domain UTS #46 refuses, or longer than [`MAX_DOMAIN_BYTES`].
    BadDomain,
}

impl<I> nom::error::ParseError<I> for AddressError {
    fn from_error_kind(_: I, _: nom::error::ErrorKind) -> Self {
        AddressError::Syntax
    }
    fn append(_: I, _: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

type PResult<'a, T> = nom::IResult<&'a [u8], T, AddressError>;

fn fail<T>() -> Result<T, nom::Err<AddressError>> {
    Err(nom::Err::Error(AddressError::Syntax))
}

fn fatal<T>(e: AddressError) -> Result<T, nom::Err<AddressError>> {
    Err(nom::Err::Failure(e))
}

fn unwrap_err(e: nom::Err<AddressError>) -> AddressError {
    match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
        nom::Err::Incomplete(_) => AddressError::Syntax,
    }
}

/// `address-list = (address *("," address)) / obs-addr-list`, as in
/// `To:` and `Cc:`: every mailbox, group members included. Empty elements
/// (`obs-addr-list`) are skipped, and an empty value is an empty list, as
/// `undisclosed-recipients:;` is.
pub fn address_list(value: &[u8]) -> Result<Vec<Address>, AddressError> {
    let mut out = Vec::new();
    list(value, None, Element::Address, &mut out).map_err(unwrap_err)?;
    Ok(out)
}

/// `mailbox-list = (mailbox *("," mailbox)) / obs-mbox-list`, as in
/// `From:` and `Resent-From:`: no groups.
pub fn mailbox_list(value: &[u8]) -> Result<Vec<Address>, AddressError> {
    let mut out = Vec::new();
    list(value, None, Element::Mailbox, &mut out).map_err(unwrap_err)?;
    Ok(out)
}

/// The `Mailbox` of an RFC 5321 path as [`crate::smtp::parse`] gives it
/// (`Local-part "@" ( Domain / address-literal )`, no brackets), in the
/// same canonical form as the header addresses.
pub fn smtp_mailbox(mailbox: &[u8]) -> Result<Address, AddressError> {
    match addr_spec(mailbox) {
        Ok((b"", a)) => Ok(a),
        Ok(_) => Err(AddressError::Syntax),
        Err(e) => Err(unwrap_err(e)),
    }
}

/// What a list holds: addresses (groups too) or mailboxes only.
#[derive(Clone, Copy)]
enum Element {
    Address,
    Mailbox,
}

/// Elements separated by commas, empty ones allowed (`obs-addr-list`,
/// `obs-mbox-list`, `obs-group-list`), up to `end` (`;` of a group) or the
/// end of the input.
fn list<'a>(
    mut input: &'a [u8],
    end: Option<u8>,
    element: Element,
    out: &mut Vec<Address>,
) -> PResult<'a, ()> {
    loop {
        (input, _) = opt_cfws(input)?;
        match input.first() {
            None if end.is_none() => return Ok((input, ())),
            Some(&b) if Some(b) == end => return Ok((&input[1..], ())),
            None => return fail(),
            Some(b',') => {
                input = &input[1..];
                continue;
            }
            Some(_) => {}
        }
        (input, _) = match element {
            Element::Address => address(input, out)?,
            Element::Mailbox => mailbox_into(input, out)?,
        };
        (input, _) = opt_cfws(input)?;
        match input.first() {
            Some(b',') => input = &input[1..],
            None if end.is_none() => return Ok((input, ())),
            Some(&b) if Some(b) == end => return Ok((&input[1..], ())),
            _ => return fail(),
        }
    }
}

/// `address = mailbox / group`;
/// `group = display-name ":" [group-list] ";" [CFWS]`;
/// `group-list = mailbox-list / CFWS / obs-group-list`.
fn address<'a>(input: &'a [u8], out: &mut Vec<Address>) -> PResult<'a, ()> {
    let (rest, words) = words(input)?;
    if rest.first() == Some(&b':') {
        if !words.is_phrase() {
            return fail();
        }
        return list(&rest[1..], Some(b';'), Element::Mailbox, out);
    }
    let (rest, a) = mailbox_after(rest, words)?;
    out.push(a);
    Ok((rest, ()))
}

fn mailbox_into<'a>(input: &'a [u8], out: &mut Vec<Address>) -> PResult<'a, ()> {
    let (rest, words) = words(input)?;
    let (rest, a) = mailbox_after(rest, words)?;
    out.push(a);
    Ok((rest, ()))
}

/// `mailbox = name-addr / addr-spec`; `name-addr = [display-name] angle-addr`;
/// `display-name = phrase`. The words before are read: a `<` makes them a
/// display name, an `@` a local part.
fn mailbox_after<'a>(input: &'a [u8], words: Words) -> PResult<'a, Address> {
    match input.first() {
        Some(b'<') if words.items.is_empty() || words.is_phrase() => angle_addr(input),
        Some(b'@') => {
            let local = words.local_part().ok_or(nom::Err::Error(AddressError::Syntax))?;
            let (rest, domain) = domain(&input[1..])?;
            let a = Address::new(&local, domain).map_err(nom::Err::Failure)?;
            Ok((rest, a))
        }
        _ => fail(),
    }
}

/// `angle-addr = [CFWS] "<" addr-spec ">" [CFWS] / obs-angle-addr`;
/// `obs-angle-addr = [CFWS] "<" obs-route addr-spec ">" [CFWS]`
/// (the leading CFWS is already read).
fn angle_addr(input: &[u8]) -> PResult<'_, Address> {
    let Some(input) = input.strip_prefix(b"<") else {
        return fail();
    };
    let (input, _) = opt_obs_route(input)?;
    let (input, a) = addr_spec(input)?;
    let Some(input) = input.strip_prefix(b">") else {
        return fail();
    };
    Ok((input, a))
}

/// `obs-route = obs-domain-list ":"`;
/// `obs-domain-list = *(CFWS / ",") "@" domain *("," [CFWS] ["@" domain])`.
/// Dropped, as RFC 5321 §4.1.1.3 drops a source route.
fn opt_obs_route(input: &[u8]) -> PResult<'_, ()> {
    let mut i = input;
    loop {
        (i, _) = opt_cfws(i)?;
        match i.first() {
            Some(b',') => i = &i[1..],
            Some(b'@') => break,
            _ => return Ok((input, ())),
        }
    }
    loop {
        (i, _) = opt_cfws(i)?;
        match i.first() {
            Some(b'@') => (i, _) = domain(&i[1..])?,
            Some(b',') => i = &i[1..],
            Some(b':') => return Ok((&i[1..], ())),
            _ => return fail(),
        }
    }
}

/// `addr-spec = local-part "@" domain`;
/// `local-part = dot-atom / quoted-string / obs-local-part`.
fn addr_spec(input: &[u8]) -> PResult<'_, Address> {
    let (input, words) = words(input)?;
    let Some(input) = input.strip_prefix(b"@") else {
        return fail();
    };
    let local = words.local_part().ok_or(nom::Err::Error(AddressError::Syntax))?;
    let (input, domain) = domain(input)?;
    let a = Address::new(&local, domain).map_err(nom::Err::Failure)?;
    Ok((input, a))
}

enum Domain {
    Name(Vec<u8>),
    Literal(Vec<u8>),
}

/// `domain = dot-atom / domain-literal / obs-domain`;
/// `obs-domain = atom *("." atom)`;
/// `domain-literal = [CFWS] "[" *([FWS] dtext) [FWS] "]" [CFWS]`.
fn domain(input: &[u8]) -> PResult<'_, Domain> {
    let (mut input, _) = opt_cfws(input)?;
    if let Some(rest) = input.strip_prefix(b"[") {
        let mut literal = vec![b'['];
        input = rest;
        loop {
            (input, _) = opt_fws(input)?;
            match input.first() {
                Some(b']') => break,
                Some(&b) if is_dtext(b) => {
                    literal.push(b);
                    input = &input[1..];
                }
                _ => return fail(),
            }
        }
        literal.push(b']');
        let (input, _) = opt_cfws(&input[1..])?;
        return Ok((input, Domain::Literal(literal)));
    }
    let mut name = Vec::new();
    loop {
        let (rest, atom) = atom(input)?;
        name.extend_from_slice(atom);
        input = rest;
        match input.strip_prefix(b".") {
            Some(rest) => {
                name.push(b'.');
                input = rest;
            }
            None => return Ok((input, Domain::Name(name))),
        }
    }
}

/// What [`words`] read: words and dots.
struct Words {
    items: Vec<Item>,
}

enum Item {
    Word(Vec<u8>),
    Dot,
}

impl Words {
    /// `phrase = 1*word / obs-phrase`; `obs-phrase = word *(word / "." / CFWS)`.
    fn is_phrase(&self) -> bool {
        matches!(self.items.first(), Some(Item::Word(_)))
    }

    /// `obs-local-part = word *("." word)`, which `dot-atom` and
    /// `quoted-string` are cases of: its meaning, words joined by dots.
    fn local_part(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut want_word = true;
        for item in &self.items {
            match (item, want_word) {
                (Item::Word(w), true) => out.extend_from_slice(w),
                (Item::Dot, false) => out.push(b'.'),
                _ => return None,
            }
            want_word = !want_word;
        }
        (!want_word).then_some(out)
    }
}

/// `*(word / "." / CFWS)`: the words of a display name, a group name or a
/// local part, read once; what follows says which they were.
fn words(mut input: &[u8]) -> PResult<'_, Words> {
    let mut items = Vec::new();
    loop {
        (input, _) = opt_cfws(input)?;
        match input.first() {
            Some(b'.') => {
                items.push(Item::Dot);
                input = &input[1..];
            }
            Some(b'"') => {
                let (rest, w) = quoted_string(input)?;
                items.push(Item::Word(w));
                input = rest;
            }
            Some(&b) if is_atext(b) => {
                let (rest, a) = atom(input)?;
                items.push(Item::Word(a.to_vec()));
                input = rest;
            }
            _ => return Ok((input, Words { items })),
        }
    }
}

/// `atom = [CFWS] 1*atext [CFWS]`: the atext.
fn atom(input: &[u8]) -> PResult<'_, &[u8]> {
    let (input, _) = opt_cfws(input)?;
    let n = input.iter().take_while(|&&b| is_atext(b)).count();
    if n == 0 {
        return fail();
    }
    let (text, input) = input.split_at(n);
    let (input, _) = opt_cfws(input)?;
    Ok((input, text))
}

/// `quoted-string = [CFWS] DQUOTE *([FWS] qcontent) [FWS] DQUOTE [CFWS]`;
/// `qcontent = qtext / quoted-pair`: its meaning (quoted-pairs undone,
/// folds unfolded).
fn quoted_string(input: &[u8]) -> PResult<'_, Vec<u8>> {
    let (input, _) = opt_cfws(input)?;
    let Some(mut input) = input.strip_prefix(b"\"") else {
        return fail();
    };
    let mut out = Vec::new();
    loop {
        match input {
            [b'"', rest @ ..] => {
                let (rest, _) = opt_cfws(rest)?;
                return Ok((rest, out));
            }
            [b'\\', b, rest @ ..] if is_quoted_pair(*b) => {
                out.push(*b);
                input = rest;
            }
            [b' ' | b'\t', ..] | [b'\r', b'\n', b' ' | b'\t', ..] => {
                let before = input;
                (input, _) = opt_fws(input)?;
                // FWS means its white space: the CRLF of a fold is dropped.
                out.extend(
                    before[..before.len() - input.len()]
                        .iter()
                        .filter(|&&b| b == b' ' || b == b'\t'),
                );
            }
            [b, rest @ ..] if is_qtext(*b) => {
                out.push(*b);
                input = rest;
            }
            _ => return fail(),
        }
    }
}

/// `[CFWS]`; `CFWS = (1*([FWS] comment) [FWS]) / FWS`.
fn opt_cfws(mut input: &[u8]) -> PResult<'_, ()> {
    loop {
        (input, _) = opt_fws(input)?;
        if input.first() == Some(&b'(') {
            (input, _) = comment(input)?;
        } else {
            return Ok((input, ()));
        }
    }
}

/// `comment = "(" *([FWS] ccontent) [FWS] ")"`;
/// `ccontent = ctext / quoted-pair / comment`. A loop with a depth
/// counter, not recursion: at most [`MAX_COMMENT_DEPTH`] deep.
fn comment(input: &[u8]) -> PResult<'_, ()> {
    let mut depth = 0usize;
    let mut input = input;
    loop {
        match input {
            [b'(', rest @ ..] => {
                depth += 1;
                if depth > MAX_COMMENT_DEPTH {
                    return fatal(AddressError::CommentTooDeep);
                }
                input = rest;
            }
            [b')', rest @ ..] => {
                depth -= 1;
                input = rest;
                if depth == 0 {
                    return Ok((input, ()));
                }
            }
            [b'\\', b, rest @ ..] if is_quoted_pair(*b) => input = rest,
            [b' ' | b'\t', ..] | [b'\r', b'\n', b' ' | b'\t', ..] => (input, _) = opt_fws(input)?,
            [b, rest @ ..] if is_ctext(*b) => input = rest,
            _ => return fail(),
        }
    }
}

/// `[FWS]`; `FWS = ([*WSP CRLF] 1*WSP) / obs-FWS`;
/// `obs-FWS = 1*WSP *(CRLF 1*WSP)`: a CRLF only before white space.
fn opt_fws(mut input: &[u8]) -> PResult<'_, ()> {
    loop {
        match input {
            [b' ' | b'\t', rest @ ..] => input = rest,
            [b'\r', b'\n', b' ' | b'\t', rest @ ..] => input = rest,
            _ => return Ok((input, ())),
        }
    }
}

/// `atext` of RFC 5322 §3.2.3, plus UTF-8 (RFC 6532 §3.2).
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

/// `qtext = %d33 / %d35-91 / %d93-126`, plus UTF-8.
fn is_qtext(b: u8) -> bool {
    b == 33 || (35..=91).contains(&b) || (93..=126).contains(&b) || b >= 0x80
}

/// `ctext = %d33-39 / %d42-91 / %d93-126`, plus UTF-8.
fn is_ctext(b: u8) -> bool {
    (33..=39).contains(&b) || (42..=91).contains(&b) || (93..=126).contains(&b) || b >= 0x80
}

/// `dtext = %d33-90 / %d94-126`, less `@`, and without RFC 6532's UTF-8:
/// an address literal (RFC 5321 §4.1.3) is ASCII and holds no `@`, so an
/// address has one `@` outside its quoted local part and an ASCII domain.
fn is_dtext(b: u8) -> bool {
    ((33..=90).contains(&b) && b != b'@') || (94..=126).contains(&b)
}

/// `quoted-pair = ("\" (VCHAR / WSP))`, plus UTF-8.
fn is_quoted_pair(b: u8) -> bool {
    b == b' ' || b == b'\t' || b.is_ascii_graphic() || b >= 0x80
}

#[cfg(test)]
mod tests;
