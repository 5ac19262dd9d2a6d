//! The load modes: `login`, `handshake`, `idle` and `bulk`. Each is bounded
//! by a count and a duration, and reads the target's CPU and RSS before and
//! after from `/proc` (`--pid`, repeatable: nginx has several processes).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::conn::{self, Conn, Kx, TlsClient};
use super::dialog::{self, Proto};
use super::proc_stats;
use super::stats::Results;

#[derive(Debug, clap::Args, Clone)]
pub struct Target {
    /// Address to connect to (loopback only).
    #[arg(long)]
    pub target: SocketAddr,
    /// Speak implicit TLS (IMAPS, POP3S, SMTPS).
    #[arg(long)]
    pub tls: bool,
    /// CA that signed the target's certificate.
    #[arg(long, default_value = "certs/ca.pem")]
    pub ca: PathBuf,
    #[arg(long, default_value = "localhost")]
    pub server_name: String,
    /// Offer TLS 1.3 only.
    #[arg(long)]
    pub tls13: bool,
    #[arg(long, value_enum, default_value = "x25519")]
    pub kx: Kx,
    /// Reuse TLS sessions (tickets) across connections.
    #[arg(long)]
    pub resume: bool,
    /// Target process ids whose CPU and RSS are reported (repeatable).
    #[arg(long)]
    pub pid: Vec<u32>,
    /// Connect and per-read timeout, milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// A label for the result line (e.g. "nginx").
    #[arg(long, default_value = "target")]
    pub label: String,
}

impl Target {
    fn check_loopback(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.target.ip().is_loopback(),
            "load goes to loopback addresses only"
        );
        Ok(())
    }

    fn tls_client(&self) -> anyhow::Result<Option<TlsClient>> {
        if !self.tls {
            return Ok(None);
        }
        Ok(Some(TlsClient::new(
            &self.ca,
            &self.server_name,
            self.resume,
            self.tls13,
            self.kx,
        )?))
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub target: Target,
    #[arg(long, value_enum, default_value = "imap")]
    pub protocol: Proto,
    /// Concurrent clients.
    #[arg(long, short = 'c', default_value_t = 8)]
    pub concurrency: usize,
    /// Stop after this many logins...
    #[arg(long, default_value_t = 2000)]
    pub count: u64,
    /// ... or after this many seconds, whichever comes first.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Logins to run before measuring (TLS caches, allocator, credential cache).
    #[arg(long, default_value_t = 50)]
    pub warmup: u64,
    #[arg(long, default_value = "bench@pec.example")]
    pub user: String,
    #[arg(long, default_value = "bench-password")]
    pub password: String,
    /// Only the TLS handshake and a one-line greeting (the bare baseline).
    #[arg(long)]
    pub handshake_only: bool,
    /// Failed logins (IMAP): each with a wrong password of its own
    /// (`--password` and a number), done when the server refuses it.
    #[arg(long)]
    pub expect_refusal: bool,
}

/// Numbers the wrong passwords of `--expect-refusal`.
static WRONG: AtomicU64 = AtomicU64::new(0);

/// Only the first failure of a run is printed in full; the rest are counted.
static FIRST_ERROR_SHOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// One result line, machine-readable (`key=value`), for compare.sh.
fn emit(mode: &str, label: &str, fields: &[(&str, String)]) {
    let rest: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("RESULT mode={mode} label={label} {}", rest.join(" "));
}

pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    args.target.check_loopback()?;
    let tls = args.target.tls_client()?;
    let args = Arc::new(args);
    // Warm-up, unmeasured.
    run_logins(
        &args,
        tls.clone(),
        args.warmup,
        Duration::from_secs(args.duration),
    )
    .await;
    let before = proc_stats::sample(&args.target.pid);
    let started = Instant::now();
    let mut results = run_logins(&args, tls, args.count, Duration::from_secs(args.duration)).await;
    let wall = started.elapsed().as_secs_f64();
    let after = proc_stats::sample(&args.target.pid);
    let ok = results.latencies.len() as u64;
    let (p50, p99, max) = results.percentiles_ms();
    let mut fields = vec![
        ("protocol", format!("{:?}", args.protocol).to_lowercase()),
        ("logins", ok.to_string()),
        ("per_sec", format!("{:.0}", ok as f64 / wall)),
        ("p50_ms", format!("{p50:.3}")),
        ("p99_ms", format!("{p99:.3}")),
        ("max_ms", format!("{max:.3}")),
        ("errors", results.errors_summary()),
    ];
    if let (Some(b), Some(a)) = (before, after) {
        let cpu = b.cpu_secs_until(&a);
        fields.push(("cpu_ms_per_login", format!("{:.3}", cpu * 1e3 / ok.max(1) as f64)));
        fields.push(("cpu_s", format!("{cpu:.2}")));
    }
    let mode = if args.handshake_only {
        "handshake"
    } else if args.expect_refusal {
        "failed-login"
    } else {
        "login"
    };
    emit(mode, &args.target.label, &fields);
    Ok(())
}

async fn run_logins(
    args: &Arc<LoginArgs>,
    tls: Option<TlsClient>,
    count: u64,
    duration: Duration,
) -> Results {
    let deadline = Instant::now() + duration;
    let issued = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (args, tls, issued) = (args.clone(), tls.clone(), issued.clone());
        workers.spawn(async move {
            let mut results = Results::default();
            while issued.fetch_add(1, Ordering::Relaxed) < count && Instant::now() < deadline {
                let started = Instant::now();
                match one_login(&args, tls.as_ref()).await {
                    Ok(login_done) => results.latencies.push(login_done - started),
                    Err(e) => {
                        if !FIRST_ERROR_SHOWN.swap(true, Ordering::Relaxed) {
                            eprintln!("{}: first error: {e}", args.target.label);
                        }
                        results.error(e.kind());
                    }
                }
            }
            results
        });
    }
    let mut all = Results::default();
    while let Some(r) = workers.join_next().await {
        if let Ok(r) = r {
            all.merge(r);
        }
    }
    all
}

/// Connect, TLS, greeting, login (the latency ends here), logout.
async fn one_login(args: &LoginArgs, tls: Option<&TlsClient>) -> Result<Instant, conn::ConnError> {
    let mut c = conn::connect(args.target.target, None, tls, args.target.timeout()).await?;
    if args.handshake_only {
        c.line().await?;
        let done = Instant::now();
        c.shutdown().await;
        return Ok(done);
    }
    if args.expect_refusal {
        let n = WRONG.fetch_add(1, Ordering::Relaxed);
        dialog::refused_login(&mut c, &args.user, &format!("{}-{n}", args.password)).await?;
    } else {
        dialog::login(&mut c, args.protocol, &args.user, &args.password).await?;
    }
    let done = Instant::now();
    dialog::logout(&mut c, args.protocol).await?;
    Ok(done)
}

#[derive(Debug, clap::Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub target: Target,
    /// IDLE sessions to open.
    #[arg(long, short = 'k', default_value_t = 1000)]
    pub sessions: usize,
    /// Source addresses 127.0.0.2 .. 127.0.0.(1+N), round robin (each gives ~28k ports).
    #[arg(long, default_value_t = 4)]
    pub sources: u8,
    /// Sessions being opened at once.
    #[arg(long, default_value_t = 32)]
    pub open_concurrency: usize,
    /// NOOPs in the latency sample, spread across the sessions.
    #[arg(long, default_value_t = 500)]
    pub noop_sample: usize,
    /// NOOPs in flight at once during the sample.
    #[arg(long, default_value_t = 8)]
    pub noop_concurrency: usize,
    /// Seconds to hold every session idle (CPU while idle is measured over it).
    #[arg(long, default_value_t = 5)]
    pub hold: u64,
    /// Give up opening after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub duration: u64,
    #[arg(long, default_value = "bench@pec.example")]
    pub user: String,
    #[arg(long, default_value = "bench-password")]
    pub password: String,
}

