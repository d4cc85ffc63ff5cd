//! `millwatch bench exposition`: `/metrics` through the real HTTP listener. Starts a collector
//! (this binary, a temporary data directory), fills its exposition with `--series` gauge
//! series over OTLP/HTTP, then times GETs of `/metrics` in each format with an HTTP client on
//! loopback, from the request to the last byte of the body, one request in flight.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::bodies::{kv, string};
use super::ingest::{HttpClient, http_client, process_usage, start_collector};

/// Series per metric: the default `max_series_per_metric`.
const SERIES_PER_METRIC: usize = 10_000;

#[derive(Debug, clap::Args)]
pub struct ExpositionArgs {
    /// Series to expose (gauges of 10,000 series each, the default cardinality limit per metric).
    #[arg(long, default_value_t = 100_000)]
    pub series: usize,
    /// Timed GETs of /metrics per format (after 3 untimed ones). A p99 needs at least 100:
    /// over fewer it would be the maximum, and is not printed.
    #[arg(long, default_value_t = 100)]
    pub requests: usize,
    /// Pin the started collector to these CPUs (`taskset -c`), e.g. `1`.
    #[arg(long)]
    pub collector_cpus: Option<String>,
}

/// Below this many GETs the nearest-rank p99 is the slowest GET.
const P99_MIN_REQUESTS: usize = 100;

/// The nearest-rank `p` quantile of sorted values (none when empty).
fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    let rank = ((p * sorted.len() as f64).ceil() as usize).max(1);
    sorted.get(rank - 1).copied()
}

