//! The tunnel inside serve (`serve --tunnel`, SPEC §2 "How the door tells
//! them apart", §4): a TLS ClientHello for one of serve's own names is
//! terminated here; inside that TLS, a hello with a registered client's
//! token becomes a tunnel session, and anything else is relayed, decrypted,
//! to `--fallback` (an HTTP server, such as the real website), so scanners
//! see that website and nothing of ours.
//!
//! # One connection
//!
//! 1. **TLS.** The bytes the door already read (the ClientHello) are replayed
//!    into the TLS acceptor ([`Prefixed`]), then the handshake runs
//!    (bounded by the hello timeout).
//! 2. **Hello.** [`server::accept`] reads at most 64 bytes and asks the
//!    registry in force ([`Registry::authenticate`], constant time) about
//!    the token. Nothing has been written inside the TLS yet.
//! 3. **Session** ([`server::Authenticated::serve`]), registered under a
//!    per-session handle, or **fallback**: the bytes read plus the rest of
//!    the decrypted stream go to `--fallback` over plain TCP, both
//!    directions, half-close preserved; without `--fallback` the
//!    connection is closed.
//!
//! # Live registry
//!
//! The registry is re-read when `clients.toml` changes (its
//! [`StateDir::clients_stamp`], polled every [`TunnelOptions::watch`]) and
//! on [`Tunnel::refresh`] (serve calls it on `SIGHUP`). After each load,
//! every session whose client is gone (or whose token changed) is cut. The
//! `authorize` callback of each session reads the registry in force, so a
//! changed grant applies to the next stream, UDP flow or bind while the
//! session stays up.
//!
//! # Metrics
//!
//! `onedoor_tunnel_sessions_total`, `onedoor_tunnel_sessions` (open now),
//! `onedoor_tunnel_rejected_total{reason}` (TLS to our name that did not
//! authenticate: `not_a_hello`, `unknown_token`, `timeout`, `closed`, `io`),
//! `onedoor_tunnel_streams_refused_total` (refused by the allow-list),
//! `onedoor_tunnel_sessions_cut_total` (client removed or token changed),
//! `onedoor_errors_total{kind="tls_handshake"}`, and the fallback relay as
//! route `fallback` in `onedoor_connections_total` / `onedoor_bytes_total`.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use onedoor_proto::route::{NamePattern, Route};
use onedoor_proto::sniff::Protocol;
use onedoor_proto::spec::HostPort;
use onedoor_proto::tunnel::session::DoorTag;
use onedoor_proto::tunnel::ticket::{
    parse_request_line, RequestParse, Ticket, TicketGuard, TicketKey,
};
use onedoor_proto::tunnel::upgrade::{request_head_end, websocket_key, HeadParse, MAX_HEAD};
use onedoor_proto::tunnel::{Refusal, RefusalReason, Request, TokenHash};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::connect::transport::door::Io;
use crate::connect::transport::tls::accept_tls;
use crate::metrics::{self, ErrorKind, RouteBytes};
use crate::state::{Identity, Registry, StateDir, StateError};
use crate::sys::listen::tune;
use crate::tunnel::server::{self, RejectReason, ServerOptions, SystemConnector};

/// How long the fallback website may take to accept.
const FALLBACK_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// ALPN ids a web server offers: HTTP/2 and HTTP/1.1.
pub const ALPN_WEB: &[&[u8]] = &[b"h2", b"http/1.1"];
/// ALPN for a server whose fallback speaks HTTP/1.1 only (a browser that
/// negotiated `h2` would send the HTTP/2 preface to an HTTP/1.1 backend).
pub const ALPN_HTTP1: &[&[u8]] = &[b"http/1.1"];

/// How the tunnel runs.
#[derive(Debug, Clone)]
pub struct TunnelOptions {
    /// Session settings; `server_addrs` is completed with this host's
    /// addresses and each connection's local address.
    pub server: ServerOptions,
    /// How often `clients.toml` is checked for changes.
    pub watch: Duration,
}

impl Default for TunnelOptions {
    fn default() -> Self {
        TunnelOptions {
            server: ServerOptions::default(),
            watch: Duration::from_secs(1),
        }
    }
}

