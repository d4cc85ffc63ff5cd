//! EDDM, the early drift detection method of Baena-García et al. (2006), as river 0.26's
//! `drift.binary.EDDM`: it watches the *distance* between consecutive errors, whose mean plus
//! two standard deviations shrinks when errors become more frequent.

use serde::{Deserialize, Serialize};

use super::{ChangeDetector, RunningVar, Signal, is_binary};
use crate::error::{DetectorError, Result};

/// EDDM parameters. `Default` is Millwatch's choice, [`Self::river`] river's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EddmConfig {
    /// Observations, and errors, needed before signals can be raised.
    pub warm_start: usize,
    /// Warning when `(mean + 2 sd)` of the error distance falls below `alpha` times its maximum.
    pub alpha: f64,
    /// Drift when it falls below `beta` times its maximum (`beta <= alpha`).
    pub beta: f64,
}

impl Default for EddmConfig {
    /// Millwatch's defaults: `warm_start = 100, alpha = 0.8, beta = 0.7`. river's
    /// (30, 0.95, 0.9) latch the maximum from a few dozen error distances, whose sampling noise
    /// alone exceeds 10 %: `error_rate_stable` alarms 11 times (0 with these values), and
    /// simulated Bernoulli streams (p = 0.02 … 0.3) 6.8 times per 4000 points (about 0.3 with
    /// these values; `tests/stream_defaults.rs` measures it).
    fn default() -> Self {
        Self {
            warm_start: 100,
            alpha: 0.8,
            beta: 0.7,
        }
    }
}

impl EddmConfig {
    /// river 0.26's defaults: `EDDM(warm_start=30, alpha=0.95, beta=0.9)`.
    pub fn river() -> Self {
        Self {
            warm_start: 30,
            alpha: 0.95,
            beta: 0.9,
        }
    }

    fn validate(&self) -> Result<()> {
        let in_unit = |v: f64| v > 0.0 && v <= 1.0;
        if !(in_unit(self.alpha) && in_unit(self.beta) && self.beta <= self.alpha) {
            return Err(DetectorError::InvalidParameter(format!(
                "eddm needs 0 < beta <= alpha <= 1, got alpha = {}, beta = {}",
                self.alpha, self.beta
            )));
        }
        Ok(())
    }
}

/// The EDDM detector. Feed 1 for an error, 0 for a correct prediction.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Eddm {
    config: EddmConfig,
    distances: RunningVar,
    n: u64,
    last_error: u64,
    n_errors: u64,
    p2s_max: f64,
    /// river's warning flag changes only on errors, so it holds between them.
    warning: bool,
    drift_pending_reset: bool,
    skipped: u64,
}

impl Eddm {
    /// A detector with `config`, which is checked.
    pub fn new(config: EddmConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            distances: RunningVar::default(),
            n: 0,
            last_error: 0,
            n_errors: 0,
            p2s_max: -1.0,
            warning: false,
            drift_pending_reset: false,
            skipped: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EddmConfig {
        &self.config
    }
}

impl ChangeDetector for Eddm {
    fn update(&mut self, x: f64) -> Signal {
        if !self.accepts(x) {
            self.skipped += 1;
            return Signal::None;
        }
        if self.drift_pending_reset {
            self.reset();
        }
        self.n += 1;
        if x == 1.0 {
            self.n_errors += 1;
            self.distances.update((self.n - self.last_error) as f64);
            if self.n > self.config.warm_start as u64 {
                let p2s = self.distances.mean.mean + 2.0 * self.distances.variance().sqrt();
                if p2s > self.p2s_max {
                    self.p2s_max = p2s;
                } else if self.n_errors > self.config.warm_start as u64 {
                    let level = p2s / self.p2s_max;
                    if level < self.config.beta {
                        self.drift_pending_reset = true;
                    } else {
                        self.warning = level < self.config.alpha;
                    }
                }
            }
            self.last_error = self.n;
        }
        if self.drift_pending_reset {
            Signal::Drift
        } else if self.warning {
            Signal::Warning
        } else {
            Signal::None
        }
    }

    fn reset(&mut self) {
        self.distances = RunningVar::default();
        self.n = 0;
        self.last_error = 0;
        self.n_errors = 0;
        self.p2s_max = -1.0;
        self.warning = false;
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

    /// Bernoulli(p) draws from a fixed xorshift sequence.
    fn bernoulli(seed: u64, ps: impl Iterator<Item = f64>) -> Vec<f64> {
        let mut s = seed;
        ps.map(|p| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            f64::from(u8::from(((s >> 11) as f64 / (1u64 << 53) as f64) < p))
        })
        .collect()
    }

    #[test]
    fn errors_closing_in_is_a_drift() {
        // 5 % errors, then 50 % from 3000 on.
        let xs = bernoulli(42, (0..6000).map(|i| if i < 3000 { 0.05 } else { 0.5 }));
        let mut d = Eddm::new(EddmConfig::default()).unwrap();
        let drifts: Vec<usize> = (0..xs.len())
            .filter(|&i| d.update(xs[i]) == Signal::Drift)
            .collect();
        assert!(
            !drifts.is_empty() && (3000..3300).contains(&drifts[0]),
            "drifts at {drifts:?}"
        );
        assert!(
            Eddm::new(EddmConfig {
                alpha: 0.5,
                beta: 0.9,
                ..EddmConfig::river()
            })
            .is_err()
        );
    }
}
