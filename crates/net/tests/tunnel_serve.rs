//! The tunnel inside serve (`serve --tunnel`), end to end on loopback: a real
//! `Server` on a real socket, a state dir made by `StateDir::init`, the `tls`
//! transport's client pinning the identity's fingerprint, the tunnel session client,
//! a fallback website, and `curl` as the scanner.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use onedoor_net::connect::transport::{TlsClientOptions, TlsTransport};
use onedoor_net::serve::tunnel::{Tunnel, TunnelOptions, TunnelTls, ALPN_HTTP1};
use onedoor_net::serve::Server;
use onedoor_net::state::{Identity, StateDir};
use onedoor_net::tunnel::client::{ClientOptions, Session};
use onedoor_net::tunnel::{AuthRefusal, ConnectError, OpenError};
use onedoor_proto::config::{At, RouteSource, ServeLayer};
use onedoor_proto::spec::HostPort;
use onedoor_proto::tunnel::session::ClientHello;
use onedoor_proto::tunnel::session::DoorTag;
use onedoor_proto::tunnel::{AllowList, AllowPattern, Fingerprint, Token};
use onedoor_proto::Protocol;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// What the fallback website answers, always.
const WEBSITE: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 21\r\nConnection: close\r\n\r\nthe real website here";

struct Door {
    _dir: tempfile::TempDir,
    state: StateDir,
    identity: Identity,
    server: Server,
    tunnel: Arc<Tunnel>,
    addr: SocketAddr,
    /// What the fallback website received, one entry per connection.
    fallback_seen: Option<mpsc::UnboundedReceiver<Vec<u8>>>,
}

fn allow(patterns: &[&str]) -> AllowList {
    let mut a = AllowList::new();
    for p in patterns {
        a.grant(p.parse::<AllowPattern>().unwrap());
    }
    a
}

fn add_client(state: &StateDir, name: &str, token: &Token, patterns: &[&str]) {
    state
        .edit_registry(|r| r.insert(name, allow(patterns), token, SystemTime::now()))
        .unwrap();
}

/// A tiny website: reads a request (up to the blank line, or EOF), reports
/// what it read, answers [`WEBSITE`] and closes.
async fn website() -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                    if got.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let _ = tx.send(got);
                let _ = s.write_all(WEBSITE).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, rx)
}

/// An echo server (what the tunnel forwards to).
async fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// serve with `--tunnel` (and a fallback website unless `no_fallback`),
/// plus `routes` (which may be empty).
async fn door(no_fallback: bool, routes: Vec<At<RouteSource>>) -> Door {
    door_with(no_fallback, routes, None).await
}

/// [`door`], with `--cert`/`--key` contents when given.
async fn door_with(
    no_fallback: bool,
    routes: Vec<At<RouteSource>>,
    chain: Option<(Vec<u8>, Vec<u8>)>,
) -> Door {
    let dir = tempfile::tempdir().unwrap();
    let (state, identity) =
        StateDir::init(dir.path().join("state"), "door.test", 443, false).unwrap();
    let (fallback, fallback_seen) = if no_fallback {
        (None, None)
    } else {
        let (a, rx) = website().await;
        (Some(At::flag("--fallback", a.to_string())), Some(rx))
    };
    let layer = ServeLayer {
        tunnel: Some(At::flag("--tunnel", true)),
        fallback,
        routes: (!routes.is_empty()).then_some(routes),
        timeout: Some(At::flag("--timeout", "2s".into())),
        ..Default::default()
    };
    let tls = TunnelTls::new(
        &identity,
        chain.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
        ALPN_HTTP1,
    )
    .unwrap();
    let opts = TunnelOptions {
        watch: Duration::from_millis(100),
        ..Default::default()
    };
    let tunnel = Tunnel::new(state.clone(), tls, opts).unwrap();
    let server = Server::with_tunnel(layer.validate().unwrap(), None, Some(tunnel.clone()));
    let l = onedoor_net::sys::listen::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.add_listener("door".into(), l).unwrap();
    Door {
        _dir: dir,
        state,
        identity,
        server,
        tunnel,
        addr,
        fallback_seen,
    }
}

