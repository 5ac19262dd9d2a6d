//! Operations, end to end: the real `pec-proxy` binary as a subprocess in
//! front of a real Dovecot, watched through its status listener and driven
//! with signals as systemd would (SIGHUP reload, SIGTERM drain, SIGINT).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::client::{Client, cert_der, peer_certificate, tls_config};
use crate::support::operator::Operator;
use crate::support::upstreams::Upstreams;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixDatagram};
use tokio::time::Instant;

/// Every wait in these tests is bounded by this.
const DEADLINE: Duration = Duration::from_secs(20);

/// This module's own Dovecot + Postfix, started on first use; the script's
/// watchdog stops it when the process exits.
fn upstreams() -> &'static Upstreams {
    static UPSTREAMS: OnceLock<Upstreams> = OnceLock::new();
    UPSTREAMS.get_or_init(Upstreams::start)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A user of its own for each test, so tests running in parallel against the
/// shared Dovecot do not see each other's mail.
fn user(name: &str) -> (String, String) {
    let address = format!("{name}@pec.example");
    let password = format!("{name}-Pw-0x5eCret");
    upstreams().add_user(&address, &password);
    (address, password)
}

/// Free loopback ports: bound to port 0 together, then released for the proxy.
fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<StdListener> = (0..N)
        .map(|_| StdListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// How the test configuration is written.
#[derive(Clone)]
struct Setup {
    imaps: u16,
    imap: u16,
    pop3s: u16,
    smtps: u16,
    metrics: u16,
    /// Certificate file stem under certs/ served by default.
    cert: &'static str,
    grace_secs: u64,
    /// Text appended verbatim (e.g. a broken key).
    extra: &'static str,
    /// How `[upstream.imap]` logs in, and the `[store]` if any.
    login: String,
    /// `[upstream.imap]` at this port instead of Dovecot's.
    imap_upstream: Option<u16>,
}

impl Setup {
    fn new(grace_secs: u64) -> Setup {
        let [imaps, imap, pop3s, smtps, metrics] = free_ports::<5>();
        Setup {
            imaps,
            imap,
            pop3s,
            smtps,
            metrics,
            cert: "server",
            grace_secs,
            extra: "",
            login: "login = \"pass-through\"\n".into(),
            imap_upstream: None,
        }
    }

    /// Logs in as the mailbox with Dovecot's master user, after checking the
    /// client against the account store `op` manages.
    fn with_store(mut self, op: &Operator) -> Setup {
        let up = upstreams();
        let master = op.secret_file("master-password", &up.master_password);
        self.login = format!(
            "login = \"master-user\"\nmaster_user = \"{}\"\nmaster_password_file = {master:?}\n\n{}",
            up.master_user,
            op.store_toml()
        );
        self
    }

    fn config(&self) -> String {
        let r = repo();
        let r = r.display();
        format!(
            r#"
[[certificate]]
cert = "{r}/certs/{cert}.pem"
key = "{r}/certs/{cert}-key.pem"
default = true

[[listener]]
name = "imaps"
protocol = "imap"
address = "127.0.0.1:{imaps}"
tls = "implicit"

[[listener]]
name = "imap"
protocol = "imap"
address = "127.0.0.1:{imap}"
tls = "starttls"

[[listener]]
name = "pop3s"
protocol = "pop3"
address = "127.0.0.1:{pop3s}"
tls = "implicit"

[[listener]]
name = "smtps"
protocol = "smtp"
address = "127.0.0.1:{smtps}"
tls = "implicit"

[upstream.pop3]
address = "127.0.0.1:{pop3_upstream}"
tls = "starttls"
ca = "{r}/certs/ca.pem"
server_name = "localhost"
{pop3_login}
[upstream.smtp]
address = "127.0.0.1:{smtp_upstream}"
tls = "starttls"
ca = "{r}/certs/ca.pem"
server_name = "localhost"
{smtp_login}

[upstream.imap]
address = "127.0.0.1:{upstream}"
tls = "starttls"
ca = "{r}/certs/ca.pem"
server_name = "localhost"
{login}
[limits]
shutdown_grace_secs = {grace}

[metrics]
listen = "127.0.0.1:{metrics}"
{extra}"#,
            cert = self.cert,
            imaps = self.imaps,
            imap = self.imap,
            pop3s = self.pop3s,
            smtps = self.smtps,
            pop3_upstream = upstreams().pop3_port,
            smtp_upstream = upstreams().submission_port,
            // The store section rides on `login`; POP3 logs in the same way.
            pop3_login = self.login.split("\n\n[store]").next().unwrap_or(""),
            smtp_login = if self.login.contains("[store]") {
                "login = \"xclient\""
            } else {
                "login = \"pass-through\""
            },
            upstream = self.imap_upstream.unwrap_or(upstreams().imap_port),
            grace = self.grace_secs,
            metrics = self.metrics,
            extra = self.extra,
            login = self.login,
        )
    }
}

/// The proxy as a child process, its config in a temp dir, stderr in a file.
struct ProxyProcess {
    child: Child,
    dir: tempfile::TempDir,
    setup: Setup,
}

impl ProxyProcess {
    async fn start(setup: Setup) -> ProxyProcess {
        Self::start_with(setup, &[]).await
    }

    async fn start_with(setup: Setup, env: &[(&str, &Path)]) -> ProxyProcess {
        upstreams();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("pec-proxy.toml");
        fs::write(&config, setup.config()).unwrap();
        let log = fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pec-proxy"));
        cmd.args(["--log-format", "json", "run", "--config"])
            .arg(&config)
            .env("PEC_PROXY_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start pec-proxy");
        let mut p = ProxyProcess { child, dir, setup };
        p.wait_until("ready", async |p| p.get("/readyz").await.0 == 200)
            .await;
        p
    }

    fn imaps(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.setup.imaps))
    }

    fn imap(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.setup.imap))
    }

    fn pop3s(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.setup.pop3s))
    }

    fn smtps(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.setup.smtps))
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    fn rewrite_config(&self, setup: &Setup) {
        fs::write(self.dir.path().join("pec-proxy.toml"), setup.config()).unwrap();
    }

    /// Writes `setup` as the configuration, sends SIGHUP, and waits until
    /// `pec_proxy_config_reloads_total{result}` reaches `count`.
    async fn reload(&mut self, setup: &Setup, result: &str, count: f64) {
        self.rewrite_config(setup);
        self.signal("HUP");
        let what = format!("{count} reloads with result {result}");
        self.wait_until(&what, async |p| {
            p.metrics()
                .await
                .sum("pec_proxy_config_reloads_total", &[("result", result)])
                == count
        })
        .await;
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// `(status, body)` of a GET on the status listener; `(0, "")` if it does not answer.
    async fn get(&self, path: &str) -> (u16, String) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.setup.metrics));
        let exchange = async {
            let mut tcp = TcpStream::connect(addr).await.ok()?;
            tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
                .await
                .ok()?;
            let mut out = String::new();
            tcp.read_to_string(&mut out).await.ok()?;
            let (head, body) = out.split_once("\r\n\r\n")?;
            let status = head.split(' ').nth(1)?.parse().ok()?;
            Some((status, body.to_owned()))
        };
        tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .ok()
            .flatten()
            .unwrap_or((0, String::new()))
    }

    async fn metrics(&self) -> Metrics {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200, "GET /metrics");
        Metrics::parse(&body)
    }

    /// Polls `condition` until it holds; fails the test after [`DEADLINE`]
    /// (or at once if the proxy exited).
    async fn wait_until(&mut self, what: &str, condition: impl AsyncFn(&ProxyProcess) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if condition(self).await {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("pec-proxy exited ({status}) waiting for {what}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "not {what} within {DEADLINE:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the process to exit, at most `limit`.
    async fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "pec-proxy still running after {limit:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A Prometheus text exposition, by series (`name{labels}` as written).
#[derive(Debug, Default)]
struct Metrics(BTreeMap<String, f64>);

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let mut out = BTreeMap::new();
        for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').expect("series value");
            out.insert(series.to_owned(), value.parse().expect("a number"));
        }
        Metrics(out)
    }

    /// Sum over the series of `name` whose labels include every `k="v"` given.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(series, _)| {
                let (n, rest) = series.split_once('{').unwrap_or((series, ""));
                n == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            })
            .map(|(_, v)| v)
            .sum()
    }
}

