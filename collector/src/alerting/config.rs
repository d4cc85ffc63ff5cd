//! The `alerting:` section: rules, built-in rules, receivers, the routing tree, inhibition and
//! delivery settings, checked as a whole (receiver names, label names) when the file loads.
//!
//! Over 700 lines on purpose: the section's types and the whole-section check that reads all of
//! them (about 540 lines) stay in one place; the rest is their tests.

use std::collections::BTreeMap;
use std::time::Duration;

use millwatch_exporters::notify::NotifierConfig;
use serde::{Deserialize, Serialize};

use super::hold::For;
use super::rules::{Matcher, Template};

/// The `alerting:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// Whether rules are evaluated and notifications sent.
    pub enabled: bool,
    /// How often rules are evaluated and notification groups looked at.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub evaluation_interval: Duration,
    /// The collector's address as receivers should link to it; by default
    /// `http://<api.endpoint>`, with this machine's host name in place of an address that
    /// listens on every interface (`0.0.0.0`, `[::]`), as Prometheus does.
    pub external_url: Option<String>,
    /// How long a resolved alert stays listed by `GET /api/v1/alerts?state=resolved`.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub resolved_retention: Duration,
    /// The rules that come with Millwatch; each can be turned off or tuned.
    pub builtin: BuiltinRules,
    /// Rules of your own over detector verdicts or stored metrics.
    pub rules: Vec<RuleConfig>,
    /// Named receivers: `{ type: email | webhook | alertmanager, ... }`.
    pub receivers: BTreeMap<String, NotifierConfig>,
    /// The routing tree; without it alerts are evaluated and listed but not sent.
    pub route: Option<RouteConfig>,
    /// Alerts that mute others while they fire.
    pub inhibit_rules: Vec<InhibitRule>,
    /// Retries of notifications that a receiver did not take.
    pub delivery: DeliveryConfig,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            enabled: true,
            evaluation_interval: Duration::from_secs(1),
            external_url: None,
            resolved_retention: Duration::from_secs(3600),
            builtin: BuiltinRules::default(),
            rules: Vec::new(),
            receivers: BTreeMap::new(),
            route: None,
            inhibit_rules: Vec::new(),
            delivery: DeliveryConfig::default(),
        }
    }
}

/// Deserialises the `alerting:` section and checks what serde cannot: that every receiver a
/// route names exists, that rule and label names are valid, that each rule has one condition.
pub fn checked<'de, D: serde::Deserializer<'de>>(d: D) -> Result<AlertingConfig, D::Error> {
    let config = AlertingConfig::deserialize(d)?;
    config.check().map_err(|problems| {
        let located: Vec<(String, String)> = problems
            .iter()
            .map(|p| match p.split_once(": ") {
                Some((path, message)) => (path.to_string(), message.to_string()),
                None => (String::new(), p.clone()),
            })
            .collect();
        serde::de::Error::custom(crate::config::load::located(&located))
    })?;
    Ok(config)
}

/// Severity of an alert, its `severity` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Someone must act now.
    Critical,
    /// Someone should look soon.
    Warning,
    /// For the record.
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One built-in rule's switch and tuning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuiltinRule {
    /// Whether the rule is evaluated.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How long the condition must hold before the alert fires: a duration (`30s`; `0s` fires
    /// at once), or for the rules over verdicts (drift, data quality, performance) a number of
    /// decided windows in a row (`3 windows`).
    #[serde(rename = "for", default)]
    pub for_: For,
    /// The `severity` label; each built-in rule has its own default.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Extra labels, e.g. `team: ml-platform`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

impl BuiltinRule {
    fn on(severity: Severity) -> Self {
        BuiltinRule {
            enabled: true,
            for_: For::default(),
            severity: Some(severity),
            labels: BTreeMap::new(),
        }
    }
}

