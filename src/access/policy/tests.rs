//! Known-answer tables for [`super::check`].

use std::sync::LazyLock;

use super::*;
use crate::access::password::{HashCost, hash_password_with};
use crate::store::account::{Collaborator, Rights};

const NOW: i64 = 1_800_000_000;
const ADDRESS: &str = "studio@pec.it";

const OWNER_MAIN: &str = "owner main password";
const OWNER_APP: &str = "aaaa-bbbb-cccc-dddd";
const OWNER_APP_EXPIRED: &str = "eeee-ffff-gggg-hhhh";
/// Was the owner's, revoked: no longer in the record.
const OWNER_APP_REVOKED: &str = "iiii-jjjj-kkkk-llll";
const ANNA_MAIN: &str = "anna's own password";
const ANNA_APP: &str = "mmmm-nnnn-oooo-pppp";
const ANNA_APP_EXPIRED: &str = "qqqq-rrrr-ssss-tttt";
const WRONG: &str = "not the password";
const WRONG_APP: &str = "zzzz-zzzz-zzzz-zzzz";

const OWNER_APP_ID: i64 = 1;
const ANNA_APP_ID: i64 = 11;

fn hash(pw: &str) -> String {
    let normalised = app_password::normalise(&Secret::from_slice(pw.as_bytes()))
        .unwrap_or_else(|| Secret::from_slice(pw.as_bytes()));
    hash_password_with(&normalised, HashCost::TEST_ONLY_WEAK).unwrap()
}

fn app(id: i64, pw: &str, expires: Option<i64>) -> AppPassword {
    AppPassword {
        id,
        label: format!("app {id}"),
        hash: hash(pw),
        created: NOW - 100,
        expires,
        last_used: None,
    }
}

/// Hashing is the slow part: build the base record once.
static BASE: LazyLock<MailboxRecord> = LazyLock::new(|| {
    let mut m = MailboxRecord::new(ADDRESS, Some(hash(OWNER_MAIN)));
    m.app_passwords = vec![
        app(OWNER_APP_ID, OWNER_APP, Some(NOW + 3600)),
        app(2, OWNER_APP_EXPIRED, Some(NOW)),
    ];
    m.collaborators = vec![Collaborator {
        name: "anna".into(),
        active: true,
        password_hash: Some(hash(ANNA_MAIN)),
        rights: Rights::parse_list("mail-client").unwrap(),
        pop3_delete: Pop3Delete::Allow,
        app_passwords: vec![
            app(ANNA_APP_ID, ANNA_APP, None),
            app(12, ANNA_APP_EXPIRED, Some(NOW - 1)),
        ],
    }];
    m
});

fn run(
    record: Option<&MailboxRecord>,
    protocol: Protocol,
    login: &[u8],
    password: &str,
) -> Result<Permit, DenyReason> {
    let login = crate::access::login_name::parse_login_name(login, '/').unwrap();
    let password = Secret::from_slice(password.as_bytes());
    let req = Claim {
        protocol,
        login: &login,
        password: &password,
        client_ip: "192.0.2.1".parse().unwrap(),
        tls: true,
    };
    check(&req, record, NOW).map_err(|d| d.reason)
}

/// The credential a permit names: the app password, or the main password
/// whose stored hash is `main_hash`.
fn used(app_password_id: Option<i64>, main_hash: &Option<String>) -> CredentialUsed {
    match app_password_id {
        Some(id) => CredentialUsed::App { id },
        None => CredentialUsed::Main {
            fingerprint: hash_fingerprint(main_hash.as_deref().unwrap()),
        },
    }
}

fn owner_permit(app_password_id: Option<i64>) -> Permit {
    Permit {
        mailbox: ADDRESS.into(),
        collaborator: None,
        route: None,
        pop3_delete: Pop3Delete::Allow,
        app_password_id,
        credential: used(app_password_id, &BASE.password_hash),
        labels: PermitLabels {
            collaborator: false,
            app_password: app_password_id.is_some(),
        },
    }
}

