//! The persistent queue between translation and sending: append-only segment files of
//! checksummed records (see [`frame`]) and a cursor file naming the first record not yet
//! accepted by the receiver. What `append` accepted survives a restart; when the configured
//! size is reached, `append` refuses new records instead of dropping old ones.
//!
//! Segments are `<sequence>.seg` (20 digits); the cursor is `cursor` (`<segment> <offset>`),
//! replaced atomically. A failed append is cut off again, so no record lands after a partial
//! one. Damaged bytes (a torn write, a disk fault) do not hide the records after them: readers
//! resynchronise at the next whole record, count the skipped bytes
//! ([`skipped_bytes`](DiskQueue::skipped_bytes)) and log where they were, once. A segment that
//! held damage is kept as `<sequence>.seg.damaged` when its records are delivered (the newest
//! [`KEPT_DAMAGED`] such files), as evidence of what was lost.

mod frame;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use frame::HEADER;
pub use frame::Record;

/// Errors of the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue holds `used` of `max` bytes and cannot take `needed` more.
    #[error("remote-write queue full: {used} of {max} bytes used, {needed} more needed")]
    Full {
        /// Bytes on disk now.
        used: u64,
        /// The configured limit.
        max: u64,
        /// Bytes the refused records need.
        needed: u64,
    },
    /// File system trouble.
    #[error("remote-write queue in {dir}: {source}")]
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
}

/// The queue. Not thread-safe by itself: the exporter holds it under a mutex and calls it
/// from blocking threads (every append is fsynced).
#[derive(Debug)]
pub struct DiskQueue {
    dir: PathBuf,
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
    pending_samples: u64,
    /// Damaged byte ranges in the segments still held, by where they start, with their length:
    /// each is counted and logged when first found, then skipped.
    damage: BTreeMap<Position, u64>,
    /// Bytes skipped as damaged since the queue was opened.
    skipped_bytes: u64,
    /// Delivered segments kept because they held damage (`<n>.seg.damaged`).
    kept_damaged: BTreeSet<u64>,
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.seg"))
}

fn damaged_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.seg.damaged"))
}

/// What a [`SegmentReader`] found next.
enum Item {
    Record(Record),
    /// Bytes that hold no whole record, up to the next whole record or the segment's end.
    Damage(u64),
}

/// Reads one segment's records from an offset up to the segment's size, past damage.
struct SegmentReader {
    file: BufReader<File>,
    segment: u64,
    at: u64,
    size: u64,
}

impl SegmentReader {
    fn open(dir: &Path, segment: u64, at: u64, size: u64) -> io::Result<Self> {
        let mut file = File::open(segment_path(dir, segment))?;
        file.seek(SeekFrom::Start(at))?;
        Ok(Self {
            file: BufReader::new(file),
            segment,
            at,
            size,
        })
    }

    /// The next record or damaged range and where it starts; `None` at the segment's end.
    /// `known` damage is stepped over without reading it again.
    fn next(&mut self, known: &BTreeMap<Position, u64>) -> io::Result<Option<(u64, Item)>> {
        let start = self.at;
        if start >= self.size {
            return Ok(None);
        }
        let here = Position {
            segment: self.segment,
            offset: start,
        };
        if let Some(&len) = known.get(&here) {
            self.seek(start + len)?;
            return Ok(Some((start, Item::Damage(len))));
        }
        if let Some(record) = frame::read(&mut self.file, self.size - start)? {
            self.at += record.framed_len();
            return Ok(Some((start, Item::Record(record))));
        }
        // Rare: read the rest of the segment (at most a segment's size) and look for the next
        // whole record in it.
        self.file.seek(SeekFrom::Start(start))?;
        let mut rest = Vec::new();
        (&mut self.file)
            .take(self.size - start)
            .read_to_end(&mut rest)?;
        let len = frame::next_whole(&rest).map_or(self.size - start, |i| i as u64);
        self.seek(start + len)?;
        Ok(Some((start, Item::Damage(len))))
    }

    fn seek(&mut self, to: u64) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(to))?;
        self.at = to;
        Ok(())
    }
}

