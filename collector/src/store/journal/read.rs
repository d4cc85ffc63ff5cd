//! Reading a journal folder back: every whole record of each segment, and the bytes between
//! them that hold none. Past bytes that fail the check the reading resynchronises at the next
//! offset where a whole record checks out, so damage in the middle of a segment hides only the
//! records it hit.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use arrow_ipc::reader::StreamReader;

use super::{MIN_PAYLOAD, TABLE_ORDER, Tables, checksum, io_error, segment_order, segments};
use crate::store::StoreError;

/// One record read back.
#[derive(Debug)]
pub struct Record {
    pub seq: u64,
    pub tables: Tables,
}

/// What [`read`] found in a journal folder.
#[derive(Debug, Default)]
pub struct Contents {
    /// Every whole record, segment by segment, in file order.
    pub records: Vec<Record>,
    /// Bytes after the last whole record of each segment, summed: what a crash leaves of a
    /// record it interrupted (or damage that runs to a segment's end).
    pub torn_bytes: u64,
    /// What each segment holds, oldest first.
    pub segments: Vec<Segment>,
}

/// One segment as read: its whole records and the bytes between them that hold none.
#[derive(Debug)]
pub struct Segment {
    pub path: PathBuf,
    /// The number of its first record, from its name.
    pub first_seq: u64,
    /// In file order.
    pub spans: Vec<Span>,
}

/// A stretch of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// A whole record, by its number.
    Record(u64),
    /// Bytes from byte `at` that hold no whole record. Last in its segment when no whole record
    /// follows them: a torn tail, or damage that runs to the end.
    Damaged { at: u64, bytes: u64 },
}

impl Segment {
    pub fn is_damaged(&self) -> bool {
        self.spans.iter().any(|s| matches!(s, Span::Damaged { .. }))
    }
}

/// Reads every whole record of a journal folder's segments, in order (none if it does not
/// exist). Past bytes that fail the check, the reading goes on at the next whole record.
pub fn read(dir: &Path) -> Result<Contents, StoreError> {
    let mut contents = Contents::default();
    for path in segments(dir)? {
        read_segment(&path, &mut contents)?;
    }
    Ok(contents)
}

/// Adds the whole records and the damaged spans of one segment to `contents`.
fn read_segment(path: &Path, contents: &mut Contents) -> Result<(), StoreError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => f
            .read_to_end(&mut bytes)
            .map_err(|e| io_error(path, "reading", e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(path, "opening", e)),
    };
    let first_seq = segment_order(path).map_or(0, |(seq, _)| seq);
    let mut segment = Segment {
        path: path.to_owned(),
        first_seq,
        spans: Vec::new(),
    };
    // The newest record read; before the first, the one its number follows.
    let mut last_seq = first_seq.saturating_sub(1);
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(len) = whole_record_at(&bytes, at) else {
            let next = resync(&bytes, at, last_seq);
            let end = next.unwrap_or(bytes.len());
            segment.spans.push(Span::Damaged {
                at: at as u64,
                bytes: (end - at) as u64,
            });
            if next.is_none() {
                contents.torn_bytes += (end - at) as u64;
            }
            at = end;
            continue;
        };
        let record = decode(&bytes[at + 8..at + 8 + len]).map_err(|e| {
            StoreError::Write(format!(
                "the journal {} has an unreadable record at byte {at}: {e}",
                path.display()
            ))
        })?;
        last_seq = record.seq;
        segment.spans.push(Span::Record(record.seq));
        contents.records.push(record);
        at += 8 + len;
    }
    contents.segments.push(segment);
    Ok(())
}

/// The payload length of the record at `at`, if it is whole and its checksum checks out.
fn whole_record_at(bytes: &[u8], at: usize) -> Option<usize> {
    let header = bytes.get(at..at.checked_add(8)?)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let payload = bytes.get(at + 8..)?.get(..len)?;
    (len >= MIN_PAYLOAD && checksum(&header[0..4], payload) == crc).then_some(len)
}

/// Bytes of the smallest record: a header and the smallest payload.
const SMALLEST_RECORD: usize = 8 + MIN_PAYLOAD;

/// Where the next whole record starts after damage found at byte `damaged`, the newest record
/// before it being number `after`. A segment's records are numbered one by one and none is
/// shorter than [`SMALLEST_RECORD`], so the next one's number is at most one more than the
/// records the damaged bytes can hold. With its table count and first table's name, that rules
/// out nearly every offset before a checksum is computed: the scan costs about one pass over
/// the damaged bytes.
fn resync(bytes: &[u8], damaged: usize, after: u64) -> Option<usize> {
    let last_start = bytes.len().checked_sub(SMALLEST_RECORD)?;
    (damaged + 1..=last_start).find(|&at| {
        let most = after
            .saturating_add(1)
            .saturating_add(((at - damaged) / SMALLEST_RECORD) as u64);
        plausible_header(bytes, at, after, most) && whole_record_at(bytes, at).is_some()
    })
}

/// Whether the bytes at `at` can start a record numbered `after + 1..=most`: a length that
/// fits, then a payload that starts with such a number, a table count and a known table's name.
fn plausible_header(bytes: &[u8], at: usize, after: u64, most: u64) -> bool {
    let Some(head) = bytes.get(at..at + SMALLEST_RECORD) else {
        return false;
    };
    let len = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes")) as usize;
    if len < MIN_PAYLOAD || len > bytes.len() - at - 8 {
        return false;
    }
    let seq = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
    if seq <= after || seq > most {
        return false;
    }
    let payload = &bytes[at + 8..at + 8 + len];
    match payload[8] as usize {
        0 => len == MIN_PAYLOAD,
        n if n > TABLE_ORDER.len() => false,
        _ => {
            let name_len = payload.get(9).map_or(0, |n| *n as usize);
            payload
                .get(10..10 + name_len)
                .is_some_and(|name| TABLE_ORDER.iter().any(|t| t.as_bytes() == name))
        }
    }
}

