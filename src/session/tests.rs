//! The generic session driven with a scripted protocol over loopback
//! sockets: a line-based front-end, and an upstream that is a plain TCP
//! server in the test.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::access::LoginRefusal;
use crate::access::client_limits::Admission;
use crate::access::gate::Gate;
use crate::config::{Limits, ListenerConfig, PecChecks, TlsMode, UpstreamConfig, UpstreamLogin};
use crate::frontend::{BadInput, Event, Frontend};
use crate::secret::Secret;
use crate::upstream::Connection;

/// A protocol of lines: `login USER PASSWORD`, `bad`, `quit`.
struct Scripted;

/// The scripted front-end: every line a command.
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
    closed: bool,
    pending: std::collections::VecDeque<Event<Attempt>>,
}

struct Attempt(Credentials);

impl LoginAttempt for Attempt {
    fn credentials(&self) -> &Credentials {
        &self.0
    }
    fn mechanism(&self) -> &'static str {
        "login"
    }
}

/// What the refused-input reply says: worded as no real protocol words it,
/// so a count can only come from the [`BadInput`] value.
const BAD_INPUT_WORDS: &[u8] = b"zzz this reply matches no pattern\r\n";

impl Frontend for Lines {
    type Login = Attempt;
    fn greeting(&self) -> Vec<u8> {
        b"hello\r\n".to_vec()
    }
    fn receive(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }
    fn buffered(&self) -> usize {
        self.buf.len()
    }
    fn max_buffered(&self) -> usize {
        // Lines of a few words, in these tests.
        4096
    }
    fn next_event(&mut self) -> Option<Event<Attempt>> {
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        if self.closed {
            return None;
        }
        let end = self.buf.iter().position(|&b| b == b'\n')?;
        let line: Vec<u8> = self.buf.drain(..=end).collect();
        let line = String::from_utf8_lossy(&line).trim().to_owned();
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["login", user, password] => Some(Event::Login(Attempt(Credentials {
                authzid: None,
                authcid: user.as_bytes().to_vec(),
                password: Secret::new(password.as_bytes().to_vec()),
            }))),
            ["quit"] => {
                self.closed = true;
                self.pending.push_back(Event::Close);
                Some(Event::Reply(b"bye\r\n".to_vec()))
            }
            _ => {
                self.pending.push_back(Event::BadInput(BadInput::Syntax));
                Some(Event::Reply(BAD_INPUT_WORDS.to_vec()))
            }
        }
    }
    fn tls_established(&mut self) {}
    fn login_refused(&mut self, _attempt: &Attempt, refusal: &LoginRefusal) -> (Vec<u8>, bool) {
        (format!("refused {refusal:?}\r\n").into_bytes(), false)
    }
}

impl MailProtocol for Scripted {
    const PROTOCOL: Protocol = Protocol::Imap;
    const GOODBYES: Goodbyes = Goodbyes {
        shutdown: b"shutting down\r\n",
        timeout: b"too slow\r\n",
        revoked: b"revoked\r\n",
        lifetime: b"too long\r\n",
    };
    type Login = Attempt;
    type Frontend = Lines;
    type LoggedIn = Connection;
    type Guard = crate::imap::NoGuard;

    fn frontend(_ctx: &ListenerContext, _tls: bool) -> Lines {
        Lines::default()
    }

    /// The password says what the upstream does: `ok` logs in, `wrong` is
    /// refused, `busy` is unavailable, `locked` is in use, `gone` is a
    /// connection that closed.
    async fn log_in_upstream<'a>(
        one: Upstream,
        identity: Identity<'a>,
        _client: ClientAddrs,
        _frontend: &'a Lines,
        _ctx: &'a ListenerContext,
    ) -> Result<Connection, UpstreamError> {
        let Identity::Client { password, .. } = identity else {
            panic!("pass-through only here");
        };
        match password.expose() {
            b"ok" => one.connect("192.0.2.1:1".parse().unwrap()).await,
            b"wrong" => Err(UpstreamError::AuthFailed),
            b"busy" => Err(UpstreamError::Unavailable("later".into())),
            b"locked" => Err(UpstreamError::MailboxInUse("held".into())),
            _ => Err(UpstreamError::Closed),
        }
    }

    fn handoff(
        _ctx: &ListenerContext,
        frontend: Lines,
        _attempt: Attempt,
        conn: Connection,
        principal: Principal,
        _tls: bool,
    ) -> Handoff<Self::Guard> {
        Handoff {
            to_client: format!("welcome {}\r\n", principal.mailbox).into_bytes(),
            to_upstream: frontend.buf,
            upstream: conn.stream,
            guard: None,
        }
    }
}

