//! The store's journal: under load, a request is acknowledged once its rows, already in the
//! Arrow columns DuckDB will take, are appended to the journal and synced to disk; a committer
//! thread then stores many requests in DuckDB in one transaction while the writer goes on
//! journaling. A DuckDB commit costs a write-ahead-log write and a merge into the table whatever
//! its size, and from a row group's worth of rows (122,880) DuckDB writes compressed blocks
//! directly, so a few large commits store rows several times faster than one commit per group of
//! requests in flight.
//!
//! The journal is a folder of segment files, `<first record's seq>.journal`. The writer appends
//! to the newest; when it hands its records to the committer it starts a new segment, and the
//! committer deletes the segments it has stored. Each record carries a sequence number; the
//! DuckDB transaction that stores records also sets `store_journal.applied_seq` to the newest of
//! them. At start, [`replay`](super::replay) commits the records after it, so nothing
//! acknowledged is lost and nothing is stored twice.
//!
//! A record on disk: `[u32 payload length][u32 CRC-32 of the length and payload][payload]`,
//! little-endian (a zero-filled tail, as a crash can leave, fails the check);
//! the payload is `[u64 seq][u8 tables]`, then per table `[u8 name length][name][u32 length]`
//! and an Arrow IPC stream of that table's batches. A record that fails its check is skipped:
//! the reading resynchronises at the next offset where a whole record checks out (see
//! [`read`]); [`replay`](super::replay) tells a torn tail (a crash or a failed write during the
//! last record, so never acknowledged) from damage that lost acknowledged records.

mod read;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow_ipc::writer::StreamWriter;
use duckdb::Connection;
use duckdb::arrow::record_batch::RecordBatch;

pub use self::read::{Contents, Record, Segment, Span, read};
use super::faults::Faults;
use super::{StoreError, columns};

/// The journal folder inside a data directory.
pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join("journal")
}

/// The tables a record may name, in the order a transaction appends them (definitions first).
pub const TABLE_ORDER: &[&str] = &[
    "resources",
    "scopes",
    "metric_series",
    "feature_keys",
    "inferences",
    "inference_feature_values",
    "feedback",
    "metric_points",
    "metric_distributions",
    "spans",
    "logs",
];

/// Rows of some tables, as the writer appends them.
pub type Tables = Vec<(&'static str, Vec<RecordBatch>)>;

/// The segment files of a journal folder, oldest first (none if the folder does not exist).
pub fn segments(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir, "listing", e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| io_error(dir, "listing", e))?.path();
        if let Some(order) = segment_order(&path) {
            found.push((order, path));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// A segment's place among the others, from its name `<seq>.journal` or `<seq>.<n>.journal`:
/// `seq` is the number its first record has (or would have had).
fn segment_order(path: &Path) -> Option<(u64, u32)> {
    let name = path.file_name()?.to_str()?.strip_suffix(".journal")?;
    let (seq, n) = name.split_once('.').unwrap_or((name, "0"));
    Some((seq.parse().ok()?, n.parse().ok()?))
}

/// Bytes in a journal folder's segments: 0 once everything in it is stored.
pub fn bytes_on_disk(dir: &Path) -> Result<u64, StoreError> {
    let mut bytes = 0;
    for path in segments(dir)? {
        bytes += std::fs::metadata(&path)
            .map_err(|e| io_error(&path, "reading the size of", e))?
            .len();
    }
    Ok(bytes)
}

/// Deletes a segment whose records DuckDB holds. Left in place, its records are at or before
/// `applied_seq`, and a replay skips them.
pub fn remove_segment(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path, "deleting", e)),
    }
}

/// The journal being written: records are appended to the newest segment and synced as a group;
/// [`take_segments`](Self::take_segments) hands the segments holding records over for their
/// commit and starts a new one.
pub struct Journal {
    dir: PathBuf,
    file: File,
    /// The segment being written.
    path: PathBuf,
    next_seq: u64,
    /// Bytes of whole records in the segment being written.
    bytes: u64,
    /// Segments with records not yet handed over, oldest first; the one being written is last
    /// once it holds a record.
    pending: Vec<PathBuf>,
    buf: Vec<u8>,
    /// A write or sync failed and the segment may now hold a damaged record before good ones:
    /// no more records until a new segment is started.
    broken: bool,
    faults: Faults,
}

