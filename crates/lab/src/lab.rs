//! [`Lab`]: build the three namespaces, the two veth links, the addresses,
//! the routes and the router's firewall; run code or commands inside; take
//! it all down again.
//!
//! Build order: take an instance lock → create `house`, `router`,
//! `internet` → from inside the router, create both veth pairs with their
//! far ends placed straight into the house and the internet (the host's
//! namespace never sees a lab link) → addresses, routes, forwarding →
//! nftables ruleset. A failure part-way removes what was made. Teardown
//! runs on [`Lab::teardown`] or on drop (so also on error, panic and
//! cancellation), and removes the namespaces, with every link and rule in
//! them, then the lock.

use std::ffi::OsStr;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

use crate::error::LabError;
use crate::plan::addr::{
    AddressPlan, Instance, Role, HOUSE_IF, INTERNET_IF, PREFIX_LEN, ROUTER_LAN_IF, ROUTER_WAN_IF,
};
use crate::plan::ruleset::{Ruleset, TABLE};
use crate::policy::Policy;
use crate::sys::instance::{self, InstanceLock};
use crate::sys::nft;
use onedoor_sys::netns::{self, Netns};
use onedoor_sys::nl::NlError;
use onedoor_sys::rtnl::{self, Rtnl};

/// How long the veth links may take to be usable after they are up.
const LINK_UP_TIMEOUT: Duration = Duration::from_secs(3);

/// What to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabConfig {
    /// The router's egress policy.
    pub policy: Policy,
    /// A fixed instance, or `None` for the lowest free one.
    pub instance: Option<Instance>,
}

impl LabConfig {
    /// The lowest free instance with `policy`.
    pub fn new(policy: Policy) -> Self {
        LabConfig {
            policy,
            instance: None,
        }
    }
}

/// A built lab. Dropping it tears it down; [`Lab::teardown`] does the same
/// and reports errors.
#[derive(Debug)]
pub struct Lab {
    plan: AddressPlan,
    policy: Policy,
    ruleset: Ruleset,
    house: Arc<Netns>,
    router: Arc<Netns>,
    internet: Arc<Netns>,
    lock: Option<InstanceLock>,
    cleaned: Vec<String>,
    build_time: Duration,
}

fn sys(what: impl Into<String>) -> impl FnOnce(io::Error) -> LabError {
    let what = what.into();
    move |source| LabError::Sys { what, source }
}

fn nl(e: NlError) -> LabError {
    LabError::Sys {
        what: e.what,
        source: e.source,
    }
}

/// Namespaces made so far during a build; removed unless disarmed.
struct Partial(Vec<String>);

impl Drop for Partial {
    fn drop(&mut self) {
        for name in self.0.iter().rev() {
            let _ = netns::remove(name);
        }
    }
}

impl Lab {
    /// Build a lab. Needs root (`CAP_SYS_ADMIN` and `CAP_NET_ADMIN`).
    pub fn build(config: LabConfig) -> Result<Lab, LabError> {
        let started = Instant::now();
        let (lock, cleaned) = instance::allocate(config.instance)?;
        let plan = AddressPlan::new(lock.instance());
        let ruleset = Ruleset::for_policy(config.policy, &plan);

        let mut partial = Partial(Vec::new());
        let mut make = |role: Role| -> Result<Arc<Netns>, LabError> {
            let name = plan.netns(role);
            let ns = Netns::create(name).map_err(sys(format!("creating namespace {name}")))?;
            partial.0.push(name.to_owned());
            Ok(Arc::new(ns))
        };
        let house = make(Role::House)?;
        let router = make(Role::Router)?;
        let internet = make(Role::Internet)?;

        router
            .run(|| -> Result<(), LabError> {
                let mut r = Rtnl::open().map_err(nl)?;
                r.add_veth(ROUTER_LAN_IF, HOUSE_IF, house.as_fd())
                    .map_err(nl)?;
                r.add_veth(ROUTER_WAN_IF, INTERNET_IF, internet.as_fd())
                    .map_err(nl)?;
                for link in ["lo", ROUTER_LAN_IF, ROUTER_WAN_IF] {
                    r.set_up(link).map_err(nl)?;
                }
                r.add_address(ROUTER_LAN_IF, plan.router_lan, PREFIX_LEN)
                    .map_err(nl)?;
                r.add_address(ROUTER_WAN_IF, plan.router_wan, PREFIX_LEN)
                    .map_err(nl)?;
                rtnl::enable_forwarding().map_err(nl)?;
                nft::apply(&ruleset).map_err(nl)
            })
            .map_err(sys("entering the router"))??;
        house
            .run(|| -> Result<(), LabError> {
                let mut r = Rtnl::open().map_err(nl)?;
                r.set_up("lo").map_err(nl)?;
                r.set_up(HOUSE_IF).map_err(nl)?;
                r.add_address(HOUSE_IF, plan.house, PREFIX_LEN)
                    .map_err(nl)?;
                r.add_route(std::net::Ipv4Addr::UNSPECIFIED, 0, plan.router_lan)
                    .map_err(nl)
            })
            .map_err(sys("entering the house"))??;
        internet
            .run(|| -> Result<(), LabError> {
                let mut r = Rtnl::open().map_err(nl)?;
                r.set_up("lo").map_err(nl)?;
                r.set_up(INTERNET_IF).map_err(nl)?;
                r.add_address(INTERNET_IF, plan.internet, PREFIX_LEN)
                    .map_err(nl)?;
                // Only the way back to the house: nothing else exists here.
                r.add_route(plan.lan_net(), PREFIX_LEN, plan.router_wan)
                    .map_err(nl)
            })
            .map_err(sys("entering the internet"))??;

        // A veth that is up is not yet usable: until the kernel has
        // attached its queueing discipline (IFF_RUNNING), packets sent on it
        // are dropped and the first connection of a story would wait for a
        // retransmission. Wait for all four ends, bounded.
        let running = |ns: &Netns, links: &'static [&'static str]| -> Result<(), LabError> {
            ns.run(|| Rtnl::open()?.wait_running(links, LINK_UP_TIMEOUT))
                .map_err(sys(format!("entering {}", ns.name())))?
                .map_err(nl)
        };
        running(&router, &[ROUTER_LAN_IF, ROUTER_WAN_IF])?;
        running(&house, &[HOUSE_IF])?;
        running(&internet, &[INTERNET_IF])?;

