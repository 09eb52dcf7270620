//! Sniffer for HTTP/1.x: a method line, and the Host header for `host=`.

use super::Verdict;

/// What an HTTP request head tells the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostParse {
    /// Headers not complete and no Host header seen yet.
    NeedMore,
    /// The Host header's name part (no port), lower-cased; `None` when the
    /// head ended without one.
    Host(Option<String>),
    /// Not an HTTP request.
    NotHttp,
}

/// Find the Host of the request at the start of `buf` (stub: to be written).
pub fn parse_host(buf: &[u8]) -> HostParse {
    let _ = buf;
    HostParse::NotHttp
}

/// Is this the start of an HTTP/1.x request?
pub fn sniff(buf: &[u8]) -> Verdict {
    let _ = buf;
    Verdict::NoMatch
}
