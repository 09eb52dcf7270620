//! `HOST:PORT` addresses: `127.0.0.1:22`, `[::1]:443`, `backend.lan:8080`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// Why a spec string was refused. The message names what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Not `HOST:PORT`.
    #[error("`{0}` is not HOST:PORT (IPv6 as [::1]:443)")]
    NotHostPort(String),
    /// The port is not 1..=65535.
    #[error("`{0}`: port must be 1-65535")]
    BadPort(String),
    /// The host part is empty or has characters a host name can't have.
    #[error("`{0}`: not a valid host name or address")]
    BadHost(String),
    /// A route spec is malformed.
    #[error("route `{spec}`: {why}")]
    BadRoute {
        /// The spec as typed.
        spec: String,
        /// What is wrong with it.
        why: String,
    },
}

/// A host (name or IP literal) and a port. Names are resolved when used, not
/// when parsed, so a backend may move without a restart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port, 1-65535 (0 is allowed only for listen addresses: "any").
    pub port: u16,
}

impl HostPort {
    /// Build from parts.
    pub fn new(host: &str, port: u16) -> Self {
        HostPort {
            host: host.to_owned(),
            port,
        }
    }

    /// The address, when the host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }

    /// Parse `HOST:PORT`, allowing port 0 (for listen addresses).
    pub fn parse_listen(s: &str) -> Result<Self, SpecError> {
        parse(s, true)
    }
}

fn parse(s: &str, allow_zero: bool) -> Result<HostPort, SpecError> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or_else(|| SpecError::NotHostPort(s.to_owned()))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(SpecError::BadHost(s.to_owned()));
        }
        (h, p)
    } else {
        let (h, p) = s
            .rsplit_once(':')
            .ok_or_else(|| SpecError::NotHostPort(s.to_owned()))?;
        if h.contains(':') {
            // A bare IPv6 literal: ambiguous, ask for brackets.
            return Err(SpecError::NotHostPort(s.to_owned()));
        }
        (h, p)
    };
    let port: u16 = port.parse().map_err(|_| SpecError::BadPort(s.to_owned()))?;
    if port == 0 && !allow_zero {
        return Err(SpecError::BadPort(s.to_owned()));
    }
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    if !valid_host {
        return Err(SpecError::BadHost(s.to_owned()));
    }
    Ok(HostPort::new(host, port))
}

impl FromStr for HostPort {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s, false)
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses() {
        assert_eq!("127.0.0.1:22".parse(), Ok(HostPort::new("127.0.0.1", 22)));
        assert_eq!("[::1]:443".parse(), Ok(HostPort::new("::1", 443)));
        assert_eq!("web.lan:80".parse(), Ok(HostPort::new("web.lan", 80)));
        assert!("::1:443".parse::<HostPort>().is_err());
        assert!("host:0".parse::<HostPort>().is_err());
        assert!(HostPort::parse_listen("0.0.0.0:0").is_ok());
        assert!("host".parse::<HostPort>().is_err());
        assert!("ho st:1".parse::<HostPort>().is_err());
        assert!("[zz]:1".parse::<HostPort>().is_err());
        assert!(":80".parse::<HostPort>().is_err());
    }

    proptest! {
        #[test]
        fn display_roundtrips(a in any::<std::net::IpAddr>(), port in 1u16..) {
            let hp = HostPort::new(&a.to_string(), port);
            prop_assert_eq!(hp.to_string().parse::<HostPort>(), Ok(hp));
        }

        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = s.parse::<HostPort>();
        }
    }
}
