use super::*;

#[test]
fn generated_shape() {
    for _ in 0..50 {
        let pw = generate().unwrap();
        let text = pw.expose_str().unwrap();
        assert_eq!(text.len(), 19, "{text}");
        for (i, group) in text.split('-').enumerate() {
            assert!(i < GROUPS);
            assert_eq!(group.len(), GROUP_LEN);
            assert!(group.bytes().all(|b| b.is_ascii_lowercase()));
        }
        assert_eq!(normalise(&pw).unwrap().len(), LETTERS);
    }
    assert_ne!(generate().unwrap(), generate().unwrap());
}

#[test]
fn letters_are_roughly_uniform() {
    let mut counts = [0u32; 26];
    for _ in 0..400 {
        for b in normalise(&generate().unwrap()).unwrap().expose() {
            counts[(b - b'a') as usize] += 1;
        }
    }
    // 6400 letters, 246 expected each; a biased mapping would show.
    assert!(counts.iter().all(|&c| (150..350).contains(&c)), "{counts:?}");
}

#[test]
fn normalise_known_answers() {
    let table: &[(&[u8], Option<&[u8]>)] = &[
        (b"abcd-efgh-ijkl-mnop", Some(b"abcdefghijklmnop")),
        (b"abcd efgh ijkl mnop", Some(b"abcdefghijklmnop")),
        (b"abcdefghijklmnop", Some(b"abcdefghijklmnop")),
        (b"Abcd-EFGH-ijkl-mnop", Some(b"abcdefghijklmnop")),
        (b"abcd - efgh - ijkl - mnop", Some(b"abcdefghijklmnop")),
        (b"abcd-efgh-ijkl-mno", None),
        (b"abcd-efgh-ijkl-mnopq", None),
        (b"abcd-efgh-ijkl-mn0p", None),
        (b"abcd_efgh_ijkl_mnop", None),
        (b"abcd\tefgh ijkl mnop", None),
        (b"", None),
        (b"correct horse battery staple", None),
        ("àbcd-efgh-ijkl-mnop".as_bytes(), None),
    ];
    for (input, expected) in table {
        assert_eq!(
            normalise(&Secret::from_slice(input)).as_ref().map(Secret::expose),
            *expected,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}
