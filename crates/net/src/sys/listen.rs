//! Listening sockets: bound with the options a busy front door needs, or
//! taken over from systemd (socket activation).

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpStream;

/// Bind `addr` for a front door: `SO_REUSEADDR`, IPv6 sockets v6-only (so
/// `0.0.0.0:443` and `[::]:443` can both be given), a deep backlog.
pub fn bind(addr: SocketAddr) -> io::Result<StdListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Options for a leg that did not inherit them from our listener: no Nagle
/// delay (sslh 1.20 sets none, and ssh through it stalls ~40 ms on almost
/// half its connections), keepalive so dead peers are eventually noticed.
pub fn tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let sock = socket2::SockRef::from(stream);
    let _ = sock.set_keepalive(true);
}

/// Prepare a listener that did not come from [`bind`] (systemd socket
/// activation) so accepted sockets inherit the same options.
pub fn tune_listener(listener: &StdListener) {
    let sock = socket2::SockRef::from(listener);
    let _ = sock.set_tcp_nodelay(true);
    let _ = sock.set_keepalive(true);
}
