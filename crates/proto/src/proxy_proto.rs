//! PROXY protocol v1 (text) and v2 (binary), as specified by HAProxy
//! (`doc/proxy-protocol.txt`).
//!
//! Two directions:
//! - [`encode`] builds the header `serve` writes to a backend before the
//!   client's bytes, so the backend sees the real client address
//!   (`--proxy-protocol v1|v2` on a route).
//! - [`parse`] reads a header sent by a trusted load balancer in front of
//!   `serve` (`--accept-proxy-protocol`). It is a pure function of the bytes
//!   received so far and answers [`Parsed`].
//!
//! [`parse`] is *prefix-consistent*: while the bytes could still become a
//! header it says [`Parsed::NeedMore`]; once a prefix yields a header, an error
//! or [`Parsed::NotProxy`], every longer buffer yields the same answer, so the
//! result never depends on how TCP chunked the stream. The amount it asks for
//! is bounded: [`V1_MAX_LEN`] bytes for v1, [`V2_MAX_LEN`] for v2.
//!
//! Accepted forms:
//! - v1: `PROXY TCP4 src dst sport dport\r\n`, `PROXY TCP6 …\r\n`, and
//!   `PROXY UNKNOWN[ anything]\r\n` (addresses ignored), single spaces, at
//!   most 107 bytes including the CRLF.
//! - v2: the 12-byte signature, version 2, command `LOCAL` (addresses and
//!   family ignored) or `PROXY` with family/transport `TCP4` (0x11),
//!   `UDP4` (0x12), `TCP6` (0x21), `UDP6` (0x22) or `UNSPEC` (0x00).
//!   TLVs after the addresses are skipped, not interpreted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::str::FromStr;

/// PROXY protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    /// Text header, `PROXY TCP4 ...\r\n`.
    V1,
    /// Binary header with the 12-byte signature.
    V2,
}

impl FromStr for ProxyVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "v1" | "1" => Ok(ProxyVersion::V1),
            "v2" | "2" => Ok(ProxyVersion::V2),
            other => Err(format!(
                "unknown PROXY protocol version `{other}` (expected v1 or v2)"
            )),
        }
    }
}

/// The longest v1 header, CRLF included (from the specification). A buffer
/// this long that does not hold a complete v1 header is [`Parsed::Invalid`].
pub const V1_MAX_LEN: usize = 107;

/// The 12 bytes every v2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest v2 header accepted, fixed part, addresses and TLVs included.
/// The format allows 16 + 65,535 bytes; a header announcing more than this is
/// [`Parsed::Invalid`] ([`ProxyError::V2TooLong`]) so a peer can't make the
/// caller buffer 64 KiB. Callers must be ready to buffer this many bytes.
pub const V2_MAX_LEN: usize = 4096;

/// The fixed part of a v2 header: signature, ver/cmd, family, length.
const V2_FIXED_LEN: usize = 16;

/// The v1 prefix, up to and including the space after `PROXY`.
const V1_PREFIX: &[u8] = b"PROXY ";

/// What [`parse`] makes of the bytes received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The bytes are a valid prefix of a header: read more. Never returned
    /// for a buffer of [`V2_MAX_LEN`] bytes or more.
    NeedMore,
    /// A complete header; the connection's payload starts at
    /// [`ProxyHeader::len`].
    Header(ProxyHeader),
    /// The bytes don't start like a PROXY header (neither `PROXY ` nor the v2
    /// signature), whatever follows.
    NotProxy,
    /// The bytes start like a PROXY header but break its rules.
    Invalid(ProxyError),
}

/// A parsed PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The original client's address; `None` for v1 `UNKNOWN`, v2 `LOCAL`
    /// and v2 `UNSPEC`, where the caller uses the connection's own peer.
    /// Both addresses have the same family; a v4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`) is returned as sent, not converted to IPv4.
    pub source: Option<SocketAddr>,
    /// The address the client connected to (same rules as `source`).
    pub destination: Option<SocketAddr>,
    /// Bytes consumed by the header (TLVs included): the payload starts here.
    pub len: usize,
}

