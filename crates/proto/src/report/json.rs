//! `onedoor probe --json`: the result for machines (and for `connect
//! --transport auto`), schema version 1.
//!
//! ```json
//! {
//!   "schema": 1,
//!   "server": "door.example",
//!   "address": "198.18.0.2",
//!   "fingerprint": "SHA256:…",
//!   "started": "2025-06-15T15:06:40Z",
//!   "duration_ms": 12345,
//!   "settings": { "timeout_ms": 1500, "concurrency": 512, "rate_per_second": 2000 },
//!   "tcp": {
//!     "probed":      { "count": 65535, "ports": "1-65535" },
//!     "open":        { "count": 2, "ports": "22,443", "reasons": [
//!                      { "code": "verified", "reason": "the onedoor server answered, verified",
//!                        "count": 2, "ports": "22,443" } ] },
//!     "intercepted": { … }, "rejected": { … }, "filtered": { … },
//!     "out-only":    { … }, "no-reply": { … },
//!     "doors": [
//!       { "port": 22, "state": "open", "code": "verified", "reason": "…" },
//!       { "port": 8080, "state": "intercepted", "code": "port-rewritten",
//!         "reason": "…", "port_seen": 8081 }
//!     ]
//!   },
//!   "udp": { same shape }
//! }
//! ```
//!
//! - Every key is always present, all six states in both transports (with
//!   `count` 0, `ports` `""` and no reasons when empty); `address` may be
//!   `null`.
//! - `ports` is a port list in the `--tcp` syntax: sorted, merged ranges
//!   (`1-79,81-442`), `""` for none; [`crate::probe::PortSet::parse`] reads
//!   it back.
//! - `reasons` splits a state's ports by reason: `code` is stable
//!   ([`super::code`]), `reason` is the plain-words text and may change.
//!   So every port's reason is there, also for 65,000 rejected ports,
//!   without a line per port.
//! - `doors` lists one by one the ports worth naming — `open`,
//!   `intercepted` and `out-only` — with what was seen: `port_seen` (a NAT
//!   rewrite, or where a UDP datagram arrived), `what` (the foreign answer)
//!   or `certificate` (the fingerprint presented), each only when it
//!   applies.
//! - A new key may be added without changing `schema`; a key removed or
//!   changed in meaning bumps it.

use serde::{Deserialize, Serialize};

use super::{code, Doors, Report};
use crate::probe::{Interception, PortState, State};
use crate::tunnel::access_key::Fingerprint;

/// The schema version written in `schema`.
pub const SCHEMA: u32 = 1;

/// The whole document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeJson {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The server as named by the user.
    pub server: String,
    /// The address every door was dialled on.
    pub address: Option<String>,
    /// `SHA256:…`, the pinned fingerprint.
    pub fingerprint: String,
    /// RFC 3339 UTC, to the second.
    pub started: String,
    /// How long the run took.
    pub duration_ms: u64,
    /// The pacing used.
    pub settings: SettingsJson,
    /// The TCP doors.
    pub tcp: DoorsJson,
    /// The UDP doors.
    pub udp: DoorsJson,
}

/// The pacing a run used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsJson {
    /// The per-attempt timeout.
    pub timeout_ms: u64,
    /// The most attempts in flight.
    pub concurrency: usize,
    /// The most new attempts per second.
    pub rate_per_second: u32,
}

/// One transport's doors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorsJson {
    /// The ports asked about.
    pub probed: PortsJson,
    /// Verified doors to the server.
    pub open: StateJson,
    /// Answered by something else.
    pub intercepted: StateJson,
    /// Actively refused.
    pub rejected: StateJson,
    /// Silently dropped.
    pub filtered: StateJson,
    /// UDP: arrived, no reply came back.
    #[serde(rename = "out-only")]
    pub out_only: StateJson,
    /// UDP: nothing came back, nothing arrived (or unknown).
    #[serde(rename = "no-reply")]
    pub no_reply: StateJson,
    /// The open, intercepted and out-only ports one by one.
    pub doors: Vec<DoorJson>,
}

/// A set of ports with its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortsJson {
    /// How many ports.
    pub count: usize,
    /// The ports as a port list (`1-79,81-442`), `""` for none.
    pub ports: String,
}

/// The ports in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateJson {
    /// How many ports.
    pub count: usize,
    /// The ports as a port list, `""` for none.
    pub ports: String,
    /// The same ports split by reason.
    pub reasons: Vec<ReasonJson>,
}

