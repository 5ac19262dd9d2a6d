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
}

#[test]
fn pop3_delete_stricter() {
    use Pop3Delete::*;
    assert_eq!(Allow.stricter(Allow), Allow);
    assert_eq!(Allow.stricter(Deny), Deny);
    assert_eq!(Deny.stricter(Allow), Deny);
    assert_eq!(Deny.stricter(Deny), Deny);
}
