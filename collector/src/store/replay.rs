//! The replay of the store's journal at start: commits the acknowledged records DuckDB does not
//! hold yet, tells a torn tail (a crash during a write, never acknowledged) from damage that
//! lost acknowledged records, keeps the damaged segments as evidence in `journal/quarantine/`,
//! and says what was lost.
//!
//! Only the end of the journal can be torn by a crash. Bytes that fail the check before a whole
//! record, or record numbers that do not run on from `applied_seq + 1` (the records themselves
//! and the segments' names, which are their first record's number, tell which ones were
//! written), are damage: every readable record is still stored, in number order, the numbers
//! missing are reported as lost, and the segments holding the damage are kept.

use std::collections::BTreeSet;
use std::fs::File;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use duckdb::Connection;

use super::StoreError;
use super::faults::Faults;
use super::journal::{self, Record, Segment, Span, io_error, sync_dir};

/// Where the damaged segments of a journal folder are kept.
pub fn quarantine_in(journal_dir: &Path) -> PathBuf {
    journal_dir.join("quarantine")
}

/// Files kept in a quarantine folder (0 if it does not exist or cannot be read).
pub fn quarantined_segments(quarantine: &Path) -> u64 {
    std::fs::read_dir(quarantine).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .count() as u64
    })
}

/// What [`replay`] did at start.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Replayed {
    /// Records committed, and their rows.
    pub records: usize,
    pub rows: usize,
    /// Bytes of torn tails dropped: records a crash cut short, never acknowledged.
    pub torn_bytes: u64,
    /// Numbers of records the journal held after `applied_seq` that could not be read: lost.
    pub lost: Vec<RangeInclusive<u64>>,
    /// The damaged segments kept, where they are now.
    pub quarantined: Vec<PathBuf>,
    /// The folder they are kept in.
    pub quarantine: PathBuf,
}

impl Replayed {
    /// Records lost (each was one acknowledged request).
    pub fn lost_records(&self) -> u64 {
        self.lost.iter().map(|r| r.end() - r.start() + 1).sum()
    }

    /// The numbers of the lost records, as `3, 7-9`.
    pub fn lost_seqs(&self) -> String {
        let ranges: Vec<String> = self
            .lost
            .iter()
            .map(|r| {
                if r.start() == r.end() {
                    r.start().to_string()
                } else {
                    format!("{}-{}", r.start(), r.end())
                }
            })
            .collect();
        ranges.join(", ")
    }

    /// What an operator is told of damage found in the journal, or `None` if there was none.
    pub fn damage_report(&self) -> Option<String> {
        if self.quarantined.is_empty() {
            return None;
        }
        let kept: Vec<String> = self
            .quarantined
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let kept = kept.join(", ");
        Some(match self.lost_records() {
            0 => format!(
                "the store's journal held bytes that fail their checksum between records it could \
                 read (a disk error?); no record is missing and every one was stored; the damaged \
                 segments are kept as {kept}"
            ),
            n => format!(
                "the store's journal is damaged: {n} acknowledged request{s} (journal record seq \
                 {seqs}) could not be read and {are} lost; every readable record was stored; the \
                 damaged segments are kept as {kept}",
                s = if n == 1 { "" } else { "s" },
                seqs = self.lost_seqs(),
                are = if n == 1 { "is" } else { "are" },
            ),
        })
    }

    /// Logs what the replay did.
    pub fn log(&self) {
        if self.records > 0 {
            tracing::info!(
                records = self.records,
                rows = self.rows,
                "committed the journal's acknowledged requests left by the last run"
            );
        }
        if self.torn_bytes > 0 {
            tracing::warn!(
                bytes = self.torn_bytes,
                "the journal ended in a record cut short by a crash (never acknowledged); dropped"
            );
        }
        match self.damage_report() {
            Some(report) if self.lost_records() > 0 => tracing::error!(
                lost_records = self.lost_records(),
                lost_seq = %self.lost_seqs(),
                "{report}"
            ),
            Some(report) => tracing::warn!("{report}"),
            None => {}
        }
        let kept = quarantined_segments(&self.quarantine);
        if kept > self.quarantined.len() as u64 {
            tracing::warn!(
                files = kept,
                "{} holds damaged journal segments kept at an earlier start: remove them once \
                 inspected",
                self.quarantine.display()
            );
        }
    }
}

