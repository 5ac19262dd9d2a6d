//! Latency percentiles and error counts.

use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Default)]
pub struct Results {
    pub latencies: Vec<Duration>,
    pub errors: BTreeMap<&'static str, u64>,
}

impl Results {
    pub fn error(&mut self, kind: &'static str) {
        *self.errors.entry(kind).or_default() += 1;
    }

    pub fn merge(&mut self, other: Results) {
        self.latencies.extend(other.latencies);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }

    /// `(p50, p99, max)` in milliseconds.
    pub fn percentiles_ms(&mut self) -> (f64, f64, f64) {
        if self.latencies.is_empty() {
            return (0.0, 0.0, 0.0);
        }
        self.latencies.sort_unstable();
        let at = |q: f64| {
            let i = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
            self.latencies[i].as_secs_f64() * 1e3
        };
        (at(0.50), at(0.99), at(1.0))
    }

    pub fn errors_summary(&self) -> String {
        if self.errors.is_empty() {
            return "none".into();
        }
        self.errors
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}
