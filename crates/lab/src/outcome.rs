//! What the story saw, as data: each step's expectation and observation,
//! each run's verdict. Pure: the JSON output and the HTML report are made
//! from these, and the verdict's wording is tested here.

use std::fmt;

use serde::Serialize;

use crate::map::DoorMap;
use crate::plan::addr::AddressPlan;
use crate::policy::{Door, Expect, Policy};

/// How a refusal came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Refusal {
    /// A TCP reset.
    TcpReset,
    /// An ICMP unreachable message.
    IcmpUnreachable,
    /// The proxy answered `403 Forbidden`.
    ProxyForbidden,
}

/// What one attempt actually met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Observed {
    /// The intended service answered; `answer` says how, in words.
    Reached {
        /// What proved it, e.g. `the library said "WELCOME …"`.
        answer: String,
    },
    /// Something answered, but not the intended service.
    Intercepted {
        /// What answered, in words (e.g. the page title it sent).
        by: String,
    },
    /// Nothing came back within the bound.
    Dropped {
        /// How long we waited, in milliseconds.
        waited_ms: u64,
    },
    /// Actively refused.
    Refused {
        /// How.
        how: Refusal,
    },
    /// The step could not be carried out (a bug or a broken setup).
    Failed {
        /// What went wrong.
        error: String,
    },
    /// Not tried (e.g. OpenSSH is not installed).
    Skipped {
        /// Why.
        reason: String,
    },
}

impl Observed {
    /// Does this observation fulfil `expect`?
    pub fn meets(&self, expect: Expect) -> bool {
        matches!(
            (self, expect),
            (Observed::Reached { .. }, Expect::Open)
                | (Observed::Dropped { .. }, Expect::Dropped)
                | (Observed::Refused { .. }, Expect::Refused)
                | (Observed::Intercepted { .. }, Expect::Intercepted)
        )
    }

    /// True for "blocked": dropped or refused.
    pub fn is_blocked(&self) -> bool {
        matches!(self, Observed::Dropped { .. } | Observed::Refused { .. })
    }

    /// Short words for tables: "reached", "dropped", …
    pub fn label(&self) -> &'static str {
        match self {
            Observed::Reached { .. } => "reached",
            Observed::Intercepted { .. } => "intercepted",
            Observed::Dropped { .. } => "dropped",
            Observed::Refused { .. } => "refused",
            Observed::Failed { .. } => "failed",
            Observed::Skipped { .. } => "not tried",
        }
    }
}

impl fmt::Display for Observed {
    /// Plain words for narration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observed::Reached { answer } => write!(f, "reached: {answer}"),
            Observed::Intercepted { by } => write!(f, "intercepted: {by} answered instead"),
            Observed::Dropped { waited_ms } => write!(
                f,
                "blocked: dropped without a word (no answer in {:.1} s)",
                *waited_ms as f64 / 1000.0
            ),
            Observed::Refused { how } => f.write_str(match how {
                Refusal::TcpReset => "blocked: refused at once (TCP reset)",
                Refusal::IcmpUnreachable => "blocked: refused at once (ICMP port unreachable)",
                Refusal::ProxyForbidden => "refused by the proxy (403 Forbidden)",
            }),
            Observed::Failed { error } => write!(f, "failed: {error}"),
            Observed::Skipped { reason } => write!(f, "not tried ({reason})"),
        }
    }
}

/// Which way a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Path {
    /// Straight through the router.
    Direct,
    /// Through `onedoor serve` on door 443.
    ThroughDoor443,
    /// Through the router's HTTP CONNECT proxy to door 443.
    ThroughProxy,
    /// Through `onedoor connect`'s tunnel to `onedoor serve --tunnel` on
    /// door 443 (TLS, pinned key, one session for every forward).
    ThroughTunnel,
    /// Inside one namespace (e.g. waiting for serve to listen).
    Local,
}

