//! The forwards of `onedoor connect`: each takes the [`Tunnel`]'s current
//! session for every connection, so it keeps listening through outages.
//!
//! - [`listen_tcp`] + [`run_local_tcp`]: `-L [bind:]port:host:hostport`.
//! - [`listen_udp`] + [`run_local_udp`]: `-L udp/…`, one flow per peer,
//!   ended after an idle time.
//! - [`run_remote`]: `-R`, bound again on every new session.
//! - [`run_stdio`]: `-W host:port`, stdin/stdout to one stream.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use onedoor_proto::spec::{BindAddr, HostPort};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use bytes::Bytes;

use super::{ForwardError, Tunnel};
use crate::tunnel::{join, join_opening, JoinError, OpenError};

/// The addresses a local forward listens on: loopback (both families where
/// available), every interface, or what a name resolves to.
pub async fn bind_addrs(bind: &BindAddr, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok(match bind {
        BindAddr::Loopback => vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
        ],
        BindAddr::All => vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        ],
        BindAddr::Host(h) => {
            let mut v: Vec<SocketAddr> =
                tokio::net::lookup_host((h.as_str(), port)).await?.collect();
            v.dedup();
            v
        }
    })
}

/// Is every address of this bind a loopback one?
pub async fn is_loopback(bind: &BindAddr) -> bool {
    match bind {
        BindAddr::Loopback => true,
        BindAddr::All => false,
        BindAddr::Host(_) => bind_addrs(bind, 1)
            .await
            .map(|v| !v.is_empty() && v.iter().all(|a| a.ip().is_loopback()))
            .unwrap_or(false),
    }
}

/// Whether a failed bind may be skipped: the other family of a loopback or
/// wildcard pair (a host without IPv6, or `[::]` already covering IPv4).
fn optional(bind: &BindAddr, addr: &SocketAddr, e: &io::Error) -> bool {
    !matches!(bind, BindAddr::Host(_))
        && addr.is_ipv6()
        && matches!(
            e.kind(),
            io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse | io::ErrorKind::Unsupported
        )
}

fn v6only(addr: &SocketAddr) -> io::Result<socket2::Socket> {
    let domain = socket2::Domain::for_address(*addr);
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    Ok(s)
}

/// Listen for `-L`/`-D`: every address of `bind` (an address that cannot
/// be had is an error, except the IPv6 half of loopback or `*`).
pub async fn listen_tcp(bind: &BindAddr, port: u16) -> io::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    let mut port = port;
    for addr in bind_addrs(bind, port).await? {
        let addr = SocketAddr::new(addr.ip(), port);
        let r = (|| {
            let s = v6only(&addr)?;
            s.set_reuse_address(true)?;
            s.set_nonblocking(true)?;
            s.bind(&addr.into())?;
            s.listen(1024)?;
            TcpListener::from_std(s.into())
        })();
        match r {
            Ok(l) => {
                // Port 0: the other addresses take the same port.
                port = l.local_addr()?.port();
                out.push(l);
            }
            Err(e) if !out.is_empty() && optional(bind, &addr, &e) => {
                tracing::debug!(%addr, "not listening: {e}");
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("listen on {addr}: {e}"))),
        }
    }
    Ok(out)
}

/// Bind UDP sockets for `-L udp/…`, like [`listen_tcp`].
pub async fn listen_udp(bind: &BindAddr, port: u16) -> io::Result<Vec<UdpSocket>> {
    let mut out = Vec::new();
    let mut port = port;
    for addr in bind_addrs(bind, port).await? {
        let addr = SocketAddr::new(addr.ip(), port);
        let r = (|| {
            let domain = socket2::Domain::for_address(addr);
            let s = socket2::Socket::new(domain, socket2::Type::DGRAM, None)?;
            if addr.is_ipv6() {
                s.set_only_v6(true)?;
            }
            s.set_nonblocking(true)?;
            s.bind(&addr.into())?;
            UdpSocket::from_std(s.into())
        })();
        match r {
            Ok(s) => {
                port = s.local_addr()?.port();
                out.push(s);
            }
            Err(e) if !out.is_empty() && optional(bind, &addr, &e) => {
                tracing::debug!(%addr, "not listening: {e}");
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("listen on {addr}: {e}"))),
        }
    }
    Ok(out)
}

