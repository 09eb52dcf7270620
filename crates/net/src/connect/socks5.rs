//! `-D`: a SOCKS5 server (RFC 1928) whose CONNECTs and UDP ASSOCIATEs go
//! through the tunnel. No authentication: it listens on loopback unless the
//! user explicitly opens it up. Names are passed through and resolved at the
//! server (`curl --socks5-hostname`), so local DNS learns nothing.
//!
//! UDP ASSOCIATE: a UDP relay socket on the address the client reached us
//! at; each destination the client sends to gets its own tunnel flow
//! (`open_udp`), and answers come back wrapped with that destination's
//! address. The association ends with its TCP control connection.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::forward::{is_transient, log_failure};
use super::{open_tcp, ForwardError, Tunnel};
use crate::tunnel::{join, OpenError};

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0x00;
const NO_ACCEPTABLE: u8 = 0xff;
const CMD_CONNECT: u8 = 1;
const CMD_UDP_ASSOCIATE: u8 = 3;
const ATYP_V4: u8 = 1;
const ATYP_NAME: u8 = 3;
const ATYP_V6: u8 = 4;

/// SOCKS5 reply codes.
mod rep {
    pub(super) const OK: u8 = 0;
    pub(super) const FAILURE: u8 = 1;
    pub(super) const NOT_ALLOWED: u8 = 2;
    pub(super) const HOST_UNREACHABLE: u8 = 4;
    pub(super) const CMD_UNSUPPORTED: u8 = 7;
    pub(super) const ATYP_UNSUPPORTED: u8 = 8;
}

/// A SOCKS destination: a name (passed through) or an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dest {
    /// Name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

/// Serve SOCKS5 on `listener` until it fails. `udp_idle` ends a UDP flow
/// that has been quiet that long.
pub async fn run(tunnel: Tunnel, listener: TcpListener, udp_idle: Duration) -> io::Result<()> {
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) if is_transient(&e) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let _ = sock.set_nodelay(true);
        let tunnel = tunnel.clone();
        tokio::spawn(async move {
            if let Err(e) = client(tunnel, sock, peer, udp_idle).await {
                tracing::debug!(%peer, "socks5: {e}");
            }
        });
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

async fn reply(sock: &mut TcpStream, code: u8, bound: SocketAddr) -> io::Result<()> {
    let mut out = vec![VERSION, code, 0];
    put_addr(&mut out, &bound);
    sock.write_all(&out).await
}

