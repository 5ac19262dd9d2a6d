//! The POP3 pre-login state machine (AUTHORIZATION state, RFC 1939 §4):
//! bytes from the client in, replies and events out. No I/O and no tokio
//! here; `crate::session` drives it.
//!
//! It answers `CAPA`, `STLS`, `USER`, `PASS`, `AUTH PLAIN|LOGIN`, `NOOP`
//! and `QUIT` itself, refuses `APOP` and everything else, and hands a
//! complete login to the session. Replies use the RFC 2449 / RFC 3206
//! response codes (`[AUTH]`, `[SYS/TEMP]`, `[SYS/PERM]`, `[IN-USE]`).
//!
//! Bad input never ends the session: a line that cannot be a command, a
//! bare LF, a NUL byte or a line longer than the limit gets `-ERR` once the
//! line has ended, and the next line is read as a new command. An over-long
//! line is never buffered: its bytes are dropped as they arrive.

use bytes::BytesMut;

use super::parse::{self, Command, Decode};
use super::reply::{self, Capabilities, line, ok};
use crate::access::LoginRefusal;
use crate::access::policy::DenyReason;
use crate::frontend::sasl::{self, Credentials, Exchange, Mechanism, SaslError, Step};
use crate::frontend::{BadInput, BadInputs, Input};
use crate::secret::Secret;

/// Limits and switches for one listener's POP3 front-end.
#[derive(Debug, Clone)]
pub struct FrontendOptions {
    /// The listener offers STLS (a plain-text endpoint with TLS configured).
    pub starttls: bool,
    /// Accept USER/PASS and AUTH without TLS. Off by default; PEC rules
    /// forbid passwords in clear (the providers' guides and AgID: access to a PEC
    /// mailbox needs TLS).
    pub allow_plaintext_login: bool,
    /// Longest command line, CRLF included: 255 octets (RFC 2449 §4).
    pub max_line_bytes: usize,
    /// Failed logins tolerated on one connection before it is closed
    /// (nginx's `max_errors` idea; slows online guessing).
    pub max_login_failures: u32,
    /// Refused commands tolerated before login (invalid, unknown, too long,
    /// bad SASL data, refused before TLS, APOP), then the connection is
    /// closed: nginx's `max_errors` default, its mitigation of ALPACA
    /// (CVE-2021-3618).
    pub max_prelogin_errors: u32,
    /// Text of the `+OK` greeting.
    pub greeting: String,
}

impl Default for FrontendOptions {
    fn default() -> Self {
        Self {
            starttls: false,
            allow_plaintext_login: false,
            max_line_bytes: 255,
            max_login_failures: 3,
            max_prelogin_errors: 5,
            greeting: "PEC mail proxy ready.".to_owned(),
        }
    }
}

/// Longest line of an AUTH exchange. RFC 5034 §4 lifts the 255-octet limit
/// for client responses; a PLAIN response of three maximal fields, in
/// base64, plus CRLF, fits in this.
pub const MAX_AUTH_LINE_BYTES: usize = 4 * sasl::MAX_FIELD_BYTES + 2;

/// The reason [`Pop3Frontend::check_length`] gives [`Pop3Frontend::reject_line`]
/// for a complete line over the limit.
const TOO_LONG: &str = "command line too long";

/// How the client logged in, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMechanism {
    /// `USER` then `PASS`.
    UserPass,
    /// `AUTH` with a SASL mechanism.
    Sasl(Mechanism),
}

impl LoginMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMechanism::UserPass => "user",
            LoginMechanism::Sasl(m) => m.as_str(),
        }
    }
}

/// A login the session must now carry out.
#[derive(Debug)]
pub struct LoginAttempt {
    pub credentials: Credentials,
    pub mechanism: LoginMechanism,
}

/// What the session does next (see [`crate::frontend::Event`]).
pub type Event = crate::frontend::Event<LoginAttempt>;

crate::frontend::impl_frontend!(Pop3Frontend, LoginAttempt);

#[derive(Debug)]
enum State {
    /// AUTHORIZATION state; `user` is the name of an accepted `USER`.
    Commands {
        user: Option<Vec<u8>>,
    },
    Authenticating {
        mechanism: Mechanism,
        exchange: Exchange,
    },
    /// A login is in progress; nothing is read until it ends.
    LoggingIn,
    Closed,
}

