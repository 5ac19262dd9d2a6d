//! nom parsers for the SMTP command lines a submission client sends
//! (RFC 5321 §4.1, RFC 4954 AUTH, RFC 1870 SIZE, RFC 3207 STARTTLS).
//!
//! A command is one line ending in CRLF. Until its line feed has arrived a
//! command is [`Decode::Incomplete`]; the caller bounds how long a line may
//! grow. A complete line is then parsed with one function per ABNF rule.
//!
//! Deliberate leniency, as Postfix and Dovecot show it is needed by real
//! clients: a space after `FROM:`/`TO:`, trailing spaces after commands that
//! take no argument, and any printable name after `EHLO`/`HELO`. Eight-bit
//! bytes are accepted in addresses (RFC 6531 SMTPUTF8 local parts and
//! domains); NUL and bare LF never are (RFC 5321 §2.3.8, §4.1.1).

use nom::IResult;
use nom::Parser;
use nom::branch::alt;
use nom::bytes::streaming::{tag, tag_no_case, take_while, take_while1};
use nom::combinator::{map, opt, recognize, value};
use nom::multi::{many0, separated_list1};
use nom::sequence::{delimited, pair, preceded};

/// Result of trying to decode one line from the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decode<T> {
    /// Parsed `T`; `consumed` bytes (the whole line) belong to it.
    Done { consumed: usize, value: T },
    /// The line has not ended yet.
    Incomplete,
    /// The line (`consumed` bytes) is complete but not a valid command.
    Failed { consumed: usize, invalid: Invalid },
}

/// Why a complete line is not a valid command; each maps to one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// A command we know with bad arguments: `501 5.5.4`, with the syntax.
    Arguments(Verb),
    /// Not a command at all (no verb, NUL, bare LF): `500 5.5.2`.
    Syntax(&'static str),
}

/// The verbs whose argument syntax we check, for the `501` hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Ehlo,
    Helo,
    Mail,
    Rcpt,
    Data,
    Rset,
    Noop,
    Quit,
    StartTls,
    Auth,
    Vrfy,
    Expn,
    Help,
    Bdat,
}

impl Verb {
    /// The syntax, quoted in a `501 5.5.4 Syntax: ...` reply.
    pub fn syntax(self) -> &'static str {
        match self {
            Verb::Ehlo => "EHLO hostname",
            Verb::Helo => "HELO hostname",
            Verb::Mail => "MAIL FROM:<address> [parameters]",
            Verb::Rcpt => "RCPT TO:<address> [parameters]",
            Verb::Data => "DATA",
            Verb::Rset => "RSET",
            Verb::Noop => "NOOP [text]",
            Verb::Quit => "QUIT",
            Verb::StartTls => "STARTTLS",
            Verb::Auth => "AUTH mechanism [initial-response]",
            Verb::Vrfy => "VRFY address",
            Verb::Expn => "EXPN list",
            Verb::Help => "HELP [topic]",
            Verb::Bdat => "BDAT size [LAST]",
        }
    }
}

/// A reverse-path: `Reverse-path = Path / "<>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReversePath<'a> {
    /// `<>`, the null sender of bounces.
    Null,
    /// The mailbox as sent, source route removed: `local@domain`.
    Mailbox(&'a [u8]),
}

/// `esmtp-param = esmtp-keyword ["=" esmtp-value]`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    pub keyword: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// A `SIZE=` parameter that is not `size-value = 1*20DIGIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidSize;

/// The size a client declared with `SIZE=` (RFC 1870 §6), if any.
pub fn declared_size(params: &[Param<'_>]) -> Result<Option<u64>, InvalidSize> {
    let Some(p) = params.iter().find(|p| p.keyword.eq_ignore_ascii_case(b"SIZE")) else {
        return Ok(None);
    };
    let v = p.value.ok_or(InvalidSize)?;
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return Err(InvalidSize);
    }
    // 20 digits may exceed u64: such a size is over any limit anyway.
    Ok(Some(
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX),
    ))
}

