//! `connect::proxy::through` against a real HTTP CONNECT proxy (Debian's
//! tinyproxy, started per test on 127.0.0.1 with a generated config) and
//! against small fake peers on loopback: a proxy that answers in odd ways,
//! a server that speaks something else, one that closes, one that stays
//! silent.
//!
//! Without tinyproxy the tinyproxy tests print `SKIP: <why>` and pass,
//! unless `ONEDOOR_E2E=require` (CI), where they fail.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use onedoor_net::connect::proxy::{through, ProxyError};
use onedoor_proto::http_connect::{connect_request, proxy_from_env, Credentials, ProxyUrl};
use onedoor_proto::spec::HostPort;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TINYPROXY: &str = "/usr/bin/tinyproxy";
const BANNER: &[u8] = b"SSH-2.0-echo\r\n";
/// The bound every `through` gets in these tests (except the timeout test).
const BOUND: Duration = Duration::from_secs(10);

fn required() -> bool {
    std::env::var("ONEDOOR_E2E").as_deref() == Ok("require")
}

/// A tinyproxy for `test`, or `None` after printing why not (a panic
/// under `ONEDOOR_E2E=require`).
async fn tinyproxy(test: &str, connect_port: u16, auth: Option<(&str, &str)>) -> Option<Tinyproxy> {
    match Tinyproxy::start(connect_port, auth).await {
        Ok(p) => Some(p),
        Err(why) if required() => panic!("{test}: cannot run with ONEDOOR_E2E=require: {why}"),
        Err(why) => {
            eprintln!("SKIP: {test}: {why}");
            None
        }
    }
}

/// A tinyproxy child on 127.0.0.1, killed and reaped on drop.
struct Tinyproxy {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tinyproxy {
    /// Start tinyproxy allowing CONNECT to `connect_port` only, with basic
    /// auth when `auth` is given. Err: why it could not start.
    async fn start(connect_port: u16, auth: Option<(&str, &str)>) -> Result<Tinyproxy, String> {
        if !Path::new(TINYPROXY).exists() {
            return Err(format!(
                "{TINYPROXY} is not installed (apt-get install tinyproxy)"
            ));
        }
        let mut last = String::new();
        // tinyproxy cannot listen on port 0 and tell us the port: pick a
        // free one and retry if another process takes it first.
        for _attempt in 0..5 {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let port = free_port();
            let conf = config(dir.path(), port, connect_port, auth);
            let conf_path = dir.path().join("tinyproxy.conf");
            std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
            let child = Command::new(TINYPROXY)
                .arg("-d")
                .arg("-c")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(
                    std::fs::File::create(dir.path().join("stderr")).map_err(|e| e.to_string())?,
                ))
                .spawn()
                .map_err(|e| format!("cannot run {TINYPROXY}: {e}"))?;
            let mut proxy = Tinyproxy { child, port, dir };
            match proxy.wait_ready().await {
                Ok(()) => return Ok(proxy),
                Err(why) => last = why,
            }
        }
        Err(format!("tinyproxy did not start: {last}"))
    }

    /// Wait (bounded: 5 s) until the proxy accepts connections.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(status)) = self.child.try_wait() {
                let stderr =
                    std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default();
                let log = std::fs::read_to_string(self.dir.path().join("tinyproxy.log"))
                    .unwrap_or_default();
                return Err(format!("exited with {status}: {stderr}{log}"));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err("not listening after 5 s".into())
    }

    fn url(&self, auth: Option<(&str, &str)>) -> ProxyUrl {
        ProxyUrl {
            host: "127.0.0.1".into(),
            port: self.port,
            auth: auth.map(|(u, p)| Credentials {
                user: u.into(),
                password: p.into(),
            }),
        }
    }
}

