//! The persistent queue every forwarding exporter (Prometheus remote write, OTLP) keeps between
//! accepting data and sending it: append-only segment files of checksummed records (see
//! [`frame`]) and a cursor file naming the first record not yet accepted by the receiver.
//!
//! - **Durability.** `append` writes all records of a call and fsyncs the segment before it
//!   returns (the fsync policy: one `fdatasync` per append, so what a client was told is
//!   accepted survives SIGKILL and power loss); a new segment and the cursor are synced with
//!   their directory.
//! - **Bounded by bytes.** When the configured size is reached, the [`FullPolicy`] decides:
//!   `refuse` the new records (the caller answers its sender with a retryable status;
//!   nothing queued is lost) or `drop_oldest` whole segments from the head (counted in
//!   [`dropped`](DiskQueue::dropped) and logged) until the new records fit.
//! - **Damage.** Segments are `<sequence>.seg` (20 digits); the cursor is `cursor`
//!   (`<segment> <offset>`), replaced atomically. A failed append is cut off again, so no record
//!   lands after a partial one. Damaged bytes (a torn write, a disk fault) do not hide the
//!   records after them: readers resynchronise at the next whole record, count the skipped
//!   bytes ([`skipped_bytes`](DiskQueue::skipped_bytes)) and log where they were, once;
//!   opening never fails because of damage. A segment that held damage is kept as
//!   `<sequence>.seg.damaged` when its records are delivered (the newest [`KEPT_DAMAGED`] such
//!   files), as evidence of what was lost.
//! - **Memory.** Opening reads the queue once to count its records, a segment at a time; only
//!   `peek` holds records in memory, as many as one batch.

mod frame;
mod reader;
mod sender;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use frame::HEADER;
pub use frame::Record;
use reader::{Item, SegmentReader};
pub use sender::SenderTask;

/// Errors of the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue holds `used` of `max` bytes and cannot take `needed` more.
    #[error("{label} queue full: {used} of {max} bytes used, {needed} more needed")]
    Full {
        /// Whose queue: "remote-write", "OTLP exporter `central`".
        label: String,
        /// Bytes on disk now.
        used: u64,
        /// The configured limit.
        max: u64,
        /// Bytes the refused records need.
        needed: u64,
    },
    /// File system trouble.
    #[error("disk queue in {dir}: {source}")]
    Io {
        /// The queue directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

type Result<T> = std::result::Result<T, QueueError>;

const CURSOR: &str = "cursor";
/// Delivered segments that held damage, kept for inspection; older ones are deleted.
pub const KEPT_DAMAGED: usize = 4;

/// A place in the queue: segment number and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    segment: u64,
    offset: u64,
}

/// Records read from the head of the queue, to be committed once sent.
#[derive(Debug)]
pub struct Batch {
    /// The records, oldest first.
    pub records: Vec<Record>,
    /// Where the queue continues after them.
    pub end: Position,
    /// Where each record starts: a commit counts only those `drop_oldest` has not dropped.
    starts: Vec<Position>,
}

/// What the queue does when an append does not fit.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FullPolicy {
    /// Refuse the new records; the caller answers its sender with a retryable status
    /// (back-pressure). Nothing queued is lost.
    #[default]
    Refuse,
    /// Delete the oldest segments (whole files, from the head) until the new records fit; what
    /// they held is counted as dropped and logged.
    DropOldest,
}

/// How a queue is opened.
#[derive(Debug, Clone)]
pub struct Options {
    /// Whose queue, for messages and logs: "remote-write", "OTLP exporter `central`".
    pub label: String,
    /// Most bytes of segment files on disk.
    pub max_bytes: u64,
    /// What to do when an append does not fit.
    pub full: FullPolicy,
}

impl Options {
    /// A queue of at most `max_bytes` that refuses what does not fit.
    pub fn refusing(label: &str, max_bytes: u64) -> Self {
        Options {
            label: label.to_string(),
            max_bytes,
            full: FullPolicy::Refuse,
        }
    }
}

