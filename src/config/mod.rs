//! Configuration: one TOML file, parsed with serde (unknown keys are errors),
//! then validated into runtime types. Every error names the key it is about.
//!
//! Relative paths in the file are relative to the file's own directory.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::net::client_ip::Network;
use crate::protocol::Protocol;
use crate::secret::Secret;

/// Whether and how TLS is used on a client listener or an upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS 993, POP3S 995, SMTPS 465).
    Implicit,
    /// Plain text until the client (or we, upstream) issue STARTTLS/STLS.
    Starttls,
    /// No TLS at all.
    None,
}

/// How the proxy logs in to the upstream server as the mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoginMode {
    /// Send the client's own credentials; the upstream checks them.
    PassThrough,
    /// Dovecot master user: `mailbox*master` with the master password.
    MasterUser,
    /// SASL PLAIN with authzid = mailbox and authcid = the master user.
    SaslAuthzid,
    /// SMTP only: Postfix `XCLIENT ADDR=<client> LOGIN=<mailbox>`; the
    /// upstream must list the proxy in `smtpd_authorized_xclient_hosts`.
    Xclient,
}

/// A configuration error, naming the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// All errors found in one configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default, rename = "certificate")]
    certificates: Vec<RawCertificate>,
    #[serde(default, rename = "listener")]
    listeners: Vec<RawListener>,
    #[serde(default)]
    upstream: RawUpstreams,
    store: Option<RawStore>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    penalty: PenaltyConfig,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    smtp: RawSmtp,
    #[serde(default)]
    pec_checks: PecChecks,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSmtp {
    hostname: String,
}

impl Default for RawSmtp {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
        }
    }
}

/// The PEC submission checks done on SMTP after login (RFC 6109 §3.1.1:
/// the sender is the mailbox, no blind copies, size and rate limits as the
/// providers publish them). Each can be switched off.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PecChecks {
    /// `MAIL FROM` must be the authenticated mailbox → `553 5.7.1`.
    pub sender: bool,
    /// The `From:` header must equal the envelope sender → `550 5.7.1`.
    pub from_header: bool,
    /// No `Bcc:` header → `550 5.7.1`.
    pub no_bcc: bool,
    /// No blind copies: a `To:` header, and the `To:` and `Cc:` addresses
    /// exactly the accepted `RCPT TO` set (RFC 6109 §3.1.1); no
    /// `Resent-To:`/`Cc:`/`Bcc:` → `550 5.7.1`. More than 1000 recipients
    /// in a transaction → `452 4.5.3`.
    pub recipients: bool,
    /// Message size × recipients within `max_message_bytes` → `552 5.3.4`.
    pub size: bool,
    /// Advertised as `SIZE` and the bound of size × recipients. 30 MiB: the
    /// PEC rules' 30 MB limit (providers' guides).
    pub max_message_bytes: u64,
    /// Messages a mailbox may submit per minute, over all its sessions; 0 is
    /// off (the default). InfoCert caps at 6. → `450 4.7.1`.
    pub messages_per_minute: u32,
}

