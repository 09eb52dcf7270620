//! Latency percentiles (nearest rank) over a set of samples in microseconds.

/// Summary of a latency sample set, all in microseconds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Summary {
    /// Number of samples.
    pub(crate) n: usize,
    /// Smallest sample.
    pub(crate) min: f64,
    /// Median (nearest rank).
    pub(crate) p50: f64,
    /// 90th percentile (nearest rank).
    pub(crate) p90: f64,
    /// 99th percentile (nearest rank).
    pub(crate) p99: f64,
    /// Largest sample.
    pub(crate) max: f64,
    /// Arithmetic mean.
    pub(crate) mean: f64,
}

/// Summarises `samples` (sorted in place); `None` when there are none.
pub(crate) fn summarize(samples: &mut [f64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    Some(Summary {
        n,
        min: samples[0],
        p50: rank(samples, 50.0),
        p90: rank(samples, 90.0),
        p99: rank(samples, 99.0),
        max: samples[n - 1],
        mean: samples.iter().sum::<f64>() / n as f64,
    })
}

/// Nearest-rank percentile of sorted, non-empty `sorted`.
fn rank(sorted: &[f64], pct: f64) -> f64 {
    let n = sorted.len();
    let r = ((pct / 100.0) * n as f64).ceil() as usize;
    sorted[r.clamp(1, n) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = summarize(&mut v).unwrap();
        assert_eq!(
            (s.min, s.p50, s.p90, s.p99, s.max),
            (1.0, 50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(s.mean, 50.5);
        let mut one = [7.0];
        let s = summarize(&mut one).unwrap();
        assert_eq!((s.p50, s.p99), (7.0, 7.0));
        assert!(summarize(&mut []).is_none());
    }
}
