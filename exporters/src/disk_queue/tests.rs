//! The disk queue's tests: delivery order, limits, segments, and damage on disk.

use super::*;

fn open_q(dir: &Path, max_bytes: u64) -> Result<DiskQueue> {
    DiskQueue::open(dir, Options::refusing("test", max_bytes))
}

fn rec(i: u32, size: usize) -> (Vec<u8>, u32) {
    let mut p = i.to_le_bytes().to_vec();
    p.resize(size.max(4), 7);
    (p, i)
}

/// Sample counts of everything queued, delivering it all.
fn drain(q: &mut DiskQueue) -> Vec<u32> {
    let mut seen = Vec::new();
    loop {
        let b = q.peek(50).expect("peek");
        if b.records.is_empty() {
            return seen;
        }
        seen.extend(b.records.iter().map(|r| r.items));
        q.commit(&b).expect("commit");
    }
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(suffix)))
        .collect();
    found.sort();
    found
}

/// Flips one byte of segment `n` at `offset`.
fn flip(dir: &Path, n: u64, offset: u64) {
    let path = segment_path(dir, n);
    let mut bytes = fs::read(&path).expect("read segment");
    bytes[offset as usize] ^= 0x5a;
    fs::write(&path, bytes).expect("write segment");
}

#[test]
fn records_survive_reopen_and_commit_moves_the_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut q = open_q(dir.path(), 1 << 20).expect("open");
        q.append(&[rec(1, 10), rec(2, 10)]).expect("append");
        q.append(&[rec(3, 10)]).expect("append");
        let b = q.peek(3).expect("peek");
        assert_eq!(
            b.records.iter().map(|r| r.items).collect::<Vec<_>>(),
            [1, 2]
        );
        q.commit(&b).expect("commit");
        assert_eq!(q.pending_items(), 3);
    }
    let mut q = open_q(dir.path(), 1 << 20).expect("reopen");
    assert_eq!(q.pending_records(), 1);
    let b = q.peek(100).expect("peek");
    assert_eq!(
        b.records,
        vec![Record {
            payload: rec(3, 10).0,
            items: 3
        }]
    );
    assert_eq!(q.skipped_bytes(), 0);
}

#[test]
fn full_queue_refuses_and_keeps_what_it_has() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut q = open_q(dir.path(), 1000).expect("open");
    q.append(&[rec(1, 400), rec(2, 400)]).expect("fits");
    let err = q.append(&[rec(3, 400)]).expect_err("full");
    assert!(matches!(err, QueueError::Full { max: 1000, .. }), "{err}");
    assert!(err.to_string().contains("queue full"));
    assert_eq!(q.pending_records(), 2);
}

#[test]
fn segments_roll_and_are_deleted_after_delivery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut q = open_q(dir.path(), 8 << 20).expect("open");
    for i in 0..40 {
        q.append(&[rec(i, 64 << 10)]).expect("append");
    }
    assert!(
        files_ending(dir.path(), ".seg").len() > 2,
        "segments rolled"
    );
    assert!(q.pending_bytes() > 0);
    assert_eq!(drain(&mut q), (0..40).collect::<Vec<_>>());
    assert_eq!(files_ending(dir.path(), ".seg").len(), 1);
    assert_eq!(q.pending_bytes(), 0);
    assert_eq!(q.pending_records(), 0);
}

#[test]
fn a_torn_tail_is_skipped_counted_and_new_records_go_to_a_new_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut q = open_q(dir.path(), 1 << 20).expect("open");
        q.append(&[rec(1, 50), rec(2, 50)]).expect("append");
    }
    let seg = segment_path(dir.path(), 1);
    let len = fs::metadata(&seg).expect("meta").len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .and_then(|f| f.set_len(len - 10))
        .expect("tear");
    let mut q = open_q(dir.path(), 1 << 20).expect("reopen");
    assert_eq!(q.pending_records(), 1);
    // Record 2's first 56 of 66 bytes.
    assert_eq!(q.skipped_bytes(), HEADER + 50 - 10);
    q.append(&[rec(3, 50)])
        .expect("append after the torn record");
    assert_eq!(drain(&mut q), [1, 3]);
    assert_eq!(q.skipped_bytes(), HEADER + 50 - 10, "counted once");
    // The torn segment is delivered and kept, as it was.
    let kept = files_ending(dir.path(), ".seg.damaged");
    assert_eq!(kept, [damaged_path(dir.path(), 1)]);
    assert_eq!(fs::metadata(&kept[0]).expect("meta").len(), len - 10);
}

