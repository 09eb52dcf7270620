//! Sniffer for tinc: the meta-protocol's first line, `0 NAME VERSION`.
//!
//! A tinc daemon that connects sends its ID request, request number 0,
//! first: `0 alice 17.7\n`. Like sslh, only the `0 ` is checked.

use super::Verdict;

/// The start of tinc's ID request.
const PREFIX: &[u8] = b"0 ";

/// Is this the start of a tinc connection? `Match` once `buf` starts with
/// `0 `.
pub fn sniff(buf: &[u8]) -> Verdict {
    super::starts_with_any(buf, &[PREFIX])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_line() {
        assert_eq!(sniff(b""), Verdict::NeedMore);
        assert_eq!(sniff(b"0"), Verdict::NeedMore);
        assert_eq!(sniff(b"0 alice 17.7\n"), Verdict::Match);
        assert_eq!(sniff(b"00"), Verdict::NoMatch);
        assert_eq!(sniff(b"1 "), Verdict::NoMatch);
    }
}
