//! POP3 through pec-proxy, end to end, against a real Dovecot started by
//! `scripts/upstreams.sh`: our raw client over POP3S and POP3+STLS, and
//! real clients (Python's poplib, curl). Each test that reads or deletes
//! mail uses a mailbox of its own, so tests can run in parallel.

use std::sync::OnceLock;
use std::time::Duration;

use crate::support::client::{Client, ca_file};
use crate::support::operator::Operator;
use crate::support::proxy::Proxy;
use crate::support::upstreams::Upstreams;

/// This module's own Dovecot + Postfix, started on first use; the script's
/// watchdog stops it when the process exits.
fn upstreams() -> &'static Upstreams {
    static UPSTREAMS: OnceLock<Upstreams> = OnceLock::new();
    UPSTREAMS.get_or_init(Upstreams::start)
}

/// Certificates and the two POP3 listeners: `pop3s` (implicit TLS) and
/// `pop3` (STLS).
fn pop3_listeners() -> String {
    r#"
[[certificate]]
cert = "certs/server.pem"
key = "certs/server-key.pem"
server_names = ["localhost"]
default = true

[[listener]]
name = "pop3s"
protocol = "pop3"
address = "127.0.0.1:0"
tls = "implicit"

[[listener]]
name = "pop3"
protocol = "pop3"
address = "127.0.0.1:0"
tls = "starttls"
"#
    .to_owned()
}

/// A proxy logging in with the client's own credentials, upstream over
/// STLS (verified against the test CA) or implicit TLS.
async fn pass_through_proxy(upstream_tls: &str) -> Proxy {
    pass_through_proxy_with(upstream_tls, "").await
}

/// [`pass_through_proxy`] with `extra` configuration appended.
async fn pass_through_proxy_with(upstream_tls: &str, extra: &str) -> Proxy {
    let up = upstreams();
    let port = if upstream_tls == "implicit" {
        up.pop3s_port
    } else {
        up.pop3_port
    };
    Proxy::start(&format!(
        "{}\n[upstream.pop3]\naddress = \"127.0.0.1:{port}\"\ntls = \"{upstream_tls}\"\n\
         ca = \"certs/ca.pem\"\nserver_name = \"localhost\"\nlogin = \"pass-through\"\n{extra}",
        pop3_listeners()
    ))
    .await
}

/// A proxy with an account store, logging in upstream as the mailbox with
/// Dovecot's master user (or SASL PLAIN authzid).
async fn store_proxy(op: &Operator, login: &str) -> Proxy {
    let up = upstreams();
    let master = op.secret_file("master-password", &up.master_password);
    Proxy::start(&format!(
        "{}\n{}[upstream.pop3]\naddress = \"127.0.0.1:{}\"\ntls = \"starttls\"\n\
         ca = \"certs/ca.pem\"\nserver_name = \"localhost\"\nlogin = \"{login}\"\nmaster_user = \"{}\"\n\
         master_password_file = {:?}\n",
        pop3_listeners(),
        op.store_toml(),
        up.pop3_port,
        up.master_user,
        master,
    ))
    .await
}

/// A Dovecot mailbox of the test's own with `count` small messages.
fn fresh_mailbox(name: &str, count: usize) -> (String, String) {
    let up = upstreams();
    let address = format!("{name}@pop3.example");
    let password = format!("{name}-dovecot-pw");
    up.add_user(&address, &password);
    for i in 1..=count {
        up.deliver(
            &address,
            format!("From: harness@pec.example\r\nSubject: message {i}\r\n\r\nbody {i}\r\n").as_bytes(),
        );
    }
    up.wait_for_messages(&address, count, Duration::from_secs(10));
    (address, password)
}

/// The maildir's unique names of `address`'s messages, wherever they are
/// (new/ or cur/) and whatever their flags.
fn message_ids(address: &str) -> Vec<String> {
    let mut ids: Vec<String> = upstreams()
        .message_files(address)
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .split(':')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    ids.sort();
    ids
}

