//! # onedoor-proto — the protocol logic, as pure code
//!
//! Nothing here touches a socket, a clock or tokio: every function takes bytes
//! (and, where time matters, `now` as an argument) and returns a value. The
//! async shells in `onedoor-net` feed it and act on what it says.
//!
//! Layout:
//! - [`sniff`]: one file per protocol; each looks at a connection's first
//!   bytes and answers [`Verdict::NeedMore`], [`Verdict::Match`] or
//!   [`Verdict::NoMatch`].
//! - [`route`]: a route (protocol + filters such as `sni=`, `host=`) and the
//!   [`Router`] that tries routes in order, first match wins.
//! - [`proxy_proto`]: PROXY protocol v1/v2, encode and parse.
//! - [`spec`]: the strings users type: `HOST:PORT`, route specs.
//! - [`config`]: the TOML file of `serve`, raw model to validated config.
//! - [`probe`]: `onedoor probe`'s hello, reply and arrivals report (sealed
//!   with the server's fingerprint), port lists, and the port-state
//!   classification.
//! - [`rate`]: the per-IP connection rate limiter (token buckets, time passed in).
//! - [`replay`]: the memory of recent nonces behind probe hellos and
//!   WebSocket tickets (each admitted once, while fresh).
//! - [`http_connect`]: HTTP CONNECT proxies: their URLs, `NO_PROXY`, the
//!   request and the reply.
//! - [`report`]: `onedoor probe`'s result rendered as the stderr table, JSON
//!   and the one-page HTML picture.

pub mod config;
pub mod http_connect;
pub mod probe;
pub mod proxy_proto;
pub mod rate;
pub mod replay;
pub mod report;
pub mod route;
pub mod sniff;
pub mod spec;
pub mod tunnel;

pub use route::{Decision, NamePattern, Route, Router};
pub use sniff::{Protocol, Verdict};
pub use tunnel::{AccessKey, AllowList, Token};
