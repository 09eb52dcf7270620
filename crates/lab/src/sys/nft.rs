//! A thin nf_tables layer: compiles a [`Ruleset`] into nf_tables netlink
//! messages and sends them as one atomic batch.
//!
//! Why our own layer and not a crate: `rustables`, the maintained netlink
//! nftables crate, is GPL-3.0-or-later, which this MIT/Apache-2.0 project
//! cannot link; `nftnl`/`nftables` wrap libnftnl or the `nft` binary, which
//! the lab must not need. The lab uses a handful of expressions (meta, cmp,
//! payload, ct, bitwise, immediate, reject, nat), so a few hundred lines
//! here are smaller than any of those dependencies.
//!
//! Two stages, so the first can be tested without a kernel:
//! - [`compile`]: rules to [`Expr`] lists, shown in the format of
//!   `nft --debug=netlink`, then to bytes ([`encode_batch`]);
//! - [`apply`] / [`delete_table`]: send a batch over `NETLINK_NETFILTER`
//!   in the calling thread's namespace and check every acknowledgement.

use std::fmt;

use crate::plan::ruleset::{Action, Chain, ChainKind, ChainPolicy, Hook, Match, Rule, Ruleset};
use crate::sys::nl::{Netlink, NlError};

// Constants from <linux/netfilter/nf_tables.h> and <linux/netfilter.h>.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFPROTO_IPV4: u8 = 2;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
/// `NFTNL_UDATA_RULE_COMMENT`: how `nft` stores a rule's comment.
const UDATA_RULE_COMMENT: u8 = 0;

const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_FORWARD: u32 = 2;

/// A register: 0 is the verdict, 1 to 4 hold 16 bytes each.
type Reg = u32;
const REG_VERDICT: Reg = 0;
const REG_1: Reg = 1;
const REG_2: Reg = 2;

/// `ct state` bits (host byte order).
const CT_STATE_ESTABLISHED: u32 = 1 << 1;
const CT_STATE_RELATED: u32 = 1 << 2;
const IFNAMSIZ: usize = 16;

/// Meta keys the lab uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaKey {
    /// Input interface name.
    IifName = 6,
    /// Output interface name.
    OifName = 7,
    /// Transport protocol number.
    L4Proto = 16,
}

/// One nf_tables expression: the kernel's own building blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    /// Load a meta key into a register.
    Meta { key: MetaKey, dreg: Reg },
    /// Compare a register (equal or not equal) with bytes.
    Cmp { sreg: Reg, eq: bool, data: Vec<u8> },
    /// Load `len` bytes at `offset` of the transport header.
    TransportPayload { dreg: Reg, offset: u32, len: u32 },
    /// Load the conntrack state bits.
    CtState { dreg: Reg },
    /// `reg = (reg & mask) ^ xor` over 4 bytes.
    Bitwise { reg: Reg, mask: u32, xor: u32 },
    /// Set the verdict.
    Verdict(u32),
    /// Load bytes into a register.
    Immediate { dreg: Reg, data: Vec<u8> },
    /// Reject: a TCP reset, or an ICMP unreachable with this code.
    Reject { tcp_reset: bool, icmp_code: u8 },
    /// Destination NAT to the IPv4 address in `addr` and the port in `port`.
    Dnat { addr: Reg, port: Reg },
}

