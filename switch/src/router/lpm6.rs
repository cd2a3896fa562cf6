//! IPv6 longest-prefix match: a leaf-pushed multibit trie with a 16-bit
//! first stride (65 536 entries, 256 KiB) and 8-bit strides below it (256
//! entries, 1 KiB per node), the DIR-24-8 idea stretched over 128 bits.
//!
//! Why this and not per-length hash tables with binary search on lengths
//! (Waldvogel): that needs markers and their precomputed best-matching
//! prefixes to stay correct under insert/delete, and every probe is a hash
//! of 128 bits; here a lookup is at most 15 dependent array loads, typically
//! 5–7 for /48../64 routes, each a shift and a mask, and the upper levels of
//! a 1k-route table stay in L1/L2. [`Lpm6::lookup_batch`] walks a whole
//! batch one level at a time so the loads of different packets overlap.
//!
//! Like `lpm4`, entries carry their prefix depth, so insert and delete are
//! exact; nodes that become uniform again are folded and recycled.
//!
//! Owns: the trie and the rule set. Never: allocation on lookup.

use hashbrown::HashMap;

use super::{LpmError, NhId, family::Lpm};

const EXT: u32 = 1 << 31;
const DEPTH_SHIFT: u32 = 23;
const PAYLOAD: u32 = (1 << DEPTH_SHIFT) - 1;
const ROOT: usize = 1 << 16;
/// Largest next-hop index an entry can hold.
pub const MAX_NH: NhId = PAYLOAD;

#[inline]
fn leaf(len: u8, nh: NhId) -> u32 {
    ((len as u32 + 1) << DEPTH_SHIFT) | nh
}

#[inline]
fn depth(e: u32) -> u32 {
    (e >> DEPTH_SHIFT) & 0xff
}

#[inline]
fn mask(a: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        a & (u128::MAX << (128 - len as u32))
    }
}

/// Bit where level `l` starts (level 0 is the root).
#[inline]
fn level_start(l: u32) -> u32 {
    if l == 0 { 0 } else { 16 + 8 * (l - 1) }
}

#[inline]
fn level_end(l: u32) -> u32 {
    16 + 8 * l
}

/// Index of `a` inside a node of level `l`.
#[inline]
fn index_at(a: u128, l: u32) -> usize {
    if l == 0 {
        (a >> 112) as usize
    } else {
        ((a >> (128 - level_end(l))) & 0xff) as usize
    }
}

/// A multibit-trie IPv6 route table mapping prefixes to next-hop indices.
pub struct Lpm6 {
    /// Root (65 536 entries) then the nodes, 256 entries each.
    t: Vec<u32>,
    free_nodes: Vec<u32>,
    max_nodes: u32,
    rules: HashMap<(u128, u8), NhId>,
}

impl std::fmt::Debug for Lpm6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lpm6")
            .field("routes", &self.rules.len())
            .field("nodes", &self.nodes_in_use())
            .finish()
    }
}

impl Default for Lpm6 {
    fn default() -> Self {
        Self::new(1 << 16)
    }
}

impl Lpm6 {
    /// An empty table with room for up to `max_nodes` 256-entry nodes.
    pub fn new(max_nodes: u32) -> Self {
        Lpm6 {
            t: vec![0; ROOT],
            free_nodes: Vec::new(),
            max_nodes: max_nodes.min(PAYLOAD + 1),
            rules: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
    pub fn nodes_in_use(&self) -> usize {
        (self.t.len() - ROOT) / 256 - self.free_nodes.len()
    }
    pub fn routes(&self) -> impl Iterator<Item = (u128, u8, NhId)> + '_ {
        self.rules.iter().map(|(&(a, l), &nh)| (a, l, nh))
    }

    #[inline]
    fn node(e: u32) -> usize {
        ROOT + (((e & PAYLOAD) as usize) << 8)
    }

    /// Set entry `k` (and everything under it) to `val` where the current
    /// prefix is not longer than depth `d`.
    fn overwrite(&mut self, k: usize, val: u32, d: u32) {
        let e = self.t[k];
        if e & EXT != 0 {
            let c = Self::node(e);
            for j in c..c + 256 {
                self.overwrite(j, val, d);
            }
        } else if depth(e) <= d {
            self.t[k] = val;
        }
    }

    /// The node under entry `k`, created from the entry's leaf if needed.
    fn child_of(&mut self, k: usize) -> Result<usize, LpmError> {
        let e = self.t[k];
        if e & EXT != 0 {
            return Ok(Self::node(e));
        }
        let n = match self.free_nodes.pop() {
            Some(n) => n,
            None => {
                let n = ((self.t.len() - ROOT) / 256) as u32;
                if n >= self.max_nodes {
                    return Err(LpmError::Full);
                }
                self.t.resize(self.t.len() + 256, 0);
                n
            }
        };
        let off = ROOT + ((n as usize) << 8);
        self.t[off..off + 256].fill(e);
        self.t[k] = EXT | n;
        Ok(off)
    }

    /// Replace entries of depth `old` under the prefix in the node at
    /// `base` (level `l`), folding nodes that become uniform.
    fn remove_at(&mut self, base: usize, l: u32, addr: u128, len: u8, old: u32, repl: u32) {
        let end = level_end(l);
        let i = index_at(addr, l);
        if len as u32 <= end {
            for k in base + i..base + i + (1usize << (end - len as u32)) {
                self.replace(k, l, old, repl);
            }
            return;
        }
        let e = self.t[base + i];
        if e & EXT == 0 {
            debug_assert!(false, "a rule below level {l} always has a node");
            return;
        }
        self.remove_at(Self::node(e), l + 1, addr, len, old, repl);
        self.try_fold(base + i, l + 1);
    }

    /// Replace depth-`old` leaves in entry `k` of a level-`l` node and below.
    fn replace(&mut self, k: usize, l: u32, old: u32, repl: u32) {
        let e = self.t[k];
        if e & EXT != 0 {
            let c = Self::node(e);
            for j in c..c + 256 {
                self.replace(j, l + 1, old, repl);
            }
            self.try_fold(k, l + 1);
        } else if depth(e) == old {
            self.t[k] = repl;
        }
    }

    /// Fold the level-`l` node under entry `k` into a leaf if it holds one
    /// prefix no longer than the node's start bit everywhere.
    fn try_fold(&mut self, k: usize, l: u32) {
        let e = self.t[k];
        if e & EXT == 0 {
            return;
        }
        let c = Self::node(e);
        let first = self.t[c];
        if first & EXT == 0
            && depth(first) <= level_start(l) + 1
            && self.t[c..c + 256].iter().all(|&x| x == first)
        {
            self.t[k] = first;
            self.free_nodes.push(e & PAYLOAD);
        }
    }
}

impl Lpm for Lpm6 {
    type Addr = u128;

