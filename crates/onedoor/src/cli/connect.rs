//! `onedoor connect`: the tunnel client. Parses the key, token and
//! forwards, starts one reconnecting session per server
//! ([`onedoor_net::connect::Tunnel`]) and runs the forwards on it.
//!
//! Exit codes (also in `--help`): 0 ok (`-W` stream ended, or stopped by a
//! signal), 1 server unreachable or another runtime failure, 2 usage or
//! configuration error, 3 door intercepted, 4 authentication refused,
//! 5 forward refused by the server's allow-list.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use onedoor_net::connect::config::ClientConfig;
use onedoor_net::connect::forward::{
    is_loopback, listen_tcp, listen_udp, run_local_tcp, run_local_udp, run_remote, run_stdio,
};
use onedoor_net::connect::transport::{
    proxy_for, DoorMap, DoorOptions, DoorTransport, PathMemory, TlsClientOptions, TlsTransport,
};
use onedoor_net::connect::{socks5, Backoff, ConnectFailure, Dialer, FailureKind, Tunnel};
use onedoor_net::tunnel::client::ClientOptions;
use onedoor_proto::http_connect::ProxyUrl;
use onedoor_proto::spec::{BindAddr, Forward, ForwardFlag, HostPort, Transport as Proto};
use onedoor_proto::tunnel::paths::Choice;
use onedoor_proto::tunnel::{parse_server, AccessKey, Fingerprint, Token};
use tokio::task::JoinSet;

const EXIT_HELP: &str = "\
Exit codes:
  0  ok (the -W stream ended, or stopped by a signal)
  1  server unreachable (or another runtime failure)
  2  usage or configuration error
  3  door intercepted: another certificate or key answered (it is named), nothing was sent
  4  authentication refused: the server did not accept the token
  5  forward refused by the server's allow-list

The token comes from --token-file, else $ONEDOOR_TOKEN, else the access key; it is never logged.
Example: ssh -o ProxyCommand='onedoor connect KEY -W %h:%p' user@host";

/// Arguments of `onedoor connect`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_HELP)]
pub(crate) struct ConnectArgs {
    /// The access key (onedoor://TOKEN@host:port?fp=SHA256:...) or the
    /// server, HOST[:PORT] (port 443 by default).
    #[arg(value_name = "SERVER|KEY")]
    target: Option<String>,
    /// Local forward: listen here, connect from the server.
    #[arg(short = 'L', value_name = "[udp/][bind:]port:host:hostport")]
    local: Vec<String>,
    /// Remote forward: listen on the server, connect from here.
    #[arg(short = 'R', value_name = "[bind:]port:host:hostport")]
    remote: Vec<String>,
    /// A SOCKS5 proxy here (CONNECT and UDP ASSOCIATE, names resolved at
    /// the server).
    #[arg(short = 'D', value_name = "[bind:]port")]
    dynamic: Vec<String>,
    /// Join stdin/stdout to one stream to host:port (ssh ProxyCommand).
    #[arg(short = 'W', value_name = "host:port")]
    stdio: Option<String>,
    /// Read the token from this file (overrides $ONEDOOR_TOKEN and the key).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Pin the server's key (overrides the key's fp=); without any pin the
    /// server's certificate must verify against the system roots.
    #[arg(long, value_name = "SHA256:...")]
    fingerprint: Option<String>,
    /// How to reach the door: auto (the default: tries tls, wss, ws in that
    /// order, remembers what worked, and says which it chose), tls (TLS
    /// straight to it; an interceptor stops it), wss (WebSocket over HTTPS:
    /// passes reverse proxies and TLS interception, in the inner layer when
    /// the outer certificate is not the server's), ws (WebSocket over plain
    /// HTTP, always in the inner layer).
    #[arg(long, value_name = "NAME", default_value = "auto", value_parser = ["auto", "tls", "wss", "ws"])]
    transport: String,
    /// Reach the door through this HTTP CONNECT proxy, and only through it.
    /// Without it, $HTTPS_PROXY or $ALL_PROXY (unless $NO_PROXY names the
    /// server) is used: by auto after the ways straight, by the others
    /// always.
    #[arg(long, value_name = "http://[user:pass@]host:port")]
    proxy: Option<String>,
    /// For ws and wss: the path in front of the ticket, when a reverse proxy
    /// passes only a location to the server (e.g. /door).
    #[arg(long, value_name = "PATH", default_value = "")]
    ws_path: String,
    /// For --transport auto: an `onedoor probe --json` map of this server's
    /// doors; doors it found shut are not tried, open ones are.
    #[arg(long, value_name = "FILE")]
    map: Option<PathBuf>,
    /// The TLS server name to send and verify (default: the server's host).
    #[arg(long, value_name = "NAME")]
    sni: Option<String>,
    /// Connect here instead of the address in the key (another door, a
    /// reverse proxy).
    #[arg(long = "server", value_name = "HOST:PORT")]
    server: Option<String>,
    /// A client config file with servers and their forwards.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Let -D listen on a non-loopback address. Anyone who can reach it
    /// uses your tunnel, with no password.
    #[arg(long)]
    allow_remote_socks: bool,
    /// How long connecting and the TLS handshake may take.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// How long a new connection waits for the session while reconnecting.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    reconnect_wait: Duration,
    /// Close a UDP flow after this long without traffic.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    udp_idle: Duration,
}

