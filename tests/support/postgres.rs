//! Private, real PostgreSQL clusters for integration tests, started with
//! `scripts/postgres.sh` (Debian's server binaries; never the system
//! service) in a fresh temporary directory, on a free loopback high port.
//! See that script for the cluster's settings (not durable: fsync off) and
//! its authentication (scram-sha-256 over TCP from 127.0.0.1).
//!
//! One cluster per test binary, shared by its tests; each test takes a fresh
//! empty database of its own:
//!
//! ```ignore
//! mod support;
//! use support::postgres::PgCluster;
//!
//! let db = PgCluster::shared().database();
//! // pec-proxy's store: url = db.url() (no password in it),
//! // password file = db.password_file().
//! db.psql("CREATE TABLE t (x int)").unwrap();
//! ```
//!
//! A test that stops and starts PostgreSQL (an outage) takes a cluster of
//! its own, [`PgCluster::private`], so the other tests of its binary do not
//! see the outage; it is stopped when dropped.
//!
//! Lifetime: the script's watchdog stops every cluster (and deletes its
//! directory) within about a second of this process's exit, so a shared
//! cluster kept in a `static` (never dropped) or a killed test leaves no
//! server behind. Stop/start of one cluster are serialised.
//!
//! Bounds: each script run is killed after [`SCRIPT_TIMEOUT`] (its own waits
//! are 30 s for start, 10 s + 10 s for stop); a start that fails because the
//! port was taken in the meantime is retried on another port, 3 times at most.

#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::BuildHasher;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// How long one run of `scripts/postgres.sh` may take before `timeout(1)`
/// kills it (start: initdb, then at most 30 s for the server).
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

/// The superuser the script creates; it owns every database.
pub const ROLE: &str = "pecproxy";

/// Attempts at starting a new cluster when the chosen port is taken between
/// our check and the server's bind.
const START_ATTEMPTS: usize = 3;

/// A running (or stopped, see [`PgCluster::stop`]) private cluster. The
/// server listens on `127.0.0.1:port()` only.
pub struct PgCluster {
    /// `DIR` of the script: data/, the unix socket, postgres.log, password.
    dir: tempfile::TempDir,
    port: u16,
    /// Serialises start/stop; true while the server runs.
    running: Mutex<bool>,
    /// Suffix of the next database's name.
    next_database: AtomicU64,
}

/// A fresh empty database of a cluster, owned by [`ROLE`]. Its data lives
/// as long as the cluster (nothing drops it).
#[derive(Clone, Debug)]
pub struct PgDatabase {
    name: String,
    port: u16,
    dir: PathBuf,
}

impl PgCluster {
    /// The cluster of this test binary, started on first use.
    pub fn shared() -> &'static PgCluster {
        static SHARED: OnceLock<PgCluster> = OnceLock::new();
        SHARED.get_or_init(PgCluster::private)
    }

    /// A new cluster for one test (e.g. one that stops and starts it),
    /// stopped and deleted when dropped. Panics with the script's output
    /// if it does not come up.
    pub fn private() -> PgCluster {
        let base = if Path::new("/tmp").is_dir() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        // Short: the unix socket DIR/.s.PGSQL.PORT must fit in 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("pecpg.")
            .tempdir_in(base)
            .expect("create a temporary directory for PostgreSQL");
        let mut failures = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let out = run_script(&start_args(dir.path(), port));
            if out.status.success() {
                let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
                assert_eq!(
                    url,
                    format!("postgres://{ROLE}@127.0.0.1:{port}/{ROLE}"),
                    "scripts/postgres.sh start printed an unexpected URL"
                );
                return PgCluster {
                    dir,
                    port,
                    running: Mutex::new(true),
                    next_database: AtomicU64::new(1),
                };
            }
            let report = describe_failure("start", &out);
            let port_taken = report.contains("Address already in use");
            failures.push_str(&report);
            if !port_taken {
                break;
            }
        }
        let _ = run_script(&["stop".into(), dir.path().into()]);
        panic!(
            "could not start a private PostgreSQL (needs Debian's `postgresql`: run \
             `sudo scripts/install-test-deps.sh`):\n{failures}"
        );
    }

    /// A fresh, empty database with a unique name, owned by [`ROLE`].
    /// Panics if the cluster is stopped.
    pub fn database(&self) -> PgDatabase {
        let n = self.next_database.fetch_add(1, Ordering::Relaxed);
        let name = format!("pecproxy_test_{n}");
        self.psql_socket(&[
            "-q",
            "-d",
            "postgres",
            "-c",
            &format!("CREATE DATABASE {name} OWNER {ROLE}"),
        ])
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        PgDatabase {
            name,
            port: self.port,
            dir: self.dir.path().to_path_buf(),
        }
    }

    /// Stops the server (`pg_ctl stop -m fast`); connections are refused
    /// until [`PgCluster::start`]. Idempotent. On a [`PgCluster::shared`]
    /// cluster this is an outage for every test of the binary.
    pub fn stop(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let out = run_script(&["stop".into(), self.dir.path().into()]);
        assert!(out.status.success(), "{}", describe_failure("stop", &out));
        *running = false;
    }

    /// Starts the same cluster again after [`PgCluster::stop`]: same port,
    /// same password, same data. Idempotent.
    pub fn start(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if *running {
            return;
        }
        let out = run_script(&start_args(self.dir.path(), self.port));
        assert!(out.status.success(), "{}", describe_failure("start", &out));
        *running = true;
    }

    /// Whether the server runs (as far as [`PgCluster::stop`]/[`PgCluster::start`] know).
    pub fn is_running(&self) -> bool {
        *self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The script's `DIR`: data/, the unix socket, postgres.log, password.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `postgres://pecproxy@127.0.0.1:PORT/pecproxy` (no password).
    pub fn url(&self) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{ROLE}", self.port)
    }

    /// The 0600 file holding [`ROLE`]'s password (one line).
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("password")
    }

    /// The server log.
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The postmaster's pid while the server runs (from data/postmaster.pid).
    pub fn postmaster_pid(&self) -> Option<u32> {
        fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Runs SQL as the superuser over the unix socket (`scripts/postgres.sh
    /// psql DIR -d DATABASE -At -c SQL`); `Ok(stdout)`, or `Err(stderr)`.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        self.psql_socket(&["-At", "-d", database, "-c", sql])
    }

    fn psql_socket(&self, args: &[&str]) -> Result<String, String> {
        let mut all: Vec<std::ffi::OsString> = vec!["psql".into(), self.dir.path().into()];
        all.extend(args.iter().map(Into::into));
        let out = run_script(&all);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let out = run_script(&["stop".into(), self.dir.path().into()]);
        if !out.status.success() {
            eprintln!("{}", describe_failure("stop", &out));
        }
    }
}

