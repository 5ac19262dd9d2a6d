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

/// The PEC submission checks done on SMTP after login (RFC 6109 §3.1.1;
/// ../shared/PEC.md). Each can be switched off.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PecChecks {
    /// `MAIL FROM` must be the authenticated mailbox → `553 5.7.1`.
    pub sender: bool,
    /// The `From:` header must equal the envelope sender → `550 5.7.1`.
    pub from_header: bool,
    /// No `Bcc:` header → `550 5.7.1`.
    pub no_bcc: bool,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstreams {
    imap: Option<RawUpstream>,
    pop3: Option<RawUpstream>,
    smtp: Option<RawUpstream>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    address: String,
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
    path: PathBuf,
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
    /// Deadline for the TCP connect to the upstream. 10 s.
    pub upstream_connect_timeout_secs: u64,
    /// Deadline for the whole upstream login exchange (greeting, STARTTLS,
    /// ID, LOGIN). 30 s: Dovecot delays failed logins by up to 15 s.
    pub upstream_login_timeout_secs: u64,
    /// Concurrent client connections over all listeners; beyond, new
    /// connections wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Relay buffer per direction. 16 KiB: one TLS record.
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
            upstream_connect_timeout_secs: 10,
            upstream_login_timeout_secs: 30,
            max_connections: 10_000,
            relay_buffer_bytes: 16 * 1024,
            auth_cache_ttl_secs: 3600,
            shutdown_grace_secs: 30,
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
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
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
    pub store_path: Option<PathBuf>,
    pub limits: Limits,
    pub metrics_listen: Option<SocketAddr>,
    pub login_name_separator: char,
    pub greeting: String,
    /// The name the proxy gives itself in SMTP greetings and EHLO (`[smtp] hostname`).
    pub smtp_hostname: String,
    pub pec_checks: PecChecks,
}

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Name used in metrics labels and logs; defaults to `protocol-tls-port`.
    pub name: String,
    pub protocol: Protocol,
    pub address: SocketAddr,
    pub tls: TlsMode,
    pub allow_plaintext_login: bool,
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
    pub tls: TlsMode,
    /// CA bundle to verify the upstream; the system's roots when `None`.
    pub ca: Option<PathBuf>,
    /// Name checked against the upstream's certificate.
    pub server_name: String,
    pub login: UpstreamLogin,
    pub send_client_address: bool,
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
        Validator {
            base,
            errors: Vec::new(),
        }
        .validate(raw)
    }
}

