//! The story's first chapter as pure data: the probe's map of the house's
//! doors. The command lines of `onedoor serve --reflect` and `onedoor
//! probe` ([`MapPlan`]), what each policy should show on every door
//! ([`expected`]), the check of a map against it ([`check`]) and the map in
//! plain words ([`words`]).
//!
//! The map is `onedoor probe --json` ([`ProbeJson`]), kept whole in the
//! lab's JSON and drawn in its report with the probe's own picture.

use std::net::Ipv4Addr;
use std::path::Path;

use onedoor_proto::probe::{PortSet, State};
use onedoor_proto::report::json::{DoorsJson, ProbeJson};
use serde::Serialize;

use crate::policy::{Door, Expect, Policy};

/// The UDP doors of every map: DNS, NTP, QUIC and OpenVPN (the probe's own
/// default), which includes the crosswords' door 1194.
pub const MAP_UDP: &str = "53,123,443,1194";

/// How the map is made: which doors, and the probe's pacing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MapPlan {
    /// TCP doors, in `--tcp` syntax.
    pub tcp: String,
    /// UDP doors, in `--udp` syntax.
    pub udp: String,
    /// `--timeout`, in milliseconds.
    pub timeout_ms: u64,
    /// `--concurrency`.
    pub concurrency: u32,
    /// `--rate`, per second.
    pub rate: u32,
}

impl MapPlan {
    /// The story's map: the 100 most useful TCP doors and the four UDP
    /// ones. Inside the lab an answer takes well under a millisecond, so
    /// 500 ms is a generous timeout: a dropped door costs two of them, and
    /// the whole map about a second.
    pub fn story() -> MapPlan {
        MapPlan {
            tcp: "top100".into(),
            udp: MAP_UDP.into(),
            timeout_ms: 500,
            concurrency: 512,
            rate: 2000,
        }
    }

    /// `--full-map`: all 65,535 TCP doors (through serve's nftables
    /// redirect), paced as the probe benchmark found fast and reliable
    /// here (see BENCHMARKS.md).
    pub fn full() -> MapPlan {
        MapPlan {
            tcp: "1-65535".into(),
            udp: "none".into(),
            timeout_ms: 500,
            concurrency: 16_384,
            rate: 50_000,
        }
    }

    /// True for a map of every TCP door.
    pub fn is_full(&self) -> bool {
        self.tcp == "1-65535"
    }

    /// serve's `--reflect` value.
    pub fn reflect(&self) -> String {
        if self.udp == "none" {
            format!("tcp:{}", self.tcp)
        } else {
            format!("tcp:{},udp:{}", self.tcp, self.udp)
        }
    }

    /// `serve -l LISTEN --state-dir DIR --reflect … --drain-timeout 100ms`:
    /// the reflector alone, with no route (anything that is not a probe
    /// hello is closed), stopping at once when told.
    pub fn serve_args(&self, listen: std::net::SocketAddr, state_dir: &Path) -> Vec<String> {
        vec![
            "serve".into(),
            "-l".into(),
            listen.to_string(),
            "--state-dir".into(),
            state_dir.display().to_string(),
            "--reflect".into(),
            self.reflect(),
            "--drain-timeout".into(),
            "100ms".into(),
        ]
    }

    /// `probe SERVER --fingerprint FP --tcp … --udp … --timeout … --json`.
    pub fn probe_args(&self, server: Ipv4Addr, fingerprint: &str) -> Vec<String> {
        vec![
            "probe".into(),
            server.to_string(),
            "--fingerprint".into(),
            fingerprint.into(),
            "--tcp".into(),
            self.tcp.clone(),
            "--udp".into(),
            self.udp.clone(),
            "--timeout".into(),
            format!("{}ms", self.timeout_ms),
            "--concurrency".into(),
            self.concurrency.to_string(),
            "--rate".into(),
            format!("{}/s", self.rate),
            "--json".into(),
        ]
    }

    /// How long the probe may take before the story gives up on it: every
    /// door's two tries at twice the timeout, at the pace asked, plus the
    /// UDP question and a margin for a loaded machine.
    pub fn probe_bound(&self) -> std::time::Duration {
        let doors = PortSet::parse(&self.tcp).map(|s| s.len()).unwrap_or(65_535)
            + PortSet::parse(&self.udp).map(|s| s.len()).unwrap_or(0);
        let per_try = 2 * self.timeout_ms;
        let waves = doors.div_ceil(self.concurrency.max(1) as usize) as u64;
        let paced = 1000 * 2 * doors as u64 / u64::from(self.rate.max(1));
        std::time::Duration::from_millis(2 * waves * per_try + paced + 10_000)
    }
}

