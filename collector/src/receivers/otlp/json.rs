//! OTLP/HTTP JSON: decodes `application/json` export requests into the prost types and encodes
//! the JSON responses (export responses and `google.rpc.Status`).
//!
//! OTLP JSON is the proto3 JSON mapping with the deviations the OTLP specification lists: trace
//! and span ids are hex, not base64. Like any proto3 JSON parser this one also accepts the
//! original snake_case field names, enum names besides integers, 64-bit integers as strings or
//! numbers, `null` for "not set", and it ignores unknown fields, so SDKs that bend the rules a
//! little are still understood. Errors name the JSON path of the offending value.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, DataPointFlags, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint, exemplar,
    exponential_histogram_data_point, metric, number_data_point, summary_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use serde_json::{Map, Value};

/// Why a JSON body is not a valid OTLP export request.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The body is not well-formed JSON; serde_json's message carries the line and column.
    #[error("invalid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    /// Well-formed JSON that does not fit the OTLP schema at `path`.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

type Result<T, E = JsonError> = std::result::Result<T, E>;

const TRACE_ID_BYTES: usize = 16;
const SPAN_ID_BYTES: usize = 8;

const UINT64: &str = "an unsigned 64-bit integer as a string or number";
const INT64: &str = "a signed 64-bit integer as a string or number";
const UINT32: &str = "an unsigned 32-bit integer";
const INT32: &str = "a signed 32-bit integer";

/// Visits the members of a JSON object that stands for a protobuf message. Each arm lists the
/// lowerCamelCase name (used in error paths) and, where it differs, the original proto name.
/// `null` members are skipped (proto3 JSON: null means the default); unknown members are ignored.
macro_rules! fields {
    ($value:expr, $path:ident, |$v:ident, $p:ident| {
        $( $camel:literal $(| $snake:literal)? => $body:expr ),* $(,)?
    }) => {
        for (key, $v) in object($value, $path)? {
            if $v.is_null() {
                continue;
            }
            match key.as_str() {
                $( $camel $(| $snake)? => {
                    let $p = &$path.field($camel);
                    $body;
                } )*
                _ => {}
            }
        }
    };
}

/// Decodes an OTLP/HTTP JSON body sent to `/v1/metrics`.
pub fn decode_metrics(body: &[u8]) -> Result<ExportMetricsServiceRequest> {
    let root = serde_json::from_slice(body)?;
    let path = &Path::ROOT;
    let mut request = ExportMetricsServiceRequest::default();
    fields!(root, path, |v, p| {
        "resourceMetrics" | "resource_metrics" => {
            request.resource_metrics = list(v, p, resource_metrics)?
        },
    });
    Ok(request)
}

/// Decodes an OTLP/HTTP JSON body sent to `/v1/logs`.
pub fn decode_logs(body: &[u8]) -> Result<ExportLogsServiceRequest> {
    let root = serde_json::from_slice(body)?;
    let path = &Path::ROOT;
    let mut request = ExportLogsServiceRequest::default();
    fields!(root, path, |v, p| {
        "resourceLogs" | "resource_logs" => request.resource_logs = list(v, p, resource_logs)?,
    });
    Ok(request)
}

/// Decodes an OTLP/HTTP JSON body sent to `/v1/traces`.
pub fn decode_traces(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    let root = serde_json::from_slice(body)?;
    let path = &Path::ROOT;
    let mut request = ExportTraceServiceRequest::default();
    fields!(root, path, |v, p| {
        "resourceSpans" | "resource_spans" => request.resource_spans = list(v, p, resource_spans)?,
    });
    Ok(request)
}

/// The JSON body of a metrics export response: `{}` on full success.
pub fn encode_metrics_response(r: &ExportMetricsServiceResponse) -> Vec<u8> {
    encode_response(r.partial_success.as_ref().map(|s| {
        (
            "rejectedDataPoints",
            s.rejected_data_points,
            s.error_message.as_str(),
        )
    }))
}

/// The JSON body of a logs export response: `{}` on full success.
pub fn encode_logs_response(r: &ExportLogsServiceResponse) -> Vec<u8> {
    encode_response(r.partial_success.as_ref().map(|s| {
        (
            "rejectedLogRecords",
            s.rejected_log_records,
            s.error_message.as_str(),
        )
    }))
}

/// The JSON body of a traces export response: `{}` on full success.
pub fn encode_traces_response(r: &ExportTraceServiceResponse) -> Vec<u8> {
    encode_response(
        r.partial_success
            .as_ref()
            .map(|s| ("rejectedSpans", s.rejected_spans, s.error_message.as_str())),
    )
}

/// A `google.rpc.Status` as JSON, the body OTLP/HTTP requires on every 4xx and 5xx answer.
pub fn encode_status(code: i32, message: &str) -> Vec<u8> {
    format!(
        r#"{{"code":{code},"message":{},"details":[]}}"#,
        Value::String(message.to_owned())
    )
    .into_bytes()
}

/// Proto3 JSON leaves out fields that hold their default value, and writes int64 as a string.
fn encode_response(partial_success: Option<(&str, i64, &str)>) -> Vec<u8> {
    let mut response = Map::new();
    if let Some((rejected_key, rejected, error_message)) = partial_success {
        let mut partial = Map::new();
        if rejected != 0 {
            partial.insert(rejected_key.to_owned(), rejected.to_string().into());
        }
        if !error_message.is_empty() {
            partial.insert("errorMessage".to_owned(), error_message.into());
        }
        response.insert("partialSuccess".to_owned(), Value::Object(partial));
    }
    Value::Object(response).to_string().into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Where in the document a value sits. Built on the stack while walking and only rendered when an
// error needs it, so a valid body costs no allocation for paths.

#[derive(Clone, Copy)]
enum Segment {
    Root,
    Field(&'static str),
    Index(usize),
}

#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    segment: Segment,
}

impl Path<'_> {
    const ROOT: Path<'static> = Path {
        parent: None,
        segment: Segment::Root,
    };

    fn field(&self, name: &'static str) -> Path<'_> {
        Path {
            parent: Some(self),
            segment: Segment::Field(name),
        }
    }

    fn index(&self, index: usize) -> Path<'_> {
        Path {
            parent: Some(self),
            segment: Segment::Index(index),
        }
    }

    fn render(&self) -> String {
        let mut segments = Vec::new();
        let mut at = Some(self);
        while let Some(path) = at {
            segments.push(path.segment);
            at = path.parent;
        }
        let mut out = String::new();
        for segment in segments.iter().rev() {
            match segment {
                Segment::Root => {}
                Segment::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Segment::Index(index) => {
                    let _ = write!(out, "[{index}]");
                }
            }
        }
        if out.is_empty() {
            out.push_str("request body");
        }
        out
    }

    fn error(&self, message: String) -> JsonError {
        JsonError::Invalid {
            path: self.render(),
            message,
        }
    }

    fn expected(&self, what: &str, got: &Value) -> JsonError {
        self.error(format!("expected {what}, got {}", describe(got)))
    }
}

/// A short rendering of a value for error messages: scalars as JSON, containers by kind.
fn describe(value: &Value) -> String {
    const MAX_CHARS: usize = 64;
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::String(s) if s.chars().count() > MAX_CHARS => {
            let head: String = s.chars().take(MAX_CHARS).collect();
            format!("{}…", Value::String(head))
        }
        Value::String(_) => value.to_string(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Walking messages.

fn object(value: Value, path: &Path) -> Result<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(path.expected("an object", &other)),
    }
}

fn list<T>(
    value: Value,
    path: &Path,
    mut item: impl FnMut(Value, &Path) -> Result<T>,
) -> Result<Vec<T>> {
    match value {
        Value::Array(values) => values
            .into_iter()
            .enumerate()
            .map(|(index, value)| item(value, &path.index(index)))
            .collect(),
        other => Err(path.expected("an array", &other)),
    }
}

/// Records that member `name` of a oneof is set; proto3 JSON refuses a second member.
fn one_of(chosen: &mut Option<&'static str>, name: &'static str, message: &Path) -> Result<()> {
    match chosen.replace(name) {
        Some(previous) if previous != name => Err(message.error(format!(
            "both {previous} and {name} are set, but they are alternatives and only one may be"
        ))),
        _ => Ok(()),
    }
}

fn string(value: Value, path: &Path) -> Result<String> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(path.expected("a string", &other)),
    }
}

fn boolean(value: Value, path: &Path) -> Result<bool> {
    match value {
        Value::Bool(b) => Ok(b),
        other => Err(path.expected("true or false", &other)),
    }
}

/// The integer a JSON number or decimal string stands for, if it is a whole number that fits
/// in 64 bits (signed or unsigned). `5.0` and `1e3` count as whole numbers; `5.5` does not.
fn whole_number(value: &Value) -> Option<i128> {
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    match value {
        Value::Number(n) => n
            .as_u64()
            .map(i128::from)
            .or_else(|| n.as_i64().map(i128::from))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < TWO_POW_64)
                    .map(|f| f as i128)
            }),
        Value::String(s) => s.parse::<i128>().ok(),
        _ => None,
    }
}

fn integer<T: TryFrom<i128>>(value: Value, path: &Path, what: &str) -> Result<T> {
    whole_number(&value)
        .and_then(|i| T::try_from(i).ok())
        .ok_or_else(|| path.expected(what, &value))
}

fn double(value: Value, path: &Path) -> Result<f64> {
    let parsed = match &value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            // Rust also reads "inf" and "nan", which proto3 JSON does not allow.
            s => s.parse::<f64>().ok().filter(|f| f.is_finite()),
        },
        _ => None,
    };
    parsed.ok_or_else(|| {
        path.expected(
            r#"a number or one of "NaN", "Infinity", "-Infinity""#,
            &value,
        )
    })
}

/// An enum as its integer (unknown values are kept, as proto3 enums are open) or its name.
fn enumeration(
    value: Value,
    path: &Path,
    what: &str,
    by_name: fn(&str) -> Option<i32>,
) -> Result<i32> {
    let parsed = match &value {
        Value::String(s) => by_name(s).or_else(|| s.parse().ok()),
        Value::Number(_) => whole_number(&value).and_then(|i| i32::try_from(i).ok()),
        _ => None,
    };
    parsed.ok_or_else(|| path.expected(what, &value))
}

fn aggregation_temporality(value: Value, path: &Path) -> Result<i32> {
    enumeration(
        value,
        path,
        "an aggregation temporality as an integer or a name such as \
         AGGREGATION_TEMPORALITY_CUMULATIVE",
        |name| AggregationTemporality::from_str_name(name).map(|t| t as i32),
    )
}