/// The rules Millwatch brings, all on by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BuiltinRules {
    /// `MillwatchDrift`: a feature's or the prediction's distribution drifted, or the share of
    /// drifted features crossed its limit (detectors `drift` and `drift_share`).
    pub drift: BuiltinRule,
    /// `MillwatchDataQuality`: missing values, new categories or out-of-range values.
    pub data_quality: BuiltinRule,
    /// `MillwatchPerformanceDrop`: a performance metric dropped against the baseline.
    pub performance: BuiltinRule,
    /// `MillwatchEstimatedPerformanceDrop`: a model's performance, estimated before labels
    /// arrive, left the baseline's thresholds: a binary classifier's metric from its scores
    /// (CBPE) fell below the lower one, a regressor's MAE or RMSE from its features (DLE) rose
    /// above the upper one (detector `estimated_performance`).
    pub estimated_performance: BuiltinRule,
    /// `MillwatchMultivariateDrift`: the PCA reconstruction error of a window's features left
    /// the baseline's thresholds, a change in how the features relate to each other (detector
    /// `multivariate_drift`). Off by default, since a window whose single features drifted is
    /// already told by `MillwatchDrift`; turn it on for models whose features move together.
    pub multivariate_drift: BuiltinRule,
    /// `MillwatchStreamChange`: a streaming change detector of `detection.streams` found a
    /// change in a model's per-event stream (detector `stream_change`). Off by default, like
    /// the stream detectors themselves: turn it on with the streams you configure.
    pub stream_change: BuiltinRule,
    /// `MillwatchMachineHealth`: a control-chart or machine-health rule is violated.
    pub machine_health: BuiltinRule,
    /// `MillwatchAbsence`: a watched metric series stopped arriving.
    pub absence: BuiltinRule,
    /// `MillwatchRefusingData`, `MillwatchQueueFull`, `MillwatchDeliveryFailing`,
    /// `MillwatchJournalDamaged`: the collector's own trouble.
    pub collector: BuiltinRule,
}

impl Default for BuiltinRules {
    fn default() -> Self {
        BuiltinRules {
            drift: BuiltinRule::on(Severity::Warning),
            data_quality: BuiltinRule::on(Severity::Warning),
            performance: BuiltinRule::on(Severity::Critical),
            estimated_performance: BuiltinRule::on(Severity::Warning),
            // Off by default: a window whose single features drifted is already told by
            // MillwatchDrift, and would be told twice.
            multivariate_drift: BuiltinRule {
                enabled: false,
                ..BuiltinRule::on(Severity::Warning)
            },
            stream_change: BuiltinRule {
                enabled: false,
                ..BuiltinRule::on(Severity::Warning)
            },
            machine_health: BuiltinRule::on(Severity::Critical),
            absence: BuiltinRule::on(Severity::Warning),
            collector: BuiltinRule {
                for_: For::Time(Duration::from_secs(60)),
                ..BuiltinRule::on(Severity::Warning)
            },
        }
    }
}

/// A rule of your own. It has exactly one condition: `detections` or `metric`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The alert's name, its `alertname` label.
    pub name: String,
    /// Fires for a series of verdicts (model, version, feature, detector, test) when one of its
    /// verdicts has `drifted = true` and matches all of these matchers over the labels
    /// `detector`, `test`, `feature`, `model`, `version` and `verdict`, e.g. `detector="drift"`;
    /// resolves at its next verdict that does not. Every verdict decided since the last
    /// evaluation is looked at in the order decided, so a drifted window followed by clean
    /// ones within one `evaluation_interval` fires and resolves.
    #[serde(default)]
    pub detections: Option<Vec<Matcher>>,
    /// Fires for every metric series whose newest point satisfies the comparison.
    #[serde(default)]
    pub metric: Option<MetricCondition>,
    /// How long the condition must hold before the alert fires: a duration (`30s`), counted
    /// from the evaluation that first found it; or, for a `detections` rule, a number of
    /// decided windows in a row whose verdict matches (`3 windows`; a window that does not
    /// match starts the count over). Default `0s`: the first matching verdict fires.
    #[serde(rename = "for", default)]
    pub for_: For,
    /// The `severity` label.
    #[serde(default = "warning")]
    pub severity: Severity,
    /// Extra labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations, templated: `{{ $labels.model }}`, `{{ $value }}`.
    #[serde(default)]
    pub annotations: BTreeMap<String, Template>,
}

