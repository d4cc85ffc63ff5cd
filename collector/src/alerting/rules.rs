//! Rules: label matchers, annotation templates, the built-in rules, and turning what a source
//! found (a verdict series, a metric series, a collector problem) into an alert's labels.

use std::collections::BTreeMap;
use std::fmt;

use millwatch_exporters::notify::Labels;
use serde::{Deserialize, Serialize};

use super::config::{AlertingConfig, BuiltinRule, MetricCondition, RuleConfig, Severity};
use super::hold::For;
use super::lifecycle::Step;
use super::sources::Verdict;

/// How a matcher compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

/// `name="value"`, `name!="value"`, `name=~"regex"` or `name!~"regex"`, as in Alertmanager.
/// A missing label has the value `""`; a regular expression must match the whole value.
#[derive(Debug, Clone, schemars::JsonSchema)]
#[schemars(with = "String")]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<regex::Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Matcher {
    /// Parses `name<op>"value"`; the quotes are optional.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let text = text.trim();
        let end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(text.len());
        let name = &text[..end];
        if !super::config::is_label_name(name) {
            return Err(format!(
                "bad matcher `{text}`: it must start with a label name, as in `model=\"churn\"`"
            ));
        }
        let rest = text[end..].trim_start();
        let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
            (MatchOp::Regex, r)
        } else if let Some(r) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (MatchOp::Equal, r)
        } else {
            return Err(format!(
                "bad matcher `{text}`: expected one of =, !=, =~, !~ after `{name}`"
            ));
        };
        let value = unquote(rest.trim()).map_err(|e| format!("bad matcher `{text}`: {e}"))?;
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                regex::Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("bad regular expression in matcher `{text}`: {e}"))?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value,
            regex,
        })
    }

    /// A matcher no label set satisfies.
    pub fn never() -> Matcher {
        Matcher {
            name: "__millwatch_never__".into(),
            op: MatchOp::Equal,
            value: "\u{1}".into(),
            regex: None,
        }
    }

    /// Whether `labels` satisfy the matcher.
    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.name).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => v == self.value,
            (MatchOp::NotEqual, _) => v != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(v),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(v),
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

/// Whether every matcher matches.
pub fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

fn unquote(s: &str) -> Result<String, String> {
    let Some(inner) = s.strip_prefix('"') else {
        return Ok(s.to_string());
    };
    let Some(inner) = inner.strip_suffix('"') else {
        return Err("the value's closing quote is missing".into());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(c @ ('"' | '\\')) => out.push(c),
                Some(c) => {
                    out.push('\\');
                    out.push(c);
                }
                None => return Err("the value ends with a lone backslash".into()),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        };
        let value = self.value.replace('\\', "\\\\").replace('"', "\\\"");
        write!(f, "{}{op}\"{value}\"", self.name)
    }
}

impl Serialize for Matcher {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Matcher::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A piece of an annotation template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Label(String),
    Value,
}

/// An annotation template: text with `{{ $labels.NAME }}` and `{{ $value }}`.
#[derive(Debug, Clone, PartialEq, schemars::JsonSchema)]
#[schemars(with = "String")]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                return Err(format!(
                    "`{{{{` without a closing `}}}}` in template {source:?}"
                ));
            };
            let expr = after[..end].trim();
            let piece = if expr == "$value" {
                Piece::Value
            } else if let Some(name) = expr.strip_prefix("$labels.")
                && super::config::is_label_name(name)
            {
                Piece::Label(name.to_string())
            } else {
                return Err(format!(
                    "unknown template expression `{expr}`: use `{{{{ $labels.NAME }}}}` or `{{{{ $value }}}}`"
                ));
            };
            pieces.push(piece);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template {
            source: source.to_string(),
            pieces,
        })
    }

    /// The text with labels and the value filled in; a missing label is empty.
    pub fn render(&self, labels: &Labels, value: f64) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Label(name) => out.push_str(labels.get(name).map_or("", String::as_str)),
                Piece::Value => out.push_str(&format_value(value)),
            }
        }
        out
    }
}

