//! Per-client allow-lists (SPEC §4): which destinations a client may reach
//! and which ports it may open on the server with `-R`, checked for every
//! stream, every UDP flow or datagram and every reverse bind.
//!
//! # Patterns
//!
//! `[udp/|bind/]HOST:PORTS`, or `*` alone.
//!
//! - HOST is `*`, `localhost`, a name with `*` wildcards (`*.corp.example`,
//!   `db-*.lan`; `*` matches any run of characters, dots included, so
//!   `*.corp.example` matches `a.b.corp.example` but not `corp.example`;
//!   case-insensitive), an IP (`10.0.0.5`, `[::1]`) or a CIDR (`10.0.0.0/8`,
//!   `[fd00::/8]`). IPv6 goes in brackets. `localhost` means the loopback
//!   addresses, `127.0.0.0/8` and `::1` (RFC 6761: it always does).
//! - PORTS is `*`, a port, a range or a list: `443`, `80-90`, `22,80-90`.
//! - No prefix (or `tcp/`): TCP destinations. `udp/`: UDP destinations.
//!   `bind/`: addresses and ports a client may listen on at the server with
//!   `-R`; HOST is then `*`, `localhost`, an IP or a CIDR (a bind is always on
//!   one of the server's own addresses, so a name pattern would mean nothing).
//! - `udp/*` and `bind/*` are short for `udp/*:*` and `bind/*:*`.
//! - `*` alone grants everything: every TCP and UDP destination, every address
//!   class included, and every bind. `onedoor init` gives it to the first
//!   client (and says so); an empty list allows nothing.
//!
//! # The rule: names never reach an address an IP would not
//!
//! A request is a kind (TCP, UDP, bind), the host as the client typed it (a
//! name or an IP), a port, and — for a name — every address the name resolved
//! to. The server must connect (or bind) only to those addresses, never
//! resolve again (that would reopen the DNS-rebinding hole this closes).
//!
//! Addresses fall in two classes ([`AddrClass`]): *public* (globally routable
//! unicast) and *special*: unspecified, loopback, private (RFC 1918, CGNAT,
//! ULA), link-local (including `169.254.169.254`, the cloud metadata service),
//! multicast, reserved (documentation, benchmarking, 240/4, IETF ranges,
//! 6to4, Teredo…), and the server's own addresses (passed in
//! [`Request::server_addrs`]). IPv4-mapped IPv6 (`::ffff:127.0.0.1`) and NAT64
//! (`64:ff9b::/96`) addresses are judged by the IPv4 address inside.
//!
//! A request is allowed when the list holds `*`, or when **every** address
//! it would use (the IP itself, or each resolved address of a name; a name
//! that resolved to nothing is refused) is covered, at the requested kind and
//! port, by:
//!
//! 1. an *address pattern* (IP, CIDR or `localhost`) containing it — for any
//!    address, public or special; or
//! 2. a *name pattern* (a name, or `*`) matching the host as typed — for a
//!    **public** address only. `*` matches every name and every public IP;
//!    other name patterns match names, never IP literals.
//!
//! So the name decides nothing by itself: a pattern like `*.example.com:443`
//! vouches for the public addresses its names resolve to, while a special
//! address is reachable only if an address pattern grants it, exactly as if
//! the client had typed that address. A client controlling the DNS of some
//! `evil.example.com` (or using `127.0.0.1.nip.io` against `*:443`) cannot
//! reach the server's loopback, its LAN, or the metadata service through a
//! name. And if any one resolved address is not covered, the whole request
//! is refused (a name mixing public and private answers is a rebinding
//! attempt until proven otherwise).
//!
//! For `bind/` every address is the server's own, so rule 2 never applies:
//! the bind address (after the caller maps `-R`'s default to `localhost` and
//! `*` to `0.0.0.0`/`::`) must be covered by a `bind/` pattern whose HOST is
//! `*` (any address, all interfaces included), `localhost`, an IP or a CIDR.
//! A bind to port 0 (the server picks) needs PORTS `*`.
//!
//! | allowed | request | result |
//! |---|---|---|
//! | `*.example.com:443` | `www.example.com:443` → 93.184.215.14 | allowed |
//! | `*.example.com:443` | `evil.example.com:443` → 127.0.0.1 | refused: loopback |
//! | `*.example.com:443`, `10.0.0.0/8:443` | `app.example.com:443` → 10.0.0.5 | allowed (rule 1) |
//! | `db.corp:5432` | `db.corp:5432` → 10.0.0.7 | refused: private; add `10.0.0.7:5432` |
//! | `10.0.0.0/8:22,80-90` | `build.lan:22` → 10.1.2.3 | allowed (rule 1) |
//! | `*:443` | `1.1.1.1:443` | allowed |
//! | `*:80` | `169.254.169.254:80` | refused: link-local |
//! | `localhost:22` | `localhost:22` → 127.0.0.1, ::1 | allowed |
//! | `bind/127.0.0.1:8022` | bind `127.0.0.1:8022` | allowed |
//! | `bind/127.0.0.1:8022` | bind `0.0.0.0:8022` | refused |
//! | `*` | anything | allowed |

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::spec::parse_port_digits;

/// What a request (and a pattern) is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessKind {
    /// A TCP stream to a destination (`-L`, `-D` CONNECT, `-W`).
    Tcp,
    /// UDP datagrams to a destination (`-L udp/`, SOCKS5 UDP ASSOCIATE).
    Udp,
    /// A listener on the server (`-R`).
    Bind,
}

impl AccessKind {
    /// The name used in pattern prefixes and messages.
    pub fn name(self) -> &'static str {
        match self {
            AccessKind::Tcp => "tcp",
            AccessKind::Udp => "udp",
            AccessKind::Bind => "bind",
        }
    }

    /// The pattern prefix, empty for TCP.
    fn prefix(self) -> &'static str {
        match self {
            AccessKind::Tcp => "",
            AccessKind::Udp => "udp/",
            AccessKind::Bind => "bind/",
        }
    }
}

impl fmt::Display for AccessKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The HOST part of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// `*`: every name and every public address (for `bind/`: every address).
    Any,
    /// `localhost`: the loopback addresses, `127.0.0.0/8` and `::1`.
    Localhost,
    /// A name pattern, lower case, `*` matching any run of characters.
    Name(String),
    /// An IP (a full-length prefix) or a CIDR, host bits zero.
    Net(IpNet),
}

impl HostPattern {
    /// Does this address pattern contain `ip` (canonical)? `false` for `*`
    /// and names, which never cover an address by themselves.
    fn covers_addr(&self, ip: IpAddr) -> bool {
        match self {
            HostPattern::Localhost => ip.is_loopback(),
            HostPattern::Net(net) => net.contains(&ip),
            HostPattern::Any | HostPattern::Name(_) => false,
        }
    }

