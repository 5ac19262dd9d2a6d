//! The `pec-proxy` command: run the proxy, or check a configuration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use pec_proxy::AdminCommand;
use pec_proxy::Config;
use pec_proxy::Status;
use pec_proxy::{OpenedStore as Opened, Schema, StoreConfig};
use pec_proxy::{RunningServer, Server};
use sd_notify::NotifyState;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal as UnixSignal, SignalKind, signal};
use tracing::{error, info, warn};

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
    /// The running proxy's logged-in sessions, through its control socket
    /// (`[store] control_socket`, by default beside a SQLite store: `accounts.db` →
    /// `accounts.sessions.sock`; mode 0600).
    #[command(subcommand)]
    Session(SessionCommand),
    /// The account store itself: its schema, and moving to PostgreSQL.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Create the store's schema, or bring it up to this version (a
    /// PostgreSQL store is never changed otherwise; a SQLite file is
    /// brought up to date whenever it is opened).
    Migrate,
    /// Copy every mailbox, collaborator, app password, known device and
    /// access-log row of a SQLite store into another store (PostgreSQL:
    /// `postgres://user@host/db`, password from PGPASSWORD). Rows already
    /// there are kept: running it again copies nothing twice. Prints the
    /// counts on both sides and fails unless every row is in the target.
    Copy {
        #[arg(long, value_name = "SQLITE_FILE")]
        from: PathBuf,
        #[arg(long, value_name = "PATH|URL")]
        to: String,
    },
}

#[derive(Subcommand)]
enum SessionCommand {
    /// List the logged-in sessions, of one mailbox or of all.
    List { mailbox: Option<String> },
    /// End sessions with their protocol's goodbye: one by ID, every session
    /// of a MAILBOX (owner and collaborators), or one collaborator's
    /// (NAME/MAILBOX).
    End { target: String },
}

