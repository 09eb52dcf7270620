//! Reaching the door through an HTTP CONNECT proxy (`--proxy`, or
//! `HTTPS_PROXY` / `ALL_PROXY` via
//! [`onedoor_proto::http_connect::proxy_from_env`]): the tokio shell around
//! [`onedoor_proto::http_connect`].
//!
//! [`through`] connects to the proxy, sends `CONNECT door:port`, reads the
//! reply head and hands back the plain [`TcpStream`], positioned exactly
//! after the head: the head is read with `MSG_PEEK` and only its own bytes
//! are consumed, so whatever the door sent first (an SSH banner, say) is
//! still in the socket for the next reader, and the stream can go on to TLS
//! or `splice` as is.

use std::io;
use std::time::Duration;

use onedoor_proto::http_connect::{
    connect_request, parse_connect_reply, ConnectReply, ProxyUrl, MAX_REPLY_HEAD,
};
use onedoor_proto::spec::HostPort;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// Why the proxy did not open a tunnel to the door. Every message names the
/// proxy (`host:port`, never the password) and the door.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No TCP connection to the proxy (refused, no route, name not
    /// resolved), or it broke before the reply.
    #[error("the proxy {proxy} is unreachable (on the way to door {} of {}): {source}", door.port, door.host)]
    Unreachable {
        /// The proxy.
        proxy: HostPort,
        /// The door asked for.
        door: HostPort,
        /// What the OS said.
        source: io::Error,
    },
    /// No connection, or no complete reply, within the bound.
    #[error(
        "the proxy {proxy} {} within {after:?} (on the way to door {} of {})",
        if *.connected { "did not answer CONNECT" } else { "did not accept a connection" },
        door.port,
        door.host
    )]
    Timeout {
        /// The proxy.
        proxy: HostPort,
        /// The door asked for.
        door: HostPort,
        /// How long we waited, in all.
        after: Duration,
        /// Whether the TCP connection was made (the proxy then said
        /// nothing, or not enough).
        connected: bool,
    },
    /// The proxy wants credentials and none were given.
    #[error(
        "the proxy {proxy} requires credentials ({status} {reason}) for door {} of {}: \
         give them as --proxy http://USER:PASS@{proxy}",
        door.port,
        door.host
    )]
    AuthRequired {
        /// The proxy.
        proxy: HostPort,
        /// The door asked for.
        door: HostPort,
        /// 407 (or 401).
        status: u16,
        /// The reason phrase.
        reason: String,
    },
    /// The proxy refused the credentials given.
    #[error(
        "the proxy {proxy} refused the credentials of user `{user}` ({status} {reason}) \
         for door {} of {}",
        door.port,
        door.host
    )]
    AuthRefused {
        /// The proxy.
        proxy: HostPort,
        /// The door asked for.
        door: HostPort,
        /// The user name that was refused.
        user: String,
        /// 407 (or 401).
        status: u16,
        /// The reason phrase.
        reason: String,
    },
    /// The proxy answered CONNECT with another status: the door's port is
    /// not allowed (403), the door is unreachable from the proxy (502,
    /// 504)…
    #[error("the proxy {proxy} refused door {} of {}: {}", door.port, door.host, status_line(*.status, .reason))]
    Refused {
        /// The proxy.
        proxy: HostPort,
        /// The door asked for.
        door: HostPort,
        /// The HTTP status.
        status: u16,
        /// The reason phrase (may be empty).
        reason: String,
    },
    /// Whatever answered is not an HTTP proxy.
    #[error("{proxy} is not an HTTP proxy (asked for door {} of {}): {what}", door.port, door.host)]
    NotAProxy {
        /// The address given as the proxy.
        proxy: HostPort,
        /// The door asked for.
        door: HostPort,
        /// What it did instead, with the first bytes it sent.
        what: String,
    },
}

fn status_line(status: u16, reason: &str) -> String {
    if reason.is_empty() {
        status.to_string()
    } else {
        format!("{status} {reason}")
    }
}

/// How reading the reply head ended, short of success.
enum HeadError {
    Io(io::Error),
    Closed(Vec<u8>),
    Refused {
        status: u16,
        reason: String,
        auth_required: bool,
    },
    NotHttp(Vec<u8>),
}

