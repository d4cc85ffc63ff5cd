//! Model performance from labels: classification (accuracy, precision, recall, F1, ROC AUC,
//! log loss, confusion matrix; binary for a positive class or macro-averaged over classes) and
//! regression (MAE, RMSE, MAPE, R²), each defined as scikit-learn defines it.

use serde::Serialize;

use crate::drift::sort::sorted;
use crate::error::{DetectorError, Result, check_finite};

/// Counts of actual (rows) against predicted (columns) labels, labels in sorted order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfusionMatrix {
    /// The labels, sorted; index i of rows and columns.
    pub labels: Vec<String>,
    /// `counts[actual][predicted]`.
    pub counts: Vec<Vec<u64>>,
}

/// How precision, recall and F1 summarise the classes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Average {
    /// Of the named positive class only.
    Binary(String),
    /// Unweighted mean over all classes (a class never predicted has precision 0).
    Macro,
}

/// Classification metrics from hard labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationMetrics {
    /// Share of correct predictions.
    pub accuracy: f64,
    /// Precision (binary or macro).
    pub precision: f64,
    /// Recall (binary or macro).
    pub recall: f64,
    /// F1 (binary, or the macro mean of per-class F1).
    pub f1: f64,
    /// How the three above were averaged.
    pub average: Average,
    /// The confusion matrix.
    pub confusion: ConfusionMatrix,
}

fn same_len<A, B>(a: &[A], b: &[B]) -> Result<()> {
    if a.is_empty() {
        return Err(DetectorError::Empty("labels".into()));
    }
    if a.len() != b.len() {
        return Err(DetectorError::InvalidInput(format!(
            "{} actual values but {} predictions",
            a.len(),
            b.len()
        )));
    }
    Ok(())
}

fn ratio(num: f64, den: f64) -> f64 {
    // scikit-learn's zero_division default: 0 where the denominator is 0.
    if den == 0.0 { 0.0 } else { num / den }
}

/// Metrics from actual and predicted labels; with `positive` the precision, recall and F1 are
/// those of that class (binary), otherwise the macro average over all labels seen.
pub fn classification(
    actual: &[&str],
    predicted: &[&str],
    positive: Option<&str>,
) -> Result<ClassificationMetrics> {
    same_len(actual, predicted)?;
    let mut labels: Vec<String> = actual
        .iter()
        .chain(predicted)
        .map(|s| s.to_string())
        .collect();
    labels.sort();
    labels.dedup();
    let index = |s: &str| labels.binary_search_by(|l| l.as_str().cmp(s)).unwrap_or(0);
    let k = labels.len();
    let mut counts = vec![vec![0u64; k]; k];
    for (a, p) in actual.iter().zip(predicted) {
        counts[index(a)][index(p)] += 1;
    }
    let correct: u64 = (0..k).map(|i| counts[i][i]).sum();
    let per_class = |i: usize| {
        let tp = counts[i][i] as f64;
        let predicted_i: u64 = (0..k).map(|r| counts[r][i]).sum();
        let actual_i: u64 = counts[i].iter().sum();
        let p = ratio(tp, predicted_i as f64);
        let r = ratio(tp, actual_i as f64);
        (p, r, ratio(2.0 * p * r, p + r))
    };
    let (precision, recall, f1, average) = match positive {
        Some(pos) => {
            let Ok(i) = labels.binary_search_by(|l| l.as_str().cmp(pos)) else {
                return Err(DetectorError::InvalidParameter(format!(
                    "positive label '{pos}' occurs in neither actual nor predicted labels"
                )));
            };
            let (p, r, f) = per_class(i);
            (p, r, f, Average::Binary(pos.to_string()))
        }
        None => {
            let (mut p, mut r, mut f) = (0.0, 0.0, 0.0);
            for i in 0..k {
                let (pi, ri, fi) = per_class(i);
                p += pi;
                r += ri;
                f += fi;
            }
            let kf = k as f64;
            (p / kf, r / kf, f / kf, Average::Macro)
        }
    };
    Ok(ClassificationMetrics {
        accuracy: correct as f64 / actual.len() as f64,
        precision,
        recall,
        f1,
        average,
        confusion: ConfusionMatrix { labels, counts },
    })
}