impl Default for PecChecks {
    fn default() -> Self {
        Self {
            sender: true,
            from_header: true,
            no_bcc: true,
            recipients: true,
            size: true,
            max_message_bytes: 30 * 1024 * 1024,
            messages_per_minute: 0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    login_name_separator: String,
    greeting: String,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            login_name_separator: "/".into(),
            greeting: "PEC mail proxy ready.".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertificate {
    cert: PathBuf,
    key: PathBuf,
    /// Host names (SNI) this certificate serves.
    #[serde(default)]
    server_names: Vec<String>,
    /// Served when the client sends no SNI or an unknown name.
    #[serde(default)]
    default: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    name: Option<String>,
    protocol: Protocol,
    address: String,
    tls: TlsMode,
    #[serde(default)]
    allow_plaintext_login: bool,
    #[serde(default)]
    proxy_protocol: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstreams {
    imap: Option<RawUpstream>,
    pop3: Option<RawUpstream>,
    smtp: Option<RawUpstream>,
}

/// One `host:port`, or a list tried in order.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawAddresses {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    address: RawAddresses,
    tls: TlsMode,
    ca: Option<PathBuf>,
    server_name: Option<String>,
    login: LoginMode,
    master_user: Option<String>,
    master_password_file: Option<PathBuf>,
    #[serde(default = "default_master_separator")]
    master_user_separator: String,
    #[serde(default = "yes")]
    send_client_address: bool,
    #[serde(default)]
    proxy_protocol: bool,
}

fn default_master_separator() -> String {
    "*".into()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    /// SQLite: the database file.
    path: Option<PathBuf>,
    /// PostgreSQL: `postgres://user@host[:port]/database`, without a password.
    url: Option<String>,
    password_file: Option<PathBuf>,
    #[serde(default)]
    sslmode: SslMode,
    ca: Option<PathBuf>,
    #[serde(default = "default_pg_connections")]
    max_connections: u32,
    #[serde(default = "default_pg_acquire_ms")]
    acquire_timeout_ms: u64,
    #[serde(default = "default_pg_statement_ms")]
    statement_timeout_ms: u64,
    /// The secret every node of a fleet shares to count together.
    fleet_key_file: Option<PathBuf>,
    /// The running proxy's control socket (`pec-proxy session`).
    control_socket: Option<PathBuf>,
}

fn default_pg_connections() -> u32 {
    16
}
fn default_pg_acquire_ms() -> u64 {
    2_000
}
fn default_pg_statement_ms() -> u64 {
    5_000
}

/// TLS to PostgreSQL, as libpq's `sslmode` (without `allow`, which falls
/// back to plain text when TLS fails). The default verifies the server's
/// certificate and name: a store on loopback says `disable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    #[default]
    VerifyFull,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    listen: Option<String>,
}

impl Default for RawMetrics {
    fn default() -> Self {
        Self {
            listen: Some("127.0.0.1:9925".into()),
        }
    }
}

/// Limits and timeouts. Each default says where it comes from.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// TLS handshake deadline. 10 s: a real client finishes in well under a
    /// second; a stalled one should not hold a socket (nginx uses 60 s, which
    /// is generous for a slowloris).
    pub tls_handshake_timeout_secs: u64,
    /// Total time a client may take from connect to successful login. 60 s,
    /// as nginx mail's `timeout`.
    pub prelogin_timeout_secs: u64,
    /// Relay idle timeout for IMAP. RFC 3501 §5.4: the autologout timer must
    /// be at least 30 minutes (IDLE clients re-issue every 29); 31 min gives slack.
    pub imap_idle_timeout_secs: u64,
    /// Longest IMAP command line before login, literals excluded. 8 KiB, the
    /// line length RFC 7162 §4 asks clients to stay within.
    pub imap_max_line_bytes: usize,
    /// Largest literal accepted before login, where literals only carry a
    /// user name or password. 8 KiB.
    pub imap_max_literal_bytes: u64,
    /// Longest POP3 command line, CRLF included, before and after login.
    /// 255 octets: RFC 2449 §4 ("MUST NOT exceed 255 octets").
    pub pop3_max_line_bytes: usize,
    /// Failed logins per connection before it is closed; nginx's `max_errors`
    /// idea. 3: enough for a mistyped password and a retry.
    pub max_login_failures: u32,
    /// Refused commands before login (invalid, unknown, too long, bad SASL
    /// data, refused before TLS) per connection before it is closed.
    /// 5: nginx's `max_errors` default, its fix for ALPACA (CVE-2021-3618):
    /// an HTTP request sent to a mail port by a browser is a run of invalid
    /// commands, cut off after five.
    pub max_prelogin_errors: u32,
    /// Deadline for the TCP connect to the upstream. 10 s.
    pub upstream_connect_timeout_secs: u64,
    /// Deadline for the whole upstream login exchange (greeting, STARTTLS,
    /// ID, LOGIN). 30 s: Dovecot delays failed logins by up to 15 s.
    pub upstream_login_timeout_secs: u64,
    /// Concurrent client connections over all listeners; beyond, new
    /// connections wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Concurrent connections from one client (IPv4 address, IPv6 /64);
    /// beyond, new ones are closed at once. 50: Thunderbird opens up to 5
    /// IMAP connections per account, and an office behind one NAT address
    /// has several people with a phone and a desktop each.
    pub max_connections_per_ip: usize,
    /// Concurrent connections from one client that have not logged in yet.
    /// 10: a mail client logs in within a second of connecting, so more than
    /// a few at once is a guessing or a slowloris attack.
    pub max_prelogin_per_ip: usize,
    /// Networks exempt from the per-client limits and the login penalty
    /// (a webmail server, monitoring). Empty by default: loopback is not
    /// trusted either, so a local relay is limited like anyone else.
    pub trusted_networks: Vec<Network>,
    /// The load balancers allowed to connect to a `proxy_protocol` listener
    /// and say who the client is. Empty by default: such a listener needs
    /// them named.
    pub trusted_proxies: Vec<Network>,
    /// How long a load balancer may take to send the PROXY header after
    /// connecting, in milliseconds. 3000: HAProxy sends it at once, with
    /// the connection; a connection that does not is not from a balancer.
    pub proxy_header_timeout_ms: u64,
    /// The most the relay reads from one side at once. 64 KiB: the read
    /// buffer belongs to the worker thread, not the session, so a large one
    /// costs nothing per idle session, and four TLS records per read and
    /// write cut the system calls per byte relayed (see benches/README.md).
    /// Only what a slow destination pushes back on is held per session.
    /// The guarded relay (POP3 with DELE refused, SMTP) reads at most
    /// [`crate::relay::GUARDED_BUFFER_BYTES`] at once, into the same buffer.
    pub relay_buffer_bytes: usize,
    /// How long a successful password verification is remembered (as a
    /// keyed MAC, never the password), so a client that logs in again
    /// does not pay the password hash again. 3600 s, Dovecot's
    /// `auth_cache_ttl`; 0 turns the cache off.
    pub auth_cache_ttl_secs: u64,
    /// On SIGTERM, how long relaying sessions may go on before they are
    /// closed. 30 s: a message download or submission in flight finishes;
    /// below systemd's default `TimeoutStopSec` of 90 s.
    pub shutdown_grace_secs: u64,
    /// The longest a logged-in session may last, in seconds; then it is
    /// told goodbye in its protocol and closed, and the client logs in
    /// again (its credential checked afresh). 0, the default: no limit
    /// (a session still ends when its access is revoked or it idles).
    pub max_session_secs: u64,
    /// Longest SMTP command line, CRLF included. 512: RFC 5321 §4.5.3.1.4.
    /// `MAIL` may be 500 octets longer for its `AUTH=` parameter (RFC 4954 §5).
    pub smtp_max_command_line_bytes: usize,
    /// Longest SMTP text line (message content), CRLF included. 1000: RFC
    /// 5321 §4.5.3.1.6 (RFC 5322 §2.1.1's 998 plus CRLF). Enforced on the
    /// header lines the PEC checks read.
    pub smtp_max_text_line_bytes: usize,
    /// Longest line of an SMTP AUTH exchange. 8 KiB: RFC 4954 §4 lets it
    /// exceed the command limit; our SASL fields are at most 3 × 1 KiB
    /// (4100 base64 characters).
    pub smtp_max_auth_line_bytes: usize,
    /// Largest header block held back for the PEC header checks before the
    /// message goes upstream. 64 KiB, Dovecot's default header limit order;
    /// the body is never held.
    pub smtp_max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tls_handshake_timeout_secs: 10,
            prelogin_timeout_secs: 60,
            imap_idle_timeout_secs: 31 * 60,
            imap_max_line_bytes: 8192,
            imap_max_literal_bytes: 8192,
            pop3_max_line_bytes: 255,
            max_login_failures: 3,
            max_prelogin_errors: 5,
            upstream_connect_timeout_secs: 10,
            upstream_login_timeout_secs: 30,
            max_connections: 10_000,
            max_connections_per_ip: 50,
            max_prelogin_per_ip: 10,
            trusted_networks: Vec::new(),
            trusted_proxies: Vec::new(),
            proxy_header_timeout_ms: 3000,
            relay_buffer_bytes: 64 * 1024,
            auth_cache_ttl_secs: 3600,
            shutdown_grace_secs: 30,
            max_session_secs: 0,
            smtp_max_command_line_bytes: 512,
            smtp_max_text_line_bytes: 1000,
            smtp_max_auth_line_bytes: 8192,
            smtp_max_header_bytes: 64 * 1024,
        }
    }
}

