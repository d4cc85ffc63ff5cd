//! Distances between binned distributions (PSI, KL, Jensen–Shannon, Hellinger) and the binning
//! itself (reference-quantile edges, bin counts). Pure functions on proportions, so exact
//! samples and merged sketch histograms go through the same code.

use super::sort::ranked_order_statistics;

/// The value every zero proportion is replaced by in PSI and KL, as the conformance definitions
/// (and Evidently) do; proportions are not renormalised afterwards.
pub const ZERO_REPLACEMENT: f64 = 1e-4;

/// Number of reference-quantile bins for a numeric column.
pub const NUMERIC_BINS: usize = 10;

fn replace_zero(x: f64) -> f64 {
    if x == 0.0 { ZERO_REPLACEMENT } else { x }
}

/// Population stability index `sum((q'-p') * ln(q'/p'))`, `p` the reference and `q` the current
/// proportions, zeros replaced by [`ZERO_REPLACEMENT`]. Slices must have equal length.
pub fn psi(p: &[f64], q: &[f64]) -> f64 {
    debug_assert_eq!(p.len(), q.len());
    p.iter()
        .zip(q)
        .map(|(&p, &q)| {
            let (p, q) = (replace_zero(p), replace_zero(q));
            (q - p) * (q / p).ln()
        })
        .sum()
}

/// Kullback–Leibler divergence of the current proportions `q` from the reference `p`:
/// `sum(q' * ln(q'/p'))`, zeros replaced as in [`psi`].
pub fn kl(p: &[f64], q: &[f64]) -> f64 {
    debug_assert_eq!(p.len(), q.len());
    p.iter()
        .zip(q)
        .map(|(&p, &q)| {
            let (p, q) = (replace_zero(p), replace_zero(q));
            q * (q / p).ln()
        })
        .sum()
}

/// `x * ln(x / y)` with scipy's `rel_entr` conventions (0 when x is 0).
fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// Jensen–Shannon distance (the square root of the divergence, natural log), as
/// `scipy.spatial.distance.jensenshannon`: each vector is divided by its sum first.
pub fn jensenshannon(p: &[f64], q: &[f64]) -> f64 {
    debug_assert_eq!(p.len(), q.len());
    let sp: f64 = p.iter().sum();
    let sq: f64 = q.iter().sum();
    if sp <= 0.0 || sq <= 0.0 {
        return f64::NAN;
    }
    let mut left = 0.0;
    let mut right = 0.0;
    for (&p, &q) in p.iter().zip(q) {
        let (p, q) = (p / sp, q / sq);
        let m = (p + q) / 2.0;
        left += rel_entr(p, m);
        right += rel_entr(q, m);
    }
    // Rounding can leave a tiny negative divergence for identical inputs.
    ((left + right) / 2.0).max(0.0).sqrt()
}

/// Hellinger distance `sqrt(1 - sum(sqrt(p*q)))` on raw proportions.
///
/// Evaluated as `sqrt(sum((sqrt p - sqrt q)^2) / 2 + (1 - (sum p + sum q) / 2))`, which is the
/// same quantity but free of the cancellation of `1 - sum(...)`: identical inputs give exactly 0
/// instead of ~1e-8. The second term only matters for inputs that do not sum to 1; below 1e-12 it
/// is the rounding of sums that are 1 and is dropped.
pub fn hellinger(p: &[f64], q: &[f64]) -> f64 {
    debug_assert_eq!(p.len(), q.len());
    let sq: f64 = p
        .iter()
        .zip(q)
        .map(|(&p, &q)| (p.sqrt() - q.sqrt()).powi(2))
        .sum();
    let mass = 1.0 - (p.iter().sum::<f64>() + q.iter().sum::<f64>()) / 2.0;
    let mass = if mass.abs() < 1e-12 { 0.0 } else { mass };
    (sq / 2.0 + mass).max(0.0).sqrt()
}

