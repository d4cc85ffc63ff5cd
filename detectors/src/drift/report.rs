//! Comparing a reference dataset with a current one: per-column test choice, verdicts under the
//! chosen decision rule and correction, data-quality shares, and the dataset verdict; the
//! report serialises to the JSON `millwatch drift` prints (its table is in `table`).

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use serde::Serialize;

use super::TestOutcome;
use super::decision::{Correction, Decision, DecisionRule, decide, effect_size};
use super::pair::{CategoricalPair, ColumnPair, NumericPair};
use super::test::DriftTest;
use crate::dataset::{Column, ColumnKind, ColumnValues, Dataset, parse_number};
use crate::error::{DetectorError, Result};

/// The fewest usable values a column needs in each dataset to get a verdict: below it a test's
/// p-value and a distance's binning say little. The live engine's `detection.min_samples`
/// default and `millwatch drift --min-samples` default are this number.
pub const DEFAULT_MIN_SAMPLES: NonZeroUsize = NonZeroUsize::new(30).expect("30 is not zero");

/// Which tests to run on each column.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum TestSelection {
    /// Only the automatic choice.
    #[default]
    Auto,
    /// Every applicable test; the verdict still comes from the automatic choice.
    All,
    /// These tests where they apply; the verdict comes from the first that applies (or the
    /// automatic choice when none does).
    Named(Vec<DriftTest>),
}

impl std::str::FromStr for TestSelection {
    type Err = DetectorError;

    /// Reads `auto`, `all` or a comma-separated list of test names.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "auto" => Ok(TestSelection::Auto),
            "all" => Ok(TestSelection::All),
            list => Ok(TestSelection::Named(
                list.split(',')
                    .map(str::parse)
                    .collect::<Result<Vec<DriftTest>>>()?,
            )),
        }
    }
}

/// Per-column choice of test and threshold, overriding the automatic ones.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ColumnOverride {
    /// Test deciding the column's verdict.
    pub test: Option<DriftTest>,
    /// Threshold for that test.
    pub threshold: Option<f64>,
}

/// Options of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftOptions {
    /// Tests to run.
    pub tests: TestSelection,
    /// Columns to compare (all columns of the reference present in the current data if `None`).
    pub columns: Option<Vec<String>>,
    /// Test and threshold per column name.
    pub overrides: BTreeMap<String, ColumnOverride>,
    /// Share of drifted columns at which the dataset counts as drifted.
    pub drift_share: f64,
    /// Correction of p-values across columns (the live rule always uses Benjamini–Hochberg).
    pub correction: Correction,
    /// How verdicts are decided.
    pub rule: DecisionRule,
    /// Usable values a column needs in each dataset to be tested; fewer, and it is listed as
    /// not tested ([`UntestedReason::TooFewValues`]).
    pub min_samples: NonZeroUsize,
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions {
            tests: TestSelection::Auto,
            columns: None,
            overrides: BTreeMap::new(),
            drift_share: 0.5,
            correction: Correction::None,
            rule: DecisionRule::EvidentlyCompatible,
            min_samples: DEFAULT_MIN_SAMPLES,
        }
    }
}

/// Missing shares of a column in both datasets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MissingShare {
    /// Missing count / rows in the reference.
    pub reference: f64,
    /// Missing count / rows in the current data.
    pub current: f64,
}

/// One column's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnReport {
    /// Column name.
    pub column: String,
    /// Kind, from the reference.
    pub kind: ColumnKind,
    /// The test that decided the verdict.
    pub test: DriftTest,
    /// Its statistic.
    pub statistic: f64,
    /// Its p-value (raw), if it has one.
    pub p_value: Option<f64>,
    /// The threshold applied.
    pub threshold: f64,
    /// Verdict.
    pub drifted: bool,
    /// Missing shares.
    pub missing_share: MissingShare,
    /// Share of current values outside the reference range (numeric columns).
    pub out_of_range_share: Option<f64>,
    /// Share of current values in categories new to the reference (categorical columns).
    pub new_category_share: Option<f64>,
    /// Every test run, by name.
    pub tests: BTreeMap<String, TestOutcome>,
    /// How the verdict was reached (raw and corrected p, effect size, rule).
    #[serde(skip)]
    pub decision: Decision,
    /// Current values that did not match the reference kind (text in a numeric column),
    /// excluded from the tests.
    pub type_mismatches: usize,
}

