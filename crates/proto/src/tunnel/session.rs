//! The tunnel session's own bytes, as pure codecs: the client hello that
//! authenticates a session before HTTP/2 starts, the server's reply to it,
//! QUIC variable-length integers, HTTP capsules (RFC 9297) and the request
//! paths of UDP flows, reverse binds and their claims.
//!
//! # The hello (client → server, before the HTTP/2 preface)
//!
//! ```text
//! offset  size  field
//! 0       4     door tag: SHA-256("onedoor tunnel door v1\0" ‖ server key
//!               fingerprint)[..4] ([`DoorTag`])
//! 4       1     version (1)
//! 5       2     pad_len, big endian, 0..=MAX_PAD
//! 7       25    nonce, random
//! 32      32    token
//! 64      pad_len  padding (zeros; the transport encrypts them)
//! ```
//!
//! The server reads exactly [`HELLO_LEN`] bytes, authenticates the token and
//! only then reads the padding, so a refused hello leaves everything after
//! the first 64 bytes unread for the fallback. The door tag is keyed by the
//! fingerprint of the server's key (which the client pinned, or read from
//! the certificate it verified): anyone else's first bytes differ from it at
//! once — a web client, a scanner, one byte of noise — and [`parse_hello`]
//! answers `NotOurs` at the first wrong byte, so the fallback answers as
//! fast as the website alone would. Only a sender who knows the fingerprint
//! (or guesses 32 bits) can make the server wait for the rest of the hello.
//!
//! # The reply (server → client, before the server's HTTP/2 SETTINGS)
//!
//! ```text
//! 0       16    tag = SHA-256("onedoor tunnel accept v1\0" ‖ nonce ‖ token)[..16]
//! 16      2     pad_len, big endian, 0..=MAX_PAD
//! 18      pad_len  padding
//! ```
//!
//! The tag tells the client that *this* server read *its* hello and
//! accepted the token: anything else in that place (the fallback website's
//! answer, a closed connection) means the token was not accepted.
//!
//! # Streams
//!
//! - TCP: `CONNECT` with `:authority` = `host:port` (RFC 9113 §8.5).
//! - UDP: extended CONNECT (RFC 8441) with `:protocol` [`PROTOCOL_UDP`] and
//!   the RFC 9298 path [`StreamPath::Udp`]; datagrams travel as DATAGRAM
//!   capsules ([`CAPSULE_DATAGRAM`], context ID 0) on the stream.
//! - Reverse bind: extended CONNECT, [`PROTOCOL_BIND`], [`StreamPath::Bind`];
//!   the server announces each incoming connection with an
//!   [`CAPSULE_INCOMING`] capsule, and the client claims it with an extended
//!   CONNECT, [`PROTOCOL_ACCEPT`], [`StreamPath::Accept`].
//!
//! Randomness comes in as arguments.

use std::fmt;
use std::ops::Range;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::token::{Token, TOKEN_LEN};
use crate::spec::{parse_port_digits, valid_host, HostPort};

/// The fixed part of the client hello, in bytes.
pub const HELLO_LEN: usize = 64;

/// The hello's version byte.
pub const HELLO_VERSION: u8 = 1;

/// The largest padding after a hello or a reply.
pub const MAX_PAD: u16 = 1024;

/// The fixed part of the server's reply, in bytes.
pub const REPLY_LEN: usize = 18;

/// The length of the accept tag.
pub const TAG_LEN: usize = 16;

/// The length of the hello's nonce.
pub const NONCE_LEN: usize = 25;

/// How many random bytes [`ClientHello::new`] takes.
pub const HELLO_RANDOM_LEN: usize = 32;

/// The length of the door tag that opens every hello.
pub const DOOR_TAG_LEN: usize = 4;

const TAG_LABEL: &[u8] = b"onedoor tunnel accept v1\0";
const DOOR_LABEL: &[u8] = b"onedoor tunnel door v1\0";

/// The first bytes of every hello to one server, derived from the
/// fingerprint of its key: a stranger's bytes are told apart at once.
/// `Default` is the tag of no key, for tests and in-process sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DoorTag([u8; DOOR_TAG_LEN]);

