#[test]
fn literals_at_line_end() {
    assert_eq!(super::trailing_literal(b"a LOGIN {5+}"), Some((5, false)));
    assert_eq!(super::trailing_literal(b"a LOGIN {5}"), Some((5, true)));
    assert_eq!(super::trailing_literal(b"a LOGIN x"), None);
}
