//! The server end of a session, in two steps so the caller keeps the
//! connection when it is not ours:
//!
//! 1. [`accept`] reads the client's hello (64 bytes, nothing more) and asks
//!    the caller's `authenticate` about the token. Anything else (a first
//!    byte no hello has, a wrong token, silence, EOF) gives the connection
//!    back as [`Rejected`], with the bytes read, **before anything has been
//!    written**: the caller relays those bytes and the rest of the
//!    connection to its fallback website.
//! 2. [`Authenticated::serve`] runs the session: it answers the hello,
//!    speaks HTTP/2, and for every stream asks the caller's `authorize`
//!    (with an allow-list [`Request`] holding the name as requested and
//!    every address it resolved to) before connecting, through the
//!    [`Connector`], only to those addresses.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderValue, Method, Response, StatusCode};
use onedoor_proto::spec::HostPort;
use onedoor_proto::tunnel::session::{
    incoming_payload, parse_hello, put_capsule_header, ClientHello, DoorTag, HelloParse,
    ServerReply, StreamPath, CAPSULE_INCOMING, HELLO_LEN, PROTOCOL_ACCEPT, PROTOCOL_BIND,
    PROTOCOL_UDP, REPLY_LEN,
};
use onedoor_proto::tunnel::{AccessKind, Refusal, RefusalReason, Request, Token};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::error::SessionError;
use super::stream::join_parts;
use super::udp::{pump_udp, send_capsule};
use super::wire::{keepalive, Activity, Wire};
use super::SessionOptions;

/// The response header that tells the client the address a reverse bind
/// listens on.
pub(crate) const BOUND_HEADER: &str = "bound";

/// How the server runs sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// HTTP/2 settings and keepalive.
    pub session: SessionOptions,
    /// How long a client may take to send its hello (and then its HTTP/2
    /// preface).
    pub hello_timeout: Duration,
    /// How long resolving plus connecting to a destination may take.
    pub connect_timeout: Duration,
    /// How long a connection to a reverse bind waits for the client to
    /// claim it.
    pub claim_timeout: Duration,
    /// The server's own addresses, which names and `*` never reach
    /// ([`Request::server_addrs`]).
    pub server_addrs: Vec<IpAddr>,
    /// How many streams one session may have open at once.
    pub max_streams: u32,
    /// The tag every client hello to this server starts with: derived from
    /// the fingerprint of the key the server's TLS presents, so strangers
    /// are refused at their first byte (`DoorTag::for_key`).
    pub door: DoorTag,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            session: SessionOptions::default(),
            hello_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            claim_timeout: Duration::from_secs(10),
            server_addrs: Vec::new(),
            max_streams: 8192,
            door: DoorTag::default(),
        }
    }
}

/// Why a connection was not taken as a tunnel session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Its first bytes are not a hello.
    NotAHello,
    /// A well-formed hello with a token `authenticate` did not accept.
    UnknownToken,
    /// Not enough bytes before the hello timeout.
    Timeout,
    /// EOF before a whole hello.
    Closed,
    /// Reading failed.
    Io(io::ErrorKind),
}

/// A connection that is not (or not yet proven to be) a tunnel session,
/// handed back untouched apart from the bytes already read: nothing has
/// been written to it. Relay [`Rejected::read`], then everything else from
/// [`Rejected::io`], to the fallback.
#[derive(Debug)]
pub struct Rejected<T> {
    /// The connection.
    pub io: T,
    /// What was read from it, in order (at most 64 bytes).
    pub read: Vec<u8>,
    /// Why it was refused.
    pub reason: RejectReason,
}

/// A client whose token was accepted; [`Authenticated::serve`] runs its
/// session.
#[derive(Debug)]
pub struct Authenticated<T, C> {
    io: T,
    hello: ClientHello,
    client: C,
}

