//! Sniffer for socks5 (stub: to be written).

use super::Verdict;

/// Is this the start of a socks5 connection?
pub fn sniff(buf: &[u8]) -> Verdict {
    let _ = buf;
    Verdict::NoMatch
}
