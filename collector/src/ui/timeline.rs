//! A model's deployments on a timeline: one row per environment and host, one bar per version
//! from the first to the last event seen there (the audit trail's `model_registry`), drawn as
//! inline SVG with each bar's span and events as its tooltip.

use std::collections::BTreeMap;

use maud::{Markup, html};

use super::page;

/// Where and when a version ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub version: String,
    pub environment: String,
    pub host: String,
    pub first_ns: i64,
    pub last_ns: i64,
    pub events: u64,
}

pub fn placements(c: &duckdb::Connection, model: &str) -> duckdb::Result<Vec<Placement>> {
    let mut stmt = c.prepare(
        "SELECT version, environment, host, epoch_ns(min(first_seen)), epoch_ns(max(last_seen)), sum(events)::UBIGINT \
         FROM model_registry WHERE model = ? GROUP BY version, environment, host ORDER BY min(first_seen), version",
    )?;
    stmt.query_map([model], |r| {
        Ok(Placement {
            version: r.get(0)?,
            environment: r.get(1)?,
            host: r.get(2)?,
            first_ns: r.get(3)?,
            last_ns: r.get(4)?,
            events: r.get(5)?,
        })
    })?
    .collect()
}

const WIDTH: f64 = 860.0;
const LEFT: f64 = 190.0;
const RIGHT: f64 = 10.0;
const ROW: f64 = 24.0;
const TOP: f64 = 6.0;
const BOTTOM: f64 = 24.0;
/// Version colours, in order of first appearance (classes `v0`..`v5`, then again).
const PALETTE: usize = 6;

fn row_name(p: &Placement) -> String {
    let env = if p.environment.is_empty() {
        "(no environment)"
    } else {
        &p.environment
    };
    if p.host.is_empty() {
        env.to_owned()
    } else {
        format!("{env} · {}", p.host)
    }
}

pub fn svg(placements: &[Placement]) -> Markup {
    if placements.is_empty() {
        return html! { p.empty { "No deployment recorded yet (the audit trail learns them from the events within seconds)." } };
    }
    let mut rows: BTreeMap<String, Vec<&Placement>> = BTreeMap::new();
    for p in placements {
        rows.entry(row_name(p)).or_default().push(p);
    }
    let mut colours: Vec<&str> = Vec::new();
    for p in placements {
        if !colours.contains(&p.version.as_str()) {
            colours.push(&p.version);
        }
    }
    let colour = |v: &str| colours.iter().position(|c| *c == v).unwrap_or(0) % PALETTE;
    let start = placements.iter().map(|p| p.first_ns).min().unwrap_or(0);
    let end = placements
        .iter()
        .map(|p| p.last_ns)
        .max()
        .unwrap_or(0)
        .max(start + 1);
    let x = |t: i64| LEFT + (WIDTH - LEFT - RIGHT) * (t - start) as f64 / (end - start) as f64;
    let height = TOP + ROW * rows.len() as f64 + BOTTOM;
    let summary = format!(
        "{} versions on {} environments and hosts, from {} to {}",
        colours.len(),
        rows.len(),
        page::time(start),
        page::time(end)
    );
    html! {
        figure.chart.timeline {
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (height) } role="img" aria-label=(summary) {
                title { (summary) }
                @for (i, (name, bars)) in rows.iter().enumerate() {
                    @let y = TOP + ROW * i as f64;
                    text.axis x=(LEFT - 6.0) y=(format!("{:.1}", y + ROW * 0.65)) text-anchor="end" { (name) }
                    @for p in bars {
                        @let (x0, x1) = (x(p.first_ns), x(p.last_ns).max(x(p.first_ns) + 2.0));
                        g data-version=(p.version) data-row=(name) {
                            title { "version " (p.version) " on " (name) ": " (page::time(p.first_ns)) " to " (page::time(p.last_ns)) ", " (p.events) " events" }
                            rect class={ "deploy v" (colour(&p.version)) } x=(format!("{x0:.1}")) y=(format!("{:.1}", y + 3.0))
                                width=(format!("{:.1}", x1 - x0)) height=(format!("{:.1}", ROW - 6.0)) rx="3" {}
                            @if x1 - x0 > 8.0 * p.version.len() as f64 + 8.0 {
                                text.label x=(format!("{:.1}", x0 + 4.0)) y=(format!("{:.1}", y + ROW * 0.65)) { (p.version) }
                            }
                        }
                    }
                }
                text.axis x=(LEFT) y=(height - 6.0) { (page::time(start)) }
                text.axis x=(WIDTH - RIGHT) y=(height - 6.0) text-anchor="end" { (page::time(end)) }
            }
            figcaption {
                @for v in &colours {
                    span class={ "key v" (colour(v)) } { "■" } " " (v) " · "
                }
                "bars from a version's first to its last event on each environment and host"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(version: &str, host: &str, first: i64, last: i64) -> Placement {
        Placement {
            version: version.into(),
            environment: "production".into(),
            host: host.into(),
            first_ns: first,
            last_ns: last,
            events: 10,
        }
    }

    #[test]
    fn one_row_per_host_one_bar_per_version() {
        let svg = svg(&[
            p("1.0.0", "a", 0, 100),
            p("1.0.0", "b", 0, 50),
            p("1.1.0", "b", 50, 100),
        ])
        .into_string();
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(
            svg.contains("2 versions on 2 environments and hosts"),
            "{svg}"
        );
        assert!(svg.contains(r#"data-row="production · b""#));
        assert!(svg.contains("deploy v1"));
    }
}
