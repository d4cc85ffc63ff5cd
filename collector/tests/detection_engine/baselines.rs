//! Baselines: a version's own first events, the previous version's, a time range of stored
//! events; per-model settings and ignored features.

use crate::detection_support::*;
use crate::{config, events};
use millwatch::detection::DetectionConfig;

#[test]
fn versions_have_their_own_baselines_unless_compared_with_the_previous_one() {
    let ts = TestStore::open("versions");
    let mut rng = Rng(5);
    let mut v1 = events(&mut rng, "press", 0, 2000, u64::MAX);
    // Version 2 is shifted from its first event: against its own baseline nothing drifts,
    // against version 1's the deployment check sees it.
    let mut v2 = events(&mut rng, "press", 2000, 4000, 0);
    for e in &mut v2 {
        e.version = "2.0".into();
    }
    v1.append(&mut v2);
    ts.store(batch_of(v1));
    let mut engine = ts.engine(config());
    drain(&mut engine);
    assert_eq!(
        ts.query_u64("SELECT count(*) FROM detections WHERE drifted AND detector = 'drift'"),
        0
    );

    let ts2 = TestStore::open("versions-deploy");
    let mut rows = Vec::new();
    let mut rng = Rng(5);
    rows.extend(events(&mut rng, "press", 0, 2000, u64::MAX));
    let mut v2 = events(&mut rng, "press", 2000, 4000, 0);
    for e in &mut v2 {
        e.version = "2.0".into();
    }
    rows.extend(v2);
    ts2.store(batch_of(rows));
    let cfg: DetectionConfig = serde_saphyr::from_str(
        "models:\n  - name: press\n    compare_with_previous_version: true\n",
    )
    .expect("config");
    let mut engine = ts2.engine(cfg);
    drain(&mut engine);
    let drifted = ts2.query_strings("SELECT DISTINCT feature FROM detections WHERE drifted AND detector = 'drift' AND version = '2.0' ORDER BY 1");
    assert_eq!(drifted, ["b", "site"]);
    assert_eq!(
        ts2.query_u64("SELECT count(*) FROM detection_windows WHERE version = '2.0'"),
        2
    );
    assert_eq!(ts2.query_u64("SELECT count(*) FROM detection_baselines WHERE version = '2.0' AND origin::VARCHAR LIKE '%previous_version%'"), 1);
}

#[test]
fn per_model_settings_apply_and_ignored_features_are_not_tested() {
    let ts = TestStore::open("per-model");
    let mut rng = Rng(3);
    ts.store(batch_of(events(&mut rng, "press", 0, 1500, 700)));
    let cfg: DetectionConfig = serde_saphyr::from_str(
        "models:\n  - name: press\n    baseline: {first_events: 500}\n    window_events: 500\n    ignore_features: [site]\n    features:\n      a: {test: psi, threshold: 0.5}\n",
    )
    .expect("config");
    let mut engine = ts.engine(cfg);
    assert_eq!(drain(&mut engine), 2);
    assert_eq!(
        ts.query_u64("SELECT count(*) FROM detections WHERE feature = 'site'"),
        0
    );
    assert_eq!(
        ts.query_strings(
            "SELECT DISTINCT test FROM detections WHERE feature = 'a' AND detector = 'drift'"
        ),
        ["psi"]
    );
    assert_eq!(
        ts.query_strings(
            "SELECT DISTINCT feature FROM detections WHERE drifted AND detector = 'drift'"
        ),
        ["b"]
    );
}

#[test]
fn a_baseline_from_a_time_range_of_stored_events_of_another_version() {
    let ts = TestStore::open("time-range-baseline");
    let mut rng = Rng(34);
    // Version 1.0: events 0..2000 (times base + i ms). Version 2.0 arrives later, shifted.
    ts.store(batch_of(events(&mut rng, "press", 0, 2000, u64::MAX)));
    let mut v2 = events(&mut rng, "press", 2000, 3000, 0);
    for e in &mut v2 {
        e.version = "2.0".into();
    }
    ts.store(batch_of(v2));
    let base_s = 1_700_000_000u64;
    let since =
        humantime::format_rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(base_s));
    let until = humantime::format_rfc3339(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(base_s * 1000 + 800),
    );
    let cfg: DetectionConfig = serde_saphyr::from_str(&format!(
        "models:\n  - name: press\n    version: '2.0'\n    baseline: {{time_range: {{since: '{since}', until: '{until}', version: '1.0'}}}}\n"
    ))
    .expect("config");
    let mut engine = ts.engine(cfg);
    drain(&mut engine);
    // The 2.0 baseline is events 0..800 of version 1.0; its one window (2000..3000) drifts.
    assert_eq!(
        ts.query_u64("SELECT count(*) FROM detection_baselines WHERE version = '2.0' AND first_event_id = 0 AND last_event_id = 799 AND origin::VARCHAR LIKE '%time_range%'"),
        1
    );
    let drifted = ts.query_strings("SELECT DISTINCT feature FROM detections WHERE drifted AND detector = 'drift' AND version = '2.0' ORDER BY 1");
    assert_eq!(drifted, ["b", "site"]);
}
