use super::*;

/// A guard between a client and a server, with what each side got.
struct Session {
    guard: ImapGuard,
    /// Client bytes not read yet (the socket's buffer while the guard waits).
    waiting: Vec<u8>,
    upstream: Vec<u8>,
    client: Vec<u8>,
}

impl Session {
    fn new(access: Access) -> Self {
        Self {
            guard: ImapGuard::new(access),
            waiting: Vec::new(),
            upstream: Vec::new(),
            client: Vec::new(),
        }
    }

    fn client_says(&mut self, bytes: &str) -> &mut Self {
        self.waiting.extend_from_slice(bytes.as_bytes());
        self.pump();
        self
    }

    fn server_says(&mut self, bytes: &str) -> &mut Self {
        let sent = self.guard.server_sent(bytes.as_bytes());
        self.record(sent);
        self.pump();
        self
    }

    fn pump(&mut self) {
        while self.guard.wants_client() && !self.waiting.is_empty() {
            let data = std::mem::take(&mut self.waiting);
            let sent = self.guard.client_sent(&data);
            self.record(sent);
        }
    }

    fn record(&mut self, sent: Sent) {
        self.upstream.extend_from_slice(&sent.to_upstream);
        self.client.extend_from_slice(&sent.to_client);
    }

    /// What the server got since last asked.
    fn upstream(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.upstream)).unwrap()
    }

    /// What the client got since last asked.
    fn client(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.client)).unwrap()
    }
}

const READ_ONLY_NO: &str = " NO [NOPERM] Read-only access: this command would change the mailbox.\r\n";
const KEEP_NO: &str = " NO [NOPERM] This mailbox is shared: messages are kept on the server.\r\n";

#[test]
fn read_only_examines_reads_and_refuses_every_change() {
    let mut s = Session::new(Access::ReadOnly);
    s.client_says("a SELECT INBOX\r\nb FETCH 1:* (FLAGS)\r\nc UID SEARCH ALL\r\nd EXPUNGE\r\n");
    assert_eq!(
        s.upstream(),
        "a EXAMINE INBOX\r\nb FETCH 1:* (FLAGS)\r\nc UID SEARCH ALL\r\n"
    );
    assert_eq!(s.client(), format!("d{READ_ONLY_NO}"));
    for refused in [
        "e STORE 1 +FLAGS (\\Seen)",
        "f UID STORE 1:* +FLAGS.SILENT (\\Deleted)",
        "g UID EXPUNGE 1:*",
        "h MOVE 1 Trash",
        "i UID MOVE 1 Trash",
        "j COPY 1 Trash",
        "k CREATE Foo",
        "l DELETE Foo",
        "m RENAME INBOX Foo",
        "n SETACL INBOX anyone lrswipkxtea",
        "o DELETEACL INBOX anyone",
        "p SETMETADATA INBOX (/private/comment \"x\")",
        "q SETQUOTA \"\" (STORAGE 1)",
        "r AUTHENTICATE PLAIN",
        "s COMPRESS DEFLATE",
        "t SUBSCRIBE Foo",
        "u REPLACE 1 INBOX {3}",
    ] {
        s.client_says(&format!("{refused}\r\n"));
        let tag = &refused[..1];
        assert_eq!(s.client(), format!("{tag}{READ_ONLY_NO}"), "{refused}");
        assert_eq!(s.upstream(), "", "{refused}");
    }
    assert_eq!(s.guard.refused(), 18);
}

#[test]
fn read_only_refuses_append_with_either_literal_and_never_sends_its_data() {
    let mut s = Session::new(Access::ReadOnly);
    // Synchronising: answered at once; the client sends no data.
    s.client_says("a APPEND INBOX {11}\r\n");
    assert_eq!(s.client(), format!("a{READ_ONLY_NO}"));
    // Non-synchronising: its data (which looks like a command) is dropped,
    // and the command's end with it; what follows is read again.
    s.client_says("b APPEND INBOX (\\Seen) {11+}\r\nc EXPUNGE\r\n\r\nd NOOP\r\n");
    assert_eq!(s.client(), format!("b{READ_ONLY_NO}"));
    assert_eq!(s.upstream(), "d NOOP\r\n");
}