/// Open a TCP connection to `door` through `proxy`: connect to the proxy,
/// send `CONNECT` (with basic auth when the URL has credentials), and read
/// the reply head, all within `timeout`. The returned stream has
/// `TCP_NODELAY` set and is positioned right after the reply head: bytes
/// the door sent after it are not consumed (see the module docs), so the
/// plain [`TcpStream`] is returned, no wrapper.
pub async fn through(
    proxy: &ProxyUrl,
    door: &HostPort,
    timeout: Duration,
) -> Result<TcpStream, ProxyError> {
    let deadline = Instant::now() + timeout;
    let addr = proxy.addr();
    let timed_out = |connected| ProxyError::Timeout {
        proxy: addr.clone(),
        door: door.clone(),
        after: timeout,
        connected,
    };
    let unreachable = |source| ProxyError::Unreachable {
        proxy: addr.clone(),
        door: door.clone(),
        source,
    };
    let mut stream = timeout_at(
        deadline,
        TcpStream::connect((proxy.host.as_str(), proxy.port)),
    )
    .await
    .map_err(|_| timed_out(false))?
    .map_err(unreachable)?;
    stream.set_nodelay(true).map_err(unreachable)?;
    let request = connect_request(&door.host, door.port, proxy.auth.as_ref());
    let head = timeout_at(deadline, async {
        stream.write_all(&request).await.map_err(HeadError::Io)?;
        read_head(&mut stream).await
    })
    .await
    .map_err(|_| timed_out(true))?;
    match head {
        Ok(head_len) => {
            tracing::debug!(proxy = %addr, door = %door, head_len, "proxy tunnel open");
            Ok(stream)
        }
        Err(HeadError::Io(source)) => Err(unreachable(source)),
        Err(HeadError::Closed(got)) => Err(ProxyError::NotAProxy {
            proxy: addr.clone(),
            door: door.clone(),
            what: if got.is_empty() {
                "it closed the connection without answering CONNECT".to_owned()
            } else {
                format!(
                    "it closed the connection in the middle of its answer, which began {}",
                    excerpt(&got)
                )
            },
        }),
        Err(HeadError::NotHttp(got)) => Err(ProxyError::NotAProxy {
            proxy: addr.clone(),
            door: door.clone(),
            what: if got.len() >= MAX_REPLY_HEAD {
                format!(
                    "its answer has no end of HTTP head within {MAX_REPLY_HEAD} bytes; it began {}",
                    excerpt(&got)
                )
            } else {
                format!("it answered {}", excerpt(&got))
            },
        }),
        Err(HeadError::Refused {
            status,
            reason,
            auth_required: true,
        }) => Err(match &proxy.auth {
            None => ProxyError::AuthRequired {
                proxy: addr.clone(),
                door: door.clone(),
                status,
                reason,
            },
            Some(c) => ProxyError::AuthRefused {
                proxy: addr.clone(),
                door: door.clone(),
                user: c.user.clone(),
                status,
                reason,
            },
        }),
        Err(HeadError::Refused { status, reason, .. }) => Err(ProxyError::Refused {
            proxy: addr.clone(),
            door: door.clone(),
            status,
            reason,
        }),
    }
}

/// Read the reply head without reading past it: peek at what has arrived,
/// and consume only bytes that are part of the head. Returns its length.
/// Ends after at most [`MAX_REPLY_HEAD`] bytes (the parser decides by
/// then); the caller bounds the time.
async fn read_head(stream: &mut TcpStream) -> Result<usize, HeadError> {
    let mut head = Vec::new();
    let mut peeked = vec![0u8; MAX_REPLY_HEAD];
    loop {
        // The parser says NotHttp once MAX_REPLY_HEAD bytes are in, so
        // there is always room here.
        let room = MAX_REPLY_HEAD - head.len();
        let n = stream
            .peek(&mut peeked[..room])
            .await
            .map_err(HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Closed(head));
        }
        let before = head.len();
        head.extend_from_slice(&peeked[..n]);
        let (take, done) = match parse_connect_reply(&head) {
            ConnectReply::NeedMore => (n, false),
            // The parser is prefix-consistent, so the head ends in the new
            // bytes: `before < head_len <= before + n`.
            ConnectReply::Established { head_len } => (head_len.saturating_sub(before), true),
            ConnectReply::Refused {
                status,
                reason,
                auth_required,
            } => {
                return Err(HeadError::Refused {
                    status,
                    reason,
                    auth_required,
                })
            }
            ConnectReply::NotHttp => return Err(HeadError::NotHttp(head)),
        };
        // These bytes were peeked, so they are there: this does not wait.
        stream
            .read_exact(&mut peeked[..take])
            .await
            .map_err(HeadError::Io)?;
        if done {
            return Ok(before + take);
        }
    }
}

/// The first bytes of an answer, quoted and escaped, for messages.
fn excerpt(bytes: &[u8]) -> String {
    const SHOWN: usize = 40;
    let text: String = String::from_utf8_lossy(&bytes[..bytes.len().min(SHOWN)])
        .escape_debug()
        .collect();
    let more = if bytes.len() > SHOWN { "…" } else { "" };
    format!("\"{text}\"{more}")
}
