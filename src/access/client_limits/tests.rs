use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn connections_and_prelogin_places_per_client() {
    let limits = ClientLimits::new(3, 2, vec![]);
    let a = ip("203.0.113.1");
    let mut first = limits.admit(a).unwrap();
    let _second = limits.admit(a).unwrap();
    // Two not logged in: the pre-login limit refuses a third.
    assert_eq!(limits.admit(a).unwrap_err(), Refusal::PreloginPerIp);
    assert_eq!(limits.open(a), (2, 2));
    first.logged_in();
    let _third = limits.admit(a).unwrap();
    assert_eq!(limits.admit(a).unwrap_err(), Refusal::ConnectionsPerIp);
    // Another client is not affected; an IPv6 /64 is one client.
    let _other = limits.admit(ip("203.0.113.2")).unwrap();
    let _v6a = limits.admit(ip("2001:db8::1")).unwrap();
    let _v6b = limits.admit(ip("2001:db8::2")).unwrap();
    assert_eq!(
        limits.admit(ip("2001:db8::3")).unwrap_err(),
        Refusal::PreloginPerIp
    );
    drop(first);
    assert_eq!(limits.open(a), (2, 2));
}

#[test]
fn places_are_given_back_and_empty_clients_forgotten() {
    let limits = ClientLimits::new(2, 2, vec![]);
    let a = ip("203.0.113.1");
    let x = limits.admit(a).unwrap();
    let y = limits.admit(a).unwrap();
    assert_eq!(limits.clients(), 1);
    drop((x, y));
    assert_eq!(limits.open(a), (0, 0));
    assert_eq!(limits.clients(), 0);
}

#[test]
fn trusted_networks_are_not_counted() {
    let limits = ClientLimits::new(1, 1, vec!["10.0.0.0/8".parse().unwrap()]);
    let held: Vec<_> = (0..5).map(|_| limits.admit(ip("10.1.2.3")).unwrap()).collect();
    assert_eq!(held.len(), 5);
    assert_eq!(limits.clients(), 0);
}

#[test]
fn concurrent_admissions_never_exceed_the_limit() {
    let limits = ClientLimits::new(8, 8, vec![]);
    let a = ip("203.0.113.1");
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (limits, barrier) = (limits.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                (0..100).filter_map(|_| limits.admit(a).ok()).collect::<Vec<_>>()
            })
        })
        .collect();
    let held: Vec<Admission> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!(held.len(), 8);
    assert_eq!(limits.open(a), (8, 8));
}
