//! The story's one door: `onedoor serve` on door 443 of the internet, run
//! as a child process of the same binary inside the internet namespace.
//!
//! [`serve_args`] is the command line (pure, so it is tested and printed in
//! the narration); [`ServeProcess::start`] spawns it and waits, bounded,
//! until door 443 accepts connections; dropping the handle stops it
//! (SIGTERM, then SIGKILL after a short grace).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::lab::Lab;
use crate::plan::addr::{ports, Role};

/// What serve routes where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSetup {
    /// Where serve listens: door 443 of the internet server.
    pub listen: SocketAddr,
    /// The real sshd, when `--real-ssh` put one on door 22.
    pub ssh: Option<SocketAddr>,
    /// The website.
    pub http: SocketAddr,
    /// The library: everything that is not SSH or HTTP.
    pub library: SocketAddr,
    /// The tunnel's state dir (`--tunnel --state-dir D --fallback WEBSITE`),
    /// when serve also carries `onedoor connect`.
    pub tunnel: Option<PathBuf>,
}

/// The arguments after `onedoor`: `serve -l … --ssh … --http … --anyprot …`.
///
/// Routes are tried in order: SSH by its banner, HTTP by its method line,
/// and the library as `anyprot`, since its readers speak first with
/// `HELLO library`, which is neither.
pub fn serve_args(setup: &ServeSetup) -> Vec<String> {
    let mut args = vec![
        "serve".to_owned(),
        "-l".to_owned(),
        setup.listen.to_string(),
    ];
    if let Some(ssh) = setup.ssh {
        args.extend(["--ssh".to_owned(), ssh.to_string()]);
    }
    args.extend([
        "--http".to_owned(),
        setup.http.to_string(),
        "--anyprot".to_owned(),
        setup.library.to_string(),
    ]);
    if let Some(dir) = &setup.tunnel {
        args.extend([
            "--tunnel".to_owned(),
            "--state-dir".to_owned(),
            dir.display().to_string(),
            "--fallback".to_owned(),
            setup.http.to_string(),
        ]);
    }
    args
}

/// The setup the story uses, with backends on the internet's loopback.
pub fn story_setup(internet: Ipv4Addr, real_ssh: bool) -> ServeSetup {
    let lo = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    ServeSetup {
        listen: SocketAddr::from((internet, ports::SERVE)),
        ssh: real_ssh.then(|| lo(ports::LIBRARY)),
        http: lo(ports::WEBSITE),
        library: lo(if real_ssh {
            ports::LIBRARY_BEHIND_SSHD
        } else {
            ports::LIBRARY
        }),
        tunnel: None,
    }
}

/// How long serve may take to listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long serve may take to stop after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_millis(1500);
const LOG_LINES: usize = 40;

/// A running `onedoor serve`.
#[derive(Debug)]
pub struct ServeProcess {
    child: Option<Child>,
    log: Arc<Mutex<VecDeque<String>>>,
    /// How long it took to listen.
    pub startup: Duration,
}

impl ServeProcess {
    /// Spawn `exe serve …` inside the internet namespace and wait until
    /// `setup.listen` accepts a connection. On failure the error carries
    /// serve's last log lines.
    ///
    /// Spawn from a long-lived thread (see [`Lab::command`]).
    pub fn start(lab: &Lab, exe: &Path, setup: &ServeSetup) -> Result<ServeProcess, String> {
        ServeProcess::spawn(lab, exe, &serve_args(setup), setup.listen, None)
    }

    /// Spawn `exe ARGS…` (a `serve` command line) inside the internet
    /// namespace and wait, bounded by [`START_TIMEOUT`], until `listen`
    /// accepts a connection and, if `ready` is given, serve has logged a
    /// line containing it (e.g. the reflector's "answering probe hellos",
    /// logged once its last door is bound).
    pub fn spawn(
        lab: &Lab,
        exe: &Path,
        args: &[String],
        listen: SocketAddr,
        ready: Option<&'static str>,
    ) -> Result<ServeProcess, String> {
        ServeProcess::spawn_in(lab, Role::Internet, exe, args, listen, ready)
    }

    /// [`ServeProcess::spawn`] inside `role`: also for `onedoor connect` in
    /// the house, whose `listen` is one of its local forwards and whose
    /// `ready` is the log line of its last forward.
    pub fn spawn_in(
        lab: &Lab,
        role: Role,
        exe: &Path,
        args: &[String],
        listen: SocketAddr,
        ready: Option<&'static str>,
    ) -> Result<ServeProcess, String> {
        ServeProcess::spawn_with(lab, role, exe, args, listen, ready, |_| {})
    }

