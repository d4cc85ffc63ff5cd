//! Score calibration for CBPE, as NannyML decides and does it: isotonic regression
//! (scikit-learn's `IsotonicRegression(out_of_bounds='clip')`: pool adjacent violators, then
//! linear interpolation between the breakpoints), used only when it lowers the expected
//! calibration error in cross-validation on the reference.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;

use crate::error::{DetectorError, Result};

/// scikit-learn merges scores closer than this to the first score of a group
/// (`np.finfo(float64).resolution`).
const TIE_RESOLUTION: f64 = 1e-15;

/// A fitted isotonic (non-decreasing) map from score to probability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IsotonicCalibrator {
    /// Scores of the breakpoints, ascending.
    pub x: Vec<f64>,
    /// The calibrated probability at each breakpoint, non-decreasing.
    pub y: Vec<f64>,
}

impl IsotonicCalibrator {
    /// Fits on (score, label) pairs.
    pub fn fit(scores: &[f64], labels: &[bool]) -> Result<IsotonicCalibrator> {
        if scores.is_empty() {
            return Err(DetectorError::Empty("calibration scores".into()));
        }
        if scores.len() != labels.len() {
            return Err(DetectorError::InvalidInput(format!(
                "{} scores but {} labels",
                scores.len(),
                labels.len()
            )));
        }
        crate::error::check_finite(scores, "calibration scores")?;
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| {
            scores[a]
                .total_cmp(&scores[b])
                .then(labels[a].cmp(&labels[b]))
        });
        // Groups of (near-)equal scores: x, sum of labels, count.
        let mut groups: Vec<(f64, f64, f64)> = Vec::new();
        for &i in &order {
            let y = f64::from(u8::from(labels[i]));
            match groups.last_mut() {
                Some(g) if scores[i] - g.0 < TIE_RESOLUTION => {
                    g.1 += y;
                    g.2 += 1.0;
                }
                _ => groups.push((scores[i], y, 1.0)),
            }
        }
        // Pool adjacent violators: blocks of (value, weight, groups covered).
        let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(groups.len());
        for &(_, sum, count) in &groups {
            blocks.push((sum / count, count, 1));
            while blocks.len() > 1 {
                let (v2, w2, l2) = blocks[blocks.len() - 1];
                let (v1, w1, l1) = blocks[blocks.len() - 2];
                if v1 < v2 {
                    break;
                }
                blocks.pop();
                let w = w1 + w2;
                *blocks.last_mut().expect("two blocks") = ((v1 * w1 + v2 * w2) / w, w, l1 + l2);
            }
        }
        let fitted: Vec<f64> = blocks
            .iter()
            .flat_map(|&(v, _, len)| std::iter::repeat_n(v, len))
            .collect();
        // Keep the points where the fitted value differs from a neighbour (and both ends).
        let n = groups.len();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..n {
            let keep =
                i == 0 || i == n - 1 || fitted[i] != fitted[i - 1] || fitted[i] != fitted[i + 1];
            if keep {
                x.push(groups[i].0);
                y.push(fitted[i]);
            }
        }
        Ok(IsotonicCalibrator { x, y })
    }

    /// The calibrated probability of a score: clipped to the fitted score range, then
    /// interpolated linearly between breakpoints (as `np.interp`).
    pub fn calibrate(&self, score: f64) -> f64 {
        let (first, last) = (self.x[0], self.x[self.x.len() - 1]);
        let s = score.clamp(first, last);
        if self.x.len() == 1 {
            return self.y[0];
        }
        // The last breakpoint at or below s.
        let j = self.x.partition_point(|&b| b <= s).saturating_sub(1);
        if j + 1 >= self.x.len() {
            return self.y[self.x.len() - 1];
        }
        if s == self.x[j] {
            return self.y[j];
        }
        let slope = (self.y[j + 1] - self.y[j]) / (self.x[j + 1] - self.x[j]);
        slope * (s - self.x[j]) + self.y[j]
    }
}

/// Whether calibrating the scores improves them, and by how much.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationDecision {
    /// Calibrate (the cross-validated ECE is lower after calibration).
    pub needs_calibration: bool,
    /// Expected calibration error of the raw scores on the held-out parts.
    pub ece_before: Option<f64>,
    /// The same after isotonic calibration fitted on the other parts.
    pub ece_after: Option<f64>,
}

