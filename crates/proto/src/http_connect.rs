//! Reaching the door through an HTTP CONNECT proxy, as pure code: the proxy
//! URL (`--proxy http://user:pass@host:port`), which proxy the environment
//! asks for (`HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, with curl's rules), the
//! `CONNECT` request, and the proxy's reply head.
//!
//! The shell (`onedoor_net::connect::proxy`) connects to the proxy, sends
//! [`connect_request`], feeds what comes back to [`parse_connect_reply`] until
//! it stops saying [`ConnectReply::NeedMore`], and then speaks TLS to the door
//! over the same connection.
//!
//! Only plain HTTP proxies are supported (`http://`, or no scheme): TLS to the
//! proxy (`https://`) and SOCKS (`socks5://`) are refused with a message
//! saying so. Nothing here names onedoor on the wire: the request is what any
//! HTTP client sends.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use base64::Engine as _;
use ipnet::IpNet;

use crate::spec::{parse_port_digits, valid_host, HostPort};

/// The port of a proxy URL without one (curl's default).
pub const DEFAULT_PROXY_PORT: u16 = 1080;

/// The longest reply head accepted from a proxy; a longer one is
/// [`ConnectReply::NotHttp`].
pub const MAX_REPLY_HEAD: usize = 16 * 1024;

/// The most header lines accepted in a reply head.
const MAX_REPLY_HEADERS: usize = 64;

/// The longest reason phrase kept from a refusal (the rest is cut).
const MAX_REASON: usize = 120;

/// The environment variables naming the proxy, in the order they are
/// consulted (curl's: lower case first). The first non-empty one wins.
pub const PROXY_VARS: [&str; 4] = ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"];

/// The environment variables listing hosts that bypass the proxy, in the
/// order they are consulted. The first non-empty one wins.
pub const NO_PROXY_VARS: [&str; 2] = ["no_proxy", "NO_PROXY"];

/// A user name and password for the proxy (HTTP basic auth). `Debug` shows
/// the user, never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name, percent-decoded.
    pub user: String,
    /// The password, percent-decoded. Never logged.
    pub password: String,
}

impl Credentials {
    /// The value of a `Proxy-Authorization` header: `Basic base64(user:password)`.
    pub fn basic(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}

/// An HTTP proxy: `http://[USER[:PASS]@]HOST[:PORT][/]`.
///
/// `Display` shows `http://user:***@host:port` (the password masked);
/// [`ProxyUrl::to_url`] gives the full URL back, secret included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port ([`DEFAULT_PROXY_PORT`] when the URL has none).
    pub port: u16,
    /// Basic-auth credentials, if the URL has a user part.
    pub auth: Option<Credentials>,
}

/// Why a proxy URL was refused. Messages never repeat the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyUrlError {
    /// Nothing was given.
    #[error("the proxy URL is empty (expected http://[USER:PASS@]HOST[:PORT])")]
    Empty,
    /// A scheme other than `http://`.
    #[error("{}", unsupported_scheme(.scheme))]
    UnsupportedScheme {
        /// The scheme as written (lower-cased).
        scheme: String,
    },
    /// The host is not a host name or IP address.
    #[error("proxy URL: `{0}` is not a valid host name or address (IPv6 goes in brackets: http://[::1]:3128)")]
    BadHost(String),
    /// The port is not 1-65535.
    #[error("proxy URL: port `{0}` is not 1-65535")]
    BadPort(String),
    /// The user name or password has a bad `%` escape, or decodes to
    /// something that is not UTF-8.
    #[error("proxy URL: the user name or password has a bad %-escape (write % as %25)")]
    BadEscape,
    /// The user name or password contains `/`, `?` or `#` as is.
    #[error("proxy URL: the user name or password contains '/', '?' or '#': percent-encode them (%2F, %3F, %23)")]
    UnescapedCredentials,
    /// Something follows `HOST:PORT` (a path, query or fragment).
    #[error("proxy URL: unexpected `{0}` after HOST:PORT (a proxy URL is http://[USER:PASS@]HOST[:PORT])")]
    Trailing(String),
}

fn unsupported_scheme(scheme: &str) -> String {
    let what = match scheme {
        "https" => " (TLS to the proxy)",
        s if s.starts_with("socks") => " (SOCKS)",
        _ => "",
    };
    format!(
        "{scheme}:// proxies{what} are not supported: only HTTP CONNECT proxies are, \
         written http://[USER:PASS@]HOST[:PORT]"
    )
}

