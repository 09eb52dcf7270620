//! One connection through the door, in the order SPEC §2 gives: the PROXY
//! header (only from trusted sources) → the first bytes, read until the router
//! decides (bounded by `--timeout`) → onedoor's own traffic → the user's
//! routes → `--on-timeout` or close. Then the backend gets the bytes already
//! read (after its own PROXY header, if configured) and the two are joined.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use onedoor_proto::proxy_proto::{self, Parsed};
use onedoor_proto::route::Own;
use onedoor_proto::route::MAX_SNIFF;
use onedoor_proto::spec::HostPort;
use onedoor_proto::Decision;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use super::{Live, Shared};
use crate::forward::{self, Tally};
use crate::metrics::{self, ErrorKind, RouteBytes};
use crate::sys::listen::tune;

/// How long to wait for a backend to accept.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What sniffing concluded.
enum Sniffed {
    /// Forward to route `n`.
    Route(usize),
    /// onedoor's own traffic.
    Onedoor(Own),
    /// Close, counting this.
    Close(ErrorKind),
}

pub(crate) async fn handle(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
) {
    let live = shared.live.load_full();
    // TCP_NODELAY and keepalive came with the listener (inherited).
    metrics::gauge_open(shared.tracker.len());
    let started = Instant::now();

    let (slot, evicted) = shared.pending.enter();
    for _ in 0..evicted {
        metrics::error(ErrorKind::Evicted);
    }
    let mut buf = Vec::new();
    let mut client = peer;
    let sniffed = tokio::select! {
        s = sniff(&live, &stream, &mut buf, &mut client) => s,
        _ = slot.evicted() => Sniffed::Close(ErrorKind::Evicted),
        _ = shared.stopping.cancelled() => return,
    };
    drop(slot);
    metrics::sniff_time(started.elapsed());

    let sniffed = match sniffed {
        Sniffed::Onedoor(Own::Probe(hello)) => match &shared.reflector {
            Some(reflector) if reflector.admit(&hello) => {
                let port_seen = crate::sys::original_dst::port_seen(&stream);
                reflector.answer_tcp(stream, hello, port_seen).await;
                return;
            }
            // A replayed or stale hello: whatever any other bytes would get.
            _ => conclude(live.router.decide_routes(&buf, false, false)),
        },
        // TLS for one of serve's own names: the tunnel (or its fallback).
        Sniffed::Onedoor(Own::Tls) if live.config.tunnel && shared.tunnel.is_some() => {
            if let Some(tunnel) = shared.tunnel.clone() {
                tracing::Span::current().record("route", "tunnel");
                tunnel
                    .handle(stream, buf, client, live.config.fallback.clone())
                    .await;
            }
            return;
        }
        // A plain-HTTP WebSocket request with a ticket: the tunnel's `ws`.
        Sniffed::Onedoor(Own::Ws(ticket)) => match &shared.tunnel {
            Some(tunnel) if live.config.tunnel && tunnel.admit(&ticket) => {
                tracing::Span::current().record("route", "tunnel");
                tunnel
                    .clone()
                    .handle_ws(stream, buf, ticket, client, live.config.fallback.clone())
                    .await;
                return;
            }
            // Stale, replayed, or no tunnel: whatever any other bytes get.
            _ => conclude(live.router.decide_routes(&buf, false, false)),
        },
        other => other,
    };
    // HTTP that no route takes goes to the tunnel's fallback website (SPEC
    // §2: on plain HTTP too, what is not ours gets the website).
    let sniffed = match sniffed {
        Sniffed::Close(ErrorKind::NoMatch)
            if live.config.tunnel
                && shared.tunnel.is_some()
                && onedoor_proto::sniff::Protocol::Http.sniff(&buf)
                    == onedoor_proto::sniff::Verdict::Match =>
        {
            if let Some(target) = live.config.fallback.clone() {
                tracing::Span::current().record("route", "fallback");
                super::tunnel::relay(stream, buf, &target).await;
                return;
            }
            Sniffed::Close(ErrorKind::NoMatch)
        }
        other => other,
    };
    let route = match sniffed {
        Sniffed::Route(n) => n,
        Sniffed::Onedoor(own) => {
            tracing::debug!(?own, "onedoor traffic this server does not serve: closed");
            metrics::error(ErrorKind::NoTunnel);
            return;
        }
        Sniffed::Close(kind) => {
            tracing::debug!(reason = kind.label(), bytes = buf.len(), "closed");
            metrics::error(kind);
            return;
        }
    };
    let label = &live.labels[route];
    tracing::Span::current().record("route", label.as_str());
    let route = &live.config.routes[route];

    let mut backend = match connect(&route.target).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(backend = %route.target, route = %label, error = %e, "backend unreachable");
            metrics::error(ErrorKind::BackendConnect);
            return;
        }
    };
    tune(&backend);
    let sniffed_bytes = buf.len() as u64;
    if let Some(version) = route.proxy_protocol {
        let dst = stream.local_addr().unwrap_or(peer);
        let mut head = proxy_proto::encode(version, client, dst);
        head.extend_from_slice(&buf);
        buf = head;
    }
    if !buf.is_empty() {
        if let Err(e) = backend.write_all(&buf).await {
            tracing::debug!(error = %e, "backend write failed");
            metrics::error(ErrorKind::Io);
            return;
        }
    }
    drop(buf);
    let tally = RouteBytes::for_route(label);
    tally.up(sniffed_bytes);
    tracing::debug!(backend = %route.target, %client, "forwarding");
    match forward::join(stream, backend, &tally).await {
        Ok(moved) => tracing::debug!(up = moved.up, down = moved.down, "done"),
        Err(e) => {
            tracing::debug!(error = %e, "ended with an error");
            metrics::error(ErrorKind::Io);
        }
    }
}