/// Read a hello from `io` and authenticate its token with `authenticate`
/// (which must take the same time whichever token it is given: the registry
/// compares in constant time). Reads at most [`HELLO_LEN`] bytes and writes
/// nothing; a first byte that no hello has is refused at once, without
/// waiting for more.
pub async fn accept<T, C, A>(
    mut io: T,
    opts: &ServerOptions,
    authenticate: A,
) -> Result<Authenticated<T, C>, Rejected<T>>
where
    T: AsyncRead + Unpin,
    A: FnOnce(&Token) -> Option<C>,
{
    let deadline = Instant::now() + opts.hello_timeout;
    let mut buf = [0u8; HELLO_LEN];
    let mut got = 0;
    let hello = loop {
        let reason = match parse_hello(&buf[..got], &opts.door) {
            HelloParse::Hello(h) => break h,
            HelloParse::NotOurs => RejectReason::NotAHello,
            HelloParse::NeedMore => {
                match tokio::time::timeout_at(deadline, io.read(&mut buf[got..])).await {
                    Ok(Ok(0)) => RejectReason::Closed,
                    Ok(Ok(n)) => {
                        got += n;
                        continue;
                    }
                    Ok(Err(e)) => RejectReason::Io(e.kind()),
                    Err(_) => RejectReason::Timeout,
                }
            }
        };
        return Err(Rejected {
            io,
            read: buf[..got].to_vec(),
            reason,
        });
    };
    match authenticate(hello.token()) {
        Some(client) => Ok(Authenticated { io, hello, client }),
        None => Err(Rejected {
            io,
            read: buf.to_vec(),
            reason: RejectReason::UnknownToken,
        }),
    }
}

