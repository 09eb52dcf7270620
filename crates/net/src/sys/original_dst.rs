//! The port a client dialled. Normally the socket's own port; behind the
//! reflector's redirect (nftables `redirect`), conntrack remembers the
//! original destination and `SO_ORIGINAL_DST` tells it.

use std::os::fd::AsRawFd;

use tokio::net::TcpStream;

/// The port the client dialled to reach `stream`.
pub fn port_seen(stream: &TcpStream) -> u16 {
    #[cfg(target_os = "linux")]
    if let Some(port) = linux::original_port(
        stream.as_raw_fd(),
        stream.local_addr().map(|a| a.is_ipv6()).unwrap_or(false),
    ) {
        return port;
    }
    stream.local_addr().map(|a| a.port()).unwrap_or(0)
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::fd::RawFd;

    /// `SO_ORIGINAL_DST` (IPv4) / `IP6T_SO_ORIGINAL_DST` (IPv6): both 80.
    const SO_ORIGINAL_DST: libc::c_int = 80;

    pub(super) fn original_port(fd: RawFd, v6: bool) -> Option<u16> {
        // SAFETY: getsockopt writes at most `len` bytes into `addr`, a
        // properly sized and aligned sockaddr_in6 (which also holds a
        // sockaddr_in), and `len` is initialised to its size.
        unsafe {
            let mut addr: libc::sockaddr_in6 = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            let (level, what) = if v6 {
                (libc::SOL_IPV6, SO_ORIGINAL_DST)
            } else {
                (libc::SOL_IP, SO_ORIGINAL_DST)
            };
            let r = libc::getsockopt(
                fd,
                level,
                what,
                (&mut addr as *mut libc::sockaddr_in6).cast(),
                &mut len,
            );
            if r != 0 {
                return None;
            }
            // sin_port and sin6_port sit at the same offset.
            Some(u16::from_be(addr.sin6_port))
        }
    }
}
