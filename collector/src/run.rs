//! `millwatch run`: binds its ports, opens the store, starts the receivers and the API, and on
//! SIGINT/SIGTERM stops accepting, commits what was acknowledged-to-be, and closes DuckDB cleanly.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{self, ApiState};
use crate::config::Config;
use crate::pipeline::{Ingest, now_ns};
use crate::receivers::otlp::{Logs, Metrics, Traces, grpc::OtlpGrpcService, http};
use crate::store::{Store, StoreError, writer};
use crate::telemetry::{SelfMetrics, Telemetry};
use millwatch_exporters::prometheus::MetricsExposition;
use millwatch_exporters::remote_write::RemoteWriteExporter;

/// Where a running collector listens (ports chosen by the system for `:0` resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub api: std::net::SocketAddr,
    pub otlp_http: Option<std::net::SocketAddr>,
    pub otlp_grpc: Option<std::net::SocketAddr>,
}

/// Runs the collector until a shutdown signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    run_with(config, None).await
}

/// [`run`], telling `ready` where it listens once it is ready (what `millwatch demo` sends to).
pub async fn run_with(
    config: Config,
    ready: Option<tokio::sync::oneshot::Sender<Bound>>,
) -> anyhow::Result<()> {
    // Every port is bound before the store is opened: a busy port fails here, at once, without
    // the store being created, migrated or its journal replayed.
    let listeners = Listeners::bind(&config).await?;
    let local = |l: &TcpListener| l.local_addr().ok();
    let bound = Bound {
        api: local(&listeners.api).unwrap_or(config.api.endpoint),
        otlp_http: listeners.otlp_http.as_ref().and_then(local),
        otlp_grpc: listeners.otlp_grpc.as_ref().and_then(local),
    };
    let telemetry = Arc::new(Telemetry::default());
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&data_dir))
        .await?
        .map_err(|e| match e {
            // These name the directory or the file themselves.
            StoreError::Locked { .. }
            | StoreError::DataDir { .. }
            | StoreError::SchemaTooNew { .. } => anyhow::Error::new(e),
            e => anyhow::Error::new(e).context(format!(
                "opening the store in {}",
                config.data_dir.display()
            )),
        })?;
    tracing::info!(path = %store.path.display(), "store open");
    let _ = telemetry.journal_replay.set(store.replayed.clone());
    let writer_conn = store.connect()?;
    let observer_telemetry = telemetry.clone();
    let commit_times = Arc::new(crate::detection::CommitTimes::default());
    let observer_times = commit_times.clone();
    // Committed inference events go to the detection engine in memory (bounded: past its
    // capacity the engine reads them from the store).
    let tap = Arc::new(crate::detection::InferenceTap::new(
        config.detection.tap_events.get(),
    ));
    let observer_tap = config.detection.enabled.then(|| tap.clone());
    // Wakes the audit watcher from an idle wait when something was stored.
    let stored = Arc::new(tokio::sync::Notify::new());
    let observer_stored = stored.clone();
    if config.store.journal.enabled {
        let capacity = config.store.max_rows_per_commit.get() * writer::HELD_LIMIT_COMMITS;
        telemetry
            .journal_capacity
            .store(capacity as u64, Ordering::Relaxed);
    }
    let handle = writer::spawn_observed(
        writer_conn,
        store.known.clone(),
        writer::WriterOptions {
            max_rows_per_commit: config.store.max_rows_per_commit.get(),
            checkpoint_threshold: config.store.checkpoint_threshold.0,
            commit_interval: config.store.commit_interval,
            journal: config
                .store
                .journal
                .enabled
                .then(|| writer::JournalOptions {
                    path: crate::store::journal::path_in(&config.data_dir),
                    above_rows_per_second: config.store.journal.above_rows_per_second,
                }),
            journal_rows: telemetry.journal_rows.clone(),
            ..writer::WriterOptions::default()
        },
        Box::new(move |s: writer::WriterStats| {
            observer_telemetry.committed(s.rows, s.duration.as_secs_f64());
            observer_stored.notify_one();
            if let Some(tap) = &observer_tap {
                tap.offer(s.first_event_id, s.inferences);
            }
            match s.last_event_id {
                Some(id) => observer_times.record(id, std::time::Instant::now()),
                None => observer_times.notify(),
            }
        }),
    )?;
    let store = Arc::new(store);
    let exposition = MetricsExposition::new(config.exporters.prometheus.clone());
    let self_metrics =
        SelfMetrics::register(&exposition).context("registering Millwatch's own metrics")?;
    let mut remote_write = Vec::new();
    for target in &config.exporters.remote_write {
        let exporter =
            RemoteWriteExporter::start(target.clone(), exposition.config().translation.clone())
                .with_context(|| format!("starting remote write to {}", target.url))?;
        remote_write.push(exporter);
    }
    let mut ingest = Ingest::new(
        handle.clone(),
        store.known.clone(),
        telemetry.clone(),
        config.pipeline.max_queued_rows.get(),
        config.pipeline.retry_after,
    );
    ingest.exposition = Some(exposition.clone());
    ingest.remote_write = remote_write;
    for target in &config.exporters.otlp {
        let exporter = millwatch_exporters::otlp::OtlpExporter::start(target.clone())
            .with_context(|| format!("starting the OTLP exporter `{}`", target.name))?;
        ingest.otlp.push(exporter);
    }
    let ingest = Arc::new(ingest);

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    let max_body = config.receivers.otlp.max_body_size.0;

    let detection = if config.detection.enabled {
        let conn = store.connect()?;
        let engine = crate::detection::start(
            conn,
            config.detection.clone(),
            exposition.clone(),
            commit_times,
            tap,
        )
        .context("starting the detection engine")?;
        Some(engine)
    } else {
        None
    };

    let alerting = if config.alerting.enabled {
        let engine = crate::alerting::start(
            store.connect()?,
            config.alerting.clone(),
            telemetry.clone(),
            &exposition,
            crate::alerting::default_external_url(config.api.endpoint),
        )
        .context("starting the alert manager")?;
        Some(engine)
    } else {
        None
    };

    let audit = {
        let (loaded, flat) = crate::audit::config_entry::entry(&config, crate::pipeline::now_ns());
        let settings = crate::audit::Settings {
            config: config.audit.clone(),
            data_retention: config.store.retention,
            retention_interval: config.store.retention_interval,
            recipients: crate::audit::recipients(&config.alerting),
            stored,
        };
        crate::audit::start(handle.clone(), store.connect()?, settings, loaded, flat)
            .await
            .context("starting the audit trail")?
    };
    let audit_otlp = (!config.audit.otlp_exporters.is_empty()).then(|| {
        let names = config.audit.otlp_exporters.clone();
        store
            .connect()
            .map(|c| crate::audit::otlp::start(audit.log.clone(), c, ingest.clone(), names))
    });
    let audit_otlp = audit_otlp.transpose()?;
    let reports = if config.reports.is_empty() {
        None
    } else {
        Some(crate::report::schedule::start(
            audit.log.clone(),
            store.connect()?,
            config.reports.clone(),
            crate::audit::recipients(&config.alerting),
            format!("http://{}", config.api.endpoint),
        ))
    };

    let directory = Arc::new(api::directory::Directory::new(&config));
    let api_state = Arc::new(ApiState {
        store: store.clone(),
        telemetry: telemetry.clone(),
        exposition,
        self_metrics,
        remote_write: ingest
            .remote_write
            .iter()
            .map(|t| t.stats_handle())
            .collect(),
        otlp: ingest.otlp.iter().map(|t| t.stats_handle()).collect(),
        ready: false.into(),
        alerting: alerting.as_ref().map(|a| a.shared.clone()),
        directory: directory.clone(),
        audit: Some(audit.log.clone()),
    });
    let ui = crate::ui::router(Arc::new(crate::ui::UiState {
        store: store.clone(),
        alerting: api_state.alerting.clone(),
        health_rules: config.detection.machine_health.clone(),
        directory: directory.clone(),
        latest: Default::default(),
    }));
    servers.spawn(serve_axum(
        listeners.api,
        api::router(api_state.clone())
            .merge(ui)
            .merge(crate::own_results::router(store.clone())),
        stop_rx.clone(),
    ));

    if let Some(listener) = listeners.otlp_http {
        let receiver = Arc::new(http::HttpReceiver {
            ingest: ingest.clone(),
            max_body_bytes: max_body,
            directory: directory.clone(),
        });
        servers.spawn(serve_axum(
            listener,
            http::router(receiver),
            stop_rx.clone(),
        ));
    }
    if let Some(listener) = listeners.otlp_grpc {
        // Nagle's algorithm against the client's delayed ACKs held HTTP/2 window updates and
        // responses ~40 ms (a 350 KB request of 500 events waited on several).
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let router = tonic::transport::Server::builder()
            .add_service(OtlpGrpcService::<Metrics>::new(ingest.clone(), max_body))
            .add_service(OtlpGrpcService::<Logs>::new(ingest.clone(), max_body))
            .add_service(OtlpGrpcService::<Traces>::new(ingest.clone(), max_body));
        let mut stop = stop_rx.clone();
        servers.spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
                .context("OTLP/gRPC server")
        });
    }

    {
        // Series that stopped arriving leave /metrics even when nobody scrapes.
        let exposition = api_state.exposition.clone();
        let every = (config.exporters.prometheus.series_ttl / 4).max(Duration::from_secs(1));
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => exposition.expire(std::time::Instant::now()),
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        });
    }

    if let Some(retention) = config.store.retention {
        let handle = handle.clone();
        let interval = config.store.retention_interval;
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let cutoff = now_ns() - retention.as_nanos() as i64;
                match handle.retain(cutoff).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "retention deleted old rows"),
                    Err(e) => tracing::warn!(error = %e, "retention failed"),
                }
            }
        });
    }

    // The edge's own detection results and alerts go to the exporters that forward them.
    let _own_results = crate::own_results::start(
        store.clone(),
        ingest.clone(),
        &config.data_dir,
        stop_rx.clone(),
    );

    let shutdown = shutdown_signal().context("cannot install the SIGINT/SIGTERM handlers")?;
    api_state.ready.store(true, Ordering::Relaxed);
    tracing::info!("millwatch is ready");
    if let Some(ready) = ready {
        let _ = ready.send(bound);
    }

    let failed = tokio::select! {
        _ = shutdown => None,
        Some(result) = servers.join_next() => Some(result),
    };
    api_state.ready.store(false, Ordering::Relaxed);
    tracing::info!("shutting down: draining requests");
    let _ = stop_tx.send(true);
    // In-flight requests finish (and are acknowledged) before the store closes.
    let drain = async { while servers.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(30), drain)
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close within 30s");
    }
    if let Some(engine) = detection {
        tokio::task::spawn_blocking(move || engine.shutdown()).await?;
    }
    if let Some(alerting) = alerting {
        alerting.shutdown().await;
    }
    if let Some(reports) = reports {
        reports.shutdown().await;
    }
    // After the alert manager: its last deliveries are read once more.
    audit.shutdown().await;
    if let Some(export) = audit_otlp {
        export.shutdown().await;
    }
    tokio::task::spawn_blocking(move || handle.shutdown()).await?;
    if let Ok(ingest) = Arc::try_unwrap(ingest) {
        for target in ingest.remote_write {
            target.shutdown().await;
        }
        for target in ingest.otlp {
            target.shutdown().await;
        }
    }
    match failed {
        Some(Ok(Err(e))) => Err(e),
        Some(Err(e)) => Err(e.into()),
        _ => Ok(()),
    }
}

