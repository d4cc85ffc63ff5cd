//! Multivariate drift as NannyML's `DataReconstructionDriftCalculator` measures it: impute
//! (mean / most frequent), encode each categorical column by its reference frequency,
//! standardise, keep the principal components that explain more than 65 % of the reference
//! variance, and measure per row how far the data lie from their reconstruction through those
//! components. When the relations between the columns change (a correlation breaks), rows no
//! longer fit the reference's components and the mean error rises, even where every column's
//! own distribution is unchanged.

use std::collections::HashMap;
use std::ops::Range;

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use serde::Serialize;

use super::{ChunkValue, MetricRange, SAMPLING_ERROR_RANGE, Thresholds, size_chunks};
use crate::dataset::{ColumnValues, Dataset};
use crate::error::{DetectorError, Result};

/// NannyML's default share of the variance the kept components explain.
pub const DEFAULT_VARIANCE: f64 = 0.65;

/// How one column becomes a number.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Encoding {
    /// A number; missing values become the reference mean.
    Numeric { mean: f64 },
    /// A category's share of the reference (unseen: 0); missing values become the most
    /// frequent reference category.
    Frequency {
        shares: HashMap<String, f64>,
        most_frequent: String,
    },
}

/// The reconstruction model fitted on a reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reconstruction {
    /// The columns, in order.
    pub columns: Vec<String>,
    encodings: Vec<Encoding>,
    /// Mean of each encoded column on the reference.
    pub scaler_mean: Vec<f64>,
    /// Population standard deviation of each encoded column (1 where constant).
    pub scaler_scale: Vec<f64>,
    /// Mean of the scaled reference (about 0).
    pub pca_mean: Vec<f64>,
    /// The kept components, one per row, by explained variance descending.
    pub components: Vec<Vec<f64>>,
    /// Share of the variance each kept component explains.
    pub explained_variance_ratio: Vec<f64>,
    /// Thresholds from the reference chunks' mean errors.
    pub thresholds: Thresholds,
    /// Rows per chunk.
    pub chunk_size: usize,
}

impl Reconstruction {
    /// Fits on `columns` of the reference (chunks of `chunk_size` rows set the thresholds);
    /// keeps the fewest components explaining more than `variance` of the variance.
    pub fn fit(
        reference: &Dataset,
        columns: &[&str],
        chunk_size: usize,
        variance: f64,
    ) -> Result<Reconstruction> {
        Reconstruction::fit_keeping(reference, columns, chunk_size, variance, None)
    }

