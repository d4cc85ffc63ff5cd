//! Sample-based two-sample tests on numeric values — KS, Mann–Whitney U, Wasserstein, normalised
//! Wasserstein and energy distance — each matching the scipy function named in its doc. The
//! `*_sorted` forms take ascending samples so a column sorted once serves every test.

use super::TestOutcome;
use super::ks::{KsMethod, ks_pvalue, ks_statistic_sorted};
use super::sort::sorted;
use crate::error::{Result, check_finite};

/// Floor on the reference standard deviation in [`wasserstein_norm`], so a constant reference
/// does not divide by zero.
pub const MIN_STD: f64 = 0.001;

fn prepare(reference: &[f64], current: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
    check_finite(reference, "reference sample")?;
    check_finite(current, "current sample")?;
    Ok((sorted(reference), sorted(current)))
}

/// Walks the distinct values of the pooled sorted samples in order, calling `f` with the
/// number of values `<= v` in each sample and the gap to the next distinct value (0 at the
/// last).
fn walk(a: &[f64], b: &[f64], mut f: impl FnMut(usize, usize, f64)) {
    let (mut i, mut j) = (0usize, 0usize);
    while i < a.len() || j < b.len() {
        let v = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => break,
        };
        while i < a.len() && a[i] <= v {
            i += 1;
        }
        while j < b.len() && b[j] <= v {
            j += 1;
        }
        let next = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => v,
        };
        f(i, j, next - v);
    }
}

/// `scipy.stats.ks_2samp(ref, cur)`, two-sided, method `auto`, on sorted samples.
pub fn ks_sorted(reference: &[f64], current: &[f64]) -> TestOutcome {
    let d = ks_statistic_sorted(reference, current);
    let r = ks_pvalue(d, reference.len(), current.len(), KsMethod::Auto);
    TestOutcome {
        statistic: r.statistic,
        p_value: Some(r.p_value),
        ks_method: Some(r.method),
    }
}

/// `scipy.stats.ks_2samp(ref, cur)` (two-sided, method `auto`).
pub fn ks(reference: &[f64], current: &[f64]) -> Result<TestOutcome> {
    let (a, b) = prepare(reference, current)?;
    Ok(ks_sorted(&a, &b))
}

/// `scipy.stats.mannwhitneyu(ref, cur, alternative='two-sided', method='asymptotic',
/// use_continuity=True)` on sorted samples: the statistic is U of the reference sample.
pub fn mannwhitney_sorted(reference: &[f64], current: &[f64]) -> TestOutcome {
    let (n1, n2) = (reference.len() as f64, current.len() as f64);
    let n = n1 + n2;
    let (mut r1, mut tie_term, mut ranked) = (0.0f64, 0.0f64, 0.0f64);
    let (mut pi, mut pj) = (0usize, 0usize);
    walk(reference, current, |i, j, _| {
        let (tx, ty) = ((i - pi) as f64, (j - pj) as f64);
        let t = tx + ty;
        r1 += tx * (ranked + (t + 1.0) / 2.0);
        tie_term += t * t * t - t;
        ranked += t;
        (pi, pj) = (i, j);
    });
    let u1 = r1 - n1 * (n1 + 1.0) / 2.0;
    let u2 = n1 * n2 - u1;
    let u = u1.max(u2);
    let mu = n1 * n2 / 2.0;
    let s = (n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)))).sqrt();
    let z = (u - mu - 0.5) / s;
    let p = if z.is_nan() {
        f64::NAN
    } else {
        2.0 * normal_sf(z)
    };
    TestOutcome {
        statistic: u1,
        p_value: Some(p.clamp(0.0, 1.0)),
        ks_method: None,
    }
}

/// `P(Z > z)` for a standard normal, accurate far into the tail; handles infinities.
pub fn normal_sf(z: f64) -> f64 {
    if z == f64::INFINITY {
        0.0
    } else if z == f64::NEG_INFINITY {
        1.0
    } else {
        0.5 * statrs::function::erf::erfc(z / std::f64::consts::SQRT_2)
    }
}

