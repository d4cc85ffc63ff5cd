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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// How often, at most, machine-health rules are evaluated while data arrives. New events wake
    /// the engine as soon as the store commits them; with no data it wakes once a second.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub poll_interval: Duration,
    /// Most inference events read from the store in one pass.
    pub batch_events: NonZeroUsize,
    /// Committed inference events handed to the engine in memory, at most, while it has not
    /// taken them; past that, ingest goes on and the engine reads the rest from the store.
    pub tap_events: NonZeroUsize,
    /// A time window whose end has passed is decided once no event of its model version came
    /// for this long, without waiting for an event of the next window.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub time_window_grace: Duration,
    /// How often closed windows are re-evaluated with feedback (labels) that arrived since.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub performance_interval: Duration,
    /// Labelled events a window (and the baseline) needs before its performance is reported.
    pub performance_min_labels: NonZeroUsize,
    /// A window's performance change against the baseline is judged once: when every event
    /// of the window has its label, or when it has `performance_min_labels` and no more came
    /// for this long. (Measured values follow every label; the test does not, so that a
    /// window is not given one more chance of a false drop each time a label arrives.)
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub performance_settle: Duration,
    /// Closed windows per model version that the performance pass revisits (the newest ones).
    pub performance_windows: NonZeroUsize,
    /// Settings for particular models; a model not listed gets the defaults above.
    #[serde(deserialize_with = "checked_models")]
    pub models: Vec<ModelConfig>,
    /// Rules over stored metrics (temperatures, vibration, utilisation, ...).
    pub machine_health: Vec<HealthRule>,
    /// Streaming change detectors on a model's per-event stream (none unless listed): the
    /// correctness of its predictions as labels arrive (DDM, EDDM, HDDM-A), or a numeric
    /// prediction or feature (ADWIN, Page-Hinkley, KSWIN). A change is the finding
    /// `stream_change`, alerted by `MillwatchStreamChange` once it is enabled.
    #[serde(deserialize_with = "super::streams::checked")]
    pub streams: Vec<super::streams::StreamConfig>,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        let n = |v: usize| NonZeroUsize::new(v).expect("non-zero");
        DetectionConfig {
            enabled: true,
            baseline_events: n(1000),
            window_events: n(1000),
            min_samples: millwatch_detectors::drift::DEFAULT_MIN_SAMPLES,
            rule: RuleName::Live,
            poll_interval: Duration::from_millis(200),
            batch_events: n(50_000),
            tap_events: n(20_000),
            time_window_grace: Duration::from_secs(10),
            performance_interval: Duration::from_secs(30),
            performance_min_labels: n(30),
            performance_settle: Duration::from_secs(300),
            performance_windows: n(50),
            models: Vec::new(),
            machine_health: Vec::new(),
            streams: Vec::new(),
        }
    }
}

/// The `models:` list, each entry's settings checked together ([`ModelConfig::check`]).
fn checked_models<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ModelConfig>, D::Error> {
    let models = Vec::<ModelConfig>::deserialize(d)?;
    for m in &models {
        m.check().map_err(serde::de::Error::custom)?;
    }
    Ok(models)
}

/// The decision rule by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// Events per window (the default shape: count windows of `detection.window_events`).
    #[serde(default)]
    pub window_events: Option<NonZeroUsize>,
    /// With `window_events`: decide the window of the newest `window_events` events every
    /// this many new events (a sliding window); tumbling when absent.
    #[serde(default)]
    pub slide_events: Option<NonZeroUsize>,
    /// Windows by event time instead of by count: each holds the events whose time falls in
    /// it, and is decided when the first event past its end arrives.
    #[serde(default, with = "millwatch_exporters::units::duration")]
    #[schemars(with = "Option<millwatch_exporters::units::DurationText>")]
    pub window_duration: Option<Duration>,
    /// With `window_duration`: a window ends every this long and covers the `window_duration`
    /// before its end (a sliding window); tumbling when absent.
    #[serde(default, with = "millwatch_exporters::units::duration")]
    #[schemars(with = "Option<millwatch_exporters::units::DurationText>")]
    pub slide_duration: Option<Duration>,
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

