//! `onedoor lab`: the flags, the root check (with a re-run through `sudo`),
//! the signals that stop the story, and the outputs (`--json`, `--report`).
//! The lab itself is `onedoor-lab`.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::anyhow;
use onedoor_lab::Policy;

use crate::exit::{Failure, Outcome};

/// Arguments of `onedoor lab`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Needs root (as a user it re-runs itself through sudo). \
Everything it makes lives in network namespaces named onedoor-* in 198.18.0.0/15, \
and is removed at the end, also on Ctrl-C and SIGTERM.\n\n\
Examples:\n  sudo onedoor lab\n  sudo onedoor lab --policy all --report lab.html\n  \
sudo onedoor lab --policy proxy-only --keep\n  sudo onedoor lab --policy web --full-map")]
pub(crate) struct LabArgs {
    /// The router's egress policy: web, https-only, web-reject, intercept,
    /// proxy-only, or all (one story each) [default: all; web with --keep].
    #[arg(long, value_name = "POLICY")]
    policy: Option<Policies>,
    /// Write a self-contained HTML report (inline SVG, no network) to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// After the story, leave the lab up until Ctrl-C and say how to step
    /// inside.
    #[arg(long)]
    keep: bool,
    /// Remove what killed labs left behind (live labs are left alone), then
    /// exit.
    #[arg(long, conflicts_with_all = ["keep", "bare", "report", "real_ssh", "instance", "full_map"])]
    clean: bool,
    /// Put the machine's real sshd behind door 22 and log in with the real
    /// ssh through door 443 (needs OpenSSH installed; under proxy-only, ssh
    /// goes through the router's proxy with socat as its ProxyCommand).
    #[arg(long)]
    real_ssh: bool,
    /// Build the lab and keep it up with nothing running inside (no
    /// services, no serve, no story), for benchmarks and experiments.
    #[arg(long, conflicts_with_all = ["report", "real_ssh", "full_map"])]
    bare: bool,
    /// Map all 65,535 TCP doors in the first chapter instead of the 100
    /// most useful ones (a few seconds more per policy).
    #[arg(long)]
    full_map: bool,
    /// Use lab instance N (0-255: names onedoor-*-N, addresses 198.18.N.0/24
    /// and 198.19.N.0/24). Default: the lowest free one.
    #[arg(long, value_name = "N")]
    instance: Option<u8>,
    /// Set on the re-run through sudo (stops a second one).
    #[arg(long, hide = true)]
    via_sudo: bool,
}

/// `--policy`: one policy or `all`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Policies(Vec<Policy>);

impl FromStr for Policies {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "all" {
            return Ok(Policies(Policy::ALL.to_vec()));
        }
        s.parse::<Policy>()
            .map(|p| Policies(vec![p]))
            .map_err(|e| format!("{e}, or all"))
    }
}

impl LabArgs {
    /// The policies to run: as given, else every one (one with `--keep`).
    fn policies(&self) -> Vec<Policy> {
        match &self.policy {
            Some(p) => p.0.clone(),
            None if self.keep || self.bare => vec![Policy::Web],
            None => Policy::ALL.to_vec(),
        }
    }
}

