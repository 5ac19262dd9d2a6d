use super::*;
use LoginNameError as E;

fn ok(mailbox: &str, collaborator: Option<&str>) -> Result<LoginName, LoginNameError> {
    Ok(LoginName {
        mailbox: mailbox.to_owned(),
        collaborator: collaborator.map(str::to_owned),
    })
}

#[test]
fn known_answers() {
    let long_local = format!("{}@pec.it", "a".repeat(65));
    let max_local = format!("{}@pec.it", "a".repeat(64));
    let long_domain = format!("a@{}.it", vec!["b".repeat(60); 5].join("."));
    let long_collab = format!("{}/a@pec.it", "c".repeat(65));
    let max_collab = format!("{}/a@pec.it", "c".repeat(64));
    let huge = "a".repeat(MAX_LOGIN_NAME + 1);
    let table: Vec<(&[u8], Result<LoginName, LoginNameError>)> = vec![
        (b"mario.rossi@pec.it", ok("mario.rossi@pec.it", None)),
        (b"Mario.Rossi@PEC.IT", ok("mario.rossi@pec.it", None)),
        (
            b"segreteria/studio@pec.it",
            ok("studio@pec.it", Some("segreteria")),
        ),
        (
            b"MultiUtente/Studio@Pec.It",
            ok("studio@pec.it", Some("multiutente")),
        ),
        (
            b"anna.b_2-x/studio@pec.it",
            ok("studio@pec.it", Some("anna.b_2-x")),
        ),
        (b"a+tag@pec.it", ok("a+tag@pec.it", None)),
        ("caffè@pec.it".as_bytes(), ok("caffè@pec.it", None)),
        (b"a@b", ok("a@b", None)),
        (max_local.as_bytes(), ok(&max_local, None)),
        (max_collab.as_bytes(), ok("a@pec.it", Some(&"c".repeat(64)))),
        // refusals
        (b"", Err(E::Empty)),
        (huge.as_bytes(), Err(E::TooLong)),
        (b"\xffa@pec.it", Err(E::NotUtf8)),
        (b"a\r\n@pec.it", Err(E::ForbiddenCharacter)),
        (b"a@pec.it\r\n", Err(E::ForbiddenCharacter)),
        (b"a\0@pec.it", Err(E::ForbiddenCharacter)),
        (b"a\x7f@pec.it", Err(E::ForbiddenCharacter)),
        (b"a b@pec.it", Err(E::ForbiddenCharacter)),
        (b"a\t@pec.it", Err(E::ForbiddenCharacter)),
        (b"\"a\"@pec.it", Err(E::ForbiddenCharacter)),
        (b"o'brien@pec.it", Err(E::ForbiddenCharacter)),
        (b"a\\b@pec.it", Err(E::ForbiddenCharacter)),
        ("a\u{a0}b@pec.it".as_bytes(), Err(E::ForbiddenCharacter)),
        (b"x/y/a@pec.it", Err(E::MultipleSeparators)),
        (b"/a@pec.it", Err(E::EmptyCollaborator)),
        (long_collab.as_bytes(), Err(E::CollaboratorTooLong)),
        (b"-x/a@pec.it", Err(E::CollaboratorCharset)),
        (b"x+y/a@pec.it", Err(E::CollaboratorCharset)),
        (b"x@y/a@pec.it", Err(E::CollaboratorCharset)),
        (b"studio.pec.it", Err(E::MissingAt)),
        (b"x/", Err(E::MissingAt)),
        (b"a@b@pec.it", Err(E::MultipleAt)),
        (b"@pec.it", Err(E::EmptyLocalPart)),
        (b"x/@pec.it", Err(E::EmptyLocalPart)),
        (long_local.as_bytes(), Err(E::LocalPartTooLong)),
        (b".a@pec.it", Err(E::BadLocalPart)),
        (b"a..b@pec.it", Err(E::BadLocalPart)),
        (b"a.@pec.it", Err(E::BadLocalPart)),
        (b"a(b)@pec.it", Err(E::BadLocalPart)),
        (b"a<b>@pec.it", Err(E::BadLocalPart)),
        (b"a@", Err(E::EmptyDomain)),
        (long_domain.as_bytes(), Err(E::DomainTooLong)),
        (b"a@pec..it", Err(E::BadDomain)),
        (b"a@-pec.it", Err(E::BadDomain)),
        (b"a@pec.it.", Err(E::BadDomain)),
        (b"a@[127.0.0.1]", Err(E::BadDomain)),
        (b"a@pec_it", Err(E::BadDomain)),
    ];
    for (input, expected) in table {
        assert_eq!(
            parse_login_name(input, DEFAULT_SEPARATOR),
            expected,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// The rules hold for the lower-case form: a name is refused when its
/// lower case breaks them, so a canonical name always parses to itself.
#[test]
fn names_are_checked_in_lower_case() {
    let label_62 = format!("a@{}\u{23a}.it", "b".repeat(61));
    let local_64 = format!("{}\u{23a}@pec.it", "a".repeat(62));
    let table: Vec<(&[u8], Result<LoginName, LoginNameError>)> = vec![
        ("b/b@\u{130}".as_bytes(), Err(E::BadDomain)),
        ("\u{130}lk\u{e9}@pec.it".as_bytes(), Err(E::BadLocalPart)),
        // 63 octets as typed, 64 in lower case.
        (label_62.as_bytes(), Err(E::BadDomain)),
        (local_64.as_bytes(), Err(E::LocalPartTooLong)),
        (
            "\u{c4}RGER@P\u{c9}C.IT".as_bytes(),
            ok("\u{e4}rger@p\u{e9}c.it", None),
        ),
    ];
    for (input, expected) in table {
        let got = parse_login_name(input, DEFAULT_SEPARATOR);
        assert_eq!(got, expected, "input {:?}", String::from_utf8_lossy(input));
        if let Ok(name) = got {
            assert_eq!(
                parse_login_name(name.mailbox.as_bytes(), DEFAULT_SEPARATOR),
                Ok(name)
            );
        }
    }
}

#[test]
fn separator_is_configurable() {
    assert_eq!(
        parse_login_name(b"segreteria#studio@pec.it", '#'),
        ok("studio@pec.it", Some("segreteria"))
    );
    // '/' is never part of a mailbox name, whatever the separator.
    assert_eq!(parse_login_name(b"a/b@pec.it", '#'), Err(E::BadLocalPart));
    for bad in ['@', 'a', '7', ' ', '"', '\\', '\n'] {
        assert_eq!(
            parse_login_name(b"a@pec.it", bad),
            Err(E::BadSeparator),
            "{bad:?}"
        );
    }
}

#[test]
fn address_and_collaborator_helpers() {
    assert_eq!(parse_mailbox_address("A@B.IT"), Ok("a@b.it".into()));
    assert_eq!(parse_mailbox_address("x/a@b.it"), Err(E::BadLocalPart));
    assert_eq!(parse_mailbox_address("a b@c"), Err(E::ForbiddenCharacter));
    assert_eq!(parse_collaborator_name("Anna"), Ok("anna".into()));
    assert_eq!(parse_collaborator_name(""), Err(E::EmptyCollaborator));
}

#[test]
fn canonical_login_names_are_the_names_the_store_knows() {
    let table: &[(&[u8], char, &[u8])] = &[
        (b"mark@pec.it", '/', b"mark@pec.it"),
        // U+212A KELVIN SIGN: `k` in Unicode lower case, not in ASCII.
        ("Mar\u{212A}@Pec.it".as_bytes(), '/', b"mark@pec.it"),
        ("MAR\u{212A}@PEC.IT".as_bytes(), '/', b"mark@pec.it"),
        (b"Anna/Studio@PEC.it", '/', b"anna/studio@pec.it"),
        ("Anna/Studio@PE\u{212A}.it".as_bytes(), '/', b"anna/studio@pek.it"),
        (b"Anna#Studio@pec.it", '#', b"anna#studio@pec.it"),
        // Names the store refuses (a pass-through upstream may take them):
        // Unicode lower case, or the bytes as sent.
        (b"Mark", '/', b"mark"),
        ("MAR\u{212A}".as_bytes(), '/', b"mark"),
        (b"x/y/Z@pec.it", '/', b"x/y/z@pec.it"),
        (b"\xffMark", '/', b"\xffMark"),
    ];
    for (raw, separator, expected) in table {
        let got = canonical_login_name(raw, *separator);
        let shown = String::from_utf8_lossy(raw);
        assert_eq!(got, *expected, "{shown}");
        assert_eq!(canonical_login_name(&got, *separator), got, "stable: {shown}");
        if let Ok(name) = parse_login_name(raw, *separator) {
            assert_eq!(parse_login_name(&got, *separator), Ok(name), "{shown}");
        }
    }
}
