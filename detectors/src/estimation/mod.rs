//! Degradation before labels arrive, as NannyML 0.13 computes it: performance estimated from
//! the model's own scores (CBPE for classifiers, DLE for regressors) and multivariate drift
//! from PCA reconstruction error. Shared here: size-based chunks, the reference-chunk
//! thresholds (mean ± 3σ of the reference chunks' values) and the per-chunk result row.
//!
//! What each method can and cannot see:
//! - CBPE trusts the (calibrated) scores. It follows performance changes caused by covariate
//!   shift (the inputs move to where the model is less sure), but not concept drift: when only
//!   P(y|x) changes, the scores keep their distribution and the estimate stays flat while the
//!   realised performance falls. Only labels show concept drift.
//! - DLE learns where the regressor's errors are large from the reference; the same limit holds.
//! - Reconstruction error sees changes in how the inputs relate to each other (a broken
//!   correlation) that no single feature's drift test shows, but not a change in P(y|x).

pub mod cbpe;
pub mod cbpe_multiclass;
pub mod dle;
pub mod isotonic;
pub mod reconstruction;

use std::ops::Range;

use serde::Serialize;

/// NannyML's `SAMPLING_ERROR_RANGE`: confidence bounds are the value ± 3 sampling errors.
pub const SAMPLING_ERROR_RANGE: f64 = 3.0;

/// NannyML's `StandardDeviationThreshold(3, 3)`: thresholds are the mean ± 3 population
/// standard deviations of the reference chunks' values.
pub const THRESHOLD_STD_MULTIPLIER: f64 = 3.0;

/// The rows of consecutive chunks of `size` rows; a trailing partial chunk is kept as its own
/// chunk (NannyML's `SizeBasedChunker(incomplete='keep')`).
pub fn size_chunks(rows: usize, size: usize) -> Vec<Range<usize>> {
    if size == 0 {
        return Vec::new();
    }
    (0..rows.div_ceil(size))
        .map(|i| i * size..((i + 1) * size).min(rows))
        .collect()
}

/// What a metric's value can be: thresholds beyond a limit are moved onto it (or dropped).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricRange {
    /// The smallest possible value, if any.
    pub lower: Option<f64>,
    /// The largest possible value, if any.
    pub upper: Option<f64>,
    /// A threshold at or beyond a limit is dropped (`None`) instead of moved onto the limit.
    pub drop_at_limit: bool,
}

impl MetricRange {
    /// Classification metrics: [0, 1].
    pub const UNIT: MetricRange = MetricRange {
        lower: Some(0.0),
        upper: Some(1.0),
        drop_at_limit: false,
    };
    /// Errors (MAE, RMSE): at least 0.
    pub const NON_NEGATIVE: MetricRange = MetricRange {
        lower: Some(0.0),
        upper: None,
        drop_at_limit: false,
    };
    /// Reconstruction error: a lower threshold at or below 0 means no lower threshold.
    pub const NON_NEGATIVE_DROPPED: MetricRange = MetricRange {
        lower: Some(0.0),
        upper: None,
        drop_at_limit: true,
    };

    fn clip(&self, v: f64) -> f64 {
        let v = self.lower.map_or(v, |l| v.max(l));
        self.upper.map_or(v, |u| v.min(u))
    }
}

/// Alert thresholds from the reference chunks; `None` is "no threshold on this side".
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// Below this the value alerts.
    pub lower: Option<f64>,
    /// Above this the value alerts.
    pub upper: Option<f64>,
}

