//! Sniffer for TLS: parses the ClientHello (possibly spread over several
//! records) far enough to read SNI and ALPN, without terminating anything.
//!
//! The stream starts with TLS records (`type version length payload`). The
//! ClientHello is one handshake message (`msg_type length body`) carried in
//! the payload of one or more handshake records: large ClientHellos, such as
//! those with post-quantum key shares, may be fragmented over several records,
//! and a record may be as short as one byte. [`parse_client_hello`] gathers
//! the handshake bytes across records, bounded by [`MAX_HELLO_LEN`], and only
//! parses the body once it is complete. [`sniff`] stops as soon as the record
//! and handshake headers are known.
//!
//! Every length is checked against what is present: a prefix that is
//! consistent so far is `NeedMore`, a length that cannot be right is `NotTls`,
//! and nothing here indexes out of bounds or allocates more than
//! [`MAX_HELLO_LEN`] bytes. Both functions are prefix-consistent: bytes after
//! the end of the ClientHello never change the answer.
//!
//! What is read is the *outer* ClientHello: with Encrypted Client Hello the
//! SNI seen here is the client-facing public name. SSLv2-compatible hellos
//! (first byte `0x80`) are not recognised.

use std::borrow::Cow;

use super::Verdict;

/// The largest ClientHello accepted: the whole handshake message, 4-byte
/// header included. Anything announcing more is [`HelloParse::NotTls`].
pub const MAX_HELLO_LEN: usize = 16 * 1024;

/// TLS record header length: type (1), version (2), length (2).
const RECORD_HEADER_LEN: usize = 5;
/// Largest plaintext record payload (RFC 8446 §5.1).
const MAX_RECORD_LEN: usize = 1 << 14;
/// Record content type `handshake`.
const CONTENT_HANDSHAKE: u8 = 0x16;
/// Handshake message type `client_hello`.
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
/// Handshake header length: type (1), length (3).
const HANDSHAKE_HEADER_LEN: usize = 4;
/// Smallest ClientHello body: version (2), random (32), empty session id (1),
/// one cipher suite (2 + 2), one compression method (1 + 1).
const MIN_HELLO_BODY: usize = 41;
/// Extension `server_name` (RFC 6066).
const EXT_SERVER_NAME: u16 = 0;
/// Extension `application_layer_protocol_negotiation` (RFC 7301).
const EXT_ALPN: u16 = 16;
/// `NameType` `host_name` inside `server_name`.
const NAME_TYPE_HOST_NAME: u8 = 0;
/// Longest DNS name.
const MAX_HOST_NAME_LEN: usize = 255;

/// What a ClientHello tells the router.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHelloInfo {
    /// The server name (SNI), lower-cased, if the client sent one.
    pub sni: Option<String>,
    /// ALPN protocol ids offered, in the client's order. Ids that are not
    /// UTF-8 are kept, converted lossily.
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

/// Parse the ClientHello at the start of `buf`, reassembling it from as many
/// handshake records as it spans.
///
/// Answers `NeedMore` until the whole handshake message is there, then
/// `Hello` with its SNI and ALPN, or `NotTls` as soon as a record header,
/// the handshake header or (once complete) the body is malformed, or the
/// message announces more than [`MAX_HELLO_LEN`] bytes. Bytes after the
/// ClientHello are ignored.
pub fn parse_client_hello(buf: &[u8]) -> HelloParse {
    match gather(buf, false) {
        Gather::NeedMore | Gather::Header => HelloParse::NeedMore,
        Gather::NotTls => HelloParse::NotTls,
        Gather::Complete(msg) => match msg.get(HANDSHAKE_HEADER_LEN..).and_then(parse_body) {
            Some(info) => HelloParse::Hello(info),
            None => HelloParse::NotTls,
        },
    }
}

