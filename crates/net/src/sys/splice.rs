//! Zero-copy forwarding with `splice(2)`: socket → pipe → socket, per
//! direction, driven by tokio readiness. No byte is copied to user space.
//!
//! Pipes come from a process-wide pool and are held only while bytes are in
//! flight, so an idle connection holds no pipe (thousands of held connections
//! cost two sockets each, not six fds). A direction only fills a pipe when
//! the pipe is empty and never asks for more than it holds, so `EAGAIN` on
//! the read side always means "the socket has nothing" and tokio's readiness
//! bookkeeping stays right. When no pipe can be had (out of fds), that chunk
//! is copied through a small buffer instead.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Mutex;

use nix::fcntl::{splice, OFlag, SpliceFFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::forward::{Moved, Tally};

/// The pipe size asked for, and the most one `splice` call moves.
const PIPE_SIZE: usize = 1024 * 1024;
const CHUNK: usize = PIPE_SIZE;

/// Idle pipes kept for reuse; more are closed when returned.
const POOL_MAX: usize = 256;

/// An empty pipe: read end, write end, capacity in bytes.
#[derive(Debug)]
struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    cap: usize,
}

static POOL: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());

impl Pipe {
    fn take() -> io::Result<Pipe> {
        if let Some(p) = POOL.lock().expect("pipe pool").pop() {
            return Ok(p);
        }
        let (r, w) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        // A bigger pipe moves more per system call; refused (EPERM past
        // /proc/sys/fs/pipe-max-size for non-root) is fine, 64 KiB stays.
        let cap = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE as i32))
            .or_else(|_| nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_GETPIPE_SZ))
            .map(|n| n as usize)
            .unwrap_or(64 * 1024);
        Ok(Pipe { r, w, cap })
    }

    /// Is the pipe empty (so it may go back to the pool)?
    fn is_empty(&self) -> bool {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int through the valid pointer.
        let r = unsafe { libc::ioctl(self.r.as_raw_fd(), libc::FIONREAD, &mut n) };
        r == 0 && n == 0
    }

    /// Give back an empty pipe.
    fn put(self) {
        let mut pool = POOL.lock().expect("pipe pool");
        if pool.len() < POOL_MAX {
            pool.push(self);
        }
    }
}

/// Forward both directions with splice until both have ended.
pub async fn join(
    client: &TcpStream,
    backend: &TcpStream,
    tally: &impl Tally,
) -> io::Result<Moved> {
    let up = one_way(client, backend, |n| tally.up(n));
    let down = one_way(backend, client, |n| tally.down(n));
    let (up, down) = tokio::try_join!(up, down)?;
    Ok(Moved { up, down })
}

async fn one_way(src: &TcpStream, dst: &TcpStream, count: impl Fn(u64)) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        src.readable().await?;
        let moved = match Pipe::take() {
            Ok(pipe) => {
                let r = chunk_spliced(src, dst, &pipe).await;
                // Only an empty pipe goes back; after a write error it may
                // still hold bytes.
                if r.is_ok() || pipe.is_empty() {
                    pipe.put();
                }
                r?
            }
            Err(_) => chunk_buffered(src, dst).await?,
        };
        match moved {
            None => continue,
            Some(0) => {
                // FIN from the source: pass it on, the other direction goes on.
                let _ =
                    nix::sys::socket::shutdown(dst.as_raw_fd(), nix::sys::socket::Shutdown::Write);
                return Ok(total);
            }
            Some(n) => {
                total += n as u64;
                count(n as u64);
            }
        }
    }
}

/// Move one chunk through `pipe`, leaving it empty. `None`: nothing to read
/// after all (readiness was stale); `Some(0)`: end of stream.
async fn chunk_spliced(src: &TcpStream, dst: &TcpStream, pipe: &Pipe) -> io::Result<Option<usize>> {
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    let want = CHUNK.min(pipe.cap);
    let n = match src.try_io(Interest::READABLE, || {
        splice(src.as_fd(), None, pipe.w.as_fd(), None, want, flags).map_err(io::Error::from)
    }) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) => return Err(e),
    };
    if n > 0 && n < want {
        // A short read drained the socket: forget its readiness now rather
        // than pay a splice that says EAGAIN (tokio does the same for short
        // reads; a later arrival raises a new edge).
        clear_readiness(src, Interest::READABLE);
    }
    let mut left = n;
    while left > 0 {
        dst.writable().await?;
        match dst.try_io(Interest::WRITABLE, || {
            splice(pipe.r.as_fd(), None, dst.as_fd(), None, left, flags).map_err(io::Error::from)
        }) {
            Ok(m) => {
                if m < left {
                    // The send buffer is full.
                    clear_readiness(dst, Interest::WRITABLE);
                }
                left -= m;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Some(n))
}

/// Mark `stream` not ready for `interest` without a system call.
fn clear_readiness(stream: &TcpStream, interest: Interest) {
    let _ = stream.try_io(interest, || Err::<(), _>(io::ErrorKind::WouldBlock.into()));
}

/// Move one chunk through a buffer (no pipe could be had).
async fn chunk_buffered(src: &TcpStream, dst: &TcpStream) -> io::Result<Option<usize>> {
    let mut buf = vec![0u8; 16 * 1024];
    let n = match src.try_read(&mut buf) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut sent = 0;
    while sent < n {
        dst.writable().await?;
        match dst.try_write(&buf[sent..n]) {
            Ok(m) => sent += m,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Some(n))
}