impl DoorTag {
    /// The tag of the server whose key has this fingerprint (the SHA-256 of
    /// its SubjectPublicKeyInfo, as pinned in access keys).
    pub fn for_key(fingerprint: &[u8; 32]) -> DoorTag {
        let mut h = Sha256::new();
        h.update(DOOR_LABEL);
        h.update(fingerprint);
        let d = h.finalize();
        let mut tag = [0u8; DOOR_TAG_LEN];
        tag.copy_from_slice(&d[..DOOR_TAG_LEN]);
        DoorTag(tag)
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8; DOOR_TAG_LEN] {
        &self.0
    }
}

/// `:protocol` of a UDP flow (RFC 9298).
pub const PROTOCOL_UDP: &str = "connect-udp";
/// `:protocol` of a reverse bind.
pub const PROTOCOL_BIND: &str = "onedoor-bind";
/// `:protocol` of the claim of an incoming connection on a reverse bind.
pub const PROTOCOL_ACCEPT: &str = "onedoor-accept";

/// Capsule type of an HTTP datagram (RFC 9297 §3.5).
pub const CAPSULE_DATAGRAM: u64 = 0x00;
/// Capsule type announcing an incoming connection on a reverse bind: a
/// varint connection ID, then the peer's address as text (`ip:port`).
pub const CAPSULE_INCOMING: u64 = 0x4f44;

/// The largest capsule payload accepted: a UDP datagram of 65535 bytes plus
/// its context ID, with room to spare.
pub const MAX_CAPSULE: usize = 65_600;

/// A client hello: the token that authenticates the session, a nonce and the
/// length of the padding that follows.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientHello {
    pad_len: u16,
    nonce: [u8; NONCE_LEN],
    token: Token,
}

impl fmt::Debug for ClientHello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHello")
            .field("pad_len", &self.pad_len)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl ClientHello {
    /// A hello for `token`, its nonce and padding length drawn from
    /// `random` (which the caller fills from a CSPRNG).
    pub fn new(token: Token, random: [u8; HELLO_RANDOM_LEN]) -> Self {
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&random[..NONCE_LEN]);
        let r = u16::from_be_bytes([random[NONCE_LEN], random[NONCE_LEN + 1]]);
        ClientHello {
            pad_len: r % (MAX_PAD + 1),
            nonce,
            token,
        }
    }

    /// The token.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// How many padding bytes follow the fixed part.
    pub fn pad_len(&self) -> u16 {
        self.pad_len
    }

    /// The fixed part on the wire, for the server whose door tag is `door`.
    /// The caller sends it followed by [`ClientHello::pad_len`] padding
    /// bytes.
    pub fn encode(&self, door: &DoorTag) -> [u8; HELLO_LEN] {
        let mut out = [0u8; HELLO_LEN];
        out[..DOOR_TAG_LEN].copy_from_slice(door.bytes());
        out[4] = HELLO_VERSION;
        out[5..7].copy_from_slice(&self.pad_len.to_be_bytes());
        out[7..32].copy_from_slice(&self.nonce);
        out[32..].copy_from_slice(self.token.expose_bytes());
        out
    }

    /// The tag the server proves acceptance with.
    pub fn accept_tag(&self) -> [u8; TAG_LEN] {
        let mut h = Sha256::new();
        h.update(TAG_LABEL);
        h.update(self.nonce);
        h.update(self.token.expose_bytes());
        let d = h.finalize();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&d[..TAG_LEN]);
        tag
    }
}

/// What the first bytes of a connection say about a hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloParse {
    /// A prefix of a well-formed hello: read more (never more than
    /// [`HELLO_LEN`] in all).
    NeedMore,
    /// Not a hello: hand everything read so far to the fallback.
    NotOurs,
    /// A complete, well-formed hello (the token is not checked here).
    Hello(ClientHello),
}

/// Judge the first bytes of a connection to the server whose door tag is
/// `door` (at most [`HELLO_LEN`] of them are looked at). `NotOurs` at the
/// first byte that differs from the door tag. Prefix-consistent: once a
/// prefix is `NotOurs` or `Hello`, every longer input gives the same answer.
pub fn parse_hello(buf: &[u8], door: &DoorTag) -> HelloParse {
    let n = buf.len().min(DOOR_TAG_LEN);
    if buf[..n] != door.bytes()[..n] {
        return HelloParse::NotOurs;
    }
    if let Some(&v) = buf.get(4) {
        if v != HELLO_VERSION {
            return HelloParse::NotOurs;
        }
    }
    if let Some(p) = buf.get(5..7) {
        if u16::from_be_bytes([p[0], p[1]]) > MAX_PAD {
            return HelloParse::NotOurs;
        }
    }
    let Some(b) = buf.get(..HELLO_LEN) else {
        return HelloParse::NeedMore;
    };
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&b[7..32]);
    let mut token = [0u8; TOKEN_LEN];
    token.copy_from_slice(&b[32..64]);
    HelloParse::Hello(ClientHello {
        pad_len: u16::from_be_bytes([b[5], b[6]]),
        nonce,
        token: Token::from_bytes(token),
    })
}

