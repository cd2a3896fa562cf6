//! IPv4 longest-prefix match, DIR-24-8 (Gupta, Lin, McKeown 1998; the DPDK
//! `rte_lpm` layout): a flat 2^24-entry first table indexed by the top 24
//! address bits, and 256-entry second-level groups for prefixes longer than
//! /24. A lookup is one load, two for addresses under a /25../32.
//!
//! Every entry stores the depth of the prefix it came from, so an insert
//! overwrites only entries of shorter (or equal) prefixes and a delete puts
//! back the longest remaining covering prefix (looked up in the rule set the
//! table keeps for the control plane). Second-level groups that become
//! uniform again are folded back and recycled.
//!
//! Owns: the tables and the rule set. Never: allocation on lookup; the
//! first table (64 MiB, zero pages until written) is allocated once.

use hashbrown::HashMap;

use super::{LpmError, NhId, family::Lpm};

const EXT: u32 = 1 << 31;
const DEPTH_SHIFT: u32 = 24;
const PAYLOAD: u32 = (1 << DEPTH_SHIFT) - 1;
const TBL24: usize = 1 << 24;
/// Largest next-hop index an entry can hold.
pub const MAX_NH: NhId = PAYLOAD;

#[inline]
fn leaf(len: u8, nh: NhId) -> u32 {
    ((len as u32 + 1) << DEPTH_SHIFT) | nh
}

/// Stored depth: prefix length + 1, 0 for "no route".
#[inline]
fn depth(e: u32) -> u32 {
    (e >> DEPTH_SHIFT) & 0x7f
}

#[inline]
fn mask(addr: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        addr & (u32::MAX << (32 - len as u32))
    }
}

/// A DIR-24-8 IPv4 route table mapping prefixes to next-hop indices.
pub struct Lpm4 {
    tbl24: Box<[u32; TBL24]>,
    tbl8: Vec<u32>,
    free_groups: Vec<u32>,
    max_groups: u32,
    rules: HashMap<(u32, u8), NhId>,
}

impl std::fmt::Debug for Lpm4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lpm4")
            .field("routes", &self.rules.len())
            .field("groups", &self.groups_in_use())
            .finish()
    }
}

impl Default for Lpm4 {
    fn default() -> Self {
        Self::new(1 << 16)
    }
}

impl Lpm4 {
    /// An empty table allowing up to `max_groups` second-level groups
    /// (/24s holding longer prefixes; 1 KiB each).
    pub fn new(max_groups: u32) -> Self {
        let tbl24: Box<[u32; TBL24]> = vec![0u32; TBL24]
            .into_boxed_slice()
            .try_into()
            .expect("length is TBL24");
        Lpm4 {
            tbl24,
            tbl8: Vec::new(),
            free_groups: Vec::new(),
            max_groups: max_groups.min(PAYLOAD + 1),
            rules: HashMap::new(),
        }
    }

    /// Number of prefixes in the table.
    pub fn len(&self) -> usize {
        self.rules.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
    /// Second-level groups allocated and not free.
    pub fn groups_in_use(&self) -> usize {
        self.tbl8.len() / 256 - self.free_groups.len()
    }
    /// The prefixes, in no particular order.
    pub fn routes(&self) -> impl Iterator<Item = (u32, u8, NhId)> + '_ {
        self.rules.iter().map(|(&(a, l), &nh)| (a, l, nh))
    }

    /// The group (as an offset into `tbl8`) under first-table entry `i`,
    /// created from the entry's leaf if there is none.
    fn group_of(&mut self, i: usize) -> Result<usize, LpmError> {
        let e = self.tbl24[i];
        if e & EXT != 0 {
            return Ok(((e & PAYLOAD) as usize) << 8);
        }
        let g = match self.free_groups.pop() {
            Some(g) => g,
            None => {
                let g = (self.tbl8.len() / 256) as u32;
                if g >= self.max_groups {
                    return Err(LpmError::Full);
                }
                self.tbl8.resize(self.tbl8.len() + 256, 0);
                g
            }
        };
        let off = (g as usize) << 8;
        self.tbl8[off..off + 256].fill(e);
        self.tbl24[i] = EXT | g;
        Ok(off)
    }

    /// Fold the group under entry `i` back into a leaf if it holds one
    /// prefix of /24 or shorter everywhere.
    fn try_fold(&mut self, i: usize) {
        let e = self.tbl24[i];
        let gi = e & PAYLOAD;
        let g = (gi as usize) << 8;
        let first = self.tbl8[g];
        if depth(first) <= 25 && self.tbl8[g..g + 256].iter().all(|&x| x == first) {
            self.tbl24[i] = first;
            self.free_groups.push(gi);
        }
    }
}

impl Lpm for Lpm4 {
    type Addr = u32;

    /// The next hop of exactly this prefix, if present.
    fn get(&self, addr: u32, len: u8) -> Option<NhId> {
        self.rules.get(&(mask(addr, len), len)).copied()
    }

