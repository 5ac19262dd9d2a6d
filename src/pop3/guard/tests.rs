use super::*;

/// Feeds client bytes and upstream chunks in order; returns what the
/// upstream received and what the client received.
fn run(guard: &mut DeleGuard, steps: &[(bool, &[u8])]) -> (String, String) {
    let (mut up, mut client) = (Vec::new(), Vec::new());
    for (from_client, bytes) in steps {
        if *from_client {
            let out = guard.check_client(bytes);
            up.extend(out.to_upstream);
            client.extend(out.to_client);
        } else {
            for seg in guard.scan_upstream(bytes) {
                match seg {
                    Segment::Upstream(r) => client.extend_from_slice(&bytes[r]),
                    Segment::Local(l) => client.extend_from_slice(l),
                }
            }
        }
    }
    (String::from_utf8(up).unwrap(), String::from_utf8(client).unwrap())
}

const REFUSAL: &str = "-ERR [SYS/PERM] This mailbox is shared: messages are kept on the server\r\n";

#[test]
fn dele_is_answered_locally_and_never_forwarded() {
    let mut g = DeleGuard::new(255);
    let (up, client) = run(
        &mut g,
        &[(true, b"DELE 1\r\n"), (true, b"dele 2\r\n"), (true, b"DeLe\r\n")],
    );
    assert_eq!(up, "");
    assert_eq!(client, REFUSAL.repeat(3));
    assert_eq!(g.refused(), 3);
}

#[test]
fn dele_is_refused_however_its_keyword_ends() {
    for line in [
        &b"DELE\t1\r\n"[..],
        b"DELE\x001\r\n",
        b"DELE\x00 1\r\n",
        b"dele\x0b1\r\n",
        b"DELE\xc2\xa01\r\n",
        b"DELE\x7f\r\n",
        b"DELE\n",
    ] {
        let mut g = DeleGuard::new(255);
        let out = g.check_client(line);
        assert_eq!(out.to_upstream, b"", "{:?}", String::from_utf8_lossy(line));
        assert_eq!(out.to_client, DELE_REFUSAL);
    }
    // Longer keywords are other commands.
    let mut g = DeleGuard::new(255);
    assert_eq!(g.check_client(b"DELEX 1\r\n").to_upstream, b"DELEX 1\r\n");
}

#[test]
fn other_commands_pass_unchanged() {
    let mut g = DeleGuard::new(255);
    let (up, client) = run(
        &mut g,
        &[
            (true, b"STAT\r\nDELETE 1\r\nRSET\r\n"),
            (false, b"+OK 2 320\r\n-ERR Unknown command: DELETE\r\n+OK\r\n"),
        ],
    );
    assert_eq!(up, "STAT\r\nDELETE 1\r\nRSET\r\n");
    assert_eq!(client, "+OK 2 320\r\n-ERR Unknown command: DELETE\r\n+OK\r\n");
    assert_eq!(g.refused(), 0);
}

#[test]
fn pipelined_refusal_waits_for_earlier_answers_and_precedes_later_ones() {
    let mut g = DeleGuard::new(255);
    let (up, client) = run(
        &mut g,
        &[
            (true, b"RETR 1\r\nDELE 1\r\nSTAT\r\n"),
            // The RETR answer arrives in pieces, with byte-stuffed lines
            // and a "." inside a line; then STAT's answer.
            (false, b"+OK 30 octets\r\nline\r\n..\r\n"),
            (false, b"...x\r\n.a.\r\n"),
            (false, b".\r\n+OK 2 320\r\n"),
        ],
    );
    assert_eq!(up, "RETR 1\r\nSTAT\r\n");
    assert_eq!(
        client,
        format!("+OK 30 octets\r\nline\r\n..\r\n...x\r\n.a.\r\n.\r\n{REFUSAL}+OK 2 320\r\n")
    );
}

#[test]
fn refusal_is_immediate_when_nothing_is_owed() {
    let mut g = DeleGuard::new(255);
    let out = g.check_client(b"DELE 1\r\n");
    assert_eq!(out.to_client, DELE_REFUSAL);
    assert!(out.to_upstream.is_empty());
}

#[test]
fn multi_line_answers_are_tracked_by_command() {
    // LIST/UIDL with an argument are one line; without, a list. An
    // -ERR to a multi-line command is one line.
    let mut g = DeleGuard::new(255);
    let (_, client) = run(
        &mut g,
        &[
            (
                true,
                b"LIST 1\r\nDELE 1\r\nUIDL\r\nDELE 2\r\nTOP 9 0\r\nDELE 3\r\nCAPA\r\nDELE 4\r\n",
            ),
            (false, b"+OK 1 160\r\n"),
            (false, b"+OK\r\n1 a\r\n2 b\r\n.\r\n"),
            (false, b"-ERR There's no message 9.\r\n"),
            (false, b"+OK\r\nTOP\r\nUIDL\r\n.\r"),
            (false, b"\n"),
        ],
    );
    assert_eq!(
        client,
        format!(
            "+OK 1 160\r\n{REFUSAL}+OK\r\n1 a\r\n2 b\r\n.\r\n{REFUSAL}-ERR There's no message 9.\r\n{REFUSAL}+OK\r\nTOP\r\nUIDL\r\n.\r\n{REFUSAL}"
        )
    );
}

