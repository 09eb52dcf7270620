//! Per-IP connection rate limiting for `serve --rate N/s`.
//!
//! [`RateLimiter::check`] is called once per accepted connection with the
//! client's address and the current time (passed in: this crate has no
//! clock) and says whether to serve it. Each source has a token bucket of
//! `burst = max(N, 1)` tokens refilled at N per second, kept as a single
//! "theoretical arrival time" (the GCRA form of a token bucket): one
//! [`Instant`] per source, integer arithmetic, no drift.
//!
//! # Which sources share a bucket
//!
//! - IPv4: one bucket per address.
//! - IPv6: one bucket per /64 prefix. A /64 is the smallest block normally
//!   given to one subscriber or LAN, and a host inside it can pick any of
//!   its 2^64 addresses at will (SLAAC, privacy addresses), so a per-address
//!   limit would be trivially bypassed, and would let one host fill the
//!   table on its own. The cost: hosts of one LAN share a budget, as hosts
//!   behind one IPv4 NAT do.
//! - IPv4-mapped IPv6 (`::ffff:a.b.c.d`, as seen on a dual-stack `[::]`
//!   listener) counts as the IPv4 address; otherwise every IPv4 client would
//!   share the bucket of `::ffff:0:0/64`.
//!
//! # Memory bound
//!
//! At most `max_tracked` sources are remembered ([`DEFAULT_MAX_TRACKED`]
//! unless set with [`RateLimiter::with_max_tracked`]): under 100 bytes
//! each, a few MiB in all, whatever the number of addresses an attacker
//! controls.
//!
//! - A bucket that has refilled completely is the same as no bucket, so it
//!   can be forgotten at no cost. Each call to [`check`](RateLimiter::check)
//!   looks at two remembered sources in turn (a clock hand) and forgets the
//!   full ones, so idle sources drain away without a timer;
//!   [`RateLimiter::purge`] forgets all of them at once.
//! - When the table is full and a new source arrives, a few remembered
//!   sources are sampled and the one closest to a full bucket is forgotten,
//!   a full one if any. This costs O(1) per call, not a scan of the table.
//!
//! While the table holds fewer active sources than its bound, every source
//! gets exactly its rate. Beyond that (more than `max_tracked` sources each
//! connecting about once per `1/N` s or faster, i.e. `max_tracked × N`
//! connections per second), the limiter fails *open*: a forgotten source
//! gets a fresh burst. Failing closed instead would let anyone with a /48
//! (65,536 /64s) lock out every new client. At that load the global limits
//! (`--max-connections`, `--max-pending`) are what protects the server;
//! [`RateLimiter::forced_evictions`] counts such events for the metrics.
//!
//! The table is a `HashMap` with std's randomly keyed SipHash, so chosen
//! addresses can't be made to collide.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// How many sources a [`RateLimiter`] remembers at most, unless told otherwise.
pub const DEFAULT_MAX_TRACKED: usize = 65_536;

/// Sources looked at to pick one to forget when the table is full.
const EVICTION_SAMPLE: usize = 8;

/// Sources looked at by each `check` for a full bucket to forget.
const SWEEP_PER_CHECK: usize = 2;

/// A connection rate: `--rate 100/s` (or `600/m`, the same rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// New connections per second allowed per source, and the burst size.
    /// [`FromStr`] refuses 0; a limiter built from 0 uses 1.
    pub per_second: u32,
}

/// Why a rate string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// Not `N/s` or `N/m`.
    #[error("`{0}` is not a rate: expected N/s or N/m, e.g. 100/s or 600/m")]
    Syntax(String),
    /// A rate of zero.
    #[error("`{0}`: the rate must be at least 1/s (leave the rate unset for no limit)")]
    Zero(String),
    /// A per-minute rate that is not a whole number per second.
    #[error("`{spec}` is not a whole number of connections per second (the limiter counts per second); use {suggestion}")]
    NotWhole {
        /// The rate as typed.
        spec: String,
        /// The nearest accepted rates, e.g. `1/s or 2/s`.
        suggestion: String,
    },
    /// More than 4,294,967,295 per second.
    #[error("`{0}` is too large (at most {max}/s)", max = u32::MAX)]
    TooLarge(String),
}

impl FromStr for Rate {
    type Err = RateError;

