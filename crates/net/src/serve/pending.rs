//! Connections still being sniffed, bounded by `--max-pending`: when full, the
//! oldest is closed to make room, so silent clients can never lock out a
//! client that speaks at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// The registry of pending connections.
#[derive(Debug)]
pub struct Pending {
    max: AtomicUsize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    waiting: BTreeMap<u64, CancellationToken>,
}

/// A pending connection's place; leaving it (drop) frees the place.
#[derive(Debug)]
pub struct Slot {
    id: u64,
    evicted: CancellationToken,
    owner: Arc<Pending>,
}

impl Pending {
    /// A registry holding at most `max`.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Pending {
            max: AtomicUsize::new(max.max(1)),
            inner: Mutex::new(Inner::default()),
        })
    }

    /// Change the bound (on reload).
    pub fn set_max(&self, max: usize) {
        self.max.store(max.max(1), Ordering::Relaxed);
    }

    /// How many are waiting now.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("pending lock").waiting.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take a place, evicting the oldest waiters while full. Returns the slot
    /// and how many were evicted.
    pub fn enter(self: &Arc<Self>) -> (Slot, usize) {
        let evicted = CancellationToken::new();
        let mut inner = self.inner.lock().expect("pending lock");
        let max = self.max.load(Ordering::Relaxed);
        let mut n = 0;
        while inner.waiting.len() >= max {
            match inner.waiting.pop_first() {
                Some((_, token)) => {
                    token.cancel();
                    n += 1;
                }
                None => break,
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.waiting.insert(id, evicted.clone());
        metrics::gauge!("onedoor_pending_connections").set(inner.waiting.len() as f64);
        (
            Slot {
                id,
                evicted,
                owner: self.clone(),
            },
            n,
        )
    }
}

impl Slot {
    /// Resolves when this connection was evicted to make room.
    pub async fn evicted(&self) {
        self.evicted.cancelled().await
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.owner.inner.lock().expect("pending lock");
        inner.waiting.remove(&self.id);
        metrics::gauge!("onedoor_pending_connections").set(inner.waiting.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_when_full() {
        let p = Pending::new(2);
        let (a, _) = p.enter();
        let (b, _) = p.enter();
        let (c, n) = p.enter();
        assert_eq!(n, 1);
        assert!(a.evicted.is_cancelled());
        assert!(!b.evicted.is_cancelled());
        drop(a);
        assert_eq!(p.len(), 2);
        drop((b, c));
        assert!(p.is_empty());
    }
}
