//! A WebSocket as a byte stream, for the `ws`/`wss` transports.
//!
//! [`client`] runs the opening handshake itself (the request is built and the
//! reply checked by [`onedoor_proto::tunnel::upgrade`], so it looks like a
//! browser's and a refusal keeps its status line); [`server`] answers an
//! upgrade that serve has already read and checked. Both return a [`WsIo`]:
//! the session's bytes travel as binary messages, framed by
//! `tokio-tungstenite` (which also answers pings and the close handshake).
//!
//! **Writes are coalesced.** Small writes (an HTTP/2 frame header, then its
//! payload) are gathered into one message of up to [`MAX_MESSAGE`] bytes
//! (a write's last quarter-message rides along instead of trailing alone),
//! sent once [`SEND_AT`] bytes are waiting or on `poll_flush`; tungstenite
//! then buffers frames (128 KiB) before writing to the socket. So, as with
//! any buffered writer, a writer must call `poll_flush` to be sure its bytes
//! left; `poll_flush` does push everything out. The buffer that holds a
//! message is reused once tungstenite has copied the frame out, so a steady
//! stream of writes allocates nothing.
//!
//! **Close is not a half-close.** `poll_shutdown` sends a Close frame; the
//! peer reads EOF and answers with its own Close, after which neither end
//! can write. The session layer above (HTTP/2) never relies on half-closing
//! its transport.

use std::fmt;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use onedoor_proto::tunnel::upgrade::{
    check_upgrade_response, request_head_end, switching_protocols, upgrade_request,
    websocket_key_text, HeadParse, UpgradeRequestError, UpgradeResponseError, MAX_HEAD,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

/// The largest message [`WsIo`] sends: a write, or a run of coalesced
/// writes, is cut into messages of at most this many bytes.
pub const MAX_MESSAGE: usize = 256 * 1024;

/// Coalesced writes are sent as a message once this many bytes wait (or on
/// flush).
pub const SEND_AT: usize = 64 * 1024;

/// The largest message or frame [`WsIo`] accepts from the peer.
pub const MAX_INCOMING: usize = 1024 * 1024;

/// At most this many messages without data (pings, pongs, empty messages)
/// are handled in one `poll_read` before yielding to other tasks.
const CONTROL_BURST: usize = 64;

/// The limits every [`WsIo`] runs with: messages and frames from the peer up
/// to [`MAX_INCOMING`] (ours are at most [`MAX_MESSAGE`]), 128 KiB read and
/// write buffers (a frame smaller than that waits for a flush, larger ones
/// go straight out), and a write buffer capped at 1 MiB (it only grows past
/// 128 KiB while the socket is blocked, and `WsIo` waits for it to drain
/// before taking more).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(128 * 1024)
        .write_buffer_size(128 * 1024)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(Some(MAX_INCOMING))
        .max_frame_size(Some(MAX_INCOMING))
}

/// Why the client's WebSocket handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// Reading or writing the connection failed.
    #[error("WebSocket handshake failed: {0}")]
    Io(#[from] io::Error),
    /// The door closed the connection without answering.
    #[error("the door closed the connection without answering the WebSocket request")]
    Closed,
    /// The door (or a proxy in front of it) answered with an HTTP status
    /// other than 101, such as `404 Not Found`.
    #[error("the door answered {status}{} to the WebSocket request", spaced(.reason))]
    Refused {
        /// The HTTP status code.
        status: u16,
        /// The reason phrase as sent (control characters dropped, at most
        /// 64 characters); may be empty.
        reason: String,
    },
    /// The reply was not HTTP, or a 101 that is not a valid WebSocket
    /// acceptance for our key (something other than the door answered).
    #[error("the door's reply is not a WebSocket upgrade: {0}")]
    Protocol(String),
    /// The Host value or path can't go into a request.
    #[error(transparent)]
    Request(#[from] UpgradeRequestError),
}

/// `" reason"`, or nothing for an empty reason.
fn spaced(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" {reason}")
    }
}

impl From<UpgradeResponseError> for WsError {
    fn from(e: UpgradeResponseError) -> Self {
        match e {
            UpgradeResponseError::Refused { status, reason } => WsError::Refused { status, reason },
            other => WsError::Protocol(other.to_string()),
        }
    }
}

