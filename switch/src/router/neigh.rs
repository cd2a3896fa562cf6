//! The neighbor table (ARP for IPv4, ND for IPv6): IP → MAC per bridge
//! domain, with the RFC 4861 reachability states reduced to what a router
//! needs (incomplete → reachable → stale → gone), a small bounded queue of
//! packets held per unresolved neighbor (each with the domain it came in
//! on, so a neighbor that never answers can be reported to the senders),
//! and retransmission of solicitations. Time is the caller's `now_ms`.
//!
//! Owns: entries and the packets they hold. Never: building frames (the
//! router does that), I/O, allocation on the lookup path; a new entry may
//! grow the map (bounded by `max_entries`).

use arrayvec::ArrayVec;
use hashbrown::HashMap;

use crate::buf::{PacketPool, PktBuf};
use crate::config::DomainId;
use crate::mac::MacAddr;

/// Most packets one unresolved neighbor holds.
pub const PENDING_MAX: usize = 3;

/// Which neighbor: domain and address (IPv4 mapped into the low 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NeighKey {
    pub domain: DomainId,
    pub v6: bool,
    pub ip: u128,
}

impl NeighKey {
    pub fn v4(domain: DomainId, ip: u32) -> Self {
        NeighKey {
            domain,
            v6: false,
            ip: ip as u128,
        }
    }
    pub fn v6(domain: DomainId, ip: u128) -> Self {
        NeighKey {
            domain,
            v6: true,
            ip,
        }
    }
}

/// Reachability of a neighbor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NeighState {
    /// Solicited, no answer yet; packets are held.
    Incomplete,
    /// Confirmed within `reachable_ms`.
    Reachable,
    /// Not confirmed lately; still used. After `stale_ms` more it is
    /// probed (`max_probes` solicitations, still used meanwhile) and
    /// removed only if it never answers.
    Stale,
    /// Configured; never ages.
    Permanent,
}

/// Timers and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighConfig {
    /// Reachable → stale after this long without confirmation (RFC 4861: 30 s).
    pub reachable_ms: u64,
    /// Stale entries are removed after this much more.
    pub stale_ms: u64,
    /// Solicitation retransmit interval (RFC 4861 RetransTimer: 1 s).
    pub retrans_ms: u64,
    /// Solicitations before an incomplete entry fails (MAX_MULTICAST_SOLICIT: 3).
    pub max_probes: u8,
    /// Packets held per unresolved neighbor (at most [`PENDING_MAX`]).
    pub pending_max: usize,
    /// Most entries in the table.
    pub max_entries: usize,
}

impl Default for NeighConfig {
    fn default() -> Self {
        NeighConfig {
            reachable_ms: 30_000,
            stale_ms: 60_000,
            retrans_ms: 1_000,
            max_probes: 3,
            pending_max: PENDING_MAX,
            max_entries: 16_384,
        }
    }
}

/// One neighbor.
#[derive(Debug)]
pub struct Neighbor {
    pub mac: MacAddr,
    pub state: NeighState,
    /// Last confirmation (or creation for incomplete entries).
    pub updated_ms: u64,
    probes: u8,
    last_probe_ms: u64,
    /// Held packets with the domain each was received in.
    pending: ArrayVec<(PktBuf, DomainId), PENDING_MAX>,
}

/// A held packet handed back because its neighbor never answered: the
/// neighbor, the domain the packet came in on, the packet.
pub type Unresolved = (NeighKey, DomainId, PktBuf);

/// The packets of `pending`, in order, for sending.
fn bufs(pending: &mut ArrayVec<(PktBuf, DomainId), PENDING_MAX>) -> ArrayVec<PktBuf, PENDING_MAX> {
    pending.drain(..).map(|(b, _)| b).collect()
}

impl Neighbor {
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

/// What [`NeighborTable::hold`] did with a packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Hold {
    /// Held; send a solicitation now if `solicit`.
    Held { solicit: bool },
    /// The neighbor's queue is full: the packet is given back to be dropped.
    QueueFull(PktBuf),
    /// No room for a new entry: the packet is given back to be dropped.
    TableFull(PktBuf),
}

/// What one [`NeighborTable::tick`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    /// Incomplete entries that ran out of probes.
    pub failed: usize,
    /// Held packets of those entries, handed back to the caller.
    pub freed: usize,
    /// Stale entries removed (after their probes went unanswered).
    pub expired: usize,
    /// Solicitations sent to stale entries due to expire.
    pub probed: usize,
    /// Reachable entries that went stale.
    pub staled: usize,
}

