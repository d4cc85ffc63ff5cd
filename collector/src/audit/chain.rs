//! The hash chain in `audit_log`: appending (on the store's write connection only), reading,
//! verifying against the chain itself and against an exported head, and pruning by retention.

use duckdb::Connection;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::entry::{Entry, GENESIS, NewEntry};

/// The newest entry: what `millwatch audit head` exports and `verify --head` checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl Head {
    /// An exported head: `SEQ:HASH`, or the JSON `millwatch audit head` prints.
    pub fn parse(text: &str) -> Result<Head, String> {
        let text = text.trim();
        let head = if text.starts_with('{') {
            serde_json::from_str::<Head>(text).map_err(|e| e.to_string())
        } else {
            match text.split_once(':') {
                Some((seq, hash)) => seq
                    .parse::<u64>()
                    .map(|seq| Head {
                        seq,
                        hash: hash.to_owned(),
                    })
                    .map_err(|e| e.to_string()),
                None => Err("no `:`".into()),
            }
        };
        head.ok().filter(|h| h.hash.len() == 64 && h.hash.bytes().all(|b| b.is_ascii_hexdigit())).ok_or_else(|| {
            format!(
                "`{text}` is not an exported head: give SEQ:HASH (e.g. 42:9f86d0...) or the JSON of `millwatch audit head`"
            )
        })
    }

    pub fn genesis() -> Head {
        Head {
            seq: 0,
            hash: GENESIS.into(),
        }
    }
}

/// The newest entry of the log (seq 0 and the genesis hash when empty).
pub fn head(conn: &Connection) -> duckdb::Result<Head> {
    let row = conn.query_row(
        "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
        [],
        |r| {
            Ok(Head {
                seq: r.get(0)?,
                hash: r.get(1)?,
            })
        },
    );
    match row {
        Ok(h) => Ok(h),
        Err(duckdb::Error::QueryReturnedNoRows) => Ok(Head::genesis()),
        Err(e) => Err(e),
    }
}

/// Appends `entries` after the current head inside the caller's transaction; returns them as
/// stored. Only the store's writer calls this, so the chain has one order.
pub fn append(conn: &Connection, entries: Vec<NewEntry>) -> duckdb::Result<Vec<Entry>> {
    let mut prev = head(conn)?;
    let mut stored = Vec::with_capacity(entries.len());
    let mut stmt = conn.prepare(
        "INSERT INTO audit_log VALUES (?, make_timestamp_ns(?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?;
    for e in entries {
        let e = e.chained(prev.seq + 1, &prev.hash);
        stmt.execute(duckdb::params![
            e.seq,
            e.time,
            e.actor,
            e.source,
            e.action,
            e.model,
            e.object,
            e.old_value,
            e.new_value,
            e.reason,
            e.prev_hash,
            e.hash,
        ])?;
        prev = Head {
            seq: e.seq,
            hash: e.hash.clone(),
        };
        stored.push(e);
    }
    Ok(stored)
}

/// The columns of an entry, in [`row`]'s order.
pub const COLUMNS: &str = "seq, epoch_ns(time), actor, source, action, model, object, old_value, \
     new_value, reason, prev_hash, hash";

pub fn row(r: &duckdb::Row<'_>) -> duckdb::Result<Entry> {
    Ok(Entry {
        seq: r.get(0)?,
        time: r.get(1)?,
        actor: r.get(2)?,
        source: r.get(3)?,
        action: r.get(4)?,
        model: r.get(5)?,
        object: r.get(6)?,
        old_value: r.get(7)?,
        new_value: r.get(8)?,
        reason: r.get(9)?,
        prev_hash: r.get(10)?,
        hash: r.get(11)?,
    })
}

/// What walking the chain found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub ok: bool,
    /// Entries checked.
    pub entries: u64,
    pub first_seq: Option<u64>,
    pub head: Head,
    /// The first entry that does not match, and why (when not ok).
    pub first_bad_seq: Option<u64>,
    pub problem: Option<String>,
}

impl Verification {
    fn bad(mut self, seq: u64, problem: String) -> Verification {
        self.ok = false;
        self.first_bad_seq = Some(seq);
        self.problem = Some(problem);
        self
    }
}

/// The action of the entry written when retention deleted the oldest entries; its new value
/// says where the kept chain starts (`first_seq`) and the hash before it (`prev_hash`).
pub const PRUNED: &str = "audit.pruned";