    /// Does this name pattern match the host as typed?
    fn matches_host(&self, host: &Host<'_>) -> bool {
        match (self, host) {
            (HostPattern::Any, _) => true,
            (HostPattern::Name(p), Host::Name(n)) => glob(p.as_bytes(), n.as_bytes()),
            _ => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Any => f.write_str("*"),
            HostPattern::Localhost => f.write_str("localhost"),
            HostPattern::Name(n) => f.write_str(n),
            HostPattern::Net(IpNet::V4(n)) if n.prefix_len() == 32 => write!(f, "{}", n.addr()),
            HostPattern::Net(IpNet::V4(n)) => write!(f, "{n}"),
            HostPattern::Net(IpNet::V6(n)) if n.prefix_len() == 128 => write!(f, "[{}]", n.addr()),
            HostPattern::Net(IpNet::V6(n)) => write!(f, "[{n}]"),
        }
    }
}

/// The PORTS part of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ports {
    /// `*`: every port (and, for `bind/`, port 0: "the server picks").
    Any,
    /// Inclusive ranges, in the order written; a single port is `(p, p)`.
    List(Vec<(u16, u16)>),
}

impl Ports {
    /// Does this set contain `port`? Port 0 is only in [`Ports::Any`].
    pub fn contains(&self, port: u16) -> bool {
        match self {
            Ports::Any => true,
            Ports::List(ranges) => ranges.iter().any(|&(lo, hi)| lo <= port && port <= hi),
        }
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges = match self {
            Ports::Any => return f.write_str("*"),
            Ports::List(r) => r,
        };
        for (i, &(lo, hi)) in ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// One allow pattern: `*`, or `[udp/|bind/]HOST:PORTS`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AllowPattern {
    /// `*` alone: every TCP and UDP destination and every bind.
    Everything,
    /// One kind, one host pattern, a set of ports.
    Rule {
        /// TCP, UDP or bind.
        kind: AccessKind,
        /// Which hosts.
        host: HostPattern,
        /// Which ports.
        ports: Ports,
    },
}

/// Why an allow pattern was refused. Every message says what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AllowError {
    /// Nothing there.
    #[error("empty pattern; expected [udp/|bind/]HOST:PORTS or *")]
    Empty,
    /// A prefix other than `tcp/`, `udp/`, `bind/`.
    #[error("unknown prefix; expected udp/, bind/ or none (TCP)")]
    Kind,
    /// No `:PORTS`.
    #[error("no ports; expected [udp/|bind/]HOST:PORTS (PORTS: *, 443, 80-90 or 22,80-90)")]
    MissingPorts,
    /// A port is not 1-65535, or a range is empty or reversed.
    #[error("bad ports; expected *, a port 1-65535, a range LOW-HIGH or a comma-separated list")]
    Ports,
    /// The host is not `*`, a name pattern, an IP or a CIDR.
    #[error(
        "bad host; expected *, a name (wildcards allowed), an IP or a CIDR (IPv6 in brackets)"
    )]
    Host,
    /// A CIDR with a bad prefix length.
    #[error("bad CIDR; expected ADDRESS/LENGTH (IPv6 as [fd00::/8])")]
    Cidr,
    /// A CIDR with bits set after the prefix.
    #[error("CIDR has host bits set; did you mean {0}?")]
    HostBits(IpNet),
    /// A name pattern that looks like an IP with wildcards (`10.0.*.*`).
    #[error("looks like an IP address with wildcards, which never matches an IP; use a CIDR such as 10.0.0.0/16")]
    NumericName,
    /// A name pattern under `bind/`.
    #[error("bind/ takes *, localhost, an IP or a CIDR, not a name")]
    BindName,
}

/// Parse `PORTS`.
fn parse_ports(s: &str) -> Result<Ports, AllowError> {
    if s == "*" {
        return Ok(Ports::Any);
    }
    let port = |p: &str| match parse_port_digits(p) {
        Some(0) | None => Err(AllowError::Ports),
        Some(p) => Ok(p),
    };
    let mut ranges = Vec::new();
    for item in s.split(',') {
        let (lo, hi) = match item.split_once('-') {
            Some((lo, hi)) => (port(lo)?, port(hi)?),
            None => (port(item)?, port(item)?),
        };
        if lo > hi {
            return Err(AllowError::Ports);
        }
        ranges.push((lo, hi));
    }
    Ok(Ports::List(ranges))
}

/// A CIDR or IP, canonical: IPv4-mapped IPv6 becomes IPv4, host bits zero.
fn parse_net(s: &str) -> Result<IpNet, AllowError> {
    let net = if s.contains('/') {
        let (addr, len) = s.split_once('/').ok_or(AllowError::Cidr)?;
        let addr: IpAddr = addr.parse().map_err(|_| AllowError::Host)?;
        let len: u8 = match parse_port_digits(len) {
            Some(l) if l <= 128 => l as u8,
            _ => return Err(AllowError::Cidr),
        };
        let net = IpNet::new(addr, len).map_err(|_| AllowError::Cidr)?;
        if net.trunc() != net {
            return Err(AllowError::HostBits(net.trunc()));
        }
        net
    } else {
        let addr: IpAddr = s.parse().map_err(|_| AllowError::Host)?;
        IpNet::from(addr)
    };
    Ok(canonical_net(net))
}

fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(n) = net {
        if let (Some(v4), true) = (n.addr().to_ipv4_mapped(), n.prefix_len() >= 96) {
            if let Ok(n4) = Ipv4Net::new(v4, n.prefix_len() - 96) {
                return IpNet::V4(n4);
            }
        }
    }
    net
}

/// A name pattern: letters, digits, `-`, `_`, `*`, dot-separated non-empty
/// labels, at most 253 bytes, last label not all digits.
fn parse_name_pattern(s: &str) -> Result<HostPattern, AllowError> {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s == "*" {
        return Ok(HostPattern::Any);
    }
    if s.eq_ignore_ascii_case("localhost") {
        return Ok(HostPattern::Localhost);
    }
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*'));
    if s.is_empty() || s.len() > 253 || !ok_chars || s.split('.').any(str::is_empty) {
        return Err(AllowError::Host);
    }
    // `10.0.*.*` or `192.168.1.*`: an IP with wildcards, which would never
    // match an IP (names only match names). No real TLD is numeric either.
    let numeric = |l: &str| l.bytes().all(|b| b.is_ascii_digit() || b == b'*');
    let last = s.rsplit('.').next().unwrap_or(s);
    let last_all_digits = last.bytes().all(|b| b.is_ascii_digit());
    if last_all_digits || (s.split('.').all(numeric) && s.bytes().any(|b| b.is_ascii_digit())) {
        return Err(AllowError::NumericName);
    }
    Ok(HostPattern::Name(s.to_ascii_lowercase()))
}

