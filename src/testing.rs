//! The crate's surface for its own tests, benches and fuzz targets, laid
//! out like the crate: the pure parts (parsers, front-ends, guards, the
//! policy) and what the integration harness starts. Not an API for anyone
//! else: nothing here is promised to stay.

pub mod access {
    pub use crate::access::{LoginRefusal, login_name, password, policy, verified};
}
pub mod config {
    pub use crate::config::{CertificateConfig, Config, PostgresConfig, SslMode, StoreBackend, StoreConfig};
}
pub mod frontend {
    pub use crate::frontend::{BadInput, Event, Frontend, sasl};
}
pub mod imap {
    pub use crate::imap::{frontend, guard, parse};
}
pub mod listener {
    pub use crate::listener::Server;
}
pub mod net {
    pub use crate::net::{Stream, proxy_protocol};
}
pub mod pop3 {
    pub use crate::pop3::{frontend, guard, parse};
}
pub mod protocol {
    pub use crate::protocol::Protocol;
}
pub mod secret {
    pub use crate::secret::Secret;
}
pub mod smtp {
    pub use crate::smtp::{address, checks, frontend, guard, parse, reply};
}
pub mod store {
    pub use crate::store::postgres::Schema;
    pub use crate::store::{
        AccessLogEntry, AccountStore, AppPasswordInfo, CachedStore, LoginResult, NewAppPassword, Opened,
        PostgresStore, SqliteStore, StoreError, account, cache, copy, migrations, unix_now,
    };
}
pub mod tls {
    pub use crate::tls::{client_config, server_config};
}
