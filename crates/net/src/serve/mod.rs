//! The one-door server: listeners, limits, reload and drain.
//!
//! [`Server`] holds what every connection shares: the live configuration
//! (swapped whole on reload, so a connection keeps the config it was accepted
//! under), the connection and pending limits, the rate limiter, and the
//! tracker that `SIGTERM` waits on. Each listener runs [`accept`]'s loop; each
//! connection runs [`conn`]'s handler, on one of the connection threads
//! ([`workers`]) for its whole life.

mod accept;
mod conn;
pub mod pending;
pub mod reflect;
pub mod tunnel;
mod workers;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use onedoor_proto::config::ServeConfig;
use onedoor_proto::rate::RateLimiter;
use onedoor_proto::Router;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use pending::Pending;

/// A configuration in force: the validated config and its router.
#[derive(Debug)]
pub struct Live {
    /// The settings.
    pub config: ServeConfig,
    /// The routes, ready to decide.
    pub router: Router,
    /// Each route's label, for logs and metrics.
    pub labels: Vec<String>,
}

impl Live {
    /// Prepare a config for use; `probe` is the reflector's key, if any.
    pub fn new(config: ServeConfig, probe: Option<&onedoor_proto::probe::ProbeKey>) -> Self {
        Live::with_tunnel(config, probe, None)
    }

    /// [`Live::new`], with the tunnel's own TLS names recognised when the
    /// config has `tunnel`.
    pub fn with_tunnel(
        config: ServeConfig,
        probe: Option<&onedoor_proto::probe::ProbeKey>,
        tunnel: Option<&tunnel::Tunnel>,
    ) -> Self {
        let mut router = Router::new(config.routes.clone());
        if config.reflect.is_some() {
            router.own.probe = probe.cloned();
        }
        if let (true, Some(t)) = (config.tunnel, tunnel) {
            (router.own.names, router.own.no_sni) = t.own_traffic(&config.routes);
            router.own.ws = Some(t.ticket_key().clone());
        }
        let labels = config.routes.iter().map(|r| r.label()).collect();
        Live {
            config,
            router,
            labels,
        }
    }
}

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) live: ArcSwap<Live>,
    pub(crate) connections: Arc<Semaphore>,
    pub(crate) max_connections: Mutex<usize>,
    pub(crate) pending: Arc<Pending>,
    pub(crate) rate: Mutex<Option<RateLimiter>>,
    pub(crate) tracker: TaskTracker,
    /// The threads connections run on.
    pub(crate) workers: workers::Workers,
    /// Cancelled when draining starts: listeners stop, sniffing stops.
    pub(crate) stopping: CancellationToken,
    /// The probe reflector, with `--reflect`.
    pub(crate) reflector: Option<Arc<reflect::Reflector>>,
    /// The tunnel, with `--tunnel`.
    pub(crate) tunnel: Option<Arc<tunnel::Tunnel>>,
}

/// A running one-door server.
#[derive(Debug, Clone)]
pub struct Server {
    shared: Arc<Shared>,
    listeners: Arc<Mutex<HashMap<String, CancellationToken>>>,
}

impl Server {
    /// A server with `config` and no listener yet. `reflector` answers
    /// probe hellos when the config has `reflect`.
    pub fn new(config: ServeConfig, reflector: Option<Arc<reflect::Reflector>>) -> Self {
        Server::with_tunnel(config, reflector, None)
    }

    /// [`Server::new`], hosting `tunnel` while the config has `tunnel`.
    /// With a tunnel, must be called inside the tokio runtime: it starts
    /// the task that watches the client registry.
    pub fn with_tunnel(
        config: ServeConfig,
        reflector: Option<Arc<reflect::Reflector>>,
        tunnel: Option<Arc<tunnel::Tunnel>>,
    ) -> Self {
        let live = Live::with_tunnel(
            config,
            reflector.as_ref().map(|r| r.key()),
            tunnel.as_deref(),
        );
        let c = &live.config;
        let shared = Shared {
            connections: Arc::new(Semaphore::new(c.max_connections)),
            max_connections: Mutex::new(c.max_connections),
            pending: Pending::new(c.max_pending),
            rate: Mutex::new(c.rate.map(RateLimiter::new)),
            tracker: TaskTracker::new(),
            workers: workers::Workers::per_core(),
            stopping: CancellationToken::new(),
            reflector,
            tunnel,
            live: ArcSwap::from_pointee(live),
        };
        if let Some(t) = &shared.tunnel {
            tokio::spawn(t.clone().watch(shared.stopping.child_token()));
        }
        Server {
            shared: Arc::new(shared),
            listeners: Arc::default(),
        }
    }