impl PgDatabase {
    /// `postgres://pecproxy@127.0.0.1:PORT/NAME`: what pec-proxy's store is
    /// configured with; the password is in [`PgDatabase::password_file`].
    pub fn url(&self) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{}", self.port, self.name)
    }

    /// The 0600 file holding [`ROLE`]'s password (one line, no secret in
    /// any URL or log).
    pub fn password_file(&self) -> PathBuf {
        self.dir.join("password")
    }

    /// The password itself (for clients that take it as a value).
    pub fn password(&self) -> String {
        fs::read_to_string(self.password_file())
            .expect("read the cluster's password file")
            .trim_end()
            .to_string()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cluster's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's `DIR`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs SQL in this database as a client does: psql over TCP to
    /// [`PgDatabase::url`], scram-sha-256 with the password file's password;
    /// unaligned tuples-only output. `Ok(stdout)`, or `Err(stderr)` (e.g.
    /// "Connection refused" while the cluster is stopped).
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        psql_tcp(&self.url(), &self.password(), sql)
    }
}

/// psql to `url` over TCP with `password`, as any client would; at most
/// [`SCRIPT_TIMEOUT`], a 10 s connect timeout.
pub fn psql_tcp(url: &str, password: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("timeout")
        .args([
            "-k",
            "5",
            &SCRIPT_TIMEOUT.as_secs().to_string(),
            "psql",
            "-X",
            "-At",
        ])
        .args(["-v", "ON_ERROR_STOP=1", "-c", sql, url])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGSSLMODE", "disable")
        .env_remove("PGPASSFILE")
        .env_remove("PGSERVICE")
        .stdin(Stdio::null())
        .output()
        .expect("run psql (Debian's postgresql-client)");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres.sh")
}

fn start_args(dir: &Path, port: u16) -> Vec<std::ffi::OsString> {
    vec![
        "start".into(),
        dir.into(),
        port.to_string().into(),
        "--owner-pid".into(),
        std::process::id().to_string().into(),
        "--rm-on-owner-exit".into(),
    ]
}

/// `timeout SCRIPT_TIMEOUT bash scripts/postgres.sh ARGS`. Pipes are safe:
/// the server and the watchdog write to files in DIR, never to our pipes.
fn run_script(args: &[std::ffi::OsString]) -> Output {
    Command::new("timeout")
        .args(["-k", "5", &SCRIPT_TIMEOUT.as_secs().to_string(), "bash"])
        .arg(script())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/postgres.sh")
}

fn describe_failure(what: &str, out: &Output) -> String {
    format!(
        "scripts/postgres.sh {what} failed ({}):\n{}{}\n",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A port on 127.0.0.1 that is free now, in 20000..32767 and below the
/// ephemeral range (so outgoing connections of the tests cannot take it).
fn free_port() -> u16 {
    let ephemeral_lo = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (lo, hi) = (20000u16, 32767u16.min(ephemeral_lo.saturating_sub(1)));
    let (lo, hi) = if hi > lo + 1000 { (lo, hi) } else { (10000, 19999) };
    let seed = RandomState::new();
    for attempt in 0u64..5000 {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let r = seed.hash_one((std::process::id(), attempt, nanos));
        let port = lo + (r % u64::from(hi - lo + 1)) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {lo}..={hi}");
}

/// Whether `pid` runs (not a zombie) with `needle` in its command line:
/// for checking that a server is gone without being fooled by pid reuse.
pub fn process_runs(pid: u32, needle: &str) -> io::Result<bool> {
    let stat = match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
    if matches!(state, Some(Some('Z' | 'X'))) {
        return Ok(false);
    }
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    Ok(String::from_utf8_lossy(&cmdline).contains(needle))
}