/// A command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `ehlo = "EHLO" SP ( Domain / address-literal ) CRLF`
    Ehlo(&'a [u8]),
    /// `helo = "HELO" SP Domain CRLF`
    Helo(&'a [u8]),
    /// `mail = "MAIL FROM:" Reverse-path [SP Mail-parameters] CRLF`
    Mail {
        from: ReversePath<'a>,
        params: Vec<Param<'a>>,
    },
    /// `rcpt = "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" / Forward-path ) [SP Rcpt-parameters] CRLF`
    Rcpt {
        to: &'a [u8],
        params: Vec<Param<'a>>,
    },
    Data,
    Rset,
    Noop,
    Quit,
    StartTls,
    /// `auth = "AUTH" SP sasl-mech [SP initial-response]` (RFC 4954 §4);
    /// the response is still base64 (or `=`).
    Auth {
        mechanism: &'a [u8],
        initial_response: Option<&'a [u8]>,
    },
    Vrfy,
    Expn,
    Help,
    /// RFC 3030 CHUNKING: never offered, so always refused.
    Bdat,
    /// A verb we do not know (`XCLIENT` among them: never from a client).
    Other {
        name: &'a [u8],
    },
}

impl Command<'_> {
    /// Command name for logs and metrics (bounded set).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Ehlo(_) => "EHLO",
            Command::Helo(_) => "HELO",
            Command::Mail { .. } => "MAIL",
            Command::Rcpt { .. } => "RCPT",
            Command::Data => "DATA",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::StartTls => "STARTTLS",
            Command::Auth { .. } => "AUTH",
            Command::Vrfy => "VRFY",
            Command::Expn => "EXPN",
            Command::Help => "HELP",
            Command::Bdat => "BDAT",
            Command::Other { .. } => "other",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Error<'a> {
    Nom(&'a [u8], nom::error::ErrorKind),
    Arguments(Verb),
}

impl<'a> nom::error::ParseError<&'a [u8]> for Error<'a> {
    fn from_error_kind(input: &'a [u8], kind: nom::error::ErrorKind) -> Self {
        Error::Nom(input, kind)
    }
    fn append(_: &'a [u8], _: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

type PResult<'a, O> = IResult<&'a [u8], O, Error<'a>>;

/// The line at the start of `input`, CRLF included, once its LF has arrived:
/// `Ok(line)`, or `Err(consumed)` for a line that is not CRLF-terminated or
/// holds a NUL (both never valid, RFC 5321 §2.3.8 and §4.1.1).
fn line(input: &[u8]) -> Option<Result<&[u8], (usize, &'static str)>> {
    let lf = input.iter().position(|&b| b == b'\n')?;
    let line = &input[..=lf];
    if lf == 0 || line[lf - 1] != b'\r' {
        return Some(Err((lf + 1, "lines must end with CRLF")));
    }
    if line.contains(&0) {
        return Some(Err((lf + 1, "NUL character in command")));
    }
    Some(Ok(line))
}

/// Decodes one command from the start of `input`.
pub fn decode_command(input: &[u8]) -> Decode<Command<'_>> {
    let line = match line(input) {
        None => return Decode::Incomplete,
        Some(Err((consumed, why))) => {
            return Decode::Failed {
                consumed,
                invalid: Invalid::Syntax(why),
            };
        }
        Some(Ok(line)) => line,
    };
    let consumed = line.len();
    match command(line) {
        Ok((b"", value)) => Decode::Done { consumed, value },
        Err(nom::Err::Error(Error::Arguments(verb)) | nom::Err::Failure(Error::Arguments(verb))) => {
            Decode::Failed {
                consumed,
                invalid: Invalid::Arguments(verb),
            }
        }
        _ => Decode::Failed {
            consumed,
            invalid: Invalid::Syntax("syntax error"),
        },
    }
}

/// One line of an AUTH exchange (RFC 4954 §4): `base64 CRLF`, `"=" CRLF`
/// or `"*" CRLF` to cancel. Returned without the CRLF, for [`crate::frontend::sasl`];
/// `Failed` when it is not base64.
pub fn decode_auth_line(input: &[u8]) -> Decode<&[u8]> {
    let line = match line(input) {
        None => return Decode::Incomplete,
        Some(Err((consumed, why))) => {
            return Decode::Failed {
                consumed,
                invalid: Invalid::Syntax(why),
            };
        }
        Some(Ok(line)) => line,
    };
    let data = &line[..line.len() - 2];
    if data == b"*" || data.iter().all(|&b| is_base64_char(b)) {
        Decode::Done {
            consumed: line.len(),
            value: data,
        }
    } else {
        Decode::Failed {
            consumed: line.len(),
            invalid: Invalid::Syntax("invalid base64"),
        }
    }
}

/// The verb at the start of a line, upper-cased, when there is one: lets the
/// front-end name an over-long command.
pub fn verb_of(line: &[u8]) -> Option<Vec<u8>> {
    let end = line
        .iter()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(line.len());
    (end > 0).then(|| line[..end].to_ascii_uppercase())
}

/// `command = verb [SP arguments] CRLF`, verbs case-insensitive (RFC 5321 §2.4).
fn command(input: &[u8]) -> PResult<'_, Command<'_>> {
    let (rest, verb) = take_while1(|b: u8| b.is_ascii_alphabetic())(input)?;
    let is = |n: &str| verb.eq_ignore_ascii_case(n.as_bytes());
    fn args<'a>(v: Verb, r: PResult<'a, Command<'a>>) -> PResult<'a, Command<'a>> {
        r.map_err(|_| nom::Err::Failure(Error::Arguments(v)))
    }
    if is("EHLO") {
        args(Verb::Ehlo, map(host_argument, Command::Ehlo).parse(rest))
    } else if is("HELO") {
        args(Verb::Helo, map(host_argument, Command::Helo).parse(rest))
    } else if is("MAIL") {
        args(Verb::Mail, mail(rest))
    } else if is("RCPT") {
        args(Verb::Rcpt, rcpt(rest))
    } else if is("DATA") {
        args(Verb::Data, no_argument(Command::Data, rest))
    } else if is("RSET") {
        args(Verb::Rset, no_argument(Command::Rset, rest))
    } else if is("QUIT") {
        args(Verb::Quit, no_argument(Command::Quit, rest))
    } else if is("STARTTLS") {
        args(Verb::StartTls, no_argument(Command::StartTls, rest))
    } else if is("NOOP") {
        args(Verb::Noop, optional_text(Command::Noop, rest))
    } else if is("HELP") {
        args(Verb::Help, optional_text(Command::Help, rest))
    } else if is("VRFY") {
        args(Verb::Vrfy, text_argument(Command::Vrfy, rest))
    } else if is("EXPN") {
        args(Verb::Expn, text_argument(Command::Expn, rest))
    } else if is("BDAT") {
        args(Verb::Bdat, text_argument(Command::Bdat, rest))
    } else if is("AUTH") {
        args(Verb::Auth, auth(rest))
    } else {
        // Unknown verb: its arguments do not matter, only that the line ended.
        let (rest, _) = take_while(|b: u8| b != b'\r' && b != b'\n')(rest)?;
        let (rest, _) = crlf(rest)?;
        Ok((rest, Command::Other { name: verb }))
    }
}