/// Data point flags are a plain uint32 bit field; the names of single flags are accepted too.
fn data_point_flags(value: Value, path: &Path) -> Result<u32> {
    if let Value::String(name) = &value
        && let Some(flag) = DataPointFlags::from_str_name(name)
    {
        return Ok(flag as u32);
    }
    integer(value, path, UINT32)
}

/// A trace or span id: hex of exactly `len` bytes, in either case; `""` means no id.
fn id(value: Value, path: &Path, len: usize, what: &str) -> Result<Vec<u8>> {
    if let Value::String(s) = &value {
        if s.is_empty() {
            return Ok(Vec::new());
        }
        if s.len() == 2 * len
            && let Some(bytes) = hex(s)
        {
            return Ok(bytes);
        }
    }
    let mut message = format!(
        "expected {what} as {} hex digits, got {}",
        2 * len,
        describe(&value)
    );
    if matches!(&value, Value::String(s) if s.len() == len.div_ceil(3) * 4) {
        message.push_str(" (OTLP JSON writes ids in hex, not base64)");
    }
    Err(path.error(message))
}

fn hex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

fn trace_id(value: Value, path: &Path) -> Result<Vec<u8>> {
    id(value, path, TRACE_ID_BYTES, "a trace id")
}

fn span_id(value: Value, path: &Path) -> Result<Vec<u8>> {
    id(value, path, SPAN_ID_BYTES, "a span id")
}

/// Proto3 JSON bytes: base64 with the standard or the URL-safe alphabet, padded or not.
fn bytes(value: Value, path: &Path) -> Result<Vec<u8>> {
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
    if let Value::String(s) = &value
        && let Ok(bytes) = STANDARD.decode(s).or_else(|_| URL_SAFE.decode(s))
    {
        return Ok(bytes);
    }
    Err(path.expected("base64-encoded bytes", &value))
}

// common.v1 and resource.v1

fn any_value(value: Value, path: &Path) -> Result<AnyValue> {
    use any_value::Value as V;
    let mut chosen = None;
    let mut any = AnyValue::default();
    fields!(value, path, |v, p| {
        "stringValue" | "string_value" => {
            one_of(&mut chosen, "stringValue", path)?;
            any.value = Some(V::StringValue(string(v, p)?))
        },
        "boolValue" | "bool_value" => {
            one_of(&mut chosen, "boolValue", path)?;
            any.value = Some(V::BoolValue(boolean(v, p)?))
        },
        "intValue" | "int_value" => {
            one_of(&mut chosen, "intValue", path)?;
            any.value = Some(V::IntValue(integer(v, p, INT64)?))
        },
        "doubleValue" | "double_value" => {
            one_of(&mut chosen, "doubleValue", path)?;
            any.value = Some(V::DoubleValue(double(v, p)?))
        },
        "arrayValue" | "array_value" => {
            one_of(&mut chosen, "arrayValue", path)?;
            any.value = Some(V::ArrayValue(array_value(v, p)?))
        },
        "kvlistValue" | "kvlist_value" => {
            one_of(&mut chosen, "kvlistValue", path)?;
            any.value = Some(V::KvlistValue(kvlist_value(v, p)?))
        },
        "bytesValue" | "bytes_value" => {
            one_of(&mut chosen, "bytesValue", path)?;
            any.value = Some(V::BytesValue(bytes(v, p)?))
        },
        "stringValueStrindex" | "string_value_strindex" => {
            one_of(&mut chosen, "stringValueStrindex", path)?;
            any.value = Some(V::StringValueStrindex(integer(v, p, INT32)?))
        },
    });
    Ok(any)
}

fn array_value(value: Value, path: &Path) -> Result<ArrayValue> {
    let mut array = ArrayValue::default();
    fields!(value, path, |v, p| {
        "values" => array.values = list(v, p, any_value)?,
    });
    Ok(array)
}

fn kvlist_value(value: Value, path: &Path) -> Result<KeyValueList> {
    let mut kvlist = KeyValueList::default();
    fields!(value, path, |v, p| {
        "values" => kvlist.values = list(v, p, key_value)?,
    });
    Ok(kvlist)
}

fn key_value(value: Value, path: &Path) -> Result<KeyValue> {
    let mut kv = KeyValue::default();
    fields!(value, path, |v, p| {
        "key" => kv.key = string(v, p)?,
        "value" => kv.value = Some(any_value(v, p)?),
        "keyStrindex" | "key_strindex" => kv.key_strindex = integer(v, p, INT32)?,
    });
    Ok(kv)
}

fn attributes(value: Value, path: &Path) -> Result<Vec<KeyValue>> {
    list(value, path, key_value)
}

fn strings(value: Value, path: &Path) -> Result<Vec<String>> {
    list(value, path, string)
}

fn resource(value: Value, path: &Path) -> Result<Resource> {
    let mut resource = Resource::default();
    fields!(value, path, |v, p| {
        "attributes" => resource.attributes = attributes(v, p)?,
        "droppedAttributesCount" | "dropped_attributes_count" => {
            resource.dropped_attributes_count = integer(v, p, UINT32)?
        },
        "entityRefs" | "entity_refs" => resource.entity_refs = list(v, p, entity_ref)?,
    });
    Ok(resource)
}

fn entity_ref(value: Value, path: &Path) -> Result<EntityRef> {
    let mut entity = EntityRef::default();
    fields!(value, path, |v, p| {
        "schemaUrl" | "schema_url" => entity.schema_url = string(v, p)?,
        "type" => entity.r#type = string(v, p)?,
        "idKeys" | "id_keys" => entity.id_keys = strings(v, p)?,
        "descriptionKeys" | "description_keys" => entity.description_keys = strings(v, p)?,
    });
    Ok(entity)
}

fn scope(value: Value, path: &Path) -> Result<InstrumentationScope> {
    let mut scope = InstrumentationScope::default();
    fields!(value, path, |v, p| {
        "name" => scope.name = string(v, p)?,
        "version" => scope.version = string(v, p)?,
        "attributes" => scope.attributes = attributes(v, p)?,
        "droppedAttributesCount" | "dropped_attributes_count" => {
            scope.dropped_attributes_count = integer(v, p, UINT32)?
        },
    });
    Ok(scope)
}

// metrics.v1

fn resource_metrics(value: Value, path: &Path) -> Result<ResourceMetrics> {
    let mut rm = ResourceMetrics::default();
    fields!(value, path, |v, p| {
        "resource" => rm.resource = Some(resource(v, p)?),
        "scopeMetrics" | "scope_metrics" => rm.scope_metrics = list(v, p, scope_metrics)?,
        "schemaUrl" | "schema_url" => rm.schema_url = string(v, p)?,
    });
    Ok(rm)
}

fn scope_metrics(value: Value, path: &Path) -> Result<ScopeMetrics> {
    let mut sm = ScopeMetrics::default();
    fields!(value, path, |v, p| {
        "scope" => sm.scope = Some(scope(v, p)?),
        "metrics" => sm.metrics = list(v, p, metric)?,
        "schemaUrl" | "schema_url" => sm.schema_url = string(v, p)?,
    });
    Ok(sm)
}

fn metric(value: Value, path: &Path) -> Result<Metric> {
    use metric::Data;
    let mut chosen = None;
    let mut m = Metric::default();
    fields!(value, path, |v, p| {
        "name" => m.name = string(v, p)?,
        "description" => m.description = string(v, p)?,
        "unit" => m.unit = string(v, p)?,
        "metadata" => m.metadata = attributes(v, p)?,
        "gauge" => {
            one_of(&mut chosen, "gauge", path)?;
            m.data = Some(Data::Gauge(gauge(v, p)?))
        },
        "sum" => {
            one_of(&mut chosen, "sum", path)?;
            m.data = Some(Data::Sum(sum(v, p)?))
        },
        "histogram" => {
            one_of(&mut chosen, "histogram", path)?;
            m.data = Some(Data::Histogram(histogram(v, p)?))
        },
        "exponentialHistogram" | "exponential_histogram" => {
            one_of(&mut chosen, "exponentialHistogram", path)?;
            m.data = Some(Data::ExponentialHistogram(exponential_histogram(v, p)?))
        },
        "summary" => {
            one_of(&mut chosen, "summary", path)?;
            m.data = Some(Data::Summary(summary(v, p)?))
        },
    });
    Ok(m)
}

fn gauge(value: Value, path: &Path) -> Result<Gauge> {
    let mut gauge = Gauge::default();
    fields!(value, path, |v, p| {
        "dataPoints" | "data_points" => gauge.data_points = list(v, p, number_data_point)?,
    });
    Ok(gauge)
}

fn sum(value: Value, path: &Path) -> Result<Sum> {
    let mut sum = Sum::default();
    fields!(value, path, |v, p| {
        "dataPoints" | "data_points" => sum.data_points = list(v, p, number_data_point)?,
        "aggregationTemporality" | "aggregation_temporality" => {
            sum.aggregation_temporality = aggregation_temporality(v, p)?
        },
        "isMonotonic" | "is_monotonic" => sum.is_monotonic = boolean(v, p)?,
    });
    Ok(sum)
}

fn histogram(value: Value, path: &Path) -> Result<Histogram> {
    let mut histogram = Histogram::default();
    fields!(value, path, |v, p| {
        "dataPoints" | "data_points" => {
            histogram.data_points = list(v, p, histogram_data_point)?
        },
        "aggregationTemporality" | "aggregation_temporality" => {
            histogram.aggregation_temporality = aggregation_temporality(v, p)?
        },
    });
    Ok(histogram)
}

fn exponential_histogram(value: Value, path: &Path) -> Result<ExponentialHistogram> {
    let mut histogram = ExponentialHistogram::default();
    fields!(value, path, |v, p| {
        "dataPoints" | "data_points" => {
            histogram.data_points = list(v, p, exponential_histogram_data_point)?
        },
        "aggregationTemporality" | "aggregation_temporality" => {
            histogram.aggregation_temporality = aggregation_temporality(v, p)?
        },
    });
    Ok(histogram)
}

fn summary(value: Value, path: &Path) -> Result<Summary> {
    let mut summary = Summary::default();
    fields!(value, path, |v, p| {
        "dataPoints" | "data_points" => summary.data_points = list(v, p, summary_data_point)?,
    });
    Ok(summary)
}

