//! The PROXY protocol header a load balancer (HAProxy, a cloud NLB) puts
//! before a client's first byte: version 1 (one text line) and version 2
//! (binary), as specified in HAProxy's `doc/proxy-protocol.txt` (2.8).
//! Pure and sans-I/O: [`parse`] takes the bytes received so far and says
//! "need more", "here is the header and its length", or "not a header";
//! the listener owns the socket, the trust decision and the timeout.
//!
//! Written here with nom rather than taken from a crate (checked: `ppp`
//! 2.3, `proxy-header` 0.1.3, `proxy-protocol` 0.5): all three read v1
//! ports with `str::parse::<u16>`, which takes `+1`; none bounds a v2
//! declared length below the format's 64 KiB, so the caller would have
//! to read the fixed 16 bytes itself to refuse one early; `ppp` pulls
//! `thiserror` 1 beside our 2 (a duplicate `deny.toml` refuses). The
//! format is small enough that a strict reader is shorter than the glue.
//!
//! Bounds: v1 is judged on its first [`V1_MAX`] (107) bytes, the spec's
//! longest line; v2 on its fixed 16 bytes, and a declared length that
//! would take the header past [`MAX_HEADER`] (536) is refused from those
//! 16 bytes, without waiting for the rest. So a caller never buffers more
//! than [`MAX_HEADER`] bytes, and each call to [`parse`] reads at most that
//! many: calling it again after every read costs O(n) per call on n ≤ 536,
//! bounded however the header is split.
//!
//! Errors are decided as early as the bytes allow: the first byte must be
//! `P` (v1) or CR (v2), so a TLS ClientHello (`\x16\x03`) or a plain
//! `a1 LOGIN` fails at once; v1 fails at the first word or token that
//! cannot be part of a valid line, v2 at the first field that is out of range.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use nom::branch::alt;
use nom::bytes::streaming::{tag, take, take_till, take_while1};
use nom::combinator::{map_res, value, verify};
use nom::number::streaming::{be_u8, be_u16};
use nom::{IResult, Parser};

/// The longest v1 line, CRLF included (`PROXY UNKNOWN` with two full IPv6
/// addresses and ports, spec §2.1): a line whose CRLF is not within these
/// bytes is refused.
pub const V1_MAX: usize = 107;

/// The most bytes a header may take, and so the most a caller ever needs to
/// buffer before [`parse`] decides. v2 headers are `16 + length` bytes with
/// an attacker-chosen length up to 65535; we accept up to the smallest TCP
/// segment every host must take (576 - 40 = 536 bytes), which the spec
/// designs both formats to fit in (§2): 16 fixed bytes, 216 for the largest
/// address block (AF_UNIX), and 304 for TLVs, more than what load balancers
/// send (an AWS VPC endpoint id, an Azure link id, HAProxy's SSL and
/// unique-id TLVs are each tens of bytes, the unique id at most 128).
pub const MAX_HEADER: usize = 536;

/// The v2 signature (spec §2.2): the first 12 bytes of every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The fixed part of a v2 header: signature, version and command, family
/// and transport, length.
const V2_FIXED: usize = 16;

/// What a PROXY header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// The connection was relayed for a client: `source` is the client,
    /// `destination` the address it connected to (on the load balancer).
    Proxy {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// v2 LOCAL: the load balancer's own connection (a health check). Use
    /// the real connection's addresses.
    Local,
    /// v1 `UNKNOWN`, or v2 PROXY over a family or transport that is not TCP
    /// over IPv4/IPv6 (AF_UNSPEC, AF_UNIX, UDP): the spec says to accept
    /// the connection with the real connection's addresses.
    Unknown,
}

/// Why the bytes are not a valid PROXY header. Messages never quote the
/// input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// Neither `PROXY` nor the v2 signature.
    #[error("no PROXY protocol signature")]
    Signature,
    /// A v1 line that breaks the grammar: protocol word, spaces, addresses,
    /// ports, a CR or LF alone.
    #[error("malformed PROXY v1 line")]
    V1Syntax,
    /// No CRLF within the first [`V1_MAX`] bytes.
    #[error("PROXY v1 line longer than 107 bytes")]
    V1Length,
    /// v2 with a version other than 2.
    #[error("PROXY v2 header with an unknown version")]
    V2Version,
    /// v2 with a command other than LOCAL or PROXY.
    #[error("PROXY v2 header with an unknown command")]
    V2Command,
    /// v2 PROXY with an address family or transport the spec does not define.
    #[error("PROXY v2 header with an unknown address family or transport")]
    V2Family,
    /// v2 with a declared length past [`MAX_HEADER`].
    #[error("PROXY v2 header longer than 536 bytes")]
    V2Length,
    /// v2 PROXY whose declared length is shorter than its address family needs.
    #[error("PROXY v2 address block shorter than its family needs")]
    V2Address,
    /// v2 TLVs whose lengths do not add up to the declared length.
    #[error("PROXY v2 TLVs inconsistent with the header length")]
    V2Tlv,
}