    /// As [`Reconstruction::fit`]; with `components`, keeps exactly that many (at most the
    /// number of columns) whatever share of the variance they explain.
    fn fit_keeping(
        reference: &Dataset,
        columns: &[&str],
        chunk_size: usize,
        variance: f64,
        components: Option<usize>,
    ) -> Result<Reconstruction> {
        if columns.len() < 2 {
            return Err(DetectorError::InvalidParameter(
                "multivariate drift needs at least 2 columns".into(),
            ));
        }
        if !(variance > 0.0 && variance < 1.0) {
            return Err(DetectorError::InvalidParameter(format!(
                "explained variance share {variance} must be between 0 and 1"
            )));
        }
        if chunk_size == 0 {
            return Err(DetectorError::InvalidParameter(
                "chunk size must be at least 1".into(),
            ));
        }
        let n = reference.rows();
        if n < 2 {
            return Err(DetectorError::InvalidInput(format!(
                "the reference has {n} rows; multivariate drift needs at least 2"
            )));
        }
        let encodings = columns
            .iter()
            .map(|&name| {
                let column = reference.column(name).ok_or_else(|| {
                    DetectorError::NotApplicable(format!("the reference has no column '{name}'"))
                })?;
                fit_encoding(name, &column.values)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut model = Reconstruction {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            encodings,
            scaler_mean: Vec::new(),
            scaler_scale: Vec::new(),
            pca_mean: Vec::new(),
            components: Vec::new(),
            explained_variance_ratio: Vec::new(),
            thresholds: Thresholds {
                lower: None,
                upper: None,
            },
            chunk_size,
        };
        let encoded = model.encode(reference)?;
        let d = columns.len();
        for j in 0..d {
            let col = encoded.column(j);
            let mean = col.sum() / n as f64;
            let std = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
            model.scaler_mean.push(mean);
            model.scaler_scale.push(if std == 0.0 { 1.0 } else { std });
        }
        let scaled = model.scale(encoded);
        let pca_mean: Vec<f64> = (0..d).map(|j| scaled.column(j).sum() / n as f64).collect();
        let mut centred = scaled;
        for (j, m) in pca_mean.iter().enumerate() {
            centred.column_mut(j).add_scalar_mut(-m);
        }
        let covariance = centred.tr_mul(&centred) / (n as f64 - 1.0);
        let eigen = SymmetricEigen::new(covariance);
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
        let total: f64 = eigen.eigenvalues.iter().map(|v| v.max(0.0)).sum();
        if total <= 0.0 {
            return Err(DetectorError::Constant(format!(
                "every column of {} in the reference",
                columns.join(", ")
            )));
        }
        let mut cumulative = 0.0;
        for &i in &order {
            let ratio = eigen.eigenvalues[i].max(0.0) / total;
            cumulative += ratio;
            model
                .components
                .push(eigen.eigenvectors.column(i).iter().copied().collect());
            model.explained_variance_ratio.push(ratio);
            let enough = match components {
                Some(k) => model.components.len() >= k,
                None => cumulative > variance,
            };
            if enough {
                break;
            }
        }
        model.pca_mean = pca_mean;
        let errors = model.errors(reference)?;
        let values: Vec<f64> = size_chunks(n, chunk_size)
            .iter()
            .map(|r| mean(&errors[r.clone()]))
            .collect();
        model.thresholds = Thresholds::from_reference(&values, MetricRange::NON_NEGATIVE_DROPPED);
        Ok(model)
    }

    /// As [`Reconstruction::fit`], but each reference chunk's mean error, from which the
    /// thresholds come, is measured with a model fitted on the other chunks: errors of rows
    /// the model was not fitted on, as a live window's are. In-sample errors are smaller (the
    /// components are fitted to those very rows, more so the more columns and the fewer rows),
    /// so thresholds from them alarm on unchanged data when the reference is short: on 20
    /// independent columns and 1000 reference rows, 197 of 200 unchanged windows alarmed with
    /// in-sample thresholds. The other chunks' models keep as many components as the whole
    /// reference's. Needs at least 2 reference chunks.
    pub fn fit_held_out(
        reference: &Dataset,
        columns: &[&str],
        chunk_size: usize,
        variance: f64,
    ) -> Result<Reconstruction> {
        let mut model = Reconstruction::fit(reference, columns, chunk_size, variance)?;
        let chunks = size_chunks(reference.rows(), chunk_size);
        if chunks.len() < 2 {
            return Err(DetectorError::InvalidInput(format!(
                "held-out thresholds need at least 2 reference chunks of {chunk_size} rows; the reference has {}",
                reference.rows()
            )));
        }
        let mut values = Vec::with_capacity(chunks.len());
        for held in &chunks {
            let rest: Vec<usize> = (0..reference.rows())
                .filter(|i| !held.contains(i))
                .collect();
            // As many components as the whole reference's model keeps: near the variance
            // share, a fold keeping one more or one fewer would measure another error.
            let others = Reconstruction::fit_keeping(
                &reference.select_rows(&rest),
                columns,
                chunk_size,
                variance,
                Some(model.components.len()),
            )?;
            let rows: Vec<usize> = held.clone().collect();
            values.push(mean(&others.errors(&reference.select_rows(&rows))?));
        }
        model.thresholds = Thresholds::from_reference(&values, MetricRange::NON_NEGATIVE_DROPPED);
        Ok(model)
    }

    /// The encoded (imputed, frequency-encoded) rows of `data`.
    fn encode(&self, data: &Dataset) -> Result<DMatrix<f64>> {
        let n = data.rows();
        let mut m = DMatrix::zeros(n, self.columns.len());
        for (j, (name, enc)) in self.columns.iter().zip(&self.encodings).enumerate() {
            let column = data
                .column(name)
                .ok_or_else(|| DetectorError::NotApplicable(format!("no column '{name}'")))?;
            match (enc, &column.values) {
                (Encoding::Numeric { mean }, ColumnValues::Numeric(v)) => {
                    for (i, x) in v.iter().enumerate() {
                        m[(i, j)] = x.unwrap_or(*mean);
                    }
                }
                (
                    Encoding::Frequency {
                        shares,
                        most_frequent,
                    },
                    values,
                ) => {
                    for i in 0..n {
                        let category = category_at(values, i);
                        let key = category.as_deref().unwrap_or(most_frequent);
                        m[(i, j)] = shares.get(key).copied().unwrap_or(0.0);
                    }
                }
                (Encoding::Numeric { .. }, ColumnValues::Categorical(_)) => {
                    return Err(DetectorError::InvalidInput(format!(
                        "column '{name}' is numeric in the reference but holds text here"
                    )));
                }
            }
        }
        Ok(m)
    }

    fn scale(&self, mut m: DMatrix<f64>) -> DMatrix<f64> {
        for j in 0..self.columns.len() {
            let (mu, s) = (self.scaler_mean[j], self.scaler_scale[j]);
            m.column_mut(j).apply(|v| *v = (*v - mu) / s);
        }
        m
    }

    /// The reconstruction error of each row of `data` (Euclidean, in standardised units).
    pub fn errors(&self, data: &Dataset) -> Result<Vec<f64>> {
        let x = self.scale(self.encode(data)?);
        let w = DMatrix::from_fn(self.components.len(), self.columns.len(), |k, j| {
            self.components[k][j]
        });
        let mean = DVector::from_column_slice(&self.pca_mean);
        Ok((0..x.nrows())
            .map(|i| {
                let centred = x.row(i).transpose() - &mean;
                let z = &w * &centred;
                let back = w.tr_mul(&z);
                (centred - back).norm()
            })
            .collect())
    }

    /// The mean reconstruction error of each chunk of `data`, with sampling error, bounds,
    /// thresholds and alerts (`NOT lower < value < upper`).
    pub fn chunks(&self, data: &Dataset) -> Result<Vec<ChunkValue>> {
        let errors = self.errors(data)?;
        Ok(size_chunks(errors.len(), self.chunk_size)
            .into_iter()
            .enumerate()
            .map(|(i, r)| self.chunk_value(i, &r, &errors[r.clone()]))
            .collect())
    }

    /// One chunk's row from its rows' errors.
    pub fn chunk_value(&self, chunk: usize, rows: &Range<usize>, errors: &[f64]) -> ChunkValue {
        let value = mean(errors);
        let n = errors.len() as f64;
        let se =
            (errors.iter().map(|e| (e - value).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() / n.sqrt();
        ChunkValue {
            chunk,
            start: rows.start,
            rows: errors.len(),
            value: Some(value),
            sampling_error: se,
            lower_confidence_bound: Some((value - SAMPLING_ERROR_RANGE * se).max(0.0)),
            upper_confidence_bound: Some(value + SAMPLING_ERROR_RANGE * se),
            thresholds: self.thresholds,
            alert: self.thresholds.not_strictly_inside(value),
        }
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The category of row `i` as text (a numeric column given as categorical is read as text).
fn category_at(values: &ColumnValues, i: usize) -> Option<String> {
    match values {
        ColumnValues::Categorical(v) => v[i].clone(),
        ColumnValues::Numeric(v) => v[i].map(|x| x.to_string()),
    }
}

fn fit_encoding(name: &str, values: &ColumnValues) -> Result<Encoding> {
    match values {
        ColumnValues::Numeric(v) => {
            let present: Vec<f64> = v.iter().flatten().copied().collect();
            if present.is_empty() {
                return Err(DetectorError::Empty(format!("reference column '{name}'")));
            }
            crate::error::check_finite(&present, &format!("reference column '{name}'"))?;
            Ok(Encoding::Numeric {
                mean: mean(&present),
            })
        }
        ColumnValues::Categorical(v) => {
            let mut counts: HashMap<String, usize> = HashMap::new();
            for c in v.iter().flatten() {
                *counts.entry(c.clone()).or_default() += 1;
            }
            // Most frequent; ties go to the smallest (scikit-learn's SimpleImputer).
            let most_frequent = counts
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(c, _)| c.clone())
                .ok_or_else(|| DetectorError::Empty(format!("reference column '{name}'")))?;
            let missing = v.iter().filter(|c| c.is_none()).count();
            *counts.get_mut(&most_frequent).expect("present") += missing;
            let n = v.len() as f64;
            Ok(Encoding::Frequency {
                shares: counts.into_iter().map(|(c, k)| (c, k as f64 / n)).collect(),
                most_frequent,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Column;

    /// 20 independent standard normal columns, from a small linear congruential generator.
    fn independent(rows: usize, seed: &mut u64) -> Dataset {
        let mut uniform = || {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*seed >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let columns = (0..20)
            .map(|j| {
                let values = (0..rows)
                    .map(|_| {
                        let (u, v) = (uniform(), uniform());
                        Some((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos())
                    })
                    .collect();
                Column::numeric(format!("x{j}"), values)
            })
            .collect();
        Dataset::new(columns).expect("dataset")
    }

    #[test]
    fn held_out_thresholds_do_not_alarm_on_unchanged_windows_where_in_sample_ones_do() {
        let mut seed = 7;
        let reference = independent(1000, &mut seed);
        let names: Vec<String> = (0..20).map(|j| format!("x{j}")).collect();
        let columns: Vec<&str> = names.iter().map(String::as_str).collect();
        let in_sample =
            Reconstruction::fit(&reference, &columns, 200, DEFAULT_VARIANCE).expect("fit");
        let held_out =
            Reconstruction::fit_held_out(&reference, &columns, 200, DEFAULT_VARIANCE).expect("fit");
        assert_eq!(in_sample.components, held_out.components);
        let (mut alarms_in, mut alarms_out) = (0, 0);
        let windows = 100;
        for _ in 0..windows {
            let w = independent(1000, &mut seed);
            let e = held_out.errors(&w).expect("errors");
            alarms_in += usize::from(in_sample.chunk_value(0, &(0..1000), &e).alert);
            alarms_out += usize::from(held_out.chunk_value(0, &(0..1000), &e).alert);
        }
        println!(
            "unchanged windows alarming out of {windows}: in-sample thresholds {alarms_in}, held-out {alarms_out}"
        );
        assert!(alarms_in > windows / 2, "{alarms_in}");
        assert_eq!(alarms_out, 0);
    }

    #[test]
    fn constant_reference_columns_are_refused_with_their_names() {
        let data = Dataset::new(vec![
            Column::numeric("a", vec![Some(1.0); 10]),
            Column::numeric("b", vec![Some(2.0); 10]),
        ])
        .expect("dataset");
        let e = Reconstruction::fit(&data, &["a", "b"], 5, DEFAULT_VARIANCE).expect_err("constant");
        assert_eq!(
            e.to_string(),
            "every column of a, b in the reference is constant"
        );
        let e = Reconstruction::fit(&data, &["a", "c"], 5, DEFAULT_VARIANCE).expect_err("missing");
        assert!(e.to_string().contains("no column 'c'"), "{e}");
    }
}
