//! pec-proxy: a TLS access gateway for the IMAP, POP3 and SMTP servers of a
//! PEC (certified e-mail) provider. See `README.md` and `DESIGN.md`.
#![forbid(unsafe_code)]

pub mod config;
pub mod imap;
pub mod metrics;
pub mod net;
pub mod protocol;
pub mod relay;
pub mod sasl;
pub mod secret;
pub mod server;
pub mod tls;
pub mod upstream;
