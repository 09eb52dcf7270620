//! End-to-end tests of `onedoor serve` (SPEC §2) with real peers: OpenSSH,
//! nginx and curl, an OpenVPN client, and real sockets for everything else.
//!
//! Each test starts its own `serve` on free loopback ports and is bounded in
//! time. A test whose peer is missing prints `SKIP <test>: <why>` and passes,
//! unless `ONEDOOR_E2E=require` (CI), where it fails.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use util::*;

const SEC: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------
// 0. The peers themselves, without serve: tells a broken test setup apart
//    from a broken serve.

#[test]
fn peers_work_directly() {
    let t = "peers_work_directly";
    if let Some(sshd) = need(t, Sshd::start()) {
        let r = sshd.ssh(sshd.addr, "echo direct");
        assert_eq!(r.code(), Some(0), "direct ssh login: {r:?}");
        assert_eq!(r.stdout.trim(), "direct");
    }
    let sites = [
        Site {
            tls: Some("a.example"),
            body: "a\n",
        },
        Site {
            tls: None,
            body: "plain\n",
        },
    ];
    if let (Some(_), Some(nginx)) = (need(t, which("curl")), need(t, Nginx::start(&sites))) {
        let (tls, plain) = (nginx.addrs[0], nginx.addrs[1]);
        let https = args![
            "-k",
            "--resolve",
            format!("a.example:{}:127.0.0.1", tls.port()),
            format!("https://a.example:{}/", tls.port())
        ];
        assert_eq!(curl_body(t, &https).unwrap(), "a\n");
        assert_eq!(
            curl_body(t, &args![format!("http://{plain}/")]).unwrap(),
            "plain\n"
        );
    }
    if let (Some(_), Some(_)) = (need(t, which("openvpn")), need(t, which("openssl"))) {
        let l = listener();
        let client = OpenVpnClient::start(l.local_addr().unwrap()).unwrap();
        let Some((mut c, _)) = accept_within(&l, 10 * SEC) else {
            panic!("openvpn did not connect; log:\n{}", client.log());
        };
        assert_eq!(
            read_n(&mut c, 3).unwrap()[2],
            0x38,
            "OpenVPN's first opcode"
        );
    }
}

// ---------------------------------------------------------------------------
// 1. Real OpenSSH through the door

#[test]
fn ssh_login_through_the_door() {
    let t = "ssh_login_through_the_door";
    let Some(sshd) = need(t, Sshd::start()) else {
        return;
    };
    let serve = Serve::start(&args!["--ssh", sshd.addr]);
    let r = sshd.ssh(serve.addr, "echo through-the-door");
    assert_eq!(r.code(), Some(0), "ssh through serve failed: {r:?}");
    assert_eq!(r.stdout.trim(), "through-the-door");
}

// ---------------------------------------------------------------------------
// 2. curl: HTTPS by SNI and ALPN to different TLS backends, HTTP by Host

fn curl_body(t: &str, args: &[String]) -> Option<String> {
    let r = need(t, curl(args))?;
    assert_eq!(r.code(), Some(0), "curl {args:?}: {r:?}");
    Some(r.stdout)
}

#[test]
fn https_routed_by_sni_and_alpn() {
    let t = "https_routed_by_sni_and_alpn";
    let Some(_) = need(t, which("curl")) else {
        return;
    };
    let Some(nginx) = need(
        t,
        Nginx::start(&[
            Site {
                tls: Some("a.example"),
                body: "a\n",
            },
            Site {
                tls: Some("*.b.example"),
                body: "b\n",
            },
            Site {
                tls: Some("c.example"),
                body: "h2\n",
            },
        ]),
    ) else {
        return;
    };
    let [pa, pb, pc] = [nginx.addrs[0], nginx.addrs[1], nginx.addrs[2]];
    let serve = Serve::start(&args![
        "--route",
        format!("tls,sni=a.example={pa}"),
        "--route",
        format!("tls,sni=*.b.example={pb}"),
        "--route",
        format!("tls,alpn=h2={pc}"),
    ]);
    let sp = serve.addr.port();
    let get = |name: &str, extra: &[&str]| {
        let mut a = args!["-k", "--resolve", format!("{name}:{sp}:127.0.0.1")].to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push(format!("https://{name}:{sp}/"));
        a
    };
    assert_eq!(
        curl_body(t, &get("a.example", &["--http1.1"])).unwrap(),
        "a\n"
    );
    assert_eq!(
        curl_body(t, &get("x.b.example", &["--http1.1"])).unwrap(),
        "b\n"
    );
    assert_eq!(
        curl_body(t, &get("y.b.example", &["--http1.1"])).unwrap(),
        "b\n"
    );
    // ALPN: curl --http2 offers h2. a.example matches route 1 first (first
    // match wins); c.example only matches the alpn=h2 route.
    assert_eq!(
        curl_body(t, &get("a.example", &["--http2"])).unwrap(),
        "a\n"
    );
    assert_eq!(
        curl_body(t, &get("c.example", &["--http2"])).unwrap(),
        "h2\n"
    );
    // Offering only http/1.1 to c.example matches nothing: closed, curl fails.
    let r = curl(&get("c.example", &["--http1.1"])).unwrap();
    assert_ne!(
        r.code(),
        Some(0),
        "c.example without h2 should match no route: {r:?}"
    );
}

#[test]
fn http_routed_by_host() {
    let t = "http_routed_by_host";
    let Some(_) = need(t, which("curl")) else {
        return;
    };
    let Some(nginx) = need(
        t,
        Nginx::start(&[
            Site {
                tls: None,
                body: "plain-a\n",
            },
            Site {
                tls: None,
                body: "plain-b\n",
            },
        ]),
    ) else {
        return;
    };
    let [pa, pb] = [nginx.addrs[0], nginx.addrs[1]];
    let serve = Serve::start(&args![
        "--route",
        format!("http,host=a.example={pa}"),
        "--route",
        format!("http,host=*.b.example={pb}"),
    ]);
    let sp = serve.addr.port();
    let url = format!("http://127.0.0.1:{sp}/");
    assert_eq!(
        curl_body(t, &args!["-H", "Host: a.example", url]).unwrap(),
        "plain-a\n"
    );
    assert_eq!(
        curl_body(t, &args!["-H", "Host: x.b.example", url]).unwrap(),
        "plain-b\n"
    );
    // As a browser sends it: `Host: name:port`.
    let by_name = |n: &str| {
        args![
            "--resolve",
            format!("{n}:{sp}:127.0.0.1"),
            format!("http://{n}:{sp}/")
        ]
    };
    assert_eq!(curl_body(t, &by_name("a.example")).unwrap(), "plain-a\n");
    assert_eq!(curl_body(t, &by_name("z.b.example")).unwrap(), "plain-b\n");
    // No route for this host: closed, curl fails.
    let r = curl(&args!["-H", "Host: other.example", url]).unwrap();
    assert_ne!(
        r.code(),
        Some(0),
        "Host other.example should match no route: {r:?}"
    );
}

