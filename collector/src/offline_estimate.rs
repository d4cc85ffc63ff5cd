//! `millwatch estimate`: performance estimated before labels arrive, offline, from a labelled
//! reference file and an analysis file (CSV or Parquet): CBPE for binary and multiclass
//! classifiers, DLE for
//! regressors, per chunk with sampling-error bands, reference thresholds and alert flags. When
//! the analysis file also has the target, the realised value is printed beside the estimate for
//! comparison; it is never given to the estimator. The statistics are the detectors crate's.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use millwatch_detectors::dataset::{ColumnValues, Dataset};
use millwatch_detectors::estimation::ChunkValue;
use millwatch_detectors::estimation::cbpe::{
    BinaryOutputs, Calibration, Cbpe, ClassificationMetric,
};
use millwatch_detectors::estimation::cbpe_multiclass::{MulticlassCbpe, MulticlassOutputs};
use millwatch_detectors::estimation::dle::{Dle, NannySettings, RegressionMetric};
use serde::Serialize;

use crate::offline_drift::{Format, read_dataset};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Problem {
    /// A binary classifier with a score (probability of the positive class): CBPE.
    Binary,
    /// A classifier of 3 or more classes with a score column per class: CBPE one-vs-rest.
    Multiclass,
    /// A regressor: DLE.
    Regression,
}

#[derive(Debug, clap::Args)]
pub struct EstimateArgs {
    /// Reference data with targets: a CSV (header row) or Parquet file.
    #[arg(long)]
    pub reference: PathBuf,
    /// Analysis data, same format; its target column, if any, is only shown for comparison.
    #[arg(long)]
    pub analysis: PathBuf,
    #[arg(long, value_enum)]
    pub problem: Problem,
    /// The target (label) column: 0/1 for binary, numbers for regression.
    #[arg(long)]
    pub target: String,
    /// The score column (probability of class 1) of a binary classifier; of a multiclass one,
    /// a column per class as `CLASS=COLUMN` (or `COLUMN` when it is named after its class),
    /// comma-separated.
    #[arg(long)]
    pub score: Option<String>,
    /// The predicted class (0/1) or predicted value column.
    #[arg(long)]
    pub prediction: String,
    /// Rows per chunk; a trailing partial chunk is kept.
    #[arg(long)]
    pub chunk_size: usize,
    /// Metrics (comma-separated). Binary: roc_auc, accuracy, f1, precision, recall,
    /// specificity (default: all); regression: mae, rmse (default: both).
    #[arg(long, value_delimiter = ',')]
    pub metrics: Option<Vec<String>>,
    /// Feature columns of the regression nanny model (default: every column except the target
    /// and the prediction).
    #[arg(long, value_delimiter = ',')]
    pub features: Option<Vec<String>>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Exit 2 when an estimate alerts (for CI pipelines).
    #[arg(long)]
    pub fail_on_alert: bool,
}

/// What the command prints as JSON.
#[derive(Debug, Serialize)]
struct Report {
    method: &'static str,
    chunk_size: usize,
    /// CBPE: whether the scores were calibrated, with the cross-validated calibration errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    calibration: Option<serde_json::Value>,
    metrics: Vec<MetricReport>,
}

#[derive(Debug, Serialize)]
struct MetricReport {
    metric: &'static str,
    chunks: Vec<ChunkReport>,
}

#[derive(Debug, Serialize)]
struct ChunkReport {
    #[serde(flatten)]
    estimate: ChunkValue,
    /// The realised value, where the analysis file has the target.
    realized: Option<f64>,
}

