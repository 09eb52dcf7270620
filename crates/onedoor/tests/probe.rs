//! End-to-end tests of `onedoor probe` (SPEC §3): the real binary against
//! a small reflector built here from the pure probe codec (its doors open,
//! a captive portal, a silent door, closed doors, UDP answering, out-only
//! and closed), against the real `onedoor serve --reflect` when it can run
//! here, and the `--report` page rendered by a real browser (headless
//! Chromium): a PNG, and no console errors.
//!
//! Traffic goes to 127.0.0.1 only. A test whose peer is missing prints
//! `SKIP <test>: <why>` and passes, unless `ONEDOOR_E2E=require`.

mod util;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use onedoor_proto::probe::{
    fingerprint, Arrival, Hello, HelloKind, HelloParse, ProbeKey, SigningKey, HELLO_LEN,
};
use onedoor_proto::tunnel::access_key::Fingerprint;
use serde_json::Value;
use util::*;

/// A probe run takes a few timeouts; bound it generously.
const RUN_BOUND: Duration = Duration::from_secs(60);

fn signer() -> SigningKey {
    SigningKey::from_bytes(&[23; 32])
}

fn fp() -> Fingerprint {
    Fingerprint::from_digest(fingerprint(&signer().verifying_key().to_bytes()))
}

fn key() -> ProbeKey {
    ProbeKey::new(*fp().digest())
}

// ---------------------------------------------------------------------------
// A reflector of our own, on threads

/// What UDP hellos arrived, shared by the doors of one test.
type Log = Arc<Mutex<Vec<(Hello, u16)>>>;

/// Our reflector on a TCP door: replies to hellos (and arrivals queries).
fn reflector_door(log: &Log) -> u16 {
    door(log, |mut s, log, port| {
        let mut buf = [0u8; HELLO_LEN];
        if s.read_exact(&mut buf).is_err() {
            return;
        }
        let HelloParse::Hello(h) = key().parse(&buf) else {
            return;
        };
        let mut out = key().reply(&h, port, &signer()).to_vec();
        if h.kind == HelloKind::Arrivals {
            let list: Vec<Arrival> = log
                .lock()
                .unwrap()
                .iter()
                .filter(|(a, _)| a.run == h.run)
                .map(|(a, p)| Arrival {
                    nonce: a.nonce,
                    port_seen: *p,
                })
                .collect();
            out.extend(key().arrivals_report(&h, &list, &signer()));
        }
        let _ = s.write_all(&out);
    })
}

/// A captive portal: answers every connection with a redirect.
fn portal_door(log: &Log) -> u16 {
    door(log, |mut s, _, _| {
        let _ = s.write_all(b"HTTP/1.1 302 Found\r\nLocation: http://portal.invalid/\r\n\r\n");
    })
}

/// A door that completes the handshake and never says a word.
fn silent_door(log: &Log) -> u16 {
    door(log, |mut s, _, _| {
        let mut sink = [0u8; 256];
        while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    })
}

fn door(log: &Log, serve: fn(TcpStream, Log, u16)) -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let log = log.clone();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            let log = log.clone();
            let _ = s.set_read_timeout(Some(IO_BOUND));
            thread::spawn(move || serve(s, log, port));
        }
    });
    port
}

/// A UDP door that records hellos, and replies when `reply`.
fn udp_door(log: &Log, reply: bool) -> u16 {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = s.local_addr().unwrap().port();
    let log = log.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let HelloParse::Hello(h) = key().parse_datagram(&buf[..n]) else {
                continue;
            };
            log.lock().unwrap().push((h, port));
            if reply {
                let _ = s.send_to(&key().reply(&h, port, &signer()), from);
            }
        }
    });
    port
}

fn closed_tcp() -> u16 {
    free_addr().port()
}

