#[test]
fn literal_sizes() {
    assert_eq!(super::literal_size(b"* 1 FETCH (BODY[] {1234}\r\n"), Some(1234));
    assert_eq!(super::literal_size(b"* 1 FETCH (BODY[] NIL)\r\n"), None);
}
