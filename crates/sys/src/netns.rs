//! Named network namespaces, made the way `ip netns add` makes them, and
//! running code inside one.
//!
//! A named namespace is a bind mount of a namespace file onto
//! `/run/netns/NAME`, which is itself made a shared mount point once, so
//! tools such as `ip netns exec` see our namespaces too. A thread creates the
//! namespace with `unshare(CLONE_NEWNET)` and bind-mounts
//! `/proc/thread-self/ns/net`; only that thread ever leaves the host's
//! namespace, and it ends right after.
//!
//! [`Netns::run`] runs a closure on a fresh thread that has entered the
//! namespace with `setns`: sockets created there belong to the namespace for
//! the rest of their lives, whichever thread uses them afterwards.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::fcntl::{Flock, FlockArg};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// Where named network namespaces live (as for `ip netns`).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Serialises the setup of [`NETNS_RUN_DIR`] inside this process; a lock
/// on the directory does it between processes (parallel `ip netns add`
/// runs are known to stack mounts otherwise).
static RUN_DIR_SETUP: Mutex<()> = Mutex::new(());

/// A named network namespace we hold open.
#[derive(Debug)]
pub struct Netns {
    name: String,
    fd: OwnedFd,
}

fn ctx(what: impl Into<String>) -> impl FnOnce(io::Error) -> io::Error {
    let what = what.into();
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn nix_io(e: nix::Error) -> io::Error {
    io::Error::from(e)
}

/// The path of namespace `name`.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Make `/run/netns` exist and be a shared mount point, like `ip netns add`.
fn prepare_run_dir() -> io::Result<()> {
    let _in_process = RUN_DIR_SETUP.lock().unwrap_or_else(|e| e.into_inner());
    fs::create_dir_all(NETNS_RUN_DIR).map_err(ctx(format!("creating {NETNS_RUN_DIR}")))?;
    // Between processes: a lock on the directory itself (a bind mount of a
    // directory onto itself keeps its inode, so the lock keeps its meaning).
    let dir = File::open(NETNS_RUN_DIR).map_err(ctx(format!("opening {NETNS_RUN_DIR}")))?;
    let _between_processes = Flock::lock(dir, FlockArg::LockExclusive)
        .map_err(|(_, e)| ctx(format!("locking {NETNS_RUN_DIR}"))(nix_io(e)))?;
    let make_shared = || {
        mount(
            None::<&str>,
            NETNS_RUN_DIR,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match make_shared() {
        Ok(()) => Ok(()),
        Err(nix::Error::EINVAL) => {
            // Not a mount point yet: bind it onto itself, then share it.
            mount(
                Some(NETNS_RUN_DIR),
                NETNS_RUN_DIR,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| ctx(format!("bind-mounting {NETNS_RUN_DIR}"))(nix_io(e)))?;
            make_shared().map_err(|e| ctx(format!("sharing {NETNS_RUN_DIR}"))(nix_io(e)))
        }
        Err(e) => Err(ctx(format!("sharing {NETNS_RUN_DIR}"))(nix_io(e))),
    }
}

impl Netns {
    /// Create the namespace `name` (which must not exist) and open it.
    pub fn create(name: &str) -> io::Result<Netns> {
        prepare_run_dir()?;
        let path = netns_path(name);
        // O_EXCL: two users (two labs, say) can never claim the same name.
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o000)
            .open(&path)
            .map_err(ctx(format!("creating {}", path.display())))?;
        let target = path.clone();
        let made = std::thread::Builder::new()
            .name("netns-create".into())
            .spawn(move || -> io::Result<()> {
                unshare(CloneFlags::CLONE_NEWNET)
                    .map_err(|e| ctx("unshare(CLONE_NEWNET)")(nix_io(e)))?;
                mount(
                    Some("/proc/thread-self/ns/net"),
                    &target,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| ctx(format!("bind-mounting onto {}", target.display()))(nix_io(e)))
            })
            .map_err(ctx("spawning a thread"))?
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")));
        if let Err(e) = made {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        match Netns::open(name) {
            Ok(ns) => Ok(ns),
            Err(e) => {
                let _ = remove(name);
                Err(e)
            }
        }
    }

    /// Open the existing namespace `name`.
    pub fn open(name: &str) -> io::Result<Netns> {
        let path = netns_path(name);
        let file = File::open(&path).map_err(ctx(format!("opening {}", path.display())))?;
        Ok(Netns {
            name: name.to_owned(),
            fd: file.into(),
        })
    }

    /// Its name under `/run/netns`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run `f` on a new thread inside this namespace and return its result.
    /// Sockets `f` creates stay in the namespace wherever they are used.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        enter_and_run(self.fd.as_fd(), f)
    }

    /// The namespace's inode number, which identifies it system-wide.
    pub fn inode(&self) -> io::Result<u64> {
        Ok(File::from(self.fd.try_clone()?).metadata()?.ino())
    }

    /// For `pre_exec`: the raw fd to `setns` to (valid while `self` lives).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Run `f` on a scoped thread that first enters the namespace `fd`.
pub fn enter_and_run<T: Send>(fd: BorrowedFd<'_>, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("netns".into())
            .spawn_scoped(s, move || -> io::Result<T> {
                setns(fd, CloneFlags::CLONE_NEWNET).map_err(|e| ctx("setns")(nix_io(e)))?;
                Ok(f())
            })
            .map_err(ctx("spawning a thread"))?;
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Remove the namespace `name`: unmount and delete its file. Processes and
/// sockets still inside keep it alive, nameless, until they end. Missing
/// is not an error.
pub fn remove(name: &str) -> io::Result<()> {
    let path = netns_path(name);
    match umount2(&path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(ctx(format!("unmounting {}", path.display()))(nix_io(e))),
    }
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ctx(format!("removing {}", path.display()))(e)),
    }
}

/// Names of every namespace under `/run/netns`.
pub fn list() -> io::Result<Vec<String>> {
    match fs::read_dir(NETNS_RUN_DIR) {
        Ok(rd) => Ok(rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(ctx(format!("listing {NETNS_RUN_DIR}"))(e)),
    }
}

/// Can this process make network namespaces? Tries an anonymous one on a
/// throwaway thread (nothing is mounted; it vanishes with the thread) and
/// runs `probe` inside it.
pub fn try_anonymous<T: Send>(probe: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("netns-probe".into())
            .spawn_scoped(s, move || -> io::Result<T> {
                unshare(CloneFlags::CLONE_NEWNET)
                    .map_err(|e| ctx("unshare(CLONE_NEWNET)")(nix_io(e)))?;
                Ok(probe())
            })
            .map_err(ctx("spawning a thread"))?
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the probe thread panicked")))
    })
}

/// Pids of processes whose network namespace has inode `ino`.
pub fn pids_inside(ino: u64) -> Vec<u32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/net"))
                .map(|m| m.ino() == ino)
                .unwrap_or(false)
        })
        .collect()
}
