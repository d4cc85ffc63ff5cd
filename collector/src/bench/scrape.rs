//! Reading a collector's `/metrics` text in the benchmarks: the sum of a family's samples and a
//! histogram's buckets, with quantiles interpolated as PromQL's `histogram_quantile` does.

use anyhow::{Context as _, bail};

use super::ingest::HttpClient;

/// GET `{api}/metrics` as Prometheus text.
pub async fn metrics_text(client: &HttpClient, api: &str) -> anyhow::Result<String> {
    let resp = client
        .get(format!("{api}/metrics"))
        .send()
        .await
        .context("GET /metrics")?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        bail!("GET /metrics: HTTP {status}");
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// `(name, labels, value)` of each sample line.
fn samples(text: &str) -> impl Iterator<Item = (&str, &str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let value = value.parse::<f64>().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            Some((name, labels, value))
        })
}

/// The sum of the samples named `name` (any labels), or none when there is no such sample.
pub fn sum(text: &str, name: &str) -> Option<f64> {
    samples(text)
        .filter(|(n, _, _)| *n == name)
        .map(|(_, _, v)| v)
        .reduce(|a, b| a + b)
}

/// A histogram without labels: cumulative bucket counts by upper bound (`+Inf` last).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub count: f64,
    pub sum: f64,
}

/// The histogram family `name` (its `_bucket`, `_count` and `_sum` samples).
pub fn histogram(text: &str, name: &str) -> Option<Histogram> {
    let (bucket, count, total) = (
        format!("{name}_bucket"),
        format!("{name}_count"),
        format!("{name}_sum"),
    );
    let mut h = Histogram {
        buckets: Vec::new(),
        count: sum(text, &count)?,
        sum: sum(text, &total)?,
    };
    for (n, labels, v) in samples(text) {
        if n != bucket {
            continue;
        }
        let le = labels
            .split(',')
            .find_map(|kv| kv.strip_prefix("le=\""))
            .map(|x| x.trim_end_matches('"'))?;
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().ok()?
        };
        h.buckets.push((le, v));
    }
    h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(h)
}

impl Histogram {
    /// The `q` quantile as `histogram_quantile` computes it: linear within the bucket holding
    /// rank `q * count`, from 0 for the first bucket; the highest finite bound when the rank
    /// falls in `+Inf`. None when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut prev = (0.0, 0.0);
        for &(le, cum) in &self.buckets {
            if cum >= rank {
                if le.is_infinite() {
                    return Some(prev.0);
                }
                let width = cum - prev.1;
                let into = if width > 0.0 {
                    (rank - prev.1) / width
                } else {
                    1.0
                };
                return Some(prev.0 + (le - prev.0) * into);
            }
            prev = (le, cum);
        }
        Some(prev.0)
    }

    /// The bounds `(lower, upper]` of the bucket the `q` quantile falls in: the resolution of
    /// [`quantile`](Self::quantile), which only interpolates within it. None when empty.
    pub fn quantile_bucket(&self, q: f64) -> Option<(f64, f64)> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = 0.0;
        for &(le, cum) in &self.buckets {
            if cum >= rank {
                return Some((lower, le));
            }
            lower = le;
        }
        None
    }

    /// Observations at or below `bound` (which must be one of the bucket bounds).
    pub fn at_most(&self, bound: f64) -> Option<f64> {
        self.buckets
            .iter()
            .find(|(le, _)| *le == bound)
            .map(|(_, c)| *c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE d histogram\n\
        d_bucket{le=\"0.1\"} 2\n\
        d_bucket{le=\"0.5\"} 6\n\
        d_bucket{le=\"1\"} 10\n\
        d_bucket{le=\"+Inf\"} 10\n\
        d_sum 3.5\n\
        d_count 10\n\
        g{model=\"a\"} 3\n\
        g{model=\"b\"} 4\n";

    #[test]
    fn quantiles_interpolate_like_histogram_quantile() {
        let h = histogram(TEXT, "d").unwrap();
        assert_eq!(h.count, 10.0);
        assert_eq!(h.sum, 3.5);
        // rank 5 lies in (0.1, 0.5] holding ranks 2..6: 0.1 + 0.4 * 3/4.
        assert!((h.quantile(0.5).unwrap() - 0.4).abs() < 1e-12);
        // rank 1 lies in the first bucket, from 0: 0.1 * 1/2.
        assert!((h.quantile(0.1).unwrap() - 0.05).abs() < 1e-12);
        // rank 9.9 in (0.5, 1] holding 6..10.
        assert!((h.quantile(0.99).unwrap() - (0.5 + 0.5 * 3.9 / 4.0)).abs() < 1e-12);
        assert_eq!(h.quantile_bucket(0.5), Some((0.1, 0.5)));
        assert_eq!(h.quantile_bucket(0.1), Some((0.0, 0.1)));
        assert_eq!(h.quantile_bucket(0.99), Some((0.5, 1.0)));
        assert_eq!(h.at_most(1.0), Some(10.0));
        assert_eq!(sum(TEXT, "g"), Some(7.0));
        assert_eq!(sum(TEXT, "missing"), None);
        let over = "e_bucket{le=\"1\"} 1\ne_bucket{le=\"+Inf\"} 4\ne_sum 9\ne_count 4\n";
        assert_eq!(histogram(over, "e").unwrap().quantile(0.9), Some(1.0));
    }
}