    /// Longest-prefix match.
    #[inline]
    fn lookup(&self, addr: u32) -> Option<NhId> {
        let e = self.tbl24[(addr >> 8) as usize];
        let e = if e & EXT != 0 {
            self.tbl8[(((e & PAYLOAD) as usize) << 8) | (addr & 0xff) as usize]
        } else {
            e
        };
        if e == 0 { None } else { Some(e & PAYLOAD) }
    }

    /// Look up `addrs` into `out` (same length or longer). The first-table
    /// loads of the whole batch are issued before any is used, so their
    /// cache misses overlap.
    fn lookup_batch(&self, addrs: &[u32], out: &mut [Option<NhId>]) {
        let mut raw = [0u32; 64];
        for (addrs, out) in addrs.chunks(64).zip(out.chunks_mut(64)) {
            for (r, &a) in raw.iter_mut().zip(addrs) {
                *r = self.tbl24[(a >> 8) as usize];
            }
            for ((o, &a), &e) in out.iter_mut().zip(addrs).zip(raw.iter()) {
                let e = if e & EXT != 0 {
                    self.tbl8[(((e & PAYLOAD) as usize) << 8) | (a & 0xff) as usize]
                } else {
                    e
                };
                *o = if e == 0 { None } else { Some(e & PAYLOAD) };
            }
        }
    }

    /// Add or replace `addr/len → nh`; returns the next hop it replaced.
    fn insert(&mut self, addr: u32, len: u8, nh: NhId) -> Result<Option<NhId>, LpmError> {
        if len > 32 {
            return Err(LpmError::PrefixLen(len));
        }
        if nh > MAX_NH {
            return Err(LpmError::NextHop(nh));
        }
        let addr = mask(addr, len);
        let val = leaf(len, nh);
        if len <= 24 {
            let start = (addr >> 8) as usize;
            for i in start..start + (1usize << (24 - len)) {
                let e = self.tbl24[i];
                if e & EXT != 0 {
                    let g = ((e & PAYLOAD) as usize) << 8;
                    for x in &mut self.tbl8[g..g + 256] {
                        if depth(*x) <= len as u32 + 1 {
                            *x = val;
                        }
                    }
                } else if depth(e) <= len as u32 + 1 {
                    self.tbl24[i] = val;
                }
            }
        } else {
            let i = (addr >> 8) as usize;
            let g = self.group_of(i)?;
            let start = (addr & 0xff) as usize;
            for x in &mut self.tbl8[g + start..g + start + (1usize << (32 - len))] {
                if depth(*x) <= len as u32 + 1 {
                    *x = val;
                }
            }
        }
        Ok(self.rules.insert((addr, len), nh))
    }

