//! `onedoor probe` as pure code: the hello, reply and arrivals report that
//! travel through each door, the port lists, and the classification of what
//! came back into one state per port (SPEC §3).
//!
//! - [`hello`]: seal and open the wire messages ([`ProbeKey`]), serve's
//!   [`ReplayGuard`], the [`Signer`] of replies.
//! - [`classify`]: attempts on one port → [`Next`] step or [`PortState`].
//! - [`ports`]: `1-65535`, `top100`, `22,80,443` → [`PortSet`], and back to
//!   compact ranges for the table.
//! - [`reflect`]: serve's `--reflect` spec and its log of UDP arrivals.
//!
//! Nothing here reads a clock, draws random bytes or touches a socket: the
//! nonce, the run id and the time are arguments.
//!
//! # Keys
//!
//! The client knows only the server's *fingerprint*: the SHA-256 of its
//! Ed25519 identity key's DER `SubjectPublicKeyInfo` ([`fingerprint`]). Two
//! things come from it:
//! - a keyed PRF, HMAC-SHA256(fingerprint, label ‖ input) with a distinct
//!   NUL-terminated label per use, which seals the hello (mask and tag) and
//!   masks the reply and the report ([`ProbeKey`]);
//! - the check of the server's key: a reply carries the public key, whose
//!   fingerprint must be the pinned one, and an Ed25519 signature by it.
//!
//! # Wire format (version 1)
//!
//! All integers big-endian; `⊕ mask` is XOR with the PRF's keystream
//! (32-byte blocks `HMAC(fp, label ‖ context ‖ u32 block)`).
//!
//! **Hello** — 52 bytes, the same on a TCP connection (first bytes) and as
//! a UDP datagram (exactly):
//!
//! ```text
//!  0..16  nonce                    random, from the client, fresh per hello
//! 16..36  fields ⊕ mask(nonce)     version u8 (=1), kind u8 (1 tcp, 2 udp,
//!                                  3 arrivals), port dialled u16,
//!                                  unix time u64, run id [8]
//! 36..52  tag                      HMAC(fp, "…hello tag" ‖ bytes 0..36)[..16]
//! ```
//!
//! **Reply** — 115 bytes, on the connection or as one datagram:
//!
//! ```text
//!  0..16  reply id                 HMAC(fp, "…reply id" ‖ nonce)[..16]
//! 16..115 body ⊕ mask(nonce)       version u8, port seen u16,
//!                                  Ed25519 public key [32], signature [64]
//! ```
//!
//! The signature covers `"onedoor probe reply signature\0"`, the hello's
//! fields in clear (version, kind, port dialled, time, run id), its nonce and
//! the port seen. The client checks, in order: the id (else *foreign*), the
//! version, SHA-256(SPKI(key)) = fingerprint (else *another key*), the
//! signature (else *altered*); then compares the port seen with the port
//! dialled (a difference is a NAT rewrite).
//!
//! **Arrivals report** — after the reply to a kind-3 hello (sent over an
//! open TCP door), the UDP hellos of the same run id that reached the
//! server, in chunks of at most 1,024:
//!
//! ```text
//! (version u8, flags u8 (bit 0: last), index u16, count u16,
//!  count × (nonce [16], port seen u16), signature [64]) ⊕ mask(nonce ‖ index)
//! ```
//!
//! signed over `"onedoor probe arrivals signature\0"`, the query's fields and
//! nonce, and the chunk in clear; checked with the key of the verified reply.
//!
//! # Why a scanner learns nothing
//!
//! - **No fixed marker.** Every byte of a hello is either the client's random
//!   nonce, masked with a keystream only fingerprint holders can compute, or
//!   a tag only they can compute: to anyone else it is 52 random bytes. The
//!   version byte, the port and the time are inside the masked part. Replies
//!   and reports are masked the same way, so even the server's public key,
//!   the same in every reply, never appears in clear for a passive observer
//!   to match (tested: over many hellos and replies no byte position is
//!   constant).
//! - **Answered only with proof.** Serve answers only a hello whose tag
//!   verifies (in constant time); anything else, including a hello sealed
//!   with another fingerprint, is [`HelloParse::NotHello`] and goes on to
//!   serve's other routes like any connection, so a scanner sees what any
//!   other client would see.
//! - **No replays.** A hello seen on the wire (by the very network being
//!   mapped) can't be sent again to find out whether the server answers:
//!   [`ReplayGuard`] admits each nonce once, and only within a clock skew
//!   window, so it can remember every nonce until it would be stale anyway.
//! - **Nothing forgeable for the client.** A middlebox can't turn an
//!   intercepted port into `open`: the reply is signed by the key the
//!   fingerprint pins, over the client's nonce and the port dialled; and it
//!   can't hide a NAT rewrite, since the port seen is signed too.
//!
//! Limits, stated plainly: the fingerprint is the only secret, so whoever
//! learns it (from an access key, or by hashing a TLS certificate made with
//! the same identity key) can make serve answer a probe hello and so learn
//! that it runs onedoor; serve should therefore not show its identity key to
//! unauthenticated peers. The sizes are fixed (52 and 115 bytes), which a
//! passive observer can count. A hello doesn't hide that it is *a* probe from
//! someone watching many ports being tried at once.
//!
//! # For serve's router
//!
//! A hello needs 52 bytes before [`ProbeKey::parse`] decides, while some
//! protocols send fewer and wait (a SOCKS5 greeting is 3 bytes). Every hello
//! is sealed so that all of onedoor's built-in sniffers, the TLS ClientHello
//! parser and the PROXY header parser say "no" to its bytes
//! ([`ProbeKey::seal`] refuses the rare nonce that would make them say
//! anything else). So the router may let a built-in sniffer's `Match` win
//! while the probe hello still says `NeedMore`, without ever misrouting a
//! hello; only `regex` and `anyprot` routes, which match arbitrary bytes,
//! must wait for the 52 bytes (or the timeout).
//!
//! # The client, per port
//!
//! Draw a nonce and seal a [`Hello`] (redraw on [`SealError`]); send it;
//! feed what comes back to [`ProbeKey::check_reply`] (TCP) or match
//! datagrams by [`ProbeKey::reply_id`] and check them with
//! [`ProbeKey::check_reply_datagram`] (UDP); record the attempt and ask
//! [`classify_tcp`] / [`classify_udp`] what next. After the UDP pass, send a
//! [`HelloKind::Arrivals`] hello through an open TCP door and read the report
//! with [`ProbeKey::parse_arrivals_chunk`].

pub mod classify;
pub mod hello;
pub mod ports;
pub mod reflect;

pub use classify::{
    classify_tcp, classify_udp, ArrivalStatus, Exchange, Interception, Next, PortState, Refusal,
    State, TcpAttempt, UdpAttempt, MAX_TRIES,
};
pub use ed25519_dalek::SigningKey;
pub use hello::{
    fingerprint, Arrival, ArrivalsChunk, ChunkParse, Hello, HelloKind, HelloParse, ProbeKey,
    Refused, ReplayGuard, ReplyCheck, ReplyError, ReportError, SealError, Signer, Verified,
    HELLO_LEN, NONCE_LEN, REPLY_LEN, RUN_ID_LEN,
};
pub use ports::{PortSet, PortsError, PortsProblem, TOP100};
pub use reflect::{ArrivalsLog, ReflectSpec, ReflectSpecError};
