//! What the lab asks of Linux beyond `onedoor-sys` (namespaces, rtnetlink
//! and nf_tables over netlink): instance locks, and its egress ruleset
//! compiled into nf_tables expressions — no `ip`, no `nft`.

pub(crate) mod instance;
pub(crate) mod nft;
