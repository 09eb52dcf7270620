//! The router's HTTP CONNECT proxy (`proxy-only`): the house's only way
//! out. It opens door 443 and nothing else, and only towards the lab's own
//! internet.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::plan::addr::AddressPlan;
use crate::wire::read_head;
use onedoor_sys::netns::Netns;

/// The only door the proxy opens.
pub(crate) const ALLOWED_PORT: u16 = 443;

const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A tunnel through the proxy lives at most this long (the lab's steps are
/// short; nothing may hang).
const TUNNEL_LIFETIME: Duration = Duration::from_secs(120);
const MAX_HEAD: usize = 8 * 1024;

/// What the proxy decides about a request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Open a tunnel to this address.
    Connect(SocketAddrV4),
    /// Answer with this status line and close.
    Refuse(&'static str),
}

/// Decide about one request line, e.g. `CONNECT 198.19.0.2:443 HTTP/1.1`.
pub(crate) fn decide(request_line: &str, plan: &AddressPlan) -> Decision {
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Decision::Refuse("400 Bad Request");
    };
    if !version.starts_with("HTTP/1.") {
        return Decision::Refuse("400 Bad Request");
    }
    if method != "CONNECT" {
        return Decision::Refuse("405 Method Not Allowed");
    }
    let Ok(addr) = target.parse::<SocketAddrV4>() else {
        // Names are not resolved: the lab has no DNS, and must never reach
        // anything but its own addresses.
        return Decision::Refuse("403 Forbidden");
    };
    if addr.port() != ALLOWED_PORT || !plan.owns(*addr.ip()) || *addr.ip() == Ipv4Addr::UNSPECIFIED
    {
        return Decision::Refuse("403 Forbidden");
    }
    Decision::Connect(addr)
}

/// Serve one proxy client; outgoing connections are made from `router`.
pub(crate) async fn session(stream: TcpStream, plan: Arc<AddressPlan>, router: Arc<Netns>) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut r, MAX_HEAD)).await {
        Ok(Ok(head)) => head,
        _ => return,
    };
    let refuse = |status: &str| {
        format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\nX-Proxy-Note: this proxy opens door {ALLOWED_PORT} only\r\n\r\n")
    };
    let target = match decide(&head[0], &plan) {
        Decision::Connect(a) => a,
        Decision::Refuse(status) => {
            let _ = w.write_all(refuse(status).as_bytes()).await;
            return;
        }
    };
    let upstream = async {
        let socket = router.run(tokio::net::TcpSocket::new_v4)??;
        socket.connect(SocketAddr::V4(target)).await
    };
    let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, upstream).await {
        Ok(Ok(s)) => s,
        _ => {
            let _ = w.write_all(refuse("502 Bad Gateway").as_bytes()).await;
            return;
        }
    };
    if w.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let (mut ur, mut uw) = upstream.into_split();
    // Bytes the client sent after the head are still in the reader's buffer:
    // copying from `r` (not its inner half) forwards them first.
    let up = async {
        let _ = tokio::io::copy(&mut r, &mut uw).await;
        let _ = uw.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut ur, &mut w).await;
        let _ = w.shutdown().await;
    };
    let _ = tokio::time::timeout(TUNNEL_LIFETIME, async { tokio::join!(up, down) }).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::addr::Instance;

    #[test]
    fn only_door_443_of_the_lab_internet() {
        let plan = AddressPlan::new(Instance(3));
        assert_eq!(
            decide("CONNECT 198.19.3.2:443 HTTP/1.1", &plan),
            Decision::Connect("198.19.3.2:443".parse().unwrap())
        );
        for (line, status) in [
            ("CONNECT 198.19.3.2:22 HTTP/1.1", "403 Forbidden"),
            ("CONNECT 198.19.4.2:443 HTTP/1.1", "403 Forbidden"),
            ("CONNECT 8.8.8.8:443 HTTP/1.1", "403 Forbidden"),
            ("CONNECT example.com:443 HTTP/1.1", "403 Forbidden"),
            ("GET http://198.19.3.2/ HTTP/1.1", "405 Method Not Allowed"),
            ("CONNECT", "400 Bad Request"),
            ("CONNECT 198.19.3.2:443 SPDY/3", "400 Bad Request"),
        ] {
            assert_eq!(decide(line, &plan), Decision::Refuse(status), "{line}");
        }
    }
}