/// Why bytes that start like a PROXY header are not one. The v1 variants say
/// which field is wrong; the header itself is not kept (it is attacker data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// A v1 header without CRLF within 107 bytes.
    #[error("PROXY v1 header: no CRLF within {V1_MAX_LEN} bytes")]
    V1TooLong,
    /// A v1 protocol other than `TCP4`, `TCP6` or `UNKNOWN`.
    #[error("PROXY v1 header: protocol is not TCP4, TCP6 or UNKNOWN")]
    V1Protocol,
    /// A v1 address that is not an IP literal of the announced family.
    #[error("PROXY v1 header: address is not a valid IP of the announced family")]
    V1Address,
    /// A v1 port that is not a decimal number 0-65535.
    #[error("PROXY v1 header: port is not a decimal number 0-65535")]
    V1Port,
    /// Fields not separated by exactly one space, or the line not ended by CRLF.
    #[error("PROXY v1 header: fields must be separated by one space and the line end with CRLF")]
    V1Syntax,
    /// A v2 version nibble other than 2.
    #[error("PROXY v2 header: version {0} is not supported (expected 2)")]
    V2Version(u8),
    /// A v2 command nibble other than LOCAL (0) or PROXY (1).
    #[error("PROXY v2 header: command {0} is neither LOCAL (0) nor PROXY (1)")]
    V2Command(u8),
    /// A v2 family/transport byte other than 0x00, 0x11, 0x12, 0x21, 0x22.
    #[error("PROXY v2 header: family/transport {0:#04x} is not supported (expected TCP/UDP over IPv4/IPv6, or UNSPEC)")]
    V2Family(u8),
    /// A v2 address block shorter than its family needs (12 for IPv4, 36 for IPv6).
    #[error("PROXY v2 header: address length {0} is too short for its family")]
    V2AddressTooShort(u16),
    /// A v2 header longer than [`V2_MAX_LEN`] in total.
    #[error(
        "PROXY v2 header: address length {0} exceeds the limit of {V2_MAX_LEN} bytes in total"
    )]
    V2TooLong(u16),
}

/// Build the header `serve` sends to a backend before the client's bytes.
///
/// Both addresses of a header must have the same family. When `src` and
/// `dst` differ (say an IPv4 client reached a dual-stack `[::]` listener
/// with an IPv6 local address), the IPv4 one is mapped to `::ffff:a.b.c.d`
/// and the header is TCP6. IPv6 flow info and scope ids are not carried.
/// v2 headers are written with command PROXY, transport STREAM and no TLVs.
pub fn encode(version: ProxyVersion, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let pair = match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => Pair::V4(s, d),
        _ => Pair::V6(to_v6(src), to_v6(dst)),
    };
    match version {
        ProxyVersion::V1 => match pair {
            Pair::V4(s, d) => format!(
                "PROXY TCP4 {} {} {} {}\r\n",
                s.ip(),
                d.ip(),
                s.port(),
                d.port()
            ),
            Pair::V6(s, d) => format!(
                "PROXY TCP6 {} {} {} {}\r\n",
                s.ip(),
                d.ip(),
                s.port(),
                d.port()
            ),
        }
        .into_bytes(),
        ProxyVersion::V2 => {
            let mut out = Vec::with_capacity(V2_FIXED_LEN + 36);
            out.extend_from_slice(&V2_SIGNATURE);
            out.push(0x21); // version 2, command PROXY
            match pair {
                Pair::V4(s, d) => {
                    out.push(0x11); // AF_INET, STREAM
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&s.ip().octets());
                    out.extend_from_slice(&d.ip().octets());
                    out.extend_from_slice(&s.port().to_be_bytes());
                    out.extend_from_slice(&d.port().to_be_bytes());
                }
                Pair::V6(s, d) => {
                    out.push(0x21); // AF_INET6, STREAM
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&s.ip().octets());
                    out.extend_from_slice(&d.ip().octets());
                    out.extend_from_slice(&s.port().to_be_bytes());
                    out.extend_from_slice(&d.port().to_be_bytes());
                }
            }
            out
        }
    }
}

enum Pair {
    V4(SocketAddrV4, SocketAddrV4),
    V6(SocketAddrV6, SocketAddrV6),
}

fn to_v6(a: SocketAddr) -> SocketAddrV6 {
    match a {
        SocketAddr::V4(a) => SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0),
        SocketAddr::V6(a) => SocketAddrV6::new(*a.ip(), a.port(), 0, 0),
    }
}

