//! Sniffer for XMPP: a client's stream header (RFC 6120 §4.2).
//!
//! Like sslh, the rule is that `jabber` appears in the first bytes: in the
//! `jabber:client` namespace, or in `http://etherx.jabber.org/streams`, which
//! some clients put first, some well after the XML declaration. The bytes
//! are scanned in order and the first event decides: `jabber` complete →
//! `Match`; a byte that cannot be in an XML stream opening (anything before
//! the first `<` but whitespace, or a control character) or the end of the
//! [`WINDOW`] → `NoMatch`. Deciding at the first event keeps the answer
//! independent of how the bytes were chunked.

use super::Verdict;

/// How many bytes may go by before `jabber` must have appeared.
pub const WINDOW: usize = 256;

/// The word that marks an XMPP stream.
const MARKER: &[u8] = b"jabber";

/// Is this the start of an XMPP connection?
pub fn sniff(buf: &[u8]) -> Verdict {
    let mut opened = false;
    for (i, &b) in buf.iter().enumerate().take(WINDOW) {
        if !opened {
            match b {
                b'<' => opened = true,
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ => return Verdict::NoMatch,
            }
        } else if (b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n')) || b == 0x7f {
            return Verdict::NoMatch;
        }
        let end = i + 1;
        if buf.get(end.saturating_sub(MARKER.len())..end) == Some(MARKER) {
            return Verdict::Match;
        }
    }
    if buf.len() >= WINDOW {
        Verdict::NoMatch
    } else {
        Verdict::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sniff::tests::assert_prefix_consistent;

    #[test]
    fn stream_headers() {
        let late = b"<?xml version='1.0'?>\n<stream:stream to='example.com' \
            xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";
        assert_eq!(sniff(late), Verdict::Match);
        assert_prefix_consistent(late, sniff, |v| *v == Verdict::NeedMore);
        assert_eq!(
            sniff(b"\r\n <stream:stream xmlns='jabber:client'"),
            Verdict::Match
        );
        assert_eq!(sniff(b""), Verdict::NeedMore);
        assert_eq!(sniff(b"<?xml version='1.0'?>"), Verdict::NeedMore);
        assert_eq!(sniff(b"<?xml\x00jabber"), Verdict::NoMatch);
        assert_eq!(sniff(b"x<jabber"), Verdict::NoMatch);
        assert_eq!(sniff(b"GET / HTTP/1.1"), Verdict::NoMatch);
        // `jabber` just inside and just outside the window.
        let mut edge = vec![b'<'];
        edge.resize(WINDOW - MARKER.len(), b' ');
        edge.extend_from_slice(MARKER);
        assert_eq!(sniff(&edge), Verdict::Match);
        edge.insert(1, b' ');
        assert_eq!(sniff(&edge), Verdict::NoMatch);
        assert_eq!(sniff(&edge[..WINDOW - 1]), Verdict::NeedMore);
    }
}