/// A failure with its exit code.
struct Exit(u8, String);

impl Exit {
    fn usage(msg: impl Into<String>) -> Exit {
        Exit(2, msg.into())
    }
    fn runtime(msg: impl Into<String>) -> Exit {
        Exit(1, msg.into())
    }
}

fn code(kind: FailureKind) -> u8 {
    match kind {
        FailureKind::Unreachable => 1,
        FailureKind::Usage => 2,
        FailureKind::Intercepted => 3,
        FailureKind::AuthRefused => 4,
        FailureKind::ForwardRefused => 5,
    }
}

impl From<ConnectFailure> for Exit {
    fn from(e: ConnectFailure) -> Exit {
        Exit(code(e.kind()), e.to_string())
    }
}

/// One server to connect to, with its forwards.
struct Plan {
    server: HostPort,
    token: Token,
    fingerprint: Option<Fingerprint>,
    sni: Option<String>,
    choice: Choice,
    proxy: Option<ProxyUrl>,
    /// The proxy was given (`--proxy`, `proxy =`), not found in the
    /// environment.
    proxy_given: bool,
    ws_path: String,
    forwards: Vec<Forward>,
}

pub(crate) fn run(args: ConnectArgs) -> ExitCode {
    let result = plan(&args).and_then(|plans| {
        // One worker: the session's h2 connection task and the pumps
        // then hand bytes over without crossing threads (context switches
        // per 4 GB: 19 k -> 4 k); a client's streams share one TLS
        // connection, which one thread drives anyway.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| Exit::runtime(format!("cannot start the runtime: {e}")))?;
        let r = rt.block_on(start(plans, &args));
        // -W leaves a blocking stdin read behind: don't wait for it.
        rt.shutdown_timeout(Duration::from_millis(100));
        r
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Exit(code, msg)) => {
            eprintln!("onedoor: {msg}");
            ExitCode::from(code)
        }
    }
}

/// Read a token from a file or the environment.
fn read_token(file: Option<&Path>, what: &str) -> Result<Option<Token>, Exit> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| Exit::usage(format!("{what} {}: {e}", f.display())))?;
        return text
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| Exit::usage(format!("{what} {}: {e}", f.display())));
    }
    match std::env::var("ONEDOOR_TOKEN") {
        Ok(t) if !t.trim().is_empty() => t
            .parse()
            .map(Some)
            .map_err(|e| Exit::usage(format!("$ONEDOOR_TOKEN: {e}"))),
        _ => Ok(None),
    }
}

