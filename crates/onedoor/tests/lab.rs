//! End-to-end tests of `onedoor lab` (SPEC §6): the whole story per policy
//! through the real binary, nothing left behind, interrupted and killed
//! runs, the refusal without root, and the `onedoor_lab` test helper that
//! later firewall-facing tests reuse.
//!
//! They need root and network namespaces. Without them each test prints
//! `SKIP <test>: <why>` and passes, unless `ONEDOOR_E2E=require` (CI),
//! where it fails. Tests that run the binary use fixed instance numbers
//! (200 and up) so they can run in parallel with each other and with a
//! developer's own lab (instance 0).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use onedoor_lab::{AddressPlan, Instance, Lab, LabConfig, Policy, Role};

const BIN: &str = env!("CARGO_BIN_EXE_onedoor");
/// The whole story of one policy must end within this (SPEC: under a minute).
const STORY_BOUND: Duration = Duration::from_secs(60);

fn required() -> bool {
    std::env::var("ONEDOOR_E2E").as_deref() == Ok("require")
}

/// Can this machine run a lab? Prints `SKIP` (or panics when required).
fn lab_available(test: &str) -> bool {
    match onedoor_lab::preflight() {
        Ok(()) => true,
        Err(e) if required() => panic!("{test}: cannot run with ONEDOOR_E2E=require: {e}"),
        Err(e) => {
            eprintln!("SKIP {test}: {e}");
            false
        }
    }
}

/// Wait for `child` at most `bound`; kill it if it overstays.
fn wait_bounded(child: &mut Child, bound: Duration) -> ExitStatus {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "onedoor lab (pid {}) did not finish within {bound:?}",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Nothing of `instance` may remain: no namespace, no lock file, no serve.
fn assert_nothing_left(instance: Instance) {
    let plan = AddressPlan::new(instance);
    for role in Role::ALL {
        let path = onedoor_lab::netns_path(plan.netns(role));
        assert!(!path.exists(), "{} was left behind", path.display());
    }
    let lock = Path::new(onedoor_lab::STATE_DIR).join(format!("instance-{}.lock", instance.0));
    assert!(!lock.exists(), "{} was left behind", lock.display());
    assert!(
        serve_pids(&plan).is_empty(),
        "an `onedoor serve` of instance {instance} outlived its lab"
    );
    let dir = onedoor_lab::runtime_dir(instance);
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

/// Pids of `onedoor serve` processes listening for `plan`'s internet.
fn serve_pids(plan: &AddressPlan) -> Vec<u32> {
    let needle = format!("{}:443", plan.internet);
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(" serve ") && cmd.contains(&needle)
        })
        .collect()
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("onedoor-lab-test-{}-{name}", std::process::id()))
}

