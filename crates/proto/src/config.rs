//! The configuration of `serve`: layers of raw settings (the TOML file, the
//! command line) merged key by key — flags override the file — then
//! validated once into a typed [`ServeConfig`].
//!
//! Every raw value remembers where it came from ([`Origin`]: `file:line` or
//! the flag), so an error names exactly what to fix. Unknown keys in the file
//! are errors, not ignored.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::probe::ReflectSpec;
use crate::proxy_proto::ProxyVersion;
use crate::rate::Rate;
use crate::route::Route;
use crate::sniff::Protocol;
use crate::spec::{parse_route, HostPort};

/// Where a raw setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of a config file.
    File {
        /// The file as given.
        path: Arc<str>,
        /// 1-based line number.
        line: usize,
    },
    /// A command-line flag, e.g. `--timeout`.
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{path}:{line}"),
            Origin::Flag(flag) => f.write_str(flag),
        }
    }
}

/// A raw value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At<T> {
    /// The value as given.
    pub value: T,
    /// Where it was given.
    pub origin: Origin,
}

impl<T> At<T> {
    /// A value given by a flag.
    pub fn flag(flag: &'static str, value: T) -> Self {
        At {
            value,
            origin: Origin::Flag(flag),
        }
    }
}

/// A configuration error: where, which key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {what}")]
pub struct ConfigError {
    /// Where the offending value was given (`file:line` or the flag).
    pub origin: Origin,
    /// What is wrong, naming the key.
    pub what: String,
}

/// A route as the user gave it: a shorthand (`ssh = "..."`, `--ssh`) or a
/// full spec (`route = [...]`, `--route`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteSource {
    /// `--PROTO ADDR`.
    Shorthand(Protocol, String),
    /// `--route SPEC`.
    Spec(String),
}

/// One layer of raw settings: the file, or the flags. `None` = not given in
/// this layer.
#[derive(Debug, Clone, Default)]
pub struct ServeLayer {
    /// `listen` / `-l`.
    pub listen: Option<Vec<At<String>>>,
    /// Shorthands and `route`, in the order given.
    pub routes: Option<Vec<At<RouteSource>>>,
    /// `timeout`.
    pub timeout: Option<At<String>>,
    /// `on-timeout`.
    pub on_timeout: Option<At<String>>,
    /// `proxy-protocol`.
    pub proxy_protocol: Option<At<String>>,
    /// `accept-proxy-protocol`.
    pub accept_proxy_protocol: Option<At<bool>>,
    /// `trusted-proxy`.
    pub trusted_proxy: Option<Vec<At<String>>>,
    /// `max-connections`.
    pub max_connections: Option<At<u64>>,
    /// `max-pending`.
    pub max_pending: Option<At<u64>>,
    /// `rate`.
    pub rate: Option<At<String>>,
    /// `user`.
    pub user: Option<At<String>>,
    /// `metrics`.
    pub metrics: Option<At<String>>,
    /// `state-dir`.
    pub state_dir: Option<At<String>>,
    /// `drain-timeout`.
    pub drain_timeout: Option<At<String>>,
    /// `tunnel`.
    pub tunnel: Option<At<bool>>,
    /// `fallback`.
    pub fallback: Option<At<String>>,
    /// `cert`.
    pub cert: Option<At<String>>,
    /// `key`.
    pub key: Option<At<String>>,
    /// `reflect` (a later issue).
    pub reflect: Option<At<String>>,
}

/// The file's shape. Keys are the flags' long names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFile {
    listen: Option<Spanned<OneOrMany>>,
    ssh: Option<Spanned<String>>,
    tls: Option<Spanned<String>>,
    http: Option<Spanned<String>>,
    openvpn: Option<Spanned<String>>,
    socks5: Option<Spanned<String>>,
    anyprot: Option<Spanned<String>>,
    route: Option<Spanned<OneOrMany>>,
    timeout: Option<Spanned<String>>,
    on_timeout: Option<Spanned<String>>,
    proxy_protocol: Option<Spanned<String>>,
    accept_proxy_protocol: Option<Spanned<bool>>,
    trusted_proxy: Option<Spanned<OneOrMany>>,
    max_connections: Option<Spanned<u64>>,
    max_pending: Option<Spanned<u64>>,
    rate: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    metrics: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    drain_timeout: Option<Spanned<String>>,
    tunnel: Option<Spanned<bool>>,
    fallback: Option<Spanned<String>>,
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    reflect: Option<Spanned<String>>,
}

