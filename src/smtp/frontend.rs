//! The SMTP pre-login state machine: bytes from the client in, replies and
//! events out. No I/O and no tokio here; `crate::session` drives it.
//!
//! It answers `EHLO`/`HELO`, `STARTTLS`, `AUTH PLAIN|LOGIN`, `RSET`, `NOOP`,
//! `HELP`, `QUIT` itself and refuses mail commands until the client has
//! authenticated (RFC 4954 §6 `530 5.7.0`). Pipelined commands (RFC 2920)
//! are answered in order, one event at a time.

use bytes::BytesMut;

use super::parse::{self, Command, Decode};
use super::reply::{self, Extensions};
use crate::access::LoginRefusal;
use crate::access::policy::DenyReason;
use crate::frontend::sasl::{Credentials, Exchange, Mechanism, SaslError, Step};
use crate::frontend::{BadInput, BadInputs, Input};

/// The reply to a line that is not a valid command (the guard's too).
pub use super::reply::invalid_command as invalid_reply;

/// Limits and switches for one listener's SMTP front-end.
#[derive(Debug, Clone)]
pub struct FrontendOptions {
    /// The listener offers STARTTLS (a plain endpoint with TLS configured).
    pub starttls: bool,
    /// Accept AUTH without TLS. Off by default: PEC rules forbid passwords
    /// in clear (the providers' guides and AgID: access to a PEC
    /// mailbox needs TLS).
    pub allow_plaintext_login: bool,
    /// Our name in the greeting and the EHLO reply.
    pub hostname: String,
    /// Advertised `SIZE` (RFC 1870).
    pub max_message_bytes: u64,
    /// See [`crate::config::Limits::smtp_max_command_line_bytes`].
    pub max_command_line_bytes: usize,
    /// See [`crate::config::Limits::smtp_max_auth_line_bytes`].
    pub max_auth_line_bytes: usize,
    /// Failed logins on one connection before it is closed.
    pub max_login_failures: u32,
    /// Refused commands tolerated before login (invalid, unknown, too long,
    /// bad base64, refused before TLS, mail commands before AUTH), then the
    /// connection is closed: nginx's `max_errors` default, its mitigation
    /// of ALPACA (CVE-2021-3618).
    pub max_prelogin_errors: u32,
}

impl Default for FrontendOptions {
    fn default() -> Self {
        Self {
            starttls: false,
            allow_plaintext_login: false,
            hostname: "localhost".to_owned(),
            max_message_bytes: 30 * 1024 * 1024,
            max_command_line_bytes: 512,
            max_auth_line_bytes: 8192,
            max_login_failures: 3,
            max_prelogin_errors: 5,
        }
    }
}

/// A login the session must now carry out.
#[derive(Debug)]
pub struct LoginAttempt {
    pub credentials: Credentials,
    pub mechanism: Mechanism,
}

/// What the session does next (see [`crate::frontend::Event`]).
pub type Event = crate::frontend::Event<LoginAttempt>;

crate::frontend::impl_frontend!(SmtpFrontend, LoginAttempt);

#[derive(Debug)]
enum State {
    Commands,
    Authenticating {
        mechanism: Mechanism,
        exchange: Exchange,
    },
    /// A login is in progress; nothing is read until it ends.
    LoggingIn,
    Closed,
}

/// The client's greeting command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// The name after `EHLO`/`HELO`: printable ASCII, no spaces.
    pub name: String,
    /// `EHLO` (true) or `HELO`.
    pub esmtp: bool,
}

/// The pre-login SMTP state machine for one connection.
#[derive(Debug)]
pub struct SmtpFrontend {
    opts: FrontendOptions,
    tls: bool,
    buf: Input,
    state: State,
    greeting: Option<Greeting>,
    failures: u32,
    bad_inputs: BadInputs,
    /// An over-long line was refused; its remaining bytes are dropped up to
    /// its line feed.
    discarding: bool,
}

impl SmtpFrontend {
    /// A front-end for a new connection; `tls` is true on implicit-TLS listeners.
    pub fn new(opts: FrontendOptions, tls: bool) -> Self {
        let bad_inputs = BadInputs::new(opts.max_prelogin_errors, reply::TOO_MANY_ERRORS);
        Self {
            opts,
            tls,
            buf: Input::with_capacity(512),
            state: State::Commands,
            greeting: None,
            failures: 0,
            bad_inputs,
            discarding: false,
        }
    }

