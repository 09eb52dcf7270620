//! `onedoor client add|list|allow|deny|remove`: manage who may use the
//! tunnel and where each client may go. `add` prints the new access key
//! alone on stdout, once; `list --json` prints JSON on stdout; everything
//! else goes to stderr. Tokens are never shown again (the server keeps only
//! their hashes).

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Subcommand;
use onedoor_net::state::{ClientEntry, StateDir};
use onedoor_proto::tunnel::{AllowList, AllowPattern};

use super::init::{dir_flag, failure, print_key, shell_word, state_path, undo_add};
use crate::exit::{Failure, Outcome};

/// Arguments of `onedoor client`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Allow patterns: HOST:PORTS, HOST a name with * wildcards, an IP or a \
CIDR (IPv6 in brackets), PORTS a port, a range or a list: *.corp.example:443, \
10.0.0.0/8:22,80-90, [::1]:5432. Prefix udp/ for UDP, bind/ for ports a client may open here \
with -R (bind/127.0.0.1:8022). * alone allows everything. Quote them for the shell."
)]
pub(crate) struct ClientArgs {
    /// The server's state directory [default: /var/lib/onedoor as root,
    /// else $XDG_DATA_HOME/onedoor or ~/.local/share/onedoor].
    #[arg(long, value_name = "DIR", global = true)]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: ClientCommand,
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Add a client and print its access key, alone on stdout, once. It may
    /// reach nothing until granted (--allow here, or `client allow`).
    Add {
        /// A new name: letters, digits, '.', '_', '-'.
        name: String,
        /// Grant this pattern (repeatable).
        #[arg(long = "allow", value_name = "PATTERN")]
        allow: Vec<String>,
    },
    /// List the clients: name, created, what each may reach. Never tokens.
    List {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Grant patterns to a client. Live sessions see the change.
    Allow {
        /// The client.
        name: String,
        /// The patterns to grant.
        #[arg(value_name = "PATTERN", required = true)]
        patterns: Vec<String>,
    },
    /// Take patterns away from a client (exactly these patterns).
    Deny {
        /// The client.
        name: String,
        /// The patterns to remove.
        #[arg(value_name = "PATTERN", required = true)]
        patterns: Vec<String>,
    },
    /// Remove a client. Its access key stops working and its live sessions
    /// are cut.
    Remove {
        /// The client.
        name: String,
    },
}

pub(crate) fn run(args: ClientArgs) -> Outcome {
    let path = state_path(args.state_dir)?;
    let state = StateDir::open(&path).map_err(failure)?;
    match args.command {
        ClientCommand::Add { name, allow } => add(&state, &name, &allow),
        ClientCommand::List { json } => list(&state, json),
        ClientCommand::Allow { name, patterns } => allow(&state, &name, &patterns),
        ClientCommand::Deny { name, patterns } => deny(&state, &name, &patterns),
        ClientCommand::Remove { name } => remove(&state, &name),
    }
}

/// Parse patterns, naming the bad one (`flag` says where it came from).
fn parse_patterns(given: &[String], flag: &str) -> Result<Vec<AllowPattern>, Failure> {
    given
        .iter()
        .map(|p| {
            p.parse::<AllowPattern>()
                .map_err(|e| Failure::Usage(anyhow!("{flag}{p:?}: {e}")))
        })
        .collect()
}

fn joined(patterns: &[AllowPattern]) -> String {
    patterns
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn add(state: &StateDir, name: &str, allow: &[String]) -> Outcome {
    let mut unique = AllowList::new();
    for p in parse_patterns(allow, "--allow ")? {
        unique.grant(p);
    }
    // Read the identity first: a broken one must not leave a client behind.
    let identity = state.identity().map_err(failure)?;
    let token = state
        .edit_registry(|r| r.add(name, unique.clone()))
        .map_err(failure)?;
    let flag = dir_flag(state.path());
    if unique.is_empty() {
        eprintln!(
            "Added client {name:?}. It may reach NOTHING until granted: \
             onedoor client allow {} PATTERN...{flag}",
            shell_word(name)
        );
    } else {
        eprintln!("Added client {name:?}, allowed: {unique}");
    }
    eprintln!(
        "Its access key is the line on stdout, shown only this once \
         (this server keeps only a hash of its token)."
    );
    eprintln!("Use it: onedoor connect 'KEY' -W HOST:PORT (or -L, -R, -D)");
    print_key(state, token, identity.fingerprint()).map_err(|e| undo_add(state, name, e))
}

fn describe(allow: &AllowList) -> String {
    if allow.is_empty() {
        "nothing".into()
    } else if allow.patterns().contains(&AllowPattern::Everything) {
        format!("{allow} (everything)")
    } else {
        allow.to_string()
    }
}

fn list(state: &StateDir, json: bool) -> Outcome {
    let registry = state.registry().map_err(failure)?;
    let created = |c: &ClientEntry| humantime::format_rfc3339_seconds(c.created).to_string();
    if json {
        let clients: Vec<serde_json::Value> = registry
            .list()
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name,
                    "allow": c.allow.patterns().iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                    "created": created(c),
                })
            })
            .collect();
        let doc = serde_json::json!({ "clients": clients });
        println!("{doc}");
        return Ok(());
    }
    if registry.is_empty() {
        eprintln!(
            "No clients. Add one: onedoor client add NAME --allow PATTERN{}",
            dir_flag(state.path())
        );
        return Ok(());
    }
    let width = registry
        .list()
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    eprintln!("{:width$}  {:20}  ALLOWS", "NAME", "CREATED");
    for c in registry.list() {
        eprintln!(
            "{:width$}  {:20}  {}",
            c.name,
            created(c),
            describe(&c.allow)
        );
    }
    Ok(())
}

fn allow(state: &StateDir, name: &str, given: &[String]) -> Outcome {
    let patterns = parse_patterns(given, "pattern ")?;
    let granted = state
        .edit_registry(|r| r.allow(name, &patterns))
        .map_err(failure)?;
    let already: Vec<AllowPattern> = patterns
        .iter()
        .filter(|p| !granted.contains(p))
        .cloned()
        .collect();
    if !granted.is_empty() {
        eprintln!("Granted to {name:?}: {}", joined(&granted));
    }
    if !already.is_empty() {
        eprintln!("Already granted to {name:?}: {}", joined(&already));
    }
    now_allows(state, name)
}

fn deny(state: &StateDir, name: &str, given: &[String]) -> Outcome {
    let patterns = parse_patterns(given, "pattern ")?;
    let removed = state
        .edit_registry(|r| r.deny(name, &patterns))
        .map_err(failure)?;
    let absent: Vec<AllowPattern> = patterns
        .iter()
        .filter(|p| !removed.contains(p))
        .cloned()
        .collect();
    if !removed.is_empty() {
        eprintln!("Removed from {name:?}: {}", joined(&removed));
    }
    if !absent.is_empty() {
        eprintln!(
            "{name:?} did not have: {} (deny removes patterns exactly as listed)",
            joined(&absent)
        );
    }
    now_allows(state, name)
}

/// Say what a client may reach after a change.
fn now_allows(state: &StateDir, name: &str) -> Outcome {
    let registry = state.registry().map_err(failure)?;
    if let Some(c) = registry.get(name) {
        eprintln!("{name:?} now allows: {}", describe(&c.allow));
    }
    Ok(())
}

fn remove(state: &StateDir, name: &str) -> Outcome {
    state.edit_registry(|r| r.remove(name)).map_err(failure)?;
    eprintln!(
        "Removed client {name:?}: its access key no longer works, and a running \
         serve cuts its sessions when it sees the change."
    );
    Ok(())
}
