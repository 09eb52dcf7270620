//! The tunnel chapter: a server identity for `onedoor serve --tunnel` on
//! door 443, then `onedoor connect` in the house with three forwards — the
//! library, the crosswords (UDP) and a sink on the internet's loopback —
//! and, through them, the library's conversation, a crossword clue and a
//! throughput figure, all through the firewall's one open door.
//!
//! How connect goes to door 443 depends on the policy ([`Route`]): TLS
//! straight to it; under `proxy-only` through the router's HTTP CONNECT
//! proxy (`--proxy`), the house's only way out; under `intercept` the way
//! `--transport auto` chooses, fed the first chapter's map (`--map`), and
//! the chapter tells which way auto took and why, from connect's own log.
//!
//! Like the map chapter, every child is this same binary, bounded in time
//! and stopped when the story is dropped.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use onedoor_proto::report::json::ProbeJson;
use onedoor_proto::tunnel::access_key::AccessKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::map::{run_bounded, tail, Throwaway, INIT_TIMEOUT};
use super::narrate::Narrator;
use super::serve::ServeProcess;
use super::{checks, ms, secs};
use crate::lab::Lab;
use crate::outcome::{Attempt, Observed, Path as Way, Step, Throughput};
use crate::plan::addr::{ports, Instance, Role};
use crate::policy::{Door, Expect};
use crate::sys::instance::runtime_dir;

/// What `onedoor connect --transport auto` logs when it takes a way (and
/// when one did not work).
const AUTO: &str = "auto: ";
/// How auto's log line says a way did not work.
const DID_NOT_WORK: &str = " did not work: ";
/// Variables of the caller's environment that would change what connect
/// does in the house: a token that overrides the key's, a proxy the lab
/// did not ask for.
const CLEARED_ENV: [&str; 9] = [
    "ONEDOOR_TOKEN",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
];
/// What `onedoor connect` logs once its UDP forward listens (after the
/// session is up; its TCP forwards are bound before).
const READY: &str = "-L udp/127.0.0.1:1194";
/// At most this many bytes are pushed for the throughput figure…
const PUSH_BYTES: u64 = 128 << 20;
/// …and for at most this long.
const PUSH_BOUND: Duration = Duration::from_millis(1500);
/// How long the sink may take to count what it got.
const COUNT_BOUND: Duration = Duration::from_secs(3);

/// The server identity of the tunnel: its state dir (removed when
/// dropped) and the first client's access key.
pub(super) struct Identity {
    pub(super) dir: Throwaway,
    pub(super) key: String,
}

impl Identity {
    /// The server's fingerprint, from the access key (checked when made).
    pub(super) fn fingerprint(&self) -> String {
        AccessKey::from_str(&self.key)
            .ok()
            .and_then(|k| k.fingerprint)
            .map(|fp| fp.to_string())
            .unwrap_or_default()
    }

    /// The key as narrated: the token is a secret, even a throwaway one.
    pub(super) fn shown_key(&self) -> String {
        shown_key(&self.key)
    }
}

fn shown_key(key: &str) -> String {
    match key.split_once('@') {
        Some((_, rest)) => format!("onedoor://TOKEN@{rest}"),
        None => "KEY".into(),
    }
}

