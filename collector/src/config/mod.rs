//! Millwatch's configuration: every setting with its documentation and its default, in one
//! place. Unknown keys are refused; durations are written like `30s` or `7d`.

pub mod files;
pub mod load;
pub mod reference;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole configuration file. An empty file is the embedded default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the DuckDB database (`millwatch.duckdb`) lives.
    pub data_dir: PathBuf,
    /// How signals arrive.
    pub receivers: Receivers,
    /// The HTTP API, `/metrics` and the health endpoints.
    pub api: Api,
    /// The bounded queue between receivers and the store.
    pub pipeline: Pipeline,
    /// Storage settings.
    pub store: StoreConfig,
    /// Where data goes besides DuckDB: `/metrics` for Prometheus, remote write.
    pub exporters: Exporters,
    /// Drift, data-quality, performance and machine-health detection on what is stored.
    pub detection: crate::detection::DetectionConfig,
    /// Alert rules, routing, silences and receivers (email, webhook, Alertmanager).
    #[serde(deserialize_with = "crate::alerting::config::checked")]
    pub alerting: crate::alerting::AlertingConfig,
    /// The collector's own logs.
    pub log: Log,
    /// The audit trail: its retention and how often it reads what other parts wrote.
    pub audit: crate::audit::AuditConfig,
    /// Reports made on a schedule, mailed as attachments through the alert outbox and/or
    /// written to a directory.
    pub reports: Vec<crate::report::schedule::ScheduledReport>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./millwatch-data"),
            receivers: Receivers::default(),
            api: Api::default(),
            pipeline: Pipeline::default(),
            store: StoreConfig::default(),
            exporters: Exporters::default(),
            detection: crate::detection::DetectionConfig::default(),
            alerting: crate::alerting::AlertingConfig::default(),
            log: Log::default(),
            audit: crate::audit::AuditConfig::default(),
            reports: Vec::new(),
        }
    }
}

