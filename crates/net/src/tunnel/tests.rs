//! In-process tests of the tunnel session: real loopback sockets for the
//! destinations, `tokio::io::duplex` (or a TCP pair) for the session's
//! transport.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use onedoor_proto::tunnel::{AllowList, Request, Token};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use super::client::{ClientOptions, Session};
use super::server::{self, Connector, RejectReason, ServerOptions, SystemConnector};
use super::{AuthRefusal, ConnectError, OpenError, SessionError, SessionOptions};

fn token() -> Token {
    Token::from_bytes([42; 32])
}

fn wrong_token() -> Token {
    Token::from_bytes([43; 32])
}

/// Run the server end of a session on `io` for the client with [`token`]
/// and allow-list `allow`.
fn spawn_server<T, K>(
    io: T,
    allow: &str,
    connector: K,
    opts: ServerOptions,
) -> JoinHandle<Result<(), SessionError>>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    K: Connector,
{
    let list: AllowList = allow.parse().unwrap();
    tokio::spawn(async move {
        let auth = match server::accept(io, &opts, |t| (*t == token()).then_some(list)).await {
            Ok(a) => a,
            Err(r) => panic!("rejected: {:?}", r.reason),
        };
        auth.serve(
            &opts,
            |l: &AllowList, r: &Request<'_>| l.check(r),
            connector,
        )
        .await
    })
}

/// A session over an in-memory pipe.
async fn session(allow: &str) -> (Session, JoinHandle<Result<(), SessionError>>) {
    session_with(allow, SystemConnector).await
}

async fn session_with<K: Connector>(
    allow: &str,
    connector: K,
) -> (Session, JoinHandle<Result<(), SessionError>>) {
    let (c, s) = tokio::io::duplex(1 << 20);
    let server = spawn_server(s, allow, connector, ServerOptions::default());
    let session = Session::connect(c, &token(), &ClientOptions::default())
        .await
        .unwrap();
    (session, server)
}

/// A TCP echo server (half-close aware: echoes until EOF, then shuts down).
async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A listener that counts connections and never answers.
async fn counting_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            n2.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    (addr, n)
}

/// Deterministic bytes for stream `seed`.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_streams_keep_their_bytes() {
    let echo = echo_server().await;
    let (session, _server) = session(&format!("127.0.0.1:{}", echo.port())).await;
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let session = session.clone();
        tasks.push(tokio::spawn(async move {
            let len = (i as usize * 37_919) % (700 << 10);
            let data = payload(i, len);
            let s = session.open_tcp("127.0.0.1", echo.port()).await.unwrap();
            let (mut r, mut w) = tokio::io::split(s);
            let sent = data.clone();
            let writer = tokio::spawn(async move {
                // Odd-sized writes, so frames and reads never line up.
                for chunk in sent.chunks(7_001) {
                    w.write_all(chunk).await.unwrap();
                }
                w.shutdown().await.unwrap();
            });
            let mut back = Vec::new();
            r.read_to_end(&mut back).await.unwrap();
            writer.await.unwrap();
            assert_eq!(back.len(), data.len(), "stream {i}");
            assert!(back == data, "stream {i}: bytes differ");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn half_close_client_to_server() {
    // The destination reads to EOF, then answers and closes.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        s.write_all(format!("got {} bytes", got.len()).as_bytes())
            .await
            .unwrap();
        s.shutdown().await.unwrap();
    });
    let (session, _server) = session(&format!("127.0.0.1:{port}")).await;
    let mut s = session.open_tcp("127.0.0.1", port).await.unwrap();
    s.write_all(&[7u8; 100_000]).await.unwrap();
    s.shutdown().await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert_eq!(answer, "got 100000 bytes");
}

#[tokio::test]
async fn half_close_server_to_client() {
    // The destination speaks first and half-closes, then still reads.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        s.write_all(b"banner").await.unwrap();
        s.shutdown().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        tx.send(got).unwrap();
    });
    let (session, _server) = session(&format!("127.0.0.1:{port}")).await;
    let mut s = session.open_tcp("127.0.0.1", port).await.unwrap();
    let mut banner = Vec::new();
    s.read_to_end(&mut banner).await.unwrap();
    assert_eq!(banner, b"banner");
    // Our direction is still open after theirs closed.
    s.write_all(b"late but delivered").await.unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(rx.await.unwrap(), b"late but delivered");
}