impl Limits {
    pub fn tls_handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.tls_handshake_timeout_secs)
    }
    pub fn prelogin_timeout(&self) -> Duration {
        Duration::from_secs(self.prelogin_timeout_secs)
    }
    pub fn idle_timeout(&self, protocol: Protocol) -> Duration {
        match protocol {
            Protocol::Imap => Duration::from_secs(self.imap_idle_timeout_secs),
            // RFC 1939 §3: at least 10 minutes; RFC 5321 §4.5.3.2.7: 5 minutes.
            Protocol::Pop3 => Duration::from_secs(10 * 60),
            Protocol::Smtp => Duration::from_secs(5 * 60),
        }
    }
    pub fn upstream_connect_timeout(&self) -> Duration {
        Duration::from_secs(self.upstream_connect_timeout_secs)
    }
    pub fn upstream_login_timeout(&self) -> Duration {
        Duration::from_secs(self.upstream_login_timeout_secs)
    }
    pub fn proxy_header_timeout(&self) -> Duration {
        Duration::from_millis(self.proxy_header_timeout_ms)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
    /// `None`: sessions have no maximum lifetime.
    pub fn max_session(&self) -> Option<Duration> {
        (self.max_session_secs > 0).then(|| Duration::from_secs(self.max_session_secs))
    }
}