/// The state the probe should find on `door` under `policy`.
pub fn expected(policy: Policy, door: Door) -> State {
    match (policy.expect(door), door) {
        (Expect::Open, _) => State::Open,
        (Expect::Intercepted, _) => State::Intercepted,
        (Expect::Refused, _) => State::Rejected,
        (Expect::Dropped, Door::Tcp(_)) => State::Filtered,
        (Expect::Dropped, Door::Udp(_)) => State::NoReply,
    }
}

/// A door the map shows otherwise than the policy says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// The door.
    pub door: Door,
    /// What the policy says (a probe state: `open`, `filtered`, …).
    pub expected: &'static str,
    /// What the probe found (`none` when it gave no state).
    pub seen: &'static str,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} was {} but the policy says {}",
            self.door, self.seen, self.expected
        )
    }
}

/// The ports of each state, parsed.
fn states(d: &DoorsJson) -> Result<Vec<(State, PortSet)>, String> {
    let groups = [
        (State::Open, &d.open.ports),
        (State::Intercepted, &d.intercepted.ports),
        (State::Rejected, &d.rejected.ports),
        (State::Filtered, &d.filtered.ports),
        (State::OutOnly, &d.out_only.ports),
        (State::NoReply, &d.no_reply.ports),
    ];
    groups
        .into_iter()
        .map(|(s, ports)| {
            if ports.is_empty() {
                Ok((s, PortSet::new()))
            } else {
                PortSet::parse(ports)
                    .map(|p| (s, p))
                    .map_err(|e| format!("{} ports `{ports}`: {e}", s.as_str()))
            }
        })
        .collect()
}

fn probed(d: &DoorsJson) -> Result<PortSet, String> {
    if d.probed.ports.is_empty() {
        return Ok(PortSet::new());
    }
    PortSet::parse(&d.probed.ports).map_err(|e| format!("probed ports: {e}"))
}

/// Every door of the map whose state is not what `policy` says, in port
/// order, TCP first (a door the probe gave no state counts as one).
pub fn check(policy: Policy, map: &ProbeJson) -> Result<Vec<Mismatch>, String> {
    let mut out = Vec::new();
    for (udp, d) in [(false, &map.tcp), (true, &map.udp)] {
        let door = |p| if udp { Door::Udp(p) } else { Door::Tcp(p) };
        let groups = states(d)?;
        for port in probed(d)?.iter() {
            let seen = groups
                .iter()
                .find(|(_, ports)| ports.contains(port))
                .map(|(s, _)| *s);
            let want = expected(policy, door(port));
            if seen != Some(want) {
                out.push(Mismatch {
                    door: door(port),
                    expected: want.as_str(),
                    seen: seen.map_or("none", State::as_str),
                });
            }
        }
    }
    Ok(out)
}

/// `80 and 443`, `53, 123, 443 and 1194`, at most `max` ports named.
fn port_words(ports: &PortSet, max: usize) -> String {
    let all: Vec<String> = ports.iter().take(max).map(|p| p.to_string()).collect();
    let rest = ports.len().saturating_sub(max);
    match (all.as_slice(), rest) {
        ([], _) => String::new(),
        ([one], 0) => one.clone(),
        ([init @ .., last], 0) => format!("{} and {last}", init.join(", ")),
        (shown, r) => format!("{} and {r} more", shown.join(", ")),
    }
}

/// What a state is called in the map's words.
fn state_words(s: State) -> &'static str {
    match s {
        State::Open => "open",
        State::Intercepted => "intercepted (something else answered)",
        State::Rejected => "refused",
        State::Filtered => "dropped",
        State::OutOnly => "out only (it arrives, no reply comes back)",
        State::NoReply => "no reply",
    }
}

/// The map in plain words, e.g. `doors 80 and 443 are open; 98 others are
/// dropped; UDP 53, 123, 443 and 1194: no reply`.
pub fn words(map: &ProbeJson) -> Result<String, String> {
    let mut parts = Vec::new();
    let tcp = states(&map.tcp)?;
    let probed_tcp = probed(&map.tcp)?.len();
    let named = |s: State| tcp.iter().find(|(st, _)| *st == s).map(|(_, p)| p.clone());
    let open = named(State::Open).unwrap_or_default();
    let intercepted = named(State::Intercepted).unwrap_or_default();
    let shown = open.len() + intercepted.len();
    for (set, what) in [(&open, "open"), (&intercepted, "intercepted")] {
        match set.len() {
            0 => {}
            1 => parts.push(format!("door {} is {what}", port_words(set, 8))),
            _ => parts.push(format!("doors {} are {what}", port_words(set, 8))),
        }
    }
    if probed_tcp > 0 && open.is_empty() {
        parts.insert(0, "no door is open straight".into());
    }
    for (s, set) in &tcp {
        if matches!(s, State::Open | State::Intercepted) || set.is_empty() {
            continue;
        }
        let n = set.len();
        let who = if shown == 0 && n == probed_tcp {
            format!("all {n}")
        } else if shown == 0 {
            n.to_string()
        } else if n == 1 {
            "1 other".to_owned()
        } else {
            format!("{n} others")
        };
        parts.push(format!(
            "{who} {} {}",
            if n == 1 && shown == 0 { "is" } else { "are" },
            state_words(*s)
        ));
    }
    for (s, set) in states(&map.udp)? {
        if !set.is_empty() {
            parts.push(format!("UDP {}: {}", port_words(&set, 8), state_words(s)));
        }
    }
    Ok(parts.join("; "))
}

