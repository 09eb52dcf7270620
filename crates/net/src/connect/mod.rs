//! `onedoor connect`'s engine: a [`Tunnel`] keeps one session to the door
//! alive (reconnecting with backoff and jitter when it dies), and the
//! forwards ([`forward`], [`socks5`]) take the current session for every
//! connection they carry, so listeners stay up through outages.
//!
//! - [`transport`]: how the door is reached and verified ([`TlsTransport`]).
//! - [`Dialer`]: transport + token → a [`Session`], failures classified
//!   ([`ConnectFailure`]) as unreachable, intercepted or refused.
//! - [`Tunnel`]: the supervisor.
//! - [`config`]: `client.toml`, many servers with their forwards.
//!
//! [`TlsTransport`]: transport::TlsTransport

use std::sync::Arc;
use std::time::Duration;

use onedoor_proto::spec::HostPort;
use onedoor_proto::tunnel::Token;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::tunnel::client::{ClientOptions, Session};
use crate::tunnel::{AuthRefusal, ConnectError, OpenError};
use onedoor_proto::tunnel::session::DoorTag;

pub mod config;
pub mod forward;
pub mod proxy;
pub mod socks5;
pub mod transport;

use transport::{Transport, TransportError};

/// Why no session could be had, by what the user does about it.
#[derive(Debug, thiserror::Error)]
pub enum ConnectFailure {
    /// The transport failed: the door is closed, filtered or the server
    /// down (also: the session could not start).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server did not accept the token.
    #[error("authentication refused by {server}: {refusal} (is the access key or token current?)")]
    AuthRefused {
        /// The door.
        server: HostPort,
        /// How it refused.
        refusal: AuthRefusal,
    },
    /// TLS was fine, then the session failed.
    #[error("server unreachable: {server}: {error}")]
    Session {
        /// The door.
        server: HostPort,
        /// What failed.
        error: ConnectError,
    },
}

/// What kind of failure, for exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Server unreachable (transport or session trouble).
    Unreachable,
    /// Door intercepted: another certificate, or not TLS 1.3.
    Intercepted,
    /// Authentication refused.
    AuthRefused,
    /// A forward refused by the server's allow-list.
    ForwardRefused,
    /// A configuration problem found late (bad server name…).
    Usage,
}

impl ConnectFailure {
    /// What kind of failure this is.
    pub fn kind(&self) -> FailureKind {
        match self {
            ConnectFailure::Transport(TransportError::Intercepted { .. }) => {
                FailureKind::Intercepted
            }
            ConnectFailure::Transport(TransportError::Setup(_)) => FailureKind::Usage,
            ConnectFailure::Transport(_) | ConnectFailure::Session { .. } => {
                FailureKind::Unreachable
            }
            ConnectFailure::AuthRefused { .. } => FailureKind::AuthRefused,
        }
    }
}

/// Everything needed to start a session with one server.
pub struct Dialer<T> {
    /// How to reach it.
    pub transport: T,
    /// Where (the access key's address, or `--server`).
    pub server: HostPort,
    /// The client's token. Never logged.
    pub token: Token,
    /// Session settings.
    pub options: ClientOptions,
}

impl<T: Transport> Dialer<T> {
    /// One attempt: transport, verification, token.
    pub async fn dial(&self) -> Result<Session, ConnectFailure> {
        let io = self.transport.connect(&self.server).await?;
        let mut options = self.options.clone();
        if let Some(key) = T::server_key(&io) {
            options.door = DoorTag::for_key(key.digest());
        }
        Session::connect(io, &self.token, &options)
            .await
            .map_err(|error| match error {
                ConnectError::AuthRefused(refusal) => ConnectFailure::AuthRefused {
                    server: self.server.clone(),
                    refusal,
                },
                error => ConnectFailure::Session {
                    server: self.server.clone(),
                    error,
                },
            })
    }
}

/// Reconnect pacing: exponential from `min` to `max`, each wait jittered
/// by ±25 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait.
    pub min: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The wait before attempt `n` (0-based), jittered with `r` in 0..1.
    pub fn wait(&self, n: u32, r: f64) -> Duration {
        let base = self
            .min
            .saturating_mul(1u32 << n.min(16))
            .min(self.max)
            .as_secs_f64();
        Duration::from_secs_f64(base * (0.75 + 0.5 * r.clamp(0.0, 1.0)))
    }
}

fn random_unit() -> f64 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX)
}

/// The session a [`Tunnel`] holds.
#[derive(Debug, Clone)]
enum State {
    Up(Session),
    Down,
    /// Gave up: the token is no longer accepted.
    Fatal(Arc<str>),
}

/// Why a forward could not get a session.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NoSession {
    /// The outage lasted longer than the forward may wait.
    #[error("no tunnel session within {0:?} (the server is unreachable; reconnecting)")]
    Timeout(Duration),
    /// The tunnel gave up.
    #[error("the tunnel gave up: {0}")]
    Fatal(Arc<str>),
}

/// One server's session, kept alive. Clones share it.
#[derive(Debug, Clone)]
pub struct Tunnel {
    state: watch::Receiver<State>,
    server: HostPort,
    /// How long a new connection waits for a session during an outage.
    pub wait: Duration,
}

