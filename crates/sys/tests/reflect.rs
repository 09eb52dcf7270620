//! The reflector's port redirect in real network namespaces: a `server`
//! and a `client` namespace joined by a veth pair (198.18.251.0/30, and
//! IPv6 link-local addresses on that link only), built for each test and
//! removed after it. Nothing is created in, or read from, the host's own
//! namespace.
//!
//! Needs root: without it each test prints `SKIP <test>: <why>` and
//! passes, unless `ONEDOOR_E2E=require`, where it fails.

#![cfg(target_os = "linux")]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket,
};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use onedoor_sys::netns::{self, Netns};
use onedoor_sys::nft::{self, Family, NftSocket};
use onedoor_sys::reflect::{
    self, Ownership, PortRanges, Redirect, RedirectSpec, TcpMode, TABLE_PREFIX,
};
use onedoor_sys::rtnl::Rtnl;
use onedoor_sys::sockets::{self, Proto};

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 251, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 251, 2);
const SERVER6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
const SERVER_IF: &str = "rv-s";
const CLIENT_IF: &str = "rv-c";
const LISTENER: u16 = 9000;
/// No socket of a test may block longer than this.
const IO_BOUND: Duration = Duration::from_secs(5);
/// How long to wait for something that must not happen.
const QUIET: Duration = Duration::from_millis(300);
/// Set in the environment of the child process of the crash tests.
const CHILD_ENV: &str = "ONEDOOR_REFLECT_CHILD";

// ---------------------------------------------------------------------------
// The skip rule

fn required() -> bool {
    std::env::var("ONEDOOR_E2E").as_deref() == Ok("require")
}

/// Can this process build namespaces? If not: skip (print why) or, under
/// `ONEDOOR_E2E=require`, fail.
fn can_run(test: &str) -> bool {
    let why = if !nix::unistd::geteuid().is_root() {
        Some("needs root (network namespaces and nf_tables)".to_string())
    } else {
        netns::try_anonymous(|| nft::apply(&probe_table()))
            .map_err(|e| format!("network namespaces: {e}"))
            .and_then(|r| r.map_err(|e| format!("nf_tables: {e}")))
            .err()
    };
    match why {
        None => true,
        Some(why) if required() => panic!("{test}: cannot run with ONEDOOR_E2E=require: {why}"),
        Some(why) => {
            eprintln!("SKIP {test}: {why}");
            false
        }
    }
}

