//! The redirect as pure data: what was asked ([`RedirectSpec`]), what the
//! host already uses ([`InUse`]), and what follows ([`RedirectPlan`]) —
//! down to the nf_tables table that implements it.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::nft::{
    self, BaseChain, ChainType, CmpOp, CtKey, Expr, Family, Hook, MetaKey, Set, Table, Verdict,
    LOOPBACK_IFINDEX, REG_1, RTN_LOCAL,
};

use super::ports::PortRanges;

/// Every table the reflector makes starts with this; what follows names
/// its owner ([`Owner`]).
pub const TABLE_PREFIX: &str = "onedoor-reflect-";
/// The set of redirected TCP ports.
pub const TCP_SET: &str = "tcp_ports";
/// The set of redirected UDP ports.
pub const UDP_SET: &str = "udp_ports";
const TCP_SET_ID: u32 = 1;
const UDP_SET_ID: u32 = 2;
/// The NAT chain (TCP in [`TcpMode::Redirect`]).
pub const NAT_CHAIN: &str = "nat";
/// The socket-assignment chain (UDP, and TCP in [`TcpMode::Tproxy`]).
pub const TPROXY_CHAIN: &str = "divert";
/// `dstnat`: where NAT of incoming connections happens.
const PRIORITY_DSTNAT: i32 = -100;
/// `mangle`: before NAT and filtering, as `tproxy` rules usually are.
const PRIORITY_MANGLE: i32 = -150;

/// How TCP connections reach the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpMode {
    /// `redirect to :PORT` (NAT): the listener needs nothing special; the
    /// dialled port comes from conntrack (`SO_ORIGINAL_DST`).
    #[default]
    Redirect,
    /// `tproxy to :PORT`: packets stay as sent, no NAT state; the listener
    /// must be transparent (`IP_TRANSPARENT`, see
    /// `reflect::prepare_transparent`), and the accepted socket's own
    /// local address is the dialled one.
    Tproxy,
}

/// What to redirect where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectSpec {
    /// TCP ports to send to [`RedirectSpec::tcp_listener`].
    pub tcp: PortRanges,
    /// UDP ports to send to [`RedirectSpec::udp_listener`] (always with
    /// `tproxy`: see the module documentation of `reflect`).
    pub udp: PortRanges,
    /// The local TCP port the listener is bound to.
    pub tcp_listener: u16,
    /// The local UDP port the listener is bound to.
    pub udp_listener: u16,
    /// How TCP reaches the listener.
    pub tcp_mode: TcpMode,
}

impl RedirectSpec {
    /// Nothing yet, to one listener port for TCP and UDP alike.
    pub fn new(listener: u16) -> RedirectSpec {
        RedirectSpec {
            tcp: PortRanges::new(),
            udp: PortRanges::new(),
            tcp_listener: listener,
            udp_listener: listener,
            tcp_mode: TcpMode::default(),
        }
    }

    /// With these TCP ports.
    pub fn tcp(mut self, ports: PortRanges) -> RedirectSpec {
        self.tcp = ports;
        self
    }

    /// With these UDP ports.
    pub fn udp(mut self, ports: PortRanges) -> RedirectSpec {
        self.udp = ports;
        self
    }

    /// With this TCP mode.
    pub fn tcp_mode(mut self, mode: TcpMode) -> RedirectSpec {
        self.tcp_mode = mode;
        self
    }

    /// With a UDP listener on another port than the TCP one.
    pub fn udp_listener(mut self, port: u16) -> RedirectSpec {
        self.udp_listener = port;
        self
    }
}

/// Ports this host's own servers hold, which the redirect leaves alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InUse {
    /// Ports of listening TCP sockets.
    pub tcp: BTreeSet<u16>,
    /// Ports of bound, unconnected UDP sockets.
    pub udp: BTreeSet<u16>,
}

