//! `millwatch demo`: the collector (started as `millwatch run` starts it) and a simulated plant
//! that reports to it over OTLP/HTTP, the way any instrumented service does: three lines of
//! milling machines whose sensors read like the AI4I 2020 data set, a failure classifier and a
//! tool-life regressor judging every part, labels arriving later, and a script of incidents
//! after a calm start.
//!
//! Layout: `plant` (machines and their sensors), `models` (the two models and the truth),
//! `script` (the incidents), `simulator` (the plant over ticks, no clock), `otlp` (the OTLP
//! requests: the part to copy when instrumenting a service), `detection.yaml` (the detection
//! settings the demo runs with), and here the command, the pacing and the sending.

pub mod models;
pub mod otlp;
pub mod plant;
pub mod script;
pub mod simulator;

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use millwatch_exporters::http::{Backoff, Class, ClientOptions, RetryRule, Sender};
use prost::Message as _;

use crate::cli::RunArgs;
use crate::config::Config;
use crate::detection::DetectionConfig;
use crate::run::Bound;
use simulator::{Simulator, Tick};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How many times faster than real time the plant runs: 60 turns a plant hour into a
    /// minute. Timestamps stay those of the plant.
    #[arg(long, default_value_t = 60.0, value_parser = parse_speed)]
    pub speed: f64,
    /// Plant time to simulate, e.g. `160m` or `4h`; the script's incidents need 160m. The
    /// collector keeps running afterwards until Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "160m")]
    pub duration: Duration,
    /// Seed of the plant: the same seed sends the same data.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The collector's flags, as `millwatch run` takes them. Without `--data-dir` the demo
    /// uses a new directory under the system's temporary directory; without `--config` the
    /// demo's detection settings (collector/src/demo/detection.yaml).
    #[command(flatten)]
    pub run: RunArgs,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 100_000.0 => Ok(v),
        _ => Err(format!(
            "`{s}` is not a speed: a number above 0 and at most 100000, e.g. 60"
        )),
    }
}

/// The detection settings the demo runs with when no config file is given.
pub fn detection_settings() -> DetectionConfig {
    serde_saphyr::from_str(include_str!("detection.yaml"))
        .expect("collector/src/demo/detection.yaml is a valid detection section")
}

impl DemoArgs {
    /// The collector's configuration: `run`'s, with the demo's detection settings, quieter logs
    /// and a fresh data directory unless the flags say otherwise.
    pub fn effective_config(&self) -> anyhow::Result<Config> {
        let mut config = self
            .run
            .effective_config()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if self.run.config.is_none() {
            config.detection = detection_settings();
            // The terminal is for the demo's own lines; the collector only says what is wrong.
            config.log.level = "warn".into();
        }
        match &self.run.data_dir {
            Some(dir) => check_empty(dir)?,
            None => {
                let stamp = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                config.data_dir = std::env::temp_dir()
                    .join(format!("millwatch-demo-{stamp}-{}", std::process::id()));
            }
        }
        Ok(config)
    }
}

/// The demo writes a plant's day from its start: an existing store would mix with it.
fn check_empty(dir: &std::path::Path) -> anyhow::Result<()> {
    let used = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    match used {
        true => Err(anyhow::anyhow!(
            "--data-dir {}: not empty; the demo needs an empty or new directory (remove it, or \
             leave --data-dir out for a new one under {})",
            dir.display(),
            std::env::temp_dir().display()
        )),
        false => Ok(()),
    }
}

/// Runs the collector and, once it is ready, the plant; returns when the collector stops
/// (Ctrl-C or SIGTERM).
pub async fn demo(config: Config, args: &DemoArgs) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let collector = tokio::spawn(crate::run::run_with(config, Some(ready_tx)));
    let Ok(bound) = ready_rx.await else {
        // It failed to start (a busy port, a locked store): its error says why.
        collector.await??;
        anyhow::bail!("the collector stopped before it was ready");
    };
    let Some(otlp_http) = bound.otlp_http else {
        anyhow::bail!(
            "the demo sends over OTLP/HTTP, which this configuration turns off \
             (receivers.otlp.http.enabled)"
        );
    };
    let plant_start = now_ns().saturating_sub(args.duration.as_nanos() as u64);
    say(&guide(&bound, &data_dir, args));
    let plant = tokio::spawn(drive(
        otlp_http,
        plant_start,
        args.seed,
        args.speed,
        args.duration,
    ));
    let result = collector.await?;
    plant.abort();
    result
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A line on stdout, at once (stdout may be a pipe).
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Where to look, said once at the start.
fn guide(bound: &Bound, data_dir: &std::path::Path, args: &DemoArgs) -> String {
    let api = format!("http://{}", bound.api);
    let wall = args.duration.div_f64(args.speed);
    format!(
        "Millwatch demo: {lines} lines × {machines} milling machines, seed {seed}, {speed}× speed \
         ({plant} of plant time in {wall}; timestamps end at now).\n\
         \x20 web UI         {api}/\n\
         \x20 metrics        {api}/metrics\n\
         \x20 models (API)   {api}/api/v1/models\n\
         \x20 alerts         millwatch alerts --api {api}\n\
         \x20 data           {data}\n\
         Incidents start after {calm} of calm plant time; each is announced here.",
        lines = plant::LINES.len(),
        machines = plant::MACHINES_PER_LINE,
        seed = args.seed,
        speed = args.speed,
        plant = humantime::format_duration(args.duration),
        wall = humantime::format_duration(Duration::from_secs(wall.as_secs().max(1))),
        data = data_dir.display(),
        calm = humantime::format_duration(script::CALM),
    )
}

