//! In-process tests of `connect`: a real TLS 1.3 door on loopback
//! (`TlsTransport`'s server half with a generated identity) in front of
//! `tunnel::server`, and the client's transport, supervisor and forwards.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use onedoor_proto::spec::{BindAddr, HostPort};
use onedoor_proto::tunnel::{AllowList, Fingerprint, Request, Token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use super::forward::{listen_tcp, listen_udp, run_local_tcp, run_local_udp};
use super::transport::{Answered, TlsClientOptions, TlsTransport, Transport, TransportError};
use super::{socks5, Backoff, ConnectFailure, Dialer, FailureKind, Tunnel};
use crate::state::Identity;
use crate::tunnel::client::ClientOptions;
use crate::tunnel::server::{self, ServerOptions, SystemConnector};
use onedoor_proto::tunnel::session::DoorTag;

fn token() -> Token {
    Token::from_bytes([7; 32])
}

struct Door {
    addr: SocketAddr,
    fingerprint: Fingerprint,
    /// TLS handshakes completed.
    handshakes: Arc<AtomicUsize>,
    /// Bytes read after the handshake, from connections that were not
    /// sessions.
    rejected: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

/// A TLS door on loopback serving tunnel sessions for [`token`] with
/// `allow`, on `addr` (port 0: any).
async fn door_at(allow: &str, addr: SocketAddr) -> Door {
    let id = Identity::generate("127.0.0.1", SystemTime::now()).unwrap();
    let tls = TlsTransport::client(TlsClientOptions::default())
        .with_server(
            vec![id.cert_der.clone()],
            id.key_pkcs8_der().expose().clone(),
        )
        .unwrap();
    let listener = tls.bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let list: AllowList = allow.parse().unwrap();
    let door = DoorTag::for_key(id.fingerprint().digest());
    let handshakes = Arc::new(AtomicUsize::new(0));
    let rejected = Arc::new(AtomicUsize::new(0));
    let (h, r) = (handshakes.clone(), rejected.clone());
    let task = tokio::spawn(async move {
        let mut sessions = tokio::task::JoinSet::new();
        loop {
            let Ok((raw, _)) = tls.accept(&listener).await else {
                return;
            };
            let (tls, list, h, r) = (tls.clone(), list.clone(), h.clone(), r.clone());
            sessions.spawn(async move {
                let Ok(io) = tls.handshake(raw).await else {
                    return;
                };
                h.fetch_add(1, Ordering::SeqCst);
                let opts = ServerOptions {
                    door,
                    ..ServerOptions::default()
                };
                match server::accept(io, &opts, |t| (*t == token()).then_some(list)).await {
                    Ok(a) => {
                        let _ = a
                            .serve(
                                &opts,
                                |l: &AllowList, q: &Request<'_>| l.check(q),
                                SystemConnector,
                            )
                            .await;
                    }
                    Err(rej) => {
                        r.fetch_add(rej.read.len().max(1), Ordering::SeqCst);
                    }
                }
            });
        }
    });
    Door {
        addr,
        fingerprint: id.fingerprint(),
        handshakes,
        rejected,
        task,
    }
}

async fn door(allow: &str) -> Door {
    door_at(allow, "127.0.0.1:0".parse().unwrap()).await
}

fn dialer(addr: SocketAddr, fp: Option<Fingerprint>, token: Token) -> Dialer<TlsTransport> {
    Dialer {
        transport: TlsTransport::client(TlsClientOptions {
            fingerprint: fp,
            sni: None,
            timeout: Duration::from_secs(5),
        }),
        server: HostPort::new(&addr.ip().to_string(), addr.port()),
        token,
        options: ClientOptions::default(),
    }
}

/// A pinned tunnel to `d` with the first client's token, its supervisor
/// left running.
async fn tunnel_to(d: &Door) -> Tunnel {
    let (tunnel, _supervisor) = Tunnel::start(
        dialer(d.addr, Some(d.fingerprint), token()),
        Backoff::default(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    tunnel
}

async fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    a
}

async fn roundtrip(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(msg).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test]
async fn pinned_door_carries_a_local_forward() {
    let d = door("*").await;
    let target = echo().await;
    let tunnel = tunnel_to(&d).await;
    let ls = listen_tcp(&BindAddr::Host("127.0.0.1".into()), 0)
        .await
        .unwrap();
    let local = ls[0].local_addr().unwrap();
    let t = HostPort::new("127.0.0.1", target.port());
    tokio::spawn(run_local_tcp(tunnel, ls.into_iter().next().unwrap(), t));
    for i in 0..5 {
        let msg = format!("hello {i} through one door");
        assert_eq!(roundtrip(local, msg.as_bytes()).await, msg.as_bytes());
    }
}

#[tokio::test]
async fn wrong_fingerprint_is_interception_named_and_nothing_is_sent() {
    let d = door("*").await;
    let pinned = Fingerprint::from_digest([9; 32]);
    let e = dialer(d.addr, Some(pinned), token())
        .dial()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), FailureKind::Intercepted, "{e}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("door {} is intercepted: ", d.addr.port())),
        "{msg}"
    );
    assert!(
        msg.contains(&d.fingerprint.to_string()),
        "names what answered: {msg}"
    );
    assert!(msg.contains(&pinned.to_string()), "names the pin: {msg}");
    match e {
        ConnectFailure::Transport(TransportError::Intercepted {
            answered: Answered::WrongKey { cert, .. },
            ..
        }) => assert_eq!(cert.fingerprint, Some(d.fingerprint)),
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        d.handshakes.load(Ordering::SeqCst),
        0,
        "the handshake must not complete"
    );
    assert_eq!(
        d.rejected.load(Ordering::SeqCst),
        0,
        "nothing may reach the server"
    );
}

#[tokio::test]
async fn unpinned_self_signed_door_is_not_trusted() {
    let d = door("*").await;
    let e = dialer(d.addr, None, token()).dial().await.unwrap_err();
    // Without system roots on this machine the transport says so (usage).
    assert!(
        matches!(e.kind(), FailureKind::Intercepted | FailureKind::Usage),
        "{e}"
    );
    assert_eq!(d.handshakes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn wrong_token_is_authentication_refused() {
    let d = door("*").await;
    let e = dialer(d.addr, Some(d.fingerprint), Token::from_bytes([8; 32]))
        .dial()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), FailureKind::AuthRefused, "{e}");
    assert!(e.to_string().contains("authentication refused"), "{e}");
}

#[tokio::test]
async fn closed_door_is_unreachable() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    let e = dialer(a, None, token()).dial().await.unwrap_err();
    assert_eq!(e.kind(), FailureKind::Unreachable, "{e}");
    assert!(e.to_string().starts_with("server unreachable"), "{e}");
}

