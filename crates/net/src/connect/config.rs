//! `client.toml`: many servers, each with its forwards. Unknown keys are
//! errors, and every error names `file:line`.
//!
//! ```toml
//! [[server]]
//! key = "onedoor://TOKEN@door.example:443?fp=SHA256:..."
//! local = ["8080:intranet:80", "udp/5353:10.0.0.1:53"]
//! dynamic = ["1080"]
//!
//! [[server]]
//! address = "door2.example:443"         # no key: token_file and a pin or CA
//! token_file = "/etc/onedoor/door2.token"
//! fingerprint = "SHA256:..."
//! sni = "door2.example"
//! transport = "auto"                  # auto, tls, wss or ws
//! proxy = "http://user:pass@proxy.corp:3128"
//! ws_path = "/door"                     # behind a reverse proxy's location
//! remote = ["8022:localhost:22"]
//! ```
//!
//! `address` also overrides the address inside `key` (as `--server` does).
//! Relative `token_file` paths are relative to the config file.

use std::fmt;
use std::path::{Path, PathBuf};

use onedoor_proto::config::{line_of, toml_error};
use onedoor_proto::http_connect::ProxyUrl;
use onedoor_proto::spec::{Forward, ForwardFlag, HostPort};
use onedoor_proto::tunnel::paths::Choice;
use onedoor_proto::tunnel::{parse_server, AccessKey, Fingerprint};
use serde::Deserialize;
use toml::Spanned;

/// A problem in the file, at `path:line`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}: {what}")]
pub struct ConfigError {
    /// The file.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub what: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    server: Vec<Spanned<RawServer>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    key: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    fingerprint: Option<Spanned<String>>,
    sni: Option<Spanned<String>>,
    transport: Option<Spanned<String>>,
    proxy: Option<Spanned<String>>,
    ws_path: Option<Spanned<String>>,
    #[serde(default)]
    local: Vec<Spanned<String>>,
    #[serde(default)]
    remote: Vec<Spanned<String>>,
    #[serde(default)]
    dynamic: Vec<Spanned<String>>,
}

/// One `[[server]]`, checked.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerEntry {
    /// `file:line` of its table, for messages.
    pub origin: String,
    /// The access key, if given (holds the token).
    pub key: Option<AccessKey>,
    /// `address`: overrides the key's.
    pub address: Option<HostPort>,
    /// `token_file`, resolved against the config file's folder.
    pub token_file: Option<PathBuf>,
    /// `fingerprint`: overrides the key's.
    pub fingerprint: Option<Fingerprint>,
    /// `sni`.
    pub sni: Option<String>,
    /// `transport`: `auto`, `tls`, `wss` or `ws`.
    pub transport: Option<Choice>,
    /// `proxy`: an HTTP CONNECT proxy, `http://user:pass@host:port`.
    pub proxy: Option<ProxyUrl>,
    /// `ws_path`: the path in front of the WebSocket ticket (a reverse
    /// proxy's `location`).
    pub ws_path: Option<String>,
    /// Its forwards, `-L`, `-R` and `-D`.
    pub forwards: Vec<Forward>,
}

impl fmt::Debug for ServerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerEntry")
            .field("origin", &self.origin)
            .field("key", &self.key.as_ref().map(|k| k.redacted().to_string()))
            .field("address", &self.address)
            .field("forwards", &self.forwards)
            .finish_non_exhaustive()
    }
}

/// A whole client config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Its servers, in file order.
    pub servers: Vec<ServerEntry>,
}

