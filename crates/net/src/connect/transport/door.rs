//! Every way to the door (SPEC §4 "Transports", issue 6): `tls`, `wss` and
//! `ws`, each straight or through an HTTP CONNECT proxy, and `auto`, which
//! walks them in the order [`onedoor_proto::tunnel::paths::plan`] gives.
//!
//! # What is verified, and the inner layer
//!
//! The session's secrets (the token first) travel only inside a TLS whose
//! server key the client has verified against the pin (or, with no pin,
//! against the system roots):
//!
//! - `tls`: that TLS is the connection's own — one layer.
//! - `wss`: the outer TLS is whatever answers at the door. If it is the
//!   door's own key, the session runs in it (one layer). If not — a
//!   reverse proxy's certificate, a CDN's, a TLS-inspecting middlebox's —
//!   the WebSocket carries a second TLS, pinned like `tls` (the *inner
//!   layer*), and the session runs in that. What answered outside is named.
//! - `ws`: plain HTTP outside, always the inner layer.
//!
//! The WebSocket request's path is a *ticket* (a MAC under a key derived
//! from the server's fingerprint, with a nonce, the time and whether the
//! inner layer follows): serve takes only a fresh ticket as its own, so a
//! scanner's upgrade gets the fallback website's answer. The ticket says
//! nothing secret; the token never leaves the verified TLS.
//!
//! A failure to reach one way is logged and the next is tried (`auto`); a
//! TCP connect that fails rules out the other ways straight to the same
//! door (they would fail the same way). With a proxy from the environment,
//! `auto` tries the ways straight first (waiting at most 3 s for each
//! door), then the same ways through the proxy; a proxy given with
//! `--proxy`, or any known proxy with an explicit transport, is the only
//! way out.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use onedoor_proto::http_connect::ProxyUrl;
use onedoor_proto::spec::HostPort;
use onedoor_proto::tunnel::paths::{self, Attempt, Choice, DoorSays, Kind, Way};
use onedoor_proto::tunnel::ticket::{request_path, Ticket, TicketKey};
use onedoor_proto::tunnel::Fingerprint;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{cert_fingerprint, Answered, TlsTransport, Transport, TransportError};
use crate::connect::proxy;

/// How long `auto` waits for a door straight when a proxy could be tried
/// next.
const STRAIGHT_BEFORE_PROXY: std::time::Duration = std::time::Duration::from_secs(3);

/// A byte stream of any kind (TCP, TLS, a WebSocket, TLS in a WebSocket).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection to the door, whichever way it went, with the verified
/// server key.
pub struct DoorStream {
    io: Box<dyn Io>,
    key: Option<Fingerprint>,
    /// The way it went.
    pub way: Way,
    /// Did the session need the inner layer?
    pub inner: bool,
}

impl std::fmt::Debug for DoorStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoorStream")
            .field("way", &self.way)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for DoorStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for DoorStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// What a probe map (`onedoor probe --json`) says of the server's doors.
#[derive(Debug, Clone, Default)]
pub struct DoorMap {
    /// Per TCP door, what the map found.
    says: std::collections::BTreeMap<u16, DoorSays>,
}

impl DoorMap {
    /// Read `onedoor probe --json` output. The map must be of the same
    /// server key as `pin` when both are known.
    pub fn load(path: &Path, pin: Option<Fingerprint>) -> Result<DoorMap, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("the probe map {}: {e}", path.display()))?;
        DoorMap::parse(&text, pin).map_err(|e| format!("the probe map {}: {e}", path.display()))
    }

    /// Parse `onedoor probe --json` output.
    pub fn parse(text: &str, pin: Option<Fingerprint>) -> Result<DoorMap, String> {
        use onedoor_proto::probe::classify::State;
        use onedoor_proto::report::json::{from_json, ProbeJson};
        let j: ProbeJson =
            serde_json::from_str(text).map_err(|e| format!("not a probe --json map ({e})"))?;
        let report = from_json(&j).map_err(|e| e.to_string())?;
        if let Some(pin) = pin {
            if pin.digest() != &report.fingerprint {
                return Err(format!(
                    "it maps another server (fingerprint {}, the pin is {pin})",
                    Fingerprint::from_digest(report.fingerprint)
                ));
            }
        }
        let mut says = std::collections::BTreeMap::new();
        for (&port, st) in &report.tcp.states {
            let s = match st.state() {
                State::Open => DoorSays::Open,
                State::Intercepted => DoorSays::Intercepted,
                State::Rejected | State::Filtered => DoorSays::Shut,
                State::OutOnly | State::NoReply => DoorSays::Unknown,
            };
            says.insert(port, s);
        }
        Ok(DoorMap { says })
    }

    /// What the map says of TCP door `port`.
    pub fn says(&self, port: u16) -> DoorSays {
        self.says.get(&port).copied().unwrap_or(DoorSays::Unknown)
    }

    /// The doors the map found open.
    pub fn open(&self) -> Vec<u16> {
        self.says
            .iter()
            .filter(|(_, s)| **s == DoorSays::Open)
            .map(|(p, _)| *p)
            .collect()
    }
}

