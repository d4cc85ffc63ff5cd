//! The store over its life: versioned migrations recorded in the database (a fresh one, an old
//! one upgraded, one newer than this binary refused) and retention deleting only old rows, in
//! every table that grows with time.

mod detection_support;

use detection_support::*;
use millwatch::signals::{
    Batch, DistributionRow, FeatureValue, FeedbackRow, InferenceRow, LogRow, MetricType, PointRow,
    Prediction, SeriesRow, SpanRow,
};
use millwatch::store::schema::MIGRATIONS;
use millwatch::store::{Store, StoreError, database_path};

fn applied(store: &Store) -> Vec<u32> {
    store
        .read(|c| {
            let mut s =
                c.prepare("SELECT version FROM millwatch_schema_migrations ORDER BY version")?;
            let rows = s.query_map([], |r| r.get::<_, u32>(0))?;
            rows.collect::<duckdb::Result<Vec<_>>>()
        })
        .expect("query")
}

#[test]
fn a_new_database_records_every_migration_once() {
    let dir = TempDir::new("migrations-new");
    let all: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert!(all.len() >= 2, "{all:?}");
    let store = Store::open(&dir.0).expect("opens");
    assert_eq!(applied(&store), all);
    drop(store);
    // Opening again applies nothing twice.
    let store = Store::open(&dir.0).expect("opens again");
    assert_eq!(applied(&store), all);
}

#[test]
fn an_old_database_is_upgraded_and_keeps_its_rows() {
    let dir = TempDir::new("migrations-old");
    // A database as the first release left it: migration 1 only, with a row in it.
    {
        let conn = duckdb::Connection::open(database_path(&dir.0)).expect("db");
        conn.execute_batch(
            "CREATE TABLE millwatch_schema_migrations (version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)",
        )
        .expect("table");
        conn.execute_batch(MIGRATIONS[0].sql).expect("migration 1");
        conn.execute(
            "INSERT INTO millwatch_schema_migrations VALUES (1, 'v1', now())",
            [],
        )
        .expect("recorded");
        conn.execute_batch(
            "INSERT INTO resources (resource_id, service_name) VALUES (42, 'spindle-predictor')",
        )
        .expect("a row");
    }
    let store = Store::open(&dir.0).expect("upgrades");
    assert_eq!(
        applied(&store),
        MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>()
    );
    let kept: String = store
        .read(|c| {
            c.query_row(
                "SELECT service_name FROM resources WHERE resource_id = 42",
                [],
                |r| r.get(0),
            )
        })
        .expect("row kept");
    assert_eq!(kept, "spindle-predictor");
    // The later migrations' tables exist.
    let detections: u64 = store
        .read(|c| c.query_row("SELECT count(*) FROM detections", [], |r| r.get(0)))
        .expect("table");
    assert_eq!(detections, 0);
}

