//! Shewhart individuals chart (X chart) with the Western Electric run rules.
//!
//! A rule is reported at the point that completes it and only if that point is itself one of
//! the points in the zone (e.g. for rule 2 the current point is beyond 2σ), so a run is not
//! reported again on the in-control point that follows it.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{ChartPoint, ControlChart, Limits, Rule, Violation, refuse_non_finite, side};
use crate::error::{DetectorError, Result};

/// The longest run a rule looks at (rule 4: eight points).
const HISTORY: usize = 8;

/// Shewhart chart parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ShewhartConfig {
    /// The Western Electric rules to apply. Default: all four. Rule 1 alone is the classic
    /// ±3σ chart (about 0.27 % of in-control points flagged); all four flag about 1 %.
    pub rules: Vec<Rule>,
}

impl Default for ShewhartConfig {
    fn default() -> Self {
        Self {
            rules: vec![
                Rule::OneBeyond3Sigma,
                Rule::TwoOfThreeBeyond2Sigma,
                Rule::FourOfFiveBeyond1Sigma,
                Rule::EightOnOneSide,
            ],
        }
    }
}

/// The Shewhart individuals chart.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Shewhart {
    config: ShewhartConfig,
    limits: Limits,
    /// Standardised values `(x - centre) / σ` of the last points, newest last.
    recent: VecDeque<f64>,
}

impl Shewhart {
    /// A chart with `config` around `limits`; only Western Electric rules are accepted.
    pub fn new(config: ShewhartConfig, limits: Limits) -> Result<Self> {
        if let Some(r) = config
            .rules
            .iter()
            .find(|r| matches!(r, Rule::EwmaBeyondLimit | Rule::CusumBeyondH))
        {
            return Err(DetectorError::InvalidParameter(format!(
                "{r:?} is not a Western Electric rule"
            )));
        }
        Ok(Self {
            config,
            limits,
            recent: VecDeque::with_capacity(HISTORY),
        })
    }

    /// Whether at least `needed` of the last `window` points (the current one included) are
    /// beyond `zone` σ on the current point's side, the current point being one of them.
    fn run_beyond(&self, window: usize, needed: usize, zone: f64) -> bool {
        let Some(&z) = self.recent.back() else {
            return false;
        };
        if z.abs() <= zone || self.recent.len() < needed {
            return false;
        }
        let sign = z.signum();
        let beyond = self
            .recent
            .iter()
            .rev()
            .take(window)
            .filter(|&&v| v * sign > zone)
            .count();
        beyond >= needed
    }

    fn violates(&self, rule: Rule) -> bool {
        match rule {
            Rule::OneBeyond3Sigma => self.run_beyond(1, 1, 3.0),
            Rule::TwoOfThreeBeyond2Sigma => self.run_beyond(3, 2, 2.0),
            Rule::FourOfFiveBeyond1Sigma => self.run_beyond(5, 4, 1.0),
            Rule::EightOnOneSide => self.run_beyond(8, 8, 0.0),
            Rule::EwmaBeyondLimit | Rule::CusumBeyondH => false,
        }
    }
}

impl ControlChart for Shewhart {
    fn update(&mut self, x: f64) -> Result<ChartPoint> {
        refuse_non_finite(x)?;
        let Limits { center, sigma } = self.limits;
        if self.recent.len() == HISTORY {
            self.recent.pop_front();
        }
        let z = (x - center) / sigma;
        self.recent.push_back(z);
        let violations = self
            .config
            .rules
            .iter()
            .filter(|&&r| self.violates(r))
            .map(|&rule| Violation {
                rule,
                side: side(z > 0.0),
            })
            .collect();
        Ok(ChartPoint {
            statistic: x,
            lower_limit: center - 3.0 * sigma,
            upper_limit: center + 3.0 * sigma,
            violations,
        })
    }

    fn reset(&mut self) {
        self.recent.clear();
    }

    fn limits(&self) -> Limits {
        self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::charts::Side;

    fn rules_at_last(zs: &[f64]) -> Vec<Rule> {
        let mut c =
            Shewhart::new(ShewhartConfig::default(), Limits::new(10.0, 2.0).unwrap()).unwrap();
        let mut last = Vec::new();
        for &z in zs {
            last = c.update(10.0 + 2.0 * z).unwrap().violations;
        }
        last.iter().map(|v| v.rule).collect()
    }

    #[test]
    fn each_western_electric_rule_fires_on_its_pattern() {
        use Rule::*;
        assert_eq!(rules_at_last(&[0.0, 3.2]), vec![OneBeyond3Sigma]);
        assert_eq!(rules_at_last(&[-3.2]), vec![OneBeyond3Sigma]);
        assert_eq!(
            rules_at_last(&[2.5, 0.1, 2.2]),
            vec![TwoOfThreeBeyond2Sigma]
        );
        // Opposite sides do not make a run.
        assert_eq!(rules_at_last(&[-2.5, 0.1, 2.2]), Vec::<Rule>::new());
        // The completing point must be in the zone itself.
        assert_eq!(rules_at_last(&[2.5, 2.2, 0.1]), Vec::<Rule>::new());
        assert_eq!(
            rules_at_last(&[-1.5, -1.2, 0.5, -1.1, -1.3]),
            vec![FourOfFiveBeyond1Sigma]
        );
        assert_eq!(
            rules_at_last(&[0.2, 0.5, 0.1, 0.3, 0.9, 0.2, 0.4]),
            Vec::<Rule>::new()
        );
        assert_eq!(
            rules_at_last(&[0.2, 0.5, 0.1, 0.3, 0.9, 0.2, 0.4, 0.1]),
            vec![EightOnOneSide]
        );
        // Several rules at once.
        assert_eq!(
            rules_at_last(&[0.3, 0.4, 0.5, 1.5, 1.2, 2.5, 1.4, 3.5]),
            vec![
                OneBeyond3Sigma,
                TwoOfThreeBeyond2Sigma,
                FourOfFiveBeyond1Sigma,
                EightOnOneSide
            ]
        );
    }

    #[test]
    fn violation_reports_the_side_and_limits_are_three_sigma() {
        let mut c =
            Shewhart::new(ShewhartConfig::default(), Limits::new(10.0, 2.0).unwrap()).unwrap();
        let p = c.update(3.0).unwrap();
        assert_eq!((p.lower_limit, p.upper_limit), (4.0, 16.0));
        assert_eq!(p.violations[0].side, Side::Below);
        let only_rule1 = ShewhartConfig {
            rules: vec![Rule::OneBeyond3Sigma],
        };
        let mut c = Shewhart::new(only_rule1, Limits::new(0.0, 1.0).unwrap()).unwrap();
        assert!((0..8).all(|_| c.update(0.5).unwrap().violations.is_empty()));
        let bad = ShewhartConfig {
            rules: vec![Rule::CusumBeyondH],
        };
        assert!(Shewhart::new(bad, Limits::new(0.0, 1.0).unwrap()).is_err());
    }
}
