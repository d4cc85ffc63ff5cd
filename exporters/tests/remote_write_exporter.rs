//! Remote write against a scripted loopback receiver (headers, body, retry decisions) and
//! against a real Prometheus server (values arrive; nothing is lost across an outage).

mod prometheus_support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use millwatch_exporters::prometheus::TranslationConfig;
use millwatch_exporters::remote_write::proto::WriteRequest;
use millwatch_exporters::remote_write::{RemoteWriteConfig, RemoteWriteExporter, RemoteWriteStats};
use prometheus_support::*;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: WriteRequest,
}

/// A loopback HTTP/1.1 receiver answering the scripted statuses in turn (then 200).
async fn scripted_receiver(
    script: Vec<(u16, Option<&'static str>)>,
) -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let seen = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            let script = script.clone();
            tokio::spawn(async move {
                loop {
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 8192];
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match sock.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let headers: Vec<(String, String)> = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    let len: usize = headers
                        .iter()
                        .find(|(k, _)| k == "content-length")
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        match sock.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    let raw = snap::raw::Decoder::new()
                        .decompress_vec(&buf[head_end..head_end + len])
                        .expect("snappy block");
                    let body = WriteRequest::decode(&raw[..]).expect("protobuf WriteRequest");
                    seen.lock().expect("lock").push(Received { headers, body });
                    let (status, retry_after) = script
                        .lock()
                        .expect("lock")
                        .pop_front()
                        .unwrap_or((200, None));
                    let extra = retry_after
                        .map(|r| format!("Retry-After: {r}\r\n"))
                        .unwrap_or_default();
                    let reply =
                        format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\n{extra}\r\nno");
                    if sock.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, got)
}

fn config(url: &str, dir: &std::path::Path, extra: &str) -> RemoteWriteConfig {
    serde_saphyr::from_str(&format!(
        "url: {url}\nflush_interval: 100ms\ntimeout: 5s\nmax_samples_per_send: 500\nqueue: {{ dir: {}, max_bytes: 10485760 }}\nretry: {{ min_backoff: 20ms, max_backoff: 200ms }}\n{extra}",
        dir.display()
    ))
    .expect("config")
}

async fn wait_for(
    exporter: &RemoteWriteExporter,
    what: &str,
    cond: impl Fn(&RemoteWriteStats) -> bool,
    limit: Duration,
) -> RemoteWriteStats {
    let deadline = Instant::now() + limit;
    loop {
        let s = exporter.stats();
        if cond(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_sends_protocol_headers_and_sorted_labels() {
    let (port, got) = scripted_receiver(vec![]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        &format!("http://127.0.0.1:{port}/api/v1/write"),
        dir.path(),
        "headers: { X-Scope-OrgID: plant-a }\nauth: { type: bearer, token: s3cret }\n",
    );
    let exporter = RemoteWriteExporter::start(cfg, TranslationConfig::default()).expect("start");
    let t = now_nanos();
    let n = exporter
        .export(&request("press", "edge-1", all_kinds(t, 1.0)))
        .await
        .expect("queued");
    assert!(n > 20, "{n} samples");
    wait_for(
        &exporter,
        "delivery",
        |s| s.samples_sent == n as u64,
        Duration::from_secs(10),
    )
    .await;
    let got = got.lock().expect("lock").clone();
    let first = &got[0];
    let header = |k: &str| {
        first
            .headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("content-encoding"), Some("snappy"));
    assert_eq!(header("content-type"), Some("application/x-protobuf"));
    assert_eq!(header("x-prometheus-remote-write-version"), Some("0.1.0"));
    assert!(header("user-agent").is_some_and(|u| u.starts_with("millwatch/")));
    assert_eq!(header("authorization"), Some("Bearer s3cret"));
    assert_eq!(header("x-scope-orgid"), Some("plant-a"));
    let all: Vec<_> = got.iter().flat_map(|r| r.body.timeseries.clone()).collect();
    for ts in &all {
        let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert!(
            ts.samples
                .windows(2)
                .all(|w| w[0].timestamp < w[1].timestamp)
        );
    }
    let name_of = |ts: &millwatch_exporters::remote_write::proto::TimeSeries| {
        ts.labels
            .iter()
            .find(|l| l.name == "__name__")
            .map(|l| l.value.clone())
            .unwrap_or_default()
    };
    let names: std::collections::BTreeSet<String> = all.iter().map(name_of).collect();
    for want in [
        "hw_temperature_celsius",
        "hw_energy_joules_total",
        "machine_cycle_duration_seconds_bucket",
        "machine_cycle_duration_seconds_count",
        "gen_ai_client_operation_duration_seconds_bucket",
        "machine_vibration_rms_meters_per_second",
        "target_info",
    ] {
        assert!(names.contains(want), "{want} missing from {names:?}");
    }
    exporter.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_retries_5xx_and_429_and_drops_other_4xx() {
    // Each export below is one request: 503 and 429 are retried (delivered on the next try),
    // 400 is dropped without a retry.
    let table: &[(u16, Option<&'static str>, bool)] = &[
        (503, None, true),
        (500, None, true),
        (429, Some("0"), true),
        (400, None, false),
        (404, None, false),
        (413, None, false),
    ];
    for &(status, retry_after, retried) in table {
        let (port, got) = scripted_receiver(vec![(status, retry_after)]).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let exporter = RemoteWriteExporter::start(
            config(&format!("http://127.0.0.1:{port}/"), dir.path(), ""),
            TranslationConfig::default(),
        )
        .expect("start");
        let n = exporter
            .export(&request(
                "press",
                "edge-1",
                vec![gauge(
                    "hw.temperature",
                    "Cel",
                    vec![number(&[], now_nanos(), 1.0)],
                )],
            ))
            .await
            .expect("queued") as u64;
        let s = wait_for(
            &exporter,
            "the queue to drain",
            |s| s.queue_samples == 0,
            Duration::from_secs(10),
        )
        .await;
        let requests = got.lock().expect("lock").len();
        if retried {
            assert_eq!(
                (
                    s.samples_sent,
                    s.samples_rejected,
                    s.requests_retried,
                    requests
                ),
                (n, 0, 1, 2),
                "status {status}"
            );
        } else {
            assert_eq!(
                (
                    s.samples_sent,
                    s.samples_rejected,
                    s.requests_retried,
                    requests
                ),
                (0, n, 0, 1),
                "status {status}"
            );
        }
        exporter.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_full_queue_refuses_new_data() {
    // Nothing listens on this port: everything stays queued.
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(&format!("http://127.0.0.1:{port}/"), dir.path(), "");
    cfg.queue.max_bytes = std::num::NonZeroU64::new(4096).expect("non-zero");
    let exporter = RemoteWriteExporter::start(cfg, TranslationConfig::default()).expect("start");
    let mut accepted = 0u64;
    let err = loop {
        match exporter
            .export(&request(
                "press",
                "edge-1",
                vec![gauge(
                    "hw.temperature",
                    "Cel",
                    vec![number(&[], now_nanos(), 1.0)],
                )],
            ))
            .await
        {
            Ok(n) => accepted += n as u64,
            Err(e) => break e,
        }
        assert!(accepted < 10_000, "queue never filled");
    };
    assert!(err.is_queue_full(), "{err}");
    assert!(err.to_string().contains("queue full"), "{err}");
    let s = exporter.stats();
    assert_eq!(s.samples_queued, accepted);
    assert_eq!(s.queue_samples, accepted);
    assert!(s.samples_refused_queue_full > 0);
    exporter.shutdown().await;
}

fn start_receiver(tmp: &std::path::Path) -> PrometheusServer {
    let data = tmp.join("tsdb");
    PrometheusServer::start(tmp, &data, "", &["--web.enable-remote-write-receiver"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_into_real_prometheus_delivers_series_and_values() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let prom = start_receiver(tmp.path());
    let exporter = RemoteWriteExporter::start(
        config(
            &format!("{}/api/v1/write", prom.url()),
            &tmp.path().join("queue"),
            "",
        ),
        TranslationConfig::default(),
    )
    .expect("start");
    let t = now_nanos();
    let n = exporter
        .export(&request("press", "edge-1", all_kinds(t, 1.0)))
        .await
        .expect("queued") as u64;
    wait_for(
        &exporter,
        "delivery",
        |s| s.samples_sent == n,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(exporter.stats().samples_rejected, 0);

    let r = prom.query(r#"hw_temperature_celsius{hw_id="spindle-1"}"#);
    assert_eq!(r.len(), 1, "{r:?}");
    let (labels, value) = &r[0];
    assert_eq!(*value, 61.5);
    for (k, v) in [
        ("job", "plant/press"),
        ("instance", "edge-1"),
        ("site_name", "plant-a"),
        ("site_line", "line-3"),
        ("host_name", "edge-01"),
        ("hw_sensor_location", "front"),
        ("otel_scope_name", "press-monitor"),
    ] {
        assert_eq!(
            labels.get(k).and_then(|v| v.as_str()),
            Some(v),
            "{k} in {labels:?}"
        );
    }
    assert_eq!(prom.query("hw_energy_joules_total")[0].1, 1.5e6);
    assert_eq!(prom.query("machine_spindle_load_ratio")[0].1, 0.75);
    assert_eq!(
        prom.query(r#"machine_cycle_duration_seconds_bucket{le="1"}"#)[0].1,
        5.0
    );
    assert_eq!(
        prom.query(r#"machine_cycle_duration_seconds_bucket{le="+Inf"}"#)[0].1,
        8.0
    );
    assert_eq!(prom.query("machine_cycle_duration_seconds_sum")[0].1, 9.5);
    assert_eq!(
        prom.query(r#"gen_ai_client_operation_duration_seconds_bucket{le="+Inf"}"#)[0].1,
        8.0
    );
    assert_eq!(
        prom.query(r#"machine_vibration_rms_meters_per_second{quantile="0.99"}"#)[0].1,
        0.04
    );
    let target = prom.query("target_info");
    assert_eq!(
        target[0].0.get("os_type").and_then(|v| v.as_str()),
        Some("linux")
    );
    exporter.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_into_real_prometheus_survives_receiver_outage() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let queue_dir = tmp.path().join("queue");
    let mut prom = start_receiver(tmp.path());
    let url = format!("{}/api/v1/write", prom.url());
    let mut exporter =
        RemoteWriteExporter::start(config(&url, &queue_dir, ""), TranslationConfig::default())
            .expect("start");

    // One sample per second of `machine_outage_probe` with value = its index.
    let start_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut produced = 0u64;
    let produce = async |exporter: &RemoteWriteExporter, produced: &mut u64| {
        let point = number(&[("probe", "outage")], now_nanos(), *produced as f64);
        exporter
            .export(&request(
                "press",
                "edge-1",
                vec![gauge("machine.outage.probe", "", vec![point])],
            ))
            .await
            .expect("queued while receiver down");
        *produced += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    for _ in 0..5 {
        produce(&exporter, &mut produced).await;
    }
    wait_for(
        &exporter,
        "delivery before the outage",
        |s| s.queue_samples == 0,
        Duration::from_secs(20),
    )
    .await;

    prom.stop();
    for i in 0..30 {
        produce(&exporter, &mut produced).await;
        if i == 15 {
            // The collector restarts too, mid-outage: the queue must carry over.
            exporter.shutdown().await;
            exporter = RemoteWriteExporter::start(
                config(&url, &queue_dir, ""),
                TranslationConfig::default(),
            )
            .expect("restart");
        }
    }
    assert!(
        exporter.stats().queue_samples > 0,
        "samples piled up while the receiver was down"
    );
    prom.restart();
    for _ in 0..5 {
        produce(&exporter, &mut produced).await;
    }
    let s = wait_for(
        &exporter,
        "the backlog to drain",
        |s| s.queue_samples == 0,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(s.samples_rejected, 0, "{s:?}");
    assert!(s.requests_retried > 0, "{s:?}");

    let end_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
        + 1.0;
    let count = prom.query(&format!(
        "count_over_time(machine_outage_probe[{}s])",
        (end_s - start_s).ceil() as u64 + 5
    ));
    assert_eq!(count.len(), 1, "{count:?}");
    assert_eq!(
        count[0].1 as u64, produced,
        "every produced sample is stored"
    );
    let sum = prom.query(&format!(
        "sum_over_time(machine_outage_probe[{}s])",
        (end_s - start_s).ceil() as u64 + 5
    ));
    assert_eq!(
        sum[0].1 as u64,
        produced * (produced - 1) / 2,
        "with the right values"
    );
    exporter.shutdown().await;
}