    /// Parse `N/s` or `N/m` (also `N/sec`, `N/second`, `N/min`, `N/minute`).
    /// A per-minute rate must be a multiple of 60.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let spec = s.trim();
        let syntax = || RateError::Syntax(spec.to_owned());
        let (n, unit) = spec.split_once('/').ok_or_else(syntax)?;
        let (n, unit) = (n.trim(), unit.trim());
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let divisor: u64 = match unit {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            _ => return Err(syntax()),
        };
        // All digits: the only way to fail is overflow.
        let n: u64 = n
            .parse()
            .map_err(|_| RateError::TooLarge(spec.to_owned()))?;
        if n == 0 {
            return Err(RateError::Zero(spec.to_owned()));
        }
        // Not `is_multiple_of`: that needs Rust 1.87, the workspace says 1.80.
        let (per_second, rest) = (n / divisor, n % divisor);
        if rest != 0 {
            let low = per_second;
            let suggestion = if low == 0 {
                "1/s".to_owned()
            } else {
                format!("{low}/s or {}/s", low + 1)
            };
            return Err(RateError::NotWhole {
                spec: spec.to_owned(),
                suggestion,
            });
        }
        let per_second =
            u32::try_from(per_second).map_err(|_| RateError::TooLarge(spec.to_owned()))?;
        Ok(Rate { per_second })
    }
}

impl fmt::Display for Rate {
    /// `N/s`, which parses back to the same rate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", self.per_second)
    }
}

/// The unit sources are counted in: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    V4(u32),
    V6Prefix(u64),
}

impl Key {
    fn of(ip: IpAddr) -> Key {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Key::V4(u32::from(v4)),
            IpAddr::V6(v6) => Key::V6Prefix((u128::from(v6) >> 64) as u64),
        }
    }
}

/// A per-source token-bucket limiter with a bounded table; see the
/// [module docs](self) for how sources are grouped and forgotten.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// Time per token: `1 s / N`, rounded up so a source never gets more
    /// than `N` per second.
    interval: Duration,
    /// How far ahead of `now` a theoretical arrival time may be and still
    /// admit: `(burst - 1) × interval`.
    tolerance: Duration,
    max_tracked: usize,
    /// Key -> position in `entries`.
    index: HashMap<Key, usize>,
    /// (key, theoretical arrival time); the bucket is full when it is <= now.
    entries: Vec<(Key, Instant)>,
    /// Clock hand over `entries` for sweeping and eviction sampling.
    hand: usize,
    forced_evictions: u64,
}

impl RateLimiter {
    /// A limiter for `rate` remembering at most [`DEFAULT_MAX_TRACKED`] sources.
    pub fn new(rate: Rate) -> Self {
        Self::with_max_tracked(rate, DEFAULT_MAX_TRACKED)
    }

    /// A limiter for `rate` remembering at most `max_tracked` sources
    /// (at least 1). A `per_second` of 0 is treated as 1.
    pub fn with_max_tracked(rate: Rate, max_tracked: usize) -> Self {
        let n = rate.per_second.max(1);
        let interval = Duration::from_nanos(1_000_000_000u64.div_ceil(u64::from(n)));
        let burst = n; // max(N, 1)
        RateLimiter {
            interval,
            tolerance: interval * (burst - 1),
            max_tracked: max_tracked.max(1),
            index: HashMap::new(),
            entries: Vec::new(),
            hand: 0,
            forced_evictions: 0,
        }
    }

