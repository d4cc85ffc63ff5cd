//! A control chart as inline SVG: the plotted statistic, the centre line, the control limits and
//! the points that violate a rule, each point with its time and value as a tooltip. No script:
//! the browser draws it, and a screen reader gets the summary in its label.

use maud::{Markup, html};

use super::page::{self, number};

/// One plotted point.
#[derive(Debug, Clone, PartialEq)]
pub struct Plotted {
    pub time_ns: i64,
    pub statistic: f64,
    pub lower: f64,
    pub upper: f64,
    /// The rules it violates (empty: in control).
    pub violations: Vec<String>,
}

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// The chart of `points` around `center`; `unit` labels the axis.
pub fn svg(points: &[Plotted], center: f64, unit: &str, label: &str) -> Markup {
    if points.is_empty() {
        return html! { p.empty { "No point charted yet." } };
    }
    let lo = points
        .iter()
        .flat_map(|p| [p.statistic, p.lower])
        .fold(f64::INFINITY, f64::min);
    let hi = points
        .iter()
        .flat_map(|p| [p.statistic, p.upper])
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.08).max(1e-9);
    let (lo, hi) = (lo - pad, hi + pad);
    let n = points.len();
    let x = |i: usize| LEFT + (WIDTH - LEFT - RIGHT) * i as f64 / (n.max(2) - 1) as f64;
    let y = |v: f64| TOP + (HEIGHT - TOP - BOTTOM) * (hi - v) / (hi - lo);
    let path = |f: &dyn Fn(&Plotted) -> f64| {
        points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(f(p))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let violations = points.iter().filter(|p| !p.violations.is_empty()).count();
    let summary = format!(
        "{label}: {n} points from {} to {}, centre {}, {violations} out of control",
        page::time(points[0].time_ns),
        page::time(points[n - 1].time_ns),
        number(center),
    );
    html! {
        figure.chart {
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(summary)
                data-violations=(violations) data-points=(n) {
                title { (summary) }
                @for v in [hi - pad, (hi + lo) / 2.0, lo + pad] {
                    text.axis x=(LEFT - 6.0) y=(format!("{:.1}", y(v) + 4.0)) text-anchor="end" { (number(v)) }
                }
                text.axis x=(LEFT) y=(HEIGHT - 8.0) { (page::time(points[0].time_ns)) }
                text.axis x=(WIDTH - RIGHT) y=(HEIGHT - 8.0) text-anchor="end" { (page::time(points[n - 1].time_ns)) " (" (unit) ")" }
                line.centre x1=(LEFT) x2=(WIDTH - RIGHT) y1=(format!("{:.1}", y(center))) y2=(format!("{:.1}", y(center))) {}
                polyline.limit points=(path(&|p| p.upper)) {}
                polyline.limit points=(path(&|p| p.lower)) {}
                polyline.series points=(path(&|p| p.statistic)) {}
                @for (i, p) in points.iter().enumerate().filter(|(_, p)| !p.violations.is_empty()) {
                    circle.violation cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(p.statistic))) r="3.5" {
                        title { (page::time(p.time_ns)) ": " (number(p.statistic)) " violates " (p.violations.join(", ")) }
                    }
                }
            }
            figcaption {
                (summary) ". Centre line dashed, control limits grey, violations red."
            }
        }
    }
}

/// One series of a line chart: its points (time, value, an optional band around the value)
/// and which points to mark (a drop found).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    /// The CSS class that colours it (`realised`, `estimated`).
    pub class: &'static str,
    pub points: Vec<LinePoint>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LinePoint {
    pub time_ns: i64,
    pub value: f64,
    pub band: Option<(f64, f64)>,
    pub marked: bool,
}