impl ProxyUrl {
    /// Parse a proxy URL as curl takes it: `http://` or no scheme; the
    /// default port is 1080; IPv6 in brackets; user and password
    /// percent-decoded; an empty path (or `/`) allowed, nothing else.
    pub fn parse(s: &str) -> Result<ProxyUrl, ProxyUrlError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ProxyUrlError::Empty);
        }
        let rest = match s.split_once("://") {
            Some((scheme, rest)) => {
                let scheme = scheme.to_ascii_lowercase();
                if scheme != "http" {
                    return Err(ProxyUrlError::UnsupportedScheme { scheme });
                }
                rest
            }
            None => s,
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if tail.contains('@') {
            return Err(ProxyUrlError::UnescapedCredentials);
        }
        if !tail.is_empty() && tail != "/" {
            return Err(ProxyUrlError::Trailing(tail.to_owned()));
        }
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let auth = match userinfo {
            None | Some("") => None,
            Some(info) => {
                let (user, password) = info.split_once(':').unwrap_or((info, ""));
                Some(Credentials {
                    user: percent_decode(user)?,
                    password: percent_decode(password)?,
                })
            }
        };
        let (host, port) = split_host_port(hostport)?;
        Ok(ProxyUrl { host, port, auth })
    }

    /// The proxy's address (no credentials): what error messages name.
    pub fn addr(&self) -> HostPort {
        HostPort::new(&self.host, self.port)
    }

    /// The full URL, password included (percent-encoded): parses back to an
    /// equal value. Do not log it.
    pub fn to_url(&self) -> String {
        match &self.auth {
            Some(c) => format!(
                "http://{}:{}@{}",
                percent_encode(&c.user),
                percent_encode(&c.password),
                self.addr()
            ),
            None => format!("http://{}", self.addr()),
        }
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.auth {
            Some(c) => write!(f, "http://{}:***@{}", percent_encode(&c.user), self.addr()),
            None => write!(f, "http://{}", self.addr()),
        }
    }
}

impl std::str::FromStr for ProxyUrl {
    type Err = ProxyUrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProxyUrl::parse(s)
    }
}

/// `HOST[:PORT]` or `[V6][:PORT]` of a proxy URL.
fn split_host_port(s: &str) -> Result<(String, u16), ProxyUrlError> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| ProxyUrlError::BadHost(s.to_owned()))?;
        if h.parse::<Ipv6Addr>().is_err() {
            return Err(ProxyUrlError::BadHost(s.to_owned()));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| ProxyUrlError::BadHost(s.to_owned()))?,
            ),
        };
        (h, port)
    } else {
        match s.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h, Some(p)),
            Some(_) => return Err(ProxyUrlError::BadHost(s.to_owned())),
            None => (s, None),
        }
    };
    if host.is_empty() || !valid_host(host) {
        return Err(ProxyUrlError::BadHost(host.to_owned()));
    }
    let port = match port {
        None => DEFAULT_PROXY_PORT,
        Some(p) => match parse_port_digits(p) {
            Some(n) if n != 0 => n,
            _ => return Err(ProxyUrlError::BadPort(p.to_owned())),
        },
    };
    Ok((host.to_owned(), port))
}

fn percent_decode(s: &str) -> Result<String, ProxyUrlError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(ProxyUrlError::BadEscape)?;
            let hi = hex_value(hex[0]).ok_or(ProxyUrlError::BadEscape)?;
            let lo = hex_value(hex[1]).ok_or(ProxyUrlError::BadEscape)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ProxyUrlError::BadEscape)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Everything but RFC 3986's unreserved characters, as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(c));
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// Does `NO_PROXY` (the value of the variable) exempt `host:port` from the
/// proxy? curl's rules:
///
/// - entries are separated by commas (and white space); empty ones are
///   ignored; `*` matches everything;
/// - a name matches itself and its subdomains (`example.com` matches
///   `example.com` and `www.example.com`, not `badexample.com`); a leading
///   `.` (or `*.`) is allowed and ignored; case and a trailing `.` do not
///   matter;
/// - when `host` is an IP address, only IP entries match it: an address
///   (IPv6 with or without brackets) or a CIDR block (`10.0.0.0/8`,
///   `fe80::/10`). Names are not resolved;
/// - an entry may end in `:PORT` (`example.com:443`, `[::1]:8080`): it then
///   matches that port only.
pub fn no_proxy_matches(no_proxy: &str, host: &str, port: u16) -> bool {
    let host = normalize_name(host);
    let host_ip = host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    no_proxy
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|e| !e.is_empty())
        .any(|entry| entry_matches(entry, &host, host_ip, port))
}

/// Lower case, no brackets, no trailing dot.
fn normalize_name(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s);
    s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase()
}

fn entry_matches(entry: &str, host: &str, host_ip: Option<IpAddr>, port: u16) -> bool {
    if entry == "*" {
        return true;
    }
    let Some((pattern, want_port)) = split_entry_port(entry) else {
        return false;
    };
    if want_port.is_some_and(|p| p != port) {
        return false;
    }
    if let Some(ip) = host_ip {
        if let Ok(net) = pattern.parse::<IpNet>() {
            return net.contains(&ip) || ip_in_mapped(&net, ip);
        }
        return pattern
            .parse::<IpAddr>()
            .is_ok_and(|p| p.to_canonical() == ip);
    }
    let pattern = normalize_name(pattern);
    let pattern = pattern
        .strip_prefix("*.")
        .or_else(|| pattern.strip_prefix('.'))
        .unwrap_or(&pattern);
    if pattern.is_empty() {
        return false;
    }
    host == pattern
        || host
            .strip_suffix(pattern)
            .is_some_and(|head| head.ends_with('.'))
}