/// Why a column could not be tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UntestedReason {
    /// Every reference value is missing.
    NoReferenceValues,
    /// Every current value is missing (or, in a numeric column, is text).
    NoCurrentValues,
    /// The reference holds NaN or an infinity.
    NonFiniteReference,
    /// The current data holds NaN or an infinity.
    NonFiniteCurrent,
    /// Fewer usable values than the minimum ([`DriftOptions::min_samples`]) on one side.
    TooFewValues,
    /// The reference has the column, the current data does not.
    NotInCurrent,
    /// The current data has the column, the reference does not.
    NotInReference,
}

/// A column [`compare`] could not test; the other columns are tested without it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UntestedColumn {
    /// Column name.
    pub column: String,
    /// Kind, from the reference (from the current data for a column only there).
    pub kind: ColumnKind,
    /// Why it was not tested.
    pub reason: UntestedReason,
    /// The same, in words, with counts.
    pub message: String,
    /// Missing shares; a column absent from one dataset is all missing there.
    pub missing_share: MissingShare,
    /// Current values that did not match the reference kind.
    pub type_mismatches: usize,
    /// Usable (present, and in a numeric column numeric) values in the reference.
    pub reference_values: usize,
    /// Usable values in the current data.
    pub current_values: usize,
}

/// The dataset verdict.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DatasetVerdict {
    /// Columns compared.
    pub columns: usize,
    /// Columns found drifted.
    pub drifted_columns: usize,
    /// `drifted_columns / columns` (0 when no column was tested).
    pub share: f64,
    /// Whether the share reached the configured drift share; `None` (no verdict) when no
    /// column could be tested.
    pub drifted: Option<bool>,
}

/// The result of [`compare`]; serialises to the JSON `millwatch drift --format json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetReport {
    /// One entry per tested column, in reference order.
    pub columns: Vec<ColumnReport>,
    /// The dataset verdict, over the tested columns.
    pub dataset: DatasetVerdict,
    /// Columns that could not be tested (absent from one side, no usable values, fewer than
    /// `min_samples`), in reference order, then the columns only the current data has; they
    /// count neither as drifted nor in the verdict's columns.
    pub not_tested: Vec<UntestedColumn>,
    /// The minimum of usable values per column and side that a verdict needs.
    pub min_samples: usize,
}

struct Prepared {
    pair: ColumnPair,
    kind: ColumnKind,
    missing: MissingShare,
    type_mismatches: usize,
}

fn share(count: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        count as f64 / total as f64
    }
}

/// Why `values` cannot be tested, with a message, if they cannot.
fn unusable(name: &str, which: &str, values: &[f64], mismatched: usize) -> Option<(bool, String)> {
    if values.is_empty() {
        let also = if mismatched > 0 {
            format!(" ({mismatched} were not numbers)")
        } else {
            String::new()
        };
        return Some((true, format!("column '{name}' has no {which} values{also}")));
    }
    let bad = values.iter().filter(|v| !v.is_finite()).count();
    (bad > 0).then(|| {
        (
            false,
            format!(
                "column '{name}' ({which}) holds {bad} NaN or infinite value{}",
                if bad == 1 { "" } else { "s" }
            ),
        )
    })
}

/// A column prepared for testing, or the reason it cannot be tested.
enum Preparation {
    Ready(Prepared),
    Untestable(UntestedColumn),
}

