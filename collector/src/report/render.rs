//! A report as JSON, CSV (one long table, a `section` column says which part a row belongs
//! to), Markdown, or one self-contained HTML file (inline SVG charts, print CSS, nothing
//! fetched). HTML and Markdown come from the minijinja templates beside this file.

use minijinja::{Environment, context};
use serde::Serialize;

use super::data::{FeatureDrift, Report, Window};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Html,
    Json,
    Csv,
    Md,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        match s {
            "html" => Ok(Format::Html),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "md" | "markdown" => Ok(Format::Md),
            _ => Err(format!(
                "`{s}` is not a report format: html, json, csv or md"
            )),
        }
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Md => "md",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Md => "text/markdown; charset=utf-8",
        }
    }
}

pub fn render(report: &Report, format: Format) -> anyhow::Result<Vec<u8>> {
    Ok(match format {
        Format::Json => serde_json::to_vec_pretty(report)?,
        Format::Csv => csv(report)?,
        Format::Html => template("report.html", report)?.into_bytes(),
        Format::Md => template("report.md", report)?.into_bytes(),
    })
}

fn template(name: &str, report: &Report) -> anyhow::Result<String> {
    let mut env = Environment::new();
    env.add_template("report.html", include_str!("templates/report.html.j2"))?;
    env.add_template("report.md", include_str!("templates/report.md.j2"))?;
    env.add_filter("num", num);
    let charts: Vec<Chart> = report.feature_drift.iter().map(Chart::of_feature).collect();
    let prediction = (!report.prediction_drift.is_empty())
        .then(|| Chart::of_windows("ml.prediction", &report.prediction_drift));
    let performance = (!report.performance.is_empty())
        .then(|| Chart::of_windows("performance", &report.performance));
    Ok(env.get_template(name)?.render(context! {
        r => report,
        charts => charts,
        prediction_chart => prediction,
        performance_chart => performance,
    })?)
}

/// A number as reports print it: up to four significant decimals, `-` when absent.
fn num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x == 0.0 || (x.abs() >= 0.001 && x.abs() < 1e6) => {
            let s = format!("{x:.4}");
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        }
        Some(x) => format!("{x:.3e}"),
    }
}

/// An SVG line chart of a statistic per window, in the viewBox 0..W × 0..H.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    pub id: String,
    pub title: String,
    /// `x,y x,y ...` of the statistic.
    pub points: String,
    /// y of the threshold line, when there is one.
    pub threshold_y: Option<f64>,
    /// Drifted windows' dots.
    pub dots: Vec<(f64, f64)>,
    pub max: String,
    pub min: String,
    pub first: String,
    pub last: String,
    pub windows: usize,
}

const W: f64 = 600.0;
const H: f64 = 160.0;
const PAD: f64 = 10.0;

impl Chart {
    fn of_feature(f: &FeatureDrift) -> Chart {
        Chart::of_windows(&f.feature, &f.results)
    }

    /// One test's results (the first named): a chart per feature shows one statistic.
    fn of_windows(title: &str, rows: &[Window]) -> Chart {
        let test = rows.first().map(|w| w.test.clone()).unwrap_or_default();
        let series: Vec<&Window> = rows.iter().filter(|w| w.test == test).collect();
        let values: Vec<f64> = series.iter().filter_map(|w| w.statistic).collect();
        let threshold = series.iter().find_map(|w| w.threshold);
        let hi = values
            .iter()
            .copied()
            .chain(threshold)
            .fold(f64::NEG_INFINITY, f64::max);
        let lo = values
            .iter()
            .copied()
            .chain(threshold)
            .fold(f64::INFINITY, f64::min)
            .min(0.0);
        let span = if hi > lo { hi - lo } else { 1.0 };
        let n = series.len().max(2) - 1;
        let x = |i: usize| PAD + (W - 2.0 * PAD) * i as f64 / n as f64;
        let y = |v: f64| H - PAD - (H - 2.0 * PAD) * (v - lo) / span;
        let mut points = Vec::new();
        let mut dots = Vec::new();
        for (i, w) in series.iter().enumerate() {
            if let Some(s) = w.statistic {
                points.push(format!("{:.1},{:.1}", x(i), y(s)));
                if w.drifted {
                    dots.push(((x(i) * 10.0).round() / 10.0, (y(s) * 10.0).round() / 10.0));
                }
            }
        }
        Chart {
            id: format!(
                "chart-{}",
                title
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect::<String>()
            ),
            title: format!("{title} ({test})"),
            points: points.join(" "),
            threshold_y: threshold.map(|t| (y(t) * 10.0).round() / 10.0),
            dots,
            max: num((!values.is_empty()).then_some(hi)),
            min: num(Some(lo)),
            first: series.first().map(|w| w.time.clone()).unwrap_or_default(),
            last: series.last().map(|w| w.time.clone()).unwrap_or_default(),
            windows: series.len(),
        }
    }
}

/// One CSV row: every section shares these columns and leaves the ones it has no use for empty.
/// The header is the field names, in this order.
#[derive(Default, serde::Serialize)]
struct CsvRow {
    section: &'static str,
    time: String,
    version: String,
    environment: String,
    feature: String,
    detector: String,
    test: String,
    window_start: String,
    window_end: String,
    statistic: String,
    p_value: String,
    threshold: String,
    drifted: String,
    verdict: String,
    actor: String,
    action: String,
    detail: String,
}

