//! The probe's wire messages: hello, reply and arrivals report, sealed and
//! opened with the server's fingerprint (see the [module docs](super) for
//! the byte layouts and why they resist active probing).
//!
//! Who calls what:
//! - the client ([`ProbeKey::seal`], [`ProbeKey::check_reply`],
//!   [`ProbeKey::parse_arrivals_chunk`]);
//! - serve ([`ProbeKey::parse`] / [`ProbeKey::parse_datagram`], then
//!   [`ReplayGuard::admit`], then [`ProbeKey::reply`] and, for an
//!   [`HelloKind::Arrivals`] hello, [`ProbeKey::arrivals_report`]).
//!
//! Everything is a pure function: the nonce, the run id and the time are
//! arguments; signing goes through the [`Signer`] trait.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::proxy_proto;
use crate::replay::{NonceGuard, NotAdmitted, WhenFull};
use crate::sniff::{tls, Protocol, Verdict};

type HmacSha256 = Hmac<Sha256>;

/// The probe protocol version this code speaks; carried inside the sealed
/// part of every message, never in clear.
pub const VERSION: u8 = 1;
/// Bytes of the hello's nonce (random, chosen by the client).
pub const NONCE_LEN: usize = 16;
/// Bytes of a probe run's id (random, chosen by the client once per run).
pub const RUN_ID_LEN: usize = 8;
/// Bytes of the hello's sealed fields: version, kind, port, time, run id.
const FIELDS_LEN: usize = 1 + 1 + 2 + 8 + RUN_ID_LEN;
/// Bytes of the hello's tag.
pub const TAG_LEN: usize = 16;
/// Bytes of a hello, on a stream or as a datagram.
pub const HELLO_LEN: usize = NONCE_LEN + FIELDS_LEN + TAG_LEN;
/// Bytes of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Bytes of the reply id that opens every reply.
pub const REPLY_ID_LEN: usize = 16;
/// Bytes of the reply's sealed body: version, port seen, key, signature.
const REPLY_BODY_LEN: usize = 1 + 2 + PUBLIC_KEY_LEN + SIGNATURE_LEN;
/// Bytes of a reply, on a stream or as a datagram.
pub const REPLY_LEN: usize = REPLY_ID_LEN + REPLY_BODY_LEN;
/// Bytes of one [`Arrival`] in a report chunk.
pub const ARRIVAL_LEN: usize = NONCE_LEN + 2;
/// The most arrivals one report chunk carries.
pub const ARRIVALS_PER_CHUNK: usize = 1024;
/// Bytes of a report chunk's header: version, flags, index, count.
const CHUNK_HEADER_LEN: usize = 1 + 1 + 2 + 2;
/// The longest report chunk, in bytes: a client reading one must be ready to
/// buffer this many.
pub const MAX_CHUNK_LEN: usize =
    CHUNK_HEADER_LEN + ARRIVALS_PER_CHUNK * ARRIVAL_LEN + SIGNATURE_LEN;
/// The most arrivals one report carries (65,536 chunks); more are left out.
pub const MAX_REPORTED_ARRIVALS: usize = (u16::MAX as usize + 1) * ARRIVALS_PER_CHUNK;

/// The DER prefix of an Ed25519 `SubjectPublicKeyInfo` (RFC 8410): the key's
/// 32 bytes follow it.
pub const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

// Domain-separation labels. Each ends with NUL and none is a prefix of
// another, and every input after a label has a fixed length, so no two uses
// of the key can ever hash the same bytes.
const LABEL_HELLO_MASK: &[u8] = b"onedoor probe hello mask\0";
const LABEL_HELLO_TAG: &[u8] = b"onedoor probe hello tag\0";
const LABEL_REPLY_ID: &[u8] = b"onedoor probe reply id\0";
const LABEL_REPLY_MASK: &[u8] = b"onedoor probe reply mask\0";
const LABEL_ARRIVALS_MASK: &[u8] = b"onedoor probe arrivals mask\0";
const SIGN_REPLY: &[u8] = b"onedoor probe reply signature\0";
const SIGN_ARRIVALS: &[u8] = b"onedoor probe arrivals signature\0";

/// The SHA-256 fingerprint of an Ed25519 public key: the hash of its DER
/// `SubjectPublicKeyInfo` ([`ED25519_SPKI_PREFIX`] then the key), the same
/// value as `openssl pkey -pubin -outform DER | sha256sum` and as an
/// SPKI pin of a certificate made with that key.
pub fn fingerprint(public_key: &[u8; PUBLIC_KEY_LEN]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(ED25519_SPKI_PREFIX);
    h.update(public_key);
    h.finalize().into()
}

/// The server's identity key, as serve uses it to sign replies. Implemented
/// for [`ed25519_dalek::SigningKey`]; a key kept elsewhere (a file opened
/// late, an agent) can implement it too.
pub trait Signer {
    /// The Ed25519 public key whose [`fingerprint`] clients pin.
    fn public_key(&self) -> [u8; PUBLIC_KEY_LEN];
    /// An Ed25519 signature (RFC 8032, deterministic) of `msg`.
    fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN];
}

impl Signer for ed25519_dalek::SigningKey {
    fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.verifying_key().to_bytes()
    }

    fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        ed25519_dalek::Signer::sign(self, msg).to_bytes()
    }
}

/// What a hello asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HelloKind {
    /// Probe a TCP door: the server replies on the connection.
    Tcp,
    /// Probe a UDP door: the server records the arrival and replies in a
    /// datagram.
    Udp,
    /// Over a TCP door: "which of this run's UDP hellos arrived?" The server
    /// replies as to a [`HelloKind::Tcp`] hello, then sends the arrivals
    /// report ([`ProbeKey::arrivals_report`]).
    Arrivals,
}

impl HelloKind {
    fn to_byte(self) -> u8 {
        match self {
            HelloKind::Tcp => 1,
            HelloKind::Udp => 2,
            HelloKind::Arrivals => 3,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(HelloKind::Tcp),
            2 => Some(HelloKind::Udp),
            3 => Some(HelloKind::Arrivals),
            _ => None,
        }
    }

    /// Does this kind travel on a TCP stream (as opposed to a datagram)?
    pub fn is_stream(self) -> bool {
        !matches!(self, HelloKind::Udp)
    }
}

/// A probe hello's contents, before sealing or after opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hello {
    /// What the hello asks for.
    pub kind: HelloKind,
    /// The port the client dialled.
    pub port: u16,
    /// Random bytes from the client, fresh for every hello (a retry is a new
    /// hello). Replies and reports are bound to it.
    pub nonce: [u8; NONCE_LEN],
    /// The client's clock, seconds since the Unix epoch; serve refuses hellos
    /// too far from its own ([`ReplayGuard`]).
    pub unix_secs: u64,
    /// The probe run's id (random, the same for every hello of one run), so
    /// an [`HelloKind::Arrivals`] query can name the UDP hellos it asks about.
    pub run: [u8; RUN_ID_LEN],
}