/// chisel GHSA-24fp-5v3p-rvpw: the allow-list was checked at login only, so
/// an authenticated client reached anything with a second channel. Here
/// every stream is checked; a refused one leaves the others alone.
#[tokio::test]
async fn regression_ghsa_24fp_second_stream_to_forbidden_destination() {
    let echo = echo_server().await;
    let (forbidden, hits) = counting_server().await;
    let (session, _server) = session(&format!("127.0.0.1:{}", echo.port())).await;

    let mut ok = session.open_tcp("127.0.0.1", echo.port()).await.unwrap();
    ok.write_all(b"one").await.unwrap();

    let err = session
        .open_tcp("127.0.0.1", forbidden.port())
        .await
        .unwrap_err();
    assert!(matches!(err, OpenError::Refused { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "forward refused by the server's allow-list: 127.0.0.1:{}: ",
            forbidden.port()
        )),
        "{msg}"
    );
    assert!(msg.contains("not in the client's allow-list"), "{msg}");
    // By name too: localhost resolves to loopback, which only an address
    // pattern for that port grants.
    let err = session
        .open_tcp("localhost", forbidden.port())
        .await
        .unwrap_err();
    assert!(matches!(err, OpenError::Refused { .. }), "{err:?}");

    // The first stream and the session are unharmed.
    let mut buf = [0u8; 3];
    ok.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"one");
    let mut again = session.open_tcp("127.0.0.1", echo.port()).await.unwrap();
    again.write_all(b"two").await.unwrap();
    again.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"two");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the server connected anyway"
    );
}

/// Answers names from a table, counts connects.
#[derive(Clone, Default)]
struct FakeDns {
    table: Vec<(&'static str, Vec<IpAddr>)>,
    connects: Arc<AtomicUsize>,
}

impl Connector for FakeDns {
    async fn resolve(&self, host: &str, _port: u16) -> io::Result<Vec<IpAddr>> {
        self.table
            .iter()
            .find(|(h, _)| *h == host)
            .map(|(_, a)| a.clone())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such name"))
    }

