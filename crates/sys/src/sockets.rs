//! Which local addresses this host's server sockets hold: listening TCP
//! sockets and unconnected UDP sockets, IPv4 and IPv6, in the network
//! namespace of the calling thread.
//!
//! Asked of the kernel with `sock_diag` (`NETLINK_SOCK_DIAG`,
//! `SOCK_DIAG_BY_FAMILY`), filtered in the kernel by state, so a server
//! with a hundred thousand connections answers with its few listeners, not
//! with every connection as `/proc/net/tcp` would. When `sock_diag` is
//! missing (a kernel without `CONFIG_INET_DIAG` / `INET_UDP_DIAG`, or a
//! sandbox that refuses the socket), the same answer is read from
//! `/proc/thread-self/net/{tcp,tcp6,udp,udp6}` — `thread-self`, not
//! `self`: `/proc/self/net` shows the namespace of the process's main
//! thread, not that of a thread which entered another one.
//!
//! Which sockets count as servers:
//! - TCP: state `LISTEN`. Established connections hold a port only for
//!   their own four-tuple.
//! - UDP: state `CLOSE`, i.e. bound but not connected. A connected UDP
//!   socket receives only from its one peer.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::nl::{Netlink, NlError};

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    fn number(self) -> u8 {
        match self {
            Proto::Tcp => libc::IPPROTO_TCP as u8,
            Proto::Udp => libc::IPPROTO_UDP as u8,
        }
    }

    /// The socket state that makes a socket a server (see the module doc).
    fn server_state(self) -> u8 {
        match self {
            Proto::Tcp => TCP_LISTEN,
            Proto::Udp => TCP_CLOSE,
        }
    }

    fn proc_name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

const TCP_CLOSE: u8 = 7;
const TCP_LISTEN: u8 = 10;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_HDRLEN: usize = 16;
/// `struct inet_diag_req_v2`.
const REQ_LEN: usize = 56;
/// `struct inet_diag_msg`, up to and including `idiag_inode`.
const MSG_LEN: usize = 72;

/// The local addresses of this namespace's server sockets of `proto`
/// (see the module doc), from `sock_diag`, else from `/proc`.
pub fn servers(proto: Proto) -> io::Result<Vec<SocketAddr>> {
    match servers_sock_diag(proto) {
        Ok(v) => Ok(v),
        Err(diag) => servers_proc(proto).map_err(|proc_err| {
            io::Error::new(
                proc_err.kind(),
                format!(
                    "listing {} sockets: {diag}; and {proc_err}",
                    proto.proc_name()
                ),
            )
        }),
    }
}

/// [`servers`], from `sock_diag` only.
pub fn servers_sock_diag(proto: Proto) -> Result<Vec<SocketAddr>, NlError> {
    let mut nl = Netlink::open(netlink_sys::protocols::NETLINK_SOCK_DIAG).map_err(|e| NlError {
        what: "opening a sock_diag netlink socket".into(),
        source: e,
    })?;
    let mut out = Vec::new();
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        let what = format!(
            "listing {} {} sockets",
            if family == libc::AF_INET as u8 {
                "IPv4"
            } else {
                "IPv6"
            },
            proto.proc_name()
        );
        let mut last = None;
        for _ in 0..3 {
            let seq = nl.next_seq();
            let req = diag_request(family, proto.number(), 1 << proto.server_state(), seq);
            match nl.dump(&req, seq, &what) {
                Ok(msgs) => {
                    out.extend(
                        msgs.iter()
                            .filter_map(|m| parse_diag_msg(m))
                            .filter(|(state, _)| *state == proto.server_state())
                            .map(|(_, addr)| addr),
                    );
                    last = None;
                    break;
                }
                // A dump interrupted by a socket opening or closing: again.
                Err(e) if e.source.kind() == io::ErrorKind::Interrupted => last = Some(e),
                // No IPv6 in this kernel: no IPv6 sockets.
                Err(e)
                    if family == libc::AF_INET6 as u8
                        && e.source.raw_os_error() == Some(libc::ENOENT) =>
                {
                    break
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
    }
    Ok(out)
}

/// [`servers`], from `/proc/thread-self/net` only.
pub fn servers_proc(proto: Proto) -> io::Result<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for suffix in ["", "6"] {
        let path = format!("/proc/thread-self/net/{}{suffix}", proto.proc_name());
        match std::fs::read_to_string(&path) {
            Ok(text) => out.extend(
                parse_proc_net(&text)
                    .into_iter()
                    .filter(|(state, _)| *state == proto.server_state())
                    .map(|(_, addr)| addr),
            ),
            // No IPv6 in this kernel.
            Err(e) if suffix == "6" && e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("reading {path}: {e}"))),
        }
    }
    Ok(out)
}

