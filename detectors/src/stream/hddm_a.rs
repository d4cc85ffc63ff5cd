//! HDDM_A (Frías-Blanco et al. 2015): Hoeffding-bound test for a change in the mean of a 0/1
//! error stream, as river 0.26's `drift.binary.HDDMA`.
//!
//! Keeps the running mean since the restart and snapshots of it taken where its lower
//! (upper) Hoeffding bound was lowest (highest); a rise of the mean above the lowest snapshot
//! by more than the bound for the two sample sizes is a drift (a warning at the looser
//! confidence).

use serde::{Deserialize, Serialize};

use super::{ChangeDetector, RunningMean, Signal, check_probability, is_binary};
use crate::error::{DetectorError, Result};

/// HDDM_A parameters. The defaults are river's, which Millwatch keeps: they raise no alarm on
/// `error_rate_stable` and catch `error_rate_jump` first of the binary detectors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HddmAConfig {
    /// Confidence of the drift test.
    pub drift_confidence: f64,
    /// Confidence of the warning test (larger than `drift_confidence`).
    pub warning_confidence: f64,
    /// Also look for a decrease of the error rate.
    pub two_sided_test: bool,
}

impl Default for HddmAConfig {
    fn default() -> Self {
        Self::river()
    }
}

impl HddmAConfig {
    /// river 0.26's defaults: `HDDMA(drift_confidence=0.001, warning_confidence=0.005,
    /// two_sided_test=False)`.
    pub fn river() -> Self {
        Self {
            drift_confidence: 0.001,
            warning_confidence: 0.005,
            two_sided_test: false,
        }
    }

    fn validate(&self) -> Result<()> {
        check_probability(self.drift_confidence, "hddm_a.drift_confidence")?;
        check_probability(self.warning_confidence, "hddm_a.warning_confidence")?;
        if self.warning_confidence < self.drift_confidence {
            return Err(DetectorError::InvalidParameter(
                "hddm_a.warning_confidence must not be below hddm_a.drift_confidence".into(),
            ));
        }
        Ok(())
    }
}

/// The HDDM_A detector. Feed 1 for an error, 0 for a correct prediction.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HddmA {
    config: HddmAConfig,
    z: RunningMean,
    x_min: RunningMean,
    x_max: RunningMean,
    drift_pending_reset: bool,
    skipped: u64,
}

impl HddmA {
    /// A detector with `config`, which is checked.
    pub fn new(config: HddmAConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            z: RunningMean::default(),
            x_min: RunningMean::default(),
            x_max: RunningMean::default(),
            drift_pending_reset: false,
            skipped: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &HddmAConfig {
        &self.config
    }

    fn hoeffding_bound(&self, n: f64) -> f64 {
        (1.0 / (2.0 * n) * (1.0 / self.config.drift_confidence).ln()).sqrt()
    }

    /// Bound on the difference of the means of `n_snapshot` and `n_total` observations.
    fn eps(&self, n_snapshot: f64, confidence: f64) -> f64 {
        let n = self.z.n;
        let m = (n - n_snapshot) / n_snapshot * (1.0 / n);
        (m / 2.0 * (2.0 / confidence).ln()).sqrt()
    }

    fn mean_increased(&self, confidence: f64) -> bool {
        self.x_min.n != self.z.n
            && self.z.mean - self.x_min.mean >= self.eps(self.x_min.n, confidence)
    }

    fn mean_decreased(&self, confidence: f64) -> bool {
        self.x_max.n != self.z.n
            && self.x_max.mean - self.z.mean >= self.eps(self.x_max.n, confidence)
    }
}

impl ChangeDetector for HddmA {
    fn update(&mut self, x: f64) -> Signal {
        if !self.accepts(x) {
            self.skipped += 1;
            return Signal::None;
        }
        if self.drift_pending_reset {
            self.reset();
        }
        self.z.update(x);
        if self.x_min.n == 0.0 {
            self.x_min = self.z;
        }
        if self.x_max.n == 0.0 {
            self.x_max = self.z;
        }
        let eps_z = self.hoeffding_bound(self.z.n);
        if self.x_min.mean + self.hoeffding_bound(self.x_min.n) >= self.z.mean + eps_z {
            self.x_min = self.z;
        }
        if self.x_max.mean - self.hoeffding_bound(self.x_max.n) <= self.z.mean - eps_z {
            self.x_max = self.z;
        }
        let (drift_c, warn_c) = (self.config.drift_confidence, self.config.warning_confidence);
        let mut signal = if self.mean_increased(drift_c) {
            Signal::Drift
        } else if self.mean_increased(warn_c) {
            Signal::Warning
        } else {
            Signal::None
        };
        if self.config.two_sided_test {
            if self.mean_decreased(drift_c) {
                signal = Signal::Drift;
            } else if signal == Signal::None && self.mean_decreased(warn_c) {
                signal = Signal::Warning;
            }
        }
        if signal == Signal::Drift {
            self.drift_pending_reset = true;
        }
        signal
    }

    fn reset(&mut self) {
        self.z = RunningMean::default();
        self.x_min = RunningMean::default();
        self.x_max = RunningMean::default();
        self.drift_pending_reset = false;
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }

    fn accepts(&self, x: f64) -> bool {
        is_binary(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_sided_test_sees_a_drop_one_sided_does_not() {
        let stream: Vec<f64> = (0..3000)
            .map(|i| if i < 1500 { f64::from(i % 3 == 0) } else { 0.0 })
            .collect();
        let first_drift = |two_sided| {
            let mut d = HddmA::new(HddmAConfig {
                two_sided_test: two_sided,
                ..HddmAConfig::river()
            })
            .unwrap();
            stream.iter().position(|&x| d.update(x) == Signal::Drift)
        };
        assert_eq!(first_drift(false), None);
        let at = first_drift(true).unwrap();
        assert!((1500..1600).contains(&at), "drift at {at}");
    }
}
