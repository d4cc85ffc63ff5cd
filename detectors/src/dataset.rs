//! Tabular data for drift and quality checks: named columns of numbers or categories with
//! missing values, and a small RFC 4180 CSV reader that infers each column's kind the way the
//! conformance data expects (numbers are numeric; any other text, `true`/`false` included, is
//! categorical; an empty field is missing).

use serde::Serialize;
use std::sync::OnceLock;

use crate::error::{DetectorError, Result};

/// Whether a column holds numbers or categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    /// Numbers.
    Numeric,
    /// Categories (text).
    Categorical,
}

/// The values of a column, `None` where missing.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    /// Numbers.
    Numeric(Vec<Option<f64>>),
    /// Categories.
    Categorical(Vec<Option<String>>),
}

impl ColumnValues {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            ColumnValues::Numeric(v) => v.len(),
            ColumnValues::Categorical(v) => v.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kind of the values.
    pub fn kind(&self) -> ColumnKind {
        match self {
            ColumnValues::Numeric(_) => ColumnKind::Numeric,
            ColumnValues::Categorical(_) => ColumnKind::Categorical,
        }
    }

    /// Number of missing values.
    pub fn missing(&self) -> usize {
        match self {
            ColumnValues::Numeric(v) => v.iter().filter(|x| x.is_none()).count(),
            ColumnValues::Categorical(v) => v.iter().filter(|x| x.is_none()).count(),
        }
    }
}

/// One named column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Column name (the CSV header).
    pub name: String,
    /// Its values.
    pub values: ColumnValues,
    /// The present values of a numeric column, sorted once: a reference compared with window
    /// after window is not sorted again for each.
    sorted: OnceLock<Option<Vec<f64>>>,
}

impl PartialEq for Column {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.values == other.values
    }
}

impl Column {
    /// A numeric column.
    pub fn numeric(name: impl Into<String>, values: Vec<Option<f64>>) -> Self {
        Column {
            name: name.into(),
            values: ColumnValues::Numeric(values),
            sorted: OnceLock::new(),
        }
    }

    /// A categorical column.
    pub fn categorical(name: impl Into<String>, values: Vec<Option<String>>) -> Self {
        Column {
            name: name.into(),
            values: ColumnValues::Categorical(values),
            sorted: OnceLock::new(),
        }
    }

    /// The present values of a numeric column in ascending order, computed on first use; none
    /// for a categorical column or one holding NaN or an infinity.
    pub fn sorted_present(&self) -> Option<&[f64]> {
        self.sorted
            .get_or_init(|| match &self.values {
                ColumnValues::Numeric(v) => {
                    let present: Vec<f64> = v.iter().flatten().copied().collect();
                    present
                        .iter()
                        .all(|x| x.is_finite())
                        .then(|| crate::drift::sort::sorted(&present))
                }
                ColumnValues::Categorical(_) => None,
            })
            .as_deref()
    }

    /// The column's kind.
    pub fn kind(&self) -> ColumnKind {
        self.values.kind()
    }
}

/// Columns of equal length with distinct names.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    columns: Vec<Column>,
    rows: usize,
}

impl Dataset {
    /// Builds a dataset; refuses columns of different lengths and repeated names.
    pub fn new(columns: Vec<Column>) -> Result<Self> {
        let rows = columns.first().map_or(0, |c| c.values.len());
        for (i, c) in columns.iter().enumerate() {
            if c.values.len() != rows {
                return Err(DetectorError::InvalidInput(format!(
                    "column '{}' has {} rows, '{}' has {rows}",
                    c.name,
                    c.values.len(),
                    columns[0].name
                )));
            }
            if columns[..i].iter().any(|o| o.name == c.name) {
                return Err(DetectorError::InvalidInput(format!(
                    "column '{}' appears twice",
                    c.name
                )));
            }
        }
        Ok(Dataset { columns, rows })
    }