impl Tunnel {
    /// Dial once (the result decides `connect`'s exit code), then keep the
    /// session up in a background task: when it dies, reconnect with
    /// `backoff`. A refused token after that ends the tunnel ([`NoSession::Fatal`],
    /// and the task returns the failure); everything else is retried.
    pub async fn start<T: Transport>(
        dialer: Dialer<T>,
        backoff: Backoff,
        wait: Duration,
    ) -> Result<(Tunnel, JoinHandle<ConnectFailure>), ConnectFailure> {
        let first = dialer.dial().await?;
        tracing::info!(server = %dialer.server, transport = dialer.transport.name(), "tunnel session up");
        let (tx, state) = watch::channel(State::Up(first.clone()));
        let server = dialer.server.clone();
        let task = tokio::spawn(async move {
            let mut session = first;
            loop {
                let why = session.closed().await;
                tx.send_replace(State::Down);
                tracing::warn!(server = %dialer.server, %why, "tunnel session lost; reconnecting");
                let mut n = 0;
                session = loop {
                    tokio::time::sleep(backoff.wait(n, random_unit())).await;
                    n = n.saturating_add(1);
                    match dialer.dial().await {
                        Ok(s) => break s,
                        Err(e @ ConnectFailure::AuthRefused { .. }) => {
                            tracing::error!("{e}");
                            tx.send_replace(State::Fatal(e.to_string().into()));
                            return e;
                        }
                        Err(e) => tracing::warn!("reconnect failed: {e}"),
                    }
                };
                tracing::info!(server = %dialer.server, "tunnel session up again");
                tx.send_replace(State::Up(session.clone()));
            }
        });
        Ok((
            Tunnel {
                state,
                server,
                wait,
            },
            task,
        ))
    }

    /// A tunnel over a session made elsewhere, never reconnected (tests).
    pub fn fixed(session: Session, server: HostPort) -> Tunnel {
        let (tx, state) = watch::channel(State::Up(session));
        // Keep the sender alive with the receiver: leak it into a task that
        // waits for the receiver to go.
        tokio::spawn(async move { tx.closed().await });
        Tunnel {
            state,
            server,
            wait: Duration::from_secs(10),
        }
    }

    /// The server this tunnel goes to.
    pub fn server(&self) -> &HostPort {
        &self.server
    }

    /// The live session, waiting up to [`Tunnel::wait`] during an outage.
    pub async fn session(&self) -> Result<Session, NoSession> {
        let mut rx = self.state.clone();
        let found = tokio::time::timeout(self.wait, async {
            loop {
                match &*rx.borrow_and_update() {
                    State::Up(s) if s.ended().is_none() => return Ok(s.clone()),
                    State::Fatal(why) => return Err(NoSession::Fatal(why.clone())),
                    _ => {}
                }
                // A session that ended but is not replaced yet: wait for
                // the supervisor (it polls `closed()`, so a change comes).
                tokio::select! {
                    r = rx.changed() => if r.is_err() {
                        return Err(NoSession::Fatal("the tunnel stopped".into()));
                    },
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        })
        .await;
        found.unwrap_or(Err(NoSession::Timeout(self.wait)))
    }
}

/// Why a forwarded connection failed: no session, or the server said no.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ForwardError {
    /// No session.
    #[error(transparent)]
    NoSession(#[from] NoSession),
    /// The server refused or could not reach the destination.
    #[error(transparent)]
    Open(#[from] OpenError),
}

impl ForwardError {
    /// Is it the allow-list's refusal?
    pub fn is_refused(&self) -> bool {
        matches!(self, ForwardError::Open(OpenError::Refused { .. }))
    }
}

/// Open a TCP stream through the tunnel's current session.
pub async fn open_tcp(
    tunnel: &Tunnel,
    host: &str,
    port: u16,
) -> Result<crate::tunnel::TunnelStream, ForwardError> {
    open_tcp_with(tunnel, host, port, bytes::Bytes::new()).await
}

/// Like [`open_tcp`], sending `first` along with the request (see
/// `Session::open_tcp_with`).
pub async fn open_tcp_with(
    tunnel: &Tunnel,
    host: &str,
    port: u16,
    first: bytes::Bytes,
) -> Result<crate::tunnel::TunnelStream, ForwardError> {
    let s = tunnel.session().await?;
    Ok(s.open_tcp_with(host, port, first).await?)
}

/// What a just-accepted local connection has already sent, without waiting
/// (clients that speak first usually have): it can travel with the stream's
/// request. Empty when nothing is there yet.
pub(crate) fn already_sent(sock: &tokio::net::TcpStream) -> bytes::Bytes {
    use std::os::fd::AsRawFd;
    let mut first = vec![0u8; 16 * 1024];
    // SAFETY: recv writes at most `first.len()` bytes into `first`.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            first.as_mut_ptr().cast(),
            first.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n <= 0 {
        // Nothing yet, or end/error: the stream's own pump will see it.
        return bytes::Bytes::new();
    }
    first.truncate(n as usize);
    bytes::Bytes::from(first)
}

#[cfg(test)]
mod tests;
