//! Model performance from labels: classification (accuracy, precision, recall, F1, ROC AUC with
//! DeLong's variance, log loss, confusion matrix; binary for a positive class or macro-averaged
//! over classes) and regression (MAE, RMSE, MAPE, R²), each defined as scikit-learn defines it;
//! a metric the data leaves undefined (a zero denominator) is `None`, not a convention's number.

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
    /// Precision (binary or macro); binary: `None` when nothing was predicted positive.
    pub precision: Option<f64>,
    /// Recall (binary or macro); binary: `None` when no actual label is positive.
    pub recall: Option<f64>,
    /// F1 (binary, or the macro mean of per-class F1); binary: `None` when the positive class
    /// occurs nowhere (no true positive, false positive or false negative).
    pub f1: Option<f64>,
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
/// those of that class (binary: as scikit-learn with `zero_division=np.nan`, a zero
/// denominator gives `None`), otherwise the macro average over all labels seen (a class never
/// predicted has precision 0, as scikit-learn's default `zero_division`).
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
            // A positive class absent from both sides is a window without positives: every
            // count below is 0 and each metric undefined.
            let i = labels.binary_search_by(|l| l.as_str().cmp(pos)).ok();
            let tp = i.map_or(0, |i| counts[i][i]);
            let predicted_pos: u64 = i.map_or(0, |i| (0..k).map(|r| counts[r][i]).sum());
            let actual_pos: u64 = i.map_or(0, |i| counts[i].iter().sum());
            let share = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
            (
                share(tp, predicted_pos),
                share(tp, actual_pos),
                // 2 tp / (2 tp + fp + fn), the form scikit-learn uses.
                share(2 * tp, predicted_pos + actual_pos),
                Average::Binary(pos.to_string()),
            )
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
            (Some(p / kf), Some(r / kf), Some(f / kf), Average::Macro)
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
/// Undefined (an error) unless both classes occur.
pub fn roc_auc(actual: &[bool], scores: &[f64]) -> Result<f64> {
    roc_auc_with_variance(actual, scores).map(|r| r.auc)
}

/// A ROC AUC with the variance of its estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RocAuc {
    /// The area under the ROC curve.
    pub auc: f64,
    /// DeLong, DeLong & Clarke-Pearson's (1988) variance of the estimate, as pROC's
    /// `var(roc, method = "delong")`; `None` with a single positive or a single negative.
    pub variance: Option<f64>,
    /// Examples of the positive class.
    pub positives: usize,
    /// Examples of the negative class.
    pub negatives: usize,
}

/// [`roc_auc`] with DeLong's variance, from each example's placement among the other class
/// (Sun & Xu's fast DeLong: O(n log n)).
pub fn roc_auc_with_variance(actual: &[bool], scores: &[f64]) -> Result<RocAuc> {
    same_len(actual, scores)?;
    check_finite(scores, "scores")?;
    let of_class = |class: bool| -> Vec<f64> {
        scores
            .iter()
            .zip(actual)
            .filter(|(_, a)| **a == class)
            .map(|(s, _)| *s)
            .collect()
    };
    let (pos, neg) = (sorted(&of_class(true)), sorted(&of_class(false)));
    if pos.is_empty() || neg.is_empty() {
        return Err(DetectorError::InvalidInput(
            "ROC AUC needs both positive and negative examples".into(),
        ));
    }
    // Examples of `others` below `x`, ties counting half.
    let below = |others: &[f64], x: f64| {
        let lower = others.partition_point(|&v| v < x);
        let upper = others.partition_point(|&v| v <= x);
        lower as f64 + (upper - lower) as f64 / 2.0
    };
    let (m, n) = (pos.len() as f64, neg.len() as f64);
    // A positive's placement: the share of negatives it beats; a negative's: the share of
    // positives that beat it. The AUC is the mean of either.
    let wins: Vec<f64> = pos.iter().map(|&p| below(&neg, p)).collect();
    let auc = wins.iter().sum::<f64>() / (m * n);
    let pos_placements: Vec<f64> = wins.iter().map(|w| w / n).collect();
    let neg_placements: Vec<f64> = neg.iter().map(|&q| 1.0 - below(&pos, q) / m).collect();
    let variance = (pos.len() > 1 && neg.len() > 1)
        .then(|| sample_variance(&pos_placements) / m + sample_variance(&neg_placements) / n);
    Ok(RocAuc {
        auc,
        variance,
        positives: pos.len(),
        negatives: neg.len(),
    })
}