    async fn connect_tcp(&self, addrs: &[SocketAddr]) -> io::Result<TcpStream> {
        self.connects.fetch_add(1, Ordering::SeqCst);
        SystemConnector.connect_tcp(addrs).await
    }
}

#[tokio::test]
async fn names_are_resolved_once_and_checked_by_address() {
    let echo = echo_server().await;
    let p = echo.port();
    let (forbidden, hits) = counting_server().await;
    let q = forbidden.port();
    let dns = FakeDns {
        table: vec![
            ("evil.example.com", vec!["127.0.0.1".parse().unwrap()]),
            (
                "mixed.example.com",
                vec![
                    "93.184.215.14".parse().unwrap(),
                    "127.0.0.1".parse().unwrap(),
                ],
            ),
            ("db.lan", vec!["127.0.0.1".parse().unwrap()]),
        ],
        ..FakeDns::default()
    };
    let connects = dns.connects.clone();
    // Names under example.com at any port, but loopback only at port p.
    let allow = format!("*.example.com:* 127.0.0.1:{p}");
    let (session, _server) = session_with(&allow, dns).await;
    for name in ["evil.example.com", "mixed.example.com"] {
        let err = session.open_tcp(name, q).await.unwrap_err();
        match &err {
            OpenError::Refused { reason, .. } => {
                assert!(reason.contains("127.0.0.1 is a loopback address"), "{err}")
            }
            e => panic!("{name}: {e:?}"),
        }
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    assert_eq!(connects.load(Ordering::SeqCst), 0);
    // A name that resolves to a granted address works, and the server
    // connects to that address (the echo answers).
    let mut s = session.open_tcp("db.lan", p).await.unwrap();
    s.write_all(b"x").await.unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(connects.load(Ordering::SeqCst), 1);
    // An unknown name is "unreachable", not "refused".
    let err = session.open_tcp("nx.example.com", p).await.unwrap_err();
    assert!(matches!(err, OpenError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("could not resolve"), "{err}");
}

#[tokio::test]
async fn unreachable_destination_is_reported() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let (session, _server) = session(&format!("127.0.0.1:{port}")).await;
    let err = session.open_tcp("127.0.0.1", port).await.unwrap_err();
    assert!(matches!(err, OpenError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("the server could not reach 127.0.0.1:{port}: ")),
        "{err}"
    );
}

#[tokio::test]
async fn no_token_goes_to_the_fallback_untouched() {
    let (mut c, s) = tokio::io::duplex(1 << 16);
    let request = b"GET / HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
    c.write_all(request).await.unwrap();
    let opts = ServerOptions::default();
    let r = server::accept(s, &opts, |_| -> Option<()> { panic!("no token to check") })
        .await
        .unwrap_err();
    assert_eq!(r.reason, RejectReason::NotAHello);
    // Decided on the first read, which asks for 64 bytes at most: the
    // rest is still in the connection.
    assert!(!r.read.is_empty() && r.read.len() <= 64, "{}", r.read.len());
    assert_eq!(&r.read[..], &request[..r.read.len()]);
    let mut io = r.io;
    let mut rest = vec![0u8; request.len() - r.read.len()];
    io.read_exact(&mut rest).await.unwrap();
    assert_eq!(&rest[..], &request[r.read.len()..]);
    // Nothing was written to the client.
    drop(io);
    let mut anything = Vec::new();
    c.read_to_end(&mut anything).await.unwrap();
    assert!(anything.is_empty());
}

#[tokio::test]
async fn wrong_token_goes_to_the_fallback_and_the_client_says_so() {
    let (c, s) = tokio::io::duplex(1 << 16);
    let fallback = tokio::spawn(async move {
        let opts = ServerOptions::default();
        let r = server::accept(s, &opts, |t| (*t == token()).then_some(()))
            .await
            .unwrap_err();
        assert_eq!(r.reason, RejectReason::UnknownToken);
        assert_eq!(r.read.len(), 64);
        // Play the fallback website: read on (padding and the HTTP/2
        // preface were left unread), then answer as a web server would.
        let mut io = r.io;
        let mut seen = r.read.clone();
        let mut buf = [0u8; 4096];
        while !seen.windows(14).any(|w| w == b"PRI * HTTP/2.0") {
            let n = io.read(&mut buf).await.unwrap();
            assert!(n > 0);
            seen.extend_from_slice(&buf[..n]);
        }
        io.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        io
    });
    let err = Session::connect(c, &wrong_token(), &ClientOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectError::AuthRefused(AuthRefusal::OtherAnswer)),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("authentication refused"),
        "{err}"
    );
    drop(fallback.await.unwrap());
}

#[tokio::test]
async fn refused_and_closed_is_auth_refused_too() {
    let (c, s) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let r = server::accept(s, &ServerOptions::default(), |_| None::<()>)
            .await
            .unwrap_err();
        drop(r.io);
    });
    let err = Session::connect(c, &token(), &ClientOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectError::AuthRefused(AuthRefusal::Closed)),
        "{err:?}"
    );
}

