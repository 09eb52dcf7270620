//! What can go wrong with the state directory and the registry, split by who
//! must act: [`StateError::is_usage`] tells the user's mistakes (exit 2)
//! from the system's failures (exit 1).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A state directory could not be created, read, checked or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The directory has no `server.toml`: `onedoor init` has not run there.
    #[error(
        "no onedoor server state in {} (no server.toml): run `onedoor init` first \
         (or pass --state-dir DIR if it lives elsewhere)",
        path.display()
    )]
    NotInitialised {
        /// The directory.
        path: PathBuf,
    },
    /// `init` found an identity already there (and no `--force`).
    #[error(
        "{} already holds a server identity ({file}); `onedoor init --force` replaces it, \
         which also removes every client and invalidates their access keys",
        path.display()
    )]
    Exists {
        /// The directory.
        path: PathBuf,
        /// The first file found.
        file: String,
    },
    /// A file's contents are wrong. `line` is 1-based.
    #[error("{}: {what}", Location { path, line: *line })]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line, when known.
        line: Option<usize>,
        /// What is wrong, naming the key.
        what: String,
    },
    /// The server name is not a DNS name or an IP address.
    #[error("server name {name:?}: {why}")]
    BadServerName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Port 0 for the access keys.
    #[error("the port must be 1-65535")]
    BadPort,
    /// The OS random generator failed.
    #[error("the OS random generator failed: {0}")]
    Random(String),
    /// rcgen refused to make the certificate.
    #[error("making the certificate: {0}")]
    Certificate(String),
    /// An edit of the registry was refused.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl StateError {
    /// Is this the user's to fix (a flag, a file's contents, a missing
    /// `init`: exit 2), rather than a failure of the system (exit 1)?
    pub fn is_usage(&self) -> bool {
        match self {
            StateError::Io { .. } | StateError::Random(_) | StateError::Certificate(_) => false,
            StateError::Registry(e) => e.is_usage(),
            StateError::NotInitialised { .. }
            | StateError::Exists { .. }
            | StateError::Invalid { .. }
            | StateError::BadServerName { .. }
            | StateError::BadPort => true,
        }
    }

    pub(super) fn io(path: impl Into<PathBuf>, source: io::Error) -> StateError {
        StateError::Io {
            path: path.into(),
            source,
        }
    }
}

/// `file:line` or `file`.
struct Location<'a> {
    path: &'a PathBuf,
    line: Option<usize>,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

/// An edit of the client registry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The client name is not allowed.
    #[error("client name {name:?}: {why}")]
    BadName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A client of that name (ignoring case) exists.
    #[error("a client named {0:?} already exists")]
    Duplicate(String),
    /// No client has that name.
    #[error("no client named {0:?} (see `onedoor client list`)")]
    NoSuchClient(String),
    /// The OS random generator failed while making a token.
    #[error("the OS random generator failed: {0}")]
    Random(String),
}

impl RegistryError {
    /// The user's to fix (exit 2)? Everything but [`RegistryError::Random`].
    pub fn is_usage(&self) -> bool {
        !matches!(self, RegistryError::Random(_))
    }
}
