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
}
