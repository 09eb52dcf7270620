//! The probe reflector's port redirect: every listed door to one listener.
//!
//! `onedoor serve --reflect 'tcp:1-65535,udp:53,123,443,1194'` must answer
//! probe hellos on every one of those ports. Binding 65,535 sockets is
//! heavy and collides with the host's own servers; instead the reflector
//! installs one nf_tables table of its own that sends the listed doors to
//! one local listener, skipping the ports this host's servers already hold,
//! and the listener learns, per connection or datagram, which door the
//! client dialled.
//!
//! ## The table
//!
//! [`plan`] turns a [`RedirectSpec`] and the ports in use ([`InUse`]) into
//! a [`RedirectPlan`], and that into one `inet` table (IPv4 and IPv6) —
//! pure code, unit-tested without a kernel:
//!
//! ```text
//! table inet onedoor-reflect-PID-START-SERIAL {
//!     set tcp_ports { type inet_service; flags interval; elements = { 1-21, 23-442, 444-8999, 9001-65535 } }
//!     set udp_ports { type inet_service; flags interval; elements = { 53, 123, 1194 } }
//!     chain nat { type nat hook prerouting priority dstnat; policy accept;
//!         iif != "lo" meta l4proto tcp th dport @tcp_ports fib daddr type local redirect to :9000 }
//!     chain divert { type filter hook prerouting priority mangle; policy accept;
//!         iif != "lo" meta l4proto udp th dport @udp_ports fib daddr type local ct direction original tproxy to :9000 accept }
//! }
//! ```
//!
//! One rule per protocol over an interval set, so all 65,535 doors cost two
//! set elements, not 65,535 rules, and the kernel matches a port in
//! O(log n). Only packets from other hosts (`iif != "lo"`) to an address of
//! this host (`fib daddr type local`) are touched: the host's own traffic
//! and, on a router, forwarded traffic go on as before.
//!
//! ## Ports in use
//!
//! The ports of this namespace's listening TCP sockets and bound,
//! unconnected UDP sockets — asked of the kernel with `sock_diag`, or read
//! from `/proc/thread-self/net/*` where that is missing (see `sockets`) —
//! are left out of the sets, and so is the listener's own port: a door
//! held by sshd on 22 still reaches sshd. A socket bound only to a loopback
//! address does not hold a door (it never sees traffic from outside, which
//! is all the redirect takes). A server that starts after the redirect is
//! installed finds its port taken until [`Redirect::refresh`] runs (serve
//! may call it periodically); it replaces the sets atomically.
//!
//! ## TCP: which door was dialled
//!
//! [`TcpMode::Redirect`] (the default) rewrites the destination of each
//! new connection to the listener (NAT). Conntrack keeps the connection's
//! original tuple, and [`tcp_dialled`] reads its destination back with
//! `getsockopt(SO_ORIGINAL_DST)` / `IP6T_SO_ORIGINAL_DST` — the same
//! mechanism that serves DNAT. The listener needs nothing special.
//! One subtlety of NAT: two connections from the same client address *and
//! port* to two doors map to the same reply tuple; Linux resolves that
//! clash by giving the second one another source port on the server's
//! side (seen in this crate's tests), so the peer port the listener sees
//! is not always the client's.
//!
//! [`TcpMode::Tproxy`] does without NAT: `tproxy` hands the packets,
//! unchanged, to a transparent listener ([`prepare_transparent`]), and the
//! accepted socket's own local address is the dialled door
//! ([`tcp_dialled`] covers both).
//!
//! ## UDP: which door was dialled — `tproxy`, not conntrack
//!
//! `IP_RECVORIGDSTADDR` reports a datagram's original destination only
//! when nothing rewrote it, i.e. behind `tproxy`, not `redirect`. The two
//! ways out were `tproxy`, or `redirect` plus a conntrack lookup over
//! ctnetlink keyed by the reply tuple. UDP uses `tproxy`:
//! - the door comes with the datagram itself ([`recv_dialled`]: one
//!   `recvmsg`), where conntrack would cost a netlink round trip per
//!   datagram;
//! - ctnetlink wants `CAP_NET_ADMIN` for every query, which serve no longer
//!   has after `--user`; `IP_TRANSPARENT` is needed once, when the
//!   listener is set up ([`prepare_udp_listener`]), and the socket keeps it;
//! - no NAT, no clash: a prober may send to every UDP door from one socket
//!   (one source port), which under `redirect` would make all those flows
//!   share one reply tuple;
//! - `ct direction original`: a reply to a flow this host started (an
//!   answer to its own DNS query from an unconnected socket, say) is never
//!   diverted.
//!
//! Its cost: `tproxy` does not rewrite, so there is no NAT to undo on the
//! way back; an answer must leave from the dialled door itself —
//! [`send_from`] binds a short-lived socket to it (ports below 1024 need
//! `CAP_NET_BIND_SERVICE`). No policy routing is needed (no
//! `ip rule fwmark … lookup` to a local route table): the packets are
//! addressed to this host already, so routing delivers them locally and the
//! socket `tproxy` assigned receives them — the tests prove it.
//!
//! ## Removal, and crash recovery
//!
//! Dropping the [`Redirect`] deletes its table. Beyond that, the table is
//! created with the kernel's owner flag ([`Ownership::Kernel`],
//! `NFT_TABLE_F_OWNER`, Linux ≥ 5.12): it belongs to the netlink socket
//! the [`Redirect`] holds, and the kernel deletes it when that socket
//! closes — also when the process is killed, and also when it had dropped
//! the privileges to delete it itself. Older kernels get a plain table:
//! its name records the owner's pid and start time ([`Owner`]), and the
//! next [`Redirect::install`] (or [`clean_leftovers`]) deletes every
//! reflector table whose owner is gone.
//!
//! ## Example
//!
//! ```no_run
//! # #[cfg(target_os = "linux")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use onedoor_sys::reflect::{self, PortRanges, Redirect, RedirectSpec};
//!
//! let tcp = std::net::TcpListener::bind("0.0.0.0:9000")?;
//! let udp = std::net::UdpSocket::bind("0.0.0.0:9000")?;
//! reflect::prepare_udp_listener(&udp)?; // needs CAP_NET_ADMIN
//! let spec = RedirectSpec::new(9000)
//!     .tcp(PortRanges::all())
//!     .udp("53,123,443,1194".parse()?);
//! let redirect = Redirect::install(&spec)?; // needs CAP_NET_ADMIN
//! eprintln!("skipping TCP ports in use: {:?}", redirect.plan().skipped_tcp);
//!
//! let (conn, _) = tcp.accept()?;
//! let door = reflect::tcp_dialled(&conn)?.port();
//! let mut buf = [0u8; 1500];
//! let d = reflect::recv_dialled(&udp, &mut buf)?;
//! reflect::send_from(d.dialled, d.from, &buf[..d.len])?;
//! drop(redirect); // the table is gone
//! # let _ = door;
//! # Ok(())
//! # }
//! # #[cfg(not(target_os = "linux"))]
//! # fn main() {}
//! ```

mod plan;
mod ports;

pub use plan::{
    plan, InUse, Owner, RedirectPlan, RedirectSpec, TcpMode, NAT_CHAIN, TABLE_PREFIX, TCP_SET,
    TPROXY_CHAIN, UDP_SET,
};
pub use ports::{PortRanges, PortRangesError};

#[cfg(target_os = "linux")]
mod dialled;
#[cfg(target_os = "linux")]
mod install;

#[cfg(target_os = "linux")]
pub use dialled::{
    canonical, prepare_transparent, prepare_udp_listener, recv_dialled, send_from, tcp_dialled,
    Datagram,
};
#[cfg(target_os = "linux")]
pub use install::{clean_leftovers, in_use, Ownership, Redirect, RedirectError};
