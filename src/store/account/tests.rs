use super::*;

#[test]
fn rights_known_answers() {
    let table: &[(&str, Result<&str, ()>)] = &[
        ("read", Ok("read")),
        ("write", Ok("read,write")),
        ("send", Ok("send")),
        ("mail-client", Ok("read,write,send,mail-client")),
        ("read, send", Ok("read,send")),
        ("none", Ok("none")),
        ("", Ok("none")),
        ("admin", Err(())),
        // Client use without write: read-only over IMAP and POP3.
        ("read-only-client", Ok("read,read-only-client")),
        ("send,read-only-client", Ok("read,send,read-only-client")),
        ("read,read-only-client", Ok("read,read-only-client")),
        ("read-only-client,write", Err(())),
        ("read-only-client,mail-client", Err(())),
    ];
    for (input, expected) in table {
        let got = Rights::parse_list(input).map(|r| r.to_list()).map_err(|_| ());
        assert_eq!(got.as_deref(), expected.as_deref(), "{input}");
    }
}

#[test]
fn rights_per_protocol() {
    let send = Rights::parse_list("send").unwrap();
    let client = Rights::parse_list("mail-client").unwrap();
    let read = Rights::parse_list("read,write").unwrap();
    assert!(send.allow(Protocol::Smtp) && !send.allow(Protocol::Imap));
    assert!(!send.allow(Protocol::Pop3));
    assert!(client.allow(Protocol::Imap) && client.allow(Protocol::Pop3));
    assert!(client.allow(Protocol::Smtp));
    assert!(!read.allow(Protocol::Imap) && !read.allow(Protocol::Smtp));
    let read_only_client = Rights::parse_list("read-only-client").unwrap();
    assert!(read_only_client.allow(Protocol::Imap) && read_only_client.allow(Protocol::Pop3));
    assert!(!read_only_client.allow(Protocol::Smtp) && !read_only_client.write);
}

#[test]
fn every_rights_list_reads_back_the_same() {
    for read in [false, true] {
        for write in [false, true] {
            for send in [false, true] {
                for mail_client in [false, true] {
                    for read_only_client in [false, true] {
                        let words: Vec<&str> = [
                            (read, "read"),
                            (write, "write"),
                            (send, "send"),
                            (mail_client, "mail-client"),
                            (read_only_client, "read-only-client"),
                        ]
                        .iter()
                        .filter(|(on, _)| *on)
                        .map(|(_, w)| *w)
                        .collect();
                        let Ok(rights) = Rights::parse_list(&words.join(",")) else {
                            continue;
                        };
                        assert_eq!(Rights::parse_list(&rights.to_list()), Ok(rights), "{words:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn pop3_delete_stricter() {
    use Pop3Delete::*;
    assert_eq!(Allow.stricter(Allow), Allow);
    assert_eq!(Allow.stricter(Deny), Deny);
    assert_eq!(Deny.stricter(Allow), Deny);
    assert_eq!(Deny.stricter(Deny), Deny);
    assert_eq!(Deny.stricter(ReadOnly), ReadOnly);
    assert_eq!(ReadOnly.stricter(Allow), ReadOnly);
    assert_eq!(Pop3Delete::parse("read-only"), None, "never a stored setting");
}
