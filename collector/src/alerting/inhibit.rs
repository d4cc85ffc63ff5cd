//! Inhibition: while an alert matching a rule's source matchers fires, alerts matching its
//! target matchers with the same values of the `equal` labels are muted.

use super::config::InhibitRule;
use super::lifecycle::{AlertEntry, Book, State};
use super::rules::all_match;

/// The firing alerts that inhibit `target`, by fingerprint.
pub fn inhibited_by(rules: &[InhibitRule], book: &Book, target: &AlertEntry) -> Vec<String> {
    let mut by = Vec::new();
    for rule in rules {
        if !all_match(&rule.target_matchers, &target.labels) {
            continue;
        }
        for source in book.alerts.values() {
            if source.state != State::Firing
                || source.fingerprint == target.fingerprint
                || !all_match(&rule.source_matchers, &source.labels)
            {
                continue;
            }
            let same = rule
                .equal
                .iter()
                .all(|l| source.labels.get(l) == target.labels.get(l));
            if same && !by.contains(&source.fingerprint) {
                by.push(source.fingerprint.clone());
            }
        }
    }
    by
}

#[cfg(test)]
mod tests {
    use super::*;
    use millwatch_exporters::notify::Labels;
    use millwatch_exporters::notify::alert::fingerprint;
    use millwatch_exporters::notify::alert::labels;

    fn entry(pairs: &[(&str, &str)], state: State) -> AlertEntry {
        let labels = labels(pairs);
        AlertEntry {
            fingerprint: fingerprint(&labels),
            rule: "r".into(),
            labels,
            annotations: Labels::new(),
            value: 0.0,
            state,
            active_at: 0,
            fired_at: Some(0),
            resolved_at: None,
            ack: None,
            windows: 0,
        }
    }

    #[test]
    fn a_critical_alert_mutes_warnings_of_the_same_model() {
        let rules: Vec<InhibitRule> = serde_saphyr::from_str(
            "- { source_matchers: ['severity=\"critical\"'], target_matchers: ['severity=\"warning\"'], equal: [model] }\n",
        )
        .expect("rules");
        let mut book = Book::default();
        let critical = entry(
            &[("severity", "critical"), ("model", "churn")],
            State::Firing,
        );
        book.alerts
            .insert(critical.fingerprint.clone(), critical.clone());
        let same = entry(
            &[("severity", "warning"), ("model", "churn")],
            State::Firing,
        );
        let other = entry(
            &[("severity", "warning"), ("model", "fraud")],
            State::Firing,
        );
        assert_eq!(
            inhibited_by(&rules, &book, &same),
            vec![critical.fingerprint.clone()]
        );
        assert!(inhibited_by(&rules, &book, &other).is_empty());
        book.alerts
            .get_mut(&critical.fingerprint)
            .expect("there")
            .state = State::Resolved;
        assert!(inhibited_by(&rules, &book, &same).is_empty());
    }
}
