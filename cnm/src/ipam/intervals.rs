//! A set of `u128` stored as disjoint, non-adjacent closed intervals: the
//! allocation map of one pool. A /8 full of sequential allocations is one
//! interval, and an IPv6 /64 costs nothing until used.
//!
//! Owns: the set and "first absent value in a range". Never: what the
//! values mean (see `ipam`).

use std::collections::BTreeMap;
use std::ops::Bound;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntervalSet {
    /// start → end (inclusive). Invariant: disjoint, and `end + 1 < next start`.
    ranges: BTreeMap<u128, u128>,
    len: u128,
}

impl IntervalSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of values in the set.
    pub fn len(&self) -> u128 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The interval holding `v`, if any.
    fn containing(&self, v: u128) -> Option<(u128, u128)> {
        let (&s, &e) = self.ranges.range(..=v).next_back()?;
        (v <= e).then_some((s, e))
    }

    pub fn contains(&self, v: u128) -> bool {
        self.containing(v).is_some()
    }

    /// Add `v`; false if it was already present.
    pub fn insert(&mut self, v: u128) -> bool {
        if self.contains(v) {
            return false;
        }
        let mut start = v;
        let mut end = v;
        // Merge with the interval ending just before v.
        if v > 0
            && let Some((s, e)) = self.containing(v - 1)
        {
            self.ranges.remove(&s);
            start = s;
            debug_assert_eq!(e, v - 1);
        }
        // Merge with the interval starting just after v.
        if v < u128::MAX
            && let Some(e) = self.ranges.remove(&(v + 1))
        {
            end = e;
        }
        self.ranges.insert(start, end);
        self.len += 1;
        true
    }

    /// Remove `v`; false if it was absent.
    pub fn remove(&mut self, v: u128) -> bool {
        let Some((s, e)) = self.containing(v) else {
            return false;
        };
        self.ranges.remove(&s);
        if s < v {
            self.ranges.insert(s, v - 1);
        }
        if v < e {
            self.ranges.insert(v + 1, e);
        }
        self.len -= 1;
        true
    }

    /// The smallest value in `lo..=hi` not in the set.
    pub fn first_absent(&self, lo: u128, hi: u128) -> Option<u128> {
        let mut v = lo;
        loop {
            if v > hi {
                return None;
            }
            match self.containing(v) {
                None => return Some(v),
                Some((_, e)) if e >= hi => return None,
                Some((_, e)) => v = e + 1,
            }
        }
    }

    /// How many values of `lo..=hi` are in the set.
    pub fn count_in(&self, lo: u128, hi: u128) -> u128 {
        let first = self.containing(lo).map_or(lo, |(s, _)| s);
        self.ranges
            .range((Bound::Included(first), Bound::Included(hi)))
            .map(|(&s, &e)| e.min(hi) - s.max(lo) + 1)
            .sum()
    }

    /// The intervals, for storage.
    pub fn intervals(&self) -> Vec<(u128, u128)> {
        self.ranges.iter().map(|(&s, &e)| (s, e)).collect()
    }

    /// Rebuild from stored intervals (any order, overlaps merged).
    pub fn from_intervals(iv: &[(u128, u128)]) -> Self {
        let mut sorted: Vec<(u128, u128)> = iv.iter().filter(|(s, e)| s <= e).copied().collect();
        sorted.sort_unstable();
        let mut out = IntervalSet::new();
        for (s, e) in sorted {
            if let Some(mut last) = out.ranges.last_entry()
                && s <= last.get().saturating_add(1)
            {
                let le = last.get_mut();
                if e > *le {
                    out.len += e - *le;
                    *le = e;
                }
                continue;
            }
            out.ranges.insert(s, e);
            out.len += e - s + 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn merges_and_splits() {
        let mut s = IntervalSet::new();
        for v in [1, 3, 2, 10] {
            assert!(s.insert(v));
        }
        assert!(!s.insert(2));
        assert_eq!(s.intervals(), vec![(1, 3), (10, 10)]);
        assert!(s.remove(2));
        assert!(!s.remove(2));
        assert_eq!(s.intervals(), vec![(1, 1), (3, 3), (10, 10)]);
        assert_eq!(s.first_absent(1, 20), Some(2));
        assert_eq!(s.first_absent(3, 3), None);
        assert_eq!(s.count_in(0, 5), 2);
        assert_eq!(s.len(), 3);
        let mut m = IntervalSet::new();
        assert!(m.insert(u128::MAX) && m.insert(0) && m.insert(u128::MAX - 1));
        assert_eq!(m.first_absent(u128::MAX - 1, u128::MAX), None);
    }

    proptest! {
        /// The set behaves exactly like a `BTreeSet` under any sequence of
        /// inserts and removes, and survives a storage round trip.
        #[test]
        fn matches_a_btreeset(ops in proptest::collection::vec((any::<bool>(), 0u128..64), 0..200)) {
            let mut s = IntervalSet::new();
            let mut model = BTreeSet::new();
            for (ins, v) in ops {
                if ins {
                    prop_assert_eq!(s.insert(v), model.insert(v));
                } else {
                    prop_assert_eq!(s.remove(v), model.remove(&v));
                }
                prop_assert_eq!(s.len(), model.len() as u128);
            }
            for v in 0..70u128 {
                prop_assert_eq!(s.contains(v), model.contains(&v));
            }
            let want = (5..60u128).find(|v| !model.contains(v));
            prop_assert_eq!(s.first_absent(5, 59), want);
            prop_assert_eq!(s.count_in(7, 40), model.range(7..=40).count() as u128);
            prop_assert_eq!(IntervalSet::from_intervals(&s.intervals()), s);
        }
    }
}