/// Read until the router decides, the timeout hits or the client closes.
/// `client` becomes the PROXY header's source when a trusted source sent one.
async fn sniff(
    live: &Live,
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    client: &mut SocketAddr,
) -> Sniffed {
    let cfg = &live.config;
    let deadline = tokio::time::Instant::now() + cfg.timeout;
    let trusted = cfg.accept_proxy_protocol
        && cfg
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&client.ip()));
    let mut need_proxy_header = trusted;
    loop {
        if !need_proxy_header && !buf.is_empty() {
            match live.router.decide(buf, true) {
                Decision::NeedMore => {}
                decision => return conclude(decision),
            }
        }
        let read = tokio::time::timeout_at(deadline, read_some(stream, buf)).await;
        match read {
            Err(_elapsed) => {
                if need_proxy_header && !buf.is_empty() {
                    return Sniffed::Close(ErrorKind::ProxyHeader);
                }
                if buf.is_empty() {
                    return match cfg.on_timeout.and_then(|p| live.router.first_for(p)) {
                        Some(n) => Sniffed::Route(n),
                        None => Sniffed::Close(ErrorKind::Timeout),
                    };
                }
                // A client that stalls mid-message (half a ClientHello) timed
                // out; it is not counted with clients that sent garbage.
                return match live.router.decide(buf, false) {
                    Decision::NoMatch if live.router.decide(buf, true) == Decision::NeedMore => {
                        Sniffed::Close(ErrorKind::Timeout)
                    }
                    decision => conclude(decision),
                };
            }
            Ok(Err(_)) => return Sniffed::Close(ErrorKind::Io),
            Ok(Ok(0)) => {
                if buf.is_empty() || need_proxy_header {
                    return Sniffed::Close(ErrorKind::ClosedEarly);
                }
                return conclude(live.router.decide(buf, false));
            }
            Ok(Ok(_)) => {}
        }
        if need_proxy_header {
            match proxy_proto::parse(buf) {
                Parsed::NeedMore => {}
                Parsed::Header(h) => {
                    if let Some(src) = h.source {
                        *client = src;
                    }
                    buf.drain(..h.len);
                    need_proxy_header = false;
                    tracing::debug!(%client, "PROXY header from a trusted source");
                }
                // A trusted balancer may also pass connections through bare.
                Parsed::NotProxy => need_proxy_header = false,
                Parsed::Invalid(e) => {
                    tracing::debug!(error = %e, "bad PROXY header");
                    return Sniffed::Close(ErrorKind::ProxyHeader);
                }
            }
        }
    }
}

fn conclude(decision: Decision) -> Sniffed {
    match decision {
        Decision::Route(n) => Sniffed::Route(n),
        Decision::Onedoor(own) => Sniffed::Onedoor(own),
        Decision::NoMatch | Decision::NeedMore => Sniffed::Close(ErrorKind::NoMatch),
    }
}

/// Read what is there, growing `buf` up to [`MAX_SNIFF`]. Allocates nothing
/// until the client has sent something, so silent clients cost no buffer.
/// Returns 0 at end of stream, or when the sniff buffer is full.
async fn read_some(stream: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let room = MAX_SNIFF.saturating_sub(buf.len());
    if room == 0 {
        return Ok(0);
    }
    if buf.is_empty() {
        // Clients that speak first usually have by now: one read before
        // waiting on readiness saves a trip through the reactor.
        if let Some(n) = read_now(stream, buf)? {
            return Ok(n);
        }
    }
    loop {
        stream.readable().await?;
        if buf.capacity() == buf.len() {
            buf.reserve_exact(room.min(buf.len().max(2048)));
        }
        match stream.try_read_buf(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A non-blocking read straight from the socket, into a stack buffer so
/// that a silent client still costs no heap. `None`: nothing there yet.
fn read_now(stream: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    use std::os::fd::AsRawFd;
    let mut first = [0u8; 2048];
    // SAFETY: recv writes at most `first.len()` bytes into `first`.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            first.as_mut_ptr().cast(),
            first.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    let n = n as usize;
    buf.extend_from_slice(&first[..n]);
    Ok(Some(n))
}

/// Connect to a backend, resolving its name now (so it may move).
async fn connect(target: &HostPort) -> std::io::Result<TcpStream> {
    let attempt = async {
        match target.socket_addr() {
            Some(addr) => TcpStream::connect(addr).await,
            None => TcpStream::connect((target.host.as_str(), target.port)).await,
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        })
}