/// A value as annotations show it: integers as they are, others to four significant digits.
pub fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    // Four significant digits, never fewer than the integer part.
    let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

impl Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Template::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Where a rule's candidates come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Verdicts of the `detections` table, each in the order decided: drifted and matching
    /// starts an alert, the series' next verdict that is not ends it.
    Detections(Vec<Matcher>),
    /// Newest point per metric series, compared with a threshold.
    Metric(MetricCondition),
    /// The collector's own trouble: refused data, a full queue, failing deliveries, a damaged
    /// store journal.
    Collector,
}

/// A rule ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The `alertname`.
    pub name: String,
    pub condition: Condition,
    pub for_: For,
    /// Labels every alert of the rule gets (`alertname` and `severity` among them).
    pub labels: Labels,
    pub annotations: BTreeMap<String, Template>,
}

/// Something a source found that may make an alert: its identifying labels, the labels it can
/// be matched on besides, its value and annotations of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub labels: Labels,
    /// Labels for matching only (not part of the alert's identity), e.g. `verdict`.
    pub match_only: Labels,
    pub value: f64,
    pub annotations: Labels,
}

/// An alert a rule wants active now.
#[derive(Debug, Clone, PartialEq)]
pub struct Active {
    pub labels: Labels,
    pub annotations: Labels,
    pub value: f64,
}

impl Rule {
    /// The alerts the rule makes of what a source found now (metric series, the collector's
    /// own trouble).
    pub fn alerts(&self, candidates: &[Candidate]) -> Vec<Active> {
        candidates.iter().map(|c| self.active(c)).collect()
    }

    /// What a detection rule makes of verdicts, in the order they were decided: for each
    /// verdict of a series it watches (all matchers but those on `verdict` match), that
    /// series' alert, and whether the verdict holds (drifted, and every matcher matches).
    pub fn steps(&self, verdicts: &[Verdict]) -> Vec<Step> {
        let Condition::Detections(matchers) = &self.condition else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for v in verdicts {
            let c = &v.candidate;
            let mut all = c.labels.clone();
            all.extend(c.match_only.clone());
            let watches = matchers
                .iter()
                .filter(|m| !c.match_only.contains_key(&m.name))
                .all(|m| m.matches(&all));
            if !watches {
                continue;
            }
            out.push(Step {
                alert: self.active(c),
                holds: v.drifted && all_match(matchers, &all),
            });
        }
        out
    }

    fn active(&self, c: &Candidate) -> Active {
        let mut labels = c.labels.clone();
        labels.extend(self.labels.clone());
        if self.condition == Condition::Collector
            && let Some(name) = c.labels.get("alertname")
        {
            // One built-in rule watches several kinds of trouble, each with its own name.
            labels.insert("alertname".into(), name.clone());
        }
        let mut annotations = c.annotations.clone();
        for (k, t) in &self.annotations {
            annotations.insert(k.clone(), t.render(&labels, c.value));
        }
        Active {
            labels,
            annotations,
            value: c.value,
        }
    }
}

fn rule_labels(name: &str, severity: &str, extra: &BTreeMap<String, String>) -> Labels {
    let mut labels = Labels::new();
    labels.insert("severity".into(), severity.into());
    labels.extend(extra.clone());
    labels.insert("alertname".into(), name.into());
    labels
}

fn builtin(
    name: &str,
    rule: &BuiltinRule,
    severity: Severity,
    condition: Condition,
) -> Option<Rule> {
    // Their summary and description come with what they found: the verdict's own words
    // (`wording`), or the collector's trouble.
    rule.enabled.then(|| Rule {
        name: name.into(),
        condition,
        for_: rule.for_,
        labels: rule_labels(
            name,
            rule.severity.unwrap_or(severity).as_str(),
            &rule.labels,
        ),
        annotations: BTreeMap::new(),
    })
}

