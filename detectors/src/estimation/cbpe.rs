//! Confidence-based performance estimation (NannyML's CBPE) for binary classifiers: with
//! calibrated probabilities p_i, a chunk's expected confusion matrix is TP = Σ_{ŷ=1} p,
//! FP = Σ_{ŷ=1} (1−p), FN = Σ_{ŷ=0} p, TN = Σ_{ŷ=0} (1−p), and every metric follows from it;
//! ROC AUC from the cumulative expected true positives along the score order. Sampling errors
//! come from the reference labels, thresholds from the realised metric on the reference chunks.
//! Also the realised metrics per chunk (NannyML's `PerformanceCalculator`), for comparison once
//! labels arrive.

use std::ops::Range;

use serde::Serialize;

use super::isotonic::{CalibrationDecision, IsotonicCalibrator, needs_calibration};
use super::{
    ChunkValue, MetricRange, SamplingErrorComponents, Thresholds, size_chunks, std_population,
};
use crate::error::{DetectorError, Result};

/// A binary classification metric CBPE estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassificationMetric {
    /// Area under the ROC curve.
    RocAuc,
    /// Share of correct predictions.
    Accuracy,
    /// TP / (TP + FP).
    Precision,
    /// TP / (TP + FN).
    Recall,
    /// TP / (TP + ½ (FP + FN)).
    F1,
    /// TN / (TN + FP).
    Specificity,
}

impl ClassificationMetric {
    /// Every metric, in NannyML's order.
    pub const ALL: [ClassificationMetric; 6] = [
        ClassificationMetric::RocAuc,
        ClassificationMetric::Accuracy,
        ClassificationMetric::F1,
        ClassificationMetric::Precision,
        ClassificationMetric::Recall,
        ClassificationMetric::Specificity,
    ];

    /// The metric's name as NannyML spells it.
    pub fn name(self) -> &'static str {
        match self {
            ClassificationMetric::RocAuc => "roc_auc",
            ClassificationMetric::Accuracy => "accuracy",
            ClassificationMetric::Precision => "precision",
            ClassificationMetric::Recall => "recall",
            ClassificationMetric::F1 => "f1",
            ClassificationMetric::Specificity => "specificity",
        }
    }

    /// The metric named `name`.
    pub fn parse(name: &str) -> Result<ClassificationMetric> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == name.trim())
            .ok_or_else(|| {
                DetectorError::InvalidParameter(format!(
                    "unknown classification metric '{name}'; use one of {}",
                    Self::ALL.map(|m| m.name()).join(", ")
                ))
            })
    }
}

/// Whether CBPE calibrates the scores before estimating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Calibration {
    /// As NannyML: isotonic if it lowers the cross-validated calibration error.
    #[default]
    Auto,
    /// Always isotonic.
    Isotonic,
    /// Take the scores as probabilities.
    None,
}

/// A binary classifier's outputs: the score (probability of the positive class) and the
/// predicted class of each row.
#[derive(Debug, Clone, Copy)]
pub struct BinaryOutputs<'a> {
    /// Score of each row.
    pub scores: &'a [f64],
    /// Predicted class of each row (true = positive).
    pub predicted: &'a [bool],
}

impl BinaryOutputs<'_> {
    fn check(&self, what: &str) -> Result<()> {
        if self.scores.len() != self.predicted.len() {
            return Err(DetectorError::InvalidInput(format!(
                "{what}: {} scores but {} predictions",
                self.scores.len(),
                self.predicted.len()
            )));
        }
        crate::error::check_finite(self.scores, &format!("{what} scores"))
    }

    fn slice(&self, rows: &Range<usize>) -> BinaryOutputs<'_> {
        BinaryOutputs {
            scores: &self.scores[rows.clone()],
            predicted: &self.predicted[rows.clone()],
        }
    }
}

/// One metric as fitted on the reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FittedMetric {
    /// The metric.
    pub metric: ClassificationMetric,
    /// Sampling-error components from the reference labels.
    pub sampling_error: SamplingErrorComponents,
    /// Thresholds from the realised metric on the reference chunks.
    pub thresholds: Thresholds,
}

/// CBPE fitted on a labelled reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cbpe {
    /// Whether (and why) the scores are calibrated.
    pub calibration: CalibrationDecision,
    /// The isotonic map, when calibrating.
    pub calibrator: Option<IsotonicCalibrator>,
    /// The metrics estimated.
    pub metrics: Vec<FittedMetric>,
    /// Rows per chunk.
    pub chunk_size: usize,
}