fn warning() -> Severity {
    Severity::Warning
}

/// A condition on the newest point of stored metric series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricCondition {
    /// The metric's name as it arrived over OTLP, e.g. `machine.spindle.temperature`.
    pub name: String,
    /// Matchers over the point's attributes, e.g. `machine="press-4"`.
    #[serde(default)]
    pub matchers: Vec<Matcher>,
    /// How the value compares with `threshold`.
    pub op: Comparison,
    /// The value compared with.
    pub threshold: f64,
    /// Only points newer than this count; a series without one is not evaluated.
    #[serde(with = "millwatch_exporters::units::duration", default = "lookback")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub lookback: Duration,
}

fn lookback() -> Duration {
    Duration::from_secs(300)
}

/// A comparison of a value with a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Comparison {
    #[serde(rename = ">")]
    Greater,
    #[serde(rename = ">=")]
    GreaterOrEqual,
    #[serde(rename = "<")]
    Less,
    #[serde(rename = "<=")]
    LessOrEqual,
    #[serde(rename = "==")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
}

impl Comparison {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Greater => value > threshold,
            Comparison::GreaterOrEqual => value >= threshold,
            Comparison::Less => value < threshold,
            Comparison::LessOrEqual => value <= threshold,
            Comparison::Equal => value == threshold,
            Comparison::NotEqual => value != threshold,
        }
    }
}

/// A node of the routing tree. Children inherit what they do not set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Where matching alerts go; the root must name one.
    #[serde(default)]
    pub receiver: Option<String>,
    /// All must match for an alert to take this route (the root matches everything).
    #[serde(default)]
    pub matchers: Vec<Matcher>,
    /// Labels that split alerts into notification groups; `[...]` groups by all labels.
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    /// How long a new group waits for more alerts before its first notification.
    #[serde(default, with = "millwatch_exporters::units::duration")]
    #[schemars(with = "Option<millwatch_exporters::units::DurationText>")]
    pub group_wait: Option<Duration>,
    /// How long a group waits before notifying about changes.
    #[serde(default, with = "millwatch_exporters::units::duration")]
    #[schemars(with = "Option<millwatch_exporters::units::DurationText>")]
    pub group_interval: Option<Duration>,
    /// How long before an unchanged, unacknowledged firing group is notified again.
    #[serde(default, with = "millwatch_exporters::units::duration")]
    #[schemars(with = "Option<millwatch_exporters::units::DurationText>")]
    pub repeat_interval: Option<Duration>,
    /// Whether matching goes on to the next sibling after this route matched.
    #[serde(rename = "continue", default)]
    pub continue_: bool,
    /// Child routes, tried in order.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// Mutes alerts matching `target_matchers` while an alert matching `source_matchers` fires
/// with the same values of the `equal` labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InhibitRule {
    /// Matchers an alert that mutes others must match, e.g. `severity="critical"`.
    pub source_matchers: Vec<Matcher>,
    /// Matchers an alert that is muted must match.
    pub target_matchers: Vec<Matcher>,
    /// Labels whose values the two alerts must share, e.g. `model`.
    #[serde(default)]
    pub equal: Vec<String>,
}

/// How the outbox retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// The wait after the first failed attempt; it doubles after each further one.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub max_backoff: Duration,
    /// A notification not delivered after this long is given up (marked failed).
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub max_age: Duration,
    /// How often the outbox looks for notifications that are due.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub poll_interval: Duration,
    /// How long a delivered notification and its attempts stay in the outbox (and in
    /// `GET /api/v1/notifications`).
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub keep_delivered: Duration,
    /// How long a notification given up on (failed) and its attempts stay.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub keep_failed: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_age: Duration::from_secs(24 * 3600),
            poll_interval: Duration::from_millis(250),
            keep_delivered: Duration::from_secs(7 * 24 * 3600),
            keep_failed: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Defaults of the root route.
