//! Routes and the router: how the door decides where a connection goes.
//!
//! A [`Route`] is a protocol plus optional filters (`sni=`, `alpn=`, `host=`,
//! `regex=`) and a backend. The [`Router`] tries routes in order on the bytes
//! received so far; the first route that matches wins. A route that cannot
//! decide yet (`NeedMore`) stops the walk, so a later route can never win over
//! an earlier one just because it decided on fewer bytes: the decision is the
//! same however the bytes were chunked.

use std::fmt;

use crate::probe::hello::{Hello, HelloParse, ProbeKey};
use crate::proxy_proto::ProxyVersion;
use crate::sniff::{http, tls, Protocol, Verdict};
use crate::spec::HostPort;
use crate::tunnel::ticket::{self, Ticket, TicketKey};

/// How many bytes a regex route looks at before it gives up waiting for a
/// newline.
pub const REGEX_WINDOW: usize = 256;

/// The most bytes the door reads before deciding: the largest ClientHello
/// ([`tls::MAX_HELLO_LEN`]) even when split into small records (5 bytes of
/// header each). Anything still undecided here is treated as final.
pub const MAX_SNIFF: usize = tls::MAX_HELLO_LEN + 4 * 1024;

/// A host name pattern: exact (`example.com`) or wildcard (`*.example.com`,
/// one or more labels). Matching is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern {
    pattern: String,
}

impl NamePattern {
    /// A pattern from what the user typed; lower-cased.
    pub fn new(pattern: &str) -> Self {
        NamePattern {
            pattern: pattern.trim_end_matches('.').to_ascii_lowercase(),
        }
    }

    /// Does `name` match? `*.example.com` matches `a.example.com` and
    /// `a.b.example.com`, not `example.com`; `*` alone matches any name.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        if self.pattern == "*" {
            return true;
        }
        match self.pattern.strip_prefix("*.") {
            Some(suffix) => {
                name.len() > suffix.len() + 1
                    && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
                    && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
            None => name.eq_ignore_ascii_case(&self.pattern),
        }
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

/// One route: which first bytes it takes, and where they go.
#[derive(Debug, Clone)]
pub struct Route {
    /// The protocol sniffer that must match.
    pub protocol: Protocol,
    /// TLS only: the SNI must match this pattern.
    pub sni: Option<NamePattern>,
    /// TLS only: the client must offer this ALPN id.
    pub alpn: Option<String>,
    /// HTTP only: the Host header must match this pattern.
    pub host: Option<NamePattern>,
    /// The first bytes must match this regular expression.
    pub regex: Option<regex::bytes::Regex>,
    /// Where matching connections go.
    pub target: HostPort,
    /// Send a PROXY protocol header to the backend first.
    pub proxy_protocol: Option<ProxyVersion>,
}

impl Route {
    /// A route for `protocol` to `target`, with no filter.
    pub fn new(protocol: Protocol, target: HostPort) -> Self {
        Route {
            protocol,
            sni: None,
            alpn: None,
            host: None,
            regex: None,
            target,
            proxy_protocol: None,
        }
    }

    /// A route that takes whatever it is given (`anyprot`, or any route
    /// with a `regex=`): it must not pre-empt onedoor's own traffic.
    pub fn is_catch_all(&self) -> bool {
        self.protocol == Protocol::Anyprot || self.regex.is_some()
    }

    /// The route's name for logs and metrics: `tls,sni=a.example`.
    pub fn label(&self) -> String {
        let mut s = self.protocol.name().to_owned();
        if let Some(p) = &self.sni {
            s.push_str(&format!(",sni={p}"));
        }
        if let Some(p) = &self.alpn {
            s.push_str(&format!(",alpn={p}"));
        }
        if let Some(p) = &self.host {
            s.push_str(&format!(",host={p}"));
        }
        if let Some(r) = &self.regex {
            s.push_str(&format!(",regex={}", r.as_str()));
        }
        s
    }

    /// Does this route take a connection that starts with `buf`?
    /// `more` says whether more bytes may still come; when it is false,
    /// whatever is still undecided is a `NoMatch`.
    pub fn verdict(&self, buf: &[u8], more: bool) -> Verdict {
        let v = self.verdict_inner(buf);
        match v {
            Verdict::NeedMore if !more => Verdict::NoMatch,
            v => v,
        }
    }

    fn verdict_inner(&self, buf: &[u8]) -> Verdict {
        match self.protocol.sniff(buf) {
            Verdict::Match => {}
            other => return other,
        }
        if self.sni.is_some() || self.alpn.is_some() {
            match tls::parse_client_hello(buf) {
                tls::HelloParse::NeedMore => return Verdict::NeedMore,
                tls::HelloParse::NotTls => return Verdict::NoMatch,
                tls::HelloParse::Hello(info) => {
                    if let Some(p) = &self.sni {
                        match &info.sni {
                            Some(name) if p.matches(name) => {}
                            _ => return Verdict::NoMatch,
                        }
                    }
                    if let Some(id) = &self.alpn {
                        if !info.alpn.iter().any(|a| a == id) {
                            return Verdict::NoMatch;
                        }
                    }
                }
            }
        }
        if let Some(p) = &self.host {
            match http::parse_host(buf) {
                http::HostParse::NeedMore => return Verdict::NeedMore,
                http::HostParse::NotHttp | http::HostParse::Host(None) => return Verdict::NoMatch,
                http::HostParse::Host(Some(name)) => {
                    if !p.matches(&name) {
                        return Verdict::NoMatch;
                    }
                }
            }
        }
        if let Some(re) = &self.regex {
            if re.is_match(buf) {
                return Verdict::Match;
            }
            let window_full = buf.contains(&b'\n') || buf.len() >= REGEX_WINDOW;
            return if window_full {
                Verdict::NoMatch
            } else {
                Verdict::NeedMore
            };
        }
        Verdict::Match
    }
}

/// onedoor's own traffic, recognised before any user route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Own {
    /// A probe hello sealed with this server's key.
    Probe(Hello),
    /// A probe hello sealed with this server's key, in a newer version.
    ProbeUnsupported,
    /// A TLS ClientHello for one of serve's own names (the tunnel).
    Tls,
    /// A plain-HTTP WebSocket request whose path carries a ticket made
    /// with this server's key (the tunnel's `ws` transport). Its freshness
    /// is the shell's to check.
    Ws(Ticket),
}