fn csv(r: &Report) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for v in &r.versions {
        w.serialize(CsvRow {
            section: "versions",
            time: v.first_seen.clone(),
            version: v.version.clone(),
            environment: v.environments.join(" "),
            window_start: v.first_seen.clone(),
            window_end: v.last_seen.clone(),
            statistic: v.events.to_string(),
            detail: "events".into(),
            ..CsvRow::default()
        })?;
    }
    for p in &r.placements {
        w.serialize(CsvRow {
            section: "placements",
            time: p.first_seen.clone(),
            version: p.version.clone(),
            environment: p.environment.clone(),
            window_start: p.first_seen.clone(),
            window_end: p.last_seen.clone(),
            statistic: p.events.to_string(),
            detail: format!("host={} site={} line={}", p.host, p.site, p.line),
            ..CsvRow::default()
        })?;
    }
    let windows = r
        .feature_drift
        .iter()
        .flat_map(|f| f.results.iter().map(|w| ("feature_drift", w)))
        .chain(r.prediction_drift.iter().map(|w| ("prediction_drift", w)))
        .chain(r.performance.iter().map(|w| ("performance", w)))
        .chain(
            r.data_quality
                .iter()
                .flat_map(|f| f.results.iter().map(|w| ("data_quality", w))),
        )
        .chain(
            r.control_chart_violations
                .iter()
                .map(|w| ("control_chart", w)),
        );
    for (section, x) in windows {
        w.serialize(CsvRow {
            section,
            time: x.time.clone(),
            version: x.version.clone(),
            feature: x.feature.clone(),
            detector: x.detector.clone(),
            test: x.test.clone(),
            window_start: x.window_start.clone().unwrap_or_default(),
            window_end: x.window_end.clone().unwrap_or_default(),
            statistic: opt(x.statistic),
            p_value: opt(x.p_value),
            threshold: opt(x.threshold),
            drifted: x.drifted.to_string(),
            verdict: x.verdict.clone(),
            ..CsvRow::default()
        })?;
    }
    for (section, entries) in [
        ("deployments", &r.deployments),
        ("incidents", &r.incidents),
        ("audit", &r.audit),
    ] {
        for a in entries {
            let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
            let o = &a["object"];
            let of = |k: &str| o[k].as_str().unwrap_or_default().to_owned();
            w.serialize(CsvRow {
                section,
                time: s("time"),
                version: of("version"),
                environment: of("environment"),
                feature: of("feature"),
                verdict: s("reason"),
                actor: s("actor"),
                action: s("action"),
                detail: format!("seq={} object={} new={}", a["seq"], o, a["new_value"]),
                ..CsvRow::default()
            })?;
        }
    }
    let v = &r.audit_verification;
    w.serialize(CsvRow {
        section: "audit_verification",
        statistic: v.entries.to_string(),
        drifted: (!v.ok).to_string(),
        verdict: if v.ok {
            "ok".into()
        } else {
            v.problem.clone().unwrap_or_default()
        },
        detail: format!("head={}:{}", v.head.seq, v.head.hash),
        ..CsvRow::default()
    })?;
    Ok(w.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::data::{Scope, build};
    fn store() -> duckdb::Connection {
        let c = crate::audit::migrated_in_memory();
        for (t, feature, statistic, drifted) in [
            (1_000, "a", 0.1, false),
            (1_000, "b", 0.9, true),
            (2_000, "a", 0.2, false),
            (2_000, "b", 0.1, false),
        ] {
            c.execute(
                "INSERT INTO detections (time, model, version, feature, detector, test, statistic, \
                 p_value, threshold, drifted, verdict) VALUES (make_timestamp_ns(?), 'm', '1', ?, \
                 'drift', 'ks', ?, 0.5, 0.3, ?, ?)",
                duckdb::params![
                    t,
                    feature,
                    statistic,
                    drifted,
                    if drifted { "drift" } else { "no_drift" }
                ],
            )
            .unwrap();
        }
        c
    }

    #[test]
    fn every_format_renders_with_the_drifted_feature_first_and_nothing_fetched() {
        let c = store();
        let scope = Scope {
            model: "m".into(),
            ..Scope::default()
        };
        let report = build(&c, &scope, 3_000).unwrap();
        assert_eq!(report.feature_drift[0].feature, "b");
        assert_eq!(
            (
                report.feature_drift[0].windows,
                report.feature_drift[0].drifted_windows
            ),
            (2, 1)
        );
        let html = String::from_utf8(render(&report, Format::Html).unwrap()).unwrap();
        assert!(html.contains(r#"id="chart-b""#));
        assert!(html.contains("<polyline"));
        assert!(
            !html.contains("http://") && !html.contains("https://") && !html.contains("<script")
        );
        let md = String::from_utf8(render(&report, Format::Md).unwrap()).unwrap();
        assert!(md.contains("| b | 2 | 1 | 0.9 |"), "{md}");
        let csv = String::from_utf8(render(&report, Format::Csv).unwrap()).unwrap();
        assert_eq!(
            csv.lines().next(),
            Some(
                "section,time,version,environment,feature,detector,test,window_start,window_end,\
                 statistic,p_value,threshold,drifted,verdict,actor,action,detail"
            )
        );
        assert!(
            csv.lines()
                .any(|l| l.starts_with("audit_verification,,,,,,,,,0,,,false,ok,,,head=0:")),
            "{csv}"
        );
        assert_eq!(
            csv.lines()
                .filter(|l| l.starts_with("feature_drift,"))
                .count(),
            4
        );
        let json: serde_json::Value =
            serde_json::from_slice(&render(&report, Format::Json).unwrap()).unwrap();
        assert_eq!(json["feature_drift"][0]["max_statistic"], 0.9);
        assert!(json["audit_verification"]["ok"].as_bool().unwrap());
    }

    #[test]
    fn numbers_print_short() {
        assert_eq!(num(Some(0.5)), "0.5");
        assert_eq!(num(Some(1.0)), "1");
        assert_eq!(num(Some(1.5e-7)), "1.500e-7");
        assert_eq!(num(None), "-");
    }
}