#[tokio::test]
async fn silence_and_short_hellos_are_rejected() {
    let opts = ServerOptions {
        hello_timeout: Duration::from_millis(100),
        ..ServerOptions::default()
    };
    // Silence.
    let (_c, s) = tokio::io::duplex(64);
    let r = server::accept(s, &opts, |_| Some(())).await.unwrap_err();
    assert_eq!(r.reason, RejectReason::Timeout);
    assert!(r.read.is_empty());
    // The door tag, then silence: the bytes come back.
    let t = *opts.door.bytes();
    let start = [t[0], t[1], t[2], t[3], 1, 0, 0, 9, 9];
    let (mut c, s) = tokio::io::duplex(64);
    c.write_all(&start).await.unwrap();
    let r = server::accept(s, &opts, |_| Some(())).await.unwrap_err();
    assert_eq!(r.reason, RejectReason::Timeout);
    assert_eq!(r.read, start);
    // ... then EOF.
    let (mut c, s) = tokio::io::duplex(64);
    c.write_all(&start[..5]).await.unwrap();
    drop(c);
    let r = server::accept(s, &opts, |_| Some(())).await.unwrap_err();
    assert_eq!(r.reason, RejectReason::Closed);
    assert_eq!(r.read, start[..5]);
    // A byte that is not the door tag's: refused at once, no wait.
    let (mut c, s) = tokio::io::duplex(64);
    c.write_all(&[t[0] ^ 0x01]).await.unwrap();
    let started = std::time::Instant::now();
    let r = server::accept(s, &opts, |_| Some(())).await.unwrap_err();
    assert_eq!(r.reason, RejectReason::NotAHello);
    assert!(started.elapsed() < Duration::from_millis(50));
    drop(c);
}

#[tokio::test]
async fn udp_datagrams_keep_their_boundaries() {
    let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        loop {
            let (n, from) = echo.recv_from(&mut buf).await.unwrap();
            echo.send_to(&buf[..n], from).await.unwrap();
        }
    });
    let (session, _server) = session(&format!("udp/127.0.0.1:{port}")).await;
    let mut flow = session.open_udp("127.0.0.1", port).await.unwrap();
    let sizes = [1usize, 0, 100, 1400, 9000, 3, 65_000, 2];
    for (i, &n) in sizes.iter().enumerate() {
        flow.send(&payload(i as u64, n)).await.unwrap();
    }
    for (i, &n) in sizes.iter().enumerate() {
        let d = flow.recv().await.unwrap().unwrap();
        assert_eq!(d.len(), n, "datagram {i}");
        assert_eq!(&d[..], &payload(i as u64, n)[..], "datagram {i}");
    }
    // Split halves work from separate tasks.
    let (mut tx, mut rx) = flow.split();
    let t = tokio::spawn(async move {
        for i in 0..50u8 {
            tx.send(&[i; 10]).await.unwrap();
        }
    });
    for i in 0..50u8 {
        assert_eq!(&rx.recv().await.unwrap().unwrap()[..], &[i; 10]);
    }
    t.await.unwrap();
    // A TCP grant is not a UDP grant, and vice versa.
    let err = session.open_udp("127.0.0.1", port + 1).await.unwrap_err();
    assert!(matches!(err, OpenError::Refused { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("udp/127.0.0.1:{}", port + 1)),
        "{err}"
    );
    let err = session.open_tcp("127.0.0.1", port).await.unwrap_err();
    assert!(matches!(err, OpenError::Refused { .. }), "{err:?}");
}

#[tokio::test]
async fn reverse_bind_carries_connections_back() {
    let (session, _server) = session("bind/127.0.0.1:*").await;
    let mut listener = session.bind("127.0.0.1", 0).await.unwrap();
    let addr = listener.local_addr();
    assert_eq!(addr.ip(), "127.0.0.1".parse::<IpAddr>().unwrap());
    assert_ne!(addr.port(), 0);
    for round in 0..3u8 {
        let visitor = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&[round; 5000]).await.unwrap();
            s.shutdown().await.unwrap();
            let mut back = Vec::new();
            s.read_to_end(&mut back).await.unwrap();
            back
        });
        let (mut s, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), addr.ip());
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, vec![round; 5000]);
        s.write_all(b"thanks").await.unwrap();
        s.shutdown().await.unwrap();
        assert_eq!(visitor.await.unwrap(), b"thanks");
    }
    // Dropping the listener closes it at the server.
    drop(listener);
    let mut closed = false;
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed, "the server still listens on {addr}");
}