impl Thresholds {
    /// Mean ± 3 population standard deviations of the reference chunks' values (`NaN`s left
    /// out, as numpy's `nanmean`/`nanstd`), then limited to the metric's range.
    pub fn from_reference(values: &[f64], range: MetricRange) -> Thresholds {
        let present: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        if present.is_empty() {
            return Thresholds {
                lower: None,
                upper: None,
            };
        }
        let n = present.len() as f64;
        let mean = present.iter().sum::<f64>() / n;
        let std = (present.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        let mut lower = Some(mean - THRESHOLD_STD_MULTIPLIER * std);
        let mut upper = Some(mean + THRESHOLD_STD_MULTIPLIER * std);
        if let (Some(limit), Some(l)) = (range.lower, lower)
            && l <= limit
        {
            lower = (!range.drop_at_limit).then_some(limit);
        }
        if let (Some(limit), Some(u)) = (range.upper, upper)
            && u >= limit
        {
            upper = (!range.drop_at_limit).then_some(limit);
        }
        Thresholds { lower, upper }
    }

    /// CBPE, DLE and realised performance: the value is strictly outside the thresholds.
    pub fn outside(&self, value: f64) -> bool {
        self.lower.is_some_and(|l| value < l) || self.upper.is_some_and(|u| value > u)
    }

    /// Reconstruction error: the value is not strictly between them (equality alerts).
    pub fn not_strictly_inside(&self, value: f64) -> bool {
        !(self.lower.is_none_or(|l| l < value) && self.upper.is_none_or(|u| value < u))
    }
}

/// What a chunk's sampling error is made of: SE = std / √(n · fraction).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SamplingErrorComponents {
    /// Standard deviation of the per-row contributions on the reference.
    pub std: f64,
    /// Share of reference rows that contribute.
    pub fraction: f64,
}

impl SamplingErrorComponents {
    /// The sampling error for a chunk of `rows` rows.
    pub fn for_rows(&self, rows: usize) -> f64 {
        self.std / (rows as f64 * self.fraction).sqrt()
    }
}

/// One metric on one chunk: the value, its sampling error and bands, the thresholds and
/// whether it alerts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkValue {
    /// Chunk number, from 0.
    pub chunk: usize,
    /// First row of the chunk.
    pub start: usize,
    /// Rows in the chunk.
    pub rows: usize,
    /// The estimated (or measured) value; `None` where the chunk leaves it undefined.
    pub value: Option<f64>,
    /// Its sampling error for a chunk of this size.
    pub sampling_error: f64,
    /// `value - 3 · sampling_error`, within the metric's range.
    pub lower_confidence_bound: Option<f64>,
    /// `value + 3 · sampling_error`, within the metric's range.
    pub upper_confidence_bound: Option<f64>,
    /// The reference thresholds.
    pub thresholds: Thresholds,
    /// Whether the value is beyond the thresholds.
    pub alert: bool,
}

impl ChunkValue {
    /// A row for `value` on the chunk `rows`, with bands clipped to `range` and the alert
    /// rule of CBPE/DLE (strictly outside).
    fn new(
        chunk: usize,
        rows: &Range<usize>,
        value: Option<f64>,
        sampling_error: f64,
        range: MetricRange,
        thresholds: Thresholds,
    ) -> ChunkValue {
        let band =
            |sign: f64| value.map(|v| range.clip(v + sign * SAMPLING_ERROR_RANGE * sampling_error));
        ChunkValue {
            chunk,
            start: rows.start,
            rows: rows.len(),
            value,
            sampling_error,
            lower_confidence_bound: band(-1.0),
            upper_confidence_bound: band(1.0),
            thresholds,
            alert: value.is_some_and(|v| thresholds.outside(v)),
        }
    }
}

/// Population standard deviation (numpy's default `ddof=0`).
fn std_population(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let (n, sum) = values
        .clone()
        .fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
    if n == 0 {
        return f64::NAN;
    }
    let mean = sum / n as f64;
    (values.map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_the_partial_tail() {
        assert_eq!(
            size_chunks(2500, 1000),
            vec![0..1000, 1000..2000, 2000..2500]
        );
        assert_eq!(size_chunks(2000, 1000), vec![0..1000, 1000..2000]);
        assert!(size_chunks(10, 0).is_empty());
    }

    #[test]
    fn thresholds_are_limited_to_the_range() {
        let t = Thresholds::from_reference(&[0.9, 1.0, 0.95, f64::NAN], MetricRange::UNIT);
        assert_eq!(t.upper, Some(1.0));
        assert!(t.lower.is_some_and(|l| l > 0.7 && l < 0.9));
        let d = Thresholds::from_reference(&[0.0, 1.0], MetricRange::NON_NEGATIVE_DROPPED);
        assert_eq!(d.lower, None);
        assert_eq!(d.upper, Some(2.0));
        assert!(d.not_strictly_inside(2.0));
        assert!(!d.outside(2.0));
        assert!(d.outside(2.1));
    }
}
