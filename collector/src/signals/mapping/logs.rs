//! Logs export requests: `ml.inference` and `ml.feedback` events to their tables, every other
//! record to `logs`.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::{
    Context, EVENT_FEEDBACK, EVENT_INFERENCE, FEATURE_PREFIX, KnownIds, Rejections, nanos,
    non_empty,
};
use crate::signals::attributes::{
    attributes_json_opt, hex_id, string_value, type_name, value_json,
};
use crate::signals::*;

/// Maps a logs export request: `ml.inference` and `ml.feedback` events to their tables, every
/// other record to `logs`.
pub fn map_logs(req: &ExportLogsServiceRequest, known: &KnownIds, now: i64) -> (Batch, Rejections) {
    let mut cx = Context::new(known, now);
    for (ri, rl) in req.resource_logs.iter().enumerate() {
        let resource_id = cx.resource(rl.resource.as_ref(), &rl.schema_url);
        for (si, sl) in rl.scope_logs.iter().enumerate() {
            let scope_id = cx.scope(sl.scope.as_ref(), &sl.schema_url);
            for (li, record) in sl.log_records.iter().enumerate() {
                let at = || format!("resourceLogs[{ri}].scopeLogs[{si}].logRecords[{li}]");
                let ids = (resource_id, scope_id);
                match event_name(record) {
                    Some(EVENT_INFERENCE) => match inference(record, ids, now) {
                        Ok(row) => cx.batch.inferences.push(row),
                        Err(reason) => cx
                            .rejections
                            .reject(at, || format!("{EVENT_INFERENCE} event {reason}")),
                    },
                    Some(EVENT_FEEDBACK) => match feedback(record, ids, now) {
                        Ok(row) => cx.batch.feedback.push(row),
                        Err(reason) => cx
                            .rejections
                            .reject(at, || format!("{EVENT_FEEDBACK} event {reason}")),
                    },
                    _ => cx.batch.logs.push(log(record, ids)),
                }
            }
        }
    }
    (cx.batch, cx.rejections)
}

/// `LogRecord.event_name`, else the `event.name` attribute older SDKs set.
fn event_name(record: &LogRecord) -> Option<&str> {
    if !record.event_name.is_empty() {
        return Some(&record.event_name);
    }
    record
        .attributes
        .iter()
        .find(|kv| kv.key == "event.name")
        .and_then(|kv| string_value(kv.value.as_ref()))
}

fn event_time(record: &LogRecord, now: i64) -> i64 {
    nanos(record.time_unix_nano)
        .or_else(|| nanos(record.observed_time_unix_nano))
        .unwrap_or(now)
}

