//! The forwarding database of one bridge domain (802.1D §7.8, IVL: one
//! address space per VLAN): learning, lookup, aging, static entries, MAC
//! moves with flap damping, and per-port / per-domain limits.
//!
//! Owns: the table and its counters. Never: syscalls, reading a clock (the
//! caller passes `now` in seconds), whole-table walks on the per-batch path
//! (aging walks a bounded number of buckets per call; only operator flushes
//! walk everything).

mod table;

use hashbrown::HashMap;

use crate::mac::MacAddr;
use crate::port::PortId;
use table::{Table, Val};

/// 802.1D's recommended default ageing time.
pub const DEFAULT_AGING_SECS: u32 = 300;

/// Default most dynamic entries of one bridge domain. Without a bound a
/// MAC flood from one port grows the table (and the switch's memory)
/// without end; once full, new stations are flooded to, not learned, and
/// `learn_limit_domain` counts them. Twice Open vSwitch's default
/// `mac-table-size` (8192), so that no single port (see
/// [`DEFAULT_PORT_MAX_ENTRIES`]) can fill it. 0 in [`FdbConfig::max_entries`]
/// lifts the limit.
pub const DEFAULT_MAX_ENTRIES: u32 = 16_384;

/// Default most dynamic entries learned on one port (Open vSwitch's
/// per-bridge default, 8192): the daemon's default for a port's `mac_limit`.
/// A port that reaches it stops learning and `learn_limit_port` counts.
pub const DEFAULT_PORT_MAX_ENTRIES: u32 = 8_192;

/// Entries a table has room for when created (and shrinks back to).
const INITIAL_ENTRIES: usize = 0;

/// Key of an entry: VID in bits 48..60, MAC in bits 0..48.
#[inline]
pub const fn fdb_key(vid: u16, mac: u64) -> u64 {
    ((vid as u64 & 0xfff) << 48) | (mac & 0xffff_ffff_ffff)
}

#[inline]
const fn key_vid(key: u64) -> u16 {
    (key >> 48) as u16 & 0xfff
}

#[inline]
const fn key_mac(key: u64) -> MacAddr {
    MacAddr::from_u64(key)
}

const F_STATIC: u16 = 1;
const F_DAMPED: u16 = 2;

/// Flap damping: a station that moves more than `max_moves` times within
/// `window_secs` stays where it is for `hold_secs`; frames still flow, the
/// table just stops chasing it (and the counters say so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MoveDamping {
    pub max_moves: u16,
    pub window_secs: u32,
    pub hold_secs: u32,
}

impl Default for MoveDamping {
    fn default() -> Self {
        MoveDamping {
            max_moves: 5,
            window_secs: 2,
            hold_secs: 10,
        }
    }
}

/// Table-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FdbConfig {
    /// Seconds an unrefreshed dynamic entry lives; 0 disables aging.
    pub aging_secs: u32,
    /// Most dynamic entries the domain learns (default
    /// [`DEFAULT_MAX_ENTRIES`]); 0 means no limit.
    pub max_entries: u32,
    pub damping: MoveDamping,
}

impl Default for FdbConfig {
    fn default() -> Self {
        FdbConfig {
            aging_secs: DEFAULT_AGING_SECS,
            max_entries: DEFAULT_MAX_ENTRIES,
            damping: MoveDamping::default(),
        }
    }
}

/// What a learn call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    New,
    Refreshed,
    Moved { from: PortId },
    MoveDamped,
    LimitPort,
    LimitDomain,
    StaticConflict,
}

/// An entry as the control plane sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FdbEntryInfo {
    pub vid: u16,
    pub mac: MacAddr,
    pub port: PortId,
    #[serde(rename = "static")]
    pub is_static: bool,
    /// Seconds since last seen (0 for static entries).
    pub age_secs: u32,
    pub damped: bool,
}

/// Which entries a flush removes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushFilter {
    pub port: Option<PortId>,
    pub vid: Option<u16>,
    /// Static entries go too (port removal); operators' flushes keep them.
    pub include_static: bool,
}

#[derive(Debug, Clone, Copy)]
struct Flap {
    window_start: u32,
    moves: u16,
    damped_until: u32,
}

/// What a station's move does to its flap state ([`Flap::step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlapStep {
    /// Damped, its hold not over: refused, nothing changes.
    Held,
    /// One move too many in the window: refused, and damped from now.
    Damp,
    /// Counted and allowed.
    Move,
}

