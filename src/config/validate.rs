//! Validation of the file as written into the runtime [`Config`]: every
//! check, every error naming its key. Split from `config.rs`, which holds the
//! types.

use super::*;

/// Checks `raw` and builds the runtime configuration; relative paths are
/// resolved against `base`.
pub(super) fn validate(raw: RawConfig, base: &Path) -> Result<Config, ConfigErrors> {
    Validator {
        base,
        errors: Vec::new(),
    }
    .validate(raw)
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

    /// A secret kept in a file of one line (a trailing newline is not part
    /// of it). The error names the key and the file, never the content.
    fn secret_file(&mut self, key: String, p: &Path) -> Secret {
        let full = self.path(p);
        match std::fs::read(&full) {
            Ok(mut bytes) => {
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                if bytes.is_empty() || bytes.iter().any(|&b| b < 0x20) {
                    self.error(key, "must hold one line with the secret");
                }
                Secret::new(bytes)
            }
            Err(e) => {
                self.error(key, format!("cannot read {}: {e}", full.display()));
                Secret::default()
            }
        }
    }

    /// `[store]`: a SQLite file (`path`) or a PostgreSQL database (`url`).
    fn store(&mut self, raw: RawStore) -> Option<StoreConfig> {
        let fleet_key = raw.fleet_key_file.as_ref().map(|p| {
            let key = self.secret_file("store.fleet_key_file".into(), p);
            if !key.is_empty() && key.len() < 32 {
                self.error(
                    "store.fleet_key_file",
                    "must hold at least 32 characters (e.g. `openssl rand -hex 32`)",
                );
            }
            key
        });
        let backend = match (raw.path, raw.url) {
            (Some(path), None) => {
                for (set, k) in [
                    (raw.password_file.is_some(), "password_file"),
                    (raw.ca.is_some(), "ca"),
                    (fleet_key.is_some(), "fleet_key_file"),
                ] {
                    if set {
                        self.error(format!("store.{k}"), "is for a PostgreSQL store (url)");
                    }
                }
                StoreBackend::Sqlite(self.path(&path))
            }
            (None, Some(url)) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    self.error("store.url", "must be postgres://user@host[:port]/database");
                } else if url.parse::<sqlx::postgres::PgConnectOptions>().is_err() {
                    self.error("store.url", "is not a valid PostgreSQL URL");
                }
                // The URL is logged and shown; the password lives in its file.
                let authority = url
                    .split_once("://")
                    .map_or("", |(_, r)| r.split(['/', '?']).next().unwrap_or(""));
                if authority
                    .rsplit_once('@')
                    .is_some_and(|(user, _)| user.contains(':'))
                    || url.contains("password=")
                {
                    self.error(
                        "store.url",
                        "must not hold a password: put it in store.password_file",
                    );
                }
                if fleet_key.is_none() {
                    self.error(
                        "store.fleet_key_file",
                        "is required with url: every node of the fleet needs the same key to count failed logins and messages together",
                    );
                }
                let password = raw
                    .password_file
                    .as_ref()
                    .map(|p| self.secret_file("store.password_file".into(), p));
                let ca = raw.ca.as_ref().map(|p| self.readable("store.ca".into(), p));
                if raw.max_connections == 0 || raw.max_connections > 1000 {
                    self.error("store.max_connections", "must be 1 to 1000");
                }
                for (v, k) in [
                    (raw.acquire_timeout_ms, "acquire_timeout_ms"),
                    (raw.statement_timeout_ms, "statement_timeout_ms"),
                ] {
                    if !(100..=600_000).contains(&v) {
                        self.error(format!("store.{k}"), "must be 100 to 600000");
                    }
                }
                StoreBackend::Postgres(PostgresConfig {
                    url,
                    password,
                    sslmode: Some(raw.sslmode),
                    ca,
                    max_connections: raw.max_connections,
                    acquire_timeout: Duration::from_millis(raw.acquire_timeout_ms),
                    statement_timeout: Duration::from_millis(raw.statement_timeout_ms),
                })
            }
            _ => {
                self.error(
                    "store",
                    "needs either path (SQLite) or url (PostgreSQL), not both",
                );
                return None;
            }
        };
        let control_socket = match &raw.control_socket {
            Some(p) => self.path(p),
            None => backend.default_control_socket(),
        };
        Some(StoreConfig {
            backend,
            control_socket,
            fleet_key,
        })
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
        let store = raw.store.and_then(|s| self.store(s));

        let imap_upstream = raw
            .upstream
            .imap
            .map(|u| self.upstream("upstream.imap", u, store.is_some()));
        let pop3_upstream = raw
            .upstream
            .pop3
            .map(|u| self.upstream("upstream.pop3", u, store.is_some()));
        let smtp_upstream = raw
            .upstream
            .smtp
            .map(|u| self.upstream("upstream.smtp", u, store.is_some()));
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
            (
                "limits.max_prelogin_errors",
                u64::from(limits.max_prelogin_errors),
            ),
            ("limits.max_connections", limits.max_connections as u64),
            (
                "limits.max_connections_per_ip",
                limits.max_connections_per_ip as u64,
            ),
            ("limits.max_prelogin_per_ip", limits.max_prelogin_per_ip as u64),
            ("penalty.refuse_secs", raw.penalty.refuse_secs),
            ("penalty.forget_after_secs", raw.penalty.forget_after_secs),
        ] {
            if value == 0 {
                self.error(key, "must be greater than 0");
            }
        }
        if !(100..=60_000).contains(&limits.proxy_header_timeout_ms) {
            self.error("limits.proxy_header_timeout_ms", "must be between 100 and 60000");
        }
        for (i, l) in listeners.iter().enumerate() {
            if l.proxy_protocol && limits.trusted_proxies.is_empty() {
                self.error(
                    format!("listener[{i}].proxy_protocol"),
                    "needs limits.trusted_proxies: the load balancers allowed to say who the client is",
                );
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
        if limits.max_prelogin_per_ip > limits.max_connections_per_ip {
            self.error(
                "limits.max_prelogin_per_ip",
                "must not exceed limits.max_connections_per_ip",
            );
        }
        let penalty = raw.penalty;
        if penalty.max_delay_ms < penalty.initial_delay_ms {
            self.error(
                "penalty.max_delay_ms",
                "must be at least penalty.initial_delay_ms",
            );
        }
        if penalty.max_delay_ms > 60_000 {
            // The delay runs inside the pre-login timeout; longer only holds sockets.
            self.error("penalty.max_delay_ms", "must be at most 60000");
        }
        if penalty.forget_after_secs < penalty.refuse_secs {
            self.error(
                "penalty.forget_after_secs",
                "must be at least penalty.refuse_secs",
            );
        }
        if !(16..=10_000_000).contains(&penalty.max_tracked) {
            self.error("penalty.max_tracked", "must be between 16 and 10000000");
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
                store,
                limits,
                penalty,
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
                proxy_protocol: l.proxy_protocol,
            });
        }
        out
    }

    fn upstream(&mut self, key: &str, u: RawUpstream, have_store: bool) -> UpstreamConfig {
        let addresses = match &u.address {
            RawAddresses::One(a) => vec![a.clone()],
            RawAddresses::Many(list) => list.clone(),
        };
        if addresses.is_empty() || addresses.len() > 8 {
            self.error(format!("{key}.address"), "list 1 to 8 host:port addresses");
        }
        let mut host = String::new();
        for (i, address) in addresses.iter().enumerate() {
            match address.rsplit_once(':') {
                Some((h, port)) if !h.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                    if i == 0 {
                        host = h.trim_start_matches('[').trim_end_matches(']').to_owned();
                    }
                }
                _ => {
                    let at = match u.address {
                        RawAddresses::One(_) => format!("{key}.address"),
                        RawAddresses::Many(_) => format!("{key}.address[{i}]"),
                    };
                    self.error(at, format!("{address:?} is not host:port"));
                }
            }
        }
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
            v.secret_file(format!("{key}.master_password_file"), p)
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
        let mut addresses = addresses.into_iter();
        UpstreamConfig {
            address: addresses.next().unwrap_or_default(),
            fallback_addresses: addresses.collect(),
            tls: u.tls,
            ca,
            server_name: u.server_name.unwrap_or(host),
            login,
            send_client_address: u.send_client_address,
            proxy_protocol: u.proxy_protocol,
        }
    }
}