/// `onedoor init --state-dir RUNTIME/NAME --name INTERNET`, narrated: a
/// throwaway server identity (the map's reflector and the tunnel each make
/// their own).
pub(super) async fn identity(
    lab: &Lab,
    exe: &Path,
    name: &str,
    n: &mut Narrator,
) -> Result<Identity, String> {
    let internet = lab.plan().internet;
    let dir = runtime_dir(lab.plan().instance).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let made = dir
        .parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .map_err(|e| format!("creating {}: {e}", dir.display()));
    let gone = Throwaway(dir.clone());
    n.begin(format!(
        "$ onedoor init --state-dir {} --name {internet}",
        dir.display()
    ));
    let fail = |e: String, n: &mut Narrator| {
        n.end("failed");
        e
    };
    made.map_err(|e| fail(e, n))?;
    let mut init = std::process::Command::new(exe);
    init.arg("init")
        .arg("--state-dir")
        .arg(&dir)
        .args(["--name", &internet.to_string()]);
    let out = run_bounded(init, INIT_TIMEOUT, "onedoor init")
        .await
        .map_err(|e| fail(e, n))?;
    if !out.status.success() {
        return Err(fail(
            format!("onedoor init: {}{}", out.status, tail(&out.stderr)),
            n,
        ));
    }
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match AccessKey::from_str(&key).map(|k| k.fingerprint) {
        Ok(Some(fp)) => n.end(format!("server key {fp}")),
        Ok(None) => return Err(fail("the access key has no fp=".into(), n)),
        Err(e) => return Err(fail(format!("its access key: {e}"), n)),
    }
    Ok(Identity { dir: gone, key })
}

/// `connect`'s arguments after the key: the library (at `library`, as
/// serve sees it), the crosswords and the sink.
pub(super) fn forwards(library: SocketAddr) -> Vec<String> {
    vec![
        "-L".into(),
        format!("127.0.0.1:{}:{library}", ports::TUNNEL_LIBRARY),
        "-L".into(),
        format!(
            "udp/127.0.0.1:{}:127.0.0.1:{}",
            ports::CROSSWORDS,
            ports::CROSSWORDS
        ),
        "-L".into(),
        format!("127.0.0.1:{}:127.0.0.1:{}", ports::TUNNEL_SINK, ports::SINK),
    ]
}

/// How `onedoor connect` goes to door 443.
#[derive(Debug, Clone, Default)]
pub(super) struct Route {
    /// Through this HTTP CONNECT proxy (`--proxy`): the router's, under
    /// `proxy-only`.
    pub(super) proxy: Option<SocketAddrV4>,
    /// `--transport auto` (else connect's default, `tls`).
    pub(super) auto: bool,
    /// The first chapter's map, fed to auto with `--map` (only with `auto`).
    pub(super) map: Option<ProbeJson>,
}

impl Route {
    /// The transport asked for, as `--transport` names it.
    pub(super) fn transport(&self) -> &'static str {
        if self.auto {
            "auto"
        } else {
            "tls"
        }
    }

    /// The proxy as `--proxy` takes it.
    pub(super) fn proxy_url(&self) -> Option<String> {
        self.proxy.map(|p| format!("http://{p}"))
    }

    /// The way, in the story's words, before it is tried.
    pub(super) fn words(&self) -> &'static str {
        match (self.proxy, self.auto) {
            (Some(_), _) => "through the router's HTTP proxy to door 443",
            (None, true) => "to door 443, the way --transport auto chooses",
            (None, false) => "to door 443",
        }
    }

    /// Where connect's files (the map, auto's memory) live while it runs:
    /// for every route, since `auto` is connect's default and remembers.
    fn files(&self, instance: Instance) -> Option<PathBuf> {
        Some(runtime_dir(instance).join("connect"))
    }

    /// `--map`'s file, when the map is fed.
    fn map_file(&self, instance: Instance) -> Option<PathBuf> {
        self.map
            .as_ref()
            .filter(|_| self.auto)
            .and(self.files(instance))
            .map(|d| d.join("map.json"))
    }
}

/// connect's command line after the binary, with `key` (the real key, or
/// the one shown): `connect KEY [--proxy URL] [--transport auto [--map
/// FILE]] -L …`.
pub(super) fn connect_args(
    key: String,
    route: &Route,
    instance: Instance,
    library: SocketAddr,
) -> Vec<String> {
    let mut args = vec!["connect".to_owned(), key];
    if let Some(url) = route.proxy_url() {
        args.extend(["--proxy".to_owned(), url]);
    }
    if route.auto {
        args.extend(["--transport".to_owned(), "auto".to_owned()]);
    }
    if let Some(file) = route.map_file(instance) {
        args.extend(["--map".to_owned(), file.display().to_string()]);
    }
    args.extend(forwards(library));
    args
}

