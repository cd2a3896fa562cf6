//! The flow table's indexes: flow slot numbers by a 64-bit hash, in open
//! addressing with linear probing over one word per entry (the hash's top
//! 32 bits and the slot number + 1; 0 is an empty word). The top 32 bits
//! also give an entry's home (`tag & mask`), so growing and deleting
//! (backward shift, no tombstones) never need the key or its hash again.
//! Kept at most half full, so a probe reads one or two consecutive words.
//!
//! Why not hashbrown's `HashTable`, which the flow table used: its `find`
//! calls the key comparison through a `dyn FnMut`, an indirect call of
//! about 30 instructions per packet on the load balancer's established
//! path (whose whole budget is a few hundred). Here `find` is inlined
//! into the caller with its comparison.
//!
//! Owns: the words. Never: keys (the caller compares), allocation except
//! when growing.

/// Slot numbers by hash; see the module docs.
#[derive(Debug)]
pub(super) struct Index {
    words: Vec<u64>,
    len: usize,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            words: vec![0; MIN_WORDS],
            len: 0,
        }
    }
}

/// Words of an empty index (a power of two).
const MIN_WORDS: usize = 16;

#[inline(always)]
fn tag(h: u64) -> u64 {
    h >> 32
}

impl Index {
    #[inline(always)]
    fn mask(&self) -> usize {
        self.words.len() - 1
    }

    /// Make room for `n` entries without growing.
    pub(super) fn reserve(&mut self, n: usize) {
        let want = (2 * n).next_power_of_two().max(MIN_WORDS);
        if want > self.words.len() {
            self.resize(want);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The slot whose hash is `h` and for which `eq` is true.
    #[inline(always)]
    pub(super) fn find(&self, h: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let t = tag(h);
        let mask = self.mask();
        let mut at = t as usize & mask;
        loop {
            let w = self.words[at];
            if w == 0 {
                return None;
            }
            if w >> 32 == t && eq(w as u32 - 1) {
                return Some(w as u32 - 1);
            }
            at = (at + 1) & mask;
        }
    }

    /// The longest run of occupied words: what the worst probe walks.
    #[cfg(test)]
    pub(super) fn longest_run(&self) -> usize {
        let (mut best, mut run) = (0, 0);
        // Twice round, for a run that wraps.
        for &w in self.words.iter().chain(&self.words) {
            run = if w == 0 { 0 } else { run + 1 };
            best = best.max(run);
        }
        best.min(self.words.len())
    }

    /// Add `slot` under hash `h` (not there yet), growing when half full.
    pub(super) fn insert(&mut self, h: u64, slot: u32) {
        if 2 * (self.len + 1) > self.words.len() {
            self.resize(2 * self.words.len());
        }
        self.put(tag(h) << 32 | (slot as u64 + 1));
        self.len += 1;
    }

    fn put(&mut self, w: u64) {
        let mask = self.mask();
        let mut at = (w >> 32) as usize & mask;
        while self.words[at] != 0 {
            at = (at + 1) & mask;
        }
        self.words[at] = w;
    }

    fn resize(&mut self, n: usize) {
        let old = std::mem::replace(&mut self.words, vec![0; n]);
        for w in old.into_iter().filter(|&w| w != 0) {
            self.put(w);
        }
    }

    /// Remove `slot`, held under hash `h`; false when it is not there.
    pub(super) fn remove(&mut self, h: u64, slot: u32) -> bool {
        let want = tag(h) << 32 | (slot as u64 + 1);
        let mask = self.mask();
        let mut at = tag(h) as usize & mask;
        loop {
            match self.words[at] {
                0 => return false,
                w if w == want => break,
                _ => at = (at + 1) & mask,
            }
        }
        // Backward shift: move each later word of the cluster into the hole
        // when the hole lies between its home and where it is.
        let mut hole = at;
        let mut j = at;
        loop {
            j = (j + 1) & mask;
            let w = self.words[j];
            if w == 0 {
                break;
            }
            let home = (w >> 32) as usize & mask;
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.words[hole] = w;
                hole = j;
            }
        }
        self.words[hole] = 0;
        self.len -= 1;
        true
    }

    #[cfg(test)]
    pub(super) fn clear(&mut self) {
        self.words.fill(0);
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random inserts, finds and removes against a map, with hashes drawn
    /// from a few tags (long clusters, wrap-around at the end of the array,
    /// equal tags) and from the whole range.
    #[test]
    fn the_index_agrees_with_a_map_through_inserts_removes_and_growth() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Narrow: 8 tags near 0 and near the top (clusters that wrap
        // around the end of the array, equal tags), few operations; wide:
        // any hash, many.
        for (narrow, ops) in [(true, 3_000), (false, 200_000)] {
            let mut ix = Index::default();
            let mut model: Vec<(u32, u64)> = Vec::new();
            let mut slot = 0u32;
            for _ in 0..ops {
                let r = next();
                if r % 3 != 0 || model.is_empty() {
                    let h = if narrow {
                        ((r % 8).wrapping_sub(4) << 32) | (r >> 40)
                    } else {
                        next()
                    };
                    ix.insert(h, slot);
                    model.push((slot, h));
                    slot += 1;
                } else {
                    let (s, h) = model.swap_remove((r as usize / 3) % model.len());
                    assert!(ix.remove(h, s));
                    assert!(!ix.remove(h, s), "removed twice");
                }
                if r % 97 == 0 {
                    assert_eq!(ix.len(), model.len());
                    for &(s, h) in model.iter().take(64) {
                        assert_eq!(ix.find(h, |c| c == s), Some(s));
                    }
                    let h = next();
                    if !model.iter().any(|&(_, v)| v >> 32 == h >> 32) {
                        assert_eq!(ix.find(h, |_| true), None, "a tag never added");
                    }
                }
            }
            for &(s, h) in &model {
                assert_eq!(ix.find(h, |c| c == s), Some(s));
            }
            assert!(ix.words.len() >= 2 * ix.len());
        }
    }
}