fn config(dir: &Path, port: u16, connect_port: u16, auth: Option<(&str, &str)>) -> String {
    let path = |name: &str| -> PathBuf { dir.join(name) };
    let mut c = format!(
        "Port {port}\n\
         Listen 127.0.0.1\n\
         Timeout 30\n\
         MaxClients 50\n\
         Allow 127.0.0.1\n\
         ConnectPort {connect_port}\n\
         DisableViaHeader Yes\n\
         LogLevel Info\n\
         LogFile \"{}\"\n\
         PidFile \"{}\"\n",
        path("tinyproxy.log").display(),
        path("tinyproxy.pid").display(),
    );
    if let Some((user, password)) = auth {
        c.push_str(&format!("BasicAuth {user} {password}\n"));
    }
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server that sends [`BANNER`] first, then echoes. Runs until the test
/// ends (the runtime drops it).
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                sock.write_all(BANNER).await?;
                let (mut r, mut w) = sock.split();
                tokio::io::copy(&mut r, &mut w).await?;
                Ok::<_, std::io::Error>(())
            });
        }
    });
    addr
}

/// A fake peer: accepts one connection, reads the request head, and hands
/// the socket and the head to `answer`.
async fn fake_peer<F, Fut>(answer: F) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>)
where
    F: FnOnce(TcpStream, Vec<u8>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
            match sock.read(&mut b).await {
                Ok(1) => head.push(b[0]),
                _ => break,
            }
        }
        answer(sock, head.clone()).await;
        head
    });
    (addr, task)
}

fn plain(addr: SocketAddr) -> ProxyUrl {
    ProxyUrl {
        host: addr.ip().to_string(),
        port: addr.port(),
        auth: None,
    }
}

async fn expect_banner_then_echo(stream: &mut TcpStream) {
    let mut got = vec![0u8; BANNER.len()];
    stream.read_exact(&mut got).await.unwrap();
    assert_eq!(got, BANNER);
    stream.write_all(b"ping through the proxy").await.unwrap();
    let mut back = vec![0u8; 22];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(back, b"ping through the proxy");
}

#[tokio::test]
async fn tinyproxy_carries_bytes_both_ways() {
    let echo = echo_server().await;
    let Some(proxy) = tinyproxy("tinyproxy_carries_bytes_both_ways", echo.port(), None).await
    else {
        return;
    };
    let door = HostPort::new("127.0.0.1", echo.port());
    let mut stream = through(&proxy.url(None), &door, BOUND).await.unwrap();
    assert!(stream.nodelay().unwrap());
    expect_banner_then_echo(&mut stream).await;
    // Again, with the door's first bytes surely there before we read: the
    // banner must still come through after the head.
    let mut stream = through(&proxy.url(None), &door, BOUND).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    expect_banner_then_echo(&mut stream).await;
}

