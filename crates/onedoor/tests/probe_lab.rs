//! `onedoor probe` against the real `onedoor serve --reflect`, through the
//! lab's router with real nftables rules (issue 5, "Tests"): the cases the
//! lab's first chapter does not cover.
//!
//! - `udp_out_only`: the router lets UDP 53 out but drops the replies;
//!   the server records the hello and, asked over open door 443, says it
//!   arrived: `out-only`.
//! - `nat_rewrites_a_port`: the router DNATs door 8080 to 8081; our server
//!   answers, but saw 8081: `intercepted` (`port-rewritten`).
//! - `wrong_fingerprint_learns_nothing_in_the_lab`: a probe holding another
//!   server's fingerprint through the `web` policy sees no door open, and
//!   serve answered none of its hellos.
//!
//! (`intercept`'s captive portal is the lab's own chapter: tests/lab.rs.)
//!
//! Every process runs inside a lab namespace ([`Lab::command`]); the
//! router's extra rules are a table of this test's own, programmed over
//! netlink with `onedoor_sys::nft` (no `nft`). Needs root, network
//! namespaces and nftables: without them each test prints `SKIP <test>:
//! <why>` and passes, unless `ONEDOOR_E2E=require`, where it fails. Each
//! test takes the lowest free lab instance, bounds every step and the
//! whole, and checks that none of its namespaces is left.

#![cfg(target_os = "linux")]

#[allow(unused_imports)]
mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use onedoor_lab::plan::addr::{ROUTER_LAN_IF, ROUTER_WAN_IF};
use onedoor_lab::plan::ruleset::TABLE as LAB_TABLE;
use onedoor_lab::{AddressPlan, Instance, Lab, LabConfig, Policy, Role};
use onedoor_proto::tunnel::access_key::{AccessKey, Fingerprint};
use onedoor_sys::nft::{
    BaseChain, Chain, ChainType, CmpOp, CtKey, Expr, Family, Hook, MetaKey, NftSocket, Rule, Table,
    Verdict, CT_STATE_ESTABLISHED, CT_STATE_RELATED, REG_1, REG_2,
};
use serde_json::Value;
use util::{exclusive, run_bounded, skip, Proc, Run, TempDir};

/// The whole of one test, lab build to teardown.
const TEST_BOUND: Duration = Duration::from_secs(60);
/// `onedoor init`.
const INIT_BOUND: Duration = Duration::from_secs(15);
/// serve listening and logging that its reflector doors are bound.
const SERVE_BOUND: Duration = Duration::from_secs(10);
/// One probe run: a few doors, two tries of twice the timeout each, and
/// the arrivals question; generous for a loaded 2-core machine.
const PROBE_BOUND: Duration = Duration::from_secs(30);
/// The probe's `--timeout`: an answer in the lab takes well under 1 ms.
const PROBE_TIMEOUT: &str = "700ms";
/// What serve logs once every reflector door is bound.
const REFLECTING: &str = "answering probe hellos";
/// What serve logs (debug) for every hello it answers.
const ANSWERED: &str = "probe answered";
/// serve's metrics, on the internet's own loopback.
const METRICS: &str = "127.0.0.1:9464";
/// This test's own table on the router.
const TEST_TABLE: &str = "onedoor-probe-test";

// ---------------------------------------------------------------------------
// The lab, the server and the probe

/// Can this machine build a lab? Prints `SKIP` (or panics when required).
fn lab_available(test: &str) -> bool {
    match onedoor_lab::preflight() {
        Ok(()) => true,
        Err(e) => {
            skip(test, &e.to_string());
            false
        }
    }
}

/// One test's world. Fields drop in order: serve first, then the
/// throwaway identity, the lab last (also on panic).
struct World {
    serve: Option<Proc>,
    dir: TempDir,
    fingerprint: String,
    lab: Lab,
    started: Instant,
}