/// Parse a PROXY header (v1 or v2) at the start of `buf`, the bytes received
/// so far on a connection from a trusted load balancer.
///
/// Call again with the longer buffer after each read while it answers
/// [`Parsed::NeedMore`]; that is bounded by [`V1_MAX_LEN`] (v1) and
/// [`V2_MAX_LEN`] (v2) bytes. Never panics, whatever the input.
pub fn parse(buf: &[u8]) -> Parsed {
    if buf.first() == Some(&V1_PREFIX[0]) {
        let n = buf.len().min(V1_PREFIX.len());
        if buf[..n] != V1_PREFIX[..n] {
            return Parsed::NotProxy;
        }
        if n < V1_PREFIX.len() {
            return Parsed::NeedMore;
        }
        parse_v1(buf)
    } else {
        let n = buf.len().min(V2_SIGNATURE.len());
        if buf[..n] != V2_SIGNATURE[..n] {
            return Parsed::NotProxy;
        }
        if n < V2_SIGNATURE.len() {
            return Parsed::NeedMore;
        }
        parse_v2(buf)
    }
}

/// Outcome of scanning a v1 line: complete, broken, or cut short.
enum Scan<T> {
    Done(T),
    Short,
    Err(ProxyError),
}

/// Turns `Scan::Short`/`Scan::Err` into an early return.
macro_rules! step {
    ($e:expr) => {
        match $e {
            Scan::Done(v) => v,
            Scan::Short => return Scan::Short,
            Scan::Err(e) => return Scan::Err(e),
        }
    };
}

fn parse_v1(buf: &[u8]) -> Parsed {
    // Only the first 107 bytes are ever looked at; every decision is made
    // left to right on bytes already seen, which makes the parse
    // prefix-consistent.
    let view = &buf[..buf.len().min(V1_MAX_LEN)];
    let mut line = Line {
        buf: view,
        pos: V1_PREFIX.len(),
    };
    match line.header() {
        Scan::Done(h) => Parsed::Header(h),
        Scan::Err(e) => Parsed::Invalid(e),
        Scan::Short if buf.len() >= V1_MAX_LEN => Parsed::Invalid(ProxyError::V1TooLong),
        Scan::Short => Parsed::NeedMore,
    }
}

