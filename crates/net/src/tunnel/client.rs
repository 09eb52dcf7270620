//! The client end of a session: [`Session::connect`] authenticates over a
//! transport the caller set up, then [`Session::open_tcp`],
//! [`Session::open_udp`] and [`Session::bind`] open streams, flows and
//! reverse binds on it, from any number of tasks (a `Session` is a cheap
//! clone).

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{RecvStream, SendStream};
use http::{Method, Request, StatusCode, Uri};
use onedoor_proto::spec::HostPort;
use onedoor_proto::tunnel::session::{
    authority, parse_incoming, ClientHello, DoorTag, StreamPath, CAPSULE_INCOMING, HELLO_LEN,
    HELLO_RANDOM_LEN, PROTOCOL_ACCEPT, PROTOCOL_BIND, PROTOCOL_UDP,
};
use onedoor_proto::tunnel::Token;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, watch};

use super::error::{AuthRefusal, ConnectError, OpenError, SessionError};
use super::server::BOUND_HEADER;
use super::stream::TunnelStream;
use super::udp::{CapsuleReader, UdpFlow};
use super::wire::{keepalive, Activity, ReplyCheck, Wire};
use super::SessionOptions;

/// How the client sets a session up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// HTTP/2 settings and keepalive.
    pub session: SessionOptions,
    /// How long to wait for the server to accept the token.
    pub handshake_timeout: Duration,
    /// The server's door tag (`DoorTag::for_key` of the fingerprint of the
    /// key its TLS presented): the hello's first bytes.
    pub door: DoorTag,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            session: SessionOptions::default(),
            handshake_timeout: Duration::from_secs(10),
            door: DoorTag::default(),
        }
    }
}

/// A live, authenticated session. Clones share it; it ends when the peer
/// goes away (see [`Session::closed`]) or when every clone, stream, flow
/// and listener is dropped.
#[derive(Clone)]
pub struct Session {
    send: SendRequest<Bytes>,
    end: watch::Receiver<Option<SessionError>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("ended", &*self.end.borrow())
            .finish_non_exhaustive()
    }
}

/// Aborts the driver of a session that failed to start. A started
/// session's driver ends by itself with the connection.
struct DriverGuard {
    abort: Option<tokio::task::AbortHandle>,
}

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(a) = self.abort.take() {
            a.abort();
        }
    }
}

/// An answer to a request, judged.
enum Answer {
    Ok(http::response::Parts, RecvStream),
    NotFound,
}

