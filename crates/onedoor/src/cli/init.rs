//! `onedoor init`: create the server identity (key, certificate, token
//! salt) in the state directory, and a first client that may reach
//! everything. Its access key goes to stdout, alone, once; everything else
//! (the fingerprint, what was granted, what to do next) to stderr.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use onedoor_net::state::{self, StateDir, StateError};
use onedoor_proto::tunnel::{AllowList, Token};

use crate::exit::{Failure, Outcome};

/// Arguments of `onedoor init`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Prints the first client's access key (onedoor://TOKEN@HOST:PORT?fp=SHA256:...) \
alone on stdout, once: the server keeps only a hash of its token. \
Everything else goes to stderr."
)]
pub(crate) struct InitArgs {
    /// Where the key, certificate and clients live [default: /var/lib/onedoor
    /// as root, else $XDG_DATA_HOME/onedoor or ~/.local/share/onedoor].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The name clients reach this server by: the certificate's only name
    /// and the host in access keys (a DNS name or an IP address)
    /// [default: this machine's hostname].
    #[arg(long, value_name = "HOST")]
    name: Option<String>,
    /// The door's port, written into access keys.
    #[arg(long, value_name = "PORT", default_value_t = 443,
          value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// The first client's name.
    #[arg(long, value_name = "NAME", default_value = "first")]
    client: String,
    /// Replace an existing identity. Every client is removed and every
    /// access key made so far stops working.
    #[arg(long)]
    force: bool,
}

/// `--state-dir`, or the default one.
pub(super) fn state_path(given: Option<PathBuf>) -> Result<PathBuf, Failure> {
    given.or_else(StateDir::default_path).ok_or_else(|| {
        Failure::Usage(anyhow!(
            "no default state directory (neither XDG_DATA_HOME nor HOME is set): pass --state-dir DIR"
        ))
    })
}

/// Exit 2 for what the user must fix, 1 for what failed.
pub(super) fn failure(e: StateError) -> Failure {
    if e.is_usage() {
        Failure::Usage(e.into())
    } else {
        Failure::Runtime(e.into())
    }
}

/// Print the access key alone on stdout. If that fails (a closed pipe), the
/// key is lost: the caller removes the client again.
pub(super) fn print_key(
    state: &StateDir,
    token: Token,
    fingerprint: onedoor_proto::tunnel::Fingerprint,
) -> std::io::Result<()> {
    let key = state.access_key(token, fingerprint);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", key.encode().expose())?;
    out.flush()
}

/// Remove a client whose key could not be shown, and say why.
pub(super) fn undo_add(state: &StateDir, name: &str, e: std::io::Error) -> Failure {
    let undone = state.edit_registry(|r| r.remove(name)).is_ok();
    Failure::Runtime(anyhow!(
        "could not print the access key on stdout ({e}); client {name:?} {}",
        if undone {
            "was removed again: add it anew"
        } else {
            "stays registered with a key nobody has: `onedoor client remove` it"
        }
    ))
}

/// The `--state-dir DIR` to repeat in suggested commands (none for the
/// default).
pub(super) fn dir_flag(path: &Path) -> String {
    if StateDir::default_path().as_deref() == Some(path) {
        String::new()
    } else {
        format!(" --state-dir {}", shell_word(&path.display().to_string()))
    }
}

/// `s` quoted for a POSIX shell when needed.
pub(super) fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:@%+=,".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn hostname() -> Result<String, Failure> {
    let name = nix::unistd::gethostname()
        .map_err(|e| Failure::Runtime(anyhow!("reading this machine's hostname: {e}")))?;
    name.into_string().map_err(|_| {
        Failure::Usage(anyhow!(
            "this machine's hostname is not UTF-8: pass --name HOST"
        ))
    })
}

pub(crate) fn run(args: InitArgs) -> Outcome {
    let path = state_path(args.state_dir)?;
    let (given, name) = match args.name {
        Some(n) => (true, n),
        None => (false, hostname()?),
    };
    let name = state::check_server_name(&name).map_err(|e| {
        let hint = if given {
            ""
        } else {
            " (this machine's hostname): pass --name HOST"
        };
        Failure::Usage(anyhow!("--name: {e}{hint}"))
    })?;
    state::check_client_name(&args.client).map_err(|e| Failure::Usage(anyhow!("--client: {e}")))?;

    let replaced = if args.force {
        StateDir::open(&path)
            .and_then(|s| s.registry())
            .map(|r| r.len())
            .ok()
    } else {
        None
    };
    let (state, identity) = StateDir::init(&path, &name, args.port, args.force).map_err(failure)?;
    let fingerprint = identity.fingerprint();
    let token = state
        .edit_registry(|r| r.add(&args.client, AllowList::everything()))
        .map_err(failure)?;

    let dir = state.path().display();
    if let Some(n) = replaced {
        eprintln!(
            "Replaced the server identity in {dir}: the {n} client(s) it had are gone, \
             and their access keys no longer work."
        );
    }
    eprintln!("Created the server identity in {dir}:");
    eprintln!("  name:        {name}  (the certificate's only name; the host in access keys)");
    eprintln!("  fingerprint: {fingerprint}");
    if !given {
        eprintln!(
            "  (the name is this machine's hostname: if clients reach it by another \
             name or address, run `onedoor init --force --name HOST`, or give them \
             `onedoor connect --server HOST:PORT`)"
        );
    }
    eprintln!(
        "Created client {:?}, allowed EVERYTHING (*): every destination, TCP and UDP, \
         and every -R bind on this server.",
        args.client
    );
    let client = shell_word(&args.client);
    let flag = dir_flag(state.path());
    eprintln!(
        "  To narrow it: onedoor client deny {client} '*'{flag} && \
         onedoor client allow {client} PATTERN...{flag}"
    );
    eprintln!(
        "Its access key is the line on stdout, shown only this once \
         (this server keeps only a hash of its token)."
    );
    eprintln!("Next:");
    eprintln!(
        "  on this server: onedoor serve --tunnel{flag} [-l 0.0.0.0:{}] ...",
        args.port
    );
    eprintln!("  on a client:    onedoor connect 'KEY' -W HOST:PORT");
    eprintln!("                  ssh -o ProxyCommand=\"onedoor connect 'KEY' -W %h:%p\" user@HOST");
    eprintln!("  more clients:   onedoor client add NAME --allow PATTERN{flag}");

    print_key(&state, token, fingerprint).map_err(|e| undo_add(&state, &args.client, e))
}