/// Neighbors of every domain.
#[derive(Debug, Default)]
pub struct NeighborTable {
    cfg: NeighConfig,
    map: HashMap<NeighKey, Neighbor>,
    /// Bumped whenever a resolution may have changed, so callers can cache
    /// [`Self::resolve`] results (the router caches per next hop).
    generation: u64,
}

impl NeighborTable {
    pub fn new(cfg: NeighConfig) -> Self {
        let mut cfg = cfg;
        cfg.pending_max = cfg.pending_max.min(PENDING_MAX);
        NeighborTable {
            cfg,
            map: HashMap::new(),
            generation: 0,
        }
    }

    /// Changes whenever any resolution may have changed.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn config(&self) -> &NeighConfig {
        &self.cfg
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn get(&self, k: &NeighKey) -> Option<&Neighbor> {
        self.map.get(k)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&NeighKey, &Neighbor)> {
        self.map.iter()
    }

    /// The MAC to forward to, if the neighbor is resolved (stale counts).
    #[inline]
    pub fn resolve(&self, k: &NeighKey) -> Option<MacAddr> {
        match self.map.get(k) {
            Some(n) if n.state != NeighState::Incomplete => Some(n.mac),
            _ => None,
        }
    }

    /// Hold `buf`, received in domain `from`, until `k` resolves, creating
    /// an incomplete entry if there is none. A solicitation is due for a new
    /// entry only (retransmits come from [`Self::tick`]).
    pub fn hold(&mut self, k: NeighKey, buf: PktBuf, from: DomainId, now_ms: u64) -> Hold {
        let max = self.cfg.pending_max;
        if let Some(n) = self.map.get_mut(&k) {
            if n.pending.len() >= max {
                return Hold::QueueFull(buf);
            }
            n.pending.push((buf, from));
            return Hold::Held { solicit: false };
        }
        if self.map.len() >= self.cfg.max_entries {
            return Hold::TableFull(buf);
        }
        let mut pending = ArrayVec::new();
        if max > 0 {
            pending.push((buf, from));
        } else {
            return Hold::QueueFull(buf);
        }
        self.map.insert(
            k,
            Neighbor {
                mac: MacAddr::ZERO,
                state: NeighState::Incomplete,
                updated_ms: now_ms,
                probes: 1,
                last_probe_ms: now_ms,
                pending,
            },
        );
        Hold::Held { solicit: true }
    }

    /// Record that `k` is at `mac` (an ARP/NA from it, or an ARP request or
    /// NS it sent to us). Creates the entry only if `create`. Returns the
    /// packets that were waiting for it, to be sent now.
    pub fn confirm(
        &mut self,
        k: NeighKey,
        mac: MacAddr,
        now_ms: u64,
        create: bool,
    ) -> ArrayVec<PktBuf, PENDING_MAX> {
        self.generation += 1;
        if let Some(n) = self.map.get_mut(&k) {
            if n.state != NeighState::Permanent {
                n.mac = mac;
                n.state = NeighState::Reachable;
                n.updated_ms = now_ms;
                n.probes = 0;
            }
            return bufs(&mut n.pending);
        }
        if create && self.map.len() < self.cfg.max_entries {
            self.map.insert(
                k,
                Neighbor {
                    mac,
                    state: NeighState::Reachable,
                    updated_ms: now_ms,
                    probes: 0,
                    last_probe_ms: 0,
                    pending: ArrayVec::new(),
                },
            );
        }
        ArrayVec::new()
    }

    /// A configured entry that never ages; returns held packets to send.
    pub fn add_permanent(&mut self, k: NeighKey, mac: MacAddr) -> ArrayVec<PktBuf, PENDING_MAX> {
        self.generation += 1;
        let n = self.map.entry(k).or_insert(Neighbor {
            mac,
            state: NeighState::Permanent,
            updated_ms: 0,
            probes: 0,
            last_probe_ms: 0,
            pending: ArrayVec::new(),
        });
        n.mac = mac;
        n.state = NeighState::Permanent;
        bufs(&mut n.pending)
    }

    /// Remove one entry, freeing what it held; returns whether it existed.
    pub fn remove(&mut self, pool: &mut PacketPool, k: &NeighKey) -> bool {
        self.generation += 1;
        match self.map.remove(k) {
            Some(n) => {
                n.pending.into_iter().for_each(|(b, _)| pool.free(b));
                true
            }
            None => false,
        }
    }

    /// Remove every entry of `domain` (its gateway went away).
    pub fn flush_domain(&mut self, pool: &mut PacketPool, domain: DomainId) {
        self.generation += 1;
        self.map.retain(|k, n| {
            if k.domain != domain {
                return true;
            }
            n.pending.drain(..).for_each(|(b, _)| pool.free(b));
            false
        });
    }

