//! The IMAP pre-login state machine: bytes from the client in, replies and
//! events out. No I/O and no tokio here; `crate::session` drives it.
//!
//! It answers `CAPABILITY`, `NOOP`, `LOGOUT`, `STARTTLS`, `ID`, `LOGIN` and
//! `AUTHENTICATE PLAIN|LOGIN` itself, and refuses everything else until the
//! client has logged in, at which point the session relays to the upstream.

use bytes::BytesMut;

use super::parse::{self, Command, CommandBody, Decode, LineEnd};
use super::reply::{self, Capabilities};
use crate::access::LoginRefusal;
use crate::access::policy::DenyReason;
use crate::frontend::sasl::{Credentials, Exchange, Mechanism, SaslError, Step};
use crate::frontend::{BadInput, BadInputs, Input};
use crate::secret::Secret;

/// Limits and switches for one listener's IMAP front-end.
#[derive(Debug, Clone)]
pub struct FrontendOptions {
    /// The listener offers STARTTLS (it is a plain-text endpoint with TLS configured).
    pub starttls: bool,
    /// Accept LOGIN/AUTHENTICATE without TLS. Off by default; PEC rules forbid
    /// passwords in clear (the providers' guides and AgID: access to a PEC
    /// mailbox needs TLS).
    pub allow_plaintext_login: bool,
    /// Longest command line, literals excluded. 8 KiB: RFC 7162 §4 asks
    /// clients to keep lines within 8192 octets, and Dovecot's pre-login limit
    /// is of the same order.
    pub max_line_bytes: usize,
    /// Largest literal accepted before login, where literals only carry a user
    /// name or a password.
    pub max_literal_bytes: u64,
    /// Failed logins tolerated on one connection before it is closed (nginx's
    /// `max_errors` idea; slows online guessing, ALPACA / CVE-2021-3618).
    pub max_login_failures: u32,
    /// Refused commands tolerated before login (invalid, unknown, too long,
    /// bad SASL data, refused before TLS), then the connection is closed:
    /// nginx's `max_errors` default, its mitigation of ALPACA (CVE-2021-3618).
    pub max_prelogin_errors: u32,
    /// Text after `* OK [CAPABILITY ...]` in the greeting.
    pub greeting: String,
}

impl FrontendOptions {
    /// The most one command may take before login, literals included:
    /// four lines, and never less than a `LOGIN` whose user name and
    /// password are both literals at `max_literal_bytes` (32 KiB with the
    /// defaults). However a command is made (lines, literals announced one
    /// after another), the client cannot make the proxy hold more.
    pub fn max_command_bytes(&self) -> usize {
        let literal = usize::try_from(self.max_literal_bytes).unwrap_or(usize::MAX);
        (4 * self.max_line_bytes).max(literal.saturating_mul(2).saturating_add(self.max_line_bytes))
    }
}

impl Default for FrontendOptions {
    fn default() -> Self {
        Self {
            starttls: false,
            allow_plaintext_login: false,
            max_line_bytes: 8192,
            max_literal_bytes: 8192,
            max_login_failures: 3,
            max_prelogin_errors: 5,
            greeting: "PEC mail proxy ready.".to_owned(),
        }
    }
}

/// How the client logged in, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMechanism {
    /// The IMAP `LOGIN` command.
    Login,
    /// `AUTHENTICATE` with a SASL mechanism.
    Sasl(Mechanism),
}

impl LoginMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMechanism::Login => "login",
            LoginMechanism::Sasl(m) => m.as_str(),
        }
    }
}

/// A login the session must now carry out.
#[derive(Debug)]
pub struct LoginAttempt {
    /// The client's tag, for the tagged reply.
    pub tag: Vec<u8>,
    pub credentials: Credentials,
    pub mechanism: LoginMechanism,
}

/// What the session does next (see [`crate::frontend::Event`]).
pub type Event = crate::frontend::Event<LoginAttempt>;

crate::frontend::impl_frontend!(ImapFrontend, LoginAttempt);

/// The client's `ID` (RFC 2971), kept for the access log. Bounded and printable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientId {
    pub name: Option<String>,
    pub version: Option<String>,
}

impl ClientId {
    /// "name version", "name", or `None` when the client sent no name.
    pub fn summary(&self) -> Option<String> {
        let name = self.name.as_ref()?;
        Some(match &self.version {
            Some(v) => format!("{name} {v}"),
            None => name.clone(),
        })
    }
}

#[derive(Debug)]
enum State {
    Commands,
    Authenticating {
        tag: Vec<u8>,
        mechanism: Mechanism,
        exchange: Exchange,
    },
    /// A login is in progress; nothing is read until it ends.
    LoggingIn,
    Closed,
}

