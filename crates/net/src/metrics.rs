//! Prometheus metrics: the names in one place, and the exporter.
//!
//! - `onedoor_connections_total{route}`: connections handed to a route.
//! - `onedoor_bytes_total{route,direction="up"|"down"}`: bytes forwarded.
//! - `onedoor_errors_total{kind}`: connections closed for a reason, by
//!   [`ErrorKind`].
//! - `onedoor_sniff_seconds`: time from accept to a decision.
//! - `onedoor_open_connections`, `onedoor_pending_connections`: gauges.
//! - `onedoor_probe_hellos_total{result}`: probe hellos sealed with this
//!   server's key: `answered_tcp`, `answered_udp`, `answered_arrivals`, or
//!   refused as `stale` / `replayed` (and then routed like any bytes).
//! - `onedoor_tunnel_sessions_total`, `onedoor_tunnel_sessions` (gauge),
//!   `onedoor_tunnel_rejected_total{reason}`,
//!   `onedoor_tunnel_streams_refused_total`,
//!   `onedoor_tunnel_sessions_cut_total`: the tunnel (`serve --tunnel`).
//!
//! Without `--metrics` no recorder is installed and every call is a no-op.

use std::net::SocketAddr;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::forward::Tally;

/// Why a connection was closed without being forwarded, or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Its first bytes matched no route and there is no `anyprot`.
    NoMatch,
    /// It sent nothing within `--timeout` and there is no `--on-timeout`.
    Timeout,
    /// It closed before sending anything.
    ClosedEarly,
    /// Closed to make room: too many connections still being sniffed.
    Evicted,
    /// Its source address went over `--rate`.
    RateLimited,
    /// A trusted source sent a malformed PROXY header.
    ProxyHeader,
    /// The backend could not be reached.
    BackendConnect,
    /// `accept` failed (e.g. out of file descriptors).
    Accept,
    /// A read or write failed mid-connection.
    Io,
    /// onedoor's own traffic, but this server has no tunnel.
    NoTunnel,
    /// TLS to one of serve's own names failed its handshake (or took too
    /// long).
    TlsHandshake,
}

impl ErrorKind {
    /// The `kind` label.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::NoMatch => "no_match",
            ErrorKind::Timeout => "timeout",
            ErrorKind::ClosedEarly => "closed_early",
            ErrorKind::Evicted => "evicted",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::ProxyHeader => "proxy_header",
            ErrorKind::BackendConnect => "backend_connect",
            ErrorKind::Accept => "accept",
            ErrorKind::Io => "io",
            ErrorKind::NoTunnel => "no_tunnel",
            ErrorKind::TlsHandshake => "tls_handshake",
        }
    }
}

/// Count one error.
pub fn error(kind: ErrorKind) {
    counter!("onedoor_errors_total", "kind" => kind.label()).increment(1);
}

/// A tunnel session started; `open` sessions are open now.
pub fn tunnel_session(open: usize) {
    counter!("onedoor_tunnel_sessions_total").increment(1);
    tunnel_session_gauge(open);
}

/// Set the open-tunnel-sessions gauge.
pub fn tunnel_session_gauge(open: usize) {
    gauge!("onedoor_tunnel_sessions").set(open as f64);
}

/// TLS to serve's own name that did not authenticate as a client, by
/// reason (`not_a_hello`, `unknown_token`, `timeout`, `closed`, `io`).
pub fn tunnel_rejected(reason: &'static str) {
    counter!("onedoor_tunnel_rejected_total", "reason" => reason).increment(1);
}

/// A tunnel stream, UDP flow or bind refused by the client's allow-list.
pub fn tunnel_stream_refused() {
    counter!("onedoor_tunnel_streams_refused_total").increment(1);
}

/// A tunnel session cut because its client was removed (or its token
/// changed).
pub fn tunnel_session_cut() {
    counter!("onedoor_tunnel_sessions_cut_total").increment(1);
}

