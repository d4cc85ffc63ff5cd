//! CBPE for multiclass classifiers, as NannyML 0.13 computes it: each class's score is
//! calibrated one-vs-rest on the reference (isotonic, only where that lowers the calibration
//! error), the calibrated scores of a row are divided by their sum, and every metric is the
//! mean over the classes of the binary estimate one-vs-rest (class c against the rest, with
//! the row's calibrated probability of c); accuracy is the mean probability of the predicted
//! class. Sampling errors: √(Σ_c var_c / (n · fraction_c)) / C (× 1.2 for ROC AUC, NannyML's
//! empirical correction), accuracy std / √n; thresholds from the realised macro-averaged
//! metric on the reference chunks.

use serde::Serialize;

use super::cbpe::{self, BinaryOutputs, Calibration, ClassificationMetric, MetricChunks};
use super::isotonic::{CalibrationDecision, IsotonicCalibrator, needs_calibration};
use super::{ChunkValue, MetricRange, Thresholds, size_chunks, std_population};
use crate::error::{DetectorError, Result};

/// A multiclass classifier's outputs: per class a score column, and each row's predicted
/// class (an index into the classes).
#[derive(Debug, Clone, Copy)]
pub struct MulticlassOutputs<'a> {
    /// `scores[c][i]`: the score of class `c` for row `i`.
    pub scores: &'a [Vec<f64>],
    /// The predicted class of each row.
    pub predicted: &'a [usize],
}

impl MulticlassOutputs<'_> {
    fn rows(&self) -> usize {
        self.predicted.len()
    }

    fn check(&self, classes: usize, what: &str) -> Result<()> {
        if self.scores.len() != classes {
            return Err(DetectorError::InvalidInput(format!(
                "{what}: {} score columns for {classes} classes",
                self.scores.len()
            )));
        }
        for s in self.scores {
            if s.len() != self.predicted.len() {
                return Err(DetectorError::InvalidInput(format!(
                    "{what}: {} scores but {} predictions",
                    s.len(),
                    self.predicted.len()
                )));
            }
            crate::error::check_finite(s, &format!("{what} scores"))?;
        }
        if let Some(p) = self.predicted.iter().find(|&&p| p >= classes) {
            return Err(DetectorError::InvalidInput(format!(
                "{what}: predicted class {p} is not one of the {classes} classes"
            )));
        }
        Ok(())
    }

    /// The rows `range` of every column.
    fn slice(&self, range: std::ops::Range<usize>) -> (Vec<Vec<f64>>, &[usize]) {
        (
            self.scores
                .iter()
                .map(|s| s[range.clone()].to_vec())
                .collect(),
            &self.predicted[range],
        )
    }
}

/// How a metric's sampling error is made of the reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MulticlassSamplingError {
    /// Per class (variance, fraction of rows that contribute), and the factor on the result.
    PerClass {
        classes: Vec<(f64, f64)>,
        factor: f64,
    },
    /// The standard deviation of the 0/1 correctness of the reference rows.
    Accuracy { std: f64 },
}

impl MulticlassSamplingError {
    /// The sampling error for a chunk of `rows` rows.
    pub fn for_rows(&self, rows: usize) -> f64 {
        let n = rows as f64;
        match self {
            MulticlassSamplingError::PerClass { classes, factor } => {
                let sum: f64 = classes.iter().map(|(var, f)| var / (n * f)).sum();
                sum.sqrt() / classes.len() as f64 * factor
            }
            MulticlassSamplingError::Accuracy { std } => std / n.sqrt(),
        }
    }
}

/// One metric as fitted on the reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FittedMulticlassMetric {
    pub metric: ClassificationMetric,
    pub sampling_error: MulticlassSamplingError,
    pub thresholds: Thresholds,
}

/// Multiclass CBPE fitted on a labelled reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MulticlassCbpe {
    /// Number of classes.
    pub classes: usize,
    /// Per class, whether (and why) its scores are calibrated.
    pub calibration: Vec<CalibrationDecision>,
    calibrators: Vec<Option<IsotonicCalibrator>>,
    /// The metrics estimated.
    pub metrics: Vec<FittedMulticlassMetric>,
    /// Rows per chunk.
    pub chunk_size: usize,
}

