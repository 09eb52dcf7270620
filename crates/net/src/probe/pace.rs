//! How fast the probe starts new attempts: a token bucket for `--rate`, and
//! a budget that keeps this machine's connection-tracking table from
//! filling up.
//!
//! Every attempt (a TCP connect, a UDP hello) may leave an entry in the
//! local conntrack table (when netfilter's connection tracking is loaded)
//! for up to the `SYN_SENT` / `TIME_WAIT` timeout (120 s by default). A
//! full table makes the kernel drop new packets — our own SYNs — which
//! would be mapped as `filtered` doors. So, on Linux, the table's free room
//! is read once at the start (`nf_conntrack_max` − `nf_conntrack_count`),
//! and at most half of it may be used by attempts started within one
//! timeout window; past that, the pacer waits for the oldest to age out.
//! With the usual 262,144 entries that is 131,072 attempts per two minutes:
//! a whole 65,535-door map with a retry for each never waits.
//!
//! Routers on the way have tables of their own that can't be read from
//! here; `--rate` is what spares them.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The least burst the bucket allows: attempts that may start at once after
/// an idle moment.
const MIN_BURST: u32 = 1;
/// The bucket holds this long's worth of attempts (50 ms).
const BURST_DIVISOR: u32 = 20;
/// The conntrack budget never drops below this many attempts per window.
const MIN_BUDGET: usize = 256;

/// The pacing state: pure, time passed in. [`Pacer::reserve`] hands out
/// start times.
#[derive(Debug)]
pub(crate) struct Pacer {
    /// 1 / rate.
    interval: Duration,
    /// How far behind `now` the schedule may lag (the burst).
    tolerance: Duration,
    /// The next free slot of the schedule.
    next: Option<Instant>,
    /// The conntrack budget, if any: at most `budget.attempts` start within
    /// any `budget.window`.
    budget: Option<Budget>,
    /// The start times booked within the last window (only with a budget).
    starts: VecDeque<Instant>,
}

/// The local conntrack table's room, as [`conntrack_budget`] measured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Attempts that may start within one window.
    pub attempts: usize,
    /// How long an entry may stay in the table.
    pub window: Duration,
}

impl Pacer {
    /// At most `per_second` attempts a second (at least 1), and at most
    /// `budget.attempts` per `budget.window` if given.
    pub(crate) fn new(per_second: u32, budget: Option<Budget>) -> Self {
        let per_second = per_second.max(1);
        let interval = Duration::from_secs(1) / per_second;
        let burst = (per_second / BURST_DIVISOR).max(MIN_BURST);
        Pacer {
            interval,
            tolerance: interval * (burst - 1),
            next: None,
            budget: budget.map(|b| Budget {
                attempts: b.attempts.max(1),
                window: b.window,
            }),
            starts: VecDeque::new(),
        }
    }

    /// Book the next attempt, asked at `now`: returns when it may start
    /// (`now` or later). Bookings are kept, so each call gets a later slot
    /// than the one before (or the same, within the burst).
    pub(crate) fn reserve(&mut self, now: Instant) -> Instant {
        let earliest = now.checked_sub(self.tolerance).unwrap_or(now);
        let mut t = self.next.map_or(earliest, |n| n.max(earliest));
        if let Some(budget) = self.budget {
            let horizon = t.max(now);
            while self
                .starts
                .front()
                .is_some_and(|&s| s + budget.window <= horizon)
            {
                self.starts.pop_front();
            }
            if self.starts.len() >= budget.attempts {
                let oldest_to_keep = self.starts[self.starts.len() - budget.attempts];
                t = t.max(oldest_to_keep + budget.window);
            }
            self.starts.push_back(t.max(now));
        }
        self.next = Some(t + self.interval);
        t.max(now)
    }
}

/// The conntrack budget from the table's size, its fill and its timeouts
/// (the `/proc/sys/net/netfilter` values): half the free room, per the
/// longest of the timeouts.
pub(crate) fn budget_from(max: usize, count: usize, timeouts_secs: &[u64]) -> Budget {
    let free = max.saturating_sub(count);
    Budget {
        attempts: (free / 2).max(MIN_BUDGET),
        window: Duration::from_secs(timeouts_secs.iter().copied().max().unwrap_or(120).max(1)),
    }
}

