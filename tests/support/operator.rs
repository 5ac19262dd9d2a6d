//! The operator's side of a test: an account store, changed with the real
//! `pec-proxy` admin commands as a person would type them.
//!
//! The store is a SQLite file in a temp dir, or, when the environment says
//! `PEC_PROXY_TEST_STORE=postgres`, a fresh database of its own on the test
//! binary's private PostgreSQL cluster ([`super::postgres`]), with its
//! schema made by `pec-proxy store migrate`. Tests write the proxy's
//! `[store]` with [`Operator::store_toml`], so the same test runs against
//! either backend (`scripts/test.sh` runs the store's tests both ways).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::postgres::{PgCluster, PgDatabase};

pub struct Operator {
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database, when the store is one.
    pub pg: Option<PgDatabase>,
}

/// Which backend the environment asks for.
pub fn postgres_requested() -> bool {
    std::env::var("PEC_PROXY_TEST_STORE").is_ok_and(|v| v == "postgres")
}

impl Operator {
    /// A store of the backend the environment asks for (SQLite by default).
    pub fn new() -> Operator {
        if postgres_requested() {
            Self::postgres()
        } else {
            Self::sqlite()
        }
    }

    pub fn sqlite() -> Operator {
        Operator {
            dir: tempfile::tempdir().expect("tempdir"),
            pg: None,
        }
    }

    /// A fresh database on the binary's shared cluster, migrated.
    pub fn postgres() -> Operator {
        Self::postgres_on(PgCluster::shared())
    }

    /// A fresh database on `cluster`, migrated.
    pub fn postgres_on(cluster: &PgCluster) -> Operator {
        let op = Operator {
            dir: tempfile::tempdir().expect("tempdir"),
            pg: Some(cluster.database()),
        };
        op.run(&["store", "migrate"], "");
        op
    }

    /// The SQLite account store the proxy and the commands share (unused
    /// with PostgreSQL).
    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("accounts.db")
    }

    /// What `--store` names: the SQLite file or the PostgreSQL URL.
    pub fn store_arg(&self) -> String {
        match &self.pg {
            Some(db) => db.url(),
            None => self.store_path().display().to_string(),
        }
    }

    /// The control socket of a proxy using this store.
    pub fn control_socket(&self) -> PathBuf {
        // Where a SQLite store's proxy puts it by default.
        self.store_path().with_extension("sessions.sock")
    }

    /// The proxy's `[store]` table for this store (with a blank line after).
    pub fn store_toml(&self) -> String {
        match &self.pg {
            None => format!("[store]\npath = {:?}\n\n", self.store_path()),
            Some(db) => format!(
                "[store]\nurl = {:?}\npassword_file = {:?}\nsslmode = \"disable\"\n\
                 fleet_key_file = {:?}\ncontrol_socket = {:?}\n\n",
                db.url(),
                db.password_file(),
                self.fleet_key_file(),
                self.control_socket(),
            ),
        }
    }

    /// Opens the store in this process, as another writer of its tables.
    pub async fn open_store(&self) -> pec_proxy::testing::store::Opened {
        use pec_proxy::testing::config::{PostgresConfig, SslMode, StoreBackend};
        use pec_proxy::testing::store::{Opened, Schema};
        let backend = match &self.pg {
            None => StoreBackend::Sqlite(self.store_path()),
            Some(db) => StoreBackend::Postgres(PostgresConfig {
                url: db.url(),
                password: Some(pec_proxy::testing::secret::Secret::new(
                    db.password().into_bytes(),
                )),
                sslmode: Some(SslMode::Disable),
                ca: None,
                max_connections: 2,
                acquire_timeout: std::time::Duration::from_secs(5),
                statement_timeout: std::time::Duration::from_secs(5),
            }),
        };
        Opened::open(&backend, Schema::MustBeCurrent)
            .await
            .expect("open the store")
    }

    /// The key the nodes of this store's fleet share.
    pub fn fleet_key_file(&self) -> PathBuf {
        let path = self.dir.path().join("fleet.key");
        if !path.exists() {
            std::fs::write(
                &path,
                "6f1a0c5e9b7d4e2a8c3f5b1d7e9a2c4f6b8d0e1a3c5e7f9b1d3f5a7c9e1b3d5f\n",
            )
            .unwrap();
        }
        path
    }

    /// Runs `pec-proxy ARGS --store DB` with `stdin`; returns stdout, panics on failure.
    pub fn run(&self, args: &[&str], stdin: &str) -> String {
        let (ok, out, err) = self.try_run(args, stdin);
        assert!(ok, "pec-proxy {}: {err}", args.join(" "));
        out
    }

    /// Like [`Self::run`], returning (success, stdout, stderr).
    pub fn try_run(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pec-proxy"));
        command
            .args(args)
            .arg("--store")
            .arg(self.store_arg())
            .arg("--control-socket")
            .arg(self.control_socket());
        if let Some(db) = &self.pg {
            command.env("PGPASSWORD", db.password());
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run pec-proxy");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `mailbox add ADDRESS --password-stdin`.
    pub fn add_mailbox(&self, address: &str, password: &str) {
        self.run(
            &["mailbox", "add", address, "--password-stdin"],
            &format!("{password}\n"),
        );
    }

    /// `app-password create ...`; returns (id, the password as printed once).
    pub fn create_app_password(&self, address: &str, extra: &[&str]) -> (i64, String) {
        let mut args = vec![
            "app-password",
            "create",
            address,
            "--label",
            "test device",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = self.run(&args, "");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
        (
            v["id"].as_i64().expect("id"),
            v["password"].as_str().expect("password").to_owned(),
        )
    }

    /// The mailbox's access log, newest first, as JSON rows.
    pub fn access_log(&self, address: &str) -> Vec<serde_json::Value> {
        let out = self.run(&["access-log", address, "--json", "--limit", "100"], "");
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// A file holding `secret`, for `master_password_file`.
    pub fn secret_file(&self, name: &str, secret: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("{secret}\n")).unwrap();
        path
    }
}