impl ProxyError {
    /// The metric label for this error (a bounded set).
    pub fn label(&self) -> &'static str {
        match self {
            ProxyError::Signature => "signature",
            ProxyError::V1Syntax => "v1_syntax",
            ProxyError::V1Length => "v1_length",
            ProxyError::V2Version => "v2_version",
            ProxyError::V2Command => "v2_command",
            ProxyError::V2Family => "v2_family",
            ProxyError::V2Length => "v2_length",
            ProxyError::V2Address => "v2_address",
            ProxyError::V2Tlv => "v2_tlv",
        }
    }
}

/// What [`parse`] returns: `Ok(None)` when more bytes are needed,
/// `Ok(Some((header, consumed)))` when the first `consumed` bytes are the
/// header (the rest is the client's, untouched), `Err` when the bytes
/// cannot start a valid header.
pub type Parsed = Result<Option<(Header, usize)>, ProxyError>;

/// Reads a PROXY header (v1 or v2) from the start of `buf`, the bytes
/// received so far. Never reads past the header; never needs more than
/// [`MAX_HEADER`] bytes to decide; a prefix of an input that parses gives
/// `Ok(None)`, and a prefix that fails fails the same way however many
/// bytes follow.
pub fn parse(buf: &[u8]) -> Parsed {
    match buf.first() {
        None => Ok(None),
        Some(b'P') => v1(&buf[..buf.len().min(V1_MAX)]),
        Some(b'\r') => v2(buf),
        Some(_) => Err(ProxyError::Signature),
    }
}

/// One step of a streaming parse: the rest and the value, `None` when the
/// bytes end inside it, `err` when they cannot match.
fn step<O>(result: IResult<&[u8], O>, err: ProxyError) -> Result<Option<(&[u8], O)>, ProxyError> {
    match result {
        Ok(done) => Ok(Some(done)),
        Err(nom::Err::Incomplete(_)) => Ok(None),
        Err(_) => Err(err),
    }
}

/// The v1 protocol word.
#[derive(Debug, Clone, Copy)]
enum V1Protocol {
    Tcp4,
    Tcp6,
    Unknown,
}

/// `proxy-line = "PROXY" SP ( tcp4 / tcp6 / unknown ) CRLF`, read from
/// `window`, the input's first [`V1_MAX`] bytes at most: a line that needs
/// more is too long.
fn v1(window: &[u8]) -> Parsed {
    let need_more = || {
        if window.len() >= V1_MAX {
            Err(ProxyError::V1Length)
        } else {
            Ok(None)
        }
    };
    let Some((i, _)) = step(tag(&b"PROXY"[..]).parse(window), ProxyError::Signature)? else {
        return need_more();
    };
    let mut protocol = (
        tag(&b" "[..]),
        alt((
            value(V1Protocol::Tcp4, tag(&b"TCP4"[..])),
            value(V1Protocol::Tcp6, tag(&b"TCP6"[..])),
            value(V1Protocol::Unknown, tag(&b"UNKNOWN"[..])),
        )),
    );
    let Some((i, (_, protocol))) = step(protocol.parse(i), ProxyError::V1Syntax)? else {
        return need_more();
    };
    let rest = match protocol {
        V1Protocol::Tcp4 => tcp(ipv4, i).map(|(i, h)| (i, Some(h))),
        V1Protocol::Tcp6 => tcp(ipv6, i).map(|(i, h)| (i, Some(h))),
        V1Protocol::Unknown => unknown(i).map(|(i, ())| (i, None)),
    };
    let Some((i, addresses)) = step(rest, ProxyError::V1Syntax)? else {
        return need_more();
    };
    let header = match addresses {
        Some((source, destination)) => Header::Proxy { source, destination },
        None => Header::Unknown,
    };
    Ok(Some((header, window.len() - i.len())))
}