#[test]
fn a_zero_filled_tail_is_no_record() {
    // A crash can leave a file longer than what was written, zero-filled. A checksum of the
    // payload alone matches there (the CRC-32 of nothing is 0): it must cover the header.
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut q = open_q(dir.path(), 1 << 20).expect("open");
        q.append(&[rec(1, 20), rec(2, 20)]).expect("append");
    }
    let seg = segment_path(dir.path(), 1);
    let mut bytes = fs::read(&seg).expect("read");
    bytes.extend_from_slice(&[0u8; 96]);
    fs::write(&seg, &bytes).expect("write");
    let mut q = open_q(dir.path(), 1 << 20).expect("reopen");
    assert_eq!(q.pending_records(), 2);
    assert_eq!(q.skipped_bytes(), 96);
    assert_eq!(drain(&mut q), [1, 2]);
}

#[test]
fn mid_segment_damage_loses_only_the_damaged_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let framed = HEADER + 100;
    {
        let mut q = open_q(dir.path(), 1 << 20).expect("open");
        for i in 1..=5 {
            q.append(&[rec(i, 100)]).expect("append");
        }
    }
    // One byte of record 3's payload.
    flip(dir.path(), 1, 2 * framed + HEADER + 40);
    let mut q = open_q(dir.path(), 1 << 20).expect("reopen");
    assert_eq!(q.pending_records(), 4, "records 4 and 5 kept");
    assert_eq!(q.pending_items(), 1 + 2 + 4 + 5);
    assert_eq!(q.skipped_bytes(), framed);
    q.append(&[rec(6, 100)]).expect("append");
    assert_eq!(drain(&mut q), [1, 2, 4, 5, 6]);
    assert_eq!(q.skipped_bytes(), framed, "the damage is counted once");
    // The evidence: the damaged segment, unchanged, once its records are delivered.
    let kept = files_ending(dir.path(), ".seg.damaged");
    assert_eq!(kept, [damaged_path(dir.path(), 1)]);
    assert_eq!(fs::metadata(&kept[0]).expect("meta").len(), 5 * framed);
    assert_eq!(files_ending(dir.path(), ".seg").len(), 1);
}

#[test]
fn damage_in_an_older_segment_hides_none_of_the_records_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let framed = HEADER + (10 << 10);
    {
        // 128 KiB segments: 12 records each.
        let mut q = open_q(dir.path(), 1 << 20).expect("open");
        for i in 1..=30 {
            q.append(&[rec(i, 10 << 10)]).expect("append");
        }
    }
    assert!(files_ending(dir.path(), ".seg").len() >= 3);
    // Record 5's length field: the reader must not take the garbage length at its word.
    flip(dir.path(), 1, 4 * framed + 6);
    let mut q = open_q(dir.path(), 1 << 20).expect("reopen");
    assert_eq!(q.pending_records(), 29);
    let mut want: Vec<u32> = (1..=30).collect();
    want.retain(|i| *i != 5);
    assert_eq!(drain(&mut q), want);
    assert_eq!(q.skipped_bytes(), framed);
    assert_eq!(
        files_ending(dir.path(), ".seg.damaged"),
        [damaged_path(dir.path(), 1)]
    );
}

#[test]
fn damage_found_by_a_running_queue_is_counted_once_however_often_it_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let framed = HEADER + 100;
    let mut q = open_q(dir.path(), 1 << 20).expect("open");
    for i in 1..=4 {
        q.append(&[rec(i, 100)]).expect("append");
    }
    flip(dir.path(), 1, framed + HEADER + 3);
    for _ in 0..3 {
        let b = q.peek(u64::MAX).expect("peek");
        assert_eq!(
            b.records.iter().map(|r| r.items).collect::<Vec<_>>(),
            [1, 3, 4]
        );
    }
    assert_eq!(q.skipped_bytes(), framed);
}

#[test]
fn a_damaged_item_count_fails_the_checksum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let framed = HEADER + 30;
    {
        let mut q = open_q(dir.path(), 1 << 20).expect("open");
        q.append(&[rec(1, 30), rec(2, 30), rec(3, 30)])
            .expect("append");
    }
    // Record 2's item count (bytes 8..12 of its header).
    flip(dir.path(), 1, framed + 8);
    let mut q = open_q(dir.path(), 1 << 20).expect("reopen");
    assert_eq!(drain(&mut q), [1, 3]);
    assert_eq!(q.skipped_bytes(), framed);
}

#[test]
fn a_failed_write_is_cut_off_so_later_records_do_not_land_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let framed = HEADER + 40;
    {
        let mut q = open_q(dir.path(), 1 << 20).expect("open");
        q.append(&[rec(1, 40)]).expect("append");
        // The disk fills up in the middle of the next append: part of it is in the file
        // (written here by hand), the rest fails (/dev/full refuses every write).
        let seg = segment_path(dir.path(), 1);
        let mut partial = Vec::new();
        frame::encode(&rec(2, 40).0, 2, &mut partial).expect("encode");
        OpenOptions::new()
            .append(true)
            .open(&seg)
            .and_then(|mut f| f.write_all(&partial[..20]))
            .expect("partial write");
        let real = std::mem::replace(
            &mut q.write,
            OpenOptions::new()
                .append(true)
                .open("/dev/full")
                .expect("/dev/full"),
        );
        q.append(&[rec(2, 40)]).expect_err("disk full");
        assert_eq!(q.pending_records(), 1, "nothing of the failed append");
        assert_eq!(fs::metadata(&seg).expect("meta").len(), framed, "cut off");
        q.write = real;
        q.append(&[rec(3, 40)]).expect("append once there is room");
    }
    let mut q = open_q(dir.path(), 1 << 20).expect("reopen");
    assert_eq!(q.skipped_bytes(), 0);
    assert_eq!(drain(&mut q), [1, 3]);
    assert!(files_ending(dir.path(), ".seg.damaged").is_empty());
}

