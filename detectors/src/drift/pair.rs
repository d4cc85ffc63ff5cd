//! A reference and a current sample of one column, prepared once (sorted, binned, counted) so
//! that every drift test on the pair reuses the work; also the automatic choice of test.

use std::cell::OnceCell;
use std::collections::BTreeMap;

use super::TestOutcome;
use super::binned::{self, NUMERIC_BINS};
use super::categorical::{chisquare, ztest};
use super::numeric::{
    energy_sorted, ks_sorted, mannwhitney_sorted, wasserstein_norm_sorted, wasserstein_sorted,
};
use super::sort::sorted;
use super::test::DriftTest;
use crate::error::{DetectorError, Result, check_finite};

/// Reference size up to which "auto" uses statistical tests; above it, distances (which do not
/// flag negligible shifts just because the sample is large).
pub const AUTO_SMALL_N: usize = 1000;
/// A numeric column needs more distinct reference values than this to be treated as continuous.
pub const AUTO_MIN_DISTINCT: usize = 5;

/// The two samples of a numeric column. Each is sorted only when a test needs the order
/// (KS, Mann–Whitney, the ECDF distances, value counts); the binned distances select their
/// reference-quantile edges and bin both samples as given, so PSI alone never sorts.
#[derive(Debug, Clone)]
pub struct NumericPair {
    reference: Vec<f64>,
    current: Vec<f64>,
    reference_sorted: OnceCell<Vec<f64>>,
    current_sorted: OnceCell<Vec<f64>>,
    reference_distinct: OnceCell<usize>,
    bins: OnceCell<(Vec<f64>, Vec<f64>)>,
}

/// The two samples of a categorical column as counts over the union of categories.
#[derive(Debug, Clone)]
pub struct CategoricalPair {
    categories: Vec<String>,
    reference: Vec<f64>,
    current: Vec<f64>,
    reference_distinct: usize,
}

/// A column's reference and current samples, ready for any drift test.
#[derive(Debug, Clone)]
pub enum ColumnPair {
    /// Numbers.
    Numeric(NumericPair),
    /// Categories (text).
    Categorical(CategoricalPair),
}

fn count_distinct_sorted(v: &[f64]) -> usize {
    if v.is_empty() {
        return 0;
    }
    1 + v.windows(2).filter(|w| w[0] != w[1]).count()
}

impl NumericPair {
    /// Prepares two numeric samples; refuses empty samples and NaN or infinite values.
    pub fn new(reference: &[f64], current: &[f64]) -> Result<Self> {
        Self::from_values(reference.to_vec(), current.to_vec())
    }

    /// [`NumericPair::new`] taking ownership of the samples, which saves a copy of each.
    pub fn from_values(reference: Vec<f64>, current: Vec<f64>) -> Result<Self> {
        check_finite(&reference, "reference sample")?;
        check_finite(&current, "current sample")?;
        Ok(NumericPair {
            reference,
            current,
            reference_sorted: OnceCell::new(),
            current_sorted: OnceCell::new(),
            reference_distinct: OnceCell::new(),
            bins: OnceCell::new(),
        })
    }

    /// Takes the reference's sorted order from the caller (the same values, ascending), which
    /// saves sorting a reference used for many comparisons again each time.
    pub fn with_sorted_reference(self, sorted: Vec<f64>) -> Self {
        debug_assert_eq!(sorted.len(), self.reference.len());
        let cell = OnceCell::new();
        let _ = cell.set(sorted);
        NumericPair {
            reference_sorted: cell,
            ..self
        }
    }

    /// The sorted reference sample (sorted on first use).
    pub fn reference(&self) -> &[f64] {
        self.reference_sorted
            .get_or_init(|| sorted(&self.reference))
    }

    /// The sorted current sample (sorted on first use).
    pub fn current(&self) -> &[f64] {
        self.current_sorted.get_or_init(|| sorted(&self.current))
    }

    /// Distinct values in the reference.
    pub fn reference_distinct(&self) -> usize {
        *self
            .reference_distinct
            .get_or_init(|| count_distinct_sorted(self.reference()))
    }