fn probe_table() -> nft::Table {
    nft::Table {
        family: Family::Inet,
        name: "onedoor-preflight".into(),
        flags: 0,
        sets: Vec::new(),
        chains: Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Two namespaces and a link

/// A server and a client namespace joined by a veth pair; removed on drop.
struct Pair {
    server: Netns,
    client: Netns,
    client_ifindex: u32,
}

static PAIRS: AtomicU32 = AtomicU32::new(0);

fn ipv6_without_autoconf() -> io::Result<()> {
    // No automatic link-local address (it would be tentative for a second):
    // the test's own addresses are added with `nodad`.
    std::fs::write("/proc/sys/net/ipv6/conf/default/addr_gen_mode", b"1\n")?;
    std::fs::write("/proc/sys/net/ipv6/conf/default/accept_dad", b"0\n")
}

impl Pair {
    fn new() -> Pair {
        let n = PAIRS.fetch_add(1, Ordering::Relaxed);
        let base = format!("odsys-{}-{n}", std::process::id());
        let server = Netns::create(&format!("{base}-s")).expect("server namespace");
        let client = match Netns::create(&format!("{base}-c")) {
            Ok(c) => c,
            Err(e) => {
                let _ = netns::remove(server.name());
                panic!("client namespace: {e}");
            }
        };
        let mut pair = Pair {
            server,
            client,
            client_ifindex: 0,
        };
        let v6 = pair.client.run(ipv6_without_autoconf).unwrap().is_ok()
            && pair.server.run(ipv6_without_autoconf).unwrap().is_ok();
        let client_fd = pair.client.as_fd();
        pair.server
            .run(|| -> io::Result<()> {
                let mut r = Rtnl::open()?;
                r.add_veth(SERVER_IF, CLIENT_IF, client_fd)?;
                r.set_up("lo")?;
                r.set_up(SERVER_IF)?;
                r.add_address(SERVER_IF, SERVER, 30)?;
                if v6 {
                    r.add_address_v6(SERVER_IF, SERVER6, 64)?;
                }
                Ok(())
            })
            .unwrap()
            .expect("server side of the link");
        pair.client_ifindex = pair
            .client
            .run(|| -> io::Result<u32> {
                let mut r = Rtnl::open()?;
                r.set_up("lo")?;
                r.set_up(CLIENT_IF)?;
                r.add_address(CLIENT_IF, CLIENT, 30)?;
                if v6 {
                    r.add_address_v6(CLIENT_IF, CLIENT6, 64)?;
                }
                r.wait_running(&[CLIENT_IF], IO_BOUND)?;
                Ok(nix::net::if_::if_nametoindex(CLIENT_IF)?)
            })
            .unwrap()
            .expect("client side of the link");
        pair.server
            .run(|| Rtnl::open()?.wait_running(&[SERVER_IF], IO_BOUND))
            .unwrap()
            .expect("link up");
        pair
    }

    fn server<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.server.run(f).expect("entering the server namespace")
    }

    fn client<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.client.run(f).expect("entering the client namespace")
    }

    /// The reflector tables in the server namespace.
    fn reflector_tables(&self) -> Vec<String> {
        self.server(|| NftSocket::open()?.list_tables(Some(Family::Inet)))
            .expect("listing tables")
            .into_iter()
            .map(|t| t.name)
            .filter(|n| n.starts_with(TABLE_PREFIX))
            .collect()
    }

    fn tcp_listener(&self, port: u16, transparent: bool) -> TcpListener {
        self.server(|| -> io::Result<TcpListener> {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            s.set_reuse_address(true)?;
            if transparent {
                reflect::prepare_transparent(&s)?;
            }
            s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
            s.listen(128)?;
            let l: TcpListener = s.into();
            l.set_nonblocking(true)?;
            Ok(l)
        })
        .expect("TCP listener")
    }

    fn udp_listener(&self, port: u16) -> UdpSocket {
        self.server(|| -> io::Result<UdpSocket> {
            let u = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
            reflect::prepare_udp_listener(&u)?;
            u.set_read_timeout(Some(IO_BOUND))?;
            Ok(u)
        })
        .expect("UDP listener")
    }

    fn connect(&self, to: SocketAddr) -> io::Result<TcpStream> {
        self.client(|| TcpStream::connect_timeout(&to, IO_BOUND))
    }

    fn client_udp(&self) -> UdpSocket {
        self.client(|| -> io::Result<UdpSocket> {
            let u = UdpSocket::bind((CLIENT, 0))?;
            u.set_read_timeout(Some(IO_BOUND))?;
            Ok(u)
        })
        .expect("client UDP socket")
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = netns::remove(self.client.name());
        let _ = netns::remove(self.server.name());
    }
}

fn door(port: u16) -> SocketAddr {
    SocketAddr::from((SERVER, port))
}

/// Accept one connection within `bound`, or `None`.
fn accept_within(l: &TcpListener, bound: Duration) -> Option<TcpStream> {
    let deadline = Instant::now() + bound;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(IO_BOUND)).unwrap();
                return Some(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A connection to `port` reaches `listener`, which learns `port`; the
/// client hears the answer.
fn tcp_door_reaches(pair: &Pair, listener: &TcpListener, port: u16) -> SocketAddr {
    let mut c = pair
        .connect(door(port))
        .unwrap_or_else(|e| panic!("door {port}: {e}"));
    c.set_read_timeout(Some(IO_BOUND)).unwrap();
    let mut s =
        accept_within(listener, IO_BOUND).unwrap_or_else(|| panic!("door {port}: no connection"));
    let dialled = reflect::tcp_dialled(&s).unwrap();
    assert_eq!(dialled, door(port), "door {port}");
    s.write_all(format!("you dialled {}", dialled.port()).as_bytes())
        .unwrap();
    let mut buf = [0u8; 32];
    let n = c.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], format!("you dialled {port}").as_bytes());
    s.peer_addr().unwrap()
}

