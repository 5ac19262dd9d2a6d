//! Carrying out admin commands against the store.

use std::io::{BufRead, Write};

use serde_json::json;
use zeroize::Zeroizing;

use super::output::{print_access_log, print_app_passwords, print_mailbox, print_new_app_password};
use super::{
    AdminCommand, AdminError, AdminOptions, AppPasswordCommand, CollaboratorCommand, MailboxCommand,
    PasswordSource, Pop3DeleteArg,
};
use crate::access::app_password;
use crate::access::login_name::{DEFAULT_SEPARATOR, parse_login_name, parse_mailbox_address};
use crate::access::password::{PasswordScheme, hash_password_with, verify_password};
use crate::protocol::Protocol;
use crate::secret::Secret;
use crate::store::account::{Pop3Delete, Rights};
use crate::store::{AccountStore, NewAppPassword, unix_now};

const DAY: i64 = 86_400;

pub(super) struct Context<'a> {
    pub store: &'a dyn AccountStore,
    pub options: &'a AdminOptions,
    pub input: &'a mut dyn BufRead,
    pub out: &'a mut dyn Write,
}

fn address(raw: &str) -> Result<String, AdminError> {
    parse_mailbox_address(raw).map_err(|e| AdminError::Invalid {
        what: "mailbox address",
        why: e.to_string(),
    })
}

/// `NAME/MAILBOX` → (mailbox, name).
fn collaborator_login(raw: &str) -> Result<(String, String), AdminError> {
    let invalid = |why: String| AdminError::Invalid {
        what: "collaborator (NAME/MAILBOX)",
        why,
    };
    let login = parse_login_name(raw.as_bytes(), DEFAULT_SEPARATOR).map_err(|e| invalid(e.to_string()))?;
    let name = login
        .collaborator
        .ok_or_else(|| invalid("expected NAME/MAILBOX".into()))?;
    Ok((login.mailbox, name))
}

fn pop3_delete(arg: Pop3DeleteArg) -> Pop3Delete {
    match arg {
        Pop3DeleteArg::Allow => Pop3Delete::Allow,
        Pop3DeleteArg::Deny => Pop3Delete::Deny,
    }
}

fn rights(list: &str) -> Result<Rights, AdminError> {
    Rights::parse_list(list).map_err(|why| AdminError::Invalid { what: "rights", why })
}

/// A hash given by the operator must be one we can verify later.
fn checked_hash(hash: &str) -> Result<String, AdminError> {
    PasswordScheme::of(hash)?;
    // Verifying a throwaway password proves the string parses.
    verify_password(&Secret::from_slice(b"\0"), hash)?;
    Ok(hash.to_owned())
}