/// The TLS side of the tunnel: the rustls configuration and the names it
/// answers for.
#[derive(Debug, Clone)]
pub struct TunnelTls {
    /// The server configuration (TLS 1.3 and 1.2, the given ALPN ids).
    pub config: Arc<rustls::ServerConfig>,
    /// serve's own names: the identity's name, and with a certificate of
    /// its own, the certificate's DNS names.
    pub names: Vec<String>,
    /// The door tag of the key this TLS presents (what clients pin, or
    /// read from the certificate they verified).
    pub door: DoorTag,
    /// The key of WebSocket tickets: derived from the same key as `door`.
    pub ticket: TicketKey,
}

impl TunnelTls {
    /// TLS with the identity's self-signed Ed25519 certificate (what access
    /// keys pin), or with `chain` = (certificate chain PEM, private key
    /// PEM) when given (`--cert`, `--key`). TLS 1.3 is on (Ed25519 needs
    /// it), and 1.2 for RSA/ECDSA certificates.
    pub fn new(
        identity: &Identity,
        chain: Option<(&[u8], &[u8])>,
        alpn: &[&[u8]],
    ) -> Result<TunnelTls, String> {
        let mut names = vec![identity.name.clone()];
        let (certs, key) = match chain {
            None => (
                vec![CertificateDer::from(identity.cert_der.clone())],
                PrivateKeyDer::Pkcs8(identity.key_pkcs8_der().expose().clone().into()),
            ),
            Some((cert_pem, key_pem)) => {
                let certs = CertificateDer::pem_slice_iter(cert_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("certificate: {e}"))?;
                if certs.is_empty() {
                    return Err("certificate: no PEM CERTIFICATE found".into());
                }
                let key = PrivateKeyDer::from_pem_slice(key_pem)
                    .map_err(|e| format!("key: not a PEM private key ({e})"))?;
                let leaf = webpki::EndEntityCert::try_from(&certs[0])
                    .map_err(|e| format!("certificate: cannot read it ({e})"))?;
                for n in leaf.valid_dns_names() {
                    let n = n.to_ascii_lowercase();
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                (certs, key)
            }
        };
        let certs_leaf = certs[0].to_vec();
        let provider = crate::connect::transport::crypto_provider();
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("certificate and key: {e}"))?;
        config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        let key = match chain {
            None => identity.fingerprint(),
            Some(_) => crate::connect::transport::cert_fingerprint(&certs_leaf)
                .ok_or("certificate: cannot read its public key")?,
        };
        Ok(TunnelTls {
            config: Arc::new(config),
            names,
            door: DoorTag::for_key(key.digest()),
            ticket: TicketKey::for_key(key.digest()),
        })
    }
}

/// Who a session belongs to: enough to find the client again in a newer
/// registry.
#[derive(Debug, Clone)]
pub struct SessionClient {
    name: String,
    hash: TokenHash,
}

impl SessionClient {
    /// The client's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A live session's handle: cancelling it cuts the session.
struct Handle {
    client: SessionClient,
    cut: CancellationToken,
}

/// The tunnel of one serve: TLS, the registry in force, the live sessions.
pub struct Tunnel {
    acceptor: TlsAcceptor,
    names: Vec<String>,
    state: StateDir,
    registry: ArcSwap<Registry>,
    /// Serialises loads (the watcher and SIGHUP), and holds the last
    /// failure said (so a lasting one is logged once, not every second).
    loading: Mutex<Option<String>>,
    sessions: Mutex<HashMap<u64, Handle>>,
    next_id: AtomicU64,
    opts: TunnelOptions,
    /// The key of WebSocket tickets.
    ticket: TicketKey,
    /// Each ticket is good once, for a short while.
    guard: Mutex<TicketGuard>,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("names", &self.names)
            .field("state", &self.state.path())
            .field("sessions", &self.sessions())
            .finish_non_exhaustive()
    }
}

impl Tunnel {
    /// A tunnel answering with `tls`, for the clients of `state` (read
    /// now; an unreadable registry is an error here, later only a warning).
    pub fn new(
        state: StateDir,
        tls: TunnelTls,
        mut opts: TunnelOptions,
    ) -> Result<Arc<Tunnel>, StateError> {
        let registry = state.registry()?;
        opts.server.door = tls.door;
        for ip in host_addrs() {
            if !opts.server.server_addrs.contains(&ip) {
                opts.server.server_addrs.push(ip);
            }
        }
        Ok(Arc::new(Tunnel {
            acceptor: TlsAcceptor::from(tls.config),
            names: tls.names,
            state,
            registry: ArcSwap::from_pointee(registry),
            loading: Mutex::new(None),
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            opts,
            ticket: tls.ticket,
            guard: Mutex::new(TicketGuard::new(TICKET_WINDOW_SECS, TICKET_MEMORY)),
        }))
    }

