//! The address plan: namespace names, interface names, addresses and ports
//! of one lab instance, as pure data.
//!
//! Instance `N` (0–255) owns two /24 blocks of the benchmarking range
//! 198.18.0.0/15: `198.18.N.0/24` for the house's side of the router and
//! `198.19.N.0/24` for the internet's side. Instance 0 uses the plain names
//! `onedoor-house`, `onedoor-router`, `onedoor-internet`; instance `N > 0`
//! appends `-N`. Several instances can therefore run at once (tests do).
//!
//! ```text
//!   house                 router                      internet
//!   eth0 198.18.N.2 ── lan 198.18.N.1 | wan 198.19.N.1 ── eth0 198.19.N.2
//!   default via .1                    forwarding          198.18.N.0/24 via 198.19.N.1
//! ```

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::str::FromStr;

use serde::Serialize;

/// The common prefix of everything a lab creates: namespace names start
/// with `onedoor-`, and `--clean` only ever touches names built here.
pub const NAME_PREFIX: &str = "onedoor-";

/// One lab instance: its number picks its names and its address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Instance(pub u8);

impl Instance {
    /// Every instance, lowest first.
    pub fn all() -> impl Iterator<Item = Instance> {
        (0..=u8::MAX).map(Instance)
    }

    /// `""` for instance 0, `"-N"` otherwise.
    pub fn suffix(self) -> String {
        match self.0 {
            0 => String::new(),
            n => format!("-{n}"),
        }
    }

    /// The namespace name of `role` in this instance, e.g. `onedoor-house-3`.
    pub fn netns_name(self, role: Role) -> String {
        format!("{NAME_PREFIX}{}{}", role.name(), self.suffix())
    }

    /// Which instance and role a namespace name belongs to, if it is one of
    /// ours (the inverse of [`Instance::netns_name`]).
    pub fn parse_netns_name(name: &str) -> Option<(Instance, Role)> {
        let rest = name.strip_prefix(NAME_PREFIX)?;
        for role in Role::ALL {
            let Some(tail) = rest.strip_prefix(role.name()) else {
                continue;
            };
            if tail.is_empty() {
                return Some((Instance(0), role));
            }
            let digits = tail.strip_prefix('-')?;
            // Only the canonical spelling: no sign, no leading zero.
            if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u8 = digits.parse().ok()?;
            return (n != 0).then_some((Instance(n), role));
        }
        None
    }
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Instance {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<u8>()
            .map(Instance)
            .map_err(|_| format!("`{s}` is not an instance number (0-255)"))
    }
}

/// The three places of the story.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The client's side: a house whose only way out is the router.
    House,
    /// The firewall between the house and the internet.
    Router,
    /// The server's side, with its services and `onedoor serve`.
    Internet,
}

impl Role {
    /// All roles, in build order.
    pub const ALL: [Role; 3] = [Role::House, Role::Router, Role::Internet];

    /// `house`, `router` or `internet`.
    pub fn name(self) -> &'static str {
        match self {
            Role::House => "house",
            Role::Router => "router",
            Role::Internet => "internet",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The house's interface (in the house namespace).
pub const HOUSE_IF: &str = "eth0";
/// The router's interface towards the house.
pub const ROUTER_LAN_IF: &str = "lan";
/// The router's interface towards the internet.
pub const ROUTER_WAN_IF: &str = "wan";
/// The internet server's interface (in the internet namespace).
pub const INTERNET_IF: &str = "eth0";
/// Prefix length of both links.
pub const PREFIX_LEN: u8 = 24;

/// The well-known ports of the story.
pub mod ports {
    /// The library (and, with `--real-ssh`, sshd).
    pub const LIBRARY: u16 = 22;
    /// The library's own port when `--real-ssh` puts sshd on door 22
    /// (on the internet's loopback only).
    pub const LIBRARY_BEHIND_SSHD: u16 = 2222;
    /// The website.
    pub const WEBSITE: u16 = 80;
    /// `onedoor serve`.
    pub const SERVE: u16 = 443;
    /// The crosswords (UDP echo).
    pub const CROSSWORDS: u16 = 1194;
    /// The captive portal on the router (door 80 is redirected here under
    /// `intercept`).
    pub const PORTAL: u16 = 8080;
    /// The HTTP CONNECT proxy on the router (`proxy-only`).
    pub const PROXY: u16 = 3128;
    /// The sink for the throughput figure: on the internet's loopback
    /// only, reached through the tunnel (the old "discard" door).
    pub const SINK: u16 = 9;
    /// The house's local end of the tunnel's forward to the library.
    pub const TUNNEL_LIBRARY: u16 = 2222;
    /// The house's local end of the tunnel's forward to the sink.
    pub const TUNNEL_SINK: u16 = 9009;
}

/// Everything about one instance's names and addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressPlan {
    /// The instance this plan belongs to.
    pub instance: Instance,
    /// Namespace name of the house.
    pub house_ns: String,
    /// Namespace name of the router.
    pub router_ns: String,
    /// Namespace name of the internet.
    pub internet_ns: String,
    /// The house's address (on `eth0`).
    pub house: Ipv4Addr,
    /// The router's address towards the house (on `lan`): the house's
    /// gateway, where the portal and the proxy listen.
    pub router_lan: Ipv4Addr,
    /// The router's address towards the internet (on `wan`).
    pub router_wan: Ipv4Addr,
    /// The internet server's address (on `eth0`).
    pub internet: Ipv4Addr,
}

impl AddressPlan {
    /// The plan of `instance`.
    pub fn new(instance: Instance) -> Self {
        let n = instance.0;
        AddressPlan {
            instance,
            house_ns: instance.netns_name(Role::House),
            router_ns: instance.netns_name(Role::Router),
            internet_ns: instance.netns_name(Role::Internet),
            house: Ipv4Addr::new(198, 18, n, 2),
            router_lan: Ipv4Addr::new(198, 18, n, 1),
            router_wan: Ipv4Addr::new(198, 19, n, 1),
            internet: Ipv4Addr::new(198, 19, n, 2),
        }
    }

