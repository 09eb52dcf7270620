//! Shared helpers for the end-to-end tests: run the real `onedoor` binary,
//! start and stop real peers (OpenSSH, nginx, OpenVPN), small real TCP
//! backends, free ports, bounded waits, and the E2E skip rule.
//!
//! Every child process is owned by a [`Proc`] guard that kills it on drop, and
//! prints the tail of its stderr when the test is failing. Nothing here sleeps
//! for a fixed time to "let things settle": waits poll for an event, with a
//! bound.

// One module shared by test binaries: each uses a different part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

pub(crate) use tempfile::TempDir;

/// How long a port may take to start accepting (a process just spawned).
pub(crate) const START_BOUND: Duration = Duration::from_secs(5);
/// Default read/write timeout of test sockets: no test can hang on I/O.
pub(crate) const IO_BOUND: Duration = Duration::from_secs(5);

/// An array of `String`s from anything `Display`: command-line arguments.
macro_rules! args {
    ($($a:expr),* $(,)?) => { [$($a.to_string()),*] };
}
pub(crate) use args;

// ---------------------------------------------------------------------------
// The skip rule

/// Whether missing peers are failures (`ONEDOOR_E2E=require`, as on CI).
pub(crate) fn required() -> bool {
    std::env::var("ONEDOOR_E2E").as_deref() == Ok("require")
}

/// A test can't run here: print `SKIP <test>: <why>` to stderr, or panic under
/// `ONEDOOR_E2E=require`.
pub(crate) fn skip(test: &str, why: &str) {
    if required() {
        panic!("{test}: cannot run with ONEDOOR_E2E=require: {why}");
    }
    eprintln!("SKIP {test}: {why}");
}

/// `Some(value)`, or skip the test (see [`skip`]) with the reason and `None`.
pub(crate) fn need<T>(test: &str, r: Result<T, String>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(why) => {
            skip(test, &why);
            None
        }
    }
}

/// `Ok(())` when running as root.
pub(crate) fn root() -> Result<(), String> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err("needs root".into())
    }
}

/// Find a program on `PATH` or in the sbin directories (where sshd and nginx
/// live, often off a non-root `PATH`).
pub(crate) fn which(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin"];
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("`{name}` not installed"))
}

/// Heavy or timing-sensitive tests take this lock so they don't run at the
/// same time on a 2-core machine (a 2 s login bound next to a 20-stream load).
pub(crate) fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Raise this process's soft fd limit to at least `want` (up to the hard
/// limit), for tests that hold many sockets.
pub(crate) fn raise_nofile(want: u64) -> Result<(), String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| e.to_string())?;
    if soft >= want {
        return Ok(());
    }
    if hard < want {
        return Err(format!("fd hard limit {hard} < {want}"));
    }
    setrlimit(Resource::RLIMIT_NOFILE, want, hard).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------
// Ports and sockets

/// A loopback address with a port that was free a moment ago.
pub(crate) fn free_addr() -> SocketAddr {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().unwrap()
}

/// `[::1]` with a free port, or why IPv6 loopback is unavailable.
pub(crate) fn free_addr6() -> Result<SocketAddr, String> {
    let l = TcpListener::bind((Ipv6Addr::LOCALHOST, 0))
        .map_err(|e| format!("[::1] unavailable: {e}"))?;
    Ok(l.local_addr().unwrap())
}

/// A loopback listener on a free port.
pub(crate) fn listener() -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0")
}

/// Whether something accepts on `addr` right now.
pub(crate) fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Poll `cond` every 10 ms until it holds or `limit` passes; true if it held.
pub(crate) fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Wait until `addr` accepts, or panic after `limit`.
pub(crate) fn wait_port(addr: SocketAddr, limit: Duration) {
    assert!(
        wait_for(limit, || accepts(addr)),
        "nothing accepted on {addr} within {limit:?}"
    );
}

/// Connect with the test I/O bounds set, and TCP_NODELAY.
pub(crate) fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_BOUND)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    bound(&s);
    s
}

/// Set the test read/write timeouts and TCP_NODELAY on a socket.
pub(crate) fn bound(s: &TcpStream) {
    s.set_read_timeout(Some(IO_BOUND)).unwrap();
    s.set_write_timeout(Some(IO_BOUND)).unwrap();
    s.set_nodelay(true).unwrap();
}