/// A key that takes one string or a list of them (`listen = "a"` or
/// `listen = ["a", "b"]`). List items keep their own position; a lone string
/// takes the key's.
#[derive(Debug)]
enum OneOrMany {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl OneOrMany {
    fn into_vec(outer: Spanned<OneOrMany>) -> Vec<Spanned<String>> {
        let span = outer.span();
        match outer.into_inner() {
            OneOrMany::One(s) => vec![Spanned::new(span, s)],
            OneOrMany::Many(v) => v,
        }
    }
}

/// The key assigned on the line holding byte offset `at`, if any
/// (`timeout = 5` → `timeout`), to name it in type errors.
fn key_on_line(text: &str, at: usize) -> Option<&str> {
    let at = at.min(text.len());
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    bare.then_some(key)
}

/// 1-based line of byte offset `at` in `text`.
pub fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Where a TOML parse error of `text` is (byte offset) and what it says, in
/// our words: serde's "field" is a "key", and type errors name their key.
/// Shared by every TOML file onedoor reads.
pub fn toml_error(text: &str, e: &toml::de::Error) -> (usize, String) {
    let at = e.span().map_or(0, |s| s.start);
    let what = e.message().trim();
    let what = if let Some(rest) = what.strip_prefix("unknown field") {
        format!("unknown key{rest}")
    } else if let Some(rest) = what.strip_prefix("missing field") {
        format!("missing key{rest}")
    } else if let Some(key) = key_on_line(text, at) {
        format!("`{key}`: {what}")
    } else {
        what.to_owned()
    };
    (at, what)
}

impl ServeLayer {
    /// Parse a config file's text. `path` is only used in messages.
    pub fn from_toml(path: &str, text: &str) -> Result<Self, ConfigError> {
        let path: Arc<str> = Arc::from(path);
        let origin_at = |offset: usize| Origin::File {
            path: path.clone(),
            line: line_of(text, offset),
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let (offset, what) = toml_error(text, &e);
            ConfigError {
                origin: origin_at(offset),
                what,
            }
        })?;
        let at = |s: Spanned<String>| At {
            origin: origin_at(s.span().start),
            value: s.into_inner(),
        };
        let at_t = |s: Option<Spanned<bool>>| {
            s.map(|s| At {
                origin: origin_at(s.span().start),
                value: s.into_inner(),
            })
        };
        let at_n = |s: Option<Spanned<u64>>| {
            s.map(|s| At {
                origin: origin_at(s.span().start),
                value: s.into_inner(),
            })
        };

        // Shorthands and `route` entries keep their order in the file.
        let mut routes: Vec<(usize, At<RouteSource>)> = Vec::new();
        let shorthands = [
            (Protocol::Ssh, raw.ssh),
            (Protocol::Tls, raw.tls),
            (Protocol::Http, raw.http),
            (Protocol::OpenVpn, raw.openvpn),
            (Protocol::Socks5, raw.socks5),
            (Protocol::Anyprot, raw.anyprot),
        ];
        for (proto, value) in shorthands {
            if let Some(s) = value {
                let start = s.span().start;
                let a = at(s);
                routes.push((
                    start,
                    At {
                        value: RouteSource::Shorthand(proto, a.value),
                        origin: a.origin,
                    },
                ));
            }
        }
        for s in raw.route.map(OneOrMany::into_vec).unwrap_or_default() {
            let start = s.span().start;
            let a = at(s);
            routes.push((
                start,
                At {
                    value: RouteSource::Spec(a.value),
                    origin: a.origin,
                },
            ));
        }
        routes.sort_by_key(|(start, _)| *start);
        let routes = if routes.is_empty() {
            None
        } else {
            Some(routes.into_iter().map(|(_, r)| r).collect())
        };

