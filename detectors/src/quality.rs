//! Data-quality checks of a current dataset against a reference: features that appear or
//! disappear, type mismatches, missing, out-of-range and new-category shares, and constant
//! columns.

use std::collections::HashSet;

use serde::Serialize;

use crate::dataset::{ColumnKind, ColumnValues, Dataset, parse_number};
use crate::drift::MissingShare;

/// Quality of one column present in both datasets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnQuality {
    /// Column name.
    pub column: String,
    /// Kind in the reference.
    pub reference_kind: ColumnKind,
    /// Kind in the current data.
    pub current_kind: ColumnKind,
    /// Share of current non-missing values that do not fit the reference kind (text where the
    /// reference has numbers, or numbers where the reference has only non-numeric text).
    pub type_mismatch_share: f64,
    /// Missing shares.
    pub missing_share: MissingShare,
    /// Share of current numbers outside the reference range (numeric reference).
    pub out_of_range_share: Option<f64>,
    /// Share of current categories never seen in the reference (categorical reference).
    pub new_category_share: Option<f64>,
    /// The reference has at most one distinct non-missing value.
    pub constant_in_reference: bool,
    /// The current data has at most one distinct non-missing value.
    pub constant_in_current: bool,
}

/// The quality report of a current dataset against its reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityReport {
    /// Columns in both datasets, in reference order.
    pub columns: Vec<ColumnQuality>,
    /// Columns only in the current data.
    pub appeared: Vec<String>,
    /// Columns only in the reference.
    pub disappeared: Vec<String>,
}

fn share(count: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        count as f64 / total as f64
    }
}

/// At most one distinct present value (0.0 and -0.0 are one value; NaN is its own).
fn constant<T>(v: &[Option<T>], same: impl Fn(&T, &T) -> bool) -> bool {
    let mut present = v.iter().flatten();
    match present.next() {
        None => true,
        Some(first) => present.all(|x| same(first, x)),
    }
}

fn is_constant(values: &ColumnValues) -> bool {
    match values {
        ColumnValues::Numeric(x) => constant(x, |a, b| a == b || a.to_bits() == b.to_bits()),
        ColumnValues::Categorical(x) => constant(x, |a, b| a == b),
    }
}

fn numbers_of(values: &ColumnValues) -> (Vec<f64>, usize) {
    match values {
        ColumnValues::Numeric(v) => (v.iter().flatten().copied().collect(), 0),
        ColumnValues::Categorical(v) => {
            let mut bad = 0;
            let nums = v
                .iter()
                .flatten()
                .filter_map(|s| {
                    let n = parse_number(s);
                    bad += usize::from(n.is_none());
                    n
                })
                .collect();
            (nums, bad)
        }
    }
}

/// Checks `current` against `reference`.
pub fn check_quality(reference: &Dataset, current: &Dataset) -> QualityReport {
    let mut columns = Vec::new();
    for rc in reference.columns() {
        let Some(cc) = current.column(&rc.name) else {
            continue;
        };
        let current_present = cc.values.len() - cc.values.missing();
        let (mismatches, out_of_range_share, new_category_share) = match &rc.values {
            ColumnValues::Numeric(r) => {
                let (cur, bad) = numbers_of(&cc.values);
                let finite = r.iter().flatten().filter(|x| x.is_finite());
                let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                    (lo.min(x), hi.max(x))
                });
                let outside = cur.iter().filter(|&&x| !(lo..=hi).contains(&x)).count();
                (bad, Some(share(outside, cur.len())), None)
            }
            ColumnValues::Categorical(r) => {
                let seen: HashSet<&str> = r.iter().flatten().map(String::as_str).collect();
                let reference_is_text = seen.iter().all(|s| parse_number(s).is_none());
                match &cc.values {
                    ColumnValues::Categorical(c) => {
                        let new = c
                            .iter()
                            .flatten()
                            .filter(|s| !seen.contains(s.as_str()))
                            .count();
                        (0, None, Some(share(new, current_present)))
                    }
                    ColumnValues::Numeric(c) => {
                        let n = c.iter().flatten().count();
                        (if reference_is_text { n } else { 0 }, None, Some(1.0))
                    }
                }
            }
        };
        columns.push(ColumnQuality {
            column: rc.name.clone(),
            reference_kind: rc.kind(),
            current_kind: cc.kind(),
            type_mismatch_share: share(mismatches, current_present),
            missing_share: MissingShare {
                reference: share(rc.values.missing(), reference.rows()),
                current: share(cc.values.missing(), current.rows()),
            },
            out_of_range_share,
            new_category_share,
            constant_in_reference: is_constant(&rc.values),
            constant_in_current: is_constant(&cc.values),
        });
    }
    let names =
        |d: &Dataset| -> Vec<String> { d.columns().iter().map(|c| c.name.clone()).collect() };
    QualityReport {
        columns,
        appeared: names(current)
            .into_iter()
            .filter(|n| reference.column(n).is_none())
            .collect(),
        disappeared: names(reference)
            .into_iter()
            .filter(|n| current.column(n).is_none())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_schema_type_range_and_constant_problems() {
        let reference =
            Dataset::from_csv_str("a,b,c,gone\n1,x,5,1\n2,y,5,2\n3,x,5,3\n").expect("csv");
        let current =
            Dataset::from_csv_str("a,b,c,new\n4,z,5,1\nfoo,x,5,1\n2,,5,1\n").expect("csv");
        let q = check_quality(&reference, &current);
        assert_eq!(q.appeared, vec!["new"]);
        assert_eq!(q.disappeared, vec!["gone"]);
        let a = &q.columns[0];
        assert_eq!(a.current_kind, ColumnKind::Categorical);
        assert!((a.type_mismatch_share - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(a.out_of_range_share, Some(0.5));
        let b = &q.columns[1];
        assert_eq!(b.new_category_share, Some(0.5));
        assert!((b.missing_share.current - 1.0 / 3.0).abs() < 1e-12);
        let c = &q.columns[2];
        assert!(c.constant_in_reference && c.constant_in_current);
        assert!(!a.constant_in_reference);
    }
}
