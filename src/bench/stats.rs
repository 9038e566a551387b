//! Summaries: min / median / max over repeats, and latency percentiles within one run.

use std::time::Duration;

/// Min, median and max of a set of values (the median of an even count is the mean of the two
/// middle values). NaNs sort last and so never become the min.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    /// How many values were summarised.
    pub count: usize,
}

impl Summary {
    /// The summary of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Summary {
            min: v[0],
            median,
            max: v[n - 1],
            count: n,
        })
    }
}

/// The latencies of one run, in nanoseconds, sorted on demand.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    nanos: Vec<u64>,
    sorted: bool,
}

impl Latencies {
    pub fn with_capacity(n: usize) -> Self {
        Latencies {
            nanos: Vec::with_capacity(n),
            sorted: true,
        }
    }

    pub fn push(&mut self, d: Duration) {
        self.nanos
            .push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.sorted = false;
    }

    /// Adds every latency of `other`.
    pub fn extend(&mut self, other: Latencies) {
        self.nanos.extend(other.nanos);
        self.sorted = false;
    }

    pub fn len(&self) -> usize {
        self.nanos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nanos.is_empty()
    }

    /// The `p`-th percentile (0 < p ≤ 100) by nearest rank: the smallest latency that at least
    /// `p`% of the calls did not exceed. `None` without latencies.
    pub fn percentile(&mut self, p: f64) -> Option<Duration> {
        if self.nanos.is_empty() {
            return None;
        }
        if !self.sorted {
            self.nanos.sort_unstable();
            self.sorted = true;
        }
        let n = self.nanos.len();
        // p·n first, and a little slack, so that 99% of 1000 is rank 990 despite rounding.
        let rank = (p.clamp(0.0, 100.0) * n as f64 / 100.0 - 1e-9).ceil() as usize;
        let i = rank.clamp(1, n) - 1;
        Some(Duration::from_nanos(self.nanos[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_median_max() {
        assert_eq!(Summary::of(&[]), None);
        let s = Summary::of(&[3.0, 1.0, 2.0]).expect("values");
        assert_eq!((s.min, s.median, s.max, s.count), (1.0, 2.0, 3.0, 3));
        let s = Summary::of(&[4.0, 1.0, 2.0, 3.0]).expect("values");
        assert_eq!((s.min, s.median, s.max), (1.0, 2.5, 4.0));
        let s = Summary::of(&[7.0]).expect("values");
        assert_eq!((s.min, s.median, s.max), (7.0, 7.0, 7.0));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut l = Latencies::default();
        assert_eq!(l.percentile(50.0), None);
        for i in (1..=1000).rev() {
            l.push(Duration::from_micros(i));
        }
        assert_eq!(l.percentile(50.0), Some(Duration::from_micros(500)));
        assert_eq!(l.percentile(99.0), Some(Duration::from_micros(990)));
        assert_eq!(l.percentile(99.9), Some(Duration::from_micros(999)));
        assert_eq!(l.percentile(100.0), Some(Duration::from_micros(1000)));
        let mut one = Latencies::default();
        one.push(Duration::from_micros(3));
        assert_eq!(one.percentile(99.9), Some(Duration::from_micros(3)));
    }
}
