//! ADWIN (adaptive windowing, Bifet & Gavaldà 2007) with exponential-histogram buckets, as river
//! 0.26's `drift.ADWIN` runs it.
//!
//! The window is kept as rows of buckets: row `i` holds up to `max_buckets` summaries (total and
//! variance) of `2^i` observations each, oldest first; when a row overflows, its two oldest
//! buckets merge into one bucket of the next row. Every `clock` observations all cut points
//! between buckets are tested: a cut whose two sides' means differ by more than ADWIN's
//! `epsilon_cut` is a drift. The arithmetic follows river's order of operations so detection
//! indices match river's.

use serde::{Deserialize, Serialize};

use super::{ChangeDetector, Signal, check_probability};
use crate::error::{DetectorError, Result};

/// ADWIN parameters. The defaults are river's, which Millwatch keeps: ADWIN's bound adapts to
/// the window's variance, so it raises no alarm on the stable reference streams.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdwinConfig {
    /// Confidence of the cut test (smaller = fewer false alarms, slower detection).
    pub delta: f64,
    /// Test for a change every `clock` observations.
    pub clock: u32,
    /// Buckets of each size kept before the two oldest merge.
    pub max_buckets: usize,
    /// Both sides of a cut must hold at least this many observations.
    pub min_window_length: u32,
    /// No test before the window holds more than this many observations.
    pub grace_period: u32,
}

impl Default for AdwinConfig {
    fn default() -> Self {
        Self::river()
    }
}

impl AdwinConfig {
    /// river 0.26's defaults: `ADWIN(delta=0.002, clock=32, max_buckets=5, min_window_length=5,
    /// grace_period=10)`.
    pub fn river() -> Self {
        Self {
            delta: 0.002,
            clock: 32,
            max_buckets: 5,
            min_window_length: 5,
            grace_period: 10,
        }
    }