/// What auto said, from connect's `auto: …` log lines: the way it took
/// and why, and the ways that did not work before it; `None` when it said
/// nothing (it logs only when it has a choice to make).
pub(super) fn auto_words(said: &[String]) -> Option<String> {
    let lines: Vec<&str> = said
        .iter()
        .filter_map(|l| l.strip_prefix(AUTO))
        .map(str::trim)
        .collect();
    let failed: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split_once(DID_NOT_WORK).map(|(way, _)| way))
        .collect();
    let took = lines.iter().rev().find(|l| !l.contains(DID_NOT_WORK))?;
    // "tls on door 443 (why)" or "wss on door 443 (why); inside the inner layer"
    let said = match took.split_once(" (") {
        Some((way, rest)) => match rest.split_once(')') {
            Some((why, after)) => format!("auto took {way}: {why}{after}"),
            None => format!("auto took {took}"),
        },
        None => format!("auto took {took}"),
    };
    Some(if failed.is_empty() {
        said
    } else {
        format!("{said}, after {} did not work", failed.join(", then "))
    })
}

/// What the map fed to auto found, and what that leaves auto to try.
pub(super) fn map_context(map: &ProbeJson) -> String {
    let only_443 = map.tcp.open.ports == ports::SERVE.to_string();
    format!(
        "the map it was fed found {}{}",
        map_words(map),
        if only_443 {
            ", so auto had no other door to try"
        } else {
            ""
        }
    )
}

/// What the map fed to auto found, in words: "door 443 open to our own
/// key, door 80 intercepted".
pub(super) fn map_words(map: &ProbeJson) -> String {
    let doors = |ports: &str| {
        let n = ports.split(',').filter(|p| !p.is_empty()).count();
        let list = ports.replace(',', ", ");
        if n == 1 && !ports.contains('-') {
            format!("door {list}")
        } else {
            format!("doors {list}")
        }
    };
    let mut parts = Vec::new();
    if !map.tcp.open.ports.is_empty() {
        parts.push(format!(
            "{} open to our own key",
            doors(&map.tcp.open.ports)
        ));
    }
    if !map.tcp.intercepted.ports.is_empty() {
        parts.push(format!("{} intercepted", doors(&map.tcp.intercepted.ports)));
    }
    if parts.is_empty() {
        "no door open to our own key".to_owned()
    } else {
        parts.join(", ")
    }
}

fn step(id: &str, title: &str, service: &str) -> Attempt {
    Attempt {
        id: id.to_owned(),
        title: title.to_owned(),
        service: service.to_owned(),
        door: Some(Door::Tcp(ports::SERVE)),
        path: Way::ThroughTunnel,
        expected: Expect::Open,
    }
}

/// The chapter's steps, before they are tried.
fn attempts(route: &Route) -> [Attempt; 4] {
    [
        step(
            "tunnel-connect",
            &format!("onedoor connect in the house, {}", route.words()),
            "onedoor connect",
        ),
        step(
            "library-tunnel-443",
            "the library on door 22, through the tunnel on door 443",
            "library",
        ),
        step(
            "crosswords-tunnel-443",
            "the crosswords on UDP door 1194, through the tunnel on door 443",
            "crosswords",
        ),
        step(
            "throughput-tunnel-443",
            "a throughput figure, through the tunnel on door 443",
            "throughput",
        ),
    ]
}

/// Every step "not tried", for `why`.
fn not_tried(route: &Route, why: &str) -> Vec<Step> {
    attempts(route)
        .into_iter()
        .map(|a| {
            a.observed(
                Observed::Skipped {
                    reason: why.to_owned(),
                },
                0,
            )
        })
        .collect()
}