fn parse_host_pattern(s: &str, bracketed: bool) -> Result<HostPattern, AllowError> {
    if bracketed {
        // Only IPv6 (or an IPv6 CIDR) goes in brackets.
        let addr = s.split('/').next().unwrap_or(s);
        if addr.parse::<Ipv6Addr>().is_err() {
            return Err(AllowError::Host);
        }
        return parse_net(s).map(HostPattern::Net);
    }
    let first = s.split('/').next().unwrap_or(s);
    if s.contains('/') || first.parse::<Ipv4Addr>().is_ok() {
        if first.parse::<Ipv4Addr>().is_err() {
            return Err(AllowError::Host);
        }
        return parse_net(s).map(HostPattern::Net);
    }
    parse_name_pattern(s)
}

impl FromStr for AllowPattern {
    type Err = AllowError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(AllowError::Empty);
        }
        if s == "*" {
            return Ok(AllowPattern::Everything);
        }
        let (kind, rest) = match s.split_once('/') {
            Some((p, rest)) if p.bytes().all(|b| b.is_ascii_alphabetic()) => {
                let kind = match p.to_ascii_lowercase().as_str() {
                    "tcp" => AccessKind::Tcp,
                    "udp" => AccessKind::Udp,
                    "bind" => AccessKind::Bind,
                    _ => return Err(AllowError::Kind),
                };
                (kind, rest)
            }
            _ => (AccessKind::Tcp, s),
        };
        if rest == "*" {
            return Ok(AllowPattern::Rule {
                kind,
                host: HostPattern::Any,
                ports: Ports::Any,
            });
        }
        let (host, ports) = if let Some(inner) = rest.strip_prefix('[') {
            let (h, after) = inner.split_once(']').ok_or(AllowError::Host)?;
            let ports = after.strip_prefix(':').ok_or(AllowError::MissingPorts)?;
            (parse_host_pattern(h, true)?, ports)
        } else {
            let (h, ports) = rest.rsplit_once(':').ok_or(AllowError::MissingPorts)?;
            if h.contains(':') || h.contains('[') || h.contains(']') {
                return Err(AllowError::Host);
            }
            (parse_host_pattern(h, false)?, ports)
        };
        let ports = parse_ports(ports)?;
        if kind == AccessKind::Bind && matches!(host, HostPattern::Name(_)) {
            return Err(AllowError::BindName);
        }
        Ok(AllowPattern::Rule { kind, host, ports })
    }
}

impl fmt::Display for AllowPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowPattern::Everything => f.write_str("*"),
            AllowPattern::Rule { kind, host, ports } => {
                write!(f, "{}{host}:{ports}", kind.prefix())
            }
        }
    }
}

/// The class of an address, as the allow rule sees it: [`AddrClass::Public`]
/// or one of the special classes that only an address pattern can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrClass {
    /// Globally routable unicast.
    Public,
    /// `0.0.0.0/8`, `::` (connecting there reaches this host).
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918, CGNAT `100.64.0.0/10`, ULA `fc00::/7`, site-local,
    /// local-use NAT64.
    Private,
    /// `169.254.0.0/16` (cloud metadata lives here), `fe80::/10`.
    LinkLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// Everything else that is not globally routable unicast: documentation,
    /// benchmarking, broadcast, `240.0.0.0/4`, IETF assignments, 6to4,
    /// Teredo, unallocated IPv6.
    Reserved,
    /// One of the server's own addresses ([`Request::server_addrs`]).
    Server,
}

impl fmt::Display for AddrClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddrClass::Public => "public",
            AddrClass::Unspecified => "unspecified",
            AddrClass::Loopback => "loopback",
            AddrClass::Private => "private",
            AddrClass::LinkLocal => "link-local",
            AddrClass::Multicast => "multicast",
            AddrClass::Reserved => "reserved",
            AddrClass::Server => "server's own",
        })
    }
}

const V4_SPECIAL: [(Ipv4Net, AddrClass); 16] = {
    const fn n(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
        Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
    }
    use AddrClass::*;
    [
        (n(0, 0, 0, 0, 8), Unspecified),
        (n(10, 0, 0, 0, 8), Private),
        (n(100, 64, 0, 0, 10), Private),
        (n(127, 0, 0, 0, 8), Loopback),
        (n(169, 254, 0, 0, 16), LinkLocal),
        (n(172, 16, 0, 0, 12), Private),
        (n(192, 0, 0, 0, 24), Reserved),
        (n(192, 0, 2, 0, 24), Reserved),
        (n(192, 88, 99, 0, 24), Reserved),
        (n(192, 168, 0, 0, 16), Private),
        (n(198, 18, 0, 0, 15), Reserved),
        (n(198, 51, 100, 0, 24), Reserved),
        (n(203, 0, 113, 0, 24), Reserved),
        (n(224, 0, 0, 0, 4), Multicast),
        (n(240, 0, 0, 0, 4), Reserved),
        (n(255, 255, 255, 255, 32), Reserved),
    ]
};

