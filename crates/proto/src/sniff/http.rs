//! Sniffer for HTTP/1.x: a method line, and the Host header for `host=`.
//!
//! [`sniff`] matches on the method and the space after it, nothing more (so
//! `PRI ` also catches the h2c prior-knowledge preface `PRI * HTTP/2.0`).
//! [`parse_host`] reads the request head line by line and decides on the
//! first line that settles it: an absolute-form request target
//! (`GET http://host/ HTTP/1.1`, as sent to proxies), the first `Host`
//! header, or the empty line ending the head. Only complete lines within the
//! first [`MAX_HEAD`] bytes are looked at, which keeps both functions
//! prefix-consistent and bounded.

use super::Verdict;

/// How many bytes of the request head [`parse_host`] looks at. A head that
/// has neither ended nor named its Host by then is decided as it stands.
pub const MAX_HEAD: usize = 8 * 1024;

/// The request methods recognised, each with the space that follows it.
const METHODS: [&[u8]; 10] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
    b"PRI ",
];

/// What an HTTP request head tells the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostParse {
    /// Headers not complete and no Host header seen yet.
    NeedMore,
    /// The Host header's name part (no port), lower-cased; `None` when the
    /// head ended without one (or [`MAX_HEAD`] bytes went by without one).
    Host(Option<String>),
    /// Not an HTTP request.
    NotHttp,
}

/// Find the Host of the request at the start of `buf`.
///
/// The host comes from the request target when it is in absolute form
/// (`http://Host:port/path`), else from the first `Host` header (name
/// case-insensitive, value trimmed). The port and IPv6 brackets are stripped
/// and the name lower-cased: `Host: [2001:DB8::1]:8080` gives `2001:db8::1`.
///
/// `NotHttp` when the method does not match, the request line is not
/// `METHOD target HTTP/x`, a header line has no colon or holds control
/// characters, the host is not a valid URI host, or the request line alone
/// is longer than [`MAX_HEAD`].
pub fn parse_host(buf: &[u8]) -> HostParse {
    match sniff(buf) {
        Verdict::NeedMore => return HostParse::NeedMore,
        Verdict::NoMatch => return HostParse::NotHttp,
        Verdict::Match => {}
    }
    let window_full = buf.len() >= MAX_HEAD;
    let mut lines = Lines(buf.get(..MAX_HEAD).unwrap_or(buf));

    let Some(request_line) = lines.next() else {
        return if window_full {
            HostParse::NotHttp
        } else {
            HostParse::NeedMore
        };
    };
    match request_target_host(request_line) {
        Err(()) => return HostParse::NotHttp,
        Ok(Some(host)) => return HostParse::Host(host),
        Ok(None) => {}
    }

    loop {
        let Some(line) = lines.next() else {
            return if window_full {
                HostParse::Host(None)
            } else {
                HostParse::NeedMore
            };
        };
        if line.is_empty() {
            return HostParse::Host(None);
        }
        if line.iter().any(|&b| is_ctl(b) && b != b'\t') {
            return HostParse::NotHttp;
        }
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            continue; // obsolete line folding: part of the previous header
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return HostParse::NotHttp;
        };
        let (name, value) = line.split_at(colon);
        if name.is_empty() || name.iter().any(|&b| b == b' ' || b == b'\t') {
            return HostParse::NotHttp;
        }
        if name.eq_ignore_ascii_case(b"host") {
            let value = value.get(1..).unwrap_or_default();
            return match host_of(value) {
                Some(host) => HostParse::Host(host),
                None => HostParse::NotHttp,
            };
        }
    }
}

/// Is this the start of an HTTP/1.x request? `Match` once `buf` starts with
/// a known method and a space, `NeedMore` while it is a prefix of one.
pub fn sniff(buf: &[u8]) -> Verdict {
    let mut could_be = false;
    for method in METHODS {
        if buf.starts_with(method) {
            return Verdict::Match;
        }
        could_be |= method.starts_with(buf);
    }
    if could_be {
        Verdict::NeedMore
    } else {
        Verdict::NoMatch
    }
}

/// The complete lines of a window, without their `\n` or `\r\n`.
struct Lines<'a>(&'a [u8]);

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let end = self.0.iter().position(|&b| b == b'\n')?;
        let (line, rest) = self.0.split_at(end);
        self.0 = rest.get(1..).unwrap_or_default();
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

