//! Every path through the door (issue 6), with real peers behind the lab's
//! real firewall. Each test builds one lab, starts `onedoor init` + `onedoor
//! serve --tunnel` in the internet namespace with a real nginx website as
//! its fallback and a real sshd on door 22 (which the house cannot reach
//! directly — checked first), puts a real middlebox in the path, and then,
//! from the house, with the one access key `init` printed:
//!
//! - **`ws` on door 80** (`web` policy): plain HTTP to door 80 gets the
//!   website, so does a scanner's WebSocket upgrade with a made-up ticket;
//!   `connect --transport ws` carries real `ssh` (through `-L` and as a
//!   `ProxyCommand` with `-W`); `auto` with a probe map that says door 443
//!   is shut goes straight to `ws` on door 80;
//! - **behind nginx with its own certificate**: serve listens only on the
//!   internet's loopback behind an nginx terminating TLS on door 443;
//!   `tls` stops and names nginx's certificate, `wss` and `auto` carry
//!   `ssh` in the inner layer;
//! - **a CONNECT proxy is the only way out** (`proxy-only` policy, Debian's
//!   tinyproxy on the router with basic auth): nothing without the proxy;
//!   `--proxy` and `HTTPS_PROXY` carry `ssh` and `curl --socks5-hostname`;
//!   a wrong password is named as the proxy's refusal, not echoed;
//! - **a TLS-inspecting router** (Debian's `mitmdump` in transparent mode
//!   on the router, door 443 redirected to it): `tls` stops and names
//!   mitmproxy; `auto` carries on in the inner layer, `ssh` and `curl` get
//!   through; mitmproxy's own flow dump holds the WebSocket but neither the
//!   token nor any payload, and a ticket taken from it opens nothing; `auto`
//!   with a probe map that says door 443 is intercepted does not try `tls`.
//!
//! Needs root, network namespaces, nftables and the peers (OpenSSH, curl,
//! nginx, openssl, tinyproxy, mitmproxy): without them each test prints
//! `SKIP <test>: <why>` and passes, unless `ONEDOOR_E2E=require` (CI),
//! where it fails. Lab instances 250–253; each test takes the heavy-test
//! lock, bounds every step (20 s), and kills every process it started when
//! it ends, however it ends.

#[allow(unused_imports)]
mod util;

#[cfg(target_os = "linux")]
mod every_path {
    use std::io::ErrorKind;
    use std::net::{SocketAddr, SocketAddrV4};
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::{Duration, Instant, SystemTime};

    use onedoor_lab::plan::addr::ROUTER_LAN_IF;
    use onedoor_lab::{Lab, Policy, Role};
    use onedoor_proto::probe::{Interception, PortSet, PortState};
    use onedoor_proto::report::{Doors, Report, Settings};
    use onedoor_proto::tunnel::access_key::AccessKey;

    use crate::util::lab::{
        self as lablib, accepts_in, nft_in, tcp_connect_in, wait_marker, LabDoor, NsMitmdump,
        NsNginx, NsSshd, NsTinyproxy,
    };
    use crate::util::{exclusive, need, run_bounded, wait_for, which, Proc, Run, TempDir};

    /// The sshd's door on the far side.
    const SSH: u16 = 22;
    /// What the fallback website (nginx on the internet's 127.0.0.1:80)
    /// says.
    const SITE: &str = "the far side's own website";
    /// Bound of one step: an ssh login, a curl fetch, a connect that fails.
    const STEP: Duration = Duration::from_secs(20);
    /// The ports the house's tools use for the tunnel's forwards.
    const L_SSH: &str = "127.0.0.1:2222:127.0.0.1:22";
    /// Environment variables that would send the house's tools through a
    /// proxy: cleared, unless a test sets one on purpose.
    const PROXY_VARS: [&str; 8] = [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ];
    /// A WebSocket upgrade's headers, as a scanner sends them.
    const UPGRADE: [&str; 8] = [
        "-H",
        "Upgrade: websocket",
        "-H",
        "Connection: Upgrade",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];

    /// One test's world: a lab, a working dir, the door, the far sshd and
    /// websites, and the processes started in the house. Fields drop in
    /// order: processes first, the lab last.
    struct World {
        peers: Vec<Proc>,
        sshd: NsSshd,
        nginx: Vec<NsNginx>,
        door: LabDoor,
        key: AccessKey,
        dir: TempDir,
        lab: Lab,
    }