/// The pre-login POP3 state machine for one connection.
#[derive(Debug)]
pub struct Pop3Frontend {
    opts: FrontendOptions,
    tls: bool,
    buf: Input,
    state: State,
    /// An over-long line is being dropped until its LF.
    discarding: bool,
    failures: u32,
    bad_inputs: BadInputs,
}

impl Pop3Frontend {
    /// A front-end for a new connection; `tls` is true on implicit-TLS listeners.
    pub fn new(opts: FrontendOptions, tls: bool) -> Self {
        let bad_inputs = BadInputs::new(opts.max_prelogin_errors, reply::TOO_MANY_ERRORS);
        Self {
            opts,
            tls,
            buf: Input::with_capacity(256),
            state: State::Commands { user: None },
            discarding: false,
            failures: 0,
            bad_inputs,
        }
    }

    /// `+OK text` (RFC 1939 §4). No APOP timestamp: APOP is not offered.
    pub fn greeting(&self) -> Vec<u8> {
        ok(&self.opts.greeting)
    }

    /// Whether TLS protects the connection.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Bytes received and not consumed yet. After [`Self::next_event`] has
    /// returned `None` this is within the line limit of the current state:
    /// `max_line_bytes` for a command, [`MAX_AUTH_LINE_BYTES`] in an AUTH
    /// exchange.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The bound on [`Self::buffered`]: the longer of the two line limits.
    pub fn max_buffered(&self) -> usize {
        self.opts.max_line_bytes.max(MAX_AUTH_LINE_BYTES)
    }

    /// Bytes handed to the parsers so far: each line is parsed once, when
    /// it has ended, so never more than the bytes received.
    pub fn parsed(&self) -> u64 {
        self.buf.parsed()
    }

