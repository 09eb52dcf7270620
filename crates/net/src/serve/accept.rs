//! The accept loop: takes a connection slot, accepts, checks the per-IP rate,
//! and hands the connection to its own task on one of the connection
//! threads ([`super::workers`]). It never waits on a client, and
//! when accept fails (out of file descriptors: sslh's CVE-2025-46807) it backs
//! off instead of spinning.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{conn, Shared};
use crate::metrics::{self, ErrorKind};

const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

pub(crate) async fn run(shared: Arc<Shared>, listener: TcpListener, stop: CancellationToken) {
    let local = listener.local_addr().ok();
    let mut backoff = BACKOFF_MIN;
    let mut last_warning: Option<Instant> = None;
    loop {
        // A slot first: past --max-connections, new clients wait in the
        // kernel's backlog instead of being accepted and dropped.
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            p = shared.connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = BACKOFF_MIN;
                a
            }
            Err(e) if is_transient(&e) => continue,
            Err(e) => {
                metrics::error(ErrorKind::Accept);
                if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(error = %e, "accept failed; backing off (raise the fd limit or lower --max-connections)");
                    last_warning = Some(Instant::now());
                }
                drop(permit);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let allowed = match shared.rate.lock().expect("rate lock").as_mut() {
            Some(limiter) => limiter.check(peer.ip(), Instant::now()),
            None => true,
        };
        if !allowed {
            metrics::error(ErrorKind::RateLimited);
            tracing::debug!(%peer, "over --rate, closed");
            continue;
        }
        let span = tracing::debug_span!("conn", %peer, route = tracing::field::Empty);
        let tracked = shared.tracker.token();
        let conn_shared = shared.clone();
        shared.workers.spawn(stream, move |stream| {
            async move {
                let _tracked = tracked;
                conn::handle(conn_shared, stream, peer, permit).await
            }
            .instrument(span)
        });
    }
    tracing::debug!(addr = ?local, "listener stopped");
}

/// Errors about one connection that died in the backlog: accept the next.
fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::Interrupted
    )
}