#[tokio::test]
async fn reverse_bind_outside_grants_is_refused() {
    let (session, _server) = session("bind/127.0.0.1:8022 127.0.0.1:*").await;
    for (host, port) in [("127.0.0.1", 8023), ("0.0.0.0", 8022), ("127.0.0.1", 0)] {
        let err = session.bind(host, port).await.unwrap_err();
        assert!(
            matches!(err, OpenError::Refused { .. }),
            "{host}:{port}: {err:?}"
        );
        assert!(
            err.to_string().starts_with(&format!(
                "forward refused by the server's allow-list: bind/{host}:{port}: "
            )),
            "{err}"
        );
    }
}

/// Two in-memory pipes joined by a cable that can be cut: after the cut it
/// silently drops everything, and neither end sees EOF (a dead peer, a
/// dropped NAT mapping, a pulled cable).
fn cable() -> (DuplexStream, DuplexStream, Arc<tokio::sync::Notify>) {
    let (a, a_far) = tokio::io::duplex(1 << 20);
    let (b, b_far) = tokio::io::duplex(1 << 20);
    let cut = Arc::new(tokio::sync::Notify::new());
    let (ar, aw) = tokio::io::split(a_far);
    let (br, bw) = tokio::io::split(b_far);
    for (mut r, mut w) in [(ar, bw), (br, aw)] {
        let cut = cut.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1 << 16];
            let cut = cut.notified();
            tokio::pin!(cut);
            loop {
                tokio::select! {
                    () = &mut cut => break,
                    n = r.read(&mut buf) => match n {
                        Ok(0) | Err(_) => return,
                        Ok(n) => if w.write_all(&buf[..n]).await.is_err() { return },
                    },
                }
            }
            // Cut: swallow everything, close nothing.
            let _keep = w;
            while let Ok(n) = r.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
            std::future::pending::<()>().await;
        });
    }
    (a, b, cut)
}

