//! The store's journal: under load a request is acknowledged once journaled and committed to
//! DuckDB later with others. Acknowledged rows are in the tables after a commit interval, after a
//! clean shutdown, and after a crash (the replay at start), each exactly once; damage to the
//! journal loses only the records it hit, is reported and its evidence kept. The writer's failure
//! paths (a failed commit, a journal that cannot be synced) run on injected faults.

mod detection_support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use detection_support::*;
use millwatch::signals::{Batch, FeatureValue, Prediction};
use millwatch::store::writer::{JournalOptions, WriterOptions};
use millwatch::store::{Store, journal, replay, writer};

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

/// A request of `per` events, numbered from `from`.
fn request(from: u64, per: u64) -> Batch {
    let rows = (from..from + per)
        .map(|i| inference("m", "1", i, features(i), Prediction::Number(i as f64)))
        .collect();
    batch_of(rows)
}

/// Requests of `per` events each, events numbered from `from`.
fn store_requests(ts: &TestStore, from: u64, requests: u64, per: u64) {
    for r in 0..requests {
        ts.store(request(from + r * per, per));
    }
}

/// Where each record of a journal segment starts, by its framing (`[u32 length][u32 CRC]`).
fn record_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        starts.push(at);
        at += 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    starts
}

/// Waits (without asserting how long it takes) until `done`, for at most a minute.
fn wait_until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
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
    let third_starts = record_starts(&bytes)[2];
    let cut = third_starts + (bytes.len() - third_starts) / 2;
    std::fs::write(file, &bytes[..cut]).expect("cut");
    let torn = journal::read(&folder).expect("reads");
    assert_eq!(torn.records.len(), 2);
    assert_eq!(torn.torn_bytes, (cut - third_starts) as u64);

    let ts = TestStore::open_in(dir);
    assert_eq!(stored_events(&ts), expected_events(20));
    assert_eq!(ts.store.replayed.torn_bytes, (cut - third_starts) as u64);
    assert!(
        ts.store.replayed.lost.is_empty(),
        "a torn tail loses nothing acknowledged"
    );
    assert!(ts.store.replayed.quarantined.is_empty());
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

#[test]
fn damage_inside_a_segment_loses_only_the_records_it_hit_keeps_the_segment_and_says_so() {
    let ts = open_journaled("journal-damage", Duration::from_secs(3600));
    store_requests(&ts, 0, 5, 10);
    let dir = crash(ts);
    let folder = journal::path_in(&dir.0);
    let [file] = &journal::segments(&folder).expect("lists")[..] else {
        panic!("one segment");
    };
    let mut bytes = std::fs::read(file).expect("journal");
    let starts = record_starts(&bytes);
    assert_eq!(starts.len(), 5);
    // A media error in the middle of the third record (seq 3), not a torn write: the fourth
    // and fifth records after it are whole and were acknowledged.
    bytes[(starts[2] + starts[3]) / 2] ^= 0xff;
    std::fs::write(file, &bytes).expect("damage");
    let kept = replay::quarantine_in(&folder).join(file.file_name().expect("name"));

    let options = journal_always(&dir, Duration::from_secs(3600));
    let ts = TestStore::open_in_with(dir, options);
    let readable: Vec<_> = expected_events(50)
        .into_iter()
        .filter(|e| !(20..30).contains(&e.0))
        .collect();
    assert_eq!(
        stored_events(&ts),
        readable,
        "every record still readable is stored"
    );
    let replayed = &ts.store.replayed;
    assert_eq!(
        replayed.lost,
        vec![3..=3],
        "the record hit, and only it, is lost"
    );
    assert_eq!(replayed.lost_records(), 1);
    assert_eq!(replayed.records, 4);
    assert_eq!(replayed.torn_bytes, 0, "damage, not a torn tail");
    assert_eq!(replayed.quarantined, vec![kept.clone()]);
    assert_eq!(
        std::fs::read(&kept).expect("the evidence is kept"),
        bytes,
        "as it was found"
    );
    assert!(journal::segments(&folder).expect("lists").len() <= 1);
    assert_eq!(journal::bytes_on_disk(&folder).expect("sizes"), 0);
    let report = replayed.damage_report().expect("reported");
    assert!(
        report.contains("1 acknowledged request (journal record seq 3) could not be read"),
        "{report}"
    );
    assert!(report.contains(&kept.display().to_string()), "{report}");
    assert_eq!(ts.query_u64("SELECT applied_seq FROM store_journal"), 5);

    // Numbering goes on after the records written; a restart stores nothing twice, reports
    // nothing again and leaves the evidence in place.
    store_requests(&ts, 50, 1, 10);
    let next = journal::read(&folder).expect("reads");
    assert_eq!(
        next.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![6]
    );
    let ts = ts.reopen();
    assert!(ts.store.replayed.lost.is_empty());
    assert!(kept.exists());
    let mut all = readable;
    all.extend(expected_events(60).into_iter().skip(50));
    assert_eq!(stored_events(&ts), all);
}

