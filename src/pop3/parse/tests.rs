use super::*;

fn done(input: &[u8]) -> (usize, Command<'_>) {
    match decode_command(input) {
        Decode::Done { consumed, value } => (consumed, value),
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

#[test]
fn known_answers() {
    // (input, bytes left over, expected command)
    let cases: Vec<(&[u8], &[u8], Command)> = vec![
        (b"CAPA\r\n", b"", Command::Capa),
        (b"capa\r\nSTLS\r\n", b"STLS\r\n", Command::Capa),
        (b"StLs\r\n", b"", Command::Stls),
        (b"QUIT\r\n", b"", Command::Quit),
        (b"NOOP\r\n", b"", Command::Noop),
        (
            b"USER alice@pec.example\r\n",
            b"",
            Command::User(b"alice@pec.example"),
        ),
        (
            b"user anna/shared@pec.example\r\nPASS x\r\n",
            b"PASS x\r\n",
            Command::User(b"anna/shared@pec.example"),
        ),
        (b"PASS s3cret\r\n", b"", Command::Pass(b"s3cret")),
        // RFC 1939 §7: spaces belong to the password.
        (b"PASS s3 cr et \r\n", b"", Command::Pass(b"s3 cr et ")),
        (
            "PASS pàsswörd\r\n".as_bytes(),
            b"",
            Command::Pass("pàsswörd".as_bytes()),
        ),
        (
            b"AUTH\r\n",
            b"",
            Command::Auth {
                mechanism: None,
                initial_response: None,
            },
        ),
        (
            b"AUTH PLAIN\r\n",
            b"",
            Command::Auth {
                mechanism: Some(b"PLAIN"),
                initial_response: None,
            },
        ),
        (
            b"auth plain AGFsaWNlAHB3\r\n",
            b"",
            Command::Auth {
                mechanism: Some(b"plain"),
                initial_response: Some(b"AGFsaWNlAHB3"),
            },
        ),
        (
            b"AUTH LOGIN =\r\n",
            b"",
            Command::Auth {
                mechanism: Some(b"LOGIN"),
                initial_response: Some(b"="),
            },
        ),
        (
            b"APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n",
            b"",
            Command::Apop,
        ),
        (b"RETR 1\r\n", b"", Command::Other { keyword: b"RETR" }),
        (b"STAT\r\n", b"", Command::Other { keyword: b"STAT" }),
        (b"XYZZY a b c\r\n", b"", Command::Other { keyword: b"XYZZY" }),
    ];
    for (input, remainder, expected) in cases {
        let (consumed, got) = done(input);
        assert_eq!(got, expected, "{:?}", String::from_utf8_lossy(input));
        assert_eq!(&input[consumed..], remainder);
    }
}

#[test]
fn failures_name_the_problem() {
    let cases: &[(&[u8], &str)] = &[
        (b"USER\r\n", "syntax error"),
        (b"USER \r\n", "syntax error"),
        (b"USER a b\r\n", "syntax error"),
        (b"PASS\r\n", "syntax error"),
        (b"PASS \r\n", "syntax error"),
        (b"CAPA extra\r\n", "syntax error"),
        (b"CAPA\n", "line must end with CRLF"),
        (b"USER alice\n", "line must end with CRLF"),
        (b"USER al\0ice\r\n", "NUL in command line"),
        (b"PASS a\0b\r\n", "NUL in command line"),
        (b"NOOP\0\r\n", "NUL in command line"),
        (b"STAT\0\r\n", "NUL in command line"),
        (b"\0\r\n", "syntax error"),
        (b"\r\n", "syntax error"),
        (b" CAPA\r\n", "syntax error"),
        (b"AUTH PLAIN !!!\r\n", "syntax error"),
        (b"AUTH AVERYLONGMECHANISMNAME12\r\n", "mechanism name too long"),
        (b"CAPA\rX\r\n", "syntax error"),
    ];
    for (input, why) in cases {
        assert_eq!(
            decode_command(input),
            Decode::Failed(why),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// Every proper prefix of a valid command needs more bytes: the parser
/// never commits to a shorter reading of a partial command.
#[test]
fn every_prefix_needs_more() {
    let valid: &[&[u8]] = &[
        b"CAPA\r\n",
        b"STLS\r\n",
        b"USER alice@pec.example\r\n",
        b"PASS s3 cret\r\n",
        b"AUTH\r\n",
        b"AUTH PLAIN\r\n",
        b"AUTH PLAIN AGFsaWNlAHB3\r\n",
        b"AUTH LOGIN =\r\n",
        b"APOP a b\r\n",
        b"RETR 1\r\n",
    ];
    for input in valid {
        assert!(
            matches!(decode_command(input), Decode::Done { consumed, .. } if consumed == input.len()),
            "{:?}",
            String::from_utf8_lossy(input)
        );
        for end in 0..input.len() {
            let prefix = &input[..end];
            assert_eq!(
                decode_command(prefix),
                Decode::Incomplete,
                "prefix {:?}",
                String::from_utf8_lossy(prefix)
            );
        }
    }
}

#[test]
fn auth_lines() {
    assert_eq!(
        decode_auth_line(b"AGFsaWNlAHB3\r\nrest"),
        Decode::Done {
            consumed: 14,
            value: &b"AGFsaWNlAHB3"[..]
        }
    );
    assert_eq!(
        decode_auth_line(b"*\r\n"),
        Decode::Done {
            consumed: 3,
            value: &b"*"[..]
        }
    );
    assert_eq!(
        decode_auth_line(b"\r\n"),
        Decode::Done {
            consumed: 2,
            value: &b""[..]
        }
    );
    for prefix in [&b""[..], b"AGFs", b"AGFsaWNl\r"] {
        assert_eq!(decode_auth_line(prefix), Decode::Incomplete);
    }
    assert!(matches!(decode_auth_line(b"AG Fs\r\n"), Decode::Failed(_)));
    assert_eq!(
        decode_auth_line(b"AGFs\n"),
        Decode::Failed("line must end with CRLF")
    );
}
