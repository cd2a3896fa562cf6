//! Maglev consistent hashing (Eisenbud et al., NSDI 2016, §3.4): a lookup
//! table of prime size `M` whose every entry names a backend; a flow goes
//! to `table[hash(flow) % M]`. Each backend walks its own permutation of
//! the slots (`offset + j·skip mod M`, both from a hash of the backend's
//! key) and the backends take turns claiming the next free slot of their
//! permutation, so each ends with ⌊M/N⌋ or ⌈M/N⌉ slots.
//!
//! Minimal disruption: [`Table::build`] can start from the previous table.
//! A slot whose backend is still there keeps it, up to that backend's new
//! share; only the freed slots are claimed afresh. Removing a backend thus
//! moves exactly the flows that were on it, and adding one moves flows only
//! onto the new one (plain Maglev moves a few percent more, the cascade the
//! paper measures). The price: the table depends on the order of changes,
//! not only on the final set; a table built from scratch (after a restart)
//! is plain Maglev.
//!
//! Owns: the table and its construction. Never: I/O, packets, allocation on
//! lookup.

/// Table sizes: primes, the smallest at least 100 times the backends is
/// used (the paper's rule for a balanced table).
const SIZES: [u32; 8] = [1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071];

/// Slot value of no backend (a table with no live backend).
pub const NONE: u16 = u16::MAX;

/// The table size for `n` configured backends.
pub fn size_for(n: usize) -> u32 {
    let want = (n as u64).saturating_mul(100);
    SIZES
        .iter()
        .copied()
        .find(|&m| m as u64 >= want)
        .unwrap_or(SIZES[SIZES.len() - 1])
}

/// splitmix64's finaliser: a full-avalanche mix of 64 bits. Hand-written
/// (a few lines) because the fast path needs a hash that is stable across
/// runs and builds, which std's `RandomState` is not by design.
#[inline(always)]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A Maglev lookup table over backends `0..n` (indices into the caller's
/// backend list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    slots: Vec<u16>,
}