impl World {
    /// A lab with `policy` (the lowest free instance) and a throwaway
    /// server identity for its internet address.
    fn build(policy: Policy) -> World {
        let started = Instant::now();
        let lab = Lab::build(LabConfig::new(policy)).expect("build the lab");
        let dir = TempDir::new().unwrap();
        let state = dir.path().join("state");
        let mut init = util::onedoor();
        init.arg("init")
            .arg("--state-dir")
            .arg(&state)
            .args(["--name", &lab.plan().internet.to_string()]);
        let r = run_bounded(&mut init, INIT_BOUND);
        assert_eq!(r.code(), Some(0), "onedoor init: {r:?}");
        let key = AccessKey::from_str(r.stdout.trim()).expect("init prints an access key");
        let fingerprint = key.fingerprint.expect("the access key has fp=").to_string();
        World {
            serve: None,
            dir,
            fingerprint,
            lab,
            started,
        }
    }

    fn plan(&self) -> &AddressPlan {
        self.lab.plan()
    }

    /// serve's door: 443 of the internet.
    fn door(&self) -> SocketAddr {
        SocketAddr::from((self.plan().internet, 443))
    }

    /// `onedoor serve -l INTERNET:443 --reflect SPEC` inside the internet,
    /// with metrics on its loopback and every answered hello logged; waits
    /// until its reflector doors are bound and door 443 accepts.
    fn serve(&mut self, reflect: &str) {
        let mut cmd = self
            .lab
            .command(Role::Internet, env!("CARGO_BIN_EXE_onedoor"));
        cmd.arg("serve")
            .args(["-l", &self.door().to_string()])
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .args(["--reflect", reflect])
            .args(["--metrics", METRICS])
            .args(["--timeout", "500ms", "--drain-timeout", "100ms"])
            .env("RUST_LOG", "info,onedoor_net::serve=debug");
        let mut serve = Proc::spawn("serve", &mut cmd, self.dir.path()).expect("spawn serve");
        let door = self.door();
        let deadline = Instant::now() + SERVE_BOUND;
        loop {
            if let Some(status) = serve.exited() {
                panic!("serve exited ({status}) before listening");
            }
            let ready = serve.stderr().contains(REFLECTING)
                && self
                    .lab
                    .run_in(Role::Internet, || {
                        TcpStream::connect_timeout(&door, Duration::from_millis(200)).is_ok()
                    })
                    .unwrap();
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not listen on {door} and log `{REFLECTING}` within {SERVE_BOUND:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.serve = Some(serve);
    }

    /// serve's log so far, without colours.
    fn serve_log(&self) -> String {
        let log = self.serve.as_ref().map(Proc::stderr).unwrap_or_default();
        strip_ansi(&log)
    }

    /// `onedoor probe INTERNET --fingerprint FP ARGS… --timeout … --json`
    /// from the house; exit 0 and its JSON.
    fn probe(&self, fingerprint: &str, args: &[&str]) -> (Value, Run) {
        let mut cmd = self.lab.command(Role::House, env!("CARGO_BIN_EXE_onedoor"));
        cmd.arg("probe")
            .arg(self.plan().internet.to_string())
            .args(["--fingerprint", fingerprint])
            .args(args)
            .args(["--timeout", PROBE_TIMEOUT, "--json"]);
        let r = run_bounded(&mut cmd, PROBE_BOUND);
        assert_eq!(
            r.code(),
            Some(0),
            "onedoor probe: {r:?}\nserve: {}",
            self.serve_log()
        );
        eprintln!("$ onedoor probe … {}\n{}", args.join(" "), r.stderr);
        let v: Value = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("the probe's JSON: {e}: {}", r.stdout));
        (v, r)
    }

    /// What a stranger's bytes (as long as a hello, but not one) get on
    /// `to` from the house: `closed` (EOF, nothing said), `silence`,
    /// `reset`, or `foreign` (something said).
    fn stranger_sees(&self, to: SocketAddr) -> &'static str {
        self.lab
            .run_in(Role::House, || {
                let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))
                    .expect("connect from the house");
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut x: u32 = 0x2545_f491;
                let noise: Vec<u8> = (0..onedoor_proto::probe::HELLO_LEN)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect();
                s.write_all(&noise).unwrap();
                let mut got = Vec::new();
                match s.read_to_end(&mut got) {
                    Ok(_) if got.is_empty() => "closed",
                    Ok(_) => "foreign",
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => "silence",
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => "silence",
                    Err(_) if got.is_empty() => "reset",
                    Err(_) => "foreign",
                }
            })
            .unwrap()
    }

    /// serve's Prometheus text, read from inside the internet.
    fn metrics(&self) -> String {
        self.lab
            .run_in(Role::Internet, || -> std::io::Result<String> {
                let mut s =
                    TcpStream::connect_timeout(&METRICS.parse().unwrap(), Duration::from_secs(2))?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
                let mut text = String::new();
                s.read_to_string(&mut text)?;
                Ok(text)
            })
            .unwrap()
            .expect("GET /metrics")
    }

    /// Replace the router's firewall with `table`, in one atomic batch:
    /// the lab's own table goes, this test's comes.
    fn take_over_router(&self, table: Table) {
        self.lab
            .run_in(Role::Router, || {
                NftSocket::open()?.send(|b| {
                    b.delete_table(Family::Ip, LAB_TABLE);
                    b.add_table(&table);
                })
            })
            .unwrap()
            .expect("program the router");
    }

    /// Stop serve, take the lab down, and check that none of this
    /// instance's namespaces (nor its lock) is left, within the bound.
    fn finish(mut self, test: &str) {
        drop(self.serve.take());
        let instance = self.plan().instance;
        // The lab drops the namespaces, and this test's table with them.
        let _ = self.lab.run_in(Role::Router, || {
            onedoor_sys::nft::delete_table(Family::Ip, TEST_TABLE)
        });
        let World { lab, started, .. } = self;
        lab.teardown().expect("teardown");
        assert_nothing_left(instance);
        let took = started.elapsed();
        assert!(took < TEST_BOUND, "{test} took {took:?}");
        eprintln!("{test}: lab instance {instance}, {took:?} in all");
    }
}

