//! IMAP: the pre-login front-end (pure) and its words, the upstream login
//! and the session driver.

pub mod frontend;
pub mod parse;
pub mod reply;
pub mod session;
pub mod upstream;
