//! # onedoor-lab — the whole story, for real, on one Linux machine
//!
//! Builds three network namespaces joined by veth pairs — the **house**
//! (the client), the **router** (an nftables egress firewall) and the
//! **internet** (the server) — in 198.18.0.0/15, programmed over netlink by
//! this crate itself (no `ip`, no `nft`). Then it tells the story: doors
//! blocked from the house, `onedoor serve` on door 443, everything reached
//! through that one door.
//!
//! Layout:
//! - [`policy`]: the egress policies and what each does to every door.
//! - [`plan`]: pure data — the address plan of an instance
//!   ([`AddressPlan`]) and the router's ruleset for a policy ([`Ruleset`]).
//! - [`map`]: the first chapter, the probe's map of the doors: command
//!   lines, what each policy should show, the check and the words.
//! - [`outcome`]: what the story saw — steps, observations, verdicts.
//! - [`report`]: JSON and the self-contained HTML page.
//! - `sys` (Linux): instance locks, and the ruleset compiled into nf_tables
//!   expressions; namespaces, rtnetlink and nf_tables themselves come from
//!   `onedoor-sys`.
//! - [`Lab`] (Linux): build, enter, tear down — also the test helper for
//!   every firewall-facing test ([`Lab::build`], [`Lab::run_in`],
//!   [`Lab::command`], [`Lab::teardown`]).
//! - [`services`] (Linux): the built-in library, crosswords, website,
//!   captive portal and CONNECT proxy.
//! - [`story`] (Linux): the narrated, checked, time-bounded story.
//!
//! Everything the lab sends stays inside its own namespaces: checks refuse
//! any destination outside the instance's blocks, the internet namespace
//! has no route but the one back to the house, and nothing is ever created
//! in the host's namespace.
//!
//! ## Example: a test that needs a real firewall
//!
//! ```no_run
//! use onedoor_lab::{Lab, LabConfig, Policy, Role};
//!
//! let lab = Lab::build(LabConfig::new(Policy::Web))?; // needs root
//! let listener = lab.tcp_listener(Role::Internet, "0.0.0.0:22".parse()?)?;
//! let blocked = lab.run_in(Role::House, || {
//!     let door = std::net::SocketAddr::from((lab.plan().internet, 22));
//!     std::net::TcpStream::connect_timeout(&door, std::time::Duration::from_millis(500)).is_err()
//! })?;
//! assert!(blocked);
//! drop(listener);
//! lab.teardown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod error;
pub mod map;
pub mod outcome;
pub mod plan;
pub mod policy;
pub mod report;

#[cfg(target_os = "linux")]
mod lab;
#[cfg(target_os = "linux")]
pub mod services;
#[cfg(target_os = "linux")]
pub mod story;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(target_os = "linux")]
mod wire;

pub use error::LabError;
pub use map::{DoorMap, MapPlan};
pub use outcome::{Observed, Run, Step, Verdict};
pub use plan::addr::{in_lab_range, AddressPlan, Instance, Role};
pub use plan::ruleset::Ruleset;
pub use policy::{Door, Expect, Policy};
pub use report::{render_html, LabReport};

#[cfg(target_os = "linux")]
pub use lab::{preflight, Lab, LabConfig};
#[cfg(target_os = "linux")]
pub use onedoor_sys::netns::{netns_path, Netns, NETNS_RUN_DIR};
#[cfg(target_os = "linux")]
pub use sys::instance::{
    clean_leftovers, runtime_dir, CleanReport, InstanceLock, LockError, STATE_DIR,
};

/// Names of this machine's network namespaces that belong to onedoor labs
/// (live or left behind), as listed under `/run/netns`.
#[cfg(target_os = "linux")]
pub fn lab_namespaces() -> Vec<String> {
    onedoor_sys::netns::list()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| Instance::parse_netns_name(n).is_some())
        .collect()
}
