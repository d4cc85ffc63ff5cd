//! `millwatch drift`: offline drift between two CSV or Parquet files, for CI pipelines and
//! notebooks. The statistics are the detectors crate's; this module reads files and prints.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use millwatch_detectors::dataset::{Column, Dataset};
use millwatch_detectors::drift::{
    self, Correction, DEFAULT_MIN_SAMPLES, DecisionRule, DriftOptions, TestSelection,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CorrectionArg {
    None,
    Bonferroni,
    Bh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuleArg {
    /// p-value below the threshold, distances above theirs (Evidently-compatible; the default here).
    Evidently,
    /// Benjamini–Hochberg-corrected p-values and an effect-size floor (the live default).
    Live,
}

#[derive(Debug, clap::Args)]
pub struct DriftArgs {
    /// Reference data: a CSV (header row) or Parquet file.
    #[arg(long)]
    pub reference: PathBuf,
    /// Current data, same format.
    #[arg(long)]
    pub current: PathBuf,
    /// `auto`, `all`, or a comma-separated list such as `ks,psi`.
    #[arg(long, default_value = "auto")]
    pub tests: String,
    /// Only these columns (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Share of drifted columns at which the dataset counts as drifted.
    #[arg(long, default_value_t = 0.5)]
    pub drift_share: f64,
    /// Correction of p-values across columns.
    #[arg(long, value_enum, default_value = "none")]
    pub correction: CorrectionArg,
    /// How a column's verdict is decided.
    #[arg(long, value_enum, default_value = "evidently")]
    pub rule: RuleArg,
    /// Exit 2 when the dataset drifted (for CI pipelines).
    #[arg(long)]
    pub fail_on_drift: bool,
    /// Usable values a column needs in each file to be tested; a column with fewer is listed
    /// as not tested, with a warning (the live engine's `detection.min_samples` default).
    #[arg(long, default_value_t = DEFAULT_MIN_SAMPLES)]
    pub min_samples: NonZeroUsize,
    /// Multivariate drift instead: PCA reconstruction error per chunk of the current file,
    /// thresholds from the reference's chunks (needs --chunk-size; --fail-on-drift exits 2
    /// when a chunk alerts).
    #[arg(long)]
    pub multivariate: bool,
    /// Rows per chunk for --multivariate.
    #[arg(long, requires = "multivariate")]
    pub chunk_size: Option<NonZeroUsize>,
}

pub fn main(args: DriftArgs) -> ExitCode {
    if args.multivariate {
        return crate::offline_multivariate::main(&args);
    }
    match run(&args) {
        Ok(Some(drifted)) if drifted && args.fail_on_drift => ExitCode::from(2),
        Ok(Some(_)) => ExitCode::SUCCESS,
        // The report is printed; a pipeline must not take "nothing tested" for "no drift".
        Ok(None) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Prints the report; the dataset verdict, or `None` when no column could be tested.
fn run(args: &DriftArgs) -> anyhow::Result<Option<bool>> {
    let tests: TestSelection = args
        .tests
        .parse()
        .map_err(|e| anyhow::anyhow!("--tests {:?}: {e}", args.tests))?;
    let reference = read_dataset(&args.reference)
        .with_context(|| format!("reading {}", args.reference.display()))?;
    let current = read_dataset(&args.current)
        .with_context(|| format!("reading {}", args.current.display()))?;
    let options = DriftOptions {
        tests,
        columns: args.columns.clone(),
        drift_share: args.drift_share,
        correction: match args.correction {
            CorrectionArg::None => Correction::None,
            CorrectionArg::Bonferroni => Correction::Bonferroni,
            CorrectionArg::Bh => Correction::BenjaminiHochberg,
        },
        rule: match args.rule {
            RuleArg::Evidently => DecisionRule::EvidentlyCompatible,
            RuleArg::Live => DecisionRule::live_default(),
        },
        min_samples: args.min_samples,
        ..DriftOptions::default()
    };
    let report = drift::compare(&reference, &current, &options)?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => print!("{}", drift::render_table(&report)),
    }
    // On stderr too, so that they show with `--format json` and in CI logs.
    for u in &report.not_tested {
        eprintln!("warning: not tested: {}", u.message);
    }
    if report.dataset.drifted.is_none() {
        eprintln!(
            "error: no verdict: none of the {} columns could be tested (each needs at least {} usable values in both files; see --min-samples)",
            report.not_tested.len(),
            report.min_samples
        );
    }
    Ok(report.dataset.drifted)
}

/// Reads a CSV or Parquet file by its extension (`.parquet`/`.pq` is Parquet, else CSV).
pub fn read_dataset(path: &Path) -> anyhow::Result<Dataset> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ext == "parquet" || ext == "pq" {
        read_parquet(path)
    } else {
        let text = std::fs::read_to_string(path)?;
        Ok(Dataset::from_csv_str(&text)?)
    }
}

/// Numeric Parquet columns become numeric columns, everything else categorical (as text).
fn read_parquet(path: &Path) -> anyhow::Result<Dataset> {
    if !path.exists() {
        bail!("no such file");
    }
    let conn = duckdb::Connection::open_in_memory()?;
    let file = path.to_string_lossy().replace('\'', "''");
    let source = format!("read_parquet('{file}')");
    let mut describe = conn.prepare(&format!("DESCRIBE SELECT * FROM {source}"))?;
    let schema: Vec<(String, String)> = describe
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<duckdb::Result<_>>()?;
    let mut columns = Vec::with_capacity(schema.len());
    for (name, ty) in schema {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let numeric = is_numeric(&ty);
        let sql = if numeric {
            format!("SELECT CAST({quoted} AS DOUBLE) FROM {source}")
        } else {
            format!("SELECT CAST({quoted} AS VARCHAR) FROM {source}")
        };
        let mut stmt = conn.prepare(&sql)?;
        if numeric {
            let values: Vec<Option<f64>> = stmt
                .query_map([], |r| r.get::<_, Option<f64>>(0))?
                .map(|v| v.map(|v| v.filter(|x| !x.is_nan())))
                .collect::<duckdb::Result<_>>()?;
            columns.push(Column::numeric(name, values));
        } else {
            let values: Vec<Option<String>> = stmt
                .query_map([], |r| r.get::<_, Option<String>>(0))?
                .map(|v| v.map(|v| v.filter(|s| !s.is_empty())))
                .collect::<duckdb::Result<_>>()?;
            columns.push(Column::categorical(name, values));
        }
    }
    Ok(Dataset::new(columns)?)
}

fn is_numeric(duckdb_type: &str) -> bool {
    let t = duckdb_type.to_ascii_uppercase();
    [
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "FLOAT",
        "DOUBLE",
        "DECIMAL",
    ]
    .iter()
    .any(|n| t.starts_with(n))
}