/// What the door does with a connection, given its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Read more bytes first.
    NeedMore,
    /// onedoor's own traffic (tunnel, probe hello): handled by serve itself.
    Onedoor(Own),
    /// Route number `n` (an index into [`Router::routes`]) takes it.
    Route(usize),
    /// Nothing takes it: close and count.
    NoMatch,
}

/// How serve recognises its own traffic before user routes. Empty (the
/// default) unless the reflector or the tunnel is on.
#[derive(Debug, Clone, Default)]
pub struct OwnTraffic {
    /// TLS names serve terminates itself (the SNI of its certificate).
    pub names: Vec<NamePattern>,
    /// Also terminate TLS without SNI (when no user TLS route claims it).
    pub no_sni: bool,
    /// Answer probe hellos sealed with this key (`--reflect`).
    pub probe: Option<ProbeKey>,
    /// Take plain-HTTP WebSocket requests with a ticket under this key
    /// (`--tunnel`).
    pub ws: Option<TicketKey>,
}

/// Routes in order, first match wins.
#[derive(Debug, Clone, Default)]
pub struct Router {
    /// The routes, in the order they are tried.
    pub routes: Vec<Route>,
    /// onedoor's own traffic, recognised before any route.
    pub own: OwnTraffic,
}

impl Router {
    /// A router over `routes`, with no own traffic.
    pub fn new(routes: Vec<Route>) -> Self {
        Router {
            routes,
            own: OwnTraffic::default(),
        }
    }

    /// Decide on the bytes received so far. `more` is false when no more
    /// bytes will be waited for (peer closed its side, the sniff buffer is
    /// full, or the timeout hit with some bytes received).
    ///
    /// onedoor's own traffic comes first. While it cannot tell yet (a probe
    /// hello is 52 bytes), a built-in protocol's definite match still wins —
    /// a sealed hello never looks like one (`ProbeKey::seal` makes sure), so
    /// a 3-byte SOCKS5 greeting is not held up — but a catch-all (`anyprot`,
    /// `regex`) waits.
    pub fn decide(&self, buf: &[u8], more: bool) -> Decision {
        let more = more && buf.len() < MAX_SNIFF;
        let own_waiting = match self.own_verdict(buf) {
            OwnVerdict::Match(own) => return Decision::Onedoor(own),
            // A request line that may carry a ticket looks like HTTP: no
            // route may take it before the line is complete.
            OwnVerdict::NeedMore { hold_all: true } if more => return Decision::NeedMore,
            OwnVerdict::NeedMore { .. } => more,
            OwnVerdict::NoMatch => false,
        };
        self.decide_routes(buf, more, own_waiting)
    }

    /// The user routes alone, in order. `hold_catch_all`: a catch-all match
    /// waits (onedoor's own traffic may still be arriving).
    pub fn decide_routes(&self, buf: &[u8], more: bool, hold_catch_all: bool) -> Decision {
        let more = more && buf.len() < MAX_SNIFF;
        for (i, route) in self.routes.iter().enumerate() {
            match route.verdict(buf, more) {
                Verdict::Match if hold_catch_all && route.is_catch_all() => {
                    return Decision::NeedMore
                }
                Verdict::Match => return Decision::Route(i),
                Verdict::NeedMore => return Decision::NeedMore,
                Verdict::NoMatch => {}
            }
        }
        if hold_catch_all {
            Decision::NeedMore
        } else {
            Decision::NoMatch
        }
    }

