//! `/readyz` for a running server: not draining, the account store
//! answering, a backend answering for every protocol with a listener.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::access::gate::{Authority, Gate};
use crate::ops::http::Readiness;
use crate::ops::shutdown::Shutdown;
use crate::protocol::Protocol;
use crate::session::ListenerContext;
use crate::upstream::Upstream;

/// How long `/readyz` waits for the account store. Below the usual 5 s
/// probe timeouts of Kubernetes and HAProxy.
pub const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long `/readyz` waits for one backend address to accept a connection.
pub const BACKEND_PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a backend probe's answer is reused: a load balancer that checks
/// every 2 s costs each backend one connection per 5 s per proxy.
pub const BACKEND_PROBE_EVERY: Duration = Duration::from_secs(5);

/// What `/readyz` checks of a running server: not draining, the current
/// configuration's account store answers, and for each protocol with a
/// listener at least one of its backend's addresses accepts a connection
/// (a TCP connect, at most [`BACKEND_PROBE_TIMEOUT`] per address, its
/// answer kept [`BACKEND_PROBE_EVERY`]).
#[derive(Clone)]
pub struct Ready {
    shutdown: Shutdown,
    gate: watch::Receiver<Gate>,
    contexts: Vec<watch::Receiver<Arc<ListenerContext>>>,
    backends: Arc<tokio::sync::Mutex<Option<Probed>>>,
}

/// A backend probe's answer, and when it was made.
type Probed = (tokio::time::Instant, Result<(), &'static str>);

impl Ready {
    pub(crate) fn new(
        shutdown: Shutdown,
        gate: watch::Receiver<Gate>,
        contexts: Vec<watch::Receiver<Arc<ListenerContext>>>,
    ) -> Self {
        Self {
            shutdown,
            gate,
            contexts,
            backends: Arc::default(),
        }
    }

    /// The backends' answer, probed again once the last is too old (one
    /// probe at a time: concurrent checks wait for it).
    async fn backends(&self) -> Result<(), &'static str> {
        let mut last = self.backends.lock().await;
        if let Some((at, answer)) = *last {
            if at.elapsed() < BACKEND_PROBE_EVERY {
                return answer;
            }
        }
        let mut upstreams: Vec<(Protocol, Upstream)> = Vec::new();
        for ctx in &self.contexts {
            let ctx = ctx.borrow().clone();
            if !upstreams.iter().any(|(p, _)| *p == ctx.listener.protocol) {
                upstreams.push((ctx.listener.protocol, ctx.upstream.clone()));
            }
        }
        let mut answer = Ok(());
        for (protocol, upstream) in upstreams {
            let mut answers = false;
            for one in upstream.candidates() {
                let connect = TcpStream::connect(one.config.address.as_str());
                if matches!(
                    tokio::time::timeout(BACKEND_PROBE_TIMEOUT, connect).await,
                    Ok(Ok(_))
                ) {
                    answers = true;
                    break;
                }
            }
            if !answers {
                answer = Err(match protocol {
                    Protocol::Imap => "no IMAP backend answers",
                    Protocol::Pop3 => "no POP3 backend answers",
                    Protocol::Smtp => "no SMTP backend answers",
                });
                break;
            }
        }
        *last = Some((tokio::time::Instant::now(), answer));
        answer
    }
}

#[async_trait::async_trait]
impl Readiness for Ready {
    async fn check(&self) -> Result<(), &'static str> {
        if self.shutdown.is_draining() {
            return Err("draining");
        }
        let gate = self.gate.borrow().clone();
        if let Authority::Store(auth) = gate.authority {
            match tokio::time::timeout(STORE_PROBE_TIMEOUT, auth.store().generation()).await {
                Ok(Ok(_)) => {}
                _ => return Err("account store unavailable"),
            }
        }
        self.backends().await
    }
}