        Ok(ServeLayer {
            listen: raw
                .listen
                .map(|l| OneOrMany::into_vec(l).into_iter().map(at).collect()),
            routes,
            timeout: raw.timeout.map(at),
            on_timeout: raw.on_timeout.map(at),
            proxy_protocol: raw.proxy_protocol.map(at),
            accept_proxy_protocol: at_t(raw.accept_proxy_protocol),
            trusted_proxy: raw
                .trusted_proxy
                .map(|l| OneOrMany::into_vec(l).into_iter().map(at).collect()),
            max_connections: at_n(raw.max_connections),
            max_pending: at_n(raw.max_pending),
            rate: raw.rate.map(at),
            user: raw.user.map(at),
            metrics: raw.metrics.map(at),
            state_dir: raw.state_dir.map(at),
            drain_timeout: raw.drain_timeout.map(at),
            tunnel: at_t(raw.tunnel),
            fallback: raw.fallback.map(at),
            cert: raw.cert.map(at),
            key: raw.key.map(at),
            reflect: raw.reflect.map(at),
        })
    }

    /// This layer over `base`: each key given here replaces the base's. Lists
    /// (`listen`, the routes, `trusted-proxy`) are replaced whole, not merged.
    pub fn over(self, base: ServeLayer) -> ServeLayer {
        ServeLayer {
            listen: self.listen.or(base.listen),
            routes: self.routes.or(base.routes),
            timeout: self.timeout.or(base.timeout),
            on_timeout: self.on_timeout.or(base.on_timeout),
            proxy_protocol: self.proxy_protocol.or(base.proxy_protocol),
            accept_proxy_protocol: self.accept_proxy_protocol.or(base.accept_proxy_protocol),
            trusted_proxy: self.trusted_proxy.or(base.trusted_proxy),
            max_connections: self.max_connections.or(base.max_connections),
            max_pending: self.max_pending.or(base.max_pending),
            rate: self.rate.or(base.rate),
            user: self.user.or(base.user),
            metrics: self.metrics.or(base.metrics),
            state_dir: self.state_dir.or(base.state_dir),
            drain_timeout: self.drain_timeout.or(base.drain_timeout),
            tunnel: self.tunnel.or(base.tunnel),
            fallback: self.fallback.or(base.fallback),
            cert: self.cert.or(base.cert),
            key: self.key.or(base.key),
            reflect: self.reflect.or(base.reflect),
        }
    }