impl Config {
    /// Loads the config file at `path` as `run` and `validate` both use it: every mistake at
    /// once with its place, the files it names resolved against its folder and checked
    /// ([`files`]).
    pub fn from_file(path: &Path) -> Result<Config, load::ConfigErrors> {
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        // The file was just found through it, so the folder exists; `..` and links resolved,
        // error messages show the real place.
        let folder = std::fs::canonicalize(folder)
            .or_else(|_| std::path::absolute(folder))
            .unwrap_or_else(|_| folder.to_path_buf());
        load::load_file_checked(path, |config: &mut Config| {
            let mut problems = files::resolve_and_check(config, &folder);
            problems.extend(crate::report::schedule::check(config));
            problems.extend(crate::audit::check(config));
            problems
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Receivers {
    /// OTLP over gRPC and HTTP.
    pub otlp: Otlp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Otlp {
    /// OTLP/gRPC listener.
    pub grpc: Listener,
    /// OTLP/HTTP listener (`/v1/metrics`, `/v1/logs`, `/v1/traces`).
    pub http: Listener,
    /// Largest request body accepted, checked before and after decompression (bytes, or `20MiB`).
    pub max_body_size: ByteSize,
}

impl Default for Otlp {
    fn default() -> Self {
        Otlp {
            grpc: Listener {
                enabled: true,
                endpoint: SocketAddr::from(([127, 0, 0, 1], 4317)),
            },
            http: Listener {
                enabled: true,
                endpoint: SocketAddr::from(([127, 0, 0, 1], 4318)),
            },
            max_body_size: ByteSize(20 * 1024 * 1024),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Whether this listener runs.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Address and port to listen on, e.g. `0.0.0.0:4317` to accept other machines.
    pub endpoint: SocketAddr,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// Address of the HTTP API, `/metrics`, `/healthz` and `/readyz`.
    pub endpoint: SocketAddr,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            endpoint: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Pipeline {
    /// Rows (across all tables) that may wait for the store at once. Past it, requests are
    /// refused with 429 / UNAVAILABLE and a retry hint: backpressure, never a silent drop.
    pub max_queued_rows: std::num::NonZeroUsize,
    /// The retry delay suggested to clients when the queue is full.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub retry_after: Duration,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            max_queued_rows: std::num::NonZeroUsize::new(4_000_000).expect("non-zero"),
            retry_after: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// A DuckDB transaction holds at most this many rows (a group of requests, or the
    /// journaled requests committed together under load).
    pub max_rows_per_commit: std::num::NonZeroUsize,
    /// Under load, the longest an acknowledged (journaled) row waits for its DuckDB commit.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub commit_interval: Duration,
    /// Under load, acknowledge requests once they are in the journal, synced to disk, and
    /// commit them to DuckDB in large transactions.
    pub journal: JournalConfig,
    /// Rows older than this are deleted; `null` keeps everything.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "Option<millwatch_exporters::units::DurationText>")]
    pub retention: Option<Duration>,
    /// How often retention runs.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub retention_interval: Duration,
    /// DuckDB checkpoints (folds its write-ahead log into the database file) once the log is
    /// this big. Larger: fewer, longer pauses of the writer and less work per row; a restart
    /// after a crash replays up to this much log.
    pub checkpoint_threshold: ByteSize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_rows_per_commit: std::num::NonZeroUsize::new(200_000).expect("non-zero"),
            commit_interval: Duration::from_millis(250),
            journal: JournalConfig::default(),
            retention: Some(Duration::from_secs(30 * 24 * 3600)),
            retention_interval: Duration::from_secs(3600),
            checkpoint_threshold: ByteSize(256 * 1024 * 1024),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// `false`: every request is committed to DuckDB before it is acknowledged.
    pub enabled: bool,
    /// Below this many rows per second reaching the store, requests are committed to DuckDB
    /// before they are acknowledged; from it on they are journaled. 0 journals everything.
    pub above_rows_per_second: usize,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            enabled: true,
            above_rows_per_second: 50_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Exporters {
    /// `/metrics`: ingested OTLP metrics translated for Prometheus, plus Millwatch's own series.
    pub prometheus: millwatch_exporters::prometheus::ExpositionConfig,
    /// Prometheus remote-write targets (Mimir, Thanos, Cortex, VictoriaMetrics, Prometheus with
    /// `--web.enable-remote-write-receiver`); each has its own persistent queue.
    pub remote_write: Vec<millwatch_exporters::remote_write::RemoteWriteConfig>,
    /// OTLP destinations (a central Millwatch, an OpenTelemetry Collector, a vendor backend):
    /// received metrics, logs and spans are queued on disk before the client is acknowledged
    /// and forwarded from there; each has its own persistent queue.
    pub otlp: Vec<millwatch_exporters::otlp::OtlpExporterConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `error`, `warn`, `info`, `debug` or `trace`, or a `tracing` filter such as `millwatch=debug`.
    pub level: String,
    /// How log lines are written.
    pub format: LogFormat,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// A size in bytes, written as a number or with a unit: `512KiB`, `20MiB`, `1GB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let n: usize = number
            .parse()
            .map_err(|_| format!("invalid size {s:?}: expected e.g. 20MiB"))?;
        let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1000,
            "kib" | "k" => 1024,
            "mb" => 1000 * 1000,
            "mib" | "m" => 1024 * 1024,
            "gb" => 1000 * 1000 * 1000,
            "gib" | "g" => 1024 * 1024 * 1024,
            other => {
                return Err(format!(
                    "unknown size unit {other:?}: use B, KiB, MiB, GiB, KB, MB or GB"
                ));
            }
        };
        n.checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| format!("size {s:?} is too large"))
    }
}

/// In the configuration reference: a number of bytes, or text with a unit.
impl JsonSchema for ByteSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["integer", "string"], "format": "size" })
    }

    fn inline_schema() -> bool {
        true
    }
}

/// Written as the README writes sizes (`20MiB`), which reads back as the same size.
impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = millwatch_exporters::units::format_size(self.0 as u64);
        // A size no unit divides is written as its number of bytes, a number as in the file.
        if text.bytes().all(|b| b.is_ascii_digit()) {
            s.serialize_u64(self.0 as u64)
        } else {
            s.serialize_str(&text)
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n as usize)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default() {
        let c: Config = serde_saphyr::from_str("{}").expect("parses");
        assert_eq!(c, Config::default());
        assert_eq!(c.receivers.otlp.max_body_size.0, 20 * 1024 * 1024);
    }

    #[test]
    fn sizes_and_durations() {
        let c: Config = serde_saphyr::from_str(
            "receivers:\n  otlp:\n    max_body_size: 4MiB\nstore:\n  retention: 7d\npipeline:\n  retry_after: 250ms\n",
        )
        .expect("parses");
        assert_eq!(c.receivers.otlp.max_body_size.0, 4 * 1024 * 1024);
        assert_eq!(c.store.retention, Some(Duration::from_secs(7 * 24 * 3600)));
        assert_eq!(c.pipeline.retry_after, Duration::from_millis(250));
        assert!("12XB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn the_printed_configuration_reads_as_the_readme_and_back() {
        let yaml = serde_saphyr::to_string(&Config::default()).expect("serialise");
        for line in [
            "  retention: 30d\n",
            "  retention_interval: 1h\n",
            "  commit_interval: 250ms\n",
            "  checkpoint_threshold: 256MiB\n",
            "    max_body_size: 20MiB\n",
            "    series_ttl: 5m\n",
            "  time_window_grace: 10s\n",
        ] {
            assert!(yaml.contains(line), "{line:?} in\n{yaml}");
        }
        assert!(!yaml.contains("days"), "{yaml}");
        assert_eq!(
            serde_saphyr::from_str::<Config>(&yaml).expect("reads back"),
            Config::default()
        );

        let custom: Config = serde_saphyr::from_str(
            "receivers:\n  otlp:\n    max_body_size: 1500\nstore:\n  retention: 1h 30m\n  checkpoint_threshold: 1GB\n",
        )
        .expect("parses");
        let yaml = serde_saphyr::to_string(&custom).expect("serialise");
        assert!(yaml.contains("  retention: 1h30m\n"), "{yaml}");
        assert!(yaml.contains("  checkpoint_threshold: 1GB\n"), "{yaml}");
        assert!(yaml.contains("    max_body_size: 1500\n"), "{yaml}");
        assert_eq!(
            serde_saphyr::from_str::<Config>(&yaml).expect("reads back"),
            custom
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = serde_saphyr::from_str::<Config>("api:\n  endpont: 127.0.0.1:1\n")
            .expect_err("refused");
        assert!(err.to_string().contains("unknown field `endpont`"), "{err}");
    }
}