/// The ports of one state that share a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonJson {
    /// The stable code ([`super::code`]).
    pub code: String,
    /// The reason in plain words.
    pub reason: String,
    /// How many ports.
    pub count: usize,
    /// The ports as a port list.
    pub ports: String,
}

/// One named door.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorJson {
    /// The port dialled.
    pub port: u16,
    /// `open`, `intercepted` or `out-only`.
    pub state: String,
    /// The stable code ([`super::code`]).
    pub code: String,
    /// The reason in plain words.
    pub reason: String,
    /// The port the server saw (NAT rewrite, or a UDP arrival).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_seen: Option<u16>,
    /// What answered instead of the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what: Option<String>,
    /// The certificate fingerprint presented instead of the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// The document for `report`.
pub fn to_json(report: &Report) -> ProbeJson {
    ProbeJson {
        schema: SCHEMA,
        server: report.server.clone(),
        address: report.address.map(|a| a.to_string()),
        fingerprint: report.fingerprint_text(),
        started: report.started_text(),
        duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
        settings: SettingsJson {
            timeout_ms: u64::try_from(report.settings.timeout.as_millis()).unwrap_or(u64::MAX),
            concurrency: report.settings.concurrency,
            rate_per_second: report.settings.rate_per_second,
        },
        tcp: doors(&report.tcp),
        udp: doors(&report.udp),
    }
}

/// The document for `report` as pretty-printed text, ending with a newline.
pub fn to_string(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(&to_json(report)).expect("plain data serializes");
    s.push('\n');
    s
}

fn doors(d: &Doors) -> DoorsJson {
    let state = |s: State| {
        let ports = d.ports_in(s);
        StateJson {
            count: ports.len(),
            ports: ports.to_string(),
            reasons: d
                .by_reason(s)
                .into_iter()
                .map(|(code, reason, ports)| ReasonJson {
                    code: code.to_owned(),
                    reason,
                    count: ports.len(),
                    ports: ports.to_string(),
                })
                .collect(),
        }
    };
    DoorsJson {
        probed: PortsJson {
            count: d.probed.len(),
            ports: d.probed.to_string(),
        },
        open: state(State::Open),
        intercepted: state(State::Intercepted),
        rejected: state(State::Rejected),
        filtered: state(State::Filtered),
        out_only: state(State::OutOnly),
        no_reply: state(State::NoReply),
        doors: d.named().map(|(port, s)| door(port, s)).collect(),
    }
}

fn door(port: u16, s: &PortState) -> DoorJson {
    let mut j = DoorJson {
        port,
        state: s.state().as_str().to_owned(),
        code: code(s).to_owned(),
        reason: s.reason(),
        port_seen: None,
        what: None,
        certificate: None,
    };
    match s {
        PortState::OutOnly { port_seen } => j.port_seen = Some(*port_seen),
        PortState::Intercepted(Interception::PortRewritten { seen }) => j.port_seen = Some(*seen),
        PortState::Intercepted(Interception::Foreign { what }) => j.what = Some(what.clone()),
        PortState::Intercepted(Interception::Certificate { seen }) => {
            j.certificate = Some(Fingerprint::from_digest(*seen).to_string())
        }
        _ => {}
    }
    j
}

/// Why a document could not be read back into a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("probe JSON: {0}")]
pub struct FromJsonError(pub String);

/// Read a document back into the [`Report`] it was made from (for a
/// program that ran `onedoor probe --json` and wants the picture or the
/// words of [`super::html`] and [`super::summary`]).
///
/// Every port's state comes back with its reason, from the stable `code`
/// of each reason group and the `doors` details. What JSON does not keep
/// comes back as its usual value: a filtered door's tries as
/// [`crate::probe::MAX_TRIES`], a missing certificate as zeros.
pub fn from_json(j: &ProbeJson) -> Result<Report, FromJsonError> {
    let bad = |what: String| FromJsonError(what);
    let fingerprint = j
        .fingerprint
        .parse::<Fingerprint>()
        .map_err(|e| bad(format!("fingerprint: {e}")))?;
    let address = j
        .address
        .as_deref()
        .map(|a| a.parse().map_err(|e| bad(format!("address `{a}`: {e}"))))
        .transpose()?;
    let started = humantime::parse_rfc3339(&j.started)
        .map_err(|e| bad(format!("started `{}`: {e}", j.started)))?;
    Ok(Report {
        server: j.server.clone(),
        address,
        fingerprint: *fingerprint.digest(),
        started,
        duration: std::time::Duration::from_millis(j.duration_ms),
        settings: super::Settings {
            timeout: std::time::Duration::from_millis(j.settings.timeout_ms),
            concurrency: j.settings.concurrency,
            rate_per_second: j.settings.rate_per_second,
        },
        tcp: doors_back(&j.tcp).map_err(|e| bad(format!("tcp: {e}")))?,
        udp: doors_back(&j.udp).map_err(|e| bad(format!("udp: {e}")))?,
    })
}

