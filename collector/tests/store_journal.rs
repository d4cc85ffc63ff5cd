//! The store's journal: under load a request is acknowledged once journaled and committed to
//! DuckDB later with others. Acknowledged rows are in the tables after a commit interval, after a
//! clean shutdown, and after a crash (the replay at start), each exactly once.

mod detection_support;

use std::time::{Duration, Instant};

use detection_support::*;
use millwatch::signals::{FeatureValue, Prediction};
use millwatch::store::journal;
use millwatch::store::writer::{JournalOptions, WriterOptions};

/// Every request journaled; held until `commit_interval` (or a shutdown).
fn journal_always(dir: &TempDir, commit_interval: Duration) -> WriterOptions {
    WriterOptions {
        commit_interval,
        journal: Some(JournalOptions {
            path: journal::path_in(&dir.0),
            above_rows_per_second: 0,
        }),
        ..WriterOptions::default()
    }
}

/// A store in a new directory that journals every request.
fn open_journaled(name: &str, commit_interval: Duration) -> TestStore {
    let dir = TempDir::new(name);
    let options = journal_always(&dir, commit_interval);
    TestStore::open_in_with(dir, options)
}

/// Stops the writer as a crash would and closes the database; the data directory stays.
fn crash(ts: TestStore) -> TempDir {
    ts.handle.abandon();
    let TestStore {
        dir,
        handle,
        store,
        runtime,
    } = ts;
    drop((handle, store, runtime));
    dir
}

fn features(i: u64) -> Vec<(String, FeatureValue)> {
    vec![
        ("temp".to_owned(), FeatureValue::Double(70.0 + i as f64)),
        (
            "station".to_owned(),
            FeatureValue::String(format!("s{}", i % 3)),
        ),
    ]
}

/// Requests of `per` events each, events numbered from `from`.
fn store_requests(ts: &TestStore, from: u64, requests: u64, per: u64) {
    for r in 0..requests {
        let rows = (0..per)
            .map(|k| {
                let i = from + r * per + k;
                inference("m", "1", i, features(i), Prediction::Number(i as f64))
            })
            .collect();
        ts.store(batch_of(rows));
    }
}

/// (event_id, inference_id, temp, station) of every stored event, by event id.
fn stored_events(ts: &TestStore) -> Vec<(u64, String, f64, String)> {
    ts.store
        .read(|c| {
            let mut s = c.prepare(
                "SELECT i.event_id, i.inference_id,
                        max(f.value_double) FILTER (WHERE f.feature = 'temp'),
                        max(f.value_string) FILTER (WHERE f.feature = 'station')
                 FROM inferences i JOIN inference_features f USING (event_id)
                 GROUP BY ALL ORDER BY i.event_id",
            )?;
            let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect::<duckdb::Result<Vec<_>>>()
        })
        .expect("query")
}

fn expected_events(n: u64) -> Vec<(u64, String, f64, String)> {
    (0..n)
        .map(|i| {
            (
                i,
                format!("m-1-{i}"),
                70.0 + i as f64,
                format!("s{}", i % 3),
            )
        })
        .collect()
}

#[test]
fn journaled_requests_are_committed_by_the_restart_after_a_crash_once_only() {
    let ts = open_journaled("journal-crash", Duration::from_secs(3600));
    store_requests(&ts, 0, 5, 40);
    assert_eq!(
        ts.query_u64("SELECT count(*) FROM inferences"),
        0,
        "acknowledged from the journal, not yet committed to the tables"
    );
    let journal_file = journal::path_in(&ts.dir.0);
    let held = journal::read(&journal_file).expect("journal reads");
    assert_eq!(held.records.len(), 5);
    assert_eq!(
        held.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );

    // A crash: the writer stops without committing, the journal keeps the five requests.
    let dir = crash(ts);

    let options = journal_always(&dir, Duration::from_secs(3600));
    let ts = TestStore::open_in_with(dir, options);
    assert_eq!(stored_events(&ts), expected_events(200));
    assert_eq!(
        journal::bytes_on_disk(&journal_file).expect("journal"),
        0,
        "emptied after the replay"
    );
    // More requests continue the event ids and the journal's numbering; a second restart
    // stores nothing twice.
    store_requests(&ts, 200, 1, 40);
    let again = journal::read(&journal_file).expect("journal reads");
    assert_eq!(
        again.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![6]
    );
    let ts = ts.reopen();
    assert_eq!(stored_events(&ts), expected_events(240));
    assert_eq!(ts.query_u64("SELECT count(*) FROM feature_keys"), 2);
    assert_eq!(
        ts.query_u64("SELECT applied_seq FROM store_journal"),
        6,
        "the newest record the tables hold"
    );
}

