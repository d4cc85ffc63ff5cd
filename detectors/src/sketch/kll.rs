//! KLL quantile sketch (Karnin, Lang & Liberty 2016), in the form Apache DataSketches uses:
//! levels of compactors, level `h` holding items of weight `2^h`; the top level may hold `k`
//! items and each level below two thirds of the one above (at least 8). When the sketch is
//! full, the lowest full level is sorted and every other item (odd or even positions, by a
//! coin) moves up a level with twice the weight.
//!
//! Error: the rank of any value is off by at most `ε·n` with high probability, where `ε` is
//! [`KllSketch::normalized_rank_error`] (≈ 1.65 % for k = 200, the bound DataSketches states
//! at 99 % confidence); `tests/sketch_accuracy.rs` measures it. Up to `k` values the sketch is
//! exact. Merging adds the level contents and compacts again, so the bound holds for a merge
//! of any number of sketches, in any order.

use serde::{Deserialize, Serialize};

use crate::error::{DetectorError, Result};

/// Smallest capacity of a level, as in DataSketches: below it compaction costs more than it
/// saves.
const MIN_LEVEL_CAPACITY: usize = 8;

/// Default accuracy parameter: about 1.65 % rank error, about 3·k = 600 stored values.
pub const DEFAULT_K: u16 = 200;

/// A mergeable quantile sketch of finite `f64` values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KllSketch {
    k: u16,
    n: u64,
    min: f64,
    max: f64,
    /// `levels[h]` holds items of weight `2^h`, unsorted.
    levels: Vec<Vec<f64>>,
    /// SplitMix64 state for the compaction coin: seeded, so a sketch is reproducible.
    coin: u64,
}

impl Default for KllSketch {
    fn default() -> Self {
        Self::new(DEFAULT_K).expect("DEFAULT_K is valid")
    }
}

/// The stored values in ascending order with their cumulative weights, for many rank queries.
#[derive(Clone, Debug)]
pub struct SortedView {
    values: Vec<f64>,
    /// `cumulative[i]` = total weight of `values[..=i]`.
    cumulative: Vec<u64>,
    n: u64,
}

impl SortedView {
    /// Estimated fraction of values `<= x`.
    pub fn cdf(&self, x: f64) -> f64 {
        let i = self.values.partition_point(|&v| v <= x);
        self.weight_before(i) as f64 / self.n as f64
    }

    /// Estimated fraction of values `< x`.
    pub fn cdf_below(&self, x: f64) -> f64 {
        let i = self.values.partition_point(|&v| v < x);
        self.weight_before(i) as f64 / self.n as f64
    }

    fn weight_before(&self, i: usize) -> u64 {
        if i == 0 { 0 } else { self.cumulative[i - 1] }
    }

    /// Estimated `q`-quantile: the smallest stored value whose cumulative weight reaches
    /// `q·n`. `q` is clamped to [0, 1].
    pub fn quantile(&self, q: f64) -> f64 {
        let target = (q.clamp(0.0, 1.0) * self.n as f64).ceil().max(1.0) as u64;
        let i = self.cumulative.partition_point(|&c| c < target);
        self.values[i.min(self.values.len() - 1)]
    }

    /// The distinct stored values, ascending (the points where the estimated CDF steps).
    pub fn values(&self) -> &[f64] {
        &self.values
    }
}

impl KllSketch {
    /// An empty sketch with accuracy parameter `k` (8 ..= 65535; larger is more accurate and
    /// larger: about `3k` stored values).
    pub fn new(k: u16) -> Result<Self> {
        if usize::from(k) < MIN_LEVEL_CAPACITY {
            return Err(DetectorError::InvalidParameter(format!(
                "KLL k must be at least {MIN_LEVEL_CAPACITY}, got {k}"
            )));
        }
        Ok(Self {
            k,
            n: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            levels: vec![Vec::new()],
            coin: u64::from(k),
        })
    }

    /// The accuracy parameter.
    pub fn k(&self) -> u16 {
        self.k
    }