/// Connects to `listener` and returns a client past the greeting, under TLS.
async fn connect(proxy: &Proxy, listener: &str) -> Client {
    match listener {
        "pop3s" => {
            let mut c = Client::tls(proxy.addr("pop3s")).await;
            assert_eq!(c.line().await, "+OK PEC mail proxy ready.");
            c
        }
        "pop3" => {
            let mut c = Client::plain(proxy.addr("pop3")).await;
            assert_eq!(c.line().await, "+OK PEC mail proxy ready.");
            assert_eq!(cmd(&mut c, "STLS").await, "+OK Begin TLS negotiation now");
            c.upgrade().await;
            c
        }
        other => panic!("no listener {other}"),
    }
}

/// Sends a command and returns its one-line reply.
async fn cmd(c: &mut Client, command: &str) -> String {
    c.send(format!("{command}\r\n")).await;
    c.line().await
}

/// Reads a multi-line answer's lines after the status, up to the lone `.`,
/// with byte-stuffing undone.
async fn body(c: &mut Client) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let line = c.line().await;
        if line == "." {
            return lines;
        }
        lines.push(line.strip_prefix('.').map(str::to_owned).unwrap_or(line));
    }
}

async fn user_pass(c: &mut Client, user: &str, password: &str) -> String {
    assert_eq!(cmd(c, &format!("USER {user}")).await, "+OK");
    cmd(c, &format!("PASS {password}")).await
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// `STAT`'s message count.
async fn stat_count(c: &mut Client) -> usize {
    let stat = cmd(c, "STAT").await;
    let mut words = stat.split(' ');
    assert_eq!(words.next(), Some("+OK"), "{stat}");
    words.next().unwrap().parse().unwrap()
}

/// How many messages Dovecot's IMAP sees in `address`'s INBOX (our test
/// client straight to Dovecot over STARTTLS, not through the proxy).
async fn imap_exists(address: &str, password: &str) -> usize {
    let up = upstreams();
    let mut c = Client::plain(Upstreams::addr(up.imap_port)).await;
    c.line().await;
    assert!(c.command("s", "STARTTLS").await.starts_with("s OK"));
    c.upgrade().await;
    let login = c.command("l", &format!("LOGIN {address:?} {password:?}")).await;
    assert!(login.starts_with("l OK"), "{login}");
    c.send("x SELECT INBOX\r\n").await;
    let lines = c.until_tagged("x").await;
    c.send("z LOGOUT\r\n").await;
    lines
        .iter()
        .find_map(|l| l.strip_prefix("* ").and_then(|l| l.strip_suffix(" EXISTS")))
        .expect("EXISTS")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn every_login_form_works_over_pop3s_and_stls() {
    let (user, pw) = fresh_mailbox("forms", 2);
    let proxy = pass_through_proxy("starttls").await;
    let plain = b64(&format!("\0{user}\0{pw}"));
    let (u64_, p64) = (b64(&user), b64(&pw));
    // (form, lines sent, replies expected before the last line's +OK)
    let forms: Vec<(&str, Vec<String>, Vec<&str>)> = vec![
        (
            "USER/PASS",
            vec![format!("USER {user}"), format!("PASS {pw}")],
            vec!["+OK"],
        ),
        (
            "AUTH PLAIN with initial response",
            vec![format!("AUTH PLAIN {plain}")],
            vec![],
        ),
        ("AUTH PLAIN", vec!["AUTH PLAIN".into(), plain.clone()], vec!["+ "]),
        (
            "AUTH LOGIN with initial response",
            vec![format!("AUTH LOGIN {u64_}"), p64.clone()],
            vec!["+ UGFzc3dvcmQ6"],
        ),
        (
            "AUTH LOGIN",
            vec!["AUTH LOGIN".into(), u64_.clone(), p64.clone()],
            vec!["+ VXNlcm5hbWU6", "+ UGFzc3dvcmQ6"],
        ),
    ];
    for listener in ["pop3s", "pop3"] {
        for (form, lines, intermediate) in &forms {
            let mut c = connect(&proxy, listener).await;
            let (last, first) = lines.split_last().unwrap();
            for (line, expected) in first.iter().zip(intermediate) {
                assert_eq!(cmd(&mut c, line).await, *expected, "{listener}/{form}");
            }
            assert_eq!(cmd(&mut c, last).await, "+OK Logged in.", "{listener}/{form}");
            assert_eq!(stat_count(&mut c).await, 2, "{listener}/{form}");
            assert!(cmd(&mut c, "QUIT").await.starts_with("+OK"), "{listener}/{form}");
            assert!(
                c.try_line().await.is_none(),
                "{listener}/{form}: closed after QUIT"
            );
        }
    }
}

#[tokio::test]
async fn capa_before_login_lists_only_what_is_offered() {
    let proxy = pass_through_proxy("starttls").await;
    let mut c = Client::plain(proxy.addr("pop3")).await;
    c.line().await;
    assert_eq!(cmd(&mut c, "CAPA").await, "+OK Capability list follows");
    assert_eq!(
        body(&mut c).await,
        ["STLS", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
    );
    // No password before TLS on the plain port.
    assert_eq!(
        cmd(&mut c, "USER alice@pec.example").await,
        "-ERR [AUTH] Plaintext authentication is disabled: use STLS or the POP3S port"
    );
    assert_eq!(cmd(&mut c, "STLS").await, "+OK Begin TLS negotiation now");
    c.upgrade().await;
    assert_eq!(cmd(&mut c, "CAPA").await, "+OK Capability list follows");
    assert_eq!(
        body(&mut c).await,
        [
            "USER",
            "SASL PLAIN LOGIN",
            "RESP-CODES",
            "AUTH-RESP-CODE",
            "PIPELINING"
        ]
    );
}

/// A message of about 3 MB whose lines exercise byte-stuffing.
fn big_message() -> Vec<u8> {
    let mut m = b"From: harness@pec.example\r\nSubject: big\r\n\r\n".to_vec();
    let mut i = 0;
    while m.len() < 3 * 1024 * 1024 {
        let line = match i % 50 {
            0 => ".".to_owned(),
            1 => "..two dots".to_owned(),
            2 => ".leading dot".to_owned(),
            _ => format!("{i:08} The quick brown fox jumps over the lazy dog, posta certificata."),
        };
        m.extend_from_slice(line.as_bytes());
        m.extend_from_slice(b"\r\n");
        i += 1;
    }
    m
}

/// RETR's lines, unstuffed, joined with LF as Dovecot's maildir stores them.
async fn retr_as_stored(c: &mut Client, n: usize) -> Vec<u8> {
    let status = cmd(c, &format!("RETR {n}")).await;
    assert!(status.starts_with("+OK"), "{status}");
    let mut out = Vec::new();
    for line in body(c).await {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

async fn check_stat_list_uidl_retr(proxy: &Proxy, listener: &str, user: &str, pw: &str, stored: &[u8]) {
    let mut c = connect(proxy, listener).await;
    assert_eq!(user_pass(&mut c, user, pw).await, "+OK Logged in.");
    let stat = cmd(&mut c, "STAT").await;
    assert_eq!(
        stat,
        format!(
            "+OK 1 {}",
            stored.len() + stored.iter().filter(|&&b| b == b'\n').count()
        )
    );
    assert!(cmd(&mut c, "LIST").await.starts_with("+OK"));
    let list = body(&mut c).await;
    assert_eq!(list.len(), 1);
    assert!(cmd(&mut c, "UIDL").await.starts_with("+OK"));
    let uidl = body(&mut c).await;
    assert!(uidl.len() == 1 && uidl[0].starts_with("1 "), "{uidl:?}");
    assert_eq!(cmd(&mut c, "UIDL 1").await, format!("+OK {}", uidl[0]));
    let got = retr_as_stored(&mut c, 1).await;
    assert!(
        got == stored,
        "{listener}: RETR differs from the stored message ({} vs {} bytes)",
        got.len(),
        stored.len()
    );
    assert!(cmd(&mut c, "QUIT").await.starts_with("+OK"));
}

#[tokio::test]
async fn stat_list_uidl_and_retr_of_a_3_mb_message_are_byte_identical() {
    let up = upstreams();
    let (user, pw) = fresh_mailbox("bigmail", 0);
    up.deliver(&user, &big_message());
    let files = up.wait_for_messages(&user, 1, Duration::from_secs(10));
    let stored = std::fs::read(&files[0]).unwrap();
    assert!(stored.len() > 3_000_000);

    // Plain relay, upstream over STLS and over implicit TLS.
    for upstream_tls in ["starttls", "implicit"] {
        let proxy = pass_through_proxy(upstream_tls).await;
        for listener in ["pop3s", "pop3"] {
            check_stat_list_uidl_retr(&proxy, listener, &user, &pw, &stored).await;
        }
    }

    // Through the DELE guard, which tracks every line of the answer.
    let op = Operator::new();
    op.add_mailbox(&user, "proxy-side password");
    op.run(&["mailbox", "set", &user, "--pop3-delete", "deny"], "");
    let proxy = store_proxy(&op, "master-user").await;
    check_stat_list_uidl_retr(&proxy, "pop3s", &user, "proxy-side password", &stored).await;

    // Python's poplib and curl, clients we did not write.
    let proxy = pass_through_proxy("starttls").await;
    let (pop3s, pop3) = (proxy.addr("pop3s").port(), proxy.addr("pop3").port());
    let script = r#"
import poplib, ssl, sys
ca, pop3s, pop3, user, pw, stored = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=ca)
want = open(stored, "rb").read()
for kind in ("POP3_SSL", "STLS"):
    if kind == "POP3_SSL":
        p = poplib.POP3_SSL("localhost", int(pop3s), context=ctx, timeout=20)
    else:
        p = poplib.POP3("localhost", int(pop3), timeout=20)
        p.stls(context=ctx)
    caps = p.capa()
    assert "SASL" in caps and "USER" in caps, caps
    p.user(user)
    p.pass_(pw)
    count, size = p.stat()
    assert count == 1, count
    resp, lines, octets = p.retr(1)
    got = b"\n".join(lines) + b"\n"
    assert got == want, (kind, len(got), len(want))
    assert len(p.uidl()[1]) == 1
    p.quit()
    print(kind, "ok")
"#;
    // A copy: Dovecot renames the file (new/ to cur/) once it is read.
    let copy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(copy.path(), &stored).unwrap();
    let stored_path = copy.path().to_owned();
    let args = [
        ca_file().to_str().unwrap().to_owned(),
        pop3s.to_string(),
        pop3.to_string(),
        user.clone(),
        pw.clone(),
        stored_path.to_str().unwrap().to_owned(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .output()
            .expect("python3")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "poplib failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "POP3_SSL ok\nSTLS ok\n");

    // curl speaks SASL only (USER/PASS is poplib's part above); with
    // --sasl-ir it sends the initial response on the AUTH line.
    for options in [
        &["--login-options", "AUTH=PLAIN"][..],
        &["--login-options", "AUTH=PLAIN", "--sasl-ir"],
        &["--login-options", "AUTH=LOGIN"],
        &["--login-options", "AUTH=LOGIN", "--sasl-ir"],
    ] {
        let got = curl_retr(pop3s, &user, &pw, options).await;
        assert!(
            got == stored,
            "curl {options:?}: {} vs {} bytes",
            got.len(),
            stored.len()
        );
    }
}

/// `curl pop3s://.../1`; the message with CRLF turned into LF.
async fn curl_retr(port: u16, user: &str, pw: &str, options: &'static [&'static str]) -> Vec<u8> {
    let (user, pw) = (user.to_owned(), pw.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "30", "--cacert", ca_file().to_str().unwrap()])
            .args(options)
            .args(["-u", &format!("{user}:{pw}")])
            .arg(format!("pop3s://localhost:{port}/1"))
            .output()
            .expect("curl")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "curl {options:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lf = Vec::with_capacity(out.stdout.len());
    for (i, &b) in out.stdout.iter().enumerate() {
        if !(b == b'\r' && out.stdout.get(i + 1) == Some(&b'\n')) {
            lf.push(b);
        }
    }
    lf
}

#[tokio::test]
async fn dele_and_quit_delete_with_allow() {
    let up = upstreams();
    let (user, pw) = fresh_mailbox("deleter", 2);
    let proxy = pass_through_proxy("starttls").await;
    let mut c = connect(&proxy, "pop3s").await;
    assert_eq!(user_pass(&mut c, &user, &pw).await, "+OK Logged in.");
    assert!(cmd(&mut c, "DELE 1").await.starts_with("+OK"));
    assert!(cmd(&mut c, "QUIT").await.starts_with("+OK"));
    assert!(c.try_line().await.is_none());
    assert_eq!(
        up.message_files(&user).len(),
        1,
        "DELE + QUIT removed one message"
    );
    assert_eq!(imap_exists(&user, &pw).await, 1);
}

#[tokio::test]
async fn dele_is_refused_with_deny_and_the_message_stays() {
    let up = upstreams();
    let (user, pw) = fresh_mailbox("keeper", 2);
    let before = message_ids(&user);
    let op = Operator::new();
    op.add_mailbox(&user, "owner password");
    op.run(
        &["collaborator", "add", &format!("anna/{user}"), "--password-stdin"],
        "anna password\n",
    );
    // The mailbox allows DELE but anna's setting denies it: the stricter wins.
    op.run(
        &["collaborator", "set-pop3-delete", &format!("anna/{user}"), "deny"],
        "",
    );
    let proxy = store_proxy(&op, "master-user").await;

    let refusal = "-ERR [SYS/PERM] This mailbox is shared: messages are kept on the server";
    let mut c = connect(&proxy, "pop3").await;
    assert_eq!(
        user_pass(&mut c, &format!("anna/{user}"), "anna password").await,
        "+OK Logged in."
    );
    // Pipelined: the refusal comes in order, between LIST's and STAT's answers.
    c.send("LIST\r\nDELE 1\r\nSTAT\r\nDELE 2\r\nRSET\r\n").await;
    assert!(c.line().await.starts_with("+OK"));
    assert_eq!(body(&mut c).await.len(), 2);
    assert_eq!(c.line().await, refusal);
    assert!(c.line().await.starts_with("+OK 2 "));
    assert_eq!(c.line().await, refusal);
    assert!(c.line().await.starts_with("+OK"), "RSET");
    assert_eq!(cmd(&mut c, "dele 1").await, refusal);
    assert!(cmd(&mut c, "QUIT").await.starts_with("+OK"));
    assert!(c.try_line().await.is_none());
    assert_eq!(message_ids(&user), before, "nothing was deleted");
    assert_eq!(imap_exists(&user, &pw).await, 2, "IMAP still sees both messages");

    // The owner's own setting is allow: the owner's DELE goes through.
    let mut c = connect(&proxy, "pop3s").await;
    assert_eq!(user_pass(&mut c, &user, "owner password").await, "+OK Logged in.");
    assert!(cmd(&mut c, "DELE 2").await.starts_with("+OK"));
    assert!(cmd(&mut c, "QUIT").await.starts_with("+OK"));
    assert!(c.try_line().await.is_none());
    assert_eq!(up.message_files(&user).len(), 1);
}

#[tokio::test]
async fn access_rules_give_the_same_outcomes_as_for_imap() {
    let up = upstreams();
    let (user, _) = fresh_mailbox("rules", 1);
    let op = Operator::new();
    op.add_mailbox(&user, "main password");
    op.run(
        &["collaborator", "add", &format!("anna/{user}"), "--password-stdin"],
        "anna password\n",
    );
    op.run(
        &[
            "collaborator",
            "add",
            &format!("reader/{user}"),
            "--password-stdin",
            "--rights",
            "read",
        ],
        "reader password\n",
    );
    let off = "off@pop3.example";
    up.add_user(off, "unused");
    op.add_mailbox(off, "off password");
    op.run(&["mailbox", "set", off, "--pop3", "off"], "");
    let two_step = "twostep@pop3.example";
    up.add_user(two_step, "unused");
    op.add_mailbox(two_step, "main password");
    op.run(&["mailbox", "set", two_step, "--two-step", "on"], "");
    let (_, app_pw) = op.create_app_password(two_step, &[]);

    for mode in ["master-user", "sasl-authzid"] {
        let proxy = store_proxy(&op, mode).await;
        let attempt = |user: String, pw: String| {
            let proxy = &proxy;
            async move {
                let mut c = connect(proxy, "pop3s").await;
                let reply = user_pass(&mut c, &user, &pw).await;
                (c, reply)
            }
        };
        let (_, r) = attempt(user.clone(), "wrong".into()).await;
        assert_eq!(r, "-ERR [AUTH] Authentication failed", "{mode}");
        let (_, r) = attempt(off.into(), "off password".into()).await;
        assert_eq!(
            r, "-ERR [SYS/PERM] POP3 access is disabled for this mailbox",
            "{mode}"
        );
        let (_, r) = attempt(two_step.into(), "main password".into()).await;
        assert_eq!(
            r, "-ERR [AUTH] Two-step verification is on: use an app password",
            "{mode}"
        );
        let (mut c, r) = attempt(two_step.into(), app_pw.clone()).await;
        assert_eq!(r, "+OK Logged in.", "{mode}");
        assert_eq!(stat_count(&mut c).await, 0);
        let (_, r) = attempt(format!("reader/{user}"), "reader password".into()).await;
        assert_eq!(
            r, "-ERR [SYS/PERM] This collaborator account may not use POP3 on this mailbox",
            "{mode}"
        );
        let (mut c, r) = attempt(format!("anna/{user}"), "anna password".into()).await;
        assert_eq!(r, "+OK Logged in.", "{mode}");
        assert_eq!(
            stat_count(&mut c).await,
            1,
            "{mode}: the shared mailbox's message"
        );
        assert!(cmd(&mut c, "QUIT").await.starts_with("+OK"));
    }
    // The collaborator's name never reached Dovecot.
    let log = std::fs::read_to_string(&up.dovecot_log).unwrap();
    assert!(
        !log.contains("anna/") && !log.contains("reader/"),
        "Dovecot saw a collaborator name"
    );
}

#[tokio::test]
async fn bad_input_gets_err_and_the_proxy_keeps_serving() {
    let (user, pw) = fresh_mailbox("badinput", 1);
    // Each bad command's reply on one connection: past the default cut-off
    // of five (tests/hostile/pop3.rs has that row).
    let proxy = pass_through_proxy_with("starttls", "\n[limits]\nmax_prelogin_errors = 100\n").await;
    for listener in ["pop3s", "pop3"] {
        let mut c = connect(&proxy, listener).await;
        let long = format!("USER {}", "x".repeat(300));
        assert_eq!(
            cmd(&mut c, &long).await,
            "-ERR Command line too long",
            "{listener}"
        );
        assert_eq!(cmd(&mut c, "PASS early").await, "-ERR Send USER first");
        assert_eq!(cmd(&mut c, "XYZZY").await, "-ERR Unknown command");
        assert_eq!(
            cmd(&mut c, "STAT").await,
            "-ERR Command STAT is not permitted before login"
        );
        assert_eq!(
            cmd(&mut c, "USER a\0b").await,
            "-ERR Invalid command: NUL in command line"
        );
        c.send("NOOP\n").await;
        assert_eq!(c.line().await, "-ERR Invalid command: line must end with CRLF");
        assert_eq!(
            cmd(&mut c, "APOP alice c4c9334bac560ecc979e58001b3e22fb").await,
            "-ERR APOP is not supported: use USER/PASS or AUTH PLAIN over TLS"
        );
        assert_eq!(
            cmd(&mut c, "AUTH CRAM-MD5").await,
            "-ERR Unsupported authentication mechanism"
        );
        assert_eq!(cmd(&mut c, "AUTH PLAIN").await, "+ ");
        assert_eq!(cmd(&mut c, "*").await, "-ERR Authentication cancelled");
        // Still the same session: it logs in.
        assert_eq!(
            user_pass(&mut c, &user, &pw).await,
            "+OK Logged in.",
            "{listener}"
        );
        assert_eq!(stat_count(&mut c).await, 1);
    }

    // Garbage pipelined behind STLS is discarded, never read as a command.
    let mut c = Client::plain(proxy.addr("pop3")).await;
    c.line().await;
    c.send(format!("STLS\r\nUSER {user}\r\n")).await;
    assert_eq!(c.line().await, "+OK Begin TLS negotiation now");
    c.upgrade().await;
    assert_eq!(cmd(&mut c, &format!("PASS {pw}")).await, "-ERR Send USER first");

    // Three wrong passwords close the connection; others are still served.
    let mut bad = connect(&proxy, "pop3s").await;
    for _ in 0..3 {
        assert_eq!(
            user_pass(&mut bad, &user, "wrong").await,
            "-ERR [AUTH] Authentication failed"
        );
    }
    assert!(bad.try_line().await.is_none(), "closed after the third failure");
    let mut good = connect(&proxy, "pop3s").await;
    assert_eq!(user_pass(&mut good, &user, &pw).await, "+OK Logged in.");
}

#[tokio::test]
async fn pipelined_commands_after_the_login_reach_the_mailbox() {
    let (user, pw) = fresh_mailbox("pipeline", 2);
    let proxy = pass_through_proxy("starttls").await;
    let mut c = connect(&proxy, "pop3s").await;
    c.send(format!("USER {user}\r\nPASS {pw}\r\nSTAT\r\nQUIT\r\n"))
        .await;
    assert_eq!(c.line().await, "+OK");
    assert_eq!(c.line().await, "+OK Logged in.");
    assert!(c.line().await.starts_with("+OK 2 "));
    assert!(c.line().await.starts_with("+OK"));
    assert!(c.try_line().await.is_none());
}

#[tokio::test]
async fn an_unavailable_upstream_gets_sys_temp() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proxy = Proxy::start(&format!(
        "{}\n[upstream.pop3]\naddress = \"127.0.0.1:{closed}\"\ntls = \"none\"\nlogin = \"pass-through\"\n",
        pop3_listeners()
    ))
    .await;
    let mut c = connect(&proxy, "pop3s").await;
    for _ in 0..4 {
        // Not the client's fault: never counted as a failed login.
        assert_eq!(
            user_pass(&mut c, "alice@pec.example", "alice-secret").await,
            "-ERR [SYS/TEMP] The mail server is not available now. Try again later."
        );
    }
}

/// With `send_client_address`, Dovecot logs the client's own address (sent
/// with XCLIENT), not the proxy's. The client connects from 127.0.0.2 so the
/// two differ.
#[tokio::test]
async fn the_client_address_reaches_dovecot_with_xclient() {
    let up = upstreams();
    for (name, send) in [("xclienton", true), ("xclientoff", false)] {
        let (user, pw) = fresh_mailbox(name, 0);
        let proxy = Proxy::start(&format!(
            "{}\n[upstream.pop3]\naddress = \"127.0.0.1:{}\"\ntls = \"starttls\"\nca = \"certs/ca.pem\"\n\
             server_name = \"localhost\"\nlogin = \"pass-through\"\nsend_client_address = {send}\n",
            pop3_listeners(),
            up.pop3_port
        ))
        .await;
        let script = r#"
import functools, poplib, socket, ssl, sys
ca, port, user, pw = sys.argv[1:5]
socket.create_connection = functools.partial(socket.create_connection, source_address=("127.0.0.2", 0))
p = poplib.POP3_SSL("localhost", int(port), context=ssl.create_default_context(cafile=ca), timeout=20)
p.user(user)
p.pass_(pw)
p.quit()
"#;
        let args = [
            ca_file().to_str().unwrap().to_owned(),
            proxy.addr("pop3s").port().to_string(),
            user.clone(),
            pw,
        ];
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("/usr/bin/python3")
                .arg("-c")
                .arg(script)
                .args(args)
                .output()
                .expect("python3")
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "poplib: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = std::fs::read_to_string(&up.dovecot_log).unwrap();
        let login = log
            .lines()
            .find(|l| l.contains("pop3-login: Info: Login: ") && l.contains(&format!("user=<{user}>")))
            .unwrap_or_else(|| panic!("no login line for {user}:\n{}", up.log_tail(20)))
            .to_owned();
        let rip = if send { "rip=127.0.0.2," } else { "rip=127.0.0.1," };
        assert!(login.contains(rip), "send_client_address = {send}: {login}");
    }
}
