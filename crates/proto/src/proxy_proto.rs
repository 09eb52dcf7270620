//! PROXY protocol v1 (text) and v2 (binary): encode a header for a backend,
//! parse one from a trusted load balancer (stub: to be written).

use std::str::FromStr;

/// PROXY protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    /// Text header, `PROXY TCP4 ...\r\n`.
    V1,
    /// Binary header with the 12-byte signature.
    V2,
}

impl FromStr for ProxyVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "v1" | "1" => Ok(ProxyVersion::V1),
            "v2" | "2" => Ok(ProxyVersion::V2),
            other => Err(format!("unknown PROXY protocol version `{other}` (expected v1 or v2)")),
        }
    }
}
