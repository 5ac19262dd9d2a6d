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
        (b"EHLO client.example\r\n", b"", Command::Ehlo(b"client.example")),
        (b"ehlo [192.0.2.1]\r\n", b"", Command::Ehlo(b"[192.0.2.1]")),
        (
            b"EHLO my_laptop \r\nQUIT\r\n",
            b"QUIT\r\n",
            Command::Ehlo(b"my_laptop"),
        ),
        (b"HELO x\r\n", b"", Command::Helo(b"x")),
        (
            b"MAIL FROM:<alice@pec.example>\r\n",
            b"",
            Command::Mail {
                from: ReversePath::Mailbox(b"alice@pec.example"),
                params: vec![],
            },
        ),
        (
            b"mail from: <alice@pec.example> SIZE=1000 BODY=8BITMIME\r\n",
            b"",
            Command::Mail {
                from: ReversePath::Mailbox(b"alice@pec.example"),
                params: vec![
                    Param {
                        keyword: b"SIZE",
                        value: Some(b"1000"),
                    },
                    Param {
                        keyword: b"BODY",
                        value: Some(b"8BITMIME"),
                    },
                ],
            },
        ),
        (
            b"MAIL FROM:<> SMTPUTF8\r\n",
            b"",
            Command::Mail {
                from: ReversePath::Null,
                params: vec![Param {
                    keyword: b"SMTPUTF8",
                    value: None,
                }],
            },
        ),
        (
            b"MAIL FROM:<@relay.example,@r2.example:\"a b\"@pec.example>\r\n",
            b"",
            Command::Mail {
                from: ReversePath::Mailbox(b"\"a b\"@pec.example"),
                params: vec![],
            },
        ),
        (
            "MAIL FROM:<josé@pec.example>\r\n".as_bytes(),
            b"",
            Command::Mail {
                from: ReversePath::Mailbox("josé@pec.example".as_bytes()),
                params: vec![],
            },
        ),
        (
            b"RCPT TO:<bob@pec.example> NOTIFY=SUCCESS,FAILURE\r\n",
            b"",
            Command::Rcpt {
                to: b"bob@pec.example",
                params: vec![Param {
                    keyword: b"NOTIFY",
                    value: Some(b"SUCCESS,FAILURE"),
                }],
            },
        ),
        (
            b"RCPT TO:<Postmaster>\r\n",
            b"",
            Command::Rcpt {
                to: b"Postmaster",
                params: vec![],
            },
        ),
        (
            b"RCPT TO:<u@[IPv6:2001:db8::1]>\r\n",
            b"",
            Command::Rcpt {
                to: b"u@[IPv6:2001:db8::1]",
                params: vec![],
            },
        ),
        (b"DATA\r\n", b"", Command::Data),
        (b"data \r\n", b"", Command::Data),
        (b"RSET\r\n", b"", Command::Rset),
        (b"NOOP\r\n", b"", Command::Noop),
        (b"NOOP hello there\r\n", b"", Command::Noop),
        (b"QUIT\r\nNOOP\r\n", b"NOOP\r\n", Command::Quit),
        (b"StartTLS\r\n", b"", Command::StartTls),
        (
            b"AUTH PLAIN\r\n",
            b"",
            Command::Auth {
                mechanism: b"PLAIN",
                initial_response: None,
            },
        ),
        (
            b"AUTH plain AGFsaWNlAHB3\r\n",
            b"",
            Command::Auth {
                mechanism: b"plain",
                initial_response: Some(b"AGFsaWNlAHB3"),
            },
        ),
        (
            b"AUTH LOGIN =\r\n",
            b"",
            Command::Auth {
                mechanism: b"LOGIN",
                initial_response: Some(b"="),
            },
        ),
        (b"VRFY bob\r\n", b"", Command::Vrfy),
        (b"HELP\r\n", b"", Command::Help),
        (b"BDAT 100 LAST\r\n", b"", Command::Bdat),
        (
            b"XCLIENT LOGIN=root\r\n",
            b"",
            Command::Other { name: b"XCLIENT" },
        ),
    ];
    for (input, remainder, expected) in cases {
        let (consumed, got) = done(input);
        assert_eq!(got, expected, "{:?}", String::from_utf8_lossy(input));
        assert_eq!(&input[consumed..], remainder);
    }
}

