//! The `config.loaded` entry: the effective configuration's SHA-256 and, against the
//! configuration of the previous start, a readable diff (the settings that changed, with their
//! old and new values; secrets are serialised redacted by their types).

use std::collections::BTreeMap;

use duckdb::Connection;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::entry::NewEntry;

/// Where the previous start's configuration is kept in `audit_watch`.
const KEY: &str = "config";

/// The configuration as dotted setting names and their values (JSON text).
pub fn flatten(config: &Value) -> BTreeMap<String, String> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let name = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&name, v, out);
                }
            }
            // Extra request headers may carry credentials (an API key); their values are left
            // out of the log, their names are kept.
            _ if prefix.contains(".headers.") => {
                out.insert(prefix.to_owned(), "\"<redacted>\"".to_owned());
            }
            _ => {
                out.insert(prefix.to_owned(), v.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", config, &mut out);
    out
}

/// The entry for the effective configuration loaded at `now` (without its diff, which needs
/// the stored previous configuration: see [`record`]), and the flattened configuration.
pub fn entry(config: &crate::config::Config, now: i64) -> (NewEntry, String) {
    let value = serde_json::to_value(config).unwrap_or(Value::Null);
    let flat = flatten(&value);
    let text = serde_json::to_string(&flat).unwrap_or_default();
    // Over everything the configuration serialises (secrets redacted by their types), header
    // values included: a changed header changes the hash.
    let hash = hex::encode(Sha256::digest(value.to_string().as_bytes()));
    let e = NewEntry::system(
        now,
        "config.loaded",
        json!({ "config": "effective configuration", "data_dir": config.data_dir }),
    )
    .new_value(json!({ "hash": hash }));
    (e, text)
}

/// Writes `loaded` with the diff against the previous start's configuration, and keeps this
/// one for the next start. Runs on the write connection inside the caller's transaction.
pub fn record(conn: &Connection, loaded: NewEntry, flat: &str) -> duckdb::Result<()> {
    let previous: Option<String> = match conn.query_row(
        "SELECT CAST(value AS VARCHAR) FROM audit_watch WHERE key = ?",
        [KEY],
        |r| r.get(0),
    ) {
        Ok(t) => Some(t),
        Err(duckdb::Error::QueryReturnedNoRows) => None,
        Err(e) => return Err(e),
    };
    let mut entry = loaded;
    if let Some(prev) = previous {
        let old: BTreeMap<String, String> = serde_json::from_str(&prev).unwrap_or_default();
        let new: BTreeMap<String, String> = serde_json::from_str(flat).unwrap_or_default();
        let (before, after) = diff(&old, &new);
        let changed: Vec<&String> = after.keys().collect();
        let old_hash: Option<String> = conn
            .query_row(
                "SELECT json_extract_string(new_value, '$.hash') FROM audit_log \
                 WHERE action = 'config.loaded' ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                duckdb::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        entry.old_value = Some(json!({ "hash": old_hash, "settings": before }));
        if let Some(n) = entry.new_value.as_mut() {
            n["settings"] = json!(after);
        }
        entry.reason = Some(if changed.is_empty() {
            "unchanged since the previous start".into()
        } else {
            format!(
                "changed since the previous start: {}",
                changed
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
    } else {
        entry.reason = Some("first start with an audit log".into());
    }
    super::chain::append(conn, vec![entry])?;
    super::save_watch_value(conn, KEY, flat)
}

/// The settings that differ: their old values (absent ones as `null`) and their new ones.
fn diff(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> (BTreeMap<String, Value>, BTreeMap<String, Value>) {
    let parse = |t: Option<&String>| {
        t.and_then(|t| serde_json::from_str::<Value>(t).ok())
            .unwrap_or(Value::Null)
    };
    let mut before = BTreeMap::new();
    let mut after = BTreeMap::new();
    for k in old.keys().chain(new.keys()) {
        if old.get(k) != new.get(k) && !after.contains_key(k) {
            before.insert(k.clone(), parse(old.get(k)));
            after.insert(k.clone(), parse(new.get(k)));
        }
    }
    (before, after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_names_changed_added_and_removed_settings() {
        let headers = flatten(&json!({"rw": {"headers": {"X-Api-Key": "k"}}}));
        assert_eq!(headers["rw.headers.X-Api-Key"], "\"<redacted>\"");
        let old = flatten(&json!({"store": {"retention": "30d", "x": 1}, "a": true}));
        let new = flatten(&json!({"store": {"retention": "7d"}, "a": true, "b": [1]}));
        let (before, after) = diff(&old, &new);
        assert_eq!(
            before,
            BTreeMap::from([
                ("b".into(), Value::Null),
                ("store.retention".into(), json!("30d")),
                ("store.x".into(), json!(1)),
            ])
        );
        assert_eq!(after["store.retention"], json!("7d"));
        assert_eq!(after["store.x"], Value::Null);
        assert_eq!(after["b"], json!([1]));
    }
}
