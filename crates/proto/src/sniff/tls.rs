//! Sniffer for TLS: parses the ClientHello (possibly spread over several
//! records) far enough to read SNI and ALPN, without terminating anything.

use super::Verdict;

/// What a ClientHello tells the router.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHelloInfo {
    /// The server name (SNI), lower-cased, if the client sent one.
    pub sni: Option<String>,
    /// ALPN protocol ids offered, in the client's order.
    pub alpn: Vec<String>,
}

/// Result of parsing a ClientHello from a stream prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloParse {
    /// The ClientHello is not complete yet.
    NeedMore,
    /// A complete, well-formed ClientHello.
    Hello(ClientHelloInfo),
    /// Not a TLS ClientHello.
    NotTls,
}

/// Parse the ClientHello at the start of `buf` (stub: to be written).
pub fn parse_client_hello(buf: &[u8]) -> HelloParse {
    let _ = buf;
    HelloParse::NotTls
}

/// Is this the start of a TLS connection? Matches as soon as the record header
/// says handshake/ClientHello; use [`parse_client_hello`] for SNI/ALPN.
pub fn sniff(buf: &[u8]) -> Verdict {
    let _ = buf;
    Verdict::NoMatch
}