/// A datagram to `port` reaches `listener`, which learns `port`, and the
/// answer (sent from the server namespace) comes back from `port`.
fn udp_door_reaches(pair: &Pair, client: &UdpSocket, listener: &UdpSocket, port: u16) {
    client.send_to(b"probe", door(port)).unwrap();
    let mut buf = [0u8; 64];
    let d =
        reflect::recv_dialled(listener, &mut buf).unwrap_or_else(|e| panic!("door {port}: {e}"));
    assert_eq!(&buf[..d.len], b"probe");
    assert_eq!(d.dialled, door(port), "door {port}");
    assert_eq!(d.from, client.local_addr().unwrap());
    pair.server(|| reflect::send_from(d.dialled, d.from, format!("udp {port}").as_bytes()))
        .unwrap();
    let (n, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!(from, door(port), "the answer comes from the door dialled");
    assert_eq!(&buf[..n], format!("udp {port}").as_bytes());
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn doors_reach_one_listener_which_learns_the_port_and_ports_in_use_are_skipped() {
    if !can_run("doors_reach_one_listener") {
        return;
    }
    for mode in [TcpMode::Redirect, TcpMode::Tproxy] {
        let pair = Pair::new();
        let listener = pair.tcp_listener(LISTENER, mode == TcpMode::Tproxy);
        let udp = pair.udp_listener(LISTENER);
        // The host's own servers: TCP 1500 and UDP 5007 are theirs; a
        // loopback-only UDP socket on 5003 holds no door.
        let busy_tcp = pair.tcp_listener(1500, false);
        let busy_udp = pair
            .server(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 5007)))
            .unwrap();
        busy_udp.set_read_timeout(Some(IO_BOUND)).unwrap();
        let _lo_udp = pair
            .server(|| UdpSocket::bind((Ipv4Addr::LOCALHOST, 5003)))
            .unwrap();

        let spec = RedirectSpec::new(LISTENER)
            .tcp("1000-2000".parse().unwrap())
            .udp("5000-5010".parse().unwrap())
            .tcp_mode(mode);
        let redirect = pair.server(|| Redirect::install(&spec)).expect("install");
        let plan = redirect.plan();
        assert_eq!(plan.tcp.to_string(), "1000-1499,1501-2000", "{mode:?}");
        assert_eq!(plan.skipped_tcp, [1500]);
        assert_eq!(plan.udp.to_string(), "5000-5006,5008-5010");
        assert_eq!(plan.skipped_udp, [5007]);
        assert!(redirect.kernel_owned(), "this kernel has NFT_TABLE_F_OWNER");
        assert_eq!(pair.reflector_tables(), [redirect.table_name()]);

        // Every door of the ranges reaches the one listener.
        for port in [1000, 1234, 1499, 1501, 2000] {
            tcp_door_reaches(&pair, &listener, port);
        }
        let client = pair.client_udp();
        for port in [5000, 5003, 5005, 5010] {
            udp_door_reaches(&pair, &client, &udp, port);
        }
        // The listener's own port still works, directly.
        tcp_door_reaches(&pair, &listener, LISTENER);

        // A port in use reaches its own server, not the reflector.
        let _c = pair.connect(door(1500)).unwrap();
        assert!(
            accept_within(&busy_tcp, IO_BOUND).is_some(),
            "1500 reaches its server"
        );
        assert!(
            accept_within(&listener, QUIET).is_none(),
            "1500 is not redirected"
        );
        client.send_to(b"mine", door(5007)).unwrap();
        let mut buf = [0u8; 8];
        let (n, _) = busy_udp.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"mine");
        // Outside the ranges nothing listens.
        let refused = pair.connect(door(2500)).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);

        // Dropped: the table is gone, the doors are closed again.
        drop(redirect);
        assert!(pair.reflector_tables().is_empty());
        let refused = pair.connect(door(1234)).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused, "{mode:?}");
    }
}