    /// Values inserted (merged sketches included).
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Whether no value was inserted.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Smallest value seen (exact), `None` when empty.
    pub fn min(&self) -> Option<f64> {
        (self.n > 0).then_some(self.min)
    }

    /// Largest value seen (exact), `None` when empty.
    pub fn max(&self) -> Option<f64> {
        (self.n > 0).then_some(self.max)
    }

    /// Values held in memory.
    pub fn retained(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }

    /// Whether the sketch still holds every value (no compaction yet): its answers are exact.
    pub fn is_exact(&self) -> bool {
        self.levels.len() == 1
    }

    /// Every value inserted, sorted, while the sketch is exact; `None` once it has compacted.
    pub fn exact_sorted_values(&self) -> Option<Vec<f64>> {
        self.is_exact().then(|| {
            let mut v = self.levels[0].clone();
            v.sort_unstable_by(f64::total_cmp);
            v
        })
    }

    /// Bound on the normalized rank error at 99 % confidence: `2.446 / k^0.9433`, the
    /// DataSketches fit for KLL (1.65 % at k = 200), and 0 while the sketch is exact.
    pub fn normalized_rank_error(&self) -> f64 {
        if self.is_exact() {
            0.0
        } else {
            rank_error_for_k(self.k)
        }
    }

    /// Adds a finite value; NaN and infinities are refused.
    pub fn insert(&mut self, x: f64) -> Result<()> {
        if !x.is_finite() {
            return Err(DetectorError::NonFinite(format!(
                "quantile sketch value {x}"
            )));
        }
        self.levels[0].push(x);
        self.n += 1;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        if self.retained() >= self.total_capacity() {
            self.compact_once();
        }
        Ok(())
    }

    /// Adds every value of `other` to this sketch. Both must have the same `k`.
    pub fn merge(&mut self, other: &KllSketch) -> Result<()> {
        if other.k != self.k {
            return Err(DetectorError::InvalidInput(format!(
                "cannot merge KLL sketches with k = {} and k = {}",
                self.k, other.k
            )));
        }
        if other.n == 0 {
            return Ok(());
        }
        while self.levels.len() < other.levels.len() {
            self.levels.push(Vec::new());
        }
        for (mine, theirs) in self.levels.iter_mut().zip(&other.levels) {
            mine.extend_from_slice(theirs);
        }
        self.n += other.n;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        // Mix the other coin in so that merge results do not depend on which side is `self`
        // more than the data do.
        self.coin ^= other.coin.rotate_left(17);
        while self.retained() >= self.total_capacity() {
            self.compact_once();
        }
        Ok(())
    }

    /// The stored values sorted with their weights; `Err(Empty)` for an empty sketch.
    pub fn sorted_view(&self) -> Result<SortedView> {
        if self.n == 0 {
            return Err(DetectorError::Empty("quantile sketch".into()));
        }
        let mut items: Vec<(f64, u64)> = self
            .levels
            .iter()
            .enumerate()
            .flat_map(|(h, level)| level.iter().map(move |&v| (v, 1u64 << h)))
            .collect();
        items.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut values = Vec::with_capacity(items.len());
        let mut cumulative: Vec<u64> = Vec::with_capacity(items.len());
        let mut total = 0u64;
        for (v, w) in items {
            total += w;
            // Equal values collapse into one step of the CDF.
            if values.last() == Some(&v) {
                *cumulative
                    .last_mut()
                    .expect("values and cumulative grow together") = total;
            } else {
                values.push(v);
                cumulative.push(total);
            }
        }
        Ok(SortedView {
            values,
            cumulative,
            n: self.n,
        })
    }

    /// Estimated `q`-quantile (`q` in [0, 1]); `q = 0` and `q = 1` give the exact min and max.
    pub fn quantile(&self, q: f64) -> Result<f64> {
        if !(0.0..=1.0).contains(&q) {
            return Err(DetectorError::InvalidParameter(format!(
                "quantile must lie in [0, 1], got {q}"
            )));
        }
        let view = self.sorted_view()?;
        Ok(if q == 0.0 {
            self.min
        } else if q == 1.0 {
            self.max
        } else {
            view.quantile(q)
        })
    }