const V6_SPECIAL: [(Ipv6Net, AddrClass); 12] = {
    const fn n(seg: [u16; 8], len: u8) -> Ipv6Net {
        let [a, b, c, d, e, f, g, h] = seg;
        Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
    }
    use AddrClass::*;
    [
        (n([0, 0, 0, 0, 0, 0, 0, 0], 128), Unspecified),
        (n([0, 0, 0, 0, 0, 0, 0, 1], 128), Loopback),
        (n([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), Private),
        (n([0x100, 0, 0, 0, 0, 0, 0, 0], 64), Reserved),
        (n([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), Reserved),
        (n([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), Reserved),
        (n([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), Reserved),
        (n([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), Reserved),
        (n([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16), Reserved),
        (n([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), Private),
        (n([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), LinkLocal),
        (n([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), Private),
    ]
};

/// The class of `ip` (not knowing the server's own addresses): IPv4-mapped
/// and NAT64 (`64:ff9b::/96`) addresses are judged by their IPv4 address.
pub fn classify(ip: IpAddr) -> AddrClass {
    match ip.to_canonical() {
        IpAddr::V4(v4) => V4_SPECIAL
            .iter()
            .find(|(net, _)| net.contains(&v4))
            .map_or(AddrClass::Public, |&(_, c)| c),
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let o = v6.octets();
                return classify(IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15])));
            }
            if seg[0] & 0xff00 == 0xff00 {
                return AddrClass::Multicast;
            }
            if let Some(&(_, c)) = V6_SPECIAL.iter().find(|(net, _)| net.contains(&v6)) {
                return c;
            }
            // Outside 2000::/3, nothing is allocated for global unicast.
            if seg[0] & 0xe000 == 0x2000 {
                AddrClass::Public
            } else {
                AddrClass::Reserved
            }
        }
    }
}

/// One thing a client asks for: a stream, a UDP flow or datagram, or a bind.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// TCP, UDP or bind.
    pub kind: AccessKind,
    /// The host exactly as the client sent it: a name or an IP literal (IPv6
    /// with or without brackets). For a bind: the address to listen on, with
    /// `-R`'s default as `localhost` and `*` as `0.0.0.0` or `::`.
    pub host: &'a str,
    /// The destination (or listen) port. 0 is never a destination; as a
    /// bind it means "the server picks".
    pub port: u16,
    /// Every address the name resolved to, which are then the only addresses
    /// the server may use for this request. Ignored when `host` is an IP.
    pub resolved: &'a [IpAddr],
    /// The server's own addresses: special even when public. May be empty.
    pub server_addrs: &'a [IpAddr],
}

impl<'a> Request<'a> {
    /// A request for `host:port` with nothing resolved and no server
    /// addresses; set the other fields as needed.
    pub fn new(kind: AccessKind, host: &'a str, port: u16) -> Self {
        Request {
            kind,
            host,
            port,
            resolved: &[],
            server_addrs: &[],
        }
    }

    /// The class of `ip` for this request: [`classify`], and
    /// [`AddrClass::Server`] for a public address in `server_addrs`.
    pub fn class_of(&self, ip: IpAddr) -> AddrClass {
        let ip = ip.to_canonical();
        match classify(ip) {
            AddrClass::Public if self.server_addrs.iter().any(|s| s.to_canonical() == ip) => {
                AddrClass::Server
            }
            c => c,
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// No pattern of this kind and port matches the host or covers its
    /// address.
    NotAllowed,
    /// A name pattern matched, but the name resolved to a special address
    /// that no address pattern grants.
    SpecialAddress {
        /// The first such address.
        addr: IpAddr,
        /// Its class.
        class: AddrClass,
    },
    /// A name with no resolved address.
    Unresolved,
    /// The host is neither an IP literal nor a valid name.
    BadHost,
    /// Port 0 as a destination.
    BadPort,
}

/// A refusal, for the client's error message and the server's log. Its
/// `Display` says why and what to grant; it does not repeat the host (which
/// the caller has), so print it as `"{host}:{port}: {refusal}"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The request's kind.
    pub kind: AccessKind,
    /// The request's port.
    pub port: u16,
    /// Why.
    pub reason: RefusalReason,
}

impl std::error::Error for Refusal {}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, port) = (self.kind, self.port);
        match self.reason {
            RefusalReason::NotAllowed => write!(
                f,
                "not in the client's allow-list (no {kind} pattern for this host and port {port})"
            ),
            RefusalReason::SpecialAddress { addr, class } => {
                let addr = HostPattern::Net(IpNet::from(addr.to_canonical()));
                let what = match class {
                    AddrClass::Server => "one of the server's own addresses".to_owned(),
                    AddrClass::Unspecified => "an unspecified address".to_owned(),
                    c => format!("a {c} address"),
                };
                write!(
                    f,
                    "{addr} is {what}, which names and `*` never reach; \
                     grant it by address (`{}{addr}:{port}` or a CIDR) if it is meant to be reachable",
                    kind.prefix()
                )
            }
            RefusalReason::Unresolved => f.write_str("the name resolved to no address"),
            RefusalReason::BadHost => f.write_str("not a valid host name or IP address"),
            RefusalReason::BadPort => f.write_str("port 0 is not a destination"),
        }
    }
}

/// The host of a request, classified.
enum Host<'a> {
    Ip,
    /// Without a trailing dot (matching folds case).
    Name(&'a str),
}

/// A valid host name: letters, digits, `-`, `_`, dot-separated non-empty
/// labels, at most 253 bytes (one trailing dot allowed).
fn as_name(host: &str) -> Option<&str> {
    let h = host.strip_suffix('.').unwrap_or(host);
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && !h.split('.').any(str::is_empty);
    ok.then_some(h)
}

/// `*` matches any run of bytes; the rest byte for byte, ASCII case-folded
/// (`pattern` is already lower case).
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if p < pattern.len() && pattern[p] == name[n].to_ascii_lowercase() {
            p += 1;
            n += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// A client's allow-list: patterns in any order (the rule does not depend on
/// order). Empty allows nothing. Parsed from and printed as patterns
/// separated by whitespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    patterns: Vec<AllowPattern>,
}

/// Why an allow-list was refused: which pattern (0-based) and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("allow pattern {}: {error}", index + 1)]
pub struct AllowListError {
    /// The 0-based index of the bad pattern.
    pub index: usize,
    /// What is wrong with it.
    pub error: AllowError,
}

impl AllowList {
    /// An empty list: allows nothing (a new client's).
    pub fn new() -> Self {
        AllowList::default()
    }

    /// `*`: everything (what `init` grants its first client).
    pub fn everything() -> Self {
        AllowList {
            patterns: vec![AllowPattern::Everything],
        }
    }

    /// Parse patterns one by one (each `--allow` value, each TOML string).
    pub fn parse_each<'s, I>(patterns: I) -> Result<Self, AllowListError>
    where
        I: IntoIterator<Item = &'s str>,
    {
        patterns
            .into_iter()
            .enumerate()
            .map(|(index, p)| p.parse().map_err(|error| AllowListError { index, error }))
            .collect::<Result<Vec<_>, _>>()
            .map(|patterns| AllowList { patterns })
    }

    /// The patterns.
    pub fn patterns(&self) -> &[AllowPattern] {
        &self.patterns
    }

    /// No pattern at all: allows nothing.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Add a pattern (`client allow`); `false` if it was already there.
    pub fn grant(&mut self, pattern: AllowPattern) -> bool {
        if self.patterns.contains(&pattern) {
            return false;
        }
        self.patterns.push(pattern);
        true
    }

    /// Remove a pattern (`client deny`); `false` if it was not there.
    /// Only removes that exact pattern: other patterns may still allow what
    /// it allowed.
    pub fn revoke(&mut self, pattern: &AllowPattern) -> bool {
        let before = self.patterns.len();
        self.patterns.retain(|p| p != pattern);
        self.patterns.len() != before
    }

    /// Is `req` allowed? See the module docs for the rule.
    pub fn allows(&self, req: &Request<'_>) -> bool {
        self.check(req).is_ok()
    }

    /// Allow `req`, or say why not. See the module docs for the rule.
    pub fn check(&self, req: &Request<'_>) -> Result<(), Refusal> {
        let refuse = |reason| {
            Err(Refusal {
                kind: req.kind,
                port: req.port,
                reason,
            })
        };
        if req.port == 0 && req.kind != AccessKind::Bind {
            return refuse(RefusalReason::BadPort);
        }
        let bare = req
            .host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(req.host);
        let literal;
        let (host, addrs) = match bare.parse::<IpAddr>() {
            Ok(ip) => {
                literal = [ip];
                (Host::Ip, &literal[..])
            }
            Err(_) => match as_name(req.host) {
                Some(name) => (Host::Name(name), req.resolved),
                None => return refuse(RefusalReason::BadHost),
            },
        };
        if addrs.is_empty() {
            return refuse(RefusalReason::Unresolved);
        }
        if self.patterns.contains(&AllowPattern::Everything) {
            return Ok(());
        }
        let candidates = || {
            self.patterns.iter().filter_map(|p| match p {
                AllowPattern::Rule { kind, host, ports }
                    if *kind == req.kind && ports.contains(req.port) =>
                {
                    Some(host)
                }
                _ => None,
            })
        };
        // Rule 2 applies to destinations only: every bind is "special".
        let name_matched =
            req.kind != AccessKind::Bind && candidates().any(|h| h.matches_host(&host));
        for &addr in addrs {
            let addr = addr.to_canonical();
            // For binds, `*` is every address (all interfaces included).
            let bind_any = |h: &HostPattern| req.kind == AccessKind::Bind && *h == HostPattern::Any;
            if candidates().any(|h| h.covers_addr(addr) || bind_any(h)) {
                continue;
            }
            if !name_matched {
                return refuse(RefusalReason::NotAllowed);
            }
            match req.class_of(addr) {
                AddrClass::Public => continue,
                class => return refuse(RefusalReason::SpecialAddress { addr, class }),
            }
        }
        Ok(())
    }
}

impl FromIterator<AllowPattern> for AllowList {
    fn from_iter<I: IntoIterator<Item = AllowPattern>>(iter: I) -> Self {
        AllowList {
            patterns: iter.into_iter().collect(),
        }
    }
}

/// Patterns separated by whitespace.
impl FromStr for AllowList {
    type Err = AllowListError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AllowList::parse_each(s.split_whitespace())
    }
}

