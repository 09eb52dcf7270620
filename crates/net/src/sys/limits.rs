//! The process's file-descriptor limit: raised to the hard limit at start, so
//! thousands of connections (two sockets and four pipe ends each) fit.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// What root asks for: enough for 100,000 connection pairs.
const WANTED: u64 = 262_144;

/// Raise `RLIMIT_NOFILE`: as root (or with CAP_SYS_RESOURCE) to [`WANTED`]
/// (or the kernel's `nr_open` if lower), otherwise the soft limit up to the
/// hard one. Returns the soft limit now in force.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(hard);
    let wanted = WANTED.min(nr_open);
    if hard < wanted && setrlimit(Resource::RLIMIT_NOFILE, wanted, wanted).is_ok() {
        return Ok(wanted);
    }
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard.max(soft))
}
