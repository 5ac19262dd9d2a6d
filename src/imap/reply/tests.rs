use super::*;
use DenyReason as R;

#[test]
fn denied_known_answers() {
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
        assert_eq!(denied(reason), (code, text.to_string()), "{reason:?}");
    }
}

#[test]
fn tagged_replies_carry_the_clients_tag() {
    assert_eq!(
        PRIVACY_REQUIRED.to(b"a1"),
        b"a1 NO [PRIVACYREQUIRED] Plaintext authentication is disabled: use STARTTLS or the IMAPS port.\r\n"
    );
    assert_eq!(
        invalid_command(None, "syntax error"),
        b"* BAD Invalid command: syntax error.\r\n"
    );
    assert_eq!(
        invalid_command(Some(b"x"), "syntax error"),
        b"x BAD Invalid command: syntax error.\r\n"
    );
}

#[test]
fn lines_written_as_they_are_end_in_crlf() {
    for line in [SHUTDOWN, LOGIN_TIMEOUT, TOO_MANY_ERRORS, TOO_MANY_CONNECTIONS] {
        assert!(line.starts_with(b"* BYE ") && line.ends_with(b"\r\n"));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
    }
}
