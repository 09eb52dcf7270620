//! First-bytes sniffers: one file per protocol.
//!
//! Each sniffer is a pure function of the bytes received so far and answers a
//! [`Verdict`]. Sniffers must be *prefix-consistent*: once a prefix of the
//! stream yields `Match` or `NoMatch`, every longer prefix yields the same
//! verdict, so the decision never depends on how TCP chunked the bytes
//! (property-tested in each module).

pub mod adb;
pub mod http;
pub mod openvpn;
pub mod socks5;
pub mod ssh;
pub mod tinc;
pub mod tls;
pub mod xmpp;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

/// The verdict of "starts with one of `prefixes`": `Match` once `buf` starts
/// with one, `NeedMore` while `buf` is still a prefix of one, else `NoMatch`.
/// Prefix-consistent by construction; the simple sniffers are this.
pub fn starts_with_any(buf: &[u8], prefixes: &[&[u8]]) -> Verdict {
    let mut could_be = false;
    for prefix in prefixes {
        if buf.starts_with(prefix) {
            return Verdict::Match;
        }
        could_be |= prefix.starts_with(buf);
    }
    if could_be {
        Verdict::NeedMore
    } else {
        Verdict::NoMatch
    }
}

/// What a sniffer says about the bytes it has seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not enough bytes to decide: read more (bounded by `--timeout`).
    NeedMore,
    /// These bytes are this protocol.
    Match,
    /// These bytes are not this protocol, whatever follows.
    NoMatch,
}

/// The protocols a route can name (`PROTO` in `--route PROTO,...=ADDR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// SSH: `SSH-2.0-` identification string.
    Ssh,
    /// TLS: a ClientHello (SNI and ALPN can be matched).
    Tls,
    /// HTTP/1.x: a method line (Host can be matched).
    Http,
    /// OpenVPN over TCP: P_CONTROL_HARD_RESET_CLIENT_V2/V3.
    OpenVpn,
    /// SOCKS5 greeting.
    Socks5,
    /// tinc: `0 ` id line.
    Tinc,
    /// XMPP: a stream header mentioning `jabber`.
    Xmpp,
    /// Android Debug Bridge `CNXN`.
    Adb,
    /// A user regular expression (`regex=`).
    Regex,
    /// Anything at all.
    Anyprot,
}

impl Protocol {
    /// Every protocol, in the order they are listed in help texts.
    pub const ALL: [Protocol; 10] = [
        Protocol::Ssh,
        Protocol::Tls,
        Protocol::Http,
        Protocol::OpenVpn,
        Protocol::Socks5,
        Protocol::Tinc,
        Protocol::Xmpp,
        Protocol::Adb,
        Protocol::Regex,
        Protocol::Anyprot,
    ];

    /// The name users type, as in `--route ssh=...` or `on-timeout = "ssh"`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Ssh => "ssh",
            Protocol::Tls => "tls",
            Protocol::Http => "http",
            Protocol::OpenVpn => "openvpn",
            Protocol::Socks5 => "socks5",
            Protocol::Tinc => "tinc",
            Protocol::Xmpp => "xmpp",
            Protocol::Adb => "adb",
            Protocol::Regex => "regex",
            Protocol::Anyprot => "anyprot",
        }
    }

    /// The protocol's own sniffer, without any route filter. `Regex` has no
    /// sniffer of its own (its pattern is a route filter) and answers `Match`;
    /// so does `Anyprot` for any non-empty input.
    pub fn sniff(self, buf: &[u8]) -> Verdict {
        match self {
            Protocol::Ssh => ssh::sniff(buf),
            Protocol::Tls => tls::sniff(buf),
            Protocol::Http => http::sniff(buf),
            Protocol::OpenVpn => openvpn::sniff(buf),
            Protocol::Socks5 => socks5::sniff(buf),
            Protocol::Tinc => tinc::sniff(buf),
            Protocol::Xmpp => xmpp::sniff(buf),
            Protocol::Adb => adb::sniff(buf),
            Protocol::Regex | Protocol::Anyprot => {
                if buf.is_empty() {
                    Verdict::NeedMore
                } else {
                    Verdict::Match
                }
            }
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A protocol name that is not one of [`Protocol::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol `{0}` (expected one of: ssh, tls, http, openvpn, socks5, tinc, xmpp, adb, regex, anyprot)")]
pub struct UnknownProtocol(pub String);

impl FromStr for Protocol {
    type Err = UnknownProtocol;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownProtocol(s.to_owned()))
    }
}
