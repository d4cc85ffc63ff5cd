//! Settings of the detection engine: what every model gets with no configuration, per-model
//! overrides, and machine-health rules. Everything here is accepted only if the engine does it.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use millwatch_detectors::charts::ChartConfig;
use millwatch_detectors::drift::{DecisionRule, DriftTest};
use serde::{Deserialize, Serialize};

/// The `detection:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    /// Whether the engine runs. Off, inferences and metrics are still stored, only not watched.
    pub enabled: bool,
    /// Events of a new model version that form its baseline (unless the model says otherwise).
    pub baseline_events: NonZeroUsize,
    /// Events per tumbling window after the baseline.
    pub window_events: NonZeroUsize,
    /// Non-missing values a feature needs in both the baseline and a window to get a verdict.
    pub min_samples: NonZeroUsize,
    /// How a drift verdict is decided: `live` (Benjamini–Hochberg-corrected p < 0.05 and an
    /// effect-size floor) or `evidently` (raw p against the test's threshold).
    pub rule: RuleName,
    /// How often the engine looks for newly stored events and metric points.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Most inference events read from the store in one pass.
    pub batch_events: NonZeroUsize,
    /// How often closed windows are re-evaluated with feedback (labels) that arrived since.
    #[serde(with = "humantime_serde")]
    pub performance_interval: Duration,
    /// Labelled events a window (and the baseline) needs before its performance is reported.
    pub performance_min_labels: NonZeroUsize,
    /// Closed windows per model version that the performance pass revisits (the newest ones).
    pub performance_windows: NonZeroUsize,
    /// Settings for particular models; a model not listed gets the defaults above.
    pub models: Vec<ModelConfig>,
    /// Rules over stored metrics (temperatures, vibration, utilisation, ...).
    pub machine_health: Vec<HealthRule>,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        let n = |v: usize| NonZeroUsize::new(v).expect("non-zero");
        DetectionConfig {
            enabled: true,
            baseline_events: n(1000),
            window_events: n(1000),
            min_samples: n(30),
            rule: RuleName::Live,
            poll_interval: Duration::from_millis(200),
            batch_events: n(50_000),
            performance_interval: Duration::from_secs(30),
            performance_min_labels: n(30),
            performance_windows: n(50),
            models: Vec::new(),
            machine_health: Vec::new(),
        }
    }
}

/// The decision rule by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleName {
    /// Benjamini–Hochberg q = 0.05 across a window's columns and an effect-size floor.
    Live,
    /// As `millwatch drift` and Evidently: raw p below the test's threshold.
    Evidently,
}

impl RuleName {
    pub fn rule(self) -> DecisionRule {
        match self {
            RuleName::Live => DecisionRule::live_default(),
            RuleName::Evidently => DecisionRule::EvidentlyCompatible,
        }
    }
}

/// Settings for one model (all its versions, or one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `ml.model.name` as sent.
    pub name: String,
    /// Only this `ml.model.version`; every version when absent.
    #[serde(default)]
    pub version: Option<String>,
    /// Where the baseline comes from; the first `baseline_events` events of the version when absent.
    #[serde(default)]
    pub baseline: Option<BaselineSource>,
    /// Events per tumbling window.
    #[serde(default)]
    pub window_events: Option<NonZeroUsize>,
    /// Non-missing values a feature needs on both sides to get a verdict.
    #[serde(default)]
    pub min_samples: Option<NonZeroUsize>,
    /// Features never tested (names after `ml.feature.`).
    #[serde(default)]
    pub ignore_features: Vec<String>,
    /// Test and threshold per feature (`ml.prediction` for the prediction).
    #[serde(default)]
    pub features: BTreeMap<String, FeatureConfig>,
    /// A new version is compared with the previous version's baseline (a deployment check)
    /// instead of starting its own.
    #[serde(default)]
    pub compare_with_previous_version: bool,
}