impl Session {
    /// Authenticate with `token` over `io` (a transport already connected to
    /// the server, its identity already verified by the caller) and start the
    /// session. Returns once the server has accepted the token.
    ///
    /// Spawns the session's driver (HTTP/2 and keepalive) on the current
    /// tokio runtime.
    pub async fn connect<T>(
        io: T,
        token: &Token,
        opts: &ClientOptions,
    ) -> Result<Session, ConnectError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut r = [0u8; HELLO_RANDOM_LEN];
        super::random(&mut r)?;
        let hello = ClientHello::new(token.clone(), r);
        let mut first = Vec::with_capacity(HELLO_LEN + usize::from(hello.pad_len()) + 128);
        first.extend_from_slice(&hello.encode(&opts.door));
        first.resize(HELLO_LEN + usize::from(hello.pad_len()), 0);
        let (verdict_tx, verdict_rx) = oneshot::channel();
        let activity = Arc::new(Activity::new());
        let wire = Wire::client(
            io,
            first,
            ReplyCheck::new(hello, verdict_tx),
            activity.clone(),
        );
        let o = &opts.session;
        let (send, mut conn) = h2::client::Builder::new()
            .initial_window_size(o.stream_window)
            .initial_connection_window_size(o.connection_window)
            .max_frame_size(o.max_frame)
            .max_send_buffer_size(o.max_send_buffer)
            .enable_push(false)
            .handshake::<_, Bytes>(wire)
            .await
            .map_err(|e| ConnectError::Session(SessionError::from_h2(&e)))?;
        let pings = conn.ping_pong().ok_or_else(|| {
            ConnectError::Session(SessionError::Protocol("no ping handle".into()))
        })?;
        let (end_tx, end) = watch::channel(None);
        let ka = o.keepalive;
        let driver = tokio::spawn(async move {
            let why = tokio::select! {
                r = conn => match r {
                    Ok(()) => SessionError::Closed,
                    Err(e) => SessionError::from_h2(&e),
                },
                silence = keepalive(pings, activity, ka) => SessionError::PeerSilent(silence),
            };
            tracing::debug!(%why, "tunnel session ended");
            end_tx.send_replace(Some(why));
        });
        let mut guard = DriverGuard {
            abort: Some(driver.abort_handle()),
        };
        let verdict = tokio::time::timeout(opts.handshake_timeout, verdict_rx).await;
        match verdict {
            Err(_) => Err(ConnectError::Timeout(opts.handshake_timeout)),
            Ok(Ok(Ok(()))) => {
                guard.abort = None;
                Ok(Session { send, end })
            }
            Ok(Ok(Err(refusal))) => Err(ConnectError::AuthRefused(refusal)),
            Ok(Err(_)) => {
                // The driver ended before the reply: why?
                let mut end = end;
                let why = end
                    .wait_for(Option::is_some)
                    .await
                    .ok()
                    .and_then(|w| w.clone());
                match why {
                    Some(SessionError::Io { kind, message }) => {
                        Err(ConnectError::Io(std::io::Error::new(kind, message)))
                    }
                    _ => Err(ConnectError::AuthRefused(AuthRefusal::Closed)),
                }
            }
        }
    }

    /// Why the session ended, once it has.
    pub fn ended(&self) -> Option<SessionError> {
        self.end.borrow().clone()
    }

    /// Wait until the session ends and say why (the reconnect loop's cue).
    pub async fn closed(&self) -> SessionError {
        let mut end = self.end.clone();
        let r = end.wait_for(Option::is_some).await;
        r.ok()
            .and_then(|w| w.clone())
            .unwrap_or(SessionError::Closed)
    }

    fn gone(&self, e: &h2::Error) -> OpenError {
        OpenError::Session(self.ended().unwrap_or_else(|| SessionError::from_h2(e)))
    }

    /// Send a request; its body stays open for the stream's bytes.
    async fn request(
        &self,
        req: Request<()>,
    ) -> Result<(ResponseFuture, SendStream<Bytes>), OpenError> {
        let mut send = self.send.clone().ready().await.map_err(|e| self.gone(&e))?;
        send.send_request(req, false).map_err(|e| self.gone(&e))
    }

    /// Send `req` and judge the answer: 200 is success, 403 a refusal by
    /// the allow-list, 502/504 an unreachable destination.
    async fn open(
        &self,
        req: Request<()>,
        target: &str,
        first: Bytes,
    ) -> Result<(Answer, SendStream<Bytes>), OpenError> {
        let (resp, send) = self.start(req, first).await?;
        let answer = judge(self.clone(), resp, target.to_owned()).await?;
        Ok((answer, send))
    }

    /// Send `req`, then `first` on its body (before the answer: the
    /// destination gets it one round trip sooner; if the stream is refused,
    /// the server drops it unread).
    async fn start(
        &self,
        req: Request<()>,
        first: Bytes,
    ) -> Result<(ResponseFuture, SendStream<Bytes>), OpenError> {
        let (resp, mut send) = self.request(req).await?;
        if !first.is_empty() {
            send.send_data(first, false).map_err(|e| self.gone(&e))?;
        }
        Ok((resp, send))
    }

    /// A `CONNECT host:port` request.
    fn connect_request(host: &str, port: u16) -> Result<(Request<()>, String), OpenError> {
        let target = authority(host, port);
        let uri =
            Uri::try_from(target.as_str()).map_err(|_| OpenError::BadTarget(target.clone()))?;
        let req = Request::builder()
            .method(Method::CONNECT)
            .uri(uri)
            .body(())
            .map_err(|_| OpenError::BadTarget(target.clone()))?;
        Ok((req, target))
    }

    /// Open a TCP stream to `host:port` (a name, resolved at the server, or
    /// an IP; IPv6 without brackets). Returns once the server has connected.
    pub async fn open_tcp(&self, host: &str, port: u16) -> Result<TunnelStream, OpenError> {
        self.open_tcp_with(host, port, Bytes::new()).await
    }

    /// Like [`Session::open_tcp`], sending `first` (bytes the local side
    /// already sent, e.g. a client's greeting) along with the request
    /// instead of after the answer: one round trip less for the first reply.
    pub async fn open_tcp_with(
        &self,
        host: &str,
        port: u16,
        first: Bytes,
    ) -> Result<TunnelStream, OpenError> {
        let (req, target) = Self::connect_request(host, port)?;
        match self.open(req, &target, first).await? {
            (Answer::Ok(_, recv), send) => Ok(TunnelStream::new(send, recv)),
            (Answer::NotFound, _) => Err(OpenError::Protocol {
                target,
                what: "status 404".into(),
            }),
        }
    }

    /// Send a TCP stream's request (with `first`, as
    /// [`Session::open_tcp_with`]) without waiting for the answer: the
    /// returned [`OpeningStream`] may carry bytes at once, which the server
    /// delivers once it has connected (see [`join_opening`]). A local
    /// client that writes right after connecting saves a round trip.
    ///
    /// [`join_opening`]: super::join_opening
    pub async fn start_tcp(
        &self,
        host: &str,
        port: u16,
        first: Bytes,
    ) -> Result<OpeningStream, OpenError> {
        let (req, target) = Self::connect_request(host, port)?;
        let (resp, send) = self.start(req, first).await?;
        let session = self.clone();
        let answer = Box::pin(async move {
            match judge(session, resp, target.clone()).await? {
                Answer::Ok(_, recv) => Ok(recv),
                Answer::NotFound => Err(OpenError::Protocol {
                    target,
                    what: "status 404".into(),
                }),
            }
        });
        Ok(OpeningStream { send, answer })
    }

    /// An extended CONNECT request.
    fn extended(
        protocol: &'static str,
        path: &StreamPath,
        target: &str,
    ) -> Result<Request<()>, OpenError> {
        let mut req = Request::builder()
            .method(Method::CONNECT)
            .uri(format!("https://tunnel{}", path.encode()))
            .body(())
            .map_err(|_| OpenError::BadTarget(target.to_owned()))?;
        req.extensions_mut()
            .insert(h2::ext::Protocol::from_static(protocol));
        Ok(req)
    }

    /// Open a UDP flow to `host:port`; datagrams keep their boundaries.
    pub async fn open_udp(&self, host: &str, port: u16) -> Result<UdpFlow, OpenError> {
        let target = format!("udp/{}", authority(host, port));
        let req = Self::extended(
            PROTOCOL_UDP,
            &StreamPath::Udp(HostPort::new(host, port)),
            &target,
        )?;
        match self.open(req, &target, Bytes::new()).await? {
            (Answer::Ok(_, recv), send) => Ok(UdpFlow::new(send, recv)),
            (Answer::NotFound, _) => Err(OpenError::Protocol {
                target,
                what: "status 404".into(),
            }),
        }
    }

    /// Ask the server to listen on `host:port` (an IP, or `localhost`; port
    /// 0 lets the server pick). Connections to it arrive through
    /// [`ReverseListener::accept`]. Authorised as a `bind/` request.
    pub async fn bind(&self, host: &str, port: u16) -> Result<ReverseListener, OpenError> {
        let target = format!("bind/{}", authority(host, port));
        let req = Self::extended(
            PROTOCOL_BIND,
            &StreamPath::Bind(HostPort::new(host, port)),
            &target,
        )?;
        let (parts, recv, send) = match self.open(req, &target, Bytes::new()).await? {
            (Answer::Ok(parts, recv), send) => (parts, recv, send),
            (Answer::NotFound, _) => {
                return Err(OpenError::Protocol {
                    target,
                    what: "status 404".into(),
                })
            }
        };
        let local_addr = parts
            .headers
            .get(BOUND_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| OpenError::Protocol {
                target: target.clone(),
                what: "no bound address".into(),
            })?;
        Ok(ReverseListener {
            session: self.clone(),
            _send: send,
            capsules: CapsuleReader::new(recv),
            local_addr,
            target,
        })
    }
}

