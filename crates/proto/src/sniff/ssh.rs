//! Sniffer for SSH: the client's identification string (RFC 4253 §4.2).
//!
//! An SSH client speaks first with `SSH-protoversion-softwareversion`; the
//! protocol versions in use are `2.0`, and `1.99` from old clients that also
//! speak SSH-1. Pure SSH-1 (`SSH-1.5-`) is not matched.

use super::Verdict;

/// The identification prefixes matched.
const PREFIXES: [&[u8]; 2] = [b"SSH-2.0-", b"SSH-1.99-"];

/// Is this the start of an SSH connection? `Match` once `buf` starts with
/// `SSH-2.0-` or `SSH-1.99-`, `NeedMore` while it is a prefix of one.
pub fn sniff(buf: &[u8]) -> Verdict {
    super::starts_with_any(buf, &PREFIXES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(sniff(b""), Verdict::NeedMore);
        assert_eq!(sniff(b"SSH-"), Verdict::NeedMore);
        assert_eq!(sniff(b"SSH-2.0"), Verdict::NeedMore);
        assert_eq!(sniff(b"SSH-1.9"), Verdict::NeedMore);
        assert_eq!(sniff(b"SSH-2.0-"), Verdict::Match);
        assert_eq!(sniff(b"SSH-2.0-PuTTY_Release_0.78\r\n"), Verdict::Match);
        assert_eq!(sniff(b"SSH-1.99-OpenSSH_3.9p1\r\n"), Verdict::Match);
        assert_eq!(sniff(b"SSH-1.5-"), Verdict::NoMatch);
        assert_eq!(sniff(b"SSH-2.1-"), Verdict::NoMatch);
        assert_eq!(sniff(b"ssh-2.0-"), Verdict::NoMatch);
        assert_eq!(sniff(b"\x16\x03\x01"), Verdict::NoMatch);
    }
}
