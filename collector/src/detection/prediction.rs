//! The distribution of a model version's predictions in a closed window and in its baseline,
//! for `/metrics`: quantiles of numeric predictions, and the shares of the most frequent
//! classes (the rest summed as `(other)`, so the number of series stays bounded).

use std::collections::HashMap;

use millwatch_detectors::dataset::{ColumnValues, Dataset};
use millwatch_detectors::drift::binned::quantile_sorted;

use super::windows::PREDICTION;

/// Quantiles exported for numeric predictions.
pub const QUANTILES: [f64; 7] = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95];
/// Classes exported by name; the others are summed as [`OTHER`].
pub const TOP_CLASSES: usize = 10;
/// The label of the classes beyond the [`TOP_CLASSES`] most frequent.
pub const OTHER: &str = "(other)";

/// The predictions of one side (the closed window or the baseline).
#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    /// `(q, value)` for each of [`QUANTILES`] (numpy's linear method), and the sum and count
    /// of the predictions.
    Quantiles {
        quantiles: Vec<(f64, f64)>,
        sum: f64,
        count: u64,
    },
    /// `(class, share of the predictions)`.
    Classes(Vec<(String, f64)>),
    /// No prediction present.
    Empty,
}

/// The closed window's predictions and the baseline's.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    pub current: Distribution,
    pub baseline: Distribution,
}

/// Summarises the `ml.prediction` column of the window and of the baseline. The classes named
/// are the [`TOP_CLASSES`] most frequent over both sides together (ties by name), so the two
/// sides show the same classes and compare line by line.
pub fn summarise(baseline: &Dataset, window: &Dataset) -> Predictions {
    let values = |d: &Dataset| d.column(PREDICTION).map(|c| c.values.clone());
    let (base, current) = (values(baseline), values(window));
    let mut totals: HashMap<&str, usize> = HashMap::new();
    for side in [&base, &current] {
        if let Some(ColumnValues::Categorical(v)) = side {
            for class in v.iter().flatten() {
                *totals.entry(class.as_str()).or_default() += 1;
            }
        }
    }
    let mut ranked: Vec<(&str, usize)> = totals.into_iter().collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let named: Vec<&str> = ranked.iter().take(TOP_CLASSES).map(|(c, _)| *c).collect();
    let other = ranked.len() > TOP_CLASSES;
    let side = |v: &Option<ColumnValues>| match v {
        Some(ColumnValues::Numeric(v)) => quantiles(v),
        Some(ColumnValues::Categorical(v)) => classes(v, &named, other),
        None => Distribution::Empty,
    };
    Predictions {
        current: side(&current),
        baseline: side(&base),
    }
}

fn quantiles(values: &[Option<f64>]) -> Distribution {
    let mut sorted: Vec<f64> = values
        .iter()
        .flatten()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if sorted.is_empty() {
        return Distribution::Empty;
    }
    sorted.sort_unstable_by(f64::total_cmp);
    Distribution::Quantiles {
        quantiles: QUANTILES
            .iter()
            .map(|&q| (q, quantile_sorted(&sorted, q)))
            .collect(),
        sum: sorted.iter().sum(),
        count: sorted.len() as u64,
    }
}