#[tokio::test(start_paused = true)]
async fn keepalive_notices_a_silent_peer_within_10s() {
    let echo = echo_server().await;
    let (c, s, cut) = cable();
    let server = spawn_server(
        s,
        &format!("127.0.0.1:{}", echo.port()),
        SystemConnector,
        ServerOptions::default(),
    );
    let session = Session::connect(c, &token(), &ClientOptions::default())
        .await
        .unwrap();
    // Quiet for a while: the pings keep it alive.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(session.ended(), None);
    let t0 = tokio::time::Instant::now();
    cut.notify_waiters();
    let why = session.closed().await;
    let took = t0.elapsed();
    assert!(matches!(why, SessionError::PeerSilent(_)), "{why:?}");
    assert!(took <= Duration::from_secs(10), "client took {took:?}");
    let r = server.await.unwrap();
    let took = t0.elapsed();
    assert!(matches!(r, Err(SessionError::PeerSilent(_))), "{r:?}");
    assert!(took <= Duration::from_secs(10), "server took {took:?}");
    // Opening a stream now says why.
    let err = session
        .open_tcp("127.0.0.1", echo.port())
        .await
        .unwrap_err();
    assert!(
        matches!(err, OpenError::Session(SessionError::PeerSilent(_))),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_session_ends_when_the_server_goes() {
    let (c, s) = tokio::io::duplex(1 << 16);
    let server = spawn_server(s, "*", SystemConnector, ServerOptions::default());
    let session = Session::connect(c, &token(), &ClientOptions::default())
        .await
        .unwrap();
    server.abort();
    let why = tokio::time::timeout(Duration::from_secs(5), session.closed())
        .await
        .unwrap();
    assert_eq!(why, SessionError::Closed);
}

/// Move `total` bytes through one stream over a TCP loopback session with
/// these settings (both ends) and return Gbit/s.
async fn one_stream_throughput(total: u64, session_opts: SessionOptions) -> f64 {
    let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = sink.local_addr().unwrap().port();
    let counted = tokio::spawn(async move {
        let (mut s, _) = sink.accept().await.unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            match s.read(&mut buf).await.unwrap() {
                0 => break,
                k => n += k as u64,
            }
        }
        s.shutdown().await.unwrap();
        n
    });
    let door = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let door_addr = door.local_addr().unwrap();
    let allow = format!("127.0.0.1:{port}");
    let server_session = session_opts.clone();
    let server = tokio::spawn(async move {
        let (io, _) = door.accept().await.unwrap();
        io.set_nodelay(true).unwrap();
        let opts = ServerOptions {
            session: server_session,
            ..ServerOptions::default()
        };
        let list: AllowList = allow.parse().unwrap();
        let a = server::accept(io, &opts, |t| (*t == token()).then_some(list))
            .await
            .unwrap();
        a.serve(
            &opts,
            |l: &AllowList, r: &Request<'_>| l.check(r),
            SystemConnector,
        )
        .await
    });
    let io = TcpStream::connect(door_addr).await.unwrap();
    io.set_nodelay(true).unwrap();
    let client_opts = ClientOptions {
        session: session_opts,
        ..ClientOptions::default()
    };
    let session = Session::connect(io, &token(), &client_opts).await.unwrap();
    let mut s = session.open_tcp("127.0.0.1", port).await.unwrap();
    let block = vec![0x5au8; 1 << 20];
    let start = std::time::Instant::now();
    let mut left = total;
    while left > 0 {
        let k = left.min(block.len() as u64) as usize;
        s.write_all(&block[..k]).await.unwrap();
        left -= k as u64;
    }
    s.shutdown().await.unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(counted.await.unwrap(), total);
    drop(s);
    drop(session);
    let _ = server.await;
    total as f64 * 8.0 / secs / 1e9
}

/// A smoke check, not a timed assertion: prints the figure with
/// `--nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_smoke() {
    let mib = 64;
    let gbps = one_stream_throughput(mib << 20, SessionOptions::default()).await;
    println!("tunnel session, one stream, TCP loopback, {mib} MiB: {gbps:.2} Gbit/s");
}

/// The measurement: 1 GiB (or `ONEDOOR_TUNNEL_MIB`) through one stream.
/// `cargo test --release -p onedoor-net tunnel::tests::throughput_1gib --
/// --ignored --nocapture`; `ONEDOOR_TUNNEL_H2_DEFAULTS=1` uses HTTP/2's
/// default windows and frame size instead, for comparison.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it in release mode"]
async fn throughput_1gib() {
    let mib: u64 = std::env::var("ONEDOOR_TUNNEL_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let (opts, what) = if std::env::var_os("ONEDOOR_TUNNEL_H2_DEFAULTS").is_some() {
        let o = SessionOptions {
            stream_window: 65_535,
            connection_window: 65_535,
            max_frame: 16_384,
            max_send_buffer: 400 << 10,
            ..SessionOptions::default()
        };
        (o, "HTTP/2 default windows")
    } else {
        (SessionOptions::default(), "onedoor windows")
    };
    let gbps = one_stream_throughput(mib << 20, opts).await;
    println!("tunnel session, one stream, TCP loopback, {mib} MiB, {what}: {gbps:.2} Gbit/s");
}

/// Resident memory of this process, in KiB (Linux).
fn rss_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4)
}