/// Is this the start of a TLS connection? Matches as soon as the record
/// header says handshake and the handshake header (which may itself span
/// records) says ClientHello of a plausible length; use
/// [`parse_client_hello`] for SNI/ALPN.
pub fn sniff(buf: &[u8]) -> Verdict {
    match gather(buf, true) {
        Gather::NeedMore => Verdict::NeedMore,
        Gather::NotTls => Verdict::NoMatch,
        Gather::Header | Gather::Complete(_) => Verdict::Match,
    }
}

/// Frame a handshake message as a sequence of handshake records whose
/// payloads are at most `max_fragment` bytes (at least 1), with record
/// version `0x0301` as clients use for their first flight. For tests and
/// tools that need to re-split a ClientHello.
pub fn frame_records(handshake: &[u8], max_fragment: usize) -> Vec<u8> {
    let step = max_fragment.clamp(1, MAX_RECORD_LEN);
    let mut out = Vec::with_capacity(handshake.len() + handshake.len().div_ceil(step) * 5);
    for chunk in handshake.chunks(step) {
        out.extend_from_slice(&[CONTENT_HANDSHAKE, 0x03, 0x01]);
        // `chunk.len() <= MAX_RECORD_LEN`, so it fits in a u16.
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// The ClientHello handshake message (header and body) at the start of
/// `buf`, reassembled from its records, once it is complete.
pub fn client_hello_message(buf: &[u8]) -> Option<Cow<'_, [u8]>> {
    match gather(buf, false) {
        Gather::Complete(msg) => Some(msg),
        _ => None,
    }
}

/// How far the walk over the records got.
enum Gather<'a> {
    /// The bytes so far are a valid prefix; the answer needs more.
    NeedMore,
    /// A record or the handshake header cannot be a ClientHello's.
    NotTls,
    /// The handshake header is complete and plausible (only when asked to
    /// stop there).
    Header,
    /// The whole handshake message, header included.
    Complete(Cow<'a, [u8]>),
}

/// Handshake bytes gathered from records: borrowed while they come from a
/// single record, copied once a second record contributes.
struct Fragments<'a> {
    first: &'a [u8],
    joined: Option<Vec<u8>>,
}

impl<'a> Fragments<'a> {
    fn len(&self) -> usize {
        self.joined.as_ref().map_or(self.first.len(), Vec::len)
    }

    fn as_slice(&self) -> &[u8] {
        self.joined.as_deref().unwrap_or(self.first)
    }

    /// Append `more`; the caller bounds its length.
    fn push(&mut self, more: &'a [u8]) {
        match &mut self.joined {
            Some(v) => v.extend_from_slice(more),
            None if self.first.is_empty() => self.first = more,
            None => {
                let mut v = Vec::with_capacity(self.first.len() + more.len());
                v.extend_from_slice(self.first);
                v.extend_from_slice(more);
                self.joined = Some(v);
            }
        }
    }

    /// Keep at most the first `n` bytes.
    fn truncate(&mut self, n: usize) {
        match &mut self.joined {
            Some(v) => v.truncate(n),
            None => self.first = self.first.get(..n).unwrap_or(self.first),
        }
    }

    /// The first `n` bytes.
    fn into_prefix(mut self, n: usize) -> Cow<'a, [u8]> {
        self.truncate(n);
        match self.joined {
            Some(v) => Cow::Owned(v),
            None => Cow::Borrowed(self.first),
        }
    }
}

