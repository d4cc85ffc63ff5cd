//! The two-sample Kolmogorov–Smirnov test: statistic on sorted samples and p-values exactly as
//! scipy's `ks_2samp` (method `auto`: exact lattice-path count up to 10,000 values a side,
//! Kolmogorov's distribution of `D_n` with `n = round(n1*n2/(n1+n2))` above, and the same
//! fallback to the asymptotic value where scipy's exact computation fails).

use serde::Serialize;

/// Largest sample size for which `Auto` computes the exact p-value (scipy's `MAX_AUTO_N`).
pub const MAX_EXACT_N: usize = 10_000;

/// How the p-value of a KS test is (or was) computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KsMethod {
    /// Exact when both samples have at most [`MAX_EXACT_N`] values, asymptotic otherwise.
    Auto,
    /// Exact distribution of the two-sample statistic (lattice paths).
    Exact,
    /// Kolmogorov's one-sample distribution at the effective size `round(n*m/(n+m))`.
    #[serde(rename = "asymp")]
    Asymptotic,
}

/// The outcome of [`ks_pvalue`]: the exact method rounds the statistic to a multiple of
/// `1/lcm(n, m)`, as scipy reports it, and may fall back to the asymptotic method.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KsPValue {
    /// The statistic as reported (rounded to the lattice for the exact method).
    pub statistic: f64,
    /// Two-sided p-value, clipped to [0, 1].
    pub p_value: f64,
    /// The method actually used (never `Auto`).
    pub method: KsMethod,
}

/// Two-sided KS statistic `sup |F_a - F_b|` on two ascending, non-empty samples, computed as
/// scipy does (right-continuous ECDFs evaluated at every observed value).
pub fn ks_statistic_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut max_diff = f64::NEG_INFINITY;
    let mut min_diff = f64::INFINITY;
    while i < a.len() || j < b.len() {
        // Next distinct value of the pooled sample; step past every copy in both samples.
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
        let diff = i as f64 / n1 - j as f64 / n2;
        max_diff = max_diff.max(diff);
        min_diff = min_diff.min(diff);
    }
    let min_s = (-min_diff).clamp(0.0, 1.0);
    if min_s > max_diff { min_s } else { max_diff }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Two-sided p-value of the KS statistic `d` for sample sizes `n` and `m` (both >= 1).
pub fn ks_pvalue(d: f64, n: usize, m: usize, method: KsMethod) -> KsPValue {
    let (n1, n2) = (n.max(1) as u64, m.max(1) as u64);
    let g = gcd(n1, n2);
    let (n1g, n2g) = (n1 / g, n2 / g);
    let mut mode = match method {
        KsMethod::Auto if n1.max(n2) as usize <= MAX_EXACT_N => KsMethod::Exact,
        KsMethod::Auto => KsMethod::Asymptotic,
        // The lattice is too large to walk: scipy switches to the asymptotic method.
        KsMethod::Exact if n1g as f64 >= i32::MAX as f64 / n2g as f64 => KsMethod::Asymptotic,
        other => other,
    };
    let mut statistic = d;
    let mut prob = f64::NAN;
    if mode == KsMethod::Exact {
        let lcm = n1g * n2;
        let h = (d * lcm as f64).round_ties_even() as u64;
        statistic = h as f64 / lcm as f64;
        prob = if h == 0 {
            1.0
        } else if n1 == n2 {
            prob_outside_square(n1, h)
        } else {
            outer_prob_inside_method(n1, n2, g, h)
        };
        if !(0.0..=1.0).contains(&prob) {
            // scipy: "Exact calculation unsuccessful. Switching to method=asymp".
            mode = KsMethod::Asymptotic;
        }
    }
    if mode == KsMethod::Asymptotic {
        let (big, small) = (n1.max(n2) as f64, n1.min(n2) as f64);
        let en = (big * small / (big + small)).round_ties_even().max(1.0) as u64;
        prob = kolmogorov_sf(en, statistic);
    }
    KsPValue {
        statistic,
        p_value: prob.clamp(0.0, 1.0),
        method: mode,
    }
}