fn doors_back(d: &DoorsJson) -> Result<Doors, String> {
    use crate::probe::{PortSet, Refusal, MAX_TRIES};
    let parse = |s: &str| PortSet::parse(s).map_err(|e| format!("`{s}`: {e}"));
    let probed = if d.probed.ports.is_empty() {
        PortSet::new()
    } else {
        parse(&d.probed.ports)?
    };
    let mut doors = Doors::new(probed);
    let named: std::collections::BTreeMap<u16, &DoorJson> =
        d.doors.iter().map(|n| (n.port, n)).collect();
    for (state, group) in [
        (State::Open, &d.open),
        (State::Intercepted, &d.intercepted),
        (State::Rejected, &d.rejected),
        (State::Filtered, &d.filtered),
        (State::OutOnly, &d.out_only),
        (State::NoReply, &d.no_reply),
    ] {
        for reason in &group.reasons {
            if reason.ports.is_empty() {
                continue;
            }
            for port in parse(&reason.ports)?.iter() {
                let door = named.get(&port);
                let seen = door.and_then(|n| n.port_seen).unwrap_or(port);
                let s = match reason.code.as_str() {
                    "verified" => PortState::Open,
                    "certificate" => {
                        let seen = door
                            .and_then(|n| n.certificate.as_deref())
                            .and_then(|c| c.parse::<Fingerprint>().ok())
                            .map(|f| *f.digest())
                            .unwrap_or([0; 32]);
                        PortState::Intercepted(Interception::Certificate { seen })
                    }
                    "port-rewritten" => {
                        PortState::Intercepted(Interception::PortRewritten { seen })
                    }
                    "other-key" => PortState::Intercepted(Interception::OtherKey),
                    "altered" => PortState::Intercepted(Interception::Altered),
                    "foreign" => PortState::Intercepted(Interception::Foreign {
                        what: door.and_then(|n| n.what.clone()).unwrap_or_default(),
                    }),
                    "silence" => PortState::Intercepted(Interception::Silence),
                    "closed" => PortState::Intercepted(Interception::Closed),
                    "reset" => PortState::Intercepted(Interception::Reset),
                    "refused" => PortState::Rejected(Refusal::Refused),
                    "host-unreachable" => PortState::Rejected(Refusal::HostUnreachable),
                    "net-unreachable" => PortState::Rejected(Refusal::NetUnreachable),
                    "prohibited" => PortState::Rejected(Refusal::Prohibited),
                    "no-answer" => PortState::Filtered { tries: MAX_TRIES },
                    "arrived" => PortState::OutOnly { port_seen: seen },
                    "not-arrived" => PortState::NoReply { asked: true },
                    "unknown" => PortState::NoReply { asked: false },
                    other => return Err(format!("unknown code `{other}`")),
                };
                if s.state() != state {
                    return Err(format!("code `{}` under `{}`", reason.code, state.as_str()));
                }
                doors.set(port, s);
            }
        }
    }
    Ok(doors)
}

#[cfg(test)]
mod tests {
    use super::super::sample;
    use super::*;
    use crate::probe::PortSet;
    use serde_json::Value;