/// One metric's values on every chunk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricChunks {
    /// The metric.
    pub metric: ClassificationMetric,
    /// One row per chunk.
    pub chunks: Vec<ChunkValue>,
}

impl Cbpe {
    /// Fits on the reference outputs and their labels, with chunks of `chunk_size` rows.
    pub fn fit(
        reference: BinaryOutputs<'_>,
        actual: &[bool],
        chunk_size: usize,
        metrics: &[ClassificationMetric],
        calibration: Calibration,
    ) -> Result<Cbpe> {
        reference.check("reference")?;
        if actual.len() != reference.scores.len() {
            return Err(DetectorError::InvalidInput(format!(
                "reference: {} labels but {} scores",
                actual.len(),
                reference.scores.len()
            )));
        }
        if chunk_size == 0 {
            return Err(DetectorError::InvalidParameter(
                "chunk size must be at least 1".into(),
            ));
        }
        if metrics.is_empty() {
            return Err(DetectorError::InvalidParameter(
                "no metric to estimate".into(),
            ));
        }
        let decision = match calibration {
            Calibration::Auto => needs_calibration(reference.scores, actual)?,
            forced => CalibrationDecision {
                needs_calibration: forced == Calibration::Isotonic,
                ece_before: None,
                ece_after: None,
            },
        };
        let calibrator = if decision.needs_calibration {
            Some(IsotonicCalibrator::fit(reference.scores, actual)?)
        } else {
            None
        };
        let chunks = size_chunks(actual.len(), chunk_size);
        let metrics = metrics
            .iter()
            .map(|&metric| {
                let values: Vec<f64> = chunks
                    .iter()
                    .map(|r| {
                        realized(metric, &actual[r.clone()], reference.slice(r)).unwrap_or(f64::NAN)
                    })
                    .collect();
                FittedMetric {
                    metric,
                    sampling_error: sampling_error_components(metric, actual, reference),
                    thresholds: Thresholds::from_reference(&values, MetricRange::UNIT),
                }
            })
            .collect();
        Ok(Cbpe {
            calibration: decision,
            calibrator,
            metrics,
            chunk_size,
        })
    }

    /// The calibrated probability of a score.
    pub fn probability(&self, score: f64) -> f64 {
        self.calibrator
            .as_ref()
            .map_or(score, |c| c.calibrate(score))
    }

    /// Every fitted metric estimated on one chunk (numbered `chunk`, first row `start`).
    pub fn estimate_chunk(
        &self,
        chunk: usize,
        start: usize,
        outputs: BinaryOutputs<'_>,
    ) -> Result<Vec<(ClassificationMetric, ChunkValue)>> {
        outputs.check("chunk")?;
        if outputs.scores.is_empty() {
            return Err(DetectorError::Empty("chunk".into()));
        }
        let p: Vec<f64> = outputs
            .scores
            .iter()
            .map(|&s| self.probability(s))
            .collect();
        let rows = start..start + p.len();
        Ok(self
            .metrics
            .iter()
            .map(|f| {
                let value = estimate(f.metric, &p, outputs);
                let se = f.sampling_error.for_rows(p.len());
                let row = ChunkValue::new(chunk, &rows, value, se, MetricRange::UNIT, f.thresholds);
                (f.metric, row)
            })
            .collect())
    }

    /// Every fitted metric estimated on each chunk of `outputs` (labels are never needed).
    pub fn estimate(&self, outputs: BinaryOutputs<'_>) -> Result<Vec<MetricChunks>> {
        outputs.check("analysis")?;
        let mut per_metric: Vec<MetricChunks> = self
            .metrics
            .iter()
            .map(|f| MetricChunks {
                metric: f.metric,
                chunks: Vec::new(),
            })
            .collect();
        for (i, rows) in size_chunks(outputs.scores.len(), self.chunk_size)
            .into_iter()
            .enumerate()
        {
            for (slot, (_, row)) in per_metric.iter_mut().zip(self.estimate_chunk(
                i,
                rows.start,
                outputs.slice(&rows),
            )?) {
                slot.chunks.push(row);
            }
        }
        Ok(per_metric)
    }