    /// serve's own TLS names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// How the router recognises the tunnel's TLS among `routes`: the names,
    /// and whether hellos without SNI are ours too (yes, unless a user `tls`
    /// route without `sni=` would take them).
    pub fn own_traffic(&self, routes: &[Route]) -> (Vec<NamePattern>, bool) {
        let names = self.names.iter().map(|n| NamePattern::new(n)).collect();
        (names, !claims_sni_less(routes))
    }

    /// Sessions open now.
    pub fn sessions(&self) -> usize {
        self.sessions.lock().expect("sessions lock").len()
    }

    /// Load `clients.toml` again if it changed since the registry in force
    /// was read (always, with `force`), then cut the sessions of clients
    /// that are gone. A file that does not read keeps the registry in
    /// force, saying why.
    pub fn refresh(&self, force: bool) {
        let mut last_failure = self.loading.lock().expect("loading lock");
        let mut failed = |what: String| {
            if last_failure.as_deref() != Some(what.as_str()) {
                tracing::error!("tunnel: {what}; keeping the client registry in force");
                *last_failure = Some(what);
            }
        };
        if !force {
            match self.state.clients_stamp() {
                Ok(stamp) if stamp == self.registry.load().stamp() => return,
                Ok(_) => {}
                Err(e) => return failed(format!("cannot check the client registry: {e}")),
            }
        }
        match self.state.registry() {
            Ok(r) => {
                tracing::info!(clients = r.len(), "tunnel: client registry loaded");
                self.registry.store(Arc::new(r));
                *last_failure = None;
            }
            Err(e) => return failed(format!("the client registry does not read: {e}")),
        }
        let registry = self.registry.load();
        let sessions = self.sessions.lock().expect("sessions lock");
        for h in sessions.values() {
            if !h.cut.is_cancelled() && current(&registry, &h.client).is_none() {
                tracing::info!(client = %h.client.name, "tunnel: client removed or its token changed: session cut");
                metrics::tunnel_session_cut();
                h.cut.cancel();
            }
        }
    }