/// Where numpy's linear method reads quantile `q` of `n` sorted values: the two ranks and the
/// weight of the upper one.
fn quantile_ranks(n: usize, q: f64) -> (usize, usize, f64) {
    let virtual_index = (n as f64 - 1.0) * q;
    let lo = virtual_index.floor();
    let gamma = virtual_index - lo;
    let lo = (lo.max(0.0) as usize).min(n - 1);
    (lo, (lo + 1).min(n - 1), gamma)
}

/// numpy's two-sided lerp between the values at the two ranks, so edges match bit for bit.
fn lerp(a: f64, b: f64, gamma: f64) -> f64 {
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

/// `numpy.quantile(sorted, q)` with the default linear method, including numpy's two-sided
/// lerp so edges match numpy bit for bit. `sorted` must be non-empty and ascending.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    debug_assert!(!sorted.is_empty());
    let (lo, hi, gamma) = quantile_ranks(sorted.len(), q);
    lerp(sorted[lo], sorted[hi], gamma)
}

/// Interior bin edges `numpy.quantile(ref, k/bins)` for `k = 1..bins-1`; the outer edges are
/// implicitly -inf and +inf. `sorted_ref` must be non-empty and ascending.
pub fn quantile_edges(sorted_ref: &[f64], bins: usize) -> Vec<f64> {
    (1..bins)
        .map(|k| quantile_sorted(sorted_ref, k as f64 / bins as f64))
        .collect()
}

/// [`quantile_edges`] of a reference in any order — bit for bit the same edges — and the
/// reference's own counts in those bins (equal to [`bin_counts`] of the reference), without
/// sorting it: only the two order statistics each edge interpolates between are selected (as
/// numpy's `quantile` partitions instead of sorting), and the selection also says how many
/// values lie below each, so the counts need no pass of their own (an edge strictly between its
/// two order statistics has exactly `lo + 1` values below it). `reference` must be non-empty
/// and finite.
pub fn quantile_bins_unsorted(reference: &[f64], bins: usize) -> (Vec<f64>, Vec<f64>) {
    debug_assert!(!reference.is_empty());
    let n = reference.len();
    let at: Vec<(usize, usize, f64)> = (1..bins)
        .map(|k| quantile_ranks(n, k as f64 / bins as f64))
        .collect();
    let ranks: Vec<usize> = at.iter().flat_map(|&(lo, hi, _)| [lo, hi]).collect();
    let selected = ranked_order_statistics(reference, &ranks);
    let mut edges = Vec::with_capacity(at.len());
    let mut below_edges = Vec::with_capacity(at.len());
    for (&(lo, _, gamma), pair) in at.iter().zip(selected.chunks_exact(2)) {
        let ((a, a_below), (b, _)) = (pair[0], pair[1]);
        let e = lerp(a, b, gamma);
        edges.push(e);
        below_edges.push(if e == a {
            Some(a_below)
        } else if a < e && e <= b {
            Some(lo + 1)
        } else {
            None // rounding put the edge outside [a, b]: count the plain way
        });
    }
    let monotone = edges.windows(2).all(|w| w[0] <= w[1]);
    let counts = match below_edges.into_iter().collect::<Option<Vec<usize>>>() {
        Some(below) if monotone => {
            let mut counts = Vec::with_capacity(bins);
            let mut prev = 0;
            for b in below.into_iter().chain([n]) {
                counts.push((b - prev) as f64);
                prev = b;
            }
            counts
        }
        _ => bin_counts(&edges, reference),
    };
    (edges, counts)
}

/// Counts of `values` per bin for interior `edges` (ascending, as from [`quantile_edges`]):
/// `edges.len() + 1` bins, a value `v` in bin `i` when `edge_i <= v < edge_(i+1)`.
pub fn bin_counts(edges: &[f64], values: &[f64]) -> Vec<f64> {
    let mut counts = vec![0usize; edges.len() + 1];
    if edges.len() <= 32 {
        // Few edges (ten bins is the rule): counting edges <= v without branches beats a
        // binary search, whose branches a shuffled sample mispredicts half the time.
        for &v in values {
            let bin: usize = edges.iter().map(|&e| usize::from(e <= v)).sum();
            counts[bin] += 1;
        }
    } else {
        for &v in values {
            counts[edges.partition_point(|&e| e <= v)] += 1;
        }
    }
    counts.into_iter().map(|c| c as f64).collect()
}

