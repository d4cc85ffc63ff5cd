//! Multiclass CBPE against NannyML 0.13.1 on `testdata/perfest/multiclass_tool_state` (written
//! by `make_multiclass.py`; NannyML is not needed to run this test): per chunk, reference and
//! analysis, the estimate, sampling error, bounds, thresholds and alert, and the realised value.
//! The analysis labels are read only for the realised values.

use std::path::PathBuf;

use millwatch_detectors::dataset::{ColumnValues, Dataset};
use millwatch_detectors::estimation::ChunkValue;
use millwatch_detectors::estimation::cbpe::{Calibration, ClassificationMetric};
use millwatch_detectors::estimation::cbpe_multiclass::{MulticlassCbpe, MulticlassOutputs};
use serde_json::Value;

const CASE: &str = "multiclass_tool_state";

fn file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/perfest")
        .join(CASE)
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Outputs {
    scores: Vec<Vec<f64>>,
    predicted: Vec<usize>,
    actual: Vec<usize>,
}

fn outputs(name: &str, classes: &[String]) -> Outputs {
    let data = Dataset::from_csv_str(&file(name)).expect("csv");
    let index = |column: &str| -> Vec<usize> {
        match &data.column(column).expect("column").values {
            ColumnValues::Categorical(v) => v
                .iter()
                .map(|c| {
                    let c = c.as_deref().expect("present");
                    classes.iter().position(|k| k == c).expect("known class")
                })
                .collect(),
            ColumnValues::Numeric(_) => panic!("{column} is not a class"),
        }
    };
    let scores = classes
        .iter()
        .map(|c| {
            match &data
                .column(&format!("y_pred_proba_{c}"))
                .expect("score")
                .values
            {
                ColumnValues::Numeric(v) => v.iter().map(|x| x.expect("present")).collect(),
                ColumnValues::Categorical(_) => panic!("score is not numeric"),
            }
        })
        .collect();
    Outputs {
        scores,
        predicted: index("y_pred"),
        actual: index("y_true"),
    }
}

fn close(what: &str, got: Option<f64>, want: &Value, tol: f64, worst: &mut f64) {
    match (got, want.as_f64()) {
        (Some(g), Some(w)) => {
            let d = (g - w).abs();
            *worst = worst.max(d);
            assert!(d <= tol, "{what}: {g} vs NannyML {w} (|diff| {d:e})");
        }
        (None, None) => {}
        (g, _) => panic!("{what}: {g:?} vs NannyML {want}"),
    }
}

fn compare(metric: &str, period: &str, rows: &[ChunkValue], expected: &[&Value], worst: &mut f64) {
    assert_eq!(rows.len(), expected.len(), "{metric} {period} chunks");
    for (r, e) in rows.iter().zip(expected) {
        let at = format!("{metric} {period} chunk {}", r.chunk);
        assert_eq!(r.rows as u64, e["n_rows"].as_u64().expect("rows"), "{at}");
        close(
            &format!("{at} estimate"),
            r.value,
            &e["estimated"],
            1e-9,
            worst,
        );
        close(
            &format!("{at} sampling error"),
            Some(r.sampling_error),
            &e["sampling_error"],
            1e-12,
            worst,
        );
        close(
            &format!("{at} lower bound"),
            r.lower_confidence_bound,
            &e["lower_confidence_bound"],
            1e-9,
            worst,
        );
        close(
            &format!("{at} upper bound"),
            r.upper_confidence_bound,
            &e["upper_confidence_bound"],
            1e-9,
            worst,
        );
        close(
            &format!("{at} lower threshold"),
            r.thresholds.lower,
            &e["lower_threshold"],
            1e-9,
            worst,
        );
        close(
            &format!("{at} upper threshold"),
            r.thresholds.upper,
            &e["upper_threshold"],
            1e-9,
            worst,
        );
        assert_eq!(Some(r.alert), e["alert"].as_bool(), "{at} alert");
    }
}

#[test]
fn multiclass_cbpe_equals_nannyml_per_chunk() {
    let expected: Value = serde_json::from_str(&file("expected.json")).expect("json");
    let classes: Vec<String> = expected["classes"]
        .as_array()
        .expect("classes")
        .iter()
        .map(|c| c.as_str().expect("name").to_owned())
        .collect();
    let reference = outputs("reference.csv", &classes);
    let analysis = outputs("analysis.csv", &classes);
    let metrics = ClassificationMetric::ALL;
    let cbpe = MulticlassCbpe::fit(
        MulticlassOutputs {
            scores: &reference.scores,
            predicted: &reference.predicted,
        },
        &reference.actual,
        1000,
        &metrics,
        Calibration::Auto,
    )
    .expect("fit");
    // NannyML calibrated every class here (IsotonicCalibrator for each).
    let calibrated = &expected["cbpe"]["calibrators"];
    for (c, decision) in classes.iter().zip(&cbpe.calibration) {
        assert_eq!(
            decision.needs_calibration,
            calibrated[c] == "IsotonicCalibrator",
            "class {c}"
        );
    }
    let mut worst = 0.0f64;
    let mut worst_realised = 0.0f64;
    let mut alerts = 0;
    for (period, data) in [("reference", &reference), ("analysis", &analysis)] {
        let outputs = MulticlassOutputs {
            scores: &data.scores,
            predicted: &data.predicted,
        };
        let estimated = cbpe.estimate(outputs).expect("estimate");
        let realised = cbpe.realized(outputs, &data.actual).expect("realised");
        for (m, r) in estimated.iter().zip(&realised) {
            let want: Vec<&Value> = expected["cbpe"]["metrics"][m.metric.name()]["chunks"]
                .as_array()
                .expect("chunks")
                .iter()
                .filter(|c| c["period"] == period)
                .collect();
            compare(m.metric.name(), period, &m.chunks, &want, &mut worst);
            alerts += m.chunks.iter().filter(|c| c.alert).count();
            for (got, e) in r.chunks.iter().zip(&want) {
                close(
                    &format!("{} {period} chunk {} realised", m.metric.name(), got.chunk),
                    got.value,
                    &e["realized"],
                    1e-12,
                    &mut worst_realised,
                );
            }
        }
    }
    println!(
        "multiclass CBPE vs NannyML: max |diff| {worst:e} (estimates, bounds, thresholds, sampling errors), \
         realised {worst_realised:e}; {alerts} alerts, equal"
    );
    assert!(alerts > 0, "the covariate shift is expected to alert");
}