fn plan(args: &ConnectArgs) -> Result<Vec<Plan>, Exit> {
    let mut forwards = Vec::new();
    for (list, flag) in [
        (&args.local, ForwardFlag::Local),
        (&args.remote, ForwardFlag::Remote),
        (&args.dynamic, ForwardFlag::Dynamic),
    ] {
        for s in list {
            forwards.push(Forward::parse(flag, s).map_err(|e| Exit::usage(e.to_string()))?);
        }
    }
    if let Some(w) = &args.stdio {
        if !forwards.is_empty() || args.config.is_some() {
            return Err(Exit::usage(
                "-W joins stdin/stdout to one stream: it cannot be combined with -L, -R, -D or -c",
            ));
        }
        forwards
            .push(Forward::parse(ForwardFlag::Stdio, w).map_err(|e| Exit::usage(e.to_string()))?);
    }
    for f in &forwards {
        if let Forward::Remote(p) = f {
            if p.transport == Proto::Udp {
                return Err(Exit::usage(format!(
                    "-R {f}: UDP reverse forwards are not supported (yet); use -L udp/… from the other side"
                )));
            }
        }
    }
    let pin = match &args.fingerprint {
        Some(f) => Some(
            f.parse::<Fingerprint>()
                .map_err(|e| Exit::usage(format!("--fingerprint: {e}")))?,
        ),
        None => None,
    };
    let choice: Choice = args
        .transport
        .parse()
        .map_err(|e: onedoor_proto::tunnel::paths::KindError| Exit::usage(e.to_string()))?;
    let ws_path = args.ws_path.trim_end_matches('/').to_owned();
    if !ws_path.is_empty() && !ws_path.starts_with('/') {
        return Err(Exit::usage(format!(
            "--ws-path {:?}: a path starts with /",
            args.ws_path
        )));
    }
    if args.map.is_some() && choice != Choice::Auto {
        return Err(Exit::usage(
            "--map feeds --transport auto; with one transport it has nothing to choose",
        ));
    }
    let over = match &args.server {
        Some(s) => Some(parse_server(s).map_err(|e| Exit::usage(format!("--server: {e}")))?),
        None => None,
    };
    let mut plans = Vec::new();
    if let Some(t) = &args.target {
        let flag_token = read_token(args.token_file.as_deref(), "--token-file")?;
        let (server, key_token, key_fp) = if t
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("onedoor://")
        {
            let k: AccessKey = t
                .parse()
                .map_err(|e| Exit::usage(format!("the access key: {e}")))?;
            (k.server, Some(k.token), k.fingerprint)
        } else {
            let s = parse_server(t).map_err(|e| Exit::usage(format!("SERVER {t:?}: {e}")))?;
            (s, None, None)
        };
        let token = flag_token.or(key_token).ok_or_else(|| {
            Exit::usage("no token: give an access key, --token-file FILE or $ONEDOOR_TOKEN")
        })?;
        if forwards.is_empty() && args.config.is_none() {
            return Err(Exit::usage(
                "nothing to do: give -L, -R, -D or -W (or -c client.toml)",
            ));
        }
        if !forwards.is_empty() {
            let server = over.clone().unwrap_or(server);
            plans.push(Plan {
                proxy: proxy_for(args.proxy.as_deref(), &server).map_err(Exit::usage)?,
                proxy_given: args.proxy.is_some(),
                server,
                token,
                fingerprint: pin.or(key_fp),
                sni: args.sni.clone(),
                choice,
                ws_path: ws_path.clone(),
                forwards: std::mem::take(&mut forwards),
            });
        }
    } else if !forwards.is_empty() {
        return Err(Exit::usage(
            "forwards on the command line need SERVER or an access key",
        ));
    }
    if let Some(path) = &args.config {
        let cfg = ClientConfig::load(path).map_err(|e| Exit::usage(e.to_string()))?;
        for s in cfg.servers {
            let file_token = match &s.token_file {
                Some(f) => read_token(Some(f), &format!("{}: token_file", s.origin))?,
                None => None,
            };
            let token = file_token
                .or_else(|| s.key.as_ref().map(|k| k.token.clone()))
                .ok_or_else(|| Exit::usage(format!("{}: no token", s.origin)))?;
            let server = s
                .address
                .clone()
                .or_else(|| s.key.as_ref().map(|k| k.server.clone()))
                .ok_or_else(|| Exit::usage(format!("{}: no address", s.origin)))?;
            let proxy_given = s.proxy.is_some() || args.proxy.is_some();
            let proxy = match s.proxy {
                Some(p) => Some(p),
                None => proxy_for(args.proxy.as_deref(), &server).map_err(Exit::usage)?,
            };
            plans.push(Plan {
                proxy,
                proxy_given,
                server,
                token,
                fingerprint: s
                    .fingerprint
                    .or_else(|| s.key.as_ref().and_then(|k| k.fingerprint)),
                sni: s.sni.clone(),
                choice: s.transport.unwrap_or(choice),
                ws_path: s.ws_path.clone().unwrap_or_else(|| ws_path.clone()),
                forwards: s.forwards,
            });
        }
    }
    if plans.is_empty() {
        return Err(Exit::usage(
            "nothing to connect to: give SERVER or an access key, or -c client.toml",
        ));
    }
    Ok(plans)
}