    /// [`ServeProcess::spawn_in`], with `configure` given the command
    /// before it is spawned (e.g. to set or clear environment variables).
    pub fn spawn_with(
        lab: &Lab,
        role: Role,
        exe: &Path,
        args: &[String],
        listen: SocketAddr,
        ready: Option<&'static str>,
        configure: impl FnOnce(&mut Command),
    ) -> Result<ServeProcess, String> {
        let started = Instant::now();
        let what = match args.first().map(String::as_str) {
            Some("connect") => "onedoor connect",
            _ => "onedoor serve",
        };
        let mut cmd = lab.command(role, exe);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if ready.is_some() {
            // The marker is an info line: make sure it is logged.
            let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
            cmd.env(
                "RUST_LOG",
                format!(
                    "{level},onedoor::cli::serve=info,onedoor::cli::connect=info,\
                     onedoor_net::connect=info"
                ),
            )
            .env("NO_COLOR", "1");
        }
        configure(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", exe.display()))?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let seen = Arc::new(AtomicBool::new(ready.is_none()));
        if let Some(stderr) = child.stderr.take() {
            let log = Arc::clone(&log);
            let seen = Arc::clone(&seen);
            // Ends when serve closes its stderr, i.e. when it exits.
            let _ = std::thread::Builder::new()
                .name("serve-log".into())
                .spawn(move || {
                    for line in BufReader::new(stderr).lines() {
                        let Ok(line) = line else { break };
                        tracing::debug!(target: "onedoor_lab::serve", "{line}");
                        if ready.is_some_and(|r| line.contains(r)) {
                            seen.store(true, Ordering::Release);
                        }
                        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                        if log.len() == LOG_LINES {
                            log.pop_front();
                        }
                        log.push_back(line);
                    }
                });
        }
        let mut me = ServeProcess {
            child: Some(child),
            log,
            startup: Duration::ZERO,
        };
        loop {
            if let Some(status) = me.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                // Give the log thread a moment to collect the last words.
                std::thread::sleep(Duration::from_millis(50));
                return Err(format!(
                    "{what} exited ({status}) before listening{}",
                    me.log_tail()
                ));
            }
            let up = seen.load(Ordering::Acquire)
                && lab
                    .run_in(role, || {
                        std::net::TcpStream::connect_timeout(&listen, Duration::from_millis(200))
                            .is_ok()
                    })
                    .map_err(|e| format!("entering the {}: {e}", role.name()))?;
            if up {
                me.startup = started.elapsed();
                return Ok(me);
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "{what} did not {} within {} s{}",
                    match ready {
                        Some(r) => format!("listen on {listen} and log `{r}`"),
                        None => format!("listen on {listen}"),
                    },
                    START_TIMEOUT.as_secs(),
                    me.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The logged lines (of the last few kept) that contain `needle`, in
    /// order, from `needle` on: e.g. `connect`'s `auto: tls on door 443 (…)`
    /// without the log's timestamp and target.
    pub fn logged(&self, needle: &str) -> Vec<String> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter()
            .filter_map(|l| l.find(needle).map(|at| l[at..].to_owned()))
            .collect()
    }

    /// serve's last log lines, indented, or nothing.
    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.is_empty() {
            return String::new();
        }
        let lines: Vec<String> = log
            .iter()
            .rev()
            .take(8)
            .rev()
            .map(|l| format!("\n      serve: {l}"))
            .collect();
        lines.concat()
    }

    /// Stop serve: SIGTERM, then SIGKILL if it has not exited after a short
    /// grace. Returns once it has been reaped.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(child.id() as i32);
        if matches!(child.try_wait(), Ok(None)) {
            let _ = kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if !matches!(child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_story_command_line() {
        let setup = story_setup(Ipv4Addr::new(198, 19, 0, 2), false);
        assert_eq!(
            serve_args(&setup).join(" "),
            "serve -l 198.19.0.2:443 --http 127.0.0.1:80 --anyprot 127.0.0.1:22"
        );
        let setup = story_setup(Ipv4Addr::new(198, 19, 5, 2), true);
        assert_eq!(
            serve_args(&setup).join(" "),
            "serve -l 198.19.5.2:443 --ssh 127.0.0.1:22 --http 127.0.0.1:80 --anyprot 127.0.0.1:2222"
        );
        let mut setup = story_setup(Ipv4Addr::new(198, 19, 0, 2), false);
        setup.tunnel = Some(PathBuf::from("/run/onedoor-lab/instance-0.d/tunnel"));
        assert_eq!(
            serve_args(&setup).join(" "),
            "serve -l 198.19.0.2:443 --http 127.0.0.1:80 --anyprot 127.0.0.1:22 \
             --tunnel --state-dir /run/onedoor-lab/instance-0.d/tunnel --fallback 127.0.0.1:80"
        );
    }
}
