//! `onedoor probe`'s result, and what it is rendered to: the table on
//! stderr ([`table`]), the JSON on stdout ([`json`]) and the one-page HTML
//! picture of the house and its doors ([`html`]).
//!
//! The probe's async shell fills a [`Report`]; everything here is a pure
//! function of it. Nothing reads a clock: the start time and the duration
//! are fields.
//!
//! Words used throughout: a *door* is a port; a door is *known* once it was
//! probed and has a state; doors that were not probed are *not probed*, never
//! counted as closed.

pub mod html;
pub mod json;
pub mod table;
mod words;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use crate::probe::{Interception, PortSet, PortState, Refusal, State};
use crate::tunnel::access_key::Fingerprint;

pub use words::{summary, Summary};

/// Every door there is: ports 1-65535.
pub const ALL_DOORS: usize = 65_535;

/// One probe run, as the shell measured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The server as the user named it (host only, never an access key's
    /// token).
    pub server: String,
    /// The address every door was dialled on.
    pub address: Option<IpAddr>,
    /// The pinned server fingerprint (SHA-256 of its Ed25519 SPKI).
    pub fingerprint: [u8; 32],
    /// When the run started (wall clock).
    pub started: SystemTime,
    /// How long the run took.
    pub duration: Duration,
    /// The pacing it ran with.
    pub settings: Settings,
    /// The TCP doors.
    pub tcp: Doors,
    /// The UDP doors.
    pub udp: Doors,
}

/// The pacing a run used, for the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The per-attempt timeout (connect, and the reply wait).
    pub timeout: Duration,
    /// The most attempts in flight at once.
    pub concurrency: usize,
    /// The most new attempts per second.
    pub rate_per_second: u32,
}

/// The doors of one transport: which were probed, and each one's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Doors {
    /// The ports that were asked about.
    pub probed: PortSet,
    /// The state of each probed port that got one (normally all of them).
    pub states: BTreeMap<u16, PortState>,
}

impl Doors {
    /// Doors to probe, none known yet.
    pub fn new(probed: PortSet) -> Self {
        Doors {
            probed,
            states: BTreeMap::new(),
        }
    }

    /// Record `port`'s state (the port is added to the probed set).
    pub fn set(&mut self, port: u16, state: PortState) {
        self.probed.insert(port);
        self.states.insert(port, state);
    }

    /// The state of `port`, if it was probed and got one.
    pub fn state(&self, port: u16) -> Option<State> {
        self.states.get(&port).map(PortState::state)
    }

    /// The ports in `state`.
    pub fn ports_in(&self, state: State) -> PortSet {
        self.states
            .iter()
            .filter(|(_, s)| s.state() == state)
            .map(|(&p, _)| p)
            .collect()
    }

    /// How many ports are in `state`.
    pub fn count(&self, state: State) -> usize {
        self.states.values().filter(|s| s.state() == state).count()
    }

    /// How many ports were probed.
    pub fn probed_count(&self) -> usize {
        self.probed.len()
    }

    /// The ports in `state`, grouped by identical reason, in order of
    /// their first port: `(code, reason, ports)`.
    pub fn by_reason(&self, state: State) -> Vec<(&'static str, String, PortSet)> {
        let mut groups: Vec<(&'static str, String, PortSet)> = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        for (&port, s) in self.states.iter().filter(|(_, s)| s.state() == state) {
            let reason = s.reason();
            match index.get(&reason) {
                Some(&i) => groups[i].2.insert(port),
                None => {
                    index.insert(reason.clone(), groups.len());
                    groups.push((code(s), reason, std::iter::once(port).collect()));
                }
            }
        }
        groups
    }

    /// The ports worth naming one by one: `open`, `intercepted` and
    /// `out-only`, in port order.
    pub fn named(&self) -> impl Iterator<Item = (u16, &PortState)> + '_ {
        self.states
            .iter()
            .filter(|(_, s)| matches!(s.state(), State::Open | State::Intercepted | State::OutOnly))
            .map(|(&p, s)| (p, s))
    }
}

