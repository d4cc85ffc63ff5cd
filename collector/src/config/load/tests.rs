//! The loader end to end, on a small config in the style of the real one: what loads, and
//! every kind of mistake with its place and hint.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::*;

/// A small config in the style of the real one.
#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestConfig {
    #[serde(default)]
    receivers: Receivers,
    #[serde(default)]
    storage: Storage,
    #[serde(default)]
    alerts: Alerts,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Receivers {
    #[serde(default)]
    otlp: Otlp,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Otlp {
    #[serde(default)]
    grpc: Grpc,
    #[serde(default)]
    http: Option<Grpc>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Grpc {
    #[serde(default = "default_endpoint")]
    endpoint: String,
    #[serde(default)]
    max_recv_msg_size: Option<NonZeroUsize>,
}

impl Default for Grpc {
    fn default() -> Self {
        Grpc {
            endpoint: default_endpoint(),
            max_recv_msg_size: None,
        }
    }
}

fn default_endpoint() -> String {
    "127.0.0.1:4317".to_string()
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Storage {
    path: String,
    #[serde(with = "humantime_serde")]
    retention: Duration,
    compression: Compression,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            path: "./millwatch-data".to_string(),
            retention: Duration::from_secs(3 * 24 * 3600),
            compression: Compression::None,
        }
    }
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Compression {
    None,
    Zstd,
    Snappy,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Alerts {
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    name: String,
    threshold: f64,
    #[serde(default, with = "humantime_serde")]
    r#for: Duration,
    #[serde(default)]
    severity: Severity,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Severity {
    #[default]
    Warning,
    Critical,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/config")
        .join(name)
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(text: &str) -> Result<TestConfig, ConfigErrors> {
    load_str(text, "test.yaml", &no_env)
}

fn messages(result: Result<TestConfig, ConfigErrors>) -> Vec<String> {
    match result {
        Ok(config) => panic!("expected errors, loaded {config:?}"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn valid_file_loads() {
    let config: TestConfig = load_file(&fixture("loader_valid.yaml")).expect("valid config");
    let expected = TestConfig {
        receivers: Receivers {
            otlp: Otlp {
                grpc: Grpc {
                    endpoint: "0.0.0.0:4317".to_string(),
                    max_recv_msg_size: NonZeroUsize::new(4_194_304),
                },
                http: None,
            },
        },
        storage: Storage {
            path: "./millwatch-data".to_string(),
            retention: Duration::from_secs(7 * 24 * 3600),
            compression: Compression::Zstd,
        },
        alerts: Alerts {
            rules: vec![
                Rule {
                    name: "latency".to_string(),
                    threshold: 0.25,
                    r#for: Duration::from_secs(300),
                    severity: Severity::Critical,
                    note: None,
                },
                Rule {
                    name: "drift".to_string(),
                    threshold: 3.0,
                    r#for: Duration::ZERO,
                    severity: Severity::Warning,
                    note: Some(
                        "# not a comment: text of a block scalar\nkept as written\n".to_string(),
                    ),
                },
            ],
        },
    };
    assert_eq!(config, expected);
}

#[test]
fn empty_file_and_empty_sections_mean_defaults() {
    for text in [
        "",
        "# nothing but a comment\n",
        "receivers:\n  otlp:\n    grpc:\nalerts:\n  rules:\n",
    ] {
        assert_eq!(load(text).expect(text), TestConfig::default(), "{text:?}");
    }
}

#[test]
fn env_variables_are_substituted() {
    let env = |name: &str| match name {
        "PORT" => Some("4318".to_string()),
        "EMPTY" => Some(String::new()),
        "QUOTED" => Some("say \"hi\" \\ bye".to_string()),
        _ => None,
    };
    let text = "\
receivers:
  otlp:
    grpc:
      endpoint: 0.0.0.0:${env:PORT}   # ${env:IN_A_COMMENT} is not substituted
    http:
      endpoint: ${env:HTTP_ENDPOINT:-127.0.0.1:4318}
storage:
  path: ${env:EMPTY:-/var/lib/millwatch}
alerts:
  rules:
    - name: \"${env:QUOTED}\"
      threshold: 1
    - name: cost is $${env:DOLLARS}
      threshold: 2
";
    let config: TestConfig = load_str(text, "test.yaml", &env).expect("substituted config");
    assert_eq!(config.receivers.otlp.grpc.endpoint, "0.0.0.0:4318");
    assert_eq!(
        config.receivers.otlp.http.map(|h| h.endpoint).as_deref(),
        Some("127.0.0.1:4318")
    );
    assert_eq!(config.storage.path, "/var/lib/millwatch");
    assert_eq!(config.alerts.rules[0].name, "say \"hi\" \\ bye");
    assert_eq!(config.alerts.rules[1].name, "cost is ${env:DOLLARS}");
}

#[test]
fn unset_env_variables_are_errors_at_their_place() {
    let text = "\
storage:
  path: ${env:DATA_DIR}
alerts:
  rules:
    - name: latency
      threshold: ${env:LATENCY_THRESHOLD}
      severity: critcal
";
    assert_eq!(
        messages(load(text)),
        [
            "test.yaml:2:9: storage.path: environment variable `DATA_DIR` is not set \
                 (hint: set it, or give a default: ${env:DATA_DIR:-value})",
            "test.yaml:6:18: alerts.rules[0].threshold: environment variable `LATENCY_THRESHOLD` is not set \
                 (hint: set it, or give a default: ${env:LATENCY_THRESHOLD:-value})",
            "test.yaml:7:7: alerts.rules[0].severity: unknown variant `critcal` (hint: did you mean `critical`?)",
        ]
    );
}

#[test]
fn malformed_env_references_are_errors() {
    assert_eq!(
        messages(load("storage:\n  path: ${env:1DIR}\nalerts: ${env:OPEN\n")),
        [
            "test.yaml:2:9: storage.path: `1DIR` is not a valid environment variable name \
                 (hint: use letters, digits and `_`, not starting with a digit)",
            "test.yaml:3:9: alerts: `${env:` is not closed by `}` \
                 (hint: write ${env:NAME} or ${env:NAME:-default}; $${ stands for a literal ${)",
        ]
    );
}

#[test]
fn three_mistakes_are_reported_together() {
    let path = fixture("loader_three_mistakes.yaml");
    let file = path.display();
    assert_eq!(
        messages(load_file(&path)),
        [
            format!(
                "{file}:4:5: receivers.otlp.grcp: unknown field `grcp` (hint: did you mean `grpc`?)"
            ),
            format!(
                "{file}:8:3: storage.retention: invalid value: string \"30 dys\", expected a duration \
                     (hint: use a duration such as 30s, 5m, 1h)"
            ),
            format!(
                "{file}:14:7: alerts.rules[1].threshold: invalid type: string \"high\", expected f64 \
                     (hint: use a number such as 0.5)"
            ),
        ]
    );
}

#[test]
fn yaml_syntax_error_is_reported_with_its_line() {
    let path = fixture("loader_syntax_error.yaml");
    assert_eq!(
        messages(load_file(&path)),
        [format!(
            "{}:3:13: invalid YAML: mapping values are not allowed in this context",
            path.display()
        )]
    );
}

#[test]
fn wrong_kinds_of_value_get_hints() {
    let text = "\
receivers:
  otlp:
    grpc: 5
    http:
      max_recv_msg_size: 0
storage:
  compression: 3
alerts:
  rules:
    - 1
    - name: no threshold
    - name: bad severity
      threshold: 1
      severity: low
    - name: [not, a, string]
      threshold: 2
      enabled: true
";
    assert_eq!(
        messages(load(text)),
        [
            "test.yaml:3:5: receivers.otlp.grpc: invalid type: integer `5`, expected struct Grpc \
                 (hint: expected a section with the fields: `endpoint`, `max_recv_msg_size`)",
            "test.yaml:5:7: receivers.otlp.http.max_recv_msg_size: invalid value: integer `0`, \
                 expected a nonzero usize (hint: use a whole number greater than 0)",
            "test.yaml:7:3: storage.compression: invalid type: integer `3`, expected enum \
                 (hint: expected one of: `none`, `zstd`, `snappy`)",
            "test.yaml:10:7: alerts.rules[0]: invalid type: integer `1`, expected struct Rule \
                 (hint: expected a section with the fields: `name`, `threshold`, `for`, `severity`, `note`)",
            "test.yaml:11:7: alerts.rules[1].threshold: missing required field `threshold` \
                 (hint: add `threshold:` under `alerts.rules[1]`)",
            "test.yaml:14:7: alerts.rules[2].severity: unknown variant `low` \
                 (hint: expected one of: `warning`, `critical`)",
            "test.yaml:15:7: alerts.rules[3].name: invalid type: sequence, expected a string \
                 (hint: put the value in quotes to make it text)",
            "test.yaml:17:7: alerts.rules[3].enabled: unknown field `enabled` \
                 (hint: expected one of: `name`, `threshold`, `for`, `severity`, `note`)",
        ]
    );
}

#[test]
fn missing_fields_at_the_top_and_unreadable_files() {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Required {
        #[allow(dead_code)]
        name: String,
    }
    let result = load_str::<Required>("", "empty.yaml", &no_env);
    assert_eq!(
        result.map_err(|e| e.to_string()).err().as_deref(),
        Some(
            "empty.yaml: name: missing required field `name` (hint: add `name:` at the top level)"
        )
    );

    let path = fixture("does_not_exist.yaml");
    let error = load_file::<TestConfig>(&path)
        .expect_err("missing file")
        .to_string();
    assert!(
        error.starts_with(&format!(
            "{}: cannot read the config file: ",
            path.display()
        )),
        "{error}"
    );
}

#[test]
fn errors_display_one_per_line() {
    let errors = load("storage:\n  pth: x\n  retention: soon\n").expect_err("two mistakes");
    assert_eq!(
        errors.to_string(),
        "test.yaml:2:3: storage.pth: unknown field `pth` (hint: did you mean `path`?)\n\
             test.yaml:3:3: storage.retention: invalid value: string \"soon\", expected a duration \
             (hint: use a duration such as 30s, 5m, 1h)"
    );
}

#[test]
fn enums_and_maps_of_sections() {
    // Only the errors matter here, so the loaded fields are never read.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Detectors {
        #[serde(default)]
        tagged: Vec<Tagged>,
        #[serde(default)]
        typed: Vec<Typed>,
        #[serde(default)]
        named: std::collections::BTreeMap<String, Window>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Tagged {
        Zscore(Window),
        Fixed,
    }
    #[derive(Debug, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
    #[allow(dead_code)]
    enum Typed {
        Zscore { window: usize },
        Fixed { level: f64 },
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Window {
        window: usize,
    }
    let text = "\
tagged:
  - !zscore
    window: x
  - !fixd
typed:
  - type: fixed
    level: 1
    extra: 2
  - type: zscor
named:
  latency:
    windw: 5
";
    let errors = load_str::<Detectors>(text, "test.yaml", &no_env).expect_err("mistakes");
    assert_eq!(
        errors.to_string().lines().collect::<Vec<_>>(),
        [
            "test.yaml:3:5: tagged[0].zscore.window: invalid type: string \"x\", expected usize \
                 (hint: use a whole number)",
            "test.yaml:4:5: tagged[1]: unknown variant `fixd` (hint: did you mean `fixed`?)",
            "test.yaml:8:5: typed[0].extra: unknown field `extra` (hint: expected one of: `level`)",
            "test.yaml:9:5: typed[1].type: unknown variant `zscor` (hint: did you mean `zscore`?)",
            // Only the typo: the `window` it stood for is not reported missing as well.
            "test.yaml:12:5: named.latency.windw: unknown field `windw` (hint: did you mean `window`?)",
        ]
    );
}

#[test]
fn anchors_and_merge_keys_are_resolved() {
    let text = "\
alerts:
  rules:
    - &base
      name: latency
      threshold: 0.5
    - <<: *base
      name: latency-strict
      treshold: 0.1
";
    assert_eq!(
        messages(load(text)),
        [
            "test.yaml:8:7: alerts.rules[1].treshold: unknown field `treshold` (hint: did you mean `threshold`?)"
        ]
    );
    let config = load(&text.replace("treshold", "threshold")).expect("merged config");
    assert_eq!(config.alerts.rules[1].name, "latency-strict");
    assert_eq!(config.alerts.rules[1].threshold, 0.1);
}
