//! The tunnel session: one long-lived, authenticated HTTP/2 connection (the
//! `h2` crate) over any byte stream, carrying every forwarded TCP stream,
//! UDP flow and reverse bind of one client.
//!
//! The transport (TLS, WebSocket, QUIC…) is not this module's business: both
//! ends take anything `AsyncRead + AsyncWrite + Unpin + Send`.
//!
//! # Shape of a session
//!
//! 1. **Hello.** The client's first bytes are a 64-byte hello carrying its
//!    token, followed by random-length padding
//!    ([`onedoor_proto::tunnel::session`] has the layout). The server reads
//!    exactly those 64 bytes, calls the caller's `authenticate`, and only
//!    then answers anything: an unknown token, a first byte that is not a
//!    hello's or silence make [`server::accept`] give the connection back as
//!    [`server::Rejected`] with the bytes it read, for the caller to relay
//!    to its fallback website.
//! 2. **Reply.** An accepted client gets a tag proving the server read its
//!    hello, then random-length padding, then the server's HTTP/2 SETTINGS.
//!    The client sends its HTTP/2 preface right behind its hello without
//!    waiting (one write: hello, padding, preface and SETTINGS leave in
//!    one transport record), and [`client::Session::connect`] returns once the
//!    reply has been verified.
//! 3. **Streams.** Each forwarded TCP connection is a `CONNECT host:port`
//!    request; each UDP flow an extended CONNECT (`connect-udp`, RFC 9298)
//!    carrying DATAGRAM capsules (RFC 9297) so datagrams keep their
//!    boundaries; each reverse bind an extended CONNECT on which the server
//!    announces incoming connections, which the client claims with one more
//!    extended CONNECT each (HTTP/2 has no server-initiated streams). The
//!    server authorises **every** stream, flow and bind with the caller's
//!    `authorize` callback (an allow-list [`Request`] with the name as
//!    requested and every address it resolved to) before connecting, and
//!    connects only to those addresses.
//! 4. **Flow control** is HTTP/2's, per stream, with large windows
//!    ([`SessionOptions`]); END_STREAM is a TCP half-close in both
//!    directions.
//! 5. **Keepalive.** Both ends send PINGs when the session has been quiet for
//!    [`Keepalive::interval`] and give the session up when nothing at all has
//!    arrived for [`Keepalive::timeout`] (8 s by default, so a dead peer is
//!    noticed within 10 s).
//!
//! # Layout
//!
//! - [`client`]: [`client::Session`], [`client::ReverseListener`].
//! - [`server`]: [`server::accept`], [`server::Authenticated::serve`], the
//!   [`server::Connector`] that does the server's outbound connects and binds.
//! - [`TunnelStream`] (a forwarded TCP stream), [`UdpFlow`] (datagrams).
//! - [`join`]: copies between a socket and a stream, both directions,
//!   half-close preserved.
//!
//! [`Request`]: onedoor_proto::tunnel::Request

use std::time::Duration;

pub mod client;
mod error;
pub mod server;
mod stream;
mod udp;
mod wire;

#[cfg(test)]
mod tests;

pub use error::{AuthRefusal, ConnectError, OpenError, SessionError};
pub use stream::{join, join_opening, JoinError, Moved, TunnelStream};
pub use udp::{UdpFlow, UdpReceiver, UdpSender};

/// When to ping and when to give a silent peer up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Send a PING once nothing has arrived for this long.
    pub interval: Duration,
    /// Close the session once nothing has arrived for this long.
    pub timeout: Duration,
}

impl Default for Keepalive {
    /// Ping after 3 s of quiet, give up after 8 s of silence.
    fn default() -> Self {
        Keepalive {
            interval: Duration::from_secs(3),
            timeout: Duration::from_secs(8),
        }
    }
}

/// HTTP/2 settings and keepalive, the same on both ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOptions {
    /// Receive window of each stream, in bytes (HTTP/2's default of 64 KiB
    /// caps one stream at 64 KiB per round trip).
    pub stream_window: u32,
    /// Receive window of the whole connection, in bytes.
    pub connection_window: u32,
    /// Largest DATA frame accepted, 16 KiB to 16 MiB − 1.
    pub max_frame: u32,
    /// How much one stream may queue in the session before its writer waits.
    pub max_send_buffer: usize,
    /// Pings and dead-peer detection.
    pub keepalive: Keepalive,
}

impl Default for SessionOptions {
    /// 16 MiB per stream, 32 MiB per connection, 1 MiB frames (measured in
    /// ANCHORS §12 and docs/internals.md "Tunnel session").
    fn default() -> Self {
        SessionOptions {
            stream_window: 16 << 20,
            connection_window: 32 << 20,
            max_frame: 1 << 20,
            max_send_buffer: 1 << 20,
            keepalive: Keepalive::default(),
        }
    }
}

/// How much encrypted output a session's TLS may queue: one whole HTTP/2
/// frame (1 MiB, [`SessionOptions::max_frame`]) with room to spare.
/// rustls's default of 64 KiB took each frame's 9-byte head plus its
/// 64 KiB-multiple payload in 64 KiB bites and left 9 bytes over: a TLS
/// record, a `writev`, a TCP segment and a wake-up of the peer of their own,
/// once per frame (BENCHMARKS.md, issue 4 follow-up 2).
pub(crate) const TLS_WRITE_BUFFER: usize = (1 << 20) + (64 << 10);

/// Let a session's TLS connection queue [`TLS_WRITE_BUFFER`].
pub(crate) fn widen_tls_writes<D>(conn: &mut rustls::ConnectionCommon<D>) {
    conn.set_buffer_limit(Some(TLS_WRITE_BUFFER));
}

/// Fill `buf` from the OS's CSPRNG.
fn random(buf: &mut [u8]) -> std::io::Result<()> {
    getrandom::fill(buf).map_err(std::io::Error::other)
}
