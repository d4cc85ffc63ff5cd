//! `millwatch drift --multivariate`: PCA reconstruction error per chunk of the current file,
//! with thresholds from the reference file's chunks (NannyML's data reconstruction drift). It
//! sees changes in how the columns relate to each other that no single column's test shows.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use millwatch_detectors::estimation::ChunkValue;
use millwatch_detectors::estimation::reconstruction::{DEFAULT_VARIANCE, Reconstruction};
use serde::Serialize;

use crate::offline_drift::{DriftArgs, Format, read_dataset};

#[derive(Debug, Serialize)]
struct Report<'a> {
    columns: &'a [String],
    chunk_size: usize,
    components: usize,
    explained_variance: f64,
    chunks: Vec<ChunkValue>,
}

pub fn main(args: &DriftArgs) -> ExitCode {
    match run(args) {
        Ok(alerted) if alerted && args.fail_on_drift => ExitCode::from(2),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Prints the reconstruction error per chunk; whether any chunk alerted.
fn run(args: &DriftArgs) -> anyhow::Result<bool> {
    let chunk_size = args
        .chunk_size
        .context("--multivariate needs --chunk-size (rows per chunk, e.g. 1000)")?;
    if args.tests != "auto" {
        bail!("--tests does not apply to --multivariate (it uses PCA reconstruction error)");
    }
    let reference = read_dataset(&args.reference)
        .with_context(|| format!("reading {}", args.reference.display()))?;
    let current = read_dataset(&args.current)
        .with_context(|| format!("reading {}", args.current.display()))?;
    let columns: Vec<String> = match &args.columns {
        Some(c) => c.clone(),
        None => reference
            .columns()
            .iter()
            .map(|c| c.name.clone())
            .filter(|n| current.column(n).is_some())
            .collect(),
    };
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    let model = Reconstruction::fit(&reference, &names, chunk_size.get(), DEFAULT_VARIANCE)?;
    let report = Report {
        columns: &columns,
        chunk_size: chunk_size.get(),
        components: model.components.len(),
        explained_variance: model.explained_variance_ratio.iter().sum(),
        chunks: model.chunks(&current)?,
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => print!("{}", render_table(&report)),
    }
    Ok(report.chunks.iter().any(|c| c.alert))
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "none".to_string(), |v| format!("{v:.4}"))
}

fn render_table(report: &Report<'_>) -> String {
    let t = report.chunks.first().map(|c| c.thresholds);
    let mut out = format!(
        "multivariate drift (PCA reconstruction error) over {} columns: {} components explain {:.1} % of the reference variance\nthresholds [{}, {}]\n",
        report.columns.len(),
        report.components,
        100.0 * report.explained_variance,
        fmt(t.and_then(|t| t.lower)),
        fmt(t.and_then(|t| t.upper)),
    );
    out.push_str(&format!(
        "{:>5}  {:>15}  {:>8}  {:>8}  {:>19}  alert\n",
        "chunk", "rows", "error", "std.err", "band (±3 SE)"
    ));
    for c in &report.chunks {
        out.push_str(&format!(
            "{:>5}  {:>15}  {:>8}  {:>8.4}  {:>19}  {}\n",
            c.chunk,
            format!("{}-{}", c.start, c.start + c.rows - 1),
            fmt(c.value),
            c.sampling_error,
            format!(
                "[{}, {}]",
                fmt(c.lower_confidence_bound),
                fmt(c.upper_confidence_bound)
            ),
            if c.alert { "ALERT" } else { "" }
        ));
    }
    out
}
