//! The session's errors, split by what the caller does about them: a refused
//! token (fix the key), a refused forward (ask for a grant), an unreachable
//! destination, a session that ended (reconnect).

use std::fmt;
use std::io;
use std::time::Duration;

/// Why the server did not accept the client's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRefusal {
    /// The connection closed before the server's reply.
    Closed,
    /// Something other than the server's reply came back (the server hands
    /// unknown tokens to its fallback website, which answers instead).
    OtherAnswer,
}

impl fmt::Display for AuthRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthRefusal::Closed => "the server closed the connection without accepting the token",
            AuthRefusal::OtherAnswer => {
                "the server answered as something else (its fallback website?) \
                 instead of accepting the token"
            }
        })
    }
}

/// Why [`Session::connect`](super::client::Session::connect) failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The token was not accepted.
    #[error("authentication refused: {0}")]
    AuthRefused(AuthRefusal),
    /// The transport failed before the server answered.
    #[error("the tunnel session could not start: {0}")]
    Io(#[from] io::Error),
    /// No reply from the server in time.
    #[error("no answer from the server within {0:?}")]
    Timeout(Duration),
    /// The server accepted the token, then HTTP/2 failed.
    #[error("the tunnel session failed: {0}")]
    Session(SessionError),
}

/// Why a session ended (every stream on it ends too): reconnect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Nothing arrived from the peer for this long (keepalive).
    #[error("the peer went silent: nothing received for {0:?}")]
    PeerSilent(Duration),
    /// The peer closed the session.
    #[error("the peer closed the session")]
    Closed,
    /// The transport failed.
    #[error("the session's connection failed: {message}")]
    Io {
        /// What kind of failure.
        kind: io::ErrorKind,
        /// As the OS (or the transport) said it.
        message: String,
    },
    /// The peer broke the protocol.
    #[error("protocol error in the session: {0}")]
    Protocol(String),
}

impl SessionError {
    /// Classify an h2 connection-level error.
    pub(crate) fn from_h2(e: &h2::Error) -> Self {
        if let Some(io) = e.get_io() {
            if matches!(
                io.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe
            ) {
                return SessionError::Closed;
            }
            return SessionError::Io {
                kind: io.kind(),
                message: io.to_string(),
            };
        }
        if e.is_go_away() && e.reason() == Some(h2::Reason::NO_ERROR) {
            return SessionError::Closed;
        }
        SessionError::Protocol(e.to_string())
    }
}

/// Why opening a stream, a UDP flow or a reverse bind failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The client's allow-list does not cover it: ask for a grant.
    #[error("forward refused by the server's allow-list: {target}: {reason}")]
    Refused {
        /// What was asked for: `host:port`, `udp/host:port`, `bind/host:port`.
        target: String,
        /// Why, and what to grant (from the server).
        reason: String,
    },
    /// Allowed, but the server could not connect, resolve or bind.
    #[error("the server could not reach {target}: {reason}")]
    Unreachable {
        /// What was asked for.
        target: String,
        /// What went wrong at the server.
        reason: String,
    },
    /// The host or port cannot be sent.
    #[error("not a valid destination: {0}")]
    BadTarget(String),
    /// The server ended a reverse bind (its grant was revoked, or the
    /// listener failed).
    #[error("the server closed the reverse bind on {0}")]
    BindClosed(String),
    /// The session is gone: reconnect.
    #[error(transparent)]
    Session(SessionError),
    /// An answer the protocol does not allow.
    #[error("unexpected answer from the server for {target}: {what}")]
    Protocol {
        /// What was asked for.
        target: String,
        /// What came back.
        what: String,
    },
}