pub const GROUP_WAIT: Duration = Duration::from_secs(30);
pub const GROUP_INTERVAL: Duration = Duration::from_secs(300);
pub const REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);

/// Whether `name` is a Prometheus label name.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl AlertingConfig {
    /// Every problem serde cannot see, each as `path: message` (the path within the section).
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let known: Vec<&str> = self.receivers.keys().map(String::as_str).collect();
        match &self.route {
            Some(route) => {
                if route.receiver.is_none() {
                    problems.push("route.receiver: the root route must name a receiver".into());
                }
                if !route.matchers.is_empty() {
                    problems.push(
                        "route.matchers: the root route matches every alert; put matchers on child routes".into(),
                    );
                }
                check_route(route, "route", &known, &mut problems);
            }
            None if !self.receivers.is_empty() => problems.push(
                "route: receivers are configured but no route sends to them (add `route: { receiver: NAME }`)".into(),
            ),
            None => {}
        }
        for (name, receiver) in &self.receivers {
            if name.trim().is_empty() {
                problems.push("receivers: a receiver name is empty".into());
            }
            if let NotifierConfig::Alertmanager(am) = receiver
                && am.resend_interval.is_zero()
            {
                problems.push(format!(
                    "receivers.{name}.resend_interval: must be more than 0s"
                ));
            }
        }
        let builtins = [
            ("drift", &self.builtin.drift),
            ("data_quality", &self.builtin.data_quality),
            ("performance", &self.builtin.performance),
            ("estimated_performance", &self.builtin.estimated_performance),
            ("multivariate_drift", &self.builtin.multivariate_drift),
            ("stream_change", &self.builtin.stream_change),
            ("machine_health", &self.builtin.machine_health),
            ("absence", &self.builtin.absence),
            ("collector", &self.builtin.collector),
        ];
        for (name, rule) in builtins {
            check_labels(
                &rule.labels,
                &format!("builtin.{name}.labels"),
                &mut problems,
            );
            // Machine-health verdicts are written when a rule's state changes, not per window,
            // and the collector's own trouble has no windows at all.
            let windowless = matches!(name, "machine_health" | "absence" | "collector");
            if windowless && let For::Windows(_) = rule.for_ {
                problems.push(format!(
                    "builtin.{name}.for: `{}` counts decided windows, which this rule does not have; use a duration such as `30s`",
                    rule.for_
                ));
            }
        }
        let mut names: Vec<&str> = vec![
            "MillwatchDrift",
            "MillwatchDataQuality",
            "MillwatchPerformanceDrop",
            "MillwatchEstimatedPerformanceDrop",
            "MillwatchMachineHealth",
            "MillwatchAbsence",
            "MillwatchCollector",
        ];
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("rules[{i}]");
            if names.contains(&rule.name.as_str()) {
                problems.push(format!(
                    "{at}.name: a rule named `{}` exists already; rule names must be unique",
                    rule.name
                ));
            }
            names.push(&rule.name);
            if rule.name.trim().is_empty() {
                problems.push(format!("{at}.name: a rule needs a name"));
            }
            match (&rule.detections, &rule.metric) {
                (Some(_), Some(_)) => problems.push(format!(
                    "{at}: rule `{}` has both `detections` and `metric`; a rule has one condition",
                    rule.name
                )),
                (None, None) => problems.push(format!(
                    "{at}: rule `{}` has no condition: add `detections: [...]` or `metric: {{...}}`",
                    rule.name
                )),
                _ => {}
            }
            if let Some(m) = &rule.metric
                && m.name.trim().is_empty()
            {
                problems.push(format!("{at}.metric.name: the metric name is empty"));
            }
            if rule.metric.is_some()
                && let For::Windows(_) = rule.for_
            {
                problems.push(format!(
                    "{at}.for: `{}` counts decided windows, which only `detections` rules have; a metric rule waits a duration such as `5m`",
                    rule.for_
                ));
            }
            check_labels(&rule.labels, &format!("{at}.labels"), &mut problems);
            for key in rule.annotations.keys() {
                if !is_label_name(key) {
                    problems.push(format!(
                        "{at}.annotations: `{key}` is not a valid annotation name (letters, digits and _)"
                    ));
                }
            }
        }
        for (i, rule) in self.inhibit_rules.iter().enumerate() {
            if rule.source_matchers.is_empty() || rule.target_matchers.is_empty() {
                problems.push(format!(
                    "inhibit_rules[{i}]: both source_matchers and target_matchers are needed"
                ));
            }
            for l in &rule.equal {
                if !is_label_name(l) {
                    problems.push(format!(
                        "inhibit_rules[{i}].equal: `{l}` is not a valid label name"
                    ));
                }
            }
        }
        if self.evaluation_interval.is_zero() {
            problems.push("evaluation_interval: must be more than 0s".into());
        }
        if self.delivery.initial_backoff.is_zero() || self.delivery.poll_interval.is_zero() {
            problems
                .push("delivery: initial_backoff and poll_interval must be more than 0s".into());
        }
        if self.delivery.max_backoff < self.delivery.initial_backoff {
            problems.push("delivery.max_backoff: must not be less than initial_backoff".into());
        }
        if let Some(url) = &self.external_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problems.push(format!(
                "external_url: `{url}` is not an http:// or https:// address"
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

fn check_labels(labels: &BTreeMap<String, String>, at: &str, problems: &mut Vec<String>) {
    for key in labels.keys() {
        if !is_label_name(key) {
            problems.push(format!(
                "{at}: `{key}` is not a valid label name (letters, digits and _, not starting with a digit)"
            ));
        }
    }
}

fn check_route(route: &RouteConfig, at: &str, known: &[&str], problems: &mut Vec<String>) {
    if let Some(r) = &route.receiver
        && !known.contains(&r.as_str())
    {
        let hint = if known.is_empty() {
            "no receivers are configured under `alerting.receivers`".to_string()
        } else {
            format!("known receivers: {}", known.join(", "))
        };
        problems.push(format!("{at}.receiver: unknown receiver `{r}` ({hint})"));
    }
    if let Some(by) = &route.group_by {
        for l in by {
            if l != "..." && !is_label_name(l) {
                problems.push(format!(
                    "{at}.group_by: `{l}` is not a valid label name (or `...` for all labels)"
                ));
            }
        }
    }
    if route.group_interval.is_some_and(|d| d.is_zero()) {
        problems.push(format!("{at}.group_interval: must be more than 0s"));
    }
    for (i, child) in route.routes.iter().enumerate() {
        check_route(child, &format!("{at}.routes[{i}]"), known, problems);
    }
}

/// The external URL when none is configured: the API's address, with the host name in place of
/// an unspecified address (a link to `http://0.0.0.0:9464` leads nowhere from a mail client).
pub fn default_external_url(api: std::net::SocketAddr) -> String {
    if api.ip().is_unspecified() {
        let host = gethostname::gethostname();
        let host = host.to_string_lossy();
        let host = if host.is_empty() { "localhost" } else { &host };
        format!("http://{host}:{}", api.port())
    } else {
        format!("http://{api}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Wrapper {
        #[serde(deserialize_with = "checked")]
        alerting: AlertingConfig,
    }

    fn load(yaml: &str) -> Result<AlertingConfig, String> {
        crate::config::load::load_str::<Wrapper>(yaml, "test.yaml", &|_| None)
            .map(|w| w.alerting)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_section_parses() {
        let c = load(
            r#"alerting:
  evaluation_interval: 250ms
  builtin:
    absence: { enabled: false, severity: info }
  rules:
    - name: HotSpindle
      metric: { name: spindle.temperature, matchers: ['machine=~"press-.*"'], op: ">", threshold: 80 }
      for: 30s
      severity: critical
      annotations:
        summary: "{{ $labels.machine }} at {{ $value }}"
    - name: ChurnDrift
      detections: ['detector="drift"', 'model="churn"']
  receivers:
    mail: { type: email, host: 127.0.0.1, port: 2525, tls: none, from: mw@example.net, to: [ops@example.net] }
    hook: { type: webhook, url: "http://127.0.0.1:9/hook" }
  route:
    receiver: mail
    group_by: [alertname, model]
    group_wait: 1s
    routes:
      - matchers: ['severity="critical"']
        receiver: hook
        continue: true
  inhibit_rules:
    - source_matchers: ['severity="critical"']
      target_matchers: ['severity="warning"']
      equal: [model]
"#,
        )
        .expect("valid");
        assert_eq!(c.evaluation_interval, Duration::from_millis(250));
        assert!(!c.builtin.absence.enabled);
        assert!(c.builtin.drift.enabled);
        assert_eq!(c.rules.len(), 2);
        assert_eq!(c.rules[0].for_, For::Time(Duration::from_secs(30)));
        let route = c.route.expect("route");
        assert_eq!(route.group_wait, Some(Duration::from_secs(1)));
        assert!(route.routes[0].continue_);
        assert_eq!(c.receivers.len(), 2);
    }

    #[test]
    fn mistakes_are_reported_with_their_place() {
        for (yaml, want) in [
            (
                "alerting:\n  receivers:\n    mail: { type: webhook, url: \"http://x/\" }\n  route:\n    receiver: mail\n    routes:\n      - receiver: pager\n",
                "test.yaml:7:9: alerting.route.routes[0].receiver: unknown receiver `pager` (known receivers: mail)",
            ),
            (
                "alerting:\n  route:\n    receiver: mail\n",
                "test.yaml:3:5: alerting.route.receiver: unknown receiver `mail` (no receivers are configured",
            ),
            (
                "alerting:\n  rules:\n    - name: X\n      detections: ['detector~\"drift\"']\n",
                // At the matcher itself, inside the flow list.
                "test.yaml:4:20: alerting.rules[0].detections[0]: bad matcher",
            ),
            (
                "alerting:\n  rules:\n    - name: X\n      detections: ['detector=~\"(drift\"']\n",
                "bad regular expression",
            ),
            (
                "alerting:\n  rules:\n    - name: X\n      detections: []\n      annotations:\n        summary: \"{{ $lables.model }}\"\n",
                "test.yaml:6:9: alerting.rules[0].annotations.summary: unknown template expression `$lables.model`",
            ),
            (
                "alerting:\n  rules:\n    - name: X\n      detections: []\n      annotations:\n        summary: \"{{ $value \"\n",
                "`{{` without a closing `}}`",
            ),
            (
                "alerting:\n  rules:\n    - name: X\n",
                "rule `X` has no condition",
            ),
            (
                "alerting:\n  rules:\n    - name: X\n      metric: { name: m, op: \"=>\", threshold: 1 }\n",
                "unknown variant `=>`",
            ),
            (
                "alerting:\n  route:\n    receiver: mail\n    group_by: [\"bad-label\"]\n  receivers:\n    mail: { type: webhook, url: \"http://x/\" }\n",
                "test.yaml:4:5: alerting.route.group_by: `bad-label` is not a valid label name",
            ),
            (
                "alerting:\n  receivers:\n    mail: { type: webhook, url: \"http://x/\" }\n",
                "no route sends to them",
            ),
            ("alerting:\n  rutes: []\n", "unknown field `rutes`"),
            (
                "alerting:\n  rules:\n    - { name: MillwatchDrift, detections: [] }\n",
                "test.yaml:3:9: alerting.rules[0].name: a rule named `MillwatchDrift` exists already",
            ),
        ] {
            let err = load(yaml).expect_err(yaml);
            assert!(err.contains(want), "{yaml}\n---\n{err}\n--- wanted: {want}");
        }
    }

    #[test]
    fn every_cross_reference_problem_is_reported_at_its_own_key() {
        let yaml = "alerting:\n  receivers:\n    mail: { type: webhook, url: \"http://x/\" }\n    am:\n      type: alertmanager\n      urls: [\"http://am:9093\"]\n      resend_interval: 0s\n  route:\n    receiver: mail\n    routes:\n      - matchers: ['severity=\"critical\"']\n        receiver: pager\n      - receiver: sms\n";
        let err = load(yaml).expect_err("three problems");
        for want in [
            "test.yaml:7:7: alerting.receivers.am.resend_interval: must be more than 0s\n",
            "test.yaml:12:9: alerting.route.routes[0].receiver: unknown receiver `pager` (known receivers: am, mail)",
            "test.yaml:13:9: alerting.route.routes[1].receiver: unknown receiver `sms`",
        ] {
            assert!(err.contains(want), "{err}\n--- wanted: {want}");
        }
        assert!(!err.contains("test.yaml:1:1"), "{err}");
    }

    #[test]
    fn for_counts_windows_on_detection_rules_only() {
        let c = load(
            "alerting:\n  builtin:\n    drift: { for: 2 windows }\n    collector: { for: 90s }\n  rules:\n    - { name: X, detections: ['detector=\"drift\"'], for: 3 windows }\n    - { name: Y, detections: [], for: 1 window }\n",
        )
        .expect("valid");
        assert_eq!(c.builtin.drift.for_, For::parse("2 windows").expect("2"));
        assert_eq!(c.builtin.collector.for_, For::Time(Duration::from_secs(90)));
        assert_eq!(c.rules[0].for_.to_string(), "3 windows");
        assert_eq!(c.rules[1].for_.to_string(), "1 window");
        assert_eq!(
            AlertingConfig::default().builtin.drift.for_.to_string(),
            "0s"
        );
        for (yaml, want) in [
            (
                "alerting:\n  rules:\n    - name: Hot\n      metric: { name: m, op: \">\", threshold: 1 }\n      for: 3 windows\n",
                "test.yaml:5:7: alerting.rules[0].for: `3 windows` counts decided windows, which only `detections` rules have",
            ),
            (
                "alerting:\n  builtin:\n    absence:\n      for: 2 windows\n",
                "test.yaml:4:7: alerting.builtin.absence.for: `2 windows` counts decided windows",
            ),
            (
                "alerting:\n  rules:\n    - { name: X, detections: [], for: 0 windows }\n",
                "at least `1 window`",
            ),
            (
                "alerting:\n  rules:\n    - { name: X, detections: [], for: soon }\n",
                "`soon` is neither a duration (`30s`, `5m`) nor a number of windows (`3 windows`)",
            ),
        ] {
            let err = load(yaml).expect_err(yaml);
            assert!(err.contains(want), "{yaml}\n---\n{err}\n--- wanted: {want}");
        }
    }

    #[test]
    fn comparisons() {
        assert!(Comparison::Greater.holds(2.0, 1.0));
        assert!(!Comparison::Greater.holds(1.0, 1.0));
        assert!(Comparison::GreaterOrEqual.holds(1.0, 1.0));
        assert!(Comparison::Less.holds(0.5, 1.0));
        assert!(Comparison::LessOrEqual.holds(1.0, 1.0));
        assert!(Comparison::Equal.holds(1.0, 1.0));
        assert!(Comparison::NotEqual.holds(1.0, 2.0));
        assert!(!Comparison::Greater.holds(f64::NAN, 1.0));
    }

    #[test]
    fn the_default_external_url_names_this_host_instead_of_every_interface() {
        let url = default_external_url("0.0.0.0:9464".parse().expect("address"));
        assert!(
            url.starts_with("http://") && url.ends_with(":9464"),
            "{url}"
        );
        assert!(!url.contains("0.0.0.0"), "{url}");
        assert_eq!(
            default_external_url("127.0.0.1:9464".parse().expect("address")),
            "http://127.0.0.1:9464"
        );
    }
}