/// A WebSocket as a byte stream: reads return the payloads of the peer's
/// binary (and text) messages in order; writes are sent as binary messages
/// (coalesced, see the [module docs](self)); pings are answered
/// automatically; a Close frame or the end of the connection reads as EOF;
/// `poll_shutdown` sends Close.
pub struct WsIo<S> {
    ws: WebSocketStream<S>,
    /// The unread rest of the last message received.
    incoming: Bytes,
    /// Bytes written but not yet handed to tungstenite as a message.
    outgoing: BytesMut,
    /// A Close frame (or the end of the connection) was read.
    read_eof: bool,
}

impl<S> fmt::Debug for WsIo<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsIo")
            .field("unread", &self.incoming.len())
            .field("unsent", &self.outgoing.len())
            .field("read_eof", &self.read_eof)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsIo<S> {
    fn new(ws: WebSocketStream<S>) -> Self {
        WsIo {
            ws,
            incoming: Bytes::new(),
            outgoing: BytesMut::new(),
            read_eof: false,
        }
    }

    /// The connection underneath (to read its addresses, say).
    pub fn get_ref(&self) -> &S {
        self.ws.get_ref()
    }

    /// Hand the gathered bytes to tungstenite as one binary message.
    fn poll_send_outgoing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.outgoing.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(write_error)?;
        let payload = self.outgoing.split().freeze();
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(payload))
            .map_err(write_error)?;
        Poll::Ready(Ok(()))
    }

    /// Take bytes from `bufs` into the outgoing message: returns how many.
    /// Sends a full message first if one is waiting (Pending only then,
    /// before taking anything).
    fn poll_write_slices(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        if self.outgoing.len() >= SEND_AT {
            ready!(self.poll_send_outgoing(cx))?;
        }
        let room = MAX_MESSAGE - self.outgoing.len();
        // A remainder of up to a quarter message rides with this one rather
        // than trailing as a message (a write, a segment) of its own: h2
        // hands over a frame as its 9-byte head and a payload that is a
        // multiple of 64 KiB, which would leave 9 bytes over.
        let take = if total - total.min(room) <= MAX_MESSAGE / 4 {
            total
        } else {
            room
        };
        self.outgoing.reserve(take);
        let mut left = take;
        for b in bufs {
            if left == 0 {
                break;
            }
            let n = b.len().min(left);
            self.outgoing.extend_from_slice(&b[..n]);
            left -= n;
        }
        if self.outgoing.len() >= SEND_AT {
            // Send it now if tungstenite has room; if not, the next write or
            // flush will (the bytes are taken either way).
            if let Poll::Ready(Err(e)) = self.poll_send_outgoing(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(take))
    }
}

/// A tungstenite error on the write side as an io::Error.
fn write_error(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed
        | tungstenite::Error::Protocol(tungstenite::error::ProtocolError::SendAfterClosing) => {
            io::Error::new(io::ErrorKind::BrokenPipe, "the WebSocket is closed")
        }
        other => io::Error::other(format!("WebSocket: {other}")),
    }
}

/// A tungstenite error on the read side as an io::Error.
fn read_error(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        e @ (tungstenite::Error::Protocol(_)
        | tungstenite::Error::Capacity(_)
        | tungstenite::Error::Utf8(_)) => {
            io::Error::new(io::ErrorKind::InvalidData, format!("WebSocket: {e}"))
        }
        other => io::Error::other(format!("WebSocket: {other}")),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        for _ in 0..CONTROL_BURST {
            if !this.incoming.is_empty() {
                let n = this.incoming.len().min(buf.remaining());
                buf.put_slice(&this.incoming[..n]);
                this.incoming.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.read_eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                None => this.read_eof = true,
                Some(Ok(Message::Binary(data))) => this.incoming = data,
                Some(Ok(Message::Text(text))) => this.incoming = Bytes::clone(text.as_ref()),
                Some(Ok(Message::Close(_))) => {
                    this.read_eof = true;
                    // Send the Close reply tungstenite queued, if the socket
                    // takes it now; otherwise the next write, flush or
                    // shutdown does.
                    let _ = Pin::new(&mut this.ws).poll_flush(cx);
                }
                // Pongs to pings are queued by tungstenite and sent on the
                // next read, write or flush.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                // The connection ended without a Close: EOF as well (a
                // truncation is for the layer above to notice; HTTP/2 does).
                Some(Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                ))) => this.read_eof = true,
                Some(Err(e)) => return Poll::Ready(Err(read_error(e))),
            }
        }
        // Many messages without data: let other tasks run, then go on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_slices(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_slices(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_outgoing(cx))?;
        Pin::new(&mut this.ws).poll_flush(cx).map_err(write_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_outgoing(cx))?;
        Pin::new(&mut this.ws).poll_close(cx).map_err(write_error)
    }
}