/// Run the whole story for `policy` as instance `n` and check everything
/// the user is promised.
fn story(test: &str, policy: Policy, n: u8) {
    if !lab_available(test) {
        return;
    }
    let instance = Instance(n);
    let report = temp_path(&format!("{}.html", policy.name()));
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args([
            "lab",
            "--policy",
            policy.name(),
            "--json",
            "--instance",
            &n.to_string(),
        ])
        .arg("--report")
        .arg(&report)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn onedoor lab");
    // Read both pipes on threads so neither can fill up and stall the lab.
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(out).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
    let status = wait_bounded(&mut child, STORY_BOUND);
    let elapsed = started.elapsed();
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "{test}: exit {status}\n{stderr}");
    assert!(elapsed < STORY_BOUND, "{test}: the story took {elapsed:?}");

    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(json["ok"], true, "{stdout}");
    let run = &json["runs"][0];
    assert_eq!(run["policy"], policy.name());
    assert_eq!(run["plan"]["house_ns"], AddressPlan::new(instance).house_ns);
    assert_eq!(run["verdict"]["holds"], true, "{stderr}");
    let steps = run["steps"].as_array().unwrap();
    for step in steps {
        assert_eq!(step["ok"], true, "{test}: step {step}\n{stderr}");
    }
    let outcome = |id: &str| {
        steps
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["observed"]["outcome"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("{test}: no step {id}"))
    };
    // Door 22 is blocked the way the policy says, and the library is
    // reached through door 443 all the same.
    let blocked = if policy == Policy::WebReject {
        "refused"
    } else {
        "dropped"
    };
    assert_eq!(outcome("library-door-22"), blocked);
    assert_eq!(outcome("crosswords-door-1194"), blocked);
    assert_eq!(outcome("library-door-443"), "reached");
    assert_eq!(outcome("website-door-443"), "reached");
    let door80 = match policy {
        Policy::Web | Policy::WebReject => "reached",
        Policy::Intercept => "intercepted",
        Policy::HttpsOnly | Policy::ProxyOnly => "dropped",
    };
    assert_eq!(outcome("website-door-80"), door80);
    if policy == Policy::ProxyOnly {
        assert_eq!(outcome("proxy-door-22"), "refused");
        let via = steps
            .iter()
            .find(|s| s["id"] == "library-door-443")
            .unwrap();
        assert_eq!(via["path"], "through-proxy");
    }

    // The tunnel chapter: onedoor connect in the house, through door 443,
    // the library, the crosswords (UDP) and a throughput figure — through
    // the router's proxy where it is the only way out, and the way
    // `--transport auto` chooses (fed the map) past the intercepting
    // router; the way is told and kept in the JSON.
    let tunnel_steps = [
        "tunnel-connect",
        "library-tunnel-443",
        "crosswords-tunnel-443",
        "throughput-tunnel-443",
    ];
    let serve_args = run["serve_args"].as_array().unwrap();
    assert!(
        serve_args.iter().any(|a| a == "--tunnel"),
        "{test}: serve carries the tunnel: {serve_args:?}"
    );
    let tunnel = &run["tunnel"];
    assert_eq!(tunnel["connect_args"][0], "connect", "{test}: {tunnel}");
    assert!(
        !tunnel.to_string().contains("onedoor://") || tunnel.to_string().contains("TOKEN@"),
        "{test}: the token is not shown: {tunnel}"
    );
    for id in tunnel_steps {
        assert_eq!(outcome(id), "reached", "{test}: {id}\n{stderr}");
    }
    assert!(tunnel["not_tried"].is_null(), "{test}: {tunnel}");
    let bytes = tunnel["throughput"]["bytes"].as_u64().unwrap();
    let ms = tunnel["throughput"]["ms"].as_u64().unwrap();
    let mbps = tunnel["throughput"]["mb_per_s"].as_f64().unwrap();
    assert!(bytes > 0 && mbps > 0.0, "{test}: {tunnel}");
    assert!(ms <= 5_000, "{test}: the push is bounded: {tunnel}");
    assert!(
        stderr.contains("the crosswords on UDP door 1194, through the tunnel on door 443: reached: it answered \"crosswords: "),
        "{stderr}"
    );
    let verdict = run["verdict"]["text"].as_str().unwrap();
    assert!(
        verdict.contains("the crosswords on UDP 1194"),
        "{test}: {verdict}"
    );
    let args: Vec<&str> = tunnel["connect_args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let way = tunnel["way"].as_str().unwrap_or_default();
    match policy {
        Policy::ProxyOnly => {
            let proxy = format!("http://{}", AddressPlan::new(instance).proxy());
            assert_eq!(tunnel["proxy"], proxy.as_str(), "{test}: {tunnel}");
            assert!(
                args.windows(2).any(|w| w == ["--proxy", proxy.as_str()]),
                "{test}: {args:?}"
            );
            assert_eq!(tunnel["transport"], "tls");
            assert_eq!(way, "through the router's HTTP proxy to door 443");
            assert!(
                stderr.contains(
                    "✓ onedoor connect in the house, through the router's HTTP proxy to door 443: reached"
                ),
                "{stderr}"
            );
            assert!(
                verdict.contains(
                    "Through the same proxy and door 443, onedoor connect's tunnel carried"
                ),
                "{test}: {verdict}"
            );
            assert!(!stderr.contains("cannot use a proxy"), "{stderr}");
        }
        Policy::Intercept => {
            assert_eq!(tunnel["transport"], "auto", "{test}: {tunnel}");
            assert_eq!(tunnel["map_fed"], true, "{test}: {tunnel}");
            assert!(tunnel["proxy"].is_null());
            assert!(
                args.windows(2).any(|w| w == ["--transport", "auto"]) && args.contains(&"--map"),
                "{test}: {args:?}"
            );
            let said = tunnel["auto_said"].as_array().unwrap();
            assert!(
                said.iter()
                    .any(|l| l.as_str().unwrap().starts_with("auto: tls on door 443 (")),
                "{test}: connect said which way: {tunnel}"
            );
            assert!(
                way.starts_with(
                    "auto took tls on door 443: TLS straight to the door is the fastest way; \
                     the map it was fed found door 443 open to our own key, door 80 intercepted"
                ),
                "{test}: {way}"
            );
            assert!(
                stderr.contains(
                    "(auto took tls on door 443: TLS straight to the door is the fastest way)"
                ),
                "{stderr}"
            );
        }
        _ => {
            assert_eq!(tunnel["transport"], "tls", "{test}: {tunnel}");
            assert!(tunnel["proxy"].is_null());
            assert_eq!(way, "TLS straight to door 443");
        }
    }

    // The first chapter: the probe's map of the doors, checked against
    // the policy, whole in the JSON.
    check_map(test, policy, &run["map"], &stderr);

    // The narration tells it in words.
    assert!(
        stderr.contains("Verdict: The router blocked door 22"),
        "{stderr}"
    );
    assert!(stderr.contains("$ onedoor serve -l "), "{stderr}");

    // The report: one self-contained page, with the probe's own picture
    // of the house and its doors.
    let html = std::fs::read_to_string(&report).expect("the report was written");
    let _ = std::fs::remove_file(&report);
    assert!(html.contains("<svg") && html.contains(policy.name()));
    assert!(html.contains("First, the map of the doors"), "{test}");
    assert!(
        html.contains("65,535 doors to the outside, one square each"),
        "{test}: the probe's house picture is embedded"
    );
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("https://"));
    assert!(html.contains("Through the tunnel"), "{test}");
    assert!(html.contains("Throughput through the firewall"), "{test}");
    assert!(html.contains(r#"<p class="way">The way: "#), "{test}");
    if policy == Policy::ProxyOnly {
        assert!(
            html.contains("through the proxy and the tunnel on door 443"),
            "{test}"
        );
    }

    assert_nothing_left(instance);
}

/// What the story's map (top100 TCP, UDP 53,123,443,1194) must show under
/// `policy`: the TCP doors open, intercepted, rejected and filtered, and
/// the state of every UDP door; and the map in words.
fn expected_map(policy: Policy) -> ([&'static str; 2], [usize; 2], &'static str, &'static str) {
    // ([open, intercepted], [rejected, filtered], udp state, words)
    match policy {
        Policy::Web => (
            ["80,443", ""],
            [0, 98],
            "no-reply",
            "doors 80 and 443 are open; 98 others are dropped; UDP 53, 123, 443 and 1194: no reply",
        ),
        Policy::HttpsOnly => (
            ["443", ""],
            [0, 99],
            "no-reply",
            "door 443 is open; 99 others are dropped; UDP 53, 123, 443 and 1194: no reply",
        ),
        Policy::WebReject => (
            ["80,443", ""],
            [98, 0],
            "rejected",
            "doors 80 and 443 are open; 98 others are refused; UDP 53, 123, 443 and 1194: refused",
        ),
        Policy::Intercept => (
            ["443", "80"],
            [0, 98],
            "no-reply",
            "door 443 is open; door 80 is intercepted; 98 others are dropped; \
             UDP 53, 123, 443 and 1194: no reply",
        ),
        Policy::ProxyOnly => (
            ["", ""],
            [0, 100],
            "no-reply",
            "no door is open straight; all 100 are dropped; UDP 53, 123, 443 and 1194: no reply",
        ),
    }
}

fn check_map(test: &str, policy: Policy, map: &serde_json::Value, stderr: &str) {
    let ([open, intercepted], [rejected, filtered], udp, words) = expected_map(policy);
    assert_eq!(map["ok"], true, "{test}: {map}\n{stderr}");
    assert_eq!(map["mismatches"], serde_json::json!([]), "{test}");
    assert_eq!(map["words"], words, "{test}");
    // The probe's own JSON, whole: it reads back as the probe's schema.
    let probe: onedoor_proto::report::json::ProbeJson =
        serde_json::from_value(map["probe"].clone()).expect("the probe's JSON");
    assert_eq!(probe.tcp.probed.count, 100);
    assert_eq!(probe.tcp.open.ports, open, "{test}");
    assert_eq!(probe.tcp.intercepted.ports, intercepted, "{test}");
    assert_eq!(probe.tcp.rejected.count, rejected, "{test}");
    assert_eq!(probe.tcp.filtered.count, filtered, "{test}");
    assert_eq!(probe.udp.probed.ports, "53,123,443,1194");
    let udp_group = match udp {
        "rejected" => &probe.udp.rejected,
        _ => &probe.udp.no_reply,
    };
    assert_eq!(udp_group.ports, "53,123,443,1194", "{test}: UDP");
    if !open.is_empty() {
        assert!(
            probe.tcp.open.reasons.iter().all(|r| r.code == "verified"),
            "{test}: open means verified by the server's key"
        );
    }
    // Told first, in words, with the commands that made it.
    let told = stderr
        .find(&format!("✓ the map: {words} (as policy {policy} says)"))
        .unwrap_or_else(|| panic!("{test}: the map is not told:\n{stderr}"));
    let tried = stderr.find("straight through the router").unwrap();
    assert!(told < tried, "{test}: the map comes first");
    assert!(stderr.contains("$ onedoor init --state-dir "), "{stderr}");
    assert!(
        stderr.contains("--reflect tcp:top100,udp:53,123,443,1194"),
        "{stderr}"
    );
    assert!(stderr.contains("(in the house)"), "{stderr}");
    // Fast: about a second for the map.
    assert!(
        map["ms"].as_u64().unwrap() < 10_000,
        "{test}: the map took {} ms",
        map["ms"]
    );
}

#[test]
fn story_web() {
    story("story_web", Policy::Web, 201);
}

#[test]
fn story_https_only() {
    story("story_https_only", Policy::HttpsOnly, 202);
}

#[test]
fn story_web_reject() {
    story("story_web_reject", Policy::WebReject, 203);
}

#[test]
fn story_intercept() {
    story("story_intercept", Policy::Intercept, 204);
}

#[test]
fn story_proxy_only() {
    story("story_proxy_only", Policy::ProxyOnly, 205);
}

/// Start a lab as instance `n`, wait for a line of the narration that
/// contains `marker`, and return the child with its stderr so far.
fn start_until(n: u8, marker: &str) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(["lab", "--policy", "web", "--instance", &n.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn onedoor lab");
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(marker) {
                    return (child, rx);
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no `{marker}` in the narration within 20 s:\n{seen}");
            }
        }
    }
}

fn rest(rx: &mpsc::Receiver<String>) -> String {
    let mut s = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        s.push_str(&line);
        s.push('\n');
    }
    s
}

