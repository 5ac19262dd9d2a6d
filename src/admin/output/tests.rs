#[test]
fn times_are_rfc3339_utc() {
    assert_eq!(super::when(Some(0)), "1970-01-01T00:00:00Z");
    assert_eq!(super::when(Some(1_800_000_000)), "2027-01-15T08:00:00Z");
    assert_eq!(super::when(None), "never");
}
