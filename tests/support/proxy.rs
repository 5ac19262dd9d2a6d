//! Runs pec-proxy in-process on 127.0.0.1:0 listeners, as a test fixture.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use pec_proxy::testing::config::Config;
use pec_proxy::testing::listener::Server;
use tokio::sync::oneshot;

pub struct Proxy {
    addrs: HashMap<String, SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
}

impl Proxy {
    /// Starts a proxy from configuration text (relative paths are relative to the repo).
    pub async fn start(config: &str) -> Proxy {
        let config = Config::parse(config, &repo()).unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let server = Server::bind(&config).await.expect("bind");
        let addrs = server.local_addrs().into_iter().collect();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Proxy {
            addrs,
            stop: Some(stop),
        }
    }

    /// The bound address of a listener.
    pub fn addr(&self, listener: &str) -> SocketAddr {
        *self
            .addrs
            .get(listener)
            .unwrap_or_else(|| panic!("no listener {listener}"))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Certificates and the two IMAP listeners every IMAP test uses:
/// `imaps` (implicit TLS) and `imap` (STARTTLS).
pub fn imap_listeners() -> String {
    r#"
[[certificate]]
cert = "certs/server.pem"
key = "certs/server-key.pem"
server_names = ["localhost", "mail.pec.example"]
default = true

[[certificate]]
cert = "certs/alt.pem"
key = "certs/alt-key.pem"
server_names = ["mail.other.example"]

[[listener]]
name = "imaps"
protocol = "imap"
address = "127.0.0.1:0"
tls = "implicit"

[[listener]]
name = "imap"
protocol = "imap"
address = "127.0.0.1:0"
tls = "starttls"

[metrics]
"#
    .to_owned()
}

/// Certificates and the two POP3 listeners every POP3 test uses: `pop3s`
/// (implicit TLS, port 995's role) and `pop3` (STLS, port 110's role).
pub fn pop3_listeners() -> String {
    r#"
[[certificate]]
cert = "certs/server.pem"
key = "certs/server-key.pem"
server_names = ["localhost", "mail.pec.example"]
default = true

[[listener]]
name = "pop3s"
protocol = "pop3"
address = "127.0.0.1:0"
tls = "implicit"

[[listener]]
name = "pop3"
protocol = "pop3"
address = "127.0.0.1:0"
tls = "starttls"

[metrics]
"#
    .to_owned()
}

/// The configuration of a proxy in front of the real Dovecot and Postfix of
/// `up`, with IMAPS, POP3S and SMTPS listeners and the account store of
/// `op`: it logs in to Dovecot as its master user and to Postfix with
/// XCLIENT. `extra` (whole tables: `[limits]`, `[penalty]`...) is added at
/// the end.
pub fn store_config(up: &super::upstreams::Upstreams, op: &super::operator::Operator, extra: &str) -> String {
    let master = op.secret_file("master-password", &up.master_password);
    let upstream = |protocol: &str, port: u16, login: &str| {
        format!(
            "[upstream.{protocol}]\naddress = \"127.0.0.1:{port}\"\ntls = \"starttls\"\nca = \"certs/ca.pem\"\n\
             server_name = \"localhost\"\nlogin = \"{login}\"\n"
        )
    };
    let master_creds = format!(
        "master_user = \"{}\"\nmaster_password_file = {master:?}\n",
        up.master_user
    );
    format!(
        r#"
[[certificate]]
cert = "certs/server.pem"
key = "certs/server-key.pem"
server_names = ["localhost"]
default = true

[[listener]]
name = "imaps"
protocol = "imap"
address = "127.0.0.1:0"
tls = "implicit"

[[listener]]
name = "pop3s"
protocol = "pop3"
address = "127.0.0.1:0"
tls = "implicit"

[[listener]]
name = "smtps"
protocol = "smtp"
address = "127.0.0.1:0"
tls = "implicit"

[metrics]

[smtp]
hostname = "proxy.pec.example"

{}
{}{master_creds}
{}{master_creds}
{}
{extra}
"#,
        op.store_toml(),
        upstream("imap", up.imap_port, "master-user"),
        upstream("pop3", up.pop3_port, "master-user"),
        upstream("smtp", up.submission_port, "xclient"),
    )
}
