//! Listeners: bind every configured endpoint, accept under a global
//! connection limit, do the TLS handshake, and hand each connection to its
//! protocol's session driver.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

mod counting;
mod proxied;
mod ready;

use counting::Counting;
pub use ready::Ready;

use crate::access::authenticator::Authenticator;
use crate::access::client_limits::{ClientLimits, Refusal};
use crate::access::gate::{Authority, Gate};
use crate::config::{Config, TlsMode};
use crate::imap::Imap;
use crate::net::client_ip::is_trusted;
use crate::ops::metrics as m;
use crate::ops::shutdown::Shutdown;
use crate::pop3::Pop3;
use crate::protocol::Protocol;
use crate::session::control;
use crate::session::registry::Sessions;
use crate::session::{ListenerContext, serve};
use crate::smtp::Smtp;
use crate::store::postgres::Schema;
use crate::store::{CachedStore, Opened, StoreError};
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
    #[error("store.fleet_key_file: {0}")]
    FleetKey(String),
    #[error("listeners cannot change on reload, restart to apply: {0}")]
    ListenersChanged(String),
    #[error("cannot create the session control socket {path}: {source}")]
    ControlSocket {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// After SIGINT, or after the grace period, how long sessions get to notice
/// they must close (a goodbye write, a TLS handshake under its own timeout)
/// before the process exits regardless.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Everything built from one configuration: a context per listener (in
/// configuration order) and the login gate.
struct Generation {
    contexts: Vec<ListenerContext>,
    gate: Gate,
}

/// How often expired penalty records are dropped (the cap holds without it).
const PENALTY_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Builds the TLS configs, the upstreams and the gate (opening the account
/// store) for `config`. Binds nothing. The penalty's records and the
/// sending rate's buckets outlive reloads: `counting` is the one made at
/// start.
async fn build(
    config: &Config,
    shutdown: &Shutdown,
    counting: &Counting,
    sessions: &Arc<Sessions>,
) -> Result<Generation, ServerError> {
    let tls_base = if config.certificates.is_empty() {
        None
    } else {
        Some(tls::server_config(&config.certificates)?)
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
    let authority = match &config.store {
        Some(store) => {
            let store = Opened::open(&store.backend, Schema::MustBeCurrent).await?;
            if let Opened::Postgres(pg) = &store {
                // Changes made on other nodes reach this one's cache at once.
                pg.listen(Vec::new());
            }
            Authority::Store(
                Authenticator::new(Arc::new(CachedStore::new(store.shared())))
                    .with_verified_cache(Duration::from_secs(config.limits.auth_cache_ttl_secs)),
            )
        }
        None => Authority::PassThrough,
    };
    let gate = Gate::new(authority, counting.penalties.clone());
    let send_rate = &counting.send_rate;
    let mut contexts = Vec::new();
    for l in &config.listeners {
        let Some((_, upstream)) = upstreams.iter().find(|(p, _)| *p == l.protocol) else {
            return Err(ServerError::NoUpstream(l.name.clone()));
        };
        contexts.push(ListenerContext {
            listener: l.clone(),
            // Each listener's own: the ALPN it accepts is its protocol's.
            acceptor: match (&tls_base, l.tls) {
                (_, TlsMode::None) | (None, _) => None,
                (Some(base), _) => Some(tls::Acceptor::new(base, l.protocol)),
            },
            limits: config.limits.clone(),
            upstream: upstream.clone(),
            upstream_label: upstream.config.address.clone(),
            greeting: config.greeting.clone(),
            gate: gate.clone(),
            login_name_separator: config.login_name_separator,
            shutdown: shutdown.clone(),
            smtp_hostname: config.smtp_hostname.clone(),
            pec_checks: config.pec_checks.clone(),
            send_rate: send_rate.clone(),
            sessions: sessions.clone(),
        });
    }
    Ok(Generation { contexts, gate })
}

/// Bound listeners, ready to run.
pub struct Server {
    listeners: Vec<(TcpListener, Arc<ListenerContext>)>,
    gate: Gate,
    /// Logged-in sessions, re-checked when the account store changes.
    sessions: Arc<Sessions>,
    /// `pec-proxy session list|end`, beside the account store (if any).
    control: Option<tokio::net::UnixListener>,
    connections: Arc<Semaphore>,
    client_limits: Arc<ClientLimits>,
    counting: Counting,
    shutdown: Shutdown,
}

impl Server {
    /// Builds the TLS configs and binds every listener.
    pub async fn bind(config: &Config) -> Result<Server, ServerError> {
        let shutdown = Shutdown::new();
        let counting = Counting::start(config).await?;
        let sessions = Sessions::new();
        let Generation { contexts, gate } = build(config, &shutdown, &counting, &sessions).await?;
        let control = match &config.store {
            Some(store) => {
                let path = store.control_socket.clone();
                Some(control::bind(&path).map_err(|source| ServerError::ControlSocket { path, source })?)
            }
            None => None,
        };
        let mut listeners = Vec::new();
        for ctx in contexts {
            let l = &ctx.listener;
            let socket = TcpListener::bind(l.address)
                .await
                .map_err(|source| ServerError::Bind {
                    name: l.name.clone(),
                    address: l.address,
                    source,
                })?;
            listeners.push((socket, Arc::new(ctx)));
        }
        Ok(Server {
            listeners,
            gate,
            sessions,
            control,
            connections: Arc::new(Semaphore::new(config.limits.max_connections)),
            client_limits: ClientLimits::new(
                config.limits.max_connections_per_ip,
                config.limits.max_prelogin_per_ip,
                config.limits.trusted_networks.clone(),
            ),
            counting,
            shutdown,
        })
    }

    /// The bound address of each listener, by name (port 0 in the config is resolved here).
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|(s, ctx)| s.local_addr().ok().map(|a| (ctx.listener.name.clone(), a)))
            .collect()
    }

    /// Starts accepting on every listener.
    pub fn start(self) -> RunningServer {
        let mut accept_loops = JoinSet::new();
        let mut contexts = Vec::new();
        let sessions = TaskTracker::new();
        for (socket, ctx) in self.listeners {
            info!(listener = %ctx.listener.name, protocol = %ctx.listener.protocol, address = ?socket.local_addr().ok(), tls = ?ctx.listener.tls, "listening");
            let (tx, rx) = watch::channel(ctx);
            contexts.push(tx);
            accept_loops.spawn(accept_loop(
                socket,
                rx,
                self.connections.clone(),
                self.client_limits.clone(),
                sessions.clone(),
            ));
        }
        let (gate, _) = watch::channel(self.gate);
        accept_loops.spawn(prune_access_log(gate.subscribe()));
        // Beside the accept loops, not among them: revocations still reach
        // the sessions relaying through a drain's grace period.
        let watch = tokio::spawn(self.sessions.clone().watch(gate.subscribe()));
        if let Some(socket) = self.control {
            accept_loops.spawn(control::serve(socket, self.sessions.clone()));
        }
        accept_loops.spawn(
            self.counting
                .penalties
                .clone()
                .sweep_every(PENALTY_SWEEP_INTERVAL),
        );
        RunningServer {
            accept_loops,
            watch,
            sessions_registry: self.sessions,
            contexts,
            gate,
            sessions,
            counting: self.counting,
            shutdown: self.shutdown,
        }
    }

    /// Accepts connections until `shutdown` completes, then drains as on
    /// SIGTERM with the configured grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let grace = self
            .listeners
            .first()
            .map_or(Duration::ZERO, |(_, ctx)| ctx.limits.shutdown_grace());
        let running = self.start();
        shutdown.await;
        running.drain(grace).await;
    }
}

