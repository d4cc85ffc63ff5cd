//! Sorting finite floats fast: an LSD radix sort on order-preserving bit keys, since every
//! sample-based test starts by sorting and comparison sorts dominate their cost at 10^5-10^6
//! values.

/// Below this length a comparison sort is as fast and needs no scratch space.
const RADIX_MIN: usize = 512;

fn key(x: f64) -> u64 {
    // -0.0 and 0.0 compare equal in every test; give them one key so ties stay ties.
    let bits = if x == 0.0 { 0 } else { x.to_bits() };
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

fn from_key(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// Sorts finite values ascending (NaN must have been refused by the caller; it would sort
/// last). Runs in O(n) passes over byte digits, skipping digits all values share.
pub fn sort_floats(values: &mut [f64]) {
    if values.len() < RADIX_MIN {
        values.sort_unstable_by(f64::total_cmp);
        for v in values.iter_mut() {
            if *v == 0.0 {
                *v = 0.0;
            }
        }
        return;
    }
    let mut keys: Vec<u64> = values.iter().map(|&x| key(x)).collect();
    let mut hist = vec![[0usize; 256]; 8];
    for &k in &keys {
        for (d, h) in hist.iter_mut().enumerate() {
            h[((k >> (8 * d)) & 0xff) as usize] += 1;
        }
    }
    let mut scratch = vec![0u64; keys.len()];
    let n = keys.len();
    for (d, h) in hist.iter().enumerate() {
        if h.contains(&n) {
            continue; // every key has the same digit here: the pass would not move anything
        }
        let mut offsets = [0usize; 256];
        let mut total = 0;
        for (o, &c) in offsets.iter_mut().zip(h.iter()) {
            *o = total;
            total += c;
        }
        let shift = 8 * d;
        for &k in &keys {
            let b = ((k >> shift) & 0xff) as usize;
            scratch[offsets[b]] = k;
            offsets[b] += 1;
        }
        std::mem::swap(&mut keys, &mut scratch);
    }
    for (v, k) in values.iter_mut().zip(keys) {
        *v = from_key(k);
    }
}

/// A sorted copy of `values`.
pub fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    sort_floats(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_sort_agrees_with_comparison_sort() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut v: Vec<f64> = (0..5000)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let x = (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                match i % 7 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => x * 1e300,
                    3 => x * 1e-300,
                    _ => x,
                }
            })
            .collect();
        let mut expect = v.clone();
        expect.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        sort_floats(&mut v);
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(v.len(), expect.len());
        for (a, b) in v.iter().zip(&expect) {
            assert!(a == b, "{a} vs {b}");
        }
    }
}
