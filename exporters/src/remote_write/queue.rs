//! The persistent queue between translation and sending: append-only segment files of
//! checksummed records and a cursor file naming the first record not yet accepted by the
//! receiver. What `append` accepted survives a restart; when the configured size is reached,
//! `append` refuses new records instead of dropping old ones.
//!
//! Record layout: `len: u32 LE | samples: u32 LE | crc32(payload): u32 LE | payload`.
//! Segments are `<sequence>.seg` (20 digits); the cursor is `cursor` (`<segment> <offset>`),
//! replaced atomically.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

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

const HEADER: u64 = 12;
const CURSOR: &str = "cursor";

/// A place in the queue: segment number and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    segment: u64,
    offset: u64,
}

/// One queued record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// What was appended.
    pub payload: Vec<u8>,
    /// The sample count given at append.
    pub samples: u32,
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
    /// Size of every segment file on disk.
    segments: BTreeMap<u64, u64>,
    write: File,
    write_segment: u64,
    read: Position,
    pending_records: u64,
    pending_samples: u64,
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.seg"))
}

/// Reads the record header and payload at the file's current position; `None` at a clean end
/// or at a torn or corrupt record.
fn read_record(f: &mut impl Read) -> Option<Record> {
    let mut header = [0u8; HEADER as usize];
    f.read_exact(&mut header).ok()?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let samples = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    let mut payload = vec![0u8; len as usize];
    f.read_exact(&mut payload).ok()?;
    (crc32fast::hash(&payload) == crc).then_some(Record { payload, samples })
}

impl DiskQueue {
    /// Opens (or creates) the queue in `dir`. A record torn by a crash at the end of the last
    /// segment is cut off; everything before it is kept.
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
        for entry in fs::read_dir(dir).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let name = entry.file_name();
            let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if n < read.segment {
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
        let mut pending_records = 0;
        let mut pending_samples = 0;
        for (&n, size) in segments.iter_mut() {
            let mut f = File::open(segment_path(dir, n)).map_err(io_err)?;
            let mut pos = if n == read.segment { read.offset } else { 0 };
            f.seek(SeekFrom::Start(pos)).map_err(io_err)?;
            while pos < *size {
                match read_record(&mut f) {
                    Some(r) => {
                        pos += HEADER + r.payload.len() as u64;
                        pending_records += 1;
                        pending_samples += u64::from(r.samples);
                    }
                    None => break,
                }
            }
            if pos < *size {
                if n == last {
                    tracing::warn!(
                        segment = n,
                        offset = pos,
                        "remote-write queue: cutting off a torn record"
                    );
                    let f = OpenOptions::new()
                        .write(true)
                        .open(segment_path(dir, n))
                        .map_err(io_err)?;
                    f.set_len(pos).map_err(io_err)?;
                    f.sync_all().map_err(io_err)?;
                    *size = pos;
                } else {
                    tracing::error!(
                        segment = n,
                        offset = pos,
                        "remote-write queue: corrupt segment, records after this offset are lost"
                    );
                }
            }
        }
        let write = OpenOptions::new()
            .append(true)
            .open(segment_path(dir, last))
            .map_err(io_err)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(64 << 10, 16 << 20),
            segments,
            write,
            write_segment: last,
            read,
            pending_records,
            pending_samples,
        })
    }

    fn io_err(&self, source: io::Error) -> QueueError {
        QueueError::Io {
            dir: self.dir.clone(),
            source,
        }
    }

    /// Bytes on disk.
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

    /// Appends all `records` (payload, sample count) durably, or none of them when they do not
    /// fit in the size limit.
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
        let mut buf = Vec::new();
        for (payload, samples) in records {
            let len = HEADER + payload.len() as u64;
            let current =
                self.segments.get(&self.write_segment).copied().unwrap_or(0) + buf.len() as u64;
            if current > 0 && current + len > self.segment_bytes {
                self.flush(&mut buf)?;
                self.roll()?;
            }
            let Ok(len32) = u32::try_from(payload.len()) else {
                return Err(self.io_err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "record over 4 GiB",
                )));
            };
            buf.extend_from_slice(&len32.to_le_bytes());
            buf.extend_from_slice(&samples.to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            buf.extend_from_slice(payload);
        }
        self.flush(&mut buf)?;
        self.write.sync_data().map_err(|e| self.io_err(e))?;
        self.pending_records += records.len() as u64;
        self.pending_samples += records.iter().map(|(_, s)| u64::from(*s)).sum::<u64>();
        Ok(())
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
        self.write.sync_data().map_err(|e| self.io_err(e))?;
        let next = self.write_segment + 1;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(&self.dir, next))
            .map_err(|e| self.io_err(e))?;
        self.write = file;
        self.write_segment = next;
        self.segments.insert(next, 0);
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<()> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io_err(e))
    }

    /// Reads records from the head without removing them: at least one (when any is queued),
    /// then more while their samples add up to at most `max_samples`.
    pub fn peek(&self, max_samples: u64) -> Result<Batch> {
        let mut records = Vec::new();
        let mut samples = 0u64;
        let mut pos = self.read;
        'segments: for (&n, &size) in self.segments.range(self.read.segment..) {
            if n > pos.segment {
                pos = Position {
                    segment: n,
                    offset: 0,
                };
            }
            if pos.offset >= size {
                continue;
            }
            let mut f = File::open(segment_path(&self.dir, n)).map_err(|e| self.io_err(e))?;
            f.seek(SeekFrom::Start(pos.offset))
                .map_err(|e| self.io_err(e))?;
            let mut reader = io::BufReader::new(f);
            while pos.offset < size {
                let Some(r) = read_record(&mut reader) else {
                    // Corrupt in the middle of an older segment: skip to the next one.
                    pos.offset = size;
                    break;
                };
                if !records.is_empty() && samples + u64::from(r.samples) > max_samples {
                    break 'segments;
                }
                samples += u64::from(r.samples);
                pos.offset += HEADER + r.payload.len() as u64;
                records.push(r);
            }
        }
        Ok(Batch { records, end: pos })
    }

    /// Marks everything before `end` (from [`peek`](Self::peek)) as delivered: persists the
    /// cursor and deletes segments that are no longer needed.
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
            fs::remove_file(segment_path(&self.dir, n)).map_err(|e| self.io_err(e))?;
            self.segments.remove(&n);
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
mod tests {
    use super::*;

