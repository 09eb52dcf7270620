//! How the listener learns the address a client dialled, behind the
//! redirect; and how a UDP answer leaves from that address.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};
use socket2::{Domain, SockAddr, SockRef, Socket, Type};

/// `addr` with an IPv4-mapped IPv6 address (`[::ffff:a.b.c.d]:p`, as a
/// dual-stack socket shows IPv4 peers) written as plain IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

/// The address a client dialled, for a TCP connection accepted by the
/// listener behind the redirect (or directly: then it is the listener's
/// own address).
///
/// [`TcpMode::Redirect`](super::TcpMode::Redirect) rewrote the
/// destination of the client's packets (NAT); conntrack keeps the
/// connection's original tuple, and `getsockopt(SOL_IP, SO_ORIGINAL_DST)`
/// (`SOL_IPV6, IP6T_SO_ORIGINAL_DST` for IPv6) reads its destination back.
/// It works the same for DNAT, and for an IPv4 client of a dual-stack IPv6
/// listener. With [`TcpMode::Tproxy`](super::TcpMode::Tproxy), or without
/// any conntrack entry (`ENOENT`: nothing was rewritten), the socket's own
/// local address is the dialled one.
///
/// IPv4-mapped addresses come back as plain IPv4 ([`canonical`]).
pub fn tcp_dialled(stream: &impl AsFd) -> io::Result<SocketAddr> {
    let sock = SockRef::from(stream);
    let local = sock
        .local_addr()?
        .as_socket()
        .map(canonical)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket"))?;
    let original = if local.is_ipv4() {
        sock.original_dst_v4()
    } else {
        sock.original_dst_v6()
    };
    match original {
        Ok(a) => Ok(a.as_socket().map(canonical).unwrap_or(local)),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT) | Some(libc::ENOPROTOOPT)
            ) =>
        {
            Ok(local)
        }
        Err(e) => Err(e),
    }
}

/// Make a listener transparent (`IP_TRANSPARENT` / `IPV6_TRANSPARENT`), so
/// `tproxy` may hand it packets addressed to other ports: required for the
/// UDP listener, and for the TCP one in
/// [`TcpMode::Tproxy`](super::TcpMode::Tproxy). Set it before binding or
/// after, but before dropping privileges: it needs `CAP_NET_ADMIN` (the
/// socket keeps it afterwards, and accepted sockets inherit it).
pub fn prepare_transparent(sock: &impl AsFd) -> io::Result<()> {
    let s = SockRef::from(sock);
    if s.domain()? == Domain::IPV6 {
        s.set_ip_transparent_v6(true)
    } else {
        s.set_ip_transparent_v4(true)
    }
}

/// Make the UDP listener ready for the redirect: transparent
/// ([`prepare_transparent`]), and reporting each datagram's original
/// destination (`IP_RECVORIGDSTADDR`, and `IPV6_RECVORIGDSTADDR` on an IPv6
/// socket, which may also receive IPv4 datagrams). Needs `CAP_NET_ADMIN`.
pub fn prepare_udp_listener(sock: &impl AsFd) -> io::Result<()> {
    prepare_transparent(sock)?;
    let fd = sock.as_fd();
    if SockRef::from(sock).domain()? == Domain::IPV6 {
        setsockopt(&fd, sockopt::Ipv6OrigDstAddr, &true).map_err(io::Error::from)?;
        // An IPv4 datagram on a dual-stack socket reports with the IPv4
        // option; refused on a v6-only socket, where it is not needed.
        let _ = setsockopt(&fd, sockopt::Ipv4OrigDstAddr, &true);
    } else {
        setsockopt(&fd, sockopt::Ipv4OrigDstAddr, &true).map_err(io::Error::from)?;
    }
    Ok(())
}

/// One datagram received by the UDP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// Its length (the bytes are at the start of the buffer).
    pub len: usize,
    /// Who sent it.
    pub from: SocketAddr,
    /// The address it was sent to: the door the client dialled.
    pub dialled: SocketAddr,
}