/// A cursor over a v1 line.
struct Line<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Line<'a> {
    fn header(&mut self) -> Scan<ProxyHeader> {
        const PROTOCOLS: [&[u8]; 3] = [b"TCP4", b"TCP6", b"UNKNOWN"];
        let proto = step!(self.field(
            |b| b.is_ascii_uppercase() || b.is_ascii_digit(),
            7,
            |p| PROTOCOLS.iter().any(|w| w.starts_with(p)),
            ProxyError::V1Protocol
        ));
        let v6 = match proto {
            b"TCP4" => false,
            b"TCP6" => true,
            b"UNKNOWN" => return self.unknown_rest(),
            _ => return Scan::Err(ProxyError::V1Protocol),
        };
        step!(self.byte(b' '));
        let src = step!(self.ip(v6));
        step!(self.byte(b' '));
        let dst = step!(self.ip(v6));
        step!(self.byte(b' '));
        let sport = step!(self.port());
        step!(self.byte(b' '));
        let dport = step!(self.port());
        step!(self.byte(b'\r'));
        step!(self.byte(b'\n'));
        Scan::Done(ProxyHeader {
            source: Some(socket_addr(src, sport)),
            destination: Some(socket_addr(dst, dport)),
            len: self.pos,
        })
    }

    /// After `UNKNOWN`: CRLF, or a space and anything up to CRLF.
    fn unknown_rest(&mut self) -> Scan<ProxyHeader> {
        match self.buf.get(self.pos) {
            None => return Scan::Short,
            Some(b'\r') => {}
            Some(b' ') => loop {
                match self.buf.get(self.pos) {
                    None => return Scan::Short,
                    Some(b'\r') => break,
                    Some(b'\n') => return Scan::Err(ProxyError::V1Syntax),
                    Some(_) => self.pos += 1,
                }
            },
            Some(_) => return Scan::Err(ProxyError::V1Syntax),
        }
        step!(self.byte(b'\r'));
        step!(self.byte(b'\n'));
        Scan::Done(ProxyHeader {
            source: None,
            destination: None,
            len: self.pos,
        })
    }

    /// Consume exactly `want`.
    fn byte(&mut self, want: u8) -> Scan<()> {
        match self.buf.get(self.pos) {
            None => Scan::Short,
            Some(&b) if b == want => {
                self.pos += 1;
                Scan::Done(())
            }
            Some(_) => Scan::Err(ProxyError::V1Syntax),
        }
    }

    /// A run of `allowed` bytes, at most `max` long, ending at the first
    /// other byte (not consumed). If the buffer ends inside the run, the run
    /// must still satisfy `viable` (could become valid) to be `Short`. Every
    /// failure of this field is reported as `err`, whichever check caught
    /// it, so that a prefix and the whole line report the same error.
    fn field(
        &mut self,
        allowed: fn(u8) -> bool,
        max: usize,
        viable: fn(&[u8]) -> bool,
        err: ProxyError,
    ) -> Scan<&'a [u8]> {
        let start = self.pos;
        while let Some(&b) = self.buf.get(self.pos) {
            if !allowed(b) {
                return Scan::Done(&self.buf[start..self.pos]);
            }
            self.pos += 1;
            if self.pos - start > max {
                return Scan::Err(err);
            }
        }
        if viable(&self.buf[start..]) {
            Scan::Short
        } else {
            Scan::Err(err)
        }
    }

    fn ip(&mut self, v6: bool) -> Scan<IpAddr> {
        let text = if v6 {
            // Hex groups, possibly ending in dotted IPv4
            // ("ffff:...:ffff:255.255.255.255" is 45 bytes).
            step!(self.field(
                |b| b.is_ascii_hexdigit() || b == b':' || b == b'.',
                45,
                |_| true,
                ProxyError::V1Address
            ))
        } else {
            step!(self.field(
                |b| b.is_ascii_digit() || b == b'.',
                15,
                |_| true,
                ProxyError::V1Address
            ))
        };
        // The field is ASCII by construction.
        let text = std::str::from_utf8(text).unwrap_or_default();
        let ip = if v6 {
            text.parse::<Ipv6Addr>().map(IpAddr::V6)
        } else {
            text.parse::<Ipv4Addr>().map(IpAddr::V4)
        };
        match ip {
            Ok(ip) => Scan::Done(ip),
            Err(_) => Scan::Err(ProxyError::V1Address),
        }
    }

    fn port(&mut self) -> Scan<u16> {
        let digits = step!(self.field(|b| b.is_ascii_digit(), 5, |_| true, ProxyError::V1Port));
        let port = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<u16>().ok());
        match port {
            Some(p) if !digits.is_empty() => Scan::Done(p),
            _ => Scan::Err(ProxyError::V1Port),
        }
    }
}

fn socket_addr(ip: IpAddr, port: u16) -> SocketAddr {
    match ip {
        IpAddr::V4(ip) => SocketAddr::V4(SocketAddrV4::new(ip, port)),
        IpAddr::V6(ip) => SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0)),
    }
}