/// Wait for the answer to a request and judge it: 200 is success, 403 a
/// refusal by the allow-list, 502/504 an unreachable destination.
async fn judge(
    session: Session,
    resp: ResponseFuture,
    target: String,
) -> Result<Answer, OpenError> {
    let resp = match resp.await {
        Ok(r) => r,
        Err(e) if e.is_reset() => {
            return Err(OpenError::Protocol {
                target,
                what: format!("stream reset ({e})"),
            })
        }
        Err(e) => return Err(session.gone(&e)),
    };
    let (parts, body) = resp.into_parts();
    match parts.status {
        StatusCode::OK => Ok(Answer::Ok(parts, body)),
        StatusCode::NOT_FOUND => Ok(Answer::NotFound),
        StatusCode::FORBIDDEN => {
            // The server's reason may already start with the target.
            let reason = read_reason(body).await;
            let reason = reason
                .strip_prefix(target.as_str())
                .and_then(|r| r.strip_prefix(": "))
                .map(str::to_owned)
                .unwrap_or(reason);
            Err(OpenError::Refused { target, reason })
        }
        StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => Err(OpenError::Unreachable {
            target,
            reason: read_reason(body).await,
        }),
        s => Err(OpenError::Protocol {
            target,
            what: format!("status {s}"),
        }),
    }
}

