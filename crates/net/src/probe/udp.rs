//! One UDP attempt at a door: a hello datagram on the door's connected
//! socket, then the wait for a datagram back.
//!
//! The socket is connected to the door, so the kernel hands it only
//! datagrams from that address and port, and reports an ICMP error (port
//! or host unreachable) as an error on the next send or receive: that is
//! how a UDP door is seen as `rejected`. It is kept for the door's attempts,
//! so a late reply to the first hello still counts during the second.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use onedoor_proto::probe::{Hello, ReplyCheck, ReplyError, UdpAttempt, HELLO_LEN};
use tokio::net::UdpSocket;
use tokio::time::{timeout_at, Instant};

use super::tcp::{connect_error, ConnectError};
use super::{LocalError, Shared};

/// How many of a foreign datagram's first bytes are kept to describe it.
const FIRST_BYTES: usize = 64;

/// A UDP socket connected to `port` on `ip`.
pub(super) async fn socket(ip: IpAddr, port: u16) -> Result<UdpSocket, LocalError> {
    let any: IpAddr = match ip {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0))
        .await
        .map_err(LocalError::of)?;
    socket
        .connect(SocketAddr::new(ip, port))
        .await
        .map_err(LocalError::of)?;
    Ok(socket)
}

/// One attempt: send `bytes` (the sealed last of `hellos`), then wait for a
/// datagram, checked against every hello sent on this socket so far.
pub(super) async fn attempt(
    sh: &Shared,
    socket: &UdpSocket,
    hellos: &[Hello],
    bytes: &[u8; HELLO_LEN],
) -> Result<UdpAttempt, LocalError> {
    if let Err(e) = socket.send(bytes).await {
        return refused_or_local(e);
    }
    let deadline = Instant::now() + sh.timeout;
    let mut buf = [0u8; 2048];
    let n = match timeout_at(deadline, socket.recv(&mut buf)).await {
        Err(_) => return Ok(UdpAttempt::Nothing),
        Ok(Err(e)) => return refused_or_local(e),
        Ok(Ok(n)) => n,
    };
    let datagram = &buf[..n];
    // Our reply to any hello sent here wins; else the most telling error (a
    // wrong key says more than foreign bytes).
    let mut error = ReplyError::Foreign;
    for hello in hellos.iter().rev() {
        match sh.key.check_reply_datagram(hello, datagram) {
            ReplyCheck::Verified(v) => {
                return Ok(UdpAttempt::Answered {
                    check: Ok(v),
                    first_bytes: datagram[..n.min(FIRST_BYTES)].to_vec(),
                })
            }
            ReplyCheck::Invalid(ReplyError::Foreign) | ReplyCheck::NeedMore => {}
            ReplyCheck::Invalid(e) => error = e,
        }
    }
    Ok(UdpAttempt::Answered {
        check: Err(error),
        first_bytes: datagram[..n.min(FIRST_BYTES)].to_vec(),
    })
}

fn refused_or_local(e: std::io::Error) -> Result<UdpAttempt, LocalError> {
    match connect_error(e) {
        ConnectError::Refused(r) => Ok(UdpAttempt::Refused(r)),
        ConnectError::NoAnswer => Ok(UdpAttempt::Nothing),
        ConnectError::Local(e) => Err(e),
    }
}
