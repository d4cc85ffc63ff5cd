//! Shared helpers of the Prometheus and remote-write tests: OTLP request builders and a real
//! `prometheus` server started on loopback with a temporary data directory.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exponential_histogram_data_point, metric, number_data_point,
    summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

pub fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub fn metric(name: &str, unit: &str, description: &str, data: metric::Data) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        description: description.into(),
        data: Some(data),
        ..Default::default()
    }
}

pub fn number(attrs: &[(&str, &str)], t: u64, v: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
        start_time_unix_nano: t.saturating_sub(60_000_000_000),
        time_unix_nano: t,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

pub fn gauge(name: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
    metric(
        name,
        unit,
        &format!("{name} reading."),
        metric::Data::Gauge(Gauge {
            data_points: points,
        }),
    )
}

pub fn sum(
    name: &str,
    unit: &str,
    monotonic: bool,
    delta: bool,
    points: Vec<NumberDataPoint>,
) -> Metric {
    let t = if delta {
        AggregationTemporality::Delta
    } else {
        AggregationTemporality::Cumulative
    };
    metric(
        name,
        unit,
        &format!("{name} total."),
        metric::Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: t as i32,
            is_monotonic: monotonic,
        }),
    )
}

pub fn histogram(
    name: &str,
    unit: &str,
    attrs: &[(&str, &str)],
    t: u64,
    bounds: &[f64],
    counts: &[u64],
    sum: f64,
) -> Metric {
    metric(
        name,
        unit,
        "Distribution.",
        metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
                start_time_unix_nano: t.saturating_sub(60_000_000_000),
                time_unix_nano: t,
                count: counts.iter().sum(),
                sum: Some(sum),
                bucket_counts: counts.to_vec(),
                explicit_bounds: bounds.to_vec(),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
    )
}