#[test]
fn a_damaged_segment_end_before_a_later_segment_is_a_loss_not_a_torn_tail() {
    // DuckDB fails every commit, so each hand-off leaves its segment and starts a new one.
    let dir = TempDir::new("journal-gap");
    let mut options = journal_always(&dir, Duration::from_secs(3600));
    options.max_rows_per_commit = 60; // two requests of 10 events with 2 features each
    let faults = options.faults.clone();
    faults.fail_commits(u64::MAX);
    let ts = TestStore::open_in_with(dir, options);
    store_requests(&ts, 0, 4, 10);
    // The committer fails on its own thread, maybe after the last acknowledgement.
    wait_until(|| faults.commits_failed() >= 1);
    assert!(faults.commits_failed() >= 1);
    let dir = crash(ts);
    let folder = journal::path_in(&dir.0);
    let segments = journal::segments(&folder).expect("lists");
    assert!(segments.len() >= 2, "{segments:?}");
    let first = &segments[0];
    let bytes = std::fs::read(first).expect("journal");
    let starts = record_starts(&bytes);
    assert_eq!(starts.len(), 2, "records 1 and 2, handed off together");
    // The first segment loses the end of its last record, as a lost disk block would: a
    // crash cannot tear it, since a later segment was written after it was synced.
    std::fs::write(first, &bytes[..starts[1] + 20]).expect("damage");

    let ts = TestStore::open_in(dir);
    let mut readable = expected_events(10);
    readable.extend(expected_events(40).into_iter().skip(20));
    assert_eq!(stored_events(&ts), readable);
    let replayed = &ts.store.replayed;
    assert_eq!(replayed.lost, vec![2..=2]);
    assert_eq!(replayed.torn_bytes, 0);
    let kept = replay::quarantine_in(&folder).join(first.file_name().expect("name"));
    assert_eq!(
        replayed.quarantined,
        vec![kept.clone()],
        "only the damaged one"
    );
    assert_eq!(std::fs::read(&kept).expect("kept").len(), starts[1] + 20);
    assert_eq!(journal::bytes_on_disk(&folder).expect("sizes"), 0);
}

#[test]
fn a_failed_commit_of_journaled_requests_is_retried_and_stores_them_once() {
    let dir = TempDir::new("journal-commit-retry");
    let options = journal_always(&dir, Duration::from_millis(50));
    let faults = options.faults.clone();
    faults.fail_commits(1);
    let gauge = options.journal_rows.clone();
    let ts = TestStore::open_in_with(dir, options);
    store_requests(&ts, 0, 3, 10);
    // The first commit fails; the writer keeps the rows and tries again a second later.
    wait_until(|| gauge.load(Ordering::Relaxed) == 0);
    assert_eq!(faults.commits_failed(), 1);
    assert_eq!(ts.query_u64("SELECT count(*) FROM inferences"), 30);
    assert_eq!(stored_events(&ts), expected_events(30));
    assert_eq!(
        journal::bytes_on_disk(&journal::path_in(&ts.dir.0)).expect("sizes"),
        0,
        "the segments are deleted once stored"
    );
}

#[test]
fn a_failed_group_commit_is_retried_request_by_request() {
    let dir = TempDir::new("group-commit-retry");
    let options = WriterOptions::default();
    let faults = options.faults.clone();
    let store = Store::open(&dir.0).expect("store opens");
    // The observer holds the writer after the first commit, so that the next requests queue up
    // and are committed as one group.
    let (entered, held) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let commits = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = commits.clone();
    let handle = writer::spawn_observed(
        store.connect().expect("connection"),
        store.known.clone(),
        options,
        Box::new(move |stats: writer::WriterStats| {
            let mut seen = seen.lock().expect("lock");
            seen.push(stats.requests);
            if seen.len() == 1 {
                let _ = entered.send(());
                let _ = released.recv();
            }
        }),
    )
    .expect("writer");
    let ts = TestStore {
        dir,
        handle,
        store: Arc::new(store),
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime"),
    };
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut first = Box::pin(ts.handle.store(request(0, 10)));
    assert!(first.as_mut().poll(&mut cx).is_pending());
    held.recv().expect("the first commit reaches the observer");
    let mut queued: Vec<_> = (1..5)
        .map(|r| Box::pin(ts.handle.store(request(r * 10, 10))))
        .collect();
    for q in &mut queued {
        assert!(
            q.as_mut().poll(&mut cx).is_pending(),
            "queued behind the first"
        );
    }
    faults.fail_commits(1);
    release.send(()).expect("release");
    let answers = ts.runtime.block_on(async {
        let mut answers = vec![first.await];
        for q in queued {
            answers.push(q.await);
        }
        answers
    });
    for a in &answers {
        assert!(a.is_ok(), "{answers:?}");
    }
    assert_eq!(faults.commits_failed(), 1, "the group's commit failed");
    assert_eq!(
        *commits.lock().expect("lock"),
        vec![1, 1, 1, 1, 1],
        "then each request was committed on its own"
    );
    assert_eq!(stored_events(&ts), expected_events(50));
}

