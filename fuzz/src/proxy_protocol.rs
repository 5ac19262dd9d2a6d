//! The PROXY protocol header reader (v1 and v2) of the listeners.

use pec_proxy::testing::net::proxy_protocol::{Header, MAX_HEADER, encode_v1, encode_v2, parse};

/// `parse` on any bytes.
///
/// Invariants: no panic; a header takes at least one byte, at most the
/// input and at most `MAX_HEADER`, and parses the same from exactly its
/// bytes (what follows it is never read); every shorter prefix of it is
/// `Ok(None)`; "need more" is never said of `MAX_HEADER` bytes or more
/// (the caller's buffer bound); an error is final: every prefix is either
/// `Ok(None)` or the same error, so it does not matter how the bytes were
/// split. A PROXY header's addresses, encoded again as v2 and as v1, parse
/// back to the same header.
pub fn proxy_protocol(data: &[u8]) {
    let result = parse(data);
    match result {
        Ok(Some((header, consumed))) => {
            assert!(consumed > 0 && consumed <= data.len() && consumed <= MAX_HEADER);
            assert_eq!(parse(&data[..consumed]), result);
            for end in 0..consumed {
                assert_eq!(parse(&data[..end]), Ok(None), "prefix of {end} bytes");
            }
            if let Header::Proxy { source, destination } = header {
                for encoded in [encode_v2(source, destination), encode_v1(source, destination)] {
                    assert_eq!(parse(&encoded), Ok(Some((header, encoded.len()))), "{encoded:?}");
                }
            }
        }
        Ok(None) => assert!(data.len() < MAX_HEADER, "needs more after {} bytes", data.len()),
        Err(e) => {
            assert!(!e.label().is_empty() && !e.to_string().is_empty());
            for end in 0..data.len().min(MAX_HEADER) {
                let got = parse(&data[..end]);
                assert!(
                    got == Ok(None) || got == Err(e),
                    "prefix of {end} bytes: {got:?}, whole: {e:?}"
                );
            }
        }
    }
}
