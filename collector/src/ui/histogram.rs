//! The detail of a heatmap cell: one feature's values in the version's baseline (reference)
//! and in the window (current), as two histograms over the same bins (numeric) or the same
//! categories, drawn as inline SVG with each bar's share as its tooltip.

use std::collections::BTreeMap;

use maud::{Markup, html};
use millwatch_detectors::dataset::ColumnValues;

use super::page::number;
use crate::detection::baseline::Baseline;

/// The prediction's column name, in baselines and in the heatmap.
const PREDICTION: &str = "ml.prediction";
/// Bins of a numeric histogram.
const BINS: usize = 20;
/// Categories drawn, the most frequent; the rest are summed as `(other)`.
const CATEGORIES: usize = 15;

/// One side's values: the present ones and how many were missing.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Numeric { values: Vec<f64>, missing: usize },
    Categorical { values: Vec<String>, missing: usize },
}

impl Values {
    /// No value, of the same kind.
    pub fn empty_like(&self) -> Values {
        match self {
            Values::Numeric { .. } => Values::Numeric {
                values: Vec::new(),
                missing: 0,
            },
            Values::Categorical { .. } => Values::Categorical {
                values: Vec::new(),
                missing: 0,
            },
        }
    }

    fn len(&self) -> usize {
        match self {
            Values::Numeric { values, .. } => values.len(),
            Values::Categorical { values, .. } => values.len(),
        }
    }
    fn missing(&self) -> usize {
        match self {
            Values::Numeric { missing, .. } | Values::Categorical { missing, .. } => *missing,
        }
    }
}

/// The feature's column in the version's stored baseline; `None` without a baseline or when
/// the baseline has no such column.
pub fn reference(
    c: &duckdb::Connection,
    model: &str,
    version: &str,
    feature: &str,
) -> anyhow::Result<Option<Values>> {
    let mut stmt = c.prepare(
        "SELECT CAST(data AS VARCHAR) FROM detection_baselines WHERE model = ? AND version = ?",
    )?;
    let mut rows = stmt.query([model, version])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let data: String = row.get(0)?;
    let dataset = Baseline::dataset_from_json(&data)
        .map_err(|e| anyhow::anyhow!("the baseline of {model} {version} does not read: {e}"))?;
    Ok(dataset.column(feature).map(|col| match &col.values {
        ColumnValues::Numeric(v) => Values::Numeric {
            values: v.iter().flatten().copied().collect(),
            missing: v.iter().filter(|x| x.is_none()).count(),
        },
        ColumnValues::Categorical(v) => Values::Categorical {
            values: v.iter().flatten().cloned().collect(),
            missing: v.iter().filter(|x| x.is_none()).count(),
        },
    }))
}

/// The feature's values in the events `first..=last` of the version: numeric when the
/// reference is (or, without one, when every value is a number).
pub fn current(
    c: &duckdb::Connection,
    model: &str,
    version: &str,
    feature: &str,
    (first, last): (u64, u64),
    numeric: Option<bool>,
) -> duckdb::Result<Values> {
    let sql = if feature == PREDICTION {
        "SELECT coalesce(prediction, score), coalesce(prediction_label, CAST(prediction AS VARCHAR)) \
         FROM inferences WHERE model = ? AND version = ? AND event_id BETWEEN ? AND ?"
    } else {
        "SELECT CASE WHEN v.value_type <= 2 THEN v.value_double END, \
         CASE WHEN v.value_type = 4 THEN NULL ELSE coalesce(v.value_string, CAST(v.value_double AS VARCHAR)) END \
         FROM inference_feature_values v JOIN feature_keys k ON k.feature_key_id = v.feature_key_id \
         WHERE k.model = ? AND k.version = ? AND k.feature = ? AND v.event_id BETWEEN ? AND ?"
    };
    let mut stmt = c.prepare(sql)?;
    let map = |r: &duckdb::Row| Ok((r.get::<_, Option<f64>>(0)?, r.get::<_, Option<String>>(1)?));
    let rows: Vec<(Option<f64>, Option<String>)> = if feature == PREDICTION {
        stmt.query_map(duckdb::params![model, version, first, last], map)?
            .collect::<duckdb::Result<_>>()?
    } else {
        stmt.query_map(duckdb::params![model, version, feature, first, last], map)?
            .collect::<duckdb::Result<_>>()?
    };
    let numeric = numeric.unwrap_or_else(|| rows.iter().all(|(n, s)| n.is_some() || s.is_none()));
    Ok(if numeric {
        Values::Numeric {
            values: rows.iter().filter_map(|(n, _)| *n).collect(),
            missing: rows.iter().filter(|(n, _)| n.is_none()).count(),
        }
    } else {
        Values::Categorical {
            values: rows.iter().filter_map(|(_, s)| s.clone()).collect(),
            missing: rows.iter().filter(|(_, s)| s.is_none()).count(),
        }
    })
}