    /// Estimated fraction of values `<= x` (±infinity give 0 and 1); NaN is refused.
    pub fn cdf(&self, x: f64) -> Result<f64> {
        if x.is_nan() {
            return Err(DetectorError::NonFinite(
                "quantile sketch CDF argument".into(),
            ));
        }
        Ok(self.sorted_view()?.cdf(x))
    }

    fn capacity(&self, h: usize) -> usize {
        let depth = (self.levels.len() - 1 - h) as i32;
        let cap = (f64::from(self.k) * (2.0f64 / 3.0).powi(depth)).ceil() as usize;
        cap.max(MIN_LEVEL_CAPACITY)
    }

    fn total_capacity(&self) -> usize {
        (0..self.levels.len()).map(|h| self.capacity(h)).sum()
    }

    fn flip_coin(&mut self) -> usize {
        self.coin = self.coin.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.coin;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) & 1) as usize
    }

    /// Halves the lowest level that is at capacity into the level above.
    fn compact_once(&mut self) {
        let h = (0..self.levels.len())
            .find(|&h| self.levels[h].len() >= self.capacity(h))
            .unwrap_or(0);
        if h + 1 == self.levels.len() {
            self.levels.push(Vec::new());
        }
        let offset = self.flip_coin();
        let mut level = std::mem::take(&mut self.levels[h]);
        level.sort_unstable_by(f64::total_cmp);
        // With an odd count one value stays behind, so the total weight is preserved; which
        // end stays follows the coin, so neither tail is favoured.
        let keep = match (level.len() % 2, offset) {
            (0, _) => None,
            (_, 0) => level.pop(),
            _ => Some(level.remove(0)),
        };
        let promoted = level.iter().skip(offset).step_by(2).copied();
        self.levels[h + 1].extend(promoted);
        level.clear();
        level.extend(keep);
        self.levels[h] = level;
    }
}

/// [`KllSketch::normalized_rank_error`] for a compacted sketch with parameter `k`.
pub fn rank_error_for_k(k: u16) -> f64 {
    2.446 / f64::from(k).powf(0.9433)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sketch_is_exact() {
        let mut s = KllSketch::new(200).unwrap();
        for i in (1..=100).rev() {
            s.insert(f64::from(i)).unwrap();
        }
        assert!(s.is_exact());
        assert_eq!(s.normalized_rank_error(), 0.0);
        assert_eq!(s.quantile(0.5).unwrap(), 50.0);
        assert_eq!(s.quantile(0.0).unwrap(), 1.0);
        assert_eq!(s.quantile(1.0).unwrap(), 100.0);
        assert_eq!(s.cdf(10.0).unwrap(), 0.1);
        assert_eq!(s.sorted_view().unwrap().cdf_below(10.0), 0.09);
    }

    #[test]
    fn weight_is_preserved_and_memory_bounded() {
        let mut s = KllSketch::new(200).unwrap();
        for i in 0..1_000_000u32 {
            s.insert(f64::from(i % 9973)).unwrap();
        }
        let weight: u64 = s
            .levels
            .iter()
            .enumerate()
            .map(|(h, l)| (l.len() as u64) << h)
            .sum();
        assert_eq!(weight, 1_000_000);
        assert!(s.retained() < 800, "{}", s.retained());
        assert!((s.normalized_rank_error() - 0.0165).abs() < 0.0005);
    }

    #[test]
    fn bad_input_is_refused() {
        let mut s = KllSketch::default();
        assert!(matches!(
            s.insert(f64::NAN),
            Err(DetectorError::NonFinite(_))
        ));
        assert!(matches!(s.quantile(0.5), Err(DetectorError::Empty(_))));
        s.insert(1.0).unwrap();
        assert!(s.quantile(1.5).is_err());
        assert!(KllSketch::new(4).is_err());
        assert!(s.merge(&KllSketch::new(100).unwrap()).is_err());
    }
}
