//! A private, real Dovecot + Postfix pair for integration tests, started with
//! `scripts/upstreams.sh` in a fresh temporary directory (see that script for
//! the full picture: ports, users, master user, how mail flows).
//!
//! ```ignore
//! mod support;
//! use support::upstreams::Upstreams;
//!
//! let up = Upstreams::start();
//! up.deliver("bob@pec.example", b"Subject: hi\r\n\r\nhello\r\n");
//! assert_eq!(up.message_files("bob@pec.example").len(), 1);
//! ```
//!
//! Seeded users (passwords in [`USERS`]): alice, bob, shared, carol at
//! `pec.example`; alice's INBOX starts with 2 messages, shared's with 1. The
//! master user is `proxy-master` (`mailbox*proxy-master`, or SASL PLAIN with
//! authzid = mailbox). Everything listens on 127.0.0.1.
//!
//! The daemons stop when the value is dropped; a watchdog started by the
//! script also stops them (and deletes the directory) when this process
//! exits, so a killed test or an instance kept in a `static` leaves nothing
//! behind. Needs root and the packages of `scripts/install-test-deps.sh`.
//!
//! A test module keeps its own instance in a `static`, started on first use:
//! its tests share it (each with mailboxes of its own where it writes), and
//! no other module's tests see its mailboxes or its Dovecot log, also when
//! several modules share one test binary.
//!
//! ```ignore
//! fn upstreams() -> &'static Upstreams {
//!     static UPSTREAMS: OnceLock<Upstreams> = OnceLock::new();
//!     UPSTREAMS.get_or_init(Upstreams::start)
//! }
//! ```

#![allow(dead_code)]
// Real daemons, real time: std's Instant is the right clock here (a paused
// tokio clock must not stretch these deadlines).
#![allow(clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The seeded mailboxes and their passwords.
pub const USERS: &[(&str, &str)] = &[
    ("alice@pec.example", "alice-secret"),
    ("bob@pec.example", "bob-secret"),
    ("shared@pec.example", "shared-secret"),
    ("carol@pec.example", "carol-secret"),
];

/// How long `start` may take before we give up (the script itself waits at
/// most 20 s for the ports).
const START_TIMEOUT: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A running private Dovecot + Postfix. All ports are on 127.0.0.1.
pub struct Upstreams {
    /// Dovecot IMAP, plain with STARTTLS.
    pub imap_port: u16,
    /// Dovecot IMAP, implicit TLS (certs/upstream.pem).
    pub imaps_port: u16,
    /// Dovecot IMAP with STARTTLS behind a PROXY protocol header
    /// (`haproxy = yes`, from loopback).
    pub imap_haproxy_port: u16,
    /// Dovecot POP3, plain with STLS.
    pub pop3_port: u16,
    /// Dovecot POP3, implicit TLS.
    pub pop3s_port: u16,
    /// Dovecot LMTP over TCP, for delivering test mail.
    pub lmtp_port: u16,
    /// Postfix smtpd: plain, STARTTLS offered, AUTH via Dovecot SASL,
    /// XCLIENT allowed from 127.0.0.0/8; recipients only when authenticated.
    pub submission_port: u16,
    /// Dovecot submission: AUTH PLAIN/LOGIN (master user / authzid allowed),
    /// relays to Postfix's `submission_port` with XCLIENT LOGIN.
    pub dovecot_submission_port: u16,
    /// `proxy-master`.
    pub master_user: String,
    pub master_password: String,
    /// The INBOX of `local@domain` is `maildir_root/<domain>/<local>/Maildir`.
    pub maildir_root: PathBuf,
    /// Dovecot's passwd-file (`address:{PLAIN}password::::::`).
    pub users_file: PathBuf,
    pub dovecot_log: PathBuf,
    pub postfix_log: PathBuf,
    /// The test CA that signed the upstream certificate (certs/ca.pem).
    pub ca_cert: PathBuf,
    /// Every KEY=VALUE line printed by `scripts/upstreams.sh start`.
    pub env: BTreeMap<String, String>,
    /// Where configs, queues, mailboxes and logs live.
    pub dir: tempfile::TempDir,
    stopped: bool,
}

