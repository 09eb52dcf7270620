//! Byte streams over HTTP/2 streams: [`TunnelStream`] for callers that want
//! `AsyncRead + AsyncWrite`, and [`join`], which moves bytes between a
//! socket and a stream without an extra copy, both directions at once,
//! half-close preserved.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::client::{OpeningStream, PendingAnswer};
use super::error::OpenError;

/// The first read buffer of a direction; it doubles while reads fill it, up
/// to [`MAX_CHUNK`], so an interactive flow holds little and a bulk one
/// moves big frames.
const MIN_CHUNK: usize = 16 << 10;
/// The largest read buffer of a direction.
const MAX_CHUNK: usize = 512 << 10;

/// An h2 error as an I/O error: a reset stream is `ConnectionReset`.
pub(crate) fn h2_to_io(e: h2::Error) -> io::Error {
    if e.is_io() {
        return e.into_io().unwrap_or_else(|| io::ErrorKind::Other.into());
    }
    if e.is_reset() {
        return io::Error::new(io::ErrorKind::ConnectionReset, e);
    }
    io::Error::other(e)
}

/// Wait until `send` may queue some data (at most `want` bytes are asked
/// for) and say how much. `None` when the stream can no longer send.
pub(crate) fn poll_send_capacity(
    send: &mut SendStream<Bytes>,
    want: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    send.reserve_capacity(want);
    // h2 reports capacity only when it grows, so look first.
    let have = send.capacity();
    if have > 0 {
        return Poll::Ready(Ok(have));
    }
    match ready!(send.poll_capacity(cx)) {
        Some(Ok(n)) => Poll::Ready(Ok(n)),
        Some(Err(e)) => Poll::Ready(Err(h2_to_io(e))),
        None => Poll::Ready(Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "the tunnel stream was closed by the peer",
        ))),
    }
}

/// A forwarded TCP stream through the tunnel. Reading gives the bytes the
/// far end sent (EOF when it half-closed); `shutdown` half-closes towards
/// the far end (HTTP/2 END_STREAM, then `shutdown(SHUT_WR)` there); dropping
/// it before both directions ended resets the stream.
pub struct TunnelStream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    rx: Bytes,
    read_eof: bool,
    write_closed: bool,
}

impl fmt::Debug for TunnelStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelStream")
            .field("stream", &self.send.stream_id().as_u32())
            .field("read_eof", &self.read_eof)
            .field("write_closed", &self.write_closed)
            .finish()
    }
}

impl TunnelStream {
    pub(crate) fn new(send: SendStream<Bytes>, recv: RecvStream) -> Self {
        TunnelStream {
            send,
            recv,
            rx: Bytes::new(),
            read_eof: false,
            write_closed: false,
        }
    }

    /// The parts, for [`join`]-like use. Bytes already received but not yet
    /// read come first.
    fn into_parts(self) -> (Bytes, SendStream<Bytes>, RecvStream, bool) {
        (self.rx, self.send, self.recv, self.write_closed)
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.rx.is_empty() {
                let n = this.rx.len().min(buf.remaining());
                buf.put_slice(&this.rx[..n]);
                this.rx.advance(n);
                let _ = this.recv.flow_control().release_capacity(n);
                return Poll::Ready(Ok(()));
            }
            if this.read_eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(b)) => this.rx = b,
                Some(Err(e)) => return Poll::Ready(Err(h2_to_io(e))),
                None => this.read_eof = true,
            }
        }
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let n = ready!(poll_send_capacity(&mut this.send, buf.len(), cx))?.min(buf.len());
        this.send
            .send_data(Bytes::copy_from_slice(&buf[..n]), false)
            .map_err(h2_to_io)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The session's driver writes queued frames out by itself.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_closed {
            this.write_closed = true;
            this.send.send_data(Bytes::new(), true).map_err(h2_to_io)?;
        }
        Poll::Ready(Ok(()))
    }
}

