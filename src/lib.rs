//! pec-proxy: a TLS access gateway for the IMAP, POP3 and SMTP servers of a
//! PEC (certified e-mail) provider. See `README.md` and `DESIGN.md`.
#![forbid(unsafe_code)]

pub mod account;
pub mod admin;
pub mod app_password;
pub mod auth;
pub mod client_ip;
pub mod client_limits;
pub mod config;
pub mod frontend;
pub mod imap;
pub mod login;
pub mod login_name;
pub mod metrics;
pub mod net;
pub mod password;
pub mod penalty;
pub mod policy;
pub mod pop3;
pub mod protocol;
pub mod relay;
pub mod reply;
pub mod sasl;
pub mod secret;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod smtp;
pub mod status;
pub mod store;
pub mod tls;
pub mod upstream;
pub mod verified;