impl Upstreams {
    /// Starts a fresh private instance; panics (with the script's output) if
    /// the packages are missing or the daemons do not come up.
    pub fn start() -> Upstreams {
        check_deps();
        let base = if Path::new("/tmp").is_dir() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("pecup.")
            .tempdir_in(base)
            .expect("create a temporary directory for the upstreams");
        let out_path = dir.path().join("start.stdout");
        let err_path = dir.path().join("start.stderr");
        // Files, not pipes: the daemons must not be able to hold our reads open.
        let out = fs::File::create(&out_path).expect("create start.stdout");
        let err = fs::File::create(&err_path).expect("create start.stderr");
        let mut child = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir.path())
            .arg("--owner-pid")
            .arg(std::process::id().to_string())
            .arg("--rm-on-owner-exit")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("run scripts/upstreams.sh start");
        let deadline = Instant::now() + START_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for upstreams.sh") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let _ = run_stop(dir.path());
                panic!(
                    "scripts/upstreams.sh start did not finish within {START_TIMEOUT:?}:\n{}",
                    fs::read_to_string(&err_path).unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        let stdout = fs::read_to_string(&out_path).unwrap_or_default();
        let stderr = fs::read_to_string(&err_path).unwrap_or_default();
        if !status.success() {
            let _ = run_stop(dir.path());
            panic!("scripts/upstreams.sh start failed ({status}):\n{stderr}");
        }
        let env: BTreeMap<String, String> = stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let get = |k: &str| -> String {
            env.get(k)
                .cloned()
                .unwrap_or_else(|| panic!("upstreams.sh start printed no {k}:\n{stdout}\n{stderr}"))
        };
        let port = |k: &str| -> u16 {
            get(k)
                .parse()
                .unwrap_or_else(|_| panic!("upstreams.sh: {k} is not a port"))
        };
        Upstreams {
            imap_port: port("IMAP_PORT"),
            imaps_port: port("IMAPS_PORT"),
            imap_haproxy_port: port("IMAP_HAPROXY_PORT"),
            pop3_port: port("POP3_PORT"),
            pop3s_port: port("POP3S_PORT"),
            lmtp_port: port("LMTP_PORT"),
            submission_port: port("SUBMISSION_PORT"),
            dovecot_submission_port: port("DOVECOT_SUBMISSION_PORT"),
            master_user: get("MASTER_USER"),
            master_password: get("MASTER_PASSWORD"),
            maildir_root: PathBuf::from(get("MAILDIR_ROOT")),
            users_file: PathBuf::from(get("USERS_FILE")),
            dovecot_log: PathBuf::from(get("DOVECOT_LOG")),
            postfix_log: PathBuf::from(get("POSTFIX_LOG")),
            ca_cert: PathBuf::from(get("CA_CERT")),
            env,
            dir,
            stopped: false,
        }
    }

