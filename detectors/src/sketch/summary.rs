//! `ColumnSummary`: everything an edge collector ships about one column for one time slice —
//! exact row, missing and non-finite counts, exact sum, min and max, a KLL sketch of the
//! numbers and a frequent-items summary of the categories — mergeable in any order.

use serde::{Deserialize, Serialize};

use super::frequent::{DEFAULT_CAPACITY, FrequentItems};
use super::kll::{DEFAULT_K, KllSketch};
use crate::error::{DetectorError, Result};

/// Sizes of the sketches inside a [`ColumnSummary`]; summaries merge only with equal sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SummaryConfig {
    /// KLL accuracy parameter (rank error ≈ 1.65 % at 200).
    pub k: u16,
    /// Frequent-items counters (exact up to this many distinct categories).
    pub frequent_capacity: usize,
}

impl Default for SummaryConfig {
    fn default() -> Self {
        Self {
            k: DEFAULT_K,
            frequent_capacity: DEFAULT_CAPACITY,
        }
    }
}

/// A mergeable summary of one column.
///
/// Every value offered counts in `rows`. A missing value (`push_missing`, or NaN, which data
/// frames use for missing) counts in `missing`; ±infinity counts in `infinite` and is kept out
/// of the sketch and the sum, so one bad reading cannot poison them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnSummary {
    rows: u64,
    missing: u64,
    infinite: u64,
    /// Neumaier-compensated sum of the finite numbers: mergeable without losing precision.
    sum: f64,
    compensation: f64,
    numbers: KllSketch,
    categories: FrequentItems,
}

impl Default for ColumnSummary {
    fn default() -> Self {
        Self::new(SummaryConfig::default()).expect("default config is valid")
    }
}

impl ColumnSummary {
    /// An empty summary.
    pub fn new(config: SummaryConfig) -> Result<Self> {
        Ok(Self {
            rows: 0,
            missing: 0,
            infinite: 0,
            sum: 0.0,
            compensation: 0.0,
            numbers: KllSketch::new(config.k)?,
            categories: FrequentItems::new(config.frequent_capacity)?,
        })
    }

    /// The sketch sizes.
    pub fn config(&self) -> SummaryConfig {
        SummaryConfig {
            k: self.numbers.k(),
            frequent_capacity: self.categories.capacity(),
        }
    }

    fn add_to_sum(&mut self, x: f64) {
        let t = self.sum + x;
        self.compensation += if self.sum.abs() >= x.abs() {
            (self.sum - t) + x
        } else {
            (x - t) + self.sum
        };
        self.sum = t;
    }

    /// Adds a number (NaN counts as missing, ±infinity as infinite).
    pub fn push_number(&mut self, x: f64) {
        self.rows += 1;
        if x.is_nan() {
            self.missing += 1;
        } else if x.is_infinite() {
            self.infinite += 1;
        } else {
            self.add_to_sum(x);
            // Cannot fail: x is finite.
            let _ = self.numbers.insert(x);
        }
    }

    /// Adds a category.
    pub fn push_category(&mut self, item: &str) {
        self.rows += 1;
        self.categories.insert(item);
    }

    /// Adds a missing value.
    pub fn push_missing(&mut self) {
        self.rows += 1;
        self.missing += 1;
    }

    /// Adds everything `other` saw. Sketch sizes must match.
    pub fn merge(&mut self, other: &ColumnSummary) -> Result<()> {
        if other.config() != self.config() {
            return Err(DetectorError::InvalidInput(format!(
                "cannot merge column summaries with {:?} and {:?}",
                self.config(),
                other.config()
            )));
        }
        self.numbers.merge(&other.numbers)?;
        self.categories.merge(&other.categories)?;
        self.rows += other.rows;
        self.missing += other.missing;
        self.infinite += other.infinite;
        self.add_to_sum(other.sum);
        self.compensation += other.compensation;
        Ok(())
    }

    /// Values offered, of any kind.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Missing values (explicit or NaN).
    pub fn missing(&self) -> u64 {
        self.missing
    }

    /// Share of missing values among the rows (0 when there are none).
    pub fn missing_share(&self) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            self.missing as f64 / self.rows as f64
        }
    }

    /// ±infinite numbers.
    pub fn infinite(&self) -> u64 {
        self.infinite
    }

    /// Finite numbers.
    pub fn numeric_count(&self) -> u64 {
        self.numbers.count()
    }

    /// Categories.
    pub fn category_count(&self) -> u64 {
        self.categories.count()
    }

    /// Exact sum of the finite numbers (compensated).
    pub fn sum(&self) -> f64 {
        self.sum + self.compensation
    }

    /// Mean of the finite numbers, `None` without any.
    pub fn mean(&self) -> Option<f64> {
        let n = self.numbers.count();
        (n > 0).then(|| self.sum() / n as f64)
    }

    /// The quantile sketch of the finite numbers (min and max in it are exact).
    pub fn numbers(&self) -> &KllSketch {
        &self.numbers
    }

    /// The frequent-items summary of the categories.
    pub fn categories(&self) -> &FrequentItems {
        &self.categories
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_totals_are_exact_after_merges() {
        let mut parts: Vec<ColumnSummary> = (0..3).map(|_| ColumnSummary::default()).collect();
        for i in 0..3000u32 {
            let p = &mut parts[(i % 3) as usize];
            match i % 10 {
                0 => p.push_number(f64::NAN),
                1 => p.push_missing(),
                2 => p.push_number(f64::INFINITY),
                3 => p.push_category(if i % 20 == 3 { "red" } else { "blue" }),
                _ => p.push_number(f64::from(i) * 0.1),
            }
        }
        let mut all = parts[2].clone();
        all.merge(&parts[0]).unwrap();
        all.merge(&parts[1]).unwrap();
        assert_eq!(all.rows(), 3000);
        assert_eq!(all.missing(), 600);
        assert_eq!(all.missing_share(), 0.2);
        assert_eq!(all.infinite(), 300);
        assert_eq!(all.category_count(), 300);
        assert_eq!(all.categories().estimate("red"), 150);
        assert_eq!(all.numeric_count(), 1800);
        let exact: f64 = (0..3000u32)
            .filter(|i| i % 10 >= 4)
            .map(|i| f64::from(i) * 0.1)
            .sum();
        assert!((all.sum() - exact).abs() < 1e-9 * exact);
        assert_eq!(all.numbers().max(), Some(f64::from(2999) * 0.1));
        let back: ColumnSummary =
            serde_json::from_str(&serde_json::to_string(&all).unwrap()).unwrap();
        assert_eq!(back.rows(), all.rows());
        assert_eq!(back.numbers().count(), all.numbers().count());
        let other = ColumnSummary::new(SummaryConfig {
            k: 100,
            ..SummaryConfig::default()
        });
        assert!(all.merge(&other.unwrap()).is_err());
    }
}