/// Patterns separated by one space; [`AllowList::from_str`] reads it back.
impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.patterns.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use AccessKind::*;

    fn list(s: &str) -> AllowList {
        s.parse().unwrap()
    }

    fn ips(s: &[&str]) -> Vec<IpAddr> {
        s.iter().map(|a| a.parse().unwrap()).collect()
    }

    /// Check `kind host:port`, the name resolving to `resolved`.
    fn check(
        l: &str,
        kind: AccessKind,
        host: &str,
        port: u16,
        resolved: &[&str],
    ) -> Result<(), Refusal> {
        let resolved = ips(resolved);
        let req = Request {
            resolved: &resolved,
            ..Request::new(kind, host, port)
        };
        list(l).check(&req)
    }

    fn reason(r: Result<(), Refusal>) -> RefusalReason {
        r.unwrap_err().reason
    }

    #[test]
    fn parses_spec_examples() {
        let cases: [(&str, AllowPattern); 8] = [
            (
                "*.corp.example:443",
                AllowPattern::Rule {
                    kind: Tcp,
                    host: HostPattern::Name("*.corp.example".into()),
                    ports: Ports::List(vec![(443, 443)]),
                },
            ),
            (
                "10.0.0.0/8:22,80-90",
                AllowPattern::Rule {
                    kind: Tcp,
                    host: HostPattern::Net("10.0.0.0/8".parse().unwrap()),
                    ports: Ports::List(vec![(22, 22), (80, 90)]),
                },
            ),
            (
                "[::1]:5432",
                AllowPattern::Rule {
                    kind: Tcp,
                    host: HostPattern::Net("::1/128".parse().unwrap()),
                    ports: Ports::List(vec![(5432, 5432)]),
                },
            ),
            (
                "udp/10.0.0.1:53",
                AllowPattern::Rule {
                    kind: Udp,
                    host: HostPattern::Net("10.0.0.1/32".parse().unwrap()),
                    ports: Ports::List(vec![(53, 53)]),
                },
            ),
            (
                "bind/127.0.0.1:8022",
                AllowPattern::Rule {
                    kind: Bind,
                    host: HostPattern::Net("127.0.0.1/32".parse().unwrap()),
                    ports: Ports::List(vec![(8022, 8022)]),
                },
            ),
            ("*", AllowPattern::Everything),
            (
                "udp/*",
                AllowPattern::Rule {
                    kind: Udp,
                    host: HostPattern::Any,
                    ports: Ports::Any,
                },
            ),
            (
                "[fd00::/8]:*",
                AllowPattern::Rule {
                    kind: Tcp,
                    host: HostPattern::Net("fd00::/8".parse().unwrap()),
                    ports: Ports::Any,
                },
            ),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<AllowPattern>(), Ok(want), "{s}");
        }
    }

    #[test]
    fn display_is_canonical() {
        for (input, shown) in [
            ("*.Corp.Example.:443", "*.corp.example:443"),
            ("tcp/db:5432", "db:5432"),
            ("UDP/*", "udp/*:*"),
            ("10.0.0.1/32:22-22", "10.0.0.1:22"),
            ("[::ffff:10.0.0.0/104]:22", "10.0.0.0/8:22"),
            ("[::ffff:127.0.0.1]:22", "127.0.0.1:22"),
            ("[fd00::/8]:1-1024,8080", "[fd00::/8]:1-1024,8080"),
            ("LocalHost:22", "localhost:22"),
            ("bind/*:*", "bind/*:*"),
            (" * ", "*"),
            ("*.:22", "*:22"),
            ("localhost.:22", "localhost:22"),
        ] {
            let p: AllowPattern = input.parse().unwrap();
            assert_eq!(p.to_string(), shown, "{input}");
            assert_eq!(shown.parse(), Ok(p));
        }
        let l = list("*.a.example:443  udp/10.0.0.0/8:53\n bind/localhost:8000-8999");
        assert_eq!(
            l.to_string(),
            "*.a.example:443 udp/10.0.0.0/8:53 bind/localhost:8000-8999"
        );
        assert_eq!(l.to_string().parse(), Ok(l));
    }

    #[test]
    fn refuses_bad_patterns() {
        use AllowError::*;
        for (s, want) in [
            ("", Empty),
            ("sctp/h:1", Kind),
            ("host", MissingPorts),
            ("[::1]", MissingPorts),
            ("h:", Ports),
            ("h:0", Ports),
            ("h:65536", Ports),
            ("h:90-80", Ports),
            ("h:1,", Ports),
            ("h:+1", Ports),
            ("h:1-", Ports),
            ("::1:22", Host),
            ("[10.0.0.1]:22", Host),
            ("[::1:22", Host),
            ("a..b:1", Host),
            ("a b:1", Host),
            ("h!:1", Host),
            (":22", Host),
            ("10.0.0.0/33:22", Cidr),
            ("[fd00::/129]:22", Cidr),
            ("10.0.0.0/x:22", Cidr),
            ("10.0.0.300/8:22", Host),
            ("10.0.0.1/8:22", HostBits("10.0.0.0/8".parse().unwrap())),
            ("10.0.*.*:22", NumericName),
            ("192.168.1.*:22", NumericName),
            ("host.123:22", NumericName),
            ("bind/*.example:22", BindName),
            ("bind/example:22", BindName),
        ] {
            assert_eq!(s.parse::<AllowPattern>(), Err(want), "{s}");
        }
        assert_eq!(
            "10.0.0.1/8:22"
                .parse::<AllowPattern>()
                .unwrap_err()
                .to_string(),
            "CIDR has host bits set; did you mean 10.0.0.0/8?"
        );
        let e = "a:1 b:2 c".parse::<AllowList>().unwrap_err();
        assert_eq!(
            e,
            AllowListError {
                index: 2,
                error: MissingPorts
            }
        );
        assert!(
            e.to_string().starts_with("allow pattern 3: no ports"),
            "{e}"
        );
    }

    /// The table in the module docs, row by row.
    #[test]
    fn module_doc_table() {
        let web = ["93.184.215.14"];
        assert_eq!(
            check("*.example.com:443", Tcp, "www.example.com", 443, &web),
            Ok(())
        );
        assert_eq!(
            reason(check(
                "*.example.com:443",
                Tcp,
                "evil.example.com",
                443,
                &["127.0.0.1"]
            )),
            RefusalReason::SpecialAddress {
                addr: "127.0.0.1".parse().unwrap(),
                class: AddrClass::Loopback
            }
        );
        let l = "*.example.com:443 10.0.0.0/8:443";
        assert_eq!(check(l, Tcp, "app.example.com", 443, &["10.0.0.5"]), Ok(()));
        let r = check("db.corp:5432", Tcp, "db.corp", 5432, &["10.0.0.7"]);
        assert_eq!(
            reason(r),
            RefusalReason::SpecialAddress {
                addr: "10.0.0.7".parse().unwrap(),
                class: AddrClass::Private
            }
        );
        assert!(r.unwrap_err().to_string().contains("`10.0.0.7:5432`"));
        assert_eq!(
            check("10.0.0.0/8:22,80-90", Tcp, "build.lan", 22, &["10.1.2.3"]),
            Ok(())
        );
        assert_eq!(check("*:443", Tcp, "1.1.1.1", 443, &[]), Ok(()));
        assert_eq!(
            reason(check("*:80", Tcp, "169.254.169.254", 80, &[])),
            RefusalReason::SpecialAddress {
                addr: "169.254.169.254".parse().unwrap(),
                class: AddrClass::LinkLocal
            }
        );
        assert_eq!(
            check("localhost:22", Tcp, "localhost", 22, &["127.0.0.1", "::1"]),
            Ok(())
        );
        assert_eq!(
            check("bind/127.0.0.1:8022", Bind, "127.0.0.1", 8022, &[]),
            Ok(())
        );
        assert_eq!(
            reason(check("bind/127.0.0.1:8022", Bind, "0.0.0.0", 8022, &[])),
            RefusalReason::NotAllowed
        );
        assert_eq!(check("*", Tcp, "127.0.0.1", 22, &[]), Ok(()));
        assert_eq!(check("*", Udp, "x.lan", 53, &["10.0.0.1"]), Ok(()));
        assert_eq!(check("*", Bind, "0.0.0.0", 0, &[]), Ok(()));
    }

    /// Security regression (issue 4): a name that resolves to a forbidden
    /// address is refused, whatever address family or disguise.
    #[test]
    fn name_cannot_smuggle_a_forbidden_address() {
        let l = "*.example.com:443 *:80";
        for addr in [
            "127.0.0.1",
            "127.8.8.8",
            "10.0.0.5",
            "172.16.3.4",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:5",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            for (host, port) in [("evil.example.com", 443), ("127.0.0.1.nip.io", 80)] {
                let r = check(l, Tcp, host, port, &[addr]);
                assert!(
                    matches!(reason(r), RefusalReason::SpecialAddress { .. }),
                    "{host} -> {addr}: {r:?}"
                );
                // One bad answer among good ones spoils the request.
                let r = check(l, Tcp, host, port, &["93.184.215.14", addr]);
                assert!(r.is_err(), "{host} -> {addr}: {r:?}");
            }
            // Typed directly, the same address is refused too.
            assert!(check(l, Tcp, addr, 80, &[]).is_err(), "{addr}");
        }
        // The server's own public address is special too.
        let own = ips(&["203.0.114.7"]);
        let resolved = ips(&["203.0.114.7"]);
        let req = Request {
            resolved: &resolved,
            server_addrs: &own,
            ..Request::new(Tcp, "door.example.com", 443)
        };
        assert_eq!(
            list(l).check(&req).unwrap_err().reason,
            RefusalReason::SpecialAddress {
                addr: own[0],
                class: AddrClass::Server
            }
        );
        assert!(list("203.0.114.7:443").allows(&req));
        assert_eq!(
            list(l).check(&req).unwrap_err().to_string(),
            "203.0.114.7 is one of the server's own addresses, which names and `*` never reach; \
             grant it by address (`203.0.114.7:443` or a CIDR) if it is meant to be reachable"
        );
        let r = check("udp/*", Udp, "x.example", 53, &["::1"]).unwrap_err();
        assert!(
            r.to_string().starts_with("[::1] is a loopback address"),
            "{r}"
        );
        assert!(r.to_string().contains("`udp/[::1]:53`"), "{r}");
        // A name resolving to nothing is refused, never vacuously allowed.
        assert_eq!(
            reason(check(l, Tcp, "a.example.com", 443, &[])),
            RefusalReason::Unresolved
        );
        assert_eq!(
            reason(check("*", Tcp, "a.example.com", 443, &[])),
            RefusalReason::Unresolved
        );
    }

    #[test]
    fn address_patterns_grant_special_addresses() {
        let l = "*.example.com:443 10.0.0.0/8:443 [fd00::/8]:443 localhost:443";
        for (host, addr) in [
            ("a.example.com", "10.0.0.5"),
            ("a.example.com", "::ffff:10.0.0.5"),
            ("a.example.com", "fd00::5"),
            ("a.example.com", "127.0.0.1"),
            ("other.lan", "10.9.9.9"),
            ("10.2.3.4", "10.2.3.4"),
            ("[fd00::9]", "fd00::9"),
            ("::ffff:10.0.0.1", "10.0.0.1"),
        ] {
            assert_eq!(
                check(l, Tcp, host, 443, &[addr]),
                Ok(()),
                "{host} -> {addr}"
            );
        }
        // ... only at their own kind and port.
        assert!(check(l, Tcp, "a.example.com", 444, &["10.0.0.5"]).is_err());
        assert!(check(l, Udp, "a.example.com", 443, &["10.0.0.5"]).is_err());
        // A public address outside every pattern, with no name matching.
        assert_eq!(
            reason(check(l, Tcp, "other.lan", 443, &["8.8.8.8"])),
            RefusalReason::NotAllowed
        );
    }

    #[test]
    fn names_match_as_typed() {
        let l = "*.corp.example:443 db-*.lan:5432 exact.example:22";
        let pubs = ["93.184.215.14"];
        assert!(check(l, Tcp, "a.corp.example", 443, &pubs).is_ok());
        assert!(check(l, Tcp, "A.B.CORP.EXAMPLE.", 443, &pubs).is_ok());
        assert!(check(l, Tcp, "corp.example", 443, &pubs).is_err());
        assert!(check(l, Tcp, "evilcorp.example", 443, &pubs).is_err());
        assert!(check(l, Tcp, "db-1.lan", 5432, &pubs).is_ok());
        assert!(check(l, Tcp, "db.lan", 5432, &pubs).is_err());
        assert!(check(l, Tcp, "exact.example", 22, &pubs).is_ok());
        assert!(check(l, Tcp, "exact.example.evil", 22, &pubs).is_err());
        // Name patterns never match IP literals; `*` matches public ones.
        assert!(check("*.*:443", Tcp, "93.184.215.14", 443, &[]).is_err());
        assert!(check("*:443", Tcp, "93.184.215.14", 443, &[]).is_ok());
        assert!(check("*:443", Tcp, "[2606:4700::1111]", 443, &[]).is_ok());
        assert_eq!(
            reason(check("*", Tcp, "bad host", 1, &pubs)),
            RefusalReason::BadHost
        );
        assert_eq!(
            reason(check("*", Tcp, "a..b", 1, &pubs)),
            RefusalReason::BadHost
        );
        assert_eq!(
            reason(check("*", Tcp, "fe80::1%eth0", 1, &pubs)),
            RefusalReason::BadHost
        );
        assert_eq!(
            reason(check("*", Tcp, "h", 0, &pubs)),
            RefusalReason::BadPort
        );
    }

    #[test]
    fn kinds_are_separate() {
        let l = "h.example:53 udp/u.example:53 bind/127.0.0.1:8022 bind/[::1]:*";
        let pubs = ["93.184.215.14"];
        assert!(check(l, Tcp, "h.example", 53, &pubs).is_ok());
        assert!(check(l, Udp, "h.example", 53, &pubs).is_err());
        assert!(check(l, Udp, "u.example", 53, &pubs).is_ok());
        assert!(check(l, Tcp, "u.example", 53, &pubs).is_err());
        assert!(check(l, Tcp, "127.0.0.1", 8022, &[]).is_err());
        assert!(check(l, Bind, "127.0.0.1", 8022, &[]).is_ok());
        assert!(check(l, Bind, "127.0.0.1", 8023, &[]).is_err());
        assert!(check(l, Bind, "127.0.0.1", 0, &[]).is_err());
        assert!(check(l, Bind, "::1", 0, &[]).is_ok());
        assert!(check(l, Bind, "localhost", 8022, &["127.0.0.1", "::1"]).is_ok());
        assert!(check(l, Bind, "localhost", 8023, &["127.0.0.1", "::1"]).is_err());
        assert!(check(l, Bind, "::", 8022, &[]).is_err());
        assert!(check("bind/*:8022", Bind, "::", 8022, &[]).is_ok());
        assert!(check("bind/*:8022", Bind, "0.0.0.0", 8022, &[]).is_ok());
        assert!(check("bind/localhost:8022", Bind, "0.0.0.0", 8022, &[]).is_err());
        assert!(check("*:*", Bind, "127.0.0.1", 8022, &[]).is_err());
        assert!(check("udp/*", Udp, "1.1.1.1", 53, &[]).is_ok());
        assert!(check("udp/*", Udp, "10.0.0.1", 53, &[]).is_err());
    }

    #[test]
    fn empty_allows_nothing() {
        let l = AllowList::new();
        assert!(l.is_empty());
        assert!(!l.allows(&Request::new(Tcp, "1.1.1.1", 443)));
        assert_eq!(
            l.check(&Request::new(Tcp, "1.1.1.1", 443))
                .unwrap_err()
                .reason,
            RefusalReason::NotAllowed
        );
        assert!(AllowList::everything().allows(&Request::new(Bind, "0.0.0.0", 0)));
    }

    #[test]
    fn grant_and_revoke() {
        let mut l = AllowList::new();
        let p: AllowPattern = "db.lan:5432".parse().unwrap();
        assert!(l.grant(p.clone()));
        assert!(!l.grant(p.clone()));
        assert_eq!(l.patterns().len(), 1);
        assert!(l.revoke(&p));
        assert!(!l.revoke(&p));
        assert!(l.is_empty());
        let l = AllowList::parse_each(["a:1", "b:2"]).unwrap();
        assert_eq!(l.to_string(), "a:1 b:2");
    }

    #[test]
    fn classes() {
        for (a, c) in [
            ("8.8.8.8", AddrClass::Public),
            ("0.1.2.3", AddrClass::Unspecified),
            ("127.0.0.1", AddrClass::Loopback),
            ("10.1.1.1", AddrClass::Private),
            ("172.31.255.255", AddrClass::Private),
            ("172.32.0.1", AddrClass::Public),
            ("100.127.0.1", AddrClass::Private),
            ("100.128.0.1", AddrClass::Public),
            ("169.254.169.254", AddrClass::LinkLocal),
            ("198.19.255.255", AddrClass::Reserved),
            ("198.20.0.1", AddrClass::Public),
            ("239.1.1.1", AddrClass::Multicast),
            ("240.0.0.1", AddrClass::Reserved),
            ("2606:4700::1111", AddrClass::Public),
            ("::", AddrClass::Unspecified),
            ("::1", AddrClass::Loopback),
            ("::ffff:10.0.0.1", AddrClass::Private),
            ("::ffff:8.8.8.8", AddrClass::Public),
            ("64:ff9b::808:808", AddrClass::Public),
            ("64:ff9b::7f00:1", AddrClass::Loopback),
            ("64:ff9b:1::1", AddrClass::Private),
            ("::7f00:1", AddrClass::Reserved),
            ("2001::1", AddrClass::Reserved),
            ("2001:db8::1", AddrClass::Reserved),
            ("2002:7f00:1::1", AddrClass::Reserved),
            ("fc00::1", AddrClass::Private),
            ("fe80::1", AddrClass::LinkLocal),
            ("fec0::1", AddrClass::Private),
            ("ff0e::1", AddrClass::Multicast),
            ("4000::1", AddrClass::Reserved),
        ] {
            assert_eq!(classify(a.parse().unwrap()), c, "{a}");
        }
    }

    #[test]
    fn glob_matching() {
        assert!(glob(b"*", b""));
        assert!(glob(b"a*b*c", b"aXXbYYc"));
        assert!(glob(b"a*b*c", b"abc"));
        assert!(!glob(b"a*b*c", b"acb"));
        assert!(glob(b"*.x", b"a.b.X"));
        assert!(!glob(b"*.x", b".y"));
        assert!(glob(b"**a", b"ba"));
        assert!(!glob(b"a", b"ab"));
    }

    fn pattern_pool() -> Vec<&'static str> {
        vec![
            "*.example.com:443",
            "*:80",
            "*:*",
            "udp/*",
            "db.corp:5432",
            "10.0.0.0/8:22,80-90",
            "127.0.0.1:22",
            "localhost:443",
            "[fd00::/8]:443",
            "[::1]:*",
            "8.8.8.0/24:53",
            "udp/10.0.0.1:53",
            "bind/127.0.0.1:8022",
            "bind/*:9000-9100",
        ]
    }

    fn addr_pool() -> Vec<IpAddr> {
        ips(&[
            "127.0.0.1",
            "10.0.0.5",
            "10.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "8.8.8.8",
            "93.184.215.14",
            "::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "2606:4700::1111",
            "203.0.114.7",
        ])
    }

    fn arb_list() -> impl Strategy<Value = AllowList> {
        proptest::sample::subsequence(pattern_pool(), 0..=6)
            .prop_map(|ps| AllowList::parse_each(ps).unwrap())
    }

    fn arb_kind() -> impl Strategy<Value = AccessKind> {
        prop_oneof![Just(Tcp), Just(Udp), Just(Bind)]
    }

    fn arb_name() -> impl Strategy<Value = &'static str> {
        proptest::sample::select(vec![
            "a.example.com",
            "db.corp",
            "localhost",
            "x.lan",
            "example.com",
        ])
    }

    fn arb_port() -> impl Strategy<Value = u16> {
        proptest::sample::select(vec![0u16, 22, 53, 80, 85, 443, 5432, 8022, 9050])
    }

    fn arb_pattern() -> impl Strategy<Value = AllowPattern> {
        let kind = arb_kind();
        let host = prop_oneof![
            Just(HostPattern::Any),
            Just(HostPattern::Localhost),
            "(\\*|[a-z][a-z0-9-]{0,6})(\\.(\\*|[a-z][a-z0-9_-]{0,6})){0,3}"
                .prop_filter("`*` alone is Any", |n| n != "*")
                .prop_map(HostPattern::Name),
            (any::<IpAddr>(), any::<u8>()).prop_map(|(a, l)| {
                let max = if a.is_ipv4() { 32 } else { 128 };
                HostPattern::Net(canonical_net(IpNet::new(a, l % (max + 1)).unwrap().trunc()))
            }),
        ];
        let ports = prop_oneof![
            Just(Ports::Any),
            proptest::collection::vec((1u16.., 1u16..), 1..4).prop_map(|v| {
                Ports::List(v.into_iter().map(|(a, b)| (a.min(b), a.max(b))).collect())
            }),
        ];
        prop_oneof![
            1 => Just(AllowPattern::Everything),
            20 => (kind, host, ports).prop_map(|(kind, host, ports)| {
                let host = match (kind, host) {
                    (Bind, HostPattern::Name(_)) => HostPattern::Any,
                    (_, h) => h,
                };
                AllowPattern::Rule { kind, host, ports }
            }),
        ]
    }

    proptest! {
        #[test]
        fn pattern_roundtrips(p in arb_pattern()) {
            prop_assert_eq!(p.to_string().parse::<AllowPattern>(), Ok(p));
        }

        #[test]
        fn list_roundtrips(ps in proptest::collection::vec(arb_pattern(), 0..5)) {
            let l: AllowList = ps.into_iter().collect();
            prop_assert_eq!(l.to_string().parse::<AllowList>(), Ok(l));
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            if let Ok(p) = s.parse::<AllowPattern>() {
                prop_assert_eq!(p.to_string().parse::<AllowPattern>(), Ok(p));
            }
        }

        #[test]
        fn parse_never_panics_near_misses(s in "(udp/|bind/|tcp/)?[\\[\\]*a-f0-9:./,-]{0,30}") {
            if let Ok(p) = s.parse::<AllowPattern>() {
                prop_assert_eq!(p.to_string().parse::<AllowPattern>(), Ok(p));
            }
        }

        /// The core guarantee: unless the list holds `*`, a name reaches a
        /// special address only if that address, typed as an IP, would be
        /// allowed too.
        #[test]
        fn names_never_smuggle(
            l in arb_list(),
            kind in arb_kind(),
            name in arb_name(),
            port in arb_port(),
            resolved in proptest::sample::subsequence(addr_pool(), 1..4),
        ) {
            let own = ips(&["203.0.114.7"]);
            let req = Request { resolved: &resolved, server_addrs: &own, ..Request::new(kind, name, port) };
            if l.allows(&req) {
                for a in &resolved {
                    let text = a.to_string();
                    let literal = Request { server_addrs: &own, ..Request::new(kind, &text, port) };
                    if req.class_of(*a) != AddrClass::Public || kind == Bind {
                        prop_assert!(l.allows(&literal), "{} allows {} -> {}, not {}", l, name, a, a);
                    }
                }
            }
        }

        /// Granting more never refuses what was allowed; order is irrelevant.
        #[test]
        fn monotone_and_order_free(
            l in arb_list(),
            extra in proptest::sample::select(pattern_pool()),
            kind in arb_kind(),
            name in arb_name(),
            port in arb_port(),
            resolved in proptest::sample::subsequence(addr_pool(), 0..4),
        ) {
            let req = Request { resolved: &resolved, ..Request::new(kind, name, port) };
            let mut more = l.clone();
            more.grant(extra.parse().unwrap());
            if l.allows(&req) {
                prop_assert!(more.allows(&req));
            }
            let reversed: AllowList = l.patterns().iter().rev().cloned().collect();
            prop_assert_eq!(l.allows(&req), reversed.allows(&req));
            prop_assert!(!AllowList::new().allows(&req));
        }

        #[test]
        fn check_never_panics(
            ps in proptest::collection::vec(arb_pattern(), 0..5),
            kind in arb_kind(),
            host in ".{0,20}",
            port in any::<u16>(),
            resolved in proptest::collection::vec(any::<IpAddr>(), 0..3),
        ) {
            let l: AllowList = ps.into_iter().collect();
            let req = Request { resolved: &resolved, ..Request::new(kind, &host, port) };
            if let Err(r) = l.check(&req) {
                let _ = r.to_string();
            }
        }
    }
}
