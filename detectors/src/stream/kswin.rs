//! KSWIN (Raab et al. 2020): a Kolmogorov–Smirnov test between the newest `stat_size`
//! observations of a sliding window and `stat_size` observations drawn at random from the rest
//! of it, as river 0.26's `drift.KSWIN`.
//!
//! The draw uses a seeded SplitMix64 generator whose state is part of the serialised detector,
//! so a restored detector continues the same sequence. It cannot reproduce river's draws
//! (Python's Mersenne Twister), so indices match river's in distribution, not one for one. The
//! p-value is scipy's `ks_2samp(method='auto')`, from [`crate::drift::ks`].

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{ChangeDetector, Signal, check_probability};
use crate::drift::ks::{KsMethod, ks_pvalue, ks_statistic_sorted};
use crate::error::{DetectorError, Result};

/// KSWIN parameters. `Default` is Millwatch's choice, [`Self::river`] river's (with a seed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct KswinConfig {
    /// Significance of the KS test.
    pub alpha: f64,
    /// Observations kept in the sliding window.
    pub window_size: usize,
    /// Size of the newest part and of the random sample it is compared with.
    pub stat_size: usize,
    /// Seed of the sampling generator.
    pub seed: u64,
}

impl Default for KswinConfig {
    /// Millwatch's defaults: river's window with `alpha = 1e-4`. The test runs at every
    /// observation, so river's `alpha = 0.005` alarms about every few hundred points on a
    /// stable stream; `1e-4` stays silent on the stable conformance stream and still sees the
    /// 1.5σ shift of `mean_shift`.
    fn default() -> Self {
        Self {
            alpha: 1e-4,
            ..Self::river()
        }
    }
}

impl KswinConfig {
    /// river 0.26's defaults: `KSWIN(alpha=0.005, window_size=100, stat_size=30)`, seed 0.
    pub fn river() -> Self {
        Self {
            alpha: 0.005,
            window_size: 100,
            stat_size: 30,
            seed: 0,
        }
    }

    fn validate(&self) -> Result<()> {
        check_probability(self.alpha, "kswin.alpha")?;
        // The random sample is drawn without replacement from the older part of the window.
        if self.stat_size == 0 || self.window_size < 2 * self.stat_size {
            return Err(DetectorError::InvalidParameter(format!(
                "kswin needs 1 <= stat_size <= window_size / 2, got stat_size = {}, window_size = {}",
                self.stat_size, self.window_size
            )));
        }
        Ok(())
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, fast and good enough to pick sample indices.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (Lemire's multiply-shift; the bias is below 2^-50 for our sizes).
    fn below(&mut self, bound: usize) -> usize {
        ((u128::from(self.next_u64()) * bound as u128) >> 64) as usize
    }
}

/// The KSWIN detector.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Kswin {
    config: KswinConfig,
    window: VecDeque<f64>,
    rng: SplitMix64,
    p_value: f64,
    drift_pending_reset: bool,
    skipped: u64,
}

impl Kswin {
    /// A detector with `config`, which is checked.
    pub fn new(config: KswinConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            rng: SplitMix64(config.seed),
            window: VecDeque::with_capacity(config.window_size),
            config,
            p_value: 1.0,
            drift_pending_reset: false,
            skipped: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &KswinConfig {
        &self.config
    }

    /// p-value of the last test (1 before the window first fills).
    pub fn p_value(&self) -> f64 {
        self.p_value
    }

    fn clear(&mut self) {
        self.window.clear();
        self.rng = SplitMix64(self.config.seed);
        self.p_value = 1.0;
        self.drift_pending_reset = false;
    }

    /// `stat_size` distinct indices into the older part of the window (partial Fisher–Yates).
    fn sample_older(&mut self) -> Vec<f64> {
        let older = self.config.window_size - self.config.stat_size;
        let mut idx: Vec<usize> = (0..older).collect();
        for i in 0..self.config.stat_size {
            let j = i + self.rng.below(older - i);
            idx.swap(i, j);
        }
        idx[..self.config.stat_size]
            .iter()
            .map(|&i| self.window[i])
            .collect()
    }
}

impl ChangeDetector for Kswin {
    fn update(&mut self, x: f64) -> Signal {
        if !self.accepts(x) {
            self.skipped += 1;
            return Signal::None;
        }
        if self.drift_pending_reset {
            // As river: the window refills from scratch and the generator restarts.
            self.clear();
        }
        if self.window.len() == self.config.window_size {
            self.window.pop_front();
        }
        self.window.push_back(x);
        if self.window.len() < self.config.window_size {
            return Signal::None;
        }
        let mut sample = self.sample_older();
        let start = self.config.window_size - self.config.stat_size;
        let mut recent: Vec<f64> = self.window.range(start..).copied().collect();
        sample.sort_unstable_by(f64::total_cmp);
        recent.sort_unstable_by(f64::total_cmp);
        let d = ks_statistic_sorted(&sample, &recent);
        self.p_value = ks_pvalue(d, sample.len(), recent.len(), KsMethod::Auto).p_value;
        if self.p_value <= self.config.alpha && d > 0.1 {
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
    fn sample_draws_distinct_indices_from_the_older_part() {
        let mut k = Kswin::new(KswinConfig::river()).unwrap();
        k.window.extend((0..100).map(f64::from));
        for _ in 0..100 {
            let mut s = k.sample_older();
            s.sort_unstable_by(f64::total_cmp);
            s.dedup();
            assert_eq!(s.len(), 30);
            assert!(s.iter().all(|&v| v < 70.0));
        }
    }

    #[test]
    fn step_change_is_found() {
        let mut k = Kswin::new(KswinConfig::default()).unwrap();
        let xs = (0..400).map(|i| f64::from(i % 13) + if i >= 200 { 20.0 } else { 0.0 });
        let drifts: Vec<usize> = xs
            .enumerate()
            .filter(|&(_, x)| k.update(x) == Signal::Drift)
            .map(|(i, _)| i)
            .collect();
        assert!(
            !drifts.is_empty() && (200..230).contains(&drifts[0]),
            "{drifts:?}"
        );
        assert!(
            Kswin::new(KswinConfig {
                stat_size: 60,
                ..KswinConfig::river()
            })
            .is_err()
        );
    }
}