/// A signal mid-story: the lab stops, says so, exits 1, and leaves nothing.
fn interrupted(test: &str, n: u8, marker: &str, signal: Signal, name: &str) {
    if !lab_available(test) {
        return;
    }
    let (mut child, rx) = start_until(n, marker);
    kill(Pid::from_raw(child.id() as i32), signal).expect("signal the lab");
    let status = wait_bounded(&mut child, Duration::from_secs(10));
    let stderr = rest(&rx);
    assert_eq!(status.code(), Some(1), "{test}: {status}\n{stderr}");
    assert!(
        stderr.contains(&format!("interrupted by {name}")),
        "{test}:\n{stderr}"
    );
    assert_nothing_left(Instance(n));
}

#[test]
fn sigterm_while_knocking_on_doors() {
    interrupted(
        "sigterm_while_knocking_on_doors",
        210,
        "straight through the router",
        Signal::SIGTERM,
        "SIGTERM",
    );
}

#[test]
fn sigterm_while_mapping_the_doors() {
    interrupted(
        "sigterm_while_mapping_the_doors",
        214,
        "--reflect tcp:top100",
        Signal::SIGTERM,
        "SIGTERM",
    );
}

#[test]
fn sigterm_while_serve_runs() {
    interrupted(
        "sigterm_while_serve_runs",
        211,
        "$ onedoor serve",
        Signal::SIGTERM,
        "SIGTERM",
    );
}

