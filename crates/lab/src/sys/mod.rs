//! What the lab asks of Linux: named network namespaces, instance locks,
//! rtnetlink (links, addresses, routes) and nf_tables, all over system calls
//! and netlink sockets — no `ip`, no `nft`.

pub(crate) mod instance;
pub(crate) mod netns;
pub(crate) mod nft;
pub(crate) mod nl;
pub(crate) mod rtnl;