impl InUse {
    /// From the local addresses of the server sockets (as
    /// `sockets::servers` lists them).
    ///
    /// A socket bound to a loopback address does not count: it only ever
    /// sees this host's own traffic, which the redirect never touches (it
    /// matches nothing arriving on `lo`), while skipping its port would
    /// misreport the door to every prober — `systemd-resolved` on
    /// 127.0.0.53:53 would hide UDP door 53. Wildcard and other addresses
    /// count.
    pub fn from_sockets(tcp: &[SocketAddr], udp: &[SocketAddr]) -> InUse {
        let ports = |addrs: &[SocketAddr]| {
            addrs
                .iter()
                .filter(|a| !is_loopback(a.ip()))
                .map(|a| a.port())
                .collect()
        };
        InUse {
            tcp: ports(tcp),
            udp: ports(udp),
        }
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// What the redirect does: the requested ports minus those in use and
/// minus the listener's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectPlan {
    /// What was asked.
    pub spec: RedirectSpec,
    /// TCP ports that reach the listener.
    pub tcp: PortRanges,
    /// UDP ports that reach the listener.
    pub udp: PortRanges,
    /// Requested TCP ports left to the servers already holding them.
    pub skipped_tcp: Vec<u16>,
    /// Requested UDP ports left to the servers already holding them.
    pub skipped_udp: Vec<u16>,
}

/// Plan the redirect of `spec` on a host whose servers hold `in_use`.
pub fn plan(spec: &RedirectSpec, in_use: &InUse) -> RedirectPlan {
    let skipped = |want: &PortRanges, used: &BTreeSet<u16>, listener: u16| -> Vec<u16> {
        used.iter()
            .copied()
            .filter(|p| *p != listener && want.contains(*p))
            .collect()
    };
    let skipped_tcp = skipped(&spec.tcp, &in_use.tcp, spec.tcp_listener);
    let skipped_udp = skipped(&spec.udp, &in_use.udp, spec.udp_listener);
    let tcp = spec
        .tcp
        .without(skipped_tcp.iter().copied().chain([spec.tcp_listener]));
    let udp = spec
        .udp
        .without(skipped_udp.iter().copied().chain([spec.udp_listener]));
    RedirectPlan {
        spec: spec.clone(),
        tcp,
        udp,
        skipped_tcp,
        skipped_udp,
    }
}

/// Who made a table: a process, named by its pid and its start time (so a
/// pid reused by another process is not mistaken for the owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/PID/stat`, field 22).
    pub start: u64,
    /// Which of the process's tables (a process may make several).
    pub serial: u32,
}

impl Owner {
    /// The table name: `onedoor-reflect-PID-START-SERIAL`.
    pub fn table_name(&self) -> String {
        format!("{TABLE_PREFIX}{}-{}-{}", self.pid, self.start, self.serial)
    }

    /// The owner written in a table name of ours; `None` for any other name.
    pub fn from_table_name(name: &str) -> Option<Owner> {
        let rest = name.strip_prefix(TABLE_PREFIX)?;
        let mut parts = rest.split('-');
        let num = |s: Option<&str>| {
            s.filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
        };
        let pid = u32::try_from(num(parts.next())?).ok()?;
        let start = num(parts.next())?;
        let serial = u32::try_from(num(parts.next())?).ok()?;
        parts
            .next()
            .is_none()
            .then_some(Owner { pid, start, serial })
    }
}

fn cmp(op: CmpOp, data: Vec<u8>) -> Expr {
    Expr::Cmp {
        sreg: REG_1,
        op,
        data,
    }
}

/// The expressions every diverted packet must pass, cheapest first:
/// not from `lo` (this host's own traffic is never touched), this
/// protocol, a destination port in the set, and a destination address of
/// this host (`fib daddr type local`: a router's forwarded traffic is
/// never touched either).
fn matches(proto: u8, set: &str, set_id: u32) -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: MetaKey::Iif,
            dreg: REG_1,
        },
        cmp(CmpOp::Neq, LOOPBACK_IFINDEX.to_ne_bytes().to_vec()),
        Expr::Meta {
            key: MetaKey::L4Proto,
            dreg: REG_1,
        },
        cmp(CmpOp::Eq, vec![proto]),
        Expr::TransportPayload {
            dreg: REG_1,
            offset: 2,
            len: 2,
        },
        Expr::Lookup {
            set: set.to_owned(),
            set_id,
            sreg: REG_1,
        },
        Expr::FibDaddrType { dreg: REG_1 },
        cmp(CmpOp::Eq, RTN_LOCAL.to_ne_bytes().to_vec()),
    ]
}