/// `SP ( Domain / address-literal )`, leniently: any run of printable
/// characters (clients send `EHLO my_laptop`; Postfix accepts it too).
fn host_argument(input: &[u8]) -> PResult<'_, &[u8]> {
    let (input, _) = sp(input)?;
    let (input, name) = take_while1(|b: u8| b.is_ascii_graphic())(input)?;
    let (input, _) = trailing_spaces(input)?;
    let (input, _) = crlf(input)?;
    Ok((input, name))
}

fn no_argument<'a>(cmd: Command<'a>, input: &'a [u8]) -> PResult<'a, Command<'a>> {
    let (input, _) = trailing_spaces(input)?;
    let (input, _) = crlf(input)?;
    Ok((input, cmd))
}

/// `[SP String] CRLF`
fn optional_text<'a>(cmd: Command<'a>, input: &'a [u8]) -> PResult<'a, Command<'a>> {
    let (input, _) = opt(preceded(sp, take_while(is_text))).parse(input)?;
    let (input, _) = crlf(input)?;
    Ok((input, cmd))
}

/// `SP String CRLF`
fn text_argument<'a>(cmd: Command<'a>, input: &'a [u8]) -> PResult<'a, Command<'a>> {
    let (input, _) = preceded(sp, take_while1(is_text)).parse(input)?;
    let (input, _) = crlf(input)?;
    Ok((input, cmd))
}

