//! `onedoor serve --tunnel` as a scanner sees it: the real binary, a state
//! dir from `onedoor init`, `curl -k` against the door, a website as the
//! fallback. (Sessions through serve are tested in
//! crates/net/tests/tunnel_serve.rs with the session client.)

#[allow(unused_imports)]
mod util;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;
use util::{free_addr, need, wait_port, which, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_onedoor");
const BODY: &str = "the real website here";

/// A plain HTTP/1.1 website on a thread: answers every request with [`BODY`].
fn website() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
                    BODY.len()
                );
            });
        }
    });
    addr
}

#[test]
fn curl_through_serve_tunnel_sees_the_fallback_website() {
    let t = "curl_through_serve_tunnel_sees_the_fallback_website";
    let Some(curl) = need(t, which("curl")) else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let state = dir.path().join("state");
    let init = Command::new(BIN)
        .args(["init", "--state-dir"])
        .arg(&state)
        .args(["--name", "door.test"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let site = website();
    let door = free_addr();
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .args(["-l", &door.to_string(), "--tunnel", "--fallback"])
        .arg(site.to_string())
        .arg("--state-dir")
        .arg(&state);
    let mut serve = Proc::spawn("onedoor-serve", &mut cmd, dir.path()).unwrap();
    wait_port(door, Duration::from_secs(10));
    assert!(serve.exited().is_none(), "{}", serve.stderr());
    let port = door.port().to_string();
    // By IP (no SNI) and by the server's name (SNI).
    for extra in [
        vec![format!("https://127.0.0.1:{port}/")],
        vec![
            "--resolve".into(),
            format!("door.test:{port}:127.0.0.1"),
            format!("https://door.test:{port}/"),
        ],
    ] {
        let out = Command::new(&curl)
            .args(["-sk", "--max-time", "10", "-w", "\n%{http_version}"])
            .args(&extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}\n{}", serve.stderr());
        assert_eq!(text, format!("{BODY}\n1.1"), "{extra:?}");
    }
    // The tunnel and the fingerprint were announced.
    let log = serve.stderr();
    assert!(log.contains("tunnel"), "{log}");
    // `--fallback` without `--tunnel` is a usage error naming the flag.
    let bad = Command::new(BIN)
        .args(["serve", "-l", "127.0.0.1:1", "--ssh", "127.0.0.1:22"])
        .args(["--fallback", "127.0.0.1:2"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--fallback"),
        "{bad:?}"
    );
}