impl Report {
    /// The fingerprint as printed: `SHA256:` and base64.
    pub fn fingerprint_text(&self) -> String {
        Fingerprint::from_digest(self.fingerprint).to_string()
    }

    /// The start time as RFC 3339 UTC, to the second.
    pub fn started_text(&self) -> String {
        humantime::format_rfc3339_seconds(self.started).to_string()
    }

    /// `server (address)`, or the server alone when it is the address.
    pub fn target_text(&self) -> String {
        match self.address {
            Some(a) if a.to_string() != self.server => format!("{} ({a})", self.server),
            _ => self.server.clone(),
        }
    }
}

/// A short, stable, machine-readable code for a port's reason: `verified`
/// (open); `certificate`, `port-rewritten`, `other-key`, `altered`,
/// `foreign`, `silence`, `closed`, `reset` (intercepted); `refused`,
/// `host-unreachable`, `net-unreachable`, `prohibited` (rejected);
/// `no-answer` (filtered); `arrived` (out-only); `not-arrived`, `unknown`
/// (no-reply: the server saw nothing, or could not be asked).
pub fn code(state: &PortState) -> &'static str {
    match state {
        PortState::Open => "verified",
        PortState::Intercepted(i) => match i {
            Interception::Certificate { .. } => "certificate",
            Interception::PortRewritten { .. } => "port-rewritten",
            Interception::OtherKey => "other-key",
            Interception::Altered => "altered",
            Interception::Foreign { .. } => "foreign",
            Interception::Silence => "silence",
            Interception::Closed => "closed",
            Interception::Reset => "reset",
        },
        PortState::Rejected(r) => match r {
            Refusal::Refused => "refused",
            Refusal::HostUnreachable => "host-unreachable",
            Refusal::NetUnreachable => "net-unreachable",
            Refusal::Prohibited => "prohibited",
        },
        PortState::Filtered { .. } => "no-answer",
        PortState::OutOnly { .. } => "arrived",
        PortState::NoReply { asked: true } => "not-arrived",
        PortState::NoReply { asked: false } => "unknown",
    }
}

/// `1,234` — thousands separated by commas, for the words.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let head = match digits.len() % 3 {
        0 => 3,
        r => r,
    };
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    out.push_str(&digits[..head]);
    for group in digits.as_bytes()[head..].chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(group).expect("ASCII digits"));
    }
    out
}

/// A port list for prose: `80, 443 and 8080`, at most `max` ports then
/// `and N more`.
pub(crate) fn list_ports(ports: &[u16], max: usize) -> String {
    let shown: Vec<String> = ports.iter().take(max).map(u16::to_string).collect();
    let rest = ports.len().saturating_sub(max);
    match (shown.len(), rest) {
        (0, _) => String::new(),
        (1, 0) => shown[0].clone(),
        (n, 0) => format!("{} and {}", shown[..n - 1].join(", "), shown[n - 1]),
        (_, r) => format!("{} and {} more", shown.join(", "), thousands(r)),
    }
}

#[cfg(test)]
pub(crate) mod sample {
    //! Reports the tests of every renderer share.

    use super::*;