    /// Build the lab (instance `n`, `policy`) with sshd on the far side's
    /// door 22, the website on its 127.0.0.1:80, and serve on `listen`
    /// (default: door 443) with the website as its fallback; `None` after a
    /// printed skip when a tool in `tools` (or a standard one) is missing.
    fn world(
        test: &str,
        n: u8,
        policy: Policy,
        tools: &[&str],
        listen: Option<&[SocketAddr]>,
    ) -> Option<World> {
        for t in ["sshd", "ssh", "ssh-keygen", "nginx", "curl"]
            .iter()
            .chain(tools)
        {
            need(test, which(t))?;
        }
        let lab = lablib::lab(test, policy, n)?;
        let dir = TempDir::new().unwrap();
        let sshd = NsSshd::start(
            &lab,
            Role::Internet,
            SocketAddr::from(([0, 0, 0, 0], SSH)),
            dir.path(),
        )
        .unwrap_or_else(|e| panic!("{test}: sshd: {e}"));
        let site = SocketAddr::from(([127, 0, 0, 1], 80));
        let nginx = NsNginx::start(&lab, Role::Internet, &[site], SITE, dir.path())
            .unwrap_or_else(|e| panic!("{test}: nginx: {e}"));
        let door443: SocketAddr = lab.plan().internet_door(443).into();
        let door = LabDoor::start_with(&lab, dir.path(), Some(site), listen.unwrap_or(&[door443]));
        let key: AccessKey = door
            .key
            .parse()
            .unwrap_or_else(|e| panic!("{test}: the access key {:?}: {e}", door.key));
        Some(World {
            peers: Vec::new(),
            sshd,
            nginx: vec![nginx],
            door,
            key,
            dir,
            lab,
        })
    }

    impl World {
        fn path(&self) -> &Path {
            self.dir.path()
        }

        /// The internet's `port`, as the house dials it.
        fn far(&self, port: u16) -> SocketAddrV4 {
            self.lab.plan().internet_door(port)
        }

        /// The token's text (43 characters of base64url, as in the key).
        fn token_text(&self) -> String {
            self.key.token.encode().expose().clone()
        }

        /// A command inside `role` with no proxy in its environment.
        fn cmd(&self, role: Role, program: impl AsRef<std::ffi::OsStr>) -> Command {
            let mut c = self.lab.command(role, program);
            for v in PROXY_VARS {
                c.env_remove(v);
            }
            c
        }

        /// `program ARGS...` in the house, run to completion within [`STEP`].
        fn house(&self, program: &str, args: &[&str]) -> Run {
            let mut c = self.cmd(Role::House, program);
            c.args(args);
            run_bounded(&mut c, STEP)
        }

        /// `onedoor connect KEY ARGS...` in the house, logging at info,
        /// with `auto`'s memory in the test's dir and `env` on top.
        fn connect_cmd(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
            let mut c = self.cmd(Role::House, env!("CARGO_BIN_EXE_onedoor"));
            c.arg("connect")
                .arg(&self.door.key)
                .args(args)
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1")
                .env("ONEDOOR_PATHS", self.path().join("paths.toml"))
                .env_remove("ONEDOOR_TOKEN");
            for (k, v) in env {
                c.env(k, v);
            }
            c
        }

        /// A `connect` run to its end (one that is to fail).
        fn connect_once(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
            run_bounded(&mut self.connect_cmd(args, env), STEP)
        }

        /// A `connect` in the background, once its stderr shows `ready`
        /// (a listener's line, logged once the first session is up);
        /// returns its index in `peers`.
        fn connect_bg(
            &mut self,
            name: &str,
            args: &[&str],
            env: &[(&str, &str)],
            ready: &str,
        ) -> usize {
            let mut c = self.connect_cmd(args, env);
            let mut p = Proc::spawn(name, &mut c, self.dir.path())
                .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
            wait_marker(&mut p, ready, Duration::from_secs(15));
            self.peers.push(p);
            self.peers.len() - 1
        }

        /// Real `ssh` from the house to `host:port` (with `extra` options
        /// and `env`) runs `echo ssh-out-$((6*7))-TAG` on the far side; the
        /// output (`ssh-out-42-TAG`, which is not in the command line) is
        /// checked and the time taken returned.
        fn ssh_runs(
            &self,
            what: &str,
            port: u16,
            extra: &[&str],
            env: &[(&str, &str)],
            tag: &str,
        ) -> Duration {
            let mut c = self.sshd.ssh_in(
                &self.lab,
                Role::House,
                "127.0.0.1",
                port,
                extra,
                &format!("echo ssh-out-$((6*7))-{tag}"),
            );
            for v in PROXY_VARS {
                c.env_remove(v);
            }
            for (k, v) in env {
                c.env(k, v);
            }
            let r = run_bounded(&mut c, STEP);
            assert_eq!(
                r.code(),
                Some(0),
                "ssh {what}: {}\nsshd:\n{}\nserve:\n{}",
                r.stderr,
                self.sshd.log(),
                self.door.serve.stderr_tail(4096)
            );
            assert_eq!(r.stdout.trim(), format!("ssh-out-42-{tag}"), "ssh {what}");
            r.elapsed
        }

        /// `curl --socks5-hostname SOCKS URL` in the house: the body.
        fn curl_socks(&self, socks: &str, url: &str) -> String {
            let r = self.house(
                "curl",
                &["-sS", "--max-time", "10", "--socks5-hostname", socks, url],
            );
            assert_eq!(
                r.code(),
                Some(0),
                "curl --socks5-hostname {socks} {url}: {}\nconnects:\n{}",
                r.stderr,
                self.peers
                    .iter()
                    .map(|p| p.stderr_tail(2048))
                    .collect::<Vec<_>>()
                    .join("\n---\n")
            );
            r.stdout
        }

