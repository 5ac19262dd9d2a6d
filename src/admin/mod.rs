//! The operator's commands: `pec-proxy mailbox ...`, `app-password ...`,
//! `collaborator ...`, `access-log ...`.
//!
//! Passwords are read from standard input only (one line), never from the
//! command line, where `ps` and shell history would show them. Output is for
//! people by default and JSON with `--json`. Every change goes through the
//! [`AccountStore`], which bumps its generation, so a running proxy picks it
//! up within a second.

use std::io::{BufRead, Write};

use clap::{Args, Subcommand, ValueEnum};
use thiserror::Error;

use crate::access::password::{HashCost, PasswordError};
use crate::store::{AccountStore, DEFAULT_RETENTION_DAYS, StoreError};

mod exec;
mod output;

/// The PEC practice (Aruba): app passwords are valid three months.
pub const DEFAULT_APP_PASSWORD_DAYS: u32 = 90;

/// Account administration.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Add, change, show and remove mailboxes.
    #[command(subcommand)]
    Mailbox(MailboxCommand),
    /// Create, list, revoke, extend and regenerate app passwords.
    #[command(subcommand)]
    AppPassword(AppPasswordCommand),
    /// Manage the collaborators of shared mailboxes (name/mailbox@domain).
    #[command(subcommand)]
    Collaborator(CollaboratorCommand),
    /// Show a mailbox's login history, newest first.
    AccessLog {
        mailbox: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Delete login history older than the retention period.
    PruneAccessLog {
        #[arg(long, default_value_t = DEFAULT_RETENTION_DAYS)]
        days: i64,
    },
}

/// `on` / `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    pub fn is_on(self) -> bool {
        self == Self::On
    }
}

/// `allow` / `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Pop3DeleteArg {
    Allow,
    Deny,
}

