//! Streaming change detectors: one observation in, a [`Signal`] out, state small and serialisable
//! so the live engine can persist it across restarts.
//!
//! Every detector offers river 0.26's parameters; `Config::river()` gives river's defaults and
//! reproduces river's detection indices, while `Config::default()` gives Millwatch's own defaults,
//! chosen so that a stable stream raises no alarm (see each config and the crate README).
//!
//! Semantics shared with river: after a drift the detector forgets everything on the *next*
//! update (so a drift is reported once and the new regime is learned from scratch), and indices
//! are the 0-based position of the observation after which the signal was raised.
//!
//! Input that a detector cannot use — NaN, ±infinity, and for the binary detectors (DDM, EDDM,
//! HDDM_A) anything other than 0 or 1 — is not fed to it: `update` returns [`Signal::None`],
//! leaves the state untouched and counts the value in [`ChangeDetector::skipped`]. Use
//! [`ChangeDetector::try_update`] to get a [`DetectorError`] instead.

mod adwin;
mod ddm;
mod eddm;
mod hddm_a;
mod kswin;
mod page_hinkley;

pub use adwin::{Adwin, AdwinConfig};
pub use ddm::{Ddm, DdmConfig};
pub use eddm::{Eddm, EddmConfig};
pub use hddm_a::{HddmA, HddmAConfig};
pub use kswin::{Kswin, KswinConfig};
pub use page_hinkley::{PageHinkley, PageHinkleyConfig, PhMode, PhScale};

use serde::{Deserialize, Serialize};

use crate::error::{DetectorError, Result};

/// What a detector concluded after one observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Nothing to report.
    None,
    /// The statistic is approaching the drift level (DDM, EDDM, HDDM_A only).
    Warning,
    /// A change was detected; the detector starts afresh on the next observation.
    Drift,
}

/// A streaming change detector.
pub trait ChangeDetector {
    /// Feeds one observation. Values the detector cannot use are skipped (see the module doc).
    fn update(&mut self, x: f64) -> Signal;

    /// Forgets every observation, keeping the configuration and the skip counter.
    fn reset(&mut self);

    /// How many observations were skipped as unusable since the detector was built.
    fn skipped(&self) -> u64;

    /// Whether `x` is an observation this detector can use.
    fn accepts(&self, x: f64) -> bool {
        x.is_finite()
    }

    /// Like [`ChangeDetector::update`] but refuses an unusable value with an error (and does not
    /// count it as skipped).
    fn try_update(&mut self, x: f64) -> Result<Signal> {
        if self.accepts(x) {
            Ok(self.update(x))
        } else if x.is_finite() {
            Err(DetectorError::InvalidInput(format!(
                "binary change detector expects 0 or 1, got {x}"
            )))
        } else {
            Err(DetectorError::NonFinite(format!("observation {x}")))
        }
    }
}

/// Whether `x` is a valid observation for the binary detectors (an error indicator).
pub(crate) fn is_binary(x: f64) -> bool {
    x == 0.0 || x == 1.0
}

/// Running mean updated as river's `stats.Mean` does (`mean += (1/n) * (x - mean)`), so that
/// detectors built on it round exactly like river.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunningMean {
    pub n: f64,
    pub mean: f64,
}

impl RunningMean {
    pub fn update(&mut self, x: f64) {
        self.n += 1.0;
        self.mean += (1.0 / self.n) * (x - self.mean);
    }
}

/// Running mean and sample variance as river's `stats.Var` (ddof = 1) computes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunningVar {
    pub mean: RunningMean,
    s: f64,
}

impl RunningVar {
    pub fn update(&mut self, x: f64) {
        let old = self.mean.mean;
        self.mean.update(x);
        self.s += (x - old) * (x - self.mean.mean);
    }

    /// Sample variance; 0 with fewer than two observations.
    pub fn variance(&self) -> f64 {
        if self.mean.n > 1.0 {
            self.s / (self.mean.n - 1.0)
        } else {
            0.0
        }
    }
}

pub(crate) fn check_probability(value: f64, what: &str) -> Result<()> {
    if value.is_finite() && value > 0.0 && value < 1.0 {
        Ok(())
    } else {
        Err(DetectorError::InvalidParameter(format!(
            "{what} must lie strictly between 0 and 1, got {value}"
        )))
    }
}

pub(crate) fn check_positive(value: f64, what: &str) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(DetectorError::InvalidParameter(format!(
            "{what} must be a positive number, got {value}"
        )))
    }
}

/// Configuration of any streaming detector, as the engine reads it from a config file:
/// `{"kind": "page_hinkley", "threshold": 15.0, ...}`; omitted fields take Millwatch's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DetectorConfig {
    /// [`Adwin`].
    Adwin(AdwinConfig),
    /// [`PageHinkley`].
    PageHinkley(PageHinkleyConfig),
    /// [`Ddm`] on a 0/1 error stream.
    Ddm(DdmConfig),
    /// [`Eddm`] on a 0/1 error stream.
    Eddm(EddmConfig),
    /// [`HddmA`] on a 0/1 error stream.
    HddmA(HddmAConfig),
    /// [`Kswin`].
    Kswin(KswinConfig),
}

