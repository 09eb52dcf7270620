//! Forward specs, in OpenSSH's syntax (`ssh(1)`):
//!
//! | flag | spec | meaning |
//! |---|---|---|
//! | `-L` | `[udp/][bind:]port:host:hostport` | listen here, connect from the server |
//! | `-R` | `[udp/][bind:]port:host:hostport` | listen on the server, connect from here |
//! | `-D` | `[bind:]port` | a SOCKS5 proxy here (CONNECT and UDP ASSOCIATE) |
//! | `-W` | `host:port` | stdin/stdout joined to one stream (`ssh -o ProxyCommand`) |
//!
//! As in OpenSSH: IPv6 addresses go in brackets (`[::1]:8080:[::1]:22`); an
//! omitted bind address means loopback only, while an empty one (`:8080:…`) or
//! `*` means every interface; `-R 0:…` lets the server pick the port. Names
//! are kept as typed and resolved where they are used (the destination of
//! `-L` at the server, of `-R` here).
//!
//! onedoor adds a `udp/` prefix for UDP forwards (`-L udp/5353:10.0.0.1:53`);
//! `tcp/` may be written too and is the default. `-D` and `-W` have no UDP
//! form (SOCKS5 carries UDP by itself).
//!
//! Not supported, with a clear error: OpenSSH's older `/` separator
//! (`8080/::1/22`, which would collide with `udp/`; use brackets), Unix
//! socket paths, service names for ports, and reverse dynamic forwarding
//! (`-R [bind:]port` alone). One extension: `-W` also takes a bare IPv6
//! address before the port (`-W ::1:22`), because ssh substitutes `%h`
//! without brackets in `ProxyCommand`.

use std::fmt;
use std::net::Ipv6Addr;

use super::HostPort;

/// Which flag a spec was given with; errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardFlag {
    /// `-L`: local forward.
    Local,
    /// `-R`: remote (reverse) forward.
    Remote,
    /// `-D`: dynamic forward (SOCKS5).
    Dynamic,
    /// `-W`: stdio forward.
    Stdio,
}

impl ForwardFlag {
    /// The syntax this flag expects, for error messages and help.
    pub fn syntax(self) -> &'static str {
        match self {
            ForwardFlag::Local | ForwardFlag::Remote => {
                "[udp/][bind:]port:host:hostport (IPv6 in brackets)"
            }
            ForwardFlag::Dynamic => "[bind:]port (IPv6 in brackets)",
            ForwardFlag::Stdio => "host:port (IPv6 in brackets)",
        }
    }
}

impl fmt::Display for ForwardFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForwardFlag::Local => "-L",
            ForwardFlag::Remote => "-R",
            ForwardFlag::Dynamic => "-D",
            ForwardFlag::Stdio => "-W",
        })
    }
}

/// What is wrong with a forward spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ForwardProblem {
    /// Too many or too few `:`-separated fields.
    #[error("wrong number of fields")]
    Shape,
    /// The listen port is not a number in range.
    #[error("the listen port must be a number, 1-65535 (0 only with -R: the server picks)")]
    ListenPort,
    /// The destination port is not a number in range.
    #[error("the destination port must be a number, 1-65535")]
    TargetPort,
    /// The bind address is neither `*`, empty, a host name nor an IP address.
    #[error("the bind address is not `*`, a host name or an IP address")]
    Bind,
    /// The destination is neither a host name nor an IP address.
    #[error("the destination is not a host name or an IP address")]
    Host,
    /// A `[` without its `]`, or a `]` not followed by `:`.
    #[error("unbalanced brackets (write IPv6 as [::1])")]
    Bracket,
    /// A `/` other than in the `udp/` or `tcp/` prefix.
    #[error("`/` is only allowed in the udp/ or tcp/ prefix (write IPv6 in brackets)")]
    Slash,
    /// `udp/` on `-D` or `-W`.
    #[error("there is no udp/ form (SOCKS5 carries UDP itself)")]
    NoUdp,
    /// `-R [bind:]port`: OpenSSH's reverse SOCKS proxy.
    #[error("reverse dynamic forwarding (-R [bind:]port alone) is not supported")]
    ReverseDynamic,
}

/// Why a forward spec was refused: the flag, the problem, and (in the
/// message) the syntax the flag expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{flag}: {problem}; expected {flag} {}", flag.syntax())]
pub struct ForwardError {
    /// The flag the spec was given with.
    pub flag: ForwardFlag,
    /// What is wrong with it.
    pub problem: ForwardProblem,
}

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// A byte stream (the default).
    #[default]
    Tcp,
    /// Datagrams (`udp/` prefix).
    Udp,
}

