//! Sniffer for ssh (stub: to be written).

use super::Verdict;

/// Is this the start of a ssh connection?
pub fn sniff(buf: &[u8]) -> Verdict {
    let _ = buf;
    Verdict::NoMatch
}
