//! Inference events as the engine holds them, read from the store by `event_id`, and the open
//! window of a model version: events gathered until it holds enough to be decided.

use std::collections::HashMap;
use std::sync::Arc;

use duckdb::arrow::array::{Array, AsArray};
use duckdb::arrow::compute::cast;
use duckdb::arrow::datatypes::{DataType, Float64Type, UInt64Type};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::{Connection, params_from_iter};
use millwatch_detectors::dataset::{Column, Dataset};

use crate::signals::{FeatureValue, InferenceRow, Prediction};

/// One value of a feature or prediction.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Text(String),
    Missing,
}

/// A model and version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelKey {
    pub model: String,
    pub version: String,
}

/// One stored inference event.
#[derive(Debug, Clone)]
pub struct Event {
    pub event_id: u64,
    pub time_ns: i64,
    pub prediction: Value,
    /// Feature names, one list shared by the events that carry the same ones.
    pub names: Arc<[Arc<str>]>,
    /// `values[i]` is the value of feature `names[i]`.
    pub values: Vec<Value>,
}

/// Events in `event_id` order, with their bounds.
#[derive(Debug, Default, Clone)]
pub struct Window {
    pub events: Vec<Event>,
}

impl Window {
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn first_event_id(&self) -> Option<u64> {
        self.events.first().map(|e| e.event_id)
    }

    pub fn last_event_id(&self) -> Option<u64> {
        self.events.last().map(|e| e.event_id)
    }

    /// Earliest and latest event time.
    pub fn time_bounds(&self) -> (i64, i64) {
        let lo = self.events.iter().map(|e| e.time_ns).min().unwrap_or(0);
        let hi = self.events.iter().map(|e| e.time_ns).max().unwrap_or(0);
        (lo, hi)
    }

    /// The events as a dataset: one column per feature (missing where an event lacks it) and
    /// `ml.prediction`. A column is numeric when every present value is a number; otherwise
    /// numbers are written as text and the column is categorical.
    pub fn dataset(&self) -> Dataset {
        let rows = self.events.len();
        let mut names: Vec<Arc<str>> = Vec::new();
        let mut index: HashMap<Arc<str>, usize> = HashMap::new();
        let mut cells: Vec<Vec<&Value>> = Vec::new();
        // Events sharing a name list share its columns: looked up once per list, not per value.
        let mut list: Option<&Arc<[Arc<str>]>> = None;
        let mut list_columns: Vec<usize> = Vec::new();
        for (row, e) in self.events.iter().enumerate() {
            if !list.is_some_and(|l| Arc::ptr_eq(l, &e.names)) {
                list = Some(&e.names);
                list_columns.clear();
                for name in e.names.iter() {
                    let col = match index.get(name) {
                        Some(c) => *c,
                        None => {
                            index.insert(name.clone(), names.len());
                            names.push(name.clone());
                            cells.push(vec![&Value::Missing; rows]);
                            names.len() - 1
                        }
                    };
                    list_columns.push(col);
                }
            }
            for (v, &col) in e.values.iter().zip(&list_columns) {
                cells[col][row] = v;
            }
        }
        let mut columns: Vec<Column> = names
            .iter()
            .zip(&cells)
            .map(|(n, c)| column(n, c))
            .collect();
        let predictions: Vec<&Value> = self.events.iter().map(|e| &e.prediction).collect();
        columns.push(column(PREDICTION, &predictions));
        // Names are distinct and lengths equal by construction.
        Dataset::new(columns).unwrap_or_else(|_| Dataset::new(Vec::new()).expect("empty dataset"))
    }
}

/// The column name under which the prediction is tested.
pub const PREDICTION: &str = "ml.prediction";

fn column(name: &str, values: &[&Value]) -> Column {
    let numeric = values.iter().all(|v| !matches!(v, Value::Text(_)));
    if numeric {
        Column::numeric(
            name,
            values
                .iter()
                .map(|v| match v {
                    Value::Number(x) if x.is_finite() => Some(*x),
                    _ => None,
                })
                .collect(),
        )
    } else {
        Column::categorical(
            name,
            values
                .iter()
                .map(|v| match v {
                    Value::Number(x) => Some(x.to_string()),
                    Value::Text(s) => Some(s.clone()),
                    Value::Missing => None,
                })
                .collect(),
        )
    }
}

/// Feature names, each held once however many events carry it, and the lists events carry:
/// consecutive events of a version mostly list the same names, so they share one list.
#[derive(Debug, Default)]
pub struct Names {
    all: HashMap<String, Arc<str>>,
    /// Lists seen lately, newest first.
    lists: Vec<Arc<[Arc<str>]>>,
}