    /// Validate into a [`ServeConfig`]; the first error names its origin.
    pub fn validate(self) -> Result<ServeConfig, ConfigError> {
        let err = |origin: &Origin, what: String| ConfigError {
            origin: origin.clone(),
            what,
        };

        let listen = match self.listen {
            None => vec![HostPort::new("0.0.0.0", 443)],
            Some(list) => list
                .iter()
                .map(|a| {
                    HostPort::parse_listen(&a.value)
                        .map_err(|e| err(&a.origin, format!("`listen`: {e}")))
                })
                .collect::<Result<_, _>>()?,
        };

        let mut routes = Vec::new();
        let mut catch_all = Vec::new();
        for a in self.routes.unwrap_or_default() {
            match &a.value {
                RouteSource::Shorthand(proto, addr) => {
                    let target: HostPort = addr
                        .parse()
                        .map_err(|e| err(&a.origin, format!("`{proto}`: {e}")))?;
                    let route = Route::new(*proto, target);
                    // The shorthand catch-all is tried last, wherever it was given.
                    if *proto == Protocol::Anyprot {
                        catch_all.push(route);
                    } else {
                        routes.push(route);
                    }
                }
                RouteSource::Spec(spec) => {
                    routes.push(
                        parse_route(spec).map_err(|e| err(&a.origin, format!("`route`: {e}")))?,
                    );
                }
            }
        }
        routes.extend(catch_all);
        let tunnel = self.tunnel.as_ref().is_some_and(|t| t.value);
        if routes.is_empty() && self.reflect.is_none() && !tunnel {
            return Err(err(
                &Origin::Flag("--route"),
                "no route: give at least one of --ssh, --tls, --http, --openvpn, --socks5, --anyprot or --route, or --tunnel (or the same keys in the config file)".into(),
            ));
        }
        let (fallback, cert) = tunnel_keys(
            tunnel,
            self.fallback.as_ref(),
            self.cert.as_ref(),
            self.key.as_ref(),
        )?;

        let timeout = duration(self.timeout.as_ref(), "timeout", Duration::from_secs(2))?;
        let drain_timeout = duration(
            self.drain_timeout.as_ref(),
            "drain-timeout",
            Duration::from_secs(10),
        )?;

        let on_timeout = match &self.on_timeout {
            None => None,
            Some(a) => {
                let proto: Protocol = a
                    .value
                    .parse()
                    .map_err(|e| err(&a.origin, format!("`on-timeout`: {e}")))?;
                if !routes.iter().any(|r| r.protocol == proto) {
                    return Err(err(
                        &a.origin,
                        format!(
                            "`on-timeout`: there is no `{proto}` route to send silent clients to"
                        ),
                    ));
                }
                Some(proto)
            }
        };

        let proxy_protocol = match &self.proxy_protocol {
            None => None,
            Some(a) => Some(
                a.value
                    .parse::<ProxyVersion>()
                    .map_err(|e| err(&a.origin, format!("`proxy-protocol`: {e}")))?,
            ),
        };
        if let Some(v) = proxy_protocol {
            for r in &mut routes {
                r.proxy_protocol.get_or_insert(v);
            }
        }

        let trusted_proxies = match &self.trusted_proxy {
            None => vec![
                "127.0.0.0/8".parse().expect("valid net"),
                "::1/128".parse().expect("valid net"),
            ],
            Some(list) => list
                .iter()
                .map(|a| {
                    parse_net(&a.value).map_err(|e| err(&a.origin, format!("`trusted-proxy`: {e}")))
                })
                .collect::<Result<_, _>>()?,
        };

        let max_connections = count(self.max_connections.as_ref(), "max-connections", 20_000)?;
        let max_pending = count(self.max_pending.as_ref(), "max-pending", 1024)?;

        let rate = match &self.rate {
            None => None,
            Some(a) => Some(
                a.value
                    .parse::<Rate>()
                    .map_err(|e| err(&a.origin, format!("`rate`: {e}")))?,
            ),
        };

        let metrics = match &self.metrics {
            None => None,
            Some(a) => Some(a.value.parse::<SocketAddr>().map_err(|_| {
                err(
                    &a.origin,
                    format!(
                        "`metrics`: `{}` is not IP:PORT (e.g. 127.0.0.1:9443)",
                        a.value
                    ),
                )
            })?),
        };

        let reflect = match &self.reflect {
            None => None,
            Some(a) => Some(
                a.value
                    .parse::<ReflectSpec>()
                    .map_err(|e| err(&a.origin, format!("`reflect`: {e}")))?,
            ),
        };

        let user = match &self.user {
            Some(a) if a.value.is_empty() => {
                return Err(err(&a.origin, "`user`: empty user name".into()))
            }
            other => other.as_ref().map(|a| a.value.clone()),
        };

        Ok(ServeConfig {
            listen,
            routes,
            timeout,
            on_timeout,
            proxy_protocol,
            accept_proxy_protocol: self.accept_proxy_protocol.map(|a| a.value).unwrap_or(false),
            trusted_proxies,
            max_connections,
            max_pending,
            rate,
            user,
            metrics,
            state_dir: self.state_dir.map(|a| PathBuf::from(a.value)),
            drain_timeout,
            reflect,
            tunnel,
            fallback,
            cert,
        })
    }
}

