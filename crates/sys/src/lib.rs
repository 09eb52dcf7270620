//! # onedoor-sys — what onedoor asks of the Linux kernel
//!
//! System code shared by `onedoor-lab` and `onedoor-net`, with no product
//! logic of theirs: it speaks netlink and system calls itself — no `ip`,
//! no `nft`, no `ss`.
//!
//! - [`nft`]: nf_tables tables, sets, chains and rules as pure data,
//!   encoded into netlink batches (everywhere), sent and listed (Linux).
//! - [`reflect`]: the probe reflector's port redirect — the pure plan
//!   (requested ranges minus ports in use → one nf_tables table), and on
//!   Linux its installation with removal on drop and crash recovery, and
//!   how a listener learns the port a client dialled behind it.
//! - `nl` (Linux): a blocking netlink socket with bounded waits.
//! - `rtnl` (Linux): links, addresses and routes over rtnetlink.
//! - `netns` (Linux): named network namespaces, and running code inside.
//! - `sockets` (Linux): which ports this host's sockets hold, from
//!   `sock_diag` (or `/proc/net`).
//!
//! Everything on Linux acts in the network namespace of the calling
//! thread, so callers (and tests) choose the namespace by choosing the
//! thread ([`netns::Netns::run`]).

pub mod nft;
pub mod reflect;

#[cfg(target_os = "linux")]
pub mod netns;
#[cfg(target_os = "linux")]
pub mod nl;
#[cfg(target_os = "linux")]
pub mod rtnl;
#[cfg(target_os = "linux")]
pub mod sockets;