        /// Door `port` of the internet is open there (seen from inside)
        /// and the house's attempts time out (dropped by the firewall).
        fn assert_tcp_blocked(&self, port: u16) {
            let door: SocketAddr = self.far(port).into();
            assert!(
                accepts_in(&self.lab, Role::Internet, door),
                "door {port} is not open on the far side itself"
            );
            let e = tcp_connect_in(&self.lab, Role::House, door, Duration::from_secs(1))
                .expect_err("the house reached a blocked door directly");
            assert_eq!(
                e.kind(),
                ErrorKind::TimedOut,
                "door {port}: dropped by the firewall, not refused: {e}"
            );
            eprintln!("door {port}/tcp from the house: blocked ({e})");
        }

        /// Fail with their logs if background processes have exited.
        fn assert_running(&mut self) {
            for p in &mut self.peers {
                if let Some(st) = p.exited() {
                    panic!(
                        "a background connect exited early ({st}): stderr:\n{}\nserve:\n{}",
                        p.stderr_tail(4096),
                        self.door.serve.stderr_tail(4096)
                    );
                }
            }
        }

        /// `connect KEY --transport auto --map MAP -L 127.0.0.1:2223:…:22`
        /// with a fresh path memory, started in the background (kept in
        /// `peers`); its log once the forward listens.
        fn auto_with_map(&mut self, map: &Path) -> String {
            let map = map.display().to_string();
            let memory = self.path().join("paths-map.toml").display().to_string();
            let i = self.connect_bg(
                "connect-auto-map",
                &[
                    "--transport",
                    "auto",
                    "--map",
                    &map,
                    "-L",
                    "127.0.0.1:2223:127.0.0.1:22",
                ],
                &[("ONEDOOR_PATHS", &memory)],
                "-L 127.0.0.1:2223",
            );
            self.peers[i].stderr()
        }

        /// A probe map (`onedoor probe --json`, made the way probe makes
        /// it) of this server saying `tcp` of its doors, written to a file.
        fn probe_map(&self, name: &str, tcp: &[(u16, PortState)]) -> PathBuf {
            let mut doors = Doors::new(PortSet::new());
            for (port, st) in tcp {
                doors.set(*port, st.clone());
            }
            let report = Report {
                server: self.far(443).ip().to_string(),
                address: Some((*self.far(443).ip()).into()),
                fingerprint: *self
                    .key
                    .fingerprint
                    .expect("the access key pins the server")
                    .digest(),
                started: SystemTime::now(),
                duration: Duration::from_secs(1),
                settings: Settings {
                    timeout: Duration::from_secs(1),
                    concurrency: 1,
                    rate_per_second: 100,
                },
                tcp: doors,
                udp: Doors::default(),
            };
            let file = self.path().join(name);
            std::fs::write(&file, onedoor_proto::report::json::to_string(&report)).unwrap();
            file
        }
    }

    /// 43 characters of base64url that are no ticket of this server.
    fn made_up_ticket() -> String {
        const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        (0..43).map(|i| B64URL[(i * 29 + 7) % 64] as char).collect()
    }

    /// A short tag that differs between runs (for markers a dump must not
    /// hold).
    fn run_tag() -> String {
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        format!("{:x}{:x}", t.subsec_nanos(), std::process::id())
    }

