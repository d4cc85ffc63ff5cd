//! The OTLP load generator behind `millwatch bench ingest`.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use millwatch_exporters::http::{ClientOptions, build};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use super::{bodies, scrape};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchProtocol {
    Http,
    Grpc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchSignal {
    /// Gauge points (`--batch` points per request).
    Metrics,
    /// `ml.inference` events (`--batch` events per request, `--features` each).
    Inferences,
}

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    #[arg(long, value_enum, default_value = "http")]
    pub protocol: BenchProtocol,
    #[arg(long, value_enum, default_value = "metrics")]
    pub signal: BenchSignal,
    /// Items per request: points for metrics, events for inferences.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Features per inference event.
    #[arg(long, default_value_t = 12)]
    pub features: usize,
    /// Model names the inference events are spread over.
    #[arg(long, default_value_t = 1)]
    pub models: usize,
    /// Start the collector with the detection engine off (`detection.enabled: false`), to
    /// measure what detection costs ingest.
    #[arg(long)]
    pub no_detection: bool,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// How long to send, e.g. `10s`.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Gzip request bodies.
    #[arg(long)]
    pub gzip: bool,
    /// A running collector's OTLP endpoint (`http://127.0.0.1:4318` for HTTP, `http://127.0.0.1:4317`
    /// for gRPC). Without it, a collector is started for the run.
    #[arg(long)]
    pub target: Option<String>,
    /// With --target: that collector's HTTP API, whose `/api/v1/stats` shows whether every
    /// acknowledged item is stored (`http://127.0.0.1:9464`, the default `api.endpoint`).
    #[arg(long, default_value = "http://127.0.0.1:9464")]
    pub api: String,
    /// Data directory of the collector started for the run (default: a temporary directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Pin the started collector to these CPUs (`taskset -c`), e.g. `1`.
    #[arg(long)]
    pub collector_cpus: Option<String>,
}

/// A collector started for the benchmark, stopped (SIGTERM) when dropped.
pub(super) struct Spawned {
    pub(super) child: Child,
    _dir: Option<TempDir>,
}

