//! The shell against real loopback sockets: a small reflector built from
//! the pure codec (and its misbehaving cousins: a portal, a silent door, a
//! wrong key, a NAT), closed ports, and a port whose accept queue is full
//! (SYNs dropped: filtered).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use onedoor_proto::probe::{
    fingerprint, Arrival, Hello, HelloKind, HelloParse, Interception, PortState, ProbeKey, Refusal,
    SigningKey, HELLO_LEN,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::*;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const T: Duration = Duration::from_millis(300);

fn signer() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn key() -> ProbeKey {
    ProbeKey::new(fingerprint(&signer().verifying_key().to_bytes()))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// How a test door behaves.
#[derive(Clone, Copy, Debug)]
enum Door {
    /// Our reflector: replies, answers arrivals queries.
    Reflector,
    /// Replies signed by another key (who knows the fingerprint).
    WrongKey,
    /// Our server, but it says it saw another port (a NAT on the way).
    Rewritten,
    /// A captive portal.
    Portal,
    /// Accepts, reads, says nothing.
    Silent,
    /// Accepts, reads the hello, then closes without a byte.
    Closes,
    /// Accepts, then resets the connection.
    Resets,
}

/// The server side of a test: the doors and what UDP hellos arrived.
#[derive(Default)]
struct Lab {
    arrivals: Mutex<Vec<(Hello, u16)>>,
    /// Connections held open by silent doors right now, and the most ever.
    active: AtomicUsize,
    peak: AtomicUsize,
}

impl Lab {
    async fn tcp(self: &Arc<Self>, door: Door) -> u16 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = l.local_addr().unwrap().port();
        let lab = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                tokio::spawn(lab.clone().serve(s, door, port));
            }
        });
        port
    }

    async fn serve(self: Arc<Self>, mut s: TcpStream, door: Door, port: u16) {
        match door {
            Door::Portal => {
                let _ = s
                    .write_all(b"HTTP/1.1 302 Found\r\nLocation: http://portal.invalid/\r\n\r\n")
                    .await;
                return;
            }
            Door::Closes => {
                let mut buf = [0u8; HELLO_LEN];
                let _ = s.read_exact(&mut buf).await;
                return;
            }
            Door::Resets => {
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                return;
            }
            Door::Silent => {
                let n = self.active.fetch_add(1, Ordering::SeqCst) + 1;
                self.peak.fetch_max(n, Ordering::SeqCst);
                let mut sink = [0u8; 256];
                while let Ok(n) = s.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
                self.active.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            _ => {}
        }
        let mut buf = [0u8; HELLO_LEN];
        if s.read_exact(&mut buf).await.is_err() {
            return;
        }
        let HelloParse::Hello(h) = key().parse(&buf) else {
            return;
        };
        let (seen, who) = match door {
            Door::Rewritten => (port.wrapping_add(1), signer()),
            Door::WrongKey => (port, SigningKey::from_bytes(&[9; 32])),
            _ => (port, signer()),
        };
        let mut out = key().reply(&h, seen, &who).to_vec();
        if h.kind == HelloKind::Arrivals {
            let list: Vec<Arrival> = self
                .arrivals
                .lock()
                .unwrap()
                .iter()
                .filter(|(a, _)| a.run == h.run)
                .map(|(a, p)| Arrival {
                    nonce: a.nonce,
                    port_seen: *p,
                })
                .collect();
            out.extend(key().arrivals_report(&h, &list, &who));
        }
        let _ = s.write_all(&out).await;
        let _ = s.shutdown().await;
    }

    /// A UDP door that records hellos and replies if `reply`, or answers
    /// with junk if `junk`.
    async fn udp(self: &Arc<Self>, reply: bool, junk: bool) -> u16 {
        let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = s.local_addr().unwrap().port();
        let lab = self.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            loop {
                let Ok((n, from)) = s.recv_from(&mut buf).await else {
                    return;
                };
                if junk {
                    let _ = s.send_to(b"\x81\x80 not a reply", from).await;
                    continue;
                }
                let HelloParse::Hello(h) = key().parse_datagram(&buf[..n]) else {
                    continue;
                };
                lab.arrivals.lock().unwrap().push((h, port));
                if reply {
                    let r = key().reply(&h, port, &signer());
                    let _ = s.send_to(&r, from).await;
                }
            }
        });
        port
    }
}