#[test]
fn one_client_port_may_dial_many_doors() {
    if !can_run("one_client_port_may_dial_many_doors") {
        return;
    }
    for mode in [TcpMode::Redirect, TcpMode::Tproxy] {
        let pair = Pair::new();
        let listener = pair.tcp_listener(LISTENER, mode == TcpMode::Tproxy);
        let udp = pair.udp_listener(LISTENER);
        let spec = RedirectSpec::new(LISTENER)
            .tcp("1000-2000".parse().unwrap())
            .udp("5000-5010".parse().unwrap())
            .tcp_mode(mode);
        let _redirect = pair.server(|| Redirect::install(&spec)).expect("install");

        // Two connections from one client address and port, to two doors,
        // open at the same time (as a prober behind a NAT may make them).
        let from_40000 = |to: SocketAddr| {
            pair.client(|| -> io::Result<TcpStream> {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
                s.set_reuse_address(true)?;
                s.set_reuse_port(true)?;
                s.bind(&SocketAddr::from((CLIENT, 40000)).into())?;
                s.connect_timeout(&to.into(), IO_BOUND)?;
                Ok(s.into())
            })
        };
        let _a = from_40000(door(1234)).expect("first door");
        let a = accept_within(&listener, IO_BOUND).expect("first connection");
        let _b = from_40000(door(1235)).expect("second door, same client port");
        let b = accept_within(&listener, IO_BOUND).expect("second connection");
        assert_eq!(reflect::tcp_dialled(&a).unwrap(), door(1234));
        assert_eq!(reflect::tcp_dialled(&b).unwrap(), door(1235));
        let peer_ports = (a.peer_addr().unwrap().port(), b.peer_addr().unwrap().port());
        match mode {
            // NAT gave the second one another port on this side.
            TcpMode::Redirect => assert_eq!(peer_ports.0, 40000, "{peer_ports:?}"),
            TcpMode::Tproxy => assert_eq!(peer_ports, (40000, 40000)),
        }
        eprintln!("{mode:?}: the listener saw client ports {peer_ports:?}");

        // One UDP socket probes every UDP door, and hears each answer from
        // the door it dialled.
        let client = pair.client_udp();
        for port in 5000..=5010 {
            udp_door_reaches(&pair, &client, &udp, port);
        }
    }
}

#[test]
fn ipv6_and_dual_stack_listeners() {
    if !can_run("ipv6_and_dual_stack_listeners") {
        return;
    }
    let pair = Pair::new();
    let (tcp, udp) = pair
        .server(|| -> io::Result<(TcpListener, UdpSocket)> {
            let l = TcpListener::bind((Ipv6Addr::UNSPECIFIED, LISTENER))?;
            l.set_nonblocking(true)?;
            let u = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, LISTENER))?;
            reflect::prepare_udp_listener(&u)?;
            u.set_read_timeout(Some(IO_BOUND))?;
            Ok((l, u))
        })
        .expect("dual-stack listeners");
    let spec = RedirectSpec::new(LISTENER)
        .tcp("1000-2000".parse().unwrap())
        .udp("5000-5010".parse().unwrap());
    let _redirect = pair.server(|| Redirect::install(&spec)).expect("install");

    let door6 = |port| SocketAddr::V6(SocketAddrV6::new(SERVER6, port, 0, pair.client_ifindex));
    // IPv6 client.
    let _c = pair.connect(door6(1234)).expect("IPv6 door 1234");
    let s = accept_within(&tcp, IO_BOUND).expect("IPv6 connection");
    let dialled = reflect::tcp_dialled(&s).unwrap();
    assert_eq!((dialled.ip(), dialled.port()), (IpAddr::V6(SERVER6), 1234));
    // IPv4 client of the same dual-stack listener.
    tcp_door_reaches(&pair, &tcp, 1777);

    let client6 = pair
        .client(|| -> io::Result<UdpSocket> {
            let u = UdpSocket::bind(SocketAddrV6::new(CLIENT6, 0, 0, pair.client_ifindex))?;
            u.set_read_timeout(Some(IO_BOUND))?;
            Ok(u)
        })
        .unwrap();
    client6.send_to(b"six", door6(5005)).unwrap();
    let mut buf = [0u8; 16];
    let d = reflect::recv_dialled(&udp, &mut buf).unwrap();
    assert_eq!(
        (d.dialled.ip(), d.dialled.port()),
        (IpAddr::V6(SERVER6), 5005)
    );
    pair.server(|| reflect::send_from(d.dialled, d.from, b"back"))
        .unwrap();
    let (n, from) = client6.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from.port()), (&b"back"[..], 5005));
    // IPv4 datagram on the dual-stack UDP listener.
    udp_door_reaches(&pair, &pair.client_udp(), &udp, 5006);
}

