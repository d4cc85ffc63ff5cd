//! EWMA chart (Roberts 1959): `z_t = λ x_t + (1 − λ) z_(t−1)`, `z_0` the centre line, limits
//! `centre ± L σ sqrt(λ / (2 − λ) · (1 − (1 − λ)^(2t)))` (time-varying) or without the
//! bracket (asymptotic). Small λ averages over many points and so sees small, slow shifts that
//! a ±3σ limit on single points misses.

use serde::{Deserialize, Serialize};

use super::{ChartPoint, ControlChart, Limits, Rule, Violation, refuse_non_finite, side};
use crate::error::{DetectorError, Result};

/// Which control limits the EWMA uses.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EwmaLimits {
    /// Exact limits for the t-th point: narrower at the start, so an early shift is seen.
    #[default]
    TimeVarying,
    /// The limits the time-varying ones converge to.
    Asymptotic,
}

/// EWMA chart parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EwmaConfig {
    /// Weight of the newest point, in (0, 1]. 1 is the Shewhart chart.
    pub lambda: f64,
    /// Width of the limits in σ of the EWMA statistic.
    pub l: f64,
    /// Time-varying or asymptotic limits.
    pub limits: EwmaLimits,
}

impl Default for EwmaConfig {
    /// λ = 0.2, L = 3: Montgomery's usual choice; in-control average run length about 560,
    /// out-of-control about 10 for a 1σ shift.
    fn default() -> Self {
        Self {
            lambda: 0.2,
            l: 3.0,
            limits: EwmaLimits::TimeVarying,
        }
    }
}

/// The EWMA chart.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ewma {
    config: EwmaConfig,
    limits: Limits,
    z: f64,
    n: u64,
}

impl Ewma {
    /// A chart with `config` around `limits`.
    pub fn new(config: EwmaConfig, limits: Limits) -> Result<Self> {
        if !(config.lambda > 0.0 && config.lambda <= 1.0) {
            return Err(DetectorError::InvalidParameter(format!(
                "ewma.lambda must lie in (0, 1], got {}",
                config.lambda
            )));
        }
        if !(config.l.is_finite() && config.l > 0.0) {
            return Err(DetectorError::InvalidParameter(format!(
                "ewma.l must be a positive number, got {}",
                config.l
            )));
        }
        Ok(Self {
            config,
            z: limits.center,
            limits,
            n: 0,
        })
    }

    /// Half-width of the limits at the current point.
    fn half_width(&self) -> f64 {
        let lambda = self.config.lambda;
        let mut factor = lambda / (2.0 - lambda);
        if self.config.limits == EwmaLimits::TimeVarying {
            // (1 - λ)^(2t) underflows harmlessly to 0 for long runs.
            let exponent = (2 * self.n).min(i32::MAX as u64) as i32;
            factor *= 1.0 - (1.0 - lambda).powi(exponent);
        }
        self.config.l * self.limits.sigma * factor.sqrt()
    }
}

impl ControlChart for Ewma {
    fn update(&mut self, x: f64) -> Result<ChartPoint> {
        refuse_non_finite(x)?;
        self.n += 1;
        self.z = self.config.lambda * x + (1.0 - self.config.lambda) * self.z;
        let half = self.half_width();
        let (lower, upper) = (self.limits.center - half, self.limits.center + half);
        let mut violations = Vec::new();
        if self.z > upper || self.z < lower {
            violations.push(Violation {
                rule: Rule::EwmaBeyondLimit,
                side: side(self.z > upper),
            });
        }
        Ok(ChartPoint {
            statistic: self.z,
            lower_limit: lower,
            upper_limit: upper,
            violations,
        })
    }

    fn reset(&mut self) {
        self.z = self.limits.center;
        self.n = 0;
    }

    fn limits(&self) -> Limits {
        self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistic_and_limits_follow_the_textbook_formulas() {
        let mut c = Ewma::new(EwmaConfig::default(), Limits::new(10.0, 1.0).unwrap()).unwrap();
        let p = c.update(11.0).unwrap();
        assert!((p.statistic - 10.2).abs() < 1e-12);
        // t = 1: L σ sqrt(λ/(2-λ) (1 - 0.8²)) = 3 sqrt(0.2/1.8 · 0.36) = 0.6
        assert!((p.upper_limit - 10.6).abs() < 1e-12, "{p:?}");
        for _ in 0..200 {
            c.update(10.0).unwrap();
        }
        let p = c.update(10.0).unwrap();
        assert!((p.upper_limit - (10.0 + 3.0 * (0.2f64 / 1.8).sqrt())).abs() < 1e-12);
        let asym = EwmaConfig {
            limits: EwmaLimits::Asymptotic,
            ..EwmaConfig::default()
        };
        let mut c = Ewma::new(asym, Limits::new(10.0, 1.0).unwrap()).unwrap();
        assert!(
            (c.update(10.0).unwrap().upper_limit - (10.0 + 3.0 * (0.2f64 / 1.8).sqrt())).abs()
                < 1e-12
        );
        assert!(
            Ewma::new(
                EwmaConfig {
                    lambda: 0.0,
                    ..EwmaConfig::default()
                },
                Limits::new(0.0, 1.0).unwrap()
            )
            .is_err()
        );
    }
}
