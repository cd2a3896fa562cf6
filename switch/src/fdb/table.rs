//! The FDB's hash table: bucketized cuckoo hashing (two candidate buckets per
//! key, four slots per 64-byte bucket), after DPDK's rte_hash and MemC3.
//!
//! Why not hashbrown, which the rest of the crate uses: the FDB must look up
//! a whole batch of destinations in a table of a million stations at DRAM
//! latency, which only works if the table can say *where* a key would live
//! before it is probed, so the batch can prefetch every candidate line first
//! and overlap the misses (hashbrown exposes no bucket addresses); and aging
//! must resume a sweep at a bucket index. Here a lookup touches at most two
//! cache lines, both known from the hash, and a bucket index is stable until
//! the table grows.
//!
//! Owns: buckets and the hasher. Never: allocation except when growing,
//! syscalls, clocks.

use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;

/// What a slot stores besides its key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Val {
    pub last_seen: u32,
    pub port: u16,
    pub flags: u16,
}

const SLOTS: usize = 4;
/// Key of an empty slot. FDB keys always carry a VID in 1..=4094, so never 0.
const EMPTY: u64 = 0;
/// Cuckoo displacements tried before the table grows.
const MAX_KICKS: usize = 128;

#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket {
    keys: [u64; SLOTS],
    vals: [Val; SLOTS],
}

pub(crate) struct Table {
    buckets: Vec<Bucket>,
    /// The bucket count it was created with, the floor of [`Table::shrink`].
    initial: usize,
    mask: usize,
    len: usize,
    hasher: DefaultHashBuilder,
    /// xorshift state for picking cuckoo victims.
    rng: u64,
}