/// A `SOCK_DIAG_BY_FAMILY` dump request for sockets of `family` and
/// `protocol` in the states of the bit mask `states`.
fn diag_request(family: u8, protocol: u8, states: u32, seq: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(NLMSG_HDRLEN + REQ_LEN);
    m.extend_from_slice(&((NLMSG_HDRLEN + REQ_LEN) as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.push(family);
    m.push(protocol);
    m.push(0); // idiag_ext: no extensions
    m.push(0); // pad
    m.extend_from_slice(&states.to_ne_bytes());
    m.resize(NLMSG_HDRLEN + REQ_LEN, 0); // inet_diag_sockid: any
    m
}

/// `(state, local address)` of one `inet_diag_msg` answer.
pub fn parse_diag_msg(msg: &[u8]) -> Option<(u8, SocketAddr)> {
    let body = msg.get(NLMSG_HDRLEN..NLMSG_HDRLEN + MSG_LEN)?;
    let ty = u16::from_ne_bytes([msg[4], msg[5]]);
    if ty != SOCK_DIAG_BY_FAMILY {
        return None;
    }
    let family = body[0];
    let state = body[1];
    let port = u16::from_be_bytes([body[4], body[5]]);
    let src = &body[8..24];
    let ip = if family == libc::AF_INET as u8 {
        IpAddr::V4(Ipv4Addr::new(src[0], src[1], src[2], src[3]))
    } else if family == libc::AF_INET6 as u8 {
        IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(src).ok()?))
    } else {
        return None;
    };
    Some((state, SocketAddr::new(ip, port)))
}

/// `(state, local address)` of every socket in the text of
/// `/proc/net/{tcp,udp}{,6}`.
///
/// Addresses there are the raw network-order words printed as host-order
/// hex (`0100007F` is 127.0.0.1 on a little-endian host), IPv6 as four
/// such words; ports and states are plain hex.
pub fn parse_proc_net(text: &str) -> Vec<(u8, SocketAddr)> {
    let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = u8::from_str_radix(fields.nth(1)?, 16).ok()?;
            let (addr, port) = local.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let ip = match addr.len() {
                8 => IpAddr::V4(Ipv4Addr::from(word(addr)?)),
                32 => {
                    let mut b = [0u8; 16];
                    for i in 0..4 {
                        b[i * 4..i * 4 + 4].copy_from_slice(&word(&addr[i * 8..i * 8 + 8])?);
                    }
                    IpAddr::V6(Ipv6Addr::from(b))
                }
                _ => return None,
            };
            Some((state, SocketAddr::new(ip, port)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_endian = "little")]
    fn proc_net_lines_are_parsed() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21012 1 0000000000000000 100 0 0 10 0
   1: 0200A8C0:A0B2 0300A8C0:01BB 01 00000000:00000000 02:000A7D2B 00000000  1000        0 35621 2 0000000000000000 20 4 30 10 -1
";
        assert_eq!(
            parse_proc_net(tcp),
            [
                (TCP_LISTEN, "127.0.0.1:631".parse().unwrap()),
                (1, "192.168.0.2:41138".parse().unwrap()),
            ]
        );
        let udp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  301: 00000000000000000000000000000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 17851 2 0000000000000000 0
  302: 00000000000000000000000001000000:007B 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 17852 2 0000000000000000 0
  303: 0000000000000000FFFF00000100007F:1000 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 17853 2 0000000000000000 0
";
        assert_eq!(
            parse_proc_net(udp6),
            [
                (TCP_CLOSE, "[::]:53".parse().unwrap()),
                (TCP_CLOSE, "[::1]:123".parse().unwrap()),
                (TCP_CLOSE, "[::ffff:127.0.0.1]:4096".parse().unwrap()),
            ]
        );
        assert!(parse_proc_net("header only\n").is_empty());
        assert!(parse_proc_net("h\n 0: zz:0 0:0 0A\n 1: 0100007F\n").is_empty());
    }

    #[test]
    fn diag_answers_are_parsed() {
        let mut m = vec![0u8; NLMSG_HDRLEN + MSG_LEN];
        m[0..4].copy_from_slice(&((NLMSG_HDRLEN + MSG_LEN) as u32).to_ne_bytes());
        m[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        let b = NLMSG_HDRLEN;
        m[b] = libc::AF_INET as u8;
        m[b + 1] = TCP_LISTEN;
        m[b + 4..b + 6].copy_from_slice(&1500u16.to_be_bytes());
        m[b + 8..b + 12].copy_from_slice(&[198, 18, 0, 1]);
        assert_eq!(
            parse_diag_msg(&m),
            Some((TCP_LISTEN, "198.18.0.1:1500".parse().unwrap()))
        );
        m[b] = libc::AF_INET6 as u8;
        m[b + 8..b + 24].copy_from_slice(&Ipv6Addr::LOCALHOST.octets());
        assert_eq!(
            parse_diag_msg(&m),
            Some((TCP_LISTEN, "[::1]:1500".parse().unwrap()))
        );
        assert_eq!(parse_diag_msg(&m[..40]), None);
        m[b] = 99;
        assert_eq!(parse_diag_msg(&m), None);
        let req = diag_request(libc::AF_INET as u8, 6, 1 << TCP_LISTEN, 7);
        assert_eq!(req.len(), NLMSG_HDRLEN + REQ_LEN);
        assert_eq!(&req[16..20], &[libc::AF_INET as u8, 6, 0, 0]);
    }
}
