//! The model to bytes: nf_tables netlink messages in a batch, and the
//! parsing of a table listing. Pure: no socket here.

use super::{BaseChain, Chain, CmpOp, Expr, Family, Rule, Set, SetElem, Table, REG_VERDICT};

// Constants from <linux/netfilter/nfnetlink.h> and <linux/netfilter/nf_tables.h>.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_IPV4: u32 = 2;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_TABLE_OWNER: u16 = 7;
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
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_ID: u16 = 10;
const NFT_SET_INTERVAL: u32 = 0x4;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_SET_ELEM_USERDATA: u16 = 6;
const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
/// `NFTNL_UDATA_RULE_COMMENT`: how `nft` stores a rule's comment.
const UDATA_RULE_COMMENT: u8 = 0;
/// `NFTNL_UDATA_SET_ELEM_FLAGS` = `NFTNL_SET_ELEM_F_INTERVAL_OPEN`: how
/// `nft` marks an interval without an end.
const UDATA_ELEM_OPEN_INTERVAL: [u8; 6] = [1, 4, 1, 0, 0, 0];

/// Elements per set-element message: keeps its nested element list well
/// under the 64 KiB a netlink attribute can hold.
const ELEMS_PER_MSG: usize = 1024;

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
        let len = self.buf.len() - start;
        assert!(len <= usize::from(u16::MAX), "attribute of {len} bytes");
        self.buf[start..start + 2].copy_from_slice(&(len as u16).to_ne_bytes());
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
        Expr::Ct { .. } => "ct",
        Expr::Bitwise { .. } => "bitwise",
        Expr::Verdict(_) | Expr::Immediate { .. } => "immediate",
        Expr::Reject { .. } => "reject",
        Expr::Dnat { .. } => "nat",
        Expr::Lookup { .. } => "lookup",
        Expr::FibDaddrType { .. } => "fib",
        Expr::Redir { .. } => "redir",
        Expr::Tproxy { .. } => "tproxy",
    };
    m.nest(NFTA_LIST_ELEM);
    m.put_strz(NFTA_EXPR_NAME, name);
    m.nest(NFTA_EXPR_DATA);
    match e {
        Expr::Meta { key, dreg } => {
            m.put_be32(2, *key as u32); // NFTA_META_KEY
            m.put_be32(1, *dreg); // NFTA_META_DREG
        }
        Expr::Cmp { sreg, op, data } => {
            m.put_be32(1, *sreg); // NFTA_CMP_SREG
            m.put_be32(
                2,
                match op {
                    CmpOp::Eq => 0,
                    CmpOp::Neq => 1,
                },
            ); // NFTA_CMP_OP
            put_data_value(m, 3, data); // NFTA_CMP_DATA
        }
        Expr::TransportPayload { dreg, offset, len } => {
            m.put_be32(1, *dreg); // NFTA_PAYLOAD_DREG
            m.put_be32(2, 2); // NFTA_PAYLOAD_BASE: transport header
            m.put_be32(3, *offset); // NFTA_PAYLOAD_OFFSET
            m.put_be32(4, *len); // NFTA_PAYLOAD_LEN
        }
        Expr::Ct { key, dreg } => {
            m.put_be32(2, *key as u32); // NFTA_CT_KEY
            m.put_be32(1, *dreg); // NFTA_CT_DREG
        }
        Expr::Bitwise { reg, mask, xor } => {
            m.put_be32(1, *reg); // NFTA_BITWISE_SREG
            m.put_be32(2, *reg); // NFTA_BITWISE_DREG
            m.put_be32(3, 4); // NFTA_BITWISE_LEN
            put_data_value(m, 4, &mask.to_ne_bytes()); // NFTA_BITWISE_MASK
            put_data_value(m, 5, &xor.to_ne_bytes()); // NFTA_BITWISE_XOR
        }
        Expr::Verdict(v) => {
            m.put_be32(1, REG_VERDICT); // NFTA_IMMEDIATE_DREG
            m.nest(2); // NFTA_IMMEDIATE_DATA
            m.nest(NFTA_DATA_VERDICT);
            m.put_be32(NFTA_VERDICT_CODE, *v as u32);
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
            m.put_be32(2, NFPROTO_IPV4); // NFTA_NAT_FAMILY
            m.put_be32(3, *addr); // NFTA_NAT_REG_ADDR_MIN
            m.put_be32(4, *addr); // NFTA_NAT_REG_ADDR_MAX
            m.put_be32(5, *port); // NFTA_NAT_REG_PROTO_MIN
            m.put_be32(6, *port); // NFTA_NAT_REG_PROTO_MAX
                                  // NFTA_NAT_FLAGS: NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED
            m.put_be32(7, 0x3);
        }
        Expr::Lookup { set, set_id, sreg } => {
            m.put_strz(1, set); // NFTA_LOOKUP_SET
            m.put_be32(2, *sreg); // NFTA_LOOKUP_SREG
            m.put_be32(4, *set_id); // NFTA_LOOKUP_SET_ID
        }
        Expr::FibDaddrType { dreg } => {
            m.put_be32(3, 0x2); // NFTA_FIB_FLAGS: NFTA_FIB_F_DADDR
            m.put_be32(2, 3); // NFTA_FIB_RESULT: NFT_FIB_RESULT_ADDRTYPE
            m.put_be32(1, *dreg); // NFTA_FIB_DREG
        }
        Expr::Redir { port } => {
            m.put_be32(1, *port); // NFTA_REDIR_REG_PROTO_MIN
            m.put_be32(3, 0x2); // NFTA_REDIR_FLAGS: NF_NAT_RANGE_PROTO_SPECIFIED
        }
        Expr::Tproxy { port } => {
            m.put_be32(1, 0); // NFTA_TPROXY_FAMILY: NFPROTO_UNSPEC, the packet's
            m.put_be32(3, *port); // NFTA_TPROXY_REG_PORT
        }
    }
    m.end();
    m.end();
}

