//! Page-Hinkley test for a change in the mean, as river 0.26's `drift.PageHinkley`, plus a
//! scale-aware mode in which `delta` and `threshold` are multiples of a reference period's
//! standard deviation.
//!
//! Why the scale-aware mode is Millwatch's default: river's `threshold=50, delta=0.005` are in
//! the data's own units, so the same detector is deaf on a signal measured in kilo-units and
//! raises an alarm every few hundred points on a stable signal with σ = 2 (the `stable`
//! conformance stream). Standardising by the reference σ makes one default fit every sensor.

use serde::{Deserialize, Serialize};

use super::{ChangeDetector, RunningMean, RunningVar, Signal, check_positive};
use crate::error::{DetectorError, Result};

/// Which direction of change to look for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PhMode {
    /// An increase of the mean.
    Up,
    /// A decrease of the mean.
    Down,
    /// Either.
    Both,
}

/// Units of `delta` and `threshold`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PhScale {
    /// The data's own units, as river.
    Raw,
    /// Standard deviations of the first `reference_len` observations after each (re)start.
    /// Those observations only estimate σ (no signal is raised during them). A constant
    /// reference has σ = 0; it is then floored at `1e-12 · max(1, |mean|)`, so any later
    /// departure from the constant is a drift.
    ReferenceStd {
        /// Length of the reference period (at least 2).
        reference_len: usize,
    },
}

/// Page-Hinkley parameters. `Default` is Millwatch's scale-aware choice; [`Self::river`] gives
/// river's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PageHinkleyConfig {
    /// Observations (since the last restart, reference included) before the test runs.
    pub min_instances: usize,
    /// Magnitude of change tolerated, subtracted (added) at every step.
    pub delta: f64,
    /// The cumulative deviation that signals a drift.
    pub threshold: f64,
    /// Forgetting factor of the cumulative sums (1 = none).
    pub alpha: f64,
    /// Direction of change to detect.
    pub mode: PhMode,
    /// Units of `delta` and `threshold`.
    pub scale: PhScale,
}

impl Default for PageHinkleyConfig {
    /// Millwatch's defaults: `delta = 0.5σ`, `threshold = 15σ` with σ from the first 100
    /// observations. A 1.5σ mean shift is caught after about `15 / (1.5 - 0.5) = 15`
    /// observations; on simulated N(0,1) streams no alarm was raised in 50 × 4000 points.
    fn default() -> Self {
        Self {
            min_instances: 30,
            delta: 0.5,
            threshold: 15.0,
            alpha: 1.0 - 0.0001,
            mode: PhMode::Both,
            scale: PhScale::ReferenceStd { reference_len: 100 },
        }
    }
}

impl PageHinkleyConfig {
    /// river 0.26's defaults: `PageHinkley(min_instances=30, delta=0.005, threshold=50.0,
    /// alpha=0.9999, mode='both')`, in the data's own units.
    pub fn river() -> Self {
        Self {
            min_instances: 30,
            delta: 0.005,
            threshold: 50.0,
            alpha: 1.0 - 0.0001,
            mode: PhMode::Both,
            scale: PhScale::Raw,
        }
    }

    fn validate(&self) -> Result<()> {
        if !(self.delta.is_finite() && self.delta >= 0.0) {
            return Err(DetectorError::InvalidParameter(format!(
                "page_hinkley.delta must be a non-negative number, got {}",
                self.delta
            )));
        }
        check_positive(self.threshold, "page_hinkley.threshold")?;
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(DetectorError::InvalidParameter(format!(
                "page_hinkley.alpha must lie in (0, 1], got {}",
                self.alpha
            )));
        }
        if let PhScale::ReferenceStd { reference_len } = self.scale
            && reference_len < 2
        {
            return Err(DetectorError::InvalidParameter(
                "page_hinkley.scale.reference_std.reference_len must be at least 2".into(),
            ));
        }
        Ok(())
    }
}

/// The Page-Hinkley detector.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PageHinkley {
    config: PageHinkleyConfig,
    mean: RunningMean,
    /// Reference statistics while σ is being estimated (scale-aware mode only).
    reference: RunningVar,
    /// The unit of `delta` and `threshold`: 1 in raw mode, σ once the reference is complete,
    /// `None` while it is still being collected.
    unit: Option<f64>,
    sum_increase: f64,
    sum_decrease: f64,
    min_increase: f64,
    max_decrease: f64,
    drift_pending_reset: bool,
    skipped: u64,
}