    fn get(&self, addr: u128, len: u8) -> Option<NhId> {
        self.rules.get(&(mask(addr, len), len)).copied()
    }

    /// Longest-prefix match.
    #[inline]
    fn lookup(&self, a: u128) -> Option<NhId> {
        let mut e = self.t[(a >> 112) as usize];
        let mut shift = 112u32;
        while e & EXT != 0 {
            shift = shift.checked_sub(8)?;
            e = self.t[Self::node(e) + ((a >> shift) & 0xff) as usize];
        }
        if e == 0 { None } else { Some(e & PAYLOAD) }
    }

    /// Look up `addrs` into `out`, one trie level at a time for the whole
    /// batch so that the loads of different packets overlap.
    fn lookup_batch(&self, addrs: &[u128], out: &mut [Option<NhId>]) {
        let mut raw = [0u32; 64];
        for (addrs, out) in addrs.chunks(64).zip(out.chunks_mut(64)) {
            let raw = &mut raw[..addrs.len()];
            let mut pending = false;
            for (r, &a) in raw.iter_mut().zip(addrs) {
                *r = self.t[(a >> 112) as usize];
                pending |= *r & EXT != 0;
            }
            let mut shift = 112u32;
            while pending {
                let Some(s) = shift.checked_sub(8) else { break };
                shift = s;
                pending = false;
                // Branch-free: finished entries re-read slot 0 (hot) and
                // keep their value, so mixed prefix lengths in a batch do
                // not cost mispredictions.
                for (r, &a) in raw.iter_mut().zip(addrs) {
                    let ext = *r & EXT != 0;
                    let at = Self::node(*r) + ((a >> shift) & 0xff) as usize;
                    let v = self.t[if ext { at } else { 0 }];
                    *r = if ext { v } else { *r };
                    pending |= *r & EXT != 0;
                }
            }
            for (o, &e) in out.iter_mut().zip(raw.iter()) {
                *o = if e == 0 || e & EXT != 0 {
                    None
                } else {
                    Some(e & PAYLOAD)
                };
            }
        }
    }

    /// Add or replace `addr/len → nh`; returns the next hop it replaced.
    fn insert(&mut self, addr: u128, len: u8, nh: NhId) -> Result<Option<NhId>, LpmError> {
        if len > 128 {
            return Err(LpmError::PrefixLen(len));
        }
        if nh > MAX_NH {
            return Err(LpmError::NextHop(nh));
        }
        let addr = mask(addr, len);
        let val = leaf(len, nh);
        let d = len as u32 + 1;
        let mut base = 0usize;
        let mut l = 0u32;
        loop {
            let end = level_end(l);
            let i = index_at(addr, l);
            if len as u32 <= end {
                for k in base + i..base + i + (1usize << (end - len as u32)) {
                    self.overwrite(k, val, d);
                }
                break;
            }
            base = self.child_of(base + i)?;
            l += 1;
        }
        Ok(self.rules.insert((addr, len), nh))
    }