/// Record how long sniffing took.
pub fn sniff_time(d: std::time::Duration) {
    histogram!("onedoor_sniff_seconds").record(d.as_secs_f64());
}

/// Set the open-connections gauge.
pub fn gauge_open(n: usize) {
    gauge!("onedoor_open_connections").set(n as f64);
}

/// Byte counters of one forwarded connection.
#[derive(Debug)]
pub struct RouteBytes {
    up: Counter,
    down: Counter,
}

impl RouteBytes {
    /// Counters for `route` (its label); also counts the connection.
    pub fn for_route(route: &str) -> Self {
        counter!("onedoor_connections_total", "route" => route.to_owned()).increment(1);
        RouteBytes {
            up: counter!("onedoor_bytes_total", "route" => route.to_owned(), "direction" => "up"),
            down: counter!("onedoor_bytes_total", "route" => route.to_owned(), "direction" => "down"),
        }
    }
}

impl Tally for RouteBytes {
    fn up(&self, n: u64) {
        self.up.increment(n);
    }
    fn down(&self, n: u64) {
        self.down.increment(n);
    }
}

/// Serve Prometheus text on `http://ADDR/metrics`. Binds now (before any
/// privilege drop); must be called inside the tokio runtime.
///
/// The HTTP side is ours, not the exporter's: its listener retries a failing
/// `accept` in a tight loop when the process is out of file descriptors (the
/// class of sslh's CVE-2025-46807), ours backs off like the main door.
pub async fn install(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("--metrics {addr}: {e}"))?;
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("onedoor_sniff_seconds".into()),
            &[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0,
            ],
        )?
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("--metrics {addr}: {e}"))?;
    describe_counter!(
        "onedoor_connections_total",
        "Connections handed to a route."
    );
    describe_counter!(
        "onedoor_bytes_total",
        Unit::Bytes,
        "Bytes forwarded, by route and direction."
    );
    describe_counter!(
        "onedoor_errors_total",
        "Connections closed for a reason, by kind."
    );
    describe_histogram!(
        "onedoor_sniff_seconds",
        Unit::Seconds,
        "Time from accept to a routing decision."
    );
    describe_gauge!("onedoor_open_connections", "Connections open now.");
    describe_counter!("onedoor_tunnel_sessions_total", "Tunnel sessions started.");
    describe_gauge!("onedoor_tunnel_sessions", "Tunnel sessions open now.");
    describe_counter!(
        "onedoor_tunnel_rejected_total",
        "TLS connections to serve's own names that did not authenticate, by reason."
    );
    describe_counter!(
        "onedoor_tunnel_streams_refused_total",
        "Tunnel streams, UDP flows and binds refused by the allow-list."
    );
    describe_counter!(
        "onedoor_tunnel_sessions_cut_total",
        "Tunnel sessions cut because their client was removed."
    );
    describe_gauge!(
        "onedoor_pending_connections",
        "Connections still being sniffed."
    );
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(scrape_loop(listener, handle));
    Ok(())
}

/// Answer scrapes: `GET /metrics` gets the text, anything else a 404. One
/// request per connection, bounded in size and time.
async fn scrape_loop(listener: tokio::net::TcpListener, handle: PrometheusHandle) {
    let mut backoff = std::time::Duration::from_millis(5);
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => {
                backoff = std::time::Duration::from_millis(5);
                s
            }
            Err(_) => {
                error(ErrorKind::Accept);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(1));
                continue;
            }
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(5), scrape(stream, &handle))
                    .await;
        });
    }
}

async fn scrape(
    mut stream: tokio::net::TcpStream,
    handle: &PrometheusHandle,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || head.len() + n > 8192 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let wanted = line.starts_with(b"GET /metrics ")
        || line.starts_with(b"GET /metrics?")
        || line.starts_with(b"GET / ");
    let response = if wanted {
        let body = handle.render();
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
    };
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
