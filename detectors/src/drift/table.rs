//! The terminal table `millwatch drift` prints (the JSON is the report's serde form).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::report::DatasetReport;
use crate::dataset::ColumnKind;

fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e5 || v.abs() < 1e-3 {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

fn fmt_share(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.1}%", v * 100.0))
}

/// A terminal table of the report: one aligned row per column with its verdict mark, extra
/// tests indented below, and the dataset verdict last.
pub fn render_table(report: &DatasetReport) -> String {
    let header = [
        "",
        "column",
        "kind",
        "test",
        "statistic",
        "p-value",
        "threshold",
        "missing ref/cur",
        "out of range",
        "new cat.",
    ];
    let mut rows: Vec<[String; 10]> = Vec::new();
    let mut extra: Vec<Vec<String>> = Vec::new();
    for c in &report.columns {
        rows.push([
            if c.drifted { "✗ DRIFT" } else { "✓ ok" }.into(),
            c.column.clone(),
            match c.kind {
                ColumnKind::Numeric => "numeric",
                ColumnKind::Categorical => "categorical",
            }
            .into(),
            c.test.name().into(),
            fmt_num(c.statistic),
            c.p_value.map_or_else(|| "-".into(), fmt_num),
            fmt_num(c.threshold),
            format!(
                "{} / {}",
                fmt_share(Some(c.missing_share.reference)),
                fmt_share(Some(c.missing_share.current))
            ),
            fmt_share(c.out_of_range_share),
            fmt_share(c.new_category_share),
        ]);
        let others: BTreeSet<&String> = c.tests.keys().filter(|k| *k != c.test.name()).collect();
        extra.push(
            others
                .into_iter()
                .map(|k| {
                    let o = &c.tests[k];
                    match o.p_value {
                        Some(p) => format!("{k}={} (p={})", fmt_num(o.statistic), fmt_num(p)),
                        None => format!("{k}={}", fmt_num(o.statistic)),
                    }
                })
                .collect(),
        );
    }
    let mut widths = header.map(|h| h.chars().count());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w - cell.chars().count();
            // Numbers align right, text left.
            if (4..=6).contains(&i) {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.push_str(&" ".repeat(pad));
            }
            s.push_str("  ");
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&header.map(String::from), &mut out);
    let rule: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    out.push_str(&"─".repeat(rule));
    out.push('\n');
    for (r, e) in rows.iter().zip(&extra) {
        line(r, &mut out);
        if !e.is_empty() {
            let _ = writeln!(out, "{}{}", " ".repeat(widths[0] + 2), e.join("  "));
        }
    }
    for u in &report.not_tested {
        let _ = writeln!(out, "{:<w$}  {}", "– not tested", u.message, w = widths[0]);
    }
    out.push_str(&"─".repeat(rule));
    out.push('\n');
    let d = &report.dataset;
    let untested = match report.not_tested.len() {
        0 => String::new(),
        n => format!("; {n} not tested"),
    };
    match d.drifted {
        Some(drifted) => {
            let _ = writeln!(
                out,
                "{} dataset: {} of {} columns drifted ({:.1}%){untested}",
                if drifted { "✗ DRIFT" } else { "✓ no drift" },
                d.drifted_columns,
                d.columns,
                d.share * 100.0
            );
        }
        None => {
            let _ = writeln!(out, "– no verdict: no column could be tested{untested}");
        }
    }
    let _ = writeln!(
        out,
        "A column needs at least {} usable values in each dataset to be tested.",
        report.min_samples
    );
    out
}
