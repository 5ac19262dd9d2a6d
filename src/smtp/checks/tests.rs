use super::*;

const RULES: HeaderRules = HeaderRules {
    from_header: true,
    no_bcc: true,
    recipients: false,
    max_line_bytes: 1000,
};

const ALL: HeaderRules = HeaderRules {
    recipients: true,
    ..RULES
};

fn rcpts(paths: &[&str]) -> Recipients {
    let mut r = Recipients::default();
    for p in paths {
        r.add(p.as_bytes());
    }
    r
}

#[test]
fn header_known_answers() {
    let s = "alice@pec.example";
    let none = Recipients::default();
    let cases: &[(&[u8], Result<(), HeaderRefusal>)] = &[
        (
            b"From: alice@pec.example\r\nTo: bob@pec.example\r\nSubject: x\r\n",
            Ok(()),
        ),
        (b"From: \"Alice, A.\" <Alice@PEC.example>\r\n", Ok(())),
        (
            b"Subject: x\r\nFrom: Alice (the boss)\r\n <alice@pec.example>\r\n",
            Ok(()),
        ),
        (b"from:alice@pec.example (me)\r\n", Ok(())),
        (b"From: =?utf-8?q?Al=C3=ACce?= <alice@pec.example>\r\n", Ok(())),
        (b"From: mallory@pec.example\r\n", Err(HeaderRefusal::FromMismatch)),
        (b"Subject: no from\r\n", Err(HeaderRefusal::FromMismatch)),
        (
            b"From: alice@pec.example\r\nFrom: alice@pec.example\r\n",
            Err(HeaderRefusal::FromMismatch),
        ),
        (
            b"From: alice@pec.example, bob@pec.example\r\n",
            Err(HeaderRefusal::FromMismatch),
        ),
        (b"From: <alice@pec.example\r\n", Err(HeaderRefusal::FromMismatch)),
        (b"From: team: alice@pec.example;\r\n", Err(HeaderRefusal::FromMismatch)),
        (
            b"From: alice@pec.example\r\nBcc: carol@pec.example\r\n",
            Err(HeaderRefusal::BccPresent),
        ),
        (
            b"From: alice@pec.example\r\nBCC:\r\n",
            Err(HeaderRefusal::BccPresent),
        ),
        (b"From: alice@pec.example\r\nX-Bcc: no\r\n", Ok(())),
        // Dot-stuffed header line.
        (b"..X: y\r\nFrom: alice@pec.example\r\n", Ok(())),
        // Sender:, Resent-From:, Resent-Sender: must be the mailbox too.
        (
            b"From: alice@pec.example\r\nSender: Alice <ALICE@pec.example>\r\nResent-From: alice@pec.example\r\nResent-Sender: alice@pec.example\r\n",
            Ok(()),
        ),
        (
            b"From: alice@pec.example\r\nSender: mallory@pec.example\r\n",
            Err(HeaderRefusal::SenderFieldMismatch),
        ),
        (
            b"From: alice@pec.example\r\nSender: alice@pec.example\r\nSender: alice@pec.example\r\n",
            Err(HeaderRefusal::SenderFieldMismatch),
        ),
        (
            b"From: alice@pec.example\r\nResent-From: alice@pec.example, bob@pec.example\r\n",
            Err(HeaderRefusal::SenderFieldMismatch),
        ),
        (
            b"From: alice@pec.example\r\nResent-Sender: mallory@pec.example\r\n",
            Err(HeaderRefusal::SenderFieldMismatch),
        ),
        // Without the recipients rule, a malformed line is not refused.
        (b"From: alice@pec.example\r\nno colon\r\n", Ok(())),
    ];
    for (block, expected) in cases {
        assert_eq!(
            check_headers(block, s, &none, RULES),
            *expected,
            "{:?}",
            String::from_utf8_lossy(block)
        );
    }
    let long = format!("From: alice@pec.example\r\nX: {}\r\n", "y".repeat(1000));
    assert_eq!(
        check_headers(long.as_bytes(), s, &none, RULES),
        Err(HeaderRefusal::LineTooLong)
    );
    let off = HeaderRules {
        from_header: false,
        no_bcc: false,
        recipients: false,
        max_line_bytes: 1000,
    };
    assert_eq!(
        check_headers(b"Bcc: x@y\r\nResent-To: x@y\r\n", s, &none, off),
        Ok(())
    );
}

