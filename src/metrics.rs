//! Every metric the proxy exports, declared and described in one place.
//!
//! Names carry the `pec_proxy_` prefix and their unit; labels are bounded
//! sets (protocol, listener name from config, result, reason, ...), never a
//! user name or an address.

use metrics::{Counter, Unit, describe_counter, describe_gauge, describe_histogram};

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
pub const CLIENT_ERRORS_TOTAL: &str = "pec_proxy_client_errors_total";
pub const PEC_CHECKS_TOTAL: &str = "pec_proxy_pec_checks_total";
pub const BUILD_INFO: &str = "pec_proxy_build_info";

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
        "Login attempts, by protocol, result (ok, denied, unavailable), reason, mechanism and collaborator."
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
        "Client session duration, by protocol."
    );
    describe_counter!(
        CLIENT_ERRORS_TOTAL,
        "Client protocol errors and refusals before login, by protocol and kind."
    );
    describe_counter!(
        PEC_CHECKS_TOTAL,
        "PEC submission checks on SMTP (RFC 6109 3.1.1), by check (sender, from_header, bcc, size, rate) and result (pass, fail)."
    );
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
