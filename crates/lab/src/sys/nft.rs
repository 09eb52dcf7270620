//! The lab's [`Ruleset`] compiled into nf_tables expressions
//! ([`onedoor_sys::nft`]), installed and removed over netlink.
//!
//! Each match and action becomes the expressions `nft` itself would emit
//! for the same rule (checked against `nft --debug=netlink` below); the
//! table is family `ip`, made of base chains only.

use onedoor_sys::nft::{
    self, BaseChain, ChainType, CmpOp, CtKey, Expr, Family, Hook, MetaKey, Table, Verdict,
    CT_STATE_ESTABLISHED, CT_STATE_RELATED, REG_1, REG_2,
};
use onedoor_sys::nl::NlError;

use crate::plan::ruleset::{Action, ChainKind, ChainPolicy, Match, Rule, Ruleset};

const IFNAMSIZ: usize = 16;

/// Compile one rule into expressions.
pub(crate) fn compile(rule: &Rule) -> Vec<Expr> {
    let mut out = Vec::new();
    for m in &rule.matches {
        match m {
            Match::EstablishedOrRelated => {
                out.push(Expr::Ct {
                    key: CtKey::State,
                    dreg: REG_1,
                });
                out.push(Expr::Bitwise {
                    reg: REG_1,
                    mask: CT_STATE_ESTABLISHED | CT_STATE_RELATED,
                    xor: 0,
                });
                out.push(Expr::Cmp {
                    sreg: REG_1,
                    op: CmpOp::Neq,
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
                    op: CmpOp::Eq,
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
                    op: CmpOp::Eq,
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
                    op: CmpOp::Eq,
                    data: port.to_be_bytes().to_vec(),
                });
            }
        }
    }
    match rule.action {
        Action::Accept => out.push(Expr::Verdict(Verdict::Accept)),
        Action::Drop => out.push(Expr::Verdict(Verdict::Drop)),
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

/// The whole ruleset as one `ip` table.
pub(crate) fn table(ruleset: &Ruleset) -> Table {
    Table {
        family: Family::Ip,
        name: ruleset.table.clone(),
        flags: 0,
        sets: Vec::new(),
        chains: ruleset
            .chains
            .iter()
            .map(|c| nft::Chain {
                name: c.name.to_owned(),
                base: Some(BaseChain {
                    kind: match c.kind {
                        ChainKind::Filter => ChainType::Filter,
                        ChainKind::Nat => ChainType::Nat,
                    },
                    hook: match c.hook {
                        crate::plan::ruleset::Hook::Prerouting => Hook::Prerouting,
                        crate::plan::ruleset::Hook::Forward => Hook::Forward,
                    },
                    priority: c.priority,
                    policy: match c.policy {
                        ChainPolicy::Accept => Verdict::Accept,
                        ChainPolicy::Drop => Verdict::Drop,
                    },
                }),
                rules: c
                    .rules
                    .iter()
                    .map(|r| nft::Rule {
                        exprs: compile(r),
                        comment: r.comment.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Install `ruleset` atomically, in the calling thread's namespace.
pub(crate) fn apply(ruleset: &Ruleset) -> Result<(), NlError> {
    nft::apply(&table(ruleset))
}

/// Delete the lab's table `name` in the calling thread's namespace.
pub(crate) fn delete_table(name: &str) -> Result<(), NlError> {
    nft::delete_table(Family::Ip, name)
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

    #[test]
    fn every_policy_is_one_ip_table_of_base_chains() {
        let plan = AddressPlan::new(Instance(0));
        for policy in Policy::ALL {
            let rs = Ruleset::for_policy(policy, &plan);
            let t = table(&rs);
            assert_eq!(
                (t.family, t.name.as_str(), t.flags),
                (Family::Ip, "onedoor-lab", 0)
            );
            assert_eq!(t.chains.len(), rs.chains.len());
            assert!(t.chains.iter().all(|c| c.base.is_some()));
            let rules: usize = t.chains.iter().map(|c| c.rules.len()).sum();
            assert_eq!(rules, rs.rule_count());
        }
    }
}