/// Where `auto` remembers, per server, the way that worked when it was not
/// the first guess (TLS straight to the key's door):
/// `$ONEDOOR_PATHS`, else `$XDG_STATE_HOME/onedoor/paths.toml`, else
/// `~/.local/state/onedoor/paths.toml`. A TOML table of
/// `"SHA256:…@host:port" = "wss:443"`.
#[derive(Debug, Clone)]
pub struct PathMemory {
    file: PathBuf,
}

impl PathMemory {
    /// The memory at its usual place, if a home can be found.
    pub fn usual() -> Option<PathMemory> {
        if let Some(p) = std::env::var_os("ONEDOOR_PATHS").filter(|p| !p.is_empty()) {
            return Some(PathMemory { file: p.into() });
        }
        let base = std::env::var_os("XDG_STATE_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|p| !p.is_empty())
                    .map(|h| PathBuf::from(h).join(".local/state"))
            })?;
        Some(PathMemory {
            file: base.join("onedoor/paths.toml"),
        })
    }

    /// A memory in `file`.
    pub fn at(file: PathBuf) -> PathMemory {
        PathMemory { file }
    }

    fn read(&self) -> std::collections::BTreeMap<String, String> {
        std::fs::read_to_string(&self.file)
            .ok()
            .and_then(|t| toml::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// What worked last time for `who`.
    pub fn recall(&self, who: &str) -> Option<Way> {
        self.read().get(who).and_then(|w| w.parse().ok())
    }

    /// Remember `way` for `who` (best effort: a read-only home only costs
    /// the memory). At most [`PathMemory::MAX`] servers are remembered.
    pub fn remember(&self, who: &str, way: Way) {
        let mut all = self.read();
        if all.get(who).map(String::as_str) == Some(way.key().as_str()) {
            return;
        }
        while all.len() >= Self::MAX {
            all.pop_first();
        }
        all.insert(who.to_owned(), way.key());
        self.write(&all);
    }

    /// Forget what worked for `who` (the first guess works again).
    pub fn forget(&self, who: &str) {
        let mut all = self.read();
        if all.remove(who).is_some() {
            self.write(&all);
        }
    }

    /// The most servers remembered.
    pub const MAX: usize = 256;

    fn write(&self, all: &std::collections::BTreeMap<String, String>) {
        let Ok(text) = toml::to_string(all) else {
            return;
        };
        if let Some(dir) = self.file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = self.file.with_extension("toml.tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &self.file);
        }
    }
}

/// How [`DoorTransport`] goes.
#[derive(Debug, Clone)]
pub struct DoorOptions {
    /// `--transport`.
    pub choice: Choice,
    /// `--proxy` (or the environment's).
    pub proxy: Option<ProxyUrl>,
    /// Go only through the proxy (it was given, not found in the
    /// environment). Otherwise `auto` tries the ways straight first; an
    /// explicit transport always takes a known proxy.
    pub proxy_only: bool,
    /// The path in front of the ticket (a reverse proxy's `location`).
    pub ws_path: String,
    /// A probe map for `auto`.
    pub map: Option<DoorMap>,
    /// Where `auto` remembers what worked.
    pub memory: Option<PathMemory>,
}

impl Default for DoorOptions {
    fn default() -> Self {
        DoorOptions {
            choice: Choice::Only(Kind::Tls),
            proxy: None,
            proxy_only: false,
            ws_path: String::new(),
            map: None,
            memory: None,
        }
    }
}

/// The client's transport: one way, or `auto`.
#[derive(Debug)]
pub struct DoorTransport {
    tls: TlsTransport,
    opts: DoorOptions,
    /// The way of the last connection that worked.
    last: Mutex<Option<Way>>,
}

impl DoorTransport {
    /// A transport verifying the door with `tls`'s settings.
    pub fn new(tls: TlsTransport, opts: DoorOptions) -> DoorTransport {
        DoorTransport {
            tls,
            opts,
            last: Mutex::new(None),
        }
    }

    /// The way of the last connection that worked.
    pub fn last_way(&self) -> Option<Way> {
        *self.last.lock().expect("last lock")
    }

    /// The key under which `auto` remembers `server`.
    fn memory_key(&self, server: &HostPort) -> String {
        match self.tls.pin() {
            Some(fp) => format!("{fp}@{server}"),
            None => server.to_string(),
        }
    }

    /// The ways to try, in order.
    fn attempts(&self, server: &HostPort) -> Vec<Attempt> {
        match self.opts.choice {
            Choice::Only(kind) => vec![Attempt {
                way: Way {
                    kind,
                    port: server.port,
                    proxied: self.opts.proxy.is_some(),
                },
                why: "it was asked for",
            }],
            Choice::Auto => {
                // Prefer what worked in this process (a reconnect), then
                // what the memory says.
                let remembered = self.last_way().or_else(|| {
                    self.opts
                        .memory
                        .as_ref()
                        .and_then(|m| m.recall(&self.memory_key(server)))
                });
                let map = self.opts.map.as_ref();
                let says = |p: u16| map.map_or(DoorSays::Unknown, |m| m.says(p));
                let open = map.map(DoorMap::open).unwrap_or_default();
                paths::plan(
                    server.port,
                    remembered,
                    map.map(|_| &says as &dyn Fn(u16) -> DoorSays),
                    &open,
                    self.opts.proxy.is_some(),
                )
                .into_iter()
                .filter(|a| a.way.proxied || !self.opts.proxy_only || self.opts.proxy.is_none())
                .collect()
            }
        }
    }

    /// TCP to `door`, straight or (`proxied`) through the proxy.
    async fn tcp(&self, door: &HostPort, proxied: bool) -> Result<TcpStream, TransportError> {
        match self.opts.proxy.as_ref().filter(|_| proxied) {
            Some(p) => proxy::through(p, door, self.tls.timeout())
                .await
                .map_err(|e| TransportError::Proxy(Box::new(e))),
            None => super::tcp_to(door).await,
        }
    }

    /// One way, bounded by the connect timeout.
    async fn open(&self, server: &HostPort, way: Way) -> Result<DoorStream, TransportError> {
        let door = HostPort::new(&server.host, way.port);
        let mut after = self.tls.timeout();
        // With a proxy to fall back on, `auto` does not wait long for a
        // door straight that a firewall may be dropping.
        if self.opts.choice == Choice::Auto
            && self.opts.proxy.is_some()
            && !self.opts.proxy_only
            && !way.proxied
        {
            after = after.min(STRAIGHT_BEFORE_PROXY);
        }
        match tokio::time::timeout(after, self.open_unbounded(&door, way)).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout {
                server: door,
                after,
            }),
        }
    }

    async fn open_unbounded(
        &self,
        door: &HostPort,
        way: Way,
    ) -> Result<DoorStream, TransportError> {
        let tcp = self.tcp(door, way.proxied).await?;
        match way.kind {
            Kind::Tls => {
                let tls = self.tls.handshake_over(door, tcp).await?;
                let key = TlsTransport::server_key(&tls);
                Ok(DoorStream {
                    io: Box::new(tls),
                    key,
                    way,
                    inner: false,
                })
            }
            Kind::Wss => {
                let (outer, seen) = self.tls.outer_over(door, tcp).await?;
                if seen.verified {
                    let key = match self.tls.pin() {
                        Some(p) => Some(p),
                        None => seen.cert.fingerprint,
                    };
                    let ticket_key = key.ok_or_else(|| {
                        TransportError::Setup("the server's certificate has no readable key".into())
                    })?;
                    let ws = self.websocket(door, outer, &ticket_key, false).await?;
                    return Ok(DoorStream {
                        io: Box::new(ws),
                        key,
                        way,
                        inner: false,
                    });
                }
                tracing::warn!(
                    "door {} is intercepted or behind a reverse proxy: {}{}; \
                     carrying on through the inner layer, pinned to the server's key \
                     (what is in between sees only ciphertext)",
                    door.port,
                    seen.cert,
                    seen.why_not.map(|w| format!(" ({w})")).unwrap_or_default()
                );
                self.inner(door, outer, way).await
            }
            Kind::Ws => self.inner(door, tcp, way).await,
        }
    }

    /// A WebSocket over `io` whose ticket says the inner layer follows,
    /// and the pinned TLS inside it.
    async fn inner<S: Io + 'static>(
        &self,
        door: &HostPort,
        io: S,
        way: Way,
    ) -> Result<DoorStream, TransportError> {
        let pin = self.tls.pin().ok_or_else(|| {
            TransportError::Setup(format!(
                "{} needs the server's fingerprint pinned (the access key's fp=, or --fingerprint): \
                 without it nothing can be verified through an outer layer that is not the server's",
                way.kind
            ))
        })?;
        let ws = self.websocket(door, io, &pin, true).await?;
        let tls = self.tls.handshake_over(door, ws).await?;
        let key = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| cert_fingerprint(c));
        Ok(DoorStream {
            io: Box::new(tls),
            key,
            way,
            inner: true,
        })
    }

    /// The WebSocket opening handshake, with a fresh ticket for `key`.
    async fn websocket<S: Io + 'static>(
        &self,
        door: &HostPort,
        io: S,
        key: &Fingerprint,
        inner: bool,
    ) -> Result<crate::ws::WsIo<S>, TransportError> {
        let mut nonce = [0u8; 11];
        getrandom::fill(&mut nonce)
            .map_err(|e| TransportError::Setup(format!("no randomness: {e}")))?;
        let unix_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0);
        let ticket = TicketKey::for_key(key.digest()).issue(&Ticket {
            nonce,
            unix_secs,
            inner,
        });
        let path = request_path(&self.opts.ws_path, &ticket);
        let name = self.tls.host_header(door);
        crate::ws::client(io, &name, &path)
            .await
            .map_err(|e| ws_refused(door, e))
    }
}