/// The first chapter of one run: how the map was made, the map itself and
/// whether it matches the policy.
#[derive(Debug, Clone, Serialize)]
pub struct DoorMap {
    /// How it was made.
    pub plan: MapPlan,
    /// The reflector's command line (after `onedoor`).
    pub serve_args: Vec<String>,
    /// The probe's command line (after `onedoor`), run from the house.
    pub probe_args: Vec<String>,
    /// The map in plain words.
    pub words: String,
    /// The doors that differ from the policy.
    pub mismatches: Vec<Mismatch>,
    /// True when the map was made and every door is as the policy says.
    pub ok: bool,
    /// Why the map could not be made, if it could not.
    pub error: Option<String>,
    /// The probe's own JSON (`onedoor probe --json`), whole.
    pub probe: Option<ProbeJson>,
    /// Milliseconds for the whole chapter (init, serve, probe, stop).
    pub ms: u64,
}

impl DoorMap {
    /// A chapter that could not make its map.
    pub fn failed(plan: MapPlan, serve_args: Vec<String>, error: String, ms: u64) -> DoorMap {
        DoorMap {
            plan,
            serve_args,
            probe_args: Vec::new(),
            words: String::new(),
            mismatches: Vec::new(),
            ok: false,
            error: Some(error),
            probe: None,
            ms,
        }
    }

