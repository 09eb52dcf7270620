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
//!
//! When an HTTP proxy is known (`--proxy`, `HTTPS_PROXY`), the same ways
//! follow once more through it: straight first (a proxy costs a copy and
//! sees the door's name), then through the proxy. A map describes the
//! network straight to the server, so it does not prune the proxy's ways.

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

/// One way to the door: a transport on a port of the server's host,
/// straight or through the HTTP proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Way {
    /// The transport.
    pub kind: Kind,
    /// The door (TCP port).
    pub port: u16,
    /// Through the HTTP proxy?
    pub proxied: bool,
}

impl Way {
    /// `kind` on door `port`, straight.
    pub fn straight(kind: Kind, port: u16) -> Way {
        Way {
            kind,
            port,
            proxied: false,
        }
    }

    /// The text [`Way::from_str`] reads: `wss:443`, `tls:443+proxy`.
    pub fn key(&self) -> String {
        let via = if self.proxied { "+proxy" } else { "" };
        format!("{}:{}{via}", self.kind, self.port)
    }
}

impl fmt::Display for Way {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on door {}", self.kind, self.port)?;
        if self.proxied {
            f.write_str(" through the proxy")?;
        }
        Ok(())
    }
}

impl FromStr for Way {
    type Err = KindError;

    /// `wss:443` or `wss:443+proxy`, as the path memory stores it.
    fn from_str(s: &str) -> Result<Self, KindError> {
        let (rest, proxied) = match s.strip_suffix("+proxy") {
            Some(r) => (r, true),
            None => (s, false),
        };
        let (k, p) = rest
            .split_once(':')
            .ok_or_else(|| KindError(s.to_owned()))?;
        let kind = match k.parse::<Choice>()? {
            Choice::Only(kind) => kind,
            Choice::Auto => return Err(KindError(s.to_owned())),
        };
        let port = p.parse().map_err(|_| KindError(s.to_owned()))?;
        Ok(Way {
            kind,
            port,
            proxied,
        })
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
/// (ignored without a map). `proxy`: an HTTP proxy is known.
pub fn plan(
    port: u16,
    remembered: Option<Way>,
    map: Option<&dyn Fn(u16) -> DoorSays>,
    open_doors: &[u16],
    proxy: bool,
) -> Vec<Attempt> {
    let says = |w: &Way| match (w.proxied, map) {
        (false, Some(m)) => m(w.port),
        _ => DoorSays::Unknown,
    };
    let mut out: Vec<Attempt> = Vec::new();
    let mut push = |way: Way, why: &'static str| {
        if way.proxied && !proxy {
            return;
        }
        match says(&way) {
            DoorSays::Shut => return,
            DoorSays::Intercepted if way.kind == Kind::Tls => return,
            _ => {}
        }
        if !out.iter().any(|a| a.way == way) {
            out.push(Attempt { way, why });
        }
    };
    if let Some(w) = remembered {
        push(w, "it worked last time");
    }
    for proxied in [false, true] {
        let on = |kind: Kind, port: u16| Way {
            kind,
            port,
            proxied,
        };
        push(
            on(Kind::Tls, port),
            if proxied {
                "the way straight did not work; through the HTTP proxy, TLS to the door"
            } else {
                "TLS straight to the door is the fastest way"
            },
        );
        push(
            on(Kind::Wss, port),
            if proxied {
                "through the HTTP proxy, WebSocket over HTTPS"
            } else {
                "WebSocket over HTTPS passes proxies and interceptors"
            },
        );
        push(
            on(Kind::Ws, port),
            if proxied {
                "through the HTTP proxy, WebSocket over plain HTTP"
            } else {
                "WebSocket over plain HTTP passes where TLS does not"
            },
        );
        if map.is_some() && !proxied {
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
                    push(on(kind, p), "the probe map says this door is open");
                }
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
            ways(&plan(443, None, None, &[], false)),
            ["tls:443", "wss:443", "ws:443"]
        );
    }

    #[test]
    fn what_worked_comes_first_and_only_once() {
        let w = Way::straight(Kind::Wss, 443);
        let p = plan(443, Some(w), None, &[], false);
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
        let p = plan(443, None, Some(&map), &[8443, 80], false);
        assert_eq!(
            ways(&p),
            ["wss:443", "ws:443", "ws:80", "wss:80", "tls:80", "tls:8443", "wss:8443", "ws:8443"]
        );
        let shut = |_: u16| DoorSays::Shut;
        assert!(plan(22, None, Some(&shut), &[], false).is_empty());
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
        let w = Way::straight(Kind::Ws, 80);
        assert_eq!(
            ways(&plan(443, Some(w), Some(&map), &[], false)),
            ["tls:443", "wss:443", "ws:443"]
        );
    }

    #[test]
    fn with_a_proxy_the_ways_straight_come_first_then_through_it() {
        let p = plan(443, None, None, &[], true);
        assert_eq!(
            ways(&p),
            [
                "tls:443",
                "wss:443",
                "ws:443",
                "tls:443+proxy",
                "wss:443+proxy",
                "ws:443+proxy"
            ]
        );
        // The map speaks of the way straight only.
        let shut = |_: u16| DoorSays::Shut;
        assert_eq!(
            ways(&plan(443, None, Some(&shut), &[], true)),
            ["tls:443+proxy", "wss:443+proxy", "ws:443+proxy"]
        );
        // What worked through the proxy comes first next time.
        let w: Way = "tls:443+proxy".parse().unwrap();
        assert_eq!(
            ways(&plan(443, Some(w), None, &[], true))[0],
            "tls:443+proxy"
        );
        // Without a proxy, a remembered proxied way is not tried.
        assert_eq!(ways(&plan(443, Some(w), None, &[], false))[0], "tls:443");
    }

    #[test]
    fn names_parse() {
        assert_eq!("AUTO".parse::<Choice>(), Ok(Choice::Auto));
        assert_eq!("wss".parse::<Choice>(), Ok(Choice::Only(Kind::Wss)));
        assert!("quic".parse::<Choice>().is_err());
        assert_eq!("ws:80".parse::<Way>(), Ok(Way::straight(Kind::Ws, 80)));
        let via = "tls:443+proxy".parse::<Way>().unwrap();
        assert!(via.proxied);
        assert_eq!(via.key(), "tls:443+proxy");
        assert_eq!(via.to_string(), "tls on door 443 through the proxy");
        assert!("auto:80".parse::<Way>().is_err());
        assert!("ws:x".parse::<Way>().is_err());
    }
}
