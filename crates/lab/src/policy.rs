//! The router's egress policies and what each one should do to every door
//! the story knocks on.
//!
//! Pure data: the firewall ([`crate::Ruleset::for_policy`]) is derived from a
//! [`Policy`], and the story checks what it observes against
//! [`Policy::expect`].

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// An egress policy of the lab's router (SPEC §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Doors 80 and 443 open, every other door silently dropped.
    Web,
    /// Only door 443 open, the rest silently dropped.
    HttpsOnly,
    /// Doors 80 and 443 open, the rest refused (TCP RST, ICMP unreachable).
    WebReject,
    /// Door 443 open; door 80 answered by a captive portal on the router; the
    /// rest dropped.
    Intercept,
    /// No door at all: only an HTTP CONNECT proxy on the router, which allows
    /// door 443.
    ProxyOnly,
}

/// A door: a transport protocol and a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "proto", content = "port", rename_all = "lowercase")]
pub enum Door {
    /// A TCP port.
    Tcp(u16),
    /// A UDP port.
    Udp(u16),
}

impl fmt::Display for Door {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Door::Tcp(p) => write!(f, "door {p}"),
            Door::Udp(p) => write!(f, "UDP door {p}"),
        }
    }
}

/// What a policy should do to a connection from the house through a door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    /// Let through: the service on the internet answers.
    Open,
    /// Silently dropped: no answer at all.
    Dropped,
    /// Refused: a TCP RST (TCP) or an ICMP port unreachable (UDP).
    Refused,
    /// Answered, but by the router's captive portal instead of the service.
    Intercepted,
}

impl Expect {
    /// Plain words for narration.
    pub fn words(self) -> &'static str {
        match self {
            Expect::Open => "open",
            Expect::Dropped => "blocked (dropped)",
            Expect::Refused => "blocked (refused)",
            Expect::Intercepted => "intercepted",
        }
    }
}

impl Policy {
    /// Every policy, in the order `--policy all` runs them.
    pub const ALL: [Policy; 5] = [
        Policy::Web,
        Policy::HttpsOnly,
        Policy::WebReject,
        Policy::Intercept,
        Policy::ProxyOnly,
    ];

    /// The name users type after `--policy`.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Web => "web",
            Policy::HttpsOnly => "https-only",
            Policy::WebReject => "web-reject",
            Policy::Intercept => "intercept",
            Policy::ProxyOnly => "proxy-only",
        }
    }

    /// One sentence saying what the router does, for narration and reports.
    pub fn describe(self) -> &'static str {
        match self {
            Policy::Web => {
                "the router lets doors 80 and 443 out and silently drops everything else"
            }
            Policy::HttpsOnly => {
                "the router lets only door 443 out and silently drops everything else"
            }
            Policy::WebReject => {
                "the router lets doors 80 and 443 out and refuses everything else \
                 (TCP reset, ICMP port unreachable)"
            }
            Policy::Intercept => {
                "the router lets door 443 out, answers door 80 itself with a captive portal, \
                 and silently drops everything else"
            }
            Policy::ProxyOnly => {
                "the router lets no door out at all; its HTTP proxy connects to door 443 \
                 on the house's behalf and to nothing else"
            }
        }
    }

    /// What this policy does to a connection from the house through `door`,
    /// straight (not through the proxy).
    pub fn expect(self, door: Door) -> Expect {
        let blocked = if self == Policy::WebReject {
            Expect::Refused
        } else {
            Expect::Dropped
        };
        match (self, door) {
            (Policy::ProxyOnly, _) => Expect::Dropped,
            (Policy::Intercept, Door::Tcp(80)) => Expect::Intercepted,
            (Policy::HttpsOnly | Policy::Intercept, Door::Tcp(443)) => Expect::Open,
            (Policy::Web | Policy::WebReject, Door::Tcp(80 | 443)) => Expect::Open,
            _ => blocked,
        }
    }

    /// True when the house reaches the internet only through the router's
    /// HTTP CONNECT proxy.
    pub fn uses_proxy(self) -> bool {
        self == Policy::ProxyOnly
    }

    /// True when the router runs a captive portal answering door 80.
    pub fn has_portal(self) -> bool {
        self == Policy::Intercept
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--policy` value that names no policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown policy `{0}` (expected web, https-only, web-reject, intercept or proxy-only)")]
pub struct UnknownPolicy(pub String);

impl FromStr for Policy {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownPolicy(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Policy::ALL {
            assert_eq!(p.name().parse::<Policy>().unwrap(), p);
        }
        assert!("open".parse::<Policy>().is_err());
    }

    #[test]
    fn door_22_is_blocked_under_every_policy() {
        for p in Policy::ALL {
            assert_ne!(p.expect(Door::Tcp(22)), Expect::Open, "{p}");
            assert_ne!(p.expect(Door::Udp(1194)), Expect::Open, "{p}");
        }
    }

    #[test]
    fn door_443_is_open_except_behind_the_proxy() {
        for p in Policy::ALL {
            let open = p.expect(Door::Tcp(443)) == Expect::Open;
            assert_eq!(open, !p.uses_proxy(), "{p}");
        }
    }

    #[test]
    fn expectations_per_policy() {
        use Expect::*;
        let table = [
            (Policy::Web, [Dropped, Open, Open, Dropped]),
            (Policy::HttpsOnly, [Dropped, Dropped, Open, Dropped]),
            (Policy::WebReject, [Refused, Open, Open, Refused]),
            (Policy::Intercept, [Dropped, Intercepted, Open, Dropped]),
            (Policy::ProxyOnly, [Dropped, Dropped, Dropped, Dropped]),
        ];
        for (p, want) in table {
            let got = [
                p.expect(Door::Tcp(22)),
                p.expect(Door::Tcp(80)),
                p.expect(Door::Tcp(443)),
                p.expect(Door::Udp(1194)),
            ];
            assert_eq!(got, want, "{p}");
        }
    }
}
