//! The exposition end to end: OTLP in, both text formats out, checked by hand and by promtool.

mod prometheus_support;

use std::io::{Read, Write};
use std::num::NonZeroUsize;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use millwatch_exporters::prometheus::{
    ExpositionConfig, ExpositionError, Format, MetricsExposition, OwnType,
};
use prometheus_support::*;

fn exposition() -> MetricsExposition {
    MetricsExposition::new(ExpositionConfig::default())
}

fn lines_of(text: &str, prefix: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .map(String::from)
        .collect()
}

#[test]
fn gauges_counters_histograms_and_summaries_are_translated() {
    let e = exposition();
    let t = now_nanos();
    e.ingest(
        &request("press", "edge-1:9000", all_kinds(t, 1.0)),
        Instant::now(),
    );
    let text = e.render(Format::Text, Instant::now());

    assert!(
        text.contains("# TYPE hw_temperature_celsius gauge\n"),
        "{text}"
    );
    assert!(text.contains("# HELP hw_temperature_celsius hw.temperature reading.\n"));
    assert!(
        text.contains(r#"hw_temperature_celsius{host_name="edge-01",hw_id="spindle-1",hw_sensor_location="front",instance="edge-1:9000",job="plant/press",otel_scope_name="press-monitor",otel_scope_version="1.2.0",site_line="line-3",site_name="plant-a"} 61.5"#),
        "{text}"
    );
    // Escaping of quotes and backslashes in label values.
    assert!(
        text.contains(r#"hw_sensor_location="rear \"hot\"\\side""#),
        "{text}"
    );
    assert!(text.contains("# TYPE machine_spindle_load_ratio gauge\n"));
    assert!(text.contains("# TYPE hw_energy_joules_total counter\n"));
    assert_eq!(lines_of(&text, "hw_energy_joules_total{").len(), 1);
    assert!(text.contains("} 1500000\n"));
    assert!(text.contains("# TYPE hw_errors_total counter\n"));
    // A non-monotonic sum is a gauge.
    assert!(text.contains("# TYPE machine_queue_depth gauge\n"));
    // Histogram: cumulative buckets, +Inf, sum, count.
    assert!(text.contains("# TYPE machine_cycle_duration_seconds histogram\n"));
    let buckets = lines_of(&text, "machine_cycle_duration_seconds_bucket{");
    let values: Vec<&str> = buckets
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(values, ["1", "5", "7", "8"], "{buckets:?}");
    assert!(buckets[0].contains(r#"le="0.5""#) && buckets[3].contains(r#"le="+Inf""#));
    assert_eq!(
        lines_of(&text, "machine_cycle_duration_seconds_sum{").len(),
        1
    );
    assert!(lines_of(&text, "machine_cycle_duration_seconds_count{")[0].ends_with(" 8"));
    // Exponential histogram converted to classic buckets ending at +Inf with the total count.
    let exp = lines_of(&text, "gen_ai_client_operation_duration_seconds_bucket{");
    assert!(exp.len() >= 5, "{exp:?}");
    assert!(
        exp.last()
            .is_some_and(|l| l.contains("+Inf") && l.ends_with(" 8")),
        "{exp:?}"
    );
    // Summary with quantiles.
    assert!(text.contains("# TYPE machine_vibration_rms_meters_per_second summary\n"));
    assert!(text.contains(r#"quantile="0.99"} 0.04"#), "{text}");
    // target_info: job, instance and the other resource attributes.
    let target = lines_of(&text, "target_info{");
    assert_eq!(target.len(), 1, "{text}");
    assert!(
        target[0].contains(r#"os_type="linux""#) && target[0].contains(r#"job="plant/press""#),
        "{target:?}"
    );
    assert!(!target[0].contains("service_name"), "{target:?}");
}

#[test]
fn openmetrics_names_counter_families_without_total_and_ends_in_eof() {
    let e = MetricsExposition::new(ExpositionConfig {
        emit_created: true,
        ..ExpositionConfig::default()
    });
    let t = now_nanos();
    e.ingest(
        &request("press", "edge-1", all_kinds(t, 1.0)),
        Instant::now(),
    );
    let om = e.render(Format::OpenMetrics, Instant::now());
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE hw_energy_joules counter\n"), "{om}");
    assert!(om.contains("# UNIT hw_energy_joules joules\n"), "{om}");
    assert!(
        om.contains("# UNIT hw_temperature_celsius celsius\n"),
        "{om}"
    );
    assert_eq!(lines_of(&om, "hw_energy_joules_total{").len(), 1);
    assert_eq!(lines_of(&om, "hw_energy_joules_created{").len(), 1);
    assert!(om.contains("# TYPE target info\n"), "{om}");
    assert_eq!(lines_of(&om, "target_info{").len(), 1);
    let text = e.render(Format::Text, Instant::now());
    assert!(!text.contains("# EOF") && !text.contains("_created"));
}

#[test]
fn output_is_deterministic_and_sorted() {
    let a = exposition();
    let b = exposition();
    let t = now_nanos();
    let mut kinds = all_kinds(t, 1.0);
    a.ingest(&request("press", "edge-1", kinds.clone()), Instant::now());
    kinds.reverse();
    b.ingest(&request("press", "edge-1", kinds), Instant::now());
    let ra = a.render(Format::Text, Instant::now());
    assert_eq!(ra, b.render(Format::Text, Instant::now()));
    let names: Vec<&str> = ra
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

#[test]
fn latest_value_wins_and_late_points_are_ignored() {
    let e = exposition();
    let t = now_nanos();
    let g = |t, v| {
        request(
            "press",
            "edge-1",
            vec![gauge(
                "hw.temperature",
                "Cel",
                vec![number(&[("hw.id", "a")], t, v)],
            )],
        )
    };
    e.ingest(&g(t, 10.0), Instant::now());
    e.ingest(&g(t + 1_000, 11.0), Instant::now());
    e.ingest(&g(t - 1_000, 9.0), Instant::now());
    let text = e.render(Format::Text, Instant::now());
    assert_eq!(lines_of(&text, "hw_temperature_celsius{").len(), 1);
    assert!(
        lines_of(&text, "hw_temperature_celsius{")[0].ends_with(" 11"),
        "{text}"
    );
}

#[test]
fn delta_sums_accumulate_and_delta_gauges_are_dropped() {
    let e = exposition();
    let t = now_nanos();
    for i in 0..3 {
        e.ingest(
            &request(
                "press",
                "edge-1",
                vec![
                    sum(
                        "parts.produced",
                        "{part}",
                        true,
                        true,
                        vec![number(&[], t + i, 5.0)],
                    ),
                    sum(
                        "parts.in_buffer",
                        "{part}",
                        false,
                        true,
                        vec![number(&[], t + i, 1.0)],
                    ),
                ],
            ),
            Instant::now(),
        );
    }
    let text = e.render(Format::Text, Instant::now());
    assert!(
        lines_of(&text, "parts_produced_total{")[0].ends_with(" 15"),
        "{text}"
    );
    assert!(!text.contains("parts_in_buffer"), "{text}");
    assert!(
        text.contains(r#"millwatch_prometheus_points_dropped_total{reason="delta_temporality"} 3"#),
        "{text}"
    );
}

#[test]
fn a_fresh_exposition_shows_every_drop_reason_at_zero() {
    let text = exposition().render(Format::Text, Instant::now());
    for reason in ["delta_temporality", "malformed", "type_conflict"] {
        let line = format!("millwatch_prometheus_points_dropped_total{{reason=\"{reason}\"}} 0\n");
        assert!(text.contains(&line), "{line} in\n{text}");
    }
    assert!(
        !text.contains("millwatch_prometheus_series_dropped_total{"),
        "per metric: no series before a metric is dropped\n{text}"
    );
}

#[test]
fn conflicting_types_drop_the_later_metric() {
    let e = exposition();
    let t = now_nanos();
    e.ingest(
        &request("a", "1", vec![gauge("x.y", "", vec![number(&[], t, 1.0)])]),
        Instant::now(),
    );
    e.ingest(
        &request(
            "a",
            "1",
            vec![histogram("x_y", "", &[], t, &[1.0], &[1, 1], 1.0)],
        ),
        Instant::now(),
    );
    let text = e.render(Format::Text, Instant::now());
    assert_eq!(text.matches("# TYPE x_y ").count(), 1);
    assert!(
        text.contains(r#"millwatch_prometheus_points_dropped_total{reason="type_conflict"} 1"#),
        "{text}"
    );
}

#[test]
fn series_expire_after_the_ttl() {
    let e = MetricsExposition::new(ExpositionConfig {
        series_ttl: Duration::from_secs(60),
        ..ExpositionConfig::default()
    });
    let start = Instant::now();
    let t = now_nanos();
    e.ingest(
        &request("a", "1", vec![gauge("old", "", vec![number(&[], t, 1.0)])]),
        start,
    );
    e.ingest(
        &request(
            "a",
            "1",
            vec![gauge("fresh", "", vec![number(&[], t, 1.0)])],
        ),
        start + Duration::from_secs(50),
    );
    let text = e.render(Format::Text, start + Duration::from_secs(70));
    assert!(!text.contains("old{"), "{text}");
    assert!(text.contains("fresh{"), "{text}");
    assert!(
        !text.contains("# TYPE old"),
        "an empty family renders nothing: {text}"
    );
}

#[test]
fn cardinality_limit_drops_new_series_and_counts_them() {
    let e = MetricsExposition::new(ExpositionConfig {
        max_series_per_metric: NonZeroUsize::new(5).expect("non-zero"),
        ..ExpositionConfig::default()
    });
    let t = now_nanos();
    let points = (0..8)
        .map(|i| number(&[("hw.id", &i.to_string())], t, 1.0))
        .collect();
    e.ingest(
        &request("a", "1", vec![gauge("hw.temperature", "Cel", points)]),
        Instant::now(),
    );
    let text = e.render(Format::Text, Instant::now());
    assert_eq!(lines_of(&text, "hw_temperature_celsius{").len(), 5);
    assert!(
        text.contains(
            r#"millwatch_prometheus_series_dropped_total{metric="hw_temperature_celsius"} 3"#
        ),
        "{text}"
    );
    // Updating an existing series still works at the limit.
    e.ingest(
        &request(
            "a",
            "1",
            vec![gauge(
                "hw.temperature",
                "Cel",
                vec![number(&[("hw.id", "0")], t + 1, 7.0)],
            )],
        ),
        Instant::now(),
    );
    assert!(
        e.render(Format::Text, Instant::now())
            .contains(r#"hw_id="0",instance="1",job="plant/a""#)
    );
}

#[test]
fn collector_series_are_published_and_never_expire() {
    let e = MetricsExposition::new(ExpositionConfig {
        series_ttl: Duration::from_secs(1),
        ..ExpositionConfig::default()
    });
    let drift = e
        .register(
            "millwatch_drift_statistic",
            "Drift statistic per feature and test.",
            OwnType::Gauge,
        )
        .expect("register");
    let accepted = e
        .register(
            "millwatch_otlp_points_accepted_total",
            "Points accepted.",
            OwnType::Counter,
        )
        .expect("register");
    drift.set(
        &[
            ("model", "scrap"),
            ("version", "3"),
            ("feature", "temp"),
            ("test", "ks"),
        ],
        0.21,
    );
    drift.set(
        &[
            ("test", "ks"),
            ("feature", "temp"),
            ("version", "3"),
            ("model", "scrap"),
        ],
        0.25,
    );
    accepted.add(&[("receiver", "otlp_grpc")], 10.0);
    accepted.add(&[("receiver", "otlp_grpc")], 5.0);
    let text = e.render(Format::Text, Instant::now() + Duration::from_secs(3600));
    assert!(text.contains("millwatch_drift_statistic{feature=\"temp\",model=\"scrap\",test=\"ks\",version=\"3\"} 0.25\n"), "{text}");
    assert!(text.contains("# TYPE millwatch_otlp_points_accepted_total counter\n"));
    assert!(text.contains("millwatch_otlp_points_accepted_total{receiver=\"otlp_grpc\"} 15\n"));
    assert!(drift.remove(&[
        ("model", "scrap"),
        ("version", "3"),
        ("feature", "temp"),
        ("test", "ks")
    ]));
    assert!(
        !e.render(Format::Text, Instant::now())
            .contains("millwatch_drift_statistic{")
    );

    assert_eq!(
        e.register("bad name", "", OwnType::Gauge).err(),
        Some(ExpositionError::InvalidName("bad name".into()))
    );
    assert!(matches!(
        e.register("millwatch_things", "", OwnType::Counter),
        Err(ExpositionError::CounterWithoutTotal(_))
    ));
    assert!(matches!(
        e.register("millwatch_otlp_points_accepted_total", "", OwnType::Gauge),
        Err(ExpositionError::Conflict { .. })
    ));
    assert!(
        e.register("millwatch_drift_statistic", "", OwnType::Gauge)
            .is_ok()
    );
}

#[test]
fn encode_negotiates_and_gzips() {
    let e = exposition();
    e.ingest(
        &request("a", "1", all_kinds(now_nanos(), 1.0)),
        Instant::now(),
    );
    let plain = e.encode(Some("text/plain"), None, Instant::now());
    assert_eq!(
        plain.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(plain.content_encoding, None);
    let zipped = e.encode(
        Some("application/openmetrics-text;version=1.0.0"),
        Some("gzip, br"),
        Instant::now(),
    );
    assert_eq!(zipped.content_encoding, Some("gzip"));
    assert!(
        zipped
            .content_type
            .starts_with("application/openmetrics-text")
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(&zipped.body[..])
        .read_to_string(&mut text)
        .expect("gunzip");
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn concurrent_ingest_and_render() {
    let e = exposition();
    std::thread::scope(|s| {
        for w in 0..4 {
            let e = e.clone();
            s.spawn(move || {
                for i in 0..200 {
                    let points = (0..10)
                        .map(|p| number(&[("hw.id", &format!("{w}-{p}"))], now_nanos(), i as f64))
                        .collect();
                    e.ingest(
                        &request("a", "1", vec![gauge("hw.temperature", "Cel", points)]),
                        Instant::now(),
                    );
                }
            });
        }
        let e = e.clone();
        s.spawn(move || {
            for _ in 0..50 {
                let _ = e.render(Format::OpenMetrics, Instant::now());
            }
        });
    });
    let text = e.render(Format::Text, Instant::now());
    assert_eq!(lines_of(&text, "hw_temperature_celsius{").len(), 40);
    assert!(
        lines_of(&text, "hw_temperature_celsius{")
            .iter()
            .all(|l| l.ends_with(" 199"))
    );
}

fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new(which("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn promtool_check_metrics_accepts_rendered_exposition() {
    let e = exposition();
    let t = now_nanos();
    e.ingest(
        &request("press", "edge-1:9000", all_kinds(t, 1.0)),
        Instant::now(),
    );
    e.ingest(
        &request("oven", "edge-2:9000", all_kinds(t, 2.0)),
        Instant::now(),
    );
    e.register(
        "millwatch_drift_statistic",
        "Drift statistic per model, feature and test.",
        OwnType::Gauge,
    )
    .expect("register")
    .set(
        &[
            ("model", "scrap"),
            ("version", "3"),
            ("feature", "temp"),
            ("test", "ks"),
        ],
        0.2,
    );
    let predictions = e
        .register(
            "millwatch_prediction",
            "Numeric predictions per window.",
            OwnType::Summary,
        )
        .expect("register");
    predictions.set_summary(
        &[("model", "scrap"), ("window", "current")],
        &[(0.05, -1.5), (0.5, 2.0), (0.95, 7.25)],
        -3.0,
        200,
    );
    predictions.set_summary(
        &[("model", "scrap"), ("window", "baseline")],
        &[(0.5, 1.0)],
        250.0,
        250,
    );
    let text = e.render(Format::Text, Instant::now());
    assert!(
        text.contains("# TYPE millwatch_prediction summary\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "millwatch_prediction{model=\"scrap\",window=\"current\",quantile=\"0.05\"} -1.5\n"
        ),
        "{text}"
    );
    assert!(text.contains("millwatch_prediction_count{model=\"scrap\",window=\"current\"} 200\n"));
    // A negative sum is not exposed (as for OTLP summaries); a positive one is.
    assert!(!text.contains("millwatch_prediction_sum{model=\"scrap\",window=\"current\"}"));
    assert!(text.contains("millwatch_prediction_sum{model=\"scrap\",window=\"baseline\"} 250\n"));
    let (ok, report) = promtool_check(&text);
    assert!(
        ok,
        "promtool check metrics refused the 0.0.4 output:\n{report}\n---\n{text}"
    );
    // promtool reads the 0.0.4 text format only; make sure it refuses broken input so that the
    // check above can fail.
    let (ok, _) = promtool_check("broken metric line {\n");
    assert!(!ok, "promtool accepted garbage");
}