#[test]
fn a_record_torn_by_a_crash_is_dropped_and_the_whole_ones_are_replayed() {
    let ts = open_journaled("journal-torn", Duration::from_secs(3600));
    store_requests(&ts, 0, 3, 10);
    let dir = crash(ts);
    // The third record's write was cut short: half of it reached the disk.
    let folder = journal::path_in(&dir.0);
    let contents = journal::read(&folder).expect("reads");
    assert_eq!(contents.records.len(), 3);
    let [file] = &journal::segments(&folder).expect("lists")[..] else {
        panic!("one segment");
    };
    let bytes = std::fs::read(file).expect("journal");
    let third_starts = {
        let mut at = 0usize;
        for _ in 0..2 {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            at += 8 + len;
        }
        at
    };
    let cut = third_starts + (bytes.len() - third_starts) / 2;
    std::fs::write(file, &bytes[..cut]).expect("cut");
    let torn = journal::read(&folder).expect("reads");
    assert_eq!(torn.records.len(), 2);
    assert_eq!(torn.torn_bytes, (cut - third_starts) as u64);

    let ts = TestStore::open_in(dir);
    assert_eq!(stored_events(&ts), expected_events(20));
}

#[test]
fn journaled_requests_are_committed_at_shutdown() {
    let dir = TempDir::new("journal-shutdown");
    let options = journal_always(&dir, Duration::from_secs(3600));
    let gauge = options.journal_rows.clone();
    let ts = TestStore::open_in_with(dir, options);
    store_requests(&ts, 0, 4, 25);
    assert_eq!(ts.query_u64("SELECT count(*) FROM inferences"), 0);
    assert_eq!(
        gauge.load(std::sync::atomic::Ordering::Relaxed),
        300,
        "100 events and their 200 feature values wait in the journal"
    );
    let journal_file = journal::path_in(&ts.dir.0);
    let ts = ts.reopen();
    assert_eq!(stored_events(&ts), expected_events(100));
    assert_eq!(
        journal::bytes_on_disk(&journal_file).expect("journal"),
        0,
        "the shutdown committed the journal's records and emptied it"
    );
    assert_eq!(gauge.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn journaled_requests_are_committed_once_the_commit_interval_passes() {
    let ts = open_journaled("journal-interval", Duration::from_millis(50));
    store_requests(&ts, 0, 2, 30);
    // No further request arrives: the writer's timer commits them. (Waits, asserts no speed.)
    let deadline = Instant::now() + Duration::from_secs(30);
    while ts.query_u64("SELECT count(*) FROM inferences") < 60 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stored_events(&ts), expected_events(60));
}

#[test]
fn below_the_load_threshold_a_request_is_in_the_tables_when_acknowledged() {
    let dir = TempDir::new("journal-light-load");
    let mut options = journal_always(&dir, Duration::from_secs(3600));
    if let Some(j) = options.journal.as_mut() {
        j.above_rows_per_second = 1_000_000;
    }
    let ts = TestStore::open_in_with(dir, options);
    store_requests(&ts, 0, 3, 10);
    assert_eq!(stored_events(&ts), expected_events(30));
    assert_eq!(
        journal::bytes_on_disk(&journal::path_in(&ts.dir.0)).expect("journal"),
        0,
        "nothing journaled"
    );
}

#[test]
fn full_commits_are_stored_while_journaling_goes_on_and_a_crash_loses_none_of_either() {
    // 10 events of 2 features are 30 rows: every third request fills a commit, which the
    // committer stores while the writer journals the next requests into a new segment.
    let dir = TempDir::new("journal-overlap");
    let mut options = journal_always(&dir, Duration::from_secs(3600));
    options.max_rows_per_commit = 90;
    let ts = TestStore::open_in_with(dir, options);
    store_requests(&ts, 0, 20, 10);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ts.query_u64("SELECT count(*) FROM inferences") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let committed = ts.query_u64("SELECT count(*) FROM inferences");
    assert!(
        committed >= 30,
        "full commits reach the tables without a commit interval or a shutdown: {committed}"
    );
    let folder = journal::path_in(&ts.dir.0);

    // A crash: what the committer stored and what only the journal holds are both there after
    // the restart, each once, and every segment is gone.
    let dir = crash(ts);
    let options = journal_always(&dir, Duration::from_secs(3600));
    let ts = TestStore::open_in_with(dir, options);
    assert_eq!(stored_events(&ts), expected_events(200));
    assert_eq!(ts.query_u64("SELECT applied_seq FROM store_journal"), 20);
    assert!(
        journal::segments(&folder).expect("lists").len() <= 1,
        "only the new, empty one"
    );
    assert_eq!(journal::bytes_on_disk(&folder).expect("sizes"), 0);
}