    /// Remove `addr/len`; returns its next hop, `None` if it was not there.
    fn remove(&mut self, addr: u32, len: u8) -> Option<NhId> {
        if len > 32 {
            return None;
        }
        let addr = mask(addr, len);
        let nh = self.rules.remove(&(addr, len))?;
        // The longest shorter prefix covering this one takes its place.
        let repl = (0..len)
            .rev()
            .find_map(|l| self.rules.get(&(mask(addr, l), l)).map(|&n| leaf(l, n)))
            .unwrap_or(0);
        let old = len as u32 + 1;
        if len <= 24 {
            let start = (addr >> 8) as usize;
            for i in start..start + (1usize << (24 - len)) {
                let e = self.tbl24[i];
                if e & EXT != 0 {
                    let g = ((e & PAYLOAD) as usize) << 8;
                    for x in &mut self.tbl8[g..g + 256] {
                        if depth(*x) == old {
                            *x = repl;
                        }
                    }
                    self.try_fold(i);
                } else if depth(e) == old {
                    self.tbl24[i] = repl;
                }
            }
        } else {
            let i = (addr >> 8) as usize;
            let e = self.tbl24[i];
            debug_assert!(e & EXT != 0, "a /25+ rule always has a group");
            if e & EXT != 0 {
                let g = ((e & PAYLOAD) as usize) << 8;
                let start = (addr & 0xff) as usize;
                for x in &mut self.tbl8[g + start..g + start + (1usize << (32 - len))] {
                    if depth(*x) == old {
                        *x = repl;
                    }
                }
                self.try_fold(i);
            }
        }
        Some(nh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
        u32::from_be_bytes([a, b, c, d])
    }

    #[test]
    fn longest_match_wins_in_any_insert_order() {
        let routes = [
            (ip(10, 0, 0, 0), 8, 1),
            (ip(10, 1, 0, 0), 16, 2),
            (ip(10, 1, 2, 0), 24, 3),
            (ip(10, 1, 2, 128), 25, 4),
            (ip(10, 1, 2, 130), 32, 5),
            (0, 0, 6),
        ];
        for order in [[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [3, 0, 4, 5, 1, 2]] {
            let mut t = Lpm4::new(16);
            for k in order {
                let (a, l, n) = routes[k];
                t.insert(a, l, n).unwrap();
            }
            assert_eq!(t.lookup(ip(10, 9, 9, 9)), Some(1));
            assert_eq!(t.lookup(ip(10, 1, 9, 9)), Some(2));
            assert_eq!(t.lookup(ip(10, 1, 2, 1)), Some(3));
            assert_eq!(t.lookup(ip(10, 1, 2, 129)), Some(4));
            assert_eq!(t.lookup(ip(10, 1, 2, 130)), Some(5));
            assert_eq!(t.lookup(ip(11, 0, 0, 0)), Some(6));
        }
    }

    #[test]
    fn delete_restores_covering_routes_and_recycles_groups() {
        let mut t = Lpm4::new(16);
        t.insert(ip(10, 0, 0, 0), 8, 1).unwrap();
        t.insert(ip(10, 1, 2, 0), 24, 2).unwrap();
        t.insert(ip(10, 1, 2, 64), 26, 3).unwrap();
        assert_eq!(t.groups_in_use(), 1);
        assert_eq!(t.remove(ip(10, 1, 2, 0), 24), Some(2));
        assert_eq!(t.lookup(ip(10, 1, 2, 1)), Some(1));
        assert_eq!(t.lookup(ip(10, 1, 2, 65)), Some(3));
        assert_eq!(t.remove(ip(10, 1, 2, 64), 26), Some(3));
        assert_eq!(t.lookup(ip(10, 1, 2, 65)), Some(1));
        assert_eq!(t.groups_in_use(), 0, "uniform group folded back");
        assert_eq!(t.remove(ip(10, 0, 0, 0), 8), Some(1));
        assert_eq!(t.lookup(ip(10, 1, 2, 65)), None);
        assert_eq!(t.remove(ip(10, 0, 0, 0), 8), None);
        assert!(t.is_empty());
    }

    #[test]
    fn replace_and_errors() {
        let mut t = Lpm4::new(1);
        assert_eq!(t.insert(ip(1, 2, 3, 4), 32, 7).unwrap(), None);
        assert_eq!(t.insert(ip(1, 2, 3, 4), 32, 8).unwrap(), Some(7));
        assert_eq!(t.lookup(ip(1, 2, 3, 4)), Some(8));
        assert_eq!(t.insert(ip(1, 2, 4, 4), 32, 8), Err(LpmError::Full));
        assert_eq!(t.insert(0, 33, 1), Err(LpmError::PrefixLen(33)));
        assert_eq!(
            t.insert(0, 8, MAX_NH + 1),
            Err(LpmError::NextHop(MAX_NH + 1))
        );
        let mut out = [None; 3];
        t.lookup_batch(&[ip(1, 2, 3, 4), ip(1, 2, 3, 5), 0], &mut out);
        assert_eq!(out, [Some(8), None, None]);
    }

    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn lpm4_matches_a_naive_reference(
            ops in prop::collection::vec((any::<u32>(), 0u8..=32, 0u32..1000, any::<bool>()), 1..60),
            probes in prop::collection::vec(any::<u32>(), 64),
        ) {
            let mut t = Lpm4::new(4096);
            let mut reference: BTreeMap<(u32, u8), u32> = BTreeMap::new();
            let mask = |a: u32, l: u8| if l == 0 { 0 } else { a & (u32::MAX << (32 - l)) };
            for (i, &(a, l, nh, del)) in ops.iter().enumerate() {
                // Short prefixes are rare (each writes up to 2^24 entries) and
                // addresses cluster so prefixes overlap.
                let l = if l < 8 && i % 4 != 0 { l + 16 } else { l };
                let a = (a & 0x0003_ffff) | 0x0a00_0000;
                if del {
                    let want = reference.remove(&(mask(a, l), l));
                    prop_assert_eq!(t.remove(a, l), want);
                } else {
                    t.insert(a, l, nh).unwrap();
                    reference.insert((mask(a, l), l), nh);
                }
            }
            let lookup = |x: u32| (0..=32u8).rev().find_map(|l| reference.get(&(mask(x, l), l)).copied());
            let mut all: Vec<u32> = probes.iter().map(|p| (p & 0x0003_ffff) | 0x0a00_0000).collect();
            all.extend(reference.keys().map(|k| k.0));
            all.extend(reference.keys().map(|k| k.0.wrapping_sub(1)));
            let mut batch = vec![None; all.len()];
            t.lookup_batch(&all, &mut batch);
            for (x, b) in all.iter().zip(&batch) {
                prop_assert_eq!(t.lookup(*x), lookup(*x), "addr {:08x}", x);
                prop_assert_eq!(*b, lookup(*x));
            }
            for (&(a, l), _) in reference.clone().iter() {
                t.remove(a, l);
            }
            prop_assert_eq!(t.groups_in_use(), 0, "all groups recycled");
        }
    }
}