/// Compile one rule into expressions.
pub(crate) fn compile(rule: &Rule) -> Vec<Expr> {
    let mut out = Vec::new();
    for m in &rule.matches {
        match m {
            Match::EstablishedOrRelated => {
                out.push(Expr::CtState { dreg: REG_1 });
                out.push(Expr::Bitwise {
                    reg: REG_1,
                    mask: CT_STATE_ESTABLISHED | CT_STATE_RELATED,
                    xor: 0,
                });
                out.push(Expr::Cmp {
                    sreg: REG_1,
                    eq: false,
                    data: 0u32.to_ne_bytes().to_vec(),
                });
            }
            Match::InIface(name) | Match::OutIface(name) => {
                let key = if matches!(m, Match::InIface(_)) {
                    MetaKey::IifName
                } else {
                    MetaKey::OifName
                };
                let mut data = name.as_bytes().to_vec();
                data.resize(IFNAMSIZ, 0);
                out.push(Expr::Meta { key, dreg: REG_1 });
                out.push(Expr::Cmp {
                    sreg: REG_1,
                    eq: true,
                    data,
                });
            }
            Match::Proto(p) => {
                out.push(Expr::Meta {
                    key: MetaKey::L4Proto,
                    dreg: REG_1,
                });
                out.push(Expr::Cmp {
                    sreg: REG_1,
                    eq: true,
                    data: vec![p.number()],
                });
            }
            Match::DstPort(port) => {
                out.push(Expr::TransportPayload {
                    dreg: REG_1,
                    offset: 2,
                    len: 2,
                });
                out.push(Expr::Cmp {
                    sreg: REG_1,
                    eq: true,
                    data: port.to_be_bytes().to_vec(),
                });
            }
        }
    }
    match rule.action {
        Action::Accept => out.push(Expr::Verdict(NF_ACCEPT)),
        Action::Drop => out.push(Expr::Verdict(NF_DROP)),
        Action::RejectTcpReset => out.push(Expr::Reject {
            tcp_reset: true,
            icmp_code: 0,
        }),
        Action::RejectIcmpPortUnreachable => out.push(Expr::Reject {
            tcp_reset: false,
            icmp_code: 3,
        }),
        Action::Dnat(to) => {
            out.push(Expr::Immediate {
                dreg: REG_1,
                data: to.ip().octets().to_vec(),
            });
            out.push(Expr::Immediate {
                dreg: REG_2,
                data: to.port().to_be_bytes().to_vec(),
            });
            out.push(Expr::Dnat {
                addr: REG_1,
                port: REG_2,
            });
        }
    }
    out
}

/// Words as `nft --debug=netlink` prints a register's bytes: 32-bit words,
/// each read in host byte order.
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
            Expr::Meta { key, dreg } => {
                let k = match key {
                    MetaKey::IifName => "iifname",
                    MetaKey::OifName => "oifname",
                    MetaKey::L4Proto => "l4proto",
                };
                write!(f, "[ meta load {k} => reg {dreg} ]")
            }
            Expr::Cmp { sreg, eq, data } => {
                let op = if *eq { "eq" } else { "neq" };
                write!(f, "[ cmp {op} reg {sreg} {} ]", words(data))
            }
            Expr::TransportPayload { dreg, offset, len } => {
                write!(
                    f,
                    "[ payload load {len}b @ transport header + {offset} => reg {dreg} ]"
                )
            }
            Expr::CtState { dreg } => write!(f, "[ ct load state => reg {dreg} ]"),
            Expr::Bitwise { reg, mask, xor } => write!(
                f,
                "[ bitwise reg {reg} = ( reg {reg} & 0x{mask:08x} ) ^ 0x{xor:08x} ]"
            ),
            Expr::Verdict(v) => {
                let v = if *v == NF_ACCEPT { "accept" } else { "drop" };
                write!(f, "[ immediate reg {REG_VERDICT} {v} ]")
            }
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
        }
    }
}

