//! pec-proxy: a TLS access gateway for the IMAP, POP3 and SMTP servers of a
//! PEC (certified e-mail) provider. See `README.md` and `DESIGN.md`.
#![forbid(unsafe_code)]

pub mod account;
pub mod admin;
pub mod app_password;
pub mod auth;
pub mod config;
pub mod imap;
pub mod login;
pub mod login_name;
pub mod metrics;
pub mod net;
pub mod password;
pub mod policy;
pub mod pop3;
pub mod protocol;
pub mod relay;
pub mod reply;
pub mod sasl;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod smtp;
pub mod status;
pub mod store;
pub mod tls;
pub mod upstream;
pub mod verified;
