//! pec-proxy: a TLS access gateway for the IMAP, POP3 and SMTP servers of a
//! PEC (certified e-mail) provider. See `README.md` and `DESIGN.md`.
#![forbid(unsafe_code)]

pub mod account;
pub mod admin;
pub mod app_password;
pub mod auth;
pub mod login_name;
pub mod password;
pub mod policy;
pub mod protocol;
pub mod reply;
pub mod secret;
pub mod store;
