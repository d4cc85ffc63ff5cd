//! Sorting finite floats fast: an LSD radix sort on order-preserving bit keys, since every
//! sample-based test starts by sorting and comparison sorts dominate their cost at 10^5-10^6
//! values; and picking a few order statistics without sorting at all (quantile bin edges need
//! eighteen of a million).

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

/// Below this length selecting is not worth its histogram: sort instead.
const SELECT_MIN: usize = 4096;
/// Bits of the key that index the selection histogram.
const SELECT_BITS: u32 = 16;

/// `sorted(values)[r]` for every `r` in `ranks`, bit for bit (so -0.0 comes back as 0.0), each
/// with the number of values strictly below it (the first rank of its value: ties make it
/// smaller than the rank asked for) — but without sorting: one pass builds a histogram of 16
/// key bits (those below the prefix every value shares), a second gathers only the buckets that
/// hold a wanted rank, and each of those small buckets is partitioned around its ranks. Values
/// must be finite; every rank must be below `values.len()`.
pub fn ranked_order_statistics(values: &[f64], ranks: &[usize]) -> Vec<(f64, usize)> {
    let n = values.len();
    assert!(
        ranks.iter().all(|&r| r < n),
        "order statistic rank out of range"
    );
    let mut wanted: Vec<usize> = ranks.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    // Small inputs, more ranks than bucket slots, or more values than u32 counts hold: sort.
    if n < SELECT_MIN || wanted.len() >= usize::from(u8::MAX) || n > u32::MAX as usize {
        let s = sorted(values);
        return ranks
            .iter()
            .map(|&r| (s[r], s.partition_point(|&x| x < s[r])))
            .collect();
    }

    let (lo, hi) = values.iter().fold((values[0], values[0]), |(lo, hi), &v| {
        (if v < lo { v } else { lo }, if v > hi { v } else { hi })
    });
    let (lo, hi) = (key(lo), key(hi));
    // Every key shares the bits above the highest one where min and max differ; index by the
    // next 16, so a sample confined to a narrow range still spreads over the buckets.
    let varying = 64 - (lo ^ hi).leading_zeros();
    let shift = varying.saturating_sub(SELECT_BITS);
    let mask = (1u64 << SELECT_BITS) - 1;
    let bucket = |v: f64| ((key(v) >> shift) & mask) as usize;

    // u32 counts keep the histogram in a quarter of a megabyte, inside the L2 cache.
    let mut hist = vec![0u32; 1 << SELECT_BITS];
    for &v in values {
        hist[bucket(v)] += 1;
    }
    // For each bucket holding a wanted rank: its slot, and the wanted ranks inside it.
    let mut slot_of = vec![u8::MAX; 1 << SELECT_BITS];
    let mut slots: Vec<(usize, usize, Vec<usize>)> = Vec::new(); // (bucket, values below, ranks)
    let mut below = 0usize;
    let mut next = wanted.iter().peekable();
    for (b, &count) in hist.iter().enumerate() {
        let count = count as usize;
        while let Some(&&r) = next.peek() {
            if r >= below + count {
                break;
            }
            if slot_of[b] == u8::MAX {
                slot_of[b] = slots.len() as u8;
                slots.push((b, below, Vec::new()));
            }
            slots[usize::from(slot_of[b])].2.push(r - below);
            next.next();
        }
        below += count;
    }
    let mut gathered: Vec<Vec<u64>> = slots
        .iter()
        .map(|&(b, _, _)| Vec::with_capacity(hist[b] as usize))
        .collect();
    for &v in values {
        let s = slot_of[bucket(v)];
        if s != u8::MAX {
            gathered[usize::from(s)].push(key(v));
        }
    }
    // (rank, key, values below), ascending by rank.
    let mut found: Vec<(usize, u64, usize)> = Vec::with_capacity(wanted.len());
    for ((_, start, local), keys) in slots.iter().zip(&mut gathered) {
        let mut out = vec![0u64; local.len()];
        select_many(keys, local, &mut out);
        for (&r, k) in local.iter().zip(out) {
            let ties_below = keys.iter().filter(|&&x| x < k).count();
            found.push((r + start, k, start + ties_below));
        }
    }
    ranks
        .iter()
        .map(|r| {
            let (_, k, below) = found[found.partition_point(|f| f.0 < *r)];
            (from_key(k), below)
        })
        .collect()
}

/// Puts the key of (local, ascending, distinct) rank `ranks[i]` of `keys` in `out[i]`,
/// partitioning around the middle rank and recursing on both sides.
fn select_many(keys: &mut [u64], ranks: &[usize], out: &mut [u64]) {
    if ranks.is_empty() {
        return;
    }
    let mid = ranks.len() / 2;
    let r = ranks[mid];
    let (left, &mut kth, right) = keys.select_nth_unstable(r);
    out[mid] = kth;
    select_many(left, &ranks[..mid], &mut out[..mid]);
    let shifted: Vec<usize> = ranks[mid + 1..].iter().map(|&x| x - r - 1).collect();
    select_many(right, &shifted, &mut out[mid + 1..]);
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

    #[test]
    fn selected_order_statistics_equal_the_sorted_values_bit_for_bit() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let samples: Vec<Vec<f64>> = vec![
            (0..50_000).map(|_| next() - 0.5).collect(),
            // A narrow range: every key shares its top bits.
            (0..20_000).map(|_| 1000.0 + next() * 1e-6).collect(),
            // Heavy ties, signed zeros and a few extremes.
            (0..30_000)
                .map(|i| match i % 5 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => (next() * 4.0).floor(),
                    3 => -1e300 * next(),
                    _ => 7.0,
                })
                .collect(),
            vec![3.0; 10_000],
            (0..100).map(|_| next()).collect(),
        ];
        for v in samples {
            let sorted = sorted(&v);
            let n = v.len();
            let ranks = [0, 1, n / 10, n / 10 + 1, n / 2, n / 2, n - 2, n - 1, 7];
            let got = ranked_order_statistics(&v, &ranks);
            for (&r, (g, below)) in ranks.iter().zip(got) {
                assert_eq!(g.to_bits(), sorted[r].to_bits(), "rank {r} of {n}");
                assert_eq!(below, sorted.partition_point(|&x| x < g), "rank {r} of {n}");
            }
        }
    }
}