/// The queue. Not thread-safe by itself: the exporter holds it under a mutex and calls it
/// from blocking threads (every append is fsynced).
#[derive(Debug)]
pub struct DiskQueue {
    dir: PathBuf,
    label: String,
    full: FullPolicy,
    max_bytes: u64,
    segment_bytes: u64,
    /// Size of every segment file on disk, as far as this queue wrote or read it.
    segments: BTreeMap<u64, u64>,
    write: File,
    write_segment: u64,
    /// A failed append could not be cut off again, or a sync failed: the write segment may end
    /// in a partial record, so the next append starts a new segment.
    broken: bool,
    read: Position,
    pending_records: u64,
    pending_items: u64,
    /// Damaged byte ranges in the segments still held, by where they start, with their length:
    /// each is counted and logged when first found, then skipped.
    damage: BTreeMap<Position, u64>,
    /// Bytes skipped as damaged since the queue was opened.
    skipped_bytes: u64,
    /// Delivered segments kept because they held damage (`<n>.seg.damaged`).
    kept_damaged: BTreeSet<u64>,
    /// Records and items deleted by `drop_oldest` since the queue was opened.
    dropped_records: u64,
    dropped_items: u64,
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.seg"))
}

fn damaged_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.seg.damaged"))
}

impl DiskQueue {
    /// Opens (or creates) the queue in `dir` and reads what it holds. Damaged bytes are skipped
    /// (counted and logged) and the records after them kept; when the last segment holds
    /// damage (a record torn by a crash, typically), new records go to a new segment.
    pub fn open(dir: &Path, options: Options) -> Result<Self> {
        let max_bytes = options.max_bytes;
        let io_err = |source| QueueError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(io_err)?;
        let read = match fs::read_to_string(dir.join(CURSOR)) {
            Ok(s) => {
                let mut it = s.split_whitespace().map(str::parse::<u64>);
                match (it.next(), it.next()) {
                    (Some(Ok(segment)), Some(Ok(offset))) => Position { segment, offset },
                    _ => {
                        return Err(io_err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("unreadable cursor file: {s:?}"),
                        )));
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Position {
                segment: 1,
                offset: 0,
            },
            Err(e) => return Err(io_err(e)),
        };
        let mut segments = BTreeMap::new();
        let mut kept_damaged = BTreeSet::new();
        for entry in fs::read_dir(dir).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = name
                .strip_suffix(".seg.damaged")
                .and_then(|n| n.parse::<u64>().ok())
            {
                kept_damaged.insert(n);
                continue;
            }
            let Some(n) = name
                .strip_suffix(".seg")
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if n < read.segment {
                // Delivered; a crash came between moving the cursor and deleting it.
                fs::remove_file(entry.path()).map_err(io_err)?;
                continue;
            }
            segments.insert(n, entry.metadata().map_err(io_err)?.len());
        }
        if segments.is_empty() {
            File::create(segment_path(dir, read.segment)).map_err(io_err)?;
            segments.insert(read.segment, 0);
        }
        let last = segments.keys().next_back().copied().unwrap_or(read.segment);
        let write = OpenOptions::new()
            .append(true)
            .open(segment_path(dir, last))
            .map_err(io_err)?;
        let mut queue = Self {
            dir: dir.to_path_buf(),
            label: options.label,
            full: options.full,
            max_bytes,
            // Eight segments or more: the delivered head is freed a segment at a time.
            segment_bytes: (max_bytes / 8).clamp(4 << 10, 16 << 20),
            segments,
            write,
            write_segment: last,
            broken: false,
            read,
            pending_records: 0,
            pending_items: 0,
            damage: BTreeMap::new(),
            skipped_bytes: 0,
            kept_damaged,
            dropped_records: 0,
            dropped_items: 0,
        };
        queue.count_pending()?;
        if queue.damage.keys().any(|p| p.segment == last) {
            // Appending after damage would work, but a fresh segment keeps the damaged one
            // unchanged as evidence.
            queue.roll()?;
        }
        Ok(queue)
    }

    /// Reads every record from the cursor on: counts them and notes the damage between them.
    fn count_pending(&mut self) -> Result<()> {
        let segments: Vec<(u64, u64)> = self
            .segments
            .range(self.read.segment..)
            .map(|(&n, &size)| (n, size))
            .collect();
        for (n, size) in segments {
            let from = if n == self.read.segment {
                self.read.offset
            } else {
                0
            };
            let mut reader =
                SegmentReader::open(&self.dir, n, from, size).map_err(|e| self.io_err(e))?;
            while let Some((at, item)) = reader.next(&self.damage).map_err(|e| self.io_err(e))? {
                match item {
                    Item::Record(r) => {
                        self.pending_records += 1;
                        self.pending_items += u64::from(r.items);
                    }
                    Item::Damage(len) => self.note_damage(n, at, len),
                }
            }
        }
        Ok(())
    }

