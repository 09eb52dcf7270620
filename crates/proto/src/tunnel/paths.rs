//! Which ways to the door `onedoor connect --transport auto` tries, in
//! which order, and why (SPEC §4 "Transports"). Pure: the shell supplies
//! what it remembers and what a probe map says, and walks the list.
//!
//! The order, for the door in the access key (`--server`):
//!
//! 1. what worked last time for this server, if anything;
//! 2. `tls`: TLS straight to the door, verified against the pin — one
//!    encryption layer, the fastest; skipped when the map says the door is
//!    intercepted (a TLS-inspecting middlebox would only be named again);
//! 3. `wss`: WebSocket over HTTPS — passes reverse proxies, CDNs and
//!    interceptors; when the outer certificate is not the pinned one, the
//!    session runs in the inner layer;
//! 4. `ws`: WebSocket over plain HTTP, always in the inner layer.
//!
//! Then the other doors a probe map says are open (443 and 80 first):
//! `wss` and `ws` on 443-like doors, `ws` then `wss` on 80 (plain HTTP is
//! what a door 80 usually lets through). Doors the map says are shut
//! (rejected, filtered) are never tried; a path is never listed twice.

use std::fmt;
use std::str::FromStr;

/// How the client reaches the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// TLS straight to the door.
    Tls,
    /// WebSocket over HTTPS.
    Wss,
    /// WebSocket over plain HTTP.
    Ws,
}

impl Kind {
    /// Every kind, in the order `auto` prefers them.
    pub const ALL: [Kind; 3] = [Kind::Tls, Kind::Wss, Kind::Ws];

    /// The name `--transport` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Tls => "tls",
            Kind::Wss => "wss",
            Kind::Ws => "ws",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `--transport` was not one of `auto`, `tls`, `wss`, `ws`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown transport {0:?}: use auto, tls, wss or ws")]
pub struct KindError(String);

/// What `--transport` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Try the paths in order ([`plan`]).
    Auto,
    /// Only this one, on the given door.
    Only(Kind),
}

impl FromStr for Choice {
    type Err = KindError;

    fn from_str(s: &str) -> Result<Self, KindError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Choice::Auto),
            "tls" => Ok(Choice::Only(Kind::Tls)),
            "wss" => Ok(Choice::Only(Kind::Wss)),
            "ws" => Ok(Choice::Only(Kind::Ws)),
            _ => Err(KindError(s.to_owned())),
        }
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Choice::Auto => f.write_str("auto"),
            Choice::Only(k) => k.fmt(f),
        }
    }
}

/// One way to the door: a transport on a port of the server's host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Way {
    /// The transport.
    pub kind: Kind,
    /// The door (TCP port).
    pub port: u16,
}

impl fmt::Display for Way {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on door {}", self.kind, self.port)
    }
}

impl FromStr for Way {
    type Err = KindError;

    /// `wss:443`, as the path memory stores it.
    fn from_str(s: &str) -> Result<Self, KindError> {
        let (k, p) = s.split_once(':').ok_or_else(|| KindError(s.to_owned()))?;
        let kind = match k.parse::<Choice>()? {
            Choice::Only(kind) => kind,
            Choice::Auto => return Err(KindError(s.to_owned())),
        };
        let port = p.parse().map_err(|_| KindError(s.to_owned()))?;
        Ok(Way { kind, port })
    }
}

impl Way {
    /// The text [`Way::from_str`] reads: `wss:443`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind, self.port)
    }
}

/// What a probe map says of one TCP door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoorSays {
    /// Reached our server, verified.
    Open,
    /// Something else answered (a portal, a TLS interceptor, a proxy).
    Intercepted,
    /// Rejected or filtered: not worth a try.
    Shut,
    /// Not probed.
    Unknown,
}

/// A way to try, with the reason it is on the list (said when it is the
/// one that works).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The way.
    pub way: Way,
    /// Why it is tried, in words.
    pub why: &'static str,
}

