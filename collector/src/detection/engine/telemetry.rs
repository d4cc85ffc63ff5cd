//! What the engine tells `/metrics` about itself: lag, verdict delay, and which model
//! versions it watches (`millwatch_model_info`).

use std::time::Instant;

use super::Engine;
use crate::detection::Result;

/// Upper bounds (seconds) of `millwatch_detection_verdict_delay_seconds`.
pub(super) const DELAY_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

impl Engine {
    pub(super) fn observe_delay(&mut self, seconds: f64) {
        let bucket = DELAY_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(DELAY_BUCKETS.len());
        self.delays.0[bucket] += 1;
        self.delays.1 += seconds;
        self.gauges
            .verdict_delay
            .set_histogram(&[], &DELAY_BUCKETS, &self.delays.0, self.delays.1);
    }

    /// Puts the model versions of stored events `first..=last` on `millwatch_model_info`.
    pub(super) fn publish_stored_model_info(&mut self, first: u64, last: u64) -> Result<()> {
        let mut seen: Vec<(String, String, u64)> = Vec::new();
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT DISTINCT model, version, resource_id FROM inferences WHERE event_id BETWEEN ? AND ?",
            )?;
            let mut rows = stmt.query(duckdb::params![first, last])?;
            while let Some(r) = rows.next()? {
                seen.push((r.get(0)?, r.get(1)?, r.get(2)?));
            }
        }
        for (model, version, resource) in seen {
            self.note_model_info(&model, &version, resource)?;
        }
        Ok(())
    }

    /// Puts a model version on `millwatch_model_info` with the resource it came from, once per
    /// model version and resource.
    pub(super) fn note_model_info(
        &mut self,
        model: &str,
        version: &str,
        resource: u64,
    ) -> Result<()> {
        let known = self
            .info_seen
            .get(model)
            .and_then(|v| v.get(version))
            .is_some_and(|r| r.contains(&resource));
        if known {
            return Ok(());
        }
        let attrs: Vec<String> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT coalesce(service_name, ''), coalesce(environment, ''), coalesce(host_name, ''), \
                 coalesce(site_name, ''), coalesce(site_line, ''), coalesce(site_cell, '') \
                 FROM resources WHERE resource_id = ?",
            )?;
            let mut rows = stmt.query([resource])?;
            match rows.next()? {
                Some(r) => (0..6).map(|i| r.get(i)).collect::<duckdb::Result<_>>()?,
                None => vec![String::new(); 6],
            }
        };
        self.gauges.model_info.set(
            &[
                ("model", model),
                ("version", version),
                ("service", &attrs[0]),
                ("environment", &attrs[1]),
                ("host_name", &attrs[2]),
                ("site_name", &attrs[3]),
                ("site_line", &attrs[4]),
                ("site_cell", &attrs[5]),
            ],
            1.0,
        );
        self.info_seen
            .entry(model.to_owned())
            .or_default()
            .entry(version.to_owned())
            .or_default()
            .insert(resource);
        Ok(())
    }

    pub(super) fn publish_lag(&mut self, behind: bool) -> Result<()> {
        let newest = match &self.tap {
            Some(t) => t.newest(),
            None if behind => {
                self.conn
                    .query_row("SELECT max(event_id) FROM inferences", [], |r| r.get(0))?
            }
            None => None,
        };
        let lag = match (newest, self.cursor) {
            (Some(n), Some(c)) => n.saturating_sub(c),
            (Some(n), None) => n + 1,
            (None, _) => 0,
        };
        if lag == 0 {
            self.behind_since = None;
        } else {
            self.behind_since.get_or_insert_with(Instant::now);
        }
        self.gauges.lag_events.set(&[], lag as f64);
        self.gauges.lag_seconds.set(
            &[],
            self.behind_since.map_or(0.0, |t| t.elapsed().as_secs_f64()),
        );
        Ok(())
    }
}