    /// The `220` greeting (RFC 5321 §4.2, §3.1).
    pub fn greeting(&self) -> Vec<u8> {
        reply::greeting(&self.opts.hostname)
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Bytes received and not consumed yet. After [`Self::next_event`] has
    /// returned `None` this is within the current line's limit: the command
    /// line limit (500 octets more for `MAIL`), or the AUTH line limit.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The bound on [`Self::buffered`]: the longest line limit (a `MAIL`
    /// line, or an AUTH exchange line).
    pub fn max_buffered(&self) -> usize {
        (self.opts.max_command_line_bytes + 500).max(self.opts.max_auth_line_bytes)
    }

    /// Bytes handed to the parsers so far: each line is parsed once, when
    /// it has ended, so never more than the bytes received.
    pub fn parsed(&self) -> u64 {
        self.buf.parsed()
    }

    /// Bytes received from the client. Parsing happens in [`Self::next_event`].
    pub fn receive(&mut self, data: &[u8]) {
        if !matches!(self.state, State::Closed) {
            self.buf.extend(data);
        }
    }

    /// Whether the front-end wants more bytes from the client.
    pub fn wants_input(&self) -> bool {
        matches!(self.state, State::Commands | State::Authenticating { .. })
    }

    /// The TLS handshake after `STARTTLS` succeeded.
    pub fn tls_established(&mut self) {
        self.tls = true;
    }

    /// The login of the last [`Event::Login`] was refused; `line` is the
    /// whole reply (e.g. [`reply::denied`]). Returns the bytes to send and
    /// whether to close after them.
    fn login_failed(&mut self, line: &str) -> (Vec<u8>, bool) {
        self.failures += 1;
        let mut out = reply::line(line);
        if self.failures >= self.opts.max_login_failures {
            out.extend(reply::line(reply::TOO_MANY_FAILURES));
            self.state = State::Closed;
            return (out, true);
        }
        self.state = State::Commands;
        (out, false)
    }

    /// The login could not be completed for a temporary reason; not counted
    /// as a failure.
    fn login_unavailable(&mut self, line: &str) -> Vec<u8> {
        self.state = State::Commands;
        reply::line(line)
    }

    /// The login of the last [`Event::Login`] was refused: the RFC 4954 §6
    /// reply for `refusal`, and whether to close after it.
    pub fn login_refused(&mut self, _attempt: &LoginAttempt, refusal: &LoginRefusal) -> (Vec<u8>, bool) {
        match refusal {
            LoginRefusal::Denied(reason) => self.login_failed(&reply::denied(*reason)),
            LoginRefusal::Penalised => self.login_failed(&reply::denied(DenyReason::TooManyFailures)),
            // The connection failing, at any step, is `4.4.1` (RFC 3463 "no
            // answer from host"); the server answering but not as it should
            // is `4.7.0`, RFC 4954's temporary authentication failure.
            LoginRefusal::UpstreamUnavailable { no_answer: true } => {
                (self.login_unavailable(reply::UPSTREAM_NOT_RESPONDING), false)
            }
            LoginRefusal::StoreUnavailable
            | LoginRefusal::UpstreamUnavailable { no_answer: false }
            | LoginRefusal::MailboxInUse(_) => (self.login_unavailable(reply::UPSTREAM_UNAVAILABLE), false),
        }
    }

    /// After a successful login: the client's greeting (always `EHLO`, AUTH
    /// needs it) and the bytes it pipelined behind its last AUTH line.
    pub fn into_logged_in(self) -> (Greeting, BytesMut) {
        let greeting = self.greeting.unwrap_or(Greeting {
            name: "unknown".to_owned(),
            esmtp: true,
        });
        (greeting, self.buf.into_bytes())
    }

    /// The client's greeting so far.
    pub fn client_greeting(&self) -> Option<&Greeting> {
        self.greeting.as_ref()
    }

    fn login_allowed(&self) -> bool {
        self.tls || self.opts.allow_plaintext_login
    }

    fn extensions(&self) -> Extensions {
        Extensions {
            size: self.opts.max_message_bytes,
            starttls: self.opts.starttls && !self.tls,
            auth: self.login_allowed(),
            // The upstream is not known before login; see the README.
            smtputf8: false,
        }
    }

    /// Processes buffered input until it yields an event or needs more
    /// bytes. After a refusal of bad input come its [`Event::BadInput`]
    /// and, at `max_prelogin_errors`, the goodbye and the close.
    pub fn next_event(&mut self) -> Option<Event> {
        if let Some(due) = self.bad_inputs.next_due() {
            return Some(due);
        }
        let event = self.step();
        if self.bad_inputs.cut_off() {
            self.state = State::Closed;
            self.buf.clear();
            self.discarding = false;
        }
        event
    }

    fn step(&mut self) -> Option<Event> {
        if self.discarding {
            match self.buf.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.buf.advance(end + 1);
                    self.discarding = false;
                }
                None => {
                    self.buf.clear();
                    return None;
                }
            }
        }
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Commands => {
                self.state = State::Commands;
                self.next_command()
            }
            State::Authenticating { mechanism, exchange } => self.next_auth_line(mechanism, exchange),
            State::LoggingIn => {
                self.state = State::LoggingIn;
                None
            }
            State::Closed => Some(Event::Close),
        }
    }

    fn too_long(&mut self, reply_line: &str, consumed: Option<usize>) -> Event {
        match consumed {
            Some(n) => self.buf.advance(n),
            None => {
                self.buf.clear();
                self.discarding = true;
            }
        }
        self.bad_inputs
            .refuse(BadInput::LineTooLong, reply::line(reply_line))
    }

    fn next_command(&mut self) -> Option<Event> {
        // The parsed command borrows the buffer while the handler updates
        // the state, so the buffer is moved out for the duration (no copy).
        let (limit, too_long) = self.line_limit_of(&self.buf);
        if !self.buf.line_to_parse() {
            // Nothing to parse before the line ends.
            if self.buf.len() > limit {
                return Some(self.too_long(too_long, None));
            }
            return None;
        }
        let buf = std::mem::take(&mut self.buf);
        let (consumed, event) = match parse::decode_command(&buf) {
            Decode::Incomplete => {
                self.buf = buf;
                if self.buf.len() > limit {
                    return Some(self.too_long(too_long, None));
                }
                return None;
            }
            Decode::Done { consumed, .. } | Decode::Failed { consumed, .. } if consumed > limit => {
                self.buf = buf;
                return Some(self.too_long(too_long, Some(consumed)));
            }
            Decode::Done { consumed, value } => (consumed, self.handle_command(value)),
            Decode::Failed { consumed, invalid } => {
                let refusal = reply::invalid_command(invalid);
                (consumed, self.bad_inputs.refuse(BadInput::Syntax, refusal))
            }
        };
        self.buf = buf;
        self.buf.advance(consumed);
        if matches!(event, Event::StartTls(_)) {
            // Never interpret plaintext sent before the handshake.
            self.buf.clear();
        }
        Some(event)
    }

    /// The longest line allowed for the command at the start of `buf`, and
    /// the reply to a longer one: `MAIL` may carry RFC 4954 §5's `AUTH=`
    /// parameter (500 octets more); `AUTH` an initial response, which is an
    /// AUTH exchange line (RFC 4954 §4, and §6's `500 5.5.6` for one too long).
    fn line_limit_of(&self, buf: &[u8]) -> (usize, &'static str) {
        match parse::verb_of(&buf[..buf.len().min(8)]).as_deref() {
            Some(b"MAIL") => (self.opts.max_command_line_bytes + 500, reply::LINE_TOO_LONG),
            Some(b"AUTH") => (self.opts.max_auth_line_bytes, reply::AUTH_LINE_TOO_LONG),
            _ => (self.opts.max_command_line_bytes, reply::LINE_TOO_LONG),
        }
    }

    fn handle_command(&mut self, command: Command<'_>) -> Event {
        let say = |text: &str| Event::Reply(reply::line(text));
        match command {
            Command::Ehlo(name) | Command::Helo(name) => {
                let esmtp = matches!(command, Command::Ehlo(_));
                self.greeting = Some(Greeting {
                    name: String::from_utf8_lossy(name).into_owned(),
                    esmtp,
                });
                if esmtp {
                    Event::Reply(reply::ehlo(&self.opts.hostname, self.extensions()))
                } else {
                    Event::Reply(reply::helo(&self.opts.hostname))
                }
            }
            Command::StartTls => {
                if self.tls {
                    say(reply::TLS_ACTIVE)
                } else if !self.opts.starttls {
                    say(reply::NO_STARTTLS)
                } else {
                    // RFC 3207 §4.2: forget everything learnt before TLS.
                    self.greeting = None;
                    Event::StartTls(reply::line(reply::READY_FOR_TLS))
                }
            }
            Command::Auth {
                mechanism,
                initial_response,
            } => {
                if !self.greeting.as_ref().is_some_and(|g| g.esmtp) {
                    return say(reply::EHLO_FIRST);
                }
                if !self.login_allowed() {
                    let refusal = if self.opts.starttls {
                        reply::STARTTLS_FIRST
                    } else {
                        reply::ENCRYPTION_REQUIRED
                    };
                    return self
                        .bad_inputs
                        .refuse(BadInput::LoginBeforeTls, reply::line(refusal));
                }
                let Some(mechanism) = Mechanism::from_name(mechanism) else {
                    return say(reply::UNKNOWN_MECHANISM);
                };
                self.sasl_step(mechanism, Exchange::start(mechanism, initial_response))
            }
            Command::Mail { .. } | Command::Rcpt { .. } | Command::Data | Command::Bdat => self
                .bad_inputs
                .refuse(BadInput::AuthRequired, reply::line(reply::AUTH_REQUIRED)),
            Command::Rset | Command::Noop => say(reply::OK),
            Command::Help => say(reply::HELP),
            Command::Vrfy | Command::Expn => say(reply::VRFY_DISABLED),
            Command::Quit => {
                self.state = State::Closed;
                say(reply::BYE)
            }
            Command::Other { .. } => self
                .bad_inputs
                .refuse(BadInput::UnknownCommand, reply::line(reply::UNKNOWN_COMMAND)),
        }
    }

    fn sasl_step(&mut self, mechanism: Mechanism, step: Result<Step, SaslError>) -> Event {
        match step {
            Ok(Step::Challenge(challenge, exchange)) => {
                self.state = State::Authenticating { mechanism, exchange };
                Event::Reply(reply::challenge(challenge))
            }
            Ok(Step::Done(credentials)) => {
                self.state = State::LoggingIn;
                Event::Login(LoginAttempt {
                    credentials,
                    mechanism,
                })
            }
            Err(e) => {
                self.state = State::Commands;
                match e {
                    SaslError::Cancelled => Event::Reply(reply::line(reply::AUTH_CANCELLED)),
                    SaslError::Base64 => self
                        .bad_inputs
                        .refuse(BadInput::BadBase64, reply::line(reply::BAD_BASE64)),
                    // Decodable but malformed: not counted (IMAP and POP3
                    // count it as bad_base64).
                    _ => Event::Reply(reply::line(reply::BAD_SASL)),
                }
            }
        }
    }

    fn next_auth_line(&mut self, mechanism: Mechanism, exchange: Exchange) -> Option<Event> {
        let limit = self.opts.max_auth_line_bytes;
        let decoded = if self.buf.line_to_parse() {
            parse::decode_auth_line(&self.buf)
        } else {
            Decode::Incomplete
        };
        match decoded {
            Decode::Incomplete if self.buf.len() <= limit => {
                self.state = State::Authenticating { mechanism, exchange };
                None
            }
            Decode::Incomplete => {
                self.state = State::Commands;
                Some(self.too_long(reply::AUTH_LINE_TOO_LONG, None))
            }
            Decode::Done { consumed, .. } | Decode::Failed { consumed, .. } if consumed > limit => {
                self.state = State::Commands;
                Some(self.too_long(reply::AUTH_LINE_TOO_LONG, Some(consumed)))
            }
            Decode::Done { consumed, value } => {
                let step = exchange.step(value);
                self.buf.advance(consumed);
                Some(self.sasl_step(mechanism, step))
            }
            Decode::Failed { consumed, .. } => {
                self.state = State::Commands;
                self.buf.advance(consumed);
                let refusal = reply::line(reply::BAD_BASE64);
                Some(self.bad_inputs.refuse(BadInput::BadBase64, refusal))
            }
        }
    }
}

#[cfg(test)]
mod tests;
