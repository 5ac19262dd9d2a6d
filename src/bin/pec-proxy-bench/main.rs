//! `pec-proxy-bench`: load generator and upstream simulator for measuring
//! pec-proxy side by side with nginx's mail proxy. Loopback only, every run
//! bounded by a count and a duration. See `benches/README.md`.
#![forbid(unsafe_code)]

mod conn;
mod dialog;
mod floor;
mod modes;
mod proc_stats;
mod sim;
mod stats;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Load tool for pec-proxy (loopback only, bounded runs)")]
struct Cli {
    /// Worker threads of the tool itself.
    #[arg(long, default_value_t = 2, global = true)]
    threads: usize,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// N concurrent clients: connect, TLS, login, logout, again.
    Login(modes::LoginArgs),
    /// K authenticated IMAP sessions held in IDLE; RSS per session, NOOP latency.
    Idle(modes::IdleArgs),
    /// FETCH / RETR a large message M times; MiB/s and CPU per GiB.
    Bulk(modes::BulkArgs),
    /// Minimal IMAP/POP3/SMTP upstream (and TLS baselines) for the capacity modes.
    UpstreamSim(sim::SimArgs),
    /// The least an IMAPS login proxy can do on pec-proxy's stack: a measuring stick.
    FloorProxy(floor::FloorArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.mode {
            Mode::Login(a) => modes::login(a).await,
            Mode::Idle(a) => modes::idle(a).await,
            Mode::Bulk(a) => modes::bulk(a).await,
            Mode::UpstreamSim(a) => sim::run(a).await,
            Mode::FloorProxy(a) => floor::run(a).await,
        }
    })
}