/// The client's side: run the opening handshake on `io` (a connection to
/// the door, TLS already set up for `wss`) with `Host: host_header` and
/// `path`, which already carries the ticket
/// ([`request_path`](onedoor_proto::tunnel::ticket::request_path)).
///
/// Not bounded in time: the caller wraps it in a timeout. The reply head
/// may be at most [`MAX_HEAD`] bytes; bytes after it (frames the server
/// sent at once) are kept for the [`WsIo`].
pub async fn client<S>(mut io: S, host_header: &str, path: &str) -> Result<WsIo<S>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce)
        .map_err(|e| io::Error::other(format!("no randomness for the WebSocket key: {e}")))?;
    let key = websocket_key_text(&nonce);
    let request = upgrade_request(host_header, path, &key)?;
    io.write_all(&request).await?;
    io.flush().await?;

    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let head_len = loop {
        match request_head_end(&buf, MAX_HEAD) {
            HeadParse::Done { head_len } => break head_len,
            HeadParse::TooLong => {
                return Err(WsError::Protocol(format!(
                    "the reply head is longer than {MAX_HEAD} bytes"
                )))
            }
            HeadParse::NeedMore => {}
        }
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(WsError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    check_upgrade_response(&buf[..head_len], &key)?;
    let rest = buf.split_off(head_len);
    let ws = WebSocketStream::from_partially_read(io, rest, Role::Client, Some(ws_config())).await;
    Ok(WsIo::new(ws))
}

/// The server's side: the request head has been read and checked by the
/// caller ([`websocket_key`](onedoor_proto::tunnel::upgrade::websocket_key)
/// gave `key`); write the `101 Switching Protocols` and wrap `io`.
pub async fn server<S>(io: S, key: &str) -> io::Result<WsIo<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    server_partially_read(io, key, Vec::new()).await
}

/// [`server`], for a caller that has read past the request head: `rest` is
/// what followed it (the client's first frames), read before anything else.
pub async fn server_partially_read<S>(mut io: S, key: &str, rest: Vec<u8>) -> io::Result<WsIo<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    io.write_all(&switching_protocols(key)).await?;
    io.flush().await?;
    let ws = WebSocketStream::from_partially_read(io, rest, Role::Server, Some(ws_config())).await;
    Ok(WsIo::new(ws))
}

#[cfg(test)]
mod tests {
    use super::*;
    use onedoor_proto::tunnel::upgrade::websocket_key;
    use std::time::{Duration, Instant};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::time::timeout;

    const LIMIT: Duration = Duration::from_secs(60);

    /// Read a request head the way serve does; returns the head and what
    /// followed it.
    async fn read_head<S: AsyncRead + Unpin>(io: &mut S) -> (Vec<u8>, Vec<u8>) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            if let HeadParse::Done { head_len } = request_head_end(&buf, MAX_HEAD) {
                let rest = buf.split_off(head_len);
                return (buf, rest);
            }
            let n = io.read(&mut chunk).await.unwrap();
            assert!(n > 0, "EOF before the head ended");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Serve's side of the handshake, with the proto checks.
    async fn accept<S: AsyncRead + AsyncWrite + Unpin + Send>(mut io: S) -> WsIo<S> {
        let (head, rest) = read_head(&mut io).await;
        let key = websocket_key(&head).expect("a valid upgrade request");
        server_partially_read(io, &key, rest).await.unwrap()
    }