    /// Bytes received from the client. Parsing happens in [`Self::next_event`].
    /// Bytes of a line being discarded are dropped here, so an endless line
    /// costs no memory.
    pub fn receive(&mut self, mut data: &[u8]) {
        if matches!(self.state, State::Closed) {
            return;
        }
        if self.discarding {
            match data.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    // Keep the LF: next_event answers the line when it sees it.
                    data = &data[end..];
                }
                None => return,
            }
        }
        self.buf.extend(data);
    }

    /// Whether the front-end wants more bytes from the client.
    pub fn wants_input(&self) -> bool {
        matches!(self.state, State::Commands { .. } | State::Authenticating { .. })
    }

    /// The TLS handshake after `STLS` succeeded.
    pub fn tls_established(&mut self) {
        self.tls = true;
    }

    /// Refuses the last login with `line` (a whole `-ERR ...` line without
    /// CRLF). `counts` says whether it counts as a failed attempt
    /// (credentials or rules) or not (server unavailable, mailbox in use).
    /// Returns the reply and whether to close: after too many failures the
    /// connection is closed after the reply.
    fn refused_with(&mut self, line: &str, counts: bool) -> (Vec<u8>, bool) {
        let out = reply::line(line);
        if counts {
            self.failures += 1;
            if self.failures >= self.opts.max_login_failures {
                self.state = State::Closed;
                return (out, true);
            }
        }
        // RFC 1939 §7: after a failed PASS the client starts again with USER.
        self.state = State::Commands { user: None };
        (out, false)
    }

    /// The login of the last [`Event::Login`] was refused: the `-ERR` line
    /// for `refusal` (RFC 3206 codes), and whether to close after it.
    pub fn login_refused(&mut self, _attempt: &LoginAttempt, refusal: &LoginRefusal) -> (Vec<u8>, bool) {
        let line = match refusal {
            LoginRefusal::Denied(reason) => reply::denied(*reason),
            LoginRefusal::Penalised => reply::denied(DenyReason::TooManyFailures),
            LoginRefusal::StoreUnavailable => reply::denied(DenyReason::StoreUnavailable),
            LoginRefusal::UpstreamUnavailable { .. } => reply::UNAVAILABLE.to_owned(),
            LoginRefusal::MailboxInUse(text) => reply::in_use(text),
        };
        self.refused_with(&line, refusal.counts_as_failure())
    }

    /// After a successful login: the bytes the client pipelined behind its
    /// login command (RFC 2449 PIPELINING), to be relayed upstream.
    pub fn into_pipelined(self) -> BytesMut {
        self.buf.into_bytes()
    }

    fn login_allowed(&self) -> bool {
        self.tls || self.opts.allow_plaintext_login
    }

    /// The CAPA list: only what this connection offers now.
    fn capabilities(&self) -> Vec<u8> {
        reply::capabilities(Capabilities {
            stls: self.opts.starttls && !self.tls,
            login: self.login_allowed(),
        })
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
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Commands { user } => {
                self.state = State::Commands { user };
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

    fn next_command(&mut self) -> Option<Event> {
        if self.discarding {
            return self.end_discarded_line();
        }
        if !self.buf.line_to_parse() {
            // Nothing to parse before the line ends.
            return self.check_length(self.opts.max_line_bytes);
        }
        // The parsed command borrows the buffer while the handler updates
        // the state, so the buffer is moved out for the duration (no copy).
        let buf = std::mem::take(&mut self.buf);
        let (consumed, event) = match parse::decode_command(&buf) {
            Decode::Done { consumed, .. } if consumed > self.opts.max_line_bytes => {
                // Complete, but longer than the RFC allows: refused as a
                // whole, before anything in it takes effect.
                self.buf = buf;
                self.buf.advance(consumed);
                self.reset_user_after_error();
                let refusal = line(reply::LINE_TOO_LONG);
                return Some(self.bad_inputs.refuse(BadInput::LineTooLong, refusal));
            }
            Decode::Done { consumed, value } => (consumed, self.handle_command(value)),
            Decode::Incomplete => {
                self.buf = buf;
                return self.check_length(self.opts.max_line_bytes);
            }
            Decode::Failed(why) => {
                self.buf = buf;
                return self.reject_line(why);
            }
        };
        self.buf = buf;
        self.buf.advance(consumed);
        if matches!(event, Event::StartTls(_)) {
            // Never interpret plaintext that was sent before the handshake.
            self.buf.clear();
        }
        Some(event)
    }

    fn handle_command(&mut self, command: Command<'_>) -> Event {
        match command {
            Command::Capa => Event::Reply(self.capabilities()),
            Command::Noop => Event::Reply(ok("")),
            Command::Quit => {
                self.state = State::Closed;
                Event::Reply(line(reply::LOGGING_OUT))
            }
            Command::Stls => {
                if self.tls {
                    return Event::Reply(line(reply::TLS_ACTIVE));
                }
                if !self.opts.starttls {
                    return Event::Reply(line(reply::NO_STLS));
                }
                // RFC 2595 §4: the server forgets what it knew before TLS.
                self.state = State::Commands { user: None };
                Event::StartTls(line(reply::BEGIN_TLS))
            }
            Command::User(name) => {
                if let Some(refusal) = self.refuse_plaintext() {
                    return refusal;
                }
                if name.len() > sasl::MAX_FIELD_BYTES {
                    return Event::Reply(line(reply::USER_TOO_LONG));
                }
                self.state = State::Commands {
                    user: Some(name.to_vec()),
                };
                Event::Reply(ok(""))
            }
            Command::Pass(password) => {
                if let Some(refusal) = self.refuse_plaintext() {
                    return refusal;
                }
                let State::Commands { user: Some(user) } =
                    std::mem::replace(&mut self.state, State::Commands { user: None })
                else {
                    return Event::Reply(line(reply::SEND_USER_FIRST));
                };
                self.state = State::LoggingIn;
                Event::Login(LoginAttempt {
                    credentials: Credentials {
                        authzid: None,
                        authcid: user,
                        password: Secret::from_slice(password),
                    },
                    mechanism: LoginMechanism::UserPass,
                })
            }
            Command::Auth {
                mechanism,
                initial_response,
            } => {
                if let Some(refusal) = self.refuse_plaintext() {
                    return refusal;
                }
                self.state = State::Commands { user: None };
                let Some(mechanism) = mechanism else {
                    return Event::Reply(reply::MECHANISMS.to_vec());
                };
                let Some(mechanism) = Mechanism::from_name(mechanism) else {
                    return Event::Reply(line(reply::UNKNOWN_MECHANISM));
                };
                self.sasl_step(mechanism, Exchange::start(mechanism, initial_response))
            }
            Command::Apop => self.bad_inputs.refuse(BadInput::Apop, line(reply::APOP)),
            Command::Other { keyword } => {
                let keyword = keyword.to_ascii_uppercase();
                let transaction = [
                    "STAT", "LIST", "RETR", "DELE", "RSET", "TOP", "UIDL", "LAST", "UTF8", "LANG",
                ];
                match std::str::from_utf8(&keyword) {
                    Ok(k) if transaction.contains(&k) => Event::Reply(line(&reply::not_permitted(k))),
                    _ => self
                        .bad_inputs
                        .refuse(BadInput::UnknownCommand, line(reply::UNKNOWN_COMMAND)),
                }
            }
        }
    }

    /// RFC 2595 §4 / Dovecot: no password in clear unless the operator allowed it.
    fn refuse_plaintext(&mut self) -> Option<Event> {
        if self.login_allowed() {
            return None;
        }
        self.state = State::Commands { user: None };
        let refusal = line(reply::PLAINTEXT_DISABLED);
        Some(self.bad_inputs.refuse(BadInput::LoginBeforeTls, refusal))
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
                    mechanism: LoginMechanism::Sasl(mechanism),
                })
            }
            Err(SaslError::Cancelled) => {
                self.state = State::Commands { user: None };
                Event::Reply(line(reply::AUTH_CANCELLED))
            }
            Err(e) => {
                self.state = State::Commands { user: None };
                // Undecodable or malformed SASL data (SMTP's name for the same).
                let refusal = line(&reply::sasl_failed(&e));
                self.bad_inputs.refuse(BadInput::BadBase64, refusal)
            }
        }
    }

    fn next_auth_line(&mut self, mechanism: Mechanism, exchange: Exchange) -> Option<Event> {
        let line_ended = self.buf.line_to_parse();
        let decoded = if line_ended {
            parse::decode_auth_line(&self.buf)
        } else {
            Decode::Incomplete
        };
        match decoded {
            Decode::Done { consumed, value } => {
                let step = exchange.step(value);
                self.buf.advance(consumed);
                Some(self.sasl_step(mechanism, step))
            }
            Decode::Failed(why) if line_ended => {
                self.state = State::Commands { user: None };
                if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                    self.buf.advance(end + 1);
                }
                let refusal = line(&reply::invalid_auth_line(why));
                Some(self.bad_inputs.refuse(BadInput::BadBase64, refusal))
            }
            // Not whole yet, or already bad but not ended: a bad line is
            // answered once, when it ends, as a command line is. Answering
            // at the first bad byte would leave the rest of the line to be
            // read as a command, and the client one reply out of step.
            Decode::Incomplete | Decode::Failed(_) => {
                self.state = State::Commands { user: None };
                if let Some(too_long) = self.check_length(MAX_AUTH_LINE_BYTES) {
                    return Some(too_long);
                }
                if self.discarding {
                    // The exchange is over; the line's end gets the -ERR.
                    return None;
                }
                self.state = State::Authenticating { mechanism, exchange };
                None
            }
        }
    }

    /// An incomplete line: fine unless it has outgrown `limit`, in which
    /// case its bytes are dropped until its end.
    fn check_length(&mut self, limit: usize) -> Option<Event> {
        if self.buf.len() <= limit {
            return None;
        }
        match self.buf.iter().position(|&b| b == b'\n') {
            Some(_) => {
                // Decoding stopped inside a complete line longer than the
                // limit (a valid prefix followed by more): answer it now.
                self.reject_line(TOO_LONG)
            }
            None => {
                self.buf.clear();
                self.discarding = true;
                None
            }
        }
    }

    /// The LF of a line being discarded has arrived: answer it.
    fn end_discarded_line(&mut self) -> Option<Event> {
        let end = self.buf.iter().position(|&b| b == b'\n')?;
        self.buf.advance(end + 1);
        self.discarding = false;
        self.reset_user_after_error();
        let refusal = line(reply::LINE_TOO_LONG);
        Some(self.bad_inputs.refuse(BadInput::LineTooLong, refusal))
    }

    /// A line that cannot be a command: `-ERR` naming the problem, once the
    /// line has ended.
    fn reject_line(&mut self, why: &'static str) -> Option<Event> {
        let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
            return self.check_length(self.opts.max_line_bytes);
        };
        self.buf.advance(end + 1);
        self.reset_user_after_error();
        let refusal = if why == TOO_LONG {
            self.bad_inputs
                .refuse(BadInput::LineTooLong, line(reply::LINE_TOO_LONG))
        } else {
            self.bad_inputs
                .refuse(BadInput::Syntax, line(&reply::invalid_command(why)))
        };
        Some(refusal)
    }

    /// A `USER` followed by a broken line must not pair with a later `PASS`
    /// the client meant for another name.
    fn reset_user_after_error(&mut self) {
        if let State::Commands { user } = &mut self.state {
            *user = None;
        }
    }
}

#[cfg(test)]
mod tests;
