//! Joining two TCP connections: every byte from each side to the other, FIN
//! propagated in each direction (half-close), errors ending both.
//!
//! On Linux the bytes move with `splice(2)` through pooled pipes and never
//! enter user space ([`crate::sys::splice`]); elsewhere a buffered copy does
//! the work.

use std::io;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Bytes moved by [`join`], per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Client to backend.
    pub up: u64,
    /// Backend to client.
    pub down: u64,
}

/// Called with each chunk moved, so bytes can be counted as they go.
pub trait Tally: Sync {
    /// `n` bytes moved client → backend.
    fn up(&self, n: u64);
    /// `n` bytes moved backend → client.
    fn down(&self, n: u64);
}

/// Count nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTally;

impl Tally for NoTally {
    fn up(&self, _n: u64) {}
    fn down(&self, _n: u64) {}
}

/// Forward between `client` and `backend` until both directions have ended.
/// A FIN from one side is passed on as a FIN (`shutdown(SHUT_WR)`) to the
/// other, and the other direction keeps flowing.
pub async fn join(client: TcpStream, backend: TcpStream, tally: &impl Tally) -> io::Result<Moved> {
    #[cfg(target_os = "linux")]
    {
        crate::sys::splice::join(&client, &backend, tally).await
    }
    #[cfg(not(target_os = "linux"))]
    {
        join_buffered(client, backend, tally).await
    }
}

/// The buffered fallback: tokio's bidirectional copy, which propagates
/// shutdown in each direction. Small buffers keep idle connections cheap.
pub async fn join_buffered(
    mut client: TcpStream,
    mut backend: TcpStream,
    tally: &impl Tally,
) -> io::Result<Moved> {
    let (up, down) =
        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut backend, 16 * 1024, 16 * 1024)
            .await?;
    tally.up(up);
    tally.down(down);
    let _ = client.shutdown().await;
    Ok(Moved { up, down })
}
