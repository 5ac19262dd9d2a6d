use tokio::sync::watch;

use super::*;
use crate::access::gate::Gate;
use crate::ops::shutdown::Shutdown;
use metrics_exporter_prometheus::PrometheusBuilder;

#[test]
fn request_lines_known_answers() {
    let ok = |method, path| Ok(Request { method, path });
    let table: &[(&[u8], Result<Request<'_>, u16>)] = &[
        (
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            ok(Method::Get, "/metrics"),
        ),
        (b"HEAD /readyz HTTP/1.0\r\n\r\n", ok(Method::Head, "/readyz")),
        (
            b"GET /healthz?verbose=1 HTTP/1.1\r\n\r\n",
            ok(Method::Get, "/healthz"),
        ),
        (b"POST /metrics HTTP/1.1\r\n\r\n", Err(405)),
        (b"GET /metrics HTTP/2.0\r\n\r\n", Err(505)),
        (b"GET  /metrics HTTP/1.1\r\n\r\n", Err(400)),
        (b"GET http://x/metrics HTTP/1.1\r\n\r\n", Err(400)),
        (b"GET /metrics\r\n\r\n", Err(400)),
        (b"\xff /metrics HTTP/1.1\r\n\r\n", Err(400)),
    ];
    for (input, expected) in table {
        assert_eq!(
            &parse_request(input),
            expected,
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut out))
        .await
        .expect("response within 5 s")
        .unwrap();
    out
}

#[tokio::test]
async fn routes_readiness_and_bounds() {
    let handle = PrometheusBuilder::new().build_recorder().handle();
    let status = Status::new(handle);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, status.clone()));

    let r = exchange(addr, b"GET /healthz HTTP/1.1\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(r.contains("Connection: close\r\n"), "{r}");
    let r = exchange(addr, b"GET /readyz HTTP/1.1\r\n\r\n").await;
    assert!(
        r.starts_with("HTTP/1.1 503 ") && r.ends_with("not ready: starting\n"),
        "{r}"
    );

    let shutdown = Shutdown::new();
    let (_gate_tx, gate) = watch::channel(Gate::pass_through());
    status.set_ready(crate::listener::Ready::new(shutdown.clone(), gate, Vec::new()));
    let r = exchange(addr, b"GET /readyz HTTP/1.1\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    let r = exchange(addr, b"HEAD /readyz HTTP/1.1\r\n\r\n").await;
    assert!(r.ends_with("\r\n\r\n"), "HEAD has no body: {r}");
    shutdown.start_draining();
    let r = exchange(addr, b"GET /readyz HTTP/1.1\r\n\r\n").await;
    assert!(
        r.starts_with("HTTP/1.1 503 ") && r.ends_with("not ready: draining\n"),
        "{r}"
    );

    let r = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
    assert!(
        r.starts_with("HTTP/1.1 200 OK\r\n") && r.contains("version=0.0.4"),
        "{r}"
    );
    let r = exchange(addr, b"GET /nope HTTP/1.1\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 404 "), "{r}");
    let mut huge = b"GET /metrics HTTP/1.1\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b'a', MAX_REQUEST_HEAD + 10));
    let r = exchange(addr, &huge).await;
    assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
}