impl MulticlassCbpe {
    /// Fits on the reference outputs and labels (class indices), with chunks of `chunk_size`.
    pub fn fit(
        reference: MulticlassOutputs<'_>,
        actual: &[usize],
        chunk_size: usize,
        metrics: &[ClassificationMetric],
        calibration: Calibration,
    ) -> Result<MulticlassCbpe> {
        let classes = reference.scores.len();
        if classes < 3 {
            return Err(DetectorError::InvalidParameter(format!(
                "multiclass CBPE needs at least 3 classes, got {classes}; use the binary CBPE"
            )));
        }
        reference.check(classes, "reference")?;
        if actual.len() != reference.rows() {
            return Err(DetectorError::InvalidInput(format!(
                "reference: {} labels but {} predictions",
                actual.len(),
                reference.rows()
            )));
        }
        if let Some(missing) = (0..classes).find(|c| !actual.contains(c)) {
            return Err(DetectorError::InvalidInput(format!(
                "reference: class {missing} never occurs among the labels; every class needs labelled rows"
            )));
        }
        if chunk_size == 0 || metrics.is_empty() {
            return Err(DetectorError::InvalidParameter(
                "CBPE needs a chunk size of at least 1 and a metric".into(),
            ));
        }
        let (mut decisions, mut calibrators) = (Vec::new(), Vec::new());
        for (c, scores) in reference.scores.iter().enumerate() {
            let labels: Vec<bool> = actual.iter().map(|&a| a == c).collect();
            let decision = match calibration {
                Calibration::Auto => needs_calibration(scores, &labels)?,
                forced => CalibrationDecision {
                    needs_calibration: forced == Calibration::Isotonic,
                    ece_before: None,
                    ece_after: None,
                },
            };
            calibrators.push(if decision.needs_calibration {
                Some(IsotonicCalibrator::fit(scores, &labels)?)
            } else {
                None
            });
            decisions.push(decision);
        }
        let chunks = size_chunks(actual.len(), chunk_size);
        let metrics = metrics
            .iter()
            .map(|&metric| {
                let values: Vec<f64> = chunks
                    .iter()
                    .map(|r| {
                        let (scores, predicted) = reference.slice(r.clone());
                        let outputs = MulticlassOutputs {
                            scores: &scores,
                            predicted,
                        };
                        realized(metric, classes, &actual[r.clone()], outputs).unwrap_or(f64::NAN)
                    })
                    .collect();
                FittedMulticlassMetric {
                    metric,
                    sampling_error: sampling_error(metric, classes, actual, reference),
                    thresholds: Thresholds::from_reference(&values, MetricRange::UNIT),
                }
            })
            .collect();
        Ok(MulticlassCbpe {
            classes,
            calibration: decisions,
            calibrators,
            metrics,
            chunk_size,
        })
    }

    /// The calibrated probabilities of each class for each row (columns by class), each row
    /// divided by its sum (uniform where the sum is 0).
    pub fn probabilities(&self, outputs: MulticlassOutputs<'_>) -> Vec<Vec<f64>> {
        let mut p: Vec<Vec<f64>> = outputs
            .scores
            .iter()
            .zip(&self.calibrators)
            .map(|(s, cal)| match cal {
                Some(c) => s.iter().map(|&x| c.calibrate(x)).collect(),
                None => s.clone(),
            })
            .collect();
        for i in 0..outputs.rows() {
            let sum: f64 = p.iter().map(|col| col[i]).sum();
            for col in &mut p {
                col[i] = if sum != 0.0 {
                    col[i] / sum
                } else {
                    1.0 / self.classes as f64
                };
            }
        }
        p
    }

    /// Every fitted metric estimated on one chunk (numbered `chunk`, first row `start`).
    pub fn estimate_chunk(
        &self,
        chunk: usize,
        start: usize,
        outputs: MulticlassOutputs<'_>,
    ) -> Result<Vec<(ClassificationMetric, ChunkValue)>> {
        outputs.check(self.classes, "chunk")?;
        if outputs.rows() == 0 {
            return Err(DetectorError::Empty("chunk".into()));
        }
        let p = self.probabilities(outputs);
        let rows = start..start + outputs.rows();
        Ok(self
            .metrics
            .iter()
            .map(|f| {
                let value = estimate(f.metric, &p, outputs);
                let se = f.sampling_error.for_rows(outputs.rows());
                let row = ChunkValue::new(chunk, &rows, value, se, MetricRange::UNIT, f.thresholds);
                (f.metric, row)
            })
            .collect())
    }

    /// Every fitted metric estimated on each chunk of `outputs` (labels are never needed).
    pub fn estimate(&self, outputs: MulticlassOutputs<'_>) -> Result<Vec<MetricChunks>> {
        outputs.check(self.classes, "analysis")?;
        let mut per_metric: Vec<MetricChunks> = self
            .metrics
            .iter()
            .map(|f| MetricChunks {
                metric: f.metric,
                chunks: Vec::new(),
            })
            .collect();
        for (i, r) in size_chunks(outputs.rows(), self.chunk_size)
            .into_iter()
            .enumerate()
        {
            let (scores, predicted) = outputs.slice(r.clone());
            let chunk = MulticlassOutputs {
                scores: &scores,
                predicted,
            };
            for ((_, row), slot) in self
                .estimate_chunk(i, r.start, chunk)?
                .into_iter()
                .zip(&mut per_metric)
            {
                slot.chunks.push(row);
            }
        }
        Ok(per_metric)
    }