/// An IMAPS client past the greeting.
async fn imaps(p: &ProxyProcess) -> Client {
    let mut c = Client::tls(p.imaps()).await;
    let greeting = c.line().await;
    assert!(greeting.starts_with("* OK "), "{greeting}");
    c
}

async fn logged_in(p: &ProxyProcess, address: &str, password: &str) -> Client {
    let mut c = imaps(p).await;
    let ok = c
        .command("a", &format!("LOGIN \"{address}\" \"{password}\""))
        .await;
    assert!(ok.starts_with("a OK "), "{ok}");
    c
}

/// LOGOUT, read to the end, and close our side too, as a mail client does
/// (the relay is half-close aware: the session lasts until both sides close).
async fn logout(mut c: Client) {
    let ok = c.command("z", "LOGOUT").await;
    assert!(ok.starts_with("z OK"), "{ok}");
    c.expect_closed().await;
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn metrics_count_scripted_sessions_and_promtool_accepts_them() {
    let (address, password) = user("ops-metrics");
    let mut p = ProxyProcess::start(Setup::new(30)).await;
    let before = p.metrics().await;

    // Two good logins (IMAPS with LOGIN; STARTTLS with AUTHENTICATE PLAIN), one bad.
    let mut a = logged_in(&p, &address, &password).await;
    assert!(a.command("b", "SELECT INBOX").await.starts_with("b OK "));
    logout(a).await;

    let mut s = Client::plain(p.imap()).await;
    s.line().await;
    assert!(s.command("s", "STARTTLS").await.starts_with("s OK"));
    s.upgrade().await;
    let auth = s
        .command(
            "a",
            &format!("AUTHENTICATE PLAIN {}", b64(&format!("\0{address}\0{password}"))),
        )
        .await;
    assert!(auth.starts_with("a OK "), "{auth}");
    assert!(s.command("b", "NOOP").await.starts_with("b OK"));
    logout(s).await;

    let mut bad = imaps(&p).await;
    let no = bad
        .command("a", &format!("LOGIN \"{address}\" \"not-the-password\""))
        .await;
    assert!(no.starts_with("a NO [AUTHENTICATIONFAILED]"), "{no}");
    logout(bad).await;

    // Counters move as sessions end on the proxy's side: poll until they settle.
    let d = |after: &Metrics, name: &str, labels: &[(&str, &str)]| {
        after.sum(name, labels) - before.sum(name, labels)
    };
    let sessions = "pec_proxy_session_duration_seconds_count";
    p.wait_until("sessions counted", async |p| {
        let after = p.metrics().await;
        d(&after, sessions, &[("protocol", "imap")]) == 2.0
            && after.sum("pec_proxy_sessions_active", &[]) == 0.0
    })
    .await;
    let after = p.metrics().await;
    let conn = "pec_proxy_connections_total";
    assert_eq!(
        d(&after, conn, &[("protocol", "imap"), ("listener", "imaps")]),
        2.0
    );
    assert_eq!(
        d(&after, conn, &[("protocol", "imap"), ("listener", "imap")]),
        1.0
    );
    let logins = "pec_proxy_logins_total";
    assert_eq!(
        d(&after, logins, &[("result", "ok"), ("mechanism", "login")]),
        1.0
    );
    assert_eq!(
        d(&after, logins, &[("result", "ok"), ("mechanism", "plain")]),
        1.0
    );
    assert_eq!(d(&after, logins, &[("result", "ok")]), 2.0);
    assert_eq!(
        d(
            &after,
            logins,
            &[("result", "denied"), ("reason", "unknown_or_bad_password")]
        ),
        1.0
    );
    assert_eq!(
        d(
            &after,
            "pec_proxy_login_duration_seconds_count",
            &[("protocol", "imap")]
        ),
        3.0
    );
    let tls = "pec_proxy_tls_handshakes_total";
    assert_eq!(
        d(
            &after,
            tls,
            &[("protocol", "imap"), ("result", "ok"), ("version", "TLSv1.3")]
        ),
        3.0
    );
    let bytes = "pec_proxy_relay_bytes_total";
    assert!(d(&after, bytes, &[("direction", "client_to_upstream")]) > 0.0);
    assert!(d(&after, bytes, &[("direction", "upstream_to_client")]) > 0.0);
    assert_eq!(after.sum("pec_proxy_config_reloads_total", &[]), 0.0);
    assert_eq!(
        after.sum("pec_proxy_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );
    assert!(
        after.sum(
            "pec_proxy_upstream_connect_duration_seconds_count",
            &[("protocol", "imap")]
        ) >= 3.0
    );
    for name in [
        "pec_proxy_sessions_active",
        "pec_proxy_tls_handshake_duration_seconds_count",
        "pec_proxy_config_reloads_total",
    ] {
        assert!(after.0.keys().any(|k| k.starts_with(name)), "{name} is exported");
    }

    // The exposition is valid for Prometheus' own checker.
    let (_, text) = p.get("/metrics").await;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool missing: run scripts/install-test-deps.sh (Debian package prometheus)");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn reload_swaps_the_certificate_under_an_idle_session_and_rejects_a_broken_config() {
    let (address, password) = user("ops-reload");
    let mut setup = Setup::new(30);
    let mut p = ProxyProcess::start(setup.clone()).await;

    // A session in IDLE, with the certificate of the start.
    let mut idle = logged_in(&p, &address, &password).await;
    assert_eq!(peer_certificate(&idle), cert_der("server.pem"));
    assert!(idle.command("s", "SELECT INBOX").await.starts_with("s OK"));
    idle.send("i IDLE\r\n").await;
    assert!(idle.line().await.starts_with("+ "), "idling");

    // SIGHUP with alt.pem as the only (default) certificate.
    setup.cert = "alt";
    p.reload(&setup, "ok", 1.0).await;
    let mut fresh = Client::tls_with(p.imaps(), tls_config(), "mail.other.example")
        .await
        .expect("handshake with the new certificate");
    assert_eq!(
        peer_certificate(&fresh),
        cert_der("alt.pem"),
        "new connections see the new certificate"
    );
    assert!(fresh.line().await.starts_with("* OK "));
    let ok = fresh
        .command("a", &format!("LOGIN \"{address}\" \"{password}\""))
        .await;
    assert!(ok.starts_with("a OK "), "{ok}");

    // The idle session is still relayed: new mail reaches it.
    upstreams().deliver(&address, b"Subject: during reload\r\n\r\nhello\r\n");
    let exists = idle.line().await;
    assert!(
        exists.starts_with("* ") && exists.ends_with(" EXISTS"),
        "{exists}"
    );
    idle.send("DONE\r\n").await;
    assert!(idle.until_tagged("i").await.pop().unwrap().starts_with("i OK"));

    // A broken configuration is rejected, logged, counted; service goes on.
    setup.extra = "[limits]\nno_such_key = 1\n";
    p.reload(&setup, "error", 1.0).await;
    let log = p.log();
    assert!(log.contains("reload rejected"), "{log}");
    assert!(log.contains("limits"), "the error names the key:\n{log}");
    assert_eq!(p.get("/readyz").await.0, 200);

    // A certificate file gone at reload: rejected the same way, naming it.
    setup.extra = "";
    setup.cert = "no-such-certificate";
    p.reload(&setup, "error", 2.0).await;
    let log = p.log();
    assert!(
        log.contains("no-such-certificate.pem"),
        "the error names the file:\n{log}"
    );
    assert_eq!(p.get("/readyz").await.0, 200);

    assert!(idle.command("n", "NOOP").await.starts_with("n OK"));
    assert!(fresh.command("n", "NOOP").await.starts_with("n OK"));
    let mut after = Client::tls_with(p.imaps(), tls_config(), "mail.other.example")
        .await
        .expect("still serving with the last good certificate");
    assert_eq!(peer_certificate(&after), cert_der("alt.pem"));
    assert!(after.line().await.starts_with("* OK "));
    for c in [idle, fresh, after] {
        logout(c).await;
    }
}

#[tokio::test]
async fn readyz_asks_the_account_store_and_a_reload_reopens_it() {
    // A mailbox in each of two stores; Dovecot knows both.
    let (first, _) = user("ops-store-one");
    let (second, _) = user("ops-store-two");
    let (op1, op2) = (Operator::new(), Operator::new());
    op1.add_mailbox(&first, "first-Store-pw");
    op2.add_mailbox(&second, "second-Store-pw");

    let setup = Setup::new(30).with_store(&op1);
    let mut p = ProxyProcess::start(setup.clone()).await;
    assert_eq!(
        p.get("/readyz").await,
        (200, "ready\n".to_owned()),
        "the store answers"
    );
    let c = logged_in(&p, &first, "first-Store-pw").await;
    logout(c).await;

    // SIGHUP with the other store: its mailboxes log in, the first's no longer.
    p.reload(&setup.with_store(&op2), "ok", 1.0).await;
    logout(logged_in(&p, &second, "second-Store-pw").await).await;
    let mut c = imaps(&p).await;
    let no = c
        .command("a", &format!("LOGIN \"{first}\" \"first-Store-pw\""))
        .await;
    assert!(no.starts_with("a NO "), "{no}");
    logout(c).await;
    assert_eq!(p.get("/readyz").await.0, 200);
}

/// `/readyz` says when a protocol has no backend that answers, so a load
/// balancer's health check takes the node out, and says ready again once
/// one answers (a reload here; the answer is kept 5 s).
#[tokio::test]
async fn readyz_says_when_no_imap_backend_answers() {
    let setup = Setup::new(30);
    let mut p = ProxyProcess::start(setup.clone()).await;
    let refused = crate::support::fake_imap::FakeImap::refused_addr().await;
    let dead = Setup {
        imap_upstream: Some(refused.port()),
        ..setup.clone()
    };
    p.reload(&dead, "ok", 1.0).await;
    p.wait_until("not ready without an IMAP backend", async |p| {
        p.get("/readyz").await == (503, "not ready: no IMAP backend answers\n".to_owned())
    })
    .await;
    assert_eq!(p.get("/healthz").await.0, 200, "alive all the same");
    p.reload(&setup, "ok", 2.0).await;
    p.wait_until("ready with Dovecot again", async |p| {
        p.get("/readyz").await.0 == 200
    })
    .await;
}

#[tokio::test]
async fn sigterm_says_bye_before_login_and_lets_relays_finish_within_the_grace_period() {
    let (address, password) = user("ops-drain");
    let mut p = ProxyProcess::start(Setup::new(30)).await;

    let mut prelogin = Client::plain(p.imap()).await;
    assert!(prelogin.line().await.starts_with("* OK "));
    let mut pop3 = Client::tls(p.pop3s()).await;
    assert!(pop3.line().await.starts_with("+OK "));
    let mut smtp = Client::tls(p.smtps()).await;
    assert!(smtp.line().await.starts_with("220 "));
    let mut relaying = logged_in(&p, &address, &password).await;
    assert!(relaying.command("s", "SELECT INBOX").await.starts_with("s OK"));

    p.signal("TERM");
    let lines = prelogin.expect_closed().await;
    assert_eq!(lines, ["* BYE Server shutting down"], "pre-login goodbye");
    // Each protocol says goodbye in its own words (RFC 3206, RFC 3463).
    assert_eq!(
        pop3.expect_closed().await,
        ["-ERR [SYS/TEMP] Server shutting down"]
    );
    assert_eq!(smtp.expect_closed().await, ["421 4.3.2 Service shutting down"]);
    p.wait_until("not ready while draining", async |p| {
        let (status, body) = p.get("/readyz").await;
        status == 503 && body.contains("draining")
    })
    .await;
    assert_eq!(p.get("/healthz").await.0, 200, "alive while draining");
    p.wait_until("listeners closed", async |p| {
        TcpStream::connect(p.imaps()).await.is_err()
    })
    .await;

    // The relaying session carries on, then ends on its own.
    assert!(relaying.command("n", "NOOP").await.starts_with("n OK"));
    logout(relaying).await;
    let status = p.exit_within(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", p.log());
    let log = p.log();
    assert!(
        log.contains("\"result\":\"closed\""),
        "the session ended normally:\n{log}"
    );
}

#[tokio::test]
async fn sigterm_closes_relays_left_after_the_grace_period() {
    let (address, password) = user("ops-grace");
    let mut p = ProxyProcess::start(Setup::new(1)).await;
    let mut relaying = logged_in(&p, &address, &password).await;
    assert!(relaying.command("s", "SELECT INBOX").await.starts_with("s OK"));
    relaying.send("i IDLE\r\n").await;
    assert!(relaying.line().await.starts_with("+ "));

    let started = Instant::now();
    p.signal("TERM");
    relaying.expect_closed().await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed only after the grace period"
    );
    let status = p.exit_within(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", p.log());
    assert!(p.log().contains("\"result\":\"shutdown\""), "{}", p.log());
}

#[tokio::test]
async fn sigint_stops_at_once() {
    let (address, password) = user("ops-sigint");
    let mut p = ProxyProcess::start(Setup::new(60)).await;
    let mut relaying = logged_in(&p, &address, &password).await;
    let started = Instant::now();
    p.signal("INT");
    relaying.expect_closed().await;
    let status = p.exit_within(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", p.log());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not the 60 s grace period"
    );
}

#[tokio::test]
async fn systemd_is_told_ready_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut p = ProxyProcess::start_with(Setup::new(30), &[("NOTIFY_SOCKET", &socket_path)]).await;
    let next = async || {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(DEADLINE, socket.recv(&mut buf))
            .await
            .expect("a notification")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(next().await.starts_with("READY=1\n"));
    p.signal("HUP");
    let reloading = next().await;
    let mut fields = reloading.lines();
    assert_eq!(fields.next(), Some("RELOADING=1"));
    let usec = fields.next().and_then(|l| l.strip_prefix("MONOTONIC_USEC="));
    assert!(
        usec.is_some_and(|u| u.parse::<u64>().is_ok_and(|u| u > 0)),
        "{reloading}"
    );
    assert!(next().await.starts_with("READY=1\n"));
    p.signal("TERM");
    assert!(next().await.starts_with("STOPPING=1\n"));
    assert_eq!(p.exit_within(Duration::from_secs(10)).await.code(), Some(0));
}

#[tokio::test]
async fn no_password_or_auth_blob_reaches_the_logs_at_debug_level() {
    let (address, password) = user("ops-logs");
    let wrong = "Wr0ng-Pa55word-xyzzy";
    let mut p = ProxyProcess::start(Setup::new(30)).await;

    // LOGIN with a quoted string, then with literals.
    logout(logged_in(&p, &address, &password).await).await;
    let mut c = imaps(&p).await;
    c.send(format!("a LOGIN {{{}}}\r\n", address.len())).await;
    assert!(c.line().await.starts_with("+ "));
    c.send(format!("{address} {{{}+}}\r\n{password}\r\n", password.len()))
        .await;
    assert!(c.until_tagged("a").await.pop().unwrap().starts_with("a OK"));
    logout(c).await;
    // AUTHENTICATE PLAIN with an initial response, and LOGIN step by step.
    let plain_blob = b64(&format!("\0{address}\0{password}"));
    let mut c = imaps(&p).await;
    assert!(
        c.command("a", &format!("AUTHENTICATE PLAIN {plain_blob}"))
            .await
            .starts_with("a OK")
    );
    logout(c).await;
    let mut c = imaps(&p).await;
    c.send("a AUTHENTICATE LOGIN\r\n").await;
    assert!(c.line().await.starts_with("+ "));
    c.send(format!("{}\r\n", b64(&address))).await;
    assert!(c.line().await.starts_with("+ "));
    c.send(format!("{}\r\n", b64(wrong))).await;
    assert!(c.until_tagged("a").await.pop().unwrap().starts_with("a NO"));
    logout(c).await;

    p.signal("TERM");
    assert_eq!(p.exit_within(Duration::from_secs(10)).await.code(), Some(0));
    let log = p.log();
    assert!(log.contains("login decision"), "debug logs were written:\n{log}");
    assert!(log.contains("\"level\":\"DEBUG\""), "the debug level is on");
    for secret in [
        password.clone(),
        wrong.to_owned(),
        plain_blob,
        b64(&password),
        b64(wrong),
    ] {
        assert!(!log.contains(&secret), "{secret:?} appears in the logs:\n{log}");
    }
}