fn m(text: &str) -> Vec<Matcher> {
    // Built-in matchers are constants; a typo is caught by the unit test below.
    text.split(';')
        .filter_map(|t| Matcher::parse(t).ok())
        .collect()
}

/// The rules to evaluate: the enabled built-ins, then the configured ones.
pub fn compile(config: &AlertingConfig) -> Vec<Rule> {
    let b = &config.builtin;
    let detections = |text: &str| Condition::Detections(m(text));
    let mut rules: Vec<Rule> = [
        builtin(
            "MillwatchDrift",
            &b.drift,
            Severity::Warning,
            detections(r#"detector=~"drift|drift_share""#),
        ),
        builtin(
            "MillwatchDataQuality",
            &b.data_quality,
            Severity::Warning,
            detections(r#"detector="data_quality""#),
        ),
        builtin(
            "MillwatchPerformanceDrop",
            &b.performance,
            Severity::Critical,
            detections(r#"detector=~"performance|performance_change""#),
        ),
        builtin(
            "MillwatchEstimatedPerformanceDrop",
            &b.estimated_performance,
            Severity::Warning,
            detections(r#"detector="estimated_performance""#),
        ),
        builtin(
            "MillwatchMultivariateDrift",
            &b.multivariate_drift,
            Severity::Warning,
            detections(r#"detector="multivariate_drift""#),
        ),
        builtin(
            "MillwatchStreamChange",
            &b.stream_change,
            Severity::Warning,
            detections(r#"detector="stream_change""#),
        ),
        builtin(
            "MillwatchMachineHealth",
            &b.machine_health,
            Severity::Critical,
            detections(r#"detector="machine_health";test!="absence""#),
        ),
        builtin(
            "MillwatchAbsence",
            &b.absence,
            Severity::Warning,
            detections(r#"detector="machine_health";test="absence""#),
        ),
        builtin(
            "MillwatchCollector",
            &b.collector,
            Severity::Warning,
            Condition::Collector,
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    for r in &config.rules {
        let condition = match (&r.detections, &r.metric) {
            (Some(d), _) => Condition::Detections(d.clone()),
            (None, Some(metric)) => Condition::Metric(metric.clone()),
            // `AlertingConfig::check` refuses a rule without a condition.
            (None, None) => continue,
        };
        rules.push(configured(r, condition));
    }
    rules
}

fn configured(r: &RuleConfig, condition: Condition) -> Rule {
    Rule {
        name: r.name.clone(),
        condition,
        for_: r.for_,
        labels: rule_labels(&r.name, r.severity.as_str(), &r.labels),
        annotations: r.annotations.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millwatch_exporters::notify::alert::labels;

    #[test]
    fn matchers_parse_and_match() {
        let l = labels(&[("model", "churn"), ("feature", "temp_3")]);
        for (text, want) in [
            (r#"model="churn""#, true),
            ("model=churn", true),
            (r#"model!="churn""#, false),
            (r#"feature=~"temp_.*""#, true),
            (r#"feature=~"temp""#, false),
            (r#"feature!~"temp_[0-9]""#, false),
            (r#"machine="""#, true),
            (r#"machine!="""#, false),
        ] {
            let m = Matcher::parse(text).expect(text);
            assert_eq!(m.matches(&l), want, "{text}");
        }
        let m = Matcher::parse(r#"a="x \"y\"""#).expect("escaped");
        assert_eq!(m.value, r#"x "y""#);
        assert_eq!(Matcher::parse(&m.to_string()).expect("round trip"), m);
        for bad in ["=x", "model~\"x\"", "model=~\"(\"", "model=\"open", "9x=1"] {
            assert!(Matcher::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn templates_render_labels_and_values() {
        let t = Template::parse("{{ $labels.model }} drifted: {{$value}} ({{ $labels.none }})")
            .expect("parses");
        let l = labels(&[("model", "churn")]);
        assert_eq!(t.render(&l, 0.123456), "churn drifted: 0.1235 ()");
        assert_eq!(t.render(&l, 3.0), "churn drifted: 3 ()");
        assert!(Template::parse("{{ $value }").is_err());
        assert!(Template::parse("{{ .Labels.x }}").is_err());
        assert_eq!(format_value(1234.5678), "1235");
        assert_eq!(format_value(12.5), "12.5");
        assert_eq!(format_value(0.000123456), "0.0001235");
        assert_eq!(format_value(1200.0), "1200");
    }

    #[test]
    fn builtins_compile_with_every_matcher() {
        let rules = compile(&AlertingConfig::default());
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "MillwatchDrift",
                "MillwatchDataQuality",
                "MillwatchPerformanceDrop",
                "MillwatchEstimatedPerformanceDrop",
                "MillwatchMachineHealth",
                "MillwatchAbsence",
                "MillwatchCollector"
            ]
        );
        let expected_matchers = [1, 1, 1, 1, 2, 2];
        for (r, n) in rules.iter().zip(expected_matchers) {
            match &r.condition {
                Condition::Detections(ms) => assert_eq!(ms.len(), n, "{}", r.name),
                other => panic!("{}: {other:?}", r.name),
            }
        }
        let mut off = AlertingConfig::default();
        off.builtin.drift.enabled = false;
        off.builtin.collector.enabled = false;
        assert_eq!(compile(&off).len(), 5);
    }

    fn verdict(pairs: &[(&str, &str)], verdict: &str, drifted: bool) -> Verdict {
        Verdict {
            candidate: Candidate {
                labels: labels(pairs),
                match_only: labels(&[("verdict", verdict)]),
                value: 0.5,
                annotations: labels(&[("summary", "from the verdict")]),
            },
            drifted,
        }
    }

    #[test]
    fn a_rule_steps_through_the_verdicts_of_the_series_it_watches() {
        let drift = &compile(&AlertingConfig::default())[0];
        let f1 = [
            ("model", "churn"),
            ("feature", "f1"),
            ("detector", "drift"),
            ("test", "ks"),
        ];
        let quality = [
            ("model", "churn"),
            ("feature", "f1"),
            ("detector", "data_quality"),
        ];
        let steps = drift.steps(&[
            verdict(&f1, "drift", true),
            verdict(&quality, "out_of_range", true),
            verdict(&f1, "no_drift", false),
        ]);
        assert_eq!(
            steps.iter().map(|s| s.holds).collect::<Vec<_>>(),
            [true, false]
        );
        let a = &steps[0].alert;
        assert_eq!(a.labels["alertname"], "MillwatchDrift");
        assert_eq!(a.labels["severity"], "warning");
        assert!(!a.labels.contains_key("verdict"));
        assert_eq!(a.annotations["summary"], "from the verdict");
        assert_eq!(steps[1].alert.labels, a.labels);
        // A matcher on `verdict`: another verdict of the watched series ends its alert.
        let config: AlertingConfig = serde_saphyr::from_str(
            "rules: [{name: OutOfRange, detections: ['detector=\"data_quality\"', 'verdict=~\".*out_of_range.*\"'], annotations: {summary: '{{ $labels.feature }} at {{ $value }}'}}]",
        )
        .expect("config");
        let own = compile(&config).pop().expect("own rule");
        let steps = own.steps(&[
            verdict(&quality, "out_of_range", true),
            verdict(&quality, "missing", true),
            verdict(&f1, "drift", true),
        ]);
        assert_eq!(
            steps.iter().map(|s| s.holds).collect::<Vec<_>>(),
            [true, false]
        );
        assert_eq!(steps[0].alert.annotations["summary"], "f1 at 0.5");
    }
}