/// `fallback`, `cert` and `key`: meaningful only with `tunnel`; `cert` and
/// `key` go together.
fn tunnel_keys(
    tunnel: bool,
    fallback: Option<&At<String>>,
    cert: Option<&At<String>>,
    key: Option<&At<String>>,
) -> Result<(Option<HostPort>, Option<CertFiles>), ConfigError> {
    let err = |origin: &Origin, what: String| ConfigError {
        origin: origin.clone(),
        what,
    };
    if !tunnel {
        for (name, a) in [("fallback", fallback), ("cert", cert), ("key", key)] {
            if let Some(a) = a {
                return Err(err(
                    &a.origin,
                    format!("`{name}` is for the tunnel: it needs `tunnel = true` (--tunnel)"),
                ));
            }
        }
        return Ok((None, None));
    }
    let fallback = match fallback {
        None => None,
        Some(a) => Some(a.value.parse::<HostPort>().map_err(|e| {
            err(
                &a.origin,
                format!("`fallback`: {e} (HOST:PORT of an HTTP server, e.g. 127.0.0.1:8080)"),
            )
        })?),
    };
    let path = |a: &At<String>, name: &str| {
        if a.value.trim().is_empty() {
            Err(err(&a.origin, format!("`{name}`: empty path")))
        } else {
            Ok(PathBuf::from(&a.value))
        }
    };
    let cert = match (cert, key) {
        (None, None) => None,
        (Some(c), Some(k)) => Some(CertFiles {
            cert: path(c, "cert")?,
            key: path(k, "key")?,
        }),
        (Some(a), None) => {
            return Err(err(
                &a.origin,
                "`cert` needs `key` (the certificate's private key) as well".into(),
            ))
        }
        (None, Some(a)) => {
            return Err(err(
                &a.origin,
                "`key` needs `cert` (the certificate chain) as well".into(),
            ))
        }
    };
    Ok((fallback, cert))
}

fn duration(a: Option<&At<String>>, key: &str, default: Duration) -> Result<Duration, ConfigError> {
    match a {
        None => Ok(default),
        Some(a) => match humantime::parse_duration(&a.value) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => Err(ConfigError {
                origin: a.origin.clone(),
                what: format!("`{key}` must be more than zero"),
            }),
            Err(e) => Err(ConfigError {
                origin: a.origin.clone(),
                what: format!(
                    "`{key}`: `{}` is not a duration like 500ms, 2s, 1m ({e})",
                    a.value
                ),
            }),
        },
    }
}

fn count(a: Option<&At<u64>>, key: &str, default: usize) -> Result<usize, ConfigError> {
    match a {
        None => Ok(default),
        Some(a) if a.value == 0 => Err(ConfigError {
            origin: a.origin.clone(),
            what: format!("`{key}` must be at least 1"),
        }),
        Some(a) => Ok(usize::try_from(a.value).unwrap_or(usize::MAX)),
    }
}

