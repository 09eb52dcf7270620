//! `onedoor probe`: map which doors (ports) this network lets out, each one
//! verified against the user's own onedoor server (SPEC §3).
//!
//! This file parses and checks the flags (exit 2 naming the flag), raises
//! the fd limit, resolves the server, runs `onedoor_net::probe` with a
//! progress bar on a terminal, and writes the results: the table on stderr
//! (`onedoor_proto::report::table`), `--json` on stdout, `--report` as one
//! HTML page. The map made is exit 0, whatever it shows; a run that could
//! not make it (the name doesn't resolve, no sockets) is exit 1.
//!
//! Defaults, and why:
//! - `--tcp top100`: the doors a traveller most wants, in a fraction of a
//!   second on a good path; `1-65535` for the whole map.
//! - `--udp 53,123,443,1194`: DNS, NTP, QUIC and OpenVPN, the UDP doors
//!   worth knowing (and what `serve --reflect`'s example lists); costs at
//!   most two timeouts, in parallel with TCP. `--udp none` skips UDP.
//! - `--rate 2000/s`: every attempt is a new flow in this machine's and
//!   every router's connection-tracking table, and a full table drops our
//!   own SYNs (a false `filtered`). 2,000 new flows a second lets top100
//!   through in one burst and a whole 65,535-door map in about half a
//!   minute on a responsive path, while a small router sees a few thousand
//!   entries a second rather than tens of thousands. This machine's own
//!   table is guarded separately (read from /proc, see
//!   `onedoor_net::probe::pace`). Raise it on a path you know copes.

