//! How admin results are shown: a readable layout, or JSON with `--json`.
//! Hashes are never shown (the record types skip them when serialised).

use std::io::Write;

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::AdminError;
use crate::secret::Secret;
use crate::store::account::MailboxRecord;
use crate::store::{AccessLogRow, AppPasswordInfo};

/// A unix time as RFC 3339 UTC, `never` for `None`.
pub(super) fn when(t: Option<i64>) -> String {
    match t {
        None => "never".into(),
        Some(t) => OffsetDateTime::from_unix_timestamp(t)
            .ok()
            .and_then(|d| d.format(&Rfc3339).ok())
            .unwrap_or_else(|| t.to_string()),
    }
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn json_line(out: &mut dyn Write, value: &impl serde::Serialize) -> Result<(), AdminError> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

pub(super) fn print_mailbox(out: &mut dyn Write, json: bool, m: &MailboxRecord) -> Result<(), AdminError> {
    if json {
        let mut value = serde_json::to_value(m)?;
        value["password_set"] = json!(m.password_hash.is_some());
        return json_line(out, &value);
    }
    writeln!(out, "Mailbox      {}", m.address)?;
    writeln!(out, "Active       {}", on_off(m.active))?;
    writeln!(
        out,
        "Password     {}",
        if m.password_hash.is_some() {
            "set"
        } else {
            "not set"
        }
    )?;
    writeln!(
        out,
        "Access       IMAP {}, POP3 {}, SMTP {}",
        on_off(m.protocols.imap),
        on_off(m.protocols.pop3),
        on_off(m.protocols.smtp)
    )?;
    writeln!(out, "Two-step     {}", on_off(m.two_step))?;
    writeln!(out, "POP3 delete  {}", m.pop3_delete.as_str())?;
    writeln!(out, "Route        {}", m.route.as_deref().unwrap_or("default"))?;
    writeln!(out, "App passwords ({})", m.app_passwords.len())?;
    for a in &m.app_passwords {
        writeln!(
            out,
            "  #{:<5} {:<20} created {}  expires {}  last used {}",
            a.id,
            a.label,
            when(Some(a.created)),
            when(a.expires),
            when(a.last_used)
        )?;
    }
    writeln!(out, "Collaborators ({})", m.collaborators.len())?;
    for c in &m.collaborators {
        writeln!(
            out,
            "  {}/{}  {}  rights {}  pop3-delete {}  password {}  app passwords {}",
            c.name,
            m.address,
            if c.active { "active" } else { "SUSPENDED" },
            c.rights.to_list(),
            c.pop3_delete.as_str(),
            if c.password_hash.is_some() {
                "set"
            } else {
                "not set"
            },
            c.app_passwords.len()
        )?;
    }
    Ok(())
}

pub(super) fn print_app_passwords(
    out: &mut dyn Write,
    json: bool,
    list: &[AppPasswordInfo],
    now: i64,
) -> Result<(), AdminError> {
    if json {
        return json_line(out, &list);
    }
    if list.is_empty() {
        writeln!(out, "No app passwords")?;
    }
    for a in list {
        let expired = if a.expires.is_some_and(|e| e <= now) {
            "  EXPIRED"
        } else {
            ""
        };
        writeln!(
            out,
            "#{:<5} {:<24} {:<20} created {}  expires {}  last used {}{expired}",
            a.id,
            a.collaborator.as_deref().unwrap_or("(owner)"),
            a.label,
            when(Some(a.created)),
            when(a.expires),
            when(a.last_used)
        )?;
    }
    Ok(())
}

/// Prints a new app password. This is the only time it is ever shown.
pub(super) fn print_new_app_password(
    out: &mut dyn Write,
    json: bool,
    id: i64,
    login: &str,
    label: &str,
    expires: Option<i64>,
    password: &Secret,
) -> Result<(), AdminError> {
    let shown = String::from_utf8_lossy(password.expose());
    if json {
        return json_line(
            out,
            &json!({ "id": id, "login": login, "label": label, "expires": expires, "password": shown }),
        );
    }
    writeln!(out, "App password #{id} \"{label}\" for {login}")?;
    writeln!(out, "Expires: {}", when(expires))?;
    writeln!(out)?;
    writeln!(out, "    {shown}")?;
    writeln!(out)?;
    writeln!(
        out,
        "Copy it now: it is shown only this once and cannot be viewed again. \
         Type it with or without the hyphens."
    )?;
    Ok(())
}

pub(super) fn print_access_log(
    out: &mut dyn Write,
    json: bool,
    rows: &[AccessLogRow],
) -> Result<(), AdminError> {
    if json {
        return json_line(out, &rows);
    }
    if rows.is_empty() {
        writeln!(out, "No logins recorded")?;
    }
    for r in rows {
        writeln!(
            out,
            "{}  {:<4}  {:<8} {:<24} {:<39} {:<24}{}{}",
            when(Some(r.at)),
            r.protocol,
            r.result,
            r.collaborator.as_deref().unwrap_or("(owner)"),
            r.client_ip,
            r.client_name.as_deref().unwrap_or("-"),
            r.reason.as_deref().map(|x| format!("  {x}")).unwrap_or_default(),
            if r.new_device { "  NEW DEVICE" } else { "" },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