/// Walk the handshake records at the start of `buf`, gathering the first
/// handshake message. With `header_only`, stop once its header is known.
fn gather(buf: &[u8], header_only: bool) -> Gather<'_> {
    let mut rest = buf;
    let mut frags = Fragments {
        first: &[],
        joined: None,
    };
    // Length of the whole handshake message, once its header is complete.
    let mut msg_len: Option<usize> = None;
    loop {
        let record_len = match record_header(rest) {
            RecordHeader::Partial => return Gather::NeedMore,
            RecordHeader::Invalid => return Gather::NotTls,
            RecordHeader::Len(len) => len,
        };
        let payload = rest.get(RECORD_HEADER_LEN..).unwrap_or_default();
        let present = payload.get(..record_len).unwrap_or(payload);
        // Take only what the message still needs: at most a record's worth
        // before the header is known, then at most up to the message end.
        let wanted = match msg_len {
            Some(m) => m.saturating_sub(frags.len()),
            None => present.len(),
        };
        frags.push(present.get(..wanted).unwrap_or(present));

        if msg_len.is_none() {
            if let Some(header) = frags.as_slice().get(..HANDSHAKE_HEADER_LEN) {
                let body_len = match handshake_header(header) {
                    Some(len) => len,
                    None => return Gather::NotTls,
                };
                let total = HANDSHAKE_HEADER_LEN + body_len;
                msg_len = Some(total);
                // The record may carry more than this message: drop the rest.
                frags.truncate(total);
            }
        }
        if let Some(total) = msg_len {
            if header_only {
                return Gather::Header;
            }
            if frags.len() >= total {
                return Gather::Complete(frags.into_prefix(total));
            }
        }
        if present.len() < record_len {
            return Gather::NeedMore;
        }
        rest = payload.get(record_len..).unwrap_or_default();
    }
}

/// A record header at the start of the remaining bytes.
enum RecordHeader {
    /// Fewer than 5 bytes, all plausible so far.
    Partial,
    /// Not a handshake record of a TLS version, or an impossible length.
    Invalid,
    /// A handshake record with this payload length.
    Len(usize),
}

fn record_header(rest: &[u8]) -> RecordHeader {
    // Check the bytes that are present, one by one, so that a bad first byte
    // is rejected without waiting for the rest of the header.
    if rest.first().is_some_and(|&t| t != CONTENT_HANDSHAKE)
        || rest.get(1).is_some_and(|&major| major != 0x03)
        || rest.get(2).is_some_and(|&minor| minor > 0x04)
    {
        return RecordHeader::Invalid;
    }
    match rest.get(3..RECORD_HEADER_LEN) {
        Some(&[hi, lo]) => {
            let len = usize::from(u16::from_be_bytes([hi, lo]));
            if len == 0 || len > MAX_RECORD_LEN {
                RecordHeader::Invalid
            } else {
                RecordHeader::Len(len)
            }
        }
        _ => RecordHeader::Partial,
    }
}

/// The body length of a ClientHello handshake header, if plausible.
fn handshake_header(header: &[u8]) -> Option<usize> {
    match *header {
        [HANDSHAKE_CLIENT_HELLO, a, b, c] => {
            let len = (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c);
            (MIN_HELLO_BODY..=MAX_HELLO_LEN - HANDSHAKE_HEADER_LEN)
                .contains(&len)
                .then_some(len)
        }
        _ => None,
    }
}

/// A cursor over a byte slice whose reads fail instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes(b.try_into().ok()?))
    }

    /// A vector with a one-byte length prefix.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    /// A vector with a two-byte length prefix.
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// Parse a complete ClientHello body (RFC 8446 §4.1.2, also TLS 1.0–1.2).
fn parse_body(body: &[u8]) -> Option<ClientHelloInfo> {
    let mut r = Reader(body);
    let [major, _minor] = r.u16()?.to_be_bytes();
    if major != 0x03 {
        return None;
    }
    r.take(32)?; // random
    if r.vec8()?.len() > 32 {
        return None; // legacy_session_id
    }
    let suites = r.vec16()?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return None;
    }
    if r.vec8()?.is_empty() {
        return None; // compression methods
    }
    let mut info = ClientHelloInfo::default();
    if r.is_empty() {
        return Some(info); // no extensions at all (TLS 1.0 style)
    }
    let mut exts = Reader(r.vec16()?);
    if !r.is_empty() {
        return None;
    }
    let (mut seen_sni, mut seen_alpn) = (false, false);
    while !exts.is_empty() {
        let ext_type = exts.u16()?;
        let data = exts.vec16()?;
        match ext_type {
            EXT_SERVER_NAME => {
                // Two SNI extensions could make the router and the backend
                // disagree on the name: refuse.
                if std::mem::replace(&mut seen_sni, true) {
                    return None;
                }
                info.sni = parse_server_name(data)?;
            }
            EXT_ALPN => {
                if std::mem::replace(&mut seen_alpn, true) {
                    return None;
                }
                info.alpn = parse_alpn(data)?;
            }
            _ => {}
        }
    }
    Some(info)
}

