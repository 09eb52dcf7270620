//! The router's nftables ruleset for each policy, as pure data.
//!
//! [`Ruleset::for_policy`] turns a [`Policy`] and an [`AddressPlan`] into
//! chains of rules, each a list of matches and one action. The Linux side
//! (`sys::nft`) compiles this into nf_tables netlink messages; `Display`
//! renders it in `nft list ruleset` syntax for people (the report, `--keep`)
//! and for tests.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use serde::Serialize;

use crate::plan::addr::{AddressPlan, ROUTER_LAN_IF, ROUTER_WAN_IF};
use crate::policy::Policy;

/// The name of the lab's one table (family `ip`) in the router namespace.
pub const TABLE: &str = "onedoor-lab";

/// A whole ruleset: one `ip` table with its chains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ruleset {
    /// Table name ([`TABLE`]).
    pub table: String,
    /// Base chains, in creation order.
    pub chains: Vec<Chain>,
}

/// A base chain attached to a netfilter hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chain {
    /// Chain name.
    pub name: &'static str,
    /// `filter` or `nat`.
    pub kind: ChainKind,
    /// The hook it is attached to.
    pub hook: Hook,
    /// Hook priority (`filter` is 0, `dstnat` is -100).
    pub priority: i32,
    /// What happens to a packet no rule decided about.
    pub policy: ChainPolicy,
    /// The rules, in order.
    pub rules: Vec<Rule>,
}

/// The type of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainKind {
    /// Filtering (accept, drop, reject).
    Filter,
    /// Address translation.
    Nat,
}

/// Netfilter hooks the lab uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    /// Before routing (destination NAT).
    Prerouting,
    /// Packets routed through the router.
    Forward,
}

/// A base chain's default verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainPolicy {
    /// Let it through.
    Accept,
    /// Silently discard.
    Drop,
}

/// One rule: every match must hold, then the action is taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Conditions, all of which must hold.
    pub matches: Vec<Match>,
    /// What to do then.
    pub action: Action,
    /// Why the rule is there, in plain words (stored as the rule's comment).
    pub comment: String,
}

/// A condition on a packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Match {
    /// The connection is established or related to one (replies, ICMP
    /// errors): `ct state established,related`.
    EstablishedOrRelated,
    /// Arrived on this interface: `iifname NAME`.
    InIface(String),
    /// Leaves by this interface: `oifname NAME`.
    OutIface(String),
    /// Transport protocol: `meta l4proto tcp|udp`.
    Proto(L4),
    /// Destination port (needs a [`Match::Proto`] before it): `tcp dport N`.
    DstPort(u16),
}

/// Transport protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum L4 {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
}

impl L4 {
    /// IANA protocol number.
    pub fn number(self) -> u8 {
        match self {
            L4::Tcp => 6,
            L4::Udp => 17,
        }
    }

    fn name(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
        }
    }
}

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Let the packet through.
    Accept,
    /// Silently discard it.
    Drop,
    /// Answer a TCP segment with a reset.
    RejectTcpReset,
    /// Answer with ICMP port unreachable.
    RejectIcmpPortUnreachable,
    /// Rewrite the destination to this address and port.
    Dnat(SocketAddrV4),
}