fn anna_permit(app_password_id: Option<i64>) -> Permit {
    Permit {
        collaborator: Some("anna".into()),
        credential: used(app_password_id, &BASE.collaborator("anna").unwrap().password_hash),
        labels: PermitLabels {
            collaborator: true,
            app_password: app_password_id.is_some(),
        },
        ..owner_permit(app_password_id)
    }
}

type Edit = fn(&mut MailboxRecord);
/// (name, edits to the base record, protocol, login, password, expected)
type Row<'a> = (
    &'a str,
    &'a [Edit],
    Protocol,
    &'a [u8],
    &'a str,
    Result<Permit, DenyReason>,
);

fn two_step(m: &mut MailboxRecord) {
    m.two_step = true;
}
fn imap_off(m: &mut MailboxRecord) {
    m.protocols.imap = false;
}
fn pop3_off(m: &mut MailboxRecord) {
    m.protocols.pop3 = false;
}
fn smtp_off(m: &mut MailboxRecord) {
    m.protocols.smtp = false;
}
fn inactive(m: &mut MailboxRecord) {
    m.active = false;
}
fn anna_suspended(m: &mut MailboxRecord) {
    m.collaborators[0].active = false;
}
fn anna_send_only(m: &mut MailboxRecord) {
    m.collaborators[0].rights = Rights::parse_list("send").unwrap();
}
fn anna_read_only(m: &mut MailboxRecord) {
    m.collaborators[0].rights = Rights::parse_list("read,write").unwrap();
}
fn no_main_password(m: &mut MailboxRecord) {
    m.password_hash = None;
}
fn unknown_scheme(m: &mut MailboxRecord) {
    m.password_hash = Some("{PLAIN}owner main password".into());
}
fn routed(m: &mut MailboxRecord) {
    m.route = Some("archive".into());
}
fn anna_read_only_client(m: &mut MailboxRecord) {
    m.collaborators[0].rights = Rights::parse_list("read-only-client").unwrap();
}
fn anna_read_only_client_send(m: &mut MailboxRecord) {
    m.collaborators[0].rights = Rights::parse_list("read-only-client,send").unwrap();
}
fn owner_pop3_deny(m: &mut MailboxRecord) {
    m.pop3_delete = Pop3Delete::Deny;
}
fn anna_pop3_deny(m: &mut MailboxRecord) {
    m.collaborators[0].pop3_delete = Pop3Delete::Deny;
}