/// Walks the whole chain in order: every hash recomputed, every link to the previous hash,
/// sequence numbers without a gap; a chain that does not start at 1 must start where the
/// newest `audit.pruned` entry says. With `expected`, the exported head must be in the log
/// with the same hash (a deleted or rewritten tail is found).
pub fn verify(conn: &Connection, expected: Option<&Head>) -> duckdb::Result<Verification> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM audit_log ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    let mut v = Verification {
        ok: true,
        entries: 0,
        first_seq: None,
        head: Head::genesis(),
        first_bad_seq: None,
        problem: None,
    };
    let mut prev: Option<Entry> = None;
    let mut start: Option<(u64, String)> = None;
    let mut bad: Option<(u64, String)> = None;
    let mut expected_seen = false;
    while let Some(r) = rows.next()? {
        let e = row(r)?;
        v.entries += 1;
        if bad.is_none() {
            bad = check(&e, prev.as_ref());
        }
        if e.action == PRUNED
            && let Some(n) = e
                .new_value
                .as_deref()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
            && let (Some(s), Some(h)) = (n["first_seq"].as_u64(), n["prev_hash"].as_str())
        {
            start = Some((s, h.to_owned()));
        }
        if let Some(h) = expected
            && h.seq == e.seq
        {
            expected_seen = true;
            if bad.is_none() && h.hash != e.hash {
                bad = Some((
                    e.seq,
                    format!(
                        "entry {} has hash {} but the exported head says {}",
                        e.seq, e.hash, h.hash
                    ),
                ));
            }
        }
        if v.first_seq.is_none() {
            v.first_seq = Some(e.seq);
        }
        v.head = Head {
            seq: e.seq,
            hash: e.hash.clone(),
        };
        prev = Some(e);
    }
    // A chain that starts after 1 was pruned: the newest pruning record must say so.
    if let Some(first) = v.first_seq
        && first != 1
    {
        let first_prev = {
            let mut s = conn.prepare("SELECT prev_hash FROM audit_log WHERE seq = ?")?;
            s.query_row([first], |r| r.get::<_, String>(0))?
        };
        let announced = start
            .as_ref()
            .is_some_and(|(s, h)| *s == first && *h == first_prev);
        if !announced {
            return Ok(v.bad(
                first,
                format!(
                    "the log starts at entry {first}, and no {PRUNED} entry says entries before it were deleted by retention"
                ),
            ));
        }
    }
    if let Some((seq, problem)) = bad {
        return Ok(v.bad(seq, problem));
    }
    if let Some(h) = expected
        && !expected_seen
        && h.seq > 0
    {
        let last = v.head.seq;
        return Ok(v.bad(
            last + 1,
            if h.seq > last {
                format!(
                    "the exported head is entry {} but the log ends at entry {last}: entries {}..={} are missing",
                    h.seq,
                    last + 1,
                    h.seq
                )
            } else {
                format!("the exported head, entry {}, is not in the log", h.seq)
            },
        ));
    }
    Ok(v)
}

/// Why `e` does not follow `prev` (or does not match itself), if it does not.
fn check(e: &Entry, prev: Option<&Entry>) -> Option<(u64, String)> {
    if e.computed_hash() != e.hash {
        return Some((
            e.seq,
            format!(
                "entry {} ({}) was changed: its content hashes to {}, not to its stored hash {}",
                e.seq,
                e.action,
                e.computed_hash(),
                e.hash
            ),
        ));
    }
    let p = prev?;
    if e.seq <= p.seq {
        return Some((
            e.seq,
            format!(
                "entry {} comes again after entry {}: sequence numbers must grow by one",
                e.seq, p.seq
            ),
        ));
    }
    if e.seq != p.seq + 1 {
        return Some((
            p.seq + 1,
            format!(
                "entries {}..={} are missing (entry {} follows entry {})",
                p.seq + 1,
                e.seq - 1,
                e.seq,
                p.seq
            ),
        ));
    }
    if e.prev_hash != p.hash {
        return Some((
            e.seq,
            format!(
                "entry {} does not follow entry {}: it names the previous hash {}, which is {}",
                e.seq, p.seq, e.prev_hash, p.hash
            ),
        ));
    }
    None
}