fn decode(payload: &[u8]) -> Result<Record, String> {
    let mut r = Cursor::new(payload);
    let mut u64b = [0u8; 8];
    let mut u32b = [0u8; 4];
    let mut u8b = [0u8; 1];
    let short = |e: std::io::Error| format!("record too short: {e}");
    r.read_exact(&mut u64b).map_err(short)?;
    let seq = u64::from_le_bytes(u64b);
    r.read_exact(&mut u8b).map_err(short)?;
    let mut tables = Vec::with_capacity(u8b[0] as usize);
    for _ in 0..u8b[0] {
        r.read_exact(&mut u8b).map_err(short)?;
        let mut name = vec![0u8; u8b[0] as usize];
        r.read_exact(&mut name).map_err(short)?;
        let name = TABLE_ORDER
            .iter()
            .find(|t| t.as_bytes() == name.as_slice())
            .ok_or_else(|| format!("unknown table {:?}", String::from_utf8_lossy(&name)))?;
        r.read_exact(&mut u32b).map_err(short)?;
        let len = u32::from_le_bytes(u32b) as usize;
        let start = r.position() as usize;
        let ipc = payload
            .get(start..start + len)
            .ok_or("record too short for its table")?;
        r.set_position((start + len) as u64);
        let mut batches = Vec::new();
        if len > 0 {
            let reader = StreamReader::try_new(Cursor::new(ipc), None)
                .map_err(|e| format!("table {name}: {e}"))?;
            for batch in reader {
                batches.push(batch.map_err(|e| format!("table {name}: {e}"))?);
            }
        }
        tables.push((*name, batches));
    }
    Ok(Record { seq, tables })
}

#[cfg(test)]
mod tests {
    use super::super::Journal;
    use super::super::tests::{batch, temp_file};
    use super::*;
    use crate::store::faults::Faults;

    /// Where each record of a segment starts, by its framing.
    fn record_starts(bytes: &[u8]) -> Vec<usize> {
        let mut starts = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            starts.push(at);
            at += 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        }
        starts
    }

    #[test]
    fn the_reading_goes_on_past_damage_at_the_next_whole_record() {
        let path = temp_file("resync");
        let mut j = Journal::open(&path, 1, Faults::default()).expect("opens");
        let a = batch(&[1, 2, 3], &[Some("x"), None, Some("z")]);
        for _ in 0..6 {
            j.append(&[("resources", vec![a.clone()]), ("logs", vec![a.clone()])])
                .expect("appends");
        }
        j.sync().expect("syncs");
        let segment = segments(&path).expect("lists").remove(0);
        let clean = std::fs::read(&segment).expect("file");
        let starts = record_starts(&clean);
        assert_eq!(starts.len(), 6);
        let damaged = |damage: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = clean.clone();
            damage(&mut bytes);
            std::fs::write(&segment, &bytes).expect("write");
            let contents = read(&path).expect("reads");
            let seqs: Vec<u64> = contents.records.iter().map(|r| r.seq).collect();
            let damage: Vec<(u64, u64)> = contents.segments[0]
                .spans
                .iter()
                .filter_map(|s| match *s {
                    Span::Damaged { at, bytes } => Some((at, bytes)),
                    Span::Record(_) => None,
                })
                .collect();
            (seqs, damage, contents.torn_bytes)
        };
        let second = (starts[1] as u64, (starts[2] - starts[1]) as u64);

        // The second record's length: its checksum fails and the length cannot be trusted.
        for len in [u32::MAX, 100] {
            assert_eq!(
                damaged(&|b| b[starts[1]..starts[1] + 4].copy_from_slice(&len.to_le_bytes())),
                (vec![1, 3, 4, 5, 6], vec![second], 0),
                "length {len}"
            );
        }
        // Its checksum, its number, a byte of its Arrow data.
        for byte in [starts[1] + 5, starts[1] + 9, starts[2] - 20] {
            assert_eq!(
                damaged(&|b| b[byte] ^= 0x5a),
                (vec![1, 3, 4, 5, 6], vec![second], 0),
                "byte {byte}"
            );
        }
        // The third and fourth records zeroed, as a lost disk block reads.
        assert_eq!(
            damaged(&|b| b[starts[2]..starts[4]].fill(0)),
            (
                vec![1, 2, 5, 6],
                vec![(starts[2] as u64, (starts[4] - starts[2]) as u64)],
                0
            )
        );
        // Bytes that hold no record between two whole ones (the start of a record, then the
        // whole record again): every record reads.
        let partial = 40;
        assert_eq!(
            damaged(&|b| {
                let mut with_partial = b[..starts[1] + partial].to_vec();
                with_partial.extend_from_slice(&b[starts[1]..]);
                *b = with_partial;
            }),
            (
                vec![1, 2, 3, 4, 5, 6],
                vec![(starts[1] as u64, partial as u64)],
                0
            )
        );
        // The fifth record's length, then the last record cut short: only the latter is a
        // torn tail.
        assert_eq!(
            damaged(&|b| b[starts[4] + 3] ^= 0x01),
            (
                vec![1, 2, 3, 4, 6],
                vec![(starts[4] as u64, (starts[5] - starts[4]) as u64)],
                0
            )
        );
        let torn = (clean.len() - 1 - starts[5]) as u64;
        assert_eq!(
            damaged(&|b| b.truncate(b.len() - 1)),
            (vec![1, 2, 3, 4, 5], vec![(starts[5] as u64, torn)], torn)
        );
    }
}