#[test]
fn keep_on_server_reads_flags_copies_but_deletes_nothing() {
    let mut s = Session::new(Access::KeepOnServer);
    s.client_says(concat!(
        "a SELECT INBOX\r\n",
        "b STORE 1 +FLAGS (\\Seen \\Flagged)\r\n",
        "c UID STORE 1:* -FLAGS.SILENT (\\Deleted)\r\n",
        "d UID STORE 1:* (UNCHANGEDSINCE 12) FLAGS (\\Answered)\r\n",
        "e UID COPY 1:3 Archive\r\n",
        "f CREATE Archive/2026\r\n",
        "g CLOSE\r\n",
    ));
    assert_eq!(
        s.upstream(),
        concat!(
            "a SELECT INBOX\r\n",
            "b STORE 1 +FLAGS (\\Seen \\Flagged)\r\n",
            "c UID STORE 1:* -FLAGS.SILENT (\\Deleted)\r\n",
            "d UID STORE 1:* (UNCHANGEDSINCE 12) FLAGS (\\Answered)\r\n",
            "e UID COPY 1:3 Archive\r\n",
            "f CREATE Archive/2026\r\n",
            "g UNSELECT\r\n",
        )
    );
    for refused in [
        "h UID STORE 1:* +FLAGS.SILENT (\\Deleted)",
        "i STORE 1 FLAGS (\\Seen \\DELETED)",
        "j STORE 1 +FLAGS \\deleted",
        "k STORE 1 X-GM-LABELS (foo)",
        // Not a sequence set: not read as the guard would read it.
        "z STORE 1W=+FLAGS -FLAGS (\\Deleted)",
        "z STORE 1 (UN 5STORE\\Deleted) FLAGS",
        "z STORE 1 -FLAGS",
        "l EXPUNGE",
        "m UID EXPUNGE 1",
        "n MOVE 1 Trash",
        "o UID MOVE 1 Trash",
        "p DELETE Archive",
        "q RENAME INBOX Old",
        "r SETACL INBOX anyone lrswipkxtea",
    ] {
        s.client_says(&format!("{refused}\r\n"));
        let tag = &refused[..1];
        assert_eq!(s.client(), format!("{tag}{KEEP_NO}"), "{refused}");
        assert_eq!(s.upstream(), "", "{refused}");
    }
}

#[test]
fn a_literal_goes_on_only_after_the_servers_continuation() {
    let mut s = Session::new(Access::KeepOnServer);
    // A client that does not wait for `+`: its data is held.
    s.client_says("a CREATE {5}\r\nhello\r\nb EXPUNGE\r\n");
    assert_eq!(s.upstream(), "a CREATE {5}\r\n");
    assert!(!s.guard.wants_client());
    s.server_says("+ OK\r\n");
    assert_eq!(s.upstream(), "hello\r\n");
    assert_eq!(s.client(), format!("+ OK\r\nb{KEEP_NO}"));
}

#[test]
fn a_literal_the_server_refused_is_read_as_commands() {
    let mut s = Session::new(Access::KeepOnServer);
    // If the server does not take the announcement as a literal, the bytes
    // after it are commands to it: so they are to the guard.
    s.client_says("a CREATE {11}\r\nb EXPUNGE\r\n");
    s.server_says("* OK still here\r\na BAD Invalid arguments.\r\n");
    assert_eq!(s.upstream(), "a CREATE {11}\r\n");
    assert_eq!(
        s.client(),
        format!("* OK still here\r\na BAD Invalid arguments.\r\nb{KEEP_NO}")
    );
}

#[test]
fn a_continuation_inside_a_server_literal_is_not_one() {
    let mut s = Session::new(Access::KeepOnServer);
    s.client_says("a FETCH 1 BODY[]\r\nb CREATE {11}\r\nc EXPUNGE\r\n");
    // `b` waits for `+`: it goes once `a` is answered.
    assert_eq!(s.upstream(), "a FETCH 1 BODY[]\r\n");
    // A message whose text looks like a continuation and tagged answers.
    s.server_says("* 1 FETCH (BODY[] {29}\r\n+ OK\r\na OK done\r\nb OK done\r\n)\r\n");
    assert_eq!(s.upstream(), "");
    s.server_says("a OK Fetch completed.\r\n");
    assert_eq!(s.upstream(), "b CREATE {11}\r\n");
    s.server_says("* 1 FETCH (BODY[] {18}\r\n+ OK\r\nb OK done\r\n)\r\n");
    assert_eq!(s.upstream(), "");
    s.server_says("b NO [CANNOT] Invalid name\r\n");
    assert_eq!(s.upstream(), "");
    assert!(
        s.client()
            .ends_with(&format!("b NO [CANNOT] Invalid name\r\nc{KEEP_NO}"))
    );
}

