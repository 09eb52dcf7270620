//! Links, addresses and routes over rtnetlink (`NETLINK_ROUTE`), with the
//! message types of `netlink-packet-route`, on a blocking socket.
//!
//! An [`Rtnl`] acts on the namespace of the thread that opened it, so
//! callers open one per namespace from inside [`crate::netns::Netns::run`].

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::nl::{Netlink, NlError};

/// An rtnetlink socket in one namespace.
pub struct Rtnl {
    nl: Netlink,
}

impl Rtnl {
    /// Open a socket in the calling thread's namespace.
    pub fn open() -> Result<Rtnl, NlError> {
        Netlink::open(netlink_sys::protocols::NETLINK_ROUTE)
            .map(|nl| Rtnl { nl })
            .map_err(|e| NlError {
                what: "opening an rtnetlink socket".into(),
                source: e,
            })
    }

    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: String,
    ) -> Result<(), NlError> {
        let seq = self.nl.next_seq();
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.nl.transact(&buf, &[seq], &|_| what.clone())
    }

    /// Create a veth pair: `name` here, `peer` in the namespace `peer_ns`.
    pub fn add_veth(
        &mut self,
        name: &str,
        peer: &str,
        peer_ns: BorrowedFd<'_>,
    ) -> Result<(), NlError> {
        let mut peer_msg = LinkMessage::default();
        peer_msg.attributes = vec![
            LinkAttribute::IfName(peer.to_owned()),
            LinkAttribute::NetNsFd(peer_ns.as_raw_fd()),
        ];
        let mut msg = LinkMessage::default();
        msg.attributes = vec![
            LinkAttribute::IfName(name.to_owned()),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
            ]),
        ];
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            format!("creating the veth pair {name} / {peer}"),
        )
    }

    /// Bring the link `name` up.
    pub fn set_up(&mut self, name: &str) -> Result<(), NlError> {
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes = vec![LinkAttribute::IfName(name.to_owned())];
        self.request(
            RouteNetlinkMessage::SetLink(msg),
            0,
            format!("bringing {name} up"),
        )
    }

    /// Is the link `name` running (`IFF_RUNNING`: up, with carrier, and its
    /// queueing discipline active)? Until it is, packets sent on it are
    /// dropped.
    pub fn is_running(&mut self, name: &str) -> Result<bool, NlError> {
        let what = format!("reading the state of {name}");
        let seq = self.nl.next_seq();
        let mut msg = LinkMessage::default();
        msg.attributes = vec![LinkAttribute::IfName(name.to_owned())];
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(
            header,
            NetlinkPayload::from(RouteNetlinkMessage::GetLink(msg)),
        );
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        let reply = self.nl.query(&buf, seq, &what)?;
        let bad = |e: String| NlError {
            what: what.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        };
        let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply)
            .map_err(|e| bad(e.to_string()))?;
        match parsed.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                Ok(link.header.flags.contains(LinkFlags::Running))
            }
            other => Err(bad(format!("unexpected answer {other:?}"))),
        }
    }

    /// Wait, bounded, until every link in `names` is running.
    pub fn wait_running(
        &mut self,
        names: &[&str],
        bound: std::time::Duration,
    ) -> Result<(), NlError> {
        let deadline = std::time::Instant::now() + bound;
        for name in names {
            while !self.is_running(name)? {
                if std::time::Instant::now() > deadline {
                    return Err(NlError {
                        what: format!("waiting for {name} to come up"),
                        source: io::Error::from(io::ErrorKind::TimedOut),
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        Ok(())
    }

    /// Add `addr/prefix` to the link `name`.
    pub fn add_address(&mut self, name: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), NlError> {
        self.add_ip(name, IpAddr::V4(addr), prefix)
    }

    /// Add the IPv6 `addr/prefix` to the link `name`, usable at once: no
    /// duplicate address detection (`nodad`), which would keep it tentative
    /// for a second or more.
    pub fn add_address_v6(
        &mut self,
        name: &str,
        addr: Ipv6Addr,
        prefix: u8,
    ) -> Result<(), NlError> {
        self.add_ip(name, IpAddr::V6(addr), prefix)
    }

    fn add_ip(&mut self, name: &str, addr: IpAddr, prefix: u8) -> Result<(), NlError> {
        let what = format!("adding {addr}/{prefix} to {name}");
        let index = nix::net::if_::if_nametoindex(name).map_err(|e| NlError {
            what: what.clone(),
            source: io::Error::from(e),
        })?;
        let mut msg = AddressMessage::default();
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        match addr {
            IpAddr::V4(_) => {
                msg.header.family = AddressFamily::Inet;
                msg.attributes = vec![
                    AddressAttribute::Local(addr),
                    AddressAttribute::Address(addr),
                ];
            }
            IpAddr::V6(_) => {
                msg.header.family = AddressFamily::Inet6;
                msg.attributes = vec![
                    AddressAttribute::Address(addr),
                    AddressAttribute::Flags(AddressFlags::Nodad),
                ];
            }
        }
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            what,
        )
    }

    /// Add a route to `dst/prefix` (prefix 0: the default route) via `gateway`.
    pub fn add_route(
        &mut self,
        dst: Ipv4Addr,
        prefix: u8,
        gateway: Ipv4Addr,
    ) -> Result<(), NlError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.destination_prefix_length = prefix;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Static;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        if prefix > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
        }
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        let what = if prefix == 0 {
            format!("adding the default route via {gateway}")
        } else {
            format!("adding the route to {dst}/{prefix} via {gateway}")
        };
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            what,
        )
    }
}

/// Turn IPv4 forwarding on in the calling thread's namespace.
pub fn enable_forwarding() -> Result<(), NlError> {
    let path = "/proc/sys/net/ipv4/ip_forward";
    let err = |e: io::Error| NlError {
        what: "turning IPv4 forwarding on".into(),
        source: e,
    };
    // Opened by this thread, the file is this namespace's setting.
    std::fs::write(path, b"1\n").map_err(err)?;
    let now = std::fs::read_to_string(path).map_err(err)?;
    if now.trim() != "1" {
        return Err(err(io::Error::other(format!(
            "{path} reads {}",
            now.trim()
        ))));
    }
    Ok(())
}