/// The server's reply to an accepted hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerReply {
    /// [`ClientHello::accept_tag`] of the hello it answers.
    pub tag: [u8; TAG_LEN],
    /// How many padding bytes follow, at most [`MAX_PAD`].
    pub pad_len: u16,
}

impl ServerReply {
    /// The reply to `hello`, with a padding length drawn from `random`.
    pub fn accepting(hello: &ClientHello, random: u16) -> Self {
        ServerReply {
            tag: hello.accept_tag(),
            pad_len: random % (MAX_PAD + 1),
        }
    }

    /// The fixed part on the wire, followed by `pad_len` padding bytes.
    pub fn encode(&self) -> [u8; REPLY_LEN] {
        let mut out = [0u8; REPLY_LEN];
        out[..TAG_LEN].copy_from_slice(&self.tag);
        out[TAG_LEN..].copy_from_slice(&self.pad_len.to_be_bytes());
        out
    }

    /// Parse the fixed part; `None` if the padding length is out of range.
    pub fn parse(buf: &[u8; REPLY_LEN]) -> Option<Self> {
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&buf[..TAG_LEN]);
        let pad_len = u16::from_be_bytes([buf[TAG_LEN], buf[TAG_LEN + 1]]);
        (pad_len <= MAX_PAD).then_some(ServerReply { tag, pad_len })
    }

    /// Does this reply accept `hello`? Constant-time.
    pub fn accepts(&self, hello: &ClientHello) -> bool {
        self.tag.ct_eq(&hello.accept_tag()).into()
    }
}

/// The largest value a QUIC variable-length integer holds.
pub const VARINT_MAX: u64 = (1 << 62) - 1;

/// Append `v` as a QUIC variable-length integer (RFC 9000 §16).
///
/// # Panics
/// If `v` > [`VARINT_MAX`].
pub fn put_varint(out: &mut Vec<u8>, v: u64) {
    assert!(v <= VARINT_MAX, "varint out of range");
    if v < 1 << 6 {
        out.push(v as u8);
    } else if v < 1 << 14 {
        out.extend_from_slice(&(v as u16 | 0x4000).to_be_bytes());
    } else if v < 1 << 30 {
        out.extend_from_slice(&(v as u32 | 0x8000_0000).to_be_bytes());
    } else {
        out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes());
    }
}

/// Read a varint from the start of `buf`: the value and its length, or
/// `None` if `buf` is too short.
pub fn get_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let len = 1usize << (first >> 6);
    let bytes = buf.get(..len)?;
    let mut v = u64::from(first & 0x3f);
    for &b in &bytes[1..] {
        v = (v << 8) | u64::from(b);
    }
    Some((v, len))
}

/// Why a capsule stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CapsuleError {
    /// A capsule longer than [`MAX_CAPSULE`].
    #[error("capsule of {0} bytes is larger than {MAX_CAPSULE}")]
    TooLong(u64),
}

/// One capsule found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapsuleRef {
    /// Its type.
    pub ty: u64,
    /// Where its payload is in the buffer.
    pub payload: Range<usize>,
    /// How many bytes the whole capsule took.
    pub len: usize,
}

/// Find the capsule at the start of `buf`: `Ok(None)` if it is not complete
/// yet (read more), an error if its declared length is too large.
pub fn parse_capsule(buf: &[u8]) -> Result<Option<CapsuleRef>, CapsuleError> {
    let Some((ty, a)) = get_varint(buf) else {
        return Ok(None);
    };
    let Some((len, b)) = get_varint(&buf[a..]) else {
        return Ok(None);
    };
    if len > MAX_CAPSULE as u64 {
        return Err(CapsuleError::TooLong(len));
    }
    let start = a + b;
    let end = start + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some(CapsuleRef {
        ty,
        payload: start..end,
        len: end,
    }))
}

/// Append a capsule header for a payload of `len` bytes.
pub fn put_capsule_header(out: &mut Vec<u8>, ty: u64, len: usize) {
    put_varint(out, ty);
    put_varint(out, len as u64);
}