pub async fn idle(args: IdleArgs) -> anyhow::Result<()> {
    args.target.check_loopback()?;
    anyhow::ensure!(args.sources >= 1 && args.sources < 250, "--sources 1..250");
    let tls = args.target.tls_client()?;
    let timeout = args.target.timeout();
    let before = proc_stats::sample(&args.target.pid);
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let semaphore = Arc::new(tokio::sync::Semaphore::new(args.open_concurrency));
    let mut opening = tokio::task::JoinSet::new();
    for i in 0..args.sessions {
        let permit = semaphore.clone().acquire_owned().await?;
        if Instant::now() > deadline {
            break;
        }
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % args.sources as usize) as u8));
        let (tls, target, user, password) = (
            tls.clone(),
            args.target.target,
            args.user.clone(),
            args.password.clone(),
        );
        opening.spawn(async move {
            let _permit = permit;
            let mut c = conn::connect(target, Some(source), tls.as_ref(), timeout).await?;
            dialog::login(&mut c, Proto::Imap, &user, &password).await?;
            dialog::idle(&mut c).await?;
            Ok::<Conn, conn::ConnError>(c)
        });
    }
    let mut sessions = Vec::with_capacity(args.sessions);
    let mut errors = Results::default();
    while let Some(r) = opening.join_next().await {
        match r {
            Ok(Ok(c)) => sessions.push(c),
            Ok(Err(e)) => {
                if errors.errors.is_empty() {
                    eprintln!("{}: first error: {e}", args.target.label);
                }
                errors.error(e.kind())
            }
            Err(_) => errors.error("task"),
        }
    }
    let up = sessions.len();
    // Let the target settle (freed handshake buffers, lazily trimmed heaps).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let opened = proc_stats::sample(&args.target.pid);
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    let held = proc_stats::sample(&args.target.pid);

    // NOOP sample: evenly spaced sessions, a few at once.
    let step = (up / args.noop_sample.max(1)).max(1);
    let mut sample = Results::default();
    let picked: Vec<usize> = (0..up).step_by(step).take(args.noop_sample).collect();
    for chunk in picked.chunks(args.noop_concurrency.max(1)) {
        let mut futs = Vec::new();
        for &i in chunk {
            // Disjoint indices: take the connections out and put them back.
            futs.push((i, std::mem::replace(&mut sessions[i], placeholder_conn())));
        }
        let results = futures_join(futs).await;
        for (i, c, r) in results {
            sessions[i] = c;
            match r {
                Ok(rtt) => sample.latencies.push(rtt),
                Err(e) => sample.error(e.kind()),
            }
        }
    }
    let (p50, p99, max) = sample.percentiles_ms();
    let mut fields = vec![
        ("sessions_up", up.to_string()),
        ("open_errors", errors.errors_summary()),
        ("noop_p50_ms", format!("{p50:.3}")),
        ("noop_p99_ms", format!("{p99:.3}")),
        ("noop_max_ms", format!("{max:.3}")),
        ("noop_errors", sample.errors_summary()),
    ];
    if let (Some(b), Some(o), Some(h)) = (before, opened, held) {
        let kib = o.rss_kib.saturating_sub(b.rss_kib) as f64 / up.max(1) as f64;
        fields.push(("rss_before_kib", b.rss_kib.to_string()));
        fields.push(("rss_kib", o.rss_kib.to_string()));
        fields.push(("kib_per_session", format!("{kib:.2}")));
        fields.push((
            "cpu_ms_per_session_open",
            format!("{:.3}", b.cpu_secs_until(&o) * 1e3 / up.max(1) as f64),
        ));
        fields.push((
            "idle_cpu_ms_per_s",
            format!("{:.2}", o.cpu_secs_until(&h) * 1e3 / args.hold.max(1) as f64),
        ));
    }
    emit("idle", &args.target.label, &fields);
    // Close in bulk: the targets see ordinary EOFs.
    drop(sessions);
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