/// `tproxy to :PORT accept`, only for packets in the original direction of
/// their flow: a reply to a flow this host started (a DNS answer to one of
/// its own queries, say) keeps going to the socket that asked.
fn tproxy_rule(proto: u8, set: &str, set_id: u32, port: u16, comment: String) -> nft::Rule {
    let mut exprs = matches(proto, set, set_id);
    exprs.extend([
        Expr::Ct {
            key: CtKey::Direction,
            dreg: REG_1,
        },
        cmp(CmpOp::Eq, vec![0]),
        Expr::Immediate {
            dreg: REG_1,
            data: port.to_be_bytes().to_vec(),
        },
        Expr::Tproxy { port: REG_1 },
        Expr::Verdict(Verdict::Accept),
    ]);
    nft::Rule { exprs, comment }
}

const TCP: u8 = 6;
const UDP: u8 = 17;

impl RedirectPlan {
    /// The sets of redirected ports, as nf_tables sets.
    pub fn sets(&self) -> Vec<Set> {
        vec![
            Set::ports(TCP_SET, TCP_SET_ID, self.tcp.ranges()),
            Set::ports(UDP_SET, UDP_SET_ID, self.udp.ranges()),
        ]
    }

    /// The table (family `inet`: IPv4 and IPv6) that implements the plan,
    /// named `name`, with table flags `flags`.
    ///
    /// Both sets always exist (maybe empty), so a later refresh of the
    /// ports in use only replaces their elements. The chains, with a rule
    /// for each protocol the spec asks for (so a TCP-only redirect does not
    /// need the kernel's `tproxy` at all):
    /// - `nat` (nat, prerouting, dstnat) — [`TcpMode::Redirect`]:
    ///   `iif != lo, tcp, th dport @tcp_ports, fib daddr type local,
    ///   redirect to :LISTENER`;
    /// - `divert` (filter, prerouting, mangle): the same matches plus
    ///   `ct direction original`, then `tproxy to :LISTENER accept`, for
    ///   UDP and, in [`TcpMode::Tproxy`], for TCP.
    pub fn table(&self, name: &str, flags: u32) -> Table {
        let spec = &self.spec;
        let mut chains = Vec::new();
        let mut divert = Vec::new();
        match spec.tcp_mode {
            _ if spec.tcp.is_empty() => {}
            TcpMode::Redirect => {
                let mut exprs = matches(TCP, TCP_SET, TCP_SET_ID);
                exprs.extend([
                    Expr::Immediate {
                        dreg: REG_1,
                        data: spec.tcp_listener.to_be_bytes().to_vec(),
                    },
                    Expr::Redir { port: REG_1 },
                ]);
                chains.push(nft::Chain {
                    name: NAT_CHAIN.into(),
                    base: Some(BaseChain {
                        kind: ChainType::Nat,
                        hook: Hook::Prerouting,
                        priority: PRIORITY_DSTNAT,
                        policy: Verdict::Accept,
                    }),
                    rules: vec![nft::Rule {
                        exprs,
                        comment: format!(
                            "onedoor probe reflector: TCP doors to port {}",
                            spec.tcp_listener
                        ),
                    }],
                });
            }
            TcpMode::Tproxy => divert.push(tproxy_rule(
                TCP,
                TCP_SET,
                TCP_SET_ID,
                spec.tcp_listener,
                format!(
                    "onedoor probe reflector: TCP doors to port {}",
                    spec.tcp_listener
                ),
            )),
        }
        if !spec.udp.is_empty() {
            divert.push(tproxy_rule(
                UDP,
                UDP_SET,
                UDP_SET_ID,
                spec.udp_listener,
                format!(
                    "onedoor probe reflector: UDP doors to port {}",
                    spec.udp_listener
                ),
            ));
        }
        if !divert.is_empty() {
            chains.push(nft::Chain {
                name: TPROXY_CHAIN.into(),
                base: Some(BaseChain {
                    kind: ChainType::Filter,
                    hook: Hook::Prerouting,
                    priority: PRIORITY_MANGLE,
                    policy: Verdict::Accept,
                }),
                rules: divert,
            });
        }
        Table {
            family: Family::Inet,
            name: name.to_owned(),
            flags,
            sets: self.sets(),
            chains,
        }
    }
}