/// Variance with n - 1 in the denominator (numpy's `ddof=1`); needs two values.
fn sample_variance(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)
}

/// How a ROC AUC moved between two independent samples (a baseline and a later window).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AucChange {
    /// `current - reference`: negative when the current AUC is lower.
    pub difference: f64,
    /// The difference over the standard error of both estimates.
    pub z: f64,
    /// Two-sided p-value of `z` under the standard normal.
    pub p_value: f64,
}

/// DeLong's test for two AUCs of independent samples, as pROC's unpaired
/// `roc.test(method = "delong")`: `z = (current - reference) / sqrt(var_r + var_c)`.
/// Undefined (an error) without both variances or when both are 0.
pub fn compare_roc_auc(reference: &RocAuc, current: &RocAuc) -> Result<AucChange> {
    let (Some(vr), Some(vc)) = (reference.variance, current.variance) else {
        return Err(DetectorError::NotApplicable(
            "comparing ROC AUCs needs two examples of each class on both sides".into(),
        ));
    };
    if vr + vc <= 0.0 {
        return Err(DetectorError::Constant(
            "the placements of both samples".into(),
        ));
    }
    let difference = current.auc - reference.auc;
    let z = difference / (vr + vc).sqrt();
    Ok(AucChange {
        difference,
        z,
        p_value: (2.0 * crate::drift::numeric::normal_sf(z.abs())).min(1.0),
    })
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
    /// Mean absolute percentage error as a fraction (`|y - ŷ| / max(|y|, eps)`, as sklearn);
    /// `None` when an actual value is 0 (where sklearn's epsilon gives ~4.5e15 per such value).
    pub mape: Option<f64>,
    /// Coefficient of determination; `None` when the actual values are constant (sklearn's
    /// `force_finite=False` gives NaN or -inf there, its default 1.0 or 0.0 by convention).
    pub r2: Option<f64>,
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
    Ok(RegressionMetrics {
        mae: abs / n,
        rmse: (sq / n).sqrt(),
        mape: actual.iter().all(|&y| y != 0.0).then_some(pct / n),
        // Compared, not `tot > 0`: the mean of equal values can differ from them by rounding.
        r2: actual
            .iter()
            .any(|&y| y != actual[0])
            .then(|| 1.0 - sq / tot),
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
        assert!(close(m.precision.expect("macro"), 0.611_111_111_111_111));
        assert!(close(m.recall.expect("macro"), 0.583_333_333_333_333_4));
        assert!(close(m.f1.expect("macro"), 0.585_714_285_714_285_7));
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
        for v in [m.precision, m.recall, m.f1] {
            assert!(close(v.expect("defined"), 0.833_333_333_333_333_4));
        }
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
        // A positive class that occurs nowhere: accuracy only (sklearn: nan with
        // zero_division=np.nan).
        let m = classification(&a, &p, Some("2")).expect("valid labels");
        assert!(close(m.accuracy, 0.8));
        assert_eq!((m.precision, m.recall, m.f1), (None, None, None));
    }

    #[test]
    fn binary_metrics_with_a_zero_denominator_are_undefined_as_sklearn_says() {
        // precision_score([1,0,0,1,0], [0,0,0,0,0], zero_division=np.nan) -> nan; recall and
        // F1 -> 0.0 (there are positives, none found); accuracy 0.6.
        let m = classification(&["1", "0", "0", "1", "0"], &["0"; 5], Some("1")).expect("valid");
        assert!(close(m.accuracy, 0.6));
        assert_eq!(m.precision, None);
        assert_eq!(m.recall, Some(0.0));
        assert_eq!(m.f1, Some(0.0));
    }

    #[test]
    fn roc_auc_with_tied_scores_matches_sklearn_and_delong() {
        // Ties within and across the classes (0.8, 0.6 and 0.4 occur in both).
        let y = [1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1].map(|v| v == 1);
        let s = [0.8, 0.8, 0.6, 0.6, 0.6, 0.2, 0.9, 0.1, 0.4, 0.4, 0.5, 0.6];
        // roc_auc_score(y, s)
        assert!(close(
            roc_auc(&y, &s).expect("both classes"),
            0.763_888_888_888_889
        ));
        let r = roc_auc_with_variance(&y, &s).expect("both classes");
        assert_eq!((r.positives, r.negatives), (6, 6));
        assert!(close(r.auc, 0.763_888_888_888_889));
        // MLstatkit 0.1.91's fast DeLong (Sun & Xu, midranks), the variance behind its CI.
        let v = r.variance.expect("two of each class");
        assert!((v - 0.021_219_135_802_469_133).abs() < 1e-15, "{v}");
    }

    #[test]
    fn auc_change_matches_the_unpaired_delong_test() {
        let base_y = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1].map(|v| v == 1);
        let base_s = [0.9, 0.2, 0.4, 0.8, 0.3, 0.6, 0.7, 0.1, 0.8, 0.95];
        let base = roc_auc_with_variance(&base_y, &base_s).expect("both classes");
        assert!((base.variance.expect("variance") - 0.003_472_222_222_222_220_7).abs() < 1e-15);
        let y = [1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1].map(|v| v == 1);
        let s = [0.8, 0.8, 0.6, 0.6, 0.6, 0.2, 0.9, 0.1, 0.4, 0.4, 0.5, 0.6];
        let now = roc_auc_with_variance(&y, &s).expect("both classes");
        // (0.7639 - 0.9583) / sqrt(0.02122 + 0.00347); p = 2 * scipy.stats.norm.sf(|z|).
        let c = compare_roc_auc(&base, &now).expect("variances");
        assert!(close(
            c.difference,
            0.763_888_888_888_889 - 0.958_333_333_333_333_3
        ));
        assert!(close(c.z, -1.237_436_867_076_457_5), "{}", c.z);
        // statrs' erfc agrees with scipy's to about 1e-10 relative.
        assert!(
            (c.p_value - 0.215_924_938_940_140_64).abs() < 1e-9,
            "{}",
            c.p_value
        );
        // The same sample against itself: no difference, p = 1.
        let same = compare_roc_auc(&now, &now).expect("variances");
        assert_eq!((same.difference, same.p_value), (0.0, 1.0));
    }

    #[test]
    fn roc_auc_of_one_class_only_is_undefined() {
        let s = [0.2, 0.7, 0.9];
        assert!(roc_auc(&[true; 3], &s).is_err());
        assert!(roc_auc_with_variance(&[false; 3], &s).is_err());
        // One negative: an AUC, but no variance, so no comparison.
        let one = roc_auc_with_variance(&[true, false, true], &s).expect("both classes");
        assert!(close(one.auc, 0.5));
        assert_eq!(one.variance, None);
        assert!(compare_roc_auc(&one, &one).is_err());
        // Perfectly separated on both sides: zero variance, nothing to test.
        let perfect = roc_auc_with_variance(&[false, false, true, true], &[0.1, 0.2, 0.8, 0.9])
            .expect("both classes");
        assert_eq!((perfect.auc, perfect.variance), (1.0, Some(0.0)));
        assert!(compare_roc_auc(&perfect, &perfect).is_err());
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
        // sklearn says 90071992547410.19 here: |0 - 0.1| / eps. A zero target leaves MAPE
        // undefined.
        assert_eq!(m.mape, None);
        assert!(close(m.r2.expect("targets vary"), 0.957_821_229_050_279_3));
        assert!(regression(&[1.0], &[1.0, 2.0]).is_err());
        assert!(regression(&[f64::NAN], &[1.0]).is_err());
        let m = regression(&[3.0, -0.5, 2.0, 7.0, 1.5], &[2.5, 0.0, 2.0, 8.0, 1.2]).expect("valid");
        assert!(close(
            m.mape.expect("no zero target"),
            0.301_904_761_904_761_9
        ));
        assert!(close(m.mae, 0.459_999_999_999_999_96));
        assert!(close(m.rmse, 0.563_914_887_194_867_4));
        assert!(close(m.r2.expect("targets vary"), 0.948_208_469_055_374_6));
    }

    #[test]
    fn constant_targets_have_no_r2() {
        // r2_score([2, 2, 2], [2, 1, 2], force_finite=False) -> -inf; with [2, 2, 2] -> nan.
        for predicted in [[2.0, 1.0, 2.0], [2.0; 3]] {
            assert_eq!(regression(&[2.0; 3], &predicted).expect("valid").r2, None);
        }
        // Equal values whose mean is off by rounding are constant too.
        assert_eq!(regression(&[0.1; 3], &[0.1; 3]).expect("valid").r2, None);
    }
}
