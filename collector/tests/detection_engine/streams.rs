//! Streaming change detectors in the live engine (`detection.streams`), on seeded data: no
//! alarm on stable streams, and the event at which a change is found after a shift (its delay
//! printed, asserted only as "within the next few hundred events").

use crate::config;
use crate::detection_support::*;
use millwatch::detection::DetectionConfig;
use millwatch::detection::streams::{StreamConfig, StreamSource};
use millwatch::signals::{Batch, FeatureValue, Prediction};
use millwatch_detectors::stream::{
    AdwinConfig, DdmConfig, DetectorConfig, EddmConfig, HddmAConfig, PageHinkleyConfig,
};

const SHIFT: u64 = 6000;
const EVENTS: u64 = 8000;

fn watching(streams: Vec<(StreamSource, DetectorConfig)>) -> DetectionConfig {
    DetectionConfig {
        streams: streams
            .into_iter()
            .map(|(stream, detector)| StreamConfig {
                model: "press".into(),
                stream,
                detector,
            })
            .collect(),
        ..config()
    }
}

/// `(test, first event id)` of every change found, in order.
fn changes(ts: &TestStore) -> Vec<(String, u64)> {
    ts.query_strings(
        "SELECT concat_ws(' ', test, first_event_id) FROM detections WHERE detector = 'stream_change' \
         ORDER BY first_event_id, test",
    )
    .into_iter()
    .map(|s| {
        let (t, id) = s.split_once(' ').expect("test and id");
        (t.to_owned(), id.parse().expect("id"))
    })
    .collect()
}

/// First change of `test` at or after the shift, as a delay in events, and the changes before it.
fn delay_and_false_alarms(found: &[(String, u64)], test: &str) -> (Option<u64>, usize) {
    let before = found
        .iter()
        .filter(|(t, id)| t == test && *id < SHIFT)
        .count();
    let delay = found
        .iter()
        .find(|(t, id)| t == test && *id >= SHIFT)
        .map(|(_, id)| id - SHIFT);
    (delay, before)
}

#[test]
fn the_correctness_stream_finds_a_rising_error_rate_within_events_once_labels_arrive() {
    let ts = TestStore::open("streams-correctness");
    let mut rng = Rng(41);
    let config = watching(vec![
        (
            StreamSource::Correctness,
            DetectorConfig::HddmA(HddmAConfig::default()),
        ),
        (
            StreamSource::Correctness,
            DetectorConfig::Ddm(DdmConfig::default()),
        ),
        (
            StreamSource::Correctness,
            DetectorConfig::Eddm(EddmConfig::default()),
        ),
    ]);
    let (mut inf, mut fb) = (Vec::new(), Vec::new());
    for i in 0..EVENTS {
        let predicted = rng.uniform() < 0.3;
        // 5 % of the predictions are wrong, 20 % from the shift on.
        let wrong = rng.uniform() < if i < SHIFT { 0.05 } else { 0.2 };
        let row = inference(
            "press",
            "1",
            i,
            vec![(
                "force_kn".into(),
                FeatureValue::Double(rng.normal(0.0, 1.0)),
            )],
            Prediction::Number(if predicted { 1.0 } else { 0.0 }),
        );
        fb.push(feedback(
            "press",
            row.inference_id.clone().expect("id"),
            Prediction::Number(if predicted != wrong { 1.0 } else { 0.0 }),
        ));
        inf.push(row);
    }
    ts.store(batch_of(inf));
    let mut engine = ts.engine(config);
    drain(&mut engine);
    assert_eq!(engine.stream_pass().expect("pass"), 0, "no label yet");
    ts.store(Batch {
        feedback: fb,
        ..Default::default()
    });
    let n = engine.stream_pass().expect("pass");
    let found = changes(&ts);
    assert_eq!(found.len(), n);
    // Alarm counts on this seeded stream: HDDM-A and DDM none, EDDM two (it reacts to the
    // distance between errors, noisier at a low error rate).
    for (test, alarms) in [("hddm_a", 0), ("ddm", 0), ("eddm", 2)] {
        let (delay, false_alarms) = delay_and_false_alarms(&found, test);
        println!(
            "{test}: {false_alarms} alarms on {SHIFT} labels at a 5 % error rate; the rise to 20 % found after {delay:?} labels"
        );
        assert_eq!(false_alarms, alarms, "{test}: {found:?}");
        assert!(delay.is_some_and(|d| d < 600), "{test}: {found:?}");
    }
    // Labels are fed once: a second pass finds nothing new.
    assert_eq!(engine.stream_pass().expect("pass"), 0);
}

#[test]
fn a_feature_stream_finds_a_mean_shift_within_events() {
    let ts = TestStore::open("streams-feature");
    let mut rng = Rng(43);
    let config = watching(vec![
        (
            StreamSource::Feature("spindle_temp_c".into()),
            DetectorConfig::PageHinkley(PageHinkleyConfig::default()),
        ),
        (
            StreamSource::Feature("spindle_temp_c".into()),
            DetectorConfig::Adwin(AdwinConfig::default()),
        ),
    ]);
    let rows = (0..EVENTS)
        .map(|i| {
            // 1.5 σ up from the shift on.
            let t = rng.normal(if i < SHIFT { 40.0 } else { 43.0 }, 2.0);
            inference(
                "press",
                "1",
                i,
                vec![("spindle_temp_c".into(), FeatureValue::Double(t))],
                Prediction::Number(t * 0.1),
            )
        })
        .collect();
    ts.store(batch_of(rows));
    let mut engine = ts.engine(config);
    drain(&mut engine);
    let found = changes(&ts);
    for test in ["page_hinkley", "adwin"] {
        let (delay, false_alarms) = delay_and_false_alarms(&found, test);
        println!(
            "{test}: {false_alarms} alarms on {SHIFT} stable values; a 1.5 sigma shift found after {delay:?} values"
        );
        assert_eq!(false_alarms, 0, "{test}: {found:?}");
        assert!(delay.is_some_and(|d| d < 200), "{test}: {found:?}");
    }
    assert!(
        ts.query_strings(
            "SELECT DISTINCT feature FROM detections WHERE detector = 'stream_change'"
        ) == ["spindle_temp_c"]
    );
}

#[test]
fn a_detector_that_cannot_read_its_stream_is_refused_with_what_to_use() {
    let text = "streams:\n  - model: press\n    stream: correctness\n    detector: {kind: adwin}\n";
    let e = serde_saphyr::from_str::<DetectionConfig>(text).expect_err("adwin on 0/1 errors");
    assert!(
        e.to_string()
            .contains("adwin reads numbers (stream: prediction or {feature: NAME}); use ddm, eddm or hddm_a for the stream correctness"),
        "{e}"
    );
    let ok = "streams:\n  - model: press\n    stream: {feature: torque_nm}\n    detector: {kind: page_hinkley, threshold: 20}\n";
    let c = serde_saphyr::from_str::<DetectionConfig>(ok).expect("config");
    assert_eq!(
        c.streams[0].stream,
        StreamSource::Feature("torque_nm".into())
    );
}