/// One checked step of the story.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Stable identifier, e.g. `library-door-22`.
    pub id: String,
    /// What was tried, in words.
    pub title: String,
    /// The service tried.
    pub service: String,
    /// The door knocked on, if any.
    pub door: Option<Door>,
    /// Which way.
    pub path: Path,
    /// What the policy should do.
    pub expected: Expect,
    /// What happened.
    pub observed: Observed,
    /// Whether the step held. A skipped step holds.
    pub ok: bool,
    /// How long it took, in milliseconds.
    pub ms: u64,
}

/// A step before it is tried: what, which way, and what the policy
/// predicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Stable identifier, e.g. `library-door-22`.
    pub id: String,
    /// What is tried, in words.
    pub title: String,
    /// The service tried.
    pub service: String,
    /// The door knocked on, if any.
    pub door: Option<Door>,
    /// Which way.
    pub path: Path,
    /// What the policy should do.
    pub expected: Expect,
}

impl Attempt {
    /// Record what happened; `ok` follows from the expectation (a skipped
    /// step holds).
    pub fn observed(self, observed: Observed, ms: u64) -> Step {
        let ok = observed.meets(self.expected) || matches!(observed, Observed::Skipped { .. });
        Step {
            id: self.id,
            title: self.title,
            service: self.service,
            door: self.door,
            path: self.path,
            expected: self.expected,
            observed,
            ok,
            ms,
        }
    }
}

/// The tunnel chapter, beyond its steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TunnelChapter {
    /// The `onedoor connect` command line in the house (without the
    /// binary; the access key's token is shown as `TOKEN`).
    pub connect_args: Vec<String>,
    /// The throughput figure, when it was measured.
    pub throughput: Option<Throughput>,
    /// Why the chapter was not told, if it was not.
    pub not_tried: Option<String>,
    /// The transport connect was asked for (`--transport`): `tls` or
    /// `auto`.
    pub transport: String,
    /// The HTTP CONNECT proxy connect went through (`--proxy`), e.g.
    /// `http://198.18.0.1:3128`: under `proxy-only`, the router's.
    pub proxy: Option<String>,
    /// Whether the first chapter's map was fed to `--transport auto`
    /// (`--map`).
    pub map_fed: bool,
    /// How the session reached door 443, in words, once it was up: e.g.
    /// "through the router's HTTP proxy to door 443", or which way auto
    /// took and why.
    pub way: Option<String>,
    /// connect's own `auto: …` log lines (what auto took, what did not
    /// work), in order; empty unless `transport` is `auto`.
    pub auto_said: Vec<String>,
}

/// Bytes pushed from the house through the tunnel to a sink on the
/// internet, acknowledged by the sink.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Throughput {
    /// Bytes the sink counted.
    pub bytes: u64,
    /// Milliseconds from the first byte to the sink's count.
    pub ms: u64,
    /// Megabytes (10^6 bytes) per second.
    pub mb_per_s: f64,
}

/// The verdict of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Did every step go as the policy predicts, and was something blocked
    /// straight yet reached through door 443?
    pub holds: bool,
    /// The verdict in plain words.
    pub text: String,
}

/// One policy's story from build to teardown.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// The policy.
    pub policy: Policy,
    /// One sentence about what the router does.
    pub policy_words: String,
    /// Names and addresses.
    pub plan: AddressPlan,
    /// The router's ruleset in `nft` syntax.
    pub ruleset: String,
    /// The first chapter: the probe's map of the doors (absent when the
    /// run stopped before it).
    pub map: Option<DoorMap>,
    /// The `onedoor serve` command line used (without the binary).
    pub serve_args: Vec<String>,
    /// The checked steps, in order.
    pub steps: Vec<Step>,
    /// The tunnel chapter: `onedoor connect`'s command line and the
    /// throughput through the firewall (absent when not reached).
    pub tunnel: Option<TunnelChapter>,
    /// The verdict (absent when the run was interrupted before it).
    pub verdict: Option<Verdict>,
    /// Milliseconds to build the lab.
    pub build_ms: u64,
    /// Milliseconds to take it down (absent if it was kept up).
    pub teardown_ms: Option<u64>,
    /// Milliseconds from start to finish.
    pub total_ms: u64,
    /// Set when a signal or an error ended the run early.
    pub stopped: Option<String>,
}

