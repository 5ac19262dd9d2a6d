//! Listeners: bind every configured endpoint, accept under a global
//! connection limit, do the TLS handshake, and hand each connection to its
//! protocol's session driver.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, error, info};

use crate::auth::Authenticator;
use crate::config::{Config, Limits, ListenerConfig, TlsMode};
use crate::login::Gate;
use crate::metrics as m;
use crate::net::Stream;
use crate::protocol::Protocol;
use crate::store::{CachedStore, SqliteStore, StoreError};
use crate::tls::{self, TlsError};
use crate::upstream::Upstream;

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {address} ({name}): {source}")]
    Bind {
        name: String,
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("listener {0}: no upstream configured for its protocol")]
    NoUpstream(String),
    #[error("account store: {0}")]
    Store(#[from] StoreError),
}

/// Everything a session needs from its listener, built once.
pub struct ListenerContext {
    pub listener: ListenerConfig,
    pub acceptor: Option<TlsAcceptor>,
    pub limits: Limits,
    pub upstream: Upstream,
    /// The upstream's address, as a (config-bounded) metric label.
    pub upstream_label: String,
    pub greeting: String,
    pub gate: Gate,
    pub login_name_separator: char,
    /// SMTP greeting name, PEC checks and the shared rate limiter.
    pub smtp: Arc<crate::smtp::SmtpSettings>,
}

/// Keeps `pec_proxy_sessions_active{protocol,stage}` right whatever way a session ends.
pub struct SessionGauge {
    protocol: Protocol,
    stage: &'static str,
}

impl SessionGauge {
    pub fn prelogin(protocol: Protocol) -> Self {
        metrics::gauge!(m::SESSIONS_ACTIVE, "protocol" => protocol.as_str(), "stage" => "prelogin")
            .increment(1.0);
        Self {
            protocol,
            stage: "prelogin",
        }
    }

    pub fn to_relay(&mut self) {
        let p = self.protocol.as_str();
        metrics::gauge!(m::SESSIONS_ACTIVE, "protocol" => p, "stage" => self.stage).decrement(1.0);
        self.stage = "relay";
        metrics::gauge!(m::SESSIONS_ACTIVE, "protocol" => p, "stage" => "relay").increment(1.0);
    }
}

impl Drop for SessionGauge {
    fn drop(&mut self) {
        metrics::gauge!(m::SESSIONS_ACTIVE, "protocol" => self.protocol.as_str(), "stage" => self.stage)
            .decrement(1.0);
    }
}

/// For implicit-TLS listeners, the handshake; otherwise the plain stream.
pub async fn accept_tls(tcp: TcpStream, ctx: &ListenerContext) -> Option<Stream> {
    match ctx.listener.tls {
        TlsMode::Implicit => upgrade_tls(Stream::Plain(tcp), ctx).await,
        TlsMode::Starttls | TlsMode::None => Some(Stream::Plain(tcp)),
    }
}

/// The server-side TLS handshake under the handshake timeout, counted.
pub async fn upgrade_tls(stream: Stream, ctx: &ListenerContext) -> Option<Stream> {
    let protocol = ctx.listener.protocol.as_str();
    let (Stream::Plain(tcp), Some(acceptor)) = (stream, ctx.acceptor.as_ref()) else {
        return None;
    };
    let started = Instant::now();
    let result = tokio::time::timeout(ctx.limits.tls_handshake_timeout(), acceptor.accept(tcp)).await;
    let elapsed = started.elapsed().as_secs_f64();
    match result {
        Ok(Ok(tls)) => {
            let stream = Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(tls)));
            let version = stream.tls_version().unwrap_or("other");
            metrics::counter!(m::TLS_HANDSHAKES_TOTAL, "protocol" => protocol, "result" => "ok", "version" => version)
                .increment(1);
            metrics::histogram!(m::TLS_HANDSHAKE_DURATION_SECONDS, "protocol" => protocol).record(elapsed);
            Some(stream)
        }
        Ok(Err(e)) => {
            debug!(protocol, listener = %ctx.listener.name, error = %e, "TLS handshake failed");
            metrics::counter!(m::TLS_HANDSHAKES_TOTAL, "protocol" => protocol, "result" => "error", "version" => "none")
                .increment(1);
            None
        }
        Err(_) => {
            metrics::counter!(m::TLS_HANDSHAKES_TOTAL, "protocol" => protocol, "result" => "timeout", "version" => "none")
                .increment(1);
            None
        }
    }
}

/// Bound listeners, ready to run.
pub struct Server {
    listeners: Vec<(TcpListener, Arc<ListenerContext>)>,
    connections: Arc<Semaphore>,
    gate: Gate,
}