/// The header (type, length, context ID 0) that goes in front of a UDP
/// payload of `len` bytes to make a DATAGRAM capsule.
pub fn datagram_header(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(6);
    put_capsule_header(&mut out, CAPSULE_DATAGRAM, len + 1);
    put_varint(&mut out, 0);
    out
}

/// The UDP payload of a DATAGRAM capsule's payload: `None` for a context ID
/// other than 0 (which RFC 9298 says to drop) or a truncated ID.
pub fn datagram_payload(capsule_payload: &[u8]) -> Option<&[u8]> {
    match get_varint(capsule_payload)? {
        (0, n) => Some(&capsule_payload[n..]),
        _ => None,
    }
}

/// The payload of an [`CAPSULE_INCOMING`] capsule.
pub fn incoming_payload(id: u64, peer: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + peer.len());
    put_varint(&mut out, id);
    out.extend_from_slice(peer.as_bytes());
    out
}

/// Parse an [`CAPSULE_INCOMING`] payload: the connection ID and the peer.
pub fn parse_incoming(payload: &[u8]) -> Option<(u64, &str)> {
    let (id, n) = get_varint(payload)?;
    Some((id, std::str::from_utf8(&payload[n..]).ok()?))
}

/// `host:port` as an HTTP authority: IPv6 in brackets.
pub fn authority(host: &str, port: u16) -> String {
    HostPort::new(host, port).to_string()
}

/// The `:path` of an extended CONNECT request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamPath {
    /// A UDP flow to this destination:
    /// `/.well-known/masque/udp/{host}/{port}/` (RFC 9298; `:` of IPv6
    /// percent-encoded).
    Udp(HostPort),
    /// A reverse bind on this address:
    /// `/.well-known/onedoor/bind/{host}/{port}/` (port 0: the server picks).
    Bind(HostPort),
    /// The claim of an announced incoming connection:
    /// `/.well-known/onedoor/accept/{id}/`.
    Accept(u64),
}

const UDP_PREFIX: &str = "/.well-known/masque/udp/";
const BIND_PREFIX: &str = "/.well-known/onedoor/bind/";
const ACCEPT_PREFIX: &str = "/.well-known/onedoor/accept/";

impl StreamPath {
    /// The path as sent.
    pub fn encode(&self) -> String {
        match self {
            StreamPath::Udp(hp) => {
                format!("{UDP_PREFIX}{}/{}/", hp.host.replace(':', "%3A"), hp.port)
            }
            StreamPath::Bind(hp) => {
                format!("{BIND_PREFIX}{}/{}/", hp.host.replace(':', "%3A"), hp.port)
            }
            StreamPath::Accept(id) => format!("{ACCEPT_PREFIX}{id}/"),
        }
    }

    /// Parse a path sent by [`StreamPath::encode`]; `None` for anything
    /// else (including a host that is no name or IP, or port 0 for UDP).
    pub fn parse(path: &str) -> Option<Self> {
        if let Some(rest) = path.strip_prefix(UDP_PREFIX) {
            let hp = host_port(rest)?;
            return (hp.port != 0).then_some(StreamPath::Udp(hp));
        }
        if let Some(rest) = path.strip_prefix(BIND_PREFIX) {
            return host_port(rest).map(StreamPath::Bind);
        }
        let id = path.strip_prefix(ACCEPT_PREFIX)?.strip_suffix('/')?;
        if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        id.parse().ok().map(StreamPath::Accept)
    }
}