impl DetectorConfig {
    /// Builds the detector, refusing parameters outside their domain.
    pub fn build(&self) -> Result<StreamDetector> {
        Ok(match self {
            Self::Adwin(c) => StreamDetector::Adwin(Adwin::new(c.clone())?),
            Self::PageHinkley(c) => StreamDetector::PageHinkley(PageHinkley::new(c.clone())?),
            Self::Ddm(c) => StreamDetector::Ddm(Ddm::new(c.clone())?),
            Self::Eddm(c) => StreamDetector::Eddm(Eddm::new(c.clone())?),
            Self::HddmA(c) => StreamDetector::HddmA(HddmA::new(c.clone())?),
            Self::Kswin(c) => StreamDetector::Kswin(Kswin::new(c.clone())?),
        })
    }
}

/// Any built streaming detector, one type the engine can store and serialise.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StreamDetector {
    /// [`Adwin`].
    Adwin(Adwin),
    /// [`PageHinkley`].
    PageHinkley(PageHinkley),
    /// [`Ddm`].
    Ddm(Ddm),
    /// [`Eddm`].
    Eddm(Eddm),
    /// [`HddmA`].
    HddmA(HddmA),
    /// [`Kswin`].
    Kswin(Kswin),
}

impl StreamDetector {
    fn inner(&self) -> &dyn ChangeDetector {
        match self {
            Self::Adwin(d) => d,
            Self::PageHinkley(d) => d,
            Self::Ddm(d) => d,
            Self::Eddm(d) => d,
            Self::HddmA(d) => d,
            Self::Kswin(d) => d,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn ChangeDetector {
        match self {
            Self::Adwin(d) => d,
            Self::PageHinkley(d) => d,
            Self::Ddm(d) => d,
            Self::Eddm(d) => d,
            Self::HddmA(d) => d,
            Self::Kswin(d) => d,
        }
    }
}

impl ChangeDetector for StreamDetector {
    fn update(&mut self, x: f64) -> Signal {
        self.inner_mut().update(x)
    }

    fn reset(&mut self) {
        self.inner_mut().reset()
    }

    fn skipped(&self) -> u64 {
        self.inner().skipped()
    }

    fn accepts(&self, x: f64) -> bool {
        self.inner().accepts(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_var_matches_two_pass() {
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let mut v = RunningVar::default();
        xs.iter().for_each(|&x| v.update(x));
        let mean = xs.iter().sum::<f64>() / 8.0;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 7.0;
        assert!((v.mean.mean - mean).abs() < 1e-12);
        assert!((v.variance() - var).abs() < 1e-12);
    }

    #[test]
    fn config_round_trips_through_json_with_defaults() {
        let c: DetectorConfig = serde_json::from_str(r#"{"kind": "page_hinkley"}"#).unwrap();
        assert_eq!(c, DetectorConfig::PageHinkley(PageHinkleyConfig::default()));
        let c: DetectorConfig =
            serde_json::from_str(r#"{"kind": "ddm", "warm_start": 40}"#).unwrap();
        assert_eq!(
            c,
            DetectorConfig::Ddm(DdmConfig {
                warm_start: 40,
                ..DdmConfig::default()
            })
        );
        assert!(serde_json::from_str::<DetectorConfig>(r#"{"kind": "ddm", "wrm": 1}"#).is_err());
    }

    #[test]
    fn built_detector_survives_serialisation_mid_stream() {
        let mut a = DetectorConfig::Adwin(AdwinConfig::default())
            .build()
            .unwrap();
        let xs: Vec<f64> = (0..500).map(|i| if i < 300 { 0.0 } else { 5.0 }).collect();
        for &x in &xs[..250] {
            a.update(x);
        }
        let mut b: StreamDetector =
            serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        for &x in &xs[250..] {
            assert_eq!(a.update(x), b.update(x));
        }
    }

    #[test]
    fn unusable_values_are_skipped_and_counted() {
        let mut d = DetectorConfig::Ddm(DdmConfig::default()).build().unwrap();
        assert_eq!(d.update(f64::NAN), Signal::None);
        assert_eq!(d.update(0.5), Signal::None);
        assert_eq!(d.skipped(), 2);
        assert!(matches!(
            d.try_update(2.0),
            Err(DetectorError::InvalidInput(_))
        ));
        assert!(matches!(
            d.try_update(f64::INFINITY),
            Err(DetectorError::NonFinite(_))
        ));
        assert_eq!(d.try_update(1.0), Ok(Signal::None));
    }
}