#[test]
fn only_the_newest_damaged_segments_are_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0..KEPT_DAMAGED as u32 + 2 {
        {
            let mut q = open_q(dir.path(), 1 << 20).expect("open");
            q.append(&[rec(round, 10)]).expect("append");
        }
        // A torn record after it: each reopen finds damage in the newest segment.
        let newest = files_ending(dir.path(), ".seg").pop().expect("a segment");
        OpenOptions::new()
            .append(true)
            .open(&newest)
            .and_then(|mut f| f.write_all(b"MWRW torn"))
            .expect("tear");
        let mut q = open_q(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(drain(&mut q), [round]);
        q.append(&[rec(99, 10)]).expect("append");
        assert_eq!(drain(&mut q), [99]);
    }
    assert_eq!(files_ending(dir.path(), ".seg.damaged").len(), KEPT_DAMAGED);
}

fn dropping(dir: &Path, max_bytes: u64) -> DiskQueue {
    DiskQueue::open(
        dir,
        Options {
            label: "test".into(),
            max_bytes,
            full: FullPolicy::DropOldest,
        },
    )
    .expect("open")
}

#[test]
fn drop_oldest_deletes_whole_segments_from_the_head_and_counts_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let framed = HEADER + (10 << 10);
    // 512 KiB: 64 KiB segments of 6 records each; 100 records do not fit.
    let mut q = dropping(dir.path(), 512 << 10);
    for i in 1..=100 {
        q.append(&[rec(i, 10 << 10)])
            .expect("drop_oldest makes room");
        assert!(q.used_bytes() <= 512 << 10);
    }
    let (records, items) = q.dropped();
    assert!(records > 0, "something was dropped");
    let left = drain(&mut q);
    // What is left is the newest records, in order, and nothing is both kept and dropped.
    assert_eq!(left.len() as u64 + records, 100);
    let first = 101 - left.len() as u32;
    assert_eq!(left, (first..=100).collect::<Vec<_>>());
    assert_eq!(items, (1..first).map(u64::from).sum::<u64>());
    assert!(left.len() as u64 * framed <= 512 << 10);
    // A record bigger than the whole queue is refused, not made room for.
    let err = q.append(&[rec(1, 600 << 10)]).expect_err("too big");
    assert!(matches!(err, QueueError::Full { .. }), "{err}");
}

#[test]
fn drop_oldest_with_one_segment_rolls_it_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut q = dropping(dir.path(), 1000);
    q.append(&[rec(1, 400), rec(2, 400)]).expect("fits");
    q.append(&[rec(3, 400)]).expect("the first segment goes");
    assert_eq!(q.dropped(), (2, 3));
    assert_eq!(q.pending_records(), 1);
    assert_eq!(drain(&mut q), [3]);
}

#[test]
fn a_batch_in_flight_while_its_segment_is_dropped_is_not_counted_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut q = dropping(dir.path(), 1000);
    q.append(&[rec(1, 400), rec(2, 400)]).expect("fits");
    let in_flight = q.peek(1).expect("peek");
    assert_eq!(in_flight.records.len(), 1);
    q.append(&[rec(3, 400)]).expect("drops 1 and 2");
    assert_eq!(q.pending_records(), 1);
    q.commit(&in_flight).expect("commit of a dropped batch");
    assert_eq!(q.pending_records(), 1, "the cursor does not move back");
    assert_eq!(drain(&mut q), [3]);
    drop(q);
    let mut q = dropping(dir.path(), 1000);
    assert_eq!(drain(&mut q), Vec::<u32>::new(), "the cursor persisted");
}

#[test]
fn a_full_queue_whose_records_are_all_delivered_takes_new_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut q = open_q(dir.path(), 1000).expect("open");
    q.append(&[rec(1, 400), rec(2, 400)]).expect("fits");
    assert_eq!(drain(&mut q), [1, 2]);
    assert_eq!(q.pending_bytes(), 0);
    q.append(&[rec(3, 400)])
        .expect("the delivered segment makes room");
    assert_eq!(drain(&mut q), [3]);
    assert_eq!(files_ending(dir.path(), ".seg").len(), 1);
}
