use super::*;
use DenyReason as R;

#[test]
fn imap_known_answers() {
    let table = [
        (
            R::UnknownOrBadPassword,
            "AUTHENTICATIONFAILED",
            "Authentication failed",
        ),
        (
            R::ProtocolDisabled,
            "AUTHORIZATIONFAILED",
            "IMAP access is disabled for this mailbox",
        ),
        (
            R::AppPasswordRequired,
            "AUTHENTICATIONFAILED",
            "Two-step verification is on: use an app password",
        ),
        (
            R::AppPasswordExpired,
            "EXPIRED",
            "This app password has expired: create a new one",
        ),
        (
            R::CollaboratorSuspended,
            "CONTACTADMIN",
            "This collaborator account is suspended: ask the mailbox owner",
        ),
        (
            R::NotPermitted,
            "AUTHORIZATIONFAILED",
            "This collaborator account may not use IMAP on this mailbox",
        ),
        (
            R::StoreUnavailable,
            "UNAVAILABLE",
            "Temporary failure, try again later",
        ),
        (
            R::TooManyFailures,
            "UNAVAILABLE",
            "Too many failed logins, try again later",
        ),
    ];
    for (reason, code, text) in table {
        assert_eq!(reason.imap_reply(), (code, text.to_string()), "{reason:?}");
    }
}

#[test]
fn pop3_known_answers() {
    let table = [
        (R::UnknownOrBadPassword, "-ERR [AUTH] Authentication failed"),
        (
            R::ProtocolDisabled,
            "-ERR [SYS/PERM] POP3 access is disabled for this mailbox",
        ),
        (
            R::AppPasswordRequired,
            "-ERR [AUTH] Two-step verification is on: use an app password",
        ),
        (
            R::AppPasswordExpired,
            "-ERR [AUTH] This app password has expired: create a new one",
        ),
        (
            R::CollaboratorSuspended,
            "-ERR [SYS/PERM] This collaborator account is suspended: ask the mailbox owner",
        ),
        (
            R::NotPermitted,
            "-ERR [SYS/PERM] This collaborator account may not use POP3 on this mailbox",
        ),
        (
            R::StoreUnavailable,
            "-ERR [SYS/TEMP] Temporary failure, try again later",
        ),
        (
            R::TooManyFailures,
            "-ERR [SYS/TEMP] Too many failed logins, try again later",
        ),
    ];
    for (reason, line) in table {
        assert_eq!(reason.pop3_reply(), line, "{reason:?}");
    }
}

#[test]
fn smtp_known_answers() {
    let table = [
        (
            R::UnknownOrBadPassword,
            "535 5.7.8 Authentication credentials invalid",
        ),
        (
            R::ProtocolDisabled,
            "550 5.7.1 SMTP access is disabled for this mailbox",
        ),
        (
            R::AppPasswordRequired,
            "534 5.7.9 Two-step verification is on: use an app password",
        ),
        (
            R::AppPasswordExpired,
            "535 5.7.8 This app password has expired: create a new one",
        ),
        (
            R::CollaboratorSuspended,
            "550 5.7.1 This collaborator account is suspended: ask the mailbox owner",
        ),
        (
            R::NotPermitted,
            "550 5.7.1 This collaborator account may not use SMTP on this mailbox",
        ),
        (R::StoreUnavailable, "454 4.7.0 Temporary authentication failure"),
        (
            R::TooManyFailures,
            "454 4.7.0 Too many failed logins, try again later",
        ),
    ];
    for (reason, line) in table {
        assert_eq!(reason.smtp_reply(), line, "{reason:?}");
    }
}

#[test]
fn labels_are_distinct_snake_case() {
    let labels: std::collections::HashSet<_> = R::ALL.iter().map(|r| r.label()).collect();
    assert_eq!(labels.len(), R::ALL.len());
    for l in labels {
        assert!(l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{l}");
    }
    let d = Denial::from(R::ProtocolDisabled);
    assert_eq!(d.label(), "protocol_disabled");
    assert_eq!(d.smtp_reply(), R::ProtocolDisabled.smtp_reply());
}
