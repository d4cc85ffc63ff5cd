//! One audit entry: what is recorded, its canonical content and its hash.
//!
//! The hash is SHA-256 (lower-case hex) of the compact JSON array
//! `[seq, time, actor, source, action, model, object, old_value, new_value, reason, prev_hash]`,
//! `time` as RFC 3339 UTC with nine fraction digits, absent values `null`, and `object`,
//! `old_value` and `new_value` as the JSON text stored in the row (a string). Anyone with
//! DuckDB and a SHA-256 can recompute it: `json.dumps(row, separators=(",", ":"),
//! ensure_ascii=False)` in Python gives the same bytes.

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The previous hash of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The actor of what Millwatch does on its own.
pub const SYSTEM: &str = "system";

/// What happened, before it has its place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    /// ns since the epoch, UTC.
    pub time: i64,
    pub actor: String,
    pub source: Option<String>,
    pub action: String,
    pub model: Option<String>,
    /// What it concerns, a JSON object.
    pub object: Value,
    pub old_value: Option<Value>,
    pub new_value: Option<Value>,
    pub reason: Option<String>,
}

impl NewEntry {
    /// An entry by `system` about `object`.
    pub fn system(time: i64, action: &str, object: Value) -> NewEntry {
        let model = object
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned);
        NewEntry {
            time,
            actor: SYSTEM.into(),
            source: None,
            action: action.into(),
            model,
            object,
            old_value: None,
            new_value: None,
            reason: None,
        }
    }

    pub fn new_value(mut self, v: Value) -> Self {
        self.new_value = Some(v);
        self
    }

    pub fn old_value(mut self, v: Value) -> Self {
        self.old_value = Some(v);
        self
    }

    pub fn reason(mut self, r: impl Into<String>) -> Self {
        let r = r.into();
        self.reason = (!r.is_empty()).then_some(r);
        self
    }

    pub fn actor(mut self, a: impl Into<String>) -> Self {
        self.actor = a.into();
        self
    }

    pub fn source(mut self, s: Option<String>) -> Self {
        self.source = s.filter(|s| !s.is_empty());
        self
    }

    /// The entry as stored, after `prev`: its sequence number and hash.
    pub fn chained(self, seq: u64, prev_hash: &str) -> Entry {
        let mut e = Entry {
            seq,
            time: self.time,
            actor: self.actor,
            source: self.source,
            action: self.action,
            model: self.model,
            object: self.object.to_string(),
            old_value: self.old_value.map(|v| v.to_string()),
            new_value: self.new_value.map(|v| v.to_string()),
            reason: self.reason,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        e.hash = e.computed_hash();
        e
    }
}

/// An entry as the `audit_log` table holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub seq: u64,
    /// ns since the epoch, UTC.
    #[serde(skip)]
    pub time: i64,
    pub actor: String,
    pub source: Option<String>,
    pub action: String,
    pub model: Option<String>,
    /// JSON text.
    pub object: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub reason: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl Entry {
    /// The bytes the hash is taken over.
    pub fn canonical(&self) -> String {
        json!([
            self.seq,
            rfc3339(self.time),
            self.actor,
            self.source,
            self.action,
            self.model,
            self.object,
            self.old_value,
            self.new_value,
            self.reason,
            self.prev_hash,
        ])
        .to_string()
    }

    pub fn computed_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical().as_bytes()))
    }

    /// The entry as the API and the exports give it: times as RFC 3339, JSON values parsed.
    pub fn view(&self) -> Value {
        let parsed = |t: &Option<String>| {
            t.as_deref()
                .map(|t| serde_json::from_str::<Value>(t).unwrap_or_else(|_| Value::from(t)))
        };
        json!({
            "seq": self.seq,
            "time": rfc3339(self.time),
            "actor": self.actor,
            "source": self.source,
            "action": self.action,
            "model": self.model,
            "object": parsed(&Some(self.object.clone())),
            "old_value": parsed(&self.old_value),
            "new_value": parsed(&self.new_value),
            "reason": self.reason,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        })
    }
}

/// RFC 3339 UTC with nine fraction digits, as hashed.
pub fn rfc3339(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_nanos(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_every_field_and_the_previous_hash() {
        let base = NewEntry::system(
            1_700_000_000_123_456_789,
            "drift.started",
            json!({"model": "m", "feature": "x"}),
        )
        .new_value(json!({"statistic": 0.5}))
        .reason("p < 0.01");
        let e = base.clone().chained(1, GENESIS);
        assert_eq!(e.hash, e.computed_hash());
        assert_eq!(e.model.as_deref(), Some("m"));
        assert!(e.canonical().starts_with(
            r#"[1,"2023-11-14T22:13:20.123456789Z","system",null,"drift.started","m","#
        ));
        let other_prev = base.clone().chained(1, &"1".repeat(64));
        assert_ne!(e.hash, other_prev.hash);
        let mut changed = e.clone();
        changed.reason = Some("p < 0.02".into());
        assert_ne!(changed.computed_hash(), e.hash);
        let mut moved = e.clone();
        moved.seq = 2;
        assert_ne!(moved.computed_hash(), e.hash);
    }

    #[test]
    fn the_canonical_form_is_what_python_json_dumps_gives() {
        let e = NewEntry::system(0, "note", json!({"model": "m"}))
            .actor("Zoë")
            .reason("a \"quoted\" reason\n")
            .chained(7, GENESIS);
        // json.dumps([7,"1970-01-01T00:00:00.000000000Z","Zoë",None,"note","m","{\"model\":\"m\"}",None,None,"a \"quoted\" reason\n","0"*64], separators=(",",":"), ensure_ascii=False)
        let python = format!(
            r#"[7,"1970-01-01T00:00:00.000000000Z","Zoë",null,"note","m","{{\"model\":\"m\"}}",null,null,"a \"quoted\" reason\n","{GENESIS}"]"#
        );
        assert_eq!(e.canonical(), python);
    }
}
