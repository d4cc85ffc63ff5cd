//! Machine-health rules on stored metric points: a slow temperature ramp trips the EWMA chart
//! before a static threshold does, a sensor that stops trips absence, and rule state survives
//! a restart of the engine.

mod detection_support;

use detection_support::*;
use millwatch::detection::DetectionConfig;
use millwatch::signals::{Batch, MetricType, PointRow, SeriesRow};

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
    serde_yaml::from_str(
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