pub fn main(args: EstimateArgs) -> ExitCode {
    match run(&args) {
        Ok(alerted) if alerted && args.fail_on_alert => ExitCode::from(2),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Prints the report; whether any estimate alerted.
fn run(args: &EstimateArgs) -> anyhow::Result<bool> {
    if args.chunk_size == 0 {
        bail!("--chunk-size must be at least 1");
    }
    let reference = read_dataset(&args.reference)
        .with_context(|| format!("reading {}", args.reference.display()))?;
    let analysis = read_dataset(&args.analysis)
        .with_context(|| format!("reading {}", args.analysis.display()))?;
    let report = match args.problem {
        Problem::Binary => binary(args, &reference, &analysis)?,
        Problem::Multiclass => multiclass(args, &reference, &analysis)?,
        Problem::Regression => regression(args, &reference, &analysis)?,
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => print!("{}", render_table(&report)),
    }
    Ok(report
        .metrics
        .iter()
        .any(|m| m.chunks.iter().any(|c| c.estimate.alert)))
}

fn numbers(data: &Dataset, name: &str, file: &str) -> anyhow::Result<Vec<f64>> {
    let column = data
        .column(name)
        .with_context(|| format!("the {file} file has no column '{name}'"))?;
    match &column.values {
        ColumnValues::Numeric(v) => v
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.with_context(|| format!("{file} column '{name}' is empty in data row {}", i + 1))
            })
            .collect(),
        ColumnValues::Categorical(_) => {
            bail!("{file} column '{name}' holds text; it must hold numbers")
        }
    }
}

/// A 0/1 (or true/false) column as booleans.
fn classes(data: &Dataset, name: &str, file: &str) -> anyhow::Result<Vec<bool>> {
    let column = data
        .column(name)
        .with_context(|| format!("the {file} file has no column '{name}'"))?;
    let bad = |i: usize, v: &dyn std::fmt::Debug| {
        anyhow::anyhow!(
            "{file} column '{name}' holds {v:?} in data row {}; a binary class must be 0 or 1 (or true/false)",
            i + 1
        )
    };
    match &column.values {
        ColumnValues::Numeric(v) => v
            .iter()
            .enumerate()
            .map(|(i, x)| match x {
                Some(0.0) => Ok(false),
                Some(1.0) => Ok(true),
                other => Err(bad(i, other)),
            })
            .collect(),
        ColumnValues::Categorical(v) => v
            .iter()
            .enumerate()
            .map(|(i, x)| match x.as_deref().map(str::trim) {
                Some("true" | "True" | "TRUE") => Ok(true),
                Some("false" | "False" | "FALSE") => Ok(false),
                other => Err(bad(i, &other)),
            })
            .collect(),
    }
}

fn scores(data: &Dataset, name: &str, file: &str) -> anyhow::Result<Vec<f64>> {
    let s = numbers(data, name, file)?;
    if let Some((i, v)) = s
        .iter()
        .enumerate()
        .find(|(_, v)| !(0.0..=1.0).contains(*v))
    {
        bail!(
            "{file} column '{name}' holds {v} in data row {}; a score must be a probability between 0 and 1",
            i + 1
        );
    }
    Ok(s)
}

fn binary(args: &EstimateArgs, reference: &Dataset, analysis: &Dataset) -> anyhow::Result<Report> {
    let score = args
        .score
        .as_deref()
        .context("--problem binary needs --score (the probability of class 1)")?;
    if score.contains(',') {
        bail!("--score takes one column for a binary classifier; got '{score}'");
    }
    let metrics = match &args.metrics {
        Some(names) => names
            .iter()
            .map(|n| ClassificationMetric::parse(n))
            .collect::<Result<Vec<_>, _>>()?,
        None => ClassificationMetric::ALL.to_vec(),
    };
    let (rs, rp) = (
        scores(reference, score, "reference")?,
        classes(reference, &args.prediction, "reference")?,
    );
    let actual = classes(reference, &args.target, "reference")?;
    let cbpe = Cbpe::fit(
        BinaryOutputs {
            scores: &rs,
            predicted: &rp,
        },
        &actual,
        args.chunk_size,
        &metrics,
        Calibration::Auto,
    )?;
    let (s, p) = (
        scores(analysis, score, "analysis")?,
        classes(analysis, &args.prediction, "analysis")?,
    );
    let outputs = BinaryOutputs {
        scores: &s,
        predicted: &p,
    };
    let estimates = cbpe.estimate(outputs)?;
    let realized = match analysis.column(&args.target) {
        Some(_) => Some(cbpe.realized(outputs, &classes(analysis, &args.target, "analysis")?)?),
        None => None,
    };
    Ok(Report {
        method: "cbpe",
        chunk_size: args.chunk_size,
        calibration: Some(serde_json::to_value(&cbpe.calibration)?),
        metrics: metric_reports(
            estimates.into_iter().map(|m| (m.metric.name(), m.chunks)),
            realized.map(|r| r.into_iter().map(|m| m.chunks).collect()),
        ),
    })
}

