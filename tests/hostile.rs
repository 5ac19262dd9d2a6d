//! The hostile-input matrices, one module per protocol: what a broken or
//! malicious client sends, the documented reply (or close), the error
//! counted, and the proxy still serving others. The upstream is the
//! in-process fake of `support/fake_*.rs`.
//!
//! Why these share a process (their tests run in parallel, as they did in
//! their own binaries):
//! - Each test starts its own fake upstream and its own proxy. Connection
//!   limits, per-address counts and pre-login state are per server, so the
//!   crowds of 127.0.0.2 and the sessions of 127.0.0.6 in one module are not
//!   seen by another module's proxy. The penalty is off in every proxy here.
//! - The metrics recorder is process-wide, but every value a test reads is a
//!   difference from its own earlier reading, asserted as a lower bound
//!   (`>= before + n`): other tests can only add to a counter, never make a
//!   row's own increments disappear. Most are labelled with the protocol too.
//! - No environment variable, resource limit or fixed port is touched: every
//!   listener binds port 0.
//!
//! The login storm (`penalty.rs`) reads process-wide penalty counters
//! exactly, so it keeps a binary of its own.

mod support;

#[path = "hostile/imap.rs"]
mod imap;
#[path = "hostile/pop3.rs"]
mod pop3;
#[path = "hostile/smtp.rs"]
mod smtp;
#[path = "hostile/tls_alpn.rs"]
mod tls_alpn;