#[test]
fn failures_name_the_verb_or_the_syntax() {
    let cases: &[(&[u8], Invalid)] = &[
        (b"EHLO\r\n", Invalid::Arguments(Verb::Ehlo)),
        (b"EHLO a b\r\n", Invalid::Arguments(Verb::Ehlo)),
        (b"MAIL FROM:alice@pec.example\r\n", Invalid::Arguments(Verb::Mail)),
        (b"MAIL TO:<a@b>\r\n", Invalid::Arguments(Verb::Mail)),
        (b"MAIL FROM:<a@>\r\n", Invalid::Arguments(Verb::Mail)),
        (b"MAIL FROM:<a..b@c>\r\n", Invalid::Arguments(Verb::Mail)),
        (b"MAIL FROM:<a@b> SIZE==1\r\n", Invalid::Arguments(Verb::Mail)),
        (b"RCPT TO:<>\r\n", Invalid::Arguments(Verb::Rcpt)),
        (b"DATA now\r\n", Invalid::Arguments(Verb::Data)),
        (b"AUTH\r\n", Invalid::Arguments(Verb::Auth)),
        (b"AUTH PLAIN !!!\r\n", Invalid::Arguments(Verb::Auth)),
        (
            b"AUTH ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n",
            Invalid::Arguments(Verb::Auth),
        ),
        (b"STARTTLS now\r\n", Invalid::Arguments(Verb::StartTls)),
        (b"VRFY\r\n", Invalid::Arguments(Verb::Vrfy)),
        (b"\r\n", Invalid::Syntax("syntax error")),
        (b" NOOP\r\n", Invalid::Syntax("syntax error")),
        (b"NOOP\n", Invalid::Syntax("lines must end with CRLF")),
        (b"NO\0OP\r\n", Invalid::Syntax("NUL character in command")),
        (
            b"MAIL FROM:<a\0@b>\r\n",
            Invalid::Syntax("NUL character in command"),
        ),
    ];
    for (input, expected) in cases {
        match decode_command(input) {
            Decode::Failed { consumed, invalid } => {
                assert_eq!(invalid, *expected, "{:?}", String::from_utf8_lossy(input));
                assert_eq!(consumed, input.len());
            }
            other => panic!("{:?} gave {other:?}", String::from_utf8_lossy(input)),
        }
    }
}

/// Every proper prefix of a valid command needs more bytes.
#[test]
fn every_prefix_needs_more() {
    let valid: &[&[u8]] = &[
        b"EHLO client.example\r\n",
        b"MAIL FROM:<alice@pec.example> SIZE=1000 BODY=8BITMIME\r\n",
        b"RCPT TO:<bob@pec.example>\r\n",
        b"AUTH PLAIN AGFsaWNlAHB3\r\n",
        b"DATA\r\n",
        b"STARTTLS\r\n",
        b"XUNKNOWN what ever\r\n",
    ];
    for input in valid {
        assert!(matches!(decode_command(input), Decode::Done { consumed, .. } if consumed == input.len()));
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
fn sizes() {
    let p = |v: &'static [u8]| {
        vec![Param {
            keyword: b"size",
            value: Some(v),
        }]
    };
    assert_eq!(declared_size(&[]), Ok(None));
    assert_eq!(declared_size(&p(b"12345")), Ok(Some(12345)));
    assert_eq!(declared_size(&p(b"99999999999999999999")), Ok(Some(u64::MAX)));
    assert_eq!(declared_size(&p(b"999999999999999999999")), Err(InvalidSize));
    assert_eq!(declared_size(&p(b"12k")), Err(InvalidSize));
    assert_eq!(
        declared_size(&[Param {
            keyword: b"SIZE",
            value: None
        }]),
        Err(InvalidSize)
    );
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
    assert_eq!(decode_auth_line(b"AGFsaWNl"), Decode::Incomplete);
    assert_eq!(
        decode_auth_line(b"AG Fs\r\n"),
        Decode::Failed {
            consumed: 7,
            invalid: Invalid::Syntax("invalid base64")
        }
    );
    assert_eq!(verb_of(b"mail FROM:<"), Some(b"MAIL".to_vec()));
    assert_eq!(verb_of(b"  x"), None);
}