/// A CIDR written as an IPv4-mapped IPv6 block matches the IPv4 address too
/// (hosts are compared in canonical form).
fn ip_in_mapped(net: &IpNet, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpNet::V6(n), IpAddr::V4(v4)) => n.contains(&v4.to_ipv6_mapped()),
        _ => false,
    }
}

/// An entry's pattern and optional port. `None` for an entry with a port
/// that is not a number (it matches nothing).
fn split_entry_port(entry: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = entry.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        return match after {
            "" => Some((inner, None)),
            p => Some((inner, Some(parse_port_digits(p.strip_prefix(':')?)?))),
        };
    }
    match entry.matches(':').count() {
        0 => Some((entry, None)),
        // host:port or a.b.c.d:port
        1 => {
            let (h, p) = entry.split_once(':')?;
            Some((h, Some(parse_port_digits(p)?)))
        }
        // A bare IPv6 address or block: no port.
        _ => Some((entry, None)),
    }
}

/// The value of the first non-empty proxy variable ([`PROXY_VARS`]), and
/// its name, for messages like "HTTPS_PROXY: …".
pub fn proxy_setting(env: &impl Fn(&str) -> Option<String>) -> Option<(&'static str, String)> {
    PROXY_VARS.iter().find_map(|&name| {
        env(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (name, v))
    })
}

/// Which proxy applies to `door_host:door_port`, given a lookup of
/// environment variables (`|k| std::env::var(k).ok()` in the binary; a map
/// in tests).
///
/// `None`: no proxy variable is set, or `NO_PROXY` exempts the door.
/// `Some(Err)`: the variable is set but unusable (for instance
/// `ALL_PROXY=socks5://…`): the caller should say so rather than go
/// direct, since on a proxy-only network going direct just hangs.
pub fn proxy_from_env(
    door_host: &str,
    door_port: u16,
    env: impl Fn(&str) -> Option<String>,
) -> Option<Result<ProxyUrl, ProxyUrlError>> {
    let (_, value) = proxy_setting(&env)?;
    let no_proxy = NO_PROXY_VARS
        .iter()
        .find_map(|&name| env(name).filter(|v| !v.trim().is_empty()))
        .unwrap_or_default();
    if no_proxy_matches(&no_proxy, door_host, door_port) {
        return None;
    }
    Some(ProxyUrl::parse(&value))
}