/// This machine's conntrack budget, or `None` when connection tracking is
/// not loaded (or not on Linux): nothing to spare then.
pub fn conntrack_budget() -> Option<Budget> {
    #[cfg(target_os = "linux")]
    {
        let read = |name: &str| -> Option<u64> {
            std::fs::read_to_string(format!("/proc/sys/net/netfilter/{name}"))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        let max = read("nf_conntrack_max")?;
        let count = read("nf_conntrack_count").unwrap_or(0);
        let timeouts: Vec<u64> = [
            "nf_conntrack_tcp_timeout_syn_sent",
            "nf_conntrack_tcp_timeout_time_wait",
            "nf_conntrack_udp_timeout",
        ]
        .iter()
        .filter_map(|n| read(n))
        .collect();
        Some(budget_from(
            usize::try_from(max).unwrap_or(usize::MAX),
            usize::try_from(count).unwrap_or(usize::MAX),
            &timeouts,
        ))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn rate_spaces_attempts_after_a_small_burst() {
        let mut p = Pacer::new(1000, None);
        let t0 = Instant::now() + Duration::from_secs(10);
        // 1000/s: a burst of 50, then one per millisecond.
        let slots: Vec<Duration> = (0..60).map(|_| p.reserve(t0) - t0).collect();
        assert!(slots[..50].iter().all(|d| d.is_zero()), "{slots:?}");
        assert_eq!(slots[50], MS);
        assert_eq!(slots[59], 10 * MS);
        // Idle for a while: the burst is back, not a backlog of credit.
        let later = t0 + Duration::from_secs(5);
        let slots: Vec<Duration> = (0..51).map(|_| p.reserve(later) - later).collect();
        assert!(slots[..50].iter().all(|d| d.is_zero()));
        assert_eq!(slots[50], MS);
    }

    #[test]
    fn one_per_second_has_no_burst() {
        let mut p = Pacer::new(1, None);
        let t0 = Instant::now();
        assert_eq!(p.reserve(t0), t0);
        assert_eq!(p.reserve(t0), t0 + Duration::from_secs(1));
        assert_eq!(p.reserve(t0), t0 + Duration::from_secs(2));
        let mut p = Pacer::new(0, None);
        assert_eq!(p.reserve(t0), t0);
        assert_eq!(p.reserve(t0), t0 + Duration::from_secs(1));
    }

    #[test]
    fn conntrack_budget_waits_for_the_oldest_to_age_out() {
        let budget = Budget {
            attempts: 3,
            window: Duration::from_secs(120),
        };
        let mut p = Pacer::new(1_000_000, Some(budget));
        let t0 = Instant::now();
        let a = p.reserve(t0);
        let b = p.reserve(t0 + MS);
        let c = p.reserve(t0 + 2 * MS);
        assert!(c <= t0 + 2 * MS + MS);
        // The fourth must wait until the first is 120 s old.
        let d = p.reserve(t0 + 3 * MS);
        assert_eq!(d, a + Duration::from_secs(120));
        let e = p.reserve(t0 + 4 * MS);
        assert_eq!(e, b + Duration::from_secs(120));
        // Long after, no wait.
        let late = t0 + Duration::from_secs(1000);
        assert_eq!(p.reserve(late), late);
    }

    #[test]
    fn budget_from_proc_values() {
        assert_eq!(
            budget_from(262_144, 0, &[120, 120, 30]),
            Budget {
                attempts: 131_072,
                window: Duration::from_secs(120)
            }
        );
        assert_eq!(budget_from(65_536, 65_400, &[60]).attempts, MIN_BUDGET);
        assert_eq!(budget_from(65_536, 65_000, &[60]).attempts, 268);
        assert_eq!(budget_from(10, 20, &[]).window, Duration::from_secs(120));
    }
}
