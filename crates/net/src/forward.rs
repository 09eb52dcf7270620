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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A connected pair of sockets: (one end, the other end).
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    #[derive(Default)]
    struct Count(AtomicU64, AtomicU64);
    impl Tally for Count {
        fn up(&self, n: u64) {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
        fn down(&self, n: u64) {
            self.1.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// Both directions at once, several MiB each, byte for byte; then FIN
    /// from the client while the backend still answers (half-close).
    async fn exercise(buffered: bool) {
        let (mut client, client_side) = pair().await;
        let (backend_side, mut backend) = pair().await;
        let count = std::sync::Arc::new(Count::default());
        let c2 = count.clone();
        let fwd = tokio::spawn(async move {
            if buffered {
                join_buffered(client_side, backend_side, &*c2).await
            } else {
                join(client_side, backend_side, &*c2).await
            }
        });
        let up = pattern(5 << 20, 1);
        let down = pattern(3 << 20, 7);
        let (up2, down2) = (up.clone(), down.clone());
        let client_task = tokio::spawn(async move {
            let (mut r, mut w) = client.split();
            let send = async {
                w.write_all(&up2).await.unwrap();
                w.shutdown().await.unwrap();
            };
            let mut got = Vec::new();
            let recv = r.read_to_end(&mut got);
            let (_, n) = tokio::join!(send, recv);
            n.unwrap();
            got
        });
        let backend_task = tokio::spawn(async move {
            let mut got = Vec::new();
            backend.read_to_end(&mut got).await.unwrap();
            // The client has half-closed; the backend can still answer.
            backend.write_all(&down2).await.unwrap();
            backend.shutdown().await.unwrap();
            got
        });
        let got_up = backend_task.await.unwrap();
        let got_down = client_task.await.unwrap();
        assert!(got_up == up, "client to backend bytes differ");
        assert!(got_down == down, "backend to client bytes differ");
        let moved = fwd.await.unwrap().unwrap();
        assert_eq!(
            moved,
            Moved {
                up: up.len() as u64,
                down: down.len() as u64
            }
        );
        assert_eq!(count.0.load(Ordering::Relaxed), up.len() as u64);
        assert_eq!(count.1.load(Ordering::Relaxed), down.len() as u64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn joins_with_half_close() {
        exercise(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn buffered_fallback_joins_with_half_close() {
        exercise(true).await;
    }

    /// FIN from the backend first: the client still gets everything and can
    /// still send.
    #[tokio::test]
    async fn backend_fin_first() {
        let (mut client, client_side) = pair().await;
        let (backend_side, mut backend) = pair().await;
        let fwd = tokio::spawn(async move { join(client_side, backend_side, &NoTally).await });
        backend.write_all(b"banner\n").await.unwrap();
        backend.shutdown().await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"banner\n");
        client.write_all(b"late words").await.unwrap();
        client.shutdown().await.unwrap();
        let mut late = Vec::new();
        backend.read_to_end(&mut late).await.unwrap();
        assert_eq!(late, b"late words");
        fwd.await.unwrap().unwrap();
    }

    /// A reset on one side ends the whole join with an error, not a hang.
    #[tokio::test]
    async fn reset_ends_both() {
        let (client, client_side) = pair().await;
        let (backend_side, mut backend) = pair().await;
        let fwd = tokio::spawn(async move { join(client_side, backend_side, &NoTally).await });
        socket2::SockRef::from(&client)
            .set_linger(Some(std::time::Duration::ZERO))
            .unwrap();
        drop(client);
        let mut buf = [0u8; 16];
        let r =
            tokio::time::timeout(std::time::Duration::from_secs(5), backend.read(&mut buf)).await;
        assert!(
            matches!(r, Ok(Ok(0)) | Ok(Err(_))),
            "backend not told: {r:?}"
        );
        let done = tokio::time::timeout(std::time::Duration::from_secs(5), fwd).await;
        assert!(done.is_ok(), "join hung after a reset");
    }
}
