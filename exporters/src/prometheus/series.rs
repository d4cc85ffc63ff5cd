//! One family's series: the latest value of each, found by label hash, kept in rendering order
//! with their escaped label texts laid out in that order, expired when they stop arriving, and
//! capped by the per-metric cardinality limit.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SeriesValue {
    Number(f64),
    /// Per-bucket (not cumulative) counts, `bounds.len() + 1` of them.
    Histogram {
        bounds: Vec<f64>,
        counts: Vec<u64>,
        sum: Option<f64>,
        count: u64,
    },
    Summary {
        quantiles: Vec<(f64, f64)>,
        sum: f64,
        count: u64,
    },
}

/// Where the label text of a series lies in its family's [`FamilyState`] texts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TextSpan {
    start: usize,
    end: usize,
}

impl TextSpan {
    fn of(self, texts: &str) -> &str {
        texts.get(self.start..self.end).unwrap_or("")
    }
}

pub(crate) type OwnedLabels = Box<[(Arc<str>, Box<str>)]>;

#[derive(Debug)]
pub(crate) struct Series {
    pub(crate) labels: OwnedLabels,
    /// The labels as rendered between the braces, escaped once at creation (rendering 100k
    /// series then copies bytes instead of formatting them, and sorts by plain byte strings),
    /// kept in the family's `texts`.
    pub(crate) text: TextSpan,
    pub(crate) value: SeriesValue,
    pub(crate) updated: Instant,
    pub(crate) time_nanos: u64,
    pub(crate) start_nanos: u64,
}

/// The slots in [`FamilyState`] of the series with one label hash: almost always one.
#[derive(Debug)]
enum Slots {
    One(u32),
    Many(Vec<u32>),
}

/// Hashes a `u64` key by itself: the keys of the series index are label hashes already.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug, Default)]
pub(crate) struct FamilyState {
    pub(crate) help: String,
    pub(crate) unit: Option<Arc<str>>,
    /// The series; `None` is a free slot, listed in `free`.
    slots: Vec<Option<Series>>,
    /// The label hash of each slot's series.
    keys: Vec<u64>,
    free: Vec<u32>,
    /// The label texts of all series one after the other, in rendering order after each
    /// full sort, so that a render reads them front to back (texts scattered over the heap
    /// cost a cache miss each). `garbage` bytes of it belong to removed series.
    texts: String,
    garbage: usize,
    /// Slots by label hash.
    index: HashMap<u64, Slots, BuildHasherDefault<IdHasher>>,
    /// Occupied slots in rendering order (by label text), kept across scrapes so that a
    /// render sorts only when series were created since the last one.
    order: Vec<u32>,
    /// Slots of series created since the last render, not yet in `order`.
    unordered: Vec<u32>,
    pub(crate) len: usize,
    /// No series was updated before this (a lower bound, exact after each sweep): expiry has
    /// nothing to look at until `oldest + ttl`, so a render does not walk every series.
    oldest: Option<Instant>,
    last_sweep: Option<Instant>,
}

const SWEEP_EVERY: Duration = Duration::from_secs(1);

fn hash_labels<'a>(labels: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = DefaultHasher::new();
    for (k, v) in labels {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

fn same_labels<'a>(
    stored: &OwnedLabels,
    mut given: impl Iterator<Item = (&'a str, &'a str)>,
) -> bool {
    stored
        .iter()
        .all(|(k, v)| given.next() == Some((&**k, &**v)))
        && given.next().is_none()
}

pub(super) enum Upsert {
    Done,
    CardinalityLimit,
}

impl FamilyState {
    pub(super) fn new(help: String, unit: Option<Arc<str>>) -> Self {
        Self {
            help,
            unit,
            ..Self::default()
        }
    }

    fn series_at(&self, slot: u32) -> Option<&Series> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    fn find<'a, I>(&self, key: u64, labels: impl Fn() -> I) -> Option<u32>
    where
        I: Iterator<Item = (&'a str, &'a str)>,
    {
        let matches = |slot: &u32| {
            self.series_at(*slot)
                .is_some_and(|s| same_labels(&s.labels, labels()))
        };
        match self.index.get(&key)? {
            Slots::One(slot) => Some(*slot).filter(matches),
            Slots::Many(slots) => slots.iter().copied().find(matches),
        }
    }