/// Receive one datagram on a listener made ready with
/// [`prepare_udp_listener`], with the address it was sent to.
///
/// `tproxy` hands the packet over unchanged, and `IP_ORIGDSTADDR` /
/// `IPV6_ORIGDSTADDR` report its destination (a datagram that reached the
/// listener's own port directly reports that port). Addresses come back
/// [`canonical`]. A non-blocking socket answers `WouldBlock` as usual, so
/// this fits tokio's `UdpSocket::try_io(Interest::READABLE, …)`.
pub fn recv_dialled(sock: &impl AsFd, buf: &mut [u8]) -> io::Result<Datagram> {
    let fd = sock.as_fd().as_raw_fd();
    let mut cmsg = nix::cmsg_space!(libc::sockaddr_in6, libc::sockaddr_in);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())
        .map_err(io::Error::from)?;
    let from = msg
        .address
        .as_ref()
        .and_then(storage_to_std)
        .map(canonical)
        .ok_or_else(|| io::Error::other("a datagram without a sender"))?;
    let mut dialled = None;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        match c {
            ControlMessageOwned::Ipv4OrigDstAddr(sin) => {
                dialled = Some(SocketAddr::V4(SocketAddrV4::new(
                    u32::from_be(sin.sin_addr.s_addr).into(),
                    u16::from_be(sin.sin_port),
                )));
            }
            ControlMessageOwned::Ipv6OrigDstAddr(sin6) => {
                dialled = Some(canonical(SocketAddr::V6(SocketAddrV6::new(
                    sin6.sin6_addr.s6_addr.into(),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                ))));
            }
            _ => {}
        }
    }
    let len = msg.bytes;
    let dialled = dialled.ok_or_else(|| {
        io::Error::other(
            "no original destination: the socket was not made ready with prepare_udp_listener",
        )
    })?;
    Ok(Datagram { len, from, dialled })
}

fn storage_to_std(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::new(v4.ip(), v4.port())));
    }
    let v6 = s.as_sockaddr_in6()?;
    Some(SocketAddr::V6(SocketAddrV6::new(
        v6.ip(),
        v6.port(),
        v6.flowinfo(),
        v6.scope_id(),
    )))
}

/// Send `data` to `to` from the address `dialled`, so the answer to a
/// datagram that arrived through the redirect comes back from the door the
/// client dialled (and passes the client's own firewall and NAT, which
/// only let answers from there in).
///
/// `tproxy` did not rewrite anything, so there is no NAT to undo: the
/// answer needs a socket of its own bound to `dialled`. This makes one
/// (`SO_REUSEADDR`, so answers on one door may overlap), sends, and closes
/// it; it never receives, and never connects, so it never captures the
/// client's next datagram. Binding a door below 1024 needs
/// `CAP_NET_BIND_SERVICE`. Like every socket, this one belongs to the
/// calling thread's network namespace: call it where the listener lives.
pub fn send_from(dialled: SocketAddr, to: SocketAddr, data: &[u8]) -> io::Result<usize> {
    let (dialled, to) = (canonical(dialled), canonical(to));
    let sock = Socket::new(Domain::for_address(dialled), Type::DGRAM.cloexec(), None)?;
    sock.set_reuse_address(true)?;
    sock.bind(&SockAddr::from(dialled))?;
    sock.send_to(data, &SockAddr::from(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_become_ipv4() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(canonical(a("[::ffff:198.18.0.1]:53")), a("198.18.0.1:53"));
        assert_eq!(canonical(a("[::1]:53")), a("[::1]:53"));
        assert_eq!(canonical(a("198.18.0.1:53")), a("198.18.0.1:53"));
    }

    /// Without any redirect, a connection's dialled address is the
    /// listener's own, and a datagram's is where it was sent.
    #[test]
    fn direct_traffic_reports_the_listener_itself() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let _c = std::net::TcpStream::connect(addr).unwrap();
        let (s, _) = l.accept().unwrap();
        assert_eq!(tcp_dialled(&s).unwrap(), addr);

        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Only the option that needs no privilege.
        setsockopt(&u.as_fd(), sockopt::Ipv4OrigDstAddr, &true).unwrap();
        let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        c.send_to(b"hello", u.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 16];
        let d = recv_dialled(&u, &mut buf).unwrap();
        assert_eq!(&buf[..d.len], b"hello");
        assert_eq!(d.from, c.local_addr().unwrap());
        assert_eq!(d.dialled, u.local_addr().unwrap());

        // And an answer sent "from" an address leaves from there.
        let from = SocketAddr::from(([127, 0, 0, 1], 0));
        send_from(from, c.local_addr().unwrap(), b"back").unwrap();
        let (n, _) = c.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"back");
    }
}