#[test]
fn a_non_synchronising_literal_goes_on_as_a_synchronising_one() {
    let mut s = Session::new(Access::KeepOnServer);
    s.client_says("a APPEND Sent (\\Seen) {5+}\r\nhello\r\nb NOOP\r\n");
    assert_eq!(s.upstream(), "a APPEND Sent (\\Seen) {5}\r\n");
    // The client did not ask for this `+`: it is not relayed.
    s.server_says("+ OK\r\n");
    assert_eq!(s.upstream(), "hello\r\nb NOOP\r\n");
    assert_eq!(s.client(), "");
    // Refused by the server instead: the data on its way is dropped.
    s.server_says("a OK Append completed.\r\nb OK NOOP completed.\r\n");
    s.client();
    s.client_says("c APPEND Sent {11+}\r\nd EXPUNGE\r\n\r\ne NOOP\r\n");
    assert_eq!(s.upstream(), "c APPEND Sent {11}\r\n");
    s.server_says("c NO [OVERQUOTA] Quota exceeded\r\n");
    assert_eq!(s.client(), "c NO [OVERQUOTA] Quota exceeded\r\n");
    assert_eq!(s.upstream(), "e NOOP\r\n");
}

#[test]
fn idle_lets_only_done_through() {
    let mut s = Session::new(Access::ReadOnly);
    s.client_says("a IDLE\r\nDONE\r\n");
    assert_eq!(s.upstream(), "a IDLE\r\n");
    s.server_says("+ idling\r\n");
    assert_eq!(s.upstream(), "DONE\r\n");
    assert_eq!(s.client(), "+ idling\r\n");
    s.server_says("a OK Idle completed.\r\n");
    s.client_says("b IDLE\r\n");
    s.server_says("+ idling\r\n* 2 EXISTS\r\n");
    s.client_says("c EXPUNGE\r\ndone\r\n");
    assert_eq!(s.upstream(), "b IDLE\r\ndone\r\n");
    assert_eq!(
        s.client(),
        "a OK Idle completed.\r\n+ idling\r\n* 2 EXISTS\r\nc BAD Expected DONE.\r\n"
    );
}

#[test]
fn replies_wait_for_the_end_of_the_servers_response() {
    let mut s = Session::new(Access::ReadOnly);
    s.client_says("a FETCH 1 (FLAGS BODY.PEEK[])\r\n");
    s.server_says("* 1 FETCH (FLAGS (\\Seen) BODY[] {3}\r\nab");
    s.client_says("b EXPUNGE\r\n");
    assert_eq!(s.client(), "* 1 FETCH (FLAGS (\\Seen) BODY[] {3}\r\nab");
    // The literal's last byte goes on; the line after it once whole (up
    // to its bound).
    s.server_says("c)\r");
    assert_eq!(s.client(), "c");
    s.server_says("\na OK done\r\n");
    assert_eq!(s.client(), format!(")\r\nb{READ_ONLY_NO}a OK done\r\n"));
}

#[test]
fn compress_is_taken_out_of_the_capabilities() {
    let mut s = Session::new(Access::ReadOnly);
    s.server_says("* CAPABILITY IMAP4rev1 LITERAL+ COMPRESS=DEFLATE IDLE\r\n");
    s.server_says("a OK [CAPABILITY IMAP4rev1 compress=deflate IDLE] Done\r\n");
    s.server_says("* OK [ALERT] COMPRESS=DEFLATE is not a capability here\r\n");
    assert_eq!(
        s.client(),
        concat!(
            "* CAPABILITY IMAP4rev1 LITERAL+ IDLE\r\n",
            "a OK [CAPABILITY IMAP4rev1 IDLE] Done\r\n",
            "* OK [ALERT] COMPRESS=DEFLATE is not a capability here\r\n",
        )
    );
    assert_eq!(
        strip_capabilities(b"IMAP4rev1 COMPRESS=DEFLATE IDLE"),
        b"IMAP4rev1 IDLE"
    );
}

#[test]
fn lines_with_two_readings_never_reach_the_server() {
    let mut s = Session::new(Access::KeepOnServer);
    for line in [
        // A quote inside an atom: a server may read no string there, and
        // the literal after it as one.
        "a SELECT x\"y {11+}\r\n",
        "a SELECT \"x\"y {11+}\r\n",
        "a SELECT \"x {11+}\r\n",
        "a SELECT x{11+}\r\n",
        "a APPEND INBOX ~{11+}\r\n",
        "a SELECT {11+}x\r\n",
        "a SELECT {11+}\n",
        "a SELECT INBOX\0 {11+}\r\n",
        "a UID\r\n",
        "a  NOOP\r\n",
    ] {
        s.client_says(line);
        assert_eq!(s.upstream(), "", "{line:?}");
        assert!(s.client().starts_with("a BAD "), "{line:?}");
        // What follows is read as commands: refused if it is one.
        s.client_says("b EXPUNGE\r\n");
        assert_eq!(s.upstream(), "", "{line:?}");
        assert_eq!(s.client(), format!("b{KEEP_NO}"), "{line:?}");
    }
    // A quoted string with a brace, and a literal where one may start.
    s.client_says("c LIST \"\" \"a{1}\"\r\nd LIST \"\" ({5}\r\n");
    assert_eq!(s.upstream(), "c LIST \"\" \"a{1}\"\r\n");
    s.server_says("c OK List completed.\r\n");
    assert_eq!(s.upstream(), "d LIST \"\" ({5}\r\n");
}