struct Validator<'a> {
    base: &'a Path,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn error(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            key: key.into(),
            message: message.into(),
        });
    }

    fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        }
    }

    fn readable(&mut self, key: String, p: &Path) -> PathBuf {
        let full = self.path(p);
        if let Err(e) = std::fs::metadata(&full) {
            self.error(key, format!("cannot read {}: {e}", full.display()));
        }
        full
    }

    fn validate(mut self, raw: RawConfig) -> Result<Config, ConfigErrors> {
        let mut sep = raw.server.login_name_separator.chars();
        let login_name_separator = match (sep.next(), sep.next()) {
            (Some(c), None) if !c.is_alphanumeric() && c != '@' && !c.is_whitespace() && !c.is_control() => c,
            _ => {
                self.error(
                    "server.login_name_separator",
                    "must be one character, not a letter, digit, '@' or space",
                );
                '/'
            }
        };
        if raw.server.greeting.chars().any(|c| c.is_control()) || raw.server.greeting.len() > 200 {
            self.error("server.greeting", "must be printable text of at most 200 bytes");
        }

        let certificates = self.certificates(&raw.certificates);
        let listeners = self.listeners(&raw.listeners, !certificates.is_empty());
        let store_path = raw.store.map(|s| self.path(&s.path));

        let imap_upstream = raw
            .upstream
            .imap
            .map(|u| self.upstream("upstream.imap", u, store_path.is_some()));
        let pop3_upstream = raw
            .upstream
            .pop3
            .map(|u| self.upstream("upstream.pop3", u, store_path.is_some()));
        let smtp_upstream = raw
            .upstream
            .smtp
            .map(|u| self.upstream("upstream.smtp", u, store_path.is_some()));
        for (i, l) in listeners.iter().enumerate() {
            let missing = match l.protocol {
                Protocol::Imap => imap_upstream.is_none(),
                Protocol::Pop3 => pop3_upstream.is_none(),
                Protocol::Smtp => smtp_upstream.is_none(),
            };
            if missing {
                self.error(
                    format!("listener[{i}].protocol"),
                    format!("no [upstream.{}] is configured", l.protocol),
                );
            }
        }

        let limits = raw.limits;
        for (key, value) in [
            (
                "limits.tls_handshake_timeout_secs",
                limits.tls_handshake_timeout_secs,
            ),
            ("limits.prelogin_timeout_secs", limits.prelogin_timeout_secs),
            (
                "limits.upstream_connect_timeout_secs",
                limits.upstream_connect_timeout_secs,
            ),
            (
                "limits.upstream_login_timeout_secs",
                limits.upstream_login_timeout_secs,
            ),
            ("limits.max_login_failures", u64::from(limits.max_login_failures)),
            ("limits.max_connections", limits.max_connections as u64),
        ] {
            if value == 0 {
                self.error(key, "must be greater than 0");
            }
        }
        if limits.imap_idle_timeout_secs < 30 * 60 {
            self.error(
                "limits.imap_idle_timeout_secs",
                "must be at least 1800 (RFC 3501 §5.4: 30 minutes)",
            );
        }
        if !(1024..=1 << 20).contains(&limits.imap_max_line_bytes) {
            self.error("limits.imap_max_line_bytes", "must be between 1024 and 1048576");
        }
        if !(256..=1 << 20).contains(&limits.imap_max_literal_bytes) {
            self.error("limits.imap_max_literal_bytes", "must be between 256 and 1048576");
        }
        if !(255..=8192).contains(&limits.pop3_max_line_bytes) {
            // Below 255 would refuse lines RFC 2449 allows; well above, the
            // line is no longer a command anyone sends.
            self.error("limits.pop3_max_line_bytes", "must be between 255 and 8192");
        }
        if !(1024..=1 << 20).contains(&limits.relay_buffer_bytes) {
            self.error("limits.relay_buffer_bytes", "must be between 1024 and 1048576");
        }
        if limits.shutdown_grace_secs > 24 * 3600 {
            self.error("limits.shutdown_grace_secs", "must be at most 86400");
        }
        if !(512..=1 << 16).contains(&limits.smtp_max_command_line_bytes) {
            self.error(
                "limits.smtp_max_command_line_bytes",
                "must be between 512 (RFC 5321 §4.5.3.1.4) and 65536",
            );
        }
        if !(1000..=1 << 16).contains(&limits.smtp_max_text_line_bytes) {
            self.error(
                "limits.smtp_max_text_line_bytes",
                "must be between 1000 (RFC 5321 §4.5.3.1.6) and 65536",
            );
        }
        if !(1024..=1 << 16).contains(&limits.smtp_max_auth_line_bytes) {
            self.error(
                "limits.smtp_max_auth_line_bytes",
                "must be between 1024 and 65536",
            );
        }
        if !(4096..=1 << 20).contains(&limits.smtp_max_header_bytes) {
            self.error("limits.smtp_max_header_bytes", "must be between 4096 and 1048576");
        }
        let hostname = &raw.smtp.hostname;
        if hostname.is_empty()
            || hostname.len() > 255
            || !hostname
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            self.error(
                "smtp.hostname",
                "must be a domain name (letters, digits, '.', '-')",
            );
        }
        let checks = raw.pec_checks;
        if checks.max_message_bytes < 1024 {
            self.error("pec_checks.max_message_bytes", "must be at least 1024");
        }

        let metrics_listen = raw.metrics.listen.as_deref().and_then(|a| match a.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error("metrics.listen", format!("{a:?} is not an address:port"));
                None
            }
        });

        if self.errors.is_empty() {
            Ok(Config {
                listeners,
                certificates,
                imap_upstream,
                pop3_upstream,
                smtp_upstream,
                store_path,
                limits,
                metrics_listen,
                login_name_separator,
                greeting: raw.server.greeting,
                smtp_hostname: raw.smtp.hostname,
                pec_checks: checks,
            })
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    fn certificates(&mut self, raw: &[RawCertificate]) -> Vec<CertificateConfig> {
        let mut out = Vec::new();
        let defaults = raw.iter().filter(|c| c.default).count();
        if defaults > 1 {
            self.error("certificate", "at most one certificate may be the default");
        }
        for (i, c) in raw.iter().enumerate() {
            let cert = self.readable(format!("certificate[{i}].cert"), &c.cert);
            let key = self.readable(format!("certificate[{i}].key"), &c.key);
            if c.server_names.is_empty() && !(c.default || raw.len() == 1) {
                self.error(
                    format!("certificate[{i}].server_names"),
                    "list the SNI names, or mark it default = true",
                );
            }
            out.push(CertificateConfig {
                cert,
                key,
                server_names: c.server_names.iter().map(|n| n.to_ascii_lowercase()).collect(),
                // A single certificate is the default; otherwise the flagged one (or the first).
                default: c.default || (defaults == 0 && i == 0),
            });
        }
        out
    }

    fn listeners(&mut self, raw: &[RawListener], have_certificates: bool) -> Vec<ListenerConfig> {
        if raw.is_empty() {
            self.error("listener", "at least one [[listener]] is needed");
        }
        let mut names = HashSet::new();
        let mut out = Vec::new();
        for (i, l) in raw.iter().enumerate() {
            let address = match l.address.parse::<SocketAddr>() {
                Ok(a) => a,
                Err(_) => {
                    self.error(
                        format!("listener[{i}].address"),
                        format!("{:?} is not an ip:port address", l.address),
                    );
                    continue;
                }
            };
            if l.tls != TlsMode::None && !have_certificates {
                self.error(
                    format!("listener[{i}].tls"),
                    "TLS needs at least one [[certificate]]",
                );
            }
            if l.tls == TlsMode::Implicit && l.allow_plaintext_login {
                self.error(
                    format!("listener[{i}].allow_plaintext_login"),
                    "means nothing on an implicit-TLS listener",
                );
            }
            let tls_name = match l.tls {
                TlsMode::Implicit => "tls",
                TlsMode::Starttls => "starttls",
                TlsMode::None => "plain",
            };
            let name = l
                .name
                .clone()
                .unwrap_or_else(|| format!("{}-{tls_name}-{}", l.protocol, address.port()));
            // Names are metric labels: keep them short and tame.
            if name.is_empty()
                || name.len() > 40
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                self.error(
                    format!("listener[{i}].name"),
                    "use 1 to 40 characters from [A-Za-z0-9_-]",
                );
            }
            if !names.insert(name.clone()) {
                self.error(format!("listener[{i}].name"), format!("{name:?} is used twice"));
            }
            out.push(ListenerConfig {
                name,
                protocol: l.protocol,
                address,
                tls: l.tls,
                allow_plaintext_login: l.allow_plaintext_login,
            });
        }
        out
    }

    fn upstream(&mut self, key: &str, u: RawUpstream, have_store: bool) -> UpstreamConfig {
        let host = match u.address.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                host.trim_start_matches('[').trim_end_matches(']').to_owned()
            }
            _ => {
                self.error(
                    format!("{key}.address"),
                    format!("{:?} is not host:port", u.address),
                );
                String::new()
            }
        };
        let ca = u.ca.as_ref().map(|ca| self.readable(format!("{key}.ca"), ca));
        if u.tls == TlsMode::None && (u.ca.is_some() || u.server_name.is_some()) {
            self.error(
                format!("{key}.tls"),
                "is \"none\", so ca and server_name would be ignored",
            );
        }
        let master = |v: &mut Self, field: &str, value: &Option<String>| -> String {
            match value {
                Some(s) if !s.is_empty() && !s.chars().any(|c| c.is_control() || c == ' ') => s.clone(),
                _ => {
                    v.error(
                        format!("{key}.{field}"),
                        "is required by this login mode (no spaces or control characters)",
                    );
                    String::new()
                }
            }
        };
        let master_password = |v: &mut Self| -> Secret {
            let Some(p) = &u.master_password_file else {
                v.error(
                    format!("{key}.master_password_file"),
                    "is required by this login mode",
                );
                return Secret::default();
            };
            let full = v.path(p);
            match std::fs::read(&full) {
                Ok(mut bytes) => {
                    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        bytes.pop();
                    }
                    if bytes.is_empty() || bytes.iter().any(|&b| b < 0x20) {
                        v.error(
                            format!("{key}.master_password_file"),
                            "must hold one line with the password",
                        );
                    }
                    Secret::new(bytes)
                }
                Err(e) => {
                    v.error(
                        format!("{key}.master_password_file"),
                        format!("cannot read {}: {e}", full.display()),
                    );
                    Secret::default()
                }
            }
        };
        let login = match u.login {
            LoginMode::PassThrough => UpstreamLogin::PassThrough,
            LoginMode::MasterUser => UpstreamLogin::MasterUser {
                user: master(self, "master_user", &u.master_user),
                password: master_password(self),
                separator: u.master_user_separator.clone(),
            },
            LoginMode::SaslAuthzid => UpstreamLogin::SaslAuthzid {
                user: master(self, "master_user", &u.master_user),
                password: master_password(self),
            },
            LoginMode::Xclient => {
                if key != "upstream.smtp" {
                    self.error(format!("{key}.login"), "\"xclient\" is only for [upstream.smtp]");
                }
                UpstreamLogin::Xclient
            }
        };
        if login.mode() != LoginMode::PassThrough && !have_store {
            // The proxy may only log in as someone else after it has verified
            // the client's password itself, which needs the account store.
            self.error(
                format!("{key}.login"),
                "master-user, sasl-authzid and xclient need an account store ([store]) so the proxy verifies \
                 passwords itself; use \"pass-through\" without one",
            );
        }
        if login.mode() == LoginMode::PassThrough && have_store {
            // With a store, passwords are ours to check (app passwords and
            // collaborators do not exist upstream).
            self.error(
                format!("{key}.login"),
                "with an account store ([store]) the proxy logs in as the mailbox: use \"master-user\", \"sasl-authzid\" or (smtp) \"xclient\"",
            );
        }
        if u.master_user_separator.is_empty() || u.master_user_separator.chars().any(|c| c.is_whitespace()) {
            self.error(
                format!("{key}.master_user_separator"),
                "must be non-empty without spaces",
            );
        }
        UpstreamConfig {
            address: u.address,
            tls: u.tls,
            ca,
            server_name: u.server_name.unwrap_or(host),
            login,
            send_client_address: u.send_client_address,
        }
    }
}

#[cfg(test)]
mod tests;
