//! POP3 (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH): the
//! pre-login front-end (pure), the upstream login, the keep-on-server
//! guard (pure, run by [`crate::relay::guarded`]), and the session driver.

pub mod frontend;
pub mod guard;
pub mod parse;
pub mod session;
pub mod upstream;
