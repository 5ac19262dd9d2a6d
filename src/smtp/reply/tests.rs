use super::*;
use DenyReason as R;

#[test]
fn denied_known_answers() {
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
        assert_eq!(denied(reason), line, "{reason:?}");
    }
}

#[test]
fn lines_written_as_they_are_end_in_crlf() {
    for line in [SHUTDOWN, LOGIN_TIMEOUT, TOO_MANY_ERRORS, TOO_MANY_CONNECTIONS] {
        assert!(line.starts_with(b"421 4.") && line.ends_with(b"\r\n"));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
    }
}