/// Listeners accepting, sessions tracked; reloaded and stopped from here.
pub struct RunningServer {
    accept_loops: JoinSet<()>,
    /// [`Sessions::watch`], stopped when the server is dropped.
    watch: tokio::task::JoinHandle<()>,
    sessions_registry: Arc<Sessions>,
    /// Each listener's current context, read once per accepted connection.
    contexts: Vec<watch::Sender<Arc<ListenerContext>>>,
    gate: watch::Sender<Gate>,
    sessions: TaskTracker,
    counting: Counting,
    shutdown: Shutdown,
}

impl RunningServer {
    /// What `/readyz` checks: not draining, the current gate's store
    /// answers, and every protocol has a backend that answers.
    pub fn readiness(&self) -> Ready {
        Ready::new(
            self.shutdown.clone(),
            self.gate.subscribe(),
            self.contexts.iter().map(watch::Sender::subscribe).collect(),
        )
    }

    /// Sessions open now.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Applies a new configuration: certificates, upstreams, account store,
    /// limits and greeting. New connections get it at once; open sessions
    /// keep what they started with. Listener names and addresses are bound
    /// sockets and cannot change (nor can `limits.max_connections`, a
    /// semaphore sized at start, `metrics.listen`, the per-client limits,
    /// `limits.trusted_networks` and `[penalty]`, whose state lives across
    /// reloads): a change of listeners rejects the reload, the others are
    /// logged and ignored.
    pub async fn reload(&self, config: &Config) -> Result<(), ServerError> {
        let current: Vec<_> = self
            .contexts
            .iter()
            .map(|c| c.borrow().listener.clone())
            .collect();
        let same = current.len() == config.listeners.len()
            && current
                .iter()
                .zip(&config.listeners)
                .all(|(a, b)| a.name == b.name && a.address == b.address && a.protocol == b.protocol);
        if !same {
            let show = |ls: &[crate::config::ListenerConfig]| {
                ls.iter()
                    .map(|l| format!("{} {} {}", l.name, l.protocol, l.address))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(ServerError::ListenersChanged(format!(
                "running [{}], configured [{}]",
                show(&current),
                show(&config.listeners)
            )));
        }
        let running_max = self.contexts.first().map(|c| c.borrow().limits.max_connections);
        if running_max.is_some_and(|max| max != config.limits.max_connections) {
            warn!(
                "limits.max_connections changes only on restart; keeping {}",
                running_max.unwrap_or_default()
            );
        }
        if let Some(running) = self.contexts.first().map(|c| c.borrow().limits.clone()) {
            let new = &config.limits;
            if (
                running.max_connections_per_ip,
                running.max_prelogin_per_ip,
                &running.trusted_networks,
            ) != (
                new.max_connections_per_ip,
                new.max_prelogin_per_ip,
                &new.trusted_networks,
            ) || self.counting.penalties.config() != &config.penalty
            {
                warn!("per-client limits, trusted networks and [penalty] change only on restart");
            }
            if self.counting.send_rate.per_minute() != config.pec_checks.messages_per_minute {
                warn!("pec_checks.messages_per_minute changes only on restart");
            }
        }
        let Generation { contexts, gate } =
            build(config, &self.shutdown, &self.counting, &self.sessions_registry).await?;
        for (tx, ctx) in self.contexts.iter().zip(contexts) {
            tx.send_replace(Arc::new(ctx));
        }
        self.gate.send_replace(gate);
        Ok(())
    }

    /// SIGTERM: stop accepting, say goodbye to pre-login sessions, let
    /// relaying ones run up to `grace`, then close them. Returns once every
    /// session ended, or [`CLOSE_WAIT`] after closing.
    pub async fn drain(mut self, grace: Duration) {
        self.shutdown.start_draining();
        // Dropping the listening sockets: new connections are refused.
        self.accept_loops.shutdown().await;
        self.sessions.close();
        info!(
            sessions = self.sessions.len(),
            grace_secs = grace.as_secs(),
            "draining"
        );
        if tokio::time::timeout(grace, self.sessions.wait()).await.is_err() {
            info!(
                sessions = self.sessions.len(),
                "grace period over: closing sessions"
            );
            self.close().await;
        }
    }

    /// SIGINT: close every session now.
    pub async fn stop(mut self) {
        self.shutdown.start_draining();
        self.accept_loops.shutdown().await;
        self.sessions.close();
        self.close().await;
    }

    async fn close(&self) {
        self.shutdown.close();
        if tokio::time::timeout(CLOSE_WAIT, self.sessions.wait())
            .await
            .is_err()
        {
            warn!(
                sessions = self.sessions.len(),
                "sessions still open after closing; exiting anyway"
            );
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

async fn accept_loop(
    socket: TcpListener,
    contexts: watch::Receiver<Arc<ListenerContext>>,
    connections: Arc<Semaphore>,
    client_limits: Arc<ClientLimits>,
    sessions: TaskTracker,
) {
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
                error!(listener = %contexts.borrow().listener.name, error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        // Read once per connection: a reload applies from the next accept.
        let ctx = contexts.borrow().clone();
        metrics::counter!(m::CONNECTIONS_TOTAL, "protocol" => ctx.listener.protocol.as_str(), "listener" => ctx.listener.name.clone())
            .increment(1);
        if ctx.listener.proxy_protocol {
            // Behind a balancer: who the client is comes from the header,
            // read in the session's own task (a slow one must not hold up
            // accepting), and only a trusted balancer may say it.
            if !is_trusted(&ctx.limits.trusted_proxies, peer.ip()) {
                metrics::counter!(m::PROXY_HEADERS_TOTAL, "listener" => ctx.listener.name.clone(), "result" => "untrusted")
                    .increment(1);
                debug!(%peer, listener = %ctx.listener.name, "connection refused: not a trusted proxy");
                continue;
            }
            let limits = client_limits.clone();
            let _detached = match ctx.listener.protocol {
                Protocol::Imap => {
                    sessions.spawn(holding(permit, through_balancer::<Imap>(tcp, peer, ctx, limits)))
                }
                Protocol::Pop3 => {
                    sessions.spawn(holding(permit, through_balancer::<Pop3>(tcp, peer, ctx, limits)))
                }
                Protocol::Smtp => {
                    sessions.spawn(holding(permit, through_balancer::<Smtp>(tcp, peer, ctx, limits)))
                }
            };
            continue;
        }
        let admission = match client_limits.admit(peer.ip()) {
            Ok(admission) => admission,
            Err(refusal) => {
                refuse(&tcp, &ctx, refusal);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        // One spawn per protocol: a task is as large as its future, and a
        // `match` inside one future would size every session to the largest.
        // The task detaches: the tracker waits for it on drain.
        let _detached = match ctx.listener.protocol {
            Protocol::Imap => sessions.spawn(holding(permit, serve::<Imap>(tcp, peer, ctx, admission))),
            Protocol::Pop3 => sessions.spawn(holding(permit, serve::<Pop3>(tcp, peer, ctx, admission))),
            Protocol::Smtp => sessions.spawn(holding(permit, serve::<Smtp>(tcp, peer, ctx, admission))),
        };
    }
}

/// A connection through a balancer: its PROXY header, then the per-client
/// limits for the client it names, then the session.
async fn through_balancer<P: crate::session::MailProtocol>(
    mut tcp: TcpStream,
    balancer: SocketAddr,
    ctx: Arc<ListenerContext>,
    client_limits: Arc<ClientLimits>,
) {
    let timeout = ctx.limits.proxy_header_timeout();
    let Some(client) = proxied::client_of(&mut tcp, balancer, &ctx.listener.name, timeout).await else {
        return;
    };
    let admission = match client_limits.admit(client.ip()) {
        Ok(admission) => admission,
        Err(refusal) => return refuse(&tcp, &ctx, refusal),
    };
    let _ = tcp.set_nodelay(true);
    serve::<P>(tcp, client, ctx, admission).await;
}

/// Runs a session, then gives its connection slot back.
async fn holding(permit: tokio::sync::OwnedSemaphorePermit, session: impl Future<Output = ()>) {
    session.await;
    drop(permit);
}

/// Keeps the access log within its retention (PEC providers show six months):
/// prunes at start and then daily, in the store of the current configuration.
async fn prune_access_log(gate: watch::Receiver<Gate>) {
    const DAY: i64 = 24 * 3600;
    loop {
        let current = gate.borrow().clone();
        if let Authority::Store(auth) = current.authority {
            let cutoff = crate::store::unix_now() - crate::store::DEFAULT_RETENTION_DAYS * DAY;
            match auth.store().prune_access_log(cutoff).await {
                Ok(n) if n > 0 => info!(rows = n, "pruned the access log"),
                Ok(_) => {}
                Err(e) => error!(error = %e, "cannot prune the access log"),
            }
        }
        tokio::time::sleep(Duration::from_secs(DAY as u64)).await;
    }
}

/// Closes a connection a per-client limit refused, with the protocol's
/// temporary error where the client can read one. Never waits: the line goes
/// out with one non-blocking write or not at all.
fn refuse(tcp: &TcpStream, ctx: &ListenerContext, refusal: Refusal) {
    let protocol = ctx.listener.protocol;
    metrics::counter!(m::CONNECTIONS_REFUSED_TOTAL, "protocol" => protocol.as_str(), "limit" => refusal.label())
        .increment(1);
    debug!(listener = %ctx.listener.name, limit = refusal.label(), "connection refused by a per-client limit");
    if ctx.listener.tls != TlsMode::Implicit {
        let _ = tcp.try_write(refusal_line(protocol));
    }
}

/// The line a refused client gets on a listener without implicit TLS (on an
/// implicit-TLS port it is closed without a word: it expects a handshake, and
/// doing one would spend what the limit is there to save).
fn refusal_line(protocol: Protocol) -> &'static [u8] {
    match protocol {
        Protocol::Imap => crate::imap::reply::TOO_MANY_CONNECTIONS,
        Protocol::Pop3 => crate::pop3::reply::TOO_MANY_CONNECTIONS,
        Protocol::Smtp => crate::smtp::reply::TOO_MANY_CONNECTIONS,
    }
}