/// `"MAIL FROM:" Reverse-path [SP Mail-parameters] CRLF`
fn mail(input: &[u8]) -> PResult<'_, Command<'_>> {
    let (input, _) = tag_no_case(" FROM:")(input)?;
    let (input, _) = opt(sp).parse(input)?;
    let (input, from) = reverse_path(input)?;
    let (input, params) = parameters(input)?;
    let (input, _) = crlf(input)?;
    Ok((input, Command::Mail { from, params }))
}

/// `"RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" / Forward-path ) [SP Rcpt-parameters] CRLF`
fn rcpt(input: &[u8]) -> PResult<'_, Command<'_>> {
    let (input, _) = tag_no_case(" TO:")(input)?;
    let (input, _) = opt(sp).parse(input)?;
    let (input, to) = alt((delimited(tag("<"), tag_no_case("Postmaster"), tag(">")), path)).parse(input)?;
    let (input, params) = parameters(input)?;
    let (input, _) = crlf(input)?;
    Ok((input, Command::Rcpt { to, params }))
}

/// `*(SP esmtp-param)`, trailing spaces tolerated.
fn parameters(input: &[u8]) -> PResult<'_, Vec<Param<'_>>> {
    let (input, params) = many0(preceded(take_while1(|b| b == b' '), esmtp_param)).parse(input)?;
    let (input, _) = trailing_spaces(input)?;
    Ok((input, params))
}

/// `esmtp-param = esmtp-keyword ["=" esmtp-value]`;
/// `esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")`;
/// `esmtp-value = 1*(%d33-60 / %d62-126)` (plus UTF-8, RFC 6531 §3.3)
fn esmtp_param(input: &[u8]) -> PResult<'_, Param<'_>> {
    let (input, keyword) = recognize(pair(
        take_while1(|b: u8| b.is_ascii_alphanumeric()),
        take_while(|b: u8| b.is_ascii_alphanumeric() || b == b'-'),
    ))
    .parse(input)?;
    let (input, value) = opt(preceded(
        tag("="),
        take_while1(|b: u8| (33..=126).contains(&b) && b != b'=' || b >= 0x80),
    ))
    .parse(input)?;
    Ok((input, Param { keyword, value }))
}

/// `Reverse-path = Path / "<>"`
fn reverse_path(input: &[u8]) -> PResult<'_, ReversePath<'_>> {
    alt((
        value(ReversePath::Null, tag("<>")),
        map(path, ReversePath::Mailbox),
    ))
    .parse(input)
}

/// `Path = "<" [ A-d-l ":" ] Mailbox ">"`; the source route is dropped
/// (RFC 5321 §4.1.1.3: to be ignored).
fn path(input: &[u8]) -> PResult<'_, &[u8]> {
    delimited(tag("<"), preceded(opt(pair(adl, tag(":"))), mailbox), tag(">")).parse(input)
}

/// `A-d-l = At-domain *( "," At-domain )`; `At-domain = "@" Domain`
fn adl(input: &[u8]) -> PResult<'_, ()> {
    value((), separated_list1(tag(","), preceded(tag("@"), domain))).parse(input)
}

