//! Drift tests on sketches: the centre compares merged summaries of any two time ranges
//! without the raw data.
//!
//! - KS: the statistic is `sup |F_ref − F_cur|` over the sketches' estimated CDFs. Each CDF is
//!   within its sketch's normalized rank error `ε` of the true one, so the exact statistic lies
//!   within `statistic ± (ε_ref + ε_cur)` ([`SketchKs::error_bound`]); the p-value is given at
//!   the statistic and at both ends of that interval.
//! - PSI, KL, Jensen–Shannon and Hellinger on ten reference-quantile bins whose edges are the
//!   reference sketch's quantiles, through the same [`crate::drift::binned`] functions the
//!   exact tests use. Each bin proportion is within `2ε` of the exact proportion for the same
//!   edges; the resulting error on the distances is measured in `tests/sketch_accuracy.rs`.
//!
//! While a sketch is still exact (at most `k` values) the results equal the exact tests'.

use serde::Serialize;

use super::frequent::FrequentItems;
use super::kll::{KllSketch, SortedView};
use crate::drift::binned::{self, NUMERIC_BINS};
use crate::drift::ks::{KsMethod, ks_pvalue, ks_statistic_sorted};
use crate::error::{DetectorError, Result};

/// KS test between two sketches.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SketchKs {
    /// `sup |F_ref − F_cur|` on the sketch CDFs.
    pub statistic: f64,
    /// The exact statistic lies within `statistic ± error_bound` (99 % confidence per sketch).
    pub error_bound: f64,
    /// p-value at `statistic` (scipy's method `auto` while both sketches are exact,
    /// asymptotic otherwise).
    pub p_value: f64,
    /// p-value at `statistic + error_bound` (the smallest the exact p-value can be).
    pub p_value_low: f64,
    /// p-value at `statistic − error_bound` (the largest the exact p-value can be).
    pub p_value_high: f64,
}

/// Binned distances between two sketches.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SketchBinned {
    /// Bin labels: the interior edges for numbers, the categories for categoricals.
    pub bins: Vec<String>,
    /// Reference proportion per bin.
    pub reference: Vec<f64>,
    /// Current proportion per bin.
    pub current: Vec<f64>,
    /// Population stability index.
    pub psi: f64,
    /// Kullback–Leibler divergence of current from reference.
    pub kl: f64,
    /// Jensen–Shannon distance.
    pub jensenshannon: f64,
    /// Hellinger distance.
    pub hellinger: f64,
}

impl SketchBinned {
    fn from_proportions(bins: Vec<String>, reference: Vec<f64>, current: Vec<f64>) -> Self {
        Self {
            psi: binned::psi(&reference, &current),
            kl: binned::kl(&reference, &current),
            jensenshannon: binned::jensenshannon(&reference, &current),
            hellinger: binned::hellinger(&reference, &current),
            bins,
            reference,
            current,
        }
    }
}

fn views(reference: &KllSketch, current: &KllSketch) -> Result<(SortedView, SortedView)> {
    let empty = |what: &str| DetectorError::Empty(format!("{what} sketch"));
    let r = reference.sorted_view().map_err(|_| empty("reference"))?;
    let c = current.sorted_view().map_err(|_| empty("current"))?;
    Ok((r, c))
}

/// Two-sample KS test on two quantile sketches; empty sketches are refused.
pub fn ks(reference: &KllSketch, current: &KllSketch) -> Result<SketchKs> {
    let (r, c) = views(reference, current)?;
    let (n, m) = (reference.count() as usize, current.count() as usize);
    if let (Some(a), Some(b)) = (
        reference.exact_sorted_values(),
        current.exact_sorted_values(),
    ) {
        let d = ks_statistic_sorted(&a, &b);
        let p = ks_pvalue(d, n, m, KsMethod::Auto);
        return Ok(SketchKs {
            statistic: p.statistic,
            error_bound: 0.0,
            p_value: p.p_value,
            p_value_low: p.p_value,
            p_value_high: p.p_value,
        });
    }
    // The CDFs are step functions: the supremum is reached at a step of either one.
    let statistic = r
        .values()
        .iter()
        .chain(c.values())
        .map(|&x| (r.cdf(x) - c.cdf(x)).abs())
        .fold(0.0, f64::max);
    let error_bound = reference.normalized_rank_error() + current.normalized_rank_error();
    let p = |d: f64| ks_pvalue(d.clamp(0.0, 1.0), n, m, KsMethod::Asymptotic).p_value;
    Ok(SketchKs {
        statistic,
        error_bound,
        p_value: p(statistic),
        p_value_low: p(statistic + error_bound),
        p_value_high: p(statistic - error_bound),
    })
}

/// PSI, KL, Jensen–Shannon and Hellinger on `bins` reference-quantile bins of two sketches
/// ([`NUMERIC_BINS`] = 10 matches the exact tests).
pub fn binned_numeric(
    reference: &KllSketch,
    current: &KllSketch,
    bins: usize,
) -> Result<SketchBinned> {
    if bins < 2 {
        return Err(DetectorError::InvalidParameter(format!(
            "need at least 2 bins, got {bins}"
        )));
    }
    let (r, c) = views(reference, current)?;
    let edges = match reference.exact_sorted_values() {
        Some(sorted) => binned::quantile_edges(&sorted, bins),
        None => (1..bins)
            .map(|i| r.quantile(i as f64 / bins as f64))
            .collect(),
    };
    // Bin i is [edge_i, edge_(i+1)), as binned::bin_counts counts.
    let proportions = |v: &SortedView| {
        let mut below: Vec<f64> = edges.iter().map(|&e| v.cdf_below(e)).collect();
        below.insert(0, 0.0);
        below.push(1.0);
        below
            .windows(2)
            .map(|w| (w[1] - w[0]).max(0.0))
            .collect::<Vec<f64>>()
    };
    let labels = edges.iter().map(|e| e.to_string()).collect();
    Ok(SketchBinned::from_proportions(
        labels,
        proportions(&r),
        proportions(&c),
    ))
}

/// [`binned_numeric`] with the exact tests' ten bins.
pub fn binned_numeric_default(reference: &KllSketch, current: &KllSketch) -> Result<SketchBinned> {
    binned_numeric(reference, current, NUMERIC_BINS)
}

/// PSI, KL, Jensen–Shannon and Hellinger with a bin per category seen in either summary. The
/// mass the summaries no longer track (when they had more distinct categories than counters)
/// goes into a final bin named `"(other)"`; with exact summaries the result is exact.
pub fn binned_categorical(
    reference: &FrequentItems,
    current: &FrequentItems,
) -> Result<SketchBinned> {
    if reference.count() == 0 {
        return Err(DetectorError::Empty("reference categories".into()));
    }
    if current.count() == 0 {
        return Err(DetectorError::Empty("current categories".into()));
    }
    let mut labels: Vec<String> = reference
        .items()
        .iter()
        .chain(current.items().iter())
        .map(|(k, _)| (*k).to_owned())
        .collect();
    labels.sort();
    labels.dedup();
    let shares = |f: &FrequentItems| {
        let n = f.count() as f64;
        let mut p: Vec<f64> = labels.iter().map(|l| f.estimate(l) as f64 / n).collect();
        let other = 1.0 - p.iter().sum::<f64>();
        p.push(other.max(0.0));
        p
    };
    let (mut p, mut q) = (shares(reference), shares(current));
    if p.last() == Some(&0.0) && q.last() == Some(&0.0) {
        p.pop();
        q.pop();
    } else {
        labels.push("(other)".into());
    }
    Ok(SketchBinned::from_proportions(labels, p, q))
}