/// The client's TLS to `addr` (the `tls` transport's own handshake),
/// pinning `fingerprint`, with SNI `name` (`None`: no SNI).
async fn pinned_tls(
    addr: SocketAddr,
    fingerprint: Fingerprint,
    name: Option<&str>,
) -> Result<TlsStream<TcpStream>, onedoor_net::connect::transport::TransportError> {
    let transport = TlsTransport::client(TlsClientOptions {
        fingerprint: Some(fingerprint),
        sni: name.map(str::to_owned),
        ..Default::default()
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    transport
        .handshake_over(&HostPort::new(&addr.ip().to_string(), addr.port()), tcp)
        .await
}

impl Door {
    /// TLS to the door with SNI `name` (`None`: no SNI), pinning the
    /// identity's fingerprint.
    async fn tls(&self, name: Option<&str>) -> TlsStream<TcpStream> {
        pinned_tls(self.addr, self.identity.fingerprint(), name)
            .await
            .unwrap()
    }

    async fn session(&self, token: &Token) -> Result<Session, ConnectError> {
        let tls = self.tls(Some("door.test")).await;
        let door_opts = opts_for(&tls);
        Session::connect(tls, token, &door_opts).await
    }
}

async fn round_trip(session: &Session, to: SocketAddr, what: &[u8]) -> Result<Vec<u8>, OpenError> {
    let mut s = session.open_tcp("127.0.0.1", to.port()).await?;
    s.write_all(what).await.unwrap();
    s.shutdown().await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut back))
        .await
        .expect("echo answered")
        .unwrap();
    Ok(back)
}

#[tokio::test]
async fn a_client_reaches_a_granted_destination_through_serve() {
    let echo = echo().await;
    let mut d = door(false, vec![]).await;
    let token = Token::from_bytes([7; 32]);
    add_client(
        &d.state,
        "alice",
        &token,
        &[&format!("127.0.0.1:{}", echo.port())],
    );
    d.tunnel.refresh(false);
    let session = d.session(&token).await.unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(round_trip(&session, echo, &big).await.unwrap(), big);
    // Many streams on the one session.
    for i in 0..5u8 {
        assert_eq!(round_trip(&session, echo, &[i; 10]).await.unwrap(), [i; 10]);
    }
    assert_eq!(d.tunnel.sessions(), 1);
    // SNI-less TLS is ours too (no user `tls` route claims it).
    let tls = d.tls(None).await;
    let door_opts = opts_for(&tls);
    let s2 = Session::connect(tls, &token, &door_opts).await.unwrap();
    assert_eq!(round_trip(&s2, echo, b"no sni").await.unwrap(), b"no sni");
    // Nothing went to the website.
    let seen = d.fallback_seen.as_mut().unwrap();
    assert!(seen.try_recv().is_err());
}

#[tokio::test]
async fn a_wrong_token_gets_the_website_and_nothing_else() {
    let mut d = door(false, vec![]).await;
    add_client(&d.state, "alice", &Token::from_bytes([7; 32]), &["*"]);
    d.tunnel.refresh(false);
    let mut seen = d.fallback_seen.take().unwrap();

    // By hand: a well-formed hello with an unknown token, then half-close.
    let door_tag = DoorTag::for_key(d.identity.fingerprint().digest());
    let hello = ClientHello::new(Token::from_bytes([8; 32]), [3; 32]).encode(&door_tag);
    let mut tls = d.tls(Some("door.test")).await;
    tls.write_all(&hello).await.unwrap();
    tls.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, WEBSITE, "{}", String::from_utf8_lossy(&answer));
    // The website got exactly what the client sent, nothing of ours.
    assert_eq!(seen.recv().await.unwrap(), hello);

    // The session client: "authentication refused", the website answered.
    match d.session(&Token::from_bytes([9; 32])).await {
        Err(ConnectError::AuthRefused(AuthRefusal::OtherAnswer)) => {}
        other => panic!("{other:?}"),
    }
    // Plain HTTP inside our TLS: the website, request untouched.
    let mut tls = d.tls(Some("door.test")).await;
    let req = b"GET /index.html HTTP/1.1\r\nHost: door.test\r\n\r\n";
    tls.write_all(req).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    assert_eq!(answer, WEBSITE);
    assert_eq!(d.tunnel.sessions(), 0);
}

#[tokio::test]
async fn without_a_fallback_a_stranger_is_closed() {
    let d = door(true, vec![]).await;
    match d.session(&Token::from_bytes([9; 32])).await {
        Err(ConnectError::AuthRefused(AuthRefusal::Closed)) => {}
        other => panic!("{other:?}"),
    }
}