/// An exponential histogram in seconds.
pub fn exp_histogram_seconds(
    name: &str,
    t: u64,
    scale: i32,
    offset: i32,
    counts: &[u64],
    zero: u64,
    sum: f64,
) -> Metric {
    metric(
        name,
        "s",
        "Exponential distribution.",
        metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![ExponentialHistogramDataPoint {
                start_time_unix_nano: t.saturating_sub(60_000_000_000),
                time_unix_nano: t,
                count: counts.iter().sum::<u64>() + zero,
                sum: Some(sum),
                scale,
                zero_count: zero,
                positive: Some(exponential_histogram_data_point::Buckets {
                    offset,
                    bucket_counts: counts.to_vec(),
                }),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
    )
}

pub fn summary(
    name: &str,
    unit: &str,
    t: u64,
    quantiles: &[(f64, f64)],
    count: u64,
    sum: f64,
) -> Metric {
    metric(
        name,
        unit,
        "Quantiles.",
        metric::Data::Summary(Summary {
            data_points: vec![SummaryDataPoint {
                start_time_unix_nano: t.saturating_sub(60_000_000_000),
                time_unix_nano: t,
                count,
                sum,
                quantile_values: quantiles
                    .iter()
                    .map(|(q, v)| ValueAtQuantile {
                        quantile: *q,
                        value: *v,
                    })
                    .collect(),
                ..Default::default()
            }],
        }),
    )
}

/// A request from one service of a plant line carrying `metrics`.
pub fn request(service: &str, instance: &str, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", service),
                    kv("service.namespace", "plant"),
                    kv("service.instance.id", instance),
                    kv("site.name", "plant-a"),
                    kv("site.line", "line-3"),
                    kv("host.name", "edge-01"),
                    kv("os.type", "linux"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "press-monitor".into(),
                    version: "1.2.0".into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Every OTLP metric kind, with shop-floor names.
pub fn all_kinds(t: u64, scale: f64) -> Vec<Metric> {
    vec![
        gauge(
            "hw.temperature",
            "Cel",
            vec![
                number(
                    &[("hw.id", "spindle-1"), ("hw.sensor_location", "front")],
                    t,
                    61.5 * scale,
                ),
                number(
                    &[
                        ("hw.id", "spindle-2"),
                        ("hw.sensor_location", "rear \"hot\"\\side"),
                    ],
                    t,
                    58.0 * scale,
                ),
            ],
        ),
        gauge(
            "machine.spindle.load",
            "1",
            vec![number(&[("hw.id", "spindle-1")], t, 0.75)],
        ),
        sum(
            "hw.energy",
            "J",
            true,
            false,
            vec![number(&[("hw.id", "press")], t, 1.5e6 * scale)],
        ),
        sum(
            "hw.errors",
            "{error}",
            true,
            false,
            vec![number(&[("hw.type", "fan")], t, 3.0 * scale)],
        ),
        sum(
            "machine.queue.depth",
            "{item}",
            false,
            false,
            vec![number(&[], t, -2.0)],
        ),
        histogram(
            "machine.cycle.duration",
            "s",
            &[("ml.model.name", "scrap-classifier")],
            t,
            &[0.5, 1.0, 2.5],
            &[1, 4, 2, 1],
            9.5 * scale,
        ),
        exp_histogram_seconds(
            "gen_ai.client.operation.duration",
            t,
            1,
            -2,
            &[1, 2, 3, 1],
            1,
            4.25,
        ),
        summary(
            "machine.vibration.rms",
            "m/s",
            t,
            &[(0.5, 0.01), (0.99, 0.04)],
            100,
            1.3,
        ),
    ]
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub fn which(tool: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{tool} not found: install Debian's `prometheus` package (apt-get install -y prometheus)"
    );
}

/// A `prometheus` server on loopback, killed when dropped.
pub struct PrometheusServer {
    child: Option<Child>,
    pub port: u16,
    pub data: PathBuf,
    config: PathBuf,
    args: Vec<String>,
}

impl PrometheusServer {
    /// Starts Prometheus with `extra_args` and `scrape_config` (YAML under `scrape_configs:`,
    /// may be empty), its TSDB under `data`. Waits until it is ready.
    pub fn start(dir: &Path, data: &Path, scrape_config: &str, extra_args: &[&str]) -> Self {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{scrape_config}"),
        )
        .expect("write prometheus config");
        let port = free_port();
        let mut args = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", data.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--log.level=warn".to_string(),
        ];
        args.extend(extra_args.iter().map(|s| s.to_string()));
        let mut server = Self {
            child: None,
            port,
            data: data.to_path_buf(),
            config,
            args,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.config.with_extension("log")).expect("log file");
        let child = Command::new(which("prometheus"))
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(body) = http_get(self.port, "/-/ready")
                && body.contains("Ready")
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = std::fs::read_to_string(self.config.with_extension("log")).unwrap_or_default();
        panic!(
            "prometheus did not become ready on port {}: {log}",
            self.port
        );
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGTERM, then waits), keeping its data directory.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Runs an instant PromQL query and returns `(labels, value)` of each result.
    pub fn query(&self, promql: &str) -> Vec<(serde_json::Map<String, serde_json::Value>, f64)> {
        let path = format!("/api/v1/query?query={}", urlencode(promql));
        let body = http_get(self.port, &path).expect("query prometheus");
        let v: serde_json::Value = serde_json::from_str(&body).expect("query answer is JSON");
        assert_eq!(v["status"], "success", "{body}");
        v["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                let labels = r["metric"].as_object().cloned().unwrap_or_default();
                let value = r["value"][1]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(f64::NAN);
                (labels, value)
            })
            .collect()
    }

    /// Raw `query_range` answer values of one series selector: `(unix seconds, value)`.
    pub fn query_range(&self, promql: &str, start: f64, end: f64, step: f64) -> Vec<(f64, f64)> {
        let path = format!(
            "/api/v1/query_range?query={}&start={start}&end={end}&step={step}",
            urlencode(promql)
        );
        let body = http_get(self.port, &path).expect("query_range prometheus");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["status"], "success", "{body}");
        v["data"]["result"][0]["values"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                (
                    p[0].as_f64().unwrap_or(f64::NAN),
                    p[1].as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(f64::NAN),
                )
            })
            .collect()
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A minimal blocking HTTP/1.0 GET against loopback, to keep the test helpers runtime-free.
pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    Ok(buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}