    /// The realised macro-averaged metrics on each chunk once labels are known, with the same
    /// thresholds and sampling errors.
    pub fn realized(
        &self,
        outputs: MulticlassOutputs<'_>,
        actual: &[usize],
    ) -> Result<Vec<MetricChunks>> {
        outputs.check(self.classes, "labelled chunk")?;
        if actual.len() != outputs.rows() {
            return Err(DetectorError::InvalidInput(format!(
                "{} labels but {} predictions",
                actual.len(),
                outputs.rows()
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
                        let (scores, predicted) = outputs.slice(r.clone());
                        let chunk = MulticlassOutputs {
                            scores: &scores,
                            predicted,
                        };
                        let value = realized(f.metric, self.classes, &actual[r.clone()], chunk);
                        let se = f.sampling_error.for_rows(r.len());
                        ChunkValue::new(i, r, value, se, MetricRange::UNIT, f.thresholds)
                    })
                    .collect(),
            })
            .collect())
    }
}

/// Class `c` against the rest: the predicted flags of the rows.
fn predicted_as(predicted: &[usize], c: usize) -> Vec<bool> {
    predicted.iter().map(|&p| p == c).collect()
}

/// The estimate from the normalised calibrated probabilities `p` (columns by class).
fn estimate(
    metric: ClassificationMetric,
    p: &[Vec<f64>],
    outputs: MulticlassOutputs<'_>,
) -> Option<f64> {
    let n = outputs.rows();
    if metric == ClassificationMetric::Accuracy {
        let sum: f64 = (0..n).map(|i| p[outputs.predicted[i]][i]).sum();
        return Some(sum / n as f64);
    }
    let mut total = 0.0;
    for (c, (pc, scores)) in p.iter().zip(outputs.scores).enumerate() {
        let predicted = predicted_as(outputs.predicted, c);
        let binary = BinaryOutputs {
            scores,
            predicted: &predicted,
        };
        total += cbpe::estimate(metric, pc, binary)?;
    }
    Some(total / p.len() as f64)
}

/// The realised macro-averaged metric (scikit-learn's `average='macro'`, ROC AUC one-vs-rest
/// on the raw scores); `None` where NannyML leaves it undefined: ROC AUC without every class
/// among the labels, the others with a single label or a single predicted class.
pub fn realized(
    metric: ClassificationMetric,
    classes: usize,
    actual: &[usize],
    outputs: MulticlassOutputs<'_>,
) -> Option<f64> {
    if actual.is_empty() {
        return None;
    }
    let distinct = |v: &[usize]| {
        let mut seen = vec![false; classes];
        v.iter().for_each(|&x| seen[x] = true);
        seen.iter().filter(|&&s| s).count()
    };
    match metric {
        ClassificationMetric::Accuracy => {
            let right = actual
                .iter()
                .zip(outputs.predicted)
                .filter(|(a, p)| a == p)
                .count();
            return Some(right as f64 / actual.len() as f64);
        }
        ClassificationMetric::RocAuc if distinct(actual) < classes => return None,
        ClassificationMetric::RocAuc => {}
        _ if distinct(actual) <= 1 || distinct(outputs.predicted) <= 1 => return None,
        _ => {}
    }
    let mut total = 0.0;
    for (c, scores) in outputs.scores.iter().enumerate() {
        let labels: Vec<bool> = actual.iter().map(|&a| a == c).collect();
        let predicted = predicted_as(outputs.predicted, c);
        let binary = BinaryOutputs {
            scores,
            predicted: &predicted,
        };
        total += cbpe::realized(metric, &labels, binary)?;
    }
    Some(total / classes as f64)
}

/// NannyML's multiclass sampling-error components, from the reference labels and raw scores.
fn sampling_error(
    metric: ClassificationMetric,
    classes: usize,
    actual: &[usize],
    reference: MulticlassOutputs<'_>,
) -> MulticlassSamplingError {
    let n = actual.len() as f64;
    if metric == ClassificationMetric::Accuracy {
        let right = actual
            .iter()
            .zip(reference.predicted)
            .map(|(a, p)| if a == p { 1.0 } else { 0.0 });
        return MulticlassSamplingError::Accuracy {
            std: std_population(right),
        };
    }
    // The variance of `ones` values 1 and `zeros` values 0, and their share of the rows.
    let binary = |ones: f64, zeros: f64| {
        let m = ones + zeros;
        let q = ones / m;
        (q * (1.0 - q), m / n)
    };
    let per_class = (0..classes)
        .map(|c| {
            let labels: Vec<bool> = actual.iter().map(|&a| a == c).collect();
            if metric == ClassificationMetric::RocAuc {
                let s = cbpe::roc_auc_components(&labels, &reference.scores[c]);
                return (s.std * s.std, s.fraction);
            }
            let predicted = predicted_as(reference.predicted, c);
            let k = cbpe::counts(&labels, &predicted);
            match metric {
                ClassificationMetric::Precision => binary(k.tp, k.fp),
                ClassificationMetric::Recall => binary(k.tp, k.fn_),
                ClassificationMetric::Specificity => binary(k.tn, k.fp),
                ClassificationMetric::F1 => binary(k.tp, k.fn_ + k.fp),
                ClassificationMetric::Accuracy | ClassificationMetric::RocAuc => {
                    unreachable!("handled above")
                }
            }
        })
        .collect();
    MulticlassSamplingError::PerClass {
        classes: per_class,
        factor: if metric == ClassificationMetric::RocAuc {
            1.2
        } else {
            1.0
        },
    }
}