/// A stand-in while a session is borrowed for its NOOP: never used for I/O.
fn placeholder_conn() -> Conn {
    let (a, _b) = tokio::io::duplex(1);
    Conn {
        io: tokio::io::BufStream::new(Box::new(a)),
        timeout: Duration::from_secs(1),
        line: Vec::new(),
    }
}

async fn futures_join(conns: Vec<(usize, Conn)>) -> Vec<(usize, Conn, Result<Duration, conn::ConnError>)> {
    let mut set = tokio::task::JoinSet::new();
    for (i, mut c) in conns {
        set.spawn(async move {
            let r = dialog::noop_in_idle(&mut c).await;
            (i, c, r)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(r) = r {
            out.push(r);
        }
    }
    out
}

#[derive(Debug, clap::Args)]
pub struct BulkArgs {
    #[command(flatten)]
    pub target: Target,
    #[arg(long, value_enum, default_value = "imap")]
    pub protocol: Proto,
    /// Sessions fetching at once.
    #[arg(long, short = 'c', default_value_t = 2)]
    pub concurrency: usize,
    /// Fetches in all.
    #[arg(long, short = 'm', default_value_t = 100)]
    pub count: u64,
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    #[arg(long, default_value = "bench@pec.example")]
    pub user: String,
    #[arg(long, default_value = "bench-password")]
    pub password: String,
}

pub async fn bulk(args: BulkArgs) -> anyhow::Result<()> {
    args.target.check_loopback()?;
    let tls = args.target.tls_client()?;
    let timeout = args.target.timeout();
    let mut sessions = Vec::new();
    for _ in 0..args.concurrency {
        let mut c = conn::connect(args.target.target, None, tls.as_ref(), timeout).await?;
        dialog::login(&mut c, args.protocol, &args.user, &args.password).await?;
        // One unmeasured fetch: buffers and caches warm.
        dialog::fetch(&mut c, args.protocol).await?;
        sessions.push(c);
    }
    let before = proc_stats::sample(&args.target.pid);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let issued = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    for mut c in sessions {
        let (issued, count, proto) = (issued.clone(), args.count, args.protocol);
        set.spawn(async move {
            let mut results = Results::default();
            let mut bytes = 0u64;
            while issued.fetch_add(1, Ordering::Relaxed) < count && Instant::now() < deadline {
                match dialog::fetch(&mut c, proto).await {
                    Ok(n) => bytes += n,
                    Err(e) => {
                        results.error(e.kind());
                        break;
                    }
                }
            }
            let _ = dialog::logout(&mut c, proto).await;
            (bytes, results)
        });
    }
    let mut bytes = 0u64;
    let mut results = Results::default();
    while let Some(r) = set.join_next().await {
        if let Ok((b, r)) = r {
            bytes += b;
            results.merge(r);
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let after = proc_stats::sample(&args.target.pid);
    let mib = bytes as f64 / (1 << 20) as f64;
    let mut fields = vec![
        ("protocol", format!("{:?}", args.protocol).to_lowercase()),
        ("mib", format!("{mib:.0}")),
        ("mib_per_s", format!("{:.1}", mib / wall)),
        ("errors", results.errors_summary()),
    ];
    if let (Some(b), Some(a)) = (before, after) {
        let cpu = b.cpu_secs_until(&a);
        fields.push(("cpu_s_per_gib", format!("{:.3}", cpu / (mib / 1024.0).max(1e-9))));
        fields.push(("cpu_s", format!("{cpu:.2}")));
    }
    emit("bulk", &args.target.label, &fields);
    Ok(())
}
