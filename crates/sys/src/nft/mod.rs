//! A thin nf_tables layer: tables, chains, sets and rules as pure data,
//! encoded into nf_tables netlink messages and sent as one atomic batch.
//!
//! Why our own layer and not a crate: `rustables`, the maintained netlink
//! nftables crate, is GPL-3.0-or-later, which this MIT/Apache-2.0 project
//! cannot link; `nftnl`/`nftables` wrap libnftnl or the `nft` binary, which
//! onedoor must not need. onedoor uses a handful of expressions (meta, cmp,
//! payload, ct, bitwise, immediate, reject, nat, lookup, fib, redir,
//! tproxy), so a few hundred lines here are smaller than any of those
//! dependencies.
//!
//! Three stages, so the first two can be tested without a kernel:
//! - the model: [`Table`] with its [`Set`]s and [`Chain`]s of [`Rule`]s,
//!   each a list of [`Expr`]s — the kernel's own building blocks, shown
//!   (`Display`) in the format of `nft --debug=netlink`;
//! - [`Batch`]: the model to bytes, message by message, each with what it
//!   does in words for errors;
//! - `NftSocket` / `apply` / `delete_table` (Linux): send a batch over
//!   `NETLINK_NETFILTER` in the calling thread's namespace and check every
//!   acknowledgement; list the tables there.
//!
//! Users build their own model from their own rules: the lab compiles its
//! egress policies into it, the probe reflector its port redirect.

use std::fmt;

mod encode;
#[cfg(target_os = "linux")]
mod kernel;

pub use encode::{parse_table_info, Batch, BatchMsg, EncodedBatch, TableInfo};
#[cfg(target_os = "linux")]
pub use kernel::{apply, delete_table, NftSocket};

/// A register: 0 is the verdict, 1 to 4 hold 16 bytes each.
pub type Reg = u32;
/// The verdict register.
pub const REG_VERDICT: Reg = 0;
/// The first data register.
pub const REG_1: Reg = 1;
/// The second data register.
pub const REG_2: Reg = 2;

/// `NFT_TABLE_F_OWNER` (Linux 5.12): the table belongs to the netlink
/// socket that created it, which alone may change it, and the kernel deletes
/// it when that socket closes — also when its process is killed.
pub const TABLE_F_OWNER: u32 = 0x2;

/// `ct state` bits (host byte order): established.
pub const CT_STATE_ESTABLISHED: u32 = 1 << 1;
/// `ct state` bits (host byte order): related.
pub const CT_STATE_RELATED: u32 = 1 << 2;

/// `RTN_LOCAL`: what `fib daddr type` loads for an address of this host.
pub const RTN_LOCAL: u32 = 2;

/// The interface index of `lo`, the same in every network namespace.
pub const LOOPBACK_IFINDEX: u32 = 1;

/// Set key type `inet_service` (a port, 2 bytes, network order).
pub const TYPE_INET_SERVICE: u32 = 13;

/// A table's address family (`NFPROTO_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `inet`: IPv4 and IPv6 in one table.
    Inet = 1,
    /// `ip`: IPv4.
    Ip = 2,
    /// `ip6`: IPv6.
    Ip6 = 10,
}

impl Family {
    /// The `NFPROTO_*` number.
    pub fn number(self) -> u8 {
        self as u8
    }

    /// From an `NFPROTO_*` number.
    pub fn from_number(n: u8) -> Option<Family> {
        match n {
            1 => Some(Family::Inet),
            2 => Some(Family::Ip),
            10 => Some(Family::Ip6),
            _ => None,
        }
    }

    /// As `nft` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A table: sets and chains, created together in one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Address family.
    pub family: Family,
    /// Name (at most 255 bytes).
    pub name: String,
    /// `NFT_TABLE_F_*` flags, e.g. [`TABLE_F_OWNER`].
    pub flags: u32,
    /// Named sets, created before the chains that look them up.
    pub sets: Vec<Set>,
    /// Chains, in creation order.
    pub chains: Vec<Chain>,
}

/// A chain; a base chain is attached to a netfilter hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Chain name.
    pub name: String,
    /// The hook, for a base chain.
    pub base: Option<BaseChain>,
    /// The rules, in order.
    pub rules: Vec<Rule>,
}