    /// Whether a new connection from `ip` at time `now` is allowed (`true`)
    /// or over its rate (`false`, close it). Allowed connections use a
    /// token; refused ones don't, so a source that keeps retrying gets
    /// through again at its rate.
    ///
    /// `now` should not go backwards; if it does, nothing breaks, the
    /// source is just judged as of its latest time.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.sweep(now);
        let key = Key::of(ip);
        if let Some(&i) = self.index.get(&key) {
            let tat = &mut self.entries[i].1;
            if tat.saturating_duration_since(now) > self.tolerance {
                return false;
            }
            *tat = (*tat).max(now) + self.interval;
            return true;
        }
        if self.entries.len() >= self.max_tracked {
            self.evict_one(now);
        }
        self.index.insert(key, self.entries.len());
        self.entries.push((key, now + self.interval));
        true
    }

    /// Forget every source whose bucket is full at `now`. Not needed for
    /// correctness or the memory bound; useful before reading [`len`](Self::len).
    pub fn purge(&mut self, now: Instant) {
        self.entries.retain(|&(_, tat)| tat > now);
        self.index.clear();
        for (i, &(key, _)) in self.entries.iter().enumerate() {
            self.index.insert(key, i);
        }
        self.hand = 0;
    }

    /// How many sources are remembered (at most the `max_tracked` bound).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no source is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many times a source whose bucket was not yet full had to be
    /// forgotten to make room: non-zero means the table bound was reached
    /// under load and some sources got more than their rate.
    pub fn forced_evictions(&self) -> u64 {
        self.forced_evictions
    }

    /// Look at the next few entries and forget the full ones.
    fn sweep(&mut self, now: Instant) {
        for _ in 0..SWEEP_PER_CHECK {
            if self.entries.is_empty() {
                return;
            }
            if self.hand >= self.entries.len() {
                self.hand = 0;
            }
            if self.entries[self.hand].1 <= now {
                // The last entry moves here; look at it on the next step.
                self.remove(self.hand);
            } else {
                self.hand += 1;
            }
        }
    }

    /// Make room for one entry: forget the sampled entry whose bucket is
    /// closest to full (any full one ends the search).
    fn evict_one(&mut self, now: Instant) {
        let len = self.entries.len();
        if len == 0 {
            return;
        }
        let mut best = self.hand % len;
        for step in 0..EVICTION_SAMPLE.min(len) {
            let i = (self.hand + step) % len;
            if self.entries[i].1 <= now {
                best = i;
                break;
            }
            if self.entries[i].1 < self.entries[best].1 {
                best = i;
            }
        }
        if self.entries[best].1 > now {
            self.forced_evictions += 1;
        }
        self.hand = (self.hand + EVICTION_SAMPLE) % len;
        self.remove(best);
    }

    fn remove(&mut self, i: usize) {
        let (key, _) = self.entries.swap_remove(i);
        self.index.remove(&key);
        if let Some(&(moved, _)) = self.entries.get(i) {
            self.index.insert(moved, i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn limiter(n: u32) -> RateLimiter {
        RateLimiter::new(Rate { per_second: n })
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_rates() {
        assert_eq!("100/s".parse(), Ok(Rate { per_second: 100 }));
        assert_eq!("10/s".parse(), Ok(Rate { per_second: 10 }));
        assert_eq!(" 600/m ".parse(), Ok(Rate { per_second: 10 }));
        assert_eq!("60/min".parse(), Ok(Rate { per_second: 1 }));
        assert_eq!("5/sec".parse(), Ok(Rate { per_second: 5 }));
        assert_eq!(
            "4294967295/s".parse(),
            Ok(Rate {
                per_second: u32::MAX
            })
        );
        assert_eq!(
            Rate { per_second: 7 }.to_string().parse(),
            Ok(Rate { per_second: 7 })
        );
    }

    #[test]
    fn refuses_bad_rates_clearly() {
        let err = |s: &str| s.parse::<Rate>().unwrap_err().to_string();
        assert_eq!(
            err("100"),
            "`100` is not a rate: expected N/s or N/m, e.g. 100/s or 600/m"
        );
        assert!(matches!("10/h".parse::<Rate>(), Err(RateError::Syntax(_))));
        assert!(matches!("-1/s".parse::<Rate>(), Err(RateError::Syntax(_))));
        assert!(matches!("1.5/s".parse::<Rate>(), Err(RateError::Syntax(_))));
        assert!(matches!("/s".parse::<Rate>(), Err(RateError::Syntax(_))));
        assert!(matches!("+5/s".parse::<Rate>(), Err(RateError::Syntax(_))));
        assert_eq!(
            err("0/s"),
            "`0/s`: the rate must be at least 1/s (leave the rate unset for no limit)"
        );
        assert_eq!(
            err("90/m"),
            "`90/m` is not a whole number of connections per second (the limiter counts per second); use 1/s or 2/s"
        );
        assert!(err("30/m").ends_with("use 1/s"));
        assert!(matches!(
            "4294967296/s".parse::<Rate>(),
            Err(RateError::TooLarge(_))
        ));
        assert!(matches!(
            "99999999999999999999999/s".parse::<Rate>(),
            Err(RateError::TooLarge(_))
        ));
    }

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut rl = limiter(10);
        let a = ip("192.0.2.1");
        for _ in 0..10 {
            assert!(rl.check(a, t0));
        }
        assert!(!rl.check(a, t0));
        assert!(!rl.check(a, t0 + ms(99)));
        assert!(rl.check(a, t0 + ms(100)));
        assert!(!rl.check(a, t0 + ms(100)));
        // After a full second idle, the whole burst is back.
        let t1 = t0 + ms(1100);
        for _ in 0..10 {
            assert!(rl.check(a, t1));
        }
        assert!(!rl.check(a, t1));
    }

    #[test]
    fn refused_attempts_cost_nothing() {
        let t0 = Instant::now();
        let mut rl = limiter(1);
        let a = ip("192.0.2.1");
        assert!(rl.check(a, t0));
        for i in 1..1000 {
            assert!(!rl.check(a, t0 + ms(i)));
        }
        assert!(rl.check(a, t0 + ms(1000)));
    }

    #[test]
    fn sources_are_independent() {
        let t0 = Instant::now();
        let mut rl = limiter(1);
        assert!(rl.check(ip("192.0.2.1"), t0));
        assert!(!rl.check(ip("192.0.2.1"), t0));
        assert!(rl.check(ip("192.0.2.2"), t0));
        assert!(rl.check(ip("2001:db8::1"), t0));
    }

    #[test]
    fn ipv6_grouped_by_64() {
        let t0 = Instant::now();
        let mut rl = limiter(2);
        assert!(rl.check(ip("2001:db8:1:2::1"), t0));
        assert!(rl.check(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), t0));
        assert!(!rl.check(ip("2001:db8:1:2:1234::5"), t0));
        assert!(rl.check(ip("2001:db8:1:3::1"), t0));
        assert_eq!(rl.len(), 2);
    }

    #[test]
    fn mapped_ipv4_is_ipv4() {
        let t0 = Instant::now();
        let mut rl = limiter(1);
        assert!(rl.check(ip("::ffff:192.0.2.1"), t0));
        assert!(!rl.check(ip("192.0.2.1"), t0));
        // Another IPv4 client does not share the ::ffff:0:0/64 bucket.
        assert!(rl.check(ip("::ffff:192.0.2.2"), t0));
    }

    #[test]
    fn zero_rate_behaves_as_one() {
        let t0 = Instant::now();
        let mut rl = limiter(0);
        let a = ip("192.0.2.1");
        assert!(rl.check(a, t0));
        assert!(!rl.check(a, t0));
        assert!(rl.check(a, t0 + ms(1000)));
    }

    #[test]
    fn time_going_backwards_is_harmless() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut rl = limiter(1);
        let a = ip("192.0.2.1");
        assert!(rl.check(a, t0));
        assert!(!rl.check(a, t0 - Duration::from_secs(5)));
        assert!(rl.check(a, t0 + ms(1000)));
    }

    #[test]
    fn huge_rate() {
        let t0 = Instant::now();
        let mut rl = limiter(u32::MAX);
        let a = ip("192.0.2.1");
        for _ in 0..1000 {
            assert!(rl.check(a, t0));
        }
    }

    #[test]
    fn idle_sources_are_forgotten() {
        let t0 = Instant::now();
        let mut rl = limiter(10);
        for i in 0..100u32 {
            assert!(rl.check(IpAddr::from(i.to_be_bytes()), t0));
        }
        assert_eq!(rl.len(), 100);
        // One source keeps coming; the clock hand drains the others.
        let t1 = t0 + ms(200);
        for i in 0..200 {
            rl.check(ip("198.51.100.1"), t1 + ms(i * 100));
        }
        assert_eq!(rl.len(), 1);
        rl.purge(t1 + ms(100_000));
        assert!(rl.is_empty());
        assert_eq!(rl.forced_evictions(), 0);
    }

    #[test]
    fn purge_keeps_active_sources() {
        let t0 = Instant::now();
        let mut rl = limiter(1);
        rl.check(ip("192.0.2.1"), t0);
        rl.check(ip("192.0.2.2"), t0 + ms(600));
        rl.purge(t0 + ms(1000));
        assert_eq!(rl.len(), 1);
        assert!(!rl.check(ip("192.0.2.2"), t0 + ms(1000)));
        assert!(rl.check(ip("192.0.2.1"), t0 + ms(1000)));
    }

    #[test]
    fn table_is_bounded_under_a_flood_of_sources() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::with_max_tracked(Rate { per_second: 5 }, 1000);
        // 100,000 distinct /64s within one millisecond, all active.
        for i in 0..100_000u64 {
            let a = IpAddr::from(std::net::Ipv6Addr::from(
                u128::from(0x2001_0db8_0000_0000u64 + i) << 64,
            ));
            assert!(rl.check(a, t0 + Duration::from_nanos(i * 10)));
            assert!(rl.len() <= 1000);
        }
        assert_eq!(rl.len(), 1000);
        assert!(rl.forced_evictions() > 0);
        // Every remembered source is still limited.
        let survivors: Vec<Key> = rl.entries.iter().map(|e| e.0).collect();
        assert_eq!(rl.index.len(), survivors.len());
        for (i, k) in survivors.iter().enumerate() {
            assert_eq!(rl.index[k], i);
        }
    }

    #[test]
    fn full_buckets_are_evicted_first() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::with_max_tracked(Rate { per_second: 10 }, 4);
        let busy = ip("192.0.2.9");
        // The busy source spends its whole burst: not full before t0 + 1 s.
        for _ in 0..10 {
            assert!(rl.check(busy, t0));
        }
        // Three others spend one token each: full again at t0 + 100 ms.
        for i in 1..=3u8 {
            assert!(rl.check(IpAddr::from([10, 0, 0, i]), t0));
        }
        assert_eq!(rl.len(), 4);
        let t1 = t0 + ms(500);
        for i in 1..=3u8 {
            assert!(rl.check(IpAddr::from([172, 16, 0, i]), t1));
            assert!(rl.len() <= 4);
        }
        assert_eq!(rl.forced_evictions(), 0);
        // The busy source was kept: half a second refilled half its burst.
        let admitted = (0..10).filter(|_| rl.check(busy, t1)).count();
        assert_eq!(admitted, 5);
    }

    /// Admissions in every window [t_i, t_j] of a single source's history.
    fn check_bound(rate: u32, times: &[Instant], admitted: &[bool]) -> Result<(), TestCaseError> {
        let burst = u128::from(rate.max(1));
        for i in 0..times.len() {
            let mut count = 0u128;
            for j in i..times.len() {
                count += u128::from(admitted[j]);
                let elapsed = times[j].duration_since(times[i]).as_nanos();
                let allowance = burst + elapsed * u128::from(rate.max(1)) / 1_000_000_000;
                prop_assert!(
                    count <= allowance,
                    "{} admissions in {} ns at {}/s",
                    count,
                    elapsed,
                    rate
                );
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn never_more_than_burst_plus_rate(
            rate in prop_oneof![0u32..5, 1u32..1000, Just(u32::MAX)],
            gaps in proptest::collection::vec(prop_oneof![Just(0u64), 0u64..2_000_000, 0u64..2_000_000_000], 1..150),
            v6 in any::<bool>(),
            suffixes in proptest::collection::vec(any::<u64>(), 150),
        ) {
            let mut rl = RateLimiter::with_max_tracked(Rate { per_second: rate }, 4);
            let base = Instant::now();
            let mut now = base;
            let mut times = Vec::new();
            let mut admitted = Vec::new();
            for (k, gap) in gaps.iter().enumerate() {
                now += Duration::from_nanos(*gap);
                // The same IPv4 address, or any address of one IPv6 /64.
                let a = if v6 {
                    IpAddr::from(std::net::Ipv6Addr::from(
                        (0x2001_0db8_0000_0001u128 << 64) | u128::from(suffixes[k]),
                    ))
                } else {
                    ip("192.0.2.1")
                };
                times.push(now);
                admitted.push(rl.check(a, now));
            }
            prop_assert!(admitted[0]);
            check_bound(rate, &times, &admitted)?;
        }

        #[test]
        fn steady_clients_within_rate_always_pass(rate in 1u32..100, n in 1usize..200) {
            let mut rl = limiter(rate);
            let base = Instant::now();
            let step = Duration::from_nanos(1_000_000_000u64.div_ceil(u64::from(rate)));
            for k in 0..n {
                prop_assert!(rl.check(ip("192.0.2.1"), base + step * u32::try_from(k).unwrap()));
            }
        }

        #[test]
        fn parse_never_panics(s in ".{0,20}") {
            let _ = s.parse::<Rate>();
        }

        #[test]
        fn parse_display_roundtrip(n in 1u32..) {
            let r = Rate { per_second: n };
            prop_assert_eq!(r.to_string().parse::<Rate>(), Ok(r));
        }
    }
}