impl Hello {
    /// The sealed fields in clear: version, kind, port, time, run id.
    fn fields(&self) -> [u8; FIELDS_LEN] {
        let mut f = [0; FIELDS_LEN];
        f[0] = VERSION;
        f[1] = self.kind.to_byte();
        f[2..4].copy_from_slice(&self.port.to_be_bytes());
        f[4..12].copy_from_slice(&self.unix_secs.to_be_bytes());
        f[12..].copy_from_slice(&self.run);
        f
    }
}

/// What [`ProbeKey::parse`] makes of the bytes received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloParse {
    /// Fewer than [`HELLO_LEN`] bytes: read more. Any prefix of a hello (and
    /// of anything else) is this, since a hello is random-looking to the end.
    NeedMore,
    /// A hello sealed with this key.
    Hello(Hello),
    /// Sealed with this key but in a protocol version this code doesn't
    /// speak: a newer client. Serve should answer nothing and close (the
    /// sender holds the fingerprint, so a log line is worth it).
    Unsupported {
        /// The version the client speaks.
        version: u8,
    },
    /// Not a hello for this key (or a hello of the wrong transport):
    /// whatever follows. Serve passes the bytes on to its other routes.
    NotHello,
}

/// Why [`ProbeKey::seal`] refused a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// With this nonce, the hello's bytes would look like (the start of) the
    /// named protocol to serve's sniffers. Draw another nonce (this happens
    /// to about one nonce in a few hundred).
    #[error("with this nonce the hello looks like {0} to serve's sniffers; draw another nonce")]
    LooksLike(&'static str),
}

/// What a server that recorded a UDP hello reports about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arrival {
    /// The nonce of the hello that arrived.
    pub nonce: [u8; NONCE_LEN],
    /// The port it arrived on (the original destination, behind a redirect).
    pub port_seen: u16,
}

/// A reply that verified: it came from the holder of the pinned key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The port the server saw the hello arrive on. Differs from
    /// [`Hello::port`] when something on the way rewrote the port.
    pub port_seen: u16,
    /// The server's public key (its fingerprint is the pinned one); checks
    /// the arrivals report that may follow.
    pub public_key: [u8; PUBLIC_KEY_LEN],
}

/// What [`ProbeKey::check_reply`] makes of the bytes received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyCheck {
    /// So far the bytes could be our reply: read more.
    NeedMore,
    /// Our server's reply to this hello.
    Verified(Verified),
    /// Not a valid reply to this hello, whatever follows.
    Invalid(ReplyError),
}

/// Why bytes received after a hello are not a valid reply to it. Only
/// [`ReplyError::Foreign`] and [`ReplyError::Truncated`] can come from
/// someone who does not know the fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The bytes don't start with this hello's reply id: something else
    /// answered (a captive portal, a proxy, another service).
    #[error("the bytes are not a reply to this hello")]
    Foreign,
    /// The stream ended (or the wait timed out) after a correct start of a
    /// reply. Never returned by [`ProbeKey::check_reply`], which says
    /// `NeedMore` instead; the caller reports it when no more bytes come.
    #[error("the reply stopped short")]
    Truncated,
    /// A reply in a protocol version this code doesn't speak.
    #[error("a reply in probe protocol version {0}")]
    Version(u8),
    /// A well-formed reply signed by a key whose fingerprint is not the
    /// pinned one: someone who knows the fingerprint, but not our server.
    #[error("signed by a key whose fingerprint is not the pinned one")]
    WrongKey,
    /// The signature does not verify: the reply was altered on the way.
    #[error("the signature does not verify (the reply was altered)")]
    BadSignature,
}

/// One chunk of an arrivals report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrivalsChunk {
    /// The arrivals it lists (at most [`ARRIVALS_PER_CHUNK`]).
    pub arrivals: Vec<Arrival>,
    /// This is the report's last chunk.
    pub last: bool,
    /// Bytes the chunk took: the next chunk starts there.
    pub len: usize,
}

/// What [`ProbeKey::parse_arrivals_chunk`] makes of the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkParse {
    /// The chunk is not complete yet (it is at most [`MAX_CHUNK_LEN`] bytes).
    NeedMore,
    /// A complete, verified chunk.
    Chunk(ArrivalsChunk),
    /// Not a valid chunk: stop reading the report.
    Invalid(ReportError),
}

/// Why an arrivals report chunk was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The header makes no sense (wrong version, index, flags or count): not
    /// a chunk of this report, or out of order.
    #[error("not the expected chunk of this arrivals report")]
    Malformed,
    /// The signature does not verify: the report was altered on the way.
    #[error("the arrivals report's signature does not verify")]
    BadSignature,
}

/// Why [`ReplayGuard::admit`] refused a hello that opened correctly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The hello's time is further from the server's clock than the allowed
    /// skew: an old hello replayed, or a client with a wrong clock.
    #[error("the hello's time is too far from the server's clock")]
    Stale,
    /// This nonce was seen before: a replayed hello.
    #[error("the hello's nonce was seen before")]
    Replayed,
}

/// The key that seals and opens probe messages: derived from the server's
/// fingerprint, which is all the client knows. Cheap to clone; `Debug` does
/// not show it.
#[derive(Clone)]
pub struct ProbeKey {
    fingerprint: [u8; 32],
    /// HMAC-SHA256 keyed with the fingerprint, before any input.
    prf: HmacSha256,
}

impl fmt::Debug for ProbeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProbeKey(..)")
    }
}

impl ProbeKey {
    /// The key for the server whose identity key has this SHA-256
    /// [`fingerprint`].
    pub fn new(fingerprint: [u8; 32]) -> Self {
        let prf = HmacSha256::new_from_slice(&fingerprint).expect("HMAC takes keys of any length");
        ProbeKey { fingerprint, prf }
    }