/// RFC 6109 §3.1.1: the forward-paths are exactly the `To:` and `Cc:`
/// addresses. Each row: accepted `RCPT TO` mailboxes, the header block
/// after `From:`, the verdict.
#[test]
fn recipients_known_answers() {
    use HeaderRefusal as R;
    let table: &[(&[&str], &str, Result<(), HeaderRefusal>)] = &[
        (&["bob@pec.example"], "To: bob@pec.example\r\n", Ok(())),
        // The blind copy: an RCPT no header names.
        (
            &["bob@pec.example", "hidden@pec.example"],
            "To: bob@pec.example\r\n",
            Err(R::RecipientsMismatch),
        ),
        // A header address that was no RCPT.
        (
            &["bob@pec.example"],
            "To: bob@pec.example, carol@pec.example\r\n",
            Err(R::RecipientsMismatch),
        ),
        (
            &["bob@pec.example", "carol@pec.example"],
            "To: Bob <bob@pec.example>\r\nCc: \"Carol\" <carol@pec.example>\r\n",
            Ok(()),
        ),
        // Several To: and Cc: fields; duplicates; case; folding; comments.
        (
            &["bob@pec.example", "carol@pec.example", "BOB@pec.example"],
            "To: bob@PEC.example\r\nCc: carol@pec.example (C)\r\nTo: Carol\r\n <Carol@pec.example>, bob@pec.example\r\n",
            Ok(()),
        ),
        // Quoted local part; IDN in either form on either side.
        (&["\"bob\"@pec.example"], "To: bob@pec.example\r\n", Ok(())),
        (
            &["bob@xn--bcher-kva.example"],
            "To: bob@bücher.example\r\n",
            Ok(()),
        ),
        (
            &["bob@bücher.example"],
            "To: bob@XN--BCHER-KVA.example\r\n",
            Ok(()),
        ),
        // Groups: members count; an empty group names nobody.
        (
            &["bob@pec.example", "carol@pec.example"],
            "To: team: bob@pec.example, carol@pec.example;\r\n",
            Ok(()),
        ),
        (
            &["bob@pec.example"],
            "To: undisclosed-recipients:;\r\n",
            Err(R::RecipientsMismatch),
        ),
        (
            &["bob@pec.example"],
            "To: undisclosed-recipients:;\r\nCc: bob@pec.example\r\n",
            Ok(()),
        ),
        // No To: at all, even when Cc: names everyone.
        (&["bob@pec.example"], "Cc: bob@pec.example\r\n", Err(R::NoTo)),
        (&["bob@pec.example"], "Subject: x\r\n", Err(R::NoTo)),
        // A list a reader could read two ways.
        (
            &["bob@pec.example", "hidden@pec.example"],
            "To: bob@pec.example hidden@pec.example\r\n",
            Err(R::RecipientsUnreadable),
        ),
        // An RCPT no header can name.
        (
            &["Postmaster"],
            "To: postmaster@pec.example\r\n",
            Err(R::RecipientsMismatch),
        ),
        // Resent- recipients are refused outright.
        (
            &["bob@pec.example"],
            "To: bob@pec.example\r\nResent-To: bob@pec.example\r\n",
            Err(R::ResentRecipients),
        ),
        (
            &["bob@pec.example"],
            "To: bob@pec.example\r\nresent-bcc:\r\n",
            Err(R::ResentRecipients),
        ),
        // A To: hidden after a line a mail server ends the header at.
        (
            &["bob@pec.example", "hidden@pec.example"],
            "To: bob@pec.example\r\nnot a field\r\nTo: hidden@pec.example\r\n",
            Err(R::MalformedField),
        ),
        (
            &["bob@pec.example"],
            "To: bob@pec.example\r\nBad Name: x\r\n",
            Err(R::MalformedField),
        ),
        // Obsolete white space before the colon is a field.
        (&["bob@pec.example"], "To : bob@pec.example\r\n", Ok(())),
    ];
    for (paths, headers, expected) in table {
        let block = format!("From: alice@pec.example\r\n{headers}");
        assert_eq!(
            check_headers(block.as_bytes(), "alice@pec.example", &rcpts(paths), ALL),
            *expected,
            "{paths:?} {headers:?}"
        );
    }
    // The rule off: the blind copy passes (as before the rule).
    let block = b"From: alice@pec.example\r\nTo: bob@pec.example\r\n";
    let blind = rcpts(&["bob@pec.example", "hidden@pec.example"]);
    assert_eq!(check_headers(block, "alice@pec.example", &blind, RULES), Ok(()));
}