/// One OTLP request: metric `m` with `n` series, labelled like plant sensors.
fn request(m: usize, n: usize) -> ExportMetricsServiceRequest {
    let points = (0..n)
        .map(|i| NumberDataPoint {
            attributes: vec![
                kv("hw.id", string(&format!("sensor-{i}"))),
                kv("hw.sensor_location", string("spindle")),
            ],
            time_unix_nano: crate::pipeline::now_ns() as u64,
            value: Some(number_data_point::Value::AsDouble(20.0 + i as f64 * 0.5)),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", string("press-line")),
                    kv("service.instance.id", string("edge-1")),
                    kv("site.name", string("plant-a")),
                    kv("site.line", string("line-3")),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: format!("machine.sensor{m}.value"),
                    unit: "Cel".into(),
                    description: "A sensor reading.".into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: points,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

struct Format {
    name: &'static str,
    accept: &'static str,
    gzip: bool,
    /// What the `Content-Type` of the answer must start with.
    content_type: &'static str,
}

const FORMATS: [Format; 3] = [
    Format {
        name: "text 0.0.4",
        accept: "text/plain; version=0.0.4",
        gzip: false,
        content_type: "text/plain; version=0.0.4",
    },
    Format {
        name: "OpenMetrics 1.0",
        accept: "application/openmetrics-text; version=1.0.0",
        gzip: false,
        content_type: "application/openmetrics-text",
    },
    Format {
        name: "text 0.0.4, gzip",
        accept: "text/plain; version=0.0.4",
        gzip: true,
        content_type: "text/plain; version=0.0.4",
    },
];

/// One GET of /metrics: the body's bytes as sent (compressed when gzip) and the time to the
/// body's last byte.
async fn get(client: &HttpClient, url: &str, f: &Format) -> anyhow::Result<(Bytes, Duration)> {
    let mut req = client.get(url).header("accept", f.accept);
    if f.gzip {
        req = req.header("accept-encoding", "gzip");
    }
    let t = Instant::now();
    let resp = req.send().await.context("GET /metrics")?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await?;
    let took = t.elapsed();
    ensure!(status.is_success(), "GET /metrics: {status}");
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .unwrap_or("")
    };
    ensure!(
        header("content-type").starts_with(f.content_type),
        "{}: answered with content type {:?}",
        f.name,
        header("content-type")
    );
    ensure!(
        (header("content-encoding") == "gzip") == f.gzip,
        "{}: content encoding {:?}",
        f.name,
        header("content-encoding")
    );
    Ok((body, took))
}

/// Sample lines of a text or OpenMetrics page.
fn samples(body: &[u8]) -> usize {
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty() && l[0] != b'#')
        .count()
}

pub async fn run(args: ExpositionArgs) -> anyhow::Result<()> {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let started = start_collector(
        None,
        args.collector_cpus.as_deref(),
        Some("detection:\n  enabled: false\n"),
    )
    .await?;
    let pid = started.spawned.child.id();
    let client = http_client()?;
    let t = Instant::now();
    let mut left = args.series;
    for m in 0..args.series.div_ceil(SERIES_PER_METRIC) {
        let n = left.min(SERIES_PER_METRIC);
        left -= n;
        let body = request(m, n).encode_to_vec();
        let resp = client
            .post(format!("{}/v1/metrics", started.http))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .context("POST /v1/metrics")?;
        if !resp.status().is_success() {
            bail!("POST /v1/metrics: {}", resp.status());
        }
        resp.bytes().await?;
    }
    let url = format!("{}/metrics", started.api);
    let (page, _) = get(&client, &url, &FORMATS[0]).await?;
    let exposed = samples(&page);
    println!(
        "millwatch bench exposition: {} OTLP series sent in {:.1} s; /metrics holds {exposed} samples; \
         {} timed GETs per format, one in flight; load average before: {}",
        args.series,
        t.elapsed().as_secs_f64(),
        args.requests,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    ensure!(
        exposed >= args.series,
        "/metrics shows {exposed} samples, fewer than the {} series sent",
        args.series
    );
    println!(
        "{:<18} {:>12} {:>9} {:>9} {:>9} {:>9} {:>14}",
        "format", "bytes", "p50 ms", "p99 ms", "max ms", "mean ms", "collector CPU"
    );
    for f in &FORMATS {
        for _ in 0..3 {
            get(&client, &url, f).await?;
        }
        let cpu_before = process_usage(pid);
        let mut took = Vec::with_capacity(args.requests);
        let mut bytes = 0;
        for _ in 0..args.requests.max(1) {
            let (body, d) = get(&client, &url, f).await?;
            bytes = body.len();
            took.push(d.as_secs_f64() * 1000.0);
        }
        let cpu = match (cpu_before, process_usage(pid)) {
            (Some((a, _)), Some((b, _))) => {
                format!("{:.0} ms/GET", (b - a) * 1000.0 / took.len() as f64)
            }
            _ => "-".to_owned(),
        };
        took.sort_by(f64::total_cmp);
        let p99 = nearest_rank(&took, 0.99)
            .filter(|_| took.len() >= P99_MIN_REQUESTS)
            .map_or("-".to_owned(), |v| format!("{v:.1}"));
        println!(
            "{:<18} {:>12} {:>9.1} {:>9} {:>9.1} {:>9.1} {:>14}",
            f.name,
            bytes,
            nearest_rank(&took, 0.5).unwrap_or(f64::NAN),
            p99,
            took[took.len() - 1],
            took.iter().sum::<f64>() / took.len() as f64,
            cpu
        );
    }
    if args.requests < P99_MIN_REQUESTS {
        println!(
            "p99 not shown: over {} GETs it would be the maximum (take --requests {P99_MIN_REQUESTS} or more)",
            args.requests
        );
    }
    drop(started);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_p99_needs_a_hundred_values_to_differ_from_the_maximum() {
        let values = |n: usize| (1..=n).map(|i| i as f64).collect::<Vec<_>>();
        // Nearest rank over 30 values: the 30th, the maximum.
        assert_eq!(nearest_rank(&values(30), 0.99), Some(30.0));
        assert_eq!(nearest_rank(&values(99), 0.99), Some(99.0));
        assert_eq!(nearest_rank(&values(P99_MIN_REQUESTS), 0.99), Some(99.0));
        assert_eq!(nearest_rank(&values(30), 0.5), Some(15.0));
        assert_eq!(nearest_rank(&[], 0.5), None);
    }
}
