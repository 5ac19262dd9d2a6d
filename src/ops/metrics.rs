//! Every metric the proxy exports, declared and described in one place.
//!
//! Names carry the `pec_proxy_` prefix and their unit; labels are bounded
//! sets (protocol, listener name from config, result, reason, ...), never a
//! user name or an address.

use metrics::{Counter, Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::protocol::Protocol;
use crate::relay::ByteCounter;

pub const CONNECTIONS_TOTAL: &str = "pec_proxy_connections_total";
pub const SESSIONS_ACTIVE: &str = "pec_proxy_sessions_active";
pub const TLS_HANDSHAKES_TOTAL: &str = "pec_proxy_tls_handshakes_total";
pub const TLS_HANDSHAKE_DURATION_SECONDS: &str = "pec_proxy_tls_handshake_duration_seconds";
pub const LOGINS_TOTAL: &str = "pec_proxy_logins_total";
pub const LOGIN_DURATION_SECONDS: &str = "pec_proxy_login_duration_seconds";
pub const UPSTREAM_CONNECT_DURATION_SECONDS: &str = "pec_proxy_upstream_connect_duration_seconds";
pub const UPSTREAM_ERRORS_TOTAL: &str = "pec_proxy_upstream_errors_total";
pub const RELAY_BYTES_TOTAL: &str = "pec_proxy_relay_bytes_total";
pub const SESSION_DURATION_SECONDS: &str = "pec_proxy_session_duration_seconds";
pub const SESSIONS_REVOKED_TOTAL: &str = "pec_proxy_sessions_revoked_total";
pub const CLIENT_ERRORS_TOTAL: &str = "pec_proxy_client_errors_total";
pub const CONNECTIONS_REFUSED_TOTAL: &str = "pec_proxy_connections_refused_total";
pub const LOGIN_PENALTY_DELAYS_TOTAL: &str = "pec_proxy_login_penalty_delays_total";
pub const LOGIN_PENALTY_DELAY_SECONDS: &str = "pec_proxy_login_penalty_delay_seconds";
pub const LOGIN_PENALTY_REFUSALS_TOTAL: &str = "pec_proxy_login_penalty_refusals_total";
pub const LOGIN_PENALTY_TRACKED: &str = "pec_proxy_login_penalty_tracked";
/// Recorded by the SMTP envelope rules and the POP3 `DELE` guard.
pub const PEC_CHECKS_TOTAL: &str = "pec_proxy_pec_checks_total";
pub const CONFIG_RELOADS_TOTAL: &str = "pec_proxy_config_reloads_total";
pub const BUILD_INFO: &str = "pec_proxy_build_info";
/// PROXY protocol listeners: headers read, by listener and result (proxy,
/// local, unknown, untrusted, timeout, closed, or the parser's error label).
pub const PROXY_HEADERS_TOTAL: &str = "pec_proxy_proxy_headers_total";
/// PostgreSQL: 1 while this node hears the database's announcements (LISTEN).
pub const STORE_LISTENING: &str = "pec_proxy_store_listening";
/// PostgreSQL: times the listening connection was lost, or could not be made.
pub const STORE_LISTEN_LOST_TOTAL: &str = "pec_proxy_store_listen_lost_total";
/// Fleet counters: 1 while this node shares its counts with the fleet.
pub const SHARED_COUNTERS_UP: &str = "pec_proxy_shared_counters_up";
/// Fleet counters: events by direction (sent, received) and outcome.
pub const SHARED_COUNTER_EVENTS_TOTAL: &str = "pec_proxy_shared_counter_events_total";

/// Buckets for the latency histograms, in seconds: from a cached login on
/// loopback (sub-millisecond) to Dovecot's 15 s failed-login delay.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Buckets for session durations, in seconds: a POP3 poll to a day-long IDLE.
pub const SESSION_BUCKETS: &[f64] = &[
    1.0,
    10.0,
    60.0,
    300.0,
    1800.0,
    3600.0,
    4.0 * 3600.0,
    24.0 * 3600.0,
];

/// Installs the Prometheus recorder as the global one, with our histogram
/// buckets and descriptions; the handle renders the exposition for `/metrics`.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let mut builder = PrometheusBuilder::new();
    for name in [
        LOGIN_DURATION_SECONDS,
        TLS_HANDSHAKE_DURATION_SECONDS,
        UPSTREAM_CONNECT_DURATION_SECONDS,
        LOGIN_PENALTY_DELAY_SECONDS,
    ] {
        builder = builder.set_buckets_for_metric(Matcher::Full(name.into()), LATENCY_BUCKETS)?;
    }
    builder =
        builder.set_buckets_for_metric(Matcher::Full(SESSION_DURATION_SECONDS.into()), SESSION_BUCKETS)?;
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)?;
    describe();
    Ok(handle)
}

/// Without the exporter's own HTTP listener, its upkeep is ours: histogram
/// samples are folded into buckets here (and at each render).
pub async fn run_upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

/// Counts a configuration reload attempt.
pub fn config_reload(ok: bool) {
    metrics::counter!(CONFIG_RELOADS_TOTAL, "result" => if ok { "ok" } else { "error" }).increment(1);
}