    /// Remove `addr/len`; returns its next hop, `None` if it was not there.
    fn remove(&mut self, addr: u128, len: u8) -> Option<NhId> {
        if len > 128 {
            return None;
        }
        let addr = mask(addr, len);
        let nh = self.rules.remove(&(addr, len))?;
        let repl = (0..len)
            .rev()
            .find_map(|l| self.rules.get(&(mask(addr, l), l)).map(|&n| leaf(l, n)))
            .unwrap_or(0);
        self.remove_at(0, 0, addr, len, len as u32 + 1, repl);
        Some(nh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn a(s: &str) -> u128 {
        u128::from(s.parse::<Ipv6Addr>().unwrap())
    }

    #[test]
    fn longest_match_and_delete() {
        let mut t = Lpm6::new(64);
        t.insert(0, 0, 9).unwrap();
        t.insert(a("2001:db8::"), 32, 1).unwrap();
        t.insert(a("2001:db8:1::"), 48, 2).unwrap();
        t.insert(a("2001:db8:1:2::"), 64, 3).unwrap();
        t.insert(a("2001:db8:1:2::7"), 128, 4).unwrap();
        t.insert(a("2001:db8:1:2::80"), 121, 5).unwrap();
        assert_eq!(t.lookup(a("2001:db8:ffff::1")), Some(1));
        assert_eq!(t.lookup(a("2001:db8:1:9::1")), Some(2));
        assert_eq!(t.lookup(a("2001:db8:1:2::8")), Some(3));
        assert_eq!(t.lookup(a("2001:db8:1:2::7")), Some(4));
        assert_eq!(t.lookup(a("2001:db8:1:2::ff")), Some(5));
        assert_eq!(t.lookup(a("fe80::1")), Some(9));
        let before = t.nodes_in_use();
        assert_eq!(t.remove(a("2001:db8:1:2::7"), 128), Some(4));
        assert_eq!(t.lookup(a("2001:db8:1:2::7")), Some(3));
        assert_eq!(t.remove(a("2001:db8:1:2::"), 64), Some(3));
        assert_eq!(t.lookup(a("2001:db8:1:2::7")), Some(2));
        assert_eq!(t.lookup(a("2001:db8:1:2::81")), Some(5));
        assert_eq!(t.remove(a("2001:db8:1:2::80"), 121), Some(5));
        assert!(t.nodes_in_use() < before, "nodes folded");
        assert_eq!(t.lookup(a("2001:db8:1:2::81")), Some(2));
        let mut out = [None; 2];
        t.lookup_batch(&[a("2001:db8:1:2::81"), a("::1")], &mut out);
        assert_eq!(out, [Some(2), Some(9)]);
        assert_eq!(t.remove(0, 0), Some(9));
        assert_eq!(t.lookup(a("::1")), None);
    }

    #[test]
    fn full_and_errors() {
        let mut t = Lpm6::new(1);
        t.insert(a("2001:db8::"), 24, 1).unwrap();
        assert_eq!(t.insert(a("2001:db8::"), 32, 1), Err(LpmError::Full));
        assert_eq!(t.insert(0, 129, 1), Err(LpmError::PrefixLen(129)));
        assert_eq!(t.remove(a("2001:db8::"), 32), None);
    }

    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn lpm6_matches_a_naive_reference(
            ops in prop::collection::vec((any::<u128>(), 0u8..=128, 0u32..1000, any::<bool>()), 1..60),
            probes in prop::collection::vec(any::<u128>(), 64),
        ) {
            let mut t = Lpm6::new(1 << 14);
            let mut reference: BTreeMap<(u128, u8), u32> = BTreeMap::new();
            let mask = |a: u128, l: u8| if l == 0 { 0 } else { a & (u128::MAX << (128 - l as u32)) };
            // Cluster addresses under 2001:db8::/32 with few distinct bits so
            // prefixes nest and overlap.
            let squash = |a: u128| (0x2001_0db8u128 << 96) | (a & 0x0000_0000_ff00_00ff_0000_0000_0000_f00f);
            for &(a, l, nh, del) in &ops {
                let a = squash(a);
                if del {
                    let want = reference.remove(&(mask(a, l), l));
                    prop_assert_eq!(t.remove(a, l), want);
                } else {
                    t.insert(a, l, nh).unwrap();
                    reference.insert((mask(a, l), l), nh);
                }
            }
            let lookup = |x: u128| (0..=128u8).rev().find_map(|l| reference.get(&(mask(x, l), l)).copied());
            let mut all: Vec<u128> = probes.iter().map(|p| squash(*p)).collect();
            all.extend(reference.keys().map(|k| k.0));
            all.extend(reference.keys().map(|k| k.0.wrapping_sub(1)));
            let mut batch = vec![None; all.len()];
            t.lookup_batch(&all, &mut batch);
            for (x, b) in all.iter().zip(&batch) {
                prop_assert_eq!(t.lookup(*x), lookup(*x), "addr {:032x}", x);
                prop_assert_eq!(*b, lookup(*x));
            }
            for (&(a, l), _) in reference.clone().iter() {
                t.remove(a, l);
            }
            prop_assert_eq!(t.nodes_in_use(), 0, "all nodes recycled");
        }
    }
}
