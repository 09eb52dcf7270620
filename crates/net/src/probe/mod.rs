//! `onedoor probe`'s async shell: dials every door of the server, sends a
//! sealed hello through it, and asks `onedoor_proto::probe` what each
//! answer means.
//!
//! One task per door, at most `concurrency` of them at a time, each making
//! its attempts one after the other as [`classify_tcp`] / [`classify_udp`]
//! say ([`Next::Attempt`] again after silence, so a filtered verdict is
//! tried twice before it is believed). Every attempt first books a start
//! time with the pacer ([`pace`]: `--rate` and the local conntrack budget).
//!
//! - **TCP** (`tcp.rs`): connect within the timeout; send the hello (kind
//!   `Tcp`, the dialled port, a fresh nonce, the time, the run id); read
//!   until [`ProbeKey::check_reply`] decides, the peer closes, or the
//!   timeout. Refusals map to `rejected`, a connect that never completes to
//!   `filtered`, anything after a completed handshake that is not our
//!   server's verified reply for this port to `intercepted`.
//! - **UDP** (`udp.rs`): one connected socket per door (so the kernel
//!   reports ICMP port unreachable, which one shared socket would not
//!   see), a hello datagram per attempt, replies matched by the hellos'
//!   reply ids. Doors that stay silent wait until all others are done; then
//!   the server is asked, through an open TCP door (443 first), which of
//!   the run's UDP hellos arrived ([`HelloKind::Arrivals`]): `out-only` or
//!   `no-reply`. With no open door to ask through, `no-reply` says it could
//!   not ask.
//!
//! Local failures (out of file descriptors or ephemeral ports) say nothing
//! about a door: the attempt is made again after a short pause, and a run
//! that stays starved fails with [`ProbeError::LocalResources`].
//!
//! Time is bounded by construction: each attempt takes at most twice the
//! timeout (connect, then the reply), each door at most [`MAX_TRIES`]
//! attempts, and the arrivals query at most [`ASK_BOUND`].

pub mod pace;
mod tcp;
#[cfg(test)]
mod tests;
mod udp;

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use onedoor_proto::probe::{
    classify_tcp, classify_udp, ArrivalStatus, Hello, HelloKind, Next, PortSet, PortState,
    ProbeKey, TcpAttempt, UdpAttempt, HELLO_LEN, MAX_TRIES, NONCE_LEN, RUN_ID_LEN,
};
use onedoor_proto::report::Doors;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use pace::{conntrack_budget, Budget};

/// The longest the arrivals query may take, whatever the timeout (a report
/// of 131,070 arrivals is 2.4 MB).
pub const ASK_BOUND: Duration = Duration::from_secs(60);
/// How many open doors the arrivals query is tried through.
const ASK_DOORS: usize = 3;
/// Pauses after a local failure before an attempt is given up: about 25 s
/// in all.
const LOCAL_RETRIES: u32 = 30;

/// What to probe and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server's address: every door is dialled on it.
    pub ip: IpAddr,
    /// The key from the server's fingerprint.
    pub key: ProbeKey,
    /// The TCP doors.
    pub tcp: PortSet,
    /// The UDP doors.
    pub udp: PortSet,
    /// The connect timeout, and the wait for a reply.
    pub timeout: Duration,
    /// The most attempts in flight (at least 1).
    pub concurrency: usize,
    /// The most new attempts per second (at least 1).
    pub rate_per_second: u32,
    /// The local conntrack budget ([`conntrack_budget`]), if any.
    pub budget: Option<Budget>,
    /// A TCP door to ask the arrivals query through when no probed door is
    /// open (the port of `SERVER`), unless it was probed and found not open.
    pub ask_door: Option<u16>,
}

/// Which transport a door is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// Told about the run's progress (the CLI's progress bar). Called from the
/// probe's tasks: keep it quick.
pub trait Observer: Send + Sync {
    /// A door's state is known.
    fn done(&self, transport: Transport, port: u16, state: &PortState) {
        let _ = (transport, port, state);
    }

