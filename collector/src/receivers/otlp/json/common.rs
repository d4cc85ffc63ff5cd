//! common.v1 and resource.v1 in OTLP/JSON: AnyValue and its oneof, key-value lists, attributes,
//! resources with their entity references, and instrumentation scopes.

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::Value;

use super::Result;
use super::path::Path;
use super::scalars::{
    INT32, INT64, UINT32, boolean, bytes, double, integer, list, object, one_of, string,
};

pub(super) fn any_value(value: Value, path: &Path) -> Result<AnyValue> {
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

pub(super) fn attributes(value: Value, path: &Path) -> Result<Vec<KeyValue>> {
    list(value, path, key_value)
}

fn strings(value: Value, path: &Path) -> Result<Vec<String>> {
    list(value, path, string)
}

pub(super) fn resource(value: Value, path: &Path) -> Result<Resource> {
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

pub(super) fn scope(value: Value, path: &Path) -> Result<InstrumentationScope> {
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

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::LogRecord;
    use opentelemetry_proto::tonic::metrics::v1::number_data_point;
    use serde_json::json;

    use super::super::testing::{
        SPAN_ID, T0, TRACE_ID, first_log, first_point, invalid, kv, log_body, text,
    };
    use super::super::{decode_logs, decode_metrics, decode_traces};

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
}