/// The pre-login IMAP state machine for one connection.
#[derive(Debug)]
pub struct ImapFrontend {
    opts: FrontendOptions,
    tls: bool,
    buf: Input,
    state: State,
    /// How long the current command may grow: a line plus acknowledged
    /// literals, never more than [`FrontendOptions::max_command_bytes`].
    command_allowance: usize,
    /// Where the current line of the command starts: after the data of
    /// its last acknowledged literal, 0 before any.
    line_start: usize,
    failures: u32,
    bad_inputs: BadInputs,
    client_id: ClientId,
}

/// Longest `ID` value we keep; longer ones are cut.
const MAX_ID_VALUE: usize = 64;

/// IMAP commands that are valid after login; named in the `BAD` reply so a
/// confused client's log says what went wrong.
const AUTHENTICATED_COMMANDS: &[&str] = &[
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "LSUB",
    "STATUS",
    "APPEND",
    "CHECK",
    "CLOSE",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "MOVE",
    "UID",
    "IDLE",
    "ENABLE",
    "NAMESPACE",
    "GETQUOTAROOT",
    "GETQUOTA",
    "UNSELECT",
    "COMPRESS",
    "NOTIFY",
    "GETMETADATA",
    "SETMETADATA",
];

impl ImapFrontend {
    /// A front-end for a new connection; `tls` is true on implicit-TLS listeners.
    pub fn new(opts: FrontendOptions, tls: bool) -> Self {
        let command_allowance = opts.max_line_bytes;
        let bad_inputs = BadInputs::new(opts.max_prelogin_errors, reply::TOO_MANY_ERRORS);
        Self {
            opts,
            tls,
            buf: Input::with_capacity(256),
            state: State::Commands,
            command_allowance,
            line_start: 0,
            failures: 0,
            bad_inputs,
            client_id: ClientId::default(),
        }
    }

    /// The untagged greeting, with capabilities (RFC 3501 §7.1, RFC 2221 CAPABILITY code).
    pub fn greeting(&self) -> Vec<u8> {
        reply::greeting(self.capabilities(), &self.opts.greeting)
    }

    /// Whether TLS protects the connection.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Bytes received and not consumed yet. After [`Self::next_event`] has
    /// returned `None` (and no login is in progress) this is within the
    /// current command's allowance: the line limit, plus an acknowledged
    /// literal and the line after it, never more than [`Self::max_buffered`].
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The bound on [`Self::buffered`]: [`FrontendOptions::max_command_bytes`].
    pub fn max_buffered(&self) -> usize {
        self.opts.max_command_bytes()
    }

    /// Bytes read by the parsers so far: at most twice the bytes received
    /// (each line read once for a literal at its end, each command parsed
    /// once when it has ended).
    pub fn parsed(&self) -> u64 {
        self.buf.parsed()
    }