/// A running `onedoor connect` and its files (removed after it stops).
pub(super) struct Client {
    process: ServeProcess,
    _files: Option<Throwaway>,
}

impl Client {
    /// Stop connect (SIGTERM, then SIGKILL) and reap it.
    pub(super) fn stop(&mut self) {
        self.process.stop();
    }
}

/// What the chapter saw.
pub(super) struct Told {
    /// The steps, in order.
    pub(super) steps: Vec<Step>,
    /// The throughput figure, when measured.
    pub(super) throughput: Option<Throughput>,
    /// How the session reached door 443, in words, once it is up.
    pub(super) way: Option<String>,
    /// connect's own `auto: …` lines.
    pub(super) auto_said: Vec<String>,
    /// connect, still running (to be stopped).
    pub(super) client: Option<Client>,
}

/// connect's files: a fresh directory with the map (when fed), also
/// holding auto's memory, so nothing of the lab lands in the caller's
/// home and auto starts with no memory.
fn prepare_files(route: &Route, instance: Instance) -> Result<Option<Throwaway>, String> {
    let Some(dir) = route.files(instance) else {
        return Ok(None);
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let gone = Throwaway(dir);
    if let (Some(map), Some(file)) = (&route.map, route.map_file(instance)) {
        let json = serde_json::to_vec_pretty(map)
            .map_err(|e| format!("writing the map for --map: {e}"))?;
        std::fs::write(&file, json).map_err(|e| format!("writing {}: {e}", file.display()))?;
    }
    Ok(Some(gone))
}

/// Start `onedoor connect` in the house, `route`'s way, and try the
/// forwards.
pub(super) async fn chapter(
    lab: &Lab,
    exe: &Path,
    id: &Identity,
    route: &Route,
    library: SocketAddr,
) -> Told {
    let [a_connect, a_library, a_crosswords, a_push] = attempts(route);
    let instance = lab.plan().instance;
    let args = connect_args(id.key.clone(), route, instance, library);
    let started = Instant::now();
    let local = |port| SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let listen = SocketAddr::V4(local(ports::TUNNEL_LIBRARY));
    let files = prepare_files(route, instance);
    let spawned = files.and_then(|files| {
        let memory = files.as_ref().map(|f| f.0.join("paths.toml"));
        let process =
            ServeProcess::spawn_with(lab, Role::House, exe, &args, listen, Some(READY), |cmd| {
                for var in CLEARED_ENV {
                    cmd.env_remove(var);
                }
                match &memory {
                    Some(m) => cmd.env("ONEDOOR_PATHS", m),
                    None => cmd.env_remove("ONEDOOR_PATHS"),
                };
            })?;
        Ok(Client {
            process,
            _files: files,
        })
    });
    let client = match spawned {
        Ok(c) => c,
        Err(e) => {
            let mut steps =
                vec![a_connect.observed(Observed::Failed { error: e }, ms(started.elapsed()))];
            steps.extend(
                not_tried(route, "onedoor connect did not start")
                    .into_iter()
                    .skip(1),
            );
            return Told {
                steps,
                throughput: None,
                way: None,
                auto_said: Vec::new(),
                client: None,
            };
        }
    };
    let auto_said = client.process.logged(AUTO);
    let (how, way) = if route.auto {
        let took = auto_words(&auto_said)
            .unwrap_or_else(|| "auto took its first way without saying which".to_owned());
        let way = match &route.map {
            Some(map) => format!("{took}; {}", map_context(map)),
            None => took.clone(),
        };
        (format!(" ({took}),"), way)
    } else if route.proxy.is_some() {
        // The step's title says it already.
        (String::new(), route.words().to_owned())
    } else {
        (String::new(), "TLS straight to door 443".to_owned())
    };
    let mut steps = vec![a_connect.observed(
        Observed::Reached {
            answer: format!(
                "the session is up{how} and its three forwards listen, after {}",
                secs(client.process.startup)
            ),
        },
        ms(started.elapsed()),
    )];

    let started = Instant::now();
    let observed = match checks::connect(lab, local(ports::TUNNEL_LIBRARY)).await {
        Ok(s) => checks::library_visit(s).await,
        Err(e) => e.observed(),
    };
    steps.push(a_library.observed(observed, ms(started.elapsed())));

    let started = Instant::now();
    let observed = checks::crosswords(lab, local(ports::CROSSWORDS)).await;
    steps.push(a_crosswords.observed(observed, ms(started.elapsed())));

    let started = Instant::now();
    let (observed, figure) = push(lab, local(ports::TUNNEL_SINK)).await;
    steps.push(a_push.observed(observed, ms(started.elapsed())));
    Told {
        steps,
        throughput: figure,
        way: Some(way),
        auto_said,
        client: Some(client),
    }
}

/// Push up to [`PUSH_BYTES`] (for at most [`PUSH_BOUND`]) to the sink and
/// read its count.
async fn push(lab: &Lab, to: SocketAddrV4) -> (Observed, Option<Throughput>) {
    let mut stream = match checks::connect(lab, to).await {
        Ok(s) => s,
        Err(e) => return (e.observed(), None),
    };
    let chunk = vec![0x5au8; 256 * 1024];
    let started = Instant::now();
    let mut sent: u64 = 0;
    let pushed = tokio::time::timeout(PUSH_BOUND, async {
        while sent < PUSH_BYTES {
            stream.write_all(&chunk).await?;
            sent += chunk.len() as u64;
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if let Ok(Err(e)) = pushed {
        return (
            Observed::Failed {
                error: format!("pushing bytes: {e}"),
            },
            None,
        );
    }
    let counted = tokio::time::timeout(COUNT_BOUND, async {
        stream.shutdown().await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    })
    .await;
    let took = started.elapsed();
    let answer = match counted {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            return (
                Observed::Failed {
                    error: format!("waiting for the sink's count: {e}"),
                },
                None,
            )
        }
        Err(_) => {
            return (
                Observed::Failed {
                    error: format!(
                        "the sink did not count {sent} bytes within {} s",
                        COUNT_BOUND.as_secs()
                    ),
                },
                None,
            )
        }
    };
    let count = answer
        .trim()
        .strip_prefix("COUNTED ")
        .and_then(|n| n.parse::<u64>().ok());
    if count != Some(sent) {
        return (
            Observed::Failed {
                error: format!("sent {sent} bytes, but the sink said \"{}\"", answer.trim()),
            },
            None,
        );
    }
    let mb_per_s = sent as f64 / 1e6 / took.as_secs_f64().max(0.001);
    let figure = Throughput {
        bytes: sent,
        ms: ms(took),
        mb_per_s: (mb_per_s * 10.0).round() / 10.0,
    };
    (
        Observed::Reached {
            answer: format!(
                "{} MiB through the firewall in {}: {:.0} MB/s (the sink on the internet counted every byte)",
                sent >> 20,
                secs(took),
                mb_per_s
            ),
        },
        Some(figure),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwards_and_the_shown_key() {
        let lib = SocketAddr::from((Ipv4Addr::LOCALHOST, 22));
        assert_eq!(
            forwards(lib).join(" "),
            "-L 127.0.0.1:2222:127.0.0.1:22 -L udp/127.0.0.1:1194:127.0.0.1:1194 \
             -L 127.0.0.1:9009:127.0.0.1:9"
        );
        assert!(forwards(lib).join(" ").contains(READY));
        assert_eq!(
            shown_key("onedoor://abc@198.19.0.2:443?fp=SHA256:x"),
            "onedoor://TOKEN@198.19.0.2:443?fp=SHA256:x"
        );
    }

    #[test]
    fn not_tried_holds() {
        let steps = not_tried(&Route::default(), "onedoor connect did not start");
        assert_eq!(steps.len(), 4);
        assert!(steps.iter().all(|s| s.ok));
        assert_eq!(
            steps[2].observed.to_string(),
            "not tried (onedoor connect did not start)"
        );
    }

    fn probe_map(open: &str, intercepted: &str) -> ProbeJson {
        use crate::map::sample::ideal;
        let mut map = ideal(crate::policy::Policy::Intercept);
        map.tcp.open.ports = open.into();
        map.tcp.intercepted.ports = intercepted.into();
        map
    }

    #[test]
    fn the_command_line_per_route() {
        let lib = SocketAddr::from((Ipv4Addr::LOCALHOST, 22));
        let key = || "KEY".to_owned();
        let plain = connect_args(key(), &Route::default(), Instance(7), lib);
        assert_eq!(plain[..2], ["connect", "KEY"]);
        assert_eq!(plain[2..], forwards(lib)[..]);
        let proxy = Route {
            proxy: Some("198.18.7.1:3128".parse().unwrap()),
            ..Route::default()
        };
        assert_eq!(
            connect_args(key(), &proxy, Instance(7), lib)[..4],
            ["connect", "KEY", "--proxy", "http://198.18.7.1:3128"]
        );
        assert_eq!(proxy.transport(), "tls");
        assert_eq!(proxy.words(), "through the router's HTTP proxy to door 443");
        let auto = Route {
            auto: true,
            ..Route::default()
        };
        assert_eq!(
            connect_args(key(), &auto, Instance(7), lib)[2..4],
            ["--transport", "auto"]
        );
        assert!(!connect_args(key(), &auto, Instance(7), lib).contains(&"--map".to_owned()));
        let mapped = Route {
            auto: true,
            map: Some(probe_map("443", "80")),
            ..Route::default()
        };
        let args = connect_args(key(), &mapped, Instance(7), lib);
        let file = runtime_dir(Instance(7)).join("connect/map.json");
        assert_eq!(
            args[2..6],
            [
                "--transport".to_owned(),
                "auto".to_owned(),
                "--map".to_owned(),
                file.display().to_string()
            ]
        );
        // A map without auto is not fed (connect refuses --map without it).
        let unfed = Route {
            map: Some(probe_map("443", "")),
            ..Route::default()
        };
        assert!(!connect_args(key(), &unfed, Instance(7), lib).contains(&"--map".to_owned()));
    }

    #[test]
    fn what_auto_said_in_words() {
        let said =
            |lines: &[&str]| auto_words(&lines.iter().map(|l| l.to_string()).collect::<Vec<_>>());
        assert_eq!(said(&[]), None);
        assert_eq!(
            said(&["auto: tls on door 443 (TLS straight to the door is the fastest way)"]).unwrap(),
            "auto took tls on door 443: TLS straight to the door is the fastest way"
        );
        assert_eq!(
            said(&[
                "auto: tls on door 443 did not work: door 443 is intercepted",
                "auto: wss on door 443 (WebSocket over HTTPS passes proxies and interceptors); inside the inner layer",
            ])
            .unwrap(),
            "auto took wss on door 443: WebSocket over HTTPS passes proxies and interceptors; \
             inside the inner layer, after tls on door 443 did not work"
        );
        assert_eq!(
            said(&["auto: tls on door 443 did not work: timed out"]),
            None,
            "nothing was taken"
        );
    }

    #[test]
    fn what_the_map_found_in_words() {
        assert_eq!(
            map_context(&probe_map("443", "80")),
            "the map it was fed found door 443 open to our own key, door 80 intercepted, \
             so auto had no other door to try"
        );
        assert_eq!(
            map_words(&probe_map("80,443", "")),
            "doors 80, 443 open to our own key"
        );
        assert_eq!(map_words(&probe_map("", "")), "no door open to our own key");
    }
}
