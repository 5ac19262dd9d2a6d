//! The PostgreSQL harness itself (`tests/support/postgres.rs` over
//! `scripts/postgres.sh`), against real servers: databases are fresh and
//! separate, reached over TCP on 127.0.0.1 with scram-sha-256 and the
//! password file; a private cluster stops (connections refused) and starts
//! again with its data; no cluster outlives the process that started it.

// Real servers, real time: std's Instant is the right clock here.
#![allow(clippy::disallowed_types)]

mod support;

use std::fs;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::postgres::{PgCluster, process_runs, psql_tcp};

/// Set in the child process of `a_cluster_does_not_outlive_its_test_process`.
const CHILD_ENV: &str = "PEC_PG_HARNESS_CHILD";

/// The watchdog polls every 0.5 s and a fast stop takes ~0.1 s; 15 s is the
/// margin for a loaded machine.
const GONE_WITHIN: Duration = Duration::from_secs(15);

#[test]
fn databases_are_fresh_separate_and_reached_over_tcp_with_scram() {
    let cluster = PgCluster::shared();
    let (a, b) = (cluster.database(), cluster.database());
    assert_ne!(a.name(), b.name());
    let url = format!("postgres://pecproxy@127.0.0.1:{}/{}", cluster.port(), a.name());
    assert_eq!(a.url(), url);

    // The password is random, in a 0600 file, and not in the URL.
    let password = a.password();
    assert!(
        password.len() >= 24,
        "password too short: {} chars",
        password.len()
    );
    assert!(!a.url().contains(&password));
    let mode = fs::metadata(a.password_file()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "password file mode {mode:o}");

    // Fresh: nothing in it.
    let tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'";
    assert_eq!(a.psql(tables).unwrap().trim(), "0");

    // Over TCP, to 127.0.0.1, with the password: one table in a...
    a.psql(
        "CREATE TABLE accounts (mailbox text PRIMARY KEY); INSERT INTO accounts VALUES ('alice@pec.example')",
    )
    .unwrap();
    let row = a
        .psql("SELECT mailbox, inet_server_addr(), current_user FROM accounts")
        .unwrap();
    assert_eq!(row.trim(), "alice@pec.example|127.0.0.1|pecproxy");
    // ...and not in b.
    let err = b.psql("SELECT mailbox FROM accounts").unwrap_err();
    assert!(err.contains(r#"relation "accounts" does not exist"#), "{err}");
    assert_eq!(b.psql(tables).unwrap().trim(), "0");

    // The password is checked (scram-sha-256: the only TCP method, and the
    // stored verifier is a SCRAM one).
    let err = psql_tcp(&url, "not-the-password", "SELECT 1").unwrap_err();
    assert!(
        err.contains(r#"password authentication failed for user "pecproxy""#),
        "{err}"
    );
    let err = psql_tcp(&url, "", "SELECT 1").unwrap_err();
    assert!(err.contains("password"), "{err}");
    let rules = a
        .psql(
            "SELECT type, address, auth_method FROM pg_hba_file_rules WHERE type <> 'local' ORDER BY address",
        )
        .unwrap();
    assert_eq!(rules, "host|127.0.0.1|scram-sha-256\nhost|::1|scram-sha-256\n");
    let verifier = a
        .psql("SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = 'pecproxy'")
        .unwrap();
    assert_eq!(verifier.trim(), "SCRAM-SHA-256$");

    // Listening on 127.0.0.1 only: another loopback address is refused.
    let err = TcpStream::connect(("127.0.0.2", cluster.port())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn a_private_cluster_stops_refuses_connections_and_restarts_with_its_data() {
    let cluster = PgCluster::private();
    let shared_port = PgCluster::shared().port();
    assert_ne!(cluster.port(), shared_port);
    let db = cluster.database();
    db.psql("CREATE TABLE logins (n int); INSERT INTO logins VALUES (42)")
        .unwrap();
    let first_pid = cluster.postmaster_pid().expect("postmaster.pid while running");
    let dir = cluster.dir().to_string_lossy().into_owned();
    assert!(process_runs(first_pid, &dir).unwrap());

    cluster.stop();
    assert!(
        !process_runs(first_pid, &dir).unwrap(),
        "postmaster {first_pid} still runs"
    );
    let err = TcpStream::connect(("127.0.0.1", cluster.port())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    let err = db.psql("SELECT n FROM logins").unwrap_err();
    assert!(err.contains("Connection refused"), "{err}");
    // The other clusters of the binary are not affected.
    PgCluster::shared().database().psql("SELECT 1").unwrap();

    cluster.start();
    assert_eq!(db.psql("SELECT n FROM logins").unwrap().trim(), "42");
    let second_pid = cluster.postmaster_pid().expect("postmaster.pid while running");
    assert_ne!(first_pid, second_pid, "not a new server");

    // Dropping it stops the server and deletes its directory.
    drop(cluster);
    assert!(
        !process_runs(second_pid, &dir).unwrap(),
        "postmaster {second_pid} outlived drop"
    );
    assert!(!std::path::Path::new(&dir).exists(), "{dir} outlived drop");
}

/// Runs `child_holds_the_shared_cluster` in a child process, which starts
/// the shared cluster and exits without stopping it (statics are never
/// dropped); the script's watchdog must stop the server and delete its
/// directory.
#[test]
fn a_cluster_does_not_outlive_its_test_process() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_the_shared_cluster",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("PEC_PG_CHILD ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no PEC_PG_CHILD line from the child: {stdout}"));
    let (dir, pid) = line.split_once(' ').unwrap();
    let pid: u32 = pid.parse().unwrap();

    let start = Instant::now();
    while process_runs(pid, dir).unwrap() || std::path::Path::new(dir).exists() {
        assert!(
            start.elapsed() < GONE_WITHIN,
            "postmaster {pid} or {dir} still there {GONE_WITHIN:?} after its test process exited"
        );
        thread::sleep(Duration::from_millis(50));
    }
    eprintln!("cluster gone {:?} after its test process exited", start.elapsed());
}

#[test]
#[ignore = "the child process of a_cluster_does_not_outlive_its_test_process"]
fn child_holds_the_shared_cluster() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let cluster = PgCluster::shared();
    cluster.database().psql("SELECT 1").unwrap();
    let pid = cluster.postmaster_pid().unwrap();
    println!("PEC_PG_CHILD {} {pid}", cluster.dir().display());
}