/// One message of a batch, with what it does in words (for errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMsg {
    /// Its sequence number.
    pub seq: u32,
    /// What it does, e.g. "adding rule 2 of chain forward".
    pub what: String,
}

/// An nf_tables batch under construction: the kernel applies all of its
/// messages or none.
#[derive(Debug)]
pub struct Batch {
    bytes: Vec<u8>,
    msgs: Vec<BatchMsg>,
    seq: u32,
}

/// A finished batch: the bytes to send, and the messages that must be
/// acknowledged.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    /// Begin marker, messages, end marker.
    pub bytes: Vec<u8>,
    /// The messages inside, in order.
    pub msgs: Vec<BatchMsg>,
    /// The first sequence number the batch did not use.
    pub next_seq: u32,
}

impl EncodedBatch {
    /// What the message with sequence number `seq` does (for errors).
    pub fn describe(&self, seq: u32) -> String {
        self.msgs
            .iter()
            .find(|m| m.seq == seq)
            .map(|m| m.what.clone())
            .unwrap_or_else(|| "starting an nf_tables batch".into())
    }
}

const fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

fn batch_marker(ty: u16, seq: u32) -> Vec<u8> {
    MsgBuf::new(ty, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES).finish()
}

impl Batch {
    /// A new batch whose messages are numbered from `first_seq` on.
    pub fn new(first_seq: u32) -> Batch {
        let mut b = Batch {
            bytes: Vec::new(),
            msgs: Vec::new(),
            seq: first_seq,
        };
        let s = b.take_seq();
        b.bytes = batch_marker(NFNL_MSG_BATCH_BEGIN, s);
        b
    }

