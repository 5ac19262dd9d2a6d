use std::cell::RefCell;
use std::time::Duration;

use super::*;
use crate::config::{TlsMode, UpstreamConfig, UpstreamLogin};

const DEADLINE: Duration = Duration::from_secs(30);

fn upstream(addresses: &[&str]) -> Upstream {
    let config = UpstreamConfig {
        address: addresses[0].to_owned(),
        fallback_addresses: addresses[1..].iter().map(|a| (*a).to_owned()).collect(),
        tls: TlsMode::None,
        ca: None,
        server_name: "localhost".into(),
        login: UpstreamLogin::PassThrough,
        send_client_address: false,
        proxy_protocol: false,
    };
    Upstream::new(config, None, Duration::from_secs(5))
}

/// What a scripted address does when tried.
#[derive(Clone, Copy)]
enum Does {
    Hang,
    Refuse,
    RefuseLogin,
    LogIn,
}

/// Runs [`with_failover`] over `script` (one behaviour per address, in
/// order) under paused time. Returns the result, when each address was
/// tried (time since the start), and what `on_fault` heard.
async fn run(
    script: &[Does],
) -> (
    Result<&'static str, UpstreamError>,
    Vec<Duration>,
    Vec<(String, &'static str)>,
) {
    let names: Vec<String> = (0..script.len())
        .map(|i| format!("192.0.2.{}:143", i + 1))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let start = Instant::now();
    let tried = RefCell::new(Vec::new());
    let faults = RefCell::new(Vec::new());
    let result = with_failover(
        &upstream(&refs),
        start + DEADLINE,
        |address, e| faults.borrow_mut().push((address.to_owned(), e.kind())),
        |one| {
            let index = names
                .iter()
                .position(|n| *n == one.config.address)
                .expect("a known address");
            assert!(
                one.config.fallback_addresses.is_empty(),
                "one address per attempt"
            );
            tried.borrow_mut().push(start.elapsed());
            let does = script[index];
            async move {
                match does {
                    Does::Hang => std::future::pending().await,
                    Does::Refuse => Err(UpstreamError::Connect(
                        std::io::ErrorKind::ConnectionRefused.into(),
                    )),
                    Does::RefuseLogin => Err(UpstreamError::AuthFailed),
                    Does::LogIn => Ok("logged in"),
                }
            }
        },
    )
    .await;
    (result, tried.into_inner(), faults.into_inner())
}

#[tokio::test(start_paused = true)]
async fn a_hanging_address_gets_its_share_of_the_deadline_then_the_next_is_tried() {
    let (result, tried, faults) = run(&[Does::Hang, Does::LogIn]).await;
    assert_eq!(result.unwrap(), "logged in");
    // Two addresses: the first has half the deadline.
    assert_eq!(tried, [Duration::ZERO, DEADLINE / 2]);
    assert_eq!(faults, [("192.0.2.1:143".to_owned(), "timeout")]);
}

#[tokio::test(start_paused = true)]
async fn every_address_has_an_equal_share_of_what_is_left_and_the_last_the_rest() {
    let (result, tried, faults) = run(&[Does::Hang, Does::Hang, Does::Hang]).await;
    assert!(matches!(result, Err(UpstreamError::Timeout)), "{result:?}");
    assert_eq!(tried, [Duration::ZERO, DEADLINE / 3, DEADLINE * 2 / 3]);
    let kinds: Vec<_> = faults.iter().map(|(a, k)| (a.as_str(), *k)).collect();
    assert_eq!(
        kinds,
        [
            ("192.0.2.1:143", "timeout"),
            ("192.0.2.2:143", "timeout"),
            ("192.0.2.3:143", "timeout")
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn time_a_fast_failure_leaves_goes_to_the_addresses_after_it() {
    // The first fails at once: the second has half of the whole deadline,
    // not a third of it.
    let (result, tried, _) = run(&[Does::Refuse, Does::Hang, Does::LogIn]).await;
    assert_eq!(result.unwrap(), "logged in");
    assert_eq!(tried, [Duration::ZERO, Duration::ZERO, DEADLINE / 2]);
}

#[tokio::test(start_paused = true)]
async fn a_server_fault_moves_on_at_once_and_the_last_fault_is_returned() {
    let (result, tried, faults) = run(&[Does::Refuse, Does::Refuse]).await;
    assert!(matches!(result, Err(UpstreamError::Connect(_))), "{result:?}");
    assert_eq!(tried, [Duration::ZERO, Duration::ZERO]);
    assert_eq!(faults.len(), 2, "each fault is reported with its address");
    assert_eq!(faults[1], ("192.0.2.2:143".to_owned(), "connect"));
}

#[tokio::test(start_paused = true)]
async fn a_refused_login_is_no_server_fault_and_stops_the_search() {
    // The other servers hold the same accounts: no point asking them.
    let (result, tried, faults) = run(&[Does::RefuseLogin, Does::LogIn]).await;
    assert!(matches!(result, Err(UpstreamError::AuthFailed)), "{result:?}");
    assert_eq!(tried.len(), 1);
    assert!(faults.is_empty(), "the caller counts a refused login itself");
}

#[test]
fn which_errors_read_as_no_answer() {
    let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    for e in [
        UpstreamError::Connect(refused),
        UpstreamError::ConnectTimeout,
        UpstreamError::Timeout,
        UpstreamError::Closed,
        UpstreamError::Io(reset),
    ] {
        assert!(e.is_no_answer(), "{e}");
    }
    for e in [
        UpstreamError::Protocol("malformed reply".into()),
        UpstreamError::Unavailable("421 4.3.2 busy".into()),
        UpstreamError::Tls(std::io::Error::other("bad certificate")),
        UpstreamError::AuthFailed,
        UpstreamError::MailboxInUse("locked".into()),
    ] {
        assert!(!e.is_no_answer(), "{e}");
    }
}