/// NannyML's `needs_calibration`: no when the labels have one class or the scores separate
/// them almost perfectly (ROC AUC > 0.999); otherwise 10 stratified shuffle splits (10 % held
/// out), isotonic fitted on each training part, and the expected calibration error (10
/// equal-count bins) of all held-out parts compared before and after. The splits come from a
/// seeded generator of their own, not scikit-learn's, so the margin differs slightly from
/// NannyML's; the decision is the same wherever the margin is clear.
pub fn needs_calibration(scores: &[f64], labels: &[bool]) -> Result<CalibrationDecision> {
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 || positives == labels.len() {
        return Ok(CalibrationDecision {
            needs_calibration: false,
            ece_before: None,
            ece_after: None,
        });
    }
    if crate::performance::roc_auc(labels, scores)? > 0.999 {
        return Ok(CalibrationDecision {
            needs_calibration: false,
            ece_before: None,
            ece_after: None,
        });
    }
    let mut rng = StdRng::seed_from_u64(42);
    let (mut pos, mut neg): (Vec<usize>, Vec<usize>) = (0..labels.len()).partition(|&i| labels[i]);
    let (mut held_labels, mut raw, mut calibrated) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..10 {
        pos.shuffle(&mut rng);
        neg.shuffle(&mut rng);
        // 10 % of each class held out, at least one of each.
        let hp = (pos.len() / 10).max(1);
        let hn = (neg.len() / 10).max(1);
        let test: Vec<usize> = pos[..hp].iter().chain(&neg[..hn]).copied().collect();
        let train: Vec<usize> = pos[hp..].iter().chain(&neg[hn..]).copied().collect();
        let cal = IsotonicCalibrator::fit(
            &train.iter().map(|&i| scores[i]).collect::<Vec<_>>(),
            &train.iter().map(|&i| labels[i]).collect::<Vec<_>>(),
        )?;
        for &i in &test {
            held_labels.push(labels[i]);
            raw.push(scores[i]);
            calibrated.push(cal.calibrate(scores[i]));
        }
    }
    let before = expected_calibration_error(&raw, &held_labels, 10)?;
    let after = expected_calibration_error(&calibrated, &held_labels, 10)?;
    Ok(CalibrationDecision {
        needs_calibration: before > after,
        ece_before: Some(before),
        ece_after: Some(after),
    })
}

/// Expected calibration error over `bins` equal-count bins of the probabilities sorted
/// ascending (the last bin takes the remainder): Σ_b |b|/n · |mean p_b − mean y_b|.
pub fn expected_calibration_error(
    probabilities: &[f64],
    labels: &[bool],
    bins: usize,
) -> Result<f64> {
    let n = probabilities.len();
    let bins = if n <= 2 * bins { n / 2 } else { bins };
    if bins < 2 {
        return Err(DetectorError::InvalidInput(format!(
            "{n} held-out scores are too few for a calibration error"
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]));
    let width = n / bins;
    let mut edges: Vec<usize> = (0..=n).step_by(width).collect();
    *edges.last_mut().expect("at least one edge") = n;
    let mut ece = 0.0;
    for w in edges.windows(2) {
        let part = &order[w[0]..w[1]];
        if part.is_empty() {
            continue;
        }
        let k = part.len() as f64;
        let mean_p = part.iter().map(|&i| probabilities[i]).sum::<f64>() / k;
        let mean_y = part.iter().filter(|&&i| labels[i]).count() as f64 / k;
        ece += k / n as f64 * (mean_p - mean_y).abs();
    }
    Ok(ece)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_violators_and_interpolates_linearly() {
        // sklearn: IsotonicRegression(out_of_bounds='clip').fit([1,2,3,4,5],[0,1,0,1,1])
        // X_thresholds_ = [1, 2, 3, 4, 5] -> y = [0, .5, .5, 1, 1], kept [1,2,3,4,5]
        let c = IsotonicCalibrator::fit(
            &[1.0, 2.0, 3.0, 4.0, 5.0],
            &[false, true, false, true, true],
        )
        .expect("fit");
        assert_eq!(c.x, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(c.y, vec![0.0, 0.5, 0.5, 1.0, 1.0]);
        assert_eq!(c.calibrate(1.5), 0.25);
        assert_eq!(c.calibrate(3.5), 0.75);
        assert_eq!(c.calibrate(-7.0), 0.0);
        assert_eq!(c.calibrate(9.0), 1.0);
    }

    #[test]
    fn perfect_separation_needs_no_calibration() {
        let s: Vec<f64> = (0..100).map(|i| f64::from(i) / 100.0).collect();
        let y: Vec<bool> = (0..100).map(|i| i >= 50).collect();
        assert!(
            !needs_calibration(&s, &y)
                .expect("decision")
                .needs_calibration
        );
    }
}