/// `text` without ANSI escape sequences (`ESC [ … letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// No namespace or lock file of `instance` remains.
fn assert_nothing_left(instance: Instance) {
    let plan = AddressPlan::new(instance);
    for role in Role::ALL {
        let name = plan.netns(role);
        assert!(
            !onedoor_lab::netns_path(name).exists(),
            "{name} was left behind"
        );
        assert!(
            !onedoor_lab::lab_namespaces().iter().any(|n| n == name),
            "{name} is still listed"
        );
    }
    let lock = Path::new(onedoor_lab::STATE_DIR).join(format!("instance-{}.lock", instance.0));
    assert!(!lock.exists(), "{} was left behind", lock.display());
}

// ---------------------------------------------------------------------------
// nf_tables rules, as `nft` would compile them

fn ifname(key: MetaKey, name: &str) -> Vec<Expr> {
    let mut data = name.as_bytes().to_vec();
    data.resize(16, 0); // IFNAMSIZ
    vec![
        Expr::Meta { key, dreg: REG_1 },
        Expr::Cmp {
            sreg: REG_1,
            op: CmpOp::Eq,
            data,
        },
    ]
}

/// `iifname lan oifname wan`: from the house out to the internet.
fn outwards() -> Vec<Expr> {
    [
        ifname(MetaKey::IifName, ROUTER_LAN_IF),
        ifname(MetaKey::OifName, ROUTER_WAN_IF),
    ]
    .concat()
}

/// `iifname wan oifname lan`: from the internet back to the house.
fn inwards() -> Vec<Expr> {
    [
        ifname(MetaKey::IifName, ROUTER_WAN_IF),
        ifname(MetaKey::OifName, ROUTER_LAN_IF),
    ]
    .concat()
}

const TCP: u8 = 6;
const UDP: u8 = 17;

