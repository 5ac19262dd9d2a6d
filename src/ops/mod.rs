//! Beside the session path: metrics, the status HTTP server (`/metrics`,
//! `/healthz`, `/readyz`), and the drain and close signals.

pub mod http;
pub mod metrics;
pub mod shutdown;