    /// The namespace name of `role`.
    pub fn netns(&self, role: Role) -> &str {
        match role {
            Role::House => &self.house_ns,
            Role::Router => &self.router_ns,
            Role::Internet => &self.internet_ns,
        }
    }

    /// The house-side network, `198.18.N.0`.
    pub fn lan_net(&self) -> Ipv4Addr {
        let [a, b, c, _] = self.house.octets();
        Ipv4Addr::new(a, b, c, 0)
    }

    /// The internet-side network, `198.19.N.0`.
    pub fn wan_net(&self) -> Ipv4Addr {
        let [a, b, c, _] = self.internet.octets();
        Ipv4Addr::new(a, b, c, 0)
    }

    /// A door of the internet server.
    pub fn internet_door(&self, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(self.internet, port)
    }

    /// Where the captive portal listens (router, house side).
    pub fn portal(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.router_lan, ports::PORTAL)
    }

    /// Where the HTTP CONNECT proxy listens (router, house side).
    pub fn proxy(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.router_lan, ports::PROXY)
    }

    /// True when `addr` lies inside this instance's two blocks: the only
    /// addresses the lab ever sends traffic to (besides loopback).
    pub fn owns(&self, addr: Ipv4Addr) -> bool {
        let o = addr.octets();
        o[2] == self.instance.0 && o[0] == 198 && (o[1] == 18 || o[1] == 19)
    }
}

/// True when `addr` is in 198.18.0.0/15, the benchmarking range (RFC 2544)
/// the lab lives in.
pub fn in_lab_range(addr: Ipv4Addr) -> bool {
    let o = addr.octets();
    o[0] == 198 && (o[1] & 0xfe) == 18
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_zero_uses_plain_names() {
        let plan = AddressPlan::new(Instance(0));
        assert_eq!(plan.house_ns, "onedoor-house");
        assert_eq!(plan.router_ns, "onedoor-router");
        assert_eq!(plan.internet_ns, "onedoor-internet");
        assert_eq!(plan.house, Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(plan.router_lan, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(plan.router_wan, Ipv4Addr::new(198, 19, 0, 1));
        assert_eq!(plan.internet, Ipv4Addr::new(198, 19, 0, 2));
    }

    #[test]
    fn other_instances_get_a_suffix_and_their_own_block() {
        let plan = AddressPlan::new(Instance(7));
        assert_eq!(plan.house_ns, "onedoor-house-7");
        assert_eq!(plan.internet_ns, "onedoor-internet-7");
        assert_eq!(plan.house, Ipv4Addr::new(198, 18, 7, 2));
        assert_eq!(plan.internet, Ipv4Addr::new(198, 19, 7, 2));
        assert_eq!(plan.lan_net(), Ipv4Addr::new(198, 18, 7, 0));
        assert_eq!(plan.wan_net(), Ipv4Addr::new(198, 19, 7, 0));
    }

    #[test]
    fn instances_never_share_an_address_or_a_name() {
        let mut seen = std::collections::HashSet::new();
        for i in Instance::all() {
            let p = AddressPlan::new(i);
            for a in [p.house, p.router_lan, p.router_wan, p.internet] {
                assert!(in_lab_range(a), "{a}");
                assert!(p.owns(a));
                assert!(seen.insert(a.to_string()), "{a} reused");
            }
            for r in Role::ALL {
                assert!(seen.insert(p.netns(r).to_owned()));
            }
        }
        assert!(!AddressPlan::new(Instance(1)).owns(Ipv4Addr::new(198, 18, 2, 2)));
    }

    #[test]
    fn lab_range_is_198_18_slash_15() {
        assert!(in_lab_range(Ipv4Addr::new(198, 18, 0, 0)));
        assert!(in_lab_range(Ipv4Addr::new(198, 19, 255, 255)));
        assert!(!in_lab_range(Ipv4Addr::new(198, 20, 0, 1)));
        assert!(!in_lab_range(Ipv4Addr::new(198, 17, 255, 255)));
        assert!(!in_lab_range(Ipv4Addr::new(10, 18, 0, 1)));
    }

    #[test]
    fn netns_names_parse_back() {
        for i in [Instance(0), Instance(1), Instance(255)] {
            for r in Role::ALL {
                assert_eq!(Instance::parse_netns_name(&i.netns_name(r)), Some((i, r)));
            }
        }
        for other in [
            "onedoor-house-0",
            "onedoor-house-007",
            "onedoor-house-256",
            "onedoor-house-x",
            "onedoor-garden",
            "onedoor-houses",
            "house",
            "onedoor-house--1",
        ] {
            assert_eq!(Instance::parse_netns_name(other), None, "{other}");
        }
    }
}