#[test]
fn a_line_too_long_is_answered_and_dropped() {
    let mut s = Session::new(Access::ReadOnly);
    let long = format!("a FETCH {} FLAGS\r\nb NOOP\r\n", "1,".repeat(MAX_LINE_BYTES));
    s.client_says(&long);
    assert_eq!(s.upstream(), "b NOOP\r\n");
    assert_eq!(s.client(), "a BAD Invalid command: command line too long.\r\n");
    assert!(s.guard.buffered() <= KEPT_OF_LONG_LINE);
}

#[test]
fn pipelined_pending_replies_stop_the_client_at_their_bound() {
    let mut s = Session::new(Access::ReadOnly);
    s.server_says("* 1 FETCH (FLAGS (");
    let burst = "x EXPUNGE\r\n".repeat(MAX_PENDING_BYTES / 10);
    s.client_says(&burst);
    assert!(!s.guard.wants_client());
    assert!(s.guard.buffered() < MAX_PENDING_BYTES + 200 + burst.len());
    s.server_says("))\r\n");
    assert!(s.guard.wants_client());
    let told = s.client();
    assert_eq!(told.matches("x NO [NOPERM]").count(), MAX_PENDING_BYTES / 10);
    assert_eq!(s.upstream(), "");
}

#[test]
fn any_split_of_a_session_gives_the_same_bytes() {
    let client = concat!(
        "a SELECT INBOX\r\nb APPEND Sent {5+}\r\nhello\r\nc CREATE {3}\r\n",
        "abc\r\nd UID STORE 1 +FLAGS (\\Deleted)\r\ne IDLE\r\nDONE\r\nf CLOSE\r\n",
    );
    let server = [
        "* 1 EXISTS\r\na OK [READ-WRITE] Select completed.\r\n",
        "+ OK\r\n",
        "b OK Append completed.\r\n+ OK\r\n",
        "c OK Create completed.\r\n+ idling\r\n",
        "* 1 FETCH (BODY[] {6}\r\n+ x\r\n)\r\ne OK Idle completed.\r\nf OK done\r\n",
    ];
    let whole = {
        let mut s = Session::new(Access::KeepOnServer);
        s.client_says(client);
        for part in server {
            s.server_says(part);
        }
        (s.upstream(), s.client())
    };
    assert_eq!(
        whole.0,
        "a SELECT INBOX\r\nb APPEND Sent {5}\r\nhello\r\nc CREATE {3}\r\nabc\r\ne IDLE\r\nDONE\r\nf UNSELECT\r\n"
    );
    assert!(whole.1.contains(&format!("d{KEEP_NO}")));
    for step in 1..8 {
        let mut s = Session::new(Access::KeepOnServer);
        for piece in client.as_bytes().chunks(step) {
            s.client_says(std::str::from_utf8(piece).unwrap());
        }
        for part in server {
            for piece in part.as_bytes().chunks(step) {
                s.server_says(std::str::from_utf8(piece).unwrap());
            }
        }
        assert_eq!((s.upstream(), s.client()), whole, "split every {step} bytes");
    }
}

#[test]
fn a_reused_tag_is_not_taken_for_the_answer_to_a_literal() {
    let mut s = Session::new(Access::KeepOnServer);
    // Found by the fuzz target: the first `d`'s answer came while the
    // second `d` waited for its `+`, and the guard read the literal's data
    // as commands while the server still waited for it.
    s.client_says("d NOOP\r\nd CREATE {11}\r\ne EXPUNGE\r\n\r\n");
    assert_eq!(s.upstream(), "d NOOP\r\n");
    s.server_says("d OK done\r\n");
    assert_eq!(s.upstream(), "d CREATE {11}\r\n");
    s.server_says("+ OK\r\n");
    assert_eq!(s.upstream(), "e EXPUNGE\r\n\r\n");
    assert_eq!(s.client(), "d OK done\r\n+ OK\r\n");
}

#[test]
fn text_right_after_a_literal_ends_the_command_at_the_server() {
    let mut s = Session::new(Access::KeepOnServer);
    // A server may read `abc5` as the literal and more, or fail the line
    // and skip to its end: either way nothing of it is forwarded, and the
    // command the server has started is ended with an empty line.
    s.client_says("b CREATE {3}\r\n");
    s.server_says("+ OK\r\n");
    s.client_says("abc5 {11+}\r\nc EXPUNGE\r\n");
    assert_eq!(s.upstream(), "b CREATE {3}\r\nabc\r\n");
    assert_eq!(s.client(), format!("+ OK\r\nc{KEEP_NO}"));
}