fn prepare(
    reference: &Column,
    current: &Column,
    rows: (usize, usize),
    min_samples: NonZeroUsize,
) -> Result<Preparation> {
    let name = &reference.name;
    let missing = MissingShare {
        reference: share(reference.values.missing(), rows.0),
        current: share(current.values.missing(), rows.1),
    };
    let mut type_mismatches = 0;
    let untestable = |reason, message, type_mismatches, (r, c): (usize, usize)| {
        Ok(Preparation::Untestable(UntestedColumn {
            column: name.clone(),
            kind: reference.kind(),
            reason,
            message,
            missing_share: missing,
            type_mismatches,
            reference_values: r,
            current_values: c,
        }))
    };
    let pair = match &reference.values {
        ColumnValues::Numeric(r) => {
            let r: Vec<f64> = r.iter().flatten().copied().collect();
            let c: Vec<f64> = match &current.values {
                ColumnValues::Numeric(c) => c.iter().flatten().copied().collect(),
                ColumnValues::Categorical(c) => c
                    .iter()
                    .flatten()
                    .filter_map(|s| {
                        let v = parse_number(s);
                        type_mismatches += usize::from(v.is_none());
                        v
                    })
                    .collect(),
            };
            let counts = (r.len(), c.len());
            if let Some((empty, message)) = unusable(name, "reference", &r, 0) {
                let reason = if empty {
                    UntestedReason::NoReferenceValues
                } else {
                    UntestedReason::NonFiniteReference
                };
                return untestable(reason, message, type_mismatches, counts);
            }
            if let Some((empty, message)) = unusable(name, "current", &c, type_mismatches) {
                let reason = if empty {
                    UntestedReason::NoCurrentValues
                } else {
                    UntestedReason::NonFiniteCurrent
                };
                return untestable(reason, message, type_mismatches, counts);
            }
            if let Some(message) = too_few(name, counts, min_samples) {
                return untestable(
                    UntestedReason::TooFewValues,
                    message,
                    type_mismatches,
                    counts,
                );
            }
            let pair = NumericPair::from_values(r, c)?;
            ColumnPair::Numeric(match reference.sorted_present() {
                Some(sorted) => pair.with_sorted_reference(sorted.to_vec()),
                None => pair,
            })
        }
        ColumnValues::Categorical(r) => {
            let as_text: Vec<String>;
            let c: Vec<&str> = match &current.values {
                ColumnValues::Categorical(c) => c.iter().flatten().map(String::as_str).collect(),
                ColumnValues::Numeric(c) => {
                    as_text = c.iter().flatten().map(|v| v.to_string()).collect();
                    as_text.iter().map(String::as_str).collect()
                }
            };
            let r: Vec<&str> = r.iter().flatten().map(String::as_str).collect();
            let counts = (r.len(), c.len());
            if r.is_empty() {
                let message = format!("column '{name}' has no reference values");
                return untestable(UntestedReason::NoReferenceValues, message, 0, counts);
            }
            if c.is_empty() {
                let message = format!("column '{name}' has no current values");
                return untestable(UntestedReason::NoCurrentValues, message, 0, counts);
            }
            if let Some(message) = too_few(name, counts, min_samples) {
                return untestable(UntestedReason::TooFewValues, message, 0, counts);
            }
            ColumnPair::Categorical(CategoricalPair::new(r, c)?)
        }
    };
    Ok(Preparation::Ready(Prepared {
        pair,
        kind: reference.kind(),
        missing,
        type_mismatches,
    }))
}

/// The message for a column with fewer usable values than `min_samples` on a side, if it has.
fn too_few(name: &str, (r, c): (usize, usize), min_samples: NonZeroUsize) -> Option<String> {
    let min = min_samples.get();
    let short: Vec<String> = [(r, "reference"), (c, "current")]
        .into_iter()
        .filter(|&(n, _)| n < min)
        .map(|(n, which)| format!("{n} {which} value{}", if n == 1 { "" } else { "s" }))
        .collect();
    (!short.is_empty()).then(|| {
        format!(
            "column '{name}' has only {}; a verdict needs at least {min} on each side",
            short.join(" and ")
        )
    })
}

