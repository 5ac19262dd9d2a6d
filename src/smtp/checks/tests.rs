use super::*;

const RULES: HeaderRules = HeaderRules {
    from_header: true,
    no_bcc: true,
    max_line_bytes: 1000,
};

#[test]
fn header_known_answers() {
    let s = "alice@pec.example";
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
    ];
    for (block, expected) in cases {
        assert_eq!(
            check_headers(block, s, RULES),
            *expected,
            "{:?}",
            String::from_utf8_lossy(block)
        );
    }
    let long = format!("From: alice@pec.example\r\nX: {}\r\n", "y".repeat(1000));
    assert_eq!(
        check_headers(long.as_bytes(), s, RULES),
        Err(HeaderRefusal::LineTooLong)
    );
    let off = HeaderRules {
        from_header: false,
        no_bcc: false,
        max_line_bytes: 1000,
    };
    assert_eq!(check_headers(b"Bcc: x@y\r\n", s, off), Ok(()));
}
