//! A model version's baseline: the reference data every window is compared with. It comes from
//! the version's first events, from a file, or from the previous version (deployment check),
//! and is kept in `detection_baselines` as columns so that it survives restarts and retention.

use millwatch_detectors::dataset::{Column, ColumnValues, Dataset};
use serde::{Deserialize, Serialize};

/// Where a baseline came from, as recorded with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The version's own first events.
    FirstEvents,
    /// A file named in the config.
    File(String),
    /// The baseline of this earlier version of the same model.
    PreviousVersion(String),
    /// The stored events of `version` between two times.
    TimeRange {
        version: String,
        since: String,
        until: String,
    },
}

/// A baseline with the event range it was taken from (empty for a file).
#[derive(Debug, Clone)]
pub struct Baseline {
    pub origin: Origin,
    pub first_event_id: Option<u64>,
    pub last_event_id: Option<u64>,
    pub data: Dataset,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StoredValues {
    Numeric { values: Vec<Option<f64>> },
    Categorical { values: Vec<Option<String>> },
}

#[derive(Serialize, Deserialize)]
struct StoredColumn {
    name: String,
    #[serde(flatten)]
    values: StoredValues,
}

impl Baseline {
    /// The version whose stored events `first_event_id..=last_event_id` are: `own` (the
    /// version watched) unless the baseline was taken from another version's events.
    pub fn events_version<'a>(&'a self, own: &'a str) -> &'a str {
        match &self.origin {
            Origin::PreviousVersion(v) | Origin::TimeRange { version: v, .. } => v,
            Origin::FirstEvents | Origin::File(_) => own,
        }
    }

    /// The columns as JSON for `detection_baselines.data`.
    pub fn data_json(&self) -> String {
        let columns: Vec<StoredColumn> = self
            .data
            .columns()
            .iter()
            .map(|c| StoredColumn {
                name: c.name.clone(),
                values: match &c.values {
                    ColumnValues::Numeric(v) => StoredValues::Numeric { values: v.clone() },
                    ColumnValues::Categorical(v) => StoredValues::Categorical { values: v.clone() },
                },
            })
            .collect();
        serde_json::to_string(&columns).unwrap_or_else(|_| "[]".into())
    }

    /// The dataset back from [`Baseline::data_json`].
    pub fn dataset_from_json(json: &str) -> Result<Dataset, String> {
        let columns: Vec<StoredColumn> = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let columns = columns
            .into_iter()
            .map(|c| match c.values {
                StoredValues::Numeric { values } => Column::numeric(c.name, values),
                StoredValues::Categorical { values } => Column::categorical(c.name, values),
            })
            .collect();
        Dataset::new(columns).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data = Dataset::new(vec![
            Column::numeric("a", vec![Some(1.5), None]),
            Column::categorical("b", vec![None, Some("x".into())]),
        ])
        .expect("dataset");
        let b = Baseline {
            origin: Origin::FirstEvents,
            first_event_id: Some(0),
            last_event_id: Some(1),
            data: data.clone(),
        };
        assert_eq!(
            Baseline::dataset_from_json(&b.data_json()).expect("parses"),
            data
        );
    }
}