fn door_list(steps: &[&Step]) -> String {
    let parts: Vec<String> = steps
        .iter()
        .map(|s| {
            let door = s.door.map(|d| d.to_string()).unwrap_or_default();
            let how = match &s.observed {
                Observed::Refused { .. } => "refused",
                _ => "dropped",
            };
            format!("{door} ({}, {how})", s.service)
        })
        .collect();
    join_words(&parts)
}

fn join_words(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A service as the verdict names it.
fn service_phrase(service: &str) -> String {
    match service {
        "ssh" => "a real ssh login".to_owned(),
        s => format!("the {s}"),
    }
}

/// Judge a run from its steps.
pub fn verdict(policy: Policy, steps: &[Step]) -> Verdict {
    if let Some(bad) = steps.iter().find(|s| !s.ok) {
        return Verdict {
            holds: false,
            text: format!(
                "The story did not hold under policy {policy}: {} was expected to be {} but was {}.",
                bad.title,
                bad.expected.words(),
                bad.observed
            ),
        };
    }
    let blocked: Vec<&Step> = steps
        .iter()
        .filter(|s| s.path == Path::Direct && s.observed.is_blocked())
        .collect();
    let through: Vec<&Step> = steps
        .iter()
        .filter(|s| {
            matches!(s.path, Path::ThroughDoor443 | Path::ThroughProxy)
                && matches!(s.observed, Observed::Reached { .. })
        })
        .collect();
    let mut tunnelled: Vec<String> = Vec::new();
    for s in steps.iter().filter(|s| {
        s.path == Path::ThroughTunnel
            && matches!(s.observed, Observed::Reached { .. })
            && matches!(s.service.as_str(), "library" | "crosswords")
    }) {
        let phrase = match s.service.as_str() {
            "crosswords" => "the crosswords on UDP 1194".to_owned(),
            other => service_phrase(other),
        };
        if !tunnelled.contains(&phrase) {
            tunnelled.push(phrase);
        }
    }
    let tunnel_words = match (tunnelled.is_empty(), policy.uses_proxy()) {
        (true, _) => String::new(),
        (false, false) => format!(
            " Through the tunnel on the same door 443, onedoor connect carried {} too.",
            join_words(&tunnelled)
        ),
        (false, true) => format!(
            " Through the same proxy and door 443, onedoor connect's tunnel carried {} too.",
            join_words(&tunnelled)
        ),
    };
    if blocked.is_empty() || through.is_empty() {
        return Verdict {
            holds: false,
            text: format!(
                "The story did not hold under policy {policy}: it needs a door blocked \
                 and a service reached through door 443."
            ),
        };
    }
    let mut services: Vec<String> = Vec::new();
    for s in &through {
        if !services.contains(&s.service) {
            services.push(s.service.clone());
        }
    }
    let via = if through.iter().any(|s| s.path == Path::ThroughProxy) {
        "door 443, through the router's own proxy"
    } else {
        "door 443"
    };
    Verdict {
        holds: true,
        text: format!(
            "The router blocked {}, yet {} {} reached through {via}.{tunnel_words} \
             Blocking doors costs convenience, not security: one open door is enough.",
            door_list(&blocked),
            join_words(
                &services
                    .iter()
                    .map(|s| service_phrase(s))
                    .collect::<Vec<_>>()
            ),
            if services.len() == 1 { "was" } else { "were" },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(service: &str, door: Door, path: Path, expected: Expect, observed: Observed) -> Step {
        Attempt {
            id: "x".into(),
            title: format!("the {service}"),
            service: service.into(),
            door: Some(door),
            path,
            expected,
        }
        .observed(observed, 1)
    }

    #[test]
    fn observations_meet_expectations() {
        assert!(Observed::Dropped { waited_ms: 1 }.meets(Expect::Dropped));
        assert!(!Observed::Dropped { waited_ms: 1 }.meets(Expect::Refused));
        assert!(Observed::Refused {
            how: Refusal::TcpReset
        }
        .meets(Expect::Refused));
        assert!(Observed::Reached {
            answer: "hi".into()
        }
        .meets(Expect::Open));
        assert!(Observed::Intercepted { by: "x".into() }.meets(Expect::Intercepted));
        assert!(!Observed::Failed { error: "x".into() }.meets(Expect::Open));
    }

    #[test]
    fn the_verdict_names_what_was_blocked_and_what_came_through() {
        let steps = [
            step(
                "library",
                Door::Tcp(22),
                Path::Direct,
                Expect::Dropped,
                Observed::Dropped { waited_ms: 1500 },
            ),
            step(
                "crosswords",
                Door::Udp(1194),
                Path::Direct,
                Expect::Refused,
                Observed::Refused {
                    how: Refusal::IcmpUnreachable,
                },
            ),
            step(
                "library",
                Door::Tcp(443),
                Path::ThroughDoor443,
                Expect::Open,
                Observed::Reached {
                    answer: "WELCOME".into(),
                },
            ),
            step(
                "website",
                Door::Tcp(443),
                Path::ThroughDoor443,
                Expect::Open,
                Observed::Reached {
                    answer: "page".into(),
                },
            ),
        ];
        let v = verdict(Policy::Web, &steps);
        assert!(v.holds);
        assert_eq!(
            v.text,
            "The router blocked door 22 (library, dropped) and UDP door 1194 (crosswords, refused), \
             yet the library and the website were reached through door 443. \
             Blocking doors costs convenience, not security: one open door is enough."
        );
    }

    #[test]
    fn a_failed_step_breaks_the_verdict() {
        let steps = [step(
            "library",
            Door::Tcp(22),
            Path::Direct,
            Expect::Dropped,
            Observed::Reached {
                answer: "WELCOME".into(),
            },
        )];
        let v = verdict(Policy::Web, &steps);
        assert!(!v.holds);
        assert!(
            v.text
                .contains("expected to be blocked (dropped) but was reached"),
            "{}",
            v.text
        );
    }

    #[test]
    fn nothing_through_443_is_no_story() {
        let steps = [step(
            "library",
            Door::Tcp(22),
            Path::Direct,
            Expect::Dropped,
            Observed::Dropped { waited_ms: 1 },
        )];
        assert!(!verdict(Policy::Web, &steps).holds);
    }

    #[test]
    fn the_proxy_path_is_named() {
        let steps = [
            step(
                "library",
                Door::Tcp(22),
                Path::Direct,
                Expect::Dropped,
                Observed::Dropped { waited_ms: 1 },
            ),
            step(
                "library",
                Door::Tcp(443),
                Path::ThroughProxy,
                Expect::Open,
                Observed::Reached { answer: "W".into() },
            ),
            step(
                "crosswords",
                Door::Tcp(443),
                Path::ThroughTunnel,
                Expect::Open,
                Observed::Reached { answer: "C".into() },
            ),
        ];
        let v = verdict(Policy::ProxyOnly, &steps);
        assert!(v.holds);
        assert!(
            v.text.contains(
                "the library was reached through door 443, through the router's own proxy. \
                 Through the same proxy and door 443, onedoor connect's tunnel carried \
                 the crosswords on UDP 1194 too."
            ),
            "{}",
            v.text
        );
    }

    #[test]
    fn skipped_steps_hold() {
        let s = step(
            "ssh",
            Door::Tcp(443),
            Path::ThroughDoor443,
            Expect::Open,
            Observed::Skipped {
                reason: "no ssh".into(),
            },
        );
        assert!(s.ok);
    }
}
