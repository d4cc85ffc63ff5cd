//! Rows → Arrow record batches, one per table, in the column order of `schema.rs`. Appending
//! whole batches is several times faster than DuckDB's row-by-row appender.

use std::sync::Arc;

use duckdb::Connection;
use duckdb::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int8Builder, Int32Builder, Int64Builder, ListBuilder,
    StringBuilder, TimestampNanosecondBuilder, UInt8Builder, UInt32Builder, UInt64Builder,
};
use duckdb::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use duckdb::arrow::error::ArrowError;
use duckdb::arrow::record_batch::RecordBatch;

use crate::signals::*;

/// Column kinds used by the schema; each maps to one Arrow type.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    U64,
    U32,
    U8,
    I64,
    I32,
    I8,
    F64,
    Bool,
    Str,
    Time,
    F64List,
    U64List,
}

fn data_type(kind: Kind) -> DataType {
    match kind {
        Kind::U64 => DataType::UInt64,
        Kind::U32 => DataType::UInt32,
        Kind::U8 => DataType::UInt8,
        Kind::I64 => DataType::Int64,
        Kind::I32 => DataType::Int32,
        Kind::I8 => DataType::Int8,
        Kind::F64 => DataType::Float64,
        Kind::Bool => DataType::Boolean,
        Kind::Str => DataType::Utf8,
        Kind::Time => DataType::Timestamp(TimeUnit::Nanosecond, None),
        Kind::F64List => DataType::List(Arc::new(Field::new("item", DataType::Float64, true))),
        Kind::U64List => DataType::List(Arc::new(Field::new("item", DataType::UInt64, true))),
    }
}

/// Appends `batch` to `table` through DuckDB's Arrow appender, inside the connection's open
/// transaction if there is one.
pub(crate) fn append(conn: &Connection, table: &str, batch: RecordBatch) -> duckdb::Result<()> {
    append_all(conn, table, vec![batch])
}

/// Appends several batches of one table through one appender.
pub(crate) fn append_all(
    conn: &Connection,
    table: &str,
    batches: Vec<RecordBatch>,
) -> duckdb::Result<()> {
    let mut appender = conn.appender(table)?;
    for batch in batches {
        appender.append_record_batch(batch)?;
    }
    appender.flush()
}

/// Appends the batches of several tables, runs `then`, and commits, in one transaction (rolled
/// back on failure).
pub(crate) fn append_in_one_transaction(
    conn: &Connection,
    tables: Vec<(&str, Vec<RecordBatch>)>,
    then: impl FnOnce(&Connection) -> duckdb::Result<()>,
) -> duckdb::Result<()> {
    conn.execute_batch("BEGIN TRANSACTION")?;
    let committed = (|| {
        for (table, batches) in tables {
            append_all(conn, table, batches)?;
        }
        then(conn)?;
        conn.execute_batch("COMMIT")
    })();
    if committed.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    committed
}

/// An Arrow error where a DuckDB one is expected (building or casting columns).
pub(crate) fn arrow_error(e: ArrowError) -> duckdb::Error {
    duckdb::Error::ToSqlConversionFailure(Box::new(e))
}

pub(crate) fn batch(
    columns: &[(&str, Kind)],
    arrays: Vec<ArrayRef>,
) -> Result<RecordBatch, ArrowError> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, k)| Field::new(*n, data_type(*k), true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
}

pub(crate) fn strings<'a>(n: usize, values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    let mut b = StringBuilder::with_capacity(n, n * 16);
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