/// Log a failed forwarded connection: refusals loudly (the user must ask
/// for a grant), the rest as warnings.
pub(crate) fn log_failure(what: &str, e: &ForwardError) {
    if e.is_refused() {
        tracing::error!("{what}: {e}");
    } else {
        tracing::warn!("{what}: {e}");
    }
}

/// `-L`: each connection to `listener` becomes a stream to `target` at the
/// server. Runs until the listener fails.
pub async fn run_local_tcp(
    tunnel: Tunnel,
    listener: TcpListener,
    target: HostPort,
) -> io::Result<()> {
    let target = Arc::new(target);
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) if is_transient(&e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let _ = sock.set_nodelay(true);
        let tunnel = tunnel.clone();
        let target = target.clone();
        tokio::spawn(async move {
            let first = super::already_sent(&sock);
            // The local client's bytes go out right behind the request, not
            // a round trip later: most clients write as soon as they have
            // connected.
            let opening = match tunnel.session().await {
                Ok(s) => s
                    .start_tcp(&target.host, target.port, first)
                    .await
                    .map_err(ForwardError::from),
                Err(e) => Err(e.into()),
            };
            let what = || format!("-L {peer} → {target}");
            match opening {
                Ok(stream) => match join_opening(sock, stream).await {
                    Ok(_) => tracing::debug!(%peer, %target, "forward done"),
                    Err(JoinError::Open(e)) => log_failure(&what(), &e.into()),
                    Err(JoinError::Io(e)) => tracing::debug!(%peer, %target, "forward ended: {e}"),
                },
                Err(e) => log_failure(&what(), &e),
            }
        });
    }
}

/// Errors of `accept` that pass (a peer gone before we took it, no fds for
/// a moment).
pub(crate) fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || e.raw_os_error() == Some(libc::EMFILE)
        || e.raw_os_error() == Some(libc::ENFILE)
}

/// `-L udp/…`: datagrams from each local peer go into a flow of their own
/// to `target` (opened on the peer's first datagram); answers go back to
/// that peer. A flow quiet for `idle` is closed.
pub async fn run_local_udp(
    tunnel: Tunnel,
    socket: UdpSocket,
    target: HostPort,
    idle: Duration,
) -> io::Result<()> {
    let socket = Arc::new(socket);
    let target = Arc::new(target);
    let mut flows: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) if is_transient(&e) || e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(e),
        };
        let datagram = buf[..n].to_vec();
        if let Some(tx) = flows.get(&peer) {
            match tx.try_send(datagram) {
                Ok(()) => continue,
                // Queue full: drop, as a congested UDP path would.
                Err(mpsc::error::TrySendError::Full(_)) => continue,
                Err(mpsc::error::TrySendError::Closed(d)) => {
                    flows.remove(&peer);
                    let tx = spawn_udp_flow(&tunnel, &socket, &target, peer, idle);
                    let _ = tx.try_send(d);
                    flows.insert(peer, tx);
                }
            }
        } else {
            flows.retain(|_, tx| !tx.is_closed());
            let tx = spawn_udp_flow(&tunnel, &socket, &target, peer, idle);
            let _ = tx.try_send(datagram);
            flows.insert(peer, tx);
        }
    }
}

