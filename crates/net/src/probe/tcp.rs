//! One TCP attempt at a door, and the arrivals query through an open one.

use std::io;
use std::net::SocketAddr;

use onedoor_proto::probe::{
    Arrival, ChunkParse, Exchange, Hello, HelloKind, Refusal, ReplyCheck, ReplyError, TcpAttempt,
    HELLO_LEN, REPLY_LEN,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Duration, Instant};

use super::{AskError, LocalError, Shared};

/// How many of the first bytes of a foreign answer are kept to describe it.
const FIRST_BYTES: usize = 64;
/// After a foreign first byte, how long to wait for the rest of its first
/// line (to name what answered), at most.
const DESCRIBE_WAIT: Duration = Duration::from_millis(250);

/// How a socket error answers the question "what did the door do?":
/// refused (`rejected`), nothing (`filtered`), or not the door's doing.
pub(super) enum ConnectError {
    Refused(Refusal),
    NoAnswer,
    Local(LocalError),
}

/// Map a connect (or UDP send/receive) error.
pub(super) fn connect_error(e: io::Error) -> ConnectError {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED | libc::ECONNRESET) => ConnectError::Refused(Refusal::Refused),
        Some(libc::EHOSTUNREACH | libc::EHOSTDOWN) => {
            ConnectError::Refused(Refusal::HostUnreachable)
        }
        Some(libc::ENETUNREACH | libc::ENETDOWN) => ConnectError::Refused(Refusal::NetUnreachable),
        Some(libc::EACCES | libc::EPERM) => ConnectError::Refused(Refusal::Prohibited),
        Some(libc::ETIMEDOUT) => ConnectError::NoAnswer,
        _ => ConnectError::Local(LocalError::of(e)),
    }
}

/// Connect to `port` within the timeout.
async fn connect(sh: &Shared, port: u16) -> Result<Result<TcpStream, TcpAttempt>, LocalError> {
    let addr = SocketAddr::new(sh.ip, port);
    match timeout(sh.timeout, TcpStream::connect(addr)).await {
        Err(_) => Ok(Err(TcpAttempt::NoAnswer)),
        Ok(Ok(s)) => {
            // Dialling one's own address, a socket can land on its own
            // ephemeral port and connect to itself (TCP simultaneous open):
            // nothing to do with the door. Another port next time.
            if s.local_addr().ok() == s.peer_addr().ok() {
                return Err(LocalError::Transient(io::Error::other(
                    "the socket connected to itself",
                )));
            }
            let _ = s.set_nodelay(true);
            Ok(Ok(s))
        }
        Ok(Err(e)) => match connect_error(e) {
            ConnectError::Refused(r) => Ok(Err(TcpAttempt::Refused(r))),
            ConnectError::NoAnswer => Ok(Err(TcpAttempt::NoAnswer)),
            ConnectError::Local(e) => Err(e),
        },
    }
}

/// One attempt: connect, send `bytes` (the sealed `hello`), read the
/// answer. `Err` only for a local failure that says nothing about the door.
pub(super) async fn attempt(
    sh: &Shared,
    port: u16,
    hello: &Hello,
    bytes: &[u8; HELLO_LEN],
) -> Result<TcpAttempt, LocalError> {
    let mut stream = match connect(sh, port).await? {
        Ok(s) => s,
        Err(a) => return Ok(a),
    };
    let exchange = exchange(sh, &mut stream, hello, bytes).await;
    tracing::trace!(port, ?exchange, "tcp attempt");
    Ok(TcpAttempt::Connected(exchange))
}

/// After the handshake: the hello out, and whatever comes back within the
/// timeout.
async fn exchange(
    sh: &Shared,
    stream: &mut TcpStream,
    hello: &Hello,
    bytes: &[u8; HELLO_LEN],
) -> Exchange {
    let deadline = Instant::now() + sh.timeout;
    match timeout_at(deadline, stream.write_all(bytes)).await {
        Err(_) => return Exchange::Silence,
        Ok(Err(_)) => return Exchange::Reset,
        Ok(Ok(())) => {}
    }
    let mut buf = Vec::with_capacity(REPLY_LEN + FIRST_BYTES);
    let mut chunk = [0u8; 1024];
    loop {
        let n = match timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) if buf.is_empty() => return Exchange::Silence,
            Ok(Ok(0)) if buf.is_empty() => return Exchange::Closed,
            Ok(Err(_)) if buf.is_empty() => return Exchange::Reset,
            Err(_) | Ok(Ok(0)) | Ok(Err(_)) => return truncated(&buf),
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        match sh.key.check_reply(hello, &buf) {
            ReplyCheck::NeedMore => continue,
            ReplyCheck::Verified(v) => {
                return Exchange::Answered {
                    check: Ok(v),
                    first_bytes: first(&buf),
                }
            }
            ReplyCheck::Invalid(e) => {
                if e == ReplyError::Foreign {
                    more_to_describe(stream, &mut buf, deadline).await;
                }
                return Exchange::Answered {
                    check: Err(e),
                    first_bytes: first(&buf),
                };
            }
        }
    }
}