/// Series over time on one axis (a metric realised and estimated), bands shaded, marked
/// points red.
pub fn lines(lines: &[Line], label: &str) -> Markup {
    let all = || lines.iter().flat_map(|l| &l.points);
    let Some(t0) = all().map(|p| p.time_ns).min() else {
        return html! { p.empty { "No point yet." } };
    };
    let t1 = all().map(|p| p.time_ns).max().unwrap_or(t0).max(t0 + 1);
    let values = || {
        all()
            .flat_map(|p| [Some(p.value), p.band.map(|b| b.0), p.band.map(|b| b.1)])
            .flatten()
    };
    let lo = values().fold(f64::INFINITY, f64::min);
    let hi = values().fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.08).max(1e-6);
    let (lo, hi) = (lo - pad, hi + pad);
    let x = |t: i64| LEFT + (WIDTH - LEFT - RIGHT) * (t - t0) as f64 / (t1 - t0) as f64;
    let y = |v: f64| TOP + (HEIGHT - TOP - BOTTOM) * (hi - v) / (hi - lo);
    let xy = |t: i64, v: f64| format!("{:.1},{:.1}", x(t), y(v));
    let marked = all().filter(|p| p.marked).count();
    let summary = format!(
        "{label}: {} from {} to {}, {marked} points marked",
        lines
            .iter()
            .map(|l| format!("{} ({} points)", l.name, l.points.len()))
            .collect::<Vec<_>>()
            .join(", "),
        page::time(t0),
        page::time(t1),
    );
    html! {
        figure.chart.lines data-label=(label) {
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(summary) data-marked=(marked) {
                title { (summary) }
                @for v in [hi - pad, (hi + lo) / 2.0, lo + pad] {
                    text.axis x=(LEFT - 6.0) y=(format!("{:.1}", y(v) + 4.0)) text-anchor="end" { (number(v)) }
                }
                text.axis x=(LEFT) y=(HEIGHT - 8.0) { (page::time(t0)) }
                text.axis x=(WIDTH - RIGHT) y=(HEIGHT - 8.0) text-anchor="end" { (page::time(t1)) }
                @for l in lines {
                    @let banded: Vec<&LinePoint> = l.points.iter().filter(|p| p.band.is_some()).collect();
                    @if banded.len() > 1 {
                        polygon class={ "band " (l.class) } points=({
                            let upper = banded.iter().filter_map(|p| p.band.map(|b| xy(p.time_ns, b.1)));
                            let lower = banded.iter().rev().filter_map(|p| p.band.map(|b| xy(p.time_ns, b.0)));
                            upper.chain(lower).collect::<Vec<_>>().join(" ")
                        }) {}
                    }
                    polyline class={ "series " (l.class) } data-series=(l.name) data-points=(l.points.len())
                        points=(l.points.iter().map(|p| xy(p.time_ns, p.value)).collect::<Vec<_>>().join(" ")) {}
                    @for p in l.points.iter().filter(|p| p.marked) {
                        circle.violation cx=(format!("{:.1}", x(p.time_ns))) cy=(format!("{:.1}", y(p.value))) r="3.5" {
                            title { (l.name) " " (page::time(p.time_ns)) ": " (number(p.value)) " (drop)" }
                        }
                    }
                }
            }
            figcaption {
                @for l in lines { span class={ "key " (l.class) } { "■" } " " (l.name) " · " }
                "red: a drop found"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_are_marked_and_counted() {
        let p = |i: i64, v: f64, bad: bool| Plotted {
            time_ns: i * 1_000_000_000,
            statistic: v,
            lower: 7.0,
            upper: 13.0,
            violations: if bad {
                vec!["one_beyond3_sigma".into()]
            } else {
                vec![]
            },
        };
        let svg = svg(
            &[p(1, 10.0, false), p(2, 11.0, false), p(3, 15.0, true)],
            10.0,
            "Cel",
            "t",
        )
        .into_string();
        assert!(svg.contains(r#"data-violations="1""#), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(svg.contains("violates one_beyond3_sigma"));
        assert!(svg.contains("1 out of control"));
    }

    #[test]
    fn lines_shade_bands_and_mark_drops() {
        let pt = |t: i64, v: f64, band: bool, marked: bool| LinePoint {
            time_ns: t,
            value: v,
            band: band.then_some((v - 0.1, v + 0.1)),
            marked,
        };
        let out = lines(
            &[
                Line {
                    name: "realised".into(),
                    class: "realised",
                    points: vec![pt(1, 0.9, false, false), pt(2, 0.7, false, true)],
                },
                Line {
                    name: "estimated".into(),
                    class: "estimated",
                    points: vec![pt(1, 0.88, true, false), pt(2, 0.8, true, false)],
                },
            ],
            "accuracy",
        )
        .into_string();
        assert_eq!(out.matches("<polygon").count(), 1);
        assert_eq!(out.matches("<circle").count(), 1);
        assert!(out.contains(r#"data-marked="1""#), "{out}");
        assert!(lines(&[], "x").into_string().contains("No point yet"));
    }
}