/// What makes a chain a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseChain {
    /// `filter` or `nat`.
    pub kind: ChainType,
    /// The hook it is attached to.
    pub hook: Hook,
    /// Hook priority (`mangle` is -150, `dstnat` -100, `filter` 0).
    pub priority: i32,
    /// What happens to a packet no rule decided about.
    pub policy: Verdict,
}

/// The type of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainType {
    /// Filtering (and socket assignment: `tproxy`).
    Filter,
    /// Address translation: sees the first packet of each connection.
    Nat,
}

impl ChainType {
    /// As `nft` writes it.
    pub fn name(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
        }
    }
}

/// Netfilter hooks (`NF_INET_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Before routing.
    Prerouting = 0,
    /// Packets for this host.
    Input = 1,
    /// Packets routed through this host.
    Forward = 2,
    /// Packets this host sends.
    Output = 3,
    /// After routing, on the way out.
    Postrouting = 4,
}

impl Hook {
    /// As `nft` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        }
    }
}

/// A final verdict (`NF_DROP`, `NF_ACCEPT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Silently discard.
    Drop = 0,
    /// Let it through.
    Accept = 1,
}

impl Verdict {
    /// As `nft` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Drop => "drop",
            Verdict::Accept => "accept",
        }
    }
}

/// A named set of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    /// Set name.
    pub name: String,
    /// A number unique within the batch, so rules of the same batch can
    /// refer to the set before it exists.
    pub id: u32,
    /// Key type, e.g. [`TYPE_INET_SERVICE`].
    pub key_type: u32,
    /// Key length in bytes.
    pub key_len: u32,
    /// Holds intervals (`flags interval`): elements come as start / end
    /// pairs, see [`Set::ports`].
    pub interval: bool,
    /// The elements.
    pub elements: Vec<SetElem>,
}

/// One element of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetElem {
    /// The key, in the set's byte order.
    pub key: Vec<u8>,
    /// In an interval set: this key ends an interval (exclusive) instead of
    /// starting one.
    pub interval_end: bool,
    /// In an interval set: this start has no end, the interval runs to the
    /// largest key (as `nft` marks it, so `nft list` shows it right).
    pub open: bool,
}

impl Set {
    /// An interval set of ports (`type inet_service; flags interval`)
    /// holding `ranges`, which must be sorted, disjoint and not adjacent
    /// (see `reflect::PortRanges`).
    ///
    /// Encoded as `nft` does for the kernel's rbtree set: a leading
    /// interval end at 0 when the first range starts later, then for each
    /// range its start and the port after its end — none when the range
    /// runs to 65535 (an open interval).
    pub fn ports(name: &str, id: u32, ranges: &[(u16, u16)]) -> Set {
        let mut elements = Vec::with_capacity(ranges.len() * 2 + 1);
        let mut prev_end: Option<u16> = None;
        for &(lo, hi) in ranges {
            debug_assert!(lo <= hi, "range {lo}-{hi}");
            debug_assert!(
                prev_end.is_none_or(|p| u32::from(lo) > u32::from(p) + 1),
                "ranges must be sorted and merged"
            );
            if elements.is_empty() && lo > 0 {
                elements.push(SetElem {
                    key: 0u16.to_be_bytes().to_vec(),
                    interval_end: true,
                    open: false,
                });
            }
            elements.push(SetElem {
                key: lo.to_be_bytes().to_vec(),
                interval_end: false,
                open: hi == u16::MAX,
            });
            if hi < u16::MAX {
                elements.push(SetElem {
                    key: (hi + 1).to_be_bytes().to_vec(),
                    interval_end: true,
                    open: false,
                });
            }
            prev_end = Some(hi);
        }
        Set {
            name: name.to_owned(),
            id,
            key_type: TYPE_INET_SERVICE,
            key_len: 2,
            interval: true,
            elements,
        }
    }
}

/// One rule: expressions evaluated in order, and a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The expressions.
    pub exprs: Vec<Expr>,
    /// Why the rule is there, in plain words (stored as the rule's comment,
    /// shown by `nft list`). Empty: none.
    pub comment: String,
}

/// Meta keys (`NFT_META_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    /// Input interface index.
    Iif = 4,
    /// Input interface name.
    IifName = 6,
    /// Output interface name.
    OifName = 7,
    /// Transport protocol number.
    L4Proto = 16,
}

