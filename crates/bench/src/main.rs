//! `onedoor-bench`: the small load tools `bench/serve.sh` needs where no
//! Debian tool measures well.
//!
//! - `connlat` — new-connection latency: connect, send a small client-first
//!   payload, wait for the first reply byte, close; percentiles as JSON.
//! - `hold` — open N concurrent connections (each sends a first line so a
//!   sniffing proxy routes it), report when they are established, keep them
//!   open until a signal (or stdin), then check which are still alive.
//! - `echo-server` — a small echo (optionally banner) backend for both.
//! - `cputree` — CPU seconds of a process tree (or several, summed) over an
//!   interval, children that come and go included (sslh-fork, socat).
//!
//! Every mode prints one JSON object per line on stdout, so a shell script
//! can read the figures with `jq`. Nothing here is a library; it is not
//! published.

mod connlat;
mod cputree;
mod echo;
mod hold;
mod json;
mod payload;
mod stats;
mod sys;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Load tools for the `onedoor serve` benchmark (bench/serve.sh).
#[derive(Debug, Parser)]
#[command(name = "onedoor-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The tool to run.
#[derive(Debug, Subcommand)]
enum Command {
    /// New-connection latency: connect, send PAYLOAD, wait for the first
    /// reply byte, close; repeated COUNT times in sequence. Prints
    /// {"p50_us":…,"p90_us":…,"p99_us":…,…}.
    Connlat(connlat::ConnlatArgs),
    /// Open COUNT concurrent connections, each sending PAYLOAD and waiting for
    /// its echo; print {"event":"established",…}; hold them until SIGTERM,
    /// SIGINT (or a line / EOF on stdin with --stdin); then check each is
    /// still alive and print {"event":"released",…}.
    Hold(hold::HoldArgs),
    /// Echo every byte back (after an optional banner). A backend for
    /// `connlat` and `hold`.
    EchoServer(echo::EchoArgs),
    /// CPU time of PID and all its descendants (sampled from /proc) from
    /// start until SIGTERM/SIGINT; prints {"cpu_ms":…,…}. With several PIDs
    /// (a tunnel's client and server), the sum of their trees.
    Cputree(cputree::CputreeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Connlat(a) => connlat::run(a),
        Command::Hold(a) => hold::run(a),
        Command::EchoServer(a) => echo::run(a),
        Command::Cputree(a) => cputree::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("onedoor-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses an address argument (`127.0.0.1:7000`, `[::1]:7000`).
fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|e| format!("{s:?} is not IP:PORT ({e})"))
}

/// Parses a duration given as seconds with an optional fraction (`2`, `0.5`)
/// or with a unit suffix (`500ms`, `2s`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 2, 0.5s, 500ms)"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("{s:?} is not a duration (e.g. 2, 0.5s, 500ms)"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("0.5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("abc").is_err());
    }

    #[test]
    fn addrs() {
        assert!(parse_addr("127.0.0.1:7000").is_ok());
        assert!(parse_addr("[::1]:7000").is_ok());
        assert!(parse_addr("localhost:7000").is_err());
    }
}