/// `P(D_{n,n} >= h/n)` for equal sample sizes: the alternating reflection sum, evaluated
/// Horner-style on ratios so no binomial coefficient is ever formed.
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let (n, h) = (n as i64, h as i64);
    let mut p = 0.0;
    let mut k = n / h;
    while k >= 0 {
        let mut p1 = 1.0;
        for j in 0..h {
            p1 = (n - k * h - j) as f64 * p1 / (n + k * h + j + 1) as f64;
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// `1 - P(paths stay strictly inside |x/m - y/n| < h/lcm)` by Hodges' inside method in
/// Viehmann's form, which recurses on the complement directly; one sliding column, so memory
/// is O(min(n, m)) and time O(m * window) = O(d * n * m).
fn outer_prob_inside_method(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (m, n, g, h) = (m as i64, n as i64, g as i64, h as i64);
    let (mg, ng) = (m / g, n / g);
    let mut minj: i64 = 0;
    let mut maxj: i64 = ((h as f64 / mg as f64).ceil() as i64).min(n + 1);
    let mut curlen = maxj - minj;
    // scipy sizes the column min(2*maxj+2, n+1); n+1 always covers every index read.
    let len = (n + 1).max(2 * maxj + 2) as usize;
    let mut a = vec![1.0f64; len];
    for v in a.iter_mut().take(maxj as usize) {
        *v = 0.0;
    }
    for i in 1..=m {
        let (lastminj, lastlen) = (minj, curlen);
        minj = (((ng * i - h) as f64 / mg as f64).floor() as i64 + 1).max(0);
        minj = minj.min(n);
        maxj = (((ng * i + h) as f64 / mg as f64).ceil() as i64).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let fi = i as f64;
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        let shift = (minj - lastminj) as usize;
        for jj in 0..(maxj - minj) as usize {
            let j = (jj as i64 + minj) as f64;
            val = (a[jj + shift] * fi + val * j) / (fi + j);
            a[jj] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let start = curlen as usize;
            let end = (start + (lastlen - curlen) as usize).min(a.len());
            for v in &mut a[start..end] {
                *v = 1.0;
            }
        }
    }
    a[(maxj - minj - 1) as usize]
}

// ---------------------------------------------------------------------------------------------
// Kolmogorov's distribution of the one-sample statistic D_n (scipy.stats.kstwo), following
// Simard & L'Ecuyer (2011) as scipy does: Ruben–Gambino closed forms at the ends, the Durbin
// matrix (Marsaglia–Tsang–Wang) for small n*x^1.5, Pelz–Good above, and twice the one-sided
// Smirnov probability in the upper tail.

const SCALE_EXP: i32 = 128;

/// `x * 2^e` without the intermediate underflow or overflow of forming `2^e` directly.
fn ldexp(mut x: f64, mut e: i32) -> f64 {
    while e > 1000 {
        x *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= 2f64.powi(-1000);
        e += 1000;
    }
    x * 2f64.powi(e)
}

/// `ln(n! / n^n)` by Stirling's series with `n ln n` removed up front.
fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    // Bernoulli-number coefficients as scipy writes them; the extra digits are harmless.
    #[allow(clippy::excessive_precision)]
    const STIRLING: [f64; 8] = [
        -2.955065359477124183e-2,
        6.4102564102564102564e-3,
        -1.9175269175269175269e-3,
        8.4175084175084175084e-4,
        -5.952380952380952381e-4,
        7.9365079365079365079e-4,
        -2.7777777777777777778e-3,
        8.3333333333333333333e-2,
    ];
    let rn = 1.0 / n;
    let x = rn / n;
    let poly = STIRLING.iter().fold(0.0, |acc, c| acc * x + c);
    n.ln() / 2.0 - n + (2.0 * std::f64::consts::PI).ln() / 2.0 + rn * poly
}

/// Survival function `P(D_n >= x)` of the two-sided one-sample KS statistic.
pub fn kolmogorov_sf(n: u64, x: f64) -> f64 {
    if n == 0 || x.is_nan() {
        return f64::NAN;
    }
    let nf = n as f64;
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let t = nf * x;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        let cdf = if n <= 140 {
            (1..=n).fold(1.0, |acc, i| {
                acc * (i as f64 * (1.0 / nf) * (2.0 * t - 1.0))
            })
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return (1.0 - cdf).clamp(0.0, 1.0);
    }
    if t >= nf - 1.0 {
        return (2.0 * (1.0 - x).powf(nf)).clamp(0.0, 1.0);
    }
    if x >= 0.5 {
        return (2.0 * smirnov_sf(n, x)).clamp(0.0, 1.0);
    }
    let nxsquared = t * x;
    if n <= 140 {
        // scipy uses Pomeranz's recursion for 0.754693 < n x^2 <= 4; the Durbin matrix is
        // exact there as well (and small, as k = ceil(n x) <= 24).
        if nxsquared <= 4.0 {
            return (1.0 - durbin_cdf(n, x)).clamp(0.0, 1.0);
        }
        return (2.0 * smirnov_sf(n, x)).clamp(0.0, 1.0);
    }
    if nxsquared >= 370.0 {
        return 0.0;
    }
    if nxsquared >= 2.2 {
        return (2.0 * smirnov_sf(n, x)).clamp(0.0, 1.0);
    }
    let cdf = if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        durbin_cdf(n, x)
    } else {
        pelz_good_cdf(nf, x)
    };
    (1.0 - cdf).clamp(0.0, 1.0)
}

