use super::*;

#[test]
fn each_byte_is_scanned_once_and_a_line_feed_found_once() {
    let mut input = Input::default();
    input.extend(b"a NOOP");
    assert!(!input.line_ended());
    assert_eq!(input.scanned(), 6);
    input.extend(b"\r\nb NO");
    assert!(input.line_ended());
    assert_eq!(input.scanned(), 8);
    // Nothing new: the same line feed is not reported again.
    assert!(!input.line_ended());
    input.advance(8);
    assert_eq!(&input[..], b"b NO");
    assert_eq!(
        input.scanned(),
        4,
        "the scan keeps its place after a command is consumed"
    );
}

#[test]
fn skipped_bytes_are_not_scanned() {
    let mut input = Input::default();
    input.extend(b"{3}\r\n");
    assert!(input.line_ended());
    input.skip_to(8);
    input.extend(b"a\n");
    assert!(!input.line_ended(), "a line feed in skipped data ends no line");
    input.extend(b"b");
    assert!(!input.line_ended(), "nor once the rest of the data has arrived");
    input.extend(b" x\r\n");
    assert!(input.line_ended());
    assert_eq!(input.scanned(), 12);
}

#[test]
fn parse_work_is_what_the_scan_found() {
    let mut input = Input::default();
    input.extend(b"a NOOP\r\nb NOOP\r\n");
    assert!(input.line_ended());
    input.parsing(input.scanned());
    input.advance(8);
    assert!(input.line_ended());
    input.parsing(input.scanned());
    assert_eq!(input.parsed(), 16);
    input.clear();
    assert_eq!(input.scanned(), 0);
    assert!(input.is_empty());
}