/// The `CONNECT` request for `door_host:door_port`, with a
/// `Proxy-Authorization: Basic` header when `auth` is given:
///
/// ```text
/// CONNECT door.example:443 HTTP/1.1\r\n
/// Host: door.example:443\r\n
/// \r\n
/// ```
///
/// IPv6 hosts are bracketed. Bytes a host name cannot contain (controls,
/// spaces, `/`, `@`…) are dropped, so a hostile name cannot add header lines
/// (hosts are validated long before this anyway). Nothing names onedoor.
pub fn connect_request(door_host: &str, door_port: u16, auth: Option<&Credentials>) -> Vec<u8> {
    let host: String = door_host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        .collect();
    let authority = if host.contains(':') {
        format!("[{host}]:{door_port}")
    } else {
        format!("{host}:{door_port}")
    };
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(c) = auth {
        req.push_str("Proxy-Authorization: ");
        req.push_str(&c.basic());
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// What the proxy's reply says so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectReply {
    /// The head is not complete yet: read more (unless the proxy closed).
    NeedMore,
    /// A 2xx: the tunnel is open. The door's bytes start at `head_len`
    /// (anything after it is already the door talking).
    Established {
        /// Length of the reply head, blank line included.
        head_len: usize,
    },
    /// Any other status: the proxy will not (or cannot) connect.
    Refused {
        /// The status code.
        status: u16,
        /// The reason phrase, control characters removed, cut at 120
        /// characters; may be empty.
        reason: String,
        /// 407 (Proxy Authentication Required), or 401, which some proxies
        /// (tinyproxy) send for wrong credentials: the credentials are
        /// missing or refused.
        auth_required: bool,
    },
    /// Not an HTTP response, or a head longer than [`MAX_REPLY_HEAD`]:
    /// whatever answered is not an HTTP proxy.
    NotHttp,
}

/// Read the proxy's reply to `CONNECT` from the bytes received so far
/// (all of them, from the first). Prefix-consistent: once it says anything
/// but [`ConnectReply::NeedMore`], more bytes never change the answer, so it
/// can be fed as bytes arrive. Only the first [`MAX_REPLY_HEAD`] bytes are
/// looked at; a head that does not end within them is
/// [`ConnectReply::NotHttp`].
pub fn parse_connect_reply(buf: &[u8]) -> ConnectReply {
    let window = &buf[..buf.len().min(MAX_REPLY_HEAD)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_REPLY_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(window) {
        Ok(httparse::Status::Complete(head_len)) => {
            let Some(status) = response.code else {
                return ConnectReply::NotHttp;
            };
            if (200..300).contains(&status) {
                ConnectReply::Established { head_len }
            } else {
                ConnectReply::Refused {
                    status,
                    reason: clean_reason(response.reason.unwrap_or("")),
                    auth_required: matches!(status, 401 | 407),
                }
            }
        }
        Ok(httparse::Status::Partial) if buf.len() < MAX_REPLY_HEAD => ConnectReply::NeedMore,
        Ok(httparse::Status::Partial) | Err(_) => ConnectReply::NotHttp,
    }
}

fn clean_reason(reason: &str) -> String {
    reason
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON)
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn url(host: &str, port: u16, auth: Option<(&str, &str)>) -> ProxyUrl {
        ProxyUrl {
            host: host.into(),
            port,
            auth: auth.map(|(u, p)| Credentials {
                user: u.into(),
                password: p.into(),
            }),
        }
    }

    #[test]
    fn parses_proxy_urls() {
        let cases: &[(&str, ProxyUrl)] = &[
            (
                "http://proxy.example:3128",
                url("proxy.example", 3128, None),
            ),
            (
                "HTTP://proxy.example:3128/",
                url("proxy.example", 3128, None),
            ),
            ("proxy.example:3128", url("proxy.example", 3128, None)),
            ("proxy.example", url("proxy.example", 1080, None)),
            ("http://proxy.example", url("proxy.example", 1080, None)),
            ("  http://10.0.0.1:8080  ", url("10.0.0.1", 8080, None)),
            ("http://[::1]:3128", url("::1", 3128, None)),
            ("http://[2001:db8::1]", url("2001:db8::1", 1080, None)),
            (
                "http://user:pass@proxy:3128",
                url("proxy", 3128, Some(("user", "pass"))),
            ),
            (
                "http://us%40er:p%3Aa%2Fss%25@proxy:3128",
                url("proxy", 3128, Some(("us@er", "p:a/ss%"))),
            ),
            // A raw '@' in the password: the last '@' ends the user part.
            (
                "http://user:p@ss@proxy:3128",
                url("proxy", 3128, Some(("user", "p@ss"))),
            ),
            (
                "http://user@proxy:3128",
                url("proxy", 3128, Some(("user", ""))),
            ),
            ("http://@proxy:3128", url("proxy", 3128, None)),
            ("user:pass@[::1]", url("::1", 1080, Some(("user", "pass")))),
            (
                "http://%C3%A9t%C3%A9:%E2%82%AC@proxy",
                url("proxy", 1080, Some(("été", "€"))),
            ),
        ];
        for (s, want) in cases {
            assert_eq!(ProxyUrl::parse(s).as_ref(), Ok(want), "{s}");
        }
    }

    #[test]
    fn refuses_bad_proxy_urls() {
        use ProxyUrlError::*;
        let cases: &[(&str, ProxyUrlError)] = &[
            ("", Empty),
            ("   ", Empty),
            (
                "https://proxy:3128",
                UnsupportedScheme {
                    scheme: "https".into(),
                },
            ),
            (
                "SOCKS5://proxy:1080",
                UnsupportedScheme {
                    scheme: "socks5".into(),
                },
            ),
            (
                "socks5h://proxy:1080",
                UnsupportedScheme {
                    scheme: "socks5h".into(),
                },
            ),
            ("http://", BadHost("".into())),
            ("http://:3128", BadHost("".into())),
            ("http://pro xy:3128", BadHost("pro xy".into())),
            ("http://::1:3128", BadHost("::1:3128".into())),
            ("http://[::1:3128", BadHost("[::1:3128".into())),
            ("http://[not-v6]:3128", BadHost("[not-v6]:3128".into())),
            ("http://[::1]3128", BadHost("[::1]3128".into())),
            ("http://proxy:", BadPort("".into())),
            ("http://proxy:0", BadPort("0".into())),
            ("http://proxy:65536", BadPort("65536".into())),
            ("http://proxy:+80", BadPort("+80".into())),
            ("http://proxy:http", BadPort("http".into())),
            ("http://u:%zz@proxy", BadEscape),
            ("http://u:%4@proxy", BadEscape),
            ("http://u:%FF@proxy", BadEscape),
            ("http://u:pa/ss@proxy", UnescapedCredentials),
            ("http://u:pa#ss@proxy", UnescapedCredentials),
            ("http://proxy:3128/path", Trailing("/path".into())),
            ("http://proxy:3128?x=1", Trailing("?x=1".into())),
        ];
        for (s, want) in cases {
            assert_eq!(ProxyUrl::parse(s).as_ref(), Err(want), "{s}");
        }
    }

    #[test]
    fn errors_read_well_and_keep_secrets() {
        let e = ProxyUrl::parse("https://proxy:3128").unwrap_err();
        assert_eq!(
            e.to_string(),
            "https:// proxies (TLS to the proxy) are not supported: only HTTP CONNECT \
             proxies are, written http://[USER:PASS@]HOST[:PORT]"
        );
        let e = ProxyUrl::parse("socks5://proxy:1080").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("socks5:// proxies (SOCKS) are not supported"));
        for s in [
            "http://u:SECRET%zz@proxy",
            "http://u:SECRET/x@proxy",
            "http://u:SECRET@pro xy",
            "http://u:SECRET@proxy:99999",
        ] {
            let e = ProxyUrl::parse(s).unwrap_err().to_string();
            assert!(!e.contains("SECRET"), "{e}");
        }
    }

    #[test]
    fn display_and_debug_hide_the_password() {
        let u = ProxyUrl::parse("http://alice:S3CRET@proxy.example:3128").unwrap();
        assert_eq!(u.to_string(), "http://alice:***@proxy.example:3128");
        assert!(!format!("{u:?}").contains("S3CRET"));
        assert_eq!(u.to_url(), "http://alice:S3CRET@proxy.example:3128");
        assert_eq!(u.addr().to_string(), "proxy.example:3128");
        let v6 = ProxyUrl::parse("http://[::1]:8080").unwrap();
        assert_eq!(v6.to_string(), "http://[::1]:8080");
        assert_eq!(v6.to_url(), "http://[::1]:8080");
    }

    #[test]
    fn basic_auth_header() {
        let c = Credentials {
            user: "Aladdin".into(),
            password: "open sesame".into(),
        };
        assert_eq!(c.basic(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }

    #[test]
    fn no_proxy_table() {
        // (NO_PROXY, host, port, bypass?)
        let cases: &[(&str, &str, u16, bool)] = &[
            ("", "example.com", 443, false),
            ("*", "example.com", 443, true),
            ("*", "10.1.2.3", 443, true),
            ("localhost,*", "example.com", 443, true),
            ("example.com", "example.com", 443, true),
            ("example.com", "www.example.com", 443, true),
            ("example.com", "a.b.example.com", 443, true),
            ("example.com", "badexample.com", 443, false),
            ("example.com", "example.com.evil", 443, false),
            ("example.com", "example.org", 443, false),
            (".example.com", "example.com", 443, true),
            (".example.com", "www.example.com", 443, true),
            ("*.example.com", "www.example.com", 443, true),
            ("EXAMPLE.com", "www.Example.COM", 443, true),
            ("example.com.", "www.example.com", 443, true),
            ("example.com", "www.example.com.", 443, true),
            ("www.example.com", "example.com", 443, false),
            (" foo , example.com ", "example.com", 443, true),
            ("foo example.com", "example.com", 443, true),
            (",,,", "example.com", 443, false),
            (".", "example.com", 443, false),
            ("example.com:443", "example.com", 443, true),
            ("example.com:443", "example.com", 8443, false),
            ("example.com:https", "example.com", 443, false),
            ("10.1.2.3", "10.1.2.3", 443, true),
            ("10.1.2.3", "10.1.2.4", 443, false),
            ("10.1.2.3:443", "10.1.2.3", 443, true),
            ("10.1.2.3:443", "10.1.2.3", 80, false),
            ("10.0.0.0/8", "10.200.1.1", 443, true),
            ("10.0.0.0/8", "11.0.0.1", 443, false),
            ("192.168.0.0/16,::1", "192.168.4.4", 22, true),
            ("::1", "::1", 443, true),
            ("::1", "[::1]", 443, true),
            ("[::1]", "::1", 443, true),
            ("[::1]:8080", "::1", 8080, true),
            ("[::1]:8080", "::1", 443, false),
            ("fe80::/10", "fe80::1", 443, true),
            ("fe80::/10", "2001:db8::1", 443, false),
            ("2001:db8::/32", "2001:db8:1::5", 443, true),
            ("10.0.0.0/8", "::ffff:10.1.1.1", 443, true),
            ("::ffff:10.0.0.0/104", "10.1.1.1", 443, true),
            // IP hosts only match IP entries; names are not resolved.
            ("localhost", "127.0.0.1", 443, false),
            ("127.0.0.1", "localhost", 443, false),
            // A suffix that is not a whole label.
            ("0.1", "10.0.0.1", 443, false),
            ("ample.com", "example.com", 443, false),
            // Malformed entries match nothing, the rest still works.
            ("[::1, example.com", "example.com", 443, true),
            ("10.0.0.0/33", "10.0.0.1", 443, false),
        ];
        for &(list, host, port, want) in cases {
            assert_eq!(
                no_proxy_matches(list, host, port),
                want,
                "NO_PROXY={list:?} host={host} port={port}"
            );
        }
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn proxy_from_env_rules() {
        let p = |s: &str| Some(ProxyUrl::parse(s));
        assert_eq!(proxy_from_env("door.example", 443, env(&[])), None);
        assert_eq!(
            proxy_from_env("door.example", 443, env(&[("HTTPS_PROXY", "proxy:3128")])),
            p("proxy:3128")
        );
        assert_eq!(
            proxy_from_env("door.example", 443, env(&[("ALL_PROXY", "proxy:3128")])),
            p("proxy:3128")
        );
        assert_eq!(
            proxy_from_env("door.example", 443, env(&[("all_proxy", "proxy:3128")])),
            p("proxy:3128")
        );
        // HTTP_PROXY is for plain HTTP: not ours.
        assert_eq!(
            proxy_from_env("door.example", 443, env(&[("HTTP_PROXY", "proxy:3128")])),
            None
        );
        // Lower case first, HTTPS before ALL; empty values are unset.
        assert_eq!(
            proxy_from_env(
                "door.example",
                443,
                env(&[
                    ("https_proxy", "a:1"),
                    ("HTTPS_PROXY", "b:2"),
                    ("ALL_PROXY", "c:3")
                ])
            ),
            p("a:1")
        );
        assert_eq!(
            proxy_from_env(
                "door.example",
                443,
                env(&[
                    ("https_proxy", " "),
                    ("HTTPS_PROXY", "b:2"),
                    ("ALL_PROXY", "c:3")
                ])
            ),
            p("b:2")
        );
        assert_eq!(
            proxy_from_env(
                "door.example",
                443,
                env(&[("all_proxy", "c:3"), ("HTTPS_PROXY", "b:2")])
            ),
            p("b:2")
        );
        // NO_PROXY, either case; the lower-case one wins when both are set.
        for var in ["NO_PROXY", "no_proxy"] {
            assert_eq!(
                proxy_from_env(
                    "door.example",
                    443,
                    env(&[("HTTPS_PROXY", "b:2"), (var, "localhost,.example")])
                ),
                None
            );
        }
        assert_eq!(
            proxy_from_env(
                "door.example",
                443,
                env(&[
                    ("HTTPS_PROXY", "b:2"),
                    ("no_proxy", "other"),
                    ("NO_PROXY", "*")
                ])
            ),
            p("b:2")
        );
        // A NO_PROXY'd door does not care that the proxy variable is bad.
        assert_eq!(
            proxy_from_env(
                "10.0.0.7",
                443,
                env(&[("ALL_PROXY", "socks5://x"), ("NO_PROXY", "10.0.0.0/8")])
            ),
            None
        );
        // An unusable proxy is reported, not silently skipped.
        assert_eq!(
            proxy_from_env(
                "door.example",
                443,
                env(&[("ALL_PROXY", "socks5://x:1080")])
            ),
            Some(Err(ProxyUrlError::UnsupportedScheme {
                scheme: "socks5".into()
            }))
        );
        assert_eq!(
            proxy_setting(&env(&[("ALL_PROXY", "x")])),
            Some(("ALL_PROXY", "x".to_owned()))
        );
    }

    #[test]
    fn connect_requests() {
        assert_eq!(
            connect_request("door.example", 443, None),
            b"CONNECT door.example:443 HTTP/1.1\r\nHost: door.example:443\r\n\r\n"
        );
        assert_eq!(
            connect_request("2001:db8::1", 443, None),
            b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n"
        );
        assert_eq!(
            connect_request("[::1]", 22, None),
            b"CONNECT [::1]:22 HTTP/1.1\r\nHost: [::1]:22\r\n\r\n"
        );
        let c = Credentials {
            user: "Aladdin".into(),
            password: "open sesame".into(),
        };
        assert_eq!(
            connect_request("10.0.0.1", 8443, Some(&c)),
            &b"CONNECT 10.0.0.1:8443 HTTP/1.1\r\nHost: 10.0.0.1:8443\r\n\
               Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"[..]
        );
        // No header injection through the host.
        let evil = connect_request("a\r\nX-Evil: 1\r\n", 443, None);
        assert_eq!(
            evil,
            b"CONNECT [aX-Evil:1]:443 HTTP/1.1\r\nHost: [aX-Evil:1]:443\r\n\r\n"
        );
    }

    #[test]
    fn connect_request_parses_as_http() {
        let c = Credentials {
            user: "u".into(),
            password: "p".into(),
        };
        let req = connect_request("door.example", 443, Some(&c));
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut r = httparse::Request::new(&mut headers);
        assert_eq!(r.parse(&req), Ok(httparse::Status::Complete(req.len())));
        assert_eq!(r.method, Some("CONNECT"));
        assert_eq!(r.path, Some("door.example:443"));
        assert!(!String::from_utf8_lossy(&req)
            .to_ascii_lowercase()
            .contains("onedoor"));
    }

    #[test]
    fn replies() {
        use ConnectReply::*;
        let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
        assert_eq!(parse_connect_reply(ok), Established { head_len: ok.len() });
        let mut with_banner = ok.to_vec();
        with_banner.extend_from_slice(b"SSH-2.0-x\r\n");
        assert_eq!(
            parse_connect_reply(&with_banner),
            Established { head_len: ok.len() }
        );
        let tiny = b"HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy/1.11.1\r\n\r\n";
        assert_eq!(
            parse_connect_reply(tiny),
            Established {
                head_len: tiny.len()
            }
        );
        assert_eq!(
            parse_connect_reply(b"HTTP/1.1 204\r\n\r\n"),
            Established { head_len: 16 }
        );
        assert_eq!(
            parse_connect_reply(b"HTTP/1.1 200 OK\n\n"),
            Established { head_len: 17 }
        );
        assert_eq!(
            parse_connect_reply(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!"),
            Refused {
                status: 403,
                reason: "Forbidden".into(),
                auth_required: false
            }
        );
        assert_eq!(
            parse_connect_reply(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                  Proxy-Authenticate: Basic realm=\"x\"\r\n\r\n"
            ),
            Refused {
                status: 407,
                reason: "Proxy Authentication Required".into(),
                auth_required: true
            }
        );
        assert_eq!(
            parse_connect_reply(b"HTTP/1.0 401 Unauthorized\r\n\r\n"),
            Refused {
                status: 401,
                reason: "Unauthorized".into(),
                auth_required: true
            }
        );
        assert_eq!(
            parse_connect_reply(b"HTTP/1.1 502 \r\n\r\n"),
            Refused {
                status: 502,
                reason: "".into(),
                auth_required: false
            }
        );
        for partial in [
            &b""[..],
            b"H",
            b"HTTP/1.",
            b"HTTP/1.1 20",
            b"HTTP/1.1 200 OK",
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\nVia: x\r\n\r",
        ] {
            assert_eq!(parse_connect_reply(partial), NeedMore, "{partial:?}");
        }
        for junk in [
            &b"SSH-2.0-OpenSSH_9.6\r\n"[..],
            b"\x16\x03\x01\x00\x05",
            b"\x15\x03\x03\x00\x02\x02\x28",
            b"HTTP/2 200\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"GET / HTTP/1.1\r\n",
            b"<html>",
        ] {
            assert_eq!(parse_connect_reply(junk), NotHttp, "{junk:?}");
        }
    }

    #[test]
    fn long_heads_are_not_http() {
        let mut head = b"HTTP/1.1 200 OK\r\nX-Pad: ".to_vec();
        head.resize(MAX_REPLY_HEAD - 1, b'a');
        assert_eq!(parse_connect_reply(&head), ConnectReply::NeedMore);
        head.push(b'a');
        assert_eq!(parse_connect_reply(&head), ConnectReply::NotHttp);
        head.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_connect_reply(&head), ConnectReply::NotHttp);
        // Exactly at the limit is still fine.
        let mut head = b"HTTP/1.1 200 OK\r\nX-Pad: ".to_vec();
        head.resize(MAX_REPLY_HEAD - 4, b'a');
        head.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            parse_connect_reply(&head),
            ConnectReply::Established {
                head_len: MAX_REPLY_HEAD
            }
        );
    }

    #[test]
    fn reasons_are_cleaned() {
        let mut r = b"HTTP/1.1 403 ".to_vec();
        r.extend_from_slice(&[b'x'; 500]);
        r.extend_from_slice(b"\r\n\r\n");
        match parse_connect_reply(&r) {
            ConnectReply::Refused { reason, .. } => assert_eq!(reason.len(), MAX_REASON),
            other => panic!("{other:?}"),
        }
        match parse_connect_reply(b"HTTP/1.1 403 bad\tthing\r\n\r\n") {
            ConnectReply::Refused { reason, .. } => assert_eq!(reason, "badthing"),
            other => panic!("{other:?}"),
        }
    }

    // ---- property tests ----

    fn reply_head() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![Just("HTTP/1.1"), Just("HTTP/1.0")],
            100u16..600,
            "[A-Za-z ]{0,20}",
            proptest::collection::vec(("[A-Za-z-]{1,10}", "[ -~]{0,20}"), 0..5),
            prop_oneof![Just("\r\n"), Just("\n")],
        )
            .prop_map(|(version, status, reason, headers, eol)| {
                let mut s = format!("{version} {status} {reason}{eol}");
                for (k, v) in headers {
                    s.push_str(&format!("{k}: {}{eol}", v.trim()));
                }
                s.push_str(eol);
                s.into_bytes()
            })
    }

    fn reply_stream() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (reply_head(), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(
                |(mut h, tail)| {
                    h.extend(tail);
                    h
                }
            ),
            // A head with one byte changed.
            (reply_head(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut h, i, b)| {
                let i = i.index(h.len());
                h[i] = b;
                h
            }),
            proptest::collection::vec(any::<u8>(), 0..200),
        ]
    }

    fn host() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z0-9]{1,6}){0,3}",
            any::<std::net::Ipv4Addr>().prop_map(|ip| ip.to_string()),
            any::<Ipv6Addr>().prop_map(|ip| ip.to_string()),
        ]
    }

    fn proxy_url() -> impl Strategy<Value = ProxyUrl> {
        (
            host(),
            1u16..,
            proptest::option::of((any::<String>(), any::<String>())),
        )
            .prop_map(|(host, port, auth)| ProxyUrl {
                host,
                port,
                auth: auth.map(|(user, password)| Credentials { user, password }),
            })
    }

    proptest! {
        #[test]
        fn reply_is_prefix_consistent(buf in reply_stream()) {
            let whole = parse_connect_reply(&buf);
            let mut decided = None;
            for k in 0..=buf.len() {
                let v = parse_connect_reply(&buf[..k]);
                match &decided {
                    None if v == ConnectReply::NeedMore => {}
                    None => decided = Some(v),
                    Some(d) => prop_assert_eq!(&v, d, "prefix {} of {:?}", k, buf),
                }
            }
            prop_assert_eq!(decided.unwrap_or(ConnectReply::NeedMore), whole.clone());
            if let ConnectReply::Established { head_len } = whole {
                prop_assert!(head_len > 0 && head_len <= buf.len());
                prop_assert_eq!(parse_connect_reply(&buf[..head_len]), whole.clone());
                prop_assert_eq!(parse_connect_reply(&buf[..head_len - 1]), ConnectReply::NeedMore);
            }
        }

        #[test]
        fn reply_chunking_does_not_matter(
            buf in reply_stream(),
            cuts in proptest::collection::vec(1usize..20, 0..40),
        ) {
            // A reader that appends chunks and stops at the first verdict.
            let mut got = Vec::new();
            let mut verdict = ConnectReply::NeedMore;
            let mut rest = &buf[..];
            let mut cuts = cuts.into_iter();
            while verdict == ConnectReply::NeedMore && !rest.is_empty() {
                let n = cuts.next().unwrap_or(rest.len()).min(rest.len());
                got.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                verdict = parse_connect_reply(&got);
            }
            prop_assert_eq!(verdict, parse_connect_reply(&buf));
        }

        #[test]
        fn well_formed_heads_decide(head in reply_head(), tail in proptest::collection::vec(any::<u8>(), 0..20)) {
            let mut buf = head.clone();
            buf.extend(tail);
            match parse_connect_reply(&buf) {
                ConnectReply::Established { head_len } => prop_assert_eq!(head_len, head.len()),
                ConnectReply::Refused { status, .. } => prop_assert!(!(200..300).contains(&status)),
                other => prop_assert!(false, "{:?} for {:?}", other, String::from_utf8_lossy(&head)),
            }
        }

        #[test]
        fn reply_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_connect_reply(&buf);
        }

        #[test]
        fn url_round_trips(u in proxy_url()) {
            let text = u.to_url();
            prop_assert_eq!(ProxyUrl::parse(&text), Ok(u.clone()), "{}", text);
            // Display is a URL too, with the password replaced.
            let shown = ProxyUrl::parse(&u.to_string()).unwrap();
            prop_assert_eq!(shown.addr(), u.addr());
            prop_assert_eq!(
                shown.auth.map(|c| (c.user, c.password)),
                u.auth.as_ref().map(|c| (c.user.clone(), "***".to_owned()))
            );
        }

        #[test]
        fn passwords_stay_hidden(
            host in host(),
            user in "[a-z]{0,8}",
            password in "[A-Z]{6,16}",
        ) {
            let u = ProxyUrl { host, port: 3128, auth: Some(Credentials { user, password: password.clone() }) };
            prop_assert!(!u.to_string().contains(&password));
            let debug = format!("{:?}", u);
            prop_assert!(!debug.contains(&password));
        }

        #[test]
        fn url_parse_never_panics(s in "\\PC{0,60}") {
            if let Ok(u) = ProxyUrl::parse(&s) {
                prop_assert_eq!(ProxyUrl::parse(&u.to_url()), Ok(u.clone()));
                prop_assert!(u.port != 0);
            }
        }

        #[test]
        fn a_name_bypasses_for_itself_and_subdomains(
            name in "[a-z][a-z0-9]{0,8}(\\.[a-z]{2,5}){1,2}",
            sub in "[a-z0-9]{1,8}",
            port in 1u16..,
        ) {
            let subdomain = format!("{sub}.{name}");
            let glued = format!("{sub}{name}");
            let dotted = format!(".{name}");
            let with_port = format!("{name}:{port}");
            let other_port = port % u16::MAX + 1;
            prop_assert!(no_proxy_matches(&name, &name, port));
            prop_assert!(no_proxy_matches(&name, &subdomain, port));
            prop_assert!(no_proxy_matches(&dotted, &subdomain, port));
            prop_assert!(!no_proxy_matches(&name, &glued, port));
            prop_assert!(no_proxy_matches(&with_port, &name, port));
            prop_assert!(!no_proxy_matches(&with_port, &name, other_port));
        }

        #[test]
        fn cidrs_bypass_their_addresses(ip in any::<IpAddr>(), len in 0u8..=128) {
            let net = IpNet::new(ip, len.min(if ip.is_ipv4() { 32 } else { 128 })).unwrap().trunc();
            prop_assert!(no_proxy_matches(&net.to_string(), &ip.to_string(), 443));
            prop_assert!(no_proxy_matches(&ip.to_string(), &ip.to_string(), 443));
        }

        #[test]
        fn no_proxy_never_panics(list in "\\PC{0,40}", host in "\\PC{0,20}", port in any::<u16>()) {
            let _ = no_proxy_matches(&list, &host, port);
        }
    }
}
