//! End-to-end tests of `onedoor connect` (SPEC §4) against a real
//! `onedoor serve --tunnel` on loopback: `-W` as ssh's ProxyCommand to a
//! private sshd, `curl --socks5-hostname` through `-D`, `-L` to an echo
//! server, and the exit codes: 3 intercepted (wrong pin, nothing sent),
//! 4 authentication refused, 5 refused by the allow-list, 2 usage.
//! Real peers that are not installed are skipped (required with
//! `ONEDOOR_E2E=require`).

#[allow(unused_imports)]
mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use util::{accepts, free_addr, need, onedoor, run_bounded, wait_for, Proc, Run, Sshd, TempDir};

const BOUND: Duration = Duration::from_secs(20);

/// A `serve --tunnel` door with a fresh state dir and its first client's key.
struct Door {
    _serve: Proc,
    addr: SocketAddr,
    key: String,
    /// A second client, allowed only `10.0.0.0/8:22`.
    narrow: String,
    dir: TempDir,
}

fn door() -> Door {
    let dir = TempDir::new().unwrap();
    let state = dir.path().join("state");
    let r = run_bounded(
        onedoor().args([
            "init",
            "--state-dir",
            state.to_str().unwrap(),
            "--name",
            "127.0.0.1",
        ]),
        BOUND,
    );
    assert_eq!(r.code(), Some(0), "init: {}", r.stderr);
    let key = r.stdout.trim().to_owned();
    let r = run_bounded(
        onedoor()
            .args([
                "client",
                "add",
                "narrow",
                "--allow",
                "10.0.0.0/8:22",
                "--state-dir",
            ])
            .arg(&state),
        BOUND,
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let narrow = r.stdout.trim().to_owned();
    let addr = free_addr();
    let mut cmd = onedoor();
    cmd.args(["serve", "-l", &addr.to_string(), "--tunnel", "--state-dir"])
        .arg(&state)
        .env("RUST_LOG", "info");
    let mut serve = Proc::spawn("serve", &mut cmd, dir.path()).unwrap();
    assert!(
        wait_for(BOUND, || serve.exited().is_some() || accepts(addr)) && serve.exited().is_none(),
        "serve did not start: {}",
        serve.stderr_tail(2048)
    );
    Door {
        _serve: serve,
        addr,
        key,
        narrow,
        dir,
    }
}

/// `onedoor connect KEY --server ADDR ARGS...`, stdin from `input`.
fn connect_run(d: &Door, key: &str, args: &[&str], input: &[u8]) -> Run {
    let input_path = d.dir.path().join("stdin");
    std::fs::write(&input_path, input).unwrap();
    let mut cmd = onedoor();
    cmd.arg("connect")
        .arg(key)
        .args(["--server", &d.addr.to_string()])
        .args(args)
        .env_remove("ONEDOOR_TOKEN")
        .env("RUST_LOG", "info");
    let sh = format!(
        "exec \"$0\" \"$@\" < {}",
        shell_quote(input_path.to_str().unwrap())
    );
    let mut wrapped = Command::new("sh");
    wrapped
        .arg("-c")
        .arg(sh)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    run_bounded(&mut wrapped, BOUND)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            thread::spawn(move || {
                let mut s = s;
                let mut b = [0u8; 65536];
                while let Ok(n) = s.read(&mut b) {
                    if n == 0 || s.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
                let _ = s.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    a
}

/// A one-page HTTP server.
fn http_server(body: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            thread::spawn(move || {
                let mut s = s;
                let mut b = [0u8; 4096];
                let _ = s.read(&mut b);
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    a
}

#[test]
fn stdio_forward_carries_bytes_and_only_them() {
    let d = door();
    let e = echo_server();
    let r = connect_run(&d, &d.key, &["-W", &e.to_string()], b"through one door\n");
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "through one door\n");
    let token = d
        .key
        .split('@')
        .next()
        .unwrap()
        .trim_start_matches("onedoor://");
    assert!(!r.stderr.contains(token), "the token was logged");
}

#[test]
fn wrong_fingerprint_exits_3_naming_what_answered() {
    let d = door();
    let bogus = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let e = echo_server();
    let r = connect_run(
        &d,
        &d.key,
        &["--fingerprint", bogus, "-W", &e.to_string()],
        b"x",
    );
    assert_eq!(r.code(), Some(3), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("door {} is intercepted", d.addr.port())),
        "{}",
        r.stderr
    );
    let real = d.key.split("fp=").nth(1).unwrap();
    assert!(
        r.stderr.contains(real),
        "names the fingerprint that answered: {}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
}

#[test]
fn wrong_token_exits_4() {
    let d = door();
    let tail = d.key.split('@').nth(1).unwrap();
    let wrong = format!("onedoor://{}@{tail}", "A".repeat(43));
    let r = connect_run(&d, &wrong, &["-W", "127.0.0.1:9"], b"");
    assert_eq!(r.code(), Some(4), "{}", r.stderr);
    assert!(r.stderr.contains("authentication refused"), "{}", r.stderr);
}

#[test]
fn forbidden_destination_exits_5() {
    let d = door();
    let key = d.narrow.clone();
    let e = echo_server();
    let r = connect_run(&d, &key, &["-W", &e.to_string()], b"x");
    assert_eq!(r.code(), Some(5), "{}", r.stderr);
    assert!(
        r.stderr.contains("refused by the server's allow-list"),
        "{}",
        r.stderr
    );
}

#[test]
fn unreachable_server_exits_1_and_usage_errors_exit_2() {
    let d = door();
    let closed = free_addr();
    let mut cmd = onedoor();
    cmd.args([
        "connect",
        &d.key,
        "--server",
        &closed.to_string(),
        "-W",
        "127.0.0.1:9",
    ]);
    let r = run_bounded(&mut cmd, BOUND);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("server unreachable"), "{}", r.stderr);
    for args in [
        vec!["connect", d.key.as_str(), "-L", "nope"],
        vec!["connect", d.key.as_str(), "-D", "0.0.0.0:1080"],
        vec!["connect", "127.0.0.1", "-W", "a:1"],
        vec!["connect", d.key.as_str(), "-W", "a:1", "-L", "1:b:2"],
    ] {
        let r = run_bounded(onedoor().args(&args).env_remove("ONEDOOR_TOKEN"), BOUND);
        assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
    }
}

/// Start `onedoor connect KEY ARGS...` in the background, waiting until
/// `port` accepts.
fn connect_bg(d: &Door, args: &[&str], port: SocketAddr) -> Proc {
    let mut cmd = onedoor();
    cmd.arg("connect")
        .arg(&d.key)
        .args(["--server", &d.addr.to_string()])
        .args(args)
        .env("RUST_LOG", "info");
    let mut p = Proc::spawn("connect", &mut cmd, d.dir.path()).unwrap();
    assert!(
        wait_for(BOUND, || p.exited().is_some() || accepts(port)) && p.exited().is_none(),
        "connect did not start: {}",
        p.stderr_tail(2048)
    );
    p
}

#[test]
fn local_forward_to_echo_and_curl_through_socks5() {
    let d = door();
    let e = echo_server();
    let web = http_server("hello from the far side");
    let l = free_addr();
    let s = free_addr();
    let lspec = format!("{}:{}:{}", l.port(), e.ip(), e.port());
    let dspec = s.port().to_string();
    let _c = connect_bg(&d, &["-L", &lspec, "-D", &dspec], l);
    for i in 0..3 {
        let mut c = TcpStream::connect(l).unwrap();
        c.set_read_timeout(Some(BOUND)).unwrap();
        let msg = format!("echo {i}");
        c.write_all(msg.as_bytes()).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert_eq!(out, msg);
    }
    let Some(curl) = need("socks5_curl", util::which("curl")) else {
        return;
    };
    assert!(wait_for(BOUND, || accepts(s)));
    let r = run_bounded(
        Command::new(curl).args([
            "-sS",
            "--max-time",
            "10",
            "--socks5-hostname",
            &s.to_string(),
            &format!("http://localhost:{}/", web.port()),
        ]),
        BOUND,
    );
    assert_eq!(r.code(), Some(0), "curl: {}", r.stderr);
    assert_eq!(r.stdout, "hello from the far side");
}

#[test]
fn real_ssh_through_stdio_proxy_command() {
    let Some(sshd) = need("ssh_proxy_command", Sshd::start()) else {
        return;
    };
    let d = door();
    let key_file = d.dir.path().join("key");
    std::fs::write(&key_file, &d.key).unwrap();
    let proxy = format!(
        "ProxyCommand={} connect \"$(cat {})\" --server {} -W %h:%p",
        env!("CARGO_BIN_EXE_onedoor"),
        key_file.display(),
        d.addr
    );
    let r = sshd.ssh_with(sshd.addr, &["-o", &proxy], "echo through-one-door");
    assert_eq!(r.code(), Some(0), "ssh: {}", r.stderr);
    assert_eq!(r.stdout.trim(), "through-one-door");
    let _ = Path::new("");
}
