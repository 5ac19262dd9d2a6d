//! The gate's penalty step: which name a login is counted under, under
//! paused time (no sleeping).

use std::net::SocketAddr;

use super::*;
use crate::access::Credentials;
use crate::access::penalty::PenaltyConfig;
use crate::protocol::Protocol;
use crate::secret::Secret;

fn request(from: &str, login: &str, password: &str) -> LoginRequest {
    LoginRequest {
        protocol: Protocol::Imap,
        credentials: Credentials {
            authzid: None,
            authcid: login.as_bytes().to_vec(),
            password: Secret::from_slice(password.as_bytes()),
        },
        peer: SocketAddr::new(from.parse().unwrap(), 50_000),
        tls: true,
        client_name: None,
        separator: '/',
    }
}

/// Pass-through with a penalty that refuses a login name after one failure
/// and never refuses a client.
fn gate() -> Gate {
    let cfg = PenaltyConfig {
        initial_delay_ms: 100,
        max_delay_ms: 400,
        ip_refuse_after: 0,
        mailbox_refuse_after: 1,
        ..PenaltyConfig::default()
    };
    Gate::new(Authority::PassThrough, Arc::new(Penalties::new(cfg, Vec::new())))
}

fn wrong_password(gate: &Gate, req: &LoginRequest) {
    let refusal = LoginRefusal::Denied(DenyReason::UnknownOrBadPassword);
    gate.record(req, "login", Err(&refusal), Instant::now());
}

async fn refused_unchecked(gate: &Gate, req: &LoginRequest) -> bool {
    matches!(gate.check(req).await, Err(d) if d.reason == DenyReason::TooManyFailures)
}

/// `K` (U+212A KELVIN SIGN) is `k` in Unicode lower case, so the account
/// store knows `mar\u{212A}@pec.example` as `mark@pec.example`: the
/// penalty must count both under one name, or an attacker gets a fresh
/// counter for every spelling.
#[tokio::test(start_paused = true)]
async fn a_login_name_is_counted_under_the_name_the_policy_knows() {
    let gate = gate();
    wrong_password(
        &gate,
        &request("203.0.113.1", "mar\u{212A}@pec.example", "guess-1"),
    );
    for spelling in ["mark@pec.example", "MARK@PEC.example", "mar\u{212A}@pec.example"] {
        let req = request("198.51.100.2", spelling, "guess-2");
        assert!(refused_unchecked(&gate, &req).await, "{spelling}");
    }
    // A collaborator is another name; the mailbox's own is not touched.
    let req = request("198.51.100.2", "anna/mark@pec.example", "guess-3");
    assert!(!refused_unchecked(&gate, &req).await);
    wrong_password(
        &gate,
        &request("203.0.113.1", "ANNA/Mar\u{212A}@pec.example", "guess-4"),
    );
    assert!(
        refused_unchecked(
            &gate,
            &request("198.51.100.2", "anna/mark@pec.example", "guess-5")
        )
        .await
    );
}