/// Durbin's matrix method as refined by Marsaglia, Tsang and Wang: `P(D_n <= d)` from the
/// k-th diagonal entry of `H^n`, with power-of-two rescaling to stay in range.
fn durbin_cdf(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let nd = nf * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    let mut v = vec![0.0; m];
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] = (1.0 - h.powi(j as i32)) * fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;
    let mut hm = vec![0.0; m * m];
    for i in 1..m {
        for r in (i - 1)..m {
            hm[r * m + i] = w[r - (i - 1)];
        }
    }
    for r in 0..m {
        hm[r * m] = v[r];
    }
    for c in 0..m {
        hm[(m - 1) * m + c] = v[m - 1 - c];
    }
    let matmul = |a: &[f64], b: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; m * m];
        for r in 0..m {
            for t in 0..m {
                let art = a[r * m + t];
                if art == 0.0 {
                    continue;
                }
                for c in 0..m {
                    out[r * m + c] += art * b[t * m + c];
                }
            }
        }
        out
    };
    let mut pwr = vec![0.0; m * m];
    for i in 0..m {
        pwr[i * m + i] = 1.0;
    }
    let (mut expnt, mut h_expnt) = (0i32, 0i32);
    let mut nn = n;
    let big = 2f64.powi(SCALE_EXP);
    while nn > 0 {
        if nn % 2 == 1 {
            pwr = matmul(&pwr, &hm);
            expnt += h_expnt;
        }
        hm = matmul(&hm, &hm);
        h_expnt *= 2;
        if hm[(k - 1) * m + (k - 1)].abs() > big {
            for x in hm.iter_mut() {
                *x /= big;
            }
            h_expnt += SCALE_EXP;
        }
        nn /= 2;
    }
    let mut p = pwr[(k - 1) * m + (k - 1)];
    let small = 2f64.powi(-SCALE_EXP);
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < small {
            p *= big;
            expnt -= SCALE_EXP;
        }
    }
    if expnt != 0 {
        p = ldexp(p, expnt);
    }
    p.clamp(0.0, 1.0)
}

/// Pelz–Good asymptotic series for `P(D_n <= x)`, accurate for large n.
fn pelz_good_cdf(n: f64, x: f64) -> f64 {
    use std::f64::consts::PI;
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let pi2 = PI * PI;
    let pi4 = pi2 * pi2;
    let pi6 = pi4 * pi2;
    let sqrt2pi = (2.0 * PI).sqrt();
    let z = n.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z.powi(3), z.powi(4), z.powi(6));
    let qlog = -pi2 / 8.0 / z2;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();
    let k1a = -z2;
    let k1b = pi2 / 4.0;
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);
    let mut k = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for kk in (1..=maxk).rev() {
        let mm = (2 * kk - 1) as f64;
        let (m2, m4, m6) = (mm * mm, mm.powi(4), mm.powi(6));
        let qpower = q.powf(8.0 * kk as f64);
        let coeffs = [
            1.0,
            k1a + k1b * m2,
            k2a + k2b * m2 + k2c * m4,
            k3a + k3b * m2 + k3c * m4 + k3d * m6,
        ];
        for (acc, c) in k.iter_mut().zip(coeffs) {
            *acc = *acc * qpower + c;
        }
    }
    let div = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (acc, d) in k.iter_mut().zip(div) {
        *acc = *acc * q * sqrt2pi / d;
    }
    let q2 = (-pi2 / 2.0 / z2).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let (mut k2extra, mut k3extra) = (0.0, 0.0);
    for kk in (1..=maxk).rev() {
        let kf = kk as f64;
        let ks2 = kf * kf;
        let qp = q2.powf(ks2);
        let kspi = PI * kf;
        k2extra += ks2 * qp;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ks2 * qp;
    }
    k[2] += k2extra * pi2 * sqrt2pi / (-36.0 * z3);
    k[3] += k3extra * pi2 * sqrt2pi / (216.0 * z6);
    (0..4).map(|i| k[i] / n.powf(i as f64 / 2.0)).sum()
}

