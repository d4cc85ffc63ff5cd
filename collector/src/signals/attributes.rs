//! OTLP attribute values: their JSON form for storage, their identity hash, and typed look-ups.

use base64::prelude::{BASE64_STANDARD, Engine as _};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use xxhash_rust::xxh3::Xxh3;

/// Writes an attribute list as a JSON object. Doubles always carry a decimal point or exponent so
/// that `1.0` and `1` stay distinguishable; bytes are base64 as in proto3's JSON mapping.
pub fn attributes_json<'a>(attrs: impl IntoIterator<Item = &'a KeyValue>, out: &mut String) {
    out.push('{');
    let mut first = true;
    for kv in attrs {
        if !first {
            out.push(',');
        }
        first = false;
        write_json_string(&kv.key, out);
        out.push(':');
        value_json(kv.value.as_ref(), out);
    }
    out.push('}');
}

/// The JSON object of `attrs`, or `None` when there are none (stored as NULL).
pub fn attributes_json_opt<'a>(attrs: impl IntoIterator<Item = &'a KeyValue>) -> Option<String> {
    let mut it = attrs.into_iter().peekable();
    it.peek()?;
    let mut out = String::with_capacity(64);
    attributes_json(it, &mut out);
    Some(out)
}

pub fn value_json(value: Option<&AnyValue>, out: &mut String) {
    match value.and_then(|v| v.value.as_ref()) {
        None => out.push_str("null"),
        Some(Value::StringValue(s)) => write_json_string(s, out),
        Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::IntValue(i)) => {
            use std::fmt::Write;
            let _ = write!(out, "{i}");
        }
        Some(Value::DoubleValue(d)) => write_json_double(*d, out),
        Some(Value::ArrayValue(a)) => {
            out.push('[');
            for (i, v) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                value_json(Some(v), out);
            }
            out.push(']');
        }
        Some(Value::KvlistValue(kv)) => attributes_json(&kv.values, out),
        Some(Value::BytesValue(b)) => {
            out.push('"');
            out.push_str(&BASE64_STANDARD.encode(b));
            out.push('"');
        }
        Some(Value::StringValueStrindex(i)) => {
            use std::fmt::Write;
            let _ = write!(out, "{{\"string_value_strindex\":{i}}}");
        }
    }
}

/// JSON has no NaN or infinities: they are written as strings, as proto3's JSON mapping does.
fn write_json_double(d: f64, out: &mut String) {
    use std::fmt::Write;
    if d.is_nan() {
        out.push_str("\"NaN\"");
    } else if d.is_infinite() {
        out.push_str(if d > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else if d.fract() == 0.0 && d.abs() < 1e16 {
        let _ = write!(out, "{d:.1}");
    } else {
        let _ = write!(out, "{d}");
    }
}

pub fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Lowercase hex of a trace or span id; `None` for an empty (absent) id.
pub fn hex_id(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    Some(hex::encode(bytes))
}

/// An order-independent identity hash of an attribute list, seeded by `seed` (the parent's id):
/// the same attributes in any order give the same series or resource.
pub fn attributes_hash(seed: u64, attrs: &[KeyValue]) -> u64 {
    let mut acc = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (attrs.len() as u64);
    for kv in attrs {
        let mut h = Xxh3::new();
        h.update(kv.key.as_bytes());
        h.update(&[0xff]);
        hash_value(kv.value.as_ref(), &mut h);
        acc = acc.wrapping_add(mix(h.digest()));
    }
    mix(acc)
}

fn mix(mut x: u64) -> u64 {
    // splitmix64's finaliser: spreads the bits so that summed hashes do not cancel.
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn hash_value(value: Option<&AnyValue>, h: &mut Xxh3) {
    match value.and_then(|v| v.value.as_ref()) {
        None => h.update(&[0]),
        Some(Value::StringValue(s)) => {
            h.update(&[1]);
            h.update(s.as_bytes());
        }
        Some(Value::BoolValue(b)) => h.update(&[2, u8::from(*b)]),
        Some(Value::IntValue(i)) => {
            h.update(&[3]);
            h.update(&i.to_le_bytes());
        }
        Some(Value::DoubleValue(d)) => {
            h.update(&[4]);
            h.update(&d.to_bits().to_le_bytes());
        }
        Some(Value::ArrayValue(a)) => {
            h.update(&[5]);
            for v in &a.values {
                hash_value(Some(v), h);
            }
            h.update(&[0xfe]);
        }
        Some(Value::KvlistValue(kv)) => {
            h.update(&[6]);
            h.update(&attributes_hash(0, &kv.values).to_le_bytes());
        }
        Some(Value::BytesValue(b)) => {
            h.update(&[7]);
            h.update(b);
        }
        Some(Value::StringValueStrindex(i)) => {
            h.update(&[8]);
            h.update(&i.to_le_bytes());
        }
    }
}

/// A string attribute's value; `None` when absent or not a string.
pub fn string_value(value: Option<&AnyValue>) -> Option<&str> {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

/// Name of an attribute value's type, for error messages.
pub fn type_name(value: Option<&AnyValue>) -> &'static str {
    match value.and_then(|v| v.value.as_ref()) {
        None => "empty",
        Some(Value::StringValue(_)) => "string",
        Some(Value::BoolValue(_)) => "bool",
        Some(Value::IntValue(_)) => "int",
        Some(Value::DoubleValue(_)) => "double",
        Some(Value::ArrayValue(_)) => "array",
        Some(Value::KvlistValue(_)) => "kvlist",
        Some(Value::BytesValue(_)) => "bytes",
        Some(Value::StringValueStrindex(_)) => "string_index",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::ArrayValue;

    fn kv(k: &str, v: Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    #[test]
    fn json_keeps_types_apart() {
        let attrs = vec![
            kv("s", Value::StringValue("a\"b\n".into())),
            kv("i", Value::IntValue(1)),
            kv("d", Value::DoubleValue(1.0)),
            kv("f", Value::DoubleValue(0.25)),
            kv("b", Value::BoolValue(true)),
            kv("n", Value::DoubleValue(f64::NAN)),
            kv(
                "a",
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::IntValue(2)),
                    }],
                }),
            ),
            kv("x", Value::BytesValue(vec![0xde, 0xad, 0xbe, 0xef])),
        ];
        let mut out = String::new();
        attributes_json(&attrs, &mut out);
        assert_eq!(
            out,
            r#"{"s":"a\"b\n","i":1,"d":1.0,"f":0.25,"b":true,"n":"NaN","a":[2],"x":"3q2+7w=="}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(parsed["f"], 0.25);
    }

    #[test]
    fn hash_ignores_order_but_not_values() {
        let a = vec![
            kv("x", Value::StringValue("1".into())),
            kv("y", Value::IntValue(2)),
        ];
        let b = vec![
            kv("y", Value::IntValue(2)),
            kv("x", Value::StringValue("1".into())),
        ];
        let c = vec![
            kv("y", Value::StringValue("2".into())),
            kv("x", Value::StringValue("1".into())),
        ];
        assert_eq!(attributes_hash(7, &a), attributes_hash(7, &b));
        assert_ne!(attributes_hash(7, &a), attributes_hash(7, &c));
        assert_ne!(attributes_hash(7, &a), attributes_hash(8, &a));
    }

    #[test]
    fn hex_ids() {
        assert_eq!(hex_id(&[0x0a, 0xff]).as_deref(), Some("0aff"));
        assert_eq!(hex_id(&[]), None);
        assert_eq!(hex_id(&[0, 0]), None);
    }
}
