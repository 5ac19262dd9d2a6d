//! Faults behind the proxy, one module per protocol: an upstream that
//! refuses, resets, hangs, sends garbage or says it cannot serve; a second
//! upstream address tried when the first fails; an account store that
//! cannot be read; for SMTP, an upstream lost in the middle of DATA. The
//! upstreams are the in-process fakes of `support/fake_*.rs`.
//!
//! Why these share a process (their tests run in parallel, as they did in
//! their own binaries):
//! - Each test starts its own fake upstreams, its own proxy and, where it
//!   needs one, its own account store in a temp dir. Limits, penalties and
//!   caches are per server.
//! - The metrics recorder is process-wide. The exact assertions (a count
//!   unchanged, or zero) are on `pec_proxy_upstream_errors_total` series
//!   labelled with the module's own protocol and the address of a fake (or
//!   a closed port) the test itself took: a test of another module records
//!   other protocols.
//!   Every other value read (logins by result and reason, sessions ended by
//!   the upstream) is labelled with the protocol too and asserted as a lower
//!   bound on the test's own increments.
//! - No environment variable, resource limit or fixed port is touched: every
//!   listener binds port 0.

mod support;

#[path = "faults/imap.rs"]
mod imap;
#[path = "faults/pop3.rs"]
mod pop3;
#[path = "faults/smtp.rs"]
mod smtp;