/// A column that only one dataset has, listed as not tested.
fn absent(column: &Column, rows: usize, in_reference: bool) -> UntestedColumn {
    let name = &column.name;
    let here = share(column.values.missing(), rows);
    let usable = column.values.len() - column.values.missing();
    let (reason, message, missing_share, counts) = if in_reference {
        (
            UntestedReason::NotInCurrent,
            format!("column '{name}' is not in the current data"),
            MissingShare {
                reference: here,
                current: 1.0,
            },
            (usable, 0),
        )
    } else {
        (
            UntestedReason::NotInReference,
            format!("column '{name}' is not in the reference data"),
            MissingShare {
                reference: 1.0,
                current: here,
            },
            (0, usable),
        )
    };
    UntestedColumn {
        column: name.clone(),
        kind: column.kind(),
        reason,
        message,
        missing_share,
        type_mismatches: 0,
        reference_values: counts.0,
        current_values: counts.1,
    }
}

/// `a, b, c` for at most the first eight names, then how many more.
fn name_list(columns: &[Column]) -> String {
    const SHOWN: usize = 8;
    let mut out: Vec<String> = columns
        .iter()
        .take(SHOWN)
        .map(|c| format!("'{}'", c.name))
        .collect();
    if columns.len() > SHOWN {
        out.push(format!("and {} more", columns.len() - SHOWN));
    }
    out.join(", ")
}