impl ClientConfig {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<ClientConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: shown.clone(),
            line: 0,
            what: format!("cannot read: {e}"),
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        ClientConfig::parse(&shown, &text, &dir)
    }

    /// Check the text of a config file; `path` names it in messages, `dir`
    /// anchors relative token files.
    pub fn parse(path: &str, text: &str, dir: &Path) -> Result<ClientConfig, ConfigError> {
        let err = |at: usize, what: String| ConfigError {
            path: path.to_owned(),
            line: line_of(text, at),
            what,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let (at, what) = toml_error(text, &e);
            err(at, what)
        })?;
        if raw.server.is_empty() {
            return Err(err(0, "no [[server]] in the file".into()));
        }
        let mut servers = Vec::new();
        for s in raw.server {
            let at = s.span().start;
            let s = s.into_inner();
            let key = match &s.key {
                Some(k) => Some(
                    k.get_ref()
                        .parse::<AccessKey>()
                        .map_err(|e| err(k.span().start, format!("`key`: {e}")))?,
                ),
                None => None,
            };
            let address = match &s.address {
                Some(a) => Some(
                    parse_server(a.get_ref())
                        .map_err(|e| err(a.span().start, format!("`address`: {e}")))?,
                ),
                None => None,
            };
            if key.is_none() && address.is_none() {
                return Err(err(at, "a [[server]] needs `key` or `address`".into()));
            }
            if key.is_none() && s.token_file.is_none() {
                return Err(err(
                    at,
                    "a [[server]] without `key` needs `token_file`".into(),
                ));
            }
            let fingerprint = match &s.fingerprint {
                Some(f) => Some(
                    f.get_ref()
                        .parse::<Fingerprint>()
                        .map_err(|e| err(f.span().start, format!("`fingerprint`: {e}")))?,
                ),
                None => None,
            };
            let transport = match &s.transport {
                Some(t) => Some(
                    t.get_ref()
                        .parse::<Choice>()
                        .map_err(|e| err(t.span().start, format!("`transport`: {e}")))?,
                ),
                None => None,
            };
            let proxy = match &s.proxy {
                Some(p) => Some(
                    ProxyUrl::parse(p.get_ref())
                        .map_err(|e| err(p.span().start, format!("`proxy`: {e}")))?,
                ),
                None => None,
            };
            if let Some(w) = &s.ws_path {
                if !w.get_ref().is_empty() && !w.get_ref().starts_with('/') {
                    return Err(err(
                        w.span().start,
                        format!("`ws_path`: {:?} must start with /", w.get_ref()),
                    ));
                }
            }
            let mut forwards = Vec::new();
            for (list, flag, name) in [
                (&s.local, ForwardFlag::Local, "local"),
                (&s.remote, ForwardFlag::Remote, "remote"),
                (&s.dynamic, ForwardFlag::Dynamic, "dynamic"),
            ] {
                for f in list {
                    forwards.push(
                        Forward::parse(flag, f.get_ref())
                            .map_err(|e| err(f.span().start, format!("`{name}`: {e}")))?,
                    );
                }
            }
            if forwards.is_empty() {
                return Err(err(
                    at,
                    "this [[server]] has no forwards (local, remote or dynamic)".into(),
                ));
            }
            servers.push(ServerEntry {
                origin: format!("{path}:{}", line_of(text, at)),
                key,
                address,
                token_file: s.token_file.map(|t| dir.join(t.into_inner())),
                fingerprint,
                sni: s.sni.map(Spanned::into_inner),
                transport,
                proxy,
                ws_path: s.ws_path.map(Spanned::into_inner),
                forwards,
            });
        }
        Ok(ClientConfig { servers })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn parse(text: &str) -> Result<ClientConfig, ConfigError> {
        ClientConfig::parse("c.toml", text, Path::new("/etc/od"))
    }

    #[test]
    fn two_servers_with_forwards() {
        let text = format!(
            "[[server]]\nkey = \"onedoor://{TOKEN}@127.0.0.1:8443\"\nlocal = [\"8080:web:80\", \"udp/5353:10.0.0.1:53\"]\n\
             dynamic = [\"1080\"]\n\n[[server]]\naddress = \"door2\"\ntoken_file = \"t\"\nremote = [\"0:localhost:22\"]\n"
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.servers.len(), 2);
        assert_eq!(c.servers[0].forwards.len(), 3);
        assert_eq!(c.servers[1].address.as_ref().unwrap().port, 443);
        assert_eq!(
            c.servers[1].token_file.as_deref(),
            Some(Path::new("/etc/od/t"))
        );
        assert_eq!(c.servers[1].origin, "c.toml:6");
        assert!(!format!("{c:?}").contains(TOKEN), "Debug leaks the token");
    }

    #[test]
    fn errors_name_file_and_line() {
        for (text, line, needle) in [
            ("[[server]]\naddress = \"a\"\ntoken_file = \"t\"\nlocal = [\"1:b:2\"]\nbogus = 1\n", 5, "unknown key"),
            ("[[server]]\naddress = \"a\"\ntoken_file = \"t\"\nlocal = [\"nope\"]\n", 4, "-L"),
            ("[[server]]\naddress = \"a:0\"\n", 2, "address"),
            ("[[server]]\naddress = \"a\"\ntoken_file = \"t\"\n", 1, "no forwards"),
            ("[[server]]\naddress = \"a\"\nlocal = [\"1:b:2\"]\n", 1, "token_file"),
            ("[[server]]\naddress = \"a\"\ntoken_file = \"t\"\ntransport = \"quic\"\nlocal=[\"1:b:2\"]\n", 4, "transport"),
            ("[[server]]\naddress = \"a\"\ntoken_file = \"t\"\nproxy = \"socks5://p:1\"\nlocal=[\"1:b:2\"]\n", 4, "proxy"),
            ("[[server]]\naddress = \"a\"\ntoken_file = \"t\"\nws_path = \"door\"\nlocal=[\"1:b:2\"]\n", 4, "ws_path"),
            ("top = 1\n", 1, "unknown key"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("c.toml:{line}: ")), "{e}");
            assert!(e.what.contains(needle), "{text:?}: {e}");
        }
    }
}