    /// The first route for `protocol` (for `--on-timeout PROTO`).
    pub fn first_for(&self, protocol: Protocol) -> Option<usize> {
        self.routes.iter().position(|r| r.protocol == protocol)
    }

    fn own_verdict(&self, buf: &[u8]) -> OwnVerdict {
        let mut waiting = false;
        let mut hold_all = false;
        if let Some(key) = &self.own.probe {
            match key.parse(buf) {
                HelloParse::Hello(hello) => return OwnVerdict::Match(Own::Probe(hello)),
                HelloParse::Unsupported { .. } => return OwnVerdict::Match(Own::ProbeUnsupported),
                HelloParse::NeedMore => waiting = true,
                HelloParse::NotHello => {}
            }
        }
        if !self.own.names.is_empty() || self.own.no_sni {
            match tls::parse_client_hello(buf) {
                tls::HelloParse::NeedMore => waiting = true,
                tls::HelloParse::NotTls => {}
                tls::HelloParse::Hello(info) => match &info.sni {
                    Some(name) if self.own.names.iter().any(|p| p.matches(name)) => {
                        return OwnVerdict::Match(Own::Tls)
                    }
                    None if self.own.no_sni => return OwnVerdict::Match(Own::Tls),
                    _ => {}
                },
            }
        }
        if let Some(key) = &self.own.ws {
            match ticket::parse_request_line(buf, key) {
                ticket::RequestParse::Ticket(t) => return OwnVerdict::Match(Own::Ws(t)),
                ticket::RequestParse::NeedMore => {
                    waiting = true;
                    hold_all = true;
                }
                ticket::RequestParse::NotOurs => {}
            }
        }
        if waiting {
            OwnVerdict::NeedMore { hold_all }
        } else {
            OwnVerdict::NoMatch
        }
    }
}

enum OwnVerdict {
    /// `hold_all`: no route may decide yet (not even a built-in match).
    NeedMore {
        hold_all: bool,
    },
    Match(Own),
    NoMatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_names() {
        let p = NamePattern::new("*.Example.com");
        assert!(p.matches("a.example.com"));
        assert!(p.matches("a.b.EXAMPLE.com."));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("aexample.com"));
        assert!(NamePattern::new("x.org").matches("X.org"));
        assert!(NamePattern::new("*").matches("anything"));
    }

    #[test]
    fn anyprot_and_order() {
        let t = HostPort::new("127.0.0.1", 1);
        let r = Router::new(vec![Route::new(Protocol::Anyprot, t)]);
        assert_eq!(r.decide(b"", true), Decision::NeedMore);
        assert_eq!(r.decide(b"x", true), Decision::Route(0));
    }

    fn probe_router() -> (Router, ProbeKey) {
        let key = ProbeKey::new([7; 32]);
        let t = HostPort::new("127.0.0.1", 1);
        let mut r = Router::new(vec![
            Route::new(Protocol::Socks5, t.clone()),
            Route::new(Protocol::Anyprot, t),
        ]);
        r.own.probe = Some(key.clone());
        (r, key)
    }

    fn sealed(key: &ProbeKey) -> Vec<u8> {
        use crate::probe::hello::HelloKind;
        (0u8..=255)
            .find_map(|n| {
                key.seal(&Hello {
                    kind: HelloKind::Tcp,
                    port: 443,
                    nonce: [n; 16],
                    unix_secs: 1,
                    run: [1; 8],
                })
                .ok()
            })
            .unwrap()
            .to_vec()
    }

    #[test]
    fn probe_hello_comes_before_routes() {
        let (r, key) = probe_router();
        let hello = sealed(&key);
        for k in 1..hello.len() {
            assert_eq!(
                r.decide(&hello[..k], true),
                Decision::NeedMore,
                "prefix {k}"
            );
        }
        assert!(matches!(
            r.decide(&hello, true),
            Decision::Onedoor(Own::Probe(_))
        ));
    }

    #[test]
    fn builtin_match_is_not_held_by_probe_wait_but_catch_all_is() {
        let (r, _) = probe_router();
        // A SOCKS5 greeting is 3 bytes: it must not wait for 52.
        assert_eq!(r.decide(&[5, 1, 0], true), Decision::Route(0));
        // Garbage waits for the hello length, then goes to the catch-all.
        assert_eq!(r.decide(b"garbage", true), Decision::NeedMore);
        assert_eq!(r.decide(&[b'x'; 60], true), Decision::Route(1));
        assert_eq!(r.decide(b"garbage", false), Decision::Route(1));
    }
}
