use super::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(text, &repo().join("config"))
}

fn errors(text: &str) -> Vec<String> {
    parse(text).unwrap_err().0.iter().map(|e| e.to_string()).collect()
}

const MINIMAL: &str = r#"
[[certificate]]
cert = "../certs/server.pem"
key = "../certs/server-key.pem"

[[listener]]
protocol = "imap"
address = "127.0.0.1:9993"
tls = "implicit"

[upstream.imap]
address = "127.0.0.1:143"
tls = "none"
login = "pass-through"
"#;

#[test]
fn the_documented_example_is_valid() {
    let config = Config::load(&repo().join("config/pec-proxy.toml")).unwrap();
    assert_eq!(config.listeners.len(), 2);
    assert_eq!(config.listeners[0].name, "imaps");
    assert_eq!(config.certificates.iter().filter(|c| c.default).count(), 1);
    assert_eq!(config.imap_upstream.as_ref().unwrap().server_name, "localhost");
    assert_eq!(config.limits, Limits::default());
    assert_eq!(config.penalty, PenaltyConfig::default());
}

#[test]
fn minimal_config_gets_defaults() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.listeners[0].name, "imap-tls-9993");
    assert!(config.certificates[0].default);
    assert_eq!(config.login_name_separator, '/');
    assert_eq!(config.metrics_listen, Some("127.0.0.1:9925".parse().unwrap()));
    assert_eq!(config.imap_upstream.unwrap().server_name, "127.0.0.1");
}

#[test]
fn unknown_keys_and_bad_values_name_the_key() {
    let e = errors(&MINIMAL.replace("tls = \"implicit\"", "tls = \"implicit\"\nport = 3"));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("listener[0].port: unknown field `port`"),
        "{e:?}"
    );

    let e = errors(&MINIMAL.replace("tls = \"implicit\"", "tls = \"maybe\""));
    assert!(
        e[0].starts_with("listener[0].tls: unknown variant `maybe`"),
        "{e:?}"
    );

    let e = errors(&format!(
        "{MINIMAL}\n[limits]\nprelogin_timeout_secs = \"soon\"\n"
    ));
    assert!(
        e[0].starts_with("limits.prelogin_timeout_secs: invalid type"),
        "{e:?}"
    );
}

#[test]
fn validation_collects_every_error() {
    let text = MINIMAL
        .replace("127.0.0.1:9993", "localhost:993")
        .replace("../certs/server-key.pem", "../certs/missing.pem")
        .replace("login = \"pass-through\"", "login = \"master-user\"")
        + "\n[limits]\nimap_idle_timeout_secs = 60\n";
    let e = errors(&text);
    assert!(
        e.iter()
            .any(|m| m.starts_with("listener[0].address: \"localhost:993\" is not an ip:port")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|m| m.starts_with("certificate[0].key: cannot read")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("upstream.imap.master_user: is required")),
        "{e:?}"
    );
    assert!(e.iter().any(|m| {
        m.starts_with("upstream.imap.login: master-user, sasl-authzid and xclient need an account store")
    }));
    assert!(
        e.iter()
            .any(|m| m.starts_with("limits.imap_idle_timeout_secs: must be at least 1800")),
        "{e:?}"
    );
}

#[test]
fn listeners_need_an_upstream_and_tls_needs_a_certificate() {
    let text = MINIMAL.replace("protocol = \"imap\"", "protocol = \"pop3\"");
    assert!(errors(&text).contains(&"listener[0].protocol: no [upstream.pop3] is configured".to_owned()));
    let text = MINIMAL.replace(
        "[[certificate]]\ncert = \"../certs/server.pem\"\nkey = \"../certs/server-key.pem\"\n",
        "",
    );
    assert_eq!(
        errors(&text),
        vec!["listener[0].tls: TLS needs at least one [[certificate]]"]
    );
}

#[test]
fn limits_and_penalty_are_validated_by_key() {
    let text = format!(
        "{MINIMAL}\n[limits]\nmax_connections_per_ip = 5\nmax_prelogin_per_ip = 6\ntrusted_networks = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n\n[penalty]\ninitial_delay_ms = 500\nmax_delay_ms = 100\nmax_tracked = 3\n"
    );
    let e = errors(&text);
    assert!(
        e.contains(&"limits.max_prelogin_per_ip: must not exceed limits.max_connections_per_ip".to_owned()),
        "{e:?}"
    );
    assert!(
        e.contains(&"penalty.max_delay_ms: must be at least penalty.initial_delay_ms".to_owned()),
        "{e:?}"
    );
    assert!(e.iter().any(|m| m.starts_with("penalty.max_tracked:")), "{e:?}");

    let e = errors(&format!(
        "{MINIMAL}\n[limits]\ntrusted_networks = [\"10.0.0.0/40\"]\n"
    ));
    assert!(e[0].starts_with("limits.trusted_networks[0]: "), "{e:?}");
    let e = errors(&format!("{MINIMAL}\n[penalty]\ndelay = 3\n"));
    assert!(e[0].starts_with("penalty.delay: unknown field"), "{e:?}");

    let config = parse(&format!(
        "{MINIMAL}\n[limits]\ntrusted_networks = [\"192.0.2.0/24\"]\n[penalty]\nip_refuse_after = 0\n"
    ))
    .unwrap();
    assert!(config.limits.trusted_networks[0].contains("192.0.2.77".parse().unwrap()));
    assert_eq!(config.penalty.ip_refuse_after, 0);
}

