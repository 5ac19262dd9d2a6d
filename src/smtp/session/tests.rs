use super::*;

#[test]
fn a_failed_connection_reads_the_same_however_it_surfaces() {
    let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    for e in [
        UpstreamError::Connect(refused),
        UpstreamError::ConnectTimeout,
        UpstreamError::Timeout,
        UpstreamError::Closed,
        UpstreamError::Io(reset),
    ] {
        assert_eq!(unavailable_reply(&e), reply::UPSTREAM_NOT_RESPONDING, "{e}");
    }
    for e in [
        UpstreamError::Protocol("malformed reply".into()),
        UpstreamError::Unavailable("421 4.3.2 busy".into()),
        UpstreamError::Tls(std::io::Error::other("bad certificate")),
        UpstreamError::AuthFailed,
    ] {
        assert_eq!(unavailable_reply(&e), reply::UPSTREAM_UNAVAILABLE, "{e}");
    }
}
