//! The operator's side of a test: an account store in a temp dir, changed
//! with the real `pec-proxy` admin commands as a person would type them.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

pub struct Operator {
    pub dir: tempfile::TempDir,
}

impl Operator {
    pub fn new() -> Operator {
        Operator {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The SQLite account store the proxy and the commands share.
    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("accounts.db")
    }

    /// Runs `pec-proxy ARGS --store DB` with `stdin`; returns stdout, panics on failure.
    pub fn run(&self, args: &[&str], stdin: &str) -> String {
        let (ok, out, err) = self.try_run(args, stdin);
        assert!(ok, "pec-proxy {}: {err}", args.join(" "));
        out
    }

    /// Like [`Self::run`], returning (success, stdout, stderr).
    pub fn try_run(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pec-proxy"))
            .args(args)
            .arg("--store")
            .arg(self.store_path())
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