fn curl(args: &[String]) -> Option<std::process::Output> {
    let out = std::process::Command::new("curl").args(args).output();
    match out {
        Ok(o) => Some(o),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("curl not installed: skipped");
            None
        }
        Err(e) => panic!("curl: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_sees_the_website() {
    let d = door(false, vec![]).await;
    let port = d.addr.port().to_string();
    let by_ip = format!("https://127.0.0.1:{port}/");
    let resolve = format!("door.test:{port}:127.0.0.1");
    let by_name = format!("https://door.test:{port}/");
    for args in [
        vec!["-sk", "--max-time", "10", by_ip.as_str()],
        vec![
            "-sk",
            "--max-time",
            "10",
            "--resolve",
            resolve.as_str(),
            by_name.as_str(),
        ],
    ] {
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let Some(out) = tokio::task::spawn_blocking(move || curl(&args))
            .await
            .unwrap()
        else {
            return;
        };
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout, b"the real website here", "{out:?}");
    }
    let mut seen = d.fallback_seen.unwrap();
    let req = String::from_utf8(seen.recv().await.unwrap()).unwrap();
    assert!(req.starts_with("GET / HTTP/1.1\r\n"), "{req}");
}

#[tokio::test]
async fn a_removed_client_is_cut_within_a_bounded_time() {
    let echo = echo().await;
    let d = door(false, vec![]).await;
    let (alice, bob) = (Token::from_bytes([7; 32]), Token::from_bytes([6; 32]));
    add_client(&d.state, "alice", &alice, &["*"]);
    add_client(&d.state, "bob", &bob, &["*"]);
    d.tunnel.refresh(false);
    let a = d.session(&alice).await.unwrap();
    let b = d.session(&bob).await.unwrap();
    let mut held = a.open_tcp("127.0.0.1", echo.port()).await.unwrap();
    held.write_all(b"x").await.unwrap();
    assert_eq!(d.tunnel.sessions(), 2);

    d.state.edit_registry(|r| r.remove("alice")).unwrap();
    // The watcher (every 100 ms here, 1 s by default) notices.
    let why = tokio::time::timeout(Duration::from_secs(3), a.closed())
        .await
        .expect("alice's session was cut");
    eprintln!("alice's session ended: {why}");
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(3), held.read_to_end(&mut rest)).await;
    assert!(r.is_ok(), "alice's stream ended too");
    // Bob stays.
    assert!(b.ended().is_none());
    assert_eq!(round_trip(&b, echo, b"bob").await.unwrap(), b"bob");
    assert_eq!(d.tunnel.sessions(), 1);
    // And alice's token no longer logs in: the website answers.
    assert!(matches!(
        d.session(&alice).await,
        Err(ConnectError::AuthRefused(AuthRefusal::OtherAnswer))
    ));
}