fn context(upstream: &str) -> ListenerContext {
    let config = UpstreamConfig {
        address: upstream.to_owned(),
        fallback_addresses: Vec::new(),
        tls: TlsMode::None,
        ca: None,
        server_name: "localhost".into(),
        login: UpstreamLogin::PassThrough,
        send_client_address: false,
        proxy_protocol: false,
    };
    ListenerContext {
        listener: ListenerConfig {
            name: "scripted".into(),
            protocol: Protocol::Imap,
            address: "127.0.0.1:0".parse().unwrap(),
            tls: TlsMode::None,
            allow_plaintext_login: true,
            proxy_protocol: false,
        },
        acceptor: None,
        limits: Limits::default(),
        upstream: Upstream::new(config, None, Duration::from_secs(5)),
        upstream_label: upstream.to_owned(),
        greeting: String::new(),
        gate: Gate::pass_through(),
        login_name_separator: '/',
        shutdown: crate::ops::shutdown::Shutdown::new(),
        smtp_hostname: "proxy.test".into(),
        pec_checks: PecChecks::default(),
        send_rate: Arc::new(RateLimiter::new(0, 1)),
        sessions: crate::session::registry::Sessions::new(),
    }
}

/// A running session: the client's end and the upstream server's listener.
struct Harness {
    client: BufReader<TcpStream>,
    upstream: TcpListener,
    ctx: Arc<ListenerContext>,
    session: tokio::task::JoinHandle<()>,
}

async fn start() -> Harness {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ctx = Arc::new(context(&upstream.local_addr().unwrap().to_string()));
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(front.local_addr().unwrap()).await.unwrap();
    let (tcp, peer) = front.accept().await.unwrap();
    let session = tokio::spawn(serve::<Scripted>(tcp, peer, ctx.clone(), Admission::unlimited()));
    let mut h = Harness {
        client: BufReader::new(client),
        upstream,
        ctx,
        session,
    };
    assert_eq!(h.line().await, "hello\r\n");
    h
}

impl Harness {
    async fn line(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.client.read_line(&mut line))
            .await
            .expect("a line in time")
            .unwrap();
        line
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.client.get_mut().write_all(bytes).await.unwrap();
    }
}

fn recorder() -> PrometheusRecorder {
    PrometheusBuilder::new().build_recorder()
}

/// The value of one series in a Prometheus text rendering, 0 when absent.
fn value(rendered: &str, series: &str) -> f64 {
    rendered
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_login_hands_over_to_the_relay_with_pipelined_bytes_first() {
    let recorder = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let mut h = start().await;
    // The command behind the login is pipelined: it goes upstream first.
    h.send(b"login Alice@Pec.Example ok\r\nNEXT\r\n").await;
    let (mut server, _) = h.upstream.accept().await.unwrap();
    assert_eq!(h.line().await, "welcome alice@pec.example\r\n");
    let mut got = [0u8; 6];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"NEXT\r\n");
    // Then bytes flow both ways, and a close ends the session.
    server.write_all(b"from upstream\r\n").await.unwrap();
    assert_eq!(h.line().await, "from upstream\r\n");
    h.send(b"from client\r\n").await;
    let mut got = [0u8; 13];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"from client\r\n");
    drop(server);
    h.client.get_mut().shutdown().await.unwrap();
    h.session.await.unwrap();
    let rendered = recorder.handle().render();
    assert_eq!(
        value(
            &rendered,
            r#"pec_proxy_logins_total{protocol="imap",result="ok",reason="none",mechanism="login",collaborator="false"}"#
        ),
        1.0,
        "{rendered}"
    );
    assert_eq!(
        value(
            &rendered,
            r#"pec_proxy_sessions_active{protocol="imap",stage="relay"}"#
        ),
        0.0
    );
}