/// `meta l4proto P` then the port at `offset` of the transport header
/// (0: source, 2: destination) equal to `port`.
fn port(proto: u8, offset: u32, port: u16) -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: MetaKey::L4Proto,
            dreg: REG_1,
        },
        Expr::Cmp {
            sreg: REG_1,
            op: CmpOp::Eq,
            data: vec![proto],
        },
        Expr::TransportPayload {
            dreg: REG_1,
            offset,
            len: 2,
        },
        Expr::Cmp {
            sreg: REG_1,
            op: CmpOp::Eq,
            data: port.to_be_bytes().to_vec(),
        },
    ]
}

fn dport(proto: u8, p: u16) -> Vec<Expr> {
    port(proto, 2, p)
}

fn sport(proto: u8, p: u16) -> Vec<Expr> {
    port(proto, 0, p)
}

/// `ct state established,related`.
fn established() -> Vec<Expr> {
    vec![
        Expr::Ct {
            key: CtKey::State,
            dreg: REG_1,
        },
        Expr::Bitwise {
            reg: REG_1,
            mask: CT_STATE_ESTABLISHED | CT_STATE_RELATED,
            xor: 0,
        },
        Expr::Cmp {
            sreg: REG_1,
            op: CmpOp::Neq,
            data: 0u32.to_ne_bytes().to_vec(),
        },
    ]
}

fn rule(matches: Vec<Vec<Expr>>, verdict: Expr, comment: &str) -> Rule {
    let mut exprs = matches.concat();
    exprs.push(verdict);
    Rule {
        exprs,
        comment: comment.into(),
    }
}

fn accept() -> Expr {
    Expr::Verdict(Verdict::Accept)
}

fn drop_it() -> Expr {
    Expr::Verdict(Verdict::Drop)
}

/// `dnat to ADDR` as the lab's intercept policy compiles it.
fn dnat(to: SocketAddrV4) -> Vec<Expr> {
    vec![
        Expr::Immediate {
            dreg: REG_1,
            data: to.ip().octets().to_vec(),
        },
        Expr::Immediate {
            dreg: REG_2,
            data: to.port().to_be_bytes().to_vec(),
        },
        Expr::Dnat {
            addr: REG_1,
            port: REG_2,
        },
    ]
}

/// A `forward` filter chain that drops what no rule accepts.
fn forward(rules: Vec<Rule>) -> Chain {
    Chain {
        name: "forward".into(),
        base: Some(BaseChain {
            kind: ChainType::Filter,
            hook: Hook::Forward,
            priority: 0,
            policy: Verdict::Drop,
        }),
        rules,
    }
}

fn table(chains: Vec<Chain>) -> Table {
    Table {
        family: Family::Ip,
        name: TEST_TABLE.into(),
        flags: 0,
        sets: Vec::new(),
        chains,
    }
}

// ---------------------------------------------------------------------------
// Reading the probe's JSON

/// The ports of `state` in one transport of the JSON.
fn ports(t: &Value, state: &str) -> Vec<u16> {
    let s = t[state]["ports"]
        .as_str()
        .unwrap_or_else(|| panic!("no {state} in {t}"));
    if s.is_empty() {
        return Vec::new();
    }
    onedoor_proto::probe::PortSet::parse(s)
        .unwrap()
        .iter()
        .collect()
}

/// The named door `port` of one transport.
fn door(t: &Value, port: u16) -> &Value {
    t["doors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["port"] == port)
        .unwrap_or_else(|| panic!("door {port} is not named in {t}"))
}

/// The reason codes given for `state`'s ports.
fn codes(t: &Value, state: &str) -> Vec<String> {
    t[state]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_owned())
        .collect()
}

