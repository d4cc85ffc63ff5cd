//! Two-sample drift tests between a reference and a current sample, the automatic choice of
//! test per column, multiple-testing correction, decision rules and the dataset verdict.
//!
//! Layout: `binned` (distances on proportions, binning), `ks` (KS statistic and p-values),
//! `numeric` and `categorical` (the tests themselves), `sort`, `test` (the catalogue),
//! `pair` (a column's two samples prepared once), `decision` (rules and corrections),
//! `report` (comparing two datasets, the JSON output) and `table` (the terminal table).

pub mod binned;
pub mod categorical;
pub mod decision;
pub mod ks;
pub mod numeric;
pub mod pair;
pub mod report;
pub mod sort;
pub mod table;
pub mod test;

use serde::Serialize;

pub use decision::{Correction, DecidedBy, Decision, DecisionRule, EffectFloors};
pub use ks::KsMethod;
pub use pair::{CategoricalPair, ColumnPair, NumericPair};
pub use report::{
    ColumnOverride, ColumnReport, DEFAULT_MIN_SAMPLES, DatasetReport, DatasetVerdict, DriftOptions,
    MissingShare, TestSelection, UntestedColumn, UntestedReason, compare,
};
pub use table::render_table;
pub use test::DriftTest;

/// What one test says about one pair of samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TestOutcome {
    /// The statistic (a distance for distance tests).
    pub statistic: f64,
    /// The p-value, for statistical tests; `None` for distances.
    pub p_value: Option<f64>,
    /// For KS, the method the p-value came from (exact or asymptotic).
    #[serde(skip)]
    pub ks_method: Option<KsMethod>,
}

impl TestOutcome {
    /// A distance, which has no p-value.
    pub fn distance(statistic: f64) -> Self {
        TestOutcome {
            statistic,
            p_value: None,
            ks_method: None,
        }
    }

    /// A statistic with its p-value.
    pub fn with_p(statistic: f64, p_value: f64) -> Self {
        TestOutcome {
            statistic,
            p_value: Some(p_value),
            ks_method: None,
        }
    }
}
