use super::*;
use DenyReason as R;

#[test]
fn denied_known_answers() {
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
        assert_eq!(denied(reason), line, "{reason:?}");
    }
}

#[test]
fn ok_with_and_without_text() {
    assert_eq!(ok(""), b"+OK\r\n");
    assert_eq!(ok("Logged in."), b"+OK Logged in.\r\n");
}

#[test]
fn lines_written_as_they_are_end_in_crlf() {
    for line in [SHUTDOWN, LOGIN_TIMEOUT, TOO_MANY_ERRORS, TOO_MANY_CONNECTIONS] {
        assert!(line.starts_with(b"-ERR ") && line.ends_with(b"\r\n"));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
    }
}