/// Where a forward listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BindAddr {
    /// No bind address given: loopback only (OpenSSH's default without
    /// `GatewayPorts`), both `127.0.0.1` and `::1` where available.
    Loopback,
    /// `*` or an empty bind address: every interface.
    All,
    /// An explicit host name or IP literal (IPv6 without brackets).
    Host(String),
}

/// A `-L` or `-R` forward: listen on `bind:port`, connect to `target`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortForward {
    /// TCP or UDP.
    pub transport: Transport,
    /// Where to listen (here for `-L`, on the server for `-R`).
    pub bind: BindAddr,
    /// The listen port; 0 only for `-R` (the server picks one).
    pub port: u16,
    /// Where to connect (from the server for `-L`, from here for `-R`).
    pub target: HostPort,
}

/// One forward, as given to `-L`, `-R`, `-D` or `-W`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Forward {
    /// `-L [udp/][bind:]port:host:hostport`.
    Local(PortForward),
    /// `-R [udp/][bind:]port:host:hostport`.
    Remote(PortForward),
    /// `-D [bind:]port`: a SOCKS5 proxy listening here.
    Dynamic {
        /// Where the SOCKS5 proxy listens.
        bind: BindAddr,
        /// Its port, 1-65535.
        port: u16,
    },
    /// `-W host:port`: stdin/stdout to one stream.
    Stdio(HostPort),
}

impl Forward {
    /// Parse the value of `flag` (the spec without the flag itself).
    pub fn parse(flag: ForwardFlag, spec: &str) -> Result<Forward, ForwardError> {
        parse(flag, spec).map_err(|problem| ForwardError { flag, problem })
    }

    /// The flag this forward is given with.
    pub fn flag(&self) -> ForwardFlag {
        match self {
            Forward::Local(_) => ForwardFlag::Local,
            Forward::Remote(_) => ForwardFlag::Remote,
            Forward::Dynamic { .. } => ForwardFlag::Dynamic,
            Forward::Stdio(_) => ForwardFlag::Stdio,
        }
    }

    /// TCP or UDP (`-D` and `-W` are TCP; SOCKS5 UDP is per request).
    pub fn transport(&self) -> Transport {
        match self {
            Forward::Local(p) | Forward::Remote(p) => p.transport,
            Forward::Dynamic { .. } | Forward::Stdio(_) => Transport::Tcp,
        }
    }
}

/// Prints the spec as [`Forward::parse`] reads it back, without the flag:
/// `udp/5353:10.0.0.1:53`. Print `"{} {}", f.flag(), f` for the whole option.
impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Forward::Local(p) | Forward::Remote(p) => {
                if p.transport == Transport::Udp {
                    f.write_str("udp/")?;
                }
                write_bind(f, &p.bind)?;
                write!(f, "{}:{}", p.port, p.target)
            }
            Forward::Dynamic { bind, port } => {
                write_bind(f, bind)?;
                write!(f, "{port}")
            }
            Forward::Stdio(hp) => write!(f, "{hp}"),
        }
    }
}

fn write_bind(f: &mut fmt::Formatter<'_>, bind: &BindAddr) -> fmt::Result {
    match bind {
        BindAddr::Loopback => Ok(()),
        BindAddr::All => f.write_str("*:"),
        BindAddr::Host(h) if h.contains(':') => write!(f, "[{h}]:"),
        BindAddr::Host(h) => write!(f, "{h}:"),
    }
}

/// A host name or IP literal as specs accept it: letters, digits, `.`, `-`,
/// `_`, at most 253 bytes; or an IPv6 literal (without brackets).
pub(crate) fn valid_host(h: &str) -> bool {
    if h.contains(':') {
        return h.parse::<Ipv6Addr>().is_ok();
    }
    !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// A port: 1 to 5 ASCII digits (no sign), as a number.
pub(crate) fn parse_port_digits(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One `:`-separated field; `bracketed` if it was written `[...]`.
#[derive(Clone, Copy)]
struct Field<'a> {
    text: &'a str,
    bracketed: bool,
}

/// Split on `:`, treating `[...]` as one field (OpenSSH's `hpdelim`).
fn split_fields(s: &str) -> Result<Vec<Field<'_>>, ForwardProblem> {
    let mut fields = Vec::new();
    let mut rest = s;
    loop {
        if let Some(inner) = rest.strip_prefix('[') {
            let close = inner.find(']').ok_or(ForwardProblem::Bracket)?;
            fields.push(Field {
                text: &inner[..close],
                bracketed: true,
            });
            let after = &inner[close + 1..];
            if after.is_empty() {
                return Ok(fields);
            }
            rest = after.strip_prefix(':').ok_or(ForwardProblem::Bracket)?;
        } else {
            let (text, next) = match rest.split_once(':') {
                Some((t, n)) => (t, Some(n)),
                None => (rest, None),
            };
            if text.contains('[') || text.contains(']') {
                return Err(ForwardProblem::Bracket);
            }
            fields.push(Field {
                text,
                bracketed: false,
            });
            match next {
                Some(n) => rest = n,
                None => return Ok(fields),
            }
        }
    }
}