pub(crate) fn times(n: usize, values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    let mut b = TimestampNanosecondBuilder::with_capacity(n);
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

macro_rules! primitive {
    ($name:ident, $builder:ident, $t:ty) => {
        pub(crate) fn $name(n: usize, values: impl Iterator<Item = Option<$t>>) -> ArrayRef {
            let mut b = $builder::with_capacity(n);
            for v in values {
                b.append_option(v);
            }
            Arc::new(b.finish())
        }
    };
}
primitive!(u64s, UInt64Builder, u64);
primitive!(u32s, UInt32Builder, u32);
primitive!(u8s, UInt8Builder, u8);
primitive!(i64s, Int64Builder, i64);
primitive!(i32s, Int32Builder, i32);
primitive!(i8s, Int8Builder, i8);
primitive!(f64s, Float64Builder, f64);

pub(crate) fn bools(n: usize, values: impl Iterator<Item = Option<bool>>) -> ArrayRef {
    let mut b = BooleanBuilder::with_capacity(n);
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

/// A LIST column from optional vectors (NULL for `None`), one builder per element type.
macro_rules! list {
    ($name:ident, $builder:ident, $t:ty) => {
        fn $name<'a>(values: impl Iterator<Item = Option<&'a Vec<$t>>>) -> ArrayRef {
            let mut b = ListBuilder::new($builder::new());
            for v in values {
                match v {
                    Some(list) => {
                        b.values().append_slice(list);
                        b.append(true);
                    }
                    None => b.append(false),
                }
            }
            Arc::new(b.finish())
        }
    };
}
list!(f64_lists, Float64Builder, f64);
list!(u64_lists, UInt64Builder, u64);

pub fn resources(rows: &[&ResourceRow]) -> Result<RecordBatch, ArrowError> {
    use Kind::*;
    let n = rows.len();
    batch(
        &[
            ("resource_id", U64),
            ("service_name", Str),
            ("environment", Str),
            ("host_name", Str),
            ("site_name", Str),
            ("site_line", Str),
            ("site_cell", Str),
            ("tier", Str),
            ("attributes", Str),
            ("dropped_attributes_count", U32),
            ("schema_url", Str),
            ("first_seen", Time),
        ],
        vec![
            u64s(n, rows.iter().map(|r| Some(r.resource_id))),
            strings(n, rows.iter().map(|r| r.service_name.as_deref())),
            strings(n, rows.iter().map(|r| r.environment.as_deref())),
            strings(n, rows.iter().map(|r| r.host_name.as_deref())),
            strings(n, rows.iter().map(|r| r.site_name.as_deref())),
            strings(n, rows.iter().map(|r| r.site_line.as_deref())),
            strings(n, rows.iter().map(|r| r.site_cell.as_deref())),
            strings(n, rows.iter().map(|r| r.tier.as_deref())),
            strings(n, rows.iter().map(|r| Some(r.attributes.as_str()))),
            u32s(n, rows.iter().map(|r| Some(r.dropped_attributes_count))),
            strings(n, rows.iter().map(|r| r.schema_url.as_deref())),
            times(n, rows.iter().map(|r| Some(r.first_seen))),
        ],
    )
}

pub fn scopes(rows: &[&ScopeRow]) -> Result<RecordBatch, ArrowError> {
    use Kind::*;
    let n = rows.len();
    batch(
        &[
            ("scope_id", U64),
            ("name", Str),
            ("version", Str),
            ("attributes", Str),
            ("dropped_attributes_count", U32),
            ("schema_url", Str),
            ("first_seen", Time),
        ],
        vec![
            u64s(n, rows.iter().map(|r| Some(r.scope_id))),
            strings(n, rows.iter().map(|r| r.name.as_deref())),
            strings(n, rows.iter().map(|r| r.version.as_deref())),
            strings(n, rows.iter().map(|r| r.attributes.as_deref())),
            u32s(n, rows.iter().map(|r| Some(r.dropped_attributes_count))),
            strings(n, rows.iter().map(|r| r.schema_url.as_deref())),
            times(n, rows.iter().map(|r| Some(r.first_seen))),
        ],
    )
}

const INFERENCE_COLUMNS: &[(&str, Kind)] = &[
    ("event_id", Kind::U64),
    ("time", Kind::Time),
    ("observed_time", Kind::Time),
    ("model", Kind::Str),
    ("version", Kind::Str),
    ("inference_id", Kind::Str),
    ("prediction", Kind::F64),
    ("prediction_label", Kind::Str),
    ("score", Kind::F64),
    ("duration_s", Kind::F64),
    ("feature_count", Kind::U32),
    ("trace_id", Kind::Str),
    ("span_id", Kind::Str),
    ("attributes", Kind::Str),
    ("resource_id", Kind::U64),
    ("scope_id", Kind::U64),
    // Added by migration 6, so after the columns of the first release.
    ("task", Kind::Str),
];

const FEATURE_COLUMNS: &[(&str, Kind)] = &[
    ("event_id", Kind::U64),
    ("time", Kind::Time),
    ("feature_key_id", Kind::U32),
    ("value_type", Kind::U8),
    ("value_double", Kind::F64),
    ("value_string", Kind::Str),
];

/// A request's inference events as columns, built where the request was received (in parallel,
/// off the writer thread), except what only the writer knows: event ids and feature key ids.
pub struct InferenceColumns {
    events: usize,
    /// `inferences` without `event_id`.
    inferences: Vec<ArrayRef>,
    /// `inference_feature_values`: `time`, `value_type`, `value_double`, `value_string`.
    features: [ArrayRef; 4],
}

impl InferenceColumns {
    pub fn build(rows: &[InferenceRow]) -> InferenceColumns {
        let n = rows.len();
        let inferences = vec![
            times(n, rows.iter().map(|r| Some(r.time))),
            times(n, rows.iter().map(|r| r.observed_time)),
            strings(n, rows.iter().map(|r| Some(r.model.as_str()))),
            strings(n, rows.iter().map(|r| Some(r.version.as_str()))),
            strings(n, rows.iter().map(|r| r.inference_id.as_deref())),
            f64s(
                n,
                rows.iter().map(|r| match r.prediction {
                    Prediction::Number(v) => Some(v),
                    Prediction::Class(_) => None,
                }),
            ),
            strings(
                n,
                rows.iter().map(|r| match &r.prediction {
                    Prediction::Class(c) => Some(c.as_str()),
                    Prediction::Number(_) => None,
                }),
            ),
            f64s(n, rows.iter().map(|r| r.score)),
            f64s(n, rows.iter().map(|r| r.duration_s)),
            u32s(n, rows.iter().map(|r| Some(r.features.len() as u32))),
            strings(n, rows.iter().map(|r| r.trace_id.as_deref())),
            strings(n, rows.iter().map(|r| r.span_id.as_deref())),
            strings(n, rows.iter().map(|r| r.attributes.as_deref())),
            u64s(n, rows.iter().map(|r| Some(r.resource_id))),
            u64s(n, rows.iter().map(|r| Some(r.scope_id))),
            strings(n, rows.iter().map(|r| r.task.map(ModelTask::as_str))),
        ];
        let values = || rows.iter().flat_map(|r| r.features.iter().map(|(_, v)| v));
        let event_times = || rows.iter().flat_map(|r| r.features.iter().map(|_| r.time));
        let f = rows.iter().map(|r| r.features.len()).sum();
        let double = |v: &FeatureValue| match v {
            FeatureValue::Double(d) => Some(*d),
            FeatureValue::Int(i) => Some(*i as f64),
            FeatureValue::Bool(b) => Some(f64::from(u8::from(*b))),
            _ => None,
        };
        let mut value_string = StringBuilder::with_capacity(f, 0);
        for v in values() {
            match v {
                FeatureValue::String(s) | FeatureValue::Other(s) => value_string.append_value(s),
                FeatureValue::Bool(b) => {
                    value_string.append_value(if *b { "true" } else { "false" })
                }
                _ => value_string.append_null(),
            }
        }
        let features = [
            times(f, event_times().map(Some)),
            u8s(f, values().map(|v| Some(v.type_code()))),
            f64s(f, values().map(double)),
            Arc::new(value_string.finish()),
        ];
        InferenceColumns {
            events: n,
            inferences,
            features,
        }
    }

    /// The `inferences` batch, with consecutive event ids from `first_event_id`.
    pub fn inferences(&self, first_event_id: u64) -> Result<RecordBatch, ArrowError> {
        let n = self.events as u64;
        let mut arrays = Vec::with_capacity(INFERENCE_COLUMNS.len());
        arrays.push(u64s(
            self.events,
            (first_event_id..first_event_id + n).map(Some),
        ));
        arrays.extend(self.inferences.iter().cloned());
        batch(INFERENCE_COLUMNS, arrays)
    }

    /// The `inference_feature_values` batch of `rows` (the rows these columns were built
    /// from), their events numbered from `first_event_id`; `key_ids` holds each feature's
    /// `feature_key_id`, events then their features.
    pub fn features(
        &self,
        rows: &[InferenceRow],
        first_event_id: u64,
        key_ids: &[u32],
    ) -> Result<RecordBatch, ArrowError> {
        let n = key_ids.len();
        let event_ids = rows.iter().enumerate().flat_map(|(i, r)| {
            std::iter::repeat_n(Some(first_event_id + i as u64), r.features.len())
        });
        let [time, value_type, value_double, value_string] = self.features.clone();
        batch(
            FEATURE_COLUMNS,
            vec![
                u64s(n, event_ids),
                time,
                u32s(n, key_ids.iter().map(|id| Some(*id))),
                value_type,
                value_double,
                value_string,
            ],
        )
    }
}

/// New `feature_keys` rows: `(feature_key_id, model, version, feature)`.
pub fn feature_keys(keys: &[(u32, String, String, String)]) -> Result<RecordBatch, ArrowError> {
    use Kind::*;
    let n = keys.len();
    batch(
        &[
            ("feature_key_id", U32),
            ("model", Str),
            ("version", Str),
            ("feature", Str),
        ],
        vec![
            u32s(n, keys.iter().map(|k| Some(k.0))),
            strings(n, keys.iter().map(|k| Some(k.1.as_str()))),
            strings(n, keys.iter().map(|k| Some(k.2.as_str()))),
            strings(n, keys.iter().map(|k| Some(k.3.as_str()))),
        ],
    )
}

pub fn feedback(rows: &[&FeedbackRow]) -> Result<RecordBatch, ArrowError> {
    use Kind::*;
    let n = rows.len();
    batch(
        &[
            ("time", Time),
            ("observed_time", Time),
            ("model", Str),
            ("inference_id", Str),
            ("label", F64),
            ("label_class", Str),
            ("attributes", Str),
            ("resource_id", U64),
            ("scope_id", U64),
        ],
        vec![
            times(n, rows.iter().map(|r| Some(r.time))),
            times(n, rows.iter().map(|r| r.observed_time)),
            strings(n, rows.iter().map(|r| Some(r.model.as_str()))),
            strings(n, rows.iter().map(|r| Some(r.inference_id.as_str()))),
            f64s(
                n,
                rows.iter().map(|r| match r.label {
                    Prediction::Number(v) => Some(v),
                    Prediction::Class(_) => None,
                }),
            ),
            strings(
                n,
                rows.iter().map(|r| match &r.label {
                    Prediction::Class(c) => Some(c.as_str()),
                    Prediction::Number(_) => None,
                }),
            ),
            strings(n, rows.iter().map(|r| r.attributes.as_deref())),
            u64s(n, rows.iter().map(|r| Some(r.resource_id))),
            u64s(n, rows.iter().map(|r| Some(r.scope_id))),
        ],
    )
}

pub fn series(rows: &[&SeriesRow]) -> Result<RecordBatch, ArrowError> {
    use Kind::*;
    let n = rows.len();
    batch(
        &[
            ("series_id", U64),
            ("name", Str),
            ("description", Str),
            ("unit", Str),
            ("type", Str),
            ("temporality", Str),
            ("monotonic", Bool),
            ("attributes", Str),
            ("resource_id", U64),
            ("scope_id", U64),
            ("first_seen", Time),
        ],
        vec![
            u64s(n, rows.iter().map(|r| Some(r.series_id))),
            strings(n, rows.iter().map(|r| Some(r.name.as_str()))),
            strings(n, rows.iter().map(|r| r.description.as_deref())),
            strings(n, rows.iter().map(|r| r.unit.as_deref())),
            strings(n, rows.iter().map(|r| Some(r.metric_type.as_str()))),
            strings(n, rows.iter().map(|r| r.temporality)),
            bools(n, rows.iter().map(|r| r.monotonic)),
            strings(n, rows.iter().map(|r| Some(r.attributes.as_str()))),
            u64s(n, rows.iter().map(|r| Some(r.resource_id))),
            u64s(n, rows.iter().map(|r| Some(r.scope_id))),
            times(n, rows.iter().map(|r| Some(r.first_seen))),
        ],
    )
}

pub fn points(rows: &[&PointRow]) -> Result<RecordBatch, ArrowError> {
    use Kind::*;
    let n = rows.len();
    batch(
        &[
            ("series_id", U64),
            ("time", Time),
            ("start_time", Time),
            ("value", F64),
            ("int_value", I64),
            ("flags", U32),
        ],
        vec![
            u64s(n, rows.iter().map(|r| Some(r.series_id))),
            times(n, rows.iter().map(|r| Some(r.time))),
            times(n, rows.iter().map(|r| r.start_time)),
            f64s(n, rows.iter().map(|r| Some(r.value))),
            i64s(n, rows.iter().map(|r| r.int_value)),
            u32s(n, rows.iter().map(|r| Some(r.flags))),
        ],
    )
}

pub fn distributions(rows: &[&DistributionRow]) -> Result<RecordBatch, ArrowError> {
    use Kind::*;
    let n = rows.len();
    batch(
        &[
            ("series_id", U64),
            ("time", Time),
            ("start_time", Time),
            ("count", U64),
            ("sum", F64),
            ("min", F64),
            ("max", F64),
            ("bounds", F64List),
            ("bucket_counts", U64List),
            ("scale", I32),
            ("zero_count", U64),
            ("zero_threshold", F64),
            ("positive_offset", I32),
            ("positive_counts", U64List),
            ("negative_offset", I32),
            ("negative_counts", U64List),
            ("quantiles", F64List),
            ("quantile_values", F64List),
            ("flags", U32),
        ],
        vec![
            u64s(n, rows.iter().map(|r| Some(r.series_id))),
            times(n, rows.iter().map(|r| Some(r.time))),
            times(n, rows.iter().map(|r| r.start_time)),
            u64s(n, rows.iter().map(|r| Some(r.count))),
            f64s(n, rows.iter().map(|r| r.sum)),
            f64s(n, rows.iter().map(|r| r.min)),
            f64s(n, rows.iter().map(|r| r.max)),
            f64_lists(rows.iter().map(|r| r.bounds.as_ref())),
            u64_lists(rows.iter().map(|r| r.bucket_counts.as_ref())),
            i32s(n, rows.iter().map(|r| r.scale)),
            u64s(n, rows.iter().map(|r| r.zero_count)),
            f64s(n, rows.iter().map(|r| r.zero_threshold)),
            i32s(n, rows.iter().map(|r| r.positive_offset)),
            u64_lists(rows.iter().map(|r| r.positive_counts.as_ref())),
            i32s(n, rows.iter().map(|r| r.negative_offset)),
            u64_lists(rows.iter().map(|r| r.negative_counts.as_ref())),
            f64_lists(rows.iter().map(|r| r.quantiles.as_ref())),
            f64_lists(rows.iter().map(|r| r.quantile_values.as_ref())),
            u32s(n, rows.iter().map(|r| Some(r.flags))),
        ],
    )
}

pub fn spans(rows: &[&SpanRow]) -> Result<RecordBatch, ArrowError> {
    use Kind::*;
    let n = rows.len();
    batch(
        &[
            ("trace_id", Str),
            ("span_id", Str),
            ("parent_span_id", Str),
            ("trace_state", Str),
            ("name", Str),
            ("kind", I8),
            ("start_time", Time),
            ("end_time", Time),
            ("duration_s", F64),
            ("status_code", I8),
            ("status_message", Str),
            ("model", Str),
            ("version", Str),
            ("attributes", Str),
            ("events", Str),
            ("links", Str),
            ("flags", U32),
            ("resource_id", U64),
            ("scope_id", U64),
        ],
        vec![
            strings(n, rows.iter().map(|r| Some(r.trace_id.as_str()))),
            strings(n, rows.iter().map(|r| Some(r.span_id.as_str()))),
            strings(n, rows.iter().map(|r| r.parent_span_id.as_deref())),
            strings(n, rows.iter().map(|r| r.trace_state.as_deref())),
            strings(n, rows.iter().map(|r| Some(r.name.as_str()))),
            i8s(n, rows.iter().map(|r| Some(r.kind))),
            times(n, rows.iter().map(|r| Some(r.start_time))),
            times(n, rows.iter().map(|r| Some(r.end_time))),
            f64s(n, rows.iter().map(|r| Some(r.duration_s))),
            i8s(n, rows.iter().map(|r| Some(r.status_code))),
            strings(n, rows.iter().map(|r| r.status_message.as_deref())),
            strings(n, rows.iter().map(|r| r.model.as_deref())),
            strings(n, rows.iter().map(|r| r.version.as_deref())),
            strings(n, rows.iter().map(|r| r.attributes.as_deref())),
            strings(n, rows.iter().map(|r| r.events.as_deref())),
            strings(n, rows.iter().map(|r| r.links.as_deref())),
            u32s(n, rows.iter().map(|r| Some(r.flags))),
            u64s(n, rows.iter().map(|r| Some(r.resource_id))),
            u64s(n, rows.iter().map(|r| Some(r.scope_id))),
        ],
    )
}

pub fn logs(rows: &[&LogRow]) -> Result<RecordBatch, ArrowError> {
    use Kind::*;
    let n = rows.len();
    batch(
        &[
            ("time", Time),
            ("observed_time", Time),
            ("severity_number", I8),
            ("severity_text", Str),
            ("event_name", Str),
            ("body", Str),
            ("attributes", Str),
            ("trace_id", Str),
            ("span_id", Str),
            ("flags", U32),
            ("resource_id", U64),
            ("scope_id", U64),
        ],
        vec![
            times(n, rows.iter().map(|r| r.time)),
            times(n, rows.iter().map(|r| r.observed_time)),
            i8s(n, rows.iter().map(|r| Some(r.severity_number))),
            strings(n, rows.iter().map(|r| r.severity_text.as_deref())),
            strings(n, rows.iter().map(|r| r.event_name.as_deref())),
            strings(n, rows.iter().map(|r| r.body.as_deref())),
            strings(n, rows.iter().map(|r| r.attributes.as_deref())),
            strings(n, rows.iter().map(|r| r.trace_id.as_deref())),
            strings(n, rows.iter().map(|r| r.span_id.as_deref())),
            u32s(n, rows.iter().map(|r| Some(r.flags))),
            u64s(n, rows.iter().map(|r| Some(r.resource_id))),
            u64s(n, rows.iter().map(|r| Some(r.scope_id))),
        ],
    )
}
