//! Windows: zero-config count windows and their verdicts, sliding and time windows, restarts
//! in the middle of a window, and events from the tap giving the verdicts of the store.

use crate::detection_support::*;
use crate::{config, events};
use millwatch::detection::DetectionConfig;
use millwatch_exporters::prometheus::{ExpositionConfig, MetricsExposition};

#[test]
fn zero_config_windows_flag_only_the_shifted_features_after_the_shift() {
    let ts = TestStore::open("zero-config");
    let mut rng = Rng(7);
    // 1000 baseline events, 5 windows unchanged, 3 windows shifted.
    for chunk in (0..9000u64).step_by(1500) {
        ts.store(batch_of(events(
            &mut rng,
            "press",
            chunk,
            chunk + 1500,
            6000,
        )));
    }
    let exposition = MetricsExposition::new(ExpositionConfig::default());
    let mut engine = ts.engine_with(config(), &exposition);
    assert_eq!(drain(&mut engine), 8);
    assert_eq!(ts.query_u64("SELECT count(*) FROM detection_windows"), 8);
    assert_eq!(ts.query_u64("SELECT count(*) FROM detection_baselines WHERE first_event_id = 0 AND last_event_id = 999"), 1);
    // Every window tested all four features and the prediction.
    assert_eq!(
        ts.query_u64(
            "SELECT count(*) FROM detections WHERE detector = 'drift' AND test IS NOT NULL"
        ),
        8 * 5
    );
    let drifted = ts.query_strings(
        "SELECT DISTINCT feature FROM detections WHERE detector = 'drift' AND drifted ORDER BY feature",
    );
    assert_eq!(drifted, ["b", "site"]);
    // Nothing before the shift (event 6000 opens window 6).
    assert_eq!(ts.query_u64("SELECT count(*) FROM detections WHERE drifted AND detector = 'drift' AND first_event_id < 6000"), 0);
    // Every window after the shift flags both.
    assert_eq!(ts.query_u64("SELECT count(*) FROM detections WHERE drifted AND detector = 'drift' AND first_event_id >= 6000"), 6);
    // Each verdict records raw and corrected p, effect size and the rule that decided.
    assert_eq!(
        ts.query_u64(
            "SELECT count(*) FROM detections WHERE detector = 'drift' AND test IS NOT NULL \
             AND (p_value IS NULL OR p_value_corrected IS NULL OR effect_size IS NULL OR decided_by <> 'p_value_and_effect')"
        ),
        0
    );
    let text = exposition.render(
        millwatch_exporters::prometheus::Format::Text,
        std::time::Instant::now(),
    );
    assert!(
        text.contains(r#"millwatch_drift_detected{feature="b",model="press",version="1.0"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"millwatch_drift_detected{feature="a",model="press",version="1.0"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"millwatch_drift_statistic{feature="b",model="press",test="ks",version="1.0"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"millwatch_detection_windows_total{model="press",version="1.0"} 8"#),
        "{text}"
    );
    assert!(
        text.contains(r#"millwatch_data_missing_ratio{feature="a",model="press",version="1.0"} 0"#),
        "{text}"
    );
    assert!(
        text.contains("millwatch_drift_share{model=\"press\",version=\"1.0\"}"),
        "{text}"
    );

    // Nothing new: another pass decides nothing again, even after a restart of the engine.
    drop(engine);
    let mut engine = ts.engine(config());
    assert_eq!(drain(&mut engine), 0);
    assert_eq!(ts.query_u64("SELECT count(*) FROM detection_windows"), 8);
}

#[test]
fn restart_in_the_middle_of_a_window_completes_it_with_all_its_events() {
    let ts = TestStore::open("restart");
    let mut rng = Rng(11);
    ts.store(batch_of(events(&mut rng, "press", 0, 1600, u64::MAX)));
    let mut engine = ts.engine(config());
    assert_eq!(drain(&mut engine), 0);
    drop(engine);
    // The collector stops with 600 events in the open window, and starts again.
    let ts = ts.reopen();
    ts.store(batch_of(events(&mut rng, "press", 1600, 2500, u64::MAX)));
    let mut engine = ts.engine(config());
    assert_eq!(drain(&mut engine), 1);
    let rows = ts.store.read(|c| {
        c.query_row(
            "SELECT first_event_id, last_event_id, events FROM detection_windows",
            [],
            |r| {
                Ok((
                    r.get::<_, u64>(0)?,
                    r.get::<_, u64>(1)?,
                    r.get::<_, u64>(2)?,
                ))
            },
        )
    });
    assert_eq!(rows.expect("one window"), (1000, 1999, 1000));
    // The window's drift rows cover the same range, decided once.
    assert_eq!(
        ts.query_u64(
            "SELECT count(*) FROM detections WHERE detector = 'drift' AND first_event_id = 1000"
        ),
        5
    );
    // And the next window is open at 2000 with 500 events: one more restart, 500 more, closed.
    drop(engine);
    ts.store(batch_of(events(&mut rng, "press", 2500, 3000, u64::MAX)));
    let mut engine = ts.engine(config());
    assert_eq!(drain(&mut engine), 1);
    assert_eq!(ts.query_u64("SELECT count(*) FROM detection_windows WHERE first_event_id = 2000 AND last_event_id = 2999 AND events = 1000"), 1);
}

#[test]
fn sliding_count_windows_decide_every_slide_events() {
    let ts = TestStore::open("sliding-count");
    let mut rng = Rng(31);
    // Baseline 0..1000, then 2000 events: windows of 1000 decided every 250 events.
    ts.store(batch_of(events(&mut rng, "press", 0, 3000, u64::MAX)));
    let cfg: DetectionConfig = serde_saphyr::from_str(
        "models:\n  - name: press\n    window_events: 1000\n    slide_events: 250\n",
    )
    .expect("config");
    let mut engine = ts.engine(cfg);
    // Full at event 1999, then at 2249, 2499, 2749, 2999.
    assert_eq!(drain(&mut engine), 5);
    let ranges = ts.query_strings(
        "SELECT first_event_id || '-' || last_event_id || '/' || events FROM detection_windows ORDER BY window_index",
    );
    assert_eq!(
        ranges,
        [
            "1000-1999/1000",
            "1250-2249/1000",
            "1500-2499/1000",
            "1750-2749/1000",
            "2000-2999/1000"
        ]
    );
}

#[test]
fn sliding_windows_survive_a_restart_between_decisions() {
    let ts = TestStore::open("sliding-restart");
    let mut rng = Rng(32);
    let cfg = || -> DetectionConfig {
        serde_saphyr::from_str(
            "models:\n  - name: press\n    window_events: 1000\n    slide_events: 250\n",
        )
        .expect("config")
    };
    ts.store(batch_of(events(&mut rng, "press", 0, 2100, u64::MAX)));
    let mut engine = ts.engine(cfg());
    assert_eq!(drain(&mut engine), 1);
    drop(engine);
    let ts = ts.reopen();
    ts.store(batch_of(events(&mut rng, "press", 2100, 2500, u64::MAX)));
    let mut engine = ts.engine(cfg());
    assert_eq!(
        drain(&mut engine),
        2,
        "decided at 2249 and 2499, as without the restart"
    );
    assert_eq!(
        ts.query_u64("SELECT max(last_event_id) FROM detection_windows"),
        2499
    );
}

#[test]
fn time_windows_hold_the_events_of_their_period() {
    let ts = TestStore::open("time-windows");
    let mut rng = Rng(33);
    // Events are 1 ms apart (detection_support::inference): 1000 baseline events, then
    // windows of 400 ms (400 events each), the last one still open.
    ts.store(batch_of(events(&mut rng, "press", 0, 2300, u64::MAX)));
    let cfg: DetectionConfig =
        serde_saphyr::from_str("models:\n  - name: press\n    window_duration: 400ms\n")
            .expect("config");
    let mut engine = ts.engine(cfg);
    let closed = drain(&mut engine);
    let sizes = ts.query_strings("SELECT CAST(events AS VARCHAR) FROM detection_windows WHERE window_index > 0 ORDER BY window_index");
    assert_eq!(closed, sizes.len());
    // Windows are aligned to multiples of 400 ms; the base time (1.7e18 ns) is a multiple of
    // 400 ms, so event 1000 starts at 1000 ms = 2.5 windows in: the first window is partial.
    assert_eq!(sizes.first().map(String::as_str), Some("200"));
    assert!(sizes[1..].iter().all(|s| s == "400"), "{sizes:?}");
    // No window spans more than 400 ms of event time.
    assert_eq!(
        ts.query_u64("SELECT count(*) FROM detection_windows WHERE window_index > 0 AND epoch_ns(window_end) - epoch_ns(window_start) >= 400000000"),
        0
    );
}

/// Windows and verdicts of a store, for comparing two engines (the decision time aside).
fn decisions(ts: &TestStore) -> Vec<String> {
    let mut rows = ts.query_strings(
        "SELECT concat_ws(' ', window_index, first_event_id, last_event_id, events) FROM detection_windows ORDER BY window_index",
    );
    rows.extend(ts.query_strings(
        "SELECT concat_ws(' ', first_event_id, feature, detector, test, statistic, p_value, drifted, verdict) FROM detections \
         ORDER BY first_event_id, detector, feature",
    ));
    rows
}

#[test]
fn events_from_the_tap_give_the_verdicts_of_the_store_even_across_a_gap() {
    use millwatch::detection::InferenceTap;
    use std::sync::Arc;
    let plain = TestStore::open("tap-plain");
    let tapped = TestStore::open("tap-tapped");
    let tap = Arc::new(InferenceTap::new(1000));
    let mut from_store = plain.engine(config());
    let mut from_tap = tapped.engine(config()).with_tap(tap.clone());
    let mut rng = Rng(41);
    for (i, chunk) in (0..9000u64).step_by(500).enumerate() {
        let rows = events(&mut rng, "press", chunk, chunk + 500, 6000);
        plain.store(batch_of(rows.clone()));
        tapped.store(batch_of(rows.clone()));
        tap.offer(chunk, rows);
        // Mostly a pass per commit; twice, three commits queue up and the third does not fit
        // in the tap: the engine has to read it from the store.
        if i % 6 != 1 && i % 6 != 2 {
            from_store.step().expect("pass");
            let pass = from_tap.step().expect("pass");
            assert!(pass.events > 0);
        }
    }
    assert!(tap.left_out() >= 1000, "left out {}", tap.left_out());
    drain(&mut from_store);
    drain(&mut from_tap);
    let expected = decisions(&plain);
    // 1000 baseline events, then 8 windows.
    assert_eq!(plain.query_u64("SELECT count(*) FROM detection_windows"), 8);
    assert_eq!(decisions(&tapped), expected);
    assert_eq!(from_tap.cursor(), Some(8999));
}

#[test]
fn a_time_window_past_its_end_is_decided_once_its_model_goes_quiet() {
    let ts = TestStore::open("quiet-time-window");
    let mut rng = Rng(33);
    // As in time_windows_hold_the_events_of_their_period: the last window (events 2000..2300)
    // is still open when the events stop; its end is long past on the clock.
    ts.store(batch_of(events(&mut rng, "press", 0, 2300, u64::MAX)));
    let yaml = "time_window_grace: 0s\nmodels:\n  - name: press\n    window_duration: 400ms\n";
    let cfg: DetectionConfig = serde_saphyr::from_str(yaml).expect("config");
    let mut engine = ts.engine(cfg);
    drain(&mut engine);
    let sizes = ts.query_strings("SELECT CAST(events AS VARCHAR) FROM detection_windows WHERE window_index > 0 ORDER BY window_index");
    assert_eq!(sizes, ["200", "400", "400", "300"]);
    // Nothing more to close: the next pass decides nothing.
    assert_eq!(engine.step().expect("pass").windows_closed, 0);
}
