//! Streaming nom parsers for the POP3 commands a client may send before
//! login (RFC 1939 §§4-7, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH).
//!
//! Parsers take the bytes received so far. A command that is not complete
//! yet yields [`Decode::Incomplete`]; bytes that cannot be a command yield
//! [`Decode::Failed`] with a reason fit for the client's `-ERR`. Neither
//! carries the offending bytes: they may be a password.

use nom::IResult;
use nom::Parser;
use nom::branch::alt;
use nom::bytes::streaming::{tag, take_while, take_while1};
use nom::combinator::opt;
use nom::sequence::preceded;

/// Result of trying to decode one command from the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decode<T> {
    /// Parsed `T`; `consumed` bytes of the input belong to it.
    Done { consumed: usize, value: T },
    /// More bytes are needed.
    Incomplete,
    /// The bytes cannot be a valid command (the line is skipped).
    Failed(&'static str),
}

#[derive(Debug, PartialEq, Eq)]
enum ParseError {
    Nom,
    Invalid(&'static str),
}

impl<'a> nom::error::ParseError<&'a [u8]> for ParseError {
    fn from_error_kind(_: &'a [u8], _: nom::error::ErrorKind) -> Self {
        ParseError::Nom
    }
    fn append(_: &'a [u8], _: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

type PResult<'a, O> = IResult<&'a [u8], O, ParseError>;

/// The commands the proxy handles itself before login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    Capa,
    Stls,
    Quit,
    Noop,
    /// `USER name`: the login name, as typed.
    User(&'a [u8]),
    /// `PASS string`: the rest of the line, spaces included (RFC 1939 §7).
    Pass(&'a [u8]),
    /// `AUTH` alone asks for the mechanism list (RFC 1734 usage, still sent
    /// by Outlook); otherwise the mechanism and the optional initial
    /// response, still base64 (`=` for an empty one).
    Auth {
        mechanism: Option<&'a [u8]>,
        initial_response: Option<&'a [u8]>,
    },
    /// `APOP name digest`: refused, it needs the cleartext password on our side.
    Apop,
    /// Any other keyword: a transaction command perhaps, but not before login.
    Other {
        keyword: &'a [u8],
    },
}

impl Command<'_> {
    /// Command name for logs and metrics (bounded set).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Capa => "CAPA",
            Command::Stls => "STLS",
            Command::Quit => "QUIT",
            Command::Noop => "NOOP",
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Auth { .. } => "AUTH",
            Command::Apop => "APOP",
            Command::Other { .. } => "other",
        }
    }
}

/// Decodes one command line from the start of `input`.
pub fn decode_command(input: &[u8]) -> Decode<Command<'_>> {
    finish(input, command(input))
}

/// One client line of an AUTH exchange: `base64 CRLF`, or `"*" CRLF` to
/// cancel (RFC 5034 §4). Returned without the CRLF, for [`crate::frontend::sasl`].
pub fn decode_auth_line(input: &[u8]) -> Decode<&[u8]> {
    finish(input, auth_line(input))
}

fn finish<'a, T>(input: &'a [u8], result: PResult<'a, T>) -> Decode<T> {
    match result {
        Ok((rest, value)) => Decode::Done {
            consumed: input.len() - rest.len(),
            value,
        },
        Err(nom::Err::Incomplete(_)) => Decode::Incomplete,
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => match e {
            ParseError::Invalid(why) => Decode::Failed(why),
            ParseError::Nom => Decode::Failed("syntax error"),
        },
    }
}

/// `command = keyword *(SP param) CRLF` (RFC 2449 §3)
fn command(input: &[u8]) -> PResult<'_, Command<'_>> {
    let (input, keyword) = keyword(input)?;
    let is = |k: &str| keyword.eq_ignore_ascii_case(k.as_bytes());
    let (input, command) = if is("CAPA") {
        (input, Command::Capa)
    } else if is("STLS") {
        (input, Command::Stls)
    } else if is("QUIT") {
        (input, Command::Quit)
    } else if is("NOOP") {
        (input, Command::Noop)
    } else if is("USER") {
        let (input, name) = preceded(sp, param).parse(input)?;
        (input, Command::User(name))
    } else if is("PASS") {
        let (input, pass) = preceded(sp, rest_of_line).parse(input)?;
        (input, Command::Pass(pass))
    } else if is("AUTH") {
        auth(input)?
    } else if is("APOP") {
        let (input, _) = preceded(sp, rest_of_line).parse(input)?;
        (input, Command::Apop)
    } else {
        // Skip the arguments of a command we do not serve: the reply goes
        // out once the whole line has arrived.
        let (input, _) = opt(preceded(sp, any_text)).parse(input)?;
        (input, Command::Other { keyword })
    };
    let (input, _) = crlf(input)?;
    Ok((input, command))
}