    /// The pinned fingerprint.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    /// HMAC-SHA256(fingerprint, label ‖ parts…).
    fn prf(&self, label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut m = self.prf.clone();
        m.update(label);
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// XOR `out` with the keystream HMAC(label ‖ context ‖ block number),
    /// 32 bytes per block, from block 0.
    fn xor_stream(&self, label: &[u8], context: &[u8], out: &mut [u8]) {
        for (i, chunk) in out.chunks_mut(32).enumerate() {
            let block = self.prf(label, &[context, &(i as u32).to_be_bytes()]);
            for (o, k) in chunk.iter_mut().zip(block) {
                *o ^= k;
            }
        }
    }

    fn hello_tag(&self, nonce_and_sealed: &[u8]) -> [u8; 32] {
        self.prf(LABEL_HELLO_TAG, &[nonce_and_sealed])
    }

    /// The hello's bytes: nonce, sealed fields, tag ([`HELLO_LEN`] bytes).
    ///
    /// Refuses ([`SealError::LooksLike`]) a nonce that would make the bytes
    /// look like another protocol to serve's sniffers — any built-in sniffer
    /// other than `NoMatch`, a TLS ClientHello, a PROXY header — so a hello
    /// never delays or wins over another route's decision; draw another
    /// nonce and try again.
    pub fn seal(&self, hello: &Hello) -> Result<[u8; HELLO_LEN], SealError> {
        let bytes = self.seal_unchecked(hello);
        match looks_like(&bytes) {
            Some(name) => Err(SealError::LooksLike(name)),
            None => Ok(bytes),
        }
    }

    fn seal_unchecked(&self, hello: &Hello) -> [u8; HELLO_LEN] {
        let mut out = [0; HELLO_LEN];
        out[..NONCE_LEN].copy_from_slice(&hello.nonce);
        let sealed = &mut out[NONCE_LEN..NONCE_LEN + FIELDS_LEN];
        sealed.copy_from_slice(&hello.fields());
        self.xor_stream(LABEL_HELLO_MASK, &hello.nonce, sealed);
        let tag = self.hello_tag(&out[..NONCE_LEN + FIELDS_LEN]);
        out[NONCE_LEN + FIELDS_LEN..].copy_from_slice(&tag[..TAG_LEN]);
        out
    }

    /// Open exactly [`HELLO_LEN`] bytes: tag in constant time, then fields.
    fn open(&self, bytes: &[u8]) -> HelloParse {
        debug_assert_eq!(bytes.len(), HELLO_LEN);
        let (body, tag) = bytes.split_at(NONCE_LEN + FIELDS_LEN);
        let want = self.hello_tag(body);
        if !bool::from(want[..TAG_LEN].ct_eq(tag)) {
            return HelloParse::NotHello;
        }
        let mut nonce = [0; NONCE_LEN];
        nonce.copy_from_slice(&body[..NONCE_LEN]);
        let mut f = [0; FIELDS_LEN];
        f.copy_from_slice(&body[NONCE_LEN..]);
        self.xor_stream(LABEL_HELLO_MASK, &nonce, &mut f);
        if f[0] != VERSION {
            return HelloParse::Unsupported { version: f[0] };
        }
        let Some(kind) = HelloKind::from_byte(f[1]) else {
            return HelloParse::NotHello;
        };
        let mut run = [0; RUN_ID_LEN];
        run.copy_from_slice(&f[12..]);
        HelloParse::Hello(Hello {
            kind,
            port: u16::from_be_bytes([f[2], f[3]]),
            nonce,
            unix_secs: u64::from_be_bytes(f[4..12].try_into().expect("8 bytes")),
            run,
        })
    }

    /// Look at the first bytes of a TCP connection: is it a hello for this
    /// key? Prefix-consistent: `NeedMore` below [`HELLO_LEN`] bytes, then an
    /// answer decided by the first [`HELLO_LEN`] bytes alone (what follows
    /// them is not looked at). A [`HelloKind::Udp`] hello is `NotHello` here.
    pub fn parse(&self, buf: &[u8]) -> HelloParse {
        let Some(bytes) = buf.get(..HELLO_LEN) else {
            return HelloParse::NeedMore;
        };
        match self.open(bytes) {
            HelloParse::Hello(h) if !h.kind.is_stream() => HelloParse::NotHello,
            other => other,
        }
    }

    /// Look at one UDP datagram: is it a hello for this key? Only a datagram
    /// of exactly [`HELLO_LEN`] bytes holding a [`HelloKind::Udp`] hello is;
    /// never `NeedMore`.
    pub fn parse_datagram(&self, datagram: &[u8]) -> HelloParse {
        if datagram.len() != HELLO_LEN {
            return HelloParse::NotHello;
        }
        match self.open(datagram) {
            HelloParse::Hello(h) if h.kind != HelloKind::Udp => HelloParse::NotHello,
            other => other,
        }
    }

    /// The id that opens the reply to the hello with this nonce: random-looking
    /// to anyone without the fingerprint. A UDP client keys its outstanding
    /// probes by it to match reply datagrams to hellos.
    pub fn reply_id(&self, nonce: &[u8; NONCE_LEN]) -> [u8; REPLY_ID_LEN] {
        let mut id = [0; REPLY_ID_LEN];
        id.copy_from_slice(&self.prf(LABEL_REPLY_ID, &[nonce])[..REPLY_ID_LEN]);
        id
    }

    /// Serve's reply to `hello` ([`REPLY_LEN`] bytes), which arrived on
    /// `port_seen`: the reply id, then sealed: version, `port_seen`, the
    /// signer's public key, and its signature over the hello's fields, its
    /// nonce and `port_seen`.
    pub fn reply<S: Signer + ?Sized>(
        &self,
        hello: &Hello,
        port_seen: u16,
        signer: &S,
    ) -> [u8; REPLY_LEN] {
        let mut out = [0; REPLY_LEN];
        out[..REPLY_ID_LEN].copy_from_slice(&self.reply_id(&hello.nonce));
        let body = &mut out[REPLY_ID_LEN..];
        body[0] = VERSION;
        body[1..3].copy_from_slice(&port_seen.to_be_bytes());
        body[3..35].copy_from_slice(&signer.public_key());
        body[35..].copy_from_slice(&signer.sign(&reply_message(hello, port_seen)));
        self.xor_stream(LABEL_REPLY_MASK, &hello.nonce, body);
        out
    }

    /// Check the bytes received on a TCP connection after sending `hello`.
    ///
    /// Prefix-consistent: bytes that can't start this hello's reply are
    /// [`ReplyError::Foreign`] at once (a captive portal's `HTTP/1.1 302` is
    /// refused on its first byte); a correct start is `NeedMore` until
    /// [`REPLY_LEN`] bytes; then the answer depends on those bytes alone.
    /// Bytes after them (an arrivals report) are not looked at.
    pub fn check_reply(&self, hello: &Hello, buf: &[u8]) -> ReplyCheck {
        let id = self.reply_id(&hello.nonce);
        let n = buf.len().min(REPLY_ID_LEN);
        if !bool::from(buf[..n].ct_eq(&id[..n])) {
            return ReplyCheck::Invalid(ReplyError::Foreign);
        }
        let Some(reply) = buf.get(..REPLY_LEN) else {
            return ReplyCheck::NeedMore;
        };
        let mut body = [0; REPLY_BODY_LEN];
        body.copy_from_slice(&reply[REPLY_ID_LEN..]);
        self.xor_stream(LABEL_REPLY_MASK, &hello.nonce, &mut body);
        if body[0] != VERSION {
            return ReplyCheck::Invalid(ReplyError::Version(body[0]));
        }
        let port_seen = u16::from_be_bytes([body[1], body[2]]);
        let public_key: [u8; PUBLIC_KEY_LEN] = body[3..35].try_into().expect("32 bytes");
        if fingerprint(&public_key) != self.fingerprint {
            return ReplyCheck::Invalid(ReplyError::WrongKey);
        }
        let signature: [u8; SIGNATURE_LEN] = body[35..].try_into().expect("64 bytes");
        if !verify(&public_key, &reply_message(hello, port_seen), &signature) {
            return ReplyCheck::Invalid(ReplyError::BadSignature);
        }
        ReplyCheck::Verified(Verified {
            port_seen,
            public_key,
        })
    }

    /// Check one datagram received after sending the UDP `hello`: only a
    /// datagram of exactly [`REPLY_LEN`] bytes can be its reply. Never
    /// `NeedMore`; a shorter datagram that starts right is
    /// [`ReplyError::Truncated`].
    pub fn check_reply_datagram(&self, hello: &Hello, datagram: &[u8]) -> ReplyCheck {
        if datagram.len() > REPLY_LEN {
            return ReplyCheck::Invalid(ReplyError::Foreign);
        }
        match self.check_reply(hello, datagram) {
            ReplyCheck::NeedMore => ReplyCheck::Invalid(ReplyError::Truncated),
            other => other,
        }
    }

    /// The arrivals report serve sends after its reply to the
    /// [`HelloKind::Arrivals`] hello `query`: the UDP hellos of the query's
    /// run that arrived, in chunks of at most [`ARRIVALS_PER_CHUNK`], the
    /// last one flagged (an empty report is one empty last chunk). Each
    /// chunk is sealed and signed on its own, bound to the query, so the
    /// client can check it as it comes. At most [`MAX_REPORTED_ARRIVALS`]
    /// are sent.
    pub fn arrivals_report<S: Signer + ?Sized>(
        &self,
        query: &Hello,
        arrivals: &[Arrival],
        signer: &S,
    ) -> Vec<u8> {
        let arrivals = &arrivals[..arrivals.len().min(MAX_REPORTED_ARRIVALS)];
        let chunks: Vec<&[Arrival]> = if arrivals.is_empty() {
            vec![&[]]
        } else {
            arrivals.chunks(ARRIVALS_PER_CHUNK).collect()
        };
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            let index = u16::try_from(i).expect("bounded by MAX_REPORTED_ARRIVALS");
            let start = out.len();
            out.push(VERSION);
            out.push(u8::from(last));
            out.extend_from_slice(&index.to_be_bytes());
            let count = u16::try_from(chunk.len()).expect("at most ARRIVALS_PER_CHUNK");
            out.extend_from_slice(&count.to_be_bytes());
            for a in *chunk {
                out.extend_from_slice(&a.nonce);
                out.extend_from_slice(&a.port_seen.to_be_bytes());
            }
            let signature = signer.sign(&arrivals_message(query, &out[start..]));
            out.extend_from_slice(&signature);
            self.xor_stream(
                LABEL_ARRIVALS_MASK,
                &chunk_context(query, index),
                &mut out[start..],
            );
        }
        out
    }