// ---------------------------------------------------------------------------
// Runtime types.

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listeners: Vec<ListenerConfig>,
    pub certificates: Vec<CertificateConfig>,
    pub imap_upstream: Option<UpstreamConfig>,
    pub pop3_upstream: Option<UpstreamConfig>,
    pub smtp_upstream: Option<UpstreamConfig>,
    pub store: Option<StoreConfig>,
    pub limits: Limits,
    pub penalty: PenaltyConfig,
    pub metrics_listen: Option<SocketAddr>,
    pub login_name_separator: char,
    pub greeting: String,
    /// The name the proxy gives itself in SMTP greetings and EHLO (`[smtp] hostname`).
    pub smtp_hostname: String,
    pub pec_checks: PecChecks,
}

/// The account store (`[store]`).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// The control socket of `pec-proxy session`: `[store] control_socket`,
    /// by default beside a SQLite file (`accounts.db` →
    /// `accounts.sessions.sock`), else `/run/pec-proxy/sessions.sock`.
    pub control_socket: PathBuf,
    /// The fleet's shared counting key (`fleet_key_file`), PostgreSQL only.
    pub fleet_key: Option<Secret>,
}

impl StoreConfig {
    /// The store a command line names: a `postgres://` URL (password from
    /// `PGPASSWORD`, TLS as the URL's `sslmode` says, libpq's default
    /// `prefer` otherwise) or a SQLite file.
    pub fn from_argument(arg: &str) -> Self {
        let backend = if arg.starts_with("postgres://") || arg.starts_with("postgresql://") {
            let password = std::env::var("PGPASSWORD")
                .ok()
                .map(|p| Secret::new(p.into_bytes()));
            StoreBackend::Postgres(PostgresConfig {
                url: arg.to_owned(),
                password,
                sslmode: None,
                ca: None,
                max_connections: 4,
                acquire_timeout: Duration::from_secs(10),
                statement_timeout: Duration::from_secs(600),
            })
        } else {
            StoreBackend::Sqlite(PathBuf::from(arg))
        };
        Self {
            control_socket: backend.default_control_socket(),
            backend,
            fleet_key: None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum StoreBackend {
    Sqlite(PathBuf),
    Postgres(PostgresConfig),
}

impl StoreBackend {
    /// The control socket when `[store] control_socket` does not say:
    /// beside a SQLite file (`accounts.db` → `accounts.sessions.sock`),
    /// else `/run/pec-proxy/sessions.sock` (systemd's RuntimeDirectory).
    pub fn default_control_socket(&self) -> PathBuf {
        match self {
            Self::Sqlite(path) => path.with_extension("sessions.sock"),
            Self::Postgres(_) => PathBuf::from("/run/pec-proxy/sessions.sock"),
        }
    }
}

/// A PostgreSQL account store.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// Without a password.
    pub url: String,
    pub password: Option<Secret>,
    /// `None`: as the URL says (command-line use).
    pub sslmode: Option<SslMode>,
    pub ca: Option<PathBuf>,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Name used in metrics labels and logs; defaults to `protocol-tls-port`.
    pub name: String,
    pub protocol: Protocol,
    pub address: SocketAddr,
    pub tls: TlsMode,
    pub allow_plaintext_login: bool,
    /// Every connection starts with a PROXY protocol header (v1 or v2) from
    /// one of `limits.trusted_proxies`, whose client address is the
    /// client's for everything.
    pub proxy_protocol: bool,
}

#[derive(Debug, Clone)]
pub struct CertificateConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub server_names: Vec<String>,
    pub default: bool,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `host:port`, resolved at connect time.
    pub address: String,
    /// Tried in order when `address` fails (refuses, resets, sends garbage,
    /// says it is unavailable); see [`crate::upstream::with_failover`].
    pub fallback_addresses: Vec<String>,
    pub tls: TlsMode,
    /// CA bundle to verify the upstream; the system's roots when `None`.
    pub ca: Option<PathBuf>,
    /// Name checked against the upstream's certificate.
    pub server_name: String,
    pub login: UpstreamLogin,
    pub send_client_address: bool,
    /// Open each connection with a PROXY protocol v2 header naming the
    /// client (Dovecot `haproxy = yes` listeners, Postfix
    /// `smtpd_upstream_proxy_protocol = haproxy`).
    pub proxy_protocol: bool,
}

/// How to log in upstream, with the master credentials where needed.
#[derive(Debug, Clone)]
pub enum UpstreamLogin {
    PassThrough,
    MasterUser {
        user: String,
        password: Secret,
        separator: String,
    },
    SaslAuthzid {
        user: String,
        password: Secret,
    },
    /// SMTP: `XCLIENT LOGIN=<mailbox>`; the upstream trusts the proxy's address.
    Xclient,
}

impl UpstreamLogin {
    pub fn mode(&self) -> LoginMode {
        match self {
            UpstreamLogin::PassThrough => LoginMode::PassThrough,
            UpstreamLogin::MasterUser { .. } => LoginMode::MasterUser,
            UpstreamLogin::SaslAuthzid { .. } => LoginMode::SaslAuthzid,
            UpstreamLogin::Xclient => LoginMode::Xclient,
        }
    }
}

impl Config {
    /// The upstream for a protocol.
    pub fn upstream(&self, protocol: Protocol) -> Option<&UpstreamConfig> {
        match protocol {
            Protocol::Imap => self.imap_upstream.as_ref(),
            Protocol::Pop3 => self.pop3_upstream.as_ref(),
            Protocol::Smtp => self.smtp_upstream.as_ref(),
        }
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                key: String::new(),
                message: format!("cannot read {}: {e}", path.display()),
            }])
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base)
    }

    /// Parses and validates configuration text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
        let de = toml::Deserializer::new(text);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            // toml's message carries the line and a caret; keep its first meaningful line.
            let message = inner.message().to_owned();
            let at = inner
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].lines().count().max(1);
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            ConfigErrors(vec![ConfigError {
                key: if key == "." { String::new() } else { key },
                message: message + &at,
            }])
        })?;
        validate::validate(raw, base)
    }
}

