//! The catalogue of drift tests: names as users and the conformance files write them, whether
//! each gives a p-value or a distance, default thresholds and how a threshold is applied.

use serde::{Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

use crate::error::DetectorError;

/// One two-sample drift test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DriftTest {
    /// Two-sample Kolmogorov–Smirnov (p-value).
    Ks,
    /// Mann–Whitney U, asymptotic with continuity and tie correction (p-value).
    MannWhitney,
    /// Wasserstein-1 distance in the column's units.
    Wasserstein,
    /// Wasserstein-1 distance over the reference standard deviation.
    WassersteinNorm,
    /// Energy distance.
    Energy,
    /// Population stability index over binned proportions.
    Psi,
    /// Kullback–Leibler divergence of current from reference over binned proportions.
    Kl,
    /// Jensen–Shannon distance over binned proportions.
    JensenShannon,
    /// Hellinger distance over binned proportions.
    Hellinger,
    /// Chi-square test of the 2 x k table of category counts (p-value).
    ChiSquare,
    /// Two-proportion z-test on the share of the first category (p-value).
    ZTest,
}

/// Default threshold of p-value tests: drift when p is below it.
pub const DEFAULT_P_THRESHOLD: f64 = 0.05;
/// Default threshold of distances: drift when the distance reaches it.
pub const DEFAULT_DISTANCE_THRESHOLD: f64 = 0.1;

impl DriftTest {
    /// Every test, in the order reports list them.
    pub const ALL: [DriftTest; 11] = [
        DriftTest::Ks,
        DriftTest::MannWhitney,
        DriftTest::Wasserstein,
        DriftTest::WassersteinNorm,
        DriftTest::Energy,
        DriftTest::Psi,
        DriftTest::Kl,
        DriftTest::JensenShannon,
        DriftTest::Hellinger,
        DriftTest::ChiSquare,
        DriftTest::ZTest,
    ];

    /// The name used on the command line, in JSON and in the conformance files.
    pub fn name(self) -> &'static str {
        match self {
            DriftTest::Ks => "ks",
            DriftTest::MannWhitney => "mannwhitney",
            DriftTest::Wasserstein => "wasserstein",
            DriftTest::WassersteinNorm => "wasserstein_norm",
            DriftTest::Energy => "energy",
            DriftTest::Psi => "psi",
            DriftTest::Kl => "kl",
            DriftTest::JensenShannon => "jensenshannon",
            DriftTest::Hellinger => "hellinger",
            DriftTest::ChiSquare => "chisquare",
            DriftTest::ZTest => "ztest",
        }
    }

    /// Whether the test gives a p-value (statistical test) rather than a distance.
    pub fn has_p_value(self) -> bool {
        matches!(
            self,
            DriftTest::Ks | DriftTest::MannWhitney | DriftTest::ChiSquare | DriftTest::ZTest
        )
    }

    /// Whether the statistic is the same with reference and current swapped.
    pub fn is_symmetric(self) -> bool {
        !matches!(self, DriftTest::Kl | DriftTest::WassersteinNorm)
    }

    /// The default threshold: 0.05 for p-values, 0.1 for distances.
    pub fn default_threshold(self) -> f64 {
        if self.has_p_value() {
            DEFAULT_P_THRESHOLD
        } else {
            DEFAULT_DISTANCE_THRESHOLD
        }
    }

    /// The verdict of a p-value or statistic against a threshold: p below it (KS: at or below,
    /// as Evidently does) or a distance at or above it. NaN never signals drift.
    pub fn exceeds(self, value: f64, threshold: f64) -> bool {
        match self {
            DriftTest::Ks => value <= threshold,
            t if t.has_p_value() => value < threshold,
            _ => value >= threshold,
        }
    }
}

impl fmt::Display for DriftTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DriftTest {
    type Err = DetectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        DriftTest::ALL
            .into_iter()
            .find(|t| t.name() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = DriftTest::ALL.iter().map(|t| t.name()).collect();
                DetectorError::InvalidParameter(format!(
                    "unknown drift test '{s}' (known: {})",
                    names.join(", ")
                ))
            })
    }
}

impl Serialize for DriftTest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in DriftTest::ALL {
            assert_eq!(t.name().parse::<DriftTest>(), Ok(t));
        }
        assert!("kolmogorov".parse::<DriftTest>().is_err());
    }

    #[test]
    fn thresholds_apply_in_the_right_direction() {
        assert!(DriftTest::Ks.exceeds(0.05, 0.05));
        assert!(!DriftTest::ChiSquare.exceeds(0.05, 0.05));
        assert!(DriftTest::Psi.exceeds(0.1, 0.1));
        assert!(!DriftTest::Psi.exceeds(f64::NAN, 0.1));
        assert!(!DriftTest::ZTest.exceeds(f64::NAN, 0.05));
    }
}
