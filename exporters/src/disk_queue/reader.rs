//! Reading one segment file record by record, past damaged bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::frame::{self, Record};
use super::{Position, segment_path};

/// What a [`SegmentReader`] found next.
pub(super) enum Item {
    Record(Record),
    /// Bytes that hold no whole record, up to the next whole record or the segment's end.
    Damage(u64),
}

/// Reads one segment's records from an offset up to the segment's size, past damage.
pub(super) struct SegmentReader {
    file: BufReader<File>,
    segment: u64,
    at: u64,
    size: u64,
}

impl SegmentReader {
    pub(super) fn open(dir: &Path, segment: u64, at: u64, size: u64) -> io::Result<Self> {
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
    pub(super) fn next(
        &mut self,
        known: &BTreeMap<Position, u64>,
    ) -> io::Result<Option<(u64, Item)>> {
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
