//! A 20 MB attachment streams through the proxy without the proxy holding
//! it: the proxy runs in this test process (alone in its binary, so no
//! other test's allocations count) and the process's peak resident memory
//! (`VmHWM` in /proc/self/status) is compared before and after. The client
//! is Python's smtplib in its own process; the message is written to disk
//! in 64 KiB pieces, never held here.
//!
//! The proxy runs without an account store (pass-through login, Postfix
//! checks the password): an argon2id verification allocates 19 MiB, which
//! glibc then keeps in the heap, and would both raise the peak and hide a
//! message held in memory.

mod support;

use std::io::Write;
use std::sync::OnceLock;

use support::smtp::{find_message, pass_through_proxy, submit};
use support::upstreams::Upstreams;

const ALICE_PW: &str = "alice-secret";
const SIZE: usize = 20 * 1000 * 1000;

/// This module's own Dovecot + Postfix, started on first use; the script's
/// watchdog stops it when the process exits.
fn upstreams() -> &'static Upstreams {
    static UPSTREAMS: OnceLock<Upstreams> = OnceLock::new();
    UPSTREAMS.get_or_init(Upstreams::start)
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// One base64-looking body line of 76 characters plus CRLF, varying with `i`.
fn body_line(i: usize) -> String {
    let c = (b'A' + (i % 26) as u8) as char;
    format!("{}{:010}\r\n", c.to_string().repeat(66), i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_megabytes_stream_through_without_growing_the_proxy() {
    println!(
        "start: VmRSS {} VmHWM {}",
        status_kib("VmRSS:"),
        status_kib("VmHWM:")
    );
    let proxy = pass_through_proxy(upstreams(), "").await;
    let dir = tempfile::tempdir().unwrap();
    let tok = format!("big{}", std::process::id());

    let path = dir.path().join("big.eml");
    let mut f = std::io::BufWriter::with_capacity(64 * 1024, std::fs::File::create(&path).unwrap());
    write!(
        f,
        "From: alice@pec.example\r\nTo: bob@pec.example\r\nSubject: {tok}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n\
         --b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    .unwrap();
    let mut lines = 0;
    let mut written = 0;
    while written < SIZE {
        let l = body_line(lines);
        f.write_all(l.as_bytes()).unwrap();
        written += l.len();
        lines += 1;
    }
    f.write_all(b"--b--\r\n").unwrap();
    f.flush().unwrap();
    drop(f);
    println!(
        "file written: VmRSS {} VmHWM {}",
        status_kib("VmRSS:"),
        status_kib("VmHWM:")
    );

    // Warm up: one small message, so the first session's allocations count before.
    let small = dir.path().join("small.eml");
    std::fs::write(
        &small,
        "From: alice@pec.example\r\nTo: bob@pec.example\r\nSubject: warm\r\n\r\nhi\r\n",
    )
    .unwrap();
    let run = submit(
        proxy.addr("smtps").port(),
        "ssl",
        "PLAIN",
        "alice@pec.example",
        ALICE_PW,
        "alice@pec.example",
        "bob@pec.example",
        &small,
    )
    .await;
    assert!(run.ok, "{}", run.stderr);

    println!(
        "warm: VmRSS {} VmHWM {}",
        status_kib("VmRSS:"),
        status_kib("VmHWM:")
    );
    let (rss_before, hwm_before) = (status_kib("VmRSS:"), status_kib("VmHWM:"));
    let run = submit(
        proxy.addr("smtps").port(),
        "ssl",
        "PLAIN",
        "alice@pec.example",
        ALICE_PW,
        "alice@pec.example",
        "bob@pec.example",
        &path,
    )
    .await;
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    let (rss_after, hwm_after) = (status_kib("VmRSS:"), status_kib("VmHWM:"));
    println!(
        "message {} bytes; VmRSS {rss_before} -> {rss_after} KiB; VmHWM {hwm_before} -> {hwm_after} KiB (+{} KiB)",
        std::fs::metadata(&path).unwrap().len(),
        hwm_after - hwm_before
    );
    assert!(
        hwm_after - hwm_before < 4 * 1024,
        "peak memory grew by {} KiB for a 20 MB message",
        hwm_after - hwm_before
    );

    // Delivered whole (checked after measuring: reading it here costs memory).
    let stored = find_message(upstreams(), "bob@pec.example", &tok).await;
    let last = body_line(lines - 1);
    let last = last.trim_end();
    let text = String::from_utf8_lossy(&stored);
    assert!(text.contains(last), "the last attachment line arrived");
    assert!(text.matches('\n').count() >= lines, "every line arrived");
}