/// `attempt` on each of `addrs` in turn: the first success, else the last
/// error (`none` when there was no address at all).
async fn first_that_answers<T, F, Fut>(
    addrs: Vec<SocketAddr>,
    none: &'static str,
    mut attempt: F,
) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, none);
    for a in addrs {
        match attempt(a).await {
            Ok(v) => return Ok(v),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The server's outbound side: name resolution, TCP connects, UDP sockets
/// and listeners for reverse binds. [`SystemConnector`] uses the OS; tests
/// (and a lab) may answer names or connect differently.
pub trait Connector: Send + Sync + 'static {
    /// Every address `host` resolves to (asked once per request; only these
    /// are checked and used).
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = io::Result<Vec<IpAddr>>> + Send {
        let host = host.to_owned();
        async move {
            let mut out: Vec<IpAddr> = tokio::net::lookup_host((host.as_str(), port))
                .await?
                .map(|a| a.ip())
                .collect();
            let mut seen = Vec::with_capacity(out.len());
            out.retain(|a| {
                let new = !seen.contains(a);
                seen.push(*a);
                new
            });
            Ok(out)
        }
    }

    /// A TCP connection to the first of `addrs` that answers.
    fn connect_tcp(
        &self,
        addrs: &[SocketAddr],
    ) -> impl Future<Output = io::Result<TcpStream>> + Send {
        let addrs = addrs.to_vec();
        first_that_answers(addrs, "no address to connect to", |a| async move {
            let s = TcpStream::connect(a).await?;
            let _ = s.set_nodelay(true);
            Ok(s)
        })
    }

    /// A UDP socket connected to the first of `addrs`.
    fn connect_udp(
        &self,
        addrs: &[SocketAddr],
    ) -> impl Future<Output = io::Result<UdpSocket>> + Send {
        let addrs = addrs.to_vec();
        first_that_answers(addrs, "no address to send to", |a| async move {
            let local: SocketAddr = if a.is_ipv4() {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let s = UdpSocket::bind(local).await?;
            s.connect(a).await?;
            Ok(s)
        })
    }

    /// Listeners on every one of `addrs` (all with the same port: with
    /// port 0, the one the first listener got). At least one must succeed.
    fn bind_tcp(
        &self,
        addrs: &[SocketAddr],
    ) -> impl Future<Output = io::Result<Vec<TcpListener>>> + Send {
        let addrs = addrs.to_vec();
        async move {
            let mut out: Vec<TcpListener> = Vec::new();
            let mut first_err = None;
            for mut a in addrs {
                if let Some(l) = out.first() {
                    a.set_port(l.local_addr()?.port());
                }
                match TcpListener::bind(a).await {
                    Ok(l) => out.push(l),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            match (out.is_empty(), first_err) {
                (true, Some(e)) => Err(e),
                (true, None) => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "no address to bind",
                )),
                _ => Ok(out),
            }
        }
    }
}

/// The OS's resolver and sockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemConnector;

impl Connector for SystemConnector {}

/// What a session's stream handlers share.
struct Shared<C, Z, K> {
    client: C,
    authorize: Z,
    connector: K,
    opts: ServerOptions,
    /// Connections to reverse binds, waiting to be claimed.
    pending: Mutex<HashMap<u64, TcpStream>>,
    next_id: AtomicU64,
}

/// A failure answered on the stream.
enum Answer {
    BadRequest,
    NotFound,
    Refused(String),
    Unreachable(String),
    Timeout(String),
}

impl<T, C> Authenticated<T, C>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    C: Send + Sync + 'static,
{
    /// The value `authenticate` returned for this client.
    pub fn client(&self) -> &C {
        &self.client
    }

    /// Run the session until the client leaves, the session fails, or the
    /// future is dropped (dropping it cuts every stream of the session at
    /// once: that is how a removed client is disconnected).
    ///
    /// `authorize(client, request)` is asked for every TCP stream, UDP flow
    /// and reverse bind (and again for each connection to a reverse bind),
    /// so grants changed meanwhile apply to the next request.
    pub async fn serve<Z, K>(
        self,
        opts: &ServerOptions,
        authorize: Z,
        connector: K,
    ) -> Result<(), SessionError>
    where
        Z: Fn(&C, &Request<'_>) -> Result<(), Refusal> + Send + Sync + 'static,
        K: Connector,
    {
        let mut r = [0u8; 2];
        super::random(&mut r).map_err(|e| SessionError::Io {
            kind: e.kind(),
            message: e.to_string(),
        })?;
        let reply = ServerReply::accepting(&self.hello, u16::from_be_bytes(r));
        let mut first = Vec::with_capacity(REPLY_LEN + usize::from(reply.pad_len) + 128);
        first.extend_from_slice(&reply.encode());
        first.resize(REPLY_LEN + usize::from(reply.pad_len), 0);
        let activity = Arc::new(Activity::new());
        let wire = Wire::server(
            self.io,
            first,
            self.hello.pad_len().into(),
            activity.clone(),
        );
        let o = &opts.session;
        let handshake = h2::server::Builder::new()
            .initial_window_size(o.stream_window)
            .initial_connection_window_size(o.connection_window)
            .max_frame_size(o.max_frame)
            .max_send_buffer_size(o.max_send_buffer)
            .max_concurrent_streams(opts.max_streams)
            .enable_connect_protocol()
            .handshake::<_, Bytes>(wire);
        let mut conn = match tokio::time::timeout(opts.hello_timeout, handshake).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(SessionError::from_h2(&e)),
            Err(_) => return Err(SessionError::PeerSilent(opts.hello_timeout)),
        };
        let pings = conn
            .ping_pong()
            .ok_or_else(|| SessionError::Protocol("no ping handle".into()))?;
        let ka = keepalive(pings, activity, o.keepalive);
        tokio::pin!(ka);
        let shared = Arc::new(Shared {
            client: self.client,
            authorize,
            connector,
            opts: opts.clone(),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        });
        // Every stream's task lives in here: when the session ends (or this
        // future is dropped), they are all aborted.
        let mut tasks = JoinSet::new();
        loop {
            tokio::select! {
                next = conn.accept() => match next {
                    Some(Ok((req, respond))) => {
                        tasks.spawn(handle(shared.clone(), req, respond));
                    }
                    Some(Err(e)) => return Err(SessionError::from_h2(&e)),
                    None => return Ok(()),
                },
                silence = &mut ka => return Err(SessionError::PeerSilent(silence)),
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
    }
}

/// Judge a request and run its stream.
async fn handle<C, Z, K>(
    shared: Arc<Shared<C, Z, K>>,
    req: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) where
    C: Send + Sync + 'static,
    Z: Fn(&C, &Request<'_>) -> Result<(), Refusal> + Send + Sync + 'static,
    K: Connector,
{
    let id = respond.stream_id().as_u32();
    let protocol = req
        .extensions()
        .get::<h2::ext::Protocol>()
        .map(|p| p.as_str().to_owned());
    let r = if req.method() != Method::CONNECT {
        Err(Answer::BadRequest)
    } else {
        match protocol.as_deref() {
            None => match tcp_target(req.uri()) {
                Some(hp) => tcp(&shared, hp, req.into_body(), &mut respond).await,
                None => Err(Answer::BadRequest),
            },
            Some(p) => match (p, StreamPath::parse(req.uri().path())) {
                (PROTOCOL_UDP, Some(StreamPath::Udp(hp))) => {
                    udp(&shared, hp, req.into_body(), &mut respond).await
                }
                (PROTOCOL_BIND, Some(StreamPath::Bind(hp))) => {
                    bind(&shared, hp, req.into_body(), &mut respond).await
                }
                (PROTOCOL_ACCEPT, Some(StreamPath::Accept(n))) => {
                    claim(&shared, n, req.into_body(), &mut respond).await
                }
                _ => Err(Answer::BadRequest),
            },
        }
    };
    if let Err(a) = r {
        let (status, text) = match a {
            Answer::BadRequest => (StatusCode::BAD_REQUEST, None),
            Answer::NotFound => (StatusCode::NOT_FOUND, None),
            Answer::Refused(t) => (StatusCode::FORBIDDEN, Some(t)),
            Answer::Unreachable(t) => (StatusCode::BAD_GATEWAY, Some(t)),
            Answer::Timeout(t) => (StatusCode::GATEWAY_TIMEOUT, Some(t)),
        };
        tracing::debug!(stream = id, %status, reason = text.as_deref().unwrap_or(""), "tunnel stream refused");
        let resp = Response::builder()
            .status(status)
            .body(())
            .unwrap_or_default();
        match text {
            None => {
                let _ = respond.send_response(resp, true);
            }
            Some(t) => {
                if let Ok(mut s) = respond.send_response(resp, false) {
                    let _ = s.send_data(Bytes::from(t), true);
                }
            }
        }
    }
}

/// `host:port` of a plain CONNECT.
fn tcp_target(uri: &http::Uri) -> Option<HostPort> {
    let a = uri.authority()?;
    let port = a.port_u16().filter(|&p| p != 0)?;
    let host = a.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some(HostPort::new(host, port))
}

/// Resolve (names only, once), then ask `authorize`: the addresses to use.
async fn authorized<C, Z, K>(
    shared: &Shared<C, Z, K>,
    kind: AccessKind,
    hp: &HostPort,
) -> Result<Vec<IpAddr>, Answer>
where
    Z: Fn(&C, &Request<'_>) -> Result<(), Refusal>,
    K: Connector,
{
    let (resolved, dns_error) = match hp.host.parse::<IpAddr>() {
        Ok(ip) => (vec![ip], None),
        Err(_) => {
            let t = shared.opts.connect_timeout;
            match tokio::time::timeout(t, shared.connector.resolve(&hp.host, hp.port)).await {
                Ok(Ok(v)) => (v, None),
                Ok(Err(e)) => (Vec::new(), Some(e.to_string())),
                Err(_) => (Vec::new(), Some(format!("no answer within {t:?}"))),
            }
        }
    };
    let req = Request {
        resolved: &resolved,
        server_addrs: &shared.opts.server_addrs,
        ..Request::new(kind, &hp.host, hp.port)
    };
    match (shared.authorize)(&shared.client, &req) {
        Ok(()) => Ok(resolved),
        Err(Refusal {
            reason: RefusalReason::Unresolved,
            ..
        }) if dns_error.is_some() => Err(Answer::Unreachable(format!(
            "could not resolve {}: {}",
            hp.host,
            dns_error.unwrap_or_default()
        ))),
        Err(refusal) => {
            tracing::info!(kind = %kind, target = %hp, %refusal, "tunnel request refused by the allow-list");
            Err(Answer::Refused(format!("{hp}: {refusal}")))
        }
    }
}

fn ok_response() -> Response<()> {
    Response::builder()
        .status(StatusCode::OK)
        .body(())
        .unwrap_or_default()
}

fn sockaddrs(ips: &[IpAddr], port: u16) -> Vec<SocketAddr> {
    ips.iter().map(|&ip| SocketAddr::new(ip, port)).collect()
}

async fn tcp<C, Z, K>(
    shared: &Shared<C, Z, K>,
    hp: HostPort,
    body: RecvStream,
    respond: &mut SendResponse<Bytes>,
) -> Result<(), Answer>
where
    Z: Fn(&C, &Request<'_>) -> Result<(), Refusal>,
    K: Connector,
{
    let addrs = authorized(shared, AccessKind::Tcp, &hp).await?;
    let t = shared.opts.connect_timeout;
    let sock =
        match tokio::time::timeout(t, shared.connector.connect_tcp(&sockaddrs(&addrs, hp.port)))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(Answer::Unreachable(format!("{hp}: {e}"))),
            Err(_) => return Err(Answer::Timeout(format!("{hp}: no answer within {t:?}"))),
        };
    let Ok(send) = respond.send_response(ok_response(), false) else {
        return Ok(());
    };
    tracing::debug!(target = %hp, "tunnel stream open");
    match join_parts(sock, send, body, Bytes::new(), false).await {
        Ok(m) => tracing::debug!(target = %hp, up = m.up, down = m.down, "tunnel stream done"),
        Err(e) => tracing::debug!(target = %hp, error = %e, "tunnel stream failed"),
    }
    Ok(())
}

async fn udp<C, Z, K>(
    shared: &Shared<C, Z, K>,
    hp: HostPort,
    body: RecvStream,
    respond: &mut SendResponse<Bytes>,
) -> Result<(), Answer>
where
    Z: Fn(&C, &Request<'_>) -> Result<(), Refusal>,
    K: Connector,
{
    let addrs = authorized(shared, AccessKind::Udp, &hp).await?;
    let sock = match shared
        .connector
        .connect_udp(&sockaddrs(&addrs, hp.port))
        .await
    {
        Ok(s) => s,
        Err(e) => return Err(Answer::Unreachable(format!("udp/{hp}: {e}"))),
    };
    let Ok(send) = respond.send_response(ok_response(), false) else {
        return Ok(());
    };
    tracing::debug!(target = %hp, "tunnel udp flow open");
    if let Err(e) = pump_udp(sock, send, body).await {
        tracing::debug!(target = %hp, error = %e, "tunnel udp flow failed");
    }
    Ok(())
}

async fn bind<C, Z, K>(
    shared: &Arc<Shared<C, Z, K>>,
    hp: HostPort,
    mut body: RecvStream,
    respond: &mut SendResponse<Bytes>,
) -> Result<(), Answer>
where
    C: Send + Sync + 'static,
    Z: Fn(&C, &Request<'_>) -> Result<(), Refusal> + Send + Sync + 'static,
    K: Connector,
{
    let addrs = authorized(shared, AccessKind::Bind, &hp).await?;
    let listeners = match shared.connector.bind_tcp(&sockaddrs(&addrs, hp.port)).await {
        Ok(l) => l,
        Err(e) => return Err(Answer::Unreachable(format!("bind/{hp}: {e}"))),
    };
    let local = listeners
        .first()
        .and_then(|l| l.local_addr().ok())
        .ok_or_else(|| Answer::Unreachable(format!("bind/{hp}: no listener")))?;
    let mut resp = ok_response();
    if let Ok(v) = HeaderValue::from_str(&local.to_string()) {
        resp.headers_mut().insert(BOUND_HEADER, v);
    }
    let Ok(mut send) = respond.send_response(resp, false) else {
        return Ok(());
    };
    tracing::debug!(bind = %hp, %local, "tunnel reverse bind open");
    let weak = Arc::downgrade(shared);
    loop {
        let accepted = std::future::poll_fn(|cx| {
            for l in &listeners {
                if let Poll::Ready(r) = l.poll_accept(cx) {
                    return Poll::Ready(r);
                }
            }
            Poll::Pending
        });
        tokio::select! {
            r = accepted => {
                let (sock, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!(bind = %hp, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Grants may have changed since the bind: ask again.
                if let Err(Answer::Refused(why)) = authorized(shared, AccessKind::Bind, &hp).await {
                    tracing::info!(bind = %hp, %why, "reverse bind no longer allowed: closed");
                    send.send_reset(h2::Reason::CANCEL);
                    return Ok(());
                }
                let _ = sock.set_nodelay(true);
                let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                lock(&shared.pending).insert(id, sock);
                expire(weak.clone(), id, shared.opts.claim_timeout);
                let payload = incoming_payload(id, &peer.to_string());
                let mut capsule = Vec::with_capacity(payload.len() + 8);
                put_capsule_header(&mut capsule, CAPSULE_INCOMING, payload.len());
                capsule.extend_from_slice(&payload);
                if send_capsule(&mut send, Bytes::from(capsule)).await.is_err() {
                    return Ok(());
                }
            }
            r = std::future::poll_fn(|cx| send.poll_reset(cx)) => {
                tracing::debug!(bind = %hp, ended = ?r.ok(), "tunnel reverse bind closed by the client");
                return Ok(());
            }
            d = body.data() => match d {
                Some(Ok(b)) => {
                    let _ = body.flow_control().release_capacity(b.len());
                }
                _ => {
                    tracing::debug!(bind = %hp, "tunnel reverse bind ended by the client");
                    let _ = send.send_data(Bytes::new(), true);
                    return Ok(());
                }
            },
        }
    }
}

fn lock<V>(m: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Drop an unclaimed connection after `after`.
fn expire<C, Z, K>(weak: Weak<Shared<C, Z, K>>, id: u64, after: Duration)
where
    C: Send + Sync + 'static,
    Z: Send + Sync + 'static,
    K: Send + Sync + 'static,
{
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        if let Some(s) = weak.upgrade() {
            if lock(&s.pending).remove(&id).is_some() {
                tracing::debug!(id, "unclaimed reverse connection dropped");
            }
        }
    });
}

async fn claim<C, Z, K>(
    shared: &Shared<C, Z, K>,
    id: u64,
    body: RecvStream,
    respond: &mut SendResponse<Bytes>,
) -> Result<(), Answer> {
    let sock = lock(&shared.pending).remove(&id).ok_or(Answer::NotFound)?;
    let Ok(send) = respond.send_response(ok_response(), false) else {
        return Ok(());
    };
    if let Err(e) = join_parts(sock, send, body, Bytes::new(), false).await {
        tracing::debug!(id, error = %e, "reverse stream failed");
    }
    Ok(())
}
