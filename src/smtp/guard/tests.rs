use super::*;

fn opts() -> GuardOptions {
    GuardOptions {
        hostname: "proxy.example".into(),
        tls: true,
        smtputf8: false,
        check_sender: true,
        check_size: true,
        header_rules: HeaderRules {
            from_header: true,
            no_bcc: true,
            recipients: false,
            max_line_bytes: 1000,
        },
        max_message_bytes: 1000,
        max_command_line_bytes: 512,
        max_header_bytes: 4096,
    }
}

fn guard_with(opts: GuardOptions, per_minute: u32) -> Guard {
    Guard::new(
        opts,
        "alice@pec.example".into(),
        Arc::new(RateLimiter::new(per_minute, 10)),
        b"",
    )
}

fn s(v: Vec<u8>) -> String {
    String::from_utf8(v).unwrap()
}

/// Client sends `c`; returns (to upstream, to client).
fn client(g: &mut Guard, c: &str) -> (String, String) {
    g.client_data(c.as_bytes());
    (s(g.take_to_upstream()), s(g.take_to_client()))
}

fn upstream(g: &mut Guard, u: &str) -> (String, String) {
    g.upstream_data(u.as_bytes());
    (s(g.take_to_upstream()), s(g.take_to_client()))
}

const ENVELOPE: &str = "MAIL FROM:<alice@pec.example>\r\nRCPT TO:<bob@pec.example>\r\nDATA\r\n";