/// Where a model's baseline comes from: in YAML one of `{first_events: N}`, `{file: PATH}` or
/// `{time_range: {since, until, version}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "BaselineSpec", into = "BaselineSpec")]
pub enum BaselineSource {
    /// The first N events of each version.
    FirstEvents(NonZeroUsize),
    /// A CSV or Parquet file whose columns are feature names (and `ml.prediction`).
    File(PathBuf),
    /// The stored events of this model between two times (RFC 3339), of this version or of
    /// the one named; read when the version is first seen.
    TimeRange(TimeRange),
}

/// The YAML form of [`BaselineSource`]: exactly one key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct BaselineSpec {
    /// The first N events of each version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_events: Option<NonZeroUsize>,
    /// A CSV or Parquet file whose columns are feature names (and `ml.prediction`); a
    /// relative path is taken from the config file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<PathBuf>,
    /// The stored events of this model between two times (RFC 3339), of this version or of
    /// the one named; read when the version is first seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time_range: Option<TimeRange>,
}

impl TryFrom<BaselineSpec> for BaselineSource {
    type Error = String;
    fn try_from(spec: BaselineSpec) -> Result<Self, String> {
        match (spec.first_events, spec.file, spec.time_range) {
            (Some(n), None, None) => Ok(BaselineSource::FirstEvents(n)),
            (None, Some(p), None) => Ok(BaselineSource::File(p)),
            (None, None, Some(r)) => Ok(BaselineSource::TimeRange(r)),
            _ => Err(
                "a baseline takes exactly one of `first_events`, `file` or `time_range`".to_owned(),
            ),
        }
    }
}

impl From<BaselineSource> for BaselineSpec {
    fn from(b: BaselineSource) -> Self {
        match b {
            BaselineSource::FirstEvents(n) => BaselineSpec {
                first_events: Some(n),
                ..Default::default()
            },
            BaselineSource::File(p) => BaselineSpec {
                file: Some(p),
                ..Default::default()
            },
            BaselineSource::TimeRange(r) => BaselineSpec {
                time_range: Some(r),
                ..Default::default()
            },
        }
    }
}

/// A stretch of stored events that forms a baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    /// Earliest event time taken, e.g. `2026-11-02T06:00:00Z`.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub since: std::time::SystemTime,
    /// Events before this time are taken.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub until: std::time::SystemTime,
    /// The version whose events are taken; the version being watched when absent.
    #[serde(default)]
    pub version: Option<String>,
}

impl ModelConfig {
    /// What is wrong with this entry, if anything (window settings that do not go together).
    pub fn check(&self) -> Result<(), String> {
        if self.window_duration.is_some()
            && (self.window_events.is_some() || self.slide_events.is_some())
        {
            return Err(format!(
                "model {}: window_duration (time windows) cannot be combined with window_events or slide_events (count windows)",
                self.name
            ));
        }
        if self.slide_duration.is_some() && self.window_duration.is_none() {
            return Err(format!(
                "model {}: slide_duration needs window_duration",
                self.name
            ));
        }
        if let (Some(d), Some(s)) = (self.window_duration, self.slide_duration)
            && (s.is_zero() || s > d)
        {
            return Err(format!(
                "model {}: slide_duration must be above zero and at most window_duration",
                self.name
            ));
        }
        if self.window_duration.is_some_and(|d| d.is_zero()) {
            return Err(format!(
                "model {}: window_duration must be above zero",
                self.name
            ));
        }
        if let (Some(s), w) = (self.slide_events, self.window_events)
            && w.is_some_and(|w| s > w)
        {
            return Err(format!(
                "model {}: slide_events must be at most window_events",
                self.name
            ));
        }
        if let Some(BaselineSource::TimeRange(r)) = &self.baseline
            && r.until <= r.since
        {
            return Err(format!(
                "model {}: baseline time_range: until must be after since",
                self.name
            ));
        }
        Ok(())
    }
}

/// Test and threshold for one feature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, schemars::JsonSchema)]
#[schemars(with = "String")]
pub struct TestName(pub DriftTest);

