//! Feature names by id. `inference_feature_values` names a feature by a `feature_key_id`; the
//! writer owns this map from (model, version, feature) to id, loaded from `feature_keys` at
//! start, and stores a new key in the same transaction as the first value that uses it.

use std::collections::HashMap;

use duckdb::Connection;

/// The writer's copy of `feature_keys`, plus the keys of the transaction being built.
#[derive(Default)]
pub struct FeatureKeys {
    /// model → version → feature → id.
    ids: HashMap<String, HashMap<String, HashMap<String, u32>>>,
    next_id: u32,
    /// Keys assigned since the last commit, in id order: stored with it, forgotten on rollback.
    staged: Vec<(u32, String, String, String)>,
}

impl FeatureKeys {
    pub fn load(conn: &Connection) -> duckdb::Result<Self> {
        let mut keys = FeatureKeys::default();
        let mut stmt =
            conn.prepare("SELECT feature_key_id, model, version, feature FROM feature_keys")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        for row in rows {
            let (id, model, version, feature) = row?;
            keys.next_id = keys.next_id.max(id + 1);
            keys.ids
                .entry(model)
                .or_default()
                .entry(version)
                .or_default()
                .insert(feature, id);
        }
        Ok(keys)
    }

    /// The ids of one event's features, in order; assigns (and stages) ids for new names.
    pub fn ids_of<'a>(
        &mut self,
        model: &str,
        version: &str,
        features: impl Iterator<Item = &'a str>,
        out: &mut Vec<u32>,
    ) {
        // One lookup of the model and version per event, then one per feature name.
        if !self.ids.get(model).is_some_and(|v| v.contains_key(version)) {
            self.ids
                .entry(model.to_owned())
                .or_default()
                .entry(version.to_owned())
                .or_default();
        }
        let by_name = self
            .ids
            .get_mut(model)
            .and_then(|v| v.get_mut(version))
            .expect("inserted above");
        for name in features {
            let id = match by_name.get(name) {
                Some(id) => *id,
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    by_name.insert(name.to_owned(), id);
                    self.staged
                        .push((id, model.to_owned(), version.to_owned(), name.to_owned()));
                    id
                }
            };
            out.push(id);
        }
    }

    /// Keys assigned since the last [`commit`](Self::commit) or [`rollback`](Self::rollback).
    pub fn staged(&self) -> &[(u32, String, String, String)] {
        &self.staged
    }

    /// The staged keys are stored.
    pub fn commit(&mut self) {
        self.staged.clear();
    }

    /// The transaction that would have stored the staged keys failed: forget them.
    pub fn rollback(&mut self) {
        for (id, model, version, feature) in self.staged.drain(..) {
            if let Some(by_name) = self.ids.get_mut(&model).and_then(|v| v.get_mut(&version)) {
                by_name.remove(&feature);
            }
            self.next_id = self.next_id.min(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_rollback_forgets_new_ones() {
        let mut keys = FeatureKeys::default();
        let mut out = Vec::new();
        keys.ids_of("m", "1", ["a", "b"].into_iter(), &mut out);
        assert_eq!(out, [0, 1]);
        keys.commit();
        out.clear();
        keys.ids_of("m", "1", ["b", "c"].into_iter(), &mut out);
        keys.ids_of("m", "2", ["a"].into_iter(), &mut out);
        assert_eq!(out, [1, 2, 3]);
        assert_eq!(keys.staged().len(), 2);
        keys.rollback();
        out.clear();
        keys.ids_of("m", "2", ["a"].into_iter(), &mut out);
        keys.ids_of("m", "1", ["c", "a"].into_iter(), &mut out);
        assert_eq!(out, [2, 3, 0], "ids given back on rollback are reused");
    }
}
