//! What the engine tells the log, one line each: a model version heard from for the first
//! time (and where its baseline comes from), a window that drifted after clean ones (or the
//! first one after a start), and the first clean window after drifted ones.

use std::collections::HashMap;

use super::baseline::{Baseline, Origin};
use super::results::Finding;
use super::windows::ModelKey;

/// The most drifted features a line names; the rest are counted.
const NAMED: usize = 10;

/// A model version seen for the first time.
pub fn model_seen(key: &ModelKey, baseline: Option<&Baseline>, baseline_events: usize) {
    let from = match baseline.map(|b| &b.origin) {
        None | Some(Origin::FirstEvents) => format!("its first {baseline_events} events"),
        Some(Origin::File(path)) => format!("the file {path}"),
        Some(Origin::PreviousVersion(v)) => format!("the baseline of version {v}"),
        Some(Origin::TimeRange {
            version,
            since,
            until,
        }) => format!("the events of version {version} from {since} to {until}"),
    };
    tracing::info!(model = %key.model, version = %key.version, baseline = %from, "new model version");
}

/// A window's drift news.
#[derive(Debug, Clone, PartialEq)]
pub enum DriftNews {
    /// It drifted, and the one before did not (or it is the first since the start).
    Drifted {
        features: Vec<String>,
        share: Option<f64>,
    },
    /// It did not drift, and the one before did.
    Recovered,
}

/// Whether each model version's last decided window drifted.
#[derive(Debug, Default)]
pub struct DriftLog {
    drifting: HashMap<ModelKey, bool>,
}

impl DriftLog {
    /// Logs a decided window when its drift differs from the version's window before; returns
    /// what it logged.
    pub fn window(
        &mut self,
        key: &ModelKey,
        index: u64,
        findings: &[Finding],
    ) -> Option<DriftNews> {
        let features: Vec<String> = findings
            .iter()
            .filter(|f| f.detector == "drift" && f.drifted)
            .map(|f| f.feature.clone())
            .collect();
        let share_finding = findings.iter().find(|f| f.detector == "drift_share");
        let drifted = !features.is_empty() || share_finding.is_some_and(|f| f.drifted);
        let before = self.drifting.insert(key.clone(), drifted).unwrap_or(false);
        let news = match (before, drifted) {
            (false, true) => DriftNews::Drifted {
                features,
                share: share_finding.and_then(|f| f.statistic),
            },
            (true, false) => DriftNews::Recovered,
            _ => return None,
        };
        match &news {
            DriftNews::Drifted { features, share } => {
                let mut named = features
                    .iter()
                    .take(NAMED)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(",");
                if features.len() > NAMED {
                    named.push_str(&format!(" and {} more", features.len() - NAMED));
                }
                tracing::info!(model = %key.model, version = %key.version, window = index,
                    features = %named, drift_share = share.unwrap_or(f64::NAN), "window drifted");
            }
            DriftNews::Recovered => {
                tracing::info!(model = %key.model, version = %key.version, window = index,
                    "window recovered: no drift");
            }
        }
        Some(news)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(drifted: &[&str], share: f64) -> Vec<Finding> {
        let mut out: Vec<Finding> = ["a", "b"]
            .iter()
            .map(|f| Finding {
                drifted: drifted.contains(f),
                ..Finding::new("drift", f)
            })
            .collect();
        out.push(Finding {
            statistic: Some(share),
            drifted: share >= 0.5,
            ..Finding::new("drift_share", "")
        });
        out
    }

    #[test]
    fn only_the_first_drifted_and_the_first_clean_window_are_news() {
        let key = ModelKey {
            model: "press".into(),
            version: "1".into(),
        };
        let other = ModelKey {
            model: "press".into(),
            version: "2".into(),
        };
        let mut log = DriftLog::default();
        assert_eq!(log.window(&key, 1, &window(&[], 0.0)), None);
        assert_eq!(
            log.window(&key, 2, &window(&["b"], 0.5)),
            Some(DriftNews::Drifted {
                features: vec!["b".into()],
                share: Some(0.5)
            })
        );
        assert_eq!(log.window(&key, 3, &window(&["a", "b"], 1.0)), None);
        // Each version keeps its own state.
        assert!(log.window(&other, 1, &window(&["a"], 0.5)).is_some());
        assert_eq!(
            log.window(&key, 4, &window(&[], 0.0)),
            Some(DriftNews::Recovered)
        );
        assert_eq!(log.window(&key, 5, &window(&[], 0.0)), None);
    }
}