/// Accept one connection within `limit`, or `None`.
pub(crate) fn accept_within(l: &TcpListener, limit: Duration) -> Option<(TcpStream, SocketAddr)> {
    l.set_nonblocking(true).unwrap();
    let mut got = None;
    wait_for(limit, || match l.accept() {
        Ok(c) => {
            got = Some(c);
            true
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    });
    l.set_nonblocking(false).unwrap();
    got.map(|(s, a)| {
        s.set_nonblocking(false).unwrap();
        bound(&s);
        (s, a)
    })
}

/// How a read that waits for the peer to close ended.
#[derive(Debug)]
pub(crate) enum Ending {
    /// Orderly EOF after the bytes read.
    Eof(Vec<u8>),
    /// Reset (or another error) after the bytes read.
    Reset(Vec<u8>, io::ErrorKind),
    /// Still open at the bound, with what was read so far.
    Open(Vec<u8>),
}

impl Ending {
    /// Whether the peer closed (EOF or reset).
    pub(crate) fn closed(&self) -> bool {
        !matches!(self, Ending::Open(_))
    }

    /// The bytes read before the end.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Ending::Eof(b) | Ending::Reset(b, _) | Ending::Open(b) => b,
        }
    }
}

/// Read until the peer closes or `limit` passes.
pub(crate) fn read_to_close(s: &mut TcpStream, limit: Duration) -> Ending {
    let end = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ending::Open(got);
        }
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Ending::Eof(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Ending::Reset(got, e.kind()),
        }
    }
}

/// Read exactly `n` bytes (within the socket's timeouts).
pub(crate) fn read_n(s: &mut TcpStream, n: usize) -> io::Result<Vec<u8>> {
    let mut v = vec![0u8; n];
    s.read_exact(&mut v)?;
    Ok(v)
}

/// Read up to and including the first `\n` (at most `max` bytes).
pub(crate) fn read_line(s: &mut TcpStream, max: usize) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    let mut b = [0u8; 1];
    while v.len() < max {
        if s.read(&mut b)? == 0 {
            break;
        }
        v.push(b[0]);
        if b[0] == b'\n' {
            break;
        }
    }
    Ok(v)
}

// ---------------------------------------------------------------------------
// Child processes

/// A child process killed (SIGKILL) and reaped on drop. Its stdout and stderr
/// go to files, so a test can read them and a failing test shows them.
pub(crate) struct Proc {
    name: String,
    child: Child,
    out: PathBuf,
    err: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawn `cmd` with stdin from /dev/null and stdout/stderr to files in `dir`.
    pub(crate) fn spawn(name: &str, cmd: &mut Command, dir: &Path) -> io::Result<Proc> {
        let out = dir.join(format!("{name}.stdout"));
        let err = dir.join(format!("{name}.stderr"));
        cmd.stdin(Stdio::null())
            .stdout(fs::File::create(&out)?)
            .stderr(fs::File::create(&err)?);
        let child = cmd.spawn()?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            out,
            err,
            status: None,
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Send a signal.
    pub(crate) fn signal(&self, sig: nix::sys::signal::Signal) {
        if self.status.is_none() {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig)
                .unwrap_or_else(|e| panic!("kill -{sig} {}: {e}", self.name));
        }
    }

    /// The exit status if it has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Wait for the exit, at most `limit`.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_for(limit, || self.exited().is_some());
        self.exited()
    }

    /// Everything it wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        fs::read(&self.err)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Everything it wrote to stdout so far.
    pub(crate) fn stdout(&self) -> String {
        fs::read(&self.out)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `n` bytes of stderr, for failure messages.
    pub(crate) fn stderr_tail(&self, n: usize) -> String {
        let all = self.stderr();
        let mut cut = all.len().saturating_sub(n);
        while !all.is_char_boundary(cut) {
            cut += 1;
        }
        all[cut..].to_owned()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!(
                "---- {} (pid {}) stderr, last 4 KiB ----\n{}\n---- end {} ----",
                self.name,
                self.child.id(),
                self.stderr_tail(4096),
                self.name
            );
        }
    }
}