/// Renaming an error reply's text cannot change a metric: the count comes
/// from the front-end's typed value, whatever the reply says.
#[tokio::test]
async fn bad_input_is_counted_by_the_kind_the_front_end_reports_not_by_its_words() {
    let recorder = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let mut h = start().await;
    h.send(b"nonsense\r\nmore nonsense\r\nquit\r\n").await;
    assert_eq!(h.line().await.as_bytes(), BAD_INPUT_WORDS);
    assert_eq!(h.line().await.as_bytes(), BAD_INPUT_WORDS);
    assert_eq!(h.line().await, "bye\r\n");
    h.session.await.unwrap();
    let rendered = recorder.handle().render();
    assert_eq!(
        value(
            &rendered,
            r#"pec_proxy_client_errors_total{protocol="imap",kind="syntax"}"#
        ),
        2.0,
        "{rendered}"
    );
}

/// The security rules, once for every protocol: a pass-through refusal is
/// the client's (a failed attempt); the others are not its fault.
#[tokio::test]
async fn upstream_failures_reach_the_front_end_classified_by_source() {
    let recorder = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let mut h = start().await;
    for (password, refusal) in [
        ("wrong", "Denied(UnknownOrBadPassword)"),
        ("busy", "UpstreamUnavailable { no_answer: false }"),
        ("gone", "UpstreamUnavailable { no_answer: true }"),
        ("locked", "MailboxInUse(\"held\")"),
    ] {
        h.send(format!("login alice@pec.example {password}\r\n").as_bytes())
            .await;
        assert_eq!(h.line().await, format!("refused {refusal}\r\n"), "{password}");
    }
    h.send(b"quit\r\n").await;
    assert_eq!(h.line().await, "bye\r\n");
    h.session.await.unwrap();
    let rendered = recorder.handle().render();
    let logins = |result: &str, reason: &str| {
        value(
            &rendered,
            &format!(
                r#"pec_proxy_logins_total{{protocol="imap",result="{result}",reason="{reason}",mechanism="login",collaborator="false"}}"#
            ),
        )
    };
    assert_eq!(logins("denied", "unknown_or_bad_password"), 1.0, "{rendered}");
    assert_eq!(logins("unavailable", "upstream_unavailable"), 2.0, "{rendered}");
    assert_eq!(logins("unavailable", "mailbox_in_use"), 1.0, "{rendered}");
}

#[tokio::test]
async fn a_drain_before_login_says_the_protocols_goodbye() {
    let mut h = start().await;
    h.ctx.shutdown.start_draining();
    assert_eq!(h.line().await, "shutting down\r\n");
    h.session.await.unwrap();
    let mut rest = Vec::new();
    h.client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

impl Harness {
    /// Logs in (pass-through) and waits until the relaying session is
    /// registered; returns the upstream server's end.
    async fn logged_in(&mut self) -> TcpStream {
        self.send(b"login alice@pec.example ok\r\n").await;
        let (server, _) = self.upstream.accept().await.unwrap();
        assert_eq!(self.line().await, "welcome alice@pec.example\r\n");
        while self.ctx.sessions.list(None).is_empty() {
            tokio::task::yield_now().await;
        }
        server
    }
}

/// A session the proxy ends gets its protocol's goodbye between lines,
/// and is counted by reason.
#[tokio::test]
async fn an_ended_session_is_told_goodbye_after_a_whole_line() {
    let recorder = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let mut h = start().await;
    let mut server = h.logged_in().await;
    server.write_all(b"a whole line\r\n").await.unwrap();
    assert_eq!(h.line().await, "a whole line\r\n");
    assert_eq!(h.ctx.sessions.end_matching("alice@pec.example"), 1);
    assert_eq!(h.line().await, "revoked\r\n");
    assert_eq!(h.line().await, "", "then closed");
    h.session.await.unwrap();
    assert!(h.ctx.sessions.list(None).is_empty(), "unregistered");
    let rendered = recorder.handle().render();
    assert_eq!(
        value(
            &rendered,
            r#"pec_proxy_sessions_revoked_total{protocol="imap",reason="operator"}"#
        ),
        1.0,
        "{rendered}"
    );
}

/// In the middle of a line (a response being relayed) a goodbye would be
/// read as part of it: the session is closed without one.
#[tokio::test]
async fn an_ended_session_mid_line_is_closed_without_a_goodbye() {
    let mut h = start().await;
    let mut server = h.logged_in().await;
    server.write_all(b"half a li").await.unwrap();
    let mut got = [0u8; 9];
    h.client.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"half a li");
    assert_eq!(h.ctx.sessions.end_matching("alice@pec.example"), 1);
    h.session.await.unwrap();
    let mut rest = Vec::new();
    h.client.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"", "nothing after the half line");
}