impl Context<'_> {
    pub(super) async fn run(&mut self, cmd: AdminCommand) -> Result<(), AdminError> {
        match cmd {
            AdminCommand::Mailbox(cmd) => self.mailbox(cmd).await,
            AdminCommand::AppPassword(cmd) => self.app_password(cmd).await,
            AdminCommand::Collaborator(cmd) => self.collaborator(cmd).await,
            AdminCommand::AccessLog { mailbox, limit } => {
                let rows = self.store.access_log(&address(&mailbox)?, limit).await?;
                print_access_log(self.out, self.options.json, &rows)
            }
            AdminCommand::PruneAccessLog { days } => {
                let deleted = self.store.prune_access_log(unix_now() - days * DAY).await?;
                self.done(
                    json!({ "deleted": deleted }),
                    &format!("Deleted {deleted} access-log rows older than {days} days"),
                )
            }
        }
    }

    /// Reads one line from the input as a password; refuses an empty one.
    fn read_password(&mut self) -> Result<Secret, AdminError> {
        let mut line = Zeroizing::new(String::new());
        self.input.read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']);
        if password.is_empty() {
            return Err(AdminError::Invalid {
                what: "password",
                why: "empty (it is read as one line from standard input)".into(),
            });
        }
        Ok(Secret::from_slice(password.as_bytes()))
    }

    fn hash(&self, password: &Secret) -> Result<String, AdminError> {
        Ok(hash_password_with(password, self.options.hash_cost)?)
    }

    /// Prints a confirmation: `value` with `--json`, else `text`.
    fn done(&mut self, value: serde_json::Value, text: &str) -> Result<(), AdminError> {
        if self.options.json {
            serde_json::to_writer(&mut *self.out, &value)?;
            writeln!(self.out)?;
        } else {
            writeln!(self.out, "{text}")?;
        }
        Ok(())
    }

    async fn mailbox(&mut self, cmd: MailboxCommand) -> Result<(), AdminError> {
        match cmd {
            MailboxCommand::Add {
                address: raw,
                password,
            } => {
                let addr = address(&raw)?;
                let hash = self.password_source(&password)?;
                self.store.add_mailbox(&addr, hash.as_deref(), unix_now()).await?;
                let note = if hash.is_none() { " (no password yet)" } else { "" };
                self.done(json!({ "added": addr }), &format!("Added mailbox {addr}{note}"))
            }
            MailboxCommand::Remove { address: raw } => {
                let addr = address(&raw)?;
                self.store.remove_mailbox(&addr).await?;
                self.done(json!({ "removed": addr }), &format!("Removed mailbox {addr}"))
            }
            MailboxCommand::Show { address: raw } => {
                let addr = address(&raw)?;
                let record = self
                    .store
                    .mailbox(&addr)
                    .await?
                    .ok_or(crate::store::StoreError::MailboxNotFound(addr))?;
                print_mailbox(self.out, self.options.json, &record)
            }
            MailboxCommand::List => {
                let all = self.store.mailboxes().await?;
                if self.options.json {
                    serde_json::to_writer(&mut *self.out, &all)?;
                    writeln!(self.out)?;
                } else {
                    for a in all {
                        writeln!(self.out, "{a}")?;
                    }
                }
                Ok(())
            }
            MailboxCommand::Set {
                address: raw,
                imap,
                pop3,
                smtp,
                two_step,
                active,
                pop3_delete: delete,
                route,
                no_route,
            } => {
                let addr = address(&raw)?;
                let mut changed = Vec::new();
                for (protocol, switch) in [
                    (Protocol::Imap, imap),
                    (Protocol::Pop3, pop3),
                    (Protocol::Smtp, smtp),
                ] {
                    if let Some(s) = switch {
                        self.store.set_protocol(&addr, protocol, s.is_on()).await?;
                        changed.push(format!("{protocol}={}", if s.is_on() { "on" } else { "off" }));
                    }
                }
                if let Some(s) = two_step {
                    self.store.set_two_step(&addr, s.is_on()).await?;
                    changed.push(format!("two-step={}", if s.is_on() { "on" } else { "off" }));
                }
                if let Some(s) = active {
                    self.store.set_active(&addr, s.is_on()).await?;
                    changed.push(format!("active={}", if s.is_on() { "on" } else { "off" }));
                }
                if let Some(d) = delete {
                    self.store.set_pop3_delete(&addr, None, pop3_delete(d)).await?;
                    changed.push(format!("pop3-delete={}", pop3_delete(d).as_str()));
                }
                if let Some(r) = &route {
                    self.store.set_route(&addr, Some(r)).await?;
                    changed.push(format!("route={r}"));
                }
                if no_route {
                    self.store.set_route(&addr, None).await?;
                    changed.push("route=none".into());
                }
                if changed.is_empty() {
                    return Err(AdminError::Invalid {
                        what: "mailbox set",
                        why: "nothing to change: give at least one option".into(),
                    });
                }
                let text = format!("Mailbox {addr}: {}", changed.join(", "));
                self.done(json!({ "mailbox": addr, "changed": changed }), &text)
            }
            MailboxCommand::SetPassword { address: raw } => {
                let addr = address(&raw)?;
                let password = self.read_password()?;
                let hash = self.hash(&password)?;
                self.store.set_password_hash(&addr, &hash).await?;
                self.done(
                    json!({ "mailbox": addr, "password": "set" }),
                    &format!("Password of {addr} set"),
                )
            }
            MailboxCommand::ImportHash { address: raw, hash } => {
                let addr = address(&raw)?;
                let hash = if hash == "-" {
                    let line = self.read_password()?;
                    String::from_utf8_lossy(line.expose()).into_owned()
                } else {
                    hash
                };
                let hash = checked_hash(&hash)?;
                self.store.set_password_hash(&addr, &hash).await?;
                self.done(
                    json!({ "mailbox": addr, "password": "imported" }),
                    &format!("Password hash of {addr} imported"),
                )
            }
        }
    }

    fn password_source(&mut self, source: &PasswordSource) -> Result<Option<String>, AdminError> {
        if source.password_stdin {
            let password = self.read_password()?;
            return Ok(Some(self.hash(&password)?));
        }
        source.password_hash.as_deref().map(checked_hash).transpose()
    }

    async fn app_password(&mut self, cmd: AppPasswordCommand) -> Result<(), AdminError> {
        let now = unix_now();
        match cmd {
            AppPasswordCommand::Create {
                address: raw,
                collaborator,
                label,
                expires_days,
                never_expires,
            } => {
                let addr = address(&raw)?;
                let record = self
                    .store
                    .mailbox(&addr)
                    .await?
                    .ok_or_else(|| crate::store::StoreError::MailboxNotFound(addr.clone()))?;
                // As the PEC providers do: with every protocol off an app password
                // cannot be generated ("Non hai abilitato gli accessi").
                if !record.protocols.any() {
                    return Err(AdminError::Refused(format!(
                        "IMAP, POP3 and SMTP are all off for {addr}: turn one on before creating an app password"
                    )));
                }
                let collaborator = collaborator
                    .map(|c| {
                        crate::access::login_name::parse_collaborator_name(&c).map_err(|e| {
                            AdminError::Invalid {
                                what: "collaborator name",
                                why: e.to_string(),
                            }
                        })
                    })
                    .transpose()?;
                let expires = (!never_expires).then(|| now + i64::from(expires_days) * DAY);
                let password = app_password::generate().map_err(AdminError::Random)?;
                let hash = self.app_hash(&password)?;
                let id = self
                    .store
                    .create_app_password(NewAppPassword {
                        mailbox: addr.clone(),
                        collaborator: collaborator.clone(),
                        label: label.clone(),
                        hash,
                        created: now,
                        expires,
                    })
                    .await?;
                let login = match &collaborator {
                    Some(c) => format!("{c}{DEFAULT_SEPARATOR}{addr}"),
                    None => addr,
                };
                print_new_app_password(
                    self.out,
                    self.options.json,
                    id,
                    &login,
                    &label,
                    expires,
                    &password,
                )
            }
            AppPasswordCommand::List { address: raw } => {
                let list = self.store.app_passwords(&address(&raw)?).await?;
                print_app_passwords(self.out, self.options.json, &list, now)
            }
            AppPasswordCommand::Revoke { id } => {
                self.store.revoke_app_password(id).await?;
                self.done(json!({ "revoked": id }), &format!("App password {id} revoked"))
            }
            AppPasswordCommand::Extend { id, days } => {
                let info = self
                    .store
                    .app_password(id)
                    .await?
                    .ok_or(crate::store::StoreError::AppPasswordNotFound(id))?;
                let from = info.expires.map_or(now, |e| e.max(now));
                let expires = from + i64::from(days) * DAY;
                self.store.set_app_password_expiry(id, Some(expires)).await?;
                let text = format!(
                    "App password {id} now expires {}",
                    super::output::when(Some(expires))
                );
                self.done(json!({ "id": id, "expires": expires }), &text)
            }
            AppPasswordCommand::Regenerate { id } => {
                let old = self
                    .store
                    .app_password(id)
                    .await?
                    .ok_or(crate::store::StoreError::AppPasswordNotFound(id))?;
                // Same lifetime as the old one had when created.
                let expires = old.expires.map(|e| now + (e - old.created).max(DAY));
                let password = app_password::generate().map_err(AdminError::Random)?;
                let hash = self.app_hash(&password)?;
                let new_id = self
                    .store
                    .regenerate_app_password(id, &hash, now, expires)
                    .await?;
                let login = match &old.collaborator {
                    Some(c) => format!("{c}{DEFAULT_SEPARATOR}{}", old.mailbox),
                    None => old.mailbox.clone(),
                };
                print_new_app_password(
                    self.out,
                    self.options.json,
                    new_id,
                    &login,
                    &old.label,
                    expires,
                    &password,
                )
            }
        }
    }

    /// App passwords are stored as the hash of their normalised letters.
    fn app_hash(&self, password: &Secret) -> Result<String, AdminError> {
        let normalised = app_password::normalise(password)
            .ok_or_else(|| AdminError::Refused("generated app password has an unexpected shape".into()))?;
        self.hash(&normalised)
    }

    async fn collaborator(&mut self, cmd: CollaboratorCommand) -> Result<(), AdminError> {
        match cmd {
            CollaboratorCommand::Add {
                login,
                password_stdin,
                rights: list,
            } => {
                let (mailbox, name) = collaborator_login(&login)?;
                let rights = rights(&list)?;
                let hash = if password_stdin {
                    let password = self.read_password()?;
                    Some(self.hash(&password)?)
                } else {
                    None
                };
                self.store
                    .add_collaborator(&mailbox, &name, hash.as_deref(), rights, unix_now())
                    .await?;
                let text = format!(
                    "Added collaborator {name}/{mailbox} with rights {}",
                    rights.to_list()
                );
                self.done(
                    json!({ "mailbox": mailbox, "collaborator": name, "rights": rights }),
                    &text,
                )
            }
            CollaboratorCommand::Suspend { login } => self.set_collaborator_active(&login, false).await,
            CollaboratorCommand::Resume { login } => self.set_collaborator_active(&login, true).await,
            CollaboratorCommand::Remove { login } => {
                let (mailbox, name) = collaborator_login(&login)?;
                self.store.remove_collaborator(&mailbox, &name).await?;
                self.done(
                    json!({ "mailbox": mailbox, "removed": name }),
                    &format!("Removed collaborator {name}/{mailbox}"),
                )
            }
            CollaboratorCommand::SetRights { login, rights: list } => {
                let (mailbox, name) = collaborator_login(&login)?;
                let rights = rights(&list)?;
                self.store
                    .set_collaborator_rights(&mailbox, &name, rights)
                    .await?;
                let text = format!("Collaborator {name}/{mailbox}: rights {}", rights.to_list());
                self.done(
                    json!({ "mailbox": mailbox, "collaborator": name, "rights": rights }),
                    &text,
                )
            }
            CollaboratorCommand::SetPassword { login } => {
                let (mailbox, name) = collaborator_login(&login)?;
                let password = self.read_password()?;
                let hash = self.hash(&password)?;
                self.store
                    .set_collaborator_password_hash(&mailbox, &name, &hash)
                    .await?;
                self.done(
                    json!({ "mailbox": mailbox, "collaborator": name, "password": "set" }),
                    &format!("Password of {name}/{mailbox} set"),
                )
            }
            CollaboratorCommand::SetPop3Delete { login, value } => {
                let (mailbox, name) = collaborator_login(&login)?;
                let value = pop3_delete(value);
                self.store.set_pop3_delete(&mailbox, Some(&name), value).await?;
                let text = format!("Collaborator {name}/{mailbox}: pop3-delete={}", value.as_str());
                self.done(
                    json!({ "mailbox": mailbox, "collaborator": name, "pop3_delete": value }),
                    &text,
                )
            }
        }
    }

    async fn set_collaborator_active(&mut self, login: &str, active: bool) -> Result<(), AdminError> {
        let (mailbox, name) = collaborator_login(login)?;
        self.store
            .set_collaborator_active(&mailbox, &name, active)
            .await?;
        let state = if active { "resumed" } else { "suspended" };
        self.done(
            json!({ "mailbox": mailbox, "collaborator": name, "active": active }),
            &format!("Collaborator {name}/{mailbox} {state}"),
        )
    }
}