#[tokio::test]
async fn plain_http_at_the_door_is_interception() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut b = [0u8; 512];
            let _ = s.read(&mut b).await;
            let _ = s
                .write_all(b"HTTP/1.1 302 Found\r\nLocation: http://portal/\r\n\r\n")
                .await;
        }
    });
    let e = dialer(a, Some(Fingerprint::from_digest([1; 32])), token())
        .dial()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), FailureKind::Intercepted, "{e}");
}

#[tokio::test]
async fn forbidden_destination_is_refused_by_the_allow_list() {
    let target = echo().await;
    let d = door("10.0.0.0/8:22").await;
    let tunnel = tunnel_to(&d).await;
    let e = super::open_tcp(&tunnel, "127.0.0.1", target.port())
        .await
        .unwrap_err();
    assert!(e.is_refused(), "{e}");
    assert!(
        e.to_string()
            .starts_with("forward refused by the server's allow-list"),
        "{e}"
    );
}

/// A minimal SOCKS5 client: CONNECT to a name.
async fn socks_connect(proxy: SocketAddr, host: &str, port: u16) -> (TcpStream, u8) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut b = [0u8; 2];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(b, [5, 0]);
    let mut req = vec![5, 1, 0, 3, host.len() as u8];
    req.extend_from_slice(host.as_bytes());
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut rep = [0u8; 10];
    s.read_exact(&mut rep).await.unwrap();
    (s, rep[1])
}

#[tokio::test]
async fn socks5_connect_passes_names_to_the_server() {
    let target = echo().await;
    let d = door(&format!("localhost:{}", target.port())).await;
    let tunnel = tunnel_to(&d).await;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = l.local_addr().unwrap();
    tokio::spawn(socks5::run(tunnel, l, Duration::from_secs(5)));
    let (mut s, code) = socks_connect(proxy, "localhost", target.port()).await;
    assert_eq!(code, 0);
    s.write_all(b"socks ok").await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, b"socks ok");
    // Not granted: "connection not allowed by ruleset".
    let (_s, code) = socks_connect(proxy, "localhost", target.port() ^ 1).await;
    assert_eq!(code, 2);
}