impl MetaKey {
    fn name(self) -> &'static str {
        match self {
            MetaKey::Iif => "iif",
            MetaKey::IifName => "iifname",
            MetaKey::OifName => "oifname",
            MetaKey::L4Proto => "l4proto",
        }
    }
}

/// Conntrack keys (`NFT_CT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtKey {
    /// State bits (4 bytes): new, established, related, …
    State = 0,
    /// Direction (1 byte): 0 original, 1 reply.
    Direction = 2,
}

impl CtKey {
    fn name(self) -> &'static str {
        match self {
            CtKey::State => "state",
            CtKey::Direction => "direction",
        }
    }
}

/// Comparison operators (`NFT_CMP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// Equal.
    Eq = 0,
    /// Not equal.
    Neq = 1,
}

/// One nf_tables expression: the kernel's own building blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Load a meta key into a register.
    Meta {
        /// What to load.
        key: MetaKey,
        /// Where.
        dreg: Reg,
    },
    /// Compare a register with bytes; on mismatch the rule ends.
    Cmp {
        /// The register.
        sreg: Reg,
        /// Equal or not equal.
        op: CmpOp,
        /// The bytes compared with.
        data: Vec<u8>,
    },
    /// Load `len` bytes at `offset` of the transport header.
    TransportPayload {
        /// Where.
        dreg: Reg,
        /// Offset in the transport header (2: the destination port).
        offset: u32,
        /// Length in bytes.
        len: u32,
    },
    /// Load a conntrack key.
    Ct {
        /// What to load.
        key: CtKey,
        /// Where.
        dreg: Reg,
    },
    /// `reg = (reg & mask) ^ xor` over 4 bytes.
    Bitwise {
        /// The register.
        reg: Reg,
        /// Mask (host order).
        mask: u32,
        /// Xor (host order).
        xor: u32,
    },
    /// Set the final verdict.
    Verdict(Verdict),
    /// Load bytes into a register.
    Immediate {
        /// Where.
        dreg: Reg,
        /// What.
        data: Vec<u8>,
    },
    /// Reject: a TCP reset, or an ICMP unreachable with this code.
    Reject {
        /// A TCP reset (else ICMP).
        tcp_reset: bool,
        /// The ICMP code.
        icmp_code: u8,
    },
    /// Destination NAT to the IPv4 address in `addr` and the port in `port`.
    Dnat {
        /// Register with the address.
        addr: Reg,
        /// Register with the port.
        port: Reg,
    },
    /// Does the register's value belong to a set? If not, the rule ends.
    Lookup {
        /// The set's name.
        set: String,
        /// The set's id, when it is created in the same batch.
        set_id: u32,
        /// The register.
        sreg: Reg,
    },
    /// `fib daddr type`: the route type of the destination address
    /// ([`RTN_LOCAL`] for this host's own addresses).
    FibDaddrType {
        /// Where.
        dreg: Reg,
    },
    /// `redirect to :PORT`: destination NAT to the primary address of the
    /// input interface and the port in `port` (`NF_NAT_RANGE_PROTO_SPECIFIED`).
    Redir {
        /// Register with the port.
        port: Reg,
    },
    /// `tproxy to :PORT`: hand the packet, unchanged, to the transparent
    /// socket listening on the port in `port` (any family).
    Tproxy {
        /// Register with the port.
        port: Reg,
    },
}

