//! The tunnel with real peers behind the lab's real firewall (issue 4,
//! "Real peers in the tests" and "Done means"): a lab with the `web`
//! policy (house → router letting only 80 and 443 out → internet),
//! `onedoor init` + `onedoor serve --tunnel` on the internet's door 443,
//! and real services in the internet namespace that the house cannot reach
//! directly — checked first, every time. Then, from the house, with the one
//! access key `init` printed:
//!
//! - real `ssh` logs in through `-W` (as `ProxyCommand`) and through `-L`;
//! - `curl --socks5-hostname` reaches a far nginx by a name only the server
//!   resolves (`localhost`), through `-D`;
//! - iperf3 TCP and UDP (`-u -b 100M`) through `-L` and `-L udp/…`, with
//!   the figures printed;
//! - a UDP echo on door 1194 (the lab's "crosswords") through `-L udp/…`,
//!   datagram boundaries kept;
//! - a scanner knocking on door 443 sees the fallback website.
//!
//! Needs root, network namespaces, nftables and the peers (OpenSSH, curl,
//! nginx, iperf3): without them each test prints `SKIP <test>: <why>` and
//! passes, unless `ONEDOOR_E2E=require` (CI), where it fails. Each test
//! builds its own lab with a fixed instance (240 and up, clear of
//! tests/lab.rs), takes the heavy-test lock (2 cores), bounds every step,
//! and kills every process it started when it ends, however it ends.

#[allow(unused_imports)]
mod util;

#[cfg(target_os = "linux")]
mod behind_the_firewall {
    use std::io::ErrorKind;
    use std::net::{SocketAddr, UdpSocket};
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use onedoor_lab::{Lab, Policy, Role};

    use crate::util::lab::{
        self as lablib, accepts_in, tcp_connect_in, udp_round_trip_in, LabDoor, NsNginx, NsSshd,
        UdpEcho,
    };
    use crate::util::{exclusive, need, run_bounded, which, Proc, Run, TempDir};

    /// The sshd's door on the far side.
    const SSH: u16 = 22;
    /// The crosswords' UDP door on the far side.
    const CROSSWORDS: u16 = 1194;
    /// What the far website says.
    const FAR_SITE: &str = "the far side's own website";
    /// Bound of one ssh login, curl fetch, … (each step of a test).
    const STEP: Duration = Duration::from_secs(20);

    /// One test's world: a `web` lab, a working dir, the door on 443 and
    /// whatever peers the test started. Fields drop in order: processes
    /// first, the lab last.
    struct Far {
        peers: Vec<Proc>,
        sshd: Option<NsSshd>,
        _nginx: Option<NsNginx>,
        door: LabDoor,
        dir: TempDir,
        lab: Lab,
    }

