//! `hold`: many concurrent connections through a proxy, held open.
//!
//! Phase 1 opens `--count` connections, at most `--parallel` at a time; each
//! sends the payload (so a sniffing proxy routes it) and waits for the whole
//! echo, which proves the pair client→proxy→backend is up. Then one line
//! `{"event":"established",…}` is printed and flushed: the caller can now
//! measure the proxy's memory.
//!
//! Phase 2 holds them. A connection the proxy closes or resets meanwhile is
//! counted as dropped. SIGTERM, SIGINT, a line or EOF on stdin (`--stdin`)
//! or `--max-hold` ends the hold.
//!
//! Phase 3 writes one byte on every survivor and waits for its echo (unless
//! `--no-verify`), prints `{"event":"released",…}` and closes everything.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::timeout;

use crate::json::Obj;
use crate::sys::{error_kind, raise_nofile, ErrorCounts};

/// Arguments of `hold`.
#[derive(Debug, clap::Args)]
pub(crate) struct HoldArgs {
    /// Where to connect (the proxy's front port).
    #[arg(value_parser = crate::parse_addr)]
    addr: SocketAddr,
    /// Number of concurrent connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// First bytes each connection sends (escapes as in `connlat`). The
    /// backend must echo them.
    #[arg(long, default_value = crate::payload::DEFAULT)]
    payload: String,
    /// Connections being set up at the same time.
    #[arg(long, default_value_t = 128)]
    parallel: usize,
    /// Bound on each connect, each echo wait and each liveness check.
    #[arg(long, default_value = "5s", value_parser = crate::parse_duration)]
    timeout: Duration,
    /// Bound on the whole set-up phase; connections not started by then fail
    /// as "deadline".
    #[arg(long, default_value = "120s", value_parser = crate::parse_duration)]
    deadline: Duration,
    /// Also end the hold on a line or EOF on stdin.
    #[arg(long)]
    stdin: bool,
    /// End the hold after this long even without a signal.
    #[arg(long, default_value = "900s", value_parser = crate::parse_duration)]
    max_hold: Duration,
    /// Skip the liveness check at release (for a backend that does not echo).
    #[arg(long)]
    no_verify: bool,
    /// A label copied into the JSON output.
    #[arg(long, default_value = "")]
    label: String,
}

