//! Attribute values as label values (the attribute specification's string forms).

use std::borrow::Cow;

use base64::prelude::{BASE64_STANDARD, Engine as _};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};

/// Converts an attribute value to a label value: strings as they are, other scalars in their
/// usual text form, arrays and maps as JSON, bytes as base64 (the attribute specification).
pub(crate) fn any_value_string(v: Option<&AnyValue>) -> Cow<'_, str> {
    let Some(value) = v.and_then(|v| v.value.as_ref()) else {
        return Cow::Borrowed("");
    };
    match value {
        any_value::Value::StringValue(s) => Cow::Borrowed(s),
        any_value::Value::BoolValue(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        any_value::Value::IntValue(i) => Cow::Owned(i.to_string()),
        any_value::Value::DoubleValue(d) => Cow::Owned(crate::prometheus::names::float_label(*d)),
        any_value::Value::BytesValue(b) => Cow::Owned(base64(b)),
        other => Cow::Owned(json(Some(other)).to_string()),
    }
}

fn json(v: Option<&any_value::Value>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        None => J::Null,
        Some(any_value::Value::StringValue(s)) => J::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => J::Bool(*b),
        Some(any_value::Value::IntValue(i)) => J::from(*i),
        Some(any_value::Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(J::Null, J::Number)
        }
        Some(any_value::Value::BytesValue(b)) => J::String(base64(b)),
        Some(any_value::Value::ArrayValue(a)) => {
            J::Array(a.values.iter().map(|x| json(x.value.as_ref())).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|x| {
                    (
                        x.key.clone(),
                        json(x.value.as_ref().and_then(|v| v.value.as_ref())),
                    )
                })
                .collect(),
        ),
        #[allow(unreachable_patterns)]
        Some(_) => J::Null,
    }
}

/// Standard padded base64, as the attribute specification writes bytes.
pub(crate) fn base64(bytes: &[u8]) -> String {
    BASE64_STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_values_become_strings() {
        let v = |x| Some(AnyValue { value: Some(x) });
        assert_eq!(
            any_value_string(v(any_value::Value::IntValue(-3)).as_ref()),
            "-3"
        );
        assert_eq!(
            any_value_string(v(any_value::Value::DoubleValue(0.25)).as_ref()),
            "0.25"
        );
        assert_eq!(
            any_value_string(v(any_value::Value::BoolValue(true)).as_ref()),
            "true"
        );
        assert_eq!(
            any_value_string(v(any_value::Value::BytesValue(b"hi!".to_vec())).as_ref()),
            "aGkh"
        );
        assert_eq!(
            any_value_string(v(any_value::Value::BytesValue(b"h".to_vec())).as_ref()),
            "aA=="
        );
    }
}