impl Journal {
    /// Opens the journal folder for writing; records are numbered from `next_seq`. The folder
    /// must hold no segment: [`replay`](super::replay) deletes them when the store opens.
    pub fn open(dir: &Path, next_seq: u64, faults: Faults) -> Result<Journal, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, "creating", e))?;
        if let Some(left) = segments(dir)?.first() {
            return Err(StoreError::Write(format!(
                "the journal segment {} was not replayed into the store",
                left.display()
            )));
        }
        // The folder's own name in the data directory is durable before any record is.
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        let (file, path) = create_segment(dir, next_seq)?;
        Ok(Journal {
            dir: dir.to_owned(),
            file,
            path,
            next_seq,
            bytes: 0,
            pending: Vec::new(),
            buf: Vec::new(),
            broken: false,
            faults,
        })
    }

    /// A write or sync failed: no records until a new segment is started.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Appends one record (not yet synced); returns its sequence number.
    pub fn append(
        &mut self,
        tables: &[(&'static str, Vec<RecordBatch>)],
    ) -> Result<u64, StoreError> {
        if self.broken {
            return Err(StoreError::Write(format!(
                "the journal segment {} failed earlier and takes no more records",
                self.path.display()
            )));
        }
        let seq = self.next_seq;
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 8]);
        encode(seq, tables, &mut self.buf)?;
        let payload_len = (self.buf.len() - 8) as u32;
        self.buf[0..4].copy_from_slice(&payload_len.to_le_bytes());
        let crc = checksum(&self.buf[0..4], &self.buf[8..]);
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        if let Err(e) = self.file.write_all(&self.buf) {
            // A partial record would hide every later one from the replay: cut it off, and if
            // that fails too, take no more records here.
            if self.file.set_len(self.bytes).is_err() {
                self.broken = true;
            }
            return Err(io_error(&self.path, "writing", e));
        }
        if self.bytes == 0 {
            self.pending.push(self.path.clone());
        }
        self.bytes += self.buf.len() as u64;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        // After a failed fsync the kernel may have dropped the dirty pages and report the next
        // one as done: a later record could then sit behind a damaged one.
        let synced = self.faults.sync().and_then(|()| self.file.sync_data());
        synced.map_err(|e| {
            self.broken = true;
            io_error(&self.path, "syncing", e)
        })
    }

    /// Hands over the segments holding records not handed over before, oldest first, and goes
    /// on in a new segment: the caller deletes them once DuckDB holds their records. If the new
    /// segment cannot be made, the journal is broken (it takes no records, so the one being
    /// written is handed over too) until a later call makes one.
    pub fn take_segments(&mut self) -> Vec<PathBuf> {
        if self.bytes > 0 || self.broken {
            // A broken segment may hold a partial record only: deleted with the others.
            if !self.pending.contains(&self.path) {
                self.pending.push(self.path.clone());
            }
            match create_segment(&self.dir, self.next_seq) {
                Ok((file, path)) => {
                    self.file = file;
                    self.path = path;
                    self.bytes = 0;
                    self.broken = false;
                }
                Err(e) => {
                    tracing::error!(error = %e, "starting a new journal segment failed");
                    self.broken = true;
                }
            }
        }
        std::mem::take(&mut self.pending)
    }

    /// Segments taken whose records could not be committed: they are older than any pending.
    pub fn give_back(&mut self, mut segments: Vec<PathBuf>) {
        segments.append(&mut self.pending);
        self.pending = segments;
    }
}