#[test]
fn a_failed_commit_refuses_its_request_and_keeps_nothing_of_it() {
    let dir = TempDir::new("commit-fails");
    let options = WriterOptions::default();
    let faults = options.faults.clone();
    let ts = TestStore::open_in_with(dir, options);
    faults.fail_commits(1);
    let refused = ts.runtime.block_on(ts.handle.store(request(0, 10)));
    let e = refused.expect_err("refused");
    assert!(e.to_string().contains("injected by a test"), "{e}");
    assert_eq!(ts.query_u64("SELECT count(*) FROM inferences"), 0);
    assert_eq!(ts.query_u64("SELECT count(*) FROM feature_keys"), 0);
    // The client sends it again: its feature keys and event ids were rolled back, not lost.
    store_requests(&ts, 0, 2, 10);
    assert_eq!(stored_events(&ts), expected_events(20));
    assert_eq!(ts.query_u64("SELECT count(*) FROM feature_keys"), 2);
}

#[test]
fn while_duckdb_fails_requests_past_four_commits_of_held_rows_are_refused() {
    let dir = TempDir::new("journal-refuses");
    let mut options = journal_always(&dir, Duration::from_secs(3600));
    options.max_rows_per_commit = 90; // three requests of 10 events with 2 features each
    let limit = 90 * writer::HELD_LIMIT_COMMITS as u64;
    let faults = options.faults.clone();
    faults.fail_commits(u64::MAX);
    let gauge = options.journal_rows.clone();
    let ts = TestStore::open_in_with(dir, options);
    let send = |r: u64| ts.runtime.block_on(ts.handle.store(request(r * 10, 10)));
    let mut acked = Vec::new();
    let mut refused = None;
    for r in 0..60 {
        match send(r) {
            Ok(()) => acked.push(r),
            Err(e) => {
                refused = Some((e.to_string(), gauge.load(Ordering::Relaxed)));
                break;
            }
        }
    }
    let (message, held) = refused.expect("a request is refused");
    assert!(
        message.contains("journaled rows are waiting for DuckDB, which fails to commit them"),
        "{message}"
    );
    assert!(
        held >= limit,
        "{held} rows held when refusing, limit {limit}"
    );
    assert!(
        acked.len() as u64 >= limit / 30,
        "{} acknowledged",
        acked.len()
    );
    assert!(faults.commits_failed() >= 1);
    assert_eq!(ts.query_u64("SELECT count(*) FROM inferences"), 0);

    // DuckDB commits again: the held rows are stored and requests are taken again.
    faults.fail_commits(0);
    let mut next = acked.len() as u64 + 1;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = next;
        next += 1;
        if send(r).is_ok() {
            acked.push(r);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refusing after DuckDB recovered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ts = ts.reopen();
    let ids: Vec<String> = acked
        .iter()
        .flat_map(|r| (r * 10..r * 10 + 10).map(|i| format!("m-1-{i}")))
        .collect();
    assert_eq!(
        ts.query_strings("SELECT inference_id FROM inferences ORDER BY event_id"),
        ids,
        "every acknowledged request, once; none refused"
    );
}

#[test]
fn when_the_journal_cannot_be_synced_requests_are_in_duckdb_before_their_ack() {
    let dir = TempDir::new("journal-sync-fails");
    let options = journal_always(&dir, Duration::from_secs(3600));
    let faults = options.faults.clone();
    let ts = TestStore::open_in_with(dir, options);
    let folder = journal::path_in(&ts.dir.0);
    faults.fail_syncs(1);
    store_requests(&ts, 0, 1, 10);
    assert_eq!(faults.syncs_failed(), 1);
    assert_eq!(
        ts.query_u64("SELECT count(*) FROM inferences"),
        10,
        "committed to DuckDB before the acknowledgement"
    );
    // A new segment takes the next requests: acknowledged once journaled again.
    store_requests(&ts, 10, 2, 10);
    assert_eq!(ts.query_u64("SELECT count(*) FROM inferences"), 10);
    let journaled = journal::read(&folder).expect("reads");
    assert_eq!(
        journaled.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![2, 3],
        "the segment that failed was deleted once stored"
    );

    // The sync and the commit both fail: the client hears of it; the rows stay held and are
    // stored later (so a client's retry may store them twice).
    faults.fail_syncs(1);
    faults.fail_commits(1);
    let e = ts
        .runtime
        .block_on(ts.handle.store(request(30, 10)))
        .expect_err("refused");
    assert!(e.to_string().contains("injected by a test"), "{e}");
    let ts = ts.reopen();
    assert_eq!(stored_events(&ts), expected_events(40));
}