/// `Mailbox = Local-part "@" ( Domain / address-literal )`
fn mailbox(input: &[u8]) -> PResult<'_, &[u8]> {
    recognize((local_part, tag("@"), alt((domain, address_literal)))).parse(input)
}

/// `Local-part = Dot-string / Quoted-string`
fn local_part(input: &[u8]) -> PResult<'_, &[u8]> {
    alt((dot_string, quoted_string)).parse(input)
}

/// `Dot-string = Atom *("." Atom)`
fn dot_string(input: &[u8]) -> PResult<'_, &[u8]> {
    recognize(separated_list1(tag("."), take_while1(is_atext))).parse(input)
}

/// `Quoted-string = DQUOTE *QcontentSMTP DQUOTE`;
/// `QcontentSMTP = qtextSMTP / quoted-pairSMTP`; `quoted-pairSMTP = %d92 %d32-126`
fn quoted_string(input: &[u8]) -> PResult<'_, &[u8]> {
    recognize(delimited(
        tag("\""),
        many0(alt((
            take_while1(|b: u8| {
                (b == 32 || b == 33 || (35..=91).contains(&b) || (93..=126).contains(&b)) || b >= 0x80
            }),
            recognize(pair(tag("\\"), take_while_m_n_printable)),
        ))),
        tag("\""),
    ))
    .parse(input)
}

fn take_while_m_n_printable(input: &[u8]) -> PResult<'_, &[u8]> {
    nom::bytes::streaming::take_while_m_n(1, 1, |b: u8| (32..=126).contains(&b))(input)
}

/// `Domain = sub-domain *("." sub-domain)`; `sub-domain = Let-dig [Ldh-str]`
fn domain(input: &[u8]) -> PResult<'_, &[u8]> {
    recognize(separated_list1(
        tag("."),
        take_while1(|b: u8| b.is_ascii_alphanumeric() || b == b'-' || b >= 0x80),
    ))
    .parse(input)
}

/// `address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
/// General-address-literal ) "]"`, as `"[" 1*dcontent "]"`
fn address_literal(input: &[u8]) -> PResult<'_, &[u8]> {
    recognize(delimited(
        tag("["),
        take_while1(|b: u8| (33..=90).contains(&b) || (94..=126).contains(&b)),
        tag("]"),
    ))
    .parse(input)
}

/// `auth = "AUTH" SP sasl-mech [SP initial-response]`;
/// `sasl-mech = 1*20mech-char`; `initial-response = base64 / "="`
fn auth(input: &[u8]) -> PResult<'_, Command<'_>> {
    let (input, _) = sp(input)?;
    let (input, mechanism) = take_while1(|b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')(input)?;
    if mechanism.len() > 20 {
        return Err(nom::Err::Failure(Error::Arguments(Verb::Auth)));
    }
    let (input, initial_response) = opt(preceded(sp, take_while1(is_base64_char))).parse(input)?;
    let (input, _) = trailing_spaces(input)?;
    let (input, _) = crlf(input)?;
    Ok((
        input,
        Command::Auth {
            mechanism,
            initial_response,
        },
    ))
}

fn is_base64_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

/// `atext` of RFC 5322 §3.2.3, plus UTF-8 (RFC 6531 §3.3).
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

/// `String` arguments: printable text and spaces.
fn is_text(b: u8) -> bool {
    b == b' ' || b == b'\t' || b.is_ascii_graphic() || b >= 0x80
}

fn sp(input: &[u8]) -> PResult<'_, &[u8]> {
    tag(" ")(input)
}

fn trailing_spaces(input: &[u8]) -> PResult<'_, &[u8]> {
    take_while(|b| b == b' ')(input)
}

fn crlf(input: &[u8]) -> PResult<'_, &[u8]> {
    tag("\r\n")(input)
}

#[cfg(test)]
mod tests;