/// Binary ROC AUC (`sklearn.metrics.roc_auc_score`): the probability that a random positive
/// scores above a random negative, ties counting half; computed from ranks in O(n log n).
pub fn roc_auc(actual: &[bool], scores: &[f64]) -> Result<f64> {
    same_len(actual, scores)?;
    check_finite(scores, "scores")?;
    let pos: Vec<f64> = scores
        .iter()
        .zip(actual)
        .filter(|(_, a)| **a)
        .map(|(s, _)| *s)
        .collect();
    let neg: Vec<f64> = scores
        .iter()
        .zip(actual)
        .filter(|(_, a)| !**a)
        .map(|(s, _)| *s)
        .collect();
    if pos.is_empty() || neg.is_empty() {
        return Err(DetectorError::InvalidInput(
            "ROC AUC needs both positive and negative examples".into(),
        ));
    }
    let (pos, neg) = (sorted(&pos), sorted(&neg));
    // Count pairs (p, n) with p > n, plus half the ties, by merging.
    let (mut wins, mut j, mut k) = (0.0f64, 0usize, 0usize);
    for &p in &pos {
        while j < neg.len() && neg[j] < p {
            j += 1;
        }
        k = k.max(j);
        while k < neg.len() && neg[k] <= p {
            k += 1;
        }
        wins += j as f64 + (k - j) as f64 / 2.0;
    }
    Ok(wins / (pos.len() as f64 * neg.len() as f64))
}

/// One-vs-rest ROC AUC averaged over classes (`roc_auc_score(multi_class='ovr',
/// average='macro')`); `probabilities[i][c]` is the score of class `c` for example `i`.
pub fn roc_auc_ovr(actual: &[usize], probabilities: &[Vec<f64>]) -> Result<f64> {
    same_len(actual, probabilities)?;
    let k = probabilities[0].len();
    if k < 2 || probabilities.iter().any(|r| r.len() != k) {
        return Err(DetectorError::InvalidInput(
            "every row needs one probability per class (at least two)".into(),
        ));
    }
    let mut total = 0.0;
    for c in 0..k {
        let is_c: Vec<bool> = actual.iter().map(|&a| a == c).collect();
        let scores: Vec<f64> = probabilities.iter().map(|r| r[c]).collect();
        total += roc_auc(&is_c, &scores)?;
    }
    Ok(total / k as f64)
}

/// Mean cross-entropy of the true class (`sklearn.metrics.log_loss`), probabilities clipped to
/// `[eps, 1 - eps]` with `eps` the float64 machine epsilon.
pub fn log_loss(actual: &[usize], probabilities: &[Vec<f64>]) -> Result<f64> {
    same_len(actual, probabilities)?;
    let mut total = 0.0;
    for (&a, row) in actual.iter().zip(probabilities) {
        check_finite(row, "probabilities")?;
        let p = row.get(a).copied().ok_or_else(|| {
            DetectorError::InvalidInput(format!("class {a} has no probability column"))
        })?;
        total -= p.clamp(f64::EPSILON, 1.0 - f64::EPSILON).ln();
    }
    Ok(total / actual.len() as f64)
}

/// Binary log loss from the probability of the positive class.
pub fn log_loss_binary(actual: &[bool], probability: &[f64]) -> Result<f64> {
    same_len(actual, probability)?;
    let rows: Vec<Vec<f64>> = probability.iter().map(|&p| vec![1.0 - p, p]).collect();
    let classes: Vec<usize> = actual.iter().map(|&a| usize::from(a)).collect();
    log_loss(&classes, &rows)
}

/// Regression metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RegressionMetrics {
    /// Mean absolute error.
    pub mae: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute percentage error as a fraction (`|y - ŷ| / max(|y|, eps)`, as sklearn).
    pub mape: f64,
    /// Coefficient of determination; 1 for a perfect fit of a constant target, 0 otherwise.
    pub r2: f64,
}

