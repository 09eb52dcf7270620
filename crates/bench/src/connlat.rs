//! `connlat`: new-connection latency through a proxy, one connection at a time.
//!
//! Each sample is the wall time from the start of `connect()` to the arrival
//! of the first reply byte: TCP handshake with the proxy, the proxy's accept,
//! sniff and backend connect, the payload's trip to the backend and the first
//! byte back. Then, untimed, the rest of the echo is read (so no unread data
//! turns the close into a reset) and the connection is closed with a FIN
//! before the next one starts. Plain blocking sockets on one thread: no
//! runtime between the clock and the kernel.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::json::Obj;
use crate::stats::summarize;
use crate::sys::{error_kind, ErrorCounts};

/// Arguments of `connlat`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConnlatArgs {
    /// Where to connect (the proxy's front port, or the backend for "direct").
    #[arg(value_parser = crate::parse_addr)]
    addr: SocketAddr,
    /// Number of measured connections.
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// Unmeasured connections made first (caches, lazy allocations).
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Bytes sent right after connecting (escapes: \r \n \t \0 \\ \xHH).
    /// Empty for a server-speaks-first (banner) backend.
    #[arg(long, default_value = crate::payload::DEFAULT)]
    payload: String,
    /// Pause between connecting and sending (included in the measured
    /// time): a client that writes a moment after its connect returned, as
    /// one that first builds a TLS ClientHello does.
    #[arg(long, default_value = "0s", value_parser = crate::parse_duration)]
    think: Duration,
    /// Bound on each connect and each wait for the first reply byte.
    #[arg(long, default_value = "2s", value_parser = crate::parse_duration)]
    timeout: Duration,
    /// Bound on the whole run: stop early and report what was measured.
    #[arg(long, default_value = "120s", value_parser = crate::parse_duration)]
    deadline: Duration,
    /// A label copied into the JSON output.
    #[arg(long, default_value = "")]
    label: String,
}

/// Runs `connlat` and prints its JSON summary.
pub(crate) fn run(args: ConnlatArgs) -> Result<()> {
    let payload = crate::payload::unescape(&args.payload).map_err(anyhow::Error::msg)?;
    let start = Instant::now();
    let mut errors = ErrorCounts::default();
    for _ in 0..args.warmup {
        if start.elapsed() > args.deadline {
            break;
        }
        if let Err(e) = one(args.addr, &payload, args.think, args.timeout) {
            errors.add(error_kind(&e));
        }
    }
    if errors.total() == args.warmup as u64 && args.warmup > 0 {
        bail!(
            "all {} warm-up connections to {} failed: {}",
            args.warmup,
            args.addr,
            errors.to_json()
        );
    }
    let mut errors = ErrorCounts::default();
    let mut samples = Vec::with_capacity(args.count);
    let mut truncated = false;
    for _ in 0..args.count {
        if start.elapsed() > args.deadline {
            truncated = true;
            break;
        }
        match one(args.addr, &payload, args.think, args.timeout) {
            Ok(d) => samples.push(d.as_secs_f64() * 1e6),
            Err(e) => errors.add(error_kind(&e)),
        }
    }
    let mut obj = Obj::new()
        .str("label", &args.label)
        .str("addr", &args.addr.to_string())
        .int("requested", args.count as u64)
        .int("count", samples.len() as u64)
        .int("errors", errors.total())
        .raw("error_kinds", &errors.to_json())
        .str("truncated", if truncated { "deadline" } else { "no" });
    if let Some(s) = summarize(&mut samples) {
        obj = obj
            .num("min_us", s.min)
            .num("p50_us", s.p50)
            .num("p90_us", s.p90)
            .num("p99_us", s.p99)
            .num("max_us", s.max)
            .num("mean_us", s.mean);
    }
    println!("{}", obj.finish());
    if samples.is_empty() {
        bail!("no connection to {} succeeded", args.addr);
    }
    Ok(())
}

/// One measured connection: connect, (pause,) send, first reply byte, close.
fn one(
    addr: SocketAddr,
    payload: &[u8],
    think: Duration,
    timeout: Duration,
) -> io::Result<Duration> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(timeout))?;
    if !think.is_zero() {
        std::thread::sleep(think);
    }
    if !payload.is_empty() {
        s.write_all(payload)?;
    }
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let d = t0.elapsed();
    drain(&mut s, payload.len().saturating_sub(1));
    drop(s);
    Ok(d)
}

/// Reads up to `left` more bytes (the rest of an echo), giving up after a
/// short quiet spell, so a backend that does not echo costs little.
fn drain(s: &mut TcpStream, mut left: usize) {
    if left == 0 || s.set_read_timeout(Some(Duration::from_millis(50))).is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    while left > 0 {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => left = left.saturating_sub(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}