/// Deletes the entries older than `cutoff_ns` (never the newest one) and appends the
/// `audit.pruned` entry that says where the kept chain starts. Runs on the write connection,
/// in one transaction. Returns how many entries were deleted.
pub fn prune(conn: &Connection, cutoff_ns: i64, now_ns: i64) -> duckdb::Result<u64> {
    let last_old: Option<u64> = conn.query_row(
        "SELECT max(seq) FROM audit_log WHERE time < make_timestamp_ns(?) \
         AND seq < (SELECT max(seq) FROM audit_log)",
        [cutoff_ns],
        |r| r.get(0),
    )?;
    let Some(last_old) = last_old else {
        return Ok(0);
    };
    let (first_seq, prev_hash): (u64, String) = conn.query_row(
        "SELECT seq, prev_hash FROM audit_log WHERE seq > ? ORDER BY seq LIMIT 1",
        [last_old],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let deleted = conn.execute("DELETE FROM audit_log WHERE seq <= ?", [last_old])? as u64;
    let entry = NewEntry::system(now_ns, PRUNED, json!({"table": "audit_log"}))
        .new_value(json!({"deleted": deleted, "first_seq": first_seq, "prev_hash": prev_hash}))
        .reason("audit retention");
    append(conn, vec![entry])?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::migrated_in_memory as db;

    fn entries(n: usize, from: i64) -> Vec<NewEntry> {
        (0..n)
            .map(|i| NewEntry::system(from + i as i64, "note", json!({"model": "m", "i": i})))
            .collect()
    }

    #[test]
    fn an_untouched_chain_verifies_and_a_changed_row_is_named() {
        let c = db();
        append(&c, entries(3, 1_000)).unwrap();
        append(&c, entries(2, 2_000)).unwrap();
        let v = verify(&c, None).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!((v.entries, v.head.seq), (5, 5));
        c.execute("UPDATE audit_log SET reason = 'edited' WHERE seq = 3", [])
            .unwrap();
        let v = verify(&c, None).unwrap();
        assert!(!v.ok);
        assert_eq!(v.first_bad_seq, Some(3));
        assert!(v.problem.unwrap().contains("entry 3 (note) was changed"));
    }

    #[test]
    fn a_rehashed_row_breaks_the_link_to_the_next() {
        let c = db();
        let stored = append(&c, entries(3, 1_000)).unwrap();
        let mut forged = stored[1].clone();
        forged.reason = Some("forged".into());
        forged.hash = forged.computed_hash();
        c.execute(
            "UPDATE audit_log SET reason = ?, hash = ? WHERE seq = 2",
            duckdb::params![forged.reason, forged.hash],
        )
        .unwrap();
        let v = verify(&c, None).unwrap();
        assert_eq!(v.first_bad_seq, Some(3));
    }

    #[test]
    fn a_deleted_tail_is_found_only_against_the_exported_head() {
        let c = db();
        append(&c, entries(5, 1_000)).unwrap();
        let exported = head(&c).unwrap();
        c.execute("DELETE FROM audit_log WHERE seq >= 4", [])
            .unwrap();
        assert!(verify(&c, None).unwrap().ok);
        let v = verify(&c, Some(&exported)).unwrap();
        assert!(!v.ok);
        assert_eq!(v.first_bad_seq, Some(4));
        assert!(v.problem.unwrap().contains("entries 4..=5 are missing"));
        // A tail written again after the deletion does not match the exported head either.
        append(&c, entries(3, 3_000)).unwrap();
        let v = verify(&c, Some(&exported)).unwrap();
        assert_eq!(v.first_bad_seq, Some(5));
    }

    #[test]
    fn a_repeated_sequence_number_is_named() {
        let c = db();
        append(&c, entries(2, 1_000)).unwrap();
        c.execute(
            "INSERT INTO audit_log SELECT * REPLACE (hash || '' AS hash) FROM audit_log WHERE seq = 2",
            [],
        )
        .unwrap();
        let v = verify(&c, None).unwrap();
        assert_eq!(v.first_bad_seq, Some(2));
        assert!(v.problem.unwrap().contains("comes again"));
    }

    #[test]
    fn a_deleted_middle_row_is_a_gap() {
        let c = db();
        append(&c, entries(4, 1_000)).unwrap();
        c.execute("DELETE FROM audit_log WHERE seq = 2", [])
            .unwrap();
        let v = verify(&c, None).unwrap();
        assert_eq!(v.first_bad_seq, Some(2));
    }

    #[test]
    fn pruning_keeps_a_verifiable_chain_but_deleting_the_start_is_found() {
        let c = db();
        append(&c, entries(4, 1_000)).unwrap();
        append(&c, entries(2, 5_000)).unwrap();
        assert_eq!(prune(&c, 2_000, 6_000).unwrap(), 4);
        let v = verify(&c, None).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!((v.first_seq, v.head.seq), (Some(5), 7));
        let d = db();
        append(&d, entries(4, 1_000)).unwrap();
        d.execute("DELETE FROM audit_log WHERE seq <= 2", [])
            .unwrap();
        let v = verify(&d, None).unwrap();
        assert_eq!(v.first_bad_seq, Some(3));
    }
}