    /// Counts and logs damage the first time it is found.
    fn note_damage(&mut self, segment: u64, offset: u64, len: u64) {
        let at = Position { segment, offset };
        if self.damage.contains_key(&at) {
            return;
        }
        self.damage.insert(at, len);
        self.skipped_bytes += len;
        let path = segment_path(&self.dir, segment);
        let label = &self.label;
        let to_end = offset + len >= self.segments.get(&segment).copied().unwrap_or(0);
        if to_end && segment == self.write_segment {
            tracing::warn!(
                segment = %path.display(),
                offset,
                bytes = len,
                "{label} queue: skipping a torn record at the end of the newest segment \
                 (a write a crash interrupted); the segment is kept as .seg.damaged once delivered"
            );
        } else {
            tracing::error!(
                segment = %path.display(),
                offset,
                bytes = len,
                "{label} queue: skipping damaged bytes, whatever records they held are lost; \
                 the records after them are kept and sent; the segment is kept as .seg.damaged \
                 once delivered"
            );
        }
    }

    fn io_err(&self, source: io::Error) -> QueueError {
        QueueError::Io {
            dir: self.dir.clone(),
            source,
        }
    }

    /// Bytes on disk in segments not yet delivered (kept damaged segments do not count).
    pub fn used_bytes(&self) -> u64 {
        self.segments.values().sum()
    }

    /// Bytes of segment files from the cursor on: what is still to be delivered (damaged bytes
    /// not yet passed included). 0 once everything is delivered, while
    /// [`used_bytes`](Self::used_bytes) still counts the delivered part of the segment being
    /// written.
    pub fn pending_bytes(&self) -> u64 {
        self.used_bytes()
            - self
                .segments
                .range(..=self.read.segment)
                .map(|(&n, &size)| {
                    if n == self.read.segment {
                        self.read.offset.min(size)
                    } else {
                        size
                    }
                })
                .sum::<u64>()
    }

    /// The configured limit.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Records appended and not yet committed.
    pub fn pending_records(&self) -> u64 {
        self.pending_records
    }

    /// Items appended and not yet committed.
    pub fn pending_items(&self) -> u64 {
        self.pending_items
    }