/// Sends tick after tick, each at its time divided by `speed`, until `duration` of plant time.
async fn drive(otlp_http: SocketAddr, start_ns: u64, seed: u64, speed: f64, duration: Duration) {
    let sender = match Sender::new(
        &ClientOptions::with_timeout(Duration::from_secs(10)),
        Default::default(),
    ) {
        Ok(s) => s,
        Err(e) => {
            say(&format!("demo: cannot build the HTTP client: {e}"));
            return;
        }
    };
    let base = format!("http://{otlp_http}");
    let (Ok(metrics_url), Ok(logs_url)) = (
        reqwest::Url::parse(&format!("{base}/v1/metrics")),
        reqwest::Url::parse(&format!("{base}/v1/logs")),
    ) else {
        return;
    };
    let mut sim = Simulator::new(seed, start_ns);
    let ticks = duration.as_secs() / script::TICK.as_secs();
    let every = script::TICK.div_f64(speed);
    let started = tokio::time::Instant::now();
    for n in 1..=ticks {
        tokio::time::sleep_until(started + every.mul_f64(n as f64)).await;
        let tick = sim.step();
        announce(&tick, start_ns);
        for (url, body) in [
            (&metrics_url, tick.metrics.encode_to_vec()),
            (&logs_url, tick.logs.encode_to_vec()),
        ] {
            if let Err(e) = send(&sender, url, body).await {
                say(&format!("demo: tick {n}: {e}"));
            }
        }
    }
    say(&format!(
        "[{}] the plant's script is over; the collector keeps running (Ctrl-C to stop).",
        plant_clock(sim.time_of(ticks), start_ns)
    ));
}

/// `+1h30m 2026-12-03T12:30:00Z`: plant time since the start and the timestamp.
fn plant_clock(time_ns: u64, start_ns: u64) -> String {
    let since = Duration::from_nanos(time_ns.saturating_sub(start_ns));
    let since = Duration::from_secs(since.as_secs() / 60 * 60);
    let at = UNIX_EPOCH + Duration::from_nanos(time_ns);
    format!(
        "+{} {}",
        humantime::format_duration(since),
        humantime::format_rfc3339_seconds(at)
    )
}

fn announce(tick: &Tick, start_ns: u64) {
    for incident in &tick.incidents {
        say(&format!(
            "[{}] incident: {}",
            plant_clock(tick.time_ns, start_ns),
            incident.describe()
        ));
    }
}

/// POSTs one OTLP/HTTP request, trying again as the OTLP specification says.
async fn send(sender: &Sender, url: &reqwest::Url, body: Vec<u8>) -> Result<(), String> {
    let backoff = Backoff {
        min_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(5),
        max_retry_after: Duration::from_secs(10),
    };
    let mut attempt = 0;
    loop {
        let answer = sender
            .post(
                url,
                "application/x-protobuf",
                Default::default(),
                body.clone(),
            )
            .await;
        let (retry_after, why) = match answer {
            Ok(a) => match RetryRule::Otlp.classify(a.status) {
                Class::Success => return Ok(()),
                Class::Permanent => return Err(format!("refused: {} {}", a.status, a.body)),
                Class::Retryable => (a.retry_after(), format!("{} {}", a.status, a.body)),
            },
            Err(e) => (None, e),
        };
        if attempt == 5 {
            return Err(format!("gave up after {} tries: {why}", attempt + 1));
        }
        tokio::time::sleep(backoff.delay(attempt, retry_after)).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn args(flags: &[&str]) -> DemoArgs {
        let mut argv = vec!["millwatch", "demo"];
        argv.extend(flags);
        match crate::cli::Cli::try_parse_from(argv)
            .expect("parses")
            .command
        {
            crate::cli::Command::Demo(a) => a,
            _ => panic!("not demo"),
        }
    }

    #[test]
    fn the_demo_detection_settings_parse() {
        let d = detection_settings();
        assert_eq!(d.window_events.get(), 600);
        assert_eq!(d.models.len(), 1);
        assert_eq!(d.machine_health.len(), 1);
    }

    #[test]
    fn flags_and_defaults() {
        let a = args(&["--speed", "600", "--seed", "3", "--http", "127.0.0.1:0"]);
        assert_eq!((a.speed, a.seed), (600.0, 3));
        assert_eq!(a.duration, script::SCRIPT_LENGTH);
        let c = a.effective_config().expect("config");
        assert_eq!(c.api.endpoint.port(), 0);
        assert_eq!(c.detection, detection_settings());
        assert!(c.data_dir.starts_with(std::env::temp_dir()));
        for bad in ["0", "-1", "fast", "NaN"] {
            let flag = format!("--speed={bad}");
            let e = crate::cli::Cli::try_parse_from(["millwatch", "demo", flag.as_str()])
                .expect_err(bad);
            assert!(e.to_string().contains("not a speed"), "{e}");
        }
    }

    #[test]
    fn a_used_data_dir_is_refused_with_what_to_do() {
        let dir = std::env::temp_dir().join(format!("mw-demo-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("millwatch.duckdb"), b"x").expect("file");
        let a = args(&["--data-dir", dir.to_str().expect("utf-8")]);
        let e = a.effective_config().expect_err("not empty").to_string();
        assert!(e.contains("not empty") && e.contains("remove it"), "{e}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