mod validate;

#[cfg(test)]
mod tests;

/// The `[penalty]` table. Each default says where it comes from.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PenaltyConfig {
    /// Switch the whole mechanism off (not recommended on the internet).
    pub enabled: bool,
    /// Delay after the first failure: 2000 ms, Dovecot's `AUTH_PENALTY_INIT_SECS`.
    pub initial_delay_ms: u64,
    /// Longest delay: 15000 ms, Dovecot's `AUTH_PENALTY_MAX_SECS`.
    pub max_delay_ms: u64,
    /// Failures from one client (IPv4 address, IPv6 /64) before its logins
    /// are refused; 0 never refuses. 10: fail2ban's default `maxretry` is 5
    /// per service; a client here may be an office behind one NAT address.
    pub ip_refuse_after: u32,
    /// Failures for one login name before its logins are refused from
    /// anywhere; 0 only delays. 20, higher than per client: refusing a name
    /// also locks its owner out, which an attacker could want.
    pub mailbox_refuse_after: u32,
    /// How long a refusal lasts: 600 s, fail2ban's default `bantime`.
    pub refuse_secs: u64,
    /// A record is forgotten this long after its last failure: 3600 s,
    /// Dovecot anvil's `PENALTY_DEFAULT_EXPIRE_SECS`.
    pub forget_after_secs: u64,
    /// Records kept per dimension (clients, login names). 100000 records of
    /// about 120 bytes: 12 MB each at most.
    pub max_tracked: usize,
}

impl Default for PenaltyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            initial_delay_ms: 2000,
            max_delay_ms: 15_000,
            ip_refuse_after: 10,
            mailbox_refuse_after: 20,
            refuse_secs: 600,
            forget_after_secs: 3600,
            max_tracked: 100_000,
        }
    }
}