impl Flap {
    /// A station tracked as `f` (a new one: `None`) moving at `now`: its
    /// state after the move, and what the move does.
    fn step(f: Option<Flap>, d: MoveDamping, now: u32) -> (Flap, FlapStep) {
        let fresh = Flap {
            window_start: now,
            moves: 0,
            damped_until: 0,
        };
        let mut f = f.unwrap_or(fresh);
        if f.damped_until != 0 && now.wrapping_sub(f.damped_until) > u32::MAX / 2 {
            return (f, FlapStep::Held);
        }
        if f.damped_until != 0 || now.wrapping_sub(f.window_start) >= d.window_secs {
            f = fresh;
        }
        f.moves += 1;
        if d.max_moves != 0 && f.moves > d.max_moves {
            f.damped_until = now.wrapping_add(d.hold_secs).max(1);
            return (f, FlapStep::Damp);
        }
        (f, FlapStep::Move)
    }
}

/// Most stations tracked for flapping at once; beyond it, moves are simply
/// not damped (and a counter of the overflow would show it in `flap_overflow`).
const FLAP_TRACK_MAX: usize = 4096;

/// A bridge domain's forwarding database.
pub struct Fdb {
    table: Table,
    cfg: FdbConfig,
    dynamic: u32,
    per_port: Vec<u32>,
    port_limit: Vec<u32>,
    cursor: usize,
    flaps: HashMap<u64, Flap>,
    flap_purged_at: u32,
    /// Moves seen while the flap tracker was full.
    pub flap_overflow: u64,
    /// Reused list of entries an aging step removed.
    scratch: Vec<(u64, Val)>,
}

impl std::fmt::Debug for Fdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fdb")
            .field("entries", &self.table.len())
            .field("dynamic", &self.dynamic)
            .finish()
    }
}

impl Default for Fdb {
    fn default() -> Self {
        Self::new(FdbConfig::default())
    }
}

impl Fdb {
    /// A small table that grows as stations are learned (up to the
    /// limit) and shrinks again after flushes and aging.
    pub fn new(cfg: FdbConfig) -> Self {
        Self::with_capacity(cfg, INITIAL_ENTRIES)
    }

    /// Pre-size for `n` entries (big domains; avoids growth pauses). The
    /// table never shrinks below this.
    pub fn with_capacity(cfg: FdbConfig, n: usize) -> Self {
        Fdb {
            table: Table::with_capacity(n.min(1 << 24)),
            cfg,
            dynamic: 0,
            per_port: Vec::new(),
            port_limit: Vec::new(),
            cursor: 0,
            flaps: HashMap::new(),
            flap_purged_at: 0,
            flap_overflow: 0,
            scratch: Vec::new(),
        }
    }

    pub fn config(&self) -> &FdbConfig {
        &self.cfg
    }

    pub fn set_config(&mut self, cfg: FdbConfig) {
        self.cfg = cfg;
    }

