//! One memory of recent nonces, for everything serve admits only once and
//! only while fresh: probe hellos ([`crate::probe::ReplayGuard`]) and
//! WebSocket tickets ([`crate::tunnel::ticket::TicketGuard`]). Pure: the
//! clock comes in as an argument.
//!
//! A message with time `secs` is fresh at `now` when `secs` is within
//! `window` seconds of `now`, either way. Its nonce is remembered until the
//! message would be stale anyway. The guard judges staleness by the latest
//! `now` it was given, so a clock that steps back never re-opens a replay of
//! a nonce already forgotten. Memory is bounded by `cap`; what happens when
//! that many unexpired nonces are remembered is the caller's choice
//! ([`WhenFull`]).

use std::collections::{BTreeSet, HashMap};

/// What a full guard does with a new nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Forget the nonce that would expire soonest (its message could then
    /// be replayed once): for probe hellos, where refusing looks like a
    /// closed door.
    ForgetOldest,
    /// Refuse the new one (fail closed): for tickets, where a refusal only
    /// sends the request to the website.
    Refuse,
}

/// Why a nonce was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAdmitted {
    /// Its time is too far from the clock.
    Stale,
    /// It was seen before.
    Replayed,
    /// The guard is full ([`WhenFull::Refuse`]).
    Full,
}

/// Recent nonces of `N` bytes, each admitted once while fresh.
#[derive(Debug, Clone)]
pub struct NonceGuard<const N: usize> {
    window: u64,
    cap: usize,
    when_full: WhenFull,
    /// The latest `now` seen.
    high_water: u64,
    by_nonce: HashMap<[u8; N], u64>,
    by_expiry: BTreeSet<(u64, [u8; N])>,
}

impl<const N: usize> NonceGuard<N> {
    /// A guard for messages within `window` seconds of the clock,
    /// remembering at most `cap` nonces (with [`WhenFull::ForgetOldest`],
    /// at least one).
    pub fn new(window: u64, cap: usize, when_full: WhenFull) -> Self {
        let cap = match when_full {
            WhenFull::ForgetOldest => cap.max(1),
            WhenFull::Refuse => cap,
        };
        NonceGuard {
            window,
            cap,
            when_full,
            high_water: 0,
            by_nonce: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// Admit the message with `nonce` and time `secs` at `now`?
    pub fn admit(&mut self, nonce: [u8; N], secs: u64, now: u64) -> Result<(), NotAdmitted> {
        self.high_water = self.high_water.max(now);
        let expiry = secs.saturating_add(self.window);
        if expiry < self.high_water || secs > now.saturating_add(self.window) {
            return Err(NotAdmitted::Stale);
        }
        while let Some(&(exp, old)) = self.by_expiry.first() {
            if exp >= self.high_water {
                break;
            }
            self.by_expiry.pop_first();
            self.by_nonce.remove(&old);
        }
        if self.by_nonce.contains_key(&nonce) {
            return Err(NotAdmitted::Replayed);
        }
        if self.by_nonce.len() >= self.cap {
            match self.when_full {
                WhenFull::Refuse => return Err(NotAdmitted::Full),
                WhenFull::ForgetOldest => {
                    if let Some((_, old)) = self.by_expiry.pop_first() {
                        self.by_nonce.remove(&old);
                    }
                }
            }
        }
        self.by_nonce.insert(nonce, expiry);
        self.by_expiry.insert((expiry, nonce));
        Ok(())
    }

    /// How many nonces are remembered.
    pub fn len(&self) -> usize {
        self.by_nonce.len()
    }

    /// Nothing remembered?
    pub fn is_empty(&self) -> bool {
        self.by_nonce.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_while_fresh_and_bounded_either_way() {
        let mut g = NonceGuard::<2>::new(10, 2, WhenFull::Refuse);
        assert_eq!(g.admit([1, 1], 100, 100), Ok(()));
        assert_eq!(g.admit([1, 1], 100, 101), Err(NotAdmitted::Replayed));
        assert_eq!(g.admit([2, 2], 80, 100), Err(NotAdmitted::Stale));
        assert_eq!(g.admit([2, 2], 120, 100), Err(NotAdmitted::Stale));
        assert_eq!(g.admit([2, 2], 100, 100), Ok(()));
        assert_eq!(g.admit([3, 3], 100, 100), Err(NotAdmitted::Full));
        // Expired nonces make room.
        assert_eq!(g.admit([3, 3], 120, 120), Ok(()));
        assert_eq!(g.len(), 1);
        // A clock stepping back does not re-open what was forgotten.
        assert_eq!(g.admit([1, 1], 100, 100), Err(NotAdmitted::Stale));

        let mut f = NonceGuard::<2>::new(10, 1, WhenFull::ForgetOldest);
        assert_eq!(f.admit([1, 1], 100, 100), Ok(()));
        assert_eq!(f.admit([2, 2], 101, 100), Ok(()));
        assert_eq!(f.len(), 1);
    }
}