    fn unindex(&mut self, key: u64, slot: u32) {
        let Entry::Occupied(mut entry) = self.index.entry(key) else {
            return;
        };
        match entry.get_mut() {
            Slots::One(s) if *s == slot => {
                entry.remove();
            }
            Slots::One(_) => {}
            Slots::Many(slots) => {
                slots.retain(|s| *s != slot);
                if let [only] = slots[..] {
                    *entry.get_mut() = Slots::One(only);
                } else if slots.is_empty() {
                    entry.remove();
                }
            }
        }
    }

    fn insert(&mut self, key: u64, series: Series) {
        self.oldest = Some(
            self.oldest
                .map_or(series.updated, |o| o.min(series.updated)),
        );
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(series);
                self.keys[slot as usize] = key;
                slot
            }
            None => {
                self.slots.push(Some(series));
                self.keys.push(key);
                (self.slots.len() - 1) as u32
            }
        };
        self.index_slot(key, slot);
        self.unordered.push(slot);
        self.len += 1;
    }

    fn index_slot(&mut self, key: u64, slot: u32) {
        match self.index.entry(key) {
            Entry::Vacant(e) => {
                e.insert(Slots::One(slot));
            }
            Entry::Occupied(mut e) => match e.get_mut() {
                Slots::One(first) => {
                    let first = *first;
                    *e.get_mut() = Slots::Many(vec![first, slot]);
                }
                Slots::Many(slots) => slots.push(slot),
            },
        }
    }

    /// Frees a slot, leaving `order` and `unordered` to the caller.
    fn take(&mut self, slot: u32) -> Option<Series> {
        let series = self.slots.get_mut(slot as usize)?.take()?;
        self.unindex(self.keys[slot as usize], slot);
        self.garbage += series.text.end - series.text.start;
        self.free.push(slot);
        self.len -= 1;
        Some(series)
    }

    /// Drops freed slots from `order` and `unordered`, after removing many series.
    fn forget_freed(&mut self) {
        let slots = &self.slots;
        let live = |slot: &u32| slots.get(*slot as usize).is_some_and(Option::is_some);
        self.order.retain(live);
        self.unordered.retain(live);
        self.removed();
    }

    /// After removals: empties everything when no series is left, and rewrites the label
    /// texts when more than half of them are garbage.
    fn removed(&mut self) {
        if self.len == 0 {
            self.clear();
        } else if self.garbage > 4096 && self.garbage > self.texts.len() / 2 {
            self.lay_out_in_order();
        }
    }

    /// Removes one series, finding it in `order` by binary search.
    fn remove_slot(&mut self, slot: u32) {
        let Some(text) = self.series_at(slot).map(|s| s.text.of(&self.texts)) else {
            return;
        };
        let pos = self.order.binary_search_by(|other| {
            self.series_at(*other)
                .map_or("", |s| s.text.of(&self.texts))
                .cmp(text)
        });
        match pos {
            Ok(pos) if self.order[pos] == slot => {
                self.order.remove(pos);
            }
            _ => {
                let before = self.unordered.len();
                self.unordered.retain(|s| *s != slot);
                if self.unordered.len() == before {
                    // Not where its text says: look everywhere.
                    self.order.retain(|s| *s != slot);
                }
            }
        }
        self.take(slot);
        self.removed();
    }

    /// The series in rendering order (by label text), sorting the ones created since the
    /// last call into place.
    pub(crate) fn ordered(&mut self) -> impl Iterator<Item = (&Series, &str)> {
        if !self.unordered.is_empty() {
            let (slots, texts) = (&self.slots, &self.texts);
            let text = |slot: u32| {
                slots
                    .get(slot as usize)
                    .and_then(Option::as_ref)
                    .map_or("", |s| s.text.of(texts))
            };
            if self.unordered.len() * 16 <= self.order.len() {
                // A few new series: insert each where it belongs.
                for &slot in &self.unordered {
                    let t = text(slot);
                    let pos = self
                        .order
                        .binary_search_by(|other| text(*other).cmp(t))
                        .unwrap_or_else(|p| p);
                    self.order.insert(pos, slot);
                }
            } else {
                self.order.append(&mut self.unordered);
                self.order.sort_unstable_by(|a, b| text(*a).cmp(text(*b)));
                self.lay_out_in_order();
            }
            self.unordered.clear();
        }
        let (slots, texts) = (&self.slots, &self.texts);
        self.order.iter().filter_map(|slot| {
            let s = slots.get(*slot as usize).and_then(Option::as_ref)?;
            Some((s, s.text.of(texts)))
        })
    }

    /// Moves the series into their slots in rendering order (the unordered ones after the
    /// rest) and rewrites their label texts in that order without garbage, so that rendering
    /// reads memory front to back.
    fn lay_out_in_order(&mut self) {
        let mut slots = Vec::with_capacity(self.len);
        let mut keys = Vec::with_capacity(self.len);
        let mut texts = String::with_capacity(self.texts.len() - self.garbage);
        for &slot in self.order.iter().chain(&self.unordered) {
            if let Some(mut s) = self.slots.get_mut(slot as usize).and_then(Option::take) {
                let start = texts.len();
                texts.push_str(s.text.of(&self.texts));
                s.text = TextSpan {
                    start,
                    end: texts.len(),
                };
                slots.push(Some(s));
                keys.push(self.keys[slot as usize]);
            }
        }
        self.texts = texts;
        self.garbage = 0;
        self.slots = slots;
        self.keys = keys;
        self.free.clear();
        let ordered = self.order.len() as u32;
        self.order = (0..ordered).collect();
        self.unordered = (ordered..self.slots.len() as u32).collect();
        self.index.clear();
        for slot in 0..self.keys.len() {
            self.index_slot(self.keys[slot], slot as u32);
        }
    }

    /// Every series, in no particular order.
    fn iter(&self) -> impl Iterator<Item = &Series> {
        self.slots.iter().flatten()
    }

    /// Finds or creates the series with `labels` and applies `update` to it. `update` gets
    /// `None` for a new series.
    pub(super) fn upsert<'a, I>(
        &mut self,
        labels: impl Fn() -> I,
        limit: Option<(usize, Duration)>,
        now: Instant,
        update: impl FnOnce(Option<&mut Series>) -> Option<Series>,
    ) -> Upsert
    where
        I: Iterator<Item = (&'a str, &'a str)>,
    {
        let key = hash_labels(labels());
        if let Some(slot) = self.find(key, &labels)
            && let Some(s) = self.slots[slot as usize].as_mut()
        {
            update(Some(s));
            let updated = s.updated;
            if self.oldest.is_none_or(|o| updated < o) {
                self.oldest = Some(updated);
            }
            return Upsert::Done;
        }
        if let Some((max, ttl)) = limit
            && self.len >= max
        {
            let due = self
                .last_sweep
                .is_none_or(|t| now.duration_since(t) >= SWEEP_EVERY);
            if due {
                self.last_sweep = Some(now);
                self.expire(now, ttl);
            }
            if self.len >= max {
                return Upsert::CardinalityLimit;
            }
        }
        if let Some(mut new) = update(None) {
            let start = self.texts.len();
            super::render::push_label_text(&mut self.texts, &new.labels);
            new.text = TextSpan {
                start,
                end: self.texts.len(),
            };
            self.insert(key, new);
        }
        Upsert::Done
    }

    pub(super) fn remove<'a, I>(&mut self, labels: impl Fn() -> I) -> bool
    where
        I: Iterator<Item = (&'a str, &'a str)>,
    {
        let key = hash_labels(labels());
        match self.find(key, labels) {
            Some(slot) => {
                self.remove_slot(slot);
                true
            }
            None => false,
        }
    }

    /// Removes the series `doomed` says so of; returns how many.
    pub(super) fn remove_where(&mut self, doomed: impl Fn(&Series) -> bool) -> usize {
        let slots: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|slot| self.series_at(*slot).is_some_and(&doomed))
            .collect();
        for slot in &slots {
            self.take(*slot);
        }
        if !slots.is_empty() {
            self.forget_freed();
        }
        slots.len()
    }

    pub(super) fn expire(&mut self, now: Instant, ttl: Duration) {
        let Some(oldest) = self.oldest else {
            return;
        };
        if now.saturating_duration_since(oldest) < ttl {
            return;
        }
        self.remove_where(|s| now.saturating_duration_since(s.updated) >= ttl);
        self.oldest = self.iter().map(|s| s.updated).min();
    }

    pub(super) fn clear(&mut self) {
        self.slots.clear();
        self.keys.clear();
        self.texts.clear();
        self.garbage = 0;
        self.free.clear();
        self.index.clear();
        self.order.clear();
        self.unordered.clear();
        self.len = 0;
        self.oldest = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn series(labels: &[(&str, &str)], now: Instant) -> Series {
        Series {
            text: TextSpan::default(),
            labels: labels
                .iter()
                .map(|(k, v)| (Arc::from(*k), Box::from(*v)))
                .collect(),
            value: SeriesValue::Number(0.0),
            updated: now,
            time_nanos: 0,
            start_nanos: 0,
        }
    }

    /// Inserts under a given label hash, as `upsert` does under the real one.
    fn insert(state: &mut FamilyState, key: u64, labels: &[(&str, &str)], now: Instant) {
        let mut s = series(labels, now);
        let start = state.texts.len();
        super::super::render::push_label_text(&mut state.texts, &s.labels);
        s.text = TextSpan {
            start,
            end: state.texts.len(),
        };
        state.insert(key, s);
    }

    fn texts(state: &mut FamilyState) -> Vec<String> {
        state.ordered().map(|(_, t)| t.to_owned()).collect()
    }

    #[test]
    fn colliding_label_hashes_are_kept_apart() {
        let now = Instant::now();
        let mut state = FamilyState::default();
        const A: &[(&str, &str)] = &[("id", "a")];
        const B: &[(&str, &str)] = &[("id", "b")];
        const C: &[(&str, &str)] = &[("id", "c")];
        let (a, b, c) = (A, B, C);
        let it = |l: &'static [(&'static str, &'static str)]| move || l.iter().copied();
        insert(&mut state, 7, b, now);
        insert(&mut state, 7, a, now);
        insert(&mut state, 7, c, now);
        assert_eq!(texts(&mut state), [r#"id="a""#, r#"id="b""#, r#"id="c""#]);
        assert!(state.find(7, it(a)).is_some());
        assert!(state.find(8, it(a)).is_none());
        let slot_b = state.find(7, it(b)).expect("b");
        state.remove_slot(slot_b);
        assert!(state.find(7, it(b)).is_none());
        assert!(state.find(7, it(a)).is_some() && state.find(7, it(c)).is_some());
        assert_eq!(texts(&mut state), [r#"id="a""#, r#"id="c""#]);
        let slot_a = state.find(7, it(a)).expect("a");
        state.remove_slot(slot_a);
        assert!(matches!(state.index.get(&7), Some(Slots::One(_))));
        assert_eq!(texts(&mut state), [r#"id="c""#]);
        assert_eq!(state.len, 1);
    }

    /// Random creation, updates, removal and expiry against a sorted map: rendering order,
    /// lookups and counts stay right whether new series are merged in one by one or sorted.
    #[test]
    fn order_and_index_follow_a_model() {
        let t0 = Instant::now();
        let mut rng = fastrand::Rng::with_seed(42);
        let mut state = FamilyState::default();
        let mut model: BTreeMap<String, Instant> = BTreeMap::new();
        let ttl = Duration::from_secs(50);
        const LONG: &str = "a label value long enough to make the label texts of 300 series \
                            add up to tens of kilobytes";
        let mut rewrites = 0;
        for step in 0..4000u64 {
            let texts_before = state.texts.len();
            let now = t0 + Duration::from_secs(step / 20);
            let id = rng.u32(0..300).to_string();
            // Long enough for the removed ones to add up to a rewrite of the label texts.
            let labels = [("id", id.as_str()), ("kind", LONG)];
            let mut text = String::new();
            super::super::render::push_label_text(
                &mut text,
                &labels
                    .iter()
                    .map(|(k, v)| (Arc::<str>::from(*k), Box::<str>::from(*v)))
                    .collect::<Vec<_>>(),
            );
            let iter = || labels.iter().copied();
            match rng.u32(0..100) {
                0..70 => {
                    state.upsert(iter, None, now, |s| match s {
                        Some(s) => {
                            s.updated = now;
                            None
                        }
                        None => Some(series(&labels, now)),
                    });
                    model.insert(text, now);
                }
                70..90 => {
                    assert_eq!(state.remove(iter), model.remove(&text).is_some());
                }
                90..93 => {
                    let digit = id.as_bytes()[0];
                    let n = state.remove_where(|s| s.labels[0].1.as_bytes()[0] == digit);
                    let before = model.len();
                    model.retain(|k, _| k.as_bytes()[4] != digit);
                    assert_eq!(n, before - model.len());
                }
                93..96 => {
                    state.expire(now, ttl);
                    model.retain(|_, u| now.saturating_duration_since(*u) < ttl);
                }
                _ => {
                    let want: Vec<&String> = model.keys().collect();
                    assert_eq!(texts(&mut state).iter().collect::<Vec<_>>(), want);
                }
            }
            assert_eq!(state.len, model.len());
            assert_eq!(state.iter().count(), model.len());
            rewrites += usize::from(state.texts.len() < texts_before && state.len > 0);
        }
        assert!(rewrites > 0);
        let want: Vec<&String> = model.keys().collect();
        assert_eq!(texts(&mut state).iter().collect::<Vec<_>>(), want);
        state.clear();
        assert!(texts(&mut state).is_empty());
    }
}