/// What a bounded run of a command produced.
#[derive(Debug)]
pub(crate) struct Run {
    /// Exit status, `None` if it was killed at the bound.
    pub(crate) status: Option<ExitStatus>,
    /// Its stdout.
    pub(crate) stdout: String,
    /// Its stderr.
    pub(crate) stderr: String,
    /// Wall time until it exited (or was killed).
    pub(crate) elapsed: Duration,
}

impl Run {
    /// The exit code, if it exited by itself.
    pub(crate) fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
}

/// Run `cmd` to completion, killing it after `limit`.
pub(crate) fn run_bounded(cmd: &mut Command, limit: Duration) -> Run {
    let dir = TempDir::new().unwrap();
    let start = Instant::now();
    let mut p =
        Proc::spawn("run", cmd, dir.path()).unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let status = p.wait_exit(limit);
    let elapsed = start.elapsed();
    let run = Run {
        status,
        stdout: p.stdout(),
        stderr: p.stderr(),
        elapsed,
    };
    drop(p);
    run
}

/// The `onedoor` binary under test.
pub(crate) fn onedoor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_onedoor"))
}

/// Run a setup tool (ssh-keygen, openssl) and panic with its stderr on failure.
fn tool(program: &str, args: &[&OsStr]) {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let r = run_bounded(&mut cmd, Duration::from_secs(30));
    assert_eq!(r.code(), Some(0), "{program} {args:?} failed: {}", r.stderr);
}

/// What a private sshd needs in `d`: a throwaway host key, a client key
/// (`user_key`) it accepts and an `sshd_config` (no passwords, no PAM)
/// starting with the `listen` lines. Returns the config's path.
pub(crate) fn sshd_files(keygen: &Path, d: &Path, listen: &str) -> PathBuf {
    for key in ["host_key", "user_key"] {
        let mut c = Command::new(keygen);
        c.args(["-q", "-t", "ed25519", "-N", "", "-C", "onedoor-test", "-f"])
            .arg(d.join(key));
        let r = run_bounded(&mut c, Duration::from_secs(20));
        assert_eq!(r.code(), Some(0), "ssh-keygen: {}", r.stderr);
    }
    fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
    let mut conf = listen.to_owned();
    writeln!(conf, "HostKey {}", d.join("host_key").display()).unwrap();
    writeln!(
        conf,
        "AuthorizedKeysFile {}",
        d.join("authorized_keys").display()
    )
    .unwrap();
    conf.push_str(
        "PidFile none\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin yes\n\
         UseDNS no\nMaxStartups 100:30:200\nLogLevel INFO\n",
    );
    let conf_path = d.join("sshd_config");
    fs::write(&conf_path, conf).unwrap();
    conf_path
}