/// One-sided Smirnov probability `P(D+_n >= x)` by the exact Birnbaum–Tingey sum,
/// accumulated in logs so large n neither overflows nor underflows.
pub fn smirnov_sf(n: u64, x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    let jmax = (nf * (1.0 - x)).floor() as u64;
    let mut log_binom = 0.0f64;
    let mut logs = Vec::with_capacity(jmax as usize + 1);
    let mut best = f64::NEG_INFINITY;
    for j in 0..=jmax {
        let jf = j as f64;
        if j > 0 {
            log_binom += (nf - jf + 1.0).ln() - jf.ln();
        }
        let a = 1.0 - x - jf / nf;
        let b = x + jf / nf;
        if a <= 0.0 && j < n {
            continue;
        }
        let la = if j == n { 0.0 } else { (nf - jf) * a.ln() };
        let term = log_binom + la + (jf - 1.0) * b.ln();
        best = best.max(term);
        logs.push(term);
    }
    if best == f64::NEG_INFINITY {
        return 0.0;
    }
    let sum: f64 = logs.iter().map(|l| (l - best).exp()).sum();
    (x.ln() + best + sum.ln()).exp().clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistic_of_disjoint_samples_is_one() {
        assert_eq!(ks_statistic_sorted(&[1.0, 2.0], &[3.0, 4.0, 5.0]), 1.0);
        assert_eq!(ks_statistic_sorted(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 0.0);
    }

    #[test]
    fn pvalues_match_scipy() {
        // scipy.stats.ks_2samp([0,1,2,3,4], [2.5,3.5,4.5,5.5,6.5,7.5]) -> D=0.6, p=0.1515...
        let d = ks_statistic_sorted(&[0.0, 1.0, 2.0, 3.0, 4.0], &[2.5, 3.5, 4.5, 5.5, 6.5, 7.5]);
        let r = ks_pvalue(d, 5, 6, KsMethod::Auto);
        assert_eq!(r.method, KsMethod::Exact);
        assert!(
            (r.p_value - 0.108_225_108_225_108_21).abs() < 1e-12,
            "{r:?}"
        );
        // (n, x, scipy.stats.kstwo.sf(x, n), scipy.special.smirnov(n, x)), scipy 1.17.1
        let table = [
            (1000, 0.05, 0.013012074781090332, 0.006506037390545166),
            (7500, 0.01, 0.4384769951250249, 0.2216500141115656),
            (7500, 0.02, 0.0048900963221801645, 0.0024450481610900823),
            (7500, 0.03, 2.6814325167063383e-06, 1.3407162583531692e-06),
            (200, 0.05, 0.6802625495871704, 0.3560149424330643),
            (100, 0.1, 0.2526927570063874, 0.1265906584562817),
            (50, 0.3, 0.00017353260202718738, 8.676630101359369e-05),
            (20, 0.6, 2.0483011649719853e-07, 1.0241505824859927e-07),
            (300000, 0.002, 0.18105935573978393, 0.09059704430456832),
            (300000, 0.003, 0.00901505226804053, 0.004507526134020265),
        ];
        for (n, x, kolm, smir) in table {
            let (k, s) = (kolmogorov_sf(n, x), smirnov_sf(n, x));
            assert!(
                (k - kolm).abs() <= 1e-9 + 1e-6 * kolm,
                "kstwo n={n} x={x}: {k} vs {kolm}"
            );
            assert!(
                (s - smir).abs() <= 1e-9 + 1e-6 * smir,
                "smirnov n={n} x={x}: {s} vs {smir}"
            );
        }
    }
}
