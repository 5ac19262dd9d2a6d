//! The pre-login phase of any protocol: the front-end driven over the
//! client connection (replies, STARTTLS, bad input counted by kind), each
//! login attempt carried out, all under the login deadline and the drain.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::{ListenerContext, MailProtocol, Principal, login, upgrade_tls};
use crate::frontend::{Event, Frontend};
use crate::net::{ClientAddrs, Stream};
use crate::ops::metrics as m;
use crate::ops::shutdown::goodbye;

/// A successful login: the attempt, the logged-in upstream, and who it is.
pub(super) struct LoggedIn<P: MailProtocol> {
    pub attempt: P::Login,
    pub upstream: P::LoggedIn,
    pub principal: Principal,
}

/// The whole pre-login phase: [`prelogin`] under the login deadline
/// (`started` + `limits.prelogin_timeout`) and the drain signal, with the
/// protocol's goodbye on either. Returns the client stream and the login
/// when one succeeded.
pub(super) async fn phase<P: MailProtocol>(
    stream: Stream,
    frontend: &mut P::Frontend,
    ctx: &ListenerContext,
    client: ClientAddrs,
    started: Instant,
) -> Option<(Stream, LoggedIn<P>)> {
    let mut stream = Some(stream);
    let deadline = started + ctx.limits.prelogin_timeout();
    let run = prelogin::<P>(&mut stream, frontend, ctx, client, deadline);
    let Some(outcome) = ctx
        .shutdown
        .or_draining(tokio::time::timeout_at(deadline, run))
        .await
    else {
        goodbye(stream, P::GOODBYES.shutdown).await;
        return None;
    };
    match outcome {
        Ok(Ok(Some(logged_in))) => Some((stream?, logged_in)),
        Ok(Ok(None)) | Ok(Err(_)) => None,
        Err(_) => {
            let protocol = P::PROTOCOL.as_str();
            metrics::counter!(m::CLIENT_ERRORS_TOTAL, "protocol" => protocol, "kind" => "prelogin_timeout")
                .increment(1);
            goodbye(stream, P::GOODBYES.timeout).await;
            None
        }
    }
}

/// Runs `frontend` over the client connection until a login succeeds
/// (`Some`), or the client leaves or is closed (`None`). `deadline` is the
/// login deadline [`phase`] enforces, which a login's penalty delay must
/// not run into. Bad input is
/// counted by the kind the front-end reports (the front-end itself closes
/// after `limits.max_prelogin_errors`). `stream` is `None` afterwards only
/// if a STARTTLS handshake failed.
async fn prelogin<P: MailProtocol>(
    stream: &mut Option<Stream>,
    frontend: &mut P::Frontend,
    ctx: &ListenerContext,
    client: ClientAddrs,
    deadline: Instant,
) -> io::Result<Option<LoggedIn<P>>> {
    let protocol = P::PROTOCOL.as_str();
    let greeting = frontend.greeting();
    let s = stream.as_mut().expect("stream present until handed off");
    s.write_all(&greeting).await?;
    s.flush().await?;
    // What one read may add to what the front-end holds: its bound is
    // `max_buffered()` plus this.
    let mut buf = [0u8; 4096];
    loop {
        while let Some(event) = frontend.next_event() {
            let s = stream.as_mut().expect("stream present until handed off");
            match event {
                Event::Reply(bytes) => s.write_all(&bytes).await?,
                Event::BadInput(kind) => {
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
                    match login::log_in::<P>(ctx, frontend, &attempt, client, tls, deadline).await {
                        Ok((upstream, principal)) => {
                            return Ok(Some(LoggedIn {
                                attempt,
                                upstream,
                                principal,
                            }));
                        }
                        Err(refusal) => {
                            let (reply, close) = frontend.login_refused(&attempt, &refusal);
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
        debug_assert!(
            frontend.buffered() <= frontend.max_buffered(),
            "{} bytes held before login, over the front-end's bound",
            frontend.buffered()
        );
        let s = stream.as_mut().expect("stream present until handed off");
        s.flush().await?;
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        frontend.receive(&buf[..n]);
    }
}