/// The ways `auto` tries for a server on `port`: see the module docs.
/// `remembered`: what worked last time. `map`: what a probe map says of a
/// door (`None`: no map). `open_doors`: the doors the map lists as open
/// (ignored without a map).
pub fn plan(
    port: u16,
    remembered: Option<Way>,
    map: Option<&dyn Fn(u16) -> DoorSays>,
    open_doors: &[u16],
) -> Vec<Attempt> {
    let says = |p: u16| map.map_or(DoorSays::Unknown, |m| m(p));
    let mut out: Vec<Attempt> = Vec::new();
    let mut push = |way: Way, why: &'static str| {
        if says(way.port) == DoorSays::Shut {
            return;
        }
        if way.kind == Kind::Tls && says(way.port) == DoorSays::Intercepted {
            return;
        }
        if !out.iter().any(|a| a.way == way) {
            out.push(Attempt { way, why });
        }
    };
    if let Some(w) = remembered {
        push(w, "it worked last time");
    }
    push(
        Way {
            kind: Kind::Tls,
            port,
        },
        "TLS straight to the door is the fastest way",
    );
    push(
        Way {
            kind: Kind::Wss,
            port,
        },
        "WebSocket over HTTPS passes proxies and interceptors",
    );
    push(
        Way {
            kind: Kind::Ws,
            port,
        },
        "WebSocket over plain HTTP passes where TLS does not",
    );
    if map.is_some() {
        let mut others: Vec<u16> = open_doors.iter().copied().filter(|&p| p != port).collect();
        // 443 and 80 first, then the rest in order.
        others.sort_by_key(|&p| (p != 443, p != 80, p));
        others.dedup();
        for p in others {
            let kinds: &[Kind] = if p == 80 {
                &[Kind::Ws, Kind::Wss, Kind::Tls]
            } else {
                &[Kind::Tls, Kind::Wss, Kind::Ws]
            };
            for &kind in kinds {
                push(
                    Way { kind, port: p },
                    "the probe map says this door is open",
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ways(v: &[Attempt]) -> Vec<String> {
        v.iter().map(|a| a.way.key()).collect()
    }

    #[test]
    fn without_a_map_the_door_itself_in_three_ways() {
        assert_eq!(
            ways(&plan(443, None, None, &[])),
            ["tls:443", "wss:443", "ws:443"]
        );
    }

    #[test]
    fn what_worked_comes_first_and_only_once() {
        let w = Way {
            kind: Kind::Wss,
            port: 443,
        };
        let p = plan(443, Some(w), None, &[]);
        assert_eq!(ways(&p), ["wss:443", "tls:443", "ws:443"]);
        assert_eq!(p[0].why, "it worked last time");
    }

    #[test]
    fn the_map_skips_shut_doors_and_tls_on_intercepted_ones() {
        let map = |p: u16| match p {
            443 => DoorSays::Intercepted,
            80 => DoorSays::Open,
            8443 => DoorSays::Open,
            22 => DoorSays::Shut,
            _ => DoorSays::Unknown,
        };
        let p = plan(443, None, Some(&map), &[8443, 80]);
        assert_eq!(
            ways(&p),
            ["wss:443", "ws:443", "ws:80", "wss:80", "tls:80", "tls:8443", "wss:8443", "ws:8443"]
        );
        let shut = |_: u16| DoorSays::Shut;
        assert!(plan(22, None, Some(&shut), &[]).is_empty());
    }

    #[test]
    fn a_remembered_way_on_a_door_now_shut_is_dropped() {
        let map = |p: u16| {
            if p == 80 {
                DoorSays::Shut
            } else {
                DoorSays::Open
            }
        };
        let w = Way {
            kind: Kind::Ws,
            port: 80,
        };
        assert_eq!(
            ways(&plan(443, Some(w), Some(&map), &[])),
            ["tls:443", "wss:443", "ws:443"]
        );
    }

    #[test]
    fn names_parse() {
        assert_eq!("AUTO".parse::<Choice>(), Ok(Choice::Auto));
        assert_eq!("wss".parse::<Choice>(), Ok(Choice::Only(Kind::Wss)));
        assert!("quic".parse::<Choice>().is_err());
        assert_eq!(
            "ws:80".parse::<Way>(),
            Ok(Way {
                kind: Kind::Ws,
                port: 80
            })
        );
        assert!("auto:80".parse::<Way>().is_err());
        assert!("ws:x".parse::<Way>().is_err());
    }
}
