//! The session's byte stream as HTTP/2 sees it. [`Wire`] wraps the
//! transport and:
//!
//! - sends a *first flight* (the client's hello and padding, the server's
//!   reply and padding) in front of HTTP/2's first bytes, holding HTTP/2's
//!   writes until its first flush so everything leaves in one write (one
//!   transport record: the padding covers the preface and SETTINGS too);
//! - on the client, reads and checks the server's reply before HTTP/2 sees
//!   any byte, and tells [`Session::connect`] the verdict;
//! - on the server, skips the client's padding;
//! - stamps the time of the last read, for the keepalive.
//!
//! [`Session::connect`]: super::client::Session::connect

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use onedoor_proto::tunnel::session::{ClientHello, ServerReply, REPLY_LEN};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::error::AuthRefusal;

/// When the peer was last heard from.
#[derive(Debug)]
pub(crate) struct Activity {
    base: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Activity {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long since the last byte arrived.
    pub(crate) fn idle(&self) -> Duration {
        let now = self.base.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// The client's check of the server's reply.
#[derive(Debug)]
pub(crate) struct ReplyCheck {
    hello: ClientHello,
    fixed: [u8; REPLY_LEN],
    got: usize,
    pad_left: usize,
    verdict: Option<oneshot::Sender<Result<(), AuthRefusal>>>,
}

impl ReplyCheck {
    pub(crate) fn new(
        hello: ClientHello,
        verdict: oneshot::Sender<Result<(), AuthRefusal>>,
    ) -> Self {
        ReplyCheck {
            hello,
            fixed: [0; REPLY_LEN],
            got: 0,
            pad_left: 0,
            verdict: Some(verdict),
        }
    }

    fn decide(&mut self, v: Result<(), AuthRefusal>) {
        if let Some(tx) = self.verdict.take() {
            let _ = tx.send(v);
        }
    }

    /// Read the reply: `Ok(true)` when verified, `Ok(false)` at EOF.
    fn poll<T: AsyncRead + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
        activity: &Activity,
    ) -> Poll<io::Result<bool>> {
        let mut scratch = [0u8; 1024];
        loop {
            let want = if self.got < REPLY_LEN {
                REPLY_LEN - self.got
            } else if self.pad_left > 0 {
                self.pad_left.min(scratch.len())
            } else {
                self.decide(Ok(()));
                return Poll::Ready(Ok(true));
            };
            let n = {
                let target = if self.got < REPLY_LEN {
                    &mut self.fixed[self.got..]
                } else {
                    &mut scratch[..want]
                };
                let mut rb = ReadBuf::new(target);
                ready!(Pin::new(&mut *io).poll_read(cx, &mut rb))?;
                rb.filled().len()
            };
            if n == 0 {
                self.decide(Err(AuthRefusal::Closed));
                return Poll::Ready(Ok(false));
            }
            activity.touch();
            if self.got < REPLY_LEN {
                self.got += n;
                if self.got == REPLY_LEN {
                    match ServerReply::parse(&self.fixed) {
                        Some(r) if r.accepts(&self.hello) => self.pad_left = r.pad_len.into(),
                        _ => {
                            self.decide(Err(AuthRefusal::OtherAnswer));
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                AuthRefusal::OtherAnswer.to_string(),
                            )));
                        }
                    }
                }
            } else {
                self.pad_left -= n;
            }
        }
    }
}

impl Drop for ReplyCheck {
    fn drop(&mut self) {
        self.decide(Err(AuthRefusal::Closed));
    }
}

/// Bytes to send before anything else.
#[derive(Debug)]
struct FirstFlight {
    buf: Vec<u8>,
    sent: usize,
}

/// The transport under HTTP/2: see the module docs.
#[derive(Debug)]
pub(crate) struct Wire<T> {
    io: T,
    first: Option<FirstFlight>,
    skip_in: usize,
    reply: Option<ReplyCheck>,
    activity: Arc<Activity>,
}

impl<T> Wire<T> {
    /// The client's wire: `first` (hello and padding) goes out first, the
    /// server's reply is checked before HTTP/2 reads.
    pub(crate) fn client(
        io: T,
        first: Vec<u8>,
        reply: ReplyCheck,
        activity: Arc<Activity>,
    ) -> Self {
        Wire {
            io,
            first: Some(FirstFlight {
                buf: first,
                sent: 0,
            }),
            skip_in: 0,
            reply: Some(reply),
            activity,
        }
    }

    /// The server's wire: `first` (reply and padding) goes out first, the
    /// client's `skip_in` padding bytes are discarded.
    pub(crate) fn server(io: T, first: Vec<u8>, skip_in: usize, activity: Arc<Activity>) -> Self {
        Wire {
            io,
            first: Some(FirstFlight {
                buf: first,
                sent: 0,
            }),
            skip_in,
            reply: None,
            activity,
        }
    }
}

impl<T: AsyncWrite + Unpin> Wire<T> {
    fn poll_first_flight(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(f) = &mut self.first {
            if f.sent == f.buf.len() {
                self.first = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &f.buf[f.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            f.sent += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Wire<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.skip_in > 0 {
            let mut scratch = [0u8; 1024];
            let n = this.skip_in.min(scratch.len());
            let mut rb = ReadBuf::new(&mut scratch[..n]);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                return Poll::Ready(Ok(()));
            }
            this.activity.touch();
            this.skip_in -= n;
        }
        if let Some(check) = &mut this.reply {
            let verified = ready!(check.poll(&mut this.io, cx, &this.activity))?;
            this.reply = None;
            if !verified {
                return Poll::Ready(Ok(()));
            }
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.activity.touch();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Wire<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(f) = &mut this.first {
            f.buf.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(f) = &mut this.first {
            let mut n = 0;
            for b in bufs {
                f.buf.extend_from_slice(b);
                n += b.len();
            }
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_first_flight(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_first_flight(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// Send a PING whenever the peer has been quiet for `ka.interval`; return
/// how long it has been silent once that reaches `ka.timeout`.
pub(crate) async fn keepalive(
    mut pings: h2::PingPong,
    activity: Arc<Activity>,
    ka: super::Keepalive,
) -> Duration {
    let mut in_flight = false;
    loop {
        let idle = activity.idle();
        if idle >= ka.timeout {
            return idle;
        }
        if idle >= ka.interval && !in_flight {
            in_flight = pings.send_ping(h2::Ping::opaque()).is_ok();
        }
        let wait = if idle < ka.interval {
            ka.interval - idle
        } else {
            ka.timeout - idle
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            r = std::future::poll_fn(|cx| pings.poll_pong(cx)), if in_flight => {
                in_flight = false;
                if r.is_err() {
                    // The connection is closing; its driver reports why.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}