impl Ruleset {
    /// The ruleset that implements `policy` on the router of `plan`.
    ///
    /// Every policy has a `forward` chain that drops by default and only
    /// accepts what the house may send out of `lan` into `wan` (plus the
    /// replies). `web-reject` refuses the rest instead of dropping it;
    /// `intercept` adds a `prerouting` NAT chain sending door 80 to the
    /// router's captive portal. `proxy-only` forwards nothing: the house
    /// can only reach the router's proxy, which is not forwarding but the
    /// router's own traffic.
    pub fn for_policy(policy: Policy, plan: &AddressPlan) -> Ruleset {
        let out = |port: u16, why: &str| Rule {
            matches: vec![
                Match::InIface(ROUTER_LAN_IF.into()),
                Match::OutIface(ROUTER_WAN_IF.into()),
                Match::Proto(L4::Tcp),
                Match::DstPort(port),
            ],
            action: Action::Accept,
            comment: why.into(),
        };
        let replies = Rule {
            matches: vec![Match::EstablishedOrRelated],
            action: Action::Accept,
            comment: "replies to what the house started".into(),
        };
        let mut forward = Vec::new();
        match policy {
            Policy::Web | Policy::WebReject => {
                forward.push(replies);
                forward.push(out(80, "door 80: the web"));
                forward.push(out(443, "door 443: the secure web"));
            }
            Policy::HttpsOnly | Policy::Intercept => {
                forward.push(replies);
                forward.push(out(443, "door 443: the secure web"));
            }
            Policy::ProxyOnly => {}
        }
        if policy == Policy::WebReject {
            forward.push(Rule {
                matches: vec![Match::InIface(ROUTER_LAN_IF.into()), Match::Proto(L4::Tcp)],
                action: Action::RejectTcpReset,
                comment: "every other TCP door: refused with a reset".into(),
            });
            forward.push(Rule {
                matches: vec![Match::InIface(ROUTER_LAN_IF.into())],
                action: Action::RejectIcmpPortUnreachable,
                comment: "every other door: refused with ICMP port unreachable".into(),
            });
        }
        let mut chains = vec![Chain {
            name: "forward",
            kind: ChainKind::Filter,
            hook: Hook::Forward,
            priority: 0,
            policy: ChainPolicy::Drop,
            rules: forward,
        }];
        if policy.has_portal() {
            chains.push(Chain {
                name: "prerouting",
                kind: ChainKind::Nat,
                hook: Hook::Prerouting,
                priority: -100,
                policy: ChainPolicy::Accept,
                rules: vec![Rule {
                    matches: vec![
                        Match::InIface(ROUTER_LAN_IF.into()),
                        Match::Proto(L4::Tcp),
                        Match::DstPort(80),
                    ],
                    action: Action::Dnat(plan.portal()),
                    comment: "door 80: the router's captive portal answers".into(),
                }],
            });
        }
        Ruleset {
            table: TABLE.into(),
            chains,
        }
    }

    /// Number of rules over all chains.
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }
}

impl fmt::Display for Ruleset {
    /// `nft list ruleset` syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "table ip {} {{", self.table)?;
        for (i, chain) in self.chains.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "\tchain {} {{", chain.name)?;
            let kind = match chain.kind {
                ChainKind::Filter => "filter",
                ChainKind::Nat => "nat",
            };
            let hook = match chain.hook {
                Hook::Prerouting => "prerouting",
                Hook::Forward => "forward",
            };
            let prio = match chain.priority {
                0 => "filter".to_owned(),
                -100 => "dstnat".to_owned(),
                p => p.to_string(),
            };
            let policy = match chain.policy {
                ChainPolicy::Accept => "accept",
                ChainPolicy::Drop => "drop",
            };
            writeln!(
                f,
                "\t\ttype {kind} hook {hook} priority {prio}; policy {policy};"
            )?;
            for rule in &chain.rules {
                writeln!(f, "\t\t{rule}")?;
            }
            writeln!(f, "\t}}")?;
        }
        writeln!(f, "}}")
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words: Vec<String> = Vec::new();
        let mut proto = None;
        for m in &self.matches {
            match m {
                Match::EstablishedOrRelated => words.push("ct state established,related".into()),
                Match::InIface(n) => words.push(format!("iifname \"{n}\"")),
                Match::OutIface(n) => words.push(format!("oifname \"{n}\"")),
                Match::Proto(p) => proto = Some(*p),
                Match::DstPort(port) => {
                    let p = proto.take().unwrap_or(L4::Tcp);
                    words.push(format!("{} dport {port}", p.name()));
                }
            }
        }
        // A protocol match with no port after it, as nft prints it (a reset
        // implies tcp, so nft leaves the protocol out there).
        if let Some(p) = proto {
            if self.action != Action::RejectTcpReset {
                words.push(format!("meta l4proto {}", p.name()));
            }
        }
        words.push(match self.action {
            Action::Accept => "accept".into(),
            Action::Drop => "drop".into(),
            Action::RejectTcpReset => "reject with tcp reset".into(),
            Action::RejectIcmpPortUnreachable => "reject".into(),
            Action::Dnat(to) => format!("dnat to {to}"),
        });
        if !self.comment.is_empty() {
            words.push(format!("comment \"{}\"", self.comment));
        }
        f.write_str(&words.join(" "))
    }
}

/// The destination of the portal redirect, if the ruleset has one.
pub fn portal_target(ruleset: &Ruleset) -> Option<SocketAddrV4> {
    ruleset
        .chains
        .iter()
        .flat_map(|c| &c.rules)
        .find_map(|r| match r.action {
            Action::Dnat(to) => Some(to),
            _ => None,
        })
}

