//! Tabular CUSUM (Page 1954; Montgomery's form): `C+ = max(0, C+ + x − (μ0 + kσ))`,
//! `C− = max(0, C− + (μ0 − kσ) − x)`, out of control when either exceeds `hσ`. It accumulates
//! small deviations, so a shift of about `2kσ` is found fastest.

use serde::{Deserialize, Serialize};

use super::{ChartPoint, ControlChart, Limits, Rule, Side, Violation, refuse_non_finite};
use crate::error::{DetectorError, Result};

/// CUSUM parameters, in σ units of the reference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CusumConfig {
    /// Allowance (reference value) `k`: half the shift to detect quickest.
    pub k: f64,
    /// Decision interval `h`.
    pub h: f64,
}

impl Default for CusumConfig {
    /// k = 0.5, h = 5: tuned to a 1σ shift; in-control average run length about 465,
    /// about 10 points to detect a 1σ shift (Montgomery, table 9.3).
    fn default() -> Self {
        Self { k: 0.5, h: 5.0 }
    }
}

/// The tabular CUSUM chart.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cusum {
    config: CusumConfig,
    limits: Limits,
    upper: f64,
    lower: f64,
}

impl Cusum {
    /// A chart with `config` around `limits`.
    pub fn new(config: CusumConfig, limits: Limits) -> Result<Self> {
        if !(config.k.is_finite() && config.k >= 0.0 && config.h.is_finite() && config.h > 0.0) {
            return Err(DetectorError::InvalidParameter(format!(
                "cusum needs k >= 0 and h > 0, got k = {}, h = {}",
                config.k, config.h
            )));
        }
        Ok(Self {
            config,
            limits,
            upper: 0.0,
            lower: 0.0,
        })
    }

    /// The one-sided sums `(C+, C−)`.
    pub fn sums(&self) -> (f64, f64) {
        (self.upper, self.lower)
    }
}

impl ControlChart for Cusum {
    fn update(&mut self, x: f64) -> Result<ChartPoint> {
        refuse_non_finite(x)?;
        let Limits { center, sigma } = self.limits;
        let k = self.config.k * sigma;
        self.upper = (self.upper + x - (center + k)).max(0.0);
        self.lower = (self.lower + (center - k) - x).max(0.0);
        let h = self.config.h * sigma;
        let mut violations = Vec::new();
        for (sum, side) in [(self.upper, Side::Above), (self.lower, Side::Below)] {
            if sum > h {
                violations.push(Violation {
                    rule: Rule::CusumBeyondH,
                    side,
                });
            }
        }
        Ok(ChartPoint {
            statistic: if self.upper >= self.lower {
                self.upper
            } else {
                -self.lower
            },
            lower_limit: -h,
            upper_limit: h,
            violations,
        })
    }

    fn reset(&mut self) {
        self.upper = 0.0;
        self.lower = 0.0;
    }

    fn limits(&self) -> Limits {
        self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_accumulate_beyond_the_allowance() {
        let mut c = Cusum::new(CusumConfig::default(), Limits::new(10.0, 2.0).unwrap()).unwrap();
        // k = 1, h = 10 in data units: each 13 adds 2 to C+.
        for i in 1..=5 {
            let p = c.update(13.0).unwrap();
            assert_eq!(c.sums(), (2.0 * i as f64, 0.0));
            assert!(p.violations.is_empty());
        }
        let p = c.update(13.0).unwrap();
        assert_eq!(p.statistic, 12.0);
        assert_eq!(
            p.violations,
            vec![Violation {
                rule: Rule::CusumBeyondH,
                side: Side::Above
            }]
        );
        c.reset();
        let p = c.update(4.0).unwrap();
        assert_eq!((p.statistic, c.sums()), (-5.0, (0.0, 5.0)));
        assert!(
            Cusum::new(
                CusumConfig { k: 0.5, h: 0.0 },
                Limits::new(0.0, 1.0).unwrap()
            )
            .is_err()
        );
    }
}