#[test]
fn known_answers() {
    use DenyReason as R;
    use Protocol::{Imap, Pop3, Smtp};
    let owner = b"studio@pec.it".as_slice();
    let anna = b"anna/studio@pec.it".as_slice();
    let deny_pop3 = Permit {
        pop3_delete: Pop3Delete::Deny,
        ..anna_permit(None)
    };
    let read_only = Permit {
        pop3_delete: Pop3Delete::ReadOnly,
        ..anna_permit(None)
    };
    let routed_permit = Permit {
        route: Some("archive".into()),
        ..owner_permit(None)
    };
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        ("owner main", &[], Imap, owner, OWNER_MAIN, Ok(owner_permit(None))),
        ("owner main, any case login", &[], Pop3, b"Studio@PEC.it", OWNER_MAIN, Ok(owner_permit(None))),
        ("owner app", &[], Smtp, owner, OWNER_APP, Ok(owner_permit(Some(OWNER_APP_ID)))),
        ("owner app, spaces", &[], Imap, owner, "aaaa bbbb cccc dddd", Ok(owner_permit(Some(OWNER_APP_ID)))),
        ("owner app, run together, upper", &[], Imap, owner, "AAAABBBBCCCCDDDD", Ok(owner_permit(Some(OWNER_APP_ID)))),
        ("owner expired app", &[], Imap, owner, OWNER_APP_EXPIRED, Err(R::AppPasswordExpired)),
        ("owner revoked app", &[], Imap, owner, OWNER_APP_REVOKED, Err(R::UnknownOrBadPassword)),
        ("owner wrong", &[], Imap, owner, WRONG, Err(R::UnknownOrBadPassword)),
        ("owner wrong app-shaped", &[], Imap, owner, WRONG_APP, Err(R::UnknownOrBadPassword)),
        ("owner empty password", &[], Imap, owner, "", Err(R::UnknownOrBadPassword)),
        ("owner with anna's password", &[], Imap, owner, ANNA_MAIN, Err(R::UnknownOrBadPassword)),
        ("owner with anna's app", &[], Imap, owner, ANNA_APP, Err(R::UnknownOrBadPassword)),
        ("two-step: owner main", &[two_step], Imap, owner, OWNER_MAIN, Err(R::AppPasswordRequired)),
        ("two-step: owner app", &[two_step], Imap, owner, OWNER_APP, Ok(owner_permit(Some(OWNER_APP_ID)))),
        ("two-step: owner expired", &[two_step], Imap, owner, OWNER_APP_EXPIRED, Err(R::AppPasswordExpired)),
        ("two-step: owner wrong", &[two_step], Imap, owner, WRONG, Err(R::UnknownOrBadPassword)),
        ("imap off: right password", &[imap_off], Imap, owner, OWNER_MAIN, Err(R::ProtocolDisabled)),
        ("imap off: wrong password hides it", &[imap_off], Imap, owner, WRONG, Err(R::UnknownOrBadPassword)),
        ("imap off: pop3 still on", &[imap_off], Pop3, owner, OWNER_MAIN, Ok(owner_permit(None))),
        ("pop3 off", &[pop3_off], Pop3, owner, OWNER_APP, Err(R::ProtocolDisabled)),
        ("smtp off", &[smtp_off], Smtp, owner, OWNER_MAIN, Err(R::ProtocolDisabled)),
        ("smtp off beats two-step", &[smtp_off, two_step], Smtp, owner, OWNER_MAIN, Err(R::ProtocolDisabled)),
        ("two-step off: app still fine", &[], Pop3, owner, OWNER_APP, Ok(owner_permit(Some(OWNER_APP_ID)))),
        ("inactive mailbox looks unknown", &[inactive], Imap, owner, OWNER_MAIN, Err(R::UnknownOrBadPassword)),
        ("inactive beats protocol off", &[inactive, imap_off], Imap, owner, OWNER_MAIN, Err(R::UnknownOrBadPassword)),
        ("no main password set", &[no_main_password], Imap, owner, OWNER_MAIN, Err(R::UnknownOrBadPassword)),
        ("no main password, app works", &[no_main_password], Imap, owner, OWNER_APP, Ok(owner_permit(Some(OWNER_APP_ID)))),
        ("unusable hash never matches", &[unknown_scheme], Imap, owner, OWNER_MAIN, Err(R::UnknownOrBadPassword)),
        ("route override carried", &[routed], Imap, owner, OWNER_MAIN, Ok(routed_permit)),
        ("owner pop3_delete", &[owner_pop3_deny], Pop3, owner, OWNER_MAIN, Ok(Permit { pop3_delete: Pop3Delete::Deny, ..owner_permit(None) })),
        ("anna main", &[], Imap, anna, ANNA_MAIN, Ok(anna_permit(None))),
        ("anna, name in any case", &[], Imap, b"ANNA/studio@pec.it", ANNA_MAIN, Ok(anna_permit(None))),
        ("anna app", &[], Smtp, anna, ANNA_APP, Ok(anna_permit(Some(ANNA_APP_ID)))),
        ("anna expired app", &[], Imap, anna, ANNA_APP_EXPIRED, Err(R::AppPasswordExpired)),
        ("anna with the owner's password", &[], Imap, anna, OWNER_MAIN, Err(R::UnknownOrBadPassword)),
        ("anna with the owner's app", &[], Imap, anna, OWNER_APP, Err(R::UnknownOrBadPassword)),
        ("anna wrong", &[], Imap, anna, WRONG, Err(R::UnknownOrBadPassword)),
        ("unknown collaborator", &[], Imap, b"bruno/studio@pec.it", ANNA_MAIN, Err(R::UnknownOrBadPassword)),
        ("unknown collaborator, owner's password", &[], Imap, b"bruno/studio@pec.it", OWNER_MAIN, Err(R::UnknownOrBadPassword)),
        ("two-step: anna main", &[two_step], Imap, anna, ANNA_MAIN, Err(R::AppPasswordRequired)),
        ("two-step: anna app", &[two_step], Pop3, anna, ANNA_APP, Ok(anna_permit(Some(ANNA_APP_ID)))),
        ("anna suspended", &[anna_suspended], Imap, anna, ANNA_MAIN, Err(R::CollaboratorSuspended)),
        ("anna suspended, wrong password hides it", &[anna_suspended], Imap, anna, WRONG, Err(R::UnknownOrBadPassword)),
        ("anna suspended, owner unaffected", &[anna_suspended], Imap, owner, OWNER_MAIN, Ok(owner_permit(None))),
        ("anna send-only: smtp (no write: read-only)", &[anna_send_only], Smtp, anna, ANNA_MAIN, Ok(read_only.clone())),
        ("anna send-only: imap", &[anna_send_only], Imap, anna, ANNA_MAIN, Err(R::NotPermitted)),
        ("anna send-only: pop3", &[anna_send_only], Pop3, anna, ANNA_APP, Err(R::NotPermitted)),
        ("anna read-only: smtp", &[anna_read_only], Smtp, anna, ANNA_MAIN, Err(R::NotPermitted)),
        ("anna: protocol off first", &[anna_read_only, smtp_off], Smtp, anna, ANNA_MAIN, Err(R::ProtocolDisabled)),
        ("anna: suspended before rights", &[anna_read_only, anna_suspended], Smtp, anna, ANNA_MAIN, Err(R::CollaboratorSuspended)),
        ("anna: rights before two-step", &[anna_read_only, two_step], Imap, anna, ANNA_MAIN, Err(R::NotPermitted)),
        ("anna: inactive mailbox", &[inactive], Imap, anna, ANNA_MAIN, Err(R::UnknownOrBadPassword)),
        ("anna pop3_delete deny wins", &[anna_pop3_deny], Pop3, anna, ANNA_MAIN, Ok(deny_pop3.clone())),
        ("owner's deny applies to anna", &[owner_pop3_deny], Pop3, anna, ANNA_MAIN, Ok(deny_pop3)),
        ("anna read-only client: imap", &[anna_read_only_client], Imap, anna, ANNA_MAIN, Ok(read_only.clone())),
        ("anna read-only client: pop3", &[anna_read_only_client], Pop3, anna, ANNA_MAIN, Ok(read_only.clone())),
        ("anna read-only client: no smtp", &[anna_read_only_client], Smtp, anna, ANNA_MAIN, Err(R::NotPermitted)),
        ("anna read-only client, send: smtp", &[anna_read_only_client_send], Smtp, anna, ANNA_MAIN, Ok(read_only.clone())),
        ("read-only beats the owner's deny", &[anna_read_only_client, owner_pop3_deny], Imap, anna, ANNA_MAIN, Ok(read_only)),
        ("the owner is never read-only", &[anna_read_only_client], Imap, owner, OWNER_MAIN, Ok(owner_permit(None))),
    ];
    for (name, edits, protocol, login, password, expected) in table {
        let mut record = BASE.clone();
        for edit in edits {
            edit(&mut record);
        }
        assert_eq!(run(Some(&record), protocol, login, password), expected, "{name}");
    }
}

