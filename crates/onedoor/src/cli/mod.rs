//! The command line: one file per subcommand, each with its clap `Args` and
//! its `run`.

pub(crate) mod client;
pub(crate) mod connect;
pub(crate) mod init;
pub(crate) mod lab;
pub(crate) mod probe;
pub(crate) mod serve;

use clap::{Parser, Subcommand};

/// One open door is enough.
#[derive(Debug, Parser)]
#[command(name = "onedoor", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// More logs (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Fewer logs (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) quiet: u8,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// One port, many services: route each connection by its first bytes.
    Serve(Box<serve::ServeArgs>),
    /// Map which outgoing doors (ports) this network lets through, verified
    /// against your own onedoor server.
    Probe(Box<probe::ProbeArgs>),
    /// The tunnel: -L, -R, -D (SOCKS5), -W through one door.
    Connect(Box<connect::ConnectArgs>),
    /// Create the server identity and a first client.
    Init(init::InitArgs),
    /// Manage the clients allowed through the tunnel.
    Client(client::ClientArgs),
    /// The whole story on this machine: namespaces, a firewall, one door.
    Lab(lab::LabArgs),
}