/// A bar: its label and the share of each side's present values in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub reference: f64,
    pub current: f64,
}

fn shares(counts: &[usize], n: usize) -> impl Iterator<Item = f64> + '_ {
    counts
        .iter()
        .map(move |c| if n == 0 { 0.0 } else { *c as f64 / n as f64 })
}

/// The bars of both sides: [`BINS`] equal bins over the range of both (numeric), or the most
/// frequent categories of both (categorical). Mixed kinds compare as categories.
pub fn bars(reference: &Values, current: &Values) -> Vec<Bar> {
    if let (Values::Numeric { values: r, .. }, Values::Numeric { values: c, .. }) =
        (reference, current)
    {
        let all = || r.iter().chain(c).filter(|v| v.is_finite());
        let (lo, hi) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
        if !lo.is_finite() {
            return Vec::new();
        }
        let bins = if hi > lo { BINS } else { 1 };
        let width = (hi - lo) / bins as f64;
        let bin = |v: f64| (((v - lo) / width) as usize).min(bins - 1);
        let count = |vs: &[f64]| {
            let mut n = vec![0usize; bins];
            for v in vs.iter().filter(|v| v.is_finite()) {
                n[if bins == 1 { 0 } else { bin(*v) }] += 1;
            }
            n
        };
        let (rc, cc) = (count(r), count(c));
        return shares(&rc, r.len())
            .zip(shares(&cc, c.len()))
            .enumerate()
            .map(|(i, (reference, current))| Bar {
                label: format!(
                    "[{}, {})",
                    number(lo + width * i as f64),
                    number(lo + width * (i + 1) as f64)
                ),
                reference,
                current,
            })
            .collect();
    }
    let strings = |v: &Values| -> Vec<String> {
        match v {
            Values::Categorical { values, .. } => values.clone(),
            Values::Numeric { values, .. } => values.iter().map(|x| number(*x)).collect(),
        }
    };
    let (r, c) = (strings(reference), strings(current));
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for v in &r {
        counts.entry(v).or_default().0 += 1;
    }
    for v in &c {
        counts.entry(v).or_default().1 += 1;
    }
    let share = |k: usize, n: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    let mut ranked: Vec<(&str, (usize, usize))> = counts.into_iter().collect();
    ranked.sort_by(|a, b| {
        let key = |x: &(usize, usize)| share(x.0, r.len()) + share(x.1, c.len());
        key(&b.1).total_cmp(&key(&a.1)).then(a.0.cmp(b.0))
    });
    let mut out: Vec<Bar> = ranked
        .iter()
        .take(CATEGORIES)
        .map(|(k, (a, b))| Bar {
            label: (*k).to_owned(),
            reference: share(*a, r.len()),
            current: share(*b, c.len()),
        })
        .collect();
    if ranked.len() > CATEGORIES {
        let (a, b) = ranked[CATEGORIES..]
            .iter()
            .fold((0, 0), |(a, b), (_, (x, y))| (a + x, b + y));
        out.push(Bar {
            label: "(other)".into(),
            reference: share(a, r.len()),
            current: share(b, c.len()),
        });
    }
    out
}

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 40.0;
const TOP: f64 = 10.0;

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// The two histograms of `feature`, reference grey and current blue, side by side per bin.
pub fn svg(feature: &str, reference: &Values, current: &Values) -> Markup {
    let bars = bars(reference, current);
    if bars.is_empty() {
        return html! { p.empty { "No value of " (feature) " to draw." } };
    }
    let top = bars
        .iter()
        .flat_map(|b| [b.reference, b.current])
        .fold(0.0, f64::max)
        .max(1e-9);
    let slot = (WIDTH - LEFT - 8.0) / bars.len() as f64;
    let bar_w = (slot * 0.42).max(1.0);
    let y = |share: f64| TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - share / top);
    let summary = format!(
        "{feature}: reference {} values ({} missing), current {} values ({} missing), {} bins",
        reference.len(),
        reference.missing(),
        current.len(),
        current.missing(),
        bars.len()
    );
    let label_every = bars.len().div_ceil(6);
    html! {
        figure.chart.histogram data-feature=(feature) data-reference-n=(reference.len()) data-current-n=(current.len()) {
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(summary) {
                title { (summary) }
                text.axis x=(LEFT - 6.0) y=(TOP + 8.0) text-anchor="end" { (percent(top)) }
                text.axis x=(LEFT - 6.0) y=(HEIGHT - BOTTOM) text-anchor="end" { "0%" }
                line.base x1=(LEFT) x2=(WIDTH - 8.0) y1=(HEIGHT - BOTTOM) y2=(HEIGHT - BOTTOM) {}
                @for (i, b) in bars.iter().enumerate() {
                    @let x = LEFT + slot * i as f64 + slot * 0.08;
                    g {
                        title { (b.label) ": reference " (percent(b.reference)) ", current " (percent(b.current)) }
                        rect.reference x=(format!("{x:.1}")) y=(format!("{:.1}", y(b.reference))) width=(format!("{bar_w:.1}"))
                            height=(format!("{:.1}", HEIGHT - BOTTOM - y(b.reference))) {}
                        rect.current x=(format!("{:.1}", x + bar_w)) y=(format!("{:.1}", y(b.current))) width=(format!("{bar_w:.1}"))
                            height=(format!("{:.1}", HEIGHT - BOTTOM - y(b.current))) {}
                    }
                    @if i % label_every == 0 {
                        text.axis x=(format!("{x:.1}")) y=(HEIGHT - BOTTOM + 14.0) { (b.label) }
                    }
                }
            }
            figcaption {
                span.key.reference { "■" } " reference (the version's baseline) · "
                span.key.current { "■" } " current (this window) · " (summary)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_sides_share_bins_and_each_sums_to_one() {
        let r = Values::Numeric {
            values: (0..100).map(|i| i as f64 / 100.0).collect(),
            missing: 3,
        };
        let c = Values::Numeric {
            values: (0..50).map(|i| 1.0 + (i + 1) as f64 / 50.0).collect(),
            missing: 0,
        };
        let b = bars(&r, &c);
        assert_eq!(b.len(), BINS);
        let sum = |f: fn(&Bar) -> f64| b.iter().map(f).sum::<f64>();
        assert!((sum(|x| x.reference) - 1.0).abs() < 1e-9);
        assert!((sum(|x| x.current) - 1.0).abs() < 1e-9);
        // The shift shows: the reference fills the lower half, the current the upper.
        assert!(b[..BINS / 2].iter().all(|x| x.current == 0.0));
        assert!(b[BINS / 2..].iter().all(|x| x.reference == 0.0));
        let svg = svg("torque", &r, &c).into_string();
        assert!(svg.contains(r#"data-reference-n="100""#), "{svg}");
        assert!(svg.contains("3 missing"));
    }

    #[test]
    fn categories_rank_by_share_and_the_rest_is_other() {
        let r = Values::Categorical {
            values: ["L", "L", "M", "H"].map(String::from).to_vec(),
            missing: 0,
        };
        let c = Values::Categorical {
            values: ["M", "M", "M", "L"].map(String::from).to_vec(),
            missing: 1,
        };
        let b = bars(&r, &c);
        assert_eq!(b[0].label, "M");
        assert_eq!((b[0].reference, b[0].current), (0.25, 0.75));
        let many = Values::Categorical {
            values: (0..40).map(|i| format!("c{i}")).collect(),
            missing: 0,
        };
        let b = bars(&many, &many);
        assert_eq!(b.len(), CATEGORIES + 1);
        assert_eq!(b[CATEGORIES].label, "(other)");
    }

    #[test]
    fn one_value_everywhere_is_one_bin() {
        let v = Values::Numeric {
            values: vec![2.0; 5],
            missing: 0,
        };
        let b = bars(&v, &v);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].reference, 1.0);
    }
}