impl fmt::Display for RedirectPlan {
    /// In `nft list` syntax (the table's name left as `onedoor-reflect-…`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spec = &self.spec;
        let elements = |r: &PortRanges| {
            if r.is_empty() {
                String::new()
            } else {
                format!(
                    "\n\t\telements = {{ {} }}",
                    r.to_string().replace(',', ", ")
                )
            }
        };
        let m = "iif != \"lo\"";
        let local = "fib daddr type local";
        writeln!(f, "table inet {TABLE_PREFIX}… {{")?;
        writeln!(
            f,
            "\tset {TCP_SET} {{\n\t\ttype inet_service\n\t\tflags interval{}\n\t}}",
            elements(&self.tcp)
        )?;
        writeln!(
            f,
            "\tset {UDP_SET} {{\n\t\ttype inet_service\n\t\tflags interval{}\n\t}}",
            elements(&self.udp)
        )?;
        if spec.tcp_mode == TcpMode::Redirect && !spec.tcp.is_empty() {
            writeln!(
                f,
                "\tchain {NAT_CHAIN} {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\
                 \t\t{m} meta l4proto tcp th dport @{TCP_SET} {local} redirect to :{}\n\t}}",
                spec.tcp_listener
            )?;
        }
        let tproxy_tcp = spec.tcp_mode == TcpMode::Tproxy && !spec.tcp.is_empty();
        if tproxy_tcp || !spec.udp.is_empty() {
            writeln!(
                f,
                "\tchain {TPROXY_CHAIN} {{\n\t\ttype filter hook prerouting priority mangle; policy accept;"
            )?;
            if tproxy_tcp {
                writeln!(
                    f,
                    "\t\t{m} meta l4proto tcp th dport @{TCP_SET} {local} ct direction original tproxy to :{} accept",
                    spec.tcp_listener
                )?;
            }
            if !spec.udp.is_empty() {
                writeln!(
                    f,
                    "\t\t{m} meta l4proto udp th dport @{UDP_SET} {local} ct direction original tproxy to :{} accept",
                    spec.udp_listener
                )?;
            }
            writeln!(f, "\t}}")?;
        }
        write!(f, "}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RedirectSpec {
        RedirectSpec::new(9000)
            .tcp("1000-2000".parse().unwrap())
            .udp("5000-5010".parse().unwrap())
    }

    #[test]
    fn ports_in_use_and_the_listener_are_skipped() {
        let in_use = InUse {
            tcp: [22, 1500, 9000, 2001].into(),
            udp: [53, 5005, 9000].into(),
        };
        let mut s = spec();
        s.tcp = "1-65535".parse().unwrap();
        let p = plan(&s, &in_use);
        assert_eq!(
            p.tcp.to_string(),
            "1-21,23-1499,1501-2000,2002-8999,9001-65535"
        );
        assert_eq!(p.skipped_tcp, [22, 1500, 2001]);
        assert_eq!(p.udp.to_string(), "5000-5004,5006-5010");
        assert_eq!(p.skipped_udp, [5005]);
        assert_eq!(p.tcp.count(), 65535 - 4);

        // The listener inside the range is skipped even when not yet bound.
        let s = RedirectSpec::new(1234).tcp("1000-2000".parse().unwrap());
        let p = plan(&s, &InUse::default());
        assert_eq!(p.tcp.to_string(), "1000-1233,1235-2000");
        assert!(p.skipped_tcp.is_empty());
        assert!(p.udp.is_empty());
    }