fn number_data_point(value: Value, path: &Path) -> Result<NumberDataPoint> {
    use number_data_point::Value as V;
    let mut chosen = None;
    let mut point = NumberDataPoint::default();
    fields!(value, path, |v, p| {
        "attributes" => point.attributes = attributes(v, p)?,
        "startTimeUnixNano" | "start_time_unix_nano" => {
            point.start_time_unix_nano = integer(v, p, UINT64)?
        },
        "timeUnixNano" | "time_unix_nano" => point.time_unix_nano = integer(v, p, UINT64)?,
        "asDouble" | "as_double" => {
            one_of(&mut chosen, "asDouble", path)?;
            point.value = Some(V::AsDouble(double(v, p)?))
        },
        "asInt" | "as_int" => {
            one_of(&mut chosen, "asInt", path)?;
            point.value = Some(V::AsInt(integer(v, p, INT64)?))
        },
        "exemplars" => point.exemplars = list(v, p, exemplar)?,
        "flags" => point.flags = data_point_flags(v, p)?,
    });
    Ok(point)
}

fn histogram_data_point(value: Value, path: &Path) -> Result<HistogramDataPoint> {
    let mut point = HistogramDataPoint::default();
    fields!(value, path, |v, p| {
        "attributes" => point.attributes = attributes(v, p)?,
        "startTimeUnixNano" | "start_time_unix_nano" => {
            point.start_time_unix_nano = integer(v, p, UINT64)?
        },
        "timeUnixNano" | "time_unix_nano" => point.time_unix_nano = integer(v, p, UINT64)?,
        "count" => point.count = integer(v, p, UINT64)?,
        "sum" => point.sum = Some(double(v, p)?),
        "bucketCounts" | "bucket_counts" => {
            point.bucket_counts = list(v, p, |v, p| integer(v, p, UINT64))?
        },
        "explicitBounds" | "explicit_bounds" => point.explicit_bounds = list(v, p, double)?,
        "exemplars" => point.exemplars = list(v, p, exemplar)?,
        "flags" => point.flags = data_point_flags(v, p)?,
        "min" => point.min = Some(double(v, p)?),
        "max" => point.max = Some(double(v, p)?),
    });
    Ok(point)
}

fn exponential_histogram_data_point(
    value: Value,
    path: &Path,
) -> Result<ExponentialHistogramDataPoint> {
    let mut point = ExponentialHistogramDataPoint::default();
    fields!(value, path, |v, p| {
        "attributes" => point.attributes = attributes(v, p)?,
        "startTimeUnixNano" | "start_time_unix_nano" => {
            point.start_time_unix_nano = integer(v, p, UINT64)?
        },
        "timeUnixNano" | "time_unix_nano" => point.time_unix_nano = integer(v, p, UINT64)?,
        "count" => point.count = integer(v, p, UINT64)?,
        "sum" => point.sum = Some(double(v, p)?),
        "scale" => point.scale = integer(v, p, INT32)?,
        "zeroCount" | "zero_count" => point.zero_count = integer(v, p, UINT64)?,
        "positive" => point.positive = Some(buckets(v, p)?),
        "negative" => point.negative = Some(buckets(v, p)?),
        "flags" => point.flags = data_point_flags(v, p)?,
        "exemplars" => point.exemplars = list(v, p, exemplar)?,
        "min" => point.min = Some(double(v, p)?),
        "max" => point.max = Some(double(v, p)?),
        "zeroThreshold" | "zero_threshold" => point.zero_threshold = double(v, p)?,
    });
    Ok(point)
}

fn buckets(value: Value, path: &Path) -> Result<exponential_histogram_data_point::Buckets> {
    let mut buckets = exponential_histogram_data_point::Buckets::default();
    fields!(value, path, |v, p| {
        "offset" => buckets.offset = integer(v, p, INT32)?,
        "bucketCounts" | "bucket_counts" => {
            buckets.bucket_counts = list(v, p, |v, p| integer(v, p, UINT64))?
        },
    });
    Ok(buckets)
}

fn summary_data_point(value: Value, path: &Path) -> Result<SummaryDataPoint> {
    let mut point = SummaryDataPoint::default();
    fields!(value, path, |v, p| {
        "attributes" => point.attributes = attributes(v, p)?,
        "startTimeUnixNano" | "start_time_unix_nano" => {
            point.start_time_unix_nano = integer(v, p, UINT64)?
        },
        "timeUnixNano" | "time_unix_nano" => point.time_unix_nano = integer(v, p, UINT64)?,
        "count" => point.count = integer(v, p, UINT64)?,
        "sum" => point.sum = double(v, p)?,
        "quantileValues" | "quantile_values" => {
            point.quantile_values = list(v, p, value_at_quantile)?
        },
        "flags" => point.flags = data_point_flags(v, p)?,
    });
    Ok(point)
}

fn value_at_quantile(value: Value, path: &Path) -> Result<summary_data_point::ValueAtQuantile> {
    let mut quantile = summary_data_point::ValueAtQuantile::default();
    fields!(value, path, |v, p| {
        "quantile" => quantile.quantile = double(v, p)?,
        "value" => quantile.value = double(v, p)?,
    });
    Ok(quantile)
}

fn exemplar(value: Value, path: &Path) -> Result<Exemplar> {
    use exemplar::Value as V;
    let mut chosen = None;
    let mut ex = Exemplar::default();
    fields!(value, path, |v, p| {
        "filteredAttributes" | "filtered_attributes" => {
            ex.filtered_attributes = attributes(v, p)?
        },
        "timeUnixNano" | "time_unix_nano" => ex.time_unix_nano = integer(v, p, UINT64)?,
        "asDouble" | "as_double" => {
            one_of(&mut chosen, "asDouble", path)?;
            ex.value = Some(V::AsDouble(double(v, p)?))
        },
        "asInt" | "as_int" => {
            one_of(&mut chosen, "asInt", path)?;
            ex.value = Some(V::AsInt(integer(v, p, INT64)?))
        },
        "spanId" | "span_id" => ex.span_id = span_id(v, p)?,
        "traceId" | "trace_id" => ex.trace_id = trace_id(v, p)?,
    });
    Ok(ex)
}

// logs.v1

fn resource_logs(value: Value, path: &Path) -> Result<ResourceLogs> {
    let mut rl = ResourceLogs::default();
    fields!(value, path, |v, p| {
        "resource" => rl.resource = Some(resource(v, p)?),
        "scopeLogs" | "scope_logs" => rl.scope_logs = list(v, p, scope_logs)?,
        "schemaUrl" | "schema_url" => rl.schema_url = string(v, p)?,
    });
    Ok(rl)
}

fn scope_logs(value: Value, path: &Path) -> Result<ScopeLogs> {
    let mut sl = ScopeLogs::default();
    fields!(value, path, |v, p| {
        "scope" => sl.scope = Some(scope(v, p)?),
        "logRecords" | "log_records" => sl.log_records = list(v, p, log_record)?,
        "schemaUrl" | "schema_url" => sl.schema_url = string(v, p)?,
    });
    Ok(sl)
}

fn log_record(value: Value, path: &Path) -> Result<LogRecord> {
    let mut record = LogRecord::default();
    fields!(value, path, |v, p| {
        "timeUnixNano" | "time_unix_nano" => record.time_unix_nano = integer(v, p, UINT64)?,
        "observedTimeUnixNano" | "observed_time_unix_nano" => {
            record.observed_time_unix_nano = integer(v, p, UINT64)?
        },
        "severityNumber" | "severity_number" => {
            record.severity_number = enumeration(
                v,
                p,
                "a severity number as an integer or a name such as SEVERITY_NUMBER_INFO",
                |name| SeverityNumber::from_str_name(name).map(|s| s as i32),
            )?
        },
        "severityText" | "severity_text" => record.severity_text = string(v, p)?,
        "body" => record.body = Some(any_value(v, p)?),
        "attributes" => record.attributes = attributes(v, p)?,
        "droppedAttributesCount" | "dropped_attributes_count" => {
            record.dropped_attributes_count = integer(v, p, UINT32)?
        },
        "flags" => record.flags = integer(v, p, UINT32)?,
        "traceId" | "trace_id" => record.trace_id = trace_id(v, p)?,
        "spanId" | "span_id" => record.span_id = span_id(v, p)?,
        "eventName" | "event_name" => record.event_name = string(v, p)?,
    });
    Ok(record)
}

// trace.v1

fn resource_spans(value: Value, path: &Path) -> Result<ResourceSpans> {
    let mut rs = ResourceSpans::default();
    fields!(value, path, |v, p| {
        "resource" => rs.resource = Some(resource(v, p)?),
        "scopeSpans" | "scope_spans" => rs.scope_spans = list(v, p, scope_spans)?,
        "schemaUrl" | "schema_url" => rs.schema_url = string(v, p)?,
    });
    Ok(rs)
}

fn scope_spans(value: Value, path: &Path) -> Result<ScopeSpans> {
    let mut ss = ScopeSpans::default();
    fields!(value, path, |v, p| {
        "scope" => ss.scope = Some(scope(v, p)?),
        "spans" => ss.spans = list(v, p, span)?,
        "schemaUrl" | "schema_url" => ss.schema_url = string(v, p)?,
    });
    Ok(ss)
}

fn span(value: Value, path: &Path) -> Result<Span> {
    let mut s = Span::default();
    fields!(value, path, |v, p| {
        "traceId" | "trace_id" => s.trace_id = trace_id(v, p)?,
        "spanId" | "span_id" => s.span_id = span_id(v, p)?,
        "traceState" | "trace_state" => s.trace_state = string(v, p)?,
        "parentSpanId" | "parent_span_id" => s.parent_span_id = span_id(v, p)?,
        "flags" => s.flags = integer(v, p, UINT32)?,
        "name" => s.name = string(v, p)?,
        "kind" => {
            s.kind = enumeration(
                v,
                p,
                "a span kind as an integer or a name such as SPAN_KIND_SERVER",
                |name| span::SpanKind::from_str_name(name).map(|k| k as i32),
            )?
        },
        "startTimeUnixNano" | "start_time_unix_nano" => {
            s.start_time_unix_nano = integer(v, p, UINT64)?
        },
        "endTimeUnixNano" | "end_time_unix_nano" => s.end_time_unix_nano = integer(v, p, UINT64)?,
        "attributes" => s.attributes = attributes(v, p)?,
        "droppedAttributesCount" | "dropped_attributes_count" => {
            s.dropped_attributes_count = integer(v, p, UINT32)?
        },
        "events" => s.events = list(v, p, event)?,
        "droppedEventsCount" | "dropped_events_count" => {
            s.dropped_events_count = integer(v, p, UINT32)?
        },
        "links" => s.links = list(v, p, link)?,
        "droppedLinksCount" | "dropped_links_count" => {
            s.dropped_links_count = integer(v, p, UINT32)?
        },
        "status" => s.status = Some(span_status(v, p)?),
    });
    Ok(s)
}