impl Serialize for TestName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for TestName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<DriftTest>()
            .map(TestName)
            .map_err(serde::de::Error::custom)
    }
}

/// A machine-health rule: a check applied to every stored series of a metric whose attributes
/// match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
    Chart {
        chart: ChartConfig,
        reference_points: NonZeroUsize,
    },
    /// Alert when a series has had no point for `intervals` x `interval`.
    Absence {
        #[serde(with = "millwatch_exporters::units::duration")]
        #[schemars(with = "millwatch_exporters::units::DurationText")]
        interval: Duration,
        intervals: NonZeroUsize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_a_model() {
        let c: DetectionConfig = serde_saphyr::from_str(
            "models:\n  - name: spindle\n    ignore_features: [id]\n    features:\n      temp: {test: psi, threshold: 0.2}\n    baseline: {first_events: 500}\n",
        )
        .expect("parses");
        assert_eq!(c.window_events.get(), 1000);
        assert_eq!(
            c.models[0].features["temp"].test,
            Some(TestName(DriftTest::Psi))
        );
        assert_eq!(
            c.models[0].baseline,
            Some(BaselineSource::FirstEvents(
                NonZeroUsize::new(500).expect("500")
            ))
        );
    }

    #[test]
    fn unknown_tests_and_options_are_refused() {
        let err = serde_saphyr::from_str::<DetectionConfig>(
            "models:\n  - name: m\n    features:\n      a: {test: tt}\n",
        )
        .expect_err("refused");
        assert!(err.to_string().contains("tt"), "{err}");
        assert!(
            serde_saphyr::from_str::<DetectionConfig>(
                "models:\n  - name: m\n    window_time: 5m\n"
            )
            .is_err()
        );
    }

    #[test]
    fn window_shapes_and_time_range_baselines() {
        let c: DetectionConfig = serde_saphyr::from_str(
            "models:\n  - name: a\n    window_events: 500\n    slide_events: 100\n  - name: b\n    window_duration: 1h\n    slide_duration: 15m\n    baseline: {time_range: {since: 2026-11-02T06:00:00Z, until: 2026-11-02T14:00:00Z, version: 3.1.0}}\n",
        )
        .expect("parses");
        assert!(c.models.iter().all(|m| m.check().is_ok()));
        assert_eq!(c.models[1].window_duration, Some(Duration::from_secs(3600)));
        let Some(BaselineSource::TimeRange(r)) = &c.models[1].baseline else {
            panic!("time range")
        };
        assert_eq!(r.version.as_deref(), Some("3.1.0"));
        assert_eq!(
            r.until.duration_since(r.since).expect("ordered"),
            Duration::from_secs(8 * 3600)
        );

        for (yaml, says) in [
            (
                "window_events: 10\n    window_duration: 1m",
                "cannot be combined",
            ),
            ("slide_duration: 1m", "needs window_duration"),
            (
                "window_duration: 1m\n    slide_duration: 2m",
                "at most window_duration",
            ),
            (
                "window_events: 10\n    slide_events: 20",
                "at most window_events",
            ),
        ] {
            let err = serde_saphyr::from_str::<DetectionConfig>(&format!(
                "models:\n  - name: m\n    {yaml}\n"
            ))
            .expect_err(yaml)
            .to_string();
            assert!(err.contains(says), "{yaml}: {err}");
        }
    }

    #[test]
    fn health_rules_parse() {
        let c: DetectionConfig = serde_saphyr::from_str(
            "machine_health:\n  - name: spindle-hot\n    metric: hw.temperature\n    attributes: {hw.id: spindle-1}\n    check: {kind: chart, chart: {kind: ewma, lambda: 0.1}, reference_points: 100}\n  - name: silent\n    metric: hw.temperature\n    check: {kind: absence, interval: 10s, intervals: 3}\n",
        )
        .expect("parses");
        assert_eq!(c.machine_health.len(), 2);
        assert!(matches!(
            c.machine_health[1].check,
            HealthCheck::Absence { .. }
        ));
    }
}
