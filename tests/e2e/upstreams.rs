//! The private Dovecot + Postfix of `scripts/upstreams.sh` come up, take mail
//! over LMTP and greet over IMAP.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::upstreams::Upstreams;

#[test]
fn upstreams_start_deliver_and_greet() {
    let up = Upstreams::start();

    // Seeded mailboxes.
    assert_eq!(up.message_files("alice@pec.example").len(), 2);
    assert_eq!(up.message_files("shared@pec.example").len(), 1);

    let before = up.message_files("bob@pec.example").len();
    up.deliver(
        "bob@pec.example",
        b"From: harness@pec.example\nTo: bob@pec.example\nSubject: smoke\n\nhello bob\n.dot line\n",
    );
    let after = up.message_files("bob@pec.example");
    assert_eq!(after.len(), before + 1, "{}", up.log_tail(20));
    let stored = std::fs::read_to_string(after.last().unwrap()).unwrap();
    assert!(stored.contains("Subject: smoke\r\n") || stored.contains("Subject: smoke\n"));
    assert!(
        stored.contains("\n.dot line"),
        "dot-stuffing undone by the server: {stored:?}"
    );

    // An unknown mailbox is refused by Dovecot's LMTP.
    assert!(
        up.deliver_from("x@pec.example", "nobody@pec.example", b"Subject: x\n\nx\n")
            .is_err()
    );

    // Dovecot's IMAP greeting.
    let stream = TcpStream::connect_timeout(&Upstreams::addr(up.imap_port), Duration::from_secs(5)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut greeting = String::new();
    BufReader::new(stream).read_line(&mut greeting).unwrap();
    assert!(
        greeting.starts_with("* OK"),
        "unexpected IMAP greeting {greeting:?}"
    );
    assert!(greeting.contains("STARTTLS"), "no STARTTLS in {greeting:?}");

    // A user added at run time can receive mail at once.
    up.add_user("dave@pec.example", "dave-secret");
    up.deliver("dave@pec.example", b"Subject: welcome\r\n\r\nhi\r\n");
    assert_eq!(up.message_files("dave@pec.example").len(), 1);
}
