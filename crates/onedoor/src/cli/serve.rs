//! `onedoor serve`: the flags (each with its config key), loading and
//! reloading the config, binding, privilege drop, signals.
//!
//! Flags form one layer of settings and the `-c` file another; the flags
//! override the file key by key, on start and on every `SIGHUP`.

use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use clap::ArgMatches;
use std::sync::Arc;

use onedoor_net::serve::reflect::Reflector;
use onedoor_net::serve::Server;
use onedoor_net::sys;
use onedoor_proto::config::{
    listener_changes, At, ConfigError, RouteSource, ServeConfig, ServeLayer,
};
use onedoor_proto::probe::ReflectSpec;
use onedoor_proto::spec::HostPort;
use onedoor_proto::Protocol;
use tokio::signal::unix::{signal, SignalKind};

use crate::exit::{Failure, Outcome};

/// Arguments of `onedoor serve`. Each flag has a config-file key of the same
/// name (`--max-pending` ↔ `max-pending = 100`).
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Routes are tried in the order given; the first match wins. \
The --anyprot shorthand is the catch-all and is tried last.\n\n\
Example: onedoor serve -l 0.0.0.0:443 --ssh 127.0.0.1:22 \
--route 'tls,sni=*.example.org=127.0.0.1:8443' --http 127.0.0.1:80"
)]
pub(crate) struct ServeArgs {
    /// TOML config file; its keys are these flags' names. Flags override it.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen on ADDR (repeatable; IPv6 as [::]:443). Default 0.0.0.0:443.
    #[arg(short = 'l', long = "listen", value_name = "ADDR")]
    listen: Vec<String>,
    /// Route SSH (`SSH-2.0-`) to ADDR.
    #[arg(long, value_name = "ADDR")]
    ssh: Vec<String>,
    /// Route TLS (any ClientHello) to ADDR, without terminating it.
    #[arg(long, value_name = "ADDR")]
    tls: Vec<String>,
    /// Route HTTP/1.x to ADDR.
    #[arg(long, value_name = "ADDR")]
    http: Vec<String>,
    /// Route OpenVPN over TCP to ADDR.
    #[arg(long, value_name = "ADDR")]
    openvpn: Vec<String>,
    /// Route SOCKS5 to ADDR.
    #[arg(long, value_name = "ADDR")]
    socks5: Vec<String>,
    /// Route anything else to ADDR (tried last).
    #[arg(long, value_name = "ADDR")]
    anyprot: Vec<String>,
    /// PROTO[,sni=NAME][,alpn=ID][,host=NAME][,regex=RE]=ADDR (repeatable).
    /// PROTO: ssh tls http openvpn socks5 tinc xmpp adb regex anyprot.
    #[arg(long, value_name = "SPEC")]
    route: Vec<String>,
    /// Wait this long for a client's first bytes [default: 2s].
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// Send clients that stay silent past --timeout to this protocol's route
    /// (server-speaks-first protocols). Default: close them.
    #[arg(long, value_name = "PROTO")]
    on_timeout: Option<String>,
    /// Send a PROXY protocol header (v1 or v2) to every backend.
    #[arg(long, value_name = "v1|v2")]
    proxy_protocol: Option<String>,
    /// Accept a PROXY protocol header from trusted sources (--trusted-proxy).
    #[arg(long)]
    accept_proxy_protocol: bool,
    /// A source whose PROXY header is believed: address or CIDR (repeatable)
    /// [default: 127.0.0.0/8 and ::1].
    #[arg(long, value_name = "CIDR")]
    trusted_proxy: Vec<String>,
    /// At most N connections at once; more wait in the backlog [default: 20000].
    #[arg(long, value_name = "N")]
    max_connections: Option<u64>,
    /// At most N connections still being sniffed; past it the oldest is
    /// closed [default: 1024].
    #[arg(long, value_name = "N")]
    max_pending: Option<u64>,
    /// At most N new connections per second from one address (IPv6: per /64).
    #[arg(long, value_name = "N/s")]
    rate: Option<String>,
    /// Drop to this user once the ports are bound.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Serve Prometheus metrics on http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// State directory (keys, clients; used by the tunnel).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<String>,
    /// On SIGTERM, wait this long for live connections [default: 10s].
    #[arg(long, value_name = "DURATION")]
    drain_timeout: Option<String>,
    /// Host the `onedoor connect` tunnel on these doors: TLS for the server's
    /// own name (or without SNI, unless a --tls route takes it) is
    /// terminated here (needs the identity from `onedoor init`).
    #[arg(long)]
    tunnel: bool,
    /// With --tunnel: an HTTP server (HOST:PORT, plain HTTP) that gets,
    /// decrypted, every TLS connection to our name that is not a client, so
    /// scanners see that website. Default: close them.
    #[arg(long, value_name = "ADDR")]
    fallback: Option<String>,
    /// With --tunnel: a certificate chain (PEM) to present instead of the
    /// identity's self-signed one; its DNS names become serve's own names.
    #[arg(long, value_name = "FILE")]
    cert: Option<String>,
    /// With --tunnel: the private key (PEM) of --cert.
    #[arg(long, value_name = "FILE")]
    key: Option<String>,
    /// Answer `onedoor probe` on these doors, e.g. 'tcp:1-1024,udp:53,123,443'
    /// (needs the identity from `onedoor init`). Only hellos sealed with
    /// this server's key get an answer; anything else is routed as usual.
    #[arg(long, value_name = "SPEC")]
    reflect: Option<String>,
}

