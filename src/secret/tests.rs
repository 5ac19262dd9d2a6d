use super::*;

#[test]
fn debug_and_display_redact() {
    let s = Secret::from_slice(b"hunter2");
    assert_eq!(format!("{s:?}"), "Secret(***)");
    assert_eq!(format!("{s}"), "***");
    assert_eq!(s.expose(), b"hunter2");
}
