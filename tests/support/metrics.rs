//! A Prometheus recorder installed once per test binary, so tests can read
//! the counters the in-process proxy updates. Values are process-wide: a
//! test compares before and after, or owns its binary.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("install the metrics recorder")
    })
}

/// Installs the recorder (call before the proxy starts counting).
pub fn install() {
    handle();
}

/// The sum of the samples of `name` whose labels include every `labels`
/// pair (`key="value"`), 0 when there is none.
pub fn value(name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = handle().render();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((m, r)) => (m, r),
                None => (series, ""),
            };
            (metric == name
                && labels
                    .iter()
                    .all(|(k, val)| rest.contains(&format!("{k}=\"{val}\""))))
            .then(|| v.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

/// `pec_proxy_upstream_errors_total` for one protocol, kind and upstream address.
pub fn upstream_errors(protocol: &str, kind: &str, upstream: std::net::SocketAddr) -> f64 {
    value(
        "pec_proxy_upstream_errors_total",
        &[
            ("protocol", protocol),
            ("kind", kind),
            ("upstream", &upstream.to_string()),
        ],
    )
}