/// Read buffers of bulk flows, set aside while h2 still holds bytes split
/// off them or while their flow waits, for the next read of any flow: a
/// bulk flow then reads into memory already faulted in instead of a fresh
/// allocation (whose page faults cost more than the copy), and an idle flow
/// still holds no buffer. Bounded: at most `spare::MAX` buffers of at most
/// [`MAX_CHUNK`] each, for the whole process.
mod spare {
    use std::sync::{Mutex, MutexGuard};

    use bytes::BytesMut;

    /// How many buffers are kept.
    pub(super) const MAX: usize = 8;

    /// A set of spare buffers ([`SPARE`] is the process's).
    pub(super) struct Spare(Mutex<Vec<BytesMut>>);

    pub(super) static SPARE: Spare = Spare::new();

    impl Spare {
        pub(super) const fn new() -> Self {
            Spare(Mutex::new(Vec::new()))
        }

        fn lock(&self) -> MutexGuard<'_, Vec<BytesMut>> {
            self.0.lock().unwrap_or_else(|p| p.into_inner())
        }

        /// How many buffers are set aside now.
        #[cfg(test)]
        pub(super) fn len(&self) -> usize {
            self.lock().len()
        }

        /// A buffer with room for `chunk` bytes: a spare one that is no
        /// longer shared, or a new one.
        pub(super) fn take(&self, chunk: usize) -> BytesMut {
            if chunk > super::MIN_CHUNK {
                let mut s = self.lock();
                if let Some(i) = s.iter_mut().position(|b| b.try_reclaim(chunk)) {
                    return s.swap_remove(i);
                }
            }
            BytesMut::with_capacity(chunk)
        }

        /// Set `buf` aside, if its flow reads big chunks (`chunk`); the
        /// oldest spare goes when there are too many.
        pub(super) fn put(&self, buf: BytesMut, chunk: usize) {
            if chunk <= super::MIN_CHUNK {
                return;
            }
            let mut s = self.lock();
            if s.len() >= MAX {
                s.remove(0);
            }
            s.push(buf);
        }
    }
}

/// Socket → stream.
struct Up {
    pending: Bytes,
    buf: BytesMut,
    /// Whether `buf` holds (a share of) an allocation.
    allocated: bool,
    chunk: usize,
    done: bool,
    total: u64,
}

impl Up {
    fn new(done: bool) -> Self {
        Up {
            pending: Bytes::new(),
            buf: BytesMut::new(),
            allocated: false,
            chunk: MIN_CHUNK,
            done,
            total: 0,
        }
    }

    fn poll<S: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut S,
        send: &mut SendStream<Bytes>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = ready!(poll_send_capacity(send, self.pending.len(), cx))?;
                let part = self.pending.split_to(n.min(self.pending.len()));
                send.send_data(part, false).map_err(h2_to_io)?;
                continue;
            }
            if self.done {
                return Poll::Ready(Ok(()));
            }
            // Memory already faulted in, reused: this flow's buffer once h2
            // has written out (and dropped) what was split off it, or a
            // spare one. A fresh allocation per read costs more in page
            // faults than the copy itself.
            if self.buf.capacity() < self.chunk && !self.buf.try_reclaim(self.chunk) {
                let old = std::mem::replace(&mut self.buf, spare::SPARE.take(self.chunk));
                if std::mem::replace(&mut self.allocated, true) {
                    spare::SPARE.put(old, self.chunk);
                }
            }
            let n = match tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, &mut self.buf) {
                Poll::Pending => {
                    // An idle flow holds no buffer.
                    if std::mem::replace(&mut self.allocated, false) {
                        spare::SPARE.put(std::mem::take(&mut self.buf), self.chunk);
                    }
                    return Poll::Pending;
                }
                Poll::Ready(r) => r?,
            };
            if n == 0 {
                send.send_data(Bytes::new(), true).map_err(h2_to_io)?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            if n == self.chunk {
                self.chunk = (self.chunk * 2).min(MAX_CHUNK);
            }
            self.total += n as u64;
            self.pending = self.buf.split().freeze();
        }
    }
}