#[test]
fn a_database_newer_than_this_binary_is_refused() {
    let dir = TempDir::new("migrations-newer");
    drop(Store::open(&dir.0).expect("opens"));
    {
        let conn = duckdb::Connection::open(database_path(&dir.0)).expect("db");
        conn.execute(
            "INSERT INTO millwatch_schema_migrations VALUES (999, 'from the future', now())",
            [],
        )
        .expect("recorded");
    }
    match Store::open(&dir.0) {
        Err(e @ StoreError::SchemaTooNew { found: 999, .. }) => {
            assert!(e.to_string().contains("999"), "{e}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

#[test]
fn retention_deletes_rows_older_than_the_cutoff_only() {
    let ts = TestStore::open("retention");
    let features = || vec![("temp".to_owned(), FeatureValue::Double(71.5))];
    // Events 0..10 are 1 ms apart from the base time; keep 5..10.
    let rows: Vec<_> = (0..10)
        .map(|i| inference("m", "1", i, features(), Prediction::Number(1.0)))
        .collect();
    let cutoff = rows[5].time;
    ts.store(batch_of(rows));
    assert_eq!(ts.query_u64("SELECT count(*) FROM inferences"), 10);
    assert_eq!(ts.query_u64("SELECT count(*) FROM inference_features"), 10);
    let deleted = ts
        .runtime
        .block_on(ts.handle.retain(cutoff))
        .expect("retention runs");
    assert_eq!(deleted, 10, "5 inferences and their 5 feature rows");
    assert_eq!(ts.query_u64("SELECT count(*) FROM inferences"), 5);
    assert_eq!(ts.query_u64("SELECT count(*) FROM inference_features"), 5);
    assert_eq!(
        ts.query_u64(&format!(
            "SELECT count(*) FROM inferences WHERE epoch_ns(time) < {cutoff}"
        )),
        0
    );
    // A second run finds nothing more.
    assert_eq!(
        ts.runtime.block_on(ts.handle.retain(cutoff)).expect("runs"),
        0
    );
}

#[test]
fn event_ids_continue_after_the_engines_cursor_when_retention_emptied_the_store() {
    let ts = TestStore::open("event-ids-after-retention");
    let features = || vec![("temp".to_owned(), FeatureValue::Double(71.5))];
    let rows: Vec<_> = (0..10)
        .map(|i| inference("m", "1", i, features(), Prediction::Number(1.0)))
        .collect();
    let after_all = rows[9].time + 1;
    ts.store(batch_of(rows));
    // The engine accounted for events 0..=9 and saved its cursor; retention then deleted them.
    let mut engine = ts.engine(Default::default());
    drain(&mut engine);
    engine.save_state().expect("state saved");
    drop(engine);
    ts.runtime
        .block_on(ts.handle.retain(after_all))
        .expect("retention runs");
    assert_eq!(ts.query_u64("SELECT count(*) FROM inferences"), 0);

    let ts = ts.reopen();
    ts.store(batch_of(vec![inference(
        "m",
        "1",
        10,
        features(),
        Prediction::Number(1.0),
    )]));
    assert_eq!(
        ts.query_u64("SELECT min(event_id) FROM inferences"),
        10,
        "ids restarting at 0 would sit behind the engine's cursor and never be read"
    );
}

/// The rows retention is told to prune are those before this time.
const CUTOFF: i64 = 1_700_000_000_000_000_000;
const OLD: i64 = CUTOFF - 1;

fn span(span_id: &str, start_time: i64, end_time: i64) -> SpanRow {
    SpanRow {
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        span_id: span_id.into(),
        parent_span_id: None,
        trace_state: None,
        name: "predict".into(),
        kind: 2,
        start_time,
        end_time,
        duration_s: (end_time - start_time) as f64 / 1e9,
        status_code: 0,
        status_message: None,
        model: None,
        version: None,
        attributes: None,
        events: None,
        links: None,
        flags: 0,
        resource_id: 1,
        scope_id: 1,
    }
}

fn log(body: &str, time: Option<i64>, observed_time: Option<i64>) -> LogRow {
    LogRow {
        time,
        observed_time,
        severity_number: 9,
        severity_text: None,
        event_name: None,
        body: Some(format!("\"{body}\"")),
        attributes: None,
        trace_id: None,
        span_id: None,
        flags: 0,
        resource_id: 1,
        scope_id: 1,
    }
}

/// The seven tables retention prunes, each with rows just before the cutoff and rows at it:
/// every old row goes, every recent one stays, and the definitions rows point to stay too.
#[test]
fn retention_prunes_all_seven_signal_tables_and_keeps_recent_rows() {
    let ts = TestStore::open("retention-all-tables");
    let features = || {
        vec![
            ("temp".to_owned(), FeatureValue::Double(71.5)),
            ("shift".to_owned(), FeatureValue::String("night".into())),
        ]
    };
    let at = |i: u64, time: i64| InferenceRow {
        time,
        ..inference("m", "1", i, features(), Prediction::Number(1.0))
    };
    let label = |id: &str, time: i64| FeedbackRow {
        time,
        ..feedback("m", id.into(), Prediction::Class("ok".into()))
    };
    let series = |series_id: u64, metric_type: MetricType| SeriesRow {
        series_id,
        name: "hw.temperature".into(),
        description: None,
        unit: None,
        metric_type,
        temporality: None,
        monotonic: None,
        attributes: "{}".into(),
        resource_id: 1,
        scope_id: 1,
        first_seen: OLD,
    };
    let point = |time: i64, value: f64| PointRow {
        series_id: 1,
        time,
        start_time: None,
        value,
        int_value: None,
        flags: 0,
    };
    let distribution = |time: i64, count: u64| DistributionRow {
        series_id: 2,
        time,
        count,
        ..DistributionRow::default()
    };
    ts.store(Batch {
        inferences: vec![at(0, OLD - 5), at(1, OLD), at(2, CUTOFF)],
        feedback: vec![label("m-1-0", OLD), label("m-1-2", CUTOFF)],
        series: vec![
            series(1, MetricType::Gauge),
            series(2, MetricType::Histogram),
        ],
        points: vec![point(OLD, 1.0), point(CUTOFF, 2.0)],
        distributions: vec![distribution(OLD, 10), distribution(CUTOFF, 20)],
        // Spans go by their end: one that started before the cutoff and ended at it stays.
        spans: vec![
            span("00000000000000a1", OLD - 9, OLD),
            span("00000000000000a2", OLD - 9, CUTOFF),
            span("00000000000000a3", CUTOFF, CUTOFF + 9),
        ],
        // Logs go by their time, else by when they were observed.
        logs: vec![
            log("old", Some(OLD), Some(CUTOFF)),
            log("observed-old", None, Some(OLD)),
            log("observed-recent", None, Some(CUTOFF)),
            log("recent", Some(CUTOFF), Some(OLD)),
        ],
        ..Batch::default()
    });
    // (table, rows before, rows after, a column that names the rows kept)
    let tables: [(&str, u64, u64, &str, &[&str]); 7] = [
        ("inferences", 3, 1, "inference_id", &["m-1-2"]),
        (
            "inference_feature_values",
            6,
            2,
            "CAST(event_id AS VARCHAR)",
            &["2", "2"],
        ),
        ("feedback", 2, 1, "inference_id", &["m-1-2"]),
        ("metric_points", 2, 1, "CAST(value AS VARCHAR)", &["2.0"]),
        (
            "metric_distributions",
            2,
            1,
            "CAST(count AS VARCHAR)",
            &["20"],
        ),
        (
            "spans",
            3,
            2,
            "span_id",
            &["00000000000000a2", "00000000000000a3"],
        ),
        (
            "logs",
            4,
            2,
            "CAST(body ->> '$' AS VARCHAR)",
            &["observed-recent", "recent"],
        ),
    ];
    for (table, before, _, _, _) in tables {
        assert_eq!(
            ts.query_u64(&format!("SELECT count(*) FROM {table}")),
            before,
            "{table} before retention"
        );
    }
    let definitions =
        "SELECT (SELECT count(*) FROM metric_series) + (SELECT count(*) FROM feature_keys)";
    assert_eq!(ts.query_u64(definitions), 4);

    let deleted = ts
        .runtime
        .block_on(ts.handle.retain(CUTOFF))
        .expect("retention runs");

    for (table, _, after, column, kept) in tables {
        assert_eq!(
            ts.query_u64(&format!("SELECT count(*) FROM {table}")),
            after,
            "{table} after retention"
        );
        assert_eq!(
            ts.query_strings(&format!("SELECT {column} FROM {table} ORDER BY 1")),
            kept,
            "{table}: the rows kept"
        );
    }
    let pruned: u64 = tables
        .iter()
        .map(|(_, before, after, _, _)| before - after)
        .sum();
    assert_eq!(deleted, pruned, "retain() reports every row it deleted");
    assert_eq!(ts.query_u64(definitions), 4, "definitions are kept");
}