fn is_ctl(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Check the request line; for an absolute-form target, its host.
/// `Ok(None)`: valid, the Host header decides.
fn request_target_host(line: &[u8]) -> Result<Option<Option<String>>, ()> {
    if line.iter().copied().any(is_ctl) {
        return Err(());
    }
    let mut parts = line.split(|&b| b == b' ');
    let (Some(_method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(());
    };
    if target.is_empty() || !version.starts_with(b"HTTP/") {
        return Err(());
    }
    let Some(authority) = absolute_form_authority(target) else {
        return Ok(None);
    };
    // userinfo@host:port
    let host_port = match authority.iter().rposition(|&b| b == b'@') {
        Some(at) => authority.get(at + 1..).unwrap_or_default(),
        None => authority,
    };
    host_of(host_port).map(Some).ok_or(())
}

/// The authority of an absolute-form target `scheme://authority/...`.
fn absolute_form_authority(target: &[u8]) -> Option<&[u8]> {
    let colon = target.iter().position(|&b| b == b':')?;
    let (scheme, rest) = target.split_at(colon);
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    let rest = rest.strip_prefix(b"://").filter(|_| scheme_ok)?;
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    rest.get(..end)
}

/// The host of a `host[:port]` value, trimmed, without port or IPv6
/// brackets, lower-cased. `Some(None)` for an empty value, `None` when it is
/// not a valid URI host.
fn host_of(value: &[u8]) -> Option<Option<String>> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return Some(None);
    }
    let (host, port) = if let Some(bracketed) = value.strip_prefix(b"[") {
        let close = bracketed.iter().position(|&b| b == b']')?;
        let (inner, after) = bracketed.split_at(close);
        let after = after.get(1..).unwrap_or_default();
        let port = match after {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => return None,
        };
        let ipv6_ok = !inner.is_empty()
            && inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !ipv6_ok {
            return None;
        }
        (inner, port)
    } else {
        let (host, port) = match value.iter().position(|&b| b == b':') {
            Some(colon) => {
                let (h, p) = value.split_at(colon);
                (h, p.get(1..))
            }
            None => (value, None),
        };
        let reg_name_ok = !host.is_empty()
            && host
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b));
        if !reg_name_ok {
            return None;
        }
        (host, port)
    };
    if let Some(port) = port {
        if port.len() > 5 || !port.iter().all(u8::is_ascii_digit) {
            return None;
        }
    }
    Some(Some(
        host.to_ascii_lowercase()
            .into_iter()
            .map(char::from)
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sniff::tests::assert_prefix_consistent;

    fn host(s: &str) -> HostParse {
        HostParse::Host(Some(s.to_owned()))
    }

    #[test]
    fn methods() {
        for m in METHODS {
            assert_eq!(sniff(m), Verdict::Match);
            assert_eq!(sniff(&m[..m.len() - 1]), Verdict::NeedMore);
        }
        assert_eq!(sniff(b""), Verdict::NeedMore);
        assert_eq!(sniff(b"P"), Verdict::NeedMore);
        assert_eq!(sniff(b"GETX"), Verdict::NoMatch);
        assert_eq!(sniff(b"get /"), Verdict::NoMatch);
        assert_eq!(sniff(b"PROPFIND / HTTP/1.1"), Verdict::NoMatch);
        assert_eq!(sniff(b"SSH-2.0-"), Verdict::NoMatch);
    }

    #[test]
    fn host_header_forms() {
        let cases: &[(&[u8], HostParse)] = &[
            (
                b"GET / HTTP/1.1\r\nHost: Example.COM\r\n\r\n",
                host("example.com"),
            ),
            (
                b"GET / HTTP/1.1\r\nhOST:example.com:8080\r\n",
                host("example.com"),
            ),
            (b"GET / HTTP/1.1\r\nHost: \t a.b \t\r\n", host("a.b")),
            (b"GET / HTTP/1.1\nX: y\nHost: a.b\n\n", host("a.b")),
            (b"GET / HTTP/1.1\r\nHost: [::1]:443\r\n", host("::1")),
            (b"GET / HTTP/1.1\r\nHost: [FE80::1]\r\n", host("fe80::1")),
            (b"GET / HTTP/1.1\r\nHost: 10.0.0.1:80\r\n", host("10.0.0.1")),
            (b"GET / HTTP/1.1\r\nHost: a.b:\r\n", host("a.b")),
            (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", HostParse::Host(None)),
            (
                b"GET / HTTP/1.0\r\nAccept: */*\r\n\r\n",
                HostParse::Host(None),
            ),
            (b"GET / HTTP/1.0\n\n", HostParse::Host(None)),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", HostParse::Host(None)),
            // Absolute form: the target's authority wins over Host.
            (
                b"GET http://u:p@Proxy.Example:81/x HTTP/1.1\r\nHost: other\r\n",
                host("proxy.example"),
            ),
            (b"GET https://[::2]/ HTTP/1.1\r\n", host("::2")),
            (b"GET http://a.b?q HTTP/1.1\r\n", host("a.b")),
            // CONNECT uses the Host header, like origin form.
            (
                b"CONNECT a.b:443 HTTP/1.1\r\nHost: a.b:443\r\n\r\n",
                host("a.b"),
            ),
            // Only the first Host counts.
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", host("a")),
            // Folded line, then Host.
            (b"GET / HTTP/1.1\r\nX: 1\r\n  2\r\nHost: a\r\n", host("a")),
        ];
        for (buf, want) in cases {
            assert_eq!(&parse_host(buf), want, "{}", String::from_utf8_lossy(buf));
            assert_prefix_consistent(buf, parse_host, |p| *p == HostParse::NeedMore);
        }
    }

    #[test]
    fn not_http() {
        let cases: &[&[u8]] = &[
            b"SSH-2.0-x\r\n",
            b"GET /\r\n",
            b"GET / FTP/1.0\r\n",
            b"GET  / HTTP/1.1\r\n",
            b"GET / HTTP/1.1 x\r\n",
            b"GET /\x00 HTTP/1.1\r\n",
            b"GET / HTTP/1.1\r\nNoColon\r\n",
            b"GET / HTTP/1.1\r\nHost : a\r\n",
            b"GET / HTTP/1.1\r\nX: a\rb\r\n",
            b"GET / HTTP/1.1\r\nHost: a b\r\n",
            b"GET / HTTP/1.1\r\nHost: a/b\r\n",
            b"GET / HTTP/1.1\r\nHost: a:x\r\n",
            b"GET / HTTP/1.1\r\nHost: a:123456\r\n",
            b"GET / HTTP/1.1\r\nHost: ::1\r\n",
            b"GET / HTTP/1.1\r\nHost: [::1\r\n",
            b"GET / HTTP/1.1\r\nHost: [::1]x\r\n",
            b"GET / HTTP/1.1\r\nHost: [g::1]\r\n",
            b"GET / HTTP/1.1\r\nHost: []\r\n",
            b"GET http://a b/ HTTP/1.1\r\n",
        ];
        for buf in cases {
            assert_eq!(
                parse_host(buf),
                HostParse::NotHttp,
                "{}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn need_more_and_head_bound() {
        assert_eq!(parse_host(b"GE"), HostParse::NeedMore);
        assert_eq!(parse_host(b"GET / HTTP/1.1"), HostParse::NeedMore);
        assert_eq!(
            parse_host(b"GET / HTTP/1.1\r\nHost: a"),
            HostParse::NeedMore
        );
        assert_eq!(
            parse_host(b"GET / HTTP/1.1\r\nAccept: */*\r\n"),
            HostParse::NeedMore
        );

        // A Host header beyond the head bound is not looked at.
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        while big.len() < MAX_HEAD {
            big.extend_from_slice(b"X-Pad: 0123456789abcdef\r\n");
        }
        big.extend_from_slice(b"Host: late\r\n\r\n");
        assert_eq!(parse_host(&big), HostParse::Host(None));
        assert_eq!(parse_host(&big[..MAX_HEAD - 1]), HostParse::NeedMore);
        // A request line longer than the bound is not HTTP.
        let mut long = b"GET /".to_vec();
        long.resize(MAX_HEAD + 10, b'a');
        assert_eq!(parse_host(&long), HostParse::NotHttp);
        assert_eq!(parse_host(&long[..MAX_HEAD - 1]), HostParse::NeedMore);
    }
}