/// Registers descriptions with the installed recorder.
pub fn describe() {
    describe_counter!(
        CONNECTIONS_TOTAL,
        "Client connections accepted, by protocol and listener."
    );
    describe_gauge!(
        SESSIONS_ACTIVE,
        "Client sessions open now, by protocol and stage (prelogin, relay)."
    );
    describe_counter!(
        TLS_HANDSHAKES_TOTAL,
        "TLS handshakes with clients, by protocol, result and version."
    );
    describe_histogram!(
        TLS_HANDSHAKE_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of TLS handshakes with clients."
    );
    describe_counter!(
        LOGINS_TOTAL,
        "Login attempts, by protocol, result (ok, denied, refused, unavailable), reason, mechanism and collaborator."
    );
    describe_histogram!(
        LOGIN_DURATION_SECONDS,
        Unit::Seconds,
        "From the client's login command to our reply."
    );
    describe_histogram!(
        UPSTREAM_CONNECT_DURATION_SECONDS,
        Unit::Seconds,
        "Time to connect to the upstream and log in as the mailbox."
    );
    describe_counter!(
        UPSTREAM_ERRORS_TOTAL,
        "Failures talking to an upstream, by protocol, upstream and kind."
    );
    describe_counter!(
        RELAY_BYTES_TOTAL,
        Unit::Bytes,
        "Bytes relayed after login, by protocol and direction."
    );
    describe_histogram!(
        SESSION_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of client sessions that reached the relay, by protocol and how they ended (closed, idle_timeout, client_error, upstream_error, shutdown, revoked, lifetime)."
    );
    describe_counter!(
        SESSIONS_REVOKED_TOTAL,
        "Logged-in sessions the proxy ended, by protocol and reason: a change to the account that the session no longer passes (collaborator_suspended, app_password_revoked, protocol_disabled, ...), limits.max_session_secs (max_session_secs), or pec-proxy session end (operator)."
    );
    describe_counter!(
        CLIENT_ERRORS_TOTAL,
        "Client protocol errors and refusals before login, by protocol and kind."
    );
    describe_counter!(
        CONNECTIONS_REFUSED_TOTAL,
        "Client connections closed at accept by a per-client limit, by protocol and limit (connections_per_ip, prelogin_per_ip)."
    );
    describe_counter!(
        LOGIN_PENALTY_DELAYS_TOTAL,
        "Logins held back by the brute-force penalty before being checked, by protocol."
    );
    describe_histogram!(
        LOGIN_PENALTY_DELAY_SECONDS,
        Unit::Seconds,
        "How long the brute-force penalty held logins back."
    );
    describe_counter!(
        LOGIN_PENALTY_REFUSALS_TOTAL,
        "Logins refused unchecked by the brute-force penalty, by protocol."
    );
    describe_gauge!(
        LOGIN_PENALTY_TRACKED,
        "Records the brute-force penalty keeps, by dimension (client, login); bounded by penalty.max_tracked."
    );
    describe_counter!(
        PROXY_HEADERS_TOTAL,
        "PROXY protocol headers on proxy_protocol listeners, by listener and result; anything but proxy, local and unknown closed the connection."
    );
    describe_gauge!(
        STORE_LISTENING,
        "1 while this node hears the PostgreSQL store's change announcements (LISTEN), 0 while it only polls."
    );
    describe_counter!(
        STORE_LISTEN_LOST_TOTAL,
        "Times the PostgreSQL listening connection was lost or could not be made."
    );
    describe_gauge!(
        SHARED_COUNTERS_UP,
        "1 while this node shares its penalty and sending-rate counts with the fleet, 0 while it counts alone."
    );
    describe_counter!(
        SHARED_COUNTER_EVENTS_TOTAL,
        "Fleet counter events, by direction (sent, received) and result (ok, dropped, invalid)."
    );
    describe_counter!(
        PEC_CHECKS_TOTAL,
        "PEC rules applied after login (SMTP envelope and headers, POP3 DELE guard, IMAP rights guard), by check and result."
    );
    describe_counter!(
        CONFIG_RELOADS_TOTAL,
        "Configuration reloads (SIGHUP), by result (ok, error: the old configuration is kept)."
    );
    // Exported at 0 from the start, so `increase()` sees the first reload.
    for result in ["ok", "error"] {
        metrics::counter!(CONFIG_RELOADS_TOTAL, "result" => result).absolute(0);
    }
    describe_gauge!(BUILD_INFO, "Always 1; the version label says which build runs.");
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Feeds relayed byte counts into `pec_proxy_relay_bytes_total` as they move.
pub struct RelayCounter {
    client_to_upstream: Counter,
    upstream_to_client: Counter,
}

impl RelayCounter {
    pub fn new(protocol: Protocol) -> Self {
        let p = protocol.as_str();
        Self {
            client_to_upstream: metrics::counter!(RELAY_BYTES_TOTAL, "protocol" => p, "direction" => "client_to_upstream"),
            upstream_to_client: metrics::counter!(RELAY_BYTES_TOTAL, "protocol" => p, "direction" => "upstream_to_client"),
        }
    }
}

impl ByteCounter for RelayCounter {
    fn client_to_upstream(&self, n: u64) {
        self.client_to_upstream.increment(n);
    }
    fn upstream_to_client(&self, n: u64) {
        self.upstream_to_client.increment(n);
    }
}
