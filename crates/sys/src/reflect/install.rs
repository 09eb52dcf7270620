//! Installing the redirect in the calling thread's network namespace,
//! removing it, and cleaning what dead processes left behind.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::nft::{Family, NftSocket, TABLE_F_OWNER};
use crate::nl::NlError;
use crate::sockets::{self, Proto};

use super::plan::{plan, InUse, Owner, RedirectPlan, RedirectSpec, TCP_SET, UDP_SET};

/// Tables made by this process so far (the serial in their names).
static SERIAL: AtomicU32 = AtomicU32::new(0);

/// Who keeps the table alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ownership {
    /// The kernel ties the table to our netlink socket
    /// ([`TABLE_F_OWNER`], Linux ≥ 5.12) and deletes it when the socket
    /// closes, however the process ends. On older kernels this falls back
    /// to [`Ownership::Process`] by itself.
    #[default]
    Kernel,
    /// A plain table, deleted on drop; one left by a killed process is
    /// deleted by the next [`Redirect::install`] (or [`clean_leftovers`]).
    Process,
}

/// Why the redirect could not be installed, changed or removed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}{}", hint(source))]
pub struct RedirectError {
    /// What was being done.
    pub what: String,
    /// Why it failed.
    #[source]
    pub source: io::Error,
}

fn hint(e: &io::Error) -> &'static str {
    if e.raw_os_error() == Some(libc::EPERM) {
        " (the redirect needs CAP_NET_ADMIN: run as root before dropping privileges)"
    } else {
        ""
    }
}

fn nl(e: NlError) -> RedirectError {
    RedirectError {
        what: e.what,
        source: e.source,
    }
}

/// The reflector's port redirect, installed: an nf_tables table of our own
/// in this network namespace. Dropping it removes the table.
///
/// Made by [`Redirect::install`]; see the `reflect` module documentation
/// for what the table does and how listeners learn the dialled port.
#[derive(Debug)]
pub struct Redirect {
    sock: NftSocket,
    /// The network namespace it lives in (`/proc/thread-self/ns/net` at
    /// install), where [`Redirect::refresh`] reads the ports in use.
    netns: File,
    name: String,
    plan: RedirectPlan,
    kernel_owned: bool,
    cleaned: Vec<String>,
    removed: bool,
}

/// What is known about this process, for naming its tables.
fn me() -> io::Result<Owner> {
    let pid = std::process::id();
    let start =
        start_time(pid)?.ok_or_else(|| io::Error::other("/proc/self/stat is unreadable"))?;
    Ok(Owner {
        pid,
        start,
        serial: SERIAL.fetch_add(1, Ordering::Relaxed),
    })
}

/// The start time of process `pid` (field 22 of `/proc/PID/stat`, clock
/// ticks since boot), or `None` when there is no such process.
fn start_time(pid: u32) -> io::Result<Option<u64>> {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // The command name (field 2) is in parentheses and may hold anything;
    // the fields after the last ')' are plain: state is field 3.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat: no command name")))?;
    after
        .split_whitespace()
        .nth(22 - 3)
        .and_then(|s| s.parse().ok())
        .map(Some)
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat: no start time")))
}

/// Is the process that made a table with this owner still running?
fn alive(owner: &Owner) -> bool {
    match start_time(owner.pid) {
        Ok(Some(start)) => start == owner.start,
        Ok(None) => false,
        // Unreadable: assume alive, never delete a live process's table.
        Err(_) => true,
    }
}

/// Ports held by this namespace's servers (see `sockets`).
pub fn in_use() -> Result<InUse, RedirectError> {
    let list = |proto| {
        sockets::servers(proto).map_err(|e| RedirectError {
            what: "finding the ports in use".into(),
            source: e,
        })
    };
    Ok(InUse::from_sockets(&list(Proto::Tcp)?, &list(Proto::Udp)?))
}

/// Delete the reflector tables whose owner is gone: left by a process
/// that was killed before it could delete its own (a table with kernel
/// ownership never stays behind). Tables of live processes are left alone,
/// as are tables another live socket owns (the kernel refuses: `EPERM`).
/// Returns the names deleted.
pub fn clean_leftovers() -> Result<Vec<String>, RedirectError> {
    clean_with(&mut NftSocket::open().map_err(nl)?)
}

fn clean_with(sock: &mut NftSocket) -> Result<Vec<String>, RedirectError> {
    let mut removed = Vec::new();
    for t in sock.list_tables(Some(Family::Inet)).map_err(nl)? {
        let Some(owner) = Owner::from_table_name(&t.name) else {
            continue;
        };
        if alive(&owner) {
            continue;
        }
        match sock.delete_table(Family::Inet, &t.name) {
            Ok(()) => removed.push(t.name),
            Err(e)
                if matches!(
                    e.source.raw_os_error(),
                    Some(libc::EPERM) | Some(libc::ENOENT) | Some(libc::EBUSY)
                ) => {}
            Err(e) => return Err(nl(e)),
        }
    }
    Ok(removed)
}

impl Redirect {
    /// Install the redirect of `spec` in the calling thread's network
    /// namespace, owned by the kernel ([`Ownership::Kernel`]).
    ///
    /// In one go: delete tables that killed reflectors left behind
    /// ([`clean_leftovers`]), read the ports this namespace's servers hold
    /// ([`in_use`]), plan, and create the table — atomically, one netlink
    /// batch. Needs `CAP_NET_ADMIN`.
    pub fn install(spec: &RedirectSpec) -> Result<Redirect, RedirectError> {
        Redirect::install_with(spec, Ownership::Kernel)
    }