use std::io::{IsTerminal, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use onedoor_net::probe::{self as shell, Observer, Transport};
use onedoor_proto::probe::{PortSet, PortState, ProbeKey, State};
use onedoor_proto::rate::Rate;
use onedoor_proto::report::{self, Report, Settings};
use onedoor_proto::tunnel::access_key::{parse_server, AccessKey, Fingerprint, SCHEME};

use crate::exit::{Failure, Outcome};

/// The UDP doors probed by default.
const DEFAULT_UDP: &str = "53,123,443,1194";
/// The longest `--timeout` accepted.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// File descriptors kept free of probe sockets (stdio, the runtime, logs).
const FD_RESERVE: u64 = 64;

/// Arguments of `onedoor probe`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Each door gets one state: open (your server answered, verified by its key), \
intercepted (something else answered: a proxy, a captive portal, a NAT, \
handshake-then-silence), rejected (TCP reset or ICMP unreachable), filtered \
(no answer, twice), and for UDP out-only (the server got the datagram, no reply \
came back) or no-reply.\n\n\
The server must run `onedoor serve --reflect ...`. Exit status: 0 when the map \
was made (open doors or not), 1 when it could not be made, 2 for bad flags.\n\n\
Example: onedoor probe door.example.org --fingerprint SHA256:... --tcp 1-65535 \
--report egress.html")]
pub(crate) struct ProbeArgs {
    /// The server running `onedoor serve --reflect`: HOST[:PORT] (IPv6 as
    /// [::1]), or an access key onedoor://TOKEN@HOST:PORT?fp=SHA256:...
    /// Every door is dialled on HOST; PORT is only a door to ask the server
    /// about UDP through when no probed door is open.
    #[arg(value_name = "SERVER")]
    server: String,
    /// TCP doors: 1-65535, top100, a list like 22,80,443, or none.
    #[arg(long, value_name = "PORTS", default_value = "top100")]
    tcp: String,
    /// UDP doors, same syntax (none: skip UDP).
    #[arg(long, value_name = "PORTS", default_value = DEFAULT_UDP)]
    udp: String,
    /// How long to wait for a connect, and again for the reply.
    #[arg(long, value_name = "DURATION", default_value = "1500ms")]
    timeout: String,
    /// At most N attempts in flight at once.
    #[arg(long, value_name = "N", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    concurrency: u32,
    /// At most N new attempts per second (N/s, N/m or N).
    #[arg(long, value_name = "N/s", default_value = "2000/s")]
    rate: String,
    /// The server's fingerprint, as `onedoor init` prints it (not needed
    /// with an access key that has fp=).
    #[arg(long, value_name = "SHA256:...")]
    fingerprint: Option<String>,
    /// Print the map as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Write the map as one self-contained HTML page.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
}

/// The flags, checked.
#[derive(Debug)]
struct Plan {
    host: String,
    port: u16,
    fingerprint: Fingerprint,
    tcp: PortSet,
    udp: PortSet,
    timeout: Duration,
    concurrency: usize,
    rate: u32,
    json: bool,
    report: Option<PathBuf>,
}

pub(crate) fn run(args: ProbeArgs) -> Outcome {
    let plan = plan(args).map_err(Failure::Usage)?;
    let fd_limit = onedoor_net::sys::limits::raise_fd_limit()
        .map_err(|e| tracing::warn!(error = %e, "could not raise the fd limit"))
        .unwrap_or(1024);
    let fit = usize::try_from(fd_limit.saturating_sub(FD_RESERVE).max(1)).unwrap_or(usize::MAX);
    let mut plan = plan;
    if plan.concurrency > fit {
        tracing::warn!(
            asked = plan.concurrency,
            used = fit,
            fd_limit,
            "--concurrency lowered to fit the fd limit"
        );
        plan.concurrency = fit;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(probe(&plan))?;
    drop(runtime);
    write_out(&plan, &report)
}

/// Check the flags; the error names the flag.
fn plan(a: ProbeArgs) -> anyhow::Result<Plan> {
    let (host, port, key_fp) = if a
        .server
        .get(..SCHEME.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(SCHEME))
    {
        let key = AccessKey::from_str(&a.server).map_err(|e| anyhow!("SERVER: {e}"))?;
        (key.server.host, key.server.port, key.fingerprint)
    } else {
        let hp = parse_server(&a.server).map_err(|e| anyhow!("SERVER `{}`: {e}", a.server))?;
        (hp.host, hp.port, None)
    };
    let flag_fp = a
        .fingerprint
        .as_deref()
        .map(|s| Fingerprint::from_str(s).map_err(|e| anyhow!("--fingerprint: {e}")))
        .transpose()?;
    let fingerprint = match (flag_fp, key_fp) {
        (Some(f), Some(k)) if f != k => {
            return Err(anyhow!(
                "--fingerprint {f} differs from the access key's fp={k}: which server is it?"
            ))
        }
        (Some(f), _) | (None, Some(f)) => f,
        (None, None) => {
            return Err(anyhow!(
                "no fingerprint: the probe believes only answers signed by your server, so it \
                 needs the server's fingerprint. Give --fingerprint SHA256:... (printed by \
                 `onedoor init`) or an access key onedoor://TOKEN@HOST:PORT?fp=SHA256:..."
            ))
        }
    };
    let ports = |flag: &str, s: &str| -> anyhow::Result<PortSet> {
        if s.trim().eq_ignore_ascii_case("none") {
            return Ok(PortSet::new());
        }
        PortSet::parse(s).map_err(|e| anyhow!("{flag}: {e} (or none)"))
    };
    let tcp = ports("--tcp", &a.tcp)?;
    let udp = ports("--udp", &a.udp)?;
    if tcp.is_empty() && udp.is_empty() {
        return Err(anyhow!("--tcp none and --udp none: nothing to probe"));
    }
    let timeout = humantime::parse_duration(&a.timeout)
        .map_err(|e| anyhow!("--timeout `{}`: {e}", a.timeout))?;
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(anyhow!(
            "--timeout {}: must be more than 0 and at most {}",
            a.timeout,
            humantime::format_duration(MAX_TIMEOUT)
        ));
    }
    let rate_text = if a.rate.trim().bytes().all(|b| b.is_ascii_digit()) {
        format!("{}/s", a.rate.trim())
    } else {
        a.rate.clone()
    };
    let rate = Rate::from_str(&rate_text).map_err(|e| anyhow!("--rate: {e}"))?;
    if let Some(path) = &a.report {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            if !dir.is_dir() {
                return Err(anyhow!(
                    "--report {}: directory {} does not exist",
                    path.display(),
                    dir.display()
                ));
            }
        }
        if path.is_dir() {
            return Err(anyhow!("--report {}: is a directory", path.display()));
        }
    }
    Ok(Plan {
        host,
        port,
        fingerprint,
        tcp,
        udp,
        timeout,
        concurrency: usize::try_from(a.concurrency).unwrap_or(usize::MAX),
        rate: rate.per_second,
        json: a.json,
        report: a.report,
    })
}

