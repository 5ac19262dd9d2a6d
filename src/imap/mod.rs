//! IMAP: the pre-login front-end (pure), the upstream login and the session driver.

pub mod frontend;
pub mod parse;
