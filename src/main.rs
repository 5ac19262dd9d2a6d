//! The `pec-proxy` command: run the proxy, or check a configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use metrics_exporter_prometheus::PrometheusBuilder;
use pec_proxy::admin::AdminCommand;
use pec_proxy::config::Config;
use pec_proxy::server::Server;
use pec_proxy::store::SqliteStore;
use tracing::{error, info};

/// Exit code for a bad configuration (sysexits.h EX_USAGE).
const EX_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    version,
    about = "TLS access gateway for the IMAP, POP3 and SMTP servers of a PEC provider"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        /// Configuration file.
        #[arg(short, long, default_value = "/etc/pec-proxy/pec-proxy.toml")]
        config: PathBuf,
    },
    /// Validate a configuration file: exit 0 if valid, else print every error and exit 64.
    CheckConfig { file: PathBuf },
    /// Account administration (mailbox, app-password, collaborator, access-log).
    #[command(flatten)]
    Admin(Box<AdminCommand>),
}

/// Where the admin commands find the account store.
#[derive(clap::Args)]
struct StoreArgs {
    /// Account store database; default: the `[store] path` of --config.
    #[arg(long, global = true, value_name = "PATH")]
    store: Option<PathBuf>,
    /// Configuration file naming the store, when --store is not given.
    #[arg(
        long = "config-file",
        global = true,
        value_name = "FILE",
        default_value = "/etc/pec-proxy/pec-proxy.toml"
    )]
    config_file: PathBuf,
    /// JSON output, for scripts.
    #[arg(long, global = true)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Admin(cmd) => admin(*cmd, &cli.store),
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(config) => match pec_proxy::tls::server_config(&config.certificates) {
                Ok(_) | Err(pec_proxy::tls::TlsError::NoCertificate) => {
                    println!("{}: OK", file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    ExitCode::from(EX_CONFIG)
                }
            },
            Err(errors) => {
                for e in errors.0 {
                    eprintln!("{}: {e}", file.display());
                }
                ExitCode::from(EX_CONFIG)
            }
        },
        Command::Run { config } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(errors) => {
                    for e in errors.0 {
                        error!("{}: {e}", config.display());
                    }
                    return ExitCode::from(EX_CONFIG);
                }
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            match runtime.block_on(run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Runs one admin command against the store; exit codes from `AdminError`.
fn admin(cmd: AdminCommand, args: &StoreArgs) -> ExitCode {
    let path = match &args.store {
        Some(p) => p.clone(),
        None => match Config::load(&args.config_file) {
            Ok(Config {
                store_path: Some(p), ..
            }) => p,
            Ok(_) => {
                eprintln!(
                    "{}: no [store] configured; pass --store PATH",
                    args.config_file.display()
                );
                return ExitCode::from(EX_CONFIG);
            }
            Err(errors) => {
                for e in errors.0 {
                    eprintln!("{}: {e}", args.config_file.display());
                }
                return ExitCode::from(EX_CONFIG);
            }
        },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        let store = SqliteStore::open(&path).await?;
        let result = pec_proxy::admin::run(cmd, &store, args.json).await;
        store.close().await;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pec-proxy: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    if let Some(addr) = config.metrics_listen {
        let mut builder = PrometheusBuilder::new().with_http_listener(addr);
        for name in [
            pec_proxy::metrics::LOGIN_DURATION_SECONDS,
            pec_proxy::metrics::TLS_HANDSHAKE_DURATION_SECONDS,
            pec_proxy::metrics::UPSTREAM_CONNECT_DURATION_SECONDS,
        ] {
            builder = builder.set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(name.into()),
                pec_proxy::metrics::LATENCY_BUCKETS,
            )?;
        }
        builder = builder.set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(pec_proxy::metrics::SESSION_DURATION_SECONDS.into()),
            pec_proxy::metrics::SESSION_BUCKETS,
        )?;
        builder
            .install()
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        pec_proxy::metrics::describe();
    }
    let server = Server::bind(&config).await?;
    for (name, addr) in server.local_addrs() {
        info!(listener = %name, %addr, "bound");
    }
    server.run(shutdown_signal()).await;
    info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = int.recv() => info!("SIGINT: shutting down"),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PEC_PROXY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