fn put_addr(out: &mut Vec<u8>, a: &SocketAddr) {
    match a.ip() {
        IpAddr::V4(ip) => {
            out.push(ATYP_V4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(ATYP_V6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&a.port().to_be_bytes());
}

fn put_dest(out: &mut Vec<u8>, d: &Dest) {
    match d.host.parse::<IpAddr>() {
        Ok(ip) => put_addr(out, &SocketAddr::new(ip, d.port)),
        Err(_) => {
            out.push(ATYP_NAME);
            out.push(d.host.len().min(255) as u8);
            out.extend_from_slice(&d.host.as_bytes()[..d.host.len().min(255)]);
            out.extend_from_slice(&d.port.to_be_bytes());
        }
    }
}

/// Parse ATYP + address + port from `b`; the destination and the bytes used.
pub fn parse_dest(b: &[u8]) -> Option<(Dest, usize)> {
    let (host, used) = match *b.first()? {
        ATYP_V4 => {
            let o: [u8; 4] = b.get(1..5)?.try_into().ok()?;
            (Ipv4Addr::from(o).to_string(), 5)
        }
        ATYP_V6 => {
            let o: [u8; 16] = b.get(1..17)?.try_into().ok()?;
            (Ipv6Addr::from(o).to_string(), 17)
        }
        ATYP_NAME => {
            let n = usize::from(*b.get(1)?);
            let name = std::str::from_utf8(b.get(2..2 + n)?).ok()?;
            if name.is_empty() {
                return None;
            }
            (name.to_owned(), 2 + n)
        }
        _ => return None,
    };
    let p: [u8; 2] = b.get(used..used + 2)?.try_into().ok()?;
    Some((
        Dest {
            host,
            port: u16::from_be_bytes(p),
        },
        used + 2,
    ))
}

/// Read the request's address from the socket.
async fn read_dest(sock: &mut TcpStream, atyp: u8) -> io::Result<Option<Dest>> {
    let mut b = vec![atyp];
    match atyp {
        ATYP_V4 => b.resize(1 + 4 + 2, 0),
        ATYP_V6 => b.resize(1 + 16 + 2, 0),
        ATYP_NAME => {
            let n = sock.read_u8().await?;
            b.push(n);
            b.resize(2 + usize::from(n) + 2, 0);
            sock.read_exact(&mut b[2..]).await?;
            return Ok(parse_dest(&b).map(|(d, _)| d));
        }
        _ => return Ok(None),
    }
    sock.read_exact(&mut b[1..]).await?;
    Ok(parse_dest(&b).map(|(d, _)| d))
}

fn unspecified() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
}

fn reply_code(e: &ForwardError) -> u8 {
    match e {
        ForwardError::Open(OpenError::Refused { .. }) => rep::NOT_ALLOWED,
        ForwardError::Open(OpenError::Unreachable { .. }) => rep::HOST_UNREACHABLE,
        _ => rep::FAILURE,
    }
}

async fn client(
    tunnel: Tunnel,
    mut sock: TcpStream,
    peer: SocketAddr,
    udp_idle: Duration,
) -> io::Result<()> {
    // Greeting.
    let mut head = [0u8; 2];
    sock.read_exact(&mut head).await?;
    if head[0] != VERSION {
        return Err(bad("not SOCKS5"));
    }
    let mut methods = vec![0u8; usize::from(head[1])];
    sock.read_exact(&mut methods).await?;
    if !methods.contains(&NO_AUTH) {
        sock.write_all(&[VERSION, NO_ACCEPTABLE]).await?;
        return Err(bad("the client offers no method we take (no-auth)"));
    }
    sock.write_all(&[VERSION, NO_AUTH]).await?;
    // Request.
    let mut req = [0u8; 4];
    sock.read_exact(&mut req).await?;
    if req[0] != VERSION {
        return Err(bad("not SOCKS5"));
    }
    let Some(dest) = read_dest(&mut sock, req[3]).await? else {
        reply(&mut sock, rep::ATYP_UNSUPPORTED, unspecified()).await?;
        return Err(bad("unsupported address type"));
    };
    match req[1] {
        CMD_CONNECT => match open_tcp(&tunnel, &dest.host, dest.port).await {
            Ok(stream) => {
                reply(&mut sock, rep::OK, unspecified()).await?;
                join(sock, stream).await.map(|_| ())
            }
            Err(e) => {
                log_failure(&format!("-D {peer} → {}:{}", dest.host, dest.port), &e);
                reply(&mut sock, reply_code(&e), unspecified()).await
            }
        },
        CMD_UDP_ASSOCIATE => associate(tunnel, sock, peer, udp_idle).await,
        _ => reply(&mut sock, rep::CMD_UNSUPPORTED, unspecified()).await,
    }
}

/// UDP ASSOCIATE: relay on a UDP socket next to the control connection.
async fn associate(
    tunnel: Tunnel,
    mut ctl: TcpStream,
    peer: SocketAddr,
    idle: Duration,
) -> io::Result<()> {
    let local = ctl.local_addr()?;
    let relay = Arc::new(UdpSocket::bind(SocketAddr::new(local.ip(), 0)).await?);
    reply(&mut ctl, rep::OK, relay.local_addr()?).await?;
    // Datagrams are taken only from the control connection's host.
    let client_ip = peer.ip();
    let mut client_addr: Option<SocketAddr> = None;
    let mut flows: HashMap<Dest, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; 65_535];
    let mut ctl_buf = [0u8; 64];
    loop {
        tokio::select! {
            r = ctl.read(&mut ctl_buf) => match r {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => {}
            },
            r = relay.recv_from(&mut buf) => {
                let (n, from) = match r {
                    Ok(x) => x,
                    Err(_) => continue,
                };
                if from.ip() != client_ip {
                    continue;
                }
                let client = *client_addr.get_or_insert(from);
                if from != client {
                    continue;
                }
                // RSV RSV FRAG ATYP ADDR PORT DATA; fragments are dropped.
                if n < 4 || buf[2] != 0 {
                    continue;
                }
                let Some((dest, used)) = parse_dest(&buf[3..n]) else { continue };
                let data = buf[3 + used..n].to_vec();
                if let Some(tx) = flows.get(&dest) {
                    if !tx.is_closed() {
                        let _ = tx.try_send(data);
                        continue;
                    }
                }
                let tx = spawn_flow(&tunnel, &relay, client, dest.clone(), idle);
                let _ = tx.try_send(data);
                flows.retain(|_, t| !t.is_closed());
                flows.insert(dest, tx);
            }
        }
    }
}

fn spawn_flow(
    tunnel: &Tunnel,
    relay: &Arc<UdpSocket>,
    client: SocketAddr,
    dest: Dest,
    idle: Duration,
) -> mpsc::Sender<Vec<u8>> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
    let (tunnel, relay) = (tunnel.clone(), relay.clone());
    tokio::spawn(async move {
        let flow = match tunnel.session().await {
            Ok(s) => s
                .open_udp(&dest.host, dest.port)
                .await
                .map_err(ForwardError::from),
            Err(e) => Err(e.into()),
        };
        let flow = match flow {
            Ok(f) => f,
            Err(e) => {
                log_failure(
                    &format!("-D udp {client} → {}:{}", dest.host, dest.port),
                    &e,
                );
                return;
            }
        };
        let mut header = vec![0, 0, 0];
        put_dest(&mut header, &dest);
        let (mut send, mut recv) = flow.split();
        loop {
            tokio::select! {
                d = rx.recv() => match d {
                    Some(d) => if send.send(&d).await.is_err() { break },
                    None => break,
                },
                r = recv.recv() => match r {
                    Ok(Some(d)) => {
                        let mut out = header.clone();
                        out.extend_from_slice(&d);
                        let _ = relay.send_to(&out, client).await;
                    }
                    _ => break,
                },
                _ = tokio::time::sleep(idle) => break,
            }
        }
        let _ = send.finish();
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_and_print_back() {
        for d in [
            Dest {
                host: "10.0.0.1".into(),
                port: 53,
            },
            Dest {
                host: "::1".into(),
                port: 443,
            },
            Dest {
                host: "example.internal".into(),
                port: 8080,
            },
        ] {
            let mut b = Vec::new();
            put_dest(&mut b, &d);
            let (back, used) = parse_dest(&b).unwrap();
            assert_eq!(back, d);
            assert_eq!(used, b.len());
        }
        assert!(parse_dest(&[ATYP_NAME, 0, 0, 80]).is_none());
        assert!(parse_dest(&[9, 1, 2]).is_none());
        assert!(parse_dest(&[ATYP_V4, 1, 2]).is_none());
    }
}