/// Commits the journal's records that DuckDB does not hold yet (those after `applied_seq`), in
/// number order and in one transaction, then deletes the segments; damaged ones are kept in
/// [`quarantine_in`] first. Run before the writer starts.
pub fn replay(conn: &Connection, dir: &Path) -> Result<Replayed, StoreError> {
    let contents = journal::read(dir)?;
    let applied = journal::applied_seq(conn)?;
    let verdict = check(&contents.segments, applied);
    let mut replayed = Replayed {
        lost: verdict.lost,
        quarantine: quarantine_in(dir),
        ..Replayed::default()
    };
    // The evidence is kept before anything is committed or deleted: a crash in between leaves
    // both copies, never none.
    for &i in &verdict.keep {
        let kept = keep(&contents.segments[i].path, &replayed.quarantine)?;
        replayed.quarantined.push(kept);
    }
    replayed.torn_bytes = contents
        .segments
        .iter()
        .enumerate()
        .filter(|(i, _)| !verdict.keep.contains(i))
        .filter_map(|(_, s)| match s.spans.last() {
            Some(Span::Damaged { bytes, .. }) => Some(*bytes),
            _ => None,
        })
        .sum();
    let mut pending: Vec<&Record> = contents
        .records
        .iter()
        .filter(|r| r.seq > applied)
        .collect();
    pending.sort_by_key(|r| r.seq);
    pending.dedup_by_key(|r| r.seq);
    replayed.records = pending.len();
    // Numbering goes on after every record written, read or lost, so that a lost number is
    // never given again.
    let newest = pending
        .last()
        .map(|r| r.seq)
        .into_iter()
        .chain(replayed.lost.last().map(|r| *r.end()))
        .max();
    if let Some(newest) = newest {
        let tables = journal::by_table(pending.iter().map(|r| &r.tables));
        replayed.rows = tables
            .iter()
            .flat_map(|(_, b)| b.iter().map(|b| b.num_rows()))
            .sum();
        journal::commit_applied(conn, tables, newest, &Faults::default())?;
    }
    for path in journal::segments(dir)? {
        journal::remove_segment(&path)?;
    }
    Ok(replayed)
}

/// Which records are missing and which segments to keep.
#[derive(Debug, Default, PartialEq)]
struct Verdict {
    lost: Vec<RangeInclusive<u64>>,
    /// Indexes into the segments, ascending.
    keep: BTreeSet<usize>,
}

/// Walks the segments in order, expecting record numbers to run on from `applied + 1`. A
/// segment's name is the number of its first record, so every number before it was written:
/// numbers skipped are lost, whether a record's or a segment name's number shows it. The
/// segments kept for a loss are the damaged ones between the last record read before it and
/// the record or segment after it (all of them if none is damaged: a segment file went
/// missing). Damage before a record not yet stored is kept even when no number is missing.
fn check(segments: &[Segment], applied: u64) -> Verdict {
    let mut verdict = Verdict::default();
    let mut expected = applied + 1;
    // The segment the numbering was last seen intact in.
    let mut intact = 0usize;
    let gap = |verdict: &mut Verdict, lost: RangeInclusive<u64>, between: RangeInclusive<usize>| {
        verdict.lost.push(lost);
        let damaged: Vec<usize> = between
            .clone()
            .filter(|&i| segments[i].is_damaged())
            .collect();
        if damaged.is_empty() {
            verdict.keep.extend(between);
        } else {
            verdict.keep.extend(damaged);
        }
    };
    for (i, segment) in segments.iter().enumerate() {
        if segment.first_seq > expected {
            gap(&mut verdict, expected..=segment.first_seq - 1, intact..=i);
            expected = segment.first_seq;
        }
        if segment.first_seq == expected {
            intact = i;
        }
        for (k, span) in segment.spans.iter().enumerate() {
            match *span {
                Span::Record(seq) if seq >= expected => {
                    if seq > expected {
                        gap(&mut verdict, expected..=seq - 1, intact..=i);
                    }
                    expected = seq + 1;
                    intact = i;
                }
                Span::Record(_) => {}
                Span::Damaged { .. } => {
                    let before_unstored = segment.spans[k + 1..]
                        .iter()
                        .any(|s| matches!(s, Span::Record(seq) if *seq > applied));
                    if before_unstored {
                        verdict.keep.insert(i);
                    }
                }
            }
        }
    }
    verdict
}