    /// Parses CSV text with a header row (RFC 4180: quoted fields, `""` escapes, CRLF or LF).
    pub fn from_csv_str(text: &str) -> Result<Self> {
        let records = parse_csv(text.strip_prefix('\u{feff}').unwrap_or(text))?;
        let mut it = records.into_iter();
        let (_, header) = it.next().ok_or(DetectorError::Parse {
            line: 1,
            message: "no header row".into(),
        })?;
        if header.iter().any(|h| h.trim().is_empty()) {
            return Err(DetectorError::Parse {
                line: 1,
                message: "a column has an empty name".into(),
            });
        }
        let mut cells: Vec<Vec<String>> = vec![Vec::new(); header.len()];
        for (line, record) in it {
            if record.len() != header.len() {
                return Err(DetectorError::Parse {
                    line,
                    message: format!(
                        "{} fields where the header has {}",
                        record.len(),
                        header.len()
                    ),
                });
            }
            for (col, field) in cells.iter_mut().zip(record) {
                col.push(field);
            }
        }
        let columns = header
            .into_iter()
            .zip(cells)
            .map(|(name, fields)| infer_column(name.trim().to_string(), fields))
            .collect();
        Dataset::new(columns)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The columns in file order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The rows `rows` (indices below [`Dataset::rows`]), in that order.
    pub fn select_rows(&self, rows: &[usize]) -> Dataset {
        let columns = self
            .columns
            .iter()
            .map(|c| match &c.values {
                ColumnValues::Numeric(v) => {
                    Column::numeric(c.name.clone(), rows.iter().map(|&i| v[i]).collect())
                }
                ColumnValues::Categorical(v) => Column::categorical(
                    c.name.clone(),
                    rows.iter().map(|&i| v[i].clone()).collect(),
                ),
            })
            .collect();
        Dataset {
            columns,
            rows: rows.len(),
        }
    }
}

/// Parses a number the way the column-kind inference accepts it.
pub fn parse_number(field: &str) -> Option<f64> {
    let t = field.trim();
    // Rust also reads "inf" and "NaN"; they are kept as numbers so the tests can refuse them
    // with a clear error instead of silently treating the column as text.
    t.parse::<f64>().ok()
}

fn infer_column(name: String, fields: Vec<String>) -> Column {
    let numeric = fields
        .iter()
        .filter(|f| !f.trim().is_empty())
        .all(|f| parse_number(f).is_some());
    if numeric {
        Column::numeric(name, fields.iter().map(|f| parse_number(f)).collect())
    } else {
        Column::categorical(
            name,
            fields
                .into_iter()
                .map(|f| if f.trim().is_empty() { None } else { Some(f) })
                .collect(),
        )
    }
}

/// RFC 4180 records with the 1-based line each starts on; a trailing newline and blank lines
/// between records are ignored.
fn parse_csv(text: &str) -> Result<Vec<(usize, Vec<String>)>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let (mut line, mut start_line) = (1usize, 1usize);
    let mut in_quotes = false;
    let mut field_started = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !field_started => {
                in_quotes = true;
                field_started = true;
            }
            '"' => {
                return Err(DetectorError::Parse {
                    line,
                    message: "a quote inside an unquoted field".into(),
                });
            }
            ',' => {
                record.push(std::mem::take(&mut field));
                field_started = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                if !(record.is_empty() && field.is_empty() && !field_started) {
                    record.push(std::mem::take(&mut field));
                    records.push((start_line, std::mem::take(&mut record)));
                }
                field_started = false;
                line += 1;
                start_line = line;
            }
            _ => {
                field.push(c);
                field_started = true;
            }
        }
    }
    if in_quotes {
        return Err(DetectorError::Parse {
            line: start_line,
            message: "a quoted field is not closed".into(),
        });
    }
    if !(record.is_empty() && field.is_empty() && !field_started) {
        record.push(field);
        records.push((start_line, record));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_kinds_and_missing() {
        let d =
            Dataset::from_csv_str("a,b,c,d\r\n1.5,true,\"x, y\",\n,false,\"say \"\"hi\"\"\",2\n")
                .expect("valid csv");
        assert_eq!(d.rows(), 2);
        assert_eq!(
            d.column("a").map(|c| c.values.clone()),
            Some(ColumnValues::Numeric(vec![Some(1.5), None]))
        );
        assert_eq!(
            d.column("b").map(Column::kind),
            Some(ColumnKind::Categorical)
        );
        assert_eq!(
            d.column("c").map(|c| c.values.clone()),
            Some(ColumnValues::Categorical(vec![
                Some("x, y".into()),
                Some("say \"hi\"".into())
            ]))
        );
        assert_eq!(d.column("d").map(|c| c.values.missing()), Some(1));
    }

    #[test]
    fn bad_csv_says_where() {
        let e = Dataset::from_csv_str("a,b\n1,2\n3\n").expect_err("short row");
        assert_eq!(
            e,
            DetectorError::Parse {
                line: 3,
                message: "1 fields where the header has 2".into()
            }
        );
        assert!(Dataset::from_csv_str("a\n\"open\n").is_err());
        assert!(Dataset::from_csv_str("").is_err());
    }
}