#[test]
fn compliant_message_streams_after_the_header_check() {
    let mut g = guard_with(opts(), 0);
    // Pipelined: MAIL and RCPT go up at once; DATA waits for their verdicts.
    let (up, down) = client(&mut g, ENVELOPE);
    assert_eq!(
        up,
        "MAIL FROM:<alice@pec.example>\r\nRCPT TO:<bob@pec.example>\r\n"
    );
    assert_eq!(down, "");
    let (up, down) = upstream(&mut g, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
    assert_eq!(
        down,
        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
    );
    assert_eq!(up, "");
    // The header block is held until it is complete and checked.
    let (up, _) = client(&mut g, "From: Alice <alice@pec.example>\r\nSubj");
    assert_eq!(up, "");
    let (up, _) = client(&mut g, "ect: hi\r\n\r\nbody line\r\n..stuffed\r\n");
    assert_eq!(up, "DATA\r\n");
    assert!(!g.wants_client_input(), "waiting for the upstream's 354");
    let (up, down) = upstream(&mut g, "354 go ahead\r\n");
    assert_eq!(down, "", "the upstream's 354 is ours");
    assert_eq!(
        up,
        "From: Alice <alice@pec.example>\r\nSubject: hi\r\n\r\nbody line\r\n..stuffed\r\n"
    );
    // The final dot in pieces: held until complete, then sent.
    let (up, _) = client(&mut g, "last\r\n.");
    assert_eq!(up, "last\r\n");
    let (up, _) = client(&mut g, "\r");
    assert_eq!(up, "");
    let (up, _) = client(&mut g, "\nQUIT\r\n");
    assert_eq!(up, ".\r\nQUIT\r\n");
    assert!(g.awaiting_message_verdict());
    let (_, down) = upstream(&mut g, "250 2.0.0 Ok: queued as X\r\n221 2.0.0 Bye\r\n");
    assert_eq!(down, "250 2.0.0 Ok: queued as X\r\n221 2.0.0 Bye\r\n");
    assert!(g.finished());
}

#[test]
fn foreign_sender_is_refused_in_order() {
    let mut g = guard_with(opts(), 0);
    let (up, down) = client(
        &mut g,
        "NOOP\r\nMAIL FROM:<mallory@pec.example>\r\nMAIL FROM:<>\r\nRSET\r\n",
    );
    assert_eq!(up, "NOOP\r\nRSET\r\n");
    assert_eq!(down, "", "local refusals wait behind the NOOP's reply");
    let (_, down) = upstream(&mut g, "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n");
    assert_eq!(
        down,
        format!(
            "250 2.0.0 Ok\r\n{0}\r\n{0}\r\n250 2.0.0 Ok\r\n",
            reply::SENDER_NOT_OWNED
        )
    );
    // The mailbox in any case is fine.
    let (up, _) = client(&mut g, "MAIL FROM:<Alice@PEC.Example> BODY=8BITMIME\r\n");
    assert_eq!(up, "MAIL FROM:<Alice@PEC.Example> BODY=8BITMIME\r\n");
}

#[test]
fn header_refusals_never_reach_the_upstream() {
    for (headers, why) in [
        ("From: mallory@pec.example\r\n", reply::FROM_MISMATCH),
        (
            "From: alice@pec.example\r\nBcc: carol@pec.example\r\n",
            reply::BCC_PRESENT,
        ),
    ] {
        let mut g = guard_with(opts(), 0);
        client(&mut g, ENVELOPE);
        upstream(&mut g, "250 Ok\r\n250 Ok\r\n");
        let (up, down) = client(&mut g, &format!("{headers}\r\nsecret body\r\n.\r\nNOOP\r\n"));
        assert_eq!(up, "RSET\r\nNOOP\r\n", "{why}");
        assert_eq!(down, format!("{why}\r\n"));
        // The hidden RSET's reply is not the client's; the NOOP's is.
        let (_, down) = upstream(&mut g, "250 2.0.0 Flushed\r\n250 2.0.0 Ok\r\n");
        assert_eq!(down, "250 2.0.0 Ok\r\n");
    }
}

#[test]
fn refused_body_is_swallowed_across_reads() {
    let mut g = guard_with(opts(), 0);
    client(&mut g, ENVELOPE);
    upstream(&mut g, "250 Ok\r\n250 Ok\r\n");
    let (up, down) = client(&mut g, "Bcc: x@y\r\nFrom: alice@pec.example\r\n\r\nline\r\n.");
    assert_eq!((up.as_str(), down.as_str()), ("", ""));
    let (up, down) = client(&mut g, "x\r\n.\r");
    assert_eq!((up.as_str(), down.as_str()), ("", ""));
    let (up, down) = client(&mut g, "\n");
    assert_eq!(up, "RSET\r\n");
    assert_eq!(down, format!("{}\r\n", reply::BCC_PRESENT));
}

/// The header block's limit counts header lines and the empty line after
/// them, not the final dot: a message that ends within the limit is
/// checked and sent, in one read or with the dot split over reads. It
/// used to be refused as too large at its final dot, which it then ate,
/// and the client got no answer.
#[test]
fn the_final_dot_does_not_count_against_the_header_block() {
    let headers = "From: alice@pec.example\r\nSubject: 0123456789\r\n";
    let small = GuardOptions {
        max_header_bytes: headers.len(),
        ..opts()
    };
    for reads in [&[".\r\n"][..], &[".", "\r\n"], &[".\r", "\n"]] {
        let mut g = guard_with(small.clone(), 0);
        client(&mut g, ENVELOPE);
        upstream(&mut g, "250 Ok\r\n250 Ok\r\n");
        let (up, _) = client(&mut g, headers);
        assert_eq!(up, "");
        let mut up = String::new();
        for r in reads {
            up += &client(&mut g, r).0;
        }
        assert_eq!(up, "DATA\r\n", "{reads:?}");
        let (up, _) = upstream(&mut g, "354 go\r\n");
        assert_eq!(up, format!("{headers}.\r\n"));
    }
    // One byte more of header, or an empty line: too large, refused at
    // the final dot and not before.
    for more in ["\r\n", "X\r\n"] {
        let mut g = guard_with(small.clone(), 0);
        client(&mut g, ENVELOPE);
        upstream(&mut g, "250 Ok\r\n250 Ok\r\n");
        let (up, down) = client(&mut g, &format!("{headers}{more}"));
        assert_eq!((up.as_str(), down.as_str()), ("", ""));
        let (up, down) = client(&mut g, ".\r\nNOOP\r\n");
        assert_eq!(up, "RSET\r\nNOOP\r\n");
        assert_eq!(down, format!("{}\r\n", reply::HEADER_TOO_LARGE));
    }
}

#[test]
fn data_before_rcpt_and_without_mail() {
    let mut g = guard_with(opts(), 0);
    let (up, down) = client(&mut g, "DATA\r\n");
    assert_eq!(
        (up.as_str(), down.as_str()),
        ("", "503 5.5.1 Error: need MAIL command\r\n")
    );
    client(
        &mut g,
        "MAIL FROM:<alice@pec.example>\r\nRCPT TO:<nobody@else.example>\r\nDATA\r\n",
    );
    let (_, down) = upstream(&mut g, "250 Ok\r\n554 5.7.1 Relay access denied\r\n");
    assert_eq!(
        down,
        "250 Ok\r\n554 5.7.1 Relay access denied\r\n554 5.5.1 Error: no valid recipients\r\n"
    );
}

#[test]
fn size_declared_and_streamed() {
    let mut g = guard_with(opts(), 0);
    // Declared: refused at MAIL (over the limit) or at the RCPT that makes
    // size x recipients exceed it.
    let (up, down) = client(&mut g, "MAIL FROM:<alice@pec.example> SIZE=2000\r\n");
    assert_eq!(
        (up.as_str(), down.as_str()),
        ("", format!("{}\r\n", reply::TOO_BIG).as_str())
    );
    let (up, _) = client(
        &mut g,
        "MAIL FROM:<alice@pec.example> SIZE=400\r\nRCPT TO:<a@pec.example>\r\nRCPT TO:<b@pec.example>\r\nRCPT TO:<c@pec.example>\r\n",
    );
    assert_eq!(
        up,
        "MAIL FROM:<alice@pec.example> SIZE=400\r\nRCPT TO:<a@pec.example>\r\nRCPT TO:<b@pec.example>\r\n"
    );
    let (_, down) = upstream(&mut g, "250 Ok\r\n250 Ok\r\n250 Ok\r\n");
    assert_eq!(
        down,
        format!("250 Ok\r\n250 Ok\r\n250 Ok\r\n{}\r\n", reply::TOO_BIG)
    );

    // Streamed: no SIZE=, 2 recipients, a 600-octet body. The part already
    // sent cannot be called back: the upstream connection is dropped.
    let mut g = guard_with(opts(), 0);
    client(
        &mut g,
        "MAIL FROM:<alice@pec.example>\r\nRCPT TO:<a@pec.example>\r\nRCPT TO:<b@pec.example>\r\nDATA\r\n",
    );
    upstream(&mut g, "250 Ok\r\n250 Ok\r\n250 Ok\r\n");
    client(&mut g, "From: alice@pec.example\r\n\r\n");
    upstream(&mut g, "354 go\r\n");
    let (up, _) = client(&mut g, &"x".repeat(300));
    assert!(up.ends_with(&"x".repeat(300)));
    let (up, down) = client(&mut g, &"y".repeat(300));
    assert_eq!((up.as_str(), down.as_str()), ("", ""));
    assert!(!g.finished());
    let (up, down) = client(&mut g, "\r\n.\r\n");
    assert_eq!(up, "", "the final dot never goes up");
    assert_eq!(
        down,
        format!("{}\r\n{}\r\n", reply::TOO_BIG, reply::UPSTREAM_LOST)
    );
    assert!(g.finished());
}

/// The read that takes a message over the size ends with a line end, and
/// the final dot comes in the next read: the data still ends there (the
/// guard used to go on dropping content as if mid-line, and the client
/// waited for an answer that never came).
#[test]
fn a_message_cut_for_size_ends_at_its_final_dot_in_any_read() {
    for last in ["\r\n", "\r\n.", "\r\n.\r", "\r"] {
        let mut g = guard_with(opts(), 0);
        client(&mut g, ENVELOPE);
        upstream(&mut g, "250 Ok\r\n250 Ok\r\n");
        client(&mut g, "From: alice@pec.example\r\n\r\n");
        upstream(&mut g, "354 go\r\n");
        client(&mut g, &format!("{}\r\n", "x".repeat(600)));
        let (up, down) = client(&mut g, &format!("{}{last}", "y".repeat(600)));
        assert_eq!((up.as_str(), down.as_str()), ("", ""));
        let rest = &"\r\n.\r\n"[last.len()..];
        let (up, down) = client(&mut g, rest);
        assert_eq!(up, "", "{last:?}");
        assert_eq!(
            down,
            format!("{}\r\n{}\r\n", reply::TOO_BIG, reply::UPSTREAM_LOST),
            "{last:?}"
        );
        assert!(g.finished());
    }
}

/// The header block goes upstream whole at the 354, and may be the whole
/// message: it is held to size x recipients before it goes (a message
/// ending in its header block used to go unchecked).
#[test]
fn the_header_block_is_held_to_the_size_limit_before_it_goes() {
    let envelope =
        "MAIL FROM:<alice@pec.example>\r\nRCPT TO:<a@pec.example>\r\nRCPT TO:<b@pec.example>\r\nDATA\r\n";
    // 1000 octets at most; two recipients: 600 octets is too much.
    let headers = format!("From: alice@pec.example\r\nX-Pad: {}\r\n", "p".repeat(560));
    for rest in [".\r\n", "\r\nbody\r\n.\r\n"] {
        let mut g = guard_with(opts(), 0);
        client(&mut g, envelope);
        upstream(&mut g, "250 Ok\r\n250 Ok\r\n250 Ok\r\n");
        let (up, down) = client(&mut g, &format!("{headers}{rest}NOOP\r\n"));
        assert_eq!(up, "RSET\r\nNOOP\r\n", "{rest:?}");
        assert_eq!(down, format!("{}\r\n", reply::TOO_BIG));
        assert!(!g.finished(), "nothing went upstream: the session goes on");
    }
    // One recipient: it goes.
    let mut g = guard_with(opts(), 0);
    client(&mut g, ENVELOPE);
    upstream(&mut g, "250 Ok\r\n250 Ok\r\n");
    let (up, _) = client(&mut g, &format!("{headers}.\r\n"));
    assert_eq!(up, "DATA\r\n");
}

#[test]
fn rate_limit_counts_submitted_messages_and_refunds_others() {
    let mut g = guard_with(opts(), 1);
    client(&mut g, "MAIL FROM:<alice@pec.example>\r\n");
    // A refused MAIL gives the token back...
    upstream(&mut g, "451 4.3.0 try later\r\n");
    client(
        &mut g,
        "MAIL FROM:<alice@pec.example>\r\nRCPT TO:<b@pec.example>\r\nDATA\r\n",
    );
    upstream(&mut g, "250 Ok\r\n250 Ok\r\n");
    client(&mut g, "From: alice@pec.example\r\n\r\nhi\r\n.\r\n");
    upstream(&mut g, "354 go\r\n");
    let (_, down) = upstream(&mut g, "250 2.0.0 queued\r\n");
    assert_eq!(down, "250 2.0.0 queued\r\n");
    // ...a submitted one does not.
    let (up, down) = client(&mut g, "MAIL FROM:<alice@pec.example>\r\n");
    assert_eq!(
        (up.as_str(), down.as_str()),
        ("", format!("{}\r\n", reply::RATE_LIMITED).as_str())
    );
}

#[test]
fn commands_that_never_go_upstream_and_ehlo_is_ours() {
    let mut g = guard_with(opts(), 0);
    let (up, down) = client(
        &mut g,
        "XCLIENT LOGIN=bob@pec.example\r\nAUTH PLAIN AGEAYg==\r\nSTARTTLS\r\nBDAT 10 LAST\r\nVRFY bob\r\nNO\0OP\r\n",
    );
    assert_eq!(up, "");
    assert_eq!(
        down,
        "500 5.5.1 Command unrecognized\r\n503 5.5.1 Already authenticated\r\n503 5.5.1 TLS already active\r\n\
         502 5.5.1 Command not implemented\r\n502 5.5.1 VRFY and EXPN are disabled\r\n\
         500 5.5.2 Syntax error: NUL character in command\r\n"
    );
    let (up, _) = client(&mut g, "EHLO again\r\n");
    assert_eq!(up, "EHLO again\r\n");
    let (_, down) = upstream(
        &mut g,
        "250-mx.pec.example\r\n250-XCLIENT ADDR LOGIN\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n",
    );
    assert_eq!(
        down,
        "250-proxy.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
    );
    let (_, down) = client(&mut g, &format!("NOOP {}\r\n", "z".repeat(600)));
    assert_eq!(down, "500 5.5.2 Line too long\r\n");
}

#[test]
fn bare_newlines_in_content_are_refused() {
    let mut g = guard_with(opts(), 0);
    client(&mut g, ENVELOPE);
    upstream(&mut g, "250 Ok\r\n250 Ok\r\n");
    // In the header block: refused before anything goes up. The "\n.\r\n"
    // after a bare LF is not the end of data (only CRLF "." CRLF is), so
    // the command behind it is dropped as content, never executed.
    let (up, down) = client(
        &mut g,
        "From: alice@pec.example\n.\r\nMAIL FROM:<bob@pec.example>\r\nRCPT TO:<eve@pec.example>\r\n",
    );
    assert_eq!((up.as_str(), down.as_str()), ("", ""));
    let (up, down) = client(&mut g, ".\r\nNOOP\r\n");
    assert_eq!(up, "RSET\r\nNOOP\r\n");
    assert!(down.starts_with("550 5.6.0 Bare CR or LF"), "{down}");
    // A bare CR inside a CRLF-ended header line: that CRLF does end the line.
    let mut g = guard_with(opts(), 0);
    client(&mut g, ENVELOPE);
    upstream(&mut g, "250 Ok\r\n250 Ok\r\n");
    let (up, down) = client(&mut g, "From: alice@pec.example\r.\r\n.\r\n");
    assert_eq!(up, "RSET\r\n");
    assert!(down.starts_with("550 5.6.0 Bare CR or LF"), "{down}");

    // In the body (SMTP smuggling: "\n.\r\n" ends DATA for some servers).
    let mut g = guard_with(opts(), 0);
    client(&mut g, ENVELOPE);
    upstream(&mut g, "250 Ok\r\n250 Ok\r\n");
    client(&mut g, "From: alice@pec.example\r\n\r\n");
    upstream(&mut g, "354 go\r\n");
    let (up, down) = client(&mut g, "a\n.\r\nMAIL FROM:<alice@pec.example>\r\n.\r\n");
    assert_eq!(up, "a");
    assert!(down.starts_with("550 5.6.0 Bare CR or LF"), "{down}");
    assert!(down.ends_with(&format!("{}\r\n", reply::UPSTREAM_LOST)));
    assert!(g.finished());
}

/// `CR CR LF "." CR LF`: the first CR is bare, the CRLF after it ends the
/// line, and `"." CRLF` ends the data. The message is refused, and the
/// client gets its answer there (it used to wait for another final dot).
#[test]
fn a_bare_cr_does_not_hide_the_final_dot_after_it() {
    // In the header block: refused, the session goes on.
    let mut g = guard_with(opts(), 0);
    client(&mut g, ENVELOPE);
    upstream(&mut g, "250 Ok\r\n250 Ok\r\n");
    let (up, down) = client(&mut g, "From: alice@pec.example\nx\r\r\n.\r\nNOOP\r\n");
    assert_eq!(up, "RSET\r\nNOOP\r\n");
    assert!(down.starts_with("550 5.6.0 Bare CR or LF"), "{down}");
    // In the body, in one read or split after the bare CR: refused, and
    // the upstream connection dropped.
    for reads in [
        &["a\r\r\n.\r\n"][..],
        &["a\r", "\r\n.\r\n"],
        &["a\r\r", "\n.\r\n"],
    ] {
        let mut g = guard_with(opts(), 0);
        client(&mut g, ENVELOPE);
        upstream(&mut g, "250 Ok\r\n250 Ok\r\n");
        client(&mut g, "From: alice@pec.example\r\n\r\n");
        upstream(&mut g, "354 go\r\n");
        let mut down = String::new();
        for r in reads {
            down += &client(&mut g, r).1;
        }
        assert!(down.starts_with("550 5.6.0 Bare CR or LF"), "{reads:?}: {down}");
        assert!(down.ends_with(&format!("{}\r\n", reply::UPSTREAM_LOST)));
        assert!(g.finished());
    }
}

#[test]
fn upstream_refusing_data_is_the_clients_verdict() {
    let mut g = guard_with(opts(), 0);
    client(&mut g, ENVELOPE);
    upstream(&mut g, "250 Ok\r\n250 Ok\r\n");
    client(&mut g, "From: alice@pec.example\r\n\r\nbody\r\n");
    let (up, down) = upstream(&mut g, "451 4.3.0 Queue file write error\r\n");
    assert_eq!((up.as_str(), down.as_str()), ("", ""));
    let (up, down) = client(&mut g, ".\r\n");
    assert_eq!(up, "RSET\r\n");
    assert_eq!(down, "451 4.3.0 Queue file write error\r\n");
}

#[test]
fn the_verdict_on_a_message_the_upstream_would_not_take_is_a_well_formed_refusal() {
    // The upstream's answer to our DATA, and what the client is told once
    // it has sent the content: never a 2xx for a message that did not go,
    // never a malformed line of ours.
    for (answer, verdict) in [
        (
            "451 4.3.0 Queue file write error\r\n",
            "451 4.3.0 Queue file write error",
        ),
        (
            "554-5.3.4 Message too big\r\n554 5.3.4 for system \u{e8}\u{1}\r\n",
            "554 5.3.4 for system",
        ),
        ("550\r\n", "550"),
        ("250 2.0.0 Ok\r\n", reply::DATA_NOT_TAKEN),
        ("\n", reply::DATA_NOT_TAKEN),
        ("xyz\r\n", reply::DATA_NOT_TAKEN),
        ("4x1 no\r\n", reply::DATA_NOT_TAKEN),
    ] {
        let mut g = guard_with(opts(), 0);
        client(&mut g, ENVELOPE);
        upstream(&mut g, "250 Ok\r\n250 Ok\r\n");
        client(&mut g, "From: alice@pec.example\r\n\r\nbody\r\n");
        let (up, down) = upstream(&mut g, answer);
        assert_eq!((up.as_str(), down.as_str()), ("", ""), "{answer:?}");
        let (up, down) = client(&mut g, ".\r\n");
        assert_eq!(up, "RSET\r\n");
        assert_eq!(down, format!("{verdict}\r\n"), "{answer:?}");
    }
}

/// After the client's end of stream, only what it sent whole still goes
/// upstream; an upstream that then closes is no loss, unless replies to
/// the client's commands were still due.
#[test]
fn a_client_that_left_is_owed_only_the_replies_it_asked_for() {
    let mut g = guard_with(opts(), 0);
    client(&mut g, ENVELOPE);
    g.client_closed();
    assert!(
        g.holds_client_input(),
        "DATA waits for the verdicts on MAIL and RCPT"
    );
    let (up, down) = upstream(&mut g, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
    assert_eq!(up, "");
    assert!(
        down.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"),
        "{down}"
    );
    assert!(!g.holds_client_input(), "no message came: nothing more goes");
    assert!(!g.upstream_closed(), "the client left first");
    assert_eq!(s(g.take_to_client()), "", "no 421 for a client that left");

    let mut g = guard_with(opts(), 0);
    client(&mut g, "MAIL FROM:<alice@pec.example>\r\n");
    g.client_closed();
    assert!(!g.holds_client_input());
    assert!(g.upstream_closed(), "the MAIL's reply was still due");
    assert_eq!(s(g.take_to_client()), format!("{}\r\n", reply::UPSTREAM_LOST));

    // The header block waits for the upstream's 354, and then goes.
    let mut g = guard_with(opts(), 0);
    client(&mut g, ENVELOPE);
    upstream(&mut g, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
    client(&mut g, "From: alice@pec.example\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    g.client_closed();
    assert!(g.holds_client_input(), "waiting for the 354");
    let (up, _) = upstream(&mut g, "354 go ahead\r\n");
    assert_eq!(up, "From: alice@pec.example\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    assert!(!g.holds_client_input());
}

#[test]
fn end_scan_known_answers() {
    // (input, emitted, outcome as (kind, offset))
    type Case<'a> = (&'a [u8], &'a [u8], (&'a str, usize));
    let cases: &[Case] = &[
        (b".\r\n", b"", ("end", 3)),
        (b"a\r\n.\r\nrest", b"a\r\n", ("end", 6)),
        (b"..x\r\n", b"..x\r\n", ("more", 0)),
        (b".x\r\n", b".x\r\n", ("more", 0)),
        (b"a\r\n.", b"a\r\n", ("more", 0)),
        // Bare: the offset where the scan goes on.
        (b"a\nb", b"a", ("bare", 2)),
        (b"a\rb", b"a\r", ("bare", 2)),
        (b"a\r\r\n", b"a\r", ("bare", 2)),
        (b".\n", b"", ("bare", 2)),
        (b".\r.\r\n", b"", ("bare", 2)),
    ];
    for (input, emitted, (kind, at)) in cases {
        let mut scan = EndScan::line_start();
        let mut out = Vec::new();
        let got = match scan.scan(input, &mut out) {
            Scan::More => ("more", 0),
            Scan::End(n) => ("end", n),
            Scan::Bare(n) => ("bare", n),
        };
        assert_eq!(
            (got.0, got.1, out.as_slice()),
            (*kind, *at, *emitted),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

fn with_recipients() -> GuardOptions {
    let mut o = opts();
    o.header_rules.recipients = true;
    o
}

/// The blind copy as a mail client sends it: `Bcc:` stripped, the hidden
/// recipient only in `RCPT TO`. Refused at the end of the header block;
/// the upstream gets `RSET`, never `DATA` nor a byte of the message.
#[test]
fn blind_copy_is_refused_before_the_upstream_sees_the_message() {
    let mut g = guard_with(with_recipients(), 0);
    client(
        &mut g,
        "MAIL FROM:<alice@pec.example>\r\nRCPT TO:<bob@pec.example>\r\nRCPT TO:<hidden@pec.example>\r\nDATA\r\n",
    );
    let (_, down) = upstream(&mut g, "250 Ok\r\n250 Ok\r\n250 Ok\r\n");
    assert!(down.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"));
    let (up, down) = client(
        &mut g,
        "From: alice@pec.example\r\nTo: bob@pec.example\r\n\r\nsecret\r\n.\r\nNOOP\r\n",
    );
    assert_eq!(up, "RSET\r\nNOOP\r\n");
    assert_eq!(down, format!("{}\r\n", reply::RECIPIENTS_MISMATCH));
}

/// Only the recipients the upstream accepted count: one it refused need
/// not (and must not) be named.
#[test]
fn recipients_are_those_the_upstream_accepted() {
    for (to, verdict) in [
        ("bob@pec.example", None),
        (
            "bob@pec.example, nobody@else.example",
            Some(reply::RECIPIENTS_MISMATCH),
        ),
    ] {
        let mut g = guard_with(with_recipients(), 0);
        client(
            &mut g,
            "MAIL FROM:<alice@pec.example>\r\nRCPT TO:<nobody@else.example>\r\nRCPT TO:<Bob@PEC.example>\r\nDATA\r\n",
        );
        upstream(&mut g, "250 Ok\r\n554 5.7.1 Relay access denied\r\n250 Ok\r\n");
        let (up, down) = client(
            &mut g,
            &format!("From: alice@pec.example\r\nTo: {to}\r\n\r\nhi\r\n.\r\n"),
        );
        match verdict {
            None => {
                assert_eq!(up, "DATA\r\n", "{to}");
                let (up, _) = upstream(&mut g, "354 go\r\n");
                assert_eq!(
                    up,
                    format!("From: alice@pec.example\r\nTo: {to}\r\n\r\nhi\r\n.\r\n")
                );
            }
            Some(why) => {
                assert_eq!(up, "RSET\r\n", "{to}");
                assert_eq!(down, format!("{why}\r\n"));
            }
        }
    }
}

/// A new transaction starts with no recipients: those of one refused
/// message do not carry over.
#[test]
fn recipients_are_per_transaction() {
    let mut g = guard_with(with_recipients(), 0);
    client(
        &mut g,
        "MAIL FROM:<alice@pec.example>\r\nRCPT TO:<bob@pec.example>\r\nRCPT TO:<carol@pec.example>\r\nDATA\r\n",
    );
    upstream(&mut g, "250 Ok\r\n250 Ok\r\n250 Ok\r\n");
    client(
        &mut g,
        "From: alice@pec.example\r\nTo: bob@pec.example\r\n\r\n.\r\n",
    );
    upstream(&mut g, "250 Flushed\r\n");
    client(
        &mut g,
        "MAIL FROM:<alice@pec.example>\r\nRCPT TO:<bob@pec.example>\r\nDATA\r\n",
    );
    upstream(&mut g, "250 Ok\r\n250 Ok\r\n");
    let (up, _) = client(
        &mut g,
        "From: alice@pec.example\r\nTo: bob@pec.example\r\n\r\n.\r\n",
    );
    assert_eq!(up, "DATA\r\n");
}

/// The recipients kept are bounded: past [`MAX_RECIPIENTS`] in a
/// transaction, `452` (RFC 5321 §4.5.3.1.10) without asking the upstream.
#[test]
fn recipients_kept_are_bounded() {
    let mut g = guard_with(with_recipients(), 0);
    client(&mut g, "MAIL FROM:<alice@pec.example>\r\n");
    upstream(&mut g, "250 Ok\r\n");
    for i in 0..MAX_RECIPIENTS {
        let (up, _) = client(&mut g, &format!("RCPT TO:<r{i}@pec.example>\r\n"));
        assert_eq!(up, format!("RCPT TO:<r{i}@pec.example>\r\n"));
        upstream(&mut g, "250 Ok\r\n");
    }
    let (up, down) = client(&mut g, "RCPT TO:<one.more@pec.example>\r\n");
    assert_eq!(
        (up.as_str(), down.as_str()),
        ("", "452 4.5.3 Too many recipients\r\n")
    );
}
