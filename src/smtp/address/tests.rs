use super::*;

/// The canonical addresses of a list, as `local@domain` strings.
fn list(value: &str) -> Result<Vec<String>, AddressError> {
    address_list(value.as_bytes()).map(|v| {
        v.iter()
            .map(|a| format!("{}@{}", a.local(), a.domain()))
            .collect()
    })
}

#[test]
fn address_list_known_answers() {
    let ok: &[(&str, &[&str])] = &[
        ("bob@pec.example", &["bob@pec.example"]),
        ("Bob <bob@pec.example>", &["bob@pec.example"]),
        ("\"Rossi, Mario\" <m.rossi@pec.example>", &["m.rossi@pec.example"]),
        // Case of the domain and of an ASCII local part.
        ("Bob@PEC.Example", &["bob@pec.example"]),
        // Several, with comments, folded.
        (
            "bob@pec.example (Bob),\r\n Carol <carol@pec.example>, <dan@pec.example>",
            &["bob@pec.example", "carol@pec.example", "dan@pec.example"],
        ),
        ("(lead) bob@pec.example (tail (nested))", &["bob@pec.example"]),
        // Groups, empty and not (RFC 5322 A.1.3).
        ("undisclosed-recipients:;", &[]),
        ("Undisclosed recipients: ;", &[]),
        (
            "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
            &["c@a.test", "joe@where.test", "jdoe@one.test"],
        ),
        (
            "team: bob@pec.example;, carol@pec.example",
            &["bob@pec.example", "carol@pec.example"],
        ),
        // Quoted local parts mean what they say.
        ("\"bob\"@pec.example", &["bob@pec.example"]),
        ("\"b.o.b\"@pec.example", &["b.o.b@pec.example"]),
        ("\"a b\\\"c\"@pec.example", &["a b\"c@pec.example"]),
        // Encoded-word and UTF-8 display names.
        (
            "=?utf-8?q?Nicol=C3=B2?= <nicolo@pec.example>",
            &["nicolo@pec.example"],
        ),
        ("Nicolò <nicolo@pec.example>", &["nicolo@pec.example"]),
        // IDN: U-label, A-label, upper case: one domain.
        ("bob@bücher.example", &["bob@xn--bcher-kva.example"]),
        ("bob@BÜCHER.example", &["bob@xn--bcher-kva.example"]),
        ("bob@XN--BCHER-KVA.example", &["bob@xn--bcher-kva.example"]),
        // Obsolete forms: phrase with dots, CFWS in the address, empty
        // elements, a route.
        ("John Q. Public <jqp@pec.example>", &["jqp@pec.example"]),
        ("john . q (x) @ pec . example", &["john.q@pec.example"]),
        (", , bob@pec.example, ,", &["bob@pec.example"]),
        (
            "<@relay.example,@other.example:bob@pec.example>",
            &["bob@pec.example"],
        ),
        // Domain literal; empty value.
        ("bob@[192.0.2.1]", &["bob@[192.0.2.1]"]),
        ("bob@[IPv6:2001:DB8::1]", &["bob@[ipv6:2001:db8::1]"]),
        ("", &[]),
        ("  (nothing)  ", &[]),
    ];
    for (value, expected) in ok {
        let expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(list(value), Ok(expected), "{value:?}");
    }
    let bad: &[(&str, AddressError)] = &[
        // Two addresses without a comma: a reader may see either.
        ("bob@pec.example hidden@pec.example", AddressError::Syntax),
        ("bob", AddressError::Syntax),
        ("@pec.example", AddressError::Syntax),
        ("bob@", AddressError::Syntax),
        ("bob@pec.example.", AddressError::Syntax),
        ("bob@.pec.example", AddressError::Syntax),
        (".bob@pec.example", AddressError::Syntax),
        ("bob..x@pec.example", AddressError::Syntax),
        ("<bob@pec.example", AddressError::Syntax),
        ("Bob bob@pec.example>", AddressError::Syntax),
        ("\"unterminated@pec.example", AddressError::Syntax),
        ("bob@pec.example (open", AddressError::Syntax),
        ("bob@pec.example )", AddressError::Syntax),
        ("team: bob@pec.example", AddressError::Syntax),
        ("a: b: c@d;;", AddressError::Syntax),
        (": bob@pec.example;", AddressError::Syntax),
        ("bob@pec.example;", AddressError::Syntax),
        ("bob@pec\0.example", AddressError::Syntax),
        ("bob@pec.example\r\n", AddressError::Syntax),
        ("bob@[1.2.3.4", AddressError::Syntax),
        ("bob@[1.2.3.4@x]", AddressError::Syntax),
        ("bob@[1.2.3.ü]", AddressError::Syntax),
        ("bob@a_b.example", AddressError::BadDomain),
        ("bob@xn--a.example", AddressError::BadDomain),
        ("(((((((((x)))))))))bob@pec.example", AddressError::CommentTooDeep),
    ];
    for (value, expected) in bad {
        assert_eq!(list(value), Err(*expected), "{value:?}");
    }
    // Eight deep is fine.
    assert_eq!(
        list("((((((((x))))))))bob@pec.example"),
        Ok(vec!["bob@pec.example".to_owned()])
    );
    let long = format!("bob@{}.example", "a".repeat(MAX_DOMAIN_BYTES));
    assert_eq!(list(&long), Err(AddressError::BadDomain));
    assert_eq!(
        address_list(b"bob@b\xffcher.example"),
        Err(AddressError::BadDomain)
    );
    assert_eq!(address_list(b"b\xffb@pec.example"), Err(AddressError::NotUtf8));
}