    fn take_seq(&mut self) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        s
    }

    fn msg(&mut self, ty: u16, flags: u16, family: Family) -> MsgBuf {
        let s = self.take_seq();
        MsgBuf::new(
            nft_type(ty),
            NLM_F_REQUEST | NLM_F_ACK | flags,
            s,
            family.number(),
            0,
        )
    }

    fn push(&mut self, m: MsgBuf, what: String) {
        let seq = u32::from_ne_bytes(m.buf[8..12].try_into().unwrap());
        self.bytes.extend(m.finish());
        self.msgs.push(BatchMsg { seq, what });
    }

    /// Create `table` with its sets (and their elements), chains and rules.
    pub fn add_table(&mut self, table: &Table) {
        let mut m = self.msg(NFT_MSG_NEWTABLE, NLM_F_CREATE, table.family);
        m.put_strz(NFTA_TABLE_NAME, &table.name);
        m.put_be32(NFTA_TABLE_FLAGS, table.flags);
        self.push(m, format!("adding table {} {}", table.family, table.name));
        for set in &table.sets {
            self.add_set(table, set);
        }
        for chain in &table.chains {
            self.add_chain(table, chain);
        }
    }

    fn add_set(&mut self, table: &Table, set: &Set) {
        let mut m = self.msg(NFT_MSG_NEWSET, NLM_F_CREATE, table.family);
        m.put_strz(NFTA_SET_TABLE, &table.name);
        m.put_strz(NFTA_SET_NAME, &set.name);
        m.put_be32(
            NFTA_SET_FLAGS,
            if set.interval { NFT_SET_INTERVAL } else { 0 },
        );
        m.put_be32(NFTA_SET_KEY_TYPE, set.key_type);
        m.put_be32(NFTA_SET_KEY_LEN, set.key_len);
        m.put_be32(NFTA_SET_ID, set.id);
        self.push(m, format!("adding set {}", set.name));
        self.add_elements(table.family, &table.name, set);
    }

    /// Add `set`'s elements to the set of that name in `table` (created in
    /// this batch or before), in as many messages as they need.
    pub fn add_elements(&mut self, family: Family, table: &str, set: &Set) {
        for (i, chunk) in set.elements.chunks(ELEMS_PER_MSG).enumerate() {
            let mut m = self.msg(NFT_MSG_NEWSETELEM, NLM_F_CREATE, family);
            m.put_strz(NFTA_SET_ELEM_LIST_TABLE, table);
            m.put_strz(NFTA_SET_ELEM_LIST_SET, &set.name);
            m.put_be32(NFTA_SET_ELEM_LIST_SET_ID, set.id);
            m.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
            for e in chunk {
                encode_elem(&mut m, e);
            }
            m.end();
            let first = i * ELEMS_PER_MSG;
            self.push(
                m,
                format!(
                    "adding elements {}..{} of set {}",
                    first + 1,
                    first + chunk.len(),
                    set.name
                ),
            );
        }
    }

    /// Remove every element of the set `set` of `table` (`nft flush set`).
    pub fn flush_set(&mut self, family: Family, table: &str, set: &str) {
        let mut m = self.msg(NFT_MSG_DELSETELEM, 0, family);
        m.put_strz(NFTA_SET_ELEM_LIST_TABLE, table);
        m.put_strz(NFTA_SET_ELEM_LIST_SET, set);
        self.push(m, format!("flushing set {set}"));
    }

    fn add_chain(&mut self, table: &Table, chain: &Chain) {
        let mut m = self.msg(NFT_MSG_NEWCHAIN, NLM_F_CREATE, table.family);
        m.put_strz(NFTA_CHAIN_TABLE, &table.name);
        m.put_strz(NFTA_CHAIN_NAME, &chain.name);
        if let Some(BaseChain {
            kind,
            hook,
            priority,
            policy,
        }) = chain.base
        {
            m.nest(NFTA_CHAIN_HOOK);
            m.put_be32(NFTA_HOOK_HOOKNUM, hook as u32);
            m.put_be32(NFTA_HOOK_PRIORITY, priority as u32);
            m.end();
            m.put_be32(NFTA_CHAIN_POLICY, policy as u32);
            m.put_strz(NFTA_CHAIN_TYPE, kind.name());
        }
        self.push(m, format!("adding chain {}", chain.name));
        for (i, rule) in chain.rules.iter().enumerate() {
            self.add_rule(table, chain, i, rule);
        }
    }

    fn add_rule(&mut self, table: &Table, chain: &Chain, index: usize, rule: &Rule) {
        let mut m = self.msg(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, table.family);
        m.put_strz(NFTA_RULE_TABLE, &table.name);
        m.put_strz(NFTA_RULE_CHAIN, &chain.name);
        m.nest(NFTA_RULE_EXPRESSIONS);
        for e in &rule.exprs {
            encode_expr(&mut m, e);
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
        let what = if rule.comment.is_empty() {
            format!("adding rule {} of chain {}", index + 1, chain.name)
        } else {
            format!(
                "adding rule {} of chain {} ({})",
                index + 1,
                chain.name,
                rule.comment
            )
        };
        self.push(m, what);
    }

    /// Delete the table `name` of `family`, with everything in it.
    pub fn delete_table(&mut self, family: Family, name: &str) {
        let mut m = self.msg(NFT_MSG_DELTABLE, 0, family);
        m.put_strz(NFTA_TABLE_NAME, name);
        self.push(m, format!("deleting table {family} {name}"));
    }

    /// Close the batch.
    pub fn finish(mut self) -> EncodedBatch {
        let s = self.take_seq();
        self.bytes.extend(batch_marker(NFNL_MSG_BATCH_END, s));
        EncodedBatch {
            bytes: self.bytes,
            msgs: self.msgs,
            next_seq: self.seq,
        }
    }
}

