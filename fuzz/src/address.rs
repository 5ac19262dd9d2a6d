//! The RFC 5322 address-list parser of the SMTP header rules.

use pec_proxy::testing::smtp::address::{self, Address};

/// What a canonical address is: a domain in lower-case ASCII without `@`
/// (A-labels, or a domain literal), a local part without upper-case
/// ASCII; shown as an `addr-spec`, it parses back to itself, alone in a
/// list too.
fn check_canonical(a: &Address) {
    let d = a.domain();
    assert!(!d.is_empty() && d.is_ascii() && !d.contains('@'), "{a:?}");
    assert_eq!(d, d.to_ascii_lowercase(), "{a:?}");
    assert_eq!(a.local(), a.local().to_ascii_lowercase(), "{a:?}");
    let shown = a.to_string();
    assert_eq!(address::smtp_mailbox(shown.as_bytes()).as_ref(), Ok(a), "{shown}");
    assert_eq!(
        address::address_list(shown.as_bytes()),
        Ok(vec![a.clone()]),
        "{shown}"
    );
}

/// `address_list`, `mailbox_list` and `smtp_mailbox` on any bytes.
///
/// Invariants: no panic; every address is canonical ([`check_canonical`]);
/// at most one address per 3 input bytes (`a@b`); a mailbox list is an
/// address list with the same addresses, and one mailbox parsed by
/// `smtp_mailbox` is the same address in a list. Folding is white space:
/// where the input has no CR and no backslash, every space made `CRLF SP`
/// parses to the same result. (Linear time is by construction, see the
/// module's documentation; a run with `-max_len` of a few KiB and a
/// timeout catches a slow input.)
pub fn address(data: &[u8]) {
    let list = address::address_list(data);
    if let Ok(list) = &list {
        assert!(
            list.len() <= data.len() / 3,
            "{} addresses in {} bytes",
            list.len(),
            data.len()
        );
        list.iter().for_each(check_canonical);
    }
    if let Ok(mailboxes) = address::mailbox_list(data) {
        assert_eq!(list.as_ref(), Ok(&mailboxes));
    }
    if let Ok(a) = address::smtp_mailbox(data) {
        check_canonical(&a);
        assert_eq!(list, Ok(vec![a]));
    }
    if !data.contains(&b'\r') && !data.contains(&b'\\') && data.contains(&b' ') {
        let mut folded = Vec::with_capacity(data.len() * 3);
        for &b in data {
            if b == b' ' {
                folded.extend_from_slice(b"\r\n ");
            } else {
                folded.push(b);
            }
        }
        assert_eq!(address::address_list(&folded), list, "folded");
    }
}