impl DiskQueue {
    /// Opens (or creates) the queue in `dir` and reads what it holds. Damaged bytes are skipped
    /// (counted and logged) and the records after them kept; when the last segment holds
    /// damage (a record torn by a crash, typically), new records go to a new segment.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self> {
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
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(64 << 10, 16 << 20),
            segments,
            write,
            write_segment: last,
            broken: false,
            read,
            pending_records: 0,
            pending_samples: 0,
            damage: BTreeMap::new(),
            skipped_bytes: 0,
            kept_damaged,
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
                        self.pending_samples += u64::from(r.samples);
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
        let to_end = offset + len >= self.segments.get(&segment).copied().unwrap_or(0);
        if to_end && segment == self.write_segment {
            tracing::warn!(
                segment = %path.display(),
                offset,
                bytes = len,
                "remote-write queue: skipping a torn record at the end of the newest segment \
                 (a write a crash interrupted); the segment is kept as .seg.damaged once delivered"
            );
        } else {
            tracing::error!(
                segment = %path.display(),
                offset,
                bytes = len,
                "remote-write queue: skipping damaged bytes, whatever records they held are lost; \
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

    /// The configured limit.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Records appended and not yet committed.
    pub fn pending_records(&self) -> u64 {
        self.pending_records
    }

    /// Samples appended and not yet committed.
    pub fn pending_samples(&self) -> u64 {
        self.pending_samples
    }

    /// Bytes skipped as damaged since the queue was opened (whatever they held is lost).
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped_bytes
    }

    /// Appends all `records` (payload, sample count) durably, or none of them when they do not
    /// fit in the size limit or the disk fails.
    pub fn append(&mut self, records: &[(Vec<u8>, u32)]) -> Result<()> {
        let needed: u64 = records.iter().map(|(p, _)| HEADER + p.len() as u64).sum();
        let used = self.used_bytes();
        if used + needed > self.max_bytes {
            return Err(QueueError::Full {
                used,
                max: self.max_bytes,
                needed,
            });
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
        self.pending_samples += records.iter().map(|(_, s)| u64::from(*s)).sum::<u64>();
        Ok(())
    }

    fn write_records(&mut self, records: &[(Vec<u8>, u32)]) -> Result<()> {
        let mut buf = Vec::new();
        for (payload, samples) in records {
            let len = HEADER + payload.len() as u64;
            let current =
                self.segments.get(&self.write_segment).copied().unwrap_or(0) + buf.len() as u64;
            if current > 0 && current + len > self.segment_bytes {
                self.flush(&mut buf)?;
                self.roll()?;
            }
            frame::encode(payload, *samples, &mut buf).map_err(|e| self.io_err(e))?;
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
                    "remote-write queue: cannot cut off a failed append; new records go to a new segment"
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

    fn sync_dir(&self) -> Result<()> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io_err(e))
    }

    /// Reads records from the head without removing them: at least one (when any is queued),
    /// then more while their samples add up to at most `max_samples`. Damage found on the way
    /// is skipped, and counted and logged the first time.
    pub fn peek(&mut self, max_samples: u64) -> Result<Batch> {
        let mut records = Vec::new();
        let mut samples = 0u64;
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
                        if !records.is_empty() && samples + u64::from(r.samples) > max_samples {
                            break 'segments;
                        }
                        samples += u64::from(r.samples);
                        pos.offset = at + r.framed_len();
                        records.push(r);
                    }
                    Item::Damage(len) => {
                        self.note_damage(n, at, len);
                        pos.offset = at + len;
                    }
                }
            }
        }
        Ok(Batch { records, end: pos })
    }

    /// Marks everything before `end` (from [`peek`](Self::peek)) as delivered: persists the
    /// cursor and deletes segments that are no longer needed (keeping damaged ones, renamed).
    pub fn commit(&mut self, batch: &Batch) -> Result<()> {
        let end = batch.end;
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
                    "remote-write queue: a segment that held damaged bytes is delivered and kept for inspection"
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
        self.pending_records -= (batch.records.len() as u64).min(self.pending_records);
        let samples: u64 = batch.records.iter().map(|r| u64::from(r.samples)).sum();
        self.pending_samples -= samples.min(self.pending_samples);
        // A fully read write segment is kept (it is still appended to) but costs nothing more.
        Ok(())
    }
}

#[cfg(test)]
mod tests;