#[tokio::test]
async fn tinyproxy_basic_auth() {
    let echo = echo_server().await;
    let Some(proxy) = tinyproxy(
        "tinyproxy_basic_auth",
        echo.port(),
        Some(("alice", "s3cr-t_x")),
    )
    .await
    else {
        return;
    };
    let door = HostPort::new("127.0.0.1", echo.port());
    let p = proxy.port;

    // Right credentials, percent-encoded in the URL.
    let url = ProxyUrl::parse(&format!("http://alice:s3cr%2Dt%5Fx@127.0.0.1:{p}")).unwrap();
    let mut stream = through(&url, &door, BOUND).await.unwrap();
    expect_banner_then_echo(&mut stream).await;

    // None.
    let e = through(&proxy.url(None), &door, BOUND).await.unwrap_err();
    assert!(
        matches!(e, ProxyError::AuthRequired { status: 407, .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "the proxy 127.0.0.1:{p} requires credentials (407 Proxy Authentication Required) \
             for door {} of 127.0.0.1: give them as --proxy http://USER:PASS@127.0.0.1:{p}",
            echo.port()
        )
    );

    // Wrong (tinyproxy says 401 rather than 407).
    let e = through(&proxy.url(Some(("alice", "wrong"))), &door, BOUND)
        .await
        .unwrap_err();
    assert!(matches!(e, ProxyError::AuthRefused { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "the proxy 127.0.0.1:{p} refused the credentials of user `alice`"
        )),
        "{msg}"
    );
    assert!(!msg.contains("wrong"), "{msg}");
}

#[tokio::test]
async fn tinyproxy_refuses_other_ports() {
    let echo = echo_server().await;
    let Some(proxy) = tinyproxy("tinyproxy_refuses_other_ports", echo.port(), None).await else {
        return;
    };
    let other = echo_server().await;
    let door = HostPort::new("127.0.0.1", other.port());
    let e = through(&proxy.url(None), &door, BOUND).await.unwrap_err();
    assert!(
        matches!(e, ProxyError::Refused { status: 403, .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "the proxy 127.0.0.1:{} refused door {} of 127.0.0.1: 403 Access violation",
            proxy.port,
            other.port()
        )
    );
}

#[tokio::test]
async fn tinyproxy_from_the_environment() {
    let echo = echo_server().await;
    let Some(proxy) = tinyproxy("tinyproxy_from_the_environment", echo.port(), None).await else {
        return;
    };
    let vars: HashMap<&str, String> = [
        ("HTTPS_PROXY", format!("http://127.0.0.1:{}/", proxy.port)),
        ("NO_PROXY", "localhost,.internal,10.0.0.0/8".to_owned()),
    ]
    .into_iter()
    .collect();
    let env = |k: &str| vars.get(k).cloned();
    let url = proxy_from_env("127.0.0.1", echo.port(), env)
        .expect("HTTPS_PROXY applies")
        .expect("HTTPS_PROXY parses");
    let door = HostPort::new("127.0.0.1", echo.port());
    let mut stream = through(&url, &door, BOUND).await.unwrap();
    expect_banner_then_echo(&mut stream).await;
    assert_eq!(proxy_from_env("db.internal", 443, env), None);
    assert_eq!(proxy_from_env("10.1.2.3", 443, env), None);
}

#[tokio::test]
async fn bytes_right_after_the_head_are_kept() {
    // The head and the door's first bytes in one segment.
    let (addr, task) = fake_peer(|mut sock, _| async move {
        let mut out = b"HTTP/1.1 200 Connection established\r\nX-A: b\r\n\r\n".to_vec();
        out.extend_from_slice(BANNER);
        sock.write_all(&out).await.unwrap();
        let mut buf = [0u8; 4];
        sock.read_exact(&mut buf).await.unwrap();
        sock.write_all(&buf).await.unwrap();
    })
    .await;
    let door = HostPort::new("door.example", 443);
    let mut stream = through(&plain(addr), &door, BOUND).await.unwrap();
    let mut got = vec![0u8; BANNER.len()];
    stream.read_exact(&mut got).await.unwrap();
    assert_eq!(got, BANNER);
    stream.write_all(b"pong").await.unwrap();
    let mut back = [0u8; 4];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"pong");
    let request = task.await.unwrap();
    assert_eq!(request, connect_request("door.example", 443, None));
}

#[tokio::test]
async fn a_head_in_tiny_pieces() {
    let (addr, task) = fake_peer(|mut sock, _| async move {
        let head = b"HTTP/1.0 200 OK\r\nProxy-agent: x\r\n\r\n";
        for &b in head.iter() {
            sock.write_all(&[b]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        sock.write_all(b"door speaks").await.unwrap();
    })
    .await;
    let url = ProxyUrl {
        auth: Some(Credentials {
            user: "u".into(),
            password: "p w".into(),
        }),
        ..plain(addr)
    };
    let door = HostPort::new("::1", 8443);
    let mut stream = through(&url, &door, BOUND).await.unwrap();
    let mut got = String::new();
    stream.read_to_string(&mut got).await.unwrap();
    assert_eq!(got, "door speaks");
    let request = String::from_utf8(task.await.unwrap()).unwrap();
    assert_eq!(
        request,
        "CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\
         Proxy-Authorization: Basic dTpwIHc=\r\n\r\n"
    );
    assert!(!request.to_ascii_lowercase().contains("onedoor"));
}

#[tokio::test]
async fn refusals_name_status_and_reason() {
    let (addr, _task) = fake_peer(|mut sock, _| async move {
        let _ = sock
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            .await;
    })
    .await;
    let door = HostPort::new("door.example", 443);
    let e = through(&plain(addr), &door, BOUND).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("the proxy {addr} refused door 443 of door.example: 502 Bad Gateway")
    );

    // A 407 when credentials were given: refused, and the password stays out.
    let (addr, _task) = fake_peer(|mut sock, _| async move {
        let _ = sock
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
            .await;
    })
    .await;
    let url = ProxyUrl::parse(&format!("http://bob:hunter2@{addr}")).unwrap();
    let e = through(&url, &door, BOUND).await.unwrap_err();
    assert!(
        matches!(e, ProxyError::AuthRefused { status: 407, .. }),
        "{e:?}"
    );
    assert!(!e.to_string().contains("hunter2"));
    assert!(!format!("{e:?}").contains("hunter2"));
}

#[tokio::test]
async fn something_else_answering_is_not_a_proxy() {
    // An SSH server where the proxy should be.
    let (addr, _task) = fake_peer(|mut sock, _| async move {
        let _ = sock.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let door = HostPort::new("door.example", 443);
    let e = through(&plain(addr), &door, BOUND).await.unwrap_err();
    assert!(matches!(e, ProxyError::NotAProxy { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "{addr} is not an HTTP proxy (asked for door 443 of door.example): \
             it answered \"SSH-2.0-OpenSSH_9.6\\r\\n\""
        )
    );

    // A server that reads the request and hangs up.
    let (addr, _task) = fake_peer(|sock, _| async move { drop(sock) }).await;
    let e = through(&plain(addr), &door, BOUND).await.unwrap_err();
    assert!(matches!(e, ProxyError::NotAProxy { .. }), "{e:?}");
    assert!(
        e.to_string()
            .ends_with("it closed the connection without answering CONNECT"),
        "{e}"
    );

    // Half an answer, then gone.
    let (addr, _task) = fake_peer(|mut sock, _| async move {
        let _ = sock.write_all(b"HTTP/1.1 200 Conn").await;
    })
    .await;
    let e = through(&plain(addr), &door, BOUND).await.unwrap_err();
    assert!(e.to_string().contains("in the middle of its answer"), "{e}");

    // A head that never ends.
    let (addr, _task) = fake_peer(|mut sock, _| async move {
        let _ = sock.write_all(b"HTTP/1.1 200 OK\r\nX-Pad: ").await;
        let _ = sock.write_all(&[b'a'; 20_000]).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let e = through(&plain(addr), &door, BOUND).await.unwrap_err();
    assert!(matches!(e, ProxyError::NotAProxy { .. }), "{e:?}");
    assert!(e.to_string().contains("no end of HTTP head"), "{e}");
}

#[tokio::test]
async fn nobody_listening_is_unreachable() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let door = HostPort::new("door.example", 443);
    let e = through(&plain(addr), &door, BOUND).await.unwrap_err();
    assert!(matches!(e, ProxyError::Unreachable { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "the proxy {addr} is unreachable (on the way to door 443 of door.example): "
        )),
        "{e}"
    );
}

#[tokio::test]
async fn a_silent_proxy_times_out_within_the_bound() {
    let (addr, _task) = fake_peer(|sock, _| async move {
        // Hold the connection open, say nothing.
        let _sock = sock;
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await;
    let door = HostPort::new("door.example", 443);
    let bound = Duration::from_millis(300);
    let started = Instant::now();
    let e = through(&plain(addr), &door, bound).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            e,
            ProxyError::Timeout {
                connected: true,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        took >= bound && took < bound + Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "the proxy {addr} did not answer CONNECT within 300ms \
             (on the way to door 443 of door.example)"
        )
    );
}
