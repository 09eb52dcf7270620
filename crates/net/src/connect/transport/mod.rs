//! How the client reaches the door: a [`Transport`] gives the session a
//! verified byte stream, and the session does not care which one it is.
//!
//! The shape is rathole's: `connect` on the client; `bind`, `accept` and
//! `handshake` on the server (so tests and a future server can use the same
//! transport). [`TlsTransport`] is TLS straight to the door;
//! [`DoorTransport`] (the client's) adds `wss`, `ws`, CONNECT proxies, the
//! inner layer and `auto` on top of it, without touching the session
//! ([`super::Tunnel`] is generic over the transport).

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use onedoor_proto::spec::HostPort;
use onedoor_proto::tunnel::Fingerprint;
use tokio::io::{AsyncRead, AsyncWrite};

pub mod door;
pub mod tls;

pub use door::{proxy_for, DoorMap, DoorOptions, DoorStream, DoorTransport, PathMemory};
pub use tls::{
    cert_fingerprint, crypto_provider, CertInfo, OuterSeen, TlsClientOptions, TlsTransport,
};

/// A way to reach the door. The client only needs [`Transport::connect`];
/// the server half (`bind`, `accept`, `handshake`) lets a listener speak
/// the same transport.
pub trait Transport: Send + Sync + 'static {
    /// The client's end of a connection, server identity verified.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The server's listener.
    type Acceptor: Send + Sync;
    /// A connection accepted but not yet handshaken.
    type Raw: Send;
    /// The server's end of a connection after the handshake.
    type ServerStream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The transport's name, as `--transport` takes it.
    fn name(&self) -> &'static str;

    /// Connect to the door at `server` and verify who answered. Nothing
    /// secret has been sent when this returns an error.
    fn connect(
        &self,
        server: &HostPort,
    ) -> impl Future<Output = Result<Self::Stream, TransportError>> + Send;

    /// Listen on `addr` (server side).
    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Acceptor>> + Send;

    /// The next connection to `acceptor` (server side).
    fn accept(
        &self,
        acceptor: &Self::Acceptor,
    ) -> impl Future<Output = io::Result<(Self::Raw, SocketAddr)>> + Send;

    /// The server's half of the handshake on an accepted connection.
    fn handshake(
        &self,
        raw: Self::Raw,
    ) -> impl Future<Output = io::Result<Self::ServerStream>> + Send;

    /// The fingerprint of the server key this connection verified (the
    /// pinned one, or the verified certificate's): the tunnel hello starts
    /// with a tag derived from it.
    fn server_key(stream: &Self::Stream) -> Option<Fingerprint>;
}

/// A TCP connection straight to `door` (NODELAY on), failures as
/// [`TransportError::Unreachable`].
pub(crate) async fn tcp_to(door: &HostPort) -> Result<tokio::net::TcpStream, TransportError> {
    let tcp = tokio::net::TcpStream::connect((door.host.as_str(), door.port))
        .await
        .map_err(|source| TransportError::Unreachable {
            server: door.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// What answered at the door instead of our server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// A certificate whose key is not the pinned one.
    WrongKey {
        /// The certificate that was presented.
        cert: CertInfo,
        /// The pinned fingerprint.
        expected: Fingerprint,
    },
    /// A certificate that does not verify against the system roots.
    Untrusted {
        /// The certificate that was presented.
        cert: CertInfo,
        /// Why it was refused.
        why: String,
    },
    /// Something that does not speak TLS 1.3 as we asked (a captive
    /// portal, a plain-HTTP proxy, an old TLS stack).
    NotOurTls(String),
    /// An HTTP server that did not take the WebSocket upgrade (a captive
    /// portal, a website without onedoor, a reverse proxy that does not
    /// pass upgrades).
    NotOurWebSocket(String),
}

impl fmt::Display for Answered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answered::WrongKey { cert, expected } => {
                write!(f, "{cert} (the pinned fingerprint is {expected})")
            }
            Answered::Untrusted { cert, why } => {
                write!(f, "{cert}, which the system roots do not vouch for: {why}")
            }
            Answered::NotOurTls(why) => {
                write!(f, "something that is not a TLS 1.3 server answered: {why}")
            }
            Answered::NotOurWebSocket(why) => {
                write!(f, "a web server that is not ours answered: {why}")
            }
        }
    }
}

/// Why a transport could not give a verified connection.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// TCP (or the TLS handshake's I/O) failed: nothing to verify yet.
    #[error("server unreachable: {server}: {source}")]
    Unreachable {
        /// The door.
        server: HostPort,
        /// What the OS said.
        source: io::Error,
    },
    /// No connection, or no handshake, in time.
    #[error("server unreachable: {server}: no answer within {after:?}")]
    Timeout {
        /// The door.
        server: HostPort,
        /// How long we waited.
        after: Duration,
    },
    /// Something answered that is not the server we expect: the door is
    /// intercepted. Nothing secret was sent.
    #[error("door {} is intercepted: {answered}", server.port)]
    Intercepted {
        /// The door.
        server: HostPort,
        /// What answered.
        answered: Answered,
    },
    /// The HTTP CONNECT proxy did not open the door.
    #[error(transparent)]
    Proxy(Box<crate::connect::proxy::ProxyError>),
    /// The transport cannot be set up here (no system roots, bad name).
    #[error("{0}")]
    Setup(String),
}