pub(crate) fn run(args: LabArgs) -> Outcome {
    if (args.keep || args.bare) && args.policies().len() > 1 {
        return Err(Failure::Usage(anyhow!(
            "--keep keeps one lab up: choose one --policy, not all"
        )));
    }
    imp::run(args)
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;

    pub(super) fn run(_args: LabArgs) -> Outcome {
        Err(Failure::Usage(anyhow!(
            "onedoor lab runs on Linux only: it builds Linux network namespaces and an \
             nftables firewall. Try it on a Linux machine or VM."
        )))
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::ffi::OsString;
    use std::os::unix::process::CommandExt;

    use anyhow::Context;
    use onedoor_lab::story::{narrate::Narrator, run_story, StoryError, StoryOptions};
    use onedoor_lab::{Instance, LabError, LabReport, LockError};
    use tokio::signal::unix::{signal, SignalKind};

    use super::*;

    pub(super) fn run(args: LabArgs) -> Outcome {
        if !nix::unistd::geteuid().is_root() {
            return rerun_as_root(&args);
        }
        if args.clean {
            return clean(args.json);
        }
        onedoor_lab::preflight().map_err(|e| match e {
            LabError::NotRoot => Failure::Usage(anyhow!(e)),
            e => Failure::Usage(anyhow!("{e}")),
        })?;
        let exe = std::env::current_exe().context("finding this program's own path")?;
        let opts = StoryOptions {
            policies: args.policies(),
            instance: args.instance.map(Instance),
            exe,
            real_ssh: args.real_ssh,
            keep: args.keep,
            bare: args.bare,
            map: if args.full_map {
                onedoor_lab::MapPlan::full()
            } else {
                onedoor_lab::MapPlan::story()
            },
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let (runs, end) = runtime
            .block_on(async {
                let mut int = signal(SignalKind::interrupt())?;
                let mut term = signal(SignalKind::terminate())?;
                let mut hup = signal(SignalKind::hangup())?;
                let stop = async move {
                    tokio::select! {
                        _ = int.recv() => "Ctrl-C".to_owned(),
                        _ = term.recv() => "SIGTERM".to_owned(),
                        _ = hup.recv() => "SIGHUP".to_owned(),
                    }
                };
                let mut narrator = Narrator::stderr();
                Ok::<_, std::io::Error>(run_story(&opts, &mut narrator, stop).await)
            })
            .context("installing signal handlers")?;
        drop(runtime);

        let report = LabReport::new(runs);
        if let Some(path) = &args.report {
            std::fs::write(path, onedoor_lab::render_html(&report))
                .with_context(|| format!("--report {}", path.display()))?;
            eprintln!("Report: {}", path.display());
        }
        if args.json {
            println!("{}", report.to_json());
        }
        match end {
            Err(StoryError::Lab(LabError::Lock(e @ LockError::Busy { .. }))) => {
                Err(Failure::Usage(anyhow!("--instance: {e}")))
            }
            Err(e) => Err(Failure::Runtime(anyhow!(e))),
            Ok(()) if report.ok || args.bare => Ok(()),
            Ok(()) => {
                let failed: Vec<&str> = report
                    .runs
                    .iter()
                    .filter(|r| !r.verdict.as_ref().is_some_and(|v| v.holds))
                    .map(|r| r.policy.name())
                    .collect();
                Err(Failure::Runtime(anyhow!(
                    "the story did not hold under policy {}",
                    failed.join(", ")
                )))
            }
        }
    }

    fn clean(json: bool) -> Outcome {
        let report = onedoor_lab::clean_leftovers().map_err(|e| Failure::Runtime(anyhow!(e)))?;
        if report.removed.is_empty() {
            eprintln!("Nothing to clean: no lab leftovers.");
        } else {
            eprintln!("Removed: {}.", report.removed.join(", "));
        }
        for (instance, pid) in &report.busy {
            let who = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
            eprintln!("Left alone: lab instance {instance} is running{who}.");
        }
        for s in &report.strangers {
            eprintln!(
                "Note: {s} was still inside; its namespace is gone from /run/netns all the same."
            );
        }
        if json {
            let busy: Vec<u8> = report.busy.iter().map(|(i, _)| i.0).collect();
            println!(
                "{{\"removed\": {:?}, \"busy_instances\": {:?}}}",
                report.removed, busy
            );
        }
        Ok(())
    }

    fn which(name: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    }

    /// Not root: re-run this very command through sudo, or say what to type.
    fn rerun_as_root(args: &LabArgs) -> Outcome {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("onedoor"));
        let mut argv: Vec<OsString> = std::env::args_os().skip(1).collect();
        let shown = std::iter::once(exe.display().to_string())
            .chain(argv.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" ");
        let why = "onedoor lab needs root: it builds network namespaces and a firewall";
        if args.via_sudo {
            return Err(Failure::Usage(anyhow!(
                "{why}, and sudo did not make it root"
            )));
        }
        match which("sudo") {
            Some(sudo) => {
                eprintln!("{why}. Asking sudo: sudo {shown}");
                argv.push("--via-sudo".into());
                let err = std::process::Command::new(sudo)
                    .arg("--")
                    .arg(&exe)
                    .args(&argv)
                    .exec();
                Err(Failure::Usage(anyhow!("{why}; running sudo failed: {err}")))
            }
            None => Err(Failure::Usage(anyhow!(
                "{why}. sudo is not installed here; as root, run:\n  {}",
                su_command(&shown)
            ))),
        }
    }

    /// The command to type, e.g. `su -c '/path/onedoor lab'`.
    fn su_command(shown: &str) -> String {
        format!("su -c '{}'", shown.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse() {
        assert_eq!("web".parse::<Policies>().unwrap().0, vec![Policy::Web]);
        assert_eq!("all".parse::<Policies>().unwrap().0.len(), 5);
        let e = "open".parse::<Policies>().unwrap_err();
        assert!(
            e.contains("unknown policy `open`") && e.ends_with("or all"),
            "{e}"
        );
    }
}