    /// The UDP doors that stayed silent are being asked about through TCP
    /// door `door`.
    fn asking(&self, door: u16) {
        let _ = door;
    }
}

/// An observer that ignores everything.
impl Observer for () {}

/// The map the run made.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The TCP doors.
    pub tcp: Doors,
    /// The UDP doors.
    pub udp: Doors,
    /// The TCP door the arrivals query went through, if it succeeded.
    pub asked_through: Option<u16>,
    /// Why the server could not be asked about silent UDP doors, if it
    /// could not.
    pub ask_failed: Option<String>,
}

/// Why a run could not make its map.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// This machine kept running out of sockets, file descriptors or
    /// ephemeral ports.
    #[error("this machine ran out of sockets ({0}): lower --concurrency or raise the fd limit")]
    LocalResources(#[source] io::Error),
    /// A socket error that says nothing about the door and will not pass
    /// (no IPv6 here, …).
    #[error("cannot probe from here: {0}")]
    Local(#[source] io::Error),
    /// The OS random source failed.
    #[error("the system's random source failed: {0}")]
    Random(String),
}

/// What an attempt's socket error means for the run, when it is not about
/// the door.
#[derive(Debug)]
enum LocalError {
    /// Wait and try again (EMFILE, EADDRNOTAVAIL, ENOBUFS…).
    Transient(io::Error),
    /// Give up the run.
    Fatal(io::Error),
}

impl LocalError {
    fn of(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(
                libc::EMFILE
                | libc::ENFILE
                | libc::ENOBUFS
                | libc::ENOMEM
                | libc::EADDRNOTAVAIL
                | libc::EADDRINUSE
                | libc::EAGAIN
                | libc::EINTR,
            ) => LocalError::Transient(e),
            _ => LocalError::Fatal(e),
        }
    }
}

/// What every door's task shares.
struct Shared {
    ip: IpAddr,
    key: ProbeKey,
    run: [u8; RUN_ID_LEN],
    timeout: Duration,
    pacer: Mutex<pace::Pacer>,
    observer: Arc<dyn Observer>,
}

impl Shared {
    /// A fresh sealed hello for `port` (nonces the codec refuses are
    /// redrawn).
    fn hello(&self, kind: HelloKind, port: u16) -> Result<(Hello, [u8; HELLO_LEN]), ProbeError> {
        loop {
            let mut nonce = [0; NONCE_LEN];
            getrandom::fill(&mut nonce).map_err(|e| ProbeError::Random(e.to_string()))?;
            let hello = Hello {
                kind,
                port,
                nonce,
                unix_secs: unix_now(),
                run: self.run,
            };
            if let Ok(bytes) = self.key.seal(&hello) {
                return Ok((hello, bytes));
            }
        }
    }