/// The other two measurements: memory per held forwarded stream (client and
/// server ends together, one process) and new-stream latency through a live
/// session against a direct connect.
/// `cargo test --release -p onedoor-net tunnel::tests::held_streams -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it in release mode"]
async fn held_streams_memory_and_open_latency() {
    // A destination that holds connections without reading.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let h2 = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            h2.lock().unwrap().push(s);
        }
    });
    let (session, _server) = session(&format!("127.0.0.1:{port}")).await;
    // Warm up allocator and session.
    let mut streams = Vec::new();
    for _ in 0..100 {
        streams.push(session.open_tcp("127.0.0.1", port).await.unwrap());
    }
    let n = 1000;
    let before = rss_kib().unwrap_or(0);
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = std::time::Instant::now();
        streams.push(session.open_tcp("127.0.0.1", port).await.unwrap());
        lat.push(t.elapsed());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss_kib().unwrap_or(0);
    let mut direct = Vec::with_capacity(n);
    let mut conns = Vec::new();
    for _ in 0..n {
        let t = std::time::Instant::now();
        conns.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        direct.push(t.elapsed());
    }
    lat.sort();
    direct.sort();
    let pct = |v: &[Duration], p: usize| v[v.len() * p / 100].as_micros();
    println!(
        "held streams: {:.1} KiB each (client+server, {n} held, RSS {before} -> {after} KiB)",
        (after.saturating_sub(before)) as f64 / n as f64
    );
    println!(
        "new stream through the session: p50 {} us, p99 {} us; direct connect: p50 {} us, p99 {} us",
        pct(&lat, 50),
        pct(&lat, 99),
        pct(&direct, 50),
        pct(&direct, 99)
    );
}

/// A connected loopback pair: (the local client's end, the forward's end).
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (s, _) = l.accept().await.unwrap();
    (c, s)
}

#[tokio::test]
async fn opening_stream_carries_bytes_sent_before_the_answer() {
    let echo = echo_server().await;
    let (session, _server) = session(&format!("127.0.0.1:{}", echo.port())).await;
    let (mut local, fwd) = tcp_pair().await;
    // Written before the request even leaves: it must arrive, in order,
    // behind `first`.
    local.write_all(b" and more").await.unwrap();
    local.shutdown().await.unwrap();
    let opening = session
        .start_tcp(
            "127.0.0.1",
            echo.port(),
            bytes::Bytes::from_static(b"first"),
        )
        .await
        .unwrap();
    let joined = tokio::spawn(super::join_opening(fwd, opening));
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), local.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"first and more");
    let moved = joined.await.unwrap().unwrap();
    assert_eq!(moved.up, b" and more".len() as u64);
    assert_eq!(moved.down, got.len() as u64);
}

#[tokio::test]
async fn opening_stream_refused_while_sending_reports_the_refusal() {
    let (forbidden, hits) = counting_server().await;
    let (session, _server) = session("127.0.0.1:1").await;
    let (mut local, fwd) = tcp_pair().await;
    let opening = session
        .start_tcp("127.0.0.1", forbidden.port(), bytes::Bytes::new())
        .await
        .unwrap();
    let joined = tokio::spawn(super::join_opening(fwd, opening));
    // Keep writing while the server says no (bounded: 8 MiB, then EOF).
    let writer = tokio::spawn(async move {
        let chunk = vec![7u8; 64 << 10];
        for _ in 0..128 {
            if local.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = local.shutdown().await;
        let mut rest = Vec::new();
        let _ = local.read_to_end(&mut rest).await;
    });
    let err = tokio::time::timeout(Duration::from_secs(10), joined)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    match err {
        super::JoinError::Open(OpenError::Refused { target, .. }) => {
            assert_eq!(target, format!("127.0.0.1:{}", forbidden.port()));
        }
        e => panic!("expected the allow-list's refusal, got {e:?}"),
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the server connected anyway"
    );
    // The session is unharmed.
    assert!(session.ended().is_none());
}

#[tokio::test]
async fn opening_stream_to_an_unreachable_destination_is_an_open_error() {
    let (session, _server) = session("127.0.0.1:*").await;
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let (_local, fwd) = tcp_pair().await;
    let opening = session
        .start_tcp("127.0.0.1", port, bytes::Bytes::from_static(b"x"))
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), super::join_opening(fwd, opening))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, super::JoinError::Open(OpenError::Unreachable { .. })),
        "{err:?}"
    );
}