#[test]
fn ctrl_c_while_building() {
    interrupted(
        "ctrl_c_while_building",
        212,
        "onedoor lab · policy",
        Signal::SIGINT,
        "Ctrl-C",
    );
}

/// SIGKILL leaves the namespaces (nothing can run on SIGKILL) but not the
/// serve child; `--clean` then removes the rest, and only that.
#[test]
fn killed_run_is_cleaned_by_clean() {
    let test = "killed_run_is_cleaned_by_clean";
    if !lab_available(test) {
        return;
    }
    let n = 213;
    let plan = AddressPlan::new(Instance(n));
    let (mut child, _rx) = start_until(n, "listening after");
    child.kill().expect("SIGKILL the lab");
    child.wait().unwrap();
    assert!(
        onedoor_lab::netns_path(&plan.house_ns).exists(),
        "a killed lab leaves its namespaces"
    );
    // The serve child dies with its parent (PR_SET_PDEATHSIG).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !serve_pids(&plan).is_empty() {
        assert!(Instant::now() < deadline, "serve outlived its killed lab");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = Command::new(BIN).args(["lab", "--clean"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&plan.house_ns), "{stderr}");
    assert_nothing_left(Instance(n));
}

/// Not root: exit 2 and a clear message (here without sudo on PATH, so it
/// says what to type instead of asking sudo).
#[test]
fn not_root_is_refused_with_exit_2() {
    let test = "not_root_is_refused_with_exit_2";
    if !nix::unistd::geteuid().is_root() {
        // We cannot become another user; check ourselves instead, without sudo.
        let out = Command::new(BIN)
            .args(["lab"])
            .env("PATH", "/nonexistent")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        return;
    }
    use std::os::unix::process::CommandExt;
    let out = Command::new(BIN)
        .args(["lab", "--policy", "web"])
        .env("PATH", "/nonexistent")
        .uid(65534)
        .gid(65534)
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            // e.g. the build directory is not readable by `nobody`
            if required() {
                panic!("{test}: cannot run the binary as nobody: {e}");
            }
            eprintln!("SKIP {test}: cannot run the binary as nobody: {e}");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("onedoor lab needs root"), "{stderr}");
    assert!(stderr.contains("su -c"), "says what to type: {stderr}");
}

