//! Connection threads: each accepted connection lives its whole life on one
//! thread — the sniff, the relay, and for a tunnel the session with every
//! stream it carries — as a connection does in Envoy's or HAProxy's
//! workers.
//!
//! Why not one work-stealing runtime for everything: a tunnel session is one
//! TLS connection that every stream of it funnels through, so its tasks wake
//! one another all the time. Spread over a work-stealing pool, each of those
//! wake-ups may cross to another core (a futex wake and a cache miss per
//! frame); on one thread they are a queue push. Different connections still
//! run on different cores: a new one goes to the thread with the fewest
//! live connections. One session is then capped at one core, which carries
//! well over 10 Gbit/s of TLS here (BENCHMARKS.md).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// A fixed set of threads, each running a single-threaded tokio runtime.
/// Dropping the pool ends the threads (and whatever still runs on them).
#[derive(Debug)]
pub(crate) struct Workers {
    workers: Vec<Worker>,
    /// Where the search for the least-loaded thread starts, rotated so that
    /// ties spread.
    next: AtomicUsize,
}

#[derive(Debug)]
struct Worker {
    handle: Handle,
    /// Connections running on this thread now.
    live: Arc<AtomicUsize>,
    /// Dropped with the pool: the thread's `block_on` returns.
    _stop: oneshot::Sender<()>,
}

impl Workers {
    /// One thread per core the process may use. On a single core, or when
    /// no thread can be started, connections run on the caller's runtime.
    pub(crate) fn per_core() -> Self {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        Workers::start(if n > 1 { n } else { 0 })
    }

    /// `n` threads (0: none, everything runs on the caller's runtime).
    pub(crate) fn start(n: usize) -> Self {
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            match Worker::start(i) {
                Ok(w) => workers.push(w),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a connection thread; using {} of {n}", workers.len());
                    break;
                }
            }
        }
        Workers {
            workers,
            next: AtomicUsize::new(0),
        }
    }

    /// Run `handle(stream)` to its end on the thread with the fewest live
    /// connections (or on the caller's runtime without threads). The stream
    /// moves to that thread's reactor, so its readiness wakes that thread
    /// and no other.
    pub(crate) fn spawn<F, Fut>(&self, stream: TcpStream, handle: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(worker) = self.least_loaded() else {
            tokio::spawn(handle(stream));
            return;
        };
        let std = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "cannot hand a connection to its thread");
                return;
            }
        };
        let live = worker.live.clone();
        live.fetch_add(1, Ordering::Relaxed);
        worker.handle.spawn(async move {
            let _live = Live(live);
            match TcpStream::from_std(std) {
                Ok(stream) => handle(stream).await,
                Err(e) => tracing::debug!(error = %e, "cannot register a connection on its thread"),
            }
        });
    }

    fn least_loaded(&self) -> Option<&Worker> {
        let n = self.workers.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n)
            .map(|i| &self.workers[(start + i) % n])
            .min_by_key(|w| w.live.load(Ordering::Relaxed))
    }

    /// Threads in the pool.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.workers.len()
    }
}

impl Worker {
    fn start(i: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("onedoor-conn-{i}"))
            .spawn(move || {
                // Returns when the pool is dropped; dropping the runtime
                // then ends what still runs here.
                let _ = runtime.block_on(stopped);
            })?;
        Ok(Worker {
            handle,
            live: Arc::new(AtomicUsize::new(0)),
            _stop: stop,
        })
    }
}

/// Counts a connection as live on its thread until dropped.
struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn connections_spread_over_the_threads_and_keep_working() {
        let workers = Workers::start(2);
        assert_eq!(workers.len(), 2);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (names, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let mut clients = Vec::new();
        for _ in 0..4 {
            let (client, server) = pair(&listener).await;
            let names = names.clone();
            workers.spawn(server, move |mut s| async move {
                let name = std::thread::current().name().unwrap_or("").to_owned();
                let mut b = [0u8; 1];
                s.read_exact(&mut b).await.unwrap();
                s.write_all(&b).await.unwrap();
                names.send(name).unwrap();
                // Held: each connection stays live until its client closes.
                let _ = s.read(&mut b).await;
            });
            clients.push(client);
        }
        let mut threads = Vec::new();
        for c in &mut clients {
            c.write_all(b"x").await.unwrap();
            let mut b = [0u8; 1];
            c.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"x");
            threads.push(seen.recv().await.unwrap());
        }
        threads.sort();
        assert_eq!(
            threads,
            [
                "onedoor-conn-0",
                "onedoor-conn-0",
                "onedoor-conn-1",
                "onedoor-conn-1"
            ]
        );
    }

    #[tokio::test]
    async fn without_threads_the_callers_runtime_runs_it() {
        let workers = Workers::start(0);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (mut client, server) = pair(&listener).await;
        workers.spawn(server, |mut s| async move {
            s.write_all(b"here").await.unwrap();
        });
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"here");
    }
}