/// Stream → socket.
struct Down {
    chunk: Bytes,
    eof: bool,
    done: bool,
    unflushed: bool,
    total: u64,
}

impl Down {
    fn new(first: Bytes) -> Self {
        Down {
            chunk: first,
            eof: false,
            done: false,
            unflushed: false,
            total: 0,
        }
    }

    fn poll<S: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut S,
        recv: &mut RecvStream,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.chunk.is_empty() {
                let n = ready!(Pin::new(&mut *io).poll_write(cx, &self.chunk))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.chunk.advance(n);
                self.total += n as u64;
                self.unflushed = true;
                // Released only once written: the far end's window follows
                // how fast this socket drains.
                let _ = recv.flow_control().release_capacity(n);
                continue;
            }
            if self.done {
                return Poll::Ready(Ok(()));
            }
            if self.eof {
                ready!(Pin::new(&mut *io).poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            match recv.poll_data(cx) {
                Poll::Ready(Some(Ok(b))) => self.chunk = b,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(h2_to_io(e))),
                Poll::Ready(None) => self.eof = true,
                Poll::Pending => {
                    if self.unflushed {
                        ready!(Pin::new(&mut *io).poll_flush(cx))?;
                        self.unflushed = false;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// How many bytes a [`join`] moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Moved {
    /// From the socket into the tunnel.
    pub up: u64,
    /// From the tunnel into the socket.
    pub down: u64,
}

/// Why a [`join_opening`] ended without finishing.
#[derive(Debug)]
pub enum JoinError {
    /// The stream was not opened: refused by the allow-list, destination
    /// unreachable, or the session went away before the answer.
    Open(OpenError),
    /// The stream was open; copying failed (or the stream was reset).
    Io(io::Error),
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Open(e) => e.fmt(f),
            JoinError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for JoinError {}

/// The future of [`join`] and [`join_opening`].
struct Join<S> {
    io: S,
    send: SendStream<Bytes>,
    /// Until the answer has come: the stream→socket direction waits for it.
    answer: Option<PendingAnswer>,
    recv: Option<RecvStream>,
    up: Up,
    down: Down,
    /// The socket→stream direction failed before the answer came: the
    /// answer (a refusal, most likely) is the better report.
    up_failed: Option<io::Error>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Join<S> {
    fn fail(&mut self, e: JoinError) -> Poll<Result<Moved, JoinError>> {
        self.send.send_reset(h2::Reason::CANCEL);
        Poll::Ready(Err(e))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Future for Join<S> {
    type Output = Result<Moved, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(answer) = &mut this.answer {
            match answer.as_mut().poll(cx) {
                Poll::Ready(Ok(recv)) => {
                    this.answer = None;
                    this.recv = Some(recv);
                    if let Some(e) = this.up_failed.take() {
                        return this.fail(JoinError::Io(e));
                    }
                }
                Poll::Ready(Err(e)) => return this.fail(JoinError::Open(e)),
                Poll::Pending => {}
            }
        }
        let up = if this.up_failed.is_some() || (this.up.done && this.up.pending.is_empty()) {
            Poll::Ready(Ok(()))
        } else {
            match this.up.poll(cx, &mut this.io, &mut this.send) {
                // Waiting on the socket: notice a reset of the stream too.
                Poll::Pending => match this.send.poll_reset(cx) {
                    Poll::Ready(Ok(reason)) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        format!("tunnel stream reset by the peer: {reason}"),
                    ))),
                    Poll::Ready(Err(e)) => Poll::Ready(Err(h2_to_io(e))),
                    Poll::Pending => Poll::Pending,
                },
                r => r,
            }
        };
        let Some(recv) = &mut this.recv else {
            // Still waiting for the answer (polled above): bytes from the
            // socket go ahead; an error waits for the answer's verdict.
            if let Poll::Ready(Err(e)) = up {
                this.up_failed = Some(e);
            }
            return Poll::Pending;
        };
        let down = if this.down.done {
            Poll::Ready(Ok(()))
        } else {
            this.down.poll(cx, &mut this.io, recv)
        };
        match (up, down) {
            (Poll::Ready(Err(e)), _) | (_, Poll::Ready(Err(e))) => this.fail(JoinError::Io(e)),
            (Poll::Ready(Ok(())), Poll::Ready(Ok(()))) => Poll::Ready(Ok(Moved {
                up: this.up.total,
                down: this.down.total,
            })),
            _ => Poll::Pending,
        }
    }
}

/// Join a socket (anything `AsyncRead + AsyncWrite`) and a tunnel stream
/// until both directions have ended: EOF from the socket becomes
/// END_STREAM, END_STREAM becomes `shutdown` of the socket's write half,
/// and the other direction goes on. An error in either direction (or a
/// reset of the stream) ends both and resets the stream.
pub async fn join<S>(io: S, stream: TunnelStream) -> io::Result<Moved>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (rx, send, recv, write_closed) = stream.into_parts();
    join_parts(io, send, recv, rx, write_closed).await
}

/// [`join`] for a stream whose answer has not come yet
/// ([`Session::start_tcp`]): bytes from the socket go into the stream at
/// once (the server delivers them once it has connected), bytes from the
/// stream once the answer said yes. A refusal (or any other failed
/// answer) is [`JoinError::Open`], even if the socket's side failed first.
///
/// [`Session::start_tcp`]: super::client::Session::start_tcp
pub async fn join_opening<S>(io: S, stream: OpeningStream) -> Result<Moved, JoinError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    Join {
        io,
        send: stream.send,
        answer: Some(stream.answer),
        recv: None,
        up: Up::new(false),
        down: Down::new(Bytes::new()),
        up_failed: None,
    }
    .await
}

/// [`join`] on the parts of a server-side stream.
pub(crate) async fn join_parts<S>(
    io: S,
    send: SendStream<Bytes>,
    recv: RecvStream,
    rx: Bytes,
    write_closed: bool,
) -> io::Result<Moved>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let joined = Join {
        io,
        send,
        answer: None,
        recv: Some(recv),
        up: Up::new(write_closed),
        down: Down::new(rx),
        up_failed: None,
    }
    .await;
    joined.map_err(|e| match e {
        JoinError::Io(e) => e,
        // No answer to wait for: cannot happen; said as an error anyway.
        JoinError::Open(e) => io::Error::other(e),
    })
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};