/// The flags as a settings layer. Routes keep the order they were typed in,
/// across `--ssh`, `--route` and the other shorthands.
fn flag_layer(a: &ServeArgs, m: &ArgMatches) -> ServeLayer {
    let mut routes: Vec<(usize, At<RouteSource>)> = Vec::new();
    let shorthands: [(&str, &'static str, Protocol, &Vec<String>); 6] = [
        ("ssh", "--ssh", Protocol::Ssh, &a.ssh),
        ("tls", "--tls", Protocol::Tls, &a.tls),
        ("http", "--http", Protocol::Http, &a.http),
        ("openvpn", "--openvpn", Protocol::OpenVpn, &a.openvpn),
        ("socks5", "--socks5", Protocol::Socks5, &a.socks5),
        ("anyprot", "--anyprot", Protocol::Anyprot, &a.anyprot),
    ];
    for (id, flag, proto, values) in shorthands {
        let idx: Vec<usize> = m.indices_of(id).map(|i| i.collect()).unwrap_or_default();
        for (i, v) in values.iter().enumerate() {
            let at = idx.get(i).copied().unwrap_or(usize::MAX);
            routes.push((at, At::flag(flag, RouteSource::Shorthand(proto, v.clone()))));
        }
    }
    let idx: Vec<usize> = m
        .indices_of("route")
        .map(|i| i.collect())
        .unwrap_or_default();
    for (i, v) in a.route.iter().enumerate() {
        let at = idx.get(i).copied().unwrap_or(usize::MAX);
        routes.push((at, At::flag("--route", RouteSource::Spec(v.clone()))));
    }
    routes.sort_by_key(|(i, _)| *i);

    let list = |flag: &'static str, v: &Vec<String>| {
        (!v.is_empty()).then(|| v.iter().map(|s| At::flag(flag, s.clone())).collect())
    };
    let one =
        |flag: &'static str, v: &Option<String>| v.as_ref().map(|s| At::flag(flag, s.clone()));
    ServeLayer {
        listen: list("--listen", &a.listen),
        routes: (!routes.is_empty()).then(|| routes.into_iter().map(|(_, r)| r).collect()),
        timeout: one("--timeout", &a.timeout),
        on_timeout: one("--on-timeout", &a.on_timeout),
        proxy_protocol: one("--proxy-protocol", &a.proxy_protocol),
        accept_proxy_protocol: a
            .accept_proxy_protocol
            .then(|| At::flag("--accept-proxy-protocol", true)),
        trusted_proxy: list("--trusted-proxy", &a.trusted_proxy),
        max_connections: a.max_connections.map(|n| At::flag("--max-connections", n)),
        max_pending: a.max_pending.map(|n| At::flag("--max-pending", n)),
        rate: one("--rate", &a.rate),
        user: one("--user", &a.user),
        metrics: one("--metrics", &a.metrics),
        state_dir: one("--state-dir", &a.state_dir),
        drain_timeout: one("--drain-timeout", &a.drain_timeout),
        tunnel: a.tunnel.then(|| At::flag("--tunnel", true)),
        fallback: one("--fallback", &a.fallback),
        cert: one("--cert", &a.cert),
        key: one("--key", &a.key),
        reflect: one("--reflect", &a.reflect),
    }
}

