//! Streaming nom parsers for the IMAP commands a client may send before login
//! (RFC 3501 §9, RFC 9051 §9, RFC 7888 literals, RFC 4959 SASL-IR, RFC 2971 ID).
//!
//! Parsers take the bytes received so far. A command that is not complete yet
//! yields [`Decode::Incomplete`]; one that announced a literal whose bytes have
//! not arrived yields [`Decode::LiteralAnnounced`], so the front-end can answer
//! a synchronising literal with `+`. Neither is an error.

use std::borrow::Cow;

use nom::IResult;
use nom::Parser;
use nom::branch::alt;
use nom::bytes::streaming::{tag, tag_no_case, take, take_while, take_while1};
use nom::combinator::{map, opt, value};
use nom::sequence::{preceded, separated_pair};

/// Result of trying to decode one command from the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decode<T> {
    /// Parsed `T`; `consumed` bytes of the input belong to it.
    Done { consumed: usize, value: T },
    /// More bytes are needed.
    Incomplete,
    /// A literal of `length` octets was announced at byte `offset` of the
    /// input (where its data starts) and its data has not fully arrived.
    /// `sync` is false for RFC 7888 non-synchronising literals (`{n+}`).
    LiteralAnnounced { offset: usize, length: u64, sync: bool },
    /// The bytes cannot be a valid command.
    Failed(&'static str),
}

/// Parser error: a nom error kind, or a literal whose data is missing.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError<'a> {
    Nom(&'a [u8], nom::error::ErrorKind),
    Literal { data: &'a [u8], length: u64, sync: bool },
    Invalid(&'static str),
}

impl<'a> nom::error::ParseError<&'a [u8]> for ParseError<'a> {
    fn from_error_kind(input: &'a [u8], kind: nom::error::ErrorKind) -> Self {
        ParseError::Nom(input, kind)
    }
    fn append(_: &'a [u8], _: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

type PResult<'a, O> = IResult<&'a [u8], O, ParseError<'a>>;

/// `ID` parameters: (field, value) pairs, a value may be NIL.
pub type IdParams<'a> = Vec<(Cow<'a, [u8]>, Option<Cow<'a, [u8]>>)>;

/// A pre-login command with its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    pub tag: &'a [u8],
    pub body: CommandBody<'a>,
}

/// The commands the proxy handles itself before login. Everything else is
/// [`CommandBody::Other`], answered with `BAD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandBody<'a> {
    Capability,
    Noop,
    Logout,
    StartTls,
    /// `ID` with the client's parameters, `None` for `ID NIL`.
    Id(Option<IdParams<'a>>),
    Login {
        username: Cow<'a, [u8]>,
        password: Cow<'a, [u8]>,
    },
    /// `initial_response` is still base64 (or `=`), as sent.
    Authenticate {
        mechanism: &'a [u8],
        initial_response: Option<&'a [u8]>,
    },
    /// Any other command name: valid IMAP perhaps, but not before login.
    Other {
        name: &'a [u8],
    },
}

impl CommandBody<'_> {
    /// Command name for logs and metrics (bounded set).
    pub fn name(&self) -> &'static str {
        match self {
            CommandBody::Capability => "CAPABILITY",
            CommandBody::Noop => "NOOP",
            CommandBody::Logout => "LOGOUT",
            CommandBody::StartTls => "STARTTLS",
            CommandBody::Id(_) => "ID",
            CommandBody::Login { .. } => "LOGIN",
            CommandBody::Authenticate { .. } => "AUTHENTICATE",
            CommandBody::Other { .. } => "other",
        }
    }
}

/// Decodes one command from the start of `input`.
pub fn decode_command(input: &[u8]) -> Decode<Command<'_>> {
    finish(input, command(input))
}

/// One line of an AUTHENTICATE exchange: `authenticate-data = base64 CRLF`
/// or `"*" CRLF` to cancel. Returned without the CRLF, for [`crate::frontend::sasl`].
pub fn decode_auth_line(input: &[u8]) -> Decode<&[u8]> {
    finish(input, auth_line(input))
}

/// How one line of a command ends: announcing a literal, or ending the
/// command (which the full parse then decodes or refuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    /// `{length}` (or `{length+}`, `sync` false) then CRLF: the literal's
    /// data starts at `data_at`, just after the line.
    Literal { data_at: usize, length: u64, sync: bool },
    /// Anything else: the command ends with this line (or is invalid).
    Command,
}

