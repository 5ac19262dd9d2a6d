use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn proxy(source: &str, destination: &str) -> Header {
    Header::Proxy {
        source: addr(source),
        destination: addr(destination),
    }
}

/// A v2 header: signature, `ver_cmd`, `fam`, the length of `body`, `body`.
fn v2_bytes(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(ver_cmd);
    out.push(fam);
    out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A TLV: type, big-endian length, value.
fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// 192.0.2.1:56324 → 198.51.100.7:993, as a v2 TCP4 address block.
const TCP4_BLOCK: [u8; 12] = [192, 0, 2, 1, 198, 51, 100, 7, 0xdc, 0x04, 0x03, 0xe1];

fn tcp6_block() -> Vec<u8> {
    let mut b = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets().to_vec();
    b.extend_from_slice(&"2001:db8::2:1".parse::<Ipv6Addr>().unwrap().octets());
    b.extend_from_slice(&[0xc3, 0x50, 0x01, 0xbb]); // 50000, 443
    b
}

/// The start of a TLS 1.2/1.3 ClientHello record: what follows the header
/// on an implicit-TLS listener.
const CLIENT_HELLO: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";

/// Asserts `input` parses to `expected`, and that every shorter prefix of
/// it is `Ok(None)` when it parses, or fails the same way when it fails
/// (never an error on a prefix of a valid header; errors as early as the
/// bytes allow do not depend on what follows).
fn check(input: &[u8], expected: Parsed) {
    assert_eq!(parse(input), expected, "{:?}", String::from_utf8_lossy(input));
    for end in 0..input.len() {
        let got = parse(&input[..end]);
        match expected {
            Ok(_) => assert_eq!(got, Ok(None), "prefix of {end} bytes"),
            Err(e) => assert!(got == Ok(None) || got == Err(e), "prefix of {end} bytes: {got:?}"),
        }
    }
}

#[test]
fn v1_known_answers() {
    let line = |s: &str| s.as_bytes().to_vec();
    let ok = |h: Header, n: usize| Ok(Some((h, n)));
    // A line that is a header, whole.
    let whole = |s: &str, h: Header| (line(s), ok(h, s.len()));
    let table: Vec<(Vec<u8>, Parsed)> = vec![
        whole(
            "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n",
            proxy("1.2.3.4:1111", "5.6.7.8:2222"),
        ),
        whole(
            "PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n",
            proxy("255.255.255.255:65535", "0.0.0.0:0"),
        ),
        whole(
            "PROXY TCP6 2001:db8::1 2001:DB8::2:1 50000 443\r\n",
            proxy("[2001:db8::1]:50000", "[2001:db8::2:1]:443"),
        ),
        whole(
            "PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n",
            proxy("[::ffff:192.0.2.1]:1", "[::1]:2"),
        ),
        whole("PROXY UNKNOWN\r\n", Header::Unknown),
        whole(
            "PROXY UNKNOWN ffff:f::f:ffff ffff:f::f:ffff 65535 65535\r\n",
            Header::Unknown,
        ),
        whole("PROXY UNKNOWN whatever\rthe sender says\r\n", Header::Unknown),
        // Signature.
        (CLIENT_HELLO.to_vec(), Err(ProxyError::Signature)),
        (line("a1 LOGIN user pass\r\n"), Err(ProxyError::Signature)),
        (line("POST / HTTP/1.1\r\n"), Err(ProxyError::Signature)),
        (
            line("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
            Err(ProxyError::Signature),
        ),
        // The protocol word.
        (
            line("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (
            line("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (
            line("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (
            line("PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (line("PROXY UNKNOWNX\r\n"), Err(ProxyError::V1Syntax)),
        // Spaces.
        (
            line("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (
            line("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (
            line("PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (
            line("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (
            line("PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        // Addresses.
        (
            line("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (
            line("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (
            line("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (
            line("PROXY TCP4 1.2.3.4. 5.6.7.8 1 2\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (line("PROXY TCP4 ::1 5.6.7.8 1 2\r\n"), Err(ProxyError::V1Syntax)),
        (line("PROXY TCP6 1.2.3.4 ::1 1 2\r\n"), Err(ProxyError::V1Syntax)),
        (line("PROXY TCP6 ::1 ::1::1 1 2\r\n"), Err(ProxyError::V1Syntax)),
        (
            line("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        // Ports.
        (
            line("PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (
            line("PROXY TCP4 1.2.3.4 5.6.7.8 65536 1\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (
            line("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (
            line("PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (
            line("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (
            line("PROXY TCP4 1.2.3.4 5.6.7.8 000001 2\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (
            line("PROXY TCP4 1.2.3.4 5.6.7.8 1 0x10\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        // Missing fields.
        (
            line("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"),
            Err(ProxyError::V1Syntax),
        ),
        (line("PROXY TCP4 1.2.3.4 5.6.7.8\r\n"), Err(ProxyError::V1Syntax)),
        (line("PROXY TCP4\r\n"), Err(ProxyError::V1Syntax)),
        (line("PROXY\r\n"), Err(ProxyError::V1Syntax)),
        // Line ends: a LF or a CR alone.
        (
            line("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
            Err(ProxyError::V1Syntax),
        ),
        (
            line("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\n"),
            Err(ProxyError::V1Syntax),
        ),
        (line("PROXY UNKNOWN\n"), Err(ProxyError::V1Syntax)),
        (line("PROXY UNKNOWN 1 2 3 4\n"), Err(ProxyError::V1Syntax)),
        // Length: 105 bytes of UNKNOWN text and its CRLF is the longest line.
        (
            format!("PROXY UNKNOWN {}\r\n", "x".repeat(107 - 16)).into_bytes(),
            ok(Header::Unknown, 107),
        ),
        (
            format!("PROXY UNKNOWN {}\r\n", "x".repeat(108 - 16)).into_bytes(),
            Err(ProxyError::V1Length),
        ),
        (
            format!("PROXY UNKNOWN {}", "x".repeat(108 - 14)).into_bytes(),
            Err(ProxyError::V1Length),
        ),
        (
            format!("PROXY TCP6 {} ::1 1 2\r\n", "0".repeat(100)).into_bytes(),
            Err(ProxyError::V1Length),
        ),
    ];
    for (input, expected) in table {
        check(&input, expected);
    }
}

#[test]
fn v1_is_waited_for_until_crlf_or_107_bytes() {
    assert_eq!(parse(b""), Ok(None));
    assert_eq!(parse(b"P"), Ok(None));
    assert_eq!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2"), Ok(None));
    assert_eq!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"), Ok(None));
    let unknown = format!("PROXY UNKNOWN {}", "x".repeat(106 - 14));
    assert_eq!(unknown.len(), 106);
    assert_eq!(parse(unknown.as_bytes()), Ok(None));
    assert_eq!(parse(format!("{unknown}y").as_bytes()), Err(ProxyError::V1Length));
    // Decided early: the first byte, the word, a space too many.
    assert_eq!(parse(b"\x16"), Err(ProxyError::Signature));
    assert_eq!(parse(b"PRX"), Err(ProxyError::Signature));
    assert_eq!(parse(b"PROXY TCP7"), Err(ProxyError::V1Syntax));
    assert_eq!(parse(b"PROXY TCP4  "), Err(ProxyError::V1Syntax));
}

#[test]
fn v2_known_answers() {
    let ok = |h: Header, n: usize| Ok(Some((h, n)));
    let tcp4 = proxy("192.0.2.1:56324", "198.51.100.7:993");
    let unix_block = [0u8; 216];
    let table: Vec<(Vec<u8>, Parsed)> = vec![
        (v2_bytes(0x21, 0x11, &TCP4_BLOCK), ok(tcp4, 28)),
        (
            v2_bytes(0x21, 0x21, &tcp6_block()),
            ok(proxy("[2001:db8::1]:50000", "[2001:db8::2:1]:443"), 52),
        ),
        // LOCAL: no addresses, or addresses to skip, whatever the family says.
        (v2_bytes(0x20, 0x00, &[]), ok(Header::Local, 16)),
        (v2_bytes(0x20, 0x11, &TCP4_BLOCK), ok(Header::Local, 28)),
        (v2_bytes(0x20, 0xff, &[1, 2, 3]), ok(Header::Local, 19)),
        // PROXY over what is not TCP over IP: Unknown, its bytes skipped.
        (v2_bytes(0x21, 0x00, &[]), ok(Header::Unknown, 16)),
        (v2_bytes(0x21, 0x00, &[9; 40]), ok(Header::Unknown, 56)),
        (v2_bytes(0x21, 0x31, &unix_block), ok(Header::Unknown, 232)),
        (v2_bytes(0x21, 0x32, &unix_block), ok(Header::Unknown, 232)),
        (v2_bytes(0x21, 0x12, &TCP4_BLOCK), ok(Header::Unknown, 28)),
        (v2_bytes(0x21, 0x22, &tcp6_block()), ok(Header::Unknown, 52)),
        (v2_bytes(0x21, 0x10, &[]), ok(Header::Unknown, 16)),
        // TLVs after the addresses are walked and skipped.
        (
            v2_bytes(
                0x21,
                0x11,
                &[&TCP4_BLOCK[..], &tlv(0x02, b"imap.example.it"), &tlv(0x04, &[])].concat(),
            ),
            ok(tcp4, 28 + 18 + 3),
        ),
        (
            v2_bytes(0x21, 0x11, &[&TCP4_BLOCK[..], &[0x04, 0x00]].concat()),
            Err(ProxyError::V2Tlv),
        ),
        (
            v2_bytes(0x21, 0x11, &[&TCP4_BLOCK[..], &[0x02, 0x00, 0x05, b'a']].concat()),
            Err(ProxyError::V2Tlv),
        ),
        // Version, command, family.
        (v2_bytes(0x11, 0x11, &TCP4_BLOCK), Err(ProxyError::V2Version)),
        (v2_bytes(0x31, 0x11, &TCP4_BLOCK), Err(ProxyError::V2Version)),
        (v2_bytes(0x22, 0x11, &TCP4_BLOCK), Err(ProxyError::V2Command)),
        (v2_bytes(0x2f, 0x11, &TCP4_BLOCK), Err(ProxyError::V2Command)),
        (v2_bytes(0x21, 0x41, &TCP4_BLOCK), Err(ProxyError::V2Family)),
        (v2_bytes(0x21, 0x13, &TCP4_BLOCK), Err(ProxyError::V2Family)),
        // Lengths: the bound, and address blocks too short for the family.
        (
            v2_bytes(0x21, 0x00, &[0; MAX_HEADER - 16]),
            ok(Header::Unknown, MAX_HEADER),
        ),
        (
            v2_bytes(0x21, 0x00, &[0; MAX_HEADER - 15]),
            Err(ProxyError::V2Length),
        ),
        (
            v2_bytes(0x21, 0x11, &TCP4_BLOCK[..11]),
            Err(ProxyError::V2Address),
        ),
        (v2_bytes(0x21, 0x21, &TCP4_BLOCK), Err(ProxyError::V2Address)),
        (v2_bytes(0x21, 0x31, &[0; 215]), Err(ProxyError::V2Address)),
        // Not the signature.
        (b"\r\n\r\n\0\r\nQUIT\r".to_vec(), Err(ProxyError::Signature)),
        (b"\r\nSTARTTLS\r\n".to_vec(), Err(ProxyError::Signature)),
    ];
    for (input, expected) in table {
        check(&input, expected);
    }
}

#[test]
fn v2_decides_from_the_fixed_16_bytes_without_waiting_for_the_rest() {
    let mut header = V2_SIGNATURE.to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    assert_eq!(parse(&header), Err(ProxyError::V2Length));
    header[14..16].copy_from_slice(&u16::try_from(MAX_HEADER - 15).unwrap().to_be_bytes());
    assert_eq!(parse(&header), Err(ProxyError::V2Length));
    header[14..16].copy_from_slice(&u16::try_from(MAX_HEADER - 16).unwrap().to_be_bytes());
    assert_eq!(parse(&header), Ok(None), "within the bound: wait for the bytes");
    header[14..16].copy_from_slice(&11u16.to_be_bytes());
    assert_eq!(parse(&header), Err(ProxyError::V2Address));
    assert_eq!(
        parse(&[&V2_SIGNATURE[..], &[0x12]].concat()),
        Err(ProxyError::V2Version)
    );
    assert_eq!(
        parse(&[&V2_SIGNATURE[..], &[0x23]].concat()),
        Err(ProxyError::V2Command)
    );
    assert_eq!(
        parse(&[&V2_SIGNATURE[..], &[0x21, 0x51]].concat()),
        Err(ProxyError::V2Family)
    );
    assert_eq!(parse(b"\r\n\r\n\0\r"), Ok(None));
    assert_eq!(parse(b"\r\n\r\n\0\n"), Err(ProxyError::Signature));
}

/// The spec's own example (§2.1): a v1 line, then the client's bytes.
#[test]
fn haproxy_v1_example_from_the_spec() {
    let input =
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";
    let (header, consumed) = parse(input).unwrap().unwrap();
    assert_eq!(header, proxy("192.168.0.1:56324", "192.168.0.11:443"));
    assert_eq!(
        &input[consumed..],
        b"GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n"
    );
    assert_eq!(
        encode_v1(addr("192.168.0.1:56324"), addr("192.168.0.11:443")),
        &input[..consumed]
    );
}

/// What HAProxy sends with `send-proxy-v2-ssl` (spec §2.2, §2.2.6): PROXY
/// over TCP4, then a PP2_TYPE_SSL TLV (client 0x01 = SSL, verify 0, a
/// PP2_SUBTYPE_SSL_VERSION sub-TLV), byte by byte from the spec's structs.
#[test]
fn haproxy_v2_with_ssl_tlv_as_the_spec_lays_it_out() {
    let mut input: Vec<u8> = vec![
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, // sig
        0x21, // version 2, PROXY
        0x11, // AF_INET, STREAM
        0x00, 0x1e, // 30 bytes follow: 12 of addresses, 18 of TLV
        192, 168, 0, 1, // src_addr
        192, 168, 0, 11, // dst_addr
        0xdc, 0x04, // src_port 56324
        0x01, 0xbb, // dst_port 443
        0x20, 0x00, 0x0f, // PP2_TYPE_SSL, 15 bytes
        0x01, // client: PP2_CLIENT_SSL
        0x00, 0x00, 0x00, 0x00, // verify: 0
        0x21, 0x00, 0x07, b'T', b'L', b'S', b'v', b'1', b'.', b'3', // PP2_SUBTYPE_SSL_VERSION
    ];
    assert_eq!(input.len(), 16 + 30);
    input.extend_from_slice(CLIENT_HELLO);
    let (header, consumed) = parse(&input).unwrap().unwrap();
    assert_eq!(header, proxy("192.168.0.1:56324", "192.168.0.11:443"));
    assert_eq!(&input[consumed..], CLIENT_HELLO);
    assert_eq!(
        encode_v2(addr("192.168.0.1:56324"), addr("192.168.0.11:443")),
        [&input[..14], &[0x00, 0x0c], &input[16..28]].concat(),
        "the same header without the TLV"
    );
}

/// Bytes HAProxy 2.6.12 (Debian 12) sent, captured on a listening socket:
/// `server s 127.0.0.1:47201 send-proxy` (v1), `send-proxy-v2`, and over
/// IPv6 `send-proxy-v2 proxy-v2-options authority,unique-id` (which, with
/// no SNI and no `unique-id-format`, sends an empty PP2_TYPE_UNIQUE_ID TLV
/// and no authority), each followed by the client's `\x16\x03\x01hello`.
#[test]
fn bytes_captured_from_haproxy() {
    let unhex = |h: &str| -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    };
    let cases = [
        (
            "50524f58592054435034203132372e302e302e31203132372e302e302e312034373330312034373130310d0a",
            "127.0.0.1:47301",
            "127.0.0.1:47101",
        ),
        (
            "0d0a0d0a000d0a515549540a2111000c7f0000017f000001b8c6b7fe",
            "127.0.0.1:47302",
            "127.0.0.1:47102",
        ),
        (
            "0d0a0d0a000d0a515549540a21210027000000000000000000000000000000010000000000000000000000000000\
             0001b8c7b7ff050000",
            "[::1]:47303",
            "[::1]:47103",
        ),
    ];
    for (hex, source, destination) in cases {
        let expected = proxy(source, destination);
        let (source, destination) = (addr(source), addr(destination));
        let header = unhex(hex);
        let input = [&header[..], b"\x16\x03\x01hello"].concat();
        check(&header, Ok(Some((expected, header.len()))));
        assert_eq!(parse(&input), Ok(Some((expected, header.len()))));
        // Ours say the same: v1 to the byte; v2 too, but for the length
        // field and the empty TLV we do not send.
        if header[0] == b'P' {
            assert_eq!(encode_v1(source, destination), header);
        } else {
            let ours = encode_v2(source, destination);
            let tlvs = if header.ends_with(&[5, 0, 0]) { 3 } else { 0 };
            assert_eq!(ours[..14], header[..14]);
            assert_eq!(ours[16..], header[16..header.len() - tlvs]);
        }
    }
}

#[test]
fn bytes_after_the_header_are_left_to_the_client() {
    let headers = [
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n".to_vec(),
        b"PROXY UNKNOWN\r\n".to_vec(),
        v2_bytes(0x21, 0x11, &TCP4_BLOCK),
        v2_bytes(0x20, 0x00, &[]),
        v2_bytes(0x21, 0x21, &[&tcp6_block()[..], &tlv(0x05, &[7; 32])].concat()),
    ];
    for header in headers {
        let expected = parse(&header).unwrap().unwrap();
        assert_eq!(expected.1, header.len());
        for rest in [
            CLIENT_HELLO,
            b"a1 CAPABILITY\r\n",
            b"PROXY TCP4 9.9.9.9 9.9.9.9 9 9\r\n",
        ] {
            let input = [&header[..], rest].concat();
            // Every split of the header: `Ok(None)` until it is whole, then the
            // same header, whatever part of the client's bytes has arrived.
            for end in 0..input.len() {
                let got = parse(&input[..end]);
                if end < header.len() {
                    assert_eq!(got, Ok(None), "{end}");
                } else {
                    assert_eq!(got, Ok(Some(expected)), "{end}");
                }
            }
            assert_eq!(&input[expected.1..], rest);
        }
    }
}

#[test]
fn encoders_round_trip_and_map_mixed_families_to_ipv6() {
    let pairs = [
        ("192.0.2.1:56324", "198.51.100.7:993"),
        ("0.0.0.0:0", "255.255.255.255:65535"),
        ("[2001:db8::1]:50000", "[2001:db8::2:1]:443"),
        ("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", "[::]:0"),
    ];
    for (src, dst) in pairs {
        let expected = proxy(src, dst);
        let v2 = encode_v2(addr(src), addr(dst));
        assert_eq!(parse(&v2), Ok(Some((expected, v2.len()))), "{src} {dst}");
        let v1 = encode_v1(addr(src), addr(dst));
        assert!(v1.len() <= 104);
        assert_eq!(parse(&v1), Ok(Some((expected, v1.len()))), "{src} {dst}");
    }
    let mixed = proxy("[::ffff:192.0.2.1]:1", "[2001:db8::2]:2");
    for encoded in [
        encode_v2(addr("192.0.2.1:1"), addr("[2001:db8::2]:2")),
        encode_v1(addr("192.0.2.1:1"), addr("[2001:db8::2]:2")),
    ] {
        assert_eq!(parse(&encoded), Ok(Some((mixed, encoded.len()))));
    }
    assert_eq!(
        encode_v2(addr("192.0.2.1:56324"), addr("198.51.100.7:993")),
        v2_bytes(0x21, 0x11, &TCP4_BLOCK)
    );
    assert_eq!(
        encode_v1(addr("[2001:db8::1]:50000"), addr("198.51.100.7:993")),
        b"PROXY TCP6 2001:db8::1 ::ffff:198.51.100.7 50000 993\r\n"
    );
}

#[test]
fn error_labels_are_distinct_and_messages_quote_no_input() {
    let all = [
        ProxyError::Signature,
        ProxyError::V1Syntax,
        ProxyError::V1Length,
        ProxyError::V2Version,
        ProxyError::V2Command,
        ProxyError::V2Family,
        ProxyError::V2Length,
        ProxyError::V2Address,
        ProxyError::V2Tlv,
    ];
    let labels: std::collections::HashSet<_> = all.iter().map(ProxyError::label).collect();
    assert_eq!(labels.len(), all.len());
    assert_eq!(
        ProxyError::V2Length.to_string(),
        format!("PROXY v2 header longer than {MAX_HEADER} bytes")
    );
    assert_eq!(
        ProxyError::V1Length.to_string(),
        format!("PROXY v1 line longer than {V1_MAX} bytes")
    );
}