    /// The realised metrics on each chunk, once labels are known (NannyML's
    /// `PerformanceCalculator`): same thresholds and sampling errors, the alert on the realised
    /// value.
    pub fn realized(
        &self,
        outputs: BinaryOutputs<'_>,
        actual: &[bool],
    ) -> Result<Vec<MetricChunks>> {
        outputs.check("labelled chunk")?;
        if actual.len() != outputs.scores.len() {
            return Err(DetectorError::InvalidInput(format!(
                "{} labels but {} scores",
                actual.len(),
                outputs.scores.len()
            )));
        }
        let chunks = size_chunks(actual.len(), self.chunk_size);
        Ok(self
            .metrics
            .iter()
            .map(|f| MetricChunks {
                metric: f.metric,
                chunks: chunks
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let value = realized(f.metric, &actual[r.clone()], outputs.slice(r));
                        let se = f.sampling_error.for_rows(r.len());
                        ChunkValue::new(i, r, value, se, MetricRange::UNIT, f.thresholds)
                    })
                    .collect(),
            })
            .collect())
    }
}

/// Counts of a labelled binary sample.
pub(super) struct Counts {
    pub(super) tp: f64,
    pub(super) fp: f64,
    pub(super) fn_: f64,
    pub(super) tn: f64,
}

pub(super) fn counts(actual: &[bool], predicted: &[bool]) -> Counts {
    let mut c = Counts {
        tp: 0.0,
        fp: 0.0,
        fn_: 0.0,
        tn: 0.0,
    };
    for (&y, &p) in actual.iter().zip(predicted) {
        match (y, p) {
            (true, true) => c.tp += 1.0,
            (false, true) => c.fp += 1.0,
            (true, false) => c.fn_ += 1.0,
            (false, false) => c.tn += 1.0,
        }
    }
    c
}

/// 0 where the denominator is 0 (scikit-learn's and NannyML's convention for these metrics).
fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 { 0.0 } else { num / den }
}

fn from_counts(metric: ClassificationMetric, c: &Counts) -> f64 {
    let n = c.tp + c.fp + c.fn_ + c.tn;
    match metric {
        ClassificationMetric::Accuracy => (c.tp + c.tn) / n,
        ClassificationMetric::Precision => ratio(c.tp, c.tp + c.fp),
        ClassificationMetric::Recall => ratio(c.tp, c.tp + c.fn_),
        ClassificationMetric::F1 => ratio(c.tp, c.tp + 0.5 * (c.fp + c.fn_)),
        ClassificationMetric::Specificity => ratio(c.tn, c.tn + c.fp),
        ClassificationMetric::RocAuc => unreachable!("ROC AUC is not a confusion-matrix metric"),
    }
}

/// The realised metric on labelled rows (ROC AUC on the raw scores); `None` where it is
/// undefined (ROC AUC with one class).
pub fn realized(
    metric: ClassificationMetric,
    actual: &[bool],
    outputs: BinaryOutputs<'_>,
) -> Option<f64> {
    if actual.is_empty() {
        return None;
    }
    match metric {
        ClassificationMetric::RocAuc => crate::performance::roc_auc(actual, outputs.scores).ok(),
        m => Some(from_counts(m, &counts(actual, outputs.predicted))),
    }
}

/// The estimated metric from calibrated probabilities `p` (and, for ROC AUC, the raw score
/// order); `None` for ROC AUC where the expected positives or negatives are 0.
pub(super) fn estimate(
    metric: ClassificationMetric,
    p: &[f64],
    outputs: BinaryOutputs<'_>,
) -> Option<f64> {
    if metric == ClassificationMetric::RocAuc {
        return estimated_roc_auc(p, outputs.scores);
    }
    let mut c = Counts {
        tp: 0.0,
        fp: 0.0,
        fn_: 0.0,
        tn: 0.0,
    };
    for (&pi, &yhat) in p.iter().zip(outputs.predicted) {
        if yhat {
            c.tp += pi;
            c.fp += 1.0 - pi;
        } else {
            c.fn_ += pi;
            c.tn += 1.0 - pi;
        }
    }
    Some(from_counts(metric, &c))
}

/// numpy's `round(x, 5)`: scale, round half to even, scale back.
fn round5(x: f64) -> f64 {
    (x * 1e5).round_ties_even() / 1e5
}

/// NannyML's estimated ROC AUC: rows by raw score descending, expected true positives the
/// running sum of p, false positives the rest, both rounded to 5 decimals; trapezoidal area.
fn estimated_roc_auc(p: &[f64], scores: &[f64]) -> Option<f64> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut tps = Vec::with_capacity(p.len() + 1);
    let mut fps = Vec::with_capacity(p.len() + 1);
    tps.push(0.0);
    fps.push(0.0);
    let mut cum = 0.0;
    for (k, &i) in order.iter().enumerate() {
        cum += p[i];
        tps.push(round5(cum));
        fps.push(round5((k + 1) as f64 - cum));
    }
    let (tp_all, fp_all) = (tps[p.len()], fps[p.len()]);
    if tp_all == 0.0 || fp_all == 0.0 {
        return None;
    }
    let mut area = 0.0;
    for k in 1..tps.len() {
        let (x0, x1) = (fps[k - 1] / fp_all, fps[k] / fp_all);
        let (y0, y1) = (tps[k - 1] / tp_all, tps[k] / tp_all);
        area += (x1 - x0) * (y1 + y0) / 2.0;
    }
    Some(area)
}

