//! The story's checks: knock on a door from the house and say what
//! answered — the intended service, something else, a refusal, or
//! silence. Every check is bounded in time, and only ever connects to the
//! lab's own addresses (checked before any packet is sent).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::lab::Lab;
use crate::outcome::{Observed, Refusal};
use crate::plan::addr::Role;
use crate::services::library::{HELLO, WELCOME};
use crate::services::web::WEBSITE_TITLE;
use crate::wire::{html_title, read_head, read_line};

/// How long silence must last to count as "dropped".
pub(crate) const DROP_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long a service that did answer may take for a whole exchange.
pub(crate) const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a TCP connection did not open.
#[derive(Debug)]
pub(crate) enum NoConnection {
    /// No answer at all.
    Silence(Duration),
    /// Refused.
    Refused(Refusal),
    /// Anything else.
    Error(String),
}

impl NoConnection {
    pub(crate) fn observed(self) -> Observed {
        match self {
            NoConnection::Silence(d) => Observed::Dropped {
                waited_ms: d.as_millis() as u64,
            },
            NoConnection::Refused(how) => Observed::Refused { how },
            NoConnection::Error(error) => Observed::Failed { error },
        }
    }
}

/// Refuse to send anything outside the lab: `dst` must be one of this
/// lab's addresses, or the loopback of the namespace the socket is made in
/// (the house's ends of the tunnel's forwards).
fn guard(lab: &Lab, dst: Ipv4Addr) -> Result<(), NoConnection> {
    if lab.plan().owns(dst) || dst.is_loopback() {
        Ok(())
    } else {
        Err(NoConnection::Error(format!(
            "{dst} is not an address of this lab"
        )))
    }
}

fn classify(e: &io::Error) -> Option<Refusal> {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => Some(Refusal::TcpReset),
        Some(libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EACCES | libc::EPERM) => {
            Some(Refusal::IcmpUnreachable)
        }
        _ => None,
    }
}

/// Open a TCP connection from the house to `dst`.
pub(crate) async fn connect(lab: &Lab, dst: SocketAddrV4) -> Result<TcpStream, NoConnection> {
    guard(lab, *dst.ip())?;
    let socket = lab
        .tcp_socket(Role::House)
        .map_err(|e| NoConnection::Error(format!("making a socket in the house: {e}")))?;
    let started = Instant::now();
    match tokio::time::timeout(DROP_TIMEOUT, socket.connect(SocketAddr::V4(dst))).await {
        Err(_) => Err(NoConnection::Silence(started.elapsed())),
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => match classify(&e) {
            Some(how) => Err(NoConnection::Refused(how)),
            None => Err(NoConnection::Error(format!("connecting to {dst}: {e}"))),
        },
    }
}

/// Talk to the library over an open stream: greet, borrow book 3, leave.
pub(crate) async fn library_visit(stream: TcpStream) -> Observed {
    let visit = async {
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        w.write_all(format!("{HELLO}\n").as_bytes()).await?;
        let Some(welcome) = read_line(&mut r, 1024).await? else {
            return Ok(Observed::Intercepted {
                by: "a silent listener (the connection closed without a word)".into(),
            });
        };
        if !welcome.starts_with(WELCOME) {
            return Ok(Observed::Intercepted {
                by: format!("something else (it said \"{}\")", shorten(&welcome)),
            });
        }
        w.write_all(b"BOOK 3\n").await?;
        let book = read_line(&mut r, 1024).await?.unwrap_or_default();
        w.write_all(b"BYE\n").await?;
        let _ = read_line(&mut r, 64).await;
        if !book.starts_with("BOOK 3:") {
            return Ok(Observed::Intercepted {
                by: format!(
                    "something that greets like the library but lends no books (\"{}\")",
                    shorten(&book)
                ),
            });
        }
        Ok::<_, io::Error>(Observed::Reached {
            answer: format!("it said \"{welcome}\""),
        })
    };
    match tokio::time::timeout(EXCHANGE_TIMEOUT, visit).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => Observed::Intercepted {
            by: format!("something that broke the conversation ({e})"),
        },
        Err(_) => Observed::Intercepted {
            by: "a listener that accepted the connection and then said nothing".into(),
        },
    }
}