fn closed_udp() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn list(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn probe(args: &[String]) -> Run {
    let mut cmd = onedoor();
    cmd.arg("probe").args(args);
    run_bounded(&mut cmd, RUN_BOUND)
}

/// The `ports` of `state` in a JSON transport, parsed.
fn ports(v: &Value, state: &str) -> Vec<u16> {
    let s = v[state]["ports"].as_str().unwrap();
    if s.is_empty() {
        return Vec::new();
    }
    onedoor_proto::probe::PortSet::parse(s)
        .unwrap()
        .iter()
        .collect()
}

// ---------------------------------------------------------------------------
// Usage and failures

#[test]
fn usage_errors_exit_2_and_name_the_flag() {
    let good = fp().to_string();
    let other = Fingerprint::from_digest([1; 32]).to_string();
    let token = "A".repeat(43);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (args!["127.0.0.1"].to_vec(), "no fingerprint"),
        (
            args!["127.0.0.1", "--fingerprint", "SHA256:nope"].to_vec(),
            "--fingerprint",
        ),
        (
            args!["127.0.0.1", "--fingerprint", good, "--tcp", "1-70000"].to_vec(),
            "--tcp",
        ),
        (
            args!["127.0.0.1", "--fingerprint", good, "--udp", "0"].to_vec(),
            "--udp",
        ),
        (
            args!["127.0.0.1", "--fingerprint", good, "--timeout", "soon"].to_vec(),
            "--timeout",
        ),
        (
            args!["127.0.0.1", "--fingerprint", good, "--timeout", "0s"].to_vec(),
            "--timeout",
        ),
        (
            args!["127.0.0.1", "--fingerprint", good, "--rate", "fast"].to_vec(),
            "--rate",
        ),
        (
            args!["127.0.0.1", "--fingerprint", good, "--concurrency", "0"].to_vec(),
            "--concurrency",
        ),
        (
            args![
                "127.0.0.1",
                "--fingerprint",
                good,
                "--tcp",
                "none",
                "--udp",
                "none"
            ]
            .to_vec(),
            "nothing to probe",
        ),
        (
            args![
                "127.0.0.1",
                "--fingerprint",
                good,
                "--report",
                "/nonexistent/dir/r.html"
            ]
            .to_vec(),
            "--report",
        ),
        (args!["bad host name!"].to_vec(), "SERVER"),
        (
            args![
                format!("onedoor://{token}@127.0.0.1:443?fp={good}"),
                "--fingerprint",
                other
            ]
            .to_vec(),
            "differs from the access key",
        ),
        (
            args![format!("onedoor://{token}@127.0.0.1:443")].to_vec(),
            "no fingerprint",
        ),
    ];
    for (a, want) in cases {
        let r = probe(&a);
        assert_eq!(r.code(), Some(2), "{a:?}: {r:?}");
        assert!(
            r.stderr.contains(want),
            "{a:?}: want {want:?} in {}",
            r.stderr
        );
        assert!(r.stdout.is_empty(), "{a:?}: {}", r.stdout);
        assert!(!r.stderr.contains(&token), "the token is never printed");
    }
}