    /// Entries in the table (static and dynamic).
    pub fn len(&self) -> usize {
        self.table.len()
    }
    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }
    /// Dynamic (learned) entries.
    pub fn dynamic_len(&self) -> u32 {
        self.dynamic
    }
    /// Dynamic entries learned on `port`.
    pub fn port_len(&self, port: PortId) -> u32 {
        self.per_port.get(port.index()).copied().unwrap_or(0)
    }

    /// Most dynamic entries `port` may hold; 0 lifts the limit.
    pub fn set_port_limit(&mut self, port: PortId, limit: u32) {
        let i = port.index();
        if self.port_limit.len() <= i {
            self.port_limit.resize(i + 1, 0);
        }
        self.port_limit[i] = limit;
    }

    #[inline]
    pub(crate) fn hash(&self, key: u64) -> u64 {
        self.table.hash(key)
    }

    #[inline]
    fn expired(&self, e: &Val, now: u32) -> bool {
        e.flags & F_STATIC == 0
            && self.cfg.aging_secs != 0
            && now.wrapping_sub(e.last_seen) >= self.cfg.aging_secs
    }

    #[inline]
    fn port_count_mut(&mut self, port: u16) -> &mut u32 {
        let i = port as usize;
        if self.per_port.len() <= i {
            self.per_port.resize(i + 1, 0);
        }
        &mut self.per_port[i]
    }

    #[inline]
    pub(crate) fn port_full(&self, port: u16) -> bool {
        let limit = self.port_limit.get(port as usize).copied().unwrap_or(0);
        limit != 0 && self.per_port.get(port as usize).copied().unwrap_or(0) >= limit
    }

    /// Where `key` lives, if known and not expired.
    #[inline]
    pub fn lookup(&self, key: u64, now: u32) -> Option<PortId> {
        self.lookup_hashed(key, self.hash(key), now)
    }

    #[inline]
    pub(crate) fn lookup_hashed(&self, key: u64, hash: u64, now: u32) -> Option<PortId> {
        match self.table.find(key, hash) {
            Some(e) if !self.expired(e, now) => Some(PortId(e.port)),
            _ => None,
        }
    }

    /// Look up a batch of keys: hash them all and prefetch both candidate
    /// buckets of each first, then probe, so the cache misses of the whole
    /// batch overlap instead of queueing one behind the other (a table of a
    /// million stations does not fit any cache).
    #[inline]
    pub fn lookup_batch(&self, keys: &[u64], now: u32, out: &mut [Option<PortId>]) {
        let n = keys.len().min(crate::batch::BATCH_MAX).min(out.len());
        let mut hs = [0u64; crate::batch::BATCH_MAX];
        for i in 0..n {
            let h = self.hash(keys[i]);
            self.table.prefetch(h);
            hs[i] = h;
        }
        for i in 0..n {
            out[i] = self.lookup_hashed(keys[i], hs[i], now);
        }
    }

    /// Hash `key` and prefetch where it would live (the pipeline does this a
    /// stage ahead of the probe).
    #[inline]
    pub fn prefetch_key(&self, key: u64) -> u64 {
        let h = self.hash(key);
        self.table.prefetch(h);
        h
    }

    /// Learn (or refresh) that `key` was seen on `port` at `now`.
    #[inline]
    pub fn learn(&mut self, key: u64, port: PortId, now: u32) -> Learned {
        self.learn_hashed(key, self.hash(key), port, now)
    }

    /// [`Fdb::learn`] with the hash from [`Fdb::prefetch_key`].
    #[inline]
    pub fn learn_hashed(&mut self, key: u64, hash: u64, port: PortId, now: u32) -> Learned {
        let aging = self.cfg.aging_secs;
        let Some(e) = self.table.find_mut(key, hash) else {
            return self.insert_new(key, hash, port.0, now);
        };
        if e.port == port.0 {
            // The common case: touch the line only when the second changed.
            if e.last_seen != now {
                e.last_seen = now;
            }
            return Learned::Refreshed;
        }
        if e.flags & F_STATIC != 0 {
            return Learned::StaticConflict;
        }
        let from = e.port;
        let was_expired = aging != 0 && now.wrapping_sub(e.last_seen) >= aging;
        if was_expired {
            return self.relearn_expired(key, hash, from, port.0, now);
        }
        self.station_moved(key, hash, from, port.0, now)
    }

    /// What [`Fdb::learn`] of `key` on `port` at `now` would return, changing
    /// nothing: the dry run's verdict (`pipeline/learn.rs`), the same
    /// decisions as `learn_hashed` and the functions it calls.
    pub fn learn_verdict(&self, key: u64, port: PortId, now: u32) -> Learned {
        let Some(e) = self.table.find(key, self.hash(key)) else {
            return self.insert_refused(port.0).unwrap_or(Learned::New);
        };
        if e.port == port.0 {
            return Learned::Refreshed;
        }
        if e.flags & F_STATIC != 0 {
            return Learned::StaticConflict;
        }
        if self.expired(e, now) {
            return self.relearn_refused(port.0).unwrap_or(Learned::New);
        }
        let tracked = self.flaps.get(&key).copied();
        let untracked = tracked.is_none() && self.flaps.len() >= FLAP_TRACK_MAX;
        if !untracked && Flap::step(tracked, self.cfg.damping, now).1 != FlapStep::Move {
            return Learned::MoveDamped;
        }
        if self.port_full(port.0) {
            return Learned::LimitPort;
        }
        Learned::Moved {
            from: PortId(e.port),
        }
    }

    /// Why a new station on `port` is not learned, if it is not.
    fn insert_refused(&self, port: u16) -> Option<Learned> {
        if self.cfg.max_entries != 0 && self.dynamic >= self.cfg.max_entries {
            return Some(Learned::LimitDomain);
        }
        self.relearn_refused(port)
    }

    /// Why a station is not learned on `port` (already counted in the
    /// domain: an entry past its age), if it is not.
    fn relearn_refused(&self, port: u16) -> Option<Learned> {
        self.port_full(port).then_some(Learned::LimitPort)
    }

    /// An entry past its age is gone in all but bookkeeping: relearn it on
    /// `to`, as a new station (within `to`'s limit).
    #[cold]
    fn relearn_expired(&mut self, key: u64, hash: u64, from: u16, to: u16, now: u32) -> Learned {
        if let Some(r) = self.relearn_refused(to) {
            return r;
        }
        self.rehome(key, hash, (from, to), now, 0);
        Learned::New
    }

    /// Move `key`'s entry from port `from` to `to`, seen at `now`, keeping
    /// the flags in `keep`.
    fn rehome(&mut self, key: u64, hash: u64, (from, to): (u16, u16), now: u32, keep: u16) {
        let e = self
            .table
            .find_mut(key, hash)
            .expect("entry found by caller");
        e.port = to;
        e.last_seen = now;
        e.flags &= keep;
        *self.port_count_mut(from) -= 1;
        *self.port_count_mut(to) += 1;
    }

    #[cold]
    fn insert_new(&mut self, key: u64, hash: u64, port: u16, now: u32) -> Learned {
        if let Some(r) = self.insert_refused(port) {
            return r;
        }
        self.table.insert_new(
            key,
            hash,
            Val {
                last_seen: now,
                port,
                flags: 0,
            },
        );
        self.dynamic += 1;
        *self.port_count_mut(port) += 1;
        Learned::New
    }

    #[cold]
    fn station_moved(&mut self, key: u64, hash: u64, from: u16, to: u16, now: u32) -> Learned {
        let d = self.cfg.damping;
        // Damped stations stay put until their hold ends.
        let tracked = self.flaps.get(&key).copied();
        let mut damp_now = false;
        if tracked.is_none() && self.flaps.len() >= FLAP_TRACK_MAX {
            self.flap_overflow += 1;
        } else {
            let (f, step) = Flap::step(tracked, d, now);
            if step == FlapStep::Held {
                return Learned::MoveDamped;
            }
            self.flaps.insert(key, f);
            damp_now = step == FlapStep::Damp;
        }
        if damp_now {
            if let Some(e) = self.table.find_mut(key, hash) {
                e.flags |= F_DAMPED;
            }
            return Learned::MoveDamped;
        }
        if self.port_full(to) {
            return Learned::LimitPort;
        }
        self.rehome(key, hash, (from, to), now, !F_DAMPED);
        Learned::Moved { from: PortId(from) }
    }

    /// Install a static entry (never aged, never moved by learning). Replaces
    /// a dynamic entry for the same key.
    pub fn add_static(&mut self, vid: u16, mac: MacAddr, port: PortId) {
        let key = fdb_key(vid, mac.to_u64());
        self.remove(vid, mac);
        let hash = self.hash(key);
        self.table.insert_new(
            key,
            hash,
            Val {
                last_seen: 0,
                port: port.0,
                flags: F_STATIC,
            },
        );
    }

    /// Remove one entry, static or dynamic. Returns whether it existed.
    pub fn remove(&mut self, vid: u16, mac: MacAddr) -> bool {
        let key = fdb_key(vid, mac.to_u64());
        let hash = self.hash(key);
        match self.table.remove(key, hash) {
            Some(e) => {
                if e.flags & F_STATIC == 0 {
                    self.dynamic -= 1;
                    *self.port_count_mut(e.port) -= 1;
                }
                self.flaps.remove(&key);
                true
            }
            None => false,
        }
    }

    /// Remove every entry matching `f` (an operator or a port removal; walks
    /// the whole table, so it is a control-plane operation).
    pub fn flush(&mut self, f: FlushFilter) -> usize {
        let mut removed_dynamic = Vec::new();
        let before = self.table.len();
        self.table.retain(|key, e| {
            let hit = f.port.is_none_or(|p| p.0 == e.port)
                && f.vid.is_none_or(|v| v == key_vid(key))
                && (f.include_static || e.flags & F_STATIC == 0);
            if hit && e.flags & F_STATIC == 0 {
                removed_dynamic.push(e.port);
            }
            !hit
        });
        for p in removed_dynamic {
            self.dynamic -= 1;
            *self.port_count_mut(p) -= 1;
        }
        if self.table.len() == 0 {
            self.flaps.clear();
        }
        self.shrink_if_sparse();
        before - self.table.len()
    }

    /// Entries the table holds before it must grow (its allocation).
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Give memory back after mass removal (a flush, or aging after a MAC
    /// flood): when the table is under an eighth full, rebuild it at the
    /// size its entries need, never below its initial size. The pause is
    /// proportional to the old table, which only happens when removal made
    /// it mostly empty; the aging cursor starts over.
    fn shrink_if_sparse(&mut self) {
        if self.table.len() * 8 < self.table.capacity() && self.table.shrink() {
            self.cursor = 0;
        }
    }

    /// Examine up to `budget` buckets from where the last call stopped and
    /// drop expired dynamic entries. Returns how many expired. Calling this
    /// with a small budget every batch keeps aging off the latency path; a
    /// full pass takes `buckets / budget` calls.
    pub fn age_step(&mut self, now: u32, budget: usize) -> usize {
        if !self.flaps.is_empty() && now.wrapping_sub(self.flap_purged_at) >= 1 {
            self.flap_purged_at = now;
            let w = self.cfg.damping.window_secs;
            self.flaps.retain(|_, f| {
                if f.damped_until != 0 {
                    now.wrapping_sub(f.damped_until) > u32::MAX / 2
                } else {
                    now.wrapping_sub(f.window_start) < w
                }
            });
        }
        if self.cfg.aging_secs == 0 || self.table.len() == 0 {
            return 0;
        }
        let n = self.table.buckets();
        let aging = self.cfg.aging_secs;
        let mut gone = std::mem::take(&mut self.scratch);
        for _ in 0..budget.min(n) {
            if self.cursor >= n {
                self.cursor = 0;
            }
            self.table.sweep_bucket(
                self.cursor,
                |_, e| e.flags & F_STATIC == 0 && now.wrapping_sub(e.last_seen) >= aging,
                &mut gone,
            );
            self.cursor += 1;
        }
        let expired = gone.len();
        for (_, e) in gone.drain(..) {
            self.dynamic -= 1;
            *self.port_count_mut(e.port) -= 1;
        }
        self.scratch = gone;
        // At the end of a full pass, give back what a flood left behind.
        if self.cursor >= n {
            self.shrink_if_sparse();
        }
        expired
    }

    /// Buckets a full aging pass visits (budget units of [`Fdb::age_step`]).
    pub fn buckets(&self) -> usize {
        self.table.buckets()
    }

    /// The entry of `key`, if known and not expired (for the control plane
    /// and dry runs; not for the fast path).
    pub fn entry(&self, key: u64, now: u32) -> Option<FdbEntryInfo> {
        let e = self.table.find(key, self.hash(key))?;
        if self.expired(e, now) {
            return None;
        }
        let is_static = e.flags & F_STATIC != 0;
        Some(FdbEntryInfo {
            vid: key_vid(key),
            mac: key_mac(key),
            port: PortId(e.port),
            is_static,
            age_secs: if is_static {
                0
            } else {
                now.wrapping_sub(e.last_seen)
            },
            damped: e.flags & F_DAMPED != 0,
        })
    }

    /// Every entry, for the control plane (allocates; not for the fast path).
    pub fn entries(&self, now: u32) -> Vec<FdbEntryInfo> {
        let mut v: Vec<_> = self
            .table
            .iter()
            .filter(|(_, e)| !self.expired(e, now))
            .map(|(key, e)| FdbEntryInfo {
                vid: key_vid(key),
                mac: key_mac(key),
                port: PortId(e.port),
                is_static: e.flags & F_STATIC != 0,
                age_secs: if e.flags & F_STATIC != 0 {
                    0
                } else {
                    now.wrapping_sub(e.last_seen)
                },
                damped: e.flags & F_DAMPED != 0,
            })
            .collect();
        v.sort_by_key(|e| (e.vid, e.mac));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(vid: u16, n: u64) -> u64 {
        fdb_key(vid, MacAddr::local(n).to_u64())
    }
    const P1: PortId = PortId(1);
    const P2: PortId = PortId(2);
    const P3: PortId = PortId(3);

    /// The dry run's verdict is what learning then does: 100,000 random
    /// learns (few stations and ports, small limits, quick aging and
    /// damping, statics and removals among them), each checked against the
    /// verdict taken just before it.
    #[test]
    fn the_learn_verdict_is_what_learning_does() {
        let mut f = Fdb::new(FdbConfig {
            aging_secs: 6,
            max_entries: 12,
            damping: MoveDamping {
                max_moves: 3,
                window_secs: 4,
                hold_secs: 5,
            },
        });
        f.set_port_limit(P1, 4);
        f.set_port_limit(P2, 6);
        let mut x = 0x853c_49e6_748f_ea9b_u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut now = 0u32;
        let mut seen = std::collections::HashMap::new();
        for _ in 0..100_000 {
            let key = k(1, next() % 24);
            let port = PortId((next() % 4) as u16);
            match next() % 64 {
                0 => now += (next() % 8) as u32,
                1 => f.add_static(1, key_mac(key), port),
                2 => {
                    f.remove(1, key_mac(key));
                }
                3 => {
                    f.age_step(now, 4);
                }
                _ => {
                    let v = f.learn_verdict(key, port, now);
                    let r = f.learn(key, port, now);
                    assert_eq!(v, r, "key {key:x} on {port:?} at {now}");
                    *seen
                        .entry(format!("{r:?}").split(' ').next().unwrap().to_string())
                        .or_insert(0) += 1;
                }
            }
        }
        // Every kind of verdict came up.
        for kind in [
            "New",
            "Refreshed",
            "Moved",
            "MoveDamped",
            "LimitPort",
            "LimitDomain",
            "StaticConflict",
        ] {
            assert!(
                seen.get(kind).copied().unwrap_or(0) > 50,
                "{kind}: {seen:?}"
            );
        }
    }

    /// A station whose entry expired, seen again on a port at its limit, is
    /// not learned there (it was, past the limit).
    #[test]
    fn an_expired_station_relearned_respects_the_port_limit() {
        let mut f = Fdb::new(FdbConfig {
            aging_secs: 10,
            ..Default::default()
        });
        f.set_port_limit(P2, 1);
        assert_eq!(f.learn(k(1, 1), P2, 0), Learned::New);
        assert_eq!(f.learn(k(1, 2), P1, 0), Learned::New);
        f.learn(k(1, 1), P2, 20);
        assert_eq!(f.learn(k(1, 2), P2, 20), Learned::LimitPort);
        assert_eq!(f.port_len(P2), 1);
        assert_eq!(f.lookup(k(1, 2), 20), None);
    }

    #[test]
    fn learn_then_lookup() {
        let mut f = Fdb::default();
        assert_eq!(f.lookup(k(1, 1), 0), None);
        assert_eq!(f.learn(k(1, 1), P1, 0), Learned::New);
        assert_eq!(f.lookup(k(1, 1), 0), Some(P1));
        assert_eq!(f.learn(k(1, 1), P1, 5), Learned::Refreshed);
        assert_eq!(f.dynamic_len(), 1);
        assert_eq!(f.port_len(P1), 1);
    }

    #[test]
    fn vlans_are_separate_address_spaces() {
        let mut f = Fdb::default();
        f.learn(k(10, 1), P1, 0);
        f.learn(k(20, 1), P2, 0);
        assert_eq!(f.lookup(k(10, 1), 0), Some(P1));
        assert_eq!(f.lookup(k(20, 1), 0), Some(P2));
        assert_eq!(f.lookup(k(30, 1), 0), None);
    }

    #[test]
    fn entries_expire_at_the_aging_time_even_before_the_sweep() {
        let mut f = Fdb::new(FdbConfig {
            aging_secs: 300,
            ..Default::default()
        });
        f.learn(k(1, 1), P1, 100);
        assert_eq!(f.lookup(k(1, 1), 399), Some(P1));
        assert_eq!(
            f.lookup(k(1, 1), 400),
            None,
            "expired entries do not forward"
        );
        assert_eq!(f.entries(400).len(), 0);
        // The sweep reclaims it.
        let mut expired = 0;
        for _ in 0..f.buckets() {
            expired += f.age_step(400, 1);
        }
        assert_eq!(expired, 1);
        assert_eq!(f.len(), 0);
        assert_eq!(f.port_len(P1), 0);
    }

    #[test]
    fn refreshed_entries_survive_aging() {
        let mut f = Fdb::new(FdbConfig {
            aging_secs: 10,
            ..Default::default()
        });
        f.learn(k(1, 1), P1, 0);
        f.learn(k(1, 2), P1, 0);
        f.learn(k(1, 1), P1, 8);
        assert_eq!(f.age_step(12, 1 << 20), 1);
        assert_eq!(f.lookup(k(1, 1), 12), Some(P1));
        assert_eq!(f.lookup(k(1, 2), 12), None);
    }

    #[test]
    fn aging_sweep_is_bounded_per_call() {
        let mut f = Fdb::new(FdbConfig {
            aging_secs: 1,
            ..Default::default()
        });
        for i in 0..10_000 {
            f.learn(k(1, i), P1, 0);
        }
        let buckets = f.buckets();
        assert!(buckets * 4 >= 10_000, "four slots a bucket");
        // One call with a budget of 64 buckets frees at most 64 * 4 entries.
        assert!(f.age_step(5, 64) <= 256);
        // Enough calls to cover the table once free everything.
        let mut total = 0;
        for _ in 0..buckets.div_ceil(64) {
            total += f.age_step(5, 64);
        }
        assert_eq!(f.len(), 0, "one full pass frees every expired entry");
        assert!(total <= 10_000);
        assert_eq!(f.dynamic_len(), 0);
    }

    #[test]
    fn aging_zero_means_forever() {
        let mut f = Fdb::new(FdbConfig {
            aging_secs: 0,
            ..Default::default()
        });
        f.learn(k(1, 1), P1, 0);
        assert_eq!(f.age_step(1_000_000, 1 << 20), 0);
        assert_eq!(f.lookup(k(1, 1), 1_000_000), Some(P1));
    }

    #[test]
    fn static_entries_do_not_age_or_move() {
        let mut f = Fdb::new(FdbConfig {
            aging_secs: 1,
            ..Default::default()
        });
        let m = MacAddr::local(9);
        f.add_static(5, m, P2);
        let key = fdb_key(5, m.to_u64());
        assert_eq!(f.learn(key, P1, 0), Learned::StaticConflict);
        assert_eq!(f.age_step(100, 1 << 20), 0);
        assert_eq!(f.lookup(key, 100), Some(P2));
        assert_eq!(f.dynamic_len(), 0);
        let e = &f.entries(100)[0];
        assert!(e.is_static);
        assert_eq!((e.vid, e.mac, e.port), (5, m, P2));
    }

    #[test]
    fn static_replaces_dynamic_and_keeps_counts() {
        let mut f = Fdb::default();
        let m = MacAddr::local(3);
        f.learn(fdb_key(1, m.to_u64()), P1, 0);
        f.add_static(1, m, P2);
        assert_eq!(f.dynamic_len(), 0);
        assert_eq!(f.port_len(P1), 0);
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn mac_move_updates_the_port_and_counts() {
        let mut f = Fdb::default();
        f.learn(k(1, 1), P1, 0);
        assert_eq!(f.learn(k(1, 1), P2, 1), Learned::Moved { from: P1 });
        assert_eq!(f.lookup(k(1, 1), 1), Some(P2));
        assert_eq!((f.port_len(P1), f.port_len(P2)), (0, 1));
    }

    #[test]
    fn flapping_station_is_damped_then_released() {
        let d = MoveDamping {
            max_moves: 3,
            window_secs: 2,
            hold_secs: 10,
        };
        let mut f = Fdb::new(FdbConfig {
            damping: d,
            ..Default::default()
        });
        let key = k(1, 1);
        f.learn(key, P1, 100);
        // Three moves inside the window are honoured.
        assert_eq!(f.learn(key, P2, 100), Learned::Moved { from: P1 });
        assert_eq!(f.learn(key, P1, 100), Learned::Moved { from: P2 });
        assert_eq!(f.learn(key, P2, 101), Learned::Moved { from: P1 });
        // The fourth trips the damper: the entry stays on P2.
        assert_eq!(f.learn(key, P1, 101), Learned::MoveDamped);
        assert_eq!(f.lookup(key, 101), Some(P2));
        assert!(f.entries(101)[0].damped);
        for t in 101..111 {
            assert_eq!(
                f.learn(key, P1, t),
                Learned::MoveDamped,
                "still held at {t}"
            );
            f.learn(key, P2, t); // refreshes on its own port still work
        }
        assert_eq!(f.lookup(key, 110), Some(P2));
        // Hold over: the move is honoured again.
        assert_eq!(f.learn(key, P1, 111), Learned::Moved { from: P2 });
        assert!(!f.entries(111)[0].damped);
    }

    #[test]
    fn slow_moves_are_never_damped() {
        let d = MoveDamping {
            max_moves: 2,
            window_secs: 2,
            hold_secs: 10,
        };
        let mut f = Fdb::new(FdbConfig {
            damping: d,
            ..Default::default()
        });
        let key = k(1, 1);
        f.learn(key, P1, 0);
        for t in 1..50u32 {
            let to = if t % 2 == 0 { P1 } else { P2 };
            // One move every 3 s never fills the 2 s window.
            assert!(
                matches!(f.learn(key, to, t * 3), Learned::Moved { .. }),
                "at {t}"
            );
            f.age_step(t * 3, 16);
        }
    }

    #[test]
    fn domain_limit_stops_learning_but_not_refresh() {
        let mut f = Fdb::new(FdbConfig {
            max_entries: 2,
            ..Default::default()
        });
        assert_eq!(f.learn(k(1, 1), P1, 0), Learned::New);
        assert_eq!(f.learn(k(1, 2), P1, 0), Learned::New);
        assert_eq!(f.learn(k(1, 3), P1, 0), Learned::LimitDomain);
        assert_eq!(f.learn(k(1, 1), P1, 1), Learned::Refreshed);
        assert_eq!(f.lookup(k(1, 3), 1), None);
        f.remove(1, MacAddr::local(1));
        assert_eq!(
            f.learn(k(1, 3), P1, 2),
            Learned::New,
            "room again after a removal"
        );
    }

    #[test]
    fn port_limit_applies_to_learns_and_moves() {
        let mut f = Fdb::default();
        f.set_port_limit(P1, 1);
        assert_eq!(f.learn(k(1, 1), P1, 0), Learned::New);
        assert_eq!(f.learn(k(1, 2), P1, 0), Learned::LimitPort);
        assert_eq!(
            f.learn(k(1, 2), P2, 0),
            Learned::New,
            "other ports unaffected"
        );
        assert_eq!(
            f.learn(k(1, 2), P1, 0),
            Learned::LimitPort,
            "a move into a full port is refused"
        );
        assert_eq!(f.lookup(k(1, 2), 0), Some(P2));
        f.set_port_limit(P1, 0);
        assert_eq!(f.learn(k(1, 3), P1, 0), Learned::New);
    }

    #[test]
    fn flush_by_port_vid_and_static() {
        let mut f = Fdb::default();
        f.learn(k(1, 1), P1, 0);
        f.learn(k(2, 2), P1, 0);
        f.learn(k(1, 3), P2, 0);
        f.add_static(1, MacAddr::local(4), P1);
        assert_eq!(
            f.flush(FlushFilter {
                port: Some(P1),
                vid: Some(1),
                include_static: false
            }),
            1
        );
        assert_eq!(f.lookup(k(2, 2), 0), Some(P1));
        assert_eq!(
            f.flush(FlushFilter {
                port: Some(P1),
                ..Default::default()
            }),
            1
        );
        assert_eq!(f.len(), 2, "static on P1 and dynamic on P2 remain");
        assert_eq!(
            f.flush(FlushFilter {
                port: Some(P1),
                include_static: true,
                ..Default::default()
            }),
            1
        );
        assert_eq!(f.flush(FlushFilter::default()), 1);
        assert!(f.is_empty());
        assert_eq!(
            (
                f.dynamic_len(),
                f.port_len(P1),
                f.port_len(P2),
                f.port_len(P3)
            ),
            (0, 0, 0, 0)
        );
    }

    #[test]
    fn batch_lookup_matches_single_lookup() {
        let mut f = Fdb::default();
        for i in 0..100 {
            f.learn(k(1, i), PortId((i % 7) as u16), 0);
        }
        let keys: Vec<u64> = (90..130).map(|i| k(1, i)).collect();
        let mut out = [None; 64];
        f.lookup_batch(&keys, 0, &mut out);
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(out[i], f.lookup(*key, 0));
        }
    }

    #[test]
    fn a_mac_flood_stops_at_the_default_limit_and_is_reported() {
        let mut f = Fdb::default();
        assert_eq!(f.config().max_entries, DEFAULT_MAX_ENTRIES);
        let n = DEFAULT_MAX_ENTRIES as u64;
        for i in 0..n {
            assert_eq!(f.learn(k(1, i), PortId((i % 4) as u16), 0), Learned::New);
        }
        // Every further new station is refused and reported (the pipeline
        // counts each as learn_limit_domain); known ones still refresh.
        for i in n..n + 100 {
            assert_eq!(f.learn(k(1, i), P1, 0), Learned::LimitDomain);
        }
        assert_eq!(f.learn(k(1, 0), PortId(0), 1), Learned::Refreshed);
        assert_eq!(f.dynamic_len(), DEFAULT_MAX_ENTRIES);
        assert_eq!(f.lookup(k(1, n), 1), None);
        // The limit is still the operator's to lift.
        f.set_config(FdbConfig {
            max_entries: 0,
            ..FdbConfig::default()
        });
        assert_eq!(f.learn(k(1, n), P1, 1), Learned::New);
    }

    #[test]
    fn flush_and_aging_give_the_memory_of_a_flood_back() {
        let mut f = Fdb::new(FdbConfig {
            max_entries: 0,
            ..FdbConfig::default()
        });
        let initial = f.capacity();
        for i in 0..200_000 {
            f.learn(k(1, i), PortId((i % 8) as u16), 0);
        }
        f.add_static(1, MacAddr::local(999_999), P3);
        assert!(f.capacity() >= 200_000, "grew to {}", f.capacity());
        assert_eq!(f.flush(FlushFilter::default()), 200_000);
        assert_eq!(f.capacity(), initial, "flush gave the table back");
        assert_eq!(
            f.lookup(fdb_key(1, MacAddr::local(999_999).to_u64()), 0),
            Some(P3)
        );
        // Aging: once a full pass finds the table mostly empty, it shrinks.
        for i in 0..100_000 {
            f.learn(k(1, i), PortId((i % 8) as u16), 0);
        }
        assert!(f.capacity() >= 100_000);
        f.learn(k(1, 7), P1, 400);
        let mut expired = 0;
        for _ in 0..(f.buckets() / 1024 + 2) {
            expired += f.age_step(400, 1024);
        }
        assert_eq!(expired, 99_999);
        assert_eq!(f.capacity(), initial, "aging gave the table back");
        assert_eq!(f.lookup(k(1, 7), 400), Some(P1));
        assert_eq!((f.len(), f.dynamic_len()), (2, 1));
    }
}
