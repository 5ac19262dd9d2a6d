use super::*;

#[tokio::test]
async fn closing_implies_draining_and_work_is_cut_short() {
    let s = Shutdown::new();
    assert_eq!(s.or_draining(async { 7 }).await, Some(7));
    assert!(!s.is_draining());
    let waiting = tokio::spawn({
        let s = s.clone();
        async move { s.or_draining(std::future::pending::<()>()).await }
    });
    s.close();
    assert!(s.is_draining(), "closing implies draining");
    assert_eq!(waiting.await.unwrap(), None);
    tokio::time::timeout(Duration::from_secs(1), s.closing())
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn draining_does_not_close() {
    let s = Shutdown::new();
    s.start_draining();
    s.draining().await;
    let closed = tokio::time::timeout(Duration::from_millis(20), s.closing()).await;
    assert!(closed.is_err(), "relays keep running while draining");
}
