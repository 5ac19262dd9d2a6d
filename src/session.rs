//! The I/O edge every protocol's session shares: running a pre-login
//! [`Frontend`] over the client connection (replies, STARTTLS, logins), and
//! the one log line and metric each session ends with.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tracing::info;

use crate::frontend::{Event, Frontend};
use crate::listener::{ListenerContext, upgrade_tls};
use crate::net::Stream;
use crate::ops::metrics as m;
use crate::ops::shutdown::goodbye;
use crate::protocol::Protocol;
use crate::relay::RelayStats;

/// A protocol's login step: credentials in, a session or a reply out.
pub trait LoginStep<F: Frontend> {
    /// What a successful login hands to the relay.
    type Session;
    /// Carries out one attempt. `frontend` provides the protocol's reply on
    /// refusal; `tls` says whether the credentials came over TLS.
    fn login(
        &mut self,
        frontend: &mut F,
        attempt: F::Login,
        tls: bool,
    ) -> impl Future<Output = LoginResult<Self::Session>> + Send;
}

/// How a login attempt ended, as the protocol's login step reports it.
pub enum LoginResult<T> {
    /// Logged in upstream: the session goes on to relay with `T`.
    LoggedIn(T),
    /// Refused or not possible now: send `reply`, and close if `close`.
    Refused { reply: Vec<u8>, close: bool },
}

/// Runs `frontend` over the client connection until a login succeeds
/// (`Some`), or the client leaves or is closed (`None`). `login` carries out
/// each attempt. Bad input is counted by the kind the front-end reports
/// ([`Event::BadInput`]); the front-end itself closes after
/// `limits.max_prelogin_errors` of it.
/// `stream` is `None` afterwards only if a STARTTLS handshake failed.
pub async fn prelogin<F, L>(
    stream: &mut Option<Stream>,
    frontend: &mut F,
    ctx: &ListenerContext,
    mut login: L,
) -> io::Result<Option<L::Session>>
where
    F: Frontend,
    L: LoginStep<F>,
{
    let greeting = frontend.greeting();
    let s = stream.as_mut().expect("stream present until handed off");
    s.write_all(&greeting).await?;
    s.flush().await?;
    let mut buf = [0u8; 4096];
    loop {
        while let Some(event) = frontend.next_event() {
            let s = stream.as_mut().expect("stream present until handed off");
            match event {
                Event::Reply(bytes) => s.write_all(&bytes).await?,
                Event::BadInput(kind) => {
                    let protocol = ctx.listener.protocol.as_str();
                    metrics::counter!(m::CLIENT_ERRORS_TOTAL, "protocol" => protocol, "kind" => kind.label())
                        .increment(1);
                }
                Event::StartTls(ok) => {
                    s.write_all(&ok).await?;
                    s.flush().await?;
                    let plain = stream.take().expect("stream present");
                    match upgrade_tls(plain, ctx).await {
                        Some(tls) => {
                            *stream = Some(tls);
                            frontend.tls_established();
                        }
                        None => return Ok(None),
                    }
                }
                Event::Close => {
                    s.flush().await?;
                    let _ = s.shutdown().await;
                    return Ok(None);
                }
                Event::Login(attempt) => {
                    s.flush().await?;
                    let tls = s.is_tls();
                    match login.login(frontend, attempt, tls).await {
                        LoginResult::LoggedIn(done) => return Ok(Some(done)),
                        LoginResult::Refused { reply, close } => {
                            let s = stream.as_mut().expect("stream present");
                            s.write_all(&reply).await?;
                            if close {
                                s.flush().await?;
                                let _ = s.shutdown().await;
                                return Ok(None);
                            }
                        }
                    }
                }
            }
        }
        let s = stream.as_mut().expect("stream present until handed off");
        s.flush().await?;
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        frontend.receive(&buf[..n]);
    }
}

/// What a protocol says when the pre-login phase is cut short.
pub struct Goodbyes<'a> {
    /// On drain (SIGTERM): e.g. `* BYE Server shutting down`.
    pub shutdown: &'a [u8],
    /// When the login deadline passes.
    pub timeout: &'a [u8],
}

/// The whole pre-login phase: [`prelogin`] under the login deadline
/// (`started` + `limits.prelogin_timeout`) and the drain signal, with the
/// protocol's goodbye on either. Returns the client stream and the session
/// when a login succeeded.
pub async fn prelogin_phase<F, L>(
    stream: Stream,
    frontend: &mut F,
    ctx: &ListenerContext,
    started: Instant,
    step: L,
    goodbyes: Goodbyes<'_>,
) -> Option<(Stream, L::Session)>
where
    F: Frontend,
    L: LoginStep<F>,
{
    let mut stream = Some(stream);
    let deadline = started + ctx.limits.prelogin_timeout();
    let run = prelogin(&mut stream, frontend, ctx, step);
    let Some(outcome) = ctx
        .shutdown
        .or_draining(tokio::time::timeout_at(deadline, run))
        .await
    else {
        goodbye(stream, goodbyes.shutdown).await;
        return None;
    };
    match outcome {
        Ok(Ok(Some(session))) => Some((stream?, session)),
        Ok(Ok(None)) | Ok(Err(_)) => None,
        Err(_) => {
            let protocol = ctx.listener.protocol.as_str();
            metrics::counter!(m::CLIENT_ERRORS_TOTAL, "protocol" => protocol, "kind" => "prelogin_timeout")
                .increment(1);
            goodbye(stream, goodbyes.timeout).await;
            None
        }
    }
}

/// Records a finished session: its duration histogram and one log line.
pub fn ended(
    protocol: Protocol,
    ctx: &ListenerContext,
    peer: SocketAddr,
    started: Instant,
    stats: RelayStats,
    result: &'static str,
) {
    let duration = started.elapsed();
    // By how it ended, so an upstream failing mid-session (`upstream_error`)
    // is counted, not only logged.
    metrics::histogram!(m::SESSION_DURATION_SECONDS, "protocol" => protocol.as_str(), "result" => result)
        .record(duration.as_secs_f64());
    info!(
        protocol = protocol.as_str(),
        listener = %ctx.listener.name,
        peer = %peer,
        duration_ms = duration.as_millis() as u64,
        bytes_in = stats.client_to_upstream,
        bytes_out = stats.upstream_to_client,
        result,
        "session ended"
    );
}