// ---------------------------------------------------------------------------
// 3. OpenVPN: the client's first packet reaches the openvpn route

#[test]
fn openvpn_client_routed_to_openvpn() {
    let t = "openvpn_client_routed_to_openvpn";
    let Some(_) = need(t, which("openvpn")) else {
        return;
    };
    let Some(_) = need(t, which("openssl")) else {
        return;
    };
    let backend = listener();
    let decoy = Backend::echo();
    let serve = Serve::start(&args![
        "--ssh",
        decoy.addr,
        "--openvpn",
        backend.local_addr().unwrap(),
        "--tls",
        decoy.addr
    ]);
    let client = OpenVpnClient::start(serve.addr).unwrap();
    let Some((mut c, _)) = accept_within(&backend, 10 * SEC) else {
        panic!(
            "openvpn backend got no connection; client log:\n{}",
            client.log()
        );
    };
    let head = read_n(&mut c, 3).expect("first bytes at the openvpn backend");
    let len = u16::from_be_bytes([head[0], head[1]]) as usize;
    assert_eq!(
        head[2], 0x38,
        "opcode byte {:#04x}: not P_CONTROL_HARD_RESET_CLIENT_V2 key 0",
        head[2]
    );
    assert!((9..=1600).contains(&len), "packet length {len}");
    read_n(&mut c, len - 1).expect("the whole first packet is forwarded");
    drop(client);
}

// ---------------------------------------------------------------------------
// 4. PROXY protocol

/// Through `serve ARGS --ssh BACKEND`, send an SSH banner from a fresh
/// connection; return (client local address, what the backend parsed, the
/// bytes after the header).
fn through_with_proxy(
    args: &[String],
    send: &[u8],
    read_header: fn(&mut TcpStream) -> Result<ProxyHeader, String>,
) -> (SocketAddr, SocketAddr, ProxyHeader, Vec<u8>) {
    let backend = listener();
    let mut all = args.to_vec();
    all.extend(args!["--ssh", backend.local_addr().unwrap()]);
    let serve = Serve::start(&all);
    let mut c = connect(serve.addr);
    c.write_all(send).unwrap();
    let (mut b, _) = accept_within(&backend, 5 * SEC).expect("backend got no connection");
    let h = read_header(&mut b).unwrap();
    let banner = b"SSH-2.0-Test\r\n";
    let rest = read_n(&mut b, banner.len()).unwrap();
    (c.local_addr().unwrap(), serve.addr, h, rest)
}

#[test]
fn proxy_protocol_v1_to_backend() {
    let (me, door, h, rest) = through_with_proxy(
        &args!["--proxy-protocol", "v1"],
        b"SSH-2.0-Test\r\n",
        read_proxy_v1,
    );
    assert_eq!(h.src, me, "v1 header must name the real client");
    assert_eq!(
        h.dst, door,
        "v1 header must name the address the client dialled"
    );
    assert_eq!(rest, b"SSH-2.0-Test\r\n");
}

#[test]
fn proxy_protocol_v2_to_backend() {
    let (me, door, h, rest) = through_with_proxy(
        &args!["--proxy-protocol", "v2"],
        b"SSH-2.0-Test\r\n",
        read_proxy_v2,
    );
    assert_eq!(h.src, me, "v2 header must name the real client");
    assert_eq!(
        h.dst, door,
        "v2 header must name the address the client dialled"
    );
    assert_eq!(rest, b"SSH-2.0-Test\r\n");
}

#[test]
fn accept_proxy_protocol_from_trusted_source() {
    // Default trusted sources: loopback. The header is stripped and its
    // client address is the one passed on.
    let mut send = b"PROXY TCP4 203.0.113.7 127.0.0.1 51234 443\r\n".to_vec();
    send.extend_from_slice(b"SSH-2.0-Test\r\n");
    let (_, _, h, rest) = through_with_proxy(
        &args!["--accept-proxy-protocol", "--proxy-protocol", "v1"],
        &send,
        read_proxy_v1,
    );
    assert_eq!(h.src, "203.0.113.7:51234".parse().unwrap());
    assert_eq!(
        rest, b"SSH-2.0-Test\r\n",
        "the inbound PROXY header must be stripped"
    );

    // The same with a v2 header in, and explicitly trusted loopback.
    let mut send = proxy_v2_bytes(
        SocketAddrV4::new([198, 51, 100, 9].into(), 4000),
        SocketAddrV4::new([127, 0, 0, 1].into(), 443),
    );
    send.extend_from_slice(b"SSH-2.0-Test\r\n");
    let (_, _, h, rest) = through_with_proxy(
        &args![
            "--accept-proxy-protocol",
            "--trusted-proxy",
            "127.0.0.0/8",
            "--proxy-protocol",
            "v1"
        ],
        &send,
        read_proxy_v1,
    );
    assert_eq!(h.src, "198.51.100.9:4000".parse().unwrap());
    assert_eq!(
        rest, b"SSH-2.0-Test\r\n",
        "the inbound PROXY v2 header must be stripped"
    );
}

