//! A request's rows as the Arrow tables that store them: definitions not stored yet, each once,
//! and inference events numbered and their feature keys staged until they are durable.

use std::collections::HashSet;

use duckdb::arrow::record_batch::RecordBatch;

use super::Writer;
use super::handle::Queued;
use crate::store::journal;
use crate::store::{Result, columns};

/// The tables that store some requests (see [`Writer::prepare`]).
pub(super) struct Prepared {
    pub(super) tables: journal::Tables,
    pub(super) taken: Taken,
}

/// What prepared requests add to the writer's state once they are durable.
pub(super) struct Taken {
    pub(super) events: u64,
    pub(super) new_resources: HashSet<u64>,
    pub(super) new_scopes: HashSet<u64>,
    pub(super) new_series: HashSet<u64>,
}
impl Writer {
    /// The tables that store `queued`, its events numbered from `next_event_id`. New feature
    /// keys are staged: once the tables are durable the caller calls [`settle`](Self::settle),
    /// otherwise rolls the keys back. On error nothing stays staged.
    pub(super) fn prepare(&mut self, queued: &[Queued]) -> Result<Prepared> {
        let batches = || queued.iter().map(|q| &q.batch);
        // Definitions not yet stored, each once.
        let mut new_resources = HashSet::new();
        let resources: Vec<_> = batches()
            .flat_map(|b| &b.resources)
            .filter(|r| {
                !self.resources.contains(&r.resource_id) && new_resources.insert(r.resource_id)
            })
            .collect();
        let mut new_scopes = HashSet::new();
        let scopes: Vec<_> = batches()
            .flat_map(|b| &b.scopes)
            .filter(|s| !self.scopes.contains(&s.scope_id) && new_scopes.insert(s.scope_id))
            .collect();
        let mut new_series = HashSet::new();
        let series: Vec<_> = batches()
            .flat_map(|b| &b.series)
            .filter(|s| !self.series.contains(&s.series_id) && new_series.insert(s.series_id))
            .collect();
        let events: usize = batches().map(|b| b.inferences.len()).sum();
        let feedback: Vec<_> = batches().flat_map(|b| &b.feedback).collect();
        let points: Vec<_> = batches().flat_map(|b| &b.points).collect();
        let distributions: Vec<_> = batches().flat_map(|b| &b.distributions).collect();
        let spans: Vec<_> = batches().flat_map(|b| &b.spans).collect();
        let logs: Vec<_> = batches().flat_map(|b| &b.logs).collect();

        let mut tables: journal::Tables = Vec::new();
        let mut one = |table, batch: std::result::Result<RecordBatch, _>| -> Result<()> {
            tables.push((table, vec![batch.map_err(columns::arrow_error)?]));
            Ok(())
        };
        if !resources.is_empty() {
            one("resources", columns::resources(&resources))?;
        }
        if !scopes.is_empty() {
            one("scopes", columns::scopes(&scopes))?;
        }
        if !series.is_empty() {
            one("metric_series", columns::series(&series))?;
        }
        if !feedback.is_empty() {
            one("feedback", columns::feedback(&feedback))?;
        }
        if !points.is_empty() {
            one("metric_points", columns::points(&points))?;
        }
        if !distributions.is_empty() {
            one(
                "metric_distributions",
                columns::distributions(&distributions),
            )?;
        }
        if !spans.is_empty() {
            one("spans", columns::spans(&spans))?;
        }
        if !logs.is_empty() {
            one("logs", columns::logs(&logs))?;
        }
        match self.inference_tables(queued, self.next_event_id) {
            Ok(inference_tables) => tables.extend(inference_tables),
            Err(e) => {
                self.feature_keys.rollback();
                return Err(e.into());
            }
        }
        Ok(Prepared {
            tables,
            taken: Taken {
                events: events as u64,
                new_resources,
                new_scopes,
                new_series,
            },
        })
    }

    /// A prepared request is durable: its feature keys, event ids and definitions are taken.
    pub(super) fn settle(&mut self, taken: Taken) {
        self.feature_keys.commit();
        self.next_event_id += taken.events;
        publish(
            &self.known.resources,
            &mut self.resources,
            taken.new_resources,
        );
        publish(&self.known.scopes, &mut self.scopes, taken.new_scopes);
        publish(&self.known.series, &mut self.series, taken.new_series);
    }

    /// The `inferences`, `feature_keys` and `inference_feature_values` batches of `queued`,
    /// events numbered from `first_event_id`. Each request's columns were built before it
    /// queued; only event ids and feature key ids are added here. New feature keys are staged:
    /// the caller commits or rolls them back.
    fn inference_tables(
        &mut self,
        queued: &[Queued],
        first_event_id: u64,
    ) -> duckdb::Result<Vec<(&'static str, Vec<RecordBatch>)>> {
        let mut event_id = first_event_id;
        let mut inference_batches = Vec::new();
        let mut feature_batches = Vec::new();
        let mut key_ids = Vec::new();
        for q in queued {
            let rows = &q.batch.inferences;
            let Some(cols) = &q.inference_columns else {
                continue;
            };
            inference_batches.push(cols.inferences(event_id).map_err(columns::arrow_error)?);
            if rows.iter().any(|i| !i.features.is_empty()) {
                key_ids.clear();
                for i in rows {
                    self.feature_keys.ids_of(
                        &i.model,
                        &i.version,
                        i.features.iter().map(|(name, _)| name.as_str()),
                        &mut key_ids,
                    );
                }
                feature_batches.push(
                    cols.features(rows, event_id, &key_ids)
                        .map_err(columns::arrow_error)?,
                );
            }
            event_id += rows.len() as u64;
        }
        let mut tables = Vec::new();
        if !inference_batches.is_empty() {
            tables.push(("inferences", inference_batches));
        }
        let new_keys = self.feature_keys.staged();
        if !new_keys.is_empty() {
            let keys = columns::feature_keys(new_keys).map_err(columns::arrow_error)?;
            tables.push(("feature_keys", vec![keys]));
        }
        if !feature_batches.is_empty() {
            tables.push(("inference_feature_values", feature_batches));
        }
        Ok(tables)
    }
}

fn publish(shared: &std::sync::RwLock<HashSet<u64>>, own: &mut HashSet<u64>, new: HashSet<u64>) {
    if new.is_empty() {
        return;
    }
    if let Ok(mut s) = shared.write() {
        s.extend(new.iter().copied());
    }
    own.extend(new);
}
