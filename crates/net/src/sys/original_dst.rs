//! The port a client dialled. Normally the socket's own port; behind the
//! reflector's redirect (nftables `redirect`), conntrack remembers the
//! original destination and `SO_ORIGINAL_DST` tells it
//! (`onedoor_sys::reflect::tcp_dialled`, which also handles IPv4 clients of
//! an IPv6 listener).

use tokio::net::TcpStream;

/// The port the client dialled to reach `stream`.
pub fn port_seen(stream: &TcpStream) -> u16 {
    #[cfg(target_os = "linux")]
    if let Ok(addr) = onedoor_sys::reflect::tcp_dialled(stream) {
        return addr.port();
    }
    stream.local_addr().map(|a| a.port()).unwrap_or(0)
}