    use super::spare::{Spare, MAX};
    use super::{MAX_CHUNK, MIN_CHUNK};

    #[test]
    fn spare_buffers_are_reused_once_no_longer_shared() {
        let spare = Spare::new();
        let chunk = 4 * MIN_CHUNK;
        let mut buf = BytesMut::with_capacity(chunk);
        let base = buf.as_ptr() as usize;
        buf.put_bytes(1, chunk);
        // h2 still holds what was read.
        let in_flight = buf.split().freeze();
        spare.put(buf, chunk);
        // Shared: not taken (a new buffer instead).
        let other = spare.take(chunk);
        assert_ne!(other.as_ptr() as usize, base);
        drop(in_flight);
        // Written out and dropped: the same memory comes back.
        let again = spare.take(chunk);
        assert_eq!(again.as_ptr() as usize, base);
        assert!(again.capacity() >= chunk);
    }

    #[test]
    fn small_flows_keep_nothing_aside_and_the_spares_are_bounded() {
        let spare = Spare::new();
        spare.put(BytesMut::with_capacity(MIN_CHUNK), MIN_CHUNK);
        assert_eq!(spare.len(), 0);
        for _ in 0..3 * MAX {
            spare.put(BytesMut::with_capacity(MAX_CHUNK), MAX_CHUNK);
        }
        assert_eq!(spare.len(), MAX);
    }
}
