//! The gate's penalty step: which name a login is counted under, and the
//! pre-login deadline; under paused time (no sleeping).

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
    gate.record(req, "login", Err(&refusal), Instant::now(), None);
}

async fn refused_unchecked(gate: &Gate, req: &LoginRequest) -> bool {
    matches!(gate.check(req, None).await, Err(d) if d.reason == DenyReason::TooManyFailures)
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

/// With 1 s left before the deadline, a 400 ms delay is waited out and a
/// 1600 ms one is refused at once.
#[tokio::test(start_paused = true)]
async fn a_delay_that_would_run_past_the_deadline_is_refused_at_once() {
    let gate = Gate::new(
        Authority::PassThrough,
        Arc::new(Penalties::new(
            PenaltyConfig {
                initial_delay_ms: 400,
                max_delay_ms: 2000,
                ip_refuse_after: 0,
                mailbox_refuse_after: 0,
                ..PenaltyConfig::default()
            },
            Vec::new(),
        )),
    );
    let from = "203.0.113.1";
    wrong_password(&gate, &request(from, "mark@pec.example", "guess-1"));
    let deadline = Instant::now() + Duration::from_secs(1);
    let req = request(from, "mark@pec.example", "guess-2");
    let admitted = gate.check(&req, Some(deadline)).await.unwrap();
    assert_eq!(admitted.answer_at, Instant::now() + Duration::from_millis(400));

    for i in 3..5 {
        wrong_password(&gate, &request(from, "mark@pec.example", &format!("guess-{i}")));
    }
    let asked = Instant::now();
    let denied = gate.check(&req, Some(deadline)).await.unwrap_err();
    assert_eq!(denied.reason, DenyReason::TooManyFailures);
    assert_eq!(Instant::now(), asked, "at once");
    // Without a deadline the same login is held, not refused.
    assert!(gate.check(&req, None).await.is_ok());
}

/// A slow wrong-password judgement upstream (pass-through) is remembered:
/// the next delayed login needs its delay and that much before the
/// deadline.
#[tokio::test(start_paused = true)]
async fn the_deadline_keeps_room_for_a_verification_as_slow_as_the_last() {
    let gate = Gate::new(
        Authority::PassThrough,
        Arc::new(Penalties::new(
            PenaltyConfig {
                initial_delay_ms: 400,
                ip_refuse_after: 0,
                mailbox_refuse_after: 0,
                ..PenaltyConfig::default()
            },
            Vec::new(),
        )),
    );
    let from = "203.0.113.1";
    let refusal = LoginRefusal::Denied(DenyReason::UnknownOrBadPassword);
    let slow = Some(Duration::from_secs(2));
    gate.record(
        &request(from, "mark@pec.example", "guess-1"),
        "login",
        Err(&refusal),
        Instant::now(),
        slow,
    );
    let req = request(from, "mark@pec.example", "guess-2");
    // 400 ms of delay and 2 s of judging do not fit in 2 s; they do in 3.
    let now = Instant::now();
    let denied = gate
        .check(&req, Some(now + Duration::from_secs(2)))
        .await
        .unwrap_err();
    assert_eq!(denied.reason, DenyReason::TooManyFailures);
    assert!(gate.check(&req, Some(now + Duration::from_secs(3))).await.is_ok());
}