/// Creates a new segment whose first record will be `seq` and makes its name durable. A broken
/// segment that took no record has that name already: the new one is `<seq>.<n>.journal`.
fn create_segment(dir: &Path, seq: u64) -> Result<(File, PathBuf), StoreError> {
    let mut n = 0u32;
    loop {
        let name = match n {
            0 => format!("{seq:020}.journal"),
            n => format!("{seq:020}.{n}.journal"),
        };
        let path = dir.join(name);
        match OpenOptions::new().create_new(true).append(true).open(&path) {
            Ok(file) => {
                sync_dir(dir)?;
                return Ok((file, path));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) => return Err(io_error(&path, "creating", e)),
        }
    }
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, "syncing", e))
}

/// CRC-32 of a record's length field and payload.
fn checksum(len: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len);
    h.update(payload);
    h.finalize()
}

/// Bytes of the smallest payload: a record number and a table count.
const MIN_PAYLOAD: usize = 9;

pub(super) fn io_error(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    StoreError::Write(format!("{what} the journal {}: {e}", path.display()))
}

fn encode(
    seq: u64,
    tables: &[(&'static str, Vec<RecordBatch>)],
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let ipc = |e| StoreError::Write(format!("encoding a journal record: {e}"));
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(tables.len() as u8);
    for (name, batches) in tables {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        let Some(first) = batches.first() else {
            out.extend_from_slice(&0u32.to_le_bytes());
            continue;
        };
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let mut writer = StreamWriter::try_new(&mut *out, &first.schema()).map_err(ipc)?;
        for batch in batches {
            writer.write(batch).map_err(ipc)?;
        }
        writer.finish().map_err(ipc)?;
        drop(writer);
        let len = (out.len() - len_at - 4) as u32;
        out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    }
    Ok(())
}

/// The newest journal record DuckDB holds.
pub fn applied_seq(conn: &Connection) -> duckdb::Result<u64> {
    conn.query_row(
        "SELECT coalesce(max(applied_seq), 0) FROM store_journal",
        [],
        |r| r.get(0),
    )
}

/// Appends `tables` and records `seq` as the newest record applied, in one transaction (rolled
/// back on failure).
pub fn commit_applied(
    conn: &Connection,
    tables: Tables,
    seq: u64,
    faults: &Faults,
) -> duckdb::Result<()> {
    columns::append_in_one_transaction(conn, tables, |conn| {
        faults.commit(conn)?;
        conn.execute("UPDATE store_journal SET applied_seq = ?", [seq])
            .map(|_| ())
    })
}

/// Gathers the batches of many records by table, in [`TABLE_ORDER`].
pub fn by_table<'a>(records: impl Iterator<Item = &'a Tables>) -> Tables {
    let mut out: Vec<(&'static str, Vec<RecordBatch>)> =
        TABLE_ORDER.iter().map(|t| (*t, Vec::new())).collect();
    for tables in records {
        for (name, batches) in tables {
            if let Some(slot) = out.iter_mut().find(|(t, _)| t == name) {
                slot.1.extend(batches.iter().cloned());
            }
        }
    }
    out.retain(|(_, b)| !b.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use duckdb::arrow::array::{ArrayRef, Int64Array, StringArray};

    use super::*;

    pub(super) fn batch(values: &[i64], names: &[Option<&str>]) -> RecordBatch {
        // One schema for every batch, as each table's columns have.
        RecordBatch::try_from_iter_with_nullable([
            (
                "n",
                Arc::new(Int64Array::from(values.to_vec())) as ArrayRef,
                false,
            ),
            (
                "s",
                Arc::new(StringArray::from(names.to_vec())) as ArrayRef,
                true,
            ),
        ])
        .expect("batch")
    }

    pub(super) fn temp_file(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "millwatch-journal-{name}-{}-{}",
            std::process::id(),
            crate::pipeline::now_ns()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        path_in(&dir)
    }

    #[test]
    fn records_read_back_as_written_and_a_bad_last_record_is_a_torn_tail() {
        let path = temp_file("roundtrip");
        let mut j = Journal::open(&path, 7, Faults::default()).expect("opens");
        let a = batch(&[1, 2], &[Some("x"), None]);
        let b = batch(&[3], &[Some("y")]);
        assert_eq!(
            j.append(&[("logs", vec![a.clone(), b.clone()]), ("spans", vec![])])
                .expect("appends"),
            7
        );
        assert_eq!(
            j.append(&[("metric_points", vec![b.clone()])])
                .expect("appends"),
            8
        );
        j.sync().expect("syncs");
        let read_back = read(&path).expect("reads");
        assert_eq!(read_back.torn_bytes, 0);
        let [first, second] = &read_back.records[..] else {
            panic!("{read_back:?}");
        };
        assert_eq!((first.seq, second.seq), (7, 8));
        assert_eq!(first.tables[0].0, "logs");
        assert_eq!(first.tables[0].1, vec![a, b.clone()]);
        assert_eq!(first.tables[1], ("spans", vec![]));
        assert_eq!(second.tables, vec![("metric_points", vec![b])]);

        // One flipped byte in the second record's payload: the first still reads.
        let segment = segments(&path).expect("lists").remove(0);
        assert!(segment.ends_with("00000000000000000007.journal"));
        let mut bytes = std::fs::read(&segment).expect("file");
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        std::fs::write(&segment, &bytes).expect("write");
        let damaged = read(&path).expect("reads");
        assert_eq!(damaged.records.len(), 1);
        assert!(damaged.torn_bytes > 0);
        let tail = Span::Damaged {
            at: bytes.len() as u64 - damaged.torn_bytes,
            bytes: damaged.torn_bytes,
        };
        assert_eq!(damaged.segments[0].spans, vec![Span::Record(7), tail]);

        // A crash can leave the file longer than what was written, zero-filled: a torn tail,
        // not an unreadable record.
        let first_only = bytes.len() - damaged.torn_bytes as usize;
        let mut zeros = bytes[..first_only].to_vec();
        zeros.extend_from_slice(&[0u8; 64]);
        std::fs::write(&segment, &zeros).expect("write");
        let padded = read(&path).expect("a zero-filled tail reads as torn");
        assert_eq!(padded.records.len(), 1);
        assert_eq!(padded.torn_bytes, 64);

        // A journal that still holds segments is not written over.
        assert!(Journal::open(&path, 9, Faults::default()).is_err());
    }

    #[test]
    fn taken_segments_hold_every_record_before_and_later_records_go_to_a_new_one() {
        let path = temp_file("segments");
        let mut j = Journal::open(&path, 1, Faults::default()).expect("opens");
        let a = batch(&[1], &[None]);
        assert!(
            j.take_segments().is_empty(),
            "nothing written, nothing to hand over"
        );
        j.append(&[("logs", vec![a.clone()])]).expect("appends");
        j.append(&[("logs", vec![a.clone()])]).expect("appends");
        let first = j.take_segments();
        assert_eq!(first.len(), 1);
        j.append(&[("logs", vec![a.clone()])]).expect("appends");
        j.sync().expect("syncs");
        assert_eq!(segments(&path).expect("lists").len(), 2);
        assert_eq!(
            read(&path)
                .expect("reads")
                .records
                .iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>(),
            vec![1, 2, 3]
        );

        // The first commit failed: its segment is handed over again with the newer one.
        j.give_back(first.clone());
        let both = j.take_segments();
        assert_eq!(both.len(), 2);
        assert_eq!(both[0], first[0]);
        for s in &both {
            remove_segment(s).expect("deletes");
        }
        assert_eq!(bytes_on_disk(&path).expect("sizes"), 0);
        j.append(&[("logs", vec![a])]).expect("appends");
        let left = read(&path).expect("reads");
        assert_eq!(
            left.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![4]
        );
    }

    #[test]
    fn by_table_gathers_batches_in_table_order() {
        let a = batch(&[1], &[None]);
        let b = batch(&[2], &[None]);
        let r1: Tables = vec![("logs", vec![a.clone()]), ("resources", vec![a.clone()])];
        let r2: Tables = vec![("logs", vec![b.clone()])];
        let all = by_table([&r1, &r2].into_iter());
        assert_eq!(
            all,
            vec![("resources", vec![a.clone()]), ("logs", vec![a, b])]
        );
    }
}