/// Ask for `/` over an open stream and say whether the real website
/// answered.
pub(crate) async fn website_visit(mut stream: TcpStream, host: &str) -> Observed {
    let visit = async {
        let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: onedoor-lab\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await?;
        let mut r = BufReader::new(&mut stream);
        let head = read_head(&mut r, 16 * 1024).await?;
        let mut body = Vec::new();
        r.take(64 * 1024).read_to_end(&mut body).await?;
        Ok::<_, io::Error>((head, String::from_utf8_lossy(&body).into_owned()))
    };
    match tokio::time::timeout(EXCHANGE_TIMEOUT, visit).await {
        Ok(Ok((head, body))) => {
            let status = head[0]
                .split_once(' ')
                .map(|x| x.1)
                .unwrap_or("")
                .to_owned();
            let title = html_title(&body).map(str::to_owned);
            if status.starts_with("200") && title.as_deref() == Some(WEBSITE_TITLE) {
                Observed::Reached {
                    answer: format!("{status}, the page \"{WEBSITE_TITLE}\""),
                }
            } else {
                Observed::Intercepted {
                    by: match title {
                        Some(t) => format!("a page titled \"{t}\" ({status})"),
                        None => format!("an HTTP server saying {status}"),
                    },
                }
            }
        }
        Ok(Err(e)) => Observed::Intercepted {
            by: format!("something that is not a web server ({e})"),
        },
        Err(_) => Observed::Intercepted {
            by: "a listener that accepted the connection and then said nothing".into(),
        },
    }
}

/// Send a clue to the crosswords on `dst` (UDP) from the house.
pub(crate) async fn crosswords(lab: &Lab, dst: SocketAddrV4) -> Observed {
    if let Err(e) = guard(lab, *dst.ip()) {
        return e.observed();
    }
    let socket = match lab.udp_socket(Role::House, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))) {
        Ok(s) => s,
        Err(e) => {
            return Observed::Failed {
                error: format!("making a socket in the house: {e}"),
            }
        }
    };
    let socket = match socket
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UdpSocket::from_std(socket))
    {
        Ok(s) => s,
        Err(e) => {
            return Observed::Failed {
                error: e.to_string(),
            }
        }
    };
    // Connected, so an ICMP refusal comes back as ECONNREFUSED.
    if let Err(e) = socket.connect(SocketAddr::V4(dst)).await {
        return Observed::Failed {
            error: format!("connecting to {dst}: {e}"),
        };
    }
    let clue = b"clue: a way out that is always open (4)";
    let started = Instant::now();
    let mut buf = [0u8; 1500];
    // Two tries, in case the first datagram races the neighbour lookup.
    for _attempt in 0..2 {
        if let Err(e) = socket.send(clue).await {
            if let Some(how) = classify(&e) {
                return Observed::Refused {
                    how: refusal_udp(how),
                };
            }
        }
        match tokio::time::timeout(DROP_TIMEOUT / 2, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
                return if reply.starts_with("crosswords: ") {
                    Observed::Reached {
                        answer: format!("it answered \"{reply}\""),
                    }
                } else {
                    Observed::Intercepted {
                        by: format!("something else (\"{}\")", shorten(&reply)),
                    }
                };
            }
            Ok(Err(e)) => {
                return match classify(&e) {
                    Some(how) => Observed::Refused {
                        how: refusal_udp(how),
                    },
                    None => Observed::Failed {
                        error: e.to_string(),
                    },
                }
            }
            Err(_) => continue,
        }
    }
    Observed::Dropped {
        waited_ms: started.elapsed().as_millis() as u64,
    }
}

/// On UDP every refusal is an ICMP message (ECONNREFUSED is a port
/// unreachable).
fn refusal_udp(_how: Refusal) -> Refusal {
    Refusal::IcmpUnreachable
}

