use super::*;

fn done(input: &[u8]) -> (usize, Command<'_>) {
    match decode_command(input) {
        Decode::Done { consumed, value } => (consumed, value),
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

fn login_of(input: &[u8]) -> (Vec<u8>, Vec<u8>) {
    match done(input).1.body {
        CommandBody::Login { username, password } => (username.into_owned(), password.into_owned()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn known_answers() {
    // (input, bytes left over, expected command)
    let cases: Vec<(&[u8], &[u8], Command)> = vec![
        (
            b"a1 CAPABILITY\r\n",
            b"",
            Command {
                tag: b"a1",
                body: CommandBody::Capability,
            },
        ),
        (
            b"A NOOP\r\nB LOGOUT\r\n",
            b"B LOGOUT\r\n",
            Command {
                tag: b"A",
                body: CommandBody::Noop,
            },
        ),
        (
            b"x logout\r\n",
            b"",
            Command {
                tag: b"x",
                body: CommandBody::Logout,
            },
        ),
        (
            b"t.1 StartTLS\r\n",
            b"",
            Command {
                tag: b"t.1",
                body: CommandBody::StartTls,
            },
        ),
        (
            b"a LOGIN alice@pec.example s3cret\r\n",
            b"",
            Command {
                tag: b"a",
                body: CommandBody::Login {
                    username: Cow::Borrowed(b"alice@pec.example"),
                    password: Cow::Borrowed(b"s3cret"),
                },
            },
        ),
        (
            b"a AUTHENTICATE PLAIN\r\n",
            b"",
            Command {
                tag: b"a",
                body: CommandBody::Authenticate {
                    mechanism: b"PLAIN",
                    initial_response: None,
                },
            },
        ),
        (
            b"a AUTHENTICATE plain AGFsaWNlAHB3\r\n",
            b"",
            Command {
                tag: b"a",
                body: CommandBody::Authenticate {
                    mechanism: b"plain",
                    initial_response: Some(b"AGFsaWNlAHB3"),
                },
            },
        ),
        (
            b"a AUTHENTICATE PLAIN =\r\n",
            b"",
            Command {
                tag: b"a",
                body: CommandBody::Authenticate {
                    mechanism: b"PLAIN",
                    initial_response: Some(b"="),
                },
            },
        ),
        (
            b"a ID NIL\r\n",
            b"",
            Command {
                tag: b"a",
                body: CommandBody::Id(None),
            },
        ),
        (
            b"a ID (\"name\" \"Thunderbird\" \"version\" NIL)\r\n",
            b"",
            Command {
                tag: b"a",
                body: CommandBody::Id(Some(vec![
                    (Cow::Borrowed(b"name"), Some(Cow::Borrowed(b"Thunderbird"))),
                    (Cow::Borrowed(b"version"), None),
                ])),
            },
        ),
        (
            b"a ID ()\r\n",
            b"",
            Command {
                tag: b"a",
                body: CommandBody::Id(Some(vec![])),
            },
        ),
        (
            b"a SELECT INBOX\r\n",
            b"",
            Command {
                tag: b"a",
                body: CommandBody::Other { name: b"SELECT" },
            },
        ),
        (
            b"a APPEND x {3+}\r\nabc\r\n",
            b"abc\r\n",
            Command {
                tag: b"a",
                body: CommandBody::Other { name: b"APPEND" },
            },
        ),
        (
            b"a FOO {bar\r\n",
            b"",
            Command {
                tag: b"a",
                body: CommandBody::Other { name: b"FOO" },
            },
        ),
    ];
    for (input, remainder, expected) in cases {
        let (consumed, got) = done(input);
        assert_eq!(got, expected, "{:?}", String::from_utf8_lossy(input));
        assert_eq!(&input[consumed..], remainder);
    }
}

#[test]
fn login_astring_forms() {
    let cases: &[(&[u8], &[u8], &[u8])] = &[
        (b"a LOGIN alice pw\r\n", b"alice", b"pw"),
        (b"a LOGIN \"alice\" \"p w\"\r\n", b"alice", b"p w"),
        (
            b"a LOGIN \"al\\\"ice\" \"back\\\\slash\"\r\n",
            b"al\"ice",
            b"back\\slash",
        ),
        (b"a LOGIN {5}\r\nalice {2}\r\npw\r\n", b"alice", b"pw"),
        (b"a LOGIN {5+}\r\nalice {2+}\r\npw\r\n", b"alice", b"pw"),
        (b"a LOGIN \"\" \"\"\r\n", b"", b""),
        (
            b"a LOGIN name/shared@pec.example \"\xc3\xa8\"\r\n",
            b"name/shared@pec.example",
            "è".as_bytes(),
        ),
        (b"a LOGIN alice ]pw]\r\n", b"alice", b"]pw]"),
    ];
    for (input, user, pass) in cases {
        assert_eq!(
            login_of(input),
            (user.to_vec(), pass.to_vec()),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn literal_announcements() {
    assert_eq!(
        decode_command(b"a LOGIN {5}\r\n"),
        Decode::LiteralAnnounced {
            offset: 13,
            length: 5,
            sync: true
        }
    );
    assert_eq!(
        decode_command(b"a LOGIN {5}\r\nali"),
        Decode::LiteralAnnounced {
            offset: 13,
            length: 5,
            sync: true
        }
    );
    assert_eq!(
        decode_command(b"a LOGIN {5}\r\nalice {4294967296+}\r\n"),
        Decode::LiteralAnnounced {
            offset: 34,
            length: 4294967296,
            sync: false
        }
    );
    assert_eq!(
        decode_command(b"a LOGIN {99999999999999999999}\r\n"),
        Decode::Failed("literal length out of range")
    );
}

#[test]
fn failures() {
    let cases: &[&[u8]] = &[
        b"a LOGIN alice\r\n",
        b"a LOGIN alice pw extra\r\n",
        b"a LOGIN alice pw\n",
        b"a LOGIN \"al\rice\" pw\r\n",
        b"a LOGIN \"a\\x\" pw\r\n",
        b"a LOGIN {3}\r\na\0c pw\r\n",
        b" NOOP\r\n",
        b"+tag NOOP\r\n",
        b"a NOOP extra\r\n",
        b"a AUTHENTICATE\r\n",
        b"a AUTHENTICATE PLAIN !!!\r\n",
        b"a ID (\"name\")\r\n",
        b"a\x00 NOOP\r\n",
    ];
    for input in cases {
        assert!(
            matches!(decode_command(input), Decode::Failed(_)),
            "{:?} gave {:?}",
            String::from_utf8_lossy(input),
            decode_command(input)
        );
    }
}

/// Every proper prefix of a valid command needs more bytes: the parser
/// never commits to a shorter reading of a partial command.
#[test]
fn every_prefix_needs_more() {
    let valid: &[&[u8]] = &[
        b"a1 CAPABILITY\r\n",
        b"a LOGIN alice@pec.example s3cret\r\n",
        b"a LOGIN \"al\\\"ice\" \"p w\"\r\n",
        b"a LOGIN {5}\r\nalice {2+}\r\npw\r\n",
        b"a AUTHENTICATE PLAIN AGFsaWNlAHB3\r\n",
        b"a ID (\"name\" \"Thunderbird\" \"version\" NIL)\r\n",
        b"a SELECT INBOX {5+}\r\n",
    ];
    for input in valid {
        assert!(matches!(decode_command(input), Decode::Done { consumed, .. } if consumed == input.len()));
        for end in 0..input.len() {
            let prefix = &input[..end];
            match decode_command(prefix) {
                Decode::Incomplete | Decode::LiteralAnnounced { .. } => {}
                other => panic!("prefix {:?} gave {other:?}", String::from_utf8_lossy(prefix)),
            }
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
    assert_eq!(decode_auth_line(b"AGFsaWNl"), Decode::Incomplete);
    assert!(matches!(decode_auth_line(b"AG Fs\r\n"), Decode::Failed(_)));
}

#[test]
fn leading_tags() {
    assert_eq!(leading_tag(b"a12 FOO bar"), Some(&b"a12"[..]));
    assert_eq!(leading_tag(b"a12"), None);
    assert_eq!(leading_tag(b" FOO"), None);
    assert_eq!(leading_tag(b"a\"b FOO"), None);
}

#[test]
fn line_end_finds_literal_announcements_only_where_a_string_may_start() {
    let literal = |line: &[u8]| match line_end(line) {
        LineEnd::Literal {
            data_at,
            length,
            sync,
        } => {
            assert_eq!(data_at, line.len());
            Some((length, sync))
        }
        LineEnd::Command => None,
    };
    type Case = (&'static [u8], Option<(u64, bool)>);
    let cases: &[Case] = &[
        (b"a LOGIN {5}\r\n", Some((5, true))),
        (b"alice {12+}\r\n", Some((12, false))),
        (b"a ID ({0}\r\n", Some((0, true))),
        (b"a LOGIN alice secret\r\n", None),
        // Not after SP or "(": a string cannot start there.
        (b"a LOGIN x{5}\r\n", None),
        (b"{5}\r\n", None),
        // Inside a quoted string, escapes included.
        (b"a LOGIN \"x {5}\r\n", None),
        (b"a LOGIN \"x\\\" {5}\r\n", None),
        (b"a LOGIN \"x\\\\\" {5}\r\n", Some((5, true))),
        // Not a number64, or not a literal's shape.
        (b"a LOGIN {9223372036854775808}\r\n", None),
        (b"a LOGIN {}\r\n", None),
        (b"a LOGIN {5+ }\r\n", None),
        (b"a LOGIN {5}\n", None),
        (b"a LOGIN {-5}\r\n", None),
    ];
    for (line, expected) in cases {
        assert_eq!(literal(line), *expected, "{:?}", String::from_utf8_lossy(line));
    }
}
