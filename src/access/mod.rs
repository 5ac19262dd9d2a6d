//! The access stage: from the credentials a front-end collected to a
//! decision on who, if anyone, is logged in upstream. The login name is
//! parsed ([`login_name`]), the brute-force [`penalty`] consulted, the
//! mailbox's record read and judged by the pure [`policy`] (password
//! verification, app passwords, collaborators, protocol switches), and the
//! decision recorded. [`gate::Gate`] is the one entry point sessions use.

pub mod app_password;
pub mod authenticator;
pub mod gate;
pub mod login_name;
pub mod password;
pub mod penalty;
pub mod policy;
pub mod reply;
pub mod verified;