/// What a running forward or supervisor reports when it stops.
enum Stopped {
    Supervisor(ConnectFailure),
    Listener(String),
}

async fn start(plans: Vec<Plan>, args: &ConnectArgs) -> Result<(), Exit> {
    // Listeners first: a port in use or a refused -D bind fails before
    // anything is sent.
    let mut prepared = Vec::new();
    for p in &plans {
        let mut bound = Vec::new();
        for f in &p.forwards {
            let l = match f {
                Forward::Local(pf) if pf.transport == Proto::Udp => Bound::Udp(
                    listen_udp(&pf.bind, pf.port)
                        .await
                        .map_err(|e| Exit::runtime(format!("-L {f}: {e}")))?,
                    pf.target.clone(),
                ),
                Forward::Local(pf) => Bound::Tcp(
                    listen_tcp(&pf.bind, pf.port)
                        .await
                        .map_err(|e| Exit::runtime(format!("-L {f}: {e}")))?,
                    pf.target.clone(),
                ),
                Forward::Dynamic { bind, port } => {
                    if !args.allow_remote_socks && !is_loopback(bind).await {
                        return Err(Exit::usage(format!(
                            "-D {f}: the SOCKS5 proxy has no password, so it listens on loopback \
                             only; to let other hosts use your tunnel, add --allow-remote-socks"
                        )));
                    }
                    Bound::Socks(
                        listen_tcp(bind, *port)
                            .await
                            .map_err(|e| Exit::runtime(format!("-D {f}: {e}")))?,
                    )
                }
                Forward::Remote(pf) => Bound::Remote(pf.bind.clone(), pf.port, pf.target.clone()),
                Forward::Stdio(hp) => Bound::Stdio(hp.clone()),
            };
            bound.push(l);
        }
        prepared.push(bound);
    }

    let mut tasks: JoinSet<Stopped> = JoinSet::new();
    let mut remote_first = Vec::new();
    for (p, bound) in plans.into_iter().zip(prepared) {
        let tls = TlsTransport::client(TlsClientOptions {
            fingerprint: p.fingerprint,
            sni: p.sni.clone(),
            timeout: args.connect_timeout,
        });
        if p.fingerprint.is_none() {
            tracing::info!(server = %p.server, "no pinned fingerprint: verifying the server's certificate against the system roots");
        }
        let map = match &args.map {
            Some(f) => Some(DoorMap::load(f, p.fingerprint).map_err(Exit::usage)?),
            None => None,
        };
        if let Some(proxy) = &p.proxy {
            if p.choice == Choice::Auto && !p.proxy_given {
                tracing::info!(server = %p.server, "the HTTP proxy {proxy} (from the environment) is tried after the ways straight");
            } else {
                tracing::info!(server = %p.server, "through the HTTP proxy {proxy}");
            }
        }
        let transport = DoorTransport::new(
            tls,
            DoorOptions {
                choice: p.choice,
                proxy: p.proxy.clone(),
                proxy_only: p.proxy_given,
                ws_path: p.ws_path.clone(),
                map,
                memory: PathMemory::usual(),
            },
        );
        let dialer = Dialer {
            transport,
            server: p.server.clone(),
            token: p.token,
            options: ClientOptions::default(),
        };
        let (tunnel, supervisor) =
            Tunnel::start(dialer, Backoff::default(), args.reconnect_wait).await?;
        tasks.spawn(async move {
            match supervisor.await {
                Ok(f) => Stopped::Supervisor(f),
                Err(e) => Stopped::Listener(format!("the tunnel supervisor failed: {e}")),
            }
        });
        for b in bound {
            match b {
                Bound::Stdio(hp) => {
                    return match run_stdio(&tunnel, &hp).await {
                        Ok(()) => Ok(()),
                        Err(e) if e.is_refused() => Err(Exit(5, e.to_string())),
                        Err(e) => Err(Exit::runtime(format!("-W {hp}: {e}"))),
                    };
                }
                Bound::Tcp(ls, target) => {
                    for l in ls {
                        tracing::info!("-L {} → {target} (at the server)", addr(&l.local_addr()));
                        let (t, target) = (tunnel.clone(), target.clone());
                        tasks.spawn(async move {
                            let a = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
                            let r = run_local_tcp(t, l, target).await;
                            Stopped::Listener(format!("-L listener {a} failed: {r:?}"))
                        });
                    }
                }
                Bound::Udp(ss, target) => {
                    for s in ss {
                        tracing::info!(
                            "-L udp/{} → {target} (at the server)",
                            addr(&s.local_addr())
                        );
                        let (t, target, idle) = (tunnel.clone(), target.clone(), args.udp_idle);
                        tasks.spawn(async move {
                            let r = run_local_udp(t, s, target, idle).await;
                            Stopped::Listener(format!("-L udp listener failed: {r:?}"))
                        });
                    }
                }
                Bound::Socks(ls) => {
                    for l in ls {
                        tracing::info!("-D SOCKS5 proxy on {}", addr(&l.local_addr()));
                        let (t, idle) = (tunnel.clone(), args.udp_idle);
                        tasks.spawn(async move {
                            let r = socks5::run(t, l, idle).await;
                            Stopped::Listener(format!("-D listener failed: {r:?}"))
                        });
                    }
                }
                Bound::Remote(bind, port, target) => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let spec = format!("{}:{port}:{target}", bind_text(&bind));
                    tokio::spawn(run_remote(tunnel.clone(), bind, port, target, tx));
                    remote_first.push((spec, rx));
                }
            }
        }
    }
    for (spec, rx) in remote_first {
        match rx.await {
            Ok(Ok(a)) => tracing::debug!("-R {spec}: bound at {a}"),
            Ok(Err(e)) if e.is_refused() => return Err(Exit(5, format!("-R {spec}: {e}"))),
            Ok(Err(e)) => return Err(Exit::runtime(format!("-R {spec}: {e}"))),
            Err(_) => return Err(Exit::runtime(format!("-R {spec}: the forward stopped"))),
        }
    }

    let stop = shutdown_signal();
    tokio::pin!(stop);
    tokio::select! {
        _ = &mut stop => {
            tracing::info!("stopping");
            Ok(())
        }
        Some(done) = tasks.join_next() => match done {
            Ok(Stopped::Supervisor(f)) => Err(f.into()),
            Ok(Stopped::Listener(msg)) => Err(Exit::runtime(msg)),
            Err(e) => Err(Exit::runtime(format!("a forward failed: {e}"))),
        },
    }
}

enum Bound {
    Tcp(Vec<tokio::net::TcpListener>, HostPort),
    Udp(Vec<tokio::net::UdpSocket>, HostPort),
    Socks(Vec<tokio::net::TcpListener>),
    Remote(BindAddr, u16, HostPort),
    Stdio(HostPort),
}

fn addr(a: &std::io::Result<std::net::SocketAddr>) -> String {
    a.as_ref()
        .map_or_else(|e| format!("? ({e})"), ToString::to_string)
}

fn bind_text(b: &BindAddr) -> String {
    match b {
        BindAddr::Loopback => "localhost".into(),
        BindAddr::All => "*".into(),
        BindAddr::Host(h) => h.clone(),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