    /// Check for registry changes every [`TunnelOptions::watch`] until
    /// `stop`.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.opts.watch);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let me = self.clone();
            // Reading files blocks: off the async threads.
            let _ = tokio::task::spawn_blocking(move || me.refresh(false)).await;
        }
    }

    /// The session settings for a connection arriving on `stream`: the
    /// connection's local address is one of the server's own.
    fn session_options(&self, stream: &TcpStream) -> ServerOptions {
        let mut opts = self.opts.server.clone();
        if let Ok(local) = stream.local_addr() {
            let ip = local.ip().to_canonical();
            if !opts.server_addrs.contains(&ip) {
                opts.server_addrs.push(ip);
            }
        }
        opts
    }

    /// The key plain-HTTP WebSocket tickets are checked with.
    pub fn ticket_key(&self) -> &TicketKey {
        &self.ticket
    }

    /// Is `ticket` fresh and not seen before? (Each is good once.)
    pub fn admit(&self, ticket: &Ticket) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.guard.lock().expect("ticket guard").admit(ticket, now)
    }

    /// Serve one connection the router gave to the tunnel: `sniffed` is
    /// what the door already read from `stream` (the ClientHello).
    pub(crate) async fn handle(
        self: Arc<Self>,
        stream: TcpStream,
        sniffed: Vec<u8>,
        client_addr: SocketAddr,
        fallback: Option<HostPort>,
    ) {
        let opts = self.session_options(&stream);
        let io = Prefixed::new(sniffed, stream);
        let tls = match tokio::time::timeout(opts.hello_timeout, accept_tls(&self.acceptor, io))
            .await
        {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(client = %client_addr, error = %e, "tunnel: TLS handshake failed");
                metrics::error(ErrorKind::TlsHandshake);
                return;
            }
            Err(_) => {
                tracing::debug!(client = %client_addr, "tunnel: TLS handshake timed out");
                metrics::error(ErrorKind::TlsHandshake);
                return;
            }
        };
        let registry = self.registry.load_full();
        let accepted = server::accept(tls, &opts, |token| {
            registry.authenticate(token).map(|c| SessionClient {
                name: c.name.clone(),
                hash: c.token_hash,
            })
        })
        .await;
        drop(registry);
        let rejected = match accepted {
            Ok(session) => return self.run(session, &opts, client_addr).await,
            Err(rejected) => rejected,
        };
        let (io, read, reason) = match rejected.reason {
            // Not a hello: maybe a WebSocket request with a ticket (`wss`).
            RejectReason::NotAHello => {
                match self
                    .websocket(rejected.io, rejected.read, None, true, &opts, client_addr)
                    .await
                {
                    Some((io, read)) => (io, read, RejectReason::NotAHello),
                    None => return,
                }
            }
            reason => (rejected.io, rejected.read, reason),
        };
        metrics::tunnel_rejected(reason_label(reason));
        tracing::debug!(client = %client_addr, ?reason, "tunnel: not a client");
        if let RejectReason::Io(_) = reason {
            return;
        }
        to_fallback(io, read, fallback).await;
    }

    /// A plain-HTTP connection whose request line carries `ticket` (the
    /// router's [`Own::Ws`], already [admitted](Tunnel::admit)): the
    /// WebSocket, the inner layer, the session. A request that turns out
    /// not to be a WebSocket upgrade goes to `fallback` like any other.
    pub(crate) async fn handle_ws(
        self: Arc<Self>,
        stream: TcpStream,
        sniffed: Vec<u8>,
        ticket: Ticket,
        client_addr: SocketAddr,
        fallback: Option<HostPort>,
    ) {
        let opts = self.session_options(&stream);
        let Some((io, read)) = self
            .websocket(stream, sniffed, Some(ticket), false, &opts, client_addr)
            .await
        else {
            return;
        };
        metrics::tunnel_rejected(reason_label(RejectReason::NotAHello));
        to_fallback(io, read, fallback).await;
    }

    /// The WebSocket door on `io`, of which `read` was read already. With
    /// `ticket` `None`, the request line is read and judged first (inside
    /// serve's TLS). A fresh ticket and a valid upgrade become a WebSocket,
    /// then (when the ticket says so, and always without `over_tls`) the
    /// inner layer's TLS, then the session: `None` is returned when it is
    /// over. Anything else is handed back, with everything read, for the
    /// fallback.
    async fn websocket<T>(
        self: &Arc<Self>,
        mut io: T,
        mut read: Vec<u8>,
        ticket: Option<Ticket>,
        over_tls: bool,
        opts: &ServerOptions,
        client_addr: SocketAddr,
    ) -> Option<(T, Vec<u8>)>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let deadline = tokio::time::Instant::now() + opts.hello_timeout;
        let ticket = match ticket {
            Some(t) => t,
            None => loop {
                match parse_request_line(&read, &self.ticket) {
                    RequestParse::Ticket(t) if self.admit(&t) => break t,
                    RequestParse::Ticket(_) | RequestParse::NotOurs => return Some((io, read)),
                    RequestParse::NeedMore => match read_more(&mut io, &mut read, deadline).await {
                        Ok(true) => {}
                        Ok(false) | Err(_) => return Some((io, read)),
                    },
                }
            },
        };
        // On plain HTTP the session must be in the inner layer.
        if !ticket.inner && !over_tls {
            return Some((io, read));
        }
        let head_len = loop {
            match request_head_end(&read, MAX_HEAD) {
                HeadParse::Done { head_len } => break head_len,
                HeadParse::TooLong => return Some((io, read)),
                HeadParse::NeedMore => match read_more(&mut io, &mut read, deadline).await {
                    Ok(true) => {}
                    Ok(false) | Err(_) => return Some((io, read)),
                },
            }
        };
        let Some(key) = websocket_key(&read[..head_len]) else {
            return Some((io, read));
        };
        let rest = read.split_off(head_len);
        let ws = match crate::ws::server_partially_read(io, &key, rest).await {
            Ok(ws) => ws,
            Err(e) => {
                tracing::debug!(client = %client_addr, error = %e, "tunnel: WebSocket upgrade failed");
                metrics::error(ErrorKind::Io);
                return None;
            }
        };
        let io: Box<dyn Io> = if ticket.inner {
            match tokio::time::timeout_at(deadline, accept_tls(&self.acceptor, ws)).await {
                Ok(Ok(tls)) => Box::new(tls),
                Ok(Err(e)) => {
                    tracing::debug!(client = %client_addr, error = %e, "tunnel: inner TLS handshake failed");
                    metrics::error(ErrorKind::TlsHandshake);
                    return None;
                }
                Err(_) => {
                    tracing::debug!(client = %client_addr, "tunnel: inner TLS handshake timed out");
                    metrics::error(ErrorKind::TlsHandshake);
                    return None;
                }
            }
        } else {
            Box::new(ws)
        };
        let registry = self.registry.load_full();
        let accepted = server::accept(io, opts, |token| {
            registry.authenticate(token).map(|c| SessionClient {
                name: c.name.clone(),
                hash: c.token_hash,
            })
        })
        .await;
        drop(registry);
        match accepted {
            Ok(session) => self.run(session, opts, client_addr).await,
            Err(rejected) => {
                // Past the upgrade there is no website to show: just close.
                metrics::tunnel_rejected(reason_label(rejected.reason));
                tracing::debug!(client = %client_addr, reason = ?rejected.reason, "tunnel: WebSocket without a client's hello");
            }
        }
        None
    }

    /// Run an authenticated session until it ends or its client is cut.
    async fn run<T>(
        self: &Arc<Self>,
        session: server::Authenticated<T, SessionClient>,
        opts: &ServerOptions,
        client_addr: SocketAddr,
    ) where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let who = session.client().clone();
        let (id, cut) = self.register(&who);
        let _gone = Unregister { tunnel: self, id };
        metrics::tunnel_session(self.sessions());
        tracing::info!(client = %who.name, from = %client_addr, "tunnel session");
        let me = self.clone();
        let authorize = move |c: &SessionClient, req: &Request<'_>| me.authorize(c, req);
        tokio::select! {
            r = session.serve(opts, authorize, SystemConnector) => match r {
                Ok(()) => tracing::info!(client = %who.name, "tunnel session ended"),
                Err(e) => tracing::info!(client = %who.name, error = %e, "tunnel session ended"),
            },
            _ = cut.cancelled() => {}
        }
        drop(_gone);
        metrics::tunnel_session_gauge(self.sessions());
    }

    /// The allow-list in force for `client`, now.
    fn authorize(&self, client: &SessionClient, req: &Request<'_>) -> Result<(), Refusal> {
        let registry = self.registry.load();
        let r = match current(&registry, client) {
            Some(entry) => entry.allow.check(req),
            None => Err(Refusal {
                kind: req.kind,
                port: req.port,
                reason: RefusalReason::NotAllowed,
            }),
        };
        if r.is_err() {
            metrics::tunnel_stream_refused();
        }
        r
    }

    fn register(&self, client: &SessionClient) -> (u64, CancellationToken) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cut = CancellationToken::new();
        self.sessions.lock().expect("sessions lock").insert(
            id,
            Handle {
                client: client.clone(),
                cut: cut.clone(),
            },
        );
        // Removed between authentication and now: cut at once.
        if current(&self.registry.load(), client).is_none() {
            cut.cancel();
        }
        (id, cut)
    }
}