    #[test]
    fn loopback_servers_do_not_hold_a_door() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let in_use = InUse::from_sockets(
            &[
                a("127.0.0.1:5432"),
                a("0.0.0.0:22"),
                a("[::1]:631"),
                a("198.18.0.1:8080"),
            ],
            &[
                a("127.0.0.53:53"),
                a("[::ffff:127.0.0.1]:123"),
                a("[::]:443"),
            ],
        );
        assert_eq!(in_use.tcp, [22, 8080].into());
        assert_eq!(in_use.udp, [443].into());
    }

    #[test]
    fn owners_round_trip_through_table_names() {
        let o = Owner {
            pid: 4242,
            start: 987654,
            serial: 3,
        };
        assert_eq!(o.table_name(), "onedoor-reflect-4242-987654-3");
        assert_eq!(Owner::from_table_name(&o.table_name()), Some(o));
        for other in [
            "onedoor-lab",
            "onedoor-reflect-",
            "onedoor-reflect-1-2",
            "onedoor-reflect-1-2-3-4",
            "onedoor-reflect-x-2-3",
            "onedoor-reflect-+1-2-3",
            "onedoor-reflect-99999999999-2-3",
            "filter",
        ] {
            assert_eq!(Owner::from_table_name(other), None, "{other}");
        }
    }

    fn debug(rule: &nft::Rule) -> Vec<String> {
        rule.exprs.iter().map(|e| e.to_string()).collect()
    }

    /// The expected lines are what `nft --debug=netlink` printed for
    /// the rules of the `Display` form (nft 1.0.6, Linux 6.x, x86_64).
    #[test]
    #[cfg(target_endian = "little")]
    fn the_table_holds_one_rule_per_protocol_over_port_sets() {
        let p = plan(&spec(), &InUse::default());
        let t = p.table("onedoor-reflect-1-2-0", nft::TABLE_F_OWNER);
        assert_eq!((t.family, t.flags), (Family::Inet, nft::TABLE_F_OWNER));
        assert_eq!(t.sets.len(), 2);
        assert_eq!(t.sets[0].elements.len(), 3); // 0 end, 1000, 2001 end
        assert_eq!(t.chains.len(), 2);
        let nat = &t.chains[0];
        assert_eq!(nat.name, NAT_CHAIN);
        assert_eq!(nat.base.unwrap().kind, ChainType::Nat);
        assert_eq!(
            debug(&nat.rules[0]),
            [
                "[ meta load iif => reg 1 ]",
                "[ cmp neq reg 1 0x00000001 ]",
                "[ meta load l4proto => reg 1 ]",
                "[ cmp eq reg 1 0x00000006 ]",
                "[ payload load 2b @ transport header + 2 => reg 1 ]",
                "[ lookup reg 1 set tcp_ports ]",
                "[ fib daddr type => reg 1 ]",
                "[ cmp eq reg 1 0x00000002 ]",
                "[ immediate reg 1 0x00002823 ]",
                "[ redir proto_min reg 1 flags 0x2 ]",
            ]
        );
        let divert = &t.chains[1];
        assert_eq!(divert.base.unwrap().priority, -150);
        assert_eq!(divert.rules.len(), 1);
        assert_eq!(
            debug(&divert.rules[0])[..2],
            ["[ meta load iif => reg 1 ]", "[ cmp neq reg 1 0x00000001 ]"]
        );
        assert_eq!(
            debug(&divert.rules[0])[8..],
            [
                "[ ct load direction => reg 1 ]",
                "[ cmp eq reg 1 0x00000000 ]",
                "[ immediate reg 1 0x00002823 ]",
                "[ tproxy port reg 1 ]",
                "[ immediate reg 0 accept ]",
            ]
        );
        assert!(debug(&divert.rules[0]).contains(&"[ lookup reg 1 set udp_ports ]".to_string()));

        // Tproxy mode: no NAT chain, two divert rules.
        let p = plan(&spec().tcp_mode(TcpMode::Tproxy), &InUse::default());
        let t = p.table("x", 0);
        assert_eq!(t.chains.len(), 1);
        assert_eq!(t.chains[0].rules.len(), 2);
        assert!(debug(&t.chains[0].rules[0]).contains(&"[ cmp eq reg 1 0x00000006 ]".to_string()));
    }

    #[test]
    fn all_65535_ports_are_one_rule_and_two_set_elements() {
        let s = RedirectSpec::new(443).tcp(PortRanges::all());
        let p = plan(&s, &InUse::default());
        let t = p.table("x", 0);
        assert_eq!(t.chains.len(), 1, "no UDP asked for: no divert chain");
        assert_eq!(t.chains[0].rules.len(), 1);
        assert_eq!(t.sets.len(), 2);
        assert!(t.sets[1].elements.is_empty());
        // 0 end, 1, 443 end, 444 (open)
        assert_eq!(t.sets[0].elements.len(), 4);
    }

    #[test]
    fn the_plan_reads_as_nft_syntax() {
        let in_use = InUse {
            tcp: [1500].into(),
            udp: BTreeSet::new(),
        };
        let text = plan(&spec(), &in_use).to_string();
        assert!(
            text.contains("elements = { 1000-1499, 1501-2000 }"),
            "{text}"
        );
        assert!(text.contains(
            "iif != \"lo\" meta l4proto tcp th dport @tcp_ports fib daddr type local redirect to :9000"
        ));
        assert!(text.contains(
            "th dport @udp_ports fib daddr type local ct direction original tproxy to :9000 accept"
        ));
        assert_eq!(text.matches('{').count(), text.matches('}').count());
    }
}