    /// [`Redirect::install`], choosing who keeps the table alive.
    pub fn install_with(
        spec: &RedirectSpec,
        ownership: Ownership,
    ) -> Result<Redirect, RedirectError> {
        for (ports, listener, proto) in [
            (&spec.tcp, spec.tcp_listener, "TCP"),
            (&spec.udp, spec.udp_listener, "UDP"),
        ] {
            if !ports.is_empty() && listener == 0 {
                return Err(RedirectError {
                    what: format!("redirecting {proto} ports {ports}"),
                    source: io::Error::new(io::ErrorKind::InvalidInput, "to listener port 0"),
                });
            }
        }
        let netns = File::open("/proc/thread-self/ns/net").map_err(|e| RedirectError {
            what: "opening this thread's network namespace".into(),
            source: e,
        })?;
        let mut sock = NftSocket::open().map_err(nl)?;
        let cleaned = clean_with(&mut sock)?;
        let plan = plan(spec, &in_use()?);
        let owner = me().map_err(|e| RedirectError {
            what: "reading this process's start time".into(),
            source: e,
        })?;
        let name = owner.table_name();
        let mut kernel_owned = ownership == Ownership::Kernel;
        let mut result =
            sock.add_table(&plan.table(&name, if kernel_owned { TABLE_F_OWNER } else { 0 }));
        if kernel_owned {
            if let Err(e) = &result {
                // Before 5.12 the kernel refuses the flag it does not know.
                if e.source.raw_os_error() == Some(libc::EOPNOTSUPP) {
                    kernel_owned = false;
                    result = sock.add_table(&plan.table(&name, 0));
                }
            }
        }
        result.map_err(|e| RedirectError {
            what: format!(
                "installing the reflector's redirect (table inet {name}): {}",
                e.what
            ),
            source: e.source,
        })?;
        Ok(Redirect {
            sock,
            netns,
            name,
            plan,
            kernel_owned,
            cleaned,
            removed: false,
        })
    }

    /// The table's name (`onedoor-reflect-PID-START-SERIAL`, family `inet`).
    pub fn table_name(&self) -> &str {
        &self.name
    }

    /// What is redirected and what was skipped.
    pub fn plan(&self) -> &RedirectPlan {
        &self.plan
    }

    /// Does the kernel delete the table when this process ends, however
    /// it ends? (`false` on kernels before 5.12, or with
    /// [`Ownership::Process`].)
    pub fn kernel_owned(&self) -> bool {
        self.kernel_owned
    }

    /// Tables of dead reflectors that installing this one deleted.
    pub fn cleaned_leftovers(&self) -> &[String] {
        &self.cleaned
    }

    /// Read the ports in use again and, if they changed, replace the
    /// redirected ports atomically (a server that started listening on a
    /// redirected port gets its port back; one that stopped gives it up).
    /// Returns whether anything changed. Needs `CAP_NET_ADMIN`, like
    /// [`Redirect::install`]. May be called from any thread: the ports are
    /// read in the redirect's own namespace (entering it takes
    /// `CAP_SYS_ADMIN`, needed only when the caller is elsewhere).
    pub fn refresh(&mut self) -> Result<bool, RedirectError> {
        let fresh = plan(&self.plan.spec, &self.in_use_here()?);
        if fresh == self.plan {
            return Ok(false);
        }
        let sets = fresh.sets();
        let name = self.name.clone();
        self.sock
            .send(|b| {
                for (set_name, set) in [TCP_SET, UDP_SET].iter().zip(&sets) {
                    b.flush_set(Family::Inet, &name, set_name);
                    b.add_elements(Family::Inet, &name, set);
                }
            })
            .map_err(|e| RedirectError {
                what: format!(
                    "refreshing the reflector's redirect (table inet {name}): {}",
                    e.what
                ),
                source: e.source,
            })?;
        self.plan = fresh;
        Ok(true)
    }

    /// The ports in use in the redirect's namespace.
    fn in_use_here(&self) -> Result<InUse, RedirectError> {
        let err = |e: io::Error| RedirectError {
            what: "entering the redirect's network namespace".into(),
            source: e,
        };
        let id = |m: std::fs::Metadata| (m.dev(), m.ino());
        let ours = id(self.netns.metadata().map_err(err)?);
        let here = id(std::fs::metadata("/proc/thread-self/ns/net").map_err(err)?);
        if ours == here {
            in_use()
        } else {
            crate::netns::enter_and_run(self.netns.as_fd(), in_use).map_err(err)?
        }
    }

    /// Remove the table now, and say if that failed. (Dropping does the
    /// same, silently; a kernel-owned table goes with the socket even when
    /// the deletion itself is refused, e.g. after dropping privileges.)
    pub fn remove(mut self) -> Result<(), RedirectError> {
        self.remove_inner()
    }

    fn remove_inner(&mut self) -> Result<(), RedirectError> {
        if std::mem::replace(&mut self.removed, true) {
            return Ok(());
        }
        match self.sock.delete_table(Family::Inet, &self.name) {
            Ok(()) => Ok(()),
            Err(e) if e.source.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(e) => Err(nl(e)),
        }
    }
}

impl Drop for Redirect {
    fn drop(&mut self) {
        let _ = self.remove_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_start_time_and_is_alive() {
        let me = me().unwrap();
        assert_eq!(me.pid, std::process::id());
        assert!(alive(&me));
        assert!(!alive(&Owner {
            start: me.start + 1,
            ..me
        }));
        // pid_max is at most 2^22: this pid cannot exist.
        assert!(!alive(&Owner { pid: 1 << 23, ..me }));
        assert_ne!(me.serial, super::me().unwrap().serial);
    }
}
