//! pec-proxy: a TLS access gateway for the IMAP, POP3 and SMTP servers of a
//! PEC (certified e-mail) provider. See `README.md` and
//! `docs/ARCHITECTURE.md`.
#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
pub mod config;
pub mod frontend;
pub mod imap;
pub mod listener;
pub mod net;
pub mod ops;
pub mod pop3;
pub mod protocol;
pub mod relay;
pub mod secret;
pub mod session;
pub mod smtp;
pub mod store;
pub mod tls;
pub mod upstream;