#[test]
fn accept_proxy_protocol_ignored_from_untrusted_source() {
    // Only 10.0.0.0/8 is trusted (a range we never send to); we connect from
    // 127.0.0.1, so our PROXY header must not be believed: serve may close the
    // connection, or pass it on under our real address, never the claimed one.
    let backend = listener();
    let serve = Serve::start(&args![
        "--accept-proxy-protocol",
        "--trusted-proxy",
        "10.0.0.0/8",
        "--proxy-protocol",
        "v1",
        "--timeout",
        "500ms",
        "--ssh",
        backend.local_addr().unwrap(),
        "--anyprot",
        backend.local_addr().unwrap(),
    ]);
    let mut c = connect(serve.addr);
    let me = c.local_addr().unwrap();
    c.write_all(b"PROXY TCP4 203.0.113.7 127.0.0.1 51234 443\r\nSSH-2.0-Test\r\n")
        .unwrap();
    match accept_within(&backend, 3 * SEC) {
        Some((mut b, _)) => {
            let h = read_proxy_v1(&mut b).unwrap();
            assert_eq!(h.src, me, "an untrusted PROXY header was honoured");
            eprintln!("untrusted PROXY header: forwarded under the real address");
            let rest = read_n(&mut b, 6).unwrap();
            assert_eq!(
                rest, b"PROXY ",
                "an untrusted PROXY header must not be stripped"
            );
        }
        None => {
            eprintln!("untrusted PROXY header: not forwarded");
            let end = read_to_close(&mut c, 3 * SEC);
            assert!(
                end.closed(),
                "untrusted PROXY header: neither forwarded nor closed"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 5. Hostile input

/// Bytes no probe can take for anything (not SSH, TLS, HTTP, OpenVPN, SOCKS5,
/// tinc, XMPP or adb).
const GARBAGE: &[u8] = b"\x7f\x7f\x7f\x7f garbage that is no protocol at all \x00\x01\x02\r\n";

/// The first 20 bytes of a ClientHello whose record claims 200 bytes.
const HALF_CLIENT_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x00, 0xc8, // handshake record, 200 bytes
    0x01, 0x00, 0x00, 0xc4, // ClientHello, 196 bytes
    0x03, 0x03, // TLS 1.2 legacy version
    0x5e, 0x11, 0x72, 0x9a, 0x03, 0xbe, 0x44, 0x10, 0x8d, // random (cut)
];

#[test]
fn garbage_is_closed_and_counted() {
    let backend = Backend::echo();
    let serve = Serve::start_metered(&args![
        "--ssh",
        backend.addr,
        "--http",
        backend.addr,
        "--tls",
        backend.addr,
        "--openvpn",
        backend.addr,
        "--timeout",
        "5s"
    ]);
    let before = serve.metric("onedoor_errors_total", &[("kind", "no_match")]);
    let mut c = connect(serve.addr);
    let t0 = Instant::now();
    c.write_all(GARBAGE).unwrap();
    let end = read_to_close(&mut c, 4 * SEC);
    let took = t0.elapsed();
    assert!(
        end.closed(),
        "garbage: connection still open after {took:?}"
    );
    assert!(
        end.bytes().is_empty(),
        "garbage got an answer: {:?}",
        end.bytes()
    );
    assert!(
        took < 2 * SEC,
        "garbage closed after {took:?}: should be at once (no route can match), not at --timeout 5s"
    );
    let counted = wait_for(3 * SEC, || {
        serve.metric("onedoor_errors_total", &[("kind", "no_match")]) >= before + 1.0
    });
    assert!(
        counted,
        "onedoor_errors_total{{kind=\"no_match\"}} did not increase:\n{}",
        serve.scrape()
    );
}

#[test]
fn half_client_hello_is_closed_at_timeout() {
    let backend = listener();
    // An SNI route, so that serve must see the whole ClientHello to decide.
    let serve = Serve::start_metered(&args![
        "--route",
        format!("tls,sni=a.example={}", backend.local_addr().unwrap()),
        "--timeout",
        "500ms"
    ]);
    let before = serve.metric("onedoor_errors_total", &[("kind", "timeout")]);
    let mut c = connect(serve.addr);
    c.write_all(HALF_CLIENT_HELLO).unwrap();
    let t0 = Instant::now();
    let end = read_to_close(&mut c, 5 * SEC);
    let took = t0.elapsed();
    assert!(end.closed(), "half ClientHello: still open after {took:?}");
    assert!(
        took >= Duration::from_millis(400),
        "half ClientHello closed after {took:?}, before --timeout 500ms: it may still become a match"
    );
    assert!(
        took < 2500 * Duration::from_millis(1),
        "half ClientHello closed only after {took:?}"
    );
    assert!(
        accept_within(&backend, Duration::ZERO).is_none(),
        "an unfinished ClientHello reached the tls backend"
    );
    let counted = wait_for(3 * SEC, || {
        serve.metric("onedoor_errors_total", &[("kind", "timeout")]) >= before + 1.0
    });
    assert!(
        counted,
        "onedoor_errors_total{{kind=\"timeout\"}} did not increase:\n{}",
        serve.scrape()
    );
}

#[test]
fn thousand_silent_connections_do_not_delay_ssh() {
    let t = "thousand_silent_connections_do_not_delay_ssh";
    let _x = exclusive();
    let Some(()) = need(t, raise_nofile(4096)) else {
        return;
    };
    let Some(sshd) = need(t, Sshd::start()) else {
        return;
    };
    let serve = Serve::start(&args![
        "--ssh",
        sshd.addr,
        "--timeout",
        "30s",
        "--max-pending",
        "2000"
    ]);
    let pid = serve.proc.pid();
    let base = fd_count(pid);
    let silent: Vec<TcpStream> = (0..1000)
        .map(|i| {
            TcpStream::connect_timeout(&serve.addr, IO_BOUND)
                .unwrap_or_else(|e| panic!("silent #{i}: {e}"))
        })
        .collect();
    // Serve has accepted (nearly) all of them; `base` may have counted the
    // startup poll's connection, still open then.
    let want = base + 1000 - 5;
    let held = wait_for(10 * SEC, || fd_count(pid) >= want);
    assert!(held, "serve holds {} fds, expected ≥ {want}", fd_count(pid));
    let r = sshd.ssh(serve.addr, "echo still-a-door");
    assert_eq!(
        r.code(),
        Some(0),
        "ssh beside 1000 silent connections failed: {r:?}"
    );
    assert_eq!(r.stdout.trim(), "still-a-door");
    assert!(
        r.elapsed < 2 * SEC,
        "ssh login took {:?} beside 1000 silent connections",
        r.elapsed
    );
    let dropped = silent.iter().filter(|s| peer_closed(s)).count();
    assert_eq!(
        dropped, 0,
        "serve closed {dropped} of 1000 silent connections within --timeout 30s"
    );
}

#[test]
fn fin_from_client_still_gets_the_reply() {
    // The backend answers only once it has seen EOF.
    let backend = Backend::spawn(|mut c| {
        if let Ending::Eof(got) = read_to_close(&mut c, 10 * SEC) {
            let _ = c.write_all(format!("got {} bytes\n", got.len()).as_bytes());
        }
    });
    let serve = Serve::start(&args!["--anyprot", backend.addr]);
    let mut c = connect(serve.addr);
    let msg = b"hello backend, that is all I have to say\n";
    c.write_all(msg).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    match read_to_close(&mut c, 5 * SEC) {
        Ending::Eof(b) => assert_eq!(
            String::from_utf8_lossy(&b),
            format!("got {} bytes\n", msg.len())
        ),
        other => panic!("after the client's FIN: {other:?} (expected the reply, then EOF)"),
    }
}

#[test]
fn fin_from_backend_client_can_still_send() {
    let (tx, rx) = mpsc::channel();
    let backend = Backend::spawn(move |mut c| {
        let first = read_line(&mut c, 64).unwrap_or_default();
        let _ = c.write_all(b"bye from backend\n");
        let _ = c.shutdown(Shutdown::Write);
        let _ = tx.send((first, read_to_close(&mut c, 10 * SEC)));
    });
    let serve = Serve::start(&args!["--anyprot", backend.addr]);
    let mut c = connect(serve.addr);
    c.write_all(b"HELLO\n").unwrap();
    match read_to_close(&mut c, 5 * SEC) {
        Ending::Eof(b) => assert_eq!(b, b"bye from backend\n"),
        other => panic!("after the backend's FIN: {other:?} (expected its bytes, then EOF)"),
    }
    let late = b"still talking after your FIN\n";
    c.write_all(late).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let (first, end) = rx
        .recv_timeout(5 * SEC)
        .expect("backend saw no end of stream");
    assert_eq!(first, b"HELLO\n");
    match end {
        Ending::Eof(b) => assert_eq!(b, late, "bytes sent after the backend's FIN"),
        other => panic!("backend, after its own FIN: {other:?}"),
    }
}

#[test]
fn silent_client_goes_to_on_timeout_route() {
    let ssh = Backend::banner(b"SSH-2.0-OpenSSH_backend\r\n");
    let other = Backend::banner(b"WRONG BACKEND\r\n");
    let serve = Serve::start(&args![
        "--timeout",
        "300ms",
        "--on-timeout",
        "ssh",
        "--tls",
        other.addr,
        "--http",
        other.addr,
        "--ssh",
        ssh.addr
    ]);
    let mut c = connect(serve.addr);
    let t0 = Instant::now();
    let line = read_line(&mut c, 64).unwrap_or_default();
    let took = t0.elapsed();
    assert_eq!(
        String::from_utf8_lossy(&line),
        "SSH-2.0-OpenSSH_backend\r\n"
    );
    assert!(
        took >= Duration::from_millis(250),
        "sent to on-timeout after {took:?}, before --timeout 300ms"
    );
    assert!(took < 2 * SEC, "sent to on-timeout only after {took:?}");
}

// ---------------------------------------------------------------------------
// 6. SIGHUP reload under load

/// One long transfer through an echo route: `OLD\n`, then 16 KiB chunks
/// echoed and checked until `stop`, then a clean half-close. Each round trip
/// bumps `progress`.
fn echo_stream(
    addr: SocketAddr,
    id: usize,
    progress: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Result<u64, String> {
    let e = |what: &str, err: std::io::Error| format!("stream {id}: {what}: {err}");
    let mut c = TcpStream::connect_timeout(&addr, IO_BOUND).map_err(|x| e("connect", x))?;
    bound(&c);
    c.write_all(b"OLD\n").map_err(|x| e("write", x))?;
    let back = read_n(&mut c, 4).map_err(|x| e("first echo", x))?;
    if back != b"OLD\n" {
        return Err(format!("stream {id}: first echo {back:?}"));
    }
    let chunk: Vec<u8> = (0..16 * 1024).map(|j| (j * 7 + id) as u8).collect();
    let mut total = 0u64;
    while !stop.load(Ordering::SeqCst) {
        c.write_all(&chunk).map_err(|x| e("write", x))?;
        let back =
            read_n(&mut c, chunk.len()).map_err(|x| e(&format!("echo after {total} bytes"), x))?;
        if back != chunk {
            return Err(format!("stream {id}: corrupted echo after {total} bytes"));
        }
        total += chunk.len() as u64;
        progress.fetch_add(1, Ordering::SeqCst);
    }
    c.shutdown(Shutdown::Write).map_err(|x| e("shutdown", x))?;
    match read_to_close(&mut c, 5 * SEC) {
        Ending::Eof(b) if b.is_empty() => Ok(total),
        other => Err(format!("stream {id}: at the end: {other:?}")),
    }
}

/// Wait until every stream has made progress since `snapshot`.
fn all_progress(progress: &[Arc<AtomicU64>]) -> impl Fn() -> bool + '_ {
    let snapshot: Vec<u64> = progress.iter().map(|p| p.load(Ordering::SeqCst)).collect();
    move || {
        progress
            .iter()
            .zip(&snapshot)
            .all(|(p, s)| p.load(Ordering::SeqCst) > *s)
    }
}

#[test]
fn sighup_reload_under_load_keeps_connections() {
    let _x = exclusive();
    let echo = Backend::echo();
    let fresh = Backend::spawn(|mut c| {
        let _ = read_n(&mut c, 4);
        let _ = c.write_all(b"new-route\n");
        let _ = read_to_close(&mut c, 5 * SEC);
    });
    let dir = TempDir::new().unwrap();
    let conf = dir.path().join("onedoor.toml");
    let addr = free_addr();
    let old = format!(
        "# reload test\nlisten = [\"{addr}\"]\ntimeout = \"2s\"\nroute = [\"regex,regex=^OLD={}\"]\n",
        echo.addr
    );
    write_atomic(&conf, &old);
    let mut serve = Serve::start_in(dir, &args!["-c", conf.display()], &[addr], |_| {});

    const N: usize = 20;
    let stop = Arc::new(AtomicBool::new(false));
    let progress: Vec<Arc<AtomicU64>> = (0..N).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let workers: Vec<_> = progress
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (p, stop) = (p.clone(), stop.clone());
            thread::spawn(move || echo_stream(addr, i, p, stop))
        })
        .collect();
    let stop_on_panic = scopeguard(stop.clone());
    assert!(
        wait_for(10 * SEC, all_progress(&progress)),
        "the {N} streams did not all start"
    );
    assert_ne!(
        first_line(addr, b"NEW\n", SEC),
        b"new-route\n",
        "NEW routed before the reload"
    );

    // A new route, then SIGHUP.
    let new = format!(
        "{old}route = [\"regex,regex=^OLD={}\", \"regex,regex=^NEW={}\"]\n",
        echo.addr, fresh.addr
    );
    let new = new.replacen(
        &format!("route = [\"regex,regex=^OLD={}\"]\n", echo.addr),
        "",
        1,
    );
    write_atomic(&conf, &new);
    serve.proc.signal(Signal::SIGHUP);
    let routed = wait_for(5 * SEC, || {
        first_line(addr, b"NEW\n", SEC) == b"new-route\n"
    });
    serve.assert_running();
    assert!(routed, "the new route does not work 5 s after SIGHUP");
    assert!(
        wait_for(5 * SEC, all_progress(&progress)),
        "streams stalled after the reload"
    );
    assert_eq!(
        first_line(addr, b"OLD\n", SEC),
        b"OLD\n",
        "the old route after the reload"
    );

    // An invalid config: kept the old one, and said why.
    write_atomic(&conf, &format!("{new}bogus-key = true\n"));
    serve.proc.signal(Signal::SIGHUP);
    let said = wait_for(5 * SEC, || serve.proc.stderr().contains("bogus-key"));
    serve.assert_running();
    assert!(
        said,
        "after SIGHUP with an invalid config, stderr does not say why (no `bogus-key`)"
    );
    assert_eq!(
        first_line(addr, b"NEW\n", SEC),
        b"new-route\n",
        "the config in force was lost"
    );
    assert_eq!(
        first_line(addr, b"OLD\n", SEC),
        b"OLD\n",
        "the config in force was lost"
    );
    assert!(
        wait_for(5 * SEC, all_progress(&progress)),
        "streams stalled after the bad reload"
    );

    stop.store(true, Ordering::SeqCst);
    drop(stop_on_panic);
    let mut failures = Vec::new();
    for w in workers {
        match w.join().unwrap() {
            Ok(n) => assert!(n > 0),
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "connections dropped by the reloads: {failures:#?}"
    );
}

#[test]
fn sighup_right_after_start_is_not_fatal() {
    // A reload can come at any time once the port is up (systemd's
    // ExecReload, a config manager), and SIGHUP's default action kills.
    let echo = Backend::echo();
    let dir = TempDir::new().unwrap();
    for round in 0..50 {
        let (addr, m) = (free_addr(), free_addr());
        let mut cmd = onedoor();
        cmd.arg("serve")
            .args(args!["-l", addr, "--metrics", m, "--anyprot", echo.addr]);
        let mut serve = Proc::spawn("onedoor-serve", &mut cmd, dir.path()).unwrap();
        // Signal the moment the port accepts: poll without pausing.
        let end = Instant::now() + START_BOUND;
        while !accepts(addr) {
            assert!(
                serve.exited().is_none() && Instant::now() < end,
                "round {round}: serve did not start"
            );
        }
        serve.signal(Signal::SIGHUP);
        let works = echo_ok(addr);
        // A killed process may take a moment to become a zombie.
        let bound = if works { Duration::ZERO } else { SEC };
        if let Some(status) = serve.wait_exit(bound) {
            panic!("round {round}: a SIGHUP just after the port accepted killed serve ({status})");
        }
        assert!(works, "round {round}: not forwarding after an early SIGHUP");
    }
}

/// Sets the flag when dropped: stops worker threads when a test panics.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn scopeguard(flag: Arc<AtomicBool>) -> StopOnDrop {
    StopOnDrop(flag)
}

// ---------------------------------------------------------------------------
// 7. EMFILE: out of file descriptors, serve backs off (CVE-2025-46807)

#[test]
fn fd_exhaustion_backs_off_without_spinning() {
    let _x = exclusive();
    let echo = Backend::echo();
    let (addr, m) = (free_addr(), free_addr());
    let args = args![
        "-l",
        addr,
        "--metrics",
        m,
        "--anyprot",
        echo.addr,
        "--timeout",
        "30s"
    ];
    let mut serve = Serve::start_with(&args, &[addr, m], |cmd| limit_nofile(cmd, 64, 64));
    let pid = serve.proc.pid();
    assert_eq!(
        max_open_files(pid),
        Some(64),
        "serve's fd limit: the test needs 64"
    );
    // A whole scrape: the metrics listener has taken the startup poll's
    // connection off its queue before the fds run out.
    scrape(m);
    let clients: Vec<TcpStream> = (0..100)
        .map(|i| {
            TcpStream::connect_timeout(&addr, IO_BOUND)
                .unwrap_or_else(|e| panic!("client #{i}: {e}"))
        })
        .collect();
    let full = wait_for(5 * SEC, || fd_count(pid) >= 60);
    assert!(
        full,
        "serve holds only {} fds with 100 clients and a limit of 64",
        fd_count(pid)
    );

    // Measuring CPU use over an interval: 1 s of sleep each.
    let cpu_over_a_second = || {
        let cpu0 = cpu_time(pid);
        thread::sleep(SEC);
        cpu_time(pid).saturating_sub(cpu0)
    };
    let used = cpu_over_a_second();
    serve.assert_running();
    eprintln!(
        "fd_exhaustion: serve used {used:?} CPU in 1 s, {} fds open",
        fd_count(pid)
    );
    assert!(
        used < Duration::from_millis(300),
        "serve used {used:?} of CPU in 1 s while out of fds: its accept loop spins on EMFILE"
    );

    // A scrape arriving while out of fds (Prometheus doesn't know).
    let scraper = TcpStream::connect_timeout(&m, IO_BOUND).expect("connect to --metrics");
    let used = cpu_over_a_second();
    serve.assert_running();
    eprintln!("fd_exhaustion: with a scrape waiting, serve used {used:?} CPU in 1 s");
    assert!(
        used < Duration::from_millis(300),
        "serve used {used:?} of CPU in 1 s while out of fds with a connection waiting on \
         --metrics: the metrics listener spins on EMFILE"
    );
    drop(scraper);

    drop(clients);
    let back = wait_for(10 * SEC, || echo_ok(addr));
    serve.assert_running();
    assert!(
        back,
        "after the fds were freed, a new connection still does not get through"
    );
    let text = scrape(m);
    let accept_errors = metric(&text, "onedoor_errors_total", &[("kind", "accept")]);
    assert!(
        accept_errors >= 1.0,
        "EMFILE not counted as kind=\"accept\":\n{text}"
    );
}

#[test]
fn raises_its_own_fd_limit() {
    let echo = Backend::echo();
    let addr = free_addr();
    let serve = Serve::start_with(&args!["-l", addr, "--anyprot", echo.addr], &[addr], |cmd| {
        limit_nofile(cmd, 256, 4096)
    });
    let limit = max_open_files(serve.proc.pid());
    assert!(
        limit.is_some_and(|l| l >= 4096),
        "serve's soft fd limit is {limit:?}, not raised to the hard limit 4096"
    );
}

// ---------------------------------------------------------------------------
// 8. SIGTERM: drain live transfers within a bound

#[test]
fn sigterm_lets_live_transfers_finish() {
    let _x = exclusive();
    const TOTAL: usize = 8 << 20;
    let (tx, rx) = mpsc::channel();
    let source = Backend::spawn(move |mut c| {
        let _ = read_n(&mut c, 3);
        let chunk = vec![0x5au8; 64 * 1024];
        let mut sent = 0;
        while sent < TOTAL {
            if c.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
            thread::sleep(Duration::from_millis(15)); // pace: ~2 s in all
        }
        let _ = tx.send(sent);
    });
    let mut serve = Serve::start(&args!["--anyprot", source.addr, "--drain-timeout", "10s"]);
    let mut c = connect(serve.addr);
    c.write_all(b"GO\n").unwrap();
    let first = read_n(&mut c, 1).expect("the transfer started");
    let reader = thread::spawn(move || {
        let end = read_to_close(&mut c, 15 * SEC);
        (end, Instant::now())
    });

    serve.proc.signal(Signal::SIGTERM);
    let term = Instant::now();
    let refused = wait_for(3 * SEC, || {
        matches!(TcpStream::connect_timeout(&serve.addr, Duration::from_millis(500)),
                 Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
    });
    assert!(
        refused,
        "serve still accepts new connections 3 s after SIGTERM"
    );

    let (end, done) = reader.join().unwrap();
    let got = first.len() + end.bytes().len();
    assert!(
        matches!(end, Ending::Eof(_)),
        "the live transfer did not end cleanly: {end:?} after {got} bytes"
    );
    assert_eq!(got, TOTAL, "bytes delivered after SIGTERM");
    assert_eq!(
        rx.recv_timeout(SEC),
        Ok(TOTAL),
        "the source did not send everything"
    );
    let status = serve
        .proc
        .wait_exit(10 * SEC + 3 * SEC - term.elapsed().min(10 * SEC));
    let Some(status) = status else {
        panic!("serve did not exit within --drain-timeout 10s after SIGTERM");
    };
    assert!(
        status.success(),
        "serve exited with {status} after draining"
    );
    assert!(
        done.elapsed() < 3 * SEC,
        "serve waited {:?} after its last connection ended before exiting",
        done.elapsed()
    );
}

#[test]
fn sigterm_drain_is_bounded() {
    let source = Backend::spawn(|mut c| {
        let _ = read_n(&mut c, 3);
        let chunk = [0u8; 1024];
        for _ in 0..3000 {
            if c.write_all(&chunk).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
    });
    let mut serve = Serve::start(&args!["--anyprot", source.addr, "--drain-timeout", "1s"]);
    let mut c = connect(serve.addr);
    c.write_all(b"GO\n").unwrap();
    read_n(&mut c, 1).expect("the transfer started");
    let reader = thread::spawn(move || read_to_close(&mut c, 10 * SEC));
    serve.proc.signal(Signal::SIGTERM);
    let term = Instant::now();
    let status = serve.proc.wait_exit(5 * SEC);
    let took = term.elapsed();
    assert!(
        status.is_some(),
        "serve did not exit within 5 s of SIGTERM with --drain-timeout 1s"
    );
    assert!(
        took >= Duration::from_millis(800),
        "serve exited {took:?} after SIGTERM: it did not drain"
    );
    assert!(
        took < 3 * SEC,
        "serve exited {took:?} after SIGTERM with --drain-timeout 1s"
    );
    eprintln!("sigterm_drain_is_bounded: exit {:?} after {took:?}", status);
    let end = reader.join().unwrap();
    assert!(end.closed(), "the cut transfer is still open");
}

// ---------------------------------------------------------------------------
// 9. Configuration errors: exit 2, naming the flag or FILE:LINE

#[test]
fn config_unknown_key_names_file_and_line() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("onedoor.toml");
    let text = format!(
        "# onedoor test config\nlisten = [\"{}\"]\nssh = \"127.0.0.1:22\"\nbogus-key = 1\n",
        free_addr()
    );
    std::fs::write(&path, text).unwrap();
    let r = serve_exit(&args!["-c", path.display()]);
    assert_eq!(r.code(), Some(2), "unknown key: {r:?}");
    assert!(
        r.stderr.contains(&format!("{}:4", path.display())),
        "stderr lacks FILE:LINE: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("bogus-key"),
        "stderr lacks the key: {}",
        r.stderr
    );
}

#[test]
fn config_bad_value_names_file_and_line() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("onedoor.toml");
    let text = format!(
        "listen = [\"{}\"]\nssh = \"127.0.0.1:22\"\ntimeout = \"forever\"\n",
        free_addr()
    );
    std::fs::write(&path, text).unwrap();
    let r = serve_exit(&args!["-c", path.display()]);
    assert_eq!(r.code(), Some(2), "bad timeout: {r:?}");
    assert!(
        r.stderr.contains(&format!("{}:3", path.display())),
        "stderr lacks FILE:LINE: {}",
        r.stderr
    );

    let text = format!(
        "listen = [\"{}\"]\nroute = [\"tls,sni=a.example=nowhere\"]\n",
        free_addr()
    );
    std::fs::write(&path, text).unwrap();
    let r = serve_exit(&args!["-c", path.display()]);
    assert_eq!(r.code(), Some(2), "bad route in the file: {r:?}");
    assert!(
        r.stderr.contains(&format!("{}:2", path.display())),
        "stderr lacks FILE:LINE: {}",
        r.stderr
    );
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let l = free_addr();
    let cases: [(&str, &str); 7] = [
        ("--route", "tls,sni=a.example=nowhere"),
        ("--route", "gopher=127.0.0.1:1"),
        ("--route", "ssh,sni=a.example=127.0.0.1:1"),
        ("--timeout", "forever"),
        ("--proxy-protocol", "v3"),
        ("--trusted-proxy", "10.0.0.0/33"),
        ("--rate", "fast"),
    ];
    for (flag, value) in cases {
        let r = serve_exit(&args!["-l", l, "--ssh", "127.0.0.1:22", flag, value]);
        assert_eq!(r.code(), Some(2), "{flag} {value}: {r:?}");
        assert!(
            r.stderr.contains(flag),
            "{flag} {value}: stderr does not name the flag: {}",
            r.stderr
        );
    }
}

#[test]
fn flags_override_the_config_file() {
    let ssh = Backend::banner(b"SSH-2.0-OpenSSH_backend\r\n");
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("onedoor.toml");
    let addr = free_addr();
    let text = format!(
        "listen = [\"{addr}\"]\nssh = \"{}\"\ntimeout = \"30s\"\non-timeout = \"ssh\"\n",
        ssh.addr
    );
    std::fs::write(&path, text).unwrap();
    let serve = Serve::start_in(
        dir,
        &args!["-c", path.display(), "--timeout", "300ms"],
        &[addr],
        |_| {},
    );
    let mut c = connect(serve.addr);
    let t0 = Instant::now();
    let line = read_line(&mut c, 64).unwrap_or_default();
    assert_eq!(
        String::from_utf8_lossy(&line),
        "SSH-2.0-OpenSSH_backend\r\n",
        "--timeout 300ms over the file's 30s"
    );
    assert!(
        t0.elapsed() < 2 * SEC,
        "took {:?}: the file's timeout won",
        t0.elapsed()
    );
}

// ---------------------------------------------------------------------------
// 10. --user drops privileges after binding

#[test]
fn user_drops_privileges_after_binding() {
    let t = "user_drops_privileges_after_binding";
    let Some(()) = need(t, root()) else { return };
    let Some(nobody) = need(
        t,
        nix::unistd::User::from_name("nobody")
            .ok()
            .flatten()
            .ok_or_else(|| "no user `nobody`".to_string()),
    ) else {
        return;
    };
    // A privileged port, so binding really needs the privileges dropped after.
    let port = (600..1000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 1024");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let echo = Backend::echo();
    let mut serve = Serve::start_with(
        &args!["-l", addr, "--user", "nobody", "--anyprot", echo.addr],
        &[addr],
        |_| {},
    );
    let uid = nobody.uid.as_raw();
    let pid = serve.proc.pid();
    let dropped = wait_for(5 * SEC, || {
        let u = thread_uids(pid);
        !u.is_empty() && u.iter().all(|ids| ids.iter().all(|&x| x == uid))
    });
    serve.assert_running();
    assert!(
        dropped,
        "serve threads' uids {:?}, expected all {uid} (nobody)",
        thread_uids(pid)
    );
    assert!(echo_ok(addr), "forwarding after the privilege drop");
}

// ---------------------------------------------------------------------------
// 11. IPv6 and several listeners

#[test]
fn ipv6_and_ipv4_listeners() {
    let t = "ipv6_and_ipv4_listeners";
    let Some(a6) = need(t, free_addr6()) else {
        return;
    };
    let a4 = free_addr();
    let echo = Backend::echo();
    let _serve = Serve::start_with(
        &args!["-l", a4, "-l", a6, "--anyprot", echo.addr],
        &[a4, a6],
        |_| {},
    );
    assert!(echo_ok(a4), "through the IPv4 listener");
    assert!(echo_ok(a6), "through the IPv6 listener");

    // A PROXY header names an IPv6 client as TCP6.
    let (b, a6) = (listener(), free_addr6().unwrap());
    let _serve = Serve::start_with(
        &args![
            "-l",
            a6,
            "--proxy-protocol",
            "v1",
            "--ssh",
            b.local_addr().unwrap()
        ],
        &[a6],
        |_| {},
    );
    let mut c = connect(a6);
    c.write_all(b"SSH-2.0-Test\r\n").unwrap();
    let (mut s, _) = accept_within(&b, 5 * SEC).expect("backend got no connection");
    let h = read_proxy_v1(&mut s).unwrap();
    assert_eq!(h.src, c.local_addr().unwrap());
    assert_eq!(h.dst, a6);
}

// ---------------------------------------------------------------------------
// Limits and metrics

#[test]
fn max_connections_is_enforced() {
    let echo = Backend::echo();
    let serve = Serve::start_metered(&args!["--anyprot", echo.addr, "--max-connections", "2"]);
    let mut held = Vec::new();
    for i in 0..2 {
        let mut c = connect(serve.addr);
        c.write_all(b"ping\n").unwrap();
        assert_eq!(
            read_line(&mut c, 16).unwrap(),
            b"ping\n",
            "connection {i} within the limit"
        );
        held.push(c);
    }
    let mut third = connect(serve.addr);
    let _ = third.write_all(b"three\n");
    let end = read_to_close(&mut third, SEC);
    assert!(
        end.bytes().is_empty(),
        "a third connection was served with --max-connections 2"
    );
    eprintln!(
        "max_connections: the third connection was {}",
        if end.closed() {
            "closed"
        } else {
            "kept waiting"
        }
    );
    if end.closed() {
        let counted = wait_for(3 * SEC, || {
            serve.metric("onedoor_errors_total", &[("kind", "over_limit")]) >= 1.0
        });
        assert!(
            counted,
            "closed over the limit but not counted as over_limit:\n{}",
            serve.scrape()
        );
    }
    drop(third);
    drop(held.remove(0));
    assert!(
        wait_for(5 * SEC, || echo_ok(serve.addr)),
        "no new connection after one of the two ended"
    );
}

#[test]
fn per_ip_rate_limit() {
    let echo = Backend::echo();
    let serve = Serve::start_metered(&args!["--anyprot", echo.addr, "--rate", "5/s"]);
    let (mut served, mut refused) = (0, 0);
    let end = Instant::now() + 10 * SEC;
    for _ in 0..30 {
        if Instant::now() > end {
            break;
        }
        if echo_ok(serve.addr) {
            served += 1;
        } else {
            refused += 1;
        }
    }
    assert!(served >= 1, "--rate 5/s served none of 30 connections");
    assert!(
        refused >= 1,
        "--rate 5/s served all of {served} connections made at once"
    );
    let counted = wait_for(3 * SEC, || {
        serve.metric("onedoor_errors_total", &[("kind", "rate_limited")]) >= 1.0
    });
    assert!(
        counted,
        "rate-limited connections not counted:\n{}",
        serve.scrape()
    );
}

#[test]
fn metrics_count_connections_bytes_and_sniff_time() {
    let echo = Backend::echo();
    let serve = Serve::start_metered(&args![
        "--route",
        format!("regex,regex=^ONE={}", echo.addr),
        "--anyprot",
        echo.addr
    ]);
    for hello in [
        &b"ONE\n"[..],
        b"ONE\n",
        b"ONE\n",
        b"TWO\n",
        b"TWO\n",
        b"TWO\n",
    ] {
        assert_eq!(first_line(serve.addr, hello, 2 * SEC), hello);
    }
    let ok = wait_for(3 * SEC, || {
        let m = serve.scrape();
        metric(&m, "onedoor_connections_total", &[]) >= 6.0
            && metric(&m, "onedoor_bytes_total", &[]) >= 48.0
            && metric(&m, "onedoor_sniff_seconds_count", &[]) >= 6.0
    });
    let m = serve.scrape();
    assert!(ok, "connections, bytes or sniff time not counted:\n{m}");
    let routes = label_values(&m, "onedoor_connections_total", "route");
    assert!(
        routes.len() >= 2,
        "connections not told apart by route: {routes:?}\n{m}"
    );
    let dirs = label_values(&m, "onedoor_bytes_total", "direction");
    assert!(
        dirs.len() >= 2,
        "bytes not told apart by direction: {dirs:?}\n{m}"
    );
}

#[test]
fn max_pending_closes_the_oldest_silent_client() {
    let echo = Backend::echo();
    let serve = Serve::start_metered(&args![
        "--anyprot",
        echo.addr,
        "--timeout",
        "30s",
        "--max-pending",
        "10"
    ]);
    let pending = || serve.metric("onedoor_pending_connections", &[]);
    assert!(
        wait_for(5 * SEC, || pending() == 0.0),
        "startup connections still pending"
    );
    // One at a time, so that serve's idea of "oldest" is ours.
    let mut silent = Vec::new();
    for i in 0..10 {
        silent.push(connect(serve.addr));
        let n = (i + 1) as f64;
        assert!(
            wait_for(5 * SEC, || pending() == n),
            "pending clients: {} not {n}",
            pending()
        );
    }
    assert!(
        silent.iter().all(|s| !peer_closed(s)),
        "a pending client was closed within the limit"
    );
    let newest = connect(serve.addr);
    let oldest_out = wait_for(3 * SEC, || peer_closed(&silent[0]));
    let closed: Vec<usize> = (0..10).filter(|&i| peer_closed(&silent[i])).collect();
    assert!(
        oldest_out,
        "the oldest pending client is still open past --max-pending 10 (closed: {closed:?})"
    );
    assert_eq!(closed, [0], "only the oldest is closed");
    assert!(
        !peer_closed(&newest),
        "the newest pending client was closed"
    );
    assert!(
        echo_ok(serve.addr),
        "a client that speaks at once, at the pending limit"
    );
}

// ---------------------------------------------------------------------------
// systemd socket activation

#[test]
fn systemd_socket_activation() {
    use std::os::unix::io::AsRawFd;
    use std::os::unix::process::CommandExt;
    let echo = Backend::echo();
    let activated = listener();
    let addr = activated.local_addr().unwrap();
    let fd = activated.as_raw_fd();
    let ignored = free_addr();
    let dir = TempDir::new().unwrap();
    // LISTEN_PID must be serve's own pid: a shell exports its pid, then
    // execs serve in its place.
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$; export LISTEN_PID; exec "$0" serve "$@""#)
        .arg(env!("CARGO_BIN_EXE_onedoor"))
        .args(args!["-l", ignored, "--anyprot", echo.addr])
        .env("LISTEN_FDS", "1")
        .env_remove("LISTEN_FDNAMES");
    // SAFETY: only dup2, which is async-signal-safe, runs between fork and
    // exec; it puts the listener at fd 3 without FD_CLOEXEC.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut serve = Proc::spawn("onedoor-serve", &mut cmd, dir.path()).unwrap();
    let works = wait_for(START_BOUND, || serve.exited().is_some() || echo_ok(addr));
    assert!(
        works && serve.exited().is_none(),
        "nothing served on the socket passed by LISTEN_FDS (exit {:?})",
        serve.exited()
    );
    assert!(
        !accepts(ignored),
        "`-l` was bound too, though systemd passed the sockets"
    );
}

// ---------------------------------------------------------------------------
// More real peers and forwarding properties

#[test]
fn socks5_routed_to_a_real_socks_server() {
    let t = "socks5_routed_to_a_real_socks_server";
    let Some(_) = need(t, which("curl")) else {
        return;
    };
    let Some(sshd) = need(t, Sshd::start()) else {
        return;
    };
    let Some(nginx) = need(
        t,
        Nginx::start(&[Site {
            tls: None,
            body: "via-socks\n",
        }]),
    ) else {
        return;
    };
    // `ssh -D` is the SOCKS5 server; curl speaks SOCKS5 to serve.
    let (_ssh_d, socks) = sshd.socks5();
    let serve = Serve::start(&args![
        "--ssh",
        sshd.addr,
        "--socks5",
        socks,
        "--http",
        nginx.addrs[0]
    ]);
    let body = curl_body(
        t,
        &args![
            "--socks5",
            serve.addr,
            format!("http://{}/", nginx.addrs[0])
        ],
    );
    assert_eq!(body.unwrap(), "via-socks\n");
}

/// Round trips where one side writes its message in two parts, 2 ms apart:
/// a leg without TCP_NODELAY holds the second part until the first is
/// acknowledged, and the receiver delays that ACK (~40 ms).
fn split_write_rounds(
    serve: SocketAddr,
    backend: &std::net::TcpListener,
    up: bool,
    down: bool,
) -> Duration {
    const ROUNDS: usize = 60;
    let mut c = connect(serve);
    c.write_all(b"SSH-2.0-nagle\r\n").unwrap();
    let (mut b, _) = accept_within(backend, 5 * SEC).expect("backend got no connection");
    read_n(&mut b, 15).unwrap();
    let server = thread::spawn(move || {
        for _ in 0..ROUNDS {
            read_n(&mut b, 20).unwrap();
            if down {
                b.write_all(&[b'x'; 10]).unwrap();
                thread::sleep(Duration::from_millis(2));
                b.write_all(&[b'y'; 10]).unwrap();
            } else {
                b.write_all(&[b'z'; 20]).unwrap();
            }
        }
    });
    let t0 = Instant::now();
    for _ in 0..ROUNDS {
        if up {
            c.write_all(&[b'a'; 10]).unwrap();
            thread::sleep(Duration::from_millis(2));
            c.write_all(&[b'b'; 10]).unwrap();
        } else {
            c.write_all(&[b'c'; 20]).unwrap();
        }
        read_n(&mut c, 20).unwrap();
    }
    let took = t0.elapsed();
    server.join().unwrap();
    took
}

#[test]
fn tcp_nodelay_on_both_legs() {
    let _x = exclusive();
    let backend = listener();
    let serve = Serve::start(&args!["--ssh", backend.local_addr().unwrap()]);
    // 60 rounds take ~0.3 s with TCP_NODELAY, ≥ 2.4 s without.
    let up = split_write_rounds(serve.addr, &backend, true, false);
    assert!(
        up < Duration::from_millis(1500),
        "client→backend leg: 60 split writes took {up:?}: no TCP_NODELAY towards the backend"
    );
    let down = split_write_rounds(serve.addr, &backend, false, true);
    assert!(
        down < Duration::from_millis(1500),
        "backend→client leg: 60 split writes took {down:?}: no TCP_NODELAY towards the client"
    );
}

#[test]
fn bulk_transfer_both_ways_is_intact() {
    const TOTAL: usize = 32 << 20;
    let echo = Backend::echo();
    let serve = Serve::start(&args!["--anyprot", echo.addr]);
    let c = connect(serve.addr);
    let mut w = c.try_clone().unwrap();
    let data = |i: usize| (i.wrapping_mul(2654435761) >> 7) as u8;
    let writer = thread::spawn(move || {
        let buf: Vec<u8> = (0..TOTAL).map(data).collect();
        for chunk in buf.chunks(100_003) {
            w.write_all(chunk).unwrap();
        }
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut r = c;
    r.set_read_timeout(Some(10 * SEC)).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf).expect("reading the echo");
        if n == 0 {
            break;
        }
        for (k, &byte) in buf[..n].iter().enumerate() {
            assert_eq!(byte, data(got + k), "echoed byte {} differs", got + k);
        }
        got += n;
    }
    writer.join().unwrap();
    assert_eq!(got, TOTAL, "bytes echoed through serve");
}

#[test]
fn unreachable_backend_is_closed_and_counted() {
    // A port held (bound, never listening) for the whole test, so no other
    // test can start listening on it: connecting to it is refused.
    let holder = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    holder
        .bind(&std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    let nowhere = holder.local_addr().unwrap().as_socket().unwrap();
    let serve = Serve::start_metered(&args!["--ssh", nowhere]);
    let mut c = connect(serve.addr);
    c.write_all(b"SSH-2.0-Test\r\n").unwrap();
    let end = read_to_close(&mut c, 3 * SEC);
    assert!(
        end.closed(),
        "client left open when the backend is unreachable"
    );
    let counted = wait_for(3 * SEC, || {
        serve.metric("onedoor_errors_total", &[("kind", "backend_connect")]) >= 1.0
    });
    assert!(counted, "backend_connect not counted:\n{}", serve.scrape());
}