#[test]
fn refresh_gives_a_port_back_to_a_server_that_started_later() {
    if !can_run("refresh_gives_a_port_back") {
        return;
    }
    let pair = Pair::new();
    let listener = pair.tcp_listener(LISTENER, false);
    let spec = RedirectSpec::new(LISTENER).tcp("1000-2000".parse().unwrap());
    let mut redirect = pair.server(|| Redirect::install(&spec)).expect("install");
    assert!(!redirect.refresh().unwrap(), "nothing changed yet");

    let late = pair.tcp_listener(1600, false);
    // Until the refresh, the reflector has door 1600.
    tcp_door_reaches(&pair, &listener, 1600);
    assert!(redirect.refresh().unwrap());
    assert_eq!(redirect.plan().skipped_tcp, [1600]);
    let _c = pair.connect(door(1600)).unwrap();
    assert!(
        accept_within(&late, IO_BOUND).is_some(),
        "1600 reaches its server"
    );
    assert!(accept_within(&listener, QUIET).is_none());
    tcp_door_reaches(&pair, &listener, 1601);

    drop(late);
    assert!(redirect.refresh().unwrap());
    assert!(redirect.plan().skipped_tcp.is_empty());
    tcp_door_reaches(&pair, &listener, 1600);
    redirect.remove().expect("remove");
    assert!(pair.reflector_tables().is_empty());
}

#[test]
fn ports_in_use_from_sock_diag_and_proc_agree() {
    if !can_run("ports_in_use_agree") {
        return;
    }
    let pair = Pair::new();
    let _keep = pair
        .server(|| -> io::Result<_> {
            let t1 = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 2222))?;
            let t2 = TcpListener::bind((Ipv6Addr::LOCALHOST, 3333))?;
            let u1 = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 53))?;
            let u2 = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 123))?;
            // A connected UDP socket is a client, not a server.
            let u3 = UdpSocket::bind((Ipv4Addr::LOCALHOST, 4444))?;
            u3.connect((Ipv4Addr::LOCALHOST, 53))?;
            Ok((t1, t2, u1, u2, u3))
        })
        .expect("sockets");
    let sorted = |mut v: Vec<SocketAddr>| {
        v.sort();
        v
    };
    for proto in [Proto::Tcp, Proto::Udp] {
        let (diag, proc) = pair.server(|| {
            (
                sockets::servers_sock_diag(proto).expect("sock_diag"),
                sockets::servers_proc(proto).expect("/proc"),
            )
        });
        assert_eq!(sorted(diag.clone()), sorted(proc), "{proto:?}");
        let expected: Vec<SocketAddr> = match proto {
            Proto::Tcp => vec![
                "0.0.0.0:2222".parse().unwrap(),
                "[::1]:3333".parse().unwrap(),
            ],
            Proto::Udp => vec!["0.0.0.0:53".parse().unwrap(), "[::]:123".parse().unwrap()],
        };
        assert_eq!(sorted(diag), sorted(expected), "{proto:?}");
    }
    let in_use = pair.server(reflect::in_use).unwrap();
    assert_eq!(in_use.tcp, [2222].into(), "[::1]:3333 is loopback-only");
    assert_eq!(in_use.udp, [53, 123].into());
}

/// All 65,535 TCP doors (and every UDP door) take one rule per protocol
/// and a few set elements: installing is quick. A worst case — every other
/// port in use, 65,536 set elements — is timed too.
#[test]
fn all_65535_doors_install_well_under_a_second() {
    if !can_run("all_65535_doors_install_quickly") {
        return;
    }
    let pair = Pair::new();
    let spec = RedirectSpec::new(LISTENER)
        .tcp(PortRanges::all())
        .udp(PortRanges::all());
    let (took, redirect) = pair.server(|| {
        let started = Instant::now();
        let r = Redirect::install(&spec).expect("install");
        (started.elapsed(), r)
    });
    assert_eq!(redirect.plan().tcp.count(), 65534);
    let removal = pair.server(|| {
        let started = Instant::now();
        redirect.remove().expect("remove");
        started.elapsed()
    });
    eprintln!("installing tcp:1-65535,udp:1-65535 took {took:?}, removing it {removal:?}");
    assert!(took < Duration::from_millis(500), "install took {took:?}");

    // Worst case for the sets: every odd port, 32,768 ranges.
    let odd = reflect::plan(
        &RedirectSpec::new(LISTENER).tcp(PortRanges::from_ports((1..=65535).step_by(2))),
        &reflect::InUse::default(),
    );
    let table = odd.table("onedoor-reflect-worst-case", 0);
    assert_eq!(table.sets[0].elements.len(), 65536);
    let took = pair.server(|| {
        let started = Instant::now();
        let mut sock = NftSocket::open().unwrap();
        sock.add_table(&table).expect("worst case");
        let t = started.elapsed();
        sock.delete_table(Family::Inet, &table.name).unwrap();
        t
    });
    eprintln!("installing 32,768 port ranges (65,536 set elements) took {took:?}");
    assert!(took < Duration::from_secs(2), "worst case took {took:?}");
}