    /// Share of current values outside `[min(ref), max(ref)]`.
    pub fn out_of_range_share(&self) -> f64 {
        let outside = match (self.reference_sorted.get(), self.current_sorted.get()) {
            (Some(r), Some(c)) => {
                let (lo, hi) = (r[0], r[r.len() - 1]);
                c.partition_point(|&v| v < lo) + c.len() - c.partition_point(|&v| v <= hi)
            }
            _ => {
                let (lo, hi) = match self.reference_sorted.get() {
                    Some(r) => (r[0], r[r.len() - 1]),
                    None => self
                        .reference
                        .iter()
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                            (lo.min(v), hi.max(v))
                        }),
                };
                self.current
                    .iter()
                    .map(|&v| usize::from(v < lo || v > hi))
                    .sum()
            }
        };
        outside as f64 / self.current.len() as f64
    }

    /// Proportions of both samples in the ten reference-quantile bins. Uses the sorted samples
    /// where a test already sorted them and never sorts for this alone; the counts, and so the
    /// proportions, are the same either way.
    pub fn binned_proportions(&self) -> (&[f64], &[f64]) {
        let (p, q) = self.bins.get_or_init(|| {
            let (edges, p) = match self.reference_sorted.get() {
                Some(r) => {
                    let edges = binned::quantile_edges(r, NUMERIC_BINS);
                    let p = binned::bin_counts_sorted(&edges, r);
                    (edges, p)
                }
                None => binned::quantile_bins_unsorted(&self.reference, NUMERIC_BINS),
            };
            let q = match self.current_sorted.get() {
                Some(c) => binned::bin_counts_sorted(&edges, c),
                None => binned::bin_counts(&edges, &self.current),
            };
            (
                binned::proportions(&p, self.reference.len() as f64),
                binned::proportions(&q, self.current.len() as f64),
            )
        });
        (p, q)
    }

    /// Counts per distinct value of the pooled samples, in ascending order.
    pub fn value_counts(&self) -> (Vec<f64>, Vec<f64>) {
        let (mut rc, mut cc) = (Vec::new(), Vec::new());
        let (a, b) = (self.reference(), self.current());
        let (mut i, mut j) = (0usize, 0usize);
        while i < a.len() || j < b.len() {
            let v = match (a.get(i), b.get(j)) {
                (Some(&x), Some(&y)) => x.min(y),
                (Some(&x), None) => x,
                (None, Some(&y)) => y,
                (None, None) => break,
            };
            let (i0, j0) = (i, j);
            while i < a.len() && a[i] <= v {
                i += 1;
            }
            while j < b.len() && b[j] <= v {
                j += 1;
            }
            rc.push((i - i0) as f64);
            cc.push((j - j0) as f64);
        }
        (rc, cc)
    }

    /// Whether the count-based tests (chi-square, z-test) apply: few distinct reference values.
    pub fn is_discrete(&self) -> bool {
        self.reference_distinct() <= AUTO_MIN_DISTINCT
    }
}

impl CategoricalPair {
    /// Counts two samples of categories over the sorted union of categories.
    pub fn new<'a>(
        reference: impl IntoIterator<Item = &'a str>,
        current: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self> {
        let mut counts: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for r in reference {
            counts.entry(r).or_default().0 += 1.0;
        }
        for c in current {
            counts.entry(c).or_default().1 += 1.0;
        }
        let categories = counts.keys().map(|k| k.to_string()).collect();
        let (reference, current) = counts.values().copied().unzip();
        Self::from_counts(categories, reference, current)
    }

    /// A pair from counts already made (e.g. merged frequent-item sketches): `categories` in
    /// sorted order, one count per category and sample.
    pub fn from_counts(
        categories: Vec<String>,
        reference: Vec<f64>,
        current: Vec<f64>,
    ) -> Result<Self> {
        if categories.len() != reference.len() || categories.len() != current.len() {
            return Err(DetectorError::InvalidInput(
                "one count per category and sample is needed".into(),
            ));
        }
        check_finite(&reference, "reference counts")?;
        check_finite(&current, "current counts")?;
        if reference.iter().chain(&current).any(|&c| c < 0.0) {
            return Err(DetectorError::InvalidInput(
                "counts must not be negative".into(),
            ));
        }
        if reference.iter().sum::<f64>() <= 0.0 {
            return Err(DetectorError::Empty("reference sample".into()));
        }
        if current.iter().sum::<f64>() <= 0.0 {
            return Err(DetectorError::Empty("current sample".into()));
        }
        let reference_distinct = reference.iter().filter(|&&c| c > 0.0).count();
        Ok(CategoricalPair {
            categories,
            reference,
            current,
            reference_distinct,
        })
    }

    /// The sorted union of categories.
    pub fn categories(&self) -> &[String] {
        &self.categories
    }

    /// Share of current values in categories the reference never had.
    pub fn new_category_share(&self) -> f64 {
        let total: f64 = self.current.iter().sum();
        let new: f64 = self
            .reference
            .iter()
            .zip(&self.current)
            .filter(|(r, _)| **r == 0.0)
            .map(|(_, c)| c)
            .sum();
        new / total
    }
}

impl ColumnPair {
    /// Number of non-missing reference values.
    pub fn reference_len(&self) -> usize {
        match self {
            ColumnPair::Numeric(p) => p.reference.len(),
            ColumnPair::Categorical(p) => p.reference.iter().sum::<f64>() as usize,
        }
    }

    /// Distinct non-missing reference values.
    pub fn reference_distinct(&self) -> usize {
        match self {
            ColumnPair::Numeric(p) => p.reference_distinct(),
            ColumnPair::Categorical(p) => p.reference_distinct,
        }
    }

    /// Non-missing sizes of the reference and current samples.
    pub fn sample_sizes(&self) -> (f64, f64) {
        match self {
            ColumnPair::Numeric(p) => (p.reference.len() as f64, p.current.len() as f64),
            ColumnPair::Categorical(p) => (p.reference.iter().sum(), p.current.iter().sum()),
        }
    }