/// Start `cmd` with `RLIMIT_NOFILE` set to `soft`/`hard`.
pub(crate) fn limit_nofile(cmd: &mut Command, soft: u64, hard: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only setrlimit, which is async-signal-safe, runs between fork
    // and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: soft as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// CPU time (user + system) the process `pid` has used so far.
pub(crate) fn cpu_time(pid: i32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// The `Uid:` lines of every thread of `pid` (real, effective, saved, fs).
pub(crate) fn thread_uids(pid: i32) -> Vec<[u32; 4]> {
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(status) = fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        if let Some(line) = status.lines().find(|l| l.starts_with("Uid:")) {
            let v: Vec<u32> = line[4..]
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            out.push([v[0], v[1], v[2], v[3]]);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// onedoor serve

/// A running `onedoor serve`, killed on drop.
pub(crate) struct Serve {
    /// The process.
    pub(crate) proc: Proc,
    /// Its first listener.
    pub(crate) addr: SocketAddr,
    /// A temp dir for its logs (and the test's config files).
    pub(crate) dir: TempDir,
    /// Its `--metrics` address, when started by [`Serve::start_metered`].
    pub(crate) metrics: Option<SocketAddr>,
}

impl Serve {
    /// `onedoor serve -l 127.0.0.1:FREE ARGS...`, waiting until it accepts.
    pub(crate) fn start(args: &[String]) -> Serve {
        let addr = free_addr();
        let mut all = args!["-l", addr].to_vec();
        all.extend_from_slice(args);
        Serve::start_with(&all, &[addr], |_| {})
    }

    /// As [`Serve::start`], plus `--metrics 127.0.0.1:FREE`.
    pub(crate) fn start_metered(args: &[String]) -> Serve {
        let (addr, m) = (free_addr(), free_addr());
        let mut all = args!["-l", addr, "--metrics", m].to_vec();
        all.extend_from_slice(args);
        let mut s = Serve::start_with(&all, &[addr, m], |_| {});
        s.metrics = Some(m);
        s
    }

    /// Scrape its metrics (see [`Serve::start_metered`]).
    pub(crate) fn scrape(&self) -> String {
        scrape(self.metrics.expect("started without --metrics"))
    }

    /// The sum of one metric's samples matching `labels` (see [`metric`]).
    pub(crate) fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(&self.scrape(), name, labels)
    }

    /// `onedoor serve ARGS...` (ARGS has its own `-l` or `-c`), waiting until
    /// every address in `wait` accepts; `tweak` may adjust the command first.
    pub(crate) fn start_with(
        args: &[String],
        wait: &[SocketAddr],
        tweak: impl FnOnce(&mut Command),
    ) -> Serve {
        Serve::start_in(TempDir::new().unwrap(), args, wait, tweak)
    }

    /// As [`Serve::start_with`], with logs in `dir` (where the test may have
    /// put a config file).
    pub(crate) fn start_in(
        dir: TempDir,
        args: &[String],
        wait: &[SocketAddr],
        tweak: impl FnOnce(&mut Command),
    ) -> Serve {
        let mut cmd = onedoor();
        cmd.arg("serve").args(args);
        tweak(&mut cmd);
        let mut proc =
            Proc::spawn("onedoor-serve", &mut cmd, dir.path()).expect("spawn onedoor serve");
        for &a in wait {
            let up = wait_for(START_BOUND, || proc.exited().is_some() || accepts(a))
                && proc.exited().is_none();
            if !up {
                panic!(
                    "onedoor serve {args:?} did not accept on {a} within {START_BOUND:?} (exit: {:?}); stderr:\n{}",
                    proc.exited(),
                    proc.stderr_tail(4096)
                );
            }
        }
        let addr = wait
            .first()
            .copied()
            .unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
        Serve {
            proc,
            addr,
            dir,
            metrics: None,
        }
    }

    /// Panic (with its stderr) if it has exited.
    pub(crate) fn assert_running(&mut self) {
        if let Some(st) = self.proc.exited() {
            panic!(
                "onedoor serve exited ({st}); stderr:\n{}",
                self.proc.stderr_tail(4096)
            );
        }
    }
}

/// `GET http://addr/metrics`: the Prometheus text.
pub(crate) fn scrape(addr: SocketAddr) -> String {
    let mut s = connect(addr);
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: metrics\r\nAccept: text/plain\r\n\r\n")
        .unwrap();
    let Ending::Eof(resp) = read_to_close(&mut s, IO_BOUND) else {
        panic!("metrics response from {addr} did not end");
    };
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = resp
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not HTTP: {resp:?}"));
    assert!(
        head.starts_with("HTTP/1.") && head[9..].starts_with("200"),
        "metrics: {head}"
    );
    body.to_owned()
}

/// The sum of the samples of `name` whose labels include all of `labels`
/// (0 when there is none).
pub(crate) fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, lab) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        if n != name {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| lab.split(',').any(|kv| kv.trim() == format!("{k}=\"{v}\"")))
        {
            sum += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    sum
}

// ---------------------------------------------------------------------------
// Small real TCP backends (threads, std sockets)

/// A loopback TCP server running `handler` on a thread per connection;
/// stops accepting on drop.
pub(crate) struct Backend {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Backend {
    /// Serve each connection with `handler`.
    pub(crate) fn spawn(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> Backend {
        let l = listener();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handler = Arc::new(handler);
        thread::spawn(move || {
            for c in l.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(c) = c else { continue };
                bound(&c);
                let h = handler.clone();
                thread::spawn(move || h(c));
            }
        });
        Backend { addr, stop }
    }

    /// Echo every byte back; on EOF, shut down the write side (half-close).
    pub(crate) fn echo() -> Backend {
        Backend::spawn(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let mut buf = [0u8; 64 * 1024];
            loop {
                match c.read(&mut buf) {
                    Ok(0) => {
                        let _ = c.shutdown(Shutdown::Write);
                        return;
                    }
                    Ok(n) => {
                        if c.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        })
    }

    /// Write `banner` at once (a server-speaks-first protocol), then drain.
    pub(crate) fn banner(banner: &'static [u8]) -> Backend {
        Backend::spawn(move |mut c| {
            let _ = c.write_all(banner);
            let _ = read_to_close(&mut c, Duration::from_secs(10));
        })
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------
// Real peers: OpenSSH, nginx, OpenVPN

/// A private OpenSSH server on a free loopback port, with its own host key and
/// a client key authorised for the current user.
pub(crate) struct Sshd {
    proc: Proc,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    ssh: PathBuf,
    user: String,
    dir: TempDir,
}

impl Sshd {
    /// Start it; `Err` when OpenSSH isn't installed. Panics when it is but
    /// doesn't come up (a broken test setup must not pass as a skip).
    pub(crate) fn start() -> Result<Sshd, String> {
        let sshd = which("sshd")?;
        let ssh = which("ssh")?;
        let keygen = which("ssh-keygen")?;
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .ok_or("current user has no passwd entry")?;
        let root = nix::unistd::geteuid().is_root();
        if root {
            // sshd refuses to start without its privilege separation dir,
            // which the package creates only when the service starts.
            fs::create_dir_all("/run/sshd").map_err(|e| format!("mkdir /run/sshd: {e}"))?;
        }
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        let addr = free_addr();
        let conf_path = sshd_files(
            &keygen,
            d,
            &format!("Port {}\nListenAddress 127.0.0.1\n", addr.port()),
        );
        let mut cmd = Command::new(&sshd);
        cmd.arg("-D").arg("-e").arg("-f").arg(&conf_path);
        let mut proc = Proc::spawn("sshd", &mut cmd, d).map_err(|e| format!("spawn sshd: {e}"))?;
        let up = wait_for(START_BOUND, || proc.exited().is_some() || accepts(addr))
            && proc.exited().is_none();
        assert!(
            up,
            "sshd did not start on {addr}: {}",
            proc.stderr_tail(2048)
        );
        Ok(Sshd {
            proc,
            addr,
            ssh,
            user,
            dir,
        })
    }

    /// `ssh -p PORT -i KEY -o ... ARGS... user@HOST`, without a command yet.
    fn ssh_cmd(&self, to: SocketAddr, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.ssh);
        cmd.args(["-F", "/dev/null", "-p"])
            .arg(to.port().to_string())
            .arg("-i")
            .arg(self.dir.path().join("user_key"))
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
                "-o",
                "ConnectTimeout=5",
                "-o",
                "LogLevel=ERROR",
            ])
            .args(args)
            .arg(format!("{}@{}", self.user, to.ip()));
        cmd
    }

    /// `ssh -p PORT ... ARGS... user@HOST COMMAND`, bounded to 15 s (for
    /// `-o ProxyCommand=...`).
    pub(crate) fn ssh_with(&self, to: SocketAddr, args: &[&str], command: &str) -> Run {
        let mut cmd = self.ssh_cmd(to, args);
        cmd.arg(command);
        run_bounded(&mut cmd, Duration::from_secs(15))
    }

    /// `ssh -p PORT ... user@HOST COMMAND`, bounded to 15 s.
    pub(crate) fn ssh(&self, to: SocketAddr, command: &str) -> Run {
        let mut cmd = self.ssh_cmd(to, &[]);
        cmd.arg(command);
        run_bounded(&mut cmd, Duration::from_secs(15))
    }

    /// A real SOCKS5 server: `ssh -N -D 127.0.0.1:FREE` logged in to this
    /// sshd directly. Returns it once its port accepts.
    pub(crate) fn socks5(&self) -> (Proc, SocketAddr) {
        let at = free_addr();
        let dir = self.dir.path();
        let d = at.to_string();
        let mut cmd = self.ssh_cmd(
            self.addr,
            &["-N", "-o", "ExitOnForwardFailure=yes", "-D", &d],
        );
        let mut p = Proc::spawn("ssh-D", &mut cmd, dir).expect("spawn ssh -D");
        let up =
            wait_for(START_BOUND, || p.exited().is_some() || accepts(at)) && p.exited().is_none();
        assert!(up, "ssh -D {at} did not start: {}", p.stderr_tail(2048));
        (p, at)
    }
}

/// Write a self-signed certificate for `name` (CN and SAN) as `stem.crt` and
/// `stem.key` in `dir`.
pub(crate) fn self_signed(
    dir: &Path,
    stem: &str,
    name: &str,
) -> Result<(PathBuf, PathBuf), String> {
    let openssl = which("openssl")?;
    let crt = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    let subj = format!("/CN={name}");
    let san = format!("subjectAltName=DNS:{name}");
    tool(
        openssl.to_str().unwrap(),
        &[
            "req".as_ref(),
            "-x509".as_ref(),
            "-newkey".as_ref(),
            "ec".as_ref(),
            "-pkeyopt".as_ref(),
            "ec_paramgen_curve:prime256v1".as_ref(),
            "-nodes".as_ref(),
            "-days".as_ref(),
            "2".as_ref(),
            "-subj".as_ref(),
            subj.as_ref(),
            "-addext".as_ref(),
            san.as_ref(),
            "-keyout".as_ref(),
            key.as_os_str(),
            "-out".as_ref(),
            crt.as_os_str(),
        ],
    );
    Ok((crt, key))
}

/// One nginx `server` block: TLS with a self-signed certificate for `tls`
/// (when set) or plain HTTP, answering every request with `body`.
pub(crate) struct Site {
    /// The certificate's name, or `None` for plain HTTP.
    pub(crate) tls: Option<&'static str>,
    /// What `GET /` returns (nginx adds nothing).
    pub(crate) body: &'static str,
}

/// One real nginx (single process, `master_process off`) with a server block
/// per [`Site`], each on its own free loopback port.
pub(crate) struct Nginx {
    proc: Proc,
    /// The address of each site, in order.
    pub(crate) addrs: Vec<SocketAddr>,
    dir: TempDir,
}

impl Nginx {
    /// Start it; `Err` when nginx or openssl isn't installed.
    pub(crate) fn start(sites: &[Site]) -> Result<Nginx, String> {
        let nginx = which("nginx")?;
        let dir = TempDir::new().unwrap();
        let d = dir.path().to_owned();
        fs::create_dir_all(d.join("tmp")).unwrap();
        let mut conf = String::new();
        writeln!(
            conf,
            "daemon off;\nmaster_process off;\nworker_processes 1;"
        )
        .unwrap();
        writeln!(conf, "pid {};", d.join("nginx.pid").display()).unwrap();
        writeln!(
            conf,
            "error_log stderr warn;\nevents {{ worker_connections 512; }}\nhttp {{"
        )
        .unwrap();
        writeln!(conf, "  access_log off;").unwrap();
        for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            writeln!(conf, "  {t}_temp_path {};", d.join("tmp").join(t).display()).unwrap();
        }
        let mut addrs = Vec::new();
        for (i, site) in sites.iter().enumerate() {
            let addr = free_addr();
            addrs.push(addr);
            match site.tls {
                Some(name) => {
                    let (crt, key) = self_signed(&d, &format!("site{i}"), name)?;
                    writeln!(
                        conf,
                        "  server {{ listen {addr} ssl; server_name _; ssl_certificate {}; ssl_certificate_key {};",
                        crt.display(),
                        key.display()
                    )
                    .unwrap();
                }
                None => writeln!(conf, "  server {{ listen {addr}; server_name _;").unwrap(),
            }
            writeln!(
                conf,
                "    location / {{ default_type text/plain; return 200 {:?}; }} }}",
                site.body
            )
            .unwrap();
        }
        conf.push_str("}\n");
        let conf_path = d.join("nginx.conf");
        fs::write(&conf_path, conf).unwrap();
        let mut cmd = Command::new(&nginx);
        cmd.arg("-p")
            .arg(format!("{}/", d.display()))
            .arg("-c")
            .arg(&conf_path)
            .args(["-e", "stderr"]);
        let mut proc =
            Proc::spawn("nginx", &mut cmd, &d).map_err(|e| format!("spawn nginx: {e}"))?;
        for &a in &addrs {
            let up = wait_for(START_BOUND, || proc.exited().is_some() || accepts(a))
                && proc.exited().is_none();
            assert!(up, "nginx did not start on {a}: {}", proc.stderr_tail(2048));
        }
        Ok(Nginx { proc, addrs, dir })
    }
}

/// `curl -sS --max-time 5 ARGS...`, bounded.
pub(crate) fn curl(args: &[String]) -> Result<Run, String> {
    let curl = which("curl")?;
    let mut cmd = Command::new(curl);
    cmd.args(["-sS", "--max-time", "5"]).args(args);
    Ok(run_bounded(&mut cmd, Duration::from_secs(10)))
}

/// A real OpenVPN client (`--proto tcp-client --dev null`) dialling `to`;
/// killed on drop.
pub(crate) struct OpenVpnClient {
    proc: Proc,
    dir: TempDir,
}

impl OpenVpnClient {
    /// Start it; `Err` when openvpn or openssl isn't installed.
    pub(crate) fn start(to: SocketAddr) -> Result<OpenVpnClient, String> {
        let openvpn = which("openvpn")?;
        let dir = TempDir::new().unwrap();
        let (crt, key) = self_signed(dir.path(), "client", "client.example")?;
        let mut cmd = Command::new(openvpn);
        cmd.args(["--client", "--proto", "tcp-client", "--remote"])
            .arg(to.ip().to_string())
            .arg(to.port().to_string())
            .args([
                "--dev",
                "null",
                "--nobind",
                "--verb",
                "3",
                "--connect-retry",
                "1",
            ])
            .arg("--ca")
            .arg(&crt)
            .arg("--cert")
            .arg(&crt)
            .arg("--key")
            .arg(&key);
        let proc = Proc::spawn("openvpn", &mut cmd, dir.path())
            .map_err(|e| format!("spawn openvpn: {e}"))?;
        Ok(OpenVpnClient { proc, dir })
    }

    /// Its log so far.
    pub(crate) fn log(&self) -> String {
        self.proc.stdout() + &self.proc.stderr()
    }
}

// ---------------------------------------------------------------------------
// PROXY protocol (read by test backends)

/// The addresses a PROXY header carried.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ProxyHeader {
    /// The client (source) address.
    pub(crate) src: SocketAddr,
    /// The address the client dialled (destination).
    pub(crate) dst: SocketAddr,
}

/// Read a PROXY v1 line (`PROXY TCP4 src dst sport dport\r\n`).
pub(crate) fn read_proxy_v1(s: &mut TcpStream) -> Result<ProxyHeader, String> {
    let line = read_line(s, 107).map_err(|e| format!("reading PROXY v1: {e}"))?;
    let text = String::from_utf8_lossy(&line).into_owned();
    let Some(body) = text.strip_suffix("\r\n") else {
        return Err(format!("PROXY v1 line not ended by CRLF: {text:?}"));
    };
    let f: Vec<&str> = body.split(' ').collect();
    if f.len() != 6 || f[0] != "PROXY" || !(f[1] == "TCP4" || f[1] == "TCP6") {
        return Err(format!("not a PROXY v1 TCP header: {text:?}"));
    }
    let sa = |ip: &str, port: &str| -> Result<SocketAddr, String> {
        let ip: std::net::IpAddr = ip.parse().map_err(|_| format!("bad address in {text:?}"))?;
        let port: u16 = port.parse().map_err(|_| format!("bad port in {text:?}"))?;
        Ok(SocketAddr::new(ip, port))
    };
    Ok(ProxyHeader {
        src: sa(f[2], f[4])?,
        dst: sa(f[3], f[5])?,
    })
}

/// The 12-byte PROXY v2 signature.
pub(crate) const PROXY_V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Read a PROXY v2 header (PROXY command, TCP over IPv4 or IPv6), TLVs skipped.
pub(crate) fn read_proxy_v2(s: &mut TcpStream) -> Result<ProxyHeader, String> {
    let head = read_n(s, 16).map_err(|e| format!("reading PROXY v2: {e}"))?;
    if head[..12] != PROXY_V2_SIG {
        return Err(format!("no PROXY v2 signature: {head:02x?}"));
    }
    if head[12] != 0x21 {
        return Err(format!(
            "PROXY v2 version/command {:#04x}, expected 0x21",
            head[12]
        ));
    }
    let len = u16::from_be_bytes([head[14], head[15]]) as usize;
    let body = read_n(s, len).map_err(|e| format!("reading PROXY v2 body: {e}"))?;
    match head[13] {
        0x11 if len >= 12 => {
            let ip = |b: &[u8]| std::net::IpAddr::from([b[0], b[1], b[2], b[3]]);
            let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
            Ok(ProxyHeader {
                src: SocketAddr::new(ip(&body[0..4]), port(&body[8..10])),
                dst: SocketAddr::new(ip(&body[4..8]), port(&body[10..12])),
            })
        }
        0x21 if len >= 36 => {
            let ip = |b: &[u8]| std::net::IpAddr::from(<[u8; 16]>::try_from(b).unwrap());
            let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
            Ok(ProxyHeader {
                src: SocketAddr::new(ip(&body[0..16]), port(&body[32..34])),
                dst: SocketAddr::new(ip(&body[16..32]), port(&body[34..36])),
            })
        }
        fam => Err(format!("PROXY v2 family {fam:#04x} with length {len}")),
    }
}

/// A PROXY v2 header (PROXY, TCP over IPv4) claiming `src` → `dst`.
pub(crate) fn proxy_v2_bytes(src: std::net::SocketAddrV4, dst: std::net::SocketAddrV4) -> Vec<u8> {
    let mut v = PROXY_V2_SIG.to_vec();
    v.extend_from_slice(&[0x21, 0x11, 0, 12]);
    v.extend_from_slice(&src.ip().octets());
    v.extend_from_slice(&dst.ip().octets());
    v.extend_from_slice(&src.port().to_be_bytes());
    v.extend_from_slice(&dst.port().to_be_bytes());
    v
}

/// The distinct values of `label` among the samples of `name`.
pub(crate) fn label_values(
    text: &str,
    name: &str,
    label: &str,
) -> std::collections::BTreeSet<String> {
    let prefix = format!("{name}{{");
    let key = format!("{label}=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| {
            let i = l.find(&key)? + key.len();
            let j = l[i..].find('"')?;
            Some(l[i..i + j].to_owned())
        })
        .collect()
}

/// How many file descriptors `pid` has open.
pub(crate) fn fd_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The soft "Max open files" limit of `pid`.
pub(crate) fn max_open_files(pid: i32) -> Option<u64> {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Whether the peer has closed `s` (EOF or reset pending), without blocking.
pub(crate) fn peer_closed(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let closed = match s.peek(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    s.set_nonblocking(false).unwrap();
    closed
}

/// One round trip through an echo route: connect, send `ping\n`, expect it
/// back within 2 s. Never panics.
pub(crate) fn echo_ok(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_nodelay(true);
    s.write_all(b"ping\n").is_ok() && matches!(read_line(&mut s, 16), Ok(l) if l == b"ping\n")
}

/// Send `hello` on a new connection and return the first line that comes
/// back within `limit` (empty when closed or silent). Never panics.
pub(crate) fn first_line(addr: SocketAddr, hello: &[u8], limit: Duration) -> Vec<u8> {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(limit));
    if s.write_all(hello).is_err() {
        return Vec::new();
    }
    read_line(&mut s, 256).unwrap_or_default()
}

/// Replace `path` with `text` atomically (write beside it, then rename), so a
/// reload never reads half a file.
pub(crate) fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// Run `onedoor serve ARGS...` expecting it to exit by itself (bounded 5 s).
pub(crate) fn serve_exit(args: &[String]) -> Run {
    let mut cmd = onedoor();
    cmd.arg("serve").args(args);
    run_bounded(&mut cmd, Duration::from_secs(5))
}

// ---------------------------------------------------------------------------
// Behind the lab's real firewall (Linux): see util/lab.rs

#[cfg(target_os = "linux")]
pub(crate) mod lab;