fn event(value: Value, path: &Path) -> Result<span::Event> {
    let mut event = span::Event::default();
    fields!(value, path, |v, p| {
        "timeUnixNano" | "time_unix_nano" => event.time_unix_nano = integer(v, p, UINT64)?,
        "name" => event.name = string(v, p)?,
        "attributes" => event.attributes = attributes(v, p)?,
        "droppedAttributesCount" | "dropped_attributes_count" => {
            event.dropped_attributes_count = integer(v, p, UINT32)?
        },
    });
    Ok(event)
}

fn link(value: Value, path: &Path) -> Result<span::Link> {
    let mut link = span::Link::default();
    fields!(value, path, |v, p| {
        "traceId" | "trace_id" => link.trace_id = trace_id(v, p)?,
        "spanId" | "span_id" => link.span_id = span_id(v, p)?,
        "traceState" | "trace_state" => link.trace_state = string(v, p)?,
        "attributes" => link.attributes = attributes(v, p)?,
        "droppedAttributesCount" | "dropped_attributes_count" => {
            link.dropped_attributes_count = integer(v, p, UINT32)?
        },
        "flags" => link.flags = integer(v, p, UINT32)?,
    });
    Ok(link)
}

fn span_status(value: Value, path: &Path) -> Result<Status> {
    let mut st = Status::default();
    fields!(value, path, |v, p| {
        "message" => st.message = string(v, p)?,
        "code" => {
            st.code = enumeration(
                v,
                p,
                "a status code as an integer or a name such as STATUS_CODE_ERROR",
                |name| status::StatusCode::from_str_name(name).map(|c| c as i32),
            )?
        },
    });
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsPartialSuccess;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    use serde_json::json;

    const TRACE_ID: [u8; 16] = [
        0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6,
        0x0c,
    ];
    const SPAN_ID: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74];
    const T0: u64 = 1_700_000_000_000_000_000;
    const T1: u64 = 1_700_000_060_000_000_000;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn text(s: &str) -> any_value::Value {
        any_value::Value::StringValue(s.to_owned())
    }

    fn scope_named(name: &str, version: &str) -> Option<InstrumentationScope> {
        Some(InstrumentationScope {
            name: name.to_owned(),
            version: version.to_owned(),
            ..Default::default()
        })
    }

    fn resource_with(attributes: Vec<KeyValue>) -> Option<Resource> {
        Some(Resource {
            attributes,
            ..Default::default()
        })
    }

    fn invalid(result: Result<impl std::fmt::Debug>) -> String {
        match result {
            Err(e @ JsonError::Invalid { .. }) => e.to_string(),
            other => panic!("expected a schema error, got {other:?}"),
        }
    }

    fn syntax(result: Result<impl std::fmt::Debug>) -> String {
        match result {
            Err(e @ JsonError::Syntax(_)) => e.to_string(),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    // --- Bodies shaped like the ones SDKs send -------------------------------------------------

    #[test]
    fn sdk_metrics_body_decodes_every_metric_type() {
        let got = decode_metrics(include_bytes!("../../../testdata/otlp-json/metrics.json"))
            .expect("fixture decodes");
        let point_times = |p: &mut NumberDataPoint| {
            p.start_time_unix_nano = T0;
            p.time_unix_nano = T1;
        };
        let mut gauge_point = NumberDataPoint {
            attributes: vec![kv("hw.id", text("motor-1"))],
            value: Some(number_data_point::Value::AsDouble(71.5)),
            ..Default::default()
        };
        point_times(&mut gauge_point);
        let mut sum_point = NumberDataPoint {
            value: Some(number_data_point::Value::AsInt(3)),
            exemplars: vec![Exemplar {
                filtered_attributes: vec![kv("hw.state", text("degraded"))],
                time_unix_nano: 1_700_000_030_000_000_000,
                span_id: SPAN_ID.to_vec(),
                trace_id: TRACE_ID.to_vec(),
                value: Some(exemplar::Value::AsInt(1)),
            }],
            ..Default::default()
        };
        point_times(&mut sum_point);
        let expected = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource_with(vec![
                    kv("service.name", text("press-line-3")),
                    kv("site.cell", any_value::Value::IntValue(7)),
                ]),
                scope_metrics: vec![ScopeMetrics {
                    scope: scope_named("millwatch.fixture", "1.2.0"),
                    metrics: vec![
                        Metric {
                            name: "hw.temperature".into(),
                            description: "Spindle motor temperature".into(),
                            unit: "Cel".into(),
                            data: Some(Data::Gauge(Gauge {
                                data_points: vec![gauge_point],
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "hw.errors".into(),
                            unit: "{error}".into(),
                            data: Some(Data::Sum(Sum {
                                data_points: vec![sum_point],
                                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                                is_monotonic: true,
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "gen_ai.client.operation.duration".into(),
                            unit: "s".into(),
                            data: Some(Data::Histogram(Histogram {
                                data_points: vec![HistogramDataPoint {
                                    attributes: vec![kv("gen_ai.request.model", text("m-7b"))],
                                    start_time_unix_nano: T0,
                                    time_unix_nano: T1,
                                    count: 3,
                                    sum: Some(2.75),
                                    bucket_counts: vec![0, 2, 1],
                                    explicit_bounds: vec![0.5, 1.0],
                                    min: Some(0.25),
                                    max: Some(1.5),
                                    ..Default::default()
                                }],
                                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "machine.cycle.duration".into(),
                            unit: "s".into(),
                            data: Some(Data::ExponentialHistogram(ExponentialHistogram {
                                data_points: vec![ExponentialHistogramDataPoint {
                                    start_time_unix_nano: T0,
                                    time_unix_nano: T1,
                                    count: 5,
                                    sum: Some(10.5),
                                    scale: 3,
                                    zero_count: 1,
                                    positive: Some(exponential_histogram_data_point::Buckets {
                                        offset: 5,
                                        bucket_counts: vec![1, 2, 1],
                                    }),
                                    negative: Some(Default::default()),
                                    min: Some(0.0),
                                    max: Some(4.5),
                                    zero_threshold: 0.0,
                                    ..Default::default()
                                }],
                                aggregation_temporality: AggregationTemporality::Delta as i32,
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "machine.spindle.load".into(),
                            unit: "1".into(),
                            data: Some(Data::Summary(Summary {
                                data_points: vec![SummaryDataPoint {
                                    start_time_unix_nano: T0,
                                    time_unix_nano: T1,
                                    count: 10,
                                    sum: 6.5,
                                    quantile_values: [(0.0, 0.1), (0.5, 0.6), (1.0, 0.95)]
                                        .map(|(quantile, value)| {
                                            summary_data_point::ValueAtQuantile { quantile, value }
                                        })
                                        .to_vec(),
                                    ..Default::default()
                                }],
                            })),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }],
        };
        assert_eq!(got, expected);
    }

    #[test]
    fn sdk_logs_body_decodes_events_and_every_attribute_type() {
        use any_value::Value as V;
        let got = decode_logs(include_bytes!("../../../testdata/otlp-json/logs.json"))
            .expect("fixture decodes");
        let expected = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource_with(vec![kv("service.name", text("scoring-api"))]),
                scope_logs: vec![ScopeLogs {
                    scope: scope_named("ml.events", ""),
                    log_records: vec![
                        LogRecord {
                            time_unix_nano: 1_700_000_000_123_000_000,
                            observed_time_unix_nano: 1_700_000_000_124_000_000,
                            severity_number: SeverityNumber::Info as i32,
                            severity_text: "INFO".into(),
                            event_name: "ml.inference".into(),
                            attributes: vec![
                                kv("ml.model.name", text("defect-classifier")),
                                kv("ml.feature.temperature", V::DoubleValue(71.5)),
                                kv("ml.feature.batch", V::IntValue(12)),
                                kv("ml.feature.night_shift", V::BoolValue(false)),
                                kv(
                                    "ml.feature.tags",
                                    V::ArrayValue(ArrayValue {
                                        values: vec![
                                            AnyValue {
                                                value: Some(text("a")),
                                            },
                                            AnyValue {
                                                value: Some(V::IntValue(2)),
                                            },
                                        ],
                                    }),
                                ),
                                kv(
                                    "ml.feature.shape",
                                    V::KvlistValue(KeyValueList {
                                        values: vec![kv("w", V::DoubleValue(1.5))],
                                    }),
                                ),
                                kv("ml.feature.raw", V::BytesValue(vec![0, 1, 2, 255])),
                                KeyValue {
                                    key: "ml.feature.missing".into(),
                                    value: Some(AnyValue { value: None }),
                                    ..Default::default()
                                },
                            ],
                            flags: 1,
                            trace_id: TRACE_ID.to_vec(),
                            span_id: SPAN_ID.to_vec(),
                            ..Default::default()
                        },
                        LogRecord {
                            observed_time_unix_nano: 1_700_000_001_000_000_000,
                            severity_number: SeverityNumber::Error as i32,
                            severity_text: "ERROR".into(),
                            body: Some(AnyValue {
                                value: Some(text("model file not found")),
                            }),
                            dropped_attributes_count: 2,
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(got, expected);
    }

    #[test]
    fn sdk_traces_body_decodes_hex_ids_events_links_and_status() {
        let got = decode_traces(include_bytes!("../../../testdata/otlp-json/traces.json"))
            .expect("fixture decodes");
        let mut child_id = SPAN_ID;
        child_id[7] = 0x75;
        let expected = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: resource_with(vec![kv("service.name", text("scoring-api"))]),
                scope_spans: vec![ScopeSpans {
                    scope: scope_named("@opentelemetry/instrumentation-http", "0.52.0"),
                    spans: vec![
                        Span {
                            trace_id: TRACE_ID.to_vec(),
                            span_id: SPAN_ID.to_vec(),
                            trace_state: "vendor=x".into(),
                            flags: 257,
                            name: "POST /predict".into(),
                            kind: span::SpanKind::Server as i32,
                            start_time_unix_nano: T0,
                            end_time_unix_nano: 1_700_000_000_250_000_000,
                            attributes: vec![
                                kv("ml.model.name", text("defect-classifier")),
                                kv("http.response.status_code", any_value::Value::IntValue(500)),
                            ],
                            events: vec![span::Event {
                                time_unix_nano: 1_700_000_000_200_000_000,
                                name: "exception".into(),
                                attributes: vec![kv("exception.type", text("IOError"))],
                                dropped_attributes_count: 0,
                            }],
                            links: vec![span::Link {
                                trace_id: vec![
                                    0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48,
                                    0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c,
                                ],
                                span_id: vec![0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31],
                                flags: 256,
                                ..Default::default()
                            }],
                            status: Some(Status {
                                message: "model file not found".into(),
                                code: status::StatusCode::Error as i32,
                            }),
                            ..Default::default()
                        },
                        Span {
                            trace_id: TRACE_ID.to_vec(),
                            span_id: child_id.to_vec(),
                            parent_span_id: SPAN_ID.to_vec(),
                            name: "load model".into(),
                            kind: span::SpanKind::Internal as i32,
                            start_time_unix_nano: 1_700_000_000_010_000_000,
                            end_time_unix_nano: 1_700_000_000_190_000_000,
                            status: Some(Status::default()),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(got, expected);
    }

    // --- Round trip through a test-only encoder, in every spelling a sender may use -------------

    /// How the test encoder spells things; every combination must decode to the same request.
    #[derive(Clone, Copy, Debug)]
    struct Style {
        snake_case: bool,
        ints_as_strings: bool,
        enum_names: bool,
        upper_hex: bool,
        nulls_for_unset: bool,
    }

    impl Style {
        fn all() -> impl Iterator<Item = Style> {
            (0..32u8).map(|bits| Style {
                snake_case: bits & 1 != 0,
                ints_as_strings: bits & 2 != 0,
                enum_names: bits & 4 != 0,
                upper_hex: bits & 8 != 0,
                nulls_for_unset: bits & 16 != 0,
            })
        }

        fn obj(self, members: Vec<(&str, Value)>) -> Value {
            let mut map = Map::new();
            for (camel, value) in members {
                if value.is_null() && !self.nulls_for_unset {
                    continue;
                }
                let key = if self.snake_case {
                    camel.chars().fold(String::new(), |mut key, c| {
                        if c.is_ascii_uppercase() {
                            key.push('_');
                        }
                        key.push(c.to_ascii_lowercase());
                        key
                    })
                } else {
                    camel.to_owned()
                };
                map.insert(key, value);
            }
            Value::Object(map)
        }

        fn int(self, n: impl Into<i128>) -> Value {
            let n = n.into();
            if self.ints_as_strings {
                n.to_string().into()
            } else if let Ok(unsigned) = u64::try_from(n) {
                unsigned.into()
            } else {
                i64::try_from(n).expect("test values fit in 64 bits").into()
            }
        }

        fn double(self, f: f64) -> Value {
            if f.is_nan() {
                "NaN".into()
            } else if f.is_infinite() {
                if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
            } else if self.ints_as_strings {
                f.to_string().into()
            } else {
                f.into()
            }
        }

        fn opt_double(self, f: Option<f64>) -> Value {
            f.map_or(Value::Null, |f| self.double(f))
        }

        fn enumeration(self, n: i32, name: Option<&str>) -> Value {
            match name {
                Some(name) if self.enum_names => name.into(),
                _ => n.into(),
            }
        }

        fn hex(self, bytes: &[u8]) -> Value {
            bytes
                .iter()
                .map(|b| {
                    if self.upper_hex {
                        format!("{b:02X}")
                    } else {
                        format!("{b:02x}")
                    }
                })
                .collect::<String>()
                .into()
        }

        fn list<T>(self, items: &[T], f: impl Fn(Style, &T) -> Value) -> Value {
            Value::Array(items.iter().map(|item| f(self, item)).collect())
        }

        fn any(self, any: &AnyValue) -> Value {
            use any_value::Value as V;
            let member = match &any.value {
                None => return self.obj(vec![]),
                Some(V::StringValue(s)) => ("stringValue", s.clone().into()),
                Some(V::BoolValue(b)) => ("boolValue", (*b).into()),
                Some(V::IntValue(i)) => ("intValue", self.int(*i)),
                Some(V::DoubleValue(f)) => ("doubleValue", self.double(*f)),
                Some(V::ArrayValue(a)) => (
                    "arrayValue",
                    self.obj(vec![("values", self.list(&a.values, Style::any))]),
                ),
                Some(V::KvlistValue(l)) => (
                    "kvlistValue",
                    self.obj(vec![("values", self.list(&l.values, Style::kv))]),
                ),
                Some(V::BytesValue(b)) => (
                    "bytesValue",
                    base64::engine::general_purpose::STANDARD.encode(b).into(),
                ),
                Some(V::StringValueStrindex(i)) => ("stringValueStrindex", self.int(*i)),
            };
            self.obj(vec![member])
        }

        fn kv(self, kv: &KeyValue) -> Value {
            self.obj(vec![
                ("key", kv.key.clone().into()),
                (
                    "value",
                    kv.value.as_ref().map_or(Value::Null, |v| self.any(v)),
                ),
                ("keyStrindex", self.int(kv.key_strindex)),
            ])
        }

        fn resource(self, r: &Option<Resource>) -> Value {
            let Some(r) = r else { return Value::Null };
            self.obj(vec![
                ("attributes", self.list(&r.attributes, Style::kv)),
                (
                    "droppedAttributesCount",
                    self.int(r.dropped_attributes_count),
                ),
                (
                    "entityRefs",
                    self.list(&r.entity_refs, |s, e| {
                        s.obj(vec![
                            ("schemaUrl", e.schema_url.clone().into()),
                            ("type", e.r#type.clone().into()),
                            ("idKeys", e.id_keys.clone().into()),
                            ("descriptionKeys", e.description_keys.clone().into()),
                        ])
                    }),
                ),
            ])
        }

        fn scope(self, s: &Option<InstrumentationScope>) -> Value {
            let Some(s) = s else { return Value::Null };
            self.obj(vec![
                ("name", s.name.clone().into()),
                ("version", s.version.clone().into()),
                ("attributes", self.list(&s.attributes, Style::kv)),
                (
                    "droppedAttributesCount",
                    self.int(s.dropped_attributes_count),
                ),
            ])
        }

        fn temporality(self, t: i32) -> Value {
            let name = AggregationTemporality::try_from(t)
                .ok()
                .map(|t| t.as_str_name());
            self.enumeration(t, name)
        }

        fn exemplar(self, e: &Exemplar) -> Value {
            let value = match e.value {
                Some(exemplar::Value::AsDouble(f)) => ("asDouble", self.double(f)),
                Some(exemplar::Value::AsInt(i)) => ("asInt", self.int(i)),
                None => ("asInt", Value::Null),
            };
            self.obj(vec![
                (
                    "filteredAttributes",
                    self.list(&e.filtered_attributes, Style::kv),
                ),
                ("timeUnixNano", self.int(e.time_unix_nano)),
                value,
                ("spanId", self.hex(&e.span_id)),
                ("traceId", self.hex(&e.trace_id)),
            ])
        }

        fn number_point(self, p: &NumberDataPoint) -> Value {
            let value = match p.value {
                Some(number_data_point::Value::AsDouble(f)) => ("asDouble", self.double(f)),
                Some(number_data_point::Value::AsInt(i)) => ("asInt", self.int(i)),
                None => ("asDouble", Value::Null),
            };
            self.obj(vec![
                ("attributes", self.list(&p.attributes, Style::kv)),
                ("startTimeUnixNano", self.int(p.start_time_unix_nano)),
                ("timeUnixNano", self.int(p.time_unix_nano)),
                value,
                ("exemplars", self.list(&p.exemplars, Style::exemplar)),
                ("flags", self.int(p.flags)),
            ])
        }

        fn buckets(self, b: &Option<exponential_histogram_data_point::Buckets>) -> Value {
            let Some(b) = b else { return Value::Null };
            self.obj(vec![
                ("offset", self.int(b.offset)),
                (
                    "bucketCounts",
                    self.list(&b.bucket_counts, |s, c| s.int(*c)),
                ),
            ])
        }

        fn metric(self, m: &Metric) -> Value {
            let data = match &m.data {
                None => ("gauge", Value::Null),
                Some(Data::Gauge(g)) => (
                    "gauge",
                    self.obj(vec![(
                        "dataPoints",
                        self.list(&g.data_points, Style::number_point),
                    )]),
                ),
                Some(Data::Sum(s)) => (
                    "sum",
                    self.obj(vec![
                        ("dataPoints", self.list(&s.data_points, Style::number_point)),
                        (
                            "aggregationTemporality",
                            self.temporality(s.aggregation_temporality),
                        ),
                        ("isMonotonic", s.is_monotonic.into()),
                    ]),
                ),
                Some(Data::Histogram(h)) => (
                    "histogram",
                    self.obj(vec![
                        (
                            "dataPoints",
                            self.list(&h.data_points, |s, p| {
                                s.obj(vec![
                                    ("attributes", s.list(&p.attributes, Style::kv)),
                                    ("startTimeUnixNano", s.int(p.start_time_unix_nano)),
                                    ("timeUnixNano", s.int(p.time_unix_nano)),
                                    ("count", s.int(p.count)),
                                    ("sum", s.opt_double(p.sum)),
                                    ("bucketCounts", s.list(&p.bucket_counts, |s, c| s.int(*c))),
                                    (
                                        "explicitBounds",
                                        s.list(&p.explicit_bounds, |s, b| s.double(*b)),
                                    ),
                                    ("exemplars", s.list(&p.exemplars, Style::exemplar)),
                                    ("flags", s.int(p.flags)),
                                    ("min", s.opt_double(p.min)),
                                    ("max", s.opt_double(p.max)),
                                ])
                            }),
                        ),
                        (
                            "aggregationTemporality",
                            self.temporality(h.aggregation_temporality),
                        ),
                    ]),
                ),
                Some(Data::ExponentialHistogram(h)) => (
                    "exponentialHistogram",
                    self.obj(vec![
                        (
                            "dataPoints",
                            self.list(&h.data_points, |s, p| {
                                s.obj(vec![
                                    ("attributes", s.list(&p.attributes, Style::kv)),
                                    ("startTimeUnixNano", s.int(p.start_time_unix_nano)),
                                    ("timeUnixNano", s.int(p.time_unix_nano)),
                                    ("count", s.int(p.count)),
                                    ("sum", s.opt_double(p.sum)),
                                    ("scale", s.int(p.scale)),
                                    ("zeroCount", s.int(p.zero_count)),
                                    ("positive", s.buckets(&p.positive)),
                                    ("negative", s.buckets(&p.negative)),
                                    ("flags", s.int(p.flags)),
                                    ("exemplars", s.list(&p.exemplars, Style::exemplar)),
                                    ("min", s.opt_double(p.min)),
                                    ("max", s.opt_double(p.max)),
                                    ("zeroThreshold", s.double(p.zero_threshold)),
                                ])
                            }),
                        ),
                        (
                            "aggregationTemporality",
                            self.temporality(h.aggregation_temporality),
                        ),
                    ]),
                ),
                Some(Data::Summary(sm)) => (
                    "summary",
                    self.obj(vec![(
                        "dataPoints",
                        self.list(&sm.data_points, |s, p| {
                            s.obj(vec![
                                ("attributes", s.list(&p.attributes, Style::kv)),
                                ("startTimeUnixNano", s.int(p.start_time_unix_nano)),
                                ("timeUnixNano", s.int(p.time_unix_nano)),
                                ("count", s.int(p.count)),
                                ("sum", s.double(p.sum)),
                                (
                                    "quantileValues",
                                    s.list(&p.quantile_values, |s, q| {
                                        s.obj(vec![
                                            ("quantile", s.double(q.quantile)),
                                            ("value", s.double(q.value)),
                                        ])
                                    }),
                                ),
                                ("flags", s.int(p.flags)),
                            ])
                        }),
                    )]),
                ),
            };
            self.obj(vec![
                ("name", m.name.clone().into()),
                ("description", m.description.clone().into()),
                ("unit", m.unit.clone().into()),
                ("metadata", self.list(&m.metadata, Style::kv)),
                data,
            ])
        }

        fn metrics(self, r: &ExportMetricsServiceRequest) -> Vec<u8> {
            let body = self.obj(vec![(
                "resourceMetrics",
                self.list(&r.resource_metrics, |s, rm| {
                    s.obj(vec![
                        ("resource", s.resource(&rm.resource)),
                        (
                            "scopeMetrics",
                            s.list(&rm.scope_metrics, |s, sm| {
                                s.obj(vec![
                                    ("scope", s.scope(&sm.scope)),
                                    ("metrics", s.list(&sm.metrics, Style::metric)),
                                    ("schemaUrl", sm.schema_url.clone().into()),
                                ])
                            }),
                        ),
                        ("schemaUrl", rm.schema_url.clone().into()),
                    ])
                }),
            )]);
            body.to_string().into_bytes()
        }

        fn log_record(self, l: &LogRecord) -> Value {
            let severity = SeverityNumber::try_from(l.severity_number)
                .ok()
                .map(|s| s.as_str_name());
            self.obj(vec![
                ("timeUnixNano", self.int(l.time_unix_nano)),
                ("observedTimeUnixNano", self.int(l.observed_time_unix_nano)),
                (
                    "severityNumber",
                    self.enumeration(l.severity_number, severity),
                ),
                ("severityText", l.severity_text.clone().into()),
                ("body", l.body.as_ref().map_or(Value::Null, |b| self.any(b))),
                ("attributes", self.list(&l.attributes, Style::kv)),
                (
                    "droppedAttributesCount",
                    self.int(l.dropped_attributes_count),
                ),
                ("flags", self.int(l.flags)),
                ("traceId", self.hex(&l.trace_id)),
                ("spanId", self.hex(&l.span_id)),
                ("eventName", l.event_name.clone().into()),
            ])
        }

        fn logs(self, r: &ExportLogsServiceRequest) -> Vec<u8> {
            let body = self.obj(vec![(
                "resourceLogs",
                self.list(&r.resource_logs, |s, rl| {
                    s.obj(vec![
                        ("resource", s.resource(&rl.resource)),
                        (
                            "scopeLogs",
                            s.list(&rl.scope_logs, |s, sl| {
                                s.obj(vec![
                                    ("scope", s.scope(&sl.scope)),
                                    ("logRecords", s.list(&sl.log_records, Style::log_record)),
                                    ("schemaUrl", sl.schema_url.clone().into()),
                                ])
                            }),
                        ),
                        ("schemaUrl", rl.schema_url.clone().into()),
                    ])
                }),
            )]);
            body.to_string().into_bytes()
        }

        fn span(self, sp: &Span) -> Value {
            let kind = span::SpanKind::try_from(sp.kind)
                .ok()
                .map(|k| k.as_str_name());
            let status = sp.status.as_ref().map_or(Value::Null, |st| {
                let code = status::StatusCode::try_from(st.code)
                    .ok()
                    .map(|c| c.as_str_name());
                self.obj(vec![
                    ("message", st.message.clone().into()),
                    ("code", self.enumeration(st.code, code)),
                ])
            });
            self.obj(vec![
                ("traceId", self.hex(&sp.trace_id)),
                ("spanId", self.hex(&sp.span_id)),
                ("traceState", sp.trace_state.clone().into()),
                ("parentSpanId", self.hex(&sp.parent_span_id)),
                ("flags", self.int(sp.flags)),
                ("name", sp.name.clone().into()),
                ("kind", self.enumeration(sp.kind, kind)),
                ("startTimeUnixNano", self.int(sp.start_time_unix_nano)),
                ("endTimeUnixNano", self.int(sp.end_time_unix_nano)),
                ("attributes", self.list(&sp.attributes, Style::kv)),
                (
                    "droppedAttributesCount",
                    self.int(sp.dropped_attributes_count),
                ),
                (
                    "events",
                    self.list(&sp.events, |s, e| {
                        s.obj(vec![
                            ("timeUnixNano", s.int(e.time_unix_nano)),
                            ("name", e.name.clone().into()),
                            ("attributes", s.list(&e.attributes, Style::kv)),
                            ("droppedAttributesCount", s.int(e.dropped_attributes_count)),
                        ])
                    }),
                ),
                ("droppedEventsCount", self.int(sp.dropped_events_count)),
                (
                    "links",
                    self.list(&sp.links, |s, l| {
                        s.obj(vec![
                            ("traceId", s.hex(&l.trace_id)),
                            ("spanId", s.hex(&l.span_id)),
                            ("traceState", l.trace_state.clone().into()),
                            ("attributes", s.list(&l.attributes, Style::kv)),
                            ("droppedAttributesCount", s.int(l.dropped_attributes_count)),
                            ("flags", s.int(l.flags)),
                        ])
                    }),
                ),
                ("droppedLinksCount", self.int(sp.dropped_links_count)),
                ("status", status),
            ])
        }

        fn traces(self, r: &ExportTraceServiceRequest) -> Vec<u8> {
            let body = self.obj(vec![(
                "resourceSpans",
                self.list(&r.resource_spans, |s, rs| {
                    s.obj(vec![
                        ("resource", s.resource(&rs.resource)),
                        (
                            "scopeSpans",
                            s.list(&rs.scope_spans, |s, ss| {
                                s.obj(vec![
                                    ("scope", s.scope(&ss.scope)),
                                    ("spans", s.list(&ss.spans, Style::span)),
                                    ("schemaUrl", ss.schema_url.clone().into()),
                                ])
                            }),
                        ),
                        ("schemaUrl", rs.schema_url.clone().into()),
                    ])
                }),
            )]);
            body.to_string().into_bytes()
        }
    }

    /// Attributes holding every AnyValue variant, nested ones included.
    fn every_attribute_type() -> Vec<KeyValue> {
        use any_value::Value as V;
        vec![
            kv("s", text("é \"quoted\" \n")),
            kv("b", V::BoolValue(true)),
            kv("i", V::IntValue(i64::MIN)),
            kv("big", V::IntValue(i64::MAX)),
            kv("d", V::DoubleValue(-2.5e-300)),
            kv("inf", V::DoubleValue(f64::NEG_INFINITY)),
            kv(
                "arr",
                V::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(V::IntValue(1)),
                        },
                        AnyValue { value: None },
                        AnyValue {
                            value: Some(V::ArrayValue(ArrayValue::default())),
                        },
                    ],
                }),
            ),
            kv(
                "map",
                V::KvlistValue(KeyValueList {
                    values: vec![kv("inner", V::BytesValue(vec![0xfb, 0xff, 0x00]))],
                }),
            ),
            kv("bytes", V::BytesValue((0..=255).collect())),
            kv("strindex", V::StringValueStrindex(-3)),
            KeyValue {
                key: String::new(),
                value: None,
                key_strindex: 9,
            },
        ]
    }

    fn full_resource() -> Option<Resource> {
        Some(Resource {
            attributes: every_attribute_type(),
            dropped_attributes_count: u32::MAX,
            entity_refs: vec![EntityRef {
                schema_url: "https://example.com/s".into(),
                r#type: "host".into(),
                id_keys: vec!["host.id".into()],
                description_keys: vec!["host.name".into(), "host.arch".into()],
            }],
        })
    }

    fn full_scope() -> Option<InstrumentationScope> {
        Some(InstrumentationScope {
            name: "scope".into(),
            version: "9.9".into(),
            attributes: vec![kv("k", text("v"))],
            dropped_attributes_count: 4,
        })
    }

    fn full_exemplars() -> Vec<Exemplar> {
        vec![
            Exemplar {
                filtered_attributes: vec![kv("f", text("x"))],
                time_unix_nano: u64::MAX,
                span_id: SPAN_ID.to_vec(),
                trace_id: TRACE_ID.to_vec(),
                value: Some(exemplar::Value::AsDouble(0.125)),
            },
            Exemplar {
                value: Some(exemplar::Value::AsInt(-7)),
                ..Default::default()
            },
        ]
    }

    fn full_metrics() -> ExportMetricsServiceRequest {
        let number_points = vec![
            NumberDataPoint {
                attributes: every_attribute_type(),
                start_time_unix_nano: T0,
                time_unix_nano: T1,
                exemplars: full_exemplars(),
                flags: DataPointFlags::NoRecordedValueMask as u32,
                value: Some(number_data_point::Value::AsDouble(f64::INFINITY)),
            },
            NumberDataPoint {
                value: Some(number_data_point::Value::AsInt(i64::MIN)),
                ..Default::default()
            },
            NumberDataPoint::default(),
        ];
        let metric = |name: &str, data: Data| Metric {
            name: name.into(),
            description: format!("{name} described"),
            unit: "ms".into(),
            metadata: vec![kv("meta", text("data"))],
            data: Some(data),
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: full_resource(),
                scope_metrics: vec![ScopeMetrics {
                    scope: full_scope(),
                    metrics: vec![
                        metric(
                            "g",
                            Data::Gauge(Gauge {
                                data_points: number_points.clone(),
                            }),
                        ),
                        metric(
                            "s",
                            Data::Sum(Sum {
                                data_points: number_points,
                                aggregation_temporality: AggregationTemporality::Delta as i32,
                                is_monotonic: true,
                            }),
                        ),
                        metric(
                            "h",
                            Data::Histogram(Histogram {
                                data_points: vec![
                                    HistogramDataPoint {
                                        attributes: vec![kv("a", text("b"))],
                                        start_time_unix_nano: T0,
                                        time_unix_nano: T1,
                                        count: u64::MAX,
                                        sum: Some(-0.5),
                                        bucket_counts: vec![1, 0, u64::MAX],
                                        explicit_bounds: vec![-1.0, 1e300],
                                        exemplars: full_exemplars(),
                                        flags: 1,
                                        min: Some(-3.0),
                                        max: Some(7.25),
                                    },
                                    HistogramDataPoint::default(),
                                ],
                                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            }),
                        ),
                        metric(
                            "e",
                            Data::ExponentialHistogram(ExponentialHistogram {
                                data_points: vec![ExponentialHistogramDataPoint {
                                    attributes: vec![kv("a", text("b"))],
                                    start_time_unix_nano: T0,
                                    time_unix_nano: T1,
                                    count: 12,
                                    sum: Some(0.0),
                                    scale: -4,
                                    zero_count: 2,
                                    positive: Some(exponential_histogram_data_point::Buckets {
                                        offset: -2,
                                        bucket_counts: vec![3, 4],
                                    }),
                                    negative: Some(exponential_histogram_data_point::Buckets {
                                        offset: i32::MAX,
                                        bucket_counts: vec![5],
                                    }),
                                    flags: 1,
                                    exemplars: full_exemplars(),
                                    min: Some(-1.5),
                                    max: Some(9.0),
                                    zero_threshold: 1e-9,
                                }],
                                // Unknown values survive: proto3 enums are open.
                                aggregation_temporality: 7,
                            }),
                        ),
                        metric(
                            "q",
                            Data::Summary(Summary {
                                data_points: vec![SummaryDataPoint {
                                    attributes: vec![kv("a", text("b"))],
                                    start_time_unix_nano: T0,
                                    time_unix_nano: T1,
                                    count: 3,
                                    sum: 4.5,
                                    quantile_values: vec![
                                        summary_data_point::ValueAtQuantile {
                                            quantile: 0.5,
                                            value: 1.5,
                                        },
                                        summary_data_point::ValueAtQuantile {
                                            quantile: 0.99,
                                            value: 3.0,
                                        },
                                    ],
                                    flags: 1,
                                }],
                            }),
                        ),
                        Metric::default(),
                    ],
                    schema_url: "https://example.com/scope-schema".into(),
                }],
                schema_url: "https://example.com/resource-schema".into(),
            }],
        }
    }

    fn full_logs() -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: full_resource(),
                scope_logs: vec![ScopeLogs {
                    scope: full_scope(),
                    log_records: vec![
                        LogRecord {
                            time_unix_nano: T0,
                            observed_time_unix_nano: T1,
                            severity_number: SeverityNumber::Warn3 as i32,
                            severity_text: "WARN3".into(),
                            body: Some(AnyValue {
                                value: Some(any_value::Value::KvlistValue(KeyValueList {
                                    values: every_attribute_type(),
                                })),
                            }),
                            attributes: every_attribute_type(),
                            dropped_attributes_count: 3,
                            flags: 0x101,
                            trace_id: TRACE_ID.to_vec(),
                            span_id: SPAN_ID.to_vec(),
                            event_name: "ml.feedback".into(),
                        },
                        LogRecord::default(),
                    ],
                    schema_url: "https://example.com/scope-schema".into(),
                }],
                schema_url: "https://example.com/resource-schema".into(),
            }],
        }
    }

    fn full_traces() -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: full_resource(),
                scope_spans: vec![ScopeSpans {
                    scope: full_scope(),
                    spans: vec![
                        Span {
                            trace_id: TRACE_ID.to_vec(),
                            span_id: SPAN_ID.to_vec(),
                            trace_state: "a=b,c=d".into(),
                            parent_span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
                            flags: 0x301,
                            name: "span".into(),
                            kind: span::SpanKind::Consumer as i32,
                            start_time_unix_nano: T0,
                            end_time_unix_nano: T1,
                            attributes: every_attribute_type(),
                            dropped_attributes_count: 1,
                            events: vec![span::Event {
                                time_unix_nano: T1,
                                name: "event".into(),
                                attributes: vec![kv("e", text("f"))],
                                dropped_attributes_count: 2,
                            }],
                            dropped_events_count: 3,
                            links: vec![span::Link {
                                trace_id: TRACE_ID.to_vec(),
                                span_id: SPAN_ID.to_vec(),
                                trace_state: "x=y".into(),
                                attributes: vec![kv("l", text("m"))],
                                dropped_attributes_count: 4,
                                flags: 0x100,
                            }],
                            dropped_links_count: 5,
                            status: Some(Status {
                                message: "failed".into(),
                                code: status::StatusCode::Error as i32,
                            }),
                        },
                        Span::default(),
                    ],
                    schema_url: "https://example.com/scope-schema".into(),
                }],
                schema_url: "https://example.com/resource-schema".into(),
            }],
        }
    }

    #[test]
    fn metrics_round_trip_in_every_style() {
        let request = full_metrics();
        for style in Style::all() {
            let decoded = decode_metrics(&style.metrics(&request));
            assert_eq!(decoded.expect("decodes"), request, "{style:?}");
        }
    }

    #[test]
    fn logs_round_trip_in_every_style() {
        let request = full_logs();
        for style in Style::all() {
            let decoded = decode_logs(&style.logs(&request));
            assert_eq!(decoded.expect("decodes"), request, "{style:?}");
        }
    }

    #[test]
    fn traces_round_trip_in_every_style() {
        let request = full_traces();
        for style in Style::all() {
            let decoded = decode_traces(&style.traces(&request));
            assert_eq!(decoded.expect("decodes"), request, "{style:?}");
        }
    }

    // --- Leniency that proto3 JSON requires ---------------------------------------------------

    fn first_log(body: Value) -> LogRecord {
        let mut request = decode_logs(body.to_string().as_bytes()).expect("decodes");
        request
            .resource_logs
            .remove(0)
            .scope_logs
            .remove(0)
            .log_records
            .remove(0)
    }

    fn log_body(record: Value) -> Value {
        json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]})
    }

    fn first_point(point: Value) -> NumberDataPoint {
        let body = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"gauge": {"dataPoints": [point]}}
        ]}]}]});
        let mut request = decode_metrics(body.to_string().as_bytes()).expect("decodes");
        match request
            .resource_metrics
            .remove(0)
            .scope_metrics
            .remove(0)
            .metrics
            .remove(0)
            .data
        {
            Some(Data::Gauge(mut g)) => g.data_points.remove(0),
            other => panic!("expected a gauge, got {other:?}"),
        }
    }

    #[test]
    fn integers_are_read_from_numbers_and_strings() {
        for (json, expected) in [
            (json!(1544712660300000000u64), 1_544_712_660_300_000_000),
            (json!("1544712660300000000"), 1_544_712_660_300_000_000),
            (json!(u64::MAX), u64::MAX),
            (json!("18446744073709551615"), u64::MAX),
            (json!(5.0), 5),
            (json!(1e3), 1000),
            (json!("0"), 0),
        ] {
            let record = first_log(log_body(json!({ "timeUnixNano": json })));
            assert_eq!(record.time_unix_nano, expected, "{json}");
        }
        let point = first_point(json!({"asInt": "-9223372036854775808"}));
        assert_eq!(point.value, Some(number_data_point::Value::AsInt(i64::MIN)));
        let point = first_point(json!({"asInt": -42}));
        assert_eq!(point.value, Some(number_data_point::Value::AsInt(-42)));
    }

    #[test]
    fn doubles_accept_special_strings_and_numeric_strings() {
        let point = first_point(json!({"asDouble": "NaN"}));
        assert!(matches!(point.value, Some(number_data_point::Value::AsDouble(f)) if f.is_nan()));
        for (json, expected) in [
            (json!("Infinity"), f64::INFINITY),
            (json!("-Infinity"), f64::NEG_INFINITY),
            (json!("2.5"), 2.5),
            (json!(3), 3.0),
            (json!(-1e-3), -0.001),
        ] {
            let point = first_point(json!({ "asDouble": json }));
            let value = Some(number_data_point::Value::AsDouble(expected));
            assert_eq!(point.value, value, "{json}");
        }
    }

    #[test]
    fn enums_are_read_from_integers_and_names() {
        for (json, expected) in [
            (json!(9), SeverityNumber::Info),
            (json!("SEVERITY_NUMBER_FATAL4"), SeverityNumber::Fatal4),
            (json!("13"), SeverityNumber::Warn),
        ] {
            let record = first_log(log_body(json!({ "severityNumber": json })));
            assert_eq!(record.severity_number, expected as i32, "{json}");
        }
        let point = first_point(json!({"flags": "DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK"}));
        assert_eq!(point.flags, 1);
        let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
            {"kind": "SPAN_KIND_PRODUCER", "status": {"code": "STATUS_CODE_OK"}},
            {"kind": 42, "status": {"code": 2}}
        ]}]}]});
        let request = decode_traces(body.to_string().as_bytes()).expect("decodes");
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans[0].kind, span::SpanKind::Producer as i32);
        assert_eq!(spans[0].status.as_ref().map(|s| s.code), Some(1));
        assert_eq!(spans[1].kind, 42);
        assert_eq!(spans[1].status.as_ref().map(|s| s.code), Some(2));
    }

    #[test]
    fn unknown_fields_are_ignored_at_every_level() {
        let body = json!({
            "future": {"anything": [1, 2]},
            "resourceLogs": [{
                "newField": 1,
                "resource": {"attributes": [], "whatever": "x"},
                "scopeLogs": [{
                    "scope": {"name": "s", "extra": null},
                    "logRecords": [{
                        "eventName": "ml.inference",
                        "body": {"stringValue": "hi", "hint": true},
                        "attributes": [{"key": "k", "value": {"intValue": "1", "x": 1}, "y": 2}],
                        "someday": {"nested": {"deep": []}}
                    }]
                }]
            }]
        });
        let record = first_log(body);
        assert_eq!(record.event_name, "ml.inference");
        assert_eq!(
            record.body,
            Some(AnyValue {
                value: Some(text("hi"))
            })
        );
        assert_eq!(
            record.attributes,
            vec![kv("k", any_value::Value::IntValue(1))]
        );
    }

    #[test]
    fn null_and_missing_fields_mean_the_default() {
        let record = first_log(log_body(json!({
            "timeUnixNano": null, "body": null, "attributes": null, "traceId": null,
            "severityText": null
        })));
        assert_eq!(record, LogRecord::default());
        let record = first_log(log_body(json!({})));
        assert_eq!(record, LogRecord::default());
        let kv_without_value = json!({"attributes": [{"key": "k", "value": null}]});
        let record = first_log(log_body(kv_without_value));
        assert_eq!(record.attributes[0].value, None);
        // An empty body is the empty request.
        assert_eq!(decode_traces(b"{}").expect("decodes"), Default::default());
        // A oneof member that is null does not count as set.
        let point = first_point(json!({"asDouble": null, "asInt": "4"}));
        assert_eq!(point.value, Some(number_data_point::Value::AsInt(4)));
    }

    #[test]
    fn snake_case_keys_are_accepted() {
        let body = br#"{"resource_spans":[{"scope_spans":[{"spans":[{
            "trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174",
            "parent_span_id":"","start_time_unix_nano":"1700000000000000000",
            "dropped_attributes_count":2,"trace_state":"t"}]}]}]}"#;
        let request = decode_traces(body).expect("decodes");
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id, TRACE_ID);
        assert_eq!(span.span_id, SPAN_ID);
        assert_eq!(span.start_time_unix_nano, T0);
        assert_eq!(span.dropped_attributes_count, 2);
        assert_eq!(span.trace_state, "t");
    }

    #[test]
    fn bytes_values_accept_url_safe_and_unpadded_base64() {
        for encoded in ["+/8=", "-_8=", "+/8", "-_8"] {
            let record = first_log(log_body(json!({"body": {"bytesValue": encoded}})));
            let expected = AnyValue {
                value: Some(any_value::Value::BytesValue(vec![0xfb, 0xff])),
            };
            assert_eq!(record.body, Some(expected), "{encoded}");
        }
    }

    // --- Errors --------------------------------------------------------------------------------

    #[test]
    fn invalid_and_truncated_json_report_line_and_column() {
        let message = syntax(decode_metrics(b"{\"resourceMetrics\": [}"));
        assert!(message.starts_with("invalid JSON: "), "{message}");
        assert!(message.contains("line 1 column 22"), "{message}");

        let message = syntax(decode_logs(
            b"{\n  \"resourceLogs\": [\n    {\"scopeLogs\": [",
        ));
        assert!(message.contains("EOF while parsing"), "{message}");
        assert!(message.contains("line 3"), "{message}");

        let message = syntax(decode_traces(b""));
        assert!(message.contains("EOF while parsing a value"), "{message}");
    }

    #[test]
    fn top_level_must_be_an_object() {
        assert_eq!(
            invalid(decode_traces(b"[]")),
            "request body: expected an object, got an array"
        );
        assert_eq!(
            invalid(decode_metrics(b"null")),
            "request body: expected an object, got null"
        );
    }

    #[test]
    fn wrong_json_types_name_their_path() {
        let message = invalid(decode_metrics(br#"{"resourceMetrics": "none"}"#));
        assert_eq!(message, r#"resourceMetrics: expected an array, got "none""#);

        let body = json!({"resourceMetrics": [{"scopeMetrics": [{}, {"metrics": [{}, {}, {},
            {"gauge": {"dataPoints": [{"timeUnixNano": "abc"}]}}]}]}]});
        let message = invalid(decode_metrics(body.to_string().as_bytes()));
        assert_eq!(
            message,
            "resourceMetrics[0].scopeMetrics[1].metrics[3].gauge.dataPoints[0].timeUnixNano: \
             expected an unsigned 64-bit integer as a string or number, got \"abc\""
        );

        let message = invalid(decode_logs(
            log_body(json!({"attributes": [{"key": "k", "value": {"boolValue": "yes"}}]}))
                .to_string()
                .as_bytes(),
        ));
        assert_eq!(
            message,
            "resourceLogs[0].scopeLogs[0].logRecords[0].attributes[0].value.boolValue: \
             expected true or false, got \"yes\""
        );

        let message = invalid(decode_logs(
            log_body(json!({"attributes": [null]}))
                .to_string()
                .as_bytes(),
        ));
        assert_eq!(
            message,
            "resourceLogs[0].scopeLogs[0].logRecords[0].attributes[0]: \
             expected an object, got null"
        );

        let message = invalid(decode_logs(br#"{"resourceLogs": [{"resource": 3}]}"#));
        assert_eq!(
            message,
            "resourceLogs[0].resource: expected an object, got 3"
        );

        let long = "x".repeat(100);
        let message = invalid(decode_logs(
            log_body(json!({"severityText": 1, "eventName": [long]}))
                .to_string()
                .as_bytes(),
        ));
        assert!(
            message.ends_with("expected a string, got an array"),
            "{message}"
        );
        let message = invalid(decode_logs(
            log_body(json!({ "flags": long })).to_string().as_bytes(),
        ));
        assert!(
            message.ends_with(&format!("got \"{}\"…", "x".repeat(64))),
            "{message}"
        );
    }

    #[test]
    fn bad_ids_are_refused() {
        let span_with = |field: &str, id: Value| {
            let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{ field: id }]}]}]});
            invalid(decode_traces(body.to_string().as_bytes()))
        };
        assert_eq!(
            span_with("traceId", json!("5b8efff798038103d269b633813fc6")),
            "resourceSpans[0].scopeSpans[0].spans[0].traceId: \
             expected a trace id as 32 hex digits, got \"5b8efff798038103d269b633813fc6\""
        );
        assert_eq!(
            span_with("spanId", json!("eee19b7ec3c1b17g")),
            "resourceSpans[0].scopeSpans[0].spans[0].spanId: \
             expected a span id as 16 hex digits, got \"eee19b7ec3c1b17g\""
        );
        assert_eq!(
            span_with("parentSpanId", json!("7uGbfsPBsXQ=")),
            "resourceSpans[0].scopeSpans[0].spans[0].parentSpanId: \
             expected a span id as 16 hex digits, got \"7uGbfsPBsXQ=\" \
             (OTLP JSON writes ids in hex, not base64)"
        );
        assert_eq!(
            span_with("traceId", json!(12)),
            "resourceSpans[0].scopeSpans[0].spans[0].traceId: \
             expected a trace id as 32 hex digits, got 12"
        );
        let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
            {"links": [{"spanId": "abc"}]}
        ]}]}]});
        assert_eq!(
            invalid(decode_traces(body.to_string().as_bytes())),
            "resourceSpans[0].scopeSpans[0].spans[0].links[0].spanId: \
             expected a span id as 16 hex digits, got \"abc\""
        );
    }

    #[test]
    fn bad_numbers_are_refused() {
        let log_error =
            |record: Value| invalid(decode_logs(log_body(record).to_string().as_bytes()));
        let at = "resourceLogs[0].scopeLogs[0].logRecords[0]";
        assert_eq!(
            log_error(json!({"timeUnixNano": -1})),
            format!("{at}.timeUnixNano: expected {UINT64}, got -1")
        );
        assert_eq!(
            log_error(json!({"timeUnixNano": "18446744073709551616"})),
            format!("{at}.timeUnixNano: expected {UINT64}, got \"18446744073709551616\"")
        );
        assert_eq!(
            log_error(json!({"observedTimeUnixNano": 1.5})),
            format!("{at}.observedTimeUnixNano: expected {UINT64}, got 1.5")
        );
        assert_eq!(
            log_error(json!({"droppedAttributesCount": 4294967296u64})),
            format!("{at}.droppedAttributesCount: expected {UINT32}, got 4294967296")
        );
        assert_eq!(
            log_error(json!({"body": {"intValue": "9223372036854775808"}})),
            format!("{at}.body.intValue: expected {INT64}, got \"9223372036854775808\"")
        );
        assert_eq!(
            log_error(json!({"body": {"doubleValue": "inf"}})),
            format!(
                "{at}.body.doubleValue: expected a number or one of \"NaN\", \"Infinity\", \
                 \"-Infinity\", got \"inf\""
            )
        );
        assert_eq!(
            log_error(json!({"severityNumber": "INFO"})),
            format!(
                "{at}.severityNumber: expected a severity number as an integer or a name \
                 such as SEVERITY_NUMBER_INFO, got \"INFO\""
            )
        );
        assert_eq!(
            log_error(json!({"body": {"bytesValue": "not base64!"}})),
            format!("{at}.body.bytesValue: expected base64-encoded bytes, got \"not base64!\"")
        );
    }

    #[test]
    fn two_members_of_a_oneof_are_refused() {
        let message = invalid(decode_logs(
            log_body(json!({"body": {"stringValue": "a", "intValue": 1}}))
                .to_string()
                .as_bytes(),
        ));
        // Which member is named first depends on serde_json's map order; both are named.
        let at = "resourceLogs[0].scopeLogs[0].logRecords[0].body: both ";
        let rest = " are set, but they are alternatives and only one may be";
        assert!(
            [
                format!("{at}intValue and stringValue{rest}"),
                format!("{at}stringValue and intValue{rest}"),
            ]
            .contains(&message),
            "{message}"
        );
        let body = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"gauge": {}, "sum": {}}
        ]}]}]});
        let message = invalid(decode_metrics(body.to_string().as_bytes()));
        assert!(
            message.starts_with("resourceMetrics[0].scopeMetrics[0].metrics[0]: both ")
                && message.contains("gauge")
                && message.contains("sum"),
            "{message}"
        );
    }

    #[test]
    fn errors_are_std_errors() {
        let error: Box<dyn std::error::Error> =
            Box::new(decode_metrics(b"[1]").expect_err("refused"));
        assert_eq!(
            error.to_string(),
            "request body: expected an object, got an array"
        );
    }

    // --- Responses -----------------------------------------------------------------------------

    fn parsed(bytes: Vec<u8>) -> Value {
        serde_json::from_slice(&bytes).expect("valid JSON")
    }

    #[test]
    fn full_success_responses_are_empty_objects() {
        assert_eq!(
            parsed(encode_metrics_response(&Default::default())),
            json!({})
        );
        assert_eq!(parsed(encode_logs_response(&Default::default())), json!({}));
        assert_eq!(
            parsed(encode_traces_response(&Default::default())),
            json!({})
        );
    }

    #[test]
    fn partial_success_uses_camel_case_and_int64_strings() {
        let metrics = ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: 5,
                error_message: "5 points had no name".into(),
            }),
        };
        assert_eq!(
            parsed(encode_metrics_response(&metrics)),
            json!({"partialSuccess": {
                "rejectedDataPoints": "5",
                "errorMessage": "5 points had no name"
            }})
        );
        let logs = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: i64::MAX,
                error_message: String::new(),
            }),
        };
        assert_eq!(
            parsed(encode_logs_response(&logs)),
            json!({"partialSuccess": {"rejectedLogRecords": "9223372036854775807"}})
        );
        let traces = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 0,
                error_message: "spans older than 7 days are dropped".into(),
            }),
        };
        assert_eq!(
            parsed(encode_traces_response(&traces)),
            json!({"partialSuccess": {"errorMessage": "spans older than 7 days are dropped"}})
        );
    }

    #[test]
    fn status_is_google_rpc_status_json() {
        let bytes = encode_status(3, "resourceSpans: expected an array, got \"x\"");
        assert_eq!(
            String::from_utf8(bytes).expect("utf-8"),
            r#"{"code":3,"message":"resourceSpans: expected an array, got \"x\"","details":[]}"#
        );
    }
}