    fn rec(i: u32, size: usize) -> (Vec<u8>, u32) {
        let mut p = i.to_le_bytes().to_vec();
        p.resize(size.max(4), 7);
        (p, i)
    }

    #[test]
    fn records_survive_reopen_and_commit_moves_the_head() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut q = DiskQueue::open(dir.path(), 1 << 20).expect("open");
            q.append(&[rec(1, 10), rec(2, 10)]).expect("append");
            q.append(&[rec(3, 10)]).expect("append");
            let b = q.peek(3).expect("peek");
            assert_eq!(
                b.records.iter().map(|r| r.samples).collect::<Vec<_>>(),
                [1, 2]
            );
            q.commit(&b).expect("commit");
            assert_eq!(q.pending_samples(), 3);
        }
        let q = DiskQueue::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(q.pending_records(), 1);
        let b = q.peek(100).expect("peek");
        assert_eq!(
            b.records,
            vec![Record {
                payload: rec(3, 10).0,
                samples: 3
            }]
        );
    }

    #[test]
    fn full_queue_refuses_and_keeps_what_it_has() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut q = DiskQueue::open(dir.path(), 1000).expect("open");
        q.append(&[rec(1, 400), rec(2, 400)]).expect("fits");
        let err = q.append(&[rec(3, 400)]).expect_err("full");
        assert!(matches!(err, QueueError::Full { max: 1000, .. }), "{err}");
        assert!(err.to_string().contains("queue full"));
        assert_eq!(q.pending_records(), 2);
    }

    #[test]
    fn segments_roll_and_are_deleted_after_delivery() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut q = DiskQueue::open(dir.path(), 8 << 20).expect("open");
        for i in 0..40 {
            q.append(&[rec(i, 64 << 10)]).expect("append");
        }
        let count = || {
            fs::read_dir(dir.path())
                .map(|d| {
                    d.filter(|e| {
                        e.as_ref()
                            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "seg"))
                    })
                    .count()
                })
                .unwrap_or(0)
        };
        assert!(count() > 2, "segments rolled");
        let mut seen = Vec::new();
        loop {
            let b = q.peek(50).expect("peek");
            if b.records.is_empty() {
                break;
            }
            seen.extend(b.records.iter().map(|r| r.samples));
            q.commit(&b).expect("commit");
        }
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
        assert_eq!(count(), 1);
        assert_eq!(q.pending_records(), 0);
    }

    #[test]
    fn a_torn_tail_is_cut_off_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut q = DiskQueue::open(dir.path(), 1 << 20).expect("open");
            q.append(&[rec(1, 50), rec(2, 50)]).expect("append");
        }
        let seg = segment_path(dir.path(), 1);
        let len = fs::metadata(&seg).expect("meta").len();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .and_then(|f| f.set_len(len - 10))
            .expect("tear");
        let mut q = DiskQueue::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(q.pending_records(), 1);
        q.append(&[rec(3, 50)]).expect("append after repair");
        let b = q.peek(u64::MAX).expect("peek");
        assert_eq!(
            b.records.iter().map(|r| r.samples).collect::<Vec<_>>(),
            [1, 3]
        );
    }
}
