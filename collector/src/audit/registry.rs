//! The model registry, learnt from the inference events: every model version with where it ran
//! (`deployment.environment.name`, `host.name`, `site.name`, `site.line`,
//! `service.instance.id`), first and last seen and its event count, in `model_registry`. A
//! version appearing on a (model, environment, host) where another ran before is a deployment,
//! and becomes an audit entry; so is the first version seen there.

use std::collections::{BTreeMap, BTreeSet};

use duckdb::Connection;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::entry::NewEntry;

/// What the registry has read: the newest event id, and per (model, environment, host) the
/// version running there, since when and last seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistryState {
    pub last_event_id: Option<u64>,
    pub current: BTreeMap<String, Running>,
    /// (model, environment, host, version) seen at least once.
    pub known: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Running {
    pub version: String,
    pub since: i64,
    pub last_seen: i64,
}

/// One registry row's new events, to be added to `model_registry`.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub model: String,
    pub version: String,
    pub environment: String,
    pub host: String,
    pub site: String,
    pub line: String,
    pub instance: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub events: u64,
}

/// Reads the inference events after the last one read; returns what to add to the registry and
/// appends the deployments they show to `entries`.
pub fn round(
    conn: &Connection,
    state: &mut RegistryState,
    entries: &mut Vec<NewEntry>,
) -> duckdb::Result<Vec<Seen>> {
    let after = state.last_event_id.map_or(-1, |id| id as i128);
    let mut stmt = conn.prepare(
        "SELECT i.model, i.version, coalesce(r.environment, ''), coalesce(r.host_name, ''), \
         coalesce(r.site_name, ''), coalesce(r.site_line, ''), \
         coalesce(json_extract_string(r.attributes, '$.\"service.instance.id\"'), ''), \
         epoch_ns(min(i.time)), epoch_ns(max(i.time)), count(*), max(i.event_id) \
         FROM inferences i LEFT JOIN resources r ON r.resource_id = i.resource_id \
         WHERE i.event_id > CAST(? AS HUGEINT) GROUP BY ALL ORDER BY 8, 1, 2",
    )?;
    let mut rows = stmt.query([after.to_string()])?;
    let mut seen = Vec::new();
    while let Some(r) = rows.next()? {
        let s = Seen {
            model: r.get(0)?,
            version: r.get(1)?,
            environment: r.get(2)?,
            host: r.get(3)?,
            site: r.get(4)?,
            line: r.get(5)?,
            instance: r.get(6)?,
            first_seen: r.get(7)?,
            last_seen: r.get(8)?,
            events: r.get(9)?,
        };
        let newest: u64 = r.get(10)?;
        state.last_event_id = Some(state.last_event_id.map_or(newest, |l| l.max(newest)));
        seen.push(s);
    }
    deployments(state, &seen, entries);
    Ok(seen)
}

/// The deployments `seen` shows (in order of first appearance): a version new on its
/// (model, environment, host), or one returning there while the version that replaced it sent
/// nothing in this round.
fn deployments(state: &mut RegistryState, seen: &[Seen], entries: &mut Vec<NewEntry>) {
    // Per place, the versions in this round: (first seen, last seen).
    let mut by_place: BTreeMap<String, BTreeMap<String, (i64, i64)>> = BTreeMap::new();
    let mut names: BTreeMap<String, &Seen> = BTreeMap::new();
    for s in seen {
        let place = [s.model.as_str(), &s.environment, &s.host].join("\u{1f}");
        let v = by_place
            .entry(place.clone())
            .or_default()
            .entry(s.version.clone())
            .or_insert((s.first_seen, s.last_seen));
        v.0 = v.0.min(s.first_seen);
        v.1 = v.1.max(s.last_seen);
        names.entry(place).or_insert(s);
    }
    let mut found = Vec::new();
    for (place, versions) in &by_place {
        let mut order: Vec<(&String, &(i64, i64))> = versions.iter().collect();
        order.sort_by_key(|(v, (first, _))| (*first, (*v).clone()));
        for (version, &(first, last)) in order {
            let key = format!("{place}\u{1f}{version}");
            let new = state.known.insert(key);
            let current = state.current.get(place).cloned();
            let switch = match &current {
                None => true,
                Some(c) if c.version == *version => false,
                // A known version counts as deployed again only if the one that replaced it
                // has gone quiet (not both running side by side).
                Some(c) => new || !versions.contains_key(&c.version),
            };
            if switch {
                found.push((first, place.clone(), version.clone(), current.clone()));
                state.current.insert(
                    place.clone(),
                    Running {
                        version: version.clone(),
                        since: first,
                        last_seen: last,
                    },
                );
            } else if let Some(c) = state.current.get_mut(place)
                && c.version == *version
            {
                c.last_seen = c.last_seen.max(last);
            }
        }
    }
    found.sort_by_key(|(first, ..)| *first);
    for (first, place, version, previous) in found {
        let s = names[&place];
        let object = json!({
            "model": s.model, "version": version, "environment": s.environment, "host": s.host,
            "site": s.site, "line": s.line,
        });
        let old = match &previous {
            Some(p) => json!({
                "version": p.version,
                "since": super::entry::rfc3339(p.since),
                "last_seen": super::entry::rfc3339(p.last_seen),
            }),
            None => json!({ "version": null }),
        };
        let reason = match &previous {
            Some(p) => format!("version {version} replaced {} on this host", p.version),
            None => "first version seen on this host".to_owned(),
        };
        entries.push(
            NewEntry::system(first, "deployment", object)
                .source((!s.host.is_empty()).then(|| s.host.clone()))
                .old_value(old)
                .new_value(json!({ "version": version, "since": super::entry::rfc3339(first) }))
                .reason(reason),
        );
    }
}

