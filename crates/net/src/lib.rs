//! # onedoor-net — the async shells
//!
//! Thin tokio code around the pure logic of `onedoor-proto`: it owns the
//! sockets, the clock and the tasks, and asks `onedoor-proto` what to do.
//!
//! Layout:
//! - [`serve`]: the one-door server — accept loop with limits, per-connection
//!   sniffing, forwarding, reload and drain.
//! - [`connect`]: `onedoor connect`: transports (TLS), the reconnecting
//!   session supervisor, `-L`/`-R`/`-D`/`-W` forwards, `client.toml`.
//! - [`forward`]: joins two TCP connections, zero-copy with `splice(2)` on
//!   Linux and a buffered copy elsewhere, half-close in each direction.
//! - [`sys`]: what the OS is asked for: the fd limit, privilege drop, socket
//!   options, listeners.
//! - [`metrics`]: the Prometheus names and the exporter.
//! - [`probe`]: `onedoor probe`'s shell: dials every door, paces itself,
//!   classifies what came back with `onedoor_proto::probe`.
//! - [`tunnel`]: the tunnel session (HTTP/2 over any byte stream): client,
//!   server, forwarded streams, UDP flows, reverse binds.
//! - [`state`]: the state directory: server identity, token salt, client
//!   registry (`onedoor init`, `onedoor client`).

pub mod connect;
pub mod forward;
pub mod metrics;
pub mod probe;
pub mod serve;
pub mod state;
pub mod sys;
pub mod tunnel;
pub mod ws;
