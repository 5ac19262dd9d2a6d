//! What every protocol's pre-login front-end has in common: the events it
//! hands to its session, and the few calls the session makes on it. Pure;
//! [`crate::session::prelogin`] drives any [`Frontend`] over a connection.

mod input;
pub mod sasl;
#[cfg(test)]
pub(crate) mod test_support;

use crate::access::LoginRefusal;

pub use input::Input;

/// What a session does next, in any protocol.
#[derive(Debug)]
pub enum Event<L> {
    /// Send these bytes to the client.
    Reply(Vec<u8>),
    /// Send this go-ahead, then perform the TLS handshake. Every byte the
    /// client sent after its STARTTLS/STLS command has been discarded
    /// (CVE-2011-0411 class).
    StartTls(Vec<u8>),
    /// The client sent something refused as bad input (its reply comes as
    /// a [`Event::Reply`]); the session counts it by kind. The front-end
    /// itself counts these against `max_prelogin_errors` and closes.
    BadInput(BadInput),
    /// Check these credentials and log in upstream.
    Login(L),
    /// Close the connection (after the replies already returned).
    Close,
}

/// Bad input a front-end refused before login, by kind: the
/// `kind` label of `pec_proxy_client_errors_total`. A reply's wording is
/// the front-end's; what is counted is this value, never the reply's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadInput {
    /// A command line over the protocol's limit.
    LineTooLong,
    /// An IMAP literal over its limit (`[TOOBIG]`).
    LiteralTooBig,
    /// A command that does not parse.
    Syntax,
    /// A command the proxy does not offer before login.
    UnknownCommand,
    /// A login attempted in clear where TLS is required.
    LoginBeforeTls,
    /// Undecodable or malformed SASL data.
    BadBase64,
    /// POP3 `APOP`, which the proxy never offers.
    Apop,
    /// SMTP: a mail command before `AUTH`.
    AuthRequired,
    /// `max_prelogin_errors` reached: the connection is closed.
    TooManyErrors,
}

impl BadInput {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            BadInput::LineTooLong => "line_too_long",
            BadInput::LiteralTooBig => "literal_too_big",
            BadInput::Syntax => "syntax",
            BadInput::UnknownCommand => "unknown_command",
            BadInput::LoginBeforeTls => "login_before_tls",
            BadInput::BadBase64 => "bad_base64",
            BadInput::Apop => "apop",
            BadInput::AuthRequired => "auth_required",
            BadInput::TooManyErrors => "too_many_errors",
        }
    }
}

/// A front-end's count of the bad input it refused, against its
/// `max_prelogin_errors` (nginx's `max_errors`; ALPACA, CVE-2021-3618), and
/// the events due after each refusal's [`Event::Reply`], one per
/// [`BadInputs::next_due`]: its [`Event::BadInput`], then, at the limit, the
/// protocol's goodbye and [`BadInput::TooManyErrors`]. At the limit the
/// front-end closes itself ([`BadInputs::cut_off`]), so [`Event::Close`]
/// follows and stays.
#[derive(Debug)]
pub struct BadInputs {
    limit: u32,
    refused: u32,
    goodbye: &'static [u8],
    due: Due,
}

/// What [`BadInputs::next_due`] hands out next.
#[derive(Debug, Clone, Copy)]
enum Due {
    Nothing,
    /// The last refusal's kind; then the goodbye if it reached the limit.
    Kind(BadInput, bool),
    Goodbye,
    TooManyErrors,
}

impl BadInputs {
    /// `limit` refusals close the connection with `goodbye` (CRLF included).
    pub fn new(limit: u32, goodbye: &'static [u8]) -> Self {
        Self {
            limit,
            refused: 0,
            goodbye,
            due: Due::Nothing,
        }
    }

    /// Counts a refusal of `kind`, and returns its reply as the event to
    /// send first. The front-end drains [`BadInputs::next_due`] before it
    /// reads more input, so one refusal at most is ever due.
    pub fn refuse<L>(&mut self, kind: BadInput, reply: Vec<u8>) -> Event<L> {
        debug_assert!(matches!(self.due, Due::Nothing), "{:?} still due", self.due);
        self.refused = self.refused.saturating_add(1);
        self.due = Due::Kind(kind, self.cut_off());
        Event::Reply(reply)
    }

    /// Whether the limit is reached: the front-end is to close.
    pub fn cut_off(&self) -> bool {
        self.refused >= self.limit.max(1)
    }

    /// The next event due after a refusal's reply, if any.
    pub fn next_due<L>(&mut self) -> Option<Event<L>> {
        let (event, then) = match self.due {
            Due::Nothing => return None,
            Due::Kind(kind, false) => (Event::BadInput(kind), Due::Nothing),
            Due::Kind(kind, true) => (Event::BadInput(kind), Due::Goodbye),
            Due::Goodbye => (Event::Reply(self.goodbye.to_vec()), Due::TooManyErrors),
            Due::TooManyErrors => (Event::BadInput(BadInput::TooManyErrors), Due::Nothing),
        };
        self.due = then;
        Some(event)
    }
}

/// A pre-login state machine: bytes in, events out.
pub trait Frontend {
    /// The credentials and details of one login attempt.
    type Login;
    /// The first thing the server says.
    fn greeting(&self) -> Vec<u8>;
    /// Bytes received from the client; parsed by [`Frontend::next_event`].
    fn receive(&mut self, data: &[u8]);
    /// The next thing to do, or `None` when more input is needed.
    fn next_event(&mut self) -> Option<Event<Self::Login>>;
    /// The TLS handshake after STARTTLS/STLS succeeded.
    fn tls_established(&mut self);
    /// Bytes received and not consumed yet.
    fn buffered(&self) -> usize;
    /// The most [`Frontend::buffered`] may be whenever
    /// [`Frontend::next_event`] has returned `None`: all a client can make
    /// the proxy hold before login, whatever it sends and however slowly
    /// (plus the one read in flight).
    fn max_buffered(&self) -> usize;
    /// The login of `attempt` (the last [`Event::Login`]) was refused:
    /// the protocol's words for `refusal`, and whether to close after them
    /// (too many failed attempts).
    fn login_refused(&mut self, attempt: &Self::Login, refusal: &LoginRefusal) -> (Vec<u8>, bool);
}

/// Implements [`Frontend`] by delegating to the type's inherent methods of
/// the same names.
macro_rules! impl_frontend {
    ($frontend:ty, $login:ty) => {
        impl $crate::frontend::Frontend for $frontend {
            type Login = $login;
            fn greeting(&self) -> Vec<u8> {
                <$frontend>::greeting(self)
            }
            fn receive(&mut self, data: &[u8]) {
                <$frontend>::receive(self, data)
            }
            fn next_event(&mut self) -> Option<$crate::frontend::Event<$login>> {
                <$frontend>::next_event(self)
            }
            fn tls_established(&mut self) {
                <$frontend>::tls_established(self)
            }
            fn buffered(&self) -> usize {
                <$frontend>::buffered(self)
            }
            fn max_buffered(&self) -> usize {
                <$frontend>::max_buffered(self)
            }
            fn login_refused(
                &mut self,
                attempt: &$login,
                refusal: &$crate::access::LoginRefusal,
            ) -> (Vec<u8>, bool) {
                <$frontend>::login_refused(self, attempt, refusal)
            }
        }
    };
}
pub(crate) use impl_frontend;
