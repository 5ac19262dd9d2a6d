//! pec-proxy: a TLS access gateway for the IMAP, POP3 and SMTP servers of a
//! PEC (certified e-mail) provider. See `README.md` and
//! `docs/ARCHITECTURE.md`.
//!
//! The modules are the pipeline's stages and are private; the `pec-proxy`
//! binary uses the few items re-exported here, and the crate's own tests,
//! benches and fuzz targets use [`testing`].
#![forbid(unsafe_code)]

mod access;
mod admin;
mod config;
mod frontend;
mod imap;
mod listener;
mod net;
mod ops;
mod pop3;
mod protocol;
mod relay;
mod secret;
mod session;
mod smtp;
mod store;
mod tls;
mod upstream;

#[doc(hidden)]
pub mod testing;

pub use admin::{AdminCommand, AdminError, run as run_admin};
pub use config::{Config, StoreConfig};
pub use listener::{RunningServer, Server};
pub use ops::http::{Status, serve as serve_status};
pub use ops::metrics::{config_reload, install as install_metrics, run_upkeep as run_metrics_upkeep};
pub use session::control::{SessionInfo, request as session_request};
pub use store::copy::copy as copy_store;
pub use store::migrations::Backend as StoreKind;
pub use store::postgres::Schema;
pub use store::{Opened as OpenedStore, PostgresStore, SqliteStore, StoreError};
pub use tls::{TlsError, server_config};