    /// The client's `ID`, if it sent one.
    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }

    /// Bytes received from the client. Parsing happens in [`Self::next_event`].
    pub fn receive(&mut self, data: &[u8]) {
        if !matches!(self.state, State::Closed) {
            self.buf.extend(data);
        }
    }

    /// Whether the front-end wants more bytes from the client (false while a
    /// login is in progress or after the connection is done).
    pub fn wants_input(&self) -> bool {
        matches!(self.state, State::Commands | State::Authenticating { .. })
    }

    /// The TLS handshake after `STARTTLS` succeeded.
    pub fn tls_established(&mut self) {
        self.tls = true;
    }

    /// The login of the last [`Event::Login`] failed; `code` and `text` form the
    /// tagged `NO` (e.g. `AUTHENTICATIONFAILED`, RFC 5530). Returns the reply,
    /// plus `* BYE` and a close when the client has failed too often.
    fn login_failed(&mut self, tag: &[u8], code: &str, text: &str) -> (Vec<u8>, bool) {
        self.failures += 1;
        let mut out = reply::login_failed(tag, code, text);
        if self.failures >= self.opts.max_login_failures {
            out.extend(reply::line(reply::TOO_MANY_FAILURES));
            self.state = State::Closed;
            return (out, true);
        }
        self.state = State::Commands;
        (out, false)
    }

    /// The login of the last [`Event::Login`] could not be completed for a
    /// temporary reason; the reply does not count as a failed attempt.
    fn login_unavailable(&mut self, tag: &[u8], text: &str) -> Vec<u8> {
        self.state = State::Commands;
        reply::unavailable(tag, text)
    }

    /// The login of `attempt` was refused: a tagged `NO` with the RFC 5530
    /// code for `refusal`, plus `* BYE` and a close when the client has
    /// failed too often.
    pub fn login_refused(&mut self, attempt: &LoginAttempt, refusal: &LoginRefusal) -> (Vec<u8>, bool) {
        let tag = &attempt.tag;
        match refusal {
            LoginRefusal::Denied(reason) => {
                let (code, text) = reply::denied(*reason);
                self.login_failed(tag, code, &text)
            }
            LoginRefusal::Penalised => {
                let (code, text) = reply::denied(DenyReason::TooManyFailures);
                self.login_failed(tag, code, &text)
            }
            LoginRefusal::StoreUnavailable | LoginRefusal::UpstreamUnavailable { .. } => {
                (self.login_unavailable(tag, reply::UNAVAILABLE), false)
            }
            LoginRefusal::MailboxInUse(text) => {
                self.state = State::Commands;
                (reply::in_use(tag, text), false)
            }
        }
    }

    /// After a successful login: the bytes the client pipelined behind its
    /// login command, to be sent upstream before relaying.
    pub fn into_pipelined(self) -> BytesMut {
        self.buf.into_bytes()
    }

    fn login_allowed(&self) -> bool {
        self.tls || self.opts.allow_plaintext_login
    }

    /// Capabilities before login: only what this connection really offers now.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            starttls: self.opts.starttls && !self.tls,
            login: self.login_allowed(),
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
        }
        event
    }

    fn step(&mut self) -> Option<Event> {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Commands => {
                self.state = State::Commands;
                self.next_command()
            }
            State::Authenticating {
                tag,
                mechanism,
                exchange,
            } => self.next_auth_line(tag, mechanism, exchange),
            State::LoggingIn => {
                self.state = State::LoggingIn;
                None
            }
            State::Closed => Some(Event::Close),
        }
    }

    fn next_command(&mut self) -> Option<Event> {
        loop {
            if !self.buf.line_ended() {
                // No command can be whole before its line ends (literal data
                // is skipped by the scan): nothing to read yet.
                return self.check_allowance();
            }
            let end = self.buf.scanned();
            if end > self.command_allowance {
                // However the bytes were chunked, a line over the limit is
                // refused, before anything in it takes effect or is counted.
                return Some(self.too_long());
            }
            // The line just ended is read once, for a literal announced at
            // its end; the command is parsed once, whole, when a line ends it.
            self.buf.parsing(end - self.line_start);
            match parse::line_end(&self.buf[self.line_start..end]) {
                // A literal is answered only in a command with a tag and a
                // name; anything else is refused whole, as a bad line.
                LineEnd::Literal {
                    data_at,
                    length,
                    sync,
                } if parse::head(&self.buf).is_some() => {
                    match self.literal_announced(self.line_start + data_at, length, sync) {
                        // Acknowledged without a reply (non-synchronising):
                        // its data and the rest may be here already.
                        None => continue,
                        event => return event,
                    }
                }
                _ => return self.command_at(end),
            }
        }
    }

    /// A line has ended the command in `self.buf[..end]`: parsed once, whole.
    fn command_at(&mut self, end: usize) -> Option<Event> {
        self.buf.parsing(end);
        // The parsed command borrows the buffer while the handler updates the
        // state, so the buffer is moved out for the duration (no copy).
        let buf = std::mem::take(&mut self.buf);
        let (consumed, event) = match parse::decode_command(&buf[..end]) {
            Decode::Done { consumed, value } => (consumed, self.handle_command(value)),
            // Not expected: the input ends with a line feed no token runs
            // past, and every literal the grammar allows was announced at
            // its line's end (`parse::line_end`), its data here. Refused as
            // a bad line, so no byte of it is read again.
            Decode::Incomplete | Decode::LiteralAnnounced { .. } => {
                self.buf = buf;
                return self.reject_line("syntax error");
            }
            Decode::Failed(why) => {
                self.buf = buf;
                return self.reject_line(why);
            }
        };
        self.buf = buf;
        self.command_ended(consumed);
        if matches!(event, Event::StartTls(_)) {
            // Never interpret plaintext that was sent before the handshake.
            self.buf.clear();
        }
        Some(event)
    }

    /// The current command took `consumed` bytes: the next one starts with
    /// a line's allowance and no literal.
    fn command_ended(&mut self, consumed: usize) {
        self.buf.advance(consumed);
        self.command_allowance = self.opts.max_line_bytes;
        self.line_start = 0;
    }

    fn handle_command(&mut self, command: Command<'_>) -> Event {
        let tag = command.tag;
        match command.body {
            CommandBody::Capability => Event::Reply(reply::capability(tag, self.capabilities())),
            CommandBody::Noop => Event::Reply(reply::NOOP_COMPLETED.to(tag)),
            CommandBody::Logout => {
                let mut out = reply::line(reply::LOGGING_OUT);
                out.extend(reply::LOGOUT_COMPLETED.to(tag));
                self.state = State::Closed;
                Event::Reply(out)
            }
            CommandBody::StartTls => {
                if self.tls {
                    return Event::Reply(reply::TLS_ACTIVE.to(tag));
                }
                if !self.opts.starttls {
                    return Event::Reply(reply::NO_STARTTLS.to(tag));
                }
                // The OK goes out in clear; the session sends it, then handshakes.
                Event::StartTls(reply::BEGIN_TLS.to(tag))
            }
            CommandBody::Id(params) => {
                if let Some(params) = params {
                    for (key, val) in params {
                        let val = val.map(|v| printable(&v));
                        if key.eq_ignore_ascii_case(b"name") {
                            self.client_id.name = val;
                        } else if key.eq_ignore_ascii_case(b"version") {
                            self.client_id.version = val;
                        }
                    }
                }
                let mut out = reply::line(reply::ID);
                out.extend(reply::ID_COMPLETED.to(tag));
                Event::Reply(out)
            }
            CommandBody::Login { username, password } => {
                if let Some(refusal) = self.refuse_plaintext(tag) {
                    return refusal;
                }
                let credentials = Credentials {
                    authzid: None,
                    authcid: username.into_owned(),
                    password: Secret::new(password.into_owned()),
                };
                self.state = State::LoggingIn;
                Event::Login(LoginAttempt {
                    tag: tag.to_vec(),
                    credentials,
                    mechanism: LoginMechanism::Login,
                })
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } => {
                if let Some(refusal) = self.refuse_plaintext(tag) {
                    return refusal;
                }
                let Some(mechanism) = Mechanism::from_name(mechanism) else {
                    return Event::Reply(reply::UNKNOWN_MECHANISM.to(tag));
                };
                self.sasl_step(
                    tag.to_vec(),
                    mechanism,
                    Exchange::start(mechanism, initial_response),
                )
            }
            CommandBody::Other { name } => {
                let name = String::from_utf8_lossy(name).to_ascii_uppercase();
                if AUTHENTICATED_COMMANDS.contains(&name.as_str()) {
                    Event::Reply(reply::not_permitted(tag, &name))
                } else {
                    let refusal = reply::UNKNOWN_COMMAND.to(tag);
                    self.bad_inputs.refuse(BadInput::UnknownCommand, refusal)
                }
            }
        }
    }

    fn refuse_plaintext(&mut self, tag: &[u8]) -> Option<Event> {
        if self.login_allowed() {
            return None;
        }
        // RFC 3501 §6.2.3: with LOGINDISABLED the server answers LOGIN with NO;
        // PRIVACYREQUIRED is RFC 5530's code for exactly this.
        let refusal = reply::PRIVACY_REQUIRED.to(tag);
        Some(self.bad_inputs.refuse(BadInput::LoginBeforeTls, refusal))
    }

    fn sasl_step(&mut self, tag: Vec<u8>, mechanism: Mechanism, step: Result<Step, SaslError>) -> Event {
        match step {
            Ok(Step::Challenge(challenge, exchange)) => {
                self.state = State::Authenticating {
                    tag,
                    mechanism,
                    exchange,
                };
                Event::Reply(reply::challenge(challenge))
            }
            Ok(Step::Done(credentials)) => {
                self.state = State::LoggingIn;
                Event::Login(LoginAttempt {
                    tag,
                    credentials,
                    mechanism: LoginMechanism::Sasl(mechanism),
                })
            }
            Err(SaslError::Cancelled) => {
                self.state = State::Commands;
                Event::Reply(reply::AUTH_CANCELLED.to(&tag))
            }
            Err(e) => {
                self.state = State::Commands;
                // Undecodable or malformed SASL data (SMTP's name for the same).
                let refusal = reply::sasl_failed(&tag, &e);
                self.bad_inputs.refuse(BadInput::BadBase64, refusal)
            }
        }
    }

    fn next_auth_line(&mut self, tag: Vec<u8>, mechanism: Mechanism, exchange: Exchange) -> Option<Event> {
        let decoded = if self.buf.line_to_parse() {
            parse::decode_auth_line(&self.buf)
        } else {
            Decode::Incomplete
        };
        match decoded {
            Decode::Done { consumed, value } => {
                let step = exchange.step(value);
                self.buf.advance(consumed);
                Some(self.sasl_step(tag, mechanism, step))
            }
            Decode::Incomplete | Decode::LiteralAnnounced { .. } => {
                if self.buf.len() > self.opts.max_line_bytes {
                    return Some(self.too_long());
                }
                self.state = State::Authenticating {
                    tag,
                    mechanism,
                    exchange,
                };
                None
            }
            Decode::Failed(_) => {
                self.state = State::Commands;
                match self.buf.iter().position(|&b| b == b'\n') {
                    Some(end) => self.buf.advance(end + 1),
                    None => self.buf.clear(),
                }
                let refusal = reply::BAD_BASE64.to(&tag);
                Some(self.bad_inputs.refuse(BadInput::BadBase64, refusal))
            }
        }
    }

    /// A command is incomplete: fine unless it has outgrown its allowance.
    fn check_allowance(&mut self) -> Option<Event> {
        if self.buf.len() > self.command_allowance {
            Some(self.too_long())
        } else {
            None
        }
    }

    fn too_long(&mut self) -> Event {
        self.state = State::Closed;
        self.buf.clear();
        let refusal = reply::line(reply::LINE_TOO_LONG);
        self.bad_inputs.refuse(BadInput::LineTooLong, refusal)
    }

    /// A literal of `length` octets is announced, its data to start at
    /// `offset`: acknowledged (`+` when synchronising) if the command takes
    /// literals and the literal fits its limit and the command's byte
    /// budget; refused otherwise. `None` when acknowledged without a reply.
    fn literal_announced(&mut self, offset: usize, length: u64, sync: bool) -> Option<Event> {
        let (tag, name) = parse::head(&self.buf)?;
        let tag = tag.to_vec();
        let is_id = name.eq_ignore_ascii_case(b"ID");
        let takes_literals = is_id || name.eq_ignore_ascii_case(b"LOGIN");
        let max_literal = if is_id {
            // RFC 2971 §3.3: no ID field or value is longer than 1024 octets.
            self.opts.max_literal_bytes.min(parse::MAX_ID_VALUE_BYTES as u64)
        } else {
            self.opts.max_literal_bytes
        };
        let budget = self.opts.max_command_bytes() as u64;
        let over_budget = offset as u64 + length > budget;
        if !takes_literals || length > max_literal || over_budget {
            let (refusal, goodbye) = if !takes_literals {
                (reply::LITERAL_NOT_PERMITTED, reply::LITERAL_TOO_BIG_BYE)
            } else if length > max_literal {
                (reply::LITERAL_TOO_BIG, reply::LITERAL_TOO_BIG_BYE)
            } else {
                (reply::COMMAND_TOO_BIG, reply::COMMAND_TOO_BIG_BYE)
            };
            let mut out = refusal.to(&tag);
            if sync {
                // The client waits for our `+` and sends no literal data: the
                // command ends at the announcement.
                self.command_ended(offset.min(self.buf.len()));
            } else {
                // RFC 7888 §4: the data is on its way and cannot be told apart
                // from the next command; refuse and close.
                out.extend(reply::line(goodbye));
                self.state = State::Closed;
                self.buf.clear();
            }
            if !takes_literals {
                // Refused for what the command is, as `not_permitted`: not
                // counted as bad input.
                return Some(Event::Reply(out));
            }
            return Some(self.bad_inputs.refuse(BadInput::LiteralTooBig, out));
        }
        // Within the budget, so `length` fits in memory: the data is skipped
        // by the line scan and the line after it gets a line's allowance.
        let data_end = offset + length as usize;
        self.line_start = data_end;
        self.buf.skip_to(data_end);
        self.command_allowance = (data_end + self.opts.max_line_bytes).min(self.opts.max_command_bytes());
        if sync {
            return Some(Event::Reply(reply::line(reply::READY_FOR_LITERAL)));
        }
        self.check_allowance()
    }

    /// A line that cannot be a command: `BAD` with its tag. It is parsed
    /// only once a line has ended, and the refused command ends with the
    /// line feed the scan found (any earlier one was literal data).
    fn reject_line(&mut self, why: &'static str) -> Option<Event> {
        let end = self.buf.scanned();
        if end > self.command_allowance {
            return Some(self.too_long());
        }
        let refusal = reply::invalid_command(parse::leading_tag(&self.buf), why);
        self.command_ended(end);
        Some(self.bad_inputs.refuse(BadInput::Syntax, refusal))
    }
}

/// A client-supplied `ID` value made safe for logs: printable ASCII, bounded.
fn printable(value: &[u8]) -> String {
    value
        .iter()
        .take(MAX_ID_VALUE)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