/// The listening sockets, bound before anything else starts.
struct Listeners {
    api: TcpListener,
    otlp_http: Option<TcpListener>,
    otlp_grpc: Option<TcpListener>,
}

impl Listeners {
    async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let otlp = &config.receivers.otlp;
        let api = bind(config.api.endpoint, "the API", "api.endpoint", "--http").await?;
        let otlp_http = if otlp.http.enabled {
            let (key, flag) = ("receivers.otlp.http.endpoint", "--otlp-http");
            Some(bind(otlp.http.endpoint, "OTLP/HTTP", key, flag).await?)
        } else {
            None
        };
        let otlp_grpc = if otlp.grpc.enabled {
            let (key, flag) = ("receivers.otlp.grpc.endpoint", "--otlp-grpc");
            Some(bind(otlp.grpc.endpoint, "OTLP/gRPC", key, flag).await?)
        } else {
            None
        };
        Ok(Listeners {
            api,
            otlp_http,
            otlp_grpc,
        })
    }
}

/// Binds `addr` for `what`; a failure names the address, the setting and the flag that choose it.
async fn bind(
    addr: std::net::SocketAddr,
    what: &str,
    key: &str,
    flag: &str,
) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                format!(" (another process listens there: stop it, or set {key} or {flag} to a free port)")
            }
            std::io::ErrorKind::AddrNotAvailable => {
                format!(" (not an address of this machine: set {key} or {flag})")
            }
            std::io::ErrorKind::PermissionDenied => {
                " (ports below 1024 need privileges)".to_owned()
            }
            _ => String::new(),
        };
        anyhow::anyhow!("cannot listen on {addr} for {what}: {e}{hint}")
    })?;
    // The bound address: the port the system chose for `:0`.
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %bound, "listening for {what}");
    Ok(listener)
}

async fn serve_axum(
    listener: TcpListener,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // The peer's address is known to handlers (the audit log's `source`).
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
        .context("HTTP server")
}

/// Registers the SIGINT and SIGTERM handlers now and returns what waits for either: made
/// before the collector says it is ready, so a signal sent as soon as `/readyz` answers 200
/// shuts it down cleanly instead of killing it (a handler made on first poll came too late).
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => tracing::info!("SIGINT received"),
                _ = term.recv() => tracing::info!("SIGTERM received"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Ctrl-C received");
        })
    }
}
