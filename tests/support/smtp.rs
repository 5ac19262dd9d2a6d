//! SMTP test helpers: a proxy configured for submission in front of the
//! private Postfix (XCLIENT), and Python's smtplib as a real client.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::operator::Operator;
use super::proxy::Proxy;
use super::upstreams::Upstreams;

/// `smtps` (implicit TLS) and `submission` (STARTTLS) listeners, the account
/// store of `op`, `up`'s Postfix behind with XCLIENT over STARTTLS; `extra`
/// is appended (e.g. a `[pec_checks]` table).
pub async fn proxy(up: &Upstreams, op: &Operator, extra: &str) -> Proxy {
    let store = op.store_toml();
    start(up, &store, "xclient", extra).await
}

/// Like [`proxy`] without an account store: every login is passed through
/// (`AUTH PLAIN` with the client's own credentials, checked by Postfix
/// through Dovecot SASL), so no password hashing runs in the proxy.
pub async fn pass_through_proxy(up: &Upstreams, extra: &str) -> Proxy {
    start(up, "", "pass-through", extra).await
}

async fn start(up: &Upstreams, store: &str, login: &str, extra: &str) -> Proxy {
    let config = format!(
        r#"
[[certificate]]
cert = "certs/server.pem"
key = "certs/server-key.pem"
server_names = ["localhost"]

[[listener]]
name = "smtps"
protocol = "smtp"
address = "127.0.0.1:0"
tls = "implicit"

[[listener]]
name = "submission"
protocol = "smtp"
address = "127.0.0.1:0"
tls = "starttls"

[metrics]

[smtp]
hostname = "proxy.pec.example"

{store}

[upstream.smtp]
address = "127.0.0.1:{}"
tls = "starttls"
ca = "certs/ca.pem"
server_name = "localhost"
login = "{login}"
{extra}
"#,
        up.submission_port,
    );
    Proxy::start(&config).await
}

/// The outcome of a Python smtplib run: its exit status and output.
pub struct PyRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

const SUBMIT: &str = r#"
import smtplib, ssl, sys
port, mode, mech, user, pw, sender, rcpt, path, ca = sys.argv[1:]
ctx = ssl.create_default_context(cafile=ca)
if mode == "ssl":
    s = smtplib.SMTP_SSL("localhost", int(port), context=ctx, timeout=120)
else:
    s = smtplib.SMTP("localhost", int(port), timeout=120)
    s.starttls(context=ctx)
s.ehlo("client.example")
s.user, s.password = user, pw
s.auth(mech, getattr(s, "auth_" + mech.lower()), initial_response_ok=(mech == "PLAIN"))
s.sendmail(sender, [rcpt], open(path, "rb").read())
s.quit()
print("sent")
"#;

/// Submits the message in `path` with smtplib: `mode` "ssl" or "starttls",
/// `mech` "PLAIN" (with initial response) or "LOGIN".
#[allow(clippy::too_many_arguments)]
pub async fn submit(
    port: u16,
    mode: &str,
    mech: &str,
    user: &str,
    password: &str,
    sender: &str,
    rcpt: &str,
    path: &Path,
) -> PyRun {
    let ca = super::proxy::repo().join("certs/ca.pem");
    let child = tokio::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(SUBMIT)
        .args([&port.to_string(), mode, mech, user, password, sender, rcpt])
        .arg(path)
        .arg(ca)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 (apt-get install python3)");
    let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("smtplib finished in time")
        .expect("python3 ran");
    PyRun {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Waits for the message holding `token` in `address`'s INBOX at `up`;
/// returns its bytes.
pub async fn find_message(up: &Upstreams, address: &str, token: &str) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        for f in up.message_files(address) {
            if let Ok(bytes) = std::fs::read(&f) {
                if bytes.windows(token.len()).any(|w| w == token.as_bytes()) {
                    return bytes;
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no message with {token} for {address}\n{}",
            up.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The body of a stored message (after the first empty line), line ends
/// made CRLF again (Dovecot stores LF).
pub fn body_of(stored: &[u8]) -> Vec<u8> {
    let text = stored.to_vec();
    let start = text
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|p| p + 2)
        .or_else(|| text.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4))
        .expect("a header/body separator");
    let mut out = Vec::with_capacity(text.len());
    for &b in &text[start..] {
        if b == b'\n' && out.last() != Some(&b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}