/// Reads one line of a command (its bytes up to and including its LF, after
/// the previous literal's data) once, and says whether it ends announcing
/// a literal: `{n}` or `{n+}` right before its CRLF, outside any quoted
/// string, after SP or `(` (where a string may start, RFC 9051 §9), `n`
/// a number64. The front-end reads each line of a command with this, and
/// runs the whole-command parser once, when the command has ended: the
/// bytes before the last literal are never parsed again.
pub fn line_end(line: &[u8]) -> LineEnd {
    let Some(body) = line.strip_suffix(b"}\r\n") else {
        return LineEnd::Command;
    };
    let (digits_end, sync) = match body.strip_suffix(b"+") {
        Some(rest) => (rest.len(), false),
        None => (body.len(), true),
    };
    let digits_start = body[..digits_end]
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |p| p + 1);
    let Some(brace) = digits_start.checked_sub(1) else {
        return LineEnd::Command;
    };
    let digits = &body[digits_start..digits_end];
    if line[brace] != b'{' || digits.is_empty() || brace == 0 || !b" (".contains(&line[brace - 1]) {
        return LineEnd::Command;
    }
    let Some(length) = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u64>().ok())
        .filter(|&n| n < (1 << 63))
    else {
        return LineEnd::Command;
    };
    if in_quoted(&line[..brace]) {
        return LineEnd::Command;
    }
    LineEnd::Literal {
        data_at: line.len(),
        length,
        sync,
    }
}

/// Whether `bytes` end inside a quoted string (`"` opened, not closed;
/// `\` escapes the next byte).
fn in_quoted(bytes: &[u8]) -> bool {
    let mut quoted = false;
    let mut escaped = false;
    for &b in bytes {
        match (quoted, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (_, false, b'"') => quoted = !quoted,
            _ => {}
        }
    }
    quoted
}

/// The tag and command name at the start of a command, once both have
/// arrived: the front-end needs them to answer a literal announcement.
pub fn head(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (rest, tag_) = imap_tag(input).ok()?;
    let (rest, _) = sp(rest).ok()?;
    let (_, name) = atom(rest).ok()?;
    Some((tag_, name))
}

/// The tag at the start of a line that failed to parse, for the `BAD` reply;
/// `None` when not even a tag can be read (the reply is then untagged, `* BAD`).
pub fn leading_tag(line: &[u8]) -> Option<&[u8]> {
    let end = line.iter().position(|&b| !is_tag_char(b)).unwrap_or(line.len());
    (end > 0 && line.get(end) == Some(&b' ')).then(|| &line[..end])
}

fn finish<'a, T>(input: &'a [u8], result: PResult<'a, T>) -> Decode<T> {
    match result {
        Ok((rest, value)) => Decode::Done {
            consumed: input.len() - rest.len(),
            value,
        },
        Err(nom::Err::Incomplete(_)) => Decode::Incomplete,
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => match e {
            ParseError::Literal { data, length, sync } => Decode::LiteralAnnounced {
                offset: input.len() - data.len(),
                length,
                sync,
            },
            ParseError::Invalid(why) => Decode::Failed(why),
            ParseError::Nom(..) => Decode::Failed("syntax error"),
        },
    }
}

/// `command = tag SP (command-any / command-auth / command-nonauth / command-select) CRLF`
fn command(input: &[u8]) -> PResult<'_, Command<'_>> {
    let (input, tag_) = imap_tag(input)?;
    let (input, _) = sp(input)?;
    let (input, name) = atom(input)?;
    let (input, body) = command_body(name, input)?;
    let (input, _) = crlf(input)?;
    Ok((input, Command { tag: tag_, body }))
}

fn command_body<'a>(name: &'a [u8], input: &'a [u8]) -> PResult<'a, CommandBody<'a>> {
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    if is("CAPABILITY") {
        Ok((input, CommandBody::Capability))
    } else if is("NOOP") {
        Ok((input, CommandBody::Noop))
    } else if is("LOGOUT") {
        Ok((input, CommandBody::Logout))
    } else if is("STARTTLS") {
        Ok((input, CommandBody::StartTls))
    } else if is("LOGIN") {
        login(input)
    } else if is("AUTHENTICATE") {
        authenticate(input)
    } else if is("ID") {
        map(preceded(sp, id_params_list), CommandBody::Id).parse(input)
    } else {
        // Consume the arguments of a command we do not serve, so the reply
        // goes out only once its line has arrived.
        let (input, _) = opt(preceded(sp, other_arguments)).parse(input)?;
        Ok((input, CommandBody::Other { name }))
    }
}