/// Adds `seen` to `model_registry` (on the write connection, inside the caller's transaction).
pub fn save(conn: &Connection, seen: &[Seen]) -> duckdb::Result<()> {
    let mut stmt = conn.prepare(
        "INSERT INTO model_registry VALUES (?, ?, ?, ?, ?, ?, ?, make_timestamp_ns(?), make_timestamp_ns(?), ?) \
         ON CONFLICT DO UPDATE SET first_seen = least(first_seen, excluded.first_seen), \
         last_seen = greatest(last_seen, excluded.last_seen), events = events + excluded.events",
    )?;
    for s in seen {
        stmt.execute(duckdb::params![
            s.model,
            s.version,
            s.environment,
            s.host,
            s.site,
            s.line,
            s.instance,
            s.first_seen,
            s.last_seen,
            s.events
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(version: &str, env: &str, host: &str, first: i64, last: i64) -> Seen {
        Seen {
            model: "m".into(),
            version: version.into(),
            environment: env.into(),
            host: host.into(),
            site: String::new(),
            line: String::new(),
            instance: String::new(),
            first_seen: first,
            last_seen: last,
            events: 1,
        }
    }

    fn actions(entries: &[NewEntry]) -> Vec<(String, String, Option<String>)> {
        entries
            .iter()
            .map(|e| {
                let o = &e.object;
                (
                    format!(
                        "{}@{}",
                        o["version"].as_str().unwrap(),
                        o["environment"].as_str().unwrap()
                    ),
                    e.action.clone(),
                    e.old_value
                        .as_ref()
                        .and_then(|v| v["version"].as_str().map(str::to_owned)),
                )
            })
            .collect()
    }

    #[test]
    fn a_new_version_on_a_host_is_a_deployment_that_names_the_one_it_replaced() {
        let mut state = RegistryState::default();
        let mut entries = Vec::new();
        deployments(
            &mut state,
            &[
                seen("1", "prod", "h", 10, 20),
                seen("1", "staging", "s", 12, 22),
            ],
            &mut entries,
        );
        deployments(
            &mut state,
            &[
                seen("1", "prod", "h", 30, 40),
                seen("2", "staging", "s", 35, 45),
            ],
            &mut entries,
        );
        deployments(&mut state, &[seen("2", "prod", "h", 50, 60)], &mut entries);
        assert_eq!(
            actions(&entries),
            vec![
                ("1@prod".into(), "deployment".into(), None),
                ("1@staging".into(), "deployment".into(), None),
                ("2@staging".into(), "deployment".into(), Some("1".into())),
                ("2@prod".into(), "deployment".into(), Some("1".into())),
            ]
        );
        assert_eq!(state.current["m\u{1f}prod\u{1f}h"].version, "2");
    }

    #[test]
    fn two_versions_side_by_side_do_not_flap_but_a_rollback_is_a_deployment() {
        let mut state = RegistryState::default();
        let mut entries = Vec::new();
        deployments(&mut state, &[seen("1", "p", "h", 10, 20)], &mut entries);
        deployments(
            &mut state,
            &[seen("2", "p", "h", 30, 40), seen("1", "p", "h", 31, 41)],
            &mut entries,
        );
        deployments(
            &mut state,
            &[seen("2", "p", "h", 50, 60), seen("1", "p", "h", 51, 61)],
            &mut entries,
        );
        assert_eq!(entries.len(), 2);
        deployments(&mut state, &[seen("1", "p", "h", 70, 80)], &mut entries);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[2].old_value.as_ref().unwrap()["version"], "2");
    }
}