/// `{host}/{port}/` with `%3A` for `:`.
fn host_port(s: &str) -> Option<HostPort> {
    let (host, rest) = s.split_once('/')?;
    let port = parse_port_digits(rest.strip_suffix('/')?)?;
    let host = host.replace("%3A", ":").replace("%3a", ":");
    valid_host(&host).then(|| HostPort::new(&host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hello(b: u8) -> ClientHello {
        ClientHello::new(Token::from_bytes([b; 32]), [b; 32])
    }

    fn door() -> DoorTag {
        DoorTag::for_key(&[5; 32])
    }

    #[test]
    fn hello_roundtrip_and_layout() {
        let d = door();
        let h = ClientHello::new(Token::from_bytes([7; 32]), std::array::from_fn(|i| i as u8));
        let wire = h.encode(&d);
        assert_eq!(&wire[..4], d.bytes());
        assert_eq!(wire[4], HELLO_VERSION);
        assert_eq!(h.pad_len(), u16::from_be_bytes([25, 26]) % (MAX_PAD + 1));
        assert_eq!(&wire[7..32], &(0u8..25).collect::<Vec<_>>()[..]);
        assert_eq!(&wire[32..], &[7u8; 32]);
        assert_eq!(parse_hello(&wire, &d), HelloParse::Hello(h.clone()));
        assert_eq!(parse_hello(&wire[..10], &d), HelloParse::NeedMore);
        assert_eq!(parse_hello(&[], &d), HelloParse::NeedMore);
        assert!(format!("{h:?}").contains("***"));
    }

    #[test]
    fn anything_but_the_door_tag_is_not_ours_at_its_first_wrong_byte() {
        let d = door();
        let t = *d.bytes();
        for first in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PRI * HTTP/2.0",
            b"SSH-2.0-",
            b"\x16\x03\x01",
            b"\x00",
            b"\x80",
        ] {
            if first[0] != t[0] {
                assert_eq!(
                    parse_hello(&first[..1], &d),
                    HelloParse::NotOurs,
                    "{first:?}"
                );
            }
        }
        // Another server's tag.
        let other = DoorTag::for_key(&[6; 32]);
        let h = hello(1).encode(&other);
        let wrong = (0..DOOR_TAG_LEN)
            .find(|&i| other.bytes()[i] != t[i])
            .unwrap();
        assert_eq!(parse_hello(&h[..=wrong], &d), HelloParse::NotOurs);
        assert_eq!(
            parse_hello(&[t[0], t[1], t[2], t[3], 2], &d),
            HelloParse::NotOurs
        );
        assert_eq!(
            parse_hello(&[t[0], t[1], t[2], t[3], 1, 0x04, 0x01], &d),
            HelloParse::NotOurs
        );
        assert_eq!(
            parse_hello(&[t[0], t[1], t[2], t[3], 1, 0x04, 0x00], &d),
            HelloParse::NeedMore
        );
    }

    #[test]
    fn reply_accepts_only_its_hello() {
        let (a, b) = (hello(1), hello(2));
        let r = ServerReply::accepting(&a, 5000);
        assert_eq!(r.pad_len, 5000 % (MAX_PAD + 1));
        assert!(r.accepts(&a));
        assert!(!r.accepts(&b));
        assert_eq!(ServerReply::parse(&r.encode()), Some(r));
        let mut bad = r.encode();
        bad[16..].copy_from_slice(&(MAX_PAD + 1).to_be_bytes());
        assert_eq!(ServerReply::parse(&bad), None);
        // Same token, other nonce: another tag.
        let c = ClientHello::new(Token::from_bytes([1; 32]), [3; 32]);
        assert!(!r.accepts(&c));
    }

    #[test]
    fn varints() {
        for (v, len) in [
            (0u64, 1),
            (63, 1),
            (64, 2),
            (16383, 2),
            (16384, 4),
            ((1 << 30) - 1, 4),
            (1 << 30, 8),
            (VARINT_MAX, 8),
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), len, "{v}");
            assert_eq!(get_varint(&out), Some((v, len)));
            assert_eq!(get_varint(&out[..len - 1]), None);
        }
        // RFC 9000 A.1 examples.
        assert_eq!(get_varint(&[0x25]), Some((37, 1)));
        assert_eq!(get_varint(&[0x7b, 0xbd]), Some((15293, 2)));
        assert_eq!(
            get_varint(&[0x9d, 0x7f, 0x3e, 0x7d]),
            Some((494_878_333, 4))
        );
    }

    #[test]
    fn capsules() {
        let mut wire = datagram_header(3);
        wire.extend_from_slice(b"abc");
        let c = parse_capsule(&wire).unwrap().unwrap();
        assert_eq!(c.ty, CAPSULE_DATAGRAM);
        assert_eq!(c.len, wire.len());
        assert_eq!(datagram_payload(&wire[c.payload]), Some(&b"abc"[..]));
        assert_eq!(parse_capsule(&wire[..wire.len() - 1]), Ok(None));
        assert_eq!(datagram_payload(&[0x01, b'x']), None);
        let mut big = Vec::new();
        put_capsule_header(&mut big, 0, MAX_CAPSULE + 1);
        assert_eq!(
            parse_capsule(&big),
            Err(CapsuleError::TooLong(MAX_CAPSULE as u64 + 1))
        );
        let p = incoming_payload(300, "[::1]:5000");
        assert_eq!(parse_incoming(&p), Some((300, "[::1]:5000")));
        // An empty datagram is a datagram too.
        let wire = datagram_header(0);
        let c = parse_capsule(&wire).unwrap().unwrap();
        assert_eq!(datagram_payload(&wire[c.payload]), Some(&b""[..]));
    }

    #[test]
    fn paths() {
        for p in [
            StreamPath::Udp(HostPort::new("dns.example", 53)),
            StreamPath::Udp(HostPort::new("::1", 53)),
            StreamPath::Bind(HostPort::new("127.0.0.1", 0)),
            StreamPath::Bind(HostPort::new("localhost", 8022)),
            StreamPath::Accept(0),
            StreamPath::Accept(u64::MAX),
        ] {
            assert_eq!(StreamPath::parse(&p.encode()), Some(p.clone()), "{p:?}");
        }
        assert_eq!(
            StreamPath::Udp(HostPort::new("::1", 53)).encode(),
            "/.well-known/masque/udp/%3A%3A1/53/"
        );
        for bad in [
            "/",
            "/.well-known/masque/udp/a b/53/",
            "/.well-known/masque/udp/h/0/",
            "/.well-known/masque/udp/h/53",
            "/.well-known/masque/udp/h/53/x",
            "/.well-known/masque/udp/a/b/53/",
            "/.well-known/onedoor/accept/x/",
            "/.well-known/onedoor/accept//",
            "/.well-known/onedoor/accept/99999999999999999999/",
        ] {
            assert_eq!(StreamPath::parse(bad), None, "{bad}");
        }
        assert_eq!(authority("::1", 22), "[::1]:22");
        assert_eq!(authority("h.lan", 22), "h.lan:22");
    }

    proptest! {
        #[test]
        fn hello_roundtrips(t in any::<[u8; 32]>(), r in any::<[u8; 32]>()) {
            let h = ClientHello::new(Token::from_bytes(t), r);
            prop_assert!(h.pad_len() <= MAX_PAD);
            let d = DoorTag::for_key(&r);
            prop_assert_eq!(parse_hello(&h.encode(&d), &d), HelloParse::Hello(h));
        }

        /// Once decided, the answer never changes with more bytes; a decision
        /// needs at most HELLO_LEN bytes.
        #[test]
        fn hello_prefix_consistent(
            mut buf in proptest::collection::vec(any::<u8>(), 0..80),
            tagged in any::<bool>(),
        ) {
            let d = door();
            if tagged && buf.len() >= DOOR_TAG_LEN {
                // Also walk inputs that get past the door tag.
                buf[..DOOR_TAG_LEN].copy_from_slice(d.bytes());
            }
            let mut decided: Option<HelloParse> = None;
            for n in 0..=buf.len() {
                let v = parse_hello(&buf[..n], &d);
                if let Some(d) = &decided {
                    prop_assert_eq!(&v, d);
                } else if v != HelloParse::NeedMore {
                    decided = Some(v);
                } else {
                    prop_assert!(n < HELLO_LEN);
                }
            }
        }

        #[test]
        fn varint_roundtrips(v in 0..=VARINT_MAX) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            prop_assert_eq!(get_varint(&out), Some((v, out.len())));
        }

        /// Capsules split anywhere parse the same once complete.
        #[test]
        fn capsule_stream_chunking(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6),
            cut in any::<proptest::sample::Index>(),
        ) {
            let mut wire = Vec::new();
            for p in &payloads {
                wire.extend(datagram_header(p.len()));
                wire.extend_from_slice(p);
            }
            let cut = cut.index(wire.len() + 1);
            let mut buf = wire[..cut].to_vec();
            let mut got = Vec::new();
            let mut fed = false;
            loop {
                match parse_capsule(&buf).unwrap() {
                    Some(c) => {
                        got.push(datagram_payload(&buf[c.payload.clone()]).unwrap().to_vec());
                        buf.drain(..c.len);
                    }
                    None if !fed => {
                        buf.extend_from_slice(&wire[cut..]);
                        fed = true;
                    }
                    None => break,
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got, payloads);
        }

        #[test]
        fn path_parse_never_panics(s in "/[.a-z%0-9A-F/:-]{0,60}") {
            if let Some(p) = StreamPath::parse(&s) {
                prop_assert_eq!(StreamPath::parse(&p.encode()), Some(p));
            }
        }
    }
}
