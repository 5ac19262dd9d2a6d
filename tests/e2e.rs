//! End to end against real servers: pec-proxy in front of a private Dovecot
//! and Postfix started by `scripts/upstreams.sh`, spoken to with our raw
//! client and with real ones (Python's imaplib, poplib and smtplib, curl).
//! One module per protocol (`imap`, `pop3`, `smtp`), the PEC access rules
//! over IMAP (`access`), collaborator rights after login (`imap_rights`),
//! revocation reaching live sessions of all three protocols (`revocation`),
//! the real binary driven with signals (`ops`), and
//! the harness's own smoke test (`upstreams`).
//!
//! Why these share a process (their tests run in parallel, as they did in
//! their own binaries):
//! - Each module starts its own Dovecot + Postfix (a `static` in the module,
//!   see `support/upstreams.rs`); `upstreams` starts and stops one of its
//!   own. No module sees another's mailboxes, seeded mail or Dovecot log.
//! - Each test starts its own proxy: in-process `Server`s share no state
//!   (limits, penalties and caches are per server), and the real binary that
//!   `ops` and `access` run is a child process with its own metrics
//!   endpoint, environment and signals (sent to its pid, never to ours).
//! - Nothing here installs the metrics recorder or reads process-wide
//!   metrics, sets an environment variable of this process, changes a
//!   resource limit or needs a fixed port: listeners bind port 0 (the
//!   child's ports are found the same way, then released for it).
//!
//! Tests that cannot share a process have their own binary: `penalty.rs`
//! (process-wide penalty metrics) and `smtp_memory.rs` (the process's peak
//! resident memory).

mod support;

#[path = "e2e/access.rs"]
mod access;
#[path = "e2e/imap.rs"]
mod imap;
#[path = "e2e/imap_rights.rs"]
mod imap_rights;
#[path = "e2e/ops.rs"]
mod ops;
#[path = "e2e/pop3.rs"]
mod pop3;
#[path = "e2e/revocation.rs"]
mod revocation;
#[path = "e2e/smtp.rs"]
mod smtp;
#[path = "e2e/upstreams.rs"]
mod upstreams;