/// `auth = "AUTH" [SP sasl-mech [SP initial-response]]` (RFC 5034 §4; the
/// bare form lists the mechanisms)
fn auth(input: &[u8]) -> PResult<'_, Command<'_>> {
    let (input, mechanism) = opt(preceded(sp, sasl_mech)).parse(input)?;
    let (input, initial_response) = match mechanism {
        Some(_) => opt(preceded(sp, initial_response)).parse(input)?,
        None => (input, None),
    };
    Ok((
        input,
        Command::Auth {
            mechanism,
            initial_response,
        },
    ))
}

/// `auth-line = (base64 / "*") CRLF`
fn auth_line(input: &[u8]) -> PResult<'_, &[u8]> {
    let (input, data) = alt((tag("*"), initial_response, tag(""))).parse(input)?;
    let (input, _) = crlf(input)?;
    Ok((input, data))
}

/// `keyword = 3*4VCHAR` (RFC 2449 §3); we accept any run of letters and
/// digits so that an unknown command gets "unknown", not "syntax error".
fn keyword(input: &[u8]) -> PResult<'_, &[u8]> {
    take_while1(|b: u8| b.is_ascii_alphanumeric())(input)
}

/// `param = 1*VCHAR` (RFC 2449 §3)
fn param(input: &[u8]) -> PResult<'_, &[u8]> {
    checked(take_while1(|b: u8| b.is_ascii_graphic() || b >= 0x80)(input))
}

/// `sasl-mech = 1*20mech-char`; `mech-char = UPPER-ALPHA / DIGIT / "-" / "_"`
/// (RFC 4422 §3.1; case-insensitive in practice)
fn sasl_mech(input: &[u8]) -> PResult<'_, &[u8]> {
    let (rest, mech) = checked(take_while1(|b: u8| {
        b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
    })(input))?;
    if mech.len() > 20 {
        return Err(nom::Err::Failure(ParseError::Invalid("mechanism name too long")));
    }
    Ok((rest, mech))
}

/// `initial-response = base64 / "="` (RFC 5034 §4)
fn initial_response(input: &[u8]) -> PResult<'_, &[u8]> {
    checked(take_while1(|b: u8| {
        b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
    })(input))
}

/// The rest of the line up to CRLF, at least one byte: a password may hold
/// spaces and 8-bit characters (RFC 1939 §7, PASS).
fn rest_of_line(input: &[u8]) -> PResult<'_, &[u8]> {
    checked(take_while1(|b: u8| b != b'\r' && b != b'\n' && b != 0)(input))
}

/// Possibly empty text up to CRLF.
fn any_text(input: &[u8]) -> PResult<'_, &[u8]> {
    checked(take_while(|b: u8| b != b'\r' && b != b'\n' && b != 0)(input))
}

/// Turns a plain nom error after a token into a named failure when the byte
/// that stopped the token is one no POP3 line may hold where it stands.
fn checked<'a>(result: PResult<'a, &'a [u8]>) -> PResult<'a, &'a [u8]> {
    let (rest, token) = result?;
    match rest.first() {
        Some(0) => Err(nom::Err::Failure(ParseError::Invalid("NUL in command line"))),
        _ => Ok((rest, token)),
    }
}

fn sp(input: &[u8]) -> PResult<'_, &[u8]> {
    match input.first() {
        Some(0) => Err(nom::Err::Failure(ParseError::Invalid("NUL in command line"))),
        _ => tag(" ")(input),
    }
}

/// `CRLF`; a bare LF ends the line too, but is refused by name (RFC 1939 §3:
/// commands are terminated by CRLF).
fn crlf(input: &[u8]) -> PResult<'_, &[u8]> {
    match input.first() {
        Some(b'\n') => Err(nom::Err::Failure(ParseError::Invalid("line must end with CRLF"))),
        Some(0) => Err(nom::Err::Failure(ParseError::Invalid("NUL in command line"))),
        _ => tag("\r\n")(input),
    }
}

#[cfg(test)]
mod tests;