    /// Judge the probe's map against `policy`.
    pub fn judged(
        policy: Policy,
        plan: MapPlan,
        serve_args: Vec<String>,
        probe_args: Vec<String>,
        probe: ProbeJson,
        ms: u64,
    ) -> DoorMap {
        let (mismatches, error) = match check(policy, &probe) {
            Ok(m) => (m, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let words = words(&probe).unwrap_or_default();
        DoorMap {
            plan,
            serve_args,
            probe_args,
            words,
            ok: error.is_none() && mismatches.is_empty(),
            mismatches,
            error,
            probe: Some(probe),
            ms,
        }
    }

    /// One line on how it went: the mismatches or the error, or that the
    /// map matches the policy.
    pub fn judgement(&self, policy: Policy) -> String {
        if let Some(e) = &self.error {
            return format!("the map could not be made: {e}");
        }
        if self.mismatches.is_empty() {
            return format!("as policy {policy} says");
        }
        let shown: Vec<String> = self
            .mismatches
            .iter()
            .take(3)
            .map(|m| m.to_string())
            .collect();
        let more = self.mismatches.len().saturating_sub(3);
        format!(
            "NOT as policy {policy} says: {}{}",
            shown.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        )
    }
}

/// Maps for tests.
#[cfg(test)]
pub(crate) mod sample {
    use super::*;
    use onedoor_proto::probe::{PortState, Refusal};
    use onedoor_proto::report::{json, Doors, Report, Settings};
    use std::time::{Duration, SystemTime};

    /// The map `policy` should give for the story's plan, made as the
    /// probe would make it.
    pub(crate) fn ideal(policy: Policy) -> ProbeJson {
        let plan = MapPlan::story();
        let mut tcp = Doors::new(PortSet::parse(&plan.tcp).unwrap());
        let mut udp = Doors::new(PortSet::parse(&plan.udp).unwrap());
        let state = |s: State| match s {
            State::Open => PortState::Open,
            State::Intercepted => {
                PortState::Intercepted(onedoor_proto::probe::Interception::Foreign {
                    what: "HTTP/1.1 302".into(),
                })
            }
            State::Rejected => PortState::Rejected(Refusal::Refused),
            State::Filtered => PortState::Filtered { tries: 2 },
            State::OutOnly => PortState::OutOnly { port_seen: 1 },
            State::NoReply => PortState::NoReply { asked: true },
        };
        for p in tcp.probed.clone().iter() {
            tcp.set(p, state(expected(policy, Door::Tcp(p))));
        }
        for p in udp.probed.clone().iter() {
            udp.set(p, state(expected(policy, Door::Udp(p))));
        }
        json::to_json(&Report {
            server: "198.19.0.2".into(),
            address: Some("198.19.0.2".parse().unwrap()),
            fingerprint: [1; 32],
            started: SystemTime::UNIX_EPOCH,
            duration: Duration::from_millis(900),
            settings: Settings {
                timeout: Duration::from_millis(500),
                concurrency: 512,
                rate_per_second: 2000,
            },
            tcp,
            udp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::sample::ideal;
    use super::*;
    use std::time::Duration;

    #[test]
    fn expected_maps_per_policy() {
        use State::*;
        let table = [
            (Policy::Web, [Filtered, Open, Open, NoReply]),
            (Policy::HttpsOnly, [Filtered, Filtered, Open, NoReply]),
            (Policy::WebReject, [Rejected, Open, Open, Rejected]),
            (Policy::Intercept, [Filtered, Intercepted, Open, NoReply]),
            (Policy::ProxyOnly, [Filtered, Filtered, Filtered, NoReply]),
        ];
        for (p, want) in table {
            let got = [
                expected(p, Door::Tcp(22)),
                expected(p, Door::Tcp(80)),
                expected(p, Door::Tcp(443)),
                expected(p, Door::Udp(1194)),
            ];
            assert_eq!(got, want, "{p}");
        }
    }

    #[test]
    fn the_map_in_words() {
        let w = |p| words(&ideal(p)).unwrap();
        assert_eq!(
            w(Policy::Web),
            "doors 80 and 443 are open; 98 others are dropped; UDP 53, 123, 443 and 1194: no reply"
        );
        assert_eq!(
            w(Policy::HttpsOnly),
            "door 443 is open; 99 others are dropped; UDP 53, 123, 443 and 1194: no reply"
        );
        assert_eq!(
            w(Policy::WebReject),
            "doors 80 and 443 are open; 98 others are refused; UDP 53, 123, 443 and 1194: refused"
        );
        assert_eq!(
            w(Policy::Intercept),
            "door 443 is open; door 80 is intercepted; 98 others are dropped; \
             UDP 53, 123, 443 and 1194: no reply"
        );
        assert_eq!(
            w(Policy::ProxyOnly),
            "no door is open straight; all 100 are dropped; UDP 53, 123, 443 and 1194: no reply"
        );
    }

    #[test]
    fn every_ideal_map_checks_and_others_do_not() {
        for p in Policy::ALL {
            assert_eq!(check(p, &ideal(p)).unwrap(), vec![], "{p}");
        }
        let m = check(Policy::Web, &ideal(Policy::Intercept)).unwrap();
        assert_eq!(
            m,
            vec![Mismatch {
                door: Door::Tcp(80),
                expected: "open",
                seen: "intercepted"
            }]
        );
        assert_eq!(
            m[0].to_string(),
            "door 80 was intercepted but the policy says open"
        );
        let m = check(Policy::Web, &ideal(Policy::WebReject)).unwrap();
        assert_eq!(m.len(), 98 + 4);
        // A door without a state is a mismatch too.
        let mut j = ideal(Policy::Web);
        j.tcp.open.ports = "80".into();
        let m = check(Policy::Web, &j).unwrap();
        assert_eq!(m[0].seen, "none");
        assert_eq!(m[0].door, Door::Tcp(443));
    }

    #[test]
    fn judged_and_judgement() {
        let d = DoorMap::judged(
            Policy::Web,
            MapPlan::story(),
            vec![],
            vec![],
            ideal(Policy::Web),
            900,
        );
        assert!(d.ok);
        assert_eq!(d.judgement(Policy::Web), "as policy web says");
        let d = DoorMap::judged(
            Policy::HttpsOnly,
            MapPlan::story(),
            vec![],
            vec![],
            ideal(Policy::Web),
            900,
        );
        assert!(!d.ok);
        assert_eq!(
            d.judgement(Policy::HttpsOnly),
            "NOT as policy https-only says: door 80 was open but the policy says filtered"
        );
    }

    #[test]
    fn command_lines() {
        let plan = MapPlan::story();
        let ip = Ipv4Addr::new(198, 19, 0, 2);
        assert_eq!(
            plan.serve_args((ip, 443).into(), Path::new("/run/x"))
                .join(" "),
            "serve -l 198.19.0.2:443 --state-dir /run/x --reflect tcp:top100,udp:53,123,443,1194 \
             --drain-timeout 100ms"
        );
        assert_eq!(
            plan.probe_args(ip, "SHA256:abc").join(" "),
            "probe 198.19.0.2 --fingerprint SHA256:abc --tcp top100 --udp 53,123,443,1194 \
             --timeout 500ms --concurrency 512 --rate 2000/s --json"
        );
        assert!(!plan.is_full() && MapPlan::full().is_full());
        assert!(plan.probe_bound() < Duration::from_secs(20));
        assert!(MapPlan::full().probe_bound() < Duration::from_secs(60));
    }
}
