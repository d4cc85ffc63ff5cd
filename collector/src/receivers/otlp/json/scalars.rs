//! The values inside OTLP/JSON messages: objects and lists, strings, booleans, 32- and 64-bit
//! integers from numbers or strings, doubles with their special strings, open enums, hex trace
//! and span ids, base64 bytes, and proto3's rule that a oneof holds one member.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use super::Result;
use super::path::{Path, describe};

const TRACE_ID_BYTES: usize = 16;
const SPAN_ID_BYTES: usize = 8;

pub(super) const UINT64: &str = "an unsigned 64-bit integer as a string or number";
pub(super) const INT64: &str = "a signed 64-bit integer as a string or number";
pub(super) const UINT32: &str = "an unsigned 32-bit integer";
pub(super) const INT32: &str = "a signed 32-bit integer";

pub(super) fn object(value: Value, path: &Path) -> Result<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(path.expected("an object", &other)),
    }
}

pub(super) fn list<T>(
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
pub(super) fn one_of(
    chosen: &mut Option<&'static str>,
    name: &'static str,
    message: &Path,
) -> Result<()> {
    match chosen.replace(name) {
        Some(previous) if previous != name => Err(message.error(format!(
            "both {previous} and {name} are set, but they are alternatives and only one may be"
        ))),
        _ => Ok(()),
    }
}

pub(super) fn string(value: Value, path: &Path) -> Result<String> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(path.expected("a string", &other)),
    }
}

pub(super) fn boolean(value: Value, path: &Path) -> Result<bool> {
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

pub(super) fn integer<T: TryFrom<i128>>(value: Value, path: &Path, what: &str) -> Result<T> {
    whole_number(&value)
        .and_then(|i| T::try_from(i).ok())
        .ok_or_else(|| path.expected(what, &value))
}

pub(super) fn double(value: Value, path: &Path) -> Result<f64> {
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
pub(super) fn enumeration(
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

fn id(value: Value, path: &Path, len: usize, what: &str) -> Result<Vec<u8>> {
    if let Value::String(s) = &value {
        if s.is_empty() {
            return Ok(Vec::new());
        }
        if s.len() == 2 * len
            && let Ok(bytes) = hex::decode(s)
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

pub(super) fn trace_id(value: Value, path: &Path) -> Result<Vec<u8>> {
    id(value, path, TRACE_ID_BYTES, "a trace id")
}

pub(super) fn span_id(value: Value, path: &Path) -> Result<Vec<u8>> {
    id(value, path, SPAN_ID_BYTES, "a span id")
}

/// Proto3 JSON bytes: base64 with the standard or the URL-safe alphabet, padded or not.
pub(super) fn bytes(value: Value, path: &Path) -> Result<Vec<u8>> {
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

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::SeverityNumber;
    use opentelemetry_proto::tonic::metrics::v1::number_data_point;
    use opentelemetry_proto::tonic::trace::v1::span;
    use serde_json::json;

    use super::super::testing::{first_log, first_point, invalid, log_body};
    use super::super::{decode_logs, decode_traces};
    use super::*;

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
    fn bytes_values_accept_url_safe_and_unpadded_base64() {
        for encoded in ["+/8=", "-_8=", "+/8", "-_8"] {
            let record = first_log(log_body(json!({"body": {"bytesValue": encoded}})));
            let expected = AnyValue {
                value: Some(any_value::Value::BytesValue(vec![0xfb, 0xff])),
            };
            assert_eq!(record.body, Some(expected), "{encoded}");
        }
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
}