/// Ask the router's proxy for a tunnel to `dst`, and return the tunnel.
pub(crate) async fn via_proxy(
    lab: &Lab,
    proxy: SocketAddrV4,
    dst: SocketAddrV4,
) -> Result<TcpStream, NoConnection> {
    guard(lab, *dst.ip())?;
    let mut stream = connect(lab, proxy).await?;
    let ask = async {
        let req = format!("CONNECT {dst} HTTP/1.1\r\nHost: {dst}\r\n\r\n");
        stream.write_all(req.as_bytes()).await?;
        // Read the answer byte by byte up to the empty line, so that no byte
        // of the tunnel is swallowed by a buffer.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 8192 || stream.read(&mut byte).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the proxy closed",
                ));
            }
            head.push(byte[0]);
        }
        Ok::<_, io::Error>(String::from_utf8_lossy(&head).into_owned())
    };
    match tokio::time::timeout(EXCHANGE_TIMEOUT, ask).await {
        Ok(Ok(head)) => {
            let status = head
                .lines()
                .next()
                .unwrap_or("")
                .split(' ')
                .nth(1)
                .unwrap_or("");
            match status {
                "200" => Ok(stream),
                "403" => Err(NoConnection::Refused(Refusal::ProxyForbidden)),
                _ => Err(NoConnection::Error(format!(
                    "the proxy answered \"{}\"",
                    head.lines().next().unwrap_or("")
                ))),
            }
        }
        Ok(Err(e)) => Err(NoConnection::Error(format!("talking to the proxy: {e}"))),
        Err(_) => Err(NoConnection::Error("the proxy did not answer".into())),
    }
}

/// Log in with the real `ssh` client from the house and check its greeting.
pub(crate) async fn ssh_login(
    lab: &Lab,
    ssh: &std::path::Path,
    args: &[String],
    greeting: &str,
) -> Observed {
    let mut cmd = tokio::process::Command::from(lab.command(Role::House, ssh));
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    match tokio::time::timeout(EXCHANGE_TIMEOUT * 2, cmd.output()).await {
        Ok(Ok(out)) => {
            let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if out.status.success() && stdout == greeting {
                Observed::Reached {
                    answer: format!("logged in with ssh; the server said \"{stdout}\""),
                }
            } else {
                let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
                classify_ssh_failure(&stderr, started.elapsed())
            }
        }
        Ok(Err(e)) => Observed::Failed {
            error: format!("running ssh: {e}"),
        },
        Err(_) => Observed::Dropped {
            waited_ms: (EXCHANGE_TIMEOUT * 2).as_millis() as u64,
        },
    }
}

fn classify_ssh_failure(stderr: &str, waited: Duration) -> Observed {
    if stderr.contains("timed out") {
        Observed::Dropped {
            waited_ms: waited.as_millis() as u64,
        }
    } else if stderr.contains("Connection refused") {
        Observed::Refused {
            how: Refusal::TcpReset,
        }
    } else if stderr.contains("No route to host") {
        Observed::Refused {
            how: Refusal::IcmpUnreachable,
        }
    } else {
        Observed::Failed {
            error: format!("ssh: {}", shorten(stderr)),
        }
    }
}

fn shorten(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_errors_are_classified() {
        assert!(matches!(
            classify_ssh_failure(
                "ssh: connect to host 198.19.0.2 port 22: Connection timed out",
                Duration::ZERO
            ),
            Observed::Dropped { .. }
        ));
        assert!(matches!(
            classify_ssh_failure(
                "ssh: connect to host 198.19.0.2 port 22: Connection refused",
                Duration::ZERO
            ),
            Observed::Refused {
                how: Refusal::TcpReset
            }
        ));
        assert!(matches!(
            classify_ssh_failure("Permission denied", Duration::ZERO),
            Observed::Failed { .. }
        ));
    }

    #[test]
    fn errno_classification() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(classify(&e), Some(Refusal::TcpReset));
        let e = io::Error::from_raw_os_error(libc::EHOSTUNREACH);
        assert_eq!(classify(&e), Some(Refusal::IcmpUnreachable));
        let e = io::Error::from_raw_os_error(libc::EINVAL);
        assert_eq!(classify(&e), None);
    }
}