/// Lists remembered (model versions whose events interleave).
const RECENT_LISTS: usize = 16;

impl Names {
    pub fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.all.get(name) {
            return n.clone();
        }
        let n: Arc<str> = Arc::from(name);
        self.all.insert(name.to_owned(), n.clone());
        n
    }

    /// The shared list holding `names` in this order.
    pub fn list<'a>(
        &mut self,
        names: impl ExactSizeIterator<Item = &'a str> + Clone,
    ) -> Arc<[Arc<str>]> {
        let found = self.lists.iter().position(|l| {
            l.len() == names.len() && l.iter().zip(names.clone()).all(|(a, b)| **a == *b)
        });
        if let Some(i) = found {
            if i > 0 {
                let l = self.lists.remove(i);
                self.lists.insert(0, l);
            }
            return self.lists[0].clone();
        }
        let list: Arc<[Arc<str>]> = names.map(|n| self.get(n)).collect();
        self.lists.insert(0, list.clone());
        self.lists.truncate(RECENT_LISTS);
        list
    }
}

/// An event as the writer committed it (from the tap), with the values it reads back as from
/// the store: numbers (ints too) when finite, booleans as `true`/`false`, empty text missing.
pub fn from_row(names: &mut Names, event_id: u64, row: InferenceRow) -> (ModelKey, Event) {
    let prediction = match row.prediction {
        Prediction::Class(label) => Value::Text(label),
        Prediction::Number(x) if x.is_finite() => Value::Number(x),
        Prediction::Number(_) => Value::Missing,
    };
    let names = names.list(row.features.iter().map(|(n, _)| n.as_str()));
    let values = row
        .features
        .into_iter()
        .map(|(_, v)| match v {
            FeatureValue::Double(x) if x.is_finite() => Value::Number(x),
            FeatureValue::Int(i) => Value::Number(i as f64),
            FeatureValue::Bool(b) => Value::Text(if b { "true" } else { "false" }.to_owned()),
            FeatureValue::String(s) | FeatureValue::Other(s) if !s.is_empty() => Value::Text(s),
            _ => Value::Missing,
        })
        .collect();
    let key = ModelKey {
        model: row.model,
        version: row.version,
    };
    let event = Event {
        event_id,
        time_ns: row.time,
        prediction,
        names,
        values,
    };
    (key, event)
}

/// Which inference events to read.
pub enum Selection<'a> {
    /// Every model, `event_id` after the cursor, at most `limit` events.
    After { cursor: Option<u64>, limit: usize },
    /// One model version, `event_id` in `first..=last`.
    Range {
        key: &'a ModelKey,
        first: u64,
        last: u64,
    },
    /// One model version, event time in `since_ns..until_ns`.
    Time {
        key: &'a ModelKey,
        since_ns: i64,
        until_ns: i64,
    },
}

impl Selection<'_> {
    /// The model version the selection is limited to.
    fn key(&self) -> Option<&ModelKey> {
        match self {
            Selection::After { .. } => None,
            Selection::Range { key, .. } | Selection::Time { key, .. } => Some(key),
        }
    }
}