    #[test]
    fn schema_of_a_full_map() {
        let text = to_string(&sample::web());
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["schema"], 1);
        assert_eq!(v["server"], "door.example");
        assert_eq!(v["address"], "198.18.0.2");
        assert_eq!(
            v["fingerprint"],
            "SHA256:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc"
        );
        assert_eq!(v["started"], "2025-06-15T15:06:40Z");
        assert_eq!(v["duration_ms"], 12345);
        assert_eq!(v["settings"]["timeout_ms"], 1500);
        assert_eq!(v["settings"]["concurrency"], 512);
        assert_eq!(v["settings"]["rate_per_second"], 2000);
        let tcp = &v["tcp"];
        assert_eq!(tcp["probed"]["count"], 65535);
        assert_eq!(tcp["probed"]["ports"], "1-65535");
        assert_eq!(tcp["open"]["count"], 2);
        assert_eq!(tcp["open"]["ports"], "22,443");
        assert_eq!(tcp["open"]["reasons"][0]["code"], "verified");
        assert_eq!(tcp["intercepted"]["ports"], "80,8080");
        assert_eq!(tcp["rejected"]["ports"], "1-19");
        assert_eq!(tcp["rejected"]["reasons"][0]["code"], "refused");
        assert_eq!(tcp["filtered"]["count"], 65512);
        assert_eq!(tcp["filtered"]["reasons"][0]["code"], "no-answer");
        assert_eq!(tcp["out-only"]["count"], 0);
        assert_eq!(tcp["out-only"]["ports"], "");
        assert_eq!(tcp["out-only"]["reasons"], Value::Array(vec![]));
        assert_eq!(tcp["no-reply"]["count"], 0);
        let doors = tcp["doors"].as_array().unwrap();
        let ports: Vec<u64> = doors.iter().map(|d| d["port"].as_u64().unwrap()).collect();
        assert_eq!(ports, [22, 80, 443, 8080]);
        assert_eq!(doors[1]["state"], "intercepted");
        assert_eq!(doors[1]["code"], "foreign");
        assert_eq!(doors[1]["what"], "`HTTP/1.1 302 Found`");
        assert!(doors[1].get("port_seen").is_none());
        assert_eq!(doors[3]["code"], "port-rewritten");
        assert_eq!(doors[3]["port_seen"], 8081);
        let udp = &v["udp"];
        assert_eq!(udp["probed"]["ports"], "53,123,443,1194");
        assert_eq!(udp["out-only"]["ports"], "53");
        assert_eq!(udp["no-reply"]["reasons"][0]["code"], "not-arrived");
        assert_eq!(udp["doors"][0]["port_seen"], 53);
        // Every state key in both transports, in order.
        for t in ["tcp", "udp"] {
            let keys: Vec<&String> = v[t].as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 8, "probed, six states, doors: {keys:?}");
            for s in State::ALL {
                let st = &v[t][s.as_str()];
                assert!(
                    st["count"].is_u64() && st["ports"].is_string() && st["reasons"].is_array()
                );
            }
        }
        // The port lists parse back.
        let back = PortSet::parse(tcp["filtered"]["ports"].as_str().unwrap()).unwrap();
        assert_eq!(back.len(), 65512);
    }

    #[test]
    fn reads_back() {
        let j = to_json(&sample::web());
        let text = to_string(&sample::web());
        let back: ProbeJson = serde_json::from_str(&text).unwrap();
        assert_eq!(back, j);
    }

    #[test]
    fn null_address_and_certificate() {
        let mut r = sample::shut();
        r.address = None;
        r.tcp.set(
            8443,
            PortState::Intercepted(Interception::Certificate { seen: [0; 32] }),
        );
        let v: Value = serde_json::from_str(&to_string(&r)).unwrap();
        assert_eq!(v["address"], Value::Null);
        assert_eq!(
            v["tcp"]["doors"][0]["certificate"],
            "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        );
        assert_eq!(v["udp"]["no-reply"]["reasons"][0]["code"], "unknown");
    }

    #[test]
    fn from_json_gives_the_report_back() {
        for r in [sample::web(), sample::shut()] {
            let back = from_json(&to_json(&r)).unwrap();
            assert_eq!(back, r);
        }
        let mut r = sample::shut();
        r.address = None;
        r.tcp.set(
            8443,
            PortState::Intercepted(Interception::Certificate { seen: [9; 32] }),
        );
        r.tcp
            .set(8444, PortState::Intercepted(Interception::Silence));
        let back = from_json(&to_json(&r)).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn from_json_refuses_nonsense() {
        let mut j = to_json(&sample::web());
        j.tcp.open.reasons[0].code = "filtered-ish".into();
        assert!(from_json(&j)
            .unwrap_err()
            .to_string()
            .contains("unknown code"));
        let mut j = to_json(&sample::web());
        j.tcp.open.reasons[0].code = "no-answer".into();
        assert!(from_json(&j).is_err());
        let mut j = to_json(&sample::web());
        j.fingerprint = "MD5:xx".into();
        assert!(from_json(&j).is_err());
    }
}