impl Table {
    /// A table of `m` slots (a prime) for the backends whose `keys` (a
    /// stable hash of each backend's identity, e.g. its address) are given
    /// with `live` saying which may receive flows. `prev`, a table of the
    /// same size over the same indices, is kept where it can be (see the
    /// module doc).
    pub fn build(m: u32, keys: &[u64], live: &[bool], prev: Option<&Table>) -> Table {
        assert!(keys.len() < NONE as usize, "too many backends");
        let m_us = m as usize;
        let alive: Vec<usize> = (0..keys.len()).filter(|&i| live[i]).collect();
        let mut slots = vec![NONE; m_us];
        if alive.is_empty() {
            return Table { slots };
        }
        let n = alive.len();
        // Shares: ⌊M/N⌋ each, one more for the first M mod N backends in
        // key order (so the shares do not depend on the list's order).
        let mut by_key = alive.clone();
        by_key.sort_by_key(|&i| (keys[i], i));
        let mut quota = vec![0usize; keys.len()];
        for (r, &i) in by_key.iter().enumerate() {
            quota[i] = m_us / n + usize::from(r < m_us % n);
        }
        let mut count = vec![0usize; keys.len()];
        let mut filled = 0;
        if let Some(p) = prev.filter(|p| p.slots.len() == m_us) {
            for (s, &b) in slots.iter_mut().zip(&p.slots) {
                let b = b as usize;
                if b < keys.len() && live[b] && count[b] < quota[b] {
                    *s = b as u16;
                    count[b] += 1;
                    filled += 1;
                }
            }
        }
        // Each live backend's permutation, walked in turns.
        let perm: Vec<(u64, u64)> = keys
            .iter()
            .map(|&k| {
                let offset = mix64(k ^ 0x5851_f42d_4c95_7f2d) % m as u64;
                let skip = mix64(k ^ 0x1405_7b7e_f767_814f) % (m as u64 - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0u64; keys.len()];
        while filled < m_us {
            for &b in &by_key {
                if count[b] >= quota[b] {
                    continue;
                }
                let (offset, skip) = perm[b];
                loop {
                    let c = ((offset + next[b] * skip) % m as u64) as usize;
                    next[b] += 1;
                    if slots[c] == NONE {
                        slots[c] = b as u16;
                        count[b] += 1;
                        filled += 1;
                        break;
                    }
                }
                if filled == m_us {
                    break;
                }
            }
        }
        Table { slots }
    }

    /// A table of these slots (backend indices or [`NONE`]), e.g. a
    /// previous table with its indices mapped to a new backend list.
    pub fn from_slots(slots: Vec<u16>) -> Table {
        Table { slots }
    }

    /// The backend of a flow hash; [`NONE`] when no backend is live.
    #[inline(always)]
    pub fn lookup(&self, hash: u64) -> u16 {
        self.slots[(hash % self.slots.len() as u64) as usize]
    }

    pub fn size(&self) -> usize {
        self.slots.len()
    }

    /// Slots per backend index.
    pub fn shares(&self, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &s in &self.slots {
            if (s as usize) < n {
                c[s as usize] += 1;
            }
        }
        c
    }

    pub fn slots(&self) -> &[u16] {
        &self.slots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<u64> {
        (0..n as u64).map(|i| mix64(0x0a00_0000 + i)).collect()
    }

    #[test]
    fn sizes_are_primes_and_grow_with_the_backends() {
        for m in SIZES {
            assert!((2..m).take_while(|d| d * d <= m).all(|d| m % d != 0), "{m}");
        }
        assert_eq!(size_for(3), 1021);
        assert_eq!(size_for(11), 2039);
        assert_eq!(size_for(600), 65521);
        assert_eq!(size_for(5000), 131071);
    }

    #[test]
    fn every_backend_gets_its_share_within_one_slot() {
        for n in [1, 2, 3, 7, 10, 64] {
            let m = size_for(n);
            let t = Table::build(m, &keys(n), &vec![true; n], None);
            let s = t.shares(n);
            let (lo, hi) = (*s.iter().min().unwrap(), *s.iter().max().unwrap());
            assert!(hi - lo <= 1, "n={n}: {s:?}");
            assert_eq!(s.iter().sum::<usize>(), m as usize);
        }
    }

    #[test]
    fn the_table_does_not_depend_on_the_backend_order_given_the_same_keys() {
        let k = keys(5);
        let t = Table::build(1021, &k, &[true; 5], None);
        // Reversed list: the same backend (key) owns the same slots.
        let rk: Vec<u64> = k.iter().rev().copied().collect();
        let r = Table::build(1021, &rk, &[true; 5], None);
        for (a, b) in t.slots().iter().zip(r.slots()) {
            assert_eq!(k[*a as usize], rk[*b as usize]);
        }
    }

    #[test]
    fn flows_spread_evenly_over_the_backends() {
        let n = 3;
        let t = Table::build(size_for(n), &keys(n), &[true; 3], None);
        let mut c = [0usize; 3];
        let flows = 30_000u64;
        for f in 0..flows {
            c[t.lookup(mix64(f)) as usize] += 1;
        }
        for x in c {
            let share = x as f64 / flows as f64;
            assert!((share - 1.0 / 3.0).abs() < 0.02, "{c:?}");
        }
    }

    /// Taking backend 1 out moves exactly its slots; the others keep every
    /// one of theirs. Putting it back moves slots only onto it, and the
    /// shares are even again.
    #[test]
    fn a_backend_change_moves_only_its_own_flows() {
        let n = 4;
        let m = size_for(n);
        let k = keys(n);
        let t0 = Table::build(m, &k, &[true; 4], None);
        let t1 = Table::build(m, &k, &[true, false, true, true], Some(&t0));
        let mut moved = 0;
        for (a, b) in t0.slots().iter().zip(t1.slots()) {
            if *a == 1 {
                assert_ne!(*b, 1);
                moved += 1;
            } else {
                assert_eq!(a, b, "a slot of a remaining backend moved");
            }
        }
        assert_eq!(moved, t0.shares(n)[1]);
        let s1 = t1.shares(n);
        assert!(s1[0].abs_diff(s1[2]) <= 1 && s1[2].abs_diff(s1[3]) <= 1);
        let t2 = Table::build(m, &k, &[true; 4], Some(&t1));
        for (a, b) in t1.slots().iter().zip(t2.slots()) {
            assert!(a == b || *b == 1, "a flow moved between remaining backends");
        }
        let s2 = t2.shares(n);
        assert!(
            s2.iter().max().unwrap() - s2.iter().min().unwrap() <= 1,
            "{s2:?}"
        );
        // Plain Maglev (no previous table) moves more than the removed
        // share: the cascade the incremental build avoids.
        let plain = Table::build(m, &k, &[true, false, true, true], None);
        let extra = t0
            .slots()
            .iter()
            .zip(plain.slots())
            .filter(|(a, b)| **a != 1 && a != b)
            .count();
        assert!(extra > 0, "plain Maglev moved no other slot");
    }

    #[test]
    fn no_live_backend_gives_an_empty_table() {
        let t = Table::build(1021, &keys(2), &[false, false], None);
        assert_eq!(t.lookup(12345), NONE);
        let t = Table::build(1021, &[], &[], None);
        assert_eq!(t.lookup(1), NONE);
    }
}