impl Server {
    /// Builds the TLS configs and binds every listener.
    pub async fn bind(config: &Config) -> Result<Server, ServerError> {
        let acceptor = if config.certificates.is_empty() {
            None
        } else {
            Some(TlsAcceptor::from(tls::server_config(&config.certificates)?))
        };
        let mut upstreams = Vec::new();
        for protocol in [Protocol::Imap, Protocol::Pop3, Protocol::Smtp] {
            if let Some(u) = config.upstream(protocol) {
                let client_tls = match u.tls {
                    TlsMode::None => None,
                    _ => Some(tls::client_config(u.ca.as_deref())?),
                };
                upstreams.push((
                    protocol,
                    Upstream::new(u.clone(), client_tls, config.limits.upstream_connect_timeout()),
                ));
            }
        }
        let gate = match &config.store_path {
            Some(path) => {
                let store = SqliteStore::open(path).await?;
                Gate::Store(Authenticator::new(Arc::new(CachedStore::new(Arc::new(store)))))
            }
            None => Gate::PassThrough,
        };
        let smtp = Arc::new(crate::smtp::SmtpSettings::new(
            config.smtp_hostname.clone(),
            config.pec_checks.clone(),
        ));
        let mut listeners = Vec::new();
        for l in &config.listeners {
            let Some((_, upstream)) = upstreams.iter().find(|(p, _)| *p == l.protocol) else {
                return Err(ServerError::NoUpstream(l.name.clone()));
            };
            let socket = TcpListener::bind(l.address)
                .await
                .map_err(|source| ServerError::Bind {
                    name: l.name.clone(),
                    address: l.address,
                    source,
                })?;
            let ctx = ListenerContext {
                listener: l.clone(),
                acceptor: if l.tls == TlsMode::None {
                    None
                } else {
                    acceptor.clone()
                },
                limits: config.limits.clone(),
                upstream: upstream.clone(),
                upstream_label: upstream.config.address.clone(),
                greeting: config.greeting.clone(),
                gate: gate.clone(),
                login_name_separator: config.login_name_separator,
                smtp: smtp.clone(),
            };
            listeners.push((socket, Arc::new(ctx)));
        }
        Ok(Server {
            listeners,
            connections: Arc::new(Semaphore::new(config.limits.max_connections)),
            gate,
        })
    }

    /// The bound address of each listener, by name (port 0 in the config is resolved here).
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|(s, ctx)| s.local_addr().ok().map(|a| (ctx.listener.name.clone(), a)))
            .collect()
    }

    /// Accepts connections until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut accept_loops = JoinSet::new();
        for (socket, ctx) in self.listeners {
            info!(listener = %ctx.listener.name, protocol = %ctx.listener.protocol, address = ?socket.local_addr().ok(), tls = ?ctx.listener.tls, "listening");
            accept_loops.spawn(accept_loop(socket, ctx, self.connections.clone()));
        }
        if let Gate::Store(auth) = &self.gate {
            accept_loops.spawn(prune_access_log(auth.clone()));
        }
        shutdown.await;
        accept_loops.shutdown().await;
    }
}

async fn accept_loop(socket: TcpListener, ctx: Arc<ListenerContext>, connections: Arc<Semaphore>) {
    let mut backoff = Duration::from_millis(5);
    loop {
        // The permit is taken before accept: at the limit, new connections
        // wait in the kernel's backlog instead of being accepted and dropped.
        let Ok(permit) = connections.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match socket.accept().await {
            Ok(c) => {
                backoff = Duration::from_millis(5);
                c
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                error!(listener = %ctx.listener.name, error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        metrics::counter!(m::CONNECTIONS_TOTAL, "protocol" => ctx.listener.protocol.as_str(), "listener" => ctx.listener.name.clone())
            .increment(1);
        let _ = tcp.set_nodelay(true);
        let ctx = ctx.clone();
        tokio::spawn(async move {
            match ctx.listener.protocol {
                Protocol::Imap => crate::imap::session::serve(tcp, peer, ctx).await,
                Protocol::Smtp => crate::smtp::session::serve(tcp, peer, ctx).await,
                Protocol::Pop3 => {}
            }
            drop(permit);
        });
    }
}

/// Keeps the access log within its retention (PEC providers show six months):
/// prunes at start and then daily.
async fn prune_access_log(auth: Authenticator) {
    const DAY: i64 = 24 * 3600;
    loop {
        let cutoff = crate::store::unix_now() - crate::store::DEFAULT_RETENTION_DAYS * DAY;
        match auth.store().prune_access_log(cutoff).await {
            Ok(n) if n > 0 => info!(rows = n, "pruned the access log"),
            Ok(_) => {}
            Err(e) => error!(error = %e, "cannot prune the access log"),
        }
        tokio::time::sleep(Duration::from_secs(DAY as u64)).await;
    }
}
