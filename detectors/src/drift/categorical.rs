//! Tests on category counts: the chi-square test of a 2 x k contingency table and the pooled
//! two-proportion z-test, as the conformance definitions state them.

use super::TestOutcome;
use super::numeric::normal_sf;
use crate::error::{DetectorError, Result};
use statrs::distribution::{ChiSquared, ContinuousCDF};

fn check_counts(counts: &[f64], what: &str) -> Result<f64> {
    if counts.iter().any(|c| !c.is_finite() || *c < 0.0) {
        return Err(DetectorError::InvalidInput(format!(
            "{what} counts must be finite and non-negative"
        )));
    }
    let total: f64 = counts.iter().sum();
    if total <= 0.0 {
        return Err(DetectorError::Empty(format!("{what} counts")));
    }
    Ok(total)
}

/// `scipy.stats.chi2_contingency([ref_counts, cur_counts], correction=False)`: Pearson's
/// statistic against the expected counts of the margins, `k - 1` degrees of freedom.
/// Categories empty in both rows are dropped (scipy would refuse them).
pub fn chisquare(ref_counts: &[f64], cur_counts: &[f64]) -> Result<TestOutcome> {
    if ref_counts.len() != cur_counts.len() {
        return Err(DetectorError::InvalidInput(
            "reference and current counts have different lengths".into(),
        ));
    }
    let r0 = check_counts(ref_counts, "reference")?;
    let r1 = check_counts(cur_counts, "current")?;
    let total = r0 + r1;
    let mut stat = 0.0;
    let mut bins = 0usize;
    for (&a, &b) in ref_counts.iter().zip(cur_counts) {
        let col = a + b;
        if col == 0.0 {
            continue;
        }
        bins += 1;
        for (o, row) in [(a, r0), (b, r1)] {
            let e = row * col / total;
            stat += (o - e) * (o - e) / e;
        }
    }
    if bins <= 1 {
        // One category: observed equals expected; scipy's degenerate case.
        return Ok(TestOutcome::with_p(0.0, 1.0));
    }
    let dof = (bins - 1) as f64;
    let p = ChiSquared::new(dof)
        .map_err(|e| DetectorError::InvalidParameter(e.to_string()))?
        .sf(stat);
    Ok(TestOutcome::with_p(stat, p))
}

/// Pooled two-proportion z-test of the share of one category: `z = (p_ref - p_cur) / se`
/// with `se = sqrt(pool (1 - pool) (1/n_ref + 1/n_cur))`, `p = 2 (1 - Phi(|z|))`.
/// When both samples are entirely in (or entirely outside) the category there is no
/// variation to test: z = 0, p = 1.
pub fn ztest(ref_hits: f64, ref_total: f64, cur_hits: f64, cur_total: f64) -> Result<TestOutcome> {
    for (h, t, what) in [
        (ref_hits, ref_total, "reference"),
        (cur_hits, cur_total, "current"),
    ] {
        if !(h.is_finite() && t.is_finite()) || h < 0.0 || h > t {
            return Err(DetectorError::InvalidInput(format!(
                "{what}: hits must be between 0 and the total"
            )));
        }
        if t <= 0.0 {
            return Err(DetectorError::Empty(format!("{what} sample")));
        }
    }
    let (p1, p2) = (ref_hits / ref_total, cur_hits / cur_total);
    let pool = (ref_hits + cur_hits) / (ref_total + cur_total);
    let se = (pool * (1.0 - pool) * (1.0 / ref_total + 1.0 / cur_total)).sqrt();
    if se == 0.0 {
        return Ok(TestOutcome::with_p(0.0, 1.0));
    }
    let z = (p1 - p2) / se;
    Ok(TestOutcome::with_p(z, (2.0 * normal_sf(z.abs())).min(1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chisquare_matches_scipy() {
        // scipy: chi2_contingency([[10,20,30],[15,5,40]], correction=False)
        let r = chisquare(&[10.0, 20.0, 30.0], &[15.0, 5.0, 40.0]).expect("valid counts");
        assert!((r.statistic - 11.428_571_428_571_429).abs() < 1e-9);
        assert!((r.p_value.unwrap_or(f64::NAN) - 0.003_298_505_755_939_092).abs() < 1e-12);
    }

    #[test]
    fn degenerate_inputs() {
        assert_eq!(
            chisquare(&[3.0], &[4.0]).expect("one bin").p_value,
            Some(1.0)
        );
        assert!(chisquare(&[0.0, 0.0], &[1.0, 2.0]).is_err());
        assert_eq!(
            ztest(5.0, 5.0, 7.0, 7.0).expect("all hits").p_value,
            Some(1.0)
        );
        assert!(ztest(6.0, 5.0, 1.0, 7.0).is_err());
    }
}