    /// Wait for this attempt's slot.
    async fn pace(&self) {
        let at = self
            .pacer
            .lock()
            .expect("pacer lock")
            .reserve(Instant::now());
        tokio::time::sleep_until(at).await;
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Pauses after local failures, then gives up.
struct Starved(u32);

impl Starved {
    async fn pause(&mut self, e: LocalError) -> Result<(), ProbeError> {
        match e {
            LocalError::Fatal(e) => Err(ProbeError::Local(e)),
            LocalError::Transient(e) if self.0 >= LOCAL_RETRIES => {
                Err(ProbeError::LocalResources(e))
            }
            LocalError::Transient(e) => {
                self.0 += 1;
                tracing::debug!(error = %e, pause = self.0, "local shortage; trying again");
                let ms = (10u64 << self.0.min(7)).min(1000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(())
            }
        }
    }
}

/// What a door's task comes back with.
enum Finished {
    Done(Transport, u16, PortState),
    /// A UDP door that stayed silent, waiting for the arrivals report.
    Silent(Silent),
}

/// A UDP door that stayed silent: its attempts and the nonces of its
/// hellos.
struct Silent {
    port: u16,
    attempts: Vec<UdpAttempt>,
    nonces: Vec<[u8; NONCE_LEN]>,
}

/// Probe every door of `config` and return the map. Doors are dialled on
/// `config.ip` only.
pub async fn run(config: Config, observer: Arc<dyn Observer>) -> Result<Outcome, ProbeError> {
    let mut run = [0; RUN_ID_LEN];
    getrandom::fill(&mut run).map_err(|e| ProbeError::Random(e.to_string()))?;
    let shared = Arc::new(Shared {
        ip: config.ip,
        key: config.key.clone(),
        run,
        timeout: config.timeout,
        pacer: Mutex::new(pace::Pacer::new(config.rate_per_second, config.budget)),
        observer,
    });
    let mut outcome = Outcome {
        tcp: Doors::new(config.tcp.clone()),
        udp: Doors::new(config.udp.clone()),
        ..Outcome::default()
    };
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut silent = Vec::new();
    // UDP first: its doors wait out their silence while TCP goes on.
    let jobs = config
        .udp
        .iter()
        .map(|p| (Transport::Udp, p))
        .chain(config.tcp.iter().map(|p| (Transport::Tcp, p)));
    for (transport, port) in jobs {
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let sh = shared.clone();
        tasks.spawn(async move {
            let r = match transport {
                Transport::Tcp => tcp_door(&sh, port).await,
                Transport::Udp => udp_door(&sh, port).await,
            };
            drop(slot);
            r
        });
        while let Some(r) = tasks.try_join_next() {
            collect(r, &shared, &mut outcome, &mut silent)?;
        }
    }
    while let Some(r) = tasks.join_next().await {
        collect(r, &shared, &mut outcome, &mut silent)?;
    }
    if !silent.is_empty() {
        ask(&shared, &config, &mut outcome, silent).await?;
    }
    Ok(outcome)
}

fn collect(
    r: Result<Result<Finished, ProbeError>, tokio::task::JoinError>,
    shared: &Shared,
    outcome: &mut Outcome,
    silent: &mut Vec<Silent>,
) -> Result<(), ProbeError> {
    let finished = match r {
        Ok(f) => f?,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => unreachable!("door tasks are not cancelled while collected: {e}"),
    };
    match finished {
        Finished::Done(t, port, state) => {
            shared.observer.done(t, port, &state);
            match t {
                Transport::Tcp => outcome.tcp.set(port, state),
                Transport::Udp => outcome.udp.set(port, state),
            }
        }
        Finished::Silent(s) => silent.push(s),
    }
    Ok(())
}

/// One TCP door, attempt after attempt until classified.
async fn tcp_door(sh: &Shared, port: u16) -> Result<Finished, ProbeError> {
    let mut attempts: Vec<TcpAttempt> = Vec::with_capacity(MAX_TRIES);
    let mut starved = Starved(0);
    loop {
        match classify_tcp(port, &attempts) {
            Next::Done(state) => return Ok(Finished::Done(Transport::Tcp, port, state)),
            Next::Attempt => {
                sh.pace().await;
                let (hello, bytes) = sh.hello(HelloKind::Tcp, port)?;
                match tcp::attempt(sh, port, &hello, &bytes).await {
                    Ok(a) => attempts.push(a),
                    Err(e) => starved.pause(e).await?,
                }
            }
            // classify_tcp never asks for arrivals; treat it as one more try.
            Next::AskArrivals => attempts.push(TcpAttempt::NoAnswer),
        }
    }
}

/// One UDP door: its socket, then attempt after attempt until classified
/// or silent.
async fn udp_door(sh: &Shared, port: u16) -> Result<Finished, ProbeError> {
    let mut starved = Starved(0);
    let socket = loop {
        match udp::socket(sh.ip, port).await {
            Ok(s) => break s,
            Err(e) => starved.pause(e).await?,
        }
    };
    let mut attempts: Vec<UdpAttempt> = Vec::with_capacity(MAX_TRIES);
    let mut hellos: Vec<Hello> = Vec::with_capacity(MAX_TRIES);
    loop {
        match classify_udp(port, &attempts, ArrivalStatus::Pending) {
            Next::Done(state) => return Ok(Finished::Done(Transport::Udp, port, state)),
            Next::AskArrivals => {
                let nonces = hellos.iter().map(|h| h.nonce).collect();
                return Ok(Finished::Silent(Silent {
                    port,
                    attempts,
                    nonces,
                }));
            }
            Next::Attempt => {
                sh.pace().await;
                let (hello, bytes) = sh.hello(HelloKind::Udp, port)?;
                hellos.push(hello);
                match udp::attempt(sh, &socket, &hellos, &bytes).await {
                    Ok(a) => attempts.push(a),
                    Err(e) => {
                        hellos.pop();
                        starved.pause(e).await?;
                    }
                }
            }
        }
    }
}

/// Ask the server which UDP hellos arrived, through an open TCP door, and
/// classify the silent UDP doors with its answer.
async fn ask(
    sh: &Shared,
    config: &Config,
    outcome: &mut Outcome,
    silent: Vec<Silent>,
) -> Result<(), ProbeError> {
    let open = outcome.tcp.ports_in(onedoor_proto::probe::State::Open);
    let mut doors: Vec<u16> = Vec::new();
    if open.contains(443) {
        doors.push(443);
    }
    doors.extend(open.iter().filter(|&p| p != 443));
    doors.truncate(ASK_DOORS);
    if let Some(extra) = config.ask_door {
        let known_shut = outcome
            .tcp
            .state(extra)
            .is_some_and(|s| s != onedoor_proto::probe::State::Open);
        if !known_shut && !doors.contains(&extra) {
            doors.push(extra);
        }
    }
    let mut seen: Option<HashMap<[u8; NONCE_LEN], u16>> = None;
    let mut why = String::from("no TCP door was open to ask the server through");
    for door in doors {
        sh.observer.asking(door);
        match tokio::time::timeout(ASK_BOUND, tcp::ask_arrivals(sh, door)).await {
            Ok(Ok(arrivals)) => {
                seen = Some(
                    arrivals
                        .into_iter()
                        .map(|a| (a.nonce, a.port_seen))
                        .collect(),
                );
                outcome.asked_through = Some(door);
                break;
            }
            Ok(Err(AskError::Random(e))) => return Err(e),
            Ok(Err(AskError::Door(w))) => {
                tracing::debug!(door, why = %w, "arrivals query failed");
                why = format!("asking through TCP door {door} failed: {w}");
            }
            Err(_) => why = format!("asking through TCP door {door} took over {ASK_BOUND:?}"),
        }
    }
    if seen.is_none() {
        outcome.ask_failed = Some(why);
    }
    for Silent {
        port,
        attempts,
        nonces,
    } in silent
    {
        let status = match &seen {
            None => ArrivalStatus::Unavailable,
            Some(map) => nonces
                .iter()
                .find_map(|n| map.get(n))
                .map_or(ArrivalStatus::NotSeen, |&port_seen| ArrivalStatus::Seen {
                    port_seen,
                }),
        };
        let state = match classify_udp(port, &attempts, status) {
            Next::Done(s) => s,
            // Not reachable with a status other than Pending.
            _ => PortState::NoReply { asked: false },
        };
        sh.observer.done(Transport::Udp, port, &state);
        outcome.udp.set(port, state);
    }
    Ok(())
}

/// Why the arrivals query failed through one door.
#[derive(Debug)]
enum AskError {
    /// This door didn't give a verified report; another may.
    Door(String),
    /// No hello could be made at all.
    Random(ProbeError),
}
