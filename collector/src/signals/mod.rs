//! Millwatch's signal model: the rows that OTLP data becomes (see SIGNALS.md), grouped in a
//! [`Batch`] per request so that one request is stored, and acknowledged, as a whole.

pub mod attributes;
pub mod mapping;

pub use mapping::{Rejections, map_logs, map_metrics, map_traces};

/// A value of an `ml.feature.*` attribute, typed as it arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureValue {
    Double(f64),
    Int(i64),
    Bool(bool),
    String(String),
    /// Absent, an empty string or a NaN: counted as missing by data quality.
    Missing,
    /// An array, map or bytes value, kept as JSON; a data-quality finding, not a crash.
    Other(String),
}

impl FeatureValue {
    /// The code stored in `inference_feature_values.value_type` (the view spells it out).
    pub fn type_code(&self) -> u8 {
        match self {
            FeatureValue::Double(_) => 0,
            FeatureValue::Int(_) => 1,
            FeatureValue::Bool(_) => 2,
            FeatureValue::String(_) => 3,
            FeatureValue::Missing => 4,
            FeatureValue::Other(_) => 5,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            FeatureValue::Double(_) => "double",
            FeatureValue::Int(_) => "int",
            FeatureValue::Bool(_) => "bool",
            FeatureValue::String(_) => "string",
            FeatureValue::Missing => "missing",
            FeatureValue::Other(_) => "other",
        }
    }
}

/// A resource seen for the first time: its attributes become labels of every row that names it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRow {
    pub resource_id: u64,
    pub service_name: Option<String>,
    pub environment: Option<String>,
    pub host_name: Option<String>,
    pub site_name: Option<String>,
    pub site_line: Option<String>,
    pub site_cell: Option<String>,
    pub tier: Option<String>,
    pub attributes: String,
    pub dropped_attributes_count: u32,
    pub schema_url: Option<String>,
    pub first_seen: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScopeRow {
    pub scope_id: u64,
    pub name: Option<String>,
    pub version: Option<String>,
    pub attributes: Option<String>,
    pub dropped_attributes_count: u32,
    pub schema_url: Option<String>,
    pub first_seen: i64,
}

/// The prediction of an inference event: a number (regression, score) or a class.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    Number(f64),
    Class(String),
}

/// What a model does, as its events say in `ml.model.task`: it decides which performance
/// metrics apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelTask {
    Classification,
    Regression,
}

impl ModelTask {
    /// The attribute's (and the `inferences.task` column's) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelTask::Classification => "classification",
            ModelTask::Regression => "regression",
        }
    }

    /// Reads the attribute's spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<ModelTask> {
        match s {
            "classification" => Some(ModelTask::Classification),
            "regression" => Some(ModelTask::Regression),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InferenceRow {
    pub time: i64,
    pub observed_time: Option<i64>,
    pub model: String,
    pub version: String,
    pub inference_id: Option<String>,
    pub prediction: Prediction,
    pub score: Option<f64>,
    pub duration_s: Option<f64>,
    /// `ml.model.task`, when the event says.
    pub task: Option<ModelTask>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub attributes: Option<String>,
    pub resource_id: u64,
    pub scope_id: u64,
    /// `(name without the ml.feature. prefix, value)`.
    pub features: Vec<(String, FeatureValue)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackRow {
    pub time: i64,
    pub observed_time: Option<i64>,
    pub model: String,
    pub inference_id: String,
    pub label: Prediction,
    pub attributes: Option<String>,
    pub resource_id: u64,
    pub scope_id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Gauge,
    Sum,
    Histogram,
    ExponentialHistogram,
    Summary,
}

impl MetricType {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Gauge => "gauge",
            MetricType::Sum => "sum",
            MetricType::Histogram => "histogram",
            MetricType::ExponentialHistogram => "exponential_histogram",
            MetricType::Summary => "summary",
        }
    }
}

/// A metric series seen for the first time.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRow {
    pub series_id: u64,
    pub name: String,
    pub description: Option<String>,
    pub unit: Option<String>,
    pub metric_type: MetricType,
    pub temporality: Option<&'static str>,
    pub monotonic: Option<bool>,
    pub attributes: String,
    pub resource_id: u64,
    pub scope_id: u64,
    pub first_seen: i64,
}

/// A gauge or sum point.
#[derive(Debug, Clone, PartialEq)]
pub struct PointRow {
    pub series_id: u64,
    pub time: i64,
    pub start_time: Option<i64>,
    pub value: f64,
    pub int_value: Option<i64>,
    pub flags: u32,
}

/// A histogram, exponential histogram or summary point.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DistributionRow {
    pub series_id: u64,
    pub time: i64,
    pub start_time: Option<i64>,
    pub count: u64,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub bounds: Option<Vec<f64>>,
    pub bucket_counts: Option<Vec<u64>>,
    pub scale: Option<i32>,
    pub zero_count: Option<u64>,
    pub zero_threshold: Option<f64>,
    pub positive_offset: Option<i32>,
    pub positive_counts: Option<Vec<u64>>,
    pub negative_offset: Option<i32>,
    pub negative_counts: Option<Vec<u64>>,
    pub quantiles: Option<Vec<f64>>,
    pub quantile_values: Option<Vec<f64>>,
    pub flags: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanRow {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub trace_state: Option<String>,
    pub name: String,
    pub kind: i8,
    pub start_time: i64,
    pub end_time: i64,
    pub duration_s: f64,
    pub status_code: i8,
    pub status_message: Option<String>,
    pub model: Option<String>,
    pub version: Option<String>,
    pub attributes: Option<String>,
    pub events: Option<String>,
    pub links: Option<String>,
    pub flags: u32,
    pub resource_id: u64,
    pub scope_id: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub time: Option<i64>,
    pub observed_time: Option<i64>,
    pub severity_number: i8,
    pub severity_text: Option<String>,
    pub event_name: Option<String>,
    pub body: Option<String>,
    pub attributes: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub flags: u32,
    pub resource_id: u64,
    pub scope_id: u64,
}

/// Everything one OTLP request becomes. Stored in one transaction.
#[derive(Debug, Default)]
pub struct Batch {
    pub resources: Vec<ResourceRow>,
    pub scopes: Vec<ScopeRow>,
    pub inferences: Vec<InferenceRow>,
    pub feedback: Vec<FeedbackRow>,
    pub series: Vec<SeriesRow>,
    pub points: Vec<PointRow>,
    pub distributions: Vec<DistributionRow>,
    pub spans: Vec<SpanRow>,
    pub logs: Vec<LogRow>,
}

impl Batch {
    /// Items as OTLP counts them: data points, log records or spans.
    pub fn items(&self) -> usize {
        self.inferences.len()
            + self.feedback.len()
            + self.points.len()
            + self.distributions.len()
            + self.spans.len()
            + self.logs.len()
    }

    /// Rows across every table, the unit the store's group commit is sized by.
    pub fn rows(&self) -> usize {
        self.items()
            + self.resources.len()
            + self.scopes.len()
            + self.series.len()
            + self
                .inferences
                .iter()
                .map(|i| i.features.len())
                .sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.items() == 0
            && self.resources.is_empty()
            && self.scopes.is_empty()
            && self.series.is_empty()
    }
}
