//! Shared by the detection tests: a store in a temporary directory, generated inference events,
//! and an engine driven pass by pass.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use millwatch::detection::{DetectionConfig, Engine};
use millwatch::signals::{Batch, FeatureValue, FeedbackRow, InferenceRow, Prediction};
use millwatch::store::writer::WriterOptions;
use millwatch::store::{Store, StoreHandle};
use millwatch_exporters::prometheus::{ExpositionConfig, MetricsExposition};

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!(
            "millwatch-{name}-{}-{}",
            std::process::id(),
            rand_u64(name.len() as u64)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_u64(salt: u64) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ salt.wrapping_mul(0x9e3779b97f4a7c15)
}

/// A seeded generator (SplitMix64 with Box–Muller normals).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let (a, b) = (self.uniform(), self.uniform());
        mean + sd * (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }
}

pub struct TestStore {
    pub dir: TempDir,
    pub handle: StoreHandle,
    pub store: Arc<Store>,
    pub runtime: tokio::runtime::Runtime,
}

impl TestStore {
    pub fn open(name: &str) -> TestStore {
        let dir = TempDir::new(name);
        Self::open_in(dir)
    }

    pub fn open_in(dir: TempDir) -> TestStore {
        Self::open_in_with(dir, Default::default())
    }

    pub fn open_in_with(dir: TempDir, options: WriterOptions) -> TestStore {
        let store = Store::open(&dir.0).expect("store opens");
        let (handle, store) = store.start_writer(options).expect("writer");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        TestStore {
            dir,
            handle,
            store,
            runtime,
        }
    }

    pub fn store(&self, batch: Batch) {
        self.runtime
            .block_on(self.handle.store(batch))
            .expect("stored");
    }

    /// Closes the store (as at shutdown) and opens it again.
    pub fn reopen(self) -> TestStore {
        self.handle.shutdown();
        let TestStore {
            dir,
            handle,
            store,
            runtime,
        } = self;
        drop((handle, store, runtime));
        Self::open_in(dir)
    }

    pub fn engine(&self, config: DetectionConfig) -> Engine {
        self.engine_with(config, &MetricsExposition::new(ExpositionConfig::default()))
    }

    pub fn engine_with(&self, config: DetectionConfig, exposition: &MetricsExposition) -> Engine {
        Engine::open(
            self.store.connect().expect("connection"),
            config,
            exposition,
        )
        .expect("engine opens")
    }

    pub fn query_u64(&self, sql: &str) -> u64 {
        self.store
            .read(|c| c.query_row(sql, [], |r| r.get::<_, u64>(0)))
            .expect("query")
    }

    pub fn query_strings(&self, sql: &str) -> Vec<String> {
        self.store
            .read(|c| {
                let mut s = c.prepare(sql)?;
                let rows = s.query_map([], |r| r.get::<_, String>(0))?;
                rows.collect::<duckdb::Result<Vec<_>>>()
            })
            .expect("query")
    }
}

/// Runs passes until the engine has read everything stored.
pub fn drain(engine: &mut Engine) -> usize {
    let mut closed = 0;
    loop {
        let pass = engine.step().expect("pass");
        closed += pass.windows_closed;
        if pass.events == 0 {
            return closed;
        }
    }
}

pub fn inference(
    model: &str,
    version: &str,
    i: u64,
    features: Vec<(String, FeatureValue)>,
    prediction: Prediction,
) -> InferenceRow {
    InferenceRow {
        time: 1_700_000_000_000_000_000 + i as i64 * 1_000_000,
        observed_time: None,
        model: model.into(),
        version: version.into(),
        inference_id: Some(format!("{model}-{version}-{i}")),
        prediction,
        score: None,
        duration_s: None,
        task: None,
        trace_id: None,
        span_id: None,
        attributes: None,
        resource_id: 1,
        scope_id: 1,
        features,
    }
}

pub fn feedback(model: &str, inference_id: String, label: Prediction) -> FeedbackRow {
    FeedbackRow {
        time: 1_800_000_000_000_000_000,
        observed_time: None,
        model: model.into(),
        inference_id,
        label,
        attributes: None,
        resource_id: 1,
        scope_id: 1,
    }
}

pub fn batch_of(inferences: Vec<InferenceRow>) -> Batch {
    Batch {
        inferences,
        ..Batch::default()
    }
}

/// The value of the sample `name` whose labels include all of `labels`, in a text exposition.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (series, value) = rest.rsplit_once("} ")?;
        // Label values may hold commas: match whole `,name="value",` pairs.
        let series = format!(",{series},");
        labels
            .iter()
            .all(|(k, v)| series.contains(&format!(",{k}=\"{v}\",")))
            .then(|| value.parse().ok())?
    })
}