/// A CIDR (`10.0.0.0/8`) or a single address (`192.0.2.1`, a /32 or /128).
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{s}` is not an address or CIDR (e.g. 10.0.0.0/8)"))
}

/// `serve`'s settings, validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Addresses to listen on (ignored under systemd socket activation).
    pub listen: Vec<HostPort>,
    /// Routes in order, first match wins; the `anyprot` shorthand is last.
    pub routes: Vec<Route>,
    /// How long to wait for a client's first bytes.
    pub timeout: Duration,
    /// Where silent clients go after `timeout` (`None`: closed).
    pub on_timeout: Option<Protocol>,
    /// PROXY header sent to every backend (a route may set its own).
    pub proxy_protocol: Option<ProxyVersion>,
    /// Accept a PROXY header from trusted sources.
    pub accept_proxy_protocol: bool,
    /// Sources whose PROXY header is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Connections open at once, at most.
    pub max_connections: usize,
    /// Connections still being sniffed, at most; past it the oldest is closed.
    pub max_pending: usize,
    /// New connections per second per source address.
    pub rate: Option<Rate>,
    /// Drop to this user after binding.
    pub user: Option<String>,
    /// Prometheus endpoint.
    pub metrics: Option<SocketAddr>,
    /// Where state lives (used by the tunnel).
    pub state_dir: Option<PathBuf>,
    /// How long `SIGTERM` waits for live connections.
    pub drain_timeout: Duration,
    /// Answer probe hellos on these doors (`--reflect`).
    pub reflect: Option<ReflectSpec>,
    /// Host the tunnel (`--tunnel`): TLS for serve's own names is
    /// terminated here and authenticated clients get a session.
    pub tunnel: bool,
    /// Where TLS connections that do not authenticate as a client are
    /// relayed, decrypted (`--fallback`, an HTTP server); `None`: closed.
    pub fallback: Option<HostPort>,
    /// A certificate chain and key to present instead of the identity's
    /// self-signed certificate (`--cert`, `--key`).
    pub cert: Option<CertFiles>,
}

/// `--cert` and `--key`: PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key of the leaf.
    pub key: PathBuf,
}

/// What changes in the set of listeners when the config is reloaded: a pure
/// diff, applied by the server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListenerChanges {
    /// Addresses to bind now.
    pub add: Vec<HostPort>,
    /// Addresses to stop listening on (live connections stay).
    pub remove: Vec<HostPort>,
}

/// The listener diff between two configs.
pub fn listener_changes(old: &[HostPort], new: &[HostPort]) -> ListenerChanges {
    ListenerChanges {
        add: new.iter().filter(|a| !old.contains(a)).cloned().collect(),
        remove: old.iter().filter(|a| !new.contains(a)).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Result<ServeConfig, ConfigError> {
        ServeLayer::from_toml("od.toml", text)?.validate()
    }

    #[test]
    fn full_file() {
        let c = file(
            r#"
listen = ["127.0.0.1:4443", "[::1]:4443"]
ssh = "127.0.0.1:22"
route = ["tls,sni=a.example=127.0.0.1:9001", "http,host=*.b.example=127.0.0.1:8080"]
anyprot = "127.0.0.1:9999"
tls = "127.0.0.1:8443"
timeout = "300ms"
on-timeout = "ssh"
proxy-protocol = "v2"
accept-proxy-protocol = true
trusted-proxy = ["10.0.0.0/8", "192.0.2.7"]
max-connections = 100
max-pending = 10
rate = "50/s"
metrics = "127.0.0.1:9100"
drain-timeout = "3s"
"#,
        )
        .unwrap();
        assert_eq!(c.listen.len(), 2);
        let order: Vec<String> = c.routes.iter().map(Route::label).collect();
        assert_eq!(
            order,
            [
                "ssh",
                "tls,sni=a.example",
                "http,host=*.b.example",
                "tls",
                "anyprot"
            ]
        );
        assert!(c
            .routes
            .iter()
            .all(|r| r.proxy_protocol == Some(ProxyVersion::V2)));
        assert_eq!(c.timeout, Duration::from_millis(300));
        assert_eq!(c.on_timeout, Some(Protocol::Ssh));
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.max_pending, 10);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = file("ssh = \"127.0.0.1:22\"\n\nlisten-on = \"x\"\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("od.toml:3:"), "{msg}");
        assert!(msg.contains("listen-on"), "{msg}");
    }

    #[test]
    fn bad_values_name_their_line() {
        for (text, line, key) in [
            ("ssh = \"127.0.0.1:22\"\ntimeout = \"soon\"\n", 2, "timeout"),
            ("\nssh = \"nohost\"\n", 2, "ssh"),
            ("ssh = \"a:1\"\non-timeout = \"tls\"\n", 2, "on-timeout"),
            ("route = [\n \"ssh\",\n]\n", 2, "route"),
            ("ssh = \"a:1\"\nmax-pending = 0\n", 2, "max-pending"),
            ("ssh = \"a:1\"\nmetrics = \"localhost\"\n", 2, "metrics"),
            (
                "ssh = \"a:1\"\ntrusted-proxy = [\"10/8\"]\n",
                2,
                "trusted-proxy",
            ),
            ("ssh = \"a:1\"\ntimeout = 5\n", 2, "timeout"),
            ("ssh = \"a:1\"\nfallback = \"x:1\"\n", 2, "fallback"),
            ("tunnel = true\nfallback = \"nohost\"\n", 2, "fallback"),
            ("tunnel = true\n\ncert = \"c.pem\"\n", 3, "key"),
            ("tunnel = true\nkey = \"k.pem\"\n", 2, "cert"),
            ("ssh = \"a:1\"\ncert = \"c\"\nkey = \"k\"\n", 2, "cert"),
            ("tunnel = 1\n", 1, "tunnel"),
        ] {
            let e = file(text).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("od.toml:{line}:")),
                "{text:?} -> {msg}"
            );
            assert!(msg.contains(key), "{text:?} -> {msg}");
        }
    }

    #[test]
    fn tunnel_keys() {
        let c = file(
            "tunnel = true\nfallback = \"127.0.0.1:8080\"\ncert = \"/etc/c.pem\"\nkey = \"/etc/k.pem\"\n",
        )
        .unwrap();
        assert!(c.tunnel && c.routes.is_empty());
        assert_eq!(c.fallback, Some(HostPort::new("127.0.0.1", 8080)));
        let files = c.cert.unwrap();
        assert_eq!(files.cert, PathBuf::from("/etc/c.pem"));
        assert_eq!(files.key, PathBuf::from("/etc/k.pem"));
        let c = file("ssh = \"127.0.0.1:22\"\ntunnel = true\n").unwrap();
        assert!(c.tunnel && c.fallback.is_none() && c.cert.is_none());
        let c = file("ssh = \"127.0.0.1:22\"\ntunnel = false\n").unwrap();
        assert!(!c.tunnel);
        // Flags: the error names the flag.
        let flags = ServeLayer {
            tunnel: Some(At::flag("--tunnel", true)),
            cert: Some(At::flag("--cert", "c.pem".into())),
            ..Default::default()
        };
        let e = flags.validate().unwrap_err();
        assert!(e.to_string().starts_with("--cert:"), "{e}");
        // Without the tunnel nothing is left to route.
        let e = file("tunnel = false\n").unwrap_err();
        assert!(e.to_string().contains("no route"), "{e}");
    }

    #[test]
    fn flags_override_file() {
        let f = ServeLayer::from_toml(
            "f",
            "ssh = \"127.0.0.1:22\"\ntimeout = \"5s\"\nlisten = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let flags = ServeLayer {
            timeout: Some(At::flag("--timeout", "1s".into())),
            ..Default::default()
        };
        let c = flags.over(f).validate().unwrap();
        assert_eq!(c.timeout, Duration::from_secs(1));
        assert_eq!(c.listen, vec![HostPort::new("127.0.0.1", 1)]);
        assert_eq!(c.routes.len(), 1);
    }

    #[test]
    fn flag_errors_name_the_flag() {
        let flags = ServeLayer {
            routes: Some(vec![At::flag("--route", RouteSource::Spec("bogus".into()))]),
            ..Default::default()
        };
        let e = flags.validate().unwrap_err();
        assert!(e.to_string().starts_with("--route:"), "{e}");
    }

    #[test]
    fn listener_diff() {
        let a = HostPort::new("127.0.0.1", 1);
        let b = HostPort::new("127.0.0.1", 2);
        let c = HostPort::new("127.0.0.1", 3);
        let d = listener_changes(&[a.clone(), b.clone()], &[b, c.clone()]);
        assert_eq!(d.add, vec![c]);
        assert_eq!(d.remove, vec![a]);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn key() -> impl Strategy<Value = String> {
            prop::sample::select(vec![
                "listen",
                "ssh",
                "tls",
                "route",
                "timeout",
                "on-timeout",
                "max-pending",
                "rate",
                "metrics",
                "trusted-proxy",
                "bogus",
                "proxy-protocol",
            ])
            .prop_map(str::to_owned)
        }

        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                "\"[a-z0-9.:*,=/\\[\\]-]{0,24}\"",
                "[0-9]{1,6}",
                Just("true".to_owned()),
                Just("[\"127.0.0.1:1\", \"x\"]".to_owned()),
            ]
        }

        proptest! {
            /// Any file of `key = value` lines gives a config or an error
            /// that names a line of the file.
            #[test]
            fn errors_name_a_real_line(lines in prop::collection::vec((key(), value()), 0..8)) {
                let text: String = lines.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
                match ServeLayer::from_toml("p.toml", &text).and_then(ServeLayer::validate) {
                    Ok(c) => prop_assert!(!c.routes.is_empty()),
                    Err(ConfigError { origin: Origin::File { line, .. }, .. }) => {
                        prop_assert!(line >= 1 && line <= lines.len().max(1));
                    }
                    Err(ConfigError { origin: Origin::Flag(_), what }) => {
                        prop_assert!(what.contains("no route"), "{}", what);
                    }
                }
            }

            /// Arbitrary text never panics the parser.
            #[test]
            fn never_panics(text in "\\PC{0,200}") {
                let _ = ServeLayer::from_toml("p.toml", &text).and_then(ServeLayer::validate);
            }
        }
    }
}