impl PageHinkley {
    /// A detector with `config`, which is checked.
    pub fn new(config: PageHinkleyConfig) -> Result<Self> {
        config.validate()?;
        let mut d = Self {
            config,
            mean: RunningMean::default(),
            reference: RunningVar::default(),
            unit: None,
            sum_increase: 0.0,
            sum_decrease: 0.0,
            min_increase: f64::INFINITY,
            max_decrease: -1.0,
            drift_pending_reset: false,
            skipped: 0,
        };
        d.clear();
        Ok(d)
    }

    /// The configuration.
    pub fn config(&self) -> &PageHinkleyConfig {
        &self.config
    }

    /// The σ that scales `delta` and `threshold` (1 in raw mode; `None` during the reference).
    pub fn unit(&self) -> Option<f64> {
        self.unit
    }

    fn clear(&mut self) {
        self.mean = RunningMean::default();
        self.reference = RunningVar::default();
        self.unit = match self.config.scale {
            PhScale::Raw => Some(1.0),
            PhScale::ReferenceStd { .. } => None,
        };
        self.sum_increase = 0.0;
        self.sum_decrease = 0.0;
        self.min_increase = f64::INFINITY;
        // river starts the running maximum at -1, not -inf; kept for identical indices.
        self.max_decrease = -1.0;
        self.drift_pending_reset = false;
    }
}

impl ChangeDetector for PageHinkley {
    fn update(&mut self, x: f64) -> Signal {
        if !self.accepts(x) {
            self.skipped += 1;
            return Signal::None;
        }
        if self.drift_pending_reset {
            self.clear();
        }
        self.mean.update(x);
        let Some(unit) = self.unit else {
            self.reference.update(x);
            if let PhScale::ReferenceStd { reference_len } = self.config.scale
                && self.reference.mean.n as usize >= reference_len
            {
                let floor = 1e-12 * self.reference.mean.mean.abs().max(1.0);
                self.unit = Some(self.reference.variance().sqrt().max(floor));
            }
            return Signal::None;
        };
        let (delta, threshold) = (self.config.delta * unit, self.config.threshold * unit);
        let dev = x - self.mean.mean;
        self.sum_increase = self.config.alpha * self.sum_increase + dev - delta;
        self.sum_decrease = self.config.alpha * self.sum_decrease + dev + delta;
        self.min_increase = self.min_increase.min(self.sum_increase);
        self.max_decrease = self.max_decrease.max(self.sum_decrease);
        if self.mean.n < self.config.min_instances as f64 {
            return Signal::None;
        }
        let up = self.sum_increase - self.min_increase > threshold;
        let down = self.max_decrease - self.sum_decrease > threshold;
        let drift = match self.config.mode {
            PhMode::Up => up,
            PhMode::Down => down,
            PhMode::Both => up || down,
        };
        if drift {
            self.drift_pending_reset = true;
            Signal::Drift
        } else {
            Signal::None
        }
    }

    fn reset(&mut self) {
        self.clear();
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_aware_thresholds_follow_the_reference_sigma() {
        // The same shape at two scales gives the same indices in scale-aware mode.
        let base: Vec<f64> = (0..600)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) / 3.0 + if i >= 400 { 2.0 } else { 0.0 })
            .collect();
        let run = |scale: f64| {
            let mut d = PageHinkley::new(PageHinkleyConfig::default()).unwrap();
            base.iter()
                .enumerate()
                .filter(|&(_, &x)| d.update(x * scale) == Signal::Drift)
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
        };
        let small = run(1.0);
        assert!(!small.is_empty());
        assert_eq!(small, run(1000.0));
    }

    #[test]
    fn constant_reference_then_step_drifts_at_once() {
        let mut d = PageHinkley::new(PageHinkleyConfig::default()).unwrap();
        assert!((0..100).all(|_| d.update(7.0) == Signal::None));
        assert_eq!(d.unit(), Some(1e-12 * 7.0));
        let first = (0..50).position(|_| d.update(7.001) == Signal::Drift);
        assert!(first.is_some());
    }

    #[test]
    fn bad_config_is_refused() {
        let c = PageHinkleyConfig {
            scale: PhScale::ReferenceStd { reference_len: 1 },
            ..PageHinkleyConfig::default()
        };
        assert!(PageHinkley::new(c).is_err());
        let c = PageHinkleyConfig {
            alpha: 1.5,
            ..PageHinkleyConfig::river()
        };
        assert!(PageHinkley::new(c).is_err());
    }
}