async fn udp_echo() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut b = vec![0u8; 65536];
        while let Ok((n, from)) = s.recv_from(&mut b).await {
            let _ = s.send_to(&b[..n], from).await;
        }
    });
    a
}

#[tokio::test]
async fn udp_local_forward_and_socks5_udp_associate() {
    let target = udp_echo().await;
    let d = door("*").await;
    let tunnel = tunnel_to(&d).await;
    // -L udp/
    let socks = listen_udp(&BindAddr::Host("127.0.0.1".into()), 0)
        .await
        .unwrap();
    let local = socks[0].local_addr().unwrap();
    let t = HostPort::new("127.0.0.1", target.port());
    tokio::spawn(run_local_udp(
        tunnel.clone(),
        socks.into_iter().next().unwrap(),
        t,
        Duration::from_secs(5),
    ));
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut b = vec![0u8; 2048];
    for i in 0..3usize {
        let msg = vec![i as u8; 1000 + i];
        c.send_to(&msg, local).await.unwrap();
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), c.recv_from(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&b[..n], &msg[..], "datagram boundaries kept");
    }
    // -D UDP ASSOCIATE
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = l.local_addr().unwrap();
    tokio::spawn(socks5::run(tunnel, l, Duration::from_secs(5)));
    let mut ctl = TcpStream::connect(proxy).await.unwrap();
    ctl.write_all(&[5, 1, 0]).await.unwrap();
    let mut g = [0u8; 2];
    ctl.read_exact(&mut g).await.unwrap();
    ctl.write_all(&[5, 3, 0, 1, 0, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let mut rep = [0u8; 10];
    ctl.read_exact(&mut rep).await.unwrap();
    assert_eq!(rep[1], 0);
    let relay = SocketAddr::from((
        [rep[4], rep[5], rep[6], rep[7]],
        u16::from_be_bytes([rep[8], rep[9]]),
    ));
    let mut dg = vec![0, 0, 0, 1, 127, 0, 0, 1];
    dg.extend_from_slice(&target.port().to_be_bytes());
    dg.extend_from_slice(b"via socks udp");
    c.send_to(&dg, relay).await.unwrap();
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), c.recv_from(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b[..n], &dg[..], "answer wrapped with the destination");
}

#[tokio::test]
async fn listeners_stay_up_while_the_session_reconnects() {
    let target = echo().await;
    let d = door("*").await;
    let addr = d.addr;
    let (tunnel, _sup) = Tunnel::start(
        dialer(d.addr, Some(d.fingerprint), token()),
        Backoff {
            min: Duration::from_millis(50),
            max: Duration::from_millis(200),
        },
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let ls = listen_tcp(&BindAddr::Host("127.0.0.1".into()), 0)
        .await
        .unwrap();
    let local = ls[0].local_addr().unwrap();
    tokio::spawn(run_local_tcp(
        tunnel.clone(),
        ls.into_iter().next().unwrap(),
        HostPort::new("127.0.0.1", target.port()),
    ));
    assert_eq!(roundtrip(local, b"before").await, b"before");
    // The server goes away (its sessions with it) and comes back on the
    // same port with another identity: the pin refuses it, so bring back
    // one with the same key instead by restarting the same door object.
    d.task.abort();
    let _ = d.task.await;
    let session = tunnel.session().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), session.closed())
        .await
        .expect("the session notices the server is gone");
    // Meanwhile a connection waits for the session, bounded.
    let waiting = tokio::spawn(async move { roundtrip(local, b"during").await });
    let d2 = door_at("*", addr).await;
    // A new identity: the client must refuse it (intercepted) and keep
    // trying; the listener stays up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(TcpStream::connect(local).await.is_ok(), "listener still up");
    assert_eq!(
        d2.rejected.load(Ordering::SeqCst),
        0,
        "nothing sent to an unpinned server"
    );
    d2.task.abort();
    let _ = waiting.await; // fails after the bounded wait (or sooner)
}