#[test]
fn unknown_mailbox_is_bad_password() {
    let other = MailboxRecord {
        address: "other@pec.it".into(),
        ..BASE.clone()
    };
    for record in [None, Some(&other)] {
        for password in [OWNER_MAIN, OWNER_APP] {
            assert_eq!(
                run(record, Protocol::Imap, b"studio@pec.it", password),
                Err(DenyReason::UnknownOrBadPassword)
            );
        }
    }
}

/// Every combination of principal × two-step × credential × protocol ×
/// switch × mailbox active × (collaborator active × rights), against the
/// rules written as a decision table.
#[test]
fn every_combination() {
    use DenyReason as R;
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Cred {
        Main,
        App,
        Expired,
        Revoked,
        Wrong,
        OtherMain,
        OtherApp,
    }
    const CREDS: [Cred; 7] = [
        Cred::Main,
        Cred::App,
        Cred::Expired,
        Cred::Revoked,
        Cred::Wrong,
        Cred::OtherMain,
        Cred::OtherApp,
    ];
    let rights_choices = [
        Rights::parse_list("mail-client").unwrap(),
        Rights::parse_list("send").unwrap(),
        Rights::parse_list("read,write").unwrap(),
    ];
    let mut cases = 0;
    for is_anna in [false, true] {
        for two_step in [false, true] {
            for cred in CREDS {
                for protocol in [Protocol::Imap, Protocol::Pop3, Protocol::Smtp] {
                    for switch_on in [true, false] {
                        for active in [true, false] {
                            for anna_active in [true, false] {
                                for rights in rights_choices {
                                    if !is_anna && (!anna_active || rights != rights_choices[0]) {
                                        continue; // collaborator settings don't matter to the owner
                                    }
                                    let mut m = BASE.clone();
                                    m.two_step = two_step;
                                    m.protocols.set(protocol, switch_on);
                                    m.active = active;
                                    m.collaborators[0].active = anna_active;
                                    m.collaborators[0].rights = rights;
                                    let (login, password): (&[u8], &str) = match (is_anna, cred) {
                                        (false, Cred::Main) => (b"studio@pec.it", OWNER_MAIN),
                                        (false, Cred::App) => (b"studio@pec.it", OWNER_APP),
                                        (false, Cred::Expired) => (b"studio@pec.it", OWNER_APP_EXPIRED),
                                        (false, Cred::Revoked) => (b"studio@pec.it", OWNER_APP_REVOKED),
                                        (false, Cred::Wrong) => (b"studio@pec.it", WRONG),
                                        (false, Cred::OtherMain) => (b"studio@pec.it", ANNA_MAIN),
                                        (false, Cred::OtherApp) => (b"studio@pec.it", ANNA_APP),
                                        (true, Cred::Main) => (b"anna/studio@pec.it", ANNA_MAIN),
                                        (true, Cred::App) => (b"anna/studio@pec.it", ANNA_APP),
                                        (true, Cred::Expired) => (b"anna/studio@pec.it", ANNA_APP_EXPIRED),
                                        (true, Cred::Revoked) => (b"anna/studio@pec.it", OWNER_APP_REVOKED),
                                        (true, Cred::Wrong) => (b"anna/studio@pec.it", WRONG_APP),
                                        (true, Cred::OtherMain) => (b"anna/studio@pec.it", OWNER_MAIN),
                                        (true, Cred::OtherApp) => (b"anna/studio@pec.it", OWNER_APP),
                                    };
                                    // The rules, as a decision table.
                                    let expected: Result<bool, R> =
                                        if !matches!(cred, Cred::Main | Cred::App | Cred::Expired) || !active
                                        {
                                            Err(R::UnknownOrBadPassword)
                                        } else if !switch_on {
                                            Err(R::ProtocolDisabled)
                                        } else if is_anna && !anna_active {
                                            Err(R::CollaboratorSuspended)
                                        } else if is_anna && !rights.allow(protocol) {
                                            Err(R::NotPermitted)
                                        } else if cred == Cred::Expired {
                                            Err(R::AppPasswordExpired)
                                        } else if cred == Cred::Main && two_step {
                                            Err(R::AppPasswordRequired)
                                        } else {
                                            Ok(cred == Cred::App)
                                        };
                                    let got = run(Some(&m), protocol, login, password).map(|p| {
                                        assert_eq!(p.mailbox, ADDRESS);
                                        assert_eq!(p.collaborator.is_some(), is_anna);
                                        p.app_password_id.is_some()
                                    });
                                    assert_eq!(
                                        got, expected,
                                        "anna={is_anna} two_step={two_step} {cred:?} {protocol} on={switch_on} active={active} anna_active={anna_active} {rights:?}"
                                    );
                                    cases += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(cases, 2 * 7 * 3 * 2 * 2 + 2 * 7 * 3 * 2 * 2 * 2 * 3);
}

#[test]
fn labels_are_distinct_snake_case() {
    let labels: std::collections::HashSet<_> = DenyReason::ALL.iter().map(|r| r.label()).collect();
    assert_eq!(labels.len(), DenyReason::ALL.len());
    for l in labels {
        assert!(l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{l}");
    }
    let d = Denial::from(DenyReason::ProtocolDisabled);
    assert_eq!(d.label(), "protocol_disabled");
}

/// A session's claim as the login of `login`/`password` over `protocol`
/// on the base record left it.
fn session_of(
    protocol: Protocol,
    login: &[u8],
    password: &str,
) -> (Option<String>, CredentialUsed, Pop3Delete) {
    let permit = run(Some(&BASE), protocol, login, password).expect("logs in on the base record");
    (permit.collaborator, permit.credential, permit.pop3_delete)
}

#[test]
fn recheck_ends_a_session_for_each_change_and_only_its_own() {
    use Protocol::*;
    use RevokeReason as R;
    let (owner, anna) = (b"studio@pec.it".as_slice(), b"anna/studio@pec.it".as_slice());
    /// (name, change to the base record, protocol, login, password, expected)
    type RecheckRow<'a> = (&'a str, Edit, Protocol, &'a [u8], &'a str, Result<Option<i64>, R>);
    fn anna_of(m: &mut MailboxRecord) -> &mut Collaborator {
        m.collaborators.iter_mut().find(|c| c.name == "anna").unwrap()
    }
    #[rustfmt::skip]
    let rows: &[RecheckRow] = &[
        ("no change: owner main", |_| {}, Imap, owner, OWNER_MAIN, Ok(None)),
        ("no change: owner app", |_| {}, Imap, owner, OWNER_APP, Ok(Some(NOW + 3600))),
        ("no change: anna app", |_| {}, Smtp, anna, ANNA_APP, Ok(None)),
        ("mailbox deactivated", |m| m.active = false, Imap, owner, OWNER_MAIN, Err(R::MailboxInactive)),
        ("imap off: imap session", |m| m.protocols.imap = false, Imap, anna, ANNA_MAIN, Err(R::ProtocolDisabled)),
        ("imap off: pop3 session stays", |m| m.protocols.imap = false, Pop3, anna, ANNA_MAIN, Ok(None)),
        ("anna suspended: anna", |m| anna_of(m).active = false, Pop3, anna, ANNA_APP, Err(R::CollaboratorSuspended)),
        ("anna suspended: owner stays", |m| anna_of(m).active = false, Pop3, owner, OWNER_MAIN, Ok(None)),
        ("anna removed", |m| m.collaborators.clear(), Smtp, anna, ANNA_MAIN, Err(R::CollaboratorRemoved)),
        ("anna send-only: imap", |m| anna_of(m).rights = Rights::parse_list("send").unwrap(), Imap, anna, ANNA_MAIN, Err(R::NotPermitted)),
        ("anna send-only: smtp stays", |m| anna_of(m).rights = Rights::parse_list("send").unwrap(), Smtp, anna, ANNA_MAIN, Ok(None)),
        ("owner password changed", |m| m.password_hash = Some(hash("new")), Imap, owner, OWNER_MAIN, Err(R::PasswordChanged)),
        ("owner password changed: app session stays", |m| m.password_hash = Some(hash("new")), Imap, owner, OWNER_APP, Ok(Some(NOW + 3600))),
        ("owner password changed: anna stays", |m| m.password_hash = Some(hash("new")), Imap, anna, ANNA_MAIN, Ok(None)),
        ("anna password changed", |m| anna_of(m).password_hash = Some(hash("new")), Imap, anna, ANNA_MAIN, Err(R::PasswordChanged)),
        ("two-step on: main", |m| m.two_step = true, Smtp, owner, OWNER_MAIN, Err(R::AppPasswordRequired)),
        ("two-step on: anna main", |m| m.two_step = true, Smtp, anna, ANNA_MAIN, Err(R::AppPasswordRequired)),
        ("two-step on: app stays", |m| m.two_step = true, Smtp, anna, ANNA_APP, Ok(None)),
        ("owner app revoked", |m| m.app_passwords.retain(|a| a.id != OWNER_APP_ID), Imap, owner, OWNER_APP, Err(R::AppPasswordRevoked)),
        ("owner app revoked: anna app stays", |m| m.app_passwords.retain(|a| a.id != OWNER_APP_ID), Imap, anna, ANNA_APP, Ok(None)),
        ("anna app revoked", |m| anna_of(m).app_passwords.clear(), Imap, anna, ANNA_APP, Err(R::AppPasswordRevoked)),
        ("owner app expired", |m| m.app_passwords[0].expires = Some(NOW), Imap, owner, OWNER_APP, Err(R::AppPasswordExpired)),
        ("owner app extended", |m| m.app_passwords[0].expires = None, Imap, owner, OWNER_APP, Ok(None)),
        ("keep on server turned on: owner", |m| m.pop3_delete = Pop3Delete::Deny, Pop3, owner, OWNER_MAIN, Err(R::AccessReduced)),
        ("keep on server turned on: anna", |m| m.pop3_delete = Pop3Delete::Deny, Imap, anna, ANNA_MAIN, Err(R::AccessReduced)),
        ("anna read-only: anna imap", |m| anna_of(m).rights = Rights::parse_list("read-only-client").unwrap(), Imap, anna, ANNA_MAIN, Err(R::AccessReduced)),
        ("anna read-only: owner stays", |m| anna_of(m).rights = Rights::parse_list("read-only-client").unwrap(), Imap, owner, OWNER_MAIN, Ok(None)),
    ];
    for (name, change, protocol, login, password, expected) in rows {
        let (collaborator, credential, access) = session_of(*protocol, login, password);
        let mut record = BASE.clone();
        change(&mut record);
        let claim = SessionClaim {
            protocol: *protocol,
            mailbox: ADDRESS,
            collaborator: collaborator.as_deref(),
            credential,
            access,
        };
        assert_eq!(recheck(&claim, Some(&record), NOW), *expected, "{name}");
    }
    // Removed: no record at all.
    let (_, credential, access) = session_of(Protocol::Imap, owner, OWNER_MAIN);
    let claim = SessionClaim {
        protocol: Protocol::Imap,
        mailbox: ADDRESS,
        collaborator: None,
        credential,
        access,
    };
    assert_eq!(recheck(&claim, None, NOW), Err(R::MailboxInactive));
    // An app password expires with time alone.
    let (_, credential, _) = session_of(Protocol::Imap, owner, OWNER_APP);
    let claim = SessionClaim { credential, ..claim };
    assert_eq!(
        recheck(&claim, Some(&BASE), NOW + 3600),
        Err(R::AppPasswordExpired)
    );
}

#[test]
fn revoke_labels_are_distinct_snake_case() {
    let labels: std::collections::HashSet<_> = RevokeReason::ALL.iter().map(|r| r.label()).collect();
    assert_eq!(labels.len(), RevokeReason::ALL.len());
    for l in labels {
        assert!(l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{l}");
    }
}