/// Words as `nft --debug=netlink` prints a register's bytes: 32-bit words,
/// each read in host byte order (little-endian hosts).
fn words(data: &[u8]) -> String {
    data.chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            format!("0x{:08x}", u32::from_le_bytes(w))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Display for Expr {
    /// The format of `nft --debug=netlink` (on a little-endian host).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Meta { key, dreg } => write!(f, "[ meta load {} => reg {dreg} ]", key.name()),
            Expr::Cmp { sreg, op, data } => {
                let op = match op {
                    CmpOp::Eq => "eq",
                    CmpOp::Neq => "neq",
                };
                write!(f, "[ cmp {op} reg {sreg} {} ]", words(data))
            }
            Expr::TransportPayload { dreg, offset, len } => write!(
                f,
                "[ payload load {len}b @ transport header + {offset} => reg {dreg} ]"
            ),
            Expr::Ct { key, dreg } => write!(f, "[ ct load {} => reg {dreg} ]", key.name()),
            Expr::Bitwise { reg, mask, xor } => write!(
                f,
                "[ bitwise reg {reg} = ( reg {reg} & 0x{mask:08x} ) ^ 0x{xor:08x} ]"
            ),
            Expr::Verdict(v) => write!(f, "[ immediate reg {REG_VERDICT} {} ]", v.name()),
            Expr::Immediate { dreg, data } => {
                write!(f, "[ immediate reg {dreg} {} ]", words(data))
            }
            Expr::Reject {
                tcp_reset,
                icmp_code,
            } => write!(
                f,
                "[ reject type {} code {icmp_code} ]",
                u8::from(*tcp_reset)
            ),
            Expr::Dnat { addr, port } => write!(
                f,
                "[ nat dnat ip addr_min reg {addr} addr_max reg {addr} \
                 proto_min reg {port} proto_max reg {port} flags 0x3 ]"
            ),
            Expr::Lookup { set, sreg, .. } => write!(f, "[ lookup reg {sreg} set {set} ]"),
            Expr::FibDaddrType { dreg } => write!(f, "[ fib daddr type => reg {dreg} ]"),
            Expr::Redir { port } => write!(f, "[ redir proto_min reg {port} flags 0x2 ]"),
            Expr::Tproxy { port } => write!(f, "[ tproxy port reg {port} ]"),
        }
    }
}

impl fmt::Display for Rule {
    /// One expression per line, as `nft --debug=netlink` prints a rule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.exprs.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &Set) -> Vec<(u16, bool, bool)> {
        s.elements
            .iter()
            .map(|e| {
                (
                    u16::from_be_bytes([e.key[0], e.key[1]]),
                    e.interval_end,
                    e.open,
                )
            })
            .collect()
    }

    /// What `nft --debug=netlink` sent for
    /// `elements = { 1000-1499, 1501-2000, 3000 }` and `{ 5000-65535 }`.
    #[test]
    fn port_intervals_are_encoded_like_nft_does() {
        let s = Set::ports("tcp_ports", 1, &[(1000, 1499), (1501, 2000), (3000, 3000)]);
        assert_eq!(
            keys(&s),
            [
                (0, true, false),
                (1000, false, false),
                (1500, true, false),
                (1501, false, false),
                (2001, true, false),
                (3000, false, false),
                (3001, true, false),
            ]
        );
        let s = Set::ports("udp_ports", 2, &[(5000, 65535)]);
        assert_eq!(keys(&s), [(0, true, false), (5000, false, true)]);
        let all = Set::ports("all", 3, &[(1, 65535)]);
        assert_eq!(keys(&all), [(0, true, false), (1, false, true)]);
        assert!(Set::ports("none", 4, &[]).elements.is_empty());
    }

    #[test]
    fn expressions_print_like_nft_debug() {
        let shown: Vec<String> = [
            Expr::Meta {
                key: MetaKey::Iif,
                dreg: REG_1,
            },
            Expr::Cmp {
                sreg: REG_1,
                op: CmpOp::Neq,
                data: LOOPBACK_IFINDEX.to_ne_bytes().to_vec(),
            },
            Expr::FibDaddrType { dreg: REG_1 },
            Expr::Ct {
                key: CtKey::Direction,
                dreg: REG_1,
            },
            Expr::Lookup {
                set: "tcp_ports".into(),
                set_id: 1,
                sreg: REG_1,
            },
            Expr::Immediate {
                dreg: REG_1,
                data: 9000u16.to_be_bytes().to_vec(),
            },
            Expr::Redir { port: REG_1 },
            Expr::Tproxy { port: REG_1 },
            Expr::Verdict(Verdict::Accept),
        ]
        .iter()
        .map(|e| e.to_string())
        .collect();
        assert_eq!(
            shown,
            [
                "[ meta load iif => reg 1 ]",
                "[ cmp neq reg 1 0x00000001 ]",
                "[ fib daddr type => reg 1 ]",
                "[ ct load direction => reg 1 ]",
                "[ lookup reg 1 set tcp_ports ]",
                "[ immediate reg 1 0x00002823 ]",
                "[ redir proto_min reg 1 flags 0x2 ]",
                "[ tproxy port reg 1 ]",
                "[ immediate reg 0 accept ]",
            ]
        );
    }
}