#[test]
fn upstream_address_may_be_a_list() {
    let config = parse(&MINIMAL.replace(
        "address = \"127.0.0.1:143\"",
        "address = [\"127.0.0.1:143\", \"imap2.example:1143\"]",
    ))
    .unwrap();
    let u = config.imap_upstream.unwrap();
    assert_eq!(u.address, "127.0.0.1:143");
    assert_eq!(u.fallback_addresses, ["imap2.example:1143"]);
    let e = errors(&MINIMAL.replace(
        "address = \"127.0.0.1:143\"",
        "address = [\"127.0.0.1:143\", \"nope\"]",
    ));
    assert_eq!(e, ["upstream.imap.address[1]: \"nope\" is not host:port"]);
    let e = errors(&MINIMAL.replace("address = \"127.0.0.1:143\"", "address = []"));
    assert_eq!(e, ["upstream.imap.address: list 1 to 8 host:port addresses"]);
}

#[test]
fn pop3_listeners_and_their_line_limit() {
    let pop3 = MINIMAL
        .replace("protocol = \"imap\"", "protocol = \"pop3\"")
        .replace("[upstream.imap]", "[upstream.pop3]");
    let config = parse(&pop3).unwrap();
    assert_eq!(config.listeners[0].protocol, Protocol::Pop3);
    assert_eq!(config.listeners[0].name, "pop3-tls-9993");
    assert_eq!(config.limits.pop3_max_line_bytes, 255);

    for bad in ["254", "8193"] {
        let text = format!("{pop3}\n[limits]\npop3_max_line_bytes = {bad}\n");
        assert_eq!(
            errors(&text),
            vec!["limits.pop3_max_line_bytes: must be between 255 and 8192"]
        );
    }
}

#[test]
fn smtp_listeners_xclient_and_pec_checks() {
    let smtp = r#"
[[certificate]]
cert = "../certs/server.pem"
key = "../certs/server-key.pem"

[[listener]]
protocol = "smtp"
address = "127.0.0.1:9465"
tls = "implicit"

[upstream.smtp]
address = "127.0.0.1:25"
tls = "none"
login = "xclient"

[store]
path = "/tmp/never-opened.db"
"#;
    let config = parse(smtp).unwrap();
    assert_eq!(config.listeners[0].name, "smtp-tls-9465");
    assert_eq!(config.smtp_upstream.unwrap().login.mode(), LoginMode::Xclient);
    assert_eq!(config.pec_checks, PecChecks::default());
    assert_eq!(config.pec_checks.max_message_bytes, 30 * 1024 * 1024);
    assert!(config.pec_checks.recipients, "no blind copies by default");
    let off = parse(&format!("{smtp}\n[pec_checks]\nrecipients = false\n")).unwrap();
    assert!(!off.pec_checks.recipients && off.pec_checks.no_bcc);
    assert_eq!(config.smtp_hostname, "localhost");

    // xclient needs a store, and is for SMTP only.
    let e = errors(&smtp.replace("[store]\npath = \"/tmp/never-opened.db\"\n", ""));
    assert!(
        e.iter()
            .any(|m| m.starts_with("upstream.smtp.login: master-user, sasl-authzid and xclient need")),
        "{e:?}"
    );
    let e = errors(&MINIMAL.replace("login = \"pass-through\"", "login = \"xclient\""));
    assert!(
        e.iter()
            .any(|m| m == "upstream.imap.login: \"xclient\" is only for [upstream.smtp]"),
        "{e:?}"
    );

    let e = errors(&format!(
        "{smtp}\n[pec_checks]\nbcc = false\n[limits]\nsmtp_max_command_line_bytes = 100\n[smtp]\nhostname = \"a b\"\n"
    ));
    assert!(e[0].starts_with("pec_checks.bcc: unknown field"), "{e:?}");
    let e = errors(&format!(
        "{smtp}\n[limits]\nsmtp_max_command_line_bytes = 100\n[smtp]\nhostname = \"a b\"\n"
    ));
    assert!(
        e.contains(
            &"limits.smtp_max_command_line_bytes: must be between 512 (RFC 5321 §4.5.3.1.4) and 65536"
                .to_owned()
        ),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("smtp.hostname: must be a domain name")),
        "{e:?}"
    );
}

#[test]
fn a_proxy_protocol_listener_needs_its_trusted_proxies() {
    let proxied = MINIMAL.replace(
        "tls = \"implicit\"\n",
        "tls = \"implicit\"\nproxy_protocol = true\n",
    );
    let e = errors(&proxied);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("listener[0].proxy_protocol: needs limits.trusted_proxies"),
        "{e:?}"
    );
    let config = parse(&format!(
        "{proxied}\n[limits]\ntrusted_proxies = [\"10.0.0.0/8\"]\nproxy_header_timeout_ms = 500\n"
    ))
    .unwrap();
    assert!(config.listeners[0].proxy_protocol);
    assert!(config.limits.trusted_proxies[0].contains("10.1.2.3".parse().unwrap()));
    assert_eq!(config.limits.proxy_header_timeout(), Duration::from_millis(500));
    let e = errors(&format!("{MINIMAL}\n[limits]\nproxy_header_timeout_ms = 0\n"));
    assert!(e[0].starts_with("limits.proxy_header_timeout_ms"), "{e:?}");
    assert!(!parse(MINIMAL).unwrap().listeners[0].proxy_protocol);
}