/// The `server_name` extension: the host_name entry, if any, lower-cased.
/// `None` when malformed (also: two host names, or an invalid name).
fn parse_server_name(data: &[u8]) -> Option<Option<String>> {
    let mut r = Reader(data);
    let list = r.vec16()?;
    if !r.is_empty() || list.is_empty() {
        return None;
    }
    let mut entries = Reader(list);
    let mut name = None;
    while !entries.is_empty() {
        let name_type = entries.u8()?;
        let value = entries.vec16()?;
        if name_type == NAME_TYPE_HOST_NAME {
            if name.is_some() {
                return None;
            }
            name = Some(host_name(value)?);
        }
    }
    Some(name)
}

/// A DNS host name as sent in SNI: 1..=255 bytes of letters, digits, `-`,
/// `_` and `.`; lower-cased.
fn host_name(value: &[u8]) -> Option<String> {
    let ok = !value.is_empty()
        && value.len() <= MAX_HOST_NAME_LEN
        && value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then(|| {
        value
            .to_ascii_lowercase()
            .into_iter()
            .map(char::from)
            .collect()
    })
}

/// The ALPN extension: the non-empty list of non-empty protocol ids.
fn parse_alpn(data: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader(data);
    let list = r.vec16()?;
    if !r.is_empty() || list.is_empty() {
        return None;
    }
    let mut entries = Reader(list);
    let mut ids = Vec::new();
    while !entries.is_empty() {
        let id = entries.vec8()?;
        if id.is_empty() {
            return None;
        }
        ids.push(String::from_utf8_lossy(id).into_owned());
    }
    Some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sniff::tests::assert_prefix_consistent;

    /// A ClientHello body with the given extensions (type, data).
    fn body(exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut b = vec![0x03, 0x03];
        b.extend_from_slice(&[7; 32]);
        b.push(0); // session id
        b.extend_from_slice(&[0, 2, 0x13, 0x01]); // one suite
        b.extend_from_slice(&[1, 0]); // null compression
        let mut e = Vec::new();
        for (t, d) in exts {
            e.extend_from_slice(&t.to_be_bytes());
            e.extend_from_slice(&(d.len() as u16).to_be_bytes());
            e.extend_from_slice(d);
        }
        b.extend_from_slice(&(e.len() as u16).to_be_bytes());
        b.extend_from_slice(&e);
        b
    }

    fn message(body: &[u8]) -> Vec<u8> {
        let mut m = vec![HANDSHAKE_CLIENT_HELLO];
        m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        m.extend_from_slice(body);
        m
    }

    fn sni_ext(names: &[(u8, &[u8])]) -> (u16, Vec<u8>) {
        let mut list = Vec::new();
        for (t, n) in names {
            list.push(*t);
            list.extend_from_slice(&(n.len() as u16).to_be_bytes());
            list.extend_from_slice(n);
        }
        let mut d = (list.len() as u16).to_be_bytes().to_vec();
        d.extend_from_slice(&list);
        (EXT_SERVER_NAME, d)
    }

    fn alpn_ext(ids: &[&[u8]]) -> (u16, Vec<u8>) {
        let mut list = Vec::new();
        for id in ids {
            list.push(id.len() as u8);
            list.extend_from_slice(id);
        }
        let mut d = (list.len() as u16).to_be_bytes().to_vec();
        d.extend_from_slice(&list);
        (EXT_ALPN, d)
    }

    fn hello(exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
        frame_records(&message(&body(exts)), MAX_RECORD_LEN)
    }

    #[test]
    fn parses_sni_and_alpn() {
        let buf = hello(&[
            (0x0a0a, vec![]), // GREASE
            sni_ext(&[(NAME_TYPE_HOST_NAME, b"WWW.Example.COM")]),
            alpn_ext(&[b"h2", b"http/1.1"]),
        ]);
        let want = ClientHelloInfo {
            sni: Some("www.example.com".into()),
            alpn: vec!["h2".into(), "http/1.1".into()],
        };
        assert_eq!(parse_client_hello(&buf), HelloParse::Hello(want.clone()));
        assert_eq!(sniff(&buf), Verdict::Match);
        assert_prefix_consistent(&buf, parse_client_hello, |p| *p == HelloParse::NeedMore);
        // Trailing bytes (a ChangeCipherSpec record, early data) change nothing.
        let mut more = buf.clone();
        more.extend_from_slice(&[0x14, 0x03, 0x03, 0x00, 0x01, 0x01, 0xff]);
        assert_eq!(parse_client_hello(&more), HelloParse::Hello(want));
    }

    #[test]
    fn no_extensions_and_unknown_name_types() {
        let mut b = body(&[]);
        b.truncate(b.len() - 2); // drop the empty extensions block
        let buf = frame_records(&message(&b), 1 << 14);
        assert_eq!(
            parse_client_hello(&buf),
            HelloParse::Hello(ClientHelloInfo::default())
        );
        let buf = hello(&[sni_ext(&[(7, b"\x00\x01")])]);
        assert_eq!(
            parse_client_hello(&buf),
            HelloParse::Hello(ClientHelloInfo::default())
        );
    }

    #[test]
    fn reassembles_one_byte_records() {
        let msg = message(&body(&[
            sni_ext(&[(0, b"a.example")]),
            (51, vec![0x55; 1250]), // a post-quantum-sized key share
            alpn_ext(&[b"h2"]),
        ]));
        let whole = parse_client_hello(&frame_records(&msg, 1 << 14));
        for step in [1, 2, 3, 5, 100, 1000] {
            let buf = frame_records(&msg, step);
            assert_eq!(parse_client_hello(&buf), whole, "fragment {step}");
            assert_eq!(sniff(&buf), Verdict::Match, "fragment {step}");
            assert_eq!(client_hello_message(&buf).as_deref(), Some(&msg[..]));
        }
        let buf = frame_records(&msg, 7);
        assert_prefix_consistent(&buf, parse_client_hello, |p| *p == HelloParse::NeedMore);
        assert_prefix_consistent(&buf, sniff, |v| *v == Verdict::NeedMore);
    }

    #[test]
    fn record_headers() {
        assert_eq!(sniff(b""), Verdict::NeedMore);
        assert_eq!(sniff(b"\x16"), Verdict::NeedMore);
        assert_eq!(sniff(b"\x16\x03\x01\x02"), Verdict::NeedMore);
        assert_eq!(sniff(b"\x16\x03\x01\x02\x00"), Verdict::NeedMore);
        assert_eq!(
            sniff(b"\x16\x03\x01\x02\x00\x01\x00\x01"),
            Verdict::NeedMore
        );
        assert_eq!(
            sniff(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc"),
            Verdict::Match
        );
        assert_eq!(sniff(b"\x17"), Verdict::NoMatch);
        assert_eq!(sniff(b"\x16\x02"), Verdict::NoMatch);
        assert_eq!(sniff(b"\x16\x03\x05"), Verdict::NoMatch);
        // Zero-length and oversized records.
        assert_eq!(sniff(b"\x16\x03\x01\x00\x00"), Verdict::NoMatch);
        assert_eq!(sniff(b"\x16\x03\x01\x40\x01"), Verdict::NoMatch);
        // ServerHello, not ClientHello.
        assert_eq!(
            sniff(b"\x16\x03\x03\x00\x50\x02\x00\x00\x4c"),
            Verdict::NoMatch
        );
        // The handshake header split over two 2-byte records.
        assert_eq!(sniff(b"\x16\x03\x01\x00\x02\x01\x00"), Verdict::NeedMore);
        assert_eq!(
            sniff(b"\x16\x03\x01\x00\x02\x01\x00\x16\x03\x01\x00\x02\x01\x00"),
            Verdict::Match
        );
        // A non-handshake record in the middle of the ClientHello.
        assert_eq!(
            parse_client_hello(b"\x16\x03\x01\x00\x02\x01\x00\x15\x03\x01\x00\x02\x01\x00"),
            HelloParse::NotTls
        );
    }

    #[test]
    fn size_bounds() {
        // Too short to be a ClientHello, and over MAX_HELLO_LEN.
        assert_eq!(
            sniff(b"\x16\x03\x01\x00\x04\x01\x00\x00\x28"),
            Verdict::NoMatch
        );
        assert_eq!(
            sniff(b"\x16\x03\x01\x00\x04\x01\x00\x3f\xfd"),
            Verdict::NoMatch
        );
        assert_eq!(
            sniff(b"\x16\x03\x01\x00\x04\x01\x00\x3f\xfc"),
            Verdict::Match
        );
        assert_eq!(
            sniff(b"\x16\x03\x01\x00\x04\x01\xff\xff\xff"),
            Verdict::NoMatch
        );
        // Exactly MAX_HELLO_LEN is accepted, one byte more is not.
        let base = message(&body(&[(21, vec![])])).len();
        let msg = message(&body(&[(21, vec![0; MAX_HELLO_LEN - base])]));
        assert_eq!(msg.len(), MAX_HELLO_LEN);
        let buf = frame_records(&msg, 1000);
        assert!(matches!(parse_client_hello(&buf), HelloParse::Hello(_)));
        let msg = message(&body(&[(21, vec![0; MAX_HELLO_LEN - base + 1])]));
        assert_eq!(
            parse_client_hello(&frame_records(&msg, 1000)),
            HelloParse::NotTls
        );
    }

    #[test]
    fn malformed_bodies() {
        let cases: Vec<Vec<(u16, Vec<u8>)>> = vec![
            // Two SNI extensions, two host names, two ALPN extensions.
            vec![sni_ext(&[(0, b"a")]), sni_ext(&[(0, b"b")])],
            vec![sni_ext(&[(0, b"a"), (0, b"b")])],
            vec![alpn_ext(&[b"h2"]), alpn_ext(&[b"h2"])],
            // Empty lists, empty names and ids, bad characters.
            vec![(EXT_SERVER_NAME, vec![])],
            vec![(EXT_SERVER_NAME, vec![0, 0])],
            vec![sni_ext(&[(0, b"")])],
            vec![sni_ext(&[(0, b"a b")])],
            vec![sni_ext(&[(0, b"a\0b")])],
            vec![alpn_ext(&[])],
            vec![alpn_ext(&[b""])],
            // Inner lengths that overrun or underrun their extension.
            vec![(EXT_SERVER_NAME, vec![0, 9, 0, 0, 1, b'a'])],
            vec![(EXT_SERVER_NAME, vec![0, 4, 0, 0, 1, b'a', 0])],
            vec![(EXT_ALPN, vec![0, 4, 2, b'h', b'2'])],
            vec![(EXT_ALPN, vec![0, 3, 3, b'h', b'2'])],
        ];
        for exts in cases {
            let buf = hello(&exts);
            assert_eq!(parse_client_hello(&buf), HelloParse::NotTls, "{exts:?}");
            // The headers are fine, so the sniffer alone still matches.
            assert_eq!(sniff(&buf), Verdict::Match);
        }
        // Extensions block length disagreeing with the body.
        let mut b = body(&[alpn_ext(&[b"h2"])]);
        b.push(0);
        assert_eq!(
            parse_client_hello(&frame_records(&message(&b), 1 << 14)),
            HelloParse::NotTls
        );
        // A session id over 32 bytes.
        let mut b = body(&[]);
        b[34] = 33;
        b.splice(35..35, [0; 33]);
        assert_eq!(
            parse_client_hello(&frame_records(&message(&b), 1 << 14)),
            HelloParse::NotTls
        );
    }
}
