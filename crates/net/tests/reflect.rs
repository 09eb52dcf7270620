//! The probe reflector inside serve, end to end on loopback: real sockets, a
//! real `Server`, the pure probe codec as the client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use onedoor_net::serve::reflect::Reflector;
use onedoor_net::serve::Server;
use onedoor_proto::config::{At, RouteSource, ServeLayer};
use onedoor_proto::probe::hello::{
    fingerprint, ChunkParse, Hello, HelloKind, ProbeKey, ReplyCheck, HELLO_LEN, REPLY_LEN,
};
use onedoor_proto::probe::SigningKey;
use onedoor_proto::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A sealed hello; nonces the codec refuses are skipped.
fn hello(
    key: &ProbeKey,
    kind: HelloKind,
    port: u16,
    seed: u8,
    run: [u8; 8],
) -> (Hello, [u8; HELLO_LEN]) {
    (0u8..=255)
        .find_map(|i| {
            let h = Hello {
                kind,
                port,
                nonce: [seed ^ i; 16].map(|b| b.wrapping_add(i)),
                unix_secs: now(),
                run,
            };
            key.seal(&h).ok().map(|bytes| (h, bytes))
        })
        .unwrap()
}

struct Setup {
    server: Server,
    door: SocketAddr,
    udp: SocketAddr,
    key: ProbeKey,
    fallback: TcpListener,
}

async fn setup() -> Setup {
    let signer = SigningKey::from_bytes(&[42; 32]);
    let key = ProbeKey::new(fingerprint(&signer.verifying_key().to_bytes()));
    let fallback = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let layer = ServeLayer {
        routes: Some(vec![At::flag(
            "--anyprot",
            RouteSource::Shorthand(
                Protocol::Anyprot,
                fallback.local_addr().unwrap().to_string(),
            ),
        )]),
        reflect: Some(At::flag("--reflect", "tcp:1,udp:1".into())),
        timeout: Some(At::flag("--timeout", "500ms".into())),
        ..Default::default()
    };
    let server = Server::new(
        layer.validate().unwrap(),
        Some(Arc::new(Reflector::new(signer))),
    );
    let l = onedoor_net::sys::listen::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let door = server.add_listener("door".into(), l).unwrap();
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_nonblocking(true).unwrap();
    let udp = u.local_addr().unwrap();
    server.add_udp_reflector(UdpSocket::from_std(u).unwrap());
    Setup {
        server,
        door,
        udp,
        key,
        fallback,
    }
}

async fn exchange(door: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(door).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    out
}

#[tokio::test]
async fn tcp_hello_is_answered_and_verified() {
    let s = setup().await;
    let (h, bytes) = hello(&s.key, HelloKind::Tcp, s.door.port(), 1, [1; 8]);
    let reply = exchange(s.door, &bytes).await;
    assert_eq!(reply.len(), REPLY_LEN);
    match s.key.check_reply(&h, &reply) {
        ReplyCheck::Verified(v) => assert_eq!(v.port_seen, s.door.port()),
        other => panic!("reply did not verify: {other:?}"),
    }
    drop(s.server);
}

#[tokio::test]
async fn replayed_hello_gets_what_anyone_gets() {
    let s = setup().await;
    let (_, bytes) = hello(&s.key, HelloKind::Tcp, s.door.port(), 2, [2; 8]);
    assert_eq!(exchange(s.door, &bytes).await.len(), REPLY_LEN);
    // The same bytes again: no answer of ours; the catch-all route takes them.
    let door = s.door;
    let replay = tokio::spawn(async move { exchange(door, &bytes).await });
    let (mut backend, _) = tokio::time::timeout(Duration::from_secs(3), s.fallback.accept())
        .await
        .expect("the replay reached the fallback route")
        .unwrap();
    let mut got = vec![0; HELLO_LEN];
    backend.read_exact(&mut got).await.unwrap();
    backend.write_all(b"website").await.unwrap();
    drop(backend);
    assert_eq!(replay.await.unwrap(), b"website");
}

#[tokio::test]
async fn hello_with_another_key_is_ordinary_bytes() {
    let s = setup().await;
    let other = ProbeKey::new([9; 32]);
    let (_, bytes) = hello(&other, HelloKind::Tcp, s.door.port(), 3, [3; 8]);
    let door = s.door;
    let client = tokio::spawn(async move { exchange(door, &bytes).await });
    let (mut backend, _) = tokio::time::timeout(Duration::from_secs(3), s.fallback.accept())
        .await
        .expect("a foreign hello is routed like any bytes")
        .unwrap();
    backend.write_all(b"site").await.unwrap();
    drop(backend);
    assert_eq!(client.await.unwrap(), b"site");
}

#[tokio::test]
async fn udp_arrivals_are_reported_over_tcp() {
    let s = setup().await;
    let run = [7; 8];
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (h, bytes) = hello(&s.key, HelloKind::Udp, s.udp.port(), 4, run);
    client.send_to(&bytes, s.udp).await.unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = tokio::time::timeout(Duration::from_secs(3), client.recv_from(&mut buf))
        .await
        .expect("a UDP reply")
        .unwrap();
    assert!(
        matches!(s.key.check_reply_datagram(&h, &buf[..n]), ReplyCheck::Verified(v) if v.port_seen == s.udp.port())
    );

    let (q, qbytes) = hello(&s.key, HelloKind::Arrivals, s.door.port(), 5, run);
    let out = exchange(s.door, &qbytes).await;
    let ReplyCheck::Verified(v) = s.key.check_reply(&q, &out) else {
        panic!("arrivals reply did not verify");
    };
    match s
        .key
        .parse_arrivals_chunk(&q, &v.public_key, 0, &out[REPLY_LEN..])
    {
        ChunkParse::Chunk(c) => {
            assert!(c.last);
            assert_eq!(c.arrivals.len(), 1);
            assert_eq!(c.arrivals[0].nonce, h.nonce);
            assert_eq!(c.arrivals[0].port_seen, s.udp.port());
        }
        other => panic!("no arrivals chunk: {other:?}"),
    }
}