/// Issue a prefetch of the cache line at `p` (a hint: never faults). The
/// one `unsafe` outside drivers/ (the workspace denies it elsewhere).
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint that never faults, whatever the address;
    // SSE is part of the x86_64 baseline, so the instruction exists.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl Table {
    /// A table with room for about `n` keys before it first grows.
    pub fn with_capacity(n: usize) -> Self {
        let buckets = Self::buckets_for(n);
        Table {
            buckets: vec![Bucket::default(); buckets],
            initial: buckets,
            mask: buckets - 1,
            len: 0,
            hasher: DefaultHashBuilder::default(),
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// Buckets for about `n` keys at 90 % load (a power of two, at least 4).
    fn buckets_for(n: usize) -> usize {
        (n.max(SLOTS * 4) * 10 / 9)
            .div_ceil(SLOTS)
            .next_power_of_two()
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Slots allocated (keys it could hold at most).
    pub fn capacity(&self) -> usize {
        self.buckets.len() * SLOTS
    }

    /// Rebuild at the size the present keys need (at least the initial
    /// size), freeing the old buckets. Returns whether the table changed
    /// (bucket indices are then new).
    #[cold]
    pub fn shrink(&mut self) -> bool {
        let want = Self::buckets_for(self.len).max(self.initial);
        if want >= self.buckets.len() {
            return false;
        }
        self.rebuild(want);
        true
    }

    /// Re-place every key into `n` buckets (doubled until they all fit).
    fn rebuild(&mut self, mut n: usize) {
        let old = std::mem::take(&mut self.buckets);
        'retry: loop {
            self.buckets = vec![Bucket::default(); n];
            self.mask = n - 1;
            for ob in &old {
                for s in 0..SLOTS {
                    if ob.keys[s] != EMPTY && self.place((ob.keys[s], ob.vals[s])).is_some() {
                        n *= 2;
                        continue 'retry;
                    }
                }
            }
            return;
        }
    }

    #[inline]
    pub fn hash(&self, key: u64) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The two candidate buckets of hash `h`. The second is the first XOR an
    /// odd number drawn from the hash's upper half, so the two always differ
    /// (bucket counts are powers of two, at least 4) with no branch.
    #[inline(always)]
    fn homes(&self, h: u64) -> (usize, usize) {
        let b1 = h as usize & self.mask;
        let b2 = (b1 ^ ((h >> 32) as usize | 1)) & self.mask;
        (b1, b2)
    }

    /// Prefetch both candidate buckets of hash `h`.
    #[inline(always)]
    pub fn prefetch(&self, h: u64) {
        let (b1, b2) = self.homes(h);
        prefetch(&self.buckets[b1]);
        prefetch(&self.buckets[b2]);
    }

    #[inline(always)]
    fn locate(&self, key: u64, h: u64) -> Option<(usize, usize)> {
        let (b1, b2) = self.homes(h);
        for b in [b1, b2] {
            let keys = &self.buckets[b].keys;
            // Branch-free scan of the four keys.
            let hit = (keys[0] == key) as usize
                | ((keys[1] == key) as usize) << 1
                | ((keys[2] == key) as usize) << 2
                | ((keys[3] == key) as usize) << 3;
            if hit != 0 {
                return Some((b, hit.trailing_zeros() as usize));
            }
        }
        None
    }

    #[inline(always)]
    pub fn find(&self, key: u64, h: u64) -> Option<&Val> {
        self.locate(key, h).map(|(b, s)| &self.buckets[b].vals[s])
    }

    #[inline(always)]
    pub fn find_mut(&mut self, key: u64, h: u64) -> Option<&mut Val> {
        self.locate(key, h)
            .map(|(b, s)| &mut self.buckets[b].vals[s])
    }

    pub fn remove(&mut self, key: u64, h: u64) -> Option<Val> {
        let (b, s) = self.locate(key, h)?;
        self.buckets[b].keys[s] = EMPTY;
        self.len -= 1;
        Some(self.buckets[b].vals[s])
    }

    #[inline]
    fn free_slot(&self, b: usize) -> Option<usize> {
        self.buckets[b].keys.iter().position(|k| *k == EMPTY)
    }

    /// Insert a key known to be absent.
    pub fn insert_new(&mut self, key: u64, h: u64, val: Val) {
        debug_assert!(key != EMPTY && self.locate(key, h).is_none());
        if (self.len + 1) * 10 > self.buckets.len() * SLOTS * 9 {
            self.grow();
        }
        let mut item = (key, val);
        loop {
            match self.place(item) {
                None => {
                    self.len += 1;
                    return;
                }
                Some(homeless) => {
                    item = homeless;
                    self.grow();
                }
            }
        }
    }

    /// Put `item` in one of its buckets, displacing others along a random
    /// cuckoo walk. Returns the item left without a slot if the walk fails.
    fn place(&mut self, mut item: (u64, Val)) -> Option<(u64, Val)> {
        let (b1, b2) = self.homes(self.hash(item.0));
        for b in [b1, b2] {
            if let Some(s) = self.free_slot(b) {
                self.buckets[b].keys[s] = item.0;
                self.buckets[b].vals[s] = item.1;
                return None;
            }
        }
        let mut b = if self.next_rand() & 1 == 0 { b1 } else { b2 };
        for _ in 0..MAX_KICKS {
            let s = (self.next_rand() % SLOTS as u64) as usize;
            let victim = (self.buckets[b].keys[s], self.buckets[b].vals[s]);
            self.buckets[b].keys[s] = item.0;
            self.buckets[b].vals[s] = item.1;
            item = victim;
            let (v1, v2) = self.homes(self.hash(item.0));
            let alt = if v1 == b { v2 } else { v1 };
            if let Some(fs) = self.free_slot(alt) {
                self.buckets[alt].keys[fs] = item.0;
                self.buckets[alt].vals[fs] = item.1;
                return None;
            }
            b = alt;
        }
        Some(item)
    }

    fn next_rand(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Double the bucket count and re-place every key (a pause proportional
    /// to the table; pre-size big domains with `with_capacity`).
    #[cold]
    fn grow(&mut self) {
        self.rebuild(self.buckets.len() * 2);
    }

    /// Number of buckets (the aging sweep's range).
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Remove from bucket `b` every entry for which `drop` is true; returns
    /// the removed values.
    pub fn sweep_bucket(
        &mut self,
        b: usize,
        mut drop: impl FnMut(u64, &Val) -> bool,
        out: &mut Vec<(u64, Val)>,
    ) {
        let Some(bucket) = self.buckets.get_mut(b) else {
            return;
        };
        for s in 0..SLOTS {
            let k = bucket.keys[s];
            if k != EMPTY && drop(k, &bucket.vals[s]) {
                bucket.keys[s] = EMPTY;
                out.push((k, bucket.vals[s]));
                self.len -= 1;
            }
        }
    }

    /// Keep the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(u64, &Val) -> bool) {
        for b in 0..self.buckets.len() {
            for s in 0..SLOTS {
                let k = self.buckets[b].keys[s];
                if k != EMPTY && !keep(k, &self.buckets[b].vals[s]) {
                    self.buckets[b].keys[s] = EMPTY;
                    self.len -= 1;
                }
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &Val)> + '_ {
        self.buckets
            .iter()
            .flat_map(|b| b.keys.iter().zip(b.vals.iter()))
            .filter(|(k, _)| **k != EMPTY)
            .map(|(k, v)| (*k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(p: u16) -> Val {
        Val {
            last_seen: 0,
            port: p,
            flags: 0,
        }
    }

    #[test]
    fn insert_find_remove_through_growth() {
        let mut t = Table::with_capacity(0);
        let start = t.buckets();
        let keys: Vec<u64> = (1..=50_000u64)
            .map(|i| (1 << 48) | i.wrapping_mul(0x9e37_79b9))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            t.insert_new(*k, t.hash(*k), v(i as u16));
        }
        assert!(t.buckets() > start, "grew");
        assert_eq!(t.len(), keys.len());
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                t.find(*k, t.hash(*k)).map(|x| x.port),
                Some(i as u16),
                "key {i}"
            );
        }
        assert!(t.find(7, t.hash(7)).is_none());
        for k in keys.iter().step_by(2) {
            assert!(t.remove(*k, t.hash(*k)).is_some());
        }
        assert_eq!(t.len(), keys.len() / 2);
        assert_eq!(t.iter().count(), keys.len() / 2);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.find(*k, t.hash(*k)).is_some(), i % 2 == 1);
        }
    }

    /// The load at which a table first grows depends on its (per-process,
    /// random) hash seed: a bounded cuckoo walk now and then gives up early.
    /// So judge the typical table, over several seeds: the median must
    /// pass 85 % and none may grow before 70 %.
    #[test]
    fn reaches_high_load_before_growing() {
        let mut loads: Vec<f64> = (0..9u64)
            .map(|trial| {
                let mut t = Table::with_capacity(4096);
                let b = t.buckets();
                let mut i = 1u64;
                while t.buckets() == b {
                    let k = (5 << 48) | (trial << 32) | i;
                    t.insert_new(k, t.hash(k), v(1));
                    i += 1;
                }
                (i - 1) as f64 / (b * SLOTS) as f64
            })
            .collect();
        loads.sort_by(f64::total_cmp);
        assert!(loads[4] > 0.85, "median load at growth {loads:?}");
        assert!(loads[0] > 0.70, "grew early: {loads:?}");
    }

    #[test]
    fn sweep_and_retain() {
        let mut t = Table::with_capacity(100);
        for i in 1..=100u64 {
            let k = (1 << 48) | i;
            t.insert_new(k, t.hash(k), v((i % 2) as u16));
        }
        let mut out = Vec::new();
        for b in 0..t.buckets() {
            t.sweep_bucket(b, |_, v| v.port == 0, &mut out);
        }
        assert_eq!(out.len(), 50);
        assert_eq!(t.len(), 50);
        t.retain(|k, _| k & 1 == 1 && k & 0xffff < 50);
        assert_eq!(t.len(), 25);
    }
}