/// MAE, RMSE, MAPE and R² of predictions against actual values.
pub fn regression(actual: &[f64], predicted: &[f64]) -> Result<RegressionMetrics> {
    same_len(actual, predicted)?;
    check_finite(actual, "actual values")?;
    check_finite(predicted, "predictions")?;
    let n = actual.len() as f64;
    let mean = actual.iter().sum::<f64>() / n;
    let (mut abs, mut sq, mut pct, mut tot) = (0.0, 0.0, 0.0, 0.0);
    for (&y, &p) in actual.iter().zip(predicted) {
        let e = y - p;
        abs += e.abs();
        sq += e * e;
        pct += e.abs() / y.abs().max(f64::EPSILON);
        tot += (y - mean) * (y - mean);
    }
    let r2 = if tot == 0.0 {
        if sq == 0.0 { 1.0 } else { 0.0 }
    } else {
        1.0 - sq / tot
    };
    Ok(RegressionMetrics {
        mae: abs / n,
        rmse: (sq / n).sqrt(),
        mape: pct / n,
        r2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference figures from scikit-learn 1.9.1 on the same inputs.
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn multiclass_macro_matches_sklearn() {
        let ya = ["a", "b", "c", "a", "b", "c", "a", "a"];
        let yp = ["a", "c", "c", "a", "b", "b", "b", "a"];
        let m = classification(&ya, &yp, None).expect("valid labels");
        assert!(close(m.accuracy, 0.625));
        assert!(close(m.precision, 0.611_111_111_111_111));
        assert!(close(m.recall, 0.583_333_333_333_333_4));
        assert!(close(m.f1, 0.585_714_285_714_285_7));
        assert_eq!(
            m.confusion.counts,
            vec![vec![3, 1, 0], vec![0, 1, 1], vec![0, 1, 1]]
        );
    }

    #[test]
    fn binary_matches_sklearn() {
        let yb = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1];
        let pb = [1, 0, 0, 1, 0, 1, 1, 0, 1, 1];
        let name = |v: &i32| if *v == 1 { "1" } else { "0" };
        let (a, p): (Vec<&str>, Vec<&str>) =
            (yb.iter().map(name).collect(), pb.iter().map(name).collect());
        let m = classification(&a, &p, Some("1")).expect("valid labels");
        assert!(close(m.precision, 0.833_333_333_333_333_4));
        assert!(close(m.recall, 0.833_333_333_333_333_4));
        assert!(close(m.f1, 0.833_333_333_333_333_4));
        let truth: Vec<bool> = yb.iter().map(|&v| v == 1).collect();
        let s = [0.9, 0.2, 0.4, 0.8, 0.3, 0.6, 0.7, 0.1, 0.8, 0.95];
        assert!(close(
            roc_auc(&truth, &s).expect("both classes"),
            0.958_333_333_333_333_4
        ));
        assert!(close(
            log_loss_binary(&truth, &s).expect("probabilities"),
            0.347_737_633_127_160_8
        ));
        assert!(classification(&a, &p, Some("2")).is_err());
    }

    #[test]
    fn multiclass_probabilities_match_sklearn() {
        let y = [0, 1, 2, 0, 1, 2, 0, 0];
        let p: Vec<Vec<f64>> = [
            [0.7, 0.2, 0.1],
            [0.1, 0.3, 0.6],
            [0.2, 0.2, 0.6],
            [0.8, 0.1, 0.1],
            [0.2, 0.6, 0.2],
            [0.3, 0.4, 0.3],
            [0.3, 0.5, 0.2],
            [0.6, 0.3, 0.1],
        ]
        .iter()
        .map(|r| r.to_vec())
        .collect();
        assert!(close(
            roc_auc_ovr(&y, &p).expect("valid"),
            0.878_472_222_222_222_2
        ));
        assert!(close(
            log_loss(&y, &p).expect("valid"),
            0.715_526_722_441_090_4
        ));
    }

    #[test]
    fn regression_matches_sklearn() {
        let m = regression(&[3.0, -0.5, 2.0, 7.0, 0.0], &[2.5, 0.0, 2.0, 8.0, 0.1]).expect("valid");
        assert!(close(m.mae, 0.420_000_000_000_000_04));
        assert!(close(m.rmse, 0.549_545_266_561_363_5));
        assert!((m.mape - 90_071_992_547_410.19).abs() < 1e-2);
        assert!(close(m.r2, 0.957_821_229_050_279_3));
        assert!(regression(&[1.0], &[1.0, 2.0]).is_err());
        assert!(regression(&[f64::NAN], &[1.0]).is_err());
    }
}