/// `tcp4 = "TCP4" SP ipv4 SP ipv4 SP port SP port` (and `tcp6` the same
/// with `ipv6`), after the protocol word, with the CRLF.
fn tcp(ip: fn(&[u8]) -> IResult<&[u8], IpAddr>, i: &[u8]) -> IResult<&[u8], (SocketAddr, SocketAddr)> {
    let sp = || tag(&b" "[..]);
    let (i, (_, src, _, dst, _, sport, _, dport, _)) =
        (sp(), ip, sp(), ip, sp(), port, sp(), port, tag(&b"\r\n"[..])).parse(i)?;
    Ok((i, (SocketAddr::new(src, sport), SocketAddr::new(dst, dport))))
}

/// `unknown = "UNKNOWN" [ SP *anything-but-LF ] CRLF`: the receiver must
/// ignore what comes before the CRLF (spec §2.1), but not a LF alone.
fn unknown(i: &[u8]) -> IResult<&[u8], ()> {
    let ignored = verify(
        (tag(&b" "[..]), take_till(|b| b == b'\n'), tag(&b"\n"[..])),
        |(_, text, _): &(&[u8], &[u8], &[u8])| text.ends_with(b"\r"),
    );
    value((), alt((value((), tag(&b"\r\n"[..])), value((), ignored)))).parse(i)
}

/// `ipv4 = 1*3DIGIT 3("." 1*3DIGIT)`, each at most 255, without leading
/// zeros (std's parser refuses them: no octal confusion, as the spec asks).
fn ipv4(i: &[u8]) -> IResult<&[u8], IpAddr> {
    map_res(
        take_while1(|b: u8| b.is_ascii_digit() || b == b'.'),
        |t: &[u8]| parse_ip::<Ipv4Addr>(t).map(IpAddr::V4),
    )
    .parse(i)
}

/// `ipv6`: hex groups and colons, one `::` at most (RFC 4291 §2.2, the
/// forms HAProxy's `inet_pton` takes, a trailing dotted IPv4 included).
fn ipv6(i: &[u8]) -> IResult<&[u8], IpAddr> {
    map_res(
        take_while1(|b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.'),
        |t: &[u8]| parse_ip::<Ipv6Addr>(t).map(IpAddr::V6),
    )
    .parse(i)
}

/// An address token, already restricted to ASCII by its caller.
fn parse_ip<T: std::str::FromStr>(token: &[u8]) -> Result<T, ()> {
    std::str::from_utf8(token)
        .map_err(|_| ())?
        .parse()
        .map_err(|_| ())
}

/// `port = "0" / %x31-39 0*4DIGIT`, at most 65535: no sign, no leading zero.
fn port(i: &[u8]) -> IResult<&[u8], u16> {
    map_res(take_while1(|b: u8| b.is_ascii_digit()), |t: &[u8]| {
        if t.len() > 5 || (t.len() > 1 && t[0] == b'0') {
            return Err(());
        }
        let n = t.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
        u16::try_from(n).map_err(|_| ())
    })
    .parse(i)
}

/// v2 (spec §2.2): the signature, `ver_cmd` (version 2; LOCAL or PROXY),
/// `fam` (family and transport), a big-endian length, then that many
/// bytes: the address block for the family, then TLVs.
fn v2(buf: &[u8]) -> Parsed {
    let Some((i, _)) = step(tag(&V2_SIGNATURE[..]).parse(buf), ProxyError::Signature)? else {
        return Ok(None);
    };
    let Some((i, ver_cmd)) = step(be_u8(i), ProxyError::V2Version)? else {
        return Ok(None);
    };
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::V2Version);
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(ProxyError::V2Command),
    };
    let Some((i, fam)) = step(be_u8(i), ProxyError::V2Family)? else {
        return Ok(None);
    };
    // LOCAL: "discard the protocol block including the family which is
    // ignored"; so the family byte is not judged either.
    let family = if local { None } else { Some(Family::of(fam)?) };
    let Some((i, length)) = step(be_u16(i), ProxyError::V2Length)? else {
        return Ok(None);
    };
    let length = usize::from(length);
    if V2_FIXED + length > MAX_HEADER {
        return Err(ProxyError::V2Length);
    }
    let address_len = family.map_or(0, Family::address_len);
    if length < address_len {
        return Err(ProxyError::V2Address);
    }
    let Some((_, block)) = step(take(length).parse(i), ProxyError::V2Length)? else {
        return Ok(None);
    };
    let consumed = V2_FIXED + length;
    let Some(family) = family else {
        return Ok(Some((Header::Local, consumed)));
    };
    let (addresses, tlvs) = block.split_at(address_len);
    let header = match family {
        Family::Tcp4 => {
            let (src, rest) = addresses.split_at(4);
            let (dst, ports) = rest.split_at(4);
            let ip = |b: &[u8]| IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).expect("4 bytes")));
            tcp_header(ip(src), ip(dst), ports)
        }
        Family::Tcp6 => {
            let (src, rest) = addresses.split_at(16);
            let (dst, ports) = rest.split_at(16);
            let ip = |b: &[u8]| IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).expect("16 bytes")));
            tcp_header(ip(src), ip(dst), ports)
        }
        Family::Other { .. } => Header::Unknown,
    };
    // The TLVs follow a known address block; after AF_UNSPEC's (whose
    // length nothing states) they cannot be told from addresses.
    if !matches!(family, Family::Other { address_len: 0 }) {
        check_tlvs(tlvs)?;
    }
    Ok(Some((header, consumed)))
}