    /// Read chunk number `index` (0, 1, … in order) of the arrivals report
    /// that follows the verified reply to the [`HelloKind::Arrivals`] hello
    /// `query`; `public_key` is [`Verified::public_key`] from that reply.
    ///
    /// Prefix-consistent: `NeedMore` until the chunk is complete (at most
    /// [`MAX_CHUNK_LEN`] bytes), a malformed header is refused as soon as
    /// its 6 bytes are there. Read from [`ArrivalsChunk::len`] for the next
    /// chunk, until one is [`ArrivalsChunk::last`].
    pub fn parse_arrivals_chunk(
        &self,
        query: &Hello,
        public_key: &[u8; PUBLIC_KEY_LEN],
        index: u16,
        buf: &[u8],
    ) -> ChunkParse {
        let Some(head) = buf.get(..CHUNK_HEADER_LEN) else {
            return ChunkParse::NeedMore;
        };
        let context = chunk_context(query, index);
        let mut header = [0; CHUNK_HEADER_LEN];
        header.copy_from_slice(head);
        self.xor_stream(LABEL_ARRIVALS_MASK, &context, &mut header);
        let count = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let flags = header[1];
        let valid = header[0] == VERSION
            && flags & !1 == 0
            && u16::from_be_bytes([header[2], header[3]]) == index
            && count <= ARRIVALS_PER_CHUNK
            && (count > 0 || flags == 1);
        if !valid {
            return ChunkParse::Invalid(ReportError::Malformed);
        }
        let len = CHUNK_HEADER_LEN + count * ARRIVAL_LEN + SIGNATURE_LEN;
        let Some(sealed) = buf.get(..len) else {
            return ChunkParse::NeedMore;
        };
        let mut plain = sealed.to_vec();
        self.xor_stream(LABEL_ARRIVALS_MASK, &context, &mut plain);
        let (signed, signature) = plain.split_at(len - SIGNATURE_LEN);
        let signature: [u8; SIGNATURE_LEN] = signature.try_into().expect("64 bytes");
        if !verify(public_key, &arrivals_message(query, signed), &signature) {
            return ChunkParse::Invalid(ReportError::BadSignature);
        }
        let arrivals = signed[CHUNK_HEADER_LEN..]
            .chunks_exact(ARRIVAL_LEN)
            .map(|e| Arrival {
                nonce: e[..NONCE_LEN].try_into().expect("16 bytes"),
                port_seen: u16::from_be_bytes([e[NONCE_LEN], e[NONCE_LEN + 1]]),
            })
            .collect();
        ChunkParse::Chunk(ArrivalsChunk {
            arrivals,
            last: flags == 1,
            len,
        })
    }
}

/// What the reply's signature covers: label, the hello's fields (version,
/// kind, port dialled, time, run), its nonce, and the port seen.
fn reply_message(hello: &Hello, port_seen: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGN_REPLY.len() + FIELDS_LEN + NONCE_LEN + 2);
    m.extend_from_slice(SIGN_REPLY);
    m.extend_from_slice(&hello.fields());
    m.extend_from_slice(&hello.nonce);
    m.extend_from_slice(&port_seen.to_be_bytes());
    m
}

/// What a report chunk's signature covers: label, the query's fields and
/// nonce, then the chunk in clear (header and arrivals).
fn arrivals_message(query: &Hello, chunk: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGN_ARRIVALS.len() + FIELDS_LEN + NONCE_LEN + chunk.len());
    m.extend_from_slice(SIGN_ARRIVALS);
    m.extend_from_slice(&query.fields());
    m.extend_from_slice(&query.nonce);
    m.extend_from_slice(chunk);
    m
}

