//! Silences: matchers that mute alerts between two times, with who made them and why;
//! created, listed and expired through the API and kept in `alert_silences`.

use duckdb::Connection;
use millwatch_exporters::notify::Labels;
use serde::{Deserialize, Serialize};

use super::rules::{Matcher, all_match};

/// One silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    /// ns since the epoch.
    pub starts_at: i64,
    pub ends_at: i64,
    pub created_by: String,
    pub comment: String,
    pub created_at: i64,
}

/// Whether a silence is in force, waiting to start, or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    Active,
    Pending,
    Expired,
}

impl Silence {
    pub fn state(&self, now: i64) -> SilenceState {
        if now >= self.ends_at {
            SilenceState::Expired
        } else if now < self.starts_at {
            SilenceState::Pending
        } else {
            SilenceState::Active
        }
    }

    /// Whether it mutes an alert with `labels` at `now`.
    pub fn mutes(&self, labels: &Labels, now: i64) -> bool {
        self.state(now) == SilenceState::Active && all_match(&self.matchers, labels)
    }
}

/// A new silence's id: 16 hex digits, random.
pub fn new_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

pub fn load(conn: &Connection) -> duckdb::Result<Vec<Silence>> {
    let mut stmt = conn.prepare(
        "SELECT id, matchers, epoch_ns(starts_at), epoch_ns(ends_at), created_by, comment, epoch_ns(created_at) \
         FROM alert_silences ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([], |r| {
        let matchers: String = r.get(1)?;
        Ok(Silence {
            id: r.get(0)?,
            // Stored by this code from parsed matchers; a row that no longer parses matches
            // nothing rather than everything.
            matchers: serde_json::from_str::<Vec<Matcher>>(&matchers)
                .unwrap_or_else(|_| vec![Matcher::never()]),
            starts_at: r.get(2)?,
            ends_at: r.get(3)?,
            created_by: r.get(4)?,
            comment: r.get(5)?,
            created_at: r.get(6)?,
        })
    })?;
    rows.collect()
}

pub fn insert(conn: &Connection, s: &Silence) -> duckdb::Result<()> {
    let matchers = serde_json::to_string(&s.matchers).unwrap_or_else(|_| "[]".into());
    conn.execute(
        "INSERT INTO alert_silences (id, matchers, starts_at, ends_at, created_by, comment, created_at, updated_at) \
         VALUES (?, ?, make_timestamp_ns(?), make_timestamp_ns(?), ?, ?, make_timestamp_ns(?), make_timestamp_ns(?))",
        duckdb::params![s.id, matchers, s.starts_at, s.ends_at, s.created_by, s.comment, s.created_at, s.created_at],
    )?;
    Ok(())
}

/// Ends the silence now, `by` whom and why (kept for the audit log); false when there is no
/// such silence or it already ended.
pub fn expire(
    conn: &Connection,
    id: &str,
    now: i64,
    by: Option<&str>,
    comment: Option<&str>,
) -> duckdb::Result<bool> {
    let n = conn.execute(
        "UPDATE alert_silences SET ends_at = make_timestamp_ns(?), updated_at = make_timestamp_ns(?), \
         ended_by = ?, end_comment = ? WHERE id = ? AND ends_at > make_timestamp_ns(?)",
        duckdb::params![now, now, by, comment, id, now],
    )?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silences_mute_matching_alerts_while_active() {
        let s = Silence {
            id: new_id(),
            matchers: vec![Matcher::parse(r#"model="churn""#).expect("matcher")],
            starts_at: 10,
            ends_at: 20,
            created_by: "ana".into(),
            comment: "retraining".into(),
            created_at: 5,
        };
        let mut l = Labels::new();
        l.insert("model".into(), "churn".into());
        assert!(!s.mutes(&l, 5));
        assert!(s.mutes(&l, 10));
        assert!(!s.mutes(&l, 20));
        l.insert("model".into(), "fraud".into());
        assert!(!s.mutes(&l, 15));
        assert_eq!(s.state(25), SilenceState::Expired);
        assert_eq!(s.id.len(), 16);
    }
}
