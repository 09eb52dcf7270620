//! Which lab instance is whose: a lock file per instance, and the cleaning
//! of what killed runs left behind.
//!
//! A running lab holds an exclusive `flock` on
//! `/run/onedoor-lab/instance-N.lock` (with its pid written inside) for as
//! long as it lives. The kernel drops the lock when the process dies, even
//! by `SIGKILL`, so "the lock is free but namespaces of instance N exist"
//! means exactly "a killed run left these behind". `--clean` removes only
//! those, never a live lab's.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use onedoor_sys::netns::{self, Netns};

use crate::plan::addr::{Instance, Role};

/// Where the lab keeps its lock files.
pub const STATE_DIR: &str = "/run/onedoor-lab";

/// Make sure [`STATE_DIR`] exists (mode 0700).
fn state_dir() -> io::Result<&'static Path> {
    let dir = Path::new(STATE_DIR);
    match fs::create_dir(dir) {
        Ok(()) => {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("creating {STATE_DIR}: {e}"),
            ))
        }
    }
    Ok(dir)
}

/// An instance we own for as long as this value lives.
#[derive(Debug)]
pub struct InstanceLock {
    instance: Instance,
    path: PathBuf,
    file: Option<Flock<File>>,
}

/// Why an instance could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another lab (pid, if known) runs this instance.
    #[error("lab instance {instance} is in use by a running lab{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Busy {
        /// The instance asked for.
        instance: Instance,
        /// The owner's pid, as written in its lock file.
        pid: Option<u32>,
    },
    /// Every instance is in use.
    #[error("all 256 lab instances are in use")]
    Exhausted,
    /// The lock file could not be used.
    #[error("lock file {path}: {source}")]
    Io {
        /// The lock file.
        path: String,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
}

fn lock_path(instance: Instance) -> io::Result<PathBuf> {
    Ok(state_dir()?.join(format!("instance-{}.lock", instance.0)))
}

/// The pid written in `instance`'s lock file, if any.
pub(crate) fn owner_pid(instance: Instance) -> Option<u32> {
    let mut s = String::new();
    File::open(lock_path(instance).ok()?)
        .ok()?
        .read_to_string(&mut s)
        .ok()?;
    s.trim().parse().ok()
}

impl InstanceLock {
    /// Take `instance` if no live lab holds it. `Ok(None)` means busy.
    pub fn try_acquire(instance: Instance) -> Result<Option<InstanceLock>, LockError> {
        let path = lock_path(instance).map_err(|e| LockError::Io {
            path: format!("instance-{instance}.lock"),
            source: e,
        })?;
        let io_err = |e: io::Error| LockError::Io {
            path: path.display().to_string(),
            source: e,
        };
        for _attempt in 0..8 {
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
            {
                Ok(f) => f,
                // Another lab removed the empty state directory just now.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    state_dir().map_err(io_err)?;
                    continue;
                }
                Err(e) => return Err(io_err(e)),
            };
            let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(l) => l,
                Err((_, nix::Error::EWOULDBLOCK)) => return Ok(None),
                Err((_, e)) => return Err(io_err(io::Error::from(e))),
            };
            // The previous owner may have unlinked the file between our
            // open and our lock: then our lock guards nothing. Start over.
            let ours = locked.metadata().map_err(io_err)?.ino();
            match fs::metadata(&path) {
                Ok(m) if m.ino() == ours => {}
                _ => continue,
            }
            locked.set_len(0).map_err(io_err)?;
            locked.rewind().map_err(io_err)?;
            writeln!(locked, "{}", std::process::id()).map_err(io_err)?;
            return Ok(Some(InstanceLock {
                instance,
                path,
                file: Some(locked),
            }));
        }
        Err(io_err(io::Error::other("the lock file kept disappearing")))
    }

    /// The instance held.
    pub fn instance(&self) -> Instance {
        self.instance
    }

    /// Give the instance back: delete the lock file, then unlock.
    pub fn release(mut self) {
        self.release_inner();
    }

    fn release_inner(&mut self) {
        if let Some(f) = self.file.take() {
            let _ = fs::remove_file(&self.path);
            drop(f);
            // Leave no empty state directory behind (while another lab uses
            // it, this fails, as it should).
            let _ = fs::remove_dir(STATE_DIR);
        }
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        self.release_inner();
    }
}

