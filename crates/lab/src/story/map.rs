//! The first chapter, for real: `onedoor init` makes the server's
//! (throwaway) identity in the instance's runtime directory, `onedoor
//! serve --reflect` answers probe hellos on door 443 and every door of the
//! map in the internet, and `onedoor probe --json` maps the doors from the
//! house. Then the reflector stops, so the doors are free for the services
//! of the rest of the story; the identity lives on for serve's tunnel, so
//! the map is a map of the very server `onedoor connect` pins (and can be
//! fed to `connect --map`).
//!
//! Every child is this same binary, started from the story's thread with
//! [`Lab::command`] (it dies with the lab), bounded in time, and killed if
//! the story is dropped while it runs.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use onedoor_proto::report::json::ProbeJson;

use super::narrate::Narrator;
use super::serve::ServeProcess;
use super::tunnel::Identity;
use super::{ms, secs};
use crate::lab::Lab;
use crate::map::{DoorMap, MapPlan};
use crate::plan::addr::{ports, Role};
use crate::sys::instance::runtime_dir;

/// How long `onedoor init` may take.
pub(super) const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// What serve logs once every reflector door is bound.
const REFLECTING: &str = "answering probe hellos";

/// A child that is killed and reaped if dropped before it ends.
struct Reaped(Option<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Run `cmd` to the end, at most `bound`, collecting its output; waits on
/// the runtime's timer, so dropping the future kills the child.
pub(super) async fn run_bounded(
    mut cmd: std::process::Command,
    bound: Duration,
    what: &str,
) -> Result<Output, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start {what}: {e}"))?;
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = reader(child.stdout.take().map(|s| Box::new(s) as _));
    let err = reader(child.stderr.take().map(|s| Box::new(s) as _));
    let mut guard = Reaped(Some(child));
    let started = Instant::now();
    let status = loop {
        let child = guard.0.as_mut().expect("held until the end");
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > bound => {
                drop(guard);
                return Err(format!(
                    "{what} did not finish within {} s",
                    bound.as_secs()
                ));
            }
            Ok(None) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
    };
    guard.0 = None;
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// The last few lines of a child's stderr, for an error message.
pub(super) fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().rev().take(4).collect();
    lines
        .into_iter()
        .rev()
        .map(|l| format!("\n      {l}"))
        .collect()
}

/// The throwaway identity's directory: removed when dropped.
pub(super) struct Throwaway(pub(super) PathBuf);

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        // The instance directory too, once empty.
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// The server identity's directory name under the instance's runtime
/// directory.
pub(super) const SERVER_DIR: &str = "server";

/// Make the map: init, reflector, probe from the house; narrate it and
/// judge it against the lab's policy. Never fails the story by itself: a
/// map that could not be made is a failed chapter (and verdict). Returns
/// the server identity too, when `init` made one (also if the map then
/// failed): serve's tunnel uses it.
pub(super) async fn chapter(
    lab: &Lab,
    exe: &Path,
    plan: MapPlan,
    n: &mut Narrator,
) -> (DoorMap, Option<Identity>) {
    let started = Instant::now();
    let listen = SocketAddr::from((lab.plan().internet, ports::SERVE));
    let dir = runtime_dir(lab.plan().instance).join(SERVER_DIR);
    let serve_args = plan.serve_args(listen, &dir);
    let what = if plan.is_full() {
        "all 65,535 doors"
    } else {
        "the 100 most useful doors and 4 UDP ones"
    };
    n.section(format!(
        "First, the map of the house's doors: {what}, each asked of our own server and \
         believed only when its key answers:"
    ));

    // 1. The server's (throwaway) identity.
    let identity = match super::tunnel::identity(lab, exe, SERVER_DIR, n).await {
        Ok(id) => id,
        Err(e) => {
            n.say(format!("    ✗ the map: {e}"));
            let map = DoorMap::failed(plan.clone(), serve_args, e, ms(started.elapsed()));
            return (map, None);
        }
    };
    let fingerprint = identity.fingerprint();
    let mapped = made(lab, exe, plan, serve_args, &fingerprint, started, n).await;
    (mapped, Some(identity))
}

/// The reflector and the probe, for the identity with `fingerprint`.
async fn made(
    lab: &Lab,
    exe: &Path,
    plan: MapPlan,
    serve_args: Vec<String>,
    fingerprint: &str,
    started: Instant,
    n: &mut Narrator,
) -> DoorMap {
    let policy = lab.policy();
    let internet = lab.plan().internet;
    let listen = SocketAddr::from((internet, ports::SERVE));
    let failed = |e: String, serve_args: Vec<String>, n: &mut Narrator| {
        n.end("failed");
        n.say(format!("    ✗ the map: {e}"));
        DoorMap::failed(plan.clone(), serve_args, e, ms(started.elapsed()))
    };

    // 2. The reflector on the internet.
    n.begin(format!("$ onedoor {}", serve_args.join(" ")));
    let mut serve = match ServeProcess::spawn(lab, exe, &serve_args, listen, Some(REFLECTING)) {
        Ok(s) => s,
        Err(e) => return failed(e, serve_args, n),
    };
    n.end(format!("answering after {}", secs(serve.startup)));

    // 3. The probe, from the house.
    let probe_args = plan.probe_args(internet, fingerprint);
    n.begin(format!(
        "$ onedoor {}   (in the house)",
        probe_args.join(" ")
    ));
    let probing = Instant::now();
    let mut cmd = lab.command(Role::House, exe);
    cmd.args(&probe_args);
    let result = run_bounded(cmd, plan.probe_bound(), "onedoor probe").await;
    let took = probing.elapsed();
    serve.stop();
    drop(serve);
    let out = match result {
        Ok(out) if out.status.success() => out,
        Ok(out) => {
            return failed(
                format!("onedoor probe: {}{}", out.status, tail(&out.stderr)),
                serve_args,
                n,
            )
        }
        Err(e) => return failed(e, serve_args, n),
    };
    let probe: ProbeJson = match serde_json::from_slice(&out.stdout) {
        Ok(j) => j,
        Err(e) => return failed(format!("reading the probe's JSON: {e}"), serve_args, n),
    };
    let doors = probe.tcp.probed.count + probe.udp.probed.count;
    n.end(format!(
        "{doors} doors in {} ({:.0} doors/s)",
        secs(took),
        doors as f64 / took.as_secs_f64().max(0.001)
    ));
    let map = DoorMap::judged(
        policy,
        plan,
        serve_args,
        probe_args,
        probe,
        ms(started.elapsed()),
    );
    n.say(format!(
        "    {} the map: {} ({})",
        if map.ok { "✓" } else { "✗" },
        map.words,
        map.judgement(policy)
    ));
    map
}