/// `login = "LOGIN" SP userid SP password`; `userid = astring`; `password = astring`
fn login(input: &[u8]) -> PResult<'_, CommandBody<'_>> {
    map(
        preceded(sp, separated_pair(astring, sp, astring)),
        |(username, password)| CommandBody::Login { username, password },
    )
    .parse(input)
}

/// `authenticate = "AUTHENTICATE" SP auth-type [SP (base64 / "=")]` (RFC 4959)
fn authenticate(input: &[u8]) -> PResult<'_, CommandBody<'_>> {
    let (input, _) = sp(input)?;
    let (input, mechanism) = atom(input)?;
    let (input, initial_response) = opt(preceded(sp, base64_or_empty)).parse(input)?;
    Ok((
        input,
        CommandBody::Authenticate {
            mechanism,
            initial_response,
        },
    ))
}

/// RFC 2971 §3.3: at most 30 field-value pairs in an `ID`.
pub const MAX_ID_PAIRS: usize = 30;
/// RFC 2971 §3.3: an `ID` field is at most 30 octets.
pub const MAX_ID_FIELD_BYTES: usize = 30;
/// RFC 2971 §3.3: an `ID` value is at most 1024 octets.
pub const MAX_ID_VALUE_BYTES: usize = 1024;

/// `id-params-list = "(" *(string SP nstring) ")" / nil` (RFC 2971 §4; the
/// RFC's own grammar puts SP between pairs), within §3.3's limits: a 31st
/// pair, a longer field or value fails as soon as it is seen.
fn id_params_list(input: &[u8]) -> PResult<'_, Option<IdParams<'_>>> {
    alt((value(None, tag_no_case("NIL")), map(id_params, Some))).parse(input)
}

fn id_params(input: &[u8]) -> PResult<'_, IdParams<'_>> {
    let (mut input, _) = tag("(")(input)?;
    let mut pairs = IdParams::new();
    loop {
        let close: PResult<'_, &[u8]> = tag(")")(input);
        match close {
            Ok((rest, _)) => return Ok((rest, pairs)),
            Err(nom::Err::Error(_)) => {}
            Err(e) => return Err(e),
        }
        if !pairs.is_empty() {
            input = sp(input)?.0;
        }
        if pairs.len() == MAX_ID_PAIRS {
            return Err(invalid("more than 30 ID field-value pairs"));
        }
        let (rest, field) = string(input)?;
        if field.len() > MAX_ID_FIELD_BYTES {
            return Err(invalid("ID field longer than 30 octets"));
        }
        let (rest, _) = sp(rest)?;
        let (rest, value) = nstring(rest)?;
        if value.as_ref().is_some_and(|v| v.len() > MAX_ID_VALUE_BYTES) {
            return Err(invalid("ID value longer than 1024 octets"));
        }
        pairs.push((field, value));
        input = rest;
    }
}

fn invalid(why: &'static str) -> nom::Err<ParseError<'static>> {
    nom::Err::Failure(ParseError::Invalid(why))
}

/// `auth-line = (base64 / "*") CRLF`
fn auth_line(input: &[u8]) -> PResult<'_, &[u8]> {
    let (input, data) = alt((tag("*"), base64_or_empty, tag(""))).parse(input)?;
    let (input, _) = crlf(input)?;
    Ok((input, data))
}

/// `base64 = *(4base64-char) [base64-terminal]`, or `=` for an empty response.
fn base64_or_empty(input: &[u8]) -> PResult<'_, &[u8]> {
    take_while1(|b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')(input)
}

/// Anything up to CRLF: the arguments of a command we do not serve. A
/// literal announced in them is refused by the front-end as its line ends
/// ([`line_end`]), before any of its data is read, so none is skipped here.
fn other_arguments(input: &[u8]) -> PResult<'_, ()> {
    let (rest, _) = take_while(|b: u8| b != b'\r' && b != b'\n')(input)?;
    Ok((rest, ()))
}

/// `astring = 1*ASTRING-CHAR / string`
fn astring(input: &[u8]) -> PResult<'_, Cow<'_, [u8]>> {
    alt((string, map(take_while1(is_astring_char), Cow::Borrowed))).parse(input)
}