/// True when every DNAT target is one of `router`'s own addresses: a
/// redirect must never send the house anywhere but the router itself.
pub fn dnat_targets_are_local(ruleset: &Ruleset, router: &[Ipv4Addr]) -> bool {
    ruleset
        .chains
        .iter()
        .flat_map(|c| &c.rules)
        .all(|r| match r.action {
            Action::Dnat(to) => router.contains(to.ip()),
            _ => true,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::addr::Instance;

    fn text(policy: Policy) -> String {
        Ruleset::for_policy(policy, &AddressPlan::new(Instance(0))).to_string()
    }

    #[test]
    fn web_opens_80_and_443_and_drops_the_rest() {
        assert_eq!(
            text(Policy::Web),
            "table ip onedoor-lab {\n\
             \tchain forward {\n\
             \t\ttype filter hook forward priority filter; policy drop;\n\
             \t\tct state established,related accept comment \"replies to what the house started\"\n\
             \t\tiifname \"lan\" oifname \"wan\" tcp dport 80 accept comment \"door 80: the web\"\n\
             \t\tiifname \"lan\" oifname \"wan\" tcp dport 443 accept comment \"door 443: the secure web\"\n\
             \t}\n\
             }\n"
        );
    }

    #[test]
    fn https_only_opens_443_only() {
        let t = text(Policy::HttpsOnly);
        assert!(t.contains("tcp dport 443 accept"));
        assert!(!t.contains("dport 80"));
        assert!(t.contains("policy drop;"));
    }

    #[test]
    fn web_reject_refuses_instead_of_dropping() {
        let t = text(Policy::WebReject);
        let lines: Vec<&str> = t.lines().map(str::trim).collect();
        let reset = lines
            .iter()
            .position(|l| l.starts_with("iifname \"lan\" reject with tcp reset"))
            .expect("a tcp reset rule");
        let icmp = lines
            .iter()
            .position(|l| l.starts_with("iifname \"lan\" reject comment"))
            .expect("an icmp reject rule");
        let open443 = lines
            .iter()
            .position(|l| l.contains("dport 443 accept"))
            .unwrap();
        assert!(open443 < reset && reset < icmp, "{t}");
    }

    #[test]
    fn intercept_redirects_door_80_to_the_portal() {
        let plan = AddressPlan::new(Instance(4));
        let rs = Ruleset::for_policy(Policy::Intercept, &plan);
        let t = rs.to_string();
        assert!(t.contains("type nat hook prerouting priority dstnat; policy accept;"));
        assert!(t.contains("iifname \"lan\" tcp dport 80 dnat to 198.18.4.1:8080"));
        assert!(
            !t.contains("dport 80 accept"),
            "door 80 is never forwarded: {t}"
        );
        assert_eq!(portal_target(&rs), Some(plan.portal()));
        assert!(dnat_targets_are_local(
            &rs,
            &[plan.router_lan, plan.router_wan]
        ));
    }

    #[test]
    fn proxy_only_forwards_nothing() {
        let rs = Ruleset::for_policy(Policy::ProxyOnly, &AddressPlan::new(Instance(0)));
        assert_eq!(rs.chains.len(), 1);
        assert_eq!(rs.chains[0].policy, ChainPolicy::Drop);
        assert_eq!(rs.rule_count(), 0);
    }

    #[test]
    fn every_policy_drops_by_default_and_only_opens_web_doors() {
        for p in Policy::ALL {
            let rs = Ruleset::for_policy(p, &AddressPlan::new(Instance(0)));
            let fwd = rs.chains.iter().find(|c| c.hook == Hook::Forward).unwrap();
            assert_eq!(fwd.policy, ChainPolicy::Drop, "{p}");
            for r in &fwd.rules {
                if r.action == Action::Accept && r.matches != [Match::EstablishedOrRelated] {
                    let port = r.matches.iter().find_map(|m| match m {
                        Match::DstPort(p) => Some(*p),
                        _ => None,
                    });
                    assert!(matches!(port, Some(80 | 443)), "{p}: {r}");
                    assert!(
                        r.matches.contains(&Match::InIface("lan".into())),
                        "{p}: {r}"
                    );
                }
            }
        }
    }
}