    fn validate(&self) -> Result<()> {
        check_probability(self.delta, "adwin.delta")?;
        if self.clock == 0 {
            return Err(DetectorError::InvalidParameter(
                "adwin.clock must be at least 1".into(),
            ));
        }
        if self.max_buckets == 0 {
            return Err(DetectorError::InvalidParameter(
                "adwin.max_buckets must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// One row of buckets, all of the same size; index 0 is the oldest.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Row {
    totals: Vec<f64>,
    variances: Vec<f64>,
}

impl Row {
    fn len(&self) -> usize {
        self.totals.len()
    }

    fn push(&mut self, total: f64, variance: f64) {
        self.totals.push(total);
        self.variances.push(variance);
    }

    fn drop_oldest(&mut self, n: usize) {
        self.totals.drain(..n);
        self.variances.drain(..n);
    }
}

/// The ADWIN detector.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Adwin {
    config: AdwinConfig,
    /// `rows[i]` holds buckets of `2^i` observations; the last row holds the oldest data.
    rows: Vec<Row>,
    width: f64,
    total: f64,
    /// Sum of squared deviations from the window mean (not divided by the width).
    variance: f64,
    tick: u64,
    drift_pending_reset: bool,
    skipped: u64,
}

impl Adwin {
    /// A detector with `config`, which is checked.
    pub fn new(config: AdwinConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            rows: vec![Row::default()],
            width: 0.0,
            total: 0.0,
            variance: 0.0,
            tick: 0,
            drift_pending_reset: false,
            skipped: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AdwinConfig {
        &self.config
    }

    /// Observations in the current window.
    pub fn width(&self) -> usize {
        self.width as usize
    }

    /// Mean of the current window (0 when empty).
    pub fn estimation(&self) -> f64 {
        if self.width > 0.0 {
            self.total / self.width
        } else {
            0.0
        }
    }

    fn clear(&mut self) {
        self.rows = vec![Row::default()];
        self.width = 0.0;
        self.total = 0.0;
        self.variance = 0.0;
        self.tick = 0;
        self.drift_pending_reset = false;
    }

    fn insert(&mut self, x: f64) {
        self.rows[0].push(x, 0.0);
        self.width += 1.0;
        if self.width > 1.0 {
            let d = x - self.total / (self.width - 1.0);
            self.variance += (self.width - 1.0) * d * d / self.width;
        }
        self.total += x;
        self.compress();
    }

    /// Merges the two oldest buckets of every overflowing row into the next row.
    fn compress(&mut self) {
        let full = self.config.max_buckets + 1;
        let mut i = 0;
        while self.rows[i].len() == full {
            let size = (1u64 << i) as f64;
            let row = &self.rows[i];
            let (t0, t1) = (row.totals[0], row.totals[1]);
            let (mu0, mu1) = (t0 / size, t1 / size);
            // Variance of the union of two equal-size buckets (Chan et al.).
            let merged_var =
                row.variances[0] + row.variances[1] + size * 0.5 * (mu0 - mu1) * (mu0 - mu1);
            if i + 1 == self.rows.len() {
                self.rows.push(Row::default());
            }
            self.rows[i + 1].push(t0 + t1, merged_var);
            self.rows[i].drop_oldest(2);
            i += 1;
        }
    }

    /// Drops the oldest bucket from the window.
    fn drop_oldest_bucket(&mut self) {
        let last = self.rows.len() - 1;
        let size = (1u64 << last) as f64;
        let (t, v) = (self.rows[last].totals[0], self.rows[last].variances[0]);
        self.width -= size;
        self.total -= t;
        if self.width > 0.0 {
            let mu = t / size;
            let mu_window = self.total / self.width;
            self.variance -=
                v + size * self.width * (mu - mu_window) * (mu - mu_window) / (size + self.width);
        } else {
            self.variance = 0.0;
        }
        self.rows[last].drop_oldest(1);
        if self.rows[last].len() == 0 && last > 0 {
            self.rows.pop();
        }
    }

    /// ADWIN's `epsilon_cut` test for sub-windows of `n0` (older) and `n1` observations.
    fn cut_exceeds(&self, n0: f64, n1: f64, mean_gap: f64) -> bool {
        let mwl = f64::from(self.config.min_window_length);
        let delta_prime = (2.0 * self.width.ln() / self.config.delta).ln();
        let m_recip = 1.0 / (n0 - mwl + 1.0) + 1.0 / (n1 - mwl + 1.0);
        let epsilon = (2.0 * m_recip * (self.variance / self.width) * delta_prime).sqrt()
            + 2.0 / 3.0 * delta_prime * m_recip;
        mean_gap.abs() > epsilon
    }

    /// Scans every cut from the oldest end; on a cut, drops the oldest bucket and rescans.
    fn detect(&mut self) -> bool {
        self.tick += 1;
        if !self.tick.is_multiple_of(u64::from(self.config.clock))
            || self.width <= f64::from(self.config.grace_period)
        {
            return false;
        }
        let mwl = f64::from(self.config.min_window_length);
        let mut detected = false;
        'rescan: loop {
            let (mut n0, mut n1) = (0.0, self.width);
            let (mut u0, mut u1) = (0.0, self.total);
            for i in (0..self.rows.len()).rev() {
                let size = (1u64 << i) as f64;
                let len = self.rows[i].len();
                for k in 0..len {
                    let t = self.rows[i].totals[k];
                    n0 += size;
                    n1 -= size;
                    u0 += t;
                    u1 -= t;
                    // The newest bucket is never a cut point: the right side would be empty.
                    if i == 0 && k == len - 1 {
                        break 'rescan;
                    }
                    if n1 >= mwl && n0 >= mwl && self.cut_exceeds(n0, n1, u0 / n0 - u1 / n1) {
                        detected = true;
                        self.drop_oldest_bucket();
                        continue 'rescan;
                    }
                }
            }
            break;
        }
        detected
    }
}

impl ChangeDetector for Adwin {
    fn update(&mut self, x: f64) -> Signal {
        if !self.accepts(x) {
            self.skipped += 1;
            return Signal::None;
        }
        if self.drift_pending_reset {
            self.clear();
        }
        self.insert(x);
        if self.detect() {
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
    fn window_statistics_are_exact_before_any_cut() {
        let mut a = Adwin::new(AdwinConfig::default()).unwrap();
        let xs: Vec<f64> = (0..200).map(|i| (i % 7) as f64).collect();
        xs.iter().for_each(|&x| {
            a.update(x);
        });
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let ss: f64 = xs.iter().map(|x| (x - mean).powi(2)).sum();
        assert_eq!(a.width(), 200);
        assert!((a.estimation() - mean).abs() < 1e-12);
        assert!((a.variance - ss).abs() < 1e-9 * ss);
        // Bucket sizes add up to the width and no row overflows.
        let counted: usize = a.rows.iter().enumerate().map(|(i, r)| r.len() << i).sum();
        assert_eq!(counted, 200);
        assert!(a.rows.iter().all(|r| r.len() <= 5));
    }

    #[test]
    fn constant_stream_never_drifts_and_shift_does() {
        let mut a = Adwin::new(AdwinConfig::default()).unwrap();
        assert!((0..5000).all(|_| a.update(1.0) == Signal::None));
        assert!((0..200).any(|_| a.update(3.0) == Signal::Drift));
    }

    #[test]
    fn bad_config_is_refused() {
        let bad = AdwinConfig {
            delta: 0.0,
            ..AdwinConfig::default()
        };
        assert!(matches!(
            Adwin::new(bad),
            Err(DetectorError::InvalidParameter(_))
        ));
    }
}