        partial.0.clear();
        Ok(Lab {
            plan,
            policy: config.policy,
            ruleset,
            house,
            router,
            internet,
            lock: Some(lock),
            cleaned,
            build_time: started.elapsed(),
        })
    }

    /// Names, addresses and ports.
    pub fn plan(&self) -> &AddressPlan {
        &self.plan
    }

    /// The router's policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The ruleset installed on the router.
    pub fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }

    /// How long [`Lab::build`] took.
    pub fn build_time(&self) -> Duration {
        self.build_time
    }

    /// Namespaces of a killed run that were removed to make room for this
    /// lab (normally none).
    pub fn cleaned_leftovers(&self) -> &[String] {
        &self.cleaned
    }

    /// The namespace of `role`.
    pub fn netns(&self, role: Role) -> &Arc<Netns> {
        match role {
            Role::House => &self.house,
            Role::Router => &self.router,
            Role::Internet => &self.internet,
        }
    }

    /// Run `f` on a thread inside `role`'s namespace.
    pub fn run_in<T: Send>(&self, role: Role, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        self.netns(role).run(f)
    }

    /// A TCP listener bound to `addr` inside `role`'s namespace.
    pub fn tcp_listener(&self, role: Role, addr: SocketAddr) -> io::Result<std::net::TcpListener> {
        self.run_in(role, || std::net::TcpListener::bind(addr))?
    }

    /// An unconnected TCP socket inside `role`'s namespace, for
    /// `TcpSocket::connect` on any tokio runtime.
    pub fn tcp_socket(&self, role: Role) -> io::Result<tokio::net::TcpSocket> {
        self.run_in(role, tokio::net::TcpSocket::new_v4)?
    }

    /// A UDP socket bound to `addr` inside `role`'s namespace.
    pub fn udp_socket(&self, role: Role, addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
        self.run_in(role, || std::net::UdpSocket::bind(addr))?
    }

    /// A command that runs inside `role`'s namespace.
    ///
    /// The child enters the namespace between fork and exec, and is sent
    /// `SIGKILL` if the thread that spawned it ends (`PR_SET_PDEATHSIG`), so
    /// it cannot outlive the lab even when the lab is killed: spawn from a
    /// thread that lives as long as the child should (e.g. the main thread).
    pub fn command(&self, role: Role, program: impl AsRef<OsStr>) -> Command {
        let ns = Arc::clone(self.netns(role));
        let parent = std::process::id();
        let mut cmd = Command::new(program);
        // SAFETY: the closure runs between fork and exec and only makes
        // system calls (setns, prctl, getppid); it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                let fd = BorrowedFd::borrow_raw(ns.raw_fd());
                setns(fd, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(io::Error::from)?;
                if nix::unistd::getppid().as_raw() as u32 != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        cmd
    }

    /// Take the lab down now and say how long it took.
    pub fn teardown(mut self) -> Result<Duration, LabError> {
        self.teardown_inner()
    }

    fn teardown_inner(&mut self) -> Result<Duration, LabError> {
        let started = Instant::now();
        let Some(lock) = self.lock.take() else {
            return Ok(Duration::ZERO);
        };
        // The namespace takes its rules with it; deleting the table first
        // also empties it for any process still holding the namespace.
        let _ = self.router.run(|| nft::delete_table(TABLE));
        let mut first_error = None;
        for role in [Role::Internet, Role::Router, Role::House] {
            let name = self.plan.netns(role);
            if let Err(e) = netns::remove(name) {
                first_error.get_or_insert(LabError::Sys {
                    what: format!("removing namespace {name}"),
                    source: e,
                });
            }
        }
        match first_error {
            None => {
                lock.release();
                Ok(started.elapsed())
            }
            Some(e) => {
                // Keep the lock file honest: dropping it now lets
                // `--clean` finish the job.
                drop(lock);
                Err(e)
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.teardown_inner() {
            tracing::warn!("lab teardown: {e}; `onedoor lab --clean` removes what is left");
        }
    }
}

/// Check that this process can build a lab: root, network namespaces, and
/// nf_tables (tried in a throwaway namespace that nobody else sees).
pub fn preflight() -> Result<(), LabError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(LabError::NotRoot);
    }
    let probe = Ruleset {
        table: "onedoor-preflight".into(),
        chains: Vec::new(),
    };
    netns::try_anonymous(|| nft::apply(&probe))
        .map_err(|e| LabError::Unavailable(format!("network namespaces: {e}")))?
        .map_err(|e| LabError::Unavailable(format!("nftables: {e}")))
}