    async fn tcp_pair() -> (WsIo<TcpStream>, WsIo<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            sock.set_nodelay(true).unwrap();
            accept(sock).await
        });
        let sock = TcpStream::connect(addr).await.unwrap();
        sock.set_nodelay(true).unwrap();
        let client = client(sock, &addr.to_string(), "/door/abc").await.unwrap();
        (client, server.await.unwrap())
    }

    /// A deterministic pattern, different per stream.
    fn pattern(seed: u8, offset: usize, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            let x = offset + i;
            *b = (x as u8) ^ ((x >> 8) as u8).wrapping_mul(31) ^ seed;
        }
    }

    async fn write_pattern<W: AsyncWrite + Unpin>(w: &mut W, seed: u8, total: usize, chunk: usize) {
        let mut buf = vec![0u8; chunk];
        let mut sent = 0;
        while sent < total {
            let n = chunk.min(total - sent);
            pattern(seed, sent, &mut buf[..n]);
            w.write_all(&buf[..n]).await.unwrap();
            sent += n;
        }
        w.flush().await.unwrap();
    }

    async fn read_pattern<R: AsyncRead + Unpin>(r: &mut R, seed: u8, total: usize) {
        let mut buf = vec![0u8; 100_000];
        let mut want = vec![0u8; 100_000];
        let mut got = 0;
        while got < total {
            let n = r.read(&mut buf).await.unwrap();
            assert!(n > 0, "EOF after {got} of {total} bytes");
            pattern(seed, got, &mut want[..n]);
            assert_eq!(buf[..n], want[..n], "content differs after {got} bytes");
            got += n;
        }
    }

    /// An HTTP/2 frame handed over as its 9-byte head and a 512 KiB
    /// payload leaves as messages none of which is a straggler.
    #[tokio::test]
    async fn a_frame_leaves_without_a_small_trailing_message() {
        timeout(LIMIT, async {
            let (a, b) = tokio::io::duplex(1 << 20);
            let cfg = Some(ws_config());
            let (ws, mut peer) = tokio::join!(
                WebSocketStream::from_raw_socket(a, Role::Client, cfg),
                WebSocketStream::from_raw_socket(b, Role::Server, cfg),
            );
            let mut w = WsIo::new(ws);
            let head = [0u8; 9];
            let payload = vec![0x5au8; 512 << 10];
            let total = head.len() + payload.len();
            let writer = tokio::spawn(async move {
                let mut sent = 0;
                while sent < total {
                    let (h, p) = if sent < head.len() {
                        (&head[sent..], &payload[..])
                    } else {
                        (&[][..], &payload[sent - head.len()..])
                    };
                    sent += w
                        .write_vectored(&[IoSlice::new(h), IoSlice::new(p)])
                        .await
                        .unwrap();
                }
                w.flush().await.unwrap();
                w
            });
            let mut sizes = Vec::new();
            while sizes.iter().sum::<usize>() < total {
                let next = std::future::poll_fn(|cx| Pin::new(&mut peer).poll_next(cx)).await;
                match next.unwrap().unwrap() {
                    Message::Binary(b) => sizes.push(b.len()),
                    other => panic!("unexpected {other:?}"),
                }
            }
            let _w = writer.await.unwrap();
            assert_eq!(sizes.iter().sum::<usize>(), total);
            assert!(
                sizes.iter().all(|&n| (4096..=MAX_INCOMING).contains(&n)),
                "message sizes {sizes:?}"
            );
        })
        .await
        .unwrap();
    }

    #[test]
    fn is_a_byte_stream() {
        fn byte_stream<T: AsyncRead + AsyncWrite + Unpin + Send + 'static>() {}
        byte_stream::<WsIo<TcpStream>>();
        byte_stream::<WsIo<tokio::io::DuplexStream>>();
    }

    #[tokio::test]
    async fn handshake_and_echo() {
        timeout(LIMIT, async {
            let (mut c, mut s) = tcp_pair().await;
            c.write_all(b"hello door").await.unwrap();
            c.flush().await.unwrap();
            let mut buf = [0u8; 10];
            s.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hello door");
            s.write_all(b"hi").await.unwrap();
            s.flush().await.unwrap();
            let mut buf = [0u8; 2];
            c.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hi");
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn request_looks_like_a_browser() {
        timeout(LIMIT, async {
            let (a, mut b) = tokio::io::duplex(64 * 1024);
            let client =
                tokio::spawn(async move { client(a, "door.example", "/x/T").await.map(|_| ()) });
            let (head, _) = read_head(&mut b).await;
            let text = String::from_utf8(head.clone()).unwrap();
            assert!(
                text.starts_with("GET /x/T HTTP/1.1\r\nHost: door.example\r\n"),
                "{text}"
            );
            assert!(text.contains("\r\nUser-Agent: Mozilla/5.0 "));
            assert!(!text.to_ascii_lowercase().contains("onedoor"));
            let key = websocket_key(&head).unwrap();
            b.write_all(&switching_protocols(&key)).await.unwrap();
            client.await.unwrap().unwrap();
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sixty_four_mib_each_way() {
        const TOTAL: usize = 64 << 20;
        timeout(LIMIT * 2, async {
            let (c, s) = tcp_pair().await;
            let (mut cr, mut cw) = tokio::io::split(c);
            let (mut sr, mut sw) = tokio::io::split(s);
            let t1 = tokio::spawn(async move {
                write_pattern(&mut cw, 1, TOTAL, 100_003).await;
                cw
            });
            let t2 = tokio::spawn(async move {
                write_pattern(&mut sw, 2, TOTAL, 65_536).await;
                sw
            });
            let t3 = tokio::spawn(async move {
                read_pattern(&mut sr, 1, TOTAL).await;
                sr
            });
            let t4 = tokio::spawn(async move {
                read_pattern(&mut cr, 2, TOTAL).await;
                cr
            });
            let (cw, sw, sr, cr) = (
                t1.await.unwrap(),
                t2.await.unwrap(),
                t3.await.unwrap(),
                t4.await.unwrap(),
            );
            // Then a clean close: the client shuts down, the server reads EOF.
            let mut c = cr.unsplit(cw);
            let mut s = sr.unsplit(sw);
            c.shutdown().await.unwrap();
            let mut buf = [0u8; 16];
            assert_eq!(s.read(&mut buf).await.unwrap(), 0);
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn over_a_small_pipe() {
        // A 4 KiB duplex makes every write and flush block often.
        const TOTAL: usize = 8 << 20;
        timeout(LIMIT, async {
            let (a, b) = tokio::io::duplex(4096);
            let server = tokio::spawn(accept(b));
            let c = client(a, "x", "/").await.unwrap();
            let s = server.await.unwrap();
            let (mut cr, mut cw) = tokio::io::split(c);
            let (mut sr, mut sw) = tokio::io::split(s);
            let t1 = tokio::spawn(async move { write_pattern(&mut cw, 3, TOTAL, 300_000).await });
            let t2 = tokio::spawn(async move { write_pattern(&mut sw, 4, TOTAL, 1000).await });
            let t3 = tokio::spawn(async move { read_pattern(&mut sr, 3, TOTAL).await });
            read_pattern(&mut cr, 4, TOTAL).await;
            t1.await.unwrap();
            t2.await.unwrap();
            t3.await.unwrap();
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn many_small_writes_then_one_flush() {
        timeout(LIMIT, async {
            let (mut c, mut s) = tcp_pair().await;
            let mut expected = Vec::new();
            for i in 0..20_000usize {
                let piece: Vec<u8> = (0..(i % 37 + 1)).map(|j| (i + j) as u8).collect();
                // poll_write then nothing else: no flush until the end.
                let n = c.write(&piece).await.unwrap();
                expected.extend_from_slice(&piece[..n]);
            }
            c.flush().await.unwrap();
            let mut got = vec![0u8; expected.len()];
            s.read_exact(&mut got).await.unwrap();
            assert_eq!(got, expected);
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn vectored_writes_arrive_in_order() {
        timeout(LIMIT, async {
            let (mut c, mut s) = tcp_pair().await;
            let head = [9u8; 9];
            let body = vec![7u8; 300_000];
            let mut sent = Vec::new();
            let mut off = 0;
            let all: Vec<u8> = head.iter().chain(body.iter()).copied().collect();
            while off < all.len() {
                let (a, b) = if off < 9 {
                    (&all[off..9], &all[9..])
                } else {
                    (&all[off..], &[][..])
                };
                let n = c
                    .write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
                    .await
                    .unwrap();
                assert!(n > 0);
                sent.extend_from_slice(&all[off..off + n]);
                off += n;
            }
            c.flush().await.unwrap();
            let mut got = vec![0u8; all.len()];
            s.read_exact(&mut got).await.unwrap();
            assert_eq!(got, all);
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn shutdown_reads_as_eof_both_ways() {
        timeout(LIMIT, async {
            let (mut c, mut s) = tcp_pair().await;
            s.write_all(b"last words").await.unwrap();
            s.shutdown().await.unwrap();
            let mut got = Vec::new();
            c.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"last words");
            // The peer closed: writing fails, it does not hang.
            let err = async {
                c.write_all(b"x").await?;
                c.flush().await
            }
            .await
            .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
            c.shutdown().await.unwrap();
            // The server sees the client's Close reply as EOF too.
            let mut buf = [0u8; 4];
            assert_eq!(s.read(&mut buf).await.unwrap(), 0);
            assert_eq!(s.read(&mut buf).await.unwrap(), 0);
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn connection_end_without_close_is_eof() {
        timeout(LIMIT, async {
            let (mut c, s) = tcp_pair().await;
            drop(s);
            let mut buf = [0u8; 4];
            assert_eq!(c.read(&mut buf).await.unwrap(), 0);
            assert_eq!(c.read(&mut buf).await.unwrap(), 0);
            // A connection cut in the middle of a frame ends the same way.
            let (mut c, raw) = client_facing(b"\x82\x10abc").await;
            drop(raw);
            assert_eq!(c.read(&mut buf).await.unwrap(), 0);
        })
        .await
        .unwrap();
    }

    /// A raw server that answers `reply` to whatever request comes.
    async fn raw_door(
        reply: &'static [u8],
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let _ = read_head(&mut sock).await;
            sock.write_all(reply).await.unwrap();
            sock
        });
        (addr, task)
    }

    #[tokio::test]
    async fn refusal_names_the_status() {
        timeout(LIMIT, async {
            let (addr, _door) =
                raw_door(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found").await;
            let sock = TcpStream::connect(addr).await.unwrap();
            let err = client(sock, "door.example", "/x").await.unwrap_err();
            assert!(
                matches!(&err, WsError::Refused { status: 404, reason } if reason == "Not Found"),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                "the door answered 404 Not Found to the WebSocket request"
            );

            let (addr, _door) = raw_door(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            )
            .await;
            let sock = TcpStream::connect(addr).await.unwrap();
            let err = client(sock, "door.example", "/x").await.unwrap_err();
            assert!(matches!(err, WsError::Protocol(_)), "{err:?}");

            let (addr, door) = raw_door(b"HTTP/1.1 200 OK\r\n").await;
            let sock = TcpStream::connect(addr).await.unwrap();
            let c = tokio::spawn(client(sock, "door.example", "/x"));
            drop(door.await.unwrap());
            assert!(matches!(c.await.unwrap().unwrap_err(), WsError::Closed));

            let sock = TcpStream::connect(raw_door(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await.0)
                .await
                .unwrap();
            assert!(matches!(
                client(sock, "d", "/x").await.unwrap_err(),
                WsError::Protocol(_)
            ));

            let sock = TcpStream::connect(addr_of_long_reply().await)
                .await
                .unwrap();
            assert!(matches!(
                client(sock, "d", "/x").await.unwrap_err(),
                WsError::Protocol(_)
            ));
        })
        .await
        .unwrap();
    }

    async fn addr_of_long_reply() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let _ = read_head(&mut sock).await;
            let _ = sock.write_all(b"HTTP/1.1 200 OK\r\n").await;
            let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
            for _ in 0..(2 * MAX_HEAD / line.len()) {
                if sock.write_all(line).await.is_err() {
                    break;
                }
            }
        });
        addr
    }

    /// A client WsIo talking to a raw server that accepted the upgrade and
    /// then sends `frames`; returns the WsIo and the raw socket.
    async fn client_facing(frames: &'static [u8]) -> (WsIo<TcpStream>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let door = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let (head, _) = read_head(&mut sock).await;
            let key = websocket_key(&head).unwrap();
            let mut reply = switching_protocols(&key);
            reply.extend_from_slice(frames);
            sock.write_all(&reply).await.unwrap();
            sock
        });
        let sock = TcpStream::connect(addr).await.unwrap();
        let c = client(sock, "d", "/x").await.unwrap();
        (c, door.await.unwrap())
    }

    #[tokio::test]
    async fn pings_are_answered_and_text_reads_as_bytes() {
        timeout(LIMIT, async {
            // ping "hi", binary "abc", empty binary, text "de", binary "f"
            let (mut c, mut raw) =
                client_facing(b"\x89\x02hi\x82\x03abc\x82\x00\x81\x02de\x82\x01f").await;
            let mut buf = [0u8; 6];
            c.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"abcdef");
            // The pong went out: a masked control frame, opcode 0xA, "hi".
            let mut pong = [0u8; 8];
            raw.read_exact(&mut pong).await.unwrap();
            assert_eq!(pong[0], 0x8a);
            assert_eq!(pong[1], 0x80 | 2);
            let mask = [pong[2], pong[3], pong[4], pong[5]];
            assert_eq!([pong[6] ^ mask[0], pong[7] ^ mask[1]], *b"hi");
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn garbage_frames_are_read_errors() {
        timeout(LIMIT, async {
            let cases: [&'static [u8]; 5] = [
                // Reserved opcode 0x3.
                b"\x83\x01a",
                // RSV1 set without an extension.
                b"\xc2\x01a",
                // A frame claiming 2^62 bytes.
                b"\x82\x7f\x40\x00\x00\x00\x00\x00\x00\x00",
                // A masked frame from the server.
                b"\x82\x81\x01\x02\x03\x04a",
                // A fragmented control frame.
                b"\x09\x00",
            ];
            for frames in cases {
                let (mut c, _raw) = client_facing(frames).await;
                let mut buf = [0u8; 16];
                let err = c.read(&mut buf).await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{frames:?}: {err}");
            }
            // Unmasked frames from a client are refused by the server.
            let (mut a, b) = tokio::io::duplex(4096);
            let server = tokio::spawn(accept(b));
            let key = websocket_key_text(&[5; 16]);
            a.write_all(&upgrade_request("d", "/", &key).unwrap())
                .await
                .unwrap();
            let mut s = server.await.unwrap();
            a.write_all(b"\x82\x01a").await.unwrap();
            let mut buf = [0u8; 4];
            assert_eq!(
                s.read(&mut buf).await.unwrap_err().kind(),
                io::ErrorKind::InvalidData
            );
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn oversized_message_is_refused() {
        timeout(LIMIT, async {
            // A 2 MiB binary message, unmasked from the server.
            let mut frames = vec![0x82, 0x7f];
            frames.extend_from_slice(&(2u64 << 20).to_be_bytes());
            frames.resize(frames.len() + (2 << 20), 0);
            let frames: &'static [u8] = Box::leak(frames.into_boxed_slice());
            let (mut c, _raw) = client_facing(frames).await;
            let mut buf = [0u8; 16];
            assert_eq!(
                c.read(&mut buf).await.unwrap_err().kind(),
                io::ErrorKind::InvalidData
            );
        })
        .await
        .unwrap();
    }

    async fn measure<R, W>(label: &str, mut w: W, mut r: R, total: usize)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let start = Instant::now();
        let writer = tokio::spawn(async move {
            let buf = vec![0x5au8; 256 * 1024];
            let mut left = total;
            while left > 0 {
                let n = left.min(buf.len());
                w.write_all(&buf[..n]).await.unwrap();
                left -= n;
            }
            w.flush().await.unwrap();
            w
        });
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0;
        while got < total {
            let n = r.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got += n;
        }
        let secs = start.elapsed().as_secs_f64();
        let _w = writer.await.unwrap();
        println!(
            "{label}: {} MiB in {secs:.2} s = {:.0} MB/s = {:.2} Gbit/s",
            total >> 20,
            total as f64 / secs / 1e6,
            total as f64 * 8.0 / secs / 1e9
        );
    }

    /// Single-stream throughput over loopback TCP, WsIo each way and a raw
    /// TcpStream for comparison. Size: `ONEDOOR_WS_BENCH_MIB` (default 1024).
    /// `cargo test --release -p onedoor-net ws::tests::throughput -- --ignored --nocapture`
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore]
    async fn throughput() {
        let mib: usize = std::env::var("ONEDOOR_WS_BENCH_MIB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024);
        let total = mib << 20;
        timeout(Duration::from_secs(600), async {
            for _ in 0..3 {
                let (c, s) = tcp_pair().await;
                measure("ws client->server (masked)", c, s, total).await;
                let (c, s) = tcp_pair().await;
                measure("ws server->client", s, c, total).await;
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
                let (a, (b, _)) = (a.unwrap(), b.unwrap());
                a.set_nodelay(true).unwrap();
                b.set_nodelay(true).unwrap();
                measure("raw tcp", a, b, total).await;
            }
        })
        .await
        .unwrap();
    }
}