/// Keeps a damaged segment in the quarantine folder, under its own name (`.<n>` added if that
/// is taken by another file), and makes that durable; returns where it is kept. A hard link
/// needs no copy; a file system without them gets a copy.
fn keep(segment: &Path, quarantine: &Path) -> Result<PathBuf, StoreError> {
    std::fs::create_dir_all(quarantine).map_err(|e| io_error(quarantine, "creating", e))?;
    if let Some(journal_dir) = quarantine.parent() {
        sync_dir(journal_dir)?;
    }
    let name = segment
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).ok();
    for n in 0..1000 {
        let target = match n {
            0 => quarantine.join(&name),
            n => quarantine.join(format!("{name}.{n}")),
        };
        match std::fs::hard_link(segment, &target) {
            Ok(()) => {}
            // Kept by a start that stopped before it deleted the segment.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if size(&target) == size(segment) {
                    return Ok(target);
                }
                continue;
            }
            Err(_) => {
                std::fs::copy(segment, &target)
                    .and_then(|_| File::open(&target)?.sync_all())
                    .map_err(|e| io_error(&target, "keeping a damaged segment as", e))?;
            }
        }
        sync_dir(quarantine)?;
        return Ok(target);
    }
    Err(StoreError::Write(format!(
        "{} holds too many files named after {name}",
        quarantine.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(first_seq: u64, spans: &[Span]) -> Segment {
        Segment {
            path: PathBuf::from(format!("{first_seq:020}.journal")),
            first_seq,
            spans: spans.to_vec(),
        }
    }

    use Span::Record as R;
    const D: Span = Span::Damaged { at: 0, bytes: 9 };

    fn verdict(lost: &[RangeInclusive<u64>], keep: &[usize]) -> Verdict {
        Verdict {
            lost: lost.to_vec(),
            keep: keep.iter().copied().collect(),
        }
    }

    #[test]
    fn only_a_torn_tail_at_the_end_or_before_the_next_record_number_is_no_loss() {
        // A crash during the last record.
        let torn = [segment(1, &[R(1), R(2), D])];
        assert_eq!(check(&torn, 0), verdict(&[], &[]));
        // A failed write left a partial record; the next segment starts with its number.
        let broken = [segment(1, &[R(1), D]), segment(2, &[R(2)]), segment(3, &[])];
        assert_eq!(check(&broken, 0), verdict(&[], &[]));
        // Records before `applied_seq` are in DuckDB: segments left by a crash after a commit.
        let stored = [segment(1, &[R(1), R(2)]), segment(3, &[R(3)])];
        assert_eq!(check(&stored, 2), verdict(&[], &[]));
    }

    #[test]
    fn damage_before_more_records_loses_the_numbers_it_hid_and_keeps_its_segment() {
        let middle = [segment(1, &[R(1), R(2), D, R(4), R(5)])];
        assert_eq!(check(&middle, 0), verdict(&[3..=3], &[0]));
        // The first records of a segment.
        let first = [segment(1, &[R(1)]), segment(2, &[D, R(5)])];
        assert_eq!(check(&first, 0), verdict(&[2..=4], &[1]));
        // Garbage between two records that follow each other: nothing lost, still kept.
        let garbage = [segment(1, &[R(1), D, R(2)])];
        assert_eq!(check(&garbage, 0), verdict(&[], &[0]));
        // The same damage among records DuckDB holds already: nothing to keep.
        assert_eq!(check(&middle, 5), verdict(&[], &[]));
    }

    #[test]
    fn a_number_gap_across_segments_is_a_loss() {
        // The damaged tail of a segment that was followed by another: the next one's name
        // tells which records the tail held.
        let tail = [segment(1, &[R(1), R(2), D]), segment(5, &[])];
        assert_eq!(check(&tail, 0), verdict(&[3..=4], &[0]));
        let tail_then_records = [segment(1, &[R(1), D]), segment(4, &[R(4)])];
        assert_eq!(check(&tail_then_records, 0), verdict(&[2..=3], &[0]));
        // A whole segment unreadable between good ones.
        let whole = [segment(1, &[R(1)]), segment(2, &[D]), segment(4, &[R(4)])];
        assert_eq!(check(&whole, 0), verdict(&[2..=3], &[1]));
        // A segment file gone: nothing is damaged, so both neighbours are kept.
        let missing = [segment(1, &[R(1), R(2)]), segment(6, &[R(6)])];
        assert_eq!(check(&missing, 0), verdict(&[3..=5], &[0, 1]));
        // The first segment after `applied_seq` gone.
        let first_gone = [segment(8, &[R(8)])];
        assert_eq!(check(&first_gone, 4), verdict(&[5..=7], &[0]));
    }

    #[test]
    fn the_report_names_the_lost_numbers_and_where_the_evidence_is() {
        let replayed = Replayed {
            lost: vec![3..=3, 7..=9],
            quarantined: vec![PathBuf::from("/d/journal/quarantine/1.journal")],
            quarantine: PathBuf::from("/d/journal/quarantine"),
            ..Replayed::default()
        };
        assert_eq!(replayed.lost_records(), 4);
        assert_eq!(
            replayed.damage_report().expect("damage"),
            "the store's journal is damaged: 4 acknowledged requests (journal record seq 3, 7-9) \
             could not be read and are lost; every readable record was stored; the damaged \
             segments are kept as /d/journal/quarantine/1.journal"
        );
        assert_eq!(Replayed::default().damage_report(), None);
    }
}