/// A port that refuses: bound a moment ago, now closed.
fn closed_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn closed_udp_port() -> u16 {
    std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port whose accept queue is full: the kernel drops new SYNs, as a
/// filtering firewall does. Keep the returned sockets alive.
fn filtered_port() -> (u16, socket2::Socket, std::net::TcpStream) {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    s.listen(0).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    let filler = std::net::TcpStream::connect(addr).unwrap();
    (addr.port(), s, filler)
}

fn config(tcp: &[u16], udp: &[u16]) -> Config {
    Config {
        ip: LOCALHOST,
        key: key(),
        tcp: tcp.iter().copied().collect(),
        udp: udp.iter().copied().collect(),
        timeout: T,
        concurrency: 64,
        rate_per_second: 10_000,
        budget: None,
        ask_door: None,
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(Transport, u16)>>, Mutex<Vec<u16>>);

impl Observer for Recorder {
    fn done(&self, t: Transport, port: u16, _: &PortState) {
        self.0.lock().unwrap().push((t, port));
    }
    fn asking(&self, door: u16) {
        self.1.lock().unwrap().push(door);
    }
}

fn states(d: &Doors) -> BTreeMap<u16, PortState> {
    d.states.clone()
}

#[tokio::test]
async fn every_tcp_state_on_loopback() {
    let lab = Arc::new(Lab::default());
    let open = lab.tcp(Door::Reflector).await;
    let open2 = lab.tcp(Door::Reflector).await;
    let portal = lab.tcp(Door::Portal).await;
    let silent = lab.tcp(Door::Silent).await;
    let closes = lab.tcp(Door::Closes).await;
    let resets = lab.tcp(Door::Resets).await;
    let wrong = lab.tcp(Door::WrongKey).await;
    let nat = lab.tcp(Door::Rewritten).await;
    let closed = closed_port();
    let (filtered, _l, _f) = filtered_port();
    let ports = [
        open, open2, portal, silent, closes, resets, wrong, nat, closed, filtered,
    ];
    let rec = Arc::new(Recorder::default());
    let started = Instant::now();
    let out = run(config(&ports, &[]), rec.clone()).await.unwrap();
    let took = started.elapsed();
    let s = states(&out.tcp);
    assert_eq!(s.len(), ports.len(), "{s:#?}");
    assert_eq!(s[&open], PortState::Open);
    assert_eq!(s[&open2], PortState::Open);
    assert_eq!(
        s[&portal],
        PortState::Intercepted(Interception::Foreign {
            what: "`HTTP/1.1 302 Found`".into()
        })
    );
    assert_eq!(s[&silent], PortState::Intercepted(Interception::Silence));
    assert_eq!(s[&closes], PortState::Intercepted(Interception::Closed));
    assert_eq!(s[&resets], PortState::Intercepted(Interception::Reset));
    assert_eq!(s[&wrong], PortState::Intercepted(Interception::OtherKey));
    assert_eq!(
        s[&nat],
        PortState::Intercepted(Interception::PortRewritten {
            seen: nat.wrapping_add(1)
        })
    );
    assert_eq!(s[&closed], PortState::Rejected(Refusal::Refused));
    assert_eq!(s[&filtered], PortState::Filtered { tries: 2 });
    assert_eq!(rec.0.lock().unwrap().len(), ports.len());
    // Two silent tries of the filtered door, in parallel with the rest.
    assert!(took >= 2 * T, "{took:?}");
    assert!(took < 6 * T, "{took:?}");
    assert!(out.asked_through.is_none() && out.ask_failed.is_none());
}

#[tokio::test]
async fn udp_open_out_only_no_reply_rejected_foreign() {
    let lab = Arc::new(Lab::default());
    let door = lab.tcp(Door::Reflector).await;
    let answers = lab.udp(true, false).await;
    let out_only = lab.udp(false, false).await;
    let junk = lab.udp(false, true).await;
    // Bound, never read: datagrams vanish, no ICMP, nothing recorded.
    let sink = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let no_reply = sink.local_addr().unwrap().port();
    let closed = closed_udp_port();
    let rec = Arc::new(Recorder::default());
    let out = run(
        config(&[door], &[answers, out_only, junk, no_reply, closed]),
        rec.clone(),
    )
    .await
    .unwrap();
    let s = states(&out.udp);
    assert_eq!(s[&answers], PortState::Open);
    assert_eq!(
        s[&out_only],
        PortState::OutOnly {
            port_seen: out_only
        }
    );
    assert_eq!(s[&no_reply], PortState::NoReply { asked: true });
    assert_eq!(s[&closed], PortState::Rejected(Refusal::Refused));
    match &s[&junk] {
        PortState::Intercepted(Interception::Foreign { what }) => {
            assert!(what.starts_with("14 bytes: 81 80 20"), "{what}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(out.asked_through, Some(door));
    assert_eq!(*rec.1.lock().unwrap(), [door]);
    assert_eq!(out.tcp.states[&door], PortState::Open);
    // Two hellos went to the out-only door, both recorded.
    let recorded = lab
        .arrivals
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, p)| *p == out_only)
        .count();
    assert_eq!(recorded, 2);
}

#[tokio::test]
async fn udp_without_a_door_to_ask() {
    let lab = Arc::new(Lab::default());
    let out_only = lab.udp(false, false).await;
    let closed = closed_port();
    let mut c = config(&[closed], &[out_only]);
    // The SERVER's port, when no probed door is open: closed here too.
    c.ask_door = Some(closed_port());
    let out = run(c, Arc::new(())).await.unwrap();
    assert_eq!(
        out.udp.states[&out_only],
        PortState::NoReply { asked: false }
    );
    let why = out.ask_failed.unwrap();
    assert!(why.contains("failed: refused"), "{why}");
    // And with no door at all.
    let out = run(config(&[], &[out_only]), Arc::new(())).await.unwrap();
    assert_eq!(
        out.ask_failed.as_deref(),
        Some("no TCP door was open to ask the server through")
    );
}

#[tokio::test]
async fn the_server_port_is_asked_when_no_probed_door_is_open() {
    let lab = Arc::new(Lab::default());
    let door = lab.tcp(Door::Reflector).await;
    let out_only = lab.udp(false, false).await;
    let mut c = config(&[], &[out_only]);
    c.ask_door = Some(door);
    let out = run(c, Arc::new(())).await.unwrap();
    assert_eq!(
        out.udp.states[&out_only],
        PortState::OutOnly {
            port_seen: out_only
        }
    );
    assert_eq!(out.asked_through, Some(door));
}

#[tokio::test]
async fn the_wrong_fingerprint_learns_nothing() {
    // A client with another fingerprint: our reflector can't open its
    // hellos and stays silent; nothing is called open.
    let lab = Arc::new(Lab::default());
    let door = lab.tcp(Door::Reflector).await;
    let udp = lab.udp(true, false).await;
    let mut c = config(&[door], &[udp]);
    c.key = ProbeKey::new([1; 32]);
    let out = run(c, Arc::new(())).await.unwrap();
    assert_eq!(
        out.tcp.states[&door],
        PortState::Intercepted(Interception::Closed)
    );
    assert_eq!(out.udp.states[&udp], PortState::NoReply { asked: false });
}

#[tokio::test]
async fn concurrency_and_rate_are_obeyed() {
    let lab = Arc::new(Lab::default());
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(lab.tcp(Door::Silent).await);
    }
    let mut c = config(&silent, &[]);
    c.concurrency = 3;
    let started = Instant::now();
    let out = run(c, Arc::new(())).await.unwrap();
    assert_eq!(out.tcp.count(onedoor_proto::probe::State::Intercepted), 8);
    assert!(lab.peak.load(Ordering::SeqCst) <= 3, "{:?}", lab.peak);
    // 8 doors, 3 at a time, one timeout each: at least 3 rounds.
    assert!(started.elapsed() >= 3 * T, "{:?}", started.elapsed());

    // 20 refusals at 50/s with a burst of 2: at least 18 × 20 ms.
    let closed: Vec<u16> = (0..20).map(|_| closed_port()).collect();
    let mut c = config(&closed, &[]);
    c.rate_per_second = 50;
    let started = Instant::now();
    let out = run(c, Arc::new(())).await.unwrap();
    assert_eq!(out.tcp.count(onedoor_proto::probe::State::Rejected), 20);
    assert!(
        started.elapsed() >= Duration::from_millis(340),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn hellos_are_fresh_and_sealed() {
    let sh = Shared {
        ip: LOCALHOST,
        key: key(),
        run: [3; RUN_ID_LEN],
        timeout: T,
        pacer: Mutex::new(pace::Pacer::new(1, None)),
        observer: Arc::new(()),
    };
    let (a, bytes) = sh.hello(HelloKind::Tcp, 443).unwrap();
    let (b, _) = sh.hello(HelloKind::Tcp, 443).unwrap();
    assert_ne!(a.nonce, b.nonce);
    assert_eq!(key().parse(&bytes), HelloParse::Hello(a));
    assert_eq!(a.run, [3; RUN_ID_LEN]);
    assert!(a.unix_secs.abs_diff(now()) <= 1);
}