/// A WebSocket handshake that failed: I/O trouble is "unreachable"; an
/// HTTP answer that is not the upgrade means something else answered.
fn ws_refused(door: &HostPort, e: crate::ws::WsError) -> TransportError {
    match e {
        crate::ws::WsError::Io(source) => TransportError::Unreachable {
            server: door.clone(),
            source,
        },
        other => TransportError::Intercepted {
            server: door.clone(),
            answered: Answered::NotOurWebSocket(other.to_string()),
        },
    }
}

impl Transport for DoorTransport {
    type Stream = DoorStream;
    type Acceptor = ();
    type Raw = ();
    type ServerStream = DoorStream;

    fn name(&self) -> &'static str {
        match self.opts.choice {
            Choice::Auto => "auto",
            Choice::Only(k) => k.as_str(),
        }
    }

    fn server_key(stream: &DoorStream) -> Option<Fingerprint> {
        stream.key
    }

    async fn connect(&self, server: &HostPort) -> Result<DoorStream, TransportError> {
        let attempts = self.attempts(server);
        let many = attempts.len() > 1;
        let mut dead_doors: Vec<u16> = Vec::new();
        let mut first_error: Option<TransportError> = None;
        let mut last_error: Option<TransportError> = None;
        for a in &attempts {
            if !a.way.proxied && dead_doors.contains(&a.way.port) {
                continue;
            }
            match self.open(server, a.way).await {
                Ok(s) => {
                    let was = self.last.lock().expect("last lock").replace(a.way);
                    if many && was != Some(a.way) {
                        tracing::info!(
                            "auto: {} ({}){}",
                            a.way,
                            a.why,
                            if s.inner {
                                "; inside the inner layer"
                            } else {
                                ""
                            }
                        );
                    }
                    // Only a way other than the first guess is worth
                    // remembering: most servers then leave no trace.
                    if let (Choice::Auto, Some(m)) = (self.opts.choice, &self.opts.memory) {
                        if a.way == Way::straight(Kind::Tls, server.port) {
                            m.forget(&self.memory_key(server));
                        } else {
                            m.remember(&self.memory_key(server), a.way);
                        }
                    }
                    return Ok(s);
                }
                Err(e) => {
                    if many {
                        tracing::warn!("auto: {} did not work: {e}", a.way);
                    }
                    let tcp_failed = matches!(
                        e,
                        TransportError::Unreachable { .. } | TransportError::Timeout { .. }
                    ) && !a.way.proxied;
                    if tcp_failed {
                        dead_doors.push(a.way.port);
                    }
                    if matches!(e, TransportError::Setup(_)) && !many {
                        return Err(e);
                    }
                    if first_error.is_none()
                        && !matches!(
                            e,
                            TransportError::Unreachable { .. } | TransportError::Timeout { .. }
                        )
                    {
                        first_error = Some(e);
                    } else {
                        last_error = Some(e);
                    }
                }
            }
        }
        Err(first_error.or(last_error).unwrap_or_else(|| {
            TransportError::Setup(format!(
                "no way to try to {server}: the probe map says every door is shut"
            ))
        }))
    }

    async fn bind(&self, _addr: SocketAddr) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the door transport is a client",
        ))
    }

    async fn accept(&self, _acceptor: &()) -> io::Result<((), SocketAddr)> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the door transport is a client",
        ))
    }

    async fn handshake(&self, _raw: ()) -> io::Result<DoorStream> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the door transport is a client",
        ))
    }
}