/// A class column as indices into `classes` (numbers are read as their text).
fn class_indices(
    data: &Dataset,
    name: &str,
    file: &str,
    classes: &[String],
) -> anyhow::Result<Vec<usize>> {
    let column = data
        .column(name)
        .with_context(|| format!("the {file} file has no column '{name}'"))?;
    (0..data.rows())
        .map(|i| {
            let value = match &column.values {
                ColumnValues::Categorical(v) => v[i].clone(),
                ColumnValues::Numeric(v) => v[i].map(|x| x.to_string()),
            };
            let value = value.with_context(|| {
                format!("{file} column '{name}' is empty in data row {}", i + 1)
            })?;
            classes.iter().position(|c| *c == value.trim()).with_context(|| {
                format!(
                    "{file} column '{name}' holds '{value}' in data row {}, which is none of the classes of --score ({})",
                    i + 1,
                    classes.join(", ")
                )
            })
        })
        .collect()
}

fn multiclass(
    args: &EstimateArgs,
    reference: &Dataset,
    analysis: &Dataset,
) -> anyhow::Result<Report> {
    let score = args.score.as_deref().context(
        "--problem multiclass needs --score with a column per class: CLASS=COLUMN,CLASS=COLUMN,...",
    )?;
    let (classes, columns): (Vec<String>, Vec<String>) = score
        .split(',')
        .map(|entry| match entry.split_once('=') {
            Some((class, column)) => (class.trim().to_owned(), column.trim().to_owned()),
            None => (entry.trim().to_owned(), entry.trim().to_owned()),
        })
        .unzip();
    if classes.len() < 3 {
        bail!(
            "--problem multiclass needs a score column for each of at least 3 classes; got '{score}' (a classifier of 2 classes is --problem binary)"
        );
    }
    let metrics = match &args.metrics {
        Some(names) => names
            .iter()
            .map(|n| ClassificationMetric::parse(n))
            .collect::<Result<Vec<_>, _>>()?,
        None => ClassificationMetric::ALL.to_vec(),
    };
    let read = |data: &Dataset, file: &str| -> anyhow::Result<(Vec<Vec<f64>>, Vec<usize>)> {
        let s = columns
            .iter()
            .map(|c| scores(data, c, file))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok((s, class_indices(data, &args.prediction, file, &classes)?))
    };
    let (rs, rp) = read(reference, "reference")?;
    let cbpe = MulticlassCbpe::fit(
        MulticlassOutputs {
            scores: &rs,
            predicted: &rp,
        },
        &class_indices(reference, &args.target, "reference", &classes)?,
        args.chunk_size,
        &metrics,
        Calibration::Auto,
    )?;
    let (s, p) = read(analysis, "analysis")?;
    let outputs = MulticlassOutputs {
        scores: &s,
        predicted: &p,
    };
    let estimates = cbpe.estimate(outputs)?;
    let realized = match analysis.column(&args.target) {
        Some(_) => Some(cbpe.realized(
            outputs,
            &class_indices(analysis, &args.target, "analysis", &classes)?,
        )?),
        None => None,
    };
    Ok(Report {
        method: "cbpe",
        chunk_size: args.chunk_size,
        calibration: Some(serde_json::json!({
            "needs_calibration": cbpe.calibration.iter().any(|c| c.needs_calibration),
            "per_class": classes.iter().zip(&cbpe.calibration).map(|(c, d)| (c.clone(), serde_json::to_value(d).unwrap_or_default())).collect::<serde_json::Map<_, _>>(),
        })),
        metrics: metric_reports(
            estimates.into_iter().map(|m| (m.metric.name(), m.chunks)),
            realized.map(|r| r.into_iter().map(|m| m.chunks).collect()),
        ),
    })
}