/// The stream ended (or the wait did) after a start of our reply.
fn truncated(buf: &[u8]) -> Exchange {
    Exchange::Answered {
        check: Err(ReplyError::Truncated),
        first_bytes: first(buf),
    }
}

fn first(buf: &[u8]) -> Vec<u8> {
    buf[..buf.len().min(FIRST_BYTES)].to_vec()
}

/// A foreign answer was refused on its first bytes; read a little more, so
/// its first line can name it (`HTTP/1.1 302 Found`).
async fn more_to_describe(stream: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) {
    let until = deadline.min(Instant::now() + DESCRIBE_WAIT);
    let mut chunk = [0u8; FIRST_BYTES];
    while buf.len() < FIRST_BYTES && !buf.contains(&b'\n') {
        match timeout_at(until, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
}

/// Ask the server, through TCP door `door`, which of this run's UDP hellos
/// arrived: a verified reply, then the signed report, chunk by chunk.
pub(super) async fn ask_arrivals(sh: &Shared, door: u16) -> Result<Vec<Arrival>, AskError> {
    let (hello, bytes) = sh
        .hello(HelloKind::Arrivals, door)
        .map_err(AskError::Random)?;
    let fail = |why: &str| AskError::Door(why.to_owned());
    let mut stream = match connect(sh, door).await {
        Ok(Ok(s)) => s,
        Ok(Err(TcpAttempt::Refused(r))) => return Err(AskError::Door(r.to_string())),
        Ok(Err(_)) => return Err(fail("no answer to the connect")),
        Err(LocalError::Transient(e) | LocalError::Fatal(e)) => {
            return Err(AskError::Door(e.to_string()))
        }
    };
    timeout(sh.timeout, stream.write_all(&bytes))
        .await
        .map_err(|_| fail("the query could not be sent"))?
        .map_err(|e| AskError::Door(e.to_string()))?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 64 * 1024];
    // Each read may take up to the timeout: the report is checked as it
    // comes, so a slow but steady stream is fine (the caller bounds it all).
    let t = sh.timeout;
    let public_key = loop {
        match sh.key.check_reply(&hello, &buf) {
            ReplyCheck::NeedMore => read_more(&mut stream, &mut buf, &mut chunk, t).await?,
            ReplyCheck::Verified(v) => break v.public_key,
            ReplyCheck::Invalid(e) => return Err(AskError::Door(format!("the reply: {e}"))),
        }
    };
    buf.drain(..REPLY_LEN);
    let mut arrivals = Vec::new();
    let mut index: u16 = 0;
    loop {
        match sh
            .key
            .parse_arrivals_chunk(&hello, &public_key, index, &buf)
        {
            ChunkParse::NeedMore => read_more(&mut stream, &mut buf, &mut chunk, t).await?,
            ChunkParse::Invalid(e) => return Err(AskError::Door(format!("the report: {e}"))),
            ChunkParse::Chunk(c) => {
                buf.drain(..c.len);
                arrivals.extend(c.arrivals);
                if c.last {
                    return Ok(arrivals);
                }
                index = index
                    .checked_add(1)
                    .ok_or_else(|| fail("the report has too many chunks"))?;
            }
        }
    }
}

/// Read what comes next into `buf`, within `wait`.
async fn read_more(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
    wait: Duration,
) -> Result<(), AskError> {
    match timeout(wait, stream.read(chunk)).await {
        Err(_) => Err(AskError::Door("the server stopped answering".into())),
        Ok(Ok(0)) => Err(AskError::Door("the connection closed mid-answer".into())),
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Ok(Err(e)) => Err(AskError::Door(e.to_string())),
    }
}