/// `nstring = string / nil`
fn nstring(input: &[u8]) -> PResult<'_, Option<Cow<'_, [u8]>>> {
    alt((map(string, Some), value(None, tag_no_case("NIL")))).parse(input)
}

/// `string = quoted / literal`
fn string(input: &[u8]) -> PResult<'_, Cow<'_, [u8]>> {
    alt((quoted, map(literal, Cow::Borrowed))).parse(input)
}

/// `quoted = DQUOTE *QUOTED-CHAR DQUOTE`;
/// `QUOTED-CHAR = <any TEXT-CHAR except quoted-specials> / "\" quoted-specials / UTF8-2 / UTF8-3 / UTF8-4`
/// (RFC 9051 §9). Eight-bit bytes are accepted as found: many clients send
/// UTF-8 passwords in quoted strings.
fn quoted(input: &[u8]) -> PResult<'_, Cow<'_, [u8]>> {
    let (input, _) = tag("\"")(input)?;
    let mut owned: Option<Vec<u8>> = None;
    let mut i = 0;
    loop {
        let Some(&b) = input.get(i) else {
            return Err(nom::Err::Incomplete(nom::Needed::new(1)));
        };
        match b {
            b'"' => {
                let value = match owned {
                    Some(v) => Cow::Owned(v),
                    None => Cow::Borrowed(&input[..i]),
                };
                return Ok((&input[i + 1..], value));
            }
            b'\\' => {
                let Some(&next) = input.get(i + 1) else {
                    return Err(nom::Err::Incomplete(nom::Needed::new(1)));
                };
                if next != b'"' && next != b'\\' {
                    return Err(nom::Err::Failure(ParseError::Invalid(
                        "invalid escape in quoted string",
                    )));
                }
                owned.get_or_insert_with(|| input[..i].to_vec()).push(next);
                i += 2;
            }
            b'\r' | b'\n' | 0 => {
                return Err(nom::Err::Failure(ParseError::Invalid(
                    "invalid character in quoted string",
                )));
            }
            _ => {
                if let Some(v) = owned.as_mut() {
                    v.push(b);
                }
                i += 1;
            }
        }
    }
}

/// `literal = "{" number64 ["+"] "}" CRLF *CHAR8` (RFC 3501, RFC 7888 §8).
/// NUL is not allowed in a literal (`CHAR8 = %x01-ff`).
fn literal(input: &[u8]) -> PResult<'_, &[u8]> {
    let (input, _) = tag("{")(input)?;
    let (input, digits) = take_while1(|b: u8| b.is_ascii_digit())(input)?;
    let (input, plus) = opt(tag("+")).parse(input)?;
    let (input, _) = tag("}")(input)?;
    let (data, _) = crlf(input)?;
    // number64 = 1*DIGIT with a value below 2^63 (RFC 9051 §9).
    let length = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u64>().ok())
        .filter(|&n| n < (1 << 63))
        .ok_or(nom::Err::Failure(ParseError::Invalid(
            "literal length out of range",
        )))?;
    if (data.len() as u64) < length {
        return Err(nom::Err::Failure(ParseError::Literal {
            data,
            length,
            sync: plus.is_none(),
        }));
    }
    let (rest, bytes) = take(length as usize)(data)?;
    if bytes.contains(&0) {
        return Err(nom::Err::Failure(ParseError::Invalid("NUL in literal")));
    }
    Ok((rest, bytes))
}

/// `tag = 1*<any ASTRING-CHAR except "+">`
fn imap_tag(input: &[u8]) -> PResult<'_, &[u8]> {
    take_while1(is_tag_char)(input)
}

/// `atom = 1*ATOM-CHAR`
fn atom(input: &[u8]) -> PResult<'_, &[u8]> {
    take_while1(is_atom_char)(input)
}

fn sp(input: &[u8]) -> PResult<'_, &[u8]> {
    tag(" ")(input)
}

fn crlf(input: &[u8]) -> PResult<'_, &[u8]> {
    tag("\r\n")(input)
}

/// `ATOM-CHAR = <any CHAR except atom-specials>`;
/// `atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / resp-specials`
fn is_atom_char(b: u8) -> bool {
    b.is_ascii() && !b.is_ascii_control() && !b"(){ %*\"\\]".contains(&b)
}

/// `ASTRING-CHAR = ATOM-CHAR / resp-specials`
fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

fn is_tag_char(b: u8) -> bool {
    is_astring_char(b) && b != b'+'
}

#[cfg(test)]
mod tests;