/// A required string attribute: absent and wrong-typed values are told apart in the reason.
fn required_string(value: Option<&AnyValue>, key: &str) -> Result<String, String> {
    match value {
        None => Err(format!("without {key}")),
        Some(v) => match v.value.as_ref() {
            Some(Value::StringValue(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::StringValue(_)) => Err(format!("with an empty {key}")),
            _ => Err(format!(
                "with {key} of type {} (expected string)",
                type_name(Some(v))
            )),
        },
    }
}

fn optional_string(value: Option<&AnyValue>, key: &str) -> Result<Option<String>, String> {
    match value.and_then(|v| v.value.as_ref()) {
        None => Ok(None),
        Some(Value::StringValue(s)) => Ok(non_empty(s)),
        Some(_) => Err(format!(
            "with {key} of type {} (expected string)",
            type_name(value)
        )),
    }
}

fn optional_number(value: Option<&AnyValue>, key: &str) -> Result<Option<f64>, String> {
    match value.and_then(|v| v.value.as_ref()) {
        None => Ok(None),
        Some(Value::DoubleValue(d)) if d.is_finite() => Ok(Some(*d)),
        Some(Value::IntValue(i)) => Ok(Some(*i as f64)),
        Some(Value::DoubleValue(d)) => Err(format!("with a non-finite {key} ({d})")),
        Some(_) => Err(format!(
            "with {key} of type {} (expected double)",
            type_name(value)
        )),
    }
}

/// A prediction or label: a number (double or int) or a class (string or bool).
fn prediction(value: Option<&AnyValue>, key: &str) -> Result<Prediction, String> {
    match value.and_then(|v| v.value.as_ref()) {
        None => Err(format!("without {key}")),
        Some(Value::DoubleValue(d)) if d.is_finite() => Ok(Prediction::Number(*d)),
        Some(Value::DoubleValue(d)) => Err(format!("with a non-finite {key} ({d})")),
        Some(Value::IntValue(i)) => Ok(Prediction::Number(*i as f64)),
        Some(Value::StringValue(s)) if !s.is_empty() => Ok(Prediction::Class(s.clone())),
        Some(Value::StringValue(_)) => Err(format!("with an empty {key}")),
        Some(Value::BoolValue(b)) => Ok(Prediction::Class(b.to_string())),
        Some(_) => Err(format!(
            "with {key} of type {} (expected double or string)",
            type_name(value)
        )),
    }
}

fn feature(value: Option<&AnyValue>) -> FeatureValue {
    match value.and_then(|v| v.value.as_ref()) {
        None => FeatureValue::Missing,
        Some(Value::DoubleValue(d)) if d.is_nan() => FeatureValue::Missing,
        Some(Value::DoubleValue(d)) => FeatureValue::Double(*d),
        Some(Value::IntValue(i)) => FeatureValue::Int(*i),
        Some(Value::BoolValue(b)) => FeatureValue::Bool(*b),
        Some(Value::StringValue(s)) if s.is_empty() => FeatureValue::Missing,
        Some(Value::StringValue(s)) => FeatureValue::String(s.clone()),
        Some(_) => {
            let mut json = String::new();
            value_json(value, &mut json);
            FeatureValue::Other(json)
        }
    }
}

/// Attributes outside `ml.*` (and `event.name`), kept as JSON.
fn other_attributes(record: &LogRecord) -> Option<String> {
    attributes_json_opt(
        record
            .attributes
            .iter()
            .filter(|kv| !kv.key.starts_with("ml.") && kv.key != "event.name"),
    )
}

fn inference(
    record: &LogRecord,
    (resource_id, scope_id): (u64, u64),
    now: i64,
) -> Result<InferenceRow, String> {
    let mut model = None;
    let mut version = None;
    let mut inference_id = None;
    let mut pred = None;
    let mut score = None;
    let mut duration = None;
    let mut task = None;
    let mut features = Vec::new();
    for kv in &record.attributes {
        let v = kv.value.as_ref();
        match kv.key.as_str() {
            "ml.model.name" => model = Some(v),
            "ml.model.version" => version = Some(v),
            "ml.inference.id" => inference_id = optional_string(v, "ml.inference.id")?,
            "ml.prediction" => pred = Some(v),
            "ml.prediction.score" => score = optional_number(v, "ml.prediction.score")?,
            "ml.inference.duration" => duration = optional_number(v, "ml.inference.duration")?,
            "ml.model.task" => task = optional_string(v, "ml.model.task")?,
            key => {
                if let Some(name) = key.strip_prefix(FEATURE_PREFIX) {
                    features.push((name.to_owned(), feature(v)));
                }
            }
        }
    }
    let model = required_string(model.flatten(), "ml.model.name")?;
    let version = required_string(version.flatten(), "ml.model.version")?;
    let prediction = prediction(pred.flatten(), "ml.prediction")?;
    if let Some(s) = score
        && !(0.0..=1.0).contains(&s)
    {
        return Err(format!("with ml.prediction.score {s} outside [0, 1]"));
    }
    if let Some(d) = duration
        && d < 0.0
    {
        return Err(format!("with a negative ml.inference.duration ({d})"));
    }
    let task = match task {
        None => None,
        Some(t) => Some(ModelTask::parse(&t).ok_or_else(|| {
            format!("with ml.model.task {t:?} (expected \"classification\" or \"regression\")")
        })?),
    };
    Ok(InferenceRow {
        time: event_time(record, now),
        observed_time: nanos(record.observed_time_unix_nano),
        model,
        version,
        inference_id,
        prediction,
        score,
        duration_s: duration,
        task,
        trace_id: hex_id(&record.trace_id),
        span_id: hex_id(&record.span_id),
        attributes: other_attributes(record),
        resource_id,
        scope_id,
        features,
    })
}

fn feedback(
    record: &LogRecord,
    (resource_id, scope_id): (u64, u64),
    now: i64,
) -> Result<FeedbackRow, String> {
    let get = |key: &str| {
        record
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
    };
    Ok(FeedbackRow {
        time: event_time(record, now),
        observed_time: nanos(record.observed_time_unix_nano),
        model: required_string(get("ml.model.name"), "ml.model.name")?,
        inference_id: required_string(get("ml.inference.id"), "ml.inference.id")?,
        label: prediction(get("ml.label"), "ml.label")?,
        attributes: other_attributes(record),
        resource_id,
        scope_id,
    })
}

fn log(record: &LogRecord, (resource_id, scope_id): (u64, u64)) -> LogRow {
    LogRow {
        time: nanos(record.time_unix_nano),
        observed_time: nanos(record.observed_time_unix_nano),
        severity_number: i8::try_from(record.severity_number).unwrap_or(0),
        severity_text: non_empty(&record.severity_text),
        event_name: non_empty(&record.event_name),
        body: record.body.as_ref().map(|b| {
            let mut s = String::new();
            value_json(Some(b), &mut s);
            s
        }),
        attributes: attributes_json_opt(&record.attributes),
        trace_id: hex_id(&record.trace_id),
        span_id: hex_id(&record.span_id),
        flags: record.flags,
        resource_id,
        scope_id,
    }
}
