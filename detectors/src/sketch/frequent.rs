//! Frequent items of a categorical column: the mergeable Misra–Gries summary (Agarwal et al.
//! 2012, "Mergeable summaries").
//!
//! With `capacity` counters, every count is underestimated by at most
//! `(n − Σ counters) / (capacity + 1) <= n / (capacity + 1)` ([`FrequentItems::error_bound`]),
//! never overestimated, and every category more frequent than that bound is kept. While there
//! are at most `capacity` distinct categories the counts are exact (bound 0). The bound holds
//! after any number of merges in any order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{DetectorError, Result};

/// Default number of counters: exact up to 256 distinct categories, error at most n / 257.
pub const DEFAULT_CAPACITY: usize = 256;

/// A mergeable frequent-items summary over string categories.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrequentItems {
    capacity: usize,
    n: u64,
    /// Ordered map so the summary serialises (and iterates) identically everywhere.
    counts: BTreeMap<String, u64>,
}

impl Default for FrequentItems {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY).expect("DEFAULT_CAPACITY is valid")
    }
}

impl FrequentItems {
    /// An empty summary with `capacity` counters (at least 1).
    pub fn new(capacity: usize) -> Result<Self> {
        if capacity == 0 {
            return Err(DetectorError::InvalidParameter(
                "frequent items capacity must be at least 1".into(),
            ));
        }
        Ok(Self {
            capacity,
            n: 0,
            counts: BTreeMap::new(),
        })
    }

    /// Number of counters.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Values counted (merged summaries included).
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Adds one occurrence of `item`.
    pub fn insert(&mut self, item: &str) {
        self.n += 1;
        if let Some(c) = self.counts.get_mut(item) {
            *c += 1;
        } else {
            self.counts.insert(item.to_owned(), 1);
            self.shrink();
        }
    }

    /// Adds every count of `other`. Both must have the same capacity.
    pub fn merge(&mut self, other: &FrequentItems) -> Result<()> {
        if other.capacity != self.capacity {
            return Err(DetectorError::InvalidInput(format!(
                "cannot merge frequent items with capacity {} and {}",
                self.capacity, other.capacity
            )));
        }
        self.n += other.n;
        for (item, &c) in &other.counts {
            *self.counts.entry(item.clone()).or_insert(0) += c;
        }
        self.shrink();
        Ok(())
    }

    /// With more than `capacity` counters, subtracts the `(capacity + 1)`-th largest count from
    /// every counter and drops those that reach zero (the Misra–Gries decrement, batched).
    fn shrink(&mut self) {
        if self.counts.len() <= self.capacity {
            return;
        }
        let mut sorted: Vec<u64> = self.counts.values().copied().collect();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let cut = sorted[self.capacity];
        self.counts.retain(|_, c| {
            *c -= cut.min(*c);
            *c > 0
        });
    }

    /// Lower estimate of the count of `item` (0 if not tracked); the true count is at most
    /// this plus [`Self::error_bound`].
    pub fn estimate(&self, item: &str) -> u64 {
        self.counts.get(item).copied().unwrap_or(0)
    }

    /// Largest possible underestimate of any count.
    pub fn error_bound(&self) -> u64 {
        let kept: u64 = self.counts.values().sum();
        (self.n - kept) / (self.capacity as u64 + 1)
    }

    /// Whether every count is exact (no decrement happened).
    pub fn is_exact(&self) -> bool {
        self.error_bound() == 0 && self.counts.values().sum::<u64>() == self.n
    }

    /// Tracked categories with their lower-estimate counts, most frequent first (ties by name).
    pub fn items(&self) -> Vec<(&str, u64)> {
        let mut items: Vec<(&str, u64)> =
            self.counts.iter().map(|(k, &c)| (k.as_str(), c)).collect();
        items.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_below_capacity_and_bounded_above() {
        let mut f = FrequentItems::new(4).unwrap();
        for (item, times) in [("a", 50), ("b", 30), ("c", 5)] {
            (0..times).for_each(|_| f.insert(item));
        }
        assert!(f.is_exact());
        assert_eq!(f.estimate("b"), 30);
        // Many rare categories force decrements.
        for i in 0..100 {
            f.insert(&format!("rare{i}"));
        }
        let bound = f.error_bound();
        assert!(bound > 0 && bound <= f.count() / 5);
        for (item, truth) in [("a", 50), ("b", 30)] {
            let est = f.estimate(item);
            assert!(
                est <= truth && truth - est <= bound,
                "{item}: {est} vs {truth} ± {bound}"
            );
        }
        assert_eq!(f.items()[0].0, "a");
    }

    #[test]
    fn merge_keeps_the_bound() {
        let mut parts: Vec<FrequentItems> =
            (0..5).map(|_| FrequentItems::new(8).unwrap()).collect();
        let mut truth: BTreeMap<String, u64> = BTreeMap::new();
        for i in 0..20_000u64 {
            // Zipf-like: category j with weight ~ 1/j.
            let j = (i * 7919 % 1000 + 1) as f64;
            let item = format!("c{}", (1000.0 / j) as u64);
            parts[(i % 5) as usize].insert(&item);
            *truth.entry(item).or_insert(0) += 1;
        }
        let mut merged = parts[0].clone();
        for p in &parts[1..] {
            merged.merge(p).unwrap();
        }
        assert_eq!(merged.count(), 20_000);
        let bound = merged.error_bound();
        assert!(bound <= 20_000 / 9);
        for (item, &t) in &truth {
            let est = merged.estimate(item);
            assert!(
                est <= t && t - est <= bound,
                "{item}: {est} vs {t} ± {bound}"
            );
        }
        assert!(merged.merge(&FrequentItems::new(9).unwrap()).is_err());
    }
}
