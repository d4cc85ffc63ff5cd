//! How per-column results become verdicts: the Evidently-compatible rule of the conformance
//! files (raw or corrected p against a threshold, distances against theirs) and the live
//! engine's default (Benjamini–Hochberg-corrected p below q *and* an effect-size floor, so a
//! large window does not alarm on negligible shifts). Also the multiple-testing corrections.

use serde::Serialize;

use super::TestOutcome;
use super::pair::ColumnPair;
use super::test::DriftTest;

/// Correction of p-values across the columns of one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// Raw p-values.
    #[default]
    None,
    /// Multiply by the number of tests (family-wise error rate).
    Bonferroni,
    /// Benjamini–Hochberg step-up (false discovery rate).
    BenjaminiHochberg,
}

impl Correction {
    /// Corrected p-values in the input order; NaN stays NaN and is not counted as a test.
    pub fn apply(self, p: &[f64]) -> Vec<f64> {
        match self {
            Correction::None => p.to_vec(),
            Correction::Bonferroni => bonferroni(p),
            Correction::BenjaminiHochberg => benjamini_hochberg(p),
        }
    }
}

/// Bonferroni: `min(1, p * m)` with `m` the number of finite p-values.
pub fn bonferroni(p: &[f64]) -> Vec<f64> {
    let m = p.iter().filter(|x| !x.is_nan()).count() as f64;
    p.iter().map(|&x| (x * m).min(1.0)).collect()
}

/// Benjamini–Hochberg adjusted p-values (as `statsmodels` `fdr_bh`): `p_(i) * m / i`, made
/// monotone from the largest down and capped at 1.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let m = order.len() as f64;
    let mut out = vec![f64::NAN; p.len()];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m / (rank + 1) as f64);
        out[i] = running;
    }
    out
}

/// Effect-size floors of the live rule: a significant p-value only counts as drift when the
/// effect is at least this large.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EffectFloors {
    /// KS statistic (largest ECDF gap).
    pub ks: f64,
    /// Mann–Whitney rank-biserial correlation `|2 U / (n m) - 1|`.
    pub mannwhitney: f64,
    /// Cramér's V of the 2 x k table.
    pub chisquare: f64,
    /// Cohen's h between the two shares of the first category.
    pub ztest: f64,
}

impl Default for EffectFloors {
    fn default() -> Self {
        // 0.1 is Cohen's "small" for correlations and Cramér's V (df 1); 0.2 is his small h.
        EffectFloors {
            ks: 0.1,
            mannwhitney: 0.1,
            chisquare: 0.1,
            ztest: 0.2,
        }
    }
}

/// How a column's verdict is decided.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionRule {
    /// As the conformance files and Evidently: p below the threshold (KS: at or below), after the
    /// chosen correction if any; distances at or above their threshold.
    #[default]
    EvidentlyCompatible,
    /// The live engine's default: Benjamini–Hochberg-corrected p below `q` and the effect at or
    /// above its floor; distances keep their thresholds.
    LiveDefault {
        /// False discovery rate.
        q: f64,
        /// Effect-size floors per statistical test.
        floors: EffectFloors,
    },
}

impl DecisionRule {
    /// The live default with q = 0.05 and the default floors.
    pub fn live_default() -> Self {
        DecisionRule::LiveDefault {
            q: 0.05,
            floors: EffectFloors::default(),
        }
    }
}

/// Which comparison decided a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// Raw p-value against the threshold.
    PValue,
    /// Corrected p-value against the threshold.
    CorrectedPValue,
    /// Corrected p-value below q and the effect-size floor (live rule).
    PValueAndEffect,
    /// Distance against its threshold.
    Distance,
}

/// The full record of a verdict, so alerts can say why.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Decision {
    /// The test's own p-value.
    pub raw_p: Option<f64>,
    /// The p-value after correction across columns (equal to raw without correction).
    pub corrected_p: Option<f64>,
    /// Effect size: the statistic for KS and distances, rank-biserial for Mann–Whitney,
    /// Cramér's V for chi-square, Cohen's h for the z-test.
    pub effect_size: f64,
    /// The threshold applied (q for the live rule's p-value tests).
    pub threshold: f64,
    /// Verdict.
    pub drifted: bool,
    /// Which rule decided.
    pub decided_by: DecidedBy,
}

/// The effect size of `outcome` (see [`Decision::effect_size`]).
pub fn effect_size(pair: &ColumnPair, test: DriftTest, outcome: &TestOutcome) -> f64 {
    let (n1, n2) = pair.sample_sizes();
    match test {
        DriftTest::MannWhitney => (2.0 * outcome.statistic / (n1 * n2) - 1.0).abs(),
        DriftTest::ChiSquare => (outcome.statistic / (n1 + n2)).sqrt(),
        DriftTest::ZTest => {
            let (p1, p2) = pair.first_category_shares();
            (2.0 * p2.sqrt().asin() - 2.0 * p1.sqrt().asin()).abs()
        }
        _ => outcome.statistic,
    }
}

/// Decides one column given its (possibly corrected) p-value.
pub fn decide(
    rule: &DecisionRule,
    test: DriftTest,
    outcome: &TestOutcome,
    corrected_p: Option<f64>,
    corrected: bool,
    threshold: f64,
    effect: f64,
) -> Decision {
    let raw_p = outcome.p_value;
    let base = Decision {
        raw_p,
        corrected_p,
        effect_size: effect,
        threshold,
        drifted: false,
        decided_by: DecidedBy::Distance,
    };
    if !test.has_p_value() {
        return Decision {
            drifted: test.exceeds(outcome.statistic, threshold),
            ..base
        };
    }
    let p = corrected_p.or(raw_p).unwrap_or(f64::NAN);
    match rule {
        DecisionRule::EvidentlyCompatible => Decision {
            drifted: test.exceeds(p, threshold),
            decided_by: if corrected {
                DecidedBy::CorrectedPValue
            } else {
                DecidedBy::PValue
            },
            ..base
        },
        DecisionRule::LiveDefault { q, floors } => {
            let floor = match test {
                DriftTest::Ks => floors.ks,
                DriftTest::MannWhitney => floors.mannwhitney,
                DriftTest::ChiSquare => floors.chisquare,
                _ => floors.ztest,
            };
            Decision {
                drifted: p < *q && effect >= floor,
                threshold: *q,
                decided_by: DecidedBy::PValueAndEffect,
                ..base
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrections_by_hand() {
        let p = [0.01, 0.04, 0.03, f64::NAN];
        assert_eq!(bonferroni(&p)[..3], [0.03, 0.12, 0.09]);
        // statsmodels multipletests([0.01, 0.04, 0.03], method='fdr_bh') -> [0.03, 0.04, 0.04]
        let bh = benjamini_hochberg(&p);
        assert!((bh[0] - 0.03).abs() < 1e-12);
        assert!((bh[1] - 0.04).abs() < 1e-12);
        assert!((bh[2] - 0.04).abs() < 1e-12);
        assert!(bh[3].is_nan());
    }
}
