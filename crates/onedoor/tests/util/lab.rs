//! Helpers for end-to-end tests behind the lab's real firewall: a lab per
//! test (skipped without root and namespaces, required under
//! `ONEDOOR_E2E=require`), checks and commands run inside a namespace, and
//! real peers started inside the internet namespace — `onedoor serve
//! --tunnel` on door 443, OpenSSH's sshd, nginx (also as a TLS-terminating
//! front), iperf3, a UDP echo — and middleboxes for the router: tinyproxy
//! (a CONNECT proxy), mitmdump (TLS interception) and nftables rules.
//!
//! Every process is a [`Proc`] spawned by [`Lab::command`] from the test's
//! own thread, so it is killed on drop and, through `PR_SET_PDEATHSIG`, when
//! the test thread ends. Nothing here sends a packet outside the lab's
//! namespaces: every address is the lab's own or a namespace's loopback.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::{SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use onedoor_lab::{Instance, Lab, LabConfig, Policy, Role};

use super::{run_bounded, skip, wait_for, which, Proc, START_BOUND};

/// A lab with `policy` as instance `n`, or `None` after [`skip`] when this
/// machine can't build one (not root, no namespaces, no nftables).
pub(crate) fn lab(test: &str, policy: Policy, n: u8) -> Option<Lab> {
    if let Err(e) = onedoor_lab::preflight() {
        skip(test, &format!("no lab here: {e}"));
        return None;
    }
    let config = LabConfig {
        policy,
        instance: Some(Instance(n)),
    };
    Some(Lab::build(config).unwrap_or_else(|e| panic!("{test}: building the lab: {e}")))
}

/// A TCP connection from inside `role` to `to`, within `limit`.
pub(crate) fn tcp_connect_in(
    lab: &Lab,
    role: Role,
    to: SocketAddr,
    limit: Duration,
) -> io::Result<TcpStream> {
    lab.run_in(role, || TcpStream::connect_timeout(&to, limit))?
}

/// Whether something accepts on `to`, seen from inside `role` (200 ms).
pub(crate) fn accepts_in(lab: &Lab, role: Role, to: SocketAddr) -> bool {
    tcp_connect_in(lab, role, to, Duration::from_millis(200)).is_ok()
}

