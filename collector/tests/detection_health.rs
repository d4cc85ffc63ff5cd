//! Machine-health rules on stored metric points: a slow temperature ramp trips the EWMA chart
//! before a static threshold does, a sensor that stops trips absence, rule state survives
//! a restart of the engine, the charts' statistics and limits reach `/metrics`, a threshold
//! alert releases only past its hysteresis, and rate of change is per second between points.

mod detection_support;

use detection_support::*;
use millwatch::detection::DetectionConfig;
use millwatch::signals::{Batch, MetricType, PointRow, SeriesRow};
use millwatch_exporters::prometheus::{ExpositionConfig, Format, MetricsExposition};

const T0: i64 = 1_700_000_000_000_000_000;
const SECOND: i64 = 1_000_000_000;

fn series(id: u64, hw: &str) -> SeriesRow {
    SeriesRow {
        series_id: id,
        name: "hw.temperature".into(),
        description: None,
        unit: Some("Cel".into()),
        metric_type: MetricType::Gauge,
        temporality: None,
        monotonic: None,
        attributes: format!(r#"{{"hw.id":"{hw}","hw.sensor_location":"spindle"}}"#),
        resource_id: 1,
        scope_id: 1,
        first_seen: T0,
    }
}

fn point(id: u64, i: i64, value: f64) -> PointRow {
    PointRow {
        series_id: id,
        time: T0 + i * SECOND,
        start_time: None,
        value,
        int_value: None,
        flags: 0,
    }
}

fn config() -> DetectionConfig {
    serde_saphyr::from_str(
        r#"
machine_health:
  - name: spindle-ewma
    metric: hw.temperature
    attributes: {hw.id: spindle-1}
    check: {kind: chart, chart: {kind: ewma}, reference_points: 200}
  - name: spindle-over-limit
    metric: hw.temperature
    attributes: {hw.id: spindle-1}
    check: {kind: threshold, above: 51.5, hysteresis: 0.2}
  - name: sensor-silent
    metric: hw.temperature
    check: {kind: absence, interval: 10s, intervals: 3}
"#,
    )
    .expect("config")
}

fn first_alert(ts: &TestStore, rule: &str) -> Option<i64> {
    ts.store
        .read(|c| {
            c.query_row(
                "SELECT (epoch_ns(min(window_start)) - ?) // 1000000000 FROM detections \
                 WHERE detector = 'machine_health' AND drifted AND details->>'rule' = ?",
                duckdb::params![T0, rule],
                |r| r.get::<_, Option<i64>>(0),
            )
        })
        .expect("query")
}

#[test]
fn slow_ramp_trips_ewma_before_the_static_threshold_and_a_silent_sensor_trips_absence() {
    let ts = TestStore::open("health");
    let mut rng = Rng(99);
    // spindle-1: 200 in-control points (50 °C, σ 0.5), then a ramp of 0.01σ per second.
    let mut points: Vec<PointRow> = (0..200)
        .map(|i| point(1, i, rng.normal(50.0, 0.5)))
        .collect();
    points
        .extend((200..600).map(|i| point(1, i, rng.normal(50.0 + 0.005 * (i - 200) as f64, 0.5))));
    // spindle-2 reports for 50 s, then stops.
    points.extend((0..50).map(|i| point(2, i, rng.normal(40.0, 0.5))));
    ts.store(Batch {
        series: vec![series(1, "spindle-1"), series(2, "spindle-2")],
        points,
        ..Batch::default()
    });

    let mut engine = ts.engine(config());
    // 20 s after spindle-2's last point: not yet absent.
    engine.health_pass(T0 + 69 * SECOND).expect("pass");
    let ewma = first_alert(&ts, "spindle-ewma").expect("the EWMA chart trips on the ramp");
    let threshold = first_alert(&ts, "spindle-over-limit").expect("the threshold trips eventually");
    println!(
        "ramp from t=200 s: EWMA alert at t={ewma} s, static 51.5 °C threshold at t={threshold} s"
    );
    assert!(
        ewma > 200,
        "no alarm in the reference period or before the ramp: {ewma}"
    );
    assert!(
        ewma < threshold,
        "EWMA {ewma} should trip before the threshold {threshold}"
    );
    assert_eq!(first_alert(&ts, "sensor-silent"), None);

    // 31 s after its last point spindle-2 is absent (spindle-1 too, 600 s on: both silent).
    engine.health_pass(T0 + 80 * SECOND).expect("pass");
    let silent = ts.query_strings(
        "SELECT feature FROM detections WHERE detector = 'machine_health' AND test = 'absence' AND drifted ORDER BY feature",
    );
    assert_eq!(silent, ["hw.id=spindle-2,hw.sensor_location=spindle"]);

    // State survives a restart: the same pass again decides nothing new.
    let before = ts.query_u64("SELECT count(*) FROM detections WHERE detector = 'machine_health'");
    drop(engine);
    let mut engine = ts.engine(config());
    engine.health_pass(T0 + 80 * SECOND).expect("pass");
    assert_eq!(
        ts.query_u64("SELECT count(*) FROM detections WHERE detector = 'machine_health'"),
        before
    );
    // spindle-2 reports again: absence clears.
    ts.store(Batch {
        points: vec![point(2, 81, 40.0)],
        ..Batch::default()
    });
    engine.health_pass(T0 + 82 * SECOND).expect("pass");
    assert_eq!(
        ts.query_u64("SELECT count(*) FROM detections WHERE detector = 'machine_health' AND test = 'absence' AND NOT drifted"),
        1
    );
}

/// The chart gauges against a hand computation. Reference 10, 12, 10, 12, 10: mean 10.8, mean
/// moving range 2, so σ = 2 / 1.128. Then 11 and 13 are charted, and in a second pass 5.
#[test]
fn control_chart_statistics_centre_and_limits_are_on_metrics() {
    let ts = TestStore::open("chart-gauges");
    let values = [10.0, 12.0, 10.0, 12.0, 10.0, 11.0, 13.0];
    ts.store(Batch {
        series: vec![series(3, "spindle-3")],
        points: values
            .iter()
            .enumerate()
            .map(|(i, v)| point(3, i as i64, *v))
            .collect(),
        ..Batch::default()
    });
    let cfg: DetectionConfig = serde_saphyr::from_str(
        r#"
machine_health:
  - name: s3-shewhart
    metric: hw.temperature
    attributes: {hw.id: spindle-3}
    check: {kind: chart, chart: {kind: shewhart}, reference_points: 5}
  - name: s3-ewma
    metric: hw.temperature
    attributes: {hw.id: spindle-3}
    check: {kind: chart, chart: {kind: ewma, lambda: 0.5, l: 3}, reference_points: 5}
  - name: s3-cusum
    metric: hw.temperature
    attributes: {hw.id: spindle-3}
    check: {kind: chart, chart: {kind: cusum, k: 0.5, h: 5}, reference_points: 5}
"#,
    )
    .expect("config");
    let exposition = MetricsExposition::new(ExpositionConfig::default());
    let mut engine = ts.engine_with(cfg, &exposition);
    engine.health_pass(T0 + 10 * SECOND).expect("pass");
    let text = || exposition.render(Format::Text, std::time::Instant::now());
    let series = "hw.id=spindle-3,hw.sensor_location=spindle";
    let get = |text: &str, name: &str, rule: &str, extra: &[(&str, &str)]| {
        let mut labels = vec![
            ("health_rule", rule),
            ("metric", "hw.temperature"),
            ("series", series),
        ];
        labels.extend_from_slice(extra);
        sample(text, name, &labels).unwrap_or_else(|| panic!("{name} {labels:?} in\n{text}"))
    };
    let close = |got: f64, want: f64| assert!((got - want).abs() < 1e-9, "{got} != {want}");
    let sigma = 2.0 / 1.128;
    // Centre line, upper and lower limit of a rule's chart.
    let limits = |t: &str, rule: &str, chart: &str, want: [f64; 3]| {
        let c = [("chart", chart)];
        for (name, want) in [
            "millwatch_control_chart_center",
            "millwatch_control_chart_upper_limit",
            "millwatch_control_chart_lower_limit",
        ]
        .into_iter()
        .zip(want)
        {
            close(get(t, name, rule, &c), want);
        }
    };
    let statistic = |t: &str, rule: &str, chart: &str, statistic: &str| {
        get(
            t,
            "millwatch_control_chart_statistic",
            rule,
            &[("chart", chart), ("statistic", statistic)],
        )
    };
    let t = text();

    // Shewhart: the measurement against mean ± 3σ.
    limits(
        &t,
        "s3-shewhart",
        "shewhart",
        [10.8, 10.8 + 3.0 * sigma, 10.8 - 3.0 * sigma],
    );
    close(statistic(&t, "s3-shewhart", "shewhart", "value"), 13.0);

    // EWMA, λ = 0.5: z = 0.5·11 + 0.5·10.8 = 10.9, then 0.5·13 + 0.5·10.9 = 11.95; limits at
    // t = 2: 3σ·sqrt(λ/(2−λ)·(1 − (1−λ)^4)) = 3σ·sqrt(1/3 · 15/16).
    let half = 3.0 * sigma * (15.0f64 / 48.0).sqrt();
    limits(&t, "s3-ewma", "ewma", [10.8, 10.8 + half, 10.8 - half]);
    close(statistic(&t, "s3-ewma", "ewma", "ewma"), 11.95);
    close(statistic(&t, "s3-ewma", "ewma", "value"), 13.0);

    // CUSUM, k = 0.5, h = 5: C+ = max(0, C+ + x − (10.8 + 0.5σ)): 0 after 11, 13 − 10.8 − 0.5σ
    // after 13; C− stays 0; limits ±5σ around 0.
    limits(&t, "s3-cusum", "cusum", [0.0, 5.0 * sigma, -5.0 * sigma]);
    close(
        statistic(&t, "s3-cusum", "cusum", "cusum_upper"),
        13.0 - 10.8 - 0.5 * sigma,
    );
    close(statistic(&t, "s3-cusum", "cusum", "cusum_lower"), 0.0);
    assert!(
        !t.contains("cusum_lower\"} -0"),
        "a negative zero on /metrics:\n{t}"
    );

    // The next point, 5: C+ = max(0, 1.3135 + 5 − 11.6865) = 0, C− = 10.8 − 0.5σ − 5.
    ts.store(Batch {
        points: vec![point(3, 7, 5.0)],
        ..Batch::default()
    });
    engine.health_pass(T0 + 11 * SECOND).expect("pass");
    let t = text();
    close(statistic(&t, "s3-cusum", "cusum", "cusum_upper"), 0.0);
    close(
        statistic(&t, "s3-cusum", "cusum", "cusum_lower"),
        -(10.8 - 0.5 * sigma - 5.0),
    );
    close(statistic(&t, "s3-shewhart", "shewhart", "value"), 5.0);
    // z = 0.5·5 + 0.5·11.95; the limits widen towards the asymptote (t = 3).
    close(statistic(&t, "s3-ewma", "ewma", "ewma"), 8.475);
    let half = 3.0 * sigma * (1.0f64 / 3.0 * (1.0 - 0.5f64.powi(6))).sqrt();
    limits(&t, "s3-ewma", "ewma", [10.8, 10.8 + half, 10.8 - half]);
}

/// A rule's findings as (seconds after T0, firing, statistic), oldest first.
fn findings(ts: &TestStore, rule: &str) -> Vec<(i64, bool, f64)> {
    ts.store
        .read(|c| {
            let mut s = c.prepare(
                "SELECT (epoch_ns(window_start) - ?) // 1000000000, drifted, statistic FROM detections \
                 WHERE detector = 'machine_health' AND details->>'rule' = ? ORDER BY window_start",
            )?;
            let rows = s.query_map(duckdb::params![T0, rule], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            rows.collect::<duckdb::Result<Vec<_>>>()
        })
        .expect("query")
}

/// One series per entry of `values`, a point a second from T0 for each value.
fn store_series(ts: &TestStore, values: &[(u64, &str, &[f64])]) {
    ts.store(Batch {
        series: values.iter().map(|(id, hw, _)| series(*id, hw)).collect(),
        points: values
            .iter()
            .flat_map(|(id, _, vs)| vs.iter().enumerate().map(|(i, v)| point(*id, i as i64, *v)))
            .collect(),
        ..Batch::default()
    });
}

/// A threshold alert stops only once the value is back past the threshold by the hysteresis,
/// above and below, and its firing state carries over from one pass to the next.
#[test]
fn a_threshold_alert_releases_only_past_its_hysteresis() {
    let ts = TestStore::open("hysteresis");
    let cfg: DetectionConfig = serde_saphyr::from_str(
        r#"
machine_health:
  - name: oven-hot
    metric: hw.temperature
    attributes: {hw.id: oven-1}
    check: {kind: threshold, above: 80, hysteresis: 2}
  - name: chiller-cold
    metric: hw.temperature
    attributes: {hw.id: chiller-1}
    check: {kind: threshold, below: 20, hysteresis: 2}
"#,
    )
    .expect("config");
    // oven-1: fires at 81 (t=1); 79.5 and 78.5 are under the threshold but within the
    // hysteresis, so it keeps firing; 78 = 80 - 2 releases it (t=4); 80.5 fires again (t=6).
    // chiller-1: fires at 19 (t=1); 21 and 21.9 keep it firing; 22 releases (t=4); 19.5 fires.
    let oven = [79.0, 81.0, 79.5, 78.5, 78.0, 79.0, 80.5];
    let chiller = [21.0, 19.0, 21.0, 21.9, 22.0, 19.5];
    // The first three points in one pass, the rest in the next: the firing state carries over.
    store_series(
        &ts,
        &[(11, "oven-1", &oven[..3]), (12, "chiller-1", &chiller[..3])],
    );
    let mut engine = ts.engine(cfg);
    engine.health_pass(T0 + 3 * SECOND).expect("pass");
    assert_eq!(findings(&ts, "oven-hot"), [(1, true, 81.0)]);
    assert_eq!(findings(&ts, "chiller-cold"), [(1, true, 19.0)]);
    ts.store(Batch {
        points: (3..oven.len())
            .map(|i| point(11, i as i64, oven[i]))
            .chain((3..chiller.len()).map(|i| point(12, i as i64, chiller[i])))
            .collect(),
        ..Batch::default()
    });
    engine.health_pass(T0 + 10 * SECOND).expect("pass");
    assert_eq!(
        findings(&ts, "oven-hot"),
        [(1, true, 81.0), (4, false, 78.0), (6, true, 80.5)]
    );
    assert_eq!(
        findings(&ts, "chiller-cold"),
        [(1, true, 19.0), (4, false, 22.0), (5, true, 19.5)]
    );
}

/// Rate of change is the change per second between consecutive points, either way: a step
/// over a long gap is slow, a fall as fast as a rise fires, and the alert stops with the
/// first point that changes slowly again.
#[test]
fn rate_of_change_fires_on_fast_rises_and_falls_per_second_of_time_between_points() {
    let ts = TestStore::open("rate-of-change");
    let cfg: DetectionConfig = serde_saphyr::from_str(
        r#"
machine_health:
  - name: press-ramp
    metric: hw.temperature
    attributes: {hw.id: press-1}
    check: {kind: rate_of_change, max_per_second: 0.5}
"#,
    )
    .expect("config");
    // (second, value): 0.25/s, 0.25/s, 1/s (fires), 0.25/s (stops), then 1.5 in 4 s = 0.375/s
    // (a step of 1.5 in one second would fire), -1/s (fires), 0/s (stops).
    let points = [
        (0, 50.0),
        (1, 50.25),
        (2, 50.5),
        (3, 51.5),
        (4, 51.75),
        (8, 53.25),
        (9, 52.25),
        (10, 52.25),
    ];
    ts.store(Batch {
        series: vec![series(21, "press-1")],
        points: points.iter().map(|(t, v)| point(21, *t, *v)).collect(),
        ..Batch::default()
    });
    let mut engine = ts.engine(cfg);
    engine.health_pass(T0 + 11 * SECOND).expect("pass");
    assert_eq!(
        findings(&ts, "press-ramp"),
        [
            (3, true, 1.0),
            (4, false, 0.25),
            (9, true, -1.0),
            (10, false, 0.0)
        ]
    );
}