/// One peer's flow: a task that opens `open_udp` and pumps both ways.
fn spawn_udp_flow(
    tunnel: &Tunnel,
    socket: &Arc<UdpSocket>,
    target: &Arc<HostPort>,
    peer: SocketAddr,
    idle: Duration,
) -> mpsc::Sender<Vec<u8>> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
    let (tunnel, socket, target) = (tunnel.clone(), socket.clone(), target.clone());
    tokio::spawn(async move {
        let flow = match tunnel.session().await {
            Ok(s) => s
                .open_udp(&target.host, target.port)
                .await
                .map_err(ForwardError::from),
            Err(e) => Err(e.into()),
        };
        let flow = match flow {
            Ok(f) => f,
            Err(e) => {
                log_failure(&format!("-L udp/{peer} → {target}"), &e);
                return;
            }
        };
        let (mut send, mut recv) = flow.split();
        loop {
            tokio::select! {
                d = rx.recv() => match d {
                    Some(d) => if let Err(e) = send.send(&d).await {
                        tracing::debug!(%peer, "udp flow ended: {e}");
                        break;
                    },
                    None => break,
                },
                r = recv.recv() => match r {
                    Ok(Some(d)) => { let _ = socket.send_to(&d, peer).await; }
                    Ok(None) => break,
                    Err(e) => { tracing::debug!(%peer, "udp flow ended: {e}"); break; }
                },
                _ = tokio::time::sleep(idle) => {
                    tracing::debug!(%peer, "udp flow idle; closing");
                    break;
                }
            }
        }
        let _ = send.finish();
    });
    tx
}

/// `-R`: ask the server to listen on `bind:port`; each connection there is
/// carried back and connected to `target` from here. Bound again on every
/// new session. The first bind's outcome comes back on `first` (a refusal
/// there ends `connect` with its exit code).
pub async fn run_remote(
    tunnel: Tunnel,
    bind: BindAddr,
    port: u16,
    target: HostPort,
    first: tokio::sync::oneshot::Sender<Result<SocketAddr, ForwardError>>,
) {
    let host = match &bind {
        BindAddr::Loopback => "127.0.0.1".to_owned(),
        BindAddr::All => "0.0.0.0".to_owned(),
        BindAddr::Host(h) => h.clone(),
    };
    let mut first = Some(first);
    let target = Arc::new(target);
    loop {
        let bound = match tunnel.session().await {
            Ok(s) => s.bind(&host, port).await.map_err(ForwardError::from),
            Err(e) => Err(e.into()),
        };
        let mut listener = match bound {
            Ok(l) => {
                tracing::info!(
                    "-R listening on the server at {} → {target}",
                    l.local_addr()
                );
                if let Some(f) = first.take() {
                    let _ = f.send(Ok(l.local_addr()));
                }
                l
            }
            Err(e) => {
                if let Some(f) = first.take() {
                    let _ = f.send(Err(e));
                    return;
                }
                log_failure(&format!("-R {host}:{port}"), &e);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let target = target.clone();
                    tokio::spawn(async move {
                        match TcpStream::connect((target.host.as_str(), target.port)).await {
                            Ok(sock) => {
                                let _ = sock.set_nodelay(true);
                                if let Err(e) = join(sock, stream).await {
                                    tracing::debug!(%peer, %target, "-R forward ended: {e}");
                                }
                            }
                            Err(e) => tracing::warn!("-R {peer} → {target}: {e}"),
                        }
                    });
                }
                Err(OpenError::Session(why)) => {
                    tracing::debug!("-R {host}:{port}: session ended ({why}); binding again");
                    break;
                }
                Err(e) => {
                    tracing::warn!("-R {host}:{port}: {e}; binding again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

/// `-W host:port`: stdin and stdout joined to one stream. Only the
/// stream's bytes go to stdout.
pub async fn run_stdio(tunnel: &Tunnel, target: &HostPort) -> Result<(), ForwardError> {
    // Stdin goes out before the answer, as for `-L`.
    let stream = tunnel
        .session()
        .await?
        .start_tcp(&target.host, target.port, Bytes::new())
        .await?;
    let io = tokio::io::join(tokio::io::stdin(), tokio::io::stdout());
    match join_opening(io, stream).await {
        Ok(_) => Ok(()),
        Err(JoinError::Open(e)) => Err(e.into()),
        Err(JoinError::Io(e)) => {
            tracing::debug!(%target, "-W ended: {e}");
            Ok(())
        }
    }
}
