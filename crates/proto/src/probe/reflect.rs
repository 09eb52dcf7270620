//! Serve's side of the probe as pure code: the `--reflect` spec
//! (`tcp:1-65535,udp:53,123,443,1194`) and the log of UDP hellos that
//! arrived, kept per probe run so an arrivals query can be answered.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use super::hello::{Arrival, Hello, RUN_ID_LEN};
use super::ports::PortSet;

/// Which doors the reflector answers on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReflectSpec {
    /// TCP ports.
    pub tcp: PortSet,
    /// UDP ports.
    pub udp: PortSet,
}

/// A `--reflect` value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{spec}`: {why} (expected e.g. tcp:1-65535,udp:53,123,443,1194)")]
pub struct ReflectSpecError {
    /// The spec as given.
    pub spec: String,
    /// What is wrong.
    pub why: String,
}

impl FromStr for ReflectSpec {
    type Err = ReflectSpecError;

    /// Items separated by commas; `tcp:` or `udp:` switches the protocol for
    /// the items that follow (the first item must name one).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| ReflectSpecError {
            spec: s.to_owned(),
            why,
        };
        let mut spec = ReflectSpec::default();
        let mut current: Option<bool> = None; // Some(true) = tcp
        for item in s.split(',').map(str::trim) {
            let ports = if let Some(rest) = item.strip_prefix("tcp:") {
                current = Some(true);
                rest
            } else if let Some(rest) = item.strip_prefix("udp:") {
                current = Some(false);
                rest
            } else {
                item
            };
            let tcp = current.ok_or_else(|| bad("start with tcp: or udp:".into()))?;
            let set = PortSet::parse(ports).map_err(|e| bad(e.to_string()))?;
            let target = if tcp { &mut spec.tcp } else { &mut spec.udp };
            target.extend(set.iter());
        }
        if spec.tcp.is_empty() && spec.udp.is_empty() {
            return Err(bad("no port".into()));
        }
        Ok(spec)
    }
}

impl fmt::Display for ReflectSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.tcp.is_empty() {
            parts.push(format!("tcp:{}", self.tcp));
        }
        if !self.udp.is_empty() {
            parts.push(format!("udp:{}", self.udp));
        }
        f.write_str(&parts.join(","))
    }
}

/// How long a run's arrivals are kept, in seconds.
pub const ARRIVALS_KEPT_SECS: u64 = 600;
/// Arrivals kept per run, at most.
pub const ARRIVALS_PER_RUN: usize = 65_536;
/// Runs kept at once, at most; past it the oldest run is forgotten.
pub const RUNS_KEPT: usize = 256;

/// UDP hellos that arrived, per run, bounded in memory and time. Only hellos
/// that opened with the server's key (so from fingerprint holders) get here.
#[derive(Debug, Default)]
pub struct ArrivalsLog {
    runs: HashMap<[u8; RUN_ID_LEN], Run>,
}

#[derive(Debug)]
struct Run {
    first_seen: u64,
    arrivals: Vec<Arrival>,
}

impl ArrivalsLog {
    /// An empty log.
    pub fn new() -> Self {
        ArrivalsLog::default()
    }

    /// Record a UDP hello that arrived on `port_seen` at `now_unix`.
    pub fn record(&mut self, hello: &Hello, port_seen: u16, now_unix: u64) {
        self.expire(now_unix);
        if !self.runs.contains_key(&hello.run) && self.runs.len() >= RUNS_KEPT {
            if let Some(oldest) = self
                .runs
                .iter()
                .min_by_key(|(_, r)| r.first_seen)
                .map(|(k, _)| *k)
            {
                self.runs.remove(&oldest);
            }
        }
        let run = self.runs.entry(hello.run).or_insert_with(|| Run {
            first_seen: now_unix,
            arrivals: Vec::new(),
        });
        if run.arrivals.len() < ARRIVALS_PER_RUN {
            run.arrivals.push(Arrival {
                nonce: hello.nonce,
                port_seen,
            });
        }
    }

    /// The arrivals of `run` so far.
    pub fn arrivals(&mut self, run: &[u8; RUN_ID_LEN], now_unix: u64) -> Vec<Arrival> {
        self.expire(now_unix);
        self.runs
            .get(run)
            .map(|r| r.arrivals.clone())
            .unwrap_or_default()
    }

    /// Runs kept now.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    fn expire(&mut self, now_unix: u64) {
        self.runs
            .retain(|_, r| now_unix.saturating_sub(r.first_seen) <= ARRIVALS_KEPT_SECS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::hello::HelloKind;
    use proptest::prelude::*;

    #[test]
    fn parses_specs() {
        let s: ReflectSpec = "tcp:1-65535,udp:53,123,443,1194".parse().unwrap();
        assert_eq!(s.tcp.len(), 65535);
        assert_eq!(s.udp.iter().collect::<Vec<_>>(), [53, 123, 443, 1194]);
        let s: ReflectSpec = "udp:53,tcp:22,80-81".parse().unwrap();
        assert_eq!(s.tcp.iter().collect::<Vec<_>>(), [22, 80, 81]);
        assert_eq!(s.to_string(), "tcp:22,80-81,udp:53");
        for bad in [
            "",
            "22",
            "tcp:",
            "tcp:0",
            "tcp:70000",
            "icmp:1",
            "tcp:1-2,x",
        ] {
            assert!(bad.parse::<ReflectSpec>().is_err(), "{bad}");
        }
    }

    fn hello(run: u8, nonce: u8) -> Hello {
        Hello {
            kind: HelloKind::Udp,
            port: 53,
            nonce: [nonce; 16],
            unix_secs: 0,
            run: [run; 8],
        }
    }

    #[test]
    fn log_is_per_run_and_expires() {
        let mut log = ArrivalsLog::new();
        log.record(&hello(1, 1), 53, 100);
        log.record(&hello(1, 2), 123, 101);
        log.record(&hello(2, 3), 53, 102);
        assert_eq!(log.arrivals(&[1; 8], 103).len(), 2);
        assert_eq!(log.arrivals(&[2; 8], 103)[0].nonce, [3; 16]);
        assert!(log
            .arrivals(&[1; 8], 100 + ARRIVALS_KEPT_SECS + 1)
            .is_empty());
    }

    #[test]
    fn log_is_bounded() {
        let mut log = ArrivalsLog::new();
        for r in 0..(RUNS_KEPT as u32 + 10) {
            let mut h = hello(0, 0);
            h.run[..4].copy_from_slice(&r.to_be_bytes());
            log.record(&h, 1, u64::from(r));
        }
        assert_eq!(log.runs(), RUNS_KEPT);
        // The oldest runs went first.
        assert!(log.arrivals(&[0; 8], 300).is_empty());
    }

    proptest! {
        #[test]
        fn spec_roundtrips(s in "(tcp|udp):[0-9,-]{1,20}") {
            if let Ok(spec) = s.parse::<ReflectSpec>() {
                prop_assert_eq!(spec.to_string().parse::<ReflectSpec>().unwrap(), spec);
            }
        }
    }
}
