//! The store over its life: versioned migrations recorded in the database (a fresh one, an old
//! one upgraded, one newer than this binary refused) and retention deleting only old rows.

mod detection_support;

use detection_support::*;
use millwatch::signals::{FeatureValue, Prediction};
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