/// Resolve, probe, and gather the report.
async fn probe(plan: &Plan) -> Result<Report, Failure> {
    let addr: SocketAddr = tokio::net::lookup_host((plan.host.as_str(), plan.port))
        .await
        .map_err(|e| Failure::Runtime(anyhow!("cannot resolve {}: {e}", plan.host)))?
        .next()
        .ok_or_else(|| Failure::Runtime(anyhow!("{} has no address", plan.host)))?;
    let budget = shell::conntrack_budget();
    let config = shell::Config {
        ip: addr.ip(),
        key: ProbeKey::new(*plan.fingerprint.digest()),
        tcp: plan.tcp.clone(),
        udp: plan.udp.clone(),
        timeout: plan.timeout,
        concurrency: plan.concurrency,
        rate_per_second: plan.rate,
        budget,
        ask_door: Some(plan.port),
    };
    let total = (plan.tcp.len() + plan.udp.len()) as u64;
    let target = if addr.ip().to_string() == plan.host {
        plan.host.clone()
    } else {
        format!("{} ({})", plan.host, addr.ip())
    };
    eprintln!(
        "onedoor probe: {} TCP and {} UDP doors of {target}, server {}",
        plan.tcp.len(),
        plan.udp.len(),
        plan.fingerprint
    );
    if let Some(b) = budget {
        tracing::debug!(
            attempts = b.attempts,
            window = ?b.window,
            "local conntrack budget"
        );
    }
    let progress = Arc::new(Progress::new(total));
    let started = SystemTime::now();
    let clock = Instant::now();
    let outcome = tokio::select! {
        r = shell::run(config, progress.clone()) => r.map_err(|e| Failure::Runtime(e.into()))?,
        _ = tokio::signal::ctrl_c() => {
            progress.finish();
            return Err(Failure::Runtime(anyhow!("interrupted: no map made")));
        }
    };
    progress.finish();
    if let Some(why) = &outcome.ask_failed {
        tracing::debug!("UDP: could not ask the server which datagrams arrived: {why}");
    }
    Ok(Report {
        server: plan.host.clone(),
        address: Some(addr.ip()),
        fingerprint: *plan.fingerprint.digest(),
        started,
        duration: clock.elapsed(),
        settings: Settings {
            timeout: plan.timeout,
            concurrency: plan.concurrency,
            rate_per_second: plan.rate,
        },
        tcp: outcome.tcp,
        udp: outcome.udp,
    })
}

/// The table on stderr, JSON on stdout, the page to its file.
fn write_out(plan: &Plan, report: &Report) -> Outcome {
    eprint!("\n{}", report::table::table(report));
    if plan.json {
        let mut out = std::io::stdout().lock();
        out.write_all(report::json::to_string(report).as_bytes())
            .and_then(|()| out.flush())
            .context("writing the JSON to stdout")?;
    }
    if let Some(path) = &plan.report {
        std::fs::write(path, report::html::html(report))
            .with_context(|| format!("writing the report to {}", path.display()))?;
        eprintln!("Report written to {}", path.display());
    }
    Ok(())
}

/// The progress bar, on a terminal only.
struct Progress {
    bar: Option<ProgressBar>,
    open: AtomicUsize,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} doors, {msg} (eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message("0 open");
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            open: AtomicUsize::new(0),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn done(&self, _: Transport, _: u16, state: &PortState) {
        let open = if state.state() == State::Open {
            self.open.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.open.load(Ordering::Relaxed)
        };
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!("{open} open"));
        }
    }

    fn asking(&self, door: u16) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "asking the server through door {door} which UDP datagrams arrived"
            ));
        }
    }
}