/// Where the admin commands find the account store.
#[derive(clap::Args)]
struct StoreArgs {
    /// Account store: a SQLite file, or `postgres://user@host/db` (password
    /// from PGPASSWORD); default: the `[store]` of --config-file.
    #[arg(long, global = true, value_name = "PATH|URL")]
    store: Option<String>,
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
    /// The running proxy's control socket, for `session`; default: the
    /// store's (`[store] control_socket`, or beside a SQLite file).
    #[arg(long, global = true, value_name = "PATH")]
    control_socket: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Admin(cmd) => admin(*cmd, &cli.store),
        Command::Session(cmd) => session(cmd, &cli.store),
        Command::Store(cmd) => store_command(cmd, &cli.store),
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(config) => match pec_proxy::server_config(&config.certificates) {
                Ok(_) | Err(pec_proxy::TlsError::NoCertificate) => {
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
        Command::Run { config: path } => {
            let config = match Config::load(&path) {
                Ok(c) => c,
                Err(errors) => {
                    for e in errors.0 {
                        error!("{}: {e}", path.display());
                    }
                    return ExitCode::from(EX_CONFIG);
                }
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let result = runtime.block_on(run(path, config));
            // Sessions have ended or were given up on; don't wait on stragglers.
            runtime.shutdown_timeout(Duration::from_secs(1));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Asks the running proxy about its sessions. Exit 69 (EX_UNAVAILABLE)
/// when no proxy answers on the store's control socket.
fn session(cmd: SessionCommand, args: &StoreArgs) -> ExitCode {
    let socket = match (&args.control_socket, store_config(args)) {
        (Some(path), _) => path.clone(),
        (None, Ok(c)) => c.control_socket,
        (None, Err(code)) => return code,
    };
    let line = match &cmd {
        SessionCommand::List { mailbox: None } => "list".to_owned(),
        SessionCommand::List { mailbox: Some(m) } => format!("list {m}"),
        SessionCommand::End { target } => format!("end {target}"),
    };
    let answer = match pec_proxy::session_request(&socket, &line) {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "pec-proxy: {}: {e} (is the proxy running with this store?)",
                socket.display()
            );
            return ExitCode::from(69);
        }
    };
    if answer.contains("\"error\"") {
        eprint!("pec-proxy: {answer}");
        return ExitCode::from(64);
    }
    if args.json {
        print!("{answer}");
        return ExitCode::SUCCESS;
    }
    match cmd {
        SessionCommand::List { .. } => {
            let list: Vec<pec_proxy::SessionInfo> = serde_json::from_str(&answer).unwrap_or_default();
            for s in &list {
                println!(
                    "{:>6}  {:<4}  {}{}  {}  {}  since {}",
                    s.id,
                    s.protocol,
                    s.collaborator
                        .as_deref()
                        .map(|c| format!("{c}/"))
                        .unwrap_or_default(),
                    s.mailbox,
                    s.credential,
                    s.client,
                    s.since
                );
            }
            println!("{} session(s)", list.len());
        }
        SessionCommand::End { .. } => print!("{answer}"),
    }
    ExitCode::SUCCESS
}

/// The account store: `--store` (a SQLite file, or a `postgres://` URL whose
/// password comes from `PGPASSWORD`), or the `[store]` of the configuration
/// file.
fn store_config(args: &StoreArgs) -> Result<StoreConfig, ExitCode> {
    if let Some(store) = &args.store {
        return Ok(StoreConfig::from_argument(store));
    }
    match Config::load(&args.config_file) {
        Ok(Config { store: Some(s), .. }) => Ok(s),
        Ok(_) => {
            eprintln!(
                "{}: no [store] configured; pass --store PATH|URL",
                args.config_file.display()
            );
            Err(ExitCode::from(EX_CONFIG))
        }
        Err(errors) => {
            for e in errors.0 {
                eprintln!("{}: {e}", args.config_file.display());
            }
            Err(ExitCode::from(EX_CONFIG))
        }
    }
}

/// A runtime for one command-line action.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// `pec-proxy store ...`.
fn store_command(cmd: StoreCommand, args: &StoreArgs) -> ExitCode {
    let result: Result<String, pec_proxy::StoreError> = match cmd {
        StoreCommand::Migrate => {
            let cfg = match store_config(args) {
                Ok(c) => c,
                Err(code) => return code,
            };
            block_on(async {
                let store = Opened::open(&cfg.backend, Schema::Migrate).await?;
                store.close().await;
                Ok(format!(
                    "schema is at version {} (current)",
                    pec_proxy::StoreKind::of(&cfg.backend).latest()
                ))
            })
        }
        StoreCommand::Copy { from, to } => {
            let to = StoreConfig::from_argument(&to);
            block_on(async {
                let report = pec_proxy::copy_store(&from, &to.backend).await?;
                Ok(report.to_string())
            })
        }
    };
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pec-proxy: {e}");
            ExitCode::from(69)
        }
    }
}

/// Runs one admin command against the store; exit codes from `AdminError`.
fn admin(cmd: AdminCommand, args: &StoreArgs) -> ExitCode {
    let cfg = match store_config(args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = block_on(async {
        let store = Opened::open(&cfg.backend, Schema::MustBeCurrent)
            .await
            .map_err(pec_proxy::AdminError::from)?;
        let result = pec_proxy::run_admin(cmd, store.as_dyn(), args.json).await;
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

/// Longest a reload may take (reading certificates, opening the store)
/// before it is abandoned and the running configuration kept.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

async fn run(path: PathBuf, mut config: Config) -> anyhow::Result<()> {
    // Handlers first: SIGHUP's default action would kill the process.
    let mut signals = Signals::new().context("signal handlers")?;
    let status = match config.metrics_listen {
        Some(addr) => {
            let handle = pec_proxy::install_metrics().context("metrics recorder")?;
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot serve metrics on {addr}"))?;
            info!(%addr, "status listener: /metrics /healthz /readyz");
            let status = Status::new(handle.clone());
            tokio::spawn(pec_proxy::run_metrics_upkeep(handle));
            tokio::spawn(pec_proxy::serve_status(listener, status.clone()));
            Some(status)
        }
        None => None,
    };
    let server = Server::bind(&config).await?;
    for (name, addr) in server.local_addrs() {
        info!(listener = %name, %addr, "bound");
    }
    let running = server.start();
    if let Some(status) = &status {
        status.set_ready(running.readiness());
    }
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);
    loop {
        match signals.next().await {
            Signal::Hangup => {
                reload(&path, &mut config, &running).await;
            }
            Signal::Terminate => {
                info!("SIGTERM: draining");
                notify(&[NotifyState::Stopping, NotifyState::Status("draining")]);
                running.drain(config.limits.shutdown_grace()).await;
                break;
            }
            Signal::Interrupt => {
                info!("SIGINT: shutting down now");
                notify(&[NotifyState::Stopping]);
                running.stop().await;
                break;
            }
        }
    }
    info!("stopped");
    Ok(())
}

/// SIGHUP: re-reads the configuration, certificates and account store. A
/// configuration that does not load or apply is logged and the running one kept.
async fn reload(path: &Path, config: &mut Config, running: &RunningServer) {
    info!(config = %path.display(), "SIGHUP: reloading");
    let mut states = vec![NotifyState::Reloading];
    match NotifyState::monotonic_usec_now() {
        Ok(now) => states.push(now),
        Err(e) => warn!(error = %e, "cannot read the monotonic clock for systemd"),
    }
    notify(&states);
    let ok = match Config::load(path) {
        Err(errors) => {
            for e in errors.0 {
                error!("{}: {e}", path.display());
            }
            false
        }
        Ok(new) => match tokio::time::timeout(RELOAD_TIMEOUT, running.reload(&new)).await {
            Ok(Ok(())) => {
                if new.metrics_listen != config.metrics_listen {
                    warn!("metrics.listen changes only on restart");
                }
                *config = new;
                true
            }
            Ok(Err(e)) => {
                error!("{}: {e}", path.display());
                false
            }
            Err(_) => {
                error!("{}: reload took over {RELOAD_TIMEOUT:?}", path.display());
                false
            }
        },
    };
    pec_proxy::config_reload(ok);
    if ok {
        info!(
            sessions = running.sessions(),
            "reloaded: new connections use the new configuration"
        );
    } else {
        error!("reload rejected: keeping the running configuration");
    }
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// Tells systemd (`Type=notify`) about a state change; nothing without `$NOTIFY_SOCKET`.
fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!(error = %e, "cannot notify systemd");
    }
}

enum Signal {
    Hangup,
    Terminate,
    Interrupt,
}

struct Signals {
    hup: UnixSignal,
    term: UnixSignal,
    int: UnixSignal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.hup.recv() => Signal::Hangup,
            _ = self.term.recv() => Signal::Terminate,
            _ = self.int.recv() => Signal::Interrupt,
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PEC_PROXY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Colours only on a terminal: journald and log files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