    /// Advance timers: retransmit due solicitations (their keys are pushed
    /// to `solicit`), fail incomplete entries out of probes (their held
    /// packets are pushed to `unresolved`, for the caller to answer with an
    /// ICMP error and free), age reachable → stale → gone. O(entries): call
    /// it every 100 ms or so, not per batch.
    pub fn tick(
        &mut self,
        now_ms: u64,
        solicit: &mut Vec<NeighKey>,
        unresolved: &mut Vec<Unresolved>,
    ) -> TickReport {
        let c = self.cfg;
        let mut r = TickReport::default();
        self.map.retain(|k, n| match n.state {
            NeighState::Permanent => true,
            NeighState::Incomplete => {
                if now_ms.saturating_sub(n.last_probe_ms) < c.retrans_ms {
                    return true;
                }
                if n.probes >= c.max_probes {
                    r.failed += 1;
                    r.freed += n.pending.len();
                    unresolved.extend(n.pending.drain(..).map(|(b, from)| (*k, from, b)));
                    return false;
                }
                n.probes += 1;
                n.last_probe_ms = now_ms;
                solicit.push(*k);
                true
            }
            NeighState::Reachable => {
                if now_ms.saturating_sub(n.updated_ms) >= c.reachable_ms {
                    n.state = NeighState::Stale;
                    r.staled += 1;
                }
                true
            }
            NeighState::Stale => {
                if now_ms.saturating_sub(n.updated_ms) < c.reachable_ms + c.stale_ms {
                    return true;
                }
                // Due to go: ask first (Linux's PROBE state), and keep
                // forwarding to the known MAC meanwhile. Deleting a
                // neighbor that is still in use at once held and dropped a
                // routed flow's packets every 90 s until a new resolution;
                // one that answers is confirmed (reachable again), one that
                // stays silent through `max_probes` solicitations goes.
                let since_probe = now_ms.saturating_sub(n.last_probe_ms);
                if n.probes >= c.max_probes {
                    if since_probe >= c.retrans_ms {
                        r.expired += 1;
                        return false;
                    }
                    return true;
                }
                if n.probes == 0 || since_probe >= c.retrans_ms {
                    n.probes += 1;
                    n.last_probe_ms = now_ms;
                    r.probed += 1;
                    solicit.push(*k);
                }
                true
            }
        });
        if r.expired + r.failed > 0 {
            self.generation += 1;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: DomainId = DomainId(1);
    /// The domain held packets came in on.
    const FROM: DomainId = DomainId(2);

    fn pkt(pool: &mut PacketPool, tag: u8) -> PktBuf {
        pool.alloc_from(&[tag; 60]).unwrap()
    }

    #[test]
    fn hold_then_confirm_releases_in_order() {
        let mut pool = PacketPool::with_frames(16);
        let mut t = NeighborTable::new(NeighConfig::default());
        let k = NeighKey::v4(D, 0x0a000002);
        assert_eq!(t.resolve(&k), None);
        assert_eq!(
            t.hold(k, pkt(&mut pool, 1), FROM, 0),
            Hold::Held { solicit: true }
        );
        assert_eq!(
            t.hold(k, pkt(&mut pool, 2), FROM, 1),
            Hold::Held { solicit: false }
        );
        assert_eq!(
            t.hold(k, pkt(&mut pool, 3), FROM, 2),
            Hold::Held { solicit: false }
        );
        match t.hold(k, pkt(&mut pool, 4), FROM, 3) {
            Hold::QueueFull(b) => pool.free(b),
            other => panic!("{other:?}"),
        }
        let out = t.confirm(k, MacAddr::local(7), 10, false);
        let tags: Vec<u8> = out.iter().map(|b| pool.data(b)[0]).collect();
        assert_eq!(tags, vec![1, 2, 3]);
        out.into_iter().for_each(|b| pool.free(b));
        assert_eq!(t.resolve(&k), Some(MacAddr::local(7)));
        assert_eq!(pool.available(), 16);
    }

    #[test]
    fn unanswered_solicits_fail_and_free() {
        let mut pool = PacketPool::with_frames(16);
        let mut t = NeighborTable::new(NeighConfig::default());
        let k = NeighKey::v6(D, 0x2001_0db8 << 96 | 9);
        t.hold(k, pkt(&mut pool, 1), FROM, 0);
        t.hold(k, pkt(&mut pool, 2), FROM, 0);
        let (mut sol, mut un) = (Vec::new(), Vec::new());
        assert_eq!(t.tick(999, &mut sol, &mut un), TickReport::default());
        assert!(sol.is_empty());
        t.tick(1000, &mut sol, &mut un);
        t.tick(2000, &mut sol, &mut un);
        assert_eq!(sol, vec![k, k], "probes 2 and 3");
        assert!(un.is_empty(), "nothing given up while probes remain");
        let r = t.tick(3000, &mut sol, &mut un);
        assert_eq!((r.failed, r.freed), (1, 2));
        assert!(t.is_empty());
        // The held packets come back in order, with where they came from,
        // for the router to answer and free.
        let back: Vec<(NeighKey, DomainId, u8)> = un
            .iter()
            .map(|(k, from, b)| (*k, *from, pool.data(b)[0]))
            .collect();
        assert_eq!(back, vec![(k, FROM, 1), (k, FROM, 2)]);
        un.drain(..).for_each(|(_, _, b)| pool.free(b));
        assert_eq!(pool.available(), 16);
    }

    /// A neighbor still there answers the probe and stays: a routed flow
    /// to it never waits for a new resolution.
    #[test]
    fn a_stale_neighbor_that_answers_its_probe_stays_reachable() {
        let mut t = NeighborTable::new(NeighConfig::default());
        let a = NeighKey::v4(D, 1);
        t.confirm(a, MacAddr::local(1), 0, true);
        let (mut sol, mut un) = (Vec::new(), Vec::new());
        for now in (0..=90_000).step_by(100) {
            t.tick(now, &mut sol, &mut un);
        }
        assert_eq!(sol, vec![a]);
        assert_eq!(t.resolve(&a), Some(MacAddr::local(1)));
        // The answer (its ARP reply) confirms it.
        t.confirm(a, MacAddr::local(1), 90_050, false);
        assert_eq!(t.get(&a).unwrap().state, NeighState::Reachable);
        // The next round: probed again at 90 s after that answer, and
        // answered; never gone in between.
        sol.clear();
        for now in (90_100..=200_000).step_by(100) {
            let r = t.tick(now, &mut sol, &mut un);
            assert_eq!(r.expired, 0, "at {now}");
            if r.probed > 0 {
                t.confirm(a, MacAddr::local(1), now + 20, false);
            }
        }
        assert_eq!(sol, vec![a], "one probe in the second round");
        assert_eq!(t.resolve(&a), Some(MacAddr::local(1)));
    }

    #[test]
    fn aging_and_permanent_entries() {
        let mut pool = PacketPool::with_frames(4);
        let mut t = NeighborTable::new(NeighConfig::default());
        let a = NeighKey::v4(D, 1);
        let p = NeighKey::v4(D, 2);
        assert!(t.confirm(a, MacAddr::local(1), 0, false).is_empty());
        assert!(t.get(&a).is_none(), "not created unless asked");
        t.confirm(a, MacAddr::local(1), 0, true);
        t.add_permanent(p, MacAddr::local(2));
        let (mut sol, mut un) = (Vec::new(), Vec::new());
        assert_eq!(t.tick(30_000, &mut sol, &mut un).staled, 1);
        assert_eq!(t.get(&a).unwrap().state, NeighState::Stale);
        assert_eq!(t.resolve(&a), Some(MacAddr::local(1)), "stale still used");
        // Due to expire: probed first, still used while probed.
        sol.clear();
        let r = t.tick(90_000, &mut sol, &mut un);
        assert_eq!((r.expired, r.probed), (0, 1));
        assert_eq!(sol, vec![a], "a solicitation to the stale neighbor");
        assert_eq!(t.resolve(&a), Some(MacAddr::local(1)), "used while probed");
        // No answer through max_probes solicitations, a retransmit apart:
        // then it goes.
        assert_eq!(t.tick(91_000, &mut sol, &mut un).probed, 1);
        assert_eq!(t.tick(92_000, &mut sol, &mut un).probed, 1);
        assert_eq!(t.tick(92_500, &mut sol, &mut un).probed, 0);
        assert_eq!(t.tick(93_000, &mut sol, &mut un).expired, 1);
        assert_eq!(t.resolve(&a), None);
        assert!(un.is_empty(), "a stale entry holds no packets");
        assert_eq!(t.resolve(&p), Some(MacAddr::local(2)));
        let cfg = NeighConfig {
            max_entries: 1,
            ..Default::default()
        };
        let mut small = NeighborTable::new(cfg);
        small.hold(a, pkt(&mut pool, 0), FROM, 0);
        match small.hold(p, pkt(&mut pool, 0), FROM, 0) {
            Hold::TableFull(b) => pool.free(b),
            other => panic!("{other:?}"),
        }
        small.flush_domain(&mut pool, D);
        assert!(small.is_empty());
        assert_eq!(pool.available(), 4);
    }
}