/// Would a user route take a TLS ClientHello without SNI? A `tls` route
/// without `sni=` would.
fn claims_sni_less(routes: &[Route]) -> bool {
    routes
        .iter()
        .any(|r| r.protocol == Protocol::Tls && r.sni.is_none())
}

/// The registry's entry for a session's client, if it still has the same
/// name and token.
fn current<'r>(
    registry: &'r Registry,
    client: &SessionClient,
) -> Option<&'r crate::state::ClientEntry> {
    registry
        .get(&client.name)
        .filter(|e| e.token_hash == client.hash)
}

/// Removes a session's handle when the session ends.
struct Unregister<'a> {
    tunnel: &'a Tunnel,
    id: u64,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.tunnel
            .sessions
            .lock()
            .expect("sessions lock")
            .remove(&self.id);
    }
}

fn reason_label(r: RejectReason) -> &'static str {
    match r {
        RejectReason::NotAHello => "not_a_hello",
        RejectReason::UnknownToken => "unknown_token",
        RejectReason::Timeout => "timeout",
        RejectReason::Closed => "closed",
        RejectReason::Io(_) => "io",
    }
}

/// What is not a client goes to `fallback` ([`relay`]); without one, the
/// connection ends as a web server's would.
async fn to_fallback<T>(mut io: T, read: Vec<u8>, fallback: Option<HostPort>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    match fallback {
        Some(target) => relay(io, read, &target).await,
        None => {
            let _ = io.shutdown().await;
        }
    }
}

