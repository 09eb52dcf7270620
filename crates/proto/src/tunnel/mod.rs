//! The pure parts of the tunnel (`onedoor connect`, `serve --tunnel`):
//!
//! - [`token`]: client [`Token`]s (256 random bits), their stored
//!   [`TokenHash`] (encoding, hashing and comparison rationale there), the
//!   [`Secret`] wrapper whose `Debug` masks.
//! - [`access_key`]: the pasteable [`AccessKey`]
//!   `onedoor://TOKEN@host:port?fp=SHA256:...`, server addresses with the
//!   default port 443 ([`parse_server`]), and the [`Fingerprint`].
//! - [`allow`]: per-client [`AllowList`]s and the rule that checks every
//!   stream, datagram flow and reverse bind, against the name and the
//!   addresses it resolved to (the rule and its reasons, with examples, are
//!   in that module's docs).
//! - [`session`]: the session's own bytes: the client hello and server
//!   reply around the HTTP/2 preface, capsules, stream paths.
//! - [`ticket`]: the WebSocket door's tickets (how serve knows a `ws`/`wss`
//!   request is ours) and their replay guard; [`upgrade`]: the WebSocket
//!   opening handshake's bytes.
//! - [`paths`]: which ways to the door `connect --transport auto` tries,
//!   in which order.
//!
//! The main types are re-exported here.
//!
//! Randomness comes in as bytes; nothing here resolves a name, opens a
//! socket or reads a clock.

pub mod access_key;
pub mod allow;
pub mod paths;
pub mod session;
pub mod ticket;
pub mod token;
pub mod upgrade;

pub use access_key::{
    parse_server, AccessKey, AccessKeyError, Fingerprint, FingerprintError, DEFAULT_PORT, SCHEME,
};
pub use allow::{
    classify, AccessKind, AddrClass, AllowError, AllowList, AllowListError, AllowPattern,
    HostPattern, Ports, Refusal, RefusalReason, Request,
};
pub use token::{Secret, Token, TokenError, TokenHash, TokenSalt, TOKEN_LEN, TOKEN_TEXT_LEN};