/// Send `payload` from a fresh UDP socket inside `role` to `to` and return
/// the first datagram that comes back within `limit` (`None`: silence).
pub(crate) fn udp_round_trip_in(
    lab: &Lab,
    role: Role,
    to: SocketAddr,
    payload: &[u8],
    limit: Duration,
) -> Option<Vec<u8>> {
    let s = lab
        .udp_socket(role, "0.0.0.0:0".parse().unwrap())
        .expect("udp socket in the namespace");
    s.set_read_timeout(Some(limit)).unwrap();
    s.send_to(payload, to).ok()?;
    let mut buf = vec![0u8; 65_536];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// Spawn `program ARGS...` inside `role` as a [`Proc`] named `name`, its
/// output in `dir`.
pub(crate) fn spawn_in(
    lab: &Lab,
    role: Role,
    name: &str,
    dir: &Path,
    program: impl AsRef<std::ffi::OsStr>,
    args: &[String],
    tweak: impl FnOnce(&mut Command),
) -> Proc {
    let mut cmd = lab.command(role, program);
    cmd.args(args);
    tweak(&mut cmd);
    Proc::spawn(name, &mut cmd, dir).unwrap_or_else(|e| panic!("spawn {name}: {e}"))
}

/// Wait until `addr` accepts inside `role` while `proc` lives; panic with
/// its stderr otherwise.
pub(crate) fn wait_listening(lab: &Lab, role: Role, proc: &mut Proc, addr: SocketAddr) {
    let up = wait_for(START_BOUND, || {
        proc.exited().is_some() || accepts_in(lab, role, addr)
    }) && proc.exited().is_none();
    assert!(
        up,
        "nothing accepted on {addr} in the {} namespace within {START_BOUND:?} (exit: {:?}); stderr:\n{}",
        role.name(),
        proc.exited(),
        proc.stderr_tail(4096)
    );
}

/// Wait until `proc`'s stderr (or stdout) contains `marker` while it lives;
/// panic with its stderr otherwise.
pub(crate) fn wait_marker(proc: &mut Proc, marker: &str, limit: Duration) {
    let seen = wait_for(limit, || {
        proc.exited().is_some() || proc.stderr().contains(marker) || proc.stdout().contains(marker)
    }) && proc.exited().is_none();
    assert!(
        seen,
        "no {marker:?} within {limit:?} (exit: {:?}); stdout:\n{}\nstderr:\n{}",
        proc.exited(),
        proc.stdout(),
        proc.stderr_tail(4096)
    );
}

// ---------------------------------------------------------------------------
// The door: `onedoor init` + `onedoor serve --tunnel` on the internet's 443

/// `onedoor serve --tunnel` on door 443 of the lab's internet, with a fresh
/// state dir whose first client (allowed `*`) has [`LabDoor::key`].
pub(crate) struct LabDoor {
    /// The server process (in the internet namespace).
    pub(crate) serve: Proc,
    /// Where it listens: the internet's address, port 443.
    pub(crate) addr: SocketAddrV4,
    /// The first client's access key, `onedoor://TOKEN@ADDR:443?fp=…`.
    pub(crate) key: String,
    /// A file holding the key (for shells: the key has `?` and `=`).
    pub(crate) key_file: PathBuf,
    /// The state dir.
    pub(crate) state: PathBuf,
}

impl LabDoor {
    /// `init --name INTERNET`, then `serve -l INTERNET:443 --tunnel
    /// [--fallback ADDR]` inside the internet, waiting until the house can
    /// reach the door through the firewall.
    pub(crate) fn start(lab: &Lab, dir: &Path, fallback: Option<SocketAddr>) -> LabDoor {
        let addr = lab.plan().internet_door(443);
        LabDoor::start_with(lab, dir, fallback, &[addr.into()])
    }

    /// [`LabDoor::start`], listening on `listen` (inside the internet)
    /// instead of door 443 alone; the access key still names door 443.
    pub(crate) fn start_with(
        lab: &Lab,
        dir: &Path,
        fallback: Option<SocketAddr>,
        listen: &[SocketAddr],
    ) -> LabDoor {
        let addr = lab.plan().internet_door(443);
        let state = dir.join("state");
        let mut init = super::onedoor();
        init.arg("init")
            .arg("--state-dir")
            .arg(&state)
            .args(["--name", &addr.ip().to_string()]);
        let r = run_bounded(&mut init, Duration::from_secs(20));
        assert_eq!(r.code(), Some(0), "onedoor init: {}", r.stderr);
        let key = r.stdout.trim().to_owned();
        assert!(
            key.starts_with("onedoor://") && key.contains(&format!("@{addr}?fp=SHA256:")),
            "init printed {key:?}"
        );
        let key_file = dir.join("access-key");
        fs::write(&key_file, &key).unwrap();
        let mut args = vec!["serve".to_owned()];
        for l in listen {
            args.extend(["-l".to_owned(), l.to_string()]);
        }
        args.extend([
            "--tunnel".to_owned(),
            "--state-dir".to_owned(),
            state.display().to_string(),
        ]);
        if let Some(f) = fallback {
            args.extend(["--fallback".to_owned(), f.to_string()]);
        }
        let mut serve = spawn_in(
            lab,
            Role::Internet,
            "onedoor-serve",
            dir,
            env!("CARGO_BIN_EXE_onedoor"),
            &args,
            |c| {
                c.env("RUST_LOG", "info").env("NO_COLOR", "1");
            },
        );
        for &l in listen {
            wait_listening(lab, Role::Internet, &mut serve, l);
        }
        LabDoor {
            serve,
            addr,
            key,
            key_file,
            state,
        }
    }

    /// `onedoor connect KEY ARGS...` in the background inside the house,
    /// returned once its stderr shows `ready` (a listener's log line, written
    /// after the first session is up).
    pub(crate) fn connect(
        &self,
        lab: &Lab,
        dir: &Path,
        name: &str,
        args: &[String],
        ready: &str,
    ) -> Proc {
        let mut all = vec!["connect".to_owned(), self.key.clone()];
        all.extend_from_slice(args);
        let mut p = spawn_in(
            lab,
            Role::House,
            name,
            dir,
            env!("CARGO_BIN_EXE_onedoor"),
            &all,
            |c| {
                c.env("RUST_LOG", "info")
                    .env("NO_COLOR", "1")
                    .env_remove("ONEDOOR_TOKEN");
            },
        );
        wait_marker(&mut p, ready, Duration::from_secs(15));
        p
    }
}

// ---------------------------------------------------------------------------
// OpenSSH inside a namespace

/// A private sshd inside a namespace (throwaway host key, one authorised
/// client key, no passwords), and the `ssh` command lines that log in.
pub(crate) struct NsSshd {
    proc: Proc,
    /// Where it listens, from inside its namespace.
    pub(crate) addr: SocketAddr,
    ssh: PathBuf,
    user: String,
    client_key: PathBuf,
}

impl NsSshd {
    /// Start sshd listening on `listen` inside `role`; `Err` when OpenSSH is
    /// not installed.
    pub(crate) fn start(
        lab: &Lab,
        role: Role,
        listen: SocketAddr,
        dir: &Path,
    ) -> Result<NsSshd, String> {
        let sshd = which("sshd")?;
        let ssh = which("ssh")?;
        let keygen = which("ssh-keygen")?;
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .ok_or("the current user has no passwd entry")?;
        // sshd refuses to start without its privilege separation dir.
        fs::create_dir_all("/run/sshd").map_err(|e| format!("mkdir /run/sshd: {e}"))?;
        let d = dir.join("sshd");
        fs::create_dir_all(&d).unwrap();
        let conf_path = super::sshd_files(&keygen, &d, &format!("ListenAddress {listen}\n"));
        let args = vec![
            "-D".to_owned(),
            "-e".to_owned(),
            "-f".to_owned(),
            conf_path.display().to_string(),
        ];
        let mut proc = spawn_in(lab, role, "sshd", dir, &sshd, &args, |_| {});
        wait_listening(lab, role, &mut proc, listen);
        Ok(NsSshd {
            proc,
            addr: listen,
            ssh,
            user,
            client_key: d.join("user_key"),
        })
    }

    /// `ssh -p PORT -i KEY -o … EXTRA... user@HOST COMMAND` inside `role`,
    /// non-interactive, no config, no known hosts, 5 s connect timeout.
    pub(crate) fn ssh_in(
        &self,
        lab: &Lab,
        role: Role,
        host: &str,
        port: u16,
        extra: &[&str],
        command: &str,
    ) -> Command {
        let mut cmd = lab.command(role, &self.ssh);
        cmd.args(["-F", "/dev/null", "-p", &port.to_string(), "-i"])
            .arg(&self.client_key)
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
            .args(extra)
            .arg(format!("{}@{host}", self.user))
            .arg(command);
        cmd
    }

    /// sshd's log so far.
    pub(crate) fn log(&self) -> String {
        self.proc.stderr()
    }
}

// ---------------------------------------------------------------------------
// nginx inside a namespace

/// One real nginx (single process, `master_process off`) inside a
/// namespace, answering `GET /` on each of its listen addresses with a
/// fixed body.
pub(crate) struct NsNginx {
    _proc: Proc,
}

impl NsNginx {
    /// Start it on `listen` (nginx `listen` arguments, e.g.
    /// `127.0.0.1:80`) inside `role`; `Err` when nginx is not installed.
    pub(crate) fn start(
        lab: &Lab,
        role: Role,
        listen: &[SocketAddr],
        body: &str,
        dir: &Path,
    ) -> Result<NsNginx, String> {
        let listen_lines: String = listen
            .iter()
            .map(|a| format!("    listen {a};\n"))
            .collect();
        let server = format!(
            "{listen_lines}    location / {{ default_type text/plain; return 200 {body:?}; }}\n"
        );
        NsNginx::start_server(lab, role, listen, "nginx", &server, "", dir)
    }

    /// nginx terminating TLS on `listen` with its own self-signed
    /// certificate (`CN=front.example`, made with openssl) and passing
    /// everything, WebSocket upgrades included, to `upstream` over plain
    /// HTTP — the reverse-proxy set-up of the README.
    pub(crate) fn start_tls_front(
        lab: &Lab,
        role: Role,
        listen: SocketAddr,
        upstream: SocketAddr,
        dir: &Path,
    ) -> Result<NsNginx, String> {
        NsNginx::start_tls_front_with(lab, role, listen, upstream, dir, "")
    }

    /// [`NsNginx::start_tls_front`] with `extra` lines in its `server`
    /// block, e.g. `ssl_protocols TLSv1.2 TLSv1.3;` as Debian's packaged
    /// `nginx.conf` has it (nginx 1.22's own default is TLS 1.0–1.2 only).
    pub(crate) fn start_tls_front_with(
        lab: &Lab,
        role: Role,
        listen: SocketAddr,
        upstream: SocketAddr,
        dir: &Path,
        extra: &str,
    ) -> Result<NsNginx, String> {
        let openssl = which("openssl")?;
        let d = dir.join("nginx-front");
        fs::create_dir_all(&d).unwrap();
        let (cert, key) = (d.join("front.crt"), d.join("front.key"));
        let mut c = Command::new(openssl);
        c.args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=front.example/O=Front Proxy Inc",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert);
        let r = run_bounded(&mut c, Duration::from_secs(20));
        if r.code() != Some(0) {
            return Err(format!("openssl req: {}", r.stderr));
        }
        let http = "  map $http_upgrade $connection_upgrade { default upgrade; '' close; }\n";
        let server = format!(
            "    listen {listen} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};\n{extra}\
             \x20   location / {{\n      proxy_pass http://{upstream};\n      proxy_http_version 1.1;\n\
             \x20     proxy_set_header Upgrade $http_upgrade;\n\
             \x20     proxy_set_header Connection $connection_upgrade;\n\
             \x20     proxy_set_header Host $host;\n      proxy_read_timeout 1h;\n\
             \x20     proxy_buffering off;\n    }}\n",
            cert.display(),
            key.display()
        );
        NsNginx::start_server(lab, role, &[listen], "nginx-front", &server, http, dir)
    }

    /// What it wrote to stderr so far (its error log).
    pub(crate) fn log(&self) -> String {
        self._proc.stderr()
    }

    /// nginx with one `server { … }` made of `server` lines (and `http`
    /// lines before it), named `name`, waiting until `listen` accepts.
    fn start_server(
        lab: &Lab,
        role: Role,
        listen: &[SocketAddr],
        name: &str,
        server: &str,
        http: &str,
        dir: &Path,
    ) -> Result<NsNginx, String> {
        let nginx = which("nginx")?;
        let d = dir.join(name);
        fs::create_dir_all(d.join("tmp")).unwrap();
        let mut conf = String::new();
        conf.push_str("daemon off;\nmaster_process off;\nworker_processes 1;\n");
        writeln!(conf, "pid {};", d.join("nginx.pid").display()).unwrap();
        conf.push_str("error_log stderr warn;\nevents { worker_connections 256; }\nhttp {\n");
        conf.push_str("  access_log off;\n");
        for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            writeln!(conf, "  {t}_temp_path {};", d.join("tmp").join(t).display()).unwrap();
        }
        conf.push_str(http);
        conf.push_str("  server {\n    server_name _;\n");
        conf.push_str(server);
        conf.push_str("  }\n}\n");
        let conf_path = d.join("nginx.conf");
        fs::write(&conf_path, conf).unwrap();
        let args = vec![
            "-p".to_owned(),
            format!("{}/", d.display()),
            "-c".to_owned(),
            conf_path.display().to_string(),
            "-e".to_owned(),
            "stderr".to_owned(),
        ];
        let mut proc = spawn_in(lab, role, name, dir, &nginx, &args, |_| {});
        for &a in listen {
            wait_listening(lab, role, &mut proc, a);
        }
        Ok(NsNginx { _proc: proc })
    }
}