fn bind_field(f: Field<'_>) -> Result<BindAddr, ForwardProblem> {
    if !f.bracketed && (f.text.is_empty() || f.text == "*") {
        return Ok(BindAddr::All);
    }
    if valid_host(f.text) {
        Ok(BindAddr::Host(f.text.to_owned()))
    } else {
        Err(ForwardProblem::Bind)
    }
}

fn host_field(f: Field<'_>) -> Result<String, ForwardProblem> {
    if valid_host(f.text) {
        Ok(f.text.to_owned())
    } else {
        Err(ForwardProblem::Host)
    }
}

fn port_field(f: Field<'_>, problem: ForwardProblem, zero_ok: bool) -> Result<u16, ForwardProblem> {
    if f.bracketed {
        return Err(problem);
    }
    match parse_port_digits(f.text) {
        Some(0) if !zero_ok => Err(problem),
        Some(p) => Ok(p),
        None => Err(problem),
    }
}

/// Strip `udp/` or `tcp/` (any case).
fn strip_transport(s: &str) -> (Transport, &str) {
    let lower = |n: usize| s.get(..n).map(str::to_ascii_lowercase);
    match lower(4).as_deref() {
        Some("udp/") => (Transport::Udp, &s[4..]),
        Some("tcp/") => (Transport::Tcp, &s[4..]),
        _ => (Transport::Tcp, s),
    }
}