/// A directory removed when dropped.
pub(super) struct TempDir(pub(super) PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

fn terminate(child: &mut Child) {
    #[cfg(unix)]
    {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        for _ in 0..300 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A collector of this binary on free loopback ports, ready.
pub(super) struct Started {
    pub(super) spawned: Spawned,
    pub(super) grpc: String,
    pub(super) http: String,
    pub(super) api: String,
}

/// Starts this binary's collector on free loopback ports, on `data_dir` (default: a temporary
/// directory, removed afterwards), pinned to `cpus` if given, with `config` (YAML) if given,
/// and waits until it is ready.
pub(super) async fn start_collector(
    data_dir: Option<&std::path::Path>,
    cpus: Option<&str>,
    config: Option<&str>,
) -> anyhow::Result<Started> {
    let (grpc, http, api) = (free_port()?, free_port()?, free_port()?);
    let (data_dir, temp) = match data_dir {
        Some(d) => (d.to_owned(), None),
        None => {
            let d = std::env::temp_dir().join(format!(
                "millwatch-bench-{}-{}",
                std::process::id(),
                free_port()?
            ));
            (d.clone(), Some(TempDir(d)))
        }
    };
    let exe = std::env::current_exe().context("locating the millwatch binary")?;
    let mut cmd = match cpus {
        Some(cpus) => {
            let mut c = std::process::Command::new("taskset");
            c.arg("-c").arg(cpus).arg(&exe);
            c
        }
        None => std::process::Command::new(&exe),
    };
    cmd.arg("run")
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--otlp-grpc")
        .arg(format!("127.0.0.1:{grpc}"))
        .arg("--otlp-http")
        .arg(format!("127.0.0.1:{http}"))
        .arg("--http")
        .arg(format!("127.0.0.1:{api}"))
        .env("MILLWATCH_LOG", "warn");
    if let Some(config) = config {
        let path = data_dir.with_extension("bench.yaml");
        std::fs::write(&path, config).context("writing the bench config")?;
        cmd.arg("--config").arg(path);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
    let child = cmd.spawn().context("starting the collector")?;
    let spawned = Spawned { child, _dir: temp };
    let api_url = format!("http://127.0.0.1:{api}");
    let client = http_client()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client
            .get(format!("{api_url}/readyz"))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if ready {
            break;
        }
        if Instant::now() > deadline {
            bail!("the collector did not become ready within 60s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Started {
        spawned,
        grpc: format!("http://127.0.0.1:{grpc}"),
        http: format!("http://127.0.0.1:{http}"),
        api: api_url,
    })
}

async fn spawn_collector(args: &IngestArgs) -> anyhow::Result<(Spawned, String, String)> {
    let config = args
        .no_detection
        .then_some("detection:\n  enabled: false\n");
    let started = start_collector(
        args.data_dir.as_deref(),
        args.collector_cpus.as_deref(),
        config,
    )
    .await?;
    let target = match args.protocol {
        BenchProtocol::Http => started.http,
        BenchProtocol::Grpc => started.grpc,
    };
    Ok((started.spawned, target, started.api))
}

pub(super) type HttpClient = reqwest::Client;

/// The workspace's one HTTP client (`millwatch_exporters::http`), without a timeout: the
/// bench waits as long as the collector takes, and counts it.
pub(super) fn http_client() -> anyhow::Result<HttpClient> {
    Ok(build(&ClientOptions::default())?)
}

/// CPU seconds (user + system) and resident memory of a process, from /proc.
pub(super) fn process_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux
    let cpu = (fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()?;
    Some((cpu, rss_kib * 1024))
}

struct Load {
    body: Bytes,
    items: usize,
    path: &'static str,
}

fn build_load(args: &IngestArgs) -> anyhow::Result<Load> {
    let now = crate::pipeline::now_ns() as u64;
    let (raw, items, path) = match args.signal {
        BenchSignal::Metrics => (
            bodies::metrics(args.batch, now).encode_to_vec(),
            args.batch,
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        ),
        BenchSignal::Inferences => (
            bodies::inferences(args.batch, args.features, args.models.max(1), now).encode_to_vec(),
            args.batch,
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        ),
    };
    let body = if args.gzip && args.protocol == BenchProtocol::Http {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&raw)?;
        e.finish()?
    } else {
        raw
    };
    Ok(Load {
        body: Bytes::from(body),
        items,
        path,
    })
}

#[derive(Default)]
struct WorkerResult {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    latencies_us: Vec<u64>,
}

pub async fn run(args: IngestArgs) -> anyhow::Result<()> {
    let load = Arc::new(build_load(&args)?);
    let (spawned, target, api) = match &args.target {
        Some(t) => (
            None,
            t.trim_end_matches('/').to_owned(),
            args.api.trim_end_matches('/').to_owned(),
        ),
        None => {
            let (s, t, a) = spawn_collector(&args).await?;
            (Some(s), t, a)
        }
    };
    let table = match args.signal {
        BenchSignal::Metrics => "metric_points",
        BenchSignal::Inferences => "inferences",
    };
    // A running collector may hold rows already: count what this run adds.
    let client = http_client()?;
    let rows_before = match fetch_stats(&client, &api).await {
        Some(stats) => Ok(stats["tables"][table].as_u64().unwrap_or(0)),
        None => Err(format!("{api}/api/v1/stats did not answer (pass --api)")),
    };
    let pid = spawned.as_ref().map(|s| s.child.id());
    println!(
        "millwatch bench ingest: {:?} {:?}, {} items/request ({} bytes{}), concurrency {}, {:?}, target {}",
        args.protocol,
        args.signal,
        load.items,
        load.body.len(),
        if args.gzip { ", gzip" } else { "" },
        args.concurrency,
        args.duration,
        target
    );
    // Warm up (series and resources are created on first sight).
    send_one(&args, &load, &target)
        .await
        .context("warm-up request")?;

    let usage_before = pid.and_then(process_usage);
    let peak_rss = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = pid.map(|pid| {
        let peak = peak_rss.clone();
        tokio::spawn(async move {
            loop {
                if let Some((_, rss)) = process_usage(pid) {
                    peak.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let load = load.clone();
        let target = target.clone();
        let protocol = args.protocol;
        let gzip = args.gzip;
        workers.spawn(async move { worker(protocol, gzip, load, target, deadline).await });
    }
    let mut total = WorkerResult::default();
    while let Some(r) = workers.join_next().await {
        let r = r?;
        total.ok += r.ok;
        total.errors += r.errors;
        total.first_error = total.first_error.or(r.first_error);
        total.latencies_us.extend(r.latencies_us);
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Under load the collector acknowledges from its journal and commits to DuckDB within
    // `store.commit_interval`: wait for the tables to hold every acknowledged item (warm-up
    // included), so the CPU figure includes storing them.
    let acknowledged = (total.ok + 1) * load.items as u64;
    let stored = match &rows_before {
        Ok(before) => wait_until_stored(&client, &api, table, before + acknowledged).await,
        Err(why) => Stored::Unknown(why.clone()),
    };
    let usage_after = pid.and_then(process_usage);
    if let Some(s) = sampler {
        s.abort();
    }
    total.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if total.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((p * total.latencies_us.len() as f64).ceil() as usize)
            .clamp(1, total.latencies_us.len())
            - 1;
        total.latencies_us[i] as f64 / 1000.0
    };
    let items = total.ok as f64 * load.items as f64;
    println!("requests ok       {}", total.ok);
    println!("errors            {}", total.errors);
    if let Some(e) = &total.first_error {
        println!("first error       {e}");
    }
    println!(
        "items acknowledged {:.0} ({:.0} items/s)",
        items,
        items / elapsed
    );
    println!("requests/s        {:.1}", total.ok as f64 / elapsed);
    println!("latency p50       {:.2} ms", pct(0.50));
    println!("latency p99       {:.2} ms", pct(0.99));
    if let (Some((cpu0, _)), Some((cpu1, _))) = (usage_before, usage_after) {
        let cpu = cpu1 - cpu0;
        println!("collector CPU     {cpu:.2} s ({:.2} cores)", cpu / elapsed);
        if items > 0.0 {
            println!("CPU s / M items   {:.2}", cpu / (items / 1e6));
        }
        println!(
            "collector peak RSS {:.0} MiB",
            peak_rss.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1048576.0
        );
    }
    let before = rows_before.as_ref().copied().unwrap_or(0);
    match &stored {
        Stored::All(wait) => println!(
            "all in DuckDB     {acknowledged} acknowledged {table} rows stored {:.0} ms after the load",
            wait.as_secs_f64() * 1000.0
        ),
        Stored::TimedOut(rows) => println!(
            "NOT all in DuckDB {} of {acknowledged} acknowledged {table} rows stored {} s after the load; \
             the CPU figure leaves the rest out",
            rows.saturating_sub(before),
            STORE_WAIT.as_secs()
        ),
        Stored::Unknown(why) => println!("storage not checked: {why}"),
    }
    if !matches!(stored, Stored::Unknown(_))
        && let Some(stats) = fetch_stats(&client, &api).await
    {
        println!("stored rows       {}", stats["tables"]);
    }
    if spawned.is_some() && args.signal == BenchSignal::Inferences && !args.no_detection {
        verdict_delay(&client, &api).await?;
    }
    drop(spawned);
    Ok(())
}

/// Whether the collector's tables hold every acknowledged item.
enum Stored {
    /// They do, this long after the load.
    All(Duration),
    /// After [`STORE_WAIT`] the table holds only this many rows.
    TimedOut(u64),
    /// The stats API did not answer.
    Unknown(String),
}

/// How long the bench waits for acknowledged items to be stored.
const STORE_WAIT: Duration = Duration::from_secs(60);

/// The collector's `/api/v1/stats`, if it answers.
async fn fetch_stats(client: &HttpClient, api: &str) -> Option<serde_json::Value> {
    let resp = client
        .get(format!("{api}/api/v1/stats"))
        .send()
        .await
        .ok()?;
    let body = resp.bytes().await.ok()?;
    serde_json::from_slice(&body).ok()
}

/// Polls `/api/v1/stats` until `table` holds `want` rows, for at most [`STORE_WAIT`].
async fn wait_until_stored(client: &HttpClient, api: &str, table: &str, want: u64) -> Stored {
    let started = Instant::now();
    let mut rows = 0;
    while started.elapsed() < STORE_WAIT {
        let Some(stats) = fetch_stats(client, api).await else {
            return Stored::Unknown(format!("{api}/api/v1/stats stopped answering"));
        };
        rows = stats["tables"][table].as_u64().unwrap_or(0);
        if rows >= want {
            return Stored::All(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Stored::TimedOut(rows)
}

/// Waits for the started collector's detection engine to read every stored event, then prints
/// `millwatch_detection_verdict_delay_seconds`: how long after the commit of a window's last
/// event its verdict was stored, over every window of the run.
async fn verdict_delay(client: &HttpClient, api: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last_windows = None;
    let text = loop {
        let text = scrape::metrics_text(client, api).await?;
        let lag = scrape::sum(&text, "millwatch_detection_lag_events").unwrap_or(0.0);
        let windows = scrape::sum(&text, "millwatch_detection_windows_total").unwrap_or(0.0);
        // Caught up: nothing left to read, and no window closed since the last look.
        if lag == 0.0 && last_windows == Some(windows) {
            break text;
        }
        if started.elapsed() > Duration::from_secs(300) {
            println!("detection still {lag} events behind after 300 s");
            break text;
        }
        last_windows = Some(windows);
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let windows = scrape::sum(&text, "millwatch_detection_windows_total").unwrap_or(0.0);
    println!(
        "detection caught up {:.1} s after the load ({windows:.0} windows decided)",
        started.elapsed().as_secs_f64()
    );
    let Some(h) = scrape::histogram(&text, "millwatch_detection_verdict_delay_seconds")
        .filter(|h| h.count > 0.0)
    else {
        println!("verdict delay     no window closed");
        return Ok(());
    };
    let within = h.at_most(1.0).unwrap_or(0.0);
    // The histogram keeps counts per bucket, not the delays: a quantile is interpolated within
    // its bucket, and the bucket is all that is known for sure.
    let quantile = |q: f64| {
        let bucket = h
            .quantile_bucket(q)
            .map_or(String::new(), |(lo, hi)| format!(" in ({lo}, {hi}]"));
        format!("{:.3} s{bucket}", h.quantile(q).unwrap_or(f64::NAN))
    };
    println!(
        "verdict delay     {:.0} verdicts, mean {:.3} s, p50 {}, p99 {} (interpolated within the \
         histogram bucket named)",
        h.count,
        h.sum / h.count,
        quantile(0.5),
        quantile(0.99),
    );
    println!(
        "verdicts <= 1 s   {within:.0} of {:.0} ({:.1}%)",
        h.count,
        100.0 * within / h.count
    );
    Ok(())
}

async fn send_one(args: &IngestArgs, load: &Load, target: &str) -> anyhow::Result<()> {
    match args.protocol {
        BenchProtocol::Http => {
            let client = http_client()?;
            post_http(&client, load, target, args.gzip).await
        }
        BenchProtocol::Grpc => {
            let mut grpc = grpc_client(target).await?;
            post_grpc(&mut grpc, load).await
        }
    }
}

async fn worker(
    protocol: BenchProtocol,
    gzip: bool,
    load: Arc<Load>,
    target: String,
    deadline: Instant,
) -> WorkerResult {
    let mut result = WorkerResult::default();
    let record = |r: anyhow::Result<()>, took: Duration, result: &mut WorkerResult| match r {
        Ok(()) => {
            result.ok += 1;
            result.latencies_us.push(took.as_micros() as u64);
        }
        Err(e) => {
            result.errors += 1;
            result.first_error.get_or_insert_with(|| format!("{e:#}"));
        }
    };
    match protocol {
        BenchProtocol::Http => {
            let client = match http_client() {
                Ok(c) => c,
                Err(e) => {
                    record(Err(e), Duration::ZERO, &mut result);
                    return result;
                }
            };
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = post_http(&client, &load, &target, gzip).await;
                record(r, t.elapsed(), &mut result);
            }
        }
        BenchProtocol::Grpc => {
            let mut grpc = match grpc_client(&target).await {
                Ok(g) => g,
                Err(e) => {
                    record(Err(e), Duration::ZERO, &mut result);
                    return result;
                }
            };
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = post_grpc(&mut grpc, &load).await;
                record(r, t.elapsed(), &mut result);
            }
        }
    }
    result
}

async fn post_http(
    client: &HttpClient,
    load: &Load,
    target: &str,
    gzip: bool,
) -> anyhow::Result<()> {
    let path = if load.path.contains("Metrics") {
        "/v1/metrics"
    } else {
        "/v1/logs"
    };
    let mut req = client
        .post(format!("{target}{path}"))
        .header("content-type", "application/x-protobuf");
    if gzip {
        req = req.header("content-encoding", "gzip");
    }
    let resp = req.body(load.body.clone()).send().await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        bail!("HTTP {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}

type GrpcClient = tonic::client::Grpc<tonic::transport::Channel>;

async fn grpc_client(target: &str) -> anyhow::Result<GrpcClient> {
    let channel = tonic::transport::Endpoint::from_shared(target.to_owned())?
        .connect()
        .await?;
    Ok(tonic::client::Grpc::new(channel))
}

async fn post_grpc(grpc: &mut GrpcClient, load: &Load) -> anyhow::Result<()> {
    grpc.ready().await?;
    let path = http::uri::PathAndQuery::from_static(load.path);
    grpc.unary(tonic::Request::new(load.body.clone()), path, RawCodec)
        .await?;
    Ok(())
}

/// Sends pre-encoded request bytes; the response is only checked to be a valid message.
#[derive(Clone, Copy)]
struct RawCodec;
struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = ();
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        use bytes::Buf;
        src.advance(src.remaining());
        Ok(Some(()))
    }
}