/// The answer a [`OpeningStream`] waits for: the stream's receiving half.
pub(crate) type PendingAnswer =
    Pin<Box<dyn Future<Output = Result<RecvStream, OpenError>> + Send + 'static>>;

/// A TCP stream whose request has been sent and whose answer has not
/// arrived yet ([`Session::start_tcp`]); hand it to [`join_opening`].
/// Dropping it resets the stream.
///
/// [`join_opening`]: super::join_opening
pub struct OpeningStream {
    pub(crate) send: SendStream<Bytes>,
    pub(crate) answer: PendingAnswer,
}

impl fmt::Debug for OpeningStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpeningStream")
            .field("stream", &self.send.stream_id().as_u32())
            .finish_non_exhaustive()
    }
}

/// Read a refusal's text (at most 4 KiB).
async fn read_reason(mut body: RecvStream) -> String {
    let mut out = Vec::new();
    while out.len() < 4096 {
        match body.data().await {
            Some(Ok(b)) => {
                let _ = body.flow_control().release_capacity(b.len());
                out.extend_from_slice(&b);
            }
            _ => break,
        }
    }
    out.truncate(4096);
    String::from_utf8_lossy(&out).into_owned()
}

/// A listener on the server (`-R`): each connection to it arrives here as a
/// [`TunnelStream`]. Dropping it closes the server's listener.
pub struct ReverseListener {
    session: Session,
    _send: SendStream<Bytes>,
    capsules: CapsuleReader,
    local_addr: SocketAddr,
    target: String,
}

impl fmt::Debug for ReverseListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReverseListener")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl ReverseListener {
    /// The address the server listens on (with the port it picked, if 0
    /// was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next connection to the server's listener, with its peer address.
    /// The server holds each connection for a few seconds
    /// ([`ServerOptions::claim_timeout`]) for it to be accepted here.
    ///
    /// [`ServerOptions::claim_timeout`]: super::server::ServerOptions::claim_timeout
    pub async fn accept(&mut self) -> Result<(TunnelStream, SocketAddr), OpenError> {
        loop {
            let capsule = self.capsules.next().await.map_err(|e| {
                self.session.ended().map_or_else(
                    || OpenError::Protocol {
                        target: self.target.clone(),
                        what: e.to_string(),
                    },
                    OpenError::Session,
                )
            })?;
            let Some((ty, payload)) = capsule else {
                return Err(self.session.ended().map_or_else(
                    || OpenError::BindClosed(self.target.clone()),
                    OpenError::Session,
                ));
            };
            if ty != CAPSULE_INCOMING {
                continue;
            }
            let Some((id, peer)) = parse_incoming(&payload) else {
                return Err(OpenError::Protocol {
                    target: self.target.clone(),
                    what: "malformed incoming-connection capsule".into(),
                });
            };
            let peer: SocketAddr = peer.parse().map_err(|_| OpenError::Protocol {
                target: self.target.clone(),
                what: format!("bad peer address {peer:?}"),
            })?;
            let req = Session::extended(PROTOCOL_ACCEPT, &StreamPath::Accept(id), &self.target)?;
            match self.session.open(req, &self.target, Bytes::new()).await? {
                (Answer::Ok(_, recv), send) => return Ok((TunnelStream::new(send, recv), peer)),
                // Expired before we claimed it: the next one.
                (Answer::NotFound, _) => continue,
            }
        }
    }
}