/// The runtime directory of `instance`, `/run/onedoor-lab/instance-N.d`,
/// for what a run keeps on disk while it lasts (the throwaway server
/// identity of the probe's map). Removed by the run, and with the rest of
/// a killed run's leftovers.
pub fn runtime_dir(instance: Instance) -> PathBuf {
    Path::new(STATE_DIR).join(format!("instance-{}.d", instance.0))
}

/// Namespaces under `/run/netns` that belong to `instance`.
fn namespaces_of(instance: Instance) -> Vec<String> {
    let names = netns::list().unwrap_or_default();
    Role::ALL
        .iter()
        .map(|r| instance.netns_name(*r))
        .filter(|n| names.contains(n))
        .collect()
}

/// Remove every namespace of `instance` (whose lock the caller holds),
/// first ending our own processes still inside (a `serve` child that
/// outlived a killed lab). Returns the names removed and the processes that
/// were left alone.
fn remove_instance(instance: Instance) -> (Vec<String>, Vec<String>) {
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| fs::canonicalize(p).ok());
    let mut removed = Vec::new();
    let mut others = Vec::new();
    for name in namespaces_of(instance) {
        if let Ok(ns) = Netns::open(&name) {
            if let Ok(ino) = ns.inode() {
                for pid in netns::pids_inside(ino) {
                    let exe = fs::read_link(format!("/proc/{pid}/exe")).ok();
                    if exe.is_some() && exe == me {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    } else {
                        let comm =
                            fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                        others.push(format!("pid {pid} ({}) in {name}", comm.trim()));
                    }
                }
            }
        }
        if netns::remove(&name).is_ok() {
            removed.push(name);
        }
    }
    let dir = runtime_dir(instance);
    if dir.exists() && fs::remove_dir_all(&dir).is_ok() {
        removed.push(dir.display().to_string());
    }
    (removed, others)
}

/// Take an instance for a new lab: `requested`, or the lowest free one.
/// A free instance with leftovers of a killed run is cleaned first; the
/// names cleaned are returned with the lock.
pub(crate) fn allocate(
    requested: Option<Instance>,
) -> Result<(InstanceLock, Vec<String>), LockError> {
    let candidates: Vec<Instance> = match requested {
        Some(i) => vec![i],
        None => Instance::all().collect(),
    };
    for instance in candidates {
        match InstanceLock::try_acquire(instance)? {
            Some(lock) => {
                let (cleaned, _) = remove_instance(instance);
                return Ok((lock, cleaned));
            }
            None if requested.is_some() => {
                return Err(LockError::Busy {
                    instance,
                    pid: owner_pid(instance),
                })
            }
            None => continue,
        }
    }
    Err(LockError::Exhausted)
}

/// What `onedoor lab --clean` did.
#[derive(Debug, Default)]
pub struct CleanReport {
    /// Namespaces removed.
    pub removed: Vec<String>,
    /// Instances left alone because a live lab owns them, with its pid.
    pub busy: Vec<(Instance, Option<u32>)>,
    /// Other processes found inside removed namespaces (not ours, so not
    /// killed; their namespace is gone from `/run/netns` all the same).
    pub strangers: Vec<String>,
}

/// Remove what killed labs left behind: namespaces named `onedoor-…` whose
/// instance no live lab holds, and stale lock files. Live labs are skipped.
pub fn clean_leftovers() -> Result<CleanReport, LockError> {
    let mut instances = BTreeSet::new();
    for name in netns::list().unwrap_or_default() {
        if let Some((i, _)) = Instance::parse_netns_name(&name) {
            instances.insert(i);
        }
    }
    if let Ok(rd) = fs::read_dir(STATE_DIR) {
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(n) = name
                .strip_prefix("instance-")
                .and_then(|r| r.strip_suffix(".lock"))
                .and_then(|n| n.parse::<Instance>().ok())
            {
                instances.insert(n);
            }
        }
    }
    let mut report = CleanReport::default();
    for instance in instances {
        match InstanceLock::try_acquire(instance)? {
            Some(lock) => {
                let (removed, others) = remove_instance(instance);
                report.removed.extend(removed);
                report.strangers.extend(others);
                lock.release();
            }
            None => report.busy.push((instance, owner_pid(instance))),
        }
    }
    Ok(report)
}