fn classes(values: &[Option<String>], named: &[&str], other: bool) -> Distribution {
    let present: Vec<&str> = values.iter().flatten().map(String::as_str).collect();
    if present.is_empty() {
        return Distribution::Empty;
    }
    let n = present.len() as f64;
    let mut counts: Vec<usize> = vec![0; named.len() + 1];
    for p in present {
        let i = named.iter().position(|c| *c == p).unwrap_or(named.len());
        counts[i] += 1;
    }
    let mut out: Vec<(String, f64)> = named
        .iter()
        .zip(&counts)
        .map(|(c, k)| ((*c).to_owned(), *k as f64 / n))
        .collect();
    if other {
        out.push((OTHER.to_owned(), counts[named.len()] as f64 / n));
    }
    Distribution::Classes(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use millwatch_detectors::dataset::Column;

    fn numeric(v: &[f64]) -> Dataset {
        Dataset::new(vec![Column::numeric(
            PREDICTION,
            v.iter().map(|x| Some(*x)).collect(),
        )])
        .unwrap()
    }

    fn categorical(v: &[&str]) -> Dataset {
        Dataset::new(vec![Column::categorical(
            PREDICTION,
            v.iter()
                .map(|x| (!x.is_empty()).then(|| (*x).to_owned()))
                .collect(),
        )])
        .unwrap()
    }

    #[test]
    fn numeric_quantiles_follow_numpys_linear_method() {
        // 1..=11 shuffled: position (n-1)q = 10q, so q=0.05 -> 1.5, 0.25 -> 3.5, 0.5 -> 6.
        let window = numeric(&[7.0, 1.0, 11.0, 3.0, 5.0, 9.0, 2.0, 10.0, 4.0, 8.0, 6.0]);
        let baseline = numeric(&[0.0, 100.0]);
        let p = summarise(&baseline, &window);
        let Distribution::Quantiles {
            quantiles: q,
            sum,
            count,
        } = p.current
        else {
            panic!("{p:?}")
        };
        assert_eq!((sum, count), (66.0, 11));
        let want = [1.5, 2.0, 3.5, 6.0, 8.5, 10.0, 10.5];
        for ((qq, v), w) in q.iter().zip(want) {
            assert!((v - w).abs() < 1e-12, "q{qq}: {v} != {w}");
        }
        // Two values: linear between them.
        let Distribution::Quantiles { quantiles: b, .. } = p.baseline else {
            panic!()
        };
        assert_eq!(b[3], (0.5, 50.0));
        assert_eq!(b[0], (0.05, 5.0));
    }

    #[test]
    fn classes_are_the_top_over_both_sides_with_the_rest_as_other() {
        // 12 classes: c00 most frequent ... c11 least; the two rarest become (other).
        let mut base: Vec<String> = Vec::new();
        for i in 0..12 {
            for _ in 0..(20 - i) {
                base.push(format!("c{i:02}"));
            }
        }
        let base_refs: Vec<&str> = base.iter().map(String::as_str).collect();
        // The window: c00 and c11 (the rarest in the baseline) four times each, c05 twice,
        // one missing. Totals over both sides: c00 24, c01 19, c02 18, c03 17, c05 17, c04 16,
        // c06 14, c07 13, c11 13, c08 12 named (ties by name); c09 11 and c10 10 are (other).
        let mut window = vec!["c00"; 4];
        window.extend(["c11", "c11", "c11", "c11", "c05", "c05", ""]);
        let p = summarise(&categorical(&base_refs), &categorical(&window));
        let Distribution::Classes(current) = &p.current else {
            panic!("{p:?}")
        };
        let names: Vec<&str> = current.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "c00", "c01", "c02", "c03", "c05", "c04", "c06", "c07", "c11", "c08", OTHER
            ]
        );
        let share = |d: &[(String, f64)], c: &str| d.iter().find(|(n, _)| n == c).unwrap().1;
        // Shares of the 10 present predictions (the missing one does not count).
        assert_eq!(share(current, "c00"), 0.4);
        assert_eq!(share(current, "c11"), 0.4);
        assert_eq!(share(current, "c05"), 0.2);
        assert_eq!(share(current, OTHER), 0.0);
        assert_eq!(share(current, "c01"), 0.0);
        let Distribution::Classes(baseline) = &p.baseline else {
            panic!()
        };
        let n = base.len() as f64; // 20 + 19 + ... + 9
        assert_eq!(n, 174.0);
        assert_eq!(share(baseline, "c00"), 20.0 / n);
        assert_eq!(share(baseline, "c11"), 9.0 / n);
        assert_eq!(share(baseline, OTHER), (11.0 + 10.0) / n);
        let total: f64 = baseline.iter().map(|(_, s)| s).sum();
        assert!((total - 1.0).abs() < 1e-12);
    }

    #[test]
    fn few_classes_have_no_other_and_a_missing_column_is_empty() {
        let p = summarise(
            &categorical(&["ok", "ok", "scratch"]),
            &categorical(&["ok"]),
        );
        assert_eq!(
            p.current,
            Distribution::Classes(vec![("ok".into(), 1.0), ("scratch".into(), 0.0)])
        );
        let empty = Dataset::new(Vec::new()).unwrap();
        assert_eq!(
            summarise(&empty, &categorical(&[""])).baseline,
            Distribution::Empty
        );
        assert_eq!(
            summarise(&empty, &categorical(&[""])).current,
            Distribution::Empty
        );
    }
}