#[test]
fn partial_client_lines_are_joined_and_bounded() {
    let mut g = DeleGuard::new(16);
    let (up, client) = run(
        &mut g,
        &[
            (true, b"DE"),
            (true, b"LE 1\r"),
            (true, b"\nST"),
            (true, b"AT\r\n"),
        ],
    );
    assert_eq!((up.as_str(), client.as_str()), ("STAT\r\n", REFUSAL));
    let (up, client) = run(
        &mut g,
        &[
            (true, b"DELE 1 xxxxxxxxxxxxx"),
            (true, b"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\nNOOP\r\n"),
            (false, b"+OK 1 2\r\n"),
        ],
    );
    assert_eq!(up, "NOOP\r\n", "an over-long line is never forwarded");
    // STAT's answer (owed since the first run), then the refusal of the
    // long line, in that order; NOOP's answer has not arrived.
    assert_eq!(client, "+OK 1 2\r\n-ERR Command line too long\r\n");
}

#[test]
fn the_queue_is_bounded() {
    let mut g = DeleGuard::new(255);
    for _ in 0..MAX_OUTSTANDING {
        assert!(g.wants_client_input());
        g.check_client(b"NOOP\r\n");
    }
    assert!(!g.wants_client_input());
    g.scan_upstream(b"+OK\r\n");
    assert!(g.wants_client_input());
}

#[test]
fn unsolicited_lines_pass_through() {
    let mut g = DeleGuard::new(255);
    let (_, client) = run(&mut g, &[(false, b"-ERR Disconnected for inactivity.\r\n")]);
    assert_eq!(client, "-ERR Disconnected for inactivity.\r\n");
    let (_, client) = run(&mut g, &[(true, b"DELE 1\r\n")]);
    assert_eq!(client, REFUSAL);
}

/// With nothing owed, a refusal still waits for the end of a line the
/// upstream is in the middle of (a farewell split across reads): it
/// never lands inside that line.
#[test]
fn refusal_never_splits_an_unsolicited_line() {
    let mut g = DeleGuard::new(255);
    let (_, client) = run(
        &mut g,
        &[
            (false, b"-ERR Disconnected"),
            (true, b"DELE 1\r\n"),
            (false, b" for inactivity.\r\n"),
        ],
    );
    assert_eq!(client, format!("-ERR Disconnected for inactivity.\r\n{REFUSAL}"));
    // A command sent meanwhile is answered after the refusal, and the
    // line nobody asked for is not taken for its answer.
    let mut g = DeleGuard::new(255);
    let (up, client) = run(
        &mut g,
        &[
            (false, b"-ERR bye"),
            (true, b"DELE 1\r\nSTAT\r\n"),
            (false, b"\r\n+OK 1 2\r\n"),
            (true, b"DELE 2\r\n"),
        ],
    );
    assert_eq!(up, "STAT\r\n");
    assert_eq!(client, format!("-ERR bye\r\n{REFUSAL}+OK 1 2\r\n{REFUSAL}"));
}

/// However the upstream's bytes are chunked, the client gets the same
/// bytes in the same order.
#[test]
fn output_does_not_depend_on_chunking() {
    let upstream: &[u8] =
        b"+OK 3 octets\r\nab\r\n..\r\n.\r\n-ERR no such message\r\n+OK\r\n1 5\r\n.\r\n+OK 1 5\r\n";
    let whole = {
        let mut g = DeleGuard::new(255);
        run(
            &mut g,
            &[
                (
                    true,
                    b"RETR 1\r\nDELE 1\r\nRETR 9\r\nDELE 2\r\nLIST\r\nDELE 3\r\nSTAT\r\n",
                ),
                (false, upstream),
            ],
        )
        .1
    };
    assert_eq!(whole.matches("[SYS/PERM]").count(), 3);
    assert!(whole.ends_with(&format!(".\r\n{REFUSAL}+OK 1 5\r\n")), "{whole}");
    for a in 0..upstream.len() {
        for b in a..upstream.len() {
            let mut g = DeleGuard::new(255);
            let (_, got) = run(
                &mut g,
                &[
                    (
                        true,
                        b"RETR 1\r\nDELE 1\r\nRETR 9\r\nDELE 2\r\nLIST\r\nDELE 3\r\nSTAT\r\n",
                    ),
                    (false, &upstream[..a]),
                    (false, &upstream[a..b]),
                    (false, &upstream[b..]),
                ],
            );
            assert_eq!(got, whole, "split at {a}, {b}");
        }
    }
}