/// The keystream context of report chunk `index`: the query's nonce and the
/// index, so every chunk has a keystream of its own.
fn chunk_context(query: &Hello, index: u16) -> [u8; NONCE_LEN + 2] {
    let mut c = [0; NONCE_LEN + 2];
    c[..NONCE_LEN].copy_from_slice(&query.nonce);
    c[NONCE_LEN..].copy_from_slice(&index.to_be_bytes());
    c
}

/// Strict Ed25519 verification (RFC 8032 with the checks of
/// `verify_strict`: no small-order keys, canonical signatures).
fn verify(public_key: &[u8; PUBLIC_KEY_LEN], msg: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_bytes(signature);
    key.verify_strict(msg, &sig).is_ok()
}

/// Would serve's other recognisers decide anything but "not mine" on these
/// bytes? Returns the name of the first one that would.
fn looks_like(bytes: &[u8]) -> Option<&'static str> {
    for p in Protocol::ALL {
        if matches!(p, Protocol::Regex | Protocol::Anyprot) {
            continue;
        }
        if p.sniff(bytes) != Verdict::NoMatch {
            return Some(p.name());
        }
    }
    if tls::parse_client_hello(bytes) != tls::HelloParse::NotTls {
        return Some("a TLS ClientHello");
    }
    if proxy_proto::parse(bytes) != proxy_proto::Parsed::NotProxy {
        return Some("a PROXY protocol header");
    }
    None
}

/// The default allowed difference between a hello's time and serve's clock,
/// in seconds. Generous, because a wrong client clock looks to the client
/// like silence on every door.
pub const DEFAULT_MAX_SKEW_SECS: u64 = 600;

/// The default number of nonces a [`ReplayGuard`] remembers: two full
/// 65,535-port runs with a retry each, within one skew window (under 20 MB).
pub const DEFAULT_REPLAY_CAPACITY: usize = 1 << 18;

/// Serve's memory of recent hellos, so a hello seen on the network can't be
/// replayed to learn that the server answers probes: a hello is admitted
/// once, and only while its time is within the allowed skew of serve's
/// clock. A nonce is remembered until its hello would be stale anyway.
///
/// Bounded: when `capacity` nonces are remembered, the one that would expire
/// soonest is forgotten. Only a holder of the fingerprint can fill it, and
/// then only replays of the forgotten hellos get through.
#[derive(Debug, Clone)]
pub struct ReplayGuard(NonceGuard<NONCE_LEN>);

impl ReplayGuard {
    /// A guard allowing `max_skew_secs` of clock difference and remembering
    /// at most `capacity` nonces (at least one).
    pub fn new(max_skew_secs: u64, capacity: usize) -> Self {
        ReplayGuard(NonceGuard::new(
            max_skew_secs,
            capacity,
            WhenFull::ForgetOldest,
        ))
    }

    /// Admit `hello` at `now_unix` (serve's clock, seconds since the epoch)?
    /// Serve calls this after the hello opened and before replying; a
    /// refused hello gets no answer at all.
    pub fn admit(&mut self, hello: &Hello, now_unix: u64) -> Result<(), Refused> {
        self.0
            .admit(hello.nonce, hello.unix_secs, now_unix)
            .map_err(|e| match e {
                NotAdmitted::Replayed => Refused::Replayed,
                NotAdmitted::Stale | NotAdmitted::Full => Refused::Stale,
            })
    }

    /// How many nonces are remembered.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Nothing remembered?
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    const NOW: u64 = 1_750_000_000;

    fn server() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn key() -> ProbeKey {
        ProbeKey::new(fingerprint(&server().public_key()))
    }

    fn hello(kind: HelloKind, port: u16, nonce_seed: u8) -> Hello {
        Hello {
            kind,
            port,
            nonce: [nonce_seed; NONCE_LEN],
            unix_secs: NOW,
            run: [0xa5; RUN_ID_LEN],
        }
    }

    /// A sealed hello with raw fields (any version, any kind byte).
    fn seal_fields(
        key: &ProbeKey,
        nonce: [u8; NONCE_LEN],
        fields: [u8; FIELDS_LEN],
    ) -> [u8; HELLO_LEN] {
        let mut out = [0; HELLO_LEN];
        out[..NONCE_LEN].copy_from_slice(&nonce);
        out[NONCE_LEN..NONCE_LEN + FIELDS_LEN].copy_from_slice(&fields);
        key.xor_stream(
            LABEL_HELLO_MASK,
            &nonce,
            &mut out[NONCE_LEN..NONCE_LEN + FIELDS_LEN],
        );
        let tag = key.hello_tag(&out[..NONCE_LEN + FIELDS_LEN]);
        out[NONCE_LEN + FIELDS_LEN..].copy_from_slice(&tag[..TAG_LEN]);
        out
    }

    /// Seal, drawing nonces from `seed` upwards until one is accepted.
    fn sealed(key: &ProbeKey, h: &mut Hello) -> [u8; HELLO_LEN] {
        for i in 0..=255u8 {
            h.nonce[0] = h.nonce[0].wrapping_add(i);
            if let Ok(b) = key.seal(h) {
                return b;
            }
        }
        panic!("no nonce accepted");
    }