    /// Shares of the first category (smallest value) in the reference and current samples.
    pub fn first_category_shares(&self) -> (f64, f64) {
        let (n1, n2) = self.sample_sizes();
        match self {
            ColumnPair::Numeric(p) => {
                let (rc, cc) = p.value_counts();
                (rc[0] / n1, cc[0] / n2)
            }
            ColumnPair::Categorical(p) => (p.reference[0] / n1, p.current[0] / n2),
        }
    }

    /// Whether `test` can run on this column.
    pub fn applies(&self, test: DriftTest) -> bool {
        match (self, test) {
            (ColumnPair::Numeric(p), DriftTest::ChiSquare | DriftTest::ZTest) => p.is_discrete(),
            (ColumnPair::Numeric(_), _) => true,
            (ColumnPair::Categorical(_), t) => matches!(
                t,
                DriftTest::ChiSquare
                    | DriftTest::ZTest
                    | DriftTest::Psi
                    | DriftTest::Kl
                    | DriftTest::JensenShannon
                    | DriftTest::Hellinger
            ),
        }
    }

    /// Every test that applies to this column, in catalogue order.
    pub fn applicable_tests(&self) -> Vec<DriftTest> {
        DriftTest::ALL
            .into_iter()
            .filter(|&t| self.applies(t))
            .collect()
    }

    /// The automatic choice: with at most 1000 reference values, KS for a continuous numeric
    /// column, else chi-square (more than two values) or the z-test; above 1000, the
    /// normalised Wasserstein distance for continuous columns and Jensen–Shannon otherwise.
    pub fn auto_test(&self) -> DriftTest {
        let continuous = matches!(self, ColumnPair::Numeric(p) if !p.is_discrete());
        let distinct = self.reference_distinct();
        match (self.reference_len() <= AUTO_SMALL_N, continuous) {
            (true, true) => DriftTest::Ks,
            (true, false) if distinct > 2 => DriftTest::ChiSquare,
            (true, false) => DriftTest::ZTest,
            (false, true) => DriftTest::WassersteinNorm,
            (false, false) => DriftTest::JensenShannon,
        }
    }

    /// Runs one test; `NotApplicable` when the test does not fit the column.
    pub fn run(&self, test: DriftTest) -> Result<TestOutcome> {
        if !self.applies(test) {
            return Err(DetectorError::NotApplicable(format!(
                "{test} on a {} column",
                match self {
                    ColumnPair::Numeric(_) => "continuous numeric",
                    ColumnPair::Categorical(_) => "categorical",
                }
            )));
        }
        match self {
            ColumnPair::Numeric(p) => {
                let sorted = || (p.reference(), p.current());
                Ok(match test {
                    DriftTest::Ks => {
                        let (a, b) = sorted();
                        ks_sorted(a, b)
                    }
                    DriftTest::MannWhitney => {
                        let (a, b) = sorted();
                        mannwhitney_sorted(a, b)
                    }
                    DriftTest::Wasserstein => {
                        let (a, b) = sorted();
                        TestOutcome::distance(wasserstein_sorted(a, b))
                    }
                    DriftTest::WassersteinNorm => {
                        let (a, b) = sorted();
                        TestOutcome::distance(wasserstein_norm_sorted(a, b))
                    }
                    DriftTest::Energy => {
                        let (a, b) = sorted();
                        TestOutcome::distance(energy_sorted(a, b))
                    }
                    DriftTest::ChiSquare => {
                        let (rc, cc) = p.value_counts();
                        return chisquare(&rc, &cc);
                    }
                    DriftTest::ZTest => {
                        let (rc, cc) = p.value_counts();
                        let (n1, n2) = (p.reference.len() as f64, p.current.len() as f64);
                        return ztest(rc[0], n1, cc[0], n2);
                    }
                    binned_test => {
                        // Binned distances need neither sample sorted.
                        let (pp, qq) = p.binned_proportions();
                        TestOutcome::distance(binned_distance(binned_test, pp, qq))
                    }
                })
            }
            ColumnPair::Categorical(c) => {
                let (rn, cn): (f64, f64) = (c.reference.iter().sum(), c.current.iter().sum());
                match test {
                    DriftTest::ChiSquare => chisquare(&c.reference, &c.current),
                    DriftTest::ZTest => ztest(c.reference[0], rn, c.current[0], cn),
                    binned_test => {
                        let p = binned::proportions(&c.reference, rn);
                        let q = binned::proportions(&c.current, cn);
                        Ok(TestOutcome::distance(binned_distance(binned_test, &p, &q)))
                    }
                }
            }
        }
    }
}

fn binned_distance(test: DriftTest, p: &[f64], q: &[f64]) -> f64 {
    match test {
        DriftTest::Psi => binned::psi(p, q),
        DriftTest::Kl => binned::kl(p, q),
        DriftTest::JensenShannon => binned::jensenshannon(p, q),
        _ => binned::hellinger(p, q),
    }
}