#[tokio::test]
async fn a_revoked_grant_refuses_the_next_stream_and_the_session_stays() {
    let (e1, e2) = (echo().await, echo().await);
    let d = door(false, vec![]).await;
    let token = Token::from_bytes([7; 32]);
    let p1 = format!("127.0.0.1:{}", e1.port());
    let p2 = format!("127.0.0.1:{}", e2.port());
    add_client(&d.state, "alice", &token, &[&p1, &p2]);
    d.tunnel.refresh(false);
    let session = d.session(&token).await.unwrap();
    assert_eq!(
        round_trip(&session, e2, b"before").await.unwrap(),
        b"before"
    );

    d.state
        .edit_registry(|r| r.deny("alice", &[p2.parse().unwrap()]))
        .unwrap();
    // SIGHUP does this at once; the watcher within its interval.
    d.tunnel.refresh(true);
    match round_trip(&session, e2, b"after").await {
        Err(OpenError::Refused { target, reason }) => {
            assert!(target.contains(&e2.port().to_string()), "{target}");
            assert!(reason.contains("allow-list"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(session.ended().is_none());
    assert_eq!(round_trip(&session, e1, b"still").await.unwrap(), b"still");

    // And granted again: the next stream goes through.
    d.state
        .edit_registry(|r| r.allow("alice", &[p2.parse().unwrap()]))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await; // the watcher
    assert_eq!(round_trip(&session, e2, b"again").await.unwrap(), b"again");
}

/// chisel GHSA-24fp-5v3p-rvpw, through serve: an authenticated client opens
/// a second stream to a destination outside its allow-list.
#[tokio::test]
async fn chisel_a_second_stream_outside_the_allow_list_is_refused() {
    let (granted, other) = (echo().await, echo().await);
    let d = door(false, vec![]).await;
    let token = Token::from_bytes([7; 32]);
    add_client(
        &d.state,
        "alice",
        &token,
        &[&format!("127.0.0.1:{}", granted.port())],
    );
    d.tunnel.refresh(false);
    let session = d.session(&token).await.unwrap();
    assert_eq!(round_trip(&session, granted, b"ok").await.unwrap(), b"ok");
    for host in ["127.0.0.1", "localhost", "::1"] {
        match session.open_tcp(host, other.port()).await {
            Err(OpenError::Refused { .. }) => {}
            other => panic!("{host}: {other:?}"),
        }
    }
    // The granted stream still works, on the same session.
    assert_eq!(round_trip(&session, granted, b"ok").await.unwrap(), b"ok");
    assert!(session.ended().is_none());
    // A client with an empty allow-list reaches nothing.
    let nobody = Token::from_bytes([5; 32]);
    add_client(&d.state, "nobody", &nobody, &[]);
    d.tunnel.refresh(false);
    let s = d.session(&nobody).await.unwrap();
    assert!(matches!(
        s.open_tcp("127.0.0.1", granted.port()).await,
        Err(OpenError::Refused { .. })
    ));
}

/// The user's routes keep working beside the tunnel: another SNI goes to
/// its `tls` route untouched, and with a `tls` route without `sni=`, TLS
/// without SNI is the user's, not ours.
#[tokio::test]
async fn other_tls_goes_to_the_user_routes() {
    let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let route = At::flag(
        "--tls",
        RouteSource::Shorthand(Protocol::Tls, backend.local_addr().unwrap().to_string()),
    );
    let d = door(false, vec![route]).await;
    for sni in [Some("other.example"), None] {
        let d_addr = d.addr;
        let client = tokio::spawn(async move {
            let _ = pinned_tls(d_addr, Fingerprint::of(b"nothing"), sni).await;
        });
        let (mut s, _) = tokio::time::timeout(Duration::from_secs(5), backend.accept())
            .await
            .expect("the tls route got it")
            .unwrap();
        let mut head = [0u8; 5];
        s.read_exact(&mut head).await.unwrap();
        assert_eq!(head[0], 0x16, "a ClientHello, untouched");
        drop(s);
        client.abort();
    }
    let _ = d.server;
}

/// `--cert`/`--key`: a CA-style certificate (ECDSA P-256, made by openssl)
/// is presented instead of the identity's, its DNS names (wildcards too)
/// become serve's own names, and a client verifying it against its root
/// gets a session.
#[tokio::test]
async fn a_certificate_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=door.example.org"])
        .args([
            "-addext",
            "subjectAltName=DNS:door.example.org,DNS:*.door.example.org",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    match made {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("openssl: {o:?}"),
        Err(e) => {
            eprintln!("openssl not available ({e}): skipped");
            return;
        }
    }
    let (cert_pem, key_pem) = (std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap());
    let echo = echo().await;
    let d = door_with(false, vec![], Some((cert_pem.clone(), key_pem))).await;
    assert_eq!(
        d.tunnel.names(),
        ["door.test", "door.example.org", "*.door.example.org"]
    );
    let token = Token::from_bytes([7; 32]);
    add_client(&d.state, "alice", &token, &["*"]);
    d.tunnel.refresh(false);
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    roots
        .add(CertificateDer::from_pem_slice(&cert_pem).unwrap())
        .unwrap();
    let provider = onedoor_net::connect::transport::crypto_provider();
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    for name in ["door.example.org", "x.door.example.org"] {
        let tcp = TcpStream::connect(d.addr).await.unwrap();
        let tls = TlsConnector::from(config.clone())
            .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let door_opts = opts_for(&tls);
        let s = Session::connect(tls, &token, &door_opts).await.unwrap();
        assert_eq!(
            round_trip(&s, echo, name.as_bytes()).await.unwrap(),
            name.as_bytes()
        );
    }
    // A key that is not the certificate's is refused at start.
    let other = d.identity.key_pem();
    let e = TunnelTls::new(
        &d.identity,
        Some((cert_pem.as_slice(), other.expose().as_bytes())),
        ALPN_HTTP1,
    )
    .unwrap_err();
    eprintln!("mismatched key: {e}");
}

/// Session options with the door tag of the key the server presented on
/// this TLS connection, as `onedoor connect` does.
fn opts_for(tls: &tokio_rustls::client::TlsStream<TcpStream>) -> ClientOptions {
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let key = onedoor_net::connect::transport::cert_fingerprint(&leaf).unwrap();
    ClientOptions {
        door: DoorTag::for_key(key.digest()),
        ..ClientOptions::default()
    }
}
