//! Where in the document a value sits, for error messages. Built on the stack while walking and
//! only rendered when an error needs it, so a valid body costs no allocation for paths.

use std::fmt::Write as _;

use serde_json::Value;

use super::JsonError;

#[derive(Clone, Copy)]
pub(super) enum Segment {
    Root,
    Field(&'static str),
    Index(usize),
}

#[derive(Clone, Copy)]
pub(super) struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    segment: Segment,
}

impl Path<'_> {
    pub(super) const ROOT: Path<'static> = Path {
        parent: None,
        segment: Segment::Root,
    };

    pub(super) fn field(&self, name: &'static str) -> Path<'_> {
        Path {
            parent: Some(self),
            segment: Segment::Field(name),
        }
    }

    pub(super) fn index(&self, index: usize) -> Path<'_> {
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

    pub(super) fn error(&self, message: String) -> JsonError {
        JsonError::Invalid {
            path: self.render(),
            message,
        }
    }

    pub(super) fn expected(&self, what: &str, got: &Value) -> JsonError {
        self.error(format!("expected {what}, got {}", describe(got)))
    }
}

/// A short rendering of a value for error messages: scalars as JSON, containers by kind.
pub(super) fn describe(value: &Value) -> String {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{invalid, log_body};
    use super::super::{decode_logs, decode_metrics};

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
}