/// Where a model's baseline comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineSource {
    /// The first N events of each version.
    FirstEvents(NonZeroUsize),
    /// A CSV or Parquet file whose columns are feature names (and `ml.prediction`).
    File(PathBuf),
}

/// Test and threshold for one feature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    /// A test name: ks, mannwhitney, chisquare, ztest, wasserstein, wasserstein_norm, energy,
    /// psi, kl, jensenshannon, hellinger.
    #[serde(default)]
    pub test: Option<TestName>,
    /// The test's threshold (a p-value or a distance).
    #[serde(default)]
    pub threshold: Option<f64>,
}

/// A drift test named in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestName(pub DriftTest);

impl Serialize for TestName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for TestName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<DriftTest>().map(TestName).map_err(serde::de::Error::custom)
    }
}

/// A machine-health rule: a check applied to every stored series of a metric whose attributes
/// match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthRule {
    /// The rule's name, a label on `/metrics` and in the detections table.
    pub name: String,
    /// The metric's OTLP name, e.g. `hw.temperature`.
    pub metric: String,
    /// Attributes a series must carry with exactly these values (e.g. `hw.id: spindle-1`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// What is checked.
    pub check: HealthCheck,
}

/// What a machine-health rule checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case", tag = "kind")]
pub enum HealthCheck {
    /// Alert above `above` or below `below`; clears only once the value is `hysteresis` back
    /// inside the limit, so a value hovering at the limit does not flap.
    Threshold {
        #[serde(default)]
        above: Option<f64>,
        #[serde(default)]
        below: Option<f64>,
        #[serde(default)]
        hysteresis: f64,
    },
    /// Alert when the value changes faster than `max_per_second` (either direction) between
    /// consecutive points.
    RateOfChange { max_per_second: f64 },
    /// A control chart (`shewhart`, `ewma`, `cusum`) whose limits come from the first
    /// `reference_points` points of each series.
    Chart { chart: ChartConfig, reference_points: NonZeroUsize },
    /// Alert when a series has had no point for `intervals` x `interval`.
    Absence {
        #[serde(with = "humantime_serde")]
        interval: Duration,
        intervals: NonZeroUsize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_a_model() {
        let c: DetectionConfig = serde_yaml::from_str(
            "models:\n  - name: spindle\n    ignore_features: [id]\n    features:\n      temp: {test: psi, threshold: 0.2}\n    baseline: {first_events: 500}\n",
        )
        .expect("parses");
        assert_eq!(c.window_events.get(), 1000);
        assert_eq!(c.models[0].features["temp"].test, Some(TestName(DriftTest::Psi)));
        assert_eq!(c.models[0].baseline, Some(BaselineSource::FirstEvents(NonZeroUsize::new(500).expect("500"))));
    }

    #[test]
    fn unknown_tests_and_options_are_refused() {
        let err = serde_yaml::from_str::<DetectionConfig>("models:\n  - name: m\n    features:\n      a: {test: tt}\n")
            .expect_err("refused");
        assert!(err.to_string().contains("tt"), "{err}");
        // Time and sliding windows are not implemented: not accepted either.
        assert!(serde_yaml::from_str::<DetectionConfig>("models:\n  - name: m\n    window_time: 5m\n").is_err());
    }

    #[test]
    fn health_rules_parse() {
        let c: DetectionConfig = serde_yaml::from_str(
            "machine_health:\n  - name: spindle-hot\n    metric: hw.temperature\n    attributes: {hw.id: spindle-1}\n    check: {kind: chart, chart: {kind: ewma, lambda: 0.1}, reference_points: 100}\n  - name: silent\n    metric: hw.temperature\n    check: {kind: absence, interval: 10s, intervals: 3}\n",
        )
        .expect("parses");
        assert_eq!(c.machine_health.len(), 2);
        assert!(matches!(c.machine_health[1].check, HealthCheck::Absence { .. }));
    }
}
