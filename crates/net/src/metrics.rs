//! Prometheus metrics: the names in one place, and the exporter.
//!
//! - `onedoor_connections_total{route}`: connections handed to a route.
//! - `onedoor_bytes_total{route,direction="up"|"down"}`: bytes forwarded.
//! - `onedoor_errors_total{kind}`: connections closed for a reason, by
//!   [`ErrorKind`].
//! - `onedoor_sniff_seconds`: time from accept to a decision.
//! - `onedoor_open_connections`, `onedoor_pending_connections`: gauges.
//!
//! Without `--metrics` no recorder is installed and every call is a no-op.

use std::net::SocketAddr;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

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
        }
    }
}

/// Count one error.
pub fn error(kind: ErrorKind) {
    counter!("onedoor_errors_total", "kind" => kind.label()).increment(1);
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
pub fn install(addr: SocketAddr) -> anyhow::Result<()> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            Matcher::Full("onedoor_sniff_seconds".into()),
            &[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0,
            ],
        )?
        .install()
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
    describe_gauge!(
        "onedoor_pending_connections",
        "Connections still being sniffed."
    );
    Ok(())
}
