//! Sniffer for SOCKS5: the client's greeting (RFC 1928 §3).
//!
//! `VER = 0x05`, `NMETHODS >= 1`, then that many method bytes. Each method
//! must be one that clients offer: an IANA-assigned one (`0x00..=0x09`) or a
//! private one (`0x80..=0xFE`); `0xFF` ("no acceptable method") is only ever
//! a server's answer.

use super::Verdict;

/// The SOCKS protocol version byte.
const VERSION: u8 = 0x05;

/// Could a client offer this authentication method?
fn plausible_method(m: u8) -> bool {
    m <= 0x09 || (0x80..=0xfe).contains(&m)
}

/// Is this the start of a SOCKS5 connection? `Match` once the whole greeting
/// is there with plausible methods; `NoMatch` at the first implausible byte.
pub fn sniff(buf: &[u8]) -> Verdict {
    let Some((&version, rest)) = buf.split_first() else {
        return Verdict::NeedMore;
    };
    if version != VERSION {
        return Verdict::NoMatch;
    }
    let Some((&nmethods, methods)) = rest.split_first() else {
        return Verdict::NeedMore;
    };
    if nmethods == 0 {
        return Verdict::NoMatch;
    }
    let wanted = usize::from(nmethods);
    let seen = methods.get(..wanted).unwrap_or(methods);
    if !seen.iter().copied().all(plausible_method) {
        Verdict::NoMatch
    } else if seen.len() == wanted {
        Verdict::Match
    } else {
        Verdict::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sniff::tests::assert_prefix_consistent;

    #[test]
    fn greetings() {
        assert_eq!(sniff(b""), Verdict::NeedMore);
        assert_eq!(sniff(b"\x05"), Verdict::NeedMore);
        assert_eq!(sniff(b"\x05\x01"), Verdict::NeedMore);
        assert_eq!(sniff(b"\x05\x01\x00"), Verdict::Match);
        assert_eq!(sniff(b"\x05\x02\x00\x02"), Verdict::Match);
        assert_eq!(sniff(b"\x05\x02\x80\xfe"), Verdict::Match);
        assert_eq!(sniff(b"\x05\x02\x00"), Verdict::NeedMore);
        assert_eq!(sniff(b"\x04\x01\x00"), Verdict::NoMatch);
        assert_eq!(sniff(b"\x05\x00"), Verdict::NoMatch);
        assert_eq!(sniff(b"\x05\x03\x0a"), Verdict::NoMatch);
        assert_eq!(sniff(b"\x05\x03\x00\xff"), Verdict::NoMatch);
        let all: Vec<u8> = [5, 255]
            .into_iter()
            .chain((0..=9).chain(0x80..=0xfe).cycle().take(255))
            .collect();
        assert_eq!(sniff(&all), Verdict::Match);
        assert_prefix_consistent(&all, sniff, |v| *v == Verdict::NeedMore);
    }
}