/// A netlink message under construction: header, `nfgenmsg`, attributes.
struct MsgBuf {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl MsgBuf {
    fn new(ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> MsgBuf {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set in finish
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
        buf.push(family);
        buf.push(0); // NFNETLINK_V0
        buf.extend_from_slice(&res_id.to_be_bytes());
        MsgBuf {
            buf,
            nests: Vec::new(),
        }
    }

    fn pad(&mut self) {
        while self.buf.len() & 3 != 0 {
            self.buf.push(0);
        }
    }

    fn put(&mut self, ty: u16, value: &[u8]) {
        let len = (4 + value.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
    }

    fn put_strz(&mut self, ty: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.put(ty, &v);
    }

    fn put_be32(&mut self, ty: u16, v: u32) {
        self.put(ty, &v.to_be_bytes());
    }

    fn nest(&mut self, ty: u16) {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    }

    fn end(&mut self) {
        let start = self.nests.pop().expect("balanced nests");
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        assert!(self.nests.is_empty(), "unbalanced nests");
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

fn put_data_value(m: &mut MsgBuf, ty: u16, data: &[u8]) {
    m.nest(ty);
    m.put(NFTA_DATA_VALUE, data);
    m.end();
}

fn encode_expr(m: &mut MsgBuf, e: &Expr) {
    let name = match e {
        Expr::Meta { .. } => "meta",
        Expr::Cmp { .. } => "cmp",
        Expr::TransportPayload { .. } => "payload",
        Expr::CtState { .. } => "ct",
        Expr::Bitwise { .. } => "bitwise",
        Expr::Verdict(_) | Expr::Immediate { .. } => "immediate",
        Expr::Reject { .. } => "reject",
        Expr::Dnat { .. } => "nat",
    };
    m.nest(NFTA_LIST_ELEM);
    m.put_strz(NFTA_EXPR_NAME, name);
    m.nest(NFTA_EXPR_DATA);
    match e {
        Expr::Meta { key, dreg } => {
            m.put_be32(2, *key as u32); // NFTA_META_KEY
            m.put_be32(1, *dreg); // NFTA_META_DREG
        }
        Expr::Cmp { sreg, eq, data } => {
            m.put_be32(1, *sreg); // NFTA_CMP_SREG
            m.put_be32(2, if *eq { 0 } else { 1 }); // NFTA_CMP_OP: EQ, NEQ
            put_data_value(m, 3, data); // NFTA_CMP_DATA
        }
        Expr::TransportPayload { dreg, offset, len } => {
            m.put_be32(1, *dreg); // NFTA_PAYLOAD_DREG
            m.put_be32(2, 2); // NFTA_PAYLOAD_BASE: transport header
            m.put_be32(3, *offset); // NFTA_PAYLOAD_OFFSET
            m.put_be32(4, *len); // NFTA_PAYLOAD_LEN
        }
        Expr::CtState { dreg } => {
            m.put_be32(2, 0); // NFTA_CT_KEY: NFT_CT_STATE
            m.put_be32(1, *dreg); // NFTA_CT_DREG
        }
        Expr::Bitwise { reg, mask, xor } => {
            m.put_be32(1, *reg); // NFTA_BITWISE_SREG
            m.put_be32(2, *reg); // NFTA_BITWISE_DREG
            m.put_be32(3, 4); // NFTA_BITWISE_LEN
            put_data_value(m, 4, &mask.to_ne_bytes()); // NFTA_BITWISE_MASK
            put_data_value(m, 5, &xor.to_ne_bytes()); // NFTA_BITWISE_XOR
        }
        Expr::Verdict(code) => {
            m.put_be32(1, REG_VERDICT); // NFTA_IMMEDIATE_DREG
            m.nest(2); // NFTA_IMMEDIATE_DATA
            m.nest(NFTA_DATA_VERDICT);
            m.put_be32(NFTA_VERDICT_CODE, *code);
            m.end();
            m.end();
        }
        Expr::Immediate { dreg, data } => {
            m.put_be32(1, *dreg); // NFTA_IMMEDIATE_DREG
            put_data_value(m, 2, data); // NFTA_IMMEDIATE_DATA
        }
        Expr::Reject {
            tcp_reset,
            icmp_code,
        } => {
            // NFTA_REJECT_TYPE: NFT_REJECT_TCP_RST (1) or ICMP_UNREACH (0)
            m.put_be32(1, u32::from(*tcp_reset));
            m.put(2, &[*icmp_code]); // NFTA_REJECT_ICMP_CODE
        }
        Expr::Dnat { addr, port } => {
            m.put_be32(1, 1); // NFTA_NAT_TYPE: NFT_NAT_DNAT
            m.put_be32(2, u32::from(NFPROTO_IPV4)); // NFTA_NAT_FAMILY
            m.put_be32(3, *addr); // NFTA_NAT_REG_ADDR_MIN
            m.put_be32(4, *addr); // NFTA_NAT_REG_ADDR_MAX
            m.put_be32(5, *port); // NFTA_NAT_REG_PROTO_MIN
            m.put_be32(6, *port); // NFTA_NAT_REG_PROTO_MAX
                                  // NFTA_NAT_FLAGS: NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED
            m.put_be32(7, 0x3);
        }
    }
    m.end();
    m.end();
}

/// One message of a batch, with what it does in words (for errors).
pub(crate) struct BatchMsg {
    /// Its sequence number.
    pub(crate) seq: u32,
    /// What it does, e.g. "adding rule 2 of chain forward".
    pub(crate) what: String,
}

/// A complete batch: the bytes to send, and the messages that must be
/// acknowledged.
pub(crate) struct Batch {
    /// Begin marker, messages, end marker.
    pub(crate) bytes: Vec<u8>,
    /// The messages inside, in order.
    pub(crate) msgs: Vec<BatchMsg>,
}

const fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

fn chain_msg(seq: u32, table: &str, chain: &Chain) -> Vec<u8> {
    let mut m = MsgBuf::new(
        nft_type(NFT_MSG_NEWCHAIN),
        NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
        seq,
        NFPROTO_IPV4,
        0,
    );
    m.put_strz(NFTA_CHAIN_TABLE, table);
    m.put_strz(NFTA_CHAIN_NAME, chain.name);
    m.nest(NFTA_CHAIN_HOOK);
    let hook = match chain.hook {
        Hook::Prerouting => NF_INET_PRE_ROUTING,
        Hook::Forward => NF_INET_FORWARD,
    };
    m.put_be32(NFTA_HOOK_HOOKNUM, hook);
    m.put_be32(NFTA_HOOK_PRIORITY, chain.priority as u32);
    m.end();
    let policy = match chain.policy {
        ChainPolicy::Accept => NF_ACCEPT,
        ChainPolicy::Drop => NF_DROP,
    };
    m.put_be32(NFTA_CHAIN_POLICY, policy);
    let kind = match chain.kind {
        ChainKind::Filter => "filter",
        ChainKind::Nat => "nat",
    };
    m.put_strz(NFTA_CHAIN_TYPE, kind);
    m.finish()
}

fn rule_msg(seq: u32, table: &str, chain: &str, rule: &Rule) -> Vec<u8> {
    let mut m = MsgBuf::new(
        nft_type(NFT_MSG_NEWRULE),
        NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK,
        seq,
        NFPROTO_IPV4,
        0,
    );
    m.put_strz(NFTA_RULE_TABLE, table);
    m.put_strz(NFTA_RULE_CHAIN, chain);
    m.nest(NFTA_RULE_EXPRESSIONS);
    for e in compile(rule) {
        encode_expr(&mut m, &e);
    }
    m.end();
    if !rule.comment.is_empty() {
        let comment = rule.comment.as_bytes();
        let len = (comment.len() + 1).min(255);
        let mut udata = vec![UDATA_RULE_COMMENT, len as u8];
        udata.extend_from_slice(&comment[..len - 1]);
        udata.push(0);
        m.put(NFTA_RULE_USERDATA, &udata);
    }
    m.finish()
}

fn batch_marker(ty: u16, seq: u32) -> Vec<u8> {
    MsgBuf::new(ty, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES).finish()
}

/// Encode `ruleset` as one batch creating its table, chains and rules.
/// Sequence numbers come from `seq`.
pub(crate) fn encode_batch(ruleset: &Ruleset, seq: &mut dyn FnMut() -> u32) -> Batch {
    let mut bytes = batch_marker(NFNL_MSG_BATCH_BEGIN, seq());
    let mut msgs = Vec::new();
    let s = seq();
    let mut m = MsgBuf::new(
        nft_type(NFT_MSG_NEWTABLE),
        NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
        s,
        NFPROTO_IPV4,
        0,
    );
    m.put_strz(NFTA_TABLE_NAME, &ruleset.table);
    m.put_be32(NFTA_TABLE_FLAGS, 0);
    bytes.extend(m.finish());
    msgs.push(BatchMsg {
        seq: s,
        what: format!("adding table ip {}", ruleset.table),
    });
    for chain in &ruleset.chains {
        let s = seq();
        bytes.extend(chain_msg(s, &ruleset.table, chain));
        msgs.push(BatchMsg {
            seq: s,
            what: format!("adding chain {}", chain.name),
        });
        for (i, rule) in chain.rules.iter().enumerate() {
            let s = seq();
            bytes.extend(rule_msg(s, &ruleset.table, chain.name, rule));
            msgs.push(BatchMsg {
                seq: s,
                what: format!("adding rule {} of chain {} ({rule})", i + 1, chain.name),
            });
        }
    }
    bytes.extend(batch_marker(NFNL_MSG_BATCH_END, seq()));
    Batch { bytes, msgs }
}

/// Encode a batch deleting table `name` (and everything in it).
pub(crate) fn encode_delete(name: &str, seq: &mut dyn FnMut() -> u32) -> Batch {
    let mut bytes = batch_marker(NFNL_MSG_BATCH_BEGIN, seq());
    let s = seq();
    let mut m = MsgBuf::new(
        nft_type(NFT_MSG_DELTABLE),
        NLM_F_REQUEST | NLM_F_ACK,
        s,
        NFPROTO_IPV4,
        0,
    );
    m.put_strz(NFTA_TABLE_NAME, name);
    bytes.extend(m.finish());
    bytes.extend(batch_marker(NFNL_MSG_BATCH_END, seq()));
    Batch {
        bytes,
        msgs: vec![BatchMsg {
            seq: s,
            what: format!("deleting table ip {name}"),
        }],
    }
}

fn send(batch: Batch) -> Result<(), NlError> {
    let mut nl = Netlink::open(netlink_sys::protocols::NETLINK_NETFILTER).map_err(|e| NlError {
        what: "opening a netfilter netlink socket".into(),
        source: e,
    })?;
    // Sequence numbers were already assigned; the socket's own counter is
    // not used for nf_tables batches.
    let acks: Vec<u32> = batch.msgs.iter().map(|m| m.seq).collect();
    let describe = |seq: u32| {
        batch
            .msgs
            .iter()
            .find(|m| m.seq == seq)
            .map(|m| m.what.clone())
            .unwrap_or_else(|| "starting an nf_tables batch".into())
    };
    nl.transact(&batch.bytes, &acks, &describe)
}

/// Install `ruleset` atomically, in the calling thread's namespace.
pub(crate) fn apply(ruleset: &Ruleset) -> Result<(), NlError> {
    let mut n = 0u32;
    let mut seq = || {
        n += 1;
        n
    };
    send(encode_batch(ruleset, &mut seq))
}

/// Delete the table `name` in the calling thread's namespace.
pub(crate) fn delete_table(name: &str) -> Result<(), NlError> {
    let mut n = 0u32;
    let mut seq = || {
        n += 1;
        n
    };
    send(encode_delete(name, &mut seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::addr::{AddressPlan, Instance};
    use crate::policy::Policy;

    fn debug(rule: &Rule) -> Vec<String> {
        compile(rule).iter().map(|e| e.to_string()).collect()
    }

    /// Expected lines are what `nft --debug=netlink` printed for the same
    /// rules written in nft syntax (Linux 6.x, x86_64).
    #[test]
    fn compiles_like_nft_does() {
        let plan = AddressPlan::new(Instance(0));
        let web = Ruleset::for_policy(Policy::WebReject, &plan);
        let fwd = &web.chains[0].rules;
        assert_eq!(
            debug(&fwd[0]),
            [
                "[ ct load state => reg 1 ]",
                "[ bitwise reg 1 = ( reg 1 & 0x00000006 ) ^ 0x00000000 ]",
                "[ cmp neq reg 1 0x00000000 ]",
                "[ immediate reg 0 accept ]",
            ]
        );
        assert_eq!(
            debug(&fwd[1]),
            [
                "[ meta load iifname => reg 1 ]",
                "[ cmp eq reg 1 0x006e616c 0x00000000 0x00000000 0x00000000 ]",
                "[ meta load oifname => reg 1 ]",
                "[ cmp eq reg 1 0x006e6177 0x00000000 0x00000000 0x00000000 ]",
                "[ meta load l4proto => reg 1 ]",
                "[ cmp eq reg 1 0x00000006 ]",
                "[ payload load 2b @ transport header + 2 => reg 1 ]",
                "[ cmp eq reg 1 0x00005000 ]",
                "[ immediate reg 0 accept ]",
            ]
        );
        assert_eq!(
            debug(&fwd[3]),
            [
                "[ meta load iifname => reg 1 ]",
                "[ cmp eq reg 1 0x006e616c 0x00000000 0x00000000 0x00000000 ]",
                "[ meta load l4proto => reg 1 ]",
                "[ cmp eq reg 1 0x00000006 ]",
                "[ reject type 1 code 0 ]",
            ]
        );
        assert_eq!(
            debug(&fwd[4]),
            [
                "[ meta load iifname => reg 1 ]",
                "[ cmp eq reg 1 0x006e616c 0x00000000 0x00000000 0x00000000 ]",
                "[ reject type 0 code 3 ]",
            ]
        );
        let intercept = Ruleset::for_policy(Policy::Intercept, &plan);
        assert_eq!(
            debug(&intercept.chains[1].rules[0])[6..],
            [
                "[ immediate reg 1 0x010012c6 ]",
                "[ immediate reg 2 0x0000901f ]",
                "[ nat dnat ip addr_min reg 1 addr_max reg 1 proto_min reg 2 proto_max reg 2 flags 0x3 ]",
            ]
        );
    }

    /// Walk a message's attributes: (type without flags, nested?, value).
    fn attrs(mut b: &[u8]) -> Vec<(u16, bool, Vec<u8>)> {
        let mut out = Vec::new();
        while b.len() >= 4 {
            let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
            let ty = u16::from_ne_bytes([b[2], b[3]]);
            assert!(
                len >= 4 && len <= b.len(),
                "attribute length {len} in {} bytes",
                b.len()
            );
            out.push((ty & 0x3fff, ty & NLA_F_NESTED != 0, b[4..len].to_vec()));
            b = &b[((len + 3) & !3).min(b.len())..];
        }
        out
    }

    #[test]
    fn a_batch_is_begin_table_chains_rules_end_with_consistent_lengths() {
        let plan = AddressPlan::new(Instance(0));
        let rs = Ruleset::for_policy(Policy::Intercept, &plan);
        let mut n = 100;
        let batch = encode_batch(&rs, &mut || {
            n += 1;
            n
        });
        // table + 2 chains + 2 forward rules + 1 nat rule
        assert_eq!(batch.msgs.len(), 1 + 2 + rs.rule_count());
        let mut b = &batch.bytes[..];
        let mut types = Vec::new();
        while !b.is_empty() {
            let len = u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            let ty = u16::from_ne_bytes([b[4], b[5]]);
            types.push(ty);
            let body = &b[20..len];
            if ty == nft_type(NFT_MSG_NEWRULE) {
                let a = attrs(body);
                assert_eq!(a[0], (NFTA_RULE_TABLE, false, b"onedoor-lab\0".to_vec()));
                assert_eq!(a[2].0, NFTA_RULE_EXPRESSIONS);
                assert!(a[2].1);
                for (ty, nested, elem) in attrs(&a[2].2) {
                    assert_eq!((ty, nested), (NFTA_LIST_ELEM, true));
                    let e = attrs(&elem);
                    assert_eq!(e[0].0, NFTA_EXPR_NAME);
                    assert_eq!(e[1].0, NFTA_EXPR_DATA);
                    attrs(&e[1].2);
                }
                let udata = &a[3];
                assert_eq!(udata.0, NFTA_RULE_USERDATA);
                assert_eq!(udata.2[0], UDATA_RULE_COMMENT);
                assert_eq!(udata.2[1] as usize, udata.2.len() - 2);
            }
            b = &b[len..];
        }
        let new_rule = nft_type(NFT_MSG_NEWRULE);
        let new_chain = nft_type(NFT_MSG_NEWCHAIN);
        assert_eq!(
            types,
            [
                NFNL_MSG_BATCH_BEGIN,
                nft_type(NFT_MSG_NEWTABLE),
                new_chain,
                new_rule,
                new_rule,
                new_chain,
                new_rule,
                NFNL_MSG_BATCH_END
            ]
        );
    }
}