/// Compares every selected column of `current` with `reference` and decides per column and for
/// the dataset. A column that cannot be tested — absent from one dataset (when no columns are
/// selected), no usable values on one side (all missing, or NaN / infinite numbers), fewer
/// than [`DriftOptions::min_samples`] — is listed in [`DatasetReport::not_tested`] with the
/// reason, and the other columns are tested as usual; with none tested the dataset has no
/// verdict. Errors, naming the column: an unknown column asked for, a test asked for that does
/// not apply to that column, an invalid threshold; and an empty dataset, two datasets without
/// a column in common (nothing to compare), or a drift share outside (0, 1].
pub fn compare(
    reference: &Dataset,
    current: &Dataset,
    options: &DriftOptions,
) -> Result<DatasetReport> {
    if reference.rows() == 0 {
        return Err(DetectorError::Empty("reference dataset".into()));
    }
    if current.rows() == 0 {
        return Err(DetectorError::Empty("current dataset".into()));
    }
    if !(options.drift_share > 0.0 && options.drift_share <= 1.0) {
        return Err(DetectorError::InvalidParameter(format!(
            "drift share {} is not in (0, 1]",
            options.drift_share
        )));
    }
    let names: Vec<&str> = match &options.columns {
        Some(cols) => {
            for c in cols {
                for (d, which) in [(reference, "reference"), (current, "current")] {
                    if d.column(c).is_none() {
                        return Err(DetectorError::InvalidInput(format!(
                            "column '{c}' is not in the {which} data"
                        )));
                    }
                }
            }
            cols.iter().map(String::as_str).collect()
        }
        None => {
            if !reference
                .columns()
                .iter()
                .any(|c| current.column(&c.name).is_some())
            {
                return Err(DetectorError::InvalidInput(format!(
                    "nothing to compare: no column of the reference data ({}) is in the current data ({})",
                    name_list(reference.columns()),
                    name_list(current.columns())
                )));
            }
            reference
                .columns()
                .iter()
                .map(|c| c.name.as_str())
                .collect()
        }
    };
    for (col, o) in &options.overrides {
        if let Some(t) = o.threshold
            && !(t.is_finite() && t >= 0.0)
        {
            return Err(DetectorError::InvalidParameter(format!(
                "threshold {t} for column '{col}'"
            )));
        }
    }

    struct Pending {
        prepared: Prepared,
        name: String,
        test: DriftTest,
        outcome: TestOutcome,
        tests: BTreeMap<String, TestOutcome>,
        threshold: f64,
    }
    let mut pending = Vec::with_capacity(names.len());
    let mut not_tested = Vec::new();
    for name in names {
        let Some(rc) = reference.column(name) else {
            continue;
        };
        let Some(cc) = current.column(name) else {
            not_tested.push(absent(rc, reference.rows(), true));
            continue;
        };
        let rows = (reference.rows(), current.rows());
        let prepared = match prepare(rc, cc, rows, options.min_samples)? {
            Preparation::Ready(p) => p,
            Preparation::Untestable(u) => {
                not_tested.push(u);
                continue;
            }
        };
        let pair = &prepared.pair;
        let over = options.overrides.get(name).copied().unwrap_or_default();
        let to_run: Vec<DriftTest> = match &options.tests {
            TestSelection::Auto => Vec::new(),
            TestSelection::All => pair.applicable_tests(),
            TestSelection::Named(list) => {
                list.iter().copied().filter(|&t| pair.applies(t)).collect()
            }
        };
        let test = match (over.test, &options.tests) {
            (Some(t), _) => t,
            (None, TestSelection::Named(_)) if !to_run.is_empty() => to_run[0],
            _ => pair.auto_test(),
        };
        let outcome = pair
            .run(test)
            .map_err(|e| DetectorError::NotApplicable(format!("column '{name}': {e}")))?;
        let mut tests = BTreeMap::new();
        tests.insert(test.name().to_string(), outcome);
        for t in to_run {
            if t != test {
                tests.insert(t.name().to_string(), pair.run(t)?);
            }
        }
        pending.push(Pending {
            threshold: over.threshold.unwrap_or(test.default_threshold()),
            prepared,
            name: name.to_string(),
            test,
            outcome,
            tests,
        });
    }

    let correction = match options.rule {
        DecisionRule::LiveDefault { .. } => Correction::BenjaminiHochberg,
        DecisionRule::EvidentlyCompatible => options.correction,
    };
    let raw: Vec<f64> = pending
        .iter()
        .map(|p| p.outcome.p_value.unwrap_or(f64::NAN))
        .collect();
    let corrected = correction.apply(&raw);

    let mut columns = Vec::with_capacity(pending.len());
    for (p, corr) in pending.into_iter().zip(corrected) {
        let pair = &p.prepared.pair;
        let effect = effect_size(pair, p.test, &p.outcome);
        let corrected_p = p.outcome.p_value.map(|_| corr);
        let decision = decide(
            &options.rule,
            p.test,
            &p.outcome,
            corrected_p,
            correction != Correction::None,
            p.threshold,
            effect,
        );
        let (out_of_range_share, new_category_share) = match pair {
            ColumnPair::Numeric(n) => (Some(n.out_of_range_share()), None),
            ColumnPair::Categorical(c) => (None, Some(c.new_category_share())),
        };
        columns.push(ColumnReport {
            column: p.name,
            kind: p.prepared.kind,
            test: p.test,
            statistic: p.outcome.statistic,
            p_value: p.outcome.p_value,
            threshold: decision.threshold,
            drifted: decision.drifted,
            missing_share: p.prepared.missing,
            out_of_range_share,
            new_category_share,
            tests: p.tests,
            decision,
            type_mismatches: p.prepared.type_mismatches,
        });
    }
    if options.columns.is_none() {
        for cc in current.columns() {
            if reference.column(&cc.name).is_none() {
                not_tested.push(absent(cc, current.rows(), false));
            }
        }
    }
    let drifted_columns = columns.iter().filter(|c| c.drifted).count();
    let share = share(drifted_columns, columns.len());
    Ok(DatasetReport {
        dataset: DatasetVerdict {
            columns: columns.len(),
            drifted_columns,
            share,
            drifted: (!columns.is_empty()).then_some(share >= options.drift_share),
        },
        columns,
        not_tested,
        min_samples: options.min_samples.get(),
    })
}