/// How one connection ended.
#[derive(Debug)]
enum Fate {
    /// Never established (connect or echo failed; counted in phase 1).
    Failed,
    /// Established, then closed or reset by the other side during the hold.
    Dropped(&'static str),
    /// Survived the hold and (unless `--no-verify`) echoed a byte at release.
    Alive,
    /// Survived the hold but failed the liveness check at release.
    VerifyFailed(&'static str),
}

/// Runs `hold`.
pub(crate) fn run(args: HoldArgs) -> Result<()> {
    let nofile = raise_nofile();
    if (nofile as usize) < args.count + 16 {
        eprintln!(
            "onedoor-bench hold: fd limit {nofile} is too small for {} connections",
            args.count
        );
    }
    let payload = crate::payload::unescape(&args.payload).map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(hold(args, payload))
}

async fn hold(args: HoldArgs, payload: Vec<u8>) -> Result<()> {
    // Installed first, so an early signal is not lost.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let payload: Arc<[u8]> = payload.into();
    let gate = Arc::new(Semaphore::new(args.parallel.max(1)));
    let (release_tx, release_rx) = watch::channel(false);
    let (up_tx, mut up_rx) = mpsc::unbounded_channel::<Option<&'static str>>();
    let start = Instant::now();
    let setup_deadline = start + args.deadline;
    let mut tasks = JoinSet::new();
    for _ in 0..args.count {
        let conn = Conn {
            addr: args.addr,
            payload: payload.clone(),
            timeout: args.timeout,
            verify: !args.no_verify,
        };
        tasks.spawn(conn.run(
            gate.clone(),
            setup_deadline,
            up_tx.clone(),
            release_rx.clone(),
        ));
    }
    drop(up_tx);

    // Phase 1: wait until every connection has reported up or failed.
    let mut established = 0u64;
    let mut failed = ErrorCounts::default();
    while let Some(r) = up_rx.recv().await {
        match r {
            None => established += 1,
            Some(kind) => failed.add(kind),
        }
    }
    let setup_ms = start.elapsed().as_millis() as u64;
    println!(
        "{}",
        Obj::new()
            .str("event", "established")
            .str("label", &args.label)
            .str("addr", &args.addr.to_string())
            .int("requested", args.count as u64)
            .int("established", established)
            .int("failed", failed.total())
            .raw("failed_kinds", &failed.to_json())
            .int("setup_ms", setup_ms)
            .finish()
    );

    // Phase 2: hold.
    let held_from = Instant::now();
    let why = tokio::select! {
        _ = term.recv() => "sigterm",
        _ = int.recv() => "sigint",
        _ = stdin_closed(args.stdin) => "stdin",
        _ = tokio::time::sleep(args.max_hold) => "max_hold",
    };
    let held_ms = held_from.elapsed().as_millis() as u64;

    // Phase 3: release, verify, close.
    let _ = release_tx.send(true);
    let mut alive = 0u64;
    let mut dropped = ErrorCounts::default();
    let mut verify_failed = ErrorCounts::default();
    let bound = args.timeout + Duration::from_secs(5);
    let collect = async {
        while let Some(res) = tasks.join_next().await {
            match res {
                Ok(Fate::Alive) => alive += 1,
                Ok(Fate::Dropped(k)) => dropped.add(k),
                Ok(Fate::VerifyFailed(k)) => verify_failed.add(k),
                Ok(Fate::Failed) => {}
                Err(_) => verify_failed.add("panic"),
            }
        }
    };
    let complete = timeout(bound, collect).await.is_ok();
    println!(
        "{}",
        Obj::new()
            .str("event", "released")
            .str("label", &args.label)
            .str("why", why)
            .int("held_ms", held_ms)
            .int("established", established)
            .int("alive", alive)
            .int("dropped", dropped.total())
            .raw("dropped_kinds", &dropped.to_json())
            .int("verify_failed", verify_failed.total())
            .raw("verify_failed_kinds", &verify_failed.to_json())
            .str("verify", if args.no_verify { "skipped" } else { "echo" })
            .str("complete", if complete { "yes" } else { "timeout" })
            .finish()
    );
    tasks.abort_all();
    Ok(())
}

/// Resolves on a line or EOF on stdin when `enabled`, else never.
async fn stdin_closed(enabled: bool) {
    if !enabled {
        return std::future::pending().await;
    }
    let mut line = String::new();
    let mut rd = tokio::io::BufReader::new(tokio::io::stdin());
    let _ = rd.read_line(&mut line).await;
}

/// One held connection's parameters.
struct Conn {
    addr: SocketAddr,
    payload: Arc<[u8]>,
    timeout: Duration,
    verify: bool,
}

impl Conn {
    /// Sets up, reports on `up` (`None` = established), holds until
    /// `release`, then verifies.
    async fn run(
        self,
        gate: Arc<Semaphore>,
        deadline: Instant,
        up: mpsc::UnboundedSender<Option<&'static str>>,
        mut release: watch::Receiver<bool>,
    ) -> Fate {
        let setup = {
            let _permit = gate.acquire().await;
            if Instant::now() > deadline {
                Err("deadline")
            } else {
                self.setup().await
            }
        };
        let mut sock = match setup {
            Ok(s) => {
                let _ = up.send(None);
                s
            }
            Err(kind) => {
                let _ = up.send(Some(kind));
                return Fate::Failed;
            }
        };
        drop(up);
        let mut b = [0u8; 1];
        tokio::select! {
            _ = release.wait_for(|r| *r) => {}
            r = sock.read(&mut b) => {
                return Fate::Dropped(match r {
                    Ok(0) => "eof",
                    Ok(_) => "unexpected_data",
                    Err(e) => error_kind(&e),
                });
            }
        }
        if !self.verify {
            return Fate::Alive;
        }
        let check = async {
            sock.write_all(b"x").await?;
            sock.read_exact(&mut b).await
        };
        match timeout(self.timeout, check).await {
            Ok(Ok(_)) => Fate::Alive,
            Ok(Err(e)) => Fate::VerifyFailed(error_kind(&e)),
            Err(_) => Fate::VerifyFailed("timeout"),
        }
    }

    /// Connect, send the payload, read its whole echo.
    async fn setup(&self) -> Result<TcpStream, &'static str> {
        let step = async {
            let mut s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            s.write_all(&self.payload).await?;
            let mut echo = vec![0u8; self.payload.len()];
            s.read_exact(&mut echo).await?;
            Ok::<_, std::io::Error>(s)
        };
        match timeout(self.timeout, step).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(error_kind(&e)),
            Err(_) => Err("timeout"),
        }
    }
}