fn parse_v2(buf: &[u8]) -> Parsed {
    // `buf` starts with the full signature. Each check below needs only the
    // bytes before it, so the result is prefix-consistent.
    let Some(&ver_cmd) = buf.get(12) else {
        return Parsed::NeedMore;
    };
    if ver_cmd >> 4 != 2 {
        return Parsed::Invalid(ProxyError::V2Version(ver_cmd >> 4));
    }
    let proxy = match ver_cmd & 0x0f {
        0 => false, // LOCAL: health check from the proxy itself
        1 => true,
        cmd => return Parsed::Invalid(ProxyError::V2Command(cmd)),
    };
    let Some(&fam) = buf.get(13) else {
        return Parsed::NeedMore;
    };
    // With LOCAL the family is ignored (the specification says so).
    let addr_len_needed = match (proxy, fam) {
        (false, _) | (true, 0x00) => 0,
        (true, 0x11 | 0x12) => 12,
        (true, 0x21 | 0x22) => 36,
        (true, other) => return Parsed::Invalid(ProxyError::V2Family(other)),
    };
    let Some(len_bytes) = buf.get(14..16) else {
        return Parsed::NeedMore;
    };
    let addr_len = u16::from_be_bytes([len_bytes[0], len_bytes[1]]);
    let total = V2_FIXED_LEN + usize::from(addr_len);
    if total > V2_MAX_LEN {
        return Parsed::Invalid(ProxyError::V2TooLong(addr_len));
    }
    if usize::from(addr_len) < addr_len_needed {
        return Parsed::Invalid(ProxyError::V2AddressTooShort(addr_len));
    }
    let Some(addrs) = buf.get(V2_FIXED_LEN..total) else {
        return Parsed::NeedMore;
    };
    let (source, destination) = match addr_len_needed {
        12 => {
            let ip = |i: usize| Ipv4Addr::new(addrs[i], addrs[i + 1], addrs[i + 2], addrs[i + 3]);
            let port = |i: usize| u16::from_be_bytes([addrs[i], addrs[i + 1]]);
            (
                Some(SocketAddr::V4(SocketAddrV4::new(ip(0), port(8)))),
                Some(SocketAddr::V4(SocketAddrV4::new(ip(4), port(10)))),
            )
        }
        36 => {
            let ip = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&addrs[i..i + 16]);
                Ipv6Addr::from(o)
            };
            let port = |i: usize| u16::from_be_bytes([addrs[i], addrs[i + 1]]);
            (
                Some(SocketAddr::V6(SocketAddrV6::new(ip(0), port(32), 0, 0))),
                Some(SocketAddr::V6(SocketAddrV6::new(ip(16), port(34), 0, 0))),
            )
        }
        _ => (None, None),
    };
    // Anything after the addresses is TLVs: skipped.
    Parsed::Header(ProxyHeader {
        source,
        destination,
        len: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(source: Option<SocketAddr>, destination: Option<SocketAddr>, len: usize) -> Parsed {
        Parsed::Header(ProxyHeader {
            source,
            destination,
            len,
        })
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn v2(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(ver_cmd);
        out.push(fam);
        out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn v1_examples_from_the_spec() {
        let tcp4 = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
        assert_eq!(
            parse(tcp4),
            header(
                Some(sa("255.255.255.255:65535")),
                Some(sa("255.255.255.255:65535")),
                tcp4.len()
            )
        );
        let full6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let tcp6 = format!("PROXY TCP6 {full6} {full6} 65535 65535\r\n");
        assert_eq!(tcp6.len(), 104);
        let a6 = sa(&format!("[{full6}]:65535"));
        assert_eq!(parse(tcp6.as_bytes()), header(Some(a6), Some(a6), 104));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), header(None, None, 15));
        // The worst case: 107 bytes exactly.
        let unknown = format!("PROXY UNKNOWN {full6} {full6} 65535 65535\r\n");
        assert_eq!(unknown.len(), V1_MAX_LEN);
        assert_eq!(parse(unknown.as_bytes()), header(None, None, V1_MAX_LEN));
    }

    #[test]
    fn v1_header_then_payload() {
        let buf = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";
        assert_eq!(
            parse(buf),
            header(
                Some(sa("192.168.0.1:56324")),
                Some(sa("192.168.0.11:443")),
                47
            )
        );
        assert_eq!(&buf[47..51], b"GET ");
    }

    #[test]
    fn v1_incomplete() {
        for buf in [
            &b""[..],
            b"P",
            b"PROXY",
            b"PROXY ",
            b"PROXY TC",
            b"PROXY UNKNOWN",
            b"PROXY UNKNOWN whatever",
            b"PROXY TCP4 1.2",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r",
            b"PROXY TCP6 ::1 ::ffff:1.2",
        ] {
            assert_eq!(
                parse(buf),
                Parsed::NeedMore,
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn v1_errors() {
        use ProxyError::*;
        let cases: [(&[u8], ProxyError); 14] = [
            (b"PROXY TCP5", V1Protocol),
            (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", V1Protocol),
            (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", V1Protocol),
            (b"PROXY TCP 1.2.3.4 5.6.7.8 1 2\r\n", V1Protocol),
            (b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", V1Address),
            (b"PROXY TCP4 ::1 ::1 1 2\r\n", V1Address),
            (b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", V1Address),
            (b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", V1Address),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", V1Port),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 123456", V1Port),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n", V1Port),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", V1Syntax),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r", V1Syntax),
            (b"PROXY UNKNOWN foo\n", V1Syntax),
        ];
        for (buf, err) in cases {
            assert_eq!(
                parse(buf),
                Parsed::Invalid(err),
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX_LEN - 1, b'x');
        assert_eq!(parse(&long), Parsed::NeedMore);
        long.push(b'x');
        assert_eq!(parse(&long), Parsed::Invalid(V1TooLong));
        long.extend_from_slice(b"\r\n");
        assert_eq!(parse(&long), Parsed::Invalid(V1TooLong));
    }

    #[test]
    fn not_proxy() {
        for buf in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"\x16\x03\x01\x02\x00\x01",
            b"PROXZ",
            b"PROXY\r\n",
            b"\r\n\r\n\0\r\nQUIT\r",
            b"\r\r",
            b"\0",
        ] {
            assert_eq!(parse(buf), Parsed::NotProxy, "{buf:?}");
        }
    }

    #[test]
    fn v2_tcp4_and_tcp6() {
        let mut body = vec![192, 168, 0, 1, 192, 168, 0, 11];
        body.extend_from_slice(&56324u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        let mut buf = v2(0x21, 0x11, &body);
        assert_eq!(buf.len(), 28);
        buf.extend_from_slice(b"payload");
        let want = header(
            Some(sa("192.168.0.1:56324")),
            Some(sa("192.168.0.11:443")),
            28,
        );
        assert_eq!(parse(&buf), want);
        // UDP over IPv4: same addresses.
        assert_eq!(parse(&v2(0x21, 0x12, &body)), want);

        let mut body6 = Vec::new();
        body6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        body6.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        body6.extend_from_slice(&[0x12, 0x34, 0x01, 0xbb]);
        let want6 = header(
            Some(sa("[2001:db8::1]:4660")),
            Some(sa("[2001:db8::2]:443")),
            52,
        );
        assert_eq!(parse(&v2(0x21, 0x21, &body6)), want6);
        assert_eq!(parse(&v2(0x21, 0x22, &body6)), want6);
    }

    #[test]
    fn v2_tlvs_are_skipped() {
        let mut body = vec![10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2];
        // PP2_TYPE_ALPN "h2" and PP2_TYPE_NOOP with 3 bytes.
        body.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2', 0x04, 0x00, 0x03, 0, 0, 0]);
        let mut buf = v2(0x21, 0x11, &body);
        let len = buf.len();
        buf.extend_from_slice(b"SSH-2.0-");
        assert_eq!(
            parse(&buf),
            header(Some(sa("10.0.0.1:1")), Some(sa("10.0.0.2:2")), len)
        );
    }

    #[test]
    fn v2_local_and_unspec() {
        assert_eq!(parse(&v2(0x20, 0x00, &[])), header(None, None, 16));
        // LOCAL ignores the family and whatever address block follows.
        assert_eq!(parse(&v2(0x20, 0x11, &[7; 12])), header(None, None, 28));
        assert_eq!(parse(&v2(0x20, 0x31, &[7; 5])), header(None, None, 21));
        assert_eq!(parse(&v2(0x21, 0x00, &[])), header(None, None, 16));
        assert_eq!(parse(&v2(0x21, 0x00, &[1, 2, 3])), header(None, None, 19));
    }

    #[test]
    fn v2_errors() {
        use ProxyError::*;
        assert_eq!(
            parse(&v2(0x11, 0x11, &[0; 12])),
            Parsed::Invalid(V2Version(1))
        );
        assert_eq!(
            parse(&v2(0x22, 0x11, &[0; 12])),
            Parsed::Invalid(V2Command(2))
        );
        assert_eq!(
            parse(&v2(0x21, 0x31, &[0; 216])),
            Parsed::Invalid(V2Family(0x31))
        );
        assert_eq!(
            parse(&v2(0x21, 0x13, &[0; 12])),
            Parsed::Invalid(V2Family(0x13))
        );
        assert_eq!(
            parse(&v2(0x21, 0x11, &[0; 11])),
            Parsed::Invalid(V2AddressTooShort(11))
        );
        assert_eq!(
            parse(&v2(0x21, 0x21, &[0; 12])),
            Parsed::Invalid(V2AddressTooShort(12))
        );
        // Decided from the fixed part alone, before the body arrives.
        let mut big = V2_SIGNATURE.to_vec();
        big.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&big), Parsed::Invalid(V2TooLong(0xffff)));
    }

    #[test]
    fn v2_length_limit() {
        let max_body = V2_MAX_LEN - 16;
        let buf = v2(0x21, 0x11, &vec![0; max_body]);
        assert_eq!(buf.len(), V2_MAX_LEN);
        assert_eq!(parse(&buf[..V2_MAX_LEN - 1]), Parsed::NeedMore);
        assert!(matches!(parse(&buf), Parsed::Header(h) if h.len == V2_MAX_LEN));
        let over = v2(0x21, 0x11, &vec![0; max_body + 1]);
        assert_eq!(
            parse(&over[..16]),
            Parsed::Invalid(ProxyError::V2TooLong(u16::try_from(max_body + 1).unwrap()))
        );
    }

    #[test]
    fn v2_incomplete() {
        let full = encode(ProxyVersion::V2, sa("1.2.3.4:5"), sa("6.7.8.9:10"));
        for n in 0..full.len() {
            assert_eq!(parse(&full[..n]), Parsed::NeedMore, "{n}");
        }
    }

    #[test]
    fn encode_v1() {
        assert_eq!(
            encode(
                ProxyVersion::V1,
                sa("192.168.0.1:56324"),
                sa("192.168.0.11:443")
            ),
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
        );
        assert_eq!(
            encode(ProxyVersion::V1, sa("[2001:db8::1]:1"), sa("[::1]:2")),
            b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n"
        );
        // Mixed families: the IPv4 side is mapped.
        let mixed = encode(
            ProxyVersion::V1,
            sa("192.0.2.7:40000"),
            sa("[2001:db8::1]:443"),
        );
        assert_eq!(
            mixed,
            b"PROXY TCP6 ::ffff:192.0.2.7 2001:db8::1 40000 443\r\n"
        );
        assert_eq!(
            parse(&mixed),
            header(
                Some(sa("[::ffff:192.0.2.7]:40000")),
                Some(sa("[2001:db8::1]:443")),
                mixed.len()
            )
        );
    }

    #[test]
    fn encode_v2() {
        let got = encode(
            ProxyVersion::V2,
            sa("192.168.0.1:56324"),
            sa("192.168.0.11:443"),
        );
        let mut want = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
        want.extend_from_slice(&[192, 168, 0, 1, 192, 168, 0, 11, 0xdc, 0x04, 0x01, 0xbb]);
        assert_eq!(got, want);
        let mixed = encode(ProxyVersion::V2, sa("[::1]:1"), sa("10.0.0.1:2"));
        assert_eq!(mixed[13], 0x21);
        assert_eq!(mixed.len(), 52);
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            ProxyError::V2Family(0x31).to_string(),
            "PROXY v2 header: family/transport 0x31 is not supported (expected TCP/UDP over IPv4/IPv6, or UNSPEC)"
        );
        assert_eq!(
            ProxyError::V1TooLong.to_string(),
            "PROXY v1 header: no CRLF within 107 bytes"
        );
    }

    /// What `encode` promises to put on the wire for a pair of addresses.
    fn expected_pair(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
        match (src, dst) {
            (SocketAddr::V4(_), SocketAddr::V4(_)) => (src, dst),
            _ => (SocketAddr::V6(to_v6(src)), SocketAddr::V6(to_v6(dst))),
        }
    }

    fn version() -> impl Strategy<Value = ProxyVersion> {
        prop_oneof![Just(ProxyVersion::V1), Just(ProxyVersion::V2)]
    }

    /// A valid header, possibly followed by payload.
    fn valid_stream() -> impl Strategy<Value = Vec<u8>> {
        (
            version(),
            any::<SocketAddr>(),
            any::<SocketAddr>(),
            proptest::collection::vec(any::<u8>(), 0..32),
        )
            .prop_map(|(v, s, d, payload)| {
                let mut buf = encode(v, s, d);
                buf.extend_from_slice(&payload);
                buf
            })
    }

    /// Bytes that look like the parser's input language, to reach deep
    /// into the v1 state machine and the v2 fixed fields.
    fn interesting_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            proptest::sample::select(
                b"0123456789abcdefABCDEF.: \r\nPROXYTCPUNKOW46\x00\x01\x0b\x0c\x11\x12\x20\x21\x22\x24\x31\xff"
                    .to_vec()
            ),
            any::<u8>(),
        ]
    }

    #[derive(Debug, Clone)]
    enum Edit {
        Replace(usize, u8),
        Insert(usize, u8),
        Delete(usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (any::<usize>(), interesting_byte()).prop_map(|(i, b)| Edit::Replace(i, b)),
            (any::<usize>(), interesting_byte()).prop_map(|(i, b)| Edit::Insert(i, b)),
            any::<usize>().prop_map(Edit::Delete),
        ]
    }

    /// Valid headers with a few edits, random bytes, and random bytes
    /// behind each format's prefix.
    fn any_stream() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            valid_stream(),
            (valid_stream(), proptest::collection::vec(edit(), 1..4)).prop_map(
                |(mut buf, edits)| {
                    for e in edits {
                        match e {
                            Edit::Replace(i, b) if !buf.is_empty() => {
                                let i = i % buf.len();
                                buf[i] = b;
                            }
                            Edit::Insert(i, b) => buf.insert(i % (buf.len() + 1), b),
                            Edit::Delete(i) if !buf.is_empty() => {
                                buf.remove(i % buf.len());
                            }
                            _ => {}
                        }
                    }
                    buf
                }
            ),
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::collection::vec(interesting_byte(), 0..120).prop_map(|rest| {
                let mut buf = V1_PREFIX.to_vec();
                buf.extend_from_slice(&rest);
                buf
            }),
            proptest::collection::vec(interesting_byte(), 0..80).prop_map(|rest| {
                let mut buf = V2_SIGNATURE.to_vec();
                buf.extend_from_slice(&rest);
                buf
            }),
        ]
    }

    proptest! {
        #[test]
        fn roundtrip(v in version(), src in any::<SocketAddr>(), dst in any::<SocketAddr>()) {
            let buf = encode(v, src, dst);
            let (s, d) = expected_pair(src, dst);
            let limit = match v {
                ProxyVersion::V1 => V1_MAX_LEN,
                ProxyVersion::V2 => V2_MAX_LEN,
            };
            prop_assert!(buf.len() <= limit);
            prop_assert_eq!(parse(&buf), header(Some(s), Some(d), buf.len()));
        }

        #[test]
        fn header_then_payload_reports_len(
            v in version(),
            src in any::<SocketAddr>(),
            dst in any::<SocketAddr>(),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let head = encode(v, src, dst);
            let mut buf = head.clone();
            buf.extend_from_slice(&payload);
            match parse(&buf) {
                Parsed::Header(h) => {
                    prop_assert_eq!(h.len, head.len());
                    prop_assert_eq!(&buf[h.len..], &payload[..]);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn prefix_consistent(buf in any_stream()) {
            let whole = parse(&buf);
            for k in 0..=buf.len() {
                let part = parse(&buf[..k]);
                prop_assert!(
                    part == Parsed::NeedMore || part == whole,
                    "prefix {} gives {:?}, whole {} gives {:?}", k, part, buf.len(), whole
                );
            }
            if let Parsed::Header(h) = whole {
                prop_assert!(h.len > 0 && h.len <= buf.len());
                // The header needed all of its bytes and nothing more.
                prop_assert_eq!(parse(&buf[..h.len]), whole);
                prop_assert_eq!(parse(&buf[..h.len - 1]), Parsed::NeedMore);
            }
        }

        #[test]
        fn random_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&buf);
        }

        #[test]
        fn long_buffers_decide(rest in proptest::collection::vec(interesting_byte(), V2_MAX_LEN..V2_MAX_LEN + 8), v1 in any::<bool>()) {
            let mut buf = if v1 { V1_PREFIX.to_vec() } else { V2_SIGNATURE.to_vec() };
            buf.extend_from_slice(&rest);
            prop_assert_ne!(parse(&buf), Parsed::NeedMore);
        }
    }
}