/// Reads inference events with their features, in `event_id` order.
pub fn read_events(
    conn: &Connection,
    selection: Selection<'_>,
) -> duckdb::Result<Vec<(ModelKey, Event)>> {
    let (filter, params): (String, Vec<duckdb::types::Value>) = match &selection {
        Selection::After { cursor: Some(c), limit } => {
            (format!("event_id > ? ORDER BY event_id LIMIT {limit}"), vec![duckdb::types::Value::UBigInt(*c)])
        }
        Selection::After { cursor: None, limit } => (format!("TRUE ORDER BY event_id LIMIT {limit}"), Vec::new()),
        Selection::Range { key, first, last } => (
            "model = ? AND version = ? AND event_id BETWEEN ? AND ? ORDER BY event_id".to_owned(),
            vec![
                key.model.clone().into(),
                key.version.clone().into(),
                duckdb::types::Value::UBigInt(*first),
                duckdb::types::Value::UBigInt(*last),
            ],
        ),
        Selection::Time { key, since_ns, until_ns } => (
            "model = ? AND version = ? AND time >= make_timestamp_ns(?) AND time < make_timestamp_ns(?) ORDER BY event_id"
                .to_owned(),
            vec![key.model.clone().into(), key.version.clone().into(), (*since_ns).into(), (*until_ns).into()],
        ),
    };
    let sql = format!(
        "SELECT event_id, epoch_ns(time), model, version, prediction, prediction_label, feature_count \
         FROM inferences WHERE {filter}"
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut events: Vec<(ModelKey, Event, u32)> = Vec::new();
    let mut keys: HashMap<(String, String), ModelKey> = HashMap::new();
    let mut rows = stmt.query(params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        let model: String = r.get(2)?;
        let version: String = r.get(3)?;
        let key = keys
            .entry((model.clone(), version.clone()))
            .or_insert_with(|| ModelKey { model, version })
            .clone();
        let prediction = match (r.get::<_, Option<f64>>(4)?, r.get::<_, Option<String>>(5)?) {
            (_, Some(label)) => Value::Text(label),
            (Some(x), None) if x.is_finite() => Value::Number(x),
            _ => Value::Missing,
        };
        let event = Event {
            event_id: r.get(0)?,
            time_ns: r.get(1)?,
            prediction,
            names: Arc::from(Vec::new()),
            values: Vec::new(),
        };
        events.push((key, event, r.get::<_, u32>(6)?));
    }
    drop(rows);
    let (Some(first), Some(last)) = (
        events.first().map(|e| e.1.event_id),
        events.last().map(|e| e.1.event_id),
    ) else {
        return Ok(Vec::new());
    };
    if events.iter().any(|e| e.2 > 0) {
        attach_features(conn, &selection, first, last, &mut events)?;
    }
    Ok(events.into_iter().map(|(k, e, _)| (k, e)).collect())
}

fn attach_features(
    conn: &Connection,
    selection: &Selection<'_>,
    first: u64,
    last: u64,
    events: &mut [(ModelKey, Event, u32)],
) -> duckdb::Result<()> {
    let (sql, params): (&str, Vec<duckdb::types::Value>) = match selection.key() {
        None => (
            "SELECT event_id, feature, value_type, value_double, value_string FROM inference_features \
             WHERE event_id BETWEEN ? AND ?",
            vec![
                duckdb::types::Value::UBigInt(first),
                duckdb::types::Value::UBigInt(last),
            ],
        ),
        Some(key) => (
            "SELECT event_id, feature, value_type, value_double, value_string FROM inference_features \
             WHERE model = ? AND version = ? AND event_id BETWEEN ? AND ?",
            vec![
                key.model.clone().into(),
                key.version.clone().into(),
                duckdb::types::Value::UBigInt(first),
                duckdb::types::Value::UBigInt(last),
            ],
        ),
    };
    let position: HashMap<u64, usize> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.1.event_id, i))
        .collect();
    let mut names = Names::default();
    let mut features: Vec<Vec<(Arc<str>, Value)>> = vec![Vec::new(); events.len()];
    let mut stmt = conn.prepare(sql)?;
    let batches: Vec<RecordBatch> = stmt.query_arrow(params_from_iter(params.iter()))?.collect();
    for batch in batches {
        let col = |i: usize, ty: &DataType| {
            cast(batch.column(i), ty).map_err(crate::store::columns::arrow_error)
        };
        let ids = col(0, &DataType::UInt64)?;
        let feature = col(1, &DataType::Utf8)?;
        let kind = col(2, &DataType::Utf8)?;
        let double = col(3, &DataType::Float64)?;
        let text = col(4, &DataType::Utf8)?;
        let ids = ids.as_primitive::<UInt64Type>();
        let (feature, kind, text) = (
            feature.as_string::<i32>(),
            kind.as_string::<i32>(),
            text.as_string::<i32>(),
        );
        let double = double.as_primitive::<Float64Type>();
        for row in 0..batch.num_rows() {
            let Some(&at) = position.get(&ids.value(row)) else {
                continue;
            };
            let name = names.get(feature.value(row));
            let value = match kind.value(row) {
                "double" | "int" if !double.is_null(row) && double.value(row).is_finite() => {
                    Value::Number(double.value(row))
                }
                "string" | "bool" | "other"
                    if !text.is_null(row) && !text.value(row).is_empty() =>
                {
                    Value::Text(text.value(row).to_owned())
                }
                _ => Value::Missing,
            };
            features[at].push((name, value));
        }
    }
    for (e, f) in events.iter_mut().zip(features) {
        e.1.names = names.list(f.iter().map(|(n, _)| &**n));
        e.1.values = f.into_iter().map(|(_, v)| v).collect();
    }
    Ok(())
}
