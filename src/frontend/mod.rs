//! What every protocol's pre-login front-end has in common: the events it
//! hands to its session, and the few calls the session makes on it. Pure;
//! [`crate::session::prelogin`] drives any [`Frontend`] over a connection.

pub mod sasl;

/// What a session does next, in any protocol.
#[derive(Debug)]
pub enum Event<L> {
    /// Send these bytes to the client.
    Reply(Vec<u8>),
    /// Send this go-ahead, then perform the TLS handshake. Every byte the
    /// client sent after its STARTTLS/STLS command has been discarded
    /// (CVE-2011-0411 class).
    StartTls(Vec<u8>),
    /// Check these credentials and log in upstream.
    Login(L),
    /// Close the connection (after the replies already returned).
    Close,
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
        }
    };
}
pub(crate) use impl_frontend;
