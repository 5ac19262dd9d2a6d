//! IMAP: the pre-login front-end (pure), the upstream login and the session driver.

pub mod frontend;
pub mod parse;
pub mod session;
pub mod upstream;