fn parse(flag: ForwardFlag, spec: &str) -> Result<Forward, ForwardProblem> {
    let (transport, rest) = strip_transport(spec.trim());
    if rest.contains('/') {
        return Err(ForwardProblem::Slash);
    }
    if transport == Transport::Udp && matches!(flag, ForwardFlag::Dynamic | ForwardFlag::Stdio) {
        return Err(ForwardProblem::NoUdp);
    }
    let fields = split_fields(rest)?;
    match flag {
        ForwardFlag::Local | ForwardFlag::Remote => {
            let remote = flag == ForwardFlag::Remote;
            let (bind, f) = match fields.as_slice() {
                [b, p, h, hp] => (bind_field(*b)?, [*p, *h, *hp]),
                [p, h, hp] => (BindAddr::Loopback, [*p, *h, *hp]),
                [_] | [_, _] if remote => return Err(ForwardProblem::ReverseDynamic),
                _ => return Err(ForwardProblem::Shape),
            };
            let port = port_field(f[0], ForwardProblem::ListenPort, remote)?;
            let host = host_field(f[1])?;
            let host_port = port_field(f[2], ForwardProblem::TargetPort, false)?;
            let pf = PortForward {
                transport,
                bind,
                port,
                target: HostPort::new(&host, host_port),
            };
            Ok(if remote {
                Forward::Remote(pf)
            } else {
                Forward::Local(pf)
            })
        }
        ForwardFlag::Dynamic => {
            let (bind, p) = match fields.as_slice() {
                [b, p] => (bind_field(*b)?, *p),
                [p] => (BindAddr::Loopback, *p),
                _ => return Err(ForwardProblem::Shape),
            };
            let port = port_field(p, ForwardProblem::ListenPort, false)?;
            Ok(Forward::Dynamic { bind, port })
        }
        ForwardFlag::Stdio => {
            let (h, p) = match fields.as_slice() {
                [h, p] => (*h, *p),
                // `%h:%p` with an IPv6 `%h`: ssh does not add brackets.
                [first, .., last] if !first.bracketed => {
                    let (h, _) = rest.rsplit_once(':').ok_or(ForwardProblem::Shape)?;
                    if h.parse::<Ipv6Addr>().is_err() {
                        return Err(ForwardProblem::Shape);
                    }
                    let h = Field {
                        text: h,
                        bracketed: true,
                    };
                    (h, *last)
                }
                _ => return Err(ForwardProblem::Shape),
            };
            let host = host_field(h)?;
            let port = port_field(p, ForwardProblem::TargetPort, false)?;
            Ok(Forward::Stdio(HostPort::new(&host, port)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ForwardFlag::*;

    fn pf(transport: Transport, bind: BindAddr, port: u16, host: &str, hp: u16) -> PortForward {
        PortForward {
            transport,
            bind,
            port,
            target: HostPort::new(host, hp),
        }
    }

    fn err(flag: ForwardFlag, s: &str) -> ForwardProblem {
        Forward::parse(flag, s).unwrap_err().problem
    }

    #[test]
    fn local_forms() {
        use BindAddr::*;
        use Transport::*;
        let cases = [
            (
                "8080:example.com:80",
                pf(Tcp, Loopback, 8080, "example.com", 80),
            ),
            (
                "127.0.0.1:8080:web:80",
                pf(Tcp, Host("127.0.0.1".into()), 8080, "web", 80),
            ),
            (
                "[::1]:8080:[::1]:22",
                pf(Tcp, Host("::1".into()), 8080, "::1", 22),
            ),
            (":8080:h:1", pf(Tcp, All, 8080, "h", 1)),
            ("*:8080:h:1", pf(Tcp, All, 8080, "h", 1)),
            (
                "localhost:8080:h:1",
                pf(Tcp, Host("localhost".into()), 8080, "h", 1),
            ),
            (
                "[localhost]:8080:[h]:1",
                pf(Tcp, Host("localhost".into()), 8080, "h", 1),
            ),
            (
                "udp/5353:10.0.0.1:53",
                pf(Udp, Loopback, 5353, "10.0.0.1", 53),
            ),
            (
                "UDP/[::]:53:[2001:db8::1]:53",
                pf(Udp, Host("::".into()), 53, "2001:db8::1", 53),
            ),
            (
                "tcp/2222:10.0.0.2:22",
                pf(Tcp, Loopback, 2222, "10.0.0.2", 22),
            ),
        ];
        for (s, want) in cases {
            assert_eq!(
                Forward::parse(Local, s),
                Ok(Forward::Local(want.clone())),
                "{s}"
            );
            assert_eq!(Forward::parse(Remote, s), Ok(Forward::Remote(want)), "{s}");
        }
    }

    #[test]
    fn display() {
        let f = Forward::parse(Local, "udp/[::1]:5353:[fd00::1]:53").unwrap();
        assert_eq!(f.to_string(), "udp/[::1]:5353:[fd00::1]:53");
        assert_eq!(
            format!("{} {}", f.flag(), f),
            "-L udp/[::1]:5353:[fd00::1]:53"
        );
        let f = Forward::parse(Remote, ":80:h:8").unwrap();
        assert_eq!(f.to_string(), "*:80:h:8");
        assert_eq!(Forward::parse(Dynamic, "1080").unwrap().to_string(), "1080");
        assert_eq!(
            Forward::parse(Stdio, "::1:22").unwrap().to_string(),
            "[::1]:22"
        );
    }

    #[test]
    fn remote_port_zero_only() {
        assert!(Forward::parse(Remote, "0:h:22").is_ok());
        assert_eq!(err(Local, "0:h:22"), ForwardProblem::ListenPort);
        assert_eq!(err(Dynamic, "0"), ForwardProblem::ListenPort);
        assert_eq!(err(Local, "1:h:0"), ForwardProblem::TargetPort);
        assert_eq!(err(Remote, "1:h:0"), ForwardProblem::TargetPort);
    }

    #[test]
    fn dynamic_and_stdio() {
        assert_eq!(
            Forward::parse(Dynamic, "1080"),
            Ok(Forward::Dynamic {
                bind: BindAddr::Loopback,
                port: 1080
            })
        );
        assert_eq!(
            Forward::parse(Dynamic, "[::1]:1080"),
            Ok(Forward::Dynamic {
                bind: BindAddr::Host("::1".into()),
                port: 1080
            })
        );
        assert_eq!(
            Forward::parse(Dynamic, "*:1080"),
            Ok(Forward::Dynamic {
                bind: BindAddr::All,
                port: 1080
            })
        );
        assert_eq!(
            Forward::parse(Stdio, "host.lan:22"),
            Ok(Forward::Stdio(HostPort::new("host.lan", 22)))
        );
        assert_eq!(
            Forward::parse(Stdio, "[fe80::1]:22"),
            Ok(Forward::Stdio(HostPort::new("fe80::1", 22)))
        );
        assert_eq!(
            Forward::parse(Stdio, "2001:db8::7:2222"),
            Ok(Forward::Stdio(HostPort::new("2001:db8::7", 2222)))
        );
    }

    #[test]
    fn refusals_name_the_problem() {
        use ForwardProblem::*;
        let cases = [
            (Local, "8080", Shape),
            (Local, "8080:h", Shape),
            (Local, "a:b:8080:h:1", Shape),
            (Local, "8080:::1:22", Shape),
            (Local, "x:h:1", ListenPort),
            (Local, "+80:h:1", ListenPort),
            (Local, "65536:h:1", ListenPort),
            (Local, "80:h:http", TargetPort),
            (Local, "80::1", Host),
            (Local, "80:h h:1", Host),
            (Local, "[::1:80:h:1", Bracket),
            (Local, "[::1]x:80:h:1", Bracket),
            (Local, "a]:80:h:1", Bracket),
            (Local, "[nope!]:80:h:1", Bind),
            (Local, "80/::1/22", Slash),
            (Local, "sctp/80:h:1", Slash),
            (Local, "[80]:h:1", ListenPort),
            (Remote, "8080", ReverseDynamic),
            (Remote, "*:8080", ReverseDynamic),
            (Dynamic, "udp/1080", NoUdp),
            (Stdio, "udp/h:53", NoUdp),
            (Dynamic, "a:b:1080", Shape),
            (Dynamic, "[h]", ListenPort),
            (Stdio, "h", Shape),
            (Stdio, "h:0", TargetPort),
            (Stdio, "*:22", Host),
            (Stdio, "a:b:22", Shape),
            (Local, "", Shape),
        ];
        for (flag, s, want) in cases {
            assert_eq!(err(flag, s), want, "{flag} {s}");
        }
        let e = Forward::parse(Local, "8080").unwrap_err();
        assert_eq!(
            e.to_string(),
            "-L: wrong number of fields; expected -L [udp/][bind:]port:host:hostport (IPv6 in brackets)"
        );
        let e = Forward::parse(Dynamic, "udp/1080").unwrap_err();
        assert!(
            e.to_string().starts_with("-D: there is no udp/ form"),
            "{e}"
        );
    }

    fn arb_host() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<std::net::IpAddr>().prop_map(|a| a.to_string()),
            "[a-zA-Z0-9_-]{1,10}(\\.[a-zA-Z0-9_-]{1,10}){0,3}",
        ]
    }

    fn arb_bind() -> impl Strategy<Value = BindAddr> {
        prop_oneof![
            Just(BindAddr::Loopback),
            Just(BindAddr::All),
            arb_host().prop_map(BindAddr::Host),
        ]
    }

    fn arb_port_forward() -> impl Strategy<Value = PortForward> {
        let transport = prop_oneof![Just(Transport::Tcp), Just(Transport::Udp)];
        (transport, arb_bind(), 1u16.., arb_host(), 1u16..).prop_map(
            |(transport, bind, port, host, hp)| PortForward {
                transport,
                bind,
                port,
                target: HostPort::new(&host, hp),
            },
        )
    }

    fn arb_forward() -> impl Strategy<Value = Forward> {
        prop_oneof![
            arb_port_forward().prop_map(Forward::Local),
            (arb_port_forward(), any::<bool>()).prop_map(|(mut p, zero)| {
                if zero {
                    p.port = 0;
                }
                Forward::Remote(p)
            }),
            (arb_bind(), 1u16..).prop_map(|(bind, port)| Forward::Dynamic { bind, port }),
            (arb_host(), 1u16..).prop_map(|(h, p)| Forward::Stdio(HostPort::new(&h, p))),
        ]
    }

    proptest! {
        #[test]
        fn display_roundtrips(f in arb_forward()) {
            prop_assert_eq!(Forward::parse(f.flag(), &f.to_string()), Ok(f));
        }

        #[test]
        fn never_panics(s in "[\\[\\]:/*a-z0-9.udp]{0,30}") {
            for flag in [Local, Remote, Dynamic, Stdio] {
                if let Ok(f) = Forward::parse(flag, &s) {
                    prop_assert_eq!(f.flag(), flag);
                    prop_assert_eq!(Forward::parse(flag, &f.to_string()), Ok(f));
                }
            }
        }

        #[test]
        fn never_panics_any(s in ".{0,40}") {
            for flag in [Local, Remote, Dynamic, Stdio] {
                let _ = Forward::parse(flag, &s);
            }
        }
    }
}