fn encode_elem(m: &mut MsgBuf, e: &SetElem) {
    m.nest(NFTA_LIST_ELEM);
    if e.interval_end {
        m.put_be32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
    }
    put_data_value(m, NFTA_SET_ELEM_KEY, &e.key);
    if e.open {
        m.put(NFTA_SET_ELEM_USERDATA, &UDATA_ELEM_OPEN_INTERVAL);
    }
    m.end();
}

/// A dump request for the tables of `family` (`None`: every family).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn list_tables_request(family: Option<Family>, seq: u32) -> Vec<u8> {
    MsgBuf::new(
        nft_type(NFT_MSG_GETTABLE),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        family.map_or(0, Family::number),
        0,
    )
    .finish()
}

/// A table as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// Its family (`None`: one onedoor does not use, e.g. `arp`).
    pub family: Option<Family>,
    /// Its name.
    pub name: String,
    /// Its `NFT_TABLE_F_*` flags.
    pub flags: u32,
    /// The netlink port id of the socket that owns it, for a table made
    /// with [`super::TABLE_F_OWNER`].
    pub owner: Option<u32>,
}

/// Parse one `NFT_MSG_NEWTABLE` message of a table dump.
pub fn parse_table_info(msg: &[u8]) -> Option<TableInfo> {
    if msg.len() < NLMSG_HDRLEN + NFGENMSG_LEN {
        return None;
    }
    let ty = u16::from_ne_bytes([msg[4], msg[5]]);
    if ty != nft_type(NFT_MSG_NEWTABLE) {
        return None;
    }
    let family = Family::from_number(msg[NLMSG_HDRLEN]);
    let mut name = None;
    let mut flags = 0;
    let mut owner = None;
    let mut rest = &msg[NLMSG_HDRLEN + NFGENMSG_LEN..];
    while rest.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let ty = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            break;
        }
        let value = &rest[4..len];
        let be32 = || {
            value
                .get(..4)
                .map(|v| u32::from_be_bytes(v.try_into().unwrap()))
        };
        match ty {
            NFTA_TABLE_NAME => {
                let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
                name = String::from_utf8(value[..end].to_vec()).ok();
            }
            NFTA_TABLE_FLAGS => flags = be32().unwrap_or(0),
            NFTA_TABLE_OWNER => owner = be32(),
            _ => {}
        }
        rest = &rest[((len + 3) & !3).min(rest.len())..];
    }
    Some(TableInfo {
        family,
        name: name?,
        flags,
        owner,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::{
        ChainType, CtKey, Hook, MetaKey, Verdict, CT_STATE_ESTABLISHED, CT_STATE_RELATED, REG_1,
        TABLE_F_OWNER,
    };

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

    /// (type, sequence number, body after nfgenmsg) of each message.
    fn messages(mut b: &[u8]) -> Vec<(u16, u32, Vec<u8>)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let len = u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            let ty = u16::from_ne_bytes([b[4], b[5]]);
            let seq = u32::from_ne_bytes(b[8..12].try_into().unwrap());
            out.push((ty, seq, b[20..len].to_vec()));
            b = &b[len..];
        }
        out
    }

    fn sample() -> Table {
        let rule = Rule {
            exprs: vec![
                Expr::Ct {
                    key: CtKey::State,
                    dreg: REG_1,
                },
                Expr::Bitwise {
                    reg: REG_1,
                    mask: CT_STATE_ESTABLISHED | CT_STATE_RELATED,
                    xor: 0,
                },
                Expr::Cmp {
                    sreg: REG_1,
                    op: CmpOp::Neq,
                    data: 0u32.to_ne_bytes().to_vec(),
                },
                Expr::Meta {
                    key: MetaKey::L4Proto,
                    dreg: REG_1,
                },
                Expr::TransportPayload {
                    dreg: REG_1,
                    offset: 2,
                    len: 2,
                },
                Expr::Lookup {
                    set: "ports".into(),
                    set_id: 7,
                    sreg: REG_1,
                },
                Expr::Verdict(Verdict::Accept),
            ],
            comment: "replies".into(),
        };
        Table {
            family: Family::Inet,
            name: "t".into(),
            flags: TABLE_F_OWNER,
            sets: vec![Set::ports("ports", 7, &[(10, 20), (30, 65535)])],
            chains: vec![Chain {
                name: "c".into(),
                base: Some(BaseChain {
                    kind: ChainType::Filter,
                    hook: Hook::Prerouting,
                    priority: -150,
                    policy: Verdict::Accept,
                }),
                rules: vec![rule.clone(), rule],
            }],
        }
    }

    #[test]
    fn a_batch_is_begin_table_sets_chains_rules_end_with_consistent_lengths() {
        let mut b = Batch::new(101);
        b.add_table(&sample());
        let batch = b.finish();
        // table + set + elements + chain + 2 rules
        assert_eq!(batch.msgs.len(), 6);
        assert_eq!(batch.next_seq, 101 + 8);
        let msgs = messages(&batch.bytes);
        let types: Vec<u16> = msgs.iter().map(|m| m.0).collect();
        assert_eq!(
            types,
            [
                NFNL_MSG_BATCH_BEGIN,
                nft_type(NFT_MSG_NEWTABLE),
                nft_type(NFT_MSG_NEWSET),
                nft_type(NFT_MSG_NEWSETELEM),
                nft_type(NFT_MSG_NEWCHAIN),
                nft_type(NFT_MSG_NEWRULE),
                nft_type(NFT_MSG_NEWRULE),
                NFNL_MSG_BATCH_END
            ]
        );
        let seqs: Vec<u32> = msgs.iter().map(|m| m.1).collect();
        assert_eq!(seqs, (101..109).collect::<Vec<_>>());
        for (ty, _, body) in &msgs {
            let a = attrs(body);
            if *ty == nft_type(NFT_MSG_NEWTABLE) {
                assert_eq!(a[0], (NFTA_TABLE_NAME, false, b"t\0".to_vec()));
                assert_eq!(
                    a[1],
                    (
                        NFTA_TABLE_FLAGS,
                        false,
                        TABLE_F_OWNER.to_be_bytes().to_vec()
                    )
                );
            }
            if *ty == nft_type(NFT_MSG_NEWSETELEM) {
                let elems = attrs(&a[3].2);
                // 0 end, 10, 21 end, 30 (open)
                assert_eq!(elems.len(), 4);
                let last = attrs(&elems[3].2);
                assert_eq!(last[1].0, NFTA_SET_ELEM_USERDATA);
                let first = attrs(&elems[0].2);
                assert_eq!(first[0], (NFTA_SET_ELEM_FLAGS, false, vec![0, 0, 0, 1]));
            }
            if *ty == nft_type(NFT_MSG_NEWRULE) {
                assert_eq!(a[0], (NFTA_RULE_TABLE, false, b"t\0".to_vec()));
                assert_eq!(a[2].0, NFTA_RULE_EXPRESSIONS);
                assert!(a[2].1);
                let exprs = attrs(&a[2].2);
                assert_eq!(exprs.len(), 7);
                for (ty, nested, elem) in exprs {
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
        }
        assert_eq!(batch.describe(106), "adding rule 1 of chain c (replies)");
    }

    #[test]
    fn many_elements_are_split_over_messages_under_the_attribute_limit() {
        // Every other port: 32,768 ranges, 65,536 elements.
        let ranges: Vec<(u16, u16)> = (0..32768u32)
            .map(|i| ((i * 2 + 1) as u16, (i * 2 + 1) as u16))
            .collect();
        let set = Set::ports("odd", 1, &ranges);
        let mut b = Batch::new(1);
        b.add_elements(Family::Inet, "t", &set);
        b.flush_set(Family::Inet, "t", "odd");
        let batch = b.finish();
        let n = set.elements.len().div_ceil(ELEMS_PER_MSG);
        assert_eq!(batch.msgs.len(), n + 1);
        let mut total = 0;
        for (ty, _, body) in messages(&batch.bytes) {
            if ty == nft_type(NFT_MSG_NEWSETELEM) {
                total += attrs(&attrs(&body)[3].2).len();
            }
            if ty == nft_type(NFT_MSG_DELSETELEM) {
                // table and set only: the whole set
                assert_eq!(attrs(&body).len(), 2);
            }
        }
        assert_eq!(total, set.elements.len());
    }

    #[test]
    fn table_listings_are_parsed() {
        let mut m = MsgBuf::new(nft_type(NFT_MSG_NEWTABLE), 0x2, 9, 1, 0);
        m.put_strz(NFTA_TABLE_NAME, "onedoor-reflect-1-2");
        m.put_be32(NFTA_TABLE_FLAGS, TABLE_F_OWNER);
        m.put_be32(3, 2); // use
        m.put(4, &7u64.to_be_bytes()); // handle
        m.put_be32(NFTA_TABLE_OWNER, 4242);
        let info = parse_table_info(&m.finish()).unwrap();
        assert_eq!(
            info,
            TableInfo {
                family: Some(Family::Inet),
                name: "onedoor-reflect-1-2".into(),
                flags: TABLE_F_OWNER,
                owner: Some(4242),
            }
        );
        let mut m = MsgBuf::new(nft_type(NFT_MSG_NEWTABLE), 0x2, 9, 3, 0);
        m.put_strz(NFTA_TABLE_NAME, "arp-table");
        let info = parse_table_info(&m.finish()).unwrap();
        assert_eq!((info.family, info.owner), (None, None));
        assert!(parse_table_info(&[0; 10]).is_none());
        let chain = MsgBuf::new(nft_type(NFT_MSG_NEWCHAIN), 0, 1, 1, 0).finish();
        assert!(parse_table_info(&chain).is_none());
    }
}