/// Relay a connection that is not a client to the fallback website: what
/// was read first, then both directions until each side has finished
/// (a half-close is passed on).
pub(crate) async fn relay<T>(mut io: T, read: Vec<u8>, target: &HostPort)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let connect = async {
        match target.socket_addr() {
            Some(a) => TcpStream::connect(a).await,
            None => TcpStream::connect((target.host.as_str(), target.port)).await,
        }
    };
    let mut backend = match tokio::time::timeout(FALLBACK_CONNECT_TIMEOUT, connect).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            tracing::warn!(fallback = %target, error = %e, "tunnel: fallback unreachable");
            metrics::error(ErrorKind::BackendConnect);
            return;
        }
        Err(_) => {
            tracing::warn!(fallback = %target, "tunnel: fallback did not answer in time");
            metrics::error(ErrorKind::BackendConnect);
            return;
        }
    };
    tune(&backend);
    let tally = RouteBytes::for_route("fallback");
    if !read.is_empty() {
        if backend.write_all(&read).await.is_err() {
            metrics::error(ErrorKind::Io);
            return;
        }
        crate::forward::Tally::up(&tally, read.len() as u64);
    }
    match tokio::io::copy_bidirectional(&mut io, &mut backend).await {
        Ok((up, down)) => {
            crate::forward::Tally::up(&tally, up);
            crate::forward::Tally::down(&tally, down);
            tracing::debug!(up, down, "tunnel: fallback relay done");
        }
        Err(e) => {
            tracing::debug!(error = %e, "tunnel: fallback relay ended with an error");
        }
    }
}

/// How far a ticket's time may be from the server's, either way.
const TICKET_WINDOW_SECS: u32 = 120;
/// How many tickets are remembered (replays refused); beyond this many
/// within a window, new ones are refused until old ones expire.
const TICKET_MEMORY: usize = 65_536;

/// Read more of `io` into `buf` before `deadline`; false at end of stream
/// or when the deadline passed.
async fn read_more<T: AsyncRead + Unpin>(
    io: &mut T,
    buf: &mut Vec<u8>,
    deadline: tokio::time::Instant,
) -> io::Result<bool> {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 2048];
    match tokio::time::timeout_at(deadline, io.read(&mut chunk)).await {
        Ok(Ok(0)) | Err(_) => Ok(false),
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(true)
        }
        Ok(Err(e)) => Err(e),
    }
}

/// This host's addresses (every interface), which names and `*` never
/// reach through the tunnel ([`Request::server_addrs`]).
fn host_addrs() -> Vec<IpAddr> {
    let Ok(ifs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<IpAddr> = Vec::new();
    for i in ifs {
        let Some(a) = i.address else { continue };
        let ip = if let Some(v4) = a.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = a.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// A stream whose first reads return `head` (bytes already taken from it),
/// then the stream itself; writes go straight to the stream.
#[derive(Debug)]
pub struct Prefixed<S> {
    head: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, with `head` to be read first.
    pub fn new(head: Vec<u8>, inner: S) -> Self {
        Prefixed {
            head,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if me.pos < me.head.len() {
            let n = (me.head.len() - me.pos).min(buf.remaining());
            buf.put_slice(&me.head[me.pos..me.pos + n]);
            me.pos += n;
            if me.pos == me.head.len() {
                me.head = Vec::new();
                me.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn prefixed_reads_head_then_stream() {
        let (a, mut b) = tokio::io::duplex(64);
        b.write_all(b" world").await.unwrap();
        drop(b);
        let mut p = Prefixed::new(b"hello".to_vec(), a);
        let mut out = String::new();
        p.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }

    #[test]
    fn sni_less_hellos_are_ours_unless_a_tls_route_takes_them() {
        let t = HostPort::new("127.0.0.1", 1);
        let claims = claims_sni_less;
        let mut with_sni = Route::new(Protocol::Tls, t.clone());
        with_sni.sni = Some(NamePattern::new("a.example"));
        assert!(!claims(&[
            with_sni.clone(),
            Route::new(Protocol::Ssh, t.clone())
        ]));
        assert!(claims(&[with_sni, Route::new(Protocol::Tls, t)]));
    }
}
