//! Prediction distributions of the window and its baseline on `/metrics`.

use crate::detection_support::*;
use millwatch::detection::DetectionConfig;
use millwatch::signals::{FeatureValue, Prediction};
use millwatch_exporters::prometheus::{ExpositionConfig, MetricsExposition};

/// Numeric predictions show as quantiles, class predictions as class shares, both for the last
/// window and the baseline; a later window replaces the classes of the one before.
#[test]
fn prediction_distributions_of_the_window_and_its_baseline_are_on_metrics() {
    let ts = TestStore::open("predictions");
    let row = |model: &str, i: u64, p: Prediction| {
        inference(
            model,
            "1.0",
            i,
            vec![("x".to_owned(), FeatureValue::Double(i as f64))],
            p,
        )
    };
    // reg: baseline predictions 0..=9, then a window of 100..=109.
    let mut rows: Vec<_> = (0..20u64)
        .map(|i| {
            let p = if i < 10 { i as f64 } else { 90.0 + i as f64 };
            row("reg", i, Prediction::Number(p))
        })
        .collect();
    // cls: baseline ok×6, scratch×3, dent×1; window ok×2, scratch×8.
    let classes = ["ok"; 6]
        .into_iter()
        .chain(["scratch"; 3])
        .chain(["dent"])
        .chain(["ok"; 2])
        .chain(["scratch"; 8]);
    rows.extend(
        classes
            .enumerate()
            .map(|(i, c)| row("cls", i as u64, Prediction::Class(c.into()))),
    );
    ts.store(batch_of(rows));
    let cfg: DetectionConfig =
        serde_saphyr::from_str("baseline_events: 10\nwindow_events: 10\n").expect("config");
    let exposition = MetricsExposition::new(ExpositionConfig::default());
    let mut engine = ts.engine_with(cfg, &exposition);
    assert_eq!(drain(&mut engine), 2);
    let text = || {
        exposition.render(
            millwatch_exporters::prometheus::Format::Text,
            std::time::Instant::now(),
        )
    };
    let t = text();
    let quantile = |t: &str, window: &str, q: &str| {
        sample(
            t,
            "millwatch_prediction",
            &[
                ("model", "reg"),
                ("version", "1.0"),
                ("quantile", q),
                ("window", window),
            ],
        )
        .unwrap_or_else(|| panic!("{window} q{q} in\n{t}"))
    };
    // numpy.quantile(range(10), q) = 9q.
    for (q, want) in [("0.05", 0.45), ("0.25", 2.25), ("0.5", 4.5), ("0.95", 8.55)] {
        assert!((quantile(&t, "baseline", q) - want).abs() < 1e-9, "{q}");
        assert!(
            (quantile(&t, "current", q) - (100.0 + want)).abs() < 1e-9,
            "{q}"
        );
    }
    let ratio = |t: &str, window: &str, class: &str| {
        sample(
            t,
            "millwatch_prediction_class_ratio",
            &[
                ("model", "cls"),
                ("version", "1.0"),
                ("class", class),
                ("window", window),
            ],
        )
    };
    assert_eq!(ratio(&t, "current", "ok"), Some(0.2));
    assert_eq!(ratio(&t, "current", "scratch"), Some(0.8));
    assert_eq!(ratio(&t, "current", "dent"), Some(0.0));
    assert_eq!(ratio(&t, "baseline", "ok"), Some(0.6));
    assert_eq!(ratio(&t, "baseline", "dent"), Some(0.1));
    assert_eq!(ratio(&t, "current", "(other)"), None);
    assert!(!t.contains(r#"millwatch_prediction{model="cls""#));
    // Sum and count: 0 + 1 + ... + 9 = 45 in the baseline, 1045 in the window.
    let reg = |suffix: &str, window: &str| {
        sample(
            &t,
            &format!("millwatch_prediction{suffix}"),
            &[("model", "reg"), ("version", "1.0"), ("window", window)],
        )
    };
    assert_eq!(reg("_sum", "baseline"), Some(45.0));
    assert_eq!(reg("_count", "baseline"), Some(10.0));
    assert_eq!(reg("_sum", "current"), Some(1045.0));

    // A window of ten classes seen once each: 13 classes in all, so the ten most frequent over
    // both sides (ok 6, scratch 3, then dent, k0..k6 by name) are named and k7..k9 are (other).
    let next: Vec<_> = (0..10u64)
        .map(|i| row("cls", 20 + i, Prediction::Class(format!("k{i}"))))
        .collect();
    ts.store(batch_of(next));
    assert_eq!(drain(&mut engine), 1);
    let t = text();
    assert_eq!(ratio(&t, "current", "k0"), Some(0.1));
    assert_eq!(ratio(&t, "current", "k6"), Some(0.1));
    assert_eq!(ratio(&t, "current", "k7"), None);
    assert!((ratio(&t, "current", "(other)").unwrap() - 0.3).abs() < 1e-12);
    assert_eq!(ratio(&t, "current", "scratch"), Some(0.0));
    assert_eq!(ratio(&t, "baseline", "(other)"), Some(0.0));
    assert_eq!(ratio(&t, "baseline", "scratch"), Some(0.3));
    let cls_series = t
        .lines()
        .filter(|l| {
            l.starts_with(r#"millwatch_prediction_class_ratio{class="#)
                && l.contains(r#"model="cls""#)
        })
        .count();
    assert_eq!(cls_series, 2 * 11, "{t}");
}