#[test]
fn a_map_that_cannot_be_written_is_exit_1() {
    // The map is made (one refused door), but the report can't be written:
    // /proc/self exists, nothing can be created in it.
    let r = probe(&args![
        "127.0.0.1",
        "--fingerprint",
        fp(),
        "--tcp",
        closed_tcp(),
        "--udp",
        "none",
        "--report",
        "/proc/self/report.html"
    ]);
    assert_eq!(r.code(), Some(1), "{r:?}");
    assert!(r.stderr.contains("writing the report"), "{}", r.stderr);
    assert!(
        r.stderr.contains("rejected"),
        "the table came first: {}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------
// The map, against our own reflector

#[test]
fn maps_every_state_and_draws_the_house() {
    let _x = exclusive();
    let log: Log = Arc::default();
    let open = reflector_door(&log);
    let open2 = reflector_door(&log);
    let portal = portal_door(&log);
    let silent = silent_door(&log);
    let closed = closed_tcp();
    let udp_open = udp_door(&log, true);
    let udp_out_only = udp_door(&log, false);
    let udp_closed = closed_udp();
    let dir = TempDir::new().unwrap();
    let page = dir.path().join("egress.html");
    let tcp = [open, open2, portal, silent, closed];
    let udp = [udp_open, udp_out_only, udp_closed];
    // An access key: its fp= pins the server, its port is a door too.
    let key = format!("onedoor://{}@127.0.0.1:{open}?fp={}", "A".repeat(43), fp());
    let r = probe(&args![
        key,
        "--tcp",
        list(&tcp),
        "--udp",
        list(&udp),
        "--timeout",
        "400ms",
        "--json",
        "--report",
        page.display()
    ]);
    assert_eq!(r.code(), Some(0), "{r:?}");

    // JSON on stdout.
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    assert_eq!(v["schema"], 1);
    assert_eq!(v["server"], "127.0.0.1");
    assert_eq!(v["fingerprint"], fp().to_string());
    let t = &v["tcp"];
    let mut want_open = vec![open, open2];
    want_open.sort();
    assert_eq!(ports(t, "open"), want_open);
    let mut want_intercepted = vec![portal, silent];
    want_intercepted.sort();
    assert_eq!(ports(t, "intercepted"), want_intercepted);
    assert_eq!(ports(t, "rejected"), [closed]);
    assert_eq!(t["filtered"]["count"], 0);
    let doors = t["doors"].as_array().unwrap();
    let by_port = |p: u16| doors.iter().find(|d| d["port"] == p).unwrap();
    assert_eq!(by_port(portal)["code"], "foreign");
    assert_eq!(by_port(portal)["what"], "`HTTP/1.1 302 Found`");
    assert_eq!(by_port(silent)["code"], "silence");
    assert_eq!(t["rejected"]["reasons"][0]["code"], "refused");
    let u = &v["udp"];
    assert_eq!(ports(u, "open"), [udp_open]);
    assert_eq!(ports(u, "out-only"), [udp_out_only]);
    assert_eq!(ports(u, "rejected"), [udp_closed]);
    assert_eq!(u["doors"].as_array().unwrap().len(), 2);

    // The table on stderr: named doors with reasons, the rest as ranges.
    let e = &r.stderr;
    assert!(
        e.contains(&format!(
            "  {portal:<6} intercepted   something else answered: `HTTP/1.1 302 Found`"
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "  {silent:<6} intercepted   the connection was accepted, then nothing came back"
        )),
        "{e}"
    );
    assert!(e.contains(&format!("  {udp_out_only:<6} out-only")), "{e}");
    assert!(
        e.contains(&format!("  rejected          1  {closed}\n")),
        "{e}"
    );
    assert!(e.contains("2 of the 5 doors probed are open"), "{e}");
    assert!(
        !e.contains('\u{1b}'),
        "no progress bar when stderr is not a terminal"
    );
    assert!(!e.contains(&"A".repeat(43)), "the token is never printed");

    // The page, then a real browser's view of it.
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("2 of the 5 doors probed are open"));
    assert!(!html.to_ascii_lowercase().contains("<script"));
    browser_renders(&page, "maps_every_state_and_draws_the_house");
}

#[test]
fn without_an_open_door_udp_is_no_reply_and_says_why() {
    let log: Log = Arc::default();
    let out_only = udp_door(&log, false);
    let closed = closed_tcp();
    let r = probe(&args![
        format!("127.0.0.1:{}", closed_tcp()),
        "--fingerprint",
        fp(),
        "--tcp",
        closed,
        "--udp",
        out_only,
        "--timeout",
        "300ms",
        "--json"
    ]);
    assert_eq!(r.code(), Some(0), "{r:?}");
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(ports(&v["udp"], "no-reply"), [out_only]);
    assert_eq!(v["udp"]["no-reply"]["reasons"][0]["code"], "unknown");
    let e = &r.stderr;
    assert!(
        e.contains(&format!(
            "Whether datagrams to UDP {out_only} arrive is unknown"
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!("Door {closed} is not open to your server")),
        "{e}"
    );
}

#[test]
fn a_wrong_fingerprint_learns_nothing() {
    let log: Log = Arc::default();
    let open = reflector_door(&log);
    let r = probe(&args![
        "127.0.0.1",
        "--fingerprint",
        Fingerprint::from_digest([5; 32]),
        "--tcp",
        open,
        "--udp",
        "none",
        "--timeout",
        "300ms",
        "--json"
    ]);
    assert_eq!(r.code(), Some(0), "{r:?}");
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["tcp"]["open"]["count"], 0);
    assert_eq!(ports(&v["tcp"], "intercepted"), [open]);
}

// ---------------------------------------------------------------------------
// The real reflector

/// `onedoor init` then `onedoor serve --reflect` on loopback, probed by the
/// real binary. Runs once serve can load the identity `init` makes; until
/// then it says so and passes (this is a feature still being wired, not a
/// missing peer, so `ONEDOOR_E2E=require` doesn't fail it).
#[test]
fn maps_the_real_reflector() {
    let t = "maps_the_real_reflector";
    let _x = exclusive();
    let dir = TempDir::new().unwrap();
    let state = dir.path().join("state");
    let door = free_addr();
    let mut init = onedoor();
    init.args(args![
        "init",
        "--state-dir",
        state.display(),
        "--name",
        "127.0.0.1",
        "--port",
        door.port()
    ]);
    let r = run_bounded(&mut init, Duration::from_secs(30));
    if r.code() != Some(0) {
        panic!("{t}: `onedoor init` is not usable yet: {}", r.stderr.trim());
    }
    let access_key = r.stdout.trim().to_owned();
    assert!(access_key.starts_with("onedoor://"), "{}", r.stdout);
    let reflected = [free_addr().port(), free_addr().port()];
    let closed = closed_tcp();
    let udp = closed_udp();
    let spec = format!("tcp:{},udp:{udp}", list(&reflected));
    let mut cmd = onedoor();
    cmd.args(args![
        "serve",
        "-l",
        door,
        "--state-dir",
        state.display(),
        "--reflect",
        spec
    ]);
    let mut serve = Proc::spawn("serve", &mut cmd, dir.path()).unwrap();
    let up = wait_for(START_BOUND, || serve.exited().is_some() || accepts(door));
    if !up || serve.exited().is_some() {
        let err = serve.stderr();
        assert!(
            err.contains("--reflect") || err.contains("identity") || err.contains("init"),
            "serve --reflect failed for another reason: {err}"
        );
        panic!("{t}: serve --reflect does not start yet: {}", err.trim());
    }
    for &p in &reflected {
        assert!(
            wait_for(START_BOUND, || accepts((Ipv4Addr::LOCALHOST, p).into())),
            "reflector door {p} never accepted: {}",
            serve.stderr()
        );
    }
    let mut tcp = reflected.to_vec();
    tcp.extend([door.port(), closed]);
    let r = probe(&args![
        access_key,
        "--tcp",
        list(&tcp),
        "--udp",
        udp,
        "--timeout",
        "500ms",
        "--json"
    ]);
    assert_eq!(r.code(), Some(0), "{r:?}\nserve: {}", serve.stderr());
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let mut want_open = vec![reflected[0], reflected[1], door.port()];
    want_open.sort();
    assert_eq!(ports(&v["tcp"], "open"), want_open, "{}", r.stderr);
    assert_eq!(ports(&v["tcp"], "rejected"), [closed]);
    assert_eq!(ports(&v["udp"], "open"), [udp], "{}", r.stderr);
}

// ---------------------------------------------------------------------------
// The page in a real browser

/// Headless Chromium opens the page: a screenshot must come out, and the
/// console must stay quiet. The PNG is kept beside the page (and copied to
/// `$ONEDOOR_REPORT_PNG` when set, to look at).
fn browser_renders(page: &Path, test: &str) {
    let Some(chromium) = need(
        test,
        which("chromium").or_else(|_| which("chromium-browser")),
    ) else {
        return;
    };
    let dir = page.parent().unwrap();
    let png = dir.join("egress.png");
    let profile = dir.join("chromium-profile");
    let url = format!("file://{}", page.display());
    let base = |cmd: &mut Command| {
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    };
    let mut shot = Command::new(&chromium);
    base(&mut shot);
    shot.arg("--window-size=1000,2400")
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url);
    let r = run_bounded(&mut shot, Duration::from_secs(90));
    assert_eq!(r.code(), Some(0), "chromium --screenshot: {r:?}");
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot: {e}; {r:?}"));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1000, 2400));
    assert!(
        bytes.len() > 30_000,
        "an almost empty picture: {} bytes",
        bytes.len()
    );
    no_console_errors(&r.stderr);

    let mut dom = Command::new(&chromium);
    base(&mut dom);
    dom.arg("--dump-dom").arg(&url);
    let r = run_bounded(&mut dom, Duration::from_secs(90));
    assert_eq!(r.code(), Some(0), "chromium --dump-dom: {r:?}");
    no_console_errors(&r.stderr);
    assert!(r.stdout.contains("<svg"), "the browser saw no SVG");
    assert!(r.stdout.contains("The doors of your network"));
    if let Some(keep) = std::env::var_os("ONEDOOR_REPORT_PNG") {
        std::fs::copy(&png, PathBuf::from(keep)).unwrap();
    }
}

fn no_console_errors(stderr: &str) {
    for line in stderr.lines() {
        assert!(
            !(line.contains(":CONSOLE(")
                || line.contains("Uncaught")
                || line.contains("Failed to load resource")
                || line.contains("Refused to")),
            "console: {line}"
        );
    }
}