/// The file (if any) under the flags, validated.
fn load(file: Option<&Path>, flags: &ServeLayer) -> anyhow::Result<ServeConfig> {
    let base = match file {
        None => ServeLayer::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config {}", path.display()))?;
            ServeLayer::from_toml(&path.display().to_string(), &text).map_err(config_error)?
        }
    };
    flags.clone().over(base).validate().map_err(config_error)
}

fn config_error(e: ConfigError) -> anyhow::Error {
    anyhow!(e)
}

pub(crate) fn run(args: ServeArgs, matches: &ArgMatches) -> Outcome {
    let flags = flag_layer(&args, matches);
    let config = load(args.config.as_deref(), &flags).map_err(Failure::Usage)?;
    match sys::limits::raise_fd_limit() {
        Ok(n) => tracing::debug!(limit = n, "file descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the file descriptor limit"),
    }
    // This thread accepts, reloads and answers signals; connections run on
    // serve's own connection threads, one per core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(args, flags, config))
}

async fn serve(args: ServeArgs, flags: ServeLayer, config: ServeConfig) -> Outcome {
    // Signals first: a SIGHUP or SIGTERM that arrives while we bind must not
    // take the default action (death).
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let reflector = match &config.reflect {
        Some(_) => Some(Arc::new(Reflector::new(
            load_identity(config.state_dir.as_deref()).map_err(Failure::Usage)?,
        ))),
        None => None,
    };
    let tunnel = match config.tunnel {
        true => Some(tunnel_setup(&config).map_err(Failure::Usage)?),
        false => None,
    };
    let server = Server::with_tunnel(config.clone(), reflector, tunnel);

    // systemd socket activation takes the place of `listen`.
    let mut fds = listenfd::ListenFd::from_env();
    let activated = fds.len() > 0;
    if activated {
        for i in 0..fds.len() {
            let listener = fds
                .take_tcp_listener(i)
                .with_context(|| format!("socket activation: fd {}", i + 3))?
                .ok_or_else(|| anyhow!("socket activation: fd {} is not a TCP listener", i + 3))?;
            listener
                .set_nonblocking(true)
                .context("socket activation")?;
            server
                .add_listener(format!("systemd:{i}"), listener)
                .context("socket activation")?;
        }
        tracing::info!(
            sockets = fds.len(),
            "using the sockets systemd passed; `listen` is ignored"
        );
    } else {
        for addr in &config.listen {
            bind(&server, addr)?;
        }
    }
    // Held for serve's lifetime: dropping it removes the reflector's table.
    let _redirect = match &config.reflect {
        Some(spec) => bind_reflector(&server, spec, &config.listen).map_err(Failure::Runtime)?,
        None => None,
    };
    if let Some(addr) = config.metrics {
        onedoor_net::metrics::install(addr)
            .await
            .map_err(Failure::Runtime)?;
        tracing::info!(%addr, "metrics on http://{addr}/metrics");
    }
    if let Some(user) = &config.user {
        sys::privileges::drop_to(user).map_err(Failure::Runtime)?;
        tracing::info!(user = %user, "dropped privileges");
    }

    loop {
        tokio::select! {
            _ = hup.recv() => {
                reload(&server, args.config.as_deref(), &flags, activated);
                tunnel_reload(&server).await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let drain = server.config().config.drain_timeout;
    tracing::info!(open = server.open_connections(), bound = ?drain, "draining");
    let left = server.drain(drain).await;
    if left > 0 {
        tracing::warn!(
            left,
            "drain bound reached; closing the connections still open"
        );
    }
    Ok(())
}

/// The state dir (`--state-dir`, else the default one) and the identity in
/// it, for `flag` (`--reflect`, `--tunnel`), which needs them.
fn open_identity(
    state_dir: Option<&Path>,
    flag: &str,
) -> anyhow::Result<(onedoor_net::state::StateDir, onedoor_net::state::Identity)> {
    use onedoor_net::state::StateDir;
    let path = match state_dir {
        Some(p) => p.to_path_buf(),
        None => StateDir::default_path()
            .ok_or_else(|| anyhow!("{flag}: no state dir: give --state-dir"))?,
    };
    let state = StateDir::open(&path).map_err(|e| {
        anyhow!(
            "{flag} needs the server identity in {}: {e} (run `onedoor init` first)",
            path.display()
        )
    })?;
    let identity = state
        .identity()
        .map_err(|e| anyhow!("{flag}: {}: {e}", path.display()))?;
    Ok((state, identity))
}

/// The server identity's signing key, for `--reflect`.
fn load_identity(state_dir: Option<&Path>) -> anyhow::Result<onedoor_proto::probe::SigningKey> {
    let (_, identity) = open_identity(state_dir, "--reflect")?;
    tracing::info!(fingerprint = %identity.fingerprint(), "server identity");
    Ok(identity.signing_key)
}

// --- The tunnel (`--tunnel`, `--fallback`, `--cert`, `--key`) -------------

/// The tunnel: the identity and client registry from the state dir, TLS
/// with the identity's certificate (or `--cert`/`--key`).
fn tunnel_setup(config: &ServeConfig) -> anyhow::Result<Arc<onedoor_net::serve::tunnel::Tunnel>> {
    use onedoor_net::serve::tunnel::{Tunnel, TunnelOptions, TunnelTls, ALPN_HTTP1, ALPN_WEB};
    let (state, identity) = open_identity(config.state_dir.as_deref(), "--tunnel")?;
    let path = state.path().to_path_buf();
    let files = match &config.cert {
        None => None,
        Some(f) => {
            let cert =
                std::fs::read(&f.cert).with_context(|| format!("--cert {}", f.cert.display()))?;
            let key =
                std::fs::read(&f.key).with_context(|| format!("--key {}", f.key.display()))?;
            Some((cert, key))
        }
    };
    // A fallback is assumed to speak HTTP/1.1 only: a client that got `h2`
    // would send it the HTTP/2 preface.
    let alpn = match config.fallback {
        Some(_) => ALPN_HTTP1,
        None => ALPN_WEB,
    };
    let tls = TunnelTls::new(
        &identity,
        files.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
        alpn,
    )
    .map_err(|e| match &config.cert {
        Some(f) => anyhow!(
            "--cert {} / --key {}: {e}",
            f.cert.display(),
            f.key.display()
        ),
        None => anyhow!("--tunnel: the identity's certificate: {e}"),
    })?;
    let names = tls.names.join(", ");
    let tunnel = Tunnel::new(state, tls, TunnelOptions::default())
        .map_err(|e| anyhow!("--tunnel: {}: {e}", path.display()))?;
    tracing::info!(
        fingerprint = %identity.fingerprint(),
        names = %names,
        fallback = ?config.fallback.as_ref().map(|f| f.to_string()),
        "tunnel: hosting sessions"
    );
    Ok(tunnel)
}

/// `SIGHUP`, for the tunnel: read the client registry again (sessions of
/// removed clients are cut). The TLS certificate stays until a restart.
async fn tunnel_reload(server: &Server) {
    let Some(t) = server.tunnel().cloned() else {
        if server.config().config.tunnel {
            tracing::warn!("reload: `tunnel` was off at start; restart serve to host the tunnel");
        }
        return;
    };
    let _ = tokio::task::spawn_blocking(move || t.refresh(true)).await;
}

// --- end of the tunnel ----------------------------------------------------

/// Most ports bound one by one for `--reflect`; larger sets go through the
/// nftables redirect to one listener.
const REFLECT_BIND_MAX: usize = 1024;

/// The redirect's guard (Linux), or nothing.
#[cfg(target_os = "linux")]
type RedirectGuard = onedoor_sys::reflect::Redirect;
#[cfg(not(target_os = "linux"))]
type RedirectGuard = ();

/// Listen for probe hellos on the `--reflect` ports, on the addresses of the
/// door: up to [`REFLECT_BIND_MAX`] ports are bound one by one (no privilege
/// needed beyond the ports' own); more go through an nftables redirect to one
/// listener (root or CAP_NET_ADMIN). Ports already in use are skipped, and
/// said so.
fn bind_reflector(
    server: &Server,
    spec: &ReflectSpec,
    listen: &[HostPort],
) -> anyhow::Result<Option<RedirectGuard>> {
    let mut ips: Vec<std::net::IpAddr> = Vec::new();
    for addr in listen {
        for sa in (addr.host.as_str(), addr.port)
            .to_socket_addrs()
            .with_context(|| format!("listen {addr}: cannot resolve"))?
        {
            if !ips.contains(&sa.ip()) {
                ips.push(sa.ip());
            }
        }
    }
    // Per protocol: a set small enough is bound port by port (the simplest
    // path, and no privilege beyond the ports' own); a larger one goes
    // through the redirect. Bound first, so the redirect sees them in use.
    let redirect_tcp = spec.tcp.len() > REFLECT_BIND_MAX;
    let redirect_udp = spec.udp.len() > REFLECT_BIND_MAX;
    let door_ports: Vec<u16> = listen.iter().map(|a| a.port).collect();
    let mut skipped = Vec::new();
    let direct_tcp = if redirect_tcp {
        Default::default()
    } else {
        spec.tcp.clone()
    };
    let direct_udp = if redirect_udp {
        Default::default()
    } else {
        spec.udp.clone()
    };
    for port in direct_tcp.iter().filter(|p| !door_ports.contains(p)) {
        for ip in &ips {
            match sys::listen::bind(std::net::SocketAddr::new(*ip, port)) {
                Ok(l) => {
                    server.add_listener(format!("reflect:{port}"), l)?;
                }
                Err(e) => skipped.push(format!("tcp {ip}:{port} ({e})")),
            }
        }
    }
    for port in direct_udp.iter() {
        for ip in &ips {
            match std::net::UdpSocket::bind((*ip, port)).and_then(|s| {
                s.set_nonblocking(true)?;
                tokio::net::UdpSocket::from_std(s)
            }) {
                Ok(sock) => server.add_udp_reflector(sock),
                Err(e) => skipped.push(format!("udp {ip}:{port} ({e})")),
            }
        }
    }
    if !skipped.is_empty() {
        tracing::warn!(count = skipped.len(), first = %skipped[0], "--reflect: skipped ports already in use or not allowed");
    }
    if !direct_tcp.is_empty() || !direct_udp.is_empty() {
        tracing::info!(tcp = %direct_tcp, udp = %direct_udp, "answering probe hellos");
    }
    if !redirect_tcp && !redirect_udp {
        return Ok(None);
    }
    let redirected = ReflectSpec {
        tcp: if redirect_tcp {
            spec.tcp.clone()
        } else {
            Default::default()
        },
        udp: if redirect_udp {
            spec.udp.clone()
        } else {
            Default::default()
        },
    };
    #[cfg(target_os = "linux")]
    return redirect_reflector(server, &redirected, &ips).map(Some);
    #[cfg(not(target_os = "linux"))]
    return Err(anyhow!(
        "--reflect: more than {REFLECT_BIND_MAX} ports of one protocol ({redirected}) needs the nftables redirect (Linux)"
    ));
}

/// The large-set reflector: one TCP and one transparent UDP listener per
/// door address on a free port, and an nftables table sending every listed
/// port there (ports in use skipped by the table itself).
#[cfg(target_os = "linux")]
fn redirect_reflector(
    server: &Server,
    spec: &ReflectSpec,
    ips: &[std::net::IpAddr],
) -> anyhow::Result<RedirectGuard> {
    use onedoor_sys::reflect::{prepare_udp_listener, PortRanges, Redirect, RedirectSpec};
    let ranges = |set: &onedoor_proto::probe::PortSet| {
        PortRanges::from_ranges(set.ranges().iter().map(|&(a, b)| a..=b))
    };
    // One port free on every address, for TCP and UDP alike.
    let mut port = 0u16;
    for attempt in 0..20 {
        let first = sys::listen::bind(std::net::SocketAddr::new(ips[0], 0))?;
        let candidate = first.local_addr()?.port();
        let mut tcp = vec![first];
        let mut ok = true;
        for ip in &ips[1..] {
            match sys::listen::bind(std::net::SocketAddr::new(*ip, candidate)) {
                Ok(l) => tcp.push(l),
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        let mut udp = Vec::new();
        if ok {
            for ip in ips {
                let sock = socket2::Socket::new(
                    socket2::Domain::for_address(std::net::SocketAddr::new(*ip, 0)),
                    socket2::Type::DGRAM,
                    None,
                )?;
                if ip.is_ipv6() {
                    sock.set_only_v6(true)?;
                }
                prepare_udp_listener(&sock).context(
                    "--reflect: the redirect needs root or CAP_NET_ADMIN (or list at most 1024 ports)",
                )?;
                if sock
                    .bind(&std::net::SocketAddr::new(*ip, candidate).into())
                    .is_err()
                {
                    ok = false;
                    break;
                }
                sock.set_nonblocking(true)?;
                udp.push(tokio::net::UdpSocket::from_std(sock.into())?);
            }
        }
        if ok {
            for l in tcp {
                server.add_listener("reflect".into(), l)?;
            }
            for u in udp {
                server.add_udp_reflector_redirected(u);
            }
            port = candidate;
            break;
        }
        tracing::debug!(
            attempt,
            candidate,
            "reflector port taken on another address; again"
        );
    }
    if port == 0 {
        return Err(anyhow!(
            "--reflect: found no port free on every listen address"
        ));
    }
    let redirect = Redirect::install(
        &RedirectSpec::new(port)
            .tcp(ranges(&spec.tcp))
            .udp(ranges(&spec.udp))
            .udp_listener(port),
    )
    .map_err(|e| anyhow!("--reflect: {e}"))?;
    let plan = redirect.plan();
    tracing::info!(
        listener = port,
        table = redirect.table_name(),
        skipped_tcp = ?plan.skipped_tcp,
        skipped_udp = ?plan.skipped_udp,
        "answering probe hellos through an nftables redirect"
    );
    Ok(redirect)
}

/// Bind every address `addr` resolves to.
fn bind(server: &Server, addr: &HostPort) -> anyhow::Result<()> {
    let addrs: Vec<_> = (addr.host.as_str(), addr.port)
        .to_socket_addrs()
        .with_context(|| format!("listen {addr}: cannot resolve"))?
        .collect();
    for sa in addrs {
        let listener = sys::listen::bind(sa).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
            } else {
                ""
            };
            anyhow!("cannot listen on {sa}: {e}{hint}")
        })?;
        server.add_listener(addr.to_string(), listener)?;
    }
    Ok(())
}

/// `SIGHUP`: re-read the file under the same flags. An invalid config keeps
/// the old one, saying why.
fn reload(server: &Server, file: Option<&Path>, flags: &ServeLayer, activated: bool) {
    let new = match load(file, flags) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("reload refused, keeping the running config: {e:#}");
            return;
        }
    };
    if !activated {
        let old = server.config();
        let changes = listener_changes(&old.config.listen, &new.listen);
        for addr in &changes.add {
            if let Err(e) = bind(server, addr) {
                tracing::error!("reload: {e:#}");
            }
        }
        for addr in &changes.remove {
            server.remove_listener(&addr.to_string());
            tracing::info!(%addr, "stopped listening");
        }
    }
    let routes = new.routes.len();
    server.reload(new);
    tracing::info!(routes, "config reloaded");
}