    /// A run over all 65,535 TCP doors: 80 intercepted by a portal, 443
    /// and 22 open, 8080 rewritten by a NAT, 1-19 rejected, the rest
    /// filtered; UDP 53 out-only, 123 no-reply, 443 open, 1194 rejected.
    pub(crate) fn web() -> Report {
        let mut tcp = Doors::new(PortSet::all());
        for p in 1..=65535u16 {
            let s = match p {
                22 | 443 => PortState::Open,
                80 => PortState::Intercepted(Interception::Foreign {
                    what: "`HTTP/1.1 302 Found`".into(),
                }),
                8080 => PortState::Intercepted(Interception::PortRewritten { seen: 8081 }),
                1..=19 => PortState::Rejected(Refusal::Refused),
                _ => PortState::Filtered { tries: 2 },
            };
            tcp.set(p, s);
        }
        let mut udp = Doors::new(PortSet::parse("53,123,443,1194").unwrap());
        udp.set(53, PortState::OutOnly { port_seen: 53 });
        udp.set(123, PortState::NoReply { asked: true });
        udp.set(443, PortState::Open);
        udp.set(1194, PortState::Rejected(Refusal::Refused));
        Report {
            server: "door.example".into(),
            address: Some("198.18.0.2".parse().unwrap()),
            fingerprint: [7; 32],
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000),
            duration: Duration::from_millis(12_345),
            settings: Settings {
                timeout: Duration::from_millis(1500),
                concurrency: 512,
                rate_per_second: 2000,
            },
            tcp,
            udp,
        }
    }

    /// The default run (top100, four UDP doors) where nothing gets out.
    pub(crate) fn shut() -> Report {
        let mut r = web();
        r.tcp = Doors::new(PortSet::top100());
        for p in PortSet::top100().iter() {
            r.tcp.set(p, PortState::Filtered { tries: 2 });
        }
        for p in [53, 123, 443, 1194] {
            r.udp.set(p, PortState::NoReply { asked: false });
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doors_group_and_count() {
        let r = sample::web();
        assert_eq!(r.tcp.count(State::Open), 2);
        assert_eq!(r.tcp.ports_in(State::Open).to_string(), "22,443");
        assert_eq!(r.tcp.ports_in(State::Intercepted).to_string(), "80,8080");
        assert_eq!(r.tcp.count(State::Filtered), 65535 - 2 - 2 - 19);
        let groups = r.tcp.by_reason(State::Intercepted);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].0, "foreign");
        assert_eq!(groups[0].2.to_string(), "80");
        assert_eq!(groups[1].0, "port-rewritten");
        let rejected = r.tcp.by_reason(State::Rejected);
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].2.to_string(), "1-19");
        let named: Vec<u16> = r.tcp.named().map(|(p, _)| p).collect();
        assert_eq!(named, [22, 80, 443, 8080]);
        let named: Vec<u16> = r.udp.named().map(|(p, _)| p).collect();
        assert_eq!(named, [53, 443]);
    }

    #[test]
    fn texts() {
        let r = sample::web();
        assert_eq!(r.started_text(), "2025-06-15T15:06:40Z");
        assert_eq!(r.target_text(), "door.example (198.18.0.2)");
        assert!(r.fingerprint_text().starts_with("SHA256:BwcH"));
        let mut same = r.clone();
        same.server = "198.18.0.2".into();
        assert_eq!(same.target_text(), "198.18.0.2");
    }

    #[test]
    fn numbers_and_lists() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(65535), "65,535");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(list_ports(&[], 3), "");
        assert_eq!(list_ports(&[443], 3), "443");
        assert_eq!(list_ports(&[80, 443], 3), "80 and 443");
        assert_eq!(list_ports(&[22, 80, 443], 3), "22, 80 and 443");
        assert_eq!(list_ports(&[1, 2, 3, 4, 5], 3), "1, 2, 3 and 2 more");
    }

    #[test]
    fn codes_are_distinct_per_reason_kind() {
        let states = [
            PortState::Open,
            PortState::Intercepted(Interception::Silence),
            PortState::Intercepted(Interception::Closed),
            PortState::Intercepted(Interception::Reset),
            PortState::Intercepted(Interception::OtherKey),
            PortState::Intercepted(Interception::Altered),
            PortState::Intercepted(Interception::Certificate { seen: [0; 32] }),
            PortState::Intercepted(Interception::PortRewritten { seen: 1 }),
            PortState::Intercepted(Interception::Foreign { what: "x".into() }),
            PortState::Rejected(Refusal::Refused),
            PortState::Rejected(Refusal::HostUnreachable),
            PortState::Rejected(Refusal::NetUnreachable),
            PortState::Rejected(Refusal::Prohibited),
            PortState::Filtered { tries: 2 },
            PortState::OutOnly { port_seen: 1 },
            PortState::NoReply { asked: true },
            PortState::NoReply { asked: false },
        ];
        let codes: std::collections::BTreeSet<&str> = states.iter().map(code).collect();
        assert_eq!(codes.len(), states.len());
    }
}