// ---------------------------------------------------------------------------
// Crash recovery: a child process installs, and is killed.

/// The body of the child process (a no-op in a normal test run): install
/// the redirect in the namespace named by [`CHILD_ENV`], say `READY`, and
/// wait to be killed.
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (ns, ownership) = spec.split_once(',').expect("NAME,OWNERSHIP");
    let ownership = match ownership {
        "kernel" => Ownership::Kernel,
        _ => Ownership::Process,
    };
    let ns = Netns::open(ns).expect("the test's namespace");
    let spec = RedirectSpec::new(LISTENER).tcp("1000-2000".parse().unwrap());
    let redirect = ns
        .run(|| Redirect::install_with(&spec, ownership))
        .unwrap()
        .expect("install in the child");
    println!("READY {}", redirect.table_name());
    io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(60));
    unreachable!("the parent kills this process");
}

/// Start the child, wait for its table, kill it with SIGKILL; return the
/// table's name.
fn install_and_get_killed(pair: &Pair, ownership: &str) -> String {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{},{ownership}", pair.server.name()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning the child");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints `test crash_child ... ` before the body runs.
            if let Some((_, name)) = line.split_once("READY ") {
                let _ = tx.send(name.trim().to_owned());
            }
        }
    });
    let name = rx.recv_timeout(Duration::from_secs(20));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let name = name.expect("the child installed its redirect");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the child was killed"
    );
    name
}

#[test]
fn a_killed_reflector_leaves_no_kernel_owned_table() {
    if !can_run("a_killed_reflector_leaves_no_kernel_owned_table") {
        return;
    }
    let pair = Pair::new();
    let name = install_and_get_killed(&pair, "kernel");
    // The kernel deleted it with the child's netlink socket.
    let deadline = Instant::now() + IO_BOUND;
    while pair.reflector_tables().contains(&name) {
        assert!(Instant::now() < deadline, "{name} outlived its process");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_leftover_of_a_dead_reflector_is_removed_at_the_next_start() {
    if !can_run("a_leftover_of_a_dead_reflector_is_removed_at_the_next_start") {
        return;
    }
    let pair = Pair::new();
    // A plain table (as on kernels before 5.12) stays behind a SIGKILL.
    let left = install_and_get_killed(&pair, "process");
    assert_eq!(pair.reflector_tables(), vec![left.clone()]);
    // So does one of a live process, which must survive the cleaning.
    let spec = RedirectSpec::new(LISTENER).tcp("3000-4000".parse().unwrap());
    let live = pair
        .server(|| Redirect::install_with(&spec, Ownership::Process))
        .expect("a live plain table");
    assert_eq!(
        live.cleaned_leftovers(),
        std::slice::from_ref(&left),
        "cleaned at start"
    );
    assert_eq!(pair.reflector_tables(), [live.table_name()]);

    // And the next start leaves the live one alone.
    let second = pair
        .server(|| Redirect::install(&RedirectSpec::new(9001).tcp("5000-6000".parse().unwrap())))
        .expect("a second reflector");
    assert!(second.cleaned_leftovers().is_empty());
    let mut tables = pair.reflector_tables();
    tables.sort();
    let mut want = vec![live.table_name().to_owned(), second.table_name().to_owned()];
    want.sort();
    assert_eq!(tables, want);
    // Also a live table's doors still work (the two coexist).
    let l = pair.tcp_listener(LISTENER, false);
    tcp_door_reaches(&pair, &l, 3500);
    drop(second);
    drop(live);
    assert!(pair.reflector_tables().is_empty());
}