/// Where a new main password comes from.
#[derive(Debug, Clone, Args)]
#[group(required = false, multiple = false)]
pub struct PasswordSource {
    /// Read the password from standard input (one line).
    #[arg(long)]
    pub password_stdin: bool,
    /// Use an existing hash ($argon2id$, $2y$/$2b$/$2a$, $6$), e.g. from Dovecot.
    #[arg(long, value_name = "HASH")]
    pub password_hash: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum MailboxCommand {
    /// Add a mailbox: active, IMAP/POP3/SMTP on, two-step verification off.
    Add {
        address: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Remove a mailbox with its collaborators, app passwords and history.
    Remove { address: String },
    /// Show a mailbox's settings, collaborators and app passwords.
    Show { address: String },
    /// List all mailboxes.
    List,
    /// Change settings; options not given stay as they are.
    Set {
        address: String,
        #[arg(long)]
        imap: Option<Switch>,
        #[arg(long)]
        pop3: Option<Switch>,
        #[arg(long)]
        smtp: Option<Switch>,
        #[arg(long)]
        two_step: Option<Switch>,
        #[arg(long)]
        active: Option<Switch>,
        #[arg(long)]
        pop3_delete: Option<Pop3DeleteArg>,
        /// Upstream route override (route name or HOST:PORT).
        #[arg(long, value_name = "ROUTE", conflicts_with = "no_route")]
        route: Option<String>,
        /// Remove the route override.
        #[arg(long)]
        no_route: bool,
    },
    /// Set the main password, read from standard input.
    SetPassword { address: String },
    /// Set the main password from an existing hash ("-": read it from stdin).
    ImportHash { address: String, hash: String },
}

#[derive(Debug, Subcommand)]
pub enum AppPasswordCommand {
    /// Create an app password and print it, once.
    Create {
        address: String,
        /// For this collaborator of the mailbox instead of the owner.
        #[arg(long)]
        collaborator: Option<String>,
        /// What it is for ("phone", "office PC").
        #[arg(long)]
        label: String,
        #[arg(long, default_value_t = DEFAULT_APP_PASSWORD_DAYS, conflicts_with = "never_expires")]
        expires_days: u32,
        #[arg(long)]
        never_expires: bool,
    },
    /// List a mailbox's app passwords (the owner's and its collaborators').
    List { address: String },
    /// Revoke one app password: the next login with it is refused.
    Revoke { id: i64 },
    /// Push the expiry back by N days (from now, or from the current
    /// expiry if that is later).
    Extend {
        id: i64,
        #[arg(long)]
        days: u32,
    },
    /// Replace an app password by a new one with the same label and
    /// lifetime, and print the new one, once.
    Regenerate { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum CollaboratorCommand {
    /// Add collaborator NAME to MAILBOX, given as NAME/MAILBOX.
    Add {
        login: String,
        /// Read the collaborator's password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Any of read,write,send,mail-client (mail-client implies write
        /// and send; write implies read), or read-only-client (IMAP and
        /// POP3 read-only, nothing deleted; add send for SMTP). What each
        /// allows per protocol: the README's "Collaborator rights".
        #[arg(long, default_value = "mail-client")]
        rights: String,
    },
    /// Suspend: the collaborator cannot log in until resumed.
    Suspend {
        login: String,
    },
    Resume {
        login: String,
    },
    Remove {
        login: String,
    },
    /// Replace the collaborator's rights (the list as for `add --rights`).
    SetRights {
        login: String,
        rights: String,
    },
    /// Set the collaborator's password, read from standard input.
    SetPassword {
        login: String,
    },
    /// POP3 DELE, and IMAP deletion, expunge and moves, for this
    /// collaborator (the mailbox's deny wins): deny keeps messages on the
    /// server.
    SetPop3Delete {
        login: String,
        value: Pop3DeleteArg,
    },
}

/// A refused or failed admin command. Messages never contain a password.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
    #[error("{0}")]
    Refused(String),
    #[error("the OS random number generator failed: {0}")]
    Random(getrandom::Error),
    #[error("reading or writing: {0}")]
    Io(#[from] std::io::Error),
    #[error("JSON output: {0}")]
    Json(#[from] serde_json::Error),
}

impl AdminError {
    /// A sysexits(3) code for `main` to exit with: 64 for bad input
    /// (EX_USAGE), 69 when the store cannot be used (EX_UNAVAILABLE), 74 for
    /// I/O (EX_IOERR), 1 for a refusal or a missing object.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Invalid { .. } | Self::Password(_) => 64,
            Self::Store(
                StoreError::Database(_)
                | StoreError::Migrate(_)
                | StoreError::SchemaMissing
                | StoreError::SchemaOutdated { .. }
                | StoreError::SchemaTooNew { .. },
            ) => 69,
            Self::Io(_) | Self::Json(_) | Self::Random(_) => 74,
            _ => 1,
        }
    }
}

/// How commands run.
#[derive(Debug, Clone, Copy)]
pub struct AdminOptions {
    /// JSON output for scripts.
    pub json: bool,
    /// Cost of the argon2id hashes created. Keep
    /// [`HashCost::RECOMMENDED`] outside tests.
    pub hash_cost: HashCost,
}

impl Default for AdminOptions {
    fn default() -> Self {
        Self {
            json: false,
            hash_cost: HashCost::RECOMMENDED,
        }
    }
}

/// Runs one command with standard input and output.
pub async fn run(cmd: AdminCommand, store: &dyn AccountStore, json: bool) -> Result<(), AdminError> {
    let options = AdminOptions {
        json,
        ..AdminOptions::default()
    };
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout().lock();
    run_with(cmd, store, &options, &mut input, &mut out).await
}

/// Runs one command with the given input (for passwords) and output.
pub async fn run_with(
    cmd: AdminCommand,
    store: &dyn AccountStore,
    options: &AdminOptions,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    let mut ctx = exec::Context {
        store,
        options,
        input,
        out,
    };
    ctx.run(cmd).await?;
    ctx.out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests;