/// Mann–Whitney U test, as [`mannwhitney_sorted`].
pub fn mannwhitney(reference: &[f64], current: &[f64]) -> Result<TestOutcome> {
    let (a, b) = prepare(reference, current)?;
    Ok(mannwhitney_sorted(&a, &b))
}

/// `scipy.stats.wasserstein_distance(ref, cur)` on sorted samples: the area between the ECDFs.
pub fn wasserstein_sorted(reference: &[f64], current: &[f64]) -> f64 {
    let (n1, n2) = (reference.len() as f64, current.len() as f64);
    let mut total = 0.0;
    walk(reference, current, |i, j, delta| {
        total += (i as f64 / n1 - j as f64 / n2).abs() * delta;
    });
    total
}

/// `scipy.stats.energy_distance(ref, cur)` on sorted samples: `sqrt(2)` times the L2 distance
/// between the ECDFs.
pub fn energy_sorted(reference: &[f64], current: &[f64]) -> f64 {
    let (n1, n2) = (reference.len() as f64, current.len() as f64);
    let mut total = 0.0;
    walk(reference, current, |i, j, delta| {
        let d = i as f64 / n1 - j as f64 / n2;
        total += d * d * delta;
    });
    std::f64::consts::SQRT_2 * total.sqrt()
}

/// Population standard deviation (`numpy.std`, ddof=0), two-pass for accuracy.
pub fn std_dev(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt()
}

/// Wasserstein distance divided by `max(std(ref), MIN_STD)`: a scale-free distance, so one
/// threshold (0.1) fits every feature.
pub fn wasserstein_norm_sorted(reference: &[f64], current: &[f64]) -> f64 {
    wasserstein_sorted(reference, current) / std_dev(reference).max(MIN_STD)
}

/// `scipy.stats.wasserstein_distance(ref, cur)`.
pub fn wasserstein(reference: &[f64], current: &[f64]) -> Result<TestOutcome> {
    let (a, b) = prepare(reference, current)?;
    Ok(TestOutcome::distance(wasserstein_sorted(&a, &b)))
}

/// Wasserstein distance normalised by the reference standard deviation.
pub fn wasserstein_norm(reference: &[f64], current: &[f64]) -> Result<TestOutcome> {
    let (a, b) = prepare(reference, current)?;
    Ok(TestOutcome::distance(wasserstein_norm_sorted(&a, &b)))
}

/// `scipy.stats.energy_distance(ref, cur)`.
pub fn energy(reference: &[f64], current: &[f64]) -> Result<TestOutcome> {
    let (a, b) = prepare(reference, current)?;
    Ok(TestOutcome::distance(energy_sorted(&a, &b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference figures from scipy 1.17.1.
    const X: [f64; 5] = [1.0, 2.0, 3.0, 3.0, 5.0];
    const Y: [f64; 4] = [3.0, 4.0, 6.0, 7.0];

    #[test]
    fn mannwhitney_matches_scipy() {
        let r = mannwhitney(&X, &Y).expect("finite input");
        assert_eq!(r.statistic, 3.0);
        let p = r.p_value.unwrap_or(f64::NAN);
        // statrs' erfc agrees with scipy's ndtr to about 1e-10 relative.
        assert!((p - 0.105_364_052_869_830_37).abs() < 1e-10, "{p}");
    }

    #[test]
    fn distances_match_scipy() {
        let w = wasserstein(&X, &Y).expect("finite").statistic;
        assert!((w - 2.2).abs() < 1e-12);
        let e = energy(&X, &Y).expect("finite").statistic;
        assert!((e - 1.345_362_404_707_371_1).abs() < 1e-12);
    }

    #[test]
    fn constant_samples_are_defined() {
        let r = mannwhitney(&[1.0; 4], &[1.0; 3]).expect("finite");
        assert_eq!(r.p_value, Some(1.0));
        assert_eq!(
            wasserstein_norm(&[2.0; 3], &[2.0; 5])
                .expect("finite")
                .statistic,
            0.0
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(ks(&[], &[1.0]).is_err());
        assert!(energy(&[1.0, f64::NAN], &[1.0]).is_err());
        assert!(mannwhitney(&[1.0], &[f64::INFINITY]).is_err());
    }
}