    /// Start accepting on a bound listener. `key` names it for reloads (the
    /// `listen` entry it came from, or `systemd:N`); a name that resolved to
    /// several addresses has several listeners under one key.
    pub fn add_listener(&self, key: String, listener: StdListener) -> std::io::Result<SocketAddr> {
        crate::sys::listen::tune_listener(&listener);
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        let stop = self
            .listeners
            .lock()
            .expect("listeners lock")
            .entry(key)
            .or_insert_with(|| self.shared.stopping.child_token())
            .clone();
        tokio::spawn(accept::run(self.shared.clone(), listener, stop));
        tracing::info!(%addr, "listening");
        Ok(addr)
    }

    /// Stop the listener added under `key`; its live connections stay.
    pub fn remove_listener(&self, key: &str) {
        if let Some(stop) = self.listeners.lock().expect("listeners lock").remove(key) {
            stop.cancel();
        }
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Live> {
        self.shared.live.load_full()
    }

    /// Put a new config in force. Live connections keep the config they were
    /// accepted under; listeners are changed by the caller (see
    /// `onedoor_proto::config::listener_changes`).
    pub fn reload(&self, config: ServeConfig) {
        let new = Live::with_tunnel(
            config,
            self.shared.reflector.as_ref().map(|r| r.key()),
            self.shared.tunnel.as_deref(),
        );
        let c = &new.config;
        self.shared.pending.set_max(c.max_pending);
        *self.shared.rate.lock().expect("rate lock") = c.rate.map(RateLimiter::new);
        {
            let mut max = self.shared.max_connections.lock().expect("max lock");
            if c.max_connections > *max {
                self.shared
                    .connections
                    .add_permits(c.max_connections - *max);
            } else if c.max_connections < *max {
                let fewer = (*max - c.max_connections) as u32;
                let sem = self.shared.connections.clone();
                tokio::spawn(async move {
                    if let Ok(p) = sem.acquire_many_owned(fewer).await {
                        p.forget();
                    }
                });
            }
            *max = c.max_connections;
        }
        self.shared.live.store(Arc::new(new));
    }

    /// Answer UDP probe hellos on `socket` until the server drains.
    pub fn add_udp_reflector(&self, socket: tokio::net::UdpSocket) {
        if let Some(r) = &self.shared.reflector {
            tokio::spawn(
                r.clone()
                    .run_udp(socket, self.shared.stopping.child_token()),
            );
        }
    }

    /// Answer UDP probe hellos arriving through the reflector's redirect on
    /// the transparent `socket`, until the server drains.
    #[cfg(target_os = "linux")]
    pub fn add_udp_reflector_redirected(&self, socket: tokio::net::UdpSocket) {
        if let Some(r) = &self.shared.reflector {
            tokio::spawn(
                r.clone()
                    .run_udp_redirected(socket, self.shared.stopping.child_token()),
            );
        }
    }

    /// The tunnel, with `--tunnel`.
    pub fn tunnel(&self) -> Option<&Arc<tunnel::Tunnel>> {
        self.shared.tunnel.as_ref()
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.tracker.len()
    }

    /// Stop accepting, close connections still being sniffed, and wait up to
    /// `drain` for the forwarded ones to finish. Returns how many were still
    /// open when the bound ran out.
    pub async fn drain(&self, drain: Duration) -> usize {
        self.shared.stopping.cancel();
        self.shared.tracker.close();
        let _ = tokio::time::timeout(drain, self.shared.tracker.wait()).await;
        self.shared.tracker.len()
    }
}