// ---------------------------------------------------------------------------
// A UDP echo inside a namespace (the lab's "crosswords")

/// A UDP echo on a socket bound inside a namespace: every datagram goes
/// back to its sender unchanged. Stops on drop.
pub(crate) struct UdpEcho {
    /// Where it listens, from inside its namespace.
    pub(crate) addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<u64>>,
}

impl UdpEcho {
    /// Bind `addr` inside `role` and echo on a thread.
    pub(crate) fn start(lab: &Lab, role: Role, addr: SocketAddr) -> UdpEcho {
        let s: UdpSocket = lab
            .udp_socket(role, addr)
            .unwrap_or_else(|e| panic!("bind udp {addr} in the {} namespace: {e}", role.name()));
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut echoed = 0u64;
            let mut buf = vec![0u8; 65_536];
            while !stop2.load(Ordering::SeqCst) {
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    if s.send_to(&buf[..n], from).is_ok() {
                        echoed += 1;
                    }
                }
            }
            echoed
        });
        UdpEcho {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Stop and say how many datagrams were echoed.
    pub(crate) fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().map_or(0, |t| t.join().unwrap_or(0))
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// tinyproxy inside a namespace (an HTTP CONNECT proxy as the only way out)

/// Debian's tinyproxy, in the foreground inside a namespace, allowing
/// CONNECT to one port only, for clients of one subnet, with basic auth.
pub(crate) struct NsTinyproxy {
    proc: Proc,
    /// Where it listens, from inside its namespace.
    pub(crate) addr: SocketAddrV4,
    log: PathBuf,
}

impl NsTinyproxy {
    /// Start it on `listen` inside `role`, letting clients from `allow` (a
    /// CIDR) CONNECT to `connect_port` only, with `auth` = (user, password)
    /// when given; `Err` when tinyproxy is not installed.
    ///
    /// It runs as root: tinyproxy 1.11 does, and a `User` would have to
    /// write its log file in the test's private directory.
    pub(crate) fn start(
        lab: &Lab,
        role: Role,
        listen: SocketAddrV4,
        allow: &str,
        connect_port: u16,
        auth: Option<(&str, &str)>,
        dir: &Path,
    ) -> Result<NsTinyproxy, String> {
        let tinyproxy = which("tinyproxy")?;
        let d = dir.join("tinyproxy");
        fs::create_dir_all(&d).unwrap();
        let log = d.join("tinyproxy.log");
        let mut conf = String::new();
        writeln!(conf, "Port {}", listen.port()).unwrap();
        writeln!(conf, "Listen {}", listen.ip()).unwrap();
        conf.push_str("Timeout 30\nMaxClients 50\nDisableViaHeader Yes\nLogLevel Info\n");
        writeln!(conf, "Allow {allow}").unwrap();
        writeln!(conf, "ConnectPort {connect_port}").unwrap();
        writeln!(conf, "LogFile \"{}\"", log.display()).unwrap();
        writeln!(conf, "PidFile \"{}\"", d.join("tinyproxy.pid").display()).unwrap();
        if let Some((user, password)) = auth {
            writeln!(conf, "BasicAuth {user} {password}").unwrap();
        }
        let conf_path = d.join("tinyproxy.conf");
        fs::write(&conf_path, conf).unwrap();
        let args = vec![
            "-d".to_owned(),
            "-c".to_owned(),
            conf_path.display().to_string(),
        ];
        let mut proc = spawn_in(lab, role, "tinyproxy", dir, &tinyproxy, &args, |_| {});
        wait_listening(lab, role, &mut proc, listen.into());
        Ok(NsTinyproxy {
            proc,
            addr: listen,
            log,
        })
    }

    /// Its log so far (the log file, then stderr).
    pub(crate) fn log(&self) -> String {
        let file = fs::read_to_string(&self.log).unwrap_or_default();
        format!("{file}{}", self.proc.stderr())
    }
}

// ---------------------------------------------------------------------------
// mitmproxy inside a namespace (a TLS-inspecting middlebox)

/// Debian's `mitmdump` in transparent mode inside a namespace (the lab's
/// router), with its own CA in a fresh confdir, not verifying upstream
/// certificates (as an office middlebox that lets everything through), and
/// writing every flow it saw to a dump file.
pub(crate) struct NsMitmdump {
    proc: Proc,
    /// The flow dump (`-w`).
    pub(crate) flows: PathBuf,
    /// Its confdir (the generated CA lives here).
    pub(crate) confdir: PathBuf,
}

impl NsMitmdump {
    /// Start it inside `role` listening on `port` (all addresses), waiting
    /// (up to `limit`: it is a Python program making a CA) until it says it
    /// listens; `Err` when mitmdump is not installed.
    pub(crate) fn start_transparent(
        lab: &Lab,
        role: Role,
        port: u16,
        dir: &Path,
        limit: Duration,
    ) -> Result<NsMitmdump, String> {
        let mitmdump = which("mitmdump")?;
        let d = dir.join("mitmdump");
        let confdir = d.join("conf");
        fs::create_dir_all(&confdir).unwrap();
        let flows = d.join("flows");
        let args: Vec<String> = [
            "--mode",
            "transparent",
            "--listen-port",
            &port.to_string(),
            "--set",
            "ssl_insecure=true",
            "--set",
            "block_global=false",
            "--set",
            &format!("confdir={}", confdir.display()),
            "-w",
            &flows.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut proc = spawn_in(lab, role, "mitmdump", dir, &mitmdump, &args, |c| {
            c.env("PYTHONUNBUFFERED", "1").env("HOME", &d);
        });
        // Not a connect test: mitmproxy would take a connection that was
        // not redirected for one to itself.
        wait_marker(&mut proc, "listening at", limit);
        Ok(NsMitmdump {
            proc,
            flows,
            confdir,
        })
    }

    /// What it printed so far (one line per flow on stdout, errors on
    /// stderr).
    pub(crate) fn log(&self) -> String {
        format!("{}{}", self.proc.stdout(), self.proc.stderr())
    }

    /// Stop it with SIGINT, let it write its dump (up to `limit`), and
    /// return the dump's bytes.
    pub(crate) fn stop(mut self, limit: Duration) -> Result<Vec<u8>, String> {
        self.proc.signal(nix::sys::signal::Signal::SIGINT);
        if self.proc.wait_exit(limit).is_none() {
            return Err(format!(
                "mitmdump did not stop within {limit:?} after SIGINT: {}",
                self.log()
            ));
        }
        fs::read(&self.flows).map_err(|e| format!("the flow dump {}: {e}", self.flows.display()))
    }
}

// ---------------------------------------------------------------------------
// nftables inside a namespace

/// Load `ruleset` (nft syntax) inside `role` with `nft -f`, within 20 s;
/// `Err` when nft is missing or refuses it.
pub(crate) fn nft_in(lab: &Lab, role: Role, ruleset: &str, dir: &Path) -> Result<(), String> {
    let nft = which("nft")?;
    let file = dir.join(format!("nft-{}.conf", role.name()));
    fs::write(&file, ruleset).map_err(|e| e.to_string())?;
    let mut cmd = lab.command(role, nft);
    cmd.arg("-f").arg(&file);
    let r = run_bounded(&mut cmd, Duration::from_secs(20));
    if r.code() != Some(0) {
        return Err(format!("nft -f {ruleset:?}: {}", r.stderr));
    }
    Ok(())
}