    /// Bytes skipped as damaged since the queue was opened (whatever they held is lost).
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped_bytes
    }

    /// Records and items `drop_oldest` deleted since the queue was opened.
    pub fn dropped(&self) -> (u64, u64) {
        (self.dropped_records, self.dropped_items)
    }

    /// What the queue does when full.
    pub fn full_policy(&self) -> FullPolicy {
        self.full
    }

    /// Appends all `records` (payload, item count) durably (fsynced before returning), or none
    /// of them when they do not fit in the size limit (policy `refuse`, or more than the whole
    /// queue) or the disk fails. With `drop_oldest`, the oldest segments make room first.
    pub fn append(&mut self, records: &[(Vec<u8>, u32)]) -> Result<()> {
        let needed: u64 = records.iter().map(|(p, _)| HEADER + p.len() as u64).sum();
        let full = |q: &Self| QueueError::Full {
            label: q.label.clone(),
            used: q.used_bytes(),
            max: q.max_bytes,
            needed,
        };
        if self.used_bytes() + needed > self.max_bytes {
            self.reclaim_delivered()?;
        }
        if self.used_bytes() + needed > self.max_bytes {
            if self.full == FullPolicy::Refuse || needed > self.max_bytes {
                return Err(full(self));
            }
            self.drop_oldest(needed)?;
        }
        if self.broken {
            self.roll()?;
        }
        let start = (
            self.write_segment,
            self.segments.get(&self.write_segment).copied().unwrap_or(0),
        );
        if let Err(e) = self.write_records(records) {
            self.undo(start);
            return Err(e);
        }
        self.pending_records += records.len() as u64;
        self.pending_items += records.iter().map(|(_, s)| u64::from(*s)).sum::<u64>();
        Ok(())
    }

    fn write_records(&mut self, records: &[(Vec<u8>, u32)]) -> Result<()> {
        let mut buf = Vec::new();
        for (payload, items) in records {
            let len = HEADER + payload.len() as u64;
            let current =
                self.segments.get(&self.write_segment).copied().unwrap_or(0) + buf.len() as u64;
            if current > 0 && current + len > self.segment_bytes {
                self.flush(&mut buf)?;
                self.roll()?;
            }
            frame::encode(payload, *items, &mut buf).map_err(|e| self.io_err(e))?;
        }
        self.flush(&mut buf)?;
        self.write.sync_data().map_err(|e| {
            // After a failed fsync the kernel may have dropped pages and report the next sync
            // as done: take no more records in this segment.
            self.broken = true;
            self.io_err(e)
        })
    }

    /// Cuts off what a failed append wrote, from `start` (write segment, its size before) on, so
    /// that no record the caller was told failed is sent and no later record lands after a
    /// partial one. If that fails too, the next append starts a new segment, and the bytes left
    /// are skipped as damage when the queue is next opened.
    fn undo(&mut self, (segment, size): (u64, u64)) {
        let touched: Vec<u64> = self.segments.range(segment..).map(|(&n, _)| n).collect();
        for n in touched {
            let keep = if n == segment { size } else { 0 };
            let cut = OpenOptions::new()
                .write(true)
                .open(segment_path(&self.dir, n))
                .and_then(|f| {
                    f.set_len(keep)?;
                    f.sync_data()
                });
            if let Err(e) = cut {
                tracing::error!(
                    segment = %segment_path(&self.dir, n).display(),
                    error = %e,
                    label = %self.label,
                    "disk queue: cannot cut off a failed append; new records go to a new segment"
                );
                self.broken = true;
            }
            self.segments.insert(n, keep);
        }
    }

    fn flush(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        self.write.write_all(buf).map_err(|e| self.io_err(e))?;
        *self.segments.entry(self.write_segment).or_default() += buf.len() as u64;
        buf.clear();
        Ok(())
    }

    fn roll(&mut self) -> Result<()> {
        if !self.broken {
            self.write.sync_data().map_err(|e| self.io_err(e))?;
        }
        let next = self.write_segment + 1;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(&self.dir, next))
            .map_err(|e| self.io_err(e))?;
        self.write = file;
        self.write_segment = next;
        self.segments.insert(next, 0);
        self.broken = false;
        self.sync_dir()
    }

    /// When everything is delivered, the segment being written still holds the delivered
    /// records and counts against the limit: start a new one and delete it.
    fn reclaim_delivered(&mut self) -> Result<()> {
        let size = self.segments.get(&self.write_segment).copied().unwrap_or(0);
        if self.read.segment != self.write_segment || self.read.offset < size || size == 0 {
            return Ok(());
        }
        self.roll()?;
        self.advance_to(Position {
            segment: self.write_segment,
            offset: 0,
        })
    }

    /// Deletes whole segments from the head until `needed` more bytes fit (`needed` is at most
    /// the limit), counting and logging the records they held.
    fn drop_oldest(&mut self, needed: u64) -> Result<()> {
        while self.used_bytes() + needed > self.max_bytes {
            let Some((&head, &size)) = self.segments.first_key_value() else {
                break;
            };
            if head >= self.write_segment {
                // Only the segment being written is left: close it so it can go.
                self.roll()?;
                continue;
            }
            let from = if head == self.read.segment {
                self.read.offset
            } else {
                0
            };
            let (mut records, mut items) = (0u64, 0u64);
            let mut reader =
                SegmentReader::open(&self.dir, head, from, size).map_err(|e| self.io_err(e))?;
            while let Some((at, item)) = reader.next(&self.damage).map_err(|e| self.io_err(e))? {
                match item {
                    Item::Record(r) => {
                        records += 1;
                        items += u64::from(r.items);
                    }
                    Item::Damage(len) => self.note_damage(head, at, len),
                }
            }
            let next = self
                .segments
                .range(head + 1..)
                .next()
                .map_or(head + 1, |(&n, _)| n);
            self.advance_to(Position {
                segment: next,
                offset: 0,
            })?;
            self.pending_records -= records.min(self.pending_records);
            self.pending_items -= items.min(self.pending_items);
            self.dropped_records += records;
            self.dropped_items += items;
            tracing::warn!(
                segment = %segment_path(&self.dir, head).display(),
                records,
                items,
                "{} queue full: dropped its oldest segment (full policy drop_oldest)",
                self.label
            );
        }
        Ok(())
    }

    fn sync_dir(&self) -> Result<()> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io_err(e))
    }

    /// Reads records from the head without removing them: at least one (when any is queued),
    /// then more while their items add up to at most `max_items`. Damage found on the way
    /// is skipped, and counted and logged the first time.
    pub fn peek(&mut self, max_items: u64) -> Result<Batch> {
        let mut records = Vec::new();
        let mut starts = Vec::new();
        let mut items = 0u64;
        let mut pos = self.read;
        let segments: Vec<(u64, u64)> = self
            .segments
            .range(self.read.segment..)
            .map(|(&n, &size)| (n, size))
            .collect();
        'segments: for (n, size) in segments {
            if n > pos.segment {
                pos = Position {
                    segment: n,
                    offset: 0,
                };
            }
            if pos.offset >= size {
                continue;
            }
            let mut reader =
                SegmentReader::open(&self.dir, n, pos.offset, size).map_err(|e| self.io_err(e))?;
            while let Some((at, item)) = reader.next(&self.damage).map_err(|e| self.io_err(e))? {
                match item {
                    Item::Record(r) => {
                        if !records.is_empty() && items + u64::from(r.items) > max_items {
                            break 'segments;
                        }
                        items += u64::from(r.items);
                        pos.offset = at + r.framed_len();
                        starts.push(Position {
                            segment: n,
                            offset: at,
                        });
                        records.push(r);
                    }
                    Item::Damage(len) => {
                        self.note_damage(n, at, len);
                        pos.offset = at + len;
                    }
                }
            }
        }
        Ok(Batch {
            records,
            end: pos,
            starts,
        })
    }

    /// Marks everything before the batch's end (from [`peek`](Self::peek)) as delivered:
    /// persists the cursor and deletes segments that are no longer needed (keeping damaged
    /// ones, renamed). Records `drop_oldest` deleted meanwhile are not counted twice.
    pub fn commit(&mut self, batch: &Batch) -> Result<()> {
        if batch.end <= self.read {
            return Ok(());
        }
        let (mut records, mut items) = (0u64, 0u64);
        for (r, start) in batch.records.iter().zip(&batch.starts) {
            if *start >= self.read {
                records += 1;
                items += u64::from(r.items);
            }
        }
        self.advance_to(batch.end)?;
        self.pending_records -= records.min(self.pending_records);
        self.pending_items -= items.min(self.pending_items);
        Ok(())
    }

    /// Moves the cursor to `end`, persisted, and deletes the segments before it.
    fn advance_to(&mut self, end: Position) -> Result<()> {
        let tmp = self.dir.join("cursor.tmp");
        {
            let mut f = File::create(&tmp).map_err(|e| self.io_err(e))?;
            writeln!(f, "{} {}", end.segment, end.offset).map_err(|e| self.io_err(e))?;
            f.sync_all().map_err(|e| self.io_err(e))?;
        }
        fs::rename(&tmp, self.dir.join(CURSOR)).map_err(|e| self.io_err(e))?;
        let done: Vec<u64> = self
            .segments
            .range(..end.segment)
            .map(|(n, _)| *n)
            .collect();
        for n in done {
            let damaged = self.damage.keys().any(|p| p.segment == n);
            if damaged {
                fs::rename(segment_path(&self.dir, n), damaged_path(&self.dir, n))
                    .map_err(|e| self.io_err(e))?;
                self.damage.retain(|p, _| p.segment != n);
                self.kept_damaged.insert(n);
                tracing::warn!(
                    kept = %damaged_path(&self.dir, n).display(),
                    label = %self.label,
                    "disk queue: a segment that held damaged bytes is delivered and kept for inspection"
                );
            } else {
                fs::remove_file(segment_path(&self.dir, n)).map_err(|e| self.io_err(e))?;
            }
            self.segments.remove(&n);
        }
        while self.kept_damaged.len() > KEPT_DAMAGED {
            let Some(oldest) = self.kept_damaged.pop_first() else {
                break;
            };
            match fs::remove_file(damaged_path(&self.dir, oldest)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io_err(e)),
            }
        }
        self.sync_dir()?;
        self.read = end;
        // A fully read write segment is kept (it is still appended to) but costs nothing more.
        Ok(())
    }
}

#[cfg(test)]
mod tests;