#[test]
fn mailbox_list_has_no_groups() {
    let one =
        |v: &str| mailbox_list(v.as_bytes()).map(|l| l.iter().map(ToString::to_string).collect::<Vec<_>>());
    assert_eq!(
        one("Alice <Alice@PEC.example>"),
        Ok(vec!["alice@pec.example".to_owned()])
    );
    assert_eq!(
        one("alice@pec.example, bob@pec.example"),
        Ok(vec!["alice@pec.example".to_owned(), "bob@pec.example".to_owned()])
    );
    assert_eq!(one("team: alice@pec.example;"), Err(AddressError::Syntax));
}

#[test]
fn smtp_mailboxes_are_canonical_like_header_addresses() {
    for (path, header) in [
        ("Bob@PEC.example", "bob@pec.example"),
        ("\"bob\"@pec.example", "Bob <bob@pec.example>"),
        ("bob@bücher.example", "bob@xn--bcher-kva.example"),
        ("bob@[192.0.2.1]", "bob@[192.0.2.1]"),
    ] {
        assert_eq!(
            smtp_mailbox(path.as_bytes()).map(|a| vec![a]),
            address_list(header.as_bytes()),
            "{path}"
        );
    }
    assert_eq!(smtp_mailbox(b"Postmaster"), Err(AddressError::Syntax));
    assert_eq!(smtp_mailbox(b"bob@pec.example x"), Err(AddressError::Syntax));
}

#[test]
fn display_parses_back_to_the_same_address() {
    for value in [
        "bob@pec.example",
        "\"a b\\\"c\\\\\"@pec.example",
        "\"\"@pec.example",
        "\"a..b\"@pec.example",
        "\".a\"@[192.0.2.1]",
        "nicolò@bücher.example",
    ] {
        let a = address_list(value.as_bytes()).unwrap();
        assert_eq!(a.len(), 1);
        let shown = a[0].to_string();
        assert_eq!(
            smtp_mailbox(shown.as_bytes()),
            Ok(a[0].clone()),
            "{value} shown as {shown}"
        );
    }
}

/// Inputs that would take quadratic time or deep recursion in a naive
/// parser, at 1 MiB: each is parsed (or refused) in one pass. A quadratic
/// parser would not finish this test.
#[test]
fn pathological_inputs_are_parsed_in_one_pass() {
    let n = 1 << 20;
    let cases: Vec<Vec<u8>> = vec![
        "a.".repeat(n / 2).into_bytes(),
        "a ".repeat(n / 2).into_bytes(),
        ",".repeat(n).into_bytes(),
        "(".repeat(n).into_bytes(),
        "()".repeat(n / 2).into_bytes(),
        "\"".repeat(n).into_bytes(),
        "x:".repeat(n / 2).into_bytes(),
        "<@a,".repeat(n / 4).into_bytes(),
        [b"bob@".as_slice(), "a.".repeat(n / 2).as_bytes()].concat(),
    ];
    for c in cases {
        let _ = address_list(&c);
        let _ = mailbox_list(&c);
    }
    let many = "a@b,".repeat(n / 4);
    assert_eq!(address_list(many.as_bytes()).unwrap().len(), n / 4);
}