/// [`bin_counts`] for ascending `values`: one binary search per edge instead of per value.
pub fn bin_counts_sorted(edges: &[f64], values: &[f64]) -> Vec<f64> {
    let mut counts = Vec::with_capacity(edges.len() + 1);
    let mut start = 0;
    for &e in edges {
        let end = values.partition_point(|&v| v < e).max(start);
        counts.push((end - start) as f64);
        start = end;
    }
    counts.push((values.len() - start) as f64);
    counts
}

/// Proportions `counts / total`; all zeros when `total` is zero.
pub fn proportions(counts: &[f64], total: f64) -> Vec<f64> {
    if total > 0.0 {
        counts.iter().map(|c| c / total).collect()
    } else {
        vec![0.0; counts.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy_linear() {
        let v = [1.0, 2.0, 3.0, 4.0];
        // numpy.quantile([1,2,3,4], [0.1, 0.5, 0.9]) == [1.3, 2.5, 3.7]
        assert!((quantile_sorted(&v, 0.1) - 1.3).abs() < 1e-12);
        assert_eq!(quantile_sorted(&v, 0.5), 2.5);
        assert!((quantile_sorted(&v, 0.9) - 3.7).abs() < 1e-12);
        assert_eq!(quantile_sorted(&v, 1.0), 4.0);
    }

    #[test]
    fn unsorted_edges_equal_sorted_edges() {
        let mut s = 0x853c_49e6_748f_ea9bu64;
        let v: Vec<f64> = (0..25_000)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let x = (s >> 11) as f64 / (1u64 << 53) as f64;
                if i % 3 == 0 { (x * 8.0).round() } else { x }
            })
            .collect();
        for data in [&v[..], &v[..7], &v[..4096], &v[..4097]] {
            let sorted = crate::drift::sort::sorted(data);
            for bins in [2, 10, 20] {
                let a = quantile_edges(&sorted, bins);
                let (b, counts) = quantile_bins_unsorted(data, bins);
                assert_eq!(
                    a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
                );
                assert_eq!(counts, bin_counts(&a, data));
                assert_eq!(counts, bin_counts_sorted(&a, &sorted));
            }
        }
    }

    #[test]
    fn bins_are_left_closed() {
        let counts = bin_counts(&[1.0, 2.0], &[0.5, 1.0, 1.5, 2.0, 9.0]);
        assert_eq!(counts, vec![1.0, 2.0, 2.0]);
    }

    #[test]
    fn distances_by_hand() {
        let p = [0.5, 0.5, 0.0];
        let q = [0.25, 0.25, 0.5];
        let expect_psi =
            (0.25f64 - 0.5) * (0.5f64).ln() * 2.0 + (0.5 - 1e-4) * (0.5f64 / 1e-4).ln();
        assert!((psi(&p, &q) - expect_psi).abs() < 1e-12);
        let expect_kl = 0.25 * (0.5f64).ln() * 2.0 + 0.5 * (0.5f64 / 1e-4).ln();
        assert!((kl(&p, &q) - expect_kl).abs() < 1e-12);
        let bc = 2.0 * (0.125f64).sqrt();
        assert!((hellinger(&p, &q) - (1.0 - bc).sqrt()).abs() < 1e-12);
        // scipy.spatial.distance.jensenshannon([.5,.5,0],[.25,.25,.5]) = 0.4645014884...
        assert!((jensenshannon(&p, &q) - 0.464_501_404_0).abs() < 1e-9);
        assert_eq!(hellinger(&p, &p), 0.0);
        assert_eq!(jensenshannon(&q, &q), 0.0);
    }
}