/// The value of an unlabelled-or-labelled sample `name{…label…}` in
/// Prometheus text, 0 when absent.
fn sample(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// ---------------------------------------------------------------------------
// The tests

/// The router lets UDP 53 out but drops its replies: the server records
/// the hello, and says so over open door 443 — `out-only`. Beside it, UDP
/// 123 goes both ways (`open`) and UDP 1194 is dropped on the way out
/// (`no-reply`, asked: the server saw nothing).
#[test]
fn udp_out_only() {
    let test = "udp_out_only";
    if !lab_available(test) {
        return;
    }
    let _x = exclusive();
    let mut w = World::build(Policy::HttpsOnly);
    w.take_over_router(table(vec![forward(vec![
        rule(
            vec![inwards(), sport(UDP, 53)],
            drop_it(),
            "UDP 53's replies never come back",
        ),
        rule(vec![established()], accept(), "replies to the house"),
        rule(
            vec![outwards(), dport(TCP, 443)],
            accept(),
            "door 443: the secure web",
        ),
        rule(vec![outwards(), dport(UDP, 53)], accept(), "UDP 53 out"),
        rule(vec![outwards(), dport(UDP, 123)], accept(), "UDP 123 out"),
    ])]));
    // TCP past 1,024 ports goes through serve's nftables redirect while the
    // few UDP doors are bound directly: both paths in one map.
    w.serve("udp:53,123,1194,tcp:443,2000-3100");

    let fp = w.fingerprint.clone();
    let (v, r) = w.probe(&fp, &["--tcp", "443", "--udp", "53,123,1194"]);
    let (t, u) = (&v["tcp"], &v["udp"]);
    assert_eq!(ports(t, "open"), [443], "{}", r.stderr);
    assert_eq!(ports(u, "out-only"), [53], "{}", r.stderr);
    assert_eq!(ports(u, "open"), [123], "{}", r.stderr);
    assert_eq!(ports(u, "no-reply"), [1194], "{}", r.stderr);
    let d53 = door(u, 53);
    assert_eq!(d53["state"], "out-only");
    assert_eq!(d53["code"], "arrived");
    assert_eq!(d53["port_seen"], 53);
    assert_eq!(
        d53["reason"],
        "the server received the datagram (on port 53) but no reply came back"
    );
    assert_eq!(
        codes(u, "no-reply"),
        ["not-arrived"],
        "the server was asked, through door 443, and saw nothing on 1194"
    );
    assert!(r.stderr.contains("  53     out-only"), "{}", r.stderr);
    // The server was asked about the silent doors through open door 443:
    // two verified TCP answers (the door, then the arrivals query), and
    // hellos that reached it on UDP 53 and 123 only.
    let log = w.serve_log();
    assert!(
        log.contains(&format!("{ANSWERED} port=443 kind=Arrivals")),
        "no arrivals query through door 443:\n{log}"
    );
    w.finish(test);
}

/// The router DNATs door 8080 to 8081 of the same server: our server
/// answers, verified, but saw 8081 — `intercepted`, "the port was
/// rewritten". Doors 443 and 8081 themselves are open.
#[test]
fn nat_rewrites_a_port() {
    let test = "nat_rewrites_a_port";
    if !lab_available(test) {
        return;
    }
    let _x = exclusive();
    let mut w = World::build(Policy::HttpsOnly);
    let internet = w.plan().internet;
    w.take_over_router(table(vec![
        Chain {
            name: "prerouting".into(),
            base: Some(BaseChain {
                kind: ChainType::Nat,
                hook: Hook::Prerouting,
                priority: -100,
                policy: Verdict::Accept,
            }),
            rules: vec![Rule {
                exprs: [
                    ifname(MetaKey::IifName, ROUTER_LAN_IF),
                    dport(TCP, 8080),
                    dnat(SocketAddrV4::new(internet, 8081)),
                ]
                .concat(),
                comment: "door 8080 is sent to 8081".into(),
            }],
        },
        forward(vec![
            rule(vec![established()], accept(), "replies to the house"),
            rule(
                vec![outwards(), dport(TCP, 443)],
                accept(),
                "door 443: the secure web",
            ),
            rule(
                vec![outwards(), dport(TCP, 8081)],
                accept(),
                "door 8081 (also where 8080 is sent)",
            ),
        ]),
    ]));
    w.serve("tcp:8080,8081");

    let fp = w.fingerprint.clone();
    let (v, r) = w.probe(&fp, &["--tcp", "443,8080,8081", "--udp", "none"]);
    let t = &v["tcp"];
    assert_eq!(ports(t, "open"), [443, 8081], "{}", r.stderr);
    assert_eq!(ports(t, "intercepted"), [8080], "{}", r.stderr);
    let d = door(t, 8080);
    assert_eq!(d["state"], "intercepted");
    assert_eq!(d["code"], "port-rewritten");
    assert_eq!(d["port_seen"], 8081);
    assert_eq!(
        d["reason"],
        "the server saw the hello arrive on port 8081: the port was rewritten on the way (NAT)"
    );
    assert!(
        r.stderr
            .contains("  8080   intercepted   the server saw the hello arrive on port 8081"),
        "{}",
        r.stderr
    );
    // Our server did answer the hello that came in on 8081 for 8080.
    let log = w.serve_log();
    assert!(log.contains(&format!("{ANSWERED} port=8081")), "{log}");
    assert!(!log.contains(&format!("{ANSWERED} port=8080")), "{log}");
    w.finish(test);
}

/// Through the `web` policy, a probe holding another server's fingerprint
/// learns nothing: doors 80 and 443 reach our server but get no answer
/// it could verify (intercepted), every other door is filtered, UDP gets
/// no reply, and serve answered none of its hellos (its debug log names
/// every hello it answers; its metrics count them as unmatched bytes).
/// Then the right fingerprint, as a control, finds 443 open and is logged.
#[test]
fn wrong_fingerprint_learns_nothing_in_the_lab() {
    let test = "wrong_fingerprint_learns_nothing_in_the_lab";
    if !lab_available(test) {
        return;
    }
    let _x = exclusive();
    let mut w = World::build(Policy::Web);
    let tcp = "22,25,80,443,1194,3389,8080";
    let udp = "53,123,443,1194";
    w.serve(&format!("tcp:{tcp},udp:{udp}"));

    let other = Fingerprint::from_digest([5; 32]).to_string();
    assert_ne!(other, w.fingerprint);
    let (v, r) = w.probe(&other, &["--tcp", tcp, "--udp", udp]);
    assert_eq!(v["fingerprint"], other);
    let (t, u) = (&v["tcp"], &v["udp"]);
    for s in ["open", "out-only"] {
        assert_eq!(t[s]["count"], 0, "{s}: {}", r.stderr);
        assert_eq!(u[s]["count"], 0, "{s}: {}", r.stderr);
    }
    assert_eq!(ports(t, "intercepted"), [80, 443], "{}", r.stderr);
    // What it saw is what any stranger's bytes get from this serve (no
    // route): the connection closed without a word.
    let stranger = w.stranger_sees(w.door());
    assert_eq!(stranger, "closed", "52 bytes of noise on door 443");
    for p in [80, 443] {
        assert_eq!(door(t, p)["code"], stranger, "door {p}: {}", r.stderr);
    }
    assert_eq!(
        ports(t, "filtered"),
        [22, 25, 1194, 3389, 8080],
        "{}",
        r.stderr
    );
    assert_eq!(ports(u, "no-reply"), [53, 123, 443, 1194], "{}", r.stderr);
    assert_eq!(
        codes(u, "no-reply"),
        ["unknown"],
        "no open door to ask the server through"
    );
    assert!(
        r.stderr
            .contains("None of the 7 doors probed is open to your server."),
        "{}",
        r.stderr
    );

    // serve answered nothing: no hello in its log, and the hellos that got
    // through were closed as bytes that match nothing.
    let log = w.serve_log();
    assert!(!log.contains(ANSWERED), "serve answered a stranger:\n{log}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let m = w.metrics();
        if sample(&m, "onedoor_errors_total", "kind=\"no_match\"") >= 2.0 {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "no unmatched connections counted:\n{m}\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        sample(&metrics, "onedoor_connections_total", ""),
        0.0,
        "nothing was routed:\n{metrics}"
    );

    // The control: the right fingerprint opens door 443, and it is logged.
    let fp = w.fingerprint.clone();
    let (v, r) = w.probe(&fp, &["--tcp", "443", "--udp", "none"]);
    assert_eq!(ports(&v["tcp"], "open"), [443], "{}", r.stderr);
    assert!(
        w.serve_log().contains(&format!("{ANSWERED} port=443")),
        "{}",
        w.serve_log()
    );
    w.finish(test);
}