    /// Whether `haystack` holds `needle` anywhere.
    fn holds(haystack: &[u8], needle: &[u8]) -> bool {
        !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// How often `needle` occurs in `haystack`, ignoring ASCII case.
    fn count_ci(haystack: &[u8], needle: &str) -> usize {
        let needle = needle.as_bytes();
        haystack
            .windows(needle.len())
            .filter(|w| w.eq_ignore_ascii_case(needle))
            .count()
    }

    /// Ticket-shaped request paths in `bytes`: `/` and exactly 43
    /// base64url characters.
    fn ticket_paths(bytes: &[u8]) -> Vec<String> {
        let b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        let mut out = Vec::new();
        for i in 0..bytes.len() {
            if bytes[i] != b'/' || i + 44 > bytes.len() {
                continue;
            }
            let body = &bytes[i + 1..i + 44];
            let after = bytes.get(i + 44).copied();
            if body.iter().all(|&b| b64(b)) && !after.is_some_and(b64) {
                let p = String::from_utf8_lossy(&bytes[i..i + 44]).into_owned();
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }

    // -----------------------------------------------------------------------
    // A. ws on door 80

    /// Under the `web` policy, serve on doors 443 and 80: plain HTTP and a
    /// scanner's upgrade on door 80 get the website; `--transport ws` on
    /// door 80 carries real ssh (`-L`, and `-W` as a ProxyCommand); `auto`
    /// with a map that says door 443 is shut takes `ws` on door 80 at once.
    #[test]
    fn ws_on_door_80_through_the_web_firewall() {
        let test = "ws_on_door_80_through_the_web_firewall";
        let _one = exclusive();
        let plan = onedoor_lab::AddressPlan::new(onedoor_lab::Instance(250));
        let listen = [
            SocketAddr::from(plan.internet_door(443)),
            SocketAddr::from(plan.internet_door(80)),
        ];
        let Some(mut w) = world(test, 250, Policy::Web, &[], Some(&listen)) else {
            return;
        };
        w.assert_tcp_blocked(SSH);
        let door80 = w.far(80).to_string();

        // Plain HTTP is not ours: the website answers.
        let url = format!("http://{door80}/");
        let r = w.house(
            "curl",
            &["-sS", "--max-time", "10", "-w", "\n%{http_code}", &url],
        );
        assert_eq!(r.code(), Some(0), "curl {url}: {}", r.stderr);
        assert_eq!(r.stdout, format!("{SITE}\n200"), "curl {url}");

        // A scanner's upgrade with a ticket-shaped path it made up.
        let url = format!("http://{door80}/{}", made_up_ticket());
        let mut args = vec!["-sS", "-i", "--max-time", "10"];
        args.extend(UPGRADE);
        args.push(&url);
        let r = w.house("curl", &args);
        assert_eq!(r.code(), Some(0), "scanner's upgrade {url}: {}", r.stderr);
        let answer = r.stdout.to_ascii_lowercase();
        assert!(
            answer.starts_with("http/1.1 200"),
            "the scanner's upgrade got: {}",
            r.stdout
        );
        assert!(
            answer.contains("server: nginx"),
            "nginx's headers: {}",
            r.stdout
        );
        assert!(
            !answer.contains("101") && !answer.contains("sec-websocket-accept"),
            "an upgrade answered: {}",
            r.stdout
        );
        assert!(
            !answer.contains("onedoor"),
            "something of ours: {}",
            r.stdout
        );
        assert!(r.stdout.ends_with(SITE), "the website's body: {}", r.stdout);

        // ws on door 80, -L: real ssh.
        let i = w.connect_bg(
            "connect-ws-L",
            &["--server", &door80, "--transport", "ws", "-L", L_SSH],
            &[],
            "-L 127.0.0.1:2222",
        );
        let via_l = w.ssh_runs("through ws -L", 2222, &[], &[], "ws-l");
        let via_l2 = w.ssh_runs("through ws -L (again)", 2222, &[], &[], "ws-l2");
        assert!(
            w.door.serve.stderr().contains("tunnel session"),
            "serve saw no session:\n{}",
            w.door.serve.stderr_tail(4096)
        );
        w.assert_running();
        drop(w.peers.remove(i));

        // ws on door 80, -W as ssh's ProxyCommand.
        let proxy = format!(
            "ProxyCommand={} connect \"$(cat {})\" --server {door80} --transport ws -W %h:%p",
            env!("CARGO_BIN_EXE_onedoor"),
            w.door.key_file.display()
        );
        let via_w = w.ssh_runs("through ws -W", SSH, &["-o", &proxy], &[], "ws-w");

        // auto with a probe map: door 443 filtered, door 80 open.
        let map = w.probe_map(
            "map-443-shut.json",
            &[
                (443, PortState::Filtered { tries: 2 }),
                (80, PortState::Open),
            ],
        );
        let log = w.auto_with_map(&map);
        assert!(
            log.contains("auto: ws on door 80"),
            "auto did not say it took ws on door 80:\n{log}"
        );
        assert!(
            !log.contains("door 443"),
            "auto tried door 443, which the map says is shut:\n{log}"
        );
        let via_auto = w.ssh_runs("through auto --map (ws:80)", 2223, &[], &[], "auto-map");
        w.assert_running();
        eprintln!(
            "FIGURE ssh login + command over ws on door 80: -L {via_l:.2?}, {via_l2:.2?}; \
             -W {via_w:.2?}; auto --map {via_auto:.2?}"
        );
    }

    // -----------------------------------------------------------------------
    // B. Behind nginx with its own certificate

    /// serve only on the internet's 127.0.0.1:8080, nginx with its own
    /// certificate (CN=front.example) on door 443 in front of it: `tls`
    /// stops and names nginx's certificate; `wss` and `auto` carry real ssh
    /// in the inner layer. First behind nginx 1.22 as it comes (TLS up to
    /// 1.2 only, no `ssl_protocols`), then as Debian configures it
    /// (`ssl_protocols TLSv1.2 TLSv1.3`).
    #[test]
    fn behind_nginx_with_its_own_certificate() {
        let test = "behind_nginx_with_its_own_certificate";
        let _one = exclusive();
        let behind = SocketAddr::from(([127, 0, 0, 1], 8080));
        let Some(mut w) = world(test, 251, Policy::Web, &["openssl"], Some(&[behind])) else {
            return;
        };
        let front_at: SocketAddr = w.far(443).into();
        w.assert_tcp_blocked(SSH);
        assert!(
            w.key.server.port == 443 && w.door.key.contains(&format!("@{front_at}?")),
            "the access key names door 443: {}",
            w.door.key
        );

        // nginx's defaults: TLS 1.2 at most. tls stops with exit 3, naming
        // the certificate (the client offers 1.2 too, so it sees it); wss
        // gets through in the inner layer.
        let old_dir = w.path().join("front-tls12");
        std::fs::create_dir_all(&old_dir).unwrap();
        let front = NsNginx::start_tls_front(&w.lab, Role::Internet, front_at, behind, &old_dir)
            .unwrap_or_else(|e| panic!("{test}: nginx in front: {e}"));
        let r = w.connect_once(&["--transport", "tls", "-W", "127.0.0.1:22"], &[]);
        assert_eq!(
            r.code(),
            Some(3),
            "connect --transport tls to a TLS 1.2 nginx: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("door 443 is intercepted") && r.stderr.contains("front.example"),
            "connect --transport tls to a TLS 1.2 nginx: {}",
            r.stderr
        );
        eprintln!("tls behind a TLS 1.2 nginx: {}", r.stderr.trim());
        let proxy = format!(
            "ProxyCommand={} connect \"$(cat {})\" --transport wss -W %h:%p",
            env!("CARGO_BIN_EXE_onedoor"),
            w.door.key_file.display()
        );
        let via_wss12 = w.ssh_runs(
            "through wss -W behind a TLS 1.2 nginx",
            SSH,
            &["-o", &proxy],
            &[],
            "wss-tls12",
        );
        drop(front);

        // As Debian's nginx.conf has it: TLS 1.2 and 1.3.
        let front = NsNginx::start_tls_front_with(
            &w.lab,
            Role::Internet,
            front_at,
            behind,
            w.path(),
            "    ssl_protocols TLSv1.2 TLSv1.3;\n    error_log stderr info;\n",
        )
        .unwrap_or_else(|e| panic!("{test}: nginx in front: {e}"));
        w.nginx.push(front);

        // A browser sees the website, through nginx and serve.
        let url = format!("https://{}/", w.far(443));
        let r = w.house("curl", &["-sSk", "-i", "--max-time", "10", &url]);
        assert_eq!(r.code(), Some(0), "curl -k {url}: {}", r.stderr);
        assert!(
            r.stdout.to_ascii_lowercase().contains("server: nginx") && r.stdout.ends_with(SITE),
            "curl -k {url}: {}",
            r.stdout
        );

        // tls: nginx's certificate is not the pinned key: exit 3, named,
        // and the client ends it inside the TLS handshake (nginx says so):
        // no request, no token.
        let sessions = |w: &World| {
            w.door
                .serve
                .stderr()
                .matches("tunnel session client=")
                .count()
        };
        let before = sessions(&w);
        let r = w.connect_once(&["--transport", "tls", "-W", "127.0.0.1:22"], &[]);
        assert_eq!(
            r.code(),
            Some(3),
            "connect --transport tls to nginx: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("front.example") && r.stderr.contains("door 443 is intercepted"),
            "the message names nginx's certificate: {}",
            r.stderr
        );
        assert!(r.stdout.is_empty(), "-W wrote: {:?}", r.stdout);
        let front = w.nginx.last().unwrap();
        let from_house = format!("client: {},", w.lab.plan().house);
        let ended_in_handshake = |log: &str| {
            log.lines()
                .find(|l| l.contains("while SSL handshaking") && l.contains(&from_house))
                .map(str::to_owned)
        };
        assert!(
            wait_for(Duration::from_secs(5), || ended_in_handshake(&front.log())
                .is_some()),
            "nginx did not see the house's tls attempt end in the handshake:\n{}",
            front.log()
        );
        eprintln!(
            "nginx on the refused tls attempt: {}",
            ended_in_handshake(&front.log()).unwrap_or_default()
        );
        assert_eq!(
            sessions(&w),
            before,
            "a session came up from the tls attempt"
        );
        eprintln!("tls behind nginx: {}", r.stderr.trim());

        // wss: the inner layer.
        let i = w.connect_bg(
            "connect-wss-L",
            &["--transport", "wss", "-L", L_SSH],
            &[],
            "-L 127.0.0.1:2222",
        );
        let log = w.peers[i].stderr();
        assert!(
            log.contains("front.example") && log.contains("inner layer"),
            "wss did not say it runs in the inner layer behind nginx's certificate:\n{log}"
        );
        let via_wss = w.ssh_runs("through wss behind nginx", 2222, &[], &[], "wss");
        w.assert_running();
        drop(w.peers.remove(i));

        // auto: tls is named and passed over, wss works.
        let i = w.connect_bg(
            "connect-auto-L",
            &["--transport", "auto", "-L", L_SSH],
            &[],
            "-L 127.0.0.1:2222",
        );
        let log = w.peers[i].stderr();
        assert!(
            log.contains("auto: wss on door 443"),
            "auto did not say it took wss on door 443:\n{log}"
        );
        assert!(
            log.contains("auto: tls on door 443 did not work"),
            "auto did not say why tls did not work:\n{log}"
        );
        let via_auto = w.ssh_runs("through auto behind nginx", 2222, &[], &[], "auto");
        w.assert_running();
        eprintln!(
            "FIGURE ssh login + command behind nginx (inner layer): wss {via_wss:.2?}, \
             auto {via_auto:.2?}; wss -W behind a TLS 1.2 nginx {via_wss12:.2?}"
        );
    }

    // -----------------------------------------------------------------------
    // C. A CONNECT proxy is the only way out

    /// Under `proxy-only` the router forwards nothing; Debian's tinyproxy
    /// on the router's proxy address (CONNECT to 443 only, basic auth) is
    /// the only way out. Without it connect fails; with `--proxy` or
    /// `HTTPS_PROXY` real ssh and curl get through; a wrong password is
    /// the proxy's refusal, and is not echoed.
    #[test]
    fn a_connect_proxy_is_the_only_way_out() {
        let test = "a_connect_proxy_is_the_only_way_out";
        let _one = exclusive();
        let Some(mut w) = world(test, 252, Policy::ProxyOnly, &["tinyproxy"], None) else {
            return;
        };
        let proxy_at = w.lab.plan().proxy();
        // The lab's own proxy is not running in tests: nothing listens.
        for role in [Role::House, Role::Router] {
            assert!(
                !accepts_in(&w.lab, role, proxy_at.into()),
                "something already listens on the proxy address {proxy_at} (seen from the {role})"
            );
        }
        w.assert_tcp_blocked(SSH);
        w.assert_tcp_blocked(443);
        let tiny = NsTinyproxy::start(
            &w.lab,
            Role::Router,
            proxy_at,
            &format!("{}/24", w.lab.plan().lan_net()),
            443,
            Some(("door", "pass")),
            w.path(),
        )
        .unwrap_or_else(|e| panic!("{test}: tinyproxy: {e}"));
        let url = format!("http://door:pass@{proxy_at}");

        // Without the proxy: unreachable, within the connect timeout.
        let r = w.connect_once(&["--connect-timeout", "2s", "-W", "127.0.0.1:22"], &[]);
        assert_eq!(r.code(), Some(1), "connect without the proxy: {}", r.stderr);
        assert!(
            r.stderr.contains("unreachable"),
            "connect without the proxy: {}",
            r.stderr
        );
        assert!(
            r.elapsed < Duration::from_secs(10),
            "connect without the proxy took {:?}",
            r.elapsed
        );
        eprintln!("without the proxy ({:.1?}): {}", r.elapsed, r.stderr.trim());

        // --proxy: -L and -D.
        let started = Instant::now();
        let i = w.connect_bg(
            "connect-proxy-flag",
            &["--proxy", &url, "-L", L_SSH, "-D", "127.0.0.1:1080"],
            &[],
            "SOCKS5 proxy on",
        );
        let up = started.elapsed();
        let via_flag = w.ssh_runs("through --proxy", 2222, &[], &[], "proxy-flag");
        let body = w.curl_socks("127.0.0.1:1080", "http://localhost/");
        assert_eq!(body, SITE, "the far website through --proxy and -D");
        let log = w.peers[i].stderr();
        assert!(
            !log.contains("door:pass"),
            "connect logged the proxy's password:\n{log}"
        );
        w.assert_running();
        drop(w.peers.remove(i));

        // HTTPS_PROXY instead of the flag, with an explicit transport: only
        // through the proxy, as curl does.
        let i = w.connect_bg(
            "connect-proxy-env",
            &[
                "--transport",
                "tls",
                "-L",
                "127.0.0.1:2223:127.0.0.1:22",
                "-D",
                "127.0.0.1:1081",
            ],
            &[("HTTPS_PROXY", &url)],
            "SOCKS5 proxy on",
        );
        let log = w.peers[i].stderr();
        assert!(
            log.contains("through the HTTP proxy"),
            "connect did not say it takes the proxy from HTTPS_PROXY:\n{log}"
        );
        let via_env = w.ssh_runs("through HTTPS_PROXY", 2223, &[], &[], "proxy-env");
        let body = w.curl_socks("127.0.0.1:1081", "http://localhost/");
        assert_eq!(body, SITE, "the far website through HTTPS_PROXY and -D");
        w.assert_running();
        drop(w.peers.remove(i));

        // auto (the default) with HTTPS_PROXY: the ways straight first
        // (door 443 is dropped: one bounded try, the other ways on that
        // door skipped), then through the proxy.
        let started = Instant::now();
        let i = w.connect_bg(
            "connect-auto-proxy",
            &["-L", "127.0.0.1:2224:127.0.0.1:22"],
            &[
                ("HTTPS_PROXY", &url),
                (
                    "ONEDOOR_PATHS",
                    &w.path().join("paths-proxy.toml").display().to_string(),
                ),
            ],
            "-L 127.0.0.1:2224",
        );
        let auto_up = started.elapsed();
        let log = w.peers[i].stderr();
        assert!(
            log.contains("auto: tls on door 443 did not work")
                && log.contains("auto: tls on door 443 through the proxy"),
            "auto did not try straight, then through the proxy:\n{log}"
        );
        assert!(
            !log.contains("auto: wss on door 443 did not work"),
            "auto tried another way on a door it found dropped:\n{log}"
        );
        w.ssh_runs("auto through HTTPS_PROXY", 2224, &[], &[], "proxy-auto");
        w.assert_running();
        drop(w.peers.remove(i));
        eprintln!("auto with HTTPS_PROXY: up after {auto_up:.1?} (3 s of it on the door straight)");

        // A wrong password: the proxy's refusal, named; the password not.
        let bad = format!("http://door:Wr0ng-Secret@{proxy_at}");
        let r = w.connect_once(
            &[
                "--proxy",
                &bad,
                "--connect-timeout",
                "5s",
                "-W",
                "127.0.0.1:22",
            ],
            &[],
        );
        assert_eq!(
            r.code(),
            Some(1),
            "connect with a wrong password: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("401") || r.stderr.contains("407"),
            "the message names the proxy's refusal: {}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("Wr0ng-Secret"),
            "the message shows the password: {}",
            r.stderr
        );
        eprintln!("wrong proxy password: {}", r.stderr.trim());

        let tlog = tiny.log();
        let connects = tlog.matches("CONNECT").count();
        assert!(
            tlog.contains(&format!("{}:443", w.far(443).ip())),
            "tinyproxy's log shows no CONNECT to door 443:\n{tlog}"
        );
        eprintln!(
            "FIGURE through tinyproxy (CONNECT only): session up in {up:.2?}; ssh login + command \
             via --proxy {via_flag:.2?}, via HTTPS_PROXY {via_env:.2?}; tinyproxy logged \
             {connects} CONNECT lines"
        );
    }

    // -----------------------------------------------------------------------
    // D. A TLS-inspecting router

    /// mitmdump in transparent mode on the router intercepts door 443:
    /// `tls` stops and names mitmproxy; `auto` carries on in the inner
    /// layer and real ssh and curl get through; mitmproxy's flow dump shows
    /// the WebSocket but holds no token and no payload, and a ticket taken
    /// from it opens nothing. With a probe map that says door 443 is
    /// intercepted, `auto` does not try `tls` at all.
    #[test]
    fn a_tls_inspecting_router_learns_nothing() {
        let test = "a_tls_inspecting_router_learns_nothing";
        let _one = exclusive();
        let Some(mut w) = world(test, 253, Policy::Web, &["mitmdump", "nft"], None) else {
            return;
        };
        let tag = run_tag();
        let marker = format!("far-marker-{tag}");
        let marker_dir = w.path().join("marker-site");
        std::fs::create_dir_all(&marker_dir).unwrap();
        let marked = SocketAddr::from(([127, 0, 0, 1], 8081));
        let site = NsNginx::start(&w.lab, Role::Internet, &[marked], &marker, &marker_dir)
            .unwrap_or_else(|e| panic!("{test}: nginx: {e}"));
        w.nginx.push(site);
        w.assert_tcp_blocked(SSH);

        let mitm = NsMitmdump::start_transparent(&w.lab, Role::Router, 8443, w.path(), STEP)
            .unwrap_or_else(|e| panic!("{test}: mitmdump: {e}"));
        let rules = format!(
            "table ip mitm {{\n  chain pre {{\n    type nat hook prerouting priority dstnat; policy accept;\n    \
             iifname \"{ROUTER_LAN_IF}\" tcp dport 443 redirect to :8443\n  }}\n}}\n"
        );
        nft_in(&w.lab, Role::Router, &rules, w.path()).unwrap_or_else(|e| panic!("{test}: {e}"));

        // mitmproxy really is in the path: its certificate, the website.
        let url = format!("https://{}/", w.far(443));
        let r = w.house("curl", &["-sSkv", "--max-time", "10", &url]);
        assert_eq!(
            r.code(),
            Some(0),
            "curl -k {url} through mitmproxy: {}\nmitmdump:\n{}",
            r.stderr,
            mitm.log()
        );
        let issuer = r
            .stderr
            .lines()
            .find(|l| l.contains("issuer:"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        assert!(
            issuer.contains("mitmproxy"),
            "the house does not see mitmproxy's certificate ({issuer:?}):\n{}",
            r.stderr
        );
        assert_eq!(r.stdout, SITE, "the website through mitmproxy");

        // tls: stops, names mitmproxy.
        let r = w.connect_once(&["--transport", "tls", "-W", "127.0.0.1:22"], &[]);
        assert_eq!(r.code(), Some(3), "connect --transport tls: {}", r.stderr);
        assert!(
            r.stderr.contains("door 443 is intercepted") && r.stderr.contains("mitmproxy"),
            "the message names mitmproxy: {}",
            r.stderr
        );
        eprintln!("tls through mitmproxy: {}", r.stderr.trim());
        // mitmproxy saw the client end the handshake, and no request.
        let failed = "Client TLS handshake failed";
        assert!(
            wait_for(Duration::from_secs(5), || mitm.log().contains(failed)),
            "mitmproxy did not see the tls attempt end in the handshake:\n{}",
            mitm.log()
        );
        let requests = mitm.log().matches(": GET ").count();
        assert_eq!(
            requests,
            1,
            "mitmproxy saw a request besides curl's:\n{}",
            mitm.log()
        );

        // auto: carries on in the inner layer.
        let started = Instant::now();
        let i = w.connect_bg(
            "connect-auto",
            &["--transport", "auto", "-L", L_SSH, "-D", "127.0.0.1:1080"],
            &[],
            "SOCKS5 proxy on",
        );
        let up = started.elapsed();
        let log = w.peers[i].stderr();
        assert!(
            log.contains("intercepted") && log.contains("mitmproxy"),
            "auto did not say door 443 is intercepted by mitmproxy:\n{log}"
        );
        assert!(
            log.contains("inner layer"),
            "auto did not say it runs in the inner layer:\n{log}"
        );
        let via_ssh = w.ssh_runs("through auto past mitmproxy", 2222, &[], &[], &tag);
        let body = w.curl_socks("127.0.0.1:1080", "http://localhost:8081/");
        assert_eq!(body, marker, "the far website through -D past mitmproxy");

        // auto with a probe map that says door 443 is intercepted: no tls
        // attempt at all (and a fresh memory, so nothing remembered leads).
        let map = w.probe_map(
            "map-443-intercepted.json",
            &[
                (
                    443,
                    PortState::Intercepted(Interception::Certificate { seen: [7; 32] }),
                ),
                (80, PortState::Open),
            ],
        );
        let log = w.auto_with_map(&map);
        assert!(
            log.contains("auto: wss on door 443") && !log.contains("tls on door 443"),
            "auto with the map did not go straight to wss on door 443:\n{log}"
        );
        let via_map = w.ssh_runs("through auto --map past mitmproxy", 2223, &[], &[], &tag);
        w.assert_running();

        // Close every session, so mitmproxy ends its WebSocket flows, then
        // stop it and read what it kept.
        w.peers.clear();
        let mitm_log = mitm.log();
        let dump = mitm
            .stop(Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("{test}: {e}"));
        assert!(
            !dump.is_empty(),
            "mitmproxy's flow dump is empty:\n{mitm_log}"
        );
        let websocket = count_ci(&dump, "websocket");
        let messages = mitm_log.matches("WebSocket binary message").count();
        assert!(
            messages > 0,
            "mitmproxy did not report the WebSocket's messages:\n{mitm_log}"
        );
        assert!(
            websocket > 0,
            "mitmproxy's dump shows no WebSocket ({} bytes):\n{mitm_log}",
            dump.len()
        );
        let token = w.token_text();
        assert_eq!(token.len(), 43, "the token's text");
        assert!(
            !holds(&dump, token.as_bytes()),
            "mitmproxy saw the token's text"
        );
        assert!(
            !holds(&dump, w.key.token.expose_bytes()),
            "mitmproxy saw the token's bytes"
        );
        assert!(
            !holds(&dump, marker.as_bytes()),
            "mitmproxy saw the far website's marker"
        );
        assert!(
            !holds(&dump, format!("ssh-out-42-{tag}").as_bytes()),
            "mitmproxy saw ssh's output"
        );
        assert!(!holds(&dump, b"SSH-2.0-"), "mitmproxy saw an SSH banner");
        // What it could take away: the WebSocket tickets. Each opens
        // nothing now (each is good once): the website answers.
        let tickets = ticket_paths(&dump);
        assert!(
            !tickets.is_empty(),
            "no ticket-shaped request path in mitmproxy's dump"
        );
        let mut replayed = 0;
        for t in tickets.iter().take(3) {
            let url = format!("https://{}{t}", w.far(443));
            let mut args = vec!["-sSk", "-i", "--max-time", "10"];
            args.extend(UPGRADE);
            args.push(&url);
            // From the router itself: its own traffic is not redirected.
            let mut c = w.cmd(Role::Router, "curl");
            c.args(&args);
            let r = run_bounded(&mut c, STEP);
            assert_eq!(r.code(), Some(0), "replaying {t}: {}", r.stderr);
            let answer = r.stdout.to_ascii_lowercase();
            assert!(
                answer.starts_with("http/1.1 200") && r.stdout.ends_with(SITE),
                "a ticket from mitmproxy's dump opened something: {}",
                r.stdout
            );
            replayed += 1;
        }
        eprintln!(
            "FIGURE mitmproxy's flow dump: {} bytes, {websocket} mentions of WebSocket \
             ({messages} binary messages reported), {} ticket-shaped paths (replayed {replayed}: the website answered each), the \
             plain website's text {}; no token (text or bytes), no far marker, no ssh output",
            dump.len(),
            tickets.len(),
            if holds(&dump, SITE.as_bytes()) {
                "seen (curl -k, as expected)"
            } else {
                "not seen"
            }
        );
        eprintln!(
            "FIGURE past mitmproxy (inner layer): auto up in {up:.2?}; ssh login + command \
             {via_ssh:.2?}, with --map {via_map:.2?}"
        );
    }
}