#[test]
fn keep_with_all_policies_is_a_usage_error() {
    let out = Command::new(BIN)
        .args(["lab", "--policy", "all", "--keep"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args(["lab", "--policy", "open"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The helper other tests use: build a lab with a policy, act inside a
/// namespace, tear down — in well under 2 s.
#[test]
fn helper_builds_enters_and_tears_down() {
    let test = "helper_builds_enters_and_tears_down";
    if !lab_available(test) {
        return;
    }
    let started = Instant::now();
    let lab = Lab::build(LabConfig {
        policy: Policy::Web,
        instance: Some(Instance(220)),
    })
    .expect("build");
    let plan = lab.plan().clone();
    assert!(onedoor_lab::netns_path(&plan.router_ns).exists());
    let any = |port: u16| SocketAddr::from(([0, 0, 0, 0], port));
    let l22 = lab.tcp_listener(Role::Internet, any(22)).unwrap();
    let l80 = lab.tcp_listener(Role::Internet, any(80)).unwrap();
    let (door22, door80) = lab
        .run_in(Role::House, || {
            let to = |port: u16| {
                TcpStream::connect_timeout(
                    &SocketAddr::from((plan.internet, port)),
                    Duration::from_millis(300),
                )
            };
            (to(22), to(80))
        })
        .unwrap();
    let e = door22.expect_err("door 22 must be blocked under web");
    assert_eq!(
        e.kind(),
        std::io::ErrorKind::TimedOut,
        "dropped, not refused: {e}"
    );
    door80.expect("door 80 is open under web");
    // A command inside the house sees the house's address.
    let ok = lab
        .command(Role::House, "/bin/sh")
        .args(["-c", "test -e /proc/net/dev"])
        .status()
        .unwrap();
    assert!(ok.success());
    drop((l22, l80));
    lab.teardown().expect("teardown");
    let elapsed = started.elapsed();
    assert_nothing_left(Instance(220));
    assert!(
        elapsed < Duration::from_secs(2),
        "build + use + teardown took {elapsed:?}"
    );
}

/// Several labs at once, each with its own instance, names and addresses.
#[test]
fn several_labs_at_once() {
    let test = "several_labs_at_once";
    if !lab_available(test) {
        return;
    }
    let labs: Vec<Lab> = std::thread::scope(|s| {
        let handles: Vec<_> = [Policy::Web, Policy::HttpsOnly, Policy::ProxyOnly]
            .into_iter()
            .map(|p| s.spawn(move || Lab::build(LabConfig::new(p)).expect("build")))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut instances: Vec<u8> = labs.iter().map(|l| l.plan().instance.0).collect();
    instances.sort();
    instances.dedup();
    assert_eq!(instances.len(), 3, "distinct instances");
    let all = onedoor_lab::lab_namespaces();
    for lab in &labs {
        for role in Role::ALL {
            assert!(all.iter().any(|n| n == lab.plan().netns(role)));
        }
    }
    let taken: Vec<Instance> = labs.iter().map(|l| l.plan().instance).collect();
    for lab in labs {
        lab.teardown().expect("teardown");
    }
    for i in taken {
        assert_nothing_left(i);
    }
}

/// A panic unwinds through the lab, and the drop takes it all down.
#[test]
fn a_panic_takes_the_lab_down() {
    let test = "a_panic_takes_the_lab_down";
    if !lab_available(test) {
        return;
    }
    let instance = Instance(221);
    let result = std::panic::catch_unwind(|| {
        let lab = Lab::build(LabConfig {
            policy: Policy::Intercept,
            instance: Some(instance),
        })
        .expect("build");
        assert!(onedoor_lab::netns_path(&lab.plan().internet_ns).exists());
        panic!("a bug in the middle of a story");
    });
    assert!(result.is_err());
    assert_nothing_left(instance);
}

/// As a user with sudo on PATH, `onedoor lab` re-runs this very command
/// through sudo (a stand-in that records its arguments), marked so that a
/// sudo which does not make it root cannot loop.
#[test]
fn not_root_reruns_itself_through_sudo() {
    let test = "not_root_reruns_itself_through_sudo";
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP {test}: needs root to run the binary as another user");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    /// Removes the stand-in's directory however the test ends.
    struct Gone(PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let dir = temp_path("sudo-bin");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let _gone = Gone(dir.clone());
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let argv = dir.join("argv");
    std::fs::write(&argv, "").unwrap();
    std::fs::set_permissions(&argv, std::fs::Permissions::from_mode(0o666)).unwrap();
    let sudo = dir.join("sudo");
    let script = format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n", argv.display());
    std::fs::write(&sudo, script).unwrap();
    std::fs::set_permissions(&sudo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |extra: &[&str]| {
        Command::new(BIN)
            .args(["lab", "--policy", "https-only"])
            .args(extra)
            .env("PATH", &dir)
            .uid(65534)
            .gid(65534)
            .output()
    };
    let out = match as_nobody(&[]) {
        Ok(o) => o,
        Err(e) if !required() => {
            eprintln!("SKIP {test}: cannot run the binary as nobody: {e}");
            return;
        }
        Err(e) => panic!("{test}: {e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Asking sudo"), "{stderr}");
    let recorded = std::fs::read_to_string(&argv).unwrap();
    let recorded: Vec<&str> = recorded.lines().collect();
    assert_eq!(
        recorded,
        ["--", BIN, "lab", "--policy", "https-only", "--via-sudo"]
    );
    // Still not root after "sudo": refuse instead of asking again.
    let out = as_nobody(&["--via-sudo"]).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sudo did not make it root"));
}

/// `--real-ssh`: the machine's sshd behind door 22 (blocked) and a real
/// `ssh` login through door 443.
#[test]
fn story_with_real_ssh() {
    real_ssh_story(
        "story_with_real_ssh",
        "web-reject",
        206,
        &[],
        &[
            ("ssh-door-22", "refused"),
            ("ssh-door-443", "reached"),
            ("library-door-443", "reached"),
        ],
    );
}

/// `--real-ssh` under `proxy-only`: the real ssh login reaches door 443
/// through the router's HTTP proxy, with socat as its ProxyCommand.
#[test]
fn story_with_real_ssh_through_the_proxy() {
    real_ssh_story(
        "story_with_real_ssh_through_the_proxy",
        "proxy-only",
        207,
        &["socat"],
        &[("ssh-door-22", "dropped"), ("ssh-door-443", "reached")],
    );
}

/// Run the story with `--real-ssh` under `policy` as instance `n`, when
/// OpenSSH and `also` are installed, and check that each step in `expect`
/// (id, outcome) ended so.
fn real_ssh_story(test: &str, policy: &str, n: u8, also: &[&str], expect: &[(&str, &str)]) {
    if !lab_available(test) {
        return;
    }
    let missing: Vec<&str> = ["sshd", "ssh", "ssh-keygen"]
        .iter()
        .chain(also)
        .copied()
        .filter(|p| {
            !["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
                .iter()
                .any(|d| Path::new(d).join(p).is_file())
        })
        .collect();
    if !missing.is_empty() {
        let why = format!("not installed: {}", missing.join(", "));
        if required() {
            panic!("{test}: cannot run with ONEDOOR_E2E=require: {why}");
        }
        eprintln!("SKIP {test}: {why}");
        return;
    }
    let mut child = Command::new(BIN)
        .args([
            "lab",
            "--real-ssh",
            "--policy",
            policy,
            "--json",
            "--instance",
            &n.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(out).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
    let status = wait_bounded(&mut child, STORY_BOUND);
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "{test}: {status}\n{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let steps = json["runs"][0]["steps"].as_array().unwrap();
    for (id, want) in expect {
        let got = steps
            .iter()
            .find(|s| s["id"] == *id)
            .and_then(|s| s["observed"]["outcome"].as_str());
        assert_eq!(got, Some(*want), "{test}: step {id}\n{stderr}");
    }
    assert!(
        !std::env::temp_dir()
            .join(format!("onedoor-lab-ssh-{}-{n}", child.id()))
            .exists(),
        "the throwaway keys were removed"
    );
    assert_nothing_left(Instance(n));
}

/// Regression: a veth that is up drops packets until its queueing
/// discipline is attached, so a connection right after the build used to
/// lose its SYN about one time in four and wait a second for the retry.
/// The build now waits until every link runs.
#[test]
fn the_first_connection_after_a_build_gets_through() {
    let test = "the_first_connection_after_a_build_gets_through";
    if !lab_available(test) {
        return;
    }
    for _ in 0..10 {
        let lab = Lab::build(LabConfig {
            policy: Policy::Web,
            instance: Some(Instance(222)),
        })
        .expect("build");
        let door = SocketAddr::from((lab.plan().internet, 80));
        let listener = lab
            .tcp_listener(Role::Internet, SocketAddr::from(([0, 0, 0, 0], 80)))
            .unwrap();
        let first = lab
            .run_in(Role::House, || {
                TcpStream::connect_timeout(&door, Duration::from_millis(300))
            })
            .unwrap();
        first.expect("the first connection after the build went through at once");
        drop(listener);
        lab.teardown().expect("teardown");
    }
    assert_nothing_left(Instance(222));
}