    /// What a test needs on the far side besides the door.
    #[derive(Default)]
    struct Needs {
        sshd: bool,
        nginx: bool,
        tools: &'static [&'static str],
    }

    /// Build the lab (instance `n`) with the peers of `needs`, or `None`
    /// after a printed skip.
    fn far(test: &str, n: u8, needs: Needs) -> Option<Far> {
        let mut tools: Vec<&str> = needs.tools.to_vec();
        if needs.sshd {
            tools.extend(["sshd", "ssh", "ssh-keygen"]);
        }
        if needs.nginx {
            tools.push("nginx");
        }
        for t in tools {
            need(test, which(t))?;
        }
        let lab = lablib::lab(test, Policy::Web, n)?;
        let dir = TempDir::new().unwrap();
        let inside = |port: u16| SocketAddr::from(([0, 0, 0, 0], port));
        let sshd = needs.sshd.then(|| {
            NsSshd::start(&lab, Role::Internet, inside(SSH), dir.path())
                .unwrap_or_else(|e| panic!("{test}: sshd: {e}"))
        });
        let nginx = needs.nginx.then(|| {
            let at = SocketAddr::from(([127, 0, 0, 1], 80));
            NsNginx::start(&lab, Role::Internet, &[at], FAR_SITE, dir.path())
                .unwrap_or_else(|e| panic!("{test}: nginx: {e}"))
        });
        let fallback = nginx
            .as_ref()
            .map(|_| SocketAddr::from(([127, 0, 0, 1], 80)));
        let door = LabDoor::start(&lab, dir.path(), fallback);
        Some(Far {
            peers: Vec::new(),
            sshd,
            _nginx: nginx,
            door,
            dir,
            lab,
        })
    }

    impl Far {
        fn path(&self) -> &Path {
            self.dir.path()
        }

        /// The internet's `port`, as the house dials it.
        fn far_door(&self, port: u16) -> SocketAddr {
            self.lab.plan().internet_door(port).into()
        }

        /// Door `port` of the internet is open there (seen from inside)
        /// and the firewall drops the house's attempts: the connect times
        /// out (dropped, not refused).
        fn assert_tcp_blocked(&self, port: u16) {
            let door = self.far_door(port);
            assert!(
                accepts_in(&self.lab, Role::Internet, door),
                "door {port} is not open on the far side itself"
            );
            let started = Instant::now();
            let e = tcp_connect_in(&self.lab, Role::House, door, Duration::from_secs(1))
                .expect_err("the house reached a blocked door directly");
            assert_eq!(
                e.kind(),
                ErrorKind::TimedOut,
                "door {port}: dropped by the firewall, not refused: {e}"
            );
            eprintln!(
                "door {port}/tcp from the house: blocked ({e}, {:?})",
                started.elapsed()
            );
            // Door 443 goes through.
            assert!(
                accepts_in(&self.lab, Role::House, self.door.addr.into()),
                "door 443 is closed to the house"
            );
        }

        /// `onedoor connect KEY ARGS...` in the house, once `ready` shows.
        fn connect(&mut self, name: &str, args: &[String], ready: &str) {
            let p = self
                .door
                .connect(&self.lab, self.dir.path(), name, args, ready);
            self.peers.push(p);
        }

        /// Fail with the connect and serve logs if a `connect` has exited.
        fn assert_connects_running(&mut self) {
            for p in &mut self.peers {
                if let Some(st) = p.exited() {
                    panic!(
                        "a background process exited early ({st}): stderr:\n{}\nserve:\n{}",
                        p.stderr_tail(4096),
                        self.door.serve.stderr_tail(4096)
                    );
                }
            }
        }

        /// A command inside the house, run to completion within [`STEP`].
        fn run_in_house(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Run {
            let mut cmd = self.lab.command(Role::House, program);
            cmd.args(args);
            run_bounded(&mut cmd, STEP)
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    // -----------------------------------------------------------------------
    // A scanner's view

    /// Only 80 and 443 get out of the house; the door answers a scanner
    /// with the fallback website, over TLS, like any web server.
    #[test]
    fn a_scanner_of_door_443_sees_only_the_website() {
        let test = "a_scanner_of_door_443_sees_only_the_website";
        let _one = exclusive();
        let Some(f) = far(
            test,
            240,
            Needs {
                sshd: true,
                nginx: true,
                tools: &["curl"],
            },
        ) else {
            return;
        };
        f.assert_tcp_blocked(SSH);
        let url = format!("https://{}/", f.door.addr);
        let r = f.run_in_house(
            "curl",
            &["-sSk", "--max-time", "10", "-w", "\n%{http_code}", &url],
        );
        assert_eq!(r.code(), Some(0), "curl {url}: {}", r.stderr);
        assert_eq!(r.stdout, format!("{FAR_SITE}\n200"), "curl {url}");
        let r = f.run_in_house(
            "curl",
            &[
                "-sSk",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-D",
                "-",
                &url,
            ],
        );
        assert_eq!(r.code(), Some(0), "curl -D - {url}: {}", r.stderr);
        let head = r.stdout.to_ascii_lowercase();
        assert!(
            head.contains("server: nginx"),
            "the fallback's own headers: {head}"
        );
        assert!(!head.contains("onedoor"), "a header of ours: {head}");
    }

    // -----------------------------------------------------------------------
    // SSH

    /// Real `ssh` with `ProxyCommand='onedoor connect KEY -W %h:%p'` logs in
    /// to the far sshd (door 22, blocked) and runs a command there.
    #[test]
    fn ssh_logs_in_through_w_as_proxy_command() {
        let test = "ssh_logs_in_through_w_as_proxy_command";
        let _one = exclusive();
        let Some(f) = far(
            test,
            241,
            Needs {
                sshd: true,
                ..Needs::default()
            },
        ) else {
            return;
        };
        f.assert_tcp_blocked(SSH);
        let sshd = f.sshd.as_ref().unwrap();
        let proxy = format!(
            "ProxyCommand={} connect \"$(cat {})\" -W %h:%p",
            env!("CARGO_BIN_EXE_onedoor"),
            f.door.key_file.display()
        );
        let mut times = Vec::new();
        for i in 0..3 {
            let mut cmd = sshd.ssh_in(
                &f.lab,
                Role::House,
                "127.0.0.1",
                SSH,
                &["-o", &proxy],
                "echo through-one-door; echo $SSH_CONNECTION",
            );
            let r = run_bounded(&mut cmd, STEP);
            assert_eq!(
                r.code(),
                Some(0),
                "ssh #{i} through -W: {}\nsshd:\n{}\nserve:\n{}",
                r.stderr,
                sshd.log(),
                f.door.serve.stderr_tail(4096)
            );
            let mut lines = r.stdout.lines();
            assert_eq!(lines.next(), Some("through-one-door"), "{}", r.stdout);
            // The far sshd saw the server's own loopback dial door 22.
            let conn = lines.next().unwrap_or_default();
            assert!(conn.ends_with("127.0.0.1 22"), "SSH_CONNECTION {conn:?}");
            times.push(r.elapsed);
        }
        // Bulk data through the one stream: 32 MiB from the far side, and
        // ssh's EOF on its stdin reaches the remote command (`wc -c` ends
        // with 0).
        let mut cmd = sshd.ssh_in(
            &f.lab,
            Role::House,
            "127.0.0.1",
            SSH,
            &["-o", &proxy],
            "head -c 33554432 /dev/zero; echo; wc -c",
        );
        let started = Instant::now();
        let r = run_bounded(&mut cmd, STEP);
        let bulk = started.elapsed();
        assert_eq!(r.code(), Some(0), "bulk ssh through -W: {}", r.stderr);
        assert_eq!(r.stdout.len(), 33_554_432 + 3, "bytes through -W");
        assert!(
            r.stdout.ends_with("\0\n0\n"),
            "stdin EOF reached the far side"
        );
        // For scale: the same login straight to sshd on the far side.
        let mut cmd = sshd.ssh_in(&f.lab, Role::Internet, "127.0.0.1", SSH, &[], "true");
        let direct = run_bounded(&mut cmd, STEP);
        assert_eq!(direct.code(), Some(0), "direct ssh: {}", direct.stderr);
        eprintln!(
            "FIGURE ssh login + command through -W (ProxyCommand): {times:.2?} \
             (direct on the far side: {:.2?}); 32 MiB download: {bulk:.2?}",
            direct.elapsed
        );
    }

    /// `onedoor connect KEY -L 127.0.0.1:2222:127.0.0.1:22`, then real
    /// `ssh -p 2222` logs in, twice over the one session.
    #[test]
    fn ssh_logs_in_through_a_local_forward() {
        let test = "ssh_logs_in_through_a_local_forward";
        let _one = exclusive();
        let Some(mut f) = far(
            test,
            242,
            Needs {
                sshd: true,
                ..Needs::default()
            },
        ) else {
            return;
        };
        f.assert_tcp_blocked(SSH);
        f.connect(
            "connect-L",
            &s(&["-L", "127.0.0.1:2222:127.0.0.1:22"]),
            "-L 127.0.0.1:2222",
        );
        let mut times = Vec::new();
        for i in 0..2 {
            let sshd = f.sshd.as_ref().unwrap();
            let mut cmd = sshd.ssh_in(
                &f.lab,
                Role::House,
                "127.0.0.1",
                2222,
                &[],
                "echo through-one-door",
            );
            let r = run_bounded(&mut cmd, STEP);
            assert_eq!(
                r.code(),
                Some(0),
                "ssh #{i} through -L: {}\nsshd:\n{}\nconnect:\n{}",
                r.stderr,
                sshd.log(),
                f.peers[0].stderr_tail(4096)
            );
            assert_eq!(r.stdout.trim(), "through-one-door");
            times.push(r.elapsed);
        }
        // Eight logins at once over the one session.
        let sshd = f.sshd.as_ref().unwrap();
        let started = Instant::now();
        let mut many: Vec<Proc> = (0..8)
            .map(|i| {
                let mut cmd = sshd.ssh_in(
                    &f.lab,
                    Role::House,
                    "127.0.0.1",
                    2222,
                    &[],
                    &format!("echo {i}"),
                );
                Proc::spawn(&format!("ssh-{i}"), &mut cmd, f.dir.path()).unwrap()
            })
            .collect();
        for (i, p) in many.iter_mut().enumerate() {
            let st = p.wait_exit(STEP);
            assert!(
                st.is_some_and(|s| s.success()),
                "parallel ssh #{i} through -L: {st:?} {}",
                p.stderr()
            );
            assert_eq!(p.stdout().trim(), i.to_string());
        }
        let parallel = started.elapsed();
        f.assert_connects_running();
        eprintln!("FIGURE ssh login + command through -L: {times:.2?}; 8 at once: {parallel:.2?}");
    }

    // -----------------------------------------------------------------------
    // SOCKS5

    /// `onedoor connect KEY -D 127.0.0.1:1080`, then `curl
    /// --socks5-hostname` fetches `http://localhost/` — a name the server
    /// resolves on the far side, where nginx listens.
    #[test]
    fn curl_reaches_a_far_website_by_name_through_socks5() {
        let test = "curl_reaches_a_far_website_by_name_through_socks5";
        let _one = exclusive();
        let Some(mut f) = far(
            test,
            243,
            Needs {
                nginx: true,
                tools: &["curl"],
                ..Needs::default()
            },
        ) else {
            return;
        };
        // The house has no website of its own: the name is resolved and
        // fetched on the far side or not at all.
        let r = f.run_in_house("curl", &["-sS", "--max-time", "5", "http://localhost/"]);
        assert_ne!(r.code(), Some(0), "the house has a localhost website?");
        f.connect(
            "connect-D",
            &s(&["-D", "127.0.0.1:1080"]),
            "SOCKS5 proxy on",
        );
        let started = Instant::now();
        let r = f.run_in_house(
            "curl",
            &[
                "-sS",
                "--max-time",
                "10",
                "--socks5-hostname",
                "127.0.0.1:1080",
                "http://localhost/",
            ],
        );
        assert_eq!(
            r.code(),
            Some(0),
            "curl through -D: {}\nconnect:\n{}\nserve:\n{}",
            r.stderr,
            f.peers[0].stderr_tail(4096),
            f.door.serve.stderr_tail(4096)
        );
        assert_eq!(r.stdout, FAR_SITE);
        eprintln!(
            "FIGURE curl --socks5-hostname through -D: {:.2?}",
            started.elapsed()
        );
        f.assert_connects_running();
    }

    // -----------------------------------------------------------------------
    // iperf3

    /// The figures of one iperf3 run (`-J`).
    #[derive(Debug)]
    struct Iperf {
        bits_per_second: f64,
        lost_percent: Option<f64>,
        /// Bytes per write (TCP) or per datagram (UDP).
        blksize: u64,
        /// UDP datagrams (as the receiver counts them, lost included).
        packets: Option<u64>,
    }

    fn iperf_figures(r: &Run, what: &str) -> Iperf {
        assert_eq!(
            r.code(),
            Some(0),
            "iperf3 {what}: {}\n{}",
            r.stderr,
            r.stdout
        );
        let j: serde_json::Value = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("iperf3 {what}: not JSON ({e}): {}", r.stdout));
        if let Some(e) = j.get("error") {
            panic!("iperf3 {what}: {e}");
        }
        let end = &j["end"];
        // What the receiver got and, for UDP, the loss it counted (older
        // iperf3 has only `sum`).
        let sum = if end["sum_received"].is_object() {
            &end["sum_received"]
        } else {
            &end["sum"]
        };
        let bits_per_second = sum["bits_per_second"]
            .as_f64()
            .unwrap_or_else(|| panic!("iperf3 {what}: no bits_per_second in {end}"));
        Iperf {
            bits_per_second,
            lost_percent: sum["lost_percent"].as_f64(),
            blksize: j["start"]["test_start"]["blksize"].as_u64().unwrap_or(0),
            packets: sum["packets"].as_u64(),
        }
    }

    /// iperf3 TCP and UDP (`-u -b 100M`) from the house to an `iperf3 -s` on
    /// the far side's loopback, through `-L` and `-L udp/` on one session.
    #[test]
    fn iperf3_tcp_and_udp_through_local_forwards() {
        let test = "iperf3_tcp_and_udp_through_local_forwards";
        let _one = exclusive();
        let Some(mut f) = far(
            test,
            244,
            Needs {
                tools: &["iperf3"],
                ..Needs::default()
            },
        ) else {
            return;
        };
        let iperf3: PathBuf = which("iperf3").unwrap();
        let mut server = lablib::spawn_in(
            &f.lab,
            Role::Internet,
            "iperf3-s",
            f.path(),
            &iperf3,
            &s(&["-s", "-B", "127.0.0.1", "-p", "5201", "--forceflush"]),
            |_| {},
        );
        lablib::wait_marker(&mut server, "Server listening", Duration::from_secs(5));
        f.peers.push(server);
        f.connect(
            "connect-L-iperf3",
            &s(&[
                "-L",
                "127.0.0.1:5201:127.0.0.1:5201",
                "-L",
                "udp/127.0.0.1:5201:127.0.0.1:5201",
            ]),
            "-L udp/127.0.0.1:5201",
        );
        let client = |role: Role, args: &[&str], what: &str| -> Iperf {
            let mut all = vec!["-c", "127.0.0.1", "-p", "5201", "-J"];
            all.extend_from_slice(args);
            let mut cmd = f.lab.command(role, &iperf3);
            cmd.args(&all);
            let r = run_bounded(&mut cmd, Duration::from_secs(30));
            iperf_figures(&r, what)
        };
        // For scale: the same server straight over the far side's loopback.
        let direct = client(Role::Internet, &["-t", "2"], "TCP direct on the far side");
        let tcp = client(Role::House, &["-t", "3"], "TCP through -L");
        let udp = client(
            Role::House,
            &["-u", "-b", "100M", "-t", "3"],
            "UDP through -L udp/",
        );
        // And datagrams the size a VPN would send (iperf3 sizes them by the
        // control connection's MSS: 32 KiB over loopback).
        let small = client(
            Role::House,
            &["-u", "-b", "100M", "-l", "1400", "-t", "3"],
            "UDP -l 1400 through -L udp/",
        );
        f.assert_connects_running();
        eprintln!(
            "FIGURE iperf3 TCP through -L: {:.3} Gbit/s ({:.2}x of {:.1} Gbit/s direct on the far loopback)",
            tcp.bits_per_second / 1e9,
            tcp.bits_per_second / direct.bits_per_second,
            direct.bits_per_second / 1e9
        );
        for u in [&udp, &small] {
            let loss = u.lost_percent.expect("UDP loss figure");
            eprintln!(
                "FIGURE iperf3 UDP -b 100M through -L udp/: {:.1} Mbit/s received, {loss:.2}% lost \
                 ({} datagrams of {} bytes)",
                u.bits_per_second / 1e6,
                u.packets.unwrap_or(0),
                u.blksize
            );
            assert!(u.bits_per_second > 0.0, "{u:?}");
            assert!(loss < 50.0, "UDP loss {loss}% ({u:?})");
        }
        assert!(tcp.bits_per_second > 0.0, "{tcp:?}");
    }

    // -----------------------------------------------------------------------
    // The crosswords (UDP 1194)

    /// A UDP echo on the far side's door 1194 — dropped by the firewall —
    /// answers through `-L udp/…`: every datagram back whole, on its own,
    /// sizes from 1 byte to 60 000, and two flows kept apart.
    #[test]
    fn crosswords_on_udp_1194_through_a_udp_local_forward() {
        let test = "crosswords_on_udp_1194_through_a_udp_local_forward";
        let _one = exclusive();
        let Some(mut f) = far(test, 245, Needs::default()) else {
            return;
        };
        let echo = UdpEcho::start(
            &f.lab,
            Role::Internet,
            SocketAddr::from(([0, 0, 0, 0], CROSSWORDS)),
        );
        let direct = f.far_door(CROSSWORDS);
        assert_eq!(
            udp_round_trip_in(
                &f.lab,
                Role::Internet,
                direct,
                b"from inside",
                Duration::from_secs(1)
            )
            .as_deref(),
            Some(&b"from inside"[..]),
            "the crosswords don't answer on their own side"
        );
        assert_eq!(
            udp_round_trip_in(
                &f.lab,
                Role::House,
                direct,
                b"direct",
                Duration::from_secs(1)
            ),
            None,
            "the house reached UDP {CROSSWORDS} directly"
        );
        eprintln!("door {CROSSWORDS}/udp from the house: blocked (no answer in 1 s)");
        let spec = format!("udp/127.0.0.1:{CROSSWORDS}:{direct}");
        f.connect(
            "connect-L-udp",
            &s(&["-L", &spec]),
            &format!("-L udp/127.0.0.1:{CROSSWORDS}"),
        );
        let local = SocketAddr::from(([127, 0, 0, 1], CROSSWORDS));
        let sock = |_: ()| -> UdpSocket {
            let u = f
                .lab
                .udp_socket(Role::House, "127.0.0.1:0".parse().unwrap())
                .unwrap();
            u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            u
        };
        let (a, b) = (sock(()), sock(()));
        let recv = |u: &UdpSocket| -> Option<Vec<u8>> {
            let mut buf = vec![0u8; 65_536];
            let (n, from) = u.recv_from(&mut buf).ok()?;
            assert_eq!(from, local, "an answer from elsewhere");
            buf.truncate(n);
            Some(buf)
        };
        let started = Instant::now();
        a.send_to(b"7 across: a way out (4)", local).unwrap();
        let first = recv(&a);
        let rtt = started.elapsed();
        assert_eq!(
            first.as_deref(),
            Some(&b"7 across: a way out (4)"[..]),
            "first crossword through -L udp/\nconnect:\n{}\nserve:\n{}",
            f.peers[0].stderr_tail(4096),
            f.door.serve.stderr_tail(4096)
        );
        eprintln!("FIGURE first UDP round trip through -L udp/ (new flow): {rtt:.2?}");
        // Datagrams, not a byte stream: sizes survive one by one.
        for (i, size) in [1usize, 2, 100, 1200, 1472, 9000, 32_000, 60_000]
            .into_iter()
            .enumerate()
        {
            let msg: Vec<u8> = (0..size).map(|j| (i * 31 + j) as u8).collect();
            a.send_to(&msg, local).unwrap();
            let got = recv(&a).unwrap_or_else(|| {
                panic!(
                    "no echo of a {size}-byte datagram\nconnect:\n{}",
                    f.peers[0].stderr_tail(4096)
                )
            });
            assert_eq!(got.len(), size, "a {size}-byte datagram came back resized");
            assert_eq!(got, msg, "a {size}-byte datagram came back changed");
        }
        // Two flows at once, each answered on its own socket.
        for round in 0..10 {
            let (ma, mb) = (format!("a{round}"), format!("b{round}"));
            a.send_to(ma.as_bytes(), local).unwrap();
            b.send_to(mb.as_bytes(), local).unwrap();
            assert_eq!(recv(&a).as_deref(), Some(ma.as_bytes()), "flow a");
            assert_eq!(recv(&b).as_deref(), Some(mb.as_bytes()), "flow b");
        }
        f.assert_connects_running();
        let echoed = echo.stop();
        assert!(echoed >= 1 + 8 + 20, "the far echo saw {echoed} datagrams");
    }
}