    /// `127.0.0.1:port`.
    pub fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// The repository root (where certs/ and scripts/ are).
    pub fn repo_root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// The password of a seeded user, if `address` is one.
    pub fn password_of(address: &str) -> Option<&'static str> {
        USERS
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(address))
            .map(|(_, p)| *p)
    }

    /// Adds (or replaces) a Dovecot user; usable at once over IMAP/POP3/LMTP.
    /// A new domain is also added to Postfix's virtual domains (reload).
    pub fn add_user(&self, address: &str, password: &str) {
        let out = Command::new("bash")
            .arg(script())
            .arg("add-user")
            .arg(self.dir.path())
            .arg(address)
            .arg(password)
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/upstreams.sh add-user");
        assert!(
            out.status.success(),
            "upstreams.sh add-user {address} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Delivers `message` to `rcpt`'s INBOX over LMTP (sender
    /// `harness@pec.example`); panics on any refusal.
    pub fn deliver(&self, rcpt: &str, message: &[u8]) {
        self.deliver_from("harness@pec.example", rcpt, message)
            .unwrap_or_else(|e| panic!("LMTP delivery to {rcpt} failed: {e}"));
    }

    /// LMTP delivery with an explicit envelope sender; `Err` carries the
    /// server's reply on refusal. Line endings become CRLF, dots are stuffed.
    pub fn deliver_from(&self, from: &str, rcpt: &str, message: &[u8]) -> io::Result<()> {
        let stream = TcpStream::connect_timeout(&Self::addr(self.lmtp_port), IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut w = stream.try_clone()?;
        let mut r = BufReader::new(stream);
        expect_reply(&mut r, 220, "greeting")?;
        w.write_all(b"LHLO harness.pec.example\r\n")?;
        expect_reply(&mut r, 250, "LHLO")?;
        w.write_all(format!("MAIL FROM:<{from}>\r\n").as_bytes())?;
        expect_reply(&mut r, 250, "MAIL FROM")?;
        w.write_all(format!("RCPT TO:<{rcpt}>\r\n").as_bytes())?;
        expect_reply(&mut r, 250, "RCPT TO")?;
        w.write_all(b"DATA\r\n")?;
        expect_reply(&mut r, 354, "DATA")?;
        w.write_all(&dot_stuff(message))?;
        w.write_all(b".\r\n")?;
        // LMTP: one reply per accepted recipient (we have one).
        expect_reply(&mut r, 250, "end of DATA")?;
        w.write_all(b"QUIT\r\n")?;
        let _ = read_reply(&mut r);
        Ok(())
    }

    /// The INBOX maildir of `address` (may not exist before its first mail).
    pub fn maildir(&self, address: &str) -> PathBuf {
        let address = address.to_ascii_lowercase();
        let (local, domain) = address
            .split_once('@')
            .unwrap_or_else(|| panic!("not an address: {address}"));
        self.maildir_root.join(domain).join(local).join("Maildir")
    }

    /// The message files of `address`'s INBOX (cur/ and new/), sorted.
    pub fn message_files(&self, address: &str) -> Vec<PathBuf> {
        let root = self.maildir(address);
        let mut files = Vec::new();
        for sub in ["cur", "new"] {
            if let Ok(entries) = fs::read_dir(root.join(sub)) {
                files.extend(
                    entries
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.is_file()),
                );
            }
        }
        files.sort();
        files
    }

    /// Waits until `address`'s INBOX holds at least `count` messages (mail
    /// through Postfix arrives asynchronously); panics with the logs' tails
    /// after `timeout`.
    pub fn wait_for_messages(&self, address: &str, count: usize, timeout: Duration) -> Vec<PathBuf> {
        let deadline = Instant::now() + timeout;
        loop {
            let files = self.message_files(address);
            if files.len() >= count {
                return files;
            }
            if Instant::now() > deadline {
                panic!(
                    "{address} has {} messages, expected {count} within {timeout:?}\n{}",
                    files.len(),
                    self.log_tail(30)
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `lines` lines of the Dovecot and Postfix logs, for failure
    /// messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for (name, path) in [("dovecot", &self.dovecot_log), ("postfix", &self.postfix_log)] {
            let text = fs::read_to_string(path).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let from = all.len().saturating_sub(lines);
            out.push_str(&format!("---- {name} log ({})\n", path.display()));
            for l in &all[from..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Stops both daemons now (also done on drop); idempotent.
    pub fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            if let Err(e) = run_stop(self.dir.path()) {
                eprintln!("upstreams: stop failed: {e}");
            }
        }
    }
}

impl Drop for Upstreams {
    fn drop(&mut self) {
        self.stop();
    }
}

fn script() -> PathBuf {
    Upstreams::repo_root().join("scripts/upstreams.sh")
}

fn run_stop(dir: &Path) -> io::Result<()> {
    let out = Command::new("bash")
        .arg(script())
        .arg("stop")
        .arg(dir)
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

/// Runs `scripts/install-test-deps.sh --check` (never installs anything) and
/// panics with instructions when Dovecot/Postfix are missing.
fn check_deps() {
    let out = Command::new("bash")
        .arg(Upstreams::repo_root().join("scripts/install-test-deps.sh"))
        .arg("--check")
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/install-test-deps.sh --check");
    if !out.status.success() {
        panic!(
            "the integration tests need real Dovecot and Postfix: run `sudo scripts/install-test-deps.sh` \
             (Debian packages), then retry.\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The script starts daemons that drop privileges themselves: root only.
    let uid = Command::new("id").arg("-u").output().ok();
    let is_root = uid.is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    assert!(
        is_root,
        "the integration tests start Dovecot and Postfix, which needs root"
    );
}

/// Reads one (possibly multi-line) SMTP/LMTP reply: (code, text).
fn read_reply(r: &mut impl BufRead) -> io::Result<(u16, String)> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "LMTP server closed the connection",
            ));
        }
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad LMTP reply {line:?}")))?;
        text.push_str(line.trim_end());
        text.push('\n');
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, text));
        }
    }
}

fn expect_reply(r: &mut impl BufRead, want: u16, what: &str) -> io::Result<()> {
    let (code, text) = read_reply(r)?;
    if code == want {
        Ok(())
    } else {
        Err(io::Error::other(format!("LMTP {what}: {}", text.trim_end())))
    }
}

/// CRLF line endings, leading dots doubled, ending with CRLF (not the final dot).
fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let body = message.strip_suffix(b"\n").unwrap_or(message);
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}
