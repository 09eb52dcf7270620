//! The tunnel chapter: a server identity for `onedoor serve --tunnel` on
//! door 443, then `onedoor connect` in the house with three forwards — the
//! library, the crosswords (UDP) and a sink on the internet's loopback —
//! and, through them, the library's conversation, a crossword clue and a
//! throughput figure, all through the firewall's one open door.
//!
//! Like the map chapter, every child is this same binary, bounded in time
//! and stopped when the story is dropped.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use onedoor_proto::tunnel::access_key::AccessKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::map::{run_bounded, tail, Throwaway, INIT_TIMEOUT};
use super::narrate::Narrator;
use super::serve::ServeProcess;
use super::{checks, ms, secs};
use crate::lab::Lab;
use crate::outcome::{Attempt, Observed, Path as Way, Step, Throughput};
use crate::plan::addr::{ports, Role};
use crate::policy::{Door, Expect};
use crate::sys::instance::runtime_dir;

/// Why the tunnel is not tried under `proxy-only`.
pub(super) const NEEDS_PROXY: &str = "needs onedoor connect --proxy, coming";
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
fn attempts() -> [Attempt; 4] {
    [
        step(
            "tunnel-connect",
            "onedoor connect in the house, to door 443",
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
pub(super) fn not_tried(why: &str) -> Vec<Step> {
    attempts()
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

/// Start `onedoor connect` in the house and try the forwards. Returns
/// the steps, the throughput and the connect process (to be stopped).
pub(super) async fn chapter(
    lab: &Lab,
    exe: &Path,
    id: &Identity,
    library: SocketAddr,
) -> (Vec<Step>, Option<Throughput>, Option<ServeProcess>) {
    let [a_connect, a_library, a_crosswords, a_push] = attempts();
    let mut args = vec!["connect".to_owned(), id.key.clone()];
    args.extend(forwards(library));
    let started = Instant::now();
    let local = |port| SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let listen = SocketAddr::V4(local(ports::TUNNEL_LIBRARY));
    let spawned = ServeProcess::spawn_in(lab, Role::House, exe, &args, listen, Some(READY));
    let process = match spawned {
        Ok(p) => p,
        Err(e) => {
            let mut steps =
                vec![a_connect.observed(Observed::Failed { error: e }, ms(started.elapsed()))];
            steps.extend(
                not_tried("onedoor connect did not start")
                    .into_iter()
                    .skip(1),
            );
            return (steps, None, None);
        }
    };
    let mut steps = vec![a_connect.observed(
        Observed::Reached {
            answer: format!(
                "the session is up and its three forwards listen, after {}",
                secs(process.startup)
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
    (steps, figure, Some(process))
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
        let steps = not_tried(NEEDS_PROXY);
        assert_eq!(steps.len(), 4);
        assert!(steps.iter().all(|s| s.ok));
        assert_eq!(
            steps[2].observed.to_string(),
            "not tried (needs onedoor connect --proxy, coming)"
        );
    }
}