/// The proxy for `server`: `--proxy` when given, else the environment's
/// (`HTTPS_PROXY`, `ALL_PROXY`, with `NO_PROXY`), else none.
pub fn proxy_for(flag: Option<&str>, server: &HostPort) -> Result<Option<ProxyUrl>, String> {
    if let Some(f) = flag {
        return ProxyUrl::parse(f)
            .map(Some)
            .map_err(|e| format!("--proxy: {e}"));
    }
    match onedoor_proto::http_connect::proxy_from_env(&server.host, server.port, |k| {
        std::env::var(k).ok()
    }) {
        None => Ok(None),
        Some(Ok(p)) => Ok(Some(p)),
        Some(Err(e)) => Err(format!(
            "the proxy in the environment (HTTPS_PROXY/ALL_PROXY): {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onedoor_proto::probe::{PortSet, PortState, Refusal};
    use onedoor_proto::report::{json, Doors, Report, Settings};
    use std::time::Duration;

    fn map_json(fp: [u8; 32]) -> String {
        let mut tcp = Doors::new(PortSet::parse("22,80,443,8443").unwrap());
        tcp.set(443, PortState::Open);
        tcp.set(80, PortState::Rejected(Refusal::Refused));
        tcp.set(22, PortState::Filtered { tries: 2 });
        tcp.set(8443, PortState::Open);
        let report = Report {
            server: "door.example".into(),
            address: None,
            fingerprint: fp,
            started: SystemTime::UNIX_EPOCH,
            duration: Duration::from_secs(1),
            settings: Settings {
                timeout: Duration::from_millis(1500),
                concurrency: 512,
                rate_per_second: 2000,
            },
            tcp,
            udp: Doors::default(),
        };
        json::to_string(&report)
    }

    #[test]
    fn a_probe_map_says_which_doors_are_shut_and_open() {
        let fp = Fingerprint::from_digest([7; 32]);
        let m = DoorMap::parse(&map_json([7; 32]), Some(fp)).unwrap();
        assert_eq!(m.says(443), DoorSays::Open);
        assert_eq!(m.says(80), DoorSays::Shut);
        assert_eq!(m.says(22), DoorSays::Shut);
        assert_eq!(m.says(9), DoorSays::Unknown);
        assert_eq!(m.open(), vec![443, 8443]);
        let e = DoorMap::parse(&map_json([8; 32]), Some(fp)).unwrap_err();
        assert!(e.contains("another server"), "{e}");
        assert!(DoorMap::parse("{}", None)
            .unwrap_err()
            .contains("probe --json"));
    }

    #[test]
    fn auto_walks_the_map_and_what_worked() {
        let dir = std::env::temp_dir().join(format!("onedoor-paths-{}", std::process::id()));
        let memory = PathMemory::at(dir.join("paths.toml"));
        let fp = Fingerprint::from_digest([7; 32]);
        let tls = TlsTransport::client(super::super::TlsClientOptions {
            fingerprint: Some(fp),
            ..Default::default()
        });
        let t = DoorTransport::new(
            tls,
            DoorOptions {
                choice: Choice::Auto,
                map: Some(DoorMap::parse(&map_json([7; 32]), Some(fp)).unwrap()),
                memory: Some(memory.clone()),
                ..Default::default()
            },
        );
        let server = HostPort::new("door.example", 443);
        let ways = |t: &DoorTransport| -> Vec<String> {
            t.attempts(&server).iter().map(|a| a.way.key()).collect()
        };
        assert_eq!(
            ways(&t),
            ["tls:443", "wss:443", "ws:443", "tls:8443", "wss:8443", "ws:8443"]
        );
        memory.remember(&t.memory_key(&server), "wss:8443".parse().unwrap());
        assert_eq!(ways(&t)[0], "wss:8443");
        // Another server's memory is its own.
        assert_eq!(memory.recall("SHA256:x@other:443"), None);
        memory.forget(&t.memory_key(&server));
        assert_eq!(ways(&t)[0], "tls:443");
        // Bounded.
        for n in 0..PathMemory::MAX + 10 {
            memory.remember(&format!("k{n:04}"), "ws:80".parse().unwrap());
        }
        assert_eq!(memory.read().len(), PathMemory::MAX);
        let _ = std::fs::remove_dir_all(dir);
    }
}