/// NannyML's sampling-error components of each metric, from the reference labels and raw
/// scores.
fn sampling_error_components(
    metric: ClassificationMetric,
    actual: &[bool],
    reference: BinaryOutputs<'_>,
) -> SamplingErrorComponents {
    let n = actual.len() as f64;
    let c = counts(actual, reference.predicted);
    // The std of `ones` values 1 and `zeros` values 0, each multiplied by `scale`.
    let binary_std = |ones: f64, zeros: f64, scale: f64| {
        let m = ones + zeros;
        let mean = ones / m;
        scale * (mean * (1.0 - mean)).sqrt()
    };
    match metric {
        ClassificationMetric::Accuracy => SamplingErrorComponents {
            std: binary_std(c.tp + c.tn, c.fp + c.fn_, 1.0),
            fraction: 1.0,
        },
        ClassificationMetric::Precision => SamplingErrorComponents {
            std: binary_std(c.tp, c.fp, 1.0),
            fraction: (c.tp + c.fp) / n,
        },
        ClassificationMetric::Recall => SamplingErrorComponents {
            std: binary_std(c.tp, c.fn_, 1.0),
            fraction: (c.tp + c.fn_) / n,
        },
        ClassificationMetric::Specificity => SamplingErrorComponents {
            std: binary_std(c.tn, c.fp, 1.0),
            fraction: (c.tn + c.fp) / n,
        },
        ClassificationMetric::F1 => {
            let m = c.tp + c.fn_ + c.fp;
            let k = m / ((c.fn_ + c.fp) * 0.5 + c.tp);
            SamplingErrorComponents {
                std: binary_std(c.tp, c.fn_ + c.fp, k),
                fraction: m / n,
            }
        }
        ClassificationMetric::RocAuc => roc_auc_components(actual, reference.scores),
    }
}

/// NannyML's rank-based ROC AUC components, quirk included: with the minority class as
/// positive (labels and scores flipped when positives are the majority), the distinct values
/// of `y · position` along the ascending score order lose their first element (0, which also
/// drops a positive at position 0); v_i = (R_i − i) / N_neg.
pub(super) fn roc_auc_components(actual: &[bool], scores: &[f64]) -> SamplingErrorComponents {
    let n = actual.len();
    let positives = actual.iter().filter(|&&y| y).count();
    let flip = positives as f64 / n as f64 > 0.5;
    let label = |i: usize| actual[i] != flip;
    let mut order: Vec<usize> = (0..n).collect();
    if flip {
        order.sort_by(|&a, &b| (1.0 - scores[a]).total_cmp(&(1.0 - scores[b])));
    } else {
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    }
    let pos = order.iter().filter(|&&i| label(i)).count();
    let neg = (n - pos) as f64;
    // y·r is 0 for every negative and for a positive at position 0; distinct values ascending.
    let ranks: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|&(r, &i)| label(i) && r > 0)
        .map(|(r, _)| r)
        .collect();
    let v = ranks
        .iter()
        .enumerate()
        .map(|(i, &r)| (r as f64 - i as f64) / neg);
    SamplingErrorComponents {
        std: std_population(v),
        fraction: pos as f64 / n as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfectly_calibrated_certain_scores_estimate_exactly() {
        let scores = [1.0, 1.0, 0.0, 0.0];
        let predicted = [true, false, false, true];
        let o = BinaryOutputs {
            scores: &scores,
            predicted: &predicted,
        };
        // TP=1, FN=1, TN=1, FP=1
        let acc = estimate(ClassificationMetric::Accuracy, &scores, o);
        assert_eq!(acc, Some(0.5));
        assert_eq!(
            estimate(ClassificationMetric::Precision, &scores, o),
            Some(0.5)
        );
        assert_eq!(estimated_roc_auc(&scores, &scores), Some(1.0));
    }

    #[test]
    fn unknown_metric_names_the_known_ones() {
        let e = ClassificationMetric::parse("auc").expect_err("unknown");
        assert!(e.to_string().contains("roc_auc, accuracy"), "{e}");
        assert_eq!(
            ClassificationMetric::parse(" f1").expect("known"),
            ClassificationMetric::F1
        );
    }
}
