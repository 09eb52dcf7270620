//! The lab's errors, split by what the caller does about them: refuse to
//! start (not root, no namespaces), report a busy instance, or fail.

use std::io;

#[cfg(target_os = "linux")]
pub use crate::sys::instance::LockError;

/// Why a lab could not be built or taken down.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Not running as root.
    #[error("onedoor lab needs root: it builds network namespaces and a firewall")]
    NotRoot,
    /// The kernel or the sandbox does not allow what the lab needs.
    #[error("this machine cannot run the lab: {0}")]
    Unavailable(String),
    /// No instance could be had.
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A system call or netlink request failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
}