/// A PROXY header from an address block's two addresses and its ports.
fn tcp_header(src: IpAddr, dst: IpAddr, ports: &[u8]) -> Header {
    let sport = u16::from_be_bytes([ports[0], ports[1]]);
    let dport = u16::from_be_bytes([ports[2], ports[3]]);
    Header::Proxy {
        source: SocketAddr::new(src, sport),
        destination: SocketAddr::new(dst, dport),
    }
}

/// The v2 `fam` byte: address family (high 4 bits: UNSPEC, INET, INET6,
/// UNIX) and transport (low 4 bits: UNSPEC, STREAM, DGRAM); other values
/// "must be rejected as invalid by receivers".
#[derive(Debug, Clone, Copy)]
enum Family {
    /// `\x11`: TCP over IPv4, 12 address bytes.
    Tcp4,
    /// `\x21`: TCP over IPv6, 36 address bytes.
    Tcp6,
    /// Anything else defined: read as [`Header::Unknown`], after skipping
    /// the family's address bytes (216 for AF_UNIX, 12 or 36 for UDP, none
    /// where the family or transport is UNSPEC).
    Other { address_len: usize },
}

impl Family {
    fn of(fam: u8) -> Result<Family, ProxyError> {
        let (family, transport) = (fam >> 4, fam & 0x0f);
        if family > 3 || transport > 2 {
            return Err(ProxyError::V2Family);
        }
        Ok(match (family, transport) {
            (1, 1) => Family::Tcp4,
            (2, 1) => Family::Tcp6,
            (_, 0) | (0, _) => Family::Other { address_len: 0 },
            (1, _) => Family::Other { address_len: 12 },
            (2, _) => Family::Other { address_len: 36 },
            _ => Family::Other { address_len: 216 },
        })
    }

    fn address_len(self) -> usize {
        match self {
            Family::Tcp4 => 12,
            Family::Tcp6 => 36,
            Family::Other { address_len } => address_len,
        }
    }
}

/// `tlv = type(1) length(2, big-endian) value(length)`, repeated to the
/// end of the header exactly. Every type is skipped: pec-proxy terminates
/// TLS itself, so `PP2_TYPE_SSL` and the rest say nothing it needs.
fn check_tlvs(mut tlvs: &[u8]) -> Result<(), ProxyError> {
    while !tlvs.is_empty() {
        let [_, hi, lo, rest @ ..] = tlvs else {
            return Err(ProxyError::V2Tlv);
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        if rest.len() < len {
            return Err(ProxyError::V2Tlv);
        }
        tlvs = &rest[len..];
    }
    Ok(())
}

/// A v2 PROXY header for a TCP connection from `source` to `destination`,
/// no TLVs: what pec-proxy sends to an upstream that reads PROXY (Dovecot's
/// `haproxy_trusted_networks`, Postfix's `smtpd_upstream_proxy_protocol`).
/// TCP over IPv4 when both addresses are IPv4; otherwise TCP over IPv6,
/// an IPv4 address written IPv4-mapped (`::ffff:a.b.c.d`), as HAProxy does
/// for mixed families: the client's address reaches the upstream either way.
pub fn encode_v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(V2_FIXED + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21);
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
        }
        (src, dst) => {
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&as_v6(src).octets());
            out.extend_from_slice(&as_v6(dst).octets());
        }
    }
    out.extend_from_slice(&source.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
    out
}

/// A v1 line for the same connection, with the same choice of family as
/// [`encode_v2`]; at most 104 bytes.
pub fn encode_v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let line = match (source.ip(), destination.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => format!("PROXY TCP4 {src} {dst}"),
        (src, dst) => format!("PROXY TCP6 {} {}", as_v6(src), as_v6(dst)),
    };
    format!("{line} {} {}\r\n", source.port(), destination.port()).into_bytes()
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests;