    #[test]
    fn fingerprint_is_sha256_of_the_spki() {
        // RFC 8032 test 1's public key; the hash of its SPKI as computed by
        // `openssl pkey -pubin -outform DER | sha256sum`.
        let pk: [u8; 32] = [
            0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64,
            0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68,
            0xf7, 0x07, 0x51, 0x1a,
        ];
        let want = "06e3fd8fda29bb60ab59557de61edb0aecdb231134be30e75b455f8e1b792fa9";
        let got: String = fingerprint(&pk)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn sizes() {
        assert_eq!(HELLO_LEN, 52);
        assert_eq!(REPLY_LEN, 115);
        assert_eq!(MAX_CHUNK_LEN, 6 + 1024 * 18 + 64);
    }

    #[test]
    fn tcp_hello_roundtrip_and_prefixes() {
        let k = key();
        for kind in [HelloKind::Tcp, HelloKind::Arrivals] {
            let mut h = hello(kind, 443, 1);
            let bytes = sealed(&k, &mut h);
            for n in 0..HELLO_LEN {
                assert_eq!(k.parse(&bytes[..n]), HelloParse::NeedMore, "{n}");
            }
            assert_eq!(k.parse(&bytes), HelloParse::Hello(h));
            let mut more = bytes.to_vec();
            more.extend_from_slice(b"whatever follows");
            assert_eq!(k.parse(&more), HelloParse::Hello(h));
            assert_eq!(
                k.parse_datagram(&bytes),
                HelloParse::NotHello,
                "not a UDP hello"
            );
        }
    }

    #[test]
    fn udp_hello_only_as_a_datagram() {
        let k = key();
        let mut h = hello(HelloKind::Udp, 53, 2);
        let bytes = sealed(&k, &mut h);
        assert_eq!(k.parse_datagram(&bytes), HelloParse::Hello(h));
        assert_eq!(k.parse(&bytes), HelloParse::NotHello, "not on a stream");
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert_eq!(k.parse_datagram(&longer), HelloParse::NotHello);
        assert_eq!(
            k.parse_datagram(&bytes[..HELLO_LEN - 1]),
            HelloParse::NotHello
        );
    }

    #[test]
    fn wrong_fingerprint_is_not_hello() {
        let k = key();
        let other = ProbeKey::new(fingerprint(&SigningKey::from_bytes(&[8; 32]).public_key()));
        let mut h = hello(HelloKind::Tcp, 80, 3);
        let bytes = sealed(&other, &mut h);
        assert_eq!(k.parse(&bytes), HelloParse::NotHello);
        let mut u = hello(HelloKind::Udp, 80, 3);
        let bytes = sealed(&other, &mut u);
        assert_eq!(k.parse_datagram(&bytes), HelloParse::NotHello);
    }

    #[test]
    fn any_altered_byte_makes_a_hello_not_hello() {
        let k = key();
        let mut h = hello(HelloKind::Tcp, 22, 4);
        let bytes = sealed(&k, &mut h);
        for i in 0..HELLO_LEN {
            for flip in [0x01, 0x80, 0xff] {
                let mut b = bytes;
                b[i] ^= flip;
                assert_eq!(k.parse(&b), HelloParse::NotHello, "byte {i} ^ {flip:#x}");
            }
        }
    }

    #[test]
    fn other_versions_and_kinds() {
        let k = key();
        let h = hello(HelloKind::Tcp, 443, 5);
        let mut f = h.fields();
        f[0] = 2;
        assert_eq!(
            k.parse(&seal_fields(&k, h.nonce, f)),
            HelloParse::Unsupported { version: 2 }
        );
        assert_eq!(
            k.parse_datagram(&seal_fields(&k, h.nonce, f)),
            HelloParse::Unsupported { version: 2 }
        );
        let mut f = h.fields();
        for kind in [0, 4, 0xff] {
            f[1] = kind;
            assert_eq!(k.parse(&seal_fields(&k, h.nonce, f)), HelloParse::NotHello);
        }
    }

    #[test]
    fn sealed_hellos_look_like_nothing_else() {
        let k = key();
        let mut refused = 0;
        let mut rng = 0x0123_4567_89ab_cdef_u64;
        for _ in 0..4000 {
            let mut h = hello(HelloKind::Tcp, 443, 0);
            h.nonce[..8].copy_from_slice(&splitmix(&mut rng).to_le_bytes());
            h.nonce[8..].copy_from_slice(&splitmix(&mut rng).to_le_bytes());
            match k.seal(&h) {
                Ok(bytes) => {
                    for p in Protocol::ALL {
                        if !matches!(p, Protocol::Regex | Protocol::Anyprot) {
                            for n in 0..=HELLO_LEN {
                                assert_ne!(p.sniff(&bytes[..n]), Verdict::Match, "{p} at {n}");
                            }
                        }
                    }
                    assert_eq!(looks_like(&bytes), None);
                }
                Err(SealError::LooksLike(_)) => refused += 1,
            }
        }
        // A few in a thousand: the client redraws the nonce.
        eprintln!("{refused} of 4000 nonces refused");
        assert!(refused < 80, "{refused} of 4000 nonces refused");
        // The sniffers do say something about some random bytes, so the
        // check is not vacuous.
        assert!(refused > 0);
    }

    /// SplitMix64: random-looking test nonces without a dependency.
    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn a_socks5_looking_nonce_is_refused() {
        let k = key();
        let mut h = hello(HelloKind::Tcp, 443, 0);
        h.nonce[..3].copy_from_slice(&[5, 1, 0]);
        assert_eq!(k.seal(&h), Err(SealError::LooksLike("socks5")));
        h.nonce[..6].copy_from_slice(b"PROXY ");
        assert_eq!(
            k.seal(&h),
            Err(SealError::LooksLike("a PROXY protocol header"))
        );
        h.nonce[..8].copy_from_slice(b"SSH-2.0-");
        assert_eq!(k.seal(&h), Err(SealError::LooksLike("ssh")));
    }

    /// Over many messages for the same port, time and run, every byte
    /// position takes many values: there is no fixed marker to match.
    #[test]
    fn no_fixed_bytes() {
        let k = key();
        let s = server();
        let mut hellos = Vec::new();
        let mut replies = Vec::new();
        for i in 0..512u16 {
            let mut h = hello(HelloKind::Tcp, 443, 0);
            h.nonce[..2].copy_from_slice(&i.to_be_bytes());
            h.nonce[2] = 0x5a;
            if let Ok(b) = k.seal(&h) {
                hellos.push(b.to_vec());
                replies.push(k.reply(&h, 443, &s).to_vec());
            }
        }
        for (what, msgs) in [("hello", &hellos), ("reply", &replies)] {
            for pos in 0..msgs[0].len() {
                if what == "hello" && pos < NONCE_LEN {
                    continue; // the nonce is the test's own counter
                }
                let distinct: std::collections::BTreeSet<u8> =
                    msgs.iter().map(|m| m[pos]).collect();
                assert!(
                    distinct.len() > 150,
                    "{what} byte {pos}: {} values",
                    distinct.len()
                );
            }
        }
    }

    #[test]
    fn reply_verifies_and_carries_the_port_seen() {
        let k = key();
        let s = server();
        let h = hello(HelloKind::Tcp, 80, 6);
        let reply = k.reply(&h, 8080, &s);
        let want = ReplyCheck::Verified(Verified {
            port_seen: 8080,
            public_key: s.public_key(),
        });
        for n in 0..REPLY_LEN {
            assert_eq!(k.check_reply(&h, &reply[..n]), ReplyCheck::NeedMore, "{n}");
        }
        assert_eq!(k.check_reply(&h, &reply), want);
        let mut more = reply.to_vec();
        more.extend_from_slice(&[0; 40]);
        assert_eq!(k.check_reply(&h, &more), want);
        assert_eq!(k.check_reply_datagram(&h, &reply), want);
        assert_eq!(
            k.check_reply_datagram(&h, &more),
            ReplyCheck::Invalid(ReplyError::Foreign)
        );
        assert_eq!(
            k.check_reply_datagram(&h, &reply[..50]),
            ReplyCheck::Invalid(ReplyError::Truncated)
        );
        assert_eq!(&reply[..REPLY_ID_LEN], &k.reply_id(&h.nonce));
    }

    #[test]
    fn any_altered_reply_byte_fails() {
        let k = key();
        let s = server();
        let h = hello(HelloKind::Udp, 1194, 7);
        let reply = k.reply(&h, 1194, &s);
        for i in 0..REPLY_LEN {
            for flip in [0x01, 0x10, 0x80, 0xff] {
                let mut r = reply;
                r[i] ^= flip;
                let got = k.check_reply(&h, &r);
                assert!(
                    matches!(got, ReplyCheck::Invalid(_)),
                    "byte {i} ^ {flip:#x}: {got:?}"
                );
                if i < REPLY_ID_LEN {
                    assert_eq!(got, ReplyCheck::Invalid(ReplyError::Foreign));
                }
            }
        }
    }

    #[test]
    fn reply_is_bound_to_the_hello() {
        let k = key();
        let s = server();
        let h = hello(HelloKind::Tcp, 80, 8);
        let reply = k.reply(&h, 80, &s);
        // Another nonce: another reply id.
        let other = hello(HelloKind::Tcp, 80, 9);
        assert_eq!(
            k.check_reply(&other, &reply),
            ReplyCheck::Invalid(ReplyError::Foreign)
        );
        // Same nonce, but another port dialled, time, run or kind.
        let variants = [
            Hello { port: 81, ..h },
            Hello {
                unix_secs: NOW + 1,
                ..h
            },
            Hello {
                run: [0; RUN_ID_LEN],
                ..h
            },
            Hello {
                kind: HelloKind::Arrivals,
                ..h
            },
        ];
        for v in variants {
            assert_eq!(
                k.check_reply(&v, &reply),
                ReplyCheck::Invalid(ReplyError::BadSignature),
                "{v:?}"
            );
        }
    }

    #[test]
    fn reply_from_another_key_is_wrong_key() {
        // Someone who knows the fingerprint (so can seal) but not the key.
        let k = key();
        let impostor = SigningKey::from_bytes(&[9; 32]);
        let h = hello(HelloKind::Tcp, 443, 10);
        let reply = k.reply(&h, 443, &impostor);
        assert_eq!(
            k.check_reply(&h, &reply),
            ReplyCheck::Invalid(ReplyError::WrongKey)
        );
        // A server of another fingerprint: its replies are foreign to us.
        let other = ProbeKey::new(fingerprint(&impostor.public_key()));
        let reply = other.reply(&h, 443, &impostor);
        assert_eq!(
            k.check_reply(&h, &reply),
            ReplyCheck::Invalid(ReplyError::Foreign)
        );
    }

    #[test]
    fn a_reply_of_another_version() {
        let k = key();
        let s = server();
        let h = hello(HelloKind::Tcp, 443, 11);
        let mut reply = k.reply(&h, 443, &s);
        reply[REPLY_ID_LEN] ^= VERSION ^ 2;
        assert_eq!(
            k.check_reply(&h, &reply),
            ReplyCheck::Invalid(ReplyError::Version(2))
        );
    }

    #[test]
    fn captive_portal_is_foreign_at_once() {
        let k = key();
        let h = hello(HelloKind::Tcp, 80, 12);
        let portal = b"HTTP/1.1 302 Found\r\nLocation: http://portal.example/\r\n\r\n";
        let id = k.reply_id(&h.nonce);
        let first_wrong = portal.iter().zip(id).position(|(a, b)| *a != b).unwrap();
        assert_eq!(
            k.check_reply(&h, &portal[..=first_wrong]),
            ReplyCheck::Invalid(ReplyError::Foreign)
        );
        assert_eq!(
            k.check_reply(&h, portal),
            ReplyCheck::Invalid(ReplyError::Foreign)
        );
        assert_eq!(k.check_reply(&h, b""), ReplyCheck::NeedMore);
    }

    fn arrivals(n: usize) -> Vec<Arrival> {
        (0..n)
            .map(|i| Arrival {
                nonce: [(i % 251) as u8; NONCE_LEN],
                port_seen: (i % 65535 + 1) as u16,
            })
            .collect()
    }

    /// Read a whole report, chunk by chunk, checking prefixes of the first.
    fn read_report(
        k: &ProbeKey,
        q: &Hello,
        pk: &[u8; 32],
        bytes: &[u8],
    ) -> Result<Vec<Arrival>, ReportError> {
        let mut out = Vec::new();
        let mut at = 0;
        for index in 0.. {
            match k.parse_arrivals_chunk(q, pk, index, &bytes[at..]) {
                ChunkParse::NeedMore => panic!("report cut short at chunk {index}"),
                ChunkParse::Invalid(e) => return Err(e),
                ChunkParse::Chunk(c) => {
                    at += c.len;
                    out.extend(c.arrivals);
                    if c.last {
                        break;
                    }
                }
            }
        }
        assert_eq!(at, bytes.len(), "nothing left over");
        Ok(out)
    }

    #[test]
    fn arrivals_roundtrip() {
        let k = key();
        let s = server();
        let q = hello(HelloKind::Arrivals, 443, 13);
        for n in [
            0,
            1,
            2,
            ARRIVALS_PER_CHUNK - 1,
            ARRIVALS_PER_CHUNK,
            ARRIVALS_PER_CHUNK + 1,
            2500,
        ] {
            let list = arrivals(n);
            let bytes = k.arrivals_report(&q, &list, &s);
            let chunks = n.div_ceil(ARRIVALS_PER_CHUNK).max(1);
            assert_eq!(
                bytes.len(),
                chunks * (CHUNK_HEADER_LEN + SIGNATURE_LEN) + n * ARRIVAL_LEN
            );
            assert_eq!(
                read_report(&k, &q, &s.public_key(), &bytes),
                Ok(list),
                "{n}"
            );
        }
    }

    #[test]
    fn arrivals_chunk_prefixes_and_tampering() {
        let k = key();
        let s = server();
        let pk = s.public_key();
        let q = hello(HelloKind::Arrivals, 443, 14);
        let bytes = k.arrivals_report(&q, &arrivals(3), &s);
        for n in 0..bytes.len() {
            assert_eq!(
                k.parse_arrivals_chunk(&q, &pk, 0, &bytes[..n]),
                ChunkParse::NeedMore,
                "{n}"
            );
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            let got = k.parse_arrivals_chunk(&q, &pk, 0, &b);
            assert!(
                matches!(got, ChunkParse::Invalid(_) | ChunkParse::NeedMore),
                "byte {i}: {got:?}"
            );
        }
        // Wrong index, another query, another key.
        assert_eq!(
            k.parse_arrivals_chunk(&q, &pk, 1, &bytes),
            ChunkParse::Invalid(ReportError::Malformed)
        );
        let q2 = Hello { port: 80, ..q };
        assert_eq!(
            k.parse_arrivals_chunk(&q2, &pk, 0, &bytes),
            ChunkParse::Invalid(ReportError::BadSignature)
        );
        let other = SigningKey::from_bytes(&[9; 32]).public_key();
        assert_eq!(
            k.parse_arrivals_chunk(&q, &other, 0, &bytes),
            ChunkParse::Invalid(ReportError::BadSignature)
        );
    }

    #[test]
    fn replay_guard() {
        let mut g = ReplayGuard::new(600, 3);
        let h = hello(HelloKind::Udp, 53, 15);
        assert_eq!(g.admit(&h, NOW), Ok(()));
        assert_eq!(g.admit(&h, NOW), Err(Refused::Replayed));
        assert_eq!(g.admit(&h, NOW + 600), Err(Refused::Replayed));
        assert_eq!(g.admit(&h, NOW + 601), Err(Refused::Stale));
        // A clock that stepped back does not re-open a forgotten nonce.
        assert_eq!(g.admit(&h, NOW), Err(Refused::Stale));
        // A hello from a clock ahead of serve's, within the skew.
        let mut g = ReplayGuard::new(600, 3);
        assert_eq!(g.admit(&h, NOW), Ok(()));
        let early = Hello {
            nonce: [16; NONCE_LEN],
            ..h
        };
        assert_eq!(g.admit(&early, NOW - 601), Err(Refused::Stale));
        assert_eq!(g.admit(&early, NOW - 600), Ok(()));
        assert_eq!(g.len(), 2);
        // Once stale anyway, nonces are forgotten.
        let later = Hello {
            nonce: [17; NONCE_LEN],
            unix_secs: NOW + 1000,
            ..h
        };
        assert_eq!(g.admit(&later, NOW + 1000), Ok(()));
        assert_eq!(g.len(), 1);
        // Capacity: the soonest to expire is forgotten first.
        let mut g = ReplayGuard::new(600, 2);
        let a = Hello {
            nonce: [1; NONCE_LEN],
            unix_secs: NOW - 10,
            ..h
        };
        let b = Hello {
            nonce: [2; NONCE_LEN],
            ..h
        };
        let c = Hello {
            nonce: [3; NONCE_LEN],
            ..h
        };
        for x in [a, b, c] {
            assert_eq!(g.admit(&x, NOW), Ok(()));
        }
        assert_eq!(g.len(), 2);
        assert_eq!(g.admit(&b, NOW), Err(Refused::Replayed));
        assert_eq!(g.admit(&c, NOW), Err(Refused::Replayed));
        assert_eq!(g.admit(&a, NOW), Ok(()), "a was forgotten");
        let mut one = ReplayGuard::new(1, 0);
        assert_eq!(one.admit(&h, NOW), Ok(()), "capacity 0 still remembers one");
        assert_eq!(one.len(), 1);
    }

    fn any_hello(kind: impl Strategy<Value = HelloKind>) -> impl Strategy<Value = Hello> {
        (
            kind,
            any::<u16>(),
            any::<[u8; NONCE_LEN]>(),
            any::<u64>(),
            any::<[u8; RUN_ID_LEN]>(),
        )
            .prop_map(|(kind, port, nonce, unix_secs, run)| Hello {
                kind,
                port,
                nonce,
                unix_secs,
                run,
            })
    }

    fn stream_kind() -> impl Strategy<Value = HelloKind> {
        prop_oneof![Just(HelloKind::Tcp), Just(HelloKind::Arrivals)]
    }

    proptest! {
        #[test]
        fn hello_roundtrip(h in any_hello(stream_kind()), tail in proptest::collection::vec(any::<u8>(), 0..20)) {
            let k = key();
            if let Ok(bytes) = k.seal(&h) {
                prop_assert_eq!(k.parse(&bytes), HelloParse::Hello(h));
                let mut more = bytes.to_vec();
                more.extend_from_slice(&tail);
                prop_assert_eq!(k.parse(&more), HelloParse::Hello(h));
            }
        }

        #[test]
        fn udp_hello_roundtrip(h in any_hello(Just(HelloKind::Udp))) {
            let k = key();
            if let Ok(bytes) = k.seal(&h) {
                prop_assert_eq!(k.parse_datagram(&bytes), HelloParse::Hello(h));
            }
        }

        #[test]
        fn wrong_key_never_opens(h in any_hello(stream_kind()), fp in any::<[u8; 32]>()) {
            let k = key();
            prop_assume!(fp != *k.fingerprint());
            let bytes = ProbeKey::new(fp).seal_unchecked(&h);
            prop_assert_eq!(k.parse(&bytes), HelloParse::NotHello);
        }

        #[test]
        fn reply_roundtrip(h in any_hello(any_kind()), seen in any::<u16>()) {
            let k = key();
            let s = server();
            let r = k.reply(&h, seen, &s);
            prop_assert_eq!(
                k.check_reply(&h, &r),
                ReplyCheck::Verified(Verified { port_seen: seen, public_key: s.public_key() })
            );
        }

        #[test]
        fn random_bytes_never_panic_and_are_consistent(
            buf in proptest::collection::vec(any::<u8>(), 0..300),
            h in any_hello(any_kind()),
        ) {
            let k = key();
            let pk = server().public_key();
            let full_hello = k.parse(&buf);
            let full_reply = k.check_reply(&h, &buf);
            let full_chunk = k.parse_arrivals_chunk(&h, &pk, 0, &buf);
            let _ = k.parse_datagram(&buf);
            let _ = k.check_reply_datagram(&h, &buf);
            prop_assert!(!matches!(full_hello, HelloParse::Hello(_)));
            prop_assert!(!matches!(full_reply, ReplyCheck::Verified(_)));
            prop_assert!(!matches!(full_chunk, ChunkParse::Chunk(_)));
            for n in 0..buf.len() {
                let p = k.parse(&buf[..n]);
                if p != HelloParse::NeedMore { prop_assert_eq!(p, full_hello); }
                let r = k.check_reply(&h, &buf[..n]);
                if r != ReplyCheck::NeedMore { prop_assert_eq!(r, full_reply); }
                let c = k.parse_arrivals_chunk(&h, &pk, 0, &buf[..n]);
                if c != ChunkParse::NeedMore { prop_assert_eq!(&c, &full_chunk); }
            }
        }

        #[test]
        fn arrivals_roundtrip_any(
            q in any_hello(Just(HelloKind::Arrivals)),
            list in proptest::collection::vec((any::<[u8; NONCE_LEN]>(), any::<u16>()), 0..40),
        ) {
            let k = key();
            let s = server();
            let list: Vec<Arrival> = list.into_iter().map(|(nonce, port_seen)| Arrival { nonce, port_seen }).collect();
            let bytes = k.arrivals_report(&q, &list, &s);
            prop_assert_eq!(read_report(&k, &q, &s.public_key(), &bytes), Ok(list));
        }
    }

    fn any_kind() -> impl Strategy<Value = HelloKind> {
        prop_oneof![
            Just(HelloKind::Tcp),
            Just(HelloKind::Udp),
            Just(HelloKind::Arrivals)
        ]
    }
}