fn regression(
    args: &EstimateArgs,
    reference: &Dataset,
    analysis: &Dataset,
) -> anyhow::Result<Report> {
    if args.score.is_some() {
        bail!("--score applies to classifiers; a regressor has only --prediction");
    }
    let metrics = match &args.metrics {
        Some(names) => names
            .iter()
            .map(|n| RegressionMetric::parse(n))
            .collect::<Result<Vec<_>, _>>()?,
        None => RegressionMetric::ALL.to_vec(),
    };
    let features: Vec<String> = match &args.features {
        Some(f) => f.clone(),
        None => reference
            .columns()
            .iter()
            .map(|c| c.name.clone())
            .filter(|n| n != &args.target && n != &args.prediction)
            .collect(),
    };
    if features.is_empty() {
        bail!("the nanny model needs feature columns besides the target and the prediction");
    }
    let feature_refs: Vec<&str> = features.iter().map(String::as_str).collect();
    let predicted = numbers(reference, &args.prediction, "reference")?;
    let dle = Dle::fit(
        reference,
        &feature_refs,
        &predicted,
        &numbers(reference, &args.target, "reference")?,
        args.chunk_size,
        &metrics,
        NannySettings::default(),
    )?;
    let predicted = numbers(analysis, &args.prediction, "analysis")?;
    let estimates = dle.estimate(analysis, &predicted)?;
    let realized = match analysis.column(&args.target) {
        Some(_) => Some(dle.realized(&predicted, &numbers(analysis, &args.target, "analysis")?)?),
        None => None,
    };
    Ok(Report {
        method: "dle",
        chunk_size: args.chunk_size,
        calibration: None,
        metrics: metric_reports(
            estimates.into_iter().map(|m| (m.metric.name(), m.chunks)),
            realized.map(|r| r.into_iter().map(|m| m.chunks).collect()),
        ),
    })
}

/// Each metric's estimated chunks with the realised value of the same chunk beside each.
fn metric_reports(
    estimates: impl Iterator<Item = (&'static str, Vec<ChunkValue>)>,
    realized: Option<Vec<Vec<ChunkValue>>>,
) -> Vec<MetricReport> {
    estimates
        .enumerate()
        .map(|(i, (metric, chunks))| MetricReport {
            metric,
            chunks: chunks
                .into_iter()
                .enumerate()
                .map(|(k, estimate)| ChunkReport {
                    estimate,
                    realized: realized.as_ref().and_then(|r| r[i][k].value),
                })
                .collect(),
        })
        .collect()
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"))
}

fn render_table(report: &Report) -> String {
    let mut out = String::new();
    if let Some(c) = &report.calibration {
        out.push_str(&format!(
            "calibration: {}\n",
            if c["needs_calibration"] == true {
                "isotonic (lowers the cross-validated calibration error)"
            } else {
                "none (the scores are calibrated already)"
            }
        ));
    }
    for m in &report.metrics {
        let t = m.chunks.first().map(|c| c.estimate.thresholds);
        out.push_str(&format!(
            "\n{} ({}), thresholds [{}, {}]\n",
            m.metric,
            report.method,
            fmt(t.and_then(|t| t.lower)),
            fmt(t.and_then(|t| t.upper))
        ));
        out.push_str(&format!(
            "{:>5}  {:>15}  {:>9}  {:>8}  {:>19}  {:>9}  alert\n",
            "chunk", "rows", "estimated", "std.err", "band (±3 SE)", "realised"
        ));
        for c in &m.chunks {
            let e = &c.estimate;
            out.push_str(&format!(
                "{:>5}  {:>15}  {:>9}  {:>8.4}  {:>19}  {:>9}  {}\n",
                e.chunk,
                format!("{}-{}", e.start, e.start + e.rows - 1),
                fmt(e.value),
                e.sampling_error,
                format!(
                    "[{}, {}]",
                    fmt(e.lower_confidence_bound),
                    fmt(e.upper_confidence_bound)
                ),
                fmt(c.realized),
                if e.alert { "ALERT" } else { "" }
            ));
        }
    }
    out
}
